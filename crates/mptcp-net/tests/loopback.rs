//! MPTCP and TCP mixes on loopback, IPv4 and IPv6, through the public API.
//!
//! Needs a kernel with MPTCP enabled in this namespace (net.mptcp.enabled=1):
//! a test fails, naming it, otherwise.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use common::{assert_same, echo_server, pattern, round_trip};
use mptcp_net::{Dialer, ListenConfig, MptcpExt, MptcpStatus, Support};

const V4: &str = "127.0.0.1:0";
const V6: &str = "[::1]:0";

fn require_mptcp() {
    match mptcp_net::support().expect("support() failed") {
        Support::Available => {}
        other => panic!("these tests need MPTCP on this host: {other}"),
    }
}

fn mptcp_both_ends(bind: &str) {
    require_mptcp();
    let listener = ListenConfig::new().listen(bind).unwrap();
    assert_eq!(listener.mptcp_status().unwrap(), MptcpStatus::Active);
    let addr = listener.local_addr().unwrap();
    let server = echo_server(listener);
    let client = Dialer::new().dial(addr).unwrap();
    assert_eq!(client.mptcp_status().unwrap(), MptcpStatus::Active);
    assert!(client.multipath_tcp().unwrap());
    let data = pattern(1 << 20);
    let back = round_trip(&client, &data).unwrap();
    assert_same(&back, &data, "echo over MPTCP");
    assert_eq!(server.join().unwrap().unwrap(), MptcpStatus::Active);
}

#[test]
fn mptcp_to_mptcp_ipv4() {
    mptcp_both_ends(V4);
}

#[test]
fn mptcp_to_mptcp_ipv6() {
    mptcp_both_ends(V6);
}

fn mptcp_client_plain_server(bind: &str) {
    require_mptcp();
    let listener = TcpListener::bind(bind).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = echo_server(listener);
    let client = Dialer::new().dial(addr).unwrap();
    assert_eq!(client.mptcp_status().unwrap(), MptcpStatus::FellBack);
    assert!(!client.multipath_tcp().unwrap());
    let data = pattern(256 * 1024);
    assert_same(&round_trip(&client, &data).unwrap(), &data, "echo");
    assert_eq!(server.join().unwrap().unwrap(), MptcpStatus::PlainTcp);
}

#[test]
fn mptcp_client_to_plain_tcp_server_falls_back_ipv4() {
    mptcp_client_plain_server(V4);
}

#[test]
fn mptcp_client_to_plain_tcp_server_falls_back_ipv6() {
    mptcp_client_plain_server(V6);
}

fn plain_client_mptcp_listener(bind: &str) {
    require_mptcp();
    let listener = ListenConfig::new().listen(bind).unwrap();
    assert!(listener.multipath_tcp().unwrap(), "an MPTCP listener");
    let addr = listener.local_addr().unwrap();
    let server = echo_server(listener);
    let client = TcpStream::connect(addr).unwrap();
    assert_eq!(client.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
    let data = pattern(256 * 1024);
    assert_same(&round_trip(&client, &data).unwrap(), &data, "echo");
    assert_eq!(
        server.join().unwrap().unwrap(),
        MptcpStatus::PlainTcp,
        "a TCP client accepted by an MPTCP listener is a plain TCP stream"
    );
}

#[test]
fn plain_tcp_client_to_mptcp_listener_ipv4() {
    plain_client_mptcp_listener(V4);
}

#[test]
fn plain_tcp_client_to_mptcp_listener_ipv6() {
    plain_client_mptcp_listener(V6);
}

#[test]
fn explicit_off_gives_plain_tcp_both_ends() {
    require_mptcp();
    let mut lc = ListenConfig::new();
    lc.set_multipath_tcp(false);
    assert!(!lc.multipath_tcp());
    let listener = lc.listen(V4).unwrap();
    assert_eq!(listener.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
    let addr = listener.local_addr().unwrap();
    let server = echo_server(listener);
    let mut dialer = Dialer::new();
    dialer.set_multipath_tcp(false);
    let client = dialer.dial(addr).unwrap();
    assert_eq!(client.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
    assert_eq!(round_trip(&client, b"x").unwrap(), b"x");
    assert_eq!(server.join().unwrap().unwrap(), MptcpStatus::PlainTcp);
}

#[test]
fn listener_defaults_match_std() {
    require_mptcp();
    let listener = ListenConfig::new().listen(V4).unwrap();
    let sock = mptcp_net::socket2::SockRef::from(&listener);
    assert!(sock.reuse_address().unwrap(), "SO_REUSEADDR as std sets it");
    assert_eq!(mptcp_net::DEFAULT_BACKLOG, 128);
    // The port can be reused right after the listener closes, as with std.
    let addr = listener.local_addr().unwrap();
    let client = Dialer::new().dial(addr).unwrap();
    let (server, _) = listener.accept().unwrap();
    drop(server);
    drop(client);
    drop(listener);
    let again = ListenConfig::new().listen(addr).unwrap();
    assert_eq!(again.local_addr().unwrap(), addr);
}

#[test]
fn addresses_as_std_takes_them() {
    require_mptcp();
    let a = ListenConfig::new().listen(("127.0.0.1", 0)).unwrap();
    let port = a.local_addr().unwrap().port();
    let dialer = Dialer::new();
    let s1 = dialer.dial(format!("localhost:{port}").as_str());
    let s2 = dialer.dial(("127.0.0.1", port)).unwrap();
    let s3 = dialer
        .dial(SocketAddr::from(([127, 0, 0, 1], port)))
        .unwrap();
    // "localhost" may resolve to ::1 too, where nothing listens: the refused
    // IPv6 attempt starts the IPv4 one at once (Happy Eyeballs), so it still
    // connects.
    let s1 = s1.unwrap();
    for s in [&s1, &s2, &s3] {
        assert_eq!(s.peer_addr().unwrap().port(), port);
    }
    // Malformed input is an error, resolved without any network traffic.
    let bad = dialer.dial("no port here").unwrap_err();
    assert_eq!(bad.kind(), std::io::ErrorKind::InvalidInput, "{bad}");
    let bad = ListenConfig::new().listen("127.0.0.1:99999").unwrap_err();
    assert_eq!(bad.kind(), std::io::ErrorKind::InvalidInput, "{bad}");
}

#[test]
fn local_address_is_used_and_family_is_checked() {
    require_mptcp();
    let listener = ListenConfig::new().listen("0.0.0.0:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut dialer = Dialer::new();
    dialer.set_local_addr(Some("127.0.0.2:0".parse().unwrap()));
    let mut client = dialer.dial(("127.0.0.1", port)).unwrap();
    let (mut server, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip().to_string(), "127.0.0.2");
    client.write_all(b"hi").unwrap();
    let mut buf = [0u8; 2];
    server.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"hi");

    let err = dialer.dial("[::1]:9").unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
    assert!(err.to_string().contains("127.0.0.2"), "{err}");
}

#[test]
fn status_of_a_non_tcp_socket_is_a_clear_error() {
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let err = udp.mptcp_status().unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput, "{err}");
    assert!(err.to_string().contains("not a TCP"), "{err}");
    assert!(udp.multipath_tcp().is_err());
}

#[test]
fn detection_prefers_tcp_is_mptcp_on_this_kernel() {
    // The CI kernel is 6.18: TCP_IS_MPTCP exists and must be chosen.
    assert_eq!(
        mptcp_net::detection(),
        Some(mptcp_net::Detection::TcpIsMptcp)
    );
}
