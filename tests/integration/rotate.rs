use std::fs;
use std::os::unix::fs::PermissionsExt;

use crate::util::{Dir, long_base64_runs};

const COMPOSE: &str = "services:\n  api:\n    image: crm\n    environment:\n      JWT_SECRET: \"old-jwt-secret-value-old-jwt-secret\"\n      SESSION_SECRET: ${SESSION_SECRET}\n  worker:\n    environment:\n      - JWT_SECRET=old-jwt-secret-value-old-jwt-secret\n";

fn value(text: &str, key: &str) -> String {
    let doc = aspjwt::envfile::EnvFile::parse(text.as_bytes()).unwrap();
    doc.get(key).unwrap().to_string()
}

#[test]
fn rotates_env_and_compose_consistently_and_losslessly() {
    let d = Dir::new();
    let env = "\u{feff}# CRM secrets\r\nexport JWT_SECRET='old'  # inline\r\n\r\nJWT_REFRESH_SECRET=\"old2\"\r\nPORT=8080\r\nSESSION_SECRET=old3";
    d.write(".env", env);
    fs::set_permissions(d.path(".env"), fs::Permissions::from_mode(0o640)).unwrap();
    d.write("docker-compose.yml", COMPOSE);
    let out = d.run(&["rotate", "--env-file", ".env", "--compose", "docker-compose.yml"]);
    out.code(0);
    let new_env = d.read_str(".env");
    let jwt = value(&new_env, "JWT_SECRET");
    assert_eq!(jwt.len(), 88);
    let expected = env
        .replace("'old'", &format!("'{jwt}'"))
        .replace("\"old2\"", &format!("\"{}\"", value(&new_env, "JWT_REFRESH_SECRET")))
        .replace("=old3", &format!("={}", value(&new_env, "SESSION_SECRET")));
    assert_eq!(new_env, expected);
    let compose = d.read_str("docker-compose.yml");
    assert_eq!(compose, COMPOSE.replace("old-jwt-secret-value-old-jwt-secret", &jwt));
    // Mode kept.
    assert_eq!(fs::metadata(d.path(".env")).unwrap().permissions().mode() & 0o777, 0o640);
    // No secret on stdout or stderr.
    assert!(long_base64_runs(&out.stdout).is_empty(), "{}", out.stdout);
    assert!(long_base64_runs(&out.stderr).is_empty(), "{}", out.stderr);
    assert!(out.stdout.contains("SESSION_SECRET (services api take it from the environment/.env)"), "{}", out.stdout);
    assert!(out.stderr.contains("every session ends and every token signed with the old secrets stops working"));
}

#[test]
fn json_summary() {
    let d = Dir::new();
    d.write(".env", "JWT_SECRET=x\nJWT_SECRET=y\n");
    let j = d.run(&["--json", "rotate", "--env-file", ".env", "--only", "JWT_SECRET,SESSION_SECRET"]).code(0).json();
    let f = &j["files"][0];
    assert_eq!(f["kind"], "env");
    assert_eq!(f["rotated"], serde_json::json!(["JWT_SECRET"]));
    assert_eq!(f["appended"], serde_json::json!(["SESSION_SECRET"]));
    assert!(f["warnings"][0].as_str().unwrap().contains("set 2 times"));
    assert!(j.get("secrets").is_none());
    let new = d.read_str(".env");
    assert_eq!(new.lines().count(), 3);
    assert_eq!(value(&new, "JWT_SECRET"), new.lines().next().unwrap()["JWT_SECRET=".len()..]);
}

#[test]
fn show_secrets_prints_the_values_written() {
    let d = Dir::new();
    d.write(".env", "");
    let out = d.run(&[
        "rotate",
        "--show-secrets",
        "--only",
        "SESSION_SECRET,POSTGRES_PASSWORD",
        "--key",
        "POSTGRES_PASSWORD:24",
    ]);
    out.code(0);
    let new = d.read_str(".env");
    for key in ["SESSION_SECRET", "POSTGRES_PASSWORD"] {
        assert!(out.stdout.contains(&format!("{key}={}", value(&new, key))), "{}", out.stdout);
    }
    assert_eq!(value(&new, "POSTGRES_PASSWORD").len(), 32);
}

#[test]
fn dry_run_writes_nothing_and_masks() {
    let d = Dir::new();
    let env = "JWT_SECRET=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa1\nDB_PASSWORD=hunter2hunter2hunter2hunter2hunter2hunter2x\n";
    d.write(".env", env);
    let out = d.run(&["rotate", "--dry-run"]);
    out.code(0);
    assert_eq!(d.read_str(".env"), env);
    assert!(out.stdout.contains("-JWT_SECRET=aaaa…"), "{}", out.stdout);
    assert!(out.stdout.contains("+JWT_SECRET="));
    assert!(!out.stdout.contains("hunter2hunter2"), "context lines must be masked too");
    assert!(long_base64_runs(&out.stdout).is_empty(), "{}", out.stdout);
    assert!(out.stderr.contains("dry run"));
}

/// New secrets written into a file others can read: rotate says so (review of issue 19).
#[test]
fn a_group_readable_file_is_warned_about() {
    let d = Dir::new();
    d.write(".env", "JWT_SECRET=old\n");
    fs::set_permissions(d.path(".env"), fs::Permissions::from_mode(0o644)).unwrap();
    let out = d.run(&["rotate", "--only", "JWT_SECRET"]);
    assert!(out.code(0).stderr.contains("readable by group or others (mode 0644)"), "{}", out.stderr);
    fs::set_permissions(d.path(".env"), fs::Permissions::from_mode(0o600)).unwrap();
    assert!(!d.run(&["rotate", "--only", "JWT_SECRET"]).code(0).stderr.contains("readable by group"));
}

/// A database password is not a signing secret: rotating it alone ends no session,
/// and rotate does not say it does.
#[test]
fn rotating_only_a_database_password_ends_no_session() {
    let d = Dir::new();
    d.write(".env", "POSTGRES_PASSWORD=oldoldoldoldoldoldold\n");
    let out = d.run(&["rotate", "--env-file", ".env", "--key", "POSTGRES_PASSWORD:24", "--only", "POSTGRES_PASSWORD"]);
    out.code(0);
    assert!(!d.read_str(".env").contains("oldold"));
    assert!(!out.stderr.contains("every session ends"), "{}", out.stderr);
    assert!(out.stderr.contains("so that it uses the new values"), "{}", out.stderr);
    // The signing secrets still say it.
    let out = d.run(&["rotate", "--env-file", ".env", "--only", "JWT_SECRET"]);
    assert!(out.code(0).stderr.contains("every session ends"), "{}", out.stderr);
}

#[test]
fn create_makes_an_owner_only_file() {
    let d = Dir::new();
    assert!(d.run(&["rotate", "--env-file", ".env"]).code(2).stderr.contains("--create"));
    assert!(!d.path(".env").exists());
    let out = d.run(&["rotate", "--env-file", ".env", "--create"]);
    out.code(0);
    // The table says the file was created; no "was missing" note for each key of it.
    assert!(out.stdout.contains(".env (created)"), "{}", out.stdout);
    assert!(!out.stderr.contains("was missing"), "{}", out.stderr);
    assert_eq!(fs::metadata(d.path(".env")).unwrap().permissions().mode() & 0o777, 0o600);
    let text = d.read_str(".env");
    assert_eq!(
        text.lines().map(|l| l.split_once('=').unwrap().0).collect::<Vec<_>>(),
        ["JWT_SECRET", "JWT_REFRESH_SECRET", "SESSION_SECRET"]
    );
    d.run(&["check", "--env-file", ".env", "--strict"]).code(0);
}

#[test]
fn backup_is_owner_only_and_warned_about_when_not_ignored() {
    let d = Dir::new();
    let git = |args: &[&str]| std::process::Command::new("git").current_dir(d.tmp.path()).args(args).output().unwrap();
    git(&["init", "-q"]);
    d.write(".env", "JWT_SECRET=old\n");
    fs::set_permissions(d.path(".env"), fs::Permissions::from_mode(0o644)).unwrap();
    let out = d.run(&["rotate", "--backup"]);
    out.code(0);
    let backups: Vec<_> = fs::read_dir(d.tmp.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains(".env.bak-"))
        .collect();
    assert_eq!(backups.len(), 1);
    assert_eq!(fs::read_to_string(&backups[0]).unwrap(), "JWT_SECRET=old\n");
    assert_eq!(fs::metadata(&backups[0]).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(out.stderr.contains("not ignored by git"), "{}", out.stderr);
    assert!(
        out.stderr
            .contains(&format!(".env: the old file is kept in {}", backups[0].file_name().unwrap().to_string_lossy())),
        "{}",
        out.stderr
    );
    d.write(".gitignore", "*.bak-*\n");
    assert!(!d.run(&["rotate", "--backup"]).code(0).stderr.contains("not ignored by git"));
}

/// Backups made in the same second never overwrite each other: each run's original
/// secrets stay somewhere, and --json names every backup.
#[test]
fn backups_in_the_same_second_all_survive() {
    let d = Dir::new();
    d.write(".env", "JWT_SECRET=first\n");
    let mut seen = Vec::new();
    for _ in 0..4 {
        let before = d.read_str(".env");
        let j = d.run(&["--json", "rotate", "--backup", "--only", "JWT_SECRET"]).code(0).json();
        let b = j["files"][0]["backup"].as_str().unwrap().to_string();
        assert_eq!(d.read_str(&b), before, "{b} does not hold what the run replaced");
        seen.push((b, before));
    }
    let names: std::collections::BTreeSet<&String> = seen.iter().map(|(b, _)| b).collect();
    assert_eq!(names.len(), 4, "a backup was overwritten: {seen:?}");
    for (b, before) in &seen {
        assert_eq!(&d.read_str(b), before);
    }
    // Concurrent runs too (they queue on the lock, and may share a second).
    let children: Vec<_> = (0..4)
        .map(|_| {
            d.cmd()
                .args(["rotate", "--backup", "--only", "JWT_SECRET"])
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let backups = fs::read_dir(d.tmp.path())
        .unwrap()
        .filter(|e| e.as_ref().unwrap().file_name().to_string_lossy().starts_with(".env.bak-"))
        .count();
    assert_eq!(backups, 8);
}

#[test]
fn symlinks_are_written_through() {
    let d = Dir::new();
    d.write("real/.env", "JWT_SECRET=old\n");
    std::os::unix::fs::symlink(d.path("real/.env"), d.path(".env")).unwrap();
    d.run(&["rotate", "--only", "JWT_SECRET"]).code(0);
    assert!(fs::symlink_metadata(d.path(".env")).unwrap().file_type().is_symlink());
    assert_ne!(d.read_str("real/.env"), "JWT_SECRET=old\n");
}

/// Any failure, in any file, leaves every file byte-identical.
#[test]
fn failures_write_nothing() {
    let d = Dir::new();
    let env = "JWT_SECRET=old\n";
    d.write(".env", env);
    let check_untouched = |d: &Dir| {
        assert_eq!(d.read_str(".env"), env);
        let names: Vec<String> = fs::read_dir(d.tmp.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert!(!names.iter().any(|n| n.contains("aspjwt-tmp")), "temp files left: {names:?}");
    };
    // An invalid compose file second.
    d.write("bad.yml", "services:\n  api: [\n");
    let out = d.run(&["rotate", "--env-file", ".env", "--compose", "bad.yml"]);
    assert!(out.code(2).stderr.contains("bad.yml:2:8: flow sequence opened at 2:8 is never closed"), "{}", out.stderr);
    check_untouched(&d);
    // A directory where the second file should be.
    fs::create_dir(d.path("dir.env")).unwrap();
    let out = d.run(&["rotate", "--env-file", ".env", "--env-file", "dir.env"]);
    assert!(out.code(2).stderr.contains("dir.env: is a directory, not a regular file"), "{}", out.stderr);
    check_untouched(&d);
    // A second path that runs through a regular file: fails while staging, after the first was staged.
    d.write("plain", "x");
    let out = d.run(&["rotate", "--env-file", ".env", "--env-file", "plain/child.env", "--create"]);
    out.code(2);
    check_untouched(&d);
    // A compose literal that can't be edited losslessly.
    d.write("esc.yml", "services:\n  a:\n    environment:\n      JWT_SECRET: \"a\\tb\"\n");
    let out = d.run(&["rotate", "--env-file", ".env", "--compose", "esc.yml"]);
    assert!(out.code(2).stderr.contains("esc.yml:4:19"), "{}", out.stderr);
    check_untouched(&d);
    // UTF-16 is refused, not transcoded.
    d.write("u16.env", b"\xff\xfeA\x00=\x001\x00");
    let out = d.run(&["rotate", "--env-file", ".env", "--env-file", "u16.env"]);
    assert!(out.code(2).stderr.contains("UTF-16"), "{}", out.stderr);
    check_untouched(&d);
    assert_eq!(d.read("u16.env"), b"\xff\xfeA\x00=\x001\x00");
    // A syntax error names line and column.
    d.write("syntax.env", "A=1\nB=\"unterminated\n");
    let out = d.run(&["rotate", "--env-file", ".env", "--env-file", "syntax.env"]);
    assert!(out.code(2).stderr.contains("syntax.env:2:3: unterminated double quote"), "{}", out.stderr);
    check_untouched(&d);
    // The same file twice.
    let out = d.run(&["rotate", "--env-file", ".env", "--env-file", "./.env"]);
    assert!(out.code(2).stderr.contains("named twice"), "{}", out.stderr);
    check_untouched(&d);
}

#[test]
fn key_flag_validation() {
    let d = Dir::new();
    d.write(".env", "");
    d.run(&["rotate", "--key", "BAD-NAME"]).code(2);
    d.run(&["rotate", "--key", "X:8"]).code(2);
    d.run(&["rotate", "--only", "POSTGRES_PASSWORD"]).code(2);
    assert_eq!(d.read_str(".env"), "");
}

/// A literal shared through a YAML alias with another key (as sentry's self-hosted
/// compose file does with its CA bundle path): rotating either key would change the
/// other, so the binary refuses, names the place and writes nothing.
#[test]
fn a_literal_shared_through_an_alias_is_never_rotated() {
    let d = Dir::new();
    let compose = "services:\n  web:\n    environment:\n      DEFAULT_CA_BUNDLE: &ca \"/etc/ssl/certs/ca-certificates.crt\"\n      REQUESTS_CA_BUNDLE: *ca\n      JWT_SECRET: ${JWT_SECRET}\n";
    d.write("dc.yml", compose);
    for key in ["DEFAULT_CA_BUNDLE", "REQUESTS_CA_BUNDLE"] {
        let out = d.run(&["rotate", "--compose", "dc.yml", "--key", key, "--only", key]);
        assert!(out.code(2).stderr.contains("dc.yml"), "{key}: {}", out.stderr);
        assert_eq!(d.read_str("dc.yml"), compose, "{key}: the file changed");
    }
}

/// Concurrent rotations of the same files: each waits for the other (an advisory lock
/// from the first read to the last rename), so every run's edit is made on the one
/// before's result and the files never disagree.
#[test]
fn concurrent_rotations_lose_nothing_and_never_disagree() {
    let d = Dir::new();
    d.run(&["rotate", "--env-file", ".env", "--create", "-q"]).code(0);
    d.write("dc.yml", "services:\n  api:\n    environment:\n      JWT_SECRET: \"old\"\n");
    let spawn = |args: Vec<String>| {
        let mut cmd = d.cmd();
        cmd.args(&args);
        std::thread::spawn(move || crate::util::run(&mut cmd, None).code)
    };
    for _ in 0..3 {
        let runs: Vec<_> = (0..6)
            .map(|_| spawn(["rotate", "--env-file", ".env", "--compose", "dc.yml", "-q"].map(String::from).to_vec()))
            .collect();
        assert!(runs.into_iter().all(|h| h.join().unwrap() == 0));
        let env_jwt = value(&d.read_str(".env"), "JWT_SECRET");
        let dc = d.read_str("dc.yml");
        assert!(dc.contains(&format!("JWT_SECRET: \"{env_jwt}\"")), ".env and dc.yml disagree:\n{dc}");
    }
    let runs: Vec<_> = (0..20)
        .map(|i| {
            spawn(
                ["rotate", "--env-file", ".env", "--key", &format!("EXTRA_{i}"), "--only", &format!("EXTRA_{i}"), "-q"]
                    .map(String::from)
                    .to_vec(),
            )
        })
        .collect();
    assert!(runs.into_iter().all(|h| h.join().unwrap() == 0));
    let env = d.read_str(".env");
    for i in 0..20 {
        assert!(env.contains(&format!("EXTRA_{i}=")), "EXTRA_{i} was lost:\n{env}");
    }
    // A run that cannot have the lock in time says so, exits 2 and writes nothing.
    let folder = std::fs::File::open(d.path("")).unwrap();
    folder.lock().unwrap();
    let before = d.read_str(".env");
    let out = d.run(&["rotate", "--env-file", ".env", "--lock-timeout", "1s"]);
    assert!(out.code(2).stderr.contains("another aspjwt is rotating .env"), "{}", out.stderr);
    assert_eq!(d.read_str(".env"), before);
}

#[test]
fn a_known_secret_cannot_be_rotated_below_its_size() {
    let d = Dir::new();
    d.run(&["rotate", "--env-file", ".env", "--create", "-q"]).code(0);
    let before = d.read_str(".env");
    let out = d.run(&["rotate", "--env-file", ".env", "--key", "JWT_SECRET:16"]);
    assert!(out.code(2).stderr.contains("JWT_SECRET needs at least 64 random bytes"), "{}", out.stderr);
    assert_eq!(d.read_str(".env"), before);
    d.run(&["rotate", "--env-file", ".env", "--key", "SESSION_SECRET:48", "-q"]).code(0);
    d.run(&["check", "--env-file", ".env"]).code(0);
}

/// Only regular files (or links to them) of at most ASPJWT_MAX_FILE_SIZE are read: a
/// device, a FIFO or an oversized file is refused at once with exit 2, naming it.
#[test]
fn inputs_are_bounded_regular_files() {
    let d = Dir::new();
    let bounded = |cmd: &mut std::process::Command| {
        cmd.stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let started = std::time::Instant::now();
        while child.try_wait().unwrap().is_none() {
            if started.elapsed() > std::time::Duration::from_secs(10) {
                let _ = child.kill();
                panic!("hung on a non-regular input");
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        let out = child.wait_with_output().unwrap();
        (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
    };
    let (code, err) = bounded(d.cmd().args(["check", "--env-file", "/dev/zero"]));
    assert_eq!(code, Some(2));
    assert!(err.contains("/dev/zero: is a character device, not a regular file"), "{err}");
    let fifo = d.path("pipe.env");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    for args in
        [&["rotate", "--env-file", "pipe.env"][..], &["check", "--compose", "pipe.env"], &["decode", "@pipe.env"]]
    {
        let (code, err) = bounded(d.cmd().args(args));
        assert_eq!(code, Some(2), "{args:?}: {err}");
        assert!(err.contains("pipe.env: is a FIFO"), "{args:?}: {err}");
    }
    let env = "JWT_SECRET=old\nPORT=8080\n";
    d.write(".env", env);
    let (code, err) = bounded(d.cmd().args(["rotate", "--env-file", ".env"]).env("ASPJWT_MAX_FILE_SIZE", "16"));
    assert_eq!(code, Some(2));
    assert!(err.contains(".env: is larger than 16 bytes (ASPJWT_MAX_FILE_SIZE)"), "{err}");
    assert_eq!(d.read_str(".env"), env, "nothing written");
    let (code, err) = bounded(d.cmd().args(["check", "--env-file", ".env"]).env("ASPJWT_MAX_FILE_SIZE", "lots"));
    assert_eq!(code, Some(2));
    assert!(err.contains("ASPJWT_MAX_FILE_SIZE \"lots\" is not a size"), "{err}");
    // A link to a regular file is read through.
    std::os::unix::fs::symlink(d.path(".env"), d.path("link.env")).unwrap();
    assert_eq!(bounded(d.cmd().args(["check", "--env-file", "link.env"])).0, Some(1));
}

/// Node's backtick quoting (the CRM backend's dotenv reads it): every other byte kept,
/// a backtick-quoted secret rotated in its quotes, and Node reads the new value.
#[test]
fn backtick_quoted_files_rotate_in_place() {
    let d = Dir::new();
    let env =
        "# crm\nPEM=`-----BEGIN KEY-----\nabc\n\"q\" 'q'\n-----END KEY-----`\nJWT_SECRET=`old-value` # note\nTAIL=1\n";
    d.write(".env", env);
    d.run(&["rotate", "--env-file", ".env", "--only", "JWT_SECRET", "-q"]).code(0);
    let new = d.read_str(".env");
    let secret = value(&new, "JWT_SECRET");
    assert_eq!(new, env.replace("`old-value`", &format!("`{secret}`")));
    let node = crate::util::node_dotenv(&[d.path(".env")]);
    assert_eq!(node[".env"]["JWT_SECRET"], secret.as_str());
    assert_eq!(node[".env"]["PEM"], "-----BEGIN KEY-----\nabc\n\"q\" 'q'\n-----END KEY-----");
    assert_eq!(value(&new, "PEM"), node[".env"]["PEM"].as_str().unwrap());
}

/// A run killed between staging and renaming leaves a temp file holding its secrets; the
/// next run (holding the lock) removes it and says so.
#[test]
fn a_killed_runs_temp_files_are_removed_by_the_next() {
    let d = Dir::new();
    d.write(".env", "JWT_SECRET=old\n");
    d.write("..env.Ab12Cd.aspjwt-tmp", "JWT_SECRET=drawn-by-a-killed-run\n");
    let out = d.run(&["rotate", "--env-file", ".env"]);
    assert!(out.code(0).stderr.contains("removed 1 temp file(s) an interrupted run left"), "{}", out.stderr);
    assert!(!d.path("..env.Ab12Cd.aspjwt-tmp").exists());
}
