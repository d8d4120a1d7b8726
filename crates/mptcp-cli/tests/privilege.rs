//! Least privilege, read from the kernel: each daemon's threads' `/proc/PID/task/TID/status`
//! (`Uid`, `CapEff`, `CapPrm`, `CapBnd`, `CapAmb`) once it is set up, and the daemon
//! still doing its job afterwards: `mptcp pm run` adds an endpoint for an address
//! that appears, `mptcp exporter` scrapes another namespace, `mptcp lb run` applies
//! a reloaded configuration.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::unix::fs::chown;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::pm::{endpoints, state_dir, PmDaemon};
use common::{ip, netns};
use nix::unistd::User;

/// `CAP_NET_ADMIN` (12) as the hexadecimal mask of `/proc/PID/status`.
const NET_ADMIN: u64 = 1 << 12;

/// One thread's credentials.
#[derive(Debug, PartialEq, Eq)]
struct Creds {
    uid: u32,
    eff: u64,
    prm: u64,
    bnd: u64,
    amb: u64,
}

/// Every thread's credentials (a capability set belongs to a thread, so each is read).
fn threads(pid: u32) -> Vec<(String, Creds)> {
    let dir = format!("/proc/{pid}/task");
    let mut out = Vec::new();
    for task in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{dir}: {e}")) {
        let path = task.unwrap().path().join("status");
        let Ok(text) = std::fs::read_to_string(&path) else {
            continue; // the thread ended meanwhile
        };
        let field = |name: &str| -> &str {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .unwrap_or_else(|| panic!("no {name} in {}: {text}", path.display()))
                .trim()
        };
        let hex = |name: &str| u64::from_str_radix(field(name), 16).unwrap();
        let creds = Creds {
            // Real, effective, saved, filesystem: all four must be the user's.
            uid: {
                let ids: Vec<u32> = field("Uid:")
                    .split_whitespace()
                    .map(|s| s.parse().unwrap())
                    .collect();
                assert!(ids.iter().all(|&i| i == ids[0]), "{path:?}: Uid {ids:?}");
                ids[0]
            },
            eff: hex("CapEff:"),
            prm: hex("CapPrm:"),
            bnd: hex("CapBnd:"),
            amb: hex("CapAmb:"),
        };
        out.push((field("Name:").to_string(), creds));
    }
    assert!(!out.is_empty(), "no thread in {dir}");
    out
}

/// Asserts that every thread of `pid` runs as `uid` with exactly `caps` in its
/// effective, permitted and bounding sets (and the ambient set at most `caps`).
fn assert_creds(what: &str, pid: u32, uid: u32, caps: u64) {
    for (name, c) in threads(pid) {
        println!("{what} thread {name}: {c:?}");
        assert_eq!(c.uid, uid, "{what} thread {name}: uid {c:?}");
        assert_eq!(c.eff, caps, "{what} thread {name}: CapEff {c:?}");
        assert_eq!(c.prm, caps, "{what} thread {name}: CapPrm {c:?}");
        assert_eq!(c.bnd, caps, "{what} thread {name}: CapBnd {c:?}");
        assert_eq!(c.amb & !caps, 0, "{what} thread {name}: CapAmb {c:?}");
    }
}

fn nobody() -> u32 {
    User::from_name("nobody")
        .expect("read the user database")
        .expect("this test needs the user nobody")
        .uid
        .as_raw()
}

fn give_to_nobody(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    chown(dir, Some(nobody()), None).unwrap();
}

/// Waits until `pred` holds, for up to 10 s.
fn eventually(what: &str, pred: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !pred() {
        assert!(Instant::now() < deadline, "{what} within 10 s");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn terminate(child: &mut Child) -> Option<i32> {
    let _ = Command::new("kill").arg(child.id().to_string()).status();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(s) = child.try_wait().unwrap() {
            return s.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the daemon ignored SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn pm_keeps_only_net_admin_as_nobody_and_still_adds_endpoints() {
    let ns = netns("priv-pm");
    common::two_interfaces(ns.name(), 10, 11);
    ip(ns.name(), &["addr", "del", "198.18.11.1/24", "dev", "x1"]);
    ip(
        ns.name(),
        &["route", "add", "default", "via", "198.18.10.2", "dev", "x0"],
    );
    let state = state_dir("priv");
    give_to_nobody(&state);
    let mut pm = PmDaemon::start(ns.name(), &state, &["--user", "nobody"]);
    pm.ready();
    assert_creds("pm", pm.pid(), nobody(), NET_ADMIN);
    // An address appears: the daemon, now without root, adds its endpoint.
    ip(ns.name(), &["addr", "add", "198.18.11.1/24", "dev", "x1"]);
    ip(
        ns.name(),
        &[
            "route",
            "add",
            "default",
            "via",
            "198.18.11.2",
            "dev",
            "x1",
            "table",
            "101",
        ],
    );
    eventually("an endpoint for 198.18.11.1", || {
        endpoints(&ns)
            .iter()
            .any(|e| e.address.to_string() == "198.18.11.1")
    });
    let (status, _) = pm.stop();
    assert!(status.success(), "{status}");
    assert!(
        endpoints(&ns).is_empty(),
        "its endpoints removed on exit, as nobody"
    );
}

#[test]
fn pm_without_user_drops_every_capability_but_net_admin() {
    let ns = netns("priv-pm-root");
    common::two_interfaces(ns.name(), 12, 13);
    let state = state_dir("priv-root");
    let mut pm = PmDaemon::start(ns.name(), &state, &[]);
    pm.ready();
    assert_creds("pm", pm.pid(), 0, NET_ADMIN);
    let (status, _) = pm.stop();
    assert!(status.success(), "{status}");
}

/// A running `mptcp exporter` and the address it serves.
fn exporter(args: &[&str]) -> (Child, SocketAddr) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_mptcp"))
        .args(args)
        .env_remove("MPTCP_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start mptcp exporter");
    let (tx, rx) = mpsc::channel();
    let pipe = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(pipe).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut seen = Vec::new();
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(10)) {
        if let Some(rest) = line.strip_prefix("listening on http://") {
            let addr = rest.split('/').next().unwrap().parse().unwrap();
            return (child, addr);
        }
        seen.push(line);
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("mptcp exporter did not start within 10 s; stderr: {seen:?}");
}

fn scrape(addr: SocketAddr) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut text = String::new();
    s.read_to_string(&mut text).unwrap();
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    text
}

#[test]
fn exporter_drops_everything_and_still_scrapes_other_namespaces() {
    let ns = netns("priv-exp");
    ip(
        ns.name(),
        &["mptcp", "endpoint", "add", "198.18.14.1", "id", "7"],
    );
    for (user, uid) in [(Some("nobody"), nobody()), (None, 0)] {
        let mut args = vec!["--netns", ns.name(), "exporter", "--listen", "127.0.0.1:0"];
        if let Some(u) = user {
            args.extend(["--user", u]);
        }
        let (mut child, addr) = exporter(&args);
        assert_creds("exporter", child.id(), uid, 0);
        let text = scrape(addr);
        for part in ["counters", "connections", "endpoints", "limits", "sysctls"] {
            assert!(
                text.contains(&format!(
                    "mptcp_collector_success{{collector=\"{part}\"}} 1"
                )),
                "{part} not read without privileges: {text}"
            );
        }
        assert!(
            text.contains("address=\"198.18.14.1\""),
            "the other namespace's endpoint: {text}"
        );
        assert_eq!(terminate(&mut child), Some(0));
    }
}

#[test]
fn lb_keeps_only_net_admin_and_still_applies_a_reload() {
    let ns = netns("priv-lb");
    ns.set_sysctl("net.ipv4.ip_forward", "1").unwrap();
    ip(ns.name(), &["link", "set", "lo", "up"]);
    ip(
        ns.name(),
        &["link", "add", "b0", "type", "veth", "peer", "name", "b0p"],
    );
    ip(ns.name(), &["addr", "add", "198.19.0.254/24", "dev", "b0"]);
    ip(ns.name(), &["link", "set", "b0", "up"]);
    ip(ns.name(), &["link", "set", "b0p", "up"]);
    let dir = state_dir("priv-lb");
    give_to_nobody(&dir);
    let config = dir.join("lb.toml");
    let one = "mode = \"route\"\nvip = [\"198.18.200.1:80\"]\n\n\
               [[backend]]\naddress = \"198.19.0.2\"\njoin_port = 20000\n";
    std::fs::write(&config, one).unwrap();
    give_to_nobody(&dir.join("state"));
    let mut child = Command::new(env!("CARGO_BIN_EXE_mptcp"))
        .args([
            "--netns",
            ns.name(),
            "--json",
            "lb",
            "run",
            "--user",
            "nobody",
        ])
        .arg("--config")
        .arg(&config)
        .arg("--state-dir")
        .arg(dir.join("state"))
        .env_remove("MPTCP_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = lines.next().unwrap().unwrap();
    assert!(first.contains("\"started\""), "{first}");
    // The balancer's later lines, for the failure messages.
    let (tx, later) = mpsc::channel();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    assert_creds("lb", child.id(), nobody(), NET_ADMIN);
    assert!(ip(ns.name(), &["rule"]).contains("fwmark 0x4d4c0001"));
    // A second backend, and SIGHUP: `nft` and `ip`, run by the unprivileged
    // balancer, apply it.
    let two = format!("{one}\n[[backend]]\naddress = \"198.19.0.3\"\njoin_port = 20001\n");
    std::fs::write(&config, two).unwrap();
    let _ = Command::new("kill")
        .args(["-HUP", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !ip(ns.name(), &["rule"]).contains("fwmark 0x4d4c0002") {
        assert!(
            Instant::now() < deadline,
            "the second backend's policy rule within 10 s; the balancer said: {:?}",
            later.try_iter().collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A reload, not a stop: the balancer stops within 200 ms of a stop signal.
    std::thread::sleep(Duration::from_millis(600));
    assert!(
        child.try_wait().unwrap().is_none(),
        "SIGHUP stopped the balancer: {:?}",
        later.try_iter().collect::<Vec<_>>()
    );
    assert!(ip(ns.name(), &["rule"]).contains("fwmark 0x4d4c0002"));
    assert_eq!(terminate(&mut child), Some(0));
    assert!(
        !ip(ns.name(), &["rule"]).contains("fwmark"),
        "rules removed on exit"
    );
}
