//! `spddl keygen`: the trusted dealer.

use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use clap::Args;
use spddl_crypto::formats::write_secret_file;
use spddl_crypto::paillier::Dealer;

/// Options of `spddl keygen`.
#[derive(Args)]
pub(crate) struct KeygenArgs {
    /// Size of the Paillier modulus n in bits (2048 or 3072; 1024 only with --insecure).
    #[arg(long, default_value_t = 2048)]
    bits: u64,
    /// Threshold t: any t key-share holders can decrypt together, fewer learn nothing.
    #[arg(long, short = 't')]
    threshold: u16,
    /// Number of key-share holders ℓ (t ≤ ℓ ≤ 1024).
    #[arg(long, short = 'l')]
    holders: u16,
    /// Directory for public.json and share-<i>.json; created if missing. Existing key files
    /// are never overwritten.
    #[arg(long, short = 'o')]
    out: PathBuf,
    /// Allow moduli below 2048 bits (for tests and experiments only: not secure).
    #[arg(long)]
    insecure: bool,
}

pub(crate) fn run(args: KeygenArgs) -> Result<()> {
    if args.bits < 2048 && !args.insecure {
        bail!(
            "a {}-bit modulus is not secure; use --bits 2048 or more, or add --insecure for tests",
            args.bits
        );
    }
    Dealer::check_threshold(args.threshold, args.holders)?;
    let public_path = args.out.join("public.json");
    let share_paths: Vec<PathBuf> = (1..=args.holders)
        .map(|i| args.out.join(format!("share-{i}.json")))
        .collect();
    if let Some(existing) = std::iter::once(&public_path)
        .chain(&share_paths)
        .find(|p| p.exists())
    {
        bail!(
            "{} already exists; choose another --out directory or remove the old key first",
            existing.display()
        );
    }
    let mut rng = spddl_crypto::Entropy::os();
    let start = Instant::now();
    let dealer = Dealer::generate(args.bits, &mut rng)?;
    let (pk, shares) = dealer.deal(args.threshold, args.holders, &mut rng)?;
    drop(dealer); // wipes p and q
    let elapsed = start.elapsed();

    create_private_dir(&args.out)?;
    std::fs::write(&public_path, pk.to_json())
        .with_context(|| format!("{}: cannot write", public_path.display()))?;
    for (share, path) in shares.iter().zip(&share_paths) {
        write_secret_file(path, share.to_json().as_bytes())
            .with_context(|| format!("{}: cannot write", path.display()))?;
    }
    println!(
        "dealt a {}-of-{} threshold Paillier key with a {}-bit modulus in {:.1} s",
        args.threshold,
        args.holders,
        pk.bits(),
        elapsed.as_secs_f64()
    );
    println!("key id {}", pk.key_id());
    println!("wrote {} (public key)", public_path.display());
    for (share, path) in shares.iter().zip(&share_paths) {
        println!(
            "wrote {} (secret key share of holder {}, mode 0600)",
            path.display(),
            share.index()
        );
    }
    Ok(())
}

fn create_private_dir(dir: &std::path::Path) -> Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .with_context(|| format!("{}: cannot create directory", dir.display()))
}
