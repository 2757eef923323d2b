//! Cloud aggregator of SPDDL: round orchestration, combining fog aggregates and decryption shares, strategies.
//!
//! This crate is a placeholder in the workspace layout of `DESIGN.md` §1; its round logic
//! arrives with the training issue. It re-exports nothing yet.
