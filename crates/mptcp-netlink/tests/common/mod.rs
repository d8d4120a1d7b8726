//! Helpers shared by the integration tests: fresh namespaces, iproute2 as the reference.
//!
//! A test that cannot run (not root, `ip` missing, no MPTCP) fails here with a message
//! naming what is missing.
#![allow(dead_code)]

use std::process::Output;

use mptcp_testnet::Netns;

/// A fresh network namespace; panics, naming the cause, when one cannot be made.
pub fn netns(label: &str) -> Netns {
    match Netns::new(label) {
        Ok(ns) => ns,
        Err(e) => panic!(
            "this test needs a fresh network namespace (root, iproute2, a kernel with \
             MPTCP): {e}"
        ),
    }
}

/// Runs `ip -n <ns> args...`, panics with its stderr when it fails.
pub fn ip(ns: &Netns, args: &[&str]) -> Output {
    let out = std::process::Command::new("ip")
        .arg("-n")
        .arg(ns.name())
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run `ip` (install iproute2): {e}"));
    assert!(
        out.status.success(),
        "ip {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// `ip -j mptcp endpoint show`, parsed.
pub fn ip_endpoints(ns: &Netns) -> Vec<serde_json::Value> {
    let out = ip(ns, &["-j", "mptcp", "endpoint", "show"]);
    let text = String::from_utf8_lossy(&out.stdout);
    serde_json::from_str(text.trim())
        .unwrap_or_else(|e| panic!("ip -j mptcp endpoint show printed {text:?}: {e}"))
}

/// `ip mptcp limits show` as `(subflows, add_addr_accepted)`; iproute2 6.1 prints text
/// even with `-j`.
pub fn ip_limits(ns: &Netns) -> (u32, u32) {
    let out = ip(ns, &["mptcp", "limits", "show"]);
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let words: Vec<&str> = text.split_whitespace().collect();
    let value = |key: &str| -> u32 {
        let pos = words
            .iter()
            .position(|w| *w == key)
            .unwrap_or_else(|| panic!("no {key} in {text:?}"));
        words[pos + 1].parse().unwrap()
    };
    (value("subflows"), value("add_addr_accepted"))
}

/// Turns an `ip -j` endpoint object into the fields we compare:
/// (address, id, port, sorted flag names, dev).
pub fn ip_endpoint_fields(
    v: &serde_json::Value,
) -> (String, u8, Option<u16>, Vec<String>, Option<String>) {
    let address = v["address"].as_str().expect("address").to_string();
    let id = v["id"].as_u64().expect("id") as u8;
    let port = v["port"].as_u64().map(|p| p as u16);
    let mut flags: Vec<String> = [
        "signal", "subflow", "backup", "fullmesh", "implicit", "laminar",
    ]
    .iter()
    .filter(|f| v[**f].as_bool() == Some(true))
    .map(|f| f.to_string())
    .collect();
    flags.sort();
    let dev = v["dev"].as_str().map(str::to_string);
    (address, id, port, flags, dev)
}

/// The same fields of one of our endpoints, counting only the flags iproute2 6.1 knows.
pub fn our_endpoint_fields(
    e: &mptcp_netlink::Endpoint,
) -> (String, u8, Option<u16>, Vec<String>, Option<String>) {
    let mut flags: Vec<String> = e
        .flags
        .names()
        .filter(|n| *n != "laminar")
        .map(str::to_string)
        .collect();
    flags.sort();
    (
        e.address.to_string(),
        e.id,
        e.port,
        flags,
        e.interface.clone(),
    )
}
