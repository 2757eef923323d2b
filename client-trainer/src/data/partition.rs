//! Splitting a dataset's samples among federated clients: IID, Dirichlet label skew, and
//! label shards. Every partitioner is seeded and deterministic: the same arguments give the
//! same [`Partition`] on every platform (the generator is xoshiro256++).

use rand::rngs::Xoshiro256PlusPlus;
use rand::seq::SliceRandom;
use rand::{RngExt, SeedableRng};
use rand_distr::{Distribution, Gamma};

use super::DataError;

/// Sample indices per client: a partition of `0..num_samples` into non-empty parts.
///
/// Invariants, checked by [`Partition::new`]: at least one client, every client has at least
/// one index, every index in `0..num_samples` belongs to exactly one client, and each client's
/// indices are in increasing order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Partition {
    clients: Vec<Vec<usize>>,
    num_samples: usize,
}

impl Partition {
    /// Checks that `clients` partitions `0..num_samples` into non-empty parts, and sorts each
    /// client's indices.
    pub fn new(mut clients: Vec<Vec<usize>>, num_samples: usize) -> Result<Self, DataError> {
        let invalid = |reason: String| Err(DataError::InvalidPartition(reason));
        if clients.is_empty() {
            return invalid("no clients".into());
        }
        let mut seen = vec![false; num_samples];
        for (c, indices) in clients.iter_mut().enumerate() {
            if indices.is_empty() {
                return invalid(format!("client {c} has no samples"));
            }
            indices.sort_unstable();
            for &i in indices.iter() {
                match seen.get_mut(i) {
                    None => return invalid(format!("client {c}: index {i} ≥ {num_samples}")),
                    Some(true) => return invalid(format!("index {i} is assigned twice")),
                    Some(s) => *s = true,
                }
            }
        }
        if let Some(i) = seen.iter().position(|&s| !s) {
            return invalid(format!("index {i} is assigned to no client"));
        }
        Ok(Self {
            clients,
            num_samples,
        })
    }

    /// The number of clients.
    pub fn num_clients(&self) -> usize {
        self.clients.len()
    }

    /// The number of samples partitioned.
    pub fn num_samples(&self) -> usize {
        self.num_samples
    }

    /// Each client's sample indices, in increasing order.
    pub fn clients(&self) -> &[Vec<usize>] {
        &self.clients
    }

    /// Client `c`'s sample indices, in increasing order; `None` if there is no client `c`.
    pub fn client(&self, c: usize) -> Option<&[usize]> {
        self.clients.get(c).map(Vec::as_slice)
    }

    /// The number of samples of each client.
    pub fn sizes(&self) -> Vec<usize> {
        self.clients.iter().map(Vec::len).collect()
    }

    /// The indices per client.
    pub fn into_clients(self) -> Vec<Vec<usize>> {
        self.clients
    }
}

/// IID: shuffles `0..n_samples` and deals it into `n_clients` parts whose sizes differ by at
/// most one (the first `n_samples mod n_clients` clients get one more).
pub fn iid(n_samples: usize, n_clients: usize, seed: u64) -> Result<Partition, DataError> {
    check_counts(n_samples, n_clients)?;
    let mut order: Vec<usize> = (0..n_samples).collect();
    order.shuffle(&mut rng(seed));
    let clients = (0..n_clients)
        .map(|c| {
            order[chunk_start(n_samples, n_clients, c)..chunk_start(n_samples, n_clients, c + 1)]
                .to_vec()
        })
        .collect();
    Partition::new(clients, n_samples)
}

/// Dirichlet label skew (Hsu, Qi & Brown 2019, "Measuring the effects of non-identical data
/// distribution for federated visual classification"): for each class, draws proportions
/// `p ~ Dir(α, …, α)` over the clients and splits that class's samples (in random order)
/// into contiguous runs of sizes `round(cumulative p · count)`. Small `α` (0.1) gives each
/// client few classes; large `α` (100) approaches IID.
///
/// No client ends up empty: afterwards, each empty client in turn takes one random sample
/// from the currently largest client (which holds at least two, since
/// `n_samples ≥ n_clients`). This moves at most `n_clients − 1` samples.
pub fn dirichlet(
    labels: &[u8],
    n_clients: usize,
    alpha: f64,
    seed: u64,
) -> Result<Partition, DataError> {
    check_counts(labels.len(), n_clients)?;
    // Dir(α) is the normalised vector of independent Gamma(α, 1) draws.
    let gamma = Gamma::new(alpha, 1.0)
        .ok()
        .filter(|_| alpha.is_finite())
        .ok_or_else(|| {
            DataError::InvalidPartition(format!("α = {alpha} is not positive and finite"))
        })?;
    let mut rng = rng(seed);
    let mut clients = vec![Vec::new(); n_clients];
    for mut members in by_class(labels) {
        members.shuffle(&mut rng);
        let mut weights: Vec<f64> = (0..n_clients).map(|_| gamma.sample(&mut rng)).collect();
        let mut total: f64 = weights.iter().sum();
        if !(total > 0.0 && total.is_finite()) {
            // Every draw underflowed (tiny α): the whole class goes to one client.
            weights = vec![0.0; n_clients];
            weights[rng.random_range(0..n_clients)] = 1.0;
            total = 1.0;
        }
        let (mut start, mut cumulative) = (0, 0.0);
        for (client, w) in clients.iter_mut().zip(&weights) {
            cumulative += w / total;
            let end =
                ((cumulative * members.len() as f64).round() as usize).clamp(start, members.len());
            client.extend_from_slice(&members[start..end]);
            start = end;
        }
        // Rounding may leave the last few samples of the class: they go to the last client.
        if let Some(last) = clients.last_mut() {
            last.extend_from_slice(&members[start..]);
        }
    }
    while let Some(empty) = clients.iter().position(Vec::is_empty) {
        // n_clients ≥ 1 (check_counts), so the maximum exists.
        let largest = (0..n_clients)
            .max_by_key(|&c| clients[c].len())
            .unwrap_or(0);
        let taken = rng.random_range(0..clients[largest].len());
        let index = clients[largest].swap_remove(taken);
        clients[empty].push(index);
    }
    Partition::new(clients, labels.len())
}

/// Label shards (McMahan et al. 2017, "Communication-efficient learning of deep networks from
/// decentralized data", the pathological non-IID split): sorts the samples by label (random
/// order within a class), cuts them into `n_clients · classes_per_client` contiguous shards of
/// near-equal size, and gives each client `classes_per_client` shards at random.
///
/// A client sees at most `classes_per_client` labels when shard boundaries align with class
/// boundaries, i.e. when the number of shards divides `n_samples` and every class's count is a
/// multiple of the shard size; otherwise a shard may straddle two classes.
pub fn shards(
    labels: &[u8],
    n_clients: usize,
    classes_per_client: usize,
    seed: u64,
) -> Result<Partition, DataError> {
    let n = labels.len();
    if classes_per_client == 0 {
        return Err(DataError::InvalidPartition("zero shards per client".into()));
    }
    // Saturating: more shards than samples is refused by `check_counts` anyway.
    let n_shards = n_clients.saturating_mul(classes_per_client);
    check_counts(n, n_shards)?;
    let mut rng = rng(seed);
    let mut order: Vec<usize> = (0..n).collect();
    order.shuffle(&mut rng);
    order.sort_by_key(|&i| labels[i]); // stable: keeps the random order within a class
    let mut shard_ids: Vec<usize> = (0..n_shards).collect();
    shard_ids.shuffle(&mut rng);
    let clients = shard_ids
        .chunks(classes_per_client)
        .map(|ids| {
            ids.iter()
                .flat_map(|&s| &order[chunk_start(n, n_shards, s)..chunk_start(n, n_shards, s + 1)])
                .copied()
                .collect()
        })
        .collect();
    Partition::new(clients, n)
}

fn rng(seed: u64) -> Xoshiro256PlusPlus {
    Xoshiro256PlusPlus::seed_from_u64(seed)
}

/// Refuses parameters that would leave a client (or shard) without samples.
fn check_counts(n_samples: usize, parts: usize) -> Result<(), DataError> {
    if parts == 0 {
        return Err(DataError::InvalidPartition("no clients".into()));
    }
    if n_samples < parts {
        return Err(DataError::InvalidPartition(format!(
            "{n_samples} samples cannot give each of {parts} parts one"
        )));
    }
    Ok(())
}

/// Where part `k` of `0..n` cut into `parts` near-equal contiguous parts starts (the first
/// `n mod parts` parts have one more element).
fn chunk_start(n: usize, parts: usize, k: usize) -> usize {
    k * (n / parts) + k.min(n % parts)
}

/// Sample indices of each label, in increasing order.
fn by_class(labels: &[u8]) -> Vec<Vec<usize>> {
    let mut classes = vec![Vec::new(); 256];
    for (i, &l) in labels.iter().enumerate() {
        classes[usize::from(l)].push(i);
    }
    classes.retain(|c| !c.is_empty());
    classes
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use rand_chacha::ChaCha20Rng;
    use std::collections::BTreeSet;

    fn config() -> ProptestConfig {
        ProptestConfig {
            cases: 48,
            failure_persistence: None,
            rng_seed: proptest::test_runner::RngSeed::Fixed(7),
            ..ProptestConfig::default()
        }
    }

    /// Checks the invariants independently of `Partition::new`.
    fn assert_partition(p: &Partition, n: usize, n_clients: usize) {
        assert_eq!((p.num_samples(), p.num_clients()), (n, n_clients));
        let mut all: Vec<usize> = p.clients().iter().flatten().copied().collect();
        all.sort_unstable();
        assert_eq!(all, (0..n).collect::<Vec<_>>(), "not a partition of 0..{n}");
        assert!(
            p.sizes().iter().all(|&s| s > 0),
            "empty client: {:?}",
            p.sizes()
        );
    }

    fn distinct_labels(labels: &[u8], client: &[usize]) -> usize {
        client
            .iter()
            .map(|&i| labels[i])
            .collect::<BTreeSet<_>>()
            .len()
    }

    fn mean_distinct_labels(labels: &[u8], p: &Partition) -> f64 {
        let total: usize = p.clients().iter().map(|c| distinct_labels(labels, c)).sum();
        total as f64 / p.num_clients() as f64
    }

    fn digit_labels() -> Vec<u8> {
        super::super::digits().unwrap().labels().to_vec()
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn iid_is_a_balanced_partition(n_clients in 1usize..30, extra in 0usize..300, seed: u64) {
            let n = n_clients + extra;
            let p = iid(n, n_clients, seed).unwrap();
            assert_partition(&p, n, n_clients);
            let sizes = p.sizes();
            prop_assert!(sizes.iter().max().unwrap() - sizes.iter().min().unwrap() <= 1);
            prop_assert_eq!(iid(n, n_clients, seed).unwrap(), p);
        }

        #[test]
        fn dirichlet_is_a_partition_with_no_empty_client(
            labels in proptest::collection::vec(0u8..10, 1..300),
            clients_frac in 0.0f64..1.0,
            alpha in prop::sample::select(vec![0.01, 0.1, 1.0, 100.0]),
            seed: u64,
        ) {
            let n_clients = 1 + (clients_frac * (labels.len() - 1) as f64) as usize;
            let p = dirichlet(&labels, n_clients, alpha, seed).unwrap();
            assert_partition(&p, labels.len(), n_clients);
            prop_assert_eq!(dirichlet(&labels, n_clients, alpha, seed).unwrap(), p);
        }

        /// Aligned shards: every shard holds `shard_size` samples of one class.
        #[test]
        fn aligned_shards_give_at_most_k_labels(
            n_clients in 1usize..12,
            k in 1usize..4,
            shard_size in 1usize..6,
            class_seed: u64,
            seed: u64,
        ) {
            let n_shards = n_clients * k;
            let mut class_rng = ChaCha20Rng::seed_from_u64(class_seed);
            let mut labels: Vec<u8> = (0..n_shards)
                .flat_map(|_| vec![class_rng.random_range(0..10u8); shard_size])
                .collect();
            labels.shuffle(&mut class_rng);
            let p = shards(&labels, n_clients, k, seed).unwrap();
            assert_partition(&p, labels.len(), n_clients);
            prop_assert!(p.sizes().iter().all(|&s| s == k * shard_size));
            for c in p.clients() {
                prop_assert!(distinct_labels(&labels, c) <= k);
            }
            prop_assert_eq!(shards(&labels, n_clients, k, seed).unwrap(), p);
        }

        #[test]
        fn unaligned_shards_still_partition(
            labels in proptest::collection::vec(0u8..10, 1..300),
            n_clients in 1usize..10,
            k in 1usize..4,
            seed: u64,
        ) {
            prop_assume!(labels.len() >= n_clients * k);
            let p = shards(&labels, n_clients, k, seed).unwrap();
            assert_partition(&p, labels.len(), n_clients);
        }
    }

    #[test]
    fn different_seeds_give_different_partitions() {
        let labels = digit_labels();
        let n = labels.len();
        assert_ne!(iid(n, 10, 1).unwrap(), iid(n, 10, 2).unwrap());
        assert_ne!(
            dirichlet(&labels, 10, 0.5, 1).unwrap(),
            dirichlet(&labels, 10, 0.5, 2).unwrap()
        );
        assert_ne!(
            shards(&labels, 10, 2, 1).unwrap(),
            shards(&labels, 10, 2, 2).unwrap()
        );
    }

    /// Mean over clients of KL(client's label distribution ‖ the whole set's), in nats.
    fn mean_kl_to_global(labels: &[u8], p: &Partition) -> f64 {
        let dist = |idx: &mut dyn Iterator<Item = u8>| {
            let mut counts = [0.0f64; 10];
            let mut n = 0.0;
            for l in idx {
                counts[usize::from(l)] += 1.0;
                n += 1.0;
            }
            counts.map(|c| c / n)
        };
        let global = dist(&mut labels.iter().copied());
        let kl: f64 = p
            .clients()
            .iter()
            .map(|c| {
                let local = dist(&mut c.iter().map(|&i| labels[i]));
                local
                    .iter()
                    .zip(&global)
                    .filter(|&(&q, _)| q > 0.0)
                    .map(|(q, g)| q * (q / g).ln())
                    .sum::<f64>()
            })
            .sum();
        kl / p.num_clients() as f64
    }

    #[test]
    fn small_alpha_is_more_skewed_than_large_alpha() {
        let labels = digit_labels();
        for seed in 0..5 {
            let skewed = dirichlet(&labels, 10, 0.1, seed).unwrap();
            let near_iid = dirichlet(&labels, 10, 100.0, seed).unwrap();
            let (ds, dn) = (
                mean_distinct_labels(&labels, &skewed),
                mean_distinct_labels(&labels, &near_iid),
            );
            let (ks, kn) = (
                mean_kl_to_global(&labels, &skewed),
                mean_kl_to_global(&labels, &near_iid),
            );
            assert!(
                ds + 2.0 < dn,
                "distinct labels per client: α=0.1 {ds}, α=100 {dn}"
            );
            assert!(ks > 10.0 * kn, "KL to global: α=0.1 {ks}, α=100 {kn}");
        }
    }

    #[test]
    fn shards_on_digits_concentrate_labels() {
        // 1,797 samples in 20 shards are not aligned with classes, so a client may see a
        // third label where a shard straddles two classes, but no more than 2 per shard.
        let labels = digit_labels();
        let p = shards(&labels, 10, 2, 3).unwrap();
        assert_partition(&p, labels.len(), 10);
        assert!(p.clients().iter().all(|c| distinct_labels(&labels, c) <= 4));
        assert!(mean_distinct_labels(&labels, &p) < 4.0);
    }

    #[test]
    fn bad_parameters_are_refused() {
        let labels = [0u8, 1, 2];
        let msg = |r: Result<Partition, DataError>| r.unwrap_err().to_string();
        assert_eq!(msg(iid(3, 0, 0)), "invalid partition: no clients");
        assert!(msg(iid(3, 4, 0)).contains("3 samples cannot give each of 4 parts one"));
        assert!(msg(dirichlet(&labels, 4, 1.0, 0)).contains("3 samples"));
        for alpha in [0.0, -1.0, f64::NAN, f64::INFINITY] {
            assert!(
                msg(dirichlet(&labels, 2, alpha, 0)).contains("α ="),
                "{alpha}"
            );
        }
        assert!(msg(shards(&labels, 2, 0, 0)).contains("zero shards"));
        assert!(msg(shards(&labels, 2, 2, 0)).contains("3 samples cannot give each of 4"));
        assert!(shards(&labels, usize::MAX, 2, 0).is_err());
    }

    #[test]
    fn new_checks_the_invariants() {
        let msg = |c: Vec<Vec<usize>>, n| Partition::new(c, n).unwrap_err().to_string();
        assert!(msg(vec![], 0).contains("no clients"));
        assert!(msg(vec![vec![0], vec![]], 1).contains("client 1 has no samples"));
        assert!(msg(vec![vec![0, 3]], 3).contains("index 3 ≥ 3"));
        assert!(msg(vec![vec![0, 1], vec![1, 2]], 3).contains("index 1 is assigned twice"));
        assert!(msg(vec![vec![0], vec![2]], 3).contains("index 1 is assigned to no client"));
        let p = Partition::new(vec![vec![2, 0], vec![1]], 3).unwrap();
        assert_eq!(p.client(0), Some(&[0, 2][..]));
        assert_eq!(p.client(2), None);
        assert_eq!(p.into_clients(), vec![vec![0, 2], vec![1]]);
    }
}
