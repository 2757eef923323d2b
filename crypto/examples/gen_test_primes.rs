//! Regenerates the safe primes checked in as test data (`crypto/tests/data/primes-*.json`).
//!
//! `cargo run --release -p spddl-crypto --example gen_test_primes -- 1024 2048`

use std::time::Instant;

use spddl_crypto::arith::to_hex;
use spddl_crypto::primes::generate_safe_primes;

fn main() {
    let mut rng = spddl_crypto::Entropy::os();
    for arg in std::env::args().skip(1) {
        let Ok(modulus_bits) = arg.parse::<u64>() else {
            eprintln!("usage: gen_test_primes MODULUS_BITS...");
            std::process::exit(2);
        };
        let start = Instant::now();
        let ps = generate_safe_primes(modulus_bits / 2, 2, &mut rng);
        let secs = start.elapsed().as_secs_f64();
        println!(
            "{{\"modulus_bits\": {modulus_bits}, \"p\": \"{}\", \"q\": \"{}\", \"seconds\": {secs:.2}}}",
            to_hex(&ps[0]),
            to_hex(&ps[1])
        );
    }
}
