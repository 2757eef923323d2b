//! The client and key-holder processes over gRPC. Both only dial out — to the aggregator to
//! poll for work, and (clients) to fog workers to upload — so they work behind NAT.
//!
//! A client polls `ClientRounds.GetRound`; for a round it has not been counted in, it checks
//! the aggregator's signature on the config and the model digest, trains, seals (the same
//! [`Client`] core as the simulation, with the same seeded training and rounding streams and
//! encryption randomness from the operating system), and uploads through its
//! fog list in order: a fog that is down or times out is skipped for the next one.
//! A key holder polls `KeyHolders.GetDecryptionRequest` and answers with
//! [`spddl_proto::answer_request`].

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use spddl_crypto::Entropy;
use spddl_crypto::identity::{SigningKey, VerifyingKey};
use spddl_crypto::paillier::{KeyShare, PublicKey};
use spddl_proto::transport::{Backoff, Security, describe};
use spddl_proto::wire::{self, MAX_MESSAGE_BYTES, pb};
use spddl_proto::{
    ClientId, Registry, RoundConfig, Upload, check_request, ciphertexts_digest, share_of_checked,
};
use tonic::transport::Channel;
use tracing::{error, info, warn};

use crate::client::{Client, seeded_rng};
use crate::model::ModelSpec;

/// Everything a client process needs.
pub struct ClientSetup {
    /// The threshold public key.
    pub pk: PublicKey,
    /// The client: id, identity, local data.
    pub client: std::sync::Arc<Client>,
    /// The model architecture (must match the aggregator's).
    pub spec: ModelSpec,
    /// The aggregator's `host:port`.
    pub aggregator: String,
    /// The aggregator's identity (signs round configs).
    pub aggregator_key: VerifyingKey,
    /// TLS or plaintext.
    pub security: Security,
    /// The run's seed (training and rounding streams; never encryption randomness).
    pub seed: u64,
    /// Per-call deadline for uploads.
    pub upload_timeout: Duration,
}

impl std::fmt::Debug for ClientSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientSetup")
            .field("client", &self.client.id())
            .finish_non_exhaustive()
    }
}

/// One upload a client made.
#[derive(Debug, Clone)]
pub struct UploadRecord {
    /// The round.
    pub round: u64,
    /// The fog worker that took it.
    pub fog: u32,
    /// Fog workers tried before it that failed.
    pub failed_over: u32,
    /// Bytes of the upload request on the wire (protobuf encoding).
    pub bytes: usize,
    /// Seconds spent training.
    pub train_s: f64,
    /// Seconds spent encoding, encrypting and signing.
    pub seal_s: f64,
    /// Seconds from sending to the fog's acknowledgement.
    pub upload_s: f64,
}

/// Runs a client until the aggregator says the run is over or `shutdown` resolves; returns
/// its uploads.
pub async fn run_client(
    setup: ClientSetup,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<Vec<UploadRecord>, String> {
    let id = setup.client.id();
    let channel = setup
        .security
        .channel(&setup.aggregator, Duration::from_secs(30))?;
    let mut rounds = pb::client_rounds_client::ClientRoundsClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let mut fogs: BTreeMap<String, pb::fog_worker_client::FogWorkerClient<Channel>> =
        BTreeMap::new();
    let mut records = Vec::new();
    let mut sealed: Option<(u64, Upload, f64, f64)> = None;
    let mut backoff = Backoff::default();
    let mut last_error = String::new();
    let client = setup.client.clone();
    // The fog that last acknowledged an upload, by round. A fog acknowledges only once the
    // aggregator has stored the aggregate holding the upload, so a round that still reports
    // this client uncounted after an acknowledgement means the fog dropped the upload (or the
    // aggregator restarted the round): that fog is tried last from then on in this round.
    let mut acknowledged: Option<(u64, u32)> = None;
    let mut suspects: std::collections::BTreeSet<(u64, u32)> = Default::default();
    tokio::pin!(shutdown);
    loop {
        let poll = tokio::select! {
            _ = &mut shutdown => return Ok(records),
            r = rounds.get_round(pb::GetRoundRequest { client: id.0 }) => r,
        };
        let wait = match poll {
            Err(e) => {
                let msg = describe(&e);
                if msg != last_error {
                    warn!(%id, "aggregator at {}: {msg}", setup.aggregator);
                    last_error = msg;
                }
                if e.code() == tonic::Code::PermissionDenied {
                    return Err(format!("{id}: refused by the aggregator: {}", e.message()));
                }
                backoff.next_delay()
            }
            Ok(r) => {
                backoff.reset();
                last_error.clear();
                let r = r.into_inner();
                if r.phase == pb::RoundPhase::Finished as i32 {
                    info!(%id, uploads = records.len(), "the run is over");
                    return Ok(records);
                }
                if r.phase == pb::RoundPhase::Failed as i32 {
                    return Err(stopped_by_aggregator(&id, r.config.as_ref()));
                }
                if r.phase == pb::RoundPhase::Collecting as i32
                    && !r.counted
                    && !r.fogs.is_empty()
                    && let Some(cfg) = &r.config
                {
                    let (config, signature) =
                        wire::config_from_wire(cfg).map_err(|e| e.to_string())?;
                    if setup
                        .aggregator_key
                        .verify(&config.transcript(), &signature)
                        .is_err()
                    {
                        return Err(format!(
                            "{id}: round config not signed by the registered aggregator"
                        ));
                    }
                    let round = config.round.0;
                    if let Some((r, fog)) = acknowledged.take()
                        && r == round
                        && suspects.insert((round, fog))
                    {
                        warn!(%id, round, fog, "fog {fog} acknowledged the upload but the aggregator has not counted it: trying the other fogs first");
                    }
                    // Fogs in the aggregator's order, suspected ones last.
                    let mut order = r.fogs.clone();
                    order.sort_by_key(|f| suspects.contains(&(round, f.fog)));
                    if sealed.as_ref().is_none_or(|s| s.0 != round) {
                        sealed =
                            Some(seal_round(&setup, client.clone(), config, r.global_model).await?);
                    }
                    if let Some((_, upload, train_s, seal_s)) = &sealed
                        && let Some(rec) = upload_through(&setup, &mut fogs, upload, &order).await?
                    {
                        acknowledged = Some((rec.round, rec.fog));
                        records.push(UploadRecord {
                            train_s: *train_s,
                            seal_s: *seal_s,
                            ..rec
                        });
                    }
                }
                Duration::from_millis(200)
            }
        };
        tokio::select! {
            _ = &mut shutdown => return Ok(records),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

async fn seal_round(
    setup: &ClientSetup,
    client: std::sync::Arc<Client>,
    config: RoundConfig,
    global: Vec<f32>,
) -> Result<(u64, Upload, f64, f64), String> {
    let pk = setup.pk.clone();
    let spec = setup.spec.clone();
    let seed = setup.seed;
    let round = config.round.0;
    tokio::task::spawn_blocking(move || {
        let id = client.id();
        let t = Instant::now();
        let mut rng = seeded_rng(seed, 3, round, u64::from(id.0));
        let update = client
            .train(&spec, &config, &global, &mut rng)
            .map_err(|e| e.to_string())?;
        let train_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        // Rounding from the seeded stream (the simulation's); α from the operating system.
        let mut rounding = seeded_rng(seed, 4, round, u64::from(id.0));
        let upload = client
            .seal(&pk, &config, &update, &mut rounding, &mut Entropy::os())
            .map_err(|e| e.to_string())?;
        Ok((round, upload, train_s, t.elapsed().as_secs_f64()))
    })
    .await
    .map_err(|e| e.to_string())?
}

/// Tries the fog workers in order; `Ok(None)` if none took the upload (down, timed out, not
/// collecting yet). A fog that refuses the upload itself (its signature, its identity) ends
/// the client with that error: another fog would refuse it too.
async fn upload_through(
    setup: &ClientSetup,
    fogs: &mut BTreeMap<String, pb::fog_worker_client::FogWorkerClient<Channel>>,
    upload: &Upload,
    endpoints: &[pb::FogEndpoint],
) -> Result<Option<UploadRecord>, String> {
    let id = upload.client;
    let request = pb::SubmitUploadRequest {
        upload: Some(wire::upload_to_wire(&setup.pk, upload)),
    };
    let bytes = prost::Message::encoded_len(&request);
    for (tried, fog) in endpoints.iter().enumerate() {
        let client = match fogs.get(&fog.address) {
            Some(c) => c.clone(),
            None => match setup.security.channel(&fog.address, setup.upload_timeout) {
                Ok(ch) => {
                    let c = pb::fog_worker_client::FogWorkerClient::new(ch)
                        .max_decoding_message_size(MAX_MESSAGE_BYTES)
                        .max_encoding_message_size(MAX_MESSAGE_BYTES);
                    fogs.insert(fog.address.clone(), c.clone());
                    c
                }
                Err(e) => {
                    error!(%id, fog = fog.fog, "{e}");
                    continue;
                }
            },
        };
        let mut client = client;
        let t = Instant::now();
        match client.submit_upload(request.clone()).await {
            Ok(_) => {
                let upload_s = t.elapsed().as_secs_f64();
                info!(%id, round = upload.round.0, fog = fog.fog, bytes, upload_s = format!("{upload_s:.2}"), failed_over = tried, "upload acknowledged");
                return Ok(Some(UploadRecord {
                    round: upload.round.0,
                    fog: fog.fog,
                    failed_over: tried as u32,
                    bytes,
                    train_s: 0.0,
                    seal_s: 0.0,
                    upload_s,
                }));
            }
            Err(e) if e.code() == tonic::Code::PermissionDenied => {
                return Err(format!(
                    "{id}: fog {} refused the upload: {}",
                    fog.fog,
                    e.message()
                ));
            }
            Err(e) if e.code() == tonic::Code::FailedPrecondition => {
                // The fog is up but has not seen this round yet: not a reason to fail over.
                info!(%id, round = upload.round.0, fog = fog.fog, "fog not ready: {}; retrying", e.message());
                return Ok(None);
            }
            Err(e) => {
                warn!(%id, round = upload.round.0, fog = fog.fog, address = %fog.address, "upload failed: {}; trying the next fog", describe(&e));
            }
        }
    }
    Ok(None)
}

/// The error a peer stops with when the aggregator reports the run failed.
fn stopped_by_aggregator(who: &dyn std::fmt::Display, config: Option<&pb::RoundConfig>) -> String {
    match config {
        Some(c) => format!(
            "{who}: the aggregator stopped the run: round {} could not complete (its log says why)",
            c.round
        ),
        None => format!("{who}: the aggregator stopped the run (its log says why)"),
    }
}

/// Everything a key-holder process needs.
pub struct HolderSetup {
    /// The threshold public key.
    pub pk: PublicKey,
    /// This holder's key share.
    pub share: KeyShare,
    /// Its signing key.
    pub identity: SigningKey,
    /// The aggregator's `host:port`.
    pub aggregator: String,
    /// Who is who: the aggregator's key (it signs decryption requests), the fog workers'
    /// (they sign the aggregates a request carries) and the registered clients.
    pub registry: Registry,
    /// The holder's own policy: never decrypt a sum of fewer distinct updates.
    pub min_contributors: u32,
    /// The sums it decrypted, one per round at most.
    pub log: crate::decryption_log::DecryptionLog,
    /// TLS or plaintext.
    pub security: Security,
}

impl std::fmt::Debug for HolderSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HolderSetup")
            .field("holder", &self.share.index())
            .finish_non_exhaustive()
    }
}

/// Runs a key holder until the aggregator says the run is over or `shutdown` resolves;
/// returns how many requests it answered.
pub async fn run_holder(
    setup: HolderSetup,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<usize, String> {
    let holder = setup.share.index();
    let channel = setup
        .security
        .channel(&setup.aggregator, Duration::from_secs(120))?;
    let mut aggregator = pb::key_holders_client::KeyHoldersClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let setup = std::sync::Arc::new(setup);
    let mut answered = 0;
    let mut backoff = Backoff::default();
    let mut last_error = String::new();
    // The aggregator offers a request until it is answered or times out: a refusal is
    // logged once, not on every poll.
    let mut last_refusal = String::new();
    tokio::pin!(shutdown);
    loop {
        let poll = tokio::select! {
            _ = &mut shutdown => return Ok(answered),
            r = aggregator.get_decryption_request(pb::GetDecryptionRequestRequest { holder: holder.get().into() }) => r,
        };
        let wait = match poll {
            Err(e) => {
                let msg = describe(&e);
                if msg != last_error {
                    warn!(%holder, "aggregator at {}: {msg}", setup.aggregator);
                    last_error = msg;
                }
                if e.code() == tonic::Code::PermissionDenied {
                    return Err(format!(
                        "key holder {holder}: refused by the aggregator: {}",
                        e.message()
                    ));
                }
                backoff.next_delay()
            }
            Ok(r) => {
                backoff.reset();
                last_error.clear();
                let r = r.into_inner();
                if r.finished {
                    info!(%holder, answered, "the run is over");
                    return Ok(answered);
                }
                if r.failed {
                    return Err(format!(
                        "key holder {holder}: the aggregator stopped the run: a round could not complete (its log says why)"
                    ));
                }
                let mut page = r.request;
                // The uploads beyond the first page, fetched until the request is whole.
                // No request may hold more uploads than there are registered clients.
                if let Some(w) = page.as_ref()
                    && w.total_uploads as usize > setup.registry.clients.len()
                {
                    let msg = format!(
                        "a decryption request of {} uploads, more than the {} registered clients",
                        w.total_uploads,
                        setup.registry.clients.len()
                    );
                    if msg != last_refusal {
                        warn!(%holder, "refused a malformed decryption request from the aggregator: {msg}");
                        last_refusal = msg;
                    }
                    page = None;
                }
                if let Some(w) = page.as_mut() {
                    while w.uploads.len() < w.total_uploads as usize {
                        let more = aggregator
                            .get_request_uploads(pb::GetRequestUploadsRequest {
                                holder: holder.get().into(),
                                round: w.round,
                                offset: u32::try_from(w.uploads.len()).unwrap_or(u32::MAX),
                            })
                            .await
                            .map(|r| r.into_inner().uploads);
                        match more {
                            Ok(more)
                                if !more.is_empty()
                                    && w.uploads.len() + more.len() <= w.total_uploads as usize =>
                            {
                                w.uploads.extend(more)
                            }
                            Ok(_) => {
                                warn!(%holder, round = w.round, "the aggregator's pages of the decryption request do not add up to {} uploads: polling again", w.total_uploads);
                                break;
                            }
                            Err(e) => {
                                warn!(%holder, round = w.round, "fetching the decryption request's uploads: {}", describe(&e));
                                break;
                            }
                        }
                    }
                }
                let request = page
                    .filter(|w| w.uploads.len() == w.total_uploads as usize)
                    .map(|w| wire::request_from_wire(&setup.pk, &w));
                if let Some(Err(e)) = &request {
                    let msg = e.to_string();
                    if msg != last_refusal {
                        warn!(%holder, "refused a malformed decryption request from the aggregator: {msg}");
                        last_refusal = msg;
                    }
                }
                if let Some(Ok(request)) = request {
                    let round = request.round;
                    let s = setup.clone();
                    let t = Instant::now();
                    // Check the request, then record its sum as this round's (refusing a
                    // second sum of the round), then decrypt.
                    let answer = tokio::task::spawn_blocking(move || {
                        check_request(&s.pk, &s.registry, s.min_contributors, &request)
                            .map_err(|e| e.to_string())?;
                        let contributors: Vec<ClientId> =
                            request.uploads().iter().map(|u| u.client).collect();
                        s.log.claim(
                            round,
                            &request.config().0.model_digest,
                            &ciphertexts_digest(&s.pk, request.ciphertexts()),
                            &contributors,
                            s.min_contributors,
                        )?;
                        share_of_checked(&s.pk, &s.share, &s.identity, &request, &mut Entropy::os())
                            .map_err(|e| e.to_string())
                    })
                    .await
                    .map_err(|e| e.to_string())?;
                    match answer {
                        Ok(resp) => {
                            let decrypt_s = t.elapsed().as_secs_f64();
                            let msg = pb::SubmitShareRequest {
                                share: Some(wire::share_to_wire(&setup.pk, &resp)),
                            };
                            match aggregator.submit_share(msg).await {
                                Ok(_) => {
                                    answered += 1;
                                    info!(%holder, %round, ciphertexts = resp.share.partials.len(), decrypt_s = format!("{decrypt_s:.2}"), "share accepted");
                                }
                                Err(e) => {
                                    warn!(%holder, %round, "share not accepted: {}", describe(&e))
                                }
                            }
                        }
                        Err(e) => {
                            let msg = e.to_string();
                            if msg != last_refusal {
                                warn!(%holder, %round, "refused to decrypt: {msg}");
                                last_refusal = msg;
                            }
                        }
                    }
                }
                Duration::from_millis(200)
            }
        };
        tokio::select! {
            _ = &mut shutdown => return Ok(answered),
            _ = tokio::time::sleep(wait) => {}
        }
    }
}
