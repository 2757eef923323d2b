//! What one request can make a fog worker do: the real `spddl fog` binary as a child process
//! (so its memory and processor time are its own, read from `/proc`), the aggregator a task
//! of this test, every call over real sockets with mutual TLS.
//!
//! - `GetUploads` answers only the aggregator, and at most one page of ids per request: a
//!   request of 100,000 repeats of one id is refused before anything is built.
//! - An upload's cheap checks (round, config, sender, repeat, count, weight) run on the raw
//!   message before any ciphertext is parsed: two uploads of 130,000 well-formed ciphertexts
//!   (just under the 64 MiB limit) cost the fog no parsing, and it keeps answering health
//!   checks.

#![allow(clippy::unwrap_used)]

#[path = "../../experiments/tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::*;
use spddl_crypto::paillier::{Plaintext, PublicKey};
use spddl_experiments::deploy::{self, ClientFile, FogFile};
use spddl_proto::wire::{self, pb};
use spddl_proto::{ClientId, Upload};
use tonic::Code;

const SPDDL: &str = env!("CARGO_BIN_EXE_spddl");

fn read_toml<T: serde::de::DeserializeOwned>(path: &Path) -> T {
    toml::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// `spddl fog --config out/fog-<f>.toml` as a child process, its log in `out/logs/fog-<f>.log`.
struct FogProcess(Child);

impl FogProcess {
    fn start(out: &Path, f: u32) -> Self {
        std::fs::create_dir_all(out.join("logs")).unwrap();
        let log = std::fs::File::create(out.join(format!("logs/fog-{f}.log"))).unwrap();
        let child = Command::new(SPDDL)
            .arg("fog")
            .arg("--config")
            .arg(out.join(format!("fog-{f}.toml")))
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .unwrap();
        FogProcess(child)
    }

    /// A line of `/proc/<pid>/status` in KiB (`VmRSS`, `VmHWM`).
    fn kib(&self, field: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.0.id())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap()
    }

    /// Resets the peak (`VmHWM`) to the current resident set (`clear_refs` 5, Linux ≥ 4.0).
    fn reset_peak(&self) {
        std::fs::write(format!("/proc/{}/clear_refs", self.0.id()), "5").unwrap();
    }

    /// Processor time (user + system) the process has used.
    fn cpu(&self) -> Duration {
        let stat = std::fs::read_to_string(format!("/proc/{}/stat", self.0.id())).unwrap();
        // Fields after the command name, which is in parentheses and may hold spaces.
        let rest = &stat[stat.rfind(')').unwrap() + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let ticks: u64 = fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap();
        let per_second: u64 = String::from_utf8(
            Command::new("getconf")
                .arg("CLK_TCK")
                .output()
                .unwrap()
                .stdout,
        )
        .unwrap()
        .trim()
        .parse()
        .unwrap();
        Duration::from_millis(ticks * 1000 / per_second)
    }

    fn log(out: &Path, f: u32) -> String {
        std::fs::read_to_string(out.join(format!("logs/fog-{f}.log"))).unwrap_or_default()
    }
}

impl Drop for FogProcess {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

fn public_key(out: &Path) -> PublicKey {
    PublicKey::from_json(&std::fs::read_to_string(out.join("keys/public.json")).unwrap()).unwrap()
}

fn fog_stub(
    out: &Path,
    name: &str,
) -> pb::fog_worker_client::FogWorkerClient<tonic::transport::Channel> {
    let fog: FogFile = read_toml(&out.join("fog-0.toml"));
    pb::fog_worker_client::FogWorkerClient::new(channel_as(out, name, &fog.listen))
        .max_decoding_message_size(wire::MAX_MESSAGE_BYTES)
}

/// Waits until fog 0 follows the aggregator's round `round` and holds `client`'s upload, as
/// the aggregator sees it.
async fn wait_for_upload(out: &Path, round: u64, client: u32) {
    let mut stub = fog_stub(out, "aggregator");
    loop {
        if let Ok(r) = stub
            .get_uploads(pb::GetUploadsRequest {
                round,
                clients: vec![client],
            })
            .await
            && r.into_inner().uploads.len() == 1
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn get_uploads_answers_only_the_aggregator_and_at_most_one_page_of_ids() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);
    let stop = Stop::new();
    let _agg = aggregator(&out, &stop);
    let fog = FogProcess::start(&out, 0);
    // Client 0 alone: its upload is accepted by fog 0 (fog 1 is down, so it fails over) and
    // the round stays open, waiting for more clients.
    let cfg = out.join("client-0.toml");
    let s = stop.signal();
    let _client = tokio::spawn(async move { deploy::run_client(&cfg, false, s).await });
    within(120, wait_for_upload(&out, 0, 0)).await;

    // A client's certificate may not read the signed uploads.
    let s = fog_stub(&out, "client-1")
        .get_uploads(pb::GetUploadsRequest {
            round: 0,
            clients: vec![0],
        })
        .await
        .unwrap_err();
    assert_eq!(s.code(), Code::PermissionDenied, "{s:?}");
    assert!(s.message().contains("GetUploads"), "{s:?}");

    // One page of the same id, repeated: answered with the one upload.
    let pk = public_key(&out);
    let page = wire::uploads_per_page(&pk, 7);
    let r = fog_stub(&out, "aggregator")
        .get_uploads(pb::GetUploadsRequest {
            round: 0,
            clients: vec![0; page],
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(r.uploads.len(), 1, "{page} repeats of one id");

    // 100,000 repeats: refused before anything is built.
    fog.reset_peak();
    let rss_before = fog.kib("VmRSS");
    let started = Instant::now();
    let s = fog_stub(&out, "aggregator")
        .get_uploads(pb::GetUploadsRequest {
            round: 0,
            clients: vec![0; 100_000],
        })
        .await
        .unwrap_err();
    let took = started.elapsed();
    let peak = fog.kib("VmHWM");
    println!(
        "GetUploads of 100,000 repeated ids: {:?} in {} ms; fog RSS before {:.1} MiB, peak during {:.1} MiB; one page is {page} ids",
        s.code(),
        took.as_millis(),
        mib(rss_before),
        mib(peak)
    );
    assert_eq!(s.code(), Code::ResourceExhausted, "{s:?}");
    assert!(
        s.message().contains("100000") && s.message().contains(&page.to_string()),
        "{s:?}"
    );
    assert!(
        peak < rss_before + 16 * 1024,
        "the fog grew from {:.1} to {:.1} MiB answering one request",
        mib(rss_before),
        mib(peak)
    );
    stop.fire();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_near_limit_uploads_are_refused_unparsed_and_the_fog_keeps_answering() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);
    let stop = Stop::new();
    let _agg = aggregator(&out, &stop);
    let fog = FogProcess::start(&out, 0);
    let pk = public_key(&out);
    let r = within(60, async {
        let mut rounds = rounds_client(&out, &out);
        loop {
            match rounds.get_round(pb::GetRoundRequest { client: 0 }).await {
                Ok(r) => break r.into_inner(),
                Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
            }
        }
    })
    .await;
    let (config, _) = wire::config_from_wire(&r.config.unwrap()).unwrap();
    // One well-formed ciphertext (in range, a unit mod n²) 130,000 times: each one costs a
    // range and gcd check to parse, and the message stays under the 64 MiB limit.
    let ct = pk.encrypt(
        &Plaintext::from_u64(&pk, 1).unwrap(),
        &mut spddl_crypto::Entropy::os(),
    );
    const COUNT: usize = 130_000;
    let uploads: Vec<pb::Upload> = (0..2u32)
        .map(|c| {
            let file: ClientFile = read_toml(&out.join(format!("client-{c}.toml")));
            let key = deploy::read_identity(&out.join(&file.identity)).unwrap();
            let up = Upload::sign(&pk, &key, &config, ClientId(c), 1, vec![ct.clone(); COUNT]);
            wire::upload_to_wire(&pk, &up)
        })
        .collect();
    let bytes = prost::Message::encoded_len(&pb::SubmitUploadRequest {
        upload: Some(uploads[0].clone()),
    });
    assert!(
        bytes < wire::MAX_MESSAGE_BYTES && bytes > wire::MAX_MESSAGE_BYTES - (2 << 20),
        "{bytes} bytes"
    );

    // Health checks every 50 ms, from another participant's certificate, all the while.
    let fog_file: FogFile = read_toml(&out.join("fog-0.toml"));
    let health_channel = channel_as(&out, "client-2", &fog_file.listen);
    let (done_tx, done_rx) = tokio::sync::watch::channel(false);
    let health = tokio::spawn(async move {
        let mut client = tonic_health::pb::health_client::HealthClient::new(health_channel);
        let (mut ok, mut failed) = (0u32, Vec::new());
        while !*done_rx.borrow() {
            let check = client.check(tonic_health::pb::HealthCheckRequest {
                service: String::new(),
            });
            match tokio::time::timeout(Duration::from_secs(2), check).await {
                Ok(Ok(_)) => ok += 1,
                Ok(Err(e)) => failed.push(format!("{:?}: {}", e.code(), e.message())),
                Err(_) => failed.push("no answer within 2 s".into()),
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        (ok, failed)
    });
    // Wait until the fog follows round 0 (an upload before that is "no round open yet").
    within(60, async {
        loop {
            if !FogProcess::log(&out, 0).contains("collecting uploads") {
                tokio::time::sleep(Duration::from_millis(20)).await;
                continue;
            }
            return;
        }
    })
    .await;

    let cpu_before = fog.cpu();
    let sends = uploads.into_iter().enumerate().map(|(c, upload)| {
        let fog = pb::fog_worker_client::FogWorkerClient::new(channel_as(
            &out,
            &format!("client-{c}"),
            &fog_file.listen,
        ));
        async move {
            let started = Instant::now();
            let reply = fog
                .clone()
                .submit_upload(pb::SubmitUploadRequest {
                    upload: Some(upload),
                })
                .await;
            (c, reply.map(|_| ()), started.elapsed())
        }
    });
    let results = within(120, futures_join(sends.collect())).await;
    let cpu = fog.cpu().saturating_sub(cpu_before);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let _ = done_tx.send(true);
    let (ok, failed) = health.await.unwrap();
    for (c, reply, took) in &results {
        println!(
            "client {c}'s upload of {COUNT} ciphertexts ({:.2} MiB): {:?} after {} ms",
            bytes as f64 / (1 << 20) as f64,
            reply
                .as_ref()
                .err()
                .map(|s| (s.code(), s.message().to_string())),
            took.as_millis()
        );
        let s = reply.as_ref().unwrap_err();
        assert_eq!(s.code(), Code::InvalidArgument, "{s:?}");
        assert!(
            s.message().contains(&format!("client {c}"))
                && s.message().contains("130000 ciphertexts, expected 7"),
            "{s:?}"
        );
    }
    println!(
        "fog processor time for both uploads: {} ms; health checks answered {ok}, failed {}",
        cpu.as_millis(),
        failed.len()
    );
    assert!(
        failed.is_empty() && ok > 0,
        "health checks failed: {failed:?}"
    );
    // Parsing one such upload costs tens of seconds of processor time; refusing it from its
    // header costs receiving and decoding the message.
    assert!(
        cpu < Duration::from_secs(10),
        "the fog spent {} ms of processor time on two refused uploads",
        cpu.as_millis()
    );
    stop.fire();
}

/// Runs the futures concurrently and returns their outputs in order.
async fn futures_join<F: std::future::Future + Send + 'static>(futures: Vec<F>) -> Vec<F::Output>
where
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.into_iter().map(tokio::spawn).collect();
    let mut outputs = Vec::new();
    for h in handles {
        outputs.push(h.await.unwrap());
    }
    outputs
}
