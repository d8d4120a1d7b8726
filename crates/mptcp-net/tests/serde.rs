//! The JSON shape of the introspection types (feature `serde`): stable
//! snake_case names, times as integer microseconds in `*_us` fields.

use mptcp_net::{Dialer, ListenConfig, MptcpExt};

#[test]
fn live_connection_serialises_with_stable_names() {
    assert!(mptcp_net::support().unwrap().is_available(), "needs MPTCP");
    let listener = ListenConfig::new().listen("127.0.0.1:0").unwrap();
    let client = Dialer::new().dial(listener.local_addr().unwrap()).unwrap();
    let (_server, _) = listener.accept().unwrap();

    let status = serde_json::to_value(client.mptcp_status().unwrap()).unwrap();
    assert_eq!(status, "active");

    let info = serde_json::to_value(client.mptcp_info().unwrap().unwrap()).unwrap();
    for field in [
        "token",
        "subflows",
        "flags",
        "bytes_sent",
        "bytes_acked",
        "subflows_total",
    ] {
        assert!(info.get(field).is_some(), "mptcp_info has {field}: {info}");
    }
    assert!(info["last_data_sent_us"].is_u64(), "{info}");

    let subflows = serde_json::to_value(client.subflows().unwrap()).unwrap();
    let sf = &subflows[0];
    assert_eq!(sf["id"], 1);
    assert_eq!(sf["local"], client.local_addr().unwrap().to_string());
    assert_eq!(sf["remote"], client.peer_addr().unwrap().to_string());
    let tcp = &sf["tcp"];
    assert_eq!(tcp["state"], "established", "{tcp}");
    assert_eq!(tcp["ca_state"], "open", "{tcp}");
    for field in [
        "rtt_us",
        "rttvar_us",
        "rto_us",
        "min_rtt_us",
        "last_data_sent_us",
    ] {
        assert!(tcp[field].is_u64(), "{field} is an integer: {tcp}");
    }
    for field in [
        "snd_cwnd",
        "snd_mss",
        "bytes_acked",
        "bytes_received",
        "total_retrans",
        "delivery_rate",
    ] {
        assert!(tcp.get(field).is_some(), "tcp_info has {field}: {tcp}");
    }
}
