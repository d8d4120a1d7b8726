//! The example configuration and the systemd unit under `packaging/` stay in step
//! with the daemon.

use std::path::PathBuf;

fn packaging(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../packaging")
        .join(file)
}

#[test]
fn example_config_parses_and_says_what_it_claims() {
    let c = mptcp_pm::Config::from_file(&packaging("pm.toml")).expect("packaging/pm.toml");
    assert_eq!(c.role, mptcp_pm::Role::Client);
    let wwan = c.rule_for("wwan0").expect("a wwan rule");
    assert_eq!(
        wwan.flags,
        Some(mptcp_netlink::EndpointFlags::SUBFLOW | mptcp_netlink::EndpointFlags::BACKUP)
    );
    assert_eq!(c.rule_for("wlan0").unwrap().priority, 5);
    assert!(c.limits.manage);
}

#[test]
fn unit_runs_the_daemon_as_a_notify_service() {
    let unit = std::fs::read_to_string(packaging("mptcp-pm.service")).unwrap();
    for line in [
        "Type=notify",
        "ExecStart=/usr/bin/mptcp pm run --config /etc/mptcp/pm.toml",
        "RestartPreventExitStatus=2",
        "RuntimeDirectory=mptcp-pm",
        "Conflicts=mptcp.service",
    ] {
        assert!(unit.lines().any(|l| l == line), "missing {line:?}");
    }
    // The runtime directory is the daemon's default state directory.
    assert_eq!(mptcp_pm::state::DEFAULT_STATE_DIR, "/run/mptcp-pm");
}

#[test]
fn example_server_table_parses_when_uncommented() {
    let text = std::fs::read_to_string(packaging("pm.toml")).unwrap();
    let start = text.find("# [server]").expect("a [server] example");
    let server: String = text[start..]
        .lines()
        .take_while(|l| l.starts_with('#'))
        .map(|l| l.trim_start_matches("# ").split("  #").next().unwrap_or(""))
        .map(|l| format!("{}\n", l.trim_end()))
        .collect();
    let c = mptcp_pm::Config::from_toml(&server, "pm.toml [server]").expect(&server);
    assert_eq!(c.role, mptcp_pm::Role::Server);
    assert_eq!(c.server.join_port, Some(20001));
    assert!(c.server.lb_registry.is_some());
}
