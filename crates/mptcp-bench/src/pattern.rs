//! The test data: a pseudo-random block whose length is a prime, sent
//! cyclically, so a lost, duplicated or reordered chunk shows up as a
//! mismatch at the receiver, at any read size.

/// Length of the block (a prime).
pub const BLOCK_LEN: usize = 1_000_003;

/// The block every sender sends and every verifier compares against.
#[derive(Clone)]
pub struct Pattern(Vec<u8>);

impl Default for Pattern {
    fn default() -> Self {
        Pattern::new()
    }
}

impl Pattern {
    /// Builds the block (xorshift64, fixed seed: both ends agree).
    pub fn new() -> Pattern {
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut block = Vec::with_capacity(BLOCK_LEN + 8);
        while block.len() < BLOCK_LEN {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            block.extend_from_slice(&x.to_le_bytes());
        }
        block.truncate(BLOCK_LEN);
        Pattern(block)
    }

    /// Up to `max` bytes of the stream, starting at stream offset `at`
    /// (never crossing the end of the block).
    pub fn chunk(&self, at: u64, max: usize) -> &[u8] {
        let off = (at % BLOCK_LEN as u64) as usize;
        let end = off.saturating_add(max).min(BLOCK_LEN);
        &self.0[off..end]
    }

    /// Whether `data` is the stream's content from offset `at`.
    pub fn matches(&self, mut at: u64, mut data: &[u8]) -> bool {
        while !data.is_empty() {
            let expected = self.chunk(at, data.len());
            if data[..expected.len()] != *expected {
                return false;
            }
            at += expected.len() as u64;
            data = &data[expected.len()..];
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn any_split_verifies_and_any_shift_fails() {
        let p = Pattern::new();
        let stream: Vec<u8> = (0..3)
            .flat_map(|_| p.0.iter().copied())
            .take(2 * BLOCK_LEN + 5)
            .collect();
        let mut at = 0u64;
        for size in [1usize, 7, 4096, 65536, 999_999, 1_000_003] {
            let end = (at as usize + size).min(stream.len());
            assert!(p.matches(at, &stream[at as usize..end]));
            at = end as u64;
        }
        assert!(!p.matches(1, &stream[..4096]), "a shifted stream fails");
        let mut corrupt = stream[..10_000].to_vec();
        corrupt[5000] ^= 1;
        assert!(!p.matches(0, &corrupt));
    }
}
