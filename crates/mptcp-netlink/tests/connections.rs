//! Connection listing through sock_diag: a live two-subflow connection, a fallen-back one.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use mptcp_net::{Dialer, ListenConfig, MptcpExt};
use mptcp_netlink::{connections, Connection, TcpState};
use mptcp_testnet::{Host, TestNet};

const PORT: u16 = 5201;

/// Polls `connections()` in `host` until `ready` holds, for at most 5 s.
fn wait_for(host: &Host, ready: impl Fn(&[Connection]) -> bool) -> Vec<Connection> {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let conns = host.run(connections).unwrap().expect("list connections");
        if ready(&conns) {
            return conns;
        }
        assert!(
            Instant::now() < deadline,
            "timed out; last listing: {conns:#?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_live_connection_with_two_subflows() {
    let net = TestNet::builder()
        .paths(2)
        .build()
        .unwrap_or_else(|e| panic!("this test needs a 2-path test network: {e}"));
    let (client, server) = (net.client(), net.server());
    let listener = server
        .run(|| ListenConfig::new().listen(("0.0.0.0", PORT)))
        .unwrap()
        .expect("listen");
    let server_addr = SocketAddr::new(server.addr(0).unwrap(), PORT);
    let mut stream = client
        .run(|| Dialer::new().dial(server_addr))
        .unwrap()
        .expect("dial");
    let (mut accepted, _) = listener.accept().expect("accept");
    stream.write_all(b"ping").unwrap();
    accepted.read_exact(&mut [0; 4]).unwrap();

    let conns = wait_for(client, |c| c.iter().any(|c| c.subflows.len() == 2));
    assert_eq!(conns.len(), 1, "{conns:#?}");
    let conn = &conns[0];
    println!("client:\n{conn}");
    assert_eq!(conn.state, TcpState::Established);
    assert_eq!(conn.local, stream.local_addr().unwrap());
    assert_eq!(conn.remote, server_addr);
    assert!(!conn.fallback());
    // The token is the one the socket itself reports.
    let info = stream.mptcp_info().unwrap().expect("MPTCP is active");
    assert_eq!(conn.token, Some(info.token));
    assert_eq!(conn.info.as_ref().unwrap().subflows, 1, "one extra subflow");
    // iproute2's `ss -M` (an independent reader of the same dump) agrees.
    let ss = client.exec("ss", ["-MHni"]).expect("ss -MHni (iproute2)");
    let ss = String::from_utf8_lossy(&ss.stdout);
    println!("ss -MHni:\n{ss}");
    assert!(
        ss.contains(&format!("{} {}", conn.local, conn.remote)),
        "{ss}"
    );
    assert!(ss.contains(&format!("token:{:x}", info.token)), "{ss}");
    assert!(ss.contains("subflows:1 "), "{ss}");
    let mut locals: Vec<_> = conn.subflows.iter().map(|s| s.local.ip()).collect();
    locals.sort();
    assert_eq!(locals, [client.addr(0).unwrap(), client.addr(1).unwrap()]);
    for s in &conn.subflows {
        assert_eq!(s.remote, server_addr, "{s}");
        assert_eq!(s.state, TcpState::Established, "{s}");
    }
    let join = conn
        .subflows
        .iter()
        .find(|s| s.local.ip() == client.addr(1).unwrap())
        .unwrap();
    assert!(join.flags.is_join(), "{join}");
    assert_eq!(join.local_id, Some(1), "{join}");
    let first = conn
        .subflows
        .iter()
        .find(|s| s.local == conn.local)
        .unwrap();
    assert!(!first.flags.is_join(), "{first}");
    assert_eq!(first.local_id, Some(0), "{first}");

    // The server lists its listener and the accepted connection with both subflows.
    let conns = wait_for(server, |c| c.iter().any(|c| c.subflows.len() == 2));
    let l = conns
        .iter()
        .find(|c| c.is_listener())
        .expect("the listener");
    assert_eq!(l.local.port(), PORT);
    let c = conns.iter().find(|c| !c.is_listener()).unwrap();
    assert_eq!(c.remote, stream.local_addr().unwrap());
    assert_eq!(c.local, server_addr);
}

#[test]
fn a_fallen_back_connection_has_the_fallback_flag() {
    let ns = common::netns("conn-fallback");
    ns.run(|| {
        // A plain TCP server: the MPTCP client falls back at the handshake.
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let mut client = Dialer::new().dial(tcp.local_addr().unwrap()).unwrap();
        let (mut server, _) = tcp.accept().unwrap();
        client.write_all(b"ping").unwrap();
        server.read_exact(&mut [0; 4]).unwrap();
        // And an MPTCP connection beside it, which did not fall back.
        let mptcp = ListenConfig::new().listen("127.0.0.1:0").unwrap();
        let active = Dialer::new().dial(mptcp.local_addr().unwrap()).unwrap();
        let _accepted = mptcp.accept().unwrap();

        let conns = connections().unwrap();
        println!("{conns:#?}");
        let fell_back = conns
            .iter()
            .find(|c| c.local == client.local_addr().unwrap())
            .expect("the fallen-back socket is listed");
        assert!(fell_back.fallback(), "{fell_back:#?}");
        assert!(fell_back.to_string().contains("fallback"), "{fell_back}");
        let ok = conns
            .iter()
            .find(|c| c.local == active.local_addr().unwrap())
            .expect("the active socket is listed");
        assert!(!ok.fallback(), "{ok:#?}");
        assert_eq!(ok.subflows.len(), 1, "{ok:#?}");
    })
    .unwrap();
}

/// An IPv6 connection that the server's announcements give an IPv4 subflow too:
/// listed with subflows of both families (the IPv4 dump is made for it).
#[test]
fn an_ipv6_connection_with_subflows_of_both_families() {
    let net = TestNet::builder()
        .paths(2)
        .ipv4(true)
        .ipv6(true)
        .endpoints(mptcp_testnet::Endpoints::ServerSignal)
        .build()
        .unwrap_or_else(|e| panic!("this test needs a dual-stack 2-path test network: {e}"));
    let (client, server) = (net.client(), net.server());
    let listener = server
        .run(|| ListenConfig::new().listen(("::", PORT + 1)))
        .unwrap()
        .expect("listen on [::]");
    let server_addr = SocketAddr::new(server.addr6(0).unwrap(), PORT + 1);
    let mut stream = client
        .run(|| Dialer::new().dial(server_addr))
        .unwrap()
        .expect("dial");
    let (mut accepted, _) = listener.accept().expect("accept");
    stream.write_all(b"ping").unwrap();
    accepted.read_exact(&mut [0; 4]).unwrap();
    accepted.write_all(b"pong").unwrap();
    stream.read_exact(&mut [0; 4]).unwrap();

    let both = |c: &Connection| {
        c.subflows.iter().any(|s| s.local.is_ipv4()) && c.subflows.iter().any(|s| s.local.is_ipv6())
    };
    // Every subflow the socket itself reports is listed.
    let complete = |c: &Connection| both(c) && c.subflows.len() == stream.subflows().unwrap().len();
    let conns = wait_for(client, |c| c.iter().any(complete));
    let conn = conns.iter().find(|c| complete(c)).unwrap();
    assert!(conn.local.is_ipv6(), "{conn}");
    assert_eq!(conn.remote, server_addr);
}

#[test]
fn listeners_lists_mptcp_listeners_only() {
    let ns = common::netns("conn-listeners");
    ns.run(|| {
        let wildcard = ListenConfig::new().listen("0.0.0.0:0").unwrap();
        let bound = ListenConfig::new().listen("127.0.0.1:0").unwrap();
        let v6 = ListenConfig::new().listen("[::1]:0").unwrap();
        // Neither a plain TCP listener nor a connection counts.
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let _conn = Dialer::new().dial(bound.local_addr().unwrap()).unwrap();
        let _accepted = bound.accept().unwrap();

        let mut got = mptcp_netlink::listeners().unwrap();
        got.sort();
        let mut want = vec![
            wildcard.local_addr().unwrap(),
            bound.local_addr().unwrap(),
            v6.local_addr().unwrap(),
        ];
        want.sort();
        assert_eq!(got, want, "plain TCP listener {:?}", tcp.local_addr());
    })
    .unwrap();
}

/// `abort_subflow` resets the one subflow it names: the subflow is gone from the
/// connection (which, being MPTCP, stays open for others), and a second abort of
/// the same socket is `ENOENT`.
#[test]
fn abort_subflow_resets_the_subflow_it_names() {
    let ns = common::netns("conn-abort");
    ns.run(|| {
        let listener = ListenConfig::new().listen("127.0.0.1:0").unwrap();
        let client = Dialer::new().dial(listener.local_addr().unwrap()).unwrap();
        let (server, _) = listener.accept().unwrap();
        (&client).write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        (&server).read_exact(&mut b).unwrap();
        let local = client.local_addr().unwrap();
        let subflows_of_client = || {
            connections()
                .unwrap()
                .into_iter()
                .filter(|c| c.local == local)
                .flat_map(|c| c.subflows)
                .collect::<Vec<_>>()
        };
        let subflow = subflows_of_client()
            .into_iter()
            .find(|s| s.local == local)
            .expect("the client's initial subflow");
        mptcp_netlink::abort_subflow(&subflow).unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while subflows_of_client()
            .iter()
            .any(|s| s.local == local && s.state != TcpState::Close)
        {
            assert!(
                Instant::now() < deadline,
                "the aborted subflow is still there"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let again = mptcp_netlink::abort_subflow(&subflow).unwrap_err();
        assert_eq!(again.errno(), Some(libc::ENOENT), "{again}");
    })
    .unwrap();
}
