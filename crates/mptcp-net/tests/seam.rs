//! socket() errors the host kernel cannot produce (EPROTONOSUPPORT, EINVAL,
//! EACCES, EPERM), injected through the crate's test seam; ENOPROTOOPT is
//! also tested for real in `netns.rs`.

mod common;

use std::io::ErrorKind;
use std::sync::Mutex;

use mptcp_net::seam;
use mptcp_net::{Dialer, ListenConfig, MptcpExt, MptcpStatus, Support, Unavailable};

/// The "never on this kernel" memory is process-wide: tests that touch it
/// take turns.
static SERIAL: Mutex<()> = Mutex::new(());

struct Reset;
impl Drop for Reset {
    fn drop(&mut self) {
        seam::inject_mptcp_socket_error(None);
        seam::forget_support_cache();
    }
}

fn start() -> (std::sync::MutexGuard<'static, ()>, Reset) {
    let guard = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    assert!(
        mptcp_net::support().unwrap().is_available(),
        "these tests need MPTCP on this host"
    );
    seam::forget_support_cache();
    (guard, Reset)
}

#[test]
fn permanent_errors_fall_back_and_are_remembered() {
    let _g = start();
    for (errno, reason) in [
        (libc::EPROTONOSUPPORT, Unavailable::NotInKernel),
        (libc::EINVAL, Unavailable::KernelTooOld),
    ] {
        seam::forget_support_cache();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        seam::inject_mptcp_socket_error(Some(errno));
        let a0 = seam::mptcp_socket_attempts();

        let s = Dialer::new().dial(addr).unwrap();
        assert_eq!(s.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
        assert_eq!(seam::mptcp_socket_attempts() - a0, 1);

        // Remembered: later dials and listens do not try again, even once
        // the error would no longer come.
        seam::inject_mptcp_socket_error(None);
        let s = Dialer::new().dial(addr).unwrap();
        assert_eq!(s.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
        let l = ListenConfig::new().listen("127.0.0.1:0").unwrap();
        assert_eq!(l.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
        assert_eq!(seam::mptcp_socket_attempts() - a0, 1, "no second attempt");
        assert_eq!(mptcp_net::support().unwrap(), Support::Unavailable(reason));
        assert_eq!(seam::mptcp_socket_attempts() - a0, 1);

        // Required mode errors at once, naming the cause.
        let mut d = Dialer::new();
        d.require_multipath_tcp(true);
        let err = d.dial(addr).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert_eq!(
            err.get_ref().and_then(|e| e.downcast_ref::<Unavailable>()),
            Some(&reason)
        );
        println!("{errno}: {err}");
        drop(listener);
    }
}

#[test]
fn transient_errors_fall_back_and_only_enoprotoopt_is_remembered_briefly() {
    let _g = start();
    for (errno, reason) in [
        (libc::ENOPROTOOPT, Unavailable::DisabledBySysctl),
        (
            libc::EACCES,
            Unavailable::Refused {
                errno: libc::EACCES,
            },
        ),
        (libc::EPERM, Unavailable::Refused { errno: libc::EPERM }),
    ] {
        let listener = ListenConfig::new().listen("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        seam::inject_mptcp_socket_error(Some(errno));
        let a0 = seam::mptcp_socket_attempts();
        for _ in 0..2 {
            let s = Dialer::new().dial(addr).unwrap();
            assert_eq!(s.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
        }
        // ENOPROTOOPT is remembered (for at most a second, in this namespace);
        // the others are asked each time.
        let asked = if errno == libc::ENOPROTOOPT { 1 } else { 2 };
        assert_eq!(seam::mptcp_socket_attempts() - a0, asked, "errno {errno}");
        assert_eq!(mptcp_net::support().unwrap(), Support::Unavailable(reason));

        let mut lc = ListenConfig::new();
        lc.require_multipath_tcp(true);
        let err = lc.listen("127.0.0.1:0").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.to_string().contains(reason.fix()), "{err}");

        seam::inject_mptcp_socket_error(None);
        let s = Dialer::new().dial(addr).unwrap();
        assert_eq!(s.mptcp_status().unwrap(), MptcpStatus::Active, "back on");
    }
}

#[test]
fn unrelated_socket_errors_are_returned_not_fallen_back() {
    let _g = start();
    seam::inject_mptcp_socket_error(Some(libc::EMFILE));
    let err = Dialer::new().dial("127.0.0.1:9").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
    let err = ListenConfig::new().listen("127.0.0.1:0").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EMFILE), "{err}");
    assert_eq!(
        mptcp_net::support().unwrap_err().raw_os_error(),
        Some(libc::EMFILE)
    );
}

#[tokio::test]
async fn async_dial_and_listen_follow_the_same_rules() {
    let _g = start();
    seam::inject_mptcp_socket_error(Some(libc::EPROTONOSUPPORT));
    let listener = ListenConfig::new()
        .listen_async("127.0.0.1:0")
        .await
        .unwrap();
    assert_eq!(listener.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
    let s = Dialer::new()
        .dial_async(listener.local_addr().unwrap())
        .await
        .unwrap();
    assert_eq!(s.mptcp_status().unwrap(), MptcpStatus::PlainTcp);
    let mut d = Dialer::new();
    d.require_multipath_tcp(true);
    let err = d
        .dial_async(listener.local_addr().unwrap())
        .await
        .unwrap_err();
    assert!(err.to_string().contains("CONFIG_MPTCP"), "{err}");
}
