//! The key-holder step, shared by every role that may hold a key share (clients by default,
//! fog workers, or dedicated holders): check the aggregator's request, decrypt partially with
//! a proof, sign the answer.

use rand::Rng;
use spddl_crypto::identity::{SigningKey, VerifyingKey};
use spddl_crypto::paillier::{KeyShare, PublicKey};

use crate::{DecryptionRequest, ShareResponse};

/// Why a key holder refused a decryption request.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HolderError {
    /// The request is not signed by the registered aggregator.
    #[error("decryption request for {round} is not signed by the aggregator")]
    BadRequestSignature {
        /// The round it claims.
        round: crate::RoundId,
    },
    /// The request's sum holds fewer updates than the holder's policy allows: decrypting it
    /// could reveal individual updates.
    #[error("decryption request for {round} covers {got} updates, fewer than {min}: refused")]
    TooFewContributors {
        /// The round it claims.
        round: crate::RoundId,
        /// The contributors it claims.
        got: u32,
        /// The holder's minimum.
        min: u32,
    },
    /// The partial decryption itself failed (share of another key, empty request).
    #[error(transparent)]
    Crypto(#[from] spddl_crypto::Error),
}

/// Answers a decryption request: checks the aggregator's signature and that the sum holds at
/// least `min_contributors` updates, then returns this holder's signed decryption share,
/// bound to the request's round and ciphertexts.
pub fn answer_request<R: Rng + ?Sized>(
    pk: &PublicKey,
    share: &KeyShare,
    identity: &SigningKey,
    aggregator: &VerifyingKey,
    min_contributors: u32,
    request: &DecryptionRequest,
    rng: &mut R,
) -> Result<ShareResponse, HolderError> {
    let round = request.round;
    aggregator
        .verify(&request.transcript(pk), &request.signature)
        .map_err(|_| HolderError::BadRequestSignature { round })?;
    if request.contributors < min_contributors {
        return Err(HolderError::TooFewContributors {
            round,
            got: request.contributors,
            min: min_contributors,
        });
    }
    let context = request.context(pk);
    let decryption = share.decrypt(pk, &request.ciphertexts, &context, rng)?;
    let signature = identity.sign(&ShareResponse::transcript_for(round, &decryption));
    Ok(ShareResponse {
        round,
        share: decryption,
        signature,
    })
}
