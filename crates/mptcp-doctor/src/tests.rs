//! The checks judged on recorded facts: no kernel needed.

use mptcp_net::{MptcpStatus, Support, Unavailable};
use mptcp_netlink::codec::AddressAttrs;
use mptcp_netlink::{Counters, Endpoint, EndpointFlags, Event, EventKind, Limits};

use crate::*;

fn endpoint(id: u8, ip: &str, flags: EndpointFlags) -> Endpoint {
    let mut attrs = AddressAttrs::from_ip(ip.parse().unwrap());
    attrs.id = Some(id);
    attrs.flags = Some(flags.bits());
    Endpoint::try_from(&attrs).unwrap()
}

fn addr(interface: &str, ip: &str) -> HostAddr {
    HostAddr {
        interface: interface.into(),
        ip: ip.parse().unwrap(),
        up: true,
        loopback: interface == "lo",
    }
}

/// A healthy two-interface client with one subflow endpoint.
fn healthy() -> Facts {
    let sysctls = [
        ("enabled", "1"),
        ("path_manager", "kernel"),
        ("scheduler", "default"),
        ("available_schedulers", "default"),
        ("checksum_enabled", "0"),
        ("blackhole_timeout", "3600"),
    ];
    Facts {
        support: Ok(Support::Available),
        sysctls: Ok(sysctls
            .iter()
            .map(|(n, v)| (n.to_string(), v.to_string()))
            .collect()),
        limits: Ok(Limits {
            subflows: 2,
            add_addr_accepted: 0,
        }),
        endpoints: Ok(vec![endpoint(1, "198.18.1.1", EndpointFlags::SUBFLOW)]),
        addresses: Ok(vec![
            addr("lo", "127.0.0.1"),
            addr("lo", "::1"),
            addr("eth0", "198.18.0.1"),
            addr("eth0", "fe80::1"),
            addr("eth1", "198.18.1.1"),
        ]),
        counters: Ok(Counters::parse(
            "MPTcpExt: MPCapableFallbackSYNACK Blackhole\nMPTcpExt: 0 0\n",
        )
        .unwrap()),
    }
}

fn status_of(facts: &Facts, id: &str) -> Status {
    checks(facts)
        .into_iter()
        .find(|c| c.id == id)
        .unwrap_or_else(|| panic!("no {id} line"))
        .status
}

#[test]
fn a_healthy_host_is_all_ok() {
    let lines = checks(&healthy());
    assert!(lines.iter().all(|c| c.status == Status::Ok), "{lines:#?}");
    assert_eq!(Verdict::of(&lines), Verdict::Healthy);
}

#[test]
fn a_subflow_laminar_endpoint_warns_with_a_fix() {
    let mut f = healthy();
    f.endpoints = Ok(vec![
        endpoint(1, "198.18.0.1", EndpointFlags::SUBFLOW),
        endpoint(
            2,
            "198.18.1.1",
            EndpointFlags::SUBFLOW | EndpointFlags::LAMINAR,
        ),
    ]);
    let line = checks(&f)
        .into_iter()
        .find(|c| c.id == "endpoints")
        .unwrap();
    assert_eq!(line.status, Status::Warn, "{line:?}");
    assert!(line.detail.contains("198.18.1.1"), "{line:?}");
    assert!(line.detail.contains("local_addr_max"), "{line:?}");
    let fix = line.fix.as_deref().unwrap();
    assert!(
        fix.contains("mptcp endpoint del --id 2; mptcp endpoint add 198.18.1.1 --id 2 --subflow"),
        "{fix}"
    );
    // `laminar` alone (no `subflow`) is not counted that way.
    f.endpoints = Ok(vec![endpoint(2, "198.18.1.1", EndpointFlags::LAMINAR)]);
    assert_eq!(status_of(&f, "endpoints"), Status::Ok);
}

#[test]
fn two_interfaces_without_endpoints_warn_with_a_fix() {
    let mut f = healthy();
    f.endpoints = Ok(vec![]);
    let line = checks(&f)
        .into_iter()
        .find(|c| c.id == "endpoints")
        .unwrap();
    assert_eq!(line.status, Status::Warn);
    assert!(line.detail.contains("eth1 198.18.1.1"), "{}", line.detail);
    assert!(line
        .fix
        .unwrap()
        .contains("mptcp endpoint add 198.18.1.1 --dev eth1 --subflow"));
    // One interface with two addresses is one path: nothing to warn about.
    f.addresses = Ok(vec![
        addr("eth0", "198.18.0.1"),
        addr("eth0", "2001:db8::1"),
    ]);
    assert_eq!(status_of(&f, "endpoints"), Status::Ok);
    // A down interface does not count.
    f.addresses = Ok(vec![
        addr("eth0", "198.18.0.1"),
        HostAddr {
            up: false,
            ..addr("eth1", "198.18.1.1")
        },
    ]);
    assert_eq!(status_of(&f, "endpoints"), Status::Ok);
}

#[test]
fn a_stale_endpoint_warns() {
    let mut f = healthy();
    f.endpoints = Ok(vec![endpoint(4, "198.18.9.9", EndpointFlags::SUBFLOW)]);
    let line = checks(&f)
        .into_iter()
        .find(|c| c.id == "endpoints")
        .unwrap();
    assert_eq!(line.status, Status::Warn);
    assert!(line.fix.unwrap().contains("--id 4"));
}

#[test]
fn limits_of_zero_and_too_many_endpoints_warn() {
    let mut f = healthy();
    f.limits = Ok(Limits {
        subflows: 0,
        add_addr_accepted: 0,
    });
    let line = checks(&f).into_iter().find(|c| c.id == "limits").unwrap();
    assert_eq!(line.status, Status::Warn);
    assert!(line.detail.contains("no extra subflows will ever be made"));
    f.limits = Ok(Limits {
        subflows: 1,
        add_addr_accepted: 0,
    });
    f.endpoints = Ok(vec![
        endpoint(1, "198.18.1.1", EndpointFlags::SUBFLOW),
        endpoint(2, "198.18.0.1", EndpointFlags::SUBFLOW),
    ]);
    assert_eq!(status_of(&f, "limits"), Status::Warn);
}

#[test]
fn disabled_mptcp_fails_with_the_fix() {
    let mut f = healthy();
    f.support = Ok(Support::Unavailable(Unavailable::DisabledBySysctl));
    f.sysctls = Ok(vec![("enabled".into(), "0".into())]);
    let lines = checks(&f);
    let socket = lines.iter().find(|c| c.id == "mptcp_socket").unwrap();
    assert_eq!(socket.status, Status::Fail);
    assert!(!socket.detail.contains("sysctl -w"), "{}", socket.detail);
    assert!(socket.fix.as_ref().unwrap().contains("net.mptcp.enabled=1"));
    let enabled = lines.iter().find(|c| c.id == "enabled").unwrap();
    assert_eq!(enabled.status, Status::Fail);
    assert_eq!(Verdict::of(&lines), Verdict::Problems);
}

#[test]
fn counters_and_path_manager() {
    let mut f = healthy();
    f.counters = Ok(Counters::parse(
        "MPTcpExt: MPCapableFallbackSYNACK Blackhole MPCapableSYNTXDisabled\nMPTcpExt: 3 1 2\n",
    )
    .unwrap());
    assert_eq!(status_of(&f, "fallback"), Status::Warn);
    let fallback = checks(&f).into_iter().find(|c| c.id == "fallback").unwrap();
    assert!(
        fallback
            .detail
            .contains("MPCapableFallbackSYNACK 3: Client-side handshakes that fell back"),
        "the meaning comes from the counter table: {}",
        fallback.detail
    );
    assert_eq!(status_of(&f, "blackhole"), Status::Warn);
    let mut f = healthy();
    f.sysctls = Ok(vec![
        ("enabled".into(), "1".into()),
        ("pm_type".into(), "1".into()),
    ]);
    assert_eq!(status_of(&f, "path_manager"), Status::Warn);
    // The userspace PM does not use endpoints: no endpoint warning then.
    f.endpoints = Ok(vec![]);
    assert_eq!(status_of(&f, "endpoints"), Status::Ok);
}

#[test]
fn unreadable_facts_are_unknown_and_exit_2() {
    let mut f = healthy();
    f.limits = Err("boom".into());
    f.endpoints = Err("boom".into());
    let lines = checks(&f);
    assert_eq!(
        lines.iter().find(|c| c.id == "limits").unwrap().status,
        Status::Unknown
    );
    assert_eq!(Verdict::of(&lines), Verdict::Incomplete);
    assert_eq!(Verdict::Incomplete.exit_code(), 2);
}

#[test]
fn target_lines() {
    let f = healthy();
    let fell_back = TargetOutcome::Connected(Dialed {
        status: Some(MptcpStatus::FellBack),
        subflows: 1,
        synack_without_mptcp: true,
        ..Dialed::default()
    });
    let lines = target_checks(&f, "h:1", &fell_back);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0].status, Status::Fail);
    assert!(lines[0].detail.contains("without MP_CAPABLE"));
    assert!(lines[0]
        .fix
        .as_ref()
        .unwrap()
        .contains("Go server before 1.24"));

    let mut announce = Event::new(EventKind::Announced);
    announce.remote = Some("198.18.1.2:0".parse().unwrap());
    announce.remote_id = Some(1);
    let active = TargetOutcome::Connected(Dialed {
        status: Some(MptcpStatus::Active),
        subflows: 1,
        announced: Some(vec![announce]),
        ..Dialed::default()
    });
    let lines = target_checks(&f, "h:1", &active);
    let by = |id: &str| lines.iter().find(|c| c.id == id).unwrap();
    assert_eq!(by("target_connect").status, Status::Ok);
    assert_eq!(by("target_subflows").status, Status::Warn);
    let announced = by("target_announced");
    assert_eq!(announced.status, Status::Warn, "{announced:?}");
    assert!(announced.detail.contains("198.18.1.2 (id 1)"));
    assert!(announced
        .fix
        .as_ref()
        .unwrap()
        .contains("--add-addr-accepted 1"));

    let refused = TargetOutcome::Failed("refused".into());
    assert_eq!(
        target_checks(&f, "h:1", &refused)[0].status,
        Status::Unknown
    );
}

#[test]
fn json_leaves_out_what_has_no_value() {
    let report = Report::new(checks(&healthy()), None);
    let text = serde_json::to_string(&report).unwrap();
    assert!(!text.contains("null"), "{text}");
    assert!(!text.contains("\"target\""), "{text}");
    assert!(!text.contains("\"fix\""), "{text}");

    let outcome = TargetOutcome::Failed("refused".into());
    let target = TargetJson::new("h:1", &outcome);
    let text = serde_json::to_string(&target).unwrap();
    assert_eq!(
        text, r#"{"target":"h:1","events":false,"error":"refused"}"#,
        "only what is known"
    );
}

#[test]
fn host_addresses_come_from_the_rtnetlink_view() {
    use mptcp_pm::host::{AddrFlags, Address, Link, OperState};
    let mut host = mptcp_pm::HostState::default();
    for (index, name, up, loopback) in [(1, "lo", true, true), (2, "eth1", false, false)] {
        host.links.insert(
            index,
            Link {
                index,
                name: name.into(),
                admin_up: up,
                lower_up: up,
                oper: OperState::Unknown,
                loopback,
            },
        );
    }
    for (ifindex, ip) in [(1, "127.0.0.1"), (2, "198.18.1.1"), (9, "198.18.9.9")] {
        host.addresses.push(Address {
            ifindex,
            address: ip.parse().unwrap(),
            prefix_len: 24,
            flags: AddrFlags::default(),
        });
    }
    let addrs = HostAddr::of_host(&host);
    assert_eq!(addrs.len(), 2, "no interface 9: {addrs:?}");
    assert_eq!(addrs[0], addr("lo", "127.0.0.1"));
    assert_eq!(
        addrs[1],
        HostAddr {
            up: false,
            ..addr("eth1", "198.18.1.1")
        }
    );
}

#[test]
fn joins_reset_behind_a_balancer_are_recognised_with_the_fix() {
    let mut f = healthy();
    assert_eq!(status_of(&f, "balancer_joins"), Status::Ok);
    f.counters = Ok(Counters::parse(
        "MPTcpExt: MPJoinSynRx MPJoinNoTokenFound MismatchPortSynRx\nMPTcpExt: 20 11 0\n",
    )
    .unwrap());
    let c = checks(&f)
        .into_iter()
        .find(|c| c.id == "balancer_joins")
        .unwrap();
    assert_eq!(c.status, Status::Warn, "{c:?}");
    assert!(
        c.detail.contains("11 join(s)") && c.detail.contains("no C flag"),
        "{}",
        c.detail
    );
    assert!(c.fix.as_deref().unwrap().contains("--join-port"));
    // The recipe applied: the C flag and an announced join port.
    let mut sysctls = f.sysctls.clone().unwrap();
    sysctls.push(("allow_join_initial_addr_port".into(), "0".into()));
    f.sysctls = Ok(sysctls);
    let mut attrs = AddressAttrs::from_ip("198.18.200.1".parse().unwrap());
    attrs.id = Some(2);
    attrs.flags = Some(EndpointFlags::SIGNAL.bits());
    attrs.port = Some(20001);
    f.endpoints = Ok(vec![Endpoint::try_from(&attrs).unwrap()]);
    assert_eq!(status_of(&f, "balancer_joins"), Status::Ok);
}
