#![allow(clippy::unwrap_used)]
//! The `spddl` binary given bad values, as a new user gives them: every bad value is one
//! `error: ` line naming the file or option, the field and the value, said once, before any
//! key is dealt or dataset loaded; the exit code is not 0 and nothing panics.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use spddl_crypto::testing::test_key;
use spddl_experiments::deploy::{self, InitOptions};
use spddl_experiments::scenario::Scenario;

struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
    shown: String,
}

impl Run {
    fn context(&self) -> String {
        format!(
            "{}\nexit code: {:?} after {:?}\nstdout:\n{}\nstderr:\n{}",
            self.shown, self.code, self.took, self.stdout, self.stderr
        )
    }

    /// A clean refusal: exit code ≠ 0 (not a signal), no panic, and standard error exactly
    /// one `error: ` line per entry of `lines`, each naming every string of its entry.
    fn refused(&self, lines: &[&[&str]]) {
        let cx = self.context();
        assert!(
            matches!(self.code, Some(c) if c != 0),
            "expected failure: {cx}"
        );
        for sign in [
            "panicked",
            "RUST_BACKTRACE",
            "backtrace",
            "memory allocation",
        ] {
            assert!(!self.stderr.contains(sign), "{sign}: {cx}");
        }
        let got: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(got.len(), lines.len(), "stderr line count: {cx}");
        for (line, names) in got.iter().zip(lines) {
            assert!(line.starts_with("error: "), "{cx}");
            for name in *names {
                assert!(line.contains(name), "line does not name {name:?}: {cx}");
            }
        }
        // Said once: no two lines alike, and no line says its reason twice.
        for (i, line) in got.iter().enumerate() {
            assert!(!got[..i].contains(line), "said twice: {cx}");
        }
    }
}

/// Runs `spddl`; one that is still running after a minute (a process that took a bad value
/// and started serving) is killed, and shows as exit code `None`.
fn spddl(args: &[&str]) -> Run {
    let start = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_spddl"))
        .args(args)
        .env_remove("RUST_BACKTRACE")
        .env_remove("RUST_LIB_BACKTRACE")
        .env("SPDDL_CACHE_DIR", "/nonexistent/spddl-cache")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    while child.try_wait().unwrap().is_none() && start.elapsed() < Duration::from_secs(60) {
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    Run {
        code: output.status.code(),
        stdout: String::from_utf8(output.stdout).unwrap(),
        stderr: String::from_utf8(output.stderr).unwrap(),
        took: start.elapsed(),
        shown: format!("spddl {}", args.join(" ")),
    }
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// `spddl simulate --set …` into an empty results directory; the run must leave it empty.
fn simulate(sets: &[&str]) -> Run {
    let out = tempfile::tempdir().unwrap();
    let mut args = vec!["simulate", "--quiet", "--out", arg(out.path())];
    for s in sets {
        args.extend(["--set", s]);
    }
    let run = spddl(&args);
    let left: Vec<PathBuf> = std::fs::read_dir(out.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    assert!(left.is_empty(), "wrote {left:?}: {}", run.context());
    run
}

#[test]
fn rounds_0_is_refused_before_anything_runs() {
    let run = simulate(&["rounds=0"]);
    run.refused(&[&["invalid scenario: rounds = 0: must be at least 1"]]);
    assert_eq!(run.stdout, "", "{}", run.context());
}

#[test]
fn each_bad_training_value_gets_its_one_line() {
    for (set, says) in [
        ("learning_rate=-0.1", "learning_rate = -0.1"),
        ("batch_size=0", "batch_size = 0"),
        ("momentum=5", "momentum = 5"),
        ("clip_norm=nan", "clip_norm = NaN"),
        ("quant_bits=0", "quant_bits = 0"),
        ("quant_bits=64", "quant_bits = 64"),
    ] {
        let run = simulate(&[set]);
        run.refused(&[&["invalid scenario: ", says]]);
        assert_eq!(run.stdout, "", "{}", run.context());
    }
    // All at once: each said once, one line each, in field order.
    let run = simulate(&[
        "learning_rate=-0.1",
        "batch_size=0",
        "momentum=5",
        "clip_norm=nan",
        "quant_bits=64",
        "rounds=0",
    ]);
    run.refused(&[
        &["rounds = 0"],
        &["batch_size = 0"],
        &["learning_rate = -0.1"],
        &["momentum = 5"],
        &["clip_norm = NaN"],
        &["quant_bits = 64"],
    ]);
}

#[test]
fn a_model_too_big_for_memory_is_refused_with_the_figure() {
    let run = simulate(&["model=mlp", "hidden=[100000,100000]"]);
    run.refused(&[&[
        "invalid scenario: hidden = [100000, 100000]",
        "10007600010 parameters",
        "GiB",
    ]]);
    println!("{}", run.stderr.trim());
}

#[test]
fn a_missing_mnist_directory_is_said_once_before_a_key_is_dealt() {
    let run = simulate(&["dataset=mnist", "data_dir=/nonexistent/spddl-data"]);
    run.refused(&[&[
        "invalid scenario: data_dir = \"/nonexistent/spddl-data\"",
        "no MNIST in /nonexistent/spddl-data/mnist",
    ]]);
    assert_eq!(run.stderr.matches("mnist").count(), 1, "{}", run.context());
    // No dealer output, and no prime search (which takes seconds).
    assert!(!run.stdout.contains("dealer"), "{}", run.context());
    assert!(run.took < Duration::from_secs(5), "{}", run.context());
    println!("refused in {:?}: {}", run.took, run.stderr.trim());
}

#[test]
fn deploy_init_refuses_ports_that_do_not_fit_and_writes_nothing() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("dep");
    let run = spddl(&["deploy", "init", "--port", "65535", "--out", arg(&out)]);
    run.refused(&[&["deploy init: port = 65535", "65535..=65537", "65533"]]);
    assert!(!out.exists(), "{}", run.context());
    assert!(run.took < Duration::from_secs(5), "{}", run.context());
    // With the scenario's problems and bad waits, each on its line.
    let run = spddl(&[
        "deploy",
        "init",
        "--port",
        "0",
        "--collect-timeout",
        "nan",
        "--share-timeout=-1",
        "--set",
        "rounds=0",
        "--out",
        arg(&out),
    ]);
    run.refused(&[
        &["invalid scenario: rounds = 0"],
        &["deploy init: port = 0"],
        &["deploy init: collect_timeout_s = NaN"],
        &["deploy init: share_timeout_s = -1"],
    ]);
    assert!(!out.exists(), "{}", run.context());
}

/// A deployment with the checked-in test key, on ports nobody listens on.
fn deployment(root: &Path) -> PathBuf {
    let out = root.join("dep");
    deploy::init(InitOptions {
        scenario: Scenario::default(),
        out: out.clone(),
        host: "127.0.0.1".into(),
        base_port: deploy::free_loopback_ports(4).unwrap(),
        key: Some(test_key(2048, 3, 5, 4)),
        collect_timeout_s: 60.0,
        share_timeout_s: 30.0,
    })
    .unwrap();
    out
}

/// `file` with `field = …` replaced by `field = value`.
fn edit(file: &Path, field: &str, value: &str) {
    let text = std::fs::read_to_string(file).unwrap();
    let mut found = false;
    let edited: Vec<String> = text
        .lines()
        .map(|l| {
            if l.starts_with(&format!("{field} = ")) {
                found = true;
                format!("{field} = {value}")
            } else {
                l.to_string()
            }
        })
        .collect();
    assert!(found, "{field} not in {}", file.display());
    std::fs::write(file, edited.join("\n")).unwrap();
}

#[test]
fn every_number_of_a_role_config_is_checked_when_the_process_starts() {
    let root = tempfile::tempdir().unwrap();
    let dep = deployment(root.path());
    let cases: &[(&str, &str, &str, &str)] = &[
        ("aggregator", "aggregator.toml", "collect_timeout_s", "-1.0"),
        ("aggregator", "aggregator.toml", "share_timeout_s", "nan"),
        ("aggregator", "aggregator.toml", "linger_s", "1e300"),
        ("aggregator", "aggregator.toml", "round_attempts", "0"),
        ("aggregator", "aggregator.toml", "listen", "\"127.0.0.1:0\""),
        ("fog", "fog-0.toml", "listen", "\"127.0.0.1:99999\""),
        ("fog", "fog-0.toml", "aggregator", "\"127.0.0.1\""),
        ("client", "client-0.toml", "upload_timeout_s", "-inf"),
        ("keyholder", "holder-1.toml", "min_contributors", "1"),
        ("keyholder", "holder-1.toml", "index", "0"),
    ];
    for (role, file, field, value) in cases {
        let copy = dep.join(format!("bad-{file}"));
        std::fs::copy(dep.join(file), &copy).unwrap();
        edit(&copy, field, value);
        let run = spddl(&[role, "--config", arg(&copy)]);
        run.refused(&[&[&format!("bad-{file}: {field} = ")]]);
        assert!(run.took < Duration::from_secs(5), "{}", run.context());
    }
    // A value of the wrong type: one line with the line number, not the parser's drawing.
    let copy = dep.join("bad-fog.toml");
    std::fs::copy(dep.join("fog-0.toml"), &copy).unwrap();
    edit(&copy, "id", "-1");
    spddl(&["fog", "--config", arg(&copy)])
        .refused(&[&["bad-fog.toml: not a valid config: line "]]);
}
