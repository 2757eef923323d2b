//! Protobuf bytes → `pb::Upload` → `upload_from_wire`; an accepted upload converts back to
//! the same message.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message;
use spddl_proto::wire::{pb, upload_from_wire, upload_to_wire};

fuzz_target!(|data: &[u8]| {
    let pk = spddl_fuzz::public_key();
    let Ok(w) = pb::Upload::decode(data) else {
        return;
    };
    if let Ok(upload) = upload_from_wire(pk, &w) {
        assert_eq!(upload_to_wire(pk, &upload), w);
    }
});
