//! `MPTCP_NET` semantics, each value in a child process (the variable is read
//! once per process). The child is this test binary, running the ignored
//! test `child_report`, which prints what the process default resolved to
//! and what sockets it really made.

use std::process::Command;

use mptcp_net::{Dialer, ListenConfig, MptcpExt};

const CHILD: &str = "MPTCP_NET_TEST_CHILD";

/// Runs `child_report` with `MPTCP_NET` set to `value` (or unset) and
/// returns (its report line, its stderr).
fn child(value: Option<&str>) -> (String, String) {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_report",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(CHILD, "1");
    match value {
        Some(v) => cmd.env(mptcp_net::ENV_VAR, v),
        None => cmd.env_remove(mptcp_net::ENV_VAR),
    };
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "child failed: {stdout}\n{stderr}");
    let report = stdout
        .lines()
        .find_map(|l| l.split_once("REPORT ").map(|(_, r)| r))
        .unwrap_or_else(|| panic!("no report from child: {stdout}\n{stderr}"))
        .to_owned();
    (report, stderr)
}

#[test]
#[ignore = "runs only as the child of the policy tests"]
fn child_report() {
    assert_eq!(
        std::env::var(CHILD).as_deref(),
        Ok("1"),
        "run by the policy tests"
    );
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .init();
    assert!(mptcp_net::support().unwrap().is_available(), "needs MPTCP");
    // Several objects, to show the variable is read (and warned about) once.
    let listen = ListenConfig::new();
    let dial = Dialer::new();
    let _more = (
        ListenConfig::new().multipath_tcp(),
        Dialer::new().multipath_tcp(),
    );
    let listener = listen.listen("127.0.0.1:0").unwrap();
    let stream = dial.dial(listener.local_addr().unwrap()).unwrap();
    let (accepted, _) = listener.accept().unwrap();
    // Explicit settings win over the environment.
    let mut on = Dialer::new();
    on.set_multipath_tcp(true);
    let mut off = Dialer::new();
    off.set_multipath_tcp(false);
    println!(
        "REPORT listen={} dial={} listener_socket={} dialed_socket={} accepted={} explicit_on={} explicit_off={}",
        listen.multipath_tcp(),
        dial.multipath_tcp(),
        listener.mptcp_status().unwrap().as_str(),
        stream.mptcp_status().unwrap().as_str(),
        accepted.mptcp_status().unwrap().as_str(),
        on.multipath_tcp(),
        off.multipath_tcp(),
    );
}

fn expect(value: Option<&str>, listen: bool, dial: bool) {
    let (report, stderr) = child(value);
    let l = if listen { "active" } else { "plain_tcp" };
    // What the dialed socket reports depends on both ends.
    let d = match (listen, dial) {
        (true, true) => "active",
        (false, true) => "fell_back",
        (_, false) => "plain_tcp",
    };
    let a = if listen && dial {
        "active"
    } else {
        "plain_tcp"
    };
    let want = format!(
        "listen={listen} dial={dial} listener_socket={l} dialed_socket={d} accepted={a} \
         explicit_on=true explicit_off=false"
    );
    assert_eq!(report, want, "MPTCP_NET={value:?}");
    assert!(
        !stderr.contains("ignoring"),
        "no warning for {value:?}: {stderr}"
    );
}

#[test]
fn unset_means_mptcp_for_both() {
    expect(None, true, true);
    expect(Some(""), true, true);
}

#[test]
fn go_digits() {
    expect(Some("0"), false, false);
    expect(Some("1"), true, true);
    expect(Some("2"), true, false);
    expect(Some("3"), false, true);
}

#[test]
fn words() {
    expect(Some("off"), false, false);
    expect(Some("ON"), true, true);
    expect(Some("listen"), true, false);
    expect(Some("dial"), false, true);
}

#[test]
fn bad_value_warns_once_and_is_ignored() {
    let (report, stderr) = child(Some("sometimes"));
    assert!(report.starts_with("listen=true dial=true "), "{report}");
    let warnings = stderr.matches("ignoring MPTCP_NET=\"sometimes\"").count();
    assert_eq!(warnings, 1, "exactly one warning, got: {stderr}");
    assert!(stderr.contains("WARN"), "{stderr}");
}
