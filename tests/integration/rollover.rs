//! Graceful secret rollover: `rotate --graceful` / `--finish`, `check` of the pairs,
//! and the service picking up new secrets on SIGHUP without logging anyone out.

use std::time::{Duration, Instant};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::service::{PASSWORD, Service, csrf, get, setup, within};
use crate::util::Dir;

const ADMIN: &str = "admin@aspcranes.example";

fn env_value(d: &Dir, key: &str) -> Option<String> {
    aspjwt::envfile::EnvFile::parse(&d.read(".env")).unwrap().get(key).map(str::to_string)
}

fn kid_of(jwt: &str) -> String {
    let h: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').next().unwrap()).unwrap()).unwrap();
    h["kid"].as_str().unwrap_or("").to_string()
}

fn key_id(v: &str) -> String {
    aspjwt::token::key_id(&aspjwt::token::Secret::new(v))
}

#[test]
fn graceful_rotation_keeps_previous_values_next_to_their_keys() {
    let d = Dir::new();
    // Old values as a random secret looks (many distinct characters), with a readable prefix.
    let old = |prefix: &str, seed: u8, n: usize| {
        format!(
            "{prefix}{}",
            URL_SAFE_NO_PAD.encode((0..n as u8).map(|i| i.wrapping_mul(37).wrapping_add(seed)).collect::<Vec<u8>>())
        )
    };
    d.write(
        ".env",
        format!(
            "# CRM\nJWT_SECRET={}\nPORT=8080\nJWT_REFRESH_SECRET={}\nSESSION_SECRET={}\nJWT_ACCESS_TOKEN_EXPIRY=10m\n",
            old("old-jwt-", 1, 64),
            old("old-refresh-", 2, 64),
            old("old-session-", 3, 32)
        ),
    );
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(d.path(".env"), std::fs::Permissions::from_mode(0o600)).unwrap();
    let before = d.read_str(".env");
    let out = d.run(&["rotate", "--graceful"]);
    out.code(0);
    assert!(out.stderr.contains("routine rollover"), "{}", out.stderr);
    let after = d.read_str(".env");
    let lines: Vec<&str> = after.lines().collect();
    let keys: Vec<&str> = lines.iter().map(|l| l.split('=').next().unwrap()).collect();
    assert_eq!(
        keys,
        [
            "# CRM",
            "JWT_SECRET",
            "JWT_SECRET_PREVIOUS",
            "JWT_SECRET_PREVIOUS_UNTIL",
            "PORT",
            "JWT_REFRESH_SECRET",
            "JWT_REFRESH_SECRET_PREVIOUS",
            "JWT_REFRESH_SECRET_PREVIOUS_UNTIL",
            "SESSION_SECRET",
            "SESSION_SECRET_PREVIOUS",
            "SESSION_SECRET_PREVIOUS_UNTIL",
            "JWT_ACCESS_TOKEN_EXPIRY",
        ]
    );
    assert!(env_value(&d, "JWT_SECRET_PREVIOUS").unwrap().starts_with("old-jwt-"));
    // Default windows: the lifetime of what each secret signed: access tokens (here 10m)
    // for JWT_SECRET; refresh tokens, and the CSRF tokens that live as long, for the others.
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let until = |k: &str| aspjwt::check::parse_time(&env_value(&d, k).unwrap()).unwrap() - now;
    assert!((595..=600).contains(&until("JWT_SECRET_PREVIOUS_UNTIL")));
    assert!((7 * 86400 - 5..=7 * 86400).contains(&until("JWT_REFRESH_SECRET_PREVIOUS_UNTIL")));
    assert!((7 * 86400 - 5..=7 * 86400).contains(&until("SESSION_SECRET_PREVIOUS_UNTIL")));
    d.run(&["check", "--strict"]).code(0);

    // A second graceful rotation inside the window replaces the previous value and says so.
    let first_new = env_value(&d, "JWT_SECRET").unwrap();
    let again = d.run(&["rotate", "--graceful", "--window", "1s"]);
    assert!(again.code(0).stderr.contains("JWT_SECRET_PREVIOUS was still valid until"), "{}", again.stderr);
    assert_eq!(env_value(&d, "JWT_SECRET_PREVIOUS").unwrap(), first_new);
    // --finish removes only ended windows: none yet.
    let early = d.run(&["--json", "rotate", "--finish"]).code(0).json();
    assert_eq!(early["files"][0]["rotated"].as_array().unwrap().len(), 0);
    std::thread::sleep(Duration::from_millis(2100));
    let late = d.run(&["--json", "check"]);
    let checks = late.code(0).json();
    assert!(checks["checks"].as_array().unwrap().iter().any(|c| c["name"] == "JWT_SECRET rollover"
        && c["status"] == "warn"
        && c["detail"].as_str().unwrap().contains("rotate --finish")));
    d.run(&["check", "--strict"]).code(1);
    let current: Vec<String> =
        ["JWT_SECRET", "JWT_REFRESH_SECRET", "SESSION_SECRET"].iter().map(|k| env_value(&d, k).unwrap()).collect();
    d.run(&["rotate", "--finish"]).code(0);
    // Exactly the rollover lines are gone; everything else is as it was, new values in place.
    let mut expected = before.clone();
    for (old, new) in [("old-jwt-", &current[0]), ("old-refresh-", &current[1]), ("old-session-", &current[2])] {
        let line = before.lines().find(|l| l.split('=').nth(1).is_some_and(|v| v.starts_with(old))).unwrap();
        let key = line.split('=').next().unwrap();
        expected = expected.replace(line, &format!("{key}={new}"));
    }
    assert_eq!(d.read_str(".env"), expected);
    d.run(&["check", "--strict"]).code(0);
}

#[test]
fn check_validates_rollover_pairs() {
    let d = Dir::new();
    d.run(&["rotate", "--create", "-q"]).code(0);
    let base = d.read_str(".env");
    let jwt = env_value(&d, "JWT_SECRET").unwrap();
    let status = |d: &Dir| {
        let j = d.run(&["--json", "check"]).json();
        j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["name"] == "JWT_SECRET rollover")
            .map(|c| c["status"].as_str().unwrap().to_string())
    };
    d.write(".env", format!("{base}JWT_SECRET_PREVIOUS={jwt}\nJWT_SECRET_PREVIOUS_UNTIL=2999-01-01T00:00:00Z\n"));
    assert_eq!(status(&d).as_deref(), Some("fail"), "previous equals current");
    d.write(
        ".env",
        format!("{base}JWT_SECRET_PREVIOUS=c29tZXRoaW5nLWVsc2U=\nJWT_SECRET_PREVIOUS_UNTIL=next tuesday\n"),
    );
    assert_eq!(status(&d).as_deref(), Some("fail"), "until does not parse");
    d.write(".env", format!("{base}JWT_SECRET_PREVIOUS=c29tZXRoaW5nLWVsc2U=\n"));
    assert_eq!(status(&d).as_deref(), Some("fail"), "no until");
    let prev = strong();
    d.write(".env", format!("{base}JWT_SECRET_PREVIOUS={prev}\nJWT_SECRET_PREVIOUS_UNTIL=2999-01-01T00:00:00Z\n"));
    assert_eq!(status(&d).as_deref(), Some("fail"), "a window far past the access lifetime");
    d.write(".env", format!("{base}JWT_SECRET_PREVIOUS={prev}\nJWT_SECRET_PREVIOUS_UNTIL={}\n", rfc3339_in(900)));
    assert_eq!(status(&d).as_deref(), Some("pass"));
    d.write(".env", format!("{base}JWT_SECRET_PREVIOUS={prev}\nJWT_SECRET_PREVIOUS_UNTIL=2001-01-01T00:00:00Z\n"));
    assert_eq!(status(&d).as_deref(), Some("warn"));
}

fn hup(s: &Service) {
    s.hup();
}

fn health(s: &Service) -> Value {
    get(&s.url("/api/health"), &[], &[]).json()
}

/// A token without `kid`, as Node's jsonwebtoken makes them.
fn node_style(claims: &Value, secret: &str) -> String {
    let input = format!(
        "{}.{}",
        URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256","typ":"JWT"}"#),
        URL_SAFE_NO_PAD.encode(claims.to_string())
    );
    let sig = jsonwebtoken::crypto::sign(
        input.as_bytes(),
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        jsonwebtoken::Algorithm::HS256,
    )
    .unwrap();
    format!("{input}.{sig}")
}

#[test]
fn sighup_rollover_logs_nobody_out_until_the_window_ends() {
    let s = Service::start(setup("", &[(ADMIN, "admin")]));
    let info = |a: &str| get(&s.url("/api/auth/token-info"), &[("access_token", a)], &[]).status;
    let first = s.login(ADMIN, PASSWORD);
    let (a1, r1, c1) = (first.cookie("access_token").unwrap(), first.cookie("refresh_token").unwrap(), csrf(&first));
    let second = s.login(ADMIN, PASSWORD);
    let (a2, r2, c2) = (second.cookie("access_token").unwrap(), second.cookie("refresh_token").unwrap(), csrf(&second));
    assert_eq!(info(&a2), 200, "used (and remembered as verified) under the old key");
    let old_jwt = env_value(&s.dir, "JWT_SECRET").unwrap();
    assert_eq!(kid_of(&a1), key_id(&old_jwt), "tokens carry the signing key's id");
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(a1.split('.').nth(1).unwrap()).unwrap()).unwrap();

    s.dir.run(&["rotate", "--graceful", "--window", "4s"]).code(0);
    let rotated_at = Instant::now();
    let new_jwt = env_value(&s.dir, "JWT_SECRET").unwrap();
    let new_refresh = env_value(&s.dir, "JWT_REFRESH_SECRET").unwrap();
    hup(&s);
    assert!(
        within(Duration::from_secs(3), || health(&s)["keys"]["access"] == key_id(&new_jwt)).is_some(),
        "SIGHUP not applied"
    );
    let h = health(&s);
    assert_eq!(h["rollover"].as_array().unwrap().len(), 3, "{h}");
    assert_eq!(h["rollover"][0]["previousKid"], key_id(&old_jwt));

    // Old access tokens still work; an old refresh token (with a CSRF token signed by the
    // previous SESSION_SECRET) rotates to tokens signed with the new secrets.
    assert_eq!(info(&a1), 200);
    let r = s.refresh(&r1, &c1);
    assert_eq!(r.status, 200, "{}", r.body);
    let (a1n, r1n) = (r.cookie("access_token").unwrap(), r.cookie("refresh_token").unwrap());
    assert_eq!(kid_of(&a1n), key_id(&new_jwt));
    assert_eq!(kid_of(&r1n), key_id(&new_refresh));
    assert_eq!(info(&a1n), 200);
    // Kid-less (Node) tokens: tried against the current secret, then the previous one.
    assert_eq!(info(&node_style(&claims, &old_jwt)), 200);
    assert_eq!(info(&node_style(&claims, &new_jwt)), 200);
    // The health check reports the open window.
    let hc = s.dir.run(&["health", "--url", &s.base, "--quick"]);
    assert!(hc.code(0).stdout.contains("rollover open: JWT_SECRET"), "{}", hc.stdout);

    // After the window both old tokens are refused.
    std::thread::sleep(Duration::from_secs(4).saturating_sub(rotated_at.elapsed()) + Duration::from_millis(300));
    assert_eq!(info(&a2), 401);
    assert_eq!(s.refresh(&r2, &c2).status, 401);
    assert_eq!(info(&node_style(&claims, &old_jwt)), 401);
    assert_eq!(info(&a1n), 200, "the new tokens live on");
    // --finish removes exactly the ended entries.
    s.dir.run(&["rotate", "--finish"]).code(0);
    assert!(!s.dir.read_str(".env").contains("_PREVIOUS"));

    // A HUP with a broken env file changes nothing and is audited.
    let good = s.dir.read_str(".env");
    s.dir.write(".env", good.replace(&format!("JWT_SECRET={new_jwt}"), "JWT_SECRET=changeme"));
    hup(&s);
    let refused = within(Duration::from_secs(3), || {
        s.cli(&["--json", "audit", "--event", "config_reload_refused"]).rows().as_array().is_some_and(|a| !a.is_empty())
    });
    assert!(refused.is_some(), "no config_reload_refused event");
    let reason = s.cli(&["--json", "audit", "--event", "config_reload_refused"]).rows()[0]["reason"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(reason.contains("JWT_SECRET: is a placeholder"), "{reason}");
    assert_eq!(health(&s)["keys"]["access"], key_id(&new_jwt));
    assert_eq!(info(&a1n), 200);
    s.dir.write(".env", &good);

    // The incident path: plain rotate + HUP ends every session at once.
    s.dir.run(&["rotate"]).code(0);
    let newest = env_value(&s.dir, "JWT_SECRET").unwrap();
    hup(&s);
    assert!(within(Duration::from_secs(3), || health(&s)["keys"]["access"] == key_id(&newest)).is_some());
    assert_eq!(info(&a1n), 401);
    assert_eq!(s.refresh(&r1n, &c1).status, 401);
    assert_eq!(health(&s)["rollover"], json!([]));
}

fn rfc3339_in(secs: i64) -> String {
    let t = std::time::SystemTime::now() + Duration::from_secs(secs as u64);
    humantime::format_rfc3339_seconds(t).to_string()
}

fn strong() -> String {
    use base64::engine::general_purpose::STANDARD;
    STANDARD.encode(rand::random::<[u8; 32]>().repeat(2))
}

/// `serve` on this folder's .env: refused at start-up (exit 2) or not.
fn serve_refuses(d: &Dir) -> Option<String> {
    let mut c = d.cmd();
    c.args(["serve", "--bind", "127.0.0.1:0", "--env-file", ".env", "--db", "refuse.db"]);
    c.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            assert_eq!(status.code(), Some(2), "{err}");
            return Some(err);
        }
        if Instant::now() > deadline {
            child.kill().unwrap();
            child.wait().unwrap();
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn previous_secrets_obey_every_rule_of_current_ones() {
    let d = Dir::new();
    d.run(&["rotate", "--create", "-q"]).code(0);
    let base = d.read_str(".env");
    let refresh = env_value(&d, "JWT_REFRESH_SECRET").unwrap();
    let (p1, p2) = (strong(), strong());
    let bad: Vec<(&str, String)> = vec![
        ("a placeholder", "JWT_SECRET_PREVIOUS=changeme\nJWT_SECRET_PREVIOUS_UNTIL=2999-01-01T00:00:00Z\n".to_string()),
        (
            "too short",
            format!("JWT_SECRET_PREVIOUS=c29tZXRoaW5nLWVsc2U=\nJWT_SECRET_PREVIOUS_UNTIL={}\n", rfc3339_in(600)),
        ),
        (
            "another current secret",
            format!("JWT_SECRET_PREVIOUS={refresh}\nJWT_SECRET_PREVIOUS_UNTIL={}\n", rfc3339_in(600)),
        ),
        (
            "another previous secret",
            format!(
                "JWT_SECRET_PREVIOUS={p1}\nJWT_SECRET_PREVIOUS_UNTIL={}\nJWT_REFRESH_SECRET_PREVIOUS={p1}\nJWT_REFRESH_SECRET_PREVIOUS_UNTIL={}\n",
                rfc3339_in(600),
                rfc3339_in(600)
            ),
        ),
        // Access tokens live 15 minutes: a previous JWT_SECRET is of no use after 20.
        (
            "a window past the access lifetime",
            format!("JWT_SECRET_PREVIOUS={p1}\nJWT_SECRET_PREVIOUS_UNTIL={}\n", rfc3339_in(3600)),
        ),
        // CSRF tokens live as long as refresh tokens: 7 days.
        (
            "a window past the refresh lifetime",
            format!("SESSION_SECRET_PREVIOUS={p2}\nSESSION_SECRET_PREVIOUS_UNTIL={}\n", rfc3339_in(8 * 86400)),
        ),
    ];
    for (what, lines) in &bad {
        d.write(".env", format!("{base}{lines}"));
        let out = d.run(&["check"]);
        assert_eq!(out.code, 1, "{what}: check passed\n{}{}", out.stdout, out.stderr);
        assert!(out.stdout.contains("_PREVIOUS"), "{what}: the entry is not named\n{}", out.stdout);
        let refused = serve_refuses(&d).unwrap_or_else(|| panic!("{what}: serve started"));
        assert!(refused.contains("_PREVIOUS"), "{what}: {refused}");
    }
    let good = format!(
        "JWT_SECRET_PREVIOUS={p1}\nJWT_SECRET_PREVIOUS_UNTIL={}\nSESSION_SECRET_PREVIOUS={p2}\nSESSION_SECRET_PREVIOUS_UNTIL={}\n",
        rfc3339_in(600),
        rfc3339_in(6 * 86400)
    );
    d.write(".env", format!("{base}{good}"));
    d.run(&["check", "--strict"]).code(0);
    assert!(serve_refuses(&d).is_none(), "a sound rollover was refused");
}

#[test]
fn a_weak_previous_secret_is_refused_on_reload_and_signs_nothing() {
    let s = Service::start(setup("", &[(ADMIN, "admin")]));
    let login = s.login(ADMIN, PASSWORD);
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD.decode(login.cookie("access_token").unwrap().split('.').nth(1).unwrap()).unwrap(),
    )
    .unwrap();
    let good = s.dir.read_str(".env");
    s.dir
        .write(".env", format!("{good}JWT_SECRET_PREVIOUS=changeme\nJWT_SECRET_PREVIOUS_UNTIL=2999-01-01T00:00:00Z\n"));
    hup(&s);
    let refused = within(Duration::from_secs(3), || {
        s.cli(&["--json", "audit", "--event", "config_reload_refused"]).rows().as_array().is_some_and(|a| !a.is_empty())
    });
    assert!(refused.is_some(), "the reload was not refused");
    assert_eq!(health(&s)["rollover"], json!([]));
    // An admin token for the live session, signed with `changeme`: refused.
    let forged = node_style(&claims, "changeme");
    let r = get(&s.url("/api/users"), &[], &[("authorization", &format!("Bearer {forged}"))]);
    assert_eq!(r.status, 401, "{}", r.body);
}

#[test]
fn a_plain_rotate_ends_every_rollover_window() {
    let s = Service::start(setup("", &[(ADMIN, "admin")]));
    let login = s.login(ADMIN, PASSWORD);
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD.decode(login.cookie("access_token").unwrap().split('.').nth(1).unwrap()).unwrap(),
    )
    .unwrap();
    let old_jwt = env_value(&s.dir, "JWT_SECRET").unwrap();
    let graceful = s.dir.run(&["rotate", "--graceful", "--window", "1h"]);
    assert!(graceful.code(0).stderr.contains("JWT_SECRET: the window is capped at 20m"), "{}", graceful.stderr);
    hup(&s);
    assert!(within(Duration::from_secs(3), || health(&s)["rollover"].as_array().unwrap().len() == 3).is_some());
    assert_eq!(
        get(&s.url("/api/users"), &[], &[("authorization", &format!("Bearer {}", node_style(&claims, &old_jwt)))])
            .status,
        200
    );
    // The incident: a plain rotate removes every previous secret and says so.
    let out = s.dir.run(&["rotate"]);
    out.code(0);
    let note = out.stderr.lines().find(|l| l.contains("removed ")).unwrap_or_else(|| panic!("{}", out.stderr));
    for k in ["JWT_SECRET", "JWT_REFRESH_SECRET", "SESSION_SECRET"] {
        assert!(note.contains(&format!("{k}_PREVIOUS,")) && note.contains(&format!("{k}_PREVIOUS_UNTIL")), "{note}");
    }
    let env = s.dir.read_str(".env");
    assert!(!env.contains("_PREVIOUS"), "{env}");
    let j = s.dir.run(&["--json", "rotate"]).code(0).json();
    assert!(j["files"][0]["removed"].as_array().is_none_or(|r| r.is_empty()), "nothing left to remove: {j}");
    hup(&s);
    let newest = env_value(&s.dir, "JWT_SECRET").unwrap();
    assert!(within(Duration::from_secs(3), || health(&s)["keys"]["access"] == key_id(&newest)).is_some());
    assert_eq!(health(&s)["rollover"], json!([]));
    let r = get(&s.url("/api/users"), &[], &[("authorization", &format!("Bearer {}", node_style(&claims, &old_jwt)))]);
    assert_eq!(r.status, 401, "a token signed with the old secret still works");
}

/// A plain rotate of a compose file empties its literal previous entries in place (the
/// file's layout untouched) and says "emptied", not "removed" (review of issue 14).
#[test]
fn a_plain_rotate_empties_compose_previous_entries_and_says_so() {
    let d = Dir::new();
    let prev = URL_SAFE_NO_PAD.encode([9u8; 64]);
    d.write(
        "dc.yml",
        format!("services:\n  api:\n    environment:\n      JWT_SECRET: \"old\"\n      JWT_SECRET_PREVIOUS: \"{prev}\"\n      JWT_SECRET_PREVIOUS_UNTIL: \"2999-01-01T00:00:00Z\"\n"),
    );
    let out = d.run(&["rotate", "--compose", "dc.yml", "--only", "JWT_SECRET"]);
    assert!(
        out.code(0).stderr.contains("dc.yml: emptied JWT_SECRET_PREVIOUS, JWT_SECRET_PREVIOUS_UNTIL"),
        "{}",
        out.stderr
    );
    let text = d.read_str("dc.yml");
    assert!(!text.contains(&prev), "{text}");
    assert!(text.contains("JWT_SECRET_PREVIOUS: \"\""), "{text}");
}

/// Compose hands an emptied literal (what a plain rotate leaves of a compose file's
/// `*_PREVIOUS`) to the service as an empty variable: no rollover, not a broken one.
#[test]
fn empty_previous_entries_mean_no_rollover_to_check_and_serve_alike() {
    let d = Dir::new();
    d.run(&["rotate", "--create", "-q"]).code(0);
    let empty = [("JWT_SECRET_PREVIOUS", ""), ("JWT_SECRET_PREVIOUS_UNTIL", "")];
    let check = crate::service::run_env(&d, &["check", "--env-file", ".env"], &empty);
    check.code(0);
    d.write(".env", format!("{}SESSION_SECRET_PREVIOUS=\nSESSION_SECRET_PREVIOUS_UNTIL=\n", d.read_str(".env")));
    d.run(&["check"]).code(0);
    let mut c = d.cmd();
    c.args(["serve", "--bind", "127.0.0.1:0", "--env-file", ".env", "--db", "x.db"]).envs(empty);
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1500));
    let exited = child.try_wait().unwrap();
    let _ = child.kill();
    let out = child.wait_with_output().unwrap();
    assert!(exited.is_none(), "serve refused: {}", String::from_utf8_lossy(&out.stderr));
}

/// A previous secret of blanks is no secret: no rollover, and nothing it signs counts.
#[test]
fn a_blank_previous_secret_is_no_rollover() {
    let s = Service::start(setup("", &[(ADMIN, "admin")]));
    let login = s.login(ADMIN, PASSWORD);
    let claims: Value = serde_json::from_slice(
        &URL_SAFE_NO_PAD.decode(login.cookie("access_token").unwrap().split('.').nth(1).unwrap()).unwrap(),
    )
    .unwrap();
    let blank = "JWT_SECRET_PREVIOUS=\"   \"\nJWT_SECRET_PREVIOUS_UNTIL=2999-01-01T00:00:00Z\n";
    s.dir.write(".env", format!("{}{blank}", s.dir.read_str(".env")));
    hup(&s);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(health(&s)["rollover"], json!([]));
    let forged = node_style(&claims, "   ");
    assert_eq!(get(&s.url("/api/users"), &[], &[("authorization", &format!("Bearer {forged}"))]).status, 401);
}

/// A weak previous secret is weak wherever it is written: in the process environment
/// (SESSION_SECRET's included), in a compose file, and `verify` does not honour it
/// (review of issue 14). A strong one that verifies is named as the previous secret.
#[test]
fn weak_previous_secrets_are_refused_everywhere() {
    let d = Dir::new();
    d.write(".env.good", d.run(&["generate"]).code(0).stdout.clone());
    let good = std::fs::read_to_string(d.path(".env.good")).unwrap();
    let value = |k: &str| good.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap().to_string();
    let far = "2999-01-01T00:00:00Z";
    // The process environment, no files.
    let mut env: Vec<(&str, String)> =
        ["JWT_SECRET", "JWT_REFRESH_SECRET", "SESSION_SECRET"].iter().map(|k| (*k, value(k))).collect();
    env.push(("SESSION_SECRET_PREVIOUS", "changeme".into()));
    env.push(("SESSION_SECRET_PREVIOUS_UNTIL", far.into()));
    let env_ref: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let out = crate::service::run_env(&d, &["check"], &env_ref);
    assert!(out.code(1).stdout.contains("SESSION_SECRET rollover"), "{}", out.stdout);
    // A compose file.
    d.write(
        "dc.yml",
        format!(
            "services:\n  api:\n    environment:\n      JWT_SECRET: \"{}\"\n      JWT_SECRET_PREVIOUS: changeme\n      JWT_SECRET_PREVIOUS_UNTIL: \"{far}\"\n",
            value("JWT_SECRET")
        ),
    );
    let out = d.run(&["check", "--env-file", ".env.good", "--compose", "dc.yml"]);
    assert!(out.code(1).stdout.contains("JWT_SECRET rollover"), "{}", out.stdout);
    assert!(out.stdout.contains("dc.yml:5, service api"), "{}", out.stdout);
    // verify with an .env whose previous secret is weak: a token signed with it is not valid.
    d.write(".env", format!("{good}JWT_SECRET_PREVIOUS=changeme\nJWT_SECRET_PREVIOUS_UNTIL={far}\n"));
    let forged = crate::service::run_env(
        &d,
        &["mint", "--sub", "1", "--email", "a@b.c", "--role", "admin", "--secret-env", "WEAK"],
        &[("WEAK", "changeme")],
    )
    .code(0)
    .stdout
    .trim()
    .to_string();
    let verified = d.run(&["--json", "verify", "--env-file", ".env", &forged]);
    assert!(verified.stderr.contains("(its previous secret is not used)"), "{}", verified.stderr);
    let out = verified.code(1).json();
    assert_eq!(out["signature_verified"], false, "{out}");
    // A weak current secret: the token verifies, and verify says serve refuses that key.
    d.write("weak.env", "JWT_SECRET=changeme\n");
    let weak = d.run(&["verify", "--env-file", "weak.env", &forged]);
    assert!(weak.stderr.contains("JWT_SECRET: is a placeholder"), "{}", weak.stderr);
    assert!(weak.stderr.contains("(serve refuses it)"), "{}", weak.stderr);
    // A strong previous secret inside its window verifies, and says it was the previous one.
    let prev = URL_SAFE_NO_PAD.encode((0..64u8).map(|i| i.wrapping_mul(29).wrapping_add(7)).collect::<Vec<u8>>());
    let until = humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(600));
    d.write(".env", format!("{good}JWT_SECRET_PREVIOUS={prev}\nJWT_SECRET_PREVIOUS_UNTIL={until}\n"));
    let old = crate::service::run_env(
        &d,
        &["mint", "--sub", "1", "--email", "a@b.c", "--role", "admin", "--secret-env", "OLD"],
        &[("OLD", &prev)],
    )
    .code(0)
    .stdout
    .trim()
    .to_string();
    let out = d.run(&["--json", "verify", "--env-file", ".env", &old]).code(0).json();
    assert!(out["key"].as_str().unwrap().starts_with("JWT_SECRET_PREVIOUS from .env:"), "{out}");
}

/// Settings bound at start (connection caps, limiters, listeners) cannot change on
/// SIGHUP: the reload says which were left for a restart, in the log and the audit row.
#[test]
fn a_reload_says_what_needs_a_restart() {
    let s = Service::start(setup("", &[(ADMIN, "admin")]));
    s.dir.write(".env", format!("{}ASPJWT_MAX_CONNECTIONS=16\nAUTH_RATE_BURST=99\n", s.dir.read_str(".env")));
    hup(&s);
    assert!(
        within(Duration::from_secs(3), || s.logs().contains("\"event\":\"reload_needs_restart\"")).is_some(),
        "{}",
        s.logs()
    );
    let rows = s.cli(&["--json", "audit", "--event", "config_reloaded"]).code(0).rows();
    let reason = rows[0]["reason"].as_str().unwrap();
    assert!(reason.contains("unchanged until a restart: ASPJWT_MAX_CONNECTIONS, AUTH_RATE_BURST"), "{reason}");
}
