//! Montgomery arithmetic: the kernel under every exponentiation mod `n²`.
//!
//! Montgomery (1985) replaces the division of `a·b mod N` by multiplications and a shift:
//! with `R` a power of two above `N`, `REDC(a·b) = a·b·R⁻¹ mod N`. Values live in *Montgomery
//! form* `x̃ = x·R mod N`, where `REDC(x̃·ỹ)` is the form of `x·y`.
//!
//! Two kernels compute `REDC(a·b)`, chosen once per modulus:
//! - [`KernelKind::Ifma`] (x86-64 with AVX-512 IFMA): 52-bit digits in 512-bit vectors, eight
//!   52×52-bit multiply-adds per instruction, carries deferred to the end (Gueron and Krasnov,
//!   *Software implementation of modular exponentiation using advanced vector instructions
//!   architectures*, WAIFI 2012; Drucker and Gueron, *Fast modular squaring with AVX512IFMA*,
//!   ITNG 2019). Results stay below `2N` ("almost Montgomery multiplication") and are reduced
//!   when they leave the form.
//! - [`KernelKind::Mulx`] (x86-64 with BMI2 and ADX, no IFMA): 64-bit limbs, MULX with two
//!   carry chains in inline assembly, a dedicated squaring and a separate reduction
//!   (`mulx.rs`).
//! - [`KernelKind::Scalar`] everywhere else (aarch64, older x86-64): product scanning over
//!   64-bit limbs in plain Rust.
//!
//! `SPDDL_KERNEL=scalar|mulx|ifma` in the environment forces a kernel (for comparisons), if
//! the processor runs it.
//!
//! Nothing here is constant-time except [`Montgomery::pow_secret`]'s operation sequence,
//! which does not depend on the exponent's bits (its table lookups still do).

use num_bigint::BigUint;
use zeroize::Zeroize;

#[cfg(target_arch = "x86_64")]
mod ifma;
#[cfg(target_arch = "x86_64")]
mod mulx;
mod scalar;

/// Which multiplication kernel a [`Montgomery`] context runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KernelKind {
    /// Portable product scanning over 64-bit limbs (any processor).
    Scalar,
    /// MULX with two carry chains (ADCX/ADOX) over 64-bit limbs and a dedicated squaring
    /// (x86-64 processors with BMI2 and ADX: Intel since Broadwell, AMD since Zen).
    Mulx,
    /// AVX-512 IFMA, 52-bit digits (x86-64 processors that have it).
    Ifma,
}

impl KernelKind {
    /// Every kernel, fastest first.
    pub const ALL: [KernelKind; 3] = [KernelKind::Ifma, KernelKind::Mulx, KernelKind::Scalar];

    /// The kernel [`Montgomery::new`] uses: `SPDDL_KERNEL` (`scalar`, `mulx` or `ifma`) when
    /// set to a kernel this processor runs, else the fastest one it runs.
    pub fn best() -> Self {
        Self::choice().0
    }

    /// [`Self::best`] and why it was chosen, for reports.
    pub fn choice() -> (Self, String) {
        let fastest = Self::ALL
            .into_iter()
            .find(|k| k.available())
            .unwrap_or(KernelKind::Scalar);
        let why = match fastest {
            KernelKind::Ifma => "the processor has avx512ifma (the fastest kernel)",
            KernelKind::Mulx => "the processor has bmi2 and adx but not avx512ifma",
            KernelKind::Scalar => "the processor has neither avx512ifma nor bmi2 and adx",
        };
        match std::env::var("SPDDL_KERNEL") {
            Ok(v) => match Self::ALL.into_iter().find(|k| k.env_name() == v) {
                Some(k) if k.available() => (k, format!("SPDDL_KERNEL={v}")),
                Some(_) => (
                    fastest,
                    format!("SPDDL_KERNEL={v} does not run on this processor; {why}"),
                ),
                None => (
                    fastest,
                    format!("SPDDL_KERNEL={v} is not scalar, mulx or ifma; {why}"),
                ),
            },
            Err(_) => (fastest, why.to_string()),
        }
    }

    /// Whether this processor runs the kernel.
    pub fn available(self) -> bool {
        match self {
            KernelKind::Scalar => true,
            KernelKind::Mulx => Self::mulx_available(),
            KernelKind::Ifma => Self::ifma_available(),
        }
    }

    /// Whether this processor has AVX-512 IFMA.
    pub fn ifma_available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            ifma::available()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// Whether this processor has BMI2 and ADX (MULX, ADCX, ADOX).
    pub fn mulx_available() -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            mulx::available()
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            false
        }
    }

    /// A short name for reports.
    pub fn name(self) -> &'static str {
        match self {
            KernelKind::Scalar => "scalar-64",
            KernelKind::Mulx => "mulx-adx-64",
            KernelKind::Ifma => "avx512-ifma-52",
        }
    }

    /// The value of `SPDDL_KERNEL` that selects the kernel.
    pub fn env_name(self) -> &'static str {
        match self {
            KernelKind::Scalar => "scalar",
            KernelKind::Mulx => "mulx",
            KernelKind::Ifma => "ifma",
        }
    }
}

/// The processor features the kernel choice depends on, each with whether this processor has
/// it (for reports): `avx512f`, `avx512ifma`, `bmi2`, `adx` on x86-64; none elsewhere (every
/// other processor runs the portable kernel).
pub fn cpu_features() -> Vec<(&'static str, bool)> {
    #[cfg(target_arch = "x86_64")]
    {
        vec![
            ("avx512f", std::arch::is_x86_feature_detected!("avx512f")),
            (
                "avx512ifma",
                std::arch::is_x86_feature_detected!("avx512ifma"),
            ),
            ("bmi2", std::arch::is_x86_feature_detected!("bmi2")),
            ("adx", std::arch::is_x86_feature_detected!("adx")),
        ]
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        Vec::new()
    }
}

#[derive(Clone)]
enum Kernel {
    Scalar(scalar::Scalar),
    #[cfg(target_arch = "x86_64")]
    Mulx(mulx::Mulx),
    #[cfg(target_arch = "x86_64")]
    Ifma(ifma::Ifma),
}

impl Kernel {
    fn width(&self) -> usize {
        match self {
            Kernel::Scalar(k) => k.width(),
            #[cfg(target_arch = "x86_64")]
            Kernel::Mulx(k) => k.width(),
            #[cfg(target_arch = "x86_64")]
            Kernel::Ifma(k) => k.width(),
        }
    }
    fn r_bits(&self) -> u64 {
        match self {
            Kernel::Scalar(k) => k.r_bits(),
            #[cfg(target_arch = "x86_64")]
            Kernel::Mulx(k) => 64 * k.width() as u64,
            #[cfg(target_arch = "x86_64")]
            Kernel::Ifma(k) => k.r_bits(),
        }
    }
    fn encode(&self, x: &BigUint) -> Box<[u64]> {
        match self {
            Kernel::Scalar(k) => k.encode(x),
            #[cfg(target_arch = "x86_64")]
            Kernel::Mulx(k) => scalar::limbs_of(x, k.width()),
            #[cfg(target_arch = "x86_64")]
            Kernel::Ifma(k) => k.encode(x),
        }
    }
    /// [`Self::encode`] into `out` (the kernel's width), without allocating on the 64-bit
    /// kernels.
    fn encode_into(&self, x: &BigUint, out: &mut [u64]) {
        match self {
            #[cfg(target_arch = "x86_64")]
            Kernel::Ifma(k) => out.copy_from_slice(&k.encode(x)),
            _ => {
                out.fill(0);
                for (o, d) in out.iter_mut().zip(x.iter_u64_digits()) {
                    *o = d;
                }
            }
        }
    }
    fn decode(&self, words: &[u64]) -> BigUint {
        match self {
            Kernel::Scalar(k) => k.decode(words),
            #[cfg(target_arch = "x86_64")]
            Kernel::Mulx(_) => scalar::from_limbs(words),
            #[cfg(target_arch = "x86_64")]
            Kernel::Ifma(k) => k.decode(words),
        }
    }
    #[inline]
    fn mul(&self, a: &[u64], b: &[u64], out: &mut [u64]) {
        match self {
            Kernel::Scalar(k) => k.mul(a, b, out),
            #[cfg(target_arch = "x86_64")]
            Kernel::Mulx(k) => k.mul(a, b, out),
            #[cfg(target_arch = "x86_64")]
            Kernel::Ifma(k) => k.mul(a, b, out),
        }
    }
    #[inline]
    fn sqr(&self, a: &[u64], out: &mut [u64]) {
        match self {
            Kernel::Scalar(k) => k.mul(a, a, out),
            #[cfg(target_arch = "x86_64")]
            Kernel::Mulx(k) => k.sqr(a, out),
            #[cfg(target_arch = "x86_64")]
            Kernel::Ifma(k) => k.mul(a, a, out),
        }
    }
}

/// Arithmetic modulo one odd modulus `N` in Montgomery form.
#[derive(Clone)]
pub struct Montgomery {
    modulus: BigUint,
    kernel: Kernel,
    kind: KernelKind,
    /// `R² mod N`: multiplying by it enters Montgomery form.
    r2: Box<[u64]>,
    /// `R mod N`: the Montgomery form of 1.
    one: Box<[u64]>,
    /// The plain integer 1: multiplying by it leaves Montgomery form.
    unit: Box<[u64]>,
}

/// A residue in Montgomery form `x·R mod N`, in the kernel's representation (not necessarily
/// fully reduced: compare values after [`Montgomery::from_mont`]).
#[derive(Clone)]
pub struct MontInt(Box<[u64]>);

impl std::fmt::Debug for MontInt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "MontInt({} words)", self.0.len())
    }
}

impl Montgomery {
    /// The context for `modulus` on the best kernel ([`KernelKind::best`]), or `None` unless
    /// the modulus is odd and greater than 1.
    pub fn new(modulus: &BigUint) -> Option<Self> {
        Self::with_kernel(modulus, KernelKind::best())
    }

    /// The context on a chosen kernel; `None` if the modulus is even or 1, or the kernel does
    /// not run on this processor or at this size.
    pub fn with_kernel(modulus: &BigUint, kind: KernelKind) -> Option<Self> {
        if !modulus.bit(0) || modulus.bits() < 2 {
            return None;
        }
        let kernel = match kind {
            KernelKind::Scalar => Kernel::Scalar(scalar::Scalar::new(modulus)),
            #[cfg(target_arch = "x86_64")]
            KernelKind::Mulx => Kernel::Mulx(mulx::Mulx::new(modulus)?),
            #[cfg(target_arch = "x86_64")]
            KernelKind::Ifma => Kernel::Ifma(ifma::Ifma::new(modulus)?),
            #[cfg(not(target_arch = "x86_64"))]
            KernelKind::Ifma | KernelKind::Mulx => return None,
        };
        let r = BigUint::from(1u32) << kernel.r_bits();
        let one = kernel.encode(&(&r % modulus));
        let r2 = kernel.encode(&((&r * &r) % modulus));
        let unit = kernel.encode(&BigUint::from(1u32));
        Some(Montgomery {
            modulus: modulus.clone(),
            kernel,
            kind,
            r2,
            one,
            unit,
        })
    }

    /// The kernel in use.
    pub fn kernel(&self) -> KernelKind {
        self.kind
    }

    /// The modulus `N`.
    pub fn modulus(&self) -> &BigUint {
        &self.modulus
    }

    /// Memory of one residue in bytes.
    pub fn residue_bytes(&self) -> usize {
        self.kernel.width() * 8
    }

    /// `x·R mod N` (reduces `x` first when `x ≥ N`).
    pub fn to_mont(&self, x: &BigUint) -> MontInt {
        let x = self.reduced_limbs(x);
        let mut out = self.zero_limbs();
        self.mul_into(&x, &self.r2, &mut out);
        MontInt(out)
    }

    /// `x` from its Montgomery form, fully reduced.
    pub fn from_mont(&self, x: &MontInt) -> BigUint {
        self.leave(&x.0)
    }

    /// `REDC(words · 1)` as a fully reduced integer.
    fn leave(&self, words: &[u64]) -> BigUint {
        let mut out = self.zero_limbs();
        self.mul_into(words, &self.unit, &mut out);
        self.canonical(&out)
    }

    /// The integer a kernel result stands for, reduced below `N` (results may be in `[N, 2N)`).
    fn canonical(&self, words: &[u64]) -> BigUint {
        let x = self.kernel.decode(words);
        if x >= self.modulus {
            x - &self.modulus
        } else {
            x
        }
    }

    /// The Montgomery form of 1.
    pub fn one(&self) -> MontInt {
        MontInt(self.one.clone())
    }

    /// `x̃·ỹ` in Montgomery form.
    pub fn mul(&self, x: &MontInt, y: &MontInt) -> MontInt {
        let mut out = self.zero_limbs();
        self.mul_into(&x.0, &y.0, &mut out);
        MontInt(out)
    }

    /// `x̃·ỹ` into `out` (a residue of this context), without allocating.
    pub fn mul_to(&self, x: &MontInt, y: &MontInt, out: &mut MontInt) {
        self.mul_into(&x.0, &y.0, &mut out.0);
    }

    /// `x̃²` in Montgomery form.
    pub fn sqr(&self, x: &MontInt) -> MontInt {
        let mut out = self.zero_limbs();
        self.sqr_into(&x.0, &mut out);
        MontInt(out)
    }

    /// `x·y mod N` of ordinary residues: two reductions, `REDC(REDC(x·y)·R²)`.
    pub fn mul_mod(&self, x: &BigUint, y: &BigUint) -> BigUint {
        #[cfg(target_arch = "x86_64")]
        if let Kernel::Mulx(k) = &self.kernel {
            // the product and one Barrett reduction: half the work of two REDCs
            let mut out = self.zero_limbs();
            k.mul_mod(&self.reduced_limbs(x), &self.reduced_limbs(y), &mut out);
            return self.kernel.decode(&out);
        }
        let mut xy = self.zero_limbs();
        self.mul_into(&self.reduced_limbs(x), &self.reduced_limbs(y), &mut xy);
        let mut out = self.zero_limbs();
        self.mul_into(&xy, &self.r2, &mut out);
        self.canonical(&out)
    }

    /// `Π x_j mod N` of ordinary residues (each `< N`), staying in Montgomery arithmetic
    /// throughout: `k` values cost `k` reductions. The empty product is 1.
    pub fn product<'a, I: IntoIterator<Item = &'a BigUint>>(&self, xs: I) -> BigUint {
        let xs: Vec<&BigUint> = xs.into_iter().collect();
        self.product_with(&xs, &self.r_power(xs.len() as u64))
    }

    /// `Π x_j mod N` for a known count `k` of factors, with the correction `R^k` computed
    /// once by the caller ([`Self::r_power`]) so that many products of the same length (a fog
    /// summing ciphertext vectors position by position) share it.
    pub fn product_with(&self, xs: &[&BigUint], fix: &[u64]) -> BigUint {
        let Some((first, rest)) = xs.split_first() else {
            return BigUint::from(1u32);
        };
        // Raw limbs x read as Montgomery forms stand for x·R⁻¹; after k − 1 products the
        // accumulator holds Π x_j · R^{−(k−1)} and one product with R^k mod N corrects it.
        let mut acc = self.reduced_limbs(first);
        let mut tmp = self.zero_limbs();
        let mut factor = self.zero_limbs();
        for &x in rest {
            if x < &self.modulus {
                self.kernel.encode_into(x, &mut factor);
            } else {
                self.kernel.encode_into(&(x % &self.modulus), &mut factor);
            }
            self.mul_into(&acc, &factor, &mut tmp);
            std::mem::swap(&mut acc, &mut tmp);
        }
        self.mul_into(&acc, fix, &mut tmp);
        self.canonical(&tmp)
    }

    /// `R^k mod N` in the kernel's representation, the correction factor of a `k`-fold [`Self::product`].
    pub fn r_power(&self, k: u64) -> Box<[u64]> {
        // The Montgomery form of R is R² mod N; its k-th power is the form of R^k, and one
        // reduction takes it out of the form.
        let r_tilde = MontInt(self.r2.clone());
        let rk = self.pow(&r_tilde, &BigUint::from(k));
        self.kernel.encode(&self.leave(&rk.0))
    }

    /// `x̃^e` for a public exponent: left-to-right sliding windows over odd powers.
    pub fn pow(&self, x: &MontInt, e: &BigUint) -> MontInt {
        let bits = e.bits() as usize;
        if bits == 0 {
            return self.one();
        }
        let digits = e.to_u64_digits();
        let bit = |i: usize| (digits[i / 64] >> (i % 64)) & 1 == 1;
        let w = window_bits(bits);
        let table = self.odd_powers(x, w);
        let mut acc: Option<Box<[u64]>> = None;
        let mut tmp = self.zero_limbs();
        let mut i = bits as isize - 1;
        while i >= 0 {
            if !bit(i as usize) {
                if let Some(a) = acc.as_mut() {
                    self.sqr_into(a, &mut tmp);
                    std::mem::swap(a, &mut tmp);
                }
                i -= 1;
                continue;
            }
            // The longest window [j, i] of at most w bits that ends in a set bit.
            let mut j = (i - w as isize + 1).max(0);
            while !bit(j as usize) {
                j += 1;
            }
            let mut value = 0usize;
            for k in (j..=i).rev() {
                value = (value << 1) | bit(k as usize) as usize;
            }
            let entry = &table[value >> 1];
            acc = Some(match acc.take() {
                None => entry.clone(),
                Some(mut a) => {
                    for _ in j..=i {
                        self.sqr_into(&a, &mut tmp);
                        std::mem::swap(&mut a, &mut tmp);
                    }
                    self.mul_into(&a, entry, &mut tmp);
                    std::mem::swap(&mut a, &mut tmp);
                    a
                }
            });
            i = j - 1;
        }
        MontInt(acc.unwrap_or_else(|| self.one.clone()))
    }

    /// `x̃^e` for a secret exponent: fixed `w`-bit windows, so the sequence of squarings and
    /// multiplications depends only on the exponent's length (every window multiplies, by
    /// `x̃⁰ = 1̃` when its digit is zero). The exponent's digit copy is wiped afterwards.
    pub fn pow_secret(&self, x: &MontInt, e: &SecretExponent) -> MontInt {
        let w = e.window;
        let mut table: Vec<Box<[u64]>> = Vec::with_capacity(1 << w);
        table.push(self.one.clone());
        table.push(x.0.clone());
        let mut tmp = self.zero_limbs();
        for k in 2..(1usize << w) {
            self.mul_into(&table[k - 1], &x.0, &mut tmp);
            table.push(tmp.clone());
        }
        let mut acc = self.one.clone();
        for (pos, &d) in e.digits.iter().rev().enumerate() {
            if pos > 0 {
                for _ in 0..w {
                    self.sqr_into(&acc, &mut tmp);
                    std::mem::swap(&mut acc, &mut tmp);
                }
            }
            self.mul_into(&acc, &table[d as usize], &mut tmp);
            std::mem::swap(&mut acc, &mut tmp);
        }
        MontInt(acc)
    }

    /// `Π x_j^{e_j} mod N` of ordinary residues with public exponents, by Straus's
    /// interleaving (one chain of squarings shared by every base, 4-bit windows): a base
    /// with a κ-bit exponent costs about `κ/4 + 14` multiplications instead of `1.2κ`. Bases
    /// are split into chunks that run on the rayon pool.
    pub fn multi_pow(&self, bases: &[&BigUint], exps: &[BigUint]) -> BigUint {
        use rayon::prelude::*;
        assert_eq!(bases.len(), exps.len(), "one exponent per base");
        const CHUNK: usize = 64;
        let partial: Vec<Box<[u64]>> = bases
            .par_chunks(CHUNK)
            .zip(exps.par_chunks(CHUNK))
            .map(|(b, e)| self.straus(b, e))
            .collect();
        let mut acc = self.one.clone();
        let mut tmp = self.zero_limbs();
        for p in &partial {
            self.mul_into(&acc, p, &mut tmp);
            std::mem::swap(&mut acc, &mut tmp);
        }
        self.from_mont(&MontInt(acc))
    }

    fn straus(&self, bases: &[&BigUint], exps: &[BigUint]) -> Box<[u64]> {
        const W: usize = 4;
        let mut tables: Vec<Vec<Box<[u64]>>> = Vec::with_capacity(bases.len());
        let mut tmp = self.zero_limbs();
        for b in bases {
            let x = self.to_mont(b).0;
            let mut t = Vec::with_capacity((1 << W) - 1);
            t.push(x.clone());
            for k in 1..(1 << W) - 1 {
                self.mul_into(&t[k - 1], &x, &mut tmp);
                t.push(tmp.clone());
            }
            tables.push(t);
        }
        let digits: Vec<Vec<u64>> = exps.iter().map(|e| e.to_u64_digits()).collect();
        let bits = exps.iter().map(|e| e.bits()).max().unwrap_or(0) as usize;
        let windows = bits.div_ceil(W);
        let mut acc = self.one.clone();
        for win in (0..windows).rev() {
            if win + 1 < windows {
                for _ in 0..W {
                    self.sqr_into(&acc, &mut tmp);
                    std::mem::swap(&mut acc, &mut tmp);
                }
            }
            let (word, shift) = (win * W / 64, win * W % 64);
            for (t, d) in tables.iter().zip(&digits) {
                let digit = d.get(word).map_or(0, |w| (w >> shift) & ((1 << W) - 1)) as usize;
                if digit != 0 {
                    self.mul_into(&acc, &t[digit - 1], &mut tmp);
                    std::mem::swap(&mut acc, &mut tmp);
                }
            }
        }
        acc
    }

    /// `x^e mod N` of ordinary residues with a public exponent.
    pub fn pow_mod(&self, x: &BigUint, e: &BigUint) -> BigUint {
        self.from_mont(&self.pow(&self.to_mont(x), e))
    }

    /// `x, x³, x⁵, …, x^{2^w − 1}`.
    fn odd_powers(&self, x: &MontInt, w: usize) -> Vec<Box<[u64]>> {
        let count = 1usize << (w - 1);
        let mut table = Vec::with_capacity(count);
        table.push(x.0.clone());
        if count > 1 {
            let mut x2 = self.zero_limbs();
            self.sqr_into(&x.0, &mut x2);
            let mut tmp = self.zero_limbs();
            for k in 1..count {
                self.mul_into(&table[k - 1], &x2, &mut tmp);
                table.push(tmp.clone());
            }
        }
        table
    }

    fn zero_limbs(&self) -> Box<[u64]> {
        vec![0u64; self.kernel.width()].into_boxed_slice()
    }

    fn reduced_limbs(&self, x: &BigUint) -> Box<[u64]> {
        if x < &self.modulus {
            self.kernel.encode(x)
        } else {
            self.kernel.encode(&(x % &self.modulus))
        }
    }

    /// `out = REDC(a·b)`.
    #[inline]
    pub(crate) fn mul_into(&self, a: &[u64], b: &[u64], out: &mut [u64]) {
        self.kernel.mul(a, b, out);
    }

    /// `out = REDC(a²)`. The MULX kernel squares with each cross product once; on the
    /// portable path a dedicated squaring measured slower than the product kernel (its
    /// shorter, uneven carry chains overlap worse), and the IFMA kernel multiplies.
    #[inline]
    pub(crate) fn sqr_into(&self, a: &[u64], out: &mut [u64]) {
        self.kernel.sqr(a, out);
    }
}

impl MontInt {
    /// The kernel's words (for tables stored flat).
    pub(crate) fn limbs(&self) -> &[u64] {
        &self.0
    }

    /// A residue from kernel words of this context's width.
    pub(crate) fn from_limbs(words: Box<[u64]>) -> Self {
        MontInt(words)
    }

    /// Memory held, in bytes.
    pub fn bytes(&self) -> usize {
        self.0.len() * 8
    }
}

/// A secret exponent cut into fixed windows for [`Montgomery::pow_secret`]; wiped on drop.
pub struct SecretExponent {
    window: usize,
    /// Base-`2^w` digits, least significant first.
    digits: Vec<u8>,
}

impl SecretExponent {
    /// Cuts `e` into windows sized for its length.
    pub fn new(e: &BigUint) -> Self {
        let bits = e.bits() as usize;
        let window = window_bits(bits).min(6);
        let mut words = e.to_u64_digits();
        let count = bits.div_ceil(window).max(1);
        let mut digits = Vec::with_capacity(count);
        for k in 0..count {
            let mut d = 0u8;
            for b in 0..window {
                let i = k * window + b;
                if i < bits && (words[i / 64] >> (i % 64)) & 1 == 1 {
                    d |= 1 << b;
                }
            }
            digits.push(d);
        }
        words.zeroize();
        SecretExponent { window, digits }
    }
}

impl Drop for SecretExponent {
    fn drop(&mut self) {
        self.digits.zeroize();
    }
}

impl std::fmt::Debug for SecretExponent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretExponent(<redacted>)")
    }
}

/// Window width for an exponent of `bits` bits (minimises squarings + multiplications +
/// table entries).
fn window_bits(bits: usize) -> usize {
    match bits {
        0..=24 => 1,
        25..=80 => 3,
        81..=240 => 4,
        241..=672 => 5,
        673..=2400 => 6,
        _ => 7,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::arith::random_bits;
    use num_traits::{One, Zero};
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    /// The context on every kernel this processor runs.
    fn contexts(n: &BigUint) -> Vec<Montgomery> {
        let out: Vec<Montgomery> = KernelKind::ALL
            .into_iter()
            .filter_map(|k| Montgomery::with_kernel(n, k))
            .collect();
        assert_eq!(
            out.len(),
            KernelKind::ALL.iter().filter(|k| k.available()).count(),
            "every kernel the processor runs accepts this modulus"
        );
        if !KernelKind::ifma_available() {
            eprintln!("IFMA kernel not tested: this CPU lacks avx512ifma");
        }
        if !KernelKind::mulx_available() {
            eprintln!("MULX kernel not tested: this CPU lacks bmi2 or adx");
        }
        out
    }

    fn odd_modulus(bits: u64, seed: u64) -> BigUint {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let mut n = random_bits(bits, &mut rng) | BigUint::one();
        n.set_bit(bits - 1, true);
        n
    }

    fn edge_values(n: &BigUint, rng: &mut ChaCha20Rng) -> Vec<BigUint> {
        let bits = n.bits();
        vec![
            BigUint::zero(),
            BigUint::one(),
            BigUint::from(2u32),
            n - 1u32,
            n - 2u32,
            (BigUint::one() << (bits - 1)) - 1u32,
            random_bits(bits - 1, rng),
            random_bits(bits + 8, rng) % n,
        ]
    }

    #[test]
    fn products_and_squares_match_num_bigint_at_every_size() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        // one limb, odd limb counts, the key sizes' n² (1024…8192 bits), and a modulus whose
        // top limb is all ones (final subtraction most likely)
        let mut moduli: Vec<BigUint> = [3u64, 64, 65, 130, 1000, 2048, 4096, 6144, 8192]
            .iter()
            .enumerate()
            .map(|(i, &b)| odd_modulus(b, 10 + i as u64))
            .collect();
        moduli.push((BigUint::one() << 4096u32) - 1u32);
        moduli.push((BigUint::one() << 4095u32) + 1u32);
        for (n, ctx) in moduli
            .iter()
            .flat_map(|n| contexts(n).into_iter().map(move |c| (n, c)))
        {
            let vals = edge_values(n, &mut rng);
            for x in &vals {
                assert_eq!(ctx.from_mont(&ctx.to_mont(x)), x % n);
                let xt = ctx.to_mont(x);
                assert_eq!(
                    ctx.from_mont(&ctx.sqr(&xt)),
                    (x * x) % n,
                    "sqr, {} bits",
                    n.bits()
                );
                for y in &vals {
                    let prod = ctx.from_mont(&ctx.mul(&xt, &ctx.to_mont(y)));
                    assert_eq!(prod, (x * y) % n, "mul, {} bits", n.bits());
                    assert_eq!(ctx.mul_mod(x, y), (x * y) % n);
                }
            }
        }
    }

    #[test]
    fn multi_exponentiation_matches_separate_powers() {
        let mut rng = ChaCha20Rng::seed_from_u64(6);
        let n = odd_modulus(1024, 7);
        for ctx in contexts(&n) {
            for count in [0usize, 1, 2, 65, 130] {
                let bases: Vec<BigUint> = (0..count).map(|_| random_bits(1030, &mut rng)).collect();
                // mixed lengths, including 0 and exponents longer than one window row
                let exps: Vec<BigUint> = (0..count)
                    .map(|j| random_bits([128, 0, 3, 64, 129][j % 5], &mut rng))
                    .collect();
                let expect = bases
                    .iter()
                    .zip(&exps)
                    .fold(BigUint::one(), |a, (b, e)| (a * b.modpow(e, &n)) % &n);
                let refs: Vec<&BigUint> = bases.iter().collect();
                assert_eq!(ctx.multi_pow(&refs, &exps), expect, "{count} bases");
            }
        }
    }

    #[test]
    fn refuses_even_and_trivial_moduli() {
        assert!(Montgomery::new(&BigUint::from(10u32)).is_none());
        assert!(Montgomery::new(&BigUint::one()).is_none());
        assert!(Montgomery::new(&BigUint::zero()).is_none());
    }

    #[test]
    fn powers_match_modpow_for_public_and_secret_exponents() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        for (bits, ebits) in [
            (512u64, 0u64),
            (512, 1),
            (1024, 17),
            (2048, 130),
            (4096, 4100),
        ] {
            let n = odd_modulus(bits, bits + ebits);
            for ctx in contexts(&n) {
                let x = random_bits(bits - 1, &mut rng);
                let mut exps = vec![
                    random_bits(ebits, &mut rng),
                    BigUint::one() << ebits,
                    (BigUint::one() << ebits) - 1u32,
                ];
                exps.push(BigUint::zero());
                for e in &exps {
                    let expect = x.modpow(e, &n);
                    assert_eq!(
                        ctx.pow_mod(&x, e),
                        expect,
                        "{bits}-bit n, {}-bit e",
                        e.bits()
                    );
                    let secret = SecretExponent::new(e);
                    let got = ctx.from_mont(&ctx.pow_secret(&ctx.to_mont(&x), &secret));
                    assert_eq!(got, expect, "secret, {bits}-bit n, {}-bit e", e.bits());
                }
                // base 0 and n − 1
                let e = random_bits(ebits.max(3), &mut rng);
                assert_eq!(
                    ctx.pow_mod(&BigUint::zero(), &e),
                    BigUint::zero().modpow(&e, &n)
                );
                let m1 = &n - 1u32;
                assert_eq!(ctx.pow_mod(&m1, &e), m1.modpow(&e, &n));
            }
        }
    }

    #[test]
    fn products_of_many_factors_match_a_plain_fold() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let n = odd_modulus(2048, 4);
        for ctx in contexts(&n) {
            for k in [0usize, 1, 2, 3, 17] {
                let mut xs: Vec<BigUint> = (0..k).map(|_| random_bits(2047, &mut rng)).collect();
                if k > 2 {
                    xs[1] = &n + 5u32; // not reduced
                }
                let expect = xs.iter().fold(BigUint::one(), |a, x| (a * x) % &n);
                assert_eq!(ctx.product(xs.iter()), expect, "{k} factors");
                let refs: Vec<&BigUint> = xs.iter().collect();
                assert_eq!(ctx.product_with(&refs, &ctx.r_power(k as u64)), expect);
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, rng_seed: proptest::test_runner::RngSeed::Fixed(5), ..ProptestConfig::default() })]
        #[test]
        fn random_products_match(seed in any::<u64>(), limbs in 1u64..20) {
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let n = odd_modulus(limbs * 64 - (seed % 7), seed);
            let x = random_bits(n.bits(), &mut rng) % &n;
            let y = random_bits(n.bits(), &mut rng) % &n;
            for ctx in contexts(&n) {
                prop_assert_eq!(ctx.mul_mod(&x, &y), (&x * &y) % &n);
                let xt = ctx.to_mont(&x);
                prop_assert_eq!(ctx.from_mont(&ctx.sqr(&xt)), (&x * &x) % &n);
            }
        }
    }
}
