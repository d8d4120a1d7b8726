//! The path-manager daemon ([`mptcp_pm::Daemon`]) and its plan on real namespaces:
//! the daemon on a thread inside the namespace, its reports as JSON values, the
//! kernel's endpoint table read back over netlink, links and addresses changed with
//! iproute2. (`mptcp pm run`'s flags and exit codes: `crates/mptcp-cli/tests/pm.rs`.)

mod common;

use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{
    addresses, endpoints, ipaddr, is_change, netns, once, options, plan, state_dir, testnet, Kind,
    PmDaemon, Upload,
};
use mptcp_netlink::{EndpointFlags, Limits, NewEndpoint, PathManager};
use mptcp_pm::{Config, Daemon, Report};
use mptcp_testnet::support::{ip, two_interfaces};
use mptcp_testnet::{Endpoints, Netns, TestNet};
use serde_json::Value;

fn plan_reason(plan: &Value, address: &str) -> String {
    for list in ["skipped", "over_capacity"] {
        if let Some(s) = plan[list]
            .as_array()
            .unwrap()
            .iter()
            .find(|s| s["address"] == address)
        {
            return s["reason"].as_str().unwrap().to_string();
        }
    }
    panic!("{address} not skipped in {plan:#}");
}

fn plan_addresses(plan: &Value) -> Vec<String> {
    let mut v: Vec<String> = plan["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["address"].as_str().unwrap().to_string())
        .collect();
    v.sort();
    v
}

/// An MPTCP connection from the client to the server's path-0 address on `port`,
/// with a byte each way: the client's path manager opens subflows once the
/// connection is fully established, which takes data from the server. Returns
/// the client's socket, the server's, and the listener (which takes the joins:
/// keep it).
fn established(
    net: &TestNet,
    port: u16,
) -> (
    std::net::TcpStream,
    std::net::TcpStream,
    std::net::TcpListener,
) {
    use std::io::{Read, Write};
    let listener = net
        .server()
        .run(|| {
            mptcp_net::ListenConfig::new()
                .listen(("0.0.0.0", port))
                .unwrap()
        })
        .unwrap();
    let target = SocketAddr::from(([198, 18, 0, 2], port));
    let stream = net
        .client()
        .run(|| mptcp_net::Dialer::new().dial(target).unwrap())
        .unwrap();
    let (mut server_side, _) = listener.accept().unwrap();
    (&stream).write_all(b"hi").unwrap();
    let mut buf = [0u8; 2];
    server_side.read_exact(&mut buf).unwrap();
    server_side.write_all(b"ok").unwrap();
    (&stream).read_exact(&mut buf).unwrap();
    (stream, server_side, listener)
}

/// One namespace with `x0` (198.18.<a>.1) and `x1` (198.18.<b>.1), up, each with a
/// default route of its own (tables 100 and 101: the multi-homed host's usual setup).
fn host_with_two_links(label: &str) -> Netns {
    let ns = netns(label);
    two_interfaces(ns.name(), 10, 11);
    for (dev, net, table) in [("x0", 10, "100"), ("x1", 11, "101")] {
        ip(
            ns.name(),
            &[
                "route",
                "add",
                "default",
                "via",
                &format!("198.18.{net}.2"),
                "dev",
                dev,
                "table",
                table,
            ],
        );
    }
    ns
}

#[test]
fn pm_client_follows_addresses_links_and_dad() {
    let ns = host_with_two_links("pm-addr");
    let state = state_dir("addr");
    let name = ns.name().to_string();
    // Before: the plan, with the reasons.
    let p = plan(&ns, &state, None);
    assert_eq!(plan_addresses(&p), ["198.18.10.1", "198.18.11.1"]);
    assert_eq!(plan_reason(&p, "127.0.0.1"), "loopback");
    assert_eq!(p["limits"]["subflows"], 2);
    assert_eq!(p["actions"].as_array().unwrap().len(), 3, "{p:#}");

    let mut d = PmDaemon::start(&name, Kind::Kernel, options(&state, None));
    let ready = d.ready();
    assert_eq!(ready["endpoints"], 2);
    assert_eq!(
        addresses(&ns),
        [ipaddr("198.18.10.1"), ipaddr("198.18.11.1")]
    );
    for e in endpoints(&ns) {
        assert_eq!(e.flags, EndpointFlags::SUBFLOW, "{e}");
        assert!(e.ifindex.is_some(), "bound to its interface: {e}");
    }
    let old_id = endpoints(&ns)
        .iter()
        .find(|e| e.address == ipaddr("198.18.11.1"))
        .unwrap()
        .id;

    // Address removed, then added back: same id.
    let n = d.lines().len();
    let t = Instant::now();
    ip(&name, &["addr", "del", "198.18.11.1/24", "dev", "x1"]);
    let (at, _) = d.wait_for("removal", n, Duration::from_secs(2), |v| {
        is_change(v, "remove", "198.18.11.1")
    });
    assert!(
        at - t < Duration::from_secs(1),
        "removed after {:?}",
        at - t
    );
    assert_eq!(addresses(&ns), [ipaddr("198.18.10.1")]);
    let n = d.lines().len();
    ip(&name, &["addr", "add", "198.18.11.1/24", "dev", "x1"]);
    ip(
        &name,
        &[
            "route",
            "replace",
            "default",
            "via",
            "198.18.11.2",
            "dev",
            "x1",
            "table",
            "101",
        ],
    );
    let (_, add) = d.wait_for("re-add", n, Duration::from_secs(2), |v| {
        is_change(v, "add", "198.18.11.1")
    });
    assert_eq!(
        add["endpoint"]["id"], old_id,
        "an address that comes back gets its id back"
    );

    // An IPv6 address waits for duplicate address detection (and a default route).
    ip(
        &name,
        &[
            "-6",
            "route",
            "add",
            "default",
            "via",
            "2001:db8:10::2",
            "dev",
            "x0",
            "onlink",
            "table",
            "100",
        ],
    );
    let n = d.lines().len();
    let t = Instant::now();
    ip(
        &name,
        &["-6", "addr", "add", "2001:db8:10::1/64", "dev", "x0"],
    );
    let p = plan(&ns, &state, None);
    assert_eq!(
        plan_reason(&p, "2001:db8:10::1"),
        "tentative: waiting for duplicate address detection"
    );
    let (at, _) = d.wait_for(
        "the IPv6 endpoint after DAD",
        n,
        Duration::from_secs(8),
        |v| is_change(v, "add", "2001:db8:10::1"),
    );
    let dad = ip(&name, &["-6", "addr", "show", "dev", "x0"]);
    let line = dad
        .lines()
        .find(|l| l.contains("2001:db8:10::1/64"))
        .expect("the address");
    assert!(!line.contains("tentative"), "added only after DAD: {dad}");
    eprintln!(
        "IPv6 endpoint {:?} after the address was added (DAD)",
        at - t
    );

    // SIGTERM: our endpoints go, the limits found at start come back.
    let (status, lines) = d.stop();
    assert!(status.is_ok(), "{status:?}");
    let last = lines.last().unwrap();
    assert_eq!(last["event"], "stopped");
    assert_eq!(last["removed"], 3);
    assert_eq!(last["limits_restored"], true);
    assert!(endpoints(&ns).is_empty());
    let limits = ns
        .run(|| PathManager::open().unwrap().limits().unwrap())
        .unwrap();
    assert_eq!(
        (limits.subflows, limits.add_addr_accepted),
        (2, 0),
        "kernel defaults back"
    );
}

#[test]
fn pm_no_carrier_removes_at_once_and_link_back_restores() {
    // Without a transfer: the link state machine alone (the transfer is in the
    // bandwidth test below).
    let ns = host_with_two_links("pm-carrier");
    let name = ns.name().to_string();
    // x1's peer end lives in a second namespace, so taking it down leaves x1
    // NO-CARRIER with its address in place (a pulled cable).
    let peer = netns("pm-carrier-peer");
    ip(&name, &["link", "del", "x0"]);
    ip(
        &name,
        &[
            "link",
            "add",
            "x1",
            "type",
            "veth",
            "peer",
            "name",
            "y1",
            "netns",
            peer.name(),
        ],
    );
    ip(
        &name,
        &[
            "link",
            "add",
            "x0",
            "type",
            "veth",
            "peer",
            "name",
            "y0",
            "netns",
            peer.name(),
        ],
    );
    for (dev, net, table) in [("x0", 10, "100"), ("x1", 11, "101")] {
        ip(
            &name,
            &["addr", "add", &format!("198.18.{net}.1/24"), "dev", dev],
        );
        ip(&name, &["link", "set", dev, "up"]);
        ip(peer.name(), &["link", "set", &dev.replace('x', "y"), "up"]);
        ip(
            &name,
            &[
                "route",
                "add",
                "default",
                "via",
                &format!("198.18.{net}.2"),
                "dev",
                dev,
                "table",
                table,
            ],
        );
    }
    let state = state_dir("carrier");
    let mut d = PmDaemon::start(&name, Kind::Kernel, options(&state, None));
    d.ready();
    assert_eq!(addresses(&ns).len(), 2);
    let n = d.lines().len();
    let t = Instant::now();
    ip(peer.name(), &["link", "set", "y1", "down"]);
    let (at, v) = d.wait_for("removal on NO-CARRIER", n, Duration::from_secs(2), |v| {
        is_change(v, "remove", "198.18.11.1")
    });
    assert!(
        at - t < Duration::from_secs(1),
        "removed after {:?}",
        at - t
    );
    assert_eq!(v["reason"], "x1 has no carrier (NO-CARRIER)");
    assert!(
        ip(&name, &["addr", "show", "dev", "x1"]).contains("198.18.11.1"),
        "the address stays"
    );
    assert_eq!(addresses(&ns), [ipaddr("198.18.10.1")]);
    let p = plan(&ns, &state, None);
    assert_eq!(
        plan_reason(&p, "198.18.11.1"),
        "x1 has no carrier (NO-CARRIER)"
    );

    let n = d.lines().len();
    let t = Instant::now();
    ip(peer.name(), &["link", "set", "y1", "up"]);
    let (at, _) = d.wait_for("re-add on carrier", n, Duration::from_secs(3), |v| {
        is_change(v, "add", "198.18.11.1")
    });
    eprintln!("endpoint back {:?} after the peer came up", at - t);
    assert_eq!(addresses(&ns).len(), 2);
    let (status, _) = d.stop();
    assert!(status.is_ok(), "{status:?}");
}

#[test]
fn pm_ownership_keep_lock_and_hand_made_endpoints() {
    let ns = host_with_two_links("pm-own");
    let name = ns.name().to_string();
    let state = state_dir("own");
    // An endpoint made by hand before the daemon starts, on an address the daemon
    // would use, and one elsewhere.
    ns.run(|| {
        let pm = PathManager::open().unwrap();
        pm.add_endpoint(
            &NewEndpoint::new(ipaddr("198.18.10.1"))
                .id(50)
                .flags(EndpointFlags::SIGNAL),
        )
        .unwrap();
        pm.add_endpoint(
            &NewEndpoint::new(ipaddr("198.18.99.1"))
                .id(51)
                .flags(EndpointFlags::SUBFLOW),
        )
        .unwrap();
    })
    .unwrap();
    let p = plan(&ns, &state, None);
    assert_eq!(
        plan_reason(&p, "198.18.10.1"),
        "endpoint id 50 made by someone else has this address: left alone"
    );
    assert_eq!(p["foreign"].as_array().unwrap().len(), 2);

    let mut d = PmDaemon::start(&name, Kind::Kernel, options(&state, None));
    let started = d
        .wait_for("started", 0, Duration::from_secs(5), |v| {
            v["event"] == "started"
        })
        .1;
    assert_eq!(started["foreign"], 2);
    d.ready();
    let ids: Vec<u8> = endpoints(&ns).iter().map(|e| e.id).collect();
    assert_eq!(ids.len(), 3, "{ids:?}");

    // A second daemon in the same namespace is refused, with the holder's pid.
    let err = PmDaemon::try_start(&name, Kind::Kernel, options(&state, None))
        .expect_err("a second daemon is refused");
    assert!(
        err.starts_with(&format!(
            "another `mptcp pm run` (pid {}) ",
            std::process::id()
        )) && err.contains("manages this network namespace"),
        "{err}"
    );

    // Exit: hand-made endpoints survive, ours go.
    let (status, _) = d.stop();
    assert!(status.is_ok(), "{status:?}");
    let left: Vec<u8> = endpoints(&ns).iter().map(|e| e.id).collect();
    assert_eq!(left, [50, 51]);

    // --keep leaves ours in place; the next run adopts them instead of taking them
    // for hand-made ones, and cleans up on its exit.
    let mut keep = options(&state, None);
    keep.keep = true;
    let mut d = PmDaemon::start(&name, Kind::Kernel, keep);
    d.ready();
    let (status, lines) = d.stop();
    assert!(status.is_ok(), "{status:?}");
    assert_eq!(lines.last().unwrap()["removed"], 0);
    assert_eq!(endpoints(&ns).len(), 3);
    let mut d = PmDaemon::start(&name, Kind::Kernel, options(&state, None));
    let started = d
        .wait_for("started", 0, Duration::from_secs(5), |v| {
            v["event"] == "started"
        })
        .1;
    assert_eq!(
        (started["adopted"].clone(), started["foreign"].clone()),
        (1.into(), 2.into())
    );
    let ready = d.ready();
    assert_eq!(ready["endpoints"], 1);
    assert!(
        !d.lines()
            .iter()
            .any(|(_, v)| v["event"] == "change" && v["action"] != "set_limits"),
        "nothing to change: {:#?}",
        d.lines()
    );
    d.stop().0.expect("the daemon stops cleanly");
    assert_eq!(
        endpoints(&ns).iter().map(|e| e.id).collect::<Vec<_>>(),
        [50, 51]
    );

    // Once: set and return, leaving them.
    let lines = once(&ns, options(&state, None));
    assert!(lines.iter().any(|v| v["event"] == "ready"), "{lines:#?}");
    assert_eq!(lines.last().unwrap()["removed"], 0, "{lines:#?}");
    assert_eq!(endpoints(&ns).len(), 3);
}

/// A daemon SIGKILLed right after the kernel added its endpoints, before the save that
/// ends the pass: the state file on disk then is the one the next run reads, and it
/// must name those endpoints, or the next run takes them for someone else's and they
/// stay behind for good (the chaos soak's `endpoints_left 1`).
#[test]
fn pm_killed_right_after_an_add_adopts_and_removes_on_the_next_run() {
    let ns = host_with_two_links("pm-kill");
    let state = state_dir("kill");
    let dir = state.to_path_buf();
    // What the state file held at the moment of the last add: what a SIGKILL then
    // leaves on disk.
    let on_disk = ns
        .run(|| {
            let path = mptcp_pm::state::state_path(&dir, mptcp_pm::state::netns_id().unwrap());
            let mut at_add = None;
            let mut log = |r: Report| {
                if let Report::Change {
                    action: mptcp_pm::Action::Add { .. },
                    applied: true,
                    ..
                } = r
                {
                    at_add = Some(std::fs::read(&path).unwrap());
                }
            };
            let mut d = Daemon::start(options(&dir, None), &mut log).expect("start");
            d.reconcile(&mut log).expect("reconcile");
            // Killed: no shutdown, the lock goes with the process.
            drop(d);
            (path, at_add.expect("the daemon added its endpoints"))
        })
        .expect("enter the namespace");
    assert_eq!(
        addresses(&ns),
        [ipaddr("198.18.10.1"), ipaddr("198.18.11.1")]
    );
    std::fs::write(&on_disk.0, &on_disk.1).unwrap();

    // The next run adopts both, changes nothing, and removes both on its exit.
    let lines = ns
        .run(|| {
            let mut lines = Vec::new();
            let mut log = |r: Report| lines.push(serde_json::to_value(&r).unwrap());
            let mut d = Daemon::start(options(&dir, None), &mut log).expect("start");
            d.reconcile(&mut log).expect("reconcile");
            d.shutdown(&mut log).expect("shutdown");
            lines
        })
        .expect("enter the namespace");
    let started = lines.iter().find(|v| v["event"] == "started").unwrap();
    assert_eq!(
        (started["adopted"].clone(), started["foreign"].clone()),
        (2.into(), 0.into()),
        "{lines:#?}"
    );
    assert!(
        !lines
            .iter()
            .any(|v| v["event"] == "change" && v["action"] == "add"),
        "{lines:#?}"
    );
    assert!(
        endpoints(&ns).is_empty(),
        "endpoints left behind: {:?}\n{lines:#?}",
        endpoints(&ns)
    );
}

/// An address the daemon wants already has a kernel-made (`implicit`) endpoint: the
/// client, without endpoints, opened a subflow from it to an address the server
/// announced (what happens to in-kernel connections while the userspace daemon, or
/// no daemon, runs). The daemon takes it over in place: same id, its flags, the
/// subflow kept; and removes it on exit. (Adding it under the implicit one's id was
/// refused with EBUSY on every pass: the path stayed without our endpoint and the
/// implicit one stayed behind, the chaos soak's `endpoints_left 1`.)
/// A `--userspace` run killed before it could put the path manager back leaves the
/// namespace on `userspace` (the kernel then ignores endpoints); the next in-kernel
/// run gives back the value that run recorded, says so, and forgets it.
#[test]
fn pm_in_kernel_after_a_killed_userspace_run_gives_the_path_manager_back() {
    let ns = host_with_two_links("pm-restore");
    let state = state_dir("restore");
    let dir = state.to_path_buf();
    let sysctl = "/proc/sys/net/mptcp/path_manager";
    let read = |ns: &Netns| {
        ns.run(|| std::fs::read_to_string(sysctl).unwrap().trim().to_string())
            .unwrap()
    };
    let before = read(&ns);
    assert_ne!(before, "userspace", "a fresh namespace starts in-kernel");
    ns.run(|| {
        let d = mptcp_pm::userspace::UserspaceDaemon::start(options(&dir, None), &mut |_| {})
            .expect("start --userspace");
        // Killed: no shutdown.
        drop(d);
    })
    .unwrap();
    assert_eq!(read(&ns), "userspace", "left by the killed run");

    let lines = ns
        .run(|| {
            let mut lines = Vec::new();
            let mut log = |r: Report| lines.push(serde_json::to_value(&r).unwrap());
            let mut d = Daemon::start(options(&dir, None), &mut log).expect("start");
            d.reconcile(&mut log).expect("reconcile");
            let path = mptcp_pm::state::state_path(&dir, mptcp_pm::state::netns_id().unwrap());
            let on_disk = std::fs::read_to_string(path).unwrap();
            d.shutdown(&mut log).expect("shutdown");
            (lines, on_disk)
        })
        .unwrap();
    let (lines, on_disk) = lines;
    assert_eq!(read(&ns), before, "given back by the in-kernel run");
    let restored = lines
        .iter()
        .find(|v| v["event"] == "path_manager")
        .unwrap_or_else(|| panic!("no path_manager report: {lines:#?}"));
    assert_eq!(restored["value"], before.as_str(), "{restored}");
    assert_eq!(restored["previous"], "userspace", "{restored}");
    assert!(!on_disk.contains("pm_restore"), "forgotten: {on_disk}");
    // Its endpoints were made while the kernel's manager was in charge again.
    assert!(
        lines.iter().any(|v| is_change(v, "add", "198.18.10.1")),
        "the in-kernel run added its endpoints: {lines:#?}"
    );
}

#[test]
fn pm_takes_over_an_implicit_endpoint_in_place() {
    let net = testnet(None, Endpoints::None);
    let client = net.client().name().to_string();
    let state = state_dir("implicit");
    net.server()
        .run(|| {
            let pm = PathManager::open().unwrap();
            pm.add_endpoint(&NewEndpoint::new(ipaddr("198.18.1.2")).flags(EndpointFlags::SIGNAL))
                .unwrap();
            pm.set_limits(Limits {
                subflows: 2,
                add_addr_accepted: 0,
            })
            .unwrap();
        })
        .unwrap();
    net.client()
        .run(|| {
            PathManager::open()
                .unwrap()
                .set_limits(Limits {
                    subflows: 2,
                    add_addr_accepted: 2,
                })
                .unwrap()
        })
        .unwrap();
    let (stream, _server_side, _listener) = established(&net, 7100);
    let path1 = ipaddr("198.18.1.1");
    let deadline = Instant::now() + Duration::from_secs(5);
    let implicit = loop {
        let eps = endpoints(net.client());
        if let Some(e) = eps.iter().find(|e| e.address == path1) {
            assert!(e.flags.contains(EndpointFlags::IMPLICIT), "{eps:?}");
            break e.clone();
        }
        assert!(Instant::now() < deadline, "no implicit endpoint: {eps:?}");
        std::thread::sleep(Duration::from_millis(20));
    };
    let subflows_on_path1 = |s: &std::net::TcpStream| {
        use mptcp_net::MptcpExt;
        s.subflows()
            .unwrap()
            .iter()
            .filter(|sf| sf.local.map(|a| a.ip()) == Some(path1))
            .count()
    };
    assert_eq!(subflows_on_path1(&stream), 1);

    let mut d = PmDaemon::start(&client, Kind::Kernel, options(&state, None));
    d.ready();
    let eps = endpoints(net.client());
    let ours = eps
        .iter()
        .find(|e| e.address == path1)
        .unwrap_or_else(|| panic!("{eps:?}"));
    assert_eq!(ours.id, implicit.id, "{eps:?}");
    assert!(
        ours.flags.contains(EndpointFlags::SUBFLOW)
            && !ours.flags.contains(EndpointFlags::IMPLICIT),
        "{eps:?}"
    );
    assert_eq!(subflows_on_path1(&stream), 1, "the subflow is kept");
    assert!(
        d.lines()
            .iter()
            .any(|(_, v)| is_change(v, "add", "198.18.1.1") && v["applied"] == true),
        "{:#?}",
        d.lines()
    );
    let (status, lines) = d.stop();
    assert!(status.is_ok(), "{status:?}");
    // The connection still uses the endpoint: it is kept, then removed by the next
    // run once the connection is gone.
    assert!(
        endpoints(net.client()).iter().any(|e| e.address == path1),
        "{lines:#?}"
    );
    drop((stream, _server_side, _listener));
    let (status, lines) = stop_when_closed(&net, &client, &state);
    assert!(status.is_ok(), "{status:?}");
    assert!(
        endpoints(net.client()).is_empty(),
        "left behind: {:?}\n{lines:#?}",
        endpoints(net.client())
    );
}

/// Waits (10 s at most) until the client has no MPTCP connection left but sockets in
/// TIME_WAIT, then runs the in-kernel daemon once more and stops it: it adopts what
/// an earlier run kept for live connections and now removes it.
fn stop_when_closed(net: &TestNet, client: &str, state: &Path) -> (Result<(), String>, Vec<Value>) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let live = net
            .client()
            .run(|| {
                mptcp_netlink::connections()
                    .unwrap()
                    .into_iter()
                    .filter(|c| !c.is_listener() && c.state != mptcp_net::TcpState::TimeWait)
                    .count()
            })
            .unwrap();
        if live == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{live} connection(s) still open after 10 s"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut d = PmDaemon::start(client, Kind::Kernel, options(state, None));
    d.ready();
    d.stop()
}

/// Stopping must not cut live connections: deleting an endpoint makes the kernel close
/// every subflow from its address, a connection's initial one too (the chaos soak
/// lost connections so at its switch from in-kernel to `--userspace`). The in-kernel
/// run keeps the endpoints its live connections use and says so; the `--userspace`
/// run that follows keeps them while the connection lives and removes them once it
/// has closed.
#[test]
fn pm_exit_keeps_the_endpoints_live_connections_use() {
    use mptcp_net::MptcpExt;
    use std::io::{Read, Write};
    let net = testnet(None, Endpoints::None);
    let client = net.client().name().to_string();
    let state = state_dir("handover");
    net.server()
        .run(|| {
            PathManager::open()
                .unwrap()
                .set_limits(Limits {
                    subflows: 4,
                    add_addr_accepted: 0,
                })
                .unwrap()
        })
        .unwrap();
    let mut d = PmDaemon::start(&client, Kind::Kernel, options(&state, None));
    d.ready();
    let (stream, mut server_side, listener) = established(&net, 7200);
    let path1 = ipaddr("198.18.1.1");
    let on_path1 = |s: &std::net::TcpStream| {
        s.subflows().unwrap().iter().any(|sf| {
            sf.local.map(|a| a.ip()) == Some(path1)
                && sf.tcp.state == mptcp_net::TcpState::Established
        })
    };
    let deadline = Instant::now() + Duration::from_secs(5);
    while !on_path1(&stream) {
        assert!(
            Instant::now() < deadline,
            "no subflow from {path1}: {:?}",
            stream.subflows()
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    let (status, lines) = d.stop();
    assert!(status.is_ok(), "{status:?}");
    let stopped = lines
        .iter()
        .find(|v| v["event"] == "stopped")
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert!(stopped["kept"].as_u64().unwrap() >= 1, "{stopped}");
    assert!(
        endpoints(net.client()).iter().any(|e| e.address == path1),
        "removed under a live connection: {lines:#?}"
    );
    // The connection keeps both paths and still carries data.
    assert!(on_path1(&stream), "{:?}", stream.subflows());
    (&stream).write_all(b"still here").unwrap();
    let mut buf = [0u8; 10];
    server_side.read_exact(&mut buf).unwrap();
    assert_eq!(&buf, b"still here");

    // The switch to --userspace: kept while in use, removed once the connection ends.
    let mut u = PmDaemon::start(&client, Kind::Userspace, options(&state, None));
    u.ready();
    std::thread::sleep(Duration::from_millis(300));
    assert!(
        endpoints(net.client()).iter().any(|e| e.address == path1),
        "the userspace run removed an endpoint in use: {:#?}",
        u.lines()
    );
    assert!(on_path1(&stream), "{:?}", stream.subflows());
    drop((stream, server_side, listener));
    u.wait_for("released", 0, Duration::from_secs(15), |v| {
        v["event"] == "released" && v["kept"] == 0
    });
    assert!(
        endpoints(net.client()).is_empty(),
        "left behind: {:?}",
        endpoints(net.client())
    );
    let (status, lines) = u.stop();
    assert!(status.is_ok(), "{status:?}");
    let stopped = lines
        .iter()
        .find(|v| v["event"] == "stopped")
        .unwrap_or_else(|| panic!("{lines:#?}"));
    assert_eq!(stopped["kept"], 0, "{stopped}");
}

#[test]
fn pm_eight_endpoint_cap_priorities_exclude_and_dry_run() {
    let ns = host_with_two_links("pm-cap");
    let name = ns.name().to_string();
    let state = state_dir("cap");
    for i in 2..=5 {
        ip(
            &name,
            &["addr", "add", &format!("198.18.10.{i}/24"), "dev", "x0"],
        );
        ip(
            &name,
            &["addr", "add", &format!("198.18.11.{i}/24"), "dev", "x1"],
        );
    }
    // 10 candidates, one hand-made endpoint: 7 slots. x1 has the higher priority.
    ns.run(|| {
        PathManager::open()
            .unwrap()
            .add_endpoint(
                &NewEndpoint::new(ipaddr("198.18.99.1"))
                    .id(99)
                    .flags(EndpointFlags::SIGNAL),
            )
            .unwrap();
    })
    .unwrap();
    let config = state.with_extension("toml");
    std::fs::write(
        &config,
        "resync_interval = 1\n[[interface]]\nname = \"x1\"\npriority = 10\nflags = [\"subflow\", \"backup\"]\n",
    )
    .unwrap();
    let cfg = config.to_str().unwrap();
    let p = plan(&ns, &state, Some(cfg));
    let chosen = plan_addresses(&p);
    let mut want: Vec<String> = (1..=5)
        .map(|i| format!("198.18.11.{i}"))
        .chain((1..=2).map(|i| format!("198.18.10.{i}")))
        .collect();
    want.sort();
    assert_eq!(chosen, want);
    assert!(plan_reason(&p, "198.18.10.5")
        .starts_with("over the kernel's 8 endpoints (1 taken by others)"));

    // A dry run logs what it would do and changes nothing.
    let mut dry = options(&state, Some(cfg));
    dry.dry_run = true;
    let mut d = PmDaemon::start(&name, Kind::Kernel, dry);
    d.ready();
    let (status, lines) = d.stop();
    assert!(status.is_ok(), "{status:?}");
    assert_eq!(
        lines
            .iter()
            .filter(|v| v["event"] == "change" && v["applied"] == false)
            .count(),
        8
    );
    assert_eq!(endpoints(&ns).len(), 1);

    let mut d = PmDaemon::start(&name, Kind::Kernel, options(&state, Some(cfg)));
    d.ready();
    let eps = endpoints(&ns);
    assert_eq!(eps.len(), 8);
    for e in eps.iter().filter(|e| e.id != 99) {
        let want = if e.address.to_string().starts_with("198.18.11.") {
            EndpointFlags::SUBFLOW | EndpointFlags::BACKUP
        } else {
            EndpointFlags::SUBFLOW
        };
        assert_eq!(e.flags, want, "{e}");
    }
    // Drift: one of ours deleted by hand comes back at the next resync (1 s here);
    // three resyncs later the cap is still reported once.
    let n = d.lines().len();
    let victim = eps.iter().find(|e| e.id != 99).unwrap().clone();
    ip(
        &name,
        &["mptcp", "endpoint", "delete", "id", &victim.id.to_string()],
    );
    let (_, v) = d.wait_for("drift repaired", n, Duration::from_millis(2500), |v| {
        is_change(v, "add", &victim.address.to_string())
    });
    assert_eq!(v["endpoint"]["id"], victim.id);
    std::thread::sleep(Duration::from_millis(3200));
    let (_, lines) = d.stop();
    assert_eq!(
        lines
            .iter()
            .filter(|v| v["event"] == "over_capacity")
            .count(),
        1,
        "{lines:#?}"
    );
    assert_eq!(
        lines
            .iter()
            .filter(|v| v["event"] == "change" && v["action"] == "add")
            .count(),
        8,
    );

    // An excluded glob gets nothing.
    std::fs::write(&config, "exclude = [\"x1*\"]\n").unwrap();
    let p = plan(&ns, &state, Some(cfg));
    assert_eq!(plan_reason(&p, "198.18.11.1"), "x1 is excluded by \"x1*\"");
    assert!(plan_addresses(&p)
        .iter()
        .all(|a| a.starts_with("198.18.10.")));
}

#[test]
fn pm_bad_config_and_other_managers_are_refused_before_anything_changes() {
    let ns = host_with_two_links("pm-bad");
    let name = ns.name().to_string();
    let state = state_dir("bad");
    let config = state.with_extension("toml");
    let cfg = config.to_str().unwrap().to_string();
    for (text, message) in [
        (
            "role = \"client\"\nbogus = 1\n",
            ":2: unknown field `bogus`",
        ),
        (
            "include = [\"eth[\"]\n",
            ":1: bad interface pattern \"eth[\"",
        ),
        (
            "[[interface]]\nname = \"x*\"\nflags = [\"signal\", \"fullmesh\"]\n",
            ":3: signal and fullmesh cannot go together",
        ),
        (
            "[[interface]]\nname = \"x*\"\nflags = [\"subflow\", \"turbo\"]\n",
            ":3: unknown endpoint flag \"turbo\"",
        ),
    ] {
        std::fs::write(&config, text).unwrap();
        // `run` and `plan` both read it with `Config::from_file` (`mptcp pm` prints
        // the error after `mptcp: error: ` and exits 2: crates/mptcp-cli/tests/pm.rs).
        let err = Config::from_file(&config).expect_err(text).to_string();
        assert!(err.starts_with(&format!("{cfg}{message}")), "{err}");
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(endpoints(&ns).is_empty());
    }
    let err = Config::from_file(Path::new("/nonexistent.toml"))
        .expect_err("a missing file is refused")
        .to_string();
    assert!(err.contains("cannot read the configuration"), "{err}");

    // NetworkManager running in the namespace: refused, unless --force.
    let dir = state.with_extension("bin");
    std::fs::create_dir_all(&dir).unwrap();
    let nm = dir.join("NetworkManager");
    std::fs::copy("/bin/sleep", &nm).unwrap();
    let mut fake = Command::new("ip")
        .args(["netns", "exec", &name])
        .arg(&nm)
        .arg("30")
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let err = PmDaemon::try_start(&name, Kind::Kernel, options(&state, None))
        .expect_err("refused beside NetworkManager");
    assert!(
        err.contains("NetworkManager (pid ")
            && err.contains("runs in this network namespace")
            && err.contains("--force"),
        "{err}"
    );
    assert!(endpoints(&ns).is_empty());
    let mut force = options(&state, None);
    force.force = true;
    let mut d = PmDaemon::start(&name, Kind::Kernel, force);
    d.ready();
    assert_eq!(endpoints(&ns).len(), 2);
    d.stop().0.expect("the daemon stops cleanly");
    fake.kill().unwrap();
    fake.wait().unwrap();
}

#[test]
fn pm_rp_filter_warning_and_fix() {
    // sd_notify's READY=1 is checked on the binary: crates/mptcp-cli/tests/pm.rs.
    let ns = host_with_two_links("pm-rp");
    let name = ns.name().to_string();
    let state = state_dir("rp");
    ns.set_sysctl("net/ipv4/conf/x0/rp_filter", "1").unwrap();
    let p = plan(&ns, &state, None);
    assert_eq!(p["strict_rp_filter"], serde_json::json!(["x0"]));
    let mut opts = options(&state, None);
    opts.fix_rp_filter = true;
    let mut d = PmDaemon::start(&name, Kind::Kernel, opts);
    d.ready();
    assert_eq!(ns.sysctl("net/ipv4/conf/x0/rp_filter").unwrap().trim(), "2");
    let (status, lines) = d.stop();
    assert!(status.is_ok(), "{status:?}");
    assert!(
        lines
            .iter()
            .any(|v| v["event"] == "rp_filter_strict" && v["fixed"] == true),
        "{lines:#?}"
    );
}

/// Two paths, the daemon as the client's only path manager: both endpoints appear; a
/// third path plugged in at run time gets its endpoint and a live connection gains a
/// subflow over it.
#[test]
fn pm_testnet_two_paths_then_a_third_at_run_time() {
    let net = testnet(None, Endpoints::None);
    let client = net.client().name().to_string();
    let server = net.server().name().to_string();
    let state = state_dir("third");
    let mut d = PmDaemon::start(&client, Kind::Kernel, options(&state, None));
    d.ready();
    assert_eq!(
        addresses(net.client()),
        [ipaddr("198.18.0.1"), ipaddr("198.18.1.1")]
    );

    // A live, idle connection.
    let (stream, _server_side, _listener) = established(&net, 7000);
    let locals = |s: &std::net::TcpStream| -> Vec<IpAddr> {
        use mptcp_net::MptcpExt;
        s.subflows()
            .unwrap()
            .iter()
            .filter_map(|sf| sf.local.map(|a| a.ip()))
            .collect()
    };
    let deadline = Instant::now() + Duration::from_secs(3);
    while locals(&stream).len() < 2 {
        assert!(
            Instant::now() < deadline,
            "no second subflow: {:?}",
            locals(&stream)
        );
        std::thread::sleep(Duration::from_millis(20));
    }

    // Plug in a third path.
    let n = d.lines().len();
    let t = Instant::now();
    ip(
        &client,
        &[
            "link", "add", "p2", "type", "veth", "peer", "name", "p2", "netns", &server,
        ],
    );
    ip(&server, &["addr", "add", "198.18.2.2/24", "dev", "p2"]);
    ip(&server, &["link", "set", "p2", "up"]);
    ip(&client, &["addr", "add", "198.18.2.1/24", "dev", "p2"]);
    ip(&client, &["link", "set", "p2", "up"]);
    ip(
        &client,
        &[
            "rule",
            "add",
            "from",
            "198.18.2.1",
            "table",
            "102",
            "priority",
            "1002",
        ],
    );
    ip(
        &client,
        &[
            "route",
            "add",
            "default",
            "via",
            "198.18.2.2",
            "dev",
            "p2",
            "table",
            "102",
        ],
    );
    let (at, _) = d.wait_for(
        "the third path's endpoint",
        n,
        Duration::from_secs(3),
        |v| is_change(v, "add", "198.18.2.1"),
    );
    assert!(
        at - t < Duration::from_secs(1),
        "endpoint after {:?}",
        at - t
    );
    let deadline = Instant::now() + Duration::from_secs(3);
    while !locals(&stream).contains(&ipaddr("198.18.2.1")) {
        assert!(
            Instant::now() < deadline,
            "no subflow on the third path: {:?}",
            locals(&stream)
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    eprintln!(
        "subflow on the new path {:?} after it was plugged in",
        t.elapsed()
    );
    let (status, _) = d.stop();
    assert!(status.is_ok(), "{status:?}");
}

/// Who manages the client's endpoints in [`failover_scenario`].
enum Manager {
    /// `mptcp pm run`.
    Ours,
    /// mptcpd 0.12 (Debian), addr_adv plugin, `subflow` flags, as its docs suggest.
    Mptcpd,
}

/// What happened in one [`failover_scenario`].
#[derive(Debug)]
struct Outcome {
    /// From the cut to the endpoint's removal from the kernel, if it was removed.
    removal: Option<Duration>,
    /// From the link's return to bytes on path 1 again, if within 4 s.
    path1_back: Option<Duration>,
    /// The longest wait between two reads at the receiver.
    stall_ms: f64,
    /// Mbit/s over the whole run.
    mbit_per_s: f64,
    /// Byte-exact.
    verified: bool,
}

/// Whether `cond` holds within 2 s (the daemon applies a plan right after saying it).
fn soon(cond: impl Fn() -> bool) -> bool {
    let deadline = Instant::now() + Duration::from_secs(2);
    while !cond() {
        if Instant::now() > deadline {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn has_endpoint(ns: &Netns, addr: &str) -> bool {
    endpoints(ns).iter().any(|e| e.address == ipaddr(addr))
}

/// A 6 s upload over two 20 Mbit/s paths; at 1.5 s the peer end of path 1 goes down
/// (the client's link is NO-CARRIER, its address stays); at 3.5 s it comes back. The
/// kernel's endpoint table is watched every 10 ms, so both managers are judged by what
/// the kernel did.
fn failover_scenario(manager: Manager) -> Outcome {
    let net = testnet(Some(20), Endpoints::None);
    let client_ns = net.client().name().to_string();
    let server_ns = net.server().name().to_string();
    let state = state_dir("failover");
    let mut ours = None;
    let mut theirs = None;
    match manager {
        Manager::Ours => {
            let mut d = PmDaemon::start(&client_ns, Kind::Kernel, options(&state, None));
            d.ready();
            ours = Some(d);
        }
        Manager::Mptcpd => {
            let child = Command::new("ip")
                .args(["netns", "exec", &client_ns, MPTCPD])
                .args([
                    "--path-manager=addr_adv",
                    "--addr-flags=subflow",
                    "--notify-flags=existing,skip_link_local,skip_loopback",
                    "--log=stderr",
                ])
                .stderr(Stdio::null())
                .spawn()
                .unwrap_or_else(|e| {
                    panic!("cannot start {MPTCPD} (install the Debian package mptcpd): {e}")
                });
            theirs = Some(KillOnDrop(child));
            let deadline = Instant::now() + Duration::from_secs(5);
            while !(has_endpoint(net.client(), "198.18.0.1")
                && has_endpoint(net.client(), "198.18.1.1"))
            {
                assert!(
                    Instant::now() < deadline,
                    "mptcpd made no endpoints: {:?}",
                    endpoints(net.client())
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
    }

    let upload = Upload::start(&net, 6);
    let path1 = ipaddr("198.18.1.1");
    std::thread::sleep(Duration::from_millis(1500));
    assert!(
        upload.bytes_on(path1, upload.started, Instant::now()) > 0,
        "path 1 carried nothing before the cut"
    );

    let down = Instant::now();
    ip(&server_ns, &["link", "set", "p1", "down"]);
    let mut removal = None;
    while down.elapsed() < Duration::from_millis(2000) {
        if removal.is_none() && !has_endpoint(net.client(), "198.18.1.1") {
            removal = Some(down.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let up = Instant::now();
    ip(&server_ns, &["link", "set", "p1", "up"]);
    let path1_back = upload
        .wait_until(Duration::from_secs(4), |u| {
            u.bytes_on(path1, up, Instant::now()) > 0
        })
        .map(|at| at - up);
    let summary = upload.finish();
    if let Some(d) = ours {
        let (status, _) = d.stop();
        assert!(status.is_ok(), "{status:?}");
    }
    drop(theirs);
    Outcome {
        removal,
        path1_back,
        stall_ms: summary.max_stall_ms,
        mbit_per_s: summary.mbit_per_s,
        verified: summary.verified == Some(true),
    }
}

impl Outcome {
    fn line(&self) -> String {
        format!(
            "endpoint removed after {}; longest stall {:.0} ms; {:.1} Mbit/s; path 1 back after {}; byte-exact {}",
            self.removal.map_or("never (stale)".into(), |d| format!("{} ms", d.as_millis())),
            self.stall_ms,
            self.mbit_per_s,
            self.path1_back.map_or("never".into(), |d| format!("{} ms", d.as_millis())),
            self.verified
        )
    }
}

const MPTCPD: &str = "/usr/libexec/mptcpd";

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A server's address outlives its link. The client reaches the server's path-0
/// address over path 1 (a route, as through a router), on the subflow it opens to
/// the address the server announces; when path 0 goes (the server's link is
/// NO-CARRIER) the server's daemon keeps that endpoint, so the subflow, which never
/// used the dead link, carries on. Removing it (RM_ADDR) closed that healthy
/// subflow, and in the chaos soak left connections with none.
#[test]
fn pm_server_keeps_its_address_when_its_link_goes() {
    server_link_loss(Kind::Kernel);
}

/// The same with `--userspace` on the server: the address it announced to each
/// connection is not withdrawn, and that subflow is not closed.
#[test]
fn pm_userspace_server_keeps_its_address_when_its_link_goes() {
    server_link_loss(Kind::Userspace);
}

fn server_link_loss(kind: Kind) {
    let net = testnet(None, Endpoints::None);
    let server_ns = net.server().name().to_string();
    let state = state_dir("server-link-loss");
    std::fs::create_dir_all(&*state).unwrap();
    let config = state.join("pm.toml");
    std::fs::write(
        &config,
        "role = \"server\"\nipv6 = false\nrequire_default_route = false\ninclude = [\"p0\"]\n",
    )
    .unwrap();
    let mut d = PmDaemon::start(
        &server_ns,
        kind,
        options(&state.join("state"), config.to_str()),
    );
    d.ready();
    let kernel = kind == Kind::Kernel;
    assert!(
        !kernel || has_endpoint(net.server(), "198.18.0.2"),
        "{:?}",
        endpoints(net.server())
    );
    // The client: one subflow for an announced address, routed over path 1.
    let client = net.client().name().to_string();
    ip(
        &client,
        &[
            "mptcp",
            "limits",
            "set",
            "subflows",
            "1",
            "add_addr_accepted",
            "1",
        ],
    );
    ip(
        &client,
        &[
            "route",
            "add",
            "198.18.0.2/32",
            "via",
            "198.18.1.2",
            "dev",
            "p1",
        ],
    );
    let upload = Upload::start_to(&net, 6, 1);
    let announced = ipaddr("198.18.0.2");
    assert!(
        upload
            .wait_until(Duration::from_secs(3), |u| {
                u.bytes_to(announced, u.started, Instant::now()) > 0
            })
            .is_some(),
        "no subflow to the announced address carried bytes"
    );
    let cut = Instant::now();
    net.path_down(0).unwrap();
    std::thread::sleep(Duration::from_millis(2500));
    assert!(
        !kernel || has_endpoint(net.server(), "198.18.0.2"),
        "the server's daemon removed the endpoint of a link that lost carrier: {:?}",
        d.lines()
            .iter()
            .map(|(_, v)| v.to_string())
            .collect::<Vec<_>>()
    );
    let after = upload.bytes_to(announced, cut + Duration::from_millis(500), Instant::now());
    assert!(
        after > 0,
        "the subflow over path 1 to the server's path-0 address stopped when path 0 went"
    );
    let summary = upload.finish();
    assert!(summary.verified == Some(true), "byte-exact: {summary:?}");
    net.path_up(0).unwrap();
    let (stopped, _) = d.stop();
    stopped.unwrap();
}

/// The failover proof: the daemon removes the endpoint of a NO-CARRIER link
/// within a second, the transfer goes on byte-exact with no stall of a second, and the
/// same connection carries bytes on path 1 again within 2 s of the link's return.
/// A server announces only the addresses its MPTCP listeners take joins on: a service
/// bound to one address (here a VIP on `lo`) resets every join to the others, and
/// each reset costs a client with laminar endpoints one of its paths for the
/// connection's life (the chaos soak's connections lost their paths that way).
#[test]
fn pm_server_announces_only_where_its_listeners_take_joins() {
    listener_bound_announcements(Kind::Kernel);
}

#[test]
fn pm_userspace_server_announces_only_where_its_listeners_take_joins() {
    listener_bound_announcements(Kind::Userspace);
}

fn listener_bound_announcements(kind: Kind) {
    let net = testnet(None, Endpoints::None);
    let server = net.server();
    ip(
        server.name(),
        &["addr", "add", "198.18.100.2/32", "dev", "lo"],
    );
    let state = state_dir("listener-bound");
    std::fs::create_dir_all(&*state).unwrap();
    let config = state.join("pm.toml");
    std::fs::write(
        &config,
        "role = \"server\"\nipv6 = false\nrequire_default_route = false\ninclude = [\"p*\"]\n",
    )
    .unwrap();
    let mut d = PmDaemon::start(
        server.name(),
        kind,
        options(&state.join("state"), config.to_str()),
    );
    d.ready();
    let kernel = kind == Kind::Kernel;
    // No MPTCP listener yet: announced.
    assert!(
        !kernel || has_endpoint(server, "198.18.0.2"),
        "{:?}",
        endpoints(server)
    );
    let since = d.lines().len();
    let bound = server
        .run(|| mptcp_net::ListenConfig::new().listen("198.18.100.2:7000"))
        .unwrap()
        .expect("listen on the VIP");
    let (_, v) = d.wait_for("not_announced", since, Duration::from_secs(6), |v| {
        v["event"] == "not_announced"
    });
    let skipped = v["skipped"].as_array().expect("skipped").clone();
    let mut withheld: Vec<&str> = skipped
        .iter()
        .map(|s| s["address"].as_str().unwrap())
        .collect();
    withheld.sort();
    assert_eq!(withheld, ["198.18.0.2", "198.18.1.2"], "{v}");
    let reason = skipped[0]["reason"].as_str().unwrap();
    assert!(
        reason.contains("198.18.100.2:7000") && reason.contains("0.0.0.0"),
        "{reason}"
    );
    if kernel {
        assert!(
            soon(|| !has_endpoint(server, "198.18.0.2") && !has_endpoint(server, "198.18.1.2")),
            "{:?}",
            endpoints(server)
        );
    }
    // The service rebinds to the wildcard: announced again.
    drop(bound);
    let since = d.lines().len();
    let _wildcard = server
        .run(|| mptcp_net::ListenConfig::new().listen("0.0.0.0:7000"))
        .unwrap()
        .expect("listen on the wildcard");
    let (_, v) = d.wait_for("announced again", since, Duration::from_secs(6), |v| {
        v["event"] == "not_announced" && v["skipped"].as_array().is_some_and(|a| a.is_empty())
    });
    assert!(v["skipped"].as_array().unwrap().is_empty());
    if kernel {
        assert!(
            soon(|| has_endpoint(server, "198.18.0.2") && has_endpoint(server, "198.18.1.2")),
            "{:?}",
            endpoints(server)
        );
    }
    let (stopped, _) = d.stop();
    stopped.unwrap();
}

#[test]
fn pm_failover_no_carrier_during_a_transfer() {
    let o = failover_scenario(Manager::Ours);
    eprintln!("mptcp pm run: {}", o.line());
    assert!(o.verified, "byte-exact: {o:?}");
    assert!(
        o.removal.is_some_and(|d| d < Duration::from_secs(1)),
        "{o:?}"
    );
    assert!(o.stall_ms < 1000.0, "{o:?}");
    assert!(
        o.path1_back.is_some_and(|d| d < Duration::from_secs(2)),
        "{o:?}"
    );
}

/// The same with mptcpd, recorded side by side (perf/RESULTS.md and the mptcp-pm
/// crate docs): mptcpd forgets a link that loses carrier without removing its
/// endpoint (its issues #263, #281, #282, #334), so the endpoint stays.
#[test]
fn pm_failover_side_by_side_with_mptcpd() {
    let o = failover_scenario(Manager::Mptcpd);
    eprintln!("mptcpd addr_adv: {}", o.line());
    assert!(o.verified, "byte-exact: {o:?}");
    assert_eq!(
        o.removal, None,
        "mptcpd left the endpoint of a NO-CARRIER link in place: {o:?}"
    );
}

/// A server resets the subflows its peer replaced. The client (its `--userspace`
/// daemon re-opens a subflow that was reset) loses its path-1 subflow with the RST
/// dropped on the way, as over a path that died: the server never hears of it and,
/// having nothing to send on it, would keep it for the connection's life, holding one
/// of the connection's places for joins. The client joins again over path 1; once
/// the old subflow has heard nothing for 6 s while the new one carries the upload,
/// the server's daemon resets it.
#[test]
fn pm_server_resets_the_subflows_its_peer_replaced() {
    replaced_subflow(Kind::Kernel);
}

/// The same with `--userspace` on the server.
#[test]
fn pm_userspace_server_resets_the_subflows_its_peer_replaced() {
    replaced_subflow(Kind::Userspace);
}

/// The server's subflows from `addr`: (local, remote) of each.
fn server_subflows_from(net: &TestNet, addr: IpAddr) -> Vec<(SocketAddr, SocketAddr)> {
    net.server()
        .run(|| {
            mptcp_netlink::connections()
                .unwrap()
                .into_iter()
                .flat_map(|c| c.subflows)
                .filter(|s| s.remote.ip() == addr)
                .map(|s| (s.local, s.remote))
                .collect()
        })
        .unwrap()
}

fn replaced_subflow(kind: Kind) {
    let net = testnet(Some(20), Endpoints::None);
    let state = state_dir("replaced-subflow");
    std::fs::create_dir_all(&*state).unwrap();
    let server_cfg = state.join("server.toml");
    std::fs::write(
        &server_cfg,
        "role = \"server\"\nipv6 = false\nrequire_default_route = false\n",
    )
    .unwrap();
    let client_cfg = state.join("client.toml");
    std::fs::write(
        &client_cfg,
        "role = \"client\"\nipv6 = false\nrequire_default_route = false\n",
    )
    .unwrap();
    let mut server = PmDaemon::start(
        net.server().name(),
        kind,
        options(&state.join("server"), server_cfg.to_str()),
    );
    server.ready();
    let mut client = PmDaemon::start(
        net.client().name(),
        Kind::Userspace,
        options(&state.join("client"), client_cfg.to_str()),
    );
    client.ready();

    let path1 = ipaddr("198.18.1.1");
    let upload = Upload::start(&net, 20);
    assert!(
        upload
            .wait_until(Duration::from_secs(10), |u| {
                u.bytes_on(path1, u.started, Instant::now()) > 0
            })
            .is_some(),
        "no subflow over path 1 carried bytes"
    );
    let old: Vec<u16> = upload.ports_on(path1);
    assert!(!old.is_empty());
    // The client's path-1 subflow goes, and nothing of it reaches the server any
    // more, its RST included, as over a path that died: the client's packets of that
    // subflow are dropped, and so are the server's to it (which would draw a RST).
    let client_ns = net.client().name().to_string();
    let run = |args: &[&str]| {
        let out = net
            .client()
            .command("iptables")
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "iptables {args:?} in {client_ns}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    for port in &old {
        let port = port.to_string();
        run(&[
            "-w", "-A", "OUTPUT", "-p", "tcp", "--sport", &port, "-j", "DROP",
        ]);
        run(&[
            "-w", "-A", "INPUT", "-p", "tcp", "--dport", &port, "-j", "DROP",
        ]);
    }
    let out = net
        .client()
        .command("ss")
        .args(["-K", "-t", "src", "198.18.1.1"])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ss -K: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let reset_at = Instant::now();
    assert!(
        upload
            .wait_until(Duration::from_secs(10), |u| {
                u.ports_on_since(path1, reset_at)
                    .iter()
                    .any(|p| !old.contains(p))
            })
            .is_some(),
        "the client did not join again over path 1: {:?}",
        client
            .lines()
            .iter()
            .map(|(_, v)| v.to_string())
            .collect::<Vec<_>>()
    );
    let stale: Vec<(SocketAddr, SocketAddr)> = server_subflows_from(&net, path1)
        .into_iter()
        .filter(|(_, r)| old.contains(&r.port()))
        .collect();
    assert!(
        !stale.is_empty(),
        "the server heard of the reset after all (the test needs it not to)"
    );
    let (_, report) = server.wait_for("subflow_replaced", 0, Duration::from_secs(30), |v| {
        v["event"] == "subflow_replaced"
            && v["applied"] == true
            && stale.iter().any(|(_, r)| v["remote"] == r.to_string())
    });
    assert!(report["silent_ms"].as_u64().unwrap() >= 6_000, "{report}");
    let deadline = Instant::now() + Duration::from_secs(3);
    while server_subflows_from(&net, path1)
        .iter()
        .any(|s| stale.contains(s))
    {
        assert!(
            Instant::now() < deadline,
            "the replaced subflow is still there"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // Only the replaced ones: the subflow that replaced it is untouched.
    assert!(
        server
            .lines()
            .iter()
            .filter(|(_, v)| v["event"] == "subflow_replaced")
            .all(|(_, v)| stale.iter().any(|(_, r)| v["remote"] == r.to_string())),
        "{:?}",
        server.lines()
    );
    let summary = upload.finish();
    assert!(summary.verified == Some(true), "byte-exact: {summary:?}");
    let _ = client.stop();
    let (status, _) = server.stop();
    assert!(status.is_ok(), "{status:?}");
}
