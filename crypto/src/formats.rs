//! Versioned JSON file formats for keys, key shares, ciphertexts and decryption shares.
//!
//! Every document is a JSON object with a `format` tag and a `version` (currently 1). Big
//! integers are lower-case hexadecimal strings without prefix, big-endian (Python:
//! `int(s, 16)`). Every document but the public key carries the `key_id` of the public key it
//! belongs to — `SHA-256` of the key's canonical encoding, see [`PublicKey::key_id`] — so
//! material under another key is refused with a clear error. Unknown fields are refused.
//! The layouts are specified in `docs/file-formats.md`.
//!
//! Key shares are secrets: [`KeyShare::to_json`] returns a zeroizing string, and
//! [`write_secret_file`] creates the file readable and writable by its owner only (mode 0600).

use std::io::Write;
use std::path::Path;

use num_bigint::BigUint;
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::Error;
use crate::arith::{SecretInt, from_hex, to_hex};
use crate::paillier::{Ciphertext, DecryptionShare, KeyId, KeyShare, PublicKey, ShareIndex};
use crate::proofs::DecryptionProof;

/// The version written by this library and the only one it reads.
pub const VERSION: u32 = 1;

/// `format` tag of a public key document.
pub const PUBLIC_KEY_FORMAT: &str = "spddl-public-key";
/// `format` tag of a key-share document.
pub const KEY_SHARE_FORMAT: &str = "spddl-key-share";
/// `format` tag of a ciphertext-vector document.
pub const CIPHERTEXTS_FORMAT: &str = "spddl-ciphertexts";
/// `format` tag of a decryption-share document.
pub const DECRYPTION_SHARE_FORMAT: &str = "spddl-decryption-share";

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct PublicKeyDoc {
    format: String,
    version: u32,
    key_id: String,
    bits: u64,
    threshold: u16,
    holders: u16,
    n: String,
    h_s: String,
    v: String,
    verification_keys: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyShareDoc {
    format: String,
    version: u32,
    key_id: String,
    index: u64,
    secret_share: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct CiphertextsDoc {
    format: String,
    version: u32,
    key_id: String,
    ciphertexts: Vec<String>,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct ProofDoc {
    a: String,
    b: String,
    z: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct DecryptionShareDoc {
    format: String,
    version: u32,
    key_id: String,
    holder: u64,
    context: String,
    partials: Vec<String>,
    proof: ProofDoc,
}

fn malformed(what: &'static str, reason: impl Into<String>) -> Error {
    Error::Malformed {
        what,
        reason: reason.into(),
    }
}

fn parse_doc<T: for<'de> Deserialize<'de>>(what: &'static str, json: &str) -> Result<T, Error> {
    serde_json::from_str(json).map_err(|e| malformed(what, e.to_string()))
}

fn check_header(what: &'static str, format: &str, version: u32, want: &str) -> Result<(), Error> {
    if format != want {
        return Err(malformed(
            what,
            format!("format is \"{format}\", expected \"{want}\""),
        ));
    }
    if version != VERSION {
        return Err(malformed(
            what,
            format!("version {version} is not supported (this build reads version {VERSION})"),
        ));
    }
    Ok(())
}

fn hex_field(what: &'static str, field: &str, s: &str) -> Result<BigUint, Error> {
    from_hex(s).ok_or_else(|| malformed(what, format!("{field} is not a hexadecimal integer")))
}

fn check_key_id(what: &'static str, found: &str, pk: &PublicKey) -> Result<(), Error> {
    if found != pk.key_id().to_string() {
        return Err(Error::Mismatch(format!(
            "{what} made under key {}, but the public key given is {}",
            short(found),
            short(&pk.key_id().to_string())
        )));
    }
    Ok(())
}

fn short(id: &str) -> &str {
    id.get(..16).unwrap_or(id)
}

fn to_pretty<T: Serialize>(doc: &T) -> String {
    // Serialising these plain structs of strings and integers cannot fail.
    serde_json::to_string_pretty(doc).unwrap_or_default() + "\n"
}

impl PublicKey {
    /// The public key as a `spddl-public-key` document.
    pub fn to_json(&self) -> String {
        to_pretty(&PublicKeyDoc {
            format: PUBLIC_KEY_FORMAT.into(),
            version: VERSION,
            key_id: self.key_id().to_string(),
            bits: self.bits(),
            threshold: self.threshold(),
            holders: self.holders(),
            n: to_hex(self.n()),
            h_s: to_hex(self.h_s()),
            v: to_hex(self.v()),
            verification_keys: self.verification_keys().iter().map(to_hex).collect(),
        })
    }

    /// Parses a `spddl-public-key` document and checks that its parts fit together, including
    /// the stated `key_id`, `bits` and `holders`.
    pub fn from_json(json: &str) -> Result<Self, Error> {
        const WHAT: &str = "public key";
        let doc: PublicKeyDoc = parse_doc(WHAT, json)?;
        check_header(WHAT, &doc.format, doc.version, PUBLIC_KEY_FORMAT)?;
        let vks = doc
            .verification_keys
            .iter()
            .enumerate()
            .map(|(i, s)| hex_field(WHAT, &format!("verification_keys[{i}]"), s))
            .collect::<Result<Vec<_>, _>>()?;
        if vks.len() != usize::from(doc.holders) {
            return Err(Error::InvalidPublicKey(format!(
                "{} verification keys for {} holders",
                vks.len(),
                doc.holders
            )));
        }
        let pk = PublicKey::new(
            hex_field(WHAT, "n", &doc.n)?,
            hex_field(WHAT, "h_s", &doc.h_s)?,
            hex_field(WHAT, "v", &doc.v)?,
            vks,
            doc.threshold,
        )?;
        if pk.bits() != doc.bits {
            return Err(Error::InvalidPublicKey(format!(
                "bits is {} but n has {} bits",
                doc.bits,
                pk.bits()
            )));
        }
        if pk.key_id().to_string() != doc.key_id {
            return Err(Error::InvalidPublicKey(
                "key_id does not match the key's contents".into(),
            ));
        }
        Ok(pk)
    }
}

impl KeyShare {
    /// The share as a `spddl-key-share` document, in a string that is wiped on drop.
    pub fn to_json(&self) -> Zeroizing<String> {
        let secret = Zeroizing::new(to_hex(self.secret().get()));
        let mut out = Zeroizing::new(String::with_capacity(secret.len() + 256));
        out.push_str(&format!(
            "{{\n  \"format\": \"{KEY_SHARE_FORMAT}\",\n  \"version\": {VERSION},\n  \
             \"key_id\": \"{}\",\n  \"index\": {},\n  \"secret_share\": \"",
            self.key_id(),
            self.index()
        ));
        out.push_str(&secret);
        out.push_str("\"\n}\n");
        out
    }

    /// Parses a `spddl-key-share` document and checks it against the public key
    /// (`v^{Δ·s_i} = v_i`).
    pub fn from_json(pk: &PublicKey, json: &str) -> Result<Self, Error> {
        const WHAT: &str = "key share";
        let doc: Zeroizing<KeyShareDocSecret> = Zeroizing::new(parse_doc(WHAT, json)?);
        let doc = &doc.0;
        check_header(WHAT, &doc.format, doc.version, KEY_SHARE_FORMAT)?;
        check_key_id(WHAT, &doc.key_id, pk)?;
        let secret = SecretInt::new(hex_field(WHAT, "secret_share", &doc.secret_share)?);
        KeyShare::new(pk, doc.index, secret)
    }
}

/// A parsed key-share document whose secret string is wiped on drop.
#[derive(Deserialize)]
#[serde(transparent)]
struct KeyShareDocSecret(KeyShareDoc);

impl zeroize::Zeroize for KeyShareDocSecret {
    fn zeroize(&mut self) {
        self.0.secret_share.zeroize();
    }
}

/// A ciphertext vector as a `spddl-ciphertexts` document.
pub fn ciphertexts_to_json(pk: &PublicKey, ciphertexts: &[Ciphertext]) -> String {
    to_pretty(&CiphertextsDoc {
        format: CIPHERTEXTS_FORMAT.into(),
        version: VERSION,
        key_id: pk.key_id().to_string(),
        ciphertexts: ciphertexts.iter().map(|c| to_hex(c.value())).collect(),
    })
}

/// Parses a `spddl-ciphertexts` document under `pk`: refuses another key's ciphertexts and any
/// value outside `Z*_{n²}` (naming its position).
pub fn ciphertexts_from_json(pk: &PublicKey, json: &str) -> Result<Vec<Ciphertext>, Error> {
    const WHAT: &str = "ciphertexts";
    let doc: CiphertextsDoc = parse_doc(WHAT, json)?;
    check_header(WHAT, &doc.format, doc.version, CIPHERTEXTS_FORMAT)?;
    check_key_id(WHAT, &doc.key_id, pk)?;
    let values = doc
        .ciphertexts
        .iter()
        .enumerate()
        .map(|(i, s)| hex_field(WHAT, &format!("ciphertexts[{i}]"), s))
        .collect::<Result<Vec<_>, _>>()?;
    Ciphertext::parse_all(pk, values)
}

/// A decryption share as a `spddl-decryption-share` document, recording the context it was
/// made for.
pub fn decryption_share_to_json(share: &DecryptionShare, context: &[u8]) -> String {
    to_pretty(&DecryptionShareDoc {
        format: DECRYPTION_SHARE_FORMAT.into(),
        version: VERSION,
        key_id: share.key_id.to_string(),
        holder: share.holder.get().into(),
        context: hex::encode(context),
        partials: share.partials.iter().map(to_hex).collect(),
        proof: ProofDoc {
            a: to_hex(&share.proof.a),
            b: to_hex(&share.proof.b),
            z: to_hex(&share.proof.z),
        },
    })
}

/// Parses a `spddl-decryption-share` document under `pk`, returning the share and the context
/// it says it was made for. The proof is not checked here: call [`DecryptionShare::verify`].
pub fn decryption_share_from_json(
    pk: &PublicKey,
    json: &str,
) -> Result<(DecryptionShare, Vec<u8>), Error> {
    const WHAT: &str = "decryption share";
    let doc: DecryptionShareDoc = parse_doc(WHAT, json)?;
    check_header(WHAT, &doc.format, doc.version, DECRYPTION_SHARE_FORMAT)?;
    check_key_id(WHAT, &doc.key_id, pk)?;
    let holder = ShareIndex::new(doc.holder, pk.holders())?;
    let context =
        hex::decode(&doc.context).map_err(|_| malformed(WHAT, "context is not hexadecimal"))?;
    let partials = doc
        .partials
        .iter()
        .enumerate()
        .map(|(i, s)| hex_field(WHAT, &format!("partials[{i}]"), s))
        .collect::<Result<Vec<_>, _>>()?;
    let proof = DecryptionProof {
        a: hex_field(WHAT, "proof.a", &doc.proof.a)?,
        b: hex_field(WHAT, "proof.b", &doc.proof.b)?,
        z: hex_field(WHAT, "proof.z", &doc.proof.z)?,
    };
    let share = DecryptionShare {
        holder,
        key_id: pk.key_id(),
        partials,
        proof,
    };
    Ok((share, context))
}

/// Parses a key id written as 64 hexadecimal digits.
pub fn parse_key_id(s: &str) -> Option<KeyId> {
    let bytes = hex::decode(s).ok()?;
    Some(KeyId(bytes.try_into().ok()?))
}

/// Writes a secret file readable and writable by its owner only (mode 0600 on Unix), refusing
/// to overwrite an existing file.
pub fn write_secret_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// Reads a secret file into a zeroizing string. The second value is a warning when the file
/// is readable or writable by its group or others (Unix), for the caller to show.
pub fn read_secret_file(path: &Path) -> std::io::Result<(Zeroizing<String>, Option<String>)> {
    let contents = Zeroizing::new(std::fs::read_to_string(path)?);
    let mut warning = None;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)?.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            warning = Some(format!(
                "{} is accessible to other users (mode {mode:o}); run chmod 600 on it",
                path.display()
            ));
        }
    }
    Ok((contents, warning))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::paillier::Plaintext;
    use crate::testing::test_key;

    #[test]
    fn documents_round_trip() {
        let (pk, shares) = test_key(1024, 2, 3, 1);
        let pk2 = PublicKey::from_json(&pk.to_json()).unwrap();
        assert_eq!(pk2, pk);
        let share = KeyShare::from_json(&pk, &shares[1].to_json()).unwrap();
        assert_eq!(share.index(), shares[1].index());
        assert_eq!(share.secret(), shares[1].secret());

        let mut rng = crate::Entropy::os();
        let cts: Vec<_> = (0..3)
            .map(|m| pk.encrypt(&Plaintext::from_u64(&pk, m).unwrap(), &mut rng))
            .collect();
        assert_eq!(
            ciphertexts_from_json(&pk, &ciphertexts_to_json(&pk, &cts)).unwrap(),
            cts
        );
        let ds = shares[0].decrypt(&pk, &cts, b"ctx", &mut rng).unwrap();
        let (ds2, ctx) =
            decryption_share_from_json(&pk, &decryption_share_to_json(&ds, b"ctx")).unwrap();
        assert_eq!((ds2, ctx.as_slice()), (ds, &b"ctx"[..]));
    }

    #[test]
    fn refuses_material_of_another_key_and_bad_headers() {
        let (pk, shares) = test_key(1024, 2, 3, 1);
        let (other, _) = test_key(1024, 2, 3, 2);
        let err = KeyShare::from_json(&other, &shares[0].to_json()).unwrap_err();
        assert!(matches!(err, Error::Mismatch(_)), "{err}");
        let cts = ciphertexts_to_json(&pk, &[]);
        assert!(matches!(
            ciphertexts_from_json(&other, &cts),
            Err(Error::Mismatch(_))
        ));
        let v2 = pk.to_json().replace("\"version\": 1", "\"version\": 2");
        assert!(matches!(
            PublicKey::from_json(&v2),
            Err(Error::Malformed { .. })
        ));
        let extra = pk.to_json().replacen('{', "{\"extra\": 1,", 1);
        assert!(PublicKey::from_json(&extra).is_err());
        assert!(PublicKey::from_json("not json").is_err());
    }

    #[test]
    fn refuses_a_tampered_public_key() {
        let (pk, _) = test_key(1024, 2, 3, 1);
        let mut doc: serde_json::Value = serde_json::from_str(&pk.to_json()).unwrap();
        doc["threshold"] = 3.into();
        let err = PublicKey::from_json(&doc.to_string()).unwrap_err();
        assert!(err.to_string().contains("key_id"), "{err}");
        doc["threshold"] = 4.into();
        let err = PublicKey::from_json(&doc.to_string()).unwrap_err();
        assert!(err.to_string().contains("threshold 4"), "{err}");
    }

    #[test]
    fn refuses_a_share_that_does_not_fit_the_key() {
        let (pk, shares) = test_key(1024, 2, 3, 1);
        // Holder 2's secret labelled as holder 1.
        let json = shares[1].to_json().replace("\"index\": 2", "\"index\": 1");
        let err = KeyShare::from_json(&pk, &json).unwrap_err();
        assert!(
            matches!(err, Error::InvalidKeyShare { index: 1, .. }),
            "{err}"
        );
        let json = shares[1].to_json().replace("\"index\": 2", "\"index\": 4");
        let err = KeyShare::from_json(&pk, &json).unwrap_err();
        assert!(
            matches!(err, Error::ShareIndexOutOfRange { index: 4, .. }),
            "{err}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn secret_files_are_owner_only_and_loose_ones_warn() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("share-1.json");
        write_secret_file(&path, b"secret").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert!(write_secret_file(&path, b"again").is_err(), "no overwrite");
        let (text, warning) = read_secret_file(&path).unwrap();
        assert_eq!((text.as_str(), warning), ("secret", None));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        let (_, warning) = read_secret_file(&path).unwrap();
        assert!(warning.unwrap().contains("mode 644"));
    }
}
