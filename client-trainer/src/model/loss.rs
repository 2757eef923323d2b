//! Softmax cross-entropy: the loss of every model, and its gradient with respect to the logits.

use ndarray::{ArrayViewMut2, Axis};

use super::Float;

/// Mean cross-entropy `L = (1/B) Σ_i [lse(z_i) − z_{i,y_i}]` of the logits `z` (one row per
/// sample) against the labels `y`; on return `logits` holds `∂L/∂z = (softmax(z) − onehot(y)) / B`.
///
/// `lse(z) = m + ln Σ_k exp(z_k − m)` with `m = max_k z_k`, so no `exp` overflows.
/// The caller guarantees `logits.nrows() == y.len() > 0` and every label `< logits.ncols()`.
pub(super) fn softmax_cross_entropy<F: Float>(mut logits: ArrayViewMut2<'_, F>, y: &[u8]) -> F {
    let inv_b = F::one() / <F as From<f32>>::from(y.len() as f32);
    let mut total = F::zero();
    for (mut z, &label) in logits.axis_iter_mut(Axis(0)).zip(y) {
        let k = usize::from(label);
        let m = z.fold(F::neg_infinity(), |m, &v| m.max(v));
        let z_k = z[k] - m;
        z.mapv_inplace(|v| (v - m).exp());
        let sum = z.sum();
        // −ln softmax(z)_y = ln Σ exp(z − m) − (z_y − m)
        total += sum.ln() - z_k;
        // (p − onehot(y)) / B with p = exp(z − m) / Σ exp(z − m)
        let scale = inv_b / sum;
        z.mapv_inplace(|e| e * scale);
        z[k] -= inv_b;
    }
    total * inv_b
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn uniform_logits_cost_ln_classes_and_give_p_minus_onehot() {
        let mut z = ndarray::Array2::<f64>::zeros((2, 4));
        let loss = softmax_cross_entropy(z.view_mut(), &[1, 3]);
        assert!((loss - 4f64.ln()).abs() < 1e-12);
        // (1/4 − onehot) / 2
        let expected = array![[0.125, -0.375, 0.125, 0.125], [0.125, 0.125, 0.125, -0.375]];
        assert!((&z - &expected).iter().all(|d| d.abs() < 1e-12), "{z}");
    }

    #[test]
    fn huge_logits_stay_finite() {
        let mut z = array![[1000.0f32, -1000.0], [1000.0, -1000.0]];
        // Right with margin 2000 costs 0; wrong costs 2000.
        let loss = softmax_cross_entropy(z.view_mut(), &[0, 1]);
        assert_eq!(loss, 1000.0);
        assert_eq!(z, array![[0.0, 0.0], [0.5, -0.5]]);
        let mut z = array![[-1e30f32, 1e30, 0.0]];
        assert!(softmax_cross_entropy(z.view_mut(), &[1]).is_finite());
        assert!(z.iter().all(|v| v.is_finite()));
    }

    #[test]
    fn gradient_rows_sum_to_zero() {
        let mut z = array![[0.3f64, -1.2, 2.0], [5.0, 4.0, -3.0], [0.0, 0.1, 0.2]];
        softmax_cross_entropy(z.view_mut(), &[2, 0, 1]);
        for row in z.rows() {
            assert!(row.sum().abs() < 1e-15, "{row}");
        }
    }
}
