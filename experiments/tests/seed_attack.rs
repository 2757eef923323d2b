//! The seed attack of issue 13: a deployed client's real upload, captured by the fog it was
//! sent to over mutual TLS, attacked with only what every participant holds — the public key,
//! the scenario seed (`scenario.toml`), the round and the client id. The attacker replays the
//! client's deterministic encoding stream `seeded_rng(seed, 4, round, id)`, draws the `α` of
//! each ciphertext in the order an encryption from that stream would, and strips `h_s^α`:
//! `c · h_s^{−α} = 1 + M·n mod n²` would read the packed update `M` without any key share.
//! Encryption randomness comes from the operating system (DESIGN §3), so nothing is read.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use num_bigint::BigUint;
use spddl_client_trainer::client::seeded_rng;
use spddl_crypto::arith::random_bits;
use spddl_crypto::paillier::{Ciphertext, PublicKey};
use spddl_crypto::testing::test_dealer;
use spddl_experiments::deploy::FogFile;
use spddl_experiments::scenario::Scenario;
use spddl_proto::transport::{Security, TlsFiles};
use spddl_proto::wire::{self, pb};
use spddl_proto::{RoundConfig, Upload};

/// A fog worker in fog 0's place that keeps every upload sent to it and refuses it as
/// unavailable, so its clients go on to fog 1 and the round still completes.
#[derive(Clone)]
struct CapturingFog {
    pk: PublicKey,
    uploads: Arc<Mutex<Vec<Upload>>>,
}

#[tonic::async_trait]
impl pb::fog_worker_server::FogWorker for CapturingFog {
    async fn submit_upload(
        &self,
        request: tonic::Request<pb::SubmitUploadRequest>,
    ) -> Result<tonic::Response<pb::SubmitUploadResponse>, tonic::Status> {
        let w = request.into_inner().upload.unwrap();
        let up = wire::upload_from_wire(&self.pk, &w).unwrap();
        self.uploads.lock().unwrap().push(up);
        Err(tonic::Status::unavailable(
            "fog 0 keeps uploads, forwards none",
        ))
    }

    async fn get_uploads(
        &self,
        _: tonic::Request<pb::GetUploadsRequest>,
    ) -> Result<tonic::Response<pb::GetUploadsResponse>, tonic::Status> {
        Ok(tonic::Response::new(pb::GetUploadsResponse::default()))
    }
}

/// Serves `fog` at fog 0's address with fog 0's certificate until `stop` fires.
fn serve_as_fog0(
    out: &Path,
    fog: CapturingFog,
    stop: &Stop,
) -> tokio::task::JoinHandle<Result<(), String>> {
    let fog0: FogFile =
        toml::from_str(&std::fs::read_to_string(out.join("fog-0.toml")).unwrap()).unwrap();
    let tls = TlsFiles::read(
        &out.join("tls/ca.pem"),
        &out.join("tls/fog-0.pem"),
        &out.join("tls/fog-0.key"),
    )
    .unwrap();
    let security = Security::MutualTls(tls);
    let (_health, health_service) = tonic_health::server::health_reporter();
    let router = security
        .server()
        .add_service(health_service)
        .add_service(pb::fog_worker_server::FogWorkerServer::new(fog));
    let address = fog0.listen.parse().unwrap();
    let s = stop.signal();
    tokio::spawn(async move { security.serve(router, address, s).await })
}

/// What the attacker reads from each ciphertext: `M` when `c · h_s^{−α} mod n²` has the form
/// `1 + M·n` with `M < n` for the replayed `α`, `None` otherwise.
fn strip_replayed_alphas(
    pk: &PublicKey,
    config: &RoundConfig,
    seed: u64,
    upload: &Upload,
) -> Vec<Option<BigUint>> {
    let (n, n2) = (pk.n(), pk.n_squared());
    let encoder = config.encoder(pk).unwrap();
    let mut stream = seeded_rng(seed, 4, upload.round.0, u64::from(upload.client.0));
    // Stochastic rounding draws one number per value whatever the value, so encoding any
    // vector of the round's length advances the stream to where the α draws began.
    encoder
        .encode_scaled(
            &vec![0.0; config.num_params as usize],
            upload.weight,
            config.max_weight,
            &mut stream,
        )
        .unwrap();
    upload
        .ciphertexts
        .iter()
        .map(|c| {
            let alpha = random_bits(pk.alpha_bits(), &mut stream);
            let r_n = pk.h_s().modpow(&alpha, n2);
            let stripped = (c.value() * r_n.modinv(n2).unwrap()) % n2;
            let m = (&stripped - 1u32) / n;
            (&m * n + 1u32 == stripped && &m < n).then_some(m)
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn replaying_the_scenario_seed_reads_nothing_from_a_deployed_clients_upload() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);
    let pk = PublicKey::from_json(&std::fs::read_to_string(out.join("keys/public.json")).unwrap())
        .unwrap();
    let seed = Scenario::from_toml(&std::fs::read_to_string(out.join("scenario.toml")).unwrap())
        .unwrap()
        .seed;
    let stop = Stop::new();
    let uploads: Arc<Mutex<Vec<Upload>>> = Arc::default();
    let capturing = serve_as_fog0(
        &out,
        CapturingFog {
            pk: pk.clone(),
            uploads: uploads.clone(),
        },
        &stop,
    );
    let agg = aggregator(&out, &stop);
    let (_fogs, _holders) = start_fogs_and_holders(&out, &[1], &[1, 2, 3, 4, 5], &stop);
    // The round's config, as every client and fog is given it.
    let mut rounds = rounds_client(&out, &out);
    let config = within(120, async {
        loop {
            if let Ok(r) = rounds.get_round(pb::GetRoundRequest { client: 0 }).await
                && let Some(cfg) = r.into_inner().config
            {
                break wire::config_from_wire(&cfg).unwrap().0;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert_eq!(config.round.0, 0);
    let _clients = start_clients(&out, &stop);
    let captured = within(300, async {
        loop {
            let got: Vec<Upload> = uploads.lock().unwrap().clone();
            if got.iter().any(|u| u.round == config.round) {
                break got;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    stop.fire();

    // The truth, for the test only: the packed plaintexts under the dealer's factorisation.
    let dealer = test_dealer(2048);
    let mut read = 0;
    let mut total = 0;
    for upload in captured.iter().filter(|u| u.round == config.round) {
        let truth: Vec<BigUint> = upload
            .ciphertexts
            .iter()
            .map(|c: &Ciphertext| dealer.decrypt_with_factors(c))
            .collect();
        let recovered = strip_replayed_alphas(&pk, &config, seed, upload);
        assert_eq!(recovered.len(), truth.len());
        for (got, want) in recovered.iter().zip(&truth) {
            total += 1;
            if got.as_ref() == Some(want) {
                read += 1;
            }
        }
        assert!(
            recovered.iter().all(Option::is_none),
            "{}: the seed attack stripped h_s^α from {} of {} ciphertexts and read {} \
             plaintexts equal to the client's packed update",
            upload.client,
            recovered.iter().filter(|m| m.is_some()).count(),
            recovered.len(),
            recovered
                .iter()
                .zip(&truth)
                .filter(|(g, w)| g.as_ref() == Some(*w))
                .count(),
        );
    }
    assert!(total > 0, "no upload of round 0 was captured");
    assert_eq!(read, 0, "{read} of {total} plaintexts read");
    within(30, agg).await.unwrap().ok();
    within(30, capturing).await.unwrap().unwrap();
}
