//! The async path manager and event stream, on tokio (feature `tokio`).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use std::future::poll_fn;

use netlink_sys::{AsyncSocket as _, TokioSocket};
use tokio::time::{timeout_at, Instant};

use crate::codec::framing::{Exchange, Op};
use crate::codec::{Endpoint, EndpointFlags, Event, Limits, NewEndpoint};
use crate::events::{decode_events, join};
use crate::ops::{self, FamilyInfo};
use crate::pm::{family_error, find_added, name_interfaces, resolve_ifindex, with_address};
use crate::socket::{configure, next_seq, recv_error, REPLY_TIMEOUT};
use crate::Error;

/// A `netlink-sys` tokio socket and its sequence counter.
struct AsyncSocket {
    sock: TokioSocket,
    seq: u32,
}

impl std::fmt::Debug for AsyncSocket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AsyncSocket")
            .field("socket", self.sock.socket_ref())
            .field("seq", &self.seq)
            .finish()
    }
}

impl AsyncSocket {
    /// A generic netlink socket in the calling thread's namespace, registered with the
    /// current tokio runtime.
    fn open() -> Result<Self, Error> {
        let mut sock = TokioSocket::new(netlink_sys::protocols::NETLINK_GENERIC)
            .map_err(|e| Error::io("cannot open a netlink socket", e))?;
        configure(sock.socket_mut())?;
        Ok(AsyncSocket { sock, seq: 0 })
    }

    fn socket(&self) -> &netlink_sys::Socket {
        self.sock.socket_ref()
    }

    async fn send(&self, buf: &[u8]) -> Result<(), Error> {
        poll_fn(|cx| self.sock.poll_send(cx, buf))
            .await
            .map(drop)
            .map_err(|e| Error::io("cannot send a netlink request", e))
    }

    async fn recv(&self) -> Result<Vec<u8>, Error> {
        poll_fn(|cx| self.sock.poll_recv_from_full(cx))
            .await
            .map(|(buf, _)| buf)
            .map_err(recv_error)
    }

    /// Sends `op` and waits, at most `REPLY_TIMEOUT` in all, for its answer.
    async fn run<R>(&mut self, mut op: Op<R>) -> Result<R, Error> {
        let seq = next_seq(&mut self.seq);
        op.set_seq(seq);
        self.send(&op.request).await?;
        let mut exchange = Exchange::new(seq);
        let deadline = Instant::now() + REPLY_TIMEOUT;
        loop {
            let datagram = timeout_at(deadline, self.recv()).await.map_err(|_| {
                Error::io(
                    "no answer from the kernel",
                    std::io::Error::new(
                        std::io::ErrorKind::TimedOut,
                        format!("{} timed out", op.name),
                    ),
                )
            })??;
            match exchange.feed(&datagram) {
                Ok(true) => break,
                Ok(false) => {}
                Err(failure) => return Err(Error::from_failure(op.name, failure)),
            }
        }
        (op.finish)(exchange.into_replies())
    }
}

/// The async twin of [`PathManager`](crate::PathManager), on tokio: the same operations, as `async fn`s.
///
/// Bound to the network namespace of the thread that runs [`open`](Self::open) (for
/// another namespace, run a runtime on a thread that entered it). Futures are `Send`.
///
/// ```no_run
/// # async fn f() -> Result<(), mptcp_netlink::Error> {
/// use mptcp_netlink::AsyncPathManager;
///
/// let pm = AsyncPathManager::open().await?;
/// for ep in pm.endpoints().await? {
///     println!("{ep}");
/// }
/// println!("{}", pm.limits().await?);
/// # Ok(()) }
/// ```
#[derive(Debug)]
pub struct AsyncPathManager {
    sock: tokio::sync::Mutex<AsyncSocket>,
    family: FamilyInfo,
}

impl AsyncPathManager {
    /// Opens a socket in the calling thread's network namespace and resolves the
    /// `mptcp_pm` family. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// As [`PathManager::open`](crate::PathManager::open).
    pub async fn open() -> Result<Self, Error> {
        let mut sock = AsyncSocket::open()?;
        let family = sock
            .run(ops::resolve_family())
            .await
            .map_err(family_error)?;
        Ok(AsyncPathManager {
            sock: tokio::sync::Mutex::new(sock),
            family,
        })
    }

    async fn run<R>(&self, op: Op<R>) -> Result<R, Error> {
        self.sock.lock().await.run(op).await
    }

    /// See [`PathManager::add_endpoint`](crate::PathManager::add_endpoint).
    pub async fn add_endpoint(&self, endpoint: &NewEndpoint) -> Result<Endpoint, Error> {
        endpoint.validate()?;
        let ifindex = {
            let sock = self.sock.lock().await;
            resolve_ifindex(sock.socket(), &endpoint.interface)?
        };
        self.run(ops::add_endpoint(self.family.id, endpoint, ifindex)?)
            .await?;
        find_added(self.endpoints().await?, endpoint)
    }

    /// See [`PathManager::endpoints`](crate::PathManager::endpoints).
    pub async fn endpoints(&self) -> Result<Vec<Endpoint>, Error> {
        let mut endpoints = self.run(ops::list_endpoints(self.family.id)).await?;
        name_interfaces(self.sock.lock().await.socket(), &mut endpoints);
        Ok(endpoints)
    }

    /// See [`PathManager::endpoint`](crate::PathManager::endpoint).
    pub async fn endpoint(&self, id: u8) -> Result<Endpoint, Error> {
        let mut ep = self.run(ops::get_endpoint(self.family.id, id)?).await?;
        name_interfaces(
            self.sock.lock().await.socket(),
            std::slice::from_mut(&mut ep),
        );
        Ok(ep)
    }

    /// See [`PathManager::delete_endpoint`](crate::PathManager::delete_endpoint).
    pub async fn delete_endpoint(&self, id: u8) -> Result<(), Error> {
        self.run(ops::delete_endpoint(self.family.id, id)?).await
    }

    /// See [`PathManager::delete_endpoint_by_address`](crate::PathManager::delete_endpoint_by_address).
    pub async fn delete_endpoint_by_address(
        &self,
        address: IpAddr,
    ) -> Result<Vec<Endpoint>, Error> {
        let matching = with_address(self.endpoints().await?, address)?;
        for ep in &matching {
            self.delete_endpoint(ep.id).await?;
        }
        Ok(matching)
    }

    /// See [`PathManager::flush_endpoints`](crate::PathManager::flush_endpoints).
    pub async fn flush_endpoints(&self) -> Result<(), Error> {
        self.run(ops::flush_endpoints(self.family.id)).await
    }

    /// See [`PathManager::set_endpoint_flags`](crate::PathManager::set_endpoint_flags).
    pub async fn set_endpoint_flags(&self, id: u8, flags: EndpointFlags) -> Result<(), Error> {
        self.run(ops::set_endpoint_flags(self.family.id, id, flags)?)
            .await
    }

    /// See [`PathManager::limits`](crate::PathManager::limits).
    pub async fn limits(&self) -> Result<Limits, Error> {
        self.run(ops::get_limits(self.family.id)).await
    }

    /// See [`PathManager::set_limits`](crate::PathManager::set_limits).
    pub async fn set_limits(&self, limits: Limits) -> Result<(), Error> {
        self.run(ops::set_limits(self.family.id, limits)?).await
    }

    /// See [`PathManager::announce`](crate::PathManager::announce).
    pub async fn announce(
        &self,
        token: u32,
        id: u8,
        address: IpAddr,
        port: Option<u16>,
    ) -> Result<(), Error> {
        self.run(ops::announce(self.family.id, token, id, address, port)?)
            .await
    }

    /// See [`PathManager::remove`](crate::PathManager::remove).
    pub async fn remove(&self, token: u32, id: u8) -> Result<(), Error> {
        self.run(ops::remove(self.family.id, token, id)).await
    }

    /// See [`PathManager::create_subflow`](crate::PathManager::create_subflow).
    pub async fn create_subflow(
        &self,
        token: u32,
        local_id: u8,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<(), Error> {
        self.open_subflow(token, &crate::NewSubflow::new(local_id, local, remote))
            .await
    }

    /// See [`PathManager::open_subflow`](crate::PathManager::open_subflow).
    pub async fn open_subflow(&self, token: u32, subflow: &crate::NewSubflow) -> Result<(), Error> {
        self.run(ops::create_subflow(self.family.id, token, subflow)?)
            .await
    }

    /// See [`PathManager::destroy_subflow`](crate::PathManager::destroy_subflow).
    pub async fn destroy_subflow(
        &self,
        token: u32,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> Result<(), Error> {
        self.run(ops::destroy_subflow(self.family.id, token, local, remote)?)
            .await
    }

    /// See [`PathManager::set_subflow_backup`](crate::PathManager::set_subflow_backup).
    pub async fn set_subflow_backup(
        &self,
        token: u32,
        local: SocketAddr,
        remote: SocketAddr,
        backup: bool,
    ) -> Result<(), Error> {
        self.run(ops::set_subflow_backup(
            self.family.id,
            token,
            local,
            remote,
            backup,
        )?)
        .await
    }
}

/// Path-manager events as a [`futures_core::Stream`] on tokio: the async twin of
/// [`Events`](crate::Events). The stream never ends by itself; bound waits with
/// `tokio::time::timeout`.
///
/// ```no_run
/// # async fn f() -> Result<(), mptcp_netlink::Error> {
/// use std::future::poll_fn;
/// use std::pin::Pin;
/// use futures_core::Stream;
/// use mptcp_netlink::EventStream;
///
/// let mut events = EventStream::subscribe().await?;
/// // With futures::StreamExt or tokio_stream::StreamExt this is `events.next().await`.
/// while let Some(event) = poll_fn(|cx| Pin::new(&mut events).poll_next(cx)).await {
///     println!("{}", event?);
/// }
/// # Ok(()) }
/// ```
pub struct EventStream {
    sock: TokioSocket,
    family_id: u16,
    pending: VecDeque<Result<Event, Error>>,
}

impl std::fmt::Debug for EventStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventStream")
            .field("socket", self.sock.socket_ref())
            .field("family_id", &self.family_id)
            .field("pending", &self.pending.len())
            .finish()
    }
}

impl EventStream {
    /// Subscribes in the calling thread's namespace. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// As [`Events::subscribe`](crate::Events::subscribe).
    pub async fn subscribe() -> Result<Self, Error> {
        let mut sock = AsyncSocket::open()?;
        let family = sock
            .run(ops::resolve_family())
            .await
            .map_err(family_error)?;
        join(sock.socket(), &family)?;
        Ok(EventStream {
            sock: sock.sock,
            family_id: family.id,
            pending: VecDeque::new(),
        })
    }
}

impl futures_core::Stream for EventStream {
    type Item = Result<Event, Error>;

    fn poll_next(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = self.get_mut();
        loop {
            if let Some(next) = this.pending.pop_front() {
                return Poll::Ready(Some(next));
            }
            match this.sock.poll_recv_from_full(cx) {
                Poll::Ready(Ok((datagram, _))) => {
                    decode_events(this.family_id, &datagram, &mut this.pending)
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Some(Err(recv_error(e)))),
                Poll::Pending => return Poll::Pending,
            }
        }
    }
}
