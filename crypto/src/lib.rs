//! Cryptography for SPDDL: threshold Paillier with verifiable partial decryption, packed
//! fixed-point encoding of model updates, and ed25519 identities over domain-separated
//! transcripts.
//!
//! The scheme is Damgård–Jurik with `s = 1` and a trusted dealer (`DESIGN.md` §3). Ciphertexts
//! are ordinary Paillier ciphertexts with `g = n + 1`; any `t` of the `ℓ` key-share holders can
//! decrypt together, fewer learn nothing, and every partial decryption carries a proof that
//! names its holder when it is wrong.
//!
//! ```
//! use spddl_crypto::Entropy;
//! use spddl_crypto::paillier::{self, Dealer, Plaintext};
//! # use spddl_crypto::testing::small_test_primes;
//! // Secrets (α, proof nonces, key material) come from the operating system only.
//! let mut rng = Entropy::os();
//! // A real dealer calls `Dealer::generate(2048, &mut rng)`; the doc test uses
//! // checked-in test primes so it runs in milliseconds.
//! let (p, q) = small_test_primes();
//! let (pk, shares) = Dealer::from_safe_primes(p, q)?.deal(2, 3, &mut rng)?;
//!
//! let a = pk.encrypt(&Plaintext::from_u64(&pk, 20)?, &mut rng);
//! let b = pk.encrypt(&Plaintext::from_u64(&pk, 22)?, &mut rng);
//! let sum = pk.add(&a, &b);
//!
//! // Holders 1 and 3 decrypt; their shares carry proofs that the aggregator checks.
//! let context = b"round 7";
//! let ds1 = shares[0].decrypt(&pk, std::slice::from_ref(&sum), context, &mut rng)?;
//! let ds3 = shares[2].decrypt(&pk, std::slice::from_ref(&sum), context, &mut rng)?;
//! let combined = paillier::verify_and_combine(&pk, &[sum], context, &[ds1, ds3])?;
//! assert_eq!(combined.plaintexts[0].to_u64(), Some(42));
//! # Ok::<(), spddl_crypto::Error>(())
//! ```

pub mod arith;
pub mod encoding;
mod entropy;
mod error;
pub mod formats;
pub mod identity;
pub mod mont;
pub mod paillier;
pub mod primes;
pub mod proofs;
#[doc(hidden)]
pub mod testing;

pub use entropy::Entropy;
pub use error::Error;
