//! Scenario files (TOML under `experiments/configs/`): everything a simulated run needs.

use serde::{Deserialize, Serialize};

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
    pub fn set(&mut self, assignment: &str) -> Result<(), String> {
        let (key, value) = assignment
            .split_once('=')
            .ok_or_else(|| format!("override '{assignment}' is not key=value"))?;
        let (key, value) = (key.trim(), value.trim());
        let mut table = toml::Table::try_from(&*self).map_err(|e| e.to_string())?;
        if !table.contains_key(key) {
            return Err(format!("unknown scenario field '{key}'"));
        }
        let parsed: toml::Value = toml::from_str::<toml::Table>(&format!("v = {value}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value.to_string()));
        table.insert(key.to_string(), parsed);
        *self = toml::Value::Table(table)
            .try_into()
            .map_err(|e: toml::de::Error| format!("override '{assignment}': {}", e.message()))?;
        Ok(())
    }

    /// Checks the combinations a run needs; the message says what to change.
    pub fn validate(&self) -> Result<(), String> {
        let err = |s: String| Err(s);
        if self.clients == 0 || self.fogs == 0 {
            return err("clients and fogs must be at least 1".into());
        }
        if self.threshold == 0 || self.threshold > self.holders {
            return err(format!(
                "threshold {} of {} holders: need 1 ≤ t ≤ ℓ",
                self.threshold, self.holders
            ));
        }
        match self.holder_kind {
            HolderKind::Clients if usize::from(self.holders) > self.clients => {
                return err(format!(
                    "{} holders among {} clients",
                    self.holders, self.clients
                ));
            }
            HolderKind::Fogs if usize::from(self.holders) > self.fogs => {
                return err(format!(
                    "{} holders among {} fog workers",
                    self.holders, self.fogs
                ));
            }
            _ => {}
        }
        // In u32: two u16 counts can add up past u16::MAX.
        let faulty = u32::from(self.silent_holders) + u32::from(self.wrong_share_holders);
        if faulty > u32::from(self.holders - self.threshold) {
            return err(format!(
                "{} silent and {} lying holders exceed ℓ − t = {}: no round could complete",
                self.silent_holders,
                self.wrong_share_holders,
                self.holders - self.threshold
            ));
        }
        if !(0.0..1.0).contains(&self.client_dropout) {
            return err(format!(
                "client_dropout {} is outside [0, 1)",
                self.client_dropout
            ));
        }
        if self.model == ModelKind::Mlp && self.hidden.is_empty() {
            return err("model = \"mlp\" needs hidden = [..]".into());
        }
        Ok(())
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
        assert!(s.set("nonsense=1").unwrap_err().contains("unknown"));
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
        assert!(s.validate().unwrap_err().contains("ℓ − t = 2"));
        s.silent_holders = 1;
        assert!(s.validate().is_ok());
        s.threshold = 6;
        assert!(s.validate().is_err());
    }

    #[test]
    fn faulty_holder_counts_beyond_u16_are_refused_without_overflow() {
        let s = Scenario {
            holders: 60_000,
            threshold: 1,
            holder_kind: HolderKind::Dedicated,
            silent_holders: 40_000,
            wrong_share_holders: 40_000,
            ..Scenario::default()
        };
        assert!(s.validate().unwrap_err().contains("ℓ − t = 59999"));
    }
}
