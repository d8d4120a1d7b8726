//! `mptcp conns`.

use crate::error::Error;
use crate::output::Output;

/// Runs `conns`.
pub fn run(_args: &crate::cli::ConnsArgs, _out: &Output) -> Result<u8, Error> {
    Err(Error::msg("not yet"))
}
