//! The relay of one connected pair, its watchdog, and the counting guard.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::{Duration, Instant};

use mptcp_metrics::prometheus::IntGauge;
use mptcp_net::{MptcpExt, MptcpStatus};
use tokio::net::TcpStream;
use tokio::sync::watch;

use super::{forced, Phase, RecordCore};
use crate::metrics::RouteMetrics;
use crate::relay::{self, Activity, Direction, RelayError, Side, Way};
use crate::sys;

/// How a pair is relayed.
#[derive(Clone, Copy, Debug)]
pub(crate) struct RelaySettings {
    /// Close the pair after this long without a byte either way.
    pub(crate) idle_timeout: Option<Duration>,
    /// The copy buffer of each direction.
    pub(crate) copy_buffer: usize,
    /// The copy buffer of a direction once it is a bulk transfer.
    pub(crate) bulk_buffer: usize,
    /// Splice bulk transfers between plain TCP sockets instead of copying them.
    pub(crate) try_splice: bool,
    /// `TCP_NOTSENT_LOWAT` of both sockets of a pair (`None`: left alone).
    pub(crate) notsent_lowat: Option<u32>,
}

/// How the relay of a pair ended.
#[derive(Debug)]
pub(crate) enum RelayEnd {
    /// Both directions reached end of stream.
    Done,
    /// An error on one side; both sides were reset.
    Failed(RelayError),
    /// No byte either way for the idle timeout; both closed cleanly.
    Idle,
    /// The drain deadline passed; both sides were reset.
    Forced,
}

/// One side of a connection counted in `mptcp_proxy_connections` (total and
/// active, by MPTCP status); the active gauge goes down on drop, so every path
/// out of a session leaves the active counts right.
pub(crate) struct Counted(IntGauge);

impl Counted {
    pub(crate) fn new(metrics: &RouteMetrics, side: Side, status: Option<MptcpStatus>) -> Counted {
        let i = match side {
            Side::Client => 0,
            Side::Upstream => 1,
        };
        Counted(metrics.connection(i, status))
    }
}

impl Drop for Counted {
    fn drop(&mut self) {
        self.0.dec();
    }
}

/// The number of subflows of `s` now: 1 + the extra ones for MPTCP, 1 otherwise
/// (without a system call when the status says it is not MPTCP).
fn subflows(s: &TcpStream, status: Option<MptcpStatus>) -> Option<u32> {
    if status.is_some_and(|st| !st.is_active()) {
        return Some(1);
    }
    match s.mptcp_info() {
        Ok(Some(info)) => Some(u32::from(info.subflows) + 1),
        Ok(None) => Some(1),
        Err(_) => None,
    }
}

fn max_opt(a: Option<u32>, b: Option<u32>) -> Option<u32> {
    match (a, b) {
        (Some(x), Some(y)) => Some(x.max(y)),
        (x, None) => x,
        (None, y) => y,
    }
}

/// The most subflows seen on each side while the pair is relayed (0: none
/// seen yet), written by the watchdog and by the first direction to end.
struct SubflowsSeen<'a> {
    client: &'a TcpStream,
    upstream: &'a TcpStream,
    /// The directions writing to the upstream and to the client: the one that
    /// held back its end of stream read its destination's subflows already.
    to_upstream: &'a Direction,
    to_client: &'a Direction,
    client_status: Option<MptcpStatus>,
    upstream_status: Option<MptcpStatus>,
    client_max: AtomicU32,
    upstream_max: AtomicU32,
    sampled: AtomicBool,
}

impl SubflowsSeen<'_> {
    /// Samples both sides now.
    fn sample(&self) {
        self.sample_or_take(false);
    }

    /// Samples both sides now; with `take_looked`, a side whose subflows the
    /// end-of-stream hold has just read is not asked again.
    fn sample_or_take(&self, take_looked: bool) {
        self.sampled.store(true, Ordering::Relaxed);
        let looked = |d: &Direction| d.dst_subflows_seen().filter(|_| take_looked);
        let client = looked(self.to_client).or_else(|| subflows(self.client, self.client_status));
        if let Some(n) = client {
            self.client_max.fetch_max(n, Ordering::Relaxed);
        }
        let upstream =
            looked(self.to_upstream).or_else(|| subflows(self.upstream, self.upstream_status));
        if let Some(n) = upstream {
            self.upstream_max.fetch_max(n, Ordering::Relaxed);
        }
    }

    /// The first direction reached its end of stream: samples once, while the
    /// other direction still runs. (At the end of both, a peer that closed may
    /// already have taken its subflows down: a short transfer would show one.)
    fn first_end(&self, ended_first: &AtomicBool) {
        if !ended_first.swap(true, Ordering::Relaxed) {
            self.sample_or_take(true);
        }
    }

    /// Adds what was seen to the record; samples first if nothing was (an
    /// error, the idle timeout or a forced stop ended the pair).
    fn into_record(self, record: &mut RecordCore) {
        if !self.sampled.load(Ordering::Relaxed) {
            self.sample();
        }
        let seen = |n: u32| (n > 0).then_some(n);
        record.client_subflows = max_opt(
            record.client_subflows,
            seen(self.client_max.load(Ordering::Relaxed)),
        );
        record.upstream_subflows = max_opt(
            record.upstream_subflows,
            seen(self.upstream_max.load(Ordering::Relaxed)),
        );
    }
}

/// Relays between two connected sockets until both directions end, an error, the
/// idle timeout or a forced stop; adds the bytes to the record and sets its relay
/// mode and subflow counts. A failure or a forced stop resets both sockets on
/// close (`SO_LINGER` 0), so neither peer takes a cut transfer for a whole one.
pub(crate) async fn relay_pair(
    client: &TcpStream,
    upstream: &TcpStream,
    settings: RelaySettings,
    metrics: &RouteMetrics,
    record: &mut RecordCore,
    phase: &mut watch::Receiver<Phase>,
) -> RelayEnd {
    let up = Direction::default();
    let down = Direction::default();
    let activity = Activity::new();
    // Splice only between two plain TCP sockets. Bytes spliced into an MPTCP socket
    // were seen out of place on Linux 6.18 when a subflow failed mid-transfer (80
    // bytes of a 12 MB echo moved by 64 KiB, about 1 run in 10 of
    // crates/mptcp-proxy/tests/chain.rs's path-cut test), and splice *from* an MPTCP
    // socket (even one fallen back to TCP) once ended a 1 MiB reply early: it
    // returned 0 at byte 407093 while the server had sent the rest (the gateway's
    // TPROXY test in CI). Copying never showed either; on MPTCP legs it is as fast.
    let mptcp = |status: Option<MptcpStatus>| {
        matches!(status, Some(MptcpStatus::Active | MptcpStatus::FellBack))
    };
    let splice =
        settings.try_splice && !mptcp(record.client_mptcp) && !mptcp(record.upstream_mptcp);
    let way = |src, dst, src_side, dst_side, stats, other, counter| Way {
        dst_mptcp: if dst_side == Side::Client {
            record.client_mptcp
        } else {
            record.upstream_mptcp
        }
        .is_some_and(|st| st.is_active()),
        src,
        dst,
        src_side,
        dst_side,
        stats,
        other,
        counter,
        activity: &activity,
        copy_buffer: settings.copy_buffer,
        bulk_buffer: settings.bulk_buffer,
        try_splice: splice,
    };
    let a = way(
        client,
        upstream,
        Side::Client,
        Side::Upstream,
        &up,
        &down,
        &metrics.to_upstream,
    );
    let b = way(
        upstream,
        client,
        Side::Upstream,
        Side::Client,
        &down,
        &up,
        &metrics.to_client,
    );
    let seen = SubflowsSeen {
        client,
        upstream,
        to_upstream: &up,
        to_client: &down,
        client_status: record.client_mptcp,
        upstream_status: record.upstream_mptcp,
        client_max: AtomicU32::new(0),
        upstream_max: AtomicU32::new(0),
        sampled: AtomicBool::new(false),
    };
    let ended_first = AtomicBool::new(false);
    let end = {
        let both = async {
            tokio::try_join!(
                run_way(a, &seen, &ended_first),
                run_way(b, &seen, &ended_first)
            )
        };
        let acked_now = || {
            (
                acked(client, record.client_mptcp),
                acked(upstream, record.upstream_mptcp),
            )
        };
        let watch = watchdog(&activity, settings.idle_timeout, &seen, acked_now);
        tokio::select! {
            r = both => match r {
                Ok(_) => RelayEnd::Done,
                Err(e) => RelayEnd::Failed(e),
            },
            () = watch => RelayEnd::Idle,
            () = forced(phase) => RelayEnd::Forced,
        }
    };
    seen.into_record(record);
    record.bytes_to_upstream += up.bytes.load(Ordering::Relaxed);
    record.bytes_to_client += down.bytes.load(Ordering::Relaxed);
    record.relay = relay::relay_mode(&up, &down);
    if matches!(end, RelayEnd::Failed(_) | RelayEnd::Forced) {
        // Carry the failure to the other side as a reset; the failed side is
        // reset too, in case it is only half broken.
        sys::set_reset_on_close(client);
        sys::set_reset_on_close(upstream);
    }
    end
}

/// Relays one direction; the first to reach its end samples the subflows.
async fn run_way(
    way: Way<'_>,
    seen: &SubflowsSeen<'_>,
    ended_first: &AtomicBool,
) -> Result<(), RelayError> {
    way.run().await?;
    seen.first_end(ended_first);
    Ok(())
}

/// How far the client and the upstream have acknowledged what the relay wrote.
type Acked = (Option<u64>, Option<u64>);

/// How far a peer has acknowledged what the relay wrote to it: the data-level
/// `snd_una` of an MPTCP connection, `tcpi_bytes_acked` of a TCP one (or one that
/// fell back). One `getsockopt` a socket; `None` where it failed.
fn acked(s: &TcpStream, status: Option<MptcpStatus>) -> Option<u64> {
    if status.is_some_and(|st| st.is_active()) {
        if let Ok(Some(info)) = s.mptcp_info() {
            return Some(info.snd_una);
        }
    }
    s.subflows().ok()?.first()?.tcp.bytes_acked
}

/// Returns when the connection has been idle for `idle`; meanwhile samples the
/// subflow counts once a second while bytes move. A quiet connection costs
/// neither system calls nor a wake-up a second: the watchdog dozes until the next
/// transfer or until its idle timeout needs a look (half of `idle`, then `idle`).
///
/// Idle means that the relay read and wrote nothing for `idle` **and** that the
/// peers acknowledged none of the bytes it had written meanwhile. A socket's send
/// buffer can hold megabytes that a slow or congested path delivers over tens of
/// seconds while the relay, its writes done or blocked until a third of the
/// buffer is free, moves nothing: that connection is busy, not idle. So when a
/// connection has been quiet for half of `idle`, the watchdog reads how far each
/// peer has acknowledged (one `getsockopt` a socket); at `idle` it reads again,
/// and bytes acknowledged in between count as activity. A connection whose bytes
/// the network stopped delivering is still closed after `idle`.
async fn watchdog(
    activity: &Activity,
    idle: Option<Duration>,
    seen: &SubflowsSeen<'_>,
    acked: impl Fn() -> Acked,
) {
    let tick = idle.map_or(Duration::from_secs(1), |i| i.min(Duration::from_secs(1)));
    let mut sampled_at = None;
    // The latest time bytes were seen acknowledged while the relay was quiet.
    let mut progress_at = Instant::now();
    // The acknowledged positions read during the current quiet stretch, and when.
    let mut baseline: Option<(Instant, Acked)> = None;
    loop {
        let now = Instant::now();
        // The next tick, and the next time the idle timeout needs a look.
        let (wake, deadline) = match idle {
            None => (now + tick, None),
            Some(idle) => {
                let quiet_since = activity.last().max(progress_at);
                let this_stretch = baseline.filter(|&(at, _)| at >= quiet_since);
                if now >= quiet_since + idle {
                    let now_acked = acked();
                    match this_stretch {
                        Some((_, then)) if then == now_acked => return,
                        Some(_) => progress_at = now,
                        // Halfway was missed (this task ran late): look again in
                        // half the timeout.
                        None => progress_at = now.checked_sub(idle / 2).unwrap_or(now),
                    }
                    baseline = Some((now, now_acked));
                    continue;
                }
                let next = if this_stretch.is_some() {
                    quiet_since + idle
                } else if now >= quiet_since + idle / 2 {
                    baseline = Some((now, acked()));
                    quiet_since + idle
                } else {
                    quiet_since + idle / 2
                };
                ((now + tick).min(next), Some(next))
            }
        };
        let last = activity.last();
        if sampled_at == Some(last) {
            // Quiet since the last sample: nothing to sample until bytes move
            // again, so no tick; the next transfer or the deadline wakes it,
            // and a transfer is sampled a tick later, as while bytes move.
            activity.doze(last, deadline).await;
            #[cfg(test)]
            activity.naps.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        tokio::time::sleep_until(wake.into()).await;
        #[cfg(test)]
        activity.naps.fetch_add(1, Ordering::Relaxed);
        let last = activity.last();
        if sampled_at != Some(last) {
            sampled_at = Some(last);
            seen.sample();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two connected loopback streams.
    async fn streams() -> (TcpStream, TcpStream) {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let a = TcpStream::connect(l.local_addr().unwrap()).await.unwrap();
        let (b, _) = l.accept().await.unwrap();
        (a, b)
    }

    fn seen<'a>(client: &'a TcpStream, upstream: &'a TcpStream) -> SubflowsSeen<'a> {
        SubflowsSeen {
            client,
            upstream,
            // No end-of-stream hold in these tests: directions that never looked.
            to_upstream: Box::leak(Box::default()),
            to_client: Box::leak(Box::default()),
            client_status: Some(MptcpStatus::PlainTcp),
            upstream_status: Some(MptcpStatus::PlainTcp),
            client_max: AtomicU32::new(0),
            upstream_max: AtomicU32::new(0),
            sampled: AtomicBool::new(false),
        }
    }

    /// Runs `watch` for `d` (it must not end meanwhile).
    async fn run_for(
        watch: std::pin::Pin<&mut impl std::future::Future<Output = ()>>,
        d: Duration,
    ) {
        tokio::select! {
            () = watch => panic!("the watchdog ended within {d:?}"),
            () = tokio::time::sleep(d) => {}
        }
    }

    /// A quiet connection's watchdog wakes once (its first sample) and then
    /// only for a transfer (at once) or its idle timeout, not once a second:
    /// 5,000 idle relayed connections were 5,000 wake-ups a second.
    #[tokio::test]
    async fn a_quiet_connection_wakes_its_watchdog_only_for_a_transfer() {
        let (client, upstream) = streams().await;
        let seen = seen(&client, &upstream);
        let activity = Activity::new();
        let naps = || activity.naps.load(Ordering::Relaxed);
        let watch = watchdog(&activity, Some(Duration::from_secs(600)), &seen, || {
            (None, None)
        });
        tokio::pin!(watch);
        run_for(watch.as_mut(), Duration::from_millis(3500)).await;
        assert_eq!(naps(), 1, "one tick, then asleep (a tick a second is 3)");
        assert!(
            seen.sampled.load(Ordering::Relaxed),
            "the first tick samples"
        );
        activity.touch();
        run_for(watch.as_mut(), Duration::from_millis(300)).await;
        assert_eq!(naps(), 2, "the transfer woke it");
        // Bytes moved: it samples a tick later, then dozes again.
        run_for(watch.as_mut(), Duration::from_millis(3000)).await;
        assert_eq!(naps(), 3);
    }

    /// Dozing keeps the idle timeout: a connection quiet for `idle`, whose
    /// peers acknowledged nothing meanwhile, still ends its watchdog at `idle`.
    #[tokio::test]
    async fn a_dozing_watchdog_still_ends_an_idle_connection() {
        let (client, upstream) = streams().await;
        let seen = seen(&client, &upstream);
        let activity = Activity::new();
        let started = Instant::now();
        tokio::time::timeout(
            Duration::from_secs(20),
            watchdog(&activity, Some(Duration::from_secs(3)), &seen, || {
                (Some(7), Some(7))
            }),
        )
        .await
        .expect("the idle timeout of 3 s ended the watchdog");
        let took = started.elapsed();
        assert!(took >= Duration::from_secs(3), "ended after {took:?}");
        let naps = activity.naps.load(Ordering::Relaxed);
        assert!(naps <= 3, "{naps} wake-ups for a 3 s timeout");
    }

    /// Without an idle timeout a quiet connection's watchdog sleeps until bytes move.
    #[tokio::test]
    async fn without_an_idle_timeout_a_quiet_watchdog_sleeps_until_a_transfer() {
        let (client, upstream) = streams().await;
        let seen = seen(&client, &upstream);
        let activity = Activity::new();
        let watch = watchdog(&activity, None, &seen, || (None, None));
        tokio::pin!(watch);
        run_for(watch.as_mut(), Duration::from_millis(2500)).await;
        assert_eq!(activity.naps.load(Ordering::Relaxed), 1);
        activity.touch();
        run_for(watch.as_mut(), Duration::from_millis(300)).await;
        assert_eq!(activity.naps.load(Ordering::Relaxed), 2);
    }
}
