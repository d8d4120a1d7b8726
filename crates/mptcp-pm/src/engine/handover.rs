//! `handover`: the *primary* path carries the traffic, every other path holds a
//! backup subflow. A stalled or vanished primary hands over to the best healthy
//! secondary; a primary healthy again for the hold time takes the traffic back.

use std::time::{Duration, Instant};

use super::{live, Conn, LocalPath};

/// Moves `c`'s active path if the rules say so; the reason when it moved.
pub(super) fn choose(
    c: &mut Conn,
    family: &[&LocalPath],
    now: Instant,
    hold: Duration,
) -> Option<String> {
    let primary = c.primary;
    let primary_sf = primary.and_then(|p| live(c, family, p));
    let primary_ok = primary_sf.as_ref().is_some_and(|s| !s.health.stalled);
    if c.active == primary && !primary_ok {
        // Promote the best healthy secondary.
        let best = family
            .iter()
            .filter(|p| Some(p.id) != primary)
            .filter(|p| live(c, family, p.id).is_some_and(|s| !s.health.stalled))
            .max_by_key(|p| (p.priority, std::cmp::Reverse(p.id)));
        if let Some(b) = best {
            c.active = Some(b.id);
            c.switched_at = Some(now);
            return Some(format!(
                "handover to {}: the primary is {}",
                b.interface,
                if primary_sf.is_some() {
                    "stalled"
                } else {
                    "gone"
                }
            ));
        }
    } else if c.active != primary {
        let healthy_for = primary_sf
            .as_ref()
            .and_then(|s| s.health.healthy_since)
            .map(|t| now.saturating_duration_since(t));
        if primary_ok && healthy_for.is_some_and(|d| d >= hold) {
            c.active = primary;
            c.switched_at = Some(now);
            return Some(format!(
                "back to the primary: healthy for {:.1} s",
                hold.as_secs_f64()
            ));
        }
    }
    None
}
