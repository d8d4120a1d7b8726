//! TLS over MPTCP on loopback: a tokio-rustls server on an `MptcpListener`,
//! a hyper-rustls client over `MptcpConnector`, with a self-signed
//! certificate made here (rcgen). HTTP/1.1 and HTTP/2 (ALPN), bodies
//! intact, both ends MPTCP, the client's info carried through the TLS layer.

mod common;

use std::sync::Arc;

use common::{assert_same, pattern, require_mptcp, REQUEST_TIMEOUT};
use http_body_util::{BodyExt, Full};
use hyper::body::{Bytes, Incoming};
use hyper::{Request, Response, Version};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use mptcp_hyper::{MptcpConnInfo, MptcpConnector, MptcpListener};
use mptcp_net::MptcpStatus;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

fn self_signed() -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let ck = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = PrivatePkcs8KeyDer::from(ck.signing_key.serialize_der());
    (ck.cert.der().clone(), key.into())
}

/// Accepts TLS connections; answers "<server status> <request bytes>"
/// followed by the request body echoed.
async fn tls_server(
    listener: MptcpListener,
    cert: CertificateDer<'static>,
    key: PrivateKeyDer<'static>,
) {
    let mut config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert], key)
        .unwrap();
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    // Bounded: the test makes two connections.
    for _ in 0..8 {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        let info = stream.info().clone();
        let acceptor = acceptor.clone();
        tokio::spawn(async move {
            let Ok(tls) = acceptor.accept(stream).await else {
                return;
            };
            let service = hyper::service::service_fn(move |req: Request<Incoming>| {
                let status = info.status();
                async move {
                    let body = req.into_body().collect().await?.to_bytes();
                    let mut out = format!("{} ", status.as_str()).into_bytes();
                    out.extend_from_slice(&body);
                    Ok::<_, hyper::Error>(Response::new(Full::new(Bytes::from(out))))
                }
            });
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(tls), service)
                .await;
        });
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_over_mptcp_round_trips() {
    require_mptcp();
    let (cert, key) = self_signed();
    let listener = MptcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = tokio::spawn(tls_server(listener, cert.clone(), key));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert).unwrap();
    let tls = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let mut mptcp = MptcpConnector::new();
    mptcp.enforce_http(false);

    for http2 in [false, true] {
        // HTTP/2 by ALPN: the client offers h2 and http/1.1, the server picks h2.
        let builder = hyper_rustls::HttpsConnectorBuilder::new()
            .with_tls_config(tls.clone())
            .https_only();
        let https = if http2 {
            builder.enable_all_versions().wrap_connector(mptcp.clone())
        } else {
            builder.enable_http1().wrap_connector(mptcp.clone())
        };
        let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(https);
        let data = pattern(1_000_003);
        let req = Request::post(format!("https://localhost:{port}/"))
            .body(Full::new(Bytes::from(data.clone())))
            .unwrap();
        let res = tokio::time::timeout(REQUEST_TIMEOUT, client.request(req))
            .await
            .expect("answer in time")
            .expect("TLS request");
        let want = if http2 {
            Version::HTTP_2
        } else {
            Version::HTTP_11
        };
        assert_eq!(res.version(), want);
        let info = res
            .extensions()
            .get::<MptcpConnInfo>()
            .expect("the info comes through hyper-rustls")
            .clone();
        assert_eq!(info.status(), MptcpStatus::Active, "client side");
        let body = res.into_body().collect().await.unwrap().to_bytes();
        let (head, echoed) = body.split_at(b"active ".len());
        assert_eq!(head, b"active ", "server side");
        assert_same(echoed, &data, "echo through TLS");
        println!(
            "TLS {want:?}: client {}, server {}, 1 MB echoed intact",
            info,
            String::from_utf8_lossy(head).trim()
        );
    }
    server.abort();
}
