//! `aspjwt health` against a stand-in for the CRM's own Node/Express backend
//! (tests/node/crm-backend.js: express, cookie-parser, helmet, express-rate-limit,
//! jsonwebtoken), healthy and with each broken promise (issue 16).

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use serde_json::Value;

use crate::health::{field, with_status};
use crate::service::{PASSWORD, run_env};
use crate::util::Dir;

const PROBE: &str = "probe@aspcranes.example";

/// The Node backend, on an ephemeral loopback port, until dropped.
struct Crm {
    child: Child,
    url: String,
}

impl Crm {
    /// Starts the backend with the secrets of `dir`'s `.env` and the given fault.
    fn start(dir: &Dir, fault: &str) -> Crm {
        let node_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node");
        assert!(
            Path::new(node_dir).join("node_modules/express").is_dir(),
            "express is missing: run `npm ci --prefix tests/node` (make test does)"
        );
        let mut child = Command::new("node")
            .arg(format!("{node_dir}/crm-backend.js"))
            .env("ENV_FILE", dir.path(".env"))
            .env("PROBE_EMAIL", PROBE)
            .env("PROBE_PASSWORD", PASSWORD)
            .env("FAULT", fault)
            .env_remove("NODE_ENV")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("node runs");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap()).read_line(&mut line).unwrap();
        let port = line.trim().strip_prefix("listening ").unwrap_or_else(|| panic!("the backend said {line:?}"));
        Crm { child, url: format!("http://127.0.0.1:{port}") }
    }
}

impl Drop for Crm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn configured() -> Dir {
    let d = Dir::new();
    d.run(&["rotate", "--env-file", ".env", "--create", "-q"]).code(0);
    d
}

/// `aspjwt --json health` with the probe account and `.env`, plus `extra`.
fn health(d: &Dir, url: &str, extra: &[&str]) -> crate::util::Output {
    let mut args = vec![
        "--json",
        "health",
        "--url",
        url,
        "--env-file",
        ".env",
        "--email",
        PROBE,
        "--password-env",
        "PROBE_PW",
        "--timeout",
        "5s",
    ];
    args.extend(extra);
    run_env(d, &args, &[("PROBE_PW", PASSWORD)])
}

fn detail(j: &Value, name: &str) -> String {
    field(j, name, "detail")
}

#[test]
fn a_healthy_node_backend_passes_with_its_hardening_gaps_as_warnings() {
    let d = configured();
    let crm = Crm::start(&d, "none");
    let j = health(&d, &crm.url, &[]).code(0).json();
    assert_eq!(j["ok"], true);
    assert_eq!(j["backend"], "unknown");
    assert!(with_status(&j, "fail").is_empty(), "{j}");
    // What this backend lacks, by design of the CRM: RFC 6750's header and a CSRF cookie.
    assert_eq!(with_status(&j, "warn"), ["token-info without a token", "CSRF cookie"], "{j}");
    assert_eq!(j["warnings"], 2);
    // The deep check ran to the end: its tokens (typ spelled `type`) verify with .env,
    // token-info's shape is read, the spent refresh token is refused and ends the session,
    // and a second session shows logout ends it.
    let passed = with_status(&j, "pass");
    for name in [
        "security headers",
        "login",
        "tokens match the configuration",
        "token-info",
        "refresh",
        "rotated tokens match the configuration",
        "token-info after refresh",
        "previous refresh token",
        "reuse ends the session",
        "login for the logout check",
        "logout",
        "refresh after logout",
    ] {
        assert!(passed.iter().any(|p| p == name), "{name} did not pass: {j}");
    }
    assert_eq!(detail(&j, "logout"), "200");
    let left: i64 = detail(&j, "token-info")
        .strip_prefix("200, expires in ")
        .and_then(|r| r.strip_suffix(" s"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{j}"));
    assert!((880..=900).contains(&left), "15 minutes, less the time the run took: {j}");

    // Human output names the backend and counts the warnings.
    let human = run_env(
        &d,
        &["health", "--url", &crm.url, "--env-file", ".env", "--email", PROBE, "--password-env", "PROBE_PW"],
        &[("PROBE_PW", PASSWORD)],
    );
    let last = human.code(0).stdout.lines().last().unwrap().to_string();
    assert!(last.starts_with("healthy (unknown): 17 checks passed, 2 warnings in "), "{last}");

    // --strict: a warning fails.
    let strict = health(&d, &crm.url, &["--strict"]).code(1).json();
    assert_eq!((strict["ok"].as_bool(), strict["strict"].as_bool()), (Some(false), Some(true)));

    // --quick with the configuration: it cannot compare key ids this backend does not publish.
    let quick = run_env(&d, &["--json", "health", "--url", &crm.url, "--quick", "--env-file", ".env"], &[]);
    let quick = quick.code(0).json();
    assert!(detail(&quick, "signing keys").starts_with("the service publishes no key ids"), "{quick}");
    assert_eq!(with_status(&quick, "warn"), ["signing keys", "token-info without a token"], "{quick}");
}

#[test]
fn a_node_backend_with_other_secrets_fails() {
    let d = configured();
    let crm = Crm::start(&d, "none");
    let other = d.run(&["generate"]).stdout.clone();
    d.write(".env", other); // the backend read the old secrets at start
    let j = health(&d, &crm.url, &[]).code(1).json();
    assert_eq!(
        with_status(&j, "fail"),
        ["tokens match the configuration", "rotated tokens match the configuration"],
        "{j}"
    );
    assert_eq!(
        detail(&j, "tokens match the configuration"),
        "service signs with a different JWT_SECRET than .env; service signs with a different JWT_REFRESH_SECRET than .env"
    );
}

#[test]
fn each_broken_promise_of_a_node_backend_fails_its_check() {
    let d = configured();
    for (fault, check, got) in [
        ("no-rotate", "refresh", "the same one, or none"),
        ("accept-previous", "previous refresh token", "200: still accepted"),
        ("logout-keeps", "refresh after logout", "200: the session lives on"),
    ] {
        let crm = Crm::start(&d, fault);
        let j = health(&d, &crm.url, &[]).code(1).json();
        assert_eq!(with_status(&j, "fail"), [check], "{fault}: {j}");
        let c = j["checks"].as_array().unwrap().iter().find(|c| c["name"] == check).unwrap();
        assert_eq!(c["got"], got, "{fault}: {j}");
        // The run went on after the failure, to the last step.
        let names: Vec<&str> = j["checks"].as_array().unwrap().iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert!(names.contains(&"logout"), "{fault}: {j}");
    }
    // The tokens a refresh hands out are held to the configuration as the login's are.
    let crm = Crm::start(&d, "rotate-other-key");
    let j = health(&d, &crm.url, &[]).code(1).json();
    assert!(with_status(&j, "fail").contains(&"rotated tokens match the configuration".to_string()), "{j}");
    // A token whose typ and type disagree is refused: a verifier reading either is fooled.
    let crm = Crm::start(&d, "typ-disagrees");
    let j = health(&d, &crm.url, &[]).code(1).json();
    assert!(with_status(&j, "fail").contains(&"tokens match the configuration".to_string()), "{j}");
    assert!(detail(&j, "tokens match the configuration").contains("typ"), "{j}");
    // Tokens that outlive the configured lifetimes (ten years) fail, rotated ones too.
    let crm = Crm::start(&d, "rotate-long-access");
    let j = health(&d, &crm.url, &[]).code(1).json();
    let failed = with_status(&j, "fail");
    assert!(failed.contains(&"token-info after refresh".to_string()), "{j}");
    assert!(failed.contains(&"rotated tokens match the configuration".to_string()), "{j}");
    let crm = Crm::start(&d, "refresh-long");
    let j = health(&d, &crm.url, &[]).code(1).json();
    assert!(detail(&j, "tokens match the configuration").contains("outlives"), "{j}");
    // A logout that ends nothing: the cleanup does not claim it ended the session.
    let crm = Crm::start(&d, "logout-keeps");
    let j = health(&d, &crm.url, &[]).code(1).json();
    let cleanup = j["checks"].as_array().unwrap().iter().find(|c| c["name"] == "cleanup logout").unwrap();
    assert_eq!(cleanup["status"], "warn", "{j}");
}
