//! Fog worker of SPDDL (DESIGN §2): checks its clients' uploads, multiplies their ciphertexts
//! (adding the encrypted updates) and forwards one signed [`FogAggregate`].
//!
//! A sans-IO core: [`FogRound`] takes [`Upload`]s and returns errors or an aggregate; the
//! simulation and the gRPC service only move the messages.

#[cfg(feature = "grpc")]
pub mod grpc;

use std::collections::BTreeMap;

use spddl_crypto::identity::{SigningKey, VerifyingKey, verify_batch};
use spddl_crypto::paillier::{Ciphertext, PublicKey};
use spddl_proto::{ClientId, FogAggregate, FogId, Registry, RoundConfig, RoundId, Sender, Upload};

/// Why an upload was rejected. Every variant names the client.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FogError {
    /// The signature does not verify under the client's registered key.
    #[error("{client}: signature does not verify")]
    BadSignature {
        /// The claimed sender.
        client: ClientId,
    },
    /// The sender is not in the registry.
    #[error("{client}: unknown client")]
    UnknownClient {
        /// The claimed sender.
        client: ClientId,
    },
    /// The client is registered but not assigned to this fog worker this round.
    #[error("{client}: not assigned to this fog worker in this round")]
    NotAssigned {
        /// The sender.
        client: ClientId,
    },
    /// The upload is for another round.
    #[error("{client}: upload is for {got}, this is {expected}")]
    WrongRound {
        /// The sender.
        client: ClientId,
        /// The upload's round.
        got: RoundId,
        /// The round in progress.
        expected: RoundId,
    },
    /// The upload names another config of this round than the aggregator's: the client was
    /// sent another global model, or the upload is not for this deployment's round.
    #[error("{client}: upload was made for another round config (another global model)")]
    OtherConfig {
        /// The sender.
        client: ClientId,
    },
    /// The client already uploaded in this round.
    #[error("{client}: second upload in the same round")]
    Duplicate {
        /// The sender.
        client: ClientId,
    },
    /// The ciphertext vector has the wrong length.
    #[error("{client}: {got} ciphertexts, expected {expected}")]
    WrongLength {
        /// The sender.
        client: ClientId,
        /// Ciphertexts received.
        got: usize,
        /// Ciphertexts expected (`⌈m / S⌉`).
        expected: usize,
    },
    /// A weight of zero, or one above the round's bound, which could overflow the packing.
    #[error("{client}: weight {weight} is outside 1..={max}")]
    BadWeight {
        /// The sender.
        client: ClientId,
        /// The declared weight.
        weight: u64,
        /// The round's per-client bound.
        max: u64,
    },
}

/// What an upload says of itself besides its ciphertexts and signature: enough for
/// [`FogRound::precheck_header`] to refuse it before anything costly runs. A gRPC fog builds
/// it from the raw message, before the ciphertexts are parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UploadHeader<'a> {
    /// The round the upload is for.
    pub round: RoundId,
    /// The claimed sender.
    pub client: ClientId,
    /// The [`RoundConfig::digest`] it names (any length: a wrong one is refused).
    pub config: &'a [u8],
    /// The declared weight.
    pub weight: u64,
    /// How many ciphertexts it carries.
    pub ciphertexts: usize,
}

impl<'a> UploadHeader<'a> {
    /// The header of a parsed upload.
    pub fn of(up: &'a Upload) -> Self {
        UploadHeader {
            round: up.round,
            client: up.client,
            config: &up.config,
            weight: up.weight,
            ciphertexts: up.ciphertexts.len(),
        }
    }
}

/// One fog worker's state for one round.
#[derive(Debug)]
pub struct FogRound {
    pk: PublicKey,
    fog: FogId,
    round: RoundId,
    /// [`RoundConfig::digest`] of the round's signed config: every upload must name it.
    config: [u8; 32],
    assigned: BTreeMap<ClientId, VerifyingKey>,
    expected_len: usize,
    max_weight: u64,
    accepted: BTreeMap<ClientId, u64>,
    /// Clients accepted since the last [`FogRound::take_aggregate`], with their weights.
    batch: BTreeMap<ClientId, u64>,
    /// Running element-wise product of the batch's ciphertexts.
    sum: Vec<Ciphertext>,
}

impl FogRound {
    /// Opens the round of `config` for the clients `assigned` to this fog. Clients missing from the
    /// registry are left out (their uploads are refused as unknown). `expected_len` is
    /// `⌈m / S⌉`; `max_weight` bounds any one client's weight.
    pub fn new(
        pk: &PublicKey,
        fog: FogId,
        config: &RoundConfig,
        registry: &Registry,
        assigned: &[ClientId],
        expected_len: usize,
        max_weight: u64,
    ) -> Self {
        let assigned = assigned
            .iter()
            .filter_map(|c| registry.key_of(Sender::Client(*c)).map(|k| (*c, *k)))
            .collect();
        FogRound {
            pk: pk.clone(),
            fog,
            round: config.round,
            config: config.digest(),
            assigned,
            expected_len,
            max_weight,
            accepted: BTreeMap::new(),
            batch: BTreeMap::new(),
            sum: Vec::new(),
        }
    }

    /// Checks everything an upload's header shows (round, config, sender, repeat, length,
    /// weight) without its ciphertexts or signature: what a fog can refuse before it parses
    /// or verifies anything, so a malformed or unwanted upload costs a few comparisons.
    pub fn precheck_header(
        &self,
        header: &UploadHeader<'_>,
        registry: &Registry,
    ) -> Result<(), FogError> {
        let client = header.client;
        if header.round != self.round {
            return Err(FogError::WrongRound {
                client,
                got: header.round,
                expected: self.round,
            });
        }
        if header.config != self.config.as_slice() {
            return Err(FogError::OtherConfig { client });
        }
        if !self.assigned.contains_key(&client) {
            return Err(if registry.key_of(Sender::Client(client)).is_some() {
                FogError::NotAssigned { client }
            } else {
                FogError::UnknownClient { client }
            });
        }
        if self.accepted.contains_key(&client) {
            return Err(FogError::Duplicate { client });
        }
        if header.ciphertexts != self.expected_len {
            return Err(FogError::WrongLength {
                client,
                got: header.ciphertexts,
                expected: self.expected_len,
            });
        }
        if header.weight == 0 || header.weight > self.max_weight {
            return Err(FogError::BadWeight {
                client,
                weight: header.weight,
                max: self.max_weight,
            });
        }
        Ok(())
    }

    /// Checks everything but the signature.
    fn precheck(&self, up: &Upload, registry: &Registry) -> Result<(), FogError> {
        self.precheck_header(&UploadHeader::of(up), registry)
    }

    fn accept(&mut self, up: &Upload) {
        self.accepted.insert(up.client, up.weight);
        self.batch.insert(up.client, up.weight);
        if self.sum.is_empty() {
            self.sum = up.ciphertexts.clone();
        } else {
            for (s, c) in self.sum.iter_mut().zip(&up.ciphertexts) {
                *s = self.pk.add(s, c);
            }
        }
    }

    /// Checks one upload and adds it to the sum.
    pub fn receive(&mut self, up: &Upload, registry: &Registry) -> Result<(), FogError> {
        self.precheck(up, registry)?;
        let key = self.assigned[&up.client];
        key.verify(&up.transcript(&self.pk), &up.signature)
            .map_err(|_| FogError::BadSignature { client: up.client })?;
        self.accept(up);
        Ok(())
    }

    /// Checks a batch of uploads, verifying their signatures together (ed25519 batch
    /// verification), and adds the good ones. Returns the rejections: first those found
    /// before any signature is checked, in input order, then the bad signatures.
    pub fn receive_all(&mut self, uploads: &[Upload], registry: &Registry) -> Vec<FogError> {
        let mut errors = Vec::new();
        let mut candidates: Vec<&Upload> = Vec::new();
        for up in uploads {
            // A client that appears twice in one batch: the second copy is a duplicate.
            let repeated = candidates.iter().any(|c| c.client == up.client);
            match self.precheck(up, registry) {
                Ok(()) if repeated => errors.push(FogError::Duplicate { client: up.client }),
                Ok(()) => candidates.push(up),
                Err(e) => errors.push(e),
            }
        }
        let transcripts: Vec<_> = candidates.iter().map(|u| u.transcript(&self.pk)).collect();
        let items: Vec<_> = candidates
            .iter()
            .zip(&transcripts)
            .map(|(u, t)| (&self.assigned[&u.client], t, &u.signature))
            .collect();
        let bad: Vec<usize> = match verify_batch(&items) {
            Ok(()) => Vec::new(),
            Err(spddl_crypto::identity::SignatureError::BatchFailed { culprits }) => culprits,
            // Any other batch error: fall back to checking each one.
            Err(_) => (0..candidates.len())
                .filter(|&i| items[i].0.verify(items[i].1, items[i].2).is_err())
                .collect(),
        };
        for (i, up) in candidates.into_iter().enumerate() {
            if bad.contains(&i) {
                errors.push(FogError::BadSignature { client: up.client });
            } else {
                self.accept(up);
            }
        }
        errors
    }

    /// How many uploads were accepted.
    pub fn contributors(&self) -> usize {
        self.accepted.len()
    }

    /// The round this fog worker is collecting.
    pub fn round(&self) -> RoundId {
        self.round
    }

    /// Ciphertexts per upload in this round (`⌈m / S⌉`).
    pub fn expected_len(&self) -> usize {
        self.expected_len
    }

    /// Forgets accepted clients whose batch the aggregator refused for good (after
    /// [`FogRound::take_aggregate`] took them out of the sum): their uploads were never
    /// counted, so each may upload again, here or through another fog, instead of being
    /// refused as a second upload.
    pub fn forget(&mut self, clients: &[ClientId]) {
        for c in clients {
            if !self.batch.contains_key(c) {
                self.accepted.remove(c);
            }
        }
    }

    /// Closes the round and signs the aggregate. With no accepted upload there is nothing
    /// to forward (`None`).
    pub fn finish(mut self, key: &SigningKey) -> Option<FogAggregate> {
        self.take_aggregate(key)
    }

    /// Signs the aggregate of the uploads accepted since the last call and starts a new
    /// batch; the round stays open and still refuses a client accepted before. `None` when
    /// nothing was accepted since. A deployed fog worker forwards a batch as soon as it has
    /// one, so an accepted upload waits for no deadline.
    pub fn take_aggregate(&mut self, key: &SigningKey) -> Option<FogAggregate> {
        if self.batch.is_empty() {
            return None;
        }
        let contributors: Vec<(ClientId, u64)> =
            std::mem::take(&mut self.batch).into_iter().collect();
        let sum = std::mem::take(&mut self.sum);
        Some(FogAggregate::sign(
            &self.pk,
            key,
            self.round,
            self.fog,
            contributors,
            sum,
        ))
    }
}

/// Adds uploads that were already checked (by [`FogRound::receive`]) and signs their
/// aggregate: for re-forming a batch without clients the aggregator had counted already.
/// `None` for no uploads.
pub fn aggregate_checked(
    pk: &PublicKey,
    key: &SigningKey,
    fog: FogId,
    uploads: &[&Upload],
) -> Option<FogAggregate> {
    let first = uploads.first()?;
    let mut sum = first.ciphertexts.clone();
    for up in &uploads[1..] {
        for (s, c) in sum.iter_mut().zip(&up.ciphertexts) {
            *s = pk.add(s, c);
        }
    }
    let mut contributors: Vec<(ClientId, u64)> =
        uploads.iter().map(|u| (u.client, u.weight)).collect();
    contributors.sort();
    Some(FogAggregate::sign(
        pk,
        key,
        first.round,
        fog,
        contributors,
        sum,
    ))
}
