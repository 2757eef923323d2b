//! The SPDDL protocol (`DESIGN.md` §2, §5): ids, round parameters, the messages the roles
//! exchange, and the canonical, domain-separated bytes each message's signature covers.
//!
//! Signatures never cover serialized wire bytes (protobuf is not canonical): every message
//! builds an [`spddl_crypto::identity::Transcript`] of its kind, the protocol version, the
//! round, the sender and a hash of its payload, and that is what gets signed and verified.
//! Messages are plain data; the role crates' sans-IO cores produce and consume them, and the
//! simulation and the gRPC services only move them.

mod holder;
mod ids;
mod messages;
mod registry;

pub use holder::{HolderError, answer_request, check_request, share_of_checked};
pub use ids::{ClientId, FogId, RoundId};
pub use messages::{
    DecryptionRequest, FogAggregate, PROTOCOL_VERSION, RoundConfig, ShareResponse, Upload,
    ciphertexts_digest, decryption_context,
};
pub use registry::{Registry, Sender};

#[cfg(feature = "grpc")]
pub mod state_file;
#[cfg(feature = "grpc")]
pub mod transport;
#[cfg(feature = "grpc")]
pub mod wire;
