//! Path-manager events of a real MPTCP connection over two paths.

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mptcp_net::{Dialer, ListenConfig};
use mptcp_netlink::{Event, EventKind, Events, PathManager};
use mptcp_testnet::{Host, TestNet};

const PORT: u16 = 5201;

fn testnet(paths: usize) -> TestNet {
    TestNet::builder()
        .paths(paths)
        .build()
        .unwrap_or_else(|e| panic!("this test needs a {paths}-path test network: {e}"))
}

/// An MPTCP listener on the server's path-0 address, and that address.
fn listen(server: &Host) -> (std::net::TcpListener, SocketAddr) {
    let listener = server
        .run(|| ListenConfig::new().listen(("0.0.0.0", PORT)))
        .unwrap()
        .expect("listen");
    (listener, SocketAddr::new(server.addr(0).unwrap(), PORT))
}

/// Reads events until `done` says so, for at most `limit`.
fn collect_until(
    events: &mut Events,
    seen: &mut Vec<Event>,
    limit: Duration,
    done: impl Fn(&[Event]) -> bool,
) {
    let deadline = Instant::now() + limit;
    while !done(seen) {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "timed out; events so far: {seen:#?}");
        if let Some(e) = events.next_timeout(left).expect("read events") {
            println!("event: {e}");
            seen.push(e);
        }
    }
}

fn position(seen: &[Event], kind: EventKind) -> usize {
    seen.iter()
        .position(|e| e.kind == kind)
        .unwrap_or_else(|| panic!("no {kind} event in {seen:#?}"))
}

#[test]
fn a_two_path_connection_yields_its_events_in_order() {
    let net = testnet(2);
    let (client, server) = (net.client(), net.server());
    let mut client_events = client
        .run(Events::subscribe)
        .unwrap()
        .expect("subscribe (client)");
    let mut server_events = server
        .run(Events::subscribe)
        .unwrap()
        .expect("subscribe (server)");

    let (listener, server_addr) = listen(server);
    let mut stream = client
        .run(|| Dialer::new().dial(server_addr))
        .unwrap()
        .expect("dial");
    let (mut accepted, _) = listener.accept().expect("accept");
    stream.write_all(b"ping").unwrap();
    let mut buf = [0; 4];
    accepted.read_exact(&mut buf).unwrap();

    let mut seen = Vec::new();
    collect_until(
        &mut client_events,
        &mut seen,
        Duration::from_secs(10),
        |s| s.iter().any(|e| e.kind == EventKind::SubEstablished),
    );
    // Withdrawing the client's path-1 endpoint closes the second subflow (the kernel
    // emits no sub_closed for subflows that end with their connection).
    let pm = client
        .run(PathManager::open)
        .unwrap()
        .expect("open path manager");
    let removed = pm
        .delete_endpoint_by_address(client.addr(1).unwrap())
        .expect("delete the path-1 endpoint");
    collect_until(
        &mut client_events,
        &mut seen,
        Duration::from_secs(10),
        |s| s.iter().any(|e| e.kind == EventKind::SubClosed),
    );
    drop(stream);
    drop(accepted);
    collect_until(
        &mut client_events,
        &mut seen,
        Duration::from_secs(10),
        |s| s.iter().any(|e| e.kind == EventKind::Closed),
    );

    let (created, established, sub_est, sub_closed, closed) = (
        position(&seen, EventKind::Created),
        position(&seen, EventKind::Established),
        position(&seen, EventKind::SubEstablished),
        position(&seen, EventKind::SubClosed),
        position(&seen, EventKind::Closed),
    );
    assert!(
        created < established
            && established < sub_est
            && sub_est < sub_closed
            && sub_closed < closed,
        "out of order: {seen:#?}"
    );
    let token = seen[created].token.expect("created has a token");
    assert!(
        seen.iter().all(|e| e.token == Some(token)),
        "one connection: {seen:#?}"
    );

    let c = &seen[created];
    assert_eq!(c.remote, Some(server_addr));
    assert_eq!(c.local.map(|a| a.ip()), client.addr(0));
    assert_ne!(c.server_side, Some(true), "{c}");
    assert_eq!(seen[established].remote, Some(server_addr));

    // The second subflow: from the client's path-1 address to the same server address.
    let s = &seen[sub_est];
    assert_eq!(s.local.map(|a| a.ip()), client.addr(1), "{s}");
    assert_eq!(s.remote, Some(server_addr), "{s}");
    assert!(s.local.unwrap().port() != 0);
    assert_eq!(s.local_id, Some(removed[0].id), "{s}");
    assert_eq!(s.remote_id, Some(0), "{s}");
    assert_eq!(s.backup, Some(false), "{s}");
    assert!(s.ifindex.is_some(), "{s}");
    let sc = &seen[sub_closed];
    assert_eq!(
        sc.local, s.local,
        "the closed subflow is the second one: {sc}"
    );

    // The server side saw its listener and the connection, marked as server side.
    let mut server_seen = Vec::new();
    collect_until(
        &mut server_events,
        &mut server_seen,
        Duration::from_secs(10),
        |s| s.iter().any(|e| e.kind == EventKind::Closed),
    );
    let l = &server_seen[position(&server_seen, EventKind::ListenerCreated)];
    assert_eq!(l.local.map(|a| a.port()), Some(PORT), "{l}");
    let c = &server_seen[position(&server_seen, EventKind::Created)];
    assert_eq!(c.server_side, Some(true), "{c}");
    assert_eq!(c.local, Some(server_addr), "{c}");
    // The peer's withdrawal of its path-1 address (RM_ADDR), with the endpoint's id.
    let r = &server_seen[position(&server_seen, EventKind::Removed)];
    assert_eq!(r.remote_id, Some(removed[0].id), "{r}");
    drop(listener);
    collect_until(
        &mut server_events,
        &mut server_seen,
        Duration::from_secs(5),
        |s| s.iter().any(|e| e.kind == EventKind::ListenerClosed),
    );
}

#[test]
fn a_burst_of_events_nobody_reads_meanwhile_is_kept() {
    // 400 connections open and close while the subscriber reads nothing: about 1,200
    // events, more than a socket with the default receive buffer (rmem_default)
    // holds: without the larger queue this fails with EventsLost.
    const CONNECTIONS: usize = 400;
    let net = testnet(1);
    let (client, server) = (net.client(), net.server());
    let mut events = server
        .run(Events::subscribe)
        .unwrap()
        .expect("subscribe (server)");
    let (listener, server_addr) = listen(server);
    let dialer = Dialer::new();
    for _ in 0..CONNECTIONS {
        let mut stream = client
            .run(|| dialer.dial(server_addr))
            .unwrap()
            .expect("dial");
        let (mut accepted, _) = listener.accept().expect("accept");
        // One byte each way: both sides fully established.
        stream.write_all(b"x").unwrap();
        let mut buf = [0; 1];
        accepted.read_exact(&mut buf).unwrap();
        accepted.write_all(b"y").unwrap();
        stream.read_exact(&mut buf).unwrap();
    }
    let (mut created, mut established) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(10);
    while created < CONNECTIONS || established < CONNECTIONS {
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(
            !left.is_zero(),
            "timed out with {created} created and {established} established events"
        );
        match events.next_timeout(left) {
            Ok(Some(e)) if e.kind == EventKind::Created => created += 1,
            Ok(Some(e)) if e.kind == EventKind::Established => established += 1,
            Ok(_) => {}
            Err(e) => panic!(
                "after {created} created and {established} established events: {e} \
                 (the subscription's receive queue overflowed)"
            ),
        }
    }
    assert_eq!((created, established), (CONNECTIONS, CONNECTIONS));
}
