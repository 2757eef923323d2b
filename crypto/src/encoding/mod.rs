//! Fixed-point encoding and slot packing of model updates (`DESIGN.md` §4).
//!
//! A client clips each real value `x` to `[−r, r]` and quantizes it to a `q`-bit unsigned
//! integer `u` ([`Quantizer`]); then `S` such integers are packed into one plaintext, one per
//! `b`-bit slot ([`PackingParams`]). Adding packed plaintexts as integers — which is what
//! homomorphic addition of their ciphertexts does — adds the slots element-wise, and the slot
//! width `b` leaves enough head-room that up to `K_max` contributions never carry into the next
//! slot. The decoder unpacks the slot sums `Σu` and subtracts the known offset `K·r`.
//!
//! ```
//! use spddl_crypto::encoding::{Encoder, PackingParams, Quantizer};
//! # use num_bigint::BigUint;
//! # use rand::SeedableRng;
//! // Stochastic rounding needs no secret: a seeded stream keeps runs reproducible. The
//! // encryption that follows draws its `α` from `spddl_crypto::Entropy`, never from this.
//! let mut rounding = rand::rngs::StdRng::seed_from_u64(7);
//! // 16-bit values in [−1, 1], head-room for 128 clients, 2048-bit modulus: 89 slots.
//! let encoder = Encoder::new(Quantizer::new(1.0, 16)?, PackingParams::new(16, 128, 2048)?)?;
//!
//! let a = encoder.encode(&[0.5, -0.25, 0.0], &mut rounding)?;
//! let b = encoder.encode(&[0.25, 0.5, -1.0], &mut rounding)?;
//! // Homomorphic addition adds the packed plaintexts as integers.
//! let sum: Vec<BigUint> = a.iter().zip(&b).map(|(x, y)| x + y).collect();
//!
//! let decoded = encoder.decode_sum(&sum, 3, 2)?;
//! let step = encoder.quantizer().step();
//! for (got, want) in decoded.iter().zip([0.75, 0.25, -1.0]) {
//!     assert!((got - want).abs() <= 2.0 * step); // one step per contribution
//! }
//! # Ok::<(), spddl_crypto::encoding::EncodingError>(())
//! ```

mod packing;
mod quantize;

pub use packing::PackingParams;
pub use quantize::Quantizer;

use num_bigint::BigUint;

/// Why a value or a configuration cannot be encoded or decoded.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodingError {
    /// The clipping bound `r` is not a positive normal number with `2r` finite.
    #[error("clip bound must be positive, normal and at most f64::MAX / 2, got {clip}")]
    InvalidClip {
        /// The rejected bound.
        clip: f64,
    },
    /// The value width `q` is zero or above the supported maximum.
    #[error("value bits {value_bits} outside 1..={max}")]
    ValueBitsOutOfRange {
        /// The rejected width `q`.
        value_bits: u32,
        /// The largest width accepted here.
        max: u32,
    },
    /// `K_max` is zero: a slot must hold at least one contribution.
    #[error("max contributions must be at least 1")]
    ZeroMaxContributions,
    /// The slot width `b = q + ⌈log₂ K_max⌉` exceeds the 64-bit limit on slot sums.
    #[error("slot of {slot_bits} bits exceeds the {max}-bit limit")]
    SlotTooWide {
        /// The slot width `b` the configuration needs.
        slot_bits: u32,
        /// The largest supported slot width.
        max: u32,
    },
    /// The plaintext space cannot hold a single slot below `2^(|n| − 1)`.
    #[error("modulus of {modulus_bits} bits cannot hold one {slot_bits}-bit slot")]
    ModulusTooSmall {
        /// The modulus size `|n|` in bits.
        modulus_bits: u32,
        /// The slot width `b`.
        slot_bits: u32,
    },
    /// An input value is NaN, which has no place on the quantization grid.
    #[error("value at index {index} is nan")]
    NotANumber {
        /// Position of the value in the input.
        index: usize,
    },
    /// A value to pack does not fit in `q` bits.
    #[error("value {value} at index {index} does not fit in {value_bits} bits")]
    ValueTooLarge {
        /// Position of the value in the input.
        index: usize,
        /// The rejected value.
        value: u64,
        /// The value width `q`.
        value_bits: u32,
    },
    /// More contributions were summed than the slots have head-room for.
    #[error("{contributions} contributions exceed the head-room for {max}")]
    TooManyContributions {
        /// The number (or total weight) of contributions claimed.
        contributions: u64,
        /// `K_max`.
        max: u64,
    },
    /// A client weight outside `1..=max_weight`.
    #[error("weight {weight} is outside 1..={max}")]
    WeightOutOfRange {
        /// The weight claimed.
        weight: u64,
        /// The largest weight the round allows.
        max: u64,
    },
    /// The number of plaintexts does not match `⌈len/S⌉`.
    #[error("{len} values need {expected} plaintexts, got {got}")]
    PlaintextCount {
        /// Number of values to unpack.
        len: usize,
        /// `⌈len/S⌉`.
        expected: usize,
        /// Number of plaintexts given.
        got: usize,
    },
    /// A plaintext has bits set above its used slots, so it is not a sum of packed vectors.
    #[error("plaintext {index} has {bits} bits, more than the {max_bits} bits of its slots")]
    PlaintextOverflow {
        /// Position of the plaintext in the input.
        index: usize,
        /// Bit length of the plaintext.
        bits: u64,
        /// Bits covered by the plaintext's used slots.
        max_bits: u64,
    },
    /// Slot sums larger than `K` values of at most `2^q − 1` can add up to: some contribution
    /// was out of range.
    #[error(
        "{count} slot sum(s) exceed {max}, the most the claimed contributions can add up to: \
         slot {index} holds {sum}; slots out of range: {}{}",
        DisplayList(slots),
        if *count > slots.len() as u64 { ", …" } else { "" }
    )]
    SlotSumTooLarge {
        /// Position of the first such value in the unpacked vector.
        index: usize,
        /// Its slot sum.
        sum: u64,
        /// `K · (2^q − 1)`.
        max: u64,
        /// How many slots are out of range.
        count: u64,
        /// The first (at most [`SLOTS_NAMED`]) of them, in increasing order.
        slots: Vec<usize>,
    },
    /// The quantizer's `q` differs from the packing's `q`.
    #[error("quantizer uses {quantizer_bits} bits but packing expects {packing_bits}")]
    BitsMismatch {
        /// `q` of the quantizer.
        quantizer_bits: u32,
        /// `q` of the packing parameters.
        packing_bits: u32,
    },
}

/// How many out-of-range slots an [`EncodingError::SlotSumTooLarge`] names.
pub const SLOTS_NAMED: usize = 8;

/// `1, 5, 9` for an error message.
struct DisplayList<'a>(&'a [usize]);

impl std::fmt::Display for DisplayList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (k, i) in self.0.iter().enumerate() {
            if k > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{i}")?;
        }
        Ok(())
    }
}

/// A [`Quantizer`] and [`PackingParams`] that agree on `q`: real vectors in, plaintexts out.
#[derive(Debug, Clone, PartialEq)]
pub struct Encoder {
    quantizer: Quantizer,
    packing: PackingParams,
}

impl Encoder {
    /// Pairs a quantizer with packing parameters; refuses them if their value widths `q` differ.
    pub fn new(quantizer: Quantizer, packing: PackingParams) -> Result<Self, EncodingError> {
        if quantizer.bits() != packing.value_bits() {
            return Err(EncodingError::BitsMismatch {
                quantizer_bits: quantizer.bits(),
                packing_bits: packing.value_bits(),
            });
        }
        Ok(Self { quantizer, packing })
    }

    /// The quantizer.
    pub fn quantizer(&self) -> &Quantizer {
        &self.quantizer
    }

    /// The packing parameters.
    pub fn packing(&self) -> &PackingParams {
        &self.packing
    }

    /// Quantizes `values` with stochastic rounding and packs them into `⌈len/S⌉` plaintexts.
    ///
    /// `rounding` is a reproducible stream (seeded, so a simulation and a deployment of the
    /// same seed round alike); it must never also serve as encryption randomness, which is
    /// [`crate::Entropy`]'s alone.
    pub fn encode<R: rand::Rng + ?Sized>(
        &self,
        values: &[f64],
        rounding: &mut R,
    ) -> Result<Vec<BigUint>, EncodingError> {
        self.packing
            .pack(&self.quantizer.quantize(values, rounding)?)
    }

    /// The packed form of `(weight / max_weight) · x`, for weighted averaging.
    ///
    /// Scaling the clipped values by `w/W ≤ 1` *before* quantizing (rather than multiplying
    /// the packed slots by `w`) keeps every slot below `2^q`, so the head-room counts
    /// contributions only (DESIGN §4) and a 2048-bit plaintext keeps all its slots. A sum of
    /// `K` such vectors decodes with `contributions = K` to `Σ (w_k/W)·x_k`; the aggregator
    /// multiplies by `W / Σ w_k`. Stochastic rounding keeps the sum unbiased; a client of
    /// weight `w` loses `log₂(W/w)` bits of precision, in proportion to its smaller share of
    /// the mean.
    pub fn encode_scaled<R: rand::Rng + ?Sized>(
        &self,
        values: &[f64],
        weight: u64,
        max_weight: u64,
        rounding: &mut R,
    ) -> Result<Vec<BigUint>, EncodingError> {
        if weight == 0 || weight > max_weight {
            return Err(EncodingError::WeightOutOfRange {
                weight,
                max: max_weight,
            });
        }
        let r = self.quantizer.clip();
        let f = weight as f64 / max_weight as f64;
        let scaled: Vec<f64> = values
            .iter()
            .map(|x| if x.is_nan() { *x } else { x.clamp(-r, r) * f })
            .collect();
        self.encode(&scaled, rounding)
    }

    /// Unpacks the sum of `contributions` encoded vectors of length `len` and returns the sums
    /// of their clipped values, each within `contributions` quantization steps.
    pub fn decode_sum(
        &self,
        plaintexts: &[BigUint],
        len: usize,
        contributions: u64,
    ) -> Result<Vec<f64>, EncodingError> {
        let sums = self.packing.unpack_sums(plaintexts, len, contributions)?;
        Ok(self.quantizer.dequantize_sum(&sums, contributions))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{RngExt, SeedableRng};
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn weighted_encodings_sum_to_the_weighted_sum() {
        let mut rng = ChaCha20Rng::seed_from_u64(17);
        let enc = Encoder::new(
            Quantizer::new(1.0, 12).unwrap(),
            PackingParams::new(12, 2, 1024).unwrap(),
        )
        .unwrap();
        let xs = [vec![0.5, -0.25, 1.0, -1.0], vec![-0.5, 0.75, 0.0, 1.0]];
        let ws = [100u64, 200];
        let mut total: Vec<BigUint> = vec![BigUint::ZERO; enc.packing().plaintexts_for(4)];
        for (x, w) in xs.iter().zip(ws) {
            for (t, p) in total
                .iter_mut()
                .zip(enc.encode_scaled(x, w, 200, &mut rng).unwrap())
            {
                *t += p;
            }
        }
        // Σ (w_k/W)·x_k with W = 200, within one quantization step per contribution
        let got = enc.decode_sum(&total, 4, 2).unwrap();
        let step = enc.quantizer().step();
        for j in 0..4 {
            let want = 0.5 * xs[0][j] + 1.0 * xs[1][j];
            assert!(
                (got[j] - want).abs() <= 2.0 * step,
                "{j}: {} vs {want}",
                got[j]
            );
        }
        assert_eq!(
            enc.encode_scaled(&xs[0], 0, 200, &mut rng),
            Err(EncodingError::WeightOutOfRange {
                weight: 0,
                max: 200
            })
        );
        assert_eq!(
            enc.encode_scaled(&xs[0], 201, 200, &mut rng),
            Err(EncodingError::WeightOutOfRange {
                weight: 201,
                max: 200
            })
        );
        // a full-weight client's slots reach 2^q − 1 and still never need weight head-room
        let top = enc.encode_scaled(&[1.0; 4], 200, 200, &mut rng).unwrap();
        let bottom = enc.encode_scaled(&[-1.0; 4], 200, 200, &mut rng).unwrap();
        let slot = |p: &BigUint| p & BigUint::from(0xfffu32);
        assert_eq!(slot(&top[0]), BigUint::from(0xfffu32));
        assert_eq!(slot(&bottom[0]), BigUint::ZERO);
    }

    #[test]
    fn new_refuses_mismatched_value_bits() {
        let err = Encoder::new(
            Quantizer::new(1.0, 8).unwrap(),
            PackingParams::new(16, 4, 2048).unwrap(),
        );
        assert_eq!(
            err,
            Err(EncodingError::BitsMismatch {
                quantizer_bits: 8,
                packing_bits: 16
            })
        );
    }

    #[test]
    fn encode_add_decode_is_within_k_steps() {
        let mut rng = ChaCha20Rng::seed_from_u64(7);
        let encoder = Encoder::new(
            Quantizer::new(2.0, 12).unwrap(),
            PackingParams::new(12, 10, 512).unwrap(),
        )
        .unwrap();
        let (len, k) = (300, 10);
        let mut want = vec![0.0; len];
        let mut sum = vec![BigUint::ZERO; encoder.packing().plaintexts_for(len)];
        for _ in 0..k {
            let x: Vec<f64> = (0..len).map(|_| rng.random_range(-2.5..2.5)).collect();
            for (w, xi) in want.iter_mut().zip(&x) {
                *w += xi.clamp(-2.0, 2.0);
            }
            for (s, p) in sum.iter_mut().zip(encoder.encode(&x, &mut rng).unwrap()) {
                *s += p;
            }
        }
        let got = encoder.decode_sum(&sum, len, k).unwrap();
        let bound = k as f64 * encoder.quantizer().step();
        for (g, w) in got.iter().zip(&want) {
            assert!((g - w).abs() <= bound, "{g} vs {w}");
        }
    }
}
