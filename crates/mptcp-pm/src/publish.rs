//! Token publishing for a backend behind `mptcp lb --steer-tokens`: this host's MPTCP
//! tokens, learnt from the path manager's `created`/`closed` events, sent to the
//! balancer's registry over authenticated UDP ([`mptcp_steer::registry`]), so the
//! balancer can send each MP_JOIN to the backend that owns its token.
//!
//! The thread subscribes to the events before it lists the connections (sock_diag),
//! so no connection falls in between; at start it sends a full snapshot (`Reset` then
//! every token), and every [`RESYNC`] every token again (without the `Reset`, which
//! would take the tokens of a multi-datagram snapshot's later datagrams out of the
//! map for a moment): that repairs a lost `Add` and refills a restarted balancer. A send that fails (the balancer not listening yet: the ICMP
//! error comes back on the next send, which it loses) brings the next snapshot
//! forward to [`RETRY`]; an idle publisher sends a heartbeat every [`HEARTBEAT`], so
//! such an error shows within a second. The address it publishes as is the source address this host
//! uses towards the registry: the backend address the balancer is configured with.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, UdpSocket};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mptcp_netlink::EventKind;
use mptcp_steer::registry::{Key, Publisher};
use mptcp_steer::PublisherSocket;

/// How often a full snapshot is sent.
pub const RESYNC: Duration = Duration::from_secs(10);
/// How long the publisher stays silent at most: an idle backend sends a heartbeat,
/// which also brings out a send error (a connected UDP socket reports the ICMP
/// "port unreachable" of an earlier datagram on the next send).
pub const HEARTBEAT: Duration = Duration::from_secs(1);
/// How soon a snapshot follows a failed send (the balancer was not listening yet,
/// or restarted): it repairs whatever the failure lost.
pub const RETRY: Duration = Duration::from_millis(250);

/// What the publisher did, for the log and `--json`.
#[derive(Debug, Default)]
pub struct PublishStats {
    /// Tokens published (`Add`).
    pub added: AtomicU64,
    /// Tokens withdrawn (`Remove`).
    pub removed: AtomicU64,
    /// Datagrams sent.
    pub datagrams: AtomicU64,
    /// Sends that failed (the next snapshot repairs them).
    pub send_errors: AtomicU64,
}

/// The running publisher thread; stopped and joined on drop.
#[derive(Debug)]
pub struct TokenPublisher {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    stats: Arc<PublishStats>,
    backend: IpAddr,
}

impl TokenPublisher {
    /// Reads the key, finds this host's address towards `registry`, subscribes to the
    /// MPTCP events and starts the thread.
    ///
    /// # Errors
    /// A one-line reason: the key file (missing, shorter than 16 bytes), no route to
    /// the registry, or the event subscription refused.
    pub fn start(registry: SocketAddr, key_file: &Path) -> Result<TokenPublisher, String> {
        let key = Key::from_file(key_file).map_err(|e| e.to_string())?;
        let any: SocketAddr = match registry {
            SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
            SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
        };
        let reach =
            |e: std::io::Error| format!("cannot reach the token registry at {registry}: {e}");
        let socket = UdpSocket::bind(any).map_err(reach)?;
        socket.connect(registry).map_err(reach)?;
        let backend = socket.local_addr().map_err(reach)?.ip();
        let sender = PublisherSocket::from_socket(socket, registry, Publisher::new(key, backend))
            .map_err(|e| e.to_string())?;
        let mut events = mptcp_netlink::Events::subscribe()
            .map_err(|e| format!("cannot follow MPTCP connections: {e}"))?;
        events.set_timeout(Some(Duration::from_millis(200)));
        let stop = Arc::new(AtomicBool::new(false));
        let stats = Arc::new(PublishStats::default());
        let thread = {
            let (stop, stats) = (Arc::clone(&stop), Arc::clone(&stats));
            std::thread::Builder::new()
                .name("mptcp-pm-publish".into())
                .spawn(move || publish(sender, events, &stop, &stats))
                .map_err(|e| format!("cannot start the token publisher: {e}"))?
        };
        Ok(TokenPublisher {
            stop,
            thread: Some(thread),
            stats,
            backend,
        })
    }

    /// The address this host publishes as.
    pub fn backend(&self) -> IpAddr {
        self.backend
    }

    /// Counters.
    pub fn stats(&self) -> &PublishStats {
        &self.stats
    }
}

impl Drop for TokenPublisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn tokens_now() -> Vec<u32> {
    match mptcp_netlink::connections() {
        Ok(conns) => conns
            .iter()
            .filter(|c| !c.is_listener())
            .filter_map(|c| c.token)
            .collect(),
        Err(e) => {
            tracing::warn!(error = %e, "cannot list MPTCP connections for a token snapshot");
            Vec::new()
        }
    }
}

/// Sends what is queued; false when a send failed (what it carried is lost).
fn send(sender: &mut PublisherSocket, stats: &PublishStats) -> bool {
    let before = sender.sent();
    let ok = sender.flush().is_ok();
    if !ok {
        stats.send_errors.fetch_add(1, Ordering::Relaxed);
    }
    stats
        .datagrams
        .fetch_add(sender.sent() - before, Ordering::Relaxed);
    ok
}

fn publish(
    mut sender: PublisherSocket,
    mut events: mptcp_netlink::Events,
    stop: &AtomicBool,
    stats: &PublishStats,
) {
    let mut next_snapshot = Instant::now();
    let mut first_snapshot = true;
    let mut last_send = Instant::now();
    while !stop.load(Ordering::SeqCst) {
        if Instant::now() >= next_snapshot {
            let tokens = tokens_now();
            stats
                .added
                .fetch_add(tokens.len() as u64, Ordering::Relaxed);
            if first_snapshot {
                sender.publisher_mut().snapshot(tokens);
            } else {
                // Adds only: a `Reset` would take, for a moment, the tokens carried
                // in the snapshot's later datagrams out of the balancer's map.
                for t in tokens {
                    sender.publisher_mut().add(t);
                }
            }
            let sent = send(&mut sender, stats);
            // A failed snapshot (or one after a failed send) is sent again in full.
            first_snapshot = !sent;
            next_snapshot = Instant::now() + if sent { RESYNC } else { RETRY };
            last_send = Instant::now();
        } else if last_send.elapsed() >= HEARTBEAT {
            let beat = sender
                .publisher_mut()
                .heartbeat(mptcp_steer::registry::unix_ms_now());
            if sender.socket().send(&beat).is_err() {
                stats.send_errors.fetch_add(1, Ordering::Relaxed);
                next_snapshot = Instant::now() + RETRY;
                first_snapshot = true;
            }
            last_send = Instant::now();
        }
        // Every event waiting now, then one flush: a burst of new connections goes
        // out in as few datagrams as fit.
        let mut first = true;
        loop {
            let next = if first {
                events.next()
            } else {
                events.next_timeout(Duration::ZERO).transpose()
            };
            first = false;
            match next {
                Some(Ok(e)) => match (e.kind, e.token) {
                    (EventKind::Created, Some(t)) => {
                        sender.publisher_mut().add(t);
                        stats.added.fetch_add(1, Ordering::Relaxed);
                    }
                    (EventKind::Closed, Some(t)) => {
                        sender.publisher_mut().remove(t);
                        stats.removed.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                },
                Some(Err(e)) => {
                    // An overrun loses events: the next snapshot repairs the view.
                    tracing::warn!(error = %e, "MPTCP event stream");
                    next_snapshot = Instant::now();
                    break;
                }
                None => break,
            }
        }
        if sender.publisher().pending() > 0 {
            if !send(&mut sender, stats) {
                next_snapshot = next_snapshot.min(Instant::now() + RETRY);
                first_snapshot = true;
            }
            last_send = Instant::now();
        }
    }
}
