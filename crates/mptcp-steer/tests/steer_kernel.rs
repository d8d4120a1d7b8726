//! The tc program on a real kernel: client, router and server namespaces with
//! two paths; the program on the router's client-facing interfaces (`c0`,
//! `c1`); a real MPTCP connection whose client opens a second subflow on path
//! 1 (a `subflow` endpoint), an MP_JOIN to the server's path-0 address (the VIP
//! here). An nftables counter on the router's forward hook proves the join SYN
//! carried the mark; the subflow count proves the join succeeded. Without a map
//! entry the join SYN is dropped and counted, and the connection keeps its
//! first subflow and its data. IPv4 and IPv6.

use std::io::{Read, Write};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use mptcp_net::{Dialer, ListenConfig, MptcpExt};
use mptcp_steer::bpf::{SteeringStats, TokenSteering};
use mptcp_testnet::{Host, TestNet};

const MARK: u32 = 0x5e11;
const PORT: u16 = 5201;

fn build(v6: bool) -> TestNet {
    TestNet::builder()
        .paths(2)
        .router(true)
        .ipv4(!v6)
        .ipv6(v6)
        .build()
        .expect("a test network (root, iproute2, MPTCP kernel needed)")
}

fn server_addr(net: &TestNet, v6: bool) -> IpAddr {
    let s = net.server();
    if v6 { s.addr6(0) } else { s.addr(0) }.expect("server path-0 address")
}

/// An nftables table on the router that counts forwarded SYNs (no ACK) with
/// the steering mark.
fn add_mark_counter(router: &Host) {
    let script = format!(
        "table inet steertest {{\n  chain marked {{\n    type filter hook forward priority 0;\n    \
         meta mark {MARK:#x} tcp flags & (syn | ack) == syn counter\n  }}\n}}\n"
    );
    let mut child = router
        .command("nft")
        .args(["-f", "-"])
        .stdin(std::process::Stdio::piped())
        .spawn()
        .expect("nft (apt-get install nftables)");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    assert!(child.wait().unwrap().success(), "nft -f failed: {script}");
}

fn marked_syns(router: &Host) -> u64 {
    let out = router
        .exec("nft", ["list", "chain", "inet", "steertest", "marked"])
        .expect("nft list");
    let text = String::from_utf8_lossy(&out.stdout);
    let after = text
        .split("counter packets ")
        .nth(1)
        .unwrap_or_else(|| panic!("no counter in {text}"));
    after
        .split_whitespace()
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad counter in {text}"))
}

/// Loads and attaches the program inside the router namespace.
fn steer_on_router(net: &TestNet, vip: IpAddr) -> TokenSteering {
    let router = net.router().expect("a router");
    router
        .run(|| {
            let mut steer = TokenSteering::load().expect("load the tc program");
            steer.attach("c0").expect("attach c0");
            steer.attach("c1").expect("attach c1");
            steer.add_vip(vip).expect("add the VIP");
            steer
        })
        .unwrap()
}

fn filters(router: &Host, dev: &str) -> String {
    let out = router
        .exec("tc", ["filter", "show", "dev", dev, "ingress"])
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Connects client -> server (path 0), returns both ends and the listener,
/// which must outlive the test: joins reach the server through it.
fn connect(net: &TestNet, server: SocketAddr) -> (TcpStream, TcpStream, TcpListener) {
    let listener = net
        .server()
        .run(|| ListenConfig::new().listen(server))
        .unwrap()
        .expect("listen");
    let client = net
        .client()
        .run(|| Dialer::new().dial(server))
        .unwrap()
        .expect("connect");
    let (accepted, _) = listener.accept().expect("accept");
    (client, accepted, listener)
}

/// The host's non-zero MPTcpExt counters, for failure messages.
fn mptcp_counters(host: &Host) -> String {
    let out = host.exec("nstat", ["-az"]).expect("nstat");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| {
            l.starts_with("MPTcpExt") && l.split_whitespace().nth(1).is_none_or(|v| v != "0")
        })
        .map(|l| l.split_whitespace().take(2).collect::<Vec<_>>().join("="))
        .collect::<Vec<_>>()
        .join(" ")
}

fn subflows_total(s: &TcpStream) -> u8 {
    s.mptcp_info()
        .expect("MPTCP_INFO")
        .expect("an MPTCP connection")
        .subflows_total
        .expect("a 6.8+ kernel reports subflows_total")
}

/// Data still flows both ways.
fn echo(client: &mut TcpStream, server: &mut TcpStream) {
    let data = vec![0x5a_u8; 256 * 1024];
    std::thread::scope(|s| {
        s.spawn(|| client.write_all(&data).unwrap());
        let mut got = vec![0u8; data.len()];
        server.read_exact(&mut got).unwrap();
        assert_eq!(got, data);
    });
    server.write_all(b"ok").unwrap();
    let mut ok = [0u8; 2];
    client.read_exact(&mut ok).unwrap();
}

/// `late`: insert the token only after the join SYN was sent and dropped,
/// the registry losing the race; the client's SYN retransmit must cover it.
fn steered(v6: bool, late: bool) {
    let net = build(v6);
    let router = net.router().unwrap();
    let vip = server_addr(&net, v6);
    let mut steer = steer_on_router(&net, vip);
    add_mark_counter(router);
    assert!(
        filters(router, "c1").contains("steer"),
        "{}",
        filters(router, "c1")
    );

    let (mut client, mut server, _listener) = connect(&net, SocketAddr::new(vip, PORT));
    let token = server.mptcp_info().unwrap().expect("MPTCP").token;
    // The client's path manager opens the join once the connection is fully
    // established, i.e. when the server's first data or ack arrives (echo),
    // not at the handshake: the backend's `created` event comes earlier.
    if !late {
        steer.insert(token, MARK).unwrap();
        assert_eq!(steer.mark_of(token).unwrap(), Some(MARK));
    }
    let started = Instant::now();
    echo(&mut client, &mut server);
    if late {
        let deadline = Instant::now() + Duration::from_secs(3);
        while steer.stats().unwrap().dropped_unknown == 0 {
            assert!(Instant::now() < deadline, "no join SYN dropped");
            std::thread::sleep(Duration::from_millis(5));
        }
        steer.insert(token, MARK).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(8);
    while subflows_total(&server) < 2 {
        assert!(
            Instant::now() < deadline,
            "the join never succeeded: {:?}, {} marked SYNs; server {:?}; client {:?}",
            steer.stats().unwrap(),
            marked_syns(router),
            mptcp_counters(net.server()),
            mptcp_counters(net.client()),
        );
        std::thread::sleep(Duration::from_millis(2));
    }
    let joined_after = started.elapsed();
    assert_eq!(subflows_total(&client), 2);
    echo(&mut client, &mut server);
    let stats = steer.stats().unwrap();
    let marked = marked_syns(router);
    println!(
        "{}{}: second subflow {joined_after:?} after the first data; {stats:?}; {marked} marked SYN(s) forwarded",
        if v6 { "IPv6" } else { "IPv4" },
        if late { ", token inserted late" } else { "" },
    );
    assert_eq!(stats.steered, 1, "{stats:?}");
    assert_eq!(stats.dropped_unknown, u64::from(late), "{stats:?}");
    assert_eq!(stats.joins_seen, stats.steered + stats.dropped_unknown);
    assert!(stats.non_join_passed > 0, "{stats:?}");
    assert_eq!(marked, 1, "the steered SYN reached the forward hook marked");
    let counters = net.server().counters().unwrap();
    assert_eq!(counters.get("MPTcpExt", "MPJoinSynRx"), Some(1));

    // Removing the token: a new join would be dropped; the filter goes on drop.
    assert!(steer.remove(token).unwrap());
    assert!(!steer.remove(token).unwrap());
    drop(steer); // on this thread, outside the router namespace
    assert_eq!(filters(router, "c0"), "");
    assert_eq!(filters(router, "c1"), "");
}

fn unknown_token_dropped(v6: bool) {
    let net = build(v6);
    let router = net.router().unwrap();
    let vip = server_addr(&net, v6);
    let steer = steer_on_router(&net, vip);
    add_mark_counter(router);

    let (mut client, mut server, _listener) = connect(&net, SocketAddr::new(vip, PORT));
    echo(&mut client, &mut server);
    // The client retransmits the join SYN after 1 s and 3 s; wait for two drops.
    let deadline = Instant::now() + Duration::from_secs(6);
    let mut stats = SteeringStats::default();
    while stats.dropped_unknown < 2 {
        assert!(
            Instant::now() < deadline,
            "join SYNs not dropped: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
        stats = steer.stats().unwrap();
    }
    echo(&mut client, &mut server);
    println!(
        "{}: unknown token: {stats:?}",
        if v6 { "IPv6" } else { "IPv4" }
    );
    assert_eq!(stats.steered, 0);
    assert_eq!(stats.joins_seen, stats.dropped_unknown);
    assert_eq!(subflows_total(&server), 1);
    // The client counts its join in SYN-SENT as a subflow; it never got an answer.
    let client_counters = net.client().counters().unwrap();
    assert_eq!(
        client_counters
            .get("MPTcpExt", "MPJoinSynAckRx")
            .unwrap_or(0),
        0
    );
    assert!(client_counters.get("MPTcpExt", "MPJoinSynTx").unwrap_or(0) >= 1);
    assert_eq!(marked_syns(router), 0);
    // The server never saw the join: no reset for an unknown token there.
    let counters = net.server().counters().unwrap();
    assert_eq!(
        counters.get("MPTcpExt", "MPJoinNoTokenFound").unwrap_or(0),
        0
    );
    assert_eq!(counters.get("MPTcpExt", "MPJoinSynRx").unwrap_or(0), 0);
    router.run(|| drop(steer)).unwrap();
    assert_eq!(filters(router, "c1"), "");
}

#[test]
fn join_is_marked_and_steered_ipv4() {
    steered(false, false);
}

#[test]
fn join_dropped_before_the_token_is_known_is_steered_on_retransmit() {
    steered(false, true);
}

#[test]
fn join_is_marked_and_steered_ipv6() {
    steered(true, false);
}

#[test]
fn join_with_unknown_token_is_dropped_ipv4() {
    unknown_token_dropped(false);
}

#[test]
fn join_with_unknown_token_is_dropped_ipv6() {
    unknown_token_dropped(true);
}

#[test]
fn attach_twice_and_missing_interface_are_errors() {
    let net = build(false);
    let router = net.router().unwrap();
    router
        .run(|| {
            let mut steer = TokenSteering::load().unwrap();
            steer.attach("c0").unwrap();
            let e = steer.attach("c0").unwrap_err().to_string();
            assert!(e.contains("c0") && e.contains("already"), "{e}");
            let e = steer.attach("nope0").unwrap_err().to_string();
            assert!(e.contains("nope0"), "{e}");
            assert!(steer.detach("c0").unwrap());
            assert!(!steer.detach("c0").unwrap());
        })
        .unwrap();
    assert_eq!(filters(router, "c0"), "");
}

/// The kernel's memory for the token map: the fixed bucket array and the
/// cost per entry (printed for the benchmark; only sanity-checked here).
#[test]
fn token_map_memory_per_entry() {
    let net = build(false);
    let router = net.router().unwrap();
    router
        .run(|| {
            let capacity = 1 << 20;
            let mut steer = TokenSteering::load_with_capacity(capacity).unwrap();
            let empty = steer.token_map_memory().unwrap();
            let n = 100_000u32;
            for t in 0..n {
                steer.insert(t.wrapping_mul(2_654_435_761), MARK).unwrap();
            }
            let full = steer.token_map_memory().unwrap();
            let per = (full - empty) as f64 / f64::from(n);
            println!(
                "token map, {capacity} capacity: {empty} bytes empty, {full} with {n} tokens: {per:.1} bytes per token"
            );
            assert!(full > empty, "entries cost memory: {empty} -> {full}");
            assert!((8.0..1024.0).contains(&per), "{per}");
        })
        .unwrap();
}

/// The whole chain: the backend (server namespace) publishes the token of an
/// accepted connection over UDP with `PublisherSocket`; the balancer (router
/// namespace) runs `RegistryServer` with `TokenSteering` as its sink; the
/// join is steered. A sender with the wrong key is counted as `bad_mac` and
/// changes nothing in the BPF map.
#[test]
fn registry_feeds_the_bpf_map_and_the_join_is_steered() {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Arc, Mutex};

    use mptcp_steer::registry::{Key, Publisher, Registry, Update};
    use mptcp_steer::{PublisherSocket, RegistryServer, UpdateSink};

    let net = build(false);
    let router = net.router().unwrap();
    let vip = server_addr(&net, false);
    let backend = vip; // the backend's address as the balancer knows it
    let registry_addr: SocketAddr = "198.19.0.254:7946".parse().unwrap();
    let key = Key::new(b"registry to bpf, end to end".to_vec()).unwrap();
    let steer = Arc::new(Mutex::new(steer_on_router(&net, vip)));
    add_mark_counter(router);

    let stop = AtomicBool::new(false);
    let (registry_tx, registry_rx) = std::sync::mpsc::channel();
    std::thread::scope(|s| {
        let server_thread = s.spawn(|| {
            router
                .run(|| {
                    let rt = tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .unwrap();
                    let registry = Registry::new(key.clone(), [(backend, MARK)]).unwrap();
                    let server = rt
                        .block_on(RegistryServer::bind(registry_addr, registry))
                        .unwrap();
                    registry_tx.send(server.registry()).unwrap();
                    let sink = |u: &Update| steer.lock().unwrap().apply(u);
                    rt.block_on(async {
                        tokio::select! {
                            r = server.run(sink) => r.unwrap(),
                            _ = async {
                                while !stop.load(Ordering::Relaxed) {
                                    tokio::time::sleep(Duration::from_millis(5)).await;
                                }
                            } => {}
                        }
                    });
                })
                .unwrap()
        });
        let registry = registry_rx.recv().unwrap();

        let (mut client, mut server, _listener) = connect(&net, SocketAddr::new(vip, PORT));
        let token = server.mptcp_info().unwrap().expect("MPTCP").token;
        let (mut publisher, mut forger) = net
            .server()
            .run(|| {
                let p =
                    PublisherSocket::connect(registry_addr, Publisher::new(key.clone(), backend));
                let f = PublisherSocket::connect(
                    registry_addr,
                    Publisher::new(Key::new(b"not the fleet's key".to_vec()).unwrap(), backend),
                );
                (p.unwrap(), f.unwrap())
            })
            .unwrap();
        forger.publisher_mut().snapshot([token ^ 1]);
        forger.flush().unwrap();
        publisher.publisher_mut().snapshot([token]);
        publisher.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while steer.lock().unwrap().mark_of(token).unwrap().is_none() {
            assert!(Instant::now() < deadline, "token never reached the BPF map");
            std::thread::sleep(Duration::from_millis(1));
        }
        echo(&mut client, &mut server);
        let deadline = Instant::now() + Duration::from_secs(3);
        while subflows_total(&server) < 2 {
            assert!(
                Instant::now() < deadline,
                "join not steered: {:?}",
                steer.lock().unwrap().stats()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
        let stats = steer.lock().unwrap().stats().unwrap();
        assert_eq!((stats.steered, stats.dropped_unknown), (1, 0), "{stats:?}");
        assert_eq!(marked_syns(router), 1);
        assert_eq!(steer.lock().unwrap().mark_of(token ^ 1).unwrap(), None);

        // The connection closes: the backend removes its token.
        publisher.remove(token).unwrap();
        let deadline = Instant::now() + Duration::from_secs(3);
        while steer.lock().unwrap().mark_of(token).unwrap().is_some() {
            assert!(Instant::now() < deadline, "token never left the BPF map");
            std::thread::sleep(Duration::from_millis(1));
        }
        let r = registry.lock().unwrap().stats();
        assert_eq!((r.accepted_messages, r.bad_mac), (2, 1), "{r:?}");
        stop.store(true, Ordering::Relaxed);
        server_thread.join().unwrap();
    });
}
