//! The backend's blocking UDP sender.

use std::io;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};

use crate::registry::{unix_ms_now, Publisher};

/// A [`Publisher`] with a connected UDP socket: queue operations, then
/// [`flush`](PublisherSocket::flush) sends them.
///
/// Blocking `send(2)` on a UDP socket returns at once unless the socket
/// buffer is full, so a daemon on any runtime (or none) can call it; the
/// backend's `mptcp pm` is a plain event loop. Delivery is best-effort: a lost
/// datagram loses its operations (see the crate docs, "Loss and races").
///
/// ```no_run
/// use mptcp_steer::registry::{Key, Publisher};
/// use mptcp_steer::PublisherSocket;
///
/// let key = Key::from_file("/etc/mptcp/lb.key")?;
/// let publisher = Publisher::new(key, "198.19.0.2".parse()?);
/// let mut socket = PublisherSocket::connect("198.18.0.254:7946".parse()?, publisher)?;
/// socket.publisher_mut().snapshot([0x1234_5678]); // at start: what this host owns
/// socket.flush()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
pub struct PublisherSocket {
    socket: UdpSocket,
    publisher: Publisher,
    sent: u64,
}

impl PublisherSocket {
    /// Binds an ephemeral UDP port of the registry's family and `connect(2)`s
    /// it to `registry`, so ICMP errors come back as errors of the next send.
    pub fn connect(registry: SocketAddr, publisher: Publisher) -> io::Result<Self> {
        let any: SocketAddr = match registry {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        Self::from_socket(UdpSocket::bind(any)?, registry, publisher)
    }

    /// Uses a socket the caller bound (a source address, a device, a mark),
    /// and connects it to `registry`.
    pub fn from_socket(
        socket: UdpSocket,
        registry: SocketAddr,
        publisher: Publisher,
    ) -> io::Result<Self> {
        socket.connect(registry).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("cannot reach the token registry at {registry}: {e}"),
            )
        })?;
        Ok(PublisherSocket {
            socket,
            publisher,
            sent: 0,
        })
    }

    /// The publisher, to queue operations.
    pub fn publisher_mut(&mut self) -> &mut Publisher {
        &mut self.publisher
    }

    /// The publisher.
    pub fn publisher(&self) -> &Publisher {
        &self.publisher
    }

    /// Queues `Add(token)` and sends at once.
    pub fn add(&mut self, token: u32) -> io::Result<usize> {
        self.publisher.add(token);
        self.flush()
    }

    /// Queues `Remove(token)` and sends at once.
    pub fn remove(&mut self, token: u32) -> io::Result<usize> {
        self.publisher.remove(token);
        self.flush()
    }

    /// Sends every queued operation, stamped with the wall clock; returns
    /// the number of datagrams sent. On a send error the datagrams not sent
    /// yet are lost (the next snapshot repairs the balancer's view).
    pub fn flush(&mut self) -> io::Result<usize> {
        let datagrams = self.publisher.flush(unix_ms_now());
        for (i, d) in datagrams.iter().enumerate() {
            if let Err(e) = self.socket.send(d) {
                tracing::warn!(
                    lost = datagrams.len() - i,
                    error = %e,
                    "token registry send failed"
                );
                return Err(e);
            }
            self.sent += 1;
        }
        Ok(datagrams.len())
    }

    /// Datagrams sent since creation.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// The socket.
    pub fn socket(&self) -> &UdpSocket {
        &self.socket
    }
}
