//! Fog worker of SPDDL: verifies uploads, adds ciphertexts homomorphically, forwards one signed aggregate.
//!
//! This crate is a placeholder in the workspace layout of `DESIGN.md` §1; its round logic
//! arrives with the training issue. It re-exports nothing yet.
