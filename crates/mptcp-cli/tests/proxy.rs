//! `mptcp proxy` through the built binary: load (5,000 connections and the
//! process's RSS, a 64-descriptor limit on the process); the command line (config
//! file, SIGTERM drain, JSON lines, exit codes). The relay's own behaviour on a
//! test network (byte-exact chain, IPv6 with a PROXY header, a path cut,
//! aggregation of two shaped paths) is tested in-process in
//! crates/mptcp-proxy/tests/chain.rs.

mod common;

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::process::Command;
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use mptcp_testnet::support::{round_trip, JsonChild};
use serde_json::Value;

/// A running `mptcp --json proxy ...`, its JSON lines collected as they come
/// ([`JsonChild`]). Killed on drop.
struct ProxyProc {
    child: JsonChild,
    listen: SocketAddr,
}

impl ProxyProc {
    /// Starts `[wrapper...] mptcp [--netns NS] --json proxy ARGS` and waits for
    /// its `listening` line.
    fn start(wrapper: &[&str], ns: Option<&str>, args: &[&str]) -> ProxyProc {
        let bin = env!("CARGO_BIN_EXE_mptcp");
        let mut cmd = match wrapper.split_first() {
            Some((first, rest)) => {
                let mut c = Command::new(first);
                c.args(rest).arg(bin);
                c
            }
            None => Command::new(bin),
        };
        if let Some(ns) = ns {
            cmd.args(["--netns", ns]);
        }
        cmd.args(["--json", "proxy"]).args(args);
        cmd.env_remove("MPTCP_LOG").env_remove("MPTCP_NET");
        if let Ok(log) = std::env::var("PROXY_TEST_LOG") {
            cmd.env("MPTCP_LOG", log);
        }
        let mut child = JsonChild::spawn(&mut cmd);
        let (_, v) = child.wait_for("the listening line", 0, Duration::from_secs(10), |v| {
            v["type"] == "listening"
        });
        let listen = v["listen"].as_str().unwrap().parse().unwrap();
        ProxyProc { child, listen }
    }

    /// Every line so far.
    fn lines(&self) -> Vec<Value> {
        self.child.lines().into_iter().map(|(_, v)| v).collect()
    }

    /// The `connection` lines so far.
    fn connections(&self) -> Vec<Value> {
        self.lines()
            .into_iter()
            .filter(|v| v["type"] == "connection")
            .collect()
    }

    /// Waits (10 s at most) for `n` connection lines.
    fn wait_connections(&self, n: usize) -> Vec<Value> {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let c = self.connections();
            if c.len() >= n || Instant::now() > deadline {
                assert!(c.len() >= n, "{} of {n} connection lines: {c:?}", c.len());
                return c;
            }
            thread::sleep(Duration::from_millis(20));
        }
    }

    fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// SIGTERM, then the exit status (10 s at most) and every line.
    fn stop(mut self) -> (std::process::ExitStatus, Vec<Value>) {
        signal(self.pid(), nix::sys::signal::Signal::SIGTERM);
        let status = self.child.wait_exit(Duration::from_secs(10));
        (status, self.lines())
    }
}

fn signal(pid: i32, sig: nix::sys::signal::Signal) {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), sig).unwrap();
}

/// CPU seconds (user + system) a process has used, from /proc/PID/stat.
fn cpu_seconds(pid: i32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    let after = &stat[stat.rfind(')').unwrap() + 2..];
    let f: Vec<&str> = after.split(' ').collect();
    // Fields 14 and 15 (utime, stime), counted from the state (field 3) here.
    let ticks: u64 = f[11].parse::<u64>().unwrap() + f[12].parse::<u64>().unwrap();
    ticks as f64 / rustix::param::clock_ticks_per_second() as f64
}

/// Resident memory of a process in KiB.
fn rss_kib(pid: i32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Raises this process's descriptor limit to at least `need` (the proxy started
/// afterwards inherits it): up to `want`, within the hard limit, which is raised
/// too where the process may.
fn raise_nofile(need: u64, want: u64) -> u64 {
    use rustix::process::{getrlimit, setrlimit, Resource, Rlimit};
    let cur = getrlimit(Resource::Nofile);
    let raised = setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(want),
            maximum: Some(want.max(cur.maximum.unwrap_or(want))),
        },
    );
    if raised.is_ok() {
        return want;
    }
    // No CAP_SYS_RESOURCE (a container): as far as the hard limit goes.
    let hard = cur.maximum.unwrap_or(u64::MAX);
    assert!(
        hard >= need,
        "this test needs {need} descriptors; the hard limit is {hard} and cannot be raised"
    );
    let soft = hard.min(want);
    setrlimit(
        Resource::Nofile,
        Rlimit {
            current: Some(soft),
            maximum: cur.maximum,
        },
    )
    .unwrap_or_else(|e| panic!("cannot raise RLIMIT_NOFILE to {soft}: {e}"));
    soft
}

/// An echo server for many connections at once, on a tokio runtime of its own.
fn tokio_echo() -> (SocketAddr, tokio::runtime::Runtime) {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .unwrap();
    let listener = rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .unwrap();
    let addr = listener.local_addr().unwrap();
    rt.spawn(async move {
        loop {
            let Ok((mut s, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let (mut r, mut w) = s.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    (addr, rt)
}

/// One `GET /metrics` on a new connection: the whole response.
fn scrape(metrics: SocketAddr) -> String {
    let mut http = TcpStream::connect(metrics).unwrap();
    http.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    http.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut page = String::new();
    http.read_to_string(&mut page).unwrap();
    page
}

#[test]
fn proxy_serves_5000_concurrent_connections() {
    const N: usize = 5000;
    // This process: 5,000 clients and 5,000 backend sockets; the proxy: 10,000
    // sockets and its pipes in use.
    let limit = raise_nofile(12_000, 65_536);
    println!("RLIMIT_NOFILE {limit}");
    let (backend, rt) = tokio_echo();
    let proxy = ProxyProc::start(
        &[],
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--to",
            &backend.to_string(),
            "--to-tcp",
            "--threads",
            "2",
        ],
    );
    let addr = proxy.listen;
    let pid = proxy.pid();
    let started = Instant::now();
    let (rss, served) = rt.block_on(async move {
        // Every client connects and gets its echo, and all stay open together
        // until the RSS is read.
        let barrier = Arc::new(tokio::sync::Barrier::new(N + 1));
        let mut tasks = Vec::with_capacity(N);
        for i in 0..N {
            let barrier = Arc::clone(&barrier);
            tasks.push(tokio::spawn(async move {
                use tokio::io::{AsyncReadExt, AsyncWriteExt};
                let r: io::Result<()> = async {
                    let mut s = mptcp_net::Dialer::new().dial_async(addr).await?;
                    let msg = format!("client {i:05} says hello");
                    s.write_all(msg.as_bytes()).await?;
                    let mut back = vec![0u8; msg.len()];
                    s.read_exact(&mut back).await?;
                    assert_eq!(back, msg.as_bytes());
                    barrier.wait().await;
                    Ok(())
                }
                .await;
                if r.is_err() {
                    barrier.wait().await;
                }
                r
            }));
        }
        let all = tokio::time::timeout(Duration::from_secs(60), async {
            barrier.wait().await;
        })
        .await;
        assert!(all.is_ok(), "not every client got its echo within 60 s");
        let rss = rss_kib(pid);
        let mut served = 0;
        let mut failures = Vec::new();
        for (i, t) in tasks.into_iter().enumerate() {
            match t.await.unwrap() {
                Ok(()) => served += 1,
                Err(e) => failures.push(format!("client {i}: {e}")),
            }
        }
        if !failures.is_empty() {
            println!("failed: {failures:?}");
        }
        (rss, served)
    });
    let took = started.elapsed();
    println!(
        "{served}/{N} concurrent connections served in {took:?}; proxy RSS with all open: {rss} KiB ({:.1} KiB per connection)",
        rss as f64 / N as f64
    );
    assert_eq!(served, N);
    let lines = proxy.wait_connections(N);
    let clean = lines.iter().filter(|l| l["end"] == "closed").count();
    assert_eq!(clean, N, "every connection ended cleanly");
    let (status, _) = proxy.stop();
    assert!(status.success(), "{status}");
}

#[test]
fn proxy_under_64_descriptors_stays_up_without_spinning() {
    let (backend, rt) = tokio_echo();
    let proxy = ProxyProc::start(
        &["prlimit", "--nofile=64:64", "--"],
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--to",
            &backend.to_string(),
            "--to-tcp",
            "--threads",
            "1",
        ],
    );
    let addr = proxy.listen;
    // 200 clients connect and hold on; far more than 64 descriptors allow.
    let clients: Vec<TcpStream> = (0..200)
        .map(|i| {
            let mut s = mptcp_net::Dialer::new().dial(addr).unwrap();
            let _ = s.write_all(format!("hold {i}").as_bytes());
            s
        })
        .collect();
    thread::sleep(Duration::from_millis(500));
    let cpu_before = cpu_seconds(proxy.pid());
    let window = Duration::from_secs(2);
    thread::sleep(window);
    let cpu = cpu_seconds(proxy.pid()) - cpu_before;
    println!("200 clients held, 64 descriptors: the proxy used {cpu:.3} s of CPU in {window:?}");
    assert!(
        cpu < 0.2,
        "the proxy used {cpu:.3} s of CPU in {window:?}: it spins"
    );
    drop(clients);
    thread::sleep(Duration::from_millis(300));
    // Served again once the clients have left (the backlog drains first).
    let left_at = Instant::now();
    let deadline = left_at + Duration::from_secs(10);
    let served = loop {
        let s = mptcp_net::Dialer::new().dial(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        if round_trip(&s, b"after the storm").ok().as_deref() == Some(b"after the storm") {
            break true;
        }
        if Instant::now() > deadline {
            break false;
        }
        thread::sleep(Duration::from_millis(100));
    };
    let mut ends: Vec<String> = proxy
        .connections()
        .iter()
        .map(|c| {
            format!(
                "{} {} {:.1}",
                c["end"].as_str().unwrap_or("?"),
                c["relay"].as_str().unwrap_or("-"),
                c["duration"].as_f64().unwrap_or(0.0)
            )
        })
        .collect();
    ends.sort();
    ends.dedup();
    println!("connection endings (end, relay, seconds): {ends:?}");
    assert!(
        served,
        "the proxy does not serve again after the clients left"
    );
    println!(
        "served again {:?} after the clients left",
        left_at.elapsed()
    );
    let errors = proxy.connections().len();
    let (status, lines) = proxy.stop();
    assert!(status.success(), "the proxy did not stay up: {status}");
    println!("{errors} connection lines; last: {:?}", lines.last());
    drop(rt);
}

#[test]
fn proxy_config_file_two_routes_and_sigterm_drain() {
    let (backend, _rt) = tokio_echo();
    let dir = std::env::temp_dir().join(format!("mptcp-proxy-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("proxy.toml");
    std::fs::write(
        &file,
        format!(
            "drain_timeout = \"5s\"\nmetrics = \"127.0.0.1:0\"\n\n[[route]]\nname = \"a\"\nlisten = \"127.0.0.1:0\"\nto = \"{backend}\"\nto_tcp = true\n\n\
             [[route]]\nname = \"b\"\nlisten = \"127.0.0.1:0\"\nto = \"{backend}\"\nsplice = true\nbulk_buffer = 262144\n"
        ),
    )
    .unwrap();
    let proxy = ProxyProc::start(&[], None, &["--config", file.to_str().unwrap()]);
    let deadline = Instant::now() + Duration::from_secs(5);
    let listening: Vec<Value> = loop {
        let l: Vec<Value> = proxy
            .lines()
            .into_iter()
            .filter(|v| v["type"] == "listening")
            .collect();
        if l.len() == 2 || Instant::now() > deadline {
            break l;
        }
        thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(listening.len(), 2, "{listening:?}");
    let b: SocketAddr = listening[1]["listen"].as_str().unwrap().parse().unwrap();
    assert_eq!(listening[1]["route"], "b");
    let s = mptcp_net::Dialer::new().dial(b).unwrap();
    assert!(round_trip(&s, b"via b").unwrap() == b"via b");
    let rec = &proxy.wait_connections(1)[0];
    assert_eq!(rec["route"], "b", "{rec}");
    assert_eq!(rec["relay"], "copy", "{rec}");

    // Prometheus metrics, scraped over HTTP.
    let metrics: SocketAddr = listening[0]["metrics"].as_str().unwrap().parse().unwrap();
    let page = scrape(metrics);
    assert!(page.starts_with("HTTP/1.1 200 OK\r\n"), "{page}");
    for want in [
        "mptcp_proxy_connections_total{mptcp=\"active\",route=\"b\",side=\"client\"} 1",
        "mptcp_proxy_connections_active{mptcp=\"active\",route=\"b\",side=\"client\"} 0",
        "mptcp_proxy_bytes_total{direction=\"to_upstream\",route=\"b\"} 5",
        "mptcp_proxy_relay_total{mode=\"copy\",route=\"b\"} 1",
    ] {
        assert!(page.contains(want), "{want} missing from\n{page}");
    }

    // An open connection during SIGTERM: new clients are refused, it finishes.
    let mut open = mptcp_net::Dialer::new().dial(proxy.listen).unwrap();
    open.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    open.write_all(b"1").unwrap();
    let mut one = [0u8; 1];
    open.read_exact(&mut one).unwrap();
    signal(proxy.pid(), nix::sys::signal::Signal::SIGTERM);
    thread::sleep(Duration::from_millis(300));
    assert!(
        TcpStream::connect_timeout(&proxy.listen, Duration::from_secs(1)).is_err(),
        "accepting after SIGTERM"
    );
    open.write_all(b"2").unwrap();
    open.read_exact(&mut one).unwrap();
    assert_eq!(&one, b"2");
    open.shutdown(Shutdown::Write).unwrap();
    let (status, lines) = proxy.stop();
    assert!(status.success(), "{status}");
    let stopped = lines.iter().find(|l| l["type"] == "stopped").unwrap();
    assert_eq!(stopped["reset_at_deadline"], 0, "{stopped}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn proxy_bad_input_is_one_line_and_status_2() {
    let dir = std::env::temp_dir().join(format!("mptcp-proxy-bad-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("bad.toml");
    std::fs::write(
        &file,
        "[[route]]\nlisten = \"127.0.0.1:0\"\nto = \"x:1\"\nidle = \"5s\"\n",
    )
    .unwrap();
    let unused = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 9);
    for (args, want) in [
        (vec!["--config", file.to_str().unwrap()], "line 4"),
        (
            vec!["--listen", "127.0.0.1:0", "--to", "nohost"],
            "HOST:PORT",
        ),
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--to",
                "a:1",
                "--proxy-protocol",
                "v3",
            ],
            "v3",
        ),
        (
            vec![
                "--listen",
                "127.0.0.1:0",
                "--to",
                "a:1",
                "--idle-timeout",
                "soon",
            ],
            "soon",
        ),
        (vec!["--listen", &unused.to_string()], "--to"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mptcp"))
            .arg("proxy")
            .args(&args)
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert_eq!(err.lines().count(), 1, "{args:?}: {err}");
        assert!(err.contains(want), "{args:?}: {err}");
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// `--user`: once listening, the proxy started as root runs as nobody with no
/// capability left, and still relays; a user that does not
/// exist, or root, is refused at start with one line and status 2.
#[test]
fn proxy_user_drops_root_after_binding_and_still_relays() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "this test needs root: it starts the proxy as root and checks it becomes nobody"
    );
    let (backend, _rt) = tokio_echo();
    let proxy = ProxyProc::start(
        &[],
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--to",
            &backend.to_string(),
            "--user",
            "nobody",
        ],
    );
    let status = std::fs::read_to_string(format!("/proc/{}/status", proxy.pid())).unwrap();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {status}"))
            .split_whitespace()
            .collect::<Vec<_>>()
    };
    let nobody = nix::unistd::User::from_name("nobody")
        .unwrap()
        .expect("a nobody user");
    let uid = nobody.uid.to_string();
    assert_eq!(field("Uid:"), vec![uid.as_str(); 4], "{status}");
    assert_eq!(field("Groups:"), vec![nobody.gid.to_string()], "{status}");
    for caps in ["CapPrm:", "CapEff:", "CapAmb:"] {
        assert_eq!(field(caps), vec!["0000000000000000"], "{caps} {status}");
    }
    let client = TcpStream::connect(proxy.listen).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let data: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
    assert!(round_trip(&client, &data).unwrap() == data);
    let (exit, _) = proxy.stop();
    assert!(exit.success(), "{exit}");

    for (user, says) in [
        ("no-such-user-here", "no such user"),
        ("root", "that is root"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_mptcp"))
            .args([
                "proxy",
                "--listen",
                "127.0.0.1:0",
                "--to",
                "127.0.0.1:9",
                "--user",
                user,
            ])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{user}: {err}");
        assert_eq!(err.trim().lines().count(), 1, "{user}: {err}");
        assert!(err.contains(says), "{user}: {err}");
    }
}

/// `--no-connection-log`: no line per connection, while the metrics still count
/// every one and the stop line still comes.
#[test]
fn proxy_no_connection_log_prints_none_and_still_counts() {
    let (backend, _rt) = tokio_echo();
    let to = backend.to_string();
    let proxy = ProxyProc::start(
        &[],
        None,
        &[
            "--listen",
            "127.0.0.1:0",
            "--to",
            &to,
            "--metrics",
            "127.0.0.1:0",
            "--no-connection-log",
        ],
    );
    let (metrics, route): (SocketAddr, String) = {
        let lines = proxy.lines();
        let l = lines.iter().find(|v| v["type"] == "listening").unwrap();
        (
            l["metrics"].as_str().unwrap().parse().unwrap(),
            l["route"].as_str().unwrap().to_string(),
        )
    };
    for i in 0..3u8 {
        let s = mptcp_net::Dialer::new().dial(proxy.listen).unwrap();
        assert_eq!(round_trip(&s, &[i; 100]).unwrap(), vec![i; 100]);
    }
    // The counters move once the sessions end; give them a moment.
    let deadline = Instant::now() + Duration::from_secs(10);
    let want =
        format!("mptcp_proxy_bytes_total{{direction=\"to_upstream\",route=\"{route}\"}} 300");
    let page = loop {
        let page = scrape(metrics);
        if page.contains(&want) || Instant::now() > deadline {
            break page;
        }
        thread::sleep(Duration::from_millis(50));
    };
    assert!(page.contains(&want), "{want} missing from\n{page}");
    let (status, lines) = proxy.stop();
    assert!(status.success(), "{status}");
    assert!(
        !lines.iter().any(|v| v["type"] == "connection"),
        "a connection line was printed: {lines:?}"
    );
}
