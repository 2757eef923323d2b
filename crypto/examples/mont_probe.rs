//! Quick probe: Montgomery kernel against num-bigint at |n²| = 4096 bits.
#![allow(clippy::unwrap_used, missing_docs)]
use num_bigint::BigUint;
use spddl_crypto::arith::random_bits;
use spddl_crypto::mont::{KernelKind, Montgomery, SecretExponent};
use std::time::Instant;

fn main() {
    let mut rng = rand::rng();
    let n = random_bits(4096, &mut rng) | BigUint::from(1u32) | (BigUint::from(1u32) << 4095u32);
    for kind in [KernelKind::Scalar, KernelKind::Ifma] {
        let ctx = Montgomery::with_kernel(&n, kind).unwrap();
        println!("{}", kind.name());
        let x = random_bits(4095, &mut rng);
        let y = random_bits(4095, &mut rng);
        let (xt, yt) = (ctx.to_mont(&x), ctx.to_mont(&y));
        let iters = 100_000;
        let t = Instant::now();
        let mut a = xt.clone();
        for _ in 0..iters {
            a = ctx.mul(&a, &yt);
        }
        println!(
            "montmul {:.2} us",
            t.elapsed().as_secs_f64() / iters as f64 * 1e6
        );
        let t = Instant::now();
        let mut a = xt.clone();
        for _ in 0..iters {
            a = ctx.sqr(&a);
        }
        println!(
            "montsqr {:.2} us",
            t.elapsed().as_secs_f64() / iters as f64 * 1e6
        );
        let t = Instant::now();
        let mut b = x.clone();
        for _ in 0..iters / 4 {
            b = (&b * &y) % &n;
        }
        println!(
            "num-bigint mulmod {:.2} us",
            t.elapsed().as_secs_f64() / (iters / 4) as f64 * 1e6
        );
        let e = random_bits(4100, &mut rng);
        let t = Instant::now();
        for _ in 0..20 {
            std::hint::black_box(ctx.pow(&xt, &e));
        }
        println!("pow {:.2} ms", t.elapsed().as_secs_f64() / 20.0 * 1e3);
        let se = SecretExponent::new(&e);
        let t = Instant::now();
        for _ in 0..20 {
            std::hint::black_box(ctx.pow_secret(&xt, &se));
        }
        println!(
            "pow_secret {:.2} ms",
            t.elapsed().as_secs_f64() / 20.0 * 1e3
        );
        let t = Instant::now();
        for _ in 0..10 {
            std::hint::black_box(x.modpow(&e, &n));
        }
        println!(
            "num-bigint modpow {:.2} ms",
            t.elapsed().as_secs_f64() / 10.0 * 1e3
        );
        std::hint::black_box((a, b));
    }
}
