//! `libmptcp_preload.so`: makes an unmodified, dynamically linked program's
//! TCP sockets Multipath TCP, through `LD_PRELOAD`.
//!
//! `mptcp run` loads it (see the `mptcp-run` crate): the `mptcp` binary carries a
//! copy, built by the CLI's `build.rs`, for when none is on disk. By hand:
//!
//! ```text
//! cargo build                       # builds target/debug/libmptcp_preload.so
//! LD_PRELOAD=$PWD/target/debug/libmptcp_preload.so curl http://198.18.0.2/
//! ```
//!
//! # What it wraps
//!
//! - `socket()`: `AF_INET`/`AF_INET6`, `SOCK_STREAM` (compared as
//!   `type & 0xf`, since `SOCK_NONBLOCK|SOCK_CLOEXEC` ride in `type`),
//!   protocol 0 or `IPPROTO_TCP` becomes `IPPROTO_MPTCP`. When the MPTCP
//!   socket cannot be made, mptcp-net's rules apply: `ENOPROTOOPT`
//!   (`net.mptcp.enabled=0`), `EACCES`/`EPERM` (a security policy) give the
//!   TCP socket asked for; `EPROTONOSUPPORT`/`EINVAL` (no MPTCP in this
//!   kernel) too, and are remembered so later calls go straight to TCP; any
//!   other error (`EMFILE`, ...) is returned as it is.
//! - `setsockopt()`: when MPTCP refuses an option (`EOPNOTSUPP` or
//!   `ENOPROTOOPT`, e.g. `TCP_USER_TIMEOUT`, `TCP_MD5SIG` on Linux 6.18) on
//!   an MPTCP socket that has not yet connected or listened, the socket is
//!   replaced in place by a TCP one (same descriptor number, file status
//!   flags, `FD_CLOEXEC`, the options set so far and the bound address; the
//!   new socket is put on the number with `dup3`), then the option is set on
//!   it. The program goes on with plain TCP instead of failing, which is what
//!   `mptcpize` does not do.
//! - `connect()` and `listen()`: with `MPTCP_RUN_ONLY=listen` a socket that
//!   connects is swapped to TCP first; with `MPTCP_RUN_ONLY=dial` one that
//!   listens is. Both also end the socket's "fresh" time.
//! - `bind()` and `close()`: bookkeeping for the swap (the bound address; a
//!   closed descriptor is forgotten).
//!
//! Each wrapper calls libc's function, found once with
//! `dlsym(RTLD_NEXT, name)`.
//!
//! # Environment
//!
//! - `MPTCP_RUN_ONLY`: unset (dial and listen with MPTCP), `dial` or
//!   `listen`. Another value is reported (with `MPTCP_RUN_DEBUG`) and ignored.
//! - `MPTCP_RUN_DEBUG`: set (not `0`) for one line on stderr per decision.
//!
//! # Decisions
//!
//! - Options set on a fresh MPTCP socket are recorded as they are set (a map
//!   from descriptor to options, behind a mutex, touched only while a fresh
//!   socket exists), rather than read back with getsockopt() at swap time:
//!   reading back cannot see every option (`SO_RCVBUF` reads back doubled,
//!   some options are write-only). Values over 256 bytes are not recorded
//!   (none that MPTCP accepts is that large).
//! - The swap checks the socket itself (`SO_PROTOCOL` is 262, not listening,
//!   `getpeername` says `ENOTCONN`) before touching it, so a stale record (a
//!   descriptor closed behind the wrapper's back, e.g. by a raw syscall) can
//!   never swap a connected socket.
//! - No tracing subscriber, no threads, no allocation outside the fresh-socket
//!   map: a library loaded into every process of a tree stays small. The
//!   classification of errors mirrors `mptcp_net::Unavailable` instead of
//!   linking mptcp-net, for the same reason (a unit test keeps them equal in
//!   the `mptcp-run` crate).
//! - Limits: programs that skip libc's `socket()` (static binaries, Go, raw
//!   syscalls, io_uring) are not reached (`mptcp run --mode trace` is for
//!   them); setuid programs ignore `LD_PRELOAD`.
//! - A thread that forks takes the fresh-socket map's lock across `fork()`
//!   (`pthread_atfork`), so a child never inherits it locked by a thread that
//!   does not exist there.

#![warn(missing_docs)]

use std::fmt;
use std::io::Write;
use std::os::raw::{c_int, c_void};
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use libc::{sockaddr, socklen_t};

mod policy;
mod sys;
mod table;

use policy::{Fallback, Roles};
use table::Fresh;

/// Set once socket(..., IPPROTO_MPTCP) failed with EPROTONOSUPPORT or EINVAL.
static NEVER_MPTCP: AtomicBool = AtomicBool::new(false);

/// The environment, read once: bit 0 set when read, bit 1 debug, bits 2-3 roles.
static SETTINGS: AtomicU8 = AtomicU8::new(0);

struct Settings {
    debug: bool,
    roles: Roles,
}

fn settings() -> Settings {
    let mut bits = SETTINGS.load(Ordering::Relaxed);
    if bits == 0 {
        let env = |name| std::env::var_os(name).map(|v| v.into_encoded_bytes());
        let debug = policy::debug_on(env("MPTCP_RUN_DEBUG").as_deref());
        let only = env("MPTCP_RUN_ONLY");
        let roles = policy::roles(only.as_deref()).unwrap_or_else(|()| {
            if debug {
                debug_line(format_args!(
                    "MPTCP_RUN_ONLY={:?} is neither `dial` nor `listen`; ignored",
                    String::from_utf8_lossy(only.as_deref().unwrap_or_default())
                ));
            }
            Roles::Both
        });
        let role_bits = match roles {
            Roles::Both => 0,
            Roles::DialOnly => 1,
            Roles::ListenOnly => 2,
        };
        bits = 1 | u8::from(debug) << 1 | role_bits << 2;
        SETTINGS.store(bits, Ordering::Relaxed);
    }
    Settings {
        debug: bits & 2 != 0,
        roles: match bits >> 2 {
            1 => Roles::DialOnly,
            2 => Roles::ListenOnly,
            _ => Roles::Both,
        },
    }
}

fn debug_line(args: fmt::Arguments<'_>) {
    let _ = writeln!(
        std::io::stderr(),
        "mptcp-preload[{}]: {args}",
        std::process::id()
    );
}

/// One line on stderr when `MPTCP_RUN_DEBUG` asks for it.
pub(crate) fn debug(args: fmt::Arguments<'_>) {
    if settings().debug {
        debug_line(args);
    }
}

/// `socket(2)`, with TCP stream sockets made MPTCP.
#[no_mangle]
pub extern "C" fn socket(domain: c_int, ty: c_int, protocol: c_int) -> c_int {
    if !policy::is_candidate(domain, ty, protocol) || NEVER_MPTCP.load(Ordering::Relaxed) {
        return sys::socket(domain, ty, protocol);
    }
    let fd = sys::socket(domain, ty, policy::IPPROTO_MPTCP);
    if fd >= 0 {
        table::insert(fd, Fresh::new(domain));
        debug(format_args!("socket: fd {fd} is MPTCP"));
        return fd;
    }
    let errno = sys::errno();
    match policy::fallback(errno) {
        Fallback::Fail => {
            sys::set_errno(errno);
            -1
        }
        fallback => {
            if fallback == Fallback::TcpForever {
                NEVER_MPTCP.store(true, Ordering::Relaxed);
            }
            let fd = sys::socket(domain, ty, protocol);
            debug(format_args!(
                "socket: MPTCP refused (errno {errno}), fd {fd} is TCP{}",
                if fallback == Fallback::TcpForever {
                    "; not trying MPTCP again in this process"
                } else {
                    ""
                }
            ));
            fd
        }
    }
}

/// Replaces a fresh MPTCP socket by TCP, for `why`; false if `fd` is not one.
fn swap(fd: c_int, why: &str) -> bool {
    if !sys::is_unconnected_mptcp(fd) {
        return false;
    }
    let fresh = table::remove(fd).unwrap_or_else(|| {
        // Not made by this library (a raw syscall): domain and address only.
        let mut fresh = Fresh::new(domain_of(fd));
        fresh.bound = bound_address(fd);
        fresh
    });
    match sys::swap_to_tcp(fd, &fresh) {
        Ok(()) => {
            debug(format_args!(
                "fd {fd}: now TCP ({why}); {} option(s) carried over{}",
                fresh.options.len(),
                if fresh.lost_option {
                    ", one too large to record was lost"
                } else {
                    ""
                }
            ));
            true
        }
        Err(errno) => {
            debug(format_args!("fd {fd}: swap to TCP failed (errno {errno})"));
            false
        }
    }
}

fn domain_of(fd: c_int) -> c_int {
    match sys::local_address(fd) {
        Some(addr) if addr.len() >= 2 => c_int::from(u16::from_ne_bytes([addr[0], addr[1]])),
        _ => libc::AF_INET,
    }
}

/// The local address of a bound socket; `None` while unbound (address and
/// port all zero).
fn bound_address(fd: c_int) -> Option<Vec<u8>> {
    let addr = sys::local_address(fd)?;
    // Past the 2-byte family: port and address (and for IPv6 flow info and
    // scope id); all zero means bind() was never called.
    addr.get(2..)
        .filter(|rest| rest.iter().any(|&b| b != 0))
        .map(|_| addr.clone())
}

/// `setsockopt(2)`; an option MPTCP refuses on a fresh socket makes it TCP.
///
/// # Safety
/// As for setsockopt(2): `len` readable bytes at `value`.
#[no_mangle]
pub unsafe extern "C" fn setsockopt(
    fd: c_int,
    level: c_int,
    name: c_int,
    value: *const c_void,
    len: socklen_t,
) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    let rc = unsafe { sys::setsockopt(fd, level, name, value, len) };
    if rc == 0 {
        if table::any() {
            // SAFETY: the kernel has just read these bytes.
            let bytes = unsafe { sys::option_bytes(value, len) };
            table::with(fd, |fresh| fresh.record(level, name, &bytes));
        }
        return 0;
    }
    let errno = sys::errno();
    if policy::option_refused(errno) && swap(fd, &format!("option {level}/{name} refused")) {
        // SAFETY: the caller's arguments, passed on.
        return unsafe { sys::setsockopt(fd, level, name, value, len) };
    }
    sys::set_errno(errno);
    rc
}

/// `connect(2)`; with `MPTCP_RUN_ONLY=listen` the socket becomes TCP first.
///
/// # Safety
/// As for connect(2): `len` readable bytes at `addr`.
#[no_mangle]
pub unsafe extern "C" fn connect(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    if table::any() && table::contains(fd) {
        if settings().roles == Roles::ListenOnly {
            swap(fd, "MPTCP_RUN_ONLY=listen and it connects");
        }
        table::remove(fd);
    }
    // SAFETY: the caller's arguments, passed on.
    unsafe { sys::connect(fd, addr, len) }
}

/// `listen(2)`; with `MPTCP_RUN_ONLY=dial` the socket becomes TCP first.
#[no_mangle]
pub extern "C" fn listen(fd: c_int, backlog: c_int) -> c_int {
    if table::any() && table::contains(fd) {
        if settings().roles == Roles::DialOnly {
            swap(fd, "MPTCP_RUN_ONLY=dial and it listens");
        }
        table::remove(fd);
    }
    sys::listen(fd, backlog)
}

/// `bind(2)`; remembers the address of a fresh socket for a later swap.
///
/// # Safety
/// As for bind(2): `len` readable bytes at `addr`.
#[no_mangle]
pub unsafe extern "C" fn bind(fd: c_int, addr: *const sockaddr, len: socklen_t) -> c_int {
    // SAFETY: the caller's arguments, passed on.
    let rc = unsafe { sys::bind(fd, addr, len) };
    if rc == 0 && table::any() {
        let errno = sys::errno();
        if let Some(local) = sys::local_address(fd) {
            table::with(fd, |fresh| fresh.bound = Some(local));
        }
        sys::set_errno(errno);
    }
    rc
}

/// `close(2)`; forgets a fresh socket.
#[no_mangle]
pub extern "C" fn close(fd: c_int) -> c_int {
    table::remove(fd);
    sys::close(fd)
}
