//! Every `unsafe` block of the crate: ptrace, seccomp, waitpid and signals,
//! through `libc` directly.
//!
//! Decision: nix's typed ptrace and wait API takes and returns its `Signal`
//! enum, which cannot hold real-time signals (glibc itself sends `SIGRTMIN+1`
//! between threads for `setuid()`); a supervisor must pass every signal on,
//! so these few calls use raw numbers.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd};
use std::os::raw::{c_int, c_void};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::atomic::{AtomicI32, Ordering};

use libc::pid_t;

use crate::filter::Instruction;

fn check(rc: libc::c_long) -> io::Result<libc::c_long> {
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(rc)
    }
}

/// Spawns `command` as a tracee: in the child, after fork and before exec,
/// `PTRACE_TRACEME`, `PR_SET_PDEATHSIG` (SIGKILL, until the supervisor sets
/// `PTRACE_O_EXITKILL`), `PR_SET_NO_NEW_PRIVS` when `no_new_privs` (needed
/// to install a filter without `CAP_SYS_ADMIN`), then the seccomp `filter`.
/// The child stops with `SIGTRAP` once exec has succeeded.
pub(crate) fn spawn_traced(
    command: &mut Command,
    filter: Vec<Instruction>,
    no_new_privs: bool,
) -> io::Result<Child> {
    let closure = move || -> io::Result<()> {
        let prog = libc::sock_fprog {
            len: filter.len() as u16,
            filter: filter.as_ptr().cast_mut(),
        };
        // SAFETY: only system calls (async-signal-safe) between fork and exec;
        // `prog` points into `filter`, which this closure owns.
        unsafe {
            check(libc::ptrace(libc::PTRACE_TRACEME, 0, 0, 0))?;
            check(libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL).into())?;
            if no_new_privs {
                check(libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0).into())?;
            }
            check(
                libc::prctl(
                    libc::PR_SET_SECCOMP,
                    libc::SECCOMP_MODE_FILTER,
                    &raw const prog,
                )
                .into(),
            )?;
        }
        Ok(())
    };
    // SAFETY: the closure above makes system calls only (no allocation, no
    // locks), as pre_exec requires.
    unsafe { command.pre_exec(closure) };
    command.spawn()
}

/// The options of every tracee (children inherit them).
pub(crate) fn set_options(pid: pid_t) -> io::Result<()> {
    let options = libc::PTRACE_O_TRACESYSGOOD
        | libc::PTRACE_O_TRACEFORK
        | libc::PTRACE_O_TRACEVFORK
        | libc::PTRACE_O_TRACECLONE
        | libc::PTRACE_O_TRACEEXEC
        | libc::PTRACE_O_TRACESECCOMP
        | libc::PTRACE_O_EXITKILL;
    // SAFETY: PTRACE_SETOPTIONS takes the options in `data`.
    check(unsafe { libc::ptrace(libc::PTRACE_SETOPTIONS, pid, 0, options as libc::c_long) })
        .map(drop)
}

/// Resumes a stopped tracee, delivering `signal` (0 for none).
pub(crate) fn cont(pid: pid_t, signal: c_int) -> io::Result<()> {
    // SAFETY: PTRACE_CONT takes the signal in `data`.
    check(unsafe { libc::ptrace(libc::PTRACE_CONT, pid, 0, signal as libc::c_long) }).map(drop)
}

/// Resumes a stopped tracee until its next system-call stop.
pub(crate) fn cont_to_syscall_exit(pid: pid_t) -> io::Result<()> {
    // SAFETY: PTRACE_SYSCALL takes the signal (none) in `data`.
    check(unsafe { libc::ptrace(libc::PTRACE_SYSCALL, pid, 0, 0) }).map(drop)
}

/// Whether the tracee's signal stop is a group-stop (job control), which
/// `PTRACE_GETSIGINFO` tells by failing with `EINVAL`.
pub(crate) fn is_group_stop(pid: pid_t) -> bool {
    // SAFETY: siginfo_t is plain data; all zeroes is a valid value.
    let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
    // SAFETY: PTRACE_GETSIGINFO writes one siginfo_t at `data`.
    let rc = unsafe { libc::ptrace(libc::PTRACE_GETSIGINFO, pid, 0, &raw mut info) };
    rc < 0 && io::Error::last_os_error().raw_os_error() == Some(libc::EINVAL)
}

/// The registers of a system call, for the architectures trace mode supports.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Regs(#[cfg(target_arch = "x86_64")] libc::user_regs_struct);

#[cfg(target_arch = "x86_64")]
impl Regs {
    pub(crate) fn nr(&self) -> u64 {
        self.0.orig_rax
    }
    pub(crate) fn arg(&self, i: usize) -> u64 {
        match i {
            0 => self.0.rdi,
            1 => self.0.rsi,
            _ => self.0.rdx,
        }
    }
    pub(crate) fn set_arg2(&mut self, value: u64) {
        self.0.rdx = value;
    }
    pub(crate) fn ret(&self) -> i64 {
        self.0.rax as i64
    }
    /// The same registers with the system call skipped (number -1), for a
    /// seccomp stop: the kernel returns `ENOSYS` without running anything.
    pub(crate) fn skipped(&self) -> Regs {
        let mut r = self.0;
        r.orig_rax = u64::MAX;
        Regs(r)
    }
    /// Sets up, at a syscall-exit stop, a new system call `nr(args)` that
    /// runs when the tracee is resumed (the `syscall` instruction again).
    pub(crate) fn inject(&self, nr: u64, args: [u64; 3]) -> Regs {
        let mut r = self.0;
        r.orig_rax = nr;
        r.rax = nr;
        r.rdi = args[0];
        r.rsi = args[1];
        r.rdx = args[2];
        r.rip = r.rip.wrapping_sub(2);
        Regs(r)
    }
    /// Makes the tracee run the same system call again when resumed from its
    /// syscall-exit stop: back over the 2-byte `syscall` instruction, with the
    /// call's number where the result was.
    pub(crate) fn restart(&mut self) {
        self.0.rax = self.0.orig_rax;
        self.0.rip = self.0.rip.wrapping_sub(2);
    }
}

/// Whether this build can trace (the registers are known for x86_64 only).
pub(crate) const TRACE_SUPPORTED: bool = cfg!(target_arch = "x86_64");

#[cfg(target_arch = "x86_64")]
pub(crate) fn get_regs(pid: pid_t) -> io::Result<Regs> {
    // SAFETY: user_regs_struct is plain data; all zeroes is a valid value.
    let mut regs: libc::user_regs_struct = unsafe { std::mem::zeroed() };
    // SAFETY: PTRACE_GETREGS writes one user_regs_struct at `data`.
    check(unsafe { libc::ptrace(libc::PTRACE_GETREGS, pid, 0, &raw mut regs) })?;
    Ok(Regs(regs))
}

#[cfg(target_arch = "x86_64")]
pub(crate) fn set_regs(pid: pid_t, regs: &Regs) -> io::Result<()> {
    // SAFETY: PTRACE_SETREGS reads one user_regs_struct at `data`.
    check(unsafe { libc::ptrace(libc::PTRACE_SETREGS, pid, 0, &raw const regs.0) }).map(drop)
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn get_regs(_pid: pid_t) -> io::Result<Regs> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(not(target_arch = "x86_64"))]
pub(crate) fn set_regs(_pid: pid_t, _regs: &Regs) -> io::Result<()> {
    Err(io::Error::from(io::ErrorKind::Unsupported))
}

#[cfg(not(target_arch = "x86_64"))]
impl Regs {
    pub(crate) fn nr(&self) -> u64 {
        u64::MAX
    }
    pub(crate) fn arg(&self, _i: usize) -> u64 {
        0
    }
    pub(crate) fn set_arg2(&mut self, _value: u64) {}
    pub(crate) fn ret(&self) -> i64 {
        0
    }
    pub(crate) fn inject(&self, _nr: u64, _args: [u64; 3]) -> Regs {
        *self
    }
    pub(crate) fn skipped(&self) -> Regs {
        *self
    }
    pub(crate) fn restart(&mut self) {}
}

/// `waitpid(-1, __WALL)`: the next child or tracee that changed state.
pub(crate) fn wait_any() -> io::Result<(pid_t, c_int)> {
    let mut status: c_int = 0;
    // SAFETY: waitpid writes the status into `status`.
    let pid = unsafe { libc::waitpid(-1, &raw mut status, libc::__WALL) };
    if pid < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok((pid, status))
}

/// `waitpid(pid, __WALL)`: the next state change of one tracee.
pub(crate) fn wait_one(pid: pid_t) -> io::Result<c_int> {
    let mut status: c_int = 0;
    loop {
        // SAFETY: waitpid writes the status into `status`.
        let rc = unsafe { libc::waitpid(pid, &raw mut status, libc::__WALL) };
        if rc >= 0 {
            return Ok(status);
        }
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINTR) {
            return Err(e);
        }
    }
}

/// Sends `signal` to the thread `tid` again (a signal held during a swap).
pub(crate) fn tkill(tid: pid_t, signal: c_int) {
    // SAFETY: tkill takes two integers.
    unsafe { libc::syscall(libc::SYS_tkill, tid, signal) };
}

/// getsockopt() into `buf`; the length written, or `None` on error.
pub(crate) fn getsockopt_raw(
    fd: BorrowedFd<'_>,
    level: c_int,
    name: c_int,
    buf: &mut [u8],
) -> Option<usize> {
    let mut len = buf.len() as libc::socklen_t;
    // SAFETY: `buf` has room for `len` bytes.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            level,
            name,
            buf.as_mut_ptr().cast(),
            &raw mut len,
        )
    };
    (rc == 0).then_some((len as usize).min(buf.len()))
}

/// setsockopt() from `value`.
pub(crate) fn setsockopt_raw(
    fd: BorrowedFd<'_>,
    level: c_int,
    name: c_int,
    value: &[u8],
) -> io::Result<()> {
    // SAFETY: `value` holds `len` readable bytes.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            value.as_ptr().cast(),
            value.len() as libc::socklen_t,
        )
    };
    check(rc.into()).map(drop)
}

/// The process signals sent to `mptcp run` are passed on to.
static FORWARD_TO: AtomicI32 = AtomicI32::new(0);

/// The signals passed on to the program when sent to `mptcp run` with
/// kill(2) (not those a terminal sends to the whole foreground group: the
/// program gets those itself).
pub(crate) const FORWARDED: [c_int; 6] = [
    libc::SIGTERM,
    libc::SIGINT,
    libc::SIGHUP,
    libc::SIGQUIT,
    libc::SIGUSR1,
    libc::SIGUSR2,
];

extern "C" fn forward(signal: c_int, info: *mut libc::siginfo_t, _context: *mut c_void) {
    // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
    let code = unsafe { (*info).si_code };
    let pid = FORWARD_TO.load(Ordering::Relaxed);
    // si_code <= 0: sent by a process (kill, sigqueue, tgkill); SI_KERNEL
    // (a terminal's ^C) reaches the program directly.
    if code <= 0 && pid > 0 {
        // SAFETY: kill is async-signal-safe.
        unsafe { libc::kill(pid, signal) };
    }
}

/// Passes [`FORWARDED`] signals sent to this process on to `pid`; returns the
/// actions they had, for [`stop_forwarding`].
pub(crate) fn forward_signals(pid: pid_t) -> io::Result<Vec<(c_int, libc::sigaction)>> {
    FORWARD_TO.store(pid, Ordering::Relaxed);
    let mut saved = Vec::with_capacity(FORWARDED.len());
    for signal in FORWARDED {
        // SAFETY: sigaction is plain data; all zeroes is a valid value.
        let mut action: libc::sigaction = unsafe { std::mem::zeroed() };
        action.sa_sigaction = forward as *const () as usize;
        action.sa_flags = libc::SA_SIGINFO | libc::SA_RESTART;
        // SAFETY: as above.
        let mut old: libc::sigaction = unsafe { std::mem::zeroed() };
        // SAFETY: a valid action whose handler only calls kill(), and room for
        // the old one.
        let rc = unsafe { libc::sigaction(signal, &raw const action, &raw mut old) };
        if rc != 0 {
            let e = io::Error::last_os_error();
            stop_forwarding(&saved);
            return Err(e);
        }
        saved.push((signal, old));
    }
    Ok(saved)
}

/// Puts back the actions [`forward_signals`] replaced (the program has ended:
/// a later signal must not go to a pid that may be reused).
pub(crate) fn stop_forwarding(saved: &[(c_int, libc::sigaction)]) {
    for (signal, old) in saved {
        // SAFETY: an action the kernel gave back.
        unsafe { libc::sigaction(*signal, old, std::ptr::null_mut()) };
    }
    FORWARD_TO.store(0, Ordering::Relaxed);
}

/// Ends this process by `signal`, as the program it ran ended, so the
/// parent (a shell) sees the same thing. Core dumps are turned off first (the
/// program already dumped, if it was going to). Returns if the signal does
/// not end the process.
pub fn reraise(signal: c_int) {
    let no_core = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain calls with valid arguments: no core limit, default
    // action, the signal unblocked, then raised.
    unsafe {
        libc::setrlimit(libc::RLIMIT_CORE, &raw const no_core);
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&raw mut set);
        libc::sigaddset(&raw mut set, signal);
        libc::sigprocmask(libc::SIG_UNBLOCK, &raw const set, std::ptr::null_mut());
        libc::raise(signal);
    }
}
