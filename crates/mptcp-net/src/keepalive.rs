//! TCP keep-alive, on by default as in Go's `net.Dialer` and `net.ListenConfig`.

use std::io;
use std::time::Duration;

use socket2::{Socket, TcpKeepalive};

/// Go's default keep-alive idle time and probe interval (`net.defaultTCPKeepAliveIdle`,
/// `net.defaultTCPKeepAliveInterval`).
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(15);
/// Go's default number of unanswered probes (`net.defaultTCPKeepAliveCount`), which
/// is also the kernel's (`net.ipv4.tcp_keepalive_probes` starts at 9 in every network
/// namespace).
pub const DEFAULT_KEEP_ALIVE_COUNT: u32 = 9;

/// TCP keep-alive settings for a [`Dialer`](crate::Dialer) or a
/// [`ListenConfig`](crate::ListenConfig) (Go's `net.KeepAliveConfig`).
///
/// The default is Go's: on, 15 s idle before the first probe, a probe every 15 s,
/// the connection dropped after 9 unanswered probes (so a silent peer is found
/// after 15 + 15 x 9 = 150 s). A `None` field leaves that setting at the system's
/// default (`net.ipv4.tcp_keepalive_*`).
///
/// The count is where the default differs from Go in how, not in what: Go sets
/// `TCP_KEEPCNT` to 9 on every socket, while the default here leaves `count` at
/// `None`, the kernel's `net.ipv4.tcp_keepalive_probes`, which is 9
/// ([`DEFAULT_KEEP_ALIVE_COUNT`]) unless an operator changed it (then their
/// value holds). That saves one system call per socket; set
/// `count: Some(9)` to pin it whatever the host says.
///
/// ```
/// use std::time::Duration;
/// use mptcp_net::{Dialer, KeepAliveConfig};
///
/// let mut dialer = Dialer::new();
/// dialer.set_keep_alive_config(KeepAliveConfig {
///     idle: Some(Duration::from_secs(5)),
///     interval: Some(Duration::from_secs(2)),
///     count: Some(3),
///     ..KeepAliveConfig::default()
/// });
/// assert!(dialer.keep_alive_config().enable);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct KeepAliveConfig {
    /// Keep-alive on (`SO_KEEPALIVE`).
    pub enable: bool,
    /// Idle time before the first probe (`TCP_KEEPIDLE`).
    pub idle: Option<Duration>,
    /// Time between probes (`TCP_KEEPINTVL`).
    pub interval: Option<Duration>,
    /// Unanswered probes before the connection is dropped (`TCP_KEEPCNT`).
    pub count: Option<u32>,
}

impl Default for KeepAliveConfig {
    fn default() -> Self {
        KeepAliveConfig {
            enable: true,
            idle: Some(DEFAULT_KEEP_ALIVE),
            interval: Some(DEFAULT_KEEP_ALIVE),
            // The kernel's default, 9: see the type's docs.
            count: None,
        }
    }
}

impl KeepAliveConfig {
    /// Keep-alive off (the kernel's default for a new socket).
    pub const fn disabled() -> Self {
        KeepAliveConfig {
            enable: false,
            idle: None,
            interval: None,
            count: None,
        }
    }

    /// Go's `Dialer.KeepAlive`: `Some(d)` turns keep-alive on with `d` as both the
    /// idle time and the probe interval (the kernel's count of probes, 9 unless
    /// changed); `None` turns it off.
    pub fn from_period(period: Option<Duration>) -> Self {
        match period {
            Some(d) => KeepAliveConfig {
                enable: true,
                idle: Some(d),
                interval: Some(d),
                count: None,
            },
            None => KeepAliveConfig::disabled(),
        }
    }

    /// Sets these options on `socket`: `SO_KEEPALIVE`, then `TCP_KEEPIDLE`,
    /// `TCP_KEEPINTVL` and `TCP_KEEPCNT` for the fields given. Nothing is set when
    /// keep-alive is off (a new socket has it off).
    pub(crate) fn apply(&self, socket: &Socket) -> io::Result<()> {
        if !self.enable {
            return Ok(());
        }
        let mut ka = TcpKeepalive::new();
        if let Some(idle) = self.idle {
            ka = ka.with_time(idle);
        }
        #[cfg(any(
            target_os = "linux",
            target_os = "android",
            target_os = "macos",
            target_os = "freebsd"
        ))]
        {
            if let Some(interval) = self.interval {
                ka = ka.with_interval(interval);
            }
            if let Some(count) = self.count {
                ka = ka.with_retries(count);
            }
        }
        socket.set_tcp_keepalive(&ka)
    }
}
