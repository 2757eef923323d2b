//! The aggregator's errors; each names the fog worker, client or key holder to blame.

use spddl_crypto::paillier::ShareIndex;
use spddl_proto::{ClientId, FogId, RoundId};

/// Why the aggregator refused a message or could not finish a round.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum AggregatorError {
    /// A fog worker that is not registered.
    #[error("{fog}: unknown fog worker")]
    UnknownFog {
        /// The claimed sender.
        fog: FogId,
    },
    /// A message for another round.
    #[error("{sender}: message is for {got}, this is {expected}")]
    WrongRound {
        /// Who sent it.
        sender: String,
        /// Its round.
        got: RoundId,
        /// The round in progress.
        expected: RoundId,
    },
    /// A fog aggregate whose signature does not verify.
    #[error("{fog}: signature on its aggregate does not verify")]
    BadFogSignature {
        /// The sender.
        fog: FogId,
    },
    /// An aggregate holding clients already counted in this round (a replayed aggregate, or
    /// a client that uploaded through two fog workers). Nothing of it is kept; the fog may
    /// resubmit without those clients.
    #[error("{fog}: aggregate holds clients already counted in this round: {clients:?}")]
    AlreadyCounted {
        /// The sender.
        fog: FogId,
        /// The clients counted before.
        clients: Vec<ClientId>,
    },
    /// A fog aggregate outside the round's collection (late, or before the round opened).
    #[error("{sender}: {round} is not collecting updates now")]
    NotCollecting {
        /// The sender.
        sender: String,
        /// The current round.
        round: RoundId,
    },
    /// A share sent when no decryption is under way.
    #[error("key holder {holder}: {round} is not decrypting now")]
    NotDecrypting {
        /// The holder.
        holder: ShareIndex,
        /// The current round.
        round: RoundId,
    },
    /// A fog aggregate claiming a client that may not upload through that fog this round.
    #[error("{fog}: claims {client}, which was not assigned to it")]
    ClientNotAssigned {
        /// The fog worker.
        fog: FogId,
        /// The client.
        client: ClientId,
    },
    /// A fog aggregate with the wrong number of ciphertexts.
    #[error("{fog}: {got} ciphertexts, expected {expected}")]
    WrongLength {
        /// The fog worker.
        fog: FogId,
        /// Received.
        got: usize,
        /// Expected.
        expected: usize,
    },
    /// Fewer contributors than the round's minimum: the sum is not decrypted.
    #[error("only {got} contributors, the round needs at least {min}: not decrypting")]
    TooFewContributors {
        /// Contributors collected.
        got: usize,
        /// The minimum.
        min: u32,
    },
    /// More updates than the packing's head-room; decoding could overflow.
    #[error("{got} contributors exceed the packing head-room for {max}")]
    TooManyContributors {
        /// Updates in the sum.
        got: usize,
        /// `max_contributors` of the round.
        max: u32,
    },
    /// A fog worker's aggregate does not match the signed uploads it holds for it: it was
    /// altered (a ciphertext added twice, a contributor listed without an upload, …).
    #[error("{fog}: audit failed: {reason}")]
    AuditFailed {
        /// The fog worker to blame.
        fog: FogId,
        /// What did not match.
        reason: String,
    },
    /// A share response from a holder that is not registered.
    #[error("key holder {holder}: unknown")]
    UnknownHolder {
        /// The claimed sender.
        holder: ShareIndex,
    },
    /// A share response whose signature does not verify.
    #[error("key holder {holder}: signature does not verify")]
    BadHolderSignature {
        /// The sender.
        holder: ShareIndex,
    },
    /// A decryption share that failed its proof (or was malformed).
    #[error("key holder {holder}: {reason}")]
    BadShare {
        /// The holder blamed.
        holder: ShareIndex,
        /// Why.
        reason: String,
    },
    /// Every holder has been asked and fewer than `t` valid shares came back.
    #[error(
        "only {valid} valid decryption shares, {threshold} needed; silent key holders (down, \
         or refusing: their logs say why): {}; blamed: {}",
        holder_list(.silent),
        holder_list(.blamed)
    )]
    NotEnoughShares {
        /// Valid shares.
        valid: usize,
        /// `t`.
        threshold: u16,
        /// Holders that did not answer.
        silent: Vec<ShareIndex>,
        /// Holders whose shares were refused.
        blamed: Vec<ShareIndex>,
    },
    /// The decrypted sum does not decode: some client's slots were out of range (nothing yet
    /// proves they are in range, so nobody can be blamed). The round ends without an update.
    #[error(
        "{round}: the decrypted sum does not decode, some contribution was out of range: {source}"
    )]
    Undecodable {
        /// The round.
        round: RoundId,
        /// Which plaintext or slots failed.
        source: spddl_crypto::encoding::EncodingError,
    },
    /// A cryptographic or encoding failure while combining or decoding.
    #[error("combining the shares failed: {0}")]
    Crypto(#[from] spddl_crypto::Error),
}

/// `3, 4, 5`, or `none`.
fn holder_list(holders: &[ShareIndex]) -> String {
    if holders.is_empty() {
        return "none".into();
    }
    holders
        .iter()
        .map(|h| h.to_string())
        .collect::<Vec<_>>()
        .join(", ")
}
