//! The connector and the servers on loopback, where the network does not
//! matter: HTTP/1 and HTTP/2 to axum, a plain TCP server (fell back), a
//! plain hyper service, the dialer's policy and timeout, bad input.

mod common;

use std::convert::Infallible;
use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{assert_same, client, fetch, pattern, require_mptcp, router, server_view};
use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, StatusCode, Version};
use hyper_util::rt::TokioIo;
use mptcp_hyper::{MptcpConnInfo, MptcpConnector, MptcpListener};
use mptcp_net::{Dialer, ListenConfig, MptcpStatus};
use tower_service::Service;

async fn axum_server(bind: &str) -> (String, tokio::task::JoinHandle<io::Result<()>>) {
    let listener = ListenConfig::new().listen_async(bind).await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { mptcp_hyper::serve(listener, router()).await });
    (format!("http://{addr}"), server)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_and_http2_to_axum_both_ends_mptcp() {
    require_mptcp();
    for bind in ["127.0.0.1:0", "[::1]:0"] {
        let (base, server) = axum_server(bind).await;
        for http2 in [false, true] {
            let c = client(MptcpConnector::new(), http2);
            let (got, view) = server_view(&c, &base).await;
            let want = if http2 {
                Version::HTTP_2
            } else {
                Version::HTTP_11
            };
            assert_eq!(got.version, want, "{base}");
            assert_eq!(view.version, format!("{want:?}"), "the server saw {want:?}");
            assert_eq!(
                got.info.status(),
                MptcpStatus::Active,
                "client side, {base}"
            );
            assert_eq!(view.status, "active", "server side, {base}");
            // Both ends describe the same connection.
            assert_eq!(view.peer, got.info.local_addr().to_string());
            assert_eq!(view.local, got.info.peer_addr().to_string());
            assert_eq!(
                got.info.subflows().unwrap().len(),
                1,
                "loopback: one subflow"
            );

            let down = fetch(&c, &format!("{base}/bytes/3000001"), None).await;
            assert_eq!(down.status, StatusCode::OK);
            assert_same(&down.body, &pattern(3_000_001), "download");
            let data = pattern(2_000_003);
            let up = fetch(&c, &format!("{base}/echo"), Some(data.clone())).await;
            assert_same(&up.body, &data, "upload echoed");
            // One pooled connection carried all three requests.
            assert_eq!(up.info.local_addr(), got.info.local_addr());
            println!(
                "{base} {want:?}: client {}, server {}, 3 MB down and 2 MB up intact",
                got.info.status(),
                view.status
            );
        }
        server.abort();
    }
}

/// hyper over a std (plain TCP) listener, one connection per task.
async fn plain_hyper_server() -> SocketAddr {
    let std_listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    std_listener.set_nonblocking(true).unwrap();
    let listener = tokio::net::TcpListener::from_std(std_listener).unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        // Bounded: the test makes two connections at most.
        for _ in 0..8 {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            let server_status = mptcp_net::MptcpExt::mptcp_status(&stream).unwrap();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_req: Request<Incoming>| {
                    let body = format!("plain server, {}", server_status.as_str());
                    async move { Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(body)))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    addr
}

#[tokio::test]
async fn plain_tcp_server_answers_and_the_fallback_is_reported() {
    require_mptcp();
    let addr = plain_hyper_server().await;
    let c = client(MptcpConnector::new(), false);
    let got = fetch(&c, &format!("http://{addr}/"), None).await;
    assert_eq!(got.status, StatusCode::OK);
    assert_eq!(&got.body[..], b"plain server, plain_tcp");
    assert_eq!(got.info.status(), MptcpStatus::FellBack);
    assert!(!got.info.multipath_tcp());
    assert_eq!(got.info.current_status().unwrap(), MptcpStatus::FellBack);
    assert_eq!(got.info.subflows().unwrap().len(), 1);
    println!("plain hyper server: client reports {}", got.info);
}

#[tokio::test]
async fn dialer_policy_is_honoured() {
    require_mptcp();
    let (base, server) = axum_server("127.0.0.1:0").await;
    let mut dialer = Dialer::new();
    dialer.set_multipath_tcp(false);
    let c = client(MptcpConnector::with_dialer(dialer), false);
    let (got, view) = server_view(&c, &base).await;
    assert_eq!(got.info.status(), MptcpStatus::PlainTcp);
    assert_eq!(view.status, "plain_tcp");

    // The socket hook runs on every dial.
    let calls = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut dialer = Dialer::new();
    let seen = calls.clone();
    dialer.set_socket_hook(move |s| {
        seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        s.set_tcp_nodelay(true)
    });
    let c = client(MptcpConnector::with_dialer(dialer), false);
    let (got, _) = server_view(&c, &base).await;
    assert_eq!(got.info.status(), MptcpStatus::Active);
    assert_eq!(calls.load(std::sync::atomic::Ordering::SeqCst), 1);
    server.abort();
}

#[tokio::test]
async fn names_resolve_with_tokio() {
    require_mptcp();
    let (base, server) = axum_server("127.0.0.1:0").await;
    let port = base.rsplit(':').next().unwrap();
    // "localhost" may resolve to ::1 first (nothing there): the next address is tried.
    let c = client(MptcpConnector::new(), false);
    let (got, view) = server_view(&c, &format!("http://localhost:{port}")).await;
    assert_eq!(got.info.status(), MptcpStatus::Active);
    assert_eq!(view.status, "active");
    server.abort();
}

#[tokio::test]
async fn dial_timeout_is_honoured() {
    require_mptcp();
    // A listener whose accept queue is full drops further SYNs, so a
    // connect to it hangs until the client gives up: a black hole on
    // loopback.
    let listener = ListenConfig::new()
        .set_backlog(0)
        .listen("127.0.0.1:0")
        .unwrap();
    let addr = listener.local_addr().unwrap();
    let mut fillers = Vec::new();
    let mut dialer = Dialer::new();
    dialer.set_timeout(Some(Duration::from_millis(300)));
    let mut connector = MptcpConnector::with_dialer(dialer);
    let uri: http::Uri = format!("http://{addr}/").parse().unwrap();
    // Fill the queue (its length is backlog + 1), bounded.
    let mut timed_out = None;
    for _ in 0..8 {
        let start = Instant::now();
        match connector.call(uri.clone()).await {
            Ok(stream) => fillers.push(stream),
            Err(e) => {
                timed_out = Some((e, start.elapsed()));
                break;
            }
        }
    }
    let (err, took) = timed_out.expect("a full accept queue made a dial time out");
    assert_eq!(err.kind(), io::ErrorKind::TimedOut, "{err}");
    assert!(
        took >= Duration::from_millis(250) && took < Duration::from_secs(3),
        "gave up after {took:?}, timeout 300 ms"
    );
    println!(
        "dial timed out after {took:?} (timeout 300 ms) with {} queued: {err}",
        fillers.len()
    );
}

#[tokio::test]
async fn bad_uris_are_errors_not_panics() {
    let mut connector = MptcpConnector::new();
    for uri in [
        "/just/a/path",
        "ftp://127.0.0.1/",
        "https://127.0.0.1/",
        "127.0.0.1:80",
    ] {
        let err = connector.call(uri.parse().unwrap()).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{uri}: {err}");
    }
    // Through the client, a bad URI is an error response, no panic.
    let c = client(MptcpConnector::new(), false);
    let req = Request::get("/no/authority")
        .body(Full::new(Bytes::new()))
        .unwrap();
    assert!(c.request(req).await.is_err());
    let err = c
        .get("https://127.0.0.1:1/".parse().unwrap())
        .await
        .unwrap_err();
    println!("https through a plain MptcpConnector: {err:?}");
    // A refused connect is an error, returned once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = closed.local_addr().unwrap();
    drop(closed);
    let err = connector
        .call(format!("http://{addr}/").parse().unwrap())
        .await
        .unwrap_err();
    assert_eq!(err.kind(), io::ErrorKind::ConnectionRefused, "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_hyper_passes_the_info_and_shuts_down_gracefully() {
    require_mptcp();
    let listener = MptcpListener::bind("[::1]:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
        let text = match req.extensions().get::<MptcpConnInfo>() {
            Some(info) => format!(
                "{} {} {}",
                info.status().as_str(),
                info.peer_addr(),
                info.subflows().map(|s| s.len()).unwrap_or(0)
            ),
            None => "missing".to_owned(),
        };
        Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
    });
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(mptcp_hyper::serve_hyper_with_graceful_shutdown(
        listener,
        service,
        async move {
            let _ = stopped.await;
        },
    ));
    for http2 in [false, true] {
        let c = client(MptcpConnector::new(), http2);
        let got = fetch(&c, &format!("http://{addr}/"), None).await;
        let text = String::from_utf8(got.body.to_vec()).unwrap();
        assert_eq!(text, format!("active {} 1", got.info.local_addr()));
        assert_eq!(got.info.status(), MptcpStatus::Active);
    }
    stop.send(()).unwrap();
    // The clients are gone, so their connections close and the drain ends.
    tokio::time::timeout(Duration::from_secs(10), server)
        .await
        .expect("graceful shutdown finished")
        .unwrap()
        .unwrap();
    let err = Dialer::new().dial_async(addr).await.unwrap_err();
    assert_eq!(
        err.kind(),
        io::ErrorKind::ConnectionRefused,
        "listener closed"
    );
}

#[tokio::test]
async fn handler_without_mptcp_serve_gets_a_clear_500() {
    // The router served by plain axum::serve: MptcpConnInfo is missing.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, router()).await });
    let c = client(MptcpConnector::new(), false);
    let got = fetch(&c, &format!("http://{addr}/info"), None).await;
    assert_eq!(got.status, StatusCode::INTERNAL_SERVER_ERROR);
    let text = String::from_utf8_lossy(&got.body);
    assert!(text.contains("mptcp_hyper::serve"), "{text}");
    server.abort();
}

#[tokio::test]
async fn info_outlives_the_connection_without_keeping_it_open() {
    require_mptcp();
    let listener = MptcpListener::bind("127.0.0.1:0").await.unwrap();
    let client = Dialer::new()
        .dial_async(listener.local_addr().unwrap())
        .await
        .unwrap();
    let (server, peer) = listener.accept().await.unwrap();
    let info = server.info().clone();
    assert_eq!(info.peer_addr(), peer);
    assert!(info.is_open());
    assert_eq!(info.subflows().unwrap().len(), 1);
    assert!(info.mptcp_info().unwrap().is_some());
    drop(server);
    assert!(!info.is_open());
    assert_eq!(
        info.subflows().unwrap_err().kind(),
        io::ErrorKind::NotConnected
    );
    // The socket really closed: the client reads EOF.
    let mut buf = [0u8; 1];
    let n = tokio::time::timeout(Duration::from_secs(5), async {
        use tokio::io::AsyncReadExt;
        let mut client = client;
        client.read(&mut buf).await
    })
    .await
    .expect("EOF within 5 s")
    .unwrap();
    assert_eq!(n, 0, "EOF");
    println!("{info:?}");
}
