//! Big-integer helpers shared by the scheme: uniform sampling, inverses, hashing to integers.

use num_bigint::{BigInt, BigUint, Sign};
use num_integer::Integer;
use num_traits::{One, Zero};
use rand::Rng;
use sha2::{Digest, Sha256};

/// A uniformly random integer with at most `bits` bits, i.e. in `[0, 2^bits)`.
pub fn random_bits<R: Rng + ?Sized>(bits: u64, rng: &mut R) -> BigUint {
    let bytes = bits.div_ceil(8) as usize;
    let mut buf = vec![0u8; bytes];
    rng.fill_bytes(&mut buf);
    let excess = (bytes as u64) * 8 - bits;
    if excess > 0 {
        // Big-endian: the first byte holds the most significant bits.
        buf[0] &= 0xff >> excess;
    }
    BigUint::from_bytes_be(&buf)
}

/// A uniformly random integer in `[0, bound)` by rejection sampling. `bound` must be positive.
pub fn random_below<R: Rng + ?Sized>(bound: &BigUint, rng: &mut R) -> BigUint {
    debug_assert!(!bound.is_zero());
    let bits = bound.bits();
    loop {
        let x = random_bits(bits, rng);
        if &x < bound {
            return x;
        }
    }
}

/// A uniformly random unit of `Z*_m`: in `[1, m)` and coprime with `m`.
pub fn random_unit<R: Rng + ?Sized>(m: &BigUint, rng: &mut R) -> BigUint {
    loop {
        let x = random_below(m, rng);
        if !x.is_zero() && x.gcd(m).is_one() {
            return x;
        }
    }
}

/// `a⁻¹ mod m`, or `None` when `gcd(a, m) ≠ 1`.
pub fn mod_inverse(a: &BigUint, m: &BigUint) -> Option<BigUint> {
    a.modinv(m)
}

/// `base^exp mod m` for a signed exponent; a negative exponent inverts the base first.
/// Returns `None` when the exponent is negative and `base` is not invertible mod `m`.
pub fn pow_signed(base: &BigUint, exp: &BigInt, m: &BigUint) -> Option<BigUint> {
    match exp.sign() {
        Sign::Minus => Some(mod_inverse(base, m)?.modpow(exp.magnitude(), m)),
        _ => Some(base.modpow(exp.magnitude(), m)),
    }
}

/// `n!` as a big integer.
pub fn factorial(n: u64) -> BigUint {
    (1..=n).fold(BigUint::one(), |acc, k| acc * k)
}

/// A SHA-256 based hash of length-prefixed parts, expanded to `bits` bits (counter mode).
///
/// Each part is written as its 8-byte big-endian length followed by its bytes, after a
/// length-prefixed domain tag, so different part sequences never hash the same input.
pub fn hash_to_bits(domain: &[u8], parts: &[&[u8]], bits: u64) -> BigUint {
    let mut seed = Sha256::new();
    absorb(&mut seed, domain);
    for part in parts {
        absorb(&mut seed, part);
    }
    let seed = seed.finalize();
    let mut out = Vec::with_capacity(bits.div_ceil(8) as usize + 32);
    let mut counter: u32 = 0;
    while (out.len() as u64) * 8 < bits {
        let mut h = Sha256::new();
        h.update(seed);
        h.update(counter.to_be_bytes());
        out.extend_from_slice(&h.finalize());
        counter += 1;
    }
    BigUint::from_bytes_be(&out) >> ((out.len() as u64) * 8 - bits)
}

/// Writes one length-prefixed part into a hash.
pub(crate) fn absorb(h: &mut Sha256, part: &[u8]) {
    h.update((part.len() as u64).to_be_bytes());
    h.update(part);
}

/// Lower-case hexadecimal of a big integer, without prefix (`"0"` for zero).
pub fn to_hex(x: &BigUint) -> String {
    x.to_str_radix(16)
}

/// Parses lower- or upper-case hexadecimal (an optional `0x` prefix is accepted).
pub fn from_hex(s: &str) -> Option<BigUint> {
    let s = s.strip_prefix("0x").unwrap_or(s);
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    BigUint::parse_bytes(s.as_bytes(), 16)
}

/// A secret big integer (a key share, a prime, a proof witness) that is wiped on drop and
/// never printed.
///
/// The wipe clears the integer's own buffer from the lowest bit up, so its storage is zero
/// before num-bigint shrinks or frees it. Temporaries inside num-bigint's arithmetic are not
/// covered: this is best effort, as with any general-purpose big-integer library.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretInt(BigUint);

impl SecretInt {
    /// Wraps a secret value.
    pub fn new(x: BigUint) -> Self {
        SecretInt(x)
    }
    /// The secret value.
    pub fn get(&self) -> &BigUint {
        &self.0
    }
}

impl zeroize::Zeroize for SecretInt {
    fn zeroize(&mut self) {
        for bit in 0..self.0.bits() {
            self.0.set_bit(bit, false);
        }
    }
}

impl Drop for SecretInt {
    fn drop(&mut self) {
        zeroize::Zeroize::zeroize(self);
    }
}

impl zeroize::ZeroizeOnDrop for SecretInt {}

impl std::fmt::Debug for SecretInt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretInt(<redacted>)")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn random_bits_stays_in_range_and_fills_top_bit_sometimes() {
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let mut top = 0;
        for _ in 0..200 {
            let x = random_bits(13, &mut rng);
            assert!(x.bits() <= 13);
            if x.bits() == 13 {
                top += 1;
            }
        }
        // About half of the draws have bit 12 set.
        assert!((60..140).contains(&top), "{top}");
    }

    #[test]
    fn random_below_is_below() {
        let mut rng = ChaCha20Rng::seed_from_u64(2);
        let bound = BigUint::from(1000u32);
        assert!((0..500).all(|_| random_below(&bound, &mut rng) < bound));
    }

    #[test]
    fn pow_signed_inverts() {
        let m = BigUint::from(101u32);
        let b = BigUint::from(7u32);
        let x = pow_signed(&b, &BigInt::from(-3), &m).unwrap();
        assert_eq!(
            (x * b.modpow(&BigUint::from(3u32), &m)) % &m,
            BigUint::one()
        );
    }

    #[test]
    fn hash_to_bits_is_domain_separated_and_sized() {
        let a = hash_to_bits(b"d1", &[b"ab", b"c"], 128);
        let b = hash_to_bits(b"d1", &[b"a", b"bc"], 128);
        let c = hash_to_bits(b"d2", &[b"ab", b"c"], 128);
        assert_ne!(a, b);
        assert_ne!(a, c);
        assert!(a.bits() <= 128);
        assert!(hash_to_bits(b"d", &[], 600).bits() <= 600);
    }

    #[test]
    fn hex_round_trip_and_rejects_garbage() {
        let x = BigUint::parse_bytes(b"123456789abcdef0123456789", 16).unwrap();
        assert_eq!(from_hex(&to_hex(&x)), Some(x));
        assert_eq!(from_hex("0xff"), Some(BigUint::from(255u32)));
        assert_eq!(from_hex(""), None);
        assert_eq!(from_hex("12g4"), None);
        assert_eq!(from_hex("-12"), None);
    }

    #[test]
    fn secret_int_wipes_and_redacts() {
        use zeroize::Zeroize;
        let mut s =
            SecretInt::new(BigUint::parse_bytes(b"deadbeefcafebabe1234567890", 16).unwrap());
        assert_eq!(format!("{s:?}"), "SecretInt(<redacted>)");
        s.zeroize();
        assert!(s.get().is_zero());
    }

    #[test]
    fn factorial_small() {
        assert_eq!(factorial(0), BigUint::one());
        assert_eq!(factorial(5), BigUint::from(120u32));
    }
}
