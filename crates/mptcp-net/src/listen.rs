//! [`ListenConfig`]: listeners that accept MPTCP and plain TCP clients.

use std::io;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};

use socket2::{Domain, Socket};

use crate::policy::{process_default, Policy};
use crate::socket::{no_addresses, open, Hook, Plan};

/// The listen backlog of [`std::net::TcpListener::bind`] on Linux.
pub const DEFAULT_BACKLOG: i32 = 128;

/// Options for listening with Multipath TCP (Go's `net.ListenConfig`).
///
/// An MPTCP listener accepts MPTCP *and* plain TCP clients: each accepted
/// stream tells which through [`MptcpExt`](crate::MptcpExt). Defaults are
/// those of [`TcpListener::bind`]: `SO_REUSEADDR` on Unix and a backlog of
/// [`DEFAULT_BACKLOG`]; `IPV6_V6ONLY` is left at the system default.
///
/// Listen on the wildcard address (`0.0.0.0` or `[::]`) on hosts with
/// several addresses: extra subflows that clients open towards the host's
/// other addresses are matched to the listener by address, and a listener
/// bound to one address never sees them.
///
/// ```
/// use std::io::{Read, Write};
/// use mptcp_net::{Dialer, ListenConfig, MptcpExt};
///
/// let listener = ListenConfig::new().listen("127.0.0.1:0")?;
/// let addr = listener.local_addr()?;
/// let mut client = Dialer::new().dial(addr)?;
/// let (mut server, _) = listener.accept()?;
/// client.write_all(b"hello")?;
/// let mut buf = [0; 5];
/// server.read_exact(&mut buf)?;
/// assert_eq!(&buf, b"hello");
/// println!("server side: {}", server.mptcp_status()?);
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct ListenConfig {
    policy: Policy,
    backlog: i32,
    hook: Option<Hook>,
    keep_alive: crate::KeepAliveConfig,
}

impl Default for ListenConfig {
    fn default() -> ListenConfig {
        ListenConfig {
            policy: Policy::default(),
            backlog: DEFAULT_BACKLOG,
            hook: None,
            keep_alive: crate::KeepAliveConfig::default(),
        }
    }
}

impl ListenConfig {
    /// A config that follows the process default
    /// ([`process_default`](crate::process_default)) with std's defaults.
    pub fn new() -> ListenConfig {
        ListenConfig::default()
    }

    /// TCP keep-alive for accepted connections, like Go's `ListenConfig.KeepAlive`:
    /// `Some(period)` probes an idle connection after `period`, then every
    /// `period`, 9 times; `None` turns it off. The default is on, with Go's 15 s.
    ///
    /// The options are set on the listening socket, and Linux gives every accepted
    /// socket (MPTCP or TCP) the listener's keep-alive settings, so no call is
    /// made per connection. See [`Dialer::set_keep_alive`](crate::Dialer::set_keep_alive)
    /// for MPTCP sockets and refused options.
    pub fn set_keep_alive(&mut self, period: Option<std::time::Duration>) -> &mut Self {
        self.keep_alive = crate::KeepAliveConfig::from_period(period);
        self
    }

    /// Every keep-alive setting (Go's `ListenConfig.KeepAliveConfig`).
    pub fn set_keep_alive_config(&mut self, config: crate::KeepAliveConfig) -> &mut Self {
        self.keep_alive = config;
        self
    }

    /// The keep-alive settings.
    pub fn keep_alive_config(&self) -> crate::KeepAliveConfig {
        self.keep_alive
    }

    /// Uses MPTCP (`true`) or plain TCP (`false`) for this config, whatever
    /// the process default says (Go's `ListenConfig.SetMultipathTCP`).
    /// `false` also clears
    /// [`require_multipath_tcp`](ListenConfig::require_multipath_tcp).
    pub fn set_multipath_tcp(&mut self, enabled: bool) -> &mut Self {
        self.policy.set(enabled);
        self
    }

    /// Whether listeners made from this config will try MPTCP (Go's
    /// `ListenConfig.MultipathTCP`): the explicit setting, else the process
    /// default.
    pub fn multipath_tcp(&self) -> bool {
        self.policy.resolve(|| process_default().listeners)
    }

    /// With `true`, listen fails with an [`io::ErrorKind::Unsupported`]
    /// error naming the cause and the fix instead of falling back to TCP,
    /// and a socket hook error is never retried on TCP. Implies
    /// `set_multipath_tcp(true)`.
    pub fn require_multipath_tcp(&mut self, required: bool) -> &mut Self {
        self.policy.require(required);
        self
    }

    /// Whether [`require_multipath_tcp`](ListenConfig::require_multipath_tcp) is on.
    pub fn multipath_tcp_required(&self) -> bool {
        self.policy.required
    }

    /// The `listen(2)` backlog (default [`DEFAULT_BACKLOG`]; the kernel caps
    /// it at `net.core.somaxconn`).
    pub fn set_backlog(&mut self, backlog: i32) -> &mut Self {
        self.backlog = backlog;
        self
    }

    /// The `listen(2)` backlog.
    pub fn backlog(&self) -> i32 {
        self.backlog
    }

    /// Runs `hook` on each new socket after our defaults (`SO_REUSEADDR`)
    /// and before `bind(2)` (Go's `ListenConfig.Control`).
    ///
    /// If the hook fails with `EOPNOTSUPP` or `ENOPROTOOPT` on an MPTCP
    /// socket and MPTCP is not required, the listener is made with plain TCP
    /// instead and the hook runs again on that socket; a `tracing` event says
    /// why. See [`crate::socket_options`].
    pub fn set_socket_hook<F>(&mut self, hook: F) -> &mut Self
    where
        F: Fn(&Socket) -> io::Result<()> + Send + Sync + 'static,
    {
        self.hook = Some(Hook::new(hook));
        self
    }

    /// Removes the socket hook.
    pub fn clear_socket_hook(&mut self) -> &mut Self {
        self.hook = None;
        self
    }

    /// Binds and listens on `addr`, trying each resolved address in order
    /// until one works (like [`TcpListener::bind`]).
    pub fn listen<A: ToSocketAddrs>(&self, addr: A) -> io::Result<TcpListener> {
        let mut last_err = None;
        for addr in addr.to_socket_addrs()? {
            match self.listen_one(addr, false) {
                Ok(socket) => return Ok(socket.into()),
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err.unwrap_or_else(no_addresses))
    }

    /// Binds and listens on `addr` and returns a tokio listener (names are
    /// resolved with [`tokio::net::lookup_host`]). The future is `Send`.
    ///
    /// ```
    /// # #[tokio::main(flavor = "current_thread")]
    /// # async fn main() -> std::io::Result<()> {
    /// use mptcp_net::{ListenConfig, MptcpExt};
    ///
    /// let listener = ListenConfig::new().listen_async("127.0.0.1:0").await?;
    /// println!("listening on {}, {}", listener.local_addr()?, listener.mptcp_status()?);
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tokio")]
    pub async fn listen_async<A: tokio::net::ToSocketAddrs>(
        &self,
        addr: A,
    ) -> io::Result<tokio::net::TcpListener> {
        let mut last_err = None;
        for addr in tokio::net::lookup_host(addr).await? {
            match self.listen_one(addr, true) {
                Ok(socket) => {
                    return tokio::net::TcpListener::from_std(socket.into());
                }
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err.unwrap_or_else(no_addresses))
    }

    fn listen_one(&self, addr: SocketAddr, nonblocking: bool) -> io::Result<Socket> {
        let plan = Plan {
            mptcp: self.multipath_tcp(),
            required: self.policy.required,
            defaults: &std_defaults,
            hook: self.hook.as_ref(),
            keep_alive: self.keep_alive,
            what: "listen",
            nonblocking,
        };
        let socket = open(Domain::for_address(addr), &plan)?;
        socket.bind(&addr.into())?;
        socket.listen(self.backlog)?;
        Ok(socket)
    }
}

/// What `TcpListener::bind` sets before binding.
fn std_defaults(socket: &Socket) -> io::Result<()> {
    #[cfg(unix)]
    socket.set_reuse_address(true)?;
    #[cfg(not(unix))]
    let _ = socket;
    Ok(())
}
