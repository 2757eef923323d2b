#![allow(clippy::unwrap_used)]
//! Threshold decryption (DESIGN §3, "Partial decryption", "Proof", "Combining"): any `t` of `ℓ`
//! shares decrypt, fewer or duplicated ones are refused, and a wrong, replayed or foreign
//! decryption share fails its proof and names its holder.

mod common;

use num_bigint::BigUint;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use spddl_crypto::Entropy;
use spddl_crypto::Error;
use spddl_crypto::paillier::{
    Ciphertext, DecryptionShare, KeyShare, Plaintext, PublicKey, ShareIndex, VerifiedShare,
    combine, verify_and_combine,
};
use spddl_crypto::testing::test_key;

const CONTEXT: &[u8] = b"spddl round 42";

/// All `k`-subsets of `0..n` (0-based holder positions), in lexicographic order.
fn subsets(n: usize, k: usize) -> Vec<Vec<usize>> {
    fn extend(
        start: usize,
        n: usize,
        k: usize,
        current: &mut Vec<usize>,
        out: &mut Vec<Vec<usize>>,
    ) {
        if current.len() == k {
            out.push(current.clone());
            return;
        }
        for i in start..n {
            current.push(i);
            extend(i + 1, n, k, current, out);
            current.pop();
        }
    }
    let mut out = Vec::new();
    extend(0, n, k, &mut Vec::new(), &mut out);
    out
}

fn binomial(n: usize, k: usize) -> usize {
    (0..k).fold(1, |acc, i| acc * (n - i) / (i + 1))
}

fn values(plaintexts: Vec<Plaintext>) -> Vec<BigUint> {
    plaintexts.into_iter().map(Plaintext::into_value).collect()
}

fn index(pk: &PublicKey, i: u64) -> ShareIndex {
    pk.share_index(i).unwrap()
}

/// Everything a test of one key needs: the key, its shares, `k` ciphertexts with their
/// plaintexts, and every holder's honest decryption share of them under [`CONTEXT`].
struct Fixture {
    pk: PublicKey,
    shares: Vec<KeyShare>,
    plaintexts: Vec<BigUint>,
    cts: Vec<Ciphertext>,
    good: Vec<DecryptionShare>,
    rng: Entropy,
}

impl Fixture {
    fn new(t: u16, l: u16, seed: u64, k: usize) -> Self {
        let (pk, shares) = test_key(1024, t, l, seed);
        let mut rng = Entropy::os();
        // A uniform value below n (reproducible), n − 1, then small values.
        let uniform = common::random_below(pk.n(), &mut ChaCha20Rng::seed_from_u64(seed));
        let mut plaintexts = vec![uniform, pk.n() - 1u32];
        plaintexts.extend((0..k as u32).map(|i| BigUint::from(1000 + i)));
        plaintexts.truncate(k);
        let cts: Vec<Ciphertext> = plaintexts
            .iter()
            .map(|m| pk.encrypt(&Plaintext::new(&pk, m.clone()).unwrap(), &mut rng))
            .collect();
        let good = shares
            .iter()
            .map(|s| s.decrypt(&pk, &cts, CONTEXT, &mut rng).unwrap())
            .collect();
        Fixture {
            pk,
            shares,
            plaintexts,
            cts,
            good,
            rng,
        }
    }

    /// Holder position `h`'s honest share, verified.
    fn verified(&self, h: usize) -> VerifiedShare {
        self.good[h].verify(&self.pk, &self.cts, CONTEXT).unwrap()
    }

    fn holder(&self, h: usize) -> ShareIndex {
        self.shares[h].index()
    }
}

/// Asserts that `result` is `InvalidDecryptionShare` naming `holder`.
fn assert_blames<T: std::fmt::Debug>(result: Result<T, Error>, holder: ShareIndex, what: &str) {
    match result {
        Err(Error::InvalidDecryptionShare { holder: blamed, .. }) => {
            assert_eq!(blamed, holder, "{what}: blamed the wrong holder");
        }
        other => {
            panic!("{what}: expected InvalidDecryptionShare from holder {holder}, got {other:?}")
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Any t of ℓ decrypt; fewer, or duplicates, are refused.

fn check_every_subset(t: u16, l: u16, seed: u64) {
    let f = Fixture::new(t, l, seed, 2);
    let (t, l) = (usize::from(t), usize::from(l));
    // Each holder's share is made and verified once, then combined in every subset.
    let verified: Vec<VerifiedShare> = (0..l).map(|h| f.verified(h)).collect();
    for (h, v) in verified.iter().enumerate() {
        assert_eq!(v.holder(), index(&f.pk, h as u64 + 1));
    }

    let all = subsets(l, t);
    assert_eq!(all.len(), binomial(l, t));
    for subset in &all {
        let chosen: Vec<VerifiedShare> = subset.iter().map(|&h| verified[h].clone()).collect();
        let got = combine(&f.pk, &chosen).unwrap_or_else(|e| panic!("subset {subset:?}: {e}"));
        assert_eq!(values(got), f.plaintexts, "subset {subset:?} (0-based)");
    }

    // t − 1 shares are refused, whichever they are.
    for subset in subsets(l, t - 1) {
        let chosen: Vec<VerifiedShare> = subset.iter().map(|&h| verified[h].clone()).collect();
        assert_eq!(
            combine(&f.pk, &chosen).unwrap_err(),
            Error::NotEnoughShares {
                valid: subset.iter().map(|&h| f.holder(h)).collect(),
                threshold: t as u16,
                culprits: Vec::new()
            },
            "subset {subset:?} (0-based)"
        );
    }

    // More than t shares, in descending holder order, also decrypt.
    for k in t + 1..=l {
        let chosen: Vec<VerifiedShare> = verified.iter().rev().take(k).cloned().collect();
        assert_eq!(
            values(combine(&f.pk, &chosen).unwrap()),
            f.plaintexts,
            "{k} shares"
        );
    }
    let combined = verify_and_combine(&f.pk, &f.cts, CONTEXT, &f.good).unwrap();
    assert_eq!(values(combined.plaintexts), f.plaintexts);
    assert!(combined.rejected.is_empty(), "{:?}", combined.rejected);
    assert_eq!(combined.used.len(), t);
}

#[test]
fn every_subset_decrypts_1_of_1() {
    check_every_subset(1, 1, 101);
}

#[test]
fn every_subset_decrypts_2_of_3() {
    check_every_subset(2, 3, 102);
}

#[test]
fn every_subset_decrypts_3_of_5() {
    check_every_subset(3, 5, 103);
}

#[test]
fn every_subset_decrypts_5_of_9() {
    check_every_subset(5, 9, 104);
}

#[test]
fn too_few_shares_are_refused_by_verify_and_combine() {
    let f = Fixture::new(3, 5, 105, 1);
    for subset in subsets(5, 2) {
        let chosen: Vec<DecryptionShare> = subset.iter().map(|&h| f.good[h].clone()).collect();
        assert_eq!(
            verify_and_combine(&f.pk, &f.cts, CONTEXT, &chosen).unwrap_err(),
            Error::NotEnoughShares {
                valid: subset.iter().map(|&h| f.holder(h)).collect(),
                threshold: 3,
                culprits: Vec::new()
            }
        );
    }
}

#[test]
fn duplicate_holders_are_refused() {
    let f = Fixture::new(2, 3, 106, 1);
    let (v1, v2) = (f.verified(0), f.verified(1));
    let holder1 = f.holder(0);
    // Two copies of one holder's share are not two shares.
    for chosen in [
        vec![v1.clone(), v1.clone()],
        vec![v1.clone(), v2.clone(), v1.clone()],
        vec![v2.clone(), v1.clone(), v1.clone()],
    ] {
        assert_eq!(
            combine(&f.pk, &chosen).unwrap_err(),
            Error::DuplicateShare { holder: holder1 }
        );
    }
    // verify_and_combine counts a holder once: one distinct holder is below t = 2 …
    let err = verify_and_combine(
        &f.pk,
        &f.cts,
        CONTEXT,
        &[f.good[0].clone(), f.good[0].clone()],
    )
    .unwrap_err();
    // … and a duplicate of a valid share blames no one.
    assert_eq!(
        err,
        Error::NotEnoughShares {
            valid: vec![holder1],
            threshold: 2,
            culprits: Vec::new(),
        }
    );
    // … and with a second holder it decrypts, reporting the duplicate.
    let shares = [f.good[0].clone(), f.good[0].clone(), f.good[1].clone()];
    let combined = verify_and_combine(&f.pk, &f.cts, CONTEXT, &shares).unwrap();
    assert_eq!(values(combined.plaintexts), f.plaintexts);
    assert_eq!(combined.used, [holder1, f.holder(1)]);
    assert_eq!(
        combined.rejected,
        [Error::DuplicateShare { holder: holder1 }]
    );
}

// ---------------------------------------------------------------------------------------------
// Wrong shares fail their proof and name their holder.

#[derive(Debug, Clone, Copy)]
enum Tamper {
    /// `c_i²`: the partial raised to an extra power (exponent `4Δs_i` instead of `2Δs_i`).
    ExtraPower,
    /// `c_i·(1 + n)`: would shift the decrypted plaintext.
    TimesGenerator,
    /// The partial decryptions of another holder's share swapped in.
    OtherHoldersPartials,
    /// The proof of another holder's share swapped in.
    OtherHoldersProof,
    /// The proof's response `z` incremented.
    ZPlusOne,
    /// The proof's commitment `a` multiplied by `1 + n`.
    CommitmentTimesGenerator,
    /// The partial plus `n²`: the same residue, but not a canonical element of `Z*_{n²}`.
    Unreduced,
    /// The partial replaced by `n`, which is not a unit.
    NotAUnit,
}

const ALL_TAMPERS: [Tamper; 8] = [
    Tamper::ExtraPower,
    Tamper::TimesGenerator,
    Tamper::OtherHoldersPartials,
    Tamper::OtherHoldersProof,
    Tamper::ZPlusOne,
    Tamper::CommitmentTimesGenerator,
    Tamper::Unreduced,
    Tamper::NotAUnit,
];

/// Holder position `h`'s share, tampered with at partial position `j`.
fn tampered(f: &Fixture, h: usize, j: usize, how: Tamper) -> DecryptionShare {
    let mut s = f.good[h].clone();
    let (n, n2) = (f.pk.n(), f.pk.n_squared());
    let other = (h + 1) % f.good.len();
    assert_ne!(other, h, "needs at least two holders");
    match how {
        Tamper::ExtraPower => s.partials[j] = s.partials[j].modpow(&BigUint::from(2u32), n2),
        Tamper::TimesGenerator => s.partials[j] = (&s.partials[j] * (n + 1u32)) % n2,
        Tamper::OtherHoldersPartials => s.partials = f.good[other].partials.clone(),
        Tamper::OtherHoldersProof => s.proof = f.good[other].proof.clone(),
        Tamper::ZPlusOne => s.proof.z += 1u32,
        Tamper::CommitmentTimesGenerator => s.proof.a = (&s.proof.a * (n + 1u32)) % n2,
        Tamper::Unreduced => s.partials[j] += n2,
        Tamper::NotAUnit => s.partials[j] = n.clone(),
    }
    assert_ne!(s, f.good[h], "{how:?} changed nothing");
    s
}

#[test]
fn tampered_shares_fail_verification_naming_their_holder() {
    let f = Fixture::new(2, 3, 107, 1);
    for h in 0..3 {
        // The honest share verifies: the failures below are the tampering's.
        assert_eq!(f.verified(h).holder(), f.holder(h));
        for how in ALL_TAMPERS {
            let bad = tampered(&f, h, 0, how);
            assert_blames(
                bad.verify(&f.pk, &f.cts, CONTEXT),
                f.holder(h),
                &format!("holder position {h}, {how:?}"),
            );
        }
    }
}

#[test]
fn batched_proof_fails_if_any_single_partial_is_wrong() {
    let f = Fixture::new(2, 3, 108, 8);
    let h = 1;
    assert_eq!(f.good[h].partials.len(), 8);
    f.verified(h);
    for j in 0..8 {
        for how in [Tamper::TimesGenerator, Tamper::ExtraPower] {
            let bad = tampered(&f, h, j, how);
            assert_blames(
                bad.verify(&f.pk, &f.cts, CONTEXT),
                f.holder(h),
                &format!("partial {j}, {how:?}"),
            );
        }
        // Two correct partials in each other's places.
        let mut swapped = f.good[h].clone();
        swapped.partials.swap(j, (j + 1) % 8);
        assert_blames(
            swapped.verify(&f.pk, &f.cts, CONTEXT),
            f.holder(h),
            &format!("partials {j} and {} swapped", (j + 1) % 8),
        );
    }
}

#[test]
fn batched_proof_fails_for_errors_that_cancel_in_the_product() {
    // c_{i,j}·(1 + n) and c_{i,k}·(1 + n)⁻¹ leave Π c_{i,j} unchanged: only the hashed weights
    // ρ_j of the batch catch this.
    let f = Fixture::new(2, 3, 117, 8);
    let h = 0;
    let n2 = f.pk.n_squared();
    let g = f.pk.n() + 1u32;
    let g_inv = g.modinv(n2).unwrap();
    for j in 0..8 {
        let k = (j + 3) % 8;
        let mut bad = f.good[h].clone();
        bad.partials[j] = (&bad.partials[j] * &g) % n2;
        bad.partials[k] = (&bad.partials[k] * &g_inv) % n2;
        assert_blames(
            bad.verify(&f.pk, &f.cts, CONTEXT),
            f.holder(h),
            &format!("partial {j} times (1 + n), partial {k} divided by it"),
        );
    }
}

fn check_bad_share_is_dropped_and_blamed(t: u16, l: u16, seed: u64) {
    let f = Fixture::new(t, l, seed, 2);
    let t = usize::from(t);
    assert!(l as usize > t, "needs t + 1 holders");
    for (round, bad) in (0..=t).enumerate() {
        let how = if round % 2 == 0 {
            Tamper::TimesGenerator
        } else {
            Tamper::ZPlusOne
        };
        // t + 1 shares (holder positions 0..=t), one of them bad: still decrypts.
        let shares: Vec<DecryptionShare> = (0..=t)
            .map(|h| {
                if h == bad {
                    tampered(&f, h, 0, how)
                } else {
                    f.good[h].clone()
                }
            })
            .collect();
        let combined = verify_and_combine(&f.pk, &f.cts, CONTEXT, &shares)
            .unwrap_or_else(|e| panic!("bad position {bad}: {e}"));
        assert_eq!(
            values(combined.plaintexts),
            f.plaintexts,
            "bad position {bad}"
        );
        assert_eq!(combined.rejected.len(), 1, "{:?}", combined.rejected);
        assert_blames(
            Err::<(), _>(combined.rejected[0].clone()),
            f.holder(bad),
            "rejected",
        );
        let used: Vec<ShareIndex> = (0..=t).filter(|&h| h != bad).map(|h| f.holder(h)).collect();
        assert_eq!(combined.used, used);

        // t − 1 good shares and the bad one: not enough, and the culprit is named.
        let mut shares: Vec<DecryptionShare> = (0..=t)
            .filter(|&h| h != bad)
            .take(t - 1)
            .map(|h| f.good[h].clone())
            .collect();
        shares.insert(bad.min(shares.len()), tampered(&f, bad, 0, how));
        assert_eq!(
            verify_and_combine(&f.pk, &f.cts, CONTEXT, &shares).unwrap_err(),
            Error::NotEnoughShares {
                valid: (0..=t)
                    .filter(|&h| h != bad)
                    .take(t - 1)
                    .map(|h| f.holder(h))
                    .collect(),
                threshold: t as u16,
                culprits: vec![f.holder(bad)],
            },
            "bad position {bad}"
        );
    }
}

#[test]
fn verify_and_combine_drops_and_blames_a_bad_share_2_of_3() {
    check_bad_share_is_dropped_and_blamed(2, 3, 109);
}

#[test]
fn verify_and_combine_drops_and_blames_a_bad_share_3_of_5() {
    check_bad_share_is_dropped_and_blamed(3, 5, 110);
}

// ---------------------------------------------------------------------------------------------
// A share is bound to its key, its holder, its ciphertexts and its context.

#[test]
fn share_verified_in_another_context_fails() {
    let f = Fixture::new(2, 3, 111, 2);
    for context in [&b"spddl round 43"[..], b"", b"spddl round 42\0"] {
        assert_blames(
            f.good[0].verify(&f.pk, &f.cts, context),
            f.holder(0),
            &format!("context {context:?}"),
        );
    }
}

#[test]
fn share_for_other_ciphertexts_fails() {
    let mut f = Fixture::new(2, 3, 112, 3);
    let h = 2;
    // Fresh encryptions of the same plaintexts.
    let fresh: Vec<Ciphertext> = f
        .cts
        .iter()
        .map(|c| f.pk.rerandomize(c, &mut f.rng))
        .collect();
    let mut reordered = f.cts.clone();
    reordered.swap(0, 2);
    let prefix = f.cts[..2].to_vec();
    let mut longer = f.cts.clone();
    longer.push(fresh[0].clone());
    let mut one_changed = f.cts.clone();
    one_changed[1] = fresh[1].clone();
    for (what, cts) in [
        ("fresh encryptions", fresh),
        ("reordered", reordered),
        ("prefix", prefix),
        ("one more", longer),
        ("one changed", one_changed),
    ] {
        assert_blames(f.good[h].verify(&f.pk, &cts, CONTEXT), f.holder(h), what);
    }
}

#[test]
fn share_of_another_key_fails() {
    let f = Fixture::new(2, 3, 113, 2);
    // Another key over the same test primes: same n, so the ciphertexts are valid under both.
    let (other_pk, other_shares) = test_key(1024, 2, 3, 913);
    assert_eq!(other_pk.n(), f.pk.n());
    assert_ne!(other_pk.key_id(), f.pk.key_id());
    let mut rng = Entropy::os();
    let foreign = other_shares[0]
        .decrypt(&other_pk, &f.cts, CONTEXT, &mut rng)
        .unwrap();
    foreign.verify(&other_pk, &f.cts, CONTEXT).unwrap();
    assert_blames(
        foreign.verify(&f.pk, &f.cts, CONTEXT),
        f.holder(0),
        "foreign share",
    );
    // Relabelled as a share of this key, its proof still fails against this key's v_1.
    let mut relabelled = foreign.clone();
    relabelled.key_id = f.pk.key_id();
    assert_blames(
        relabelled.verify(&f.pk, &f.cts, CONTEXT),
        f.holder(0),
        "foreign share relabelled",
    );
    // A share of another key cannot decrypt under this one.
    let err = other_shares[0]
        .decrypt(&f.pk, &f.cts, CONTEXT, &mut rng)
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidKeyShare { index: 1, .. }),
        "{err}"
    );
    let err = other_shares[0]
        .partial_decrypt(&f.pk, &f.cts[0])
        .unwrap_err();
    assert!(
        matches!(err, Error::InvalidKeyShare { index: 1, .. }),
        "{err}"
    );
    // Shares verified under one key do not combine under another.
    let verified = [f.verified(0), f.verified(1)];
    let err = combine(&other_pk, &verified).unwrap_err();
    assert!(matches!(err, Error::Mismatch(_)), "{err}");
}

#[test]
fn share_presented_as_another_holders_fails() {
    let f = Fixture::new(2, 3, 114, 1);
    let mut relabelled = f.good[0].clone();
    relabelled.holder = f.holder(1);
    assert_blames(
        relabelled.verify(&f.pk, &f.cts, CONTEXT),
        f.holder(1),
        "holder 1's share presented as holder 2's",
    );
    // A holder index that this key (ℓ = 3) does not have is refused, not a panic.
    let mut out_of_range = f.good[0].clone();
    out_of_range.holder = ShareIndex::new(5, 9).unwrap();
    assert_blames(
        out_of_range.verify(&f.pk, &f.cts, CONTEXT),
        ShareIndex::new(5, 9).unwrap(),
        "holder 5 of a 3-holder key",
    );
}

#[test]
fn combine_refuses_shares_verified_against_different_inputs() {
    let mut f = Fixture::new(2, 3, 115, 1);
    // Holder 2 decrypted the same ciphertexts in another round.
    let other_round = f.shares[1]
        .decrypt(&f.pk, &f.cts, b"spddl round 41", &mut f.rng)
        .unwrap()
        .verify(&f.pk, &f.cts, b"spddl round 41")
        .unwrap();
    let err = combine(&f.pk, &[f.verified(0), other_round]).unwrap_err();
    assert!(matches!(err, Error::Mismatch(_)), "{err}");
    // Holder 2 decrypted other ciphertexts (of the same plaintexts).
    let fresh = vec![f.pk.rerandomize(&f.cts[0], &mut f.rng)];
    let other_cts = f.shares[1]
        .decrypt(&f.pk, &fresh, CONTEXT, &mut f.rng)
        .unwrap()
        .verify(&f.pk, &fresh, CONTEXT)
        .unwrap();
    let err = combine(&f.pk, &[f.verified(0), other_cts]).unwrap_err();
    assert!(matches!(err, Error::Mismatch(_)), "{err}");
}

#[test]
fn decrypting_nothing_is_refused() {
    let (pk, shares) = test_key(1024, 2, 3, 116);
    let mut rng = Entropy::os();
    assert!(shares[0].decrypt(&pk, &[], CONTEXT, &mut rng).is_err());
}
