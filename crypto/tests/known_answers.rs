#![allow(clippy::unwrap_used)]
//! Known-answer vectors under a fixed 1024-bit 2-of-3 test key, checked in under
//! `crypto/tests/data/kat/` (see the README there). The tests load the files, re-derive every
//! ciphertext and partial decryption with the crate AND with the formulas of DESIGN §3 written
//! out in num-bigint, and decrypt through the threshold path.
//!
//! The files were generated once by [`regenerate_known_answer_files`]; normal test runs never
//! write them. To regenerate (only when a change of the scheme is intended — the point of the
//! files is that they do not change):
//!
//! ```text
//! SPDDL_WRITE_KAT=1 cargo test -p spddl-crypto --test known_answers -- --ignored regenerate
//! ```
//!
//! Without `SPDDL_WRITE_KAT=1` the ignored test only checks that the generator reproduces the
//! checked-in files byte for byte — all but the decryption shares' proofs, whose nonces come
//! from the operating system (`spddl_crypto::Entropy`), so only their partials are compared.
//! Encryptions take their pinned `α` through `paillier::hazmat::encrypt_with_alpha`.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use num_bigint::BigUint;
use num_traits::{One, Zero};
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use serde_json::{Value, json};

use spddl_crypto::Entropy;
use spddl_crypto::formats::{decryption_share_from_json, decryption_share_to_json};
use spddl_crypto::paillier::{
    Ciphertext, KeyShare, Plaintext, PublicKey, hazmat, verify_and_combine,
};
use spddl_crypto::testing::{test_key, test_primes};

/// Seed of the test key (`testing::test_key`) and of the generator's randomness.
const KAT_SEED: u64 = 0x5bdd_0001;
/// The context the pinned decryption shares were made for.
const KAT_CONTEXT: &[u8] = b"spddl known-answer test";
/// Holders `ℓ` of the pinned key.
const HOLDERS: usize = 3;

fn kat_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/kat")
}

fn read(name: &str) -> String {
    let path = kat_dir().join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_json(name: &str) -> Value {
    serde_json::from_str(&read(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn key_share_file(i: usize) -> String {
    format!("key-share-{i}.json")
}

fn decryption_share_file(i: usize) -> String {
    format!("decryption-share-{i}.json")
}

/// Parses hexadecimal independently of the crate.
fn hex(v: &Value) -> BigUint {
    let s = v.as_str().unwrap_or_else(|| panic!("{v} is not a string"));
    BigUint::parse_bytes(s.as_bytes(), 16).unwrap_or_else(|| panic!("{s} is not hexadecimal"))
}

fn decimal(v: &Value) -> BigUint {
    let s = v.as_str().unwrap_or_else(|| panic!("{v} is not a string"));
    BigUint::parse_bytes(s.as_bytes(), 10).unwrap_or_else(|| panic!("{s} is not decimal"))
}

fn to_hex(x: &BigUint) -> String {
    x.to_str_radix(16)
}

/// The pinned key and shares, loaded through the crate's file formats.
fn load_key() -> (PublicKey, Vec<KeyShare>) {
    let pk = PublicKey::from_json(&read("public-key.json")).unwrap();
    let shares = (1..=HOLDERS)
        .map(|i| KeyShare::from_json(&pk, &read(&key_share_file(i))).unwrap())
        .collect();
    (pk, shares)
}

/// One pinned encryption.
struct Vector {
    plaintext: BigUint,
    alpha: BigUint,
    ciphertext: BigUint,
}

fn load_vectors() -> (Value, Vec<Vector>) {
    let doc = read_json("vectors.json");
    let vectors = doc["encryptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| Vector {
            plaintext: decimal(&v["plaintext"]),
            alpha: hex(&v["alpha"]),
            ciphertext: hex(&v["ciphertext"]),
        })
        .collect();
    (doc, vectors)
}

fn ciphertexts(pk: &PublicKey, vectors: &[Vector]) -> Vec<Ciphertext> {
    vectors
        .iter()
        .map(|v| Ciphertext::new(pk, v.ciphertext.clone()).unwrap())
        .collect()
}

// ---------------------------------------------------------------------------------------------

#[test]
fn pinned_key_is_the_checked_in_test_key() {
    let (pk, shares) = load_key();
    let (doc, _) = load_vectors();
    let (p, q) = test_primes(1024);
    assert_eq!(
        pk.n(),
        &(&p * &q),
        "the KAT key is over the 1024-bit test primes"
    );
    assert_eq!((pk.threshold(), usize::from(pk.holders())), (2, HOLDERS));
    assert_eq!(doc["key_id"].as_str().unwrap(), pk.key_id().to_string());

    // v_i = v^{Δ·s_i} mod n², from the documents' numbers alone.
    let key_doc = read_json("public-key.json");
    let n = hex(&key_doc["n"]);
    let n2 = &n * &n;
    let v = hex(&key_doc["v"]);
    let delta = common::factorial(HOLDERS as u64);
    for (i, share) in shares.iter().enumerate() {
        assert_eq!(usize::from(share.index().get()), i + 1);
        let s_i = hex(&read_json(&key_share_file(i + 1))["secret_share"]);
        let v_i = hex(&key_doc["verification_keys"][i]);
        assert_eq!(v.modpow(&(&delta * &s_i), &n2), v_i, "v_{}", i + 1);
    }
}

#[test]
fn pinned_ciphertexts_are_reproduced() {
    let (pk, _) = load_key();
    let (_, vectors) = load_vectors();
    let (p, q) = test_primes(1024);
    let key_doc = read_json("public-key.json");
    let (n, h_s) = (hex(&key_doc["n"]), hex(&key_doc["h_s"]));
    assert!(vectors.len() >= 6);
    for (j, v) in vectors.iter().enumerate() {
        let m = Plaintext::new(&pk, v.plaintext.clone()).unwrap();
        assert_eq!(
            hazmat::encrypt_with_alpha(&pk, &m, &v.alpha).value(),
            &v.ciphertext,
            "encrypt_with_alpha, vector {j}"
        );
        assert_eq!(
            common::encrypt_with_base(&n, &h_s, &v.plaintext, &v.alpha),
            v.ciphertext,
            "(1 + m·n)·h_s^α mod n², vector {j}"
        );
        assert_eq!(
            common::standard_decrypt(&p, &q, &v.ciphertext),
            v.plaintext,
            "standard decryption, vector {j}"
        );
    }
}

#[test]
fn pinned_partial_decryptions_are_reproduced_and_combine() {
    let (pk, shares) = load_key();
    let (doc, vectors) = load_vectors();
    let section = &doc["partial_decryptions"];
    let target = &vectors[section["ciphertext"].as_u64().unwrap() as usize];
    let c = Ciphertext::new(&pk, target.ciphertext.clone()).unwrap();
    let n = pk.n().clone();
    let n2 = &n * &n;
    let delta = common::factorial(HOLDERS as u64);

    let mut partials = BTreeMap::new();
    for entry in section["partials"].as_array().unwrap() {
        let i = entry["holder"].as_u64().unwrap();
        let pinned = hex(&entry["value"]);
        let share = &shares[i as usize - 1];
        assert_eq!(u64::from(share.index().get()), i);
        assert_eq!(
            share.partial_decrypt(&pk, &c).unwrap(),
            pinned,
            "holder {i}"
        );
        // c^{2Δ·s_i} mod n² from the key-share document's number.
        let s_i = hex(&read_json(&key_share_file(i as usize))["secret_share"]);
        assert_eq!(
            target.ciphertext.modpow(&(&delta * &s_i * 2u32), &n2),
            pinned,
            "c^(2Δs_i), holder {i}"
        );
        partials.insert(i, pinned);
    }
    assert_eq!(partials.len(), HOLDERS);

    let combined = doc["combined"].as_array().unwrap();
    assert_eq!(combined.len(), 3);
    for entry in combined {
        let set: Vec<(u64, BigUint)> = entry["holders"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| {
                let i = h.as_u64().unwrap();
                (i, partials[&i].clone())
            })
            .collect();
        let expected = decimal(&entry["plaintext"]);
        assert_eq!(expected, target.plaintext);
        assert_eq!(
            common::independent_combine(&n, HOLDERS as u64, &set),
            expected,
            "holders {}",
            entry["holders"]
        );
    }
}

#[test]
fn pinned_ciphertexts_decrypt_through_the_threshold_path() {
    let (pk, shares) = load_key();
    let (doc, vectors) = load_vectors();
    let mut cts = ciphertexts(&pk, &vectors);
    let mut expected: Vec<BigUint> = vectors.iter().map(|v| v.plaintext.clone()).collect();

    let sum = pk.sum(&cts);
    assert_eq!(sum.value(), &hex(&doc["sum"]["ciphertext"]));
    let sum_plaintext = decimal(&doc["sum"]["plaintext"]);
    assert_eq!(
        sum_plaintext,
        expected
            .iter()
            .fold(BigUint::zero(), |acc, m| (acc + m) % pk.n())
    );
    cts.push(sum);
    expected.push(sum_plaintext);

    for pair in [[0, 1], [0, 2], [1, 2]] {
        assert_eq!(
            common::threshold_decrypt(&pk, &shares, &pair, &cts),
            expected,
            "holders at positions {pair:?}"
        );
    }
}

#[test]
fn pinned_decryption_shares_still_verify() {
    // Decryption shares travel between parties that may run different builds: a proof made
    // by this file's generator must keep verifying, and its partials must stay c^{2Δs_i}.
    let (pk, shares) = load_key();
    let (_, vectors) = load_vectors();
    let cts = ciphertexts(&pk, &vectors);
    let mut pinned = Vec::new();
    for (i, share) in shares.iter().enumerate() {
        let (ds, context) =
            decryption_share_from_json(&pk, &read(&decryption_share_file(i + 1))).unwrap();
        assert_eq!(context, KAT_CONTEXT);
        assert_eq!(ds.holder, share.index());
        for (c, partial) in cts.iter().zip(&ds.partials) {
            assert_eq!(&share.partial_decrypt(&pk, c).unwrap(), partial);
        }
        ds.verify(&pk, &cts, KAT_CONTEXT)
            .unwrap_or_else(|e| panic!("pinned share of holder {}: {e}", i + 1));
        pinned.push(ds);
    }
    let combined = verify_and_combine(&pk, &cts, KAT_CONTEXT, &pinned).unwrap();
    assert!(combined.rejected.is_empty());
    let got: Vec<BigUint> = combined
        .plaintexts
        .into_iter()
        .map(Plaintext::into_value)
        .collect();
    let expected: Vec<BigUint> = vectors.iter().map(|v| v.plaintext.clone()).collect();
    assert_eq!(got, expected);
}

// ---------------------------------------------------------------------------------------------
// The generator.

/// Every file of `tests/data/kat/` but the README, by name, as the generator makes them.
fn generate() -> BTreeMap<String, String> {
    let (pk, shares) = test_key(1024, 2, 3, KAT_SEED);
    let mut rng = ChaCha20Rng::seed_from_u64(KAT_SEED);
    let n = pk.n().clone();
    let alpha_bits = pk.alpha_bits();
    let random_alpha =
        |rng: &mut ChaCha20Rng, bits: u64| common::random_below(&(BigUint::one() << bits), rng);

    // (plaintext, α): edges of both, the slow path (α longer than |n|/2 bits), and the bulk.
    let cases: Vec<(BigUint, BigUint)> = vec![
        (BigUint::zero(), random_alpha(&mut rng, alpha_bits)),
        (BigUint::one(), random_alpha(&mut rng, alpha_bits)),
        (BigUint::from(42u32), BigUint::zero()),
        (BigUint::one() << 64u32, BigUint::one()),
        (
            common::random_below(&n, &mut rng),
            (BigUint::one() << alpha_bits) - 1u32,
        ),
        (&n - 1u32, random_alpha(&mut rng, alpha_bits)),
        (
            BigUint::from(123_456_789u32),
            random_alpha(&mut rng, alpha_bits + 64) | (BigUint::one() << (alpha_bits + 63)),
        ),
        (
            common::random_below(&n, &mut rng),
            random_alpha(&mut rng, alpha_bits),
        ),
    ];
    let cts: Vec<Ciphertext> = cases
        .iter()
        .map(|(m, alpha)| {
            hazmat::encrypt_with_alpha(&pk, &Plaintext::new(&pk, m.clone()).unwrap(), alpha)
        })
        .collect();
    let encryptions: Vec<Value> = cases
        .iter()
        .zip(&cts)
        .map(|((m, alpha), c)| {
            json!({
                "plaintext": m.to_string(),
                "alpha": to_hex(alpha),
                "ciphertext": to_hex(c.value()),
            })
        })
        .collect();

    let target = cases.len() - 1;
    let partials: Vec<Value> = shares
        .iter()
        .map(|s| {
            json!({
                "holder": s.index().get(),
                "value": to_hex(&s.partial_decrypt(&pk, &cts[target]).unwrap()),
            })
        })
        .collect();
    let mut combined = Vec::new();
    for pair in [[0usize, 1], [0, 2], [1, 2]] {
        let got = common::threshold_decrypt(&pk, &shares, &pair, &cts[target..]);
        assert_eq!(got[0], cases[target].0);
        combined.push(json!({
            "holders": pair.map(|h| h + 1),
            "plaintext": got[0].to_string(),
        }));
    }
    let sum = pk.sum(&cts);
    let sum_plaintext =
        common::threshold_decrypt(&pk, &shares, &[0, 2], std::slice::from_ref(&sum));

    let vectors = json!({
        "description": "TEST DATA ONLY. Known-answer vectors of SPDDL threshold Paillier \
            (DESIGN.md §3) under the 2-of-3 test key in public-key.json. encryptions: \
            ciphertext = (1 + plaintext·n)·h_s^alpha mod n², plaintext decimal, alpha and \
            ciphertext hexadecimal. partial_decryptions: c^(2·Δ·s_i) mod n² (Δ = 3! = 6) of \
            encryptions[ciphertext] for every holder i. combined: the plaintext that each pair \
            of holders' partials combine to. sum: the product of all ciphertexts mod n² and its \
            plaintext. Generated by crypto/tests/known_answers.rs (regenerate_known_answer_files).",
        "key_id": pk.key_id().to_string(),
        "encryptions": encryptions,
        "partial_decryptions": {
            "ciphertext": target,
            "partials": partials,
        },
        "combined": combined,
        "sum": {
            "ciphertext": to_hex(sum.value()),
            "plaintext": sum_plaintext[0].to_string(),
        },
    });

    let mut files = BTreeMap::new();
    files.insert("public-key.json".to_string(), pk.to_json());
    for (i, share) in shares.iter().enumerate() {
        files.insert(key_share_file(i + 1), share.to_json().to_string());
        let ds = share
            .decrypt(&pk, &cts, KAT_CONTEXT, &mut Entropy::os())
            .unwrap();
        files.insert(
            decryption_share_file(i + 1),
            decryption_share_to_json(&ds, KAT_CONTEXT),
        );
    }
    files.insert(
        "vectors.json".to_string(),
        serde_json::to_string_pretty(&vectors).unwrap() + "\n",
    );
    files
}

/// Writes `tests/data/kat/*.json` when `SPDDL_WRITE_KAT=1`; otherwise checks that the generator
/// reproduces the checked-in files. Ignored so that normal runs never touch the data:
/// `SPDDL_WRITE_KAT=1 cargo test -p spddl-crypto --test known_answers -- --ignored regenerate`
#[test]
#[ignore = "generator of tests/data/kat; run explicitly (see the module docs)"]
fn regenerate_known_answer_files() {
    let files = generate();
    if std::env::var("SPDDL_WRITE_KAT").as_deref() == Ok("1") {
        std::fs::create_dir_all(kat_dir()).unwrap();
        for (name, contents) in &files {
            std::fs::write(kat_dir().join(name), contents).unwrap();
        }
        eprintln!("wrote {} files to {}", files.len(), kat_dir().display());
    } else {
        let pk = PublicKey::from_json(&read("public-key.json")).unwrap();
        for (name, contents) in &files {
            if name.starts_with("decryption-share-") {
                // A proof's nonce comes from the operating system, never a seed, so only the
                // partials are reproducible; the checked-in proof must still verify
                // (`pinned_decryption_shares_still_verify`).
                let (pinned, _) = decryption_share_from_json(&pk, &read(name)).unwrap();
                let (made, _) = decryption_share_from_json(&pk, contents).unwrap();
                assert_eq!(
                    (pinned.holder, pinned.partials),
                    (made.holder, made.partials),
                    "{name}: partials differ from the generator's"
                );
                continue;
            }
            assert_eq!(
                &read(name),
                contents,
                "{name} differs from the generator's output"
            );
        }
    }
}
