//! The bench server: one listener for MPTCP and plain TCP clients at once,
//! one thread per test.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use mptcp_net::{ListenConfig, MptcpExt, MptcpStatus};
use serde::Serialize;

use crate::client::{receive, send};
use crate::pattern::Pattern;
use crate::proto::{Request, ServerResult, MESSAGE_LEN};
use crate::report::{Direction, Sampler};

/// The default bench port (iperf3's).
pub const DEFAULT_PORT: u16 = 5201;

/// A listening bench server.
pub struct Server {
    listener: TcpListener,
}

/// What the server saw of one test.
#[derive(Clone, Debug, Serialize)]
pub struct ConnReport {
    /// The client.
    pub peer: SocketAddr,
    /// The accepted stream's status: `active` for MPTCP clients,
    /// `plain_tcp` for TCP clients and for clients whose MPTCP option was
    /// stripped on the way.
    pub status: MptcpStatus,
    /// Which way the data went.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub direction: Option<Direction>,
    /// Bytes moved.
    pub bytes: u64,
    /// Seconds from the first byte to the end.
    pub seconds: f64,
    /// Throughput seen by the server.
    pub mbit_per_s: f64,
    /// Data checked and intact (`None`: not checked).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// The error that ended the test, if one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Server {
    /// Listens on `addr` with MPTCP (accepting TCP clients too), or with
    /// plain TCP only when `tcp_only`. Listen on the wildcard address on
    /// multipath hosts: joins to the host's other addresses need it.
    pub fn bind<A: ToSocketAddrs>(addr: A, tcp_only: bool) -> io::Result<Server> {
        let mut config = ListenConfig::new();
        config.set_multipath_tcp(!tcp_only);
        Ok(Server {
            listener: config.listen(addr)?,
        })
    }

    /// The listening address.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.listener.local_addr()
    }

    /// The listener's status (`active` for an MPTCP listener).
    pub fn status(&self) -> io::Result<MptcpStatus> {
        self.listener.mptcp_status()
    }

    /// Serves tests, one thread each, until `max_tests` have been accepted
    /// (`None`: until `stop` is set; it is checked every 20 ms between
    /// connections). `on_report` sees each finished test.
    pub fn serve(
        &self,
        max_tests: Option<usize>,
        stop: Option<&AtomicBool>,
        on_report: &(dyn Fn(ConnReport) + Sync),
    ) -> io::Result<()> {
        self.listener.set_nonblocking(true)?;
        std::thread::scope(|scope| {
            let mut accepted = 0usize;
            while max_tests.is_none_or(|m| accepted < m) {
                if stop.is_some_and(|s| s.load(Ordering::Relaxed)) {
                    break;
                }
                match self.listener.accept() {
                    Ok((stream, peer)) => {
                        accepted += 1;
                        scope.spawn(move || on_report(handle(stream, peer)));
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    Err(e) => return Err(e),
                }
            }
            Ok(())
        })
    }
}

/// Runs one test on an accepted stream; never panics on a bad client.
pub fn handle(stream: TcpStream, peer: SocketAddr) -> ConnReport {
    let status = stream.mptcp_status().unwrap_or(MptcpStatus::PlainTcp);
    let mut report = ConnReport {
        peer,
        status,
        direction: None,
        bytes: 0,
        seconds: 0.0,
        mbit_per_s: 0.0,
        verified: None,
        error: None,
    };
    if let Err(e) = run_test(stream, &mut report) {
        report.error = Some(e.to_string());
    }
    report
}

fn run_test(mut stream: TcpStream, report: &mut ConnReport) -> io::Result<()> {
    stream.set_nonblocking(false)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut msg = [0u8; MESSAGE_LEN];
    stream.read_exact(&mut msg).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => io::Error::new(
            e.kind(),
            "the client closed before sending a whole request: not an mptcp bench client",
        ),
        _ => e,
    })?;
    let request = Request::decode(&msg)?;
    let pattern = Pattern::new();
    let mut ignore = |_: &crate::report::Interval| {};
    if request.reverse {
        report.direction = Some(Direction::Download);
        let mut sampler = Sampler::new(&stream, Direction::Upload, Duration::from_secs(3600));
        let start = std::time::Instant::now();
        let sent = send(&stream, &pattern, &request, None, &mut sampler, &mut ignore)?;
        report.bytes = sent;
        report.seconds = start.elapsed().as_secs_f64();
    } else {
        report.direction = Some(Direction::Upload);
        let mut sampler = Sampler::new(&stream, Direction::Download, Duration::from_secs(3600));
        let r = receive(
            &stream,
            &pattern,
            request.verify,
            None,
            &mut sampler,
            &mut ignore,
        )?;
        report.bytes = r.bytes;
        report.seconds = r.elapsed.as_secs_f64();
        report.verified = r.verified;
        let result = ServerResult {
            bytes: r.bytes,
            elapsed: r.elapsed,
            max_gap: r.max_gap,
            verified: r.verified,
        };
        stream.set_nonblocking(false)?;
        stream.write_all(&result.encode())?;
    }
    report.mbit_per_s = report.bytes as f64 * 8.0 / report.seconds.max(1e-9) / 1e6;
    Ok(())
}
