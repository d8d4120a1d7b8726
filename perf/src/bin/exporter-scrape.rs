//! `exporter-scrape`: how long one scrape of `mptcp exporter` takes with N live MPTCP
//! connections (the issue's bound: under 20 ms with 1,000).
//!
//! ```sh
//! cargo run --release --manifest-path perf/Cargo.toml --bin exporter-scrape -- \
//!     [--connections 1000] [--scrapes 50]
//! ```
//!
//! Builds a two-path `mptcp-testnet` network, opens N connections from the client to
//! one server port (each gets a second subflow from the client's endpoint on path 1,
//! so the `sock_diag` dump holds N MPTCP sockets and 2N subflows), waits until every
//! one has both subflows, then scrapes the client's namespace K times in process
//! (`Collector::scrape`: the counters read, the sock_diag dump, the endpoint dump,
//! limits, sysctls, rendering) and K times over HTTP (`GET /metrics` on loopback, a
//! new connection each time, as Prometheus does). Prints median, p90 and max of each.
//! A benchmark, not a test: it asserts nothing about time.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mptcp_exporter::Collector;
use mptcp_net::{Dialer, ListenConfig, MptcpExt};
use mptcp_testnet::TestNet;

const PORT: u16 = 5201;

fn main() {
    if let Err(e) = run() {
        eprintln!("exporter-scrape: {e}");
        std::process::exit(1);
    }
}

fn arg(name: &str, default: usize) -> Result<usize, String> {
    let args: Vec<String> = std::env::args().collect();
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .and_then(|v| v.parse().ok())
            .ok_or(format!("{name} needs a number")),
        None => Ok(default),
    }
}

fn run() -> Result<(), String> {
    let n = arg("--connections", 1000)?;
    let k = arg("--scrapes", 50)?.max(1);
    let net = TestNet::builder()
        .paths(2)
        .build()
        .map_err(|e| format!("test network (root, iproute2): {e}"))?;
    let listener = net
        .server()
        .run(|| ListenConfig::new().listen(("0.0.0.0", PORT)))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("listen: {e}"))?;
    let to = SocketAddr::new(net.server().addr(0).ok_or("no server address")?, PORT);

    // Accept on one thread while the client dials N times from inside its namespace.
    let setup = Instant::now();
    let (clients, accepted) = std::thread::scope(|s| {
        let acceptor = s.spawn(|| {
            (0..n)
                .map(|_| listener.accept().map(|(s, _)| s))
                .collect::<Result<Vec<_>, _>>()
        });
        let clients = net
            .client()
            .run(move || {
                (0..n)
                    .map(|_| Dialer::new().dial(to))
                    .collect::<Result<Vec<TcpStream>, _>>()
            })
            .map_err(|e| e.to_string())
            .and_then(|r| r.map_err(|e| format!("dial: {e}")));
        let accepted = acceptor
            .join()
            .map_err(|_| "the acceptor panicked".to_string())
            .and_then(|r| r.map_err(|e| format!("accept: {e}")));
        (clients, accepted)
    });
    let (mut clients, accepted) = (clients?, accepted?);
    // Data both ways lets the path manager open the second subflow.
    for c in &mut clients {
        c.write_all(b"x").map_err(|e| e.to_string())?;
    }
    for mut a in &accepted {
        a.read_exact(&mut [0]).map_err(|e| e.to_string())?;
        a.write_all(b"y").map_err(|e| e.to_string())?;
    }
    for c in &mut clients {
        c.read_exact(&mut [0]).map_err(|e| e.to_string())?;
    }
    let deadline = Instant::now() + Duration::from_secs(60);
    for c in &clients {
        while c.subflows().map_err(|e| e.to_string())?.len() < 2 {
            if Instant::now() > deadline {
                return Err("not every connection got its second subflow within 60 s".into());
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    eprintln!(
        "{n} connections with 2 subflows each, set up in {:?}",
        setup.elapsed()
    );

    // Where a scrape's time goes: each part alone, in the client's namespace.
    let parts = net
        .client()
        .run(move || {
            let time = |f: &dyn Fn()| {
                let mut v: Vec<Duration> = (0..k)
                    .map(|_| {
                        let t = Instant::now();
                        f();
                        t.elapsed()
                    })
                    .collect();
                v.sort();
                v[v.len() / 2]
            };
            let pm = mptcp_netlink::PathManager::open().ok();
            vec![
                (
                    "counters read",
                    time(&|| drop(mptcp_netlink::Counters::read())),
                ),
                (
                    "sock_diag dump",
                    time(&|| drop(mptcp_netlink::connections())),
                ),
                (
                    "endpoints + limits",
                    time(&|| {
                        if let Some(pm) = &pm {
                            drop(pm.endpoints());
                            drop(pm.limits());
                        }
                    }),
                ),
                (
                    "sysctls",
                    time(&|| {
                        for name in mptcp_exporter::SYSCTLS {
                            drop(mptcp_netlink::sysctl::get(name));
                        }
                    }),
                ),
            ]
        })
        .map_err(|e| e.to_string())?;

    let collector =
        Collector::new(&[net.client().name().to_string()]).map_err(|e| e.to_string())?;
    let first = collector.scrape().map_err(|e| e.to_string())?;
    let live = first
        .lines()
        .find(|l| l.starts_with("mptcp_connections{fallback=\"false\",state=\"established\"}"))
        .and_then(|l| l.rsplit(' ').next())
        .ok_or("no established connections line in the scrape")?;
    if live != n.to_string() {
        return Err(format!("the scrape counts {live} connections, not {n}"));
    }
    let mut in_process = Vec::with_capacity(k);
    let cpu_before = cpu();
    for _ in 0..k {
        let t = Instant::now();
        let text = collector.scrape().map_err(|e| e.to_string())?;
        in_process.push(t.elapsed());
        std::hint::black_box(text);
    }
    let cpu_after = cpu();
    let per_scrape =
        |a: Duration, b: Duration| (b.saturating_sub(a)).as_secs_f64() * 1e3 / k as f64;
    let (user, sys) = (
        per_scrape(cpu_before.0, cpu_after.0),
        per_scrape(cpu_before.1, cpu_after.1),
    );

    // The exporter's responder (mptcp_metrics::serve) on a runtime of its own.
    let collector = Arc::new(collector);
    let http = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    let addr = http.local_addr().map_err(|e| e.to_string())?;
    http.set_nonblocking(true).map_err(|e| e.to_string())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    let listener = {
        let _runtime = rt.enter();
        tokio::net::TcpListener::from_std(http).map_err(|e| e.to_string())?
    };
    let server = rt.spawn(mptcp_metrics::serve(listener, Arc::clone(&collector)));
    let mut over_http = Vec::with_capacity(k);
    for _ in 0..k {
        let t = Instant::now();
        match get(addr) {
            Ok(len) if len > 0 => over_http.push(t.elapsed()),
            Ok(_) => return Err("empty response".to_string()),
            Err(e) => return Err(e.to_string()),
        }
    }
    server.abort();
    drop(rt);

    println!(
        "scrape of {n} connections ({} bytes of metrics), {k} scrapes each:",
        first.len()
    );
    report("in process (Collector::scrape)", &mut in_process);
    report("GET /metrics over loopback", &mut over_http.clone());
    println!(
        "  CPU per in-process scrape: user {user:.2} ms, system {sys:.2} ms (kernel: the dumps)"
    );
    println!("  medians of the parts alone:");
    for (what, t) in parts {
        println!("    {what:<20} {:>7.2} ms", t.as_secs_f64() * 1e3);
    }
    drop((clients, accepted));
    Ok(())
}

/// One `GET /metrics` on a new connection; the response's length.
fn get(addr: SocketAddr) -> std::io::Result<usize> {
    let mut s = TcpStream::connect(addr)?;
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: perf\r\n\r\n")?;
    let mut body = Vec::new();
    s.read_to_end(&mut body)?;
    Ok(body.len())
}

/// The process's user and system CPU time so far (`getrusage(RUSAGE_SELF)`).
fn cpu() -> (Duration, Duration) {
    // SAFETY: getrusage writes one `struct rusage` into the zeroed value we own.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let d = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    (d(usage.ru_utime), d(usage.ru_stime))
}

fn report(what: &str, times: &mut [Duration]) {
    times.sort();
    let at = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    println!(
        "  {what:<32} median {:>7.2} ms   p90 {:>7.2} ms   max {:>7.2} ms",
        at(0.5).as_secs_f64() * 1e3,
        at(0.9).as_secs_f64() * 1e3,
        at(1.0).as_secs_f64() * 1e3
    );
}
