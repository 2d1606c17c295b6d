//! Any bytes as a token: extraction, inspection, the summary and verification never
//! panic, and nothing verifies with a secret it was not signed with.
#![no_main]
use aspjwt::token::{self, Check, Kind, KeyRing, Secret};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(raw) = token::extract(data, "access_token") else { return };
    let Ok(t) = token::inspect(&raw) else { return };
    let _ = t.summary(1_800_000_000, 300);
    let check = Check { algorithms: vec![jsonwebtoken::Algorithm::HS256], leeway: 60, issuer: None, audience: None, typ: Some(Kind::Access) };
    let failures = t.verify_ring(&KeyRing::new(Secret::new("fuzz-secret-that-no-input-was-signed-with")), &check, 1_800_000_000);
    assert!(!failures.is_empty());
});
