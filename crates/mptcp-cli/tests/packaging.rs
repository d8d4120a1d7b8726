//! What the Debian package ships from `packaging/` and the binary stays in step:
//! the proxy template's example parses, every unit is sandboxed and does not
//! restart on bad input, and `mptcp man` writes a page per subcommand. The
//! package itself is built and checked by `scripts/package` and
//! `scripts/check-package` (run by `scripts/test`).

mod common;

use std::path::PathBuf;

fn packaging(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../packaging")
        .join(file)
}

#[test]
fn the_proxy_example_parses() {
    let text = std::fs::read_to_string(packaging("proxy.toml")).unwrap();
    let config = mptcp_proxy::Config::from_toml(&text).expect("packaging/proxy.toml");
    assert_eq!(config.routes.len(), 1);
}

#[test]
fn every_unit_is_sandboxed_and_stops_on_bad_input() {
    for unit in [
        "mptcp-pm.service",
        "mptcp-exporter.service",
        "mptcp-proxy@.service",
        "mptcp-lb.service",
    ] {
        let text = std::fs::read_to_string(packaging(unit)).unwrap();
        let has = |line: &str| text.lines().any(|l| l == line);
        let starts = |prefix: &str| text.lines().any(|l| l.starts_with(prefix));
        for line in [
            "RestartPreventExitStatus=2",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
        ] {
            assert!(has(line), "{unit}: missing {line}");
        }
        for prefix in [
            "ExecStart=/usr/bin/mptcp ",
            "CapabilityBoundingSet=",
            "RuntimeDirectory=",
        ] {
            assert!(starts(prefix), "{unit}: no {prefix} line");
        }
    }
    let proxy = std::fs::read_to_string(packaging("mptcp-proxy@.service")).unwrap();
    assert!(
        proxy.contains("--config /etc/mptcp/proxy/%i.toml"),
        "{proxy}"
    );
}

#[test]
fn mptcp_man_writes_a_page_per_subcommand() {
    let dir =
        PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join(format!("man-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let out = common::mptcp_here(&["man", "--out", dir.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    for page in [
        "mptcp.1",
        "mptcp-run.1",
        "mptcp-endpoint-add.1",
        "mptcp-pm-run.1",
        "mptcp-proxy.1",
    ] {
        let text =
            std::fs::read_to_string(dir.join(page)).unwrap_or_else(|e| panic!("{page}: {e}"));
        assert!(text.contains(".SH NAME"), "{page}");
    }
    // The hidden command has no page of its own.
    assert!(!dir.join("mptcp-man.1").exists());
    let _ = std::fs::remove_dir_all(&dir);
    // No --out: a usage error, status 2.
    let out = common::mptcp_here(&["man"]).output().unwrap();
    assert_eq!(out.status.code(), Some(2));
}
