//! Hostile values in every scenario field and every field of the deployment's config files:
//! nothing panics, and each value is either usable (the libraries that will take it accept
//! it) or refused by an error that names the field.
//!
//! The fields are not listed here: they are read from the scenario and from the files
//! `deploy init` writes, so a field added later is covered too.

#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;

use proptest::prelude::*;
use spddl_client_trainer::model::{SgdConfig, TrainConfig};
use spddl_crypto::encoding::{PackingParams, Quantizer};
use spddl_crypto::paillier::Dealer;
use spddl_experiments::deploy::{self, AggregatorFile, ClientFile, FogFile, HolderFile};
use spddl_experiments::driver::federation;
use spddl_experiments::scenario::{DatasetName, Scenario};

/// What a run may need at most in these tests (no test here allocates a model).
const MEMORY: u64 = 16 << 30;

const FLOATS: &[&str] = &[
    "nan",
    "-nan",
    "inf",
    "-inf",
    "-1.0",
    "-0.0",
    "0.0",
    "1e-320",
    "1e-30",
    "0.5",
    "1.0",
    "5.0",
    "100.0",
    "1e300",
    "1.7976931348623157e308",
];

const INTEGERS: &[&str] = &[
    "0",
    "1",
    "2",
    "-1",
    "255",
    "65535",
    "65536",
    "4294967295",
    "4294967296",
    "100000",
    "9223372036854775807",
    "18446744073709551615",
];

const STRINGS: &[&str] = &[
    "\"\"",
    "\" \"",
    "\"x\"",
    "\"/nonexistent/spddl\"",
    "\"../..\"",
    "\"\\u0000\"",
    "mnist",
    "fashion-mnist",
    "mlp",
    "shards",
    "dirichlet",
    "fogs",
    "dedicated",
    "fedadam",
];

const ARRAYS: &[&str] = &[
    "[]",
    "[0]",
    "[1]",
    "[128]",
    "[100000, 100000]",
    "[9223372036854775807]",
    "[4294967296, 4294967296]",
    "[1, 1, 1, 1, 1, 1, 1, 1]",
    "[-1]",
    "[1.5]",
];

fn long_name() -> String {
    format!("\"{}\"", "a".repeat(300))
}

/// Hostile TOML values of the same type as `value`.
fn hostile(value: &toml::Value) -> Vec<String> {
    let list = match value {
        toml::Value::Float(_) => FLOATS,
        toml::Value::Integer(_) => INTEGERS,
        toml::Value::String(_) => STRINGS,
        toml::Value::Array(_) => ARRAYS,
        other => panic!("a scenario field of type {}", other.type_str()),
    };
    let mut values: Vec<String> = list.iter().map(|s| s.to_string()).collect();
    if value.is_str() {
        values.push(long_name());
    }
    values
}

/// Every `(field, value)` pair to try.
fn scenario_cases() -> Vec<(String, String)> {
    let table = toml::Table::try_from(Scenario::default()).unwrap();
    table
        .iter()
        .flat_map(|(k, v)| hostile(v).into_iter().map(move |h| (k.clone(), h)))
        .collect()
}

/// A scenario that validated must be one every library downstream accepts: these are the
/// constructors a run calls with its values (a refusal here is a hole in the validation).
fn usable(s: &Scenario) {
    let shown = format!("{s:?}");
    Quantizer::new(s.clip_norm, s.quant_bits).unwrap_or_else(|e| panic!("{e}: {shown}"));
    PackingParams::new(s.quant_bits, s.clients as u64, s.key_bits as u32)
        .unwrap_or_else(|e| panic!("{e}: {shown}"));
    Dealer::check_threshold(s.threshold, s.holders).unwrap_or_else(|e| panic!("{e}: {shown}"));
    TrainConfig {
        epochs: s.local_epochs as usize,
        batch_size: s.batch_size as usize,
        sgd: SgdConfig {
            lr: s.learning_rate as f32,
            momentum: s.momentum as f32,
            weight_decay: s.weight_decay as f32,
        },
        proximal_mu: (s.proximal_mu > 0.0).then_some(s.proximal_mu as f32),
    }
    .validate()
    .unwrap_or_else(|e| panic!("{e}: {shown}"));
    assert!(s.memory_estimate().is_some(), "{shown}");
    if s.dataset == DatasetName::Digits {
        // Loads and partitions the embedded set, builds the model's spec (not the model).
        let fed = federation(s).unwrap_or_else(|e| panic!("{e:#}: {shown}"));
        fed.spec
            .validate()
            .unwrap_or_else(|e| panic!("{e}: {shown}"));
        assert_eq!(fed.client_data.len(), s.clients);
    }
}

/// Applies the assignments and validates: `Err` when the scenario is refused by an error
/// that names none of them; panics when a value that passed is refused downstream.
fn check(assignments: &[(String, String)]) -> Result<(), String> {
    let mut s = Scenario::default();
    for (field, value) in assignments {
        if let Err(e) = s.set(&format!("{field}={value}")) {
            let e = e.to_string();
            assert!(e.contains(field.as_str()), "{field}={value}: {e}");
            assert!(!e.contains('\n'), "{e}");
            return Ok(());
        }
    }
    match s.validate_within(MEMORY) {
        Ok(()) => {
            usable(&s);
            Ok(())
        }
        Err(p) => {
            let e = p.to_string();
            for problem in p.problems() {
                let line = problem.to_string();
                assert!(!line.contains('\n'), "{line}");
            }
            if assignments.iter().any(|(f, _)| e.contains(f.as_str())) {
                Ok(())
            } else {
                Err(format!(
                    "{assignments:?}: the error names none of them: {e}"
                ))
            }
        }
    }
}

#[test]
fn every_scenario_field_with_each_hostile_value_is_refused_by_name_or_usable() {
    let cases = scenario_cases();
    assert!(cases.len() > 300, "{}", cases.len());
    let mut refused = 0;
    for (field, value) in &cases {
        let mut s = Scenario::default();
        if s.set(&format!("{field}={value}")).is_err() || s.validate_within(MEMORY).is_err() {
            refused += 1;
        }
        check(&[(field.clone(), value.clone())]).unwrap();
    }
    println!("{} cases, {refused} refused, all by name", cases.len());
    // Each case of the issue, by name.
    for (field, value, says) in [
        ("rounds", "0", "rounds = 0: must be at least 1"),
        ("learning_rate", "-0.1", "learning_rate = -0.1"),
        ("batch_size", "0", "batch_size = 0"),
        ("momentum", "5", "momentum = 5"),
        ("clip_norm", "nan", "clip_norm = NaN"),
        ("quant_bits", "0", "quant_bits = 0"),
        ("quant_bits", "64", "quant_bits = 64"),
        ("hidden", "[100000, 100000]", "10007600010 parameters"),
    ] {
        let mut s = Scenario::default();
        if field == "hidden" {
            s.set("model=mlp").unwrap();
        }
        s.set(&format!("{field}={value}")).unwrap();
        let e = s.validate().unwrap_err();
        assert_eq!(e.problems().len(), 1, "{e}");
        assert!(e.to_string().contains(says), "{e}");
    }
}

#[test]
fn several_bad_values_are_each_said_once() {
    let mut s = Scenario::default();
    for a in [
        "rounds=0",
        "learning_rate=-1",
        "batch_size=0",
        "momentum=5",
        "clip_norm=nan",
        "quant_bits=64",
    ] {
        s.set(a).unwrap();
    }
    let e = s.validate().unwrap_err();
    let fields: Vec<&str> = e.problems().iter().map(|p| p.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "rounds",
            "batch_size",
            "learning_rate",
            "momentum",
            "clip_norm",
            "quant_bits"
        ],
        "{e}"
    );
}

#[test]
fn a_missing_dataset_directory_is_one_problem_naming_it() {
    let mut s = Scenario::default();
    s.set("dataset=mnist").unwrap();
    s.set("data_dir=\"/nonexistent/spddl\"").unwrap();
    assert!(s.validate().is_ok(), "validate reads no file");
    let e = s.validate_before_run().unwrap_err();
    assert_eq!(e.problems().len(), 1, "{e}");
    assert!(
        e.to_string()
            .starts_with("data_dir = \"/nonexistent/spddl\": no MNIST in /nonexistent/spddl/mnist"),
        "{e}"
    );
}

#[test]
fn the_memory_a_model_needs_is_refused_above_the_limit_with_the_figure() {
    let mut s = Scenario::default();
    s.set("model=mlp").unwrap();
    s.set("hidden=[4096]").unwrap();
    let needs = s.memory_estimate().unwrap();
    assert!(s.validate_within(needs as u64).is_ok());
    let e = s.validate_within(needs as u64 - 1).unwrap_err().to_string();
    assert!(
        e.starts_with("hidden = [4096]: the model has 307210 parameters"),
        "{e}"
    );
    assert!(e.contains("GiB"), "{e}");
    s.hidden = vec![usize::MAX, usize::MAX];
    let e = s.validate_within(u64::MAX).unwrap_err().to_string();
    assert!(e.contains("hidden = ") && e.contains("overflows"), "{e}");
}

fn assignment() -> impl Strategy<Value = (String, String)> {
    let cases = scenario_cases();
    (0..cases.len()).prop_map(move |i| cases[i].clone())
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 128,
        rng_seed: proptest::test_runner::RngSeed::Fixed(14),
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    /// Several hostile fields at once: no panic, and either usable or refused naming at
    /// least one of them.
    #[test]
    fn hostile_scenarios_never_panic(assignments in proptest::collection::vec(assignment(), 1..6)) {
        check(&assignments).map_err(TestCaseError::fail)?;
    }

    /// Any seconds and attempts in an aggregator config: refused by name, or usable as the
    /// durations the aggregator makes of them.
    #[test]
    fn any_waits_in_an_aggregator_config(
        collect in any::<f64>(),
        share in any::<f64>(),
        linger in any::<f64>(),
        attempts in any::<u32>(),
    ) {
        let mut f: AggregatorFile = toml::from_str(AGGREGATOR).unwrap();
        (f.collect_timeout_s, f.share_timeout_s, f.linger_s, f.round_attempts) =
            (collect, share, linger, attempts);
        match f.validate() {
            Ok(()) => {
                let _ = std::time::Duration::from_secs_f64(f.linger_s);
                let _ = std::time::Duration::from_secs_f64(f.collect_timeout_s);
                let _ = std::time::Duration::from_secs_f64(f.share_timeout_s);
                prop_assert!(f.round_attempts >= 1);
            }
            Err(e) => {
                let e = e.to_string();
                prop_assert!(
                    ["collect_timeout_s", "share_timeout_s", "linger_s", "round_attempts"]
                        .iter()
                        .any(|k| e.contains(k)),
                    "{}", e
                );
            }
        }
    }
}

const AGGREGATOR: &str = r#"
listen = "127.0.0.1:50051"
scenario = "scenario.toml"
public_key = "keys/public.json"
identity = "identities/aggregator.key"
registry = "registry.json"
state = "state/aggregator.redb"
collect_timeout_s = 60.0
share_timeout_s = 30.0
linger_s = 3.0
round_attempts = 3
fogs = [{ id = 0, address = "127.0.0.1:50052" }]
"#;

const CONFIG_STRINGS: &[&str] = &[
    "",
    " ",
    "x",
    "127.0.0.1:0",
    "127.0.0.1:65536",
    "127.0.0.1",
    "localhost:1",
    ":1",
    "missing.json",
    "/nonexistent/spddl/x",
    "keys",
    "state/other.redb",
];

/// Every field of a config table, nested ones as `tls.ca` and `fogs[0].address`, with its
/// value.
fn config_fields(table: &toml::Table) -> Vec<(Vec<String>, toml::Value)> {
    let mut out = Vec::new();
    for (k, v) in table {
        match v {
            toml::Value::Table(t) => {
                for (k2, v2) in t {
                    out.push((vec![k.clone(), k2.clone()], v2.clone()));
                }
            }
            toml::Value::Array(items) => {
                for (i, item) in items.iter().enumerate() {
                    if let toml::Value::Table(t) = item {
                        for (k2, v2) in t {
                            out.push((vec![k.clone(), i.to_string(), k2.clone()], v2.clone()));
                        }
                    }
                }
            }
            _ => out.push((vec![k.clone()], v.clone())),
        }
    }
    out
}

fn field_name(path: &[String]) -> String {
    match path {
        [k] => k.clone(),
        [k, i, k2] => format!("{k}[{i}].{k2}"),
        [k, k2] => format!("{k}.{k2}"),
        _ => unreachable!(),
    }
}

fn set_field(table: &mut toml::Table, path: &[String], value: toml::Value) {
    match path {
        [k] => {
            table.insert(k.clone(), value);
        }
        [k, k2] => {
            table[k].as_table_mut().unwrap().insert(k2.clone(), value);
        }
        [k, i, k2] => {
            let items = table[k].as_array_mut().unwrap();
            items[i.parse::<usize>().unwrap()]
                .as_table_mut()
                .unwrap()
                .insert(k2.clone(), value);
        }
        _ => unreachable!(),
    }
}

fn config_values(value: &toml::Value) -> Vec<toml::Value> {
    let parse = |s: &str| -> toml::Value {
        toml::from_str::<toml::Table>(&format!("v = {s}")).unwrap()["v"].clone()
    };
    match value {
        toml::Value::Float(_) => FLOATS.iter().map(|s| parse(s)).collect(),
        // TOML integers are i64: the larger ones go in as floats and strings, refused by type.
        toml::Value::Integer(_) => INTEGERS
            .iter()
            .map(|s| {
                s.parse::<i64>()
                    .map_or_else(|_| toml::Value::String(s.to_string()), toml::Value::Integer)
            })
            .collect(),
        toml::Value::String(_) => CONFIG_STRINGS
            .iter()
            .map(|s| toml::Value::String(s.to_string()))
            .collect(),
        other => panic!("a config field of type {}", other.type_str()),
    }
}

/// Writes each hostile value of each field of `file` into a copy beside it and runs `setup`
/// on the copy: no panic; a copy that does not parse is refused on one line naming its line;
/// one whose value `validate` refuses is refused by the setup with a line naming the field.
fn every_field_of<T: serde::de::DeserializeOwned>(
    dir: &Path,
    file: &str,
    validate: impl Fn(&T) -> bool,
    setup: impl Fn(&Path) -> anyhow::Result<()>,
) -> (usize, usize) {
    let text = std::fs::read_to_string(dir.join(file)).unwrap();
    let table: toml::Table = toml::from_str(&text).unwrap();
    setup(&dir.join(file)).unwrap_or_else(|e| panic!("{file} as written: {e:#}"));
    let copy = dir.join(format!("hostile-{file}"));
    let (mut cases, mut refused) = (0, 0);
    for (path, value) in config_fields(&table) {
        let field = field_name(&path);
        for hostile in config_values(&value) {
            let mut t = table.clone();
            set_field(&mut t, &path, hostile.clone());
            let written = toml::to_string(&t).unwrap();
            std::fs::write(&copy, &written).unwrap();
            cases += 1;
            let shown = format!("{file}: {field} = {hostile}");
            let result = setup(&copy);
            let parsed: Result<T, _> = toml::from_str(&written);
            match parsed {
                Err(_) => {
                    let e = format!("{:#}", result.unwrap_err());
                    assert!(e.contains("not a valid config: line "), "{shown}: {e}");
                    assert!(!e.contains('\n'), "{shown}: {e}");
                    refused += 1;
                }
                Ok(f) if !validate(&f) => {
                    let e = format!("{:#}", result.expect_err(&shown));
                    assert!(e.contains(&field), "{shown}: {e}");
                    assert_eq!(e.lines().count(), 1, "{shown}: {e}");
                    refused += 1;
                }
                // Valid values: the setup may still refuse (a file that is not there, an id
                // the registry does not know), but it did not panic.
                Ok(_) => {
                    if let Err(e) = result {
                        let e = format!("{e:#}");
                        assert!(!e.contains('\n'), "{shown}: {e}");
                        refused += 1;
                    }
                }
            }
        }
    }
    (cases, refused)
}

#[test]
fn every_deploy_config_field_with_each_hostile_value_is_refused_by_name_or_usable() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = common::init(tmp.path(), 30.0);
    let report = [
        every_field_of::<AggregatorFile>(
            &dir,
            "aggregator.toml",
            |f| f.validate().is_ok(),
            |p| deploy::aggregator_setup(p, false, false).map(drop),
        ),
        every_field_of::<FogFile>(
            &dir,
            "fog-0.toml",
            |f| f.validate().is_ok(),
            |p| deploy::fog_setup(p, false).map(drop),
        ),
        every_field_of::<ClientFile>(
            &dir,
            "client-0.toml",
            |f| f.validate().is_ok(),
            |p| deploy::client_setup(p, false).map(drop),
        ),
        every_field_of::<HolderFile>(
            &dir,
            "holder-1.toml",
            |f| f.validate().is_ok(),
            |p| deploy::holder_setup(p, false, false).map(drop),
        ),
    ];
    println!("(cases, refused) for aggregator, fog, client, holder: {report:?}");
}
