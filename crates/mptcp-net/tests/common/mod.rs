//! Helpers shared by the integration tests.
#![allow(dead_code)]

use std::io::{self, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::thread::{self, JoinHandle};
use std::time::Duration;

use mptcp_net::{MptcpExt, MptcpStatus};
#[allow(unused_imports)] // each test binary uses some of them
pub use mptcp_testnet::support::{assert_same, echo_stream, pattern, round_trip};

/// Accepts one connection, echoes it until EOF, and returns the accepted
/// stream's status.
pub fn echo_server(listener: TcpListener) -> JoinHandle<io::Result<MptcpStatus>> {
    thread::spawn(move || {
        let (mut stream, _) = listener.accept()?;
        let status = stream.mptcp_status()?;
        echo_stream(&mut stream)?;
        Ok(status)
    })
}

/// The bytes every bulk transfer sends: a pseudo-random block whose length
/// is a prime, sent cyclically, so a lost, duplicated or reordered chunk
/// shows up as a mismatch at the receiver.
pub struct Block(Vec<u8>);

pub const BLOCK_LEN: usize = 1_000_003;

impl Block {
    pub fn new() -> Block {
        Block(pattern(BLOCK_LEN))
    }
}

impl Default for Block {
    fn default() -> Self {
        Block::new()
    }
}

/// Sends the block cyclically for `duration` (or `limit` bytes, whichever
/// comes first), then half-closes. Returns the bytes sent.
pub fn send_for(
    mut stream: &TcpStream,
    block: &Block,
    duration: Duration,
    limit: u64,
) -> io::Result<u64> {
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let start = std::time::Instant::now();
    let mut sent = 0u64;
    while start.elapsed() < duration && sent < limit {
        let off = (sent % BLOCK_LEN as u64) as usize;
        let end = (off + 64 * 1024).min(BLOCK_LEN);
        let room = usize::try_from(limit - sent).unwrap_or(usize::MAX);
        let chunk = &block.0[off..end.min(off + room)];
        sent += stream.write(chunk)? as u64;
    }
    stream.shutdown(Shutdown::Write)?;
    Ok(sent)
}

/// What a receiver saw.
#[derive(Debug, Clone, Copy)]
pub struct Received {
    pub bytes: u64,
    /// From the first byte to EOF.
    pub elapsed: Duration,
    /// The longest wait between two reads that returned data.
    pub max_gap: Duration,
    /// When the longest wait ended, from the first byte.
    pub max_gap_at: Duration,
}

impl Received {
    pub fn mbit_per_s(&self) -> f64 {
        self.bytes as f64 * 8.0 / self.elapsed.as_secs_f64().max(1e-9) / 1e6
    }
}

/// Reads to EOF, checking every byte against the block.
pub fn receive_verified(mut stream: &TcpStream, block: &Block) -> io::Result<Received> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut buf = vec![0u8; 256 * 1024];
    let mut bytes = 0u64;
    let mut first = None;
    let mut last = std::time::Instant::now();
    let mut max_gap = Duration::ZERO;
    let mut max_gap_at = Duration::ZERO;
    loop {
        let n = stream.read(&mut buf)?;
        let now = std::time::Instant::now();
        if n == 0 {
            let first = first.unwrap_or(now);
            return Ok(Received {
                bytes,
                elapsed: now - first,
                max_gap,
                max_gap_at,
            });
        }
        let first_at = *first.get_or_insert(now);
        if now - last > max_gap && bytes > 0 {
            max_gap = now - last;
            max_gap_at = now - first_at;
        }
        last = now;
        let mut got = &buf[..n];
        while !got.is_empty() {
            let off = (bytes % BLOCK_LEN as u64) as usize;
            let take = got.len().min(BLOCK_LEN - off);
            if got[..take] != block.0[off..off + take] {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("data corrupted near byte {bytes}"),
                ));
            }
            bytes += take as u64;
            got = &got[take..];
        }
    }
}

/// Writes `n` bytes of the cyclic block, starting at stream offset `from`.
pub fn send_range(mut stream: &TcpStream, block: &Block, from: u64, n: u64) -> io::Result<()> {
    stream.set_write_timeout(Some(Duration::from_secs(60)))?;
    let mut at = from;
    while at < from + n {
        let off = (at % BLOCK_LEN as u64) as usize;
        let room = usize::try_from(from + n - at).unwrap_or(usize::MAX);
        let end = (off + 64 * 1024).min(BLOCK_LEN).min(off + room);
        stream.write_all(&block.0[off..end])?;
        at += (end - off) as u64;
    }
    Ok(())
}

/// Reads exactly `n` bytes, checking them against the block from stream
/// offset `from`.
pub fn receive_range(
    mut stream: &TcpStream,
    block: &Block,
    from: u64,
    n: u64,
) -> io::Result<Received> {
    stream.set_read_timeout(Some(Duration::from_secs(60)))?;
    let mut buf = vec![0u8; 256 * 1024];
    let start = std::time::Instant::now();
    let mut last = start;
    let (mut max_gap, mut max_gap_at) = (Duration::ZERO, Duration::ZERO);
    let mut at = from;
    while at < from + n {
        let want = usize::try_from(from + n - at)
            .unwrap_or(usize::MAX)
            .min(buf.len());
        let got = stream.read(&mut buf[..want])?;
        if got == 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("EOF after {} of {n} bytes", at - from),
            ));
        }
        let now = std::time::Instant::now();
        if now - last > max_gap {
            max_gap = now - last;
            max_gap_at = now - start;
        }
        last = now;
        let mut chunk = &buf[..got];
        while !chunk.is_empty() {
            let off = (at % BLOCK_LEN as u64) as usize;
            let take = chunk.len().min(BLOCK_LEN - off);
            if chunk[..take] != block.0[off..off + take] {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("data corrupted near byte {at}"),
                ));
            }
            at += take as u64;
            chunk = &chunk[take..];
        }
    }
    Ok(Received {
        bytes: n,
        elapsed: start.elapsed(),
        max_gap,
        max_gap_at,
    })
}
