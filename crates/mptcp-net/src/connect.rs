//! How a `Dialer` walks the resolved addresses: one after the other
//! (serial), or two families racing (Happy Eyeballs, RFC 8305, as Go's
//! `dialParallel`).
//!
//! Every attempt opens its socket with `Dialer::open`, so MPTCP, the
//! fallback rules, keep-alive and the hook apply to each one alike.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// The error of a connect that ran out of its share of the time.
pub(crate) fn timed_out(addr: SocketAddr) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("connection to {addr} timed out"),
    )
}

/// The addresses of one serial dial, each with its share of the time left.
pub(crate) struct Attempts {
    addrs: std::vec::IntoIter<SocketAddr>,
    deadline: Option<Instant>,
    last: Option<SocketAddr>,
}

impl Attempts {
    pub(crate) fn new(addrs: Vec<SocketAddr>, deadline: Option<Instant>) -> Attempts {
        Attempts {
            addrs: addrs.into_iter(),
            deadline,
            last: None,
        }
    }

    /// The next address and its timeout; `None` when done or out of time.
    pub(crate) fn next(&mut self) -> Option<(SocketAddr, Option<Duration>)> {
        let timeout = match self.deadline {
            None => None,
            Some(deadline) => {
                let remaining = deadline.saturating_duration_since(Instant::now());
                if remaining.is_zero() {
                    return None;
                }
                // Go's rule: share the time left among the addresses left.
                let left = u32::try_from(self.addrs.len()).unwrap_or(u32::MAX).max(1);
                Some((remaining / left).max(Duration::from_millis(1)))
            }
        };
        let addr = self.addrs.next()?;
        self.last = Some(addr);
        Some((addr, timeout))
    }

    /// The error when the deadline passed before an address could be tried.
    pub(crate) fn timed_out(&self) -> io::Error {
        match self.last {
            Some(addr) => timed_out(addr),
            None => io::Error::new(io::ErrorKind::TimedOut, "dial timed out"),
        }
    }
}

/// Splits a resolved list into the IPv6 addresses (primaries) and the IPv4
/// ones (fallbacks), each in the resolver's order; gives the list back when
/// it holds only one family, which is dialed serially.
#[cfg_attr(not(any(target_os = "linux", feature = "tokio")), allow(dead_code))]
pub(crate) fn split_families(
    addrs: Vec<SocketAddr>,
) -> Result<(Vec<SocketAddr>, Vec<SocketAddr>), Vec<SocketAddr>> {
    if addrs.iter().all(SocketAddr::is_ipv4) || addrs.iter().all(SocketAddr::is_ipv6) {
        return Err(addrs);
    }
    Ok(addrs.into_iter().partition(SocketAddr::is_ipv6))
}

/// The blocking race: every attempt is a non-blocking socket; the (at most
/// two) connects in progress are waited for together with `poll(2)` on this
/// thread. The sockets of the attempts that lose are closed on return.
#[cfg(target_os = "linux")]
pub(crate) mod blocking {
    use std::io;
    use std::net::{SocketAddr, TcpStream};
    use std::os::fd::AsFd;
    use std::time::{Duration, Instant};

    use socket2::Socket;

    use super::{timed_out, Attempts};
    use crate::Dialer;

    /// A connect in progress.
    struct InFlight {
        socket: Socket,
        addr: SocketAddr,
        deadline: Option<Instant>,
    }

    /// One family's addresses, dialed one after the other.
    struct Lane {
        attempts: Attempts,
        current: Option<InFlight>,
        first_err: Option<io::Error>,
        done: bool,
    }

    impl Lane {
        fn new(addrs: Vec<SocketAddr>, deadline: Option<Instant>) -> Lane {
            Lane {
                attempts: Attempts::new(addrs, deadline),
                current: None,
                first_err: None,
                done: false,
            }
        }

        fn fail(&mut self, err: io::Error) {
            self.first_err.get_or_insert(err);
        }

        /// Starts the next address's connect; returns a socket that connected
        /// at once. With nothing left to try, the lane is done.
        fn advance(&mut self, dialer: &Dialer) -> Option<Socket> {
            self.current = None;
            while let Some((addr, timeout)) = self.attempts.next() {
                let socket = match dialer.open(addr, true) {
                    Ok(socket) => socket,
                    Err(err) => {
                        self.fail(err);
                        continue;
                    }
                };
                match socket.connect(&addr.into()) {
                    Ok(()) => return Some(socket),
                    Err(err) if err.raw_os_error() == Some(libc::EINPROGRESS) => {
                        self.current = Some(InFlight {
                            socket,
                            addr,
                            deadline: timeout.map(|t| Instant::now() + t),
                        });
                        return None;
                    }
                    Err(err) => self.fail(err),
                }
            }
            self.done = true;
            None
        }

        /// Looks at the connect in progress after a poll: a socket when it
        /// connected; otherwise moves on after an error or a timeout.
        fn check(&mut self, dialer: &Dialer, ready: bool, now: Instant) -> Option<Socket> {
            let flight = self.current.as_ref()?;
            if ready {
                // The connect finished: SO_ERROR says how, and, as Go checks,
                // a peer address confirms a connection (a socket that was
                // closed without an error would have none).
                match flight.socket.take_error() {
                    Ok(None) => match flight.socket.peer_addr() {
                        Ok(_) => return self.current.take().map(|f| f.socket),
                        Err(err) => self.fail(err),
                    },
                    Ok(Some(err)) | Err(err) => self.fail(err),
                }
            } else if flight.deadline.is_some_and(|d| now >= d) {
                let err = timed_out(flight.addr);
                self.fail(err);
            } else {
                return None;
            }
            self.advance(dialer)
        }
    }

    /// Dials `primaries` in order, and `fallbacks` in order from `delay` after
    /// the start (or as soon as the primaries have all failed); the first
    /// connection made wins. All failed: the primaries' first error.
    pub(crate) fn race(
        dialer: &Dialer,
        primaries: Vec<SocketAddr>,
        fallbacks: Vec<SocketAddr>,
        delay: Duration,
        deadline: Option<Instant>,
    ) -> io::Result<TcpStream> {
        let fallback_at = Instant::now() + delay;
        let mut lanes = [
            Lane::new(primaries, deadline),
            Lane::new(fallbacks, deadline),
        ];
        let mut fallback_started = false;
        if let Some(socket) = lanes[0].advance(dialer) {
            return won(socket);
        }
        loop {
            let now = Instant::now();
            if !fallback_started && (lanes[0].done || now >= fallback_at) {
                fallback_started = true;
                tracing::debug!(
                    primaries_failed = lanes[0].done,
                    "dial: starting the IPv4 fallback race"
                );
                if let Some(socket) = lanes[1].advance(dialer) {
                    return won(socket);
                }
            }
            if lanes[0].done && lanes[1].done {
                let [primary, fallback] = lanes;
                return Err(primary
                    .first_err
                    .or(fallback.first_err)
                    .unwrap_or_else(|| primary.attempts.timed_out()));
            }
            let mut wake = lanes
                .iter()
                .filter_map(|l| l.current.as_ref()?.deadline)
                .min();
            if !fallback_started {
                wake = Some(wake.map_or(fallback_at, |w| w.min(fallback_at)));
            }
            let in_flight: Vec<usize> = (0..2).filter(|&i| lanes[i].current.is_some()).collect();
            let ready = {
                let fds: Vec<_> = in_flight
                    .iter()
                    .filter_map(|&i| Some(lanes[i].current.as_ref()?.socket.as_fd()))
                    .collect();
                crate::sys::poll_connecting(&fds, wake.map(|w| w.saturating_duration_since(now)))?
            };
            let now = Instant::now();
            for (&i, &ready) in in_flight.iter().zip(&ready) {
                if let Some(socket) = lanes[i].check(dialer, ready, now) {
                    return won(socket);
                }
            }
        }
    }

    /// The winner goes back to blocking mode, as `TcpStream::connect` gives it.
    fn won(socket: Socket) -> io::Result<TcpStream> {
        socket.set_nonblocking(false)?;
        Ok(socket.into())
    }
}

#[cfg(feature = "tokio")]
pub(crate) mod nonblocking {
    use std::io;
    use std::net::SocketAddr;
    use std::time::{Duration, Instant};

    use tokio::net::TcpStream;

    use super::{timed_out, Attempts};
    use crate::Dialer;

    /// Which error a serial dial returns when every address failed.
    #[derive(Clone, Copy)]
    pub(crate) enum Report {
        /// The first one (Go, and each family of a race).
        First,
        /// The last one (std's `TcpStream::connect`, and serial dials here).
        Last,
    }

    /// Tries each address in order, each with its share of the time left.
    pub(crate) async fn serial(
        dialer: &Dialer,
        mut attempts: Attempts,
        report: Report,
    ) -> io::Result<TcpStream> {
        let mut kept = None;
        while let Some((addr, timeout)) = attempts.next() {
            match one(dialer, addr, timeout).await {
                Ok(stream) => return Ok(stream),
                Err(err) => match (report, &kept) {
                    (Report::First, Some(_)) => {}
                    _ => kept = Some(err),
                },
            }
        }
        Err(kept.unwrap_or_else(|| attempts.timed_out()))
    }

    async fn one(
        dialer: &Dialer,
        addr: SocketAddr,
        timeout: Option<Duration>,
    ) -> io::Result<TcpStream> {
        let socket = dialer.open(addr, true)?;
        let socket = tokio::net::TcpSocket::from_std_stream(socket.into());
        // tokio's connect waits for writability, then reads SO_ERROR.
        let connect = socket.connect(addr);
        match timeout {
            None => connect.await,
            Some(t) => match tokio::time::timeout(t, connect).await {
                Ok(result) => result,
                Err(_) => Err(timed_out(addr)),
            },
        }
    }

    /// Happy Eyeballs: two serial dials, the fallback one started after
    /// `delay` or once the primaries have all failed. The first connection
    /// wins; returning drops the other future, which closes its socket.
    pub(crate) async fn race(
        dialer: &Dialer,
        primaries: Vec<SocketAddr>,
        fallbacks: Vec<SocketAddr>,
        delay: Duration,
        deadline: Option<Instant>,
    ) -> io::Result<TcpStream> {
        let primary = serial(dialer, Attempts::new(primaries, deadline), Report::First);
        tokio::pin!(primary);
        let timer = tokio::time::sleep(delay);
        tokio::pin!(timer);
        let primary_err = tokio::select! {
            biased;
            result = &mut primary => match result {
                Ok(stream) => return Ok(stream),
                Err(err) => Some(err),
            },
            () = &mut timer => None,
        };
        tracing::debug!(
            primaries_failed = primary_err.is_some(),
            "dial: starting the IPv4 fallback race"
        );
        let fallback = serial(dialer, Attempts::new(fallbacks, deadline), Report::First);
        tokio::pin!(fallback);
        match primary_err {
            Some(err) => fallback.await.map_err(|_| err),
            None => tokio::select! {
                result = &mut primary => match result {
                    Ok(stream) => Ok(stream),
                    Err(err) => fallback.await.map_err(|_| err),
                },
                result = &mut fallback => match result {
                    Ok(stream) => Ok(stream),
                    Err(_) => primary.await,
                },
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addrs(list: &[&str]) -> Vec<SocketAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn both_families_split_into_ipv6_primaries_and_ipv4_fallbacks_in_order() {
        let mixed = addrs(&[
            "198.18.0.2:80",
            "[2001:db8::2]:80",
            "198.18.1.2:80",
            "[2001:db8::3]:80",
        ]);
        let (primaries, fallbacks) = split_families(mixed).unwrap();
        assert_eq!(primaries, addrs(&["[2001:db8::2]:80", "[2001:db8::3]:80"]));
        assert_eq!(fallbacks, addrs(&["198.18.0.2:80", "198.18.1.2:80"]));
    }

    #[test]
    fn one_family_is_given_back_for_a_serial_dial() {
        let v4 = addrs(&["198.18.0.2:80", "198.18.1.2:80"]);
        assert_eq!(split_families(v4.clone()), Err(v4));
        let v6 = addrs(&["[2001:db8::2]:80"]);
        assert_eq!(split_families(v6.clone()), Err(v6));
        assert_eq!(split_families(Vec::new()), Err(Vec::new()));
    }

    #[test]
    fn the_time_left_is_shared_among_the_addresses_left() {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut attempts = Attempts::new(
            addrs(&["198.18.0.2:1", "198.18.0.3:1", "198.18.0.4:1"]),
            Some(deadline),
        );
        let (_, first) = attempts.next().unwrap();
        let first = first.unwrap();
        assert!(
            first <= Duration::from_secs(1) && first > Duration::from_millis(900),
            "{first:?}"
        );
        assert!(attempts.next().is_some());
        assert!(attempts.next().is_some());
        assert!(attempts.next().is_none());
    }
}
