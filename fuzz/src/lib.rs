//! Shared by the fuzz targets and the seed generator: the key every target parses under.
//!
//! The key is the throw-away 1024-bit 2-of-3 known-answer key checked in under
//! `crypto/tests/data/kat/` (test data only). It is read from those files rather than dealt,
//! so the seed corpus stays valid as long as the known-answer vectors do.

use std::sync::OnceLock;

use spddl_crypto::paillier::PublicKey;

const PUBLIC_KEY: &str = include_str!("../../crypto/tests/data/kat/public-key.json");

/// The known-answer public key, parsed once per process.
pub fn public_key() -> &'static PublicKey {
    static KEY: OnceLock<PublicKey> = OnceLock::new();
    KEY.get_or_init(|| PublicKey::from_json(PUBLIC_KEY).expect("checked-in public key parses"))
}
