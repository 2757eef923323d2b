//! Fixed-base exponentiation for `h_s^α` (DESIGN §3: "precomputed tables make encryption far
//! cheaper than the textbook `r^n`").
//!
//! With `w`-bit windows the table holds `T[i][j] = base^{j·2^{w·i}}` for every window `i` and
//! digit `j ∈ 1..2^w`; then `base^α = Π_i T[i][α_i]` over the base-`2^w` digits `α_i` of `α`:
//! one modular multiplication per non-zero digit and no squarings.

use num_bigint::BigUint;
use num_traits::One;

/// Window width in bits. Memory is `⌈E/w⌉·(2^w − 1)` residues of `|n²|` bits: 2 MiB for a
/// 2048-bit key (E = 1024 exponent bits).
const WINDOW_BITS: u64 = 4;

/// Precomputed powers of one base modulo `n²`.
pub(crate) struct FixedBaseTable {
    modulus: BigUint,
    exponent_bits: u64,
    /// `windows[i][j − 1] = base^{j·2^{w·i}}`
    windows: Vec<Vec<BigUint>>,
}

impl FixedBaseTable {
    /// Builds the table for exponents of at most `exponent_bits` bits.
    pub(crate) fn new(base: &BigUint, exponent_bits: u64, modulus: &BigUint) -> Self {
        let count = exponent_bits.div_ceil(WINDOW_BITS) as usize;
        let digits = (1usize << WINDOW_BITS) - 1;
        let mut windows = Vec::with_capacity(count);
        let mut b = base % modulus; // base^{2^{w·i}}
        for _ in 0..count {
            let mut row = Vec::with_capacity(digits);
            let mut acc = b.clone();
            row.push(acc.clone());
            for _ in 1..digits {
                acc = (&acc * &b) % modulus;
                row.push(acc.clone());
            }
            // base^{2^{w(i+1)}} = base^{(2^w − 1)·2^{wi}} · base^{2^{wi}}
            b = (&acc * &b) % modulus;
            windows.push(row);
        }
        FixedBaseTable {
            modulus: modulus.clone(),
            exponent_bits,
            windows,
        }
    }

    /// Largest exponent size the table covers, in bits.
    pub(crate) fn exponent_bits(&self) -> u64 {
        self.exponent_bits
    }

    /// `base^e mod n²` for `e` of at most [`Self::exponent_bits`] bits.
    pub(crate) fn pow(&self, e: &BigUint) -> BigUint {
        debug_assert!(e.bits() <= self.exponent_bits);
        let mut acc = BigUint::one();
        let mask = (1u64 << WINDOW_BITS) - 1;
        for (i, row) in self.windows.iter().enumerate() {
            let mut digit = 0u64;
            for k in 0..WINDOW_BITS {
                if e.bit(i as u64 * WINDOW_BITS + k) {
                    digit |= 1 << k;
                }
            }
            let digit = digit & mask;
            if digit != 0 {
                acc = (acc * &row[digit as usize - 1]) % &self.modulus;
            }
        }
        acc
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arith::random_bits;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn table_matches_modpow() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let m = random_bits(512, &mut rng) | BigUint::one();
        let base = random_bits(500, &mut rng);
        let t = FixedBaseTable::new(&base, 130, &m);
        for bits in [0u64, 1, 4, 5, 63, 128, 130] {
            let e = random_bits(bits, &mut rng);
            assert_eq!(t.pow(&e), base.modpow(&e, &m), "{bits}-bit exponent");
        }
        let all_ones = (BigUint::one() << 130u32) - 1u32;
        assert_eq!(t.pow(&all_ones), base.modpow(&all_ones, &m));
    }
}
