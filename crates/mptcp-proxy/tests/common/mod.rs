//! Helpers shared by the integration tests: a proxy on its own runtime thread,
//! backends, an upload and the sink that measures its rate; byte patterns, echo
//! and round trips come from `mptcp_testnet::support`.
#![allow(dead_code)]

pub mod gateway;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use mptcp_proxy::{Config, ConnRecord, Metrics, Proxy, Route, RunSummary, ShutdownHandle};

/// A proxy running on a runtime of its own thread.
pub struct Running {
    pub addr: SocketAddr,
    pub stop: ShutdownHandle,
    pub records: Arc<Mutex<Vec<ConnRecord>>>,
    pub metrics: Arc<Metrics>,
    pub metrics_addr: Option<SocketAddr>,
    thread: Option<JoinHandle<RunSummary>>,
}

impl Running {
    /// Stops the proxy and waits for it.
    pub fn stop(mut self) -> RunSummary {
        self.stop.shutdown();
        self.thread.take().unwrap().join().expect("proxy thread")
    }

    /// Waits until `n` connections have finished (10 s at most) and returns them.
    pub fn wait_records(&self, n: usize) -> Vec<ConnRecord> {
        wait_records(&self.records, n)
    }
}

/// Waits until `records` holds `n` records (10 s at most) and returns them.
pub fn wait_records<R: Clone + std::fmt::Debug>(records: &Mutex<Vec<R>>, n: usize) -> Vec<R> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = records.lock().unwrap().clone();
        if got.len() >= n {
            return got;
        }
        assert!(
            Instant::now() < deadline,
            "only {} of {n} connection records after 10 s: {got:?}",
            got.len()
        );
        thread::sleep(Duration::from_millis(20));
    }
}

/// Stops a proxy or gateway listening on `addr` while `open` is relayed (an
/// echo of 4 bytes), and checks the drain: new clients refused, `open` still
/// relayed, then reset at the `drain` deadline. `wait` waits for the end and
/// returns the count reset there.
pub fn check_drain_then_reset(
    addr: SocketAddr,
    open: &mut TcpStream,
    drain: Duration,
    stop: &ShutdownHandle,
    wait: impl FnOnce() -> usize,
) {
    let mut b = [0u8; 4];
    let started = Instant::now();
    stop.shutdown();
    thread::sleep(Duration::from_millis(200));
    // The listener is closed: new clients are refused.
    let refused = TcpStream::connect_timeout(&addr, Duration::from_secs(1));
    assert!(refused.is_err(), "accepting a client while stopping");
    // The open connection still works during the drain...
    open.write_all(b"pong").unwrap();
    open.read_exact(&mut b).unwrap();
    assert_eq!(&b, b"pong");
    // ...and is reset at the deadline, not left to close cleanly.
    assert_eq!(wait(), 1);
    let took = started.elapsed();
    assert!(
        took >= drain && took < drain + Duration::from_millis(2200),
        "{took:?}"
    );
    let r = open.read(&mut b);
    assert!(
        matches!(&r, Err(e) if e.kind() == io::ErrorKind::ConnectionReset),
        "{r:?}"
    );
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(t) = self.thread.take() {
            self.stop.shutdown_now();
            let _ = t.join();
        }
    }
}

/// Starts a proxy with `config`, on a runtime of two workers.
pub fn start_config(config: Config) -> Running {
    start_config_in(config, |run| run())
}

/// The body of a proxy's thread, for [`start_config_in`].
pub type ProxyThread = Box<dyn FnOnce() -> RunSummary + Send>;

/// Starts a proxy with `config` on a thread that runs its body through `enter`:
/// `|run| host.run(run).unwrap()` puts the proxy, its runtime's workers and
/// every socket it makes in a test network's namespace.
pub fn start_config_in(
    config: Config,
    enter: impl FnOnce(ProxyThread) -> RunSummary + Send + 'static,
) -> Running {
    let (tx, rx) = std::sync::mpsc::channel();
    let body: ProxyThread = Box::new(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("tokio runtime");
        rt.block_on(async move {
            let mut proxy = Proxy::bind(&config).await.expect("bind the proxy");
            let records = Arc::new(Mutex::new(Vec::new()));
            let r = Arc::clone(&records);
            proxy.on_connection_end(move |rec| r.lock().unwrap().push(rec.clone()));
            tx.send((
                proxy.local_addrs()[0].1,
                proxy.shutdown_handle(),
                records,
                proxy.metrics(),
                proxy.metrics_addr(),
            ))
            .unwrap();
            proxy.run().await
        })
    });
    let thread = thread::spawn(move || enter(body));
    let (addr, stop, records, metrics, metrics_addr) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("proxy started");
    Running {
        addr,
        stop,
        records,
        metrics,
        metrics_addr,
        thread: Some(thread),
    }
}

/// Starts a proxy with one route.
pub fn start(route: Route) -> Running {
    let mut config = Config::new(vec![route]);
    config.drain_timeout = Duration::from_secs(2);
    start_config(config)
}

/// A plain TCP echo server on loopback that serves `n` connections one after the
/// other, each echoed until EOF, then half-closed.
pub fn echo_backend(n: usize) -> (SocketAddr, JoinHandle<io::Result<()>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    (addr, echo(listener, n))
}

/// Sends `bytes` of [`pattern`] through `stream`, half-closes, and reads the
/// [`sink`]'s 24-byte answer (the total, and the bytes and nanoseconds after
/// its warm-up); checks the total and returns the rate after the warm-up
/// (bytes per second).
pub fn upload(stream: &TcpStream, bytes: usize) -> f64 {
    let data = pattern(bytes);
    (&*stream).write_all(&data).unwrap();
    stream.shutdown(std::net::Shutdown::Write).unwrap();
    let mut answer = [0u8; 24];
    (&*stream).read_exact(&mut answer).unwrap();
    let field = |i: usize| u64::from_be_bytes(answer[i * 8..i * 8 + 8].try_into().unwrap());
    assert_eq!(field(0), bytes as u64, "the sink got a different count");
    field(1) as f64 / (field(2) as f64 * 1e-9)
}

/// Counts what `n` connections send, one after the other, and answers each
/// with three big-endian u64: the total, and the bytes and nanoseconds after
/// the first `warm_up` bytes (slow start and the second subflow's set-up are
/// left out, the same way for every connection measured).
pub fn sink(listener: TcpListener, n: usize, warm_up: u64) -> JoinHandle<()> {
    thread::spawn(move || {
        for _ in 0..n {
            let (mut s, _) = listener.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            let mut buf = vec![0u8; 256 * 1024];
            let mut total = 0u64;
            let mut warm: Option<(Instant, u64)> = None;
            loop {
                let k = s.read(&mut buf).unwrap();
                if k == 0 {
                    break;
                }
                total += k as u64;
                if warm.is_none() && total >= warm_up {
                    warm = Some((Instant::now(), total));
                }
            }
            let (at, base) = warm.expect("the warm-up was reached");
            let mut answer = Vec::with_capacity(24);
            answer.extend_from_slice(&total.to_be_bytes());
            answer.extend_from_slice(&(total - base).to_be_bytes());
            answer.extend_from_slice(&(at.elapsed().as_nanos() as u64).to_be_bytes());
            s.write_all(&answer).unwrap();
        }
    })
}

/// `iptables -t mangle ACTION PREROUTING` (`-A` or `-D`) in `ns` of a rule that
/// strips the MPTCP option (kind 30) from the TCP packets to `port` other than
/// SYNs, `only` narrowing which (more match options, or none): the server's
/// kernel then completes a connection from a third ACK without MP_CAPABLE and
/// falls back to TCP.
#[allow(dead_code)] // Not every test file uses it.
pub fn strip_mptcp_after_syn(ns: &mptcp_testnet::Netns, action: &str, port: u16, only: &[&str]) {
    let port = port.to_string();
    let head = [
        "-w",
        "-t",
        "mangle",
        action,
        "PREROUTING",
        "-p",
        "tcp",
        "--dport",
        &port,
        "!",
        "--syn",
    ];
    let tail = ["-j", "TCPOPTSTRIP", "--strip-options", "30"];
    let args = [&head[..], only, &tail].concat();
    let out = ns.exec("iptables", args);
    out.unwrap_or_else(|e| panic!("this test needs iptables with TCPOPTSTRIP: {e}"));
}

// Not every test file uses them.
#[allow(unused_imports)]
pub use mptcp_testnet::support::{echo, pattern, round_trip};

/// Fails loudly when MPTCP sockets cannot be made here.
pub fn require_mptcp() {
    let s = mptcp_net::support().expect("probe MPTCP support");
    assert!(
        s.is_available(),
        "these tests need MPTCP sockets (net.mptcp.enabled=1, kernel 5.6+): {s}"
    );
}
