//! Socket creation shared by `Dialer` and `ListenConfig`: MPTCP first, TCP
//! only for the socket() and hook errors the contract names.

use std::fmt;
use std::io;
use std::sync::Arc;

use socket2::{Domain, Protocol, Socket, Type};

use crate::support::Unavailable;

/// A user function that sees each socket after it is created and before it
/// is bound, connected or put to listen (Go's `Control`).
#[derive(Clone)]
pub(crate) struct Hook(Arc<HookFn>);

type HookFn = dyn Fn(&Socket) -> io::Result<()> + Send + Sync;

impl Hook {
    pub(crate) fn new<F>(f: F) -> Hook
    where
        F: Fn(&Socket) -> io::Result<()> + Send + Sync + 'static,
    {
        Hook(Arc::new(f))
    }
}

impl fmt::Debug for Hook {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Hook(..)")
    }
}

/// What to open and how.
pub(crate) struct Plan<'a> {
    /// Resolved intent: try MPTCP first.
    pub(crate) mptcp: bool,
    /// Error instead of falling back.
    pub(crate) required: bool,
    /// Options our own defaults set before the hook (so the hook can undo them).
    pub(crate) defaults: &'a dyn Fn(&Socket) -> io::Result<()>,
    pub(crate) hook: Option<&'a Hook>,
    /// TCP keep-alive, set after the defaults and before the hook.
    pub(crate) keep_alive: crate::KeepAliveConfig,
    /// "dial" or "listen", for log lines.
    pub(crate) what: &'static str,
    /// Create the socket non-blocking (for tokio), in the socket() call
    /// itself where the platform allows, saving two fcntl calls.
    pub(crate) nonblocking: bool,
}

/// Opens a stream socket for `domain` following `plan`.
///
/// Never connects: fallback is decided before any packet is sent, so a
/// connect error can never lead to a second connect.
pub(crate) fn open(domain: Domain, plan: &Plan<'_>) -> io::Result<Socket> {
    let (socket, is_mptcp) = new_socket(domain, plan)?;
    match configure(&socket, plan) {
        Ok(()) => Ok(socket),
        Err(err)
            if is_mptcp
                && !plan.required
                && err
                    .raw_os_error()
                    .is_some_and(|e| e == libc::EOPNOTSUPP || e == libc::ENOPROTOOPT) =>
        {
            tracing::info!(
                error = %err,
                "{}: an option MPTCP does not support (keep-alive or the socket hook) failed \
                 on the MPTCP socket; retrying once with a plain TCP socket",
                plan.what
            );
            drop(socket);
            let socket = tcp_socket(domain, plan.nonblocking)?;
            configure(&socket, plan)?;
            Ok(socket)
        }
        Err(err) => Err(err),
    }
}

/// Our defaults, keep-alive, then the user's hook.
fn configure(socket: &Socket, plan: &Plan<'_>) -> io::Result<()> {
    (plan.defaults)(socket)?;
    plan.keep_alive.apply(socket)?;
    match plan.hook {
        Some(hook) => (hook.0)(socket),
        None => Ok(()),
    }
}

/// The socket, and whether it is an MPTCP one.
fn new_socket(domain: Domain, plan: &Plan<'_>) -> io::Result<(Socket, bool)> {
    if !plan.mptcp {
        return Ok((tcp_socket(domain, plan.nonblocking)?, false));
    }
    if let Some(reason) = crate::support::known_permanent() {
        return Ok((fall_back(domain, plan, reason)?, false));
    }
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsFd;
        // MPTCP seen disabled here less than a second ago: make the TCP socket
        // straight away, and keep it if it is in that same namespace.
        if !plan.required {
            if let Some(cookie) = crate::support::disabled_namespace() {
                let socket = tcp_socket(domain, plan.nonblocking)?;
                if crate::sys::netns_cookie(socket.as_fd()) == Some(cookie) {
                    return Ok((socket, false));
                }
            }
        }
        match crate::sys::mptcp_socket(domain, stream_type(plan.nonblocking)) {
            Ok(socket) => Ok((socket, true)),
            Err(err) => match Unavailable::from_socket_error(&err) {
                Some(reason) => {
                    crate::support::note(reason);
                    let socket = fall_back(domain, plan, reason)?;
                    if reason == Unavailable::DisabledBySysctl {
                        if let Some(cookie) = crate::sys::netns_cookie(socket.as_fd()) {
                            crate::support::note_disabled(cookie);
                        }
                    }
                    Ok((socket, false))
                }
                None => Err(err),
            },
        }
    }
    #[cfg(not(target_os = "linux"))]
    Ok((fall_back(domain, plan, Unavailable::NotLinux)?, false))
}

fn fall_back(domain: Domain, plan: &Plan<'_>, reason: Unavailable) -> io::Result<Socket> {
    if plan.required {
        return Err(reason.into_io_error());
    }
    tracing::debug!(%reason, "{}: using plain TCP", plan.what);
    tcp_socket(domain, plan.nonblocking)
}

pub(crate) fn tcp_socket(domain: Domain, nonblocking: bool) -> io::Result<Socket> {
    let socket = Socket::new(domain, stream_type(nonblocking), Some(Protocol::TCP))?;
    #[cfg(not(target_os = "linux"))]
    if nonblocking {
        socket.set_nonblocking(true)?;
    }
    Ok(socket)
}

/// `SOCK_STREAM`, with `SOCK_NONBLOCK` when asked (Linux: set by socket()
/// itself; elsewhere [`tcp_socket`] sets it afterwards).
pub(crate) fn stream_type(nonblocking: bool) -> Type {
    #[cfg(target_os = "linux")]
    if nonblocking {
        return Type::STREAM.nonblocking();
    }
    let _ = nonblocking;
    Type::STREAM
}

/// The error std returns when a name resolves to nothing.
pub(crate) fn no_addresses() -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidInput,
        "could not resolve to any addresses",
    )
}
