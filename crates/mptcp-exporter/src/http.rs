//! The HTTP side: `GET /metrics`, nothing else, on a std `TcpListener`.
//!
//! Written on std rather than hyper because it answers one request shape: one
//! connection at a time, one request per connection (`Connection: close`), the
//! request head bounded to [`MAX_REQUEST`] bytes and [`IO_TIMEOUT`] per read and
//! write, so a slow or hostile client holds the loop for a few seconds at most. The
//! request body, if any, is never read.

use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::fd::AsFd;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use crate::collector::Collector;
use crate::render::CONTENT_TYPE;

/// The largest request head read.
pub const MAX_REQUEST: usize = 8 * 1024;
/// The longest wait for a client's bytes, and for it to take ours.
pub const IO_TIMEOUT: Duration = Duration::from_secs(5);
/// How long, and how many bytes, a finished connection's leftover input is drained.
const DRAIN_TIMEOUT: Duration = Duration::from_millis(500);
const MAX_DRAIN: usize = 64 * 1024;
/// How often the accept loop looks at the stop flag.
const TICK: Duration = Duration::from_millis(200);

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

/// Serves `collector` on `listener` until `stop` is raised.
///
/// # Errors
/// Only if the listener itself fails; a client's error ends that client only.
pub fn serve(listener: &TcpListener, collector: &Collector, stop: &AtomicBool) -> io::Result<()> {
    listener.set_nonblocking(true)?;
    while !stop.load(Ordering::SeqCst) {
        if !readable(listener, TICK)? {
            continue;
        }
        match listener.accept() {
            Ok((stream, peer)) => {
                if let Err(e) = answer(stream, collector) {
                    tracing::debug!("client {peer}: {e}");
                }
            }
            Err(e)
                if e.kind() == io::ErrorKind::WouldBlock
                    || e.kind() == io::ErrorKind::Interrupted => {}
            // The client went away between poll and accept, or a descriptor limit: go on.
            Err(e) => tracing::warn!("accept: {e}"),
        }
    }
    Ok(())
}

fn readable(listener: &TcpListener, wait: Duration) -> io::Result<bool> {
    use rustix::event::{poll, PollFd, PollFlags, Timespec};
    let timeout = Timespec {
        tv_sec: i64::try_from(wait.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(wait.subsec_nanos()),
    };
    let fd = listener.as_fd();
    let mut fds = [PollFd::new(&fd, PollFlags::IN)];
    match poll(&mut fds, Some(&timeout)) {
        Ok(n) => Ok(n > 0),
        Err(rustix::io::Errno::INTR) => Ok(false),
        Err(e) => Err(e.into()),
    }
}

/// Reads one request head and answers it.
fn answer(mut stream: TcpStream, collector: &Collector) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(IO_TIMEOUT))?;
    stream.set_write_timeout(Some(IO_TIMEOUT))?;
    let deadline = Instant::now() + IO_TIMEOUT;
    let mut head = Vec::with_capacity(512);
    let mut buf = [0u8; 1024];
    let complete = loop {
        if head.windows(4).any(|w| w == b"\r\n\r\n") || head.windows(2).any(|w| w == b"\n\n") {
            break true;
        }
        if head.len() >= MAX_REQUEST || Instant::now() > deadline {
            break false;
        }
        let n = stream.read(&mut buf)?;
        if n == 0 {
            break false;
        }
        head.extend_from_slice(&buf[..n]);
    };
    if !complete {
        if head.len() >= MAX_REQUEST {
            return respond(
                &mut stream,
                "431 Request Header Fields Too Large",
                "text/plain",
                b"request too large\n",
                false,
            );
        }
        return Ok(());
    }
    match route(&head) {
        Route::Metrics { head } => match collector.scrape() {
            Ok(text) => respond(&mut stream, "200 OK", CONTENT_TYPE, text.as_bytes(), head),
            Err(e) => respond(
                &mut stream,
                "500 Internal Server Error",
                "text/plain",
                format!("{e}\n").as_bytes(),
                head,
            ),
        },
        Route::NotFound => respond(
            &mut stream,
            "404 Not Found",
            "text/plain",
            b"only /metrics is served here\n",
            false,
        ),
        Route::MethodNotAllowed => respond(
            &mut stream,
            "405 Method Not Allowed",
            "text/plain",
            b"use GET\n",
            false,
        ),
        Route::BadRequest => respond(
            &mut stream,
            "400 Bad Request",
            "text/plain",
            b"bad request\n",
            false,
        ),
    }
}

fn respond(
    stream: &mut TcpStream,
    status: &str,
    content_type: &str,
    body: &[u8],
    head_only: bool,
) -> io::Result<()> {
    let mut out = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body);
    }
    stream.write_all(&out)?;
    stream.flush()?;
    // Closing with unread bytes (a request too large, a body) would reset the
    // connection and could destroy the answer before the client reads it: end our
    // side, then drain a bounded amount for a bounded time.
    stream.shutdown(std::net::Shutdown::Write)?;
    stream.set_read_timeout(Some(DRAIN_TIMEOUT))?;
    let mut buf = [0u8; 4096];
    let mut drained = 0;
    while drained < MAX_DRAIN {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => drained += n,
        }
    }
    Ok(())
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
}
