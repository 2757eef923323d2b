//! Text → the deployment's config parsers: `Scenario::from_toml` (then `validate`, and a
//! TOML round trip), the `aggregator.toml`/`fog-*.toml`/`client-*.toml`/`holder-*.toml`
//! layouts and their `validate`, and `registry.json` down to the verifying keys
//! (`RegistryFile::to_registry`). A value that validates must make the durations and the
//! encoder parameters the processes build from it without a panic.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use spddl_experiments::deploy::{AggregatorFile, ClientFile, FogFile, HolderFile, RegistryFile};
use spddl_experiments::scenario::Scenario;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(scenario) = Scenario::from_toml(text) {
        if scenario.validate_within(16 << 30).is_ok() {
            spddl_crypto::encoding::Quantizer::new(scenario.clip_norm, scenario.quant_bits)
                .expect("a validated scenario quantizes");
            spddl_crypto::encoding::PackingParams::new(
                scenario.quant_bits,
                scenario.clients as u64,
                scenario.key_bits as u32,
            )
            .expect("a validated scenario packs");
        }
        let written = toml::to_string(&scenario).expect("a scenario serializes");
        let again = Scenario::from_toml(&written).expect("a written scenario parses");
        // Debug, not PartialEq: a NaN field is the same NaN after the trip.
        assert_eq!(format!("{again:?}"), format!("{scenario:?}"));
    }
    if let Ok(f) = toml::from_str::<AggregatorFile>(text)
        && f.validate().is_ok()
    {
        for s in [f.collect_timeout_s, f.share_timeout_s, f.linger_s] {
            let _ = Duration::from_secs_f64(s);
        }
    }
    if let Ok(f) = toml::from_str::<FogFile>(text) {
        let _ = f.validate();
    }
    if let Ok(f) = toml::from_str::<ClientFile>(text)
        && f.validate().is_ok()
    {
        let _ = Duration::from_secs_f64(f.upload_timeout_s);
    }
    if let Ok(f) = toml::from_str::<HolderFile>(text) {
        let _ = f.validate();
    }
    if let Ok(registry) = serde_json::from_str::<RegistryFile>(text) {
        let _ = registry.to_registry(spddl_fuzz::public_key());
    }
});
