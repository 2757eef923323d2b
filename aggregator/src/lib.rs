//! Cloud aggregator of SPDDL (DESIGN §2): collects signed fog aggregates, refuses to decrypt
//! fewer than `min_contributors` updates, asks `t` key holders (more only when shares are
//! missing or fail their proofs), combines, decodes, and lets a [`Strategy`] turn the mean
//! update into the next global model.
//!
//! A sans-IO core: a round is [`Collecting`], then [`Decrypting`], then a [`RoundOutcome`];
//! each step consumes the previous state, so a step cannot be skipped or repeated.

mod audit;
mod coordinator;
mod error;
#[cfg(feature = "grpc")]
pub mod grpc;
mod round;
#[cfg(feature = "grpc")]
pub mod store;
mod strategy;

pub use audit::audit;
pub use coordinator::{Completed, Coordinator, Event, PhaseKind, Settings};
pub use error::AggregatorError;
pub use round::{
    Assignment, Collecting, Decrypting, FogLoad, RoundOutcome, assign_by_load, assign_round_robin,
};
pub use strategy::{FedAdam, FedAvg, Strategy, StrategyError};
