//! The `mptcp pm run` daemon as a child process, for the pm tests.

use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mptcp_netlink::{Endpoint, PathManager};
use mptcp_testnet::Netns;
use serde_json::Value;

/// A running `mptcp --json pm run`, its JSON lines collected as they come, each with
/// the instant it was read. Killed on drop.
pub struct PmDaemon {
    child: Child,
    lines: Arc<Mutex<Vec<(Instant, Value)>>>,
    stderr: Arc<Mutex<String>>,
}

impl PmDaemon {
    pub fn start(ns: &str, state: &Path, args: &[&str]) -> PmDaemon {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mptcp"))
            .args(["--netns", ns, "--json", "pm", "run", "--state-dir"])
            .arg(state)
            .args(args)
            .env_remove("MPTCP_LOG")
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run mptcp pm run");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let stderr = Arc::new(Mutex::new(String::new()));
        let (out, err) = (child.stdout.take().unwrap(), child.stderr.take().unwrap());
        let l = Arc::clone(&lines);
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                let v: Value = serde_json::from_str(&line)
                    .unwrap_or_else(|e| panic!("not a JSON line ({e}): {line}"));
                l.lock().unwrap().push((Instant::now(), v));
            }
        });
        let e = Arc::clone(&stderr);
        std::thread::spawn(move || {
            for line in BufReader::new(err).lines().map_while(Result::ok) {
                let mut e = e.lock().unwrap();
                e.push_str(&line);
                e.push('\n');
            }
        });
        PmDaemon {
            child,
            lines,
            stderr,
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn lines(&self) -> Vec<(Instant, Value)> {
        self.lines.lock().unwrap().clone()
    }

    /// Waits for a line matching `pred` among those read after `since` lines; its
    /// instant and the line.
    pub fn wait_for(
        &mut self,
        what: &str,
        since: usize,
        timeout: Duration,
        pred: impl Fn(&Value) -> bool,
    ) -> (Instant, Value) {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(found) = self.lines().into_iter().skip(since).find(|(_, v)| pred(v)) {
                return found;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the daemon exited ({status}) before {what}; lines {:#?}\nstderr {}",
                    self.lines(),
                    self.stderr.lock().unwrap()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {timeout:?}; lines {:#?}\nstderr {}",
                self.lines().iter().map(|(_, v)| v).collect::<Vec<_>>(),
                self.stderr.lock().unwrap()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn ready(&mut self) -> Value {
        self.wait_for("ready", 0, Duration::from_secs(10), |v| {
            v["event"] == "ready"
        })
        .1
    }

    /// SIGTERM, then the exit status and every line.
    pub fn stop(mut self) -> (ExitStatus, Vec<Value>) {
        rustix::process::kill_process(
            rustix::process::Pid::from_child(&self.child),
            rustix::process::Signal::TERM,
        )
        .expect("signal the daemon");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.child.try_wait().unwrap() {
                break s;
            }
            assert!(Instant::now() < deadline, "the daemon ignored SIGTERM");
            std::thread::sleep(Duration::from_millis(10));
        };
        // Let the reader take the last lines.
        std::thread::sleep(Duration::from_millis(100));
        (status, self.lines().into_iter().map(|(_, v)| v).collect())
    }
}

impl Drop for PmDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A fresh state directory for one test's daemons, removed (with the files the test
/// put beside it) on drop.
pub struct StateDir(PathBuf);

impl std::ops::Deref for StateDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.0
    }
}

impl Drop for StateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
        for ext in ["toml", "bin", "notify"] {
            let aside = self.0.with_extension(ext);
            let _ = std::fs::remove_file(&aside);
            let _ = std::fs::remove_dir_all(&aside);
        }
    }
}

pub fn state_dir(label: &str) -> StateDir {
    let dir = std::env::temp_dir().join(format!("mptcp-pm-test-{}-{label}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    StateDir(dir)
}

pub fn endpoints(ns: &Netns) -> Vec<Endpoint> {
    ns.run(|| PathManager::open().and_then(|pm| pm.endpoints()))
        .expect("enter the namespace")
        .expect("list endpoints")
}

pub fn addresses(ns: &Netns) -> Vec<IpAddr> {
    let mut v: Vec<IpAddr> = endpoints(ns).iter().map(|e| e.address).collect();
    v.sort();
    v
}

pub fn ipaddr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

pub fn is_change(v: &Value, action: &str, address: &str) -> bool {
    v["event"] == "change"
        && v["action"] == action
        && v["applied"] == true
        && (v["address"] == address || v["endpoint"]["address"] == address)
}

/// A bench upload from the client to the server of a test network, sampled every
/// 100 ms, with each subflow's bytes kept per interval.
pub struct Upload {
    intervals: Arc<Mutex<Vec<(Instant, mptcp_bench::Interval)>>>,
    client: std::thread::JoinHandle<std::io::Result<mptcp_bench::Summary>>,
    server: std::thread::JoinHandle<()>,
    /// When the client started sending.
    pub started: Instant,
}

impl Upload {
    /// Starts a `seconds`-long verified upload to the server's path-0 address.
    pub fn start(net: &mptcp_testnet::TestNet, seconds: u64) -> Upload {
        use mptcp_bench::{Client, ClientOptions, Server};
        let server = net
            .server()
            .run(|| Server::bind("0.0.0.0:5201", false))
            .unwrap()
            .expect("bench server");
        let server = std::thread::spawn(move || server.serve(Some(1), None, &|_| {}).unwrap());
        let target = std::net::SocketAddr::new(net.server().addr(0).unwrap(), 5201);
        let mut opts = ClientOptions::new(target);
        opts.duration = Some(Duration::from_secs(seconds));
        opts.interval = Duration::from_millis(100);
        opts.verify = true;
        let client = net
            .client()
            .run(|| Client::connect(&opts))
            .unwrap()
            .expect("dial");
        let intervals: Arc<Mutex<Vec<(Instant, mptcp_bench::Interval)>>> = Arc::default();
        let iv = Arc::clone(&intervals);
        let started = Instant::now();
        let client = std::thread::spawn(move || {
            client.run(None, |i| {
                iv.lock().unwrap().push((Instant::now(), i.clone()))
            })
        });
        Upload {
            intervals,
            client,
            server,
            started,
        }
    }

    /// Bytes the subflows from `local` carried in the intervals that ended in
    /// `from..to`.
    pub fn bytes_on(&self, local: IpAddr, from: Instant, to: Instant) -> u64 {
        self.intervals
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at > from && *at <= to)
            .flat_map(|(_, i)| i.subflows.iter())
            .filter(|s| s.local.is_some_and(|a| a.ip() == local))
            .map(|s| s.bytes)
            .sum()
    }

    /// The local ports of the subflows from `local` seen so far.
    pub fn ports_on(&self, local: IpAddr) -> Vec<u16> {
        self.ports_on_since(local, self.started - Duration::from_secs(1))
    }

    /// The local ports of the subflows from `local` that carried bytes in intervals
    /// that ended after `since`.
    pub fn ports_on_since(&self, local: IpAddr, since: Instant) -> Vec<u16> {
        let mut ports: Vec<u16> = self
            .intervals
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at > since)
            .flat_map(|(_, i)| i.subflows.iter())
            .filter(|s| s.bytes > 0)
            .filter_map(|s| s.local.filter(|a| a.ip() == local).map(|a| a.port()))
            .collect();
        ports.sort_unstable();
        ports.dedup();
        ports
    }

    /// Bytes every subflow carried in the intervals that ended in `from..to`.
    pub fn bytes(&self, from: Instant, to: Instant) -> u64 {
        self.intervals
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at > from && *at <= to)
            .flat_map(|(_, i)| i.subflows.iter())
            .map(|s| s.bytes)
            .sum()
    }

    /// Waits until `pred` holds of the upload, polling every 20 ms; the instant it did.
    pub fn wait_until(&self, timeout: Duration, pred: impl Fn(&Upload) -> bool) -> Option<Instant> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if pred(self) {
                return Some(Instant::now());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Waits for the end; the receiver's summary.
    pub fn finish(self) -> mptcp_bench::Summary {
        let summary = self.client.join().unwrap().expect("the transfer completes");
        self.server.join().unwrap();
        summary
    }
}
