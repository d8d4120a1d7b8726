//! Bad input is refused before anything runs: one line on stderr naming the bad
//! value, exit status 2, nothing on stdout.

mod common;

use predicates::prelude::*;

use common::{mptcp, mptcp_here, netns};

fn refused(args: &[&str], names: &str) {
    let out = mptcp_here(args).output().expect("run mptcp");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(out.stdout.is_empty(), "{args:?}: {:?}", out.stdout);
    assert_eq!(
        stderr.lines().count(),
        1,
        "{args:?}: one line, got {stderr:?}"
    );
    assert!(stderr.starts_with("mptcp: error: "), "{args:?}: {stderr}");
    assert!(
        stderr.contains(names),
        "{args:?} should name {names:?}: {stderr}"
    );
}

#[test]
fn bad_values_name_themselves() {
    refused(&["endpoint", "add", "300.1.1.1"], "'300.1.1.1'");
    refused(&["endpoint", "add", "198.18.0.1", "--id", "0"], "'0'");
    refused(&["endpoint", "add", "198.18.0.1", "--id", "256"], "'256'");
    refused(&["endpoint", "add", "198.18.0.1", "--port", "0"], "'0'");
    refused(&["endpoint", "add", "198.18.0.1", "--sigal"], "'--sigal'");
    refused(&["endpoint", "del", "--id", "x"], "'x'");
    refused(
        &["endpoint", "set", "--id", "1", "--backup", "--no-backup"],
        "--no-backup",
    );
    refused(&["limits", "set", "--subflows", "9"], "'9'");
    refused(&["limits", "set", "--add-addr-accepted", "-1"], "-1");
    refused(&["monitor", "--count", "0"], "'0'");
    refused(&["monitor", "--timeout", "soon"], "'soon'");
    refused(&["doctor", "--target", "198.18.0.2"], "'198.18.0.2'");
    refused(
        &["doctor", "--target", "198.18.0.2:99999"],
        "'198.18.0.2:99999'",
    );
    refused(&["completions", "tcsh"], "'tcsh'");
    refused(&["--netns", "../etc", "limits", "show"], "'../etc'");
    refused(&["frobnicate"], "'frobnicate'");
    refused(&["limits", "set"], "--subflows");
    refused(
        &[
            "--json",
            "--netns",
            "mptcp-cli-no-such-ns",
            "limits",
            "show",
        ],
        "mptcp-cli-no-such-ns",
    );
}

#[test]
fn help_and_version_succeed() {
    mptcp_here(&["--help"]).assert().success().stdout(
        predicates::str::contains("Examples:").and(predicates::str::contains("Exit status:")),
    );
    for sub in [
        "doctor",
        "endpoint",
        "limits",
        "monitor",
        "conns",
        "completions",
        "lb",
    ] {
        mptcp_here(&[sub, "--help"])
            .assert()
            .success()
            .stdout(predicates::str::contains("Examples:"));
    }
    // The version, the commit it was built from, the compiler and the target.
    let out = mptcp_here(&["--version"]).output().unwrap();
    assert!(out.status.success());
    let line = String::from_utf8_lossy(&out.stdout);
    assert!(
        line.starts_with(&format!("mptcp {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    assert!(
        line.contains(", rustc 1.") && line.contains("linux"),
        "{line}"
    );
    // The cargo features built in.
    assert!(line.contains("; features: embed-preload)"), "{line}");
    // The doctor says the same first, for bug reports, then which preload
    // library `mptcp run` would load.
    let doctor = mptcp_here(&["doctor"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&doctor.stdout);
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some(line.trim_end()));
    let preload = lines.next().unwrap_or_default();
    assert!(preload.starts_with("preload library: "), "{stdout}");
}

#[test]
fn completions_for_every_shell() {
    for shell in ["bash", "zsh", "fish", "elvish", "powershell"] {
        let out = mptcp_here(&["completions", shell]).output().unwrap();
        assert!(out.status.success(), "{shell}");
        let script = String::from_utf8_lossy(&out.stdout);
        assert!(
            script.contains("endpoint") && script.contains("netns"),
            "{shell}: {script}"
        );
    }
}

#[test]
fn without_cap_net_admin_writes_say_so() {
    // A namespace of our own, entered as root, then the capability dropped in the
    // child: setpriv is util-linux.
    let ns = netns("cli-nocap");
    let out = std::process::Command::new("setpriv")
        .args(["--inh-caps=-all", "--bounding-set=-net_admin", "--"])
        .arg(env!("CARGO_BIN_EXE_mptcp"))
        .args(["--netns", ns.name(), "limits", "set", "--subflows", "3"])
        .output()
        .unwrap_or_else(|e| panic!("this test needs setpriv (util-linux): {e}"));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("needs CAP_NET_ADMIN"), "{stderr}");
    // Nor can it subscribe to events.
    let out = std::process::Command::new("setpriv")
        .args(["--inh-caps=-all", "--bounding-set=-net_admin", "--"])
        .arg(env!("CARGO_BIN_EXE_mptcp"))
        .args(["--netns", ns.name(), "monitor", "--timeout", "1"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("subscribe to events") && stderr.contains("needs CAP_NET_ADMIN"),
        "{stderr}"
    );
    // Reading needs no capability.
    let _ = mptcp(ns.name(), &["limits", "show"]).assert().success();
}
