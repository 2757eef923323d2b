//! Checking many signatures at once, and naming the bad ones when the batch fails.

use super::{Signature, SignatureError, Transcript, VerifyingKey};

/// Verifies every `(key, transcript, signature)` item; an empty batch is valid.
///
/// All items are first checked together with one multi-scalar multiplication (about 2.5× faster
/// than one by one for 64 items). If that fails, each item is checked with
/// [`VerifyingKey::verify`] and the error lists every failing index, so the caller can reject
/// exactly those uploads: [`SignatureError::BatchFailed`]` { culprits }`.
///
/// Every signature `verify` accepts, the batch accepts, and for signatures made by
/// [`SigningKey::sign`](super::SigningKey::sign) the converse holds too. The exception takes the
/// signer's own secret key, so it is not a forgery: a signer who deliberately makes `R` of small
/// order, or adds a small-order component to it, gets a signature that `verify` refuses but the
/// batch equation cannot see (always for a small-order `R`, at most half the time otherwise).
/// Where every checker must reach the same verdict (re-checking a round transcript), use
/// `verify`.
pub fn verify_batch(
    items: &[(&VerifyingKey, &Transcript, &Signature)],
) -> Result<(), SignatureError> {
    if items.is_empty() {
        return Ok(());
    }
    let messages: Vec<&[u8]> = items.iter().map(|(_, t, _)| t.as_bytes()).collect();
    let signatures: Vec<_> = items.iter().map(|(_, _, s)| s.0).collect();
    let keys: Vec<_> = items.iter().map(|(k, _, _)| k.0).collect();
    if ed25519_dalek::verify_batch(&messages, &signatures, &keys).is_ok() {
        return Ok(());
    }
    let culprits: Vec<usize> = items
        .iter()
        .enumerate()
        .filter(|(_, (key, transcript, signature))| key.verify(transcript, signature).is_err())
        .map(|(i, _)| i)
        .collect();
    // The one-by-one verdicts are authoritative. If all pass, the batch cannot have failed (a
    // valid signature satisfies the batch equation exactly), but trust them regardless.
    if culprits.is_empty() {
        Ok(())
    } else {
        Err(SignatureError::BatchFailed { culprits })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::SigningKey;
    use num_bigint::BigUint;
    use proptest::prelude::*;
    use proptest::test_runner::{Config, RngSeed};
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha20Rng;
    use sha2::{Digest, Sha512};

    struct Upload {
        key: VerifyingKey,
        transcript: Transcript,
        signature: Signature,
    }

    fn uploads(n: usize, seed: u64) -> Vec<Upload> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        (0..n)
            .map(|i| {
                let sk = SigningKey::from_bytes(&rng.random());
                let mut transcript = Transcript::new("upload");
                transcript
                    .append_u64("round", 3)
                    .append_u64("sender", i as u64)
                    .append_message("payload", &[i as u8; 100]);
                Upload {
                    key: sk.verifying_key(),
                    signature: sk.sign(&transcript),
                    transcript,
                }
            })
            .collect()
    }

    fn check(uploads: &[Upload]) -> Result<(), SignatureError> {
        let items: Vec<_> = uploads
            .iter()
            .map(|u| (&u.key, &u.transcript, &u.signature))
            .collect();
        verify_batch(&items)
    }

    /// Spoils upload `i` in one of several ways, chosen by `how`.
    fn forge(uploads: &mut [Upload], i: usize, how: usize) {
        let n = uploads.len();
        match how % 4 {
            // A signature by someone else's key on this transcript.
            0 => {
                let sk =
                    SigningKey::from_bytes(&ChaCha20Rng::seed_from_u64(1000 + i as u64).random());
                uploads[i].signature = sk.sign(&uploads[i].transcript);
            }
            // Another item's valid signature.
            1 => uploads[i].signature = uploads[(i + 1) % n].signature,
            // One flipped bit.
            2 => {
                let mut bytes = uploads[i].signature.to_bytes();
                bytes[40] ^= 0x02;
                uploads[i].signature = Signature::from_bytes(&bytes);
            }
            // The signed transcript changed after signing.
            _ => {
                uploads[i].transcript.append_u64("extra", 1);
            }
        }
    }

    #[test]
    fn empty_batch_is_valid() {
        assert_eq!(verify_batch(&[]), Ok(()));
    }

    #[test]
    fn sixty_four_valid_signatures_pass() {
        assert_eq!(check(&uploads(64, 1)), Ok(()));
    }

    #[test]
    fn one_forgery_is_named() {
        let mut batch = uploads(64, 2);
        forge(&mut batch, 17, 0);
        assert_eq!(
            check(&batch),
            Err(SignatureError::BatchFailed { culprits: vec![17] })
        );
    }

    #[test]
    fn three_forgeries_are_named() {
        let mut batch = uploads(64, 3);
        for (how, i) in [0, 31, 63].into_iter().enumerate() {
            forge(&mut batch, i, how + 1);
        }
        assert_eq!(
            check(&batch),
            Err(SignatureError::BatchFailed {
                culprits: vec![0, 31, 63]
            })
        );
    }

    #[test]
    fn undecodable_signature_is_named() {
        // All-ones `s` is not canonical: ed25519-dalek rejects the whole batch before the
        // equation, so only the one-by-one pass can find it.
        let mut batch = uploads(8, 4);
        let mut bytes = batch[5].signature.to_bytes();
        bytes[32..].fill(0xff);
        batch[5].signature = Signature::from_bytes(&bytes);
        assert_eq!(
            check(&batch),
            Err(SignatureError::BatchFailed { culprits: vec![5] })
        );
    }

    #[test]
    fn small_order_r_is_refused_by_verify_but_passes_a_batch() {
        // A signer may take R = identity (small order) and s = k·a mod ℓ, k = H(R ‖ A ‖ M):
        // then [s]B = R + [k]A holds. `verify` refuses small-order R; the batch equation cannot
        // see it, which is the limit `verify_batch` documents.
        let secret = [7u8; 32];
        let key = SigningKey::from_bytes(&secret).verifying_key();
        let transcript = Transcript::new("upload");
        let mut r = [0u8; 32];
        r[0] = 1;
        let ell = BigUint::from(1u8) << 252u32
            | BigUint::parse_bytes(b"14def9dea2f79cd65812631a5cf5d3ed", 16).unwrap();
        let hram = Sha512::new()
            .chain_update(r)
            .chain_update(key.as_bytes())
            .chain_update(transcript.as_bytes())
            .finalize();
        let k = BigUint::from_bytes_le(&hram) % &ell;
        let a = ed25519_dalek::SigningKey::from_bytes(&secret)
            .to_scalar()
            .to_bytes();
        let s = (k * BigUint::from_bytes_le(&a) % &ell).to_bytes_le();
        let mut bytes = [0u8; 64];
        bytes[..32].copy_from_slice(&r);
        bytes[32..32 + s.len()].copy_from_slice(&s);
        let signature = Signature::from_bytes(&bytes);

        assert_eq!(
            key.verify(&transcript, &signature),
            Err(SignatureError::InvalidSignature)
        );
        assert_eq!(verify_batch(&[(&key, &transcript, &signature)]), Ok(()));
    }

    proptest! {
        #![proptest_config(Config {
            cases: 32,
            rng_seed: RngSeed::Fixed(0xBA7C),
            failure_persistence: None,
            ..Config::default()
        })]

        #[test]
        fn culprits_are_exactly_the_forged(
            forged in prop::collection::btree_set(0usize..16, 0..6),
            how in 0usize..4,
        ) {
            let mut batch = uploads(16, 5);
            for (k, &i) in forged.iter().enumerate() {
                forge(&mut batch, i, how + k);
            }
            let expected = if forged.is_empty() {
                Ok(())
            } else {
                Err(SignatureError::BatchFailed { culprits: forged.into_iter().collect() })
            };
            prop_assert_eq!(check(&batch), expected);
        }
    }
}
