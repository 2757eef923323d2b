//! The SPDDL protocol: message types, ids, round parameters and the canonical bytes that get signed.
//!
//! This crate is a placeholder in the workspace layout of `DESIGN.md` §1; its round logic
//! arrives with the training issue. It re-exports nothing yet.
