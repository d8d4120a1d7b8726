//! Socket options and MPTCP: what happens, and what to do.
//!
//! An MPTCP socket is a stream socket, but it is not a TCP socket: the kernel
//! applies options to every subflow, and refuses those it cannot apply
//! consistently. When programs and libraries moved to MPTCP (Go 1.24 made
//! its listeners MPTCP by default) this is what broke. Each answer below was
//! checked on Linux 6.18; "refused" means `setsockopt` fails with
//! `ENOPROTOOPT` (or `EOPNOTSUPP`) on an MPTCP socket.
//!
//! **The general rule.** Set options in the socket hook
//! ([`Dialer::set_socket_hook`](crate::Dialer::set_socket_hook),
//! [`ListenConfig::set_socket_hook`](crate::ListenConfig::set_socket_hook)).
//! If the hook fails with `ENOPROTOOPT`/`EOPNOTSUPP` on the MPTCP socket,
//! the dial or listen is retried once with plain TCP (unless MPTCP is
//! required), so the option always takes effect, at the price of MPTCP. If
//! you would rather keep MPTCP and lose the option, ignore the error in the
//! hook. Options set *after* `dial()`/`listen()` returned get no fallback:
//! handle their errors yourself. Inside the hook, `socket.protocol()` tells
//! whether this is the MPTCP try (`Some(Protocol::MPTCP)`) or the TCP retry.
//!
//! ```
//! use mptcp_net::Dialer;
//! use std::time::Duration;
//!
//! let mut dialer = Dialer::new();
//! // Keep MPTCP even where TCP_USER_TIMEOUT is refused:
//! dialer.set_socket_hook(|socket| {
//!     let _ = socket.set_tcp_user_timeout(Some(Duration::from_secs(30)));
//!     Ok(())
//! });
//! ```
//!
//! # `TCP_MD5SIG` (BGP: gobgp, cilium, bird)
//! Refused: RFC 2385 signatures and MPTCP cannot coexist. A hook that sets
//! it makes the dial or listen fall back to TCP (automatically), or fail
//! when MPTCP is required. For a BGP speaker, say so directly:
//! `set_multipath_tcp(false)` on that dialer and listener. The same holds
//! for `TCP_AO`.
//!
//! # `TCP_USER_TIMEOUT` (tailscale)
//! Refused on MPTCP sockets by Linux 6.18, before and after connect. In the
//! hook: automatic fallback to TCP, as above; ignore the error to keep
//! MPTCP (MPTCP's own subflow failover is usually what the timeout was
//! standing in for). After `dial()`, setting it fails with `ENOPROTOOPT` on
//! an active MPTCP connection and works once it has fallen back.
//!
//! # `TCP_FASTOPEN`, `TCP_FASTOPEN_CONNECT`, `TCP_FASTOPEN_KEY`, `TCP_FASTOPEN_NO_COOKIE` (Xray)
//! Accepted on 6.18 (MPTCP gained TCP Fast Open support in the 6.x series).
//! Set `TCP_FASTOPEN` on the listener and `TCP_FASTOPEN_CONNECT` in the
//! dialer's hook as with TCP. Where a kernel refuses them, the hook's
//! fallback applies.
//!
//! # Keepalive: `SO_KEEPALIVE`, `TCP_KEEPIDLE`, `TCP_KEEPINTVL`, `TCP_KEEPCNT`
//! Accepted, and applied to every subflow, present and future. Use
//! `socket2::Socket::set_tcp_keepalive` in the hook or after connect.
//!
//! # `TCP_NODELAY`, `TCP_CORK`, `TCP_CONGESTION`, `TCP_MAXSEG`, `TCP_NOTSENT_LOWAT`, `TCP_DEFER_ACCEPT`, `SO_MARK`, `SO_BINDTODEVICE`, `IP_TOS`, `IP_FREEBIND`, `IP_TRANSPARENT`
//! Accepted, applied to all subflows.
//!
//! # `TCP_QUICKACK`, `TCP_SYNCNT`, `TCP_LINGER2`, `TCP_WINDOW_CLAMP`, `TCP_THIN_LINEAR_TIMEOUTS`, `TCP_SAVE_SYN`, `TCP_TX_DELAY`, `TCP_REPAIR`
//! Refused on 6.18; the general rule applies. `TCP_REPAIR` is why CRIU
//! cannot checkpoint MPTCP connections ("Unsupported proto 262"): run such
//! programs with `MPTCP_NET=0`.
//!
//! # `TCP_ZEROCOPY_RECEIVE` and `SO_ZEROCOPY` / `MSG_ZEROCOPY`
//! Not supported (`EOPNOTSUPP`). Programs that use the zero-copy paths need
//! plain TCP: `set_multipath_tcp(false)`, or let the hook fall back (setting
//! `SO_ZEROCOPY` in the hook fails with `EOPNOTSUPP`, which triggers it).
//!
//! # `IPV6_V6ONLY`
//! Accepted. As with std, it is left at the system default
//! (`net.ipv6.bindv6only`, normally 0: an `[::]` listener also takes IPv4
//! clients, as v4-mapped addresses, MPTCP included). Set it in the listener's
//! hook for an IPv6-only listener.
//!
//! # `TCP_INFO`
//! Works on a connected MPTCP socket but describes a single subflow; use the
//! MPTCP-level introspection instead.
//!
//! # `sendfile(2)` and `splice(2)`
//! Both work on MPTCP sockets (in and out); the kernel copies instead of
//! sharing pages, so they bring less than on TCP but break nothing.
//!
//! # Security modules
//! seccomp filters that allow-list `socket()` protocols, SELinux/AppArmor
//! rules written for TCP, and Landlock's TCP bind/connect rules do not cover
//! protocol 262. If the policy refuses the MPTCP socket (`EACCES`/`EPERM`),
//! this crate falls back to TCP (or errors with
//! [`Unavailable::Refused`](crate::Unavailable::Refused) when required).
//! Conversely, a rule written for TCP may not apply to MPTCP sockets
//! (Landlock's TCP port rules have not covered protocol 262 on every kernel):
//! check your policy covers both, or run the program with `MPTCP_NET=0`.
