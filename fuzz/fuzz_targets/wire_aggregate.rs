//! Protobuf bytes → `pb::FogAggregate` → `aggregate_from_wire`; an accepted aggregate converts
//! back to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use spddl_proto::wire::{aggregate_from_wire, aggregate_to_wire, pb};

fuzz_target!(|data: &[u8]| {
    let pk = spddl_fuzz::public_key();
    let Ok(w) = pb::FogAggregate::decode(data) else {
        return;
    };
    if let Ok(aggregate) = aggregate_from_wire(pk, &w) {
        assert_eq!(aggregate_to_wire(pk, &aggregate), w);
    }
});
