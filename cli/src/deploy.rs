//! `spddl deploy init` and the long-running role processes: `aggregator`, `fog`, `client`,
//! `keyholder`, each from its config file, logging with tracing (`RUST_LOG` sets the level).

use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use spddl_experiments::deploy;

/// `spddl deploy …`
#[derive(Debug, Subcommand)]
pub(crate) enum DeployCommand {
    /// Write a complete local deployment: dealer keys, identities, registry, TLS
    /// certificates from a new local CA, and one config file per process.
    Init(InitArgs),
}

#[derive(Debug, Args)]
pub(crate) struct InitArgs {
    /// Clients.
    #[arg(long, default_value_t = 10)]
    clients: usize,
    /// Fog workers.
    #[arg(long, default_value_t = 2)]
    fogs: usize,
    /// Key holders `ℓ`.
    #[arg(long, default_value_t = 5)]
    holders: u16,
    /// Threshold `t`.
    #[arg(long, default_value_t = 3)]
    threshold: u16,
    /// Output directory (new or empty).
    #[arg(long)]
    out: PathBuf,
    /// Training scenario to start from (default: digits); `--clients` etc. override it.
    #[arg(long)]
    scenario: Option<PathBuf>,
    /// `key=value` overrides of scenario fields, as in `simulate --set`.
    #[arg(long = "set")]
    set: Vec<String>,
    /// Host every process listens on and is reached at.
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    /// The aggregator's port; fog `f` gets `port + 1 + f`.
    #[arg(long, default_value_t = 50051)]
    port: u16,
    /// Seconds collection waits for uploads before closing with what it has.
    #[arg(long, default_value_t = 60.0)]
    collect_timeout: f64,
    /// Seconds an asked key holder may take before it counts as silent.
    #[arg(long, default_value_t = 30.0)]
    share_timeout: f64,
}

/// `spddl aggregator|fog|client|keyholder --config FILE [--insecure]`
#[derive(Debug, Args)]
pub(crate) struct RoleArgs {
    /// The process's config file (written by `spddl deploy init`).
    #[arg(long)]
    config: PathBuf,
    /// Plaintext gRPC instead of mutual TLS (logs a warning; trusted networks only).
    #[arg(long)]
    insecure: bool,
    /// Start anew on purpose with a new state file (aggregator: a new run from round 0;
    /// key holder: an empty record of decrypted sums); an existing file is moved aside to
    /// `<file>.replaced-<time>`. Without it a missing, empty or damaged state file is
    /// refused (`deploy init` writes the state files of a new deployment).
    #[arg(long)]
    fresh: bool,
}

/// Which role process to run.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Role {
    Aggregator,
    Fog,
    Client,
    Holder,
}

pub(crate) fn init(cmd: DeployCommand) -> Result<()> {
    let DeployCommand::Init(args) = cmd;
    // Validated by `deploy::init` once the flags below are applied, with the other options.
    let mut scenario = crate::simulate::parse_scenario(args.scenario.as_deref(), &args.set)?;
    scenario.clients = args.clients;
    scenario.fogs = args.fogs;
    scenario.holders = args.holders;
    scenario.threshold = args.threshold;
    let out = args.out.clone();
    let report = deploy::init(deploy::InitOptions {
        scenario,
        out: args.out,
        host: args.host,
        base_port: args.port,
        key: None,
        collect_timeout_s: args.collect_timeout,
        share_timeout_s: args.share_timeout,
    })?;
    println!(
        "wrote a deployment to {} (threshold key dealt in {:.1} s)",
        out.display(),
        report.keygen_s
    );
    println!("  aggregator  {}", report.aggregator);
    for (f, a) in report.fogs.iter().enumerate() {
        println!("  fog {f}       {a}");
    }
    println!(
        "start: spddl aggregator --config {0}/aggregator.toml; spddl fog --config {0}/fog-0.toml; \
         spddl keyholder --config {0}/holder-1.toml; spddl client --config {0}/client-0.toml; …",
        out.display()
    );
    Ok(())
}

fn logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM (what systemd, Docker and Kubernetes send), and
/// logs which one came. The handlers are installed here, so call it before any work.
#[cfg(unix)]
fn stop_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).context("installing the SIGTERM handler")?;
    let mut int = signal(SignalKind::interrupt()).context("installing the Ctrl-C handler")?;
    tracing::debug!("stop signal handlers installed");
    Ok(async move {
        let name = tokio::select! {
            _ = term.recv() => "SIGTERM",
            _ = int.recv() => "Ctrl-C",
        };
        tracing::info!("{name}: stopping");
    })
}

/// Resolves on Ctrl-C, and logs it.
#[cfg(not(unix))]
fn stop_signal() -> Result<impl std::future::Future<Output = ()> + Send + 'static> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C: stopping");
    })
}

pub(crate) fn run(role: Role, args: RoleArgs) -> Result<()> {
    logging();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let config = args.config;
    let insecure = args.insecure;
    let fresh = args.fresh;
    runtime.block_on(async move {
        let stop = stop_signal()?;
        match role {
            Role::Aggregator => {
                let report = deploy::run_aggregator(&config, insecure, fresh, stop).await?;
                println!(
                    "round,accuracy,contributors,wall_s,collect_s,decrypt_s,holders,silent,blamed,model"
                );
                for r in &report.rounds {
                    println!(
                        "{},{},{},{:.2},{:.2},{:.2},{},{},{},{}",
                        r.round,
                        r.accuracy.map_or("".into(), |a| format!("{a:.4}")),
                        r.contributors.len(),
                        r.wall_s,
                        r.collect_s,
                        r.decrypt_s,
                        join(&r.holders_used),
                        join(&r.silent),
                        r.blamed.len(),
                        // Enough of the SHA-256 digest to tell two runs' models apart.
                        &r.model_digest[..16.min(r.model_digest.len())]
                    );
                }
            }
            Role::Fog => deploy::run_fog(&config, insecure, stop).await?,
            Role::Client => {
                let uploads = deploy::run_client(&config, insecure, stop).await?;
                for u in &uploads {
                    println!(
                        "round {} fog {} failed_over {} bytes {} train_s {:.2} seal_s {:.2} upload_s {:.2}",
                        u.round, u.fog, u.failed_over, u.bytes, u.train_s, u.seal_s, u.upload_s
                    );
                }
            }
            Role::Holder => {
                let n = deploy::run_holder(&config, insecure, fresh, stop).await?;
                println!("answered {n} decryption requests");
            }
        }
        Ok(())
    })
}

fn join<T: std::fmt::Display>(xs: &[T]) -> String {
    xs.iter()
        .map(|x| x.to_string())
        .collect::<Vec<_>>()
        .join(";")
}
