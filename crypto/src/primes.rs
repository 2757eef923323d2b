//! Prime and safe-prime generation.
//!
//! A safe prime is `p = 2q + 1` with `q` prime. Random candidates are sieved in windows that
//! rule out small factors of `q` and of `2q + 1` together, so almost all the expensive tests
//! run on candidates where both survive; then `q` gets a base-2 Fermat test, `p` a base-2
//! Fermat test, and `q` is confirmed by Miller–Rabin with random bases. Once `q` is prime,
//! `2^(p−1) ≡ 1 (mod p)` proves `p` prime (Pocklington: `p − 1 = 2q` with `q > √p`, and
//! `gcd(2² − 1, p) = 1`), so `p` needs no further rounds.
//!
//! [`generate_safe_primes`] runs the search on every core and returns as soon as enough
//! distinct safe primes are found.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, OnceLock};

use num_bigint::BigUint;
use num_integer::Integer;
use num_traits::{One, ToPrimitive, Zero};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use crate::Entropy;
use crate::arith::random_bits;

/// Small odd primes used for trial division and sieving.
const SIEVE_LIMIT: usize = 1 << 17;
/// Candidates `q0 + 2k`, `k < WINDOW`, sieved at once.
const WINDOW: usize = 1 << 14;
/// Miller–Rabin rounds with random bases after the base-2 test. For random candidates of
/// ≥ 512 bits the error is far below 2⁻¹²⁸ (Damgård–Landrock–Pomerance bounds).
const MR_ROUNDS: usize = 24;

fn small_primes() -> &'static [u32] {
    static PRIMES: OnceLock<Vec<u32>> = OnceLock::new();
    PRIMES.get_or_init(|| {
        let mut composite = vec![false; SIEVE_LIMIT];
        let mut primes = Vec::new();
        for i in 3..SIEVE_LIMIT {
            if composite[i] {
                continue;
            }
            if i % 2 == 1 {
                primes.push(i as u32);
            }
            for j in (i * i..SIEVE_LIMIT).step_by(i) {
                composite[j] = true;
            }
        }
        primes
    })
}

/// Miller–Rabin with base 2 and then `rounds` random bases, after trial division.
pub fn is_probable_prime<R: Rng + ?Sized>(n: &BigUint, rounds: usize, rng: &mut R) -> bool {
    let two = BigUint::from(2u32);
    if n < &two {
        return false;
    }
    for &p in small_primes().iter().take(2000) {
        let p = BigUint::from(p);
        if n == &p {
            return true;
        }
        if (n % &p).is_zero() {
            return false;
        }
    }
    if n.is_even() {
        return n == &two;
    }
    let n_minus_1 = n - 1u32;
    let s = n_minus_1.trailing_zeros().unwrap_or(0);
    let d = &n_minus_1 >> s;
    let witness = |a: &BigUint| -> bool {
        // true when `a` proves n composite
        let mut x = a.modpow(&d, n);
        if x.is_one() || x == n_minus_1 {
            return false;
        }
        for _ in 1..s {
            x = x.modpow(&two, n);
            if x == n_minus_1 {
                return false;
            }
        }
        true
    };
    if witness(&two) {
        return false;
    }
    let span = n - 3u32; // bases in [2, n − 2]
    for _ in 0..rounds {
        let a = crate::arith::random_below(&span, rng) + 2u32;
        if witness(&a) {
            return false;
        }
    }
    true
}

/// Whether `p` is a safe prime: `p` and `(p − 1)/2` both prime.
pub fn is_safe_prime<R: Rng + ?Sized>(p: &BigUint, rng: &mut R) -> bool {
    if p < &BigUint::from(5u32) || p.is_even() {
        return false;
    }
    let q: BigUint = p >> 1u32;
    is_probable_prime(&q, MR_ROUNDS, rng) && is_probable_prime(p, MR_ROUNDS, rng)
}

/// One safe prime of exactly `bits` bits with its two top bits set (so a product of two such
/// primes has exactly `2·bits` bits). Single-threaded; stops early (returning `None`) once
/// `stop` is set.
fn search_safe_prime<R: Rng + ?Sized>(
    bits: u64,
    rng: &mut R,
    stop: &AtomicBool,
) -> Option<BigUint> {
    assert!(
        bits >= 16,
        "safe primes of fewer than 16 bits are not searched by sieve"
    );
    let primes = small_primes();
    let two = BigUint::from(2u32);
    let mut marks = vec![false; WINDOW];
    while !stop.load(Ordering::Relaxed) {
        // q0: `bits − 1` bits, two top bits set, odd.
        let mut q0 = random_bits(bits - 1, rng);
        q0.set_bit(bits - 2, true);
        q0.set_bit(bits - 3, true);
        q0.set_bit(0, true);
        marks.fill(false);
        for &s in primes {
            let s = u64::from(s);
            let r = (&q0 % s).to_u64().unwrap_or(0);
            let inv2 = s.div_ceil(2); // 2⁻¹ mod s
            let inv4 = inv2 * inv2 % s; // 4⁻¹ mod s
            // q0 + 2k ≡ 0  ⇔  k ≡ −r·2⁻¹;   2(q0 + 2k) + 1 ≡ 0  ⇔  k ≡ −(2r + 1)·4⁻¹  (mod s)
            let k_q = (s - r) % s * inv2 % s;
            let k_p = (s - (2 * r + 1) % s) % s * inv4 % s;
            for start in [k_q, k_p] {
                let mut k = start as usize;
                while k < WINDOW {
                    marks[k] = true;
                    k += s as usize;
                }
            }
        }
        for (k, &marked) in marks.iter().enumerate() {
            if marked {
                continue;
            }
            if k % 64 == 0 && stop.load(Ordering::Relaxed) {
                return None;
            }
            let q = &q0 + BigUint::from(2 * k as u64);
            if !two.modpow(&(&q - 1u32), &q).is_one() {
                continue;
            }
            let p: BigUint = (&q << 1u32) + 1u32;
            if !two.modpow(&(&p - 1u32), &p).is_one() {
                continue;
            }
            // Pocklington makes p prime once q is; confirm q.
            if is_probable_prime(&q, MR_ROUNDS, rng) && p.bits() == bits {
                return Some(p);
            }
        }
    }
    None
}

/// `count` distinct safe primes of `bits` bits each, searched on every available core.
///
/// Each worker thread seeds its own generator from `entropy`, so the operating system is the
/// only source of randomness (the primes are the key's secret).
pub fn generate_safe_primes(bits: u64, count: usize, entropy: &mut Entropy) -> Vec<BigUint> {
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let found = Mutex::new(Vec::<BigUint>::with_capacity(count));
    let stop = AtomicBool::new(count == 0);
    let seeds: Vec<[u8; 32]> = (0..threads)
        .map(|_| {
            let mut seed = [0u8; 32];
            entropy.fill_bytes(&mut seed);
            seed
        })
        .collect();
    std::thread::scope(|scope| {
        for seed in seeds {
            let (found, stop) = (&found, &stop);
            scope.spawn(move || {
                let mut rng = StdRng::from_seed(seed);
                while let Some(p) = search_safe_prime(bits, &mut rng, stop) {
                    // A poisoned lock means another worker panicked; that panic propagates
                    // when the scope joins, so stopping here loses nothing.
                    let Ok(mut found) = found.lock() else { return };
                    if found.len() < count && !found.contains(&p) {
                        found.push(p);
                    }
                    if found.len() >= count {
                        stop.store(true, Ordering::Relaxed);
                    }
                }
            });
        }
    });
    found.into_inner().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_chacha::ChaCha20Rng;

    #[test]
    fn small_primes_are_primes() {
        let ps = small_primes();
        assert_eq!(&ps[..6], &[3, 5, 7, 11, 13, 17]);
        assert_eq!(ps.len(), 12250); // π(2^17) − 1 (2 is left out)
    }

    #[test]
    fn miller_rabin_agrees_with_trial_division() {
        let mut rng = ChaCha20Rng::seed_from_u64(3);
        let is_prime_slow = |n: u64| {
            n >= 2
                && (2..)
                    .take_while(|d| d * d <= n)
                    .all(|d| !n.is_multiple_of(d))
        };
        for n in (0u64..3000).chain(1_000_000_000..1_000_000_500) {
            assert_eq!(
                is_probable_prime(&BigUint::from(n), 8, &mut rng),
                is_prime_slow(n),
                "{n}"
            );
        }
        // Carmichael numbers fool Fermat, not Miller–Rabin.
        for c in [561u64, 41041, 825265, 321197185, 5394826801] {
            assert!(!is_probable_prime(&BigUint::from(c), 8, &mut rng), "{c}");
        }
        // A known 127-bit Mersenne prime and a composite neighbour.
        let m127 = (BigUint::one() << 127u32) - 1u32;
        assert!(is_probable_prime(&m127, 8, &mut rng));
        assert!(!is_probable_prime(&(&m127 + 2u32), 8, &mut rng));
    }

    #[test]
    fn safe_prime_search_finds_safe_primes_of_exact_size() {
        let mut rng = ChaCha20Rng::seed_from_u64(4);
        for bits in [64u64, 128, 256] {
            let stop = AtomicBool::new(false);
            let p = search_safe_prime(bits, &mut rng, &stop).unwrap();
            assert_eq!(p.bits(), bits);
            assert!(p.bit(bits - 2), "second-highest bit set");
            assert!(is_safe_prime(&p, &mut rng), "{p}");
        }
        assert!(!is_safe_prime(&BigUint::from(13u32), &mut rng)); // 6 is not prime
        assert!(is_safe_prime(&BigUint::from(23u32), &mut rng)); // 11 is prime
    }

    #[test]
    fn parallel_generation_returns_distinct_primes() {
        let mut rng = ChaCha20Rng::seed_from_u64(5);
        let ps = generate_safe_primes(160, 2, &mut Entropy::os());
        assert_eq!(ps.len(), 2);
        assert_ne!(ps[0], ps[1]);
        assert!(ps.iter().all(|p| is_safe_prime(p, &mut rng)));
    }
}
