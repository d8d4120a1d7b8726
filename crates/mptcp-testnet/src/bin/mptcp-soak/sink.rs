//! The far ends: a sink in the server host (behind the server proxy) and one in the
//! origin host (behind the converter) that check every byte against the pattern and
//! answer request/response rounds; a trap on the origin that must never be reached.
//!
//! The protocol, client first: `kind` (1 byte), `stream` (8), `arg` (8, big endian).
//! - `T` (transfer): `arg` bytes of pattern `stream` follow; the sink answers one byte
//!   (1: every byte matched, 0: not) and the count it received (8).
//! - `R` (rounds): `arg` rounds of `req` (4), `resp` (4), `req` bytes of pattern
//!   `stream ^ round`; the sink checks them and answers `resp` bytes of pattern
//!   `!(stream ^ round)` (a mismatch closes the connection).

use std::collections::BTreeMap;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mptcp_testnet::soak::{locate, pattern_at};

use crate::net::{self, SoakNet};

/// Liveness bound of every read and write (not a performance target).
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// When the sink last received bytes of each transfer stream (by stream), so that a
/// client waiting for its answer can tell bytes that stopped arriving (a stall) from
/// bytes still arriving slowly.
static ARRIVALS: Mutex<BTreeMap<u64, Instant>> = Mutex::new(BTreeMap::new());

/// When the sink last received bytes of transfer `stream`.
pub fn last_arrival(stream: u64) -> Option<Instant> {
    ARRIVALS.lock().ok()?.get(&stream).copied()
}

/// Forgets `stream` (its op is over).
pub fn forget_arrivals(stream: u64) {
    if let Ok(mut a) = ARRIVALS.lock() {
        a.remove(&stream);
    }
}
const CHUNK: usize = 64 * 1024;

#[derive(Debug, Default)]
pub struct SinkStats {
    /// Payload bytes received and checked.
    pub verified: AtomicU64,
    /// Connections whose bytes differed from the pattern.
    pub corrupt: AtomicU64,
    /// Connections that closed before a header (a stripped join accepted as TCP).
    pub empty: AtomicU64,
    /// The transfer streams seen, to tell where corrupted bytes came from.
    pub streams: Mutex<Vec<u64>>,
    pub connections: AtomicU64,
}

pub struct Sinks {
    pub stats: Arc<SinkStats>,
    trap: Arc<AtomicU64>,
}

fn listen(ns: &mptcp_testnet::Netns, addr: SocketAddr) -> Result<TcpListener, String> {
    ns.run(|| TcpListener::bind(addr))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("bind {addr} in {}: {e}", ns.name()))
}

impl Sinks {
    pub fn start(net: &SoakNet) -> Result<Sinks, String> {
        let stats = Arc::new(SinkStats::default());
        for (ns, addr) in [
            (
                net.tn.server().netns(),
                SocketAddr::from(([127, 0, 0, 1], net::SINK)),
            ),
            (&net.origin, net.sink_origin()),
        ] {
            let listener = listen(ns, addr)?;
            let stats = Arc::clone(&stats);
            std::thread::spawn(move || {
                for conn in listener.incoming() {
                    let Ok(conn) = conn else { continue };
                    let stats = Arc::clone(&stats);
                    std::thread::spawn(move || serve(conn, &stats));
                }
            });
        }
        let trap = Arc::new(AtomicU64::new(0));
        let listener = listen(&net.origin, SocketAddr::from((net::ORIGIN, net::TRAP)))?;
        let t = Arc::clone(&trap);
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if conn.is_ok() {
                    t.fetch_add(1, Ordering::SeqCst);
                }
            }
        });
        Ok(Sinks { stats, trap })
    }

    pub fn trap_accepts(&self) -> u64 {
        self.trap.load(Ordering::SeqCst)
    }
}

/// Reads exactly `buf.len()` bytes; `Ok(false)` on EOF before the first byte.
fn read_full(conn: &mut TcpStream, buf: &mut [u8]) -> io::Result<bool> {
    let mut got = 0;
    while got < buf.len() {
        let n = conn.read(&mut buf[got..])?;
        if n == 0 {
            if got == 0 {
                return Ok(false);
            }
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        got += n;
    }
    Ok(true)
}

/// Where received bytes differed from the pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch {
    /// The offset of the first byte that differed.
    pub first: u64,
    /// The offset just past the last one.
    pub end: u64,
    /// How many bytes differed.
    pub bytes: u64,
    /// Up to 64 bytes received from `first` on (those of the same read).
    pub sample: Vec<u8>,
}

/// Reads `len` bytes and compares them with pattern `stream`; calls `progress` per
/// chunk. `Ok(None)`: all matched.
pub fn read_verify(
    conn: &mut TcpStream,
    stream: u64,
    len: u64,
    mut progress: impl FnMut(usize),
) -> io::Result<Option<Mismatch>> {
    let mut buf = vec![0u8; CHUNK];
    let mut want = vec![0u8; CHUNK];
    let mut off = 0u64;
    let mut bad: Option<Mismatch> = None;
    while off < len {
        let n = (len - off).min(CHUNK as u64) as usize;
        let got = conn.read(&mut buf[..n])?;
        if got == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        pattern_at(stream, off, &mut want[..got]);
        if buf[..got] != want[..got] {
            for (i, _) in buf[..got]
                .iter()
                .zip(&want[..got])
                .enumerate()
                .filter(|(_, (a, b))| a != b)
            {
                let at = off + i as u64;
                let m = bad.get_or_insert_with(|| Mismatch {
                    first: at,
                    end: at,
                    bytes: 0,
                    sample: buf[i..got.min(i + 64)].to_vec(),
                });
                m.end = at + 1;
                m.bytes += 1;
            }
        }
        off += got as u64;
        progress(got);
    }
    Ok(bad)
}

/// A socket timeout (`SO_RCVTIMEO`/`SO_SNDTIMEO` expired): `EAGAIN`, or
/// `ETIMEDOUT` as some kernels say it.
pub fn timed_out(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

/// Writes `len` bytes of pattern `stream`; calls `progress` per chunk.
pub fn write_pattern(
    conn: &mut TcpStream,
    stream: u64,
    len: u64,
    progress: impl FnMut(usize),
) -> io::Result<()> {
    write_pattern_waiting(conn, stream, len, progress, Err)
}

/// [`write_pattern`] that lives through write timeouts: when a write times out
/// (`SO_SNDTIMEO`) with nothing written, `waited` is given the error and decides
/// (`Ok`: write on, `Err`: give up); bytes a write took before it timed out are
/// counted, never written twice.
pub fn write_pattern_waiting(
    conn: &mut TcpStream,
    stream: u64,
    len: u64,
    mut progress: impl FnMut(usize),
    mut waited: impl FnMut(io::Error) -> io::Result<()>,
) -> io::Result<()> {
    let mut buf = vec![0u8; CHUNK];
    let mut off = 0u64;
    while off < len {
        let n = (len - off).min(CHUNK as u64) as usize;
        pattern_at(stream, off, &mut buf[..n]);
        let mut done = 0;
        while done < n {
            match conn.write(&buf[done..n]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(k) => {
                    done += k;
                    progress(k);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if timed_out(&e) => waited(e)?,
                Err(e) => return Err(e),
            }
        }
        off += n as u64;
    }
    Ok(())
}

fn serve(mut conn: TcpStream, stats: &SinkStats) {
    stats.connections.fetch_add(1, Ordering::Relaxed);
    let _ = conn.set_read_timeout(Some(IO_TIMEOUT));
    let _ = conn.set_write_timeout(Some(IO_TIMEOUT));
    let mut head = [0u8; 17];
    match read_full(&mut conn, &mut head) {
        Ok(true) => {}
        Ok(false) => {
            stats.empty.fetch_add(1, Ordering::Relaxed);
            return;
        }
        Err(_) => return,
    }
    let stream = u64::from_be_bytes(head[1..9].try_into().expect("8 bytes"));
    let arg = u64::from_be_bytes(head[9..17].try_into().expect("8 bytes"));
    if head[0] == b'T' {
        if let Ok(mut s) = stats.streams.lock() {
            s.push(stream);
        }
    }
    let verified = &stats.verified;
    match head[0] {
        b'T' => {
            let mut count = 0u64;
            let ok = read_verify(&mut conn, stream, arg, |n| {
                count += n as u64;
                verified.fetch_add(n as u64, Ordering::Relaxed);
                if let Ok(mut a) = ARRIVALS.lock() {
                    a.insert(stream, Instant::now());
                }
            });
            let Ok(bad) = ok else { return };
            if let Some(m) = &bad {
                stats.corrupt.fetch_add(1, Ordering::Relaxed);
                // The shape of the damage, for the post-mortem: one region or all
                // (a header taken from elsewhere), where.
                let streams = stats.streams.lock().map(|s| s.clone()).unwrap_or_default();
                let from = match locate(&m.sample, &streams, 1 << 40) {
                    Some((s, at)) if s == stream => format!("this stream's bytes at {at}"),
                    Some((s, at)) => format!("bytes of ANOTHER stream {s:#018x} at {at}"),
                    None => format!(
                        "bytes of no stream seen: {:02x?}",
                        &m.sample[..m.sample.len().min(16)]
                    ),
                };
                eprintln!(
                    "mptcp-soak: sink: CORRUPTED transfer from {}: stream {stream:#018x}, \
                     {arg} bytes, {} differ in {}..{}; at {} it holds {from}",
                    conn.peer_addr().map(|a| a.to_string()).unwrap_or_default(),
                    m.bytes,
                    m.first,
                    m.end,
                    m.first
                );
            }
            let ok = bad.is_none();
            let mut answer = [0u8; 9];
            answer[0] = u8::from(ok);
            answer[1..].copy_from_slice(&count.to_be_bytes());
            let _ = conn.write_all(&answer);
        }
        b'R' => {
            for round in 0..arg {
                let mut sizes = [0u8; 8];
                if !matches!(read_full(&mut conn, &mut sizes), Ok(true)) {
                    return;
                }
                let req = u64::from(u32::from_be_bytes(sizes[..4].try_into().expect("4")));
                let resp = u64::from(u32::from_be_bytes(sizes[4..].try_into().expect("4")));
                let ok = read_verify(&mut conn, stream ^ round, req, |n| {
                    verified.fetch_add(n as u64, Ordering::Relaxed);
                });
                match ok {
                    Ok(None) => {}
                    Ok(Some(m)) => {
                        stats.corrupt.fetch_add(1, Ordering::Relaxed);
                        eprintln!(
                            "mptcp-soak: sink: CORRUPTED request {round} of stream \
                             {stream:#018x}: {req} bytes, {} differ in {}..{}",
                            m.bytes, m.first, m.end
                        );
                        return;
                    }
                    Err(_) => return,
                }
                if write_pattern(&mut conn, !(stream ^ round), resp, |_| {}).is_err() {
                    return;
                }
            }
        }
        _ => {
            stats.corrupt.fetch_add(1, Ordering::Relaxed);
            eprintln!(
                "mptcp-soak: sink: CORRUPTED header from {}: {:02x?}",
                conn.peer_addr().map(|a| a.to_string()).unwrap_or_default(),
                head
            );
        }
    }
}
