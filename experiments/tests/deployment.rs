//! A deployment over real TCP sockets on 127.0.0.1 with mutual TLS: the files
//! `deploy init` writes, every role's gRPC server or client in one tokio runtime, and the
//! failures the deployment must survive. Each test compares against the in-process
//! simulation of the same scenario and seed: equal model digests mean the decrypted
//! aggregates were bit-identical.

#![allow(clippy::unwrap_used)]

use std::net::TcpListener;
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

const CLIENTS: usize = 6;
const ROUNDS: u64 = 3;

fn scenario() -> Scenario {
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

/// Logs of every role to the test's output (shown for a failing test; `RUST_LOG` filters).
fn logs() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_test_writer()
        .try_init();
}

fn keys() -> (PublicKey, Vec<KeyShare>) {
    test_key(2048, 3, 5, 4)
}

/// A base port with the next `n` ports free.
fn free_ports(n: u16) -> u16 {
    for _ in 0..200 {
        let base = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if base < u16::MAX - n
            && (0..=n).all(|i| TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return base;
        }
    }
    panic!("no free ports");
}

fn init(dir: &Path, share_timeout_s: f64) -> PathBuf {
    let out = dir.join("deployment");
    deploy::init(InitOptions {
        scenario: scenario(),
        out: out.clone(),
        host: "127.0.0.1".into(),
        base_port: free_ports(3),
        key: Some(keys()),
        collect_timeout_s: 60.0,
        share_timeout_s,
    })
    .unwrap();
    out
}

/// The in-process simulation's model digest after each round.
fn simulated_digests() -> Vec<String> {
    let s = scenario();
    let fed = federation(&s).unwrap();
    run_mode(&s, &fed, Mode::Secure, Some(&keys()), &|_, _| {})
        .unwrap()
        .into_iter()
        .map(|m| m.model_digest)
        .collect()
}

type Task<T> = tokio::task::JoinHandle<anyhow::Result<T>>;

struct Stop(watch::Sender<bool>);

impl Stop {
    fn new() -> Self {
        Stop(watch::channel(false).0)
    }
    fn signal(&self) -> impl std::future::Future<Output = ()> + Send + 'static {
        let mut rx = self.0.subscribe();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    }
    fn fire(&self) {
        let _ = self.0.send(true);
    }
}

/// Starts fogs and holders (those listed), returns their tasks.
#[allow(clippy::type_complexity)]
fn start_fogs_and_holders(
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
            tokio::spawn(async move { deploy::run_holder(&cfg, false, s).await })
        })
        .collect();
    (fog_tasks, holder_tasks)
}

fn start_clients(
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

fn aggregator(out: &Path, stop: &Stop) -> tokio::task::JoinHandle<anyhow::Result<RunReport>> {
    let cfg = out.join("aggregator.toml");
    let s = stop.signal();
    tokio::spawn(async move { deploy::run_aggregator(&cfg, false, s).await })
}

async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("the deployment did not finish in time")
}

fn assert_every_round_complete(report: &RunReport, expected: &[String]) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn three_secure_rounds_over_mutual_tls_equal_the_simulation() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);
    let expected = simulated_digests();
    let stop = Stop::new();
    let agg = aggregator(&out, &stop);
    let (fogs, holders) = start_fogs_and_holders(&out, &[0, 1], &[1, 2, 3, 4, 5], &stop);
    let clients = start_clients(&out, &stop);
    let report = within(300, agg).await.unwrap().unwrap();
    assert_every_round_complete(&report, &expected);
    for r in &report.rounds {
        assert_eq!(r.holders_used, vec![1, 2, 3]);
        assert!(r.silent.is_empty() && r.blamed.is_empty());
        assert!(r.accuracy.unwrap() > 0.5, "{r:?}");
    }
    for c in clients {
        let uploads = within(30, c).await.unwrap().unwrap();
        assert_eq!(uploads.len(), ROUNDS as usize);
    }
    // t = 3 of 5: the aggregator asks the three lowest holders; 4 and 5 are never needed.
    let answered: Vec<usize> = {
        let mut v = Vec::new();
        for h in holders {
            v.push(within(30, h).await.unwrap().unwrap());
        }
        v
    };
    let r = ROUNDS as usize;
    assert_eq!(answered, vec![r, r, r, 0, 0]);
    stop.fire();
    for (_, f) in fogs {
        within(30, f).await.unwrap().unwrap();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fog_killed_mid_round_loses_no_update_its_clients_fail_over() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);
    let expected = simulated_digests();
    let stop = Stop::new();
    let agg = aggregator(&out, &stop);
    let (fogs, _holders) = start_fogs_and_holders(&out, &[0, 1], &[1, 2, 3, 4, 5], &stop);
    // Round 0 is open with half the clients assigned to fog 0; kill it before they upload.
    tokio::time::sleep(Duration::from_millis(500)).await;
    for (f, task) in &fogs {
        if *f == 0 {
            task.abort();
        }
    }
    let clients = start_clients(&out, &stop);
    let report = within(300, agg).await.unwrap().unwrap();
    assert_every_round_complete(&report, &expected);
    let mut failed_over = 0;
    for c in clients {
        let uploads = within(30, c).await.unwrap().unwrap();
        assert!(uploads.iter().all(|u| u.fog == 1), "fog 0 is dead");
        failed_over += uploads.iter().filter(|u| u.failed_over > 0).count();
    }
    assert!(
        failed_over >= 1,
        "some client had fog 0 first and failed over"
    );
    stop.fire();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn rounds_complete_with_l_minus_t_key_holders_down() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 2.5);
    let expected = simulated_digests();
    let stop = Stop::new();
    let agg = aggregator(&out, &stop);
    // Holders 1 and 2 (ℓ − t = 2) never start.
    let (_fogs, _holders) = start_fogs_and_holders(&out, &[0, 1], &[3, 4, 5], &stop);
    let _clients = start_clients(&out, &stop);
    let report = within(300, agg).await.unwrap().unwrap();
    assert_every_round_complete(&report, &expected);
    for r in &report.rounds {
        assert_eq!(r.silent, vec![1, 2], "round {}", r.round);
        assert_eq!(r.holders_used, vec![3, 4, 5], "round {}", r.round);
    }
    stop.fire();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_fog_and_key_holder_rejoin_without_operator_action() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 2.5);
    let expected = simulated_digests();
    let stop = Stop::new();
    let agg = aggregator(&out, &stop);
    let (fogs, holders) = start_fogs_and_holders(&out, &[0, 1], &[1, 2, 3, 4, 5], &stop);
    let clients = start_clients(&out, &stop);
    // Round 0 is open: kill fog 0 and key holder 1, then start them again from their files.
    within(60, wait_for_round(&out, 0)).await;
    fogs[0].1.abort();
    holders[0].abort();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (_fog0, holder1) = start_fogs_and_holders(&out, &[0], &[1], &stop);
    // Once round 1 is announced, kill fog 1 and holders 2 and 3: the last round can only
    // complete through the restarted fog 0, with the restarted holder 1 among its t shares.
    within(120, wait_for_round(&out, 1)).await;
    fogs[1].1.abort();
    holders[1].abort();
    holders[2].abort();
    let report = within(300, agg).await.unwrap().unwrap();
    assert_every_round_complete(&report, &expected);
    let last = report.rounds.last().unwrap();
    assert_eq!(last.silent, vec![2, 3], "{last:?}");
    assert_eq!(last.holders_used, vec![1, 4, 5], "{last:?}");
    for c in clients {
        let uploads = within(30, c).await.unwrap().unwrap();
        let final_round = uploads.iter().find(|u| u.round == ROUNDS - 1).unwrap();
        assert_eq!(final_round.fog, 0, "fog 1 is dead: {final_round:?}");
    }
    stop.fire();
    let answered = within(30, holder1.into_iter().next().unwrap())
        .await
        .unwrap()
        .unwrap();
    assert!(answered >= 1, "the restarted holder answered nothing");
}

/// A `ClientRounds` stub to the aggregator of `out`, presenting the certificate `cert_dir/tls/client-0.*`
/// under `out`'s CA.
fn rounds_client(
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
async fn wait_for_round(out: &Path, round: u64) {
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

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_aggregator_restarted_between_rounds_resumes_from_its_store() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);
    let expected = simulated_digests();
    let stop = Stop::new();
    let first = Stop::new();
    let agg = aggregator(&out, &first);
    let (_fogs, _holders) = start_fogs_and_holders(&out, &[0, 1], &[1, 2, 3, 4, 5], &stop);
    let clients = start_clients(&out, &stop);
    within(300, wait_for_round(&out, 2)).await;
    first.fire();
    let partial = within(60, agg).await.unwrap().unwrap();
    assert!(
        (2..ROUNDS as usize).contains(&partial.rounds.len()),
        "stopped after rounds 0 and 1: {:?}",
        partial.rounds.iter().map(|r| r.round).collect::<Vec<_>>()
    );
    // Start again on the same state file: it resumes at round 2, not round 0.
    let agg = aggregator(&out, &stop);
    let report = within(300, agg).await.unwrap().unwrap();
    assert_every_round_complete(&report, &expected);
    assert_eq!(
        report.rounds[..2],
        partial.rounds[..2],
        "stored rounds unchanged"
    );
    for c in clients {
        let uploads = within(30, c).await.unwrap().unwrap();
        let mut rounds: Vec<u64> = uploads.iter().map(|u| u.round).collect();
        rounds.dedup();
        assert_eq!(rounds, vec![0, 1, 2]);
    }
    stop.fire();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn unregistered_identities_and_foreign_certificates_are_refused() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);
    let stop = Stop::new();
    let agg = aggregator(&out, &stop);
    let (_fogs, _holders) = start_fogs_and_holders(&out, &[0, 1], &[1, 2, 3, 4, 5], &stop);

    // Client 0's id with a signing key the registry does not know: the fog refuses it.
    let mut setup = deploy::client_setup(&out.join("client-0.toml"), false).unwrap();
    let data = federation(&scenario()).unwrap().client_data.swap_remove(0);
    let stranger = spddl_crypto::identity::SigningKey::generate(&mut rand::rng());
    setup.client = std::sync::Arc::new(spddl_client_trainer::client::Client::new(
        spddl_proto::ClientId(0),
        stranger,
        data,
    ));
    let err = within(
        60,
        spddl_client_trainer::grpc::run_client(setup, std::future::pending()),
    )
    .await
    .unwrap_err();
    assert!(
        err.contains("refused the upload") && err.contains("signature"),
        "{err}"
    );

    // An id the registry does not have: the aggregator refuses it.
    let mut setup = deploy::client_setup(&out.join("client-1.toml"), false).unwrap();
    let data = federation(&scenario()).unwrap().client_data.swap_remove(1);
    setup.client = std::sync::Arc::new(spddl_client_trainer::client::Client::new(
        spddl_proto::ClientId(99),
        spddl_crypto::identity::SigningKey::generate(&mut rand::rng()),
        data,
    ));
    let err = within(
        60,
        spddl_client_trainer::grpc::run_client(setup, std::future::pending()),
    )
    .await
    .unwrap_err();
    assert!(err.contains("not a registered client"), "{err}");

    // A certificate from another CA: the TLS handshake fails, nothing reaches the services.
    let other = tempfile::tempdir().unwrap();
    let other_out = init(other.path(), 30.0);
    let mut client = rounds_client(&out, &other_out);
    let status = client
        .get_round(pb::GetRoundRequest { client: 0 })
        .await
        .unwrap_err();
    // Refused at the transport (a TLS alert, or the connection closed after it under TLS 1.3),
    // not by a service: a service would answer, or refuse with PermissionDenied.
    let why = spddl_proto::transport::describe(&status);
    assert!(
        why.contains("transport error")
            && !matches!(
                status.code(),
                tonic::Code::Ok | tonic::Code::PermissionDenied
            ),
        "not refused by TLS: {why}"
    );
    stop.fire();
    let _ = within(60, agg).await;
}
