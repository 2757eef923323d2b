#![allow(clippy::unwrap_used)]
//! Soundness of the (batched) proof of correct partial decryption against a cheating HOLDER.
//!
//! Tampering with an honest share after the fact is caught by the Fiat–Shamir challenge alone
//! (it hashes the partials), so it cannot tell whether the verifier's algebra is right. A holder
//! knows its witness `Δ·s_i` and can prove whatever partials it likes; only the checks
//! `U^z = a·W^e`, `v^z = b·v_i^e` and the hashed batch weights `ρ_j` stop it (DESIGN §3).
//!
//! So this file has its own prover that takes ANY partials and a witness, written from the
//! transcript of `proofs/decryption_share.rs` (domains, length-prefixed parts, `ρ_j`, `e`).
//! `reference_prover_matches_the_crates_transcript` checks that honest proofs from it verify:
//! if that test fails, the transcript changed and this prover must follow it — the other tests'
//! failures then say nothing about soundness.

mod common;

use num_bigint::BigUint;
use num_traits::One;
use sha2::{Digest, Sha256};

use spddl_crypto::arith::hash_to_bits;
use spddl_crypto::paillier::{
    Ciphertext, DecryptionShare, KAPPA, KeyShare, Plaintext, PublicKey, ShareIndex,
    verify_and_combine,
};
use spddl_crypto::proofs::DecryptionProof;
use spddl_crypto::testing::test_key;
use spddl_crypto::{Entropy, Error};

const CONTEXT: &[u8] = b"spddl round 7";

fn absorb(h: &mut Sha256, part: &[u8]) {
    h.update((part.len() as u64).to_be_bytes());
    h.update(part);
}

fn inputs_digest(
    pk: &PublicKey,
    holder: ShareIndex,
    cts: &[Ciphertext],
    partials: &[BigUint],
) -> [u8; 32] {
    let mut h = Sha256::new();
    absorb(&mut h, b"spddl/v1/decryption-share/inputs");
    absorb(&mut h, &pk.key_id().0);
    absorb(&mut h, &holder.get().to_be_bytes());
    absorb(&mut h, CONTEXT);
    absorb(&mut h, &(cts.len() as u64).to_be_bytes());
    for (c, ci) in cts.iter().zip(partials) {
        absorb(&mut h, &c.value().to_bytes_be());
        absorb(&mut h, &ci.to_bytes_be());
    }
    h.finalize().into()
}

/// `U = (Π c_j^{ρ_j})⁴`, `W = (Π c_{i,j}^{ρ_j})²`; for one ciphertext `U = c⁴`, `W = c_i²`.
fn statement(
    pk: &PublicKey,
    cts: &[Ciphertext],
    partials: &[BigUint],
    digest: &[u8; 32],
) -> (BigUint, BigUint) {
    let n2 = pk.n_squared();
    let (mut u, mut w) = (BigUint::one(), BigUint::one());
    for (j, (c, ci)) in cts.iter().zip(partials).enumerate() {
        let rho = if cts.len() == 1 {
            BigUint::one()
        } else {
            hash_to_bits(
                b"spddl/v1/decryption-share/batch-weights",
                &[digest, &(j as u64).to_be_bytes()],
                KAPPA,
            )
        };
        u = (u * c.value().modpow(&rho, n2)) % n2;
        w = (w * ci.modpow(&rho, n2)) % n2;
    }
    (
        u.modpow(&BigUint::from(4u32), n2),
        w.modpow(&BigUint::from(2u32), n2),
    )
}

/// Proves the given `partials` with witness `w`, whether or not they are `c_j^{2w}`.
fn prove_any(
    pk: &PublicKey,
    holder: ShareIndex,
    w: &BigUint,
    cts: &[Ciphertext],
    partials: Vec<BigUint>,
    rng: &mut Entropy,
) -> DecryptionShare {
    let n2 = pk.n_squared();
    let digest = inputs_digest(pk, holder, cts, &partials);
    let (u, big_w) = statement(pk, cts, &partials, &digest);
    let r_bits = pk.delta().bits() + 2 * pk.bits() + 2 * KAPPA;
    let r = common::random_below(&(BigUint::one() << r_bits), rng);
    let a = u.modpow(&r, n2);
    let b = pk.v().modpow(&r, n2);
    let parts: [&[u8]; 9] = [
        &pk.n().to_bytes_be(),
        &pk.v().to_bytes_be(),
        &pk.verification_key(holder).to_bytes_be(),
        &digest,
        &u.to_bytes_be(),
        &big_w.to_bytes_be(),
        &a.to_bytes_be(),
        &b.to_bytes_be(),
        &holder.get().to_be_bytes(),
    ];
    let e = hash_to_bits(b"spddl/v1/decryption-share/challenge", &parts, KAPPA);
    let z = r + e * w;
    DecryptionShare {
        holder,
        key_id: pk.key_id(),
        partials,
        proof: DecryptionProof { a, b, z },
    }
}

struct Setup {
    pk: PublicKey,
    shares: Vec<KeyShare>,
    cts: Vec<Ciphertext>,
    rng: Entropy,
}

fn setup(k: usize, seed: u64) -> Setup {
    let (pk, shares) = test_key(1024, 2, 3, seed);
    let mut rng = Entropy::os();
    let cts = (0..k as u64)
        .map(|m| pk.encrypt(&Plaintext::from_u64(&pk, 1000 + m).unwrap(), &mut rng))
        .collect();
    Setup {
        pk,
        shares,
        cts,
        rng,
    }
}

/// `Δ·s_i` of holder position `h`, and its honest partials `c_j^{2Δ·s_i}`.
fn witness_and_partials(s: &Setup, h: usize) -> (BigUint, Vec<BigUint>) {
    let w = s.pk.delta() * s.shares[h].secret().get();
    let two_w = &w * 2u32;
    let partials = s
        .cts
        .iter()
        .map(|c| c.value().modpow(&two_w, s.pk.n_squared()))
        .collect();
    (w, partials)
}

fn assert_blames(result: Result<impl std::fmt::Debug, Error>, holder: ShareIndex, what: &str) {
    match result {
        Err(Error::InvalidDecryptionShare { holder: blamed, .. }) => {
            assert_eq!(blamed, holder, "{what}: blamed the wrong holder");
        }
        other => panic!("{what}: a cheating holder's proof was not refused: {other:?}"),
    }
}

#[test]
fn reference_prover_matches_the_crates_transcript() {
    for k in [1, 8] {
        let mut s = setup(k, 401);
        for h in 0..3 {
            let (w, partials) = witness_and_partials(&s, h);
            let index = s.shares[h].index();
            let ds = prove_any(&s.pk, index, &w, &s.cts, partials, &mut s.rng);
            ds.verify(&s.pk, &s.cts, CONTEXT).unwrap_or_else(|e| {
                panic!(
                    "an honest proof from this file's reference prover ({k} ciphertexts) does \
                     not verify: the proof transcript of the crate changed, update prove_any: {e}"
                )
            });
        }
    }
}

#[test]
fn a_holder_cannot_prove_one_wrong_partial_in_a_batch() {
    let mut s = setup(8, 402);
    let h = 1;
    let (w, honest) = witness_and_partials(&s, h);
    let index = s.shares[h].index();
    let n2 = s.pk.n_squared().clone();
    let g = s.pk.n() + 1u32;
    for j in 0..8 {
        // c_{i,j}·(1 + n): would add Δ-scaled garbage to plaintext j.
        let mut partials = honest.clone();
        partials[j] = (&partials[j] * &g) % &n2;
        let ds = prove_any(&s.pk, index, &w, &s.cts, partials, &mut s.rng);
        assert_blames(
            ds.verify(&s.pk, &s.cts, CONTEXT),
            index,
            &format!("partial {j} · (1 + n)"),
        );
        // c_j^{4Δ·s_i}: partial j raised to an extra power.
        let mut partials = honest.clone();
        partials[j] = partials[j].modpow(&BigUint::from(2u32), &n2);
        let ds = prove_any(&s.pk, index, &w, &s.cts, partials, &mut s.rng);
        assert_blames(
            ds.verify(&s.pk, &s.cts, CONTEXT),
            index,
            &format!("partial {j} squared"),
        );
    }
}

#[test]
fn a_holder_cannot_prove_errors_that_cancel_in_the_product() {
    // Without hashed weights, Π c_{i,j} would not see c_{i,j}·g and c_{i,k}·g⁻¹ together.
    let mut s = setup(8, 403);
    let h = 2;
    let (w, honest) = witness_and_partials(&s, h);
    let index = s.shares[h].index();
    let n2 = s.pk.n_squared().clone();
    let g = s.pk.n() + 1u32;
    let g_inv = g.modinv(&n2).unwrap();
    for j in 0..8 {
        let k = (j + 5) % 8;
        let mut partials = honest.clone();
        partials[j] = (&partials[j] * &g) % &n2;
        partials[k] = (&partials[k] * &g_inv) % &n2;
        let ds = prove_any(&s.pk, index, &w, &s.cts, partials, &mut s.rng);
        assert_blames(
            ds.verify(&s.pk, &s.cts, CONTEXT),
            index,
            &format!("partial {j} · g, partial {k} · g⁻¹"),
        );
        // Two partials swapped: the same product, in the wrong places.
        let mut partials = honest.clone();
        partials.swap(j, k);
        let ds = prove_any(&s.pk, index, &w, &s.cts, partials, &mut s.rng);
        assert_blames(
            ds.verify(&s.pk, &s.cts, CONTEXT),
            index,
            &format!("partials {j} and {k} swapped"),
        );
    }
}

#[test]
fn a_holder_with_a_wrong_share_cannot_prove_it() {
    // Consistent partials c_j^{2w′} with w′ ≠ Δ·s_i pass U^z = a·W^e; v^z = b·v_i^e stops them.
    for k in [1, 8] {
        let mut s = setup(k, 404);
        let h = 0;
        let (w, _) = witness_and_partials(&s, h);
        let index = s.shares[h].index();
        for wrong in [
            &w + 1u32,
            &w * 2u32,
            s.pk.delta() * s.shares[1].secret().get(),
        ] {
            let partials: Vec<BigUint> = s
                .cts
                .iter()
                .map(|c| c.value().modpow(&(&wrong * 2u32), s.pk.n_squared()))
                .collect();
            let ds = prove_any(&s.pk, index, &wrong, &s.cts, partials, &mut s.rng);
            assert_blames(
                ds.verify(&s.pk, &s.cts, CONTEXT),
                index,
                &format!("{k} ciphertexts, wrong witness"),
            );
        }
    }
}

#[test]
fn a_holder_cannot_prove_a_wrong_single_partial() {
    let mut s = setup(1, 405);
    let h = 1;
    let (w, honest) = witness_and_partials(&s, h);
    let index = s.shares[h].index();
    let n2 = s.pk.n_squared().clone();
    let g = s.pk.n() + 1u32;
    for (what, partial) in [
        ("c_i · (1 + n)", (&honest[0] * &g) % &n2),
        ("c_i²", honest[0].modpow(&BigUint::from(2u32), &n2)),
        ("1", BigUint::one()),
    ] {
        let ds = prove_any(&s.pk, index, &w, &s.cts, vec![partial], &mut s.rng);
        assert_blames(ds.verify(&s.pk, &s.cts, CONTEXT), index, what);
    }
}

#[test]
fn a_cheating_holder_is_dropped_and_blamed_by_verify_and_combine() {
    let mut s = setup(4, 406);
    let (w, mut partials) = witness_and_partials(&s, 0);
    let cheater = s.shares[0].index();
    let g = s.pk.n() + 1u32;
    partials[3] = (&partials[3] * &g) % s.pk.n_squared();
    let bad = prove_any(&s.pk, cheater, &w, &s.cts, partials, &mut s.rng);
    let good: Vec<DecryptionShare> = s.shares[1..]
        .iter()
        .map(|sh| sh.decrypt(&s.pk, &s.cts, CONTEXT, &mut s.rng).unwrap())
        .collect();
    let combined = verify_and_combine(
        &s.pk,
        &s.cts,
        CONTEXT,
        &[bad.clone(), good[0].clone(), good[1].clone()],
    )
    .unwrap();
    let got: Vec<u64> = combined
        .plaintexts
        .iter()
        .map(|m| m.to_u64().unwrap())
        .collect();
    assert_eq!(got, [1000, 1001, 1002, 1003]);
    assert_eq!(combined.used, [s.shares[1].index(), s.shares[2].index()]);
    assert_eq!(combined.rejected.len(), 1);
    assert_blames(
        Err::<(), _>(combined.rejected[0].clone()),
        cheater,
        "rejected",
    );

    let err = verify_and_combine(&s.pk, &s.cts, CONTEXT, &[bad, good[0].clone()]).unwrap_err();
    assert_eq!(
        err,
        Error::NotEnoughShares {
            valid: vec![s.shares[1].index()],
            threshold: 2,
            culprits: vec![cheater]
        }
    );
}

#[test]
fn a_share_that_verifies_never_changes_the_result() {
    // A holder may send −c_{i,j}: it differs from c_{i,j} by an element of order 2, which the
    // proof (about W = (Π c_{i,j}^{ρ_j})²) and combining (c_i^{2μ_i}) both square away.
    // Accepted or not, it must not change what is decrypted.
    let mut s = setup(2, 407);
    let (w, mut partials) = witness_and_partials(&s, 0);
    partials[1] = s.pk.n_squared() - &partials[1];
    let negated = prove_any(&s.pk, s.shares[0].index(), &w, &s.cts, partials, &mut s.rng);
    let good = s.shares[1]
        .decrypt(&s.pk, &s.cts, CONTEXT, &mut s.rng)
        .unwrap();
    match verify_and_combine(&s.pk, &s.cts, CONTEXT, &[negated, good]) {
        Ok(combined) => {
            let got: Vec<u64> = combined
                .plaintexts
                .iter()
                .map(|m| m.to_u64().unwrap())
                .collect();
            assert_eq!(got, [1000, 1001]);
        }
        Err(e) => assert!(matches!(e, Error::NotEnoughShares { .. }), "{e}"),
    }
}
