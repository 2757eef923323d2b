#![allow(clippy::unwrap_used)]
//! Property tests of the homomorphic operations (DESIGN §3: `Enc(a)·Enc(b) = Enc(a+b)`,
//! `Enc(a)^k = Enc(k·a)` mod n²), every result decrypted through the threshold path by a
//! 2-of-3 key: proven decryption shares of a proptest-chosen pair of holders, verified and
//! combined.

mod common;

use std::sync::LazyLock;

use num_bigint::BigUint;
use num_traits::{One, Zero};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use spddl_crypto::Entropy;

use spddl_crypto::Error;
use spddl_crypto::paillier::{Ciphertext, KeyShare, Plaintext, PublicKey};
use spddl_crypto::testing::test_key;

static KEY: LazyLock<(PublicKey, Vec<KeyShare>)> = LazyLock::new(|| test_key(1024, 2, 3, 11));

fn pk() -> &'static PublicKey {
    &KEY.0
}

fn n() -> &'static BigUint {
    pk().n()
}

/// The three 2-subsets of the holders `{1, 2, 3}` (0-based).
const PAIRS: [[usize; 2]; 3] = [[0, 1], [0, 2], [1, 2]];

fn config() -> ProptestConfig {
    ProptestConfig {
        cases: 12,
        failure_persistence: None,
        rng_seed: RngSeed::Fixed(0x5bdd_1c0d),
        ..ProptestConfig::default()
    }
}

/// Plaintexts below `n`: small, uniform over `[0, n)`, and within 1000 of `n`.
fn plaintext() -> impl Strategy<Value = BigUint> {
    prop_oneof![
        any::<u64>().prop_map(BigUint::from),
        proptest::collection::vec(any::<u8>(), 128).prop_map(|b| BigUint::from_bytes_be(&b) % n()),
        (0u64..1000).prop_map(|d| n() - 1u32 - d),
    ]
}

fn encrypt(m: &BigUint, rng: &mut Entropy) -> Ciphertext {
    pk().encrypt(&Plaintext::new(pk(), m.clone()).unwrap(), rng)
}

fn decrypt(cts: &[Ciphertext], pair: usize) -> Vec<BigUint> {
    common::threshold_decrypt(pk(), &KEY.1, &PAIRS[pair], cts)
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn add_decrypts_to_the_sum_mod_n(
        a in plaintext(), b in plaintext(), pair in 0..3usize
    ) {
        let mut rng = Entropy::os();
        let (ca, cb) = (encrypt(&a, &mut rng), encrypt(&b, &mut rng));
        let sum = pk().add(&ca, &cb);
        let got = decrypt(&[ca, cb, sum], pair);
        prop_assert_eq!(&got[0], &a);
        prop_assert_eq!(&got[1], &b);
        prop_assert_eq!(&got[2], &((&a + &b) % n()));
    }

    #[test]
    fn scalar_mul_decrypts_to_the_product_mod_n(
        a in plaintext(),
        k in prop_oneof![
            any::<u64>().prop_map(BigUint::from),
            // Scalars up to 2048 bits, so also above n.
            proptest::collection::vec(any::<u8>(), 0..=256).prop_map(|b| BigUint::from_bytes_be(&b)),
        ],
        pair in 0..3usize,
    ) {
        let mut rng = Entropy::os();
        let c = encrypt(&a, &mut rng);
        let got = decrypt(&[pk().scalar_mul(&c, &k)], pair);
        prop_assert_eq!(&got[0], &((&k * &a) % n()));
    }

    #[test]
    fn sum_of_many_decrypts_to_the_total(
        values in proptest::collection::vec(plaintext(), 1..=12),
        pair in 0..3usize,
    ) {
        let mut rng = Entropy::os();
        let cts: Vec<Ciphertext> = values.iter().map(|m| encrypt(m, &mut rng)).collect();
        let total = values.iter().fold(BigUint::zero(), |acc, m| (acc + m) % n());
        let got = decrypt(&[pk().sum(&cts)], pair);
        prop_assert_eq!(&got[0], &total);
    }

    #[test]
    fn sum_vectors_adds_element_wise(
        (vectors, pair) in (1usize..=4, 1usize..=3).prop_flat_map(|(clients, len)| (
            proptest::collection::vec(proptest::collection::vec(plaintext(), len), clients),
            0..3usize,
        )),
    ) {
        let mut rng = Entropy::os();
        let encrypted: Vec<Vec<Ciphertext>> = vectors
            .iter()
            .map(|v| v.iter().map(|m| encrypt(m, &mut rng)).collect())
            .collect();
        let summed = pk().sum_vectors(&encrypted).unwrap();
        let len = vectors[0].len();
        prop_assert_eq!(summed.len(), len);
        let expected: Vec<BigUint> = (0..len)
            .map(|j| vectors.iter().fold(BigUint::zero(), |acc, v| (acc + &v[j]) % n()))
            .collect();
        prop_assert_eq!(decrypt(&summed, pair), expected);
    }

    #[test]
    fn negate_decrypts_to_the_additive_inverse(
        a in plaintext(), pair in 0..3usize
    ) {
        let mut rng = Entropy::os();
        let c = encrypt(&a, &mut rng);
        let neg = pk().negate(&c);
        let zero = pk().add(&c, &neg);
        let got = decrypt(&[neg, zero], pair);
        prop_assert_eq!(&got[0], &((n() - &a) % n()));
        prop_assert_eq!(&got[1], &BigUint::zero());
    }

    #[test]
    fn rerandomize_changes_the_ciphertext_and_keeps_the_plaintext(
        a in plaintext(), pair in 0..3usize
    ) {
        let mut rng = Entropy::os();
        let c = encrypt(&a, &mut rng);
        let fresh = pk().rerandomize(&c, &mut rng);
        prop_assert_ne!(&fresh, &c);
        let again = pk().rerandomize(&fresh, &mut rng);
        prop_assert_ne!(&again, &fresh);
        prop_assert_ne!(&again, &c);
        let got = decrypt(&[fresh, again], pair);
        prop_assert_eq!(&got[0], &a);
        prop_assert_eq!(&got[1], &a);
    }

    #[test]
    fn values_near_n_wrap_around(
        x in 0u64..1000, y in 0u64..1000, pair in 0..3usize
    ) {
        // (n − 1 − x) + (y + 1) ≡ y − x (mod n)
        let mut rng = Entropy::os();
        let a = n() - 1u32 - x;
        let b = BigUint::from(y) + 1u32;
        let sum = pk().add(&encrypt(&a, &mut rng), &encrypt(&b, &mut rng));
        let expected = (n() + BigUint::from(y) - BigUint::from(x)) % n();
        prop_assert_eq!(&decrypt(&[sum], pair)[0], &expected);
    }
}

#[test]
fn n_minus_one_plus_one_is_zero() {
    let mut rng = Entropy::os();
    let n_minus_1 = n() - 1u32;
    let c_max = encrypt(&n_minus_1, &mut rng);
    let c_one = encrypt(&BigUint::one(), &mut rng);
    let cts = [
        // (n − 1) + 1 = 0
        pk().add(&c_max, &c_one),
        // (n − 1) + (n − 1) = n − 2
        pk().add(&c_max, &c_max),
        // 2·(n − 1) = n − 2
        pk().scalar_mul(&c_max, &BigUint::from(2u32)),
        // −1 = n − 1
        pk().negate(&c_one),
        // n·(n − 1) = 0, and a scalar 0 gives an encryption of 0
        pk().scalar_mul(&c_max, n()),
        pk().scalar_mul(&c_max, &BigUint::zero()),
    ];
    let got = decrypt(&cts, 0);
    let n_minus_2 = n() - 2u32;
    assert_eq!(
        got,
        [
            BigUint::zero(),
            n_minus_2.clone(),
            n_minus_2,
            n_minus_1,
            BigUint::zero(),
            BigUint::zero()
        ]
    );
}

#[test]
fn empty_sums_are_encryptions_of_zero() {
    let empty = pk().sum(std::iter::empty::<&Ciphertext>());
    assert_eq!(decrypt(&[empty], 1), [BigUint::zero()]);
    assert_eq!(
        pk().sum_vectors::<Vec<Ciphertext>>(&[]).unwrap(),
        Vec::<Ciphertext>::new()
    );
}

#[test]
fn sum_vectors_refuses_vectors_of_different_lengths() {
    let mut rng = Entropy::os();
    let c = encrypt(&BigUint::one(), &mut rng);
    let vectors = vec![
        vec![c.clone(), c.clone()],
        vec![c.clone()],
        vec![c.clone(), c],
    ];
    let err = pk().sum_vectors(&vectors).unwrap_err();
    assert!(matches!(err, Error::Mismatch(_)), "{err}");
}

#[test]
fn plaintexts_of_n_or_more_are_refused() {
    for m in [n().clone(), n() + 1u32, n() * n()] {
        let err = Plaintext::new(pk(), m).unwrap_err();
        assert!(matches!(err, Error::PlaintextTooLarge { .. }), "{err}");
    }
    assert!(Plaintext::new(pk(), n() - 1u32).is_ok());
}
