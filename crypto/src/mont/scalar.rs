//! The portable kernel: product scanning over 64-bit limbs with the reduction interleaved
//! column by column ("FIPS" method, Koç, Acar and Kaliski, IEEE Micro 1996). Column `k` adds
//! `Σ a_i·b_{k−i}` and `Σ m_i·N_{k−i}` into a 192-bit accumulator in two carry chains, picks
//! `m_k` so the column's low word vanishes, and shifts.

use num_bigint::BigUint;

/// The kernel's constants for one modulus.
#[derive(Clone)]
pub(super) struct Scalar {
    /// `N`, little-endian limbs.
    n: Box<[u64]>,
    /// `−N⁻¹ mod 2⁶⁴`.
    n0: u64,
}

/// Limbs kept on the stack for the reduction multipliers `m_k`; larger moduli use the heap.
const STACK_LIMBS: usize = 128;

impl Scalar {
    pub(super) fn new(modulus: &BigUint) -> Self {
        let s = modulus.bits().div_ceil(64) as usize;
        let n = limbs_of(modulus, s);
        let n0 = neg_inverse_mod_word(n[0]);
        Scalar { n, n0 }
    }

    /// Words per residue; `R = 2^{64·width}`.
    pub(super) fn width(&self) -> usize {
        self.n.len()
    }

    pub(super) fn r_bits(&self) -> u64 {
        64 * self.n.len() as u64
    }

    pub(super) fn encode(&self, x: &BigUint) -> Box<[u64]> {
        limbs_of(x, self.width())
    }

    pub(super) fn decode(&self, limbs: &[u64]) -> BigUint {
        from_limbs(limbs)
    }

    /// `out = a·b·R⁻¹ mod N` for `a, b < N`, fully reduced.
    pub(super) fn mul(&self, a: &[u64], b: &[u64], out: &mut [u64]) {
        let s = self.width();
        let mut stack = [0u64; STACK_LIMBS];
        let mut heap;
        let m: &mut [u64] = if s <= STACK_LIMBS {
            &mut stack[..s]
        } else {
            heap = vec![0u64; s];
            &mut heap
        };
        mont_mul(a, b, &self.n, self.n0, m, out);
    }
}

/// The integer of little-endian 64-bit limbs.
pub(super) fn from_limbs(limbs: &[u64]) -> BigUint {
    let mut words = Vec::with_capacity(limbs.len() * 2);
    for &l in limbs {
        words.push(l as u32);
        words.push((l >> 32) as u32);
    }
    BigUint::new(words)
}

/// `x` as exactly `s` little-endian limbs (`x < 2^{64s}`).
pub(super) fn limbs_of(x: &BigUint, s: usize) -> Box<[u64]> {
    let mut out = vec![0u64; s].into_boxed_slice();
    for (o, d) in out.iter_mut().zip(x.iter_u64_digits()) {
        *o = d;
    }
    out
}

/// `−x⁻¹ mod 2⁶⁴` for odd `x`, by Newton's iteration (each step doubles the correct bits).
pub(super) fn neg_inverse_mod_word(x: u64) -> u64 {
    let mut y: u64 = 1;
    for _ in 0..6 {
        y = y.wrapping_mul(2u64.wrapping_sub(x.wrapping_mul(y)));
    }
    y.wrapping_neg()
}

/// A 192-bit column accumulator.
#[derive(Default, Clone, Copy)]
struct Acc {
    lo: u128,
    hi: u64,
}

impl Acc {
    #[inline(always)]
    fn add(&mut self, p: u128) {
        let (s, o) = self.lo.overflowing_add(p);
        self.lo = s;
        self.hi += o as u64;
    }
    #[inline(always)]
    fn add_acc(&mut self, other: Acc) {
        self.add(other.lo);
        self.hi += other.hi;
    }
    #[inline(always)]
    fn low(&self) -> u64 {
        self.lo as u64
    }
    /// Drops the low word (the column is finished).
    #[inline(always)]
    fn shift(&mut self) {
        self.lo = (self.lo >> 64) | ((self.hi as u128) << 64);
        self.hi = 0;
    }
}

#[inline(always)]
fn wide(a: u64, b: u64) -> u128 {
    (a as u128) * (b as u128)
}

/// `acc += Σ x_i·y_{len−1−i} + Σ p_i·q_{len−1−i}` in two carry chains.
#[inline(always)]
fn dot2(acc: &mut Acc, x: &[u64], y: &[u64], p: &[u64], q: &[u64]) {
    let len = x.len();
    let (y, p, q) = (&y[..len], &p[..len], &q[..len]);
    let mut second = Acc::default();
    for i in 0..len {
        acc.add(wide(x[i], y[len - 1 - i]));
        second.add(wide(p[i], q[len - 1 - i]));
    }
    acc.add_acc(second);
}

/// Montgomery product by product scanning (see the module documentation).
fn mont_mul(a: &[u64], b: &[u64], n: &[u64], n0: u64, m: &mut [u64], out: &mut [u64]) {
    let s = n.len();
    let (a, b, m, out) = (&a[..s], &b[..s], &mut m[..s], &mut out[..s]);
    let mut acc = Acc::default();
    for k in 0..s {
        dot2(&mut acc, &a[..k], &b[1..=k], &m[..k], &n[1..=k]);
        acc.add(wide(a[k], b[0]));
        let mk = acc.low().wrapping_mul(n0);
        m[k] = mk;
        acc.add(wide(mk, n[0]));
        acc.shift();
    }
    for k in s..2 * s - 1 {
        let st = k - s + 1;
        dot2(&mut acc, &a[st..], &b[st..], &m[st..], &n[st..]);
        out[k - s] = acc.low();
        acc.shift();
    }
    out[s - 1] = acc.low();
    acc.shift();
    final_subtract(out, acc.low(), n);
}

/// The product-scanning result `t + top·R` is below `2N`; subtract `N` once if it is `≥ N`.
fn final_subtract(t: &mut [u64], top: u64, n: &[u64]) {
    let mut ge = top != 0;
    if !ge {
        ge = true; // equal counts as ≥
        for j in (0..n.len()).rev() {
            if t[j] != n[j] {
                ge = t[j] > n[j];
                break;
            }
        }
    }
    if ge {
        let mut borrow = false;
        for (tj, &nj) in t.iter_mut().zip(n) {
            let (d, b1) = tj.overflowing_sub(nj);
            let (d, b2) = d.overflowing_sub(borrow as u64);
            *tj = d;
            borrow = b1 | b2;
        }
    }
}
