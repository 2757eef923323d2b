//! Strategies: how the mean client update becomes the next global model. A strategy only ever
//! sees the decrypted aggregate, never an individual update (as in Flower).

/// Turns the round's mean update into the next global model.
pub trait Strategy {
    /// Updates `global` in place from the mean client update `Δ̄ = Σ w_k·Δ_k / Σ w_k`.
    fn apply(&mut self, global: &mut [f32], mean_update: &[f32]);
    /// A short name for reports.
    fn name(&self) -> &'static str;
}

/// Federated averaging (McMahan et al., 2017): `w ← w + Δ̄`, i.e. the sample-weighted average
/// of the clients' local models.
#[derive(Debug, Clone, Copy, Default)]
pub struct FedAvg;

impl Strategy for FedAvg {
    fn apply(&mut self, global: &mut [f32], mean_update: &[f32]) {
        for (w, d) in global.iter_mut().zip(mean_update) {
            *w += d;
        }
    }
    fn name(&self) -> &'static str {
        "fedavg"
    }
}

/// FedAdam (Reddi et al., 2021, "Adaptive Federated Optimization"): Adam on the server with
/// the mean update as pseudo-gradient: `m ← β₁m + (1−β₁)Δ̄`, `v ← β₂v + (1−β₂)Δ̄²`,
/// `w ← w + η·m / (√v + τ)`.
#[derive(Debug, Clone)]
pub struct FedAdam {
    /// Server learning rate η.
    pub lr: f32,
    /// β₁.
    pub beta1: f32,
    /// β₂.
    pub beta2: f32,
    /// Adaptivity τ (the paper's ε).
    pub tau: f32,
    m: Vec<f32>,
    v: Vec<f32>,
}

impl FedAdam {
    /// FedAdam with the given server learning rate and the paper's defaults
    /// β₁ = 0.9, β₂ = 0.99, τ = 10⁻³.
    pub fn new(lr: f32) -> Self {
        FedAdam {
            lr,
            beta1: 0.9,
            beta2: 0.99,
            tau: 1e-3,
            m: Vec::new(),
            v: Vec::new(),
        }
    }
}

impl Strategy for FedAdam {
    fn apply(&mut self, global: &mut [f32], mean_update: &[f32]) {
        if self.m.len() != global.len() {
            self.m = vec![0.0; global.len()];
            self.v = vec![0.0; global.len()];
        }
        for (((w, d), m), v) in global
            .iter_mut()
            .zip(mean_update)
            .zip(&mut self.m)
            .zip(&mut self.v)
        {
            *m = self.beta1 * *m + (1.0 - self.beta1) * d;
            *v = self.beta2 * *v + (1.0 - self.beta2) * d * d;
            *w += self.lr * *m / (v.sqrt() + self.tau);
        }
    }
    fn name(&self) -> &'static str {
        "fedadam"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fedavg_adds_the_mean_update() {
        let mut w = vec![1.0, -1.0];
        FedAvg.apply(&mut w, &[0.5, 0.25]);
        assert_eq!(w, [1.5, -0.75]);
    }

    #[test]
    fn fedadam_moves_along_the_update_sign_with_bounded_steps() {
        let mut s = FedAdam::new(0.1);
        let mut w = vec![0.0, 0.0, 0.0];
        s.apply(&mut w, &[1.0, -1e-2, 0.0]);
        // First step: m = 0.1·Δ, v = 0.01·Δ², so w = η·0.1Δ/(0.1|Δ| + τ) ≈ η·sign(Δ).
        assert!((w[0] - 0.1 / (1.0 + 0.01)).abs() < 1e-3, "{w:?}");
        assert!(w[1] < 0.0 && w[1] > -0.1, "{w:?}");
        assert_eq!(w[2], 0.0);
    }
}
