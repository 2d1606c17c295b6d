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
        .map(|c| (c["item"].as_str().unwrap().to_string(), c["status"].as_str().unwrap().to_string()))
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
    assert!(j["checks"].as_array().unwrap().iter().any(|c| c["item"] == "JWT_SECRET"
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
    assert!(
        d.run(&["check", "--compose", "c.yml"]).code(2).stderr.contains("c.yml:2:1:"),
        "{}",
        d.run(&["check", "--compose", "c.yml"]).stderr
    );
}

#[test]
fn quiet_and_colour() {
    let d = Dir::new();
    good_env(&d);
    let quiet = d.run(&["-q", "check"]);
    assert!(quiet.code(0).stdout.is_empty() && quiet.stderr.is_empty());
    d.write(".env", "JWT_SECRET=changeme\n");
    assert!(d.run(&["-q", "check"]).code(1).stdout.is_empty());
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
