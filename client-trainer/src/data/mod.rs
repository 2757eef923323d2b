//! Datasets and their partitioning among federated clients.
//!
//! - [`Dataset`]: features in `[0, 1]` as an `ndarray` matrix (one row per sample) and labels.
//! - [`digits`]: the UCI 8×8 handwritten digits, embedded in the binary (the default dataset;
//!   Alpaydin & Kaynak 1998, UCI Machine Learning Repository, CC BY 4.0, as distributed with
//!   scikit-learn).
//! - [`mnist`], [`fashion_mnist`]: IDX files from a directory, as fetched by
//!   `scripts/fetch-datasets.sh` into `data/mnist/` and `data/fashion-mnist/`.
//! - [`iid`], [`dirichlet`], [`shards`]: seeded partitioners returning a [`Partition`].
//!
//! ```
//! use spddl_client_trainer::data::{digits, dirichlet};
//!
//! let (train, test) = digits()?.train_test_split(0.2, 42)?;
//! let partition = dirichlet(train.labels(), 10, 0.5, 42)?;
//! let client_data: Vec<_> = partition.clients().iter().map(|c| train.subset(c)).collect();
//! assert_eq!(client_data.iter().map(|d| d.len()).sum::<usize>(), train.len());
//! assert_eq!(train.len() + test.len(), 1797);
//! # Ok::<(), spddl_client_trainer::data::DataError>(())
//! ```

mod dataset;
mod digits;
mod error;
mod idx;
mod partition;

pub use dataset::Dataset;
pub use digits::digits;
pub use error::DataError;
pub use idx::{fashion_mnist, load_idx, mnist};
pub use partition::{Partition, dirichlet, iid, shards};
