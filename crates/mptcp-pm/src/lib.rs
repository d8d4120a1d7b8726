//! `mptcp pm run`: a path-manager daemon that keeps the in-kernel MPTCP path manager's
//! endpoints and limits in step with the host's links, addresses and routes.
#![warn(missing_docs)]
#![forbid(unsafe_code)]

pub mod config;
pub mod host;
pub mod plan;

pub use config::{Config, ConfigError, Role};
pub use host::HostState;
pub use plan::{plan, Action, KernelView, Plan};
pub mod daemon;
pub mod rtnl;
pub mod state;

pub use daemon::{preview, Daemon, Options, Report};
