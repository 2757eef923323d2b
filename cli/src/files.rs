//! Reading and writing the crypto file formats, with errors that name the file.

use std::path::Path;

use anyhow::{Context, Result};
use spddl_crypto::formats;
use spddl_crypto::paillier::{Ciphertext, DecryptionShare, KeyShare, PublicKey};

fn read(path: &Path) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("{}: cannot read", path.display()))
}

pub(crate) fn public_key(path: &Path) -> Result<PublicKey> {
    PublicKey::from_json(&read(path)?).with_context(|| path.display().to_string())
}

pub(crate) fn key_share(pk: &PublicKey, path: &Path) -> Result<KeyShare> {
    let (json, warning) = formats::read_secret_file(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    if let Some(warning) = warning {
        eprintln!("warning: {warning}");
    }
    KeyShare::from_json(pk, &json).with_context(|| path.display().to_string())
}

pub(crate) fn ciphertexts(pk: &PublicKey, path: &Path) -> Result<Vec<Ciphertext>> {
    formats::ciphertexts_from_json(pk, &read(path)?).with_context(|| path.display().to_string())
}

pub(crate) fn decryption_share(pk: &PublicKey, path: &Path) -> Result<(DecryptionShare, Vec<u8>)> {
    formats::decryption_share_from_json(pk, &read(path)?)
        .with_context(|| path.display().to_string())
}
