//! The `mptcp pm run` daemon as a child process, for the pm tests.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mptcp_netlink::{Endpoint, PathManager};
use mptcp_testnet::support::JsonChild;
use mptcp_testnet::Netns;
use serde_json::Value;

/// A running `mptcp --json pm run`, its JSON lines collected as they come, each with
/// the instant it was read ([`JsonChild`]). Killed on drop.
pub struct PmDaemon(JsonChild);

impl PmDaemon {
    pub fn start(ns: &str, state: &Path, args: &[&str]) -> PmDaemon {
        PmDaemon(JsonChild::spawn(
            Command::new(env!("CARGO_BIN_EXE_mptcp"))
                .args(["--netns", ns, "--json", "pm", "run", "--state-dir"])
                .arg(state)
                .args(args)
                .env_remove("MPTCP_LOG"),
        ))
    }

    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    pub fn lines(&self) -> Vec<(Instant, Value)> {
        self.0.lines()
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
        self.0.wait_for(what, since, timeout, pred)
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
            rustix::process::Pid::from_raw(self.pid() as i32).expect("a live child's pid"),
            rustix::process::Signal::TERM,
        )
        .expect("signal the daemon");
        let deadline = Instant::now() + Duration::from_secs(10);
        let status = loop {
            if let Some(s) = self.0.child().try_wait().unwrap() {
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
