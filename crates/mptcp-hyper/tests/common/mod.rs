//! Helpers shared by the integration tests: a test router, deterministic
//! bodies, clients.
#![allow(dead_code)]

use std::sync::OnceLock;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mptcp_hyper::{MptcpConnInfo, MptcpConnector};
#[allow(unused_imports)] // each test binary uses some of them
pub use mptcp_testnet::support::{assert_same, pattern};
use serde::{Deserialize, Serialize};

/// The largest body `/bytes/{n}` sends: a bad request is refused, not served.
pub const MAX_BODY: usize = 16 << 20;

/// What a test waits for one response at most.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// What `/info` answers: the server's view of the connection.
#[derive(Debug, Serialize, Deserialize)]
pub struct ServerView {
    pub status: String,
    pub peer: String,
    pub local: String,
    pub subflows: usize,
    pub version: String,
}

/// `/info` (the server's view), `/bytes/{n}` (n pattern bytes), `/echo`.
pub fn router() -> Router {
    Router::new()
        .route("/info", get(info))
        .route("/bytes/{n}", get(bytes))
        .route("/echo", post(|body: Bytes| async move { body }))
}

async fn info(info: MptcpConnInfo, req: axum::extract::Request) -> Json<ServerView> {
    Json(ServerView {
        status: info.status().as_str().to_owned(),
        peer: info.peer_addr().to_string(),
        local: info.local_addr().to_string(),
        subflows: info.subflows().map(|s| s.len()).unwrap_or(0),
        version: format!("{:?}", req.version()),
    })
}

/// The first `n` bytes of [`pattern`], from a cache made once, so timed
/// downloads measure the network, not the (debug-built) generator.
pub fn pattern_bytes(n: usize) -> Option<Bytes> {
    static CACHE: OnceLock<Bytes> = OnceLock::new();
    let all = CACHE.get_or_init(|| Bytes::from(pattern(MAX_BODY)));
    (n <= all.len()).then(|| all.slice(..n))
}

async fn bytes(Path(n): Path<usize>) -> Result<Bytes, StatusCode> {
    pattern_bytes(n).ok_or(StatusCode::PAYLOAD_TOO_LARGE)
}

pub type TestClient = Client<MptcpConnector, Full<Bytes>>;

/// An HTTP/1 client, or an HTTP/2-only one (h2c with prior knowledge).
pub fn client(connector: MptcpConnector, http2: bool) -> TestClient {
    Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build(connector)
}

/// A response's status, version, body and the client's MptcpConnInfo.
pub struct Got {
    pub status: StatusCode,
    pub version: hyper::Version,
    pub body: Bytes,
    pub info: MptcpConnInfo,
}

/// Sends one request (GET without a body, POST with one) and reads the
/// whole answer, bounded by [`REQUEST_TIMEOUT`].
pub async fn fetch(client: &TestClient, uri: &str, body: Option<Vec<u8>>) -> Got {
    let req = hyper::Request::builder()
        .method(if body.is_some() { "POST" } else { "GET" })
        .uri(uri)
        .body(Full::new(Bytes::from(body.unwrap_or_default())))
        .unwrap();
    let fut = async {
        let res = client.request(req).await.expect("request");
        let info = res
            .extensions()
            .get::<MptcpConnInfo>()
            .expect("the response carries the connector's MptcpConnInfo")
            .clone();
        let (status, version) = (res.status(), res.version());
        let body = res.into_body().collect().await.expect("body").to_bytes();
        Got {
            status,
            version,
            body,
            info,
        }
    };
    tokio::time::timeout(REQUEST_TIMEOUT, fut)
        .await
        .unwrap_or_else(|_| panic!("{uri}: no answer in {REQUEST_TIMEOUT:?}"))
}

/// `/info` through `client`: the client's info and the server's view.
pub async fn server_view(client: &TestClient, base: &str) -> (Got, ServerView) {
    let got = fetch(client, &format!("{base}/info"), None).await;
    assert_eq!(got.status, StatusCode::OK);
    let view: ServerView = serde_json::from_slice(&got.body).expect("JSON from /info");
    (got, view)
}

/// Fails the test, loudly, where MPTCP cannot be used.
pub fn require_mptcp() {
    let s = mptcp_net::support().expect("mptcp_net::support()");
    assert!(s.is_available(), "these tests need MPTCP on this host: {s}");
}
