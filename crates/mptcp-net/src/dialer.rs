//! [`Dialer`]: outgoing connections, MPTCP first.

use std::io;
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::{Duration, Instant};

use socket2::{Domain, Socket};

use crate::connect::Attempts;
use crate::policy::{process_default, Policy};
use crate::socket::{no_addresses, open, Hook, Plan};
use crate::KeepAliveConfig;

/// Go's `net.Dialer` fallback delay: how long the IPv6 attempts run alone
/// before the IPv4 race starts ([`Dialer::set_fallback_delay`]).
pub const DEFAULT_FALLBACK_DELAY: Duration = Duration::from_millis(300);

/// Options for opening outgoing connections with Multipath TCP (Go's
/// `net.Dialer`).
///
/// A `Dialer` returns the standard stream types, so everything built on them
/// (hyper, tonic, rustls, ...) keeps working. MPTCP is tried first; plain TCP
/// is used only when this host cannot create MPTCP sockets at all
/// (`net.mptcp.enabled=0`, a kernel without MPTCP, a security policy) or when
/// the [socket hook](Dialer::set_socket_hook) sets an option MPTCP does not
/// support. A connect error is returned as it is, after at most one connect
/// per resolved address: nothing is ever re-dialed.
///
/// A name that resolves to both IPv6 and IPv4 addresses is dialed with Happy
/// Eyeballs (RFC 8305) by default, as Go does: IPv6 first, IPv4 racing it
/// 300 ms later; see [`set_fallback_delay`](Dialer::set_fallback_delay).
///
/// When the peer or a middlebox does not speak MPTCP, the kernel itself
/// carries on as plain TCP inside the MPTCP socket ("fell back"); ask
/// [`MptcpExt::mptcp_status`](crate::MptcpExt::mptcp_status) to find out.
///
/// ```no_run
/// use std::io::Write;
/// use mptcp_net::{Dialer, MptcpExt};
///
/// let mut stream = Dialer::new().dial("example.com:80")?;
/// println!("MPTCP on the wire: {}", stream.multipath_tcp()?);
/// stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Dialer {
    policy: Policy,
    timeout: Option<Duration>,
    local_addr: Option<SocketAddr>,
    hook: Option<Hook>,
    keep_alive: KeepAliveConfig,
    fallback_delay: Option<Duration>,
}

impl Default for Dialer {
    fn default() -> Dialer {
        Dialer {
            policy: Policy::default(),
            timeout: None,
            local_addr: None,
            hook: None,
            keep_alive: KeepAliveConfig::default(),
            fallback_delay: Some(DEFAULT_FALLBACK_DELAY),
        }
    }
}

impl Dialer {
    /// A dialer that follows the process default ([`process_default`]) and
    /// has no timeout, no local address and no hook.
    pub fn new() -> Dialer {
        Dialer::default()
    }

    /// Uses MPTCP (`true`) or plain TCP (`false`) for this dialer, whatever
    /// the process default says (Go's `Dialer.SetMultipathTCP`). `false`
    /// also clears [`require_multipath_tcp`](Dialer::require_multipath_tcp).
    pub fn set_multipath_tcp(&mut self, enabled: bool) -> &mut Self {
        self.policy.set(enabled);
        self
    }

    /// Whether this dialer will try MPTCP: the value given to
    /// [`set_multipath_tcp`](Dialer::set_multipath_tcp), else the process
    /// default (Go's `Dialer.MultipathTCP`). This is the intent; whether a
    /// connection really uses MPTCP is told by
    /// [`MptcpExt`](crate::MptcpExt).
    ///
    /// ```
    /// let mut dialer = mptcp_net::Dialer::new();
    /// dialer.set_multipath_tcp(false);
    /// assert!(!dialer.multipath_tcp());
    /// ```
    pub fn multipath_tcp(&self) -> bool {
        self.policy.resolve(|| process_default().dialers)
    }

    /// With `true`, dial fails with an [`io::ErrorKind::Unsupported`] error
    /// (holding an [`Unavailable`](crate::Unavailable) that names the cause
    /// and the fix) instead of falling back to TCP when this host cannot
    /// create MPTCP sockets, and a socket hook error is never retried on TCP.
    /// Implies `set_multipath_tcp(true)`.
    ///
    /// A *peer* that does not speak MPTCP still yields a connection that
    /// fell back to TCP; check [`MptcpExt::mptcp_status`](crate::MptcpExt::mptcp_status)
    /// if that matters.
    pub fn require_multipath_tcp(&mut self, required: bool) -> &mut Self {
        self.policy.require(required);
        self
    }

    /// Whether [`require_multipath_tcp`](Dialer::require_multipath_tcp) is on.
    pub fn multipath_tcp_required(&self) -> bool {
        self.policy.required
    }

    /// Gives up on a dial after `timeout` (`None`: the kernel's own SYN
    /// retry limit). When a name resolves to several addresses, the time left
    /// is shared among those not yet tried, as Go does, so a black-holed
    /// first address cannot eat it all.
    pub fn set_timeout(&mut self, timeout: Option<Duration>) -> &mut Self {
        self.timeout = timeout;
        self
    }

    /// The connect timeout.
    pub fn timeout(&self) -> Option<Duration> {
        self.timeout
    }

    /// Happy Eyeballs (RFC 8305) like Go's `Dialer.FallbackDelay`: when the
    /// resolved addresses hold both families, the IPv6 ones are dialed in
    /// order and, `delay` after the dial began (or at once when they have all
    /// failed), the IPv4 ones in order alongside; the first connection made
    /// wins and the other attempt is cancelled, its socket closed. Each
    /// family's addresses share the connect timeout among themselves as in a
    /// serial dial (the two families run side by side, both within the one
    /// deadline). When everything fails, the error is the first IPv6 one, as
    /// Go returns.
    ///
    /// The default is `Some(`[`DEFAULT_FALLBACK_DELAY`]`)`, Go's 300 ms.
    /// `Some(Duration::ZERO)` starts both families at once (in Go a zero
    /// delay means the default). `None` turns Happy Eyeballs off: the
    /// addresses are dialed one after the other in the resolved order, as
    /// `TcpStream::connect` does; this is Go's negative `FallbackDelay`.
    ///
    /// Go takes the family of the *first* resolved address as the primary one,
    /// after its resolver sorted the list by RFC 6724; here IPv6 is always
    /// primary. The two agree whenever the resolver puts IPv6 first, which
    /// RFC 6724 (and glibc's `getaddrinfo`) does when this host has a usable
    /// IPv6 source address of the destination's scope; they differ when the
    /// list starts with IPv4 (no global IPv6 address, or a `gai.conf`
    /// preferring IPv4): Go races IPv4 first, this dialer IPv6. Use `None` to
    /// keep the resolver's order exactly.
    ///
    /// Both [`dial`](Dialer::dial) and [`dial_async`](Dialer::dial_async)
    /// race, without a thread per attempt: `dial` makes the sockets
    /// non-blocking and waits for both connects with one `poll(2)` on the
    /// calling thread (Linux; elsewhere `dial` stays serial), `dial_async`
    /// races two futures on the caller's task. A dialer with a
    /// [local address](Dialer::set_local_addr) dials only that family, so it
    /// never races.
    ///
    /// ```
    /// use std::time::Duration;
    /// let mut dialer = mptcp_net::Dialer::new();
    /// assert_eq!(dialer.fallback_delay(), Some(Duration::from_millis(300)));
    /// dialer.set_fallback_delay(None); // serial, in the resolved order
    /// ```
    pub fn set_fallback_delay(&mut self, delay: Option<Duration>) -> &mut Self {
        self.fallback_delay = delay;
        self
    }

    /// The Happy Eyeballs fallback delay; `None` when it is off.
    pub fn fallback_delay(&self) -> Option<Duration> {
        self.fallback_delay
    }

    /// Binds outgoing sockets to this local address (port 0 lets the kernel
    /// pick). Only remote addresses of the same family are dialed.
    ///
    /// This is the address of the *first* subflow; the kernel path manager
    /// adds the others from its endpoints.
    pub fn set_local_addr(&mut self, addr: Option<SocketAddr>) -> &mut Self {
        self.local_addr = addr;
        self
    }

    /// The local address, if one is set.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// TCP keep-alive like Go's `Dialer.KeepAlive`: `Some(period)` probes an idle
    /// connection after `period`, then every `period`, 9 times; `None` turns it off.
    /// The default is on, with Go's 15 s ([`KeepAliveConfig::default`]).
    ///
    /// On an MPTCP socket the kernel applies the options to every subflow. Linux
    /// 6.18 accepts `SO_KEEPALIVE`, `TCP_KEEPIDLE`, `TCP_KEEPINTVL` and
    /// `TCP_KEEPCNT` on MPTCP sockets (since 5.19, 6.2 and 6.2); where one is
    /// refused with `EOPNOTSUPP`/`ENOPROTOOPT`, the socket-hook rule applies: a
    /// plain TCP socket, or an error when MPTCP is required.
    ///
    /// Measured on 6.18: a vanished peer is found in idle + interval x count on
    /// both kinds of socket, but differently. A TCP socket fails with `ETIMEDOUT`.
    /// On an MPTCP socket the probes run on each subflow and close the dead one;
    /// the connection itself stays open without a working subflow (the kernel
    /// keeps it for a path manager that may add one), so a reader blocks until its
    /// own timeout. Programs that must notice a dead peer on MPTCP should keep a
    /// read timeout or watch [`MptcpExt::subflows`](crate::MptcpExt::subflows).
    pub fn set_keep_alive(&mut self, period: Option<Duration>) -> &mut Self {
        self.keep_alive = KeepAliveConfig::from_period(period);
        self
    }

    /// Every keep-alive setting (Go's `Dialer.KeepAliveConfig`).
    pub fn set_keep_alive_config(&mut self, config: KeepAliveConfig) -> &mut Self {
        self.keep_alive = config;
        self
    }

    /// The keep-alive settings.
    pub fn keep_alive_config(&self) -> KeepAliveConfig {
        self.keep_alive
    }

    /// Runs `hook` on each new socket before it is bound or connected (Go's
    /// `Dialer.Control`), to set socket options.
    ///
    /// If the hook fails with `EOPNOTSUPP` or `ENOPROTOOPT` on an MPTCP
    /// socket (an option MPTCP does not support, such as `TCP_MD5SIG` or, on
    /// some kernels, `TCP_USER_TIMEOUT`), and MPTCP is not required, the
    /// socket is closed and the dial goes on with a plain TCP socket, on
    /// which the hook runs a second time; a `tracing` event says why. Check
    /// `socket.protocol()` in the hook to tell the two apart. See
    /// [`crate::socket_options`] for each option.
    ///
    /// ```
    /// let mut dialer = mptcp_net::Dialer::new();
    /// dialer.set_socket_hook(|socket| socket.set_tcp_nodelay(true));
    /// ```
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

    /// Connects to `addr` and returns the first connection made (like
    /// [`TcpStream::connect`](std::net::TcpStream::connect)).
    ///
    /// When the resolved addresses hold one family (or Happy Eyeballs is
    /// off), each is tried in order, blocking in `connect()`. The error is
    /// then the last address's error, as it came from the kernel:
    /// `ConnectionRefused` stays `ConnectionRefused`.
    ///
    /// With both families, on Linux, the dial races them on this thread
    /// ([`set_fallback_delay`](Dialer::set_fallback_delay)): the sockets are
    /// non-blocking, the connects in progress (at most one per family) are
    /// waited for with one `poll(2)` and their outcome read from `SO_ERROR`;
    /// the winner is returned in blocking mode and the loser closed. The error
    /// is then the first IPv6 one, as Go returns. Other platforms dial
    /// serially.
    ///
    /// One `socket()` (two if the hook forces TCP), one `connect()` per
    /// address tried.
    pub fn dial<A: ToSocketAddrs>(&self, addr: A) -> io::Result<TcpStream> {
        let addrs: Vec<SocketAddr> = addr.to_socket_addrs()?.collect();
        #[allow(unused_mut)] // Happy Eyeballs in `dial` is Linux only.
        let mut addrs = self.usable(addrs)?;
        let deadline = self.deadline();
        #[cfg(target_os = "linux")]
        if let Some(delay) = self.fallback_delay {
            match crate::connect::split_families(addrs) {
                Ok((primaries, fallbacks)) => {
                    return crate::connect::blocking::race(
                        self, primaries, fallbacks, delay, deadline,
                    );
                }
                Err(one_family) => addrs = one_family,
            }
        }
        let mut attempts = Attempts::new(addrs, deadline);
        let mut last_err = None;
        while let Some((addr, timeout)) = attempts.next() {
            match self.dial_one(addr, timeout) {
                Ok(stream) => return Ok(stream),
                Err(err) => last_err = Some(err),
            }
        }
        Err(last_err.unwrap_or_else(|| attempts.timed_out()))
    }

    fn dial_one(&self, addr: SocketAddr, timeout: Option<Duration>) -> io::Result<TcpStream> {
        let socket = self.open(addr, false)?;
        match timeout {
            Some(t) => socket.connect_timeout(&addr.into(), t)?,
            None => socket.connect(&addr.into())?,
        }
        Ok(socket.into())
    }

    /// A bound, unconnected socket for `addr`.
    pub(crate) fn open(&self, addr: SocketAddr, nonblocking: bool) -> io::Result<Socket> {
        let plan = Plan {
            mptcp: self.multipath_tcp(),
            required: self.policy.required,
            defaults: &|_| Ok(()),
            hook: self.hook.as_ref(),
            keep_alive: self.keep_alive,
            what: "dial",
            nonblocking,
        };
        let socket = open(Domain::for_address(addr), &plan)?;
        if let Some(local) = self.local_addr {
            socket.bind(&local.into())?;
        }
        Ok(socket)
    }

    /// Connects to `addr` without blocking the runtime (names are resolved
    /// with [`tokio::net::lookup_host`]): the addresses in order, or, when they
    /// hold both families, Happy Eyeballs
    /// ([`set_fallback_delay`](Dialer::set_fallback_delay)) with two serial
    /// dials raced on the caller's task (no task spawned); dropping the loser
    /// closes its socket. The errors are as for [`dial`](Dialer::dial).
    ///
    /// The connect is a real non-blocking `connect()`; completion is read
    /// from `SO_ERROR`, so a refused connect is an error, not a stream that
    /// fails later. The future is `Send`.
    ///
    /// ```no_run
    /// # async fn run() -> std::io::Result<()> {
    /// use mptcp_net::{Dialer, MptcpExt};
    /// use tokio::io::AsyncWriteExt;
    ///
    /// let mut stream = Dialer::new().dial_async("example.com:80").await?;
    /// println!("{}", stream.mptcp_status()?);
    /// stream.write_all(b"GET / HTTP/1.0\r\n\r\n").await?;
    /// # Ok(()) }
    /// ```
    #[cfg(feature = "tokio")]
    pub async fn dial_async<A: tokio::net::ToSocketAddrs>(
        &self,
        addr: A,
    ) -> io::Result<tokio::net::TcpStream> {
        use crate::connect::nonblocking::{race, serial, Report};
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host(addr).await?.collect();
        let mut addrs = self.usable(addrs)?;
        let deadline = self.deadline();
        if let Some(delay) = self.fallback_delay {
            match crate::connect::split_families(addrs) {
                Ok((primaries, fallbacks)) => {
                    return race(self, primaries, fallbacks, delay, deadline).await;
                }
                Err(one_family) => addrs = one_family,
            }
        }
        serial(self, Attempts::new(addrs, deadline), Report::Last).await
    }

    fn deadline(&self) -> Option<Instant> {
        self.timeout.map(|t| Instant::now() + t)
    }

    /// The resolved addresses this dialer can use: those of the local
    /// address's family when one is set.
    fn usable(&self, mut addrs: Vec<SocketAddr>) -> io::Result<Vec<SocketAddr>> {
        if addrs.is_empty() {
            return Err(no_addresses());
        }
        if let Some(local) = self.local_addr {
            let same = |a: &SocketAddr| a.is_ipv4() == local.is_ipv4();
            if !addrs.iter().any(same) {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("no address of the local address's family ({local}) among {addrs:?}"),
                ));
            }
            addrs.retain(same);
        }
        Ok(addrs)
    }
}
