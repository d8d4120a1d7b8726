//! The `mptcp pm run` daemon as a child process, for the pm command-line tests (the
//! daemon's behaviour is tested in crates/mptcp-pm/tests).

use std::net::IpAddr;
use std::path::Path;
use std::process::{Command, ExitStatus};
use std::time::{Duration, Instant};

use mptcp_netlink::{Endpoint, PathManager};
use mptcp_testnet::support::{JsonChild, TestDir};
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
        let status = self.0.wait_exit(Duration::from_secs(10));
        (status, self.lines().into_iter().map(|(_, v)| v).collect())
    }
}

/// A fresh state directory for one test's daemons, removed (with the files the test
/// put beside it) on drop.
pub fn state_dir(label: &str) -> TestDir {
    TestDir::new(&format!("pm-cli-test-{label}"))
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
