//! Fetches a URL over Multipath TCP and tells whether MPTCP was used, with
//! the connection's subflows.
//!
//! ```text
//! cargo run -p mptcp-hyper --example http_client -- http://127.0.0.1:8080/ [--http2]
//! ```
//!
//! `http://` and `https://` (hyper-rustls, webpki roots, HTTP/2 by ALPN);
//! `--http2` asks for HTTP/2 in clear text (h2c, prior knowledge). Try it
//! against the `axum_server` example. It only talks to the URL it is given.

use std::process::ExitCode;

use http_body_util::{BodyExt, Empty};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mptcp_hyper::{MptcpConnInfo, MptcpConnector};

type Error = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let http2 = args.iter().any(|a| a == "--http2");
    let urls: Vec<&String> = args.iter().filter(|a| !a.starts_with("--")).collect();
    let [url] = urls[..] else {
        eprintln!("usage: http_client URL [--http2]");
        return ExitCode::from(2);
    };
    match fetch(url, http2).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // hyper-util's errors keep the cause (refused, timed out, ...) in source().
            let mut msg = e.to_string();
            let mut cause = e.source();
            while let Some(c) = cause {
                msg += &format!(": {c}");
                cause = c.source();
            }
            eprintln!("http_client: {url}: {msg}");
            ExitCode::FAILURE
        }
    }
}

async fn fetch(url: &str, http2: bool) -> Result<(), Error> {
    let uri: hyper::Uri = url.parse()?;

    // MPTCP underneath, TLS on top for https:// URIs.
    let mut mptcp = MptcpConnector::new();
    mptcp.enforce_http(false);
    let connector = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())?
        .https_or_http()
        .enable_all_versions()
        .wrap_connector(mptcp);
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(http2)
        .build(connector);

    let res = client.get(uri).await?;
    println!("{} {:?}", res.status(), res.version());
    let info = res.extensions().get::<MptcpConnInfo>().cloned();
    let mut body = res.into_body();
    let mut len = 0usize;
    while let Some(frame) = body.frame().await {
        if let Some(data) = frame?.data_ref() {
            len += data.len();
        }
    }
    println!("body: {len} bytes");

    let Some(info) = info else {
        println!("no connection info (the response did not come over MptcpConnector)");
        return Ok(());
    };
    let verdict = if info.multipath_tcp() { "yes" } else { "no" };
    println!("MPTCP used: {verdict} ({})", info);
    match info.subflows() {
        Ok(subflows) => {
            for sf in subflows {
                println!(
                    "  subflow {}: {} -> {}, rtt {:?}, sent {} B, received {} B",
                    sf.id.map_or("-".to_owned(), |id| id.to_string()),
                    sf.local.map_or("?".to_owned(), |a| a.to_string()),
                    sf.remote.map_or("?".to_owned(), |a| a.to_string()),
                    sf.tcp.rtt,
                    sf.tcp.bytes_acked.unwrap_or(0),
                    sf.tcp.bytes_received.unwrap_or(0),
                );
            }
        }
        // The server closed the connection after the response.
        Err(e) => println!("  subflows: {e}"),
    }
    Ok(())
}
