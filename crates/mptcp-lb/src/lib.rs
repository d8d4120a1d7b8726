//! The balancer side of an MPTCP server fleet, behind `mptcp lb run`.
#![warn(missing_docs)]

pub mod apply;
pub mod balancer;
pub mod config;
pub mod daemon;
pub mod rules;

pub use balancer::{Balancer, Status};
pub use config::{Backend, Config, ConfigError, Mode};
