//! `TestNet` on the real kernel: needs root, iproute2 and iptables, and fails (never
//! skips) without them.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::{assert_reachable, build, connect_from, listed_namespaces, listen, measure_mbit};
use mptcp_testnet::{Endpoints, Error, Host, TestNet};

const PORT: u16 = 5201;

fn ip_json(host: &Host, what: &str) -> String {
    let out = host
        .exec("ip", ["-j", "mptcp", what, "show"])
        .unwrap_or_else(|e| panic!("ip mptcp {what} show: {e}"));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn each_path_reaches_the_server_from_its_own_address() {
    let net = build(TestNet::builder().paths(2));
    for i in 0..2 {
        let server = net.server().addr(i).unwrap();
        let listener = listen(net.server(), SocketAddr::new(server, PORT));
        assert_reachable(
            net.client(),
            net.client().addr(i).unwrap(),
            server,
            &listener,
        );
    }
    // A client address reaches the other path's server address too (that is what an
    // MPTCP subflow endpoint does), through its own path.
    let before = net
        .client()
        .exec("ip", ["-s", "-j", "link", "show", "p1"])
        .unwrap();
    let server = net.server().addr(0).unwrap();
    let listener = listen(net.server(), SocketAddr::new(server, PORT));
    assert_reachable(
        net.client(),
        net.client().addr(1).unwrap(),
        server,
        &listener,
    );
    let after = net
        .client()
        .exec("ip", ["-s", "-j", "link", "show", "p1"])
        .unwrap();
    assert_ne!(before.stdout, after.stdout, "the packets left through p1");
    assert!(net.client().addr(2).is_none() && net.client().addr6(0).is_none());
}

#[test]
fn path_down_makes_the_path_unreachable_and_path_up_restores_it() {
    let net = build(TestNet::builder().paths(2));
    let listener = listen(
        net.server(),
        SocketAddr::new("0.0.0.0".parse().unwrap(), PORT),
    );
    let to = |i| net.server().addr(i).unwrap();
    let from = |i| net.client().addr(i).unwrap();

    net.path_down(1).expect("path down");
    let started = Instant::now();
    let err = connect_from(
        net.client(),
        from(1),
        SocketAddr::new(to(1), PORT),
        Duration::from_secs(2),
    )
    .expect_err("path 1 is down");
    println!(
        "connect over a down path failed after {:?}: {err}",
        started.elapsed()
    );
    assert_reachable(net.client(), from(0), to(0), &listener);

    net.path_up(1).expect("path up");
    assert_reachable(net.client(), from(1), to(1), &listener);
    assert!(matches!(net.path_down(2), Err(Error::InvalidConfig(_))));
}

#[test]
fn rate_limit_is_in_effect() {
    let net = build(
        TestNet::builder()
            .paths(2)
            .rate_mbit(20)
            .path_rate_mbit(1, 5),
    );
    assert_eq!(net.sum_rate_mbit(), Some(25));
    assert_eq!(net.path_rate_mbit(1), Some(5));
    // Both paths at once, each measured for 2.5 s: each gets its own rate.
    let measured: Vec<f64> = std::thread::scope(|s| {
        let runs: Vec<_> = (0..2)
            .map(|i| {
                let net = &net;
                s.spawn(move || {
                    let server = net.server().addr(i).unwrap();
                    let listener = listen(net.server(), SocketAddr::new(server, 0));
                    let local = net.client().addr(i).unwrap();
                    measure_mbit(net.client(), local, &listener, Duration::from_millis(2500))
                })
            })
            .collect();
        runs.into_iter()
            .map(|r| r.join().expect("measurement"))
            .collect()
    });
    for (i, mbit) in measured.into_iter().enumerate() {
        let rate = net.path_rate_mbit(i).unwrap();
        let ratio = mbit / f64::from(rate);
        println!("path {i} shaped to {rate} Mbit/s carried {mbit:.1} Mbit/s (ratio {ratio:.2})");
        assert!((0.5..=1.2).contains(&ratio), "path {i}: {mbit:.1} Mbit/s");
    }
    let qdisc = net
        .server()
        .exec("tc", ["qdisc", "show", "dev", "p0"])
        .unwrap();
    let qdisc = String::from_utf8_lossy(&qdisc.stdout);
    println!("server p0: {qdisc}");
    assert!(
        qdisc.contains("tbf") && qdisc.contains("rate 20Mbit"),
        "{qdisc}"
    );
}

#[test]
fn router_variant_forwards_between_client_and_server() {
    let net = build(TestNet::builder().paths(2).router(true).rate_mbit(100));
    let router = net.router().expect("a router");
    assert_eq!(router.addr(1), Some("198.18.1.254".parse().unwrap()));
    let before = router.counters().unwrap();
    for i in 0..2 {
        let server = net.server().addr(i).unwrap();
        assert_eq!(server, IpAddr::from([198, 19, i as u8, 2]));
        let listener = listen(net.server(), SocketAddr::new(server, PORT));
        assert_reachable(
            net.client(),
            net.client().addr(i).unwrap(),
            server,
            &listener,
        );
    }
    // Cross path: from the client's path-1 address to the server's path-0 address.
    let server = net.server().addr(0).unwrap();
    let listener = listen(net.server(), SocketAddr::new(server, PORT + 1));
    assert_reachable(
        net.client(),
        net.client().addr(1).unwrap(),
        server,
        &listener,
    );
    let forwarded = router
        .counters()
        .unwrap()
        .delta(&before)
        .get("Ip", "ForwDatagrams");
    println!("router forwarded {forwarded:?} datagrams");
    assert!(forwarded.unwrap_or(0) >= 6, "traffic crossed the router");
    let qdisc = router.exec("tc", ["qdisc", "show", "dev", "s1"]).unwrap();
    assert!(String::from_utf8_lossy(&qdisc.stdout).contains("tbf"));
}

#[test]
fn ipv6_paths_are_reachable() {
    let net = build(TestNet::builder().paths(2).ipv4(false).ipv6(true));
    assert!(net.client().addr(0).is_none());
    // A stalled neighbour discovery (link not yet operational) would cost a full
    // 1 s retransmission; a ready path connects in well under a millisecond.
    let connect = |i| {
        let server = net.server().addr6(i).unwrap();
        let listener = listen(net.server(), SocketAddr::new(server, 0));
        let started = Instant::now();
        assert_reachable(
            net.client(),
            net.client().addr6(i).unwrap(),
            server,
            &listener,
        );
        let took = started.elapsed();
        println!("IPv6 path {i}: first connection in {took:?}");
        assert!(
            took < Duration::from_millis(900),
            "path {i} stalled for {took:?}"
        );
    };
    connect(0);
    connect(1);
    net.path_down(1).unwrap();
    net.path_up(1).unwrap();
    connect(1);
}

#[test]
fn largest_network_builds_and_every_path_works() {
    let started = Instant::now();
    let net = build(
        TestNet::builder()
            .paths(8)
            .router(true)
            .ipv6(true)
            .rate_mbit(50)
            .endpoints(Endpoints::None),
    );
    println!(
        "8 paths, router, IPv4+IPv6 built in {:?}\n{net}",
        started.elapsed()
    );
    let pairs = [
        (net.client().addr(7), net.server().addr(7)),
        (net.client().addr6(7), net.server().addr6(7)),
    ];
    for (client, server) in pairs {
        let (client, server) = (client.unwrap(), server.unwrap());
        let listener = listen(net.server(), SocketAddr::new(server, PORT));
        assert_reachable(net.client(), client, server, &listener);
    }
    drop(net);
    // The kernel keeps 8 endpoints per namespace: 5 dual-stack paths is the most.
    let net = build(
        TestNet::builder()
            .paths(5)
            .ipv6(true)
            .endpoints(Endpoints::ServerSignal),
    );
    assert_eq!(
        ip_json(net.server(), "endpoint")
            .matches("\"signal\":true")
            .count(),
        8
    );
}

#[test]
fn endpoints_and_limits_are_on_the_right_side() {
    let limits = |host: &Host| {
        let text = ip_json(host, "limits");
        let words: Vec<&str> = text.split_whitespace().collect();
        // iproute2 6.1 prints limits as text even with -j.
        assert!(
            words
                .windows(2)
                .any(|w| w == ["subflows", "8"] || w == ["\"subflows\":8"]),
            "{text}"
        );
        assert!(text.contains("add_addr_accepted"), "{text}");
        assert!(text.contains('8'), "{text}");
    };

    let net = build(TestNet::builder().paths(3).backup_path(2));
    let client = ip_json(net.client(), "endpoint");
    println!("client endpoints: {client}");
    assert!(client.contains(r#""address":"198.18.1.1","id":1,"subflow":true,"dev":"p1""#));
    assert!(
        client.contains(r#""address":"198.18.2.1","id":2,"subflow":true,"backup":true,"dev":"p2""#)
    );
    assert!(!client.contains("198.18.0.1"), "path 0 has no endpoint");
    assert_eq!(ip_json(net.server(), "endpoint").trim(), "[]");
    limits(net.client());
    limits(net.server());
    drop(net);

    let net = build(
        TestNet::builder()
            .paths(2)
            .endpoints(Endpoints::ServerSignal),
    );
    let server = ip_json(net.server(), "endpoint");
    println!("server endpoints: {server}");
    assert!(server.contains(r#""address":"198.18.1.2","id":1,"signal":true,"dev":"p1""#));
    assert_eq!(ip_json(net.client(), "endpoint").trim(), "[]");
    limits(net.client());
    limits(net.server());
    assert_eq!(net.client().sysctl("net.mptcp.enabled").unwrap(), "1");
    assert_eq!(
        net.server().sysctl("net.mptcp.path_manager").unwrap(),
        "kernel"
    );
    drop(net);

    let net = build(TestNet::builder().paths(2).endpoints(Endpoints::None));
    assert_eq!(ip_json(net.client(), "endpoint").trim(), "[]");
    assert_eq!(ip_json(net.server(), "endpoint").trim(), "[]");
}

#[test]
fn strip_middlebox_adds_and_removes_its_rule() {
    let rules = |host: &Host, tool: &str| {
        let out = host
            .exec(tool, ["-t", "mangle", "-S", "PREROUTING"])
            .unwrap_or_else(|e| panic!("{tool} -S: {e}"));
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    const RULE: &str = "-A PREROUTING -p tcp -j TCPOPTSTRIP --strip-options 30";

    let net = build(TestNet::builder().paths(1).ipv6(true));
    assert!(!net.strip_mptcp());
    net.set_strip_mptcp(true)
        .expect("iptables installed (apt-get install iptables)");
    net.set_strip_mptcp(true).expect("idempotent");
    assert!(net.strip_mptcp());
    for tool in ["iptables", "ip6tables"] {
        let now = rules(net.server(), tool);
        println!("server {tool}: {now}");
        assert_eq!(now.matches(RULE).count(), 1, "{now}");
        assert!(!rules(net.client(), tool).contains("TCPOPTSTRIP"));
    }
    net.set_strip_mptcp(false).unwrap();
    for tool in ["iptables", "ip6tables"] {
        assert!(!rules(net.server(), tool).contains("TCPOPTSTRIP"));
    }
    drop(net);

    let net = build(TestNet::builder().paths(1).router(true));
    net.set_strip_mptcp(true).unwrap();
    let router = net.router().unwrap();
    assert!(rules(router, "iptables").contains(RULE), "on the router");
    assert!(!rules(net.server(), "iptables").contains("TCPOPTSTRIP"));
}

#[test]
fn dropping_the_network_removes_every_namespace() {
    let net = build(TestNet::builder().paths(2).router(true));
    let names: Vec<String> = [net.client(), net.server(), net.router().unwrap()]
        .iter()
        .map(|h| h.name().to_string())
        .collect();
    let listed = listed_namespaces();
    assert!(names.iter().all(|n| listed.contains(n)));
    drop(net);
    let listed = listed_namespaces();
    for name in &names {
        assert!(!listed.contains(name), "{name} left behind");
    }
}

#[test]
fn invalid_configurations_are_errors() {
    for builder in [
        TestNet::builder().paths(0),
        TestNet::builder().paths(9),
        TestNet::builder().paths(2).backup_path(0),
        TestNet::builder().paths(8).ipv6(true),
    ] {
        match builder.build() {
            Err(Error::InvalidConfig(msg)) => println!("rejected: {msg}"),
            other => panic!("expected InvalidConfig, got {other:?}"),
        }
    }
}
