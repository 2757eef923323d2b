//! Every scenario file shipped in `experiments/configs/` parses and validates, and
//! `digits.toml` spells out exactly the built-in defaults.

use std::path::{Path, PathBuf};

use spddl_experiments::scenario::Scenario;

fn configs_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("configs")
}

fn load(path: &Path) -> Scenario {
    let text = std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: cannot read: {e}", path.display()));
    Scenario::from_toml(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

#[test]
fn every_config_parses_and_validates() {
    let mut files: Vec<PathBuf> = std::fs::read_dir(configs_dir())
        .expect("experiments/configs exists")
        .map(|e| e.expect("directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(files.len() >= 4, "{files:?}");
    for path in &files {
        let scenario = load(path);
        if let Err(e) = scenario.validate() {
            panic!("{}: {e}", path.display());
        }
        // The results directory is named after the scenario: keep it the file's name.
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or_default();
        assert_eq!(scenario.name, stem, "{}", path.display());
    }
}

#[test]
fn digits_toml_is_the_default_scenario() {
    assert_eq!(
        load(&configs_dir().join("digits.toml")),
        Scenario::default()
    );
}

#[test]
fn digits_toml_lists_every_field() {
    let text = std::fs::read_to_string(configs_dir().join("digits.toml")).expect("digits.toml");
    let listed: toml::Table = toml::from_str(&text).expect("digits.toml is TOML");
    let all = toml::Table::try_from(Scenario::default()).expect("a scenario is a table");
    let missing: Vec<&String> = all.keys().filter(|k| !listed.contains_key(*k)).collect();
    assert!(missing.is_empty(), "digits.toml does not list {missing:?}");
}
