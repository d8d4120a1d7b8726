//! gRPC over MPTCP with tonic (feature `tonic`).
//!
//! Server: [`MptcpListener::incoming`] gives tonic's
//! `Server::serve_with_incoming` the accepted connections as [`MptcpStream`]s,
//! which are tonic's `Connected` with [`MptcpConnInfo`] as the connect info: a
//! handler reads `request.extensions().get::<MptcpConnInfo>()` for the
//! connection's status, addresses and live subflows.
//!
//! Client: tonic's `Endpoint::connect_with_connector(MptcpConnector::new())`
//! dials with MPTCP (HTTP/2 is tonic's own business).
//!
//! Accept errors are ridden out as this crate's axum server does: a
//! connection lost in the queue is skipped, other errors (`EMFILE`) are logged
//! and retried after a second, so the stream never ends and never spins.

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use futures_core::Stream;

use crate::{MptcpConnInfo, MptcpListener, MptcpStream};

impl tonic::transport::server::Connected for MptcpStream {
    type ConnectInfo = MptcpConnInfo;

    fn connect_info(&self) -> MptcpConnInfo {
        self.info().clone()
    }
}

/// The connections a [`MptcpListener`] accepts, as a [`Stream`] for tonic's
/// `Server::serve_with_incoming` (see [`MptcpListener::incoming`]).
pub struct Incoming {
    listener: Arc<MptcpListener>,
    next: Option<Accepting>,
}

/// One `accept_retrying` in progress.
type Accepting = Pin<Box<dyn Future<Output = (MptcpStream, SocketAddr)> + Send>>;

impl fmt::Debug for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Incoming")
            .field("listener", &self.listener)
            .finish_non_exhaustive()
    }
}

impl MptcpListener {
    /// The accepted connections as a stream of [`MptcpStream`]s, for tonic:
    ///
    /// ```no_run
    /// # async fn f(router: tonic::service::Routes) -> Result<(), Box<dyn std::error::Error>> {
    /// let listener = mptcp_net::ListenConfig::new().listen_async("[::]:50051").await?;
    /// tonic::transport::Server::builder()
    ///     .add_routes(router)
    ///     .serve_with_incoming(mptcp_hyper::MptcpListener::new(listener).incoming())
    ///     .await?;
    /// # Ok(()) }
    /// ```
    pub fn incoming(self) -> Incoming {
        Incoming {
            listener: Arc::new(self),
            next: None,
        }
    }
}

impl Stream for Incoming {
    type Item = io::Result<MptcpStream>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let listener = Arc::clone(&self.listener);
        let next = self
            .next
            .get_or_insert_with(|| Box::pin(async move { listener.accept_retrying().await }));
        let (stream, _peer) = std::task::ready!(next.as_mut().poll(cx));
        self.next = None;
        Poll::Ready(Some(Ok(stream)))
    }
}
