//! `mptcp_info()` and `subflows()` on loopback: one subflow, every kind of
//! socket, both kernel interfaces (MPTCP_FULL_INFO, and the 5.16-6.4 pair
//! forced through the test seam).

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::time::Duration;

use mptcp_net::info::TcpState;
use mptcp_net::{seam, Dialer, ListenConfig, MptcpExt};

fn require_mptcp() {
    let s = mptcp_net::support().expect("support()");
    assert!(s.is_available(), "these tests need MPTCP on this host: {s}");
}

/// A connected pair after `n` bytes went client -> server and were read.
fn pair_after_transfer(bind: &str, n: usize) -> (TcpStream, TcpStream) {
    let listener = ListenConfig::new().listen(bind).unwrap();
    let mut client = Dialer::new().dial(listener.local_addr().unwrap()).unwrap();
    let (mut server, _) = listener.accept().unwrap();
    let data = common::pattern(n);
    let reader = std::thread::spawn(move || {
        let mut got = vec![0u8; n];
        server.read_exact(&mut got).unwrap();
        server.write_all(b"ok").unwrap();
        (server, got)
    });
    client.write_all(&data).unwrap();
    let mut ok = [0u8; 2];
    client.read_exact(&mut ok).unwrap();
    let (server, got) = reader.join().unwrap();
    common::assert_same(&got, &data, "transfer");
    (client, server)
}

#[test]
fn mptcp_info_counts_what_the_application_wrote() {
    require_mptcp();
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let n = 3_000_000;
        let (client, server) = pair_after_transfer(bind, n);
        let ci = client.mptcp_info().unwrap().expect("client is MPTCP");
        let si = server.mptcp_info().unwrap().expect("server is MPTCP");
        println!("{bind}: client {ci:?}");
        assert_eq!(ci.token != 0, si.token != 0);
        assert!(!ci.flags.fallback());
        assert!(ci.flags.remote_key_received());
        assert_eq!(ci.kernel_len, 96, "the 6.10+ layout on this kernel");
        // Everything written was acked (the server answered after reading it).
        assert_eq!(ci.bytes_sent, Some(n as u64));
        assert_eq!(ci.bytes_acked, Some(n as u64));
        assert_eq!(ci.bytes_received, Some(2));
        assert_eq!(si.bytes_received, Some(n as u64));
        assert_eq!(ci.subflows_total, Some(1));
        assert_eq!(
            ci.subflows, 0,
            "no extra subflow on loopback without endpoints"
        );
        assert!(ci.last_data_sent.is_some());
    }
}

fn check_one_subflow(stream: &TcpStream, want_id: bool, what: &str) {
    let subflows = stream.subflows().unwrap();
    assert_eq!(subflows.len(), 1, "{what}: {subflows:?}");
    let sf = &subflows[0];
    assert_eq!(sf.id.is_some(), want_id, "{what}: id {:?}", sf.id);
    assert_eq!(sf.local, Some(stream.local_addr().unwrap()), "{what}");
    assert_eq!(sf.remote, Some(stream.peer_addr().unwrap()), "{what}");
    assert_eq!(sf.tcp.state, TcpState::Established, "{what}");
    assert!(sf.tcp.snd_mss > 0, "{what}");
    let segs = sf.tcp.segs_in.unwrap_or(0) + sf.tcp.segs_out.unwrap_or(0);
    assert!(segs > 0, "{what}: {sf:?}");
}

#[test]
fn subflows_of_an_mptcp_connection_full_info_and_legacy() {
    require_mptcp();
    let (client, server) = pair_after_transfer("127.0.0.1:0", 100_000);
    // MPTCP_FULL_INFO (this kernel): subflow ids are known.
    seam::force_legacy_subflows(Some(false));
    check_one_subflow(&client, true, "client, full info");
    check_one_subflow(&server, true, "server, full info");
    let full = client.subflows().unwrap();
    // The 5.16-6.4 pair: same subflow, without id.
    seam::force_legacy_subflows(Some(true));
    check_one_subflow(&client, false, "client, legacy");
    let legacy = client.subflows().unwrap();
    assert_eq!(full[0].local, legacy[0].local);
    assert_eq!(full[0].tcp.snd_mss, legacy[0].tcp.snd_mss);
    // Found out again by trying: this kernel has MPTCP_FULL_INFO.
    seam::force_legacy_subflows(None);
    check_one_subflow(&client, true, "client, probed");
}

#[test]
fn fallen_back_and_plain_sockets_have_no_mptcp_info_and_one_tcp_subflow() {
    require_mptcp();
    let plain_listener = TcpListener::bind("[::1]:0").unwrap();
    let fell_back = Dialer::new()
        .dial(plain_listener.local_addr().unwrap())
        .unwrap();
    let (plain_server, _) = plain_listener.accept().unwrap();
    let mptcp_listener = ListenConfig::new().listen("127.0.0.1:0").unwrap();
    let plain_client = TcpStream::connect(mptcp_listener.local_addr().unwrap()).unwrap();
    let (accepted_plain, _) = mptcp_listener.accept().unwrap();
    for (stream, what) in [
        (&fell_back, "fell back"),
        (&plain_server, "plain server"),
        (&plain_client, "plain client"),
        (&accepted_plain, "plain accepted by an MPTCP listener"),
    ] {
        assert_eq!(stream.mptcp_info().unwrap(), None, "{what}");
        check_one_subflow(stream, false, what);
    }
    // Listeners: an MPTCP listener has MPTCP state but no subflow.
    assert!(mptcp_listener.mptcp_info().unwrap().is_some());
    let listening = mptcp_listener.subflows().unwrap();
    println!("MPTCP listener subflows: {listening:?}");
    assert!(listening.iter().all(|sf| sf.tcp.state == TcpState::Listen));
    assert_eq!(plain_listener.mptcp_info().unwrap(), None);
}

#[test]
fn closed_and_non_tcp_sockets() {
    require_mptcp();
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    assert_eq!(
        udp.mptcp_info().unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    assert_eq!(
        udp.subflows().unwrap_err().kind(),
        std::io::ErrorKind::InvalidInput
    );
    // A connection the peer closed still answers, without panicking.
    let (client, server) = pair_after_transfer("127.0.0.1:0", 1000);
    drop(server);
    client.shutdown(Shutdown::Both).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    let _ = client.mptcp_info().unwrap();
    let _ = client.subflows().unwrap();
}

#[tokio::test]
async fn tokio_streams_too() {
    require_mptcp();
    let listener = ListenConfig::new()
        .listen_async("127.0.0.1:0")
        .await
        .unwrap();
    let client = Dialer::new()
        .dial_async(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, _) = listener.accept().await.unwrap();
    assert!(client.mptcp_info().unwrap().is_some());
    assert_eq!(server.subflows().unwrap().len(), 1);
}
