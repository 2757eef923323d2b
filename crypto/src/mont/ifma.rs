//! The AVX-512 IFMA kernel: almost Montgomery multiplication over 52-bit digits.
//!
//! `vpmadd52luq`/`vpmadd52huq` add the low/high 52 bits of eight 52×52-bit products to eight
//! 64-bit lanes at once. A residue is `D = 8·V` digits of 52 bits (`R = 2^{52·D}`, with
//! `R > 4N`), held in `V` vectors. Word-by-word Montgomery (Gueron and Krasnov, WAIFI 2012,
//! "AMM"): for each digit `b_i` of `b`,
//!
//! 1. `acc += lo(a·b_i)`, then `m = acc_0 · (−N⁻¹) mod 2^52`, `acc += lo(N·m)`: digit 0 is
//!    now divisible by `2^52`;
//! 2. shift `acc` down one digit (lane alignment across the vectors), carrying `acc_0 >> 52`;
//! 3. `acc += hi(a·b_i) + hi(N·m)`: the high halves belong one digit up, which after the
//!    shift is where they land.
//!
//! Lanes absorb at most `4·D` additions of 52-bit values, far below `2^64` for the sizes
//! allowed here, so carries are propagated once at the end. Inputs below `2N` give an output
//! below `2N` (`(4N² + R·N)/R < 2N`), so chains of products never need the final subtraction;
//! leaving Montgomery form reduces.
//!
//! This is the crate's only `unsafe`: the vector loads and stores, and the call into the
//! `target_feature` function, which is sound because [`Ifma::new`] only succeeds when the
//! processor reports AVX-512F and AVX-512 IFMA.
#![allow(unsafe_code)]

use std::arch::x86_64::{
    __m512i, _mm_cvtsi128_si64, _mm512_add_epi64, _mm512_alignr_epi64, _mm512_castsi512_si128,
    _mm512_loadu_si512, _mm512_madd52hi_epu64, _mm512_madd52lo_epu64, _mm512_maskz_set1_epi64,
    _mm512_set1_epi64, _mm512_setzero_si512, _mm512_storeu_si512,
};

use num_bigint::BigUint;

const DIGIT_BITS: u64 = 52;
const MASK: u64 = (1 << DIGIT_BITS) - 1;
/// Largest vector count: 40 vectors = 320 digits = 16,640 bits, above `n²` for the largest
/// allowed modulus (8192 bits).
const MAX_VECTORS: usize = 40;

/// Whether the processor runs this kernel.
pub(super) fn available() -> bool {
    std::arch::is_x86_feature_detected!("avx512f")
        && std::arch::is_x86_feature_detected!("avx512ifma")
}

/// The kernel's constants for one modulus.
#[derive(Clone)]
pub(super) struct Ifma {
    /// `N` in 52-bit digits.
    n: Box<[u64]>,
    /// `−N⁻¹ mod 2^52`.
    k0: u64,
    vectors: usize,
}

impl Ifma {
    /// `None` unless the processor has AVX-512 IFMA and the modulus fits.
    pub(super) fn new(modulus: &BigUint) -> Option<Self> {
        if !available() {
            return None;
        }
        // R = 2^{52·D} > 4N
        let digits = (modulus.bits() + 2)
            .div_ceil(DIGIT_BITS)
            .next_multiple_of(8) as usize;
        let vectors = digits / 8;
        if vectors > MAX_VECTORS {
            return None;
        }
        let n = to_digits(modulus, digits);
        let k0 = super::scalar::neg_inverse_mod_word(n[0]) & MASK;
        Some(Ifma { n, k0, vectors })
    }

    pub(super) fn width(&self) -> usize {
        self.n.len()
    }

    pub(super) fn r_bits(&self) -> u64 {
        DIGIT_BITS * self.n.len() as u64
    }

    pub(super) fn encode(&self, x: &BigUint) -> Box<[u64]> {
        to_digits(x, self.width())
    }

    pub(super) fn decode(&self, digits: &[u64]) -> BigUint {
        from_digits(digits)
    }

    /// `out = a·b·R⁻¹ mod N`, below `2N`, for digit vectors `a, b` below `2N`.
    #[inline]
    pub(super) fn mul(&self, a: &[u64], b: &[u64], out: &mut [u64]) {
        let d = self.width();
        assert!(
            a.len() == d && b.len() == d && out.len() == d,
            "operands of {d} digits"
        );
        // The vector count is a compile-time constant in each instance of `amm`, so its loops
        // are unrolled and the accumulator stays in registers (twice as fast as a run-time
        // count, measured at V = 10).
        macro_rules! dispatch {
            ($($v:literal)*) => {
                match self.vectors {
                    // SAFETY: `Ifma::new` returns a kernel only when `available()` reported
                    // AVX-512F and AVX-512 IFMA, the features `amm` is compiled for.
                    $($v => unsafe { amm::<$v>(a, b, &self.n, self.k0, out) },)*
                    _ => unreachable!("Ifma::new admits 1..=MAX_VECTORS vectors"),
                }
            };
        }
        dispatch!(1 2 3 4 5 6 7 8 9 10 11 12 13 14 15 16 17 18 19 20
                  21 22 23 24 25 26 27 28 29 30 31 32 33 34 35 36 37 38 39 40)
    }
}

#[target_feature(enable = "avx512f,avx512ifma")]
fn lane0(v: __m512i) -> u64 {
    _mm_cvtsi128_si64(_mm512_castsi512_si128(v)) as u64
}

/// Almost Montgomery multiplication over `V` vectors (see the module documentation).
#[target_feature(enable = "avx512f,avx512ifma")]
fn amm<const V: usize>(a: &[u64], b: &[u64], n: &[u64], k0: u64, out: &mut [u64]) {
    let v = V;
    let zero = _mm512_setzero_si512();
    let mut acc = [zero; V];
    let mut av = [zero; V];
    let mut nv = [zero; V];
    let d = 8 * v;
    let (a, b, n, out) = (&a[..d], &b[..d], &n[..d], &mut out[..d]);
    for j in 0..v {
        // SAFETY: `a` and `n` hold `8·v` u64s, so digits 8j..8j+8 are in bounds; the load is
        // unaligned.
        unsafe {
            av[j] = _mm512_loadu_si512(a.as_ptr().add(8 * j).cast());
            nv[j] = _mm512_loadu_si512(n.as_ptr().add(8 * j).cast());
        }
    }
    for &bi in b {
        let bi = _mm512_set1_epi64(bi as i64);
        for j in 0..v {
            acc[j] = _mm512_madd52lo_epu64(acc[j], av[j], bi);
        }
        let m = lane0(acc[0]).wrapping_mul(k0) & MASK;
        let mv = _mm512_set1_epi64(m as i64);
        for j in 0..v {
            acc[j] = _mm512_madd52lo_epu64(acc[j], nv[j], mv);
        }
        let carry = lane0(acc[0]) >> DIGIT_BITS;
        for j in 0..v - 1 {
            acc[j] = _mm512_alignr_epi64::<1>(acc[j + 1], acc[j]);
        }
        acc[v - 1] = _mm512_alignr_epi64::<1>(zero, acc[v - 1]);
        acc[0] = _mm512_add_epi64(acc[0], _mm512_maskz_set1_epi64(1, carry as i64));
        for j in 0..v {
            acc[j] = _mm512_madd52hi_epu64(acc[j], av[j], bi);
            acc[j] = _mm512_madd52hi_epu64(acc[j], nv[j], mv);
        }
    }
    let mut carry = 0u64;
    for (j, chunk) in out.chunks_exact_mut(8).enumerate() {
        let mut lanes = [0u64; 8];
        // SAFETY: `lanes` is 64 bytes, the size of one vector; the store is unaligned.
        unsafe { _mm512_storeu_si512(lanes.as_mut_ptr().cast(), acc[j]) };
        for (o, lane) in chunk.iter_mut().zip(lanes) {
            let t = lane + carry;
            *o = t & MASK;
            carry = t >> DIGIT_BITS;
        }
    }
    debug_assert_eq!(carry, 0, "AMM result exceeds R");
}

/// `x` as `count` little-endian 52-bit digits (`x < 2^{52·count}`).
fn to_digits(x: &BigUint, count: usize) -> Box<[u64]> {
    let words = x.to_u64_digits();
    let word = |i: usize| words.get(i).copied().unwrap_or(0);
    (0..count)
        .map(|i| {
            let bit = i * DIGIT_BITS as usize;
            let (w, off) = (bit / 64, bit % 64);
            let mut d = word(w) >> off;
            if off > 64 - DIGIT_BITS as usize {
                d |= word(w + 1) << (64 - off);
            }
            d & MASK
        })
        .collect()
}

/// The integer of little-endian 52-bit digits.
fn from_digits(digits: &[u64]) -> BigUint {
    let mut words = vec![0u64; (digits.len() * DIGIT_BITS as usize).div_ceil(64) + 1];
    for (i, &d) in digits.iter().enumerate() {
        let bit = i * DIGIT_BITS as usize;
        let (w, off) = (bit / 64, bit % 64);
        words[w] |= d << off;
        if off > 64 - DIGIT_BITS as usize {
            words[w + 1] |= d >> (64 - off);
        }
    }
    let mut u32s = Vec::with_capacity(words.len() * 2);
    for w in words {
        u32s.push(w as u32);
        u32s.push((w >> 32) as u32);
    }
    BigUint::new(u32s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arith::random_bits;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn digits_round_trip() {
        let mut rng = ChaCha20Rng::seed_from_u64(21);
        for bits in [0u64, 1, 51, 52, 53, 64, 104, 4096, 4159] {
            let x = random_bits(bits, &mut rng);
            assert_eq!(from_digits(&to_digits(&x, 80)), x, "{bits} bits");
        }
    }
}
