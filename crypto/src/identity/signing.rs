//! Ed25519 secret keys. Zeroized on drop, never printed, never serialized implicitly.

use std::fmt;

use ed25519_dalek::Signer;
use zeroize::{ZeroizeOnDrop, Zeroizing};

use super::error::{SignatureError, fixed_bytes};
use super::{Signature, Transcript, VerifyingKey};
use crate::Entropy;

/// An ed25519 secret key (the 32-byte seed of RFC 8032) with its public key.
///
/// The secret is wiped when the key is dropped, `Debug` prints only the public half, and there
/// is no `Serialize`: write [`to_bytes`](Self::to_bytes) to a key file on purpose.
pub struct SigningKey(ed25519_dalek::SigningKey);

// The inner key wipes itself on drop only with ed25519-dalek's `zeroize` feature: refuse to
// compile without it.
const _: fn() = || {
    fn zeroized_on_drop<T: ZeroizeOnDrop>() {}
    zeroized_on_drop::<ed25519_dalek::SigningKey>();
};

impl ZeroizeOnDrop for SigningKey {}

impl SigningKey {
    /// Length of the secret in bytes.
    pub const LENGTH: usize = 32;

    /// Draws a fresh key from the operating system.
    pub fn generate(entropy: &mut Entropy) -> Self {
        Self(ed25519_dalek::SigningKey::generate(entropy))
    }

    /// Rebuilds a key from its 32-byte secret.
    pub fn from_bytes(secret: &[u8; Self::LENGTH]) -> Self {
        Self(ed25519_dalek::SigningKey::from_bytes(secret))
    }

    /// The 32-byte secret, wiped when the returned buffer is dropped.
    pub fn to_bytes(&self) -> Zeroizing<[u8; Self::LENGTH]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public key that checks this key's signatures.
    pub fn verifying_key(&self) -> VerifyingKey {
        // Built from a secret, so never a small-order point; no need to re-check.
        VerifyingKey(self.0.verifying_key())
    }

    /// Signs the transcript's bytes (ed25519 of [`Transcript::as_bytes`]).
    pub fn sign(&self, transcript: &Transcript) -> Signature {
        Signature(self.0.sign(transcript.as_bytes()))
    }
}

impl TryFrom<&[u8]> for SigningKey {
    type Error = SignatureError;

    fn try_from(bytes: &[u8]) -> Result<Self, SignatureError> {
        let secret = Zeroizing::new(fixed_bytes::<{ Self::LENGTH }>("signing key", bytes)?);
        Ok(Self::from_bytes(&secret))
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey(<redacted>, public: {})",
            self.verifying_key()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    // RFC 8032 §7.1, TEST 1.
    const RFC_SECRET: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const RFC_PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";

    fn rfc_key() -> SigningKey {
        SigningKey::try_from(&hex::decode(RFC_SECRET).unwrap()[..]).unwrap()
    }

    #[test]
    fn secret_bytes_are_the_rfc_8032_seed() {
        assert_eq!(rfc_key().verifying_key().to_string(), RFC_PUBLIC);
        assert_eq!(hex::encode(*rfc_key().to_bytes()), RFC_SECRET);
    }

    #[test]
    fn known_answer_signature() {
        // Ed25519 is deterministic. Pinned once (and reproduced with OpenSSL over the bytes of
        // `transcript::tests::layout_matches_the_documented_bytes`) so other implementations
        // can check that they sign the transcript bytes, not its digest.
        let mut t = Transcript::new("upload");
        t.append_u64("round", 7)
            .append_bytes("sender", b"client-3")
            .append_message("payload", b"hello");
        let sig = rfc_key().sign(&t);
        assert_eq!(
            sig.to_string(),
            "276b0a629a07aadbfb854d7651ff1a33c5029a87331f6c42d5ae2d0941fae883\
             e65d8cfa2b104dd3b8e11c98f792f95ed83c9ec6f5d965ffb07aa40c99612402"
        );
        assert_eq!(rfc_key().verifying_key().verify(&t, &sig), Ok(()));
    }

    #[test]
    fn bytes_round_trip() {
        let sk = SigningKey::generate(&mut Entropy::os());
        let again = SigningKey::from_bytes(&sk.to_bytes());
        assert_eq!(again.verifying_key(), sk.verifying_key());
        assert_eq!(*again.to_bytes(), *sk.to_bytes());
        assert_eq!(
            SigningKey::try_from(&[0u8; 31][..]).map(|k| k.verifying_key()),
            Err(SignatureError::InvalidLength {
                what: "signing key",
                expected: 32,
                actual: 31
            })
        );
    }

    #[test]
    fn generated_keys_are_fresh() {
        let mut entropy = Entropy::os();
        let a = SigningKey::generate(&mut entropy);
        let b = SigningKey::generate(&mut entropy);
        assert_ne!(a.verifying_key(), b.verifying_key());
        assert_ne!(a.verifying_key(), rfc_key().verifying_key());
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let sk = rfc_key();
        let secret = sk.to_bytes();
        let shown = format!("{sk:?} {sk:#?}");
        assert_eq!(
            format!("{sk:?}"),
            format!("SigningKey(<redacted>, public: {RFC_PUBLIC})")
        );
        // Neither in hex ("9d61b19d...") nor as `[u8; 32]` prints it ("[157, 97, 177, ...").
        assert!(!shown.to_lowercase().contains(&hex::encode(*secret)[..8]));
        assert!(!shown.contains(&format!("{:?}", *secret)[1..13]));
    }
}
