//! The chaos soak's plan: a seeded fault schedule, transfer sizes and the byte
//! pattern every transfer is verified against. Pure (no I/O, no clock), so a seed
//! replays the same run; the runner is the `mptcp-soak` binary of this crate
//! (feature `soak`), started by `scripts/soak`.
//!
//! A run of length `D` is: a quiet warm-up, then fault episodes one after the other
//! until the last tenth of the run, which is quiet again so every path, address,
//! rate and daemon is back before the transfers drain. Each episode starts a fault
//! and ends it (a path cut and restored, an address removed and re-added, ...),
//! except rate changes, which stay until the next one. The path manager switches
//! between the in-kernel and the userspace mode at fixed phase boundaries
//! (four phases per run, [`Action::PmMode`]). Every kind of fault appears at least once when the
//! run is long enough (the first episodes are a seeded shuffle of all kinds).

use std::time::Duration;

/// The number of paths of the soak's network.
pub const SOAK_PATHS: usize = 3;
/// The path whose packets the middlebox strips of MPTCP during a strip episode.
pub const STRIP_PATH: usize = 2;

/// splitmix64: a seeded, dependency-free generator (the schedule, the sizes and the
/// pattern all come from it).
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator started from `seed`.
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// A number in `lo..=hi` (`lo <= hi`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        lo + self.next() % (hi - lo + 1)
    }

    /// A duration in `lo..=hi` milliseconds.
    pub fn millis(&mut self, lo: u64, hi: u64) -> Duration {
        Duration::from_millis(self.range(lo, hi))
    }
}

fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// Fills `buf` with the bytes at `offset..offset + buf.len()` of stream `stream`'s
/// pattern: any offset can be produced (and checked) without the bytes before it,
/// and two streams, or one stream shifted, never compare equal.
pub fn pattern_at(stream: u64, offset: u64, buf: &mut [u8]) {
    let mut pos = offset;
    let mut i = 0;
    while i < buf.len() {
        let word = mix(stream ^ (pos / 8).wrapping_mul(0xD6E8_FEB8_6659_FD93)).to_le_bytes();
        let start = (pos % 8) as usize;
        let n = (8 - start).min(buf.len() - i);
        buf[i..i + n].copy_from_slice(&word[start..start + n]);
        i += n;
        pos += n as u64;
    }
}

/// The inverse of [`mix`] (each step of splitmix64's finaliser is invertible).
fn unmix(mut z: u64) -> u64 {
    z ^= (z >> 31) ^ (z >> 62);
    z = z.wrapping_mul(inverse(0x94D0_49BB_1331_11EB));
    z ^= (z >> 27) ^ (z >> 54);
    z = z.wrapping_mul(inverse(0xBF58_476D_1CE4_E5B9));
    z ^= (z >> 30) ^ (z >> 60);
    z
}

/// The multiplicative inverse of an odd `c` modulo 2^64 (Newton's iteration).
fn inverse(c: u64) -> u64 {
    let mut x = c;
    for _ in 0..6 {
        x = x.wrapping_mul(2u64.wrapping_sub(c.wrapping_mul(x)));
    }
    x
}

/// Where bytes that did not match came from: `sample` (at least 16 bytes received
/// in place of the pattern) as bytes of one of `streams` at some offset below
/// `limit`. Returns that stream and offset, or `None` (bytes of no stream seen:
/// zeros, other data). A post-mortem of a corrupted transfer: the same stream at
/// another offset means data put at the wrong sequence number; another stream,
/// bytes of another connection.
pub fn locate(sample: &[u8], streams: &[u64], limit: u64) -> Option<(u64, u64)> {
    const C: u64 = 0xD6E8_FEB8_6659_FD93;
    let c_inv = inverse(C);
    for skip in 0..8.min(sample.len().saturating_sub(8)) {
        let word = u64::from_le_bytes(sample[skip..skip + 8].try_into().ok()?);
        let v = unmix(word);
        for &stream in streams {
            let index = (v ^ stream).wrapping_mul(c_inv);
            let Some(at) = index
                .checked_mul(8)
                .and_then(|o| o.checked_sub(skip as u64))
            else {
                continue;
            };
            if at >= limit {
                continue;
            }
            let mut want = vec![0u8; sample.len()];
            pattern_at(stream, at, &mut want);
            if want == sample {
                return Some((stream, at));
            }
        }
    }
    None
}

/// A size drawn log-uniformly in `min..=max` (as many 1-10 KiB as 1-10 MiB
/// transfers), then capped at `cap` (but never below `min`).
pub fn transfer_size(rng: &mut Rng, min: u64, max: u64, cap: u64) -> u64 {
    let (lo, hi) = ((min.max(1)) as f64, (max.max(min).max(1)) as f64);
    let unit = (rng.next() >> 11) as f64 / (1u64 << 53) as f64;
    let size = (lo.ln() + unit * (hi.ln() - lo.ln())).exp() as u64;
    size.clamp(min, max.max(min)).min(cap.max(min))
}

/// Which host's path-manager daemon.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The client host.
    Client,
    /// The server host.
    Server,
}

/// One step of the schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Cut path `0` at the client ([`crate::TestNet::path_down`]).
    PathDown(usize),
    /// Restore the path.
    PathUp(usize),
    /// Remove the client's address on the path (`ip addr del`).
    AddrRemove(usize),
    /// Put the address (and its routes) back.
    AddrAdd(usize),
    /// Every path down at once (connections started now fail: counted, expected).
    BlackoutStart,
    /// Every path back.
    BlackoutEnd,
    /// Shape the path to this many Mbit/s (tbf, both ends).
    Rate(usize, u32),
    /// SIGKILL the path-manager daemon of a host ...
    KillPm(Side),
    /// ... and start it again, in the current phase's mode.
    RestartPm(Side),
    /// SIGKILL the server-side proxy (its connections are lost: counted apart) ...
    KillProxy,
    /// ... and start it again on the same port.
    RestartProxy,
    /// Strip the MPTCP option on [`STRIP_PATH`] (TCPOPTSTRIP) ...
    StripOn,
    /// ... and stop.
    StripOff,
    /// Switch both path managers to the userspace (`true`) or in-kernel mode.
    PmMode(bool),
}

/// An action at an offset from the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Event {
    /// When, from the start of the run.
    pub at: Duration,
    /// What.
    pub action: Action,
}

/// The seeded plan of a run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    /// The events, in time order.
    pub events: Vec<Event>,
    /// How long the run lasts (new transfers stop then).
    pub duration: Duration,
    /// The rate every path starts at and returns to, in Mbit/s.
    pub base_rate_mbit: u32,
}

const KINDS: usize = 7;

impl Schedule {
    /// The plan of a run of `duration` from `seed`, paths starting at
    /// `base_rate_mbit`.
    pub fn new(seed: u64, duration: Duration, base_rate_mbit: u32) -> Schedule {
        let mut rng = Rng::new(seed);
        let total = duration.as_millis() as u64;
        let warmup = (total / 10).clamp(3_000, 30_000).min(total / 4);
        let quiet_from = total - total / 10;
        let mut events = Vec::new();
        let mut push = |at: u64, action: Action| {
            events.push(Event {
                at: Duration::from_millis(at),
                action,
            })
        };
        // Path-manager phases: four per run, at least 15 s each.
        let phase = (total / 4).max(15_000);
        let mut userspace = false;
        let mut t = phase;
        while t < quiet_from {
            userspace = !userspace;
            push(t, Action::PmMode(userspace));
            t += phase;
        }
        if userspace {
            push(quiet_from, Action::PmMode(false));
        }
        // Episodes: first every kind once, in a seeded order, then random kinds.
        let mut order: Vec<usize> = (0..KINDS).collect();
        for i in (1..KINDS).rev() {
            order.swap(i, rng.range(0, i as u64) as usize);
        }
        let mut t = warmup;
        let mut n = 0;
        let mut rates = vec![base_rate_mbit; SOAK_PATHS];
        loop {
            let kind = order
                .get(n)
                .copied()
                .unwrap_or_else(|| rng.range(0, KINDS as u64 - 1) as usize);
            let hold = rng.range(1_500, 4_000);
            if t + hold + 500 > quiet_from {
                break;
            }
            let path = rng.range(0, SOAK_PATHS as u64 - 1) as usize;
            let (start, end) = match kind {
                0 => (Action::PathDown(path), Some(Action::PathUp(path))),
                1 => (Action::AddrRemove(path), Some(Action::AddrAdd(path))),
                2 => (Action::BlackoutStart, Some(Action::BlackoutEnd)),
                3 => {
                    let mbit = [5, 10, 20, 40, 80][rng.range(0, 4) as usize].min(base_rate_mbit);
                    rates[path] = mbit;
                    (Action::Rate(path, mbit), None)
                }
                4 => {
                    let side = if rng.next() % 2 == 0 {
                        Side::Client
                    } else {
                        Side::Server
                    };
                    (Action::KillPm(side), Some(Action::RestartPm(side)))
                }
                5 => (Action::KillProxy, Some(Action::RestartProxy)),
                _ => (Action::StripOn, Some(Action::StripOff)),
            };
            push(t, start);
            let hold = match start {
                Action::KillProxy | Action::KillPm(_) => hold.min(2_000),
                _ => hold,
            };
            if let Some(end) = end {
                push(t + hold, end);
            }
            t += hold + rng.range(500, 2_500);
            n += 1;
        }
        for (path, rate) in rates.into_iter().enumerate() {
            if rate != base_rate_mbit {
                push(quiet_from, Action::Rate(path, base_rate_mbit));
            }
        }
        events.sort_by_key(|e| e.at);
        Schedule {
            events,
            duration,
            base_rate_mbit,
        }
    }

    /// How many paths are up after each event, as `(at, paths up)`: the state the
    /// runner classifies failures by (a path counts as up unless cut, its address
    /// removed, or in a blackout).
    pub fn paths_up(&self) -> Vec<(Duration, usize)> {
        let mut down = [false; SOAK_PATHS];
        let mut blackout = false;
        let mut out = Vec::new();
        for e in &self.events {
            match e.action {
                Action::PathDown(p) | Action::AddrRemove(p) => down[p] = true,
                Action::PathUp(p) | Action::AddrAdd(p) => down[p] = false,
                Action::BlackoutStart => blackout = true,
                Action::BlackoutEnd => blackout = false,
                _ => continue,
            }
            let up = if blackout {
                0
            } else {
                down.iter().filter(|d| !**d).count()
            };
            out.push((e.at, up));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn locate_finds_bytes_of_a_stream_at_any_offset() {
        use super::{locate, mix, pattern_at, unmix};
        for x in [0u64, 1, 0xDEAD_BEEF, u64::MAX] {
            assert_eq!(unmix(mix(x)), x);
        }
        let mut sample = [0u8; 48];
        for (stream, at) in [(7u64, 0u64), (7, 13), (0xABCD, 4_084_955), (99, 1 << 30)] {
            pattern_at(stream, at, &mut sample);
            assert_eq!(
                locate(&sample, &[1, stream, 3], 1 << 40),
                Some((stream, at)),
                "{stream} {at}"
            );
        }
        assert_eq!(locate(&[0u8; 48], &[1, 7, 0xABCD], 1 << 40), None);
    }

    use super::*;

    fn all_kinds(s: &Schedule) -> bool {
        let has = |f: fn(&Action) -> bool| s.events.iter().any(|e| f(&e.action));
        has(|a| matches!(a, Action::PathDown(_)))
            && has(|a| matches!(a, Action::AddrRemove(_)))
            && has(|a| matches!(a, Action::BlackoutStart))
            && has(|a| matches!(a, Action::Rate(..)))
            && has(|a| matches!(a, Action::KillPm(_)))
            && has(|a| matches!(a, Action::KillProxy))
            && has(|a| matches!(a, Action::StripOn))
            && has(|a| matches!(a, Action::PmMode(true)))
    }

    #[test]
    fn a_seed_replays_and_another_differs() {
        let a = Schedule::new(7, Duration::from_secs(60), 50);
        assert_eq!(a, Schedule::new(7, Duration::from_secs(60), 50));
        assert_ne!(a, Schedule::new(8, Duration::from_secs(60), 50));
    }

    #[test]
    fn every_fault_is_undone_in_time_and_every_kind_appears() {
        for seed in 0..200 {
            for secs in [60, 600] {
                let s = Schedule::new(seed, Duration::from_secs(secs), 50);
                assert!(all_kinds(&s), "seed {seed}, {secs} s: a kind is missing");
                let quiet = s.duration - s.duration / 10;
                let (mut down, mut strip, mut proxy, mut user) = (0i32, false, true, false);
                let mut pm = [true, true];
                let mut rates = [50; SOAK_PATHS];
                let mut last = Duration::ZERO;
                for e in &s.events {
                    assert!(e.at >= last, "seed {seed}: events out of order");
                    last = e.at;
                    if !matches!(e.action, Action::PmMode(false) | Action::Rate(..)) {
                        assert!(e.at <= quiet, "seed {seed}: {e:?} in the quiet tail");
                    }
                    match e.action {
                        Action::PathDown(_) | Action::AddrRemove(_) | Action::BlackoutStart => {
                            assert_eq!(down, 0, "seed {seed}: two faults at once");
                            down += 1;
                        }
                        Action::PathUp(_) | Action::AddrAdd(_) | Action::BlackoutEnd => down -= 1,
                        Action::StripOn => strip = true,
                        Action::StripOff => strip = false,
                        Action::KillProxy => proxy = false,
                        Action::RestartProxy => proxy = true,
                        Action::KillPm(side) => pm[side as usize] = false,
                        Action::RestartPm(side) => pm[side as usize] = true,
                        Action::Rate(p, r) => rates[p] = r,
                        Action::PmMode(u) => user = u,
                    }
                }
                assert_eq!(down, 0, "seed {seed}: a path left down");
                assert!(!strip && proxy && pm == [true, true] && !user);
                assert_eq!(rates, [50; SOAK_PATHS], "seed {seed}: a rate not restored");
                let ups = s.paths_up();
                assert!(ups.iter().any(|&(_, n)| n == 0));
                assert!(ups.iter().all(|&(_, n)| n == 0 || n >= SOAK_PATHS - 1));
                assert_eq!(ups.last().map(|u| u.1), Some(SOAK_PATHS));
            }
        }
    }

    #[test]
    fn sizes_are_log_uniform_within_bounds_and_capped() {
        let mut rng = Rng::new(1);
        let sizes: Vec<u64> = (0..10_000)
            .map(|_| transfer_size(&mut rng, 1024, 50 << 20, u64::MAX))
            .collect();
        assert!(sizes.iter().all(|&s| (1024..=50 << 20).contains(&s)));
        let small = sizes.iter().filter(|&&s| s < 32 << 10).count();
        let large = sizes.iter().filter(|&&s| s >= 1 << 20).count();
        // log2: 1 KiB..32 KiB is 5 of 15.6 octaves, 1 MiB..50 MiB 5.6 of them.
        assert!((2_800..3_600).contains(&small), "{small}");
        assert!((3_200..4_000).contains(&large), "{large}");
        assert_eq!(transfer_size(&mut rng, 1024, 50 << 20, 10), 1024);
        assert!(transfer_size(&mut rng, 1024, 50 << 20, 4096) <= 4096);
    }

    #[test]
    fn the_pattern_is_the_same_at_any_offset_and_differs_per_stream() {
        let mut whole = vec![0u8; 100];
        pattern_at(5, 0, &mut whole);
        for start in 0..40 {
            let mut part = vec![0u8; 33];
            pattern_at(5, start as u64, &mut part);
            assert_eq!(part, whole[start..start + 33]);
        }
        let mut other = vec![0u8; 100];
        pattern_at(6, 0, &mut other);
        assert_ne!(whole, other);
        assert_ne!(whole[1..], other[..99]);
        assert_ne!(whole[1..], whole[..99]);
    }
}
