//! Criterion benchmarks of every Paillier primitive, single thread, 2048-bit `n`, t = 3 of ℓ = 5.
//!
//! ```sh
//! cargo bench -p spddl-crypto --bench primitives                  # SPDDL only
//! cargo bench -p spddl-crypto --bench primitives --features gmp   # and GMP in the same run
//! ```
//!
//! With `--features gmp` every group also runs the same operation through GMP (the `rug` crate
//! over the system's libgmp, the algorithm of `../shared/anchors/gmp_paillier.py`) and the run
//! ends with a table `GMP time ÷ SPDDL time` per operation: above 1 means SPDDL is faster. The
//! ratio comes from the very iterations criterion timed, so both sides saw the same machine load.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use criterion::{BenchmarkGroup, Criterion, measurement::WallTime};
use num_bigint::BigUint;
use spddl_crypto::mont::Montgomery;
use spddl_crypto::paillier::{Ciphertext, KeyShare, Plaintext, PublicKey};
use spddl_crypto::testing::test_key;

const BITS: u64 = 2048;

/// (operation, implementation) → (iterations, total time) over every timed sample.
type Times = BTreeMap<(&'static str, &'static str), (u64, Duration)>;
static TIMES: Mutex<Times> = Mutex::new(BTreeMap::new());

/// Times `op` as `implementation` of `operation`, and records the time for the ratio table.
fn bench(
    group: &mut BenchmarkGroup<'_, WallTime>,
    operation: &'static str,
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
                .entry((operation, implementation))
                .or_insert((0, Duration::ZERO));
            entry.0 += iters;
            entry.1 += elapsed;
            elapsed
        })
    });
}

/// The inputs every group shares.
struct Fixture {
    pk: PublicKey,
    share: KeyShare,
    m: Plaintext,
    c: [Ciphertext; 2],
    /// The exponent of a partial decryption, `2Δ·s_1` (for GMP's side).
    #[cfg_attr(not(feature = "gmp"), allow(dead_code))]
    share_exponent: BigUint,
}

fn fixture() -> Fixture {
    let (pk, shares) = test_key(BITS, 3, 5, 7);
    pk.precompute_encryption_table();
    let mut rng = spddl_crypto::Entropy::os();
    let m =
        Plaintext::new(&pk, spddl_crypto::arith::random_bits(BITS - 8, &mut rng)).expect("below n");
    let c = [pk.encrypt(&m, &mut rng), pk.encrypt(&m, &mut rng)];
    let share = shares.into_iter().next().expect("five shares");
    let share_exponent = BigUint::from(2u8) * pk.delta() * share.secret().get();
    Fixture {
        pk,
        share,
        m,
        c,
        share_exponent,
    }
}

fn primitives(criterion: &mut Criterion) {
    let f = fixture();
    let pk = &f.pk;
    let mut rng = spddl_crypto::Entropy::os();
    #[cfg(feature = "gmp")]
    let g = gmp::Fixture::new(&f);

    let mut group = criterion.benchmark_group("encrypt");
    bench(&mut group, "encrypt", "spddl", || {
        black_box(pk.encrypt(&f.m, &mut rng));
    });
    #[cfg(feature = "gmp")]
    bench(&mut group, "encrypt", "gmp", || {
        black_box(g.encrypt());
    });
    group.finish();

    let mut group = criterion.benchmark_group("encrypt_textbook");
    group.sample_size(20);
    bench(&mut group, "encrypt_textbook", "spddl", || {
        black_box(pk.encrypt_textbook(&f.m, &mut rng));
    });
    #[cfg(feature = "gmp")]
    bench(&mut group, "encrypt_textbook", "gmp", || {
        black_box(g.encrypt_textbook());
    });
    group.finish();

    let mut group = criterion.benchmark_group("add");
    bench(&mut group, "add", "spddl", || {
        black_box(pk.add(&f.c[0], &f.c[1]));
    });
    #[cfg(feature = "gmp")]
    bench(&mut group, "add", "gmp", || {
        black_box(g.add());
    });
    group.finish();

    let mut group = criterion.benchmark_group("partial_decrypt");
    group.sample_size(20);
    bench(&mut group, "partial_decrypt", "spddl", || {
        black_box(f.share.partial_decrypt(pk, &f.c[0]).expect("same key"));
    });
    #[cfg(feature = "gmp")]
    bench(&mut group, "partial_decrypt", "gmp", || {
        black_box(g.partial_decrypt());
    });
    group.finish();

    // The kernels underneath, at the sizes of the issue's reference table.
    let mut rng = spddl_crypto::Entropy::os();
    let n2 = pk.n_squared();
    let mont_n2 = Montgomery::new(n2).expect("n² is odd");
    let x = spddl_crypto::arith::random_bits(n2.bits() - 1, &mut rng);
    let y = spddl_crypto::arith::random_bits(n2.bits() - 1, &mut rng);
    let (xm, ym) = (mont_n2.to_mont(&x), mont_n2.to_mont(&y));
    let mut group = criterion.benchmark_group("modmul_4096");
    bench(&mut group, "modmul_4096", "spddl", || {
        black_box(mont_n2.mul(&xm, &ym));
    });
    #[cfg(feature = "gmp")]
    bench(&mut group, "modmul_4096", "gmp", {
        let (x, y, m) = (gmp::int(&x), gmp::int(&y), gmp::int(n2));
        move || {
            black_box(rug::Integer::from(&x * &y) % &m);
        }
    });
    group.finish();

    let n = pk.n();
    let mont_n = Montgomery::new(n).expect("n is odd");
    let base = spddl_crypto::arith::random_bits(n.bits() - 1, &mut rng);
    let e = spddl_crypto::arith::random_bits(n.bits(), &mut rng);
    let mut group = criterion.benchmark_group("modexp_2048");
    group.sample_size(20);
    bench(&mut group, "modexp_2048", "spddl", || {
        black_box(mont_n.pow_mod(&base, &e));
    });
    #[cfg(feature = "gmp")]
    bench(&mut group, "modexp_2048", "gmp", {
        let (b, e, m) = (gmp::int(&base), gmp::int(&e), gmp::int(n));
        move || {
            black_box(b.clone().pow_mod(&e, &m).expect("m > 0"));
        }
    });
    group.finish();
}

/// Prints `GMP time ÷ SPDDL time` per operation (or says how to get it).
fn ratios() {
    let times = TIMES.lock().expect("no panic while holding the lock");
    let per_op = |op: &'static str, imp: &'static str| {
        times
            .get(&(op, imp))
            .filter(|(iters, _)| *iters > 0)
            .map(|(iters, total)| total.as_secs_f64() / *iters as f64)
    };
    let ops: Vec<&'static str> = {
        let mut ops: Vec<_> = times.keys().map(|(op, _)| *op).collect();
        ops.dedup();
        ops
    };
    println!(
        "\n{:<18} {:>14} {:>14} {:>14}",
        "operation", "spddl µs", "gmp µs", "gmp ÷ spddl"
    );
    for op in ops {
        let spddl = per_op(op, "spddl");
        let gmp = per_op(op, "gmp");
        let us = |t: Option<f64>| t.map_or("-".to_string(), |t| format!("{:.2}", t * 1e6));
        let ratio = match (spddl, gmp) {
            (Some(s), Some(g)) => format!("{:.2}×", g / s),
            _ => "-".to_string(),
        };
        println!("{op:<18} {:>14} {:>14} {ratio:>14}", us(spddl), us(gmp));
    }
    if cfg!(not(feature = "gmp")) {
        println!("(GMP column: cargo bench -p spddl-crypto --bench primitives --features gmp)");
    }
}

fn main() {
    let mut criterion = Criterion::default()
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    primitives(&mut criterion);
    criterion.final_summary();
    ratios();
}

/// The same operations through GMP, as the shared anchor script computes them.
#[cfg(feature = "gmp")]
mod gmp {
    use num_bigint::BigUint;
    use rug::Integer;
    use rug::integer::Order;
    use rug::rand::RandState;
    use std::cell::RefCell;

    pub(crate) fn int(x: &BigUint) -> Integer {
        Integer::from_digits(&x.to_u64_digits(), Order::Lsf)
    }

    pub(crate) struct Fixture {
        n: Integer,
        n2: Integer,
        /// `1 + m·n mod n²` of the benchmarked plaintext.
        one_plus_mn: Integer,
        /// `table[i][d] = h_s^(d·2^(8i)) mod n²`: 8-bit fixed-base windows.
        table: Vec<Vec<Integer>>,
        alpha_bits: u32,
        c: [Integer; 2],
        share_exponent: Integer,
        rand: RefCell<RandState<'static>>,
    }

    impl Fixture {
        pub(crate) fn new(f: &super::Fixture) -> Self {
            let n = int(f.pk.n());
            let n2 = int(f.pk.n_squared());
            let one_plus_mn = (&n * int(f.m.value()) + 1u32) % &n2;
            let alpha_bits = u32::try_from(f.pk.alpha_bits()).expect("small");
            let mut table = Vec::new();
            let mut base = int(f.pk.h_s());
            for _ in 0..alpha_bits.div_ceil(8) {
                let mut row = vec![Integer::from(1u32)];
                let mut acc = Integer::from(1u32);
                for _ in 1..256 {
                    acc = Integer::from(&acc * &base) % &n2;
                    row.push(acc.clone());
                }
                table.push(row);
                base = base.pow_mod(&Integer::from(256u32), &n2).expect("n² > 0");
            }
            let mut seed = Integer::from(0x5eed_u32);
            seed <<= 64;
            let mut rand = RandState::new();
            rand.seed(&seed);
            Fixture {
                c: [int(f.c[0].value()), int(f.c[1].value())],
                share_exponent: int(&f.share_exponent),
                n,
                n2,
                one_plus_mn,
                table,
                alpha_bits,
                rand: RefCell::new(rand),
            }
        }

        /// `(1 + m n)·h_s^α mod n²` with α of `alpha_bits` bits from the window table.
        pub(crate) fn encrypt(&self) -> Integer {
            let alpha = Integer::from(Integer::random_bits(
                self.alpha_bits,
                &mut *self.rand.borrow_mut(),
            ));
            let mut r = self.one_plus_mn.clone();
            for (i, digit) in alpha.to_digits::<u8>(Order::Lsf).into_iter().enumerate() {
                if digit != 0 {
                    r = Integer::from(&r * &self.table[i][usize::from(digit)]) % &self.n2;
                }
            }
            r
        }

        /// `(1 + m n)·r^n mod n²` with a fresh `r < n`.
        pub(crate) fn encrypt_textbook(&self) -> Integer {
            let r = Integer::from(self.n.random_below_ref(&mut *self.rand.borrow_mut()));
            let rn = r.pow_mod(&self.n, &self.n2).expect("n² > 0");
            Integer::from(&self.one_plus_mn * &rn) % &self.n2
        }

        pub(crate) fn add(&self) -> Integer {
            Integer::from(&self.c[0] * &self.c[1]) % &self.n2
        }

        pub(crate) fn partial_decrypt(&self) -> Integer {
            self.c[0]
                .clone()
                .pow_mod(&self.share_exponent, &self.n2)
                .expect("n² > 0")
        }
    }
}
