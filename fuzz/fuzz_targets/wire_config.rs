//! Protobuf bytes → `pb::RoundConfig` → `config_from_wire`; an accepted config survives the
//! trip back to the wire and in again (`batch_size` 0 is read as 1, so the wire message
//! itself may differ).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use spddl_proto::wire::{config_from_wire, config_to_wire, pb};

fuzz_target!(|data: &[u8]| {
    let Ok(w) = pb::RoundConfig::decode(data) else {
        return;
    };
    if let Ok((config, signature)) = config_from_wire(&w) {
        let again = config_from_wire(&config_to_wire(&config, &signature));
        assert_eq!(again, Ok((config, signature)));
    }
});
