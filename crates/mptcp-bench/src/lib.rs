//! The engine behind `mptcp bench` and `mptcp demo`.
//!
//! **Bench** is an iperf-like throughput test that sees subflows: a
//! [`Server`] (one MPTCP listener that takes MPTCP and plain TCP clients at
//! once) and a [`Client`] that sends (or, reversed, receives) for a time or
//! a byte count, checks every byte when asked, and reports each interval's
//! throughput in total and per subflow (from the kernel's per-subflow byte
//! counters, through `mptcp_net::MptcpExt::subflows`), then a [`Summary`].
//!
//! ```no_run
//! use mptcp_bench::{Client, ClientOptions, Server};
//!
//! let server = Server::bind("0.0.0.0:5201", false)?;
//! std::thread::spawn(move || server.serve(Some(1), None, &|r| println!("{r:?}")));
//! let mut opts = ClientOptions::new("127.0.0.1:5201".parse().unwrap());
//! opts.duration = Some(std::time::Duration::from_secs(3));
//! opts.verify = true;
//! let summary = Client::connect(&opts)?.run(None, |i| {
//!     println!("{:.1} Mbit/s over {} subflow(s)", i.mbit_per_s, i.subflows.len())
//! })?;
//! println!("{:.1} Mbit/s, MPTCP stayed on: {}", summary.mbit_per_s, summary.mptcp_stayed_on);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! **Demo** ([`demo::run`]) builds a multipath network in network
//! namespaces (mptcp-testnet), measures one TCP connection, then one MPTCP
//! connection over every path, then cuts a path in the middle of an MPTCP
//! transfer, and reports the figures (needs root and iproute2).
//!
//! The wire protocol is in [`proto`]: a 32-byte request, the data, and for
//! uploads a 32-byte result from the server, so the receiver's view (bytes,
//! time, longest stall, verification) is what gets reported.
#![warn(missing_docs)]

mod client;
pub mod demo;
mod pattern;
pub mod proto;
mod report;
mod server;

pub use client::{Cancel, Client, ClientOptions};
pub use pattern::{Pattern, BLOCK_LEN};
pub use report::{Direction, Interval, SubflowSample, Summary};
pub use server::{handle, ConnReport, Server, DEFAULT_PORT};
