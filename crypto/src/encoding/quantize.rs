//! Clipping and unbiased stochastic quantization of real values (`DESIGN.md` §4).

use rand::{Rng, RngExt};
use serde::{Deserialize, Deserializer, Serialize};

use super::EncodingError;

/// Largest supported value width `q`: `2^q − 1` and every level stay exact in an `f64`, and
/// 32 bits are far finer than the noise of a gradient.
const MAX_BITS: u32 = 32;

/// Maps reals in `[−r, r]` to `q`-bit unsigned levels `u = round((x + r)/(2r) · (2^q − 1))`.
///
/// Rounding is stochastic — up with probability equal to the fractional part — so
/// `E[dequantize(u)] = clip(x)` and sums of many quantized values stay unbiased.
///
/// **Error bound.** `u` is the floor or the ceiling of the exact grid position, so each value
/// is off by less than one quantization step `2r/(2^q − 1)` ([`Quantizer::step`]), and a sum of
/// `K` contributions by less than `K` steps (plus `f64` rounding, relative `2^−52`). Clipping
/// adds its own error for values outside `[−r, r]`; the bound is against `clip(x)`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Quantizer {
    /// `r`: positive, normal, with `2r` finite.
    clip: f64,
    /// `q` in `1..=32`.
    bits: u32,
}

impl Quantizer {
    /// A quantizer for values clipped to `[−clip, clip]` with `bits` bits (`r`, `q`).
    ///
    /// Refuses a `clip` that is not a positive normal number with `2r` finite (so the grid
    /// arithmetic neither overflows nor loses its precision), and `bits` outside `1..=32`.
    pub fn new(clip: f64, bits: u32) -> Result<Self, EncodingError> {
        if !(clip.is_normal() && clip > 0.0 && (2.0 * clip).is_finite()) {
            return Err(EncodingError::InvalidClip { clip });
        }
        if !(1..=MAX_BITS).contains(&bits) {
            return Err(EncodingError::ValueBitsOutOfRange {
                value_bits: bits,
                max: MAX_BITS,
            });
        }
        Ok(Self { clip, bits })
    }

    /// The clipping bound `r`.
    pub fn clip(&self) -> f64 {
        self.clip
    }

    /// The value width `q`.
    pub fn bits(&self) -> u32 {
        self.bits
    }

    /// The top level `2^q − 1`, to which `r` maps.
    pub fn max_level(&self) -> u64 {
        (1 << self.bits) - 1
    }

    /// One quantization step `2r/(2^q − 1)`: the per-value error bound.
    pub fn step(&self) -> f64 {
        2.0 * self.clip / self.max_level() as f64
    }

    /// Clips each value to `[−r, r]` (±∞ included) and quantizes it with stochastic rounding.
    ///
    /// Refuses NaN, naming its index. Every returned level is at most `2^q − 1`.
    pub fn quantize<R: Rng + ?Sized>(
        &self,
        values: &[f64],
        rng: &mut R,
    ) -> Result<Vec<u64>, EncodingError> {
        let (r, top) = (self.clip, self.max_level() as f64);
        values
            .iter()
            .enumerate()
            .map(|(index, &x)| {
                if x.is_nan() {
                    return Err(EncodingError::NotANumber { index });
                }
                // Grid position t = (clip(x) + r)/(2r) · (2^q − 1), kept in [0, 2^q − 1].
                let t = ((x.clamp(-r, r) + r) / (2.0 * r) * top).clamp(0.0, top);
                let floor = t.floor();
                // Round up with probability frac(t), so E[u] = t. At the top level frac = 0.
                let up = rng.random::<f64>() < t - floor;
                Ok(floor as u64 + u64::from(up))
            })
            .collect()
    }

    /// The real value of one level: `u · 2r/(2^q − 1) − r`.
    pub fn dequantize(&self, level: u64) -> f64 {
        level as f64 * self.step() - self.clip
    }

    /// Real sums from slot sums `Σu` of `contributions` (`K`) vectors:
    /// `Σx ≈ Σu · 2r/(2^q − 1) − K·r`, each within `K` steps of the sum of clipped values.
    ///
    /// For a weighted sum, `contributions` is the total weight `Σw`.
    pub fn dequantize_sum(&self, sums: &[u64], contributions: u64) -> Vec<f64> {
        let offset = contributions as f64 * self.clip; // K·r
        sums.iter()
            .map(|&sum| sum as f64 * self.step() - offset)
            .collect()
    }
}

/// Deserializes through [`Quantizer::new`], so a stored configuration is checked again.
impl<'de> Deserialize<'de> for Quantizer {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Unchecked {
            clip: f64,
            bits: u32,
        }
        let raw = Unchecked::deserialize(deserializer)?;
        Self::new(raw.clip, raw.bits).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha20Rng;

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 64,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(7),
            ..ProptestConfig::default()
        }
    }

    #[test]
    fn new_refuses_bad_parameters() {
        for clip in [
            0.0,
            -1.0,
            f64::NAN,
            f64::INFINITY,
            f64::NEG_INFINITY,
            f64::MAX,
            1e-320,
        ] {
            assert!(matches!(
                Quantizer::new(clip, 16),
                Err(EncodingError::InvalidClip { .. })
            ));
        }
        for bits in [0, 33, u32::MAX] {
            assert_eq!(
                Quantizer::new(1.0, bits),
                Err(EncodingError::ValueBitsOutOfRange {
                    value_bits: bits,
                    max: 32
                })
            );
        }
        assert!(Quantizer::new(1.0, 1).is_ok());
        assert!(Quantizer::new(1e-9, 32).is_ok());
    }

    #[test]
    fn nan_is_refused_with_its_index() {
        let quantizer = Quantizer::new(1.0, 8).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        assert_eq!(
            quantizer.quantize(&[0.0, 1.0, f64::NAN, 0.5], &mut rng),
            Err(EncodingError::NotANumber { index: 2 })
        );
    }

    #[test]
    fn grid_points_and_clipped_values_are_exact() {
        let quantizer = Quantizer::new(2.0, 4).unwrap(); // step = 4/15
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let values = [
            -2.0,
            2.0,
            f64::INFINITY,
            f64::NEG_INFINITY,
            1e300,
            -3.0,
            quantizer.dequantize(5),
        ];
        for _ in 0..100 {
            let levels = quantizer.quantize(&values, &mut rng).unwrap();
            assert_eq!(levels, [0, 15, 15, 0, 15, 0, 5]);
        }
        assert_eq!(quantizer.dequantize(0), -2.0);
        assert_eq!(quantizer.dequantize(15), 2.0);
    }

    #[test]
    fn extreme_widths_stay_in_range() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        for bits in [1, 32] {
            let quantizer = Quantizer::new(1.0, bits).unwrap();
            let values: Vec<f64> = (0..1000).map(|_| rng.random_range(-1.5..1.5)).collect();
            let levels = quantizer.quantize(&values, &mut rng).unwrap();
            assert!(levels.iter().all(|&u| u <= quantizer.max_level()));
        }
    }

    #[test]
    fn serde_round_trips_and_revalidates() {
        let quantizer = Quantizer::new(0.5, 16).unwrap();
        let json = serde_json::to_string(&quantizer).unwrap();
        assert_eq!(serde_json::from_str::<Quantizer>(&json).unwrap(), quantizer);
        assert!(serde_json::from_str::<Quantizer>(r#"{"clip":0.5,"bits":33}"#).is_err());
        assert!(serde_json::from_str::<Quantizer>(r#"{"clip":-1.0,"bits":8}"#).is_err());
    }

    proptest! {
        #![proptest_config(config())]

        /// Each level is the floor or ceiling of the grid position: less than one step off.
        #[test]
        fn each_value_is_within_one_step(
            bits in 1u32..=32,
            clip in 0.01f64..100.0,
            xs in prop::collection::vec(-150.0f64..150.0, 0..100),
            seed: u64,
        ) {
            let quantizer = Quantizer::new(clip, bits).unwrap();
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let levels = quantizer.quantize(&xs, &mut rng).unwrap();
            prop_assert_eq!(levels.len(), xs.len());
            for (&u, x) in levels.iter().zip(&xs) {
                prop_assert!(u <= quantizer.max_level());
                let error = (quantizer.dequantize(u) - x.clamp(-clip, clip)).abs();
                prop_assert!(error < quantizer.step() * (1.0 + 1e-9), "{} off by {}", x, error);
            }
        }

        /// Σ of K quantized vectors, dequantized with the K·r offset, is within K steps.
        #[test]
        fn dequantize_sum_is_within_k_steps(
            bits in 1u32..=32,
            clip in 0.01f64..100.0,
            k in 1u64..=32,
            len in 0usize..64,
            seed: u64,
        ) {
            let quantizer = Quantizer::new(clip, bits).unwrap();
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let (mut sums, mut want) = (vec![0u64; len], vec![0.0f64; len]);
            for _ in 0..k {
                let range = -1.2 * clip..1.2 * clip;
                let xs: Vec<f64> = (0..len).map(|_| rng.random_range(range.clone())).collect();
                for (w, x) in want.iter_mut().zip(&xs) {
                    *w += x.clamp(-clip, clip);
                }
                for (s, u) in sums.iter_mut().zip(quantizer.quantize(&xs, &mut rng).unwrap()) {
                    *s += u;
                }
            }
            let bound = k as f64 * quantizer.step() * (1.0 + 1e-9);
            for (got, want) in quantizer.dequantize_sum(&sums, k).iter().zip(&want) {
                prop_assert!((got - want).abs() < bound, "{} vs {}", got, want);
            }
        }

        /// The mean of many dequantized draws of one x is clip(x), within 6 standard deviations
        /// of the mean (a Bernoulli step has variance ≤ step²/4). Round-to-nearest or floor
        /// would be off by up to half or a whole step and fail.
        #[test]
        fn stochastic_rounding_is_unbiased(x in -1.5f64..1.5, bits in 1u32..=8, seed: u64) {
            const DRAWS: usize = 4096;
            let quantizer = Quantizer::new(1.0, bits).unwrap();
            let mut rng = ChaCha20Rng::seed_from_u64(seed);
            let levels = quantizer.quantize(&[x; DRAWS], &mut rng).unwrap();
            let mean = levels.iter().map(|&u| quantizer.dequantize(u)).sum::<f64>() / DRAWS as f64;
            let sigma = quantizer.step() / 2.0 / (DRAWS as f64).sqrt();
            prop_assert!((mean - x.clamp(-1.0, 1.0)).abs() <= 6.0 * sigma + 1e-12,
                "mean {} for x {}", mean, x);
        }
    }

    /// A fixed point whose nearest level is far from it: 0.123 at q = 4 sits at t = 8.4225.
    #[test]
    fn stochastic_rounding_is_unbiased_off_grid() {
        const DRAWS: usize = 100_000;
        let quantizer = Quantizer::new(1.0, 4).unwrap();
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let levels = quantizer.quantize(&[0.123; DRAWS], &mut rng).unwrap();
        let ups = levels.iter().filter(|&&u| u == 9).count();
        assert_eq!(ups + levels.iter().filter(|&&u| u == 8).count(), DRAWS);
        let mean = levels.iter().map(|&u| quantizer.dequantize(u)).sum::<f64>() / DRAWS as f64;
        // σ of the mean: step · √(p(1−p)/N) with p = 0.4225.
        let sigma = quantizer.step() * (0.4225f64 * 0.5775 / DRAWS as f64).sqrt();
        assert!((mean - 0.123).abs() <= 6.0 * sigma, "mean {mean}");
    }
}
