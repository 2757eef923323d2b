//! `spddl crypto …`: a toolbox over the file formats, for poking at the scheme and checking
//! other implementations. Every command prints JSON on standard output.

use std::path::PathBuf;

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, Subcommand};
use num_bigint::BigUint;
use serde_json::json;
use spddl_crypto::formats::{ciphertexts_to_json, decryption_share_to_json};
use spddl_crypto::paillier::{self, Ciphertext, Plaintext, PublicKey};

use crate::files;

/// The toolbox commands.
#[derive(Subcommand)]
pub(crate) enum CryptoCommand {
    /// Encrypt decimal integers into a ciphertext file (printed as JSON).
    Encrypt(EncryptArgs),
    /// Add ciphertext files element-wise (homomorphic addition: Enc(a)·Enc(b) = Enc(a+b)).
    Add(AddArgs),
    /// Multiply every ciphertext of a file by a plaintext scalar: Enc(a)^k = Enc(k·a).
    Mul(MulArgs),
    /// A key-share holder's partial decryption of a ciphertext file, with its proof.
    PartialDecrypt(PartialDecryptArgs),
    /// Check decryption-share files against the public key and the ciphertexts.
    VerifyShare(SharesArgs),
    /// Combine any t valid decryption shares into the plaintexts; shares that fail
    /// verification are named and skipped.
    Combine(SharesArgs),
}

/// The public key every command needs.
#[derive(Args)]
pub(crate) struct KeyArg {
    /// The public key file written by `spddl keygen` (public.json).
    #[arg(long, short = 'k', value_name = "public.json")]
    key: PathBuf,
}

/// Options of `spddl crypto encrypt`.
#[derive(Args)]
pub(crate) struct EncryptArgs {
    #[command(flatten)]
    key: KeyArg,
    /// Non-negative decimal integers below n, one ciphertext each.
    #[arg(required = true, value_name = "VALUE", allow_negative_numbers = true)]
    values: Vec<String>,
    /// Use textbook randomness r^n (r uniform in Z*_n) instead of the fast base h_s^α.
    #[arg(long)]
    textbook: bool,
}

/// Options of `spddl crypto add`.
#[derive(Args)]
pub(crate) struct AddArgs {
    #[command(flatten)]
    key: KeyArg,
    /// Ciphertext files of equal length; element j of the output is the sum of elements j.
    #[arg(required = true, value_name = "CIPHERTEXTS.json")]
    inputs: Vec<PathBuf>,
}

/// Options of `spddl crypto mul`.
#[derive(Args)]
pub(crate) struct MulArgs {
    #[command(flatten)]
    key: KeyArg,
    /// The ciphertext file.
    #[arg(value_name = "CIPHERTEXTS.json")]
    input: PathBuf,
    /// The non-negative decimal scalar k.
    #[arg(long, allow_negative_numbers = true)]
    by: String,
}

/// Options of `spddl crypto partial-decrypt`.
#[derive(Args)]
pub(crate) struct PartialDecryptArgs {
    #[command(flatten)]
    key: KeyArg,
    /// This holder's secret key share (share-<i>.json).
    #[arg(long, short = 's', value_name = "share-<i>.json")]
    share: PathBuf,
    /// The ciphertext file to decrypt; one proof covers all its ciphertexts.
    #[arg(value_name = "CIPHERTEXTS.json")]
    input: PathBuf,
    /// Context bound into the proof (e.g. a round id); verifiers must give the same one, so
    /// a share cannot be replayed in another context.
    #[arg(long, default_value = "")]
    context: String,
}

/// Options of `spddl crypto verify-share` and `spddl crypto combine`.
#[derive(Args)]
pub(crate) struct SharesArgs {
    #[command(flatten)]
    key: KeyArg,
    /// The ciphertext file the shares claim to decrypt.
    #[arg(long, short = 'c', value_name = "CIPHERTEXTS.json")]
    ciphertexts: PathBuf,
    /// Expected context; by default the context recorded in the share files (which must
    /// agree).
    #[arg(long)]
    context: Option<String>,
    /// Decryption-share files written by `spddl crypto partial-decrypt`.
    #[arg(required = true, value_name = "SHARE.json")]
    shares: Vec<PathBuf>,
}

pub(crate) fn run(cmd: CryptoCommand) -> Result<()> {
    let out = match cmd {
        CryptoCommand::Encrypt(a) => encrypt(a)?,
        CryptoCommand::Add(a) => add(a)?,
        CryptoCommand::Mul(a) => mul(a)?,
        CryptoCommand::PartialDecrypt(a) => partial_decrypt(a)?,
        CryptoCommand::VerifyShare(a) => return verify_share(a),
        CryptoCommand::Combine(a) => combine(a)?,
    };
    print!("{out}");
    Ok(())
}

fn parse_decimal(s: &str, what: &str) -> Result<BigUint> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        bail!("{what} '{s}' is not a non-negative decimal integer");
    }
    BigUint::parse_bytes(s.as_bytes(), 10).ok_or_else(|| anyhow!("{what} '{s}' is not a number"))
}

fn encrypt(args: EncryptArgs) -> Result<String> {
    let pk = files::public_key(&args.key.key)?;
    let mut rng = spddl_crypto::Entropy::os();
    let cts = args
        .values
        .iter()
        .map(|s| {
            let m = Plaintext::new(&pk, parse_decimal(s, "value")?)
                .with_context(|| format!("value {s}"))?;
            Ok(if args.textbook {
                pk.encrypt_textbook(&m, &mut rng)
            } else {
                pk.encrypt(&m, &mut rng)
            })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(ciphertexts_to_json(&pk, &cts))
}

fn add(args: AddArgs) -> Result<String> {
    let pk = files::public_key(&args.key.key)?;
    let vectors = args
        .inputs
        .iter()
        .map(|p| files::ciphertexts(&pk, p))
        .collect::<Result<Vec<_>>>()?;
    if let Some((i, v)) = vectors
        .iter()
        .enumerate()
        .find(|(_, v)| v.len() != vectors[0].len())
    {
        bail!(
            "{}: holds {} ciphertexts but {} holds {}",
            args.inputs[i].display(),
            v.len(),
            args.inputs[0].display(),
            vectors[0].len()
        );
    }
    Ok(ciphertexts_to_json(&pk, &pk.sum_vectors(&vectors)?))
}

fn mul(args: MulArgs) -> Result<String> {
    let pk = files::public_key(&args.key.key)?;
    let k = parse_decimal(&args.by, "scalar")?;
    let cts = files::ciphertexts(&pk, &args.input)?;
    let out: Vec<Ciphertext> = cts.iter().map(|c| pk.scalar_mul(c, &k)).collect();
    Ok(ciphertexts_to_json(&pk, &out))
}

fn partial_decrypt(args: PartialDecryptArgs) -> Result<String> {
    let pk = files::public_key(&args.key.key)?;
    let share = files::key_share(&pk, &args.share)?;
    let cts = files::ciphertexts(&pk, &args.input)?;
    if cts.is_empty() {
        bail!(
            "{}: holds no ciphertexts; nothing to decrypt",
            args.input.display()
        );
    }
    let context = args.context.as_bytes();
    let ds = share
        .decrypt(&pk, &cts, context, &mut spddl_crypto::Entropy::os())
        .with_context(|| args.share.display().to_string())?;
    Ok(decryption_share_to_json(&ds, context))
}

/// What `verify-share` and `combine` work on.
type LoadedShares = (
    PublicKey,
    Vec<Ciphertext>,
    Vec<paillier::DecryptionShare>,
    Vec<u8>,
);

/// Loads the key, ciphertexts and share files, and settles the context the shares are checked
/// against.
fn load_shares(args: &SharesArgs) -> Result<LoadedShares> {
    let pk = files::public_key(&args.key.key)?;
    let cts = files::ciphertexts(&pk, &args.ciphertexts)?;
    let paths = &args.shares;
    let loaded = paths
        .iter()
        .map(|p| files::decryption_share(&pk, p))
        .collect::<Result<Vec<_>>>()?;
    let context = match args.context.as_deref() {
        Some(c) => c.as_bytes().to_vec(),
        None => {
            let first = loaded[0].1.clone();
            if let Some(i) = loaded.iter().position(|(_, c)| *c != first) {
                bail!(
                    "{}: made for context {}, but {} for context {}; pass --context",
                    paths[i].display(),
                    show_context(&loaded[i].1),
                    paths[0].display(),
                    show_context(&first)
                );
            }
            first
        }
    };
    for ((share, recorded), path) in loaded.iter().zip(paths) {
        if *recorded != context {
            eprintln!(
                "warning: {}: holder {} made this share for context {}, expected {}",
                path.display(),
                share.holder,
                show_context(recorded),
                show_context(&context)
            );
        }
    }
    let shares = loaded.into_iter().map(|(s, _)| s).collect();
    Ok((pk, cts, shares, context))
}

fn show_context(c: &[u8]) -> String {
    match std::str::from_utf8(c) {
        Ok(s) => format!("'{s}'"),
        Err(_) => format!("0x{}", hex_lower(c)),
    }
}

fn hex_lower(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn verify_share(args: SharesArgs) -> Result<()> {
    let (pk, cts, shares, context) = load_shares(&args)?;
    let mut report = Vec::new();
    let mut failed: Vec<String> = Vec::new();
    for (share, path) in shares.iter().zip(&args.shares) {
        let verdict = share.verify(&pk, &cts, &context);
        if let Err(e) = &verdict {
            failed.push(format!("{}: {e}", path.display()));
        }
        report.push(json!({
            "file": path.display().to_string(),
            "holder": share.holder.get(),
            "valid": verdict.is_ok(),
            "reason": verdict.err().map(|e| e.to_string()),
        }));
    }
    println!(
        "{}",
        serde_json::to_string_pretty(&json!({ "shares": report }))?
    );
    match failed.len() {
        0 => Ok(()),
        1 => Err(anyhow!("{}", failed[0])),
        n => Err(anyhow!(
            "{n} shares failed verification: {}",
            failed.join("; ")
        )),
    }
}

fn combine(args: SharesArgs) -> Result<String> {
    let (pk, cts, shares, context) = load_shares(&args)?;
    let combined = paillier::verify_and_combine(&pk, &cts, &context, &shares)?;
    for e in &combined.rejected {
        let holder = match e {
            spddl_crypto::Error::InvalidDecryptionShare { holder, .. }
            | spddl_crypto::Error::DuplicateShare { holder } => Some(*holder),
            _ => None,
        };
        let files: Vec<String> = shares
            .iter()
            .zip(&args.shares)
            .filter(|(s, _)| Some(s.holder) == holder)
            .map(|(_, p)| p.display().to_string())
            .collect();
        eprintln!("warning: {}: {e}; share skipped", files.join(", "));
    }
    let doc = json!({
        "key_id": pk.key_id().to_string(),
        "plaintexts": combined.plaintexts.iter().map(|m| m.value().to_string()).collect::<Vec<_>>(),
        "holders_used": combined.used.iter().map(|h| h.get()).collect::<Vec<_>>(),
        "rejected": combined.rejected.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
    });
    Ok(serde_json::to_string_pretty(&doc)? + "\n")
}
