//! `spddl`: one command for every SPDDL role and tool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod crypto_cmd;
mod files;
mod keygen;
mod simulate;

/// SPDDL: federated learning with threshold-Paillier secure aggregation.
#[derive(Parser)]
#[command(name = "spddl", version, about, long_about = None)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Deal a threshold Paillier key: public.json and one share-<i>.json per holder.
    Keygen(keygen::KeygenArgs),
    /// A toolbox over key, ciphertext and share files: encrypt, add, partial-decrypt, verify,
    /// combine.
    #[command(subcommand)]
    Crypto(crypto_cmd::CryptoCommand),
    /// Measure the cryptographic steps on this machine (`crypto`) or a scenario's rounds
    /// against their floor (`round`).
    #[command(subcommand)]
    Bench(bench::BenchCommand),
    /// Run a federated training scenario in one process (secure and plaintext) and write
    /// metrics.csv, summary.json and plots into a new results directory.
    Simulate(simulate::SimulateArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen(args) => keygen::run(args),
        Command::Crypto(cmd) => crypto_cmd::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Simulate(args) => simulate::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line: the chain of contexts, outermost first ("file: what: why").
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
