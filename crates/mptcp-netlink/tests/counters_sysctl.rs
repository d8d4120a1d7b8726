//! MIB counters and sysctls of the calling thread's namespace.

mod common;

use std::io::{Read, Write};

use mptcp_net::{Dialer, ListenConfig};
use mptcp_netlink::{sysctl, Counters, Error};

#[test]
fn counters_are_per_namespace_and_match_the_reference() {
    let ns = common::netns("counters");
    let before = ns.run(Counters::read).unwrap().expect("read counters");
    println!("{} MPTcpExt counters", before.len());
    assert!(before.len() >= 40, "{before}");
    assert!(
        before.non_zero().next().is_none(),
        "a fresh namespace counts nothing: {before}"
    );

    ns.run(|| {
        let listener = ListenConfig::new().listen("127.0.0.1:0").unwrap();
        let mut client = Dialer::new().dial(listener.local_addr().unwrap()).unwrap();
        let (mut server, _) = listener.accept().unwrap();
        client.write_all(b"ping").unwrap();
        server.read_exact(&mut [0; 4]).unwrap();
    })
    .unwrap();
    let after = ns.run(Counters::read).unwrap().unwrap();
    let delta = after.delta(&before);
    assert_eq!(delta.get("MPCapableSYNRX"), Some(1), "{delta}");
    assert_eq!(delta.get("MPCapableACKRX"), Some(1), "{delta}");
    // The same numbers as the test network's own reader of the same file.
    let reference = ns.counters().expect("reference counters");
    for (name, value) in after.iter() {
        assert_eq!(reference.get("MPTcpExt", name), Some(value), "{name}");
    }
    // The host (this thread's namespace) is another namespace.
    let host = Counters::read().unwrap();
    assert_ne!(host.get("MPCapableSYNRX"), None);
}

#[test]
fn sysctls_read_and_write_in_the_namespace() {
    let ns = common::netns("sysctl");
    let host_timeout = sysctl::get("add_addr_timeout").unwrap();
    ns.run(|| {
        let all = sysctl::all().unwrap();
        let get = |n: &str| all.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
        assert_eq!(get("enabled").as_deref(), Some("1"), "{all:?}");
        assert_eq!(get("path_manager").as_deref(), Some("kernel"), "{all:?}");
        sysctl::set("add_addr_timeout", "30").unwrap();
        sysctl::set("net.mptcp.path_manager", "userspace").unwrap();
        let e = sysctl::set("enabled", "7").unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
        let e = sysctl::set("path_manager", "bogus").unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
        let e = sysctl::get("no_such_knob").unwrap_err();
        assert!(matches!(e, Error::NotFound { .. }), "{e:?}");
        assert!(e.to_string().contains("does not exist"), "{e}");
        let e = sysctl::get("../ipv4/ip_forward").unwrap_err();
        assert!(matches!(e, Error::Invalid(_)), "{e:?}");
    })
    .unwrap();
    assert_eq!(ns.sysctl("net.mptcp.add_addr_timeout").unwrap(), "30");
    assert_eq!(ns.sysctl("net.mptcp.path_manager").unwrap(), "userspace");
    // The host's namespace was not touched.
    assert_eq!(sysctl::get("add_addr_timeout").unwrap(), host_timeout);
    assert_ne!(host_timeout, "30");
}
