//! The in-process simulation: the same sans-IO cores the gRPC services will drive — clients
//! train and seal, fog workers check and add, the aggregator collects, asks holders,
//! combines and decodes — wired together by function calls, with dropouts injected.

use std::time::Instant;

use anyhow::{Context, Result, bail};
use rand::RngExt;
use rayon::prelude::*;
use spddl_aggregator::{Collecting, FedAdam, FedAvg, Strategy, assign_round_robin};
use spddl_client_trainer::client::{Client, LocalUpdate};
use spddl_client_trainer::data::{self, Dataset};
use spddl_client_trainer::model::{Model, ModelSpec};
use spddl_crypto::Entropy;
use spddl_crypto::identity::SigningKey;
use spddl_crypto::paillier::{KeyShare, PublicKey, ShareIndex};
use spddl_fog_worker::FogRound;
use spddl_proto::{
    ClientId, FogId, Registry, RoundConfig, RoundId, ShareResponse, Upload, answer_request,
};

use crate::metrics::{Mode, RoundMetrics};
use crate::scenario::{DatasetName, ModelKind, PartitionKind, Scenario, StrategyKind};

/// Called after every round with the mode and that round's metrics (progress display).
pub type RoundHook<'a> = &'a (dyn Fn(Mode, &RoundMetrics) + Sync);

/// The data of a run: the training set split over clients, and the test set.
#[derive(Debug)]
pub struct Federation {
    /// One dataset per client.
    pub client_data: Vec<Dataset>,
    /// The held-out test set.
    pub test: Dataset,
    /// The model every client trains.
    pub spec: ModelSpec,
}

/// Loads the scenario's dataset, splits it and partitions the training set.
pub fn federation(s: &Scenario) -> Result<Federation> {
    let (train, test) = match s.dataset {
        DatasetName::Digits => data::digits()?.train_test_split(s.test_fraction, s.seed)?,
        DatasetName::Mnist => data::mnist(std::path::Path::new(&s.data_dir).join("mnist"))
            .context("MNIST not found: run scripts/fetch-datasets.sh")?,
        DatasetName::FashionMnist => {
            data::fashion_mnist(std::path::Path::new(&s.data_dir).join("fashion-mnist"))
                .context("Fashion-MNIST not found: run scripts/fetch-datasets.sh")?
        }
    };
    let partition = match s.partition {
        PartitionKind::Iid => data::iid(train.len(), s.clients, s.seed)?,
        PartitionKind::Dirichlet => {
            data::dirichlet(train.labels(), s.clients, s.dirichlet_alpha, s.seed)?
        }
        PartitionKind::Shards => {
            data::shards(train.labels(), s.clients, s.shards_per_client, s.seed)?
        }
    };
    let client_data = partition
        .clients()
        .iter()
        .map(|idx| train.subset(idx))
        .collect();
    let (inputs, classes) = (train.num_features(), train.num_classes());
    let spec = match s.model {
        ModelKind::Softmax => ModelSpec::SoftmaxRegression { inputs, classes },
        ModelKind::Mlp => ModelSpec::Mlp {
            inputs,
            hidden: s.hidden.clone(),
            classes,
        },
    };
    Ok(Federation {
        client_data,
        test,
        spec,
    })
}

use spddl_client_trainer::client::seeded_rng as rng_for;

pub(crate) fn strategy(s: &Scenario) -> Box<dyn Strategy + Send> {
    match s.strategy {
        StrategyKind::Fedavg => Box::new(FedAvg),
        StrategyKind::Fedadam => Box::new(FedAdam::new(s.server_lr as f32)),
    }
}

pub(crate) fn round_config(
    s: &Scenario,
    round: u64,
    global: &[f32],
    max_contributors: u32,
    max_weight: u64,
) -> RoundConfig {
    RoundConfig {
        round: RoundId(round),
        num_params: global.len() as u64,
        clip_norm: s.clip_norm,
        quant_range: s.clip_norm,
        value_bits: s.quant_bits,
        max_contributors,
        max_weight,
        min_contributors: s.min_contributors,
        local_epochs: s.local_epochs,
        batch_size: s.batch_size,
        learning_rate: s.learning_rate,
        momentum: s.momentum,
        weight_decay: s.weight_decay,
        proximal_mu: s.proximal_mu,
        model_digest: RoundConfig::digest_model(global),
    }
}

/// Runs every round of the scenario in one mode and returns the per-round metrics.
/// `keys` is required in secure mode.
pub fn run_mode(
    s: &Scenario,
    fed: &Federation,
    mode: Mode,
    keys: Option<&(PublicKey, Vec<KeyShare>)>,
    hook: RoundHook<'_>,
) -> Result<Vec<RoundMetrics>> {
    s.validate().map_err(anyhow::Error::msg)?;
    // Identities, encryption randomness and proof nonces are secrets: from the operating
    // system, never the scenario seed (anyone holding it could replay them). The model
    // digests depend on the seeded training and rounding streams only, so runs stay
    // reproducible.
    let mut idrng = Entropy::os();
    let clients: Vec<Client> = fed
        .client_data
        .iter()
        .enumerate()
        .map(|(k, d)| {
            Client::new(
                ClientId(k as u32),
                SigningKey::generate(&mut idrng),
                d.clone(),
            )
        })
        .collect();
    let fog_keys: Vec<SigningKey> = (0..s.fogs)
        .map(|_| SigningKey::generate(&mut idrng))
        .collect();
    let holder_keys: Vec<SigningKey> = (0..s.holders)
        .map(|_| SigningKey::generate(&mut idrng))
        .collect();
    let aggregator_key = SigningKey::generate(&mut idrng);
    let max_weight = clients
        .iter()
        .map(|c| c.num_samples() as u64)
        .max()
        .unwrap_or(1);
    let max_contributors = u32::try_from(clients.len()).unwrap_or(u32::MAX);

    let mut global = fed.spec.init(s.seed)?.params();
    let mut strategy = strategy(s);
    let mut rows = Vec::new();
    for round in 0..s.rounds {
        let start = Instant::now();
        let config = round_config(s, round, &global, max_contributors, max_weight);
        let mut m = RoundMetrics {
            round,
            ..RoundMetrics::default()
        };
        // Clients that vanish before uploading.
        let mut droprng = rng_for(s.seed, 2, round, 0);
        let present: Vec<&Client> = clients
            .iter()
            .filter(|c| {
                let gone = droprng.random::<f64>() < s.client_dropout;
                if gone {
                    m.dropped.push(c.id().0);
                }
                !gone
            })
            .collect();

        let train_start = Instant::now();
        let updates: Vec<(ClientId, LocalUpdate, f64)> = present
            .par_iter()
            .map(|c| {
                let t = Instant::now();
                let mut rng = rng_for(s.seed, 3, round, u64::from(c.id().0));
                let u = c.train(&fed.spec, &config, &global, &mut rng)?;
                Ok((c.id(), u, t.elapsed().as_secs_f64()))
            })
            .collect::<Result<_>>()?;
        m.train_s = updates.iter().map(|u| u.2).sum();
        m.train_wall_s = train_start.elapsed().as_secs_f64();

        let mean_update = match mode {
            Mode::Plaintext => {
                m.contributors = updates.len();
                if updates.len() < s.min_contributors as usize {
                    bail!(
                        "round {round}: only {} clients left, fewer than min_contributors = {}",
                        updates.len(),
                        s.min_contributors
                    );
                }
                plaintext_mean(&updates)
            }
            Mode::Secure => {
                let Some((pk, shares)) = keys else {
                    bail!("secure mode needs a threshold key");
                };
                secure_round(
                    s,
                    &mut m,
                    SecureParties {
                        pk,
                        shares,
                        clients: &clients,
                        fog_keys: &fog_keys,
                        holder_keys: &holder_keys,
                        aggregator_key: &aggregator_key,
                        max_weight,
                    },
                    &config,
                    &updates,
                )?
            }
        };
        strategy.apply(&mut global, &mean_update);
        m.model_digest = RoundConfig::digest_model(&global)
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        let model = Model::from_params(fed.spec.clone(), global.clone())?;
        let metrics = model.evaluate(fed.test.features().view(), fed.test.labels())?;
        m.accuracy = f64::from(metrics.accuracy);
        m.loss = f64::from(metrics.loss);
        m.wall_s = start.elapsed().as_secs_f64();
        hook(mode, &m);
        rows.push(m);
    }
    Ok(rows)
}

/// `Σ w_k·Δ_k / Σ w_k` in floating point: the plaintext baseline.
fn plaintext_mean(updates: &[(ClientId, LocalUpdate, f64)]) -> Vec<f32> {
    let Some(first) = updates.first() else {
        return Vec::new();
    };
    let total: f64 = updates.iter().map(|(_, u, _)| u.weight as f64).sum();
    let mut sum = vec![0.0f64; first.1.delta.len()];
    for (_, u, _) in updates {
        for (s, d) in sum.iter_mut().zip(&u.delta) {
            *s += f64::from(*d) * u.weight as f64;
        }
    }
    sum.into_iter().map(|s| (s / total) as f32).collect()
}

struct SecureParties<'a> {
    pk: &'a PublicKey,
    shares: &'a [KeyShare],
    clients: &'a [Client],
    fog_keys: &'a [SigningKey],
    holder_keys: &'a [SigningKey],
    aggregator_key: &'a SigningKey,
    max_weight: u64,
}

fn secure_round(
    s: &Scenario,
    m: &mut RoundMetrics,
    p: SecureParties<'_>,
    config: &RoundConfig,
    updates: &[(ClientId, LocalUpdate, f64)],
) -> Result<Vec<f32>> {
    let round = config.round.0;
    let pk = p.pk;
    let mut registry = Registry {
        aggregator: Some(p.aggregator_key.verifying_key()),
        ..Registry::default()
    };
    for c in p.clients {
        registry.clients.insert(c.id(), c.verifying_key());
    }
    for (f, k) in p.fog_keys.iter().enumerate() {
        registry.fogs.insert(FogId(f as u32), k.verifying_key());
    }
    for (i, k) in p.holder_keys.iter().enumerate() {
        registry
            .holders
            .insert(pk.share_index(i as u64 + 1)?, k.verifying_key());
    }

    // Clients: encode, encrypt, sign.
    let t = Instant::now();
    let sealed: Vec<(Upload, f64)> = updates
        .par_iter()
        .map(|(id, u, _)| {
            let t = Instant::now();
            let mut rounding = rng_for(s.seed, 4, round, u64::from(id.0));
            let up =
                p.clients[id.0 as usize].seal(pk, config, u, &mut rounding, &mut Entropy::os())?;
            Ok((up, t.elapsed().as_secs_f64()))
        })
        .collect::<Result<_>>()?;
    m.encrypt_s = sealed.iter().map(|x| x.1).sum();
    m.encrypt_wall_s = t.elapsed().as_secs_f64();
    m.ciphertexts_per_upload = sealed.first().map_or(0, |(u, _)| u.ciphertexts.len());
    m.bytes_uploaded = sealed
        .iter()
        .map(|(u, _)| {
            u.ciphertexts
                .iter()
                .map(|c| c.to_bytes(pk).len() as u64)
                .sum::<u64>()
        })
        .sum();

    // Fog workers: check and add their clients' uploads.
    let fog_ids: Vec<FogId> = (0..s.fogs as u32).map(FogId).collect();
    let all_ids: Vec<ClientId> = p.clients.iter().map(|c| c.id()).collect();
    let assignment = assign_round_robin(&all_ids, &fog_ids);
    let expected_len = config
        .encoder(pk)?
        .packing()
        .plaintexts_for(config.num_params as usize);
    let t = Instant::now();
    let aggregates: Vec<_> = fog_ids
        .par_iter()
        .map(|&fog| {
            let mine: Vec<ClientId> = assignment
                .iter()
                .filter(|(_, f)| f.contains(&fog))
                .map(|(c, _)| *c)
                .collect();
            let mut fr = FogRound::new(
                pk,
                fog,
                config,
                &registry,
                &mine,
                expected_len,
                p.max_weight,
            );
            let uploads: Vec<Upload> = sealed
                .iter()
                .filter(|(u, _)| assignment.get(&u.client).is_some_and(|f| f.contains(&fog)))
                .map(|(u, _)| u.clone())
                .collect();
            let rejected = fr.receive_all(&uploads, &registry);
            (fr.finish(&p.fog_keys[fog.0 as usize]), rejected, uploads)
        })
        .collect();
    m.fog_add_s = t.elapsed().as_secs_f64();
    for (_, rejected, _) in &aggregates {
        if let Some(e) = rejected.first() {
            bail!("round {round}: an honest upload was rejected: {e}");
        }
    }

    // Aggregator: collect, refuse small sums, ask t holders.
    let t = Instant::now();
    let mut collecting = Collecting::new(
        pk,
        config.clone(),
        registry.clone(),
        assignment.clone(),
        expected_len,
    );
    // The aggregator audits each aggregate against the uploads its fog holds, and keeps them
    // for the holders' recomputation.
    for (agg, _, uploads) in aggregates {
        if let Some(agg) = agg {
            collecting.receive(agg, uploads)?;
        }
    }
    m.contributors = collecting.contributors().len();
    let mut decrypting = collecting.close(p.aggregator_key)?;
    let mut combine_s = t.elapsed().as_secs_f64();

    let liar = |h: ShareIndex| h.get() <= s.wrong_share_holders;
    let silent = |h: ShareIndex| {
        h.get() > s.wrong_share_holders && h.get() <= s.wrong_share_holders + s.silent_holders
    };
    loop {
        let ask = decrypting.holders_to_ask();
        if ask.is_empty() {
            break;
        }
        let request = decrypting.request().clone();
        let t = Instant::now();
        let answers: Vec<(ShareIndex, Option<ShareResponse>, f64)> = ask
            .par_iter()
            .map(|&h| {
                if silent(h) {
                    return Ok((h, None, 0.0));
                }
                let t = Instant::now();
                let i = usize::from(h.get()) - 1;
                let mut entropy = Entropy::os();
                let mut resp = answer_request(
                    pk,
                    &p.shares[i],
                    &p.holder_keys[i],
                    &registry,
                    s.min_contributors,
                    &request,
                    &mut entropy,
                )?;
                if liar(h) {
                    // A lying holder: a wrong partial decryption, honestly signed by itself.
                    resp.share.partials[0] = (&resp.share.partials[0] * 2u32) % pk.n_squared();
                    resp.signature = p.holder_keys[i]
                        .sign(&ShareResponse::transcript_for(resp.round, &resp.share));
                }
                Ok((h, Some(resp), t.elapsed().as_secs_f64()))
            })
            .collect::<Result<_>>()?;
        m.partial_decrypt_s += answers.iter().map(|a| a.2).sum::<f64>();
        m.decrypt_wall_s += t.elapsed().as_secs_f64();
        m.shares_computed += answers.iter().filter(|a| a.1.is_some()).count();
        let t = Instant::now();
        for (h, resp, _) in answers {
            match resp {
                None => {
                    decrypting.mark_silent(h);
                    m.silent_holders.push(h.get());
                }
                Some(r) => {
                    if decrypting.receive(&r).is_err() {
                        m.blamed_holders.push(h.get());
                    }
                }
            }
        }
        combine_s += t.elapsed().as_secs_f64();
        if decrypting.is_ready() {
            break;
        }
    }
    let t = Instant::now();
    let outcome = decrypting.finish()?;
    m.combine_s = combine_s + t.elapsed().as_secs_f64();
    Ok(outcome.mean_update)
}
