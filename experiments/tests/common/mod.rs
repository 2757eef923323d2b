//! What the deployment tests share: a `deploy init` deployment on free loopback ports with
//! the checked-in test key, every role started in this tokio runtime, and the in-process
//! simulation of the same scenario to compare against.

#![allow(dead_code, clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::time::Duration;

use spddl_aggregator::grpc::RunReport;
use spddl_crypto::paillier::{KeyShare, PublicKey};
use spddl_crypto::testing::test_key;
use spddl_experiments::deploy::{self, InitOptions};
use spddl_experiments::driver::{federation, run_mode};
use spddl_experiments::metrics::Mode;
use spddl_experiments::scenario::Scenario;
use spddl_proto::transport::Security;
use spddl_proto::wire::pb;
use tokio::sync::watch;

pub(crate) const CLIENTS: usize = 6;
pub(crate) const ROUNDS: u64 = 3;

pub(crate) fn scenario() -> Scenario {
    Scenario {
        clients: CLIENTS,
        fogs: 2,
        holders: 5,
        threshold: 3,
        rounds: ROUNDS,
        min_contributors: 3,
        ..Scenario::default()
    }
}

/// Captured log output: a global subscriber's writer (a test binary with one test) or one
/// task's ([`Log::subscriber`] with `tracing::instrument::WithSubscriber`).
#[derive(Clone, Default)]
pub(crate) struct Log(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Log {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Log {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }

    /// A subscriber writing SPDDL's lines at `info` and above into this log.
    pub(crate) fn subscriber(&self) -> impl tracing::Subscriber + Send + Sync + 'static {
        let writer = self.clone();
        tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::new("info"))
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish()
    }
}

/// Logs of every role to the test's output (shown for a failing test; `RUST_LOG` filters).
pub(crate) fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

pub(crate) fn keys() -> (PublicKey, Vec<KeyShare>) {
    test_key(2048, 3, 5, 4)
}

pub(crate) fn init(dir: &Path, share_timeout_s: f64) -> PathBuf {
    let out = dir.join("deployment");
    deploy::init(InitOptions {
        scenario: scenario(),
        out: out.clone(),
        host: "127.0.0.1".into(),
        // The aggregator, two fogs and a spare.
        base_port: deploy::free_loopback_ports(4).unwrap(),
        key: Some(keys()),
        collect_timeout_s: 60.0,
        share_timeout_s,
    })
    .unwrap();
    out
}

/// The in-process simulation's model digest after each round.
pub(crate) fn simulated_digests() -> Vec<String> {
    let s = scenario();
    let fed = federation(&s).unwrap();
    run_mode(&s, &fed, Mode::Secure, Some(&keys()), &|_, _| {})
        .unwrap()
        .into_iter()
        .map(|m| m.model_digest)
        .collect()
}

pub(crate) type Task<T> = tokio::task::JoinHandle<anyhow::Result<T>>;

pub(crate) struct Stop(watch::Sender<bool>);

impl Stop {
    pub(crate) fn new() -> Self {
        Stop(watch::channel(false).0)
    }
    pub(crate) fn signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
    pub(crate) fn fire(&self) {
        let _ = self.0.send(true);
    }
}

/// Starts fogs and holders (those listed), returns their tasks.
#[allow(clippy::type_complexity)]
pub(crate) fn start_fogs_and_holders(
    out: &Path,
    fogs: &[u32],
    holders: &[u16],
    stop: &Stop,
) -> (Vec<(u32, Task<()>)>, Vec<Task<usize>>) {
    let fog_tasks = fogs
        .iter()
        .map(|f| {
            let cfg = out.join(format!("fog-{f}.toml"));
            let s = stop.signal();
            (
                *f,
                tokio::spawn(async move { deploy::run_fog(&cfg, false, s).await }),
            )
        })
        .collect();
    let holder_tasks = holders
        .iter()
        .map(|h| {
            let cfg = out.join(format!("holder-{h}.toml"));
            let s = stop.signal();
            tokio::spawn(async move { deploy::run_holder(&cfg, false, false, s).await })
        })
        .collect();
    (fog_tasks, holder_tasks)
}

pub(crate) fn start_clients(
    out: &Path,
    stop: &Stop,
) -> Vec<tokio::task::JoinHandle<anyhow::Result<Vec<spddl_client_trainer::grpc::UploadRecord>>>> {
    (0..CLIENTS)
        .map(|c| {
            let cfg = out.join(format!("client-{c}.toml"));
            let s = stop.signal();
            tokio::spawn(async move { deploy::run_client(&cfg, false, s).await })
        })
        .collect()
}

pub(crate) fn aggregator(
    out: &Path,
    stop: &Stop,
) -> tokio::task::JoinHandle<anyhow::Result<RunReport>> {
    let cfg = out.join("aggregator.toml");
    let s = stop.signal();
    tokio::spawn(async move { deploy::run_aggregator(&cfg, false, false, s).await })
}

pub(crate) async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("the deployment did not finish in time")
}

pub(crate) fn assert_every_round_complete(report: &RunReport, expected: &[String]) {
    let rounds: Vec<u64> = report.rounds.iter().map(|r| r.round).collect();
    assert_eq!(
        rounds,
        (0..ROUNDS).collect::<Vec<_>>(),
        "each round exactly once"
    );
    for (r, digest) in report.rounds.iter().zip(expected) {
        assert_eq!(
            r.contributors.len(),
            CLIENTS,
            "round {}: every client counted",
            r.round
        );
        assert_eq!(
            &r.model_digest, digest,
            "round {}: the deployment's model differs from the simulation's",
            r.round
        );
    }
}

/// A `ClientRounds` stub to the aggregator of `out`, presenting the certificate `cert_dir/tls/client-0.*`
/// under `out`'s CA.
pub(crate) fn rounds_client(
    out: &Path,
    cert_dir: &Path,
) -> pb::client_rounds_client::ClientRoundsClient<tonic::transport::Channel> {
    let tls = spddl_proto::transport::TlsFiles::read(
        &out.join("tls/ca.pem"),
        &cert_dir.join("tls/client-0.pem"),
        &cert_dir.join("tls/client-0.key"),
    )
    .unwrap();
    let text = std::fs::read_to_string(out.join("aggregator.toml")).unwrap();
    let cfg: deploy::AggregatorFile = toml::from_str(&text).unwrap();
    let channel = Security::MutualTls(tls)
        .channel(&cfg.listen, Duration::from_secs(5))
        .unwrap();
    pb::client_rounds_client::ClientRoundsClient::new(channel)
}

/// Polls the aggregator as client 0 until the round it announces reaches `round`.
pub(crate) async fn wait_for_round(out: &Path, round: u64) {
    let mut client = rounds_client(out, out);
    loop {
        if let Ok(r) = client.get_round(pb::GetRoundRequest { client: 0 }).await
            && r.into_inner().config.is_some_and(|c| c.round >= round)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub(crate) fn security_of(out: &Path, name: &str) -> spddl_proto::transport::Security {
    let tls = spddl_proto::transport::TlsFiles::read(
        &out.join("tls/ca.pem"),
        &out.join(format!("tls/{name}.pem")),
        &out.join(format!("tls/{name}.key")),
    )
    .unwrap();
    spddl_proto::transport::Security::MutualTls(tls)
}

/// A channel to `address` presenting `name`'s certificate from `out/tls`.
pub(crate) fn channel_as(out: &Path, name: &str, address: &str) -> tonic::transport::Channel {
    security_of(out, name)
        .channel(address, Duration::from_secs(10))
        .unwrap()
}
