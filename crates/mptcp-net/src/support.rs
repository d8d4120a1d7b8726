//! Can this host, in this network namespace, create MPTCP sockets?

use std::fmt;
use std::io;
#[cfg(target_os = "linux")]
use std::sync::atomic::{AtomicI32, Ordering};

/// Whether MPTCP sockets can be created here, as answered by [`support()`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Support {
    /// `socket(AF_INET, SOCK_STREAM, IPPROTO_MPTCP)` succeeds.
    Available,
    /// MPTCP sockets cannot be created, for this reason.
    Unavailable(Unavailable),
}

impl Support {
    /// `true` for [`Support::Available`].
    pub fn is_available(&self) -> bool {
        matches!(self, Support::Available)
    }

    /// The reason MPTCP is unavailable, if it is.
    pub fn unavailable(&self) -> Option<Unavailable> {
        match self {
            Support::Available => None,
            Support::Unavailable(u) => Some(*u),
        }
    }
}

impl fmt::Display for Support {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Support::Available => f.write_str("MPTCP is available"),
            Support::Unavailable(u) => u.fmt(f),
        }
    }
}

/// Why MPTCP sockets cannot be created.
///
/// This is also the error inside the [`io::Error`] (kind
/// [`io::ErrorKind::Unsupported`]) that a *required* dial or listen returns;
/// get it back with `err.get_ref().and_then(|e| e.downcast_ref::<Unavailable>())`.
/// Its message names the cause and the fix.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Unavailable {
    /// `ENOPROTOOPT`: `net.mptcp.enabled=0` in this network namespace. This
    /// can change at run time: remembered for at most
    /// [`DISABLED_MEMORY`](crate::DISABLED_MEMORY), per network namespace.
    DisabledBySysctl,
    /// `EPROTONOSUPPORT`: the kernel was built without `CONFIG_MPTCP`.
    /// Remembered for the life of the process.
    NotInKernel,
    /// `EINVAL`: the kernel predates MPTCP (Linux < 5.6). Remembered for the
    /// life of the process.
    KernelTooOld,
    /// `EACCES` or `EPERM`: a security policy (seccomp, SELinux, AppArmor,
    /// Landlock, a container runtime) refused the socket.
    Refused {
        /// The errno the kernel returned.
        errno: i32,
    },
    /// This crate only creates MPTCP sockets on Linux.
    NotLinux,
}

impl Unavailable {
    /// Classifies a failed `socket(..., IPPROTO_MPTCP)`; `None` for errors
    /// that are not about MPTCP (e.g. `EMFILE`), which are returned as they are.
    pub fn from_socket_error(err: &io::Error) -> Option<Unavailable> {
        match err.raw_os_error()? {
            libc::ENOPROTOOPT => Some(Unavailable::DisabledBySysctl),
            libc::EPROTONOSUPPORT => Some(Unavailable::NotInKernel),
            libc::EINVAL => Some(Unavailable::KernelTooOld),
            e @ (libc::EACCES | libc::EPERM) => Some(Unavailable::Refused { errno: e }),
            _ => None,
        }
    }

    /// The errno behind this reason, if there is one.
    pub fn raw_os_error(&self) -> Option<i32> {
        match self {
            Unavailable::DisabledBySysctl => Some(libc::ENOPROTOOPT),
            Unavailable::NotInKernel => Some(libc::EPROTONOSUPPORT),
            Unavailable::KernelTooOld => Some(libc::EINVAL),
            Unavailable::Refused { errno } => Some(*errno),
            Unavailable::NotLinux => None,
        }
    }

    /// Whether the reason holds for the life of the process (the kernel
    /// cannot grow MPTCP support while running).
    pub fn is_permanent(&self) -> bool {
        matches!(
            self,
            Unavailable::NotInKernel | Unavailable::KernelTooOld | Unavailable::NotLinux
        )
    }

    /// What to do about it, in one sentence.
    pub fn fix(&self) -> &'static str {
        match self {
            Unavailable::DisabledBySysctl => {
                "enable it with `sysctl -w net.mptcp.enabled=1` in this network namespace"
            }
            Unavailable::NotInKernel => "run a kernel built with CONFIG_MPTCP=y",
            Unavailable::KernelTooOld => "run Linux 5.6 or later (5.16 or later recommended)",
            Unavailable::Refused { .. } => {
                "allow socket(AF_INET/AF_INET6, SOCK_STREAM, 262) in the security policy \
                 (seccomp profile, SELinux/AppArmor rules, Landlock ruleset)"
            }
            Unavailable::NotLinux => "use Linux; elsewhere only plain TCP is available",
        }
    }

    pub(crate) fn into_io_error(self) -> io::Error {
        io::Error::new(io::ErrorKind::Unsupported, self)
    }
}

impl fmt::Display for Unavailable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let cause = match self {
            Unavailable::DisabledBySysctl => {
                "MPTCP is disabled: net.mptcp.enabled=0 in this network namespace (ENOPROTOOPT)"
            }
            Unavailable::NotInKernel => {
                "MPTCP is not available: the kernel was built without MPTCP (EPROTONOSUPPORT)"
            }
            Unavailable::KernelTooOld => {
                "MPTCP is not available: the kernel predates MPTCP, Linux < 5.6 (EINVAL)"
            }
            Unavailable::Refused { errno } if *errno == libc::EPERM => {
                "MPTCP is not available: a security policy refused the socket (EPERM)"
            }
            Unavailable::Refused { .. } => {
                "MPTCP is not available: a security policy refused the socket (EACCES)"
            }
            Unavailable::NotLinux => "MPTCP is not available: not Linux",
        };
        write!(f, "{cause}; {}", self.fix())
    }
}

impl std::error::Error for Unavailable {}

/// The process-wide memory of a permanent reason (`EPROTONOSUPPORT` or
/// `EINVAL`); 0 while unknown.
#[cfg(target_os = "linux")]
static NEVER_ERRNO: AtomicI32 = AtomicI32::new(0);

/// A permanent reason seen earlier in this process.
#[cfg(target_os = "linux")]
pub(crate) fn known_permanent() -> Option<Unavailable> {
    match NEVER_ERRNO.load(Ordering::Relaxed) {
        0 => None,
        e => Unavailable::from_socket_error(&io::Error::from_raw_os_error(e)),
    }
}

#[cfg(not(target_os = "linux"))]
pub(crate) fn known_permanent() -> Option<Unavailable> {
    Some(Unavailable::NotLinux)
}

/// Remembers `reason` if it holds for the life of the process.
#[cfg(target_os = "linux")]
pub(crate) fn note(reason: Unavailable) {
    if reason.is_permanent() {
        if let Some(errno) = reason.raw_os_error() {
            NEVER_ERRNO.store(errno, Ordering::Relaxed);
        }
    }
}

#[cfg(feature = "test-seam")]
pub(crate) fn forget() {
    NEVER_ERRNO.store(0, Ordering::Relaxed);
    forget_disabled();
}

/// How long a dial or listen that saw `ENOPROTOOPT` (`net.mptcp.enabled=0`)
/// skips the MPTCP `socket()` in the same network namespace.
///
/// The failing `socket()` costs about 3 µs, 8% of a loopback dial, on every
/// dial of a host where MPTCP is switched off. Remembering it removes that
/// cost; keeping it at most a second means a namespace switched back to
/// `net.mptcp.enabled=1` gets MPTCP again within a second.
///
/// The memory is keyed by the network namespace's cookie (`SO_NETNS_COOKIE`,
/// read from the plain TCP socket that is made instead, a cheap
/// `getsockopt`): a thread that `setns()`es into another namespace finds a
/// different cookie on its TCP socket, closes it and tries MPTCP there. On
/// kernels without `SO_NETNS_COOKIE` (before 5.14) nothing is remembered.
///
/// Measured with perf/ item 2 (`perf run --items 2 --runs 5`, 6.18, 2 cores under
/// a load of about 2): a default dial with `net.mptcp.enabled=0` runs at 0.985x the
/// rate of a plain-TCP dial on the two-thread loop and 0.979x on the one-thread loop
/// (0.84x and 0.91x before this memory; Go's own fallback: 0.87x).
pub const DISABLED_MEMORY: std::time::Duration = std::time::Duration::from_secs(1);

/// The namespace (by cookie) where MPTCP was last seen disabled, and until when
/// that is believed.
#[cfg(target_os = "linux")]
static DISABLED: std::sync::Mutex<Option<(u64, std::time::Instant)>> = std::sync::Mutex::new(None);

/// The cookie of a namespace where MPTCP is believed disabled right now.
#[cfg(target_os = "linux")]
pub(crate) fn disabled_namespace() -> Option<u64> {
    let guard = DISABLED.lock().ok()?;
    let (cookie, until) = (*guard)?;
    (std::time::Instant::now() < until).then_some(cookie)
}

/// Remembers that MPTCP is disabled in the namespace `cookie`.
#[cfg(target_os = "linux")]
pub(crate) fn note_disabled(cookie: u64) {
    if let Ok(mut guard) = DISABLED.lock() {
        *guard = Some((cookie, std::time::Instant::now() + DISABLED_MEMORY));
    }
}

#[cfg(all(feature = "test-seam", target_os = "linux"))]
pub(crate) fn forget_disabled() {
    if let Ok(mut guard) = DISABLED.lock() {
        *guard = None;
    }
}

/// Whether this host, in the calling thread's network namespace, can create
/// MPTCP sockets, and if not, why.
///
/// Creates and closes one MPTCP socket (unless the kernel was already found
/// to lack MPTCP in this process). Errors that say nothing about MPTCP, such
/// as `EMFILE`, are returned as errors.
///
/// There is no need to call this before dialing or listening: a
/// [`Dialer`](crate::Dialer) or [`ListenConfig`](crate::ListenConfig) falls
/// back to TCP by itself (or errors, when MPTCP is required). Use it to
/// report the host's state, or to fail early.
///
/// ```
/// match mptcp_net::support()? {
///     mptcp_net::Support::Available => println!("MPTCP is available"),
///     mptcp_net::Support::Unavailable(why) => println!("{why}"),
///     _ => {}
/// }
/// # Ok::<(), std::io::Error>(())
/// ```
pub fn support() -> io::Result<Support> {
    #[cfg(target_os = "linux")]
    {
        if let Some(reason) = known_permanent() {
            return Ok(Support::Unavailable(reason));
        }
        let mut result = crate::sys::mptcp_socket(socket2::Domain::IPV4, socket2::Type::STREAM);
        if matches!(&result, Err(e) if e.raw_os_error() == Some(libc::EAFNOSUPPORT)) {
            // An IPv6-only host.
            result = crate::sys::mptcp_socket(socket2::Domain::IPV6, socket2::Type::STREAM);
        }
        match result {
            Ok(_socket) => Ok(Support::Available),
            Err(err) => match Unavailable::from_socket_error(&err) {
                Some(reason) => {
                    note(reason);
                    Ok(Support::Unavailable(reason))
                }
                None => Err(err),
            },
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        Ok(Support::Unavailable(Unavailable::NotLinux))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification_covers_the_contract() {
        let cls = |e| Unavailable::from_socket_error(&io::Error::from_raw_os_error(e));
        assert_eq!(cls(libc::ENOPROTOOPT), Some(Unavailable::DisabledBySysctl));
        assert_eq!(cls(libc::EPROTONOSUPPORT), Some(Unavailable::NotInKernel));
        assert_eq!(cls(libc::EINVAL), Some(Unavailable::KernelTooOld));
        assert_eq!(
            cls(libc::EACCES),
            Some(Unavailable::Refused {
                errno: libc::EACCES
            })
        );
        assert_eq!(
            cls(libc::EPERM),
            Some(Unavailable::Refused { errno: libc::EPERM })
        );
        for other in [
            libc::EMFILE,
            libc::ENFILE,
            libc::ENOBUFS,
            libc::EAFNOSUPPORT,
        ] {
            assert_eq!(cls(other), None, "errno {other} is not about MPTCP");
        }
        assert!(Unavailable::NotInKernel.is_permanent());
        assert!(Unavailable::KernelTooOld.is_permanent());
        assert!(!Unavailable::DisabledBySysctl.is_permanent());
        assert!(!Unavailable::Refused { errno: libc::EPERM }.is_permanent());
    }

    #[test]
    fn messages_name_cause_and_fix() {
        let msg = Unavailable::DisabledBySysctl.to_string();
        assert!(msg.contains("net.mptcp.enabled=0"), "{msg}");
        assert!(msg.contains("sysctl -w net.mptcp.enabled=1"), "{msg}");
        let err = Unavailable::NotInKernel.into_io_error();
        assert_eq!(err.kind(), io::ErrorKind::Unsupported);
        assert!(err.to_string().contains("CONFIG_MPTCP"), "{err}");
        let inner = err.get_ref().and_then(|e| e.downcast_ref::<Unavailable>());
        assert_eq!(inner, Some(&Unavailable::NotInKernel));
    }
}
