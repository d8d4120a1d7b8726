//! `mptcp pm` on the command line: flags, exit codes, the JSON shapes, and one run of
//! each subcommand through the binary (NOTIFY_SOCKET, SIGTERM, `--once`, the status
//! text). What the daemon does is tested on its library in crates/mptcp-pm/tests.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::pm::{addresses, endpoints, state_dir, PmDaemon};
use common::{ip, netns, shape};
use mptcp_testnet::{Endpoints, Netns, TestNet};
use serde_json::Value;

/// One namespace with `x0` (198.18.10.1) and `x1` (198.18.11.1), up, each with a
/// default route of its own (tables 100 and 101).
fn host_with_two_links(label: &str) -> Netns {
    let ns = netns(label);
    common::two_interfaces(ns.name(), 10, 11);
    for (dev, net, table) in [("x0", 10, "100"), ("x1", 11, "101")] {
        let via = format!("198.18.{net}.2");
        ip(
            ns.name(),
            &[
                "route", "add", "default", "via", &via, "dev", dev, "table", table,
            ],
        );
    }
    ns
}

#[test]
fn pm_plan_json_shape_and_bad_configuration_exit_2() {
    let ns = host_with_two_links("pm-cli-plan");
    let name = ns.name().to_string();
    let state = state_dir("cli-plan");
    let p = common::json(
        &name,
        &["pm", "plan", "--state-dir", state.to_str().unwrap()],
        0,
    );
    shape(
        &p,
        &[
            "role",
            "endpoints",
            "skipped",
            "over_capacity",
            "foreign",
            "strict_rp_filter",
            "actions",
        ],
        &["limits", "balancer"],
    );
    assert_eq!(p["endpoints"].as_array().unwrap().len(), 2, "{p:#}");
    shape(
        &p["endpoints"][0],
        &["id", "address", "flags", "ifindex", "interface", "reason"],
        &["priority", "port"],
    );
    shape(
        &p["limits"],
        &["subflows", "add_addr_accepted", "reason"],
        &[],
    );
    assert_eq!(p["actions"].as_array().unwrap().len(), 3, "{p:#}");

    // Bad input: status 2, one line `mptcp: error: FILE:LINE: ...`, nothing changed.
    let config = state.with_extension("toml");
    let cfg = config.to_str().unwrap().to_string();
    std::fs::write(&config, "role = \"client\"\nbogus = 1\n").unwrap();
    for sub in ["run", "plan"] {
        let out = common::mptcp(&name, &["pm", sub, "--config", &cfg])
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{sub}: {err}");
        assert!(
            err.starts_with(&format!("mptcp: error: {cfg}:2: unknown field `bogus`")),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
    }
    let out = common::mptcp(&name, &["pm", "run", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the configuration"));
    // [server] settings without --role server.
    let out = common::mptcp(&name, &["pm", "plan", "--join-port", "7000"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("need role \"server\""),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(endpoints(&ns).is_empty());
}

#[test]
fn pm_run_json_lines_sigterm_second_daemon_and_once() {
    let ns = host_with_two_links("pm-cli-run");
    let name = ns.name().to_string();
    let state = state_dir("cli-run");
    let mut d = PmDaemon::start(&name, &state, &[]);
    let ready = d.ready();
    shape(&ready, &["time", "event", "endpoints"], &["limits"]);
    assert_eq!(ready["endpoints"], 2);

    // A second daemon in the same namespace: status 2, the holder's pid.
    let out = common::mptcp(
        &name,
        &["pm", "run", "--state-dir", state.to_str().unwrap()],
    )
    .output()
    .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!(
            "mptcp: error: another `mptcp pm run` (pid {}) ",
            d.pid()
        )) && err.contains("manages this network namespace"),
        "{err}"
    );

    // SIGTERM: status 0, the last line `stopped`, our endpoints gone.
    let (status, lines) = d.stop();
    assert!(status.success(), "{status}");
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "stopped", "{lines:#?}");
    assert!(endpoints(&ns).is_empty());

    // --once sets and exits 0, leaving them.
    let out = common::mptcp(
        &name,
        &[
            "--json",
            "pm",
            "run",
            "--once",
            "--state-dir",
            state.to_str().unwrap(),
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
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(lines.iter().any(|v| v["event"] == "ready"), "{text}");
    assert_eq!(lines.last().unwrap()["event"], "stopped", "{text}");
    assert_eq!(lines.last().unwrap()["removed"], 0, "{text}");
    assert_eq!(addresses(&ns).len(), 2);
    // --userspace goes with none of the one-shot flags.
    let out = common::mptcp(&name, &["pm", "run", "--userspace", "--once"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn pm_rp_filter_warning_fix_and_sd_notify() {
    let ns = host_with_two_links("pm-rp");
    let name = ns.name().to_string();
    let state = state_dir("rp");
    ns.set_sysctl("net/ipv4/conf/x0/rp_filter", "1").unwrap();
    let p = common::json(&name, &["pm", "plan"], 0);
    assert_eq!(p["strict_rp_filter"], serde_json::json!(["x0"]));
    // sd_notify: READY=1 reaches the socket systemd would pass.
    let sock_path = state.with_extension("notify");
    let _ = std::fs::remove_file(&sock_path);
    let sock = std::os::unix::net::UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut child = common::mptcp(
        &name,
        &[
            "--json",
            "pm",
            "run",
            "--fix-rp-filter",
            "--state-dir",
            state.to_str().unwrap(),
        ],
    );
    child.env("NOTIFY_SOCKET", &sock_path);
    let handle = std::thread::spawn(move || child.output().unwrap());
    let mut buf = [0u8; 512];
    let n = sock.recv(&mut buf).expect("a message on NOTIFY_SOCKET");
    let msg = String::from_utf8_lossy(&buf[..n]).to_string();
    assert!(msg.lines().any(|l| l == "READY=1"), "{msg:?}");
    assert_eq!(ns.sysctl("net/ipv4/conf/x0/rp_filter").unwrap().trim(), "2");
    // Stop it (the command's timeout would kill it otherwise).
    let pid = std::fs::read_to_string(mptcp_pm_state_file(&state)).unwrap();
    let pid: i32 = serde_json::from_str::<Value>(&pid).unwrap()["pid"]
        .as_i64()
        .unwrap() as i32;
    rustix::process::kill_process(
        rustix::process::Pid::from_raw(pid).unwrap(),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let out = handle.join().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("\"event\":\"rp_filter_strict\"") && text.contains("\"fixed\":true"),
        "{text}"
    );
}

fn mptcp_pm_state_file(state: &Path) -> PathBuf {
    std::fs::read_dir(state)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.extension().is_some_and(|e| e == "json"))
        .expect("the daemon's state file")
}

/// `mptcp pm run --userspace` and `mptcp pm status` (text and JSON), and status 2
/// once no daemon runs.
#[test]
fn pm_userspace_run_and_status_on_the_command_line() {
    let net = TestNet::builder()
        .paths(2)
        .ipv6(false)
        .endpoints(Endpoints::None)
        .build()
        .unwrap_or_else(|e| panic!("this test needs a test network (root, iproute2): {e}"));
    let client = net.client().name().to_string();
    let state = state_dir("cli-us");
    let config = state.with_extension("toml");
    std::fs::write(
        &config,
        "[userspace]\n[[userspace.rule]]\npolicy = \"single\"\nremote_port = 7001\n",
    )
    .unwrap();
    let mut d = PmDaemon::start(
        &client,
        &state,
        &["--userspace", "--config", config.to_str().unwrap()],
    );
    d.ready();
    let listener = net
        .server()
        .run(|| {
            mptcp_net::ListenConfig::new()
                .listen("0.0.0.0:7001")
                .unwrap()
        })
        .unwrap();
    let target = std::net::SocketAddr::new(net.server().addr(0).unwrap(), 7001);
    let stream = net
        .client()
        .run(|| mptcp_net::Dialer::new().dial(target).unwrap())
        .unwrap();
    let (server_side, _) = listener.accept().unwrap();
    let state_arg = state.to_str().unwrap().to_string();
    let status_args = ["pm", "status", "--state-dir", state_arg.as_str()];
    // The status file is rewritten every second.
    let deadline = Instant::now() + Duration::from_secs(5);
    let s = loop {
        let s = common::json(&client, &status_args, 0);
        if s["connections"].as_array().is_some_and(|c| c.len() == 1) {
            break s;
        }
        assert!(Instant::now() < deadline, "{s:#}");
        std::thread::sleep(Duration::from_millis(200));
    };
    shape(&s, &["pid", "written", "paths", "connections"], &[]);
    shape(
        &s["connections"][0],
        &[
            "token",
            "policy",
            "server_side",
            "local",
            "remote",
            "subflows",
        ],
        &["active", "last", "last_seconds_ago"],
    );
    let text = common::mptcp(&client, &status_args).output().unwrap();
    assert!(text.status.success());
    let text = String::from_utf8_lossy(&text.stdout);
    assert!(
        text.contains("1 connection(s)") && text.contains(" single"),
        "{text}"
    );
    drop((stream, server_side));
    let (status, lines) = d.stop();
    assert!(status.success(), "{status}");
    assert!(lines
        .iter()
        .any(|l| l["event"] == "path_manager" && l["value"] == "kernel"));
    let out = common::mptcp(&client, &status_args).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no `mptcp pm run --userspace` runs"));
}
