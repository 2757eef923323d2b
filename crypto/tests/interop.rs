#![allow(clippy::unwrap_used)]
//! Interoperability with textbook Paillier (DESIGN §3, "Encryption": SPDDL's ciphertexts are
//! ordinary Paillier ciphertexts with `g = n + 1`). The textbook encryption and the standard
//! decryption with `p, q` are written out in `common` with num-bigint only; the crate is used
//! for nothing but reading `n` on that side.

mod common;

use num_bigint::BigUint;
use num_traits::Zero;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use spddl_crypto::Entropy;
use spddl_crypto::paillier::{Ciphertext, Plaintext, PublicKey, hazmat};
use spddl_crypto::testing::{test_dealer, test_key, test_primes};

/// Plaintexts covering the edges and the bulk of `[0, n)`.
fn plaintexts(pk: &PublicKey, rng: &mut ChaCha20Rng) -> Vec<BigUint> {
    vec![
        BigUint::zero(),
        BigUint::from(1u32),
        BigUint::from(123_456_789u64),
        BigUint::from(u64::MAX) + 1u32,
        common::random_below(pk.n(), rng),
        common::random_below(pk.n(), rng),
        pk.n() - 1u32,
    ]
}

fn plaintext(pk: &PublicKey, m: &BigUint) -> Plaintext {
    Plaintext::new(pk, m.clone()).unwrap()
}

#[test]
fn textbook_ciphertexts_decrypt_through_the_threshold_path() {
    let (pk, shares) = test_key(1024, 2, 3, 201);
    let mut rng = ChaCha20Rng::seed_from_u64(201);
    let ms = plaintexts(&pk, &mut rng);
    let cts: Vec<Ciphertext> = ms
        .iter()
        .map(|m| Ciphertext::new(&pk, common::textbook_encrypt(pk.n(), m, &mut rng)).unwrap())
        .collect();
    assert_eq!(common::threshold_decrypt(&pk, &shares, &[2, 0], &cts), ms);
}

#[test]
fn textbook_and_native_ciphertexts_mix_under_the_homomorphic_operations() {
    let (pk, shares) = test_key(1024, 3, 5, 202);
    let n = pk.n();
    let mut rng = ChaCha20Rng::seed_from_u64(202);
    let a = common::random_below(n, &mut rng);
    let b = n - 5u32;
    let c = BigUint::from(77u32);
    let ca = Ciphertext::new(&pk, common::textbook_encrypt(n, &a, &mut rng)).unwrap();
    let cb = pk.encrypt(&plaintext(&pk, &b), &mut Entropy::os());
    let cc = pk.encrypt_textbook(&plaintext(&pk, &c), &mut Entropy::os());
    let k = BigUint::from(1_000_003u32);
    let cts = [
        pk.add(&ca, &cb),
        pk.add(&cb, &ca),
        pk.sum([&ca, &cb, &cc, &ca]),
        pk.scalar_mul(&ca, &k),
        pk.add(&pk.negate(&ca), &cb),
        pk.rerandomize(&ca, &mut Entropy::os()),
    ];
    let expected = [
        (&a + &b) % n,
        (&a + &b) % n,
        (&a + &a + &b + &c) % n,
        (&k * &a) % n,
        (n + &b - &a) % n,
        a.clone(),
    ];
    assert_eq!(
        common::threshold_decrypt(&pk, &shares, &[4, 1, 2], &cts),
        expected
    );
}

#[test]
fn native_ciphertexts_decrypt_with_standard_paillier() {
    let (p, q) = test_primes(1024);
    let dealer = test_dealer(1024);
    let mut rng = ChaCha20Rng::seed_from_u64(203);
    let (pk, _) = dealer.deal(2, 3, &mut Entropy::os()).unwrap();
    assert_eq!(dealer.modulus(), &p * &q);
    assert_eq!(pk.n(), &(&p * &q));

    let ms = plaintexts(&pk, &mut rng);
    let mut cts: Vec<Ciphertext> = ms
        .iter()
        .map(|m| pk.encrypt(&plaintext(&pk, m), &mut Entropy::os()))
        .collect();
    let mut expected = ms.clone();
    // Explicit α at both ends of its range, and past it (the slow path).
    for alpha_bits in [0u64, 1, pk.alpha_bits(), pk.alpha_bits() + 100] {
        let alpha = (BigUint::from(1u32) << alpha_bits) - 1u32;
        cts.push(hazmat::encrypt_with_alpha(
            &pk,
            &plaintext(&pk, &ms[4]),
            &alpha,
        ));
        expected.push(ms[4].clone());
    }
    cts.push(pk.encrypt_textbook(&plaintext(&pk, &ms[5]), &mut Entropy::os()));
    expected.push(ms[5].clone());
    cts.push(pk.sum(&cts));
    expected.push(
        expected
            .iter()
            .fold(BigUint::zero(), |acc, m| (acc + m) % pk.n()),
    );

    for (j, (c, m)) in cts.iter().zip(&expected).enumerate() {
        assert_eq!(
            &dealer.decrypt_with_factors(c),
            m,
            "decrypt_with_factors, #{j}"
        );
        assert_eq!(
            &common::standard_decrypt(&p, &q, c.value()),
            m,
            "independent, #{j}"
        );
    }
}

#[test]
fn independent_standard_decryption_agrees_on_textbook_ciphertexts() {
    let (p, q) = test_primes(1024);
    let dealer = test_dealer(1024);
    let n = &p * &q;
    let mut rng = ChaCha20Rng::seed_from_u64(204);
    let (pk, _) = dealer.deal(1, 1, &mut Entropy::os()).unwrap();
    for m in plaintexts(&pk, &mut rng) {
        let c = common::textbook_encrypt(&n, &m, &mut rng);
        assert_eq!(common::standard_decrypt(&p, &q, &c), m);
        assert_eq!(
            dealer.decrypt_with_factors(&Ciphertext::new(&pk, c).unwrap()),
            m
        );
    }
}

#[test]
fn encryption_base_is_an_encryption_of_zero() {
    // h_s = h^n is an n-th power: an encryption of 0, so (1 + M·n)·h_s^α encrypts M.
    let (p, q) = test_primes(1024);
    let (pk, _) = test_key(1024, 2, 3, 205);
    assert_eq!(common::standard_decrypt(&p, &q, pk.h_s()), BigUint::zero());
}

#[test]
fn encrypt_with_alpha_is_the_formula_for_every_size_of_alpha() {
    // c = (1 + M·n)·h_s^α mod n², whatever path (fixed-base table or not) computes h_s^α.
    let (pk, _) = test_key(1024, 2, 3, 206);
    let mut rng = ChaCha20Rng::seed_from_u64(206);
    let e = pk.alpha_bits();
    for bits in [0, 1, 3, 4, 5, 63, 64, 65, e - 1, e, e + 1, e + 200] {
        let top = if bits == 0 {
            BigUint::zero()
        } else {
            BigUint::from(1u32) << (bits - 1)
        };
        let all_ones = (BigUint::from(1u32) << bits) - 1u32;
        let random = common::random_below(
            &(BigUint::from(1u32) << bits).max(BigUint::from(1u32)),
            &mut rng,
        ) | &top;
        for alpha in [top, all_ones, random] {
            let m = common::random_below(pk.n(), &mut rng);
            assert_eq!(
                hazmat::encrypt_with_alpha(&pk, &plaintext(&pk, &m), &alpha).value(),
                &common::encrypt_with_base(pk.n(), pk.h_s(), &m, &alpha),
                "α of {} bits",
                alpha.bits()
            );
        }
    }
}
