//! The fog worker's round: every rejection reason, batch verification, and the aggregate
//! decrypting to the sum of the accepted uploads.
#![allow(clippy::unwrap_used)]

use spddl_crypto::Entropy;
use spddl_crypto::identity::SigningKey;
use spddl_crypto::paillier::{Ciphertext, Plaintext, PublicKey, verify_and_combine};
use spddl_crypto::testing::test_key;
use spddl_fog_worker::{FogError, FogRound, UploadHeader};
use spddl_proto::{ClientId, FogId, Registry, RoundConfig, RoundId, Upload};

const ROUND: RoundId = RoundId(5);
const LEN: usize = 3;

struct Setup {
    pk: PublicKey,
    shares: Vec<spddl_crypto::paillier::KeyShare>,
    keys: Vec<SigningKey>,
    registry: Registry,
    rng: Entropy,
}

fn setup() -> Setup {
    let (pk, shares) = test_key(1024, 2, 3, 21);
    let mut rng = Entropy::os();
    let keys: Vec<SigningKey> = (0..5).map(|_| SigningKey::generate(&mut rng)).collect();
    let mut registry = Registry::default();
    for (i, k) in keys.iter().enumerate() {
        registry
            .clients
            .insert(ClientId(i as u32), k.verifying_key());
    }
    Setup {
        pk,
        shares,
        keys,
        registry,
        rng,
    }
}

impl Setup {
    fn upload(&mut self, client: u32, values: [u64; LEN], weight: u64) -> Upload {
        let cts: Vec<Ciphertext> = values
            .iter()
            .map(|&v| {
                self.pk
                    .encrypt(&Plaintext::from_u64(&self.pk, v).unwrap(), &mut self.rng)
            })
            .collect();
        Upload::sign(
            &self.pk,
            &self.keys[client as usize],
            &RoundConfig::example(ROUND),
            ClientId(client),
            weight,
            cts,
        )
    }

    fn fog(&self) -> FogRound {
        // Clients 0..=3 are assigned to this fog; client 4 is registered elsewhere.
        let assigned: Vec<ClientId> = (0..4).map(ClientId).collect();
        FogRound::new(
            &self.pk,
            FogId(1),
            &RoundConfig::example(ROUND),
            &self.registry,
            &assigned,
            LEN,
            100,
        )
    }

    fn decrypt(&mut self, cts: &[Ciphertext]) -> Vec<u64> {
        let ds: Vec<_> = self.shares[..2]
            .iter()
            .map(|s| s.decrypt(&self.pk, cts, b"t", &mut self.rng).unwrap())
            .collect();
        verify_and_combine(&self.pk, cts, b"t", &ds)
            .unwrap()
            .plaintexts
            .iter()
            .map(|m| m.to_u64().unwrap())
            .collect()
    }
}

#[test]
fn aggregate_decrypts_to_the_sum_of_accepted_uploads_and_is_signed() {
    let mut s = setup();
    let mut fog = s.fog();
    let ups = [
        s.upload(0, [1, 2, 3], 10),
        s.upload(1, [10, 20, 30], 20),
        s.upload(2, [100, 200, 300], 30),
    ];
    for up in &ups {
        fog.receive(up, &s.registry).unwrap();
    }
    assert_eq!(fog.contributors(), 3);
    let fog_key = SigningKey::generate(&mut s.rng);
    let agg = fog.finish(&fog_key).unwrap();
    assert_eq!(
        agg.contributors,
        [(ClientId(0), 10), (ClientId(1), 20), (ClientId(2), 30)]
    );
    assert_eq!(agg.total_weight(), 60);
    fog_key
        .verifying_key()
        .verify(&agg.transcript(&s.pk), &agg.signature)
        .unwrap();
    assert_eq!(s.decrypt(&agg.ciphertexts), [111, 222, 333]);
}

#[test]
fn each_rejection_reason_names_the_client_and_keeps_the_sum_clean() {
    let mut s = setup();
    let mut fog = s.fog();
    let good = s.upload(0, [1, 1, 1], 5);
    fog.receive(&good, &s.registry).unwrap();

    let mut forged = s.upload(1, [7, 7, 7], 5);
    forged.weight = 6; // signed for weight 5
    let mut wrong_round = s.upload(1, [7, 7, 7], 5);
    wrong_round.round = RoundId(4);
    let mut other_signer = s.upload(1, [7, 7, 7], 5);
    other_signer.signature = s.upload(2, [7, 7, 7], 5).signature;
    let unknown = {
        let mut u = s.upload(1, [7, 7, 7], 5);
        u.client = ClientId(99);
        u
    };
    let not_assigned = s.upload(4, [7, 7, 7], 5);
    let duplicate = s.upload(0, [7, 7, 7], 5);
    let short = {
        let mut u = s.upload(1, [7, 7, 7], 5);
        u.ciphertexts.pop();
        u
    };
    let zero_weight = s.upload(1, [7, 7, 7], 0);
    let heavy = s.upload(1, [7, 7, 7], 101);

    let cases = [
        (
            forged,
            FogError::BadSignature {
                client: ClientId(1),
            },
        ),
        (
            wrong_round,
            FogError::WrongRound {
                client: ClientId(1),
                got: RoundId(4),
                expected: ROUND,
            },
        ),
        (
            other_signer,
            FogError::BadSignature {
                client: ClientId(1),
            },
        ),
        (
            unknown,
            FogError::UnknownClient {
                client: ClientId(99),
            },
        ),
        (
            not_assigned,
            FogError::NotAssigned {
                client: ClientId(4),
            },
        ),
        (
            duplicate,
            FogError::Duplicate {
                client: ClientId(0),
            },
        ),
        (
            short,
            FogError::WrongLength {
                client: ClientId(1),
                got: 2,
                expected: 3,
            },
        ),
        (
            zero_weight,
            FogError::BadWeight {
                client: ClientId(1),
                weight: 0,
                max: 100,
            },
        ),
        (
            heavy,
            FogError::BadWeight {
                client: ClientId(1),
                weight: 101,
                max: 100,
            },
        ),
    ];
    for (up, expected) in &cases {
        assert_eq!(fog.receive(up, &s.registry).unwrap_err(), *expected);
        assert!(expected.to_string().contains("client"), "{expected}");
    }
    // Nothing rejected reached the sum.
    assert_eq!(fog.contributors(), 1);
    let agg = fog.finish(&SigningKey::generate(&mut s.rng)).unwrap();
    assert_eq!(s.decrypt(&agg.ciphertexts), [1, 1, 1]);
}

#[test]
fn batch_receive_accepts_the_good_and_names_the_forged() {
    let mut s = setup();
    let mut fog = s.fog();
    let mut ups: Vec<Upload> = (0..4).map(|c| s.upload(c, [c as u64; LEN], 1)).collect();
    ups[2].weight = 2; // breaks client 2's signature
    let again = ups[0].clone();
    ups.push(again); // client 0 twice in one batch
    let errors = fog.receive_all(&ups, &s.registry);
    assert_eq!(
        errors,
        [
            FogError::Duplicate {
                client: ClientId(0)
            },
            FogError::BadSignature {
                client: ClientId(2)
            }
        ]
    );
    assert_eq!(fog.contributors(), 3);
    let agg = fog.finish(&SigningKey::generate(&mut s.rng)).unwrap();
    let clients: Vec<ClientId> = agg.contributors.iter().map(|(c, _)| *c).collect();
    assert_eq!(clients, [ClientId(0), ClientId(1), ClientId(3)]);
    assert_eq!(s.decrypt(&agg.ciphertexts), [4, 4, 4]);
}

#[test]
fn an_empty_round_forwards_nothing() {
    let mut s = setup();
    let fog = s.fog();
    assert!(fog.finish(&SigningKey::generate(&mut s.rng)).is_none());
}

#[test]
fn the_header_alone_refuses_what_it_shows_and_a_forgotten_client_may_upload_again() {
    let mut s = setup();
    let mut fog = s.fog();
    let config = RoundConfig::example(ROUND).digest();
    let header = |client: u32, ciphertexts: usize| UploadHeader {
        round: ROUND,
        client: ClientId(client),
        config: &config,
        weight: 5,
        ciphertexts,
    };
    // Each reason the header shows, from the raw numbers, before any ciphertext exists.
    assert_eq!(
        fog.precheck_header(&header(1, 130_000), &s.registry),
        Err(FogError::WrongLength {
            client: ClientId(1),
            got: 130_000,
            expected: LEN,
        })
    );
    let short = [0u8; 31];
    assert_eq!(
        fog.precheck_header(
            &UploadHeader {
                config: &short,
                ..header(1, LEN)
            },
            &s.registry
        ),
        Err(FogError::OtherConfig {
            client: ClientId(1)
        })
    );
    assert_eq!(
        fog.precheck_header(
            &UploadHeader {
                round: RoundId(6),
                ..header(1, LEN)
            },
            &s.registry
        ),
        Err(FogError::WrongRound {
            client: ClientId(1),
            got: RoundId(6),
            expected: ROUND,
        })
    );
    assert_eq!(fog.precheck_header(&header(1, LEN), &s.registry), Ok(()));

    // Accepted, taken into a batch the aggregator then refused for good: forgotten, the
    // client's next upload is accepted instead of refused as a second one.
    let first = s.upload(1, [1, 2, 3], 5);
    fog.receive(&first, &s.registry).unwrap();
    assert_eq!(
        fog.precheck_header(&header(1, LEN), &s.registry),
        Err(FogError::Duplicate {
            client: ClientId(1)
        })
    );
    let fog_key = SigningKey::generate(&mut s.rng);
    let refused = fog.take_aggregate(&fog_key).unwrap();
    assert_eq!(refused.contributors, [(ClientId(1), 5)]);
    fog.forget(&[ClientId(1)]);
    assert_eq!(fog.precheck_header(&header(1, LEN), &s.registry), Ok(()));
    let again = s.upload(1, [4, 5, 6], 5);
    fog.receive(&again, &s.registry).unwrap();
    let agg = fog.take_aggregate(&fog_key).unwrap();
    assert_eq!(s.decrypt(&agg.ciphertexts), [4, 5, 6]);
    // A client in the open batch is not forgotten (its upload is in the sum).
    let other = s.upload(2, [1, 1, 1], 5);
    fog.receive(&other, &s.registry).unwrap();
    fog.forget(&[ClientId(2)]);
    assert_eq!(
        fog.receive(&s.upload(2, [1, 1, 1], 5), &s.registry),
        Err(FogError::Duplicate {
            client: ClientId(2)
        })
    );
}
