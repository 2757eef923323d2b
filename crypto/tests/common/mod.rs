//! Helpers shared by the integration tests: an independent textbook Paillier (encryption and
//! standard decryption with the factors, written from the formulas of DESIGN §3 with
//! num-bigint only), an independent combining of partial decryptions, and a threshold
//! decryption through the public API.
//!
//! Each test binary uses only some of these.
#![allow(dead_code)]

use num_bigint::{BigInt, BigUint};
use num_integer::Integer;
use num_traits::{One, Signed, Zero};
use rand::Rng;

use spddl_crypto::Entropy;
use spddl_crypto::paillier::{self, Ciphertext, KeyShare, PublicKey};

/// A uniformly random integer in `[0, bound)`, by rejection sampling over whole bytes.
pub(crate) fn random_below<R: Rng + ?Sized>(bound: &BigUint, rng: &mut R) -> BigUint {
    let bits = bound.bits();
    let mut buf = vec![0u8; bits.div_ceil(8) as usize];
    loop {
        rng.fill_bytes(&mut buf);
        let excess = buf.len() as u64 * 8 - bits;
        buf[0] &= 0xff >> excess;
        let x = BigUint::from_bytes_be(&buf);
        if &x < bound {
            return x;
        }
    }
}

/// A uniformly random unit of `Z*_n`.
pub(crate) fn random_unit<R: Rng + ?Sized>(n: &BigUint, rng: &mut R) -> BigUint {
    loop {
        let r = random_below(n, rng);
        if !r.is_zero() && r.gcd(n).is_one() {
            return r;
        }
    }
}

/// `L(x) = (x − 1) / n`, asserting that `x ≡ 1 (mod n)`.
pub(crate) fn l_function(x: &BigUint, n: &BigUint) -> BigUint {
    let x_minus_1 = x - 1u32;
    assert!(
        (&x_minus_1 % n).is_zero(),
        "L(x) is only defined for x ≡ 1 (mod n)"
    );
    x_minus_1 / n
}

/// Textbook Paillier: `c = (1 + m·n)·r^n mod n²` with `r` uniform in `Z*_n`.
pub(crate) fn textbook_encrypt<R: Rng + ?Sized>(n: &BigUint, m: &BigUint, rng: &mut R) -> BigUint {
    let n2 = n * n;
    let r = random_unit(n, rng);
    let g_m = (BigUint::one() + m * n) % &n2;
    (g_m * r.modpow(n, &n2)) % &n2
}

/// `(1 + m·n)·h_s^α mod n²`, the encryption of DESIGN §3 written out directly.
pub(crate) fn encrypt_with_base(
    n: &BigUint,
    h_s: &BigUint,
    m: &BigUint,
    alpha: &BigUint,
) -> BigUint {
    let n2 = n * n;
    let g_m = (BigUint::one() + m * n) % &n2;
    (g_m * h_s.modpow(alpha, &n2)) % &n2
}

/// Standard Paillier decryption with the factors: `λ = lcm(p − 1, q − 1)`,
/// `μ = L(g^λ mod n²)⁻¹ mod n` with `g = n + 1`, `M = L(c^λ mod n²)·μ mod n`.
pub(crate) fn standard_decrypt(p: &BigUint, q: &BigUint, c: &BigUint) -> BigUint {
    let n = p * q;
    let n2 = &n * &n;
    let lambda = (p - 1u32).lcm(&(q - 1u32));
    let g = &n + 1u32;
    let mu = l_function(&g.modpow(&lambda, &n2), &n)
        .modinv(&n)
        .expect("L(g^λ) is invertible mod n");
    (l_function(&c.modpow(&lambda, &n2), &n) * mu) % &n
}

/// `n!`.
pub(crate) fn factorial(n: u64) -> BigUint {
    (1..=n).fold(BigUint::one(), |acc, k| acc * k)
}

/// Combining of DESIGN §3 written out directly: `μ_i = Δ·Π_{j≠i} j/(j − i)`,
/// `c′ = Π c_i^{2μ_i} mod n²`, `M = L(c′)·(4Δ²)⁻¹ mod n`. `partials` holds `(i, c_i)` for the
/// holders of the set `S`; `holders` is `ℓ`.
pub(crate) fn independent_combine(
    n: &BigUint,
    holders: u64,
    partials: &[(u64, BigUint)],
) -> BigUint {
    let n2 = n * n;
    let delta = factorial(holders);
    let mut c_prime = BigUint::one();
    for (i, c_i) in partials {
        let mut num = BigInt::from(delta.clone());
        let mut den = BigInt::one();
        for (j, _) in partials {
            if j != i {
                num *= BigInt::from(*j);
                den *= BigInt::from(*j) - BigInt::from(*i);
            }
        }
        assert!((&num % &den).is_zero(), "μ_i is an integer");
        let mu = num / den;
        let exponent = mu.magnitude() * 2u32;
        let base = if mu.is_negative() {
            c_i.modinv(&n2).expect("partial decryptions are units")
        } else {
            c_i.clone()
        };
        c_prime = (c_prime * base.modpow(&exponent, &n2)) % &n2;
    }
    let four_delta_sq = &delta * &delta * 4u32;
    let inv = four_delta_sq.modinv(n).expect("4Δ² is invertible mod n");
    (l_function(&c_prime, n) * inv) % n
}

/// Decrypts through the threshold path: each holder in `holders` (0-based positions into
/// `shares`) makes a proven decryption share, and `verify_and_combine` must accept them all.
pub(crate) fn threshold_decrypt(
    pk: &PublicKey,
    shares: &[KeyShare],
    holders: &[usize],
    ciphertexts: &[Ciphertext],
) -> Vec<BigUint> {
    let context = b"spddl integration test";
    let decryption_shares: Vec<_> = holders
        .iter()
        .map(|&h| {
            shares[h]
                .decrypt(pk, ciphertexts, context, &mut Entropy::os())
                .expect("a holder of this key can decrypt")
        })
        .collect();
    let combined = paillier::verify_and_combine(pk, ciphertexts, context, &decryption_shares)
        .expect("honest shares combine");
    assert!(
        combined.rejected.is_empty(),
        "honest shares were rejected: {:?}",
        combined.rejected
    );
    assert_eq!(combined.plaintexts.len(), ciphertexts.len());
    combined
        .plaintexts
        .into_iter()
        .map(|m| m.into_value())
        .collect()
}
