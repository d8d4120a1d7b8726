//! The plan on paper, and parsing `ip` output.

use std::net::{Ipv4Addr, Ipv6Addr};

use super::plan::*;
use super::TestNet;
use crate::Error;

fn line(cmd: &(Role, Vec<String>)) -> String {
    format!("{:?}: {}", cmd.0, cmd.1.join(" "))
}

#[test]
fn address_plan_without_router() {
    let links = path_links(3, false);
    assert_eq!(links.len(), 1);
    let [c, s] = &links[0].ends;
    assert_eq!((c.dev.as_str(), c.v4), ("p3", Ipv4Addr::new(198, 18, 3, 1)));
    assert_eq!((s.dev.as_str(), s.v4), ("p3", Ipv4Addr::new(198, 18, 3, 2)));
    assert_eq!(c.v6, "2001:db8:3::1".parse::<Ipv6Addr>().unwrap());
    assert_eq!(s.v6, "2001:db8:3::2".parse::<Ipv6Addr>().unwrap());
    assert_eq!(c.subnet(Family::V4), "198.18.3.0/24");
    assert_eq!(c.subnet(Family::V6), "2001:db8:3::/64");
    assert!(links[0].shaped);
}

#[test]
fn address_plan_with_router() {
    let ends = path_ends(7, true);
    let (rc, rs) = ends.router.unwrap();
    assert_eq!(ends.client.v4, Ipv4Addr::new(198, 18, 7, 1));
    assert_eq!(
        (rc.dev.as_str(), rc.v4),
        ("c7", Ipv4Addr::new(198, 18, 7, 254))
    );
    assert_eq!(
        (rs.dev.as_str(), rs.v4),
        ("s7", Ipv4Addr::new(198, 19, 7, 254))
    );
    assert_eq!(ends.server.v4, Ipv4Addr::new(198, 19, 7, 2));
    assert_eq!(rc.v6, "2001:db8:7::fe".parse::<Ipv6Addr>().unwrap());
    assert_eq!(rs.v6, "2001:db8:17::fe".parse::<Ipv6Addr>().unwrap());
    assert_eq!(
        ends.server.v6,
        "2001:db8:17::2".parse::<Ipv6Addr>().unwrap()
    );
    let shaped: Vec<bool> = path_links(7, true).iter().map(|l| l.shaped).collect();
    assert_eq!(
        shaped,
        [false, true],
        "only the router-server link is shaped"
    );
}

#[test]
fn routing_without_router() {
    let rules: Vec<String> = rule_commands(1, false, Family::V4)
        .iter()
        .map(line)
        .collect();
    assert_eq!(
        rules,
        ["Client: -4 rule add from 198.18.1.1 table 101 priority 1001"]
    );
    let routes: Vec<String> = route_commands(1, false, Family::V6)
        .iter()
        .map(line)
        .collect();
    assert_eq!(
        routes,
        ["Client: -6 route replace default via 2001:db8:1::2 dev p1 table 101"]
    );
}

#[test]
fn routing_with_router() {
    let rules: Vec<String> = rule_commands(0, true, Family::V4)
        .iter()
        .map(line)
        .collect();
    assert_eq!(
        rules,
        [
            "Client: -4 rule add from 198.18.0.1 table 100 priority 1000",
            "Router: -4 rule add iif c0 table 100 priority 1000",
        ]
    );
    let routes: Vec<String> = route_commands(2, true, Family::V4)
        .iter()
        .map(line)
        .collect();
    assert_eq!(
        routes,
        [
            "Client: -4 route replace default via 198.18.2.254 dev p2 table 102",
            "Client: -4 route replace 198.19.2.0/24 via 198.18.2.254 dev p2",
            "Server: -4 route replace 198.18.2.0/24 via 198.19.2.254 dev p2",
            "Router: -4 route replace default via 198.19.2.2 dev s2 table 102",
        ]
    );
}

#[test]
fn operational_state_from_ip_link() {
    let text = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue state UNKNOWN mode DEFAULT\n\
                2: p0@if400: <BROADCAST,UP,LOWER_UP> mtu 1500 qdisc tbf state UP mode DEFAULT\n\
                3: p1@if401: <NO-CARRIER,UP> mtu 1500 qdisc noqueue state DOWN mode DEFAULT\n";
    assert!(link_is_up(text, "p0"));
    assert!(!link_is_up(text, "p1"));
    assert!(!link_is_up(text, "p"));
    assert!(!link_is_up(text, "lo"));
}

#[test]
fn burst_fits_a_gso_packet() {
    assert_eq!(tbf_burst(1), TBF_MIN_BURST);
    assert_eq!(tbf_burst(20), TBF_MIN_BURST);
    assert_eq!(tbf_burst(10_000), 5_000_000);
    assert!(tbf_burst(u32::MAX) > TBF_MIN_BURST);
}

#[test]
fn builder_validates_before_touching_anything() {
    let bad = [
        TestNet::builder().paths(0),
        TestNet::builder().paths(9),
        TestNet::builder().ipv4(false),
        TestNet::builder().paths(2).path_rate_mbit(2, 10),
        TestNet::builder().rate_mbit(0),
        TestNet::builder().backup_path(0),
        TestNet::builder().paths(2).backup_path(2),
        TestNet::builder().paths(6).ipv6(true),
        TestNet::builder().endpoints(Endpoints::None).backup_path(1),
    ];
    for builder in bad {
        let result = builder.clone().build();
        assert!(
            matches!(result, Err(Error::InvalidConfig(_))),
            "{builder:?} gave {result:?}"
        );
    }
    let rates = TestNet::builder()
        .paths(3)
        .rate_mbit(10)
        .path_rate_mbit(1, 30)
        .validate()
        .unwrap();
    assert_eq!(rates, [Some(10), Some(30), Some(10)]);
    assert_eq!(
        TestNet::builder().paths(1).validate().unwrap(),
        [None],
        "unshaped by default"
    );
}
