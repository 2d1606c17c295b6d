//! Criterion benchmarks of the pure work: `cargo bench --bench core`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::Path;
use std::time::Duration;

use aspjwt::check;
use aspjwt::compose::ComposeFile;
use aspjwt::config::Settings;
use aspjwt::envfile::EnvFile;
use aspjwt::rotate;
use aspjwt::secrets::{self, Encoding};
use aspjwt::token::{self, Check, Kind, Secret, Subject, TokenConfig};
use criterion::{Criterion, criterion_group, criterion_main};

/// A .env of `lines` lines in four styles, with two of the secrets at the end.
fn env_lines(lines: usize) -> String {
    let mut s = String::from("# a large .env\n");
    for i in 0..lines - 3 {
        match i % 4 {
            0 => s.push_str(&format!("KEY_{i}=value-{i}\n")),
            1 => s.push_str(&format!("export QUOTED_{i}=\"quoted value {i}\" # note\n")),
            2 => s.push_str(&format!("SINGLE_{i}='single {i}'\n")),
            _ => s.push_str("# comment line\n"),
        }
    }
    s.push_str("JWT_SECRET=old\nJWT_REFRESH_SECRET=old2\n");
    s
}

fn compose_1000() -> String {
    let mut s = String::from("x-env: &env\n  SESSION_SECRET: \"shared-old\"\nservices:\n");
    for i in 0..1000 {
        if i % 2 == 0 {
            s.push_str(&format!("  svc{i}:\n    image: crm:{i}\n    environment:\n      <<: *env\n      JWT_SECRET: \"old\"\n      PORT: \"{i}\"\n"));
        } else {
            s.push_str(&format!("  svc{i}:\n    image: crm:{i}\n    environment:\n      - JWT_SECRET=old\n      - JWT_REFRESH_SECRET=${{JWT_REFRESH_SECRET}}\n"));
        }
    }
    s
}

/// A compose file of about `lines` lines: five per service.
fn compose_lines(lines: usize) -> String {
    let mut s = String::from("services:\n");
    for i in 0..lines / 5 {
        s.push_str(&format!(
            "  svc{i}:\n    image: crm:{i}\n    environment:\n      JWT_SECRET: \"old\"\n      PORT: \"{i}\"\n"
        ));
    }
    s
}

fn values() -> BTreeMap<String, String> {
    ["JWT_SECRET", "JWT_REFRESH_SECRET", "SESSION_SECRET"]
        .iter()
        .map(|k| (k.to_string(), secrets::generate_os(64, Encoding::Base64)))
        .collect()
}

fn benches(c: &mut Criterion) {
    c.bench_function("secrets: generate a 64-byte secret", |b| {
        b.iter(|| secrets::generate_os(black_box(64), Encoding::Base64))
    });

    let v = values();
    // Linear in the file: 100,000 lines should take about ten times 10,000.
    for (lines, label) in [(10_000, "10,000"), (100_000, "100,000")] {
        let env = env_lines(lines);
        c.bench_function(&format!("check: .env of {label} lines (parse, interpolate, judge)"), |b| {
            b.iter(|| {
                let doc = EnvFile::parse(black_box(env.as_bytes())).unwrap();
                let settings = Settings::from_doc(&doc, ".env").unwrap();
                let mut findings = check::duplicates(&doc, ".env");
                findings.extend(check::backticks(&doc, ".env"));
                findings.extend(check::secrets(&settings.values));
                findings.extend(check::expiries(&settings.values));
                findings.extend(check::rollover(&settings.values, 0));
                findings
            })
        });
        c.bench_function(&format!("rotate: .env of {label} lines (parse, edit, verify, render)"), |b| {
            b.iter(|| rotate::plan_env(Path::new(".env"), Some(black_box(env.as_bytes())), &v).unwrap())
        });
        let compose = compose_lines(lines);
        c.bench_function(&format!("check: compose file of {label} lines (parse, environments, judge)"), |b| {
            b.iter(|| {
                let doc = ComposeFile::parse(black_box(compose.as_bytes())).unwrap();
                check::compose("dc.yml", &doc.environment(), &|_| None, "the environment")
            })
        });
    }
    let compose = compose_1000();
    c.bench_function("rotate: compose file with 1,000 services (parse, edit, verify, render)", |b| {
        b.iter(|| ComposeFile::parse(black_box(compose.as_bytes())).unwrap().rotate(&v).unwrap())
    });

    let cfg = TokenConfig {
        access_secret: Secret::new(secrets::generate_os(64, Encoding::Base64)),
        refresh_secret: Secret::new(secrets::generate_os(64, Encoding::Base64)),
        access_previous: None,
        refresh_previous: None,
        issuer: "aspjwt".into(),
        audience: "asp-cranes-crm".into(),
        access_ttl: Duration::from_secs(900),
        refresh_ttl: Duration::from_secs(604_800),
    };
    let who = Subject {
        sub: "42".into(),
        email: "dispatch@aspcranes.example".into(),
        role: "operator".into(),
        sid: token::random_id(),
    };
    let now = 1_800_000_000;
    let claims = cfg.claims(Kind::Access, &who, now, None);
    c.bench_function("token: sign (HS256)", |b| b.iter(|| token::sign(black_box(&claims), &cfg.access_secret)));
    let jwt = token::sign(&claims, &cfg.access_secret);
    let check = Check {
        algorithms: vec![jsonwebtoken::Algorithm::HS256],
        leeway: 60,
        issuer: Some("aspjwt".into()),
        audience: Some("asp-cranes-crm".into()),
        typ: Some(Kind::Access),
    };
    c.bench_function("token: decode and verify (HS256, all claim rules)", |b| {
        b.iter(|| token::inspect(black_box(&jwt)).unwrap().verify_ring(&cfg.ring(Kind::Access), &check, now))
    });

    let mut slow = c.benchmark_group("password");
    slow.sample_size(10);
    slow.bench_function("argon2id hash (m=19456 KiB, t=2, p=1): the cost of a login", |b| {
        b.iter(|| aspjwt::password::hash(black_box("correct horse battery staple")))
    });
    slow.finish();
}

criterion_group!(core, benches);
criterion_main!(core);
