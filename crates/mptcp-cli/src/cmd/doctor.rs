//! `mptcp doctor`.

use crate::error::Error;
use crate::output::Output;

/// Runs `doctor`.
pub fn run(_args: &crate::cli::DoctorArgs, _out: &Output) -> Result<u8, Error> {
    Err(Error::msg("not yet"))
}
