//! SPDDL experiments: scenarios, the in-process simulation driver that runs the roles' sans-IO
//! cores, and the results it writes (`metrics.csv`, `summary.json`, plots).

#[cfg(feature = "grpc")]
pub mod deploy;
pub mod driver;
pub mod keycache;
#[cfg(feature = "grpc")]
pub mod load;
pub mod metrics;
pub mod plots;
pub mod results;
pub mod scenario;
pub mod validation;
