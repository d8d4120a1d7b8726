//! Trace mode: the program runs under a seccomp filter that stops it at each
//! TCP stream `socket()` call ([`crate::filter`]), and `mptcp run`, its
//! ptrace supervisor, rewrites the protocol argument to `IPPROTO_MPTCP`
//! before the kernel runs the call. Every other system call runs untouched
//! (but the few named below), so the cost falls on socket creation only
//! (measured in `perf/mptcp-run`: about 20 us per TCP socket).
//!
//! - Follows forks, vforks, clones and execs (`PTRACE_O_TRACEFORK`,
//!   `TRACEVFORK`, `TRACECLONE`, `TRACEEXEC`); `PTRACE_O_EXITKILL`: if `mptcp
//!   run` dies, so do its tracees (a tracee left with the filter and no tracer
//!   would get `ENOSYS` from `socket()`).
//! - Fallback: the rewritten call is followed to its syscall-exit stop; if the
//!   MPTCP socket failed for one of mptcp-net's reasons (`ENOPROTOOPT`,
//!   `EPROTONOSUPPORT`, `EINVAL`, `EACCES`, `EPERM`), the tracee is wound back
//!   over the `syscall` instruction with its original protocol and runs the
//!   call again, as TCP. `EPROTONOSUPPORT`/`EINVAL` stop the rewriting for the
//!   rest of the run. This reads the answer of the kernel and namespace the
//!   program really uses (it may have changed namespace), at the price of one
//!   more stop per socket.
//! - Options MPTCP refuses (`TCP_USER_TIMEOUT`, ...) set on a socket not yet
//!   connected or listening: the filter also stops at those setsockopt()
//!   calls, and if one fails with `ENOPROTOOPT`/`EOPNOTSUPP`, the socket is
//!   swapped for TCP in place and the call runs again ([`crate::swap`]), as
//!   the preload library does.
//! - `--listen-only` (`--dial-only`): the filter also stops at every
//!   connect() (listen()); on a fresh MPTCP socket the call is skipped, the
//!   socket swapped for TCP at the exit stop, and the call run again. Other
//!   connects cost one stop each.
//! - Signals reach the program: signal-delivery stops are resumed with their
//!   signal; signals sent to `mptcp run` with kill(2) (TERM, INT, HUP, QUIT,
//!   USR1, USR2) are passed to the program.
//! - `mptcp run` waits until every traced process has exited (a program that
//!   leaves a daemon behind keeps it waiting), then exits with the status of
//!   the program it started.
//!
//! What it cannot do:
//! - no debugger or `strace` can attach to a traced program (one tracer per
//!   process), and a program that uses ptrace on its own children fails to;
//! - job control stops (`SIGTSTP`, `SIGSTOP`) do not keep the program
//!   stopped: the supervisor resumes group-stops;
//! - sockets made through io_uring (`IORING_OP_SOCKET`) or by the 32-bit ABIs
//!   (i386, x32) are not seen;
//! - the swap to TCP for options MPTCP refuses ([`crate::swap`]) covers the
//!   options Linux 6.18 refuses ([`crate::filter::REFUSED_TCP_OPTIONS`]);
//!   an option only older kernels refuse still fails as under `mptcpize`;
//! - a set-ID program traced by a non-root user runs without its privileges
//!   (the kernel's rule for traced programs, and `PR_SET_NO_NEW_PRIVS`, which
//!   installing a filter without `CAP_SYS_ADMIN` requires);
//! - x86_64 only (the registers of other architectures are not written yet).

use std::collections::HashMap;
use std::io;
use std::process::Command;

use libc::pid_t;
use mptcp_net::Unavailable;

use crate::sys;
use crate::{Error, Outcome, Roles};

/// `IPPROTO_MPTCP`.
const IPPROTO_MPTCP: u64 = 262;
/// `SIGTRAP | 0x80`: a system-call stop under `PTRACE_O_TRACESYSGOOD`.
const SYSCALL_STOP: i32 = libc::SIGTRAP | 0x80;

/// What a `waitpid` status means for a tracee.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Stop {
    /// Exited with this code.
    Exited(i32),
    /// Killed by this signal.
    Killed(i32),
    /// A `PTRACE_EVENT_*` stop.
    Event(i32),
    /// A system-call stop.
    Syscall,
    /// A signal-delivery stop or a group-stop, with this signal.
    Signal(i32),
    /// Anything else (continued).
    Other,
}

/// Decodes a `waitpid` status (pure; tested on made-up statuses).
pub(crate) fn decode(status: i32) -> Stop {
    if libc::WIFEXITED(status) {
        Stop::Exited(libc::WEXITSTATUS(status))
    } else if libc::WIFSIGNALED(status) {
        Stop::Killed(libc::WTERMSIG(status))
    } else if libc::WIFSTOPPED(status) {
        let event = status >> 16;
        let signal = libc::WSTOPSIG(status);
        if event != 0 {
            Stop::Event(event)
        } else if signal == SYSCALL_STOP {
            Stop::Syscall
        } else {
            Stop::Signal(signal)
        }
    } else {
        Stop::Other
    }
}

/// Whether `socket(domain, ty, protocol)` is one to make MPTCP (the filter's
/// rule, checked again on the registers).
pub(crate) fn is_candidate(domain: u64, ty: u64, protocol: u64) -> bool {
    let (domain, ty, protocol) = (
        domain as u32 as i32,
        ty as u32 as i32,
        protocol as u32 as i32,
    );
    (domain == libc::AF_INET || domain == libc::AF_INET6)
        && ty & 0xf == libc::SOCK_STREAM
        && (protocol == 0 || protocol == libc::IPPROTO_TCP)
}

#[derive(Debug, Default)]
struct Tracee {
    /// Past its first stop (exec SIGTRAP for the first process, SIGSTOP for
    /// the ones that follow).
    started: bool,
    pending: Pending,
}

#[derive(Clone, Debug, Default)]
enum Pending {
    #[default]
    None,
    /// Its socket() was rewritten; this was the protocol asked for.
    Rewritten(u64),
    /// Its system call is being run again, as it was, after MPTCP failed or
    /// after a swap to TCP: let its next filter stop pass.
    Retrying,
    /// It is setting an option MPTCP refuses: see how that ends.
    Setsockopt,
    /// Its connect() or listen() on a fresh MPTCP socket was skipped, to swap
    /// the socket at the exit stop and then run the call again with these
    /// registers.
    RoleSwap(Box<sys::Regs>),
}

/// Runs `command` traced and returns how its first process ended.
pub(crate) fn run(mut command: Command, roles: Roles) -> Result<Outcome, Error> {
    if !sys::TRACE_SUPPORTED {
        return Err(Error::Unsupported(
            "trace mode is implemented for x86_64 only; use --mode preload".into(),
        ));
    }
    let root = rustix::process::geteuid().is_root();
    let arch = crate::filter::X86_64;
    // The calls at which a socket's role shows, for the swap of the other role.
    let role_call = match roles {
        Roles::Both => None,
        Roles::DialOnly => Some(arch.nr_listen),
        Roles::ListenOnly => Some(arch.nr_connect),
    };
    let filter = crate::filter::program(arch, role_call);
    let child = sys::spawn_traced(&mut command, filter, !root).map_err(Error::spawn)?;
    let main = child.id() as pid_t;
    drop(child);
    let saved =
        sys::forward_signals(main).map_err(|e| Error::io("cannot set up signal forwarding", e))?;
    let mut supervisor = Supervisor::new(main);
    supervisor.role_call = role_call.map(u64::from);
    let outcome = supervisor.run();
    sys::stop_forwarding(&saved);
    outcome
}

struct Supervisor {
    main: pid_t,
    tracees: HashMap<pid_t, Tracee>,
    outcome: Option<Outcome>,
    /// The kernel has no MPTCP: stop rewriting.
    never: bool,
    /// connect or listen: a fresh MPTCP socket making it becomes TCP first.
    role_call: Option<u64>,
}

impl Supervisor {
    fn new(main: pid_t) -> Supervisor {
        Supervisor {
            main,
            tracees: HashMap::new(),
            outcome: None,
            never: false,
            role_call: None,
        }
    }

    fn run(mut self) -> Result<Outcome, Error> {
        loop {
            let (pid, status) = match sys::wait_any() {
                Ok(x) => x,
                Err(e) if e.raw_os_error() == Some(libc::EINTR) => continue,
                Err(e) if e.raw_os_error() == Some(libc::ECHILD) => break,
                Err(e) => return Err(Error::io("waitpid", e)),
            };
            if let Err(e) = self.handle(pid, decode(status)) {
                // ESRCH: the tracee was killed meanwhile; its exit follows.
                if e.raw_os_error() != Some(libc::ESRCH) {
                    tracing::warn!(pid, error = %e, "ptrace request failed");
                }
            }
        }
        self.outcome
            .ok_or_else(|| Error::Unsupported("the program's exit status was never seen".into()))
    }

    fn handle(&mut self, pid: pid_t, stop: Stop) -> io::Result<()> {
        match stop {
            Stop::Exited(code) => {
                self.tracees.remove(&pid);
                if pid == self.main {
                    self.outcome = Some(Outcome::Exited(code));
                }
                Ok(())
            }
            Stop::Killed(signal) => {
                self.tracees.remove(&pid);
                if pid == self.main {
                    self.outcome = Some(Outcome::Signaled(signal));
                }
                Ok(())
            }
            Stop::Event(libc::PTRACE_EVENT_SECCOMP) => self.on_filter_stop(pid),
            Stop::Event(_) => sys::cont(pid, 0),
            Stop::Syscall => self.on_syscall_exit(pid),
            Stop::Signal(signal) => self.on_signal(pid, signal),
            Stop::Other => Ok(()),
        }
    }

    fn on_signal(&mut self, pid: pid_t, signal: i32) -> io::Result<()> {
        let tracee = self.tracees.entry(pid).or_default();
        if !tracee.started {
            tracee.started = true;
            if pid == self.main {
                sys::set_options(pid)?;
                // The stop after exec under PTRACE_TRACEME.
                let deliver = if signal == libc::SIGTRAP { 0 } else { signal };
                return sys::cont(pid, deliver);
            }
            if signal == libc::SIGSTOP {
                // A new child's first stop.
                return sys::cont(pid, 0);
            }
        }
        if sys::is_group_stop(pid) {
            return sys::cont(pid, 0);
        }
        sys::cont(pid, signal)
    }

    fn on_filter_stop(&mut self, pid: pid_t) -> io::Result<()> {
        let tracee = self.tracees.entry(pid).or_default();
        if matches!(tracee.pending, Pending::Retrying) {
            tracee.pending = Pending::None;
            return sys::cont(pid, 0);
        }
        let mut regs = sys::get_regs(pid)?;
        if regs.nr() == u64::from(crate::filter::X86_64.nr_setsockopt) {
            tracee.pending = Pending::Setsockopt;
            return sys::cont_to_syscall_exit(pid);
        }
        if Some(regs.nr()) == self.role_call {
            let fd = regs.arg(0) as u32 as i32;
            if !crate::swap::is_fresh_mptcp(pid, fd).unwrap_or(false) {
                return sys::cont(pid, 0);
            }
            tracee.pending = Pending::RoleSwap(Box::new(regs));
            sys::set_regs(pid, &regs.skipped())?;
            return sys::cont_to_syscall_exit(pid);
        }
        let (domain, ty, protocol) = (regs.arg(0), regs.arg(1), regs.arg(2));
        if self.never
            || regs.nr() != u64::from(crate::filter::X86_64.nr_socket)
            || !is_candidate(domain, ty, protocol)
        {
            return sys::cont(pid, 0);
        }
        regs.set_arg2(IPPROTO_MPTCP);
        sys::set_regs(pid, &regs)?;
        tracee.pending = Pending::Rewritten(protocol);
        sys::cont_to_syscall_exit(pid)
    }

    fn on_syscall_exit(&mut self, pid: pid_t) -> io::Result<()> {
        let tracee = self.tracees.entry(pid).or_default();
        let protocol = match std::mem::take(&mut tracee.pending) {
            Pending::Rewritten(protocol) => protocol,
            Pending::Setsockopt => return self.on_setsockopt_exit(pid),
            Pending::RoleSwap(saved) => return self.on_role_exit(pid, *saved),
            _ => return sys::cont(pid, 0),
        };
        let mut regs = sys::get_regs(pid)?;
        let ret = regs.ret();
        let errno = i32::try_from(-ret).unwrap_or(0);
        let reason = (ret < 0)
            .then(|| Unavailable::from_socket_error(&io::Error::from_raw_os_error(errno)))
            .flatten();
        let Some(reason) = reason else {
            tracing::debug!(pid, fd = ret, "socket() made MPTCP");
            return sys::cont(pid, 0);
        };
        if reason.is_permanent() {
            self.never = true;
        }
        tracing::debug!(pid, %reason, "MPTCP socket refused; running socket() again as TCP");
        regs.restart();
        regs.set_arg2(protocol);
        sys::set_regs(pid, &regs)?;
        tracee.pending = Pending::Retrying;
        sys::cont(pid, 0)
    }
}

impl Supervisor {
    /// A skipped connect()/listen() of a fresh MPTCP socket: swap it for TCP,
    /// then run the call again.
    fn on_role_exit(&mut self, pid: pid_t, saved: sys::Regs) -> io::Result<()> {
        let exit_regs = sys::get_regs(pid)?;
        let fd = saved.arg(0) as u32 as i32;
        let mut held = Vec::new();
        match crate::swap::swap_to_tcp(pid, &exit_regs, fd, &mut held) {
            Ok(swapped) => tracing::debug!(pid, fd, swapped, "connect/listen of the other role"),
            Err(crate::swap::SwapError::Ended(stop)) => return self.handle(pid, stop),
            Err(crate::swap::SwapError::Io(e)) => {
                tracing::warn!(pid, fd, error = %e, "swap to TCP failed; the socket stays MPTCP");
            }
        }
        let mut again = saved;
        again.restart();
        sys::set_regs(pid, &again)?;
        self.tracees.entry(pid).or_default().pending = Pending::Retrying;
        for signal in held {
            sys::tkill(pid, signal);
        }
        sys::cont(pid, 0)
    }

    /// A refused option on a fresh MPTCP socket: swap it for TCP and run the
    /// setsockopt() again; otherwise leave the result as it is.
    fn on_setsockopt_exit(&mut self, pid: pid_t) -> io::Result<()> {
        let regs = sys::get_regs(pid)?;
        let errno = -regs.ret();
        if errno != i64::from(libc::ENOPROTOOPT) && errno != i64::from(libc::EOPNOTSUPP) {
            return sys::cont(pid, 0);
        }
        let fd = regs.arg(0) as u32 as i32;
        let mut held = Vec::new();
        let result = crate::swap::swap_to_tcp(pid, &regs, fd, &mut held);
        let outcome = match result {
            Ok(true) => {
                tracing::debug!(pid, fd, "option refused by MPTCP: the socket is now TCP");
                let mut again = regs;
                again.restart();
                sys::set_regs(pid, &again)?;
                self.tracees.entry(pid).or_default().pending = Pending::Retrying;
                Ok(())
            }
            Ok(false) => sys::set_regs(pid, &regs),
            Err(crate::swap::SwapError::Ended(stop)) => return self.handle(pid, stop),
            Err(crate::swap::SwapError::Io(e)) => {
                tracing::warn!(pid, fd, error = %e, "swap to TCP failed; the option's error stands");
                sys::set_regs(pid, &regs)
            }
        };
        outcome?;
        for signal in held {
            sys::tkill(pid, signal);
        }
        sys::cont(pid, 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses() {
        // Built as the kernel encodes them (see wait(2)).
        assert_eq!(decode(7 << 8), Stop::Exited(7));
        assert_eq!(decode(libc::SIGTERM), Stop::Killed(libc::SIGTERM));
        assert_eq!(decode(libc::SIGTERM | 0x80), Stop::Killed(libc::SIGTERM));
        let stopped = |sig: i32| (sig << 8) | 0x7f;
        assert_eq!(decode(stopped(libc::SIGSTOP)), Stop::Signal(libc::SIGSTOP));
        assert_eq!(decode(stopped(34)), Stop::Signal(34), "a real-time signal");
        assert_eq!(decode(stopped(SYSCALL_STOP)), Stop::Syscall);
        let event = stopped(libc::SIGTRAP) | (libc::PTRACE_EVENT_SECCOMP << 16);
        assert_eq!(decode(event), Stop::Event(libc::PTRACE_EVENT_SECCOMP));
        assert_eq!(decode(0xffff), Stop::Other, "continued");
    }

    #[test]
    fn candidates_match_the_filter() {
        let stream = libc::SOCK_STREAM as u64;
        assert!(is_candidate(2, stream | 0x80800, 0));
        assert!(is_candidate(10, stream, 6));
        assert!(!is_candidate(2, stream, 262));
        assert!(!is_candidate(1, stream, 0));
        assert!(!is_candidate(2, libc::SOCK_DGRAM as u64, 0));
        // The kernel reads int arguments: the upper half does not count.
        assert!(is_candidate(0xffff_ffff_0000_0002, stream, 0));
    }
}
