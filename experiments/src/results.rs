//! What a simulated run leaves behind: `results/<scenario>-<YYYYmmdd-HHMMSS>/` with
//! `metrics.csv` (one row per mode and round), `summary.json` (final numbers and stage totals
//! per mode, the scenario as run), `scenario.toml` (to run it again) and the plots of
//! [`crate::plots`].

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::keycache::KeySource;
use crate::metrics::{Mode, RoundMetrics};
use crate::scenario::Scenario;

/// The rounds of one mode, as the driver returns them.
#[derive(Debug, Clone, PartialEq)]
pub struct ModeRun {
    /// Secure or plaintext.
    pub mode: Mode,
    /// One entry per round, in order.
    pub rounds: Vec<RoundMetrics>,
    /// Wall-clock seconds of the whole mode (setup and every round).
    pub wall_s: f64,
}

/// What the simulation driver hands back: one [`ModeRun`] per mode it ran, in order.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// The modes run.
    pub runs: Vec<ModeRun>,
}

impl Report {
    /// The run of `mode`, if it was run.
    pub fn run(&self, mode: Mode) -> Option<&ModeRun> {
        self.runs.iter().find(|r| r.mode == mode)
    }
}

/// A run's results directory.
#[derive(Debug, Clone)]
pub struct ResultsDir {
    path: PathBuf,
}

impl ResultsDir {
    /// Creates `base/<scenario_name>-<YYYYmmdd-HHMMSS>/` (UTC), and `base` if missing. When
    /// that directory exists already (two runs in one second), appends `-2`, `-3`, …
    /// Characters of the name other than letters, digits, `-`, `_` and `.` become `_`.
    pub fn create(base: &Path, scenario_name: &str, timestamp: SystemTime) -> Result<Self> {
        std::fs::create_dir_all(base)
            .with_context(|| format!("{}: cannot create directory", base.display()))?;
        let stem = format!("{}-{}", safe_name(scenario_name), utc_stamp(timestamp));
        for n in 1u32.. {
            let path = match n {
                1 => base.join(&stem),
                n => base.join(format!("{stem}-{n}")),
            };
            match std::fs::create_dir(&path) {
                Ok(()) => return Ok(ResultsDir { path }),
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && n < 1000 => {}
                Err(e) => {
                    return Err(e)
                        .with_context(|| format!("{}: cannot create directory", path.display()));
                }
            }
        }
        unreachable!("the loop returns by n = 1000")
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `metrics.csv` in the directory.
    pub fn metrics_csv(&self) -> PathBuf {
        self.path.join("metrics.csv")
    }

    /// `summary.json` in the directory.
    pub fn summary_json(&self) -> PathBuf {
        self.path.join("summary.json")
    }

    /// `scenario.toml` in the directory.
    pub fn scenario_toml(&self) -> PathBuf {
        self.path.join("scenario.toml")
    }

    /// `accuracy.svg` in the directory.
    pub fn accuracy_svg(&self) -> PathBuf {
        self.path.join("accuracy.svg")
    }

    /// `stages.svg` in the directory.
    pub fn stages_svg(&self) -> PathBuf {
        self.path.join("stages.svg")
    }

    /// Writes every file: metrics, summary, scenario and plots.
    pub fn write_all(&self, runs: &[ModeRun], summary: &Summary) -> Result<()> {
        write_metrics_csv(&self.metrics_csv(), runs)?;
        write_summary_json(&self.summary_json(), summary)?;
        write_scenario_toml(&self.scenario_toml(), &summary.scenario)?;
        crate::plots::write_accuracy_svg(&self.accuracy_svg(), runs)?;
        crate::plots::write_stages_svg(&self.stages_svg(), runs)?;
        Ok(())
    }
}

/// The name with every character outside `[A-Za-z0-9._-]` replaced by `_` (so a scenario name
/// cannot leave the results directory); `run` when empty.
fn safe_name(name: &str) -> String {
    let s: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect();
    match s.trim_start_matches('.') {
        "" => "run".into(),
        s => s.into(),
    }
}

/// `YYYYmmdd-HHMMSS` of `t` in UTC (times before 1970 are 1970).
pub fn utc_stamp(t: SystemTime) -> String {
    let secs = t.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}{m:02}{d:02}-{:02}{:02}{:02}",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Proleptic Gregorian date of `days` after 1970-01-01 (H. Hinnant's `civil_from_days`).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097; // day of era, [0, 146096]
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365; // [0, 399]
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100); // [0, 365], from March 1st
    let mp = (5 * doy + 2) / 153; // [0, 11], March = 0
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + u64::from(m <= 2);
    (y, m, d)
}

/// The header of `metrics.csv`.
pub const CSV_HEADER: &str = "mode,round,accuracy,loss,contributors,dropped,silent_holders,\
blamed_holders,train_s,encrypt_s,fog_add_s,partial_decrypt_s,combine_s,wall_s,bytes_uploaded";

/// `metrics.csv` as a string: [`CSV_HEADER`], then one row per mode and round. Lists (client
/// and holder ids) are joined with `;`; no field needs quoting.
pub fn metrics_csv(runs: &[ModeRun]) -> String {
    fn list<T: ToString>(ids: &[T]) -> String {
        ids.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(";")
    }
    let mut out = String::from(CSV_HEADER);
    out.push('\n');
    for run in runs {
        for m in &run.rounds {
            // Writing to a String cannot fail.
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                run.mode.as_str(),
                m.round,
                m.accuracy,
                m.loss,
                m.contributors,
                list(&m.dropped),
                list(&m.silent_holders),
                list(&m.blamed_holders),
                m.train_s,
                m.encrypt_s,
                m.fog_add_s,
                m.partial_decrypt_s,
                m.combine_s,
                m.wall_s,
                m.bytes_uploaded,
            );
        }
    }
    out
}

/// Writes [`metrics_csv`] to `path`.
pub fn write_metrics_csv(path: &Path, runs: &[ModeRun]) -> Result<()> {
    write(path, metrics_csv(runs))
}

/// Writes the summary as pretty JSON to `path`.
pub fn write_summary_json(path: &Path, summary: &Summary) -> Result<()> {
    let json = serde_json::to_string_pretty(summary).context("summary.json")? + "\n";
    write(path, json)
}

/// Writes the scenario as TOML to `path`, for `spddl simulate --config` to run it again.
pub fn write_scenario_toml(path: &Path, scenario: &Scenario) -> Result<()> {
    let text = toml::to_string(scenario).context("scenario.toml")?;
    write(path, text)
}

fn write(path: &Path, contents: String) -> Result<()> {
    std::fs::write(path, contents).with_context(|| format!("{}: cannot write", path.display()))
}

/// The totals of one mode in `summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModeSummary {
    /// Test accuracy after the last round (a fraction; `null` when no round ran).
    pub final_accuracy: Option<f64>,
    /// Test loss after the last round (`null` when no round ran).
    pub final_loss: Option<f64>,
    /// Rounds run.
    pub rounds: usize,
    /// Wall-clock seconds of the mode.
    pub wall_s: f64,
    /// Seconds of local training, all rounds and clients.
    pub train_s: f64,
    /// Seconds of encoding and encryption, all rounds and clients.
    pub encrypt_s: f64,
    /// Seconds of fog verification and addition, all rounds.
    pub fog_add_s: f64,
    /// Seconds of partial decryption, all rounds and holders.
    pub partial_decrypt_s: f64,
    /// Seconds of share verification, combining and decoding, all rounds.
    pub combine_s: f64,
    /// Ciphertext bytes uploaded, all rounds.
    pub bytes_uploaded: u64,
}

impl ModeSummary {
    /// Totals over the rounds of one run.
    pub fn from_run(run: &ModeRun) -> Self {
        let sum = |f: fn(&RoundMetrics) -> f64| run.rounds.iter().map(f).sum();
        let last = run.rounds.last();
        ModeSummary {
            final_accuracy: last.map(|m| m.accuracy),
            final_loss: last.map(|m| m.loss),
            rounds: run.rounds.len(),
            wall_s: run.wall_s,
            train_s: sum(|m| m.train_s),
            encrypt_s: sum(|m| m.encrypt_s),
            fog_add_s: sum(|m| m.fog_add_s),
            partial_decrypt_s: sum(|m| m.partial_decrypt_s),
            combine_s: sum(|m| m.combine_s),
            bytes_uploaded: run.rounds.iter().map(|m| m.bytes_uploaded).sum(),
        }
    }
}

/// `summary.json`: `jq .secure.final_accuracy summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The secure run, `null` when not run.
    pub secure: Option<ModeSummary>,
    /// The plaintext baseline, `null` when not run.
    pub plaintext: Option<ModeSummary>,
    /// Wall-clock seconds of the run: the modes' sum from [`Summary::from_runs`]; `spddl
    /// simulate` sets the driver's whole time (data loading and every mode, key excluded).
    pub wall_s: f64,
    /// Where the secure run's key came from; `null` without a secure run.
    pub key_source: Option<KeySource>,
    /// Plaintext minus secure final accuracy, in percentage points; `null` unless both ran.
    pub accuracy_gap_points: Option<f64>,
    /// The scenario as run, overrides applied.
    pub scenario: Scenario,
}

impl Summary {
    /// The summary of the runs of `scenario`. A mode listed twice counts once (the first).
    pub fn from_runs(scenario: &Scenario, runs: &[ModeRun], key_source: Option<KeySource>) -> Self {
        let of = |mode| {
            runs.iter()
                .find(|r| r.mode == mode)
                .map(ModeSummary::from_run)
        };
        let (secure, plaintext) = (of(Mode::Secure), of(Mode::Plaintext));
        let accuracy_gap_points = match (&secure, &plaintext) {
            (Some(s), Some(p)) => p
                .final_accuracy
                .zip(s.final_accuracy)
                .map(|(p, s)| (p - s) * 100.0),
            _ => None,
        };
        Summary {
            wall_s: [&secure, &plaintext]
                .iter()
                .flat_map(|m| m.iter())
                .map(|m| m.wall_s)
                .sum(),
            secure,
            plaintext,
            key_source,
            accuracy_gap_points,
            scenario: scenario.clone(),
        }
    }

    /// The final table: one line per mode run, then the gap.
    pub fn table(&self) -> String {
        let mut out = format!(
            "{:<10} {:>9} {:>8} {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}\n",
            "mode",
            "accuracy",
            "loss",
            "wall s",
            "train s",
            "encrypt s",
            "fog s",
            "decrypt s",
            "combine s"
        );
        let opt = |x: Option<f64>, scale: f64, digits: usize| {
            x.map_or_else(|| "-".to_string(), |x| format!("{:.digits$}", x * scale))
        };
        for (name, m) in [("secure", &self.secure), ("plaintext", &self.plaintext)] {
            let Some(m) = m else { continue };
            let _ = writeln!(
                out,
                "{name:<10} {:>8}% {:>8} {:>9.2} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>9.3}",
                opt(m.final_accuracy, 100.0, 2),
                opt(m.final_loss, 1.0, 4),
                m.wall_s,
                m.train_s,
                m.encrypt_s,
                m.fog_add_s,
                m.partial_decrypt_s,
                m.combine_s,
            );
        }
        if let Some(gap) = self.accuracy_gap_points {
            let _ = writeln!(out, "accuracy gap (plaintext − secure): {gap:+.2} points");
        }
        out
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Made-up rounds: accuracy rising from `start`, a dropout and a blamed holder in round 1.
    pub(crate) fn rounds(n: u64, start: f64) -> Vec<RoundMetrics> {
        (0..n)
            .map(|round| RoundMetrics {
                round,
                accuracy: start + 0.05 * round as f64,
                loss: 2.0 / (round + 1) as f64,
                contributors: 10 - usize::from(round == 1) * 2,
                dropped: if round == 1 { vec![3, 7] } else { vec![] },
                silent_holders: if round == 1 { vec![5] } else { vec![] },
                blamed_holders: if round == 1 { vec![1, 2] } else { vec![] },
                train_s: 0.5,
                encrypt_s: 1.25,
                fog_add_s: 0.25,
                partial_decrypt_s: 0.75,
                combine_s: 0.125,
                wall_s: 3.0,
                bytes_uploaded: 1000,
                ..RoundMetrics::default()
            })
            .collect()
    }

    pub(crate) fn both(n: u64) -> Vec<ModeRun> {
        vec![
            ModeRun {
                mode: Mode::Secure,
                rounds: rounds(n, 0.5),
                wall_s: 30.0,
            },
            ModeRun {
                mode: Mode::Plaintext,
                rounds: rounds(n, 0.51),
                wall_s: 5.0,
            },
        ]
    }

    #[test]
    fn stamps_are_utc_calendar_times() {
        let at = |s| utc_stamp(UNIX_EPOCH + std::time::Duration::from_secs(s));
        assert_eq!(at(0), "19700101-000000");
        assert_eq!(at(951_782_400), "20000229-000000"); // a leap day of a century year
        assert_eq!(at(1_709_251_199), "20240229-235959");
        assert_eq!(at(1_735_689_599), "20241231-235959");
        assert_eq!(at(1_735_689_600), "20250101-000000");
        assert_eq!(at(4_107_542_400), "21000301-000000"); // 2100 is not a leap year
        let before = UNIX_EPOCH - std::time::Duration::from_secs(10);
        assert_eq!(utc_stamp(before), "19700101-000000");
    }

    #[test]
    fn results_dirs_are_named_after_scenario_and_time_and_never_reused() {
        let base = tempfile::tempdir().unwrap();
        let base = base.path().join("results");
        let t = UNIX_EPOCH + std::time::Duration::from_secs(1_735_689_600);
        let a = ResultsDir::create(&base, "digits", t).unwrap();
        let b = ResultsDir::create(&base, "digits", t).unwrap();
        assert_eq!(a.path(), base.join("digits-20250101-000000"));
        assert_eq!(b.path(), base.join("digits-20250101-000000-2"));
        assert!(a.path().is_dir() && b.path().is_dir());
        let c = ResultsDir::create(&base, "../up/../../and away", t).unwrap();
        assert_eq!(c.path(), base.join("_up_.._.._and_away-20250101-000000"));
        assert_eq!(safe_name(""), "run");
    }

    #[test]
    fn csv_has_one_row_per_mode_and_round() {
        let csv = metrics_csv(&both(3));
        let lines: Vec<_> = csv.lines().collect();
        assert_eq!(lines.len(), 1 + 2 * 3);
        assert_eq!(lines[0], CSV_HEADER);
        let columns = CSV_HEADER.split(',').count();
        assert_eq!(columns, 15);
        for line in &lines[1..] {
            assert_eq!(line.split(',').count(), columns, "{line}");
        }
        assert_eq!(
            lines[2],
            "secure,1,0.55,1,8,3;7,5,1;2,0.5,1.25,0.25,0.75,0.125,3,1000"
        );
        assert!(lines[4].starts_with("plaintext,0,0.51,2,10,,,,"));
    }

    #[test]
    fn summary_totals_stages_and_the_gap() {
        let scenario = Scenario::default();
        let source = KeySource::Cached { path: "/k".into() };
        let s = Summary::from_runs(&scenario, &both(4), Some(source.clone()));
        let secure = s.secure.as_ref().unwrap();
        assert_eq!(secure.rounds, 4);
        assert_eq!(secure.final_accuracy, Some(0.65));
        assert_eq!(secure.final_loss, Some(0.5));
        assert_eq!(secure.encrypt_s, 5.0);
        assert_eq!(secure.bytes_uploaded, 4000);
        assert_eq!(s.wall_s, 35.0);
        let gap = s.accuracy_gap_points.unwrap();
        assert!((gap - 1.0).abs() < 1e-9, "{gap}");

        let json: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert_eq!(json["secure"]["final_accuracy"], 0.65);
        assert_eq!(json["plaintext"]["rounds"], 4);
        assert_eq!(json["key_source"]["kind"], "cached");
        assert_eq!(json["scenario"]["name"], "digits");
        let back: Summary = serde_json::from_value(json).unwrap();
        assert_eq!(back, s);

        let table = s.table();
        assert!(
            table.contains("secure") && table.contains("plaintext"),
            "{table}"
        );
        assert!(table.contains("65.00%"), "{table}");
        assert!(table.contains("+1.00 points"), "{table}");
    }

    #[test]
    fn a_mode_not_run_is_null() {
        let runs = &both(2)[1..];
        let s = Summary::from_runs(&Scenario::default(), runs, None);
        let json: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert!(json["secure"].is_null());
        assert!(json["key_source"].is_null());
        assert!(json["accuracy_gap_points"].is_null());
        assert_eq!(json["plaintext"]["rounds"], 2);
        assert!(!s.table().contains("secure"));

        let empty = ModeRun {
            mode: Mode::Secure,
            rounds: vec![],
            wall_s: 0.0,
        };
        let s = Summary::from_runs(&Scenario::default(), &[empty], None);
        let json: serde_json::Value = serde_json::to_value(&s).unwrap();
        assert!(json["secure"]["final_accuracy"].is_null());
        assert_eq!(json["secure"]["rounds"], 0);
    }

    #[test]
    fn write_all_writes_every_file() {
        let base = tempfile::tempdir().unwrap();
        let dir = ResultsDir::create(base.path(), "digits", SystemTime::now()).unwrap();
        let scenario = Scenario {
            rounds: 3,
            ..Scenario::default()
        };
        let runs = both(3);
        let summary = Summary::from_runs(&scenario, &runs, None);
        dir.write_all(&runs, &summary).unwrap();
        for path in [
            dir.metrics_csv(),
            dir.summary_json(),
            dir.scenario_toml(),
            dir.accuracy_svg(),
            dir.stages_svg(),
        ] {
            assert!(path.is_file(), "{}", path.display());
        }
        let text = std::fs::read_to_string(dir.summary_json()).unwrap();
        let back: Summary = serde_json::from_str(&text).unwrap();
        assert_eq!(back, summary);
        let toml = std::fs::read_to_string(dir.scenario_toml()).unwrap();
        assert_eq!(Scenario::from_toml(&toml).unwrap(), scenario);
    }
}
