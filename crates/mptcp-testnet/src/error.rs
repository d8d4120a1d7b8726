//! The one error type of this crate.

use std::fmt;
use std::io;

/// Everything that can go wrong while building or driving a test network.
///
/// Each message says what is missing or what failed, and what to do about it.
#[derive(Debug)]
#[non_exhaustive]
pub enum Error {
    /// The process is not root (effective uid 0); namespaces, veths and qdiscs need it.
    NotRoot,
    /// A program this crate runs is not installed.
    MissingTool {
        /// The program, e.g. `ip` or `iptables`.
        tool: String,
        /// How to install it, e.g. `apt-get install iproute2`.
        hint: String,
    },
    /// The kernel lacks something the test network needs.
    Unsupported {
        /// What is missing, e.g. `/proc/sys/net/mptcp`.
        what: String,
        /// What to do about it.
        hint: String,
    },
    /// [`preflight`](crate::preflight) found one or more problems; each is listed.
    Preflight(Vec<Error>),
    /// A command ran and failed.
    Command {
        /// The command line, as run.
        command: String,
        /// Its exit code, `None` if a signal ended it.
        status: Option<i32>,
        /// What it printed on standard error (trimmed).
        stderr: String,
    },
    /// A system call or file operation failed.
    Io {
        /// What was being done.
        context: String,
        /// The underlying error.
        source: io::Error,
    },
    /// The caller asked for something this crate cannot build.
    InvalidConfig(String),
    /// Text read from the kernel was not in the expected format.
    Parse(String),
}

impl Error {
    pub(crate) fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }

    pub(crate) fn missing_tool(tool: &str) -> Self {
        let package = match tool {
            "ip" | "tc" | "ss" | "nstat" => "iproute2",
            "iptables" | "ip6tables" => "iptables",
            "nft" => "nftables",
            "sysctl" => "procps",
            other => other,
        };
        Error::MissingTool {
            tool: tool.to_string(),
            hint: format!("install {package} (apt-get install -y {package})"),
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::NotRoot => write!(
                f,
                "not running as root: network namespaces need CAP_SYS_ADMIN and CAP_NET_ADMIN; \
                 run as root (e.g. with sudo)"
            ),
            Error::MissingTool { tool, hint } => write!(f, "`{tool}` not found: {hint}"),
            Error::Unsupported { what, hint } => write!(f, "{what} is missing: {hint}"),
            Error::Preflight(problems) => {
                write!(f, "the test network cannot run here:")?;
                for problem in problems {
                    write!(f, " [{problem}]")?;
                }
                Ok(())
            }
            Error::Command {
                command,
                status,
                stderr,
            } => {
                match status {
                    Some(code) => write!(f, "`{command}` failed with exit code {code}")?,
                    None => write!(f, "`{command}` was killed by a signal")?,
                }
                if !stderr.is_empty() {
                    write!(f, ": {stderr}")?;
                }
                Ok(())
            }
            Error::Io { context, source } => write!(f, "{context}: {source}"),
            Error::InvalidConfig(msg) => write!(f, "invalid test network configuration: {msg}"),
            Error::Parse(msg) => write!(f, "unexpected kernel output: {msg}"),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Error::Io { source, .. } => Some(source),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_say_what_to_do() {
        assert!(Error::NotRoot.to_string().contains("run as root"));
        let tool = Error::missing_tool("tc").to_string();
        assert!(tool.contains("`tc`") && tool.contains("apt-get install -y iproute2"));
        let nft = Error::missing_tool("nft").to_string();
        assert!(nft.contains("apt-get install -y nftables"), "{nft}");
        let ipt = Error::missing_tool("ip6tables").to_string();
        assert!(ipt.contains("install iptables"), "{ipt}");
        let all = Error::Preflight(vec![Error::NotRoot, Error::missing_tool("ip")]).to_string();
        assert!(
            all.contains("run as root") && all.contains("`ip` not found"),
            "{all}"
        );
        let cmd = Error::Command {
            command: "ip link".into(),
            status: Some(2),
            stderr: "boom".into(),
        };
        assert_eq!(cmd.to_string(), "`ip link` failed with exit code 2: boom");
    }
}
