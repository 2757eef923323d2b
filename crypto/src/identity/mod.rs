//! Ed25519 identities and the transcripts they sign (`DESIGN.md` §5).
//!
//! Every client, fog worker, key holder and the aggregator has a [`SigningKey`]; its
//! [`VerifyingKey`] is its identity. A signature never covers raw protocol bytes, only a
//! [`Transcript`]: domain-separated, versioned bytes naming the message kind, the round, the
//! sender and a hash of the payload.
//!
//! ```
//! use spddl_crypto::identity::{SigningKey, Transcript, verify_batch};
//!
//! let key = SigningKey::generate(&mut spddl_crypto::Entropy::os());
//! let mut upload = Transcript::new("upload");
//! upload
//!     .append_u64("round", 7)
//!     .append_bytes("sender", b"client-3")
//!     .append_message("payload", b"encrypted update");
//! let signature = key.sign(&upload);
//!
//! let public = key.verifying_key();
//! public.verify(&upload, &signature)?;
//! verify_batch(&[(&public, &upload, &signature)])?;
//! # Ok::<(), spddl_crypto::identity::SignatureError>(())
//! ```

mod batch;
mod error;
mod signature;
mod signing;
mod transcript;
mod verifying;

pub use batch::verify_batch;
pub use error::SignatureError;
pub use signature::Signature;
pub use signing::SigningKey;
pub use transcript::{DOMAIN_TAG, Transcript};
pub use verifying::VerifyingKey;
