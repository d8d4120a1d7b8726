//! The one error type of the command, and the exit statuses.
//!
//! Every error is one line on stderr, `mptcp: error: ...`, and exit status 2
//! ([`EXIT_ERROR`]): bad input, a refusal from the kernel (its message says why, e.g.
//! "needs CAP_NET_ADMIN"), or something that could not be checked. Status 1
//! ([`EXIT_PROBLEMS`]) is kept for `doctor` finding a problem, so scripts can tell
//! "the host has a problem" from "the check did not run".

use std::fmt;
use std::io;

/// Success.
pub const EXIT_OK: u8 = 0;
/// `doctor` found a problem.
pub const EXIT_PROBLEMS: u8 = 1;
/// Bad input, an error, or could not check.
pub const EXIT_ERROR: u8 = 2;

/// Why a subcommand failed.
#[derive(Debug)]
pub enum Error {
    /// A message for the operator (one line).
    Message(String),
    /// stdout was closed by its reader (`mptcp monitor | head -1`): not an error to
    /// report, the command just stops.
    BrokenPipe,
}

impl Error {
    /// An error with this message.
    pub fn msg(message: impl fmt::Display) -> Error {
        Error::Message(message.to_string())
    }

    /// An I/O error that happened while doing `context`.
    pub fn io(context: impl fmt::Display, e: io::Error) -> Error {
        Error::Message(format!("{context}: {e}"))
    }

    /// An error writing to stdout.
    pub fn output(e: io::Error) -> Error {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Error::BrokenPipe
        } else {
            Error::io("cannot write the output", e)
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Message(m) => f.write_str(m),
            Error::BrokenPipe => f.write_str("stdout was closed"),
        }
    }
}

impl From<mptcp_netlink::Error> for Error {
    fn from(e: mptcp_netlink::Error) -> Error {
        Error::Message(e.to_string())
    }
}

/// Prints `mptcp: error: ...` on stderr, on one line.
pub fn report(message: &str) {
    let line = one_line(message);
    eprintln!("mptcp: error: {line}");
}

/// Folds a message onto one line: clap's messages span several (the offending
/// arguments on their own line, then a usage block after a blank line); the
/// lines before the first blank one are joined, the rest dropped.
pub fn one_line(message: &str) -> String {
    let message = message.trim_start();
    let message = message.strip_prefix("error:").unwrap_or(message);
    message
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .map(str::trim)
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clap_messages_fold_to_one_line() {
        let clap = "error: the following required arguments were not provided:\n  \
                    <--id <ID>|ADDR>\n\nUsage: mptcp endpoint del <--id <ID>|ADDR>\n\n\
                    For more information, try '--help'.\n";
        assert_eq!(
            one_line(clap),
            "the following required arguments were not provided: <--id <ID>|ADDR>"
        );
        assert_eq!(one_line("plain"), "plain");
    }
}
