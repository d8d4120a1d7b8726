//! The Linux MPTCP path manager from Rust, typed: endpoints, limits, the userspace path
//! manager, the event stream; MPTCP connection listing through `sock_diag`; MIB counters
//! and sysctls.
//!
//! [Multipath TCP](https://www.rfc-editor.org/rfc/rfc8684) connections on Linux are
//! steered by a path manager in the kernel, configured over the generic netlink family
//! `mptcp_pm` (what `ip mptcp` and `mptcpd` speak). This crate covers all of it:
//!
//! - [`PathManager`] (blocking) and, with feature `tokio`, `AsyncPathManager`:
//!   endpoints (add, delete, get, list, flush, change flags), limits, and the userspace
//!   path manager's per-connection commands (announce, remove, create and destroy
//!   subflows);
//! - [`Events`] (a blocking iterator) and, with feature `tokio`, `EventStream` (a
//!   `futures_core::Stream`): every path-manager event as a typed [`Event`];
//! - [`connections`]: the namespace's MPTCP sockets with their `mptcp_info` (fallback
//!   flag included) and their subflows;
//! - [`Counters`] (`MPTcpExt` in `/proc/net/netstat`) and [`sysctl`] (`net.mptcp.*`).
//!
//! Everything works on the network namespace of the calling thread: a handle opened on a
//! thread that entered a namespace (`setns`) keeps working on that namespace.
//!
//! ```no_run
//! use mptcp_netlink::{EndpointFlags, NewEndpoint, PathManager};
//!
//! let pm = PathManager::open()?;
//! let ep = pm.add_endpoint(&NewEndpoint::new("198.18.1.1".parse()?).flags(EndpointFlags::SUBFLOW))?;
//! println!("{ep}"); // 198.18.1.1 id 1 subflow
//! println!("{}", pm.limits()?); // add_addr_accepted 0 subflows 2
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! # Layers
//!
//! [`codec`] is the sans-I/O part: it builds and parses the `mptcp_pm` attributes, events
//! and the MPTCP parts of `sock_diag`, is tested on byte fixtures and fuzzed, and never
//! panics on input. Message framing uses rust-netlink's `netlink-packet-core` and
//! `netlink-packet-generic`; sockets are `netlink-sys`'s.
//!
//! # Errors
//!
//! Arguments are checked before anything is sent ([`Error::Invalid`]: id 0, limits above
//! 8, a port without `signal`, an unknown flag, ...). Kernel refusals come typed, with the
//! kernel's extended-ack message when it gave one: [`Error::PermissionDenied`] ("needs
//! CAP_NET_ADMIN"), [`Error::Exists`], [`Error::NotFound`], [`Error::FamilyNotFound`]
//! ("kernel without MPTCP path manager"), [`Error::Kernel`].
//!
//! # Decisions where the kernel interface is silent
//!
//! - `ADD_ADDR` does not answer with the endpoint: [`PathManager::add_endpoint`] lists the
//!   endpoints afterwards and returns the one it added (by id, or by address and port).
//! - The kernel deletes endpoints by id only: [`PathManager::delete_endpoint_by_address`]
//!   looks the ids up first and deletes every endpoint with that address.
//! - `SET_FLAGS` sets `backup` and `fullmesh` together, as given; other flags cannot
//!   change and are refused before sending.
//! - The kernel reports an unknown endpoint id as `EINVAL` "address not found": that, and
//!   any `EINVAL` whose message says "not found", is [`Error::NotFound`].
//! - Event addresses are `SocketAddr`s; an address sent without its port gets port 0.
//!   `server_side` is true if either the `SERVER_SIDE` attribute or the event flag says
//!   so.
//! - Every wait for the kernel is bounded: a request's answer within 5 s, an event wait
//!   by the caller's timeout.
//! - A connection's subflows are the TCP sockets whose MPTCP ULP token
//!   (`MPTCP_SUBFLOW_ATTR_TOKEN_LOC`) is the connection's `mptcpi_token`.
//! - `struct mptcp_info` is parsed by `mptcp-net` (one parser for the workspace).
//!
//! # Features
//!
//! - `tokio`: `AsyncPathManager` and `EventStream`.
//! - `serde`: `Serialize` for the data types.
#![warn(missing_docs)]
#![forbid(unsafe_code)]
#![cfg_attr(docsrs, feature(doc_cfg))]

#[cfg(feature = "tokio")]
mod asynk;
pub mod codec;
mod counters;
mod diag;
mod error;
mod events;
mod filter;
pub mod mib;
pub mod netns;
mod ops;
mod pm;
mod socket;
pub mod sysctl;

#[cfg(feature = "tokio")]
pub use asynk::{AsyncPathManager, EventStream};
pub use codec::diag::SubflowFlags;
pub use codec::{
    Endpoint, EndpointFlags, Event, EventFlags, EventKind, InterfaceRef, Limits, NewEndpoint,
    NewSubflow, ResetReason, MAX_LIMIT,
};
pub use counters::Counters;
pub use diag::{abort_subflow, connections, listeners, Connection, Subflow};
pub use error::Error;
pub use events::Events;
pub use filter::{AddrFilter, ConnectionFilter};
pub use mptcp_net::{MptcpInfo, TcpState};
pub use pm::PathManager;
