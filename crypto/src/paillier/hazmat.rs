//! Raw operations with caller-chosen secrets, for known-answer tests and other
//! implementations' vectors only.
//!
//! The safe API draws every secret from [`Entropy`](crate::Entropy). The functions here take
//! the secret itself instead: whoever knows it can undo what it protects — the `α` of
//! [`encrypt_with_alpha`] strips `h_s^α` from the ciphertext and reveals the plaintext. Never
//! call them with a value derived from a seed, a counter or anything another party can
//! reproduce; there is no need to call them outside tests at all.

use num_bigint::BigUint;

use super::{Ciphertext, Plaintext, PublicKey};

/// `(1 + M·n) · h_s^α mod n²` with the given `α` (DESIGN §3), for known-answer vectors. An
/// `α` longer than `|n|/2` bits is accepted and takes the slow path.
pub fn encrypt_with_alpha(pk: &PublicKey, m: &Plaintext, alpha: &BigUint) -> Ciphertext {
    pk.encrypt_with_alpha(m, alpha)
}
