//! `mptcp conns` and `mptcp monitor` filters on a namespace holding several
//! connections with known ports and subflow counts.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::{json, mptcp_here, testnet};
use mptcp_net::{Dialer, ListenConfig, MptcpExt};
use mptcp_testnet::TestNet;
use serde_json::Value;

/// A live connection: the listener, the client's stream, the server's.
type Conn = (TcpListener, TcpStream, TcpStream);

/// A connection from the client to `server:port`, data exchanged both ways; the
/// server listens with MPTCP unless `plain_server` (then the client falls back).
fn connect(net: &TestNet, server: IpAddr, port: u16, plain_server: bool) -> Conn {
    let listener = net
        .server()
        .run(move || {
            if plain_server {
                TcpListener::bind(("0.0.0.0", port))
            } else {
                ListenConfig::new().listen(("0.0.0.0", port))
            }
        })
        .unwrap()
        .expect("listen");
    let to = SocketAddr::new(server, port);
    let mut client = net
        .client()
        .run(move || Dialer::new().dial(to))
        .unwrap()
        .expect("dial");
    let (mut accepted, _) = listener.accept().expect("accept");
    client.write_all(b"ping").unwrap();
    accepted.read_exact(&mut [0; 4]).unwrap();
    accepted.write_all(b"pong").unwrap();
    client.read_exact(&mut [0; 4]).unwrap();
    (listener, client, accepted)
}

fn wait_subflows(c: &TcpStream, n: usize) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while c.subflows().unwrap().len() < n {
        assert!(Instant::now() < deadline, "no {n} subflows within 5 s");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The remote ports of `conns --json ARGS` in `ns`, sorted.
fn ports(ns: &str, args: &[&str]) -> Vec<u64> {
    let mut all = vec!["conns"];
    all.extend_from_slice(args);
    let listing = json(ns, &all, 0);
    let mut ports: Vec<u64> = listing["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let remote: SocketAddr = c["remote"].as_str().unwrap().parse().unwrap();
            u64::from(remote.port())
        })
        .collect();
    ports.sort();
    ports
}

#[test]
fn each_conns_filter_keeps_the_right_connections() {
    let net = testnet();
    let (s0, s1) = (net.server().addr(0).unwrap(), net.server().addr(1).unwrap());
    // 5401 and 5402: two subflows (the client's endpoint on path 1 joins).
    let a = connect(&net, s0, 5401, false);
    let b = connect(&net, s0, 5402, false);
    // 5403: over path 1 from the endpoint's own address, so no second subflow.
    let c = connect(&net, s1, 5403, false);
    // 5404: the server speaks plain TCP, the client falls back.
    let d = connect(&net, s0, 5404, true);
    wait_subflows(&a.1, 2);
    wait_subflows(&b.1, 2);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(c.1.subflows().unwrap().len(), 1, "5403 keeps one subflow");

    let client = net.client().name();
    let all = json(client, &["conns"], 0);
    let conns = all["connections"].as_array().unwrap();
    assert_eq!(conns.len(), 4, "{all:#}");
    let by_port = |p: u16| {
        conns
            .iter()
            .find(|c| c["remote"].as_str().unwrap().ends_with(&format!(":{p}")))
            .unwrap_or_else(|| panic!("no connection to port {p}: {all:#}"))
    };
    assert_eq!(by_port(5404)["fallback"], true, "{all:#}");
    assert_eq!(by_port(5401)["subflow_count"], 2);
    assert_eq!(by_port(5403)["subflow_count"], 1);

    assert_eq!(ports(client, &["--port", "5402"]), [5402]);
    let local_port = a.1.local_addr().unwrap().port().to_string();
    assert_eq!(
        ports(client, &["--port", &local_port]),
        [5401],
        "a local port"
    );
    assert_eq!(ports(client, &["--remote", "198.18.0.2:5401"]), [5401]);
    assert_eq!(ports(client, &["--remote", "198.18.1.2"]), [5403]);
    assert_eq!(
        ports(client, &["--remote", "198.18.0.2"]),
        [5401, 5402, 5404]
    );
    // A subflow's local address counts: the joins of 5401 and 5402 come from 198.18.1.1.
    assert_eq!(
        ports(client, &["--local", "198.18.1.1"]),
        [5401, 5402, 5403]
    );
    assert_eq!(
        ports(client, &["--local", "198.18.0.1"]),
        [5401, 5402, 5404]
    );
    let local = a.1.local_addr().unwrap().to_string();
    assert_eq!(ports(client, &["--local", &local]), [5401]);
    assert_eq!(
        ports(client, &["--state", "established"]),
        [5401, 5402, 5403, 5404]
    );
    assert_eq!(
        ports(client, &["--state", "ESTAB"]),
        [5401, 5402, 5403, 5404]
    );
    assert!(ports(client, &["--state", "syn_sent"]).is_empty());
    assert_eq!(ports(client, &["--fallback"]), [5404]);
    let token = a.1.mptcp_info().unwrap().expect("MPTCP").token;
    assert_eq!(
        ports(client, &["--token", &format!("{token:#010x}")]),
        [5401]
    );
    assert_eq!(ports(client, &["--token", &format!("{token:x}")]), [5401]);
    assert_eq!(ports(client, &["--min-subflows", "2"]), [5401, 5402]);
    assert_eq!(
        ports(client, &["--min-subflows", "2", "--port", "5402"]),
        [5402]
    );
    assert!(ports(client, &["--min-subflows", "3"]).is_empty());
    // Filters that exclude every connection say so, apart from "there are none".
    let none = common::mptcp(client, &["conns", "--min-subflows", "3"])
        .output()
        .unwrap();
    assert!(none.status.success());
    assert_eq!(
        String::from_utf8_lossy(&none.stdout),
        "4 MPTCP connections, none matched the filters\n"
    );
    let bare = common::netns("noconns");
    let empty = common::mptcp(bare.name(), &["conns", "--min-subflows", "3"])
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&empty.stdout),
        "no MPTCP connections\n"
    );

    // On the server, --state listen shows the MPTCP listeners without --all.
    let server = net.server().name();
    let listening = json(server, &["conns", "--state", "listen"], 0);
    let states: Vec<&str> = listening["connections"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["state"].as_str().unwrap())
        .collect();
    assert_eq!(
        states, ["listen"; 3],
        "three MPTCP listeners: {listening:#}"
    );
    for c in listening["connections"].as_array().unwrap() {
        assert!(c.get("token").is_none(), "a listener has no token: {c}");
        assert!(c.as_object().unwrap().values().all(|v| !v.is_null()), "{c}");
    }
    drop((a, b, c, d));
}

/// `mptcp --netns NS --json monitor ARGS`, started and subscribed.
fn monitor(ns: &str, args: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mptcp"))
        .args(["--netns", ns, "--json", "monitor"])
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mptcp monitor");
    let (tx, rx) = mpsc::channel();
    let pipe = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    match rx.recv_timeout(Duration::from_secs(10)) {
        Ok(line) if line.contains("listening for events") => (child, rx),
        other => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mptcp monitor did not subscribe: {other:?}");
        }
    }
}

/// Waits at most 15 s for the monitor to end; its JSON lines.
fn events(mut child: Child) -> Vec<Value> {
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("mptcp monitor did not stop within 15 s");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");
    let mut out = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut out)
        .unwrap();
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect()
}

#[test]
fn monitor_filters_by_event_and_token() {
    let net = testnet();
    let client = net.client().name();
    let s0 = net.server().addr(0).unwrap();

    // --event: only created and closed, none of the subflow events in between.
    let (child, _stderr) = monitor(
        client,
        &[
            "--event",
            "created",
            "--event",
            "closed",
            "--count",
            "2",
            "--timeout",
            "15",
        ],
    );
    let a = connect(&net, s0, 5501, false);
    wait_subflows(&a.1, 2);
    let token_a = a.1.mptcp_info().unwrap().expect("MPTCP").token;
    drop(a);
    let got = events(child);
    let kinds: Vec<&str> = got.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["created", "closed"], "{got:?}");
    for e in &got {
        assert_eq!(e["token"], token_a);
        assert!(e.as_object().unwrap().values().all(|v| !v.is_null()), "{e}");
    }

    // --token: another connection's events are left out.
    let b = connect(&net, s0, 5502, false);
    let token_b = b.1.mptcp_info().unwrap().expect("MPTCP").token;
    let (child, _stderr) = monitor(
        client,
        &[
            "--token",
            &format!("{token_b:x}"),
            "--event",
            "closed",
            "--count",
            "1",
            "--timeout",
            "15",
        ],
    );
    let c = connect(&net, s0, 5503, false);
    drop(c);
    std::thread::sleep(Duration::from_millis(200));
    drop(b);
    let got = events(child);
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0]["event"], "closed");
    assert_eq!(got[0]["token"], token_b);
}

/// One line on stderr, exit status 2, naming `names`.
fn refused(args: &[&str], names: &str) {
    let out = mptcp_here(args).output().expect("run mptcp");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}");
    assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr:?}");
    assert!(
        stderr.starts_with("mptcp: error: ") && stderr.contains(names),
        "{args:?} should name {names:?}: {stderr}"
    );
}

#[test]
fn bad_filter_values_are_one_line_and_status_2() {
    refused(&["conns", "--port", "0"], "'0'");
    refused(&["conns", "--port", "65536"], "'65536'");
    refused(&["conns", "--port", "http"], "'http'");
    refused(&["conns", "--local", "198.18.0.300"], "'198.18.0.300'");
    refused(&["conns", "--remote", "198.18.0.2:0"], "'198.18.0.2:0'");
    refused(
        &["conns", "--remote", "2001:db8::1:99999"],
        "'2001:db8::1:99999'",
    );
    refused(&["conns", "--state", "open"], "'open'");
    refused(&["conns", "--token", "0xfffffffff"], "'0xfffffffff'");
    refused(&["conns", "--token", "xyz"], "'xyz'");
    refused(&["conns", "--min-subflows", "-1"], "-1");
    refused(&["conns", "--fallback=yes"], "--fallback");
    refused(&["monitor", "--event", "subflow"], "'subflow'");
    refused(&["monitor", "--token", ""], "--token");
}
