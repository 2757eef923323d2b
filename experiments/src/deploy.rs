//! Multi-process deployments: `spddl deploy init` writes one, and the role processes
//! (`spddl aggregator | fog | client | keyholder --config FILE`) run from its files.
//!
//! A deployment directory:
//!
//! ```text
//! scenario.toml              the training run (dataset, model, rounds …), shared by all
//! registry.json              public ed25519 identities the aggregator and fogs trust
//! keys/public.json           threshold Paillier public key
//! keys/share-<i>.json        key share i (0600) — belongs on holder i's machine only
//! identities/<name>.key      ed25519 signing key (0600) — belongs on <name>'s machine only
//! tls/ca.pem, tls/ca.key     the local CA (its key 0600; not needed at run time)
//! tls/<name>.pem, <name>.key each process's certificate and key (0600), signed by the CA
//! aggregator.toml, fog-<f>.toml, client-<k>.toml, holder-<i>.toml   one config per process
//! state/aggregator.redb      the aggregator's durable state (written empty here)
//! state/holder-<i>.redb      the sum holder i decrypted in each round (written empty here)
//! ```
//!
//! Paths inside a config are relative to the config file's directory.
//!
//! A process refuses to start on a missing, empty or damaged state file, with one line: a
//! holder that started anew would forget which sum of a round it decrypted, an aggregator its
//! rounds. `deploy init` writes the state files of a new deployment (valid, holding nothing
//! yet); `--fresh` (`fresh` here) starts a process anew on purpose, moving an existing file
//! aside.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};
use spddl_aggregator::Settings;
use spddl_aggregator::grpc::{AggregatorSetup, Evaluator, RunReport};
use spddl_client_trainer::client::Client;
use spddl_client_trainer::decryption_log::DecryptionLog;
use spddl_client_trainer::grpc::{ClientSetup, HolderSetup, UploadRecord};
use spddl_client_trainer::model::Model;
use spddl_crypto::Entropy;
use spddl_crypto::formats::{read_secret_file, write_secret_file};
use spddl_crypto::identity::{SigningKey, VerifyingKey};
use spddl_crypto::paillier::{Dealer, KeyShare, PublicKey};
use spddl_fog_worker::grpc::FogSetup;
use spddl_proto::transport::{Security, TlsFiles, TlsPaths};
use spddl_proto::{ClientId, FogId, Registry, Sender};

use crate::driver::{federation, round_config, strategy};
use crate::scenario::Scenario;
use crate::validation::Problems;

mod validate;

/// `registry.json`: every participant's public identity (hex).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistryFile {
    /// The aggregator.
    pub aggregator: String,
    /// Fog workers by id.
    pub fogs: std::collections::BTreeMap<u32, String>,
    /// Clients by id.
    pub clients: std::collections::BTreeMap<u32, String>,
    /// Key holders by share index.
    pub holders: std::collections::BTreeMap<u16, String>,
    /// SHA-256 (hex) of each participant's TLS certificate, by participant (`aggregator`,
    /// `fog-<f>`, `client-<k>`, `holder-<i>`): a connection speaks only for the participant
    /// its certificate is bound to here.
    #[serde(default)]
    pub certificates: std::collections::BTreeMap<String, String>,
}

/// A participant's name in a deployment (`aggregator`, `fog-0`, `client-3`, `holder-2`) as
/// the sender it is.
fn sender_named(name: &str, pk: &PublicKey) -> Result<Sender> {
    let bad = || {
        anyhow::anyhow!(
            "registry: certificates: `{name}` names no participant (aggregator, fog-<f>, client-<k>, holder-<i>)"
        )
    };
    if name == "aggregator" {
        return Ok(Sender::Aggregator);
    }
    let (kind, id) = name.rsplit_once('-').ok_or_else(bad)?;
    let id: u32 = id.parse().map_err(|_| bad())?;
    Ok(match kind {
        "fog" => Sender::Fog(FogId(id)),
        "client" => Sender::Client(ClientId(id)),
        "holder" => Sender::Holder(
            pk.share_index(u64::from(id))
                .with_context(|| format!("registry: certificates: {name}"))?,
        ),
        _ => return Err(bad()),
    })
}

fn verifying_key(hex_key: &str, who: &str) -> Result<VerifyingKey> {
    let bytes: [u8; 32] = hex::decode(hex_key)
        .ok()
        .and_then(|b| b.try_into().ok())
        .with_context(|| format!("registry: {who}: not a 32-byte hex key"))?;
    VerifyingKey::from_bytes(&bytes).map_err(|e| anyhow::anyhow!("registry: {who}: {e}"))
}

impl RegistryFile {
    /// The registry the cores use.
    pub fn to_registry(&self, pk: &PublicKey) -> Result<Registry> {
        let mut r = Registry {
            aggregator: Some(verifying_key(&self.aggregator, "aggregator")?),
            ..Registry::default()
        };
        for (f, k) in &self.fogs {
            r.fogs
                .insert(FogId(*f), verifying_key(k, &format!("fog {f}"))?);
        }
        for (c, k) in &self.clients {
            r.clients
                .insert(ClientId(*c), verifying_key(k, &format!("client {c}"))?);
        }
        for (h, k) in &self.holders {
            let index = pk
                .share_index(u64::from(*h))
                .with_context(|| format!("registry: holder {h}"))?;
            r.holders
                .insert(index, verifying_key(k, &format!("holder {h}"))?);
        }
        for (name, fp) in &self.certificates {
            let sender = sender_named(name, pk)?;
            if r.key_of(sender).is_none() {
                bail!("registry: certificates: {name} has a certificate but no identity");
            }
            let fp: [u8; 32] = hex::decode(fp)
                .ok()
                .and_then(|b| b.try_into().ok())
                .with_context(|| {
                    format!("registry: certificates: {name}: not a 32-byte hex SHA-256")
                })?;
            if let Some(other) = r.certificates.insert(fp, sender) {
                bail!("registry: certificates: {name} and {other} have the same certificate");
            }
        }
        Ok(r)
    }
}

/// `aggregator.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AggregatorFile {
    /// `host:port` to listen on.
    pub listen: String,
    /// The training scenario.
    pub scenario: PathBuf,
    /// Threshold public key.
    pub public_key: PathBuf,
    /// The aggregator's signing key.
    pub identity: PathBuf,
    /// Public identities.
    pub registry: PathBuf,
    /// The database file.
    pub state: PathBuf,
    /// Seconds collection waits for uploads before closing with what it has.
    pub collect_timeout_s: f64,
    /// Seconds an asked key holder may take.
    pub share_timeout_s: f64,
    /// Seconds to keep serving after the last round.
    pub linger_s: f64,
    /// Attempts at one round before the run stops with an error (a round is attempted again
    /// when fewer than `t` valid decryption shares come in).
    #[serde(default = "three_attempts")]
    pub round_attempts: u32,
    /// TLS files.
    pub tls: Option<TlsPaths>,
    /// The fog workers.
    pub fogs: Vec<FogEntry>,
}

fn three_attempts() -> u32 {
    3
}

/// A fog worker in the aggregator's config.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FogEntry {
    /// Its id.
    pub id: u32,
    /// Its `host:port` as clients and the aggregator reach it.
    pub address: String,
}

/// `fog-<f>.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FogFile {
    /// Its id.
    pub id: u32,
    /// `host:port` to listen on.
    pub listen: String,
    /// The aggregator's `host:port`.
    pub aggregator: String,
    /// Threshold public key.
    pub public_key: PathBuf,
    /// Its signing key.
    pub identity: PathBuf,
    /// Public identities.
    pub registry: PathBuf,
    /// TLS files.
    pub tls: Option<TlsPaths>,
}

/// `client-<k>.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientFile {
    /// Its id (also its partition of the scenario's data).
    pub id: u32,
    /// The aggregator's `host:port`.
    pub aggregator: String,
    /// The training scenario.
    pub scenario: PathBuf,
    /// Threshold public key.
    pub public_key: PathBuf,
    /// Its signing key.
    pub identity: PathBuf,
    /// Public identities (for the aggregator's key).
    pub registry: PathBuf,
    /// Seconds an upload may take before the next fog is tried.
    pub upload_timeout_s: f64,
    /// TLS files.
    pub tls: Option<TlsPaths>,
}

/// `holder-<i>.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HolderFile {
    /// Its share index.
    pub index: u16,
    /// The aggregator's `host:port`.
    pub aggregator: String,
    /// Threshold public key.
    pub public_key: PathBuf,
    /// Its key share.
    pub share: PathBuf,
    /// Its signing key.
    pub identity: PathBuf,
    /// Public identities (for the aggregator's key).
    pub registry: PathBuf,
    /// Never decrypt a sum of fewer updates.
    pub min_contributors: u32,
    /// The record of the sums it decrypted, one per round (default
    /// `state/holder-<index>.redb`).
    #[serde(default)]
    pub state: Option<PathBuf>,
    /// TLS files.
    pub tls: Option<TlsPaths>,
}

fn read_toml<T: for<'de> Deserialize<'de>>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    toml::from_str(&text).map_err(|e| toml_error(path, &text, &e, "not a valid config"))
}

/// A TOML error on one line: the file, the line of the error and the parser's message (not
/// its drawing of the line).
fn toml_error(path: &Path, text: &str, e: &toml::de::Error, what: &str) -> anyhow::Error {
    let message = e.message().split_whitespace().collect::<Vec<_>>().join(" ");
    match e.span() {
        Some(span) => {
            let line = 1 + text.as_bytes()[..span.start.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count();
            anyhow::anyhow!("{}: {what}: line {line}: {message}", path.display())
        }
        None => anyhow::anyhow!("{}: {what}: {message}", path.display()),
    }
}

/// One line per problem, each naming `file`.
fn checked(file: &Path, checked: Result<(), Problems>) -> Result<()> {
    checked.map_err(|p| anyhow::anyhow!("{}", p.lines(&file.display().to_string())))
}

fn base(config: &Path) -> PathBuf {
    config
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn public_key(path: &Path) -> Result<PublicKey> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    PublicKey::from_json(&text).with_context(|| path.display().to_string())
}

fn registry(path: &Path, pk: &PublicKey) -> Result<Registry> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let file: RegistryFile = serde_json::from_str(&text)
        .with_context(|| format!("{}: not a registry", path.display()))?;
    file.to_registry(pk)
        .with_context(|| path.display().to_string())
}

/// Reads an ed25519 signing key file (64 hex digits), warning if others can read it.
pub fn read_identity(path: &Path) -> Result<SigningKey> {
    let (text, warning) =
        read_secret_file(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    let mut bytes = zeroize::Zeroizing::new([0u8; 32]);
    hex::decode_to_slice(text.trim(), &mut *bytes)
        .map_err(|_| anyhow::anyhow!("{}: not a 32-byte hex signing key", path.display()))?;
    Ok(SigningKey::from_bytes(&bytes))
}

fn read_share(pk: &PublicKey, path: &Path) -> Result<KeyShare> {
    let (json, warning) =
        read_secret_file(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if let Some(w) = warning {
        tracing::warn!("{w}");
    }
    KeyShare::from_json(pk, &json).with_context(|| path.display().to_string())
}

fn read_scenario(path: &Path) -> Result<Scenario> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    let s =
        Scenario::from_toml(&text).map_err(|e| toml_error(path, &text, &e, "not a scenario"))?;
    checked(path, s.validate_before_run())?;
    Ok(s)
}

fn security(base: &Path, tls: Option<&TlsPaths>, insecure: bool) -> Result<Security> {
    if insecure {
        tracing::warn!(
            "--insecure: plaintext gRPC, no TLS; for debugging on a trusted network only"
        );
        return Ok(Security::Insecure);
    }
    let Some(t) = tls else {
        bail!("no [tls] section in the config: give one, or run with --insecure");
    };
    let files = TlsFiles::read(&base.join(&t.ca), &base.join(&t.cert), &base.join(&t.key))
        .map_err(anyhow::Error::msg)?;
    Ok(Security::MutualTls(files))
}

/// A serving process under mutual TLS needs the registry's certificate bindings: without them
/// it could not tell which participant a connection speaks for, and refuses every call.
fn require_certificates(config: &Path, registry: &Registry, security: &Security) -> Result<()> {
    if matches!(security, Security::MutualTls(_)) && registry.certificates.is_empty() {
        bail!(
            "{}: the registry binds no TLS certificate to a participant (`certificates` in registry.json), so every call would be refused; write the deployment anew with `spddl deploy init`",
            config.display()
        );
    }
    Ok(())
}

fn socket(addr: &str) -> Result<SocketAddr> {
    addr.parse()
        .with_context(|| format!("`{addr}`: not an ip:port to listen on"))
}

/// The aggregator's setup from its config file.
/// `fresh`: start a new run on purpose (see the module docs).
pub fn aggregator_setup(config: &Path, insecure: bool, fresh: bool) -> Result<AggregatorSetup> {
    let f: AggregatorFile = read_toml(config)?;
    checked(config, f.validate())?;
    let dir = base(config);
    let s = read_scenario(&dir.join(&f.scenario))?;
    let pk = public_key(&dir.join(&f.public_key))?;
    let (t, l) = (pk.threshold(), pk.holders());
    if 2 * u32::from(t) <= u32::from(l) {
        tracing::warn!(
            "a {t}-of-{l} key: two disjoint groups of {t} key holders exist, so each holder's one-sum-per-round record cannot stop them decrypting two different sums of a round between them (choose ℓ < 2t)"
        );
    }
    let registry = registry(&dir.join(&f.registry), &pk)?;
    let key = read_identity(&dir.join(&f.identity))?;
    if registry.aggregator != Some(key.verifying_key()) {
        bail!(
            "{}: the identity is not the aggregator's in the registry",
            config.display()
        );
    }
    let fed = federation(&s)?;
    let global = fed.spec.init(s.seed)?.params();
    let max_weight = fed
        .client_data
        .iter()
        .map(|d| d.len() as u64)
        .max()
        .unwrap_or(1);
    let max_contributors = u32::try_from(fed.client_data.len()).unwrap_or(u32::MAX);
    let template = round_config(&s, 0, &global, max_contributors, max_weight);
    let test = Arc::new(fed.test);
    let spec = fed.spec.clone();
    let evaluate: Evaluator = Box::new(move |params: &[f32]| {
        let model = Model::from_params(spec.clone(), params.to_vec()).ok()?;
        let m = model.evaluate(test.features().view(), test.labels()).ok()?;
        Some(f64::from(m.accuracy))
    });
    let security = security(&dir, f.tls.as_ref(), insecure)?;
    require_certificates(config, &registry, &security)?;
    Ok(AggregatorSetup {
        pk,
        key,
        registry,
        settings: Settings {
            rounds: s.rounds,
            template,
            collect_timeout_ms: (f.collect_timeout_s * 1e3) as u64,
            share_timeout_ms: (f.share_timeout_s * 1e3) as u64,
            round_attempts: f.round_attempts,
        },
        strategy: strategy(&s),
        initial_model: global,
        fogs: f
            .fogs
            .iter()
            .map(|e| (FogId(e.id), e.address.clone()))
            .collect(),
        listen: socket(&f.listen)?,
        security,
        state: dir.join(&f.state),
        fresh,
        evaluate: Some(evaluate),
        linger: Duration::from_secs_f64(f.linger_s),
    })
}

/// A base port on 127.0.0.1 with `count` consecutive ports free from it (for deployments in
/// tests and benchmarks; another process may still take one before it is bound).
pub fn free_loopback_ports(count: u16) -> Result<u16> {
    for _ in 0..200 {
        let base = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        if base < u16::MAX - count
            && (0..count).all(|i| std::net::TcpListener::bind(("127.0.0.1", base + i)).is_ok())
        {
            return Ok(base);
        }
    }
    bail!("no {count} consecutive free ports on 127.0.0.1")
}

/// A fog worker's setup from its config file.
pub fn fog_setup(config: &Path, insecure: bool) -> Result<FogSetup> {
    let f: FogFile = read_toml(config)?;
    checked(config, f.validate())?;
    let dir = base(config);
    let pk = public_key(&dir.join(&f.public_key))?;
    let registry = registry(&dir.join(&f.registry), &pk)?;
    let key = read_identity(&dir.join(&f.identity))?;
    if registry.fogs.get(&FogId(f.id)) != Some(&key.verifying_key()) {
        bail!(
            "{}: the identity is not fog {}'s in the registry",
            config.display(),
            f.id
        );
    }
    let security = security(&dir, f.tls.as_ref(), insecure)?;
    require_certificates(config, &registry, &security)?;
    Ok(FogSetup {
        pk,
        fog: FogId(f.id),
        key,
        registry,
        aggregator: f.aggregator,
        listen: socket(&f.listen)?,
        security,
    })
}

/// A client's setup from its config file: loads the scenario's data and takes this
/// client's partition.
pub fn client_setup(config: &Path, insecure: bool) -> Result<ClientSetup> {
    let f: ClientFile = read_toml(config)?;
    checked(config, f.validate())?;
    let dir = base(config);
    let s = read_scenario(&dir.join(&f.scenario))?;
    let pk = public_key(&dir.join(&f.public_key))?;
    let registry = registry(&dir.join(&f.registry), &pk)?;
    let key = read_identity(&dir.join(&f.identity))?;
    let mut fed = federation(&s)?;
    let k = f.id as usize;
    if k >= fed.client_data.len() {
        bail!(
            "{}: client {} but the scenario has {} clients",
            config.display(),
            f.id,
            fed.client_data.len()
        );
    }
    let data = fed.client_data.swap_remove(k);
    Ok(ClientSetup {
        pk,
        client: Arc::new(Client::new(ClientId(f.id), key, data)),
        spec: fed.spec,
        aggregator: f.aggregator,
        aggregator_key: registry
            .aggregator
            .context("registry has no aggregator key")?,
        security: security(&dir, f.tls.as_ref(), insecure)?,
        seed: s.seed,
        upload_timeout: Duration::from_secs_f64(f.upload_timeout_s),
    })
}

/// A key holder's setup from its config file; opens its record of decrypted sums (`fresh`:
/// a new one on purpose, see the module docs).
pub fn holder_setup(config: &Path, insecure: bool, fresh: bool) -> Result<HolderSetup> {
    let f: HolderFile = read_toml(config)?;
    checked(config, f.validate())?;
    let dir = base(config);
    let pk = public_key(&dir.join(&f.public_key))?;
    let registry = registry(&dir.join(&f.registry), &pk)?;
    let share = read_share(&pk, &dir.join(&f.share))?;
    if share.index().get() != f.index {
        bail!(
            "{}: share file holds share {}, config says {}",
            config.display(),
            share.index(),
            f.index
        );
    }
    let identity = read_identity(&dir.join(&f.identity))?;
    if registry.holders.get(&share.index()) != Some(&identity.verifying_key()) {
        bail!(
            "{}: the identity is not holder {}'s in the registry",
            config.display(),
            f.index
        );
    }
    Ok(HolderSetup {
        pk,
        share,
        identity,
        aggregator: f.aggregator,
        registry: {
            registry
                .aggregator
                .as_ref()
                .context("registry has no aggregator key")?;
            registry
        },
        min_contributors: f.min_contributors,
        log: DecryptionLog::open(
            &dir.join(
                f.state
                    .unwrap_or_else(|| format!("state/holder-{}.redb", f.index).into()),
            ),
            fresh,
        )
        .map_err(anyhow::Error::msg)?,
        security: security(&dir, f.tls.as_ref(), insecure)?,
    })
}

/// What `deploy init` should write.
#[derive(Debug)]
pub struct InitOptions {
    /// The training run.
    pub scenario: Scenario,
    /// Output directory (must not exist or be empty).
    pub out: PathBuf,
    /// Host every process listens on and is reached at.
    pub host: String,
    /// The aggregator's port; fog `f` listens on `port + 1 + f`.
    pub base_port: u16,
    /// Key to use instead of dealing one (tests).
    pub key: Option<(PublicKey, Vec<KeyShare>)>,
    /// Seconds collection waits.
    pub collect_timeout_s: f64,
    /// Seconds a holder may take.
    pub share_timeout_s: f64,
}

/// Names and counts of what `deploy init` wrote.
#[derive(Debug, Clone)]
pub struct InitReport {
    /// Seconds spent dealing the threshold key.
    pub keygen_s: f64,
    /// The aggregator's address.
    pub aggregator: String,
    /// The fog workers' addresses.
    pub fogs: Vec<String>,
}

struct Tls {
    ca: rcgen::CertifiedIssuer<'static, rcgen::KeyPair>,
}

impl Tls {
    fn new() -> Result<Self> {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new())?;
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "SPDDL local deployment CA");
        params.key_usages = vec![
            rcgen::KeyUsagePurpose::KeyCertSign,
            rcgen::KeyUsagePurpose::CrlSign,
            rcgen::KeyUsagePurpose::DigitalSignature,
        ];
        let key = rcgen::KeyPair::generate()?;
        Ok(Tls {
            ca: rcgen::CertifiedIssuer::self_signed(params, key)?,
        })
    }

    /// A certificate for `name`, valid as server and client for `host` (and localhost).
    fn leaf(&self, name: &str, host: &str) -> Result<(String, String, String)> {
        let mut sans = vec![host.to_string()];
        if host != "localhost" {
            sans.push("localhost".into());
        }
        let mut params = rcgen::CertificateParams::new(sans)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, name);
        params.extended_key_usages = vec![
            rcgen::ExtendedKeyUsagePurpose::ServerAuth,
            rcgen::ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = rcgen::KeyPair::generate()?;
        let cert = params.signed_by(&key, &self.ca)?;
        let fingerprint = hex::encode(Registry::certificate_fingerprint(cert.der()));
        Ok((cert.pem(), key.serialize_pem(), fingerprint))
    }
}

fn write_toml<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let text = toml::to_string(value).context("serializing a config")?;
    std::fs::write(path, text).with_context(|| format!("{}: cannot write", path.display()))
}

fn tls_paths(name: &str) -> Option<TlsPaths> {
    Some(TlsPaths {
        ca: "tls/ca.pem".into(),
        cert: format!("tls/{name}.pem").into(),
        key: format!("tls/{name}.key").into(),
    })
}

/// Writes a complete local deployment (see the module docs).
pub fn init(mut opts: InitOptions) -> Result<InitReport> {
    let s = &opts.scenario;
    // Every problem of the scenario and the options, before a prime is searched.
    let problems: Vec<String> = [
        s.validate().map_err(|p| p.lines("invalid scenario")),
        opts.validate().map_err(|p| p.lines("deploy init")),
    ]
    .into_iter()
    .filter_map(Result::err)
    .collect();
    if !problems.is_empty() {
        bail!("{}", problems.join("\n"));
    }
    let out = &opts.out;
    if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        bail!(
            "{}: exists and is not empty; refusing to overwrite",
            out.display()
        );
    }
    for d in ["keys", "identities", "tls", "state"] {
        std::fs::create_dir_all(out.join(d))
            .with_context(|| format!("{}: cannot create", out.join(d).display()))?;
    }
    #[cfg(unix)]
    for d in ["keys", "identities", "tls", "state"] {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(out.join(d), std::fs::Permissions::from_mode(0o700))?;
    }
    let mut entropy = Entropy::os();
    let start = std::time::Instant::now();
    let (pk, shares) = match opts.key.take() {
        Some(k) => k,
        None => {
            Dealer::check_threshold(s.threshold, s.holders)?;
            let dealer = Dealer::generate(s.key_bits, &mut entropy)?;
            dealer.deal(s.threshold, s.holders, &mut entropy)?
        }
    };
    let keygen_s = start.elapsed().as_secs_f64();
    std::fs::write(out.join("keys/public.json"), pk.to_json())?;
    for share in &shares {
        write_secret_file(
            &out.join(format!("keys/share-{}.json", share.index())),
            share.to_json().as_bytes(),
        )?;
    }
    crate::results::write_scenario_toml(&out.join("scenario.toml"), s)?;

    let tls = Tls::new()?;
    std::fs::write(out.join("tls/ca.pem"), tls.ca.pem())?;
    write_secret_file(
        &out.join("tls/ca.key"),
        tls.ca.key().serialize_pem().as_bytes(),
    )?;
    let mut registry = RegistryFile::default();
    let mut certificates = std::collections::BTreeMap::new();
    let mut identity = |name: &str| -> Result<String> {
        let key = SigningKey::generate(&mut entropy);
        let hex_key = zeroize::Zeroizing::new(hex::encode(*key.to_bytes()));
        write_secret_file(
            &out.join(format!("identities/{name}.key")),
            hex_key.as_bytes(),
        )?;
        let (cert, tls_key, fingerprint) = tls.leaf(name, &opts.host)?;
        certificates.insert(name.to_string(), fingerprint);
        std::fs::write(out.join(format!("tls/{name}.pem")), cert)?;
        write_secret_file(&out.join(format!("tls/{name}.key")), tls_key.as_bytes())?;
        Ok(hex::encode(key.verifying_key().to_bytes()))
    };
    registry.aggregator = identity("aggregator")?;
    for f in 0..s.fogs as u32 {
        registry.fogs.insert(f, identity(&format!("fog-{f}"))?);
    }
    for c in 0..s.clients as u32 {
        registry
            .clients
            .insert(c, identity(&format!("client-{c}"))?);
    }
    for share in &shares {
        let i = share.index().get();
        registry
            .holders
            .insert(i, identity(&format!("holder-{i}"))?);
    }
    registry.certificates = certificates;
    std::fs::write(
        out.join("registry.json"),
        serde_json::to_string_pretty(&registry)?,
    )?;

    // The state files of a new run: valid and holding nothing yet, so that a process started
    // on a missing or empty one can refuse it.
    spddl_aggregator::store::Store::open(&out.join("state/aggregator.redb"), true)
        .map_err(anyhow::Error::msg)?;
    for share in &shares {
        DecryptionLog::open(
            &out.join(format!("state/holder-{}.redb", share.index().get())),
            true,
        )
        .map_err(anyhow::Error::msg)?;
    }

    let aggregator = format!("{}:{}", opts.host, opts.base_port);
    let fogs: Vec<FogEntry> = (0..s.fogs as u32)
        .map(|f| FogEntry {
            id: f,
            address: format!("{}:{}", opts.host, opts.base_port + 1 + f as u16),
        })
        .collect();
    write_toml(
        &out.join("aggregator.toml"),
        &AggregatorFile {
            listen: aggregator.clone(),
            scenario: "scenario.toml".into(),
            public_key: "keys/public.json".into(),
            identity: "identities/aggregator.key".into(),
            registry: "registry.json".into(),
            state: "state/aggregator.redb".into(),
            collect_timeout_s: opts.collect_timeout_s,
            share_timeout_s: opts.share_timeout_s,
            linger_s: 3.0,
            round_attempts: three_attempts(),
            tls: tls_paths("aggregator"),
            fogs: fogs.clone(),
        },
    )?;
    for f in &fogs {
        write_toml(
            &out.join(format!("fog-{}.toml", f.id)),
            &FogFile {
                id: f.id,
                listen: f.address.clone(),
                aggregator: aggregator.clone(),
                public_key: "keys/public.json".into(),
                identity: format!("identities/fog-{}.key", f.id).into(),
                registry: "registry.json".into(),
                tls: tls_paths(&format!("fog-{}", f.id)),
            },
        )?;
    }
    for c in 0..s.clients as u32 {
        write_toml(
            &out.join(format!("client-{c}.toml")),
            &ClientFile {
                id: c,
                aggregator: aggregator.clone(),
                scenario: "scenario.toml".into(),
                public_key: "keys/public.json".into(),
                identity: format!("identities/client-{c}.key").into(),
                registry: "registry.json".into(),
                upload_timeout_s: 60.0,
                tls: tls_paths(&format!("client-{c}")),
            },
        )?;
    }
    for share in &shares {
        let i = share.index().get();
        write_toml(
            &out.join(format!("holder-{i}.toml")),
            &HolderFile {
                index: i,
                aggregator: aggregator.clone(),
                public_key: "keys/public.json".into(),
                share: format!("keys/share-{i}.json").into(),
                identity: format!("identities/holder-{i}.key").into(),
                registry: "registry.json".into(),
                min_contributors: s.min_contributors,
                state: Some(format!("state/holder-{i}.redb").into()),
                tls: tls_paths(&format!("holder-{i}")),
            },
        )?;
    }
    Ok(InitReport {
        keygen_s,
        aggregator,
        fogs: fogs.into_iter().map(|f| f.address).collect(),
    })
}

/// Runs the aggregator of a config until its rounds are done (`fresh`: a new run on
/// purpose, see the module docs).
pub async fn run_aggregator(
    config: &Path,
    insecure: bool,
    fresh: bool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<RunReport> {
    let setup = aggregator_setup(config, insecure, fresh)?;
    spddl_aggregator::grpc::serve(setup, shutdown)
        .await
        .map_err(anyhow::Error::msg)
}

/// Runs a fog worker of a config.
pub async fn run_fog(
    config: &Path,
    insecure: bool,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let setup = fog_setup(config, insecure)?;
    spddl_fog_worker::grpc::serve(setup, shutdown)
        .await
        .map_err(anyhow::Error::msg)
}

/// Runs a client of a config.
pub async fn run_client(
    config: &Path,
    insecure: bool,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<Vec<UploadRecord>> {
    let setup = client_setup(config, insecure)?;
    spddl_client_trainer::grpc::run_client(setup, shutdown)
        .await
        .map_err(anyhow::Error::msg)
}

/// Runs a key holder of a config (`fresh`: a new record of decrypted sums on purpose, see
/// the module docs).
pub async fn run_holder(
    config: &Path,
    insecure: bool,
    fresh: bool,
    shutdown: impl std::future::Future<Output = ()> + Send,
) -> Result<usize> {
    let setup = holder_setup(config, insecure, fresh)?;
    spddl_client_trainer::grpc::run_holder(setup, shutdown)
        .await
        .map_err(anyhow::Error::msg)
}
