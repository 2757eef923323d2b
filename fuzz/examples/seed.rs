//! Writes the seed corpora: a few valid inputs per target, all under the known-answer test key
//! and deterministic (fixed `α`s, fixed signing keys), so re-running it changes nothing.
//!
//! ```sh
//! cd fuzz && cargo run --example seed   # writes corpus/<target>/seed-*
//! ```

use std::path::{Path, PathBuf};

use num_bigint::BigUint;
use prost::Message;
use spddl_crypto::encoding::PackingParams;
use spddl_crypto::formats::{ciphertexts_to_json, decryption_share_from_json};
use spddl_crypto::identity::SigningKey;
use spddl_crypto::paillier::{Ciphertext, Plaintext, PublicKey, hazmat};
use spddl_experiments::deploy::{
    AggregatorFile, ClientFile, FogEntry, FogFile, HolderFile, RegistryFile,
};
use spddl_proto::transport::TlsPaths;
use spddl_proto::wire;
use spddl_proto::{
    ClientId, DecryptionRequest, FogAggregate, FogId, RoundConfig, RoundId, ShareResponse, Upload,
};

const KAT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../crypto/tests/data/kat");
const CONFIGS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../experiments/configs");

fn corpus(target: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("corpus")
        .join(target);
    std::fs::create_dir_all(&dir).expect("create the corpus directory");
    dir
}

fn write(target: &str, name: &str, bytes: impl AsRef<[u8]>) {
    std::fs::write(corpus(target).join(format!("seed-{name}")), bytes).expect("write a seed");
}

fn read(dir: &str, file: &str) -> String {
    std::fs::read_to_string(Path::new(dir).join(file)).expect("read a checked-in file")
}

fn key(byte: u8) -> SigningKey {
    SigningKey::from_bytes(&[byte; 32])
}

fn encrypt(pk: &PublicKey, values: &[u64]) -> Vec<Ciphertext> {
    values
        .iter()
        .map(|&m| {
            // Fixed α (test data under a test key): the seeds are the same on every run.
            let alpha = BigUint::from(0x5eed_0000 + m);
            hazmat::encrypt_with_alpha(
                pk,
                &Plaintext::from_u64(pk, m).expect("small plaintext"),
                &alpha,
            )
        })
        .collect()
}

fn wire_seeds(pk: &PublicKey) {
    for (name, values) in [("one", &[7u64][..]), ("three", &[0, 1, 1 << 40][..])] {
        let cts = encrypt(pk, values);
        let config = RoundConfig::example(RoundId(3));
        let upload = Upload::sign(pk, &key(1), &config, ClientId(4), 25, cts.clone());
        write(
            "wire_upload",
            name,
            wire::upload_to_wire(pk, &upload).encode_to_vec(),
        );

        let contributors = vec![(ClientId(1), 10), (ClientId(4), 25), (ClientId(9), 1)];
        let transcript =
            FogAggregate::transcript_for(pk, RoundId(3), FogId(2), &contributors, &cts);
        let aggregate = FogAggregate {
            round: RoundId(3),
            fog: FogId(2),
            contributors,
            ciphertexts: cts.clone(),
            signature: key(2).sign(&transcript),
        };
        write(
            "wire_aggregate",
            name,
            wire::aggregate_to_wire(pk, &aggregate).encode_to_vec(),
        );

        let second = Upload::sign(pk, &key(5), &config, ClientId(2), 5, cts.clone());
        let config_signature = key(3).sign(&config.transcript());
        let request = DecryptionRequest::sign(
            pk,
            config.clone(),
            config_signature,
            vec![upload.clone(), second],
            &key(3),
        )
        .expect("uploads of one length");
        write(
            "wire_request",
            name,
            wire::request_to_wire(pk, &request).encode_to_vec(),
        );
    }

    for holder in 1..=2 {
        let json = read(KAT, &format!("decryption-share-{holder}.json"));
        let (share, _) = decryption_share_from_json(pk, &json).expect("KAT share parses");
        let transcript = ShareResponse::transcript_for(RoundId(5), &share);
        let response = ShareResponse {
            round: RoundId(5),
            share,
            signature: key(10 + holder).sign(&transcript),
        };
        write(
            "wire_share",
            &format!("holder-{holder}"),
            wire::share_to_wire(pk, &response).encode_to_vec(),
        );
    }

    let config = RoundConfig {
        round: RoundId(3),
        num_params: 650,
        clip_norm: 3.0,
        quant_range: 3.0,
        value_bits: 16,
        max_contributors: 20,
        max_weight: 1000,
        min_contributors: 3,
        local_epochs: 2,
        batch_size: 16,
        learning_rate: 0.1,
        momentum: 0.9,
        weight_decay: 0.0,
        proximal_mu: 0.01,
        model_digest: RoundConfig::digest_model(&[0.5, -1.0, 2.0]),
    };
    let signature = key(1).sign(&config.transcript());
    write(
        "wire_config",
        "round-3",
        wire::config_to_wire(&config, &signature).encode_to_vec(),
    );
    let config = RoundConfig {
        round: RoundId(u64::MAX),
        value_bits: 52,
        batch_size: 0,
        ..config
    };
    let signature = key(1).sign(&config.transcript());
    write(
        "wire_config",
        "edges",
        wire::config_to_wire(&config, &signature).encode_to_vec(),
    );
}

fn crypto_seeds(pk: &PublicKey) {
    for (i, c) in encrypt(pk, &[0, 42]).iter().enumerate() {
        write("ciphertext", &format!("enc-{i}"), c.to_bytes(pk));
    }
    let one = Ciphertext::new(pk, BigUint::from(1u8)).expect("1 is a unit");
    write("ciphertext", "one", one.to_bytes(pk));

    write("key_files", "public-key.json", read(KAT, "public-key.json"));
    write(
        "key_files",
        "key-share-1.json",
        read(KAT, "key-share-1.json"),
    );
    write(
        "key_files",
        "decryption-share-1.json",
        read(KAT, "decryption-share-1.json"),
    );
    write(
        "key_files",
        "ciphertexts.json",
        ciphertexts_to_json(pk, &encrypt(pk, &[1, 2])),
    );
    write("key_files", "key-id", pk.key_id().to_string());
}

/// The `unpack` target's input: a 21-byte header, then plaintexts at `⌈|n|/8⌉` bytes each.
fn unpack_input(params: &PackingParams, len: u16, k: u64, plaintexts: &[BigUint]) -> Vec<u8> {
    let width = params.modulus_bits().div_ceil(8) as usize;
    let mut out = vec![u8::try_from(params.value_bits()).expect("q ≤ 64")];
    out.extend(params.max_contributions().to_le_bytes());
    out.extend(
        u16::try_from(params.modulus_bits())
            .expect("seed modulus fits u16")
            .to_le_bytes(),
    );
    out.extend(len.to_le_bytes());
    out.extend(k.to_le_bytes());
    for p in plaintexts {
        let raw = p.to_bytes_be();
        out.extend(std::iter::repeat_n(0, width - raw.len()));
        out.extend(raw);
    }
    out
}

fn unpack_seeds() {
    for (name, (q, k_max, n_bits), len, k) in [
        ("q16-k128-n1024-one", (16, 128, 1024), 100u16, 1u64),
        ("q16-k128-n1024-sum3", (16, 128, 1024), 100, 3),
        ("q8-k5-n100-sum5", (8, 5, 100), 37, 5),
        ("q32-k1-n65-one", (32, 1, 65), 4, 1),
    ] {
        let params = PackingParams::new(q, k_max, n_bits).expect("valid layout");
        let values: Vec<u64> = (0..u64::from(len))
            .map(|i| (i * 7919) & params.max_value())
            .collect();
        let packed = params.pack(&values).expect("values fit");
        let sum: Vec<BigUint> = packed.iter().map(|p| p * k).collect();
        write("unpack", name, unpack_input(&params, len, k, &sum));
    }
}

fn config_seeds(pk: &PublicKey) {
    for file in ["digits.toml", "mnist-mlp-dirichlet.toml"] {
        write("config_files", file, read(CONFIGS, file));
    }
    let tls = |name: &str| TlsPaths {
        ca: "tls/ca.pem".into(),
        cert: format!("tls/{name}.pem").into(),
        key: format!("tls/{name}.key").into(),
    };
    let aggregator = AggregatorFile {
        listen: "0.0.0.0:50051".into(),
        scenario: "scenario.toml".into(),
        public_key: "keys/public.json".into(),
        identity: "identities/aggregator.key".into(),
        registry: "registry.json".into(),
        state: "state/aggregator.redb".into(),
        collect_timeout_s: 30.0,
        share_timeout_s: 10.0,
        linger_s: 2.0,
        round_attempts: 3,
        tls: Some(tls("aggregator")),
        fogs: vec![
            FogEntry {
                id: 0,
                address: "127.0.0.1:50061".into(),
            },
            FogEntry {
                id: 1,
                address: "fog-1.example:50061".into(),
            },
        ],
    };
    let fog = FogFile {
        id: 1,
        listen: "0.0.0.0:50061".into(),
        aggregator: "127.0.0.1:50051".into(),
        public_key: "keys/public.json".into(),
        identity: "identities/fog-1.key".into(),
        registry: "registry.json".into(),
        tls: Some(tls("fog-1")),
    };
    let client = ClientFile {
        id: 4,
        aggregator: "127.0.0.1:50051".into(),
        scenario: "scenario.toml".into(),
        public_key: "keys/public.json".into(),
        identity: "identities/client-4.key".into(),
        registry: "registry.json".into(),
        upload_timeout_s: 5.0,
        tls: None,
    };
    let holder = HolderFile {
        index: 2,
        aggregator: "127.0.0.1:50051".into(),
        public_key: "keys/public.json".into(),
        share: "keys/share-2.json".into(),
        identity: "identities/holder-2.key".into(),
        registry: "registry.json".into(),
        min_contributors: 3,
        state: Some("state/holder-2.redb".into()),
        tls: Some(tls("holder-2")),
    };
    for (name, text) in [
        ("aggregator.toml", toml::to_string(&aggregator)),
        ("fog-1.toml", toml::to_string(&fog)),
        ("client-4.toml", toml::to_string(&client)),
        ("holder-2.toml", toml::to_string(&holder)),
    ] {
        write("config_files", name, text.expect("config serializes"));
    }

    let id = |byte| key(byte).verifying_key().to_string();
    let registry = RegistryFile {
        aggregator: id(1),
        fogs: [(0, id(2)), (1, id(3))].into(),
        clients: [(4, id(4)), (9, id(9))].into(),
        holders: (1..=pk.holders()).map(|h| (h, id(10 + h as u8))).collect(),
        certificates: [
            ("aggregator".to_string(), "11".repeat(32)),
            ("client-4".to_string(), "22".repeat(32)),
        ]
        .into(),
    };
    write(
        "config_files",
        "registry.json",
        serde_json::to_string_pretty(&registry).expect("registry serializes"),
    );
}

fn main() {
    let pk = spddl_fuzz::public_key();
    wire_seeds(pk);
    crypto_seeds(pk);
    unpack_seeds();
    config_seeds(pk);
}
