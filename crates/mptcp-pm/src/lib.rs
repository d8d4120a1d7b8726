//! A path-manager daemon for Linux MPTCP: it keeps the in-kernel path manager's
//! endpoints and limits in step with the host's links, addresses and routes. The
//! engine behind `mptcp pm run` and `mptcp pm plan`.
//!
//! Without a manager, a host only gets extra subflows if someone typed
//! `ip mptcp endpoint add` for each interface, and nothing removes an endpoint when its
//! link dies. This crate watches links, addresses and default routes over rtnetlink
//! and, on every change (and on a periodic resync that repairs drift), makes the
//! kernel's endpoints and limits what the configuration says they should be.
//!
//! ```no_run
//! use std::sync::atomic::AtomicBool;
//! use mptcp_pm::{Config, Daemon, Options};
//!
//! let stop = AtomicBool::new(false); // raise it from a signal handler
//! let mut log = |report: mptcp_pm::Report| println!("{report}");
//! let mut daemon = Daemon::start(Options::new(Config::default()), &mut log)?;
//! daemon.run(&stop, &mut log)?; // until `stop` is raised
//! daemon.shutdown(&mut log)?; // removes its endpoints, puts the limits back
//! # Ok::<(), mptcp_pm::daemon::Error>(())
//! ```
//!
//! # Layers
//!
//! - [`config`]: the TOML configuration, refused with its line and reason before
//!   anything is touched.
//! - [`host`] and [`plan()`]: the desired state as a pure function, host + config +
//!   kernel endpoints -> endpoints (address, id, flags, interface) and limits, each
//!   with its reason, and every skipped address with why; then [`Plan::actions`], the
//!   steps from the kernel's state to it. Unit-tested without a kernel.
//! - [`rtnl`]: snapshots and notifications over rtnetlink (rust-netlink's
//!   `netlink-packet-route` on `netlink-sys`, the socket layer `mptcp-netlink` uses).
//! - [`state`]: the per-namespace lock and memory (`/run/mptcp-pm/net-<inode>.json`).
//! - [`daemon`]: the loop; endpoint and limit changes go through
//!   [`mptcp_netlink::PathManager`].
//!
//! # What it decides, and why
//!
//! - **Which addresses.** Every address of an interface that is administratively up,
//!   has carrier and is operational (or reports no operational state), except
//!   loopback, link-local (169.254/16, fe80::/10), IPv6 unique local (fc00::/7), IPv6
//!   temporary (privacy), tentative (still in duplicate address detection: it gets its
//!   endpoint when DAD is done), DAD-failed and deprecated addresses; each filter can
//!   be turned off. Interfaces matching the exclude list (by default container and VM
//!   bridges and veths: `docker*`, `veth*`, `br-*`, `virbr*`, ...) or outside a
//!   non-empty include list get nothing.
//! - **The default-route rule** (NetworkManager's): an address gets an endpoint only if
//!   its family has a default route through its interface. Unlike NetworkManager, a
//!   default route in *any* table counts, because multi-homed hosts put each uplink's
//!   default route in its own table for source routing (which MPTCP subflows need);
//!   `require_default_route = false` turns the rule off. Where mptcpd gives up waiting
//!   for a route after about 30 ms, a route that appears later is a change like any
//!   other and is acted on when it comes.
//! - **Flags.** Role `client`: `subflow`. Not `laminar` beside it, although Linux
//!   6.18 knows it: the kernel then counts an endpoint again in a connection's
//!   `local_addr_used` each time it opens a subflow from it towards an address the
//!   peer announced (even while the count already holds it), and removing the endpoint
//!   takes only one back. After a few subflows lost and announcements received
//!   again the count passes `local_addr_max` (measured: 4 of 3, two endpoints in
//!   use), and from then on the connection gets no subflow from any endpoint, not
//!   even after the endpoints are removed and added back (the chaos soak's
//!   connections left with no subflow and `local_addr_used` 3 of 3 through every
//!   re-arm). With `subflow` alone the count stays right and a re-arm brings the
//!   subflows back. Subflows towards announced addresses then leave from the address
//!   the routes pick; to follow them from every path (a balancer's join port) give
//!   the interfaces `fullmesh` by a rule. A rule may still ask for `laminar` (tried;
//!   on `EINVAL` the daemon drops it for good and says so). Role `server`: `signal`.
//!   A per-interface rule (first match by name glob) replaces them and sets a
//!   priority and per-family switches: `backup` on a costly link, which mptcpd's single
//!   global flag set cannot express. `signal` with `fullmesh`, `fullmesh` without
//!   `subflow` and `implicit` are refused at start.
//! - **Link state.** On a client, a link that loses carrier (NO-CARRIER, its address
//!   still there) or goes down loses its endpoints at once, so the kernel closes
//!   those subflows and connections carry on over the others; when it comes back the
//!   endpoints come back (with the ids they had) and the kernel opens subflows on
//!   live connections again. mptcpd forgets such a link without removing its
//!   endpoint (its issues #263, #281, #282, #334), leaving subflows on a dead path.
//!   Except when every link a client holds endpoints on is lost at once (a
//!   blackout, a single-homed host off its network): there is no other link to
//!   carry on over, and removing them would close every subflow of every
//!   connection, the initial ones included. A connection left with none cannot get
//!   one back once its peer has closed its side (the kernel refuses joins to an
//!   MPTCP socket that is no longer established: the chaos soak's uploads whose
//!   answer was on the way when the links went), so the endpoints stay, and the
//!   subflows carry on when a link returns; those of links still lost then go.
//!   A server keeps the `signal` endpoints it holds through a link's loss, for as
//!   long as the address is there: a host accepts its addresses on any interface and
//!   answers by its routes, so clients can reach that address over the other links,
//!   and removing the endpoint (RM_ADDR) would close those healthy subflows too (the
//!   chaos soak found connections left with none). A dead link's address is not
//!   announced anew, and subflows that did cross the dead link are left to the
//!   kernel, which stops using them after a few retransmission timeouts.
//! - **What a server announces.** A join is a SYN to the announced address and the
//!   connection's port, which only a listener bound to that address or to the
//!   wildcard takes. A server whose MPTCP services are bound to one address (a VIP on
//!   `lo`, a container's address) would have every join to its other addresses
//!   reset, and each reset costs a client with `laminar` endpoints one of its paths
//!   for the rest of the connection. So the server role announces an address only
//!   when every MPTCP listener takes joins on it (`[::]` takes IPv4 too; none
//!   listening yet announces, as the service may start later); the listeners are
//!   read every 2 s, and the addresses left out are reported once
//!   ([`Report::NotAnnounced`]), with the listeners that refuse them. An interface
//!   rule that says `signal` is obeyed as written.
//! - **Subflows a client replaced.** A client that loses a path closes its subflow
//!   over it and, once the path is back, joins again between the same two addresses;
//!   the RST of the close died with the path, and a server with nothing to send on the
//!   old subflow keeps it for the connection's life, holding one of the 8 places for
//!   joins (the chaos soak found up to 63 connections at 8, refusing joins, one with
//!   five subflows between the same two addresses). In both modes the server role
//!   resets (`SOCK_DESTROY`, as `ss -K`) a subflow that has heard nothing from the
//!   peer for 6 s while another of the same connection, between the same two
//!   addresses, heard from it within 2 s; checked every 2 s (`--userspace`: every
//!   sweep), each reset reported ([`Report::SubflowReplaced`]). A silent subflow
//!   alone on its addresses (a backup, an idle connection) is never touched.
//! - **Subflows the kernel does not re-open.** The in-kernel path manager opens a
//!   subflow from each endpoint once per connection; one that dies while its
//!   endpoint stays (a reset, a middlebox stripping MPTCP, a server giving up on it)
//!   is never opened again (mptcp_net-next #440), and a connection that lost them all
//!   waits forever with its data queued (the chaos soak: 70 to 84 of the 91 failures
//!   after a blackout of a 10-minute run). Only an endpoint's removal re-arms it. So
//!   a client (the in-kernel mode, and `--userspace` while connections an in-kernel
//!   run left live) looks every 2 s: an endpoint that a connection with no
//!   established subflow has lacked for a while, or that one which still moves has
//!   lost (having had a subflow from it), is removed and added again at once; the
//!   kernel then opens subflows from it on every connection that lacks one. The
//!   other connections' subflows from that address close and re-open meanwhile, so
//!   the in-kernel mode waits long (10 s for a connection with no subflow, at most
//!   every 30 s an endpoint; 30 s and 120 s for one that still moves), `--userspace`
//!   less (3 s and 10 s; 10 s and 60 s: only the connections it keeps endpoints for
//!   use them); stuck connections get one endpoint a round, and a connection 3
//!   rounds without recovering (its far end gone) is left alone. Each one reported
//!   ([`Report::Rearmed`]). Measured on mptcp-testnet (`cargo nextest run -p
//!   mptcp-pm-daemon rearm`): a connection left with no subflow given one 12 s after
//!   in the in-kernel mode, 6 s after under `--userspace`.
//! - **Ownership.** Only endpoints this daemon created are ever changed or removed
//!   (their ids are kept in the state file, so a restarted daemon adopts them);
//!   endpoints made by hand or by another tool are left alone, counted against the
//!   kernel's 8, and an address one of them holds is not doubled. A kernel-made
//!   `implicit` endpoint for an address the daemon wants is replaced in place.
//! - **More than 8 candidates.** Highest rule priority first, then each interface's
//!   first address of each family before any second one (NetworkManager's
//!   preference), then interface index; the rest are reported once, not on every
//!   resync.
//! - **Limits**, which NetworkManager never sets and mptcpd nudges by one per address:
//!   a client gets `subflows` = `add_addr_accepted` = the number of `subflow`
//!   endpoints (its own and others', at most 8); a server gets `subflows` 8 (it
//!   accepts the joins its clients choose to open; capping it lower silently loses
//!   paths) and `add_addr_accepted` the number of its `subflow` endpoints (usually 0).
//!   Raised limits are applied before new endpoints, so the kernel can open their
//!   subflows at once. `[limits]` fixes either value; `manage = false` leaves both.
//! - **Another manager.** It refuses to start when another `mptcp pm run` holds the
//!   namespace (an `flock` on the state file) or when NetworkManager or mptcpd runs in
//!   the same network namespace (`--force` overrides), because two managers fight
//!   over the same table.
//! - **rp_filter.** Strict reverse-path filtering (1) drops replies to subflows that
//!   leave by another interface: it is reported; with `--fix-rp-filter` the
//!   interface's value is set to 2 as NetworkManager does (the effective value is the
//!   larger of `all` and the interface's own, so this is enough).
//! - **Exit.** On SIGTERM or SIGINT it removes its endpoints and puts back the limits
//!   it found at start, unless `--keep` (or `--once`, which sets and exits).
//! - **Notifications only trigger snapshots.** The watcher keeps no state of its own:
//!   any link, address or default-route notification makes the daemon take a fresh
//!   snapshot (after a 30 ms settle, bounded), so a lost notification (`ENOBUFS`)
//!   costs one extra snapshot, never a wrong picture.
//!
//! # Measured (kernel 6.18, 2 cores; `cargo nextest run -p mptcp-cli --test pm`)
//!
//! A client with two 20 Mbit/s paths uploading for 6 s; at 1.5 s the peer end of path
//! 1 goes down (the client's link becomes NO-CARRIER), at 3.5 s it comes back. The
//! kernel's endpoint table is watched every 10 ms; three runs each:
//!
//! | | `mptcp pm run` | mptcpd 0.12 (addr_adv, `subflow`) |
//! |---|---|---|
//! | endpoint of the dead link | removed after 45-57 ms | never removed (stale) |
//! | longest stall at the receiver | 74-616 ms | 824-995 ms |
//! | throughput over the run | 28.6-29.5 Mbit/s | 26.0-28.0 Mbit/s |
//! | bytes on path 1 again after the link's return | 42-506 ms | 127-566 ms (its subflow never closed) |
//! | byte-exact | yes | yes |
//!
//! A third path plugged in at run time got its endpoint, and a live connection a
//! subflow over it, 53 ms after the link came up.
//!
//! # Per-connection policies: the userspace mode
//!
//! `mptcp pm run --userspace` switches the namespace to the userspace path manager
//! (`net.mptcp.path_manager=userspace`, or `pm_type=1` before 6.15) for the daemon's
//! life, puts the old value back on exit (or on the next run's exit after a crash:
//! the value is kept in the state file), and refuses to start when the namespace is
//! already `userspace` (another userspace path manager, such as mptcpd with sspi,
//! drives it). Each connection gets a policy from the `[userspace]` rules (remote
//! address or prefix, remote port, local port; default `aggregate`), and the
//! [`engine`] (sans-I/O, replayed from recorded sequences in its tests) turns events,
//! the usable paths and `sock_diag` measurements into `SUBFLOW_CREATE`,
//! `SUBFLOW_DESTROY`, `SET_FLAGS` (MP_PRIO), `ANNOUNCE` and `REMOVE`; its module docs
//! give every rule and threshold. `mptcp pm status` shows each live connection's
//! policy, subflows, the path carrying traffic, and what the engine last did and why.
//!
//! ```toml
//! [userspace]
//! default_policy = "aggregate"   # aggregate | handover | interactive | single
//! hold_time = 2                  # handover: seconds of health before moving back
//! [[userspace.rule]]
//! policy = "interactive"
//! remote_port = 22
//! [[userspace.rule]]
//! policy = "handover"
//! remote = "198.18.0.0/15"
//! primary = "wl*"
//! ```
//!
//! Measured on mptcp-testnet (two 20 Mbit/s paths, kernel 6.18;
//! `cargo nextest run -p mptcp-cli --test pm_userspace --no-capture`):
//!
//! | scenario | userspace `aggregate` | in-kernel PM, static endpoints |
//! |---|---|---|
//! | path 1's link down 1.5 s, then up | bytes on path 1 again 60 ms after, over a new subflow; longest stall 405 ms | 523 ms after, over the old subflow once its retransmission timer fires; stall 817 ms |
//! | path 1's subflow reset (`ss -K`), path fine | re-created, bytes again after 584 ms (0.5 s backoff) | never (mptcp_net-next #440); the daemon re-arms its endpoint (above) |
//!
//! - `handover`: the backup path carried 0.00-0.17 % while the primary worked; primary
//!   cut: the longest stall 31-63 ms; primary back: traffic on it again 3.3 s after
//!   its link returned (the 2 s hold time, then MP_PRIO).
//! - `interactive`: an 8 KiB request/response exchange moved off a path 0.4 s after
//!   its rate was cut to 1 Mbit/s.
//! - 10,000 short connections in 1.1 s through the daemon: all forgotten, the
//!   daemon's RSS 16.3 MB after 1,000 and 17.6 MB after 10,000.
//!
//! Found on 6.18: the kernel does not take the backup bit from `SUBFLOW_CREATE` (the
//! subflow's `sub_established` says not backup), so the engine marks it with MP_PRIO
//! right after; and `SET_FLAGS` right after `sub_established` can answer "subflow not
//! found" (the subflow is not yet joined to its connection), so a refused change is
//! asked again on the next pass.
//!
//! # Limits of this version
//!
//! - The userspace mode drives the connections of the userspace path manager, those
//!   made before it started too (a restart; found every 2 s in a `sock_diag` sweep,
//!   as are any whose events were lost, and brought to their policy at once).
//!   Connections made under the in-kernel path manager stay with it (the kernel
//!   fills `mptcp_info`'s limits only for those, and refuses commands for them).
//! - A connection keeps the path manager it was made under, so a switch of mode
//!   hands the live ones over. The in-kernel mode drives the connections a
//!   `--userspace` run left with the same engine until they close (subscribed to
//!   path-manager events meanwhile: a server's kernel refuses every join to a
//!   userspace-PM connection while nobody listens to them). `--userspace` keeps the
//!   endpoints an in-kernel run of ours handed over following the links while
//!   connections of the in-kernel path manager live (the kernel re-opens their
//!   subflows only when an endpoint comes back), re-arms them for those connections
//!   as the in-kernel mode does (above), then releases them.
//! - Endpoints carry no port (a `signal` endpoint with a port makes the kernel listen
//!   on it; configure those by hand, the daemon leaves them alone).
//! - A default route is judged per interface and family, not by a route lookup from
//!   the address (policy rules are not evaluated).
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod config;
pub mod daemon;
mod driver;
pub mod engine;
pub mod host;
pub mod plan;
pub mod publish;
mod reap;
mod rearm;
pub mod rtnl;
pub mod state;
pub mod userspace;

pub use config::{Config, ConfigError, Role};
pub use daemon::{preview, Daemon, Options, Report};
pub use host::HostState;
pub use plan::{plan, Action, KernelView, Plan};
