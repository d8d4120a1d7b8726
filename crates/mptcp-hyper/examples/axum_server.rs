//! "Am I using MPTCP?": an axum server that tells each client whether its
//! connection uses Multipath TCP, and over which subflows.
//!
//! ```text
//! cargo run -p mptcp-hyper --example axum_server -- [ADDR]     # default 127.0.0.1:8080
//! curl http://127.0.0.1:8080/            # plain curl: "no: plain TCP ..."
//! mptcpize run curl http://127.0.0.1:8080/
//! cargo run -p mptcp-hyper --example http_client -- http://127.0.0.1:8080/json
//! ```
//!
//! `GET /` answers in text, `GET /json` in JSON. Listen on a wildcard
//! address (`0.0.0.0:8080`, `[::]:8080`) on a host with several addresses,
//! so clients' extra subflows find the listener. Ctrl-C stops it gracefully.

use axum::routing::get;
use axum::{Json, Router};
use mptcp_hyper::MptcpConnInfo;
use mptcp_net::{ListenConfig, MptcpStatus, SubflowInfo};
use serde::Serialize;

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let listener = ListenConfig::new().listen_async(addr.as_str()).await?;
    println!(
        "listening on http://{} ({})",
        listener.local_addr()?,
        mptcp_net::MptcpExt::mptcp_status(&listener)?
    );
    let app = Router::new()
        .route("/", get(text))
        .route("/json", get(json));
    mptcp_hyper::serve(listener, app)
        .with_graceful_shutdown(async {
            let _ = tokio::signal::ctrl_c().await;
            println!("shutting down");
        })
        .await
}

async fn text(info: MptcpConnInfo) -> String {
    let mut out = match info.status() {
        MptcpStatus::Active => {
            let subflows = info.subflows().unwrap_or_default();
            format!("yes, MPTCP: {} subflow(s)\n", subflows.len()) + &list(&subflows)
        }
        MptcpStatus::FellBack => "no: MPTCP fell back to TCP (a middlebox?)\n".to_owned(),
        MptcpStatus::PlainTcp => "no: plain TCP (your client did not ask for MPTCP)\n".to_owned(),
        other => format!("no: {other}\n"),
    };
    out += &format!("you are {}\n", info.peer_addr());
    out
}

fn list(subflows: &[SubflowInfo]) -> String {
    subflows
        .iter()
        .map(|sf| {
            format!(
                "  client {} -> server {}, rtt {:?}\n",
                sf.remote.map_or("?".to_owned(), |a| a.to_string()),
                sf.local.map_or("?".to_owned(), |a| a.to_string()),
                sf.tcp.rtt
            )
        })
        .collect()
}

#[derive(Serialize)]
struct Answer {
    mptcp: bool,
    connection: MptcpConnInfo,
    subflows: Vec<SubflowInfo>,
}

async fn json(info: MptcpConnInfo) -> Json<Answer> {
    Json(Answer {
        mptcp: info.multipath_tcp(),
        subflows: info.subflows().unwrap_or_default(),
        connection: info,
    })
}
