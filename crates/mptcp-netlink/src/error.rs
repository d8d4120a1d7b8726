//! The error type.

use std::io;

use crate::codec::framing::{Failure, Nack};
use crate::codec::DecodeError;

/// What went wrong, with a message that says what to do about it.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The kernel refused with `EPERM`: the operation needs `CAP_NET_ADMIN`.
    #[error(
        "{op}: permission denied: needs CAP_NET_ADMIN in this network namespace \
         (run as root, or grant the capability with `setcap cap_net_admin+ep` or \
         an ambient capability)"
    )]
    PermissionDenied {
        /// The operation, e.g. `"add endpoint"`.
        op: &'static str,
    },
    /// The kernel refused with `EEXIST`.
    #[error("{op}: already exists{}", detail(message))]
    Exists {
        /// The operation.
        op: &'static str,
        /// The kernel's extended-ack message, if any.
        message: Option<String>,
    },
    /// The kernel refused with `ENOENT`, or with `EINVAL` and a message saying "not
    /// found" (how the path manager reports an unknown endpoint id); or nothing matched.
    #[error("{op}: not found{}", detail(message))]
    NotFound {
        /// The operation.
        op: &'static str,
        /// The kernel's extended-ack message, or what was looked for.
        message: Option<String>,
    },
    /// The generic netlink family `mptcp_pm` does not exist.
    #[error(
        "kernel without MPTCP path manager: the generic netlink family \"mptcp_pm\" is \
         missing (needs Linux 5.7 or later built with CONFIG_MPTCP=y)"
    )]
    FamilyNotFound,
    /// A request was refused before anything was sent; the message says why.
    #[error("invalid argument: {0}")]
    Invalid(String),
    /// Any other error from the kernel.
    #[error("{op}: {}{}", io::Error::from_raw_os_error(*errno), detail(message))]
    Kernel {
        /// The operation.
        op: &'static str,
        /// The positive errno.
        errno: i32,
        /// The kernel's extended-ack message, if any.
        message: Option<String>,
    },
    /// The event socket's queue overflowed (`ENOBUFS`): events were lost. Reading goes
    /// on with later events.
    #[error(
        "path-manager events were lost: the socket's receive queue overflowed \
         (read events faster)"
    )]
    EventsLost,
    /// A system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// The error.
        #[source]
        source: io::Error,
    },
    /// The kernel sent bytes this crate cannot read.
    #[error("malformed netlink message: {0}")]
    Decode(#[from] DecodeError),
}

fn detail(message: &Option<String>) -> String {
    match message {
        Some(m) => format!(" ({m})"),
        None => String::new(),
    }
}

impl Error {
    pub(crate) fn io(context: &'static str, source: io::Error) -> Self {
        Error::Io { context, source }
    }

    /// The typed error for an errno the kernel answered `op` with.
    pub(crate) fn from_nack(op: &'static str, nack: Nack) -> Self {
        match nack.errno {
            libc::EPERM => Error::PermissionDenied { op },
            libc::EEXIST => Error::Exists {
                op,
                message: nack.message,
            },
            libc::ENOENT => Error::NotFound {
                op,
                message: nack.message,
            },
            // The path manager answers EINVAL "address not found" for an unknown endpoint
            // id, and EINVAL "... not found" for other lookups.
            libc::EINVAL
                if nack
                    .message
                    .as_deref()
                    .is_some_and(|m| m.contains("not found")) =>
            {
                Error::NotFound {
                    op,
                    message: nack.message,
                }
            }
            errno => Error::Kernel {
                op,
                errno,
                message: nack.message,
            },
        }
    }

    pub(crate) fn from_failure(op: &'static str, failure: Failure) -> Self {
        match failure {
            Failure::Nack(nack) => Error::from_nack(op, nack),
            Failure::Decode(e) => Error::Decode(e),
            Failure::Overrun => Error::io(
                "netlink overrun",
                io::Error::other(format!("{op}: reply lost")),
            ),
        }
    }

    /// The errno behind this error, if it came from the kernel.
    pub fn errno(&self) -> Option<i32> {
        match self {
            Error::PermissionDenied { .. } => Some(libc::EPERM),
            Error::Exists { .. } => Some(libc::EEXIST),
            Error::NotFound { .. } => Some(libc::ENOENT),
            Error::Kernel { errno, .. } => Some(*errno),
            Error::Io { source, .. } => source.raw_os_error(),
            _ => None,
        }
    }
}

impl From<Error> for io::Error {
    fn from(e: Error) -> io::Error {
        let kind = match &e {
            Error::PermissionDenied { .. } => io::ErrorKind::PermissionDenied,
            Error::Exists { .. } => io::ErrorKind::AlreadyExists,
            Error::NotFound { .. } | Error::FamilyNotFound => io::ErrorKind::NotFound,
            Error::Invalid(_) => io::ErrorKind::InvalidInput,
            Error::Decode(_) => io::ErrorKind::InvalidData,
            Error::Io { source, .. } => source.kind(),
            _ => io::ErrorKind::Other,
        };
        io::Error::new(kind, e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_do() {
        let e = Error::from_nack(
            "add endpoint",
            Nack {
                errno: libc::EPERM,
                message: None,
            },
        );
        assert!(e.to_string().contains("needs CAP_NET_ADMIN"), "{e}");
        assert!(Error::FamilyNotFound
            .to_string()
            .contains("kernel without MPTCP path manager"));
        let e = Error::from_nack(
            "set limits",
            Nack {
                errno: libc::EINVAL,
                message: Some("limit greater than maximum (8)".into()),
            },
        );
        assert_eq!(e.errno(), Some(libc::EINVAL));
        assert!(
            e.to_string().contains("(limit greater than maximum (8))"),
            "{e}"
        );
        let e = Error::from_nack(
            "add endpoint",
            Nack {
                errno: libc::EEXIST,
                message: None,
            },
        );
        assert_eq!(e.to_string(), "add endpoint: already exists");
        assert_eq!(io::Error::from(e).kind(), io::ErrorKind::AlreadyExists);
    }
}
