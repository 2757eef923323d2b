//! What a run measures, per round.

use serde::{Deserialize, Serialize};

/// Whether a run encrypts or not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mode {
    /// The full protocol: encrypt, add, threshold-decrypt.
    Secure,
    /// The same training with the same quantization, without encryption: the baseline.
    Plaintext,
}

impl Mode {
    /// `"secure"` or `"plaintext"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Mode::Secure => "secure",
            Mode::Plaintext => "plaintext",
        }
    }
}

/// One row of `metrics.csv`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RoundMetrics {
    /// Round number, from 0.
    pub round: u64,
    /// Test accuracy of the new global model.
    pub accuracy: f64,
    /// Test loss of the new global model.
    pub loss: f64,
    /// Clients whose updates are in the aggregate.
    pub contributors: usize,
    /// Clients that dropped before uploading, by id.
    pub dropped: Vec<u32>,
    /// Key holders that were asked and did not answer.
    pub silent_holders: Vec<u16>,
    /// Key holders whose shares failed their proofs.
    pub blamed_holders: Vec<u16>,
    /// Seconds of local training (summed over clients).
    pub train_s: f64,
    /// Seconds of encoding and encryption (summed over clients).
    pub encrypt_s: f64,
    /// Seconds of fog verification and homomorphic addition.
    pub fog_add_s: f64,
    /// Seconds of partial decryption with proofs (summed over holders).
    pub partial_decrypt_s: f64,
    /// Seconds of share verification, combining and decoding.
    pub combine_s: f64,
    /// Wall-clock seconds of the round.
    pub wall_s: f64,
    /// Wall-clock seconds of each stage in this process (the per-party sums above add up
    /// work done in parallel): training, encryption, partial decryption.
    pub train_wall_s: f64,
    /// See [`RoundMetrics::train_wall_s`].
    pub encrypt_wall_s: f64,
    /// See [`RoundMetrics::train_wall_s`].
    pub decrypt_wall_s: f64,
    /// Ciphertexts in one upload (`⌈m/S⌉`).
    pub ciphertexts_per_upload: usize,
    /// Decryption shares computed (holders that answered, honest or not).
    pub shares_computed: usize,
    /// Bytes of ciphertext uploaded by clients.
    pub bytes_uploaded: u64,
    /// SHA-256 (hex) of the new global model ([`spddl_proto::RoundConfig::digest_model`]):
    /// equal digests mean bit-identical models, e.g. a deployment against the simulation.
    #[serde(default)]
    pub model_digest: String,
}
