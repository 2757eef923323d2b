//! Checked-in test material (safe primes generated once by `examples/gen_test_primes.rs`), so
//! tests, doc examples and benchmarks do not wait for a prime search. Never for real keys.

use num_bigint::BigUint;
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::arith::from_hex;
use crate::paillier::{Dealer, KeyShare, PublicKey};

const PRIMES_1024: &str = include_str!("../tests/data/primes-1024.json");
const PRIMES_2048: &str = include_str!("../tests/data/primes-2048.json");
const PRIMES_3072: &str = include_str!("../tests/data/primes-3072.json");

fn parse(json: &str) -> (BigUint, BigUint) {
    let v: serde_json::Value = serde_json::from_str(json).expect("checked-in test primes parse");
    let get = |k: &str| {
        v[k].as_str()
            .and_then(from_hex)
            .expect("checked-in test prime is hex")
    };
    (get("p"), get("q"))
}

/// Safe primes `(p, q)` for a test modulus of 1024, 2048 or 3072 bits.
pub fn test_primes(modulus_bits: u64) -> (BigUint, BigUint) {
    match modulus_bits {
        1024 => parse(PRIMES_1024),
        2048 => parse(PRIMES_2048),
        3072 => parse(PRIMES_3072),
        other => panic!("no checked-in test primes for {other} bits"),
    }
}

/// The 1024-bit test primes.
pub fn small_test_primes() -> (BigUint, BigUint) {
    test_primes(1024)
}

/// A dealer over the checked-in primes of `modulus_bits`.
pub fn test_dealer(modulus_bits: u64) -> Dealer {
    let (p, q) = test_primes(modulus_bits);
    Dealer::from_safe_primes(p, q).expect("checked-in test primes are safe primes")
}

/// A `t`-of-`ℓ` test key over the checked-in primes, dealt from a seeded generator so that
/// the known-answer files can be regenerated. Its primes are public: never a real key.
pub fn test_key(modulus_bits: u64, t: u16, l: u16, seed: u64) -> (PublicKey, Vec<KeyShare>) {
    let mut rng = StdRng::seed_from_u64(seed);
    test_dealer(modulus_bits)
        .deal_from(t, l, &mut rng)
        .expect("test parameters are valid")
}
