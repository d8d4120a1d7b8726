//! The balancer side of an MPTCP server fleet, behind `mptcp lb run`.
//!
//! A layer-4 balancer (ECMP anycast, a NAT balancer, IPVS, Katran, a cloud NLB) picks
//! a backend by hashing each SYN's 5-tuple. An MPTCP connection's first subflow is
//! ordinary TCP to the VIP and lands well; every MP_JOIN from the client's other
//! address is hashed anew, reaches a backend that does not know its token, and is
//! reset (`MPJoinNoTokenFound`). Measured on `mptcp_testnet::Fleet` (3 backends,
//! stock client): most connections never get their second path.
//!
//! This crate keeps the balancer's own kernel machinery (nftables, policy routing,
//! conntrack, an ECMP route) in step with the backends so that every subflow reaches
//! its connection's backend:
//!
//! - **Join ports.** Each backend runs `mptcp pm run --role server --vip VIP
//!   --join-port P`: it sets the MP_CAPABLE "C" flag (clients must not join the VIP)
//!   and announces VIP:P. The balancer sends VIP:P to that backend: an nftables map
//!   `VIP . P -> mark`, a policy rule `fwmark mark lookup table`, and the table's
//!   route `VIP via backend`.
//! - **Pinning.** Every connection to a VIP gets its backend's mark in conntrack (the
//!   next hop the ECMP route chose, in route mode; the `dnat` target, in nat mode), so
//!   backends can be drained, added or removed (SIGHUP) without moving a live
//!   connection: draining takes a backend out of the hash for new connections only.
//! - **Token steering** (crate `mptcp-steer`): for stock clients, a tc program on the
//!   client-facing interfaces marks each MP_JOIN SYN by its receiver token, from a
//!   map the backends fill over an authenticated UDP registry.
//!
//! # Modes
//!
//! | | route (ECMP anycast) | nat |
//! |---|---|---|
//! | new connections | the operator's multipath route to the VIP (one is made, with `fib_multipath_hash_policy=1`, when there is none) | `dnat` to `jhash(5-tuple) mod N` over the active backends |
//! | backends | hold the VIP on `lo` | own addresses; the VIP on `lo` too for join ports |
//! | join port P of backend k | mark -> policy route to k | the same, plus an identity `dnat` so an operator's NAT chain cannot take it |
//! | drain | its next hop leaves the ECMP route (when the route is ours; a warning otherwise) | it leaves the jhash map |
//!
//! # Decisions
//!
//! - **IPv6 join ports need TCP timestamps off on the backends.** An ADD_ADDR of an
//!   IPv6 address with a port is 30 bytes; beside the 12 bytes of timestamps it does
//!   not fit in TCP's 40 bytes of options, and the kernel never sends it (measured:
//!   0 of 3 connections multipath, no ADD_ADDR sent). `mptcp pm` warns; token
//!   steering needs no port.
//! - **Join ports behind NAT need the VIP on each backend.** The kernel listens for a
//!   port endpoint on VIP:P and refuses an address the host does not hold
//!   (`EADDRNOTAVAIL`), so a join cannot be `dnat`ed to the backend's own address.
//! - **nft and ip, not a netlink crate.** See [`apply`]: nft's own language is its
//!   documented interface and one `nft -f` is one transaction.
//! - Marks `0x4d4c0000 | slot`, tables `19800 + slot`, rule priorities `9000 +
//!   slot`; a backend keeps its slot for the daemon's life.
//!
//! ```no_run
//! use mptcp_lb::{Balancer, Config};
//!
//! let config = Config::from_toml(
//!     "vip = [\"198.18.200.1:80\"]\n\
//!      [[backend]]\naddress = \"198.19.0.2\"\njoin_port = 20000\n\
//!      [[backend]]\naddress = \"198.19.1.2\"\njoin_port = 20001\n",
//!     "lb.toml",
//! )?;
//! let balancer = Balancer::start(config)?; // rules applied
//! println!("{}", serde_json::to_string(&balancer.status())?);
//! balancer.shutdown(); // rules removed
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]

pub mod apply;
pub mod balancer;
pub mod config;
pub mod daemon;
pub mod metrics;
pub mod rules;
pub mod steering;

pub use balancer::{Balancer, Status};
pub use config::{Backend, Config, ConfigError, Mode};
