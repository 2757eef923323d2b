//! The crate's error type. Variants carry the data that says what was wrong and whom to blame.

use crate::paillier::ShareIndex;

/// Everything that can go wrong in threshold Paillier, its proofs and its file formats.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Key-generation parameters are out of range (modulus size, threshold, holder count).
    #[error("invalid parameters: {0}")]
    InvalidParameters(String),
    /// A public key whose parts do not fit together.
    #[error("invalid public key: {0}")]
    InvalidPublicKey(String),
    /// A key share that is malformed or does not belong to the public key.
    #[error("invalid key share {index}: {reason}")]
    InvalidKeyShare {
        /// The share's index as it was given.
        index: u64,
        /// What is wrong with it.
        reason: String,
    },
    /// A share index outside `1..=ℓ`.
    #[error("share index {index} is outside 1..={holders}")]
    ShareIndexOutOfRange {
        /// The index given.
        index: u64,
        /// `ℓ`, the number of holders.
        holders: u16,
    },
    /// A ciphertext outside `[1, n²)` or not coprime with `n`.
    #[error("invalid ciphertext{}: {reason}", position_suffix(.position))]
    InvalidCiphertext {
        /// Its position in the vector it came in, when known.
        position: Option<usize>,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// A plaintext outside `[0, n)`.
    #[error("plaintext of {bits} bits is not below the {modulus_bits}-bit modulus n")]
    PlaintextTooLarge {
        /// Bit length of the value that was given.
        bits: u64,
        /// Bit length of `n`.
        modulus_bits: u64,
    },
    /// A decryption share whose proof of correct partial decryption does not verify.
    #[error("decryption share from holder {holder} failed verification: {reason}")]
    InvalidDecryptionShare {
        /// The holder who sent it.
        holder: ShareIndex,
        /// Why it was rejected.
        reason: &'static str,
    },
    /// Fewer valid decryption shares than the threshold `t`.
    #[error(
        "not enough valid decryption shares: {} of threshold {threshold}{}{}",
        .valid.len(),
        holders_suffix(.valid),
        culprits_suffix(.culprits)
    )]
    NotEnoughShares {
        /// The holders whose valid shares were available, in increasing order.
        valid: Vec<ShareIndex>,
        /// The threshold `t`.
        threshold: u16,
        /// Holders whose shares were rejected.
        culprits: Vec<ShareIndex>,
    },
    /// Two decryption shares from the same holder.
    #[error("two decryption shares from holder {holder}")]
    DuplicateShare {
        /// The holder who appears twice.
        holder: ShareIndex,
    },
    /// Shares or ciphertexts that belong to different keys, inputs or lengths.
    #[error("mismatch: {0}")]
    Mismatch(String),
    /// Quantization or packing refused its input (see [`crate::encoding::EncodingError`]).
    #[error(transparent)]
    Encoding(#[from] crate::encoding::EncodingError),
    /// A signature or identity key was refused (see [`crate::identity::SignatureError`]).
    #[error(transparent)]
    Signature(#[from] crate::identity::SignatureError),
    /// A file or encoded value that cannot be parsed.
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// Why it failed.
        reason: String,
    },
}

fn position_suffix(position: &Option<usize>) -> String {
    position
        .map(|p| format!(" at position {p}"))
        .unwrap_or_default()
}

fn holders_suffix(valid: &[ShareIndex]) -> String {
    if valid.is_empty() {
        return String::new();
    }
    let names: Vec<String> = valid.iter().map(|c| c.to_string()).collect();
    format!(" (from holders {})", names.join(", "))
}

fn culprits_suffix(culprits: &[ShareIndex]) -> String {
    if culprits.is_empty() {
        return String::new();
    }
    let names: Vec<String> = culprits.iter().map(|c| c.to_string()).collect();
    format!("; rejected holders: {}", names.join(", "))
}
