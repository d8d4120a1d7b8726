//! `interactive`: subflows on every path, all backup but one, the healthy subflow
//! with the lowest smoothed RTT; a challenger takes over only after beating it
//! clearly, several times in a row, and not too soon after the last change.

use std::time::{Duration, Instant};

use super::{path_of, Conn, LocalPath};

/// `interactive`: a challenger's RTT must be below this fraction of the current one's...
const RTT_RATIO: f64 = 0.75;
/// ...and at least this much lower (sub-millisecond differences on a LAN are noise)...
const RTT_MIN_GAIN: Duration = Duration::from_millis(1);
/// ...for this many measurements in a row...
const RTT_STREAK: u32 = 3;
/// ...and not sooner than this after the last change.
const MIN_DWELL: Duration = Duration::from_secs(2);

/// Moves `c`'s active path to the lowest-RTT healthy subflow when the hysteresis
/// allows; the reason when it moved.
pub(super) fn choose(c: &mut Conn, paths: &[LocalPath], now: Instant) -> Option<String> {
    let healthy: Vec<(u8, Duration)> = c
        .subflows
        .iter()
        .filter(|s| !s.closing && !s.health.stalled)
        .filter_map(|s| Some((path_of(paths, s.local.ip())?, s.health.rtt?)))
        .collect();
    let current = c.active.and_then(|a| healthy.iter().find(|(p, _)| *p == a));
    let best = healthy.iter().min_by_key(|(_, r)| *r).copied();
    match (current, best) {
        (None, Some((b, _))) => {
            if c.active != Some(b) {
                c.active = Some(b);
                c.switched_at = Some(now);
                return Some("lowest RTT (the previous choice is gone or stalled)".into());
            }
        }
        (Some(&(a, ra)), Some((b, rb)))
            if b != a
                && rb.as_secs_f64() < ra.as_secs_f64() * RTT_RATIO
                && ra.saturating_sub(rb) >= RTT_MIN_GAIN =>
        {
            if c.streak.0 == Some(b) {
                c.streak.1 += 1;
            } else {
                c.streak = (Some(b), 1);
            }
            let dwell_ok = c
                .switched_at
                .is_none_or(|t| now.saturating_duration_since(t) >= MIN_DWELL);
            if c.streak.1 >= RTT_STREAK && dwell_ok {
                c.active = Some(b);
                c.switched_at = Some(now);
                c.streak = (None, 0);
                return Some(format!(
                    "lowest RTT: {:.1} ms against {:.1} ms",
                    rb.as_secs_f64() * 1e3,
                    ra.as_secs_f64() * 1e3
                ));
            }
        }
        _ => c.streak = (None, 0),
    }
    None
}
