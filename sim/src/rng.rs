//! The one random number generator of a simulation: ChaCha8 seeded from one `u64`.
//!
//! Every random decision of a run (scheduling order, latencies, fault decisions, the choices of
//! simulated programs) is drawn from one [`SimRng`], so a run is a pure function of its program,
//! its configuration and its seed. This module owns the generator and the few ways of drawing
//! from it; it must never be seeded from anything but the run's seed.

use rand_chacha::rand_core::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// The simulation's random number generator (ChaCha8, seeded from one `u64`).
#[derive(Clone, Debug)]
pub struct SimRng {
    rng: ChaCha8Rng,
    draws: u64,
}

impl SimRng {
    /// A generator seeded from `seed`.
    pub fn new(seed: u64) -> SimRng {
        SimRng {
            rng: ChaCha8Rng::seed_from_u64(seed),
            draws: 0,
        }
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.draws += 1;
        self.rng.next_u64()
    }

    /// How many values were drawn so far (part of the determinism check).
    pub fn draws(&self) -> u64 {
        self.draws
    }

    /// A number in `0..n` (`n > 0`; 0 for `n == 0`). Multiply-shift: one draw, no rejection loop,
    /// so the number of draws never depends on the values drawn.
    pub fn below(&mut self, n: u64) -> u64 {
        let x = self.next_u64();
        ((u128::from(x) * u128::from(n)) >> 64) as u64
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: u64, hi: u64) -> u64 {
        if hi <= lo {
            let _ = self.next_u64();
            return lo;
        }
        lo + self.below(hi - lo + 1)
    }

    /// A float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        unit_of(self.next_u64())
    }

    /// True with probability `p` (one draw, whatever `p` is).
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Shuffles `v` (Fisher–Yates; `len - 1` draws).
    pub fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = self.below(i as u64 + 1) as usize;
            v.swap(i, j);
        }
    }
}

/// A float in `[0, 1)` from 64 random bits.
pub(crate) fn unit_of(x: u64) -> f64 {
    (x >> 11) as f64 / (1u64 << 53) as f64
}

/// splitmix64's finaliser: derives independent-looking values from one drawn value, so that a
/// fault decision always consumes exactly one draw whatever details it needs.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    x = (x ^ (x >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_stream() {
        let mut a = SimRng::new(7);
        let mut b = SimRng::new(7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert_ne!(SimRng::new(1).next_u64(), SimRng::new(2).next_u64());
    }

    #[test]
    fn below_stays_in_range() {
        let mut r = SimRng::new(3);
        for n in [1u64, 2, 3, 10, 1000] {
            for _ in 0..200 {
                assert!(r.below(n) < n);
            }
        }
        assert_eq!(r.below(0), 0);
    }
}
