//! Auditing a fog worker (DESIGN §6, integrity): the aggregator cannot see inside an encrypted
//! sum, so it asks the fog for the signed uploads behind an aggregate and recomputes it. A fog
//! that added a ciphertext twice, dropped one from the sum, or listed a client (or a weight)
//! without that client's signed upload is caught and blamed; an honest fog always passes.
//!
//! Every aggregate is audited: the aggregator needs the uploads anyway, since the key holders
//! decrypt only a product they recompute from client-signed uploads (DESIGN §6).

use std::collections::BTreeMap;

use spddl_crypto::paillier::PublicKey;
use spddl_proto::{FogAggregate, Registry, Sender, Upload};

use crate::AggregatorError;

/// Checks `aggregate` against `uploads`, the signed uploads its fog says are in it: exactly
/// one validly signed upload of the aggregate's round per listed contributor, with the listed
/// weight and the aggregate's length, whose element-wise product is the aggregate.
pub fn audit(
    pk: &PublicKey,
    registry: &Registry,
    aggregate: &FogAggregate,
    uploads: &[Upload],
) -> Result<(), AggregatorError> {
    let fail = |reason: String| AggregatorError::AuditFailed {
        fog: aggregate.fog,
        reason,
    };
    let mut by_client = BTreeMap::new();
    for up in uploads {
        if by_client.insert(up.client, up).is_some() {
            return Err(fail(format!("{} appears twice in its uploads", up.client)));
        }
    }
    if by_client.len() != aggregate.contributors.len() {
        return Err(fail(format!(
            "{} signed uploads for {} listed contributors",
            by_client.len(),
            aggregate.contributors.len()
        )));
    }
    let len = aggregate.ciphertexts.len();
    let mut sum: Option<Vec<_>> = None;
    for (client, weight) in &aggregate.contributors {
        let Some(up) = by_client.get(client) else {
            return Err(fail(format!("lists {client} but holds no upload from it")));
        };
        let Some(key) = registry.key_of(Sender::Client(*client)) else {
            return Err(fail(format!("lists {client}, which is not registered")));
        };
        if key.verify(&up.transcript(pk), &up.signature).is_err() {
            return Err(fail(format!("{client}'s upload is not signed by {client}")));
        }
        if up.round != aggregate.round {
            return Err(fail(format!(
                "{client}'s upload is for {}, the aggregate for {}",
                up.round, aggregate.round
            )));
        }
        if up.weight != *weight {
            return Err(fail(format!(
                "lists {client} with weight {weight}, its signed upload says {}",
                up.weight
            )));
        }
        if up.ciphertexts.len() != len {
            return Err(fail(format!(
                "{client}'s upload has {} ciphertexts, the aggregate {len}",
                up.ciphertexts.len()
            )));
        }
        sum = Some(match sum {
            None => up.ciphertexts.clone(),
            Some(s) => s
                .iter()
                .zip(&up.ciphertexts)
                .map(|(a, b)| pk.add(a, b))
                .collect(),
        });
    }
    // Enc(a)·Enc(b) = Enc(a + b): the product of the inputs is what an honest sum is.
    match sum {
        Some(s) if s == aggregate.ciphertexts => Ok(()),
        Some(s) => {
            let first = s
                .iter()
                .zip(&aggregate.ciphertexts)
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            Err(fail(format!(
                "ciphertext {first} is not the product of the listed uploads"
            )))
        }
        None => Err(fail("an aggregate without contributors".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use spddl_crypto::identity::SigningKey;
    use spddl_crypto::paillier::{Ciphertext, Plaintext};
    use spddl_crypto::testing::test_key;
    use spddl_proto::{ClientId, FogId, RoundId};

    struct World {
        pk: PublicKey,
        registry: Registry,
        keys: Vec<SigningKey>,
        fog: SigningKey,
    }

    fn world() -> World {
        let (pk, _) = test_key(1024, 2, 3, 31);
        let mut rng = spddl_crypto::Entropy::os();
        let keys: Vec<SigningKey> = (0..3).map(|_| SigningKey::generate(&mut rng)).collect();
        let mut registry = Registry::default();
        for (i, k) in keys.iter().enumerate() {
            registry
                .clients
                .insert(ClientId(i as u32), k.verifying_key());
        }
        World {
            pk,
            registry,
            keys,
            fog: SigningKey::generate(&mut rng),
        }
    }

    impl World {
        fn upload(&self, client: u32, values: [u64; 2]) -> Upload {
            let cts: Vec<Ciphertext> = values
                .iter()
                .map(|v| {
                    self.pk.encrypt(
                        &Plaintext::from_u64(&self.pk, *v).unwrap(),
                        &mut spddl_crypto::Entropy::os(),
                    )
                })
                .collect();
            Upload::sign(
                &self.pk,
                &self.keys[client as usize],
                &spddl_proto::RoundConfig::example(RoundId(2)),
                ClientId(client),
                u64::from(client) + 1,
                cts,
            )
        }

        fn aggregate(
            &self,
            contributors: Vec<(ClientId, u64)>,
            ciphertexts: Vec<Ciphertext>,
        ) -> FogAggregate {
            let t = FogAggregate::transcript_for(
                &self.pk,
                RoundId(2),
                FogId(0),
                &contributors,
                &ciphertexts,
            );
            FogAggregate {
                round: RoundId(2),
                fog: FogId(0),
                contributors,
                ciphertexts,
                signature: self.fog.sign(&t),
            }
        }

        fn honest(&self, uploads: &[Upload]) -> FogAggregate {
            let mut sum = uploads[0].ciphertexts.clone();
            for up in &uploads[1..] {
                sum = sum
                    .iter()
                    .zip(&up.ciphertexts)
                    .map(|(a, b)| self.pk.add(a, b))
                    .collect();
            }
            self.aggregate(uploads.iter().map(|u| (u.client, u.weight)).collect(), sum)
        }
    }

    fn reason(r: Result<(), AggregatorError>) -> String {
        match r {
            Err(AggregatorError::AuditFailed { fog, reason }) => {
                assert_eq!(fog, FogId(0));
                reason
            }
            other => panic!("not an audit failure: {other:?}"),
        }
    }

    #[test]
    fn an_honest_aggregate_passes() {
        let w = world();
        let ups = vec![
            w.upload(0, [1, 2]),
            w.upload(1, [3, 4]),
            w.upload(2, [5, 6]),
        ];
        assert_eq!(audit(&w.pk, &w.registry, &w.honest(&ups), &ups), Ok(()));
        // Uploads in any order.
        let rev: Vec<Upload> = ups.iter().rev().cloned().collect();
        assert_eq!(audit(&w.pk, &w.registry, &w.honest(&ups), &rev), Ok(()));
    }

    #[test]
    fn each_way_of_cheating_is_caught_and_named() {
        let w = world();
        let ups = vec![w.upload(0, [1, 2]), w.upload(1, [3, 4])];
        let honest = w.honest(&ups);

        // A ciphertext added twice.
        let mut twice = honest.ciphertexts.clone();
        twice[1] = w.pk.add(&twice[1], &ups[1].ciphertexts[1]);
        let agg = w.aggregate(honest.contributors.clone(), twice);
        assert!(reason(audit(&w.pk, &w.registry, &agg, &ups)).contains("ciphertext 1"));

        // A contributor listed whose upload is not in the sum (and not shown).
        let mut listed = honest.contributors.clone();
        listed.push((ClientId(2), 3));
        let agg = w.aggregate(listed, honest.ciphertexts.clone());
        assert!(reason(audit(&w.pk, &w.registry, &agg, &ups)).contains("2 signed uploads for 3"));

        // A contributor dropped from the list while its ciphertexts stay in the sum.
        let agg = w.aggregate(
            honest.contributors[..1].to_vec(),
            honest.ciphertexts.clone(),
        );
        assert!(reason(audit(&w.pk, &w.registry, &agg, &ups[..1])).contains("not the product"));

        // A weight inflated.
        let mut heavier = honest.contributors.clone();
        heavier[0].1 = 100;
        let agg = w.aggregate(heavier, honest.ciphertexts.clone());
        assert!(reason(audit(&w.pk, &w.registry, &agg, &ups)).contains("weight 100"));

        // An upload the fog altered (its client's signature no longer covers it).
        let mut forged = ups.clone();
        forged[0].ciphertexts[0] =
            w.pk.add(&forged[0].ciphertexts[0], &forged[0].ciphertexts[0]);
        let agg = w.honest(&forged);
        assert!(reason(audit(&w.pk, &w.registry, &agg, &forged)).contains("not signed"));

        // The same upload shown twice for two listed clients.
        let dup = vec![ups[0].clone(), ups[0].clone()];
        assert!(reason(audit(&w.pk, &w.registry, &honest, &dup)).contains("twice"));
    }
}
