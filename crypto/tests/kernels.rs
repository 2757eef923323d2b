#![allow(clippy::unwrap_used)]
//! Every Montgomery kernel this processor runs against num-bigint and against each other:
//! products, squares, public and secret powers, multi-exponentiation and products of many
//! factors, at moduli from 3 to 8192 bits (and the 16,384-bit `n²` of an 8192-bit `n`), with
//! edge values. A kernel the processor lacks is named on stderr ("… kernel not tested: this
//! CPU lacks …"), so a skip is never silent. Run with `--nocapture` to see the list.

use num_bigint::BigUint;
use num_traits::{One, Zero};
use proptest::prelude::*;
use proptest::test_runner::RngSeed;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;

use spddl_crypto::arith::random_bits;
use spddl_crypto::mont::{KernelKind, Montgomery, SecretExponent};

/// The kernels this processor runs; says which it cannot test.
fn kernels() -> Vec<KernelKind> {
    for k in KernelKind::ALL {
        if !k.available() {
            let lacks = match k {
                KernelKind::Ifma => "avx512ifma",
                KernelKind::Mulx => "bmi2 or adx",
                KernelKind::Scalar => unreachable!("the portable kernel runs everywhere"),
            };
            eprintln!(
                "{} kernel not tested: this CPU lacks {lacks}",
                match k {
                    KernelKind::Ifma => "IFMA",
                    _ => "MULX",
                }
            );
        }
    }
    let ks: Vec<KernelKind> = KernelKind::ALL
        .into_iter()
        .filter(|k| k.available())
        .collect();
    assert!(ks.contains(&KernelKind::Scalar));
    ks
}

fn contexts(n: &BigUint) -> Vec<Montgomery> {
    kernels()
        .into_iter()
        .map(|k| Montgomery::with_kernel(n, k).unwrap())
        .collect()
}

fn odd_modulus(bits: u64, rng: &mut ChaCha20Rng) -> BigUint {
    let mut n = random_bits(bits, rng) | BigUint::one();
    n.set_bit(bits - 1, true);
    n
}

/// Values that stress carries and the final subtraction.
fn edge_values(n: &BigUint, rng: &mut ChaCha20Rng) -> Vec<BigUint> {
    let bits = n.bits();
    let mut v = vec![
        BigUint::zero(),
        BigUint::one(),
        BigUint::from(2u32),
        n - 1u32,
        n >> 1u32,
        random_bits(bits, rng) % n,
    ];
    if bits > 2 {
        v.push(n - 2u32);
        v.push((BigUint::one() << (bits - 1)) - 1u32);
    }
    v
}

/// Moduli with all-ones or sparse limbs, where carries run the whole length.
fn special_moduli() -> Vec<BigUint> {
    let one = BigUint::one();
    vec![
        BigUint::from(3u32),
        BigUint::from(u64::MAX),
        (&one << 128u32) - 1u32,
        (&one << 4096u32) - 1u32,
        (&one << 4095u32) + 1u32,
        (&one << 4096u32) - 189u32,
        (&one << 6144u32) - 1u32,
        (&one << 8191u32) + 1u32,
    ]
}

#[test]
fn every_kernel_matches_num_bigint_on_edge_values_at_every_size() {
    let mut rng = ChaCha20Rng::seed_from_u64(40);
    let mut moduli: Vec<BigUint> = [
        3u64, 5, 63, 64, 65, 127, 128, 129, 191, 255, 256, 257, 320, 511, 512, 1000, 1024, 1536,
        2047, 2048, 3072, 4095, 4096, 6144, 8192,
    ]
    .iter()
    .map(|&b| odd_modulus(b, &mut rng))
    .collect();
    moduli.extend(special_moduli());
    for n in &moduli {
        let vals = edge_values(n, &mut rng);
        let ctxs = contexts(n);
        for x in &vals {
            for ctx in &ctxs {
                let name = ctx.kernel().name();
                let xt = ctx.to_mont(x);
                assert_eq!(ctx.from_mont(&xt), x % n, "{name} round trip");
                assert_eq!(
                    ctx.from_mont(&ctx.sqr(&xt)),
                    (x * x) % n,
                    "{name} sqr, {}-bit n",
                    n.bits()
                );
                for y in &vals {
                    let got = ctx.from_mont(&ctx.mul(&xt, &ctx.to_mont(y)));
                    assert_eq!(got, (x * y) % n, "{name} mul, {}-bit n", n.bits());
                    assert_eq!(ctx.mul_mod(x, y), (x * y) % n, "{name} mul_mod");
                }
            }
        }
    }
}

#[test]
fn every_kernel_gives_the_same_powers() {
    let mut rng = ChaCha20Rng::seed_from_u64(41);
    // 4096 bits: n² of a 2048-bit key; 6144: of a 3072-bit key; exponents as long as a
    // partial decryption's (|n²| + a few bits) and short ones
    for (bits, ebits) in [
        (3u64, 5u64),
        (190, 64),
        (1024, 1030),
        (4096, 4110),
        (6144, 300),
    ] {
        let n = odd_modulus(bits, &mut rng);
        let x = random_bits(bits + 3, &mut rng);
        let exps = [
            BigUint::zero(),
            BigUint::one(),
            random_bits(ebits, &mut rng),
            (BigUint::one() << ebits) - 1u32,
        ];
        for e in &exps {
            let expect = x.modpow(e, &n);
            for ctx in contexts(&n) {
                let name = ctx.kernel().name();
                assert_eq!(ctx.pow_mod(&x, e), expect, "{name} pow, {bits}-bit n");
                let secret = SecretExponent::new(e);
                let got = ctx.from_mont(&ctx.pow_secret(&ctx.to_mont(&x), &secret));
                assert_eq!(got, expect, "{name} pow_secret, {bits}-bit n");
            }
        }
    }
}

#[test]
fn every_kernel_gives_the_same_products_and_multi_powers() {
    let mut rng = ChaCha20Rng::seed_from_u64(42);
    for bits in [65u64, 2048, 4096] {
        let n = odd_modulus(bits, &mut rng);
        let xs: Vec<BigUint> = (0..21).map(|_| random_bits(bits, &mut rng) % &n).collect();
        let es: Vec<BigUint> = (0..21).map(|j| random_bits(j * 7, &mut rng)).collect();
        let product = xs.iter().fold(BigUint::one(), |a, x| (a * x) % &n);
        let multi = xs
            .iter()
            .zip(&es)
            .fold(BigUint::one(), |a, (x, e)| (a * x.modpow(e, &n)) % &n);
        let refs: Vec<&BigUint> = xs.iter().collect();
        for ctx in contexts(&n) {
            let name = ctx.kernel().name();
            assert_eq!(ctx.product(xs.iter()), product, "{name} product");
            assert_eq!(ctx.multi_pow(&refs, &es), multi, "{name} multi_pow");
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        rng_seed: RngSeed::Fixed(43),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Random moduli of 3…8192 bits: every kernel agrees with num-bigint (so with each other)
    /// on products, squares and a short power.
    #[test]
    fn kernels_agree_at_random_sizes(seed in any::<u64>(), bits in 2u64..=8192) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let n = odd_modulus(bits.max(2), &mut rng);
        let x = random_bits(n.bits(), &mut rng) % &n;
        let y = random_bits(n.bits(), &mut rng) % &n;
        let e = random_bits(seed % 200, &mut rng);
        let (xy, xx, xe) = ((&x * &y) % &n, (&x * &x) % &n, x.modpow(&e, &n));
        for ctx in contexts(&n) {
            let name = ctx.kernel().name();
            let xt = ctx.to_mont(&x);
            prop_assert_eq!(ctx.from_mont(&ctx.mul(&xt, &ctx.to_mont(&y))), xy.clone(), "{} mul", name);
            prop_assert_eq!(ctx.from_mont(&ctx.sqr(&xt)), xx.clone(), "{} sqr", name);
            prop_assert_eq!(ctx.mul_mod(&x, &y), xy.clone(), "{} mul_mod", name);
            prop_assert_eq!(ctx.mul_mod(&(&n - 1u32), &(&n - 1u32)), BigUint::one(), "{} mul_mod", name);
            prop_assert_eq!(ctx.pow_mod(&x, &e), xe.clone(), "{} pow", name);
        }
    }

    /// At the key sizes' `n²` (32, 64, 96 limbs), inputs with long runs of ones and zeros.
    #[test]
    fn kernels_agree_on_structured_inputs(seed in any::<u64>(), limbs in prop::sample::select(vec![32usize, 64, 96]), runs in 1u32..64) {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let bits = 64 * limbs as u64;
        let n = odd_modulus(bits, &mut rng);
        // x = a pattern of `runs`-bit blocks of ones and zeros, reduced
        let mut x = BigUint::zero();
        for i in (0..bits).step_by(2 * runs as usize) {
            for b in i..(i + u64::from(runs)).min(bits) {
                x.set_bit(b, true);
            }
        }
        let x = x % &n;
        let y = &n - 1u32 - (random_bits(64, &mut rng) % &n);
        for ctx in contexts(&n) {
            let name = ctx.kernel().name();
            let xt = ctx.to_mont(&x);
            prop_assert_eq!(ctx.from_mont(&ctx.mul(&xt, &ctx.to_mont(&y))), (&x * &y) % &n, "{} mul", name);
            prop_assert_eq!(ctx.from_mont(&ctx.sqr(&xt)), (&x * &x) % &n, "{} sqr", name);
        }
    }
}
