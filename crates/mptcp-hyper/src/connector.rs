//! [`MptcpConnector`]: hyper-util's `Client` over Multipath TCP.

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use http::uri::{Scheme, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use mptcp_net::Dialer;

use crate::MptcpStream;

/// A connector for hyper-util's [`Client`] that dials with a
/// [`mptcp_net::Dialer`]: MPTCP first, with its policy, fallback rules and
/// timeout. HTTP/1 and HTTP/2 (`http2_only`, h2c with prior knowledge) run
/// over it unchanged; TLS goes on top of it (see the crate docs).
///
/// As a `tower_service::Service<Uri>` it takes the host and port of the
/// URI (80 for `http`, 443 for `https` when no port is given), resolves the
/// name with tokio ([`tokio::net::lookup_host`]), and dials each address in
/// turn until one connects. Its response is an [`MptcpStream`], whose
/// [`MptcpConnInfo`](crate::MptcpConnInfo) hyper-util copies into every
/// response's extensions.
///
/// **Timeout.** With [`Dialer::set_timeout`], the whole connect (name
/// resolution included, as Go's `Dialer.Timeout`) must finish within it;
/// the connect attempts share what resolution left, the way the dialer
/// shares its time among addresses.
///
/// **Schemes.** Like hyper-util's `HttpConnector`, only `http://` URIs are
/// accepted by default, so a plain client never speaks clear text to an
/// `https://` port. A TLS connector stacked on top calls this connector for
/// `https://` URIs too: allow them with
/// [`enforce_http(false)`](MptcpConnector::enforce_http).
///
/// ```no_run
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use http_body_util::Empty;
/// use hyper::body::Bytes;
/// use mptcp_hyper::{MptcpConnInfo, MptcpConnector};
///
/// let client = mptcp_hyper::client::<Empty<Bytes>>(MptcpConnector::new());
/// let res = client.get("http://127.0.0.1:8080/".parse()?).await?;
/// if let Some(info) = res.extensions().get::<MptcpConnInfo>() {
///     println!("{}: {}, {} subflow(s)", res.status(), info.status(), info.subflows()?.len());
/// }
/// # Ok(()) }
/// ```
#[derive(Clone, Debug, Default)]
pub struct MptcpConnector {
    dialer: Dialer,
    allow_https: bool,
}

impl MptcpConnector {
    /// A connector with a default [`Dialer`] (MPTCP unless the process
    /// default says otherwise, no timeout) that accepts `http://` only.
    pub fn new() -> MptcpConnector {
        MptcpConnector::default()
    }

    /// A connector dialing with `dialer` (its policy, timeout, local address
    /// and socket hook), `http://` only.
    pub fn with_dialer(dialer: Dialer) -> MptcpConnector {
        MptcpConnector {
            dialer,
            allow_https: false,
        }
    }

    /// The dialer.
    pub fn dialer(&self) -> &Dialer {
        &self.dialer
    }

    /// The dialer, to change its settings.
    pub fn dialer_mut(&mut self) -> &mut Dialer {
        &mut self.dialer
    }

    /// With `true` (the default), URIs whose scheme is not `http` are
    /// refused; with `false`, `https` is accepted too (default port 443),
    /// for a TLS connector wrapped around this one.
    pub fn enforce_http(&mut self, enforce: bool) -> &mut Self {
        self.allow_https = !enforce;
        self
    }

    /// Connects to the host and port of `uri`; what [`Service::call`] does.
    ///
    /// [`Service::call`]: tower_service::Service::call
    pub async fn connect(&self, uri: Uri) -> io::Result<MptcpStream> {
        let (host, port) = host_port(&uri, self.allow_https)?;
        let start = Instant::now();
        let addrs = match self.dialer.timeout() {
            None => resolve(&host, port).await?,
            Some(t) => tokio::time::timeout(t, resolve(&host, port))
                .await
                .map_err(|_| {
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("resolving {host} took longer than the dial timeout ({t:?})"),
                    )
                })??,
        };
        let stream = match self.dialer.timeout() {
            None => self.dialer.dial_async(&addrs[..]).await?,
            Some(t) => {
                let mut dialer = self.dialer.clone();
                let left = t.saturating_sub(start.elapsed());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no time left to connect to {host}:{port} after resolving it"),
                    ));
                }
                dialer.set_timeout(Some(left));
                dialer.dial_async(&addrs[..]).await?
            }
        };
        MptcpStream::new(stream)
    }
}

impl From<Dialer> for MptcpConnector {
    fn from(dialer: Dialer) -> MptcpConnector {
        MptcpConnector::with_dialer(dialer)
    }
}

impl tower_service::Service<Uri> for MptcpConnector {
    type Response = MptcpStream;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<MptcpStream>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = self.clone();
        Box::pin(async move { connector.connect(uri).await })
    }
}

/// A hyper-util [`Client`] over `connector`, on tokio, with hyper-util's
/// defaults (HTTP/1, connection pool). For HTTP/2 or other settings use
/// `Client::builder(TokioExecutor::new())...build(connector)`.
pub fn client<B>(connector: MptcpConnector) -> Client<MptcpConnector, B>
where
    B: hyper::body::Body + Send,
    B::Data: Send,
{
    Client::builder(TokioExecutor::new()).build(connector)
}

fn invalid(msg: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, msg)
}

/// The host (IPv6 literals without brackets) and port to dial for `uri`.
fn host_port(uri: &Uri, allow_https: bool) -> io::Result<(String, u16)> {
    let default_port = match uri.scheme() {
        Some(s) if *s == Scheme::HTTP => 80,
        Some(s) if *s == Scheme::HTTPS && allow_https => 443,
        Some(s) if *s == Scheme::HTTPS => {
            return Err(invalid(format!(
                "{uri}: https needs a TLS connector around MptcpConnector \
                 (and MptcpConnector::enforce_http(false))"
            )))
        }
        Some(s) => return Err(invalid(format!("{uri}: unsupported scheme {s:?}"))),
        None => return Err(invalid(format!("{uri}: no scheme (want http://...)"))),
    };
    let host = match uri.host() {
        Some(h) if !h.is_empty() => h,
        _ => return Err(invalid(format!("{uri}: no host"))),
    };
    let host = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    Ok((host.to_owned(), uri.port_u16().unwrap_or(default_port)))
}

async fn resolve(host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host, port))
        .await
        .map_err(|e| io::Error::new(e.kind(), format!("cannot resolve {host}: {e}")))?
        .collect();
    if addrs.is_empty() {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{host} resolved to no address"),
        ));
    }
    Ok(addrs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hp(uri: &str, https: bool) -> io::Result<(String, u16)> {
        host_port(&uri.parse().unwrap(), https)
    }

    #[test]
    fn host_and_default_ports() {
        assert_eq!(hp("http://a.test/x", false).unwrap(), ("a.test".into(), 80));
        assert_eq!(
            hp("http://a.test:81", false).unwrap(),
            ("a.test".into(), 81)
        );
        assert_eq!(hp("https://a.test", true).unwrap(), ("a.test".into(), 443));
        assert_eq!(
            hp("http://[::1]:8080/", false).unwrap(),
            ("::1".into(), 8080)
        );
        assert_eq!(hp("http://[::1]/", false).unwrap(), ("::1".into(), 80));
        assert_eq!(
            hp("http://127.0.0.1", false).unwrap(),
            ("127.0.0.1".into(), 80)
        );
    }

    #[test]
    fn bad_uris_are_errors() {
        for (uri, https) in [
            ("https://a.test", false),
            ("ftp://a.test", true),
            ("/only/a/path", true),
            ("a.test:80", true),
        ] {
            let err = hp(uri, https).unwrap_err();
            assert_eq!(err.kind(), io::ErrorKind::InvalidInput, "{uri}: {err}");
        }
    }
}
