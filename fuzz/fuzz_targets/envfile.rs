//! Any bytes: parse never panics; a parsed file renders to the same bytes; setting a
//! key then re-parsing reads the new value back and keeps every other entry.
#![no_main]
use aspjwt::envfile::EnvFile;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(doc) = EnvFile::parse(data) else { return };
    assert_eq!(doc.render(), data);
    let mut edited = doc.clone();
    if edited.set("JWT_SECRET", "RoTaTeD+value/0123456789=").is_ok() {
        let again = EnvFile::parse(&edited.render()).expect("an edited file parses");
        assert_eq!(again.get("JWT_SECRET"), Some("RoTaTeD+value/0123456789="));
        let others = |d: &EnvFile| d.entries().iter().filter(|e| e.key != "JWT_SECRET").map(|e| (e.key.clone(), e.value.as_ref().map(|v| v.text.clone()))).collect::<Vec<_>>();
        assert_eq!(others(&doc), others(&again));
    }
});
