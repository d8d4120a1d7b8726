//! Run unmodified programs with Multipath TCP: the engine of `mptcp run`.
//!
//! Most programs will never link an MPTCP library: curl, nginx, Python
//! services, Go binaries. This crate makes their TCP stream sockets MPTCP
//! from the outside, in one of two ways ([`Mode`]):
//!
//! - **preload**: `LD_PRELOAD` of `libmptcp_preload.so` (the
//!   `mptcp-preload` crate of this workspace), which wraps libc's `socket()`
//!   and, unlike `mptcpize`, also `setsockopt()`: an option MPTCP refuses
//!   (`TCP_USER_TIMEOUT`, `TCP_MD5SIG`, ...) on a socket not yet connected
//!   turns it into a TCP socket in place instead of failing the program.
//!   `mptcp run` execs the program (it is not in the way afterwards).
//! - **trace**: a seccomp filter plus a ptrace supervisor that rewrites
//!   `socket()`'s protocol argument (see [`trace`]); reaches static binaries
//!   and programs that make raw system calls (Go), at the cost of two stops
//!   per TCP socket created. It swaps a socket to TCP for a refused option
//!   too ([`swap`]), for the options Linux 6.18 refuses.
//!
//! [`choose`] picks one from the program's ELF file ([`exe::inspect`]):
//! preload for dynamically linked programs, trace for static ones (no
//! `PT_INTERP`) and set-ID ones (the loader ignores `LD_PRELOAD` for them).
//! Both ways set `GODEBUG=multipathtcp=1` (unless `GODEBUG` already mentions
//! it) so Go programs' default dialers and listeners use MPTCP too.
//!
//! ```no_run
//! use std::ffi::OsString;
//! use mptcp_run::{Outcome, Requested, Roles};
//!
//! // `None`: no embedded preload library, look for it on disk only.
//! let plan = mptcp_run::plan("curl".as_ref(), Requested::Auto, None)?;
//! println!("{}: {} ({})", plan.program.path.display(), plan.choice.mode, plan.choice.reason);
//! let args = [OsString::from("http://198.18.0.2/")];
//! // In preload mode this replaces the current process and only returns on error.
//! match mptcp_run::run(&plan, "curl".as_ref(), &args, Roles::Both)? {
//!     Outcome::Exited(code) => println!("exit status {code}"),
//!     Outcome::Signaled(signal) => println!("killed by signal {signal}"),
//! }
//! # Ok::<(), mptcp_run::Error>(())
//! ```
//!
//! [`mod@unit`] writes a systemd drop-in that runs a service with the preload
//! library.
//!
//! # Decisions
//!
//! - The library is named by `MPTCP_PRELOAD_LIB`, or found next to the running
//!   binary (where a workspace `cargo build` puts it), in the system's
//!   `/usr/lib/<triplet>/mptcp/`, or else is the copy the caller embeds (the
//!   `mptcp` CLI does), written to a private runtime file (see [`preload`]).
//! - `--dial-only`/`--listen-only` ([`Roles`]) are a swap to TCP at
//!   `connect()`/`listen()` (the preload library's, told by `MPTCP_RUN_ONLY`;
//!   in trace mode the supervisor's, stopping at those calls) plus Go's
//!   `GODEBUG` digit (3 dialers, 2 listeners).
//! - In trace mode every `socket(AF_INET|AF_INET6, SOCK_STREAM, 0|TCP)` is
//!   converted, including in Go programs that turn MPTCP off in their Dialer:
//!   that is what "reach the programs preload cannot" means; use preload mode
//!   to respect such a choice.
//! - An eBPF way (`fmod_ret` on `update_socket_protocol`) is not built: the
//!   machines this was written on refuse tracing BPF programs.

#![warn(missing_docs)]

use std::ffi::{OsStr, OsString};
use std::fmt;
use std::io;
use std::os::unix::process::CommandExt;
use std::process::Command;

pub mod env;
pub mod exe;
pub mod filter;
mod mode;
pub mod preload;
pub mod swap;
mod sys;
pub mod trace;
pub mod unit;

pub use exe::Program;
pub use mode::{choose, Choice, Mode, Requested};
pub use sys::reraise;

/// Which sockets stay MPTCP.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Roles {
    /// Dialing and listening sockets.
    #[default]
    Both,
    /// Only sockets that connect (`--dial-only`): listeners stay TCP.
    DialOnly,
    /// Only sockets that listen (`--listen-only`): dials stay TCP.
    ListenOnly,
}

/// How the program ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It exited with this status.
    Exited(i32),
    /// A signal killed it.
    Signaled(i32),
}

impl Outcome {
    /// The status a shell reports: the exit status, or 128 + the signal.
    pub fn shell_status(&self) -> i32 {
        match *self {
            Outcome::Exited(code) => code,
            Outcome::Signaled(signal) => 128 + signal,
        }
    }
}

/// Why `mptcp run` could not do what it was asked.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// No executable file by that name (a shell's status 127).
    #[error("{}: command not found", .0.to_string_lossy())]
    NotFound(OsString),
    /// It exists but cannot be executed (a shell's status 126).
    #[error("cannot execute {}: {source}", .program.to_string_lossy())]
    CannotExecute {
        /// The program.
        program: OsString,
        /// What exec said.
        source: io::Error,
    },
    /// The preload library cannot be found or used.
    #[error("{0}")]
    Library(String),
    /// Bad input (a unit name, a combination of options).
    #[error("{0}")]
    Input(String),
    /// Not possible here.
    #[error("{0}")]
    Unsupported(String),
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The error.
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn io(context: impl fmt::Display, source: io::Error) -> Error {
        Error::Io {
            context: context.to_string(),
            source,
        }
    }

    fn spawn(e: io::Error) -> Error {
        if e.raw_os_error() == Some(libc::EPERM) {
            return Error::Unsupported(format!(
                "cannot trace the program: ptrace or seccomp was refused ({e}); inside a \
                 container, allow ptrace (CAP_SYS_PTRACE, a seccomp profile that permits it), \
                 or use --mode preload"
            ));
        }
        Error::io("cannot start the program", e)
    }

    /// The exit status a shell would give for this error: 127 not found, 126
    /// cannot execute, `None` for the others.
    pub fn shell_status(&self) -> Option<u8> {
        match self {
            Error::NotFound(_) => Some(127),
            Error::CannotExecute { .. } => Some(126),
            _ => None,
        }
    }
}

/// What `mptcp run` will do for a program: the program, the mode and why,
/// and the library (preload mode).
#[derive(Clone, Debug)]
pub struct Plan {
    /// The program, inspected.
    pub program: Program,
    /// The mode and why.
    pub choice: Choice,
    /// The preload library and where it came from (preload mode only).
    pub library: Option<preload::Library>,
}

/// Inspects `program` and chooses the mode (what `--check` prints); in preload
/// mode finds the library ([`preload::find_library`], which may write
/// `embedded` to a private runtime file).
///
/// # Errors
/// [`Error::NotFound`]; [`Error::Library`] when preload is chosen and the
/// library cannot be found.
pub fn plan(
    program: &OsStr,
    requested: Requested,
    embedded: Option<&preload::Embedded>,
) -> Result<Plan, Error> {
    let inspected = exe::inspect(program)?;
    let root = rustix::process::geteuid().is_root();
    let choice = choose(requested, &inspected, root);
    let library = match choice.mode {
        Mode::Preload => Some(preload::find_library(embedded)?),
        Mode::Trace => None,
    };
    Ok(Plan {
        program: inspected,
        choice,
        library,
    })
}

impl Plan {
    /// The command [`run`] starts: `program args` with the environment of the
    /// plan (`LD_PRELOAD` in preload mode, `GODEBUG`, `MPTCP_RUN_ONLY`, see
    /// [`env::changes`]), read from this process's environment.
    ///
    /// For a caller that wants to keep its process (a supervisor, a test):
    /// in preload mode, spawning this command is [`run`] without the exec;
    /// in trace mode, pass it to [`supervise`].
    ///
    /// ```no_run
    /// use mptcp_run::{Mode, Requested, Roles};
    ///
    /// let plan = mptcp_run::plan("curl".as_ref(), Requested::Preload, None)?;
    /// assert_eq!(plan.choice.mode, Mode::Preload);
    /// let status = plan
    ///     .command("curl".as_ref(), &["-sS".into(), "http://198.18.0.2/".into()], Roles::Both)
    ///     .status()?;
    /// println!("curl ended with {status}");
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn command(&self, program: &OsStr, args: &[OsString], roles: Roles) -> Command {
        let mut command = Command::new(program);
        command.args(args);
        let changes = env::changes(
            roles,
            self.library.as_ref().map(|l| l.path.as_path()),
            |k| std::env::var_os(k),
        );
        env::apply(&mut command, &changes);
        command
    }
}

/// Runs `program` with `args` as `plan` says.
///
/// Preload mode execs the program in place of this process: on success it
/// does not return. Trace mode supervises it and returns how it ended.
///
/// # Errors
/// [`Error::NotFound`]/[`Error::CannotExecute`] when exec fails, and the
/// supervisor's errors.
pub fn run(
    plan: &Plan,
    program: &OsStr,
    args: &[OsString],
    roles: Roles,
) -> Result<Outcome, Error> {
    let mut command = plan.command(program, args, roles);
    match plan.choice.mode {
        Mode::Preload => {
            let e = command.exec();
            Err(exec_error(program, e))
        }
        Mode::Trace => supervise(command, roles),
    }
}

/// Runs `command` in trace mode (see [`trace`]) and returns how the process it
/// starts ended, once every process it traced has exited. The command keeps
/// what the caller gave it (arguments, environment, standard streams, working
/// directory); build it with [`Plan::command`] for the plan's environment.
///
/// The supervisor waits for any child of this process (`waitpid(-1)`) and
/// passes the signals `kill(2)` sends to this process (TERM, INT, HUP, QUIT,
/// USR1, USR2) to the program: call it from a process that starts no other
/// children meanwhile.
///
/// # Errors
/// [`Error::NotFound`]/[`Error::CannotExecute`] when exec fails,
/// [`Error::Unsupported`] when ptrace or seccomp is refused or the
/// architecture is not x86_64, [`Error::Io`] for the other failures.
pub fn supervise(command: Command, roles: Roles) -> Result<Outcome, Error> {
    let program = command.get_program().to_os_string();
    trace::run(command, roles).map_err(|e| match e {
        Error::Io { source, .. } if is_exec_error(&source) => exec_error(&program, source),
        other => other,
    })
}

/// Errors of exec itself (EPERM is not one: in trace mode it is ptrace or
/// seccomp being refused, see [`Error::spawn`]).
fn is_exec_error(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOENT | libc::EACCES | libc::ENOEXEC | libc::ENOTDIR)
    )
}

fn exec_error(program: &OsStr, e: io::Error) -> Error {
    if e.kind() == io::ErrorKind::NotFound {
        Error::NotFound(program.to_os_string())
    } else {
        Error::CannotExecute {
            program: program.to_os_string(),
            source: e,
        }
    }
}

// The preload library's rules, compiled here to compare them with mptcp-net's
// (the library does not link mptcp-net, to stay small).
#[cfg(test)]
#[allow(dead_code)]
#[path = "../../mptcp-preload/src/policy.rs"]
mod preload_policy;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_preload_library_falls_back_as_mptcp_net_does() {
        use mptcp_net::Unavailable;
        use preload_policy::{fallback, Fallback};
        for errno in 1..200 {
            let net = Unavailable::from_socket_error(&io::Error::from_raw_os_error(errno));
            let expected = match net {
                None => Fallback::Fail,
                Some(u) if u.is_permanent() => Fallback::TcpForever,
                Some(_) => Fallback::Tcp,
            };
            assert_eq!(fallback(errno), expected, "errno {errno}");
        }
    }

    #[test]
    fn shell_statuses() {
        assert_eq!(Outcome::Exited(3).shell_status(), 3);
        assert_eq!(Outcome::Signaled(15).shell_status(), 143);
        assert_eq!(Error::NotFound("x".into()).shell_status(), Some(127));
        assert_eq!(Error::Input("x".into()).shell_status(), None);
    }
}
