//! Protobuf bytes → `pb::ShareResponse` → `share_from_wire`; an accepted share survives the
//! trip back to the wire and in again (`proof_z` is not fixed-width, so the wire message
//! itself may differ).
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use spddl_proto::wire::{pb, share_from_wire, share_to_wire};

fuzz_target!(|data: &[u8]| {
    let pk = spddl_fuzz::public_key();
    let Ok(w) = pb::ShareResponse::decode(data) else {
        return;
    };
    if let Ok(share) = share_from_wire(pk, &w) {
        assert_eq!(share_from_wire(pk, &share_to_wire(pk, &share)), Ok(share));
    }
});
