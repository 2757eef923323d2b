//! A model as one flat parameter vector, its forward pass and its backpropagation.

use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView1, ArrayView2, ArrayViewMut1, ArrayViewMut2, Axis, Zip};

use super::loss::softmax_cross_entropy;
use super::{Float, ModelError, ModelSpec};

/// A classifier whose parameters are one flat vector.
///
/// **Parameter order** (stable: it is the layout of every update `Δ` sent in a round). Layer by
/// layer from the input side (`l = 1..L`, the last one being the softmax layer), each layer's
/// weight matrix `W_l` then its bias `b_l`, with no gaps:
/// - `W_l` has shape `(fan_in, fan_out)` and is stored row-major: the weight from input `i` to
///   unit `j` is at offset `i · fan_out + j` within the layer's block;
/// - `b_l` has `fan_out` values.
///
/// A layer computes `z_l = a_{l−1} · W_l + b_l` on a batch `a_{l−1}` (one sample per row);
/// hidden layers apply `a_l = ReLU(z_l)`, the last layer's `z_L` are the logits.
#[derive(Debug, Clone, PartialEq)]
pub struct Model {
    spec: ModelSpec,
    /// `[inputs, hidden…, classes]`, cached from `spec`.
    sizes: Vec<usize>,
    params: Vec<f32>,
}

/// Mean loss and accuracy of a model on a labelled set.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Metrics {
    /// Mean softmax cross-entropy (natural log).
    pub loss: f32,
    /// Fraction of samples whose highest logit is their label.
    pub accuracy: f32,
}

impl Model {
    /// A model with the given parameters (in the order documented on [`Model`]).
    pub fn from_params(spec: ModelSpec, params: Vec<f32>) -> Result<Self, ModelError> {
        spec.validate()?;
        let expected = spec.num_params();
        if params.len() != expected {
            return Err(ModelError::ParamLength {
                expected,
                got: params.len(),
            });
        }
        Ok(Self {
            sizes: spec.layer_sizes(),
            spec,
            params,
        })
    }

    /// The architecture.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// Number of parameters, the length of [`Model::params`].
    pub fn num_params(&self) -> usize {
        self.params.len()
    }

    /// A copy of the flat parameter vector `w`.
    pub fn params(&self) -> Vec<f32> {
        self.params.clone()
    }

    /// The flat parameter vector `w`, borrowed.
    pub fn params_slice(&self) -> &[f32] {
        &self.params
    }

    /// Replaces the parameters; refuses a vector of the wrong length and leaves the model as it
    /// was.
    pub fn set_params(&mut self, params: &[f32]) -> Result<(), ModelError> {
        if params.len() != self.params.len() {
            return Err(ModelError::ParamLength {
                expected: self.params.len(),
                got: params.len(),
            });
        }
        self.params.copy_from_slice(params);
        Ok(())
    }

    /// The logits `z_L`, one row per sample of `x`.
    pub fn logits(&self, x: ArrayView2<'_, f32>) -> Result<Array2<f32>, ModelError> {
        self.check_features(x)?;
        Ok(forward(&layers(&self.sizes, &self.params), x).1)
    }

    /// The predicted class of each sample: the index of its highest logit.
    pub fn predict(&self, x: ArrayView2<'_, f32>) -> Result<Vec<u8>, ModelError> {
        Ok(argmax_rows(self.logits(x)?.view()))
    }

    /// The mean softmax cross-entropy `L(w)` on the batch `(x, y)` and its gradient `∇L(w)`,
    /// flat and in the order of [`Model::params`].
    pub fn loss_and_grad(
        &self,
        x: ArrayView2<'_, f32>,
        y: &[u8],
    ) -> Result<(f32, Vec<f32>), ModelError> {
        self.check_batch(x, y)?;
        let mut grad = vec![0.0; self.params.len()];
        let loss = loss_and_grad_into(&self.sizes, &self.params, x, y, &mut grad);
        Ok((loss, grad))
    }

    /// Mean loss and accuracy on the labelled set `(x, y)`.
    pub fn evaluate(&self, x: ArrayView2<'_, f32>, y: &[u8]) -> Result<Metrics, ModelError> {
        self.check_batch(x, y)?;
        let mut logits = forward(&layers(&self.sizes, &self.params), x).1;
        let correct = argmax_rows(logits.view())
            .iter()
            .zip(y)
            .filter(|(p, y)| p == y)
            .count();
        let loss = softmax_cross_entropy(logits.view_mut(), y);
        Ok(Metrics {
            loss,
            accuracy: correct as f32 / y.len() as f32,
        })
    }

    /// Checks that `(x, y)` is a non-empty batch this model can take.
    pub(super) fn check_batch(&self, x: ArrayView2<'_, f32>, y: &[u8]) -> Result<(), ModelError> {
        self.check_features(x)?;
        if x.nrows() != y.len() {
            return Err(ModelError::LabelCount {
                features: x.nrows(),
                labels: y.len(),
            });
        }
        if y.is_empty() {
            return Err(ModelError::EmptyBatch);
        }
        let classes = self.spec.classes();
        match y.iter().position(|&label| usize::from(label) >= classes) {
            Some(sample) => Err(ModelError::LabelOutOfRange {
                sample,
                label: y[sample],
                classes,
            }),
            None => Ok(()),
        }
    }

    fn check_features(&self, x: ArrayView2<'_, f32>) -> Result<(), ModelError> {
        if x.ncols() != self.sizes[0] {
            return Err(ModelError::FeatureWidth {
                expected: self.sizes[0],
                got: x.ncols(),
            });
        }
        Ok(())
    }

    /// [`Model::loss_and_grad`] into a caller-owned buffer, for a batch already checked.
    pub(super) fn loss_and_grad_unchecked(
        &self,
        x: ArrayView2<'_, f32>,
        y: &[u8],
        grad: &mut [f32],
    ) -> f32 {
        loss_and_grad_into(&self.sizes, &self.params, x, y, grad)
    }

    /// The parameters, for the optimizer.
    pub(super) fn params_mut(&mut self) -> &mut [f32] {
        &mut self.params
    }
}

/// The index of the highest value of each row (the first one on ties).
fn argmax_rows(logits: ArrayView2<'_, f32>) -> Vec<u8> {
    logits
        .rows()
        .into_iter()
        .map(|row| {
            let mut best = 0;
            for (k, &v) in row.iter().enumerate() {
                if v > row[best] {
                    best = k;
                }
            }
            // Specs have at most 256 classes, so every index fits a u8.
            best as u8
        })
        .collect()
}

/// `(W_l, b_l)` views into a flat parameter (or gradient) slice laid out as documented on
/// [`Model`]; `flat.len()` must be the spec's number of parameters.
fn layers<'a, F>(
    sizes: &[usize],
    mut flat: &'a [F],
) -> Vec<(ArrayView2<'a, F>, ArrayView1<'a, F>)> {
    sizes
        .windows(2)
        .map(|io| {
            let (w, rest) = flat.split_at(io[0] * io[1]);
            let (b, rest) = rest.split_at(io[1]);
            flat = rest;
            let w = ArrayView2::from_shape((io[0], io[1]), w)
                .expect("the slice has exactly fan_in·fan_out elements");
            (w, ArrayView1::from(b))
        })
        .collect()
}

/// Mutable version of [`layers`].
fn layers_mut<'a, F>(
    sizes: &[usize],
    mut flat: &'a mut [F],
) -> Vec<(ArrayViewMut2<'a, F>, ArrayViewMut1<'a, F>)> {
    sizes
        .windows(2)
        .map(|io| {
            let (w, rest) = std::mem::take(&mut flat).split_at_mut(io[0] * io[1]);
            let (b, rest) = rest.split_at_mut(io[1]);
            flat = rest;
            let w = ArrayViewMut2::from_shape((io[0], io[1]), w)
                .expect("the slice has exactly fan_in·fan_out elements");
            (w, ArrayViewMut1::from(b))
        })
        .collect()
}

/// Forward pass on a batch: the hidden activations `a_1 … a_{L−1}` and the logits `z_L`.
fn forward<F: Float>(
    layers: &[(ArrayView2<'_, F>, ArrayView1<'_, F>)],
    x: ArrayView2<'_, F>,
) -> (Vec<Array2<F>>, Array2<F>) {
    let (last, hidden_layers) = layers
        .split_last()
        .expect("a validated spec has at least one layer");
    let mut hidden: Vec<Array2<F>> = Vec::with_capacity(hidden_layers.len());
    for (w, b) in hidden_layers {
        // z_l = a_{l−1} · W_l + b_l (b_l broadcast over the rows), then a_l = ReLU(z_l)
        let mut z = hidden.last().map_or(x, |a| a.view()).dot(w);
        z += b;
        z.mapv_inplace(|v| v.max(F::zero()));
        hidden.push(z);
    }
    let mut logits = hidden.last().map_or(x, |a| a.view()).dot(&last.0);
    logits += &last.1;
    (hidden, logits)
}

/// Mean loss on `(x, y)` and its gradient written into `grad` (backpropagation).
/// The batch must be valid for `sizes` and `grad.len() == params.len()`.
fn loss_and_grad_into<F: Float>(
    sizes: &[usize],
    params: &[F],
    x: ArrayView2<'_, F>,
    y: &[u8],
    grad: &mut [F],
) -> F {
    let layers = layers(sizes, params);
    let (hidden, mut dz) = forward(&layers, x);
    // dz = ∂L/∂z_L = (softmax(z_L) − onehot(y)) / B
    let loss = softmax_cross_entropy(dz.view_mut(), y);
    let mut grads = layers_mut(sizes, grad);
    for l in (0..layers.len()).rev() {
        let input = if l == 0 { x } else { hidden[l - 1].view() };
        let (dw, db) = &mut grads[l];
        // ∂L/∂W_l = a_{l−1}ᵀ · dz_l
        general_mat_mul(F::one(), &input.t(), &dz, F::zero(), dw);
        // ∂L/∂b_l = Σ_rows dz_l
        db.assign(&dz.sum_axis(Axis(0)));
        if l > 0 {
            // ∂L/∂a_{l−1} = dz_l · W_lᵀ, then through the ReLU: dz_{l−1} = ∂L/∂a_{l−1} ⊙ 1[z_{l−1} > 0]
            // (a_{l−1} > 0 exactly where z_{l−1} > 0).
            let mut da = dz.dot(&layers[l].0.t());
            Zip::from(&mut da).and(&hidden[l - 1]).for_each(|d, &a| {
                if a <= F::zero() {
                    *d = F::zero();
                }
            });
            dz = da;
        }
    }
    loss
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array1, array};
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    fn mlp(inputs: usize, hidden: &[usize], classes: usize) -> ModelSpec {
        ModelSpec::Mlp {
            inputs,
            hidden: hidden.to_vec(),
            classes,
        }
    }

    /// A random batch (features in [−2, 2)) and labels for `spec`.
    fn batch(spec: &ModelSpec, rows: usize, seed: u64) -> (Array2<f32>, Vec<u8>) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let x = Array2::from_shape_fn((rows, spec.inputs()), |_| rng.random_range(-2.0..2.0));
        let y = (0..rows)
            .map(|_| rng.random_range(0..spec.classes() as u8))
            .collect();
        (x, y)
    }

    /// Compares the analytic gradient with central differences `(L(w + εe_i) − L(w − εe_i)) / 2ε`
    /// for every parameter, in f64. The truncation error is O(ε²) ≈ 1e-12 and rounding adds
    /// about 1e-16/ε ≈ 1e-10, so 1e-7 relative to the largest gradient entry is a sharp bound
    /// (a wrong factor, a transposed matrix or a missing ReLU mask is off by far more). ε is too
    /// small to cross a ReLU kink unless a pre-activation lies within ~1e-6 of zero.
    fn check_gradient(spec: &ModelSpec, seed: u64) {
        let model = spec.init(seed).unwrap();
        // Non-zero biases, so they matter in the check.
        let mut rng = ChaCha20Rng::seed_from_u64(seed + 1);
        let w: Vec<f64> = model
            .params()
            .iter()
            .map(|&v| f64::from(v) + rng.random_range(-0.1..0.1))
            .collect();
        let (x, y) = batch(spec, 7, seed + 2);
        let x = x.mapv(f64::from);
        let sizes = spec.layer_sizes();
        let loss = |w: &[f64]| {
            let mut g = vec![0.0; w.len()];
            loss_and_grad_into(&sizes, w, x.view(), &y, &mut g)
        };
        let mut grad = vec![0.0; w.len()];
        loss_and_grad_into(&sizes, &w, x.view(), &y, &mut grad);

        let scale = grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        assert!(scale > 1e-3, "degenerate check: gradient ≈ 0");
        let eps = 1e-6;
        let mut w_eps = w.clone();
        for i in 0..w.len() {
            w_eps[i] = w[i] + eps;
            let up = loss(&w_eps);
            w_eps[i] = w[i] - eps;
            let down = loss(&w_eps);
            w_eps[i] = w[i];
            let numeric = (up - down) / (2.0 * eps);
            assert!(
                (numeric - grad[i]).abs() <= 1e-7 * scale,
                "parameter {i}: analytic {} vs numeric {numeric}",
                grad[i]
            );
        }
    }

    #[test]
    fn gradient_check_softmax_regression() {
        check_gradient(
            &ModelSpec::SoftmaxRegression {
                inputs: 5,
                classes: 4,
            },
            11,
        );
    }

    #[test]
    fn gradient_check_mlp_two_hidden_layers() {
        check_gradient(&mlp(5, &[6, 4], 3), 12);
    }

    #[test]
    fn f32_gradient_agrees_with_f64() {
        let spec = mlp(6, &[8, 5], 4);
        let model = spec.init(3).unwrap();
        let (x, y) = batch(&spec, 9, 4);
        let (loss, grad) = model.loss_and_grad(x.view(), &y).unwrap();
        let w64: Vec<f64> = model.params().iter().map(|&v| f64::from(v)).collect();
        let mut g64 = vec![0.0; w64.len()];
        let loss64 = loss_and_grad_into(
            &spec.layer_sizes(),
            &w64,
            x.mapv(f64::from).view(),
            &y,
            &mut g64,
        );
        assert!((f64::from(loss) - loss64).abs() < 1e-5 * loss64);
        let scale = g64.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        for (g, g64) in grad.iter().zip(&g64) {
            assert!((f64::from(*g) - g64).abs() < 1e-5 * scale);
        }
    }

    #[test]
    fn params_follow_the_documented_order() {
        // inputs 3, classes 2: [W00, W01, W10, W11, W20, W21, b0, b1]
        let spec = ModelSpec::SoftmaxRegression {
            inputs: 3,
            classes: 2,
        };
        let w = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 0.5, -0.5];
        let model = Model::from_params(spec, w.to_vec()).unwrap();
        let logits = model.logits(array![[1.0, 10.0, 100.0]].view()).unwrap();
        // z_j = Σ_i x_i W_ij + b_j
        assert_eq!(logits, array![[531.0 + 0.5, 642.0 - 0.5]]);

        // 2-1-2 MLP: [W1 (2×1), b1, W2 (1×2), b2]
        let spec = mlp(2, &[1], 2);
        let w = [1.0, -1.0, 0.25, 2.0, 3.0, 0.0, 1.0];
        let model = Model::from_params(spec, w.to_vec()).unwrap();
        // h = ReLU(3 − 1 + 0.25) = 2.25; z = [2·2.25 + 0, 3·2.25 + 1]
        let logits = model.logits(array![[3.0, 1.0]].view()).unwrap();
        assert_eq!(logits, array![[4.5, 7.75]]);
        // h = ReLU(1 − 3 + 0.25) = 0: only the output bias is left
        let logits = model.logits(array![[1.0, 3.0]].view()).unwrap();
        assert_eq!(logits, array![[0.0, 1.0]]);
    }

    #[test]
    fn set_params_round_trips_and_refuses_wrong_length() {
        let spec = mlp(4, &[3], 3);
        let mut model = spec.init(1).unwrap();
        let n = model.num_params();
        let w: Vec<f32> = (0..n).map(|i| i as f32 * 0.01 - 0.2).collect();
        model.set_params(&w).unwrap();
        assert_eq!(model.params(), w);
        assert_eq!(model.params_slice(), &w[..]);

        for len in [0, n - 1, n + 1] {
            let err = model.set_params(&vec![1.0; len]).unwrap_err();
            assert_eq!(
                err,
                ModelError::ParamLength {
                    expected: n,
                    got: len
                }
            );
        }
        assert_eq!(model.params(), w, "a refused vector changes nothing");
        assert_eq!(
            Model::from_params(spec, vec![0.0; n + 2]),
            Err(ModelError::ParamLength {
                expected: n,
                got: n + 2
            })
        );
    }

    #[test]
    fn bad_batches_are_refused_with_what_was_expected() {
        let spec = mlp(3, &[4], 3);
        let model = spec.init(0).unwrap();
        let x = Array2::<f32>::zeros((2, 3));
        assert_eq!(
            model.loss_and_grad(Array2::zeros((2, 4)).view(), &[0, 1]),
            Err(ModelError::FeatureWidth {
                expected: 3,
                got: 4
            })
        );
        assert_eq!(
            model.predict(Array2::zeros((2, 2)).view()),
            Err(ModelError::FeatureWidth {
                expected: 3,
                got: 2
            })
        );
        assert_eq!(
            model.evaluate(x.view(), &[0]),
            Err(ModelError::LabelCount {
                features: 2,
                labels: 1
            })
        );
        assert_eq!(
            model.loss_and_grad(x.view(), &[0, 3]),
            Err(ModelError::LabelOutOfRange {
                sample: 1,
                label: 3,
                classes: 3
            })
        );
        assert_eq!(
            model.loss_and_grad(Array2::zeros((0, 3)).view(), &[]),
            Err(ModelError::EmptyBatch)
        );
    }

    #[test]
    fn zero_model_predicts_uniformly() {
        let spec = mlp(3, &[4], 5);
        let model = Model::from_params(spec.clone(), vec![0.0; spec.num_params()]).unwrap();
        let (x, y) = batch(&spec, 10, 5);
        let metrics = model.evaluate(x.view(), &y).unwrap();
        assert!((metrics.loss - 5f32.ln()).abs() < 1e-6);
        let (_, grad) = model.loss_and_grad(x.view(), &y).unwrap();
        // Only the output bias gets a gradient: mean(1/5 − onehot(y)).
        let (rest, b2) = grad.split_at(grad.len() - 5);
        assert!(rest.iter().all(|&g| g == 0.0));
        let counts = Array1::from_shape_fn(5, |k| y.iter().filter(|&&l| l == k as u8).count());
        for k in 0..5 {
            assert!((b2[k] - (0.2 - counts[k] as f32 / 10.0)).abs() < 1e-6);
        }
    }

    #[test]
    fn predict_is_argmax_and_evaluate_counts_hits() {
        // Softmax regression with W = I, b = 0: the prediction is the largest feature.
        let spec = ModelSpec::SoftmaxRegression {
            inputs: 3,
            classes: 3,
        };
        let mut w = vec![0.0; spec.num_params()];
        for k in 0..3 {
            w[k * 3 + k] = 1.0;
        }
        let model = Model::from_params(spec, w).unwrap();
        let x = array![
            [0.1, 0.9, 0.0],
            [3.0, 1.0, 2.0],
            [0.0, 0.0, 0.5],
            [1.0, 0.0, 0.0]
        ];
        assert_eq!(model.predict(x.view()).unwrap(), [1, 0, 2, 0]);
        let metrics = model.evaluate(x.view(), &[1, 0, 2, 2]).unwrap();
        assert_eq!(metrics.accuracy, 0.75);
    }
}
