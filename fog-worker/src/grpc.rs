//! The fog worker as a gRPC server (`FogWorker` service plus health). It polls the aggregator
//! for the round, checks each upload with the sans-IO [`FogRound`], and forwards what it
//! accepted as signed batches. A client's upload call returns only once the aggregate holding
//! it is stored at the aggregator, so an acknowledged upload is never lost: if this fog dies
//! first, the client's call fails and it uploads through its next fog.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use spddl_crypto::identity::SigningKey;
use spddl_crypto::paillier::PublicKey;
use spddl_proto::transport::{Backoff, Callers, OnePerPeer, Security, TaskGuard, describe};
use spddl_proto::wire::{self, MAX_MESSAGE_BYTES, pb};
use spddl_proto::{ClientId, FogId, Registry, RoundId, Sender, Upload};
use tokio::sync::{Semaphore, oneshot};
use tonic::{Request, Response, Status};
use tracing::{error, info, warn};

use crate::{FogError, FogRound, UploadHeader, aggregate_checked};

/// Everything a fog worker process needs.
pub struct FogSetup {
    /// The threshold public key.
    pub pk: PublicKey,
    /// This fog worker's id.
    pub fog: FogId,
    /// Its signing key.
    pub key: SigningKey,
    /// Who is who (the aggregator's key signs round configs).
    pub registry: Registry,
    /// The aggregator's `host:port`.
    pub aggregator: String,
    /// Where to listen.
    pub listen: SocketAddr,
    /// TLS or plaintext.
    pub security: Security,
}

impl std::fmt::Debug for FogSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FogSetup")
            .field("fog", &self.fog)
            .field("listen", &self.listen)
            .finish_non_exhaustive()
    }
}

type Waiter = oneshot::Sender<Result<(), Status>>;

struct Current {
    round: FogRound,
    /// Accepted uploads not yet in a stored aggregate, with the calls waiting on them.
    pending: Vec<(Arc<Upload>, Waiter)>,
    /// Every upload accepted in the round, for the aggregator's audits (shared, so that a
    /// `GetUploads` reply is encoded after the lock is released).
    accepted: BTreeMap<ClientId, Arc<Upload>>,
}

impl Current {
    /// Forgets clients whose batch the aggregator refused for good: never counted, they may
    /// upload again.
    fn forget(&mut self, clients: &[ClientId]) {
        self.round.forget(clients);
        for c in clients {
            self.accepted.remove(c);
        }
    }
}

#[derive(Clone)]
struct Node {
    pk: PublicKey,
    fog: FogId,
    registry: Arc<Registry>,
    current: Arc<Mutex<Option<Current>>>,
    /// Uploads in the batch being forwarded (accepted, not yet stored at the aggregator).
    forwarding: Arc<AtomicUsize>,
    /// Binds each call's certificate to the id it claims.
    callers: Callers,
    /// Clients with an upload being parsed and checked: one at a time per client.
    checking: OnePerPeer,
    /// Bounds the uploads parsed at once (range and gcd of every ciphertext) to the cores.
    parsing: Arc<Semaphore>,
}

impl Node {
    /// This fog's load as it reports it to the aggregator: accepted uploads whose callers
    /// still wait for the aggregator to store them.
    fn pending(&self) -> u32 {
        let queued = self
            .current
            .lock()
            .map_or(0, |c| c.as_ref().map_or(0, |c| c.pending.len()));
        u32::try_from(queued + self.forwarding.load(Ordering::Relaxed)).unwrap_or(u32::MAX)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Option<Current>>, Status> {
        self.current
            .lock()
            .map_err(|_| Status::internal("fog state poisoned"))
    }
}

fn refuse(e: &FogError) -> Status {
    match e {
        FogError::UnknownClient { .. } | FogError::BadSignature { .. } => {
            Status::permission_denied(e.to_string())
        }
        FogError::WrongRound { .. } | FogError::OtherConfig { .. } => {
            Status::failed_precondition(e.to_string())
        }
        _ => Status::invalid_argument(e.to_string()),
    }
}

#[tonic::async_trait]
impl pb::fog_worker_server::FogWorker for Node {
    async fn submit_upload(
        &self,
        request: Request<pb::SubmitUploadRequest>,
    ) -> Result<Response<pb::SubmitUploadResponse>, Status> {
        let fog = self.fog;
        let claimed = ClientId(request.get_ref().upload.as_ref().map_or(0, |u| u.client));
        self.callers
            .require(&request, Sender::Client(claimed), "SubmitUpload")?;
        let w = request
            .into_inner()
            .upload
            .ok_or_else(|| Status::invalid_argument("SubmitUpload: `upload` is missing"))?;
        let round = RoundId(w.round);
        let client = ClientId(w.client);
        // Cheap checks first, from the raw message: round, config, sender, repeat, count and
        // weight cost a few comparisons; parsing checks every ciphertext's range and gcd.
        let header = UploadHeader {
            round,
            client,
            config: &w.config,
            weight: w.weight,
            ciphertexts: w.ciphertexts.len(),
        };
        {
            let guard = self.lock()?;
            let Some(current) = guard.as_ref() else {
                return Err(Status::unavailable(format!(
                    "{fog}: no round open yet, retry"
                )));
            };
            current
                .round
                .precheck_header(&header, &self.registry)
                .map_err(|e| {
                    warn!(%fog, %client, %round, "refused upload: {e}");
                    refuse(&e)
                })?;
        }
        let checking = self
            .checking
            .claim(Sender::Client(client), "SubmitUpload")?;
        let permit = self
            .parsing
            .clone()
            .acquire_owned()
            .await
            .map_err(|e| Status::internal(e.to_string()))?;
        let node = self.clone();
        let rx = tokio::task::spawn_blocking(move || {
            let up = wire::upload_from_wire(&node.pk, &w)
                .inspect_err(|e| warn!(%fog, %client, "refused upload: {e}"))?;
            drop(permit);
            let mut guard = node.lock()?;
            let Some(current) = guard.as_mut() else {
                return Err(Status::unavailable(format!(
                    "{fog}: no round open yet, retry"
                )));
            };
            if let Err(e) = current.round.receive(&up, &node.registry) {
                warn!(%fog, %client, %round, "refused upload: {e}");
                return Err(refuse(&e));
            }
            let (tx, rx) = oneshot::channel();
            let up = Arc::new(up);
            current.accepted.insert(client, up.clone());
            current.pending.push((up, tx));
            Ok(rx)
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))??;
        drop(checking);
        match tokio::time::timeout(Duration::from_secs(120), rx).await {
            Ok(Ok(Ok(()))) => Ok(Response::new(pb::SubmitUploadResponse {
                round: round.0,
                fog: fog.0,
            })),
            Ok(Ok(Err(status))) => Err(status),
            Ok(Err(_)) | Err(_) => Err(Status::unavailable(format!(
                "{fog}: the aggregate holding {client}'s upload was not stored; upload again"
            ))),
        }
    }

    async fn get_uploads(
        &self,
        request: Request<pb::GetUploadsRequest>,
    ) -> Result<Response<pb::GetUploadsResponse>, Status> {
        // The signed uploads are for the aggregator's audit only.
        self.callers
            .require(&request, Sender::Aggregator, "GetUploads")?;
        let request = request.into_inner();
        let uploads: Vec<Arc<Upload>> = {
            let guard = self.lock()?;
            match guard.as_ref() {
                Some(c) if c.round.round().0 == request.round => {
                    // The aggregator asks a page at a time (`wire::uploads_per_page`): a
                    // longer list is refused before anything is built, repeats or not.
                    let page = wire::uploads_per_page(&self.pk, c.round.expected_len());
                    if request.clients.len() > page {
                        warn!(fog = %self.fog, asked = request.clients.len(), page, "refused GetUploads: more ids than a page");
                        return Err(Status::resource_exhausted(format!(
                            "GetUploads: {} client ids asked, at most {page} (one page) per request",
                            request.clients.len()
                        )));
                    }
                    let asked: BTreeSet<ClientId> =
                        request.clients.iter().map(|c| ClientId(*c)).collect();
                    asked
                        .iter()
                        .filter_map(|id| c.accepted.get(id).cloned())
                        .collect()
                }
                _ => Vec::new(),
            }
        };
        let pk = self.pk.clone();
        let uploads = tokio::task::spawn_blocking(move || {
            uploads
                .iter()
                .map(|u| wire::upload_to_wire(&pk, u))
                .collect()
        })
        .await
        .map_err(|e| Status::internal(e.to_string()))?;
        Ok(Response::new(pb::GetUploadsResponse { uploads }))
    }
}

/// Follows the aggregator's rounds: a new round gets a fresh [`FogRound`] accepting every
/// registered client (any of them may fail over to this fog). Ends when the run is over, with
/// an error when the aggregator stopped it on a failed round.
async fn follow_rounds(
    node: Node,
    mut aggregator: pb::aggregator_client::AggregatorClient<tonic::transport::Channel>,
) -> Result<(), String> {
    let fog = node.fog;
    let mut backoff = Backoff::default();
    let mut reported = false;
    loop {
        let reply = aggregator
            .get_fog_round(pb::GetFogRoundRequest {
                fog: fog.0,
                pending: node.pending(),
            })
            .await;
        let delay = match reply {
            Ok(r) => {
                backoff.reset();
                if reported {
                    info!(%fog, "aggregator reachable again");
                    reported = false;
                }
                let r = r.into_inner();
                if r.phase == pb::RoundPhase::Finished as i32 {
                    info!(%fog, "the run is over");
                    return Ok(());
                }
                if r.phase == pb::RoundPhase::Failed as i32 {
                    let round = r
                        .config
                        .map_or(String::new(), |c| format!("round {} ", c.round));
                    return Err(format!(
                        "{fog}: the aggregator stopped the run: {round}could not complete (its log says why)"
                    ));
                }
                if let Some(cfg) = r.config {
                    adopt_round(&node, &cfg, r.ciphertexts_per_upload as usize);
                }
                Duration::from_millis(100)
            }
            Err(e) => {
                if !reported {
                    warn!(%fog, "aggregator: {}", describe(&e));
                    reported = true;
                }
                backoff.next_delay()
            }
        };
        tokio::time::sleep(delay).await;
    }
}

fn adopt_round(node: &Node, cfg: &pb::RoundConfig, expected_len: usize) {
    let fog = node.fog;
    let Ok(mut guard) = node.current.lock() else {
        return;
    };
    let round = RoundId(cfg.round);
    if guard.as_ref().is_some_and(|c| c.round.round() == round) {
        return;
    }
    let (config, signature) = match wire::config_from_wire(cfg) {
        Ok(c) => c,
        Err(e) => {
            error!(%fog, "round config from the aggregator: {e}");
            return;
        }
    };
    let signed = node
        .registry
        .aggregator
        .as_ref()
        .is_some_and(|k| k.verify(&config.transcript(), &signature).is_ok());
    if !signed {
        error!(%fog, %round, "round config is not signed by the registered aggregator: ignored");
        return;
    }
    if let Some(old) = guard.take() {
        for (up, waiter) in old.pending {
            let _ = waiter.send(Err(Status::failed_precondition(format!(
                "{fog}: {} closed before {}'s upload was forwarded",
                old.round.round(),
                up.client
            ))));
        }
    }
    let clients: Vec<ClientId> = node.registry.clients.keys().copied().collect();
    *guard = Some(Current {
        round: FogRound::new(
            &node.pk,
            fog,
            &config,
            &node.registry,
            &clients,
            expected_len,
            config.max_weight,
        ),
        pending: Vec::new(),
        accepted: Default::default(),
    });
    info!(%fog, %round, "collecting uploads");
}

/// Whether a failed `SubmitAggregate` may not have reached the aggregator's decision: the
/// connection broke, the aggregator restarted or is halted, the call timed out. The batch is
/// kept and sent again; only an answer of the aggregator's own is a refusal.
fn transient(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(
        code,
        Unavailable | Unknown | DeadlineExceeded | Internal | Cancelled
    )
}

/// Forwards accepted uploads as signed batch aggregates, answering the waiting clients once
/// the aggregator stored them.
async fn forward(
    node: Node,
    key: Arc<SigningKey>,
    aggregator: pb::aggregator_client::AggregatorClient<tonic::transport::Channel>,
) {
    loop {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let batch = {
            let Ok(mut guard) = node.current.lock() else {
                return;
            };
            let Some(current) = guard.as_mut() else {
                continue;
            };
            if current.pending.is_empty() {
                continue;
            }
            // The core's batch sum is in step with `pending` (both change under this lock);
            // the uploads are kept to re-form the aggregate if the aggregator had already
            // counted some of them.
            (
                current.round.take_aggregate(&key),
                std::mem::take(&mut current.pending),
            )
        };
        let (first, batch) = batch;
        deliver(&node, &key, aggregator.clone(), first, batch).await;
        node.forwarding.store(0, Ordering::Relaxed);
    }
}

/// Delivers one batch: every waiting client gets `Ok` once the aggregator stored (or had
/// already counted) its upload, and an error once the aggregator refused it or its round
/// closed; a refused client is forgotten by this fog, so it may upload again. Transport
/// errors are retried with backoff while the round is open: nothing accepted is dropped on a
/// broken connection.
async fn deliver(
    node: &Node,
    key: &SigningKey,
    mut aggregator: pb::aggregator_client::AggregatorClient<tonic::transport::Channel>,
    mut first: Option<spddl_proto::FogAggregate>,
    mut batch: Vec<(Arc<Upload>, Waiter)>,
) {
    let fog = node.fog;
    let mut backoff = Backoff::default();
    let mut attempts = 0u32;
    let refuse_all = |batch: &mut Vec<(Arc<Upload>, Waiter)>, status: Status| {
        let clients: Vec<ClientId> = batch.iter().map(|(u, _)| u.client).collect();
        if let Ok(mut guard) = node.current.lock()
            && let Some(current) = guard.as_mut()
            && batch
                .first()
                .is_some_and(|(u, _)| u.round == current.round.round())
        {
            current.forget(&clients);
        }
        for (_, w) in batch.drain(..) {
            let _ = w.send(Err(status.clone()));
        }
    };
    while !batch.is_empty() {
        node.forwarding.store(batch.len(), Ordering::Relaxed);
        let round = batch[0].0.round;
        let open = node
            .current
            .lock()
            .is_ok_and(|c| c.as_ref().is_some_and(|c| c.round.round() == round));
        if !open {
            refuse_all(
                &mut batch,
                Status::failed_precondition(format!(
                    "{fog}: {round} closed before the aggregate was stored; upload for the next round"
                )),
            );
            break;
        }
        let agg = match first.take() {
            Some(a) => a,
            None => {
                let uploads: Vec<&Upload> = batch.iter().map(|(u, _)| u.as_ref()).collect();
                let Some(a) = aggregate_checked(&node.pk, key, fog, &uploads) else {
                    break;
                };
                a
            }
        };
        attempts += 1;
        let request = pb::SubmitAggregateRequest {
            aggregate: Some(wire::aggregate_to_wire(&node.pk, &agg)),
        };
        match aggregator.submit_aggregate(request).await {
            Ok(r) => {
                let r = r.into_inner();
                if r.accepted {
                    info!(%fog, round = %agg.round, contributors = batch.len(), attempts, "aggregate stored at the aggregator");
                    for (_, w) in batch.drain(..) {
                        let _ = w.send(Ok(()));
                    }
                } else if r.already_counted.is_empty() {
                    warn!(%fog, round = %agg.round, "the aggregator neither stored nor counted the aggregate");
                    refuse_all(
                        &mut batch,
                        Status::aborted(format!(
                            "{fog}: the aggregator did not store the aggregate; upload again"
                        )),
                    );
                } else {
                    // Counted already (through another fog, or an earlier attempt whose answer
                    // was lost): acknowledge those clients, resubmit the rest.
                    let counted = r.already_counted;
                    let (done, rest): (Vec<_>, Vec<_>) = batch
                        .into_iter()
                        .partition(|(u, _)| counted.contains(&u.client.0));
                    info!(%fog, round = %agg.round, counted = done.len(), rest = rest.len(), "aggregate held clients counted already");
                    for (_, w) in done {
                        let _ = w.send(Ok(()));
                    }
                    batch = rest;
                }
            }
            Err(e) if transient(e.code()) => {
                warn!(%fog, round = %agg.round, attempts, "forwarding to the aggregator: {}; keeping the batch, retrying", describe(&e));
                first = Some(agg);
                tokio::time::sleep(backoff.next_delay()).await;
            }
            Err(e) => {
                warn!(%fog, round = %agg.round, "aggregator refused the aggregate: {}", describe(&e));
                refuse_all(
                    &mut batch,
                    Status::aborted(format!(
                        "aggregator refused {fog}'s aggregate: {}",
                        e.message()
                    )),
                );
            }
        }
    }
}

/// Runs the fog worker until `shutdown` resolves or the aggregator says the run is over.
pub async fn serve(
    setup: FogSetup,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), String> {
    let fog = setup.fog;
    let channel = setup
        .security
        .channel(&setup.aggregator, Duration::from_secs(60))?;
    let aggregator = pb::aggregator_client::AggregatorClient::new(channel)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let registry = Arc::new(setup.registry);
    let node = Node {
        pk: setup.pk.clone(),
        fog,
        callers: Callers::new(&setup.security, registry.clone()),
        registry,
        current: Arc::new(Mutex::new(None)),
        forwarding: Arc::new(AtomicUsize::new(0)),
        checking: OnePerPeer::default(),
        parsing: Arc::new(Semaphore::new(
            std::thread::available_parallelism().map_or(2, |n| n.get()),
        )),
    };
    let follower = tokio::spawn(follow_rounds(node.clone(), aggregator.clone()));
    let forwarder = tokio::spawn(forward(node.clone(), Arc::new(setup.key), aggregator));
    let mut guard = TaskGuard::default();
    guard.push(&follower);
    guard.push(&forwarder);
    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<pb::fog_worker_server::FogWorkerServer<Node>>()
        .await;
    info!(%fog, address = %setup.listen, "fog worker listening");
    let service = pb::fog_worker_server::FogWorkerServer::new(node)
        .max_decoding_message_size(MAX_MESSAGE_BYTES)
        .max_encoding_message_size(MAX_MESSAGE_BYTES);
    let mut follower = follower;
    let (ended_tx, ended_rx) = tokio::sync::oneshot::channel();
    let stop = async move {
        tokio::select! {
            _ = shutdown => {}
            ended = &mut follower => {
                let _ = ended_tx.send(ended);
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
        }
    };
    let router = setup
        .security
        .server()
        .add_service(health_service)
        .add_service(service);
    let result = setup
        .security
        .serve(router, setup.listen, stop)
        .await
        .map_err(|e| format!("{fog} {e}"));
    drop(guard);
    result?;
    match ended_rx.await {
        Ok(Ok(Err(failure))) => Err(failure),
        _ => Ok(()),
    }
}
