//! Plaintexts, ciphertexts, encryption and the homomorphic operations.

use num_bigint::BigUint;
use num_traits::{One, ToPrimitive, Zero};
use rayon::prelude::*;

use super::PublicKey;
use crate::arith::{SecretInt, random_bits, random_unit};
use crate::{Entropy, Error};

/// A plaintext `M ∈ [0, n)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Plaintext(BigUint);

impl Plaintext {
    /// A plaintext, checked to be below `n`.
    pub fn new(pk: &PublicKey, m: BigUint) -> Result<Self, Error> {
        if &m >= pk.n() {
            return Err(Error::PlaintextTooLarge {
                bits: m.bits(),
                modulus_bits: pk.bits(),
            });
        }
        Ok(Plaintext(m))
    }
    /// A small plaintext (always below `n`, which has at least 1024 bits).
    pub fn from_u64(pk: &PublicKey, m: u64) -> Result<Self, Error> {
        Self::new(pk, BigUint::from(m))
    }
    /// The value `M`.
    pub fn value(&self) -> &BigUint {
        &self.0
    }
    /// The value, consuming the plaintext.
    pub fn into_value(self) -> BigUint {
        self.0
    }
    pub(crate) fn from_trusted(m: BigUint) -> Self {
        Plaintext(m)
    }
    /// The value as `u64`, when it fits.
    pub fn to_u64(&self) -> Option<u64> {
        self.0.to_u64()
    }
}

/// A Paillier ciphertext: a unit of `Z*_{n²}`.
///
/// With `g = n + 1`, `c = (1 + M·n)·r^n mod n²`; SPDDL's own ciphertexts take `r^n = h_s^α`.
/// Built only through [`Ciphertext::new`] (which checks `c ∈ [1, n²)` and `gcd(c, n) = 1`) or
/// by the operations of [`PublicKey`], so a `Ciphertext` is always a valid group element.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Ciphertext(BigUint);

impl Ciphertext {
    /// Parses a ciphertext under `pk`, refusing values outside `[1, n²)` or sharing a factor
    /// with `n` (such a value would reveal the factorisation, and is never an encryption).
    pub fn new(pk: &PublicKey, c: BigUint) -> Result<Self, Error> {
        Self::check(pk, &c, None)?;
        Ok(Ciphertext(c))
    }

    /// Parses a vector of ciphertexts; an error names the position of the first bad one.
    pub fn parse_all(pk: &PublicKey, cs: Vec<BigUint>) -> Result<Vec<Self>, Error> {
        cs.into_iter()
            .enumerate()
            .map(|(i, c)| {
                Self::check(pk, &c, Some(i))?;
                Ok(Ciphertext(c))
            })
            .collect()
    }

    fn check(pk: &PublicKey, c: &BigUint, position: Option<usize>) -> Result<(), Error> {
        let reason = if c.is_zero() {
            "zero is not in Z*_{n²}"
        } else if c >= pk.n_squared() {
            "not below n²"
        } else if !num_integer::Integer::gcd(c, pk.n()).is_one() {
            "shares a factor with n"
        } else {
            return Ok(());
        };
        Err(Error::InvalidCiphertext { position, reason })
    }

    /// The value `c`.
    pub fn value(&self) -> &BigUint {
        &self.0
    }

    /// Fixed-width big-endian bytes: always `⌈|n²|/8⌉` bytes under `pk`, so a vector of
    /// ciphertexts has a predictable size on the wire.
    pub fn to_bytes(&self, pk: &PublicKey) -> Vec<u8> {
        let width = pk.n_squared().bits().div_ceil(8) as usize;
        let raw = self.0.to_bytes_be();
        let mut out = vec![0u8; width.saturating_sub(raw.len())];
        out.extend_from_slice(&raw);
        out
    }

    /// Parses [`Self::to_bytes`]: refuses another length and any value outside `Z*_{n²}`.
    pub fn from_bytes(pk: &PublicKey, bytes: &[u8]) -> Result<Self, Error> {
        let width = pk.n_squared().bits().div_ceil(8) as usize;
        if bytes.len() != width {
            return Err(Error::InvalidCiphertext {
                position: None,
                reason: "wrong length for this key's n²",
            });
        }
        Self::new(pk, BigUint::from_bytes_be(bytes))
    }
}

impl PublicKey {
    /// `Enc(M) = (1 + M·n) · h_s^α mod n²` with `α` uniform of `|n|/2` bits (DESIGN §3).
    /// `α` comes from `entropy` (the operating system): a reproducible `α` would let anyone
    /// strip `h_s^α` and read `M`.
    pub fn encrypt(&self, m: &Plaintext, entropy: &mut Entropy) -> Ciphertext {
        let alpha = SecretInt::new(random_bits(self.alpha_bits(), entropy));
        self.encrypt_with_alpha(m, alpha.get())
    }

    /// Encryptions of every plaintext, spread over the rayon thread pool; every `α` from
    /// `entropy`, drawn before the threads start.
    pub fn encrypt_all(&self, ms: &[Plaintext], entropy: &mut Entropy) -> Vec<Ciphertext> {
        let alphas: Vec<SecretInt> = ms
            .iter()
            .map(|_| SecretInt::new(random_bits(self.alpha_bits(), entropy)))
            .collect();
        self.fixed_base(); // build the table once, before the threads want it
        ms.par_iter()
            .zip(alphas.par_iter())
            .map(|(m, alpha)| self.encrypt_with_alpha(m, alpha.get()))
            .collect()
    }

    /// Encryption with given randomness `α` (public as [`super::hazmat::encrypt_with_alpha`]).
    /// An `α` longer than `|n|/2` bits is accepted and takes the slow path.
    pub(crate) fn encrypt_with_alpha(&self, m: &Plaintext, alpha: &BigUint) -> Ciphertext {
        let table = self.fixed_base();
        let r_n = if alpha.bits() <= table.exponent_bits() {
            table.pow(alpha, self.mont())
        } else {
            self.mont().pow_mod(self.h_s(), alpha)
        };
        Ciphertext(self.times_g_pow(m.value(), &r_n))
    }

    /// Textbook Paillier encryption `(1 + M·n)·r^n mod n²` with `r` uniform in `Z*_n`: about
    /// 2× `|n|` bits of exponent instead of `|n|/2`, for comparison and interoperability.
    pub fn encrypt_textbook(&self, m: &Plaintext, entropy: &mut Entropy) -> Ciphertext {
        let r = SecretInt::new(random_unit(self.n(), entropy));
        let r_n = self.mont().pow_mod(r.get(), self.n());
        Ciphertext(self.times_g_pow(m.value(), &r_n))
    }

    /// `g^M · r = (1 + M·n)·r = r + n·(M·r mod n) mod n²`: a product mod `n` instead of mod
    /// `n²`.
    fn times_g_pow(&self, m: &BigUint, r: &BigUint) -> BigUint {
        let n = self.n();
        let c = r + n * ((m * r) % n);
        if &c >= self.n_squared() {
            c - self.n_squared()
        } else {
            c
        }
    }

    /// `Enc(a)·Enc(b) = Enc(a + b)`.
    pub fn add(&self, a: &Ciphertext, b: &Ciphertext) -> Ciphertext {
        Ciphertext(self.mont().mul_mod(&a.0, &b.0))
    }

    /// `Π c_j = Enc(Σ M_j)`. The empty sum is `1`, an encryption of zero.
    pub fn sum<'a, I: IntoIterator<Item = &'a Ciphertext>>(&self, cs: I) -> Ciphertext {
        Ciphertext(self.mont().product(cs.into_iter().map(|c| &c.0)))
    }

    /// Element-wise sum of equally long ciphertext vectors (a fog worker's aggregation).
    /// Takes anything that views as a slice of ciphertexts, so callers holding them inside
    /// other messages need not copy them out.
    pub fn sum_vectors<V: AsRef<[Ciphertext]> + Sync>(
        &self,
        vectors: &[V],
    ) -> Result<Vec<Ciphertext>, Error> {
        let vectors: Vec<&[Ciphertext]> = vectors.iter().map(AsRef::as_ref).collect();
        let Some(first) = vectors.first() else {
            return Ok(Vec::new());
        };
        if let Some(bad) = vectors.iter().position(|v| v.len() != first.len()) {
            return Err(Error::Mismatch(format!(
                "vector {bad} has {} ciphertexts, vector 0 has {}",
                vectors[bad].len(),
                first.len()
            )));
        }
        // Every position multiplies the same number of factors, so the Montgomery correction
        // R^k is computed once; positions run in parallel.
        let fix = self.mont().r_power(vectors.len() as u64);
        Ok((0..first.len())
            .into_par_iter()
            .map(|j| {
                let column: Vec<&BigUint> = vectors.iter().map(|v| &v[j].0).collect();
                Ciphertext(self.mont().product_with(&column, &fix))
            })
            .collect())
    }

    /// `Enc(M)^k = Enc(k·M mod n)`.
    pub fn scalar_mul(&self, c: &Ciphertext, k: &BigUint) -> Ciphertext {
        Ciphertext(self.mont().pow_mod(&c.0, k))
    }

    /// `Enc(−M)`: the inverse of `c` in `Z*_{n²}`.
    pub fn negate(&self, c: &Ciphertext) -> Ciphertext {
        // A `Ciphertext` is a unit by construction, so the inverse exists.
        Ciphertext(c.0.modinv(self.n_squared()).unwrap_or_else(BigUint::one))
    }

    /// The same plaintext under fresh randomness: `c · h_s^α`, `α` from `entropy`.
    pub fn rerandomize(&self, c: &Ciphertext, entropy: &mut Entropy) -> Ciphertext {
        let alpha = SecretInt::new(random_bits(self.alpha_bits(), entropy));
        let r_n = self.fixed_base().pow(alpha.get(), self.mont());
        Ciphertext(self.mont().mul_mod(&c.0, &r_n))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::test_key;

    #[test]
    fn bytes_round_trip_with_fixed_width_and_refuse_bad_input() {
        let (pk, _) = test_key(1024, 1, 1, 3);
        let width = 256; // |n²| = 2048 bits
        let small = Ciphertext::new(&pk, BigUint::from(5u32)).unwrap();
        let bytes = small.to_bytes(&pk);
        assert_eq!(bytes.len(), width);
        assert_eq!(Ciphertext::from_bytes(&pk, &bytes).unwrap(), small);
        assert!(Ciphertext::from_bytes(&pk, &bytes[1..]).is_err());
        assert!(Ciphertext::from_bytes(&pk, &vec![0u8; width]).is_err());
        assert!(Ciphertext::from_bytes(&pk, &vec![0xffu8; width]).is_err());
        let mut n = pk.n().to_bytes_be();
        n.splice(0..0, vec![0u8; width - n.len()]);
        assert!(
            Ciphertext::from_bytes(&pk, &n).is_err(),
            "shares a factor with n"
        );
    }
}
