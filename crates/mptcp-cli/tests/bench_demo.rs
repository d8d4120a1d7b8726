//! `mptcp bench` and `mptcp demo`, through the built binary: client against
//! server on loopback and over a two-path network, and a short demo whose
//! figures must be present and sane.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_mptcp"));
    c.env_remove("MPTCP_LOG").env_remove("MPTCP_NET");
    c
}

/// Starts `mptcp --json [--netns NS] bench server ...` and returns it with
/// the address from its `listening` line.
fn start_server(ns: Option<&str>, listen: &str, count: &str, extra: &[&str]) -> (Child, String) {
    let mut cmd = bin();
    if let Some(ns) = ns {
        cmd.args(["--netns", ns]);
    }
    let mut child = cmd
        .args([
            "--json", "bench", "server", "--listen", listen, "--count", count,
        ])
        .args(extra)
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the bench server");
    let mut line = String::new();
    BufReader::new(child.stdout.as_mut().unwrap())
        .read_line(&mut line)
        .unwrap();
    let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line:?}"));
    assert_eq!(v["type"], "listening", "{v}");
    let want = if extra.contains(&"--tcp") {
        "plain_tcp"
    } else {
        "active"
    };
    assert_eq!(v["status"], want, "{v}");
    (child, v["addr"].as_str().unwrap().to_string())
}

fn json_lines(stdout: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

fn wait_ok(mut child: Child) -> Vec<Value> {
    for _ in 0..200 {
        if let Some(status) = child.try_wait().unwrap() {
            let mut rest = Vec::new();
            std::io::Read::read_to_end(child.stdout.as_mut().unwrap(), &mut rest).unwrap();
            assert!(status.success(), "server exit {status}");
            return json_lines(&rest);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("the bench server did not stop after --count tests");
}

#[test]
fn bench_client_and_server_on_loopback() {
    let (server, addr) = start_server(None, "127.0.0.1:0", "2", &[]);
    let out = bin()
        .args([
            "--json",
            "bench",
            "client",
            &addr,
            "--time",
            "1",
            "--interval",
            "0.25",
            "--verify",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines = json_lines(&out.stdout);
    let summary = lines.last().unwrap();
    assert_eq!(summary["type"], "summary");
    assert_eq!(summary["verified"], true);
    assert_eq!(summary["mptcp_stayed_on"], true);
    assert!(summary["mbit_per_s"].as_f64().unwrap() > 0.0);
    let intervals = lines.iter().filter(|l| l["type"] == "interval").count();
    assert!(intervals >= 3, "{intervals} intervals");
    assert_eq!(lines[0]["subflows"].as_array().unwrap().len(), 1);

    // A plain TCP client of the same server (the server takes both).
    let out = bin()
        .args([
            "--json",
            "bench",
            "client",
            &addr,
            "--tcp",
            "--bytes",
            "10M",
            "--reverse",
            "--verify",
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary = json_lines(&out.stdout).pop().unwrap();
    assert_eq!(summary["status_start"], "plain_tcp");
    assert_eq!(summary["bytes"], 10 << 20);
    assert_eq!(summary["direction"], "download");

    let tests = wait_ok(server);
    let statuses: Vec<&str> = tests
        .iter()
        .map(|t| t["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses.len(), 2);
    assert!(
        statuses.contains(&"active") && statuses.contains(&"plain_tcp"),
        "{statuses:?}"
    );

    // Human output: the summary and per-subflow lines.
    let (server, addr) = start_server(None, "127.0.0.1:0", "1", &[]);
    let out = bin()
        .args(["bench", "client", &addr, "--time", "1"])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(text.contains("summary (upload"), "{text}");
    assert!(text.contains("MPTCP all along"), "{text}");
    wait_ok(server);
}

/// `mptcp --netns CLIENT --json bench client TARGET ARGS...`: its summary.
fn client_summary(ns: &str, target: &str, args: &[&str]) -> Value {
    let out = bin()
        .args(["--netns", ns, "--json", "bench", "client", target])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    json_lines(&out.stdout).pop().unwrap()
}

#[test]
fn bench_over_two_paths_against_a_plain_tcp_server_too() {
    let net = common::testnet();
    let client_ns = net.client().name();
    let (server, _) = start_server(Some(net.server().name()), "0.0.0.0:5201", "1", &[]);
    let target = format!("{}:5201", net.server().addr(0).unwrap());
    let summary = client_summary(client_ns, &target, &["--time", "1.5", "--verify"]);
    println!("two paths: {summary}");
    assert_eq!(summary["subflows_seen"], 2);
    assert_eq!(summary["subflow_bytes"].as_array().unwrap().len(), 2);
    wait_ok(server);

    // A plain TCP server: the client reports the fallback.
    let (server, _) = start_server(Some(net.server().name()), "0.0.0.0:5203", "1", &["--tcp"]);
    let target = format!("{}:5203", net.server().addr(0).unwrap());
    let summary = client_summary(client_ns, &target, &["--time", "0.5"]);
    assert_eq!(summary["status_start"], "fell_back");
    assert_eq!(summary["mptcp_stayed_on"], false);
    wait_ok(server);
}

#[test]
fn bench_bad_input_is_one_line_exit_2() {
    for args in [
        &["bench", "client", "198.18.0.2:99999"][..],
        &["bench", "client", "127.0.0.1", "--bytes", "12X"],
        &["bench", "client", "127.0.0.1", "--time", "-1"],
        &["demo", "--paths", "9"],
    ] {
        let out = bin().args(args).output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        let bad = args
            .iter()
            .find(|a| ["99999", "12X", "-1", "9"].iter().any(|b| a.contains(b)))
            .unwrap();
        assert!(err.contains(bad), "{args:?}: {err}");
    }
}

#[test]
fn short_demo_json_figures_are_present_and_sane() {
    let child = bin()
        .args(["--json", "demo", "--seconds", "2"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let pid = child.id();
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "demo failed: {stderr}");
    let r: Value = serde_json::from_slice(&out.stdout).unwrap();
    println!(
        "demo: TCP {} Mbit/s, MPTCP {} Mbit/s, ratio {}, share of links {}, stall {} ms, verified {}",
        r["tcp"]["mbit_per_s"], r["mptcp"]["mbit_per_s"], r["mptcp_over_tcp"],
        r["mptcp_share_of_links"], r["failover_stall_ms"], r["data_verified"]
    );
    assert!(r["mptcp"]["mbit_per_s"].as_f64().unwrap() > r["tcp"]["mbit_per_s"].as_f64().unwrap());
    assert_eq!(r["data_verified"], true);
    assert_eq!(r["all_paths_used"], true);
    assert!(r["failover_stall_ms"].as_f64().is_some());
    assert_eq!(r["problems"].as_array().unwrap().len(), 0);
    let left = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let left = String::from_utf8_lossy(&left.stdout);
    assert!(
        !left.contains(&format!("mpt-{pid}-")),
        "namespaces cleaned up: {left}"
    );
}
