//! The `/metrics` responder on loopback, and its text checked by independent
//! parsers: `promtool check metrics` (Debian package `prometheus`) and Python's
//! `prometheus_client` (PyPI).

use std::io::Write;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mptcp_metrics::{serve, serve_with, Limits, Registry, Scrape, ScrapeError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

async fn start(source: impl Scrape, limits: Limits) -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve_with(listener, source, limits));
    addr
}

/// One request; the status code and the body.
async fn request(addr: SocketAddr, request: &[u8]) -> (u16, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    s.write_all(request).await.unwrap();
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_string(&mut text))
        .await
        .expect("an answer within 10 s")
        .unwrap();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP response");
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, body.to_string())
}

fn sample_registry() -> Registry {
    let r = Registry::with_prefix("mptcp_test");
    let conns = r
        .counter_vec(
            "connections_total",
            "Connections, by side.",
            &["route", "side"],
        )
        .unwrap();
    conns.with_label_values(&["a", "client"]).inc_by(3);
    let active = r
        .gauge_vec("connections_active", "Open connections.", &["route"])
        .unwrap();
    active.with_label_values(&["a"]).set(1);
    r.counter("scrapes_total", "Scrapes.").unwrap().inc();
    let h = r
        .histogram_vec("subflows", "Subflows.", &["route"], vec![1.0, 2.0, 4.0])
        .unwrap();
    h.with_label_values(&["a"]).observe(2.0);
    r
}

#[tokio::test]
async fn answers_metrics_and_refuses_the_rest() {
    let registry = sample_registry();
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(serve(listener, registry.clone()));

    let (status, body) = request(addr, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n").await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("mptcp_test_connections_total{route=\"a\",side=\"client\"} 3\n"),
        "{body}"
    );
    // A registry shared with the server: later updates are seen.
    registry
        .gauge("late", "Registered after the server started.")
        .unwrap()
        .set(7);
    let (_, body) = request(addr, b"GET /metrics HTTP/1.0\r\n\r\n").await;
    assert!(body.contains("mptcp_test_late 7\n"), "{body}");

    assert_eq!(
        request(addr, b"HEAD /metrics HTTP/1.1\r\n\r\n").await,
        (200, String::new())
    );
    assert_eq!(request(addr, b"GET / HTTP/1.1\r\n\r\n").await.0, 404);
    assert_eq!(
        request(addr, b"POST /metrics HTTP/1.1\r\n\r\n").await.0,
        405
    );
    assert_eq!(request(addr, b"nonsense\r\n\r\n").await.0, 400);
    let huge = format!("GET /metrics HTTP/1.1\r\nX: {}\r\n\r\n", "a".repeat(10_000));
    assert_eq!(request(addr, huge.as_bytes()).await.0, 431);
    // Still serving after all that.
    assert_eq!(request(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await.0, 200);
}

struct Failing;

impl Scrape for Failing {
    fn scrape(&self) -> Result<String, ScrapeError> {
        Err("the kernel said no".into())
    }
}

#[tokio::test]
async fn a_failed_scrape_is_a_500_with_the_reason() {
    let addr = start(Failing, Limits::default()).await;
    let (status, body) = request(addr, b"GET /metrics HTTP/1.1\r\n\r\n").await;
    assert_eq!((status, body.as_str()), (500, "the kernel said no\n"));
}

/// A scrape that takes its time, so that clients overlap.
struct Slow(Duration);

impl Scrape for Slow {
    fn scrape(&self) -> Result<String, ScrapeError> {
        std::thread::sleep(self.0);
        Ok("slow 1\n".into())
    }
}

#[tokio::test]
async fn silent_clients_do_not_hold_a_scrape_back_and_are_closed_in_time() {
    let limits = Limits::default()
        .max_concurrent(1)
        .io_timeout(Duration::from_millis(500));
    let addr = start(Slow(Duration::ZERO), limits).await;
    // More silent clients than scrape slots.
    let mut silent = Vec::new();
    for _ in 0..20 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    let (status, _) = tokio::time::timeout(
        Duration::from_millis(400),
        request(addr, b"GET /metrics HTTP/1.1\r\n\r\n"),
    )
    .await
    .expect("served before the silent clients' timeout");
    assert_eq!(status, 200);
    // Each silent client was closed without an answer.
    for mut s in silent {
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
            .await
            .expect("closed within the timeout")
            .unwrap();
        assert!(rest.is_empty(), "{rest:?}");
    }
}

#[tokio::test]
async fn past_max_waiting_the_oldest_silent_client_is_closed() {
    let limits = Limits::default()
        .max_waiting(8)
        .io_timeout(Duration::from_secs(30));
    let addr = start(Slow(Duration::ZERO), limits).await;
    let mut silent = Vec::new();
    for _ in 0..100 {
        silent.push(TcpStream::connect(addr).await.unwrap());
    }
    // The good client is the newest: served at once.
    let (status, _) = tokio::time::timeout(
        Duration::from_secs(5),
        request(addr, b"GET /metrics HTTP/1.1\r\n\r\n"),
    )
    .await
    .expect("served while 100 clients are silent");
    assert_eq!(status, 200);
    // The oldest were closed long before their 30 s.
    let mut first = silent.remove(0);
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), first.read_to_end(&mut rest))
        .await
        .expect("the oldest closed")
        .unwrap();
    assert!(rest.is_empty());
}

#[tokio::test]
async fn scrapes_beyond_max_concurrent_wait_their_turn() {
    let limits = Limits::default().max_concurrent(2);
    let addr = start(Slow(Duration::from_millis(300)), limits).await;
    let started = Instant::now();
    let clients: Vec<_> = (0..4)
        .map(|_| tokio::spawn(request(addr, b"GET /metrics HTTP/1.1\r\n\r\n")))
        .collect();
    for c in clients {
        assert_eq!(c.await.unwrap().0, 200);
    }
    // Four scrapes of 300 ms, two at a time: two rounds.
    let took = started.elapsed();
    assert!(took >= Duration::from_millis(550), "{took:?}");
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// Runs `program` with `input` on its standard input; fails loudly if it cannot run.
fn fed(program: &str, args: &[&str], input: &str, package: &str) -> std::process::Output {
    let mut child = Command::new(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {program} (install {package}): {e}"));
    let mut stdin = child.stdin.take().unwrap();
    stdin.write_all(input.as_bytes()).unwrap();
    drop(stdin);
    child.wait_with_output().unwrap()
}

#[test]
fn promtool_and_python_accept_the_text() {
    let text = sample_registry().render().unwrap();

    let out = fed(
        "promtool",
        &["check", "metrics"],
        &text,
        "the Debian package `prometheus`",
    );
    // No parse error and no lint problem.
    assert!(
        out.status.success() && out.stdout.is_empty() && out.stderr.is_empty(),
        "promtool check metrics: {}{}\n{text}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    let script = "import sys\n\
        from prometheus_client.parser import text_string_to_metric_families\n\
        for f in text_string_to_metric_families(sys.stdin.read()):\n\
        \x20   for s in f.samples:\n\
        \x20       print(f.type, s.name, sorted(s.labels.items()), float(s.value))\n";
    let out = fed(
        "python3",
        &["-c", script],
        &text,
        "python3 and `pip install prometheus_client`",
    );
    let parsed = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "prometheus_client: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for line in [
        "counter mptcp_test_connections_total [('route', 'a'), ('side', 'client')] 3.0",
        "gauge mptcp_test_connections_active [('route', 'a')] 1.0",
        "counter mptcp_test_scrapes_total [] 1.0",
        "histogram mptcp_test_subflows_bucket [('le', '2'), ('route', 'a')] 1.0",
    ] {
        assert!(
            parsed.lines().any(|l| l == line),
            "{line:?} missing:\n{parsed}"
        );
    }
}

/// Open descriptors of this process.
fn descriptors() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_idle_and_garbage_clients_leave_the_scrapes_served() {
    let limits = Limits::default().io_timeout(Duration::from_secs(2));
    let addr = start(Slow(Duration::ZERO), limits).await;
    let before = descriptors();
    let mut idle = Vec::new();
    for _ in 0..1000 {
        idle.push(TcpStream::connect(addr).await.unwrap());
    }
    // Garbage and oversized heads: refused with a status, never a panic.
    let big = vec![b'A'; 64 * 1024];
    for (junk, want) in [
        (&b"\x16\x03\x01\x02\x00\x01\r\n\r\n"[..], 400),
        (&big[..], 431),
        (&b"POST /metrics HTTP/1.1\r\n\r\n"[..], 405),
    ] {
        assert_eq!(request(addr, junk).await.0, want);
    }
    for _ in 0..20 {
        let (status, _) = tokio::time::timeout(
            Duration::from_secs(5),
            request(addr, b"GET /metrics HTTP/1.1\r\n\r\n"),
        )
        .await
        .expect("a scrape served beside 1,000 idle clients");
        assert_eq!(status, 200);
    }
    // Our 1,000 ends, and at most max_waiting (256) of the server's.
    let held = descriptors() - before;
    println!("descriptors held with 1,000 idle clients: {held}");
    assert!(held <= 1000 + 256 + 16, "{held} descriptors");
}
