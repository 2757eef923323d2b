//! The bytes a party signs: domain-separated, versioned and unambiguous (`DESIGN.md` §5).

use std::fmt;

use sha2::{Digest, Sha256};

/// The first bytes of every transcript: the protocol name and the version of this layout.
pub const DOMAIN_TAG: &[u8; 8] = b"spddl/v1";

const TAG_U64: u8 = 0x01;
const TAG_BYTES: u8 = 0x02;
const TAG_MESSAGE: u8 = 0x03;

/// Domain-separated bytes to sign, built from a message kind and typed, labelled fields.
///
/// Parties sign transcripts, never raw protobuf bytes (which are not canonical). The `proto`
/// crate appends the round id, the sender id and a hash of the payload; labels and the kind are
/// `&'static str` so they are protocol constants, never attacker input.
///
/// # Byte layout
///
/// Every integer is an unsigned 64-bit big-endian number, written `u64(x)`;
/// `lp(x) = u64(len(x)) ‖ x` is a length-prefixed byte string.
///
/// ```text
/// transcript = "spddl/v1" ‖ lp(kind) ‖ field*
/// field      = 0x01 ‖ lp(label) ‖ u64(value)           append_u64
///            | 0x02 ‖ lp(label) ‖ lp(bytes)            append_bytes
///            | 0x03 ‖ lp(label) ‖ SHA-256(payload)     append_message (32 bytes)
/// digest     = SHA-256(transcript)
/// ```
///
/// Strings are their UTF-8 bytes. Ed25519 signs the whole [`as_bytes`](Self::as_bytes), not
/// the digest. The encoding is injective: the fixed tag, the length prefixes and the one-byte
/// field tags let the bytes be parsed back into exactly one `(kind, fields)` sequence
/// (`append_message` up to SHA-256 collisions).
#[derive(Clone, PartialEq, Eq)]
pub struct Transcript {
    bytes: Vec<u8>,
}

impl Transcript {
    /// Starts a transcript for one message kind, e.g. `"upload"` or `"decryption-share"`.
    pub fn new(kind: &'static str) -> Self {
        let mut bytes = DOMAIN_TAG.to_vec();
        put_prefixed(&mut bytes, kind.as_bytes());
        Self { bytes }
    }

    /// Appends an integer field, such as a round id.
    pub fn append_u64(&mut self, label: &'static str, value: u64) -> &mut Self {
        self.put_header(TAG_U64, label);
        self.bytes.extend_from_slice(&value.to_be_bytes());
        self
    }

    /// Appends a short byte-string field, such as a sender id or a public key.
    pub fn append_bytes(&mut self, label: &'static str, bytes: &[u8]) -> &mut Self {
        self.put_header(TAG_BYTES, label);
        put_prefixed(&mut self.bytes, bytes);
        self
    }

    /// Appends the SHA-256 hash of a payload of any size, such as an encrypted model update.
    pub fn append_message(&mut self, label: &'static str, payload: &[u8]) -> &mut Self {
        self.put_header(TAG_MESSAGE, label);
        self.bytes.extend_from_slice(&Sha256::digest(payload));
        self
    }

    /// The encoded transcript: what is signed.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// SHA-256 of [`as_bytes`](Self::as_bytes), to name or chain a transcript.
    pub fn digest(&self) -> [u8; 32] {
        Sha256::digest(&self.bytes).into()
    }

    fn put_header(&mut self, tag: u8, label: &'static str) {
        self.bytes.push(tag);
        put_prefixed(&mut self.bytes, label.as_bytes());
    }
}

fn put_prefixed(out: &mut Vec<u8>, bytes: &[u8]) {
    // `usize` is at most 64 bits on every target Rust supports, so the cast is lossless.
    out.extend_from_slice(&(bytes.len() as u64).to_be_bytes());
    out.extend_from_slice(bytes);
}

impl fmt::Debug for Transcript {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Transcript({})", hex::encode(&self.bytes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};

    fn lp(x: &[u8]) -> Vec<u8> {
        [&(x.len() as u64).to_be_bytes()[..], x].concat()
    }

    fn example() -> Transcript {
        let mut t = Transcript::new("upload");
        t.append_u64("round", 7)
            .append_bytes("sender", b"client-3")
            .append_message("payload", b"hello");
        t
    }

    #[test]
    fn layout_matches_the_documented_bytes() {
        let hello_sha256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";
        let mut expected = b"spddl/v1".to_vec();
        expected.extend(lp(b"upload"));
        expected.push(0x01);
        expected.extend(lp(b"round"));
        expected.extend(7u64.to_be_bytes());
        expected.push(0x02);
        expected.extend(lp(b"sender"));
        expected.extend(lp(b"client-3"));
        expected.push(0x03);
        expected.extend(lp(b"payload"));
        expected.extend(hex::decode(hello_sha256).unwrap());
        assert_eq!(example().as_bytes(), expected.as_slice());
        assert_eq!(
            example().digest(),
            <[u8; 32]>::from(Sha256::digest(&expected))
        );
    }

    #[test]
    fn known_answer_digest() {
        // Computed once from `example()`; a change here breaks every deployed signature.
        assert_eq!(
            hex::encode(example().digest()),
            "1e89ca2326d1e1fb5aabbfe0b5d11d156b5bcdf77b702738cd7e7a6884016c02"
        );
        assert_eq!(
            hex::encode(Transcript::new("").as_bytes()),
            "737064646c2f76310000000000000000"
        );
    }

    #[test]
    fn field_boundaries_cannot_be_shifted() {
        let pairs = |a: &'static str, b: &'static str| {
            let mut t = Transcript::new("k");
            t.append_bytes("x", a.as_bytes())
                .append_bytes("x", b.as_bytes());
            t
        };
        assert_ne!(pairs("ab", "c"), pairs("a", "bc"));
        assert_ne!(pairs("abc", ""), pairs("", "abc"));

        let labelled = |label: &'static str, value: &'static str| {
            let mut t = Transcript::new("k");
            t.append_bytes(label, value.as_bytes());
            t
        };
        assert_ne!(labelled("ab", "c"), labelled("a", "bc"));

        let mut kind_then_label = Transcript::new("ab");
        kind_then_label.append_bytes("c", b"");
        let mut shorter_kind = Transcript::new("a");
        shorter_kind.append_bytes("bc", b"");
        assert_ne!(kind_then_label, shorter_kind);
    }

    #[test]
    fn field_types_are_distinguished() {
        let mut int = Transcript::new("k");
        int.append_u64("x", 5);
        let mut bytes = Transcript::new("k");
        bytes.append_bytes("x", &5u64.to_be_bytes());
        let mut message = Transcript::new("k");
        message.append_message("x", b"m");
        let mut hash_as_bytes = Transcript::new("k");
        hash_as_bytes.append_bytes("x", &Sha256::digest(b"m"));
        assert_ne!(int, bytes);
        assert_ne!(message, hash_as_bytes);
        assert_ne!(Transcript::new("k"), {
            let mut t = Transcript::new("k");
            t.append_bytes("", b"");
            t
        });
    }

    #[derive(Clone, Debug, PartialEq)]
    enum Field {
        U64(&'static str, u64),
        Bytes(&'static str, Vec<u8>),
        Message(&'static str, Vec<u8>),
    }

    /// A kind and its `(tag, label, value)` fields; a message's value is its hash.
    type Parsed = (Vec<u8>, Vec<(u8, Vec<u8>, Vec<u8>)>);

    /// Parses a transcript back, or `None` if the bytes do not follow the layout.
    fn parse(bytes: &[u8]) -> Option<Parsed> {
        fn take<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (head, tail) = rest.split_at_checked(n)?;
            *rest = tail;
            Some(head)
        }
        fn take_prefixed(rest: &mut &[u8]) -> Option<Vec<u8>> {
            let len = u64::from_be_bytes(take(rest, 8)?.try_into().ok()?);
            Some(take(rest, usize::try_from(len).ok()?)?.to_vec())
        }
        let mut rest = bytes.strip_prefix(DOMAIN_TAG)?;
        let kind = take_prefixed(&mut rest)?;
        let mut fields = Vec::new();
        while let Some((&tag, tail)) = rest.split_first() {
            rest = tail;
            let label = take_prefixed(&mut rest)?;
            let value = match tag {
                TAG_U64 => take(&mut rest, 8)?.to_vec(),
                TAG_BYTES => take_prefixed(&mut rest)?,
                TAG_MESSAGE => take(&mut rest, 32)?.to_vec(),
                _ => return None,
            };
            fields.push((tag, label, value));
        }
        Some((kind, fields))
    }

    fn field() -> impl Strategy<Value = Field> {
        // Tiny alphabets make accidental ambiguities likely to show up.
        let label = prop::sample::select(vec!["", "a", "ab", "b"]);
        let value = prop::collection::vec(prop::sample::select(vec![b'a', b'b', 0]), 0..4);
        prop_oneof![
            (label.clone(), 0u64..3).prop_map(|(l, v)| Field::U64(l, v)),
            (label.clone(), value.clone()).prop_map(|(l, v)| Field::Bytes(l, v)),
            (label, value).prop_map(|(l, v)| Field::Message(l, v)),
        ]
    }

    fn build(kind: &'static str, fields: &[Field]) -> Transcript {
        let mut t = Transcript::new(kind);
        for f in fields {
            match f {
                Field::U64(l, v) => t.append_u64(l, *v),
                Field::Bytes(l, v) => t.append_bytes(l, v),
                Field::Message(l, v) => t.append_message(l, v),
            };
        }
        t
    }

    fn seeded() -> Config {
        Config {
            rng_seed: RngSeed::Fixed(0x5DD1),
            failure_persistence: None,
            ..Config::default()
        }
    }

    proptest! {
        #![proptest_config(seeded())]

        #[test]
        fn bytes_parse_back_to_the_fields(
            kind in prop::sample::select(vec!["", "a", "ab"]),
            fields in prop::collection::vec(field(), 0..5),
        ) {
            let expected: Vec<_> = fields.iter().map(|f| match f {
                Field::U64(l, v) => (TAG_U64, l.as_bytes().to_vec(), v.to_be_bytes().to_vec()),
                Field::Bytes(l, v) => (TAG_BYTES, l.as_bytes().to_vec(), v.clone()),
                Field::Message(l, v) => (TAG_MESSAGE, l.as_bytes().to_vec(), Sha256::digest(v).to_vec()),
            }).collect();
            let t = build(kind, &fields);
            prop_assert_eq!(parse(t.as_bytes()), Some((kind.as_bytes().to_vec(), expected)));
        }

        #[test]
        fn different_fields_give_different_bytes(
            a in prop::collection::vec(field(), 0..4),
            b in prop::collection::vec(field(), 0..4),
        ) {
            prop_assert_eq!(a == b, build("k", &a) == build("k", &b));
        }
    }
}
