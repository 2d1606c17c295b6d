//! decode, verify and mint against the real binary, the Node fixtures and a live Node.

use std::process::{Command, Stdio};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::util::{Dir, run};

fn fixtures() -> Value {
    let p = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/node-tokens.json");
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn token(name: &str) -> String {
    fixtures()["tokens"][name].as_str().unwrap().to_string()
}

/// A folder whose .env holds the fixture secrets.
fn env_dir() -> Dir {
    let d = Dir::new();
    let env = fixtures()["env"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| format!("{k}={}\n", v.as_str().unwrap()))
        .collect::<String>();
    d.write(".env", env);
    d
}

fn payload(jwt: &str) -> serde_json::Map<String, Value> {
    let part = jwt.split('.').nth(1).unwrap();
    serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part).unwrap()).unwrap()
}

fn forge(header: &str, claims: &Value, sig: &str) -> String {
    format!("{}.{}.{sig}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(claims.to_string()))
}

fn failures(j: &Value) -> Vec<String> {
    j["failures"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap().to_string()).collect()
}

#[test]
fn node_fixtures_verify_as_node_signed_them() {
    let d = env_dir();
    let cases: &[(&str, i32, &[&str])] = &[
        ("access", 0, &[]),
        ("refresh", 0, &[]),
        ("access_expired", 1, &["expired"]),
        ("access_not_yet_valid", 1, &["not_yet_valid"]),
        ("access_hs512", 1, &["wrong_algorithm"]),
        ("access_signed_with_refresh_secret", 1, &["bad_signature"]),
        ("legacy_minimal", 1, &["wrong_type", "wrong_issuer", "wrong_audience"]),
    ];
    for (name, code, want) in cases {
        let j = d.run(&["--json", "verify", "--env-file", ".env", &token(name)]).code(*code).json();
        assert_eq!(failures(&j), *want, "{name}");
        assert_eq!(j["valid"], *code == 0, "{name}");
    }
    // HS512 is accepted only when asked for.
    d.run(&["verify", "--alg", "HS512", &token("access_hs512")]).code(0);
    // The legacy token's signature is sound: with the secret alone (no claim rules) it verifies.
    let mut cmd = d.cmd();
    cmd.args(["verify", "--secret-env", "S", &token("legacy_minimal")])
        .env("S", fixtures()["env"]["JWT_SECRET"].as_str().unwrap());
    run(&mut cmd, None).code(0);
}

#[test]
fn verify_messages_and_every_reason() {
    let d = env_dir();
    let out = d.run(&["verify", &token("access_expired")]);
    out.code(1);
    assert!(out.stdout.contains("✖ expired at 2026-01-01T00:15:00Z ("), "{}", out.stdout);
    assert!(out.stderr.starts_with("aspjwt: token rejected: expired at 2026-01-01T00:15:00Z"), "{}", out.stderr);
    // The claims are still shown, so an operator sees who the token claims to be.
    assert!(out.stdout.contains("dispatch@aspcranes.example"));
    // Refresh secret, refresh type, but presented as an access token: two reasons at once.
    let out = d.run(&["--json", "verify", "--typ", "access", &token("refresh")]).code(1).json();
    assert_eq!(failures(&out), ["bad_signature", "wrong_type"]);
    assert_eq!(out["signature_verified"], false);
    // And the reverse.
    let out = d.run(&["--json", "verify", "--typ", "refresh", &token("access")]).code(1).json();
    assert_eq!(failures(&out), ["bad_signature", "wrong_type"]);
    // Leeway forgives a little skew, not a lot.
    d.run(&["verify", "--leeway", "400d", &token("access_expired")]).code(0);
    // -q drops the summary, never the reason for exit 1.
    let quiet = d.run(&["-q", "verify", &token("access_expired")]);
    assert!(quiet.code(1).stdout.is_empty(), "{}", quiet.stdout);
    assert!(quiet.stderr.starts_with("aspjwt: token rejected: expired at"), "{}", quiet.stderr);
}

#[test]
fn forged_tokens_are_rejected() {
    let d = env_dir();
    let good = token("access");
    let claims = Value::Object(payload(&good));
    let sig = good.rsplit('.').next().unwrap();
    // alg none, in any casing, with or without a signature.
    for (header, s) in [(r#"{"alg":"none","typ":"JWT"}"#, ""), (r#"{"alg":"NoNe"}"#, sig), (r#"{"alg":"none"}"#, "x")] {
        let j = d.run(&["--json", "verify", &forge(header, &claims, s)]);
        if j.code == 2 {
            continue; // "x" is not base64url of a signature: refused as malformed, which is also a no.
        }
        assert_eq!(failures(&j.code(1).json()), ["alg_none"], "{header}");
    }
    // A tampered payload with the original signature.
    let mut tampered = payload(&good);
    tampered.insert("role".into(), "admin".into());
    let forged = forge(r#"{"alg":"HS256","typ":"JWT"}"#, &Value::Object(tampered), sig);
    assert_eq!(failures(&d.run(&["--json", "verify", &forged]).code(1).json()), ["bad_signature"]);
    // decode shows alg none as a red warning and says the signature was not verified.
    let out = d.run(&["--color", "always", "decode", &forge(r#"{"alg":"none"}"#, &claims, "")]);
    assert!(out.code(0).stdout.contains("alg is \"none\""), "{}", out.stdout);
    assert!(out.stdout.contains("\x1b[1;31m") || out.stdout.contains("\x1b[31m"));
    assert!(out.stdout.contains("NOT verified"));
}

#[test]
fn malformed_input_exits_2_with_the_exact_cause() {
    let d = env_dir();
    let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#);
    let cases = [
        ("abc.def".to_string(), "expected 3 dot-separated parts, found 2"),
        (format!("{header}.eyJzdWIiOiIxMjM0NTY3ODkwIn0*.sig"), "payload is not valid base64url at byte 27"),
        (format!("{}.e30.sig", URL_SAFE_NO_PAD.encode("[1,2]")), "header is not a JSON object"),
        (format!("{}.e30.sig", URL_SAFE_NO_PAD.encode("{nope")), "header is not valid JSON"),
    ];
    for (input, cause) in cases {
        for cmd in ["decode", "verify"] {
            let out = d.run(&[cmd, &input]);
            assert!(out.code(2).stderr.contains(cause), "{cmd} {input}: {}", out.stderr);
            assert!(out.stdout.is_empty());
        }
    }
    assert!(d.run_stdin(&["decode"], b"").code(2).stderr.contains("no token given"));
}

#[test]
fn decode_reads_bearer_cookies_and_stdin() {
    let d = Dir::new();
    let access = token("access");
    let refresh = token("refresh");
    let sub = |out: &crate::util::Output| -> String { out.json()["claims"]["typ"].as_str().unwrap().to_string() };
    assert_eq!(sub(d.run(&["--json", "decode", &format!("Bearer {access}")]).code(0)), "access");
    let cookies = format!("access_token={access}; refresh_token={refresh}; csrf_token=abc");
    assert_eq!(sub(d.run_stdin(&["--json", "decode"], cookies.as_bytes()).code(0)), "access");
    assert_eq!(
        sub(d.run_stdin(&["--json", "decode", "-", "--cookie", "refresh_token"], cookies.as_bytes()).code(0)),
        "refresh"
    );
    assert!(
        d.run_stdin(&["decode", "--cookie", "nope"], cookies.as_bytes()).code(2).stderr.contains("no \"nope\" cookie")
    );
    let j = d.run(&["--json", "decode", &token("access_expired")]).code(0).json();
    assert_eq!(j["state"], "expired");
    assert_eq!(j["signature_verified"], false);
    assert_eq!(j["expires_at"]["epoch"], 1767226500);
    assert_eq!(j["expires_at"]["rfc3339"], "2026-01-01T00:15:00Z");
    assert_eq!(j["lifetime_seconds"], 900);
    assert!(j["expires_at"]["relative"].as_str().unwrap().ends_with(" ago"));
    let human = d.run(&["decode", &token("access_not_yet_valid")]).code(0).stdout.clone();
    assert!(human.contains("not yet valid") && human.contains("not before"), "{human}");
}

#[test]
fn mint_issues_exactly_the_system_claims() {
    let d = env_dir();
    let out = d.run(&["mint", "--sub", "42", "--email", "ops@aspcranes.example", "--role", "operator"]);
    let jwt = out.code(0).stdout.trim().to_string();
    let header = jwt.split('.').next().unwrap();
    let kid = aspjwt::token::key_id(&aspjwt::token::Secret::new(fixtures()["env"]["JWT_SECRET"].as_str().unwrap()));
    assert_eq!(
        String::from_utf8(URL_SAFE_NO_PAD.decode(header).unwrap()).unwrap(),
        format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{kid}"}}"#)
    );
    let claims = payload(&jwt);
    let keys: Vec<&str> = claims.keys().map(String::as_str).collect();
    assert_eq!(keys, ["sub", "email", "role", "typ", "sid", "jti", "iat", "exp", "iss", "aud"]);
    for k in ["sub", "email", "role", "typ", "sid", "jti", "iss", "aud"] {
        assert!(claims[k].is_string(), "{k} is not a string");
    }
    assert!(claims["iat"].is_i64() && claims["exp"].is_i64());
    assert_eq!(claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap(), 900);
    assert_eq!(URL_SAFE_NO_PAD.decode(claims["jti"].as_str().unwrap()).unwrap().len(), 16);
    assert_eq!(
        (claims["iss"].as_str(), claims["aud"].as_str(), claims["typ"].as_str()),
        (Some("aspjwt"), Some("asp-cranes-crm"), Some("access"))
    );
    d.run(&["verify", &jwt]).code(0);

    // Refresh tokens: 7 days, the refresh secret.
    let r = d
        .run(&["mint", "--sub", "42", "--email", "e@x.y", "--role", "admin", "--typ", "refresh", "--sid", "S1"])
        .code(0)
        .stdout
        .trim()
        .to_string();
    let rc = payload(&r);
    assert_eq!(rc["exp"].as_i64().unwrap() - rc["iat"].as_i64().unwrap(), 7 * 86400);
    assert_eq!(rc["sid"], "S1");
    d.run(&["verify", &r]).code(0);
    assert_eq!(
        failures(&d.run(&["--json", "verify", "--typ", "access", &r]).code(1).json()),
        ["bad_signature", "wrong_type"]
    );

    // Configured issuer, audience and expiry are honoured.
    d.write(
        ".env",
        format!("{}JWT_ISSUER=crm-auth\nJWT_AUDIENCE=crm-web\nJWT_ACCESS_TOKEN_EXPIRY=1h30m\n", d.read_str(".env")),
    );
    let c = payload(
        d.run(&[
            "mint",
            "--sub",
            "1",
            "--email",
            "a@b.c",
            "--role",
            "support",
            "--claim",
            "branch=\"north\"",
            "--claim",
            "level=3",
        ])
        .code(0)
        .stdout
        .trim(),
    );
    assert_eq!((c["iss"].as_str(), c["aud"].as_str()), (Some("crm-auth"), Some("crm-web")));
    assert_eq!(c["exp"].as_i64().unwrap() - c["iat"].as_i64().unwrap(), 5400);
    assert_eq!((c["branch"].as_str(), c["level"].as_i64()), (Some("north"), Some(3)));
    let should = d
        .run(&[
            "--json",
            "decode",
            d.run(&["mint", "--sub", "1", "--email", "a@b.c", "--role", "support", "--ttl", "2m"]).stdout.trim(),
        ])
        .json();
    assert_eq!(should["should_refresh"], true);

    assert!(d.run(&["mint", "--sub", "1", "--email", "a@b.c", "--role", "root"]).code(2).stderr.contains("not a role"));
    assert!(
        d.run(&["mint", "--sub", "1", "--email", "a@b.c", "--role", "admin", "--claim", "exp=1"])
            .code(2)
            .stderr
            .contains("set by mint itself")
    );
}

#[test]
fn key_sources() {
    let d = Dir::new();
    let secret = fixtures()["env"]["JWT_SECRET"].as_str().unwrap().to_string();
    let access = token("access");
    d.write("secret.txt", format!("{secret}\n"));
    d.run(&["verify", "--secret-file", "secret.txt", "--typ", "access", &access]).code(0);
    d.run_stdin(&["verify", "--secret-stdin", &access], format!("{secret}\n").as_bytes()).code(0);
    assert!(
        d.run_stdin(&["verify", "--secret-stdin"], secret.as_bytes()).code(2).stderr.contains("token as an argument")
    );
    // No .env and nothing in the environment: a usage error naming the variable.
    assert!(d.run(&["verify", &access]).code(2).stderr.contains("JWT_SECRET is not set"));
    let mut cmd = d.cmd();
    cmd.args(["verify", &access]).env("JWT_SECRET", &secret);
    run(&mut cmd, None).code(0);
    // A wrong secret in a file: rejected, exit 1.
    d.write("wrong.txt", "not-the-secret");
    d.run(&["verify", "--secret-file", "wrong.txt", &access]).code(1);
    // Secrets are never accepted as arguments.
    d.run(&["verify", "--secret", &secret, &access]).code(2);
}

#[test]
fn tokens_cross_to_node_and_back() {
    let node_dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/node");
    assert!(
        std::path::Path::new(node_dir).join("node_modules/jsonwebtoken").is_dir(),
        "Node's jsonwebtoken is missing: run `npm ci --prefix tests/node` (make test does)"
    );
    let d = env_dir();
    let f = fixtures();
    for (typ, var) in [("access", "JWT_SECRET"), ("refresh", "JWT_REFRESH_SECRET")] {
        let jwt = d
            .run(&["mint", "--sub", "42", "--email", "dispatch@aspcranes.example", "--role", "admin", "--typ", typ])
            .code(0)
            .stdout
            .clone();
        let mut node = Command::new("node");
        node.arg(format!("{node_dir}/verify.js")).env("SECRET_VAR", var).env(var, f["env"][var].as_str().unwrap());
        node.stdin(Stdio::piped());
        let out = run(&mut node, Some(jwt.as_bytes()));
        let claims: Value =
            serde_json::from_str(out.code(0).stdout.trim()).unwrap_or_else(|e| panic!("{e}: {}", out.stdout));
        assert_eq!(claims["typ"], typ);
        assert_eq!(claims["email"], "dispatch@aspcranes.example");
        // And the other secret does not verify it in Node either.
        let other = if var == "JWT_SECRET" { "JWT_REFRESH_SECRET" } else { "JWT_SECRET" };
        let mut node = Command::new("node");
        node.arg(format!("{node_dir}/verify.js"))
            .env("SECRET_VAR", other)
            .env(other, f["env"][other].as_str().unwrap());
        assert!(run(&mut node, Some(jwt.as_bytes())).code(1).stdout.contains("invalid signature"));
    }
}

#[test]
fn hostile_input_never_panics_or_hangs() {
    let d = env_dir();
    let deep = format!("{}.e30.sig", URL_SAFE_NO_PAD.encode(format!("{}{}", "[".repeat(10_000), "]".repeat(10_000))));
    let deep_obj =
        format!("{}.e30.sig", URL_SAFE_NO_PAD.encode(format!("{}1{}", "{\"a\":".repeat(10_000), "}".repeat(10_000))));
    let huge_numbers = format!(
        "{}.{}.",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#),
        URL_SAFE_NO_PAD.encode(r#"{"exp":1e400,"nbf":-99999999999999999999,"iat":18446744073709551616}"#)
    );
    let garbage: Vec<u8> = (0..1_000_000u32).map(|i| (i.wrapping_mul(2654435761) >> 24) as u8).collect();
    let inputs: Vec<Vec<u8>> = vec![
        garbage.clone(),
        b"\xff\xfe\x00not utf8".to_vec(),
        deep.into_bytes(),
        deep_obj.into_bytes(),
        huge_numbers.into_bytes(),
        b"a.b.c.d.e.f".to_vec(),
        b"...".to_vec(),
        vec![b'.'; 1_000_000],
        token("access").as_bytes()[..40].to_vec(),
    ];
    for input in &inputs {
        for cmd in ["decode", "verify"] {
            let started = std::time::Instant::now();
            let out = d.run_stdin(&["--json", cmd], input);
            assert!([0, 1, 2].contains(&out.code), "{cmd}: {}", out.stderr);
            assert!(!out.stderr.contains("panicked"), "{cmd}: {}", out.stderr);
            assert!(started.elapsed() < std::time::Duration::from_secs(20), "{cmd} took {:?}", started.elapsed());
        }
    }
}

#[test]
fn a_closed_pipe_ends_quietly() {
    let d = env_dir();
    let mut cmd = d.cmd();
    cmd.args(["decode", &token("access")]).stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::null());
    let mut child = cmd.spawn().unwrap();
    drop(child.stdout.take()); // the reader goes away before anything is written
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

/// A token is input: a claim that holds terminal escapes or bidi overrides is shown
/// escaped by the human summaries of decode and verify, and kept as it is in --json.
#[test]
fn claims_cannot_drive_the_terminal() {
    let d = env_dir();
    let nasty = "\u{1b}]0;pwned\u{7}\u{202e}gnp.exe\u{9b}31m";
    let token = forge(
        r#"{"alg":"HS256","typ":"JWT","x\u001b":"\u202e"}"#,
        &serde_json::json!({"sub": nasty, "email": nasty, "role": "admin", "iat": 1, "exp": 2}),
        "c2ln",
    );
    for args in [vec!["decode", token.as_str()], vec!["verify", "--env-file", ".env", token.as_str()]] {
        let out = d.run(&args);
        for bad in ['\u{1b}', '\u{7}', '\u{202e}', '\u{9b}'] {
            assert!(
                !out.stdout.contains(bad) && !out.stderr.contains(bad),
                "{args:?} printed {bad:?} raw:\n{}",
                out.stdout
            );
        }
        assert!(out.stdout.contains("pwned"), "{}", out.stdout);
    }
    let j = d.run(&["--json", "decode", &token]).code(0).json();
    assert_eq!(j["claims"]["sub"], nasty, "--json keeps the value exact");
}

/// `decode` reads `@FILE`, `-` (stdin) and pasted `Set-Cookie:` lines, and says so when
/// the argument is a file name rather than a token.
#[test]
fn tokens_from_files_stdin_and_set_cookie_lines() {
    let d = env_dir();
    let jwt =
        d.run(&["mint", "--sub", "7", "--email", "a@b.example", "--role", "support"]).code(0).stdout.trim().to_string();
    d.write("token.txt", format!("{jwt}\n"));
    let sub = |out: &crate::util::Output| out.json()["claims"]["sub"].clone();
    assert_eq!(sub(d.run(&["--json", "decode", "@token.txt"]).code(0)), "7");
    assert_eq!(sub(d.run_stdin(&["--json", "decode", "-"], jwt.as_bytes()).code(0)), "7");
    let out = d.run(&["decode", "token.txt"]);
    assert!(
        out.code(2).stderr.contains("\"token.txt\" is a file, not a token; to read the token from it, pass @token.txt"),
        "{}",
        out.stderr
    );
    let out = d.run(&["decode", "@missing.txt"]);
    assert!(out.code(2).stderr.contains("missing.txt: no such file"), "{}", out.stderr);
    let line = format!("Set-Cookie: access_token={jwt}; Path=/; HttpOnly; Secure; SameSite=Strict; Max-Age=900");
    assert_eq!(sub(d.run(&["--json", "decode", &line]).code(0)), "7");
    let curl =
        format!("HTTP/1.1 200 OK\r\nset-cookie: csrf_token=abc; Path=/\r\nset-cookie: access_token={jwt}; Path=/\r\n");
    assert_eq!(sub(d.run_stdin(&["--json", "decode"], curl.as_bytes()).code(0)), "7");
}
