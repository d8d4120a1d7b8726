//! The example configuration and the systemd unit under `packaging/` stay in step
//! with the balancer.

use std::path::PathBuf;

fn packaging(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../packaging")
        .join(file)
}

#[test]
fn example_config_parses_and_says_what_it_claims() {
    let c = mptcp_lb::Config::from_file(&packaging("lb.toml")).expect("packaging/lb.toml");
    assert_eq!(c.mode, mptcp_lb::Mode::Route);
    assert_eq!(c.backends.len(), 2);
    assert_eq!(c.backends[1].join_port, Some(20001));
    assert!(c.steering.is_none(), "token steering is commented out");
}

#[test]
fn unit_runs_the_balancer_and_reloads_with_sighup() {
    let unit = std::fs::read_to_string(packaging("mptcp-lb.service")).unwrap();
    for line in [
        "ExecStart=/usr/bin/mptcp lb run --config /etc/mptcp/lb.toml --metrics 127.0.0.1:9851",
        "ExecReload=/bin/kill -HUP $MAINPID",
        "RuntimeDirectory=mptcp-lb",
        "NoNewPrivileges=yes",
        "ProtectSystem=strict",
    ] {
        assert!(unit.lines().any(|l| l == line), "missing {line:?}");
    }
    assert_eq!(mptcp_lb::daemon::DEFAULT_STATE_DIR, "/run/mptcp-lb");
}
