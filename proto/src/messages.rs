//! The messages of a round (DESIGN §2) and the transcripts their signatures cover (DESIGN §5).

use sha2::{Digest, Sha256};
use spddl_crypto::encoding::{Encoder, EncodingError, PackingParams, Quantizer};
use spddl_crypto::identity::{Signature, SigningKey, Transcript};
use spddl_crypto::paillier::{Ciphertext, DecryptionShare, PublicKey};

use crate::{ClientId, FogId, RoundId, Sender};

/// Version of the protocol, bound into every signature.
pub const PROTOCOL_VERSION: u64 = 1;

/// `SHA-256("spddl/v1/ciphertexts" ‖ key_id ‖ k ‖ c_1 ‖ … ‖ c_k)`, each ciphertext in its
/// fixed-width big-endian form: the payload hash of every message that carries ciphertexts.
pub fn ciphertexts_digest(pk: &PublicKey, ciphertexts: &[Ciphertext]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"spddl/v1/ciphertexts");
    h.update(pk.key_id().0);
    h.update((ciphertexts.len() as u64).to_be_bytes());
    for c in ciphertexts {
        h.update(c.to_bytes(pk));
    }
    h.finalize().into()
}

/// The context bound into every holder's decryption proof for a round: the round and the
/// digest of the ciphertexts to decrypt. A share made for another round or other ciphertexts
/// does not verify, so shares cannot be replayed.
pub fn decryption_context(round: RoundId, digest: &[u8; 32]) -> Vec<u8> {
    let mut c = b"spddl/v1/decryption-context".to_vec();
    c.extend_from_slice(&round.0.to_be_bytes());
    c.extend_from_slice(digest);
    c
}

fn header(kind: &'static str, round: RoundId, sender: Sender) -> Transcript {
    let (sender_kind, sender_id) = sender.code();
    let mut t = Transcript::new(kind);
    t.append_u64("version", PROTOCOL_VERSION)
        .append_u64("round", round.0)
        .append_u64("sender-kind", sender_kind)
        .append_u64("sender-id", sender_id);
    t
}

/// What the aggregator announces for a round, signed by it: encoding and training parameters
/// and the digest of the global model the clients start from.
#[derive(Debug, Clone, PartialEq)]
pub struct RoundConfig {
    /// The round.
    pub round: RoundId,
    /// Number of model parameters `m` (the length of every update).
    pub num_params: u64,
    /// L2 norm each client clips its update `Δ` to before quantization.
    pub clip_norm: f64,
    /// Quantization range `r`: values are clipped to `[−r, r]` (DESIGN §4).
    pub quant_range: f64,
    /// Quantization bits `q`.
    pub value_bits: u32,
    /// Head-room of the packing: the most updates one sum may hold (`K_max`).
    pub max_contributors: u32,
    /// `W`, the largest weight (sample count) one client may claim; clients scale their
    /// update by `w/W` before encoding ([`spddl_crypto::encoding::Encoder::encode_scaled`]).
    pub max_weight: u64,
    /// The aggregator decrypts no sum of fewer updates than this.
    pub min_contributors: u32,
    /// Local epochs `E`.
    pub local_epochs: u32,
    /// Mini-batch size.
    pub batch_size: u32,
    /// SGD learning rate.
    pub learning_rate: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// SGD weight decay.
    pub weight_decay: f64,
    /// FedProx proximal coefficient μ; 0 disables it.
    pub proximal_mu: f64,
    /// SHA-256 of the global model's parameters (little-endian `f32`s).
    pub model_digest: [u8; 32],
}

impl RoundConfig {
    /// The bytes the aggregator signs.
    pub fn transcript(&self) -> Transcript {
        let mut t = header("round-config", self.round, Sender::Aggregator);
        t.append_u64("num-params", self.num_params)
            .append_u64("clip-norm", self.clip_norm.to_bits())
            .append_u64("quant-range", self.quant_range.to_bits())
            .append_u64("value-bits", self.value_bits.into())
            .append_u64("max-contributors", self.max_contributors.into())
            .append_u64("max-weight", self.max_weight)
            .append_u64("min-contributors", self.min_contributors.into())
            .append_u64("local-epochs", self.local_epochs.into())
            .append_u64("batch-size", self.batch_size.into())
            .append_u64("learning-rate", self.learning_rate.to_bits())
            .append_u64("momentum", self.momentum.to_bits())
            .append_u64("weight-decay", self.weight_decay.to_bits())
            .append_u64("proximal-mu", self.proximal_mu.to_bits())
            .append_bytes("model-digest", &self.model_digest);
        t
    }

    /// A config with the digits run's values for `round` (650 parameters, 16-bit values, up
    /// to 20 contributors of weight at most 2,000, at least 3): for examples and tests.
    pub fn example(round: RoundId) -> Self {
        RoundConfig {
            round,
            num_params: 650,
            clip_norm: 5.0,
            quant_range: 0.5,
            value_bits: 16,
            max_contributors: 20,
            max_weight: 2000,
            min_contributors: 3,
            local_epochs: 1,
            batch_size: 32,
            learning_rate: 0.1,
            momentum: 0.9,
            weight_decay: 0.0,
            proximal_mu: 0.0,
            model_digest: Self::digest_model(&[]),
        }
    }

    /// SHA-256 of the signed transcript: what an upload names as the config it was made for.
    pub fn digest(&self) -> [u8; 32] {
        self.transcript().digest()
    }

    /// The encoder every party derives from this config (DESIGN §4): quantization to
    /// `value_bits` over `[−quant_range, quant_range]`, packed with head-room for
    /// `max_contributors` updates into plaintexts of the key's modulus size.
    pub fn encoder(&self, pk: &PublicKey) -> Result<Encoder, EncodingError> {
        let modulus_bits = u32::try_from(pk.bits()).unwrap_or(u32::MAX);
        Encoder::new(
            Quantizer::new(self.quant_range, self.value_bits)?,
            PackingParams::new(self.value_bits, self.max_contributors.into(), modulus_bits)?,
        )
    }

    /// SHA-256 of model parameters as little-endian `f32`s, for [`RoundConfig::model_digest`].
    pub fn digest_model(params: &[f32]) -> [u8; 32] {
        let mut h = Sha256::new();
        h.update(b"spddl/v1/model");
        for p in params {
            h.update(p.to_le_bytes());
        }
        h.finalize().into()
    }
}

/// A client's encrypted, packed update for one round, sent to its fog worker.
#[derive(Debug, Clone, PartialEq)]
pub struct Upload {
    /// The round.
    pub round: RoundId,
    /// The sender.
    pub client: ClientId,
    /// [`RoundConfig::digest`] of the signed config the client trained and encoded for: a
    /// key holder decrypts only a product of uploads that all name the same config, so the
    /// global model each update was trained from is known and signed by its client.
    pub config: [u8; 32],
    /// The client's weight in the average (its number of training samples); the packed
    /// values are already multiplied by it.
    pub weight: u64,
    /// `⌈m / S⌉` ciphertexts of the packed, quantized, weighted update.
    pub ciphertexts: Vec<Ciphertext>,
    /// The client's signature over [`Upload::transcript`].
    pub signature: Signature,
}

impl Upload {
    /// The bytes the client signs.
    pub fn transcript_for(
        pk: &PublicKey,
        round: RoundId,
        client: ClientId,
        config: &[u8; 32],
        weight: u64,
        ciphertexts: &[Ciphertext],
    ) -> Transcript {
        let mut t = header("upload", round, Sender::Client(client));
        t.append_bytes("config", config)
            .append_u64("weight", weight)
            .append_bytes("ciphertexts", &ciphertexts_digest(pk, ciphertexts));
        t
    }

    /// The transcript of this upload.
    pub fn transcript(&self, pk: &PublicKey) -> Transcript {
        Self::transcript_for(
            pk,
            self.round,
            self.client,
            &self.config,
            self.weight,
            &self.ciphertexts,
        )
    }

    /// Builds and signs an upload for the round of `config`.
    pub fn sign(
        pk: &PublicKey,
        key: &SigningKey,
        config: &RoundConfig,
        client: ClientId,
        weight: u64,
        ciphertexts: Vec<Ciphertext>,
    ) -> Self {
        let digest = config.digest();
        let round = config.round;
        let signature = key.sign(&Self::transcript_for(
            pk,
            round,
            client,
            &digest,
            weight,
            &ciphertexts,
        ));
        Upload {
            round,
            client,
            config: digest,
            weight,
            ciphertexts,
            signature,
        }
    }
}

/// A fog worker's homomorphic sum of its clients' uploads, sent to the aggregator.
#[derive(Debug, Clone, PartialEq)]
pub struct FogAggregate {
    /// The round.
    pub round: RoundId,
    /// The sender.
    pub fog: FogId,
    /// The clients whose uploads are in the sum, with their weights, in increasing id order.
    pub contributors: Vec<(ClientId, u64)>,
    /// Element-wise product of the contributors' ciphertexts (the encrypted sum).
    pub ciphertexts: Vec<Ciphertext>,
    /// The fog worker's signature over [`FogAggregate::transcript`].
    pub signature: Signature,
}

impl FogAggregate {
    /// An aggregate of `contributors` whose encrypted sum is `ciphertexts`, signed by the fog
    /// worker's `key`.
    pub fn sign(
        pk: &PublicKey,
        key: &SigningKey,
        round: RoundId,
        fog: FogId,
        contributors: Vec<(ClientId, u64)>,
        ciphertexts: Vec<Ciphertext>,
    ) -> Self {
        let signature = key.sign(&Self::transcript_for(
            pk,
            round,
            fog,
            &contributors,
            &ciphertexts,
        ));
        FogAggregate {
            round,
            fog,
            contributors,
            ciphertexts,
            signature,
        }
    }

    /// The bytes the fog worker signs.
    pub fn transcript_for(
        pk: &PublicKey,
        round: RoundId,
        fog: FogId,
        contributors: &[(ClientId, u64)],
        ciphertexts: &[Ciphertext],
    ) -> Transcript {
        let mut t = header("fog-aggregate", round, Sender::Fog(fog));
        t.append_u64("contributors", contributors.len() as u64);
        for (c, w) in contributors {
            t.append_u64("client", c.0.into()).append_u64("weight", *w);
        }
        t.append_bytes("ciphertexts", &ciphertexts_digest(pk, ciphertexts));
        t
    }

    /// The transcript of this aggregate.
    pub fn transcript(&self, pk: &PublicKey) -> Transcript {
        Self::transcript_for(
            pk,
            self.round,
            self.fog,
            &self.contributors,
            &self.ciphertexts,
        )
    }

    /// The total weight of the contributors.
    pub fn total_weight(&self) -> u64 {
        self.contributors.iter().map(|(_, w)| w).sum()
    }
}

/// The aggregator's request to the key holders: decrypt the product of these client-signed
/// uploads (DESIGN §6: a key holder decrypts only a product it recomputed from client-signed
/// uploads of at least `min_contributors` distinct clients).
///
/// The request carries the round's signed config and every upload in the sum, not fog
/// aggregates or a declared count: each holder verifies every client's signature, counts the
/// distinct registered clients and multiplies the uploads itself
/// ([`crate::holder::check_request`]), so neither a lying aggregator nor a fog in league with
/// it can get a sum of fewer real updates decrypted. The sum is computed when the request is
/// built or parsed and cannot be set apart from the uploads.
#[derive(Debug, Clone, PartialEq)]
pub struct DecryptionRequest {
    /// The round.
    pub round: RoundId,
    config: RoundConfig,
    config_signature: Signature,
    uploads: Vec<Upload>,
    sum: Vec<Ciphertext>,
    /// The aggregator's signature over [`DecryptionRequest::transcript`].
    pub signature: Signature,
}

impl DecryptionRequest {
    /// A request for the product of `uploads` (made for `config`, which the aggregator signed
    /// with `config_signature`), signed by the aggregator's `key`. Uploads are put in client
    /// order.
    pub fn sign(
        pk: &PublicKey,
        config: RoundConfig,
        config_signature: Signature,
        mut uploads: Vec<Upload>,
        key: &SigningKey,
    ) -> Result<Self, spddl_crypto::Error> {
        uploads.sort_by_key(|u| u.client);
        let round = config.round;
        let signature = key.sign(&Self::transcript_for(pk, round, &config, &uploads));
        Self::from_parts(pk, round, config, config_signature, uploads, signature)
    }

    /// A request from its parts (as received): multiplies the uploads into the sum. Fails
    /// when there is no upload or their lengths differ; signatures are not checked here.
    pub fn from_parts(
        pk: &PublicKey,
        round: RoundId,
        config: RoundConfig,
        config_signature: Signature,
        uploads: Vec<Upload>,
        signature: Signature,
    ) -> Result<Self, spddl_crypto::Error> {
        if uploads.is_empty() {
            return Err(spddl_crypto::Error::Mismatch(
                "a decryption request needs at least one upload".into(),
            ));
        }
        let vectors: Vec<&[Ciphertext]> =
            uploads.iter().map(|u| u.ciphertexts.as_slice()).collect();
        let sum = pk.sum_vectors(&vectors)?;
        Ok(DecryptionRequest {
            round,
            config,
            config_signature,
            uploads,
            sum,
            signature,
        })
    }

    /// The round's config, as the aggregator signed it.
    pub fn config(&self) -> (&RoundConfig, &Signature) {
        (&self.config, &self.config_signature)
    }

    /// The client-signed uploads whose product is to be decrypted.
    pub fn uploads(&self) -> &[Upload] {
        &self.uploads
    }

    /// The encrypted sum `C`: the element-wise product of the uploads.
    pub fn ciphertexts(&self) -> &[Ciphertext] {
        &self.sum
    }

    /// The bytes the aggregator signs: the round, the config's digest and every upload (its
    /// client, weight and ciphertexts digest, in order).
    pub fn transcript_for(
        pk: &PublicKey,
        round: RoundId,
        config: &RoundConfig,
        uploads: &[Upload],
    ) -> Transcript {
        let mut t = header("decryption-request", round, Sender::Aggregator);
        t.append_bytes("config", &config.digest())
            .append_u64("uploads", uploads.len() as u64);
        for u in uploads {
            t.append_u64("upload-round", u.round.0)
                .append_u64("client", u.client.0.into())
                .append_bytes("upload-config", &u.config)
                .append_u64("weight", u.weight)
                .append_bytes("ciphertexts", &ciphertexts_digest(pk, &u.ciphertexts));
        }
        t
    }

    /// The transcript of this request.
    pub fn transcript(&self, pk: &PublicKey) -> Transcript {
        Self::transcript_for(pk, self.round, &self.config, &self.uploads)
    }

    /// The context the holders bind into their proofs for this request.
    pub fn context(&self, pk: &PublicKey) -> Vec<u8> {
        decryption_context(self.round, &ciphertexts_digest(pk, &self.sum))
    }
}

/// A key holder's answer: its decryption share of the requested sum, signed.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareResponse {
    /// The round.
    pub round: RoundId,
    /// The share, with its proof.
    pub share: DecryptionShare,
    /// The holder's signature.
    pub signature: Signature,
}

impl ShareResponse {
    /// The bytes the holder signs: the round, the holder, and a hash of the partial
    /// decryptions and the proof.
    pub fn transcript_for(round: RoundId, share: &DecryptionShare) -> Transcript {
        let mut h = Sha256::new();
        h.update(b"spddl/v1/decryption-share");
        h.update(share.key_id.0);
        for x in share
            .partials
            .iter()
            .chain([&share.proof.a, &share.proof.b, &share.proof.z])
        {
            let bytes = x.to_bytes_be();
            h.update((bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        }
        let digest: [u8; 32] = h.finalize().into();
        let mut t = header("share-response", round, Sender::Holder(share.holder));
        t.append_bytes("share", &digest);
        t
    }

    /// The transcript of this response.
    pub fn transcript(&self) -> Transcript {
        Self::transcript_for(self.round, &self.share)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spddl_crypto::Entropy;
    use spddl_crypto::paillier::Plaintext;
    use spddl_crypto::testing::test_key;

    fn config() -> RoundConfig {
        RoundConfig {
            model_digest: RoundConfig::digest_model(&[0.5, -1.0]),
            ..RoundConfig::example(RoundId(3))
        }
    }

    #[test]
    fn every_config_field_is_signed() {
        let base = config().transcript();
        let changes: [fn(&mut RoundConfig); 15] = [
            |c| c.round = RoundId(4),
            |c| c.num_params += 1,
            |c| c.clip_norm = 5.5,
            |c| c.quant_range = 0.25,
            |c| c.value_bits = 15,
            |c| c.max_contributors += 1,
            |c| c.max_weight += 1,
            |c| c.min_contributors += 1,
            |c| c.local_epochs += 1,
            |c| c.batch_size += 1,
            |c| c.learning_rate = 0.2,
            |c| c.momentum = 0.0,
            |c| c.weight_decay = 1e-4,
            |c| c.proximal_mu = 0.01,
            |c| c.model_digest = RoundConfig::digest_model(&[0.5, -1.5]),
        ];
        for (i, change) in changes.iter().enumerate() {
            let mut c = config();
            change(&mut c);
            assert_ne!(c.transcript(), base, "field change {i} is not covered");
        }
    }

    #[test]
    fn uploads_verify_and_bind_round_client_config_weight_and_ciphertexts() {
        let (pk, _) = test_key(1024, 2, 3, 11);
        let mut rng = Entropy::os();
        let key = SigningKey::generate(&mut rng);
        let cts: Vec<_> = (0..3)
            .map(|m| pk.encrypt(&Plaintext::from_u64(&pk, m).unwrap(), &mut rng))
            .collect();
        let up = Upload::sign(&pk, &key, &config(), ClientId(7), 40, cts.clone());
        assert_eq!(up.round, RoundId(3));
        assert_eq!(up.config, config().digest());
        let vk = key.verifying_key();
        vk.verify(&up.transcript(&pk), &up.signature).unwrap();
        let mut tampered = vec![up.clone(); 5];
        tampered[0].round = RoundId(4);
        tampered[1].client = ClientId(8);
        tampered[2].weight = 41;
        tampered[3].ciphertexts.swap(0, 1);
        tampered[4].config[0] ^= 1;
        for (i, t) in tampered.iter().enumerate() {
            assert!(
                vk.verify(&t.transcript(&pk), &t.signature).is_err(),
                "tampering {i} not detected"
            );
        }
    }

    #[test]
    fn decryption_context_binds_round_and_ciphertexts() {
        let a = decryption_context(RoundId(1), &[0; 32]);
        assert_ne!(a, decryption_context(RoundId(2), &[0; 32]));
        assert_ne!(a, decryption_context(RoundId(1), &[1; 32]));
    }
}
