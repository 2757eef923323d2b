//! Ed25519 signatures over transcripts.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::error::{SignatureError, fixed_bytes, parse_hex};

/// An ed25519 signature (`R ‖ s`, 64 bytes). Written as 128 lowercase hex digits in text and
/// serde; parsing accepts either case.
///
/// Parsing only checks the length; whether `s` is canonical and `R` a valid point is checked
/// when the signature is verified.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Signature(pub(super) ed25519_dalek::Signature);

impl Signature {
    /// Length of the encoding in bytes.
    pub const LENGTH: usize = 64;

    /// Wraps 64 signature bytes.
    pub fn from_bytes(bytes: &[u8; Self::LENGTH]) -> Self {
        Self(ed25519_dalek::Signature::from_bytes(bytes))
    }

    /// The 64 signature bytes.
    pub fn to_bytes(&self) -> [u8; Self::LENGTH] {
        self.0.to_bytes()
    }
}

impl TryFrom<&[u8]> for Signature {
    type Error = SignatureError;

    fn try_from(bytes: &[u8]) -> Result<Self, SignatureError> {
        Ok(Self::from_bytes(&fixed_bytes("signature", bytes)?))
    }
}

impl fmt::Display for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.to_bytes()))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({self})")
    }
}

impl FromStr for Signature {
    type Err = SignatureError;

    fn from_str(s: &str) -> Result<Self, SignatureError> {
        Ok(Self::from_bytes(&parse_hex("signature", s)?))
    }
}

impl Serialize for Signature {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Signature {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer)?
            .parse()
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Signature {
        Signature::from_bytes(&std::array::from_fn(|i| i as u8 * 3))
    }

    #[test]
    fn hex_round_trip_is_lowercase() {
        let text = sample().to_string();
        assert_eq!(text.len(), 128);
        assert_eq!(text, text.to_lowercase());
        assert_eq!(text.parse::<Signature>().unwrap(), sample());
        assert_eq!(text.to_uppercase().parse::<Signature>().unwrap(), sample());
        assert_eq!(format!("{:?}", sample()), format!("Signature({text})"));
    }

    #[test]
    fn serde_uses_the_hex_string() {
        let json = serde_json::to_string(&sample()).unwrap();
        assert_eq!(json, format!("\"{}\"", sample()));
        assert_eq!(serde_json::from_str::<Signature>(&json).unwrap(), sample());
        assert!(serde_json::from_str::<Signature>("\"00\"").is_err());
        assert!(serde_json::from_str::<Signature>("[0, 1]").is_err());
    }

    #[test]
    fn malformed_hex_and_lengths_are_refused() {
        let bad_hex = SignatureError::InvalidHex {
            what: "signature",
            expected_digits: 128,
        };
        let text = sample().to_string();
        for s in [
            &text[..126],
            &text[..127],
            &format!("{text}00"),
            "",
            &text.replacen('0', "g", 1),
        ] {
            assert_eq!(s.parse::<Signature>(), Err(bad_hex.clone()), "{s:?}");
        }
        assert_eq!(
            Signature::try_from(&[0u8; 63][..]),
            Err(SignatureError::InvalidLength {
                what: "signature",
                expected: 64,
                actual: 63
            })
        );
        assert_eq!(Signature::try_from(&sample().to_bytes()[..]), Ok(sample()));
    }
}
