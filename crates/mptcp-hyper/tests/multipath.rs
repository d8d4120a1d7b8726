//! HTTP over a real two-path network (mptcp-testnet: client and server
//! namespaces joined by two shaped veth paths, client subflow endpoints):
//! HTTP/1 and HTTP/2 through `MptcpConnector` to an axum server served by
//! `mptcp_hyper::serve`, and a large download spread over both subflows.
//!
//! The server runs on a runtime in the test thread, on a listener made
//! inside the server namespace; the client runs a current-thread runtime on
//! a thread inside the client namespace, so the connector's sockets are
//! made there. Needs root, iproute2 and MPTCP; fails, naming what is
//! missing, where they are not.

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::{assert_same, client, fetch, pattern, require_mptcp, router, server_view, Got};
use hyper::{StatusCode, Version};
use mptcp_hyper::{MptcpConnInfo, MptcpConnector};
use mptcp_net::{ListenConfig, MptcpStatus, SubflowInfo, TcpState};
use mptcp_testnet::TestNet;

const RATE_MBIT: u32 = 50;
const LARGE: usize = 10_000_000;

fn two_paths() -> TestNet {
    TestNet::builder()
        .paths(2)
        .rate_mbit(RATE_MBIT)
        .build()
        .unwrap_or_else(|e| panic!("cannot build the two-path test network: {e}"))
}

/// A runtime in this thread serving the test router on the server's
/// wildcard address (joins to its other addresses need it); returns the
/// base URI on path 0.
fn start_server(net: &TestNet) -> (tokio::runtime::Runtime, String) {
    let std_listener = net
        .server()
        .run(|| ListenConfig::new().listen("0.0.0.0:0"))
        .expect("enter the server namespace")
        .expect("listen in the server namespace");
    std_listener.set_nonblocking(true).unwrap();
    let port = std_listener.local_addr().unwrap().port();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.spawn(async move {
        let listener = tokio::net::TcpListener::from_std(std_listener)?;
        mptcp_hyper::serve(listener, router()).await
    });
    let ip = net
        .server()
        .addr(0)
        .expect("the server has an IPv4 address");
    (rt, format!("http://{}", SocketAddr::new(ip, port)))
}

/// Runs `f` on a current-thread runtime in the client namespace.
fn in_client<F, T>(net: &TestNet, f: F) -> T
where
    F: std::future::Future<Output = T> + Send,
    T: Send,
{
    net.client()
        .run(|| {
            tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap()
                .block_on(f)
        })
        .expect("enter the client namespace")
}

fn established(sfs: &[SubflowInfo]) -> usize {
    sfs.iter()
        .filter(|s| s.tcp.state == TcpState::Established)
        .count()
}

/// Waits, bounded, until the connection has `n` established subflows.
async fn wait_subflows(info: &MptcpConnInfo, n: usize) -> Vec<SubflowInfo> {
    let start = Instant::now();
    loop {
        let sfs = info.subflows().expect("client subflows");
        if established(&sfs) >= n || start.elapsed() > Duration::from_secs(5) {
            assert!(
                established(&sfs) >= n,
                "expected {n} subflows after {:?}, have {sfs:?}",
                start.elapsed()
            );
            return sfs;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[test]
fn http1_and_http2_over_two_paths_both_ends_mptcp() {
    require_mptcp();
    let net = two_paths();
    let (_rt, base) = start_server(&net);
    in_client(&net, async {
        for http2 in [false, true] {
            let c = client(MptcpConnector::new(), http2);
            let (got, _) = server_view(&c, &base).await;
            let want = if http2 {
                Version::HTTP_2
            } else {
                Version::HTTP_11
            };
            assert_eq!(got.version, want);
            assert_eq!(got.info.status(), MptcpStatus::Active, "client side");
            // The first exchange is done: the second subflow comes.
            let sfs = wait_subflows(&got.info, 2).await;
            let (again, view) = server_view(&c, &base).await;
            assert_eq!(
                again.info.local_addr(),
                got.info.local_addr(),
                "same connection"
            );
            assert_eq!(view.status, "active", "server side");
            assert_eq!(view.version, format!("{want:?}"));
            assert_eq!(view.subflows, 2, "the server sees both subflows");

            let down = fetch(&c, &format!("{base}/bytes/1000003"), None).await;
            assert_eq!(down.status, StatusCode::OK);
            assert_same(&down.body, &pattern(1_000_003), "download");
            let data = pattern(1_000_033);
            let up = fetch(&c, &format!("{base}/echo"), Some(data.clone())).await;
            assert_same(&up.body, &data, "upload echoed");
            println!(
                "{want:?} over 2 paths: client {}, server {}, {} subflows: {:?}",
                got.info.status(),
                view.status,
                sfs.len(),
                sfs.iter().map(|s| (s.local, s.remote)).collect::<Vec<_>>()
            );
        }
    });
}

/// Bytes received per subflow, by local address.
fn received(info: &MptcpConnInfo) -> Vec<(Option<SocketAddr>, u64)> {
    info.subflows()
        .expect("client subflows")
        .iter()
        .map(|s| (s.local, s.tcp.bytes_received.unwrap_or(0)))
        .collect()
}

#[test]
fn large_download_two_subflows_share() {
    require_mptcp();
    let net = two_paths();
    let (_rt, base) = start_server(&net);
    in_client(&net, async {
        // Side by side, for the figure only (timings are never asserted):
        // the same download over plain TCP, which has one path.
        let mut tcp = mptcp_net::Dialer::new();
        tcp.set_multipath_tcp(false);
        let tcp_client = client(MptcpConnector::with_dialer(tcp), false);
        let (warm, _) = server_view(&tcp_client, &base).await;
        assert_eq!(warm.info.status(), MptcpStatus::PlainTcp);
        let start = Instant::now();
        let plain = fetch(&tcp_client, &format!("{base}/bytes/{LARGE}"), None).await;
        let tcp_took = start.elapsed();
        assert_eq!(plain.body.len(), LARGE);
        drop(tcp_client);

        let c = client(MptcpConnector::new(), false);
        let (first, _) = server_view(&c, &base).await;
        wait_subflows(&first.info, 2).await;
        let before = received(&first.info);

        let start = Instant::now();
        let Got { body, info, .. } = fetch(&c, &format!("{base}/bytes/{LARGE}"), None).await;
        let took = start.elapsed();
        assert_eq!(
            info.local_addr(),
            first.info.local_addr(),
            "same connection"
        );
        assert_same(&body, &pattern(LARGE), "10 MB download");

        let after = received(&info);
        let deltas: Vec<(Option<SocketAddr>, u64)> = after
            .iter()
            .map(|(local, bytes)| {
                let was = before
                    .iter()
                    .find(|(l, _)| l == local)
                    .map_or(0, |(_, b)| *b);
                (*local, bytes - was)
            })
            .collect();
        let total: u64 = deltas.iter().map(|(_, b)| b).sum();
        let shares: Vec<f64> = deltas
            .iter()
            .map(|(_, b)| *b as f64 / total.max(1) as f64)
            .collect();
        let mbit = LARGE as f64 * 8.0 / took.as_secs_f64() / 1e6;
        println!(
            "10 MB over 2 x {RATE_MBIT} Mbit/s: MPTCP {took:.2?} ({mbit:.0} Mbit/s), plain TCP \
             {tcp_took:.2?}, TCP/MPTCP time ratio {:.2}; per subflow: {}",
            tcp_took.as_secs_f64() / took.as_secs_f64(),
            deltas
                .iter()
                .zip(&shares)
                .map(|((l, b), s)| format!(
                    "{} {b} B ({:.0}%)",
                    l.map_or("?".into(), |a| a.to_string()),
                    s * 100.0
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        assert!(total >= LARGE as u64, "the subflows carried {total} B");
        assert_eq!(shares.len(), 2, "{deltas:?}");
        for s in &shares {
            assert!(*s >= 0.20, "a subflow carried {:.0}% (< 20%)", s * 100.0);
        }
    });
}
