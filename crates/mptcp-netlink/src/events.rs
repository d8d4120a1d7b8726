//! Subscription to path-manager events (`mptcp_pm_events`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use crate::codec::framing::{genl_payload, messages};
use crate::codec::{Event, EventMessage};
use crate::ops::{self, FamilyInfo};
use crate::pm::family_error;
use crate::socket::NlSocket;
use crate::Error;

/// Decodes the events in one datagram of the events socket.
pub(crate) fn decode_events(
    family_id: u16,
    datagram: &[u8],
    out: &mut VecDeque<Result<Event, Error>>,
) {
    for msg in messages(datagram) {
        match msg {
            Ok(msg) if msg.ty == family_id => {
                out.push_back(genl_payload::<EventMessage>(msg.whole).map(|m| m.0));
            }
            // Control messages (NOOP, ...) carry no event.
            Ok(_) => {}
            Err(e) => out.push_back(Err(Error::Decode(e))),
        }
    }
}

/// How many bytes of events may wait in a subscription's socket: 4 MiB rather than
/// the default `net.core.rmem_default` (about 200 KiB, a few hundred events at a
/// kernel's accounting), which a busy host's bursts fill while the reader is busy
/// (every connection sends "created", "established" and one event per subflow;
/// measured: a userspace path manager's socket overflowed eight times in four
/// minutes of 200 concurrent transfers, losing the "established" events of
/// connections that then never got a subflow). Memory is only taken by what waits.
pub(crate) const EVENTS_RECEIVE_BUFFER: usize = 4 << 20;

/// Joins the events group on `sock`, mapping `EPERM` to the capability error, and
/// grows its receive queue to [`EVENTS_RECEIVE_BUFFER`] (best effort:
/// `SO_RCVBUFFORCE`, which joining needed `CAP_NET_ADMIN` for anyway, else
/// `SO_RCVBUF`, capped by `net.core.rmem_max`).
pub(crate) fn join(sock: &netlink_sys::Socket, family: &FamilyInfo) -> Result<(), Error> {
    if rustix::net::sockopt::set_socket_recv_buffer_size_force(sock, EVENTS_RECEIVE_BUFFER).is_err()
    {
        let _ = rustix::net::sockopt::set_socket_recv_buffer_size(sock, EVENTS_RECEIVE_BUFFER);
    }
    let group = family.events_group.ok_or_else(|| Error::Kernel {
        op: "subscribe to events",
        errno: libc::ENOENT,
        message: Some("the mptcp_pm family has no mptcp_pm_events group".into()),
    })?;
    sock.add_membership(group)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::EPERM) => Error::PermissionDenied {
                op: "subscribe to events",
            },
            _ => Error::io("cannot join the mptcp_pm_events group", e),
        })
}

/// A subscription to the path manager's events of the calling thread's network
/// namespace (`ip mptcp monitor`), read as a blocking iterator.
///
/// The iterator waits for the next event; with [`set_timeout`](Self::set_timeout) it ends
/// (returns `None`) once no event came for that long. [`next_timeout`](Self::next_timeout)
/// waits a bounded time for one event. Events that arrive while nobody reads queue in
/// the socket (up to 4 MiB of them, some thousands); if the queue overflows,
/// [`Error::EventsLost`] is returned once and reading goes on.
///
/// ```no_run
/// use std::time::Duration;
/// use mptcp_netlink::{EventKind, Events};
///
/// let mut events = Events::subscribe()?;
/// events.set_timeout(Some(Duration::from_secs(10)));
/// for event in &mut events {
///     let event = event?;
///     if event.kind == EventKind::SubEstablished {
///         println!("new subflow {:?} -> {:?}", event.local, event.remote);
///     }
/// }
/// # Ok::<(), mptcp_netlink::Error>(())
/// ```
#[derive(Debug)]
pub struct Events {
    sock: NlSocket,
    family: FamilyInfo,
    pending: VecDeque<Result<Event, Error>>,
    timeout: Option<Duration>,
}

impl Events {
    /// Opens a socket in the calling thread's namespace and joins `mptcp_pm_events`.
    ///
    /// # Errors
    /// [`Error::PermissionDenied`] without `CAP_NET_ADMIN`; [`Error::FamilyNotFound`] on a
    /// kernel without MPTCP.
    pub fn subscribe() -> Result<Self, Error> {
        let mut sock = NlSocket::open(netlink_sys::protocols::NETLINK_GENERIC)?;
        let family = sock.run(ops::resolve_family()).map_err(family_error)?;
        join(sock.socket(), &family)?;
        Ok(Events {
            sock,
            family,
            pending: VecDeque::new(),
            timeout: None,
        })
    }

    /// Makes the iterator end after `timeout` without an event (`None`: wait for ever).
    pub fn set_timeout(&mut self, timeout: Option<Duration>) {
        self.timeout = timeout;
    }

    /// Waits at most `timeout` for the next event; `Ok(None)` if none came.
    pub fn next_timeout(&mut self, timeout: Duration) -> Result<Option<Event>, Error> {
        self.next_until(Some(Instant::now() + timeout))
    }

    /// Waits for the next event, for ever.
    pub fn recv(&mut self) -> Result<Event, Error> {
        loop {
            if let Some(e) = self.next_until(None)? {
                return Ok(e);
            }
        }
    }

    fn next_until(&mut self, deadline: Option<Instant>) -> Result<Option<Event>, Error> {
        loop {
            if let Some(next) = self.pending.pop_front() {
                return next.map(Some);
            }
            match self.sock.recv_until(deadline)? {
                Some(datagram) => decode_events(self.family.id, &datagram, &mut self.pending),
                None => return Ok(None),
            }
        }
    }
}

impl Iterator for Events {
    type Item = Result<Event, Error>;

    fn next(&mut self) -> Option<Self::Item> {
        let deadline = self.timeout.map(|t| Instant::now() + t);
        self.next_until(deadline).transpose()
    }
}
