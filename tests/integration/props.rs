//! Property tests for the two editors: parse-then-render is the identity, and
//! setting a value changes that value and nothing else, as an independent reader sees it.

use std::collections::BTreeMap;

use aspjwt::compose::{ComposeFile, Source};
use aspjwt::envfile::EnvFile;
use aspjwt::rotate;
use proptest::prelude::*;

fn key() -> impl Strategy<Value = String> {
    prop_oneof![Just("JWT_SECRET".to_string()), Just("SESSION_SECRET".to_string()), "[A-Z_][A-Z0-9_]{0,8}",]
}

fn plain_value() -> impl Strategy<Value = String> {
    "[A-Za-z0-9+/=_.-]{0,20}"
}

/// One line of a .env file in any style compose accepts.
fn line() -> impl Strategy<Value = String> {
    let value = prop_oneof![
        plain_value(),
        "[a-z ]{0,8}[a-z]".prop_map(|v| v),
        plain_value().prop_map(|v| format!("'{v}'")),
        "[a-z #=$]{0,10}".prop_map(|v| format!("\"{v}\"")),
        "[a-z]{1,5}".prop_map(|v| format!("\"{v}\\n{v}\"")),
        "[a-z]{1,5}".prop_map(|v| format!("'{v}\n{v}'")),
    ];
    let comment = prop_oneof![Just(String::new()), "[ ]{1,2}#[ a-z]{0,6}"];
    prop_oneof![
        4 => (prop_oneof![Just(""), Just("export "), Just("  ")], key(), prop_oneof![Just("="), Just(" = "), Just(": "), Just("= ")], value, comment)
            .prop_map(|(p, k, s, v, c)| format!("{p}{k}{s}{v}{c}")),
        1 => "#[ -~]{0,20}",
        1 => Just(String::new()),
        1 => "[ \t]{1,3}",
    ]
}

fn env_text() -> impl Strategy<Value = String> {
    (any::<bool>(), prop::collection::vec(line(), 0..12), prop_oneof![Just("\n"), Just("\r\n")], any::<bool>())
        .prop_map(|(bom, lines, eol, final_eol)| {
            let mut s = if bom { "\u{feff}".to_string() } else { String::new() };
            s.push_str(&lines.join(eol));
            if final_eol && !lines.is_empty() {
                s.push_str(eol);
            }
            s
        })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn env_render_is_identity(text in env_text()) {
        let doc = EnvFile::parse(text.as_bytes()).unwrap();
        prop_assert_eq!(doc.render(), text.as_bytes());
    }

    #[test]
    fn env_any_text_parses_or_errors_without_panic(text in "\\PC{0,80}", bytes in prop::collection::vec(any::<u8>(), 0..64)) {
        if let Ok(doc) = EnvFile::parse(text.as_bytes()) {
            prop_assert_eq!(doc.render(), text.as_bytes());
        }
        if let Ok(doc) = EnvFile::parse(&bytes) {
            prop_assert_eq!(doc.render(), bytes);
        }
    }

    #[test]
    fn env_rotate_changes_exactly_the_targets(text in env_text(), target in key(), new in "[A-Za-z0-9+/]{1,40}={0,2}") {
        let before = EnvFile::parse(text.as_bytes()).unwrap();
        let values: BTreeMap<String, String> = [(target.clone(), new.clone())].into();
        // plan_env re-reads the result itself (own parser and dotenvy) and fails on any other change.
        let plan = rotate::plan_env(std::path::Path::new("p.env"), Some(text.as_bytes()), &values).unwrap();
        let after = EnvFile::parse(&plan.new).unwrap();
        // Independently: every other entry is the same, the target holds the new value.
        for (i, a) in after.entries().iter().enumerate() {
            match before.entries().get(i) {
                Some(b) if b.key == target && b.value.is_some() => prop_assert_eq!(a.value.as_ref().map(|v| v.text.as_str()), Some(new.as_str())),
                Some(b) => prop_assert_eq!(
                    (a.key.as_str(), a.value.as_ref().map(|v| (v.text.as_str(), v.quote))),
                    (b.key.as_str(), b.value.as_ref().map(|v| (v.text.as_str(), v.quote)))
                ),
                None => prop_assert_eq!((a.key.as_str(), a.value.as_ref().map(|v| v.text.as_str())), (target.as_str(), Some(new.as_str()))),
            }
        }
        // Setting twice equals setting once.
        let again = rotate::plan_env(std::path::Path::new("p.env"), Some(&plan.new), &values).unwrap();
        prop_assert_eq!(&again.new, &plan.new);
    }

    #[test]
    fn compose_any_text_parses_or_errors_without_panic(text in "[a-z:\\- \n\"'&*<>\\[\\]{},#=$]{0,80}") {
        if let Ok(doc) = ComposeFile::parse(text.as_bytes()) {
            let values: BTreeMap<String, String> = [("a".to_string(), "N".to_string())].into();
            let _ = doc.rotate(&values);
        }
    }

    #[test]
    fn compose_rotation_reaches_every_service(
        services in prop::collection::vec((any::<bool>(), 0u8..4, "([A-Za-z0-9][A-Za-z0-9+/=_.-]{0,20})?", "[a-z]{1,6}"), 1..6),
    ) {
        let mut text = String::from("services:\n");
        for (i, (list, quote, value, other)) in services.iter().enumerate() {
            let q = ["", "'", "\"", ""][*quote as usize];
            let v = if *quote == 3 { "${JWT_SECRET}".to_string() } else { value.clone() };
            text.push_str(&format!("  s{i}:\n    image: x\n    environment:\n"));
            if *list {
                text.push_str(&format!("      - {q}JWT_SECRET={v}{q}\n      - OTHER={other}\n"));
            } else {
                text.push_str(&format!("      JWT_SECRET: {q}{v}{q}\n      OTHER: {other}\n"));
            }
        }
        let doc = ComposeFile::parse(text.as_bytes()).unwrap();
        let values: BTreeMap<String, String> = [("JWT_SECRET".to_string(), "NEW+/=".to_string())].into();
        let rw = doc.rotate(&values).unwrap();
        let after = ComposeFile::parse(&rw.bytes).unwrap();
        for (a, b) in doc.environment().iter().zip(after.environment()) {
            match (&a.source, a.key.as_str()) {
                (Source::Literal(_), "JWT_SECRET") => prop_assert_eq!(b.source, Source::Literal("NEW+/=".into())),
                _ => prop_assert_eq!(&a.source, &b.source),
            }
        }
        let twice = ComposeFile::parse(&rw.bytes).unwrap().rotate(&values).unwrap();
        prop_assert_eq!(twice.bytes, rw.bytes);
    }
}

fn token_config() -> aspjwt::token::TokenConfig {
    aspjwt::token::TokenConfig {
        access_secret: aspjwt::token::Secret::new("k".repeat(88)),
        refresh_secret: aspjwt::token::Secret::new("r".repeat(88)),
        access_previous: None,
        refresh_previous: None,
        issuer: "aspjwt".into(),
        audience: "asp-cranes-crm".into(),
        access_ttl: std::time::Duration::from_secs(900),
        refresh_ttl: std::time::Duration::from_secs(604_800),
    }
}

fn strict_check() -> aspjwt::token::Check {
    aspjwt::token::Check {
        algorithms: vec![jsonwebtoken::Algorithm::HS256],
        leeway: 0,
        issuer: Some("aspjwt".into()),
        audience: Some("asp-cranes-crm".into()),
        typ: Some(aspjwt::token::Kind::Access),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 500, ..ProptestConfig::default() })]

    /// decode and verify never panic, whatever the input.
    #[test]
    fn token_inspection_never_panics(text in "\\PC{0,200}", dots in "[A-Za-z0-9_\\-]{0,30}\\.[A-Za-z0-9_\\-]{0,60}\\.[A-Za-z0-9_\\-]{0,50}") {
        let cfg = token_config();
        for t in [text.as_str(), dots.as_str()] {
            if let Ok(i) = aspjwt::token::inspect(t) {
                let _ = i.summary(1_800_000_000, 300);
                prop_assert!(!i.verify(&cfg.access_secret, &strict_check(), 1_800_000_000).is_empty());
            }
        }
    }

    /// Any change to a valid token's bytes is detected: it no longer parses or no longer verifies.
    #[test]
    fn tampering_is_always_detected(at in 0usize..400, byte in prop::sample::select(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.".to_vec())) {
        let cfg = token_config();
        let who = aspjwt::token::Subject { sub: "42".into(), email: "a@b.c".into(), role: "admin".into(), sid: "s".into() };
        let now = 1_800_000_000;
        let good = aspjwt::token::sign(&cfg.claims(aspjwt::token::Kind::Access, &who, now, None), &cfg.access_secret);
        let mut bytes = good.clone().into_bytes();
        let at = at % bytes.len();
        prop_assume!(bytes[at] != byte);
        bytes[at] = byte;
        let forged = String::from_utf8(bytes).unwrap();
        if let Ok(i) = aspjwt::token::inspect(&forged) {
            prop_assert!(!i.verify(&cfg.access_secret, &strict_check(), now).is_empty(), "{forged} verified");
        }
        let i = aspjwt::token::inspect(&good).unwrap();
        prop_assert!(i.verify(&cfg.access_secret, &strict_check(), now).is_empty());
    }
}
