//! Stochastic gradient descent with momentum and weight decay.

use serde::{Deserialize, Serialize};

use super::ModelError;

/// Settings of [`Sgd`].
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SgdConfig {
    /// Learning rate `η > 0`.
    pub lr: f32,
    /// Momentum `m` in `[0, 1)`; 0 is plain SGD.
    pub momentum: f32,
    /// Weight decay `λ ≥ 0` (L2 penalty `(λ/2)‖w‖²`, applied to weights and biases).
    pub weight_decay: f32,
}

impl Default for SgdConfig {
    /// `η = 0.01`, no momentum, no weight decay.
    fn default() -> Self {
        Self {
            lr: 0.01,
            momentum: 0.0,
            weight_decay: 0.0,
        }
    }
}

impl SgdConfig {
    /// Refuses a non-positive or non-finite `η`, `m` outside `[0, 1)`, a negative `λ`, and a
    /// `λ` so large that the decay alone diverges (`η·λ ≥ 2(1 + m)`).
    pub fn validate(&self) -> Result<(), ModelError> {
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return Err(ModelError::InvalidConfig(
                "learning rate must be positive and finite",
            ));
        }
        if !(0.0..1.0).contains(&self.momentum) {
            return Err(ModelError::InvalidConfig("momentum must be in [0, 1)"));
        }
        if !(self.weight_decay.is_finite() && self.weight_decay >= 0.0) {
            return Err(ModelError::InvalidConfig(
                "weight decay must be non-negative and finite",
            ));
        }
        self.check_stable(self.weight_decay)
    }

    /// Refuses a quadratic penalty of curvature `c` (weight decay, proximal term) on which these
    /// settings diverge by themselves: heavy-ball momentum is stable iff `η·c < 2(1 + m)`.
    pub(super) fn check_stable(&self, curvature: f32) -> Result<(), ModelError> {
        if self.lr * curvature >= 2.0 * (1.0 + self.momentum) {
            return Err(ModelError::InvalidConfig(
                "lr · (weight decay + proximal μ) must be below 2 · (1 + momentum)",
            ));
        }
        Ok(())
    }
}

/// SGD with momentum and weight decay (the PyTorch convention, no dampening):
/// `g ← ∇L(w) + λ·w`, `v ← m·v + g`, `w ← w − η·v`, with the velocity `v` starting at zero.
#[derive(Debug, Clone)]
pub struct Sgd {
    config: SgdConfig,
    velocity: Vec<f32>,
}

impl Sgd {
    /// An optimizer for `num_params` parameters.
    pub fn new(config: SgdConfig, num_params: usize) -> Result<Self, ModelError> {
        config.validate()?;
        Ok(Self {
            config,
            velocity: vec![0.0; num_params],
        })
    }

    /// The settings.
    pub fn config(&self) -> &SgdConfig {
        &self.config
    }

    /// One update of `params` along the gradient `grad` of the loss (without the decay term,
    /// which is added here). Both must have the optimizer's length.
    pub fn step(&mut self, params: &mut [f32], grad: &[f32]) -> Result<(), ModelError> {
        for len in [params.len(), grad.len()] {
            if len != self.velocity.len() {
                return Err(ModelError::ParamLength {
                    expected: self.velocity.len(),
                    got: len,
                });
            }
        }
        let SgdConfig {
            lr,
            momentum,
            weight_decay,
        } = self.config;
        for ((w, v), &g) in params.iter_mut().zip(&mut self.velocity).zip(grad) {
            *v = momentum * *v + g + weight_decay * *w;
            *w -= lr * *v;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sgd(lr: f32, momentum: f32, weight_decay: f32, n: usize) -> Sgd {
        let config = SgdConfig {
            lr,
            momentum,
            weight_decay,
        };
        Sgd::new(config, n).unwrap()
    }

    #[test]
    fn plain_step_follows_the_gradient() {
        let mut opt = sgd(0.5, 0.0, 0.0, 2);
        let mut w = [1.0, -1.0];
        opt.step(&mut w, &[2.0, -4.0]).unwrap();
        assert_eq!(w, [0.0, 1.0]);
    }

    #[test]
    fn weight_decay_shrinks_weights_with_zero_gradient() {
        // w_k = (1 − η·λ)^k · w_0 when ∇L = 0 and m = 0
        let mut opt = sgd(0.1, 0.0, 0.5, 3);
        let mut w = [2.0f32, -4.0, 0.0];
        for _ in 0..10 {
            opt.step(&mut w, &[0.0; 3]).unwrap();
        }
        let factor = 0.95f32.powi(10);
        for (got, w0) in w.iter().zip([2.0f32, -4.0, 0.0]) {
            assert!((got - factor * w0).abs() < 1e-6, "{got} vs {}", factor * w0);
        }

        // With momentum they oscillate about zero (complex roots of modulus √m), but decay.
        let mut opt = sgd(0.1, 0.9, 0.5, 2);
        let mut w = [2.0f32, -4.0];
        for _ in 0..100 {
            opt.step(&mut w, &[0.0; 2]).unwrap();
        }
        assert!(w.iter().all(|v| v.abs() < 0.05 * 4.0), "{w:?}");
    }

    #[test]
    fn momentum_accumulates_velocity() {
        let mut opt = sgd(0.1, 0.9, 0.0, 1);
        let mut w = [0.0f32];
        opt.step(&mut w, &[1.0]).unwrap(); // v = 1
        opt.step(&mut w, &[1.0]).unwrap(); // v = 1.9
        assert!((w[0] - -(0.1 + 0.19)).abs() < 1e-7, "{}", w[0]);
    }

    #[test]
    fn bad_settings_and_lengths_are_refused() {
        for (lr, momentum, weight_decay) in [
            (0.0, 0.0, 0.0),
            (-0.1, 0.0, 0.0),
            (f32::NAN, 0.0, 0.0),
            (f32::INFINITY, 0.0, 0.0),
            (0.1, 1.0, 0.0),
            (0.1, -0.1, 0.0),
            (0.1, 0.0, -1.0),
            (0.1, 0.0, f32::NAN),
            (0.1, 0.0, 20.0), // η·λ = 2: the decay alone oscillates without converging
        ] {
            let config = SgdConfig {
                lr,
                momentum,
                weight_decay,
            };
            assert!(
                matches!(Sgd::new(config, 1), Err(ModelError::InvalidConfig(_))),
                "{config:?}"
            );
        }
        let mut opt = sgd(0.1, 0.0, 0.0, 2);
        assert_eq!(
            opt.step(&mut [0.0; 3], &[0.0; 2]),
            Err(ModelError::ParamLength {
                expected: 2,
                got: 3
            })
        );
        assert_eq!(
            opt.step(&mut [0.0; 2], &[0.0; 1]),
            Err(ModelError::ParamLength {
                expected: 2,
                got: 1
            })
        );
    }
}
