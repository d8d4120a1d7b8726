//! What a bench run reports: interval samples and a summary, serialisable
//! (the `mptcp` command prints them as text or JSON).

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mptcp_net::{MptcpExt, MptcpStatus};
use serde::Serialize;

/// Which way the data goes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// Client to server.
    Upload,
    /// Server to client (`--reverse`).
    Download,
}

/// One subflow during one interval.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SubflowSample {
    /// The kernel's subflow id (`None` for a plain TCP connection).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub id: Option<u32>,
    /// Local address of the subflow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local: Option<SocketAddr>,
    /// Remote address of the subflow.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remote: Option<SocketAddr>,
    /// Bytes this subflow carried in the interval (acked when sending,
    /// received when receiving).
    pub bytes: u64,
    /// `bytes` as a rate.
    pub mbit_per_s: f64,
    /// Smoothed RTT, in milliseconds.
    pub rtt_ms: f64,
}

/// One interval of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Interval {
    /// Start of the interval, seconds since the run began.
    pub start_s: f64,
    /// End of the interval.
    pub end_s: f64,
    /// Application bytes moved in the interval.
    pub bytes: u64,
    /// `bytes` as a rate.
    pub mbit_per_s: f64,
    /// Per subflow.
    pub subflows: Vec<SubflowSample>,
}

/// The outcome of a run.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    /// Which way the data went.
    pub direction: Direction,
    /// Local address of the connection.
    pub local: SocketAddr,
    /// Remote address of the connection.
    pub remote: SocketAddr,
    /// Bytes the receiver got (verified, when asked).
    pub bytes: u64,
    /// From the receiver's first byte to end of stream.
    pub seconds: f64,
    /// `bytes` over `seconds`.
    pub mbit_per_s: f64,
    /// Retransmitted segments, summed over the subflows seen at the end.
    pub retransmits: u64,
    /// Distinct subflows seen during the run.
    pub subflows_seen: usize,
    /// Status right after connecting.
    pub status_start: MptcpStatus,
    /// Status at the end.
    pub status_end: MptcpStatus,
    /// Active at the start and still active at the end.
    pub mptcp_stayed_on: bool,
    /// `Some(true)` every byte checked, `Some(false)` corruption found,
    /// `None` not checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified: Option<bool>,
    /// The longest wait between two reads at the receiver, in milliseconds.
    pub max_stall_ms: f64,
    /// Bytes per subflow over the whole run (from the kernel counters).
    pub subflow_bytes: Vec<SubflowSample>,
}

/// Samples a connection's subflows at a fixed interval.
pub(crate) struct Sampler {
    direction: Direction,
    interval: Duration,
    start: Instant,
    last_at: Instant,
    last_bytes: u64,
    /// Counter per subflow at the previous sample, and at the first sight.
    last: BTreeMap<Key, u64>,
    first: BTreeMap<Key, (u64, Option<u32>)>,
    latest: BTreeMap<Key, u64>,
    /// Subflows first seen after the start began at zero.
    started: bool,
}

type Key = (Option<SocketAddr>, Option<SocketAddr>);

impl Sampler {
    pub(crate) fn new(stream: &TcpStream, direction: Direction, interval: Duration) -> Sampler {
        let now = Instant::now();
        let mut s = Sampler {
            direction,
            interval,
            start: now,
            last_at: now,
            last_bytes: 0,
            last: BTreeMap::new(),
            first: BTreeMap::new(),
            latest: BTreeMap::new(),
            started: false,
        };
        // Counters before the run (the request, a handshake) are not data.
        let _ = s.sample_subflows(stream);
        s.last = s.latest.clone();
        s.started = true;
        s
    }

    fn counter(&self, tcp: &mptcp_net::TcpStats) -> u64 {
        match self.direction {
            Direction::Upload => tcp.bytes_acked.unwrap_or(0),
            Direction::Download => tcp.bytes_received.unwrap_or(0),
        }
    }

    fn sample_subflows(&mut self, stream: &TcpStream) -> std::io::Result<Vec<SubflowSample>> {
        let secs = self.last_at.elapsed().as_secs_f64().max(1e-9);
        let mut out = Vec::new();
        for sf in stream.subflows()? {
            let key = (sf.local, sf.remote);
            let now = self.counter(&sf.tcp);
            let baseline = if self.started { 0 } else { now };
            self.first.entry(key).or_insert((baseline, sf.id));
            self.latest.insert(key, now);
            let before = self.last.get(&key).copied().unwrap_or(0);
            let bytes = now.saturating_sub(before);
            out.push(SubflowSample {
                id: sf.id,
                local: sf.local,
                remote: sf.remote,
                bytes,
                mbit_per_s: bytes as f64 * 8.0 / secs / 1e6,
                rtt_ms: sf.tcp.rtt.as_secs_f64() * 1000.0,
            });
        }
        Ok(out)
    }

    /// An interval report if one is due.
    pub(crate) fn tick(
        &mut self,
        stream: &TcpStream,
        app_bytes: u64,
        force: bool,
    ) -> std::io::Result<Option<Interval>> {
        let now = Instant::now();
        let since = now - self.last_at;
        // A forced final report right after a regular one says nothing.
        if since < self.interval
            && (!force || (app_bytes == self.last_bytes && since < self.interval / 4))
        {
            return Ok(None);
        }
        let subflows = self.sample_subflows(stream)?;
        let secs = (now - self.last_at).as_secs_f64().max(1e-9);
        let bytes = app_bytes - self.last_bytes;
        let interval = Interval {
            start_s: (self.last_at - self.start).as_secs_f64(),
            end_s: (now - self.start).as_secs_f64(),
            bytes,
            mbit_per_s: bytes as f64 * 8.0 / secs / 1e6,
            subflows,
        };
        self.last = self.latest.clone();
        self.last_at = now;
        self.last_bytes = app_bytes;
        Ok(Some(interval))
    }

    /// Distinct subflows seen.
    pub(crate) fn seen(&self) -> usize {
        self.first.len()
    }

    /// Bytes per subflow over the run.
    pub(crate) fn totals(&self, seconds: f64) -> Vec<SubflowSample> {
        self.first
            .iter()
            .map(|(key, (first, id))| {
                let bytes = self
                    .latest
                    .get(key)
                    .copied()
                    .unwrap_or(*first)
                    .saturating_sub(*first);
                SubflowSample {
                    id: *id,
                    local: key.0,
                    remote: key.1,
                    bytes,
                    mbit_per_s: bytes as f64 * 8.0 / seconds.max(1e-9) / 1e6,
                    rtt_ms: 0.0,
                }
            })
            .collect()
    }
}

/// Retransmitted segments over a connection's current subflows.
pub(crate) fn retransmits(stream: &TcpStream) -> u64 {
    stream
        .subflows()
        .map(|sfs| sfs.iter().map(|s| u64::from(s.tcp.total_retrans)).sum())
        .unwrap_or(0)
}

/// Status, or plain TCP if the socket cannot say (closed).
pub(crate) fn status(stream: &TcpStream) -> MptcpStatus {
    stream.mptcp_status().unwrap_or(MptcpStatus::PlainTcp)
}
