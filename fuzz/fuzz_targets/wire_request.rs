//! Protobuf bytes → `pb::DecryptionRequest` → `request_from_wire`; an accepted request
//! converts back to the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use spddl_proto::wire::{pb, request_from_wire, request_to_wire};

fuzz_target!(|data: &[u8]| {
    let pk = spddl_fuzz::public_key();
    let Ok(w) = pb::DecryptionRequest::decode(data) else {
        return;
    };
    if let Ok(request) = request_from_wire(pk, &w) {
        assert_eq!(request_to_wire(pk, &request), w);
    }
});
