//! The `/metrics` responder: `GET` (or `HEAD`) `/metrics`, nothing else, on a
//! tokio `TcpListener`.
//!
//! One request per connection (`Connection: close`); the request body, if any, is
//! never read. Every resource is bounded by [`Limits`]: at most
//! [`Limits::max_concurrent`] scrapes run at once (the next waits for a slot), at
//! most [`Limits::max_waiting`] clients wait for their request (past it the
//! oldest is closed), a request head past [`Limits::max_request`] bytes gets 431,
//! and a client has [`Limits::io_timeout`] to send its request and as long again
//! to take the answer. So clients that connect and say nothing, or send a byte a
//! second, cost a descriptor each for a few seconds and never hold a scrape back.

use std::io;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};

use crate::registry::{Scrape, CONTENT_TYPE};

/// How long, and how many bytes, a finished connection's leftover input is drained.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);
const MAX_DRAIN: usize = 64 * 1024;
/// The pause after an accept error (out of descriptors: nothing to gain by spinning).
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// What [`serve_with`] allows a client.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Clients served at once (default 4: a Prometheus server scrapes a target
    /// from one connection, seconds apart).
    pub max_concurrent: usize,
    /// The largest request head read, in bytes (default 8 KiB).
    pub max_request: usize,
    /// The longest wait for the client's request, and for it to take the answer
    /// (default 5 s).
    pub io_timeout: Duration,
    /// Clients waiting for their request at once (default 256); past it the
    /// one that has waited longest is closed.
    pub max_waiting: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_concurrent: 4,
            max_request: 8 * 1024,
            io_timeout: Duration::from_secs(5),
            max_waiting: 256,
        }
    }
}

impl Limits {
    /// Sets [`Limits::max_concurrent`] (at least 1).
    pub fn max_concurrent(mut self, n: usize) -> Self {
        self.max_concurrent = n.max(1);
        self
    }

    /// Sets [`Limits::max_request`].
    pub fn max_request(mut self, bytes: usize) -> Self {
        self.max_request = bytes;
        self
    }

    /// Sets [`Limits::max_waiting`] (at least 1).
    pub fn max_waiting(mut self, n: usize) -> Self {
        self.max_waiting = n.max(1);
        self
    }

    /// Sets [`Limits::io_timeout`].
    pub fn io_timeout(mut self, timeout: Duration) -> Self {
        self.io_timeout = timeout;
        self
    }
}

/// What a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    /// `GET /metrics` (or `HEAD`).
    Metrics {
        /// `HEAD`: headers only.
        head: bool,
    },
    /// Another path: 404.
    NotFound,
    /// Another method: 405.
    MethodNotAllowed,
    /// Not an HTTP/1 request line: 400.
    BadRequest,
}

/// Routes a request head (the bytes up to the blank line; only the first line matters).
pub fn route(head: &[u8]) -> Route {
    let line = head.split(|&b| b == b'\n').next().unwrap_or_default();
    let Ok(line) = std::str::from_utf8(line) else {
        return Route::BadRequest;
    };
    let mut parts = line.trim_end_matches('\r').split(' ');
    let (Some(method), Some(target), Some(version), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Route::BadRequest;
    };
    if !version.starts_with("HTTP/1.") || !target.starts_with('/') {
        return Route::BadRequest;
    }
    let path = target.split(['?', '#']).next().unwrap_or_default();
    let head = match method {
        "GET" => false,
        "HEAD" => true,
        _ => return Route::MethodNotAllowed,
    };
    if path == "/metrics" {
        Route::Metrics { head }
    } else {
        Route::NotFound
    }
}

/// Serves `source` on `listener` with the default [`Limits`], until the future is
/// dropped (abort its task, or race it against a shutdown signal).
pub async fn serve(listener: TcpListener, source: impl Scrape) {
    serve_with(listener, source, Limits::default()).await;
}

/// Serves `source` on `listener` within `limits`, until the future is dropped.
///
/// Every client is accepted at once and given [`Limits::io_timeout`] to send its
/// request; only the scrapes wait for one of [`Limits::max_concurrent`] slots, so
/// clients that connect and say nothing (slowloris) do not hold a scrape back.
/// At most [`Limits::max_waiting`] clients may be waiting for their request at
/// once: past it the one that has waited longest is closed (a well-behaved
/// client sends its request at once, so it is never the oldest). A client's
/// error ends that client only; an accept error (out of descriptors) pauses the
/// loop briefly.
pub async fn serve_with(listener: TcpListener, source: impl Scrape, limits: Limits) {
    let source = Arc::new(source);
    let slots = Arc::new(Semaphore::new(limits.max_concurrent.max(1)));
    let waiting = Arc::new(Waiting::default());
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!("metrics accept: {e}");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let (id, evicted) = waiting.enter(limits.max_waiting.max(1));
        let source = Arc::clone(&source);
        let slots = Arc::clone(&slots);
        let waiting = Arc::clone(&waiting);
        tokio::spawn(async move {
            let served = answer(stream, source, limits, &slots, &waiting, id, &evicted).await;
            waiting.leave(id);
            if let Err(e) = served {
                tracing::debug!("metrics client {peer}: {e}");
            }
        });
    }
}

/// The clients still waiting for their request, oldest first, each with the
/// signal that closes it.
#[derive(Default)]
struct Waiting {
    next: std::sync::atomic::AtomicU64,
    clients: std::sync::Mutex<std::collections::BTreeMap<u64, Arc<Notify>>>,
}

impl Waiting {
    /// Registers a new client; closes the oldest one if `max` are waiting.
    fn enter(&self, max: usize) -> (u64, Arc<Notify>) {
        let id = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let signal = Arc::new(Notify::new());
        let mut clients = self.clients.lock().unwrap_or_else(|p| p.into_inner());
        while clients.len() >= max {
            match clients.pop_first() {
                // notify_one keeps the signal if the client is not waiting on it yet.
                Some((_, oldest)) => oldest.notify_one(),
                None => break,
            }
        }
        clients.insert(id, Arc::clone(&signal));
        (id, signal)
    }

    /// The client's request is read (or it is gone): no longer evictable.
    fn leave(&self, id: u64) {
        self.clients
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&id);
    }
}

/// How reading a request head ended.
enum Head {
    Complete(Vec<u8>),
    TooLarge,
    /// The client closed before the blank line.
    Closed,
}

async fn read_head(stream: &mut TcpStream, max: usize) -> io::Result<Head> {
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            return Ok(Head::Complete(head));
        }
        if head.len() >= max {
            return Ok(Head::TooLarge);
        }
        let n = stream.read(&mut buf).await?;
        if n == 0 {
            return Ok(Head::Closed);
        }
        head.extend_from_slice(&buf[..n]);
    }
}

/// Reads one request head and answers it.
async fn answer<S: Scrape>(
    mut stream: TcpStream,
    source: Arc<S>,
    limits: Limits,
    slots: &Semaphore,
    waiting: &Waiting,
    id: u64,
    evicted: &Notify,
) -> io::Result<()> {
    let head = tokio::select! {
        r = tokio::time::timeout(limits.io_timeout, read_head(&mut stream, limits.max_request)) => match r {
            Ok(head) => head?,
            Err(_) => {
                return Err(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "no request in time",
                ))
            }
        },
        () = evicted.notified() => {
            return Err(io::Error::other(
                "closed: the oldest of too many clients waiting for their request",
            ))
        }
    };
    waiting.leave(id);
    let response = match head {
        Head::Closed => return Ok(()),
        Head::TooLarge => response(
            "431 Request Header Fields Too Large",
            "text/plain",
            b"request too large\n",
            false,
        ),
        Head::Complete(head) => match route(&head) {
            Route::Metrics { head } => {
                // Never closed: serve_with owns the semaphore.
                let _slot = slots.acquire().await.map_err(io::Error::other)?;
                let scraped = tokio::task::spawn_blocking(move || source.scrape())
                    .await
                    .unwrap_or_else(|e| Err(format!("the scrape panicked: {e}").into()));
                match scraped {
                    Ok(text) => response("200 OK", CONTENT_TYPE, text.as_bytes(), head),
                    Err(e) => response(
                        "500 Internal Server Error",
                        "text/plain",
                        format!("{e}\n").as_bytes(),
                        head,
                    ),
                }
            }
            Route::NotFound => response(
                "404 Not Found",
                "text/plain",
                b"only /metrics is served here\n",
                false,
            ),
            Route::MethodNotAllowed => {
                response("405 Method Not Allowed", "text/plain", b"use GET\n", false)
            }
            Route::BadRequest => response("400 Bad Request", "text/plain", b"bad request\n", false),
        },
    };
    let sent = tokio::time::timeout(limits.io_timeout, async {
        stream.write_all(&response).await?;
        stream.shutdown().await
    })
    .await;
    match sent {
        Ok(r) => r?,
        Err(_) => {
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "answer not taken in time",
            ))
        }
    }
    // Closing with unread bytes (a request too large, a body) would reset the
    // connection and could destroy the answer before the client reads it: our
    // side is ended, now drain a bounded amount for a bounded time.
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, async {
        let mut buf = [0u8; 4096];
        let mut drained = 0;
        while drained < MAX_DRAIN {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => drained += n,
            }
        }
    })
    .await;
    Ok(())
}

/// An HTTP/1.1 response, headers only when `head_only`.
fn response(status: &str, content_type: &str, body: &[u8], head_only: bool) -> Vec<u8> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        assert_eq!(
            route(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n"),
            Route::Metrics { head: false }
        );
        assert_eq!(
            route(b"HEAD /metrics?x=1 HTTP/1.0\r\n\r\n"),
            Route::Metrics { head: true }
        );
        assert_eq!(route(b"GET / HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(route(b"GET /metrics/x HTTP/1.1\r\n\r\n"), Route::NotFound);
        assert_eq!(
            route(b"POST /metrics HTTP/1.1\r\n\r\n"),
            Route::MethodNotAllowed
        );
        for bad in [
            &b"GET /metrics\r\n\r\n"[..],
            b"\xff\xfe",
            b"",
            b"GET metrics HTTP/1.1\r\n",
            b"GET /metrics SPDY/3\r\n",
        ] {
            assert_eq!(route(bad), Route::BadRequest, "{bad:?}");
        }
    }

    #[test]
    fn head_requests_get_no_body() {
        let r = response("200 OK", CONTENT_TYPE, b"x 1\n", true);
        let text = String::from_utf8(r).unwrap();
        assert!(
            text.ends_with("Content-Length: 4\r\nConnection: close\r\n\r\n"),
            "{text}"
        );
    }
}
