//! `mptcp monitor`.

use crate::error::Error;
use crate::output::Output;

/// Runs `monitor`.
pub fn run(_args: &crate::cli::MonitorArgs, _out: &Output) -> Result<u8, Error> {
    Err(Error::msg("not yet"))
}
