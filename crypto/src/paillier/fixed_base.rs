//! Fixed-base exponentiation for `h_s^α` (DESIGN §3: "precomputed tables make encryption far
//! cheaper than the textbook `r^n`"), by the Lim–Lee comb.
//!
//! Lim and Lee, *More flexible exponentiation with precomputation*, CRYPTO '94: the `E` bits
//! of `α` are written as a matrix of `h` rows of `a = ⌈E/h⌉` bits (row `r` holds bits
//! `r·a … r·a + a − 1`); column `c` reads as an `h`-bit number `col(c)`. The columns fall into
//! `v` groups of `b` consecutive columns, and group `k` has a table
//! `T_k[x] = Π_r base^{x_r·2^{r·a + k·b}}` over every `x ∈ [0, 2^h)`. Then
//!
//! `base^α = Π_{j<b} (Π_{k<v} T_k[col(k·b + j)])^{2^j}`,
//!
//! evaluated from `j = b − 1` down: `b·v − 1` multiplications and `b − 1` squarings. With
//! `h = 12`, `b = 8` and a 2048-bit key (`E = 1024`: `a = 86`, `v = 11`) that is 87
//! multiplications and 7 squarings, where the 8-bit windows this replaced (one table row per
//! byte, Brickell et al.) took 127 multiplications, for a table of `v·2^h` residues: 23 MB
//! instead of 16.7 MB at 2048 bits, 50 MB instead of 37.6 MB at 3072 bits.
//!
//! The sequence of operations depends only on `E`, never on `α`'s bits: every column
//! multiplies, by `T_k[0] = 1` when its bits are zero (the windows skipped zero digits). The
//! table entry each column reads is chosen by `α`'s bits, as before: the memory access
//! pattern is not constant-time.

use num_bigint::BigUint;

use crate::mont::{MontInt, Montgomery};

/// Rows of the comb: each group's table has `2^COMB_ROWS` entries.
pub(crate) const COMB_ROWS: u64 = 12;
/// Columns per group (`b`): squarings per exponentiation are `b − 1`.
pub(crate) const COMB_STEPS: u64 = 8;

/// Precomputed comb tables of one base modulo `n²`.
pub(crate) struct FixedBaseTable {
    exponent_bits: u64,
    /// Bits per comb row (`a`).
    row_bits: u64,
    /// Groups (`v`).
    groups: usize,
    /// Limbs per residue.
    width: usize,
    /// `T_k[x]` at `(k·2^h + x)·width`, Montgomery form.
    entries: Vec<u64>,
}

impl FixedBaseTable {
    /// Builds the tables for exponents of at most `exponent_bits` bits.
    pub(crate) fn new(base: &BigUint, exponent_bits: u64, ctx: &Montgomery) -> Self {
        let h = COMB_ROWS;
        let row_bits = exponent_bits.div_ceil(h).max(1);
        let groups = row_bits.div_ceil(COMB_STEPS) as usize;
        let one = ctx.one();
        let width = one.limbs().len();
        let size = 1usize << h;
        let mut entries = vec![0u64; groups * size * width];
        // base^{2^i} for i = r·a + k·b: squarings up to the last one needed
        let last = (h - 1) * row_bits + (groups as u64 - 1) * COMB_STEPS;
        let mut powers: Vec<Option<MontInt>> = vec![None; (last + 1) as usize];
        let mut p = ctx.to_mont(base);
        for i in 0..=last {
            let wanted = i % row_bits < groups as u64 * COMB_STEPS
                && (i % row_bits).is_multiple_of(COMB_STEPS);
            if wanted {
                powers[i as usize] = Some(p.clone());
            }
            if i < last {
                p = ctx.sqr(&p);
            }
        }
        for k in 0..groups {
            let group = &mut entries[k * size * width..(k + 1) * size * width];
            group[..width].copy_from_slice(one.limbs());
            for x in 1..size {
                let top = usize::BITS - 1 - x.leading_zeros(); // highest row in x
                let rest = x & !(1 << top);
                let i = u64::from(top) * row_bits + k as u64 * COMB_STEPS;
                // every wanted power was stored above
                let Some(g) = powers[i as usize].as_ref() else {
                    unreachable!("power 2^{i} stored")
                };
                let (done, todo) = group.split_at_mut(x * width);
                let out = &mut todo[..width];
                if rest == 0 {
                    out.copy_from_slice(g.limbs());
                } else {
                    ctx.mul_into(&done[rest * width..(rest + 1) * width], g.limbs(), out);
                }
            }
        }
        FixedBaseTable {
            exponent_bits,
            row_bits,
            groups,
            width,
            entries,
        }
    }

    /// Largest exponent size the table covers, in bits.
    pub(crate) fn exponent_bits(&self) -> u64 {
        self.exponent_bits
    }

    /// Bytes held by the table.
    pub(crate) fn memory_bytes(&self) -> usize {
        self.entries.len() * 8
    }

    /// `base^e mod n²` for `e` of at most [`Self::exponent_bits`] bits.
    pub(crate) fn pow(&self, e: &BigUint, ctx: &Montgomery) -> BigUint {
        debug_assert!(e.bits() <= self.exponent_bits);
        let words = e.to_u64_digits();
        let bit = |i: u64| -> usize {
            let w = (i / 64) as usize;
            words.get(w).map_or(0, |d| ((d >> (i % 64)) & 1) as usize)
        };
        let size = 1usize << COMB_ROWS;
        let (a, width) = (self.row_bits, self.width);
        // col(c) for c < a; columns past the row length are zero
        let column = |c: u64| -> usize {
            if c >= a {
                return 0;
            }
            (0..COMB_ROWS).fold(0, |x, r| x | (bit(r * a + c) << r))
        };
        let entry = |k: usize, x: usize| &self.entries[(k * size + x) * width..][..width];
        let mut acc = ctx.one().limbs().to_vec();
        let mut tmp = acc.clone();
        for j in (0..COMB_STEPS).rev() {
            if j + 1 < COMB_STEPS {
                ctx.sqr_into(&acc, &mut tmp);
                std::mem::swap(&mut acc, &mut tmp);
            }
            for k in 0..self.groups {
                let x = column(k as u64 * COMB_STEPS + j);
                if j + 1 == COMB_STEPS && k == 0 {
                    acc.copy_from_slice(entry(0, x));
                    continue;
                }
                ctx.mul_into(&acc, entry(k, x), &mut tmp);
                std::mem::swap(&mut acc, &mut tmp);
            }
        }
        ctx.from_mont(&MontInt::from_limbs(acc.into_boxed_slice()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arith::random_bits;
    use crate::mont::KernelKind;
    use num_traits::One;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn comb_matches_modpow_on_every_kernel() {
        let mut rng = ChaCha20Rng::seed_from_u64(9);
        let m = random_bits(512, &mut rng) | BigUint::one();
        let base = random_bits(500, &mut rng);
        for kind in KernelKind::ALL.into_iter().filter(|k| k.available()) {
            let ctx = Montgomery::with_kernel(&m, kind).unwrap();
            // 130 bits: rows of 11 bits, 2 groups, the last group half outside the rows;
            // 96 = 12·8: one group exactly; 1: a single column
            for exponent_bits in [130u64, 96, 1] {
                let t = FixedBaseTable::new(&base, exponent_bits, &ctx);
                let mut exps: Vec<BigUint> = [0u64, 1, 4, 5, 8, 9, 63, 128, 130]
                    .iter()
                    .filter(|&&b| b <= exponent_bits)
                    .map(|&b| random_bits(b, &mut rng))
                    .collect();
                exps.push((BigUint::one() << exponent_bits) - 1u32);
                exps.push(BigUint::one() << (exponent_bits - 1));
                // one bit in each row and column
                for i in (0..exponent_bits).step_by(7) {
                    exps.push(BigUint::one() << i);
                }
                for e in &exps {
                    assert_eq!(
                        t.pow(e, &ctx),
                        base.modpow(e, &m),
                        "{} kernel, {exponent_bits}-bit table, e = {e:x}",
                        kind.name()
                    );
                }
            }
        }
        let ctx = Montgomery::new(&m).unwrap();
        let t = FixedBaseTable::new(&base, 130, &ctx);
        assert_eq!(t.memory_bytes(), 2 * 4096 * ctx.residue_bytes());
    }
}
