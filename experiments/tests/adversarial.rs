//! Attacks on a running deployment (real sockets, mutual TLS): an attacker holding a
//! registered participant's certificate sends forged, replayed, malformed and hostile messages
//! to every RPC. Each must be refused with a reason, the servers must keep serving, and the
//! honest parties' rounds must still end with the simulation's models. The other way round,
//! a lying aggregator in front of a real key holder must not get a small sum decrypted.

#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use num_bigint::BigUint;
use spddl_crypto::identity::SigningKey;
use spddl_crypto::paillier::{Ciphertext, Plaintext, PublicKey};
use spddl_experiments::deploy::{self, ClientFile, FogFile};
use spddl_proto::wire::{self, pb};
use spddl_proto::{ClientId, FogId, RoundConfig, RoundId, Upload};
use tonic::Code;
use tonic::transport::Channel;

/// `name`'s mutual-TLS identity from `out/tls`.
fn public_key(out: &Path) -> PublicKey {
    PublicKey::from_json(&std::fs::read_to_string(out.join("keys/public.json")).unwrap()).unwrap()
}

/// Serves `fog` in fog 0's place — its address, its certificate, and a health service that
/// says it serves, so the aggregator assigns clients to it — until `stop` fires.
fn serve_as_fog0<T: pb::fog_worker_server::FogWorker>(
    out: &Path,
    fog: T,
    stop: &Stop,
) -> tokio::task::JoinHandle<Result<(), String>> {
    let fog0: FogFile = read_toml(&out.join("fog-0.toml"));
    let security = security_of(out, "fog-0");
    let (_health, health_service) = tonic_health::server::health_reporter();
    let router = security
        .server()
        .add_service(health_service)
        .add_service(pb::fog_worker_server::FogWorkerServer::new(fog));
    let address = fog0.listen.parse().unwrap();
    let s = stop.signal();
    tokio::spawn(async move { security.serve(router, address, s).await })
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// What client 0's stolen files give an attacker: its signing key and certificate.
struct Attacker {
    pk: PublicKey,
    key: SigningKey,
    fog: pb::fog_worker_client::FogWorkerClient<Channel>,
    rounds: pb::client_rounds_client::ClientRoundsClient<Channel>,
    fog_channel: Channel,
    aggregator_channel: Channel,
}

impl Attacker {
    fn new(out: &Path) -> Self {
        let client: ClientFile = read_toml(&out.join("client-0.toml"));
        let fog: FogFile = read_toml(&out.join("fog-0.toml"));
        let pk = public_key(out);
        let key = deploy::read_identity(&out.join(&client.identity)).unwrap();
        let fog_channel = channel_as(out, "client-0", &fog.listen);
        let aggregator_channel = channel_as(out, "client-0", &client.aggregator);
        Attacker {
            pk,
            key,
            fog: pb::fog_worker_client::FogWorkerClient::new(fog_channel.clone()),
            rounds: pb::client_rounds_client::ClientRoundsClient::new(aggregator_channel.clone()),
            fog_channel,
            aggregator_channel,
        }
    }

    /// The round the aggregator announces (once it listens), and the ciphertexts an upload
    /// must hold.
    async fn round(&mut self) -> (RoundConfig, usize) {
        let r = loop {
            match self
                .rounds
                .get_round(pb::GetRoundRequest { client: 0 })
                .await
            {
                Ok(r) => break r.into_inner(),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        };
        let (config, _) = wire::config_from_wire(&r.config.unwrap()).unwrap();
        let encoder = config.encoder(&self.pk).unwrap();
        let len = encoder.packing().plaintexts_for(config.num_params as usize);
        (config, len)
    }

    fn encrypt(&self, n: usize) -> Vec<Ciphertext> {
        let m = Plaintext::from_u64(&self.pk, 1).unwrap();
        (0..n)
            .map(|_| self.pk.encrypt(&m, &mut spddl_crypto::Entropy::os()))
            .collect()
    }

    /// Sends `upload` to fog 0 and returns how it was refused (it must be).
    /// Waits out "no round open yet, retry" (the fog follows the aggregator every 100 ms),
    /// as a client does.
    async fn refused(&mut self, upload: pb::Upload) -> tonic::Status {
        for _ in 0..500 {
            let reply = self
                .fog
                .submit_upload(pb::SubmitUploadRequest {
                    upload: Some(upload.clone()),
                })
                .await;
            let status = reply.expect_err("the fog accepted an attacker's upload");
            if status.code() != Code::Unavailable {
                return status;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        panic!("fog 0 never opened the round");
    }
}

fn assert_refused(status: &tonic::Status, code: Code, words: &[&str], attack: &str) {
    let message = status.message();
    assert_eq!(status.code(), code, "{attack}: {message}");
    for w in words {
        assert!(
            message.contains(w),
            "{attack}: `{message}` does not say `{w}`"
        );
    }
}

/// A client-signed upload of `cts` (the signature is valid for what it covers).
fn signed(
    a: &Attacker,
    config: &RoundConfig,
    client: u32,
    weight: u64,
    cts: Vec<Ciphertext>,
) -> pb::Upload {
    let up = Upload::sign(&a.pk, &a.key, config, ClientId(client), weight, cts);
    wire::upload_to_wire(&a.pk, &up)
}

/// The ciphertext field of `upload` replaced by raw values (fixed width, as on the wire).
fn with_raw(mut upload: pb::Upload, values: &[BigUint]) -> pb::Upload {
    let width = upload.ciphertexts[0].len();
    upload.ciphertexts = values
        .iter()
        .map(|v| {
            let bytes = v.to_bytes_be();
            let mut fixed = vec![0u8; width.saturating_sub(bytes.len())];
            fixed.extend_from_slice(&bytes);
            fixed
        })
        .collect();
    upload
}

/// gRPC with raw bytes as the message, to send what no generated stub would.
#[derive(Debug, Clone, Default)]
struct RawCodec;

impl tonic::codec::Codec for RawCodec {
    type Encode = Vec<u8>;
    type Decode = Vec<u8>;
    type Encoder = RawCodec;
    type Decoder = RawCodec;
    fn encoder(&mut self) -> Self::Encoder {
        RawCodec
    }
    fn decoder(&mut self) -> Self::Decoder {
        RawCodec
    }
}

impl tonic::codec::Encoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn encode(
        &mut self,
        item: Vec<u8>,
        dst: &mut tonic::codec::EncodeBuf<'_>,
    ) -> Result<(), tonic::Status> {
        bytes::BufMut::put_slice(dst, &item);
        Ok(())
    }
}

impl tonic::codec::Decoder for RawCodec {
    type Item = Vec<u8>;
    type Error = tonic::Status;
    fn decode(
        &mut self,
        src: &mut tonic::codec::DecodeBuf<'_>,
    ) -> Result<Option<Vec<u8>>, tonic::Status> {
        let n = bytes::Buf::remaining(src);
        let mut v = vec![0u8; n];
        bytes::Buf::copy_to_slice(src, &mut v);
        Ok(Some(v))
    }
}

async fn raw_call(
    channel: Channel,
    path: &'static str,
    body: Vec<u8>,
) -> Result<Vec<u8>, tonic::Status> {
    let mut grpc = tonic::client::Grpc::new(channel)
        .max_encoding_message_size(usize::MAX)
        .max_decoding_message_size(usize::MAX);
    grpc.ready()
        .await
        .map_err(|e| tonic::Status::unavailable(e.to_string()))?;
    grpc.unary(
        tonic::Request::new(body),
        tonic::codegen::http::uri::PathAndQuery::from_static(path),
        RawCodec,
    )
    .await
    .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_replayed_and_malformed_uploads_are_refused_and_the_rounds_stay_exact() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);
    let expected = simulated_digests();
    let stop = Stop::new();
    let agg = aggregator(&out, &stop);
    let (_fogs, _holders) = start_fogs_and_holders(&out, &[0, 1], &[1, 2, 3, 4, 5], &stop);
    let mut a = Attacker::new(&out);
    // Round 0 collects until every honest client (not started yet) is counted: attack now.
    let (config, len) = within(60, a.round()).await;
    let round = config.round;
    let pk = a.pk.clone();
    let good = a.encrypt(len);

    let forged = {
        let stranger = SigningKey::generate(&mut spddl_crypto::Entropy::os());
        let up = Upload::sign(&pk, &stranger, &config, ClientId(0), 1, good.clone());
        wire::upload_to_wire(&pk, &up)
    };
    let s = a.refused(forged).await;
    assert_refused(
        &s,
        Code::PermissionDenied,
        &["client 0", "signature"],
        "forged signature",
    );

    let s = a.refused(signed(&a, &config, 99, 1, good.clone())).await;
    assert_refused(&s, Code::PermissionDenied, &["99"], "unregistered identity");

    let s = a
        .refused(signed(
            &a,
            &RoundConfig {
                round: RoundId(round.0 + 5),
                ..config.clone()
            },
            0,
            1,
            good.clone(),
        ))
        .await;
    assert_refused(
        &s,
        Code::FailedPrecondition,
        &["client 0"],
        "upload for another round",
    );

    let s = a
        .refused(signed(&a, &config, 0, 1, good[..len - 1].to_vec()))
        .await;
    assert!(
        matches!(s.code(), Code::InvalidArgument | Code::FailedPrecondition)
            && s.message().contains(&format!("{}", len - 1)),
        "wrong length: {s:?}"
    );

    let s = a.refused(signed(&a, &config, 0, 0, good.clone())).await;
    assert!(s.message().contains("weight"), "weight 0: {s:?}");

    // Ciphertexts that are not elements of Z*_{n²}: refused by the wire layer before any
    // signature check or homomorphic addition.
    let n = pk.n().clone();
    let n2 = &n * &n;
    let base = signed(&a, &config, 0, 1, good.clone());
    for (what, value) in [
        ("0", BigUint::from(0u32)),
        ("n", n.clone()),
        ("n²", n2.clone()),
        ("n² + 1", &n2 + 1u32),
    ] {
        let mut values: Vec<BigUint> = good.iter().map(|c| c.value().clone()).collect();
        values[0] = value;
        let s = a.refused(with_raw(base.clone(), &values)).await;
        assert_eq!(s.code(), Code::InvalidArgument, "ciphertext {what}: {s:?}");
    }
    // 1 is in Z*_{n²} (an encryption of 0 with r = 1): it is well formed, so the check that
    // catches it is the signature, which covers the ciphertexts' digest.
    let mut values: Vec<BigUint> = good.iter().map(|c| c.value().clone()).collect();
    values[0] = BigUint::from(1u32);
    let s = a.refused(with_raw(base.clone(), &values)).await;
    assert_refused(
        &s,
        Code::PermissionDenied,
        &["signature"],
        "ciphertext 1, altered after signing",
    );

    // An upload made under another public key: its signature covers this key's id, so the
    // same bytes under the other key's id do not verify here.
    let (other_pk, _) = spddl_crypto::testing::test_key(2048, 2, 3, 77);
    let foreign_cts: Vec<Ciphertext> = (0..len)
        .map(|_| {
            other_pk.encrypt(
                &Plaintext::from_u64(&other_pk, 1).unwrap(),
                &mut spddl_crypto::Entropy::os(),
            )
        })
        .collect();
    let foreign = Upload::sign(&other_pk, &a.key, &config, ClientId(0), 1, foreign_cts);
    let s = a.refused(wire::upload_to_wire(&other_pk, &foreign)).await;
    assert!(
        matches!(s.code(), Code::InvalidArgument | Code::PermissionDenied),
        "ciphertexts under another key: {s:?}"
    );

    // Hostile bytes on every RPC: random, truncated, and larger than the 64 MiB limit.
    let valid = prost::Message::encode_to_vec(&pb::SubmitUploadRequest {
        upload: Some(base.clone()),
    });
    let calls: [(&str, &'static str, Channel); 7] = [
        (
            "fog",
            "/spddl.v1.FogWorker/SubmitUpload",
            a.fog_channel.clone(),
        ),
        (
            "fog",
            "/spddl.v1.FogWorker/GetUploads",
            a.fog_channel.clone(),
        ),
        (
            "aggregator",
            "/spddl.v1.Aggregator/GetFogRound",
            a.aggregator_channel.clone(),
        ),
        (
            "aggregator",
            "/spddl.v1.Aggregator/SubmitAggregate",
            a.aggregator_channel.clone(),
        ),
        (
            "aggregator",
            "/spddl.v1.ClientRounds/GetRound",
            a.aggregator_channel.clone(),
        ),
        (
            "aggregator",
            "/spddl.v1.KeyHolders/GetDecryptionRequest",
            a.aggregator_channel.clone(),
        ),
        (
            "aggregator",
            "/spddl.v1.KeyHolders/SubmitShare",
            a.aggregator_channel.clone(),
        ),
    ];
    let mut random = vec![0u8; 4096];
    rand::Rng::fill_bytes(&mut rand::rng(), &mut random[..]);
    for (server, path, channel) in calls {
        for (what, body) in [
            ("random bytes", random.clone()),
            ("a truncated message", valid[..valid.len() / 2].to_vec()),
            ("an oversized message", vec![0x0a; 65 << 20]),
        ] {
            let reply = raw_call(channel.clone(), path, body).await;
            let Err(s) = reply else {
                panic!("{server} {path} served {what}");
            };
            if what == "an oversized message" {
                // Refused by the 64 MiB limit, before a message is decoded, as a size limit
                // (`transport::size_refusal`; tonic's own code would be OUT_OF_RANGE).
                assert_eq!(s.code(), Code::ResourceExhausted, "{path}: {what}: {s:?}");
                assert!(s.message().contains("too large"), "{path}: {what}: {s:?}");
            } else {
                // Refused by the protobuf decoder or by the wire validation.
                assert!(
                    matches!(
                        s.code(),
                        Code::Internal | Code::InvalidArgument | Code::PermissionDenied
                    ),
                    "{path}: {what}: {s:?}"
                );
            }
        }
    }

    // Every server still serves, and the honest clients' rounds are exact.
    let clients = start_clients(&out, &stop);
    // Round 0 closed: a signed round-0 upload replayed in round 1 is refused.
    within(120, wait_for_round(&out, 1)).await;
    // The fog may not have followed the aggregator to round 1 yet (it polls every 100 ms); then
    // the replay meets client 0's real round-0 upload and is refused as a second upload.
    let replay = signed(&a, &config, 0, 1, good.clone());
    let s = a.refused(replay).await;
    let why = s.message();
    assert!(
        why.contains("client 0")
            && (why.contains("this is round 1") || why.contains("second upload")),
        "upload replayed from a closed round: {s:?}"
    );

    let report = within(300, agg).await.unwrap().unwrap();
    assert_every_round_complete(&report, &expected);
    for c in clients {
        within(30, c).await.unwrap().unwrap();
    }
    stop.fire();
}

/// How the cheating key holder corrupts its share in a round.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Cheat {
    /// One partial decryption replaced by a random element.
    RandomPartial,
    /// A share, with a valid proof, of a different ciphertext vector.
    OtherCiphertexts,
    /// The honest partials with a forged proof response `z`.
    ForgedProof,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cheating_key_holder_is_blamed_every_round_and_the_others_decrypt_exactly() {
    use spddl_proto::ShareResponse;
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);
    let expected = simulated_digests();
    let stop = Stop::new();
    let agg = aggregator(&out, &stop);
    // Holder 1 is the cheater (an attacker with its files); 2..=5 are honest.
    let (_fogs, _holders) = start_fogs_and_holders(&out, &[0, 1], &[2, 3, 4, 5], &stop);
    let clients = start_clients(&out, &stop);

    let setup = deploy::holder_setup(&out.join("holder-1.toml"), false, false).unwrap();
    let channel = channel_as(&out, "holder-1", &setup.aggregator);
    let mut holders = pb::key_holders_client::KeyHoldersClient::new(channel)
        .max_decoding_message_size(spddl_proto::wire::MAX_MESSAGE_BYTES);
    let pk = setup.pk.clone();
    let cheats = [
        Cheat::RandomPartial,
        Cheat::OtherCiphertexts,
        Cheat::ForgedProof,
    ];
    let mut previous: Option<pb::ShareResponse> = None;
    let attack = async {
        let mut refusals = Vec::new();
        let mut done = std::collections::BTreeSet::new();
        loop {
            let reply = holders
                .get_decryption_request(pb::GetDecryptionRequestRequest { holder: 1 })
                .await;
            let Ok(reply) = reply else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let reply = reply.into_inner();
            if reply.finished || done.len() == cheats.len() {
                return refusals;
            }
            let Some(w) = reply.request else {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            };
            let request = wire::request_from_wire(&pk, &w).unwrap();
            if !done.insert(request.round.0) {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            // An old share replayed into this round first: refused as the wrong round.
            if let Some(old) = previous.take() {
                let s = holders
                    .submit_share(pb::SubmitShareRequest { share: Some(old) })
                    .await
                    .expect_err("a replayed share was accepted");
                refusals.push(("replayed share", s));
            }
            let cheat = cheats[request.round.0 as usize % cheats.len()];
            let context = request.context(&pk);
            let mut rng = spddl_crypto::Entropy::os();
            let mut share = match cheat {
                Cheat::OtherCiphertexts => {
                    let mut other = request.ciphertexts().to_vec();
                    other[0] = pk.add(&other[0], &other[0]);
                    setup
                        .share
                        .decrypt(&pk, &other, &context, &mut rng)
                        .unwrap()
                }
                _ => setup
                    .share
                    .decrypt(&pk, request.ciphertexts(), &context, &mut rng)
                    .unwrap(),
            };
            match cheat {
                Cheat::RandomPartial => {
                    let r = pk.encrypt(&Plaintext::from_u64(&pk, 7).unwrap(), &mut rng);
                    share.partials[0] = r.value().clone();
                }
                Cheat::ForgedProof => share.proof.z += 1u32,
                Cheat::OtherCiphertexts => {}
            }
            // Signed with holder 1's real identity: the signature is valid, the share is not.
            let signature = setup
                .identity
                .sign(&ShareResponse::transcript_for(request.round, &share));
            let response = ShareResponse {
                round: request.round,
                share,
                signature,
            };
            let w = wire::share_to_wire(&pk, &response);
            previous = Some(w.clone());
            let s = holders
                .submit_share(pb::SubmitShareRequest { share: Some(w) })
                .await
                .expect_err("a cheating share was accepted");
            refusals.push((
                match cheat {
                    Cheat::RandomPartial => "random partial",
                    Cheat::OtherCiphertexts => "share of other ciphertexts",
                    Cheat::ForgedProof => "forged proof",
                },
                s,
            ));
        }
    };
    let refusals = within(300, attack).await;
    let report = within(300, agg).await.unwrap().unwrap();
    assert_every_round_complete(&report, &expected);
    for r in &report.rounds {
        assert_eq!(r.blamed.len(), 1, "round {}: {:?}", r.round, r.blamed);
        assert!(r.blamed[0].contains("key holder 1"), "{:?}", r.blamed);
        assert_eq!(r.holders_used, vec![2, 3, 4], "round {}", r.round);
    }
    let kinds: Vec<&str> = refusals.iter().map(|(k, _)| *k).collect();
    assert_eq!(
        kinds,
        vec![
            "random partial",
            "replayed share",
            "share of other ciphertexts",
            "replayed share",
            "forged proof"
        ]
    );
    for (kind, s) in &refusals {
        assert!(
            s.message().contains("key holder 1") && s.code() != Code::Ok,
            "{kind}: {s:?}"
        );
    }
    for c in clients {
        within(30, c).await.unwrap().unwrap();
    }
    stop.fire();
}

/// A fog worker that acknowledges every upload and forwards none (it answers as an honest
/// fog would once the aggregator stored the upload).
#[derive(Clone)]
struct DroppingFog;

#[tonic::async_trait]
impl pb::fog_worker_server::FogWorker for DroppingFog {
    async fn submit_upload(
        &self,
        request: tonic::Request<pb::SubmitUploadRequest>,
    ) -> Result<tonic::Response<pb::SubmitUploadResponse>, tonic::Status> {
        let round = request.into_inner().upload.map_or(0, |u| u.round);
        Ok(tonic::Response::new(pb::SubmitUploadResponse {
            round,
            fog: 0,
        }))
    }

    async fn get_uploads(
        &self,
        _: tonic::Request<pb::GetUploadsRequest>,
    ) -> Result<tonic::Response<pb::GetUploadsResponse>, tonic::Status> {
        Ok(tonic::Response::new(pb::GetUploadsResponse::default()))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fog_that_drops_uploads_is_caught_by_its_clients_and_bypassed() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);
    let expected = simulated_digests();
    let stop = Stop::new();
    let agg = aggregator(&out, &stop);
    // Fog 0 is the dropping fog; fog 1 is honest.
    let dropping = serve_as_fog0(&out, DroppingFog, &stop);
    let (_fogs, _holders) = start_fogs_and_holders(&out, &[1], &[1, 2, 3, 4, 5], &stop);
    let clients = start_clients(&out, &stop);
    let report = within(300, agg).await.unwrap().unwrap();
    // Every client counted in every round (through fog 1), so the models are exact.
    assert_every_round_complete(&report, &expected);
    let mut fooled = 0;
    for c in clients {
        let uploads = within(30, c).await.unwrap().unwrap();
        for round in 0..ROUNDS {
            let last = uploads.iter().rev().find(|u| u.round == round).unwrap();
            assert_eq!(last.fog, 1, "round {round}: {uploads:?}");
        }
        fooled += uploads.iter().filter(|u| u.fog == 0).count();
    }
    assert!(fooled >= 1, "no client was assigned the dropping fog first");
    stop.fire();
    within(30, dropping).await.unwrap().unwrap();
}

/// How [`CheatingFog`] alters the aggregates it forwards.
#[derive(Debug, Clone, Copy)]
enum FogCheat {
    /// The first ciphertext of each upload added twice.
    AddTwice,
    /// Another registered client listed as a contributor, without its upload.
    ExtraContributor,
}

/// A fog worker that forwards each upload at once as an altered, correctly signed aggregate,
/// shows the real uploads when audited, and tells its clients what the aggregator said.
#[derive(Clone)]
struct CheatingFog {
    cheat: FogCheat,
    pk: PublicKey,
    key: Arc<SigningKey>,
    aggregator: pb::aggregator_client::AggregatorClient<Channel>,
    uploads: Arc<Mutex<BTreeMap<(u64, u32), Upload>>>,
}

#[tonic::async_trait]
impl pb::fog_worker_server::FogWorker for CheatingFog {
    async fn submit_upload(
        &self,
        request: tonic::Request<pb::SubmitUploadRequest>,
    ) -> Result<tonic::Response<pb::SubmitUploadResponse>, tonic::Status> {
        let w = request.into_inner().upload.unwrap();
        let up = wire::upload_from_wire(&self.pk, &w).unwrap();
        self.uploads
            .lock()
            .unwrap()
            .insert((up.round.0, up.client.0), up.clone());
        let mut contributors = vec![(up.client, up.weight)];
        let mut cts = up.ciphertexts.clone();
        match self.cheat {
            FogCheat::AddTwice => cts[0] = self.pk.add(&cts[0], &up.ciphertexts[0]),
            FogCheat::ExtraContributor => {
                let other = ClientId((up.client.0 + 1) % CLIENTS as u32);
                contributors.push((other, 1));
                contributors.sort();
            }
        }
        let transcript = spddl_proto::FogAggregate::transcript_for(
            &self.pk,
            up.round,
            FogId(0),
            &contributors,
            &cts,
        );
        let agg = spddl_proto::FogAggregate {
            round: up.round,
            fog: FogId(0),
            contributors,
            ciphertexts: cts,
            signature: self.key.sign(&transcript),
        };
        let reply = self
            .aggregator
            .clone()
            .submit_aggregate(pb::SubmitAggregateRequest {
                aggregate: Some(wire::aggregate_to_wire(&self.pk, &agg)),
            })
            .await;
        match reply {
            Ok(_) => Ok(tonic::Response::new(pb::SubmitUploadResponse {
                round: up.round.0,
                fog: 0,
            })),
            Err(s) => Err(tonic::Status::aborted(format!(
                "aggregator refused fog 0's aggregate: {}",
                s.message()
            ))),
        }
    }

    async fn get_uploads(
        &self,
        request: tonic::Request<pb::GetUploadsRequest>,
    ) -> Result<tonic::Response<pb::GetUploadsResponse>, tonic::Status> {
        let r = request.into_inner();
        let uploads = self.uploads.lock().unwrap();
        Ok(tonic::Response::new(pb::GetUploadsResponse {
            uploads: r
                .clients
                .iter()
                .filter_map(|c| uploads.get(&(r.round, *c)))
                .map(|u| wire::upload_to_wire(&self.pk, u))
                .collect(),
        }))
    }
}

/// A deployment whose fog 0 cheats as `cheat`: the aggregator's audit must catch it on its
/// first aggregate and exclude it, and every round must still count every client (through
/// fog 1) and equal the simulation.
async fn a_cheating_fog_is_caught_by_the_audit(cheat: FogCheat, reason: &str) {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);
    let expected = simulated_digests();
    let stop = Stop::new();
    let agg = aggregator(&out, &stop);
    let fog0: FogFile = read_toml(&out.join("fog-0.toml"));
    let fog = CheatingFog {
        cheat,
        pk: public_key(&out),
        key: Arc::new(deploy::read_identity(&out.join(&fog0.identity)).unwrap()),
        aggregator: pb::aggregator_client::AggregatorClient::new(channel_as(
            &out,
            "fog-0",
            &fog0.aggregator,
        )),
        uploads: Arc::default(),
    };
    let cheating = serve_as_fog0(&out, fog, &stop);
    let (_fogs, _holders) = start_fogs_and_holders(&out, &[1], &[1, 2, 3, 4, 5], &stop);
    let clients = start_clients(&out, &stop);
    let report = within(300, agg).await.unwrap().unwrap();
    assert_every_round_complete(&report, &expected);
    assert_eq!(report.fogs_blamed.len(), 1, "{:?}", report.fogs_blamed);
    let blame = &report.fogs_blamed[0];
    assert!(
        blame.starts_with("fog 0: audit failed") && blame.contains(reason),
        "{blame}"
    );
    for c in clients {
        let uploads = within(30, c).await.unwrap().unwrap();
        for round in 0..ROUNDS {
            let last = uploads.iter().rev().find(|u| u.round == round).unwrap();
            assert_eq!(last.fog, 1, "round {round}: {uploads:?}");
        }
    }
    stop.fire();
    within(30, cheating).await.unwrap().unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fog_that_adds_a_ciphertext_twice_is_caught_by_the_audit() {
    a_cheating_fog_is_caught_by_the_audit(FogCheat::AddTwice, "not the product").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fog_that_lists_a_client_without_its_upload_is_caught_by_the_audit() {
    a_cheating_fog_is_caught_by_the_audit(FogCheat::ExtraContributor, "1 signed uploads for 2")
        .await;
}

/// The aggregator's place taken by a liar with the aggregator's identity and certificate (and,
/// in league with it, fog 0's identity), in front of a real key holder: it offers one request
/// after another, most built to get a sum of fewer than `min_contributors` (3) real updates
/// decrypted, or a second sum that differs from an answered one by one client.
#[derive(Clone)]
struct LyingAggregator {
    requests: Arc<Vec<pb::DecryptionRequest>>,
    state: Arc<Mutex<LyingState>>,
}

#[derive(Default)]
struct LyingState {
    /// The request on offer.
    current: usize,
    /// Polls it was offered to.
    offered: usize,
    /// Rounds a share came in for.
    answered: Vec<u64>,
    /// The shares, as sent.
    shares: Vec<pb::ShareResponse>,
}

#[tonic::async_trait]
impl pb::key_holders_server::KeyHolders for LyingAggregator {
    async fn get_decryption_request(
        &self,
        _: tonic::Request<pb::GetDecryptionRequestRequest>,
    ) -> Result<tonic::Response<pb::GetDecryptionRequestResponse>, tonic::Status> {
        let mut s = self.state.lock().unwrap();
        let last = self.requests.len() - 1;
        // Each request is offered until it is answered or on four polls (the holder polls
        // every 200 ms), as an aggregator offers a request until the share timeout.
        if s.offered >= 4 {
            if s.current == last {
                return Ok(tonic::Response::new(pb::GetDecryptionRequestResponse {
                    request: None,
                    finished: true,
                    ..Default::default()
                }));
            }
            s.current += 1;
            s.offered = 0;
        }
        s.offered += 1;
        Ok(tonic::Response::new(pb::GetDecryptionRequestResponse {
            request: Some(self.requests[s.current].clone()),
            ..Default::default()
        }))
    }

    async fn submit_share(
        &self,
        request: tonic::Request<pb::SubmitShareRequest>,
    ) -> Result<tonic::Response<pb::SubmitShareResponse>, tonic::Status> {
        let share = request.into_inner().share.unwrap();
        let mut s = self.state.lock().unwrap();
        s.answered.push(share.round);
        s.shares.push(share);
        s.offered = 4; // answered: on to the next request
        Ok(tonic::Response::new(pb::SubmitShareResponse {}))
    }

    async fn get_request_uploads(
        &self,
        _: tonic::Request<pb::GetRequestUploadsRequest>,
    ) -> Result<tonic::Response<pb::GetRequestUploadsResponse>, tonic::Status> {
        // Every request here fits its first page.
        Err(tonic::Status::failed_precondition("no more pages"))
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_lying_aggregator_with_a_colluding_fog_cannot_get_a_small_sum_or_a_difference_decrypted()
{
    use spddl_proto::DecryptionRequest;
    use tracing::instrument::WithSubscriber;
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);
    let pk = public_key(&out);
    let agg_file: deploy::AggregatorFile = read_toml(&out.join("aggregator.toml"));
    let agg_key = deploy::read_identity(&out.join(&agg_file.identity)).unwrap();
    let fog0_file: FogFile = read_toml(&out.join("fog-0.toml"));
    let fog0 = deploy::read_identity(&out.join(&fog0_file.identity)).unwrap();
    let client_key = |k: u32| {
        let file: ClientFile = read_toml(&out.join(format!("client-{k}.toml")));
        deploy::read_identity(&out.join(&file.identity)).unwrap()
    };
    let clients: Vec<SigningKey> = (0..4).map(client_key).collect();
    // The config of `round`, trained from a global model named by `model`, as the aggregator
    // signs it.
    let config = |round: u64, model: f32| RoundConfig {
        model_digest: RoundConfig::digest_model(&[model]),
        ..RoundConfig::example(RoundId(round))
    };
    // Client k's genuine upload for `config`: it encrypted (k + 1, 2k + 1).
    let upload = |config: &RoundConfig, k: u32| {
        let mut rng = spddl_crypto::Entropy::os();
        let cts: Vec<Ciphertext> = [u64::from(k) + 1, 2 * u64::from(k) + 1]
            .iter()
            .map(|&m| pk.encrypt(&Plaintext::from_u64(&pk, m).unwrap(), &mut rng))
            .collect();
        Upload::sign(&pk, &clients[k as usize], config, ClientId(k), 1, cts)
    };
    let uploads = |config: &RoundConfig, ks: &[u32]| -> Vec<Upload> {
        ks.iter().map(|&k| upload(config, k)).collect()
    };
    let request = |config: &RoundConfig, uploads: Vec<Upload>| {
        let sig = agg_key.sign(&config.transcript());
        let r = DecryptionRequest::sign(&pk, config.clone(), sig, uploads, &agg_key).unwrap();
        wire::request_to_wire(&pk, &r)
    };
    // What fog 0, in league with the aggregator, holds: client 2's upload only; it lists
    // clients 0, 1 and 2 by making up or relabelling their uploads.
    let c0 = config(0, 0.0);
    let only_2 = upload(&c0, 2);
    let mut as_0 = only_2.clone();
    as_0.client = ClientId(0);
    let mut as_1 = only_2.clone();
    as_1.client = ClientId(1);
    let c1 = config(1, 0.1);
    let made_up: Vec<Upload> = [0, 1]
        .iter()
        .map(|&k| {
            let cts = upload(&c1, 2).ciphertexts;
            Upload::sign(&pk, &fog0, &c1, ClientId(k), 1, cts)
        })
        .chain([upload(&c1, 2)])
        .collect();
    let c3 = config(3, 0.3);
    let c4 = config(4, 0.4);
    let mut uneven = request(&config(5, 0.5), uploads(&config(5, 0.5), &[0, 1, 2]));
    uneven.uploads[1].ciphertexts.pop();
    let lies = [
        (
            request(&c0, vec![as_0, as_1, only_2]),
            "decryption request for round 0: the upload of client 0 is not signed by client 0",
        ),
        (
            request(&c1, made_up),
            "decryption request for round 1: the upload of client 0 is not signed by client 0",
        ),
        (
            request(&config(2, 0.2), uploads(&config(2, 0.2), &[0, 1])),
            "decryption request for round 2 covers 2 updates, fewer than 3: refused",
        ),
        (
            request(&c3, {
                let u = upload(&c3, 0);
                vec![u.clone(), u.clone(), u]
            }),
            "decryption request for round 3: client 0's upload appears twice",
        ),
        (
            request(&c4, {
                let mut v = uploads(&c4, &[0, 1]);
                v.push(upload(&c3, 2));
                v
            }),
            "decryption request for round 4: the upload of client 2 was made for round 3: refused",
        ),
        (
            uneven,
            "refused a malformed decryption request from the aggregator",
        ),
    ];
    let mut requests: Vec<pb::DecryptionRequest> = lies.iter().map(|(r, _)| r.clone()).collect();
    // The honest sum of round 6.
    let c6 = config(6, 0.6);
    let honest = uploads(&c6, &[0, 1, 2, 3]);
    requests.push(request(&c6, honest.clone()));
    // Then a second sum of round 6 with client 3 left out: both hold at least 3 updates, but
    // their difference is client 3's update.
    requests.push(request(&c6, honest[..3].to_vec()));
    // Then the aggregator alone over two rounds: round 7 from the same global model as round 6
    // (it kept the model still), without client 3.
    let c7 = config(7, 0.6);
    requests.push(request(&c7, uploads(&c7, &[0, 1, 2])));
    // Then an older round.
    let c5 = config(5, 0.55);
    requests.push(request(&c5, uploads(&c5, &[0, 1, 2])));
    // And an honest round 8 from a new model: answered.
    let c8 = config(8, 0.8);
    requests.push(request(&c8, uploads(&c8, &[0, 1, 2])));
    let refusals_after_honest = [
        "decryption request for round 6: this holder already decrypted another sum of round 6: refused",
        "decryption request for round 7: its uploads were trained from the same global model as round 6, whose sum this holder decrypted, and its contributors differ from round 6's by 1 client(s), fewer than 3: refused",
        "decryption request for round 5: this holder already decrypted round 6: refused (rounds only move forward)",
    ];
    let liar = LyingAggregator {
        requests: Arc::new(requests),
        state: Arc::default(),
    };
    let stop = Stop::new();
    let security = security_of(&out, "aggregator");
    let router = security.server().add_service(
        pb::key_holders_server::KeyHoldersServer::new(liar.clone())
            .max_decoding_message_size(wire::MAX_MESSAGE_BYTES),
    );
    let listen = agg_file.listen.parse().unwrap();
    let signal = stop.signal();
    let server = tokio::spawn(async move { security.serve(router, listen, signal).await });

    let log = Log::default();
    let cfg = out.join("holder-1.toml");
    let holder = tokio::spawn(
        async move { deploy::run_holder(&cfg, false, false, Stop::new().signal()).await }
            .with_subscriber(log.subscriber()),
    );
    let answered = within(120, holder).await.unwrap().unwrap();
    stop.fire();
    server.await.unwrap().unwrap();

    // Only the honest requests got a share, and the first decrypts the honest sum.
    let state = liar.state.lock().unwrap();
    assert_eq!(answered, 2);
    assert_eq!(state.answered, vec![6, 8], "shares were given for a lie");
    let text = log.text();
    for reason in lies.iter().map(|(_, r)| *r).chain(refusals_after_honest) {
        assert!(
            text.contains(reason),
            "the holder did not refuse with {reason:?}:\n{text}"
        );
    }
    let honest_request = wire::request_from_wire(&pk, &request(&c6, honest)).unwrap();
    let share = wire::share_from_wire(&pk, &state.shares[0]).unwrap();
    share
        .share
        .verify(
            &pk,
            honest_request.ciphertexts(),
            &honest_request.context(&pk),
        )
        .expect("the honest request's share verifies against the honest sum");
}

/// `SubmitAggregate` of `agg` over `channel`.
async fn submit_aggregate(
    channel: Channel,
    pk: &PublicKey,
    agg: &spddl_proto::FogAggregate,
) -> Result<pb::SubmitAggregateResponse, tonic::Status> {
    pb::aggregator_client::AggregatorClient::new(channel)
        .submit_aggregate(pb::SubmitAggregateRequest {
            aggregate: Some(wire::aggregate_to_wire(pk, agg)),
        })
        .await
        .map(tonic::Response::into_inner)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn forged_and_late_aggregates_blame_no_fog_and_every_round_completes() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);
    let expected = simulated_digests();
    let stop = Stop::new();
    let agg = aggregator(&out, &stop);
    let (_fogs, _holders) = start_fogs_and_holders(&out, &[0, 1], &[1, 2, 3, 4, 5], &stop);
    let mut a = Attacker::new(&out);
    let (config, len) = within(60, a.round()).await;
    let pk = a.pk.clone();
    let stranger = SigningKey::generate(&mut spddl_crypto::Entropy::os());
    let aggregator_address =
        read_toml::<deploy::AggregatorFile>(&out.join("aggregator.toml")).listen;
    for fog in [0u32, 1] {
        // An aggregate naming the fog, with a signature that is not the fog's.
        let forged = spddl_proto::FogAggregate::sign(
            &pk,
            &stranger,
            config.round,
            FogId(fog),
            vec![(ClientId(0), 1)],
            a.encrypt(len),
        );
        // From client 0's certificate: refused by the identity binding.
        let s = submit_aggregate(a.aggregator_channel.clone(), &pk, &forged)
            .await
            .unwrap_err();
        assert_refused(
            &s,
            Code::PermissionDenied,
            &["client 0", &format!("fog {fog}")],
            "aggregate from a client's certificate",
        );
        // From the fog's own certificate (a stolen one, or a bug): refused by the signature
        // check, before any upload is fetched or audited.
        let channel = channel_as(&out, &format!("fog-{fog}"), &aggregator_address);
        let s = submit_aggregate(channel, &pk, &forged).await.unwrap_err();
        assert_refused(
            &s,
            Code::PermissionDenied,
            &[&format!("fog {fog}"), "signature"],
            "aggregate with a forged signature",
        );
    }
    // Fog 1's real key signs an aggregate of 130,000 well-formed ciphertexts (just under the
    // 64 MiB limit): refused from its count before one is parsed, and fog 1 is not blamed.
    let fog1: FogFile = read_toml(&out.join("fog-1.toml"));
    let key1 = deploy::read_identity(&out.join(&fog1.identity)).unwrap();
    let huge = spddl_proto::FogAggregate::sign(
        &pk,
        &key1,
        config.round,
        FogId(1),
        vec![(ClientId(3), 1)],
        vec![a.encrypt(1)[0].clone(); 130_000],
    );
    let started = std::time::Instant::now();
    let s = submit_aggregate(channel_as(&out, "fog-1", &aggregator_address), &pk, &huge)
        .await
        .unwrap_err();
    println!(
        "an aggregate of 130,000 ciphertexts: {:?} in {} ms",
        s.code(),
        started.elapsed().as_millis()
    );
    assert_refused(
        &s,
        Code::InvalidArgument,
        &["fog 1", "130000 ciphertexts, expected"],
        "an aggregate of too many ciphertexts",
    );
    let clients = start_clients(&out, &stop);
    within(120, wait_for_round(&out, 1)).await;
    // Fog 0's real key signs an aggregate of round 0 after round 0 closed: refused as late,
    // not audited, and fog 0 is not blamed (it keeps its clients in the rounds after).
    let fog0: FogFile = read_toml(&out.join("fog-0.toml"));
    let key = deploy::read_identity(&out.join(&fog0.identity)).unwrap();
    let late = spddl_proto::FogAggregate::sign(
        &pk,
        &key,
        config.round,
        FogId(0),
        vec![(ClientId(0), 1)],
        a.encrypt(len),
    );
    let s = submit_aggregate(channel_as(&out, "fog-0", &aggregator_address), &pk, &late)
        .await
        .unwrap_err();
    assert_refused(
        &s,
        Code::FailedPrecondition,
        &["fog 0", "round 0"],
        "a late aggregate of a closed round",
    );
    let report = within(300, agg).await.unwrap().unwrap();
    assert_every_round_complete(&report, &expected);
    assert!(
        report.fogs_blamed.is_empty(),
        "an honest fog was blamed: {:?}",
        report.fogs_blamed
    );
    for c in clients {
        within(30, c).await.unwrap().unwrap();
    }
    stop.fire();
}

/// Client 0 by hand: in-range uploads, except in `overflow_round`, whose every plaintext has
/// a bit set above its slots (a correctly signed upload no slot check at the fog can see).
async fn client0_by_hand(out: PathBuf, overflow_round: u64) {
    let mut a = Attacker::new(&out);
    let mut rounds = rounds_client(&out, &out);
    let mut done = None;
    loop {
        // Until the aggregator says the run is finished (the test ends this task otherwise):
        // it may not listen yet, or be busy.
        let Ok(r) = rounds.get_round(pb::GetRoundRequest { client: 0 }).await else {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        };
        let r = r.into_inner();
        let (config, _) = wire::config_from_wire(&r.config.clone().unwrap()).unwrap();
        if r.phase == pb::RoundPhase::Finished as i32 {
            return;
        }
        if r.counted || done == Some(config.round) || r.fogs.is_empty() {
            tokio::time::sleep(Duration::from_millis(50)).await;
            continue;
        }
        let encoder = config.encoder(&a.pk).unwrap();
        let m = config.num_params as usize;
        let mut plaintexts = encoder
            .encode_scaled(&vec![0.01; m], 1, config.max_weight, &mut rand::rng())
            .unwrap();
        if config.round.0 == overflow_round {
            let packing = encoder.packing();
            let mut left = m;
            for p in &mut plaintexts {
                let used = packing.slots_per_plaintext().min(left);
                left -= used;
                *p += BigUint::from(1u8) << (used as u64 * u64::from(packing.slot_bits()));
            }
        }
        let cts = plaintexts
            .into_iter()
            .map(|p| {
                a.pk.encrypt(
                    &Plaintext::new(&a.pk, p).unwrap(),
                    &mut spddl_crypto::Entropy::os(),
                )
            })
            .collect();
        let upload = signed(&a, &config, 0, 1, cts);
        a.fog = pb::fog_worker_client::FogWorkerClient::new(channel_as(
            &out,
            "client-0",
            &r.fogs[0].address,
        ));
        if a.fog
            .submit_upload(pb::SubmitUploadRequest {
                upload: Some(upload),
            })
            .await
            .is_ok()
        {
            done = Some(config.round);
        } else {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_client_whose_slots_overflow_costs_one_round_not_the_run() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);
    let stop = Stop::new();
    let agg = aggregator(&out, &stop);
    let (_fogs, _holders) = start_fogs_and_holders(&out, &[0, 1], &[1, 2, 3, 4, 5], &stop);
    let hand = tokio::spawn(client0_by_hand(out.clone(), 1));
    let honest: Vec<_> = (1..CLIENTS)
        .map(|c| {
            let cfg = out.join(format!("client-{c}.toml"));
            let s = stop.signal();
            tokio::spawn(async move { deploy::run_client(&cfg, false, s).await })
        })
        .collect();
    let report = within(300, agg).await.unwrap().unwrap();
    let rounds: Vec<u64> = report.rounds.iter().map(|r| r.round).collect();
    assert_eq!(
        rounds,
        (0..ROUNDS).collect::<Vec<_>>(),
        "{:?}",
        report.rounds
    );
    let skipped = &report.rounds[1];
    let Some(why) = skipped.skipped.as_deref() else {
        panic!("round 1 was not skipped: {:?}", report.rounds);
    };
    assert!(
        why.contains("round 1") && why.contains("does not decode") && why.contains("plaintext 0"),
        "{why}"
    );
    assert_eq!(
        skipped.model_digest, report.rounds[0].model_digest,
        "a skipped round moved the model"
    );
    for r in [&report.rounds[0], &report.rounds[2]] {
        assert_eq!(r.skipped, None, "round {}", r.round);
        assert_eq!(r.contributors.len(), CLIENTS, "round {}", r.round);
    }
    assert_ne!(report.rounds[2].model_digest, report.rounds[1].model_digest);
    for c in honest {
        within(30, c).await.unwrap().unwrap();
    }
    stop.fire();
    hand.abort();
}
