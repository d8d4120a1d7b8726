//! A fixed-seed fuzz run of the registry's receiver: random bytes and
//! mutations of valid messages (signed with the right key, so mutations that
//! keep the MAC valid are impossible, but every earlier check is reached).
//! [`Registry::handle`] must return, never panic, and count every refusal
//! under exactly one reason. Deterministic and quick, so CI runs it.

use std::net::IpAddr;

use mptcp_steer::registry::{Key, Publisher, Refusal, Registry};

/// xorshift64*: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn mutate(rng: &mut Rng, seeds: &[Vec<u8>]) -> Vec<u8> {
    if rng.below(4) == 0 {
        let n = rng.below(1300);
        return (0..n).map(|_| rng.next() as u8).collect();
    }
    let mut b = seeds[rng.below(seeds.len())].clone();
    for _ in 0..1 + rng.below(4) {
        match rng.below(5) {
            0 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] = rng.next() as u8;
            }
            1 if !b.is_empty() => {
                let i = rng.below(b.len());
                b[i] ^= 1 << rng.below(8);
            }
            2 => {
                let i = rng.below(b.len() + 1);
                b.insert(i, rng.next() as u8);
            }
            3 if !b.is_empty() => {
                b.remove(rng.below(b.len()));
            }
            _ => {
                let n = rng.below(b.len() + 1);
                b.truncate(n);
            }
        }
    }
    b
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
        let input = mutate(&mut rng, &seeds);
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
