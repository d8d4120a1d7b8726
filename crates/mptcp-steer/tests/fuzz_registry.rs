//! A fixed-seed fuzz run of the registry's receiver: random bytes and
//! mutations of valid messages (signed with the right key, so mutations that
//! keep the MAC valid are impossible, but every earlier check is reached).
//! [`Registry::handle`] must return, never panic, and count every refusal
//! under exactly one reason. Deterministic and quick, so CI runs it.

use mptcp_testnet::support::fuzz::{mutate, Rng};
use std::net::IpAddr;

use mptcp_steer::registry::{Key, Publisher, Refusal, Registry};

/// A random input of up to 1300 noise bytes, or a mutated seed.
fn input(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    mutate(rng, seeds, 1300)
}

const ROUNDS: u64 = 200_000;
const NOW: u64 = 1_764_568_800_000;

#[test]
fn registry_never_panics_and_counts_every_refusal() {
    let key = Key::new(b"fuzzing key, 16+ bytes".to_vec()).unwrap();
    let v4: IpAddr = "198.19.0.2".parse().unwrap();
    let v6: IpAddr = "2001:db8:10::2".parse().unwrap();
    let mut registry = Registry::new(key.clone(), [(v4, 1), (v6, 2)]).unwrap();
    let mut seeds = Vec::new();
    for backend in [v4, v6] {
        let mut p = Publisher::new(key.clone(), backend);
        p.snapshot([1, 2, 3]);
        seeds.extend(p.flush(NOW));
        p.remove(2);
        seeds.extend(p.flush(NOW));
        seeds.push(p.heartbeat(NOW));
    }
    let mut rng = Rng(0x5eed_0021);
    let mut reasons = std::collections::BTreeMap::<&str, u64>::new();
    for _ in 0..ROUNDS {
        let input = input(&mut rng, &seeds);
        let reason = match registry.handle(&input, NOW) {
            Ok(_) => "accepted",
            // A mutation can give back an unmutated seed: accepted once, then replayed.
            Err(r @ (Refusal::Malformed(_) | Refusal::BadMac | Refusal::Replayed { .. })) => {
                r.reason()
            }
            Err(other) => panic!("a mutated message passed the MAC: {other:?}"),
        };
        *reasons.entry(reason).or_default() += 1;
    }
    println!("{reasons:?}");
    let s = registry.stats();
    assert_eq!(
        s.malformed + s.bad_mac + s.replayed + s.accepted_messages,
        ROUNDS,
        "{s:?}"
    );
    assert!(s.malformed > 10_000 && s.bad_mac > 10_000, "{s:?}");
    assert_eq!((s.stale, s.unknown_backend), (0, 0), "{s:?}");
    assert!(s.accepted_messages <= seeds.len() as u64, "{s:?}");
}
