//! `spddl`: one command for every SPDDL role and tool.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod bench;
mod crypto_cmd;
mod deploy;
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
    /// Set up a multi-process deployment (`deploy init`).
    #[command(subcommand)]
    Deploy(deploy::DeployCommand),
    /// Run the cloud aggregator of a deployment (gRPC server; resumes from its state).
    Aggregator(deploy::RoleArgs),
    /// Run a fog worker of a deployment (gRPC server).
    Fog(deploy::RoleArgs),
    /// Run a client of a deployment (dials out only: polls the aggregator, uploads to fogs).
    Client(deploy::RoleArgs),
    /// Run a key-share holder of a deployment (dials out only: polls the aggregator).
    Keyholder(deploy::RoleArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Keygen(args) => keygen::run(args),
        Command::Crypto(cmd) => crypto_cmd::run(cmd),
        Command::Bench(cmd) => bench::run(cmd),
        Command::Simulate(args) => simulate::run(args),
        Command::Deploy(cmd) => deploy::init(cmd),
        Command::Aggregator(args) => deploy::run(deploy::Role::Aggregator, args),
        Command::Fog(args) => deploy::run(deploy::Role::Fog, args),
        Command::Client(args) => deploy::run(deploy::Role::Client, args),
        Command::Keyholder(args) => deploy::run(deploy::Role::Holder, args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // One line per problem: the chain of contexts, outermost first ("file: what:
            // why"); a file with several bad values names each on its own line.
            for line in format!("{e:#}").lines() {
                eprintln!("error: {line}");
            }
            ExitCode::FAILURE
        }
    }
}
