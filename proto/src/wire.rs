//! The gRPC wire (`spddl/v1/*.proto`) and the one place where wire data becomes domain data.
//!
//! Every `*_from_wire` function validates before any core sees a value: lengths against the
//! limits, every big integer at its fixed width and inside its group (ciphertexts in
//! `Z*_{n²}`), ids in range, signatures 64 bytes. An error names the field and why.
//! Signatures are *not* checked here: that is the receiving core's job, against its registry.

use num_bigint::BigUint;
use spddl_crypto::identity::Signature;
use spddl_crypto::paillier::{Ciphertext, DecryptionShare, KeyId, PublicKey};
use spddl_crypto::proofs::DecryptionProof;

use crate::{
    ClientId, DecryptionRequest, FogAggregate, FogId, RoundConfig, RoundId, ShareResponse, Upload,
};

/// Code generated from `spddl/v1/*.proto` by `build.rs` (protox + tonic-prost-build).
#[allow(missing_docs, unreachable_pub, clippy::all, clippy::pedantic)]
pub mod pb {
    tonic::include_proto!("spddl.v1");
}

/// The largest gRPC message any SPDDL service accepts or sends: 64 MiB, room for a 4096-bit
/// key's 16,000 ciphertexts (a 1.5-million-parameter model) in one upload.
pub const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// The most ciphertexts (or partial decryptions) one message may carry.
pub const MAX_CIPHERTEXTS: usize = 1 << 17;

/// The most contributors one fog aggregate may list.
pub const MAX_CONTRIBUTORS: usize = 1 << 16;

/// Why wire data was refused.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum WireError {
    /// A required field is absent.
    #[error("{message}: field `{field}` is missing")]
    Missing {
        /// The message kind.
        message: &'static str,
        /// The field.
        field: &'static str,
    },
    /// A field holds too many items.
    #[error("{message}: field `{field}` holds {got} items, more than {max}")]
    TooMany {
        /// The message kind.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// Items sent.
        got: usize,
        /// The limit.
        max: usize,
    },
    /// A field's value is invalid.
    #[error("{message}: field `{field}`: {reason}")]
    Invalid {
        /// The message kind.
        message: &'static str,
        /// The field.
        field: &'static str,
        /// Why.
        reason: String,
    },
}

impl WireError {
    fn invalid(message: &'static str, field: &'static str, reason: impl ToString) -> Self {
        WireError::Invalid {
            message,
            field,
            reason: reason.to_string(),
        }
    }
}

#[cfg(feature = "grpc")]
impl From<WireError> for tonic::Status {
    fn from(e: WireError) -> Self {
        tonic::Status::invalid_argument(e.to_string())
    }
}

fn signature(message: &'static str, bytes: &[u8]) -> Result<Signature, WireError> {
    let arr: &[u8; Signature::LENGTH] = bytes.try_into().map_err(|_| {
        WireError::invalid(
            message,
            "signature",
            format!("{} bytes, expected {}", bytes.len(), Signature::LENGTH),
        )
    })?;
    Ok(Signature::from_bytes(arr))
}

fn ciphertexts(
    pk: &PublicKey,
    message: &'static str,
    field: &'static str,
    items: &[Vec<u8>],
) -> Result<Vec<Ciphertext>, WireError> {
    if items.len() > MAX_CIPHERTEXTS {
        return Err(WireError::TooMany {
            message,
            field,
            got: items.len(),
            max: MAX_CIPHERTEXTS,
        });
    }
    if items.is_empty() {
        return Err(WireError::invalid(message, field, "no ciphertexts"));
    }
    items
        .iter()
        .enumerate()
        .map(|(i, b)| {
            Ciphertext::from_bytes(pk, b)
                .map_err(|e| WireError::invalid(message, field, format!("item {i}: {e}")))
        })
        .collect()
}

/// A big integer in `[1, n²)` at the fixed width of `n²` (partial decryptions, proof commitments).
fn group_element(
    pk: &PublicKey,
    message: &'static str,
    field: &'static str,
    bytes: &[u8],
) -> Result<BigUint, WireError> {
    let width = pk.n_squared().bits().div_ceil(8) as usize;
    if bytes.len() != width {
        return Err(WireError::invalid(
            message,
            field,
            format!("{} bytes, expected {width}", bytes.len()),
        ));
    }
    let x = BigUint::from_bytes_be(bytes);
    if x.bits() == 0 || &x >= pk.n_squared() {
        return Err(WireError::invalid(message, field, "not in [1, n²)"));
    }
    Ok(x)
}

fn fixed_width(pk: &PublicKey, x: &BigUint) -> Vec<u8> {
    let width = pk.n_squared().bits().div_ceil(8) as usize;
    let raw = x.to_bytes_be();
    let mut out = vec![0u8; width.saturating_sub(raw.len())];
    out.extend_from_slice(&raw);
    out
}

/// A round config and the aggregator's signature on its transcript, for the wire.
pub fn config_to_wire(c: &RoundConfig, signature: &Signature) -> pb::RoundConfig {
    pb::RoundConfig {
        round: c.round.0,
        num_params: c.num_params,
        clip_norm: c.clip_norm,
        quant_range: c.quant_range,
        value_bits: c.value_bits,
        max_contributors: c.max_contributors,
        max_weight: c.max_weight,
        min_contributors: c.min_contributors,
        local_epochs: c.local_epochs,
        batch_size: c.batch_size,
        learning_rate: c.learning_rate,
        momentum: c.momentum,
        weight_decay: c.weight_decay,
        proximal_mu: c.proximal_mu,
        model_digest: c.model_digest.to_vec(),
        signature: signature.to_bytes().to_vec(),
    }
}

/// Parses a round config and its signature (not yet verified).
pub fn config_from_wire(w: &pb::RoundConfig) -> Result<(RoundConfig, Signature), WireError> {
    const M: &str = "RoundConfig";
    let finite = |field, x: f64| {
        if x.is_finite() && x >= 0.0 {
            Ok(x)
        } else {
            Err(WireError::invalid(
                M,
                field,
                "not a finite non-negative number",
            ))
        }
    };
    if w.value_bits == 0 || w.value_bits > 52 {
        return Err(WireError::invalid(M, "value_bits", "outside 1..=52"));
    }
    if w.max_weight == 0 {
        return Err(WireError::invalid(M, "max_weight", "zero"));
    }
    if w.batch_size == 0 {
        return Err(WireError::invalid(M, "batch_size", "zero"));
    }
    let model_digest: [u8; 32] = w
        .model_digest
        .as_slice()
        .try_into()
        .map_err(|_| WireError::invalid(M, "model_digest", "not 32 bytes"))?;
    let config = RoundConfig {
        round: RoundId(w.round),
        num_params: w.num_params,
        clip_norm: finite("clip_norm", w.clip_norm)?,
        quant_range: finite("quant_range", w.quant_range)?,
        value_bits: w.value_bits,
        max_contributors: w.max_contributors,
        max_weight: w.max_weight,
        min_contributors: w.min_contributors,
        local_epochs: w.local_epochs,
        batch_size: w.batch_size,
        learning_rate: finite("learning_rate", w.learning_rate)?,
        momentum: finite("momentum", w.momentum)?,
        weight_decay: finite("weight_decay", w.weight_decay)?,
        proximal_mu: finite("proximal_mu", w.proximal_mu)?,
        model_digest,
    };
    Ok((config, signature(M, &w.signature)?))
}

/// An upload for the wire.
pub fn upload_to_wire(pk: &PublicKey, u: &Upload) -> pb::Upload {
    pb::Upload {
        round: u.round.0,
        client: u.client.0,
        config: u.config.to_vec(),
        weight: u.weight,
        ciphertexts: u.ciphertexts.iter().map(|c| c.to_bytes(pk)).collect(),
        signature: u.signature.to_bytes().to_vec(),
    }
}

/// Parses an upload: every ciphertext at `n²`'s width and in `Z*_{n²}`.
pub fn upload_from_wire(pk: &PublicKey, w: &pb::Upload) -> Result<Upload, WireError> {
    const M: &str = "Upload";
    Ok(Upload {
        round: RoundId(w.round),
        client: ClientId(w.client),
        config: w
            .config
            .as_slice()
            .try_into()
            .map_err(|_| WireError::invalid(M, "config", "not 32 bytes"))?,
        weight: w.weight,
        ciphertexts: ciphertexts(pk, M, "ciphertexts", &w.ciphertexts)?,
        signature: signature(M, &w.signature)?,
    })
}

/// A fog aggregate for the wire.
pub fn aggregate_to_wire(pk: &PublicKey, a: &FogAggregate) -> pb::FogAggregate {
    pb::FogAggregate {
        round: a.round.0,
        fog: a.fog.0,
        contributors: a
            .contributors
            .iter()
            .map(|(c, w)| pb::Contributor {
                client: c.0,
                weight: *w,
            })
            .collect(),
        ciphertexts: a.ciphertexts.iter().map(|c| c.to_bytes(pk)).collect(),
        signature: a.signature.to_bytes().to_vec(),
    }
}

/// Parses a fog aggregate: contributors in increasing id order without repeats.
pub fn aggregate_from_wire(
    pk: &PublicKey,
    w: &pb::FogAggregate,
) -> Result<FogAggregate, WireError> {
    const M: &str = "FogAggregate";
    if w.contributors.len() > MAX_CONTRIBUTORS {
        return Err(WireError::TooMany {
            message: M,
            field: "contributors",
            got: w.contributors.len(),
            max: MAX_CONTRIBUTORS,
        });
    }
    if w.contributors.is_empty() {
        return Err(WireError::invalid(M, "contributors", "empty"));
    }
    if w.contributors
        .windows(2)
        .any(|p| p[0].client >= p[1].client)
    {
        return Err(WireError::invalid(
            M,
            "contributors",
            "not in strictly increasing client order",
        ));
    }
    Ok(FogAggregate {
        round: RoundId(w.round),
        fog: FogId(w.fog),
        contributors: w
            .contributors
            .iter()
            .map(|c| (ClientId(c.client), c.weight))
            .collect(),
        ciphertexts: ciphertexts(pk, M, "ciphertexts", &w.ciphertexts)?,
        signature: signature(M, &w.signature)?,
    })
}

/// A whole decryption request for the wire (every upload; the aggregator serves them in
/// pages, see [`uploads_per_page`]).
pub fn request_to_wire(pk: &PublicKey, r: &DecryptionRequest) -> pb::DecryptionRequest {
    let (config, config_signature) = r.config();
    pb::DecryptionRequest {
        round: r.round.0,
        config: Some(config_to_wire(config, config_signature)),
        uploads: r.uploads().iter().map(|u| upload_to_wire(pk, u)).collect(),
        total_uploads: u32::try_from(r.uploads().len()).unwrap_or(u32::MAX),
        signature: r.signature.to_bytes().to_vec(),
    }
}

/// How many uploads of `ciphertexts` ciphertexts each one page of a request may carry: a
/// quarter of [`MAX_MESSAGE_BYTES`], at least one.
pub fn uploads_per_page(pk: &PublicKey, ciphertexts: usize) -> usize {
    let width = pk.n_squared().bits().div_ceil(8) as usize;
    let upload_bytes = ciphertexts.max(1) * (width + 8) + 256;
    ((MAX_MESSAGE_BYTES / 4) / upload_bytes).max(1)
}

/// Parses a whole decryption request (every page gathered into `uploads`): its config, every
/// upload as [`upload_from_wire`] parses one, at least one, all of the same length, as many as
/// `total_uploads` says; the sum is recomputed from them.
pub fn request_from_wire(
    pk: &PublicKey,
    w: &pb::DecryptionRequest,
) -> Result<DecryptionRequest, WireError> {
    const M: &str = "DecryptionRequest";
    if w.uploads.len() > MAX_CONTRIBUTORS {
        return Err(WireError::TooMany {
            message: M,
            field: "uploads",
            got: w.uploads.len(),
            max: MAX_CONTRIBUTORS,
        });
    }
    if w.uploads.len() != w.total_uploads as usize {
        return Err(WireError::invalid(
            M,
            "uploads",
            format!(
                "{} uploads, total_uploads says {}",
                w.uploads.len(),
                w.total_uploads
            ),
        ));
    }
    let (config, config_signature) =
        config_from_wire(w.config.as_ref().ok_or(WireError::Missing {
            message: M,
            field: "config",
        })?)?;
    let uploads = w
        .uploads
        .iter()
        .enumerate()
        .map(|(i, u)| {
            upload_from_wire(pk, u)
                .map_err(|e| WireError::invalid(M, "uploads", format!("item {i}: {e}")))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let signature = signature(M, &w.signature)?;
    DecryptionRequest::from_parts(
        pk,
        RoundId(w.round),
        config,
        config_signature,
        uploads,
        signature,
    )
    .map_err(|e| WireError::invalid(M, "uploads", e))
}

/// A share response for the wire.
pub fn share_to_wire(pk: &PublicKey, s: &ShareResponse) -> pb::ShareResponse {
    pb::ShareResponse {
        round: s.round.0,
        holder: s.share.holder.get().into(),
        key_id: s.share.key_id.0.to_vec(),
        partials: s
            .share
            .partials
            .iter()
            .map(|x| fixed_width(pk, x))
            .collect(),
        proof_a: fixed_width(pk, &s.share.proof.a),
        proof_b: fixed_width(pk, &s.share.proof.b),
        proof_z: s.share.proof.z.to_bytes_be(),
        signature: s.signature.to_bytes().to_vec(),
    }
}

/// Parses a share response: holder index in `1..=ℓ`, partials and commitments in `[1, n²)`,
/// `z` no longer than twice `n²` (the proof's own bound is checked when it is verified).
pub fn share_from_wire(pk: &PublicKey, w: &pb::ShareResponse) -> Result<ShareResponse, WireError> {
    const M: &str = "ShareResponse";
    let holder = u64::from(w.holder);
    let holder = pk
        .share_index(holder)
        .map_err(|e| WireError::invalid(M, "holder", e))?;
    let key_id: [u8; 32] = w
        .key_id
        .as_slice()
        .try_into()
        .map_err(|_| WireError::invalid(M, "key_id", "not 32 bytes"))?;
    if w.partials.len() > MAX_CIPHERTEXTS {
        return Err(WireError::TooMany {
            message: M,
            field: "partials",
            got: w.partials.len(),
            max: MAX_CIPHERTEXTS,
        });
    }
    let partials = w
        .partials
        .iter()
        .map(|b| group_element(pk, M, "partials", b))
        .collect::<Result<_, _>>()?;
    let width = pk.n_squared().bits().div_ceil(8) as usize;
    if w.proof_z.len() > 2 * width {
        return Err(WireError::invalid(M, "proof_z", "too long"));
    }
    Ok(ShareResponse {
        round: RoundId(w.round),
        share: DecryptionShare {
            holder,
            key_id: KeyId(key_id),
            partials,
            proof: DecryptionProof {
                a: group_element(pk, M, "proof_a", &w.proof_a)?,
                b: group_element(pk, M, "proof_b", &w.proof_b)?,
                z: BigUint::from_bytes_be(&w.proof_z),
            },
        },
        signature: signature(M, &w.signature)?,
    })
}
