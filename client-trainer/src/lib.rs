//! Client side of SPDDL: local training in ndarray, datasets and partitioning, and the
//! client's round logic (train → encode → encrypt → sign).

pub mod client;
pub mod data;
#[cfg(feature = "grpc")]
pub mod decryption_log;
#[cfg(feature = "grpc")]
pub mod grpc;
pub mod model;
