#![allow(clippy::unwrap_used)]
//! Parse, don't validate: the constructors of ciphertexts, share indices and public keys refuse
//! values outside their domain (DESIGN §3 and STYLE "Types say what things are").

use num_bigint::BigUint;
use num_traits::{One, Zero};

use spddl_crypto::Error;
use spddl_crypto::paillier::{Ciphertext, PublicKey, ShareIndex};
use spddl_crypto::testing::{test_key, test_primes};

fn key() -> PublicKey {
    test_key(1024, 2, 3, 301).0
}

fn assert_invalid_ciphertext(pk: &PublicKey, c: BigUint, what: &str) {
    match Ciphertext::new(pk, c) {
        Err(Error::InvalidCiphertext { position: None, .. }) => {}
        other => panic!("{what}: expected InvalidCiphertext, got {other:?}"),
    }
}

#[test]
fn ciphertext_new_refuses_values_outside_the_units_of_z_n_squared() {
    let pk = key();
    let (p, q) = test_primes(1024);
    let n = pk.n();
    let n2 = pk.n_squared();
    assert_eq!(n2, &(n * n));
    assert_invalid_ciphertext(&pk, BigUint::zero(), "0");
    assert_invalid_ciphertext(&pk, n2.clone(), "n²");
    assert_invalid_ciphertext(&pk, n2 + 1u32, "n² + 1");
    assert_invalid_ciphertext(&pk, n2 * 2u32 + 3u32, "2n² + 3");
    // Values sharing a factor with n.
    assert_invalid_ciphertext(&pk, p.clone(), "p");
    assert_invalid_ciphertext(&pk, &p * 12345u32, "a multiple of p");
    assert_invalid_ciphertext(&pk, &q * (&p + 2u32), "a multiple of q");
    assert_invalid_ciphertext(&pk, n.clone(), "n");
    assert_invalid_ciphertext(&pk, n2 - n, "n² − n");
}

#[test]
fn ciphertext_new_accepts_the_edges_of_z_n_squared() {
    let pk = key();
    let n2 = pk.n_squared();
    // 1 and n² − 1 ≡ −1 are coprime with n.
    for c in [
        BigUint::one(),
        n2 - 1u32,
        BigUint::from(2u32),
        pk.n() + 1u32,
    ] {
        assert_eq!(Ciphertext::new(&pk, c.clone()).unwrap().value(), &c);
    }
}

#[test]
fn ciphertext_vectors_name_the_position_of_a_bad_value() {
    let pk = key();
    let (p, _) = test_primes(1024);
    let values = vec![BigUint::one(), BigUint::from(2u32), p];
    match Ciphertext::parse_all(&pk, values) {
        Err(Error::InvalidCiphertext {
            position: Some(2), ..
        }) => {}
        other => panic!("expected InvalidCiphertext at position 2, got {other:?}"),
    }
    let ok = Ciphertext::parse_all(&pk, vec![BigUint::one(), pk.n_squared() - 1u32]).unwrap();
    assert_eq!(ok.len(), 2);
}

#[test]
fn share_index_new_refuses_indices_outside_1_to_l() {
    for l in [1u16, 3, 9] {
        for i in [0u64, u64::from(l) + 1, 65_536 + 1, u64::MAX] {
            assert_eq!(
                ShareIndex::new(i, l).unwrap_err(),
                Error::ShareIndexOutOfRange {
                    index: i,
                    holders: l
                },
                "index {i} of {l}"
            );
        }
        assert_eq!(ShareIndex::new(1, l).unwrap().get(), 1);
        assert_eq!(ShareIndex::new(u64::from(l), l).unwrap().get(), l);
    }
    let pk = key();
    assert!(pk.share_index(0).is_err());
    assert!(pk.share_index(4).is_err());
    assert_eq!(pk.share_index(3).unwrap().get(), 3);
}

/// The parts of a valid public key, for building variants of it.
struct Parts {
    n: BigUint,
    h_s: BigUint,
    v: BigUint,
    vks: Vec<BigUint>,
    t: u16,
}

impl Parts {
    fn of(pk: &PublicKey) -> Self {
        Parts {
            n: pk.n().clone(),
            h_s: pk.h_s().clone(),
            v: pk.v().clone(),
            vks: pk.verification_keys().to_vec(),
            t: pk.threshold(),
        }
    }
    fn build(self) -> Result<PublicKey, Error> {
        PublicKey::new(self.n, self.h_s, self.v, self.vks, self.t)
    }
}

fn assert_invalid_key(result: Result<PublicKey, Error>, what: &str) {
    match result {
        Err(Error::InvalidPublicKey(_)) => {}
        other => panic!("{what}: expected InvalidPublicKey, got {other:?}"),
    }
}

#[test]
fn public_key_new_accepts_a_dealt_key() {
    let pk = key();
    let rebuilt = Parts::of(&pk).build().unwrap();
    assert_eq!(rebuilt, pk);
    assert_eq!(rebuilt.key_id(), pk.key_id());
    assert_eq!((rebuilt.threshold(), rebuilt.holders()), (2, 3));
}

#[test]
fn public_key_new_refuses_parts_that_do_not_fit() {
    let pk = key();
    let (p, _) = test_primes(1024);

    let mut parts = Parts::of(&pk);
    parts.t = 0;
    assert_invalid_key(parts.build(), "threshold 0");

    let mut parts = Parts::of(&pk);
    parts.t = 4;
    assert_invalid_key(parts.build(), "threshold 4 of 3");

    let mut parts = Parts::of(&pk);
    parts.n += 1u32;
    assert!(parts.n.bits() == 1024 && !parts.n.bit(0));
    assert_invalid_key(parts.build(), "even n");

    let mut parts = Parts::of(&pk);
    parts.h_s = &p * 3u32;
    assert_invalid_key(parts.build(), "h_s a multiple of p");

    let mut parts = Parts::of(&pk);
    parts.h_s = (&parts.h_s * &p) % (&parts.n * &parts.n);
    assert_invalid_key(parts.build(), "h_s·p mod n²");

    let mut parts = Parts::of(&pk);
    parts.h_s = BigUint::zero();
    assert_invalid_key(parts.build(), "h_s = 0");

    let mut parts = Parts::of(&pk);
    parts.v = &parts.n * &parts.n + 1u32;
    assert_invalid_key(parts.build(), "v ≥ n²");

    let mut parts = Parts::of(&pk);
    parts.vks[1] = p.clone();
    assert_invalid_key(parts.build(), "v_2 a multiple of p");

    let mut parts = Parts::of(&pk);
    parts.vks.clear();
    parts.t = 1;
    assert_invalid_key(parts.build(), "no verification keys");

    let mut parts = Parts::of(&pk);
    parts.n >>= 200u32;
    parts.n |= BigUint::one();
    assert_invalid_key(parts.build(), "an 824-bit modulus");
}
