//! Secrets stay secret through a whole deployment run: no key share, signing key or TLS
//! private key appears in any log line (every level SPDDL logs at) or in the `Debug` of any
//! role's setup; secret files are written owner-only; a secret file others can read is
//! reported with a warning naming it.

#![allow(clippy::unwrap_used)]

mod common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use common::*;
use num_bigint::BigUint;
use spddl_experiments::deploy;

fn files(dir: &Path, suffix: &str) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().ends_with(suffix))
        .collect();
    v.sort();
    v
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// 24 characters from the middle of `s`: secret in every format below, and a chance match is
/// below 10^-24.
fn middle(s: &str) -> String {
    let start = s.len().saturating_sub(24) / 2;
    s[start..(start + 24).min(s.len())].to_string()
}

/// The secret material of a deployment as the strings a leak would show, each as a probe:
/// each key share's secret in hex and in decimal; each signing key in hex and as a `Debug`
/// byte list; each TLS private key's base64 where the private scalar lies (past the PKCS#8
/// header every key shares).
fn secrets(out: &Path) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for path in files(&out.join("keys"), ".json") {
        let doc: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
        if let Some(hex) = doc.get("secret_share").and_then(|v| v.as_str()) {
            let decimal = BigUint::parse_bytes(hex.as_bytes(), 16)
                .unwrap()
                .to_string();
            found.push((path.display().to_string(), middle(hex)));
            found.push((format!("{} (decimal)", path.display()), middle(&decimal)));
        }
    }
    for path in files(&out.join("identities"), ".key") {
        let hex = std::fs::read_to_string(&path).unwrap().trim().to_string();
        let bytes = hex::decode(&hex).unwrap();
        let list = format!("{:?}", &bytes[8..16]);
        found.push((path.display().to_string(), middle(&hex)));
        found.push((
            format!("{} (bytes)", path.display()),
            list.trim_matches(['[', ']']).to_string(),
        ));
    }
    for path in files(&out.join("tls"), ".key") {
        let body: String = std::fs::read_to_string(&path)
            .unwrap()
            .lines()
            .filter(|l| !l.starts_with("-----"))
            .collect();
        found.push((path.display().to_string(), body[50..74].to_string()));
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_full_run_logs_no_secret_and_secret_files_are_owner_only() {
    let log = Log::default();
    let writer = log.clone();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(
            "debug,h2=info,hyper=info,hyper_util=info,tower=info,tonic=info",
        ))
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .init();
    let dir = tempfile::tempdir().unwrap();
    let out = init(dir.path(), 30.0);

    // Owner-only: the secret directories and every secret file in them.
    let mut secret_files: Vec<PathBuf> = files(&out.join("keys"), ".json")
        .into_iter()
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("share-")
        })
        .collect();
    secret_files.extend(files(&out.join("identities"), ".key"));
    secret_files.extend(files(&out.join("tls"), ".key"));
    assert!(secret_files.len() > 5 + 6, "{secret_files:?}");
    for path in &secret_files {
        assert_eq!(mode(path), 0o600, "{}", path.display());
    }
    for d in ["keys", "identities", "tls"] {
        assert_eq!(mode(&out.join(d)) & 0o077, 0, "{d}/ is open to others");
    }
    let secrets = secrets(&out);
    assert!(
        secrets.len() > 2 * 5 + 2 * 6,
        "found {} secrets",
        secrets.len()
    );

    // A whole run of three rounds, every role logging at debug level.
    let stop = Stop::new();
    let agg = aggregator(&out, &stop);
    let (_fogs, _holders) = start_fogs_and_holders(&out, &[0, 1], &[1, 2, 3, 4, 5], &stop);
    let clients = start_clients(&out, &stop);
    let report = within(300, agg).await.unwrap().unwrap();
    assert_eq!(report.rounds.len(), ROUNDS as usize);
    for c in clients {
        within(30, c).await.unwrap().unwrap();
    }
    stop.fire();

    // What a careless `{:?}` of any role's setup would print.
    let debug = [
        format!(
            "{:?}",
            deploy::aggregator_setup(&out.join("aggregator.toml"), false, false).unwrap()
        ),
        format!(
            "{:?}",
            deploy::fog_setup(&out.join("fog-0.toml"), false).unwrap()
        ),
        format!(
            "{:?}",
            deploy::client_setup(&out.join("client-0.toml"), false).unwrap()
        ),
        format!(
            "{:?}",
            deploy::holder_setup(&out.join("holder-1.toml"), false, false).unwrap()
        ),
    ];
    let text = log.text();
    assert!(
        text.lines().count() > 100 && text.contains("DEBUG"),
        "the run logged too little to be a test: {} lines",
        text.lines().count()
    );
    for (whose, probe) in &secrets {
        assert!(
            !text.contains(probe.as_str()),
            "the logs contain the secret of {whose}"
        );
        for d in &debug {
            assert!(
                !d.contains(probe.as_str()),
                "a Debug output contains the secret of {whose}"
            );
        }
    }

    // Loosened permissions: reading the file warns and names it.
    for path in [
        out.join("identities/client-0.key"),
        out.join("keys/share-1.json"),
        out.join("tls/holder-1.key"),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    }
    deploy::client_setup(&out.join("client-0.toml"), false).unwrap();
    deploy::holder_setup(&out.join("holder-1.toml"), false, false).unwrap();
    let text = log.text();
    for name in ["client-0.key", "share-1.json", "holder-1.key"] {
        assert!(
            text.lines()
                .any(|l| l.contains("WARN") && l.contains(name) && l.contains("other users")),
            "no warning for {name} readable by others"
        );
    }
}
