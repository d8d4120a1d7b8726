//! The JSON shape of the data types (feature `serde`), as a CLI would print them.
#![cfg(feature = "serde")]

use mptcp_netlink::codec::AddressAttrs;
use mptcp_netlink::{Counters, Endpoint, EndpointFlags, Event, EventKind, Limits, ResetReason};
use serde_json::json;

#[test]
fn data_types_serialize_to_readable_json() {
    let attrs = AddressAttrs {
        family: Some(2),
        id: Some(5),
        addr: Some("198.18.0.1".parse().unwrap()),
        port: Some(5202),
        flags: Some((EndpointFlags::SIGNAL | EndpointFlags::BACKUP).bits() | 0x100),
        ifindex: None,
    };
    let ep = Endpoint::try_from(&attrs).unwrap();
    assert_eq!(
        serde_json::to_value(&ep).unwrap(),
        json!({"id": 5, "address": "198.18.0.1", "port": 5202, "flags": ["signal", "backup", "0x100"]})
    );
    assert_eq!(
        serde_json::to_value(Limits {
            subflows: 2,
            add_addr_accepted: 1
        })
        .unwrap(),
        json!({"subflows": 2, "add_addr_accepted": 1})
    );
    let mut e = Event::new(EventKind::SubClosed);
    e.token = Some(7);
    e.remote = Some("198.18.0.2:5201".parse().unwrap());
    e.reset_reason = Some(ResetReason::Middlebox);
    let v = serde_json::to_value(&e).unwrap();
    assert_eq!(v["kind"], "sub_closed");
    assert_eq!(v["remote"], "198.18.0.2:5201");
    assert_eq!(v["reset_reason"], "middlebox");
    assert_eq!(v["local"], serde_json::Value::Null);
    let c = Counters::parse("MPTcpExt: MPCapableSYNRX AddAddr\nMPTcpExt: 3 1\n").unwrap();
    assert_eq!(
        serde_json::to_string(&c).unwrap(),
        r#"{"MPCapableSYNRX":3,"AddAddr":1}"#
    );
}
