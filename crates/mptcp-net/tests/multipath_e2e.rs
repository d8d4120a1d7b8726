//! End-to-end proof on a real multipath network (mptcp-testnet: client and
//! server namespaces joined by shaped veth paths), through mptcp-net's
//! public API: aggregation, failover, backup path, a middlebox that strips
//! MPTCP, plain TCP peers, `net.mptcp.enabled=0`; IPv4 and IPv6.
//!
//! Every test prints what it measured. Throughput figures are ratios taken
//! side by side in the same test. Needs root, iproute2, iptables and MPTCP.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{receive_range, receive_verified, send_for, send_range, Block, Received};
use mptcp_net::info::SubflowInfo;
use mptcp_net::{Dialer, ListenConfig, MptcpExt, MptcpStatus, TcpState};
use mptcp_testnet::{Endpoints, TestNet};

const RATE_MBIT: u32 = 50;
const MEASURE: Duration = Duration::from_secs(2);
/// What the functional (unshaped) tests send: enough to cross every path.
const UNSHAPED_BYTES: u64 = 20_000_000;

fn build(b: mptcp_testnet::TestNetBuilder) -> TestNet {
    b.build()
        .unwrap_or_else(|e| panic!("cannot build the test network: {e}"))
}

fn two_paths(ipv6: bool) -> TestNet {
    build(
        TestNet::builder()
            .paths(2)
            .rate_mbit(RATE_MBIT)
            .ipv4(!ipv6)
            .ipv6(ipv6),
    )
}

fn family(ipv6: bool) -> &'static str {
    if ipv6 {
        "IPv6"
    } else {
        "IPv4"
    }
}

fn client_ip(net: &TestNet, path: usize, ipv6: bool) -> Option<std::net::IpAddr> {
    if ipv6 {
        net.client().addr6(path)
    } else {
        net.client().addr(path)
    }
}

/// A connection made through the test network: client side, server side,
/// and the listener, kept open: the extra subflows' MP_JOINs are accepted
/// through it, so closing it would stop new subflows.
struct Conn {
    client: TcpStream,
    server: TcpStream,
    _listener: std::net::TcpListener,
}

/// Listens on the server's wildcard address (joins to its other addresses
/// need it), dials the server's path-0 address from the client, and does a
/// first exchange, after which the client's path manager adds subflows.
fn connect(net: &TestNet, ipv6: bool, dialer: &Dialer, listen: &ListenConfig) -> Conn {
    let wildcard: SocketAddr = if ipv6 { "[::]:0" } else { "0.0.0.0:0" }.parse().unwrap();
    let listener = net
        .server()
        .run(|| listen.listen(wildcard))
        .unwrap()
        .unwrap();
    let ip = if ipv6 {
        net.server().addr6(0)
    } else {
        net.server().addr(0)
    };
    let target = SocketAddr::new(ip.unwrap(), listener.local_addr().unwrap().port());
    let mut client = net.client().run(|| dialer.dial(target)).unwrap().unwrap();
    let (mut server, _) = listener.accept().unwrap();
    client.write_all(b"ping").unwrap();
    let mut buf = [0u8; 4];
    server.read_exact(&mut buf).unwrap();
    server.write_all(b"pong").unwrap();
    client.read_exact(&mut buf).unwrap();
    Conn {
        client,
        server,
        _listener: listener,
    }
}

fn mptcp() -> Dialer {
    Dialer::new()
}

fn tcp() -> Dialer {
    let mut d = Dialer::new();
    d.set_multipath_tcp(false);
    d
}

/// Waits (bounded) until the client has `n` established subflows.
fn wait_subflows(conn: &Conn, n: usize) -> Vec<SubflowInfo> {
    let start = Instant::now();
    loop {
        let sfs = conn.client.subflows().unwrap();
        let up = sfs
            .iter()
            .filter(|s| s.tcp.state == TcpState::Established)
            .count();
        if up >= n || start.elapsed() > Duration::from_secs(5) {
            assert!(up >= n, "expected {n} subflows, have {sfs:?}");
            return sfs;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Dir {
    Upload,
    Download,
}

/// One timed bulk transfer in `dir`; returns what the receiver saw and the
/// per-subflow byte counts seen from the client.
fn bulk(conn: &Conn, dir: Dir, block: &Block, limit: u64) -> (Received, Vec<u64>) {
    let (sender, receiver) = match dir {
        Dir::Upload => (&conn.client, &conn.server),
        Dir::Download => (&conn.server, &conn.client),
    };
    let (sent, received) = std::thread::scope(|s| {
        let tx = s.spawn(|| send_for(sender, block, MEASURE, limit));
        let rx = receive_verified(receiver, block).expect("receive");
        (tx.join().unwrap().expect("send"), rx)
    });
    assert_eq!(sent, received.bytes, "every byte sent arrived, verified");
    let per_subflow = conn
        .client
        .subflows()
        .unwrap()
        .iter()
        .map(|s| match dir {
            Dir::Upload => s.tcp.bytes_acked.unwrap_or(0),
            Dir::Download => s.tcp.bytes_received.unwrap_or(0),
        })
        .collect();
    (received, per_subflow)
}

fn aggregation(ipv6: bool) {
    let net = two_paths(ipv6);
    let block = Block::new();
    let lc = ListenConfig::new();
    for dir in [Dir::Upload, Dir::Download] {
        let plain = connect(&net, ipv6, &tcp(), &lc);
        assert_eq!(plain.client.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
        let (tcp_rx, _) = bulk(&plain, dir, &block, u64::MAX);

        let multi = connect(&net, ipv6, &mptcp(), &lc);
        wait_subflows(&multi, 2);
        let (mp_rx, per_subflow) = bulk(&multi, dir, &block, u64::MAX);
        assert_eq!(multi.client.mptcp_status().unwrap(), MptcpStatus::Active);
        assert_eq!(multi.server.mptcp_status().unwrap(), MptcpStatus::Active);

        let ratio = mp_rx.mbit_per_s() / tcp_rx.mbit_per_s();
        let total: u64 = per_subflow.iter().sum();
        let shares: Vec<f64> = per_subflow
            .iter()
            .map(|b| *b as f64 / total.max(1) as f64)
            .collect();
        println!(
            "{} {dir:?}, 2 x {RATE_MBIT} Mbit/s: TCP {:.1} Mbit/s, MPTCP {:.1} Mbit/s, \
             ratio {ratio:.2}, MPTCP = {:.0}% of the sum of link rates, subflow shares {:?}",
            family(ipv6),
            tcp_rx.mbit_per_s(),
            mp_rx.mbit_per_s(),
            mp_rx.mbit_per_s() * 100.0 / (2 * RATE_MBIT) as f64,
            shares
                .iter()
                .map(|s| format!("{:.0}%", s * 100.0))
                .collect::<Vec<_>>()
        );
        assert!(ratio >= 1.6, "MPTCP/TCP = {ratio:.2}, want >= 1.6");
        assert_eq!(shares.len(), 2, "{per_subflow:?}");
        for s in &shares {
            assert!(*s >= 0.25, "a subflow carried {:.0}% (< 25%)", s * 100.0);
        }
    }
}

#[test]
fn aggregation_ipv4() {
    aggregation(false);
}

#[test]
fn aggregation_ipv6() {
    aggregation(true);
}

/// Path 0 (the one the connection started on) goes down mid-transfer.
fn failover(ipv6: bool) {
    let net = two_paths(ipv6);
    let block = Block::new();
    let conn = connect(&net, ipv6, &mptcp(), &ListenConfig::new());
    wait_subflows(&conn, 2);
    let n: u64 = 12_000_000;
    let cut_after = Duration::from_millis(500);
    let received = std::thread::scope(|s| {
        let tx = s.spawn(|| send_range(&conn.client, &block, 0, n));
        let cut = s.spawn(|| {
            std::thread::sleep(cut_after);
            net.path_down(0).unwrap();
            Instant::now()
        });
        let rx = receive_range(&conn.server, &block, 0, n).expect("transfer completes");
        tx.join().unwrap().expect("send");
        cut.join().unwrap();
        rx
    });
    let sfs = conn.client.subflows().unwrap();
    println!(
        "{} failover: {n} bytes byte-exact in {:.2} s ({:.1} Mbit/s); path 0 down at {cut_after:?}; \
         longest stall {:.0} ms (ending {:.2} s into the transfer); subflows after: {:?}",
        family(ipv6),
        received.elapsed.as_secs_f64(),
        received.mbit_per_s(),
        received.max_gap.as_secs_f64() * 1000.0,
        received.max_gap_at.as_secs_f64(),
        sfs.iter()
            .map(|s| (s.local, s.tcp.state, s.tcp.bytes_acked))
            .collect::<Vec<_>>()
    );
    assert_eq!(received.bytes, n);
    assert_eq!(conn.client.mptcp_status().unwrap(), MptcpStatus::Active);
    // The stall is reported, not asserted: it is a measurement.
}

#[test]
fn failover_ipv4() {
    failover(false);
}

#[test]
fn failover_ipv6() {
    failover(true);
}

#[test]
fn backup_path_carries_traffic_only_after_the_first_fails() {
    let net = build(
        TestNet::builder()
            .paths(2)
            .rate_mbit(RATE_MBIT)
            .endpoints(Endpoints::ClientSubflow)
            .backup_path(1),
    );
    let block = Block::new();
    let conn = connect(&net, false, &mptcp(), &ListenConfig::new());
    let sfs = wait_subflows(&conn, 2);
    let backup_ip = client_ip(&net, 1, false);
    let is_backup = |s: &SubflowInfo| s.local.map(|a| a.ip()) == backup_ip;
    assert!(sfs.iter().any(is_backup), "backup subflow present: {sfs:?}");
    let acked_on_backup = |c: &Conn| -> u64 {
        c.client
            .subflows()
            .unwrap()
            .iter()
            .filter(|s| is_backup(s))
            .map(|s| s.tcp.bytes_acked.unwrap_or(0))
            .sum()
    };

    // Phase 1: both paths up; the backup path stays (nearly) idle.
    let n1: u64 = 4_000_000;
    std::thread::scope(|s| {
        let tx = s.spawn(|| send_range(&conn.client, &block, 0, n1));
        receive_range(&conn.server, &block, 0, n1).expect("phase 1");
        tx.join().unwrap().expect("send");
    });
    let phase1_backup = acked_on_backup(&conn);

    // Phase 2: path 0 fails; the backup carries the rest, byte-exact.
    net.path_down(0).unwrap();
    let n2: u64 = 4_000_000;
    let rx = std::thread::scope(|s| {
        let tx = s.spawn(|| send_range(&conn.client, &block, n1, n2));
        let rx = receive_range(&conn.server, &block, n1, n2).expect("phase 2");
        tx.join().unwrap().expect("send");
        rx
    });
    let phase2_backup = acked_on_backup(&conn) - phase1_backup;
    println!(
        "backup: phase 1 ({n1} bytes, both paths up): {phase1_backup} bytes on the backup path \
         ({:.1}%); phase 2 ({n2} bytes, path 0 down): {phase2_backup} bytes on the backup path, \
         longest stall {:.0} ms, {:.1} Mbit/s",
        phase1_backup as f64 * 100.0 / n1 as f64,
        rx.max_gap.as_secs_f64() * 1000.0,
        rx.mbit_per_s()
    );
    assert!(
        (phase1_backup as f64) < 0.05 * n1 as f64,
        "the backup path carried {phase1_backup} of {n1} bytes while the first path was up"
    );
    assert!(
        phase2_backup as f64 >= 0.95 * n2 as f64,
        "the backup path carried only {phase2_backup} of {n2} bytes after the first failed"
    );
}

fn middlebox(ipv6: bool) {
    let net = build(TestNet::builder().paths(2).ipv4(!ipv6).ipv6(ipv6));
    net.set_strip_mptcp(true).unwrap();
    let before = net.client().counters().unwrap();
    let block = Block::new();
    let conn = connect(&net, ipv6, &mptcp(), &ListenConfig::new());
    let after = net.client().counters().unwrap();
    let fallback = after.mptcp("MPCapableFallbackSYNACK") - before.mptcp("MPCapableFallbackSYNACK");
    let client_status = conn.client.mptcp_status().unwrap();
    let server_status = conn.server.mptcp_status().unwrap();
    let (rx, _) = bulk(&conn, Dir::Upload, &block, UNSHAPED_BYTES);
    println!(
        "{} middlebox stripping option 30 towards the server: client {client_status}, \
         server {server_status}, MPCapableFallbackSYNACK +{fallback}, {} bytes verified",
        family(ipv6),
        rx.bytes
    );
    assert_eq!(client_status, MptcpStatus::FellBack);
    // The server never saw the MPTCP option: to it the client is plain TCP.
    assert_eq!(server_status, MptcpStatus::PlainTcp);
    assert!(fallback >= 1, "the client's fallback counter rose");
    assert_eq!(conn.client.mptcp_info().unwrap(), None);
    assert_eq!(conn.client.subflows().unwrap().len(), 1);
}

#[test]
fn middlebox_ipv4() {
    middlebox(false);
}

#[test]
fn middlebox_ipv6() {
    middlebox(true);
}

/// A middlebox that strips the option from what the *client* receives: the
/// server saw MPTCP in the SYN but not in the third ACK, so both ends fall
/// back during the handshake (both fallback counters rise). The kernel then
/// hands the server's application a plain TCP socket from `accept()`.
#[test]
fn middlebox_on_the_return_path_makes_both_ends_fall_back() {
    let net = build(TestNet::builder().paths(1));
    let rule = [
        "-t",
        "mangle",
        "-A",
        "PREROUTING",
        "-p",
        "tcp",
        "-j",
        "TCPOPTSTRIP",
        "--strip-options",
        "30",
    ];
    let out = net.client().exec("iptables", rule).unwrap();
    assert!(out.status.success(), "iptables: {out:?}");
    let c0 = net.client().counters().unwrap();
    let s0 = net.server().counters().unwrap();
    let block = Block::new();
    let conn = connect(&net, false, &mptcp(), &ListenConfig::new());
    let (rx, _) = bulk(&conn, Dir::Download, &block, UNSHAPED_BYTES);
    let c1 = net.client().counters().unwrap();
    let s1 = net.server().counters().unwrap();
    let client_fb = c1.mptcp("MPCapableFallbackSYNACK") - c0.mptcp("MPCapableFallbackSYNACK");
    let server_fb = s1.mptcp("MPCapableFallbackACK") - s0.mptcp("MPCapableFallbackACK");
    println!(
        "return-path middlebox: client {}, server {}, client MPCapableFallbackSYNACK +{client_fb}, \
         server MPCapableFallbackACK +{server_fb}, {} bytes verified",
        conn.client.mptcp_status().unwrap(),
        conn.server.mptcp_status().unwrap(),
        rx.bytes
    );
    assert_eq!(conn.client.mptcp_status().unwrap(), MptcpStatus::FellBack);
    assert_eq!(conn.server.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
    assert!(client_fb >= 1, "client fell back on the SYN-ACK");
    assert!(server_fb >= 1, "server fell back on the third ACK");
}

#[test]
fn plain_tcp_peers_over_the_network() {
    let net = build(TestNet::builder().paths(2));
    let mut plain_listen = ListenConfig::new();
    plain_listen.set_multipath_tcp(false);
    let conn = connect(&net, false, &mptcp(), &plain_listen);
    assert_eq!(conn.client.mptcp_status().unwrap(), MptcpStatus::FellBack);
    assert_eq!(conn.server.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
    let conn = connect(&net, false, &tcp(), &ListenConfig::new());
    assert_eq!(conn.client.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
    assert_eq!(conn.server.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
    let block = Block::new();
    let (rx, _) = bulk(&conn, Dir::Upload, &block, UNSHAPED_BYTES);
    assert!(rx.bytes > 0);
}

#[test]
fn mptcp_disabled_on_the_client() {
    let net = build(TestNet::builder().paths(2));
    net.client().set_sysctl("net.mptcp.enabled", "0").unwrap();
    let conn = connect(&net, false, &mptcp(), &ListenConfig::new());
    assert_eq!(conn.client.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
    assert_eq!(conn.server.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
    let mut required = Dialer::new();
    required.require_multipath_tcp(true);
    let target = SocketAddr::new(net.server().addr(0).unwrap(), 9);
    let err = net
        .client()
        .run(|| required.dial(target))
        .unwrap()
        .unwrap_err();
    println!("required dial with net.mptcp.enabled=0: {err}");
    assert_eq!(err.kind(), std::io::ErrorKind::Unsupported);
    assert!(err.to_string().contains("net.mptcp.enabled=0"), "{err}");
}
