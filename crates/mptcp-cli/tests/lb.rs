//! The command-line contract of `mptcp lb` and of `mptcp pm run --role server` behind a
//! balancer: bad input is one line and exit status 2 with nothing applied; a running
//! balancer logs JSON lines, answers `lb status`, and removes its rules on SIGTERM.
//! (What the rules do to real traffic is proven in crates/mptcp-lb/tests/fleet.rs.)

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command as StdCommand, Stdio};
use std::time::{Duration, Instant};

use common::{ip, mptcp, mptcp_here, netns};
use serde_json::Value;

fn one_line_refusal(out: &std::process::Output, names: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr:?}");
    assert!(stderr.contains(names), "should name {names:?}: {stderr}");
}

#[test]
fn bad_balancer_arguments_are_one_line_and_status_2() {
    let run = |args: &[&str]| mptcp_here(args).output().unwrap();
    one_line_refusal(
        &run(&[
            "lb",
            "run",
            "--vip",
            "198.18.200.1:80",
            "--backend",
            "198.19.0.2,join-port=20000",
            "--backend",
            "198.19.1.2,join-port=20000",
        ]),
        "both have join port 20000",
    );
    one_line_refusal(
        &run(&[
            "lb",
            "run",
            "--vip",
            "198.18.200.1",
            "--backend",
            "198.19.0.2",
        ]),
        "ADDR:PORT",
    );
    one_line_refusal(
        &run(&[
            "lb",
            "run",
            "--vip",
            "198.18.200.1:80",
            "--backend",
            "backend-1",
        ]),
        "not an IP address",
    );
    one_line_refusal(
        &run(&[
            "lb",
            "run",
            "--vip",
            "198.18.200.1:80",
            "--backend",
            "198.19.0.2",
            "--steer-tokens",
        ]),
        "--registry",
    );
    one_line_refusal(
        &run(&["pm", "run", "--role", "client", "--vip", "198.18.200.1"]),
        "role \"server\"",
    );
}

#[test]
fn a_host_that_cannot_balance_is_refused_with_nothing_applied() {
    let ns = netns("lb-refused");
    let args = [
        "lb",
        "run",
        "--vip",
        "198.18.200.1:80",
        "--backend",
        "198.19.0.2,join-port=20000",
    ];
    ns.set_sysctl("net.ipv4.ip_forward", "0").unwrap();
    one_line_refusal(
        &mptcp(ns.name(), &args).output().unwrap(),
        "net.ipv4.ip_forward",
    );
    ns.set_sysctl("net.ipv4.ip_forward", "1").unwrap();
    one_line_refusal(&mptcp(ns.name(), &args).output().unwrap(), "no route to it");
    let tables = ns.exec("nft", ["list", "tables"]).unwrap();
    assert!(
        String::from_utf8_lossy(&tables.stdout).trim().is_empty(),
        "a table was left"
    );
    assert!(
        !ip(ns.name(), &["rule"]).contains("fwmark"),
        "a rule was left"
    );
    // A backend whose VIP is not on the host: the path manager refuses.
    one_line_refusal(
        &mptcp(
            ns.name(),
            &[
                "pm",
                "run",
                "--role",
                "server",
                "--vip",
                "198.18.250.1",
                "--join-port",
                "20001",
                "--state-dir",
                "/tmp/mptcp-cli-test-lb-pm",
            ],
        )
        .output()
        .unwrap(),
        "is not an address of this host",
    );
}

#[test]
fn a_running_balancer_logs_json_answers_status_and_cleans_up() {
    let ns = netns("lb-run");
    ns.set_sysctl("net.ipv4.ip_forward", "1").unwrap();
    ns.exec("ip", ["link", "set", "lo", "up"]).unwrap();
    ns.exec(
        "ip",
        ["link", "add", "b0", "type", "veth", "peer", "name", "b0p"],
    )
    .unwrap();
    ns.exec("ip", ["addr", "add", "198.19.0.254/24", "dev", "b0"])
        .unwrap();
    ns.exec("ip", ["link", "set", "b0", "up"]).unwrap();
    ns.exec("ip", ["link", "set", "b0p", "up"]).unwrap();
    let state = std::env::temp_dir().join(format!("mptcp-cli-lb-{}", std::process::id()));
    let mut child = StdCommand::new(env!("CARGO_BIN_EXE_mptcp"))
        .args([
            "--netns",
            ns.name(),
            "--json",
            "lb",
            "run",
            "--vip",
            "198.18.200.1:80",
        ])
        .args([
            "--backend",
            "198.19.0.2,join-port=20000",
            "--metrics",
            "127.0.0.1:9851",
        ])
        .arg("--state-dir")
        .arg(&state)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first: Value = serde_json::from_str(&lines.next().unwrap().unwrap()).unwrap();
    assert_eq!(first["event"], "started", "{first}");
    assert_eq!(first["status"]["mode"], "route");
    assert_eq!(
        first["status"]["own_routes"][0], "198.18.200.1",
        "no route: it made one"
    );
    assert_eq!(first["status"]["backends"][0]["join_port"], 20000);
    let status = mptcp_here(&[
        "--json",
        "lb",
        "status",
        "--state-dir",
        state.to_str().unwrap(),
    ])
    .output()
    .unwrap();
    let status: Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(status["backends"][0]["mark"], "0x4d4c0001", "{status}");
    assert!(ip(ns.name(), &["rule"]).contains("fwmark 0x4d4c0001 lookup 19801"));
    assert!(ip(ns.name(), &["route"]).contains("198.18.200.1 via 198.19.0.2"));
    let metrics = ns
        .run(|| {
            let mut c = std::net::TcpStream::connect("127.0.0.1:9851")?;
            std::io::Write::write_all(&mut c, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")?;
            let mut text = String::new();
            std::io::Read::read_to_string(&mut c, &mut text).map(|_| text)
        })
        .unwrap()
        .unwrap();
    assert!(
        metrics.contains("mptcp_lb_backends{backend=\"198.19.0.2\",state=\"active\"} 1"),
        "{metrics}"
    );
    // SIGTERM: every rule, route and table goes.
    let _ = StdCommand::new("kill").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    let code = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s.code();
        }
        assert!(Instant::now() < deadline, "mptcp lb did not stop");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(code, Some(0));
    let last: Value = serde_json::from_str(&lines.last().unwrap().unwrap()).unwrap();
    assert_eq!(last["event"], "stopped");
    assert!(!ip(ns.name(), &["rule"]).contains("fwmark"));
    assert!(!ip(ns.name(), &["route"]).contains("198.18.200.1"));
    let tables = ns.exec("nft", ["list", "tables"]).unwrap();
    assert!(String::from_utf8_lossy(&tables.stdout).trim().is_empty());
}

/// `mptcp doctor` on a backend behind a balancer that hashes joins: the symptom and
/// the fix, on a real fleet with a stock client.
#[test]
fn doctor_on_a_backend_names_the_balancer_symptom() {
    use mptcp_testnet::{ClientEndpoints, Fleet};
    let fleet = Fleet::builder()
        .client_endpoints(ClientEndpoints::Subflow)
        .build()
        .unwrap_or_else(|e| panic!("this test needs a fleet (root, iproute2, nftables): {e}"));
    let vip = std::net::SocketAddr::new(fleet.vip4().into(), 8080);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let ready = std::sync::atomic::AtomicUsize::new(0);
    std::thread::scope(|s| {
        for b in fleet.backends() {
            let (stop, ready) = (&stop, &ready);
            s.spawn(move || {
                b.netns()
                    .run(|| {
                        let l = mptcp_net::ListenConfig::new()
                            .listen("0.0.0.0:8080")
                            .unwrap();
                        l.set_nonblocking(true).unwrap();
                        ready.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        let mut held = Vec::new();
                        while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                            if let Ok((c, _)) = l.accept() {
                                held.push(c);
                            }
                            std::thread::sleep(Duration::from_millis(5));
                        }
                    })
                    .unwrap()
            });
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while ready.load(std::sync::atomic::Ordering::SeqCst) < 3 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        let dialed = fleet.client().run(|| {
            // A client opens its joins once the connection is fully established: after
            // the server acknowledges its first data.
            let conns = (0..12)
                .map(|_| {
                    let mut c = mptcp_net::Dialer::new().dial(vip)?;
                    std::io::Write::write_all(&mut c, b"hello").map(|()| c)
                })
                .collect::<Result<Vec<_>, _>>();
            std::thread::sleep(Duration::from_millis(500));
            conns.map(|c| c.len())
        });
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        assert_eq!(dialed.unwrap().unwrap(), 12);
    });
    let lines: Vec<Value> = fleet
        .backends()
        .iter()
        .map(|b| {
            let out = mptcp(b.netns().name(), &["--json", "doctor"])
                .output()
                .unwrap();
            let report: Value = serde_json::from_slice(&out.stdout).unwrap();
            report["checks"]
                .as_array()
                .unwrap()
                .iter()
                .find(|c| c["id"] == "balancer_joins")
                .cloned()
                .expect("a balancer_joins line")
        })
        .collect();
    let warned: Vec<&Value> = lines.iter().filter(|l| l["status"] == "warn").collect();
    assert!(
        !warned.is_empty(),
        "12 connections, 3 backends, no reset join seen: {lines:#?}"
    );
    for l in warned {
        assert!(
            l["detail"].as_str().unwrap().contains("MPJoinNoTokenFound"),
            "{l}"
        );
        assert!(l["fix"].as_str().unwrap().contains("mptcp lb run"), "{l}");
    }
}
