//! Threshold Paillier: Damgård–Jurik with `s = 1` and a trusted dealer (`DESIGN.md` §3).
//!
//! - [`Dealer`] generates safe primes and deals a [`PublicKey`] with `ℓ` [`KeyShare`]s, any
//!   `t` of which decrypt.
//! - [`PublicKey`] encrypts with the fixed base `h_s` and adds, scales and re-randomizes
//!   [`Ciphertext`]s.
//! - [`KeyShare::decrypt`] returns a [`DecryptionShare`] for a vector of ciphertexts with one
//!   batched proof of correct partial decryption; [`DecryptionShare::verify`] checks it against
//!   the holder's verification key `v_i` and yields a [`VerifiedShare`]; [`combine`] turns any
//!   `t` verified shares into [`Plaintext`]s. [`verify_and_combine`] does both and names the
//!   holders whose shares were rejected.
//! - Every secret (`α`, proof nonces, the dealer's choices) comes from [`crate::Entropy`];
//!   [`hazmat`] takes a given `α` for known-answer tests.

mod ciphertext;
mod dealer;
mod fixed_base;
pub mod hazmat;
mod keys;
mod threshold;

pub use ciphertext::{Ciphertext, Plaintext};
pub use dealer::Dealer;
pub use keys::{KeyId, KeyShare, PublicKey, ShareIndex};
pub use threshold::{Combined, DecryptionShare, VerifiedShare, combine, verify_and_combine};

/// Smallest modulus `n` accepted, in bits. Below 2048 bits is for tests only.
pub const MIN_MODULUS_BITS: u64 = 1024;
/// Largest modulus `n` accepted, in bits.
pub const MAX_MODULUS_BITS: u64 = 8192;
/// Largest number of share holders `ℓ`. `Δ = ℓ!` grows every partial-decryption exponent
/// by `log₂ ℓ!` bits (about 8,800 bits at this limit).
pub const MAX_HOLDERS: u16 = 1024;
/// Statistical and computational security parameter κ of the proofs, in bits.
pub const KAPPA: u64 = 128;
