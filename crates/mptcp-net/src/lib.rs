//! Multipath TCP for Rust, in one line: dial and listen with MPTCP and get
//! the standard [`std::net::TcpStream`] / [`tokio::net::TcpStream`] back.
//!
//! [Multipath TCP](https://www.rfc-editor.org/rfc/rfc8684) (RFC 8684) lets one
//! TCP connection use several paths at once (Wi-Fi and cellular, two uplinks,
//! two NICs) and survive the loss of one. Linux has it since 5.6: a program
//! only has to open its socket with `IPPROTO_MPTCP` instead of TCP. This
//! crate makes that choice for you, safely, the way Go's `net` package does
//! (`Dialer.SetMultipathTCP`, `ListenConfig.SetMultipathTCP`,
//! `TCPConn.MultipathTCP`, `GODEBUG=multipathtcp`), and tells you whether
//! MPTCP is really on the wire.
//!
//! # Quick start
//!
//! ```
//! use std::io::{Read, Write};
//! use mptcp_net::{Dialer, ListenConfig, MptcpExt};
//!
//! let listener = ListenConfig::new().listen("127.0.0.1:0")?;
//! let mut client = Dialer::new().dial(listener.local_addr()?)?;
//! let (mut server, peer) = listener.accept()?;
//! client.write_all(b"ping")?;
//! let mut buf = [0; 4];
//! server.read_exact(&mut buf)?;
//! println!("{peer}: {} (client side: {})", server.mptcp_status()?, client.mptcp_status()?);
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! With tokio (feature `tokio`):
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use mptcp_net::{Dialer, ListenConfig, MptcpExt};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let listener = ListenConfig::new().listen_async("127.0.0.1:0").await?;
//! let addr = listener.local_addr()?;
//! let server = tokio::spawn(async move {
//!     let (mut stream, _) = listener.accept().await?;
//!     let mut buf = [0; 4];
//!     stream.read_exact(&mut buf).await?;
//!     stream.write_all(&buf).await?;
//!     std::io::Result::Ok(stream.mptcp_status()?)
//! });
//! let mut client = Dialer::new().dial_async(addr).await?;
//! client.write_all(b"ping").await?;
//! let mut buf = [0; 4];
//! client.read_exact(&mut buf).await?;
//! println!("client: {}, server: {}", client.mptcp_status()?, server.await??);
//! # Ok(()) }
//! ```
//!
//! # Policy
//!
//! Each [`Dialer`] and [`ListenConfig`] follows the process default unless
//! told otherwise with `set_multipath_tcp(bool)`; `multipath_tcp()` reports
//! the resolved intent. The process default comes from the environment
//! variable [`MPTCP_NET`](ENV_VAR), read once, with Go's meanings (`0|off`,
//! `1|on`, `2|listen` for listeners only, `3|dial` for dialers only). Unset,
//! both use MPTCP: see [`ProcessDefault`] for why. `require_multipath_tcp(true)`
//! makes a dial or listen fail, naming the cause and the fix, where it would
//! otherwise fall back to TCP.
//!
//! # Fallback, and what is never done
//!
//! A dial or listen uses plain TCP instead of MPTCP only when
//!
//! - creating the MPTCP socket fails with `ENOPROTOOPT`
//!   (`net.mptcp.enabled=0`), `EPROTONOSUPPORT` (kernel without MPTCP),
//!   `EINVAL` (kernel older than 5.6), or `EACCES`/`EPERM` (a security
//!   policy). `EPROTONOSUPPORT` and `EINVAL` are remembered for the life of
//!   the process, so later dials skip the attempt; `ENOPROTOOPT` is asked
//!   again each time, since the sysctl is per network namespace and can change
//!   (the failed `socket()` is the cheapest possible check);
//! - or the socket hook fails with `EOPNOTSUPP`/`ENOPROTOOPT` on the MPTCP
//!   socket (an option MPTCP does not support): one retry with a TCP socket,
//!   with a `tracing` event saying why.
//!
//! A connect error is never followed by a second connect: a refused or
//! timed-out dial is returned as it is, once. (Go re-dials with TCP after any
//! MPTCP error; the `mptcp` crate even returns `Ok` for a refused async
//! connect.) When the *peer* or a middlebox does not speak MPTCP, the kernel
//! carries on as TCP inside the MPTCP socket: [`MptcpExt::mptcp_status`] says
//! [`MptcpStatus::FellBack`].
//!
//! # Dial order: Happy Eyeballs
//!
//! A [`Dialer`] whose name resolves to one family tries the addresses one
//! after the other, sharing the connect timeout among those left (Go's
//! rule). When they hold both IPv6 and IPv4, it does what Go's `net.Dialer`
//! does by default, Happy Eyeballs (RFC 8305): the IPv6 addresses are dialed
//! in order, the IPv4 ones start racing them after
//! [`DEFAULT_FALLBACK_DELAY`] (300 ms) or as soon as IPv6 has failed, the
//! first connection made wins and the other attempt is closed. Every attempt
//! is MPTCP under the rules above. Go picks the family of the first resolved
//! address as primary; here IPv6 always is (the same thing for the usual
//! RFC 6724-sorted answers: see [`Dialer::set_fallback_delay`], which also
//! turns the race off). [`Dialer::dial_async`] races two futures on the
//! caller's task; the blocking [`Dialer::dial`] races on its own thread with
//! non-blocking sockets and one `poll(2)` (a hand-written call in the
//! crate's `sys` module: two file descriptors and one system call do not
//! justify a polling crate), Linux only; elsewhere it stays serial.
//!
//! # Status
//!
//! [`MptcpExt`] works on std and tokio streams and listeners and anything
//! [`AsFd`](std::os::fd::AsFd): `multipath_tcp()` (Go parity) and
//! `mptcp_status()` (plain TCP / MPTCP active / fell back). The kernel
//! interface is picked once per process by trying it ([`Detection`]):
//! `TCP_IS_MPTCP` (6.10+), else the `MPTCP_INFO` errno test (5.16+), else
//! `SO_PROTOCOL`. [`support()`] tells whether this host and network
//! namespace can create MPTCP sockets, and if not why.
//!
//! And the whole picture, typed and cheap enough to poll:
//! [`MptcpExt::mptcp_info`] (one `getsockopt`: token, subflow counts,
//! sequence numbers, bytes sent/received/retransmitted, ...) and
//! [`MptcpExt::subflows`] (one `getsockopt` in the common case: each
//! subflow's id, addresses, RTT, cwnd, rates and byte counters). The byte
//! layouts live in the sans-I/O [`info::wire`] module.
//!
//! ```
//! use mptcp_net::{Dialer, ListenConfig, MptcpExt};
//!
//! let listener = ListenConfig::new().listen("127.0.0.1:0")?;
//! let stream = Dialer::new().dial(listener.local_addr()?)?;
//! if let Some(info) = stream.mptcp_info()? {
//!     println!("token {:08x}, subflows {:?}", info.token, info.subflows_total);
//! }
//! for sf in stream.subflows()? {
//!     println!("subflow {:?}: {:?} -> {:?}, rtt {:?}", sf.id, sf.local, sf.remote, sf.tcp.rtt);
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Where MPTCP needs the network's help
//!
//! MPTCP opens extra subflows only where the kernel path manager is told to:
//! endpoints (`ip mptcp endpoint add ADDR dev IF subflow` on clients,
//! `signal` on servers) and limits (`ip mptcp limits set subflows N`). With
//! no endpoint a connection is MPTCP with one subflow. Extra subflows are
//! opened once the connection is fully established, which on the client
//! takes a first exchange of data. Servers should listen on the wildcard
//! address so joins to their other addresses find the listener. The kernel
//! path manager does not react to a link going down: the subflow on a dead
//! path lives until TCP gives up on it (`net.ipv4.tcp_retries2`) or the
//! endpoint is removed (which network managers and mptcpd do).
//!
//! # Half-closing: after the FIN, no new path
//!
//! Once a side has sent its end of stream (`shutdown(Write)` or `close`,
//! MPTCP's DATA_FIN), the kernel (6.18 included) neither opens nor accepts a
//! new subflow for that connection, and closes it when its last subflow goes.
//! Bytes written just before the FIN over a path that fails at that moment
//! can then only arrive over that same path, if it comes back. Where an
//! answer matters, wait until the peer has acknowledged it before shutting
//! down: `mptcp_info()`'s [`bytes_unacked`](MptcpInfo::bytes_unacked) is 0
//! when it has.
//! (`mptcp proxy` does so on its MPTCP legs.)
//!
//! ```no_run
//! use std::io::Write;
//! use std::net::Shutdown;
//! use std::time::{Duration, Instant};
//! use mptcp_net::{Dialer, MptcpExt};
//!
//! let mut stream = Dialer::new().dial("198.18.0.2:7000")?;
//! stream.write_all(b"the last answer")?;
//! let deadline = Instant::now() + Duration::from_secs(60);
//! while let Some(info) = stream.mptcp_info()? {
//!     if info.bytes_unacked() == 0 || Instant::now() >= deadline {
//!         break;
//!     }
//!     std::thread::sleep(Duration::from_millis(10));
//! }
//! stream.shutdown(Shutdown::Write)?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! # Features
//!
//! - `tokio`: [`Dialer::dial_async`], [`ListenConfig::listen_async`].
//! - `serde`: `Serialize` for the status and introspection types.
//!
//! # Platforms
//!
//! Linux only speaks MPTCP here. Elsewhere the crate compiles, dials and
//! listens with plain TCP, reports [`MptcpStatus::PlainTcp`], a required
//! dial or listen fails with [`Unavailable::NotLinux`], and the blocking
//! [`Dialer::dial`] tries the addresses serially (no Happy Eyeballs).
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod connect;
mod dialer;
pub mod duration;
#[cfg(target_os = "linux")]
mod errno;
pub mod info;
#[cfg(target_os = "linux")]
mod introspect;
mod keepalive;
mod listen;
mod policy;
mod socket;
pub mod socket_options;
mod status;
mod support;
#[cfg(target_os = "linux")]
mod sys;

#[cfg(all(feature = "test-seam", target_os = "linux"))]
#[doc(hidden)]
pub mod seam;

pub use dialer::{Dialer, DEFAULT_FALLBACK_DELAY};
pub use info::{MptcpInfo, SubflowInfo, TcpState, TcpStats};
pub use keepalive::{KeepAliveConfig, DEFAULT_KEEP_ALIVE, DEFAULT_KEEP_ALIVE_COUNT};
pub use listen::{ListenConfig, DEFAULT_BACKLOG};
pub use policy::{process_default, PolicySource, ProcessDefault, ENV_VAR};
pub use status::{detection, Detection, MptcpExt, MptcpStatus};
pub use support::{support, Support, Unavailable, DISABLED_MEMORY};

/// The `socket2` crate this API takes in socket hooks.
pub use socket2;
