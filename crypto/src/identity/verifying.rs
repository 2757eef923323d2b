//! Ed25519 public keys: a party's identity.

use std::cmp::Ordering;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{SignatureError, fixed_bytes, parse_hex};
use super::{Signature, Transcript};

/// An ed25519 public key. Written as 64 lowercase hex digits in text and serde; parsing
/// accepts either case. Ordered and compared by its bytes.
///
/// Construction refuses bytes that are not a curve point and small-order ("weak") points,
/// under which every signature would be refused anyway.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct VerifyingKey(pub(super) ed25519_dalek::VerifyingKey);

impl VerifyingKey {
    /// Length of the encoding in bytes.
    pub const LENGTH: usize = 32;

    /// Parses a compressed Edwards point.
    pub fn from_bytes(bytes: &[u8; Self::LENGTH]) -> Result<Self, SignatureError> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(bytes).map_err(|_| {
            SignatureError::InvalidKey {
                reason: "not a curve point",
            }
        })?;
        if key.is_weak() {
            return Err(SignatureError::InvalidKey {
                reason: "small-order point",
            });
        }
        Ok(Self(key))
    }

    /// The 32 key bytes.
    pub fn to_bytes(&self) -> [u8; Self::LENGTH] {
        self.0.to_bytes()
    }

    /// The 32 key bytes, borrowed.
    pub fn as_bytes(&self) -> &[u8; Self::LENGTH] {
        self.0.as_bytes()
    }

    /// The first 8 bytes in hex, for logs: short, and easy to find in a file of full keys.
    /// Not collision resistant, so never use it to look a key up.
    pub fn short_id(&self) -> String {
        hex::encode(&self.as_bytes()[..8])
    }

    /// Checks `signature` on `transcript` with strict ed25519 verification (ed25519-dalek's
    /// `verify_strict`): `s` canonical, `R` not of small order, and the cofactorless equation
    /// `[s]B = R + [k]A` with `k = SHA-512(R ‖ A ‖ transcript bytes)`.
    pub fn verify(
        &self,
        transcript: &Transcript,
        signature: &Signature,
    ) -> Result<(), SignatureError> {
        self.0
            .verify_strict(transcript.as_bytes(), &signature.0)
            .map_err(|_| SignatureError::InvalidSignature)
    }
}

impl TryFrom<&[u8]> for VerifyingKey {
    type Error = SignatureError;

    fn try_from(bytes: &[u8]) -> Result<Self, SignatureError> {
        Self::from_bytes(&fixed_bytes("verifying key", bytes)?)
    }
}

impl PartialOrd for VerifyingKey {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for VerifyingKey {
    fn cmp(&self, other: &Self) -> Ordering {
        self.as_bytes().cmp(other.as_bytes())
    }
}

impl fmt::Display for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.as_bytes()))
    }
}

impl fmt::Debug for VerifyingKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "VerifyingKey({self})")
    }
}

impl FromStr for VerifyingKey {
    type Err = SignatureError;

    fn from_str(s: &str) -> Result<Self, SignatureError> {
        Self::from_bytes(&parse_hex("verifying key", s)?)
    }
}

impl Serialize for VerifyingKey {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for VerifyingKey {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::SigningKey;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    /// A reproducible test key: its 32-byte secret from a seeded stream.
    fn key(seed: u64) -> SigningKey {
        SigningKey::from_bytes(&ChaCha20Rng::seed_from_u64(seed).random())
    }

    fn upload(round: u64, sender: &[u8]) -> Transcript {
        let mut t = Transcript::new("upload");
        t.append_u64("round", round)
            .append_bytes("sender", sender)
            .append_message("payload", b"ciphertexts");
        t
    }

    #[test]
    fn sign_then_verify() {
        let sk = key(1);
        let t = upload(7, b"client-3");
        assert_eq!(sk.verifying_key().verify(&t, &sk.sign(&t)), Ok(()));
    }

    #[test]
    fn verification_fails_when_anything_changes() {
        let sk = key(1);
        let vk = sk.verifying_key();
        let t = upload(7, b"client-3");
        let sig = sk.sign(&t);
        let bad = Err(SignatureError::InvalidSignature);

        assert_eq!(
            vk.verify(&upload(7, b"client-4"), &sig),
            bad,
            "changed sender"
        );
        assert_eq!(
            vk.verify(&upload(8, b"client-3"), &sig),
            bad,
            "different round"
        );
        let mut other_kind = Transcript::new("decryption-share");
        other_kind
            .append_u64("round", 7)
            .append_bytes("sender", b"client-3")
            .append_message("payload", b"ciphertexts");
        assert_eq!(vk.verify(&other_kind, &sig), bad, "different kind");
        let mut other_payload = Transcript::new("upload");
        other_payload
            .append_u64("round", 7)
            .append_bytes("sender", b"client-3")
            .append_message("payload", b"ciphertextz");
        assert_eq!(vk.verify(&other_payload, &sig), bad, "changed payload");
        assert_eq!(
            key(2).verifying_key().verify(&t, &sig),
            bad,
            "different key"
        );

        for bit in [0, 7, 255, 256, 300, 511] {
            let mut bytes = sig.to_bytes();
            bytes[bit / 8] ^= 1 << (bit % 8);
            assert_eq!(
                vk.verify(&t, &Signature::from_bytes(&bytes)),
                bad,
                "bit {bit}"
            );
        }
    }

    #[test]
    fn non_canonical_s_is_refused() {
        // s + ℓ is the same scalar mod ℓ, but strict verification refuses the encoding.
        const ELL: [u8; 32] = [
            0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9,
            0xde, 0x14, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
        ];
        let sk = key(1);
        let t = upload(7, b"client-3");
        let mut bytes = sk.sign(&t).to_bytes();
        let mut carry = 0u16;
        for (s, l) in bytes[32..].iter_mut().zip(ELL) {
            let sum = u16::from(*s) + u16::from(l) + carry;
            *s = sum as u8;
            carry = sum >> 8;
        }
        assert_eq!(carry, 0, "s + ℓ < 2^256 since s < ℓ < 2^253");
        assert_eq!(
            sk.verifying_key()
                .verify(&t, &Signature::from_bytes(&bytes)),
            Err(SignatureError::InvalidSignature)
        );
    }

    #[test]
    fn hex_and_serde_round_trip() {
        let vk = key(5).verifying_key();
        let text = vk.to_string();
        assert_eq!(text.len(), 64);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.parse::<VerifyingKey>(), Ok(vk));
        assert_eq!(text.to_uppercase().parse::<VerifyingKey>(), Ok(vk));
        assert_eq!(format!("{vk:?}"), format!("VerifyingKey({text})"));
        assert_eq!(vk.short_id(), text[..16]);
        assert_eq!(VerifyingKey::from_bytes(&vk.to_bytes()), Ok(vk));
        assert_eq!(VerifyingKey::try_from(&vk.as_bytes()[..]), Ok(vk));

        let json = serde_json::to_string(&vk).unwrap();
        assert_eq!(json, format!("\"{text}\""));
        assert_eq!(serde_json::from_str::<VerifyingKey>(&json).unwrap(), vk);
        assert!(serde_json::from_str::<VerifyingKey>("\"abcd\"").is_err());
    }

    #[test]
    fn malformed_keys_are_refused() {
        let bad_hex = Err(SignatureError::InvalidHex {
            what: "verifying key",
            expected_digits: 64,
        });
        let text = key(5).verifying_key().to_string();
        for s in [
            &text[..62],
            &text[..63],
            &format!("{text}ab"),
            " ",
            &text.replacen(|c: char| c.is_ascii_digit(), "x", 1),
        ] {
            assert_eq!(s.parse::<VerifyingKey>(), bad_hex, "{s:?}");
        }
        assert_eq!(
            VerifyingKey::try_from(&[1u8; 33][..]),
            Err(SignatureError::InvalidLength {
                what: "verifying key",
                expected: 32,
                actual: 33
            })
        );
        // y = 2 has no x on the curve: x² = (y² − 1)/(d·y² + 1) is not a square mod p.
        let mut not_a_point = [0u8; 32];
        not_a_point[0] = 2;
        assert_eq!(
            VerifyingKey::from_bytes(&not_a_point),
            Err(SignatureError::InvalidKey {
                reason: "not a curve point"
            })
        );
        // y = 1 is the identity, a small-order point.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            VerifyingKey::from_bytes(&identity),
            Err(SignatureError::InvalidKey {
                reason: "small-order point"
            })
        );
    }

    #[test]
    fn keys_order_by_bytes() {
        let (a, b) = (key(1).verifying_key(), key(2).verifying_key());
        assert_eq!(a.cmp(&b), a.as_bytes().cmp(b.as_bytes()));
    }
}
