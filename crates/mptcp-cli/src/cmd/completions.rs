//! `mptcp completions SHELL`: a completion script on stdout (`--json` does not
//! apply: the script is the output).

use clap::CommandFactory;

use crate::cli::{Cli, CompletionsArgs};
use crate::error::{Error, EXIT_OK};
use crate::output::Output;

/// Prints the completion script for `args.shell`.
pub fn run(args: &CompletionsArgs, out: &Output) -> Result<u8, Error> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "mptcp", &mut script);
    out.print(&String::from_utf8_lossy(&script))?;
    Ok(EXIT_OK)
}
