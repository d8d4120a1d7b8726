//! `mptcp doctor` on real namespaces: the no-endpoint and `enabled=0` cases are
//! flagged, a healthy two-path client passes, and `--target` tells an MPTCP server
//! from a plain TCP one.

mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::thread::JoinHandle;
use std::time::Duration;

use common::{json, keys, mptcp, netns, shape, sorted, testnet, two_interfaces};
use mptcp_net::ListenConfig;
use serde_json::Value;

const CHECK_KEYS: &[&str] = &["id", "status", "what", "detail"];
const LOCAL_IDS: &[&str] = &[
    "mptcp_socket",
    "enabled",
    "path_manager",
    "scheduler",
    "checksum",
    "blackhole",
    "limits",
    "endpoints",
    "fallback",
    "balancer_joins",
];

/// The line with `id`.
fn line<'a>(report: &'a Value, id: &str) -> &'a Value {
    report["checks"]
        .as_array()
        .expect("checks")
        .iter()
        .find(|c| c["id"] == id)
        .unwrap_or_else(|| panic!("no {id} line in {report:#}"))
}

/// Checks the report's shape: the documented keys, every local line, in order.
fn check_shape(report: &Value) {
    shape(
        report,
        &["version", "preload", "verdict", "exit_code", "checks"],
        &["target"],
    );
    let checks = report["checks"].as_array().unwrap();
    let ids: Vec<&str> = checks.iter().map(|c| c["id"].as_str().unwrap()).collect();
    assert_eq!(&ids[..LOCAL_IDS.len()], LOCAL_IDS);
    for c in checks {
        shape(c, CHECK_KEYS, &["fix"]);
        assert!(
            ["ok", "warn", "fail", "unknown"].contains(&c["status"].as_str().unwrap()),
            "{c}"
        );
    }
}

#[test]
fn two_addresses_and_no_endpoint_warn() {
    let ns = netns("cli-doc-noep");
    two_interfaces(ns.name(), 5, 6);
    let report = json(ns.name(), &["doctor"], 1);
    check_shape(&report);
    assert_eq!(report["verdict"], "problems");
    assert_eq!(report["exit_code"], 1);
    let endpoints = line(&report, "endpoints");
    assert_eq!(endpoints["status"], "warn", "{endpoints}");
    let detail = endpoints["detail"].as_str().unwrap();
    assert!(
        detail.contains("198.18.5.1") && detail.contains("198.18.6.1"),
        "{detail}"
    );
    let fix = endpoints["fix"].as_str().unwrap();
    assert!(fix.contains("mptcp endpoint add 198.18."), "{fix}");
    assert!(fix.contains("--subflow"), "{fix}");
    // Nothing else is wrong in a fresh namespace.
    for id in LOCAL_IDS.iter().filter(|id| **id != "endpoints") {
        assert_eq!(line(&report, id)["status"], "ok", "{:#}", line(&report, id));
    }

    // Applying the fix makes it healthy.
    let fix_cmd: Vec<&str> = fix
        .split('`')
        .nth(1)
        .expect("the fix quotes a command")
        .split_whitespace()
        .skip(1)
        .collect();
    mptcp(ns.name(), &fix_cmd).assert().success();
    let report = json(ns.name(), &["doctor"], 0);
    assert_eq!(report["verdict"], "healthy");

    // Text output: a warn line, its fix, the verdict.
    let out = mptcp(ns.name(), &["limits", "set", "--subflows", "0"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let out = mptcp(ns.name(), &["doctor"]).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("warn  limits"), "{text}");
    assert!(
        text.contains("no extra subflows will ever be made"),
        "{text}"
    );
    assert!(text.contains("fix: mptcp limits set --subflows"), "{text}");
    assert!(text.contains("verdict: 1 problem(s)"), "{text}");
    assert!(!text.contains('\x1b'), "no colour into a pipe: {text:?}");
}

#[test]
fn mptcp_disabled_fails() {
    let ns = netns("cli-doc-off");
    ns.set_sysctl("net.mptcp.enabled", "0")
        .expect("set net.mptcp.enabled=0");
    let report = json(ns.name(), &["doctor"], 1);
    check_shape(&report);
    let socket = line(&report, "mptcp_socket");
    assert_eq!(socket["status"], "fail", "{socket}");
    assert!(
        socket["detail"].as_str().unwrap().contains("ENOPROTOOPT"),
        "{socket}"
    );
    let enabled = line(&report, "enabled");
    assert_eq!(enabled["status"], "fail", "{enabled}");
    assert_eq!(enabled["fix"], "sysctl -w net.mptcp.enabled=1");
}

#[test]
fn a_healthy_two_path_client_passes() {
    let net = testnet();
    let report = json(net.client().name(), &["doctor"], 0);
    check_shape(&report);
    assert_eq!(report["verdict"], "healthy");
    assert!(
        report.get("target").is_none(),
        "no target, no key: {report}"
    );
    for c in report["checks"].as_array().unwrap() {
        assert_eq!(c["status"], "ok", "{c}");
        assert!(c.get("fix").is_none(), "{c}");
    }
    let endpoints = line(&report, "endpoints")["detail"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(endpoints.contains("subflow"), "{endpoints}");
}

/// Accepts `n` connections on `listener`, one after the other, and reads each until
/// the peer closes it (bounded by a 10 s read timeout), so the connection and its
/// subflows stay up while the doctor watches them.
fn serve(listener: TcpListener, n: usize) -> JoinHandle<()> {
    std::thread::spawn(move || {
        for _ in 0..n {
            let Ok((mut conn, _)) = listener.accept() else {
                return;
            };
            conn.set_read_timeout(Some(Duration::from_secs(10)))
                .unwrap();
            let mut buf = [0u8; 64];
            while matches!(conn.read(&mut buf), Ok(n) if n > 0) {}
        }
    })
}

#[test]
fn target_tells_an_mptcp_server_from_a_plain_tcp_one() {
    let net = testnet();
    let server = net.server();
    let listen = |mptcp: bool, port: u16| {
        server
            .run(|| {
                ListenConfig::new()
                    .set_multipath_tcp(mptcp)
                    .listen(("0.0.0.0", port))
            })
            .unwrap()
            .expect("listen")
    };
    let mptcp_server = serve(listen(true, 5201), 2);
    let tcp_server = serve(listen(false, 5202), 1);
    let addr = |port| SocketAddr::new(server.addr(0).unwrap(), port).to_string();
    let client = net.client().name();

    // MPTCP first: the plain one leaves a fallback counter behind.
    let target = addr(5201);
    let report = json(client, &["doctor", "--target", &target, "--wait", "3"], 0);
    check_shape(&report);
    let t = &report["target"];
    assert_eq!(
        keys(t),
        sorted(&[
            "target",
            "address",
            "status",
            "token",
            "subflows",
            "add_addr_accepted",
            "announced",
            "events",
        ]),
        "a connected target has no error key: {t}"
    );
    assert_eq!(t["target"], target.as_str());
    assert_eq!(t["address"], target.as_str());
    assert_eq!(t["status"], "active", "{t}");
    assert!(t["token"].as_u64().is_some(), "{t}");
    assert_eq!(
        t["subflows"], 2,
        "the client's subflow endpoint on path 1: {t}"
    );
    assert_eq!(t["events"], true, "root may read the events: {t}");
    assert_eq!(t["announced"], serde_json::json!([]), "{t}");
    assert_eq!(line(&report, "target_connect")["status"], "ok");
    assert_eq!(line(&report, "target_subflows")["status"], "ok");
    assert_eq!(line(&report, "target_announced")["status"], "ok");

    // Without CAP_NET_ADMIN there are no events: the doctor says what it can.
    let out = std::process::Command::new("setpriv")
        .args(["--inh-caps=-all", "--bounding-set=-net_admin", "--"])
        .arg(env!("CARGO_BIN_EXE_mptcp"))
        .args(["--netns", client, "--json", "doctor", "--target", &target])
        .output()
        .unwrap_or_else(|e| panic!("this test needs setpriv (util-linux): {e}"));
    let report = common::parse(&out, 0, &["doctor without CAP_NET_ADMIN"]);
    let t = &report["target"];
    assert_eq!(t["status"], "active", "{t}");
    assert_eq!(t["events"], false, "{t}");
    assert!(t.get("announced").is_none(), "{t}");
    let announced = line(&report, "target_announced");
    assert_eq!(announced["status"], "ok");
    assert!(
        announced["detail"]
            .as_str()
            .unwrap()
            .contains("CAP_NET_ADMIN"),
        "{announced}"
    );
    mptcp_server.join().unwrap();

    // Nobody listening (before the plain server, whose fallback counter would
    // make a warning): could not check, exit 2.
    let report = json(client, &["doctor", "--target", &addr(5209)], 2);
    assert_eq!(report["verdict"], "incomplete");
    assert_eq!(line(&report, "target_connect")["status"], "unknown");
    assert!(report["target"]["error"]
        .as_str()
        .unwrap()
        .contains("refused"));

    let target = addr(5202);
    let report = json(client, &["doctor", "--target", &target], 1);
    let t = &report["target"];
    assert_eq!(t["status"], "fell_back", "{t}");
    let connect = line(&report, "target_connect");
    assert_eq!(connect["status"], "fail", "{connect}");
    assert!(
        connect["detail"]
            .as_str()
            .unwrap()
            .contains("fell back to plain TCP"),
        "{connect}"
    );
    assert!(
        connect["detail"]
            .as_str()
            .unwrap()
            .contains("without MP_CAPABLE"),
        "{connect}"
    );
    assert!(
        connect["fix"]
            .as_str()
            .unwrap()
            .contains("does not speak MPTCP"),
        "{connect}"
    );
    tcp_server.join().unwrap();
}
