//! Any bytes: parsing and rotating a compose file never panics, and a rotation that
//! succeeds passed its own serde_yaml verification.
#![no_main]
use std::collections::BTreeMap;

use aspjwt::compose::ComposeFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = ComposeFile::parse(data) else { return };
    let targets: BTreeMap<String, String> = [("JWT_SECRET".to_string(), "NEW".to_string())].into();
    if let Ok(rw) = doc.rotate(&targets) {
        ComposeFile::parse(&rw.bytes).expect("a rotated file parses");
    }
});
