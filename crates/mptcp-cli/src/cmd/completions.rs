//! `mptcp completions SHELL`: a completion script on stdout (`--json` does not
//! apply: the script is the output).

use clap::Args;
use clap::CommandFactory;

use crate::cli::Cli;
use crate::error::{Error, EXIT_OK};
use crate::output::Output;

pub const COMPLETIONS_HELP: &str = "\
Examples:
  mptcp completions bash > /etc/bash_completion.d/mptcp
  mptcp completions zsh > \"${fpath[1]}/_mptcp\"
  mptcp completions fish > ~/.config/fish/completions/mptcp.fish";

/// `mptcp completions`.
#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Prints the completion script for `args.shell`.
pub fn run(args: &CompletionsArgs, out: &Output) -> Result<u8, Error> {
    let mut script = Vec::new();
    clap_complete::generate(args.shell, &mut Cli::command(), "mptcp", &mut script);
    out.print(&String::from_utf8_lossy(&script))?;
    Ok(EXIT_OK)
}
