//! The aggregator as a gRPC server: the `Aggregator` service for fog workers, `ClientRounds`
//! for clients and `KeyHolders` for key holders (clients and holders only dial out), a
//! health service, a health-check loop over the fog workers for adaptive assignment, and the
//! durable [`Store`]. The round logic is the sans-IO [`Coordinator`]; this module moves bytes,
//! reads clocks and persists.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use spddl_crypto::identity::SigningKey;
use spddl_crypto::paillier::PublicKey;
use spddl_proto::transport::{Callers, OnePerPeer, Security, TaskGuard, describe};
use spddl_proto::wire::{self, MAX_MESSAGE_BYTES, pb};
use spddl_proto::{ClientId, FogId, Registry, RoundId, Sender};
use tokio::sync::watch;
use tonic::transport::Channel;
use tonic::{Request, Response, Status};
use tracing::{error, info, warn};

use crate::store::{RoundRecord, Store};
use crate::{
    AggregatorError, Assignment, Coordinator, Event, FogLoad, PhaseKind, Settings, Strategy,
    assign_by_load,
};

/// Evaluates a global model (test accuracy), for the round log.
pub type Evaluator = Box<dyn Fn(&[f32]) -> Option<f64> + Send + Sync>;

/// Everything the aggregator process needs.
pub struct AggregatorSetup {
    /// The threshold public key.
    pub pk: PublicKey,
    /// The aggregator's signing key.
    pub key: SigningKey,
    /// Who is who.
    pub registry: Registry,
    /// Rounds, round template and timeouts.
    pub settings: Settings,
    /// How mean updates become the next model.
    pub strategy: Box<dyn Strategy + Send>,
    /// The model round 0 starts from (ignored when the store holds a run).
    pub initial_model: Vec<f32>,
    /// The fog workers and their `host:port`.
    pub fogs: Vec<(FogId, String)>,
    /// Where to listen.
    pub listen: SocketAddr,
    /// TLS or plaintext.
    pub security: Security,
    /// The database file.
    pub state: std::path::PathBuf,
    /// Start a new run on purpose: a new database file (an existing one is moved aside).
    /// Without it the file must exist and hold aggregator state (`spddl deploy init`
    /// writes an empty one); a missing, empty or damaged file is refused.
    pub fresh: bool,
    /// Test accuracy of a model, if the aggregator has a test set.
    pub evaluate: Option<Evaluator>,
    /// How long to keep serving after the last round, so polling peers learn the run is over.
    pub linger: Duration,
}

impl std::fmt::Debug for AggregatorSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AggregatorSetup")
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

struct FogState {
    id: FogId,
    address: String,
    healthy: bool,
    latency_ms: f64,
    /// Uploads waiting at the fog, as it last reported when polling for the round.
    pending: u32,
    /// Why the fog was caught cheating, if it was: it gets no clients and no aggregate of it
    /// is accepted for the rest of the run.
    blamed: Option<String>,
}

struct Inner {
    coord: Coordinator,
    store: Store,
    fogs: Vec<FogState>,
    evaluate: Option<Evaluator>,
    epoch: Instant,
    opened_at: Instant,
    closed_at: Option<Instant>,
    done: watch::Sender<bool>,
    /// Why the run stopped, if a round failed its last attempt.
    failure: Option<String>,
    /// Why the aggregator stops at once, if its store failed: nothing more is acknowledged.
    fatal: Option<String>,
    /// Fired with `fatal`: the server stops without lingering.
    halt: watch::Sender<bool>,
}

/// The shared state behind the three services.
#[derive(Clone)]
struct Node {
    inner: Arc<Mutex<Inner>>,
    pk: PublicKey,
    registry: Arc<Registry>,
    /// Channels to the fog workers, for audits.
    fog_stubs: Arc<BTreeMap<FogId, pb::fog_worker_client::FogWorkerClient<Channel>>>,
    /// Binds each call's certificate to the id it claims.
    callers: Callers,
    /// One aggregate or share being parsed and checked per fog or holder at a time.
    busy: OnePerPeer,
}

impl Inner {
    fn now_ms(&self) -> u64 {
        self.epoch.elapsed().as_millis() as u64
    }

    fn clients(&self, registry: &Registry) -> Vec<ClientId> {
        registry.clients.keys().copied().collect()
    }

    fn assignment(&self, registry: &Registry) -> Assignment {
        let loads: Vec<FogLoad> = self
            .fogs
            .iter()
            .map(|f| FogLoad {
                fog: f.id,
                healthy: f.healthy && f.blamed.is_none(),
                latency_ms: f.latency_ms,
                pending: u64::from(f.pending),
            })
            .collect();
        assign_by_load(&self.clients(registry), &loads)
    }

    /// The store failed: the restart promises depend on its records, so the aggregator stops
    /// at once with one line, and acknowledges nothing more.
    fn halt(&mut self, e: crate::store::StoreError) {
        if self.fatal.is_some() {
            return;
        }
        let msg = format!("{e}; the aggregator stops (nothing not stored was acknowledged)");
        error!("{msg}");
        self.fatal = Some(msg);
        let _ = self.halt.send(true);
    }

    /// `UNAVAILABLE` once the store failed (peers retry with the restarted aggregator).
    fn check_alive(&self) -> Result<(), Status> {
        match &self.fatal {
            Some(msg) => Err(Status::unavailable(format!("aggregator stopping: {msg}"))),
            None => Ok(()),
        }
    }

    /// Opens the coordinator's current round, persisting its assignment first.
    fn open_round(&mut self, registry: &Registry) -> Result<(), crate::store::StoreError> {
        if self.coord.phase_kind() != PhaseKind::Idle {
            return Ok(());
        }
        let round = self.coord.round();
        let assignment = self.assignment(registry);
        self.store.open_round(round, &assignment)?;
        info!(
            %round,
            clients = assignment.len(),
            "round opened; primary fogs: {}",
            primary_counts(&assignment)
        );
        self.opened_at = Instant::now();
        self.closed_at = None;
        let now = self.now_ms();
        self.coord.open(assignment, now);
        Ok(())
    }

    /// Logs and persists what the coordinator did. A store failure stops the aggregator
    /// ([`Inner::halt`]): the events after it are not acted on.
    fn handle(&mut self, events: Vec<Event>, registry: &Registry) {
        for event in events {
            if self.fatal.is_some() {
                return;
            }
            match event {
                Event::Closed {
                    round,
                    contributors,
                } => {
                    self.closed_at = Some(Instant::now());
                    if let Err(e) = self.store.close_collection(round) {
                        self.halt(e);
                        return;
                    }
                    info!(%round, contributors, "collection closed, sum sent to the key holders");
                }
                Event::Waiting { round, have, min } => {
                    warn!(%round, have, min, "collection deadline passed with too few updates; waiting on");
                }
                Event::Asked { round, holders } => {
                    let list: Vec<String> = holders.iter().map(|h| h.to_string()).collect();
                    info!(%round, holders = %list.join(","), "decryption shares requested");
                }
                Event::Silent { round, holder } => {
                    warn!(%round, %holder, "key holder did not answer in time: counted silent");
                }
                Event::Retrying {
                    round,
                    attempt,
                    reason,
                } => {
                    warn!(%round, attempt, %reason, "too few decryption shares: the same sum goes to the key holders again");
                }
                Event::Failed {
                    round,
                    attempts,
                    reason,
                    resumable,
                } => {
                    let then = if resumable {
                        ": restart the aggregator once enough key holders run and it resumes the round"
                    } else {
                        ""
                    };
                    let msg = format!(
                        "round {} failed {attempts} attempt(s), the run stops: {reason}; its stored updates are kept{then}",
                        round.0
                    );
                    error!(%round, "{msg}");
                    self.failure = Some(msg);
                    let _ = self.done.send(true);
                }
                Event::Skipped {
                    round,
                    reason,
                    in_a_row,
                    next,
                } => {
                    error!(%round, in_a_row, "round skipped, the global model stays: {reason}");
                    let now = Instant::now();
                    let closed = self.closed_at.unwrap_or(now);
                    let record = RoundRecord {
                        round: round.0,
                        contributors: Vec::new(),
                        holders_used: Vec::new(),
                        silent: Vec::new(),
                        blamed: Vec::new(),
                        accuracy: None,
                        wall_s: now.duration_since(self.opened_at).as_secs_f64(),
                        collect_s: closed.duration_since(self.opened_at).as_secs_f64(),
                        decrypt_s: now.duration_since(closed).as_secs_f64(),
                        model_digest: hex(&spddl_proto::RoundConfig::digest_model(
                            self.coord.global(),
                        )),
                        skipped: Some(reason),
                    };
                    let (name, state) = self.coord.strategy_state();
                    if let Err(e) =
                        self.store
                            .complete_round(&record, self.coord.global(), (name, &state))
                    {
                        self.halt(e);
                        return;
                    }
                    self.next_or_done(next, registry);
                }
                Event::Completed(c) => {
                    let outcome = &c.outcome;
                    let accuracy = self.evaluate.as_ref().and_then(|f| f(&c.global));
                    let now = Instant::now();
                    let closed = self.closed_at.unwrap_or(now);
                    let digest = spddl_proto::RoundConfig::digest_model(&c.global);
                    let record = RoundRecord {
                        round: outcome.round.0,
                        contributors: outcome
                            .contributors
                            .iter()
                            .map(|(id, w)| (id.0, *w))
                            .collect(),
                        holders_used: outcome.holders_used.iter().map(|h| h.get()).collect(),
                        silent: outcome.silent.iter().map(|h| h.get()).collect(),
                        blamed: outcome.blamed.iter().map(|e| e.to_string()).collect(),
                        accuracy,
                        wall_s: now.duration_since(self.opened_at).as_secs_f64(),
                        collect_s: closed.duration_since(self.opened_at).as_secs_f64(),
                        decrypt_s: now.duration_since(closed).as_secs_f64(),
                        model_digest: hex(&digest),
                        skipped: None,
                    };
                    let (name, state) = &c.strategy;
                    if let Err(e) = self.store.complete_round(&record, &c.global, (name, state)) {
                        self.halt(e);
                        return;
                    }
                    for b in &outcome.blamed {
                        warn!(round = %outcome.round, "blamed: {b}");
                    }
                    info!(
                        round = %outcome.round,
                        contributors = record.contributors.len(),
                        accuracy = accuracy.map_or("-".into(), |a| format!("{:.4}", a)),
                        wall_s = format!("{:.2}", record.wall_s),
                        collect_s = format!("{:.2}", record.collect_s),
                        decrypt_s = format!("{:.2}", record.decrypt_s),
                        holders = ?record.holders_used,
                        silent = ?record.silent,
                        "round complete"
                    );
                    self.next_or_done(c.next, registry);
                }
            }
        }
    }

    fn next_or_done(&mut self, next: Option<RoundId>, registry: &Registry) {
        match next {
            Some(_) => {
                if let Err(e) = self.open_round(registry) {
                    self.halt(e);
                }
            }
            None => {
                info!("all rounds done");
                let _ = self.done.send(true);
            }
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn primary_counts(a: &Assignment) -> String {
    let mut counts = std::collections::BTreeMap::<FogId, usize>::new();
    for fogs in a.values() {
        if let Some(f) = fogs.first() {
            *counts.entry(*f).or_default() += 1;
        }
    }
    counts
        .iter()
        .map(|(f, n)| format!("{f}: {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn phase(kind: PhaseKind) -> i32 {
    (match kind {
        PhaseKind::Idle | PhaseKind::Collecting => pb::RoundPhase::Collecting,
        PhaseKind::Decrypting => pb::RoundPhase::Decrypting,
        PhaseKind::Finished => pb::RoundPhase::Finished,
        PhaseKind::Failed => pb::RoundPhase::Failed,
    }) as i32
}

fn refuse(e: AggregatorError) -> Status {
    match e {
        AggregatorError::UnknownFog { .. }
        | AggregatorError::UnknownHolder { .. }
        | AggregatorError::BadFogSignature { .. }
        | AggregatorError::BadHolderSignature { .. } => Status::permission_denied(e.to_string()),
        AggregatorError::NotCollecting { .. }
        | AggregatorError::NotDecrypting { .. }
        | AggregatorError::WrongRound { .. } => Status::failed_precondition(e.to_string()),
        _ => Status::invalid_argument(e.to_string()),
    }
}

impl Node {
    /// The key holder a request names by `index`, once the caller's certificate is that
    /// holder's.
    fn holder_caller<T>(
        &self,
        request: &Request<T>,
        index: u32,
        rpc: &str,
    ) -> Result<spddl_crypto::paillier::ShareIndex, Status> {
        let holder = self
            .pk
            .share_index(u64::from(index))
            .map_err(|e| Status::invalid_argument(format!("{rpc}: holder {index}: {e}")))?;
        self.callers.require(request, Sender::Holder(holder), rpc)?;
        Ok(holder)
    }

    /// The cheap checks of a message still in its wire form, before any ciphertext is parsed
    /// (range and gcd of each): its round against the round in progress (a late message is
    /// refused, not examined) and its ciphertext count against `⌈m / S⌉`.
    fn precheck_wire(
        &self,
        sender: Sender,
        what: &str,
        round: u64,
        ciphertexts: usize,
    ) -> Result<(), Status> {
        let inner = self.lock()?;
        let current = inner.coord.round();
        if round != current.0 {
            return Err(Status::failed_precondition(format!(
                "{sender}: {what} is for round {round}, this is {current}"
            )));
        }
        let expected = inner.coord.expected_len();
        if ciphertexts != expected {
            return Err(Status::invalid_argument(format!(
                "{sender}: {what} holds {ciphertexts} ciphertexts, expected {expected}"
            )));
        }
        Ok(())
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Inner>, Status> {
        let inner = self
            .inner
            .lock()
            .map_err(|_| Status::internal("aggregator state poisoned"))?;
        inner.check_alive()?;
        Ok(inner)
    }

    /// Fetches the signed uploads behind `agg` from its fog, in pages that each fit one
    /// message. A fog that cannot be asked, or shows malformed uploads, makes the call fail as
    /// unavailable (no blame: nothing here is signed yet), so the fog retries; the core audits
    /// what it showed once the aggregate's own signature has checked out.
    async fn uploads_behind(
        &self,
        agg: &spddl_proto::FogAggregate,
    ) -> Result<Vec<spddl_proto::Upload>, Status> {
        let fog = agg.fog;
        let Some(stub) = self.fog_stubs.get(&fog) else {
            return Err(Status::permission_denied(format!(
                "{fog}: unknown fog worker"
            )));
        };
        let page = wire::uploads_per_page(&self.pk, agg.ciphertexts.len());
        let mut uploads = Vec::with_capacity(agg.contributors.len());
        for clients in agg.contributors.chunks(page) {
            let reply = stub
                .clone()
                .get_uploads(pb::GetUploadsRequest {
                    round: agg.round.0,
                    clients: clients.iter().map(|(c, _)| c.0).collect(),
                })
                .await
                .map_err(|e| {
                    Status::unavailable(format!(
                        "{fog}: cannot fetch the uploads behind the aggregate: {}",
                        describe(&e)
                    ))
                })?
                .into_inner();
            for w in &reply.uploads {
                uploads.push(wire::upload_from_wire(&self.pk, w).map_err(|e| {
                    Status::unavailable(format!("{fog}: an upload it showed is malformed: {e}"))
                })?);
            }
        }
        Ok(uploads)
    }
}

#[tonic::async_trait]
impl pb::aggregator_server::Aggregator for Node {
    async fn get_fog_round(
        &self,
        request: Request<pb::GetFogRoundRequest>,
    ) -> Result<Response<pb::GetFogRoundResponse>, Status> {
        let fog = FogId(request.get_ref().fog);
        self.callers
            .require(&request, Sender::Fog(fog), "GetFogRound")?;
        let request = request.into_inner();
        if self.registry.key_of(Sender::Fog(fog)).is_none() {
            warn!(%fog, "refused: unknown fog worker");
            return Err(Status::permission_denied(format!(
                "{fog}: unknown fog worker"
            )));
        }
        let mut inner = self.lock()?;
        if let Some(state) = inner.fogs.iter_mut().find(|f| f.id == fog) {
            state.pending = request.pending;
        }
        let (config, sig) = inner.coord.config();
        Ok(Response::new(pb::GetFogRoundResponse {
            phase: phase(inner.coord.phase_kind()),
            config: Some(wire::config_to_wire(config, sig)),
            ciphertexts_per_upload: u32::try_from(inner.coord.expected_len()).unwrap_or(u32::MAX),
        }))
    }

    async fn submit_aggregate(
        &self,
        request: Request<pb::SubmitAggregateRequest>,
    ) -> Result<Response<pb::SubmitAggregateResponse>, Status> {
        let claimed = request.get_ref().aggregate.as_ref().map_or(0, |a| a.fog);
        self.callers
            .require(&request, Sender::Fog(FogId(claimed)), "SubmitAggregate")?;
        let w = request
            .into_inner()
            .aggregate
            .ok_or_else(|| Status::invalid_argument("SubmitAggregate: `aggregate` is missing"))?;
        let sender = Sender::Fog(FogId(w.fog));
        self.precheck_wire(sender, "aggregate", w.round, w.ciphertexts.len())
            .inspect_err(|e| warn!(fog = w.fog, "refused aggregate: {}", e.message()))?;
        let _busy = self.busy.claim(sender, "SubmitAggregate")?;
        // Parsing checks every ciphertext (range and gcd): CPU work, off the async threads.
        let (agg, w) = {
            let pk = self.pk.clone();
            tokio::task::spawn_blocking(move || {
                let agg = wire::aggregate_from_wire(&pk, &w)
                    .inspect_err(|e| warn!(fog = w.fog, "refused aggregate: {e}"))?;
                Ok::<_, Status>((agg, w))
            })
            .await
            .map_err(|e| Status::internal(e.to_string()))??
        };
        let fog = agg.fog;
        let round = agg.round;
        let blamed = {
            let inner = self.lock()?;
            inner
                .fogs
                .iter()
                .find(|f| f.id == fog)
                .and_then(|f| f.blamed.clone())
        };
        if let Some(reason) = blamed {
            return Err(Status::permission_denied(format!(
                "{fog}: excluded for the rest of the run: {reason}"
            )));
        }
        // Round, phase, signature, repeats, assignment and length before anything is
        // fetched or audited: a forged or late aggregate costs one signature check and blames
        // nobody (DESIGN §6: blame follows only from evidence its target signed).
        let checked = self.lock()?.coord.check_aggregate(&agg);
        match checked {
            Ok(()) => {}
            Err(AggregatorError::AlreadyCounted { clients, .. }) => {
                info!(%fog, %round, ?clients, "aggregate holds clients already counted; fog to resubmit without them");
                return Ok(Response::new(pb::SubmitAggregateResponse {
                    already_counted: clients.iter().map(|c| c.0).collect(),
                    accepted: false,
                }));
            }
            Err(e) => {
                warn!(%fog, %round, "refused aggregate: {e}");
                return Err(refuse(e));
            }
        }
        let uploads = self.uploads_behind(&agg).await?;
        let stored = prost::Message::encode_to_vec(&pb::AuditedAggregate {
            aggregate: Some(w),
            uploads: uploads
                .iter()
                .map(|u| wire::upload_to_wire(&self.pk, u))
                .collect(),
        });
        let registry = self.registry.clone();
        let inner = self.inner.clone();
        // Checking signatures, auditing and adding ciphertexts is CPU work: off the async
        // threads.
        tokio::task::spawn_blocking(move || {
            let mut inner = inner
                .lock()
                .map_err(|_| Status::internal("aggregator state poisoned"))?;
            inner.check_alive()?;
            let now = inner.now_ms();
            let n = agg.contributors.len();
            match inner.coord.receive_aggregate(agg, uploads, now) {
                Ok(events) => {
                    // Counted in memory only: acknowledged once on disk, else the aggregator
                    // stops (it never runs on with a count its store lacks).
                    if let Err(e) = inner.store.add_aggregate(round, &stored) {
                        inner.halt(e);
                        inner.check_alive()?;
                    }
                    info!(%fog, %round, contributors = n, "aggregate audited and stored");
                    inner.handle(events, &registry);
                    inner.check_alive()?;
                    Ok(Response::new(pb::SubmitAggregateResponse {
                        already_counted: vec![],
                        accepted: true,
                    }))
                }
                Err(AggregatorError::AlreadyCounted { clients, .. }) => {
                    info!(%fog, %round, ?clients, "aggregate holds clients already counted; fog to resubmit without them");
                    Ok(Response::new(pb::SubmitAggregateResponse {
                        already_counted: clients.iter().map(|c| c.0).collect(),
                        accepted: false,
                    }))
                }
                Err(e @ AggregatorError::AuditFailed { .. }) => {
                    // Blame follows from evidence the fog signed: its aggregate's signature
                    // checked out before the audit ran (`Collecting::receive`).
                    warn!(%fog, %round, "{e}; excluded for the rest of the run");
                    if let Some(f) = inner.fogs.iter_mut().find(|f| f.id == fog) {
                        f.blamed = Some(e.to_string());
                    }
                    Err(Status::permission_denied(e.to_string()))
                }
                Err(e) => {
                    warn!(%fog, %round, "refused aggregate: {e}");
                    Err(refuse(e))
                }
            }
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
    }
}

#[tonic::async_trait]
impl pb::client_rounds_server::ClientRounds for Node {
    async fn get_round(
        &self,
        request: Request<pb::GetRoundRequest>,
    ) -> Result<Response<pb::GetRoundResponse>, Status> {
        let client = ClientId(request.get_ref().client);
        self.callers
            .require(&request, Sender::Client(client), "GetRound")?;
        if self.registry.key_of(Sender::Client(client)).is_none() {
            warn!(%client, "refused: unregistered client identity");
            return Err(Status::permission_denied(format!(
                "{client}: not a registered client"
            )));
        }
        let inner = self.lock()?;
        let (config, sig) = inner.coord.config();
        let fogs = inner
            .coord
            .assignment()
            .get(&client)
            .map(|list| {
                list.iter()
                    .filter_map(|f| inner.fogs.iter().find(|s| s.id == *f))
                    .map(|s| pb::FogEndpoint {
                        fog: s.id.0,
                        address: s.address.clone(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response::new(pb::GetRoundResponse {
            phase: phase(inner.coord.phase_kind()),
            config: Some(wire::config_to_wire(config, sig)),
            global_model: inner.coord.global().to_vec(),
            fogs,
            counted: inner.coord.counted(client),
        }))
    }
}

#[tonic::async_trait]
impl pb::key_holders_server::KeyHolders for Node {
    async fn get_decryption_request(
        &self,
        request: Request<pb::GetDecryptionRequestRequest>,
    ) -> Result<Response<pb::GetDecryptionRequestResponse>, Status> {
        let holder =
            self.holder_caller(&request, request.get_ref().holder, "GetDecryptionRequest")?;
        if self.registry.key_of(Sender::Holder(holder)).is_none() {
            warn!(%holder, "refused: unknown key holder");
            return Err(Status::permission_denied(format!(
                "key holder {holder}: unknown"
            )));
        }
        let inner = self.lock()?;
        // The request with as many uploads as fit one page; the holder fetches the rest with
        // `GetRequestUploads`.
        let page = wire::uploads_per_page(&self.pk, inner.coord.expected_len());
        Ok(Response::new(pb::GetDecryptionRequestResponse {
            request: inner.coord.request_for(holder).map(|r| {
                let mut w = wire::request_to_wire(&self.pk, r);
                w.uploads.truncate(page);
                w
            }),
            finished: inner.coord.phase_kind() == PhaseKind::Finished,
            failed: inner.coord.phase_kind() == PhaseKind::Failed,
        }))
    }

    async fn get_request_uploads(
        &self,
        request: Request<pb::GetRequestUploadsRequest>,
    ) -> Result<Response<pb::GetRequestUploadsResponse>, Status> {
        let holder = self.holder_caller(&request, request.get_ref().holder, "GetRequestUploads")?;
        let request = request.into_inner();
        let inner = self.lock()?;
        let Some(r) = inner.coord.request_for(holder) else {
            return Err(Status::failed_precondition(format!(
                "key holder {holder}: no decryption request for it now"
            )));
        };
        if r.round.0 != request.round {
            return Err(Status::failed_precondition(format!(
                "key holder {holder}: the request now is for {}, not round {}",
                r.round, request.round
            )));
        }
        let page = wire::uploads_per_page(&self.pk, inner.coord.expected_len());
        let uploads = r
            .uploads()
            .iter()
            .skip(request.offset as usize)
            .take(page)
            .map(|u| wire::upload_to_wire(&self.pk, u))
            .collect();
        Ok(Response::new(pb::GetRequestUploadsResponse { uploads }))
    }

    async fn submit_share(
        &self,
        request: Request<pb::SubmitShareRequest>,
    ) -> Result<Response<pb::SubmitShareResponse>, Status> {
        let index = request.get_ref().share.as_ref().map_or(0, |s| s.holder);
        let holder = self.holder_caller(&request, index, "SubmitShare")?;
        let w = request
            .into_inner()
            .share
            .ok_or_else(|| Status::invalid_argument("SubmitShare: `share` is missing"))?;
        let sender = Sender::Holder(holder);
        self.precheck_wire(sender, "share", w.round, w.partials.len())
            .inspect_err(|e| warn!(holder = w.holder, "refused share: {}", e.message()))?;
        let _busy = self.busy.claim(sender, "SubmitShare")?;
        let registry = self.registry.clone();
        let inner = self.inner.clone();
        let pk = self.pk.clone();
        // Parsing (every partial's range and gcd) and the proof check are CPU work: off the
        // async threads.
        tokio::task::spawn_blocking(move || {
            let share = wire::share_from_wire(&pk, &w)
                .inspect_err(|e| warn!(holder = w.holder, "refused share: {e}"))?;
            let mut inner = inner
                .lock()
                .map_err(|_| Status::internal("aggregator state poisoned"))?;
            inner.check_alive()?;
            let now = inner.now_ms();
            let holder = share.share.holder;
            match inner.coord.receive_share(&share, now) {
                Ok(events) => {
                    info!(%holder, round = %share.round, "decryption share verified");
                    inner.handle(events, &registry);
                    inner.check_alive()?;
                    Ok(Response::new(pb::SubmitShareResponse {}))
                }
                Err(e) => {
                    warn!(%holder, round = %share.round, "refused share: {e}");
                    let status = refuse(e);
                    // A blamed share may leave the round needing other holders: advance.
                    let events = inner.coord.tick(now);
                    inner.handle(events, &registry);
                    Err(status)
                }
            }
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?
    }
}

/// What a finished run looked like (for tests and the deployment script).
#[derive(Debug, Clone)]
pub struct RunReport {
    /// The round log from the store.
    pub rounds: Vec<RoundRecord>,
    /// The final global model.
    pub global: Vec<f32>,
    /// Fog workers caught by an audit, with the reason.
    pub fogs_blamed: Vec<String>,
}

/// Runs the aggregator until every round is done (then lingers so peers see it) or
/// `shutdown` resolves. Resumes from the store: a completed round is never redone, and a
/// round in flight resumes with its recorded assignment and stored aggregates.
pub async fn serve(
    setup: AggregatorSetup,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<RunReport, String> {
    let store = Store::open(&setup.state, setup.fresh).map_err(|e| e.to_string())?;
    store
        .init(&setup.initial_model)
        .map_err(|e| e.to_string())?;
    let participants: Vec<(String, [u8; 32])> = setup
        .registry
        .clients
        .iter()
        .map(|(c, k)| (format!("client/{}", c.0), k.to_bytes()))
        .chain(
            setup
                .registry
                .fogs
                .iter()
                .map(|(f, k)| (format!("fog/{}", f.0), k.to_bytes())),
        )
        .chain(
            setup
                .registry
                .holders
                .iter()
                .map(|(h, k)| (format!("holder/{h}"), k.to_bytes())),
        )
        .collect();
    store
        .save_participants(&participants)
        .map_err(|e| e.to_string())?;
    let resume = store.resume_point().map_err(|e| e.to_string())?;
    let (round, global) = match &resume {
        Some(p) => (p.round, p.global.clone()),
        None => (RoundId(0), setup.initial_model.clone()),
    };
    // The strategy goes on from its stored state (FedAdam's moments), as if never stopped.
    let mut strategy = setup.strategy;
    if let Some((name, state)) = resume.and_then(|p| p.strategy) {
        if name != strategy.name() {
            return Err(format!(
                "aggregator state {}: the run was started with strategy {name}, the scenario now says {}: refused (start with --fresh for a new run)",
                store.path(),
                strategy.name()
            ));
        }
        strategy
            .restore(&state)
            .map_err(|e| format!("aggregator state {}: {e}", store.path()))?;
    }
    let coord = Coordinator::new(
        &setup.pk,
        setup.key,
        setup.registry.clone(),
        setup.settings,
        strategy,
        round,
        global,
    )
    .map_err(|e| e.to_string())?;
    let mut coord = coord;
    let skipped_in_a_row = store
        .round_log()
        .map_err(|e| e.to_string())?
        .iter()
        .rev()
        .take_while(|r| r.skipped.is_some())
        .count();
    coord.set_skipped_in_a_row(u32::try_from(skipped_in_a_row).unwrap_or(u32::MAX));
    let (done_tx, mut done_rx) = watch::channel(false);
    let (halt_tx, mut halt_rx) = watch::channel(false);
    let registry = Arc::new(setup.registry);
    let mut inner = Inner {
        coord,
        store,
        fogs: setup
            .fogs
            .iter()
            .map(|(id, address)| FogState {
                id: *id,
                address: address.clone(),
                healthy: true,
                latency_ms: 0.0,
                pending: 0,
                blamed: None,
            })
            .collect(),
        evaluate: setup.evaluate,
        epoch: Instant::now(),
        opened_at: Instant::now(),
        closed_at: None,
        done: done_tx,
        failure: None,
        fatal: None,
        halt: halt_tx,
    };
    if inner.coord.phase_kind() == PhaseKind::Finished {
        info!(%round, "every round is already done");
        let _ = inner.done.send(true);
    } else {
        // Resume: the recorded assignment and stored aggregates of a round in flight.
        let stored = inner.store.aggregates(round).map_err(|e| e.to_string())?;
        let recorded = inner
            .store
            .round_assignment(round)
            .map_err(|e| e.to_string())?;
        if let Some(assignment) = recorded {
            info!(%round, stored_aggregates = stored.len(), "resuming a round in flight");
            let now = inner.now_ms();
            inner.opened_at = Instant::now();
            inner.coord.open(assignment, now);
            let mut events = Vec::new();
            for bytes in &stored {
                let parsed = <pb::AuditedAggregate as prost::Message>::decode(bytes.as_slice())
                    .map_err(|e| e.to_string())
                    .and_then(|w| {
                        let agg = w.aggregate.as_ref().ok_or("no aggregate")?;
                        let agg =
                            wire::aggregate_from_wire(&setup.pk, agg).map_err(|e| e.to_string())?;
                        let uploads = w
                            .uploads
                            .iter()
                            .map(|u| wire::upload_from_wire(&setup.pk, u))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(|e| e.to_string())?;
                        Ok::<_, String>((agg, uploads))
                    });
                match parsed {
                    Ok((agg, uploads)) => match inner.coord.receive_aggregate(agg, uploads, now) {
                        Ok(ev) => events.extend(ev),
                        Err(e) => error!(%round, "a stored aggregate no longer checks out: {e}"),
                    },
                    Err(e) => error!(%round, "a stored aggregate does not parse: {e}"),
                }
            }
            if inner
                .store
                .collection_closed(round)
                .map_err(|e| e.to_string())?
            {
                // The holders may have answered this sum already and refuse any other.
                events.extend(inner.coord.close_collection_now(now));
            }
            inner.handle(events, &registry);
            if let Some(fatal) = &inner.fatal {
                return Err(fatal.clone());
            }
        } else {
            info!(%round, "starting");
            inner.open_round(&registry).map_err(|e| e.to_string())?;
        }
    }
    let fog_stubs = setup
        .fogs
        .iter()
        .map(|(id, address)| {
            let channel = setup.security.channel(address, Duration::from_secs(30))?;
            Ok((
                *id,
                pb::fog_worker_client::FogWorkerClient::new(channel)
                    .max_decoding_message_size(MAX_MESSAGE_BYTES),
            ))
        })
        .collect::<Result<BTreeMap<_, _>, String>>()?;
    let node = Node {
        inner: Arc::new(Mutex::new(inner)),
        pk: setup.pk.clone(),
        registry: registry.clone(),
        fog_stubs: Arc::new(fog_stubs),
        callers: Callers::new(&setup.security, registry.clone()),
        busy: OnePerPeer::default(),
    };

    // Deadlines.
    let ticker = {
        let node = node.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(Duration::from_millis(100));
            loop {
                every.tick().await;
                let node = node.clone();
                let r = tokio::task::spawn_blocking(move || {
                    if let Ok(mut inner) = node.inner.lock()
                        && inner.fatal.is_none()
                    {
                        let now = inner.now_ms();
                        let events = inner.coord.tick(now);
                        inner.handle(events, &node.registry);
                    }
                })
                .await;
                if r.is_err() {
                    return;
                }
            }
        })
    };
    // Fog health checks: liveness and round-trip time for the assignment.
    let checker = {
        let node = node.clone();
        let security = setup.security.clone();
        let fogs = setup.fogs.clone();
        tokio::spawn(async move {
            let mut clients = Vec::new();
            for (id, address) in &fogs {
                match security.channel(address, Duration::from_secs(1)) {
                    Ok(ch) => {
                        clients.push((*id, tonic_health::pb::health_client::HealthClient::new(ch)))
                    }
                    Err(e) => error!(fog = %id, "{e}"),
                }
            }
            let mut every = tokio::time::interval(Duration::from_secs(1));
            loop {
                every.tick().await;
                for (id, client) in &mut clients {
                    let start = Instant::now();
                    let result = client
                        .check(tonic_health::pb::HealthCheckRequest {
                            service: String::new(),
                        })
                        .await;
                    let ms = start.elapsed().as_secs_f64() * 1e3;
                    let healthy = result.as_ref().is_ok_and(|r| {
                        r.get_ref().status
                            == tonic_health::pb::health_check_response::ServingStatus::Serving
                                as i32
                    });
                    if let Ok(mut inner) = node.inner.lock()
                        && let Some(f) = inner.fogs.iter_mut().find(|f| f.id == *id)
                    {
                        if f.healthy && !healthy {
                            let why = result.err().map_or("not serving".into(), |e| describe(&e));
                            warn!(fog = %id, "health check failed: {why}; no new clients assigned to it");
                        } else if !f.healthy && healthy {
                            info!(fog = %id, "healthy again");
                        }
                        f.healthy = healthy;
                        if healthy {
                            f.latency_ms = ms;
                        }
                    }
                }
            }
        })
    };

    let mut guard = TaskGuard::default();
    guard.push(&ticker);
    guard.push(&checker);
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::aggregator_server::AggregatorServer<Node>>()
        .await;
    let server = setup
        .security
        .server()
        .add_service(health_service)
        .add_service(
            pb::aggregator_server::AggregatorServer::new(node.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            pb::client_rounds_server::ClientRoundsServer::new(node.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        )
        .add_service(
            pb::key_holders_server::KeyHoldersServer::new(node.clone())
                .max_decoding_message_size(MAX_MESSAGE_BYTES)
                .max_encoding_message_size(MAX_MESSAGE_BYTES),
        );
    let linger = setup.linger;
    let stop = async move {
        tokio::select! {
            _ = shutdown => {}
            _ = halt_rx.wait_for(|h| *h) => {}
            _ = async {
                while !*done_rx.borrow_and_update() {
                    if done_rx.changed().await.is_err() {
                        return;
                    }
                }
                tokio::time::sleep(linger).await;
            } => {}
        }
    };
    info!(address = %setup.listen, "aggregator listening");
    let result = setup
        .security
        .serve(server, setup.listen, stop)
        .await
        .map_err(|e| format!("aggregator {e}"));
    drop(guard);
    // Close the store before returning, so that an aggregator started on the same file right
    // after (a restart in this process) can open it: the aborted loops end, and work still
    // holding the state (a blocking task of a call in flight) finishes.
    let _ = ticker.await;
    let _ = checker.await;
    for _ in 0..500 {
        if Arc::strong_count(&node.inner) == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let inner = node
        .inner
        .lock()
        .map_err(|_| "aggregator state poisoned".to_string())?;
    if let Some(fatal) = &inner.fatal {
        return Err(fatal.clone());
    }
    result?;
    if let Some(failure) = &inner.failure {
        return Err(format!("aggregator: {failure}"));
    }
    Ok(RunReport {
        rounds: inner.store.round_log().map_err(|e| e.to_string())?,
        global: inner.coord.global().to_vec(),
        fogs_blamed: inner.fogs.iter().filter_map(|f| f.blamed.clone()).collect(),
    })
}
