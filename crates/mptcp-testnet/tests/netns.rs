//! `Netns` on the real kernel: needs root and iproute2, and fails (never skips)
//! without them.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::time::Duration;

use common::{listed_namespaces, netns};
use mptcp_testnet::{Error, Netns};

#[test]
fn names_are_unique_listed_and_removed_on_drop() {
    let all: Vec<Netns> = (0..6).map(|_| netns("uniq")).collect();
    let mut names: Vec<String> = all.iter().map(|ns| ns.name().to_string()).collect();
    let listed = listed_namespaces();
    for name in &names {
        assert!(
            name.starts_with("mpt-") && name.ends_with("-uniq"),
            "{name}"
        );
        assert!(listed.contains(name), "{name} not in {listed:?}");
    }
    names.sort();
    names.dedup();
    assert_eq!(names.len(), 6, "names are unique");
    drop(all);
    let listed = listed_namespaces();
    for name in &names {
        assert!(!listed.contains(name), "{name} still listed after drop");
    }
}

#[test]
fn loopback_is_up_and_sockets_keep_their_namespace() {
    let ns = netns("lo");
    let listener = ns
        .run(|| TcpListener::bind("127.0.0.1:0"))
        .expect("enter namespace")
        .expect("bind loopback inside the namespace");
    let addr = listener.local_addr().unwrap();
    // The listener was made inside; accepting on this (outside) thread still works,
    // and a connection made from the host namespace cannot reach it.
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err(),
        "the host's loopback must not reach a listener inside the namespace"
    );
    let mut client = ns
        .run(|| TcpStream::connect(addr))
        .expect("enter namespace")
        .expect("connect over lo inside the namespace");
    let (mut server, _) = listener.accept().expect("accept");
    client.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    server
        .set_read_timeout(Some(Duration::from_secs(3)))
        .unwrap();
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hello");
    let links = ns.exec("ip", ["-o", "link", "show"]).expect("ip link");
    let links = String::from_utf8_lossy(&links.stdout);
    assert_eq!(links.lines().count(), 1, "only lo: {links}");
    assert!(links.contains("lo:") && links.contains("UP"), "{links}");
}

#[test]
fn sysctl_round_trip_stays_in_the_namespace() {
    let ns = netns("sysctl");
    let host_before = std::fs::read_to_string("/proc/sys/net/mptcp/enabled").unwrap();
    assert_eq!(ns.sysctl("net.mptcp.enabled").unwrap(), "1");
    ns.set_sysctl("net.mptcp.enabled", "0").unwrap();
    assert_eq!(ns.sysctl("net.mptcp.enabled").unwrap(), "0");
    let seen_by_tool = ns
        .exec("cat", ["/proc/sys/net/mptcp/enabled"])
        .expect("cat inside the namespace");
    assert_eq!(String::from_utf8_lossy(&seen_by_tool.stdout).trim(), "0");
    assert_eq!(
        std::fs::read_to_string("/proc/sys/net/mptcp/enabled").unwrap(),
        host_before,
        "the host's sysctl is untouched"
    );
    ns.set_sysctl("net/mptcp/enabled", "1").unwrap();
    assert_eq!(ns.sysctl("net.mptcp.enabled").unwrap(), "1");

    assert!(matches!(
        ns.set_sysctl("kernel.hostname", "x"),
        Err(Error::InvalidConfig(_))
    ));
    let unknown = ns.sysctl("net.mptcp.no_such_knob").unwrap_err();
    assert!(
        unknown.to_string().contains("net.mptcp.no_such_knob"),
        "{unknown}"
    );
    assert!(ns.set_sysctl("net.mptcp.enabled", "banana").is_err());
}

#[test]
fn counters_count_one_connection() {
    let ns = netns("counters");
    let before = ns.counters().expect("read counters");
    assert!(
        before.get("MPTcpExt", "MPCapableSYNRX").is_some(),
        "MPTcpExt group present"
    );
    assert_eq!(
        before.get("Tcp", "ActiveOpens"),
        Some(0),
        "a fresh namespace"
    );
    ns.run(|| {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let _client = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
        listener.accept().unwrap();
    })
    .expect("enter namespace");
    let delta = ns.counters().unwrap().delta(&before);
    println!(
        "counter changes after one connect: {:?}",
        delta.non_zero().collect::<Vec<_>>()
    );
    assert_eq!(delta.get("Tcp", "ActiveOpens"), Some(1));
    assert_eq!(delta.get("Tcp", "PassiveOpens"), Some(1));
    assert_eq!(delta.mptcp("MPCapableSYNTX"), 0, "plain TCP");
    let host = std::fs::read_to_string("/proc/net/snmp").unwrap();
    assert!(!host.is_empty());
}

#[test]
fn exec_and_command_run_inside() {
    let ns = netns("exec");
    let out = ns
        .command("cat")
        .arg("/proc/self/net/dev")
        .output()
        .expect("spawn ip netns exec");
    assert!(out.status.success());
    let devices = String::from_utf8_lossy(&out.stdout);
    assert!(devices.contains("lo:"), "{devices}");
    assert!(
        !devices.contains("eth0:"),
        "no host device inside: {devices}"
    );
    match ns.exec("ip", ["link", "show", "dev", "nosuchdev"]) {
        Err(Error::Command {
            command, stderr, ..
        }) => {
            assert!(command.contains(ns.name()), "{command}");
            assert!(!stderr.is_empty());
        }
        other => panic!("expected a command error, got {other:?}"),
    }
    match ns.exec("no-such-tool-here", ["x"]) {
        Err(Error::MissingTool { tool, .. }) => assert_eq!(tool, "no-such-tool-here"),
        other => panic!("expected a missing tool, got {other:?}"),
    }
}

#[test]
fn panic_inside_run_propagates_and_the_namespace_is_removed() {
    let mut name = String::new();
    let result = catch_unwind(AssertUnwindSafe(|| {
        let ns = netns("panic");
        name = ns.name().to_string();
        let _: Result<(), _> = ns.run(|| panic!("boom inside the namespace"));
        unreachable!("run must resume the panic");
    }));
    let payload = result.expect_err("the panic reaches the caller");
    let message = payload.downcast_ref::<&str>().copied().unwrap_or_default();
    assert_eq!(message, "boom inside the namespace");
    assert!(!name.is_empty());
    assert!(
        !listed_namespaces().contains(&name),
        "{name} was not removed while unwinding"
    );
}

#[test]
fn namespaces_of_dead_processes_are_removed() {
    // The first namespace of a process already sweeps; make that happen first.
    let _first = netns("first");
    let mut child = std::process::Command::new("true")
        .spawn()
        .expect("spawn true");
    let dead_pid = child.id();
    child.wait().expect("wait");
    let stale = format!("mpt-{dead_pid}-0-stale");
    let status = std::process::Command::new("ip")
        .args(["netns", "add", &stale])
        .status()
        .expect("ip netns add");
    assert!(status.success());
    let alive = netns("kept");
    let removed = Netns::remove_stale();
    println!("removed {removed:?}");
    // Another test process starting now may sweep it first: check the outcome.
    let listed = listed_namespaces();
    assert!(!listed.contains(&stale), "{stale} removed");
    assert!(listed.contains(&alive.name().to_string()), "live ones stay");
}
