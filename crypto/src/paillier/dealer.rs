//! The trusted dealer (DESIGN §3, "Key generation").

use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::One;
use rand::Rng;

use super::keys::{KeyShare, PublicKey, ShareIndex};
use super::{MAX_HOLDERS, MAX_MODULUS_BITS, MIN_MODULUS_BITS};
use crate::arith::{SecretInt, factorial, random_below, random_unit};
use crate::primes::{generate_safe_primes, is_safe_prime};
use crate::{Entropy, Error};

/// The dealer's secret: two safe primes `p = 2p′ + 1`, `q = 2q′ + 1`.
///
/// Wiped on drop, never printed. Deal the key shares, then drop the dealer: nothing else ever
/// needs `p`, `q`, `m` or `d`.
pub struct Dealer {
    p: SecretInt,
    q: SecretInt,
}

impl std::fmt::Debug for Dealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Dealer(<redacted>)")
    }
}

impl Dealer {
    /// Searches two safe primes of `modulus_bits / 2` bits each, on every core.
    ///
    /// `modulus_bits` must be even and in `1024..=8192`; 1024 is for tests only.
    pub fn generate(modulus_bits: u64, entropy: &mut Entropy) -> Result<Self, Error> {
        if !(MIN_MODULUS_BITS..=MAX_MODULUS_BITS).contains(&modulus_bits)
            || !modulus_bits.is_multiple_of(2)
        {
            return Err(Error::InvalidParameters(format!(
                "modulus size {modulus_bits} bits: expected an even number in \
                 {MIN_MODULUS_BITS}..={MAX_MODULUS_BITS}"
            )));
        }
        let mut primes = generate_safe_primes(modulus_bits / 2, 2, entropy);
        match (primes.pop(), primes.pop()) {
            (Some(p), Some(q)) => Ok(Dealer {
                p: SecretInt::new(p),
                q: SecretInt::new(q),
            }),
            _ => Err(Error::InvalidParameters(
                "safe-prime search ended without two primes".into(),
            )),
        }
    }

    /// A dealer from known safe primes (checked-in test keys, or primes from elsewhere).
    /// Checks that both are safe primes, distinct, and give a modulus of supported size.
    pub fn from_safe_primes(p: BigUint, q: BigUint) -> Result<Self, Error> {
        // Unpredictable Miller–Rabin bases: the primes may come from elsewhere.
        let mut rng = Entropy::os();
        let bits = (&p * &q).bits();
        let bad = |what: String| Err(Error::InvalidParameters(what));
        if p == q {
            return bad("p and q are equal".into());
        }
        if !(MIN_MODULUS_BITS..=MAX_MODULUS_BITS).contains(&bits) {
            return bad(format!("modulus p·q has {bits} bits"));
        }
        for (name, x) in [("p", &p), ("q", &q)] {
            if !is_safe_prime(x, &mut rng) {
                return bad(format!("{name} is not a safe prime"));
            }
        }
        Ok(Dealer {
            p: SecretInt::new(p),
            q: SecretInt::new(q),
        })
    }

    /// The modulus `n = p·q`.
    pub fn modulus(&self) -> BigUint {
        self.p.get() * self.q.get()
    }

    /// Checks `1 ≤ t ≤ ℓ ≤` [`MAX_HOLDERS`], so a caller can refuse bad parameters before
    /// spending seconds on [`Dealer::generate`].
    pub fn check_threshold(threshold: u16, holders: u16) -> Result<(), Error> {
        if holders == 0 || holders > MAX_HOLDERS || threshold == 0 || threshold > holders {
            return Err(Error::InvalidParameters(format!(
                "threshold {threshold} of {holders} holders: need 1 ≤ t ≤ ℓ ≤ {MAX_HOLDERS}"
            )));
        }
        Ok(())
    }

    /// Deals a key with threshold `t` among `ℓ` holders: the public key and shares `s_1..s_ℓ`.
    /// The polynomial's coefficients and the bases `v` and `x` come from `entropy`.
    pub fn deal(
        &self,
        threshold: u16,
        holders: u16,
        entropy: &mut Entropy,
    ) -> Result<(PublicKey, Vec<KeyShare>), Error> {
        self.deal_from(threshold, holders, entropy)
    }

    /// [`Self::deal`] from any generator, for [`crate::testing::test_key`] only: its primes
    /// are public, so a seed there costs nothing that was not already lost.
    pub(crate) fn deal_from<R: Rng + ?Sized>(
        &self,
        threshold: u16,
        holders: u16,
        rng: &mut R,
    ) -> Result<(PublicKey, Vec<KeyShare>), Error> {
        Self::check_threshold(threshold, holders)?;
        let (p, q) = (self.p.get(), self.q.get());
        let n = p * q;
        let n_squared = &n * &n;
        // Step 1: m = p′q′.
        let m = SecretInt::new((p >> 1u32) * (q >> 1u32));
        // Step 2: d ≡ 0 (mod m), d ≡ 1 (mod n): d = m·(m⁻¹ mod n).
        let Some(m_inv) = m.get().modinv(&n) else {
            return Err(Error::InvalidParameters("gcd(m, n) ≠ 1".into()));
        };
        let d = SecretInt::new(m.get() * SecretInt::new(m_inv).get());
        // Step 3: f(X) = d + a_1 X + … + a_{t−1} X^{t−1}, a_j uniform in [0, nm).
        let nm = SecretInt::new(&n * m.get());
        let mut coefficients = vec![d];
        for _ in 1..threshold {
            coefficients.push(SecretInt::new(random_below(nm.get(), rng)));
        }
        let shares: Vec<SecretInt> = (1..=u64::from(holders))
            .map(|i| {
                // Horner's rule, reducing mod nm at every step.
                let mut acc = BigUint::ZERO;
                for a in coefficients.iter().rev() {
                    acc = (acc * i + a.get()) % nm.get();
                }
                SecretInt::new(acc)
            })
            .collect();
        // Step 4: v a random square in Z*_{n²}; v_i = v^{Δ·s_i}.
        let delta = factorial(u64::from(holders));
        let r = random_unit(&n_squared, rng);
        let v = (&r * &r) % &n_squared;
        let verification_keys: Vec<BigUint> = shares
            .iter()
            .map(|s| v.modpow(SecretInt::new(&delta * s.get()).get(), &n_squared))
            .collect();
        // Step 5: h = −x² mod n for x random in Z*_n; h_s = h^n mod n².
        let x = random_unit(&n, rng);
        let h = &n - (&x * &x) % &n;
        let h_s = h.modpow(&n, &n_squared);
        debug_assert!(h_s.gcd(&n).is_one());
        // Step 6: publish n, h_s, v, v_i, t, ℓ.
        let pk = PublicKey::new(n, h_s, v, verification_keys, threshold)?;
        let key_shares = shares
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let index = ShareIndex::new(i as u64 + 1, holders)?;
                Ok(KeyShare::from_dealer(&pk, index, s))
            })
            .collect::<Result<Vec<_>, Error>>()?;
        Ok((pk, key_shares))
    }

    /// Plain (non-threshold) Paillier decryption with the factorisation, as any standard
    /// implementation does it: `M = L(c^λ mod n²)·λ⁻¹ mod n` with `λ = lcm(p − 1, q − 1)`.
    /// For tests that check SPDDL's ciphertexts are ordinary Paillier ciphertexts.
    pub fn decrypt_with_factors(&self, c: &super::Ciphertext) -> BigUint {
        let (p, q) = (self.p.get(), self.q.get());
        let n = p * q;
        let n_squared = &n * &n;
        let lambda = SecretInt::new((p - 1u32).lcm(&(q - 1u32)));
        let u = c.value().modpow(lambda.get(), &n_squared);
        let l = (u - 1u32) / &n;
        // λ is invertible mod n because gcd(n, φ(n)) = 1 for primes of equal size.
        let lambda_inv = lambda.get().modinv(&n).unwrap_or_else(BigUint::one);
        (l * lambda_inv) % n
    }
}
