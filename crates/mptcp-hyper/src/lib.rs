//! HTTP over Multipath TCP, one line away: a connector for hyper-util's
//! `Client`, and servers for axum and hyper whose handlers see each
//! connection's MPTCP status and subflows.
//!
//! TODO: crate docs.
#![warn(missing_docs)]
#![cfg_attr(docsrs, feature(doc_cfg))]

mod connector;
mod info;
mod server;
mod stream;
#[cfg(feature = "axum")]
mod with_axum;

pub use connector::{client, MptcpConnector};
pub use info::MptcpConnInfo;
pub use server::{serve_hyper, serve_hyper_with_graceful_shutdown, MptcpListener};
pub use stream::MptcpStream;
#[cfg(feature = "axum")]
pub use with_axum::{serve, MissingConnInfo, Serve};

pub use mptcp_net;
