//! The aggregator across rounds and deadlines: the sans-IO state machine the gRPC service
//! drives. It never reads a clock (the caller passes `now` in milliseconds) and never moves
//! bytes; it takes messages and returns [`Event`]s for the caller to log and persist.
//!
//! A round goes `Idle → Collecting → Decrypting → Idle` (the next round) or `→ Finished`.
//! Collection closes when every selected client is counted, or at the collection deadline if
//! at least `min_contributors` are (otherwise the deadline moves on). Holders asked for a
//! share that do not answer within the share timeout are marked silent and others are asked
//! (DESIGN §6: up to `ℓ − t` may drop); if every holder was asked and fewer than `t` valid
//! shares came in, the same sum is asked for again. After `round_attempts` failed attempts
//! at one round (fewer than `t` holders answering, say) the run stops in `Failed` with the
//! reason rather than retrying for ever: the caller exits with it, and the stored round
//! resumes once the missing holders are back.

use std::collections::{BTreeMap, BTreeSet};

use spddl_crypto::identity::{Signature, SigningKey};
use spddl_crypto::paillier::{PublicKey, ShareIndex};
use spddl_proto::{
    ClientId, DecryptionRequest, FogAggregate, Registry, RoundConfig, RoundId, ShareResponse,
    Upload,
};

use crate::{AggregatorError, Assignment, Collecting, Decrypting, RoundOutcome, Strategy};

/// Settings of a run.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Rounds to run in all.
    pub rounds: u64,
    /// Every round's config; `round` and `model_digest` are set per round.
    pub template: RoundConfig,
    /// How long collection waits for uploads before closing with what it has.
    pub collect_timeout_ms: u64,
    /// How long an asked key holder may take before it is counted silent.
    pub share_timeout_ms: u64,
    /// Attempts at one round before the run stops (at least 1).
    pub round_attempts: u32,
}

/// Where the coordinator is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PhaseKind {
    /// Between rounds: waiting for [`Coordinator::open`].
    Idle,
    /// Accepting fog aggregates.
    Collecting,
    /// Waiting for decryption shares.
    Decrypting,
    /// Every round is done.
    Finished,
    /// A round failed `round_attempts` times: the run stopped.
    Failed,
}

#[derive(Debug)]
enum Phase {
    Idle,
    Collecting(Box<Collecting>),
    Decrypting {
        decrypting: Box<Decrypting>,
        asked_at: BTreeMap<ShareIndex, u64>,
        answered: BTreeSet<ShareIndex>,
    },
    Finished,
    Failed(String),
}

/// What happened, for the caller to log and persist.
#[derive(Debug)]
pub enum Event {
    /// Collection closed; the sum goes to the holders.
    Closed {
        /// The round.
        round: RoundId,
        /// Updates in the sum.
        contributors: usize,
    },
    /// Collection's deadline passed with too few updates; it goes on.
    Waiting {
        /// The round.
        round: RoundId,
        /// Updates in so far.
        have: usize,
        /// The minimum.
        min: u32,
    },
    /// Holders asked for a share.
    Asked {
        /// The round.
        round: RoundId,
        /// The holders.
        holders: Vec<ShareIndex>,
    },
    /// A holder did not answer in time.
    Silent {
        /// The round.
        round: RoundId,
        /// The holder.
        holder: ShareIndex,
    },
    /// Fewer than `t` valid shares came in from every holder that could be asked: the same
    /// sum goes to the holders again (valid shares kept, refused holders not asked again).
    Retrying {
        /// The round.
        round: RoundId,
        /// The attempt starting now (2 for the first retry).
        attempt: u32,
        /// Why the previous attempt failed.
        reason: String,
    },
    /// The round failed its last allowed attempt: the run stops here. Nothing of the round
    /// is discarded, so a restarted aggregator resumes it.
    Failed {
        /// The round.
        round: RoundId,
        /// Attempts made.
        attempts: u32,
        /// Why the last attempt failed.
        reason: String,
        /// Whether the round can complete once more key holders answer (it failed for want
        /// of shares), rather than failing the same way again.
        resumable: bool,
    },
    /// The round's decrypted sum did not decode (a client's slots out of range): the round
    /// ends without an update and the next one starts from the same global model. After
    /// `round_attempts` such rounds in a row the run stops ([`Event::Failed`]).
    Skipped {
        /// The round.
        round: RoundId,
        /// Which plaintexts or slots failed to decode.
        reason: String,
        /// Rounds skipped in a row, this one included.
        in_a_row: u32,
        /// The next round, `None` when the run is over.
        next: Option<RoundId>,
    },
    /// The round completed; the global model moved on.
    Completed(Box<Completed>),
}

/// A completed round.
#[derive(Debug)]
pub struct Completed {
    /// What the round produced.
    pub outcome: RoundOutcome,
    /// The global model after the strategy applied the mean update.
    pub global: Vec<f32>,
    /// The strategy's name and its state after the round ([`Strategy::state`]), to store
    /// with the model.
    pub strategy: (&'static str, Vec<u8>),
    /// The next round, `None` when the run is over.
    pub next: Option<RoundId>,
}

/// The aggregator's state machine over rounds.
pub struct Coordinator {
    pk: PublicKey,
    key: SigningKey,
    registry: Registry,
    settings: Settings,
    strategy: Box<dyn Strategy + Send>,
    expected_len: usize,
    round: RoundId,
    global: Vec<f32>,
    config: RoundConfig,
    config_signature: Signature,
    assignment: Assignment,
    deadline_ms: u64,
    /// Failed attempts at the current round.
    attempts: u32,
    /// Rounds skipped in a row because their sums did not decode.
    skipped_in_a_row: u32,
    phase: Phase,
}

impl std::fmt::Debug for Coordinator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Coordinator")
            .field("round", &self.round)
            .field("phase", &self.phase_kind())
            .finish_non_exhaustive()
    }
}

impl Coordinator {
    /// A coordinator at `round` with the global model `global` (from storage after a
    /// restart), idle until [`Coordinator::open`].
    pub fn new(
        pk: &PublicKey,
        key: SigningKey,
        registry: Registry,
        settings: Settings,
        strategy: Box<dyn Strategy + Send>,
        round: RoundId,
        global: Vec<f32>,
    ) -> Result<Self, AggregatorError> {
        let expected_len = settings
            .template
            .encoder(pk)
            .map_err(spddl_crypto::Error::from)?
            .packing()
            .plaintexts_for(global.len());
        let config = Self::config_for(&settings, round, &global);
        let config_signature = key.sign(&config.transcript());
        let phase = if round.0 >= settings.rounds {
            Phase::Finished
        } else {
            Phase::Idle
        };
        Ok(Coordinator {
            pk: pk.clone(),
            key,
            registry,
            settings,
            strategy,
            expected_len,
            round,
            global,
            config,
            config_signature,
            assignment: Assignment::new(),
            deadline_ms: 0,
            attempts: 0,
            skipped_in_a_row: 0,
            phase,
        })
    }

    fn config_for(settings: &Settings, round: RoundId, global: &[f32]) -> RoundConfig {
        RoundConfig {
            round,
            num_params: global.len() as u64,
            model_digest: RoundConfig::digest_model(global),
            ..settings.template.clone()
        }
    }

    /// The current round.
    pub fn round(&self) -> RoundId {
        self.round
    }

    /// The current round's config and the aggregator's signature on it.
    pub fn config(&self) -> (&RoundConfig, &Signature) {
        (&self.config, &self.config_signature)
    }

    /// The global model the current round starts from.
    pub fn global(&self) -> &[f32] {
        &self.global
    }

    /// Ciphertexts per upload, `⌈m / S⌉`.
    pub fn expected_len(&self) -> usize {
        self.expected_len
    }

    /// The current round's assignment (empty when idle).
    pub fn assignment(&self) -> &Assignment {
        &self.assignment
    }

    /// Where the coordinator is.
    pub fn phase_kind(&self) -> PhaseKind {
        match self.phase {
            Phase::Idle => PhaseKind::Idle,
            Phase::Collecting(_) => PhaseKind::Collecting,
            Phase::Decrypting { .. } => PhaseKind::Decrypting,
            Phase::Finished => PhaseKind::Finished,
            Phase::Failed(_) => PhaseKind::Failed,
        }
    }

    /// Opens collection for the current round with the clients of `assignment`.
    pub fn open(&mut self, assignment: Assignment, now_ms: u64) {
        if !matches!(self.phase, Phase::Idle) {
            return;
        }
        self.assignment = assignment.clone();
        self.deadline_ms = now_ms + self.settings.collect_timeout_ms;
        self.phase = Phase::Collecting(Box::new(Collecting::new(
            &self.pk,
            self.config.clone(),
            self.registry.clone(),
            assignment,
            self.expected_len,
        )));
    }

    /// Whether `client`'s update is counted in the current round (or the round is past
    /// collection, so an upload would come too late).
    pub fn counted(&self, client: ClientId) -> bool {
        match &self.phase {
            Phase::Collecting(c) => c.counted(client).is_some(),
            _ => true,
        }
    }

    /// The checks an aggregate must pass before the uploads behind it are fetched (see
    /// [`Collecting::check`]): its round is the current one and collection is open, so an
    /// aggregate of a closed round is refused, never audited; then its fog's signature.
    pub fn check_aggregate(&self, agg: &FogAggregate) -> Result<(), AggregatorError> {
        if agg.round != self.round {
            return Err(AggregatorError::WrongRound {
                sender: agg.fog.to_string(),
                got: agg.round,
                expected: self.round,
            });
        }
        let Phase::Collecting(c) = &self.phase else {
            return Err(AggregatorError::NotCollecting {
                sender: agg.fog.to_string(),
                round: self.round,
            });
        };
        c.check(agg)
    }

    /// Checks and keeps a fog aggregate with the signed uploads behind it (see
    /// [`Collecting::receive`]).
    pub fn receive_aggregate(
        &mut self,
        agg: FogAggregate,
        uploads: Vec<Upload>,
        now_ms: u64,
    ) -> Result<Vec<Event>, AggregatorError> {
        self.check_aggregate(&agg)?;
        let Phase::Collecting(c) = &mut self.phase else {
            return Err(AggregatorError::NotCollecting {
                sender: agg.fog.to_string(),
                round: self.round,
            });
        };
        c.receive(agg, uploads)?;
        Ok(self.tick(now_ms))
    }

    /// Closes collection now with the aggregates in (at least `min_contributors`): a
    /// restarted aggregator whose store says the round's collection had closed asks for the
    /// same sum as before, not one with later arrivals.
    pub fn close_collection_now(&mut self, now_ms: u64) -> Vec<Event> {
        if matches!(self.phase, Phase::Collecting(_)) {
            self.deadline_ms = now_ms;
        }
        self.tick(now_ms)
    }

    /// The decryption request `holder` should answer now, if it was asked and has not.
    pub fn request_for(&self, holder: ShareIndex) -> Option<&DecryptionRequest> {
        match &self.phase {
            Phase::Decrypting {
                decrypting,
                asked_at,
                answered,
            } if asked_at.contains_key(&holder) && !answered.contains(&holder) => {
                Some(decrypting.request())
            }
            _ => None,
        }
    }

    /// Checks a holder's share; completes the round once `t` valid shares are in.
    pub fn receive_share(
        &mut self,
        resp: &ShareResponse,
        now_ms: u64,
    ) -> Result<Vec<Event>, AggregatorError> {
        let Phase::Decrypting {
            decrypting,
            answered,
            ..
        } = &mut self.phase
        else {
            return Err(AggregatorError::NotDecrypting {
                holder: resp.share.holder,
                round: self.round,
            });
        };
        let result = decrypting.receive(resp);
        if !matches!(
            result,
            Err(AggregatorError::UnknownHolder { .. }
                | AggregatorError::BadHolderSignature { .. }
                | AggregatorError::WrongRound { .. })
        ) {
            answered.insert(resp.share.holder);
        }
        result?;
        Ok(self.tick(now_ms))
    }

    /// Advances deadlines: closes collection, marks silent holders, asks others, completes
    /// or restarts the round.
    pub fn tick(&mut self, now_ms: u64) -> Vec<Event> {
        let mut events = Vec::new();
        loop {
            let before = self.phase_kind();
            self.step(now_ms, &mut events);
            if self.phase_kind() == before {
                return events;
            }
        }
    }

    fn step(&mut self, now_ms: u64, events: &mut Vec<Event>) {
        let round = self.round;
        match std::mem::replace(&mut self.phase, Phase::Idle) {
            Phase::Collecting(c) => {
                let have = c.contributors().len();
                let min = self.config.min_contributors;
                let due = c.all_counted() || now_ms >= self.deadline_ms;
                if !due {
                    self.phase = Phase::Collecting(c);
                } else if have < min as usize || have == 0 {
                    if now_ms >= self.deadline_ms {
                        events.push(Event::Waiting { round, have, min });
                        self.deadline_ms = now_ms + self.settings.collect_timeout_ms;
                    }
                    self.phase = Phase::Collecting(c);
                } else {
                    match c.close(&self.key) {
                        Ok(d) => {
                            events.push(Event::Closed {
                                round,
                                contributors: have,
                            });
                            self.phase = Phase::Decrypting {
                                decrypting: Box::new(d),
                                asked_at: BTreeMap::new(),
                                answered: BTreeSet::new(),
                            };
                            self.ask(now_ms, events);
                        }
                        Err(e) => self.fail(e.to_string(), events),
                    }
                }
            }
            Phase::Decrypting {
                mut decrypting,
                asked_at,
                answered,
            } => {
                if decrypting.is_ready() {
                    self.complete(*decrypting, events);
                    return;
                }
                // Asked holders past the share timeout count as silent (DESIGN §6).
                let mut answered = answered;
                for (&holder, &at) in &asked_at {
                    if !answered.contains(&holder) && now_ms >= at + self.settings.share_timeout_ms
                    {
                        decrypting.mark_silent(holder);
                        answered.insert(holder);
                        events.push(Event::Silent { round, holder });
                    }
                }
                self.phase = Phase::Decrypting {
                    decrypting,
                    asked_at,
                    answered,
                };
                self.ask(now_ms, events);
                if let Phase::Decrypting {
                    asked_at, answered, ..
                } = &self.phase
                    && asked_at.keys().all(|h| answered.contains(h))
                {
                    // Everyone asked has answered or timed out, nobody left to ask: another
                    // attempt at the same sum (silent holders may be back; no client uploads
                    // again, and no second sum of the round is ever decrypted), or the end.
                    let Phase::Decrypting { mut decrypting, .. } =
                        std::mem::replace(&mut self.phase, Phase::Idle)
                    else {
                        return;
                    };
                    let reason = decrypting.shortfall().to_string();
                    if !self.fail_attempt(&reason, events) {
                        decrypting.retry();
                        events.push(Event::Retrying {
                            round,
                            attempt: self.attempts + 1,
                            reason,
                        });
                        self.phase = Phase::Decrypting {
                            decrypting,
                            asked_at: BTreeMap::new(),
                            answered: BTreeSet::new(),
                        };
                        self.ask(now_ms, events);
                    }
                }
            }
            other => self.phase = other,
        }
    }

    fn ask(&mut self, now_ms: u64, events: &mut Vec<Event>) {
        if let Phase::Decrypting {
            decrypting,
            asked_at,
            ..
        } = &mut self.phase
        {
            let fresh = decrypting.holders_to_ask();
            if !fresh.is_empty() {
                for h in &fresh {
                    asked_at.insert(*h, now_ms);
                }
                events.push(Event::Asked {
                    round: self.round,
                    holders: fresh,
                });
            }
        }
    }

    fn complete(&mut self, decrypting: Decrypting, events: &mut Vec<Event>) {
        let round = self.round;
        match decrypting.finish() {
            Ok(outcome) => {
                self.strategy.apply(&mut self.global, &outcome.mean_update);
                self.skipped_in_a_row = 0;
                let next = self.next_round();
                events.push(Event::Completed(Box::new(Completed {
                    outcome,
                    global: self.global.clone(),
                    strategy: (self.strategy.name(), self.strategy.state()),
                    next,
                })));
            }
            Err(e @ AggregatorError::Undecodable { .. }) => {
                // One client must not end the run: the round ends without an update, the
                // next starts from the same model; only `round_attempts` in a row stop it.
                self.skipped_in_a_row += 1;
                if self.skipped_in_a_row >= self.settings.round_attempts.max(1) {
                    let reason = format!(
                        "{e}; {} rounds in a row did not decode",
                        self.skipped_in_a_row
                    );
                    self.fail(reason, events);
                    return;
                }
                let next = self.next_round();
                events.push(Event::Skipped {
                    round,
                    reason: e.to_string(),
                    in_a_row: self.skipped_in_a_row,
                    next,
                });
            }
            Err(e) => self.fail(e.to_string(), events),
        }
    }

    /// Moves to the round after the current one (from the current global model), or to
    /// `Finished` after the last; returns the new round unless the run is over.
    fn next_round(&mut self) -> Option<RoundId> {
        self.round = RoundId(self.round.0 + 1);
        self.attempts = 0;
        self.config = Self::config_for(&self.settings, self.round, &self.global);
        self.config_signature = self.key.sign(&self.config.transcript());
        self.assignment.clear();
        if self.round.0 >= self.settings.rounds {
            self.phase = Phase::Finished;
            None
        } else {
            self.phase = Phase::Idle;
            Some(self.round)
        }
    }

    /// The strategy's name and its state now ([`Strategy::state`]), to store with the model.
    pub fn strategy_state(&self) -> (&'static str, Vec<u8>) {
        (self.strategy.name(), self.strategy.state())
    }

    /// Sets how many rounds before the current one were skipped in a row (from the store's
    /// round log after a restart), so a restart does not reset the count.
    pub fn set_skipped_in_a_row(&mut self, rounds: u32) {
        self.skipped_in_a_row = rounds;
    }

    /// Counts a failed attempt at the current round; after the last allowed one the run
    /// stops (`Failed`, with the event) and this returns `true`.
    fn fail_attempt(&mut self, reason: &str, events: &mut Vec<Event>) -> bool {
        self.attempts += 1;
        if self.attempts < self.settings.round_attempts.max(1) {
            return false;
        }
        self.phase = Phase::Failed(reason.to_string());
        events.push(Event::Failed {
            round: self.round,
            attempts: self.attempts,
            reason: reason.to_string(),
            resumable: true,
        });
        true
    }

    /// The round's sum cannot be closed as it is (more updates than the packing holds), or
    /// `round_attempts` sums in a row did not decode: the run stops at once with the reason.
    fn fail(&mut self, reason: String, events: &mut Vec<Event>) {
        self.attempts += 1;
        self.phase = Phase::Failed(reason.clone());
        events.push(Event::Failed {
            round: self.round,
            attempts: self.attempts,
            reason,
            resumable: false,
        });
    }

    /// Why the run stopped, once it is `Failed`.
    pub fn failure(&self) -> Option<&str> {
        match &self.phase {
            Phase::Failed(reason) => Some(reason),
            _ => None,
        }
    }
}
