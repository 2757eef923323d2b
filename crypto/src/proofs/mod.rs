//! Zero-knowledge proofs, one module per proof, fields named after the symbols of `DESIGN.md`.

pub mod decryption_share;

pub use decryption_share::DecryptionProof;
