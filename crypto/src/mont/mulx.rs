//! The x86-64 BMI2/ADX kernel: Montgomery products over 64-bit limbs with MULX and two
//! independent carry chains (ADCX uses only CF, ADOX only OF).
//!
//! One primitive does the work, a multiply-accumulate row `t[0..k] += a[0..k]·b` in inline
//! assembly ([`addmul_row`]): per limb one `mulx` (which leaves the flags alone), one `adcx`
//! adding the accumulator limb and one `adox` adding the previous product's high word, so the
//! two additions of every limb run in separate chains instead of one serial `adc` chain
//! (Ozturk, Guilford, Gopal and Feghali, *New instructions supporting large integer
//! arithmetic on Intel architecture processors*, Intel white paper 2012). LLVM does not
//! interleave the two chains from intrinsics, hence the assembly. The row runs at about one
//! limb product per cycle, MULX's throughput.
//!
//! On top of the row, in Rust:
//! - the product `a·b` row by row (schoolbook, `s²` limb products);
//! - a dedicated squaring: every cross product `a_i·a_j` (`i < j`) once, then doubled with
//!   the squares `a_i²` added in one assembly pass (`s(s − 1)/2 + s` limb products; with the
//!   reduction about 0.76 of a product's time at 64 limbs);
//! - a separate Montgomery reduction (REDC) of the `2s`-limb result, `s` rows of `m_i·N`, whose
//!   row carries are collected in the limbs each row zeroes and added once at the end (GMP's
//!   `mpn_redc_1` arrangement), then one conditional subtraction of `N`;
//! - `a·b mod N` of ordinary residues ([`Mulx::mul_mod`], a homomorphic addition) as the
//!   product and one Barrett reduction, half the work of entering and leaving the form.
//!
//! Outputs are fully reduced (`< N`), the same representation as the portable kernel, so both
//! give identical limbs on identical inputs.
//!
//! This module and the IFMA kernel are the crate's only `unsafe`: the assembly blocks of
//! [`addmul_row`] and [`double_add_squares`]. [`Mulx::new`] succeeds only when the processor
//! reports BMI2 and ADX, and both functions are reached only through a `Mulx`.
#![allow(unsafe_code)]

use num_bigint::BigUint;

use super::scalar::neg_inverse_mod_word;

/// Whether the processor runs this kernel.
pub(super) fn available() -> bool {
    std::arch::is_x86_feature_detected!("bmi2") && std::arch::is_x86_feature_detected!("adx")
}

/// Limbs kept on the stack for the double-width intermediate (`2s` limbs, `s ≤ 256`: a
/// 16,384-bit modulus); larger moduli use the heap.
const STACK_LIMBS: usize = 512;

/// The kernel's constants for one modulus.
#[derive(Clone)]
pub(super) struct Mulx {
    /// `N`, little-endian limbs.
    n: Box<[u64]>,
    /// `−N⁻¹ mod 2⁶⁴`.
    n0: u64,
    /// Barrett's `μ = ⌊2^{128s}/N⌋`, `s + 1` limbs, for [`Mulx::mul_mod`].
    mu: Box<[u64]>,
}

impl Mulx {
    /// `None` unless the processor has BMI2 and ADX.
    pub(super) fn new(modulus: &BigUint) -> Option<Self> {
        if !available() {
            return None;
        }
        let n = super::scalar::limbs_of(modulus, modulus.bits().div_ceil(64) as usize);
        let n0 = neg_inverse_mod_word(n[0]);
        let s = n.len();
        // N ≥ 2^{64(s−1)} and N odd, so μ < 2^{64(s+1)}
        let mu = super::scalar::limbs_of(&((BigUint::from(1u32) << (128 * s)) / modulus), s + 1);
        Some(Mulx { n, n0, mu })
    }

    /// Words per residue; `R = 2^{64·width}`.
    pub(super) fn width(&self) -> usize {
        self.n.len()
    }

    /// `out = a·b·R⁻¹ mod N` for `a, b < N`, fully reduced.
    #[inline]
    pub(super) fn mul(&self, a: &[u64], b: &[u64], out: &mut [u64]) {
        let s = self.width();
        assert!(
            a.len() == s && b.len() == s && out.len() == s,
            "operands of {s} limbs"
        );
        self.with_scratch(|t| {
            product(a, b, t);
            self.redc(t, out);
        });
    }

    /// `out = a²·R⁻¹ mod N` for `a < N`, fully reduced.
    #[inline]
    pub(super) fn sqr(&self, a: &[u64], out: &mut [u64]) {
        let s = self.width();
        assert!(a.len() == s && out.len() == s, "operands of {s} limbs");
        self.with_scratch(|t| {
            square(a, t);
            self.redc(t, out);
        });
    }

    /// `out = a·b mod N` for `a, b < N` (ordinary residues, fully reduced): the product and
    /// one Barrett reduction (Menezes, van Oorschot and Vanstone, *Handbook of Applied
    /// Cryptography*, algorithm 14.42), about `2s²` limb products where two Montgomery
    /// products (into and out of the form) cost `4s²`.
    pub(super) fn mul_mod(&self, a: &[u64], b: &[u64], out: &mut [u64]) {
        let s = self.width();
        assert!(
            a.len() == s && b.len() == s && out.len() == s,
            "operands of {s} limbs"
        );
        // T = a·b, then q₁ = ⌊T / 2^{64(s−1)}⌋ (s + 1 limbs), q̂ ≈ ⌊q₁·μ / 2^{64(s+1)}⌋ from
        // the columns ≥ s − 1 of q₁·μ only (the dropped columns make q̂ at most 2 smaller than
        // ⌊T/N⌋, fixed by the subtractions at the end), r = T − q̂·N mod 2^{64(s+1)}.
        let len = 2 * s + (2 * s + 2) + 3 * (s + 1);
        // on the stack up to n² of a 3072-bit n (s = 96), as the Montgomery products
        let mut stack = [0u64; 7 * 96 + 5];
        let mut heap = Vec::new();
        let buf = if len <= stack.len() {
            &mut stack[..len]
        } else {
            heap.resize(len, 0u64);
            &mut heap[..]
        };
        let (t, rest) = buf.split_at_mut(2 * s);
        let (p, rest) = rest.split_at_mut(2 * s + 2);
        let (r, rest) = rest.split_at_mut(s + 1);
        let (n_ext, r2) = rest.split_at_mut(s + 1);
        product(a, b, t);
        let q1 = &t[s - 1..];
        for (i, &qi) in q1.iter().enumerate() {
            // row i adds q1_i·μ_j at column i + j; keep j ≥ s − 1 − i
            let j0 = (s - 1).saturating_sub(i);
            p[i + s + 1] = addmul_row(&mut p[i + j0..i + s + 1], &self.mu[j0..], qi);
        }
        let q = &p[s + 1..];
        // r₂ = q̂·N mod 2^{64(s+1)}: row i keeps columns below s + 1
        n_ext[..s].copy_from_slice(&self.n);
        for (i, &qi) in q.iter().enumerate() {
            addmul_row(&mut r2[i..], &n_ext[..s + 1 - i], qi);
        }
        // r = T mod 2^{64(s+1)} − r₂, wrapping: the true difference is in [0, 3N)
        let mut borrow = false;
        for ((o, &x), &y) in r.iter_mut().zip(&t[..s + 1]).zip(r2.iter()) {
            let (d, b1) = x.overflowing_sub(y);
            let (d, b2) = d.overflowing_sub(borrow as u64);
            *o = d;
            borrow = b1 | b2;
        }
        n_ext[s] = 0;
        while !less_than(r, n_ext) {
            let mut borrow = false;
            for (o, &nj) in r.iter_mut().zip(n_ext.iter()) {
                let (d, b1) = o.overflowing_sub(nj);
                let (d, b2) = d.overflowing_sub(borrow as u64);
                *o = d;
                borrow = b1 | b2;
            }
        }
        out.copy_from_slice(&r[..s]);
    }

    /// Runs `f` on a zeroed buffer of `2s` limbs.
    #[inline]
    fn with_scratch(&self, f: impl FnOnce(&mut [u64])) {
        let len = 2 * self.width();
        // Zeroing costs a store per limb: size the stack buffer to the common key sizes
        // (n² of 1024/2048/3072/4096-bit n).
        if len <= 128 {
            let mut stack = [0u64; 128];
            f(&mut stack[..len]);
        } else if len <= 192 {
            let mut stack = [0u64; 192];
            f(&mut stack[..len]);
        } else if len <= STACK_LIMBS {
            let mut stack = [0u64; STACK_LIMBS];
            f(&mut stack[..len]);
        } else {
            let mut heap = vec![0u64; len];
            f(&mut heap);
        }
    }

    /// `out = t·R⁻¹ mod N` for `t < N·R` (`2s` limbs, overwritten).
    fn redc(&self, t: &mut [u64], out: &mut [u64]) {
        let s = self.width();
        let n = &self.n[..];
        let (t, out) = (&mut t[..2 * s], &mut out[..s]);
        for i in 0..s {
            // m_i makes limb i vanish: t_i + m_i·N_0 ≡ 0 (mod 2⁶⁴).
            let m = t[i].wrapping_mul(self.n0);
            let carry = addmul_row(&mut t[i..i + s], n, m);
            // Limb i is zero now; it keeps the row's carry, which belongs at limb i + s.
            t[i] = carry;
        }
        // t[s..2s] + Σ carry_i·2^{64(i+s)}: the carries form an s-limb number.
        let (carries, high) = t.split_at_mut(s);
        let mut c = false;
        for (o, (&h, &k)) in out.iter_mut().zip(high.iter().zip(carries.iter())) {
            let (x, c1) = h.overflowing_add(k);
            let (x, c2) = x.overflowing_add(c as u64);
            *o = x;
            c = c1 | c2;
        }
        // (t + m·N)/R < (N·R + R·N)/R = 2N: one subtraction at most.
        final_subtract(out, c, n);
    }
}

/// `t = a·b` (`t` has `2s` limbs and is zero on entry).
fn product(a: &[u64], b: &[u64], t: &mut [u64]) {
    let mut scratch = [0u64; SCRATCH_LIMBS];
    product_with(a, b, t, &mut scratch);
}

/// [`product`] with scratch space for the Karatsuba levels (contents irrelevant).
fn product_with(a: &[u64], b: &[u64], t: &mut [u64], scratch: &mut [u64]) {
    let s = a.len();
    if s.is_multiple_of(2) && (KARATSUBA_MIN..=KARATSUBA_MAX).contains(&s) {
        karatsuba(a, b, t, scratch);
    } else {
        schoolbook(a, b, t);
    }
}

/// Limb counts that multiply by Karatsuba, recursively while the halves stay in range (64
/// limbs, `n²` of a 2048-bit `n`: two levels over 16-limb schoolbook products).
const KARATSUBA_MIN: usize = 32;
const KARATSUBA_MAX: usize = 128;
/// Scratch for every Karatsuba level of a `KARATSUBA_MAX`-limb product: `3s + 1` limbs at
/// level `s`, halving (385 + 193 + 97 + …).
const SCRATCH_LIMBS: usize =
    3 * KARATSUBA_MAX + 1 + 3 * KARATSUBA_MAX / 2 + 1 + 3 * KARATSUBA_MAX / 4 + 1 + 64;

/// `t = a·b` row by row (`t` has `2s` limbs and is zero on entry).
fn schoolbook(a: &[u64], b: &[u64], t: &mut [u64]) {
    let s = a.len();
    for (i, &bi) in b.iter().enumerate() {
        // Rows i' < i wrote limbs up to i + s − 1; limb i + s is still zero.
        t[i + s] = addmul_row(&mut t[i..i + s], a, bi);
    }
}

/// `t = a·b` by subtractive Karatsuba (`t` has `2s` limbs, zero on entry; `s` even): with
/// `a = a₀ + a₁B`, `b = b₀ + b₁B`, `B = 2^{64h}`,
/// `a·b = z₀ + (z₀ + z₂ ± |a₀ − a₁|·|b₁ − b₀|)·B + z₂·B²`, three half-size products
/// (`3s²/4` limb products instead of `s²` per level), each by [`product_with`] again.
fn karatsuba(a: &[u64], b: &[u64], t: &mut [u64], scratch: &mut [u64]) {
    let s = a.len();
    let h = s / 2;
    let (a0, a1) = a.split_at(h);
    let (b0, b1) = b.split_at(h);
    let (da, rest) = scratch.split_at_mut(h); // |a₀ − a₁|
    let (db, rest) = rest.split_at_mut(h); // |b₁ − b₀|
    let (d, rest) = rest.split_at_mut(2 * h);
    let (m, deeper) = rest.split_at_mut(2 * h + 1);
    {
        let (lo, hi) = t.split_at_mut(2 * h);
        product_with(a0, b0, lo, deeper); // z₀
        product_with(a1, b1, hi, deeper); // z₂
    }
    let a_neg = abs_diff(a0, a1, da); // a₀ < a₁
    let b_neg = abs_diff(b1, b0, db); // b₁ < b₀
    d.fill(0);
    product_with(da, db, d, deeper);
    // m = z₀ + z₂ ± d; (a₀ − a₁)(b₁ − b₀) is positive when the signs agree
    m[2 * h] = add_into(&mut m[..2 * h], &t[..2 * h], &t[2 * h..]) as u64;
    if a_neg == b_neg {
        let c = add_assign(&mut m[..2 * h], d);
        m[2 * h] += c as u64;
    } else {
        let borrow = sub_assign(&mut m[..2 * h], d);
        m[2 * h] -= borrow as u64; // m = a₀b₁ + a₁b₀ ≥ 0
    }
    add_middle(t, h, m);
}

/// `t += m·2^{64h}` where the sum fits in `t` (`m` has `2h + 1` limbs).
fn add_middle(t: &mut [u64], h: usize, m: &[u64]) {
    let c = add_assign(&mut t[h..3 * h + 1], m);
    let mut carry = c;
    for x in &mut t[3 * h + 1..] {
        if !carry {
            break;
        }
        let (v, o) = x.overflowing_add(1);
        *x = v;
        carry = o;
    }
    debug_assert!(!carry, "the sum fits in t");
}

/// `out = |x − y|`, returning whether `x < y`.
fn abs_diff(x: &[u64], y: &[u64], out: &mut [u64]) -> bool {
    let neg = less_than(x, y);
    let (x, y) = if neg { (y, x) } else { (x, y) };
    let mut borrow = false;
    for ((o, &p), &q) in out.iter_mut().zip(x).zip(y) {
        let (v, b1) = p.overflowing_sub(q);
        let (v, b2) = v.overflowing_sub(borrow as u64);
        *o = v;
        borrow = b1 | b2;
    }
    neg
}

/// `out = x + y` (equal lengths), returning the carry.
fn add_into(out: &mut [u64], x: &[u64], y: &[u64]) -> bool {
    let mut carry = false;
    for ((o, &p), &q) in out.iter_mut().zip(x).zip(y) {
        let (v, c1) = p.overflowing_add(q);
        let (v, c2) = v.overflowing_add(carry as u64);
        *o = v;
        carry = c1 | c2;
    }
    carry
}

/// `x += y` (equal lengths), returning the carry.
fn add_assign(x: &mut [u64], y: &[u64]) -> bool {
    let mut carry = false;
    for (p, &q) in x.iter_mut().zip(y) {
        let (v, c1) = p.overflowing_add(q);
        let (v, c2) = v.overflowing_add(carry as u64);
        *p = v;
        carry = c1 | c2;
    }
    carry
}

/// `x −= y` (equal lengths), returning the borrow.
fn sub_assign(x: &mut [u64], y: &[u64]) -> bool {
    let mut borrow = false;
    for (p, &q) in x.iter_mut().zip(y) {
        let (v, b1) = p.overflowing_sub(q);
        let (v, b2) = v.overflowing_sub(borrow as u64);
        *p = v;
        borrow = b1 | b2;
    }
    borrow
}

/// `t = a²` (`t` has `2s` limbs and is zero on entry). A Karatsuba squaring over these
/// (three half-size squarings from 48 limbs) measured the same at 64 and 96 limbs, so the
/// squaring stays one triangle of cross products.
fn square(a: &[u64], t: &mut [u64]) {
    cross_products(a, t);
    // t = 2·t + Σ a_i²·2^{128i}; the total is a² < 2^{128s}.
    double_add_squares(a, t);
}

/// `t = 2·t + Σ a_i²·2^{128i}` for `t` of `2s` limbs whose sum fits (`t` holds the cross
/// products of `a`): doubling is `adcx t_j, t_j` (the CF chain carries the shifted-out bit),
/// the squares join in the OF chain.
fn double_add_squares(a: &[u64], t: &mut [u64]) {
    let s = a.len();
    assert!(t.len() == 2 * s && s > 0, "2s limbs");
    // SAFETY: BMI2 and ADX as for `addmul_row` (callers hold a `Mulx`). The loop runs s
    // times, reading `a[0..s]` and reading and writing `t[0..2s]` (checked above), two limbs
    // per step; `t` is a unique borrow. No stack use; clobbers are declared.
    unsafe {
        std::arch::asm!(
            "xor r8d, r8d",
            "2:",
            "mov rdx, qword ptr [{a}]",
            "mulx r9, r8, rdx",
            "mov r10, qword ptr [{t}]",
            "mov r11, qword ptr [{t} + 8]",
            "adcx r10, r10",
            "adcx r11, r11",
            "adox r10, r8",
            "adox r11, r9",
            "mov qword ptr [{t}], r10",
            "mov qword ptr [{t} + 8], r11",
            "lea {a}, [{a} + 8]",
            "lea {t}, [{t} + 16]",
            "lea rcx, [rcx - 1]",
            "jrcxz 3f",
            "jmp 2b",
            "3:",
            a = inout(reg) a.as_ptr() => _,
            t = inout(reg) t.as_mut_ptr() => _,
            inout("rcx") s => _,
            out("rdx") _,
            out("r8") _,
            out("r9") _,
            out("r10") _,
            out("r11") _,
            options(nostack),
        );
    }
}

/// `x < y` for equally long little-endian limbs.
fn less_than(x: &[u64], y: &[u64]) -> bool {
    for j in (0..x.len()).rev() {
        if x[j] != y[j] {
            return x[j] < y[j];
        }
    }
    false
}

/// `t = Σ_{i<j} a_i·a_j·2^{64(i+j)}` (`t` has `2s` limbs and is zero on entry).
///
/// Splitting the triangle into half-size triangles and a rectangle (equal-length rows) was
/// measured 8 % slower at 64 limbs than these rows of falling length.
fn cross_products(a: &[u64], t: &mut [u64]) {
    let s = a.len();
    // Row i adds a_i·a_{i+1..s} at limb 2i + 1; its carry lands on limb i + s, which earlier
    // rows (ending at limb i + s − 1) have not touched.
    for i in 0..s.saturating_sub(1) {
        t[i + s] = addmul_row(&mut t[2 * i + 1..i + s], &a[i + 1..], a[i]);
    }
}

/// `out − N` when `top·2^{64s} + out ≥ N`, else `out` unchanged.
pub(super) fn final_subtract(out: &mut [u64], top: bool, n: &[u64]) {
    let mut ge = top;
    if !ge {
        ge = true; // equal counts as ≥
        for j in (0..n.len()).rev() {
            if out[j] != n[j] {
                ge = out[j] > n[j];
                break;
            }
        }
    }
    if ge {
        let mut borrow = false;
        for (o, &nj) in out.iter_mut().zip(n) {
            let (d, b1) = o.overflowing_sub(nj);
            let (d, b2) = d.overflowing_sub(borrow as u64);
            *o = d;
            borrow = b1 | b2;
        }
    }
}

/// `t[0..k] += a[0..k]·b`, returning the limb carried out (the sum is below
/// `2^{64(k+1)}`, so the carry is one limb). `a` must be at least as long as `t`.
#[inline(always)]
fn addmul_row(t: &mut [u64], a: &[u64], b: u64) -> u64 {
    let k = t.len();
    assert!(a.len() >= k, "row of {k} limbs");
    if k == 0 {
        return 0;
    }
    let carry: u64;
    // Per limb j (hi_{−1} = 0):
    //   mulx hi_j, lo_j, a_j      (rdx = b; flags untouched)
    //   adcx lo_j, t_j            (CF chain: the accumulator)
    //   adox lo_j, hi_{j−1}       (OF chain: the previous high word)
    // hi alternates between r8 and r9 so that hi_{j−1} is still live. The loop counts with
    // `lea` and tests with `jrcxz`, which leave CF and OF alone, so both chains run through
    // the whole row. Blocks of four limbs; a row of k limbs runs ⌈k/4⌉ blocks and enters the
    // first one at limb `skip = 4⌈k/4⌉ − k` (one jump, instead of a loop of single limbs
    // whose varying trip count the squaring's rows mispredict), with both pointers moved
    // back by `skip` limbs so that the first limb run reads `a_0` and `t_0`.
    let blocks = k.div_ceil(4);
    let skip = 4 * blocks - k;
    // SAFETY: `Mulx::new` returns a kernel only on processors with BMI2 (mulx) and ADX
    // (adcx, adox), and every caller holds a `Mulx`. The block reads `a[0..k]` (checked above:
    // `a.len() ≥ k`) and reads and writes `t[0..k]`, a unique borrow: the pointers start
    // `skip` limbs early (computed with wrapping arithmetic, never dereferenced there: the
    // entry jump passes over exactly those `skip` limbs) and the loop touches offsets
    // `skip..4⌈k/4⌉`, i.e. limbs `0..k`. No stack use; all clobbered registers are declared.
    unsafe {
        std::arch::asm!(
            "cmp {skip}, 1",
            "je 7f",
            "cmp {skip}, 2",
            "je 8f",
            "cmp {skip}, 3",
            "je 9f",
            // xor clears CF and OF as well as the previous high word
            "xor r8d, r8d",
            "xor r9d, r9d",
            "jmp 20f",
            "7:",
            "xor r8d, r8d",
            "xor r9d, r9d",
            "jmp 21f",
            "8:",
            "xor r8d, r8d",
            "xor r9d, r9d",
            "jmp 22f",
            "9:",
            "xor r8d, r8d",
            "xor r9d, r9d",
            "jmp 23f",
            "2:",
            "20:",
            "mulx r8, r10, qword ptr [{a}]",
            "adcx r10, qword ptr [{t}]",
            "adox r10, r9",
            "mov qword ptr [{t}], r10",
            "21:",
            "mulx r9, r10, qword ptr [{a} + 8]",
            "adcx r10, qword ptr [{t} + 8]",
            "adox r10, r8",
            "mov qword ptr [{t} + 8], r10",
            "22:",
            "mulx r8, r10, qword ptr [{a} + 16]",
            "adcx r10, qword ptr [{t} + 16]",
            "adox r10, r9",
            "mov qword ptr [{t} + 16], r10",
            "23:",
            "mulx r9, r10, qword ptr [{a} + 24]",
            "adcx r10, qword ptr [{t} + 24]",
            "adox r10, r8",
            "mov qword ptr [{t} + 24], r10",
            "lea {a}, [{a} + 32]",
            "lea {t}, [{t} + 32]",
            "lea rcx, [rcx - 1]",
            "jrcxz 3f",
            "jmp 2b",
            "3:",
            // carry = hi_{k−1} + CF + OF (`mov` leaves the flags alone)
            "mov r10d, 0",
            "adcx r9, r10",
            "adox r9, r10",
            a = inout(reg) a.as_ptr().wrapping_sub(skip) => _,
            t = inout(reg) t.as_mut_ptr().wrapping_sub(skip) => _,
            skip = in(reg) skip,
            inout("rcx") blocks => _,
            in("rdx") b,
            out("r8") _,
            out("r9") carry,
            out("r10") _,
            options(nostack),
        );
    }
    carry
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arith::random_bits;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn limbs(x: &BigUint, s: usize) -> Vec<u64> {
        let mut out = vec![0u64; s];
        for (o, d) in out.iter_mut().zip(x.iter_u64_digits()) {
            *o = d;
        }
        out
    }

    #[test]
    fn karatsuba_products_and_squares_match_num_bigint_in_every_sign_case() {
        if !available() {
            eprintln!("MULX kernel not tested: this CPU lacks bmi2 or adx");
            return;
        }
        let mut rng = ChaCha20Rng::seed_from_u64(32);
        for k in [30usize, 32, 34, 48, 63, 64, 96, 128, 130] {
            let h = (k / 2) as u64;
            let ones = (BigUint::from(1u32) << (64 * k)) - 1u32;
            let low_ones = (BigUint::from(1u32) << (64 * h)) - 1u32; // a₀ > a₁ = 0
            let high_ones = &ones - &low_ones; // a₀ = 0 < a₁
            let mut vals = vec![ones, low_ones, high_ones, BigUint::from(1u32)];
            vals.push(random_bits(64 * k as u64, &mut rng));
            vals.push(random_bits(64 * k as u64, &mut rng));
            for x in &vals {
                for y in &vals {
                    let mut t = vec![0u64; 2 * k];
                    product(&limbs(x, k), &limbs(y, k), &mut t);
                    assert_eq!(t, limbs(&(x * y), 2 * k), "product, {k} limbs");
                }
                let mut t = vec![0u64; 2 * k];
                square(&limbs(x, k), &mut t);
                assert_eq!(t, limbs(&(x * x), 2 * k), "square, {k} limbs");
            }
        }
    }

    #[test]
    fn rows_products_and_squares_match_num_bigint() {
        if !available() {
            eprintln!("MULX/ADX kernel not tested: this CPU lacks bmi2 or adx");
            return;
        }
        let mut rng = ChaCha20Rng::seed_from_u64(31);
        for k in 0..=21usize {
            let t0 = random_bits(64 * k as u64, &mut rng);
            let a = random_bits(64 * k as u64, &mut rng);
            let all_ones = (BigUint::from(1u32) << (64 * k)) - 1u32;
            for (t0, a, b) in [
                (t0.clone(), a.clone(), u64::MAX),
                (all_ones.clone(), all_ones.clone(), u64::MAX),
                (t0, a, 0x9e37_79b9_7f4a_7c15),
            ] {
                let mut t = limbs(&t0, k);
                let carry = addmul_row(&mut t, &limbs(&a, k), b);
                let mut got = limbs(&BigUint::ZERO, k + 1);
                got[..k].copy_from_slice(&t);
                got[k] = carry;
                assert_eq!(got, limbs(&(&t0 + &a * b), k + 1), "{k} limbs");
            }
            if k > 0 {
                let x = random_bits(64 * k as u64, &mut rng);
                let y = random_bits(64 * k as u64, &mut rng);
                for x in [x, all_ones.clone()] {
                    let mut t = vec![0u64; 2 * k];
                    product(&limbs(&x, k), &limbs(&y, k), &mut t);
                    assert_eq!(t, limbs(&(&x * &y), 2 * k), "product, {k} limbs");
                    let mut t = vec![0u64; 2 * k];
                    square(&limbs(&x, k), &mut t);
                    assert_eq!(t, limbs(&(&x * &x), 2 * k), "square, {k} limbs");
                }
            }
        }
    }
}
