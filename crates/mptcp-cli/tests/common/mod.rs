//! Helpers for the integration tests: the built `mptcp` binary, fresh namespaces, and
//! iproute2 as the independent reference.
//!
//! A test that cannot run (not root, `ip` missing, no MPTCP) fails here with a message
//! naming what is missing.
#![allow(dead_code)]

pub mod pm;

use std::process::Output;
use std::time::Duration;

use assert_cmd::Command;
use mptcp_testnet::{Netns, TestNet};
use serde_json::Value;

/// Every run of the binary is bounded by this.
pub const RUN_TIMEOUT: Duration = Duration::from_secs(20);

/// A fresh network namespace; panics, naming the cause, when one cannot be made.
pub fn netns(label: &str) -> Netns {
    Netns::new(label).unwrap_or_else(|e| {
        panic!("this test needs a fresh network namespace (root, iproute2, MPTCP): {e}")
    })
}

/// A two-path test network with client subflow endpoints.
pub fn testnet() -> TestNet {
    TestNet::builder()
        .paths(2)
        .build()
        .unwrap_or_else(|e| panic!("this test needs a 2-path test network (root, iproute2): {e}"))
}

/// `mptcp --netns <ns> args...`, bounded by [`RUN_TIMEOUT`].
pub fn mptcp(ns: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mptcp"));
    cmd.arg("--netns").arg(ns).args(args).timeout(RUN_TIMEOUT);
    cmd.env_remove("MPTCP_LOG").env_remove("MPTCP_NET");
    cmd
}

/// `mptcp` without a namespace (for what fails before one would matter).
pub fn mptcp_here(args: &[&str]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mptcp"));
    cmd.args(args).timeout(RUN_TIMEOUT);
    cmd
}

/// Runs `mptcp --netns <ns> --json args...`, checks its exit status, and parses stdout
/// as one JSON document.
pub fn json(ns: &str, args: &[&str], status: i32) -> Value {
    let mut all = vec!["--json"];
    all.extend_from_slice(args);
    let out = mptcp(ns, &all).output().expect("run mptcp");
    parse(&out, status, args)
}

/// Checks `out`'s status and parses its stdout as one JSON document.
pub fn parse(out: &Output, status: i32, args: &[&str]) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(status),
        "mptcp {args:?}: stdout {stdout}\nstderr {stderr}"
    );
    serde_json::from_str(&stdout)
        .unwrap_or_else(|e| panic!("mptcp {args:?} printed no JSON document ({e}): {stdout:?}"))
}

// Not every test file uses them.
#[allow(unused_imports)]
pub use mptcp_testnet::support::{ip, two_interfaces};

/// The keys of a JSON object, sorted.
pub fn keys(v: &Value) -> Vec<String> {
    let mut keys: Vec<String> = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// Checks a JSON object's shape: every `required` key, no key outside `required` and
/// `optional`, and no `null` (an absent value is left out).
pub fn shape(v: &Value, required: &[&str], optional: &[&str]) {
    let keys = keys(v);
    for k in required {
        assert!(keys.iter().any(|have| have == k), "no {k:?} in {v}");
    }
    for k in &keys {
        assert!(
            required.contains(&k.as_str()) || optional.contains(&k.as_str()),
            "unexpected key {k:?} in {v}"
        );
        assert!(!v[k].is_null(), "{k} is null (should be left out): {v}");
    }
}

/// Sorted owned strings, for comparing with [`keys`].
pub fn sorted(names: &[&str]) -> Vec<String> {
    let mut v: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    v.sort();
    v
}
