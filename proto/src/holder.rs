//! The key-holder step, shared by every role that may hold a key share (clients by default,
//! fog workers, or dedicated holders): check the aggregator's request, decrypt partially with
//! a proof, sign the answer.

use std::collections::BTreeSet;

use spddl_crypto::Entropy;
use spddl_crypto::identity::{SignatureError, SigningKey, verify_batch};
use spddl_crypto::paillier::{KeyShare, PublicKey};

use crate::{ClientId, DecryptionRequest, Registry, RoundId, ShareResponse};

/// Why a key holder refused a decryption request. Every refusal names the round and, where
/// one upload is at fault, its client.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum HolderError {
    /// The request is not signed by the registered aggregator.
    #[error("decryption request for {round} is not signed by the aggregator")]
    BadRequestSignature {
        /// The round it claims.
        round: RoundId,
    },
    /// The round config in the request is not the aggregator's signed config of that round.
    #[error("decryption request for {round}: its round config {why}: refused")]
    BadConfig {
        /// The round.
        round: RoundId,
        /// What is wrong with it.
        why: &'static str,
    },
    /// An upload is not signed by the client it names: the aggregator or a fog made it up or
    /// altered it.
    #[error(
        "decryption request for {round}: the upload of {client} is not signed by {client}: refused (made up or altered by the aggregator or a fog)"
    )]
    BadUploadSignature {
        /// The round.
        round: RoundId,
        /// The client it names.
        client: ClientId,
    },
    /// An upload was made for another round or another round config (another global model).
    #[error("decryption request for {round}: the upload of {client} was made for {what}: refused")]
    UploadForOtherRound {
        /// The request's round.
        round: RoundId,
        /// The client.
        client: ClientId,
        /// What it was made for instead.
        what: String,
    },
    /// A client's upload appears twice: its update would count twice and the count of
    /// distinct updates be overstated.
    #[error(
        "decryption request for {round}: {client}'s upload appears twice: refused, the contributor count would be overstated"
    )]
    ClientCountedTwice {
        /// The round.
        round: RoundId,
        /// The client.
        client: ClientId,
    },
    /// An upload names a client the registry does not know.
    #[error("decryption request for {round}: an upload names {client}, not a registered client")]
    UnknownClient {
        /// The round.
        round: RoundId,
        /// The client.
        client: ClientId,
    },
    /// An upload's weight is 0 or above the config's `max_weight`, or the request holds more
    /// uploads than the packing's head-room (`max_contributors`): the decoded sum could
    /// overflow its slots.
    #[error("decryption request for {round}: {why}: refused (the packed sum could overflow)")]
    OutsideHeadroom {
        /// The round.
        round: RoundId,
        /// Which bound is broken, and by whom.
        why: String,
    },
    /// The request's sum holds fewer distinct updates than the holder's policy allows:
    /// decrypting it could reveal individual updates.
    #[error("decryption request for {round} covers {got} updates, fewer than {min}: refused")]
    TooFewContributors {
        /// The round.
        round: RoundId,
        /// The distinct clients whose signed uploads the request carries.
        got: u32,
        /// The holder's minimum.
        min: u32,
    },
    /// The partial decryption itself failed (share of another key, empty request).
    #[error(transparent)]
    Crypto(#[from] spddl_crypto::Error),
}

/// Checks a decryption request before any share is computed (DESIGN §6): the aggregator's
/// signature on the request and on the round config it carries, and for every upload its
/// client's signature (ed25519 batch verification), its round, the config it names, a
/// registered client, no client twice; then at least `min_contributors` distinct clients.
/// Returns the number of distinct contributors. The sum itself needs no check: the request
/// computed it from these uploads ([`DecryptionRequest::from_parts`]).
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
    let (config, config_signature) = request.config();
    if config.round != round {
        return Err(HolderError::BadConfig {
            round,
            why: "is for another round",
        });
    }
    aggregator
        .verify(&config.transcript(), config_signature)
        .map_err(|_| HolderError::BadConfig {
            round,
            why: "is not signed by the aggregator",
        })?;
    let config_digest = config.digest();
    let mut seen = BTreeSet::new();
    let mut items = Vec::with_capacity(request.uploads().len());
    for up in request.uploads() {
        let client = up.client;
        let Some(key) = registry.clients.get(&client) else {
            return Err(HolderError::UnknownClient { round, client });
        };
        if up.round != round {
            return Err(HolderError::UploadForOtherRound {
                round,
                client,
                what: up.round.to_string(),
            });
        }
        if up.config != config_digest {
            return Err(HolderError::UploadForOtherRound {
                round,
                client,
                what: "another round config (another global model)".into(),
            });
        }
        if !seen.insert(client) {
            return Err(HolderError::ClientCountedTwice { round, client });
        }
        if up.weight == 0 || up.weight > config.max_weight {
            return Err(HolderError::OutsideHeadroom {
                round,
                why: format!(
                    "{client}'s weight {} is outside 1..={}",
                    up.weight, config.max_weight
                ),
            });
        }
        items.push((key, up.transcript(pk), &up.signature));
    }
    let batch: Vec<_> = items.iter().map(|(k, t, s)| (*k, t, *s)).collect();
    if let Err(e) = verify_batch(&batch) {
        let culprit = match e {
            SignatureError::BatchFailed { culprits } => culprits.first().copied().unwrap_or(0),
            _ => (0..batch.len())
                .find(|&i| batch[i].0.verify(batch[i].1, batch[i].2).is_err())
                .unwrap_or(0),
        };
        return Err(HolderError::BadUploadSignature {
            round,
            client: request.uploads()[culprit].client,
        });
    }
    let got = u32::try_from(seen.len()).unwrap_or(u32::MAX);
    if got > config.max_contributors {
        return Err(HolderError::OutsideHeadroom {
            round,
            why: format!(
                "{got} uploads, more than the {} the packing has head-room for",
                config.max_contributors
            ),
        });
    }
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
    //! A lying aggregator, alone or with a fog in league, against the holder's checks: it
    //! cannot declare a count, so it tries to get a small sum decrypted by repeating,
    //! relabelling, forging or replaying uploads, or by moving signatures.

    use super::*;
    use crate::{ClientId, RoundConfig, Upload};
    use num_bigint::BigUint;
    use spddl_crypto::identity::Signature;
    use spddl_crypto::paillier::{self, Ciphertext, Plaintext};
    use spddl_crypto::testing::test_key;

    struct World {
        pk: PublicKey,
        shares: Vec<KeyShare>,
        aggregator: SigningKey,
        fog: SigningKey,
        clients: Vec<SigningKey>,
        holder: SigningKey,
        registry: Registry,
        rng: Entropy,
    }

    const MIN: u32 = 4;

    fn world() -> World {
        let (pk, shares) = test_key(1024, 2, 3, 11);
        let mut rng = Entropy::os();
        let aggregator = SigningKey::generate(&mut rng);
        let fog = SigningKey::generate(&mut rng);
        let holder = SigningKey::generate(&mut rng);
        let clients: Vec<SigningKey> = (0..6).map(|_| SigningKey::generate(&mut rng)).collect();
        let mut registry = Registry {
            aggregator: Some(aggregator.verifying_key()),
            ..Registry::default()
        };
        registry.fogs.insert(crate::FogId(0), fog.verifying_key());
        for (c, k) in clients.iter().enumerate() {
            registry
                .clients
                .insert(ClientId(c as u32), k.verifying_key());
        }
        World {
            pk,
            shares,
            aggregator,
            fog,
            clients,
            holder,
            registry,
            rng,
        }
    }

    fn config(round: u64, model: f32) -> RoundConfig {
        RoundConfig {
            round: RoundId(round),
            num_params: 2,
            clip_norm: 1.0,
            quant_range: 0.5,
            value_bits: 16,
            max_contributors: 8,
            max_weight: 1,
            min_contributors: MIN,
            local_epochs: 1,
            batch_size: 8,
            learning_rate: 0.1,
            momentum: 0.0,
            weight_decay: 0.0,
            proximal_mu: 0.0,
            model_digest: RoundConfig::digest_model(&[model]),
        }
    }

    impl World {
        fn signed_config(&self, round: u64) -> (RoundConfig, Signature) {
            let c = config(round, 0.5);
            let sig = self.aggregator.sign(&c.transcript());
            (c, sig)
        }

        fn ciphertexts(&mut self, k: u32) -> Vec<Ciphertext> {
            let v = u64::from(k) + 1;
            [v, 100 * v]
                .iter()
                .map(|&m| {
                    let m = Plaintext::from_u64(&self.pk, m).unwrap();
                    self.pk.encrypt(&m, &mut self.rng)
                })
                .collect()
        }

        /// Client `k`'s honest upload for `config`: it encrypted `(k + 1, 100·(k + 1))`.
        fn upload(&mut self, config: &RoundConfig, k: u32) -> Upload {
            let cts = self.ciphertexts(k);
            Upload::sign(
                &self.pk,
                &self.clients[k as usize],
                config,
                ClientId(k),
                1,
                cts,
            )
        }

        fn uploads(&mut self, config: &RoundConfig, clients: &[u32]) -> Vec<Upload> {
            clients.iter().map(|&k| self.upload(config, k)).collect()
        }

        fn request(&self, round: u64, uploads: Vec<Upload>) -> DecryptionRequest {
            let (c, sig) = self.signed_config(round);
            DecryptionRequest::sign(&self.pk, c, sig, uploads, &self.aggregator).unwrap()
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
    fn an_honest_request_is_answered_and_decrypts_to_the_sum_of_the_uploads() {
        let mut w = world();
        let (c, _) = w.signed_config(3);
        let ups = w.uploads(&c, &[5, 0, 1, 2, 3, 4]);
        let r = w.request(3, ups);
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
    fn a_sum_of_too_few_real_updates_is_refused_however_it_is_dressed_up() {
        let mut w = world();
        let round = RoundId(3);
        let (c, _) = w.signed_config(3);
        let ups = w.uploads(&c, &[0, 1, 2]);
        // Three honest uploads, fewer than 4.
        let r = w.request(3, ups.clone());
        assert_eq!(
            w.answer(0, &r).unwrap_err(),
            HolderError::TooFewContributors {
                round,
                got: 3,
                min: MIN
            }
        );
        // The same upload twice.
        let r = w.request(
            3,
            vec![
                ups[0].clone(),
                ups[1].clone(),
                ups[2].clone(),
                ups[2].clone(),
            ],
        );
        assert_eq!(
            w.answer(0, &r).unwrap_err(),
            HolderError::ClientCountedTwice {
                round,
                client: ClientId(2)
            }
        );
        // A fog in league with the aggregator lists client 3 with client 2's ciphertexts
        // (relabelled), or makes up client 4's upload and signs it with its own key.
        let mut relabelled = ups[2].clone();
        relabelled.client = ClientId(3);
        let r = w.request(
            3,
            vec![ups[0].clone(), ups[1].clone(), ups[2].clone(), relabelled],
        );
        let e = w.answer(0, &r).unwrap_err();
        assert_eq!(
            e,
            HolderError::BadUploadSignature {
                round,
                client: ClientId(3)
            }
        );
        assert!(e.to_string().contains("not signed by client 3"), "{e}");
        let cts = w.ciphertexts(4);
        let made_up = Upload::sign(&w.pk, &w.fog, &c, ClientId(4), 1, cts);
        let r = w.request(
            3,
            vec![ups[0].clone(), ups[1].clone(), ups[2].clone(), made_up],
        );
        assert_eq!(
            w.answer(0, &r).unwrap_err(),
            HolderError::BadUploadSignature {
                round,
                client: ClientId(4)
            }
        );
        // An upload naming a client nobody registered.
        let cts = w.ciphertexts(1);
        let ghost = Upload::sign(&w.pk, &w.fog, &c, ClientId(77), 1, cts);
        let r = w.request(
            3,
            vec![ups[0].clone(), ups[1].clone(), ups[2].clone(), ghost],
        );
        assert_eq!(
            w.answer(0, &r).unwrap_err(),
            HolderError::UnknownClient {
                round,
                client: ClientId(77)
            }
        );
        // Client 3's genuine upload of round 2 replayed into round 3.
        let (old, _) = w.signed_config(2);
        let replayed = w.upload(&old, 3);
        let r = w.request(
            3,
            vec![ups[0].clone(), ups[1].clone(), ups[2].clone(), replayed],
        );
        assert!(matches!(
            w.answer(0, &r).unwrap_err(),
            HolderError::UploadForOtherRound {
                client: ClientId(3),
                ..
            }
        ));
        // Client 3's genuine upload of round 3, but trained from another global model (the
        // aggregator sent it a different config).
        let other = config(3, 0.25);
        let split = w.upload(&other, 3);
        let r = w.request(
            3,
            vec![ups[0].clone(), ups[1].clone(), ups[2].clone(), split],
        );
        let e = w.answer(0, &r).unwrap_err();
        assert!(e.to_string().contains("another round config"), "{e}");
        // A weight the config's head-room does not allow (the fog would have refused it).
        let cts = w.ciphertexts(3);
        let heavy = Upload::sign(&w.pk, &w.clients[3], &c, ClientId(3), 2, cts);
        let r = w.request(
            3,
            vec![ups[0].clone(), ups[1].clone(), ups[2].clone(), heavy],
        );
        let e = w.answer(0, &r).unwrap_err();
        assert!(e.to_string().contains("weight 2 is outside 1..=1"), "{e}");
        // With a fourth genuine update the request is answered.
        let fourth = w.upload(&c, 3);
        let r = w.request(
            3,
            vec![ups[0].clone(), ups[1].clone(), ups[2].clone(), fourth],
        );
        assert!(w.answer(0, &r).is_ok());
    }

    #[test]
    fn a_request_or_config_the_aggregator_did_not_sign_as_sent_is_refused() {
        let mut w = world();
        let (c, sig) = w.signed_config(3);
        let ups = w.uploads(&c, &[0, 1, 2, 3, 4]);
        // Signed by a fog, not the aggregator.
        let r = DecryptionRequest::sign(&w.pk, c.clone(), sig, ups[..4].to_vec(), &w.fog).unwrap();
        assert_eq!(
            w.answer(0, &r).unwrap_err(),
            HolderError::BadRequestSignature { round: RoundId(3) }
        );
        // The aggregator's signature over uploads 0..4 moved to other uploads or a round.
        let signed = w.request(3, ups[..4].to_vec());
        for (round, these) in [(3, ups[1..5].to_vec()), (4, ups[..4].to_vec())] {
            let moved = DecryptionRequest::from_parts(
                &w.pk,
                RoundId(round),
                c.clone(),
                sig,
                these,
                signed.signature,
            )
            .unwrap();
            assert!(matches!(
                w.answer(0, &moved).unwrap_err(),
                HolderError::BadRequestSignature { .. }
            ));
        }
        // A config the aggregator did not sign (signed by the fog).
        let fake = w.fog.sign(&c.transcript());
        let r = DecryptionRequest::sign(&w.pk, c.clone(), fake, ups[..4].to_vec(), &w.aggregator)
            .unwrap();
        assert!(
            w.answer(0, &r)
                .unwrap_err()
                .to_string()
                .contains("not signed by the aggregator")
        );
        // No upload, or uploads of different lengths: not even a request.
        assert!(
            DecryptionRequest::from_parts(
                &w.pk,
                RoundId(3),
                c.clone(),
                sig,
                vec![],
                signed.signature
            )
            .is_err()
        );
        let mut short = ups[1].clone();
        short.ciphertexts.pop();
        assert!(
            DecryptionRequest::from_parts(
                &w.pk,
                RoundId(3),
                c,
                sig,
                vec![ups[0].clone(), short],
                signed.signature
            )
            .is_err()
        );
    }
}
