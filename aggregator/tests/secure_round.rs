//! One secure round in-process through the sans-IO cores: clients encode, encrypt and sign;
//! fog workers check and add; the aggregator refuses small sums, asks `t` holders, blames bad
//! shares, survives silent holders, and decodes the weighted mean of the updates.
#![allow(clippy::unwrap_used)]

use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha20Rng;
use spddl_aggregator::{
    AggregatorError, Collecting, Coordinator, Decrypting, Event, FedAvg, PhaseKind, Settings,
    assign_round_robin,
};
use spddl_crypto::Entropy;
use spddl_crypto::identity::SigningKey;
use spddl_crypto::paillier::{KeyShare, PublicKey, ShareIndex};
use spddl_crypto::testing::test_key;
use spddl_fog_worker::FogRound;
use spddl_proto::{
    ClientId, FogAggregate, FogId, Registry, RoundConfig, RoundId, ShareResponse, Upload,
};

const M: usize = 40; // parameters
const ROUND: RoundId = RoundId(1);

struct World {
    pk: PublicKey,
    shares: Vec<KeyShare>,
    aggregator: SigningKey,
    clients: Vec<SigningKey>,
    fogs: Vec<SigningKey>,
    holders: Vec<SigningKey>,
    registry: Registry,
    config: RoundConfig,
    /// Reproducible data and rounding.
    rng: ChaCha20Rng,
    /// Keys, encryption randomness, proof nonces.
    entropy: Entropy,
}

fn world(t: u16, l: u16, clients: usize, min_contributors: u32) -> World {
    let (pk, shares) = test_key(1024, t, l, 40 + u64::from(t));
    let rng = ChaCha20Rng::seed_from_u64(7);
    let mut entropy = Entropy::os();
    let mut gen_keys = |n: usize| -> Vec<SigningKey> {
        (0..n).map(|_| SigningKey::generate(&mut entropy)).collect()
    };
    let aggregator = gen_keys(1).pop().unwrap();
    let (clients, fogs, holders) = (gen_keys(clients), gen_keys(2), gen_keys(l as usize));
    let mut registry = Registry {
        aggregator: Some(aggregator.verifying_key()),
        ..Registry::default()
    };
    for (i, k) in clients.iter().enumerate() {
        registry
            .clients
            .insert(ClientId(i as u32), k.verifying_key());
    }
    for (i, k) in fogs.iter().enumerate() {
        registry.fogs.insert(FogId(i as u32), k.verifying_key());
    }
    for (i, k) in holders.iter().enumerate() {
        let idx = pk.share_index(i as u64 + 1).unwrap();
        registry.holders.insert(idx, k.verifying_key());
    }
    let config = RoundConfig {
        round: ROUND,
        num_params: M as u64,
        clip_norm: 10.0,
        quant_range: 1.0,
        value_bits: 16,
        max_contributors: 50,
        max_weight: 200,
        min_contributors,
        local_epochs: 1,
        batch_size: 32,
        learning_rate: 0.1,
        momentum: 0.0,
        weight_decay: 0.0,
        proximal_mu: 0.0,
        model_digest: RoundConfig::digest_model(&[0.0; M]),
    };
    World {
        pk,
        shares,
        aggregator,
        clients,
        fogs,
        holders,
        registry,
        config,
        rng,
        entropy,
    }
}

impl World {
    fn ids(&self) -> Vec<ClientId> {
        (0..self.clients.len() as u32).map(ClientId).collect()
    }

    /// Every client's update Δ_k and weight w_k.
    fn updates(&mut self) -> Vec<(Vec<f64>, u64)> {
        (0..self.clients.len())
            .map(|_| {
                let d: Vec<f64> = (0..M).map(|_| self.rng.random_range(-1.0..1.0)).collect();
                (d, self.rng.random_range(10..200u64))
            })
            .collect()
    }

    fn upload(&mut self, k: usize, delta: &[f64], weight: u64) -> Upload {
        let encoder = self.config.encoder(&self.pk).unwrap();
        let plain = encoder
            .encode_scaled(delta, weight, self.config.max_weight, &mut self.rng)
            .unwrap();
        let cts = plain
            .into_iter()
            .map(|p| {
                let m = spddl_crypto::paillier::Plaintext::new(&self.pk, p).unwrap();
                self.pk.encrypt(&m, &mut self.entropy)
            })
            .collect();
        Upload::sign(
            &self.pk,
            &self.clients[k],
            &self.config,
            ClientId(k as u32),
            weight,
            cts,
        )
    }

    fn expected_len(&self) -> usize {
        self.config
            .encoder(&self.pk)
            .unwrap()
            .packing()
            .plaintexts_for(M)
    }

    /// Clients upload (those in `present`), fogs aggregate: the fog aggregates, each with the
    /// uploads in it.
    fn collect(
        &mut self,
        updates: &[(Vec<f64>, u64)],
        present: &[usize],
    ) -> Vec<(FogAggregate, Vec<Upload>)> {
        let assignment = assign_round_robin(&self.ids(), &[FogId(0), FogId(1)]);
        let len = self.expected_len();
        let mut fogs: Vec<FogRound> = (0..2)
            .map(|f| {
                let mine: Vec<ClientId> = assignment
                    .iter()
                    .filter(|(_, g)| g.contains(&FogId(f)))
                    .map(|(c, _)| *c)
                    .collect();
                FogRound::new(
                    &self.pk,
                    FogId(f),
                    &self.config,
                    &self.registry,
                    &mine,
                    len,
                    1000,
                )
            })
            .collect();
        let mut uploads: Vec<Vec<Upload>> = vec![Vec::new(); 2];
        for &k in present {
            let up = self.upload(k, &updates[k].0, updates[k].1);
            let f = assignment[&ClientId(k as u32)][0].0 as usize;
            fogs[f].receive(&up, &self.registry).unwrap();
            uploads[f].push(up);
        }
        fogs.into_iter()
            .zip(&self.fogs)
            .zip(uploads)
            .filter_map(|((f, key), ups)| f.finish(key).map(|a| (a, ups)))
            .collect()
    }

    fn collecting(&self) -> Collecting {
        let assignment = assign_round_robin(&self.ids(), &[FogId(0), FogId(1)]);
        Collecting::new(
            &self.pk,
            self.config.clone(),
            self.registry.clone(),
            assignment,
            self.expected_len(),
        )
    }

    fn respond(&mut self, d: &Decrypting, h: ShareIndex) -> ShareResponse {
        let share = self.shares[usize::from(h.get()) - 1]
            .decrypt(
                &self.pk,
                d.request().ciphertexts(),
                &d.request().context(&self.pk),
                &mut self.entropy,
            )
            .unwrap();
        let signature = self.holders[usize::from(h.get()) - 1]
            .sign(&ShareResponse::transcript_for(ROUND, &share));
        ShareResponse {
            round: ROUND,
            share,
            signature,
        }
    }
}

fn weighted_mean(updates: &[(Vec<f64>, u64)], present: &[usize]) -> Vec<f64> {
    let total: u64 = present.iter().map(|&k| updates[k].1).sum();
    (0..M)
        .map(|j| {
            present
                .iter()
                .map(|&k| updates[k].0[j] * updates[k].1 as f64)
                .sum::<f64>()
                / total as f64
        })
        .collect()
}

/// Each client quantizes `(w_k/W)·x_k` with stochastic rounding, within one step; the sum of
/// `K` of them is within `K` steps, and the mean, `W/Σw` times that sum, within
/// `K·W/Σw` steps.
fn mean_error_bound(w: &World, updates: &[(Vec<f64>, u64)], present: &[usize]) -> f64 {
    let step = w.config.encoder(&w.pk).unwrap().quantizer().step();
    let total: u64 = present.iter().map(|&k| updates[k].1).sum();
    step * present.len() as f64 * w.config.max_weight as f64 / total as f64
}

fn assert_close(got: &[f32], want: &[f64], bound: f64) {
    for (j, (g, w)) in got.iter().zip(want).enumerate() {
        assert!(
            (f64::from(*g) - w).abs() <= bound + 1e-6,
            "param {j}: {g} vs {w}"
        );
    }
}

#[test]
fn a_secure_round_decodes_the_weighted_mean_and_survives_dropouts() {
    let mut w = world(3, 5, 10, 5);
    let updates = w.updates();
    // 30 % of clients drop before upload.
    let present: Vec<usize> = (0..10).filter(|k| ![2, 5, 9].contains(k)).collect();
    let aggs = w.collect(&updates, &present);
    let mut collecting = w.collecting();
    for (a, ups) in aggs {
        collecting.receive(a, ups).unwrap();
    }
    let mut dec = collecting.close(&w.aggregator).unwrap();
    w.registry
        .aggregator
        .unwrap()
        .verify(&dec.request().transcript(&w.pk), &dec.request().signature)
        .unwrap();

    // Exactly t holders asked first.
    let first = dec.holders_to_ask();
    assert_eq!(first.iter().map(|h| h.get()).collect::<Vec<_>>(), [1, 2, 3]);
    // Holder 1 is silent, holder 2 sends a wrong share, holder 3 is honest.
    dec.mark_silent(first[0]);
    let mut bad = w.respond(&dec, first[1]);
    bad.share.partials[0] = (&bad.share.partials[0] * 2u32) % w.pk.n_squared();
    bad.signature = w.holders[1].sign(&ShareResponse::transcript_for(ROUND, &bad.share));
    let err = dec.receive(&bad).unwrap_err();
    assert!(matches!(err, AggregatorError::BadShare { holder, .. } if holder.get() == 2));
    let good = w.respond(&dec, first[2]);
    dec.receive(&good).unwrap();
    assert!(!dec.is_ready());
    // Only now are more holders asked: the two that remain (ℓ − t = 2 failures absorbed).
    let more = dec.holders_to_ask();
    assert_eq!(more.iter().map(|h| h.get()).collect::<Vec<_>>(), [4, 5]);
    for h in more {
        let r = w.respond(&dec, h);
        dec.receive(&r).unwrap();
    }
    assert!(dec.is_ready());
    let bound = mean_error_bound(&w, &updates, &present);
    let out = dec.finish().unwrap();
    assert_eq!(out.contributors.len(), 7);
    assert_eq!(out.silent.len(), 1);
    assert_eq!(out.blamed.len(), 1);
    assert_eq!(
        out.holders_used.iter().map(|h| h.get()).collect::<Vec<_>>(),
        [3, 4, 5]
    );
    assert_close(&out.mean_update, &weighted_mean(&updates, &present), bound);
}

#[test]
fn fewer_than_min_contributors_are_never_decrypted() {
    let mut w = world(2, 3, 6, 4);
    let updates = w.updates();
    let aggs = w.collect(&updates, &[0, 1, 3]);
    let mut collecting = w.collecting();
    for (a, ups) in aggs {
        collecting.receive(a, ups).unwrap();
    }
    assert_eq!(
        collecting.close(&w.aggregator).unwrap_err(),
        AggregatorError::TooFewContributors { got: 3, min: 4 }
    );
}

#[test]
fn t_minus_one_honest_holders_fail_cleanly() {
    let mut w = world(3, 4, 4, 2);
    let updates = w.updates();
    let aggs = w.collect(&updates, &[0, 1, 2, 3]);
    let mut collecting = w.collecting();
    for (a, ups) in aggs {
        collecting.receive(a, ups).unwrap();
    }
    let mut dec = collecting.close(&w.aggregator).unwrap();
    let asked = dec.holders_to_ask();
    for h in &asked[..2] {
        let r = w.respond(&dec, *h);
        dec.receive(&r).unwrap();
    }
    dec.mark_silent(asked[2]);
    let last = dec.holders_to_ask();
    assert_eq!(last.len(), 1);
    dec.mark_silent(last[0]);
    assert!(dec.holders_to_ask().is_empty(), "nobody left to ask");
    match dec.finish().unwrap_err() {
        AggregatorError::NotEnoughShares {
            valid: 2,
            threshold: 3,
            silent,
            blamed,
        } => {
            assert_eq!(silent.len(), 2);
            assert!(blamed.is_empty());
        }
        other => panic!("{other}"),
    }
}

#[test]
fn a_retry_keeps_valid_shares_and_never_asks_a_blamed_holder_again() {
    let mut w = world(3, 5, 4, 2);
    let updates = w.updates();
    let present = [0, 1, 2, 3];
    let aggs = w.collect(&updates, &present);
    let mut collecting = w.collecting();
    for (a, ups) in aggs {
        collecting.receive(a, ups).unwrap();
    }
    let mut dec = collecting.close(&w.aggregator).unwrap();
    let ids = |v: &[ShareIndex]| v.iter().map(|h| h.get()).collect::<Vec<_>>();
    // First attempt: 1 valid, 2 cheats, 3 silent, then 4 and 5 silent.
    let asked = dec.holders_to_ask();
    assert_eq!(ids(&asked), [1, 2, 3]);
    let r = w.respond(&dec, asked[0]);
    dec.receive(&r).unwrap();
    let mut bad = w.respond(&dec, asked[1]);
    bad.share.proof.z += 1u32;
    bad.signature = w.holders[1].sign(&ShareResponse::transcript_for(ROUND, &bad.share));
    dec.receive(&bad).unwrap_err();
    dec.mark_silent(asked[2]);
    let next = dec.holders_to_ask();
    assert_eq!(ids(&next), [4, 5]);
    for h in next {
        dec.mark_silent(h);
    }
    assert!(dec.holders_to_ask().is_empty());
    assert_eq!(
        dec.shortfall().to_string(),
        "only 1 valid decryption shares, 3 needed; silent key holders (down, or refusing: their \
         logs say why): 3, 4, 5; blamed: 2"
    );
    // Second attempt at the same sum: holder 1's share still counts, holder 2 is never asked
    // again, so the two lowest silent holders are.
    dec.retry();
    let again = dec.holders_to_ask();
    assert_eq!(ids(&again), [3, 4]);
    for h in again {
        let r = w.respond(&dec, h);
        dec.receive(&r).unwrap();
    }
    assert!(dec.is_ready());
    let bound = mean_error_bound(&w, &updates, &present);
    let out = dec.finish().unwrap();
    assert_eq!(ids(&out.holders_used), [1, 3, 4]);
    assert_eq!(out.blamed.len(), 1);
    assert_close(&out.mean_update, &weighted_mean(&updates, &present), bound);
}

/// The coordinator over a round whose collection closes early (as a restarted aggregator
/// whose store says it had closed) and whose holders never answer.
#[test]
fn a_closed_collection_is_not_reopened_and_a_round_short_of_shares_fails_after_its_attempts() {
    let mut w = world(2, 3, 4, 2);
    let updates = w.updates();
    let aggs = w.collect(&updates, &[0, 1]);
    let settings = Settings {
        rounds: 3,
        template: w.config.clone(),
        collect_timeout_ms: 60_000,
        share_timeout_ms: 100,
        round_attempts: 2,
    };
    let key = SigningKey::from_bytes(&w.aggregator.to_bytes());
    let mut coord = Coordinator::new(
        &w.pk,
        key,
        w.registry.clone(),
        settings,
        Box::new(FedAvg),
        ROUND,
        vec![0.0; M],
    )
    .unwrap();
    coord.open(assign_round_robin(&w.ids(), &[FogId(0), FogId(1)]), 0);
    for (a, ups) in aggs {
        assert!(coord.receive_aggregate(a, ups, 10).unwrap().is_empty());
    }
    // 2 of 4 clients in, the deadline a minute away: still collecting.
    assert!(coord.tick(20).is_empty());
    assert_eq!(coord.phase_kind(), PhaseKind::Collecting);
    let events = coord.close_collection_now(30);
    assert!(
        matches!(
            &events[0],
            Event::Closed {
                contributors: 2,
                ..
            }
        ),
        "{events:?}"
    );
    assert_eq!(coord.phase_kind(), PhaseKind::Decrypting);
    let h = |i: u64| w.pk.share_index(i).unwrap();
    assert_eq!(coord.request_for(h(1)).unwrap().uploads().len(), 2);
    assert!(coord.request_for(h(3)).is_none(), "only t asked at first");
    // Nobody answers: holders 1, 2 silent, then 3; the same sum is asked for again.
    let events = coord.tick(130);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Asked { holders, .. } if holders == &vec![h(3)])),
        "{events:?}"
    );
    let events = coord.tick(260);
    assert!(
        events
            .iter()
            .any(|e| matches!(e, Event::Retrying { attempt: 2, .. })),
        "{events:?}"
    );
    assert!(
        coord.request_for(h(1)).is_some(),
        "the silent holders are asked again"
    );
    let first = coord.request_for(h(1)).unwrap().ciphertexts().to_vec();
    let _ = coord.tick(390);
    assert_eq!(
        coord.request_for(h(3)).unwrap().ciphertexts(),
        first,
        "the same sum"
    );
    // The second attempt fails too: the run stops, saying why.
    let events = coord.tick(520);
    assert!(
        events.iter().any(|e| matches!(
            e,
            Event::Failed {
                attempts: 2,
                resumable: true,
                ..
            }
        )),
        "{events:?}"
    );
    assert_eq!(coord.phase_kind(), PhaseKind::Failed);
    assert!(
        coord
            .failure()
            .unwrap()
            .starts_with("only 0 valid decryption shares, 2 needed"),
        "{:?}",
        coord.failure()
    );
    assert!(coord.tick(10_000).is_empty(), "a failed run stays failed");
}

#[test]
fn forged_or_misassigned_fog_aggregates_are_refused() {
    let mut w = world(2, 3, 4, 1);
    let updates = w.updates();
    let aggs = w.collect(&updates, &[0, 1, 2, 3]);
    let mut collecting = w.collecting();

    let (agg0, ups0) = aggs[0].clone();
    let mut forged = agg0.clone();
    forged.contributors.pop();
    assert_eq!(
        collecting.receive(forged, ups0.clone()).unwrap_err(),
        AggregatorError::BadFogSignature { fog: FogId(0) }
    );
    // Fog 1 signs a claim to clients assigned to fog 0.
    let stolen: Vec<(ClientId, u64)> = agg0.contributors.clone();
    let sig = w.fogs[1].sign(&FogAggregate::transcript_for(
        &w.pk,
        ROUND,
        FogId(1),
        &stolen,
        &agg0.ciphertexts,
    ));
    let misassigned = FogAggregate {
        round: ROUND,
        fog: FogId(1),
        contributors: stolen,
        ciphertexts: agg0.ciphertexts.clone(),
        signature: sig,
    };
    assert!(matches!(
        collecting.receive(misassigned, ups0.clone()).unwrap_err(),
        AggregatorError::ClientNotAssigned { fog: FogId(1), .. }
    ));
    // Fog 0's genuine aggregate with one of its uploads held back: the audit blames fog 0
    // (it signed an aggregate it cannot back with client-signed uploads).
    assert!(matches!(
        collecting
            .receive(agg0.clone(), ups0[1..].to_vec())
            .unwrap_err(),
        AggregatorError::AuditFailed { fog: FogId(0), .. }
    ));
    collecting.receive(agg0.clone(), ups0.clone()).unwrap();
    assert_eq!(
        collecting.receive(agg0.clone(), ups0).unwrap_err(),
        AggregatorError::AlreadyCounted {
            fog: FogId(0),
            clients: agg0.contributors.iter().map(|(c, _)| *c).collect()
        }
    );
}

/// The report names every holder that was silent in any attempt and never answered: a round
/// that completes on its second attempt, with late shares from the first, once reported no
/// silent holder at all (`deployment::rounds_complete_with_l_minus_t_key_holders_down`).
#[test]
fn holders_silent_in_an_earlier_attempt_are_reported_silent() {
    let mut w = world(3, 5, 4, 2);
    let updates = w.updates();
    let aggs = w.collect(&updates, &[0, 1, 2, 3]);
    let mut collecting = w.collecting();
    for (a, ups) in aggs {
        collecting.receive(a, ups).unwrap();
    }
    let mut dec = collecting.close(&w.aggregator).unwrap();
    let ids = |v: &[ShareIndex]| v.iter().map(|h| h.get()).collect::<Vec<_>>();
    // Holders 1 and 2 are down; 3 answers; 4 and 5 are asked, and slow: counted silent.
    let asked = dec.holders_to_ask();
    assert_eq!(ids(&asked), [1, 2, 3]);
    let r = w.respond(&dec, asked[2]);
    dec.receive(&r).unwrap();
    dec.mark_silent(asked[0]);
    dec.mark_silent(asked[1]);
    let next = dec.holders_to_ask();
    assert_eq!(ids(&next), [4, 5]);
    let late: Vec<_> = next.iter().map(|h| w.respond(&dec, *h)).collect();
    for h in &next {
        dec.mark_silent(*h);
    }
    // The second attempt asks 1 and 2 again; 4's and 5's late shares arrive before they time
    // out, and the round completes.
    dec.retry();
    assert_eq!(ids(&dec.holders_to_ask()), [1, 2]);
    for r in &late {
        dec.receive(r).unwrap();
    }
    assert!(dec.is_ready());
    let out = dec.finish().unwrap();
    assert_eq!(ids(&out.holders_used), [3, 4, 5]);
    assert_eq!(
        ids(&out.silent),
        [1, 2],
        "silent in the first attempt, never answered"
    );
}
