//! Durability of the aggregator's and the key holders' state, with the real `spddl` binary
//! as the aggregator process (killed with SIGKILL, or given a file-size limit so that its
//! store's writes fail) and the other roles as tasks of this test over real sockets with
//! mutual TLS (the helpers of `experiments/tests/common`).

#![allow(clippy::unwrap_used)]

#[path = "../../experiments/tests/common/mod.rs"]
mod common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use spddl_experiments::deploy::{self, InitOptions};
use spddl_experiments::driver::{federation, run_mode};
use spddl_experiments::metrics::Mode;
use spddl_experiments::scenario::{Scenario, StrategyKind};

const SPDDL: &str = env!("CARGO_BIN_EXE_spddl");

fn fedadam() -> Scenario {
    Scenario {
        strategy: StrategyKind::Fedadam,
        server_lr: 0.05,
        ..scenario()
    }
}

fn init_with(dir: &Path, s: &Scenario) -> PathBuf {
    let out = dir.join("deployment");
    deploy::init(InitOptions {
        scenario: s.clone(),
        out: out.clone(),
        host: "127.0.0.1".into(),
        base_port: deploy::free_loopback_ports(4).unwrap(),
        key: Some(keys()),
        collect_timeout_s: 60.0,
        share_timeout_s: 30.0,
    })
    .unwrap();
    out
}

/// The simulation's model digest after each round of `s` (the first 16 hex digits, as the
/// aggregator prints them).
fn digests_of(s: &Scenario) -> Vec<String> {
    let fed = federation(s).unwrap();
    run_mode(s, &fed, Mode::Secure, Some(&keys()), &|_, _| {})
        .unwrap()
        .into_iter()
        .map(|m| m.model_digest[..16].to_string())
        .collect()
}

/// `spddl aggregator --config out/aggregator.toml` as a child process, its stdout and stderr
/// into `out/logs/aggregator-<n>.{out,log}`.
fn aggregator_process(out: &Path, n: usize) -> Child {
    std::fs::create_dir_all(out.join("logs")).unwrap();
    let stdout = std::fs::File::create(out.join(format!("logs/aggregator-{n}.out"))).unwrap();
    let stderr = std::fs::File::create(out.join(format!("logs/aggregator-{n}.log"))).unwrap();
    Command::new(SPDDL)
        .arg("aggregator")
        .arg("--config")
        .arg(out.join("aggregator.toml"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .unwrap()
}

/// The aggregator as a child process with SIGXFSZ ignored (so that a write past its
/// file-size limit fails with EFBIG instead of killing it), stderr piped: its lines are
/// collected as they come.
fn aggregator_with_limits(out: &Path) -> (Child, Arc<Mutex<Vec<String>>>) {
    let mut child = Command::new("sh")
        .arg("-c")
        .arg("trap '' XFSZ && exec \"$0\" \"$@\"")
        .arg(SPDDL)
        .arg("aggregator")
        .arg("--config")
        .arg(out.join("aggregator.toml"))
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let lines = Arc::new(Mutex::new(Vec::new()));
    let stderr = child.stderr.take().unwrap();
    let sink = lines.clone();
    std::thread::spawn(move || {
        use std::io::BufRead;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { return };
            sink.lock().unwrap().push(without_ansi(&line));
        }
    });
    (child, lines)
}

/// Waits for the child to exit, at most `secs`.
fn wait_exit(child: &mut Child, secs: u64) -> Option<std::process::ExitStatus> {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(secs) {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

fn without_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// `(round, digest prefix)` of each row the aggregator printed.
fn printed_rounds(out: &Path, n: usize) -> Vec<(u64, String)> {
    let text = std::fs::read_to_string(out.join(format!("logs/aggregator-{n}.out"))).unwrap();
    text.lines()
        .skip(1)
        .map(|l| {
            let cols: Vec<&str> = l.split(',').collect();
            (cols[0].parse().unwrap(), cols[cols.len() - 1].to_string())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fedadam_run_whose_aggregator_is_killed_with_sigkill_ends_with_the_uninterrupted_model() {
    logs();
    let dir = tempfile::tempdir().unwrap();
    let s = fedadam();
    let out = init_with(dir.path(), &s);
    let expected = digests_of(&s);
    let stop = Stop::new();
    let mut agg = aggregator_process(&out, 0);
    let (_fogs, _holders) = start_fogs_and_holders(&out, &[0, 1], &[1, 2, 3, 4, 5], &stop);
    let clients = start_clients(&out, &stop);
    // Round 0 completed (FedAdam's moments are no longer zero) and round 1 is open: kill -9.
    within(300, wait_for_round(&out, 1)).await;
    agg.kill().unwrap(); // SIGKILL
    let status = agg.wait().unwrap();
    assert!(!status.success(), "{status:?}");
    let mut agg = aggregator_process(&out, 1);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut agg, 300))
        .await
        .unwrap()
        .expect("the restarted aggregator did not finish in time");
    let log = std::fs::read_to_string(out.join("logs/aggregator-1.log")).unwrap();
    assert!(status.success(), "{status:?}: {log}");
    for l in without_ansi(&log)
        .lines()
        .filter(|l| l.contains("resuming") || l.contains("starting"))
    {
        println!("restarted aggregator: {l}");
    }
    let rounds = printed_rounds(&out, 1);
    println!("rounds after the kill -9 and restart: {rounds:?}; uninterrupted: {expected:?}");
    let got: Vec<u64> = rounds.iter().map(|r| r.0).collect();
    assert_eq!(got, (0..ROUNDS).collect::<Vec<_>>(), "each round once");
    let digests: Vec<String> = rounds.into_iter().map(|r| r.1).collect();
    assert_eq!(
        digests, expected,
        "the FedAdam run with a kill -9 ended with another model than the uninterrupted run"
    );
    for c in clients {
        within(60, c).await.unwrap().unwrap();
    }
    stop.fire();
}

/// Once the aggregator logged `stage`, its file-size limit drops to 0 (`prlimit`, no root
/// needed): every write of its store from then on fails with EFBIG, as writes to a full or
/// failing disk do. It must stop with one error line naming the file and what failed, exit
/// non-zero, and have acknowledged nothing that is not in its store.
async fn store_fails_after(stage: &str) {
    let dir = tempfile::tempdir().unwrap();
    let out = init_with(dir.path(), &scenario());
    let state = out.join("state/aggregator.redb");
    // A client waits for its upload's acknowledgement this long before it sees the stop.
    for k in 0..CLIENTS {
        let config = out.join(format!("client-{k}.toml"));
        let text = std::fs::read_to_string(&config).unwrap();
        let text = text.replace("upload_timeout_s = 60.0", "upload_timeout_s = 3.0");
        assert!(text.contains("upload_timeout_s = 3.0"), "{text}");
        std::fs::write(&config, text).unwrap();
    }
    let stop = Stop::new();
    let (mut agg, lines) = aggregator_with_limits(&out);
    let (fogs, _holders) = start_fogs_and_holders(&out, &[0, 1], &[1, 2, 3, 4, 5], &stop);
    let clients = start_clients(&out, &stop);
    let seen = |words: &str| lines.lock().unwrap().iter().any(|l| l.contains(words));
    within(240, async {
        while !seen(stage) {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    let limited = Command::new("prlimit")
        .args(["--pid", &agg.id().to_string(), "--fsize=0:0"])
        .status()
        .unwrap();
    assert!(limited.success(), "prlimit: {limited:?}");
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut agg, 120))
        .await
        .unwrap();
    // The reader thread has the last lines once the pipe closed.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = lines.lock().unwrap().join("\n");
    let Some(status) = status else {
        panic!("after {stage:?}: the aggregator kept running after its store failed:\n{log}");
    };
    assert!(!status.success(), "{status:?}\n{log}");
    let errors: Vec<&str> = log.lines().filter(|l| l.contains("ERROR")).collect();
    assert_eq!(errors.len(), 1, "after {stage:?}: one error line:\n{log}");
    for words in ["aggregator.redb", "failed: ", "the aggregator stops"] {
        assert!(
            errors[0].contains(words),
            "{words:?} not in {:?}",
            errors[0]
        );
    }
    let last = log.lines().last().unwrap();
    assert!(
        last.starts_with("error: ") && last.contains("aggregator.redb"),
        "the exit line: {last:?}"
    );
    println!("after {stage:?}: exit {:?}: {last}", status.code());

    // What the clients were told was stored (their fog answered them after the aggregator
    // acknowledged the fog's aggregate) must be in the store.
    stop.fire();
    let mut acknowledged = Vec::new();
    for (k, c) in clients.into_iter().enumerate() {
        for u in within(60, c).await.unwrap().unwrap() {
            acknowledged.push((u.round, k as u32));
        }
    }
    for (_, f) in fogs {
        let _ = within(60, f).await;
    }
    let store = spddl_aggregator::store::Store::open(&state, false).unwrap();
    let mut stored = std::collections::BTreeSet::new();
    for r in store.round_log().unwrap() {
        for (c, _) in &r.contributors {
            stored.insert((r.round, *c));
        }
    }
    for round in 0..ROUNDS {
        for bytes in store.aggregates(spddl_proto::RoundId(round)).unwrap() {
            let a: spddl_proto::wire::pb::AuditedAggregate =
                prost::Message::decode(bytes.as_slice()).unwrap();
            for c in a.aggregate.unwrap().contributors {
                stored.insert((round, c.client));
            }
        }
    }
    let lost: Vec<_> = acknowledged
        .iter()
        .filter(|a| !stored.contains(a))
        .collect();
    println!(
        "after {stage:?}: uploads acknowledged {}, in the store {}, acknowledged but not stored {}",
        acknowledged.len(),
        stored.len(),
        lost.len()
    );
    assert!(lost.is_empty(), "acknowledged but not stored: {lost:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_that_fails_on_an_accepted_aggregate_stops_the_aggregator_with_one_line() {
    logs();
    // The round is open: the next write is the first accepted aggregate.
    store_fails_after("round opened").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_store_that_fails_on_a_round_record_stops_the_aggregator_with_one_line() {
    logs();
    // The closed collection is stored: the next write is the completed round's record.
    store_fails_after("decryption shares requested").await;
}

/// Runs `spddl <role> --config <config>` (plus `extra`) and returns (exit code, stderr) once
/// it exits, or kills it after 60 s and returns `None` as the code.
fn run_role(role: &str, config: &Path, extra: &[&str]) -> (Option<i32>, String) {
    let mut child = Command::new(SPDDL)
        .arg(role)
        .arg("--config")
        .arg(config)
        .args(extra)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let status = wait_exit(&mut child, 60);
    if status.is_none() {
        child.kill().unwrap();
    }
    let output = child.wait_with_output().unwrap();
    (
        status.and_then(|s| s.code()),
        without_ansi(&String::from_utf8_lossy(&output.stderr)),
    )
}

#[test]
fn missing_empty_and_truncated_state_files_are_refused_with_one_line_and_fresh_starts_anew() {
    let dir = tempfile::tempdir().unwrap();
    let out = init_with(dir.path(), &scenario());
    for (role, config, file) in [
        ("aggregator", "aggregator.toml", "state/aggregator.redb"),
        ("keyholder", "holder-2.toml", "state/holder-2.redb"),
    ] {
        let path = out.join(file);
        let good = std::fs::read(&path).unwrap();
        let cases: [(&str, Option<Vec<u8>>, &str); 4] = [
            ("missing", None, "missing; "),
            ("empty", Some(Vec::new()), "empty file (0 bytes)"),
            (
                "truncated",
                Some(good[..good.len() / 2].to_vec()),
                "corrupt or truncated",
            ),
            ("cut to a page", Some(good[..4096].to_vec()), "corrupt"),
        ];
        for (case, contents, words) in cases {
            match &contents {
                None => std::fs::remove_file(&path).unwrap(),
                Some(bytes) => std::fs::write(&path, bytes).unwrap(),
            }
            let (code, stderr) = run_role(role, &out.join(config), &[]);
            println!(
                "{role}, {case} state file: exit {code:?}: {}",
                stderr.trim()
            );
            assert_eq!(code, Some(1), "{role}, {case}: {stderr}");
            let lines: Vec<&str> = stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{role}, {case}: one line: {stderr}");
            assert!(
                lines[0].starts_with("error: ")
                    && lines[0].contains(file)
                    && lines[0].contains(words)
                    && lines[0].contains("--fresh"),
                "{role}, {case}: {stderr}"
            );
            assert!(
                !stderr.contains("panicked") && !stderr.contains("backtrace"),
                "{role}, {case}: {stderr}"
            );
        }
        // On purpose: --fresh moves the damaged file aside and starts (then waits for its
        // peers, none of which run here).
        let (code, stderr) = run_fresh(role, &out.join(config), &path);
        assert_eq!(code, None, "{role} --fresh did not start: {stderr}");
        assert!(
            stderr.contains("starts anew; the old file is kept as"),
            "{stderr}"
        );
        let aside: Vec<_> = std::fs::read_dir(path.parent().unwrap())
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .filter(|n| n.starts_with(&format!("{}.replaced-", name(&path))))
            .collect();
        assert_eq!(aside.len(), 1, "{aside:?}");
        assert_eq!(
            std::fs::read(path.parent().unwrap().join(&aside[0]))
                .unwrap()
                .len(),
            4096
        );
    }
}

fn name(p: &Path) -> String {
    p.file_name().unwrap().to_string_lossy().into_owned()
}

/// Starts `spddl <role> --config <config> --fresh`, waits until it moved the old `state`
/// aside and wrote a new one, stops it and returns (exit code if it exited by itself, stderr).
fn run_fresh(role: &str, config: &Path, state: &Path) -> (Option<i32>, String) {
    let mut child = Command::new(SPDDL)
        .arg(role)
        .arg("--config")
        .arg(config)
        .arg("--fresh")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let dir = state.parent().unwrap();
    let prefix = format!("{}.replaced-", name(state));
    let start = Instant::now();
    let mut code = None;
    while start.elapsed() < Duration::from_secs(60) {
        if let Some(s) = child.try_wait().unwrap() {
            code = s.code();
            break;
        }
        let moved = std::fs::read_dir(dir).unwrap().any(|e| {
            e.unwrap()
                .file_name()
                .to_string_lossy()
                .starts_with(&prefix)
        });
        if moved && state.exists() {
            // Opened anew; a moment to log it, then stop it (its peers never run here).
            std::thread::sleep(Duration::from_millis(1000));
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    if code.is_none() {
        let _ = child.kill();
    }
    let output = child.wait_with_output().unwrap();
    (code, without_ansi(&String::from_utf8_lossy(&output.stderr)))
}

/// A TCP relay in front of the aggregator for the fogs. At the first read from a fog of at
/// least [`BIG`] bytes — a `SubmitAggregate` carrying ciphertexts; round polls, health
/// checks and handshakes are smaller — it kills the aggregator with SIGKILL before passing
/// the bytes on, so that the fog's call breaks inside `SubmitAggregate`. It counts the big
/// reads after the kill: the fog's retries.
struct KillingRelay {
    aggregator: Arc<Mutex<Option<Child>>>,
    killed: Arc<std::sync::atomic::AtomicBool>,
    retries: Arc<std::sync::atomic::AtomicUsize>,
}

/// A `SubmitAggregate` of 7 ciphertexts is over 3.5 KiB on the wire.
const BIG: usize = 3000;

impl KillingRelay {
    fn start(listener: tokio::net::TcpListener, target: String, aggregator: Child) -> Self {
        use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
        let relay = KillingRelay {
            aggregator: Arc::new(Mutex::new(Some(aggregator))),
            killed: Arc::new(AtomicBool::new(false)),
            retries: Arc::new(AtomicUsize::new(0)),
        };
        let (aggregator, killed, retries) = (
            relay.aggregator.clone(),
            relay.killed.clone(),
            relay.retries.clone(),
        );
        tokio::spawn(async move {
            loop {
                let Ok((down, _)) = listener.accept().await else {
                    return;
                };
                let Ok(up) = tokio::net::TcpStream::connect(&target).await else {
                    continue;
                };
                let (mut down_r, mut down_w) = down.into_split();
                let (mut up_r, mut up_w) = up.into_split();
                let (aggregator, killed, retries) =
                    (aggregator.clone(), killed.clone(), retries.clone());
                tokio::spawn(async move {
                    use tokio::io::{AsyncReadExt, AsyncWriteExt};
                    let mut buf = vec![0u8; 1 << 16];
                    loop {
                        let n = match down_r.read(&mut buf).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => n,
                        };
                        if n >= BIG {
                            if !killed.swap(true, Ordering::SeqCst) {
                                if let Some(child) = aggregator.lock().unwrap().as_mut() {
                                    child.kill().unwrap(); // SIGKILL
                                    let _ = child.wait();
                                }
                                println!("relay: aggregator killed at a {n}-byte read from a fog");
                            } else {
                                retries.fetch_add(1, Ordering::SeqCst);
                            }
                        }
                        if up_w.write_all(&buf[..n]).await.is_err() {
                            break;
                        }
                    }
                    let _ = up_w.shutdown().await;
                });
                tokio::spawn(async move {
                    let _ = tokio::io::copy(&mut up_r, &mut down_w).await;
                    let _ = tokio::io::AsyncWriteExt::shutdown(&mut down_w).await;
                });
            }
        });
        relay
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_aggregator_killed_inside_submit_aggregate_loses_no_accepted_upload() {
    use std::sync::atomic::Ordering;
    logs();
    let dir = tempfile::tempdir().unwrap();
    let s = scenario();
    let out = init_with(dir.path(), &s);
    let expected = digests_of(&s);
    let aggregator_file: deploy::AggregatorFile =
        toml::from_str(&std::fs::read_to_string(out.join("aggregator.toml")).unwrap()).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let relay_address = listener.local_addr().unwrap().to_string();
    for f in 0..2 {
        let path = out.join(format!("fog-{f}.toml"));
        let text = std::fs::read_to_string(&path).unwrap();
        let moved = text.replace(
            &format!("aggregator = \"{}\"", aggregator_file.listen),
            &format!("aggregator = \"{relay_address}\""),
        );
        assert_ne!(moved, text, "fog {f}'s aggregator address: {text}");
        std::fs::write(&path, moved).unwrap();
    }
    let stop = Stop::new();
    let relay = KillingRelay::start(
        listener,
        aggregator_file.listen.clone(),
        aggregator_process(&out, 0),
    );
    // Fog 0 alone: every upload goes through it, so none can be rescued by a client's
    // fail-over to another fog; what fog 0 accepted must reach the aggregator.
    let (_fogs, _holders) = start_fogs_and_holders(&out, &[0], &[1, 2, 3, 4, 5], &stop);
    let clients = start_clients(&out, &stop);
    within(240, async {
        while !relay.killed.load(Ordering::SeqCst) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    // The fog's call broke inside SubmitAggregate; the aggregator restarts from its store.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut agg = aggregator_process(&out, 1);
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut agg, 300))
        .await
        .unwrap()
        .expect("the restarted aggregator did not finish in time");
    let log = std::fs::read_to_string(out.join("logs/aggregator-1.log")).unwrap();
    assert!(status.success(), "{status:?}: {log}");
    let retries = relay.retries.load(Ordering::SeqCst);
    assert!(
        retries > 0,
        "no aggregate reached the aggregator after the kill"
    );

    // Every upload a client saw acknowledged is counted in its round, every client in
    // every round, and the model is the uninterrupted simulation's.
    let mut acknowledged = std::collections::BTreeSet::new();
    for (k, c) in clients.into_iter().enumerate() {
        for u in within(60, c).await.unwrap().unwrap() {
            acknowledged.insert((u.round, k as u32));
        }
    }
    stop.fire();
    let store =
        spddl_aggregator::store::Store::open(&out.join("state/aggregator.redb"), false).unwrap();
    let log = store.round_log().unwrap();
    let counted: std::collections::BTreeSet<(u64, u32)> = log
        .iter()
        .flat_map(|r| r.contributors.iter().map(move |(c, _)| (r.round, *c)))
        .collect();
    let rounds = printed_rounds(&out, 1);
    println!(
        "after a kill -9 inside SubmitAggregate: big sends after the kill {retries}; acknowledged {}, counted {}; rounds {rounds:?}",
        acknowledged.len(),
        counted.len()
    );
    let lost: Vec<_> = acknowledged.difference(&counted).collect();
    assert!(lost.is_empty(), "acknowledged but not counted: {lost:?}");
    for r in &log {
        assert_eq!(
            r.contributors.len(),
            CLIENTS,
            "round {}: {:?}",
            r.round,
            r.contributors
        );
    }
    let digests: Vec<String> = rounds.into_iter().map(|r| r.1).collect();
    assert_eq!(
        digests, expected,
        "the model differs from the uninterrupted run's"
    );
}
