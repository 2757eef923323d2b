//! Criterion benchmarks of the Montgomery kernels modulo `n²` for 2048- and 3072-bit `n`, on
//! every kernel this processor runs, single thread.
//!
//! ```sh
//! cargo bench -p spddl-crypto --bench kernels                  # SPDDL's kernels only
//! cargo bench -p spddl-crypto --bench kernels --features gmp   # and GMP in the same run
//! ```
//!
//! Operations: one product mod `n²` (`mul`; GMP: `a·b mod m`), one squaring (`sqr`; GMP:
//! `a² mod m`), and a partial-decryption-sized exponentiation (`partial_dec`: exponent of
//! `|n²| + 10` bits, SPDDL's fixed-window secret exponentiation, GMP's `powm`). The run ends
//! with a table of mean times and `GMP time ÷ kernel time` per kernel (above 1: the kernel is
//! faster), from the very iterations criterion timed.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use num_bigint::BigUint;
use num_traits::One;
use rand::SeedableRng;
use rand_chacha::ChaCha20Rng;
use spddl_crypto::arith::random_bits;
use spddl_crypto::mont::{KernelKind, Montgomery, SecretExponent};

/// (operation, implementation) → (iterations, total time).
type Times = BTreeMap<(String, &'static str), (u64, Duration)>;
static TIMES: Mutex<Times> = Mutex::new(BTreeMap::new());

fn bench(
    group: &mut BenchmarkGroup<'_, WallTime>,
    operation: &str,
    implementation: &'static str,
    mut op: impl FnMut(),
) {
    group.bench_function(implementation, |b| {
        b.iter_custom(|iters| {
            let start = Instant::now();
            for _ in 0..iters {
                op();
            }
            let elapsed = start.elapsed();
            let mut times = TIMES.lock().expect("no panic while holding the lock");
            let entry = times
                .entry((operation.to_string(), implementation))
                .or_insert((0, Duration::ZERO));
            entry.0 += iters;
            entry.1 += elapsed;
            elapsed
        })
    });
}

fn kernels(criterion: &mut Criterion) {
    let mut rng = ChaCha20Rng::seed_from_u64(2048);
    let available: Vec<KernelKind> = KernelKind::ALL
        .into_iter()
        .filter(|k| k.available())
        .collect();
    for k in KernelKind::ALL.iter().filter(|k| !k.available()) {
        println!("kernel {} not benchmarked: this CPU lacks it", k.name());
    }
    for bits in [2048u64, 3072] {
        let mut n = random_bits(bits, &mut rng) | BigUint::one();
        n.set_bit(bits - 1, true);
        let n2 = &n * &n;
        let x = random_bits(n2.bits() - 1, &mut rng);
        let y = random_bits(n2.bits() - 1, &mut rng);
        let e = random_bits(n2.bits() + 10, &mut rng);
        let secret = SecretExponent::new(&e);
        for op in ["mul", "sqr", "partial_dec"] {
            let name = format!("{op}_{bits}");
            let mut group = criterion.benchmark_group(&name);
            if op == "partial_dec" {
                group.sample_size(10);
            }
            for &kind in &available {
                let ctx = Montgomery::with_kernel(&n2, kind).expect("n² is odd");
                let (xm, ym) = (ctx.to_mont(&x), ctx.to_mont(&y));
                let mut out = ctx.one();
                match op {
                    "mul" => bench(&mut group, &name, kind.name(), || {
                        ctx.mul_to(black_box(&xm), &ym, &mut out);
                    }),
                    "sqr" => bench(&mut group, &name, kind.name(), || {
                        black_box(ctx.sqr(black_box(&xm)));
                    }),
                    _ => bench(&mut group, &name, kind.name(), || {
                        black_box(ctx.pow_secret(black_box(&xm), &secret));
                    }),
                }
            }
            #[cfg(feature = "gmp")]
            {
                let to = |v: &BigUint| {
                    rug::Integer::from_digits(&v.to_u64_digits(), rug::integer::Order::Lsf)
                };
                let (gx, gy, ge, gm) = (to(&x), to(&y), to(&e), to(&n2));
                match op {
                    "mul" => bench(&mut group, &name, "gmp", || {
                        black_box(rug::Integer::from(&gx * &gy) % &gm);
                    }),
                    "sqr" => bench(&mut group, &name, "gmp", || {
                        black_box(rug::Integer::from(gx.square_ref()) % &gm);
                    }),
                    _ => bench(&mut group, &name, "gmp", || {
                        black_box(gx.clone().pow_mod(&ge, &gm).expect("m > 0"));
                    }),
                }
            }
            group.finish();
        }
    }
}

/// Mean time per operation and `GMP ÷ kernel` per kernel.
fn ratios() {
    let times = TIMES.lock().expect("no panic while holding the lock");
    let mean = |op: &str, imp: &str| {
        times
            .iter()
            .find(|((o, i), _)| o == op && *i == imp)
            .filter(|(_, (iters, _))| *iters > 0)
            .map(|(_, (iters, total))| total.as_secs_f64() / *iters as f64)
    };
    let mut ops: Vec<&String> = times.keys().map(|(op, _)| op).collect();
    ops.dedup();
    let kernels: Vec<&str> = KernelKind::ALL
        .into_iter()
        .filter(|k| k.available())
        .map(|k| k.name())
        .collect();
    println!(
        "\n{:<18} {:<16} {:>12} {:>12} {:>12}",
        "operation", "kernel", "kernel µs", "gmp µs", "gmp ÷ kernel"
    );
    for op in ops {
        let gmp = mean(op, "gmp");
        for k in &kernels {
            let Some(t) = mean(op, k) else { continue };
            let (g, r) = match gmp {
                Some(g) => (format!("{:.2}", g * 1e6), format!("{:.2}×", g / t)),
                None => ("-".into(), "-".into()),
            };
            println!("{op:<18} {k:<16} {:>12.2} {g:>12} {r:>12}", t * 1e6);
        }
    }
    if cfg!(not(feature = "gmp")) {
        println!("(GMP column: cargo bench -p spddl-crypto --bench kernels --features gmp)");
    }
}

fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args();
    kernels(&mut criterion);
    criterion.final_summary();
    ratios();
}
