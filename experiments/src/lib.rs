//! SPDDL experiments: the in-process simulation driver, scenarios, metrics and benchmark suites.
//!
//! This crate is a placeholder in the workspace layout of `DESIGN.md` §1; its round logic
//! arrives with the training issue. It re-exports nothing yet.
