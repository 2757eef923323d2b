//! A fog worker under load: `n` clients, each with its own identity and TLS certificate, upload
//! to one fog worker at the same moment over loopback, and every upload is acknowledged only
//! once the aggregator has stored the aggregate holding it (the fog's normal contract).
//! Measures uploads per second from the first send to the last acknowledgement.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use rayon::prelude::*;
use spddl_crypto::Entropy;
use spddl_crypto::paillier::{Ciphertext, KeyShare, Plaintext, PublicKey};
use spddl_proto::transport::{Security, TlsFiles};
use spddl_proto::wire::{self, MAX_MESSAGE_BYTES, pb};
use spddl_proto::{ClientId, Upload};
use tokio::sync::watch;

use crate::deploy::{self, ClientFile, FogFile, InitOptions};
use crate::scenario::Scenario;

/// What [`fog_load`] measured.
#[derive(Debug, Clone)]
pub struct LoadReport {
    /// Clients that uploaded at once.
    pub clients: usize,
    /// Ciphertexts in each upload.
    pub ciphertexts_per_upload: usize,
    /// Bytes of one upload request on the wire (protobuf).
    pub bytes_per_upload: usize,
    /// Seconds from the first send to the last acknowledgement.
    pub seconds: f64,
    /// Uploads acknowledged per second.
    pub uploads_per_s: f64,
    /// Uploads the aggregator counted in the round.
    pub counted: usize,
    /// Calls that failed for good, with the reason.
    pub errors: Vec<String>,
    /// Calls that had to be repeated (the fog was not in the round yet, or busy).
    pub retries: usize,
}

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("{}: cannot read", path.display()))?;
    toml::from_str(&text).with_context(|| format!("{}: not a valid config", path.display()))
}

/// Runs an aggregator and one fog worker in this process under `dir` (written by
/// `deploy init` with `clients` clients and the given key), then has every client upload to
/// the fog at once.
pub async fn fog_load(
    dir: &Path,
    clients: usize,
    key: (PublicKey, Vec<KeyShare>),
) -> Result<LoadReport> {
    let scenario = Scenario {
        clients,
        fogs: 1,
        holders: key.1.len() as u16,
        threshold: key.0.threshold(),
        rounds: 1,
        min_contributors: 1,
        ..Scenario::default()
    };
    let out = dir.join("deployment");
    deploy::init(InitOptions {
        scenario,
        out: out.clone(),
        host: "127.0.0.1".into(),
        // The aggregator, fog 0 and a spare.
        base_port: deploy::free_loopback_ports(3)?,
        key: Some(key),
        collect_timeout_s: 600.0,
        share_timeout_s: 30.0,
    })?;
    let (stop_tx, stop_rx) = watch::channel(false);
    let signal = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|s| *s).await;
        }
    };
    let agg_cfg = out.join("aggregator.toml");
    let aggregator = tokio::spawn({
        let s = signal();
        async move { deploy::run_aggregator(&agg_cfg, false, false, s).await }
    });
    let fog_cfg = out.join("fog-0.toml");
    let fog = tokio::spawn({
        let s = signal();
        async move { deploy::run_fog(&fog_cfg, false, s).await }
    });
    let result = drive(&out, clients).await;
    let _ = stop_tx.send(true);
    let _ = tokio::time::timeout(Duration::from_secs(10), fog).await;
    let _ = tokio::time::timeout(Duration::from_secs(10), aggregator).await;
    result
}

async fn drive(out: &Path, clients: usize) -> Result<LoadReport> {
    let fog: FogFile = read_toml(&out.join("fog-0.toml"))?;
    let client0: ClientFile = read_toml(&out.join("client-0.toml"))?;
    let pk = deploy::client_setup(&out.join("client-0.toml"), false)?.pk;
    let tls = |i: usize| {
        TlsFiles::read(
            &out.join("tls/ca.pem"),
            &out.join(format!("tls/client-{i}.pem")),
            &out.join(format!("tls/client-{i}.key")),
        )
        .map(Security::MutualTls)
        .map_err(anyhow::Error::msg)
    };
    // The round, once the aggregator listens.
    let mut rounds = pb::client_rounds_client::ClientRoundsClient::new(
        tls(0)?
            .channel(&client0.aggregator, Duration::from_secs(10))
            .map_err(anyhow::Error::msg)?,
    )
    .max_decoding_message_size(MAX_MESSAGE_BYTES);
    let started = Instant::now();
    let config = loop {
        if let Ok(r) = rounds.get_round(pb::GetRoundRequest { client: 0 }).await
            && let Some(c) = r.into_inner().config
        {
            break wire::config_from_wire(&c)?.0;
        }
        if started.elapsed() > Duration::from_secs(60) {
            bail!("the aggregator at {} did not answer", client0.aggregator);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let len = config
        .encoder(&pk)?
        .packing()
        .plaintexts_for(config.num_params as usize);

    // Every client's signed upload, made before the clock starts (encryption is the clients'
    // work, on their own machines).
    let zero = Plaintext::from_u64(&pk, 0)?;
    let requests: Vec<pb::SubmitUploadRequest> = (0..clients)
        .into_par_iter()
        .map(|i| -> Result<pb::SubmitUploadRequest> {
            let file: ClientFile = read_toml(&out.join(format!("client-{i}.toml")))?;
            let key = deploy::read_identity(&out.join(&file.identity))?;
            let mut entropy = Entropy::os();
            let cts: Vec<Ciphertext> = (0..len).map(|_| pk.encrypt(&zero, &mut entropy)).collect();
            let upload = Upload::sign(&pk, &key, &config, ClientId(i as u32), 1, cts);
            Ok(pb::SubmitUploadRequest {
                upload: Some(wire::upload_to_wire(&pk, &upload)),
            })
        })
        .collect::<Result<_>>()?;
    let bytes_per_upload = prost::Message::encoded_len(&requests[0]);
    let channels: Vec<tonic::transport::Channel> = (0..clients)
        .map(|i| {
            tls(i)?
                .channel(&fog.listen, Duration::from_secs(120))
                .map_err(anyhow::Error::msg)
        })
        .collect::<Result<_>>()?;

    let retries = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let start = Instant::now();
    let calls: Vec<_> = requests
        .into_iter()
        .zip(channels)
        .enumerate()
        .map(|(i, (request, channel))| {
            let retries = retries.clone();
            tokio::spawn(async move {
                let mut stub = pb::fog_worker_client::FogWorkerClient::new(channel)
                    .max_encoding_message_size(MAX_MESSAGE_BYTES);
                let deadline = Instant::now() + Duration::from_secs(300);
                loop {
                    match stub.submit_upload(request.clone()).await {
                        Ok(_) => return Ok(()),
                        // The fog has not followed the aggregator into the round yet, or a
                        // connection is still being set up: as a client would, try again.
                        Err(s)
                            if matches!(
                                s.code(),
                                tonic::Code::FailedPrecondition | tonic::Code::Unavailable
                            ) && Instant::now() < deadline =>
                        {
                            retries.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                        Err(s) => {
                            return Err(format!(
                                "client {i}: {}",
                                spddl_proto::transport::describe(&s)
                            ));
                        }
                    }
                }
            })
        })
        .collect();
    let mut errors = Vec::new();
    for c in calls {
        match c.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => errors.push(e),
            Err(e) => errors.push(format!("upload task: {e}")),
        }
    }
    let seconds = start.elapsed().as_secs_f64();
    // Whom the aggregator counted: every client it stored is no longer asked to upload.
    let mut counted = 0;
    for i in 0..clients {
        let mut stub = pb::client_rounds_client::ClientRoundsClient::new(
            tls(i)?
                .channel(&client0.aggregator, Duration::from_secs(10))
                .map_err(anyhow::Error::msg)?,
        )
        .max_decoding_message_size(MAX_MESSAGE_BYTES);
        let r = stub
            .get_round(pb::GetRoundRequest { client: i as u32 })
            .await
            .map_err(|s| anyhow::anyhow!(spddl_proto::transport::describe(&s)))?
            .into_inner();
        // Once every client is counted the round moves on to decryption: counted stays true.
        if r.counted {
            counted += 1;
        }
    }
    Ok(LoadReport {
        clients,
        ciphertexts_per_upload: len,
        bytes_per_upload,
        seconds,
        uploads_per_s: clients as f64 / seconds,
        counted,
        errors,
        retries: retries.load(std::sync::atomic::Ordering::Relaxed),
    })
}
