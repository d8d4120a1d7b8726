//! A reproducible multipath test network in Linux network namespaces, for MPTCP
//! tests, benchmarks and demos.
//!
//! Real kernel, real namespaces, real veth links: [`TestNet`] builds a client and a
//! server namespace (and optionally a router between them) joined by 1 to 8 paths,
//! each with its own rate limit, plus MPTCP limits and endpoints, a link that can fail
//! and come back, and a middlebox that strips the MPTCP option. [`Netns`] is the
//! building block: a named namespace that runs Rust closures inside itself, with
//! per-namespace sysctls and [`Counters`]. [`Fleet`] puts a client in front of a
//! layer-4 balancer with several backends behind it, to test MPTCP servers as they
//! are deployed.
//!
//! Everything needs root and iproute2 (`ip`, `tc`); the middlebox also needs
//! iptables, the fleet nftables. [`preflight`] and [`Fleet::preflight`] say what is
//! missing. Every namespace has a unique name
//! (`mpt-<pid>-<n>-<label>`), so tests run in parallel, also across processes, and is
//! removed on drop, also when a test panics.
//!
//! ```no_run
//! use std::io::{Read, Write};
//! use std::net::{SocketAddr, TcpListener, TcpStream};
//! use mptcp_testnet::TestNet;
//!
//! let net = TestNet::builder().paths(2).rate_mbit(20).build()?;
//! let server = SocketAddr::new(net.server().addr(0).expect("IPv4 is on"), 5201);
//! // A socket keeps the namespace it was created in, whatever thread uses it later.
//! let listener = net.server().run(|| TcpListener::bind(server))??;
//! std::thread::scope(|s| {
//!     s.spawn(|| {
//!         let (mut conn, _) = listener.accept()?;
//!         conn.write_all(b"hello")
//!     });
//!     let mut reply = String::new();
//!     net.client()
//!         .run(|| TcpStream::connect(server)?.read_to_string(&mut reply))??;
//!     println!("{reply} over {net}");
//!     Ok::<_, Box<dyn std::error::Error>>(())
//! })?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # The network
//!
//! Path `i` (0-based) is its own veth pair, or with a router two veth pairs:
//!
//! | | client | router (client side) | router (server side) | server |
//! |---|---|---|---|---|
//! | interface | `p<i>` | `c<i>` | `s<i>` | `p<i>` |
//! | interface index | 100+i | 200+i | 300+i | 400+i |
//! | IPv4, direct | `198.18.<i>.1/24` | | | `198.18.<i>.2/24` |
//! | IPv4, router | `198.18.<i>.1/24` | `198.18.<i>.254/24` | `198.19.<i>.254/24` | `198.19.<i>.2/24` |
//! | IPv6, direct | `2001:db8:<i>::1/64` | | | `2001:db8:<i>::2/64` |
//! | IPv6, router | `2001:db8:<i>::1/64` | `2001:db8:<i>::fe/64` | `2001:db8:1<i>::fe/64` | `2001:db8:1<i>::2/64` |
//!
//! The two ends of a veth get different interface indexes on purpose: with equal
//! ones (the default in fresh namespaces) the kernel's link watch applies the carrier
//! change up to a second late, and until then IPv6 neighbour discovery stalls the
//! first connection for a full second. [`TestNetBuilder::build`] and
//! [`TestNet::path_up`] also wait until every end is operational.
//!
//! Only the benchmarking range 198.18.0.0/15 and the documentation prefix
//! 2001:db8::/32 are used, and only inside the namespaces. IPv6 addresses are added
//! with `nodad` and DAD is off, so they work at once.
//!
//! **Routing.** A path is a pipe: whatever the client sends from its path-`i` address
//! leaves through path `i`, and whatever is sent to that address comes back through
//! path `i`. The client has one policy-routing table per path (`ip rule from <client
//! addr i> table 100+i`, priority `1000+i`) whose default route goes to the next hop
//! on path `i`: the server's path-`i` address on a direct path, the router's
//! otherwise. So the extra subflow of [`Endpoints::ClientSubflow`], which goes from
//! the client's path-1 address to the server's path-0 address, really crosses path 1
//! (the server accepts it on any interface, and answers through path 1 because the
//! destination is there). The router sends everything that came in from path `i`
//! out through path `i` (`ip rule iif c<i> table 100+i`); the server routes by
//! destination (`198.18.<i>.0/24 via` the router on path `i`). Reverse-path filtering
//! is off in every namespace.
//!
//! **Shaping.** A path with a rate gets a `tbf` qdisc on the egress of both ends of
//! the shaped link: the direct veth, or the router-server veth (the router is the
//! bottleneck, as in a real network; client-router links run at full speed). The
//! bucket is at least 96 KiB, so a 64 KiB GSO/TSO packet passes whole (offloads stay
//! on; `ethtool` is not needed), and the queue holds 50 ms of traffic. This kernel
//! has no `netem`, so there is no delay or loss emulation.
//!
//! **MPTCP.** `net.mptcp.enabled=1` on client and server, the in-kernel path manager,
//! limits `subflows 8 add_addr_accepted 8` on both, and endpoints on paths `1..n` as
//! chosen by [`Endpoints`]: client `subflow` endpoints (default) or server `signal`
//! endpoints. With signal endpoints the server must listen on the wildcard address,
//! else joins to its other addresses find no listener and only one subflow exists.
//! The kernel keeps at most 8 endpoints per namespace, one per extra path and
//! address family: 8 paths with one family, or 5 with both. With both families and
//! signal endpoints, an IPv6 connection also gets IPv4 subflows (the kernel mixes
//! families on a dual-stack socket).
//!
//! **Failure.** [`TestNet::path_down`] cuts a path at the client (its interface
//! goes down; the server keeps its addresses, reachable over the other paths);
//! [`TestNet::path_up`] brings it back and restores the routes.
//!
//! **Middlebox.** [`TestNet::set_strip_mptcp`] strips TCP option 30 with iptables'
//! `TCPOPTSTRIP`, on the router if there is one, else on the server's input.
//!
//! # The fleet
//!
//! [`Fleet`] is a server fleet behind a layer-4 balancer, as MPTCP servers meet it in
//! production: a client namespace with 1 to 4 paths (default 2) to a balancer
//! namespace, and 1 to 8 backends (default 3) behind the balancer, sharing one
//! virtual IP (VIP): `198.18.200.1` and `2001:db8:200::1`. Path `i` and backend `k`:
//!
//! | | client | balancer (client side) | balancer (backend side) | backend `k` |
//! |---|---|---|---|---|
//! | interface | `p<i>` | `c<i>` | `b<k>` | `eth0` |
//! | interface index | 100+i | 200+i | 300+k | 400+k |
//! | IPv4 | `198.18.<i>.1/24` | `198.18.<i>.254/24` | `198.19.<k>.254/24` | `198.19.<k>.2/24` |
//! | IPv6 | `2001:db8:<i>::1/64` | `2001:db8:<i>::fe/64` | `2001:db8:b<k>::fe/64` | `2001:db8:b<k>::2/64` |
//!
//! (`b<k>` in an IPv6 address is hexadecimal: backend 3's subnet is
//! `2001:db8:b3::/64`, and all of them lie in `2001:db8:b0::/44`.)
//!
//! **Client.** As in a [`TestNet`]: one policy-routing table per path (`ip rule from
//! <addr i> table 100+i`) whose default route goes to the balancer on path `i`, the
//! main table's default via path 0, and a `tbf` rate on both ends of a client link
//! when one is set (the same bucket and queue as a test network's path). A path
//! table also holds an `unreachable` default of last resort, so while a path is down
//! ([`Fleet::path_down`]) sends from its address fail at once. MPTCP limits
//! `subflows 8 add_addr_accepted 8`; endpoints on paths `1..` as chosen by
//! [`ClientEndpoints`]: none (default), `subflow` (the stock client: joins to the VIP
//! from each extra path), or `subflow fullmesh` (also joins every announced address
//! from each extra path).
//!
//! **Backends.** A default route via the balancer, so replies go back through it;
//! MPTCP limits `subflows 8 add_addr_accepted 8`, no endpoints.
//!
//! **Balancer.** Forwarding on, reverse-path filtering off. Only the VIP is public,
//! as in real fleets: the nftables table `inet fleet_filter` (forward hook) drops
//! what comes in from the client side (`iifname "c*"`) for a backend subnet
//! (`198.19.0.0/16`, `2001:db8:b0::/44`) unless the balancer's own NAT put it there.
//! The fleet owns no other table name (`fleet_nat` in NAT mode), so a balancer
//! daemon has the rest (`mptcp_lb*`). Two kinds, both the kernel's own machinery
//! (this kernel has no IPVS), with the operator's rules installed unless
//! [`FleetBuilder::stock_balancer`] is off:
//!
//! - [`Balancer::Route`], ECMP anycast: every backend holds the VIP on `lo` (/32 and
//!   /128) and the balancer has one multipath route to it with a next hop per backend
//!   (`ip route replace 198.18.200.1/32 nexthop via 198.19.0.2 dev b0 nexthop ...`),
//!   hashed on the 4-tuple (`net.ipv4.fib_multipath_hash_policy=1` and the IPv6 one,
//!   set in this kind whether or not the route is installed).
//! - [`Balancer::Nat`]: the table `inet fleet_nat` DNATs TCP to the VIP to a backend's
//!   own address, `dnat ip to jhash ip saddr . tcp sport . ip daddr . tcp dport mod N
//!   map { 0 : 198.19.0.2, ... }` (and the same for `ip6`), at the standard `dstnat`
//!   priority, so a daemon's chain with a lower priority number runs first.
//!   Conntrack rewrites the replies. The backends do not hold the VIP unless
//!   [`FleetBuilder::vip_on_backends`] says so.
//!
//! Either way, an MPTCP connection's first subflow reaches a backend like any TCP
//! connection, and every MP_JOIN, having another source address or port, is hashed
//! anew: unless it happens to land on the same backend, that backend does not know
//! its token, counts `MPTcpExt MPJoinNoTokenFound` and resets it. The fleet's tests
//! measure this with a stock client (a `subflow` endpoint on path 1, 20 sequential
//! connections of 100 KB, 3 backends): on kernel 6.18, in 20 runs over both kinds
//! and both families, 10% to 65% of the connections got their second path and the
//! backends counted 7 to 18 `MPJoinNoTokenFound`, one per join sent elsewhere; with
//! one backend every join completes.
//!
//! A fleet needs `nft` (Debian package `nftables`) besides iproute2;
//! [`Fleet::preflight`] says what is missing.
//!
//! # The chaos soak
//!
//! [`soak`] plans a run of the whole toolkit under faults, and the `mptcp-soak`
//! binary (feature `soak`; `scripts/soak --minutes N --seed S` builds and starts it)
//! carries it out against the real `mptcp` binary, whose path it is given, so this
//! crate never depends on the CLI. The network: a [`TestNet`] of three paths (50
//! Mbit/s each by default, no endpoints of its own), a service address on the
//! server's `lo` that the client routes over path 0, else 1, else 2, and an origin
//! host behind the server (a veth `up0`) as the converter's only destination. The
//! daemons: `mptcp pm run` on both hosts (in-kernel, switched to `--userspace` and
//! back at fixed phases), `mptcp proxy` on both hosts (TCP -> proxy -> MPTCP ->
//! proxy -> TCP), a SOCKS5 gateway with `--converter` and a `--convert` converter
//! with `--allow`, and `mptcp exporter` over both namespaces. The clients (200
//! workers by default) run transfers of log-uniform sizes (1 KiB to 50 MiB, capped
//! by the time left at the worker's share of the paths) and request/response loops,
//! half through each pair, every byte checked against a seeded pattern by the far
//! sink (uploads) or the client (responses). The schedule cuts and restores paths,
//! removes and re-adds the client's addresses, blacks out every path at once,
//! changes tbf rates, kills (SIGKILL) and restarts a path manager and the server
//! proxy, and strips the MPTCP option on path 2 (TCPOPTSTRIP on both ends). The
//! kernel's MPTCP blackhole detection is off in both hosts (a blackout is no
//! MPTCP-dropping middlebox, but a SYN dialled across one turned active MPTCP off
//! for the rest of the run).
//!
//! A client fails an operation when no byte of it moved for 60 s. An upload is
//! judged by its bytes reaching the sink: the relays take a whole one into their
//! MPTCP send buffers, so its client may wait for the sink's answer long after its
//! last write, and one of its writes may block for long while the relays' buffers
//! drain; it gives up only once the sink has received nothing of it for 60 s (at
//! most 10 minutes of waiting; those that waited longer than 60 s for the answer
//! and completed are counted, and the longest blocked write is reported apart). A
//! stall is the longest time nothing of an operation moved: a write returning,
//! bytes reaching the sink, bytes of the answer.
//!
//! Outcomes (a table, then one JSON line, on stdout): bytes sent and verified (equal),
//! failures while a path was up (0), failures during a blackout (or within 2 s of
//! its end) and of connections through the killed proxy, failures after a blackout
//! of connections that lived through it, every path back up (counted apart, not yet
//! enforced: MPTCP should have carried them through), and dials that failed while a path was cut
//! or lost its address (counted apart, expected: MPTCP guards established
//! connections, not a handshake), the longest stall, RSS growth of each daemon
//! instance idle after the warm-up against idle after the run (< 5%; after a quarter
//! of the run the workers pause until every daemon is back to its idle descriptors,
//! so both readings are at the same load, none), descriptors when idle again
//! against before the load (< 5%),
//! endpoints left by the path managers once stopped (0, read over netlink; the
//! kernel's own `implicit` ones listed apart), the exporter against the clients
//! (connection for connection: the operations that got through <= the client's
//! MPTCP connects, `MPCapableSYNTX` plus early fallbacks, <= the connections handed
//! to the client daemons; no established connection left), and the converter's
//! dials seen by tcpdump on its uplink (only the origin's sink) while a host outside
//! `--allow` asks it for a trap port every 2 s (always refused). A violated outcome
//! exits 1 and prints the seed and the command that replays the run; the daemons'
//! logs, every operation (`ops.jsonl`), every failed one with its class and the
//! path managers' mode (`failed.jsonl`), the faults as carried out (`events.jsonl`),
//! the MPTCP counters that moved on each host in each second (`counters.jsonl`:
//! refused joins, resets, checksum failures...), every RSS and descriptor sample
//! (`samples.jsonl`) and, when a client gave up waiting (its 60 s timeout), what
//! every connection and subflow of both hosts looked like then (`stall-<s>.txt`,
//! `ss -tinM`, at most 12 a run; with `--sample-every SECS` also every SECS seconds,
//! `sample-<s>.txt`) stay in the run's directory; times in all of them
//! are seconds from the start of the load. Failures with a path
//! up are also split by the path managers' mode when the operation started. The
//! proxies' idle timeout is `--idle-timeout` (20 s by default: short enough for the
//! connections a blackout orphaned to be gone before the memory readings).
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod cmd;
mod counters;
mod error;
mod fleet;
mod netns;
mod paths;
mod preflight;
pub mod soak;
pub mod support;
mod testnet;

pub use counters::Counters;
pub use error::Error;
pub use fleet::{
    Backend, Balancer, ClientEndpoints, Family, Fleet, FleetBuilder, MAX_BACKENDS, MAX_FLEET_PATHS,
};
pub use netns::Netns;
pub use preflight::preflight;
pub use testnet::{Endpoints, Host, TestNet, TestNetBuilder, MAX_PATHS};
