//! Local training of one client (E epochs of mini-batch SGD, optionally FedProx) and the update
//! `Δ` it sends.

use ndarray::{ArrayView2, Axis};
use rand::Rng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use super::{Model, ModelError, Sgd, SgdConfig};

/// Settings of [`train_local`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Local epochs `E` (at least 1).
    pub epochs: usize,
    /// Mini-batch size `B` (at least 1); the last batch of an epoch may be smaller.
    pub batch_size: usize,
    /// Optimizer settings; the optimizer state starts fresh at every call.
    pub sgd: SgdConfig,
    /// FedProx coefficient `μ ≥ 0` (Li et al., 2020), or `None` for plain FedAvg training.
    pub proximal_mu: Option<f32>,
}

impl TrainConfig {
    /// Refuses zero epochs or batch size, bad optimizer settings, a negative or non-finite `μ`,
    /// and a `μ` so large that SGD diverges on the proximal term alone
    /// (`η·(λ + μ) ≥ 2(1 + m)`).
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.epochs == 0 {
            return Err(ModelError::InvalidConfig("epochs must be at least 1"));
        }
        if self.batch_size == 0 {
            return Err(ModelError::InvalidConfig("batch size must be at least 1"));
        }
        self.sgd.validate()?;
        if let Some(mu) = self.proximal_mu {
            if !(mu.is_finite() && mu >= 0.0) {
                return Err(ModelError::InvalidConfig(
                    "proximal μ must be non-negative and finite",
                ));
            }
            self.sgd.check_stable(self.sgd.weight_decay + mu)?;
        }
        Ok(())
    }
}

/// What a local training run did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrainReport {
    /// Mean cross-entropy over the samples of the last epoch, each measured on its mini-batch
    /// just before that batch's step (without the weight-decay and proximal terms).
    pub loss: f32,
    /// Number of local samples `n_k` (the client's weight in FedAvg).
    pub samples: usize,
    /// Number of optimizer steps taken: `E · ⌈n_k / B⌉`.
    pub steps: usize,
}

/// Trains `model` on the local set `(x, y)`: `E` epochs, each over the samples shuffled by `rng`
/// in mini-batches of `B`, one SGD step per batch on the mean cross-entropy of the batch.
///
/// With `proximal_mu = Some(μ)` the local objective is FedProx's
/// `L(w) + (μ/2)·‖w − w_global‖²`, where `w_global` is the model's parameters when the call
/// starts (the global model of the round). The same inputs and `rng` state give bit-identical
/// parameters. A diverged run leaves NaN in the parameters and the report;
/// [`clip_l2`] refuses the resulting update.
pub fn train_local<R: Rng + ?Sized>(
    model: &mut Model,
    x: ArrayView2<'_, f32>,
    y: &[u8],
    config: &TrainConfig,
    rng: &mut R,
) -> Result<TrainReport, ModelError> {
    config.validate()?;
    model.check_batch(x, y)?;
    let w_global = config.proximal_mu.map(|mu| (mu, model.params()));
    let mut sgd = Sgd::new(config.sgd, model.num_params())?;
    let mut grad = vec![0.0; model.num_params()];
    let mut order: Vec<usize> = (0..y.len()).collect();
    let mut labels = Vec::with_capacity(config.batch_size);
    let (mut steps, mut epoch_loss) = (0, 0.0f64);
    for _ in 0..config.epochs {
        order.shuffle(rng);
        epoch_loss = 0.0;
        for batch in order.chunks(config.batch_size) {
            let features = x.select(Axis(0), batch);
            labels.clear();
            labels.extend(batch.iter().map(|&i| y[i]));
            let loss = model.loss_and_grad_unchecked(features.view(), &labels, &mut grad);
            if let Some((mu, w_global)) = &w_global {
                // ∇ (μ/2)·‖w − w_global‖² = μ·(w − w_global)
                for ((g, &w), &w0) in grad.iter_mut().zip(model.params_slice()).zip(w_global) {
                    *g += mu * (w - w0);
                }
            }
            sgd.step(model.params_mut(), &grad)?;
            epoch_loss += f64::from(loss) * batch.len() as f64;
            steps += 1;
        }
    }
    Ok(TrainReport {
        loss: (epoch_loss / y.len() as f64) as f32,
        samples: y.len(),
        steps,
    })
}

/// The update `Δ = w_local − w_global` a client sends, in the parameter order of [`Model`].
pub fn update_delta(local: &[f32], global: &[f32]) -> Result<Vec<f32>, ModelError> {
    if local.len() != global.len() {
        return Err(ModelError::ParamLength {
            expected: global.len(),
            got: local.len(),
        });
    }
    Ok(local.iter().zip(global).map(|(l, g)| l - g).collect())
}

/// Scales `delta` in place to L2 norm at most `max_norm` (`Δ ← Δ · min(1, C / ‖Δ‖₂)`, keeping
/// its direction) and returns its norm before clipping.
///
/// The client clips `Δ` before quantization (`DESIGN.md` §4): it bounds any one client's
/// influence on the aggregate, and since `|Δ_i| ≤ ‖Δ‖₂ ≤ C`, a quantizer range `r ≥ C` never
/// has to clip a coordinate. The norm is computed in `f64`; after scaling it is `C` up to `f32`
/// rounding (a relative 1e-6 or so). Refuses a `max_norm` that is not positive and finite, and a
/// `delta` with NaN or infinity (a diverged training run), leaving it unchanged.
pub fn clip_l2(delta: &mut [f32], max_norm: f32) -> Result<f32, ModelError> {
    if !(max_norm.is_finite() && max_norm > 0.0) {
        return Err(ModelError::InvalidConfig(
            "clipping norm must be positive and finite",
        ));
    }
    // Squares of f32 values cannot overflow an f64.
    let norm = delta
        .iter()
        .map(|&d| f64::from(d) * f64::from(d))
        .sum::<f64>()
        .sqrt();
    if !norm.is_finite() {
        return Err(ModelError::NonFinite("the update Δ"));
    }
    if norm > f64::from(max_norm) {
        let scale = f64::from(max_norm) / norm;
        for d in delta.iter_mut() {
            *d = (f64::from(*d) * scale) as f32;
        }
    }
    Ok(norm as f32)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::ModelSpec;
    use ndarray::Array2;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;
    use rand_distr::{Distribution, Normal};

    /// `per_class` samples of each of 3 Gaussian blobs (σ = 0.6) centred on a triangle of side
    /// about 5 in the first two of `dims` dimensions; the rest is noise.
    fn blobs(per_class: usize, dims: usize, seed: u64) -> (Array2<f32>, Vec<u8>) {
        let centres = [[0.0, 3.0], [2.6, -1.5], [-2.6, -1.5]];
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let noise = Normal::new(0.0f32, 0.6).unwrap();
        let y: Vec<u8> = (0..3 * per_class).map(|i| (i % 3) as u8).collect();
        let x = Array2::from_shape_fn((y.len(), dims), |(i, j)| {
            centres[usize::from(y[i])].get(j).copied().unwrap_or(0.0) + noise.sample(&mut rng)
        });
        (x, y)
    }

    fn config(epochs: usize, proximal_mu: Option<f32>) -> TrainConfig {
        TrainConfig {
            epochs,
            batch_size: 16,
            sgd: SgdConfig {
                lr: 0.05,
                momentum: 0.9,
                weight_decay: 1e-4,
            },
            proximal_mu,
        }
    }

    fn trains_to_high_accuracy(spec: ModelSpec) {
        let (x, y) = blobs(100, 4, 1);
        let (x_test, y_test) = blobs(100, 4, 2);
        let mut model = spec.init(3).unwrap();
        let before = model.evaluate(x.view(), &y).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        let report = train_local(&mut model, x.view(), &y, &config(10, None), &mut rng).unwrap();
        let after = model.evaluate(x.view(), &y).unwrap();
        let test = model.evaluate(x_test.view(), &y_test).unwrap();
        assert!(after.loss < 0.5 * before.loss, "{before:?} → {after:?}");
        assert!(report.loss < before.loss, "{report:?}");
        assert!(test.accuracy >= 0.95, "{test:?}");
    }

    #[test]
    fn softmax_regression_learns_gaussian_blobs() {
        trains_to_high_accuracy(ModelSpec::SoftmaxRegression {
            inputs: 4,
            classes: 3,
        });
    }

    #[test]
    fn mlp_learns_gaussian_blobs() {
        trains_to_high_accuracy(ModelSpec::Mlp {
            inputs: 4,
            hidden: vec![16, 8],
            classes: 3,
        });
    }

    #[test]
    fn report_counts_samples_and_steps() {
        let (x, y) = blobs(4, 2, 1); // 12 samples
        let spec = ModelSpec::SoftmaxRegression {
            inputs: 2,
            classes: 3,
        };
        let mut model = spec.init(0).unwrap();
        let mut config = config(3, None);
        config.batch_size = 5; // batches of 5, 5, 2
        let report = train_local(
            &mut model,
            x.view(),
            &y,
            &config,
            &mut ChaCha20Rng::seed_from_u64(0),
        )
        .unwrap();
        assert_eq!((report.samples, report.steps), (12, 9));
        assert!(report.loss.is_finite() && report.loss > 0.0);
    }

    #[test]
    fn training_is_deterministic_for_a_seed() {
        let (x, y) = blobs(20, 3, 5);
        let spec = ModelSpec::Mlp {
            inputs: 3,
            hidden: vec![8],
            classes: 3,
        };
        let run = |shuffle_seed: u64| {
            let mut model = spec.init(6).unwrap();
            let mut rng = ChaCha20Rng::seed_from_u64(shuffle_seed);
            train_local(&mut model, x.view(), &y, &config(3, Some(0.1)), &mut rng).unwrap();
            model
                .params()
                .iter()
                .map(|w| w.to_bits())
                .collect::<Vec<_>>()
        };
        assert_eq!(run(7), run(7));
        assert_ne!(run(7), run(8), "the shuffle seed matters");
    }

    #[test]
    fn fedprox_with_large_mu_stays_near_the_global_model() {
        let (x, y) = blobs(20, 3, 8);
        let spec = ModelSpec::Mlp {
            inputs: 3,
            hidden: vec![8],
            classes: 3,
        };
        let global = spec.init(9).unwrap();
        let drift = |mu: Option<f32>| {
            let mut model = global.clone();
            let mut config = config(5, mu);
            config.sgd.momentum = 0.0;
            let mut rng = ChaCha20Rng::seed_from_u64(10);
            train_local(&mut model, x.view(), &y, &config, &mut rng).unwrap();
            let mut delta = update_delta(model.params_slice(), global.params_slice()).unwrap();
            clip_l2(&mut delta, f32::MAX).unwrap()
        };
        let free = drift(None);
        // η·μ = 1: every step pulls w all the way back to w_global before the loss gradient
        // moves it, so the drift stays one step long instead of accumulating over 20 steps.
        let prox = drift(Some(1.0 / 0.05));
        assert!(free > 0.5, "{free}");
        assert!(prox < 0.15 * free, "prox {prox} vs free {free}");
        // μ = 0 is plain training.
        assert_eq!(drift(Some(0.0)), free);
    }

    #[test]
    fn bad_settings_and_batches_are_refused() {
        let (x, y) = blobs(2, 2, 1);
        let spec = ModelSpec::SoftmaxRegression {
            inputs: 2,
            classes: 3,
        };
        let mut model = spec.init(0).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(0);
        let good = config(1, None);
        let bad = [
            TrainConfig { epochs: 0, ..good },
            TrainConfig {
                batch_size: 0,
                ..good
            },
            TrainConfig {
                proximal_mu: Some(-1.0),
                ..good
            },
            TrainConfig {
                proximal_mu: Some(f32::NAN),
                ..good
            },
            // η·μ = 0.05·80 = 4 ≥ 2·(1 + 0.9)
            TrainConfig {
                proximal_mu: Some(80.0),
                ..good
            },
            TrainConfig {
                sgd: SgdConfig {
                    lr: 0.0,
                    ..good.sgd
                },
                ..good
            },
        ];
        for config in bad {
            assert!(
                matches!(
                    train_local(&mut model, x.view(), &y, &config, &mut rng),
                    Err(ModelError::InvalidConfig(_))
                ),
                "{config:?}"
            );
        }
        assert_eq!(
            train_local(&mut model, x.view(), &y[1..], &good, &mut rng),
            Err(ModelError::LabelCount {
                features: 6,
                labels: 5
            })
        );
        assert_eq!(model, spec.init(0).unwrap(), "refused runs change nothing");
    }

    #[test]
    fn update_delta_is_local_minus_global() {
        assert_eq!(
            update_delta(&[1.0, 0.5, -2.0], &[0.5, 0.5, 1.0]),
            Ok(vec![0.5, 0.0, -3.0])
        );
        assert_eq!(
            update_delta(&[1.0; 3], &[0.0; 4]),
            Err(ModelError::ParamLength {
                expected: 4,
                got: 3
            })
        );
    }

    #[test]
    fn clip_l2_refuses_bad_norms_and_non_finite_updates() {
        let mut delta = [3.0f32, 4.0];
        for max_norm in [0.0, -1.0, f32::NAN, f32::INFINITY] {
            assert!(matches!(
                clip_l2(&mut delta, max_norm),
                Err(ModelError::InvalidConfig(_))
            ));
        }
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let mut delta = [1.0, bad];
            assert!(matches!(
                clip_l2(&mut delta, 1.0),
                Err(ModelError::NonFinite(_))
            ));
            assert_eq!(delta[0], 1.0);
        }
        assert_eq!(clip_l2(&mut delta, 1.0), Ok(5.0));
        assert_eq!(delta, [0.6, 0.8]);
        assert_eq!(clip_l2(&mut [], 1.0), Ok(0.0));
    }

    fn proptest_config() -> ProptestConfig {
        ProptestConfig {
            cases: 256,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(13),
            ..ProptestConfig::default()
        }
    }

    proptest! {
        #![proptest_config(proptest_config())]

        #[test]
        fn clip_l2_bounds_the_norm_and_keeps_the_direction(
            original in prop::collection::vec(-1e3f32..1e3, 0..40),
            max_norm in 1e-3f32..1e3,
        ) {
            let norm = |v: &[f32]| v.iter().map(|&d| f64::from(d).powi(2)).sum::<f64>().sqrt();
            let mut delta = original.clone();
            let before = clip_l2(&mut delta, max_norm).unwrap();
            prop_assert!((f64::from(before) - norm(&original)).abs() <= 1e-6 * norm(&original));
            if norm(&original) <= f64::from(max_norm) {
                prop_assert_eq!(&delta, &original, "short updates are untouched");
            } else {
                let after = norm(&delta);
                prop_assert!((after / f64::from(max_norm) - 1.0).abs() < 1e-6, "{}", after);
                // Δ' = s·Δ with the same s for every coordinate
                let s = f64::from(max_norm) / norm(&original);
                for (d, o) in delta.iter().zip(&original) {
                    prop_assert!((f64::from(*d) - s * f64::from(*o)).abs() <= 1e-6 * f64::from(o.abs()));
                }
            }
        }
    }

    /// Timing for one local epoch of the MNIST-sized MLP; run with
    /// `cargo test --release -p spddl-client-trainer -- --ignored --nocapture epoch_time`.
    #[test]
    #[ignore = "timing, run in release"]
    fn epoch_time_mlp_784_128_10_on_3000_samples() {
        use rand::RngExt;
        let mut rng = ChaCha20Rng::seed_from_u64(1);
        let x = Array2::from_shape_fn((3000, 784), |_| rng.random::<f32>());
        let y: Vec<u8> = (0..3000).map(|_| rng.random_range(0..10)).collect();
        let spec = ModelSpec::Mlp {
            inputs: 784,
            hidden: vec![128],
            classes: 10,
        };
        let mut model = spec.init(0).unwrap();
        for batch_size in [32, 64] {
            let config = TrainConfig {
                epochs: 1,
                batch_size,
                sgd: SgdConfig {
                    lr: 0.01,
                    momentum: 0.9,
                    weight_decay: 0.0,
                },
                proximal_mu: None,
            };
            let start = std::time::Instant::now();
            let report = train_local(&mut model, x.view(), &y, &config, &mut rng).unwrap();
            println!("B = {batch_size}: {:?} for {report:?}", start.elapsed());
        }
    }
}
