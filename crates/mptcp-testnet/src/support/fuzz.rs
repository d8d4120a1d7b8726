//! Fixed-seed fuzzing for parsers of network input, shared by the crates' fuzz tests
//! (the PROXY/SOCKS5/Convert parsers, the token registry): a deterministic random
//! source and a mutator of valid messages. No dependency, the same sequence on every
//! run, so CI runs these tests; coverage-guided fuzzing is cargo-fuzz's job.

/// xorshift64*: deterministic, no dependency.
#[derive(Debug, Clone)]
pub struct Rng(pub u64);

impl Rng {
    /// The next 64 random bits.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// A number in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

/// A random input: one time in four pure noise of up to `noise_max` bytes, else one of
/// `seeds` with one to four bytes replaced, bit-flipped, inserted or removed, or cut
/// short.
pub fn mutate(rng: &mut Rng, seeds: &[Vec<u8>], noise_max: usize) -> Vec<u8> {
    if seeds.is_empty() || rng.below(4) == 0 {
        let n = rng.below(noise_max);
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
