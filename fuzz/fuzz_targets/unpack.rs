//! A decrypted sum → `PackingParams::unpack_sums` and `Encoder::decode_sum`: the layout comes
//! from the first bytes, the plaintexts from the rest. Must refuse or accept, never panic;
//! what it accepts from one contribution (or none) packs back to the same plaintexts.
//!
//! Input: `q` (1 byte), `K_max` (8, LE), `|n|` (2, LE), `len` (2, LE), `K` (8, LE), then
//! big-endian plaintexts of `⌈|n|/8⌉` bytes each (the last one may be shorter).
#![no_main]

use libfuzzer_sys::fuzz_target;
use num_bigint::BigUint;
use spddl_crypto::encoding::{Encoder, PackingParams, Quantizer};

fuzz_target!(|data: &[u8]| {
    let Some((head, rest)) = data.split_first_chunk::<21>() else {
        return;
    };
    let q = u32::from(head[0]);
    let k_max = u64::from_le_bytes(head[1..9].try_into().expect("8 bytes"));
    let n_bits = u32::from(u16::from_le_bytes([head[9], head[10]]));
    let len = usize::from(u16::from_le_bytes([head[11], head[12]]));
    let k = u64::from_le_bytes(head[13..21].try_into().expect("8 bytes"));
    let Ok(params) = PackingParams::new(q, k_max, n_bits) else {
        return;
    };
    let width = n_bits.div_ceil(8) as usize; // ≥ 1: `new` refuses |n| < 2
    let plaintexts: Vec<BigUint> = rest.chunks(width).map(BigUint::from_bytes_be).collect();

    let sums = params.unpack_sums(&plaintexts, len, k);
    if let Ok(sums) = &sums {
        assert_eq!(sums.len(), len);
        if k <= 1 {
            assert_eq!(params.pack(sums).as_ref(), Ok(&plaintexts));
        }
    }
    if let Ok(encoder) = Quantizer::new(1.0, q).and_then(|qz| Encoder::new(qz, params)) {
        let decoded = encoder.decode_sum(&plaintexts, len, k);
        assert_eq!(decoded.is_ok(), sums.is_ok());
    }
});
