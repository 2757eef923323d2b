//! Secret randomness as a type: [`Entropy`] comes from the operating system and from nothing
//! else (DESIGN §3: "α drawn from the OS generator, never a seed").
//!
//! Every public operation that draws a secret — the encryption randomness `α`, the nonce `r`
//! of a decryption proof, the dealer's primes, polynomial and bases, a signing key — takes
//! `&mut Entropy`, never a generic generator. A seeded generator is not an `Entropy` and
//! cannot be made into one: there is no constructor from a seed, from bytes or from another
//! generator, so a caller cannot hand a reproducible stream (a scenario seed, a training
//! stream) to an encryption by mistake. Reproducible streams — training, stochastic
//! rounding, partitioning — stay ordinary seeded generators and are passed separately.
//!
//! ```compile_fail
//! # use rand::SeedableRng;
//! # let (pk, _) = spddl_crypto::testing::test_key(1024, 1, 1, 1);
//! # let m = spddl_crypto::paillier::Plaintext::from_u64(&pk, 1).unwrap();
//! // A seeded generator is refused where entropy is wanted.
//! let mut seeded = rand::rngs::StdRng::seed_from_u64(42);
//! pk.encrypt(&m, &mut seeded);
//! ```
//!
//! Tests that need fixed randomness pass the secret itself to
//! [`paillier::hazmat`](crate::paillier::hazmat), e.g. a known-answer vector's `α`; there is
//! no seeded `Entropy`, not even for tests.

use std::convert::Infallible;
use std::fmt;

use rand::rngs::SysRng;
use rand::{TryCryptoRng, TryRng};

/// Randomness from the operating system's generator (`getrandom`), for secrets.
///
/// Built only by [`Entropy::os`]. Every draw reads the operating system afresh: there is no
/// state to seed, copy, fork or print. `Entropy` implements [`rand::CryptoRng`], so it also
/// serves any function that takes a generator (ed25519 key generation, say).
pub struct Entropy {
    os: SysRng,
}

impl Entropy {
    /// The operating system's generator.
    pub fn os() -> Self {
        Entropy { os: SysRng }
    }
}

impl fmt::Debug for Entropy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Entropy(os)")
    }
}

/// The operating system's generator failing is not something a cryptographic process can
/// recover from: carrying on with weaker randomness would be worse than stopping.
#[cold]
fn os_failed(e: rand::rngs::SysError) -> ! {
    panic!("the operating system's random generator failed: {e}")
}

impl TryRng for Entropy {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok(self.os.try_next_u32().unwrap_or_else(|e| os_failed(e)))
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        Ok(self.os.try_next_u64().unwrap_or_else(|e| os_failed(e)))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        self.os.try_fill_bytes(dst).unwrap_or_else(|e| os_failed(e));
        Ok(())
    }
}

impl TryCryptoRng for Entropy {}

// `Entropy` serves any API that wants a cryptographic generator, and may move between threads.
const _: fn() = || {
    fn crypto_rng<R: rand::CryptoRng + Send + Sync>() {}
    crypto_rng::<Entropy>();
};

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    #[test]
    fn two_draws_differ_and_debug_shows_no_state() {
        let mut e = Entropy::os();
        let (mut a, mut b) = ([0u8; 32], [0u8; 32]);
        e.fill_bytes(&mut a);
        e.fill_bytes(&mut b);
        assert_ne!(
            a, b,
            "two 256-bit draws collide only with probability 2⁻²⁵⁶"
        );
        assert_eq!(format!("{e:?}"), "Entropy(os)");
    }
}
