//! Text → every parser of `crypto/src/formats.rs`: public key, key share, ciphertexts and
//! decryption-share documents (under the test key) and `parse_key_id`. Whatever parses writes
//! back to a document that parses to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spddl_crypto::formats::{
    ciphertexts_from_json, ciphertexts_to_json, decryption_share_from_json,
    decryption_share_to_json, parse_key_id,
};
use spddl_crypto::paillier::{KeyShare, PublicKey};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let pk = spddl_fuzz::public_key();
    if let Ok(key) = PublicKey::from_json(text) {
        assert_eq!(PublicKey::from_json(&key.to_json()).as_ref(), Ok(&key));
    }
    if let Ok(share) = KeyShare::from_json(pk, text) {
        let again = KeyShare::from_json(pk, &share.to_json()).expect("a written share parses");
        assert_eq!(
            (again.index(), again.secret()),
            (share.index(), share.secret())
        );
    }
    if let Ok(cts) = ciphertexts_from_json(pk, text) {
        assert_eq!(
            ciphertexts_from_json(pk, &ciphertexts_to_json(pk, &cts)),
            Ok(cts)
        );
    }
    if let Ok((share, context)) = decryption_share_from_json(pk, text) {
        let json = decryption_share_to_json(&share, &context);
        assert_eq!(decryption_share_from_json(pk, &json), Ok((share, context)));
    }
    if let Some(id) = parse_key_id(text) {
        assert_eq!(parse_key_id(&id.to_string()), Some(id));
    }
});
