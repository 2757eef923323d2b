//! Model descriptions as they appear in scenario files, and their seeded initialization.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use serde::{Deserialize, Serialize};

use super::{Model, ModelError};

/// Largest number of classes: labels are `u8`.
const MAX_CLASSES: usize = 256;

/// The architecture of a classifier: a stack of dense layers ending in a softmax.
///
/// In scenario files (serde), the variant is named by a `kind` field:
/// `{"kind": "mlp", "inputs": 784, "hidden": [128], "classes": 10}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ModelSpec {
    /// Multinomial logistic regression: `softmax(x·W + b)`.
    SoftmaxRegression {
        /// Features per sample.
        inputs: usize,
        /// Number of classes (2 to 256).
        classes: usize,
    },
    /// Multi-layer perceptron: dense layers with ReLU, then a dense softmax output layer.
    Mlp {
        /// Features per sample.
        inputs: usize,
        /// Width of each hidden layer, input side first (may be empty).
        hidden: Vec<usize>,
        /// Number of classes (2 to 256).
        classes: usize,
    },
}

impl ModelSpec {
    /// Widths of all layers: `[inputs, hidden…, classes]`.
    pub fn layer_sizes(&self) -> Vec<usize> {
        match self {
            Self::SoftmaxRegression { inputs, classes } => vec![*inputs, *classes],
            Self::Mlp {
                inputs,
                hidden,
                classes,
            } => [*inputs]
                .into_iter()
                .chain(hidden.iter().copied())
                .chain([*classes])
                .collect(),
        }
    }

    /// Features per sample.
    pub fn inputs(&self) -> usize {
        match self {
            Self::SoftmaxRegression { inputs, .. } | Self::Mlp { inputs, .. } => *inputs,
        }
    }

    /// Number of classes.
    pub fn classes(&self) -> usize {
        match self {
            Self::SoftmaxRegression { classes, .. } | Self::Mlp { classes, .. } => *classes,
        }
    }

    /// Length of the flat parameter vector: `Σ_l (fan_in_l + 1) · fan_out_l`.
    pub fn num_params(&self) -> usize {
        self.layer_sizes()
            .windows(2)
            .map(|io| (io[0] + 1) * io[1])
            .sum()
    }

    /// Refuses empty layers and class counts outside `2..=256`.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.inputs() == 0 {
            return Err(ModelError::InvalidSpec("inputs must be at least 1"));
        }
        if let Self::Mlp { hidden, .. } = self
            && hidden.contains(&0)
        {
            return Err(ModelError::InvalidSpec(
                "hidden layers must have at least 1 unit",
            ));
        }
        if !(2..=MAX_CLASSES).contains(&self.classes()) {
            return Err(ModelError::InvalidSpec("classes must be between 2 and 256"));
        }
        Ok(())
    }

    /// A freshly initialized model, reproducible from `seed` (see [`ModelSpec::init_with_rng`]).
    pub fn init(&self, seed: u64) -> Result<Model, ModelError> {
        self.init_with_rng(&mut StdRng::seed_from_u64(seed))
    }

    /// A freshly initialized model: biases zero; weights normal with mean 0 and standard
    /// deviation `√(2 / fan_in)` in ReLU layers (He et al., 2015) and `√(2 / (fan_in + fan_out))`
    /// in the softmax layer (Glorot & Bengio, 2010).
    pub fn init_with_rng<R: Rng + ?Sized>(&self, rng: &mut R) -> Result<Model, ModelError> {
        self.validate()?;
        let sizes = self.layer_sizes();
        let layers = sizes.len() - 1;
        let mut params = Vec::with_capacity(self.num_params());
        for (l, io) in sizes.windows(2).enumerate() {
            let (fan_in, fan_out) = (io[0], io[1]);
            let std = if l + 1 < layers {
                (2.0 / fan_in as f32).sqrt()
            } else {
                (2.0 / (fan_in + fan_out) as f32).sqrt()
            };
            params.extend((0..fan_in * fan_out).map(|_| {
                let z: f32 = StandardNormal.sample(rng);
                std * z
            }));
            params.extend(std::iter::repeat_n(0.0, fan_out));
        }
        Model::from_params(self.clone(), params)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mlp(inputs: usize, hidden: &[usize], classes: usize) -> ModelSpec {
        ModelSpec::Mlp {
            inputs,
            hidden: hidden.to_vec(),
            classes,
        }
    }

    #[test]
    fn num_params_of_mnist_models() {
        // 784·128 + 128 + 128·10 + 10
        assert_eq!(mlp(784, &[128], 10).num_params(), 101_770);
        assert_eq!(mlp(784, &[128], 10).init(0).unwrap().num_params(), 101_770);
        // 784·10 + 10
        let softmax = ModelSpec::SoftmaxRegression {
            inputs: 784,
            classes: 10,
        };
        assert_eq!(softmax.num_params(), 7_850);
        assert_eq!(mlp(784, &[], 10).num_params(), 7_850);
        // 3·4 + 4 + 4·5 + 5 + 5·2 + 2
        assert_eq!(mlp(3, &[4, 5], 2).num_params(), 53);
        assert_eq!(mlp(3, &[4, 5], 2).layer_sizes(), [3, 4, 5, 2]);
    }

    #[test]
    fn invalid_specs_are_refused() {
        for spec in [
            mlp(0, &[4], 2),
            mlp(3, &[4, 0], 2),
            mlp(3, &[4], 1),
            mlp(3, &[4], 257),
            ModelSpec::SoftmaxRegression {
                inputs: 3,
                classes: 0,
            },
        ] {
            assert!(
                matches!(spec.init(0), Err(ModelError::InvalidSpec(_))),
                "{spec:?}"
            );
        }
        assert!(mlp(3, &[4], 256).init(0).is_ok());
    }

    #[test]
    fn init_is_seeded_with_zero_biases_and_scaled_weights() {
        let spec = mlp(400, &[300], 10);
        let a = spec.init(7).unwrap().params();
        assert_eq!(a, spec.init(7).unwrap().params());
        assert_ne!(a, spec.init(8).unwrap().params());

        let (w1, rest) = a.split_at(400 * 300);
        let (b1, rest) = rest.split_at(300);
        let (w2, b2) = rest.split_at(300 * 10);
        assert!(b1.iter().chain(b2).all(|&b| b == 0.0));
        let std = |w: &[f32]| (w.iter().map(|v| v * v).sum::<f32>() / w.len() as f32).sqrt();
        // He: √(2/400) ≈ 0.0707 over 120,000 draws; Glorot: √(2/310) ≈ 0.0803 over 3,000.
        assert!((std(w1) / (2.0f32 / 400.0).sqrt() - 1.0).abs() < 0.02);
        assert!((std(w2) / (2.0f32 / 310.0).sqrt() - 1.0).abs() < 0.1);
    }
}
