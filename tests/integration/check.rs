use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::util::Dir;

fn good_env(d: &Dir) {
    let out = d.run(&["generate"]);
    d.write(".env", out.code(0).stdout.as_bytes());
    fs::set_permissions(d.path(".env"), fs::Permissions::from_mode(0o600)).unwrap();
}

fn statuses(j: &serde_json::Value) -> Vec<(String, String)> {
    j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["status"].as_str().unwrap().to_string()))
        .collect()
}

fn status_of(j: &serde_json::Value, item: &str) -> String {
    statuses(j).into_iter().find(|(i, _)| i == item).unwrap_or_else(|| panic!("no check {item}: {j}")).1
}

#[test]
fn generated_config_passes_strict() {
    let d = Dir::new();
    good_env(&d);
    let out = d.run(&["check", "--strict"]);
    out.code(0);
    assert!(out.stdout.contains("✔ JWT_SECRET"), "{}", out.stdout);
    assert!(out.stdout.contains("configuration OK"));
    let j = d.run(&["--json", "check", "--env-file", ".env"]).code(0).json();
    assert_eq!(j["ok"], true);
    assert_eq!(j["summary"]["fail"], 0);
}

#[test]
fn each_secret_problem_fails() {
    let d = Dir::new();
    let good = |n| aspjwt::secrets::generate_os(n, aspjwt::secrets::Encoding::Base64);
    let cases: Vec<(String, &str)> = vec![
        (format!("JWT_REFRESH_SECRET={}\nSESSION_SECRET={}\n", good(64), good(32)), "JWT_SECRET"),
        (
            format!("JWT_SECRET=[SECURE_TOKEN]\nJWT_REFRESH_SECRET={}\nSESSION_SECRET={}\n", good(64), good(32)),
            "JWT_SECRET",
        ),
        (
            format!("JWT_SECRET={}\nJWT_REFRESH_SECRET={}\nSESSION_SECRET={}\n", good(63), good(64), good(32)),
            "JWT_SECRET",
        ),
        (
            format!("JWT_SECRET={}\nJWT_REFRESH_SECRET={}\nSESSION_SECRET=changeme\n", good(64), good(64)),
            "SESSION_SECRET",
        ),
    ];
    for (env, item) in cases {
        d.write(".env", &env);
        let j = d.run(&["--json", "check", "--env-file", ".env"]).code(1).json();
        assert_eq!(status_of(&j, item), "fail", "{env}");
    }
    let same = good(64);
    d.write(".env", format!("JWT_SECRET={same}\nJWT_REFRESH_SECRET={same}\nSESSION_SECRET={}\n", good(32)));
    let j = d.run(&["--json", "check", "--env-file", ".env"]).code(1).json();
    assert_eq!(status_of(&j, "JWT_SECRET ≠ JWT_REFRESH_SECRET"), "fail");
    let out = d.run(&["check", "--env-file", ".env"]);
    assert!(out.code(1).stdout.contains("✖ JWT_SECRET ≠ JWT_REFRESH_SECRET"), "{}", out.stdout);
    // Nothing of the secret is printed.
    assert!(!out.stdout.contains(&same[..12]));
}

#[test]
fn expiries() {
    let d = Dir::new();
    good_env(&d);
    let base = d.read_str(".env");
    for (access, refresh, ok) in
        [("15m", "7d", true), ("3600", "1h30m", true), ("7d", "15m", false), ("soon", "7d", false), ("15m", "0", false)]
    {
        d.write(".env", format!("{base}JWT_ACCESS_TOKEN_EXPIRY={access}\nJWT_REFRESH_TOKEN_EXPIRY={refresh}\n"));
        d.run(&["check"]).code(if ok { 0 } else { 1 });
    }
}

#[test]
fn warnings_and_strict() {
    let d = Dir::new();
    good_env(&d);
    fs::set_permissions(d.path(".env"), fs::Permissions::from_mode(0o644)).unwrap();
    let j = d.run(&["--json", "check"]).code(0).json();
    assert_eq!(status_of(&j, ".env permissions"), "warn");
    d.run(&["check", "--strict"]).code(1);
    fs::set_permissions(d.path(".env"), fs::Permissions::from_mode(0o600)).unwrap();
    let git = |args: &[&str]| std::process::Command::new("git").current_dir(d.tmp.path()).args(args).output().unwrap();
    git(&["init", "-q"]);
    git(&["add", ".env"]);
    let j = d.run(&["--json", "check", "--strict"]).code(1).json();
    assert_eq!(status_of(&j, ".env untracked"), "warn");
}

#[test]
fn compose_literals_must_agree_and_be_strong() {
    let d = Dir::new();
    good_env(&d);
    let s = aspjwt::secrets::generate_os(64, aspjwt::secrets::Encoding::Base64);
    d.write("c.yml", format!("services:\n  a:\n    environment:\n      JWT_SECRET: \"{s}\"\n  b:\n    environment:\n      - JWT_SECRET={s}\n      - SESSION_SECRET=${{SESSION_SECRET}}\n"));
    d.run(&["check", "--env-file", ".env", "--compose", "c.yml"]).code(0);
    d.write("c.yml", format!("services:\n  a:\n    environment:\n      JWT_SECRET: \"{s}\"\n  b:\n    environment:\n      - JWT_SECRET=changeme\n"));
    let j = d.run(&["--json", "check", "--env-file", ".env", "--compose", "c.yml"]).code(1).json();
    assert_eq!(status_of(&j, "JWT_SECRET consistent"), "fail");
    assert_eq!(status_of(&j, "JWT_SECRET"), "pass");
    assert!(j["checks"].as_array().unwrap().iter().any(|c| c["name"] == "JWT_SECRET"
        && c["status"] == "fail"
        && c["detail"].as_str().unwrap().contains("c.yml:7")));
}

#[test]
fn environment_is_checked_without_files() {
    let d = Dir::new();
    d.cmd();
    let mut cmd = d.cmd();
    cmd.args(["check"]).env("JWT_SECRET", "secret").env("JWT_REFRESH_SECRET", "x").env("SESSION_SECRET", "y");
    let out = crate::util::run(&mut cmd, None);
    assert!(out.code(1).stdout.contains("(environment)"), "{}", out.stdout);
}

#[test]
fn input_errors_exit_2_with_position() {
    let d = Dir::new();
    d.write(".env", "JWT_SECRET=1\nBAD KEY=2\n");
    let out = d.run(&["check"]);
    assert!(out.code(2).stderr.contains(".env:2:1: variable name \"BAD KEY\" contains a space"), "{}", out.stderr);
    d.run(&["check", "--env-file", "missing.env"]).code(2);
    std::fs::remove_file(d.path(".env")).unwrap();
    d.write("c.yml", "services: [\n");
    let out = d.run(&["check", "--compose", "c.yml"]);
    assert!(
        out.code(2).stderr.contains("c.yml:1:11: flow sequence opened at 1:11 is never closed (noticed at 2:1"),
        "{}",
        out.stderr
    );
}

#[test]
fn quiet_and_colour() {
    let d = Dir::new();
    good_env(&d);
    let quiet = d.run(&["-q", "check"]);
    assert!(quiet.code(0).stdout.is_empty() && quiet.stderr.is_empty());
    d.write(".env", "JWT_SECRET=changeme\n");
    // -q drops the checklist and the summary, never the reason for exit 1.
    let failed = d.run(&["-q", "check"]);
    assert!(failed.code(1).stdout.is_empty(), "{}", failed.stdout);
    assert!(failed.stderr.contains("aspjwt: check failed: JWT_SECRET"), "{}", failed.stderr);
    assert!(failed.stderr.contains("aspjwt: check failed: SESSION_SECRET"), "{}", failed.stderr);
    // Not a terminal: no colour unless asked for.
    assert!(!d.run(&["check"]).stdout.contains('\x1b'));
    assert!(d.run(&["--color", "always", "check"]).stdout.contains("\x1b["));
    assert!(!d.run(&["--color", "always", "--json", "check"]).stdout.contains('\x1b'));
}

#[test]
fn the_database_setting_is_checked_offline_and_its_password_never_shown() {
    let d = Dir::new();
    good_env(&d);
    let env = d.read_str(".env");
    d.write(".env", format!("{env}ASPJWT_DB=postgres://aspjwt:pg-s3cr3t@db:5432/aspjwt\n"));
    fs::set_permissions(d.path(".env"), fs::Permissions::from_mode(0o600)).unwrap();
    let out = d.run(&["check"]);
    out.code(0);
    assert!(out.stdout.contains("PostgreSQL postgres://aspjwt:***@db:5432/aspjwt (.env:4)"), "{}", out.stdout);
    assert!(!out.stdout.contains("pg-s3cr3t") && !out.stderr.contains("pg-s3cr3t"));
    d.write(".env", format!("{env}ASPJWT_DB=mysql://aspjwt:pg-s3cr3t@db/aspjwt\n"));
    let j = d.run(&["--json", "check"]).code(1).json();
    assert_eq!(status_of(&j, "ASPJWT_DB"), "fail");
    assert!(j.to_string().contains("mysql:// is not a supported database") && j.to_string().contains(".env:4"));
    assert!(!j.to_string().contains("pg-s3cr3t"));
    // `serve` and the operator commands refuse the same value, and a password on the command line.
    assert!(d.run(&["serve", "--bind", "127.0.0.1:0"]).code(2).stderr.contains("ASPJWT_DB: mysql://"));
    let argv = d.run(&["user", "list", "--db", "postgres://u:pg-s3cr3t@127.0.0.1:1/x"]);
    argv.code(2);
    assert!(argv.stderr.contains("visible to every user") && !argv.stderr.contains("pg-s3cr3t"), "{}", argv.stderr);
}

/// Interpolation resolved as docker compose resolves it: the process environment, then
/// the env files, then the compose file's folder's .env; unset, empty, short or
/// placeholder values fail, naming file:line and the variable.
#[test]
fn compose_interpolation_is_resolved_and_judged() {
    let d = Dir::new();
    let dc = "services:\n  api:\n    environment:\n      JWT_SECRET: ${JWT_SECRET}\n      JWT_REFRESH_SECRET: ${JWT_REFRESH_SECRET:-changeme}\n      SESSION_SECRET: ${SESSION_SECRET:?set SESSION_SECRET}\n";
    d.write("dc.yml", dc);
    let j = d.run(&["--json", "check", "--compose", "dc.yml"]).code(1).json();
    let detail = |item: &str| -> String {
        j["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["name"] == item)
            .map(|c| c["detail"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
            .join(" | ")
    };
    assert!(
        detail("JWT_SECRET").contains("JWT_SECRET is not set") && detail("JWT_SECRET").contains("dc.yml:4"),
        "{}",
        detail("JWT_SECRET")
    );
    let refresh = detail("JWT_REFRESH_SECRET");
    assert!(
        refresh.contains("placeholder") && refresh.contains("default \"changeme\"") && refresh.contains("dc.yml:5"),
        "{refresh}"
    );
    let session = detail("SESSION_SECRET");
    assert!(
        session.contains("required variable SESSION_SECRET is missing a value: set SESSION_SECRET")
            && session.contains("dc.yml:6"),
        "{session}"
    );

    // The folder's .env supplies them: then every one passes.
    let env = d.run(&["generate"]).code(0).stdout.clone();
    d.write(".env", &env);
    fs::set_permissions(d.path(".env"), fs::Permissions::from_mode(0o600)).unwrap();
    d.run(&["check", "--compose", "dc.yml"]).code(0);
    // The process environment wins over the file, as in compose: a short one fails.
    let mut cmd = d.cmd();
    cmd.args(["--json", "check", "--compose", "dc.yml"]).env("JWT_SECRET", "tooshort");
    let j = crate::util::run(&mut cmd, None).code(1).json();
    assert!(j["checks"].to_string().contains("dc.yml:4"), "{}", j["checks"]);
    // An --env-file first, the folder's .env after it.
    d.write("other.env", "JWT_SECRET=changeme\n");
    let out = d.run(&["check", "--env-file", "other.env", "--compose", "dc.yml"]);
    assert!(out.code(1).stdout.contains("JWT_SECRET") && out.stdout.contains("placeholder"), "{}", out.stdout);
}

/// The CRM deployment document's shape (`JWT_SECRET: [SECURE_TOKEN]`): check fails it,
/// rotate writes quoted secrets in place of exactly those bytes, and check then passes.
#[test]
fn placeholder_lists_fail_check_and_rotate_fills_them() {
    let d = Dir::new();
    let dc = "services:\n  crm:\n    image: crm\n    environment:\n      NODE_ENV: production\n      JWT_SECRET: [SECURE_TOKEN]\n      JWT_REFRESH_SECRET: [SECURE_REFRESH_TOKEN]\n      SESSION_SECRET: [SECURE_SESSION_TOKEN]\n";
    d.write("dc.yml", dc);
    let out = d.run(&["check", "--compose", "dc.yml"]);
    assert_eq!(out.code(1).stdout.matches("a YAML list, not a string").count(), 3, "{}", out.stdout);
    for placeholder in ["<your-secret>", "CHANGE_ME", "xxx", "secret"] {
        d.write("p.yml", format!("services:\n  a:\n    environment:\n      JWT_SECRET: \"{placeholder}\"\n"));
        let out = d.run(&["check", "--compose", "p.yml"]);
        assert!(out.code(1).stdout.contains("placeholder"), "{placeholder}: {}", out.stdout);
    }
    let j = d.run(&["--json", "rotate", "--compose", "dc.yml"]).code(0).json();
    assert_eq!(j["files"][0]["rotated"].as_array().unwrap().len(), 3, "{j}");
    let new = d.read_str("dc.yml");
    let doc: serde_yaml::Value = serde_yaml::from_str(&new).unwrap();
    let env = &doc["services"]["crm"]["environment"];
    let mut expected = dc.to_string();
    for (key, placeholder) in [
        ("JWT_SECRET", "[SECURE_TOKEN]"),
        ("JWT_REFRESH_SECRET", "[SECURE_REFRESH_TOKEN]"),
        ("SESSION_SECRET", "[SECURE_SESSION_TOKEN]"),
    ] {
        let v = env[key].as_str().unwrap_or_else(|| panic!("{key} is not a string: {new}"));
        assert!(v.len() >= 44, "{key}");
        expected = expected.replace(placeholder, &format!("\"{v}\""));
    }
    assert_eq!(new, expected, "bytes outside the placeholders changed");
    d.run(&["check", "--compose", "dc.yml"]).code(0);
}

/// An unclosed construct names where it opened, in check and rotate alike.
#[test]
fn an_unclosed_yaml_construct_is_reported_where_it_opened() {
    let d = Dir::new();
    d.write("dc.yml", "services:\n  api:\n    environment:\n      JWT_SECRET: [unclosed\n      OTHER: x\n");
    for cmd in ["check", "rotate"] {
        let out = d.run(&[cmd, "--compose", "dc.yml"]);
        assert!(
            out.code(2).stderr.contains("dc.yml:4:19: flow sequence opened at 4:19 is never closed"),
            "{cmd}: {}",
            out.stderr
        );
    }
}

/// File contents are input: a service name or key holding terminal escapes or bidi
/// overrides is shown escaped in the checklist and in error messages, never raw.
#[test]
fn values_from_files_are_escaped_for_the_terminal() {
    let d = Dir::new();
    d.write(
        "dc.yml",
        "services:\n  \"a\\u001b]0;pwned\\u0007\\u202epi\":\n    environment:\n      JWT_SECRET: \"short\"\n",
    );
    let out = d.run(&["check", "--compose", "dc.yml"]);
    out.code(1);
    for s in [&out.stdout, &out.stderr] {
        assert!(!s.contains('\x1b') && !s.contains('\x07') && !s.contains('\u{202e}'), "raw control in {s:?}");
    }
    assert!(out.stdout.contains("service a\\u{1b}]0;pwned\\u{7}\\u{202e}pi"), "{}", out.stdout);
    // The same with -q: the reason is escaped too.
    let quiet = d.run(&["-q", "check", "--compose", "dc.yml"]);
    assert!(quiet.code(1).stderr.contains("\\u{1b}]0;pwned"), "{}", quiet.stderr);
    assert!(!quiet.stderr.contains('\x1b'));
    // An error that quotes the file's bytes.
    d.write("bad.env", "A=1\n\u{1b}[2J\u{202e}=x\n");
    let err = d.run(&["check", "--env-file", "bad.env"]);
    assert!(err.code(2).stderr.contains("bad.env:2:1"), "{}", err.stderr);
    assert!(!err.stderr.contains('\x1b') && !err.stderr.contains('\u{202e}'), "{:?}", err.stderr);
}

/// With --json, every outcome is a JSON document on stdout that carries "version":
/// results, input errors and usage errors alike (the line on stderr stays).
#[test]
fn json_results_and_errors_carry_a_version() {
    let d = Dir::new();
    good_env(&d);
    let ok = d.run(&["--json", "check"]).code(0).json();
    assert_eq!((ok["version"].as_u64(), ok["ok"].as_bool()), (Some(1), Some(true)), "{ok}");
    assert!(ok["checks"][0]["name"].is_string(), "{ok}");
    let missing = d.run(&["--json", "check", "--env-file", "nothere.env"]);
    assert!(missing.code(2).stderr.contains("nothere.env"), "{}", missing.stderr);
    let j = missing.json();
    assert_eq!(j["version"], 1);
    assert_eq!(j["error"]["code"], "input");
    assert!(j["error"]["message"].as_str().unwrap().contains("nothere.env"), "{j}");
    let usage = d.run(&["--json", "check", "--no-such-flag"]);
    assert!(usage.code(2).stderr.contains("--no-such-flag"), "{}", usage.stderr);
    let j = usage.json();
    assert_eq!(j["error"]["code"], "usage");
    assert!(j["error"]["message"].as_str().unwrap().contains("--no-such-flag"), "{j}");
    // Without --json, stdout stays empty on error.
    assert!(d.run(&["check", "--env-file", "nothere.env"]).code(2).stdout.is_empty());
}

/// A compose service's environment is judged by serve's own validator too: what serve
/// would refuse in that container, check --compose fails (review of issue 14).
#[test]
fn compose_service_settings_are_judged_as_serve_judges_them() {
    let d = Dir::new();
    let generated = d.run(&["generate"]).code(0).stdout.clone();
    let v = |k: &str| generated.lines().find_map(|l| l.strip_prefix(&format!("{k}="))).unwrap().to_string();
    d.write(
        "dc.yml",
        format!(
            "services:\n  api:\n    environment:\n      JWT_SECRET: \"{}\"\n      JWT_REFRESH_SECRET: \"{}\"\n      SESSION_SECRET: \"{}\"\n      ASPJWT_BODY_TIMEOUT: abc\n      TRUSTED_PROXIES: garbage\n      REFRESH_REUSE_GRACE: 1d\n  web:\n    environment:\n      TRUSTED_PROXIES: not-ours-to-judge\n",
            v("JWT_SECRET"),
            v("JWT_REFRESH_SECRET"),
            v("SESSION_SECRET")
        ),
    );
    let out = d.run(&["check", "--compose", "dc.yml"]);
    out.code(1);
    for name in ["ASPJWT_BODY_TIMEOUT", "TRUSTED_PROXIES", "REFRESH_REUSE_GRACE"] {
        assert!(out.stdout.contains(&format!("✖ {name}")), "{name}:\n{}", out.stdout);
    }
    assert!(!out.stdout.contains("not-ours-to-judge"), "{}", out.stdout);
}

/// What docker compose refuses is not "configuration OK": duplicate keys, aliases that
/// recurse, and shapes that are no compose file (review of issue 15).
#[test]
fn compose_files_compose_would_refuse_are_input_errors() {
    let d = Dir::new();
    for (text, why) in [
        (
            "services:\n  api:\n    environment:\n      JWT_SECRET: a\n      JWT_SECRET: b\n",
            "duplicate entry with key \"JWT_SECRET\"",
        ),
        ("", "no `services:` mapping"),
        ("just a string\n", "no `services:` mapping"),
        ("services: 5\n", "`services:` is not a mapping"),
        ("services:\n  api:\n    environment: 5\n", "service api: `environment:` is neither a mapping nor a list"),
        ("a: &x\n  b: *x\n", "recursion limit exceeded"),
    ] {
        d.write("dc.yml", text);
        let out = d.run(&["check", "--compose", "dc.yml"]);
        assert!(out.code(2).stderr.contains(why), "{text:?}: {}", out.stderr);
    }
}

/// A resolved value that is too short names the variable it came from and where that
/// was looked up, as the unset and default cases do (review of issue 15).
#[test]
fn a_weak_interpolated_value_names_its_variable() {
    let d = Dir::new();
    d.write("dc.yml", "services:\n  a:\n    environment:\n      JWT_SECRET: ${MY_VAR}\n");
    let out = crate::service::run_env(&d, &["check", "--compose", "dc.yml"], &[("MY_VAR", "short")]);
    assert!(out.code(1).stdout.contains("the value of MY_VAR from the environment"), "{}", out.stdout);
}

/// Secrets compose hands a service through `env_file:` are judged like a .env's, a
/// missing env_file fails, and rotate says which file to point it at (review of issue 15).
#[test]
fn env_files_named_by_compose_are_judged() {
    let d = Dir::new();
    d.write(
        "dc.yml",
        "services:\n  api:\n    env_file:\n      - app.env\n      - path: gone.env\n        required: true\n",
    );
    d.write(
        "app.env",
        "JWT_SECRET=changeme\nJWT_SECRET_PREVIOUS=changeme2\nJWT_SECRET_PREVIOUS_UNTIL=2999-01-01T00:00:00Z\n",
    );
    let out = d.run(&["check", "--compose", "dc.yml"]);
    out.code(1);
    assert!(out.stdout.contains("✖ JWT_SECRET") && out.stdout.contains("app.env:1"), "{}", out.stdout);
    assert!(out.stdout.contains("✖ JWT_SECRET rollover"), "{}", out.stdout);
    assert!(out.stdout.contains("✖ env_file gone.env"), "{}", out.stdout);
    let rotate = d.run(&["rotate", "--compose", "dc.yml", "--dry-run"]);
    assert!(
        rotate.stderr.contains("service api reads env_file app.env; pass --env-file ./app.env"),
        "{}",
        rotate.stderr
    );
}

/// A key set more than once is one warning, however often it repeats: a file of a
/// hundred thousand `A=1` lines is one line of output, not a hundred thousand.
#[test]
fn a_repeated_key_is_one_warning() {
    let d = Dir::new();
    good_env(&d);
    let env = d.read_str(".env");
    d.write(".env", format!("{env}A=1\nA=2\n"));
    let out = d.run(&["check"]);
    assert!(out.code(0).stdout.contains("⚠ A unique") && out.stdout.contains("set on lines"), "{}", out.stdout);
    d.write(".env", format!("{env}{}", "A=1\n".repeat(100_000)));
    let out = d.run(&["check"]);
    let warnings: Vec<&str> = out.code(0).stdout.lines().filter(|l| l.contains("A unique")).collect();
    assert_eq!(warnings.len(), 1, "{}", &out.stdout[..out.stdout.len().min(500)]);
    assert!(warnings[0].contains("set on 100000 lines"), "{}", warnings[0]);
}

/// Random hex (`openssl rand -hex 32`) is a drawn secret: it passes, counted as the bytes
/// it holds, every time (an earlier rule failed a quarter of them as "typed").
#[test]
fn random_hex_secrets_pass_and_count_as_bytes() {
    let d = Dir::new();
    good_env(&d);
    let env = d.read_str(".env");
    for _ in 0..40 {
        let hex: String = (0..32).map(|_| format!("{:02x}", rand::random::<u8>())).collect();
        let with_hex: String = env
            .lines()
            .map(
                |l| if l.starts_with("SESSION_SECRET=") { format!("SESSION_SECRET={hex}\n") } else { format!("{l}\n") },
            )
            .collect();
        d.write(".env", with_hex);
        let out = d.run(&["check"]);
        assert!(out.code(0).stdout.contains("64 chars, 32 bytes (hex)"), "{hex}:\n{}", out.stdout);
    }
}
