//! `spddl bench crypto` and `spddl bench round`: what each cryptographic step costs on this
//! machine, single thread and on every core, and how close a real round comes to its floor.
//!
//! `--json` prints one object per line in the shape of `scripts/gmp_paillier.py` (a copy of
//! `shared/anchors/gmp_paillier.py`): `{"impl", "op", "bits", "threads", "ops_per_s"}`, plus
//! the kernel and why it was chosen, the CPU model and the features that choice depends on,
//! the version, the number of operations timed (`samples`) and `anchor_op`, the GMP script's
//! name for the same operation, so scripts can put the two side by side from one run
//! (`scripts/gmp_paillier.py --compare`).

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use serde_json::json;
use spddl_crypto::encoding::PackingParams;
use spddl_crypto::mont::{KernelKind, Montgomery};
use spddl_crypto::paillier::{self, Ciphertext, Dealer, KeyShare, Plaintext, PublicKey};
use spddl_experiments::driver;
use spddl_experiments::keycache;
use spddl_experiments::metrics::{Mode, RoundMetrics};

/// `spddl bench …`
#[derive(Subcommand)]
pub(crate) enum BenchCommand {
    /// Rates of every primitive (one thread and all cores), key generation time, and the
    /// projected cost of a round for a model size and client count.
    Crypto(CryptoArgs),
    /// Runs secure rounds of a scenario and prints each stage against the round's floor.
    Round(RoundArgs),
    /// Draws round time against clients and against model size from `bench round --json`
    /// output, and prints the runs as a table.
    Plot(PlotArgs),
    /// One fog worker taking signed uploads from many clients at once (loopback, mutual TLS,
    /// each client its own identity and connection): throughput and peak memory.
    Fog(FogArgs),
}

/// Options of `spddl bench fog`.
#[derive(Args)]
pub(crate) struct FogArgs {
    /// Clients uploading at the same moment.
    #[arg(long, default_value_t = 1000)]
    clients: usize,
}

/// Options of `spddl bench plot`.
#[derive(Args)]
pub(crate) struct PlotArgs {
    /// Files of `spddl bench round --json` lines (several runs, any order).
    #[arg(required = true, value_name = "FILE")]
    input: Vec<PathBuf>,
    /// Directory for `round-time-vs-clients.svg` and `round-time-vs-model-size.svg`.
    #[arg(long, default_value = "experiments/plots")]
    out: PathBuf,
}

/// Options of `spddl bench crypto`.
#[derive(Args)]
pub(crate) struct CryptoArgs {
    /// Modulus size in bits.
    #[arg(long, default_value_t = 2048)]
    bits: u64,
    /// Number of key-share holders ℓ.
    #[arg(long, default_value_t = 5)]
    holders: u16,
    /// Threshold t.
    #[arg(long, default_value_t = 3)]
    threshold: u16,
    /// Ciphertexts per batch (one decryption share and proof covers a batch).
    #[arg(long, default_value_t = 64)]
    batch: usize,
    /// Minimum measuring time per figure, in seconds.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// Model size for the projected round, in parameters (default: MNIST MLP 784-128-10).
    #[arg(long, default_value_t = 101_770)]
    params: u64,
    /// Clients for the projected round.
    #[arg(long, default_value_t = 20)]
    clients: u32,
    /// Bits per quantized value for the projected round.
    #[arg(long, default_value_t = 16)]
    value_bits: u32,
    /// One JSON object per line instead of a table.
    #[arg(long)]
    json: bool,
}

/// Options of `spddl bench round`.
#[derive(Args)]
pub(crate) struct RoundArgs {
    /// Scenario file (TOML); without it the built-in digits scenario.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override a scenario field, as for `spddl simulate`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Rounds to run (overrides the scenario's).
    #[arg(long, default_value_t = 3)]
    rounds: u64,
    /// Minimum measuring time per primitive rate, in seconds.
    #[arg(long, default_value_t = 1.0)]
    seconds: f64,
    /// One JSON object per round (for `spddl bench plot`) instead of a table.
    #[arg(long)]
    json: bool,
}

pub(crate) fn run(cmd: BenchCommand) -> Result<()> {
    match cmd {
        BenchCommand::Crypto(args) => crypto(args),
        BenchCommand::Round(args) => round(args),
        BenchCommand::Plot(args) => plot(args),
        BenchCommand::Fog(args) => fog(args),
    }
}

/// A measured rate and how many operations it was measured over.
#[derive(Clone, Copy)]
struct Figure {
    per_s: f64,
    samples: u64,
}

/// Runs `op` repeatedly for at least `min` and returns operations per second, where one call
/// performs `per_call` operations.
fn rate(min: Duration, per_call: usize, mut op: impl FnMut()) -> Figure {
    op(); // warm-up (and lazy tables)
    let start = Instant::now();
    let mut calls = 0u64;
    while start.elapsed() < min || calls < 2 {
        op();
        calls += 1;
    }
    let samples = calls * per_call as u64;
    Figure {
        per_s: samples as f64 / start.elapsed().as_secs_f64(),
        samples,
    }
}

/// Runs `f` on a pool of `threads` threads (rayon inside the library follows it).
fn on_threads<T: Send>(threads: usize, f: impl FnOnce() -> T + Send) -> Result<T> {
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .context("starting a thread pool")?;
    Ok(pool.install(f))
}

/// Single-thread and all-core rates of the primitives under one key.
struct Rates {
    encrypt: [Figure; 2],
    encrypt_textbook: [Figure; 2],
    add: Figure,
    sum: [Figure; 2],
    partial_decrypt: [Figure; 2],
    partial_decrypt_with_proof: [Figure; 2],
    verify_share: [Figure; 2],
    combine: [Figure; 2],
    modexp_full: Figure,
    signature_verify: Figure,
    signature_verify_batch: Figure,
}

fn measure(
    pk: &PublicKey,
    shares: &[KeyShare],
    batch: usize,
    min: Duration,
    cores: usize,
) -> Result<Rates> {
    let mut rng = spddl_crypto::Entropy::os();
    let batch = batch.max(2);
    let plaintexts: Vec<Plaintext> = (0..batch)
        .map(|i| Plaintext::from_u64(pk, 1_000_003 * i as u64))
        .collect::<Result<_, _>>()?;
    pk.precompute_encryption_table();
    let cts = pk.encrypt_all(&plaintexts, &mut rng);
    let context = b"bench";
    let t = usize::from(pk.threshold());
    let ds: Vec<_> = shares
        .iter()
        .take(t)
        .map(|s| s.decrypt(pk, &cts, context, &mut spddl_crypto::Entropy::os()))
        .collect::<Result<_, _>>()?;
    let verified: Vec<_> = ds
        .iter()
        .map(|d| d.verify(pk, &cts, context))
        .collect::<Result<_, _>>()?;
    let vectors: Vec<Vec<Ciphertext>> = (0..20).map(|_| cts.clone()).collect();
    let share = &shares[0];

    let both = |per_call: usize, op: &(dyn Fn() + Sync)| -> Result<[Figure; 2]> {
        Ok([
            on_threads(1, || rate(min, per_call, op))?,
            on_threads(cores, || rate(min, per_call, op))?,
        ])
    };
    let encrypt = both(batch, &|| {
        std::hint::black_box(pk.encrypt_all(&plaintexts, &mut spddl_crypto::Entropy::os()));
    })?;
    let encrypt_textbook = both(batch.min(16), &|| {
        use rayon::prelude::*;
        plaintexts[..batch.min(16)].par_iter().for_each(|m| {
            std::hint::black_box(pk.encrypt_textbook(m, &mut spddl_crypto::Entropy::os()));
        });
    })?;
    let add = on_threads(1, || {
        rate(min, 1, || {
            std::hint::black_box(pk.add(&cts[0], &cts[1]));
        })
    })?;
    let sum = both(19 * batch, &|| {
        std::hint::black_box(pk.sum_vectors(&vectors).expect("equal lengths"));
    })?;
    let partial_decrypt = both(batch, &|| {
        use rayon::prelude::*;
        cts.par_iter().for_each(|c| {
            std::hint::black_box(share.partial_decrypt(pk, c).expect("same key"));
        });
    })?;
    let partial_decrypt_with_proof = both(batch, &|| {
        std::hint::black_box(
            share
                .decrypt(pk, &cts, context, &mut spddl_crypto::Entropy::os())
                .expect("same key"),
        );
    })?;
    let verify_share = both(batch, &|| {
        std::hint::black_box(ds[0].verify(pk, &cts, context).expect("valid"));
    })?;
    let combine = both(batch, &|| {
        std::hint::black_box(paillier::combine(pk, &verified).expect("valid"));
    })?;
    // x^e mod n² with e of |n²| bits: the floor under a partial decryption.
    let mont = Montgomery::new(pk.n_squared()).context("n² is odd")?;
    let e = spddl_crypto::arith::random_bits(pk.n_squared().bits(), &mut rng);
    let x = spddl_crypto::arith::random_bits(pk.n_squared().bits() - 1, &mut rng);
    let modexp_full = on_threads(1, || {
        rate(min, 1, || {
            std::hint::black_box(mont.pow_mod(&x, &e));
        })
    })?;
    // A fog's batch of upload signatures: one by one, and as one batch verification.
    use spddl_crypto::identity::{SigningKey, Transcript, verify_batch};
    let signed: Vec<_> = (0..batch as u64)
        .map(|i| {
            let key = SigningKey::generate(&mut spddl_crypto::Entropy::os());
            let mut t = Transcript::new("bench-upload");
            t.append_u64("client", i);
            let sig = key.sign(&t);
            (key.verifying_key(), t, sig)
        })
        .collect();
    let signature_verify = on_threads(1, || {
        rate(min, signed.len(), || {
            for (vk, t, sig) in &signed {
                std::hint::black_box(vk.verify(t, sig)).expect("valid");
            }
        })
    })?;
    let items: Vec<_> = signed.iter().map(|(vk, t, sig)| (vk, t, sig)).collect();
    let signature_verify_batch = on_threads(1, || {
        rate(min, items.len(), || {
            std::hint::black_box(verify_batch(&items)).expect("valid");
        })
    })?;
    Ok(Rates {
        signature_verify,
        signature_verify_batch,
        encrypt,
        encrypt_textbook,
        add,
        sum,
        partial_decrypt,
        partial_decrypt_with_proof,
        verify_share,
        combine,
        modexp_full,
    })
}

fn crypto(args: CryptoArgs) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let min = Duration::from_secs_f64(args.seconds);
    let (kernel, why) = KernelKind::choice();
    let machine = Machine::this();
    let start = Instant::now();
    let dealer = Dealer::generate(args.bits, &mut spddl_crypto::Entropy::os())?;
    let (pk, shares) = dealer.deal(
        args.threshold,
        args.holders,
        &mut spddl_crypto::Entropy::os(),
    )?;
    drop(dealer);
    let keygen_s = start.elapsed().as_secs_f64();
    let table_bytes = pk.precompute_encryption_table();
    let r = measure(&pk, &shares, args.batch, min, cores)?;

    let rows: Vec<(&str, Figure, Option<Figure>)> = vec![
        ("encrypt", r.encrypt[0], Some(r.encrypt[1])),
        (
            "encrypt_textbook",
            r.encrypt_textbook[0],
            Some(r.encrypt_textbook[1]),
        ),
        ("add", r.add, None),
        ("sum", r.sum[0], Some(r.sum[1])),
        (
            "partial_decrypt",
            r.partial_decrypt[0],
            Some(r.partial_decrypt[1]),
        ),
        (
            "partial_decrypt_with_proof",
            r.partial_decrypt_with_proof[0],
            Some(r.partial_decrypt_with_proof[1]),
        ),
        ("verify_share", r.verify_share[0], Some(r.verify_share[1])),
        ("combine", r.combine[0], Some(r.combine[1])),
        ("modexp_full", r.modexp_full, None),
        ("signature_verify", r.signature_verify, None),
        ("signature_verify_batch", r.signature_verify_batch, None),
    ];

    // Projected round (DESIGN §3 "Cost"): each client encrypts ⌈m/S⌉ ciphertexts, t holders
    // each decrypt them once with a proof, the aggregator verifies t shares and combines.
    let packing = PackingParams::new(
        args.value_bits,
        u64::from(args.clients),
        u32::try_from(pk.bits()).unwrap_or(u32::MAX),
    )?;
    let per_client = args.params.div_ceil(packing.slots_per_plaintext() as u64) as f64;
    let clients = f64::from(args.clients);
    let t = f64::from(args.threshold);
    let client_enc = per_client / r.encrypt[0].per_s;
    let holder_dec = per_client / r.partial_decrypt_with_proof[0].per_s;
    let verify = t * per_client / r.verify_share[0].per_s;
    let combine = per_client / r.combine[0].per_s;
    let fog = clients * per_client / r.sum[0].per_s;
    // One value per ciphertext with textbook encryption (python-paillier, FATE's horizontal
    // path): m encryptions at the textbook rate.
    let naive_client_enc = args.params as f64 / r.encrypt_textbook[0].per_s;

    if args.json {
        let line = |op: &str, threads: usize, v: Figure| {
            let mut o = json!({"impl": "spddl", "kernel": kernel.name(), "kernel_reason": why,
                   "cpu": machine.cpu, "cpu_flags": machine.flags, "version": env!("CARGO_PKG_VERSION"),
                   "op": op, "bits": args.bits, "parties": args.holders, "threads": threads,
                   "samples": v.samples, "ops_per_s": (v.per_s * 100.0).round() / 100.0});
            if let Some(anchor) = anchor_op(op) {
                o["anchor_op"] = json!(anchor);
            }
            println!("{o}");
        };
        line(
            "keygen",
            cores,
            Figure {
                per_s: 1.0 / keygen_s,
                samples: 1,
            },
        );
        for (op, one, all) in &rows {
            line(op, 1, *one);
            if let Some(all) = all {
                line(op, cores, *all);
            }
        }
        println!(
            "{}",
            json!({"impl": "spddl", "op": "projected_round", "bits": args.bits,
                   "params": args.params, "clients": args.clients, "slots": packing.slots_per_plaintext(),
                   "ciphertexts_per_client": per_client,
                   "client_encrypt_s": client_enc, "holder_decrypt_s": holder_dec,
                   "aggregator_verify_s": verify, "aggregator_combine_s": combine,
                   "fog_sum_s": fog, "textbook_one_value_client_encrypt_s": naive_client_enc,
                   "table_bytes": table_bytes})
        );
        return Ok(());
    }

    println!(
        "spddl bench crypto {}: {}-bit n, t = {} of ℓ = {}, kernel {} ({why}), {} cores",
        env!("CARGO_PKG_VERSION"),
        args.bits,
        args.threshold,
        args.holders,
        kernel.name(),
        cores
    );
    println!("cpu: {}; {}", machine.cpu, machine.flags.join(" "));
    println!(
        "key generation (all cores): {keygen_s:.2} s; fixed-base table {:.1} MB",
        table_bytes as f64 / 1e6
    );
    println!();
    println!(
        "{:<28} {:>14} {:>14} {:>8}",
        "operation",
        "1 thread /s",
        format!("{cores} threads /s"),
        "speedup"
    );
    for (op, one, all) in &rows {
        let one = one.per_s;
        match all {
            Some(all) => println!(
                "{op:<28} {one:>14.1} {:>14.1} {:>7.2}×",
                all.per_s,
                all.per_s / one
            ),
            None => println!("{op:<28} {one:>14.1} {:>14} {:>8}", "", ""),
        }
    }
    println!(
        "(per ciphertext or signature; sum counts multiplications; batches of {}; batch \
         signature verification {:.2}× one by one)",
        args.batch.max(2),
        r.signature_verify_batch.per_s / r.signature_verify.per_s
    );
    println!();
    println!(
        "projected round: {} parameters, {} clients, {}-bit values, S = {} slots of {} bits \
         → {per_client} ciphertexts per client",
        args.params,
        args.clients,
        args.value_bits,
        packing.slots_per_plaintext(),
        packing.slot_bits()
    );
    let row = |what: &str, s: f64| {
        println!(
            "  {what:<44} {s:>9.2} s on 1 thread, {:>8.2} s on {cores}",
            s / cores as f64
        )
    };
    row("each client: encrypt", client_enc);
    row("each fog (all clients): sum", fog);
    row("each key holder: partial decryption + proof", holder_dec);
    row("aggregator: verify t shares", verify);
    row("aggregator: combine", combine);
    println!(
        "  one value per ciphertext, textbook encryption (python-paillier style): \
         {naive_client_enc:.0} s per client, {:.0}× slower than SPDDL's {client_enc:.2} s",
        naive_client_enc / client_enc
    );
    Ok(())
}

/// The op of `scripts/gmp_paillier.py` (and `shared/anchors/gmp_paillier.py`) that measures
/// the same operation as SPDDL's `op`; `sum` is compared with GMP's `add` (one product mod
/// `n²` per added ciphertext).
fn anchor_op(op: &str) -> Option<&'static str> {
    Some(match op {
        "encrypt" => "enc_djn_fixedbase",
        "encrypt_textbook" => "enc_textbook",
        "add" | "sum" => "add",
        "partial_decrypt" => "partial_dec",
        "modexp_full" => "modexp_full",
        _ => return None,
    })
}

/// The processor, as reports name it.
struct Machine {
    /// `model name` of `/proc/cpuinfo` (Linux), else the architecture.
    cpu: String,
    /// The features the kernel choice depends on, `+name` present, `-name` absent.
    flags: Vec<String>,
}

impl Machine {
    fn this() -> Self {
        let cpu = std::fs::read_to_string("/proc/cpuinfo")
            .ok()
            .and_then(|info| {
                info.lines()
                    .find(|l| l.starts_with("model name"))
                    .and_then(|l| l.split_once(':'))
                    .map(|(_, v)| v.trim().to_string())
            })
            .unwrap_or_else(|| std::env::consts::ARCH.to_string());
        let flags = spddl_crypto::mont::cpu_features()
            .into_iter()
            .map(|(name, has)| format!("{}{name}", if has { '+' } else { '-' }))
            .collect();
        Machine { cpu, flags }
    }
}

fn round(args: RoundArgs) -> Result<()> {
    let mut scenario = crate::simulate::parse_scenario(args.config.as_deref(), &args.set)?;
    scenario.rounds = args.rounds;
    crate::simulate::check_scenario(args.config.as_deref(), &scenario)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let (bits, t, l) = (scenario.key_bits, scenario.threshold, scenario.holders);
    let (pk, shares, _) =
        keycache::load_or_generate(bits, t, l, false, &mut spddl_crypto::Entropy::os())
            .context("dealing the benchmark key")?;
    let min = Duration::from_secs_f64(args.seconds);
    // With --json the human-readable lines go to stderr, the objects alone to stdout.
    let say = |line: String| {
        if args.json {
            eprintln!("{line}");
        } else {
            println!("{line}");
        }
    };
    say(format!(
        "spddl bench round: scenario {}, {} rounds, {bits}-bit n, {t}-of-{l}, kernel {} ({}), {cores} cores",
        scenario.name,
        args.rounds,
        KernelKind::choice().0.name(),
        KernelKind::choice().1
    ));
    let r = measure(&pk, &shares, 32, min, cores)?;
    say(format!(
        "measured single-thread rates: encrypt {:.0}/s, partial decryption {:.1}/s \
         (with the batched proof {:.1}/s)",
        r.encrypt[0].per_s, r.partial_decrypt[0].per_s, r.partial_decrypt_with_proof[0].per_s
    ));
    let federation = driver::federation(&scenario)?;
    let parameters = federation.spec.num_params();
    let keys = (pk, shares);
    let rows: Vec<RoundMetrics> = driver::run_mode(
        &scenario,
        &federation,
        Mode::Secure,
        Some(&keys),
        &|_, _| {},
    )?;
    let rows: Vec<RoundRow> = rows
        .iter()
        .map(|m| {
            let c = m.ciphertexts_per_upload as f64;
            RoundRow {
                scenario: scenario.name.clone(),
                clients: scenario.clients,
                parameters,
                ciphertexts_per_client: m.ciphertexts_per_upload,
                round: m.round + 1,
                wall_s: m.wall_s,
                train_s: m.train_wall_s,
                encrypt_s: m.encrypt_wall_s,
                fog_s: m.fog_add_s,
                decrypt_s: m.decrypt_wall_s,
                aggregator_s: m.combine_s,
                // The protocol's part of the round: everything but local training and
                // evaluation.
                protocol_s: m.encrypt_wall_s + m.fog_add_s + m.decrypt_wall_s + m.combine_s,
                floor_s: (m.contributors as f64 * c / r.encrypt[0].per_s
                    + m.shares_computed as f64 * c / r.partial_decrypt[0].per_s)
                    / cores as f64,
                peak_rss_kb: peak_rss_kb(),
            }
        })
        .collect();
    if args.json {
        for row in &rows {
            println!("{}", serde_json::to_string(row)?);
        }
        return Ok(());
    }
    println!();
    println!(
        "{:>5} {:>8} {:>8} {:>9} {:>8} {:>9} {:>8} {:>9} {:>8} {:>7}",
        "round",
        "wall s",
        "train s",
        "encrypt s",
        "fog s",
        "decrypt s",
        "agg s",
        "protocol",
        "floor s",
        "ratio"
    );
    for m in &rows {
        println!(
            "{:>5} {:>8.2} {:>8.2} {:>9.2} {:>8.2} {:>9.2} {:>8.2} {:>9.2} {:>8.2} {:>6.2}×",
            m.round,
            m.wall_s,
            m.train_s,
            m.encrypt_s,
            m.fog_s,
            m.decrypt_s,
            m.aggregator_s,
            m.protocol_s,
            m.floor_s,
            m.protocol_s / m.floor_s
        );
    }
    println!(
        "floor = (encryptions / encrypt rate + partial decryptions / partial-decryption rate \
         without proofs) / {cores} cores; protocol = encrypt + fog + decrypt (with proofs) + \
         aggregator (verify, combine, decode) stages, wall clock"
    );
    match peak_rss_kb() {
        Some(kb) => println!("peak resident memory: {kb} kB"),
        None => println!("peak resident memory: unknown"),
    }
    Ok(())
}

fn fog(args: FogArgs) -> Result<()> {
    anyhow::ensure!(args.clients >= 1, "--clients must be at least 1");
    let (pk, shares, _) =
        keycache::load_or_generate(2048, 3, 5, false, &mut spddl_crypto::Entropy::os())
            .context("dealing the benchmark key")?;
    let dir = tempfile::tempdir().context("creating a scratch directory")?;
    let rss_before = peak_rss_kb();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let report = runtime.block_on(spddl_experiments::load::fog_load(
        dir.path(),
        args.clients,
        (pk, shares),
    ))?;
    println!(
        "spddl bench fog: {} clients, one fog worker, aggregator in the same process, \
         mutual TLS on 127.0.0.1, 2048-bit n",
        report.clients
    );
    println!(
        "each upload: {} ciphertexts, {} bytes on the wire",
        report.ciphertexts_per_upload, report.bytes_per_upload
    );
    println!(
        "{} uploads acknowledged (stored at the aggregator) in {:.2} s: {:.0} uploads/s; \
         {} counted by the aggregator; {} retried calls; {} errors",
        report.clients - report.errors.len(),
        report.seconds,
        report.uploads_per_s,
        report.counted,
        report.retries,
        report.errors.len()
    );
    for e in report.errors.iter().take(5) {
        println!("  error: {e}");
    }
    if let (Some(before), Some(peak)) = (rss_before, peak_rss_kb()) {
        println!(
            "peak resident memory: {} MB (before the run: {} MB; includes the clients' side)",
            peak / 1000,
            before / 1000
        );
    }
    anyhow::ensure!(
        report.errors.is_empty() && report.counted == report.clients,
        "{} uploads failed, {} of {} counted",
        report.errors.len(),
        report.counted,
        report.clients
    );
    Ok(())
}

/// One round of `spddl bench round`, as `--json` prints it and `spddl bench plot` reads it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
struct RoundRow {
    scenario: String,
    clients: usize,
    parameters: usize,
    ciphertexts_per_client: usize,
    /// 1-based.
    round: u64,
    wall_s: f64,
    train_s: f64,
    encrypt_s: f64,
    fog_s: f64,
    decrypt_s: f64,
    aggregator_s: f64,
    protocol_s: f64,
    floor_s: f64,
    /// Peak resident memory of the process so far (`VmHWM`), when known.
    peak_rss_kb: Option<u64>,
}

fn plot(args: PlotArgs) -> Result<()> {
    use spddl_experiments::plots::{Series, write_scaling_svg};
    let mut rows = Vec::new();
    for path in &args.input {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("{}: cannot read", path.display()))?;
        for (i, line) in text
            .lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
        {
            let row: RoundRow = serde_json::from_str(line).with_context(|| {
                format!(
                    "{} line {}: not a `spddl bench round --json` line",
                    path.display(),
                    i + 1
                )
            })?;
            rows.push(row);
        }
    }
    let runs = last_rounds(rows);
    anyhow::ensure!(!runs.is_empty(), "no rounds in the input");
    std::fs::create_dir_all(&args.out)
        .with_context(|| format!("{}: cannot create", args.out.display()))?;
    let series = |runs: &[&RoundRow], x: fn(&RoundRow) -> f64| -> Vec<Series> {
        let line = |label: &str, colour, dash, y: fn(&RoundRow) -> f64| Series {
            label: label.to_string(),
            colour,
            dash,
            points: runs.iter().map(|r| (x(r), y(r))).collect(),
        };
        vec![
            line("round wall clock", "#000000", None, |r| r.wall_s),
            line("partial decrypt", "#e15759", None, |r| r.decrypt_s),
            line("encrypt (all clients)", "#f28e2b", None, |r| r.encrypt_s),
            line("floor", "#555555", Some("6 4"), |r| r.floor_s),
        ]
    };
    // Round time against clients: the model measured at the most client counts.
    let by_clients = widest_group(&runs, |r| r.parameters, |r| r.clients);
    let path = args.out.join("round-time-vs-clients.svg");
    let title = format!(
        "Secure round time against clients ({} parameters)",
        thousands(by_clients.first().map_or(0, |r| r.parameters))
    );
    write_scaling_svg(
        &path,
        &title,
        "clients",
        "seconds per round",
        &series(&by_clients, |r| r.clients as f64),
    )?;
    println!("wrote {}", path.display());
    let by_model = widest_group(&runs, |r| r.clients, |r| r.parameters);
    let path = args.out.join("round-time-vs-model-size.svg");
    let title = format!(
        "Secure round time against model size ({} clients)",
        by_model.first().map_or(0, |r| r.clients)
    );
    write_scaling_svg(
        &path,
        &title,
        "model parameters (thousands)",
        "seconds per round",
        &series(&by_model, |r| r.parameters as f64 / 1000.0),
    )?;
    println!("wrote {}", path.display());
    println!();
    println!(
        "| clients | parameters | ciphertexts per client | round wall s | encrypt s | decrypt s | protocol ÷ floor | peak RSS |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    for r in &runs {
        println!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} | {:.2}× | {} |",
            r.clients,
            thousands(r.parameters),
            thousands(r.ciphertexts_per_client),
            r.wall_s,
            r.encrypt_s,
            r.decrypt_s,
            r.protocol_s / r.floor_s,
            r.peak_rss_kb
                .map_or("unknown".into(), |kb| format!("{} MB", kb / 1000))
        );
    }
    Ok(())
}

/// `101770` as `101,770`.
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, d) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(d);
    }
    out
}

/// The last round of each run (a run = one clients × parameters pair; the first round pays
/// for the fixed-base table), ordered by parameters, then clients.
fn last_rounds(rows: Vec<RoundRow>) -> Vec<RoundRow> {
    let mut last: std::collections::BTreeMap<(usize, usize), RoundRow> = Default::default();
    for row in rows {
        let key = (row.parameters, row.clients);
        if last.get(&key).is_none_or(|r| r.round <= row.round) {
            last.insert(key, row);
        }
    }
    last.into_values().collect()
}

/// The runs sharing a `fixed` value that cover the most distinct `varying` values.
fn widest_group(
    runs: &[RoundRow],
    fixed: fn(&RoundRow) -> usize,
    varying: fn(&RoundRow) -> usize,
) -> Vec<&RoundRow> {
    let mut groups: std::collections::BTreeMap<usize, Vec<&RoundRow>> = Default::default();
    for r in runs {
        groups.entry(fixed(r)).or_default().push(r);
    }
    let mut best = groups
        .into_values()
        .max_by_key(|g| g.len())
        .unwrap_or_default();
    best.sort_by_key(|r| varying(r));
    best
}

/// `VmHWM` of this process in kB (Linux), for the record.
fn peak_rss_kb() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.trim_start_matches("VmHWM:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(clients: usize, parameters: usize, round: u64, wall_s: f64) -> RoundRow {
        RoundRow {
            scenario: "s".into(),
            clients,
            parameters,
            ciphertexts_per_client: parameters / 97,
            round,
            wall_s,
            train_s: 0.1,
            encrypt_s: 1.0,
            fog_s: 0.0,
            decrypt_s: 8.0,
            aggregator_s: 0.5,
            protocol_s: 9.5,
            floor_s: 9.0,
            peak_rss_kb: Some(450_000),
        }
    }

    #[test]
    fn thousands_are_separated() {
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(101_770), "101,770");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }

    #[test]
    fn each_run_keeps_its_last_round() {
        let runs = last_rounds(vec![
            row(10, 101_770, 2, 10.2),
            row(10, 101_770, 1, 10.5),
            row(50, 101_770, 1, 15.9),
            row(50, 101_770, 2, 15.6),
            row(20, 25_450, 1, 3.1),
        ]);
        let got: Vec<(usize, usize, u64, f64)> = runs
            .iter()
            .map(|r| (r.parameters, r.clients, r.round, r.wall_s))
            .collect();
        assert_eq!(
            got,
            vec![
                (25_450, 20, 1, 3.1),
                (101_770, 10, 2, 10.2),
                (101_770, 50, 2, 15.6)
            ]
        );
    }

    #[test]
    fn plots_use_the_group_with_the_most_sizes() {
        let runs = last_rounds(vec![
            row(10, 101_770, 2, 10.0),
            row(200, 101_770, 2, 36.0),
            row(20, 101_770, 2, 12.0),
            row(20, 25_450, 2, 3.0),
            row(20, 407_050, 2, 47.0),
            row(50, 407_050, 2, 50.0),
        ]);
        let by_clients = widest_group(&runs, |r| r.parameters, |r| r.clients);
        let clients: Vec<usize> = by_clients.iter().map(|r| r.clients).collect();
        assert_eq!(clients, vec![10, 20, 200]);
        assert!(by_clients.iter().all(|r| r.parameters == 101_770));
        let by_model = widest_group(&runs, |r| r.clients, |r| r.parameters);
        let sizes: Vec<usize> = by_model.iter().map(|r| r.parameters).collect();
        assert_eq!(sizes, vec![25_450, 101_770, 407_050]);
        assert!(by_model.iter().all(|r| r.clients == 20));
    }
}
