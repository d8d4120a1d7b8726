//! The tokio API: `dial_async` / `listen_async`, on a multi-thread runtime.

mod common;

use std::future::Future;
use std::io;

use common::{assert_same, pattern};
use mptcp_net::{Dialer, ListenConfig, MptcpExt, MptcpStatus};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Compile-time proof that the futures can be spawned on any runtime.
fn assert_send<T: Send>(_: &T) {}

#[allow(dead_code)]
fn futures_are_send(d: &Dialer, l: &ListenConfig) {
    assert_send(&d.dial_async("127.0.0.1:1"));
    assert_send(&d.dial_async(String::from("localhost:1")));
    assert_send(&l.listen_async("127.0.0.1:0"));
    fn is_send_sync<T: Send + Sync + Clone + 'static>() {}
    is_send_sync::<Dialer>();
    is_send_sync::<ListenConfig>();
}

async fn echo_once(listener: tokio::net::TcpListener) -> io::Result<MptcpStatus> {
    let (mut stream, _) = listener.accept().await?;
    let status = stream.mptcp_status()?;
    let (mut r, mut w) = stream.split();
    tokio::io::copy(&mut r, &mut w).await?;
    w.shutdown().await?;
    Ok(status)
}

async fn round_trip(stream: tokio::net::TcpStream, data: Vec<u8>) -> io::Result<Vec<u8>> {
    let (mut r, mut w) = stream.into_split();
    let writer = tokio::spawn(async move {
        w.write_all(&data).await?;
        w.shutdown().await
    });
    let mut back = Vec::new();
    r.read_to_end(&mut back).await?;
    writer.await.map_err(io::Error::other)??;
    Ok(back)
}

fn require_mptcp() {
    let s = mptcp_net::support().expect("support()");
    assert!(s.is_available(), "these tests need MPTCP on this host: {s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_mptcp_both_ends_ipv4_and_ipv6() {
    require_mptcp();
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let listener = ListenConfig::new().listen_async(bind).await.unwrap();
        assert_eq!(listener.mptcp_status().unwrap(), MptcpStatus::Active);
        let addr = listener.local_addr().unwrap();
        let server = tokio::spawn(echo_once(listener));
        let dialer = Dialer::new();
        // Spawned, to prove the future is Send in practice too.
        let client = tokio::spawn(async move { dialer.dial_async(addr).await })
            .await
            .unwrap()
            .unwrap();
        assert_eq!(client.mptcp_status().unwrap(), MptcpStatus::Active);
        let data = pattern(1 << 20);
        let back = round_trip(client, data.clone()).await.unwrap();
        assert_same(&back, &data, bind);
        assert_eq!(server.await.unwrap().unwrap(), MptcpStatus::Active);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn async_fallbacks_to_and_from_plain_tcp() {
    require_mptcp();
    // MPTCP client, plain tokio server.
    let plain = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = plain.local_addr().unwrap();
    let server = tokio::spawn(echo_once(plain));
    let client = Dialer::new().dial_async(addr).await.unwrap();
    assert_eq!(client.mptcp_status().unwrap(), MptcpStatus::FellBack);
    let data = pattern(100_000);
    assert_same(
        &round_trip(client, data.clone()).await.unwrap(),
        &data,
        "to TCP",
    );
    assert_eq!(server.await.unwrap().unwrap(), MptcpStatus::PlainTcp);

    // Plain tokio client, MPTCP server.
    let listener = ListenConfig::new().listen_async("[::1]:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(echo_once(listener));
    let client = tokio::net::TcpStream::connect(addr).await.unwrap();
    assert_same(
        &round_trip(client, data.clone()).await.unwrap(),
        &data,
        "from TCP",
    );
    assert_eq!(server.await.unwrap().unwrap(), MptcpStatus::PlainTcp);
}

#[tokio::test]
async fn async_names_resolve_and_each_address_is_tried() {
    require_mptcp();
    let listener = ListenConfig::new()
        .listen_async("127.0.0.1:0")
        .await
        .unwrap();
    let port = listener.local_addr().unwrap().port();
    let accept = tokio::spawn(async move { listener.accept().await.map(|(s, _)| s) });
    // "localhost" may put ::1 (nothing there) first: the next address is tried.
    let stream = Dialer::new()
        .dial_async(format!("localhost:{port}"))
        .await
        .unwrap();
    assert_eq!(stream.peer_addr().unwrap().port(), port);
    accept.await.unwrap().unwrap();
}

#[test]
fn futures_compile_as_send() {
    // The assertion is the type check in `futures_are_send`; also poll one.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let fut: std::pin::Pin<Box<dyn Future<Output = io::Result<tokio::net::TcpListener>> + Send>> =
        Box::pin(async { ListenConfig::new().listen_async("127.0.0.1:0").await });
    assert!(rt.block_on(fut).is_ok());
}
