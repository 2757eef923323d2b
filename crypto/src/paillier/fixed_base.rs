//! Fixed-base exponentiation for `h_s^α` (DESIGN §3: "precomputed tables make encryption far
//! cheaper than the textbook `r^n`").
//!
//! With `w`-bit windows the table holds `T[i][j] = base^{j·2^{w·i}}` (Montgomery form) for
//! every window `i` and digit `j ∈ 1..2^w`; then `base^α = Π_i T[i][α_i]` over the base-`2^w`
//! digits `α_i` of `α`: one Montgomery multiplication per non-zero digit and no squarings.

use num_bigint::BigUint;

use crate::mont::{MontInt, Montgomery};

/// Window width in bits: one table row per byte of `α`. Memory is `⌈E/8⌉·255` residues of
/// `|n²|` bits: 16.7 MB for a 2048-bit key (E = 1024), 37.6 MB for 3072 bits; the rows cost
/// `⌈E/8⌉·255` Montgomery multiplications to build, once per key and process.
pub(crate) const WINDOW_BITS: u64 = 8;

/// Precomputed powers of one base modulo `n²`.
pub(crate) struct FixedBaseTable {
    exponent_bits: u64,
    /// `rows[i][j − 1] = base^{j·2^{8i}}` in Montgomery form.
    rows: Vec<Vec<MontInt>>,
}

impl FixedBaseTable {
    /// Builds the table for exponents of at most `exponent_bits` bits.
    pub(crate) fn new(base: &BigUint, exponent_bits: u64, ctx: &Montgomery) -> Self {
        let count = exponent_bits.div_ceil(WINDOW_BITS) as usize;
        let digits = (1usize << WINDOW_BITS) - 1;
        let mut rows = Vec::with_capacity(count);
        let mut b = ctx.to_mont(base); // base^{2^{w·i}}
        for _ in 0..count {
            let mut row = Vec::with_capacity(digits);
            row.push(b.clone());
            for k in 1..digits {
                row.push(ctx.mul(&row[k - 1], &b));
            }
            // base^{2^{w(i+1)}} = base^{(2^w − 1)·2^{wi}} · base^{2^{wi}}
            b = ctx.mul(&row[digits - 1], &b);
            rows.push(row);
        }
        FixedBaseTable {
            exponent_bits,
            rows,
        }
    }

    /// Largest exponent size the table covers, in bits.
    pub(crate) fn exponent_bits(&self) -> u64 {
        self.exponent_bits
    }

    /// Bytes held by the table.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.rows
            .iter()
            .map(|r| r.iter().map(|x| x.bytes()).sum::<usize>())
            .sum()
    }

    /// `base^e mod n²` for `e` of at most [`Self::exponent_bits`] bits.
    pub(crate) fn pow(&self, e: &BigUint, ctx: &Montgomery) -> BigUint {
        debug_assert!(e.bits() <= self.exponent_bits);
        // With 8-bit windows the digits are the little-endian bytes of e.
        let mut acc: Option<MontInt> = None;
        let mut tmp = ctx.one(); // scratch of the right width, reused for every product
        for (row, &digit) in self.rows.iter().zip(e.to_bytes_le().iter()) {
            if digit == 0 {
                continue;
            }
            let entry = &row[digit as usize - 1];
            match acc.as_mut() {
                None => acc = Some(entry.clone()),
                Some(a) => {
                    ctx.mul_to(a, entry, &mut tmp);
                    std::mem::swap(a, &mut tmp);
                }
            }
        }
        match acc {
            Some(a) => ctx.from_mont(&a),
            None => BigUint::from(1u32),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arith::random_bits;
    use num_traits::One;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn table_matches_modpow() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let m = random_bits(512, &mut rng) | BigUint::one();
        let ctx = Montgomery::new(&m).unwrap();
        let base = random_bits(500, &mut rng);
        let t = FixedBaseTable::new(&base, 130, &ctx);
        for bits in [0u64, 1, 4, 5, 8, 9, 63, 128, 130] {
            let e = random_bits(bits, &mut rng);
            assert_eq!(t.pow(&e, &ctx), base.modpow(&e, &m), "{bits}-bit exponent");
        }
        let all_ones = (BigUint::one() << 130u32) - 1u32;
        assert_eq!(t.pow(&all_ones, &ctx), base.modpow(&all_ones, &m));
        // digits of 0xff and single bytes at each row
        for row in 0..17u32 {
            let e = BigUint::from(0xffu32) << (8 * row);
            if e.bits() <= 130 {
                assert_eq!(t.pow(&e, &ctx), base.modpow(&e, &m), "row {row}");
            }
        }
        assert_eq!(t.memory_bytes(), 17 * 255 * ctx.residue_bytes());
    }
}
