//! `mptcp conns` and `mptcp monitor` on a live two-subflow connection over a two-path
//! test network.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{json, keys, mptcp, sorted, testnet};
use mptcp_net::{Dialer, ListenConfig, MptcpExt};
use mptcp_testnet::TestNet;
use predicates::prelude::*;
use serde_json::Value;

const PORT: u16 = 5201;

/// A connection from client to server with data exchanged both ways (extra subflows
/// come after the first exchange); the listener is returned too, as joins need it.
fn connect(net: &TestNet) -> (TcpListener, TcpStream, TcpStream) {
    let listener = net
        .server()
        .run(|| ListenConfig::new().listen(("0.0.0.0", PORT)))
        .unwrap()
        .expect("listen");
    let server_addr = SocketAddr::new(net.server().addr(0).unwrap(), PORT);
    let mut client = net
        .client()
        .run(|| Dialer::new().dial(server_addr))
        .unwrap()
        .expect("dial");
    let (mut accepted, _) = listener.accept().expect("accept");
    client.write_all(b"ping").unwrap();
    accepted.read_exact(&mut [0; 4]).unwrap();
    accepted.write_all(b"pong").unwrap();
    client.read_exact(&mut [0; 4]).unwrap();
    (listener, client, accepted)
}

/// `conns --json` in `ns` until a connection has `n` subflows, at most 5 s.
fn wait_for_subflows(ns: &str, n: u64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let listing = json(ns, &["conns"], 0);
        let conns = listing["connections"].as_array().expect("connections");
        if conns.iter().any(|c| c["subflow_count"] == n) {
            return listing;
        }
        assert!(
            Instant::now() < deadline,
            "no connection with {n} subflows: {listing:#}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn conns_shows_a_live_two_subflow_connection() {
    let net = testnet();
    let (_listener, stream, _accepted) = connect(&net);
    let client = net.client().name();
    let listing = wait_for_subflows(client, 2);
    assert_eq!(keys(&listing), sorted(&["time", "connections"]));
    assert!(listing["time"].as_str().unwrap().ends_with('Z'));
    let conns = listing["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 1, "{listing:#}");
    let conn = &conns[0];
    assert_eq!(
        keys(conn),
        sorted(&[
            "token",
            "local",
            "remote",
            "state",
            "fallback",
            "subflow_count",
            "bytes_sent",
            "bytes_received",
            "bytes_acked",
            "bytes_retrans",
            "bytes_unacked",
            "path_manager",
            "subflows"
        ])
    );
    let info = stream.mptcp_info().unwrap().expect("MPTCP is active");
    // One extra subflow, from the client's one endpoint; everything acknowledged.
    let pm = &conn["path_manager"];
    assert_eq!(pm["subflows"], 1, "{conn}");
    assert_eq!(pm["subflows_max"], info.subflows_max, "{conn}");
    assert_eq!(pm["local_addr_used"], info.local_addr_used, "{conn}");
    assert_eq!(pm["local_addr_max"], info.local_addr_max, "{conn}");
    assert_eq!(
        pm["add_addr_accepted_max"], info.add_addr_accepted_max,
        "{conn}"
    );
    assert_eq!(conn["bytes_unacked"], 0, "{conn}");
    assert_eq!(conn["token"], info.token);
    assert_eq!(conn["local"], stream.local_addr().unwrap().to_string());
    assert_eq!(conn["remote"], stream.peer_addr().unwrap().to_string());
    assert_eq!(conn["state"], "established");
    assert_eq!(conn["fallback"], false);
    assert!(conn["bytes_sent"].as_u64().unwrap() >= 4, "{conn}");
    assert!(conn["bytes_received"].as_u64().unwrap() >= 4, "{conn}");
    let subflows = conn["subflows"].as_array().unwrap();
    assert_eq!(subflows.len(), 2);
    for s in subflows {
        assert_eq!(
            keys(s),
            sorted(&[
                "local",
                "remote",
                "state",
                "local_id",
                "remote_id",
                "backup",
                "join",
                "flags"
            ])
        );
        assert_eq!(s["state"], "established");
        assert_eq!(s["remote"], conn["remote"]);
        assert_eq!(s["backup"], false);
    }
    let mut locals: Vec<&str> = subflows
        .iter()
        .map(|s| s["local"].as_str().unwrap())
        .collect();
    locals.sort();
    assert!(
        locals[0].starts_with("198.18.0.1:") && locals[1].starts_with("198.18.1.1:"),
        "{locals:?}"
    );
    let joins: Vec<bool> = subflows
        .iter()
        .map(|s| s["join"].as_bool().unwrap())
        .collect();
    assert_eq!(
        joins.iter().filter(|j| **j).count(),
        1,
        "one initial, one joined: {subflows:?}"
    );

    // The table names the token, both subflows and the join.
    let token = format!("{:#010x}", info.token);
    mptcp(client, &["conns"]).assert().success().stdout(
        predicate::str::contains(token.as_str())
            .and(predicate::str::contains("198.18.1.1:"))
            .and(predicate::str::contains("join"))
            .and(predicate::str::contains("initial")),
    );

    // --watch --json: one document per line, bounded by --count.
    let out = mptcp(
        client,
        &[
            "--json",
            "conns",
            "--watch",
            "--interval",
            "0.1",
            "--count",
            "3",
        ],
    )
    .output()
    .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert_eq!(lines.len(), 3, "{text}");
    for l in &lines {
        assert_eq!(l["connections"][0]["token"], info.token);
    }

    // The server sees it too, and its listener with --all.
    let server = net.server().name();
    let listing = json(server, &["conns", "--all"], 0);
    let states: Vec<&str> = listing["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["state"].as_str().unwrap())
        .collect();
    assert!(
        states.contains(&"listen") && states.contains(&"established"),
        "{states:?}"
    );
}

/// A running `mptcp monitor`, with its stderr lines arriving on a channel.
struct Monitor {
    child: Child,
    stderr: mpsc::Receiver<String>,
}

impl Monitor {
    fn start(ns: &str, args: &[&str]) -> Monitor {
        let mut child = Command::new(env!("CARGO_BIN_EXE_mptcp"))
            .args(["--netns", ns])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start mptcp monitor");
        let (tx, stderr) = mpsc::channel();
        let pipe = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut monitor = Monitor { child, stderr };
        monitor.wait_until_subscribed();
        monitor
    }

    fn wait_until_subscribed(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.stderr.recv_timeout(left) {
                Ok(line) if line.contains("listening for events") => return,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        let _ = self.child.kill();
        panic!("mptcp monitor did not subscribe within 10 s; stderr: {seen:?}");
    }

    /// Waits at most 15 s for the process to end; its status and stdout.
    fn finish(mut self) -> (Option<i32>, String) {
        let deadline = Instant::now() + Duration::from_secs(15);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                panic!("mptcp monitor did not stop within 15 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut stdout = String::new();
        self.child
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut stdout)
            .unwrap();
        (status.code(), stdout)
    }
}

#[test]
fn monitor_json_captures_a_connections_events() {
    let net = testnet();
    let client = net.client().name();
    let monitor = Monitor::start(
        client,
        &["--json", "monitor", "--count", "3", "--timeout", "15"],
    );
    let (_listener, stream, _accepted) = connect(&net);
    let (status, stdout) = monitor.finish();
    assert_eq!(status, Some(0), "{stdout}");
    let token = stream.mptcp_info().unwrap().expect("MPTCP is active").token;
    let events: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    let kinds: Vec<&str> = events
        .iter()
        .map(|e| e["event"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["created", "established", "sub_established"],
        "{stdout}"
    );
    let known = sorted(&[
        "time",
        "event",
        "token",
        "local",
        "remote",
        "local_id",
        "remote_id",
        "backup",
        "error",
        "server_side",
        "timeout",
        "ifindex",
        "reset_reason",
        "reset_flags",
    ]);
    for e in &events {
        // Fields the event does not carry are left out, never null.
        for k in keys(e) {
            assert!(known.contains(&k), "unknown field {k}: {e}");
            assert!(!e[&k].is_null(), "{k} is null: {e}");
        }
        for k in ["time", "event", "token", "local", "remote"] {
            assert!(e.get(k).is_some(), "{k} missing: {e}");
        }
        assert_eq!(e["token"], token, "{e}");
        assert!(e["time"].as_str().unwrap().ends_with('Z'));
    }
    assert_eq!(events[0]["local"], stream.local_addr().unwrap().to_string());
    assert_eq!(events[0]["remote"], stream.peer_addr().unwrap().to_string());
    assert!(
        events[2]["local"]
            .as_str()
            .unwrap()
            .starts_with("198.18.1.1:"),
        "{}",
        events[2]
    );
}

#[test]
fn monitor_text_until_ctrl_c() {
    let net = testnet();
    let client = net.client().name();
    let monitor = Monitor::start(client, &["monitor"]);
    let (_listener, stream, accepted) = connect(&net);
    let deadline = Instant::now() + Duration::from_secs(5);
    while stream.subflows().unwrap().len() < 2 {
        assert!(Instant::now() < deadline, "no second subflow within 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
    drop((stream, accepted));
    // Let the events arrive, then Ctrl-C.
    std::thread::sleep(Duration::from_millis(300));
    let kill = Command::new("kill")
        .args(["-INT", &monitor.child.id().to_string()])
        .status()
        .expect("run kill");
    assert!(kill.success());
    let (status, stdout) = monitor.finish();
    assert_eq!(status, Some(0), "Ctrl-C is a clean stop: {stdout}");
    let first = stdout
        .lines()
        .next()
        .unwrap_or_else(|| panic!("no event: {stdout:?}"));
    assert!(starts_like_an_event(first), "{first}");
    assert!(
        stdout.contains("CREATED") && stdout.contains("SUB_ESTABLISHED"),
        "{stdout}"
    );
    assert!(
        stdout.contains("saddr=198.18.0.1:") && stdout.contains("daddr=198.18.0.2:5201"),
        "{stdout}"
    );
}

/// `HH:MM:SS.mmm CREATED token=0x........ ` at the start of `line`.
fn starts_like_an_event(line: &str) -> bool {
    predicate::str::is_match(r"^\d\d:\d\d:\d\d\.\d{3} CREATED +token=0x[0-9a-f]{8} ")
        .unwrap()
        .eval(line)
}
