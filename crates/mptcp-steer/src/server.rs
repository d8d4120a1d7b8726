//! The balancer's receiving end on tokio.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::net::UdpSocket;

use crate::registry::{unix_ms_now, Accepted, Refusal, Registry, Update};

/// Where accepted map changes go: the BPF map, a test's vector, a log.
pub trait UpdateSink {
    /// Applies one change. An error is logged by the server;
    /// the registry keeps the change (a later snapshot or a retry repairs it).
    fn apply(&mut self, update: &Update) -> io::Result<()>;
}

impl<F: FnMut(&Update) -> io::Result<()>> UpdateSink for F {
    fn apply(&mut self, update: &Update) -> io::Result<()> {
        self(update)
    }
}

/// Receives registry datagrams on a UDP socket and applies what they change.
///
/// The [`Registry`] sits behind a shared handle ([`RegistryServer::registry`])
/// so the balancer can add and remove backends and read the counters while
/// the server runs; the lock is never held across an `.await`.
///
/// ```no_run
/// # async fn f() -> std::io::Result<()> {
/// use mptcp_steer::registry::{Key, Registry, Update};
/// use mptcp_steer::RegistryServer;
///
/// let key = Key::from_file("/etc/mptcp/lb.key")?;
/// let registry = Registry::new(key, [("198.19.0.2".parse().unwrap(), 0x101)])?;
/// let server = RegistryServer::bind("198.18.0.254:7946".parse().unwrap(), registry).await?;
/// server
///     .run(|u: &Update| {
///         println!("{u:?}");
///         Ok(())
///     })
///     .await
/// # }
/// ```
#[derive(Debug)]
pub struct RegistryServer {
    socket: UdpSocket,
    registry: Arc<Mutex<Registry>>,
}

/// The receive buffer [`RegistryServer::bind`] asks for.
pub const RECV_BUFFER_BYTES: usize = 4 << 20;

/// The largest datagram read; longer ones are cut and then refused as malformed.
const RECV_BUF: usize = 65_536;

impl RegistryServer {
    /// Binds the UDP socket the backends send to, with a receive buffer of
    /// [`RECV_BUFFER_BYTES`] (the kernel caps it at `net.core.rmem_max`):
    /// a fleet's snapshots after a balancer restart arrive as a burst, and a
    /// datagram the buffer cannot hold is lost.
    pub async fn bind(addr: SocketAddr, registry: Registry) -> io::Result<Self> {
        let context = |e: io::Error| {
            io::Error::new(
                e.kind(),
                format!("cannot bind the token registry on {addr}: {e}"),
            )
        };
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM.nonblocking(),
            Some(socket2::Protocol::UDP),
        )
        .map_err(context)?;
        if let Err(e) = socket.set_recv_buffer_size(RECV_BUFFER_BYTES) {
            tracing::debug!(error = %e, "registry socket keeps the default receive buffer");
        }
        socket.bind(&addr.into()).map_err(context)?;
        let socket = UdpSocket::from_std(socket.into()).map_err(context)?;
        Ok(Self::from_socket(socket, registry))
    }

    /// Uses a socket the caller bound.
    pub fn from_socket(socket: UdpSocket, registry: Registry) -> Self {
        RegistryServer {
            socket,
            registry: Arc::new(Mutex::new(registry)),
        }
    }

    /// The address the socket is bound to.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// A shared handle on the registry (backends, tokens, counters).
    pub fn registry(&self) -> Arc<Mutex<Registry>> {
        Arc::clone(&self.registry)
    }

    /// Receives and handles one datagram: refusals are logged (debug) and
    /// counted in the registry; accepted updates go to `sink`. The outer
    /// error is the socket's.
    pub async fn recv_one<S: UpdateSink>(
        &self,
        sink: &mut S,
        buf: &mut [u8],
    ) -> io::Result<Result<Accepted, Refusal>> {
        let (n, from) = self.socket.recv_from(buf).await?;
        let result = lock(&self.registry).handle(&buf[..n], unix_ms_now());
        match &result {
            Ok(accepted) => {
                for u in &accepted.updates {
                    if let Err(e) = sink.apply(u) {
                        tracing::warn!(update = ?u, error = %e, "token map update failed");
                    }
                }
                tracing::trace!(%from, backend = %accepted.backend, seq = accepted.seq,
                    ops = accepted.ops, updates = accepted.updates.len(), "registry message");
            }
            Err(refusal) => {
                tracing::debug!(%from, reason = refusal.reason(), "{refusal}");
            }
        }
        Ok(result)
    }

    /// Handles datagrams until the socket fails.
    pub async fn run<S: UpdateSink>(self, mut sink: S) -> io::Result<()> {
        let mut buf = vec![0u8; RECV_BUF];
        loop {
            // Refusals are counted and logged inside; only socket errors end the loop.
            let _ = self.recv_one(&mut sink, &mut buf).await?;
        }
    }
}

/// The registry's state stays consistent even if a holder panicked (every
/// mutation completes before it returns), so a poisoned lock is used as is.
pub(crate) fn lock(registry: &Mutex<Registry>) -> MutexGuard<'_, Registry> {
    registry.lock().unwrap_or_else(|e| e.into_inner())
}
