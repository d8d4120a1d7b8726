//! Hostile clients at a gateway intake: a thousand connections that never send,
//! garbage and oversized SOCKS5 messages, a connect-and-reset storm, and a
//! well-behaved client served beside them. Bounds, not timings.

#[allow(unused_imports)] // the shared helpers this file does not use
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::gateway::{socks5_connect, RunningGateway};
use common::{echo_backend, require_mptcp, wait_records};
use mptcp_proxy::gateway::{GatewayConfig, GatewayEnd, Mode};

fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

/// Reads until the daemon closes the connection (a reset counts as closed);
/// any other outcome, a read timeout above all, fails with `context`.
fn read_until_closed(s: &mut TcpStream, context: &str) -> Vec<u8> {
    let mut got = Vec::new();
    let r = s.read_to_end(&mut got);
    assert!(
        r.is_ok()
            || r.as_ref()
                .is_err_and(|e| e.kind() == std::io::ErrorKind::ConnectionReset),
        "{context}: {r:?}"
    );
    got
}

#[test]
fn socks5_intake_outlasts_idle_garbage_and_reset_clients() {
    require_mptcp();
    let (backend, _echo) = echo_backend(1);
    let mut config = GatewayConfig::new("127.0.0.1:0".parse().unwrap(), Mode::Socks5);
    config.handshake_timeout = Duration::from_secs(1);
    let gw = RunningGateway::start(config);
    let addr = gw.started.addr;
    let before = descriptors();
    let idle: Vec<TcpStream> = (0..1000)
        .map(|i| TcpStream::connect(addr).unwrap_or_else(|e| panic!("idle client {i}: {e}")))
        .collect();
    // Garbage: SOCKS4, a greeting that offers 255 methods then junk, random
    // bytes past the largest message. Each is answered or closed, never hung.
    let junk: [&[u8]; 3] = [
        b"\x04\x01\x00\x50\x7f\x00\x00\x01\x00",
        &[5u8; 600],
        &[0xa5u8; 4096],
    ];
    for j in junk {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = s.write_all(j);
        read_until_closed(&mut s, &format!("{j:?}"));
    }
    // Connect-and-reset.
    for _ in 0..200 {
        let s = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        s.set_linger(Some(Duration::ZERO)).unwrap();
        let _ = s.connect(&addr.into());
    }
    // The well-behaved client, beside the thousand idle ones.
    let mut good = socks5_connect(addr, backend).expect("a SOCKS5 client served");
    good.write_all(b"ping").unwrap();
    let mut b = [0u8; 4];
    good.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"ping");
    drop(good);
    let held = descriptors() - before;
    println!("descriptors with 1,000 idle clients: {held}");
    assert!(held <= 2 * 1000 + 64, "{held}");
    // Every idle client is closed by the handshake timeout, not left open.
    let deadline = Instant::now() + Duration::from_secs(20);
    for mut s in idle {
        let left = deadline
            .saturating_duration_since(Instant::now())
            .max(Duration::from_millis(1));
        s.set_read_timeout(Some(left)).unwrap();
        read_until_closed(
            &mut s,
            "an idle client still open after the handshake timeout",
        );
    }
    let records = wait_records(&gw.started.records, 1000);
    let bad = records
        .iter()
        .filter(|r| r.end == GatewayEnd::BadHandshake)
        .count();
    assert!(bad >= 1000, "{bad} bad handshakes counted");
    let after = descriptors().saturating_sub(before);
    assert!(after <= 64, "{after} descriptors left");
    gw.stop();
}

/// Garbage at the HTTP CONNECT intake is answered from its first bytes, not
/// when the handshake timeout ends it: a TLS hello, random bytes, another
/// method, a bad request line whose headers never end. The timeout here is a
/// minute, and each answer must come well before it.
#[test]
fn http_connect_intake_answers_garbage_without_waiting_for_the_blank_line() {
    require_mptcp();
    let mut config = GatewayConfig::new("127.0.0.1:0".parse().unwrap(), Mode::HttpConnect);
    config.handshake_timeout = Duration::from_secs(60);
    let gw = RunningGateway::start(config);
    let addr = gw.started.addr;
    let junk: [(&[u8], &str); 4] = [
        (
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            "HTTP/1.1 400 ",
        ),
        (&[0xa5u8; 600], "HTTP/1.1 400 "),
        (b"GET / HTTP/1.1\r\nHost: x\r\n", "HTTP/1.1 405 "),
        (
            b"CONNECT 198.18.0.1 HTTP/1.1\r\nHost: x\r\n",
            "HTTP/1.1 400 ",
        ),
    ];
    for (j, want) in junk {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(j).unwrap();
        let answer = read_until_closed(
            &mut s,
            &format!("{j:?}: no answer within 20 s of a 60 s handshake timeout"),
        );
        let answer = String::from_utf8_lossy(&answer);
        assert!(answer.starts_with(want), "{j:?}: {answer:?}");
    }
    let records = wait_records(&gw.started.records, 4);
    let bad = records
        .iter()
        .filter(|r| r.end == GatewayEnd::BadHandshake)
        .count();
    assert_eq!(bad, 4, "{records:?}");
    gw.stop();
}
