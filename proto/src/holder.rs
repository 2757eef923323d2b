//! The key-holder step, shared by every role that may hold a key share (clients by default,
//! fog workers, or dedicated holders): check the aggregator's request, decrypt partially with
//! a proof, sign the answer.

use std::collections::BTreeSet;

use spddl_crypto::Entropy;
use spddl_crypto::identity::SigningKey;
use spddl_crypto::paillier::{KeyShare, PublicKey};

use crate::{ClientId, DecryptionRequest, FogId, Registry, RoundId, Sender, ShareResponse};

/// Why a key holder refused a decryption request. Every refusal names the round and, where
/// one fog's aggregate is at fault, that fog.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HolderError {
    /// The request is not signed by the registered aggregator.
    #[error("decryption request for {round} is not signed by the aggregator")]
    BadRequestSignature {
        /// The round it claims.
        round: RoundId,
    },
    /// One of the aggregates is not signed by the fog worker it names (or names no
    /// registered fog worker): the aggregator altered or made it up.
    #[error(
        "decryption request for {round}: aggregate {index} is not signed by {fog}: refused (the aggregator altered or forged it)"
    )]
    BadAggregateSignature {
        /// The round.
        round: RoundId,
        /// Position of the aggregate in the request.
        index: usize,
        /// The fog worker it names.
        fog: FogId,
    },
    /// One of the aggregates belongs to another round.
    #[error("decryption request for {round}: aggregate {index} from {fog} is for {got}: refused")]
    AggregateForOtherRound {
        /// The request's round.
        round: RoundId,
        /// Position of the aggregate in the request.
        index: usize,
        /// The fog worker that signed it.
        fog: FogId,
        /// The aggregate's round.
        got: RoundId,
    },
    /// A client is listed by two aggregates (or twice by one): its update would count twice
    /// and the count of distinct updates be overstated.
    #[error(
        "decryption request for {round}: {client} is listed twice (again by {fog}): refused, the contributor count would be overstated"
    )]
    ClientCountedTwice {
        /// The round.
        round: RoundId,
        /// The client.
        client: ClientId,
        /// The fog worker whose aggregate lists it the second time.
        fog: FogId,
    },
    /// An aggregate lists a client the registry does not know.
    #[error("decryption request for {round}: {fog} lists {client}, not a registered client")]
    UnknownClient {
        /// The round.
        round: RoundId,
        /// The fog worker.
        fog: FogId,
        /// The client.
        client: ClientId,
    },
    /// The request's sum holds fewer distinct updates than the holder's policy allows:
    /// decrypting it could reveal individual updates.
    #[error("decryption request for {round} covers {got} updates, fewer than {min}: refused")]
    TooFewContributors {
        /// The round.
        round: RoundId,
        /// The distinct contributors the fog-signed aggregates list.
        got: u32,
        /// The holder's minimum.
        min: u32,
    },
    /// The partial decryption itself failed (share of another key, empty request).
    #[error(transparent)]
    Crypto(#[from] spddl_crypto::Error),
}

/// Checks a decryption request before any share is computed: the aggregator's signature,
/// every aggregate's round and fog signature, no client listed twice, every client
/// registered, and at least `min_contributors` distinct contributors. Returns the number of
/// distinct contributors. The sum itself needs no check: the request computed it from the
/// aggregates ([`DecryptionRequest::from_parts`]).
pub fn check_request(
    pk: &PublicKey,
    registry: &Registry,
    min_contributors: u32,
    request: &DecryptionRequest,
) -> Result<u32, HolderError> {
    let round = request.round;
    let aggregator = registry
        .aggregator
        .as_ref()
        .ok_or(HolderError::BadRequestSignature { round })?;
    aggregator
        .verify(&request.transcript(pk), &request.signature)
        .map_err(|_| HolderError::BadRequestSignature { round })?;
    let mut seen = BTreeSet::new();
    for (index, agg) in request.aggregates().iter().enumerate() {
        let fog = agg.fog;
        if agg.round != round {
            return Err(HolderError::AggregateForOtherRound {
                round,
                index,
                fog,
                got: agg.round,
            });
        }
        let signed = registry
            .key_of(Sender::Fog(fog))
            .is_some_and(|key| key.verify(&agg.transcript(pk), &agg.signature).is_ok());
        if !signed {
            return Err(HolderError::BadAggregateSignature { round, index, fog });
        }
        for (client, _) in &agg.contributors {
            if !registry.clients.contains_key(client) {
                return Err(HolderError::UnknownClient {
                    round,
                    fog,
                    client: *client,
                });
            }
            if !seen.insert(*client) {
                return Err(HolderError::ClientCountedTwice {
                    round,
                    client: *client,
                    fog,
                });
            }
        }
    }
    let got = u32::try_from(seen.len()).unwrap_or(u32::MAX);
    if got < min_contributors {
        return Err(HolderError::TooFewContributors {
            round,
            got,
            min: min_contributors,
        });
    }
    Ok(got)
}

/// Answers a decryption request: [`check_request`], then [`share_of_checked`].
pub fn answer_request(
    pk: &PublicKey,
    share: &KeyShare,
    identity: &SigningKey,
    registry: &Registry,
    min_contributors: u32,
    request: &DecryptionRequest,
    entropy: &mut Entropy,
) -> Result<ShareResponse, HolderError> {
    check_request(pk, registry, min_contributors, request)?;
    share_of_checked(pk, share, identity, request, entropy)
}

/// This holder's signed decryption share of a request's sum, bound to its round and
/// ciphertexts, for a request that passed [`check_request`] (a caller with more to check in
/// between, such as the one-sum-per-round record, calls the two itself).
pub fn share_of_checked(
    pk: &PublicKey,
    share: &KeyShare,
    identity: &SigningKey,
    request: &DecryptionRequest,
    entropy: &mut Entropy,
) -> Result<ShareResponse, HolderError> {
    let round = request.round;
    let context = request.context(pk);
    // The proof's nonce comes from `entropy`: one known nonce would reveal the key share.
    let decryption = share.decrypt(pk, request.ciphertexts(), &context, entropy)?;
    let signature = identity.sign(&ShareResponse::transcript_for(round, &decryption));
    Ok(ShareResponse {
        round,
        share: decryption,
        signature,
    })
}

#[cfg(test)]
mod tests {
    //! A lying aggregator against the holder's checks (issue 6): it cannot declare a count,
    //! so it tries to get a small sum decrypted by repeating, altering, forging or replaying
    //! fog aggregates.

    use super::*;
    use crate::{ClientId, FogAggregate};
    use num_bigint::BigUint;
    use spddl_crypto::paillier::{self, Ciphertext, Plaintext};
    use spddl_crypto::testing::test_key;

    struct World {
        pk: PublicKey,
        shares: Vec<KeyShare>,
        aggregator: SigningKey,
        fogs: Vec<SigningKey>,
        holder: SigningKey,
        registry: Registry,
        rng: Entropy,
    }

    const MIN: u32 = 4;

    fn world() -> World {
        let (pk, shares) = test_key(1024, 2, 3, 11);
        let mut rng = Entropy::os();
        let aggregator = SigningKey::generate(&mut rng);
        let fogs: Vec<SigningKey> = (0..2).map(|_| SigningKey::generate(&mut rng)).collect();
        let holder = SigningKey::generate(&mut rng);
        let mut registry = Registry {
            aggregator: Some(aggregator.verifying_key()),
            ..Registry::default()
        };
        for (f, k) in fogs.iter().enumerate() {
            registry.fogs.insert(FogId(f as u32), k.verifying_key());
        }
        for c in 0..6 {
            let k = SigningKey::generate(&mut rng);
            registry.clients.insert(ClientId(c), k.verifying_key());
        }
        World {
            pk,
            shares,
            aggregator,
            fogs,
            holder,
            registry,
            rng,
        }
    }

    impl World {
        /// Fog `fog`'s honest aggregate of `clients` in `round`: client `k` encrypted the
        /// values `(k + 1, 100·(k + 1))`.
        fn aggregate(&mut self, round: u64, fog: u32, clients: &[u32]) -> FogAggregate {
            let mut sum: Option<Vec<Ciphertext>> = None;
            for &k in clients {
                let v = u64::from(k) + 1;
                let cts: Vec<Ciphertext> = [v, 100 * v]
                    .iter()
                    .map(|&m| {
                        let m = Plaintext::from_u64(&self.pk, m).unwrap();
                        self.pk.encrypt(&m, &mut self.rng)
                    })
                    .collect();
                sum = Some(match sum {
                    None => cts,
                    Some(s) => s.iter().zip(&cts).map(|(a, b)| self.pk.add(a, b)).collect(),
                });
            }
            let contributors = clients.iter().map(|&k| (ClientId(k), 1)).collect();
            FogAggregate::sign(
                &self.pk,
                &self.fogs[fog as usize],
                RoundId(round),
                FogId(fog),
                contributors,
                sum.unwrap(),
            )
        }

        fn request(&self, round: u64, aggregates: Vec<FogAggregate>) -> DecryptionRequest {
            DecryptionRequest::sign(&self.pk, RoundId(round), aggregates, &self.aggregator).unwrap()
        }

        fn answer(
            &mut self,
            holder: usize,
            r: &DecryptionRequest,
        ) -> Result<ShareResponse, HolderError> {
            answer_request(
                &self.pk,
                &self.shares[holder],
                &self.holder,
                &self.registry,
                MIN,
                r,
                &mut self.rng,
            )
        }
    }

    #[test]
    fn an_honest_request_is_answered_and_decrypts_to_the_sum_of_the_listed_updates() {
        let mut w = world();
        let a = w.aggregate(3, 0, &[0, 1, 2]);
        let b = w.aggregate(3, 1, &[3, 4, 5]);
        let r = w.request(3, vec![a, b]);
        assert_eq!(check_request(&w.pk, &w.registry, MIN, &r), Ok(6));
        let context = r.context(&w.pk);
        let verified: Vec<_> = (0..2)
            .map(|i| {
                let resp = w.answer(i, &r).unwrap();
                resp.share.verify(&w.pk, r.ciphertexts(), &context).unwrap()
            })
            .collect();
        let sums: Vec<BigUint> = paillier::combine(&w.pk, &verified)
            .unwrap()
            .into_iter()
            .map(|p| p.into_value())
            .collect();
        // Σ_{k=0..5} (k + 1) = 21.
        assert_eq!(sums, vec![BigUint::from(21u32), BigUint::from(2100u32)]);
        assert_eq!(verified[0].holder().get(), 1);
    }

    #[test]
    fn a_sum_of_too_few_distinct_updates_is_refused_however_it_is_dressed_up() {
        let mut w = world();
        let a = w.aggregate(3, 0, &[0, 1, 2]);
        let b = w.aggregate(3, 1, &[3]);
        // One honest aggregate of 3 < 4 updates.
        let r = w.request(3, vec![a.clone()]);
        assert_eq!(
            w.answer(0, &r).unwrap_err(),
            HolderError::TooFewContributors {
                round: RoundId(3),
                got: 3,
                min: MIN
            }
        );
        // The same aggregate twice: 6 listed, 3 distinct (and the sum would double them).
        let r = w.request(3, vec![a.clone(), a.clone()]);
        assert_eq!(r.listed_contributors(), 6);
        assert_eq!(
            w.answer(0, &r).unwrap_err(),
            HolderError::ClientCountedTwice {
                round: RoundId(3),
                client: ClientId(0),
                fog: FogId(0)
            }
        );
        // A client of fog 0 also listed by fog 1's aggregate.
        let c = w.aggregate(3, 1, &[2, 3]);
        let r = w.request(3, vec![a.clone(), c]);
        assert!(matches!(
            w.answer(0, &r).unwrap_err(),
            HolderError::ClientCountedTwice {
                client: ClientId(2),
                fog: FogId(1),
                ..
            }
        ));
        // The aggregator adds contributors to fog 0's list (the ciphertexts still hold 3):
        // fog 0's signature no longer covers it. It signs the request, so only the fog's
        // signature can catch this.
        let mut inflated = a.clone();
        inflated.contributors.push((ClientId(4), 1));
        inflated.contributors.push((ClientId(5), 1));
        let r = w.request(3, vec![inflated.clone()]);
        let e = w.answer(0, &r).unwrap_err();
        assert_eq!(
            e,
            HolderError::BadAggregateSignature {
                round: RoundId(3),
                index: 0,
                fog: FogId(0)
            }
        );
        assert!(e.to_string().contains("not signed by fog 0"), "{e}");
        // The aggregator signs a made-up aggregate as "fog 1" with its own key.
        let forged = FogAggregate::sign(
            &w.pk,
            &w.aggregator,
            RoundId(3),
            FogId(1),
            vec![(ClientId(3), 1), (ClientId(4), 1)],
            b.ciphertexts.clone(),
        );
        let r = w.request(3, vec![a.clone(), forged]);
        assert!(matches!(
            w.answer(0, &r).unwrap_err(),
            HolderError::BadAggregateSignature {
                index: 1,
                fog: FogId(1),
                ..
            }
        ));
        // A fog id nobody registered.
        let mut stranger = b.clone();
        stranger.fog = FogId(9);
        let r = w.request(3, vec![a.clone(), stranger]);
        assert!(matches!(
            w.answer(0, &r).unwrap_err(),
            HolderError::BadAggregateSignature { fog: FogId(9), .. }
        ));
        // Fog 1's genuine aggregate of round 2 replayed into round 3 to make up the count.
        let old = w.aggregate(2, 1, &[3, 4]);
        let r = w.request(3, vec![a.clone(), old]);
        assert_eq!(
            w.answer(0, &r).unwrap_err(),
            HolderError::AggregateForOtherRound {
                round: RoundId(3),
                index: 1,
                fog: FogId(1),
                got: RoundId(2)
            }
        );
        // An aggregate that lists an unregistered client (a fog in league with the
        // aggregator signs it).
        let ghost = FogAggregate::sign(
            &w.pk,
            &w.fogs[1],
            RoundId(3),
            FogId(1),
            vec![(ClientId(77), 1)],
            b.ciphertexts.clone(),
        );
        let r = w.request(3, vec![a.clone(), ghost]);
        assert!(matches!(
            w.answer(0, &r).unwrap_err(),
            HolderError::UnknownClient {
                client: ClientId(77),
                ..
            }
        ));
        // And with a fourth genuine update the same request is answered.
        let r = w.request(3, vec![a, b]);
        assert!(w.answer(0, &r).is_ok());
    }

    #[test]
    fn a_request_the_aggregator_did_not_sign_as_sent_is_refused() {
        let mut w = world();
        let a = w.aggregate(3, 0, &[0, 1, 2]);
        let b = w.aggregate(3, 1, &[3, 4]);
        let c = w.aggregate(3, 1, &[5]);
        // Signed by a fog, not the aggregator.
        let r = DecryptionRequest::sign(&w.pk, RoundId(3), vec![a.clone(), b.clone()], &w.fogs[0])
            .unwrap();
        assert_eq!(
            w.answer(0, &r).unwrap_err(),
            HolderError::BadRequestSignature { round: RoundId(3) }
        );
        // The aggregator's signature over {a, b} moved to {a, c} or to another round.
        let signed = w.request(3, vec![a.clone(), b]);
        for (round, aggs) in [(3, vec![a.clone(), c]), (4, vec![a.clone()])] {
            let moved =
                DecryptionRequest::from_parts(&w.pk, RoundId(round), aggs, signed.signature)
                    .unwrap();
            assert!(matches!(
                w.answer(0, &moved).unwrap_err(),
                HolderError::BadRequestSignature { .. }
            ));
        }
        // No aggregate at all, or aggregates of different lengths: not even a request.
        assert!(
            DecryptionRequest::from_parts(&w.pk, RoundId(3), vec![], signed.signature).is_err()
        );
        let mut short = a.clone();
        short.ciphertexts.pop();
        assert!(
            DecryptionRequest::from_parts(&w.pk, RoundId(3), vec![a, short], signed.signature)
                .is_err()
        );
    }
}
