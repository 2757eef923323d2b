//! The client's round (DESIGN §2): train `E` local epochs from the global model, form the
//! update `Δ = w_local − w_global`, clip it, then quantize, pack (weighted by the sample
//! count), encrypt and sign it. Two steps, so a driver can time them separately; no IO.

use rand::Rng;
use spddl_crypto::Entropy;
use spddl_crypto::identity::{SigningKey, VerifyingKey};
use spddl_crypto::paillier::{Plaintext, PublicKey};
use spddl_proto::{ClientId, RoundConfig, Upload};

use crate::data::Dataset;
use crate::model::{
    Model, ModelError, ModelSpec, SgdConfig, TrainConfig, clip_l2, train_local, update_delta,
};

/// Why a client could not produce its upload.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum ClientError {
    /// The global model does not match the digest the aggregator signed in the round config.
    #[error("{client}: global model does not match the round config's digest")]
    ModelMismatch {
        /// The client.
        client: ClientId,
    },
    /// Local training failed (shapes, diverging settings).
    ///
    /// The message includes `error`, which is therefore not also the `source()` (a full error
    /// chain would say it twice).
    #[error("{client}: local training failed: {error}")]
    Training {
        /// The client.
        client: ClientId,
        /// What failed.
        error: ModelError,
    },
    /// Encoding or encryption failed (a weight above the packing head-room, say); `error` is
    /// in the message, not the `source()`.
    #[error("{client}: encoding the update failed: {error}")]
    Encoding {
        /// The client.
        client: ClientId,
        /// What failed.
        error: spddl_crypto::Error,
    },
}

/// A client's clipped update, before encryption.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalUpdate {
    /// `Δ = w_local − w_global`, clipped to the round's L2 norm.
    pub delta: Vec<f32>,
    /// The client's weight: its number of training samples.
    pub weight: u64,
    /// Mean training loss of the last local epoch.
    pub train_loss: f32,
    /// ‖Δ‖₂ before clipping.
    pub norm_before_clip: f32,
}

/// One client: its identity and its local data.
#[derive(Debug)]
pub struct Client {
    id: ClientId,
    identity: SigningKey,
    data: Dataset,
}

impl Client {
    /// A client with its signing key and training data.
    pub fn new(id: ClientId, identity: SigningKey, data: Dataset) -> Self {
        Client { id, identity, data }
    }

    /// The client's id.
    pub fn id(&self) -> ClientId {
        self.id
    }

    /// The client's public identity.
    pub fn verifying_key(&self) -> VerifyingKey {
        self.identity.verifying_key()
    }

    /// Number of local training samples (the client's weight).
    pub fn num_samples(&self) -> usize {
        self.data.len()
    }

    /// Trains from the global model under the round's settings and returns the clipped
    /// update. Refuses a global model that is not the one the round config names.
    pub fn train<R: Rng + ?Sized>(
        &self,
        spec: &ModelSpec,
        config: &RoundConfig,
        global: &[f32],
        rng: &mut R,
    ) -> Result<LocalUpdate, ClientError> {
        let client = self.id;
        if RoundConfig::digest_model(global) != config.model_digest {
            return Err(ClientError::ModelMismatch { client });
        }
        let training = |error| ClientError::Training { client, error };
        let mut model = Model::from_params(spec.clone(), global.to_vec()).map_err(training)?;
        let train = TrainConfig {
            epochs: config.local_epochs as usize,
            batch_size: config.batch_size as usize,
            sgd: SgdConfig {
                lr: config.learning_rate as f32,
                momentum: config.momentum as f32,
                weight_decay: config.weight_decay as f32,
            },
            proximal_mu: (config.proximal_mu > 0.0).then_some(config.proximal_mu as f32),
        };
        let report = train_local(
            &mut model,
            self.data.features().view(),
            self.data.labels(),
            &train,
            rng,
        )
        .map_err(training)?;
        let mut delta = update_delta(model.params_slice(), global).map_err(training)?;
        let norm_before_clip = clip_l2(&mut delta, config.clip_norm as f32).map_err(training)?;
        Ok(LocalUpdate {
            delta,
            weight: self.data.len() as u64,
            train_loss: report.loss,
            norm_before_clip,
        })
    }

    /// Quantizes with stochastic rounding, packs `weight · u` (DESIGN §4), encrypts each
    /// plaintext under the threshold key and signs the upload.
    ///
    /// Two sources of randomness, kept apart: `rounding` drives stochastic rounding and may
    /// be seeded ([`seeded_rng`], so a simulation and a deployment of one seed decrypt to the
    /// same sums); `entropy` gives the encryption randomness `α`, which nobody may be able to
    /// reproduce — whoever knows `α` strips `h_s^α` and reads the update.
    pub fn seal<R: Rng + ?Sized>(
        &self,
        pk: &PublicKey,
        config: &RoundConfig,
        update: &LocalUpdate,
        rounding: &mut R,
        entropy: &mut Entropy,
    ) -> Result<Upload, ClientError> {
        let client = self.id;
        let encoding = |error: spddl_crypto::Error| ClientError::Encoding { client, error };
        let encoder = config
            .encoder(pk)
            .map_err(|e| encoding(spddl_crypto::Error::from(e)))?;
        let values: Vec<f64> = update.delta.iter().map(|&d| f64::from(d)).collect();
        let packed = encoder
            .encode_scaled(&values, update.weight, config.max_weight, rounding)
            .map_err(|e| encoding(spddl_crypto::Error::from(e)))?;
        let plaintexts = packed
            .into_iter()
            .map(|p| Plaintext::new(pk, p))
            .collect::<Result<Vec<_>, spddl_crypto::Error>>()
            .map_err(encoding)?;
        let ciphertexts = pk.encrypt_all(&plaintexts, entropy);
        Ok(Upload::sign(
            pk,
            &self.identity,
            config,
            client,
            update.weight,
            ciphertexts,
        ))
    }
}

/// A deterministic generator for one purpose, round and party, derived from a run's seed.
/// The simulation and a deployed client draw from the same streams (purpose 3: local
/// training, 4: stochastic rounding), so the same seed gives the same updates.
///
/// The seed is public (every participant's `scenario.toml`): these streams are for what may
/// be reproduced, never for a secret. Encryption takes an [`Entropy`], which no seed makes.
pub fn seeded_rng(seed: u64, purpose: u64, round: u64, party: u64) -> rand::rngs::StdRng {
    use rand::SeedableRng;
    let mix = seed
        ^ purpose.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ round.wrapping_mul(0xc2b2_ae3d_27d4_eb4f)
        ^ party.wrapping_mul(0x1656_67b1_9e37_79f9);
    rand::rngs::StdRng::seed_from_u64(mix)
}
