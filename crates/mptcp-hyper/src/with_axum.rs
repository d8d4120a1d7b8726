//! axum over MPTCP: [`serve`], [`MptcpListener`] as an axum listener,
//! [`MptcpConnInfo`] as `ConnectInfo` and as a handler argument.

use std::io;
use std::net::SocketAddr;

use axum::extract::connect_info::{ConnectInfo, Connected, IntoMakeServiceWithConnectInfo};
use axum::extract::FromRequestParts;
use axum::middleware::AddExtension;
use axum::response::{IntoResponse, Response};
use axum::serve::IncomingStream;
use axum::Router;
use http::request::Parts;
use http::StatusCode;

use crate::{MptcpConnInfo, MptcpListener, MptcpStream};

/// What [`serve`] returns: axum's [`Serve`](axum::serve::Serve) future, to
/// `.await`, or to turn into a graceful one with
/// [`with_graceful_shutdown`](axum::serve::Serve::with_graceful_shutdown).
pub type Serve = axum::serve::Serve<
    MptcpListener,
    IntoMakeServiceWithConnectInfo<Router, MptcpConnInfo>,
    AddExtension<Router, ConnectInfo<MptcpConnInfo>>,
>;

/// Serves `router` on `listener` with [`axum::serve()`] (HTTP/1 and h2c
/// HTTP/2), each connection's [`MptcpConnInfo`] available to handlers, as an
/// argument of type `MptcpConnInfo` or `ConnectInfo<MptcpConnInfo>`.
///
/// This is `axum::serve(MptcpListener::from(listener),
/// router.into_make_service_with_connect_info::<MptcpConnInfo>())`: the
/// pieces are public for other arrangements (middleware that needs the
/// info, a different make-service).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> std::io::Result<()> {
/// use axum::{routing::get, Router};
/// use mptcp_hyper::MptcpConnInfo;
///
/// async fn hello(info: MptcpConnInfo) -> String {
///     format!("hello {}, you use {}\n", info.peer_addr(), info.status())
/// }
///
/// let listener = mptcp_net::ListenConfig::new().listen_async("127.0.0.1:8080").await?;
/// mptcp_hyper::serve(listener, Router::new().route("/", get(hello))).await
/// # }
/// ```
pub fn serve<L: Into<MptcpListener>>(listener: L, router: Router) -> Serve {
    axum::serve(
        listener.into(),
        router.into_make_service_with_connect_info::<MptcpConnInfo>(),
    )
}

/// Accept errors are ridden out as `axum::serve` does for tokio listeners:
/// a connection lost in the queue is skipped, other errors (`EMFILE`) are
/// logged and retried after a second.
impl axum::serve::Listener for MptcpListener {
    type Io = MptcpStream;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (MptcpStream, SocketAddr) {
        self.accept_retrying().await
    }

    fn local_addr(&self) -> io::Result<SocketAddr> {
        MptcpListener::local_addr(self)
    }
}

/// For `router.into_make_service_with_connect_info::<MptcpConnInfo>()`.
impl Connected<IncomingStream<'_, MptcpListener>> for MptcpConnInfo {
    fn connect_info(stream: IncomingStream<'_, MptcpListener>) -> MptcpConnInfo {
        stream.io().info().clone()
    }
}

/// A handler argument: the info put in the request by [`serve`]
/// (`ConnectInfo<MptcpConnInfo>`) or by [`serve_hyper`](crate::serve_hyper)
/// (a plain extension).
impl<S: Send + Sync> FromRequestParts<S> for MptcpConnInfo {
    type Rejection = MissingConnInfo;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        if let Some(info) = parts.extensions.get::<MptcpConnInfo>() {
            return Ok(info.clone());
        }
        match parts.extensions.get::<ConnectInfo<MptcpConnInfo>>() {
            Some(ConnectInfo(info)) => Ok(info.clone()),
            None => Err(MissingConnInfo),
        }
    }
}

/// The rejection of an `MptcpConnInfo` handler argument when the router was
/// not served by [`serve`] or [`serve_hyper`](crate::serve_hyper): a 500
/// that says so.
#[derive(Clone, Copy, Debug)]
pub struct MissingConnInfo;

impl IntoResponse for MissingConnInfo {
    fn into_response(self) -> Response {
        (
            StatusCode::INTERNAL_SERVER_ERROR,
            "MptcpConnInfo is missing: serve the router with mptcp_hyper::serve \
             (or into_make_service_with_connect_info::<MptcpConnInfo>() on an MptcpListener)",
        )
            .into_response()
    }
}
