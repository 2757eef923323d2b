//! Bytes → `Ciphertext::from_bytes` under the 1024-bit test key (256-byte width); an
//! accepted ciphertext writes back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use spddl_crypto::paillier::Ciphertext;

fuzz_target!(|data: &[u8]| {
    let pk = spddl_fuzz::public_key();
    if let Ok(c) = Ciphertext::from_bytes(pk, data) {
        assert_eq!(c.to_bytes(pk), data);
    }
});
