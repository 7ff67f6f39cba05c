//! The seeded random source every generator decision draws from, and the byte pool that stands in
//! for ciphertext.
//!
//! Owns: turning a seed into reproducible numbers (ChaCha8, so the same seed gives the same
//! capture on every platform and every version of this crate's dependencies). Must not: read
//! the wall clock, the environment or any other source of entropy.

use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// A seeded ChaCha8 stream with the draws the generator needs.
pub struct SynthRng {
    inner: ChaCha8Rng,
}

impl SynthRng {
    /// A stream for `seed`, separated from other streams of the same seed by `stream`.
    pub fn new(seed: u64, stream: u64) -> SynthRng {
        let mut key = [0u8; 32];
        key[..8].copy_from_slice(&seed.to_le_bytes());
        key[8..16].copy_from_slice(&stream.to_le_bytes());
        key[16..24].copy_from_slice(b"portolan");
        SynthRng {
            inner: ChaCha8Rng::from_seed(key),
        }
    }

    /// A uniformly random `u64`.
    pub fn u64(&mut self) -> u64 {
        self.inner.next_u64()
    }

    /// A uniformly random `u32`.
    pub fn u32(&mut self) -> u32 {
        self.inner.next_u32()
    }

    /// A uniformly random `u16`.
    pub fn u16(&mut self) -> u16 {
        (self.inner.next_u32() >> 16) as u16
    }

    /// Fills `out` with random bytes.
    pub fn fill(&mut self, out: &mut [u8]) {
        self.inner.fill_bytes(out);
    }

    /// `N` random bytes.
    pub fn bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut b = [0u8; N];
        self.inner.fill_bytes(&mut b);
        b
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.inner.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// A uniform integer in `0..n` (0 when `n` is 0).
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            return 0;
        }
        // Multiply-shift: bias is below 2^-64 * n, irrelevant here.
        ((self.inner.next_u64() as u128 * n as u128) >> 64) as u64
    }

    /// A uniform integer in `lo..=hi` (`lo` when `hi < lo`).
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// A log-uniform integer in `lo..=hi`: small values as likely per decade as large ones,
    /// the usual shape of message and object sizes.
    pub fn log_range(&mut self, lo: u64, hi: u64) -> u64 {
        let lo = lo.max(1);
        if hi <= lo {
            return lo;
        }
        let (a, b) = ((lo as f64).ln(), (hi as f64 + 1.0).ln());
        let v = (a + (b - a) * self.unit()).exp() as u64;
        v.clamp(lo, hi)
    }

    /// An exponentially distributed duration with mean `mean` (for Poisson arrivals).
    pub fn exp(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// An index drawn with probability proportional to `weights` (0 when all weights are 0).
    pub fn weighted(&mut self, weights: &[f64]) -> usize {
        let total: f64 = weights.iter().filter(|w| **w > 0.0).sum();
        if total <= 0.0 {
            return 0;
        }
        let mut x = self.unit() * total;
        for (i, w) in weights.iter().enumerate() {
            if *w > 0.0 {
                if x < *w {
                    return i;
                }
                x -= *w;
            }
        }
        weights.iter().rposition(|w| *w > 0.0).unwrap_or(0)
    }

    /// A uniformly chosen element, or `None` for an empty slice.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        items.get(self.below(items.len() as u64) as usize)
    }
}

/// Size of the pseudo-random byte pool that payload bytes of encrypted records are cut from.
pub const POOL_LEN: usize = 1 << 16;

/// A fixed block of random bytes from the seed, read with wrap-around at a per-flow offset.
///
/// Ciphertext is indistinguishable from random; cutting it from a pool (instead of running a
/// cipher per packet) keeps multi-million-packet captures fast while every flow still starts at
/// a different place in the pool.
pub struct BytePool {
    bytes: Vec<u8>,
}

impl BytePool {
    /// Fills the pool from `seed`.
    pub fn new(seed: u64) -> BytePool {
        let mut rng = SynthRng::new(seed, 0x706f_6f6c);
        let mut bytes = vec![0u8; POOL_LEN];
        rng.fill(&mut bytes);
        BytePool { bytes }
    }

    /// Appends `n` bytes starting at pool position `pos` (wrapping) to `out`.
    pub fn read(&self, pos: usize, n: usize, out: &mut Vec<u8>) {
        let mut pos = pos % POOL_LEN;
        let mut left = n;
        while left > 0 {
            let take = left.min(POOL_LEN - pos);
            out.extend_from_slice(&self.bytes[pos..pos + take]);
            left -= take;
            pos = 0;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream_and_streams_differ() {
        let (mut a, mut b, mut c) = (
            SynthRng::new(7, 1),
            SynthRng::new(7, 1),
            SynthRng::new(7, 2),
        );
        let xa: Vec<u64> = (0..8).map(|_| a.u64()).collect();
        let xb: Vec<u64> = (0..8).map(|_| b.u64()).collect();
        let xc: Vec<u64> = (0..8).map(|_| c.u64()).collect();
        assert_eq!(xa, xb);
        assert_ne!(xa, xc);
    }

    #[test]
    fn ranges_stay_in_bounds() {
        let mut r = SynthRng::new(1, 1);
        for _ in 0..10_000 {
            let v = r.range(49152, 65535);
            assert!((49152..=65535).contains(&v));
            let l = r.log_range(100, 100_000);
            assert!((100..=100_000).contains(&l));
        }
        assert_eq!(r.weighted(&[0.0, 0.0, 5.0]), 2);
    }

    #[test]
    fn pool_wraps() {
        let p = BytePool::new(3);
        let mut out = Vec::new();
        p.read(POOL_LEN - 3, 10, &mut out);
        assert_eq!(out.len(), 10);
        assert_eq!(out[3..], p.bytes[..7]);
    }
}
