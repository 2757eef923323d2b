//! Scenario files (TOML under `experiments/configs/`): everything a simulated run needs.

use std::path::Path;

use serde::{Deserialize, Serialize};
use spddl_client_trainer::model::{SgdConfig, TrainConfig};
use spddl_crypto::encoding::PackingParams;
use spddl_crypto::paillier::{MAX_HOLDERS, MAX_MODULUS_BITS, MIN_MODULUS_BITS};

use crate::validation::{Checker, Problems, quoted};

/// Which dataset a scenario trains on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DatasetName {
    /// The embedded UCI 8×8 digits (1,797 samples), split into train and test by `test_fraction`.
    Digits,
    /// MNIST from `data_dir/mnist` (`scripts/fetch-datasets.sh`).
    Mnist,
    /// Fashion-MNIST from `data_dir/fashion-mnist`.
    FashionMnist,
}

/// The model family; input and class counts come from the dataset.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ModelKind {
    /// Multinomial logistic regression.
    Softmax,
    /// ReLU MLP with `hidden` layers.
    Mlp,
}

/// How the training set is split across clients.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PartitionKind {
    /// Uniformly at random.
    Iid,
    /// Label skew drawn from Dir(`dirichlet_alpha`).
    Dirichlet,
    /// `shards_per_client` label-sorted shards per client.
    Shards,
}

/// Who holds the `ℓ` key shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum HolderKind {
    /// The first `ℓ` clients (the paper's model).
    Clients,
    /// The fog workers (requires `holders ≤ fogs`).
    Fogs,
    /// `ℓ` dedicated key-holder processes.
    Dedicated,
}

/// The server-side strategy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StrategyKind {
    /// Federated averaging weighted by sample count.
    Fedavg,
    /// Adam on the server with `server_lr`.
    Fedadam,
}

/// A simulated federated training run. Every field has a default (the digits scenario), so a
/// scenario file only lists what it changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Scenario {
    /// Name used for the results directory.
    pub name: String,
    /// Dataset.
    pub dataset: DatasetName,
    /// Directory holding `mnist/` and `fashion-mnist/`.
    pub data_dir: String,
    /// Held-out fraction of the digits set used as test set.
    pub test_fraction: f64,
    /// Model family.
    pub model: ModelKind,
    /// Hidden layer sizes of the MLP.
    pub hidden: Vec<usize>,
    /// Partitioning of the training set.
    pub partition: PartitionKind,
    /// α of the Dirichlet partition.
    pub dirichlet_alpha: f64,
    /// Shards per client of the shard partition.
    pub shards_per_client: usize,
    /// Number of clients.
    pub clients: usize,
    /// Number of fog workers.
    pub fogs: usize,
    /// Paillier modulus size.
    pub key_bits: u64,
    /// Threshold `t`.
    pub threshold: u16,
    /// Key holders `ℓ`.
    pub holders: u16,
    /// Who holds the shares.
    pub holder_kind: HolderKind,
    /// Training rounds.
    pub rounds: u64,
    /// Local epochs `E`.
    pub local_epochs: u32,
    /// Mini-batch size.
    pub batch_size: u32,
    /// Client learning rate.
    pub learning_rate: f64,
    /// Client SGD momentum.
    pub momentum: f64,
    /// Client weight decay.
    pub weight_decay: f64,
    /// FedProx μ (0 disables).
    pub proximal_mu: f64,
    /// Server strategy.
    pub strategy: StrategyKind,
    /// Server learning rate (FedAdam).
    pub server_lr: f64,
    /// L2 clip of each update Δ (also the quantization range `r`).
    pub clip_norm: f64,
    /// Quantization bits `q`.
    pub quant_bits: u32,
    /// The aggregator never decrypts a sum of fewer updates.
    pub min_contributors: u32,
    /// Probability that a client vanishes before uploading, each round.
    pub client_dropout: f64,
    /// Key holders that never answer (those right after the lying ones).
    pub silent_holders: u16,
    /// Key holders that answer with a wrong share (the lowest-indexed ones).
    pub wrong_share_holders: u16,
    /// Seed of everything random in the run.
    pub seed: u64,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            name: "digits".into(),
            dataset: DatasetName::Digits,
            data_dir: "data".into(),
            test_fraction: 0.2,
            model: ModelKind::Softmax,
            hidden: Vec::new(),
            partition: PartitionKind::Iid,
            dirichlet_alpha: 0.5,
            shards_per_client: 2,
            clients: 10,
            fogs: 2,
            key_bits: 2048,
            threshold: 3,
            holders: 5,
            holder_kind: HolderKind::Clients,
            rounds: 20,
            local_epochs: 2,
            batch_size: 16,
            learning_rate: 0.1,
            momentum: 0.9,
            weight_decay: 0.0,
            proximal_mu: 0.0,
            strategy: StrategyKind::Fedavg,
            server_lr: 0.01,
            clip_norm: 3.0,
            quant_bits: 16,
            min_contributors: 3,
            client_dropout: 0.0,
            silent_holders: 0,
            wrong_share_holders: 0,
            seed: 42,
        }
    }
}

impl Scenario {
    /// Parses a TOML scenario; missing fields take the defaults.
    pub fn from_toml(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Applies one `key=value` override (the value in TOML syntax; bare words are strings).
    pub fn set(&mut self, assignment: &str) -> Result<(), SetError> {
        let (key, value) = assignment
            .split_once('=')
            .ok_or_else(|| SetError::NotAnAssignment(assignment.to_string()))?;
        let (key, value) = (key.trim(), value.trim());
        let bad = |message: String| SetError::BadValue {
            assignment: assignment.to_string(),
            message,
        };
        let mut table = toml::Table::try_from(&*self).map_err(|e| bad(e.to_string()))?;
        if !table.contains_key(key) {
            return Err(SetError::UnknownField(key.to_string()));
        }
        let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        table.insert(key.to_string(), parsed);
        *self = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| bad(e.message().to_string()))?;
        Ok(())
    }

    /// Checks every field and the combinations a run needs, and the memory the model will
    /// need against what this machine has ([`available_memory`]). Reads no file: see
    /// [`Scenario::validate_before_run`].
    pub fn validate(&self) -> Result<(), Problems> {
        self.validate_within(available_memory().0)
    }

    /// [`Scenario::validate`], and the dataset's files exist: everything that can be known
    /// before a key is dealt or a dataset is loaded.
    pub fn validate_before_run(&self) -> Result<(), Problems> {
        let (memory, _) = available_memory();
        let mut c = Checker::default();
        self.check(&mut c, memory);
        self.check_dataset_files(&mut c);
        c.finish()
    }

    /// [`Scenario::validate`] with `memory_bytes` as the most a run may need.
    pub fn validate_within(&self, memory_bytes: u64) -> Result<(), Problems> {
        let mut c = Checker::default();
        self.check(&mut c, memory_bytes);
        c.finish()
    }

    /// The model's parameter count `Σ_l (fan_in_l + 1) · fan_out_l`, or `None` when it does not
    /// fit in a `u128` (absurd hidden widths).
    pub fn num_params(&self) -> Option<u128> {
        let shape = self.dataset.shape();
        let hidden: &[usize] = match self.model {
            ModelKind::Softmax => &[],
            ModelKind::Mlp => &self.hidden,
        };
        let sizes: Vec<u128> = std::iter::once(shape.inputs)
            .chain(hidden.iter().copied())
            .chain(std::iter::once(shape.classes))
            .map(|w| w as u128)
            .collect();
        sizes.windows(2).try_fold(0u128, |sum, io| {
            io[0]
                .checked_add(1)?
                .checked_mul(io[1])
                .and_then(|layer| sum.checked_add(layer))
        })
    }

    /// An estimate of the bytes a simulated run of this scenario holds at its peak (an upper
    /// bound of one deployment process's), or `None` when it does not fit in a `u128`:
    ///
    /// - `4·P·(K + 4·T + 5)`: every client's update Δ until the round is summed (`K`), per
    ///   training thread a model, gradient, velocity and Δ (`T` threads), and the global
    ///   model, the mean update, the evaluated copy and FedAdam's two moments;
    /// - activations: `Σ widths · (2·B·T + test samples)` floats;
    /// - the sealed uploads, twice (the fogs' copies): `2·K·⌈P/S⌉` ciphertexts of `|n²|` bits;
    /// - the dataset, twice (the set and its partition).
    pub fn memory_estimate(&self) -> Option<u128> {
        let shape = self.dataset.shape();
        let p = self.num_params()?;
        let k = self.clients as u128;
        let threads = std::thread::available_parallelism()
            .map_or(1, |n| n.get())
            .min(self.clients.max(1)) as u128;
        let widths = match self.model {
            ModelKind::Softmax => 0u128,
            ModelKind::Mlp => self
                .hidden
                .iter()
                .try_fold(0u128, |s, &w| s.checked_add(w as u128))?,
        }
        .checked_add(shape.classes as u128)?;
        let batch = (self.batch_size as u128).min(shape.train_max as u128);
        let floats = p
            .checked_mul(k.checked_add(threads.checked_mul(4)?)?.checked_add(5)?)?
            .checked_add(
                widths.checked_mul(
                    batch
                        .checked_mul(2 * threads)?
                        .checked_add(shape.test as u128)?,
                )?,
            )?
            .checked_add(
                2 * (shape.train_max as u128 + shape.test as u128) * shape.inputs as u128,
            )?;
        let ciphertexts = match PackingParams::new(
            self.quant_bits,
            self.clients.max(1) as u64,
            u32::try_from(self.key_bits).unwrap_or(u32::MAX),
        ) {
            Ok(packing) => {
                let slots = packing.slots_per_plaintext() as u128;
                let per_upload = p.div_ceil(slots);
                let bytes = 2 * (self.key_bits as u128).div_ceil(8);
                2u128
                    .checked_mul(k)?
                    .checked_mul(per_upload)?
                    .checked_mul(bytes)?
            }
            Err(_) => 0,
        };
        floats.checked_mul(4)?.checked_add(ciphertexts)
    }

    fn check(&self, c: &mut Checker, memory_bytes: u64) {
        let shape = self.dataset.shape();
        c.require(
            !self.name.trim().is_empty() && self.name.len() <= 100,
            "name",
            quoted(&self.name),
            "must be 1 to 100 characters (it names the results directory)",
        );
        c.require(
            self.test_fraction.is_finite() && self.test_fraction > 0.0 && self.test_fraction < 1.0,
            "test_fraction",
            self.test_fraction,
            "must be in (0, 1): both the training and the test set need samples",
        );
        if self.model == ModelKind::Mlp && self.hidden.is_empty() {
            c.problem(
                "hidden",
                "[]",
                "model = \"mlp\" needs hidden layers, e.g. [128]",
            );
        }
        c.require(
            !self.hidden.contains(&0),
            "hidden",
            format!("{:?}", self.hidden),
            "every hidden layer needs at least 1 unit",
        );
        c.require(
            self.dirichlet_alpha.is_finite() && self.dirichlet_alpha > 0.0,
            "dirichlet_alpha",
            self.dirichlet_alpha,
            "must be positive and finite",
        );
        let shards_ok = c.require(
            self.shards_per_client >= 1,
            "shards_per_client",
            self.shards_per_client,
            "must be at least 1",
        );
        let train_max = shape.train_max_for(self.test_fraction);
        let clients_ok = c.require(
            (1..=train_max).contains(&self.clients),
            "clients",
            self.clients,
            &format!(
                "must be between 1 and the {train_max} training samples of {}",
                self.dataset.as_str()
            ),
        );
        if clients_ok
            && shards_ok
            && self.partition == PartitionKind::Shards
            && self.clients.saturating_mul(self.shards_per_client) > train_max
        {
            c.problem(
                "shards_per_client",
                self.shards_per_client,
                format!(
                    "{} clients × {} shards exceed the {train_max} training samples",
                    self.clients, self.shards_per_client
                ),
            );
        }
        c.require(
            self.fogs >= 1 && (!clients_ok || self.fogs <= self.clients),
            "fogs",
            self.fogs,
            "must be between 1 and the number of clients (a fog worker without clients sums nothing)",
        );
        c.require(
            (MIN_MODULUS_BITS..=MAX_MODULUS_BITS).contains(&self.key_bits)
                && self.key_bits.is_multiple_of(2),
            "key_bits",
            self.key_bits,
            &format!("must be an even number in {MIN_MODULUS_BITS}..={MAX_MODULUS_BITS}"),
        );
        self.check_holders(c);
        c.require(
            self.rounds >= 1,
            "rounds",
            self.rounds,
            "must be at least 1",
        );
        c.require(
            self.local_epochs >= 1,
            "local_epochs",
            self.local_epochs,
            "must be at least 1",
        );
        c.require(
            self.batch_size >= 1,
            "batch_size",
            self.batch_size,
            "must be at least 1",
        );
        self.check_optimizer(c);
        c.require(
            positive_f32(self.server_lr),
            "server_lr",
            self.server_lr,
            "must be positive and finite",
        );
        c.require(
            self.clip_norm.is_normal()
                && self.clip_norm > 0.0
                && positive_f32(self.clip_norm)
                && (2.0 * self.clip_norm as f32).is_finite(),
            "clip_norm",
            self.clip_norm,
            "must be positive and finite (it is also the quantization range)",
        );
        if !(1..=MAX_QUANT_BITS).contains(&self.quant_bits) {
            c.problem(
                "quant_bits",
                self.quant_bits,
                format!("must be in 1..={MAX_QUANT_BITS}"),
            );
        } else if clients_ok
            && let Err(e) = PackingParams::new(
                self.quant_bits,
                self.clients as u64,
                u32::try_from(self.key_bits).unwrap_or(u32::MAX),
            )
        {
            c.problem(
                "quant_bits",
                self.quant_bits,
                format!("cannot pack for {} clients: {e}", self.clients),
            );
        }
        c.require(
            self.min_contributors >= 1
                && (!clients_ok || self.min_contributors as usize <= self.clients),
            "min_contributors",
            self.min_contributors,
            "must be between 1 and the number of clients (no round could complete)",
        );
        c.require(
            (0.0..1.0).contains(&self.client_dropout),
            "client_dropout",
            self.client_dropout,
            "must be in [0, 1)",
        );
        self.check_memory(c, memory_bytes);
    }

    fn check_holders(&self, c: &mut Checker) {
        let (t, l) = (self.threshold, self.holders);
        let holders_ok = c.require(
            (1..=MAX_HOLDERS).contains(&l),
            "holders",
            l,
            &format!("must be in 1..={MAX_HOLDERS}"),
        );
        let threshold_ok = c.require(
            t >= 1 && t <= l,
            "threshold",
            t,
            &format!("need 1 ≤ threshold ≤ holders = {l}"),
        );
        if !(holders_ok && threshold_ok) {
            return;
        }
        match self.holder_kind {
            HolderKind::Clients if usize::from(l) > self.clients => {
                c.problem(
                    "holders",
                    l,
                    format!(
                        "{l} holders among {} clients (holder_kind = \"clients\")",
                        self.clients
                    ),
                );
            }
            HolderKind::Fogs if usize::from(l) > self.fogs => {
                c.problem(
                    "holders",
                    l,
                    format!(
                        "{l} holders among {} fog workers (holder_kind = \"fogs\")",
                        self.fogs
                    ),
                );
            }
            _ => {}
        }
        // In u32: two u16 counts can add up past u16::MAX.
        let faulty = u32::from(self.silent_holders) + u32::from(self.wrong_share_holders);
        if faulty > u32::from(l - t) {
            c.problem(
                "silent_holders",
                self.silent_holders,
                format!(
                    "{} silent_holders and {} wrong_share_holders exceed ℓ − t = {}: no round could complete",
                    self.silent_holders,
                    self.wrong_share_holders,
                    l - t
                ),
            );
        }
    }

    fn check_optimizer(&self, c: &mut Checker) {
        let lr = c.require(
            positive_f32(self.learning_rate),
            "learning_rate",
            self.learning_rate,
            "must be positive and finite",
        );
        let m = c.require(
            (0.0..1.0).contains(&self.momentum),
            "momentum",
            self.momentum,
            "must be in [0, 1)",
        );
        let wd = c.require(
            non_negative_f32(self.weight_decay),
            "weight_decay",
            self.weight_decay,
            "must be non-negative and finite",
        );
        let mu = c.require(
            non_negative_f32(self.proximal_mu),
            "proximal_mu",
            self.proximal_mu,
            "must be non-negative and finite (0 disables FedProx)",
        );
        if lr && m && wd && mu {
            // The trainer's own rule (heavy-ball momentum diverges on a quadratic of
            // curvature c when η·c ≥ 2(1 + m)), checked here so it is said before the run.
            let train = TrainConfig {
                epochs: self.local_epochs.max(1) as usize,
                batch_size: self.batch_size.max(1) as usize,
                sgd: SgdConfig {
                    lr: self.learning_rate as f32,
                    momentum: self.momentum as f32,
                    weight_decay: self.weight_decay as f32,
                },
                proximal_mu: (self.proximal_mu > 0.0).then_some(self.proximal_mu as f32),
            };
            if train.validate().is_err() {
                c.problem(
                    "learning_rate",
                    self.learning_rate,
                    format!(
                        "learning_rate × (weight_decay + proximal_mu) = {} must be below \
                         2 × (1 + momentum) = {}: SGD would diverge",
                        self.learning_rate * (self.weight_decay + self.proximal_mu),
                        2.0 * (1.0 + self.momentum)
                    ),
                );
            }
        }
    }

    fn check_memory(&self, c: &mut Checker, memory_bytes: u64) {
        let field = match self.model {
            ModelKind::Mlp => ("hidden", format!("{:?}", self.hidden)),
            ModelKind::Softmax => ("clients", self.clients.to_string()),
        };
        let Some(params) = self.num_params() else {
            c.problem(field.0, field.1, "the model's parameter count overflows");
            return;
        };
        match self.memory_estimate() {
            Some(bytes) if bytes <= u128::from(memory_bytes) => {}
            estimate => c.problem(
                field.0,
                field.1,
                format!(
                    "the model has {params} parameters and a run of {} clients needs about {} \
                     of memory, more than the {} this machine has available",
                    self.clients,
                    estimate.map_or("more than 2^128 bytes".into(), gib),
                    gib(u128::from(memory_bytes)),
                ),
            ),
        }
    }

    fn check_dataset_files(&self, c: &mut Checker) {
        let (sub, shown) = match self.dataset {
            DatasetName::Digits => return,
            DatasetName::Mnist => ("mnist", "MNIST"),
            DatasetName::FashionMnist => ("fashion-mnist", "Fashion-MNIST"),
        };
        let dir = Path::new(&self.data_dir).join(sub);
        let missing: Vec<&str> = IDX_FILES
            .iter()
            .copied()
            .filter(|f| !dir.join(f).is_file() && !dir.join(format!("{f}.gz")).is_file())
            .collect();
        if !missing.is_empty() {
            c.problem(
                "data_dir",
                quoted(&self.data_dir),
                format!(
                    "no {shown} in {}: {} missing (run scripts/fetch-datasets.sh, or set data_dir)",
                    dir.display(),
                    missing.join(", ")
                ),
            );
        }
    }
}

/// The four IDX files of MNIST and Fashion-MNIST (each may be gzipped).
const IDX_FILES: [&str; 4] = [
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
];

/// Widest quantized value the encoder takes.
const MAX_QUANT_BITS: u32 = 32;

/// A value that stays positive and finite as the `f32` the trainer uses.
fn positive_f32(x: f64) -> bool {
    let y = x as f32;
    x > 0.0 && y > 0.0 && y.is_finite()
}

/// A value that stays non-negative and finite as the `f32` the trainer uses.
fn non_negative_f32(x: f64) -> bool {
    x >= 0.0 && (x as f32).is_finite()
}

/// Bytes in GiB, one decimal.
fn gib(bytes: u128) -> String {
    format!("{:.1} GiB", bytes as f64 / f64::from(1u32 << 30))
}

/// The bytes a run may use on this machine and where the figure comes from: `MemAvailable` of
/// `/proc/meminfo` where there is one, else a stated bound of 64 GiB.
pub fn available_memory() -> (u64, &'static str) {
    const FALLBACK: u64 = 64 << 30;
    let from_proc = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| {
            text.lines()
                .find_map(|l| l.strip_prefix("MemAvailable:"))
                .and_then(|rest| rest.trim().strip_suffix("kB"))
                .and_then(|kb| kb.trim().parse::<u64>().ok())
                .map(|kb| kb.saturating_mul(1024))
        });
    match from_proc {
        Some(bytes) => (bytes, "MemAvailable"),
        None => (FALLBACK, "the 64 GiB bound"),
    }
}

/// What a scenario override (`--set key=value`) got wrong.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SetError {
    /// Not of the form `key=value`.
    #[error("override '{0}' is not key=value")]
    NotAnAssignment(String),
    /// No scenario field of that name.
    #[error("unknown scenario field '{0}'")]
    UnknownField(String),
    /// The value does not fit the field's type.
    #[error("override '{assignment}': {message}")]
    BadValue {
        /// The override as given.
        assignment: String,
        /// The parser's reason.
        message: String,
    },
}

/// The sizes of a dataset known without loading it.
#[derive(Debug, Clone, Copy)]
pub struct DatasetShape {
    /// Features per sample.
    pub inputs: usize,
    /// Classes.
    pub classes: usize,
    /// Training samples at most (before a test split, for the digits).
    pub train_max: usize,
    /// Test samples (at most).
    pub test: usize,
}

impl DatasetShape {
    /// Training samples at most under `test_fraction` (the digits are split by class, each
    /// class rounding its share: up to one sample per class more than the plain fraction).
    fn train_max_for(&self, test_fraction: f64) -> usize {
        if self.test > 0 || !(0.0..=1.0).contains(&test_fraction) {
            return self.train_max;
        }
        let test_min = (self.train_max as f64 * test_fraction - self.classes as f64 / 2.0)
            .floor()
            .max(0.0) as usize;
        self.train_max.saturating_sub(test_min)
    }
}

impl DatasetName {
    /// The name as written in a scenario file.
    pub fn as_str(self) -> &'static str {
        match self {
            DatasetName::Digits => "digits",
            DatasetName::Mnist => "mnist",
            DatasetName::FashionMnist => "fashion-mnist",
        }
    }

    /// Features, classes and sample counts (the digits' test set is split off by
    /// `test_fraction`; `test` is 0 for them).
    pub fn shape(self) -> DatasetShape {
        match self {
            DatasetName::Digits => DatasetShape {
                inputs: 64,
                classes: 10,
                train_max: 1797,
                test: 0,
            },
            DatasetName::Mnist | DatasetName::FashionMnist => DatasetShape {
                inputs: 784,
                classes: 10,
                train_max: 60_000,
                test: 10_000,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_fill_missing_fields_and_unknown_fields_are_refused() {
        let s = Scenario::from_toml("rounds = 3\nmodel = \"mlp\"\nhidden = [32]").unwrap();
        assert_eq!((s.rounds, s.model, s.clients), (3, ModelKind::Mlp, 10));
        assert!(Scenario::from_toml("roundz = 3").is_err());
    }

    #[test]
    fn overrides_parse_typed_values() {
        let mut s = Scenario::default();
        s.set("rounds=7").unwrap();
        s.set("dataset=mnist").unwrap();
        s.set("hidden=[128]").unwrap();
        s.set("client_dropout = 0.3").unwrap();
        assert_eq!(s.rounds, 7);
        assert_eq!(s.dataset, DatasetName::Mnist);
        assert_eq!(s.hidden, [128]);
        assert_eq!(s.client_dropout, 0.3);
        assert!(
            s.set("nonsense=1")
                .unwrap_err()
                .to_string()
                .contains("unknown")
        );
        assert!(s.set("rounds=many").is_err());
        assert!(s.set("rounds").is_err());
    }

    #[test]
    fn validation_names_what_to_change() {
        let mut s = Scenario {
            silent_holders: 2,
            wrong_share_holders: 1,
            ..Scenario::default()
        };
        assert!(s.validate().unwrap_err().to_string().contains("ℓ − t = 2"));
        s.silent_holders = 1;
        assert!(s.validate().is_ok());
        s.threshold = 6;
        assert!(s.validate().is_err());
    }

    #[test]
    fn faulty_holder_counts_beyond_u16_are_refused_without_overflow() {
        let s = Scenario {
            holders: 1_000,
            threshold: 1,
            holder_kind: HolderKind::Dedicated,
            silent_holders: 40_000,
            wrong_share_holders: 40_000,
            ..Scenario::default()
        };
        assert!(
            s.validate()
                .unwrap_err()
                .to_string()
                .contains("ℓ − t = 999")
        );
    }
}
