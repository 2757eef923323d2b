//! What can go wrong with keys and signatures, and whom to blame.

/// Errors from parsing keys and signatures and from verifying signatures.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SignatureError {
    /// The signature does not verify for this key and transcript.
    #[error("signature does not verify")]
    InvalidSignature,
    /// Thirty-two bytes that are not an acceptable ed25519 public key.
    #[error("invalid verifying key: {reason}")]
    InvalidKey {
        /// Why the key was refused.
        reason: &'static str,
    },
    /// A byte string of the wrong length for what it should encode.
    #[error("{what} must be {expected} bytes, got {actual}")]
    InvalidLength {
        /// What was being parsed (`"verifying key"`, `"signature"`, `"signing key"`).
        what: &'static str,
        /// The required length in bytes.
        expected: usize,
        /// The length that was given.
        actual: usize,
    },
    /// A string that is not the hex form of what it should encode.
    #[error("{what} must be {expected_digits} hex digits")]
    InvalidHex {
        /// What was being parsed (`"verifying key"` or `"signature"`).
        what: &'static str,
        /// The required number of hex digits.
        expected_digits: usize,
    },
    /// Batch verification failed; `culprits` are the positions of every bad signature.
    #[error("batch verification failed for items {culprits:?}")]
    BatchFailed {
        /// Indices into the batch, in increasing order.
        culprits: Vec<usize>,
    },
}

/// Decodes exactly `N` bytes from hex digits (either case).
pub(super) fn parse_hex<const N: usize>(
    what: &'static str,
    s: &str,
) -> Result<[u8; N], SignatureError> {
    let mut out = [0u8; N];
    hex::decode_to_slice(s, &mut out).map_err(|_| SignatureError::InvalidHex {
        what,
        expected_digits: 2 * N,
    })?;
    Ok(out)
}

/// Copies exactly `N` bytes out of a slice.
pub(super) fn fixed_bytes<const N: usize>(
    what: &'static str,
    bytes: &[u8],
) -> Result<[u8; N], SignatureError> {
    bytes.try_into().map_err(|_| SignatureError::InvalidLength {
        what,
        expected: N,
        actual: bytes.len(),
    })
}
