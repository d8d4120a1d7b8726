//! Helpers for mptcp-pm's integration tests: the daemon ([`Daemon`] or
//! [`UserspaceDaemon`]) on a thread inside a test namespace, its reports collected as
//! JSON values (the shape `mptcp --json pm run` prints, without the time), the plan
//! and status as JSON, the kernel's endpoint table read back over netlink, and a
//! bench upload sampled per subflow.
//!
//! A test that cannot run (not root, `ip` missing, no MPTCP) fails with a message
//! naming what is missing.
#![allow(dead_code)]

use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mptcp_netlink::{Endpoint, PathManager};
use mptcp_pm::userspace::UserspaceDaemon;
use mptcp_pm::{Config, Daemon, Options, Report};
use mptcp_testnet::Netns;
use serde::Serialize;
use serde_json::Value;

use mptcp_testnet::support::TestDir;

/// A fresh network namespace; panics, naming the cause, when one cannot be made.
pub fn netns(label: &str) -> Netns {
    Netns::new(label).unwrap_or_else(|e| {
        panic!("this test needs a fresh network namespace (root, iproute2, MPTCP): {e}")
    })
}

/// A test network of two paths, IPv4 only, shaped to `rate` Mbit/s if given.
pub fn testnet(rate: Option<u32>, endpoints: mptcp_testnet::Endpoints) -> mptcp_testnet::TestNet {
    let mut b = mptcp_testnet::TestNet::builder()
        .paths(2)
        .ipv6(false)
        .endpoints(endpoints);
    if let Some(r) = rate {
        b = b.rate_mbit(r);
    }
    b.build()
        .unwrap_or_else(|e| panic!("this test needs a test network (root, iproute2): {e}"))
}

/// Which daemon a [`PmDaemon`] runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// [`Daemon`]: the in-kernel path manager's endpoints.
    Kernel,
    /// [`UserspaceDaemon`]: per-connection policies.
    Userspace,
}

/// The daemon's options as `mptcp pm run` builds them: the configuration file (or
/// the defaults) and the state directory; the test sets the flags it needs.
pub fn options(state: &Path, config: Option<&str>) -> Options {
    let config = match config {
        Some(path) => Config::from_file(Path::new(path))
            .unwrap_or_else(|e| panic!("the test's configuration {path}: {e}")),
        None => Config::default(),
    };
    let mut opts = Options::new(config);
    opts.state_dir = state.to_path_buf();
    opts
}

/// The reports kept (the first `cap` of them) and how many of each kind came.
#[derive(Default)]
struct Reports {
    cap: Option<usize>,
    kept: Vec<(Instant, Value)>,
    /// `event` or `event/command` -> how many.
    counts: std::collections::HashMap<String, usize>,
}

type Lines = Arc<Mutex<Reports>>;

/// A running daemon on a thread inside a namespace, its reports collected as they
/// come, each with the instant it was made. Stopped (its flag raised, the thread
/// joined) by [`stop`](Self::stop) or on drop.
pub struct PmDaemon {
    lines: Lines,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), String>>>,
}

impl PmDaemon {
    /// Starts the daemon in `ns` with `opts`; panics with the error when it is
    /// refused.
    pub fn start(ns: &str, kind: Kind, opts: Options) -> PmDaemon {
        Self::try_start(ns, kind, opts).unwrap_or_else(|e| panic!("the daemon did not start: {e}"))
    }

    /// [`start`](Self::start), keeping only the first `cap` reports (and the count of
    /// every kind, [`count`](Self::count)): for a test that measures the memory of
    /// this process, where the daemon runs.
    pub fn start_capped(ns: &str, kind: Kind, opts: Options, cap: usize) -> PmDaemon {
        Self::try_start_capped(ns, kind, opts, Some(cap))
            .unwrap_or_else(|e| panic!("the daemon did not start: {e}"))
    }

    /// Starts the daemon in `ns` with `opts`; the error `start` gave when it is
    /// refused (what `mptcp pm run` prints after `mptcp: error: `).
    pub fn try_start(ns: &str, kind: Kind, opts: Options) -> Result<PmDaemon, String> {
        Self::try_start_capped(ns, kind, opts, None)
    }

    fn try_start_capped(
        ns: &str,
        kind: Kind,
        opts: Options,
        cap: Option<usize>,
    ) -> Result<PmDaemon, String> {
        let lines: Lines = Arc::new(Mutex::new(Reports {
            cap,
            ..Reports::default()
        }));
        let stop = Arc::new(AtomicBool::new(false));
        let (started_tx, started_rx) = mpsc::channel();
        let (l, s, name) = (Arc::clone(&lines), Arc::clone(&stop), ns.to_string());
        let thread = std::thread::Builder::new()
            .name(format!("pm in {ns}"))
            .spawn(move || -> Result<(), String> {
                if let Err(e) = mptcp_netlink::netns::enter(&name) {
                    let _ = started_tx.send(Err(format!("cannot enter {name}: {e}")));
                    return Ok(());
                }
                let mut log = |r: Report| {
                    let v = serde_json::to_value(&r).expect("a report serializes");
                    let mut l = l.lock().unwrap();
                    let mut kind = v["event"].as_str().unwrap_or("?").to_string();
                    if let Some(c) = v["command"].as_str() {
                        kind = format!("{kind}/{c}");
                    }
                    *l.counts.entry(kind).or_default() += 1;
                    if l.cap.is_none_or(|cap| l.kept.len() < cap) {
                        l.kept.push((Instant::now(), v));
                    }
                };
                match kind {
                    Kind::Kernel => match Daemon::start(opts, &mut log) {
                        Err(e) => {
                            let _ = started_tx.send(Err(e.to_string()));
                            Ok(())
                        }
                        Ok(mut d) => {
                            let _ = started_tx.send(Ok(()));
                            let result = d.run(&s, &mut log);
                            let shutdown = d.shutdown(&mut log);
                            result.and(shutdown).map_err(|e| e.to_string())
                        }
                    },
                    Kind::Userspace => match UserspaceDaemon::start(opts, &mut log) {
                        Err(e) => {
                            let _ = started_tx.send(Err(e.to_string()));
                            Ok(())
                        }
                        Ok(mut d) => {
                            let _ = started_tx.send(Ok(()));
                            let result = d.run(&s, &mut log);
                            let shutdown = d.shutdown(&mut log);
                            result.and(shutdown).map_err(|e| e.to_string())
                        }
                    },
                }
            })
            .expect("start the daemon's thread");
        let started = started_rx
            .recv_timeout(Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("the daemon neither started nor failed: {e}"));
        let mut daemon = PmDaemon {
            lines,
            stop,
            thread: Some(thread),
        };
        match started {
            Ok(()) => Ok(daemon),
            Err(e) => {
                let _ = daemon.thread.take().map(JoinHandle::join);
                Err(e)
            }
        }
    }

    /// Every report so far (up to the cap), with when it was made.
    pub fn lines(&self) -> Vec<(Instant, Value)> {
        self.lines.lock().unwrap().kept.clone()
    }

    /// How many reports of `kind` (`event` or `event/command`) came.
    pub fn count(&self, kind: &str) -> usize {
        self.lines
            .lock()
            .unwrap()
            .counts
            .get(kind)
            .copied()
            .unwrap_or(0)
    }

    /// Waits for a report matching `pred` among those made after the first `since`;
    /// its instant and the report.
    ///
    /// # Panics
    /// When the daemon ends first or `timeout` passes, with every report.
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
            if self.thread.as_ref().is_some_and(|t| t.is_finished()) {
                let result = self.thread.take().unwrap().join();
                panic!(
                    "the daemon ended ({result:?}) before {what}; reports {:#?}",
                    self.lines()
                );
            }
            assert!(
                Instant::now() < deadline,
                "no {what} within {timeout:?}; reports {:#?}",
                self.lines().iter().map(|(_, v)| v).collect::<Vec<_>>()
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Waits for the `ready` report.
    pub fn ready(&mut self) -> Value {
        self.wait_for("ready", 0, Duration::from_secs(10), |v| {
            v["event"] == "ready"
        })
        .1
    }

    /// Raises the stop flag (what SIGTERM does to `mptcp pm run`); what running and
    /// shutting down returned, and every report.
    pub fn stop(mut self) -> (Result<(), String>, Vec<Value>) {
        let result = self.join();
        (result, self.lines().into_iter().map(|(_, v)| v).collect())
    }

    fn join(&mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::SeqCst);
        match self.thread.take() {
            Some(t) => {
                let deadline = Instant::now() + Duration::from_secs(10);
                while !t.is_finished() {
                    assert!(
                        Instant::now() < deadline,
                        "the daemon ignored its stop flag"
                    );
                    std::thread::sleep(Duration::from_millis(10));
                }
                t.join()
                    .unwrap_or_else(|_| Err("the daemon's thread panicked".into()))
            }
            None => Ok(()),
        }
    }
}

impl std::fmt::Debug for PmDaemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PmDaemon").finish_non_exhaustive()
    }
}

impl Drop for PmDaemon {
    fn drop(&mut self) {
        if self.thread.is_some() && !std::thread::panicking() {
            let _ = self.join();
        } else {
            self.stop.store(true, Ordering::SeqCst);
        }
    }
}

/// Sets once and returns, leaving the endpoints in place (`mptcp pm run --once`):
/// the reports, the last one `ready`.
pub fn once(ns: &Netns, mut opts: Options) -> Vec<Value> {
    opts.keep = true;
    ns.run(|| {
        let mut lines = Vec::new();
        let mut log = |r: Report| lines.push(serde_json::to_value(&r).unwrap());
        let mut d = Daemon::start(opts, &mut log).expect("the daemon starts");
        let plan = d.reconcile(&mut log).expect("reconcile");
        let ready = Report::Ready {
            endpoints: d.owned().len(),
            limits: plan.limits.as_ref().map(|l| l.limits()),
        };
        log(ready);
        d.shutdown(&mut log).expect("shutdown");
        lines
    })
    .expect("enter the namespace")
}

/// The plan `mptcp --json pm plan` prints: the plan and the actions.
pub fn plan(ns: &Netns, state: &Path, config: Option<&str>) -> Value {
    #[derive(Serialize)]
    struct PlanJson<'a> {
        #[serde(flatten)]
        plan: &'a mptcp_pm::Plan,
        actions: &'a [mptcp_pm::Action],
    }
    let opts = options(state, config);
    let (plan, actions) = ns
        .run(|| mptcp_pm::preview(&opts.config, state))
        .expect("enter the namespace")
        .expect("a plan");
    serde_json::to_value(PlanJson {
        plan: &plan,
        actions: &actions,
    })
    .unwrap()
}

/// The userspace daemon's status (`mptcp --json pm status`), or the error.
pub fn status(ns: &Netns, state: &Path) -> Result<Value, String> {
    ns.run(|| mptcp_pm::userspace::read_status(state))
        .expect("enter the namespace")
        .map(|s| serde_json::to_value(s).unwrap())
        .map_err(|e| e.to_string())
}

/// A fresh state directory for one test's daemons, removed (with the files the test
/// put beside it) on drop.
pub fn state_dir(label: &str) -> TestDir {
    TestDir::new(&format!("pm-test-{label}"))
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
        Self::start_to(net, seconds, 0)
    }

    /// Starts a `seconds`-long verified upload to the server's address on `path`.
    pub fn start_to(net: &mptcp_testnet::TestNet, seconds: u64, path: usize) -> Upload {
        use mptcp_bench::{Client, ClientOptions, Server};
        let server = net
            .server()
            .run(|| Server::bind("0.0.0.0:5201", false))
            .unwrap()
            .expect("bench server");
        let server = std::thread::spawn(move || server.serve(Some(1), None, &|_| {}).unwrap());
        let target = std::net::SocketAddr::new(net.server().addr(path).unwrap(), 5201);
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
        self.bytes_where(from, to, |s| s.local.is_some_and(|a| a.ip() == local))
    }

    /// Bytes the subflows to `remote` carried in the intervals that ended in
    /// `from..to`.
    pub fn bytes_to(&self, remote: IpAddr, from: Instant, to: Instant) -> u64 {
        self.bytes_where(from, to, |s| s.remote.is_some_and(|a| a.ip() == remote))
    }

    fn bytes_where(
        &self,
        from: Instant,
        to: Instant,
        which: impl Fn(&mptcp_bench::SubflowSample) -> bool,
    ) -> u64 {
        self.intervals
            .lock()
            .unwrap()
            .iter()
            .filter(|(at, _)| *at > from && *at <= to)
            .flat_map(|(_, i)| i.subflows.iter())
            .filter(|s| which(s))
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
