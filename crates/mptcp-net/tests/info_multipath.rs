//! `subflows()` and `mptcp_info()` on a real two-path network (mptcp-testnet:
//! two namespaces joined by two shaped veth paths, client `subflow`
//! endpoint on path 1). Needs root, iproute2 and MPTCP.

mod common;

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mptcp_net::info::SubflowInfo;
use mptcp_net::{Dialer, ListenConfig, MptcpExt};
use mptcp_testnet::TestNet;

const RATE_MBIT: u32 = 50;

fn net(ipv6: bool) -> TestNet {
    TestNet::builder()
        .paths(2)
        .rate_mbit(RATE_MBIT)
        .ipv4(!ipv6)
        .ipv6(ipv6)
        .build()
        .unwrap_or_else(|e| panic!("cannot build the test network: {e}"))
}

fn server_addr(net: &TestNet, ipv6: bool, port: u16) -> SocketAddr {
    let ip = if ipv6 {
        net.server().addr6(0)
    } else {
        net.server().addr(0)
    };
    SocketAddr::new(ip.expect("server address on path 0"), port)
}

/// Polls `subflows()` until `pred` holds; bounded in time.
fn wait_for(
    stream: &TcpStream,
    limit: Duration,
    pred: impl Fn(&[SubflowInfo]) -> bool,
) -> (Vec<SubflowInfo>, Duration) {
    let start = Instant::now();
    loop {
        let sfs = stream.subflows().unwrap();
        if pred(&sfs) || start.elapsed() > limit {
            return (sfs, start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn established(sfs: &[SubflowInfo]) -> usize {
    sfs.iter()
        .filter(|s| s.tcp.state == mptcp_net::TcpState::Established)
        .count()
}

fn two_subflows_share_the_bytes(ipv6: bool) {
    let net = net(ipv6);
    let wildcard: SocketAddr = if ipv6 { "[::]:0" } else { "0.0.0.0:0" }.parse().unwrap();
    let listener = net
        .server()
        .run(|| ListenConfig::new().listen(wildcard))
        .unwrap()
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let target = server_addr(&net, ipv6, port);
    let mut client = net
        .client()
        .run(|| Dialer::new().dial(target))
        .unwrap()
        .unwrap();
    let (mut server, _) = listener.accept().unwrap();
    // The client's path manager adds subflows once the connection is fully
    // established, which takes a first exchange of data.
    client.write_all(b"ping").unwrap();
    let mut ping = [0u8; 4];
    server.read_exact(&mut ping).unwrap();
    server.write_all(b"pong").unwrap();
    client.read_exact(&mut ping).unwrap();

    let (sfs, took) = wait_for(&client, Duration::from_secs(5), |s| established(s) == 2);
    assert_eq!(established(&sfs), 2, "second subflow never came: {sfs:?}");
    println!("second subflow established after {took:?}");

    // ~1.5 s of traffic at the sum of both rates.
    let n = (2 * RATE_MBIT as usize) * 1_000_000 / 8 * 3 / 2;
    let data = common::pattern(n);
    let reader = std::thread::spawn(move || {
        let mut got = vec![0u8; n];
        server.read_exact(&mut got).unwrap();
        server.write_all(b"done").unwrap();
        (server, got)
    });
    let start = Instant::now();
    client.write_all(&data).unwrap();
    let mut done = [0u8; 4];
    client.read_exact(&mut done).unwrap();
    let secs = start.elapsed().as_secs_f64();
    let (server, got) = reader.join().unwrap();
    common::assert_same(&got, &data, "bulk transfer");

    let sfs = client.subflows().unwrap();
    assert_eq!(sfs.len(), 2, "{sfs:?}");
    let locals: Vec<IpAddr> = sfs.iter().map(|s| s.local.unwrap().ip()).collect();
    assert_ne!(locals[0], locals[1], "distinct local addresses: {locals:?}");
    let ids: Vec<Option<u32>> = sfs.iter().map(|s| s.id).collect();
    assert!(ids.iter().all(Option::is_some), "{ids:?}");
    let acked: Vec<u64> = sfs.iter().map(|s| s.tcp.bytes_acked.unwrap()).collect();
    let total: u64 = acked.iter().sum();
    println!(
        "{}: {n} bytes in {secs:.2} s = {:.1} Mbit/s over 2 x {RATE_MBIT} Mbit/s; per subflow {:?} bytes ({:.0}% / {:.0}%)",
        if ipv6 { "IPv6" } else { "IPv4" },
        n as f64 * 8.0 / secs / 1e6,
        acked,
        acked[0] as f64 * 100.0 / total as f64,
        acked[1] as f64 * 100.0 / total as f64,
    );
    for (sf, bytes) in sfs.iter().zip(&acked) {
        assert!(
            *bytes as f64 >= 0.2 * n as f64,
            "subflow {:?} -> {:?} carried only {bytes} of {n} bytes",
            sf.local,
            sf.remote
        );
    }

    // Connection-level counters agree with what the application wrote
    // (the 4-byte ping, then the bulk data; all of it acked by now).
    let written = n as u64 + 4;
    let ci = client.mptcp_info().unwrap().unwrap();
    assert_eq!(ci.bytes_sent, Some(written));
    assert_eq!(ci.bytes_acked, Some(written));
    assert_eq!(ci.bytes_received, Some(8), "pong and done");
    assert_eq!(ci.subflows, 1, "one extra subflow");
    assert_eq!(ci.subflows_total, Some(2));
    let si = server.mptcp_info().unwrap().unwrap();
    assert_eq!(si.bytes_received, Some(written));
    assert_eq!(si.token != 0, ci.token != 0);
    // The subflow counters cover at least the data (headers of the DSS
    // mapping and retransmissions can add a little).
    assert!(total >= n as u64, "subflows acked {total} < {n}");
    assert_eq!(server.subflows().unwrap().len(), 2);

    // Path 1 goes down under traffic: once TCP gives up on its subflow
    // (tcp_retries2 lowered in the client namespace, so in seconds rather
    // than the default quarter of an hour), the subflow leaves the list and
    // the data still arrives, over path 0.
    net.client()
        .set_sysctl("net.ipv4.tcp_retries2", "3")
        .unwrap();
    net.path_down(1).unwrap();
    let more = common::pattern(2_000_000);
    let mut server = server;
    let expected = more.clone();
    let reader = std::thread::spawn(move || {
        let mut got = vec![0u8; expected.len()];
        server.read_exact(&mut got).unwrap();
        server.write_all(b"done").unwrap();
        got
    });
    client.write_all(&more).unwrap();
    client.read_exact(&mut done).unwrap();
    common::assert_same(&reader.join().unwrap(), &more, "transfer after path loss");
    let (sfs, took) = wait_for(&client, Duration::from_secs(30), |s| s.len() == 1);
    println!(
        "after path 1 went down: {} subflow(s) after {took:?}: {:?}",
        sfs.len(),
        sfs.iter()
            .map(|s| (s.local, s.tcp.state))
            .collect::<Vec<_>>()
    );
    assert_eq!(sfs.len(), 1, "the dead path's subflow is gone: {sfs:?}");
    let path0 = if ipv6 {
        net.client().addr6(0)
    } else {
        net.client().addr(0)
    };
    assert_eq!(sfs[0].local.map(|a| a.ip()), path0);
}

#[test]
fn two_subflows_share_the_bytes_ipv4() {
    two_subflows_share_the_bytes(false);
}

#[test]
fn two_subflows_share_the_bytes_ipv6() {
    two_subflows_share_the_bytes(true);
}
