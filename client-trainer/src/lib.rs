//! Client side of SPDDL: local training in ndarray, datasets, and the client's round logic.
//!
//! This crate is a placeholder in the workspace layout of `DESIGN.md` §1; its round logic
//! arrives with the training issue. It re-exports nothing yet.
