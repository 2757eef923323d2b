//! One round at the aggregator: collecting fog aggregates, then decrypting, then the outcome.

use std::collections::{BTreeMap, BTreeSet};

use spddl_crypto::identity::SigningKey;
use spddl_crypto::paillier::{self, PublicKey, ShareIndex, VerifiedShare};
use spddl_proto::{
    ClientId, DecryptionRequest, FogAggregate, FogId, Registry, RoundConfig, RoundId, Sender,
    ShareResponse, Upload,
};

use crate::AggregatorError;

/// Which fog workers each client of a round may upload through, in the order it tries them:
/// its assigned fog first, then its fallbacks.
pub type Assignment = BTreeMap<ClientId, Vec<FogId>>;

/// Assigns clients to fog workers in turn (client `k` to fog `k mod F`), without fallbacks.
pub fn assign_round_robin(clients: &[ClientId], fogs: &[FogId]) -> Assignment {
    clients
        .iter()
        .zip(fogs.iter().cycle())
        .map(|(c, f)| (*c, vec![*f]))
        .collect()
}

/// Collecting the fog workers' aggregates for a round, each with the client-signed uploads
/// behind it: the holders decrypt only a product they recompute from those uploads.
#[derive(Debug)]
pub struct Collecting {
    pk: PublicKey,
    config: RoundConfig,
    registry: Registry,
    assignment: Assignment,
    expected_len: usize,
    aggregates: Vec<FogAggregate>,
    /// The audited, client-signed uploads behind the aggregates.
    uploads: Vec<Upload>,
    counted: BTreeMap<ClientId, FogId>,
}

impl Collecting {
    /// Opens a round. `assignment` says which fog workers each selected client may upload
    /// through; `expected_len` is `⌈m / S⌉`. A fog worker may forward several aggregates in a
    /// round (each of clients not counted before).
    pub fn new(
        pk: &PublicKey,
        config: RoundConfig,
        registry: Registry,
        assignment: Assignment,
        expected_len: usize,
    ) -> Self {
        Collecting {
            pk: pk.clone(),
            config,
            registry,
            assignment,
            expected_len,
            aggregates: Vec::new(),
            uploads: Vec::new(),
            counted: BTreeMap::new(),
        }
    }

    /// The round's assignment.
    pub fn assignment(&self) -> &Assignment {
        &self.assignment
    }

    /// Whether every selected client's update is in.
    pub fn all_counted(&self) -> bool {
        self.counted.len() == self.assignment.len()
    }

    /// Whether `client`'s update is in, and through which fog worker.
    pub fn counted(&self, client: ClientId) -> Option<FogId> {
        self.counted.get(&client).copied()
    }

    /// The round's configuration.
    pub fn config(&self) -> &RoundConfig {
        &self.config
    }

    /// Checks a fog aggregate and the signed uploads its fog says are in it, and keeps both.
    ///
    /// The fog's signature, the round, the assignment and the length are checked first; only
    /// an aggregate its fog signed is then audited against the uploads ([`crate::audit`]), so
    /// an [`AggregatorError::AuditFailed`] — which blames the fog — follows only from evidence
    /// the fog signed.
    pub fn receive(
        &mut self,
        agg: FogAggregate,
        uploads: Vec<Upload>,
    ) -> Result<(), AggregatorError> {
        self.check(&agg)?;
        let fog = agg.fog;
        crate::audit(&self.pk, &self.registry, &agg, &uploads)?;
        let digest = self.config.digest();
        if let Some(up) = uploads.iter().find(|u| u.config != digest) {
            return Err(AggregatorError::AuditFailed {
                fog,
                reason: format!(
                    "{}'s upload names another round config (another global model)",
                    up.client
                ),
            });
        }
        for (c, _) in &agg.contributors {
            self.counted.insert(*c, fog);
        }
        self.aggregates.push(agg);
        self.uploads.extend(uploads);
        Ok(())
    }

    /// The checks of [`Collecting::receive`] that need no uploads, cheapest first: the round,
    /// the fog's registration and signature, clients counted before, the assignment and the
    /// length. The driver runs them before it fetches the uploads behind an aggregate, so a
    /// forged, late or misdirected aggregate costs it no fetch and blames nobody.
    pub fn check(&self, agg: &FogAggregate) -> Result<(), AggregatorError> {
        let fog = agg.fog;
        if agg.round != self.config.round {
            return Err(AggregatorError::WrongRound {
                sender: fog.to_string(),
                got: agg.round,
                expected: self.config.round,
            });
        }
        let Some(key) = self.registry.key_of(Sender::Fog(fog)) else {
            return Err(AggregatorError::UnknownFog { fog });
        };
        key.verify(&agg.transcript(&self.pk), &agg.signature)
            .map_err(|_| AggregatorError::BadFogSignature { fog })?;
        let repeated: Vec<ClientId> = agg
            .contributors
            .iter()
            .map(|(c, _)| *c)
            .filter(|c| self.counted.contains_key(c))
            .collect();
        if !repeated.is_empty() {
            return Err(AggregatorError::AlreadyCounted {
                fog,
                clients: repeated,
            });
        }
        if let Some((client, _)) = agg.contributors.iter().find(|(c, _)| {
            !self
                .assignment
                .get(c)
                .is_some_and(|fogs| fogs.contains(&fog))
        }) {
            return Err(AggregatorError::ClientNotAssigned {
                fog,
                client: *client,
            });
        }
        if agg.ciphertexts.len() != self.expected_len {
            return Err(AggregatorError::WrongLength {
                fog,
                got: agg.ciphertexts.len(),
                expected: self.expected_len,
            });
        }
        Ok(())
    }

    /// Clients whose updates are in the aggregates received so far.
    pub fn contributors(&self) -> Vec<ClientId> {
        self.counted.keys().copied().collect()
    }

    /// Closes collection: signs the request to the key holders for the product `C` of the
    /// audited uploads (equal to the product of the fog aggregates). Refuses when fewer than `min_contributors` updates
    /// are in, so a small sum is never decrypted.
    pub fn close(self, key: &SigningKey) -> Result<Decrypting, AggregatorError> {
        let mut contributors: Vec<(ClientId, u64)> = self
            .aggregates
            .iter()
            .flat_map(|a| a.contributors.iter().copied())
            .collect();
        contributors.sort();
        if contributors.len() < self.config.min_contributors as usize {
            return Err(AggregatorError::TooFewContributors {
                got: contributors.len(),
                min: self.config.min_contributors,
            });
        }
        if contributors.len() > self.config.max_contributors as usize {
            return Err(AggregatorError::TooManyContributors {
                got: contributors.len(),
                max: self.config.max_contributors,
            });
        }
        let total_weight: u64 = contributors.iter().map(|(_, w)| w).sum();
        // Ed25519 signatures are deterministic: this is the signature the clients saw.
        let config_signature = key.sign(&self.config.transcript());
        let request = DecryptionRequest::sign(
            &self.pk,
            self.config.clone(),
            config_signature,
            self.uploads,
            key,
        )?;
        let context = request.context(&self.pk);
        Ok(Decrypting {
            pk: self.pk,
            config: self.config,
            registry: self.registry,
            request,
            context,
            contributors,
            total_weight,
            asked: BTreeSet::new(),
            silent: Vec::new(),
            silent_before: BTreeSet::new(),
            valid: Vec::new(),
            blamed: Vec::new(),
        })
    }
}

/// Collecting decryption shares of the round's sum.
#[derive(Debug)]
pub struct Decrypting {
    pk: PublicKey,
    config: RoundConfig,
    registry: Registry,
    request: DecryptionRequest,
    context: Vec<u8>,
    contributors: Vec<(ClientId, u64)>,
    total_weight: u64,
    asked: BTreeSet<ShareIndex>,
    silent: Vec<ShareIndex>,
    /// Holders silent in an earlier attempt at this round (the report names them even when a
    /// later attempt did not ask them again).
    silent_before: BTreeSet<ShareIndex>,
    valid: Vec<VerifiedShare>,
    blamed: Vec<AggregatorError>,
}

impl Decrypting {
    /// The signed request to send to the holders this round asks.
    pub fn request(&self) -> &DecryptionRequest {
        &self.request
    }

    /// The round.
    pub fn round(&self) -> RoundId {
        self.config.round
    }

    fn answered(&self, h: ShareIndex) -> bool {
        self.silent.contains(&h)
            || self.valid.iter().any(|v| v.holder() == h)
            || self.blamed.iter().any(|e| blamed_holder(e) == Some(h))
    }

    /// Holders to ask now: the lowest-indexed ones not asked before, just enough that the
    /// valid shares plus the outstanding requests reach `t`. Exactly `t` at first; more only
    /// after holders were silent or sent bad shares. Empty when nothing more can be asked.
    pub fn holders_to_ask(&mut self) -> Vec<ShareIndex> {
        let t = usize::from(self.pk.threshold());
        let outstanding = self.asked.iter().filter(|h| !self.answered(**h)).count();
        let need = t.saturating_sub(self.valid.len() + outstanding);
        let fresh: Vec<ShareIndex> = (1..=u64::from(self.pk.holders()))
            .filter_map(|i| self.pk.share_index(i).ok())
            .filter(|h| !self.asked.contains(h))
            .take(need)
            .collect();
        self.asked.extend(&fresh);
        fresh
    }

    /// Records that an asked holder did not answer in time.
    pub fn mark_silent(&mut self, holder: ShareIndex) {
        if self.asked.contains(&holder) && !self.answered(holder) {
            self.silent.push(holder);
        }
    }

    /// Checks a holder's signed share: its signature, its round, and its proof against the
    /// round's sum and context. A bad share is recorded against its holder and returned as
    /// the error.
    pub fn receive(&mut self, resp: &ShareResponse) -> Result<(), AggregatorError> {
        let holder = resp.share.holder;
        if resp.round != self.config.round {
            return Err(AggregatorError::WrongRound {
                sender: format!("key holder {holder}"),
                got: resp.round,
                expected: self.config.round,
            });
        }
        let Some(key) = self.registry.key_of(Sender::Holder(holder)) else {
            return Err(AggregatorError::UnknownHolder { holder });
        };
        key.verify(&resp.transcript(), &resp.signature)
            .map_err(|_| AggregatorError::BadHolderSignature { holder })?;
        if self.valid.iter().any(|v| v.holder() == holder) {
            return Ok(()); // a repeat of a share already counted changes nothing
        }
        match resp
            .share
            .verify(&self.pk, self.request.ciphertexts(), &self.context)
        {
            Ok(v) => {
                self.silent.retain(|h| *h != holder); // a late answer still counts
                self.valid.push(v);
                Ok(())
            }
            Err(e) => {
                let err = AggregatorError::BadShare {
                    holder,
                    reason: e.to_string(),
                };
                self.blamed.push(err.clone());
                Err(err)
            }
        }
    }

    /// Why the shares in hand do not reach `t`, as [`Decrypting::finish`] would say.
    pub fn shortfall(&self) -> AggregatorError {
        AggregatorError::NotEnoughShares {
            valid: self.valid.len(),
            threshold: self.pk.threshold(),
            silent: self.silent.clone(),
            blamed: self.blamed.iter().filter_map(blamed_holder).collect(),
        }
    }

    /// Starts another attempt at the same request: holders that were silent may be asked
    /// again; valid shares are kept, and holders whose shares were refused are not asked
    /// again.
    pub fn retry(&mut self) {
        self.silent_before.extend(self.silent.drain(..));
        self.asked = self
            .valid
            .iter()
            .map(|v| v.holder())
            .chain(self.blamed.iter().filter_map(blamed_holder))
            .collect();
    }

    /// Whether `t` valid shares are in.
    pub fn is_ready(&self) -> bool {
        self.valid.len() >= usize::from(self.pk.threshold())
    }

    /// Combines `t` valid shares, decodes the weighted sum and divides by the total weight:
    /// the mean update `Σ w_k·Δ_k / Σ w_k`.
    pub fn finish(self) -> Result<RoundOutcome, AggregatorError> {
        if !self.is_ready() {
            return Err(self.shortfall());
        }
        let plaintexts = paillier::combine(&self.pk, &self.valid)?;
        let values: Vec<_> = plaintexts.into_iter().map(|p| p.into_value()).collect();
        let encoder = self
            .config
            .encoder(&self.pk)
            .map_err(spddl_crypto::Error::from)?;
        let m = usize::try_from(self.config.num_params).unwrap_or(usize::MAX);
        let sums = encoder
            .decode_sum(&values, m, self.contributors.len() as u64)
            .map_err(|source| AggregatorError::Undecodable {
                round: self.config.round,
                source,
            })?;
        // The sum holds Σ (w_k/W)·x_k (clients scale by w_k/W, `Encoder::encode_scaled`):
        // the weighted mean is that times W / Σ w_k.
        let w = self.total_weight as f64 / self.config.max_weight as f64;
        // Silent in any attempt and no valid share since (a late answer still counts).
        let silent: Vec<ShareIndex> = self
            .silent_before
            .iter()
            .chain(&self.silent)
            .copied()
            .filter(|h| !self.valid.iter().any(|v| v.holder() == *h))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut used: Vec<ShareIndex> = self.valid.iter().map(|v| v.holder()).collect();
        used.sort();
        used.truncate(usize::from(self.pk.threshold()));
        Ok(RoundOutcome {
            round: self.config.round,
            mean_update: sums.iter().map(|s| (s / w) as f32).collect(),
            contributors: self.contributors,
            total_weight: self.total_weight,
            holders_used: used,
            silent,
            blamed: self.blamed,
        })
    }
}

fn blamed_holder(e: &AggregatorError) -> Option<ShareIndex> {
    match e {
        AggregatorError::BadShare { holder, .. } => Some(*holder),
        _ => None,
    }
}

/// What a completed round produced.
#[derive(Debug, Clone)]
pub struct RoundOutcome {
    /// The round.
    pub round: RoundId,
    /// `Σ w_k·Δ_k / Σ w_k`, decoded (within quantization error).
    pub mean_update: Vec<f32>,
    /// The clients whose updates are in the sum, with their weights.
    pub contributors: Vec<(ClientId, u64)>,
    /// `Σ w_k`.
    pub total_weight: u64,
    /// The holders whose shares were combined.
    pub holders_used: Vec<ShareIndex>,
    /// Holders asked, in any attempt at the round, that gave no valid share.
    pub silent: Vec<ShareIndex>,
    /// Shares refused, each naming its holder.
    pub blamed: Vec<AggregatorError>,
}

/// A fog worker as the aggregator sees it when assigning clients: whether it passed its last
/// health check, its measured round-trip time, and its current load.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct FogLoad {
    /// The fog worker.
    pub fog: FogId,
    /// Whether its last health check succeeded.
    pub healthy: bool,
    /// Its last measured health-check round trip, in milliseconds.
    pub latency_ms: f64,
    /// Uploads it holds that are not yet in a stored aggregate.
    pub pending: u64,
}

/// Adaptive assignment: each client goes, in id order, to the healthy fog worker with the
/// lowest cost `(load + 1) · (1 + latency / 10 ms)`, where `load` is its pending uploads plus
/// the clients assigned to it so far; its fallbacks are the other fogs, healthy ones first by
/// the same cost. Unhealthy fogs are never a primary unless none is healthy.
pub fn assign_by_load(clients: &[ClientId], fogs: &[FogLoad]) -> Assignment {
    let any_healthy = fogs.iter().any(|f| f.healthy);
    let mut load: BTreeMap<FogId, u64> = fogs.iter().map(|f| (f.fog, f.pending)).collect();
    let cost = |f: &FogLoad, load: &BTreeMap<FogId, u64>| {
        let unhealthy = if f.healthy || !any_healthy { 0.0 } else { 1e12 };
        unhealthy + (load[&f.fog] as f64 + 1.0) * (1.0 + f.latency_ms.max(0.0) / 10.0)
    };
    clients
        .iter()
        .map(|&c| {
            let mut order: Vec<&FogLoad> = fogs.iter().collect();
            order.sort_by(|a, b| {
                cost(a, &load)
                    .total_cmp(&cost(b, &load))
                    .then(a.fog.cmp(&b.fog))
            });
            let list: Vec<FogId> = order.iter().map(|f| f.fog).collect();
            if let Some(first) = list.first() {
                *load.entry(*first).or_default() += 1;
            }
            (c, list)
        })
        .collect()
}

#[cfg(test)]
mod load_tests {
    use super::*;

    fn fog(id: u32, healthy: bool, latency_ms: f64, pending: u64) -> FogLoad {
        FogLoad {
            fog: FogId(id),
            healthy,
            latency_ms,
            pending,
        }
    }

    fn primaries(a: &Assignment, fog: u32) -> usize {
        a.values().filter(|l| l[0] == FogId(fog)).count()
    }

    #[test]
    fn equal_fogs_share_clients_evenly_and_list_every_fog() {
        let clients: Vec<ClientId> = (0..20).map(ClientId).collect();
        let a = assign_by_load(&clients, &[fog(0, true, 1.0, 0), fog(1, true, 1.0, 0)]);
        assert_eq!(primaries(&a, 0), 10);
        assert_eq!(primaries(&a, 1), 10);
        assert!(a.values().all(|l| l.len() == 2 && l[0] != l[1]));
    }

    #[test]
    fn slow_or_loaded_fogs_get_fewer_clients_and_unhealthy_none() {
        let clients: Vec<ClientId> = (0..30).map(ClientId).collect();
        let a = assign_by_load(&clients, &[fog(0, true, 1.0, 0), fog(1, true, 30.0, 0)]);
        assert!(primaries(&a, 0) > 2 * primaries(&a, 1), "{a:?}");
        let a = assign_by_load(&clients, &[fog(0, true, 1.0, 20), fog(1, true, 1.0, 0)]);
        assert!(primaries(&a, 1) > primaries(&a, 0));
        let a = assign_by_load(&clients, &[fog(0, false, 1.0, 0), fog(1, true, 50.0, 9)]);
        assert_eq!(primaries(&a, 0), 0);
        assert!(a.values().all(|l| l == &vec![FogId(1), FogId(0)]));
    }
}
