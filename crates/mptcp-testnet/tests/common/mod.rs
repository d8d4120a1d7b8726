//! Helpers shared by the integration tests: plain TCP over std sockets, with every
//! wait bounded.

#![allow(dead_code)] // each test file uses its own subset

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use mptcp_testnet::{Netns, TestNet, TestNetBuilder};
use rustix::net::{ipproto, sockopt, AddressFamily, SocketType};

/// Builds the network or fails the test, saying why (not root, tool missing, ...).
pub fn build(builder: TestNetBuilder) -> TestNet {
    builder
        .build()
        .unwrap_or_else(|e| panic!("cannot build the test network: {e}"))
}

/// A namespace or a failed test that says why.
pub fn netns(label: &str) -> Netns {
    Netns::new(label).unwrap_or_else(|e| panic!("cannot create a namespace: {e}"))
}

/// A TCP listener on `addr`, created inside `ns`.
pub fn listen(ns: &Netns, addr: SocketAddr) -> TcpListener {
    ns.run(|| TcpListener::bind(addr))
        .expect("enter namespace")
        .unwrap_or_else(|e| panic!("bind {addr} in {}: {e}", ns.name()))
}

/// A TCP connection from `local` (any port) to `remote`, made inside `ns`; connect
/// gives up after `timeout` (SO_SNDTIMEO bounds connect on Linux).
pub fn connect_from(
    ns: &Netns,
    local: IpAddr,
    remote: SocketAddr,
    timeout: Duration,
) -> io::Result<TcpStream> {
    ns.run(|| {
        let family = match remote {
            SocketAddr::V4(_) => AddressFamily::INET,
            SocketAddr::V6(_) => AddressFamily::INET6,
        };
        let fd = rustix::net::socket(family, SocketType::STREAM, Some(ipproto::TCP))?;
        sockopt::set_socket_timeout(&fd, sockopt::Timeout::Send, Some(timeout))?;
        rustix::net::bind(&fd, &SocketAddr::new(local, 0))?;
        rustix::net::connect(&fd, &remote)?;
        Ok(TcpStream::from(fd))
    })
    .expect("enter namespace")
}

/// Connects from `local` to `remote` (at the listener's port) and checks that the
/// server sees `local` as the peer (no address rewriting anywhere), then exchanges a
/// few bytes.
pub fn assert_reachable(ns: &Netns, local: IpAddr, remote: IpAddr, listener: &TcpListener) {
    let port = listener.local_addr().expect("listener address").port();
    let remote = SocketAddr::new(remote, port);
    let mut client = connect_from(ns, local, remote, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("{local} -> {remote} should connect: {e}"));
    // The connection is established, so accept returns at once.
    let (mut server, peer) = listener.accept().expect("accept");
    assert_eq!(peer.ip(), local, "server sees the client's path address");
    client.write_all(b"ping").expect("write");
    let mut buf = [0u8; 4];
    server
        .set_read_timeout(Some(Duration::from_secs(3)))
        .expect("timeout");
    server.read_exact(&mut buf).expect("read");
    assert_eq!(&buf, b"ping");
}

/// Sends as fast as possible from `local` to the listener; the receiver counts bytes
/// for `window` after the first one arrives, then closes. Returns Mbit/s.
pub fn measure_mbit(ns: &Netns, local: IpAddr, listener: &TcpListener, window: Duration) -> f64 {
    let remote = listener.local_addr().expect("listener address");
    let mut client = connect_from(ns, local, remote, Duration::from_secs(3))
        .unwrap_or_else(|e| panic!("{local} -> {remote} should connect: {e}"));
    let (mut server, _) = listener.accept().expect("accept");
    std::thread::scope(|s| {
        s.spawn(move || {
            let chunk = vec![0u8; 64 * 1024];
            let deadline = Instant::now() + window + Duration::from_secs(5);
            // Ends when the receiver closes (EPIPE/ECONNRESET) or at the deadline.
            while Instant::now() < deadline && client.write_all(&chunk).is_ok() {}
        });
        server
            .set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let mut buf = vec![0u8; 256 * 1024];
        let first = server.read(&mut buf).expect("first bytes");
        let start = Instant::now();
        let mut bytes = first as u64;
        while start.elapsed() < window {
            match server.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => bytes += n as u64,
                Err(e) => panic!("receive failed: {e}"),
            }
        }
        let secs = start.elapsed().as_secs_f64();
        drop(server);
        bytes as f64 * 8.0 / secs / 1e6
    })
}

/// The names `ip netns list` shows.
pub fn listed_namespaces() -> Vec<String> {
    let out = std::process::Command::new("ip")
        .args(["netns", "list"])
        .output()
        .expect("ip netns list runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.split_whitespace().next().map(str::to_string))
        .collect()
}
