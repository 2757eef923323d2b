//! Text → the deployment's config parsers: `Scenario::from_toml` (then `validate`, and a
//! TOML round trip), the `aggregator.toml`/`fog-*.toml`/`client-*.toml`/`holder-*.toml`
//! layouts, and `registry.json` down to the verifying keys (`RegistryFile::to_registry`).
#![no_main]

use libfuzzer_sys::fuzz_target;
use spddl_experiments::deploy::{AggregatorFile, ClientFile, FogFile, HolderFile, RegistryFile};
use spddl_experiments::scenario::Scenario;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(scenario) = Scenario::from_toml(text) {
        let _ = scenario.validate();
        let written = toml::to_string(&scenario).expect("a scenario serializes");
        let again = Scenario::from_toml(&written).expect("a written scenario parses");
        // Debug, not PartialEq: a NaN field is the same NaN after the trip.
        assert_eq!(format!("{again:?}"), format!("{scenario:?}"));
    }
    let _ = toml::from_str::<AggregatorFile>(text);
    let _ = toml::from_str::<FogFile>(text);
    let _ = toml::from_str::<ClientFile>(text);
    let _ = toml::from_str::<HolderFile>(text);
    if let Ok(registry) = serde_json::from_str::<RegistryFile>(text) {
        let _ = registry.to_registry(spddl_fuzz::public_key());
    }
});
