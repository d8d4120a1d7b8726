//! Trace mode's swap to TCP: when MPTCP refuses a TCP option
//! ([`crate::filter::REFUSED_TCP_OPTIONS`]) on a socket that has not yet
//! connected or listened, the supervisor replaces it in the tracee by a TCP
//! socket on the same descriptor number, then lets the setsockopt() run again.
//!
//! How, from the setsockopt's syscall-exit stop:
//! 1. `pidfd_getfd` gives the supervisor its own handle on the socket, to
//!    check it (`SO_PROTOCOL` 262, not listening, no peer) and read what the
//!    swap must keep: domain, bound address, file status flags and the
//!    socket's options (a fixed list, copied when they differ from a fresh
//!    TCP socket's, since the supervisor cannot know which were set).
//! 2. The tracee is made to run `socket(domain, SOCK_STREAM|SOCK_CLOEXEC,
//!    IPPROTO_TCP)` (its `syscall` instruction again, with other registers),
//!    the new socket is fetched with `pidfd_getfd` and given the options and
//!    flags, then the tracee runs `dup3(new, fd, O_CLOEXEC as before)` and
//!    `close(new)`, and the supervisor binds it to the old address.
//! 3. The caller restores the registers: the original setsockopt runs again,
//!    on the TCP socket.
//!
//! Signals that arrive meanwhile are held and sent again afterwards.

use std::io;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use libc::pid_t;
use rustix::process::{pidfd_getfd, pidfd_open, Pid, PidfdFlags, PidfdGetfdFlags};
use socket2::SockRef;

use crate::filter::X86_64;
use crate::sys::{self, Regs};
use crate::trace::{decode, Stop};

/// Why a swap did not complete.
#[derive(Debug)]
pub(crate) enum SwapError {
    /// A call failed; the tracee's registers must be restored.
    Io(io::Error),
    /// The tracee ended meanwhile.
    Ended(Stop),
}

impl From<io::Error> for SwapError {
    fn from(e: io::Error) -> SwapError {
        SwapError::Io(e)
    }
}

impl From<rustix::io::Errno> for SwapError {
    fn from(e: rustix::io::Errno) -> SwapError {
        SwapError::Io(e.into())
    }
}

/// Options copied from the MPTCP socket to the TCP one when their values
/// differ from a fresh TCP socket's: (level, name).
const COPIED: &[(i32, i32)] = &[
    (libc::SOL_SOCKET, libc::SO_REUSEADDR),
    (libc::SOL_SOCKET, libc::SO_REUSEPORT),
    (libc::SOL_SOCKET, libc::SO_KEEPALIVE),
    (libc::SOL_SOCKET, libc::SO_LINGER),
    (libc::SOL_SOCKET, libc::SO_MARK),
    (libc::SOL_SOCKET, libc::SO_PRIORITY),
    (libc::SOL_SOCKET, libc::SO_BINDTODEVICE),
    (libc::SOL_SOCKET, libc::SO_RCVLOWAT),
    (libc::SOL_SOCKET, libc::SO_RCVBUF),
    (libc::SOL_SOCKET, libc::SO_SNDBUF),
    (libc::IPPROTO_IP, libc::IP_TOS),
    (libc::IPPROTO_IP, libc::IP_FREEBIND),
    (libc::IPPROTO_IP, libc::IP_TRANSPARENT),
    (libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT),
    (libc::IPPROTO_IPV6, libc::IPV6_V6ONLY),
    (libc::IPPROTO_IPV6, libc::IPV6_TCLASS),
    (libc::IPPROTO_TCP, libc::TCP_NODELAY),
    (libc::IPPROTO_TCP, libc::TCP_MAXSEG),
    (libc::IPPROTO_TCP, libc::TCP_CORK),
    (libc::IPPROTO_TCP, libc::TCP_KEEPIDLE),
    (libc::IPPROTO_TCP, libc::TCP_KEEPINTVL),
    (libc::IPPROTO_TCP, libc::TCP_KEEPCNT),
    (libc::IPPROTO_TCP, libc::TCP_DEFER_ACCEPT),
    (libc::IPPROTO_TCP, libc::TCP_CONGESTION),
    (libc::IPPROTO_TCP, libc::TCP_FASTOPEN_CONNECT),
    (libc::IPPROTO_TCP, libc::TCP_NOTSENT_LOWAT),
];

/// Swaps the MPTCP socket on the tracee's `fd` for TCP. `Ok(false)`: it is
/// not a fresh MPTCP socket (nothing was changed). `exit_regs`: the tracee's
/// registers at the setsockopt's syscall-exit stop. Signals that stopped the
/// tracee meanwhile are pushed on `held`.
pub(crate) fn swap_to_tcp(
    pid: pid_t,
    exit_regs: &Regs,
    fd: i32,
    held: &mut Vec<i32>,
) -> Result<bool, SwapError> {
    let pidfd = process_fd(pid)?;
    let old = pidfd_getfd(&pidfd, fd, PidfdGetfdFlags::empty())?;
    let old_ref = SockRef::from(&old);
    if !fresh(old.as_fd(), &old_ref) {
        return Ok(false);
    }
    let domain = old_ref.domain()?;
    let bound = old_ref.local_addr().ok().filter(|a| {
        a.as_socket()
            .is_some_and(|s| s.port() != 0 || !s.ip().is_unspecified())
    });
    let status_flags = rustix::fs::fcntl_getfl(&old)?;
    let cloexec = fd_cloexec(pid, fd);

    let ty = (libc::SOCK_STREAM | libc::SOCK_CLOEXEC) as u64;
    let args = [i32::from(domain) as u64, ty, libc::IPPROTO_TCP as u64];
    let new_fd = inject(pid, exit_regs, X86_64.nr_socket, args, held)?;
    let Ok(new_fd) = i32::try_from(new_fd) else {
        return Err(io::Error::from_raw_os_error(-new_fd as i32).into());
    };
    let done = (|| -> Result<bool, SwapError> {
        let new = pidfd_getfd(&pidfd, new_fd, PidfdGetfdFlags::empty())?;
        copy_options(old.as_fd(), new.as_fd(), domain);
        rustix::fs::fcntl_setfl(&new, status_flags)?;
        // The supervisor's handle would keep the old socket (and its port).
        drop(old);
        let flags = if cloexec { libc::O_CLOEXEC as u64 } else { 0 };
        let rc = inject(
            pid,
            exit_regs,
            X86_64.nr_dup3,
            [new_fd as u64, fd as u64, flags],
            held,
        )?;
        if rc < 0 {
            return Err(io::Error::from_raw_os_error(-rc as i32).into());
        }
        if let Some(addr) = bound {
            if let Err(e) = SockRef::from(&new).bind(&addr) {
                tracing::warn!(pid, fd, error = %e, "the TCP socket could not be bound again");
            }
        }
        Ok(true)
    })();
    // Always close the tracee's extra descriptor (after dup3, or on error).
    let closed = inject(pid, exit_regs, X86_64.nr_close, [new_fd as u64, 0, 0], held);
    let done = done?;
    closed?;
    Ok(done)
}

/// A pidfd for the process of the thread `tid` (a tracee may be any thread;
/// pidfd_open wants the thread-group leader, whose id `/proc/TID/status`
/// gives as `Tgid:`).
fn process_fd(tid: pid_t) -> io::Result<OwnedFd> {
    let status = std::fs::read_to_string(format!("/proc/{tid}/status"))?;
    let tgid = parse_tgid(&status).unwrap_or(tid);
    let pid = Pid::from_raw(tgid).ok_or_else(|| io::Error::from_raw_os_error(libc::ESRCH))?;
    Ok(pidfd_open(pid, PidfdFlags::empty())?)
}

/// The `Tgid:` field of a `/proc/PID/status` file.
pub(crate) fn parse_tgid(status: &str) -> Option<pid_t> {
    status
        .lines()
        .find_map(|l| l.strip_prefix("Tgid:"))
        .and_then(|v| v.trim().parse().ok())
}

/// Whether the tracee's `fd` is an MPTCP socket that has neither connected
/// nor listened.
pub(crate) fn is_fresh_mptcp(pid: pid_t, fd: i32) -> io::Result<bool> {
    let pidfd = process_fd(pid)?;
    let socket = pidfd_getfd(&pidfd, fd, PidfdGetfdFlags::empty())?;
    Ok(fresh(socket.as_fd(), &SockRef::from(&socket)))
}

fn fresh(fd: BorrowedFd<'_>, sock: &SockRef<'_>) -> bool {
    let mut int = [0u8; 4];
    let listening = sys::getsockopt_raw(fd, libc::SOL_SOCKET, libc::SO_ACCEPTCONN, &mut int)
        .map(|_| i32::from_ne_bytes(int) != 0);
    let protocol = sys::getsockopt_raw(fd, libc::SOL_SOCKET, libc::SO_PROTOCOL, &mut int)
        .map(|_| i32::from_ne_bytes(int));
    let unconnected =
        matches!(sock.peer_addr(), Err(e) if e.raw_os_error() == Some(libc::ENOTCONN));
    protocol == Some(262) && listening == Some(false) && unconnected
}

/// `FD_CLOEXEC` of the tracee's `fd`, from `/proc/PID/fdinfo/FD` (`flags:`
/// in octal, with `O_CLOEXEC`).
fn fd_cloexec(pid: pid_t, fd: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/fdinfo/{fd}"))
        .ok()
        .and_then(|text| parse_fdinfo_flags(&text))
        .is_some_and(|flags| flags & libc::O_CLOEXEC as u32 != 0)
}

/// The `flags:` field of an fdinfo file.
pub(crate) fn parse_fdinfo_flags(text: &str) -> Option<u32> {
    let value = text.lines().find_map(|l| l.strip_prefix("flags:"))?;
    u32::from_str_radix(value.trim(), 8).ok()
}

/// Copies [`COPIED`] options whose values on `from` differ from those of
/// `to` (a fresh socket); buffer sizes are halved, since the kernel doubles
/// what is set.
fn copy_options(from: BorrowedFd<'_>, to: BorrowedFd<'_>, domain: socket2::Domain) {
    let v6 = domain == socket2::Domain::IPV6;
    for &(level, name) in COPIED {
        if level == libc::IPPROTO_IPV6 && !v6 {
            continue;
        }
        let (mut a, mut b) = ([0u8; 64], [0u8; 64]);
        let Some(n) = sys::getsockopt_raw(from, level, name, &mut a) else {
            continue;
        };
        let m = sys::getsockopt_raw(to, level, name, &mut b);
        if m == Some(n) && a[..n] == b[..n] {
            continue;
        }
        let mut value = a[..n].to_vec();
        if matches!(name, libc::SO_RCVBUF | libc::SO_SNDBUF) && level == libc::SOL_SOCKET && n == 4
        {
            let half = i32::from_ne_bytes([a[0], a[1], a[2], a[3]]) / 2;
            value = half.to_ne_bytes().to_vec();
        }
        if let Err(e) = sys::setsockopt_raw(to, level, name, &value) {
            tracing::debug!(level, name, error = %e, "option not carried over to the TCP socket");
        }
    }
}

/// Makes the tracee, stopped at a syscall exit, run `nr(args)` and returns
/// its result (a negative errno on failure). Signal stops meanwhile are
/// held; the tracee's own filter stop (for the injected socket()) is passed.
fn inject(
    pid: pid_t,
    exit_regs: &Regs,
    nr: u32,
    args: [u64; 3],
    held: &mut Vec<i32>,
) -> Result<i64, SwapError> {
    sys::set_regs(pid, &exit_regs.inject(u64::from(nr), args))?;
    sys::cont_to_syscall_exit(pid)?;
    let mut entered = false;
    loop {
        let status = sys::wait_one(pid)?;
        match decode(status) {
            Stop::Syscall if entered => return Ok(sys::get_regs(pid)?.ret()),
            Stop::Syscall => entered = true,
            Stop::Signal(signal) => held.push(signal),
            stop @ (Stop::Exited(_) | Stop::Killed(_)) => return Err(SwapError::Ended(stop)),
            Stop::Event(_) | Stop::Other => {}
        }
        sys::cont_to_syscall_exit(pid)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tgid() {
        let status =
            "Name:\tpython3\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t4242\nPid:\t4250\n";
        assert_eq!(parse_tgid(status), Some(4242));
        assert_eq!(parse_tgid("Name:\tx\n"), None);
    }

    #[test]
    fn fdinfo_flags() {
        let text = "pos:\t0\nflags:\t02000002\nmnt_id:\t9\nino:\t123\n";
        assert_eq!(parse_fdinfo_flags(text), Some(0o2000002));
        assert!(parse_fdinfo_flags(text).unwrap() & libc::O_CLOEXEC as u32 != 0);
        assert_eq!(parse_fdinfo_flags("pos:\t0\n"), None);
        assert_eq!(parse_fdinfo_flags("flags:\tzz\n"), None);
    }
}
