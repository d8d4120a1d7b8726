//! Each status detection method, forced through the test seam, on this
//! kernel (which supports all three), for active, fallen-back and plain
//! sockets.

mod common;

use std::net::{TcpListener, TcpStream};

use mptcp_net::seam::{self, Detection};
use mptcp_net::{Dialer, ListenConfig, MptcpExt, MptcpStatus};

#[test]
fn every_method_classifies_every_kind_of_socket() {
    assert!(mptcp_net::support().unwrap().is_available(), "needs MPTCP");
    let mptcp_listener = ListenConfig::new().listen("127.0.0.1:0").unwrap();
    let tcp_listener = TcpListener::bind("[::1]:0").unwrap();
    let active = Dialer::new()
        .dial(mptcp_listener.local_addr().unwrap())
        .unwrap();
    let fell_back = Dialer::new()
        .dial(tcp_listener.local_addr().unwrap())
        .unwrap();
    let plain = TcpStream::connect(mptcp_listener.local_addr().unwrap()).unwrap();

    for (method, fell_back_reads_as) in [
        (Detection::TcpIsMptcp, MptcpStatus::FellBack),
        (Detection::MptcpInfo, MptcpStatus::FellBack),
        // SO_PROTOCOL cannot see a fallback (documented).
        (Detection::SoProtocol, MptcpStatus::Active),
    ] {
        seam::force_detection(Some(method));
        assert_eq!(mptcp_net::detection(), Some(method));
        assert_eq!(
            active.mptcp_status().unwrap(),
            MptcpStatus::Active,
            "{method:?}"
        );
        assert!(active.multipath_tcp().unwrap(), "{method:?}");
        assert_eq!(
            fell_back.mptcp_status().unwrap(),
            fell_back_reads_as,
            "{method:?}"
        );
        assert_eq!(
            fell_back.multipath_tcp().unwrap(),
            fell_back_reads_as.is_active(),
            "{method:?}"
        );
        assert_eq!(
            plain.mptcp_status().unwrap(),
            MptcpStatus::PlainTcp,
            "{method:?}"
        );
        assert!(!plain.multipath_tcp().unwrap(), "{method:?}");
        assert_eq!(
            mptcp_listener.mptcp_status().unwrap(),
            MptcpStatus::Active,
            "{method:?}"
        );
    }
    // Chosen again by probing: this kernel (6.10+) has TCP_IS_MPTCP.
    seam::force_detection(None);
    assert_eq!(mptcp_net::detection(), Some(Detection::TcpIsMptcp));
}
