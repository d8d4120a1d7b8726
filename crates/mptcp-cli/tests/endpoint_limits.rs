//! `mptcp endpoint` and `mptcp limits` in a fresh namespace, every change checked
//! with iproute2 (`ip -j mptcp endpoint show`, `ip mptcp limits show`).

mod common;

use predicates::prelude::*;

use common::{ip, json, keys, mptcp, netns, sorted, two_interfaces};
use serde_json::Value;

const ENDPOINT_KEYS: &[&str] = &["id", "address", "flags"];
/// Left out when unset.
const ENDPOINT_OPTIONAL: &[&str] = &["port", "ifindex", "interface"];

/// `ip -j mptcp endpoint show`, parsed.
fn ip_endpoints(ns: &str) -> Vec<Value> {
    let text = ip(ns, &["-j", "mptcp", "endpoint", "show"]);
    serde_json::from_str(text.trim()).unwrap_or_else(|e| panic!("ip -j printed {text:?}: {e}"))
}

/// The flags iproute2 shows on an endpoint object, sorted.
fn ip_flags(v: &Value) -> Vec<String> {
    let mut flags: Vec<String> = ["signal", "subflow", "backup", "fullmesh", "implicit"]
        .iter()
        .filter(|f| v[**f].as_bool() == Some(true))
        .map(|f| f.to_string())
        .collect();
    flags.sort();
    flags
}

/// `ip mptcp limits show` as (subflows, add_addr_accepted): iproute2 6.1 prints text.
fn ip_limits(ns: &str) -> (u64, u64) {
    let text = ip(ns, &["mptcp", "limits", "show"]);
    let words: Vec<&str> = text.split_whitespace().collect();
    let value = |key: &str| -> u64 {
        let pos = words
            .iter()
            .position(|w| *w == key)
            .unwrap_or_else(|| panic!("no {key} in {text:?}"));
        words[pos + 1].parse().unwrap()
    };
    (value("subflows"), value("add_addr_accepted"))
}

#[test]
fn endpoints_round_trip_with_iproute2() {
    let ns = netns("cli-endpoint");
    let ns = ns.name();
    two_interfaces(ns, 5, 6);

    // add: what we print is what the kernel keeps.
    let added = json(
        ns,
        &[
            "endpoint",
            "add",
            "198.18.5.1",
            "--id",
            "5",
            "--dev",
            "x0",
            "--subflow",
            "--backup",
        ],
        0,
    );
    assert_eq!(
        keys(&added),
        sorted(&["id", "address", "flags", "ifindex", "interface"]),
        "{added}"
    );
    assert_eq!(added["id"], 5);
    assert_eq!(added["address"], "198.18.5.1");
    assert_eq!(added["flags"], serde_json::json!(["subflow", "backup"]));
    assert_eq!(added["interface"], "x0");
    assert!(added.get("port").is_none(), "no port, no key: {added}");
    let signal = json(
        ns,
        &[
            "endpoint",
            "add",
            "198.18.6.1",
            "--signal",
            "--port",
            "5202",
        ],
        0,
    );
    assert_eq!(signal["port"], 5202);
    let signal_id = signal["id"].as_u64().expect("the kernel picked an id");

    let theirs = ip_endpoints(ns);
    assert_eq!(theirs.len(), 2, "{theirs:?}");
    let by_id = |id: u64| {
        ip_endpoints(ns)
            .into_iter()
            .find(|e| e["id"].as_u64() == Some(id))
            .unwrap_or_else(|| panic!("iproute2 does not list id {id}"))
    };
    let five = by_id(5);
    assert_eq!(five["address"], "198.18.5.1");
    assert_eq!(five["dev"], "x0");
    assert_eq!(ip_flags(&five), ["backup", "subflow"]);
    let six = by_id(signal_id);
    assert_eq!(six["port"], 5202);
    assert_eq!(ip_flags(&six), ["signal"]);

    // list agrees with iproute2.
    let listed = json(ns, &["endpoint", "list"], 0);
    assert_eq!(keys(&listed), sorted(&["endpoints"]));
    let listed = listed["endpoints"].as_array().unwrap().clone();
    assert_eq!(listed.len(), 2);
    for e in &listed {
        common::shape(e, ENDPOINT_KEYS, ENDPOINT_OPTIONAL);
        let theirs = by_id(e["id"].as_u64().unwrap());
        assert_eq!(e["address"], theirs["address"]);
    }

    // set: only the flags asked for change.
    let changed = json(
        ns,
        &["endpoint", "set", "198.18.5.1", "--no-backup", "--fullmesh"],
        0,
    );
    assert_eq!(changed["flags"], serde_json::json!(["subflow", "fullmesh"]));
    assert_eq!(ip_flags(&by_id(5)), ["fullmesh", "subflow"]);
    json(ns, &["endpoint", "set", "--id", "5", "--backup"], 0);
    assert_eq!(ip_flags(&by_id(5)), ["backup", "fullmesh", "subflow"]);

    // del by id, then by address.
    let deleted = json(ns, &["endpoint", "del", "--id", "5"], 0);
    assert_eq!(deleted["deleted"][0]["id"], 5);
    assert_eq!(ip_endpoints(ns).len(), 1);
    let deleted = json(ns, &["endpoint", "del", "198.18.6.1"], 0);
    assert_eq!(deleted["deleted"][0]["address"], "198.18.6.1");
    assert!(ip_endpoints(ns).is_empty());

    // flush removes everything and says what it removed.
    ip(ns, &["mptcp", "endpoint", "add", "198.18.5.1", "subflow"]);
    ip(ns, &["mptcp", "endpoint", "add", "2001:db8:5::1", "signal"]);
    let flushed = json(ns, &["endpoint", "flush"], 0);
    assert_eq!(flushed["deleted"].as_array().unwrap().len(), 2, "{flushed}");
    assert!(ip_endpoints(ns).is_empty());

    // Text output names the endpoint the way `ip mptcp endpoint show` does.
    mptcp(
        ns,
        &["endpoint", "add", "198.18.5.1", "--subflow", "--dev", "x0"],
    )
    .assert()
    .success()
    .stdout(
        predicates::str::contains("added 198.18.5.1 id")
            .and(predicates::str::contains("subflow dev x0")),
    );
    mptcp(ns, &["endpoint", "list"])
        .assert()
        .success()
        .stdout(predicates::str::contains("ADDRESS").and(predicates::str::contains("198.18.5.1")));
}

#[test]
fn limits_round_trip_with_iproute2() {
    let ns = netns("cli-limits");
    let ns = ns.name();
    let shown = json(ns, &["limits", "show"], 0);
    assert_eq!(keys(&shown), sorted(&["subflows", "add_addr_accepted"]));
    let (subflows, accepted) = ip_limits(ns);
    assert_eq!(shown["subflows"], subflows);
    assert_eq!(shown["add_addr_accepted"], accepted);

    let set = json(
        ns,
        &[
            "limits",
            "set",
            "--subflows",
            "4",
            "--add-addr-accepted",
            "3",
        ],
        0,
    );
    assert_eq!(
        set,
        serde_json::json!({"subflows": 4, "add_addr_accepted": 3})
    );
    assert_eq!(ip_limits(ns), (4, 3));

    // One value alone leaves the other as it was.
    json(ns, &["limits", "set", "--subflows", "0"], 0);
    assert_eq!(ip_limits(ns), (0, 3));
    json(ns, &["limits", "set", "--add-addr-accepted", "8"], 0);
    assert_eq!(ip_limits(ns), (0, 8));

    mptcp(ns, &["limits", "show"])
        .assert()
        .success()
        .stdout(predicates::str::is_match(r"subflows\s+0\nadd_addr_accepted\s+8\n").unwrap());
}

#[test]
fn kernel_refusals_are_one_line_errors_with_status_2() {
    let ns = netns("cli-refusal");
    let ns = ns.name();
    two_interfaces(ns, 7, 8);
    for (args, names) in [
        (vec!["endpoint", "del", "--id", "9"], "9"),
        (vec!["endpoint", "del", "198.18.7.1"], "198.18.7.1"),
        (
            vec!["endpoint", "add", "198.18.7.1", "--subflow", "--port", "3"],
            "port 3",
        ),
        (
            vec![
                "endpoint",
                "add",
                "198.18.7.1",
                "--subflow",
                "--dev",
                "nosuchdev",
            ],
            "nosuchdev",
        ),
    ] {
        let out = mptcp(ns, &args).output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(out.stdout.is_empty(), "{args:?}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
        assert!(stderr.starts_with("mptcp: error: "), "{stderr}");
        assert!(stderr.contains(names), "{args:?}: {stderr}");
    }
    // The same endpoint twice: the kernel's own reason comes through.
    mptcp(
        ns,
        &["endpoint", "add", "198.18.7.1", "--subflow", "--id", "3"],
    )
    .assert()
    .success();
    mptcp(
        ns,
        &["endpoint", "add", "198.18.7.1", "--subflow", "--id", "3"],
    )
    .assert()
    .code(2)
    .stderr(predicates::str::contains("duplicate"));
}
