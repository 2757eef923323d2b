//! Packing `q`-bit values into `b`-bit slots of a plaintext (`DESIGN.md` §4).

use num_bigint::BigUint;
use serde::{Deserialize, Deserializer, Serialize};

use super::EncodingError;

/// Largest slot width `b`: slot sums are read back as `u64`.
const MAX_SLOT_BITS: u32 = 64;

/// Validated slot layout: `q`-bit values in `b = q + ⌈log₂ K_max⌉`-bit slots,
/// `S = ⌊(|n| − 1)/b⌋` slots per plaintext, slot 0 in the least-significant bits.
///
/// **Why slot sums cannot overflow.** Every packed value is below `2^q`, so a sum of
/// `K ≤ K_max ≤ 2^⌈log₂ K_max⌉` of them is below `2^(q + ⌈log₂ K_max⌉) = 2^b` and never carries
/// into the next slot. The `S` slots span `S·b ≤ |n| − 1` bits, so a plaintext — packed or a sum
/// of up to `K_max` packed plaintexts — is below `2^(|n| − 1) ≤ n` and never wraps modulo `n`.
/// [`PackingParams::new`] refuses every configuration where this argument fails, and
/// [`PackingParams::unpack_sums`] refuses `K > K_max`.
///
/// For weighted sums, count the weights as contributions: `Σw ≤ K_max`.
///
/// Reference point: `q = 16`, `K_max = 128`, `|n| = 2048` give `b = 23`, `S = 89`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct PackingParams {
    /// `q`.
    value_bits: u32,
    /// `K_max`.
    max_contributions: u64,
    /// `|n|`, the bit length of the Paillier modulus.
    modulus_bits: u32,
    /// `b`, derived.
    #[serde(skip_serializing)]
    slot_bits: u32,
    /// `S`, derived.
    #[serde(skip_serializing)]
    slots: usize,
}

impl PackingParams {
    /// Slot layout for `value_bits`-bit values (`q`), up to `max_contributions` summands
    /// (`K_max`) and a modulus of `modulus_bits` bits (`|n|`).
    ///
    /// Refuses `q = 0`, `K_max = 0`, a slot width `b` above 64 bits, and a modulus too small
    /// for one slot (`S = 0`).
    pub fn new(
        value_bits: u32,
        max_contributions: u64,
        modulus_bits: u32,
    ) -> Result<Self, EncodingError> {
        if !(1..=MAX_SLOT_BITS).contains(&value_bits) {
            return Err(EncodingError::ValueBitsOutOfRange {
                value_bits,
                max: MAX_SLOT_BITS,
            });
        }
        if max_contributions == 0 {
            return Err(EncodingError::ZeroMaxContributions);
        }
        // ⌈log₂ K_max⌉ is the bit length of K_max − 1.
        let headroom = u64::BITS - (max_contributions - 1).leading_zeros();
        let slot_bits = value_bits + headroom; // both ≤ 64: no overflow
        if slot_bits > MAX_SLOT_BITS {
            return Err(EncodingError::SlotTooWide {
                slot_bits,
                max: MAX_SLOT_BITS,
            });
        }
        let slots = modulus_bits.saturating_sub(1) / slot_bits;
        if slots == 0 {
            return Err(EncodingError::ModulusTooSmall {
                modulus_bits,
                slot_bits,
            });
        }
        Ok(Self {
            value_bits,
            max_contributions,
            modulus_bits,
            slot_bits,
            slots: slots as usize,
        })
    }

    /// `q`: every packed value is below `2^q`.
    pub fn value_bits(&self) -> u32 {
        self.value_bits
    }

    /// `b = q + ⌈log₂ K_max⌉`.
    pub fn slot_bits(&self) -> u32 {
        self.slot_bits
    }

    /// `S = ⌊(|n| − 1)/b⌋`.
    pub fn slots_per_plaintext(&self) -> usize {
        self.slots
    }

    /// `K_max`: how many packed vectors may be summed before unpacking.
    pub fn max_contributions(&self) -> u64 {
        self.max_contributions
    }

    /// `|n|`.
    pub fn modulus_bits(&self) -> u32 {
        self.modulus_bits
    }

    /// The largest value that can be packed, `2^q − 1`.
    pub fn max_value(&self) -> u64 {
        u64::MAX >> (u64::BITS - self.value_bits)
    }

    /// Number of plaintexts for `len` values, `⌈len/S⌉`.
    pub fn plaintexts_for(&self, len: usize) -> usize {
        len.div_ceil(self.slots)
    }

    /// Packs values `< 2^q` into `⌈len/S⌉` plaintexts; value `i` goes to slot `i mod S` of
    /// plaintext `⌊i/S⌋`, and the last plaintext may be partly filled.
    ///
    /// Refuses a value `≥ 2^q`, naming its index.
    pub fn pack(&self, values: &[u64]) -> Result<Vec<BigUint>, EncodingError> {
        let max = self.max_value();
        if let Some((index, &value)) = values.iter().enumerate().find(|(_, v)| **v > max) {
            return Err(EncodingError::ValueTooLarge {
                index,
                value,
                value_bits: self.value_bits,
            });
        }
        Ok(values
            .chunks(self.slots)
            // Horner from the last slot down leaves slot 0 in the least-significant bits.
            .map(|chunk| {
                chunk
                    .iter()
                    .rev()
                    .fold(BigUint::ZERO, |acc, &value| (acc << self.slot_bits) + value)
            })
            .collect())
    }

    /// Reads the `len` slot sums back from the sum of `contributions` (`K`) packed vectors.
    ///
    /// The plaintexts come from a decryption and are untrusted: refuses `K > K_max`, a count
    /// other than `⌈len/S⌉`, a plaintext with bits above its used slots, and a slot sum above
    /// `K·(2^q − 1)`. Memory use is bounded by `len` and the validated plaintext sizes.
    pub fn unpack_sums(
        &self,
        plaintexts: &[BigUint],
        len: usize,
        contributions: u64,
    ) -> Result<Vec<u64>, EncodingError> {
        if contributions > self.max_contributions {
            return Err(EncodingError::TooManyContributions {
                contributions,
                max: self.max_contributions,
            });
        }
        let expected = self.plaintexts_for(len);
        if plaintexts.len() != expected {
            return Err(EncodingError::PlaintextCount {
                len,
                expected,
                got: plaintexts.len(),
            });
        }
        // K ≤ K_max ≤ 2^⌈log₂ K_max⌉, so K·(2^q − 1) < 2^b ≤ 2^64: the product cannot saturate.
        let max_sum = contributions.saturating_mul(self.max_value());
        let mask = u64::MAX >> (u64::BITS - self.slot_bits);
        let mut sums = Vec::with_capacity(len);
        // The first out-of-range slot, and how many there are: a decoding failure names them.
        let mut too_large: Option<(usize, u64)> = None;
        let mut count = 0u64;
        let mut named = Vec::new();
        for (index, plaintext) in plaintexts.iter().enumerate() {
            let used = self.slots.min(len - sums.len());
            let max_bits = used as u64 * u64::from(self.slot_bits);
            if plaintext.bits() > max_bits {
                return Err(EncodingError::PlaintextOverflow {
                    index,
                    bits: plaintext.bits(),
                    max_bits,
                });
            }
            let mut rest = plaintext.clone();
            for _ in 0..used {
                let sum = rest.iter_u64_digits().next().unwrap_or(0) & mask;
                if sum > max_sum {
                    too_large.get_or_insert((sums.len(), sum));
                    count += 1;
                    if named.len() < super::SLOTS_NAMED {
                        named.push(sums.len());
                    }
                }
                sums.push(sum);
                rest >>= self.slot_bits;
            }
        }
        if let Some((index, sum)) = too_large {
            return Err(EncodingError::SlotSumTooLarge {
                index,
                sum,
                max: max_sum,
                count,
                slots: named,
            });
        }
        Ok(sums)
    }
}

/// Deserializes `q`, `K_max` and `|n|` through [`PackingParams::new`], so a stored layout is
/// checked again and `b`, `S` are recomputed rather than trusted.
impl<'de> Deserialize<'de> for PackingParams {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(deny_unknown_fields)]
        struct Unchecked {
            value_bits: u32,
            max_contributions: u64,
            modulus_bits: u32,
        }
        let raw = Unchecked::deserialize(deserializer)?;
        Self::new(raw.value_bits, raw.max_contributions, raw.modulus_bits)
            .map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 64,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(7),
            ..ProptestConfig::default()
        }
    }

    /// Valid layouts with `b ≤ 64` (q ≤ 54, ⌈log₂ K_max⌉ ≤ 10) and `S ≥ 1` (|n| ≥ 65).
    fn params() -> impl Strategy<Value = PackingParams> {
        (1u32..=54, 1u64..=1024, 65u32..=2048)
            .prop_map(|(q, k_max, n_bits)| PackingParams::new(q, k_max, n_bits).unwrap())
    }

    fn sum_plaintexts(a: &mut [BigUint], b: &[BigUint]) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter_mut().zip(b) {
            *x += y;
        }
    }

    #[test]
    fn reference_point_16_bits_128_contributions_2048_bits() {
        let params = PackingParams::new(16, 128, 2048).unwrap();
        assert_eq!(params.slot_bits(), 23);
        assert_eq!(params.slots_per_plaintext(), 89);
        assert_eq!(params.max_value(), 65535);
        assert_eq!(
            (
                params.value_bits(),
                params.max_contributions(),
                params.modulus_bits()
            ),
            (16, 128, 2048)
        );
        assert_eq!(
            [0, 1, 89, 90, 178, 179].map(|len| params.plaintexts_for(len)),
            [0, 1, 1, 2, 2, 3]
        );
        // Slot 0 in the least-significant bits; the last plaintext partly filled.
        let packed = params
            .pack(&[[1, 2].as_slice(), &[0; 86], &[3, 4]].concat())
            .unwrap();
        let slot_88 = BigUint::from(3u8) << (88 * 23u32);
        assert_eq!(packed, [slot_88 + (2u32 << 23) + 1u32, BigUint::from(4u8)]);
    }

    #[test]
    fn headroom_is_ceil_log2_of_max_contributions() {
        for (k_max, headroom) in [
            (1, 0),
            (2, 1),
            (3, 2),
            (4, 2),
            (5, 3),
            (128, 7),
            (129, 8),
            (1 << 32, 32),
            ((1 << 32) + 1, 33),
            (1 << 48, 48),
        ] {
            let params = PackingParams::new(16, k_max, 4096).unwrap();
            assert_eq!(params.slot_bits(), 16 + headroom, "K_max = {k_max}");
        }
    }

    #[test]
    fn new_refuses_configurations_that_can_overflow() {
        use EncodingError::*;
        let cases = [
            (
                (0, 128, 2048),
                ValueBitsOutOfRange {
                    value_bits: 0,
                    max: 64,
                },
            ),
            (
                (65, 1, 2048),
                ValueBitsOutOfRange {
                    value_bits: 65,
                    max: 64,
                },
            ),
            (
                (u32::MAX, 1, 2048),
                ValueBitsOutOfRange {
                    value_bits: u32::MAX,
                    max: 64,
                },
            ),
            ((16, 0, 2048), ZeroMaxContributions),
            (
                (60, 32, 2048),
                SlotTooWide {
                    slot_bits: 65,
                    max: 64,
                },
            ),
            (
                (64, 2, 2048),
                SlotTooWide {
                    slot_bits: 65,
                    max: 64,
                },
            ),
            (
                (1, (1 << 63) + 1, 2048),
                SlotTooWide {
                    slot_bits: 65,
                    max: 64,
                },
            ),
            (
                (16, u64::MAX, 2048),
                SlotTooWide {
                    slot_bits: 80,
                    max: 64,
                },
            ),
            (
                (16, 128, 23),
                ModulusTooSmall {
                    modulus_bits: 23,
                    slot_bits: 23,
                },
            ),
            (
                (16, 128, 1),
                ModulusTooSmall {
                    modulus_bits: 1,
                    slot_bits: 23,
                },
            ),
            (
                (16, 128, 0),
                ModulusTooSmall {
                    modulus_bits: 0,
                    slot_bits: 23,
                },
            ),
        ];
        for ((q, k_max, n_bits), want) in cases {
            assert_eq!(
                PackingParams::new(q, k_max, n_bits),
                Err(want),
                "{q}/{k_max}/{n_bits}"
            );
        }
    }

    #[test]
    fn new_accepts_the_tightest_valid_configurations() {
        for ((q, k_max, n_bits), (b, s)) in [
            ((16, 128, 24), (23, 1)),
            ((64, 1, 65), (64, 1)),
            ((1, 1, 2), (1, 1)),
            ((1, 1 << 63, 2048), (64, 31)),
            ((32, 1 << 32, 2048), (64, 31)),
        ] {
            let params = PackingParams::new(q, k_max, n_bits).unwrap();
            assert_eq!((params.slot_bits(), params.slots_per_plaintext()), (b, s));
        }
    }

    /// K = K_max copies of vectors of 2^q − 1 fill every slot to its largest sum and still
    /// unpack exactly, below 2^(|n| − 1).
    #[test]
    fn worst_case_sums_at_max_contributions_do_not_overflow() {
        for (q, k_max, n_bits, len) in [
            (16, 128, 2048, 500),
            (1, 1, 2, 3),
            (64, 1, 65, 4),
            (8, 5, 100, 37),
            (63, 2, 2048, 70),
            (16, 1000, 300, 100),
            (32, 1 << 32, 2048, 100),
        ] {
            let params = PackingParams::new(q, k_max, n_bits).unwrap();
            let packed = params.pack(&vec![params.max_value(); len]).unwrap();
            let sum: Vec<BigUint> = if k_max <= 1000 {
                let mut sum = packed.clone();
                for _ in 1..k_max {
                    sum_plaintexts(&mut sum, &packed);
                }
                sum
            } else {
                // Adding K_max times, as a scalar multiplication.
                packed.iter().map(|p| p * k_max).collect()
            };
            assert!(sum.iter().all(|p| p.bits() < u64::from(n_bits)));
            let want = u64::try_from(u128::from(k_max) * u128::from(params.max_value())).unwrap();
            assert_eq!(
                params.unpack_sums(&sum, len, k_max).unwrap(),
                vec![want; len]
            );
        }
    }

    #[test]
    fn pack_refuses_a_value_above_q_bits() {
        let params = PackingParams::new(16, 128, 2048).unwrap();
        assert_eq!(
            params.pack(&[0, 65535, 7, 65536, 1 << 40]),
            Err(EncodingError::ValueTooLarge {
                index: 3,
                value: 65536,
                value_bits: 16
            })
        );
    }

    #[test]
    fn unpack_refuses_bits_above_the_slots() {
        let params = PackingParams::new(16, 128, 2048).unwrap(); // S·b = 89·23 = 2047
        let top = BigUint::from(1u8) << 2047u32;
        assert_eq!(
            params.unpack_sums(std::slice::from_ref(&top), 89, 1),
            Err(EncodingError::PlaintextOverflow {
                index: 0,
                bits: 2048,
                max_bits: 2047
            })
        );
        // A sum far above any modulus is refused before it is read.
        let huge = BigUint::from(1u8) << 1_000_000u32;
        assert!(matches!(
            params.unpack_sums(&[BigUint::ZERO, huge], 100, 1),
            Err(EncodingError::PlaintextOverflow { index: 1, .. })
        ));
        // Unused slots of a partly filled last plaintext must be empty too.
        let stray = BigUint::from(1u8) << 23u32;
        assert_eq!(
            params.unpack_sums(&[BigUint::ZERO, stray], 90, 1),
            Err(EncodingError::PlaintextOverflow {
                index: 1,
                bits: 24,
                max_bits: 23
            })
        );
    }

    #[test]
    fn unpack_refuses_inconsistent_inputs() {
        let params = PackingParams::new(16, 128, 2048).unwrap();
        let one = params.pack(&[1; 90]).unwrap();
        assert_eq!(
            params.unpack_sums(&one, 90, 129),
            Err(EncodingError::TooManyContributions {
                contributions: 129,
                max: 128
            })
        );
        assert_eq!(
            params.unpack_sums(&one[..1], 90, 1),
            Err(EncodingError::PlaintextCount {
                len: 90,
                expected: 2,
                got: 1
            })
        );
        assert_eq!(
            params.unpack_sums(&one, 89, 1),
            Err(EncodingError::PlaintextCount {
                len: 89,
                expected: 1,
                got: 2
            })
        );
        // Slot 1 holds 65536, more than one contribution of at most 65535 can give.
        let too_big = params.pack(&[0, 65535]).unwrap()[0].clone() + (BigUint::from(1u8) << 23u32);
        assert_eq!(
            params.unpack_sums(&[too_big], 2, 1),
            Err(EncodingError::SlotSumTooLarge {
                index: 1,
                sum: 65536,
                max: 65535,
                count: 1,
                slots: vec![1],
            })
        );
        assert!(matches!(
            params.unpack_sums(&one[1..], 1, 0),
            Err(EncodingError::SlotSumTooLarge {
                index: 0,
                sum: 1,
                max: 0,
                ..
            })
        ));
        assert_eq!(params.unpack_sums(&[], 0, 0), Ok(vec![]));
    }

    #[test]
    fn serde_round_trips_and_revalidates() {
        let params = PackingParams::new(16, 128, 2048).unwrap();
        let json = serde_json::to_string(&params).unwrap();
        assert_eq!(
            json,
            r#"{"value_bits":16,"max_contributions":128,"modulus_bits":2048}"#
        );
        assert_eq!(
            serde_json::from_str::<PackingParams>(&json).unwrap(),
            params
        );
        for bad in [
            r#"{"value_bits":16,"max_contributions":0,"modulus_bits":2048}"#,
            r#"{"value_bits":16,"max_contributions":128,"modulus_bits":23}"#,
            r#"{"value_bits":16,"max_contributions":128,"modulus_bits":2048,"slots":200}"#,
        ] {
            assert!(serde_json::from_str::<PackingParams>(bad).is_err(), "{bad}");
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn pack_unpack_round_trip(
            params in params(),
            raw in prop::collection::vec(any::<u64>(), 0..500),
        ) {
            let values: Vec<u64> = raw.iter().map(|v| v & params.max_value()).collect();
            let packed = params.pack(&values).unwrap();
            prop_assert_eq!(packed.len(), params.plaintexts_for(values.len()));
            prop_assert!(packed.iter().all(|p| p.bits() < u64::from(params.modulus_bits())));
            prop_assert_eq!(params.unpack_sums(&packed, values.len(), 1).unwrap(), values);
        }

        /// Adding K packed vectors as integers (homomorphic addition) adds them slot-wise.
        #[test]
        fn sum_of_packed_vectors_unpacks_to_elementwise_sums(
            (params, k) in params().prop_flat_map(|p| (Just(p), 1..=p.max_contributions().min(64))),
            len in 0usize..200,
            seed: u64,
        ) {
            use rand::{RngExt, SeedableRng};
            let mut rng = rand_chacha::ChaCha20Rng::seed_from_u64(seed);
            let mut want = vec![0u64; len];
            let mut sum = vec![BigUint::ZERO; params.plaintexts_for(len)];
            for _ in 0..k {
                let values: Vec<u64> =
                    (0..len).map(|_| rng.random_range(0..=params.max_value())).collect();
                for (w, v) in want.iter_mut().zip(&values) {
                    *w += v;
                }
                sum_plaintexts(&mut sum, &params.pack(&values).unwrap());
            }
            prop_assert!(sum.iter().all(|p| p.bits() < u64::from(params.modulus_bits())));
            prop_assert_eq!(params.unpack_sums(&sum, len, k).unwrap(), want);
        }
    }
}
