//! HTTPS over Multipath TCP: a tokio-rustls server on an MPTCP listener and
//! a hyper-rustls client over `MptcpConnector`, with a self-signed
//! certificate made at start (rcgen). One request each way of speaking
//! (HTTP/1.1, then HTTP/2 by ALPN); both ends print what they use.
//!
//! ```text
//! cargo run -p mptcp-hyper --example tls
//! ```
//!
//! Everything stays on loopback (`localhost`).

use std::sync::Arc;

use http_body_util::{BodyExt, Empty, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use mptcp_hyper::{MptcpConnInfo, MptcpConnector, MptcpListener};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

type Error = Box<dyn std::error::Error + Send + Sync>;

/// ring, named explicitly: a build with several rustls providers enabled has
/// no process default.
fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()])?;
    let cert = ck.cert.der().clone();
    let key = PrivateKeyDer::from(PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der()));

    let listener = MptcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(server(listener, cert.clone(), key));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert)?;
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
    // The TLS connector calls ours for https:// URIs: allow them.
    let mut mptcp = MptcpConnector::new();
    mptcp.enforce_http(false);

    for h2 in [false, true] {
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_only();
        let https = if h2 {
            builder.enable_all_versions().wrap_connector(mptcp.clone())
        } else {
            builder.enable_http1().wrap_connector(mptcp.clone())
        };
        let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
        let res = client
            .get(format!("https://localhost:{port}/").parse()?)
            .await?;
        let version = res.version();
        let info = res.extensions().get::<MptcpConnInfo>().cloned();
        let body = res.into_body().collect().await?.to_bytes();
        match info {
            Some(info) => println!(
                "client ({version:?}): {info}, {} subflow(s)",
                info.subflows()?.len()
            ),
            None => println!("client ({version:?}): no connection info"),
        }
        print!("server said: {}", String::from_utf8_lossy(&body));
    }
    Ok(())
}

/// Accepts TLS over MPTCP; tells each client what the server sees.
async fn server(
    listener: MptcpListener,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) {
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .and_then(|b| b.with_no_client_auth().with_single_cert(vec![cert], key));
    let mut config = match config {
        Ok(config) => config,
        Err(e) => {
            eprintln!("server: TLS configuration: {e}");
            return;
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(conn) => conn,
            Err(e) => {
                eprintln!("server: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                continue;
            }
        };
        // Read before the handshake: the TLS stream hides the socket.
        let info = stream.info().clone();
        println!("server: {peer} connected, {}", info.status());
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let tls = match acceptor.accept(stream).await {
                Ok(tls) => tls,
                Err(e) => return eprintln!("server: TLS handshake with {peer}: {e}"),
            };
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let text = format!(
                    "{:?} over TLS over {}, {} subflow(s)\n",
                    req.version(),
                    info.status(),
                    info.subflows().map(|s| s.len()).unwrap_or(0)
                );
                async move { Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(text)))) }
            });
            if let Err(e) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await
            {
                eprintln!("server: {peer}: {e}");
            }
        });
    }
}
