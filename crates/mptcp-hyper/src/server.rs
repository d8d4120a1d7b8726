//! [`MptcpListener`] and [`serve_hyper`]: hyper servers whose requests carry
//! their connection's [`MptcpConnInfo`].

use std::error::Error as StdError;
use std::future::{pending, Future};
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use http::{Request, Response};
use hyper::body::{Body, Incoming};
use hyper_util::rt::TokioExecutor;
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use mptcp_net::ListenConfig;
use tokio::net::{TcpListener, ToSocketAddrs};

use crate::{MptcpConnInfo, MptcpStream};

type BoxError = Box<dyn StdError + Send + Sync>;

/// A tokio listener whose accepted streams are [`MptcpStream`]s, each
/// knowing its [`MptcpConnInfo`].
///
/// Make the listener with [`mptcp_net::ListenConfig::listen_async`] (or
/// [`MptcpListener::bind`]) so that it accepts MPTCP; any tokio listener
/// works, and a plain one reports [`MptcpStatus::PlainTcp`] for every
/// connection. Listen on the wildcard address (`0.0.0.0`, `[::]`) when the
/// host has several addresses: clients' extra subflows towards the other
/// addresses are matched to the listener by address. Keep it open while
/// connections may still add subflows: joins arrive through it.
///
/// With the `axum` feature it is an [`axum::serve::Listener`]; see
/// [`serve`](crate::serve).
///
/// [`MptcpStatus::PlainTcp`]: mptcp_net::MptcpStatus::PlainTcp
#[derive(Debug)]
pub struct MptcpListener {
    inner: TcpListener,
}

impl MptcpListener {
    /// Listens on `addr` with a default [`ListenConfig`] (MPTCP unless the
    /// process default says otherwise).
    pub async fn bind<A: ToSocketAddrs>(addr: A) -> io::Result<MptcpListener> {
        Ok(MptcpListener::new(
            ListenConfig::new().listen_async(addr).await?,
        ))
    }

    /// Wraps a tokio listener.
    pub fn new(listener: TcpListener) -> MptcpListener {
        MptcpListener { inner: listener }
    }

    /// Accepts one connection and reads its status and addresses.
    ///
    /// Fails with the `accept(2)` error, or the `getsockopt` error of the
    /// new connection (which is then closed).
    pub async fn accept(&self) -> io::Result<(MptcpStream, SocketAddr)> {
        let (stream, peer) = self.inner.accept().await?;
        Ok((MptcpStream::new(stream)?, peer))
    }

    /// The listening address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner.local_addr()
    }

    /// The tokio listener.
    pub fn get_ref(&self) -> &TcpListener {
        &self.inner
    }

    /// The tokio listener.
    pub fn into_inner(self) -> TcpListener {
        self.inner
    }

    /// Accepts until a connection comes, riding out errors the way axum and
    /// hyper 0.14 did: a connection that died in the queue is skipped, any
    /// other error (`EMFILE`, ...) is logged and retried after a second.
    pub(crate) async fn accept_retrying(&self) -> (MptcpStream, SocketAddr) {
        loop {
            match self.accept().await {
                Ok(conn) => return conn,
                Err(e) if is_connection_error(&e) => {
                    tracing::debug!("accept: connection lost before it was served: {e}");
                }
                Err(e) => {
                    tracing::error!("accept error, retrying in 1 s: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}

impl From<TcpListener> for MptcpListener {
    fn from(listener: TcpListener) -> MptcpListener {
        MptcpListener::new(listener)
    }
}

fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::NotConnected
    )
}

/// Serves a hyper [`Service`](hyper::service::Service) on `listener`, one
/// tokio task per connection, HTTP/1 and HTTP/2 in clear text (h2c with
/// prior knowledge: hyper-util's `auto` builder tells them apart by the
/// HTTP/2 preface). Each request carries its
/// connection's [`MptcpConnInfo`] in its extensions:
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use std::convert::Infallible;
/// use http_body_util::Full;
/// use hyper::body::{Bytes, Incoming};
/// use hyper::{Request, Response};
/// use mptcp_hyper::{serve_hyper, MptcpConnInfo};
///
/// let listener = mptcp_net::ListenConfig::new().listen_async("127.0.0.1:8080").await?;
/// let service = hyper::service::service_fn(|req: Request<Incoming>| async move {
///     let info = req.extensions().get::<MptcpConnInfo>().cloned();
///     let text = match info {
///         Some(info) => format!("{}\n", info.status()),
///         None => "not served by mptcp_hyper\n".to_owned(),
///     };
///     Ok::<_, Infallible>(Response::new(Full::new(Bytes::from(text))))
/// });
/// serve_hyper(listener, service).await
/// # }
/// ```
///
/// Runs until the task is dropped; accept errors are ridden out (see
/// [`MptcpListener`]), so it only returns to say it cannot go on, which
/// today never happens. Connection errors are logged at `debug`.
pub async fn serve_hyper<L, S, B>(listener: L, service: S) -> io::Result<()>
where
    L: Into<MptcpListener>,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
{
    serve_hyper_with_graceful_shutdown(listener, service, pending()).await
}

/// [`serve_hyper`], until `signal` completes; then the listener is closed
/// (new connections and new MPTCP subflows are refused), every open
/// connection is asked to finish (HTTP/1: after the request in flight;
/// HTTP/2: GOAWAY), and this returns once all have.
pub async fn serve_hyper_with_graceful_shutdown<L, S, B, F>(
    listener: L,
    service: S,
    signal: F,
) -> io::Result<()>
where
    L: Into<MptcpListener>,
    S: hyper::service::Service<Request<Incoming>, Response = Response<B>> + Clone + Send + 'static,
    S::Future: Send + 'static,
    S::Error: Into<BoxError>,
    B: Body + Send + 'static,
    B::Data: Send,
    B::Error: Into<BoxError>,
    F: Future<Output = ()> + Send,
{
    let listener = listener.into();
    let graceful = GracefulShutdown::new();
    let mut signal = std::pin::pin!(signal);
    loop {
        let (stream, _) = tokio::select! {
            conn = listener.accept_retrying() => conn,
            () = &mut signal => break,
        };
        let service = WithConnInfo {
            info: stream.info().clone(),
            inner: service.clone(),
        };
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let builder = auto::Builder::new(TokioExecutor::new());
            let conn = builder.serve_connection_with_upgrades(stream, service);
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!("HTTP connection ended with an error: {e}");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
    Ok(())
}

/// Puts the connection's [`MptcpConnInfo`] into each request's extensions.
#[derive(Clone, Debug)]
struct WithConnInfo<S> {
    info: MptcpConnInfo,
    inner: S,
}

impl<S, ReqBody> hyper::service::Service<Request<ReqBody>> for WithConnInfo<S>
where
    S: hyper::service::Service<Request<ReqBody>>,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = S::Future;

    fn call(&self, mut req: Request<ReqBody>) -> Self::Future {
        req.extensions_mut().insert(self.info.clone());
        self.inner.call(req)
    }
}
