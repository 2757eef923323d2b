//! Strategies: how the mean client update becomes the next global model. A strategy only ever
//! sees the decrypted aggregate, never an individual update (as in Flower).

/// Turns the round's mean update into the next global model.
///
/// A strategy that keeps state across rounds (FedAdam's moments) gives it out with
/// [`Strategy::state`]; the aggregator stores it with the model after every round, in the same
/// transaction, and hands it back with [`Strategy::restore`] after a restart, so a restarted
/// run goes on exactly as an uninterrupted one.
pub trait Strategy {
    /// Updates `global` in place from the mean client update `Δ̄ = Σ w_k·Δ_k / Σ w_k`.
    fn apply(&mut self, global: &mut [f32], mean_update: &[f32]);
    /// A short name for reports (also stored with the state, so a run is never resumed
    /// with another strategy).
    fn name(&self) -> &'static str;
    /// The state carried from one round to the next, as bytes; empty for a stateless
    /// strategy.
    fn state(&self) -> Vec<u8> {
        Vec::new()
    }
    /// Takes back a state [`Strategy::state`] gave out (after a restart).
    fn restore(&mut self, state: &[u8]) -> Result<(), StrategyError> {
        if state.is_empty() {
            Ok(())
        } else {
            Err(StrategyError(format!(
                "{} keeps no state, but {} bytes of it were stored",
                self.name(),
                state.len()
            )))
        }
    }
}

/// A stored strategy state that does not fit the strategy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("strategy state: {0}")]
pub struct StrategyError(String);

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
    /// `m` and `v`, each as a length (u64) and that many f32, little-endian.
    fn state(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(16 + 4 * (self.m.len() + self.v.len()));
        for moment in [&self.m, &self.v] {
            out.extend_from_slice(&(moment.len() as u64).to_le_bytes());
            out.extend(moment.iter().flat_map(|x| x.to_le_bytes()));
        }
        out
    }
    fn restore(&mut self, state: &[u8]) -> Result<(), StrategyError> {
        let bad = |why: &str| StrategyError(format!("fedadam: {why}"));
        let mut rest = state;
        let mut moments = Vec::with_capacity(2);
        for _ in 0..2 {
            let (len, tail) = rest
                .split_first_chunk::<8>()
                .ok_or_else(|| bad("truncated"))?;
            let len = usize::try_from(u64::from_le_bytes(*len))
                .ok()
                .and_then(|n| n.checked_mul(4))
                .filter(|&n| n <= tail.len())
                .ok_or_else(|| bad("a moment longer than the stored bytes"))?;
            let (values, tail) = tail.split_at(len);
            moments.push(
                values
                    .chunks_exact(4)
                    .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
                    .collect::<Vec<f32>>(),
            );
            rest = tail;
        }
        if !rest.is_empty() {
            return Err(bad("bytes after the moments"));
        }
        let v = moments.pop().unwrap_or_default();
        let m = moments.pop().unwrap_or_default();
        if m.len() != v.len() {
            return Err(bad("m and v of different lengths"));
        }
        self.m = m;
        self.v = v;
        Ok(())
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

    #[test]
    fn fedadam_restored_from_its_state_takes_the_same_steps() {
        let mut a = FedAdam::new(0.1);
        let mut w = vec![0.5, -0.5];
        a.apply(&mut w, &[1.0, -0.5]);
        let mut b = FedAdam::new(0.1);
        b.restore(&a.state()).unwrap();
        let (mut wa, mut wb) = (w.clone(), w.clone());
        a.apply(&mut wa, &[0.25, 0.75]);
        b.apply(&mut wb, &[0.25, 0.75]);
        assert_eq!(wa, wb);
        // Without the moments the step differs: the state matters.
        let mut c = FedAdam::new(0.1);
        let mut wc = w.clone();
        c.apply(&mut wc, &[0.25, 0.75]);
        assert_ne!(wa, wc);
        let state = a.state();
        for bad in [
            &state[..5],
            &state[..state.len() - 1],
            &[state.as_slice(), &[0]].concat(),
        ] {
            assert!(FedAdam::new(0.1).restore(bad).is_err());
        }
        assert!(FedAvg.restore(&state).is_err());
        FedAvg.restore(&FedAvg.state()).unwrap();
    }
}
