//! The token registry protocol, sans-I/O: backends tell the balancer which
//! MPTCP tokens they own.
//!
//! [`Publisher`] (backend) builds signed datagrams from [`Op`]s; [`Registry`]
//! (balancer) authenticates them, refuses replays and unknown senders, keeps
//! the per-backend token sets, and returns the [`Update`]s for the BPF map.
//! No sockets and no clock here: time is an argument. The I/O layers are
//! [`PublisherSocket`](crate::PublisherSocket) and, with feature `tokio`,
//! `RegistryServer`. The format and the rules are in the crate docs.
//!
//! ```
//! use mptcp_steer::registry::{Key, Publisher, Registry, Update};
//!
//! let key = Key::new(*b"a secret of 16 b")?;
//! let backend = "198.19.0.2".parse()?;
//! let mut registry = Registry::new(key.clone(), [(backend, 0x101)])?;
//! let mut publisher = Publisher::new(key, backend);
//!
//! let now = 1_764_568_800_000; // Unix milliseconds
//! publisher.snapshot([0xdead_beef, 7]);
//! for datagram in publisher.flush(now) {
//!     let accepted = registry.handle(&datagram, now + 1)?;
//!     assert_eq!(accepted.updates.len(), 2);
//! }
//! assert_eq!(registry.mark_of(7), Some(0x101));
//!
//! publisher.remove(7);
//! let datagram = publisher.flush(now + 5).remove(0);
//! let accepted = registry.handle(&datagram, now + 6)?;
//! assert_eq!(accepted.updates, vec![Update::Remove { token: 7 }]);
//! // The same bytes again: a replay, refused and counted.
//! assert!(registry.handle(&datagram, now + 7).is_err());
//! assert_eq!(registry.stats().replayed, 1);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod key;
mod publisher;
mod receiver;
pub mod wire;

pub use key::{Key, MIN_KEY_LEN};
pub use publisher::Publisher;
pub use receiver::{Accepted, Refusal, Registry, RegistryStats, Update, DEFAULT_WINDOW};
pub use wire::{Message, Op};

/// The current time in Unix milliseconds (0 if the clock is before 1970).
pub fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;
    use std::time::Duration;

    const NOW: u64 = 1_764_568_800_000;

    fn key() -> Key {
        Key::new(b"the fleet's shared secret".to_vec()).unwrap()
    }
    fn a() -> IpAddr {
        "198.19.0.2".parse().unwrap()
    }
    fn b() -> IpAddr {
        "2001:db8:11::2".parse().unwrap()
    }
    fn registry() -> Registry {
        Registry::new(key(), [(a(), 1), (b(), 2)]).unwrap()
    }
    fn one(p: &mut Publisher, now: u64) -> Vec<u8> {
        let mut d = p.flush(now);
        assert_eq!(d.len(), 1);
        d.remove(0)
    }

    #[test]
    fn add_remove_reset() {
        let mut r = registry();
        let mut p = Publisher::new(key(), a());
        p.add(10);
        p.add(11);
        let acc = r.handle(&one(&mut p, NOW), NOW).unwrap();
        assert_eq!(acc.backend, a());
        assert_eq!(acc.ops, 2);
        assert_eq!(
            acc.updates,
            vec![
                Update::Insert { token: 10, mark: 1 },
                Update::Insert { token: 11, mark: 1 }
            ]
        );
        // Add again: nothing changes in the map.
        p.add(10);
        assert_eq!(r.handle(&one(&mut p, NOW), NOW).unwrap().updates, vec![]);
        // Remove of a token this backend does not own: nothing.
        p.remove(99);
        assert_eq!(r.handle(&one(&mut p, NOW), NOW).unwrap().updates, vec![]);
        // Reset then 11 again: only 10 leaves the map.
        p.snapshot([11, 12]);
        let acc = r.handle(&one(&mut p, NOW + 1), NOW).unwrap();
        assert_eq!(
            acc.updates,
            vec![
                Update::Remove { token: 10 },
                Update::Insert { token: 12, mark: 1 }
            ]
        );
        let mut t = r.tokens_of(a()).unwrap();
        t.sort();
        assert_eq!(t, vec![11, 12]);
        assert_eq!(r.len(), 2);
        let s = r.stats();
        assert_eq!((s.accepted_messages, s.accepted_ops), (4, 7));
    }

    #[test]
    fn tokens_are_per_backend() {
        let mut r = registry();
        let mut pa = Publisher::new(key(), a());
        let mut pb = Publisher::new(key(), b());
        pa.add(1);
        pb.add(2);
        r.handle(&one(&mut pa, NOW), NOW).unwrap();
        r.handle(&one(&mut pb, NOW), NOW).unwrap();
        // B's reset does not touch A's token; B cannot remove A's token.
        pb.reset();
        pb.remove(1);
        let acc = r.handle(&one(&mut pb, NOW), NOW).unwrap();
        assert_eq!(acc.updates, vec![Update::Remove { token: 2 }]);
        assert_eq!(r.mark_of(1), Some(1));
        // Removing backend A removes its tokens.
        assert_eq!(
            r.remove_backend(a()),
            Some(vec![Update::Remove { token: 1 }])
        );
        assert!(r.is_empty());
        assert_eq!(r.remove_backend(a()), None);
        // A message from A is now an unknown backend.
        pa.add(3);
        assert_eq!(
            r.handle(&one(&mut pa, NOW), NOW),
            Err(Refusal::UnknownBackend(a()))
        );
    }

    #[test]
    fn conflict_newer_claim_wins_and_old_owner_cannot_remove_it() {
        let mut r = registry();
        let mut pa = Publisher::new(key(), a());
        let mut pb = Publisher::new(key(), b());
        pa.add(5);
        r.handle(&one(&mut pa, NOW), NOW).unwrap();
        pb.add(5);
        let acc = r.handle(&one(&mut pb, NOW), NOW).unwrap();
        assert_eq!(acc.updates, vec![Update::Insert { token: 5, mark: 2 }]);
        assert_eq!(r.stats().conflicts, 1);
        pa.remove(5);
        assert_eq!(r.handle(&one(&mut pa, NOW), NOW).unwrap().updates, vec![]);
        assert_eq!(r.mark_of(5), Some(2));
        assert_eq!(r.tokens_of(a()).unwrap(), Vec::<u32>::new());
    }

    #[test]
    fn forged_mac_is_counted() {
        let mut r = registry();
        let mut forger = Publisher::new(Key::new(b"not the fleet's secret".to_vec()).unwrap(), a());
        forger.add(1);
        assert_eq!(r.handle(&one(&mut forger, NOW), NOW), Err(Refusal::BadMac));
        // A genuine message with one bit flipped in a token.
        let mut p = Publisher::new(key(), a());
        p.add(1);
        let mut d = one(&mut p, NOW);
        d[26] ^= 1;
        assert_eq!(r.handle(&d, NOW), Err(Refusal::BadMac));
        // The backend address changed: bad MAC, not an unknown backend.
        p.add(1);
        let mut d = one(&mut p, NOW);
        d[7] ^= 1;
        assert_eq!(r.handle(&d, NOW), Err(Refusal::BadMac));
        assert_eq!(r.stats().bad_mac, 3);
        assert!(r.is_empty());
    }

    #[test]
    fn replay_and_reorder_are_refused() {
        let mut r = registry();
        let mut p = Publisher::new(key(), a());
        p.add(1);
        let first = one(&mut p, NOW);
        p.add(2);
        let second = one(&mut p, NOW);
        r.handle(&second, NOW).unwrap();
        assert!(matches!(
            r.handle(&second, NOW),
            Err(Refusal::Replayed { seq: 2, .. })
        ));
        assert!(matches!(
            r.handle(&first, NOW),
            Err(Refusal::Replayed { seq: 1, .. })
        ));
        // A restarted sender starts at seq 1 again; a later timestamp lets it in.
        let mut restarted = Publisher::new(key(), a());
        restarted.reset();
        let acc = r.handle(&one(&mut restarted, NOW + 1), NOW).unwrap();
        assert_eq!(acc.updates, vec![Update::Remove { token: 2 }]);
        assert_eq!(r.stats().replayed, 2);
    }

    #[test]
    fn replay_after_backend_readded_is_refused() {
        let mut r = registry();
        let mut p = Publisher::new(key(), a());
        p.add(1);
        let d = one(&mut p, NOW);
        r.handle(&d, NOW).unwrap();
        r.remove_backend(a()).unwrap();
        r.add_backend(a(), 1).unwrap();
        assert!(matches!(r.handle(&d, NOW), Err(Refusal::Replayed { .. })));
    }

    #[test]
    fn stale_both_ways() {
        let mut r = registry().with_window(Duration::from_secs(30));
        let mut p = Publisher::new(key(), a());
        p.add(1);
        assert_eq!(
            r.handle(&one(&mut p, NOW - 30_001), NOW),
            Err(Refusal::Stale {
                backend: a(),
                skew_ms: -30_001
            })
        );
        let mut p = Publisher::new(key(), a());
        p.add(1);
        let future = one(&mut p, NOW + 30_001);
        assert!(matches!(
            r.handle(&future, NOW),
            Err(Refusal::Stale {
                skew_ms: 30_001,
                ..
            })
        ));
        // At the edge of the window: accepted.
        assert!(r.handle(&future, NOW + 1).is_ok());
        // Extreme values do not overflow.
        let mut p = Publisher::new(key(), a());
        p.add(1);
        assert!(matches!(
            r.handle(&one(&mut p, u64::MAX), 0),
            Err(Refusal::Stale {
                skew_ms: i64::MAX,
                ..
            })
        ));
        assert_eq!(r.stats().stale, 3);
    }

    #[test]
    fn malformed_inputs_are_counted_not_panicking() {
        let mut r = registry();
        let mut p = Publisher::new(key(), a());
        p.add(1);
        let good = one(&mut p, NOW);
        let mut n = 0;
        for len in 0..good.len() {
            assert!(matches!(
                r.handle(&good[..len], NOW),
                Err(Refusal::Malformed(_))
            ));
            n += 1;
        }
        for garbage in [&b"hello"[..], &[0xff; 64], &[1, 4, 0xff, 0xff, 0, 0, 0, 0]] {
            assert!(matches!(r.handle(garbage, NOW), Err(Refusal::Malformed(_))));
            n += 1;
        }
        assert_eq!(r.stats().malformed, n);
        assert_eq!(r.handle(&good, NOW).map(|a| a.ops), Ok(1));
    }

    #[test]
    fn refusal_reasons_are_the_counter_names() {
        let reasons: Vec<_> = [
            Refusal::Malformed("x"),
            Refusal::BadMac,
            Refusal::UnknownBackend(a()),
            Refusal::Stale {
                backend: a(),
                skew_ms: 0,
            },
            Refusal::Replayed {
                backend: a(),
                timestamp_ms: 0,
                seq: 0,
            },
        ]
        .iter()
        .map(Refusal::reason)
        .collect();
        assert_eq!(
            reasons,
            [
                "malformed",
                "bad_mac",
                "unknown_backend",
                "stale",
                "replayed"
            ]
        );
    }

    #[test]
    fn duplicate_backends_are_refused() {
        assert!(Registry::new(key(), [(a(), 1), (a(), 2)]).is_err());
        let e = Registry::new(key(), [(a(), 1), (b(), 1)]).unwrap_err();
        assert!(e.to_string().contains("mark 0x1"), "{e}");
    }

    #[test]
    fn publisher_batches_within_the_bound_with_increasing_seq() {
        let mut r = registry();
        let mut p = Publisher::new(key(), b());
        let per = p.ops_per_datagram();
        assert_eq!(per, 226);
        p.snapshot(0..1000);
        let ds = p.flush(NOW);
        assert_eq!(ds.len(), 1001_usize.div_ceil(per));
        let mut inserted = 0;
        for (i, d) in ds.iter().enumerate() {
            assert!(d.len() <= wire::DEFAULT_MAX_DATAGRAM);
            let acc = r.handle(d, NOW).unwrap();
            assert_eq!(acc.seq, i as u64 + 1);
            inserted += acc.updates.len();
        }
        assert_eq!(inserted, 1000);
        assert_eq!(p.pending(), 0);
        assert!(p.flush(NOW).is_empty());
        assert!(r.handle(&p.heartbeat(NOW), NOW).is_ok());
        assert!(Publisher::new(key(), b()).with_max_datagram(72).is_err());
        assert_eq!(
            Publisher::new(key(), a())
                .with_max_datagram(61)
                .unwrap()
                .ops_per_datagram(),
            1
        );
    }

    #[test]
    fn publisher_timestamp_never_goes_back() {
        let mut r = registry();
        let mut p = Publisher::new(key(), a());
        p.add(1);
        r.handle(&one(&mut p, NOW), NOW).unwrap();
        p.add(2);
        // The sender's clock stepped back 5 s: the message still carries NOW.
        let d = one(&mut p, NOW - 5000);
        assert_eq!(wire::parse(&d).unwrap().message.timestamp_ms, NOW);
        assert!(r.handle(&d, NOW).is_ok());
    }

    #[test]
    fn memory_accounting() {
        let mut r = registry();
        assert_eq!(r.memory_bytes(), 0);
        let mut p = Publisher::new(key(), a());
        p.snapshot(0..10_000);
        for d in p.flush(NOW) {
            r.handle(&d, NOW).unwrap();
        }
        let per = r.memory_bytes() as f64 / r.len() as f64;
        assert!((10.0..40.0).contains(&per), "{per} bytes per token");
    }
}
