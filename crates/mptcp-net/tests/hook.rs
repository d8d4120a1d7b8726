//! The socket hook: runs before connect/listen; an option MPTCP refuses makes
//! a non-required dial or listen retry once with TCP.

mod common;

use std::io;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{echo_server, round_trip};
use mptcp_net::socket2::{Protocol, Socket};
use mptcp_net::{Dialer, ListenConfig, MptcpExt, MptcpStatus};

/// Records the protocol of each socket the hook saw.
#[derive(Clone, Default)]
struct Seen(Arc<Mutex<Vec<Option<Protocol>>>>);

impl Seen {
    fn record(&self, s: &Socket) {
        self.0.lock().unwrap().push(s.protocol().unwrap());
    }
    fn get(&self) -> Vec<Option<Protocol>> {
        self.0.lock().unwrap().clone()
    }
}

fn require_mptcp() {
    let s = mptcp_net::support().expect("support()");
    assert!(s.is_available(), "these tests need MPTCP on this host: {s}");
}

/// TCP_USER_TIMEOUT is refused by MPTCP sockets on Linux 6.18 (ENOPROTOOPT):
/// a real kernel case (tailscale hit it when Go went MPTCP).
fn user_timeout_hook(seen: Seen) -> impl Fn(&Socket) -> io::Result<()> + Send + Sync {
    move |s: &Socket| {
        seen.record(s);
        s.set_tcp_user_timeout(Some(Duration::from_secs(10)))
    }
}

#[test]
fn refused_option_in_dial_hook_falls_back_to_tcp_once() {
    require_mptcp();
    let listener = ListenConfig::new().listen("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let server = echo_server(listener);
    let seen = Seen::default();
    let mut dialer = Dialer::new();
    dialer.set_socket_hook(user_timeout_hook(seen.clone()));
    let client = dialer.dial(addr).unwrap();
    assert_eq!(seen.get(), [Some(Protocol::MPTCP), Some(Protocol::TCP)]);
    assert_eq!(client.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
    let sock = mptcp_net::socket2::SockRef::from(&client);
    assert_eq!(
        sock.tcp_user_timeout().unwrap(),
        Some(Duration::from_secs(10)),
        "the option took effect on the TCP socket"
    );
    assert_eq!(round_trip(&client, b"data").unwrap(), b"data");
    assert_eq!(server.join().unwrap().unwrap(), MptcpStatus::PlainTcp);
}

#[test]
fn refused_option_in_listen_hook_falls_back_to_tcp_once() {
    require_mptcp();
    let seen = Seen::default();
    let mut lc = ListenConfig::new();
    lc.set_socket_hook(user_timeout_hook(seen.clone()));
    let listener = lc.listen("[::1]:0").unwrap();
    assert_eq!(seen.get(), [Some(Protocol::MPTCP), Some(Protocol::TCP)]);
    assert_eq!(listener.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
    let sock = mptcp_net::socket2::SockRef::from(&listener);
    assert!(
        sock.reuse_address().unwrap(),
        "defaults re-applied on retry"
    );
}

#[test]
fn eopnotsupp_from_hook_falls_back_too() {
    require_mptcp();
    let listener = ListenConfig::new().listen("127.0.0.1:0").unwrap();
    let seen = Seen::default();
    let s2 = seen.clone();
    let mut dialer = Dialer::new();
    dialer.set_socket_hook(move |s| {
        s2.record(s);
        match s.protocol()? {
            Some(Protocol::MPTCP) => Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP)),
            _ => Ok(()),
        }
    });
    let client = dialer.dial(listener.local_addr().unwrap()).unwrap();
    assert_eq!(seen.get().len(), 2);
    assert_eq!(client.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
}

#[test]
fn required_mode_returns_the_hook_error_without_retry() {
    require_mptcp();
    let listener = ListenConfig::new().listen("127.0.0.1:0").unwrap();
    let seen = Seen::default();
    let mut dialer = Dialer::new();
    dialer
        .require_multipath_tcp(true)
        .set_socket_hook(user_timeout_hook(seen.clone()));
    let err = dialer.dial(listener.local_addr().unwrap()).unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOPROTOOPT), "{err}");
    assert_eq!(seen.get(), [Some(Protocol::MPTCP)], "no TCP retry");

    let seen = Seen::default();
    let mut lc = ListenConfig::new();
    lc.require_multipath_tcp(true)
        .set_socket_hook(user_timeout_hook(seen.clone()));
    let err = lc.listen("127.0.0.1:0").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::ENOPROTOOPT), "{err}");
    assert_eq!(seen.get().len(), 1);
}

#[test]
fn other_hook_errors_are_returned_as_they_are() {
    require_mptcp();
    let seen = Seen::default();
    let s2 = seen.clone();
    let mut dialer = Dialer::new();
    dialer.set_socket_hook(move |s| {
        s2.record(s);
        Err(io::Error::new(
            io::ErrorKind::PermissionDenied,
            "policy says no",
        ))
    });
    let err = dialer.dial("127.0.0.1:9").unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::PermissionDenied);
    assert_eq!(err.to_string(), "policy says no");
    assert_eq!(
        seen.get().len(),
        1,
        "no retry for errors that are not about MPTCP"
    );
}

#[test]
fn successful_hook_runs_once_and_keeps_mptcp() {
    require_mptcp();
    let listener = ListenConfig::new().listen("127.0.0.1:0").unwrap();
    let seen = Seen::default();
    let s2 = seen.clone();
    let mut dialer = Dialer::new();
    dialer.set_socket_hook(move |s| {
        s2.record(s);
        s.set_tcp_nodelay(true)?;
        s.set_tcp_keepalive(
            &mptcp_net::socket2::TcpKeepalive::new().with_time(Duration::from_secs(30)),
        )
    });
    let client = dialer.dial(listener.local_addr().unwrap()).unwrap();
    assert_eq!(seen.get(), [Some(Protocol::MPTCP)]);
    assert_eq!(client.mptcp_status().unwrap(), MptcpStatus::Active);
    assert!(client.nodelay().unwrap());
}

#[tokio::test]
async fn async_dial_hook_fallback() {
    require_mptcp();
    let listener = ListenConfig::new()
        .listen_async("127.0.0.1:0")
        .await
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Seen::default();
    let mut dialer = Dialer::new();
    dialer.set_socket_hook(user_timeout_hook(seen.clone()));
    let client = dialer.dial_async(addr).await.unwrap();
    let (accepted, _) = listener.accept().await.unwrap();
    assert_eq!(seen.get().len(), 2);
    assert_eq!(client.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
    assert_eq!(accepted.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
}
