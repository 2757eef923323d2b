//! Models and local training: softmax regression and ReLU MLPs in ndarray, trained with
//! mini-batch SGD (momentum, weight decay, optional FedProx term).
//!
//! The federated round sees a model only as one flat vector of `f32` ([`Model::params`], in the
//! order documented on [`Model`]): the client trains from the global parameters, forms
//! `Δ = w_local − w_global` ([`update_delta`]) and clips it ([`clip_l2`]) before the crypto
//! layer quantizes, packs and encrypts it (`DESIGN.md` §2, §4).
//!
//! ```
//! use ndarray::array;
//! use rand::{SeedableRng, rngs::StdRng};
//! use spddl_client_trainer::model::{
//!     ModelSpec, SgdConfig, TrainConfig, clip_l2, train_local, update_delta,
//! };
//!
//! let spec = ModelSpec::Mlp { inputs: 2, hidden: vec![8], classes: 2 };
//! let mut model = spec.init(42)?;
//! let global = model.params();
//!
//! let x = array![[0.0f32, 1.0], [1.0, 0.0], [0.1, 0.9], [0.9, 0.2]];
//! let y = [0u8, 1, 0, 1];
//! let config = TrainConfig {
//!     epochs: 5,
//!     batch_size: 2,
//!     sgd: SgdConfig { lr: 0.1, momentum: 0.9, weight_decay: 0.0 },
//!     proximal_mu: None,
//! };
//! let report = train_local(&mut model, x.view(), &y, &config, &mut StdRng::seed_from_u64(1))?;
//! assert_eq!((report.samples, report.steps), (4, 10));
//!
//! let mut delta = update_delta(&model.params(), &global)?;
//! let norm_before = clip_l2(&mut delta, 1.0)?;
//! assert!(norm_before > 0.0);
//! # Ok::<(), spddl_client_trainer::model::ModelError>(())
//! ```

mod error;
mod loss;
mod network;
mod optimizer;
mod spec;
mod train;

pub use error::ModelError;
pub use network::{Metrics, Model};
pub use optimizer::{Sgd, SgdConfig};
pub use spec::ModelSpec;
pub use train::{TrainConfig, TrainReport, clip_l2, train_local, update_delta};

/// Element type of the forward and backward passes: `f32` for training, `f64` in the gradient
/// checks, which need the extra precision for finite differences.
trait Float: ndarray::NdFloat + From<f32> {}

impl<T: ndarray::NdFloat + From<f32>> Float for T {}
