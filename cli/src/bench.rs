//! `spddl bench`: rates of the cryptographic steps on this machine, single thread.
//!
//! Output is one JSON object per line, in the shape of `shared/anchors/gmp_paillier.py`
//! (`{"impl", "op", "bits", "parties", "ops_per_s"}`), so both can be compared in one run.

use std::time::{Duration, Instant};

use anyhow::Result;
use clap::Args;
use serde_json::json;
use spddl_crypto::paillier::{self, Dealer, Plaintext};

/// Options of `spddl bench`.
#[derive(Args)]
pub(crate) struct BenchArgs {
    /// Modulus size in bits.
    #[arg(long, default_value_t = 2048)]
    bits: u64,
    /// Number of key-share holders ℓ.
    #[arg(long, default_value_t = 5)]
    holders: u16,
    /// Threshold t.
    #[arg(long, default_value_t = 3)]
    threshold: u16,
    /// Ciphertexts per decryption share (one batched proof covers them all).
    #[arg(long, default_value_t = 16)]
    batch: usize,
    /// Minimum measuring time per operation, in seconds.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
}

/// Runs `op` repeatedly for at least `min` and returns operations per second, where one call
/// of `op` performs `per_call` operations.
fn rate(min: Duration, per_call: usize, mut op: impl FnMut()) -> f64 {
    op(); // warm-up (and lazy tables)
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < min || calls < 3 {
        op();
        calls += 1;
    }
    (calls as f64 * per_call as f64) / start.elapsed().as_secs_f64()
}

pub(crate) fn run(args: BenchArgs) -> Result<()> {
    let mut rng = rand::rng();
    let min = Duration::from_secs_f64(args.seconds);
    let report = |op: &str, ops_per_s: f64| {
        println!(
            "{}",
            json!({"impl": "spddl", "op": op, "bits": args.bits, "parties": args.holders,
                   "ops_per_s": (ops_per_s * 100.0).round() / 100.0})
        );
    };

    let start = Instant::now();
    let dealer = Dealer::generate(args.bits, &mut rng)?;
    let (pk, shares) = dealer.deal(args.threshold, args.holders, &mut rng)?;
    drop(dealer);
    report("keygen_both_cores", 1.0 / start.elapsed().as_secs_f64());

    let m = Plaintext::from_u64(&pk, 123_456_789)?;
    report(
        "encrypt_fixed_base",
        rate(min, 1, || {
            std::hint::black_box(pk.encrypt(&m, &mut rand::rng()));
        }),
    );
    report(
        "encrypt_textbook",
        rate(min, 1, || {
            std::hint::black_box(pk.encrypt_textbook(&m, &mut rand::rng()));
        }),
    );
    let cts: Vec<_> = (0..args.batch.max(1))
        .map(|i| {
            pk.encrypt(
                &Plaintext::from_u64(&pk, i as u64).expect("small"),
                &mut rng,
            )
        })
        .collect();
    report(
        "add",
        rate(min, 1, || {
            std::hint::black_box(pk.add(&cts[0], &cts[1 % cts.len()]));
        }),
    );
    let share = &shares[0];
    report(
        "partial_decrypt",
        rate(min, 1, || {
            std::hint::black_box(share.partial_decrypt(&pk, &cts[0]).expect("same key"));
        }),
    );
    let context = b"bench";
    report(
        "partial_decrypt_with_batched_proof",
        rate(min, cts.len(), || {
            std::hint::black_box(
                share
                    .decrypt(&pk, &cts, context, &mut rand::rng())
                    .expect("same key"),
            );
        }),
    );
    let ds: Vec<_> = shares
        .iter()
        .take(usize::from(args.threshold))
        .map(|s| s.decrypt(&pk, &cts, context, &mut rng))
        .collect::<Result<_, _>>()?;
    report(
        "verify_share_batched",
        rate(min, cts.len(), || {
            std::hint::black_box(ds[0].verify(&pk, &cts, context).expect("valid"));
        }),
    );
    let verified: Vec<_> = ds
        .iter()
        .map(|d| d.verify(&pk, &cts, context))
        .collect::<Result<_, _>>()?;
    report(
        "combine",
        rate(min, cts.len(), || {
            std::hint::black_box(paillier::combine(&pk, &verified).expect("valid"));
        }),
    );
    Ok(())
}
