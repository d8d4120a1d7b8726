//! The bench client: connects, asks the server for a test, moves the data,
//! samples the subflows every interval.

use std::io::{self, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use mptcp_net::{Dialer, MptcpExt, MptcpStatus};

use crate::pattern::Pattern;
use crate::proto::{Request, ServerResult, MESSAGE_LEN};
use crate::report::{retransmits, status, Direction, Interval, Sampler, Summary};

/// How a client run goes.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// The server.
    pub addr: SocketAddr,
    /// How long to send (`None` with `bytes` set: until `bytes`).
    pub duration: Option<Duration>,
    /// How many bytes to send at most.
    pub bytes: Option<u64>,
    /// The server sends, the client receives.
    pub reverse: bool,
    /// Plain TCP instead of MPTCP.
    pub tcp: bool,
    /// Report every `interval`.
    pub interval: Duration,
    /// The receiver checks every byte.
    pub verify: bool,
}

impl ClientOptions {
    /// A 10-second upload to `addr`, reported every second.
    pub fn new(addr: SocketAddr) -> ClientOptions {
        ClientOptions {
            addr,
            duration: Some(Duration::from_secs(10)),
            bytes: None,
            reverse: false,
            tcp: false,
            interval: Duration::from_secs(1),
            verify: false,
        }
    }

    fn request(&self) -> io::Result<Request> {
        let r = Request {
            reverse: self.reverse,
            verify: self.verify,
            duration: self.duration,
            bytes: self.bytes,
        };
        // The server checks the same rules; fail here with a clear message.
        Request::decode(&r.encode())
            .map_err(|e| io::Error::new(ErrorKind::InvalidInput, e.to_string()))
    }
}

/// A connected bench client, ready to run.
pub struct Client {
    stream: TcpStream,
    local: SocketAddr,
    remote: SocketAddr,
    opts: ClientOptions,
    request: Request,
    status_start: MptcpStatus,
}

/// Stops a run early when set (Ctrl-C).
pub type Cancel<'a> = Option<&'a AtomicBool>;

const CHUNK: usize = 128 * 1024;
/// How long a silent peer is waited for.
const IDLE_LIMIT: Duration = Duration::from_secs(30);

impl Client {
    /// Dials the server (MPTCP unless `opts.tcp`), in the calling thread's
    /// network namespace.
    pub fn connect(opts: &ClientOptions) -> io::Result<Client> {
        let request = opts.request()?;
        let mut dialer = Dialer::new();
        dialer
            .set_multipath_tcp(!opts.tcp)
            .set_timeout(Some(Duration::from_secs(10)));
        let stream = dialer.dial(opts.addr)?;
        stream.set_nodelay(true)?;
        let status_start = stream.mptcp_status()?;
        Ok(Client {
            local: stream.local_addr()?,
            remote: stream.peer_addr()?,
            stream,
            opts: opts.clone(),
            request,
            status_start,
        })
    }

    /// The connection's status right after connecting.
    pub fn status(&self) -> MptcpStatus {
        self.status_start
    }

    /// The connected stream (to inspect it while running from elsewhere).
    pub fn stream(&self) -> &TcpStream {
        &self.stream
    }

    /// Runs the test; `on_interval` sees each interval report.
    pub fn run(
        mut self,
        cancel: Cancel<'_>,
        mut on_interval: impl FnMut(&Interval),
    ) -> io::Result<Summary> {
        self.stream.write_all(&self.request.encode())?;
        let direction = if self.opts.reverse {
            Direction::Download
        } else {
            Direction::Upload
        };
        let mut sampler = Sampler::new(&self.stream, direction, self.opts.interval);
        let pattern = Pattern::new();
        let (bytes, seconds, max_gap, verified) = if self.opts.reverse {
            let r = receive(
                &self.stream,
                &pattern,
                self.opts.verify,
                cancel,
                &mut sampler,
                &mut on_interval,
            )?;
            (r.bytes, r.elapsed, r.max_gap, r.verified)
        } else {
            send(
                &self.stream,
                &pattern,
                &self.request,
                cancel,
                &mut sampler,
                &mut on_interval,
            )?;
            let result = read_result(&mut self.stream)?;
            (
                result.bytes,
                result.elapsed,
                result.max_gap,
                result.verified,
            )
        };
        let seconds = seconds.as_secs_f64();
        let status_end = status(&self.stream);
        Ok(Summary {
            direction,
            local: self.local,
            remote: self.remote,
            bytes,
            seconds,
            mbit_per_s: bytes as f64 * 8.0 / seconds.max(1e-9) / 1e6,
            retransmits: retransmits(&self.stream),
            subflows_seen: sampler.seen(),
            status_start: self.status_start,
            status_end,
            mptcp_stayed_on: self.status_start.is_active() && status_end.is_active(),
            verified,
            max_stall_ms: max_gap.as_secs_f64() * 1000.0,
            subflow_bytes: sampler.totals(seconds),
        })
    }
}

fn cancelled(cancel: Cancel<'_>) -> bool {
    cancel.is_some_and(|c| c.load(Ordering::Relaxed))
}

fn interrupted() -> io::Error {
    io::Error::new(ErrorKind::Interrupted, "interrupted")
}

/// Sends the pattern until the request's bound, then half-closes.
pub(crate) fn send(
    mut stream: &TcpStream,
    pattern: &Pattern,
    request: &Request,
    cancel: Cancel<'_>,
    sampler: &mut Sampler,
    on_interval: &mut dyn FnMut(&Interval),
) -> io::Result<u64> {
    stream.set_write_timeout(Some(IDLE_LIMIT))?;
    let start = Instant::now();
    let limit = request.bytes.unwrap_or(u64::MAX);
    let mut sent = 0u64;
    while sent < limit && request.duration.is_none_or(|d| start.elapsed() < d) {
        if cancelled(cancel) {
            return Err(interrupted());
        }
        let room = usize::try_from(limit - sent).unwrap_or(usize::MAX);
        sent += stream.write(pattern.chunk(sent, CHUNK.min(room)))? as u64;
        if let Some(i) = sampler.tick(stream, sent, false)? {
            on_interval(&i);
        }
    }
    if let Some(i) = sampler.tick(stream, sent, true)? {
        on_interval(&i);
    }
    stream.shutdown(Shutdown::Write)?;
    Ok(sent)
}

/// What a receiver saw.
pub(crate) struct Received {
    pub(crate) bytes: u64,
    pub(crate) elapsed: Duration,
    pub(crate) max_gap: Duration,
    pub(crate) verified: Option<bool>,
}

/// Reads to end of stream, checking the data when asked.
pub(crate) fn receive(
    mut stream: &TcpStream,
    pattern: &Pattern,
    verify: bool,
    cancel: Cancel<'_>,
    sampler: &mut Sampler,
    on_interval: &mut dyn FnMut(&Interval),
) -> io::Result<Received> {
    // Short timeouts, so intervals and Ctrl-C are seen during a stall.
    stream.set_read_timeout(Some(Duration::from_millis(100)))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    let mut first: Option<Instant> = None;
    let mut last = Instant::now();
    let mut max_gap = Duration::ZERO;
    let mut intact = true;
    loop {
        if cancelled(cancel) {
            return Err(interrupted());
        }
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                if last.elapsed() > IDLE_LIMIT {
                    return Err(io::Error::new(
                        ErrorKind::TimedOut,
                        format!("no data for {} s", IDLE_LIMIT.as_secs()),
                    ));
                }
                if let Some(i) = sampler.tick(stream, bytes, false)? {
                    on_interval(&i);
                }
                continue;
            }
            Err(e) => return Err(e),
        };
        let now = Instant::now();
        if n == 0 {
            if let Some(i) = sampler.tick(stream, bytes, true)? {
                on_interval(&i);
            }
            return Ok(Received {
                bytes,
                elapsed: first.map_or(Duration::ZERO, |f| now - f),
                max_gap,
                verified: verify.then_some(intact),
            });
        }
        if first.is_some() {
            max_gap = max_gap.max(now - last);
        }
        first.get_or_insert(now);
        last = now;
        if verify && intact && !pattern.matches(bytes, &buf[..n]) {
            tracing::warn!(offset = bytes, "received data does not match what was sent");
            intact = false;
        }
        bytes += n as u64;
        if let Some(i) = sampler.tick(stream, bytes, false)? {
            on_interval(&i);
        }
    }
}

fn read_result(stream: &mut TcpStream) -> io::Result<ServerResult> {
    stream.set_read_timeout(Some(IDLE_LIMIT))?;
    let mut msg = [0u8; MESSAGE_LEN];
    stream.read_exact(&mut msg).map_err(|e| {
        if e.kind() == ErrorKind::UnexpectedEof {
            io::Error::new(
                ErrorKind::UnexpectedEof,
                "the server closed without a result: is it an mptcp bench server?",
            )
        } else {
            e
        }
    })?;
    Ok(ServerResult::decode(&msg)?)
}
