//! The demo, short: every figure present and sane.

use std::time::Duration;

use mptcp_bench::demo::{self, Act, DemoEvent, DemoOptions};

#[test]
fn short_demo_shows_aggregation_and_failover() {
    let opts = DemoOptions {
        paths: 2,
        rate_mbit: 50,
        seconds: 2,
        interval: Duration::from_millis(500),
    };
    let mut intervals = Vec::new();
    let mut cut = None;
    let report = demo::run(&opts, None, &mut |e| match e {
        DemoEvent::Interval { act, interval } => intervals.push((act, interval.subflows.len())),
        DemoEvent::PathCut { path, at_s } => cut = Some((path, at_s)),
        _ => {}
    })
    .unwrap_or_else(|e| panic!("demo failed: {e}"));
    println!(
        "demo: TCP {:.1} Mbit/s, MPTCP {:.1} Mbit/s ({:.2}x, {:.0}% of {} Mbit/s), shares {:?}, \
         failover stall {:.0} ms, verified {}",
        report.tcp.mbit_per_s,
        report.mptcp.mbit_per_s,
        report.mptcp_over_tcp,
        report.mptcp_share_of_links * 100.0,
        report.sum_of_links_mbit,
        report.path_shares,
        report.failover_stall_ms,
        report.data_verified
    );
    assert!(report.ok(), "{:?}", report.problems);
    assert!(report.mptcp_over_tcp > 1.5, "MPTCP above TCP");
    assert!(report.data_verified && report.all_paths_used);
    assert_eq!(cut.map(|c| c.0), Some(0));
    assert!(intervals.iter().any(|(a, n)| *a == Act::Mptcp && *n == 2));
    assert!(intervals.iter().all(|(a, n)| *a != Act::Tcp || *n == 1));
    let json = serde_json::to_value(&report).unwrap();
    for f in [
        "tcp",
        "mptcp",
        "failover",
        "mptcp_over_tcp",
        "mptcp_share_of_links",
        "failover_stall_ms",
        "data_verified",
        "all_paths_used",
        "problems",
    ] {
        assert!(json.get(f).is_some(), "{f} in {json}");
    }
}

#[test]
fn bad_options_are_refused_before_building_anything() {
    let err = demo::run(
        &DemoOptions {
            seconds: 0,
            ..DemoOptions::default()
        },
        None,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains("--seconds 0"), "{err}");
    let err = demo::run(
        &DemoOptions {
            paths: 9,
            ..DemoOptions::default()
        },
        None,
        &mut |_| {},
    )
    .unwrap_err();
    assert!(err.to_string().contains('9'), "{err}");
}
