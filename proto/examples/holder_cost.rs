//! What it costs a key holder to recompute the sum it decrypts from client-signed uploads
//! rather than from fog aggregates: the request's bytes on the wire, the time to parse it and
//! multiply the uploads, the time to verify every client's signature, against the partial
//! decryption it has to do anyway. One thread, 2048-bit `n`, 16-bit values, two fogs.
//!
//! `cargo run --release -p spddl-proto --features grpc --example holder_cost [digits|mnist]`

use std::time::Instant;

use prost::Message;
use spddl_crypto::Entropy;
use spddl_crypto::identity::SigningKey;
use spddl_crypto::paillier::Plaintext;
use spddl_crypto::testing::test_key;
use spddl_proto::wire;
use spddl_proto::{
    ClientId, DecryptionRequest, FogAggregate, FogId, Registry, RoundConfig, RoundId, Upload,
    check_request,
};

fn main() {
    let which = std::env::args().nth(1);
    let cases: Vec<(&str, u64, u32)> = match which.as_deref() {
        Some("digits") => vec![("digits (softmax 64→10)", 650, 10)],
        Some("mnist") => vec![("MNIST MLP 784-128-10", 101_770, 20)],
        _ => vec![
            ("digits (softmax 64→10)", 650, 10),
            ("MNIST MLP 784-128-10", 101_770, 20),
        ],
    };
    let (pk, shares) = test_key(2048, 3, 5, 4);
    let aggregator = SigningKey::generate(&mut Entropy::os());
    for (name, params, clients) in cases {
        let config = RoundConfig {
            num_params: params,
            max_contributors: clients,
            ..RoundConfig::example(RoundId(1))
        };
        let len = config
            .encoder(&pk)
            .expect("a valid packing")
            .packing()
            .plaintexts_for(params as usize);
        let mut registry = Registry {
            aggregator: Some(aggregator.verifying_key()),
            ..Registry::default()
        };
        let t = Instant::now();
        let uploads: Vec<Upload> = (0..clients)
            .map(|k| {
                let key = SigningKey::generate(&mut Entropy::os());
                registry.clients.insert(ClientId(k), key.verifying_key());
                let m = Plaintext::from_u64(&pk, u64::from(k)).expect("below n");
                let cts = (0..len)
                    .map(|_| pk.encrypt(&m, &mut Entropy::os()))
                    .collect();
                Upload::sign(&pk, &key, &config, ClientId(k), 1, cts)
            })
            .collect();
        let encrypt_s = t.elapsed().as_secs_f64();
        // What a request held before: one aggregate per fog.
        let fog = SigningKey::generate(&mut Entropy::os());
        let aggregates: Vec<FogAggregate> = uploads
            .chunks(uploads.len().div_ceil(2))
            .enumerate()
            .map(|(f, ups)| {
                let vectors: Vec<&[_]> = ups.iter().map(|u| u.ciphertexts.as_slice()).collect();
                let sum = pk.sum_vectors(&vectors).expect("one length");
                let contributors = ups.iter().map(|u| (u.client, u.weight)).collect();
                FogAggregate::sign(&pk, &fog, RoundId(1), FogId(f as u32), contributors, sum)
            })
            .collect();
        let aggregate_bytes: usize = aggregates
            .iter()
            .map(|a| wire::aggregate_to_wire(&pk, a).encoded_len())
            .sum();
        let config_signature = aggregator.sign(&config.transcript());
        let request =
            DecryptionRequest::sign(&pk, config.clone(), config_signature, uploads, &aggregator)
                .expect("one length");
        let w = wire::request_to_wire(&pk, &request);
        let bytes = w.encoded_len();
        let pages = w.uploads.len().div_ceil(wire::uploads_per_page(&pk, len));

        let t = Instant::now();
        let parsed = wire::request_from_wire(&pk, &w).expect("parses");
        let parse_sum_s = t.elapsed().as_secs_f64();
        let t = Instant::now();
        let got = check_request(&pk, &registry, clients, &parsed).expect("honest");
        let check_s = t.elapsed().as_secs_f64();
        assert_eq!(got, clients);
        let t = Instant::now();
        let context = parsed.context(&pk);
        shares[0]
            .decrypt(&pk, parsed.ciphertexts(), &context, &mut Entropy::os())
            .expect("decrypts");
        let decrypt_s = t.elapsed().as_secs_f64();
        println!(
            "{name}: {clients} clients × {len} ciphertexts; request {:.1} KB in {pages} page(s) (fog aggregates: {:.1} KB, +{:.1} KB per holder per round); parse + multiply {:.3} s, signatures {:.4} s, partial decryption {:.2} s (recomputing adds {:.1} %); encrypting the uploads took {:.1} s",
            bytes as f64 / 1e3,
            aggregate_bytes as f64 / 1e3,
            (bytes - aggregate_bytes) as f64 / 1e3,
            parse_sum_s,
            check_s,
            decrypt_s,
            100.0 * (parse_sum_s + check_s) / decrypt_s,
            encrypt_s,
        );
    }
}
