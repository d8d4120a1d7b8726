//! TCP keep-alive on by default like Go's, on MPTCP and TCP sockets: the options
//! read back from the sockets, and a peer that vanishes is found in
//! idle + interval x count.

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mptcp_net::{Dialer, KeepAliveConfig, ListenConfig, MptcpExt, MptcpStatus};
use mptcp_testnet::{Endpoints, TestNet};
use socket2::SockRef;

fn config(idle: u64, interval: u64, count: u32) -> KeepAliveConfig {
    KeepAliveConfig {
        enable: true,
        idle: Some(Duration::from_secs(idle)),
        interval: Some(Duration::from_secs(interval)),
        count: Some(count),
    }
}

/// (on, idle, interval, count) as the kernel reports them.
fn read_back(s: &TcpStream) -> (bool, u64, u64, u32) {
    let r = SockRef::from(s);
    (
        r.keepalive().unwrap(),
        r.tcp_keepalive_time().unwrap().as_secs(),
        r.tcp_keepalive_interval().unwrap().as_secs(),
        r.tcp_keepalive_retries().unwrap(),
    )
}

#[test]
fn options_read_back_on_mptcp_and_tcp_sockets_and_accepted_ones_inherit() {
    for mptcp in [true, false] {
        let mut lc = ListenConfig::new();
        lc.set_multipath_tcp(mptcp)
            .set_keep_alive_config(config(7, 3, 4));
        let listener = lc.listen("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let mut d = Dialer::new();
        d.set_multipath_tcp(mptcp)
            .set_keep_alive_config(config(5, 2, 3));
        let client = d.dial(addr).unwrap();
        let (server, _) = listener.accept().unwrap();
        let want = if mptcp {
            MptcpStatus::Active
        } else {
            MptcpStatus::PlainTcp
        };
        // Still MPTCP: no option was refused and made the dial fall back to TCP.
        assert_eq!(client.mptcp_status().unwrap(), want);
        assert_eq!(server.mptcp_status().unwrap(), want);
        assert_eq!(read_back(&client), (true, 5, 2, 3), "mptcp {mptcp}");
        assert_eq!(
            read_back(&server),
            (true, 7, 3, 4),
            "accepted, mptcp {mptcp}"
        );

        // Defaults: Go's 15 s, 15 s; 9 probes, the kernel's count (not set).
        let mut d = Dialer::new();
        d.set_multipath_tcp(mptcp);
        let c = d.dial(addr).unwrap();
        listener.accept().unwrap();
        assert_eq!(read_back(&c), (true, 15, 15, 9), "defaults, mptcp {mptcp}");

        // Off, and Go's single-period form.
        d.set_keep_alive(None);
        let c = d.dial(addr).unwrap();
        listener.accept().unwrap();
        assert!(!SockRef::from(&c).keepalive().unwrap());
        d.set_keep_alive(Some(Duration::from_secs(4)));
        let c = d.dial(addr).unwrap();
        listener.accept().unwrap();
        assert_eq!(read_back(&c), (true, 4, 4, 9));
    }
}

#[test]
fn async_dial_and_listen_set_it_too() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let listener = ListenConfig::new()
            .listen_async("127.0.0.1:0")
            .await
            .unwrap();
        let mut d = Dialer::new();
        d.set_keep_alive_config(config(6, 2, 5));
        let c = d.dial_async(listener.local_addr().unwrap()).await.unwrap();
        let (s, _) = listener.accept().await.unwrap();
        assert_eq!(c.mptcp_status().unwrap(), MptcpStatus::Active);
        let r = SockRef::from(&c);
        assert!(r.keepalive().unwrap());
        assert_eq!(r.tcp_keepalive_time().unwrap(), Duration::from_secs(6));
        assert_eq!(r.tcp_keepalive_retries().unwrap(), 5);
        assert!(SockRef::from(&s).keepalive().unwrap());
    });
}

/// The peer's link goes down with no RST: the idle connection is dropped by
/// keep-alive after about idle + interval x count (1 + 1 x 2 = 3 s), MPTCP and TCP.
#[test]
fn a_vanished_peer_is_found_in_idle_plus_interval_times_count() {
    let net = TestNet::builder()
        .paths(1)
        .ipv6(false)
        .endpoints(Endpoints::None)
        .build()
        .unwrap_or_else(|e| panic!("this test needs a test network (root, iproute2): {e}"));
    let server_addr = net.server().addr(0).unwrap();
    let mut streams = Vec::new();
    for (i, mptcp) in [true, false].into_iter().enumerate() {
        let port = 7300 + i as u16;
        let listener = net
            .server()
            .run(|| {
                let mut lc = ListenConfig::new();
                lc.set_multipath_tcp(mptcp).set_keep_alive(None);
                lc.listen(("0.0.0.0", port)).unwrap()
            })
            .unwrap();
        let client = net
            .client()
            .run(|| {
                let mut d = Dialer::new();
                d.set_multipath_tcp(mptcp)
                    .set_keep_alive_config(config(1, 1, 2));
                d.dial((server_addr, port)).unwrap()
            })
            .unwrap();
        let (mut server, _) = listener.accept().unwrap();
        (&client).write_all(b"x").unwrap();
        let mut b = [0u8; 1];
        server.read_exact(&mut b).unwrap();
        // Kept open (not dropped) until the end: a close would send a FIN.
        streams.push((mptcp, client, server, listener));
    }
    let idle_from = Instant::now();
    let out = net
        .server()
        .command("ip")
        .args(["link", "set", "dev", "p0", "down"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // TCP: the blocked read fails with ETIMEDOUT. MPTCP: keep-alive runs on the
    // subflows, and the dead one is closed; the connection itself stays open
    // without subflows (the kernel does not pass a subflow's error to a connection
    // that really is MPTCP: a path manager may still add a subflow).
    let (_, tcp_client, _, _) = streams.iter().find(|s| !s.0).unwrap();
    let tcp_client = tcp_client.try_clone().unwrap();
    let tcp = std::thread::spawn(move || {
        tcp_client
            .set_read_timeout(Some(Duration::from_secs(15)))
            .unwrap();
        let mut b = [0u8; 1];
        let r = (&tcp_client).read(&mut b);
        (r.map_err(|e| e.kind()), idle_from.elapsed())
    });
    let (_, mptcp_client, _, _) = streams.iter().find(|s| s.0).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mptcp_after = loop {
        // The first subflow stays listed (in state close) while the connection lives.
        let open = mptcp_client
            .subflows()
            .unwrap()
            .iter()
            .filter(|sf| sf.tcp.state != mptcp_net::TcpState::Close)
            .count();
        if open == 0 {
            break idle_from.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "the MPTCP subflow was never dropped"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let (result, tcp_after) = tcp.join().unwrap();
    eprintln!("TCP: {result:?} after {tcp_after:?}; MPTCP: subflow closed after {mptcp_after:?}");
    assert_eq!(
        result.map(|_| ()),
        Err(ErrorKind::TimedOut),
        "TCP: a keep-alive timeout"
    );
    for (what, after) in [("TCP", tcp_after), ("MPTCP subflow", mptcp_after)] {
        assert!(
            after >= Duration::from_millis(2500) && after <= Duration::from_millis(5000),
            "{what}: dropped after {after:?}, expected about 3 s"
        );
    }
    assert_eq!(mptcp_client.mptcp_status().unwrap(), MptcpStatus::Active);
}
