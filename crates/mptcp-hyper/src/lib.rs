//! HTTP over Multipath TCP, one line away: a connector for hyper-util's
//! `Client`, and servers for axum and hyper whose handlers see each
//! connection's MPTCP status and subflows.
//!
//! Go's `net/http` speaks MPTCP once its `Dialer` and `ListenConfig` do. In
//! Rust most HTTP goes through hyper, so this crate is that switch for
//! hyper, on top of [`mptcp_net`]: [`MptcpConnector`] dials with an
//! [`mptcp_net::Dialer`], [`serve`] and [`serve_hyper`] serve on a listener
//! from [`mptcp_net::ListenConfig`], and [`MptcpConnInfo`] tells both ends
//! what the connection is doing.
//!
//! # Client
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # use std::future::IntoFuture;
//! # let listener = mptcp_net::ListenConfig::new().listen_async("127.0.0.1:0").await?;
//! # let addr = listener.local_addr()?;
//! # tokio::spawn(mptcp_hyper::serve(listener, axum::Router::new()
//! #     .route("/", axum::routing::get(|| async { "hello" }))).into_future());
//! use http_body_util::Empty;
//! use hyper::body::Bytes;
//! use mptcp_hyper::{MptcpConnInfo, MptcpConnector};
//!
//! let client = mptcp_hyper::client::<Empty<Bytes>>(MptcpConnector::new());
//! let res = client.get(format!("http://{addr}/").parse()?).await?;
//! let info = res.extensions().get::<MptcpConnInfo>().expect("set by MptcpConnector");
//! println!("{}: {info}, {} subflow(s)", res.status(), info.subflows()?.len());
//! # assert!(info.multipath_tcp());
//! # Ok(()) }
//! ```
//!
//! `mptcp_hyper::client` is `Client::builder(TokioExecutor::new()).build(connector)`:
//! build your own for HTTP/2 (`.http2_only(true)`, h2c with prior
//! knowledge), pool settings and so on. The [`Dialer`](mptcp_net::Dialer)
//! inside the connector ([`MptcpConnector::with_dialer`]) sets the MPTCP
//! policy (on, off, required), the connect timeout, the local address and
//! the socket hook. Every response carries the connection's
//! [`MptcpConnInfo`] in its extensions: the status when it was dialed
//! (MPTCP, fell back to TCP, plain TCP), the addresses, and, while the
//! connection is open, its live subflows.
//!
//! # Server
//!
//! ```no_run
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> std::io::Result<()> {
//! use axum::{routing::get, Router};
//! use mptcp_hyper::MptcpConnInfo;
//!
//! async fn am_i(info: MptcpConnInfo) -> String {
//!     let subflows = info.subflows().map(|s| s.len()).unwrap_or(0);
//!     format!("{}: {}, {subflows} subflow(s)\n", info.peer_addr(), info.status())
//! }
//!
//! let listener = mptcp_net::ListenConfig::new().listen_async("[::]:8080").await?;
//! mptcp_hyper::serve(listener, Router::new().route("/", get(am_i))).await
//! # }
//! ```
//!
//! [`serve`] is [`axum::serve()`] over an [`MptcpListener`] with
//! `into_make_service_with_connect_info::<MptcpConnInfo>()`: handlers take
//! `MptcpConnInfo` (or `ConnectInfo<MptcpConnInfo>`, the way
//! `ConnectInfo<SocketAddr>` gives the peer address), HTTP/1 and h2c HTTP/2
//! are both served, and `.with_graceful_shutdown(signal)` works as in axum.
//! [`serve_hyper`] does the same for a plain hyper service, with the info in
//! `req.extensions()`. Listen on the wildcard address on hosts with several
//! addresses: clients' extra subflows to the other addresses reach the
//! listener by address.
//!
//! # TLS
//!
//! TLS goes on top of the MPTCP stream, unchanged. A client stacks
//! hyper-rustls's `HttpsConnector` on the connector, which it accepts as
//! its inner connector; the info comes through (hyper-rustls forwards the
//! inner `connected()`), and HTTP/2 is chosen by ALPN:
//!
//! ```no_run
//! # async fn get(rustls_client_config: rustls::ClientConfig) -> Result<(), Box<dyn std::error::Error>> {
//! use http_body_util::Empty;
//! use hyper::body::Bytes;
//! use hyper_util::{client::legacy::Client, rt::TokioExecutor};
//! use mptcp_hyper::{MptcpConnInfo, MptcpConnector};
//!
//! let mut mptcp = MptcpConnector::new();
//! mptcp.enforce_http(false); // the TLS layer hands us https:// URIs
//! let https = hyper_rustls::HttpsConnectorBuilder::new()
//!     .with_tls_config(rustls_client_config)
//!     .https_or_http()
//!     .enable_all_versions()
//!     .wrap_connector(mptcp);
//! let client = Client::builder(TokioExecutor::new()).build::<_, Empty<Bytes>>(https);
//! let res = client.get("https://localhost:8443/".parse()?).await?;
//! println!("{:?}", res.extensions().get::<MptcpConnInfo>());
//! # Ok(()) }
//! ```
//!
//! A server accepts an [`MptcpStream`] from [`MptcpListener::accept`],
//! keeps [`MptcpStream::info`], and hands the stream to tokio-rustls's
//! `TlsAcceptor` (it is a tokio `AsyncRead + AsyncWrite`). The `tls`
//! example does both ends with a self-signed certificate.
//!
//! # reqwest
//!
//! reqwest (0.12 and 0.13) cannot run over these sockets. Its only
//! connector hook, `ClientBuilder::connector_layer`, wraps reqwest's own
//! connector: the layered service must return reqwest's `Conn`, whose
//! fields are private, so a layer can delay, limit or time out connects but
//! cannot supply its own socket; reqwest has no socket factory or socket
//! hook either (`tcp_nodelay`, `local_address`, `interface`, keep-alive and
//! user-timeout setters only). The shortest ways, then:
//!
//! - in Rust: hyper-util's `Client` with [`MptcpConnector`], as above
//!   (`client.get(uri)`, `client.request(req)`; bodies with
//!   `http-body-util`), plus hyper-rustls for HTTPS. The `http_client`
//!   example is a complete GET over either scheme;
//! - without touching the program: `mptcpize run ./program` (from mptcpd)
//!   makes every TCP socket of an unmodified binary MPTCP via `LD_PRELOAD`.
//!
//! # Decisions
//!
//! - **One stream type for both sides.** [`MptcpStream`] implements tokio's
//!   `AsyncRead`/`AsyncWrite` *and* hyper's `rt::Read`/`rt::Write` with
//!   hyper-util's `Connection`, so the connector's output, axum's listener
//!   IO and tokio-rustls's input are the same type and no `TokioIo` wrapper
//!   is needed around it.
//! - **Live introspection without keeping sockets open.** The stream lives
//!   in an `Arc` that only the [`MptcpStream`] owns; [`MptcpConnInfo`] holds
//!   a `Weak`. A handler can read the subflows while the connection is open
//!   (the upgrade pins the descriptor for one `getsockopt`), an info kept
//!   longer never delays the close, and after it the live methods fail with
//!   `NotConnected`. No duplicated descriptor (which would hold the
//!   connection open and double the descriptors in use), no `unsafe`.
//! - **Status at setup, and now.** [`MptcpConnInfo::status`] is read once,
//!   at accept or connect (one `getsockopt`); [`MptcpConnInfo::current_status`]
//!   asks again, for the rare fallback after the handshake.
//! - **Timeouts include name resolution**, as Go's `Dialer.Timeout` does: the
//!   dialer's timeout bounds resolve + connect; connects share what is left.
//! - **`http://` only by default**, like hyper-util's `HttpConnector`, so a
//!   plain client never sends clear text to an `https://` port; a TLS layer
//!   needs [`MptcpConnector::enforce_http(false)`](MptcpConnector::enforce_http).
//! - **axum's own server loop.** [`serve`] is `axum::serve` with an
//!   [`axum::serve::Listener`] implementation, not a copy of it: axum's
//!   HTTP/1 + HTTP/2 handling, upgrades and graceful shutdown apply as they
//!   are. Accept errors are ridden out as axum does (skip a connection lost
//!   in the queue; log and retry after 1 s otherwise, e.g. `EMFILE`).
//! - **Graceful shutdown closes the listener first** (as Go's
//!   `Server.Shutdown`): new connections and new MPTCP subflows are refused
//!   while open connections finish on the subflows they have.
//! - **Minimum Rust 1.85**, which hyper-util and hyper-rustls need (the
//!   workspace's 1.80 is `mptcp_net`'s).
//!
//! # Features
//!
//! - `axum` (default): [`serve`], [`MptcpListener`] as an axum listener,
//!   [`MptcpConnInfo`] as `ConnectInfo` and as a handler argument.
//! - `serde`: `Serialize` for [`MptcpConnInfo`] (status and addresses).
//! - `tonic`: gRPC over MPTCP. [`MptcpStream`] is tonic's `Connected` (a
//!   handler finds [`MptcpConnInfo`] in the request's extensions) and
//!   `MptcpListener::incoming()` feeds `Server::serve_with_incoming`; a client
//!   channel is `Endpoint::connect_with_connector(MptcpConnector::new())`. See
//!   `examples/grpc.rs`.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod connector;
mod info;
mod server;
mod stream;
#[cfg(feature = "axum")]
mod with_axum;
#[cfg(feature = "tonic")]
mod with_tonic;

pub use connector::{client, MptcpConnector};
pub use info::MptcpConnInfo;
pub use server::{serve_hyper, serve_hyper_with_graceful_shutdown, MptcpListener};
pub use stream::MptcpStream;
#[cfg(feature = "axum")]
pub use with_axum::{serve, MissingConnInfo, Serve};
#[cfg(feature = "tonic")]
pub use with_tonic::Incoming;

/// The socket layer this crate dials and listens with.
pub use mptcp_net;
