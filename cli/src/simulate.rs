//! `spddl simulate`: a whole federated training run in one process — clients, fog workers,
//! aggregator and key holders driven by function calls — secure, plaintext or both, then
//! `metrics.csv`, `summary.json`, `scenario.toml` and the plots in a new results directory.

use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime};

use anyhow::{Context, Result, anyhow, bail};
use clap::{Args, ValueEnum};
use spddl_crypto::paillier::{KeyShare, PublicKey};
use spddl_experiments::driver;
use spddl_experiments::keycache::{self, KeySource};
use spddl_experiments::metrics::{Mode, RoundMetrics};
use spddl_experiments::results::{ModeRun, Report, ResultsDir, Summary};
use spddl_experiments::scenario::{Scenario, SetError};

/// Options of `spddl simulate`.
#[derive(Args, Debug)]
pub(crate) struct SimulateArgs {
    /// Scenario file (TOML; see experiments/configs/). Without it: the built-in digits
    /// scenario, experiments/configs/digits.toml.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Override a scenario field, the value in TOML syntax; repeatable:
    /// --set rounds=5 --set hidden=[64,32] --set dataset=mnist.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
    /// Which runs: the encrypted protocol, the plaintext baseline (same data, seed and
    /// quantization), or both.
    #[arg(long, value_enum, default_value_t = ModeArg::Both)]
    mode: ModeArg,
    /// Deal a new key instead of loading the cached one, and replace the cache entry. The
    /// cache is $SPDDL_CACHE_DIR, else $XDG_CACHE_HOME/spddl/keys, else ~/.cache/spddl/keys.
    #[arg(long)]
    fresh_keys: bool,
    /// Where results go: each run writes a new <scenario>-<YYYYmmdd-HHMMSS>/ (UTC) inside.
    #[arg(long, value_name = "DIR", default_value = "results")]
    out: PathBuf,
    /// No progress: print only the final table and the results path.
    #[arg(long)]
    quiet: bool,
}

/// `--mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum ModeArg {
    /// Threshold-Paillier secure aggregation.
    Secure,
    /// The plaintext baseline.
    Plaintext,
    /// Secure, then plaintext.
    Both,
}

impl ModeArg {
    fn modes(self) -> Vec<Mode> {
        match self {
            ModeArg::Secure => vec![Mode::Secure],
            ModeArg::Plaintext => vec![Mode::Plaintext],
            ModeArg::Both => vec![Mode::Secure, Mode::Plaintext],
        }
    }
}

/// A dealt key: the public key and the shares of holders `1..=ℓ`.
type DealtKey = (PublicKey, Vec<KeyShare>);

pub(crate) fn run(args: SimulateArgs) -> Result<()> {
    let scenario = load_scenario(args.config.as_deref(), &args.set)?;
    let modes = args.mode.modes();
    let say = |line: String| {
        if !args.quiet {
            println!("{line}");
        }
    };
    // Before the key: a results directory that cannot be made should not cost a prime search.
    let dir = ResultsDir::create(&args.out, &scenario.name, SystemTime::now())?;
    let outcome = prepare_key_and_run(&scenario, &modes, args.fresh_keys, args.quiet, &say);
    let (report, key_source, wall_s) = match outcome {
        Ok(done) => done,
        Err(e) => {
            // Only removes the directory while it is still empty.
            let _ = std::fs::remove_dir(dir.path());
            return Err(e);
        }
    };
    print!("{}", finish(&dir, &scenario, &report, key_source, wall_s)?);
    Ok(())
}

/// The scenario of `config` (the built-in one without), overrides applied, validated with
/// the dataset's files ([`check_scenario`]). Every error is one line naming the file, the
/// override or the field; every bad field gets its line.
pub(crate) fn load_scenario(config: Option<&Path>, sets: &[String]) -> Result<Scenario> {
    let scenario = parse_scenario(config, sets)?;
    check_scenario(config, &scenario)?;
    Ok(scenario)
}

/// Every problem of `scenario` (read from `config`), one line each:
/// `FILE: invalid scenario: field = value: reason`.
pub(crate) fn check_scenario(config: Option<&Path>, scenario: &Scenario) -> Result<()> {
    scenario.validate_before_run().map_err(|problems| {
        let prefix = match config {
            Some(path) => format!("{}: invalid scenario", path.display()),
            None => "invalid scenario".into(),
        };
        anyhow!("{}", problems.lines(&prefix))
    })
}

/// The scenario of `config` (the built-in one without) with the overrides applied, not yet
/// validated.
pub(crate) fn parse_scenario(config: Option<&Path>, sets: &[String]) -> Result<Scenario> {
    let mut scenario = match config {
        None => Scenario::default(),
        Some(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("{}: cannot read", path.display()))?;
            Scenario::from_toml(&text).map_err(|e| {
                let at = e.span().map(|span| span.start);
                anyhow!("{}: {}", path.display(), toml_error(&text, e.message(), at))
            })?
        }
    };
    for assignment in sets {
        scenario.set(assignment).map_err(|e| match e {
            SetError::UnknownField(_) => anyhow!("--set {assignment}: {e}"),
            _ => anyhow!("--set: {e}"),
        })?;
    }
    Ok(scenario)
}

/// A TOML error on one line: `line N: message`, the line of byte offset `at`.
fn toml_error(text: &str, message: &str, at: Option<usize>) -> String {
    let message = message.split_whitespace().collect::<Vec<_>>().join(" ");
    match at {
        Some(at) => {
            let line = text.as_bytes()[..at.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

/// Loads or deals the key when a secure run is asked for, then runs the driver. Returns the
/// report, where the key came from, and the driver's wall-clock seconds.
fn prepare_key_and_run(
    scenario: &Scenario,
    modes: &[Mode],
    fresh: bool,
    quiet: bool,
    say: &dyn Fn(String),
) -> Result<(Report, Option<KeySource>, f64)> {
    // The data first: a dataset that cannot be loaded or split should not cost a prime search.
    let federation = driver::federation(scenario)?;
    let (key, key_source) = prepare_key(scenario, modes, fresh, say)?;
    let start = Instant::now();
    let report = run_driver(scenario, &federation, modes, key.as_ref(), quiet)?;
    let wall_s = start.elapsed().as_secs_f64();
    drop(key); // wipes the shares before the results are written
    for mode in modes {
        if report.run(*mode).is_none() {
            bail!("the driver returned no {} run", mode.as_str());
        }
    }
    Ok((report, key_source, wall_s))
}

/// The dealer key of the scenario from the cache (or dealt), when `modes` has a secure run.
fn prepare_key(
    scenario: &Scenario,
    modes: &[Mode],
    fresh: bool,
    say: &dyn Fn(String),
) -> Result<(Option<DealtKey>, Option<KeySource>)> {
    if !modes.contains(&Mode::Secure) {
        return Ok((None, None));
    }
    let (bits, t, l) = (scenario.key_bits, scenario.threshold, scenario.holders);
    say(format!(
        "dealer key: {t}-of-{l}, {bits}-bit modulus (only the first run with these \
         parameters searches safe primes)"
    ));
    let (pk, shares, source) =
        keycache::load_or_generate(bits, t, l, fresh, &mut spddl_crypto::Entropy::os())
            .context("dealing the simulation key")?;
    Ok((Some((pk, shares)), Some(source)))
}

/// The single call into the simulation driver: runs `modes` of `scenario` in this order
/// (`key` is `Some` exactly when `modes` holds [`Mode::Secure`]) and shows progress unless
/// `quiet`.
///
/// Connected to the driver's per-mode entry point (`federation` + `run_mode`); when
/// `spddl_experiments::driver::run` exists, it replaces this body.
fn run_driver(
    scenario: &Scenario,
    federation: &driver::Federation,
    modes: &[Mode],
    key: Option<&DealtKey>,
    quiet: bool,
) -> Result<Report> {
    let rounds = scenario.rounds;
    let progress = move |mode: Mode, m: &RoundMetrics| {
        if !quiet {
            println!(
                "{:<9} round {:>3}/{rounds}: accuracy {:6.2}%  loss {:.4}  {} contributors  {:.1} s",
                mode.as_str(),
                m.round + 1,
                m.accuracy * 100.0,
                m.loss,
                m.contributors,
                m.wall_s
            );
        }
    };
    let mut runs = Vec::new();
    for &mode in modes {
        let start = Instant::now();
        let mode_key = if mode == Mode::Secure { key } else { None };
        let rounds = driver::run_mode(scenario, federation, mode, mode_key, &progress)
            .with_context(|| format!("{} run", mode.as_str()))?;
        runs.push(ModeRun {
            mode,
            rounds,
            wall_s: start.elapsed().as_secs_f64(),
        });
    }
    Ok(Report { runs })
}

/// Writes every result file and returns the final table and the results path, to print.
fn finish(
    dir: &ResultsDir,
    scenario: &Scenario,
    report: &Report,
    key_source: Option<KeySource>,
    wall_s: f64,
) -> Result<String> {
    let mut summary = Summary::from_runs(scenario, &report.runs, key_source);
    summary.wall_s = wall_s;
    dir.write_all(&report.runs, &summary)?;
    let mut out = summary.table();
    if let Some(source) = &summary.key_source {
        out.push_str(&format!("dealer key {source}\n"));
    }
    out.push_str(&format!("results in {}\n", dir.path().display()));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use clap::Parser;
    use spddl_experiments::scenario::DatasetName;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    fn parse(argv: &[&str]) -> SimulateArgs {
        Cli::try_parse_from(std::iter::once("simulate").chain(argv.iter().copied()))
            .unwrap()
            .args
    }

    fn sets(list: &[&str]) -> Vec<String> {
        list.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn options_and_their_defaults() {
        let a = parse(&[]);
        assert_eq!(a.config, None);
        assert_eq!(a.mode, ModeArg::Both);
        assert_eq!(a.out, PathBuf::from("results"));
        assert!(!a.fresh_keys && !a.quiet && a.set.is_empty());
        let a = parse(&[
            "--config",
            "x.toml",
            "--set",
            "rounds=2",
            "--set",
            "seed=7",
            "--mode",
            "plaintext",
            "--fresh-keys",
            "--out",
            "o",
            "--quiet",
        ]);
        assert_eq!(a.config, Some(PathBuf::from("x.toml")));
        assert_eq!(a.set, ["rounds=2", "seed=7"]);
        assert_eq!(a.mode.modes(), [Mode::Plaintext]);
        assert!(a.fresh_keys && a.quiet);
        assert_eq!(ModeArg::Both.modes(), [Mode::Secure, Mode::Plaintext]);
        assert!(Cli::try_parse_from(["simulate", "--mode", "fast"]).is_err());
    }

    #[test]
    fn the_default_scenario_is_built_in_and_overrides_apply() {
        assert_eq!(load_scenario(None, &[]).unwrap(), Scenario::default());
        let s = parse_scenario(None, &sets(&["rounds=3", "dataset=mnist"])).unwrap();
        assert_eq!((s.rounds, s.dataset), (3, DatasetName::Mnist));
        // Loading also checks that the dataset's files are there.
        let e = load_scenario(
            None,
            &sets(&["dataset=mnist", "data_dir=/nonexistent/spddl"]),
        )
        .unwrap_err();
        assert!(
            format!("{e:#}").contains("no MNIST in /nonexistent/spddl/mnist"),
            "{e:#}"
        );
    }

    #[test]
    fn a_config_file_loads_and_overrides_win() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.toml");
        std::fs::write(&path, "name = \"mine\"\nrounds = 4\nclients = 12\n").unwrap();
        let s = load_scenario(Some(&path), &sets(&["rounds=9"])).unwrap();
        assert_eq!((s.name.as_str(), s.rounds, s.clients), ("mine", 9, 12));
        let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("../experiments/configs");
        let digits = load_scenario(Some(&shipped.join("digits.toml")), &[]).unwrap();
        assert_eq!(digits, Scenario::default());
    }

    #[test]
    fn errors_are_one_line_naming_file_override_or_field() {
        let one_line = |e: anyhow::Error| {
            let s = format!("{e:#}");
            assert!(!s.contains('\n'), "{s}");
            s
        };
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "rounds = 3\n\nroundz = 4\n").unwrap();
        let e = one_line(load_scenario(Some(&path), &[]).unwrap_err());
        assert!(
            e.contains("bad.toml: line 3:") && e.contains("roundz"),
            "{e}"
        );

        let missing = dir.path().join("missing.toml");
        let e = one_line(load_scenario(Some(&missing), &[]).unwrap_err());
        assert!(e.contains("missing.toml: cannot read"), "{e}");

        let e = one_line(load_scenario(None, &sets(&["nonsense=1"])).unwrap_err());
        assert!(
            e.contains("--set nonsense=1") && e.contains("unknown"),
            "{e}"
        );
        let e = one_line(load_scenario(None, &sets(&["rounds=many"])).unwrap_err());
        assert!(e.starts_with("--set: ") && e.contains("rounds=many"), "{e}");

        let e = one_line(load_scenario(None, &sets(&["client_dropout=1.5"])).unwrap_err());
        assert!(e.contains("invalid scenario: client_dropout"), "{e}");
        std::fs::write(&path, "threshold = 6\n").unwrap();
        let e = one_line(load_scenario(Some(&path), &[]).unwrap_err());
        assert!(
            e.contains("bad.toml: invalid scenario: threshold = 6"),
            "{e}"
        );
    }

    #[test]
    fn finish_writes_the_results_and_the_table() {
        let base = tempfile::tempdir().unwrap();
        let scenario = Scenario {
            rounds: 2,
            ..Scenario::default()
        };
        let dir = ResultsDir::create(base.path(), &scenario.name, SystemTime::now()).unwrap();
        let rounds = |acc: f64| -> Vec<RoundMetrics> {
            (0..2)
                .map(|round| RoundMetrics {
                    round,
                    accuracy: acc + 0.1 * round as f64,
                    loss: 0.5,
                    contributors: 10,
                    encrypt_s: 2.0,
                    ..RoundMetrics::default()
                })
                .collect()
        };
        let report = Report {
            runs: vec![
                ModeRun {
                    mode: Mode::Secure,
                    rounds: rounds(0.8),
                    wall_s: 4.0,
                },
                ModeRun {
                    mode: Mode::Plaintext,
                    rounds: rounds(0.81),
                    wall_s: 1.0,
                },
            ],
        };
        let source = KeySource::Generated { seconds: 3.0 };
        let printed = finish(&dir, &scenario, &report, Some(source), 5.5).unwrap();
        assert!(
            printed.contains("secure") && printed.contains("plaintext"),
            "{printed}"
        );
        assert!(printed.contains("90.00%"), "{printed}");
        assert!(
            printed.contains("dealer key generated in 3.0 s"),
            "{printed}"
        );
        assert!(printed.ends_with(&format!("results in {}\n", dir.path().display())));

        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.summary_json()).unwrap()).unwrap();
        assert_eq!(summary["secure"]["final_accuracy"], 0.9);
        assert_eq!(summary["secure"]["encrypt_s"], 4.0);
        assert_eq!(summary["wall_s"], 5.5);
        assert_eq!(summary["scenario"]["rounds"], 2);
        let csv = std::fs::read_to_string(dir.metrics_csv()).unwrap();
        assert_eq!(csv.lines().count(), 1 + 4);
        for svg in [dir.accuracy_svg(), dir.stages_svg()] {
            assert!(std::fs::read_to_string(svg).unwrap().contains("</svg>"));
        }
    }

    #[test]
    fn a_plaintext_run_needs_no_key() {
        // No prime search, no cache access, nothing said.
        let said = std::cell::RefCell::new(Vec::new());
        let (key, source) = prepare_key(&Scenario::default(), &[Mode::Plaintext], true, &|line| {
            said.borrow_mut().push(line)
        })
        .unwrap();
        assert!(key.is_none() && source.is_none());
        assert!(said.borrow().is_empty(), "{:?}", said.borrow());
    }
}
