//! `aspjwt incident`: the playbook for a suspected token compromise, against a real
//! service on each backend, and every way it must stop before changing anything.

use std::time::Duration;

use serde_json::{Value, json};

use crate::pg::sqlite_and_postgres;
use crate::service::{PASSWORD, Service, csrf, get, setup_on};
use crate::util::{Output, long_base64_runs};

sqlite_and_postgres!(an_incident_rotates_revokes_records_reloads_and_reports);

const ENV: &str = "TRUSTED_PROXIES=127.0.0.1\nAUTH_RATE_BURST=1000\nREFRESH_REUSE_GRACE=1s\n";

fn login_from(s: &Service, email: &str, password: &str, ip: &str) -> u16 {
    reqwest::blocking::Client::new()
        .post(s.url("/api/auth/login"))
        .header("x-forwarded-for", ip)
        .json(&json!({"email": email, "password": password}))
        .send()
        .unwrap()
        .status()
        .as_u16()
}

/// `aspjwt incident` in the service's folder with its database.
fn incident(s: &Service, args: &[&str]) -> Output {
    let mut all = vec!["incident", "--env-file", ".env"];
    all.extend_from_slice(args);
    s.cli(&all)
}

fn an_incident_rotates_revokes_records_reloads_and_reports(db: Option<&str>) {
    let s = Service::start(setup_on(
        db,
        ENV,
        &[("a@example.com", "admin"), ("b@example.com", "support"), ("c@example.com", "operator")],
    ));
    // Sessions: a twice, b once, c none.
    let a1 = s.login("a@example.com", PASSWORD);
    let a2 = s.login("a@example.com", PASSWORD);
    let b1 = s.login("b@example.com", PASSWORD);
    // The suspicious part: failures from one address, a lock, a reuse, a login from a new address.
    for _ in 0..3 {
        assert_eq!(login_from(&s, "b@example.com", "guess", "203.0.113.5"), 401);
    }
    for _ in 0..10 {
        login_from(&s, "ghost@example.com", "guess", "203.0.113.6");
    }
    let reused = s.login("c@example.com", PASSWORD);
    let (rc, cc) = (reused.cookie("refresh_token").unwrap(), csrf(&reused));
    assert_eq!(s.refresh(&rc, &cc).status, 200);
    std::thread::sleep(Duration::from_millis(1200));
    assert_eq!(s.refresh(&rc, &cc).status, 401, "reuse detected");
    assert_eq!(login_from(&s, "b@example.com", PASSWORD, "198.51.100.9"), 200);
    let b2_new_address = 1;

    s.dir.write("svc.pid", format!("{}\n", s.pid()));
    let before = s.dir.read_str(".env");
    let out = incident(&s, &["--json", "--yes", "--pid-file", "svc.pid", "--url", &s.base, "--report", "affected.csv"]);
    let report = out.code(0).json();
    assert_eq!(report["ok"], true, "{report}");
    let steps: Vec<&str> = report["steps"].as_array().unwrap().iter().map(|s| s["step"].as_str().unwrap()).collect();
    assert_eq!(steps, ["rotate", "revoke", "audit", "reload", "reload", "report"]);

    // 1. Every secret rotated; the service took them on SIGHUP.
    let after = s.dir.read_str(".env");
    for k in ["JWT_SECRET", "JWT_REFRESH_SECRET", "SESSION_SECRET"] {
        let value = |text: &str| text.lines().find(|l| l.starts_with(&format!("{k}="))).unwrap().to_string();
        assert_ne!(value(&before), value(&after), "{k} not rotated");
    }
    let health = get(&s.url("/api/health"), &[], &[]).json();
    assert_eq!(health["keys"]["access"], report["new_key_ids"]["JWT_SECRET"]);
    // 2. Every session ended: old tokens are refused everywhere.
    for l in [&a1, &a2, &b1] {
        let info = get(&s.url("/api/auth/token-info"), &[("access_token", &l.cookie("access_token").unwrap())], &[]);
        assert_eq!(info.status, 401);
        assert_eq!(s.refresh(&l.cookie("refresh_token").unwrap(), &csrf(l)).status, 401);
    }
    assert!(s.cli(&["--json", "sessions", "list"]).rows().as_array().unwrap().is_empty());
    // Affected: everyone who had a live session (a: 2, b: 1 + the new-address login).
    let affected: Vec<(String, u64)> = report["affected_users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| (u["email"].as_str().unwrap().to_string(), u["sessions_ended"].as_u64().unwrap()))
        .collect();
    assert_eq!(affected, [("a@example.com".into(), 2), ("b@example.com".into(), 1 + b2_new_address)]);
    let csv = s.dir.read_str("affected.csv");
    assert!(csv.starts_with("email,name,role,last_login,sessions_ended\r\na@example.com,Test User,admin,"), "{csv}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(s.dir.path("affected.csv")).unwrap().permissions().mode() & 0o777, 0o600);
    // 3. Recorded, with who and the new key ids, never a secret.
    let events = s.cli(&["--json", "audit", "--event", "incident_declared"]).code(0).rows();
    let reason = events[0]["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("declared by ") && reason.contains('@'), "{reason}");
    assert!(reason.contains(report["new_key_ids"]["JWT_SECRET"].as_str().unwrap()), "{reason}");
    let secrets = long_base64_runs(&after);
    for leak in long_base64_runs(&(out.stdout.clone() + &out.stderr + &events.to_string() + &s.logs())) {
        assert!(!secrets.contains(&leak), "a secret leaked into the report, the audit log or the logs");
    }
    // 5. The suspicious activity of the last 24 hours.
    let sus = &report["suspicious"];
    assert_eq!(sus["failed_logins_by_address"][0], json!({"key": "203.0.113.6", "count": 10, "at_least": false}));
    assert!(
        sus["failed_logins_by_address"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "203.0.113.5", "count": 3, "at_least": false}))
    );
    assert!(
        sus["failed_logins_by_email"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "b@example.com", "count": 3, "at_least": false}))
    );
    assert_eq!(sus["account_locks"][0]["email"], "ghost@example.com");
    assert_eq!(sus["refresh_token_reuse"][0]["email"], "c@example.com");
    let new: Vec<&str> =
        sus["logins_from_new_addresses"].as_array().unwrap().iter().map(|x| x["ip"].as_str().unwrap()).collect();
    assert!(new.contains(&"198.51.100.9"), "{new:?}");
    // The service works on: a new login with the new secrets.
    assert_eq!(s.login("a@example.com", PASSWORD).status, 200);
}

fn sqlite_service() -> Service {
    Service::start(setup_on(None, ENV, &[("a@example.com", "admin")]))
}

/// Nothing changed: the .env, the live sessions, no incident in the audit log.
#[track_caller]
fn assert_untouched(s: &Service, env: &str, access: &str) {
    assert_eq!(s.dir.read_str(".env"), env, "the .env changed");
    assert_eq!(get(&s.url("/api/auth/token-info"), &[("access_token", access)], &[]).status, 200, "a session ended");
    assert!(s.cli(&["--json", "audit", "--event", "incident_declared"]).rows().as_array().unwrap().is_empty());
}

#[test]
fn it_asks_first_and_dry_run_changes_nothing() {
    let s = sqlite_service();
    let access = s.login("a@example.com", PASSWORD).cookie("access_token").unwrap();
    let env = s.dir.read_str(".env");
    // Not a terminal and no --yes: refused.
    let out = incident(&s, &[]);
    assert!(out.code(2).stderr.contains("--yes"), "{}", out.stderr);
    assert_untouched(&s, &env, &access);
    // A terminal that does not answer "yes".
    let mut cmd = std::process::Command::new("script");
    cmd.current_dir(s.dir.path("")).args([
        "-qec",
        &format!("{} incident --env-file .env --db aspjwt.db", crate::util::BIN),
        "/dev/null",
    ]);
    let no = crate::util::run(&mut cmd, Some(b"no\n"));
    assert_eq!(no.code, 2, "{}", no.stdout);
    assert!(no.stdout.contains("Type \"yes\""), "{}", no.stdout);
    assert_untouched(&s, &env, &access);
    // A file others can read gets the warning rotate gives.
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(s.dir.path(".env"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let warned = incident(&s, &["--dry-run"]);
    assert!(warned.code(0).stderr.contains("readable by group or others (mode 0644)"), "{}", warned.stderr);
    std::fs::set_permissions(s.dir.path(".env"), std::fs::Permissions::from_mode(0o600)).unwrap();
    // --dry-run: the whole report, nothing done.
    let dry = incident(&s, &["--json", "--dry-run", "--report", "would.csv"]).code(0).json();
    assert_eq!(dry["dry_run"], true);
    // Who declared it is the real user, whatever USER or LOGNAME say (review of issue 19).
    let spoofed = crate::service::run_env(
        &s.dir,
        &["--json", "incident", "--env-file", ".env", "--db", "aspjwt.db", "--dry-run"],
        &[("USER", "mallory"), ("LOGNAME", "mallory")],
    )
    .code(0)
    .json();
    let by = spoofed["declared_by"].as_str().unwrap();
    let real = String::from_utf8(std::process::Command::new("id").arg("-un").output().unwrap().stdout).unwrap();
    assert!(by.starts_with(&format!("{}@", real.trim())), "{by}");
    assert!(!by.contains("mallory"), "{by}");
    // A pid file that is a device or a FIFO is refused at once, not read for ever.
    let out = incident(&s, &["--dry-run", "--pid-file", "/dev/zero"]);
    assert!(
        out.code(2).stderr.contains("--pid-file /dev/zero: is a character device, not a regular file"),
        "{}",
        out.stderr
    );
    assert_eq!(dry["affected_users"][0]["email"], "a@example.com");
    assert!(dry["steps"][0]["detail"].as_str().unwrap().starts_with("would rotate"));
    assert!(!s.dir.path("would.csv").exists());
    assert_untouched(&s, &env, &access);
    // Yes on the terminal does it.
    let yes = crate::util::run(&mut cmd, Some(b"yes\n"));
    assert_eq!(yes.code, 0, "{}", yes.stdout);
    assert_ne!(s.dir.read_str(".env"), env);
}

#[test]
fn a_rotation_that_fails_stops_everything() {
    let s = sqlite_service();
    let access = s.login("a@example.com", PASSWORD).cookie("access_token").unwrap();
    let env = s.dir.read_str(".env");
    s.dir.write("dc.yml", "services:\n  a:\n    environment:\n      JWT_SECRET: [unclosed\n");
    let out = incident(&s, &["--yes", "--compose", "dc.yml"]);
    assert!(out.code(2).stderr.contains("dc.yml") && out.stderr.contains("nothing was changed"), "{}", out.stderr);
    assert_untouched(&s, &env, &access);
    // Bad input of any kind is caught before the rotation too.
    s.dir.write("bad.pid", "not a pid\n");
    assert!(incident(&s, &["--yes", "--pid-file", "bad.pid"]).code(2).stderr.contains("bad.pid"));
    assert!(incident(&s, &["--yes", "--url", "ftp://x"]).code(2).stderr.contains("--url"));
    let typo = s.dir.run(&["incident", "--env-file", ".env", "--yes", "--db", "typo.db"]);
    assert!(typo.code(2).stderr.contains("typo.db: no such database file"), "{}", typo.stderr);
    assert_untouched(&s, &env, &access);
}

#[test]
fn a_step_after_the_rotation_that_fails_is_reported_and_exits_1() {
    let s = sqlite_service();
    s.login("a@example.com", PASSWORD);
    // The service is reloaded, but the URL given for it serves nothing.
    s.dir.write("svc.pid", format!("{}\n", s.pid()));
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let closed = format!("http://{closed}");
    let out = incident(&s, &["--json", "--yes", "--pid-file", "svc.pid", "--url", &closed]);
    let report = out.code(1).json();
    assert_eq!(report["ok"], false);
    let done: Vec<(String, bool)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["step"].as_str().unwrap().to_string(), s["ok"].as_bool().unwrap()))
        .collect();
    assert_eq!(
        done,
        [
            ("rotate".into(), true),
            ("revoke".into(), true),
            ("audit".into(), true),
            ("reload".into(), true),
            ("reload".into(), false)
        ]
    );
    // Human output says the same, one line a step, and which failed.
    let human = incident(&s, &["--yes", "--url", &closed]);
    assert!(human.code(1).stdout.contains("✖ reload") && human.stdout.contains(&closed), "{}", human.stdout);
}

#[test]
fn an_incident_refuses_what_it_cannot_do_before_it_changes_anything() {
    let s = sqlite_service();
    let access = s.login("a@example.com", PASSWORD).cookie("access_token").unwrap();
    let env = s.dir.read_str(".env");
    // A compose file whose secrets all come from an .env it was not given: nothing to rotate.
    s.dir.write("dc.yml", "services:\n  api:\n    environment:\n      JWT_SECRET: ${JWT_SECRET}\n      JWT_REFRESH_SECRET: ${JWT_REFRESH_SECRET}\n      SESSION_SECRET: ${SESSION_SECRET}\n");
    let out = s.dir.run(&["incident", "--compose", "dc.yml", "--db", "aspjwt.db", "--yes"]);
    assert!(out.code(2).stderr.contains("no named file holds JWT_SECRET"), "{}", out.stderr);
    // A pid file naming a process that is not aspjwt serve is never signalled.
    let mut other = std::process::Command::new("sleep").arg("30").spawn().unwrap();
    s.dir.write("stale.pid", format!("{}\n", other.id()));
    let out = incident(&s, &["--yes", "--pid-file", "stale.pid"]);
    assert!(out.code(2).stderr.contains("is not `aspjwt serve`"), "{}", out.stderr);
    assert!(other.try_wait().unwrap().is_none(), "the other process was signalled");
    other.kill().unwrap();
    other.wait().unwrap();
    // A report path that cannot be written, and a window too long to compute.
    std::fs::create_dir_all(s.dir.path("a-folder")).unwrap();
    assert!(incident(&s, &["--yes", "--report", "a-folder"]).code(2).stderr.contains("--report"));
    // A dangling link, and a folder that takes no new file (a path through a regular
    // file stands in for an immutable folder: root writes anywhere else), are found
    // before anything is rotated.
    std::os::unix::fs::symlink(s.dir.path("no-such-folder/r.csv"), s.dir.path("dangling.csv")).unwrap();
    let out = incident(&s, &["--yes", "--report", "dangling.csv"]);
    assert!(out.code(2).stderr.contains("--report dangling.csv: is a symbolic link"), "{}", out.stderr);
    // A report must never replace the files it rotates, the database, or any file that
    // is not an earlier report (review of issue 19: --report .env lost the new secrets).
    for precious in [".env", "aspjwt.db", "aspjwt.db-wal", "aspjwt.db-journal"] {
        let out = incident(&s, &["--yes", "--report", precious]);
        let why = if precious.contains("db-") {
            "is part of the SQLite database"
        } else {
            "exists and is not an incident report"
        };
        assert!(out.code(2).stderr.contains(&format!("--report {precious}: {why}")), "{}", out.stderr);
    }
    s.dir.write("plainfile", "x");
    let out = incident(&s, &["--yes", "--report", "plainfile/r.csv"]);
    assert!(out.code(2).stderr.contains("--report plainfile/r.csv"), "{}", out.stderr);
    assert!(incident(&s, &["--yes", "--since", "9223372036854776"]).code(2).stderr.contains("--since"));
    assert_untouched(&s, &env, &access);
}

#[test]
fn affected_users_are_exactly_those_whose_sessions_this_incident_ended() {
    let s = Service::start(setup_on(None, ENV, &[("a@example.com", "admin"), ("b@example.com", "support")]));
    s.login("a@example.com", PASSWORD);
    s.login("b@example.com", PASSWORD);
    s.login("b@example.com", PASSWORD);
    // A session that ran out long ago but was never revoked is nobody's news.
    let store = aspjwt::store::SqliteStore::open(&s.dir.path("aspjwt.db")).unwrap();
    {
        use aspjwt::store::Store;
        let user = store.user_by_email("a@example.com").unwrap().unwrap();
        store
            .create_session(aspjwt::store::NewSession {
                id: "expired-long-ago".into(),
                user_id: user.id.clone(),
                email: user.email.clone(),
                role: user.role.clone(),
                created_at: 1_000_000,
                expires_at: 1_000_100,
                issued: aspjwt::store::Issued {
                    access_jti: "a".into(),
                    access_iat: 1_000_000,
                    access_exp: 1_000_050,
                    refresh_jti: "r".into(),
                    refresh_iat: 1_000_000,
                    refresh_exp: 1_000_100,
                },
                ip: None,
                user_agent: None,
                password_hash: user.password_hash.clone(),
                rehash: None,
            })
            .unwrap();
    }
    // Two incidents at once: the second waits for the first and then finds nothing live.
    let runs: Vec<_> = (0..2)
        .map(|_| {
            let mut cmd = s.dir.cmd();
            cmd.args(["--json", "incident", "--env-file", ".env", "--db", "aspjwt.db", "--yes"]);
            std::thread::spawn(move || crate::util::run(&mut cmd, None))
        })
        .collect();
    let reports: Vec<Value> = runs.into_iter().map(|h| h.join().unwrap().code(0).json()).collect();
    let ended: Vec<u64> = reports
        .iter()
        .map(|r| r["affected_users"].as_array().unwrap().iter().map(|u| u["sessions_ended"].as_u64().unwrap()).sum())
        .collect();
    assert_eq!(ended.iter().sum::<u64>(), 3, "the three live sessions, once: {ended:?}");
    assert!(ended.contains(&0), "the second run ended nothing: {ended:?}");
    // The .env holds the secrets of the run that went last, and the two runs drew different ones.
    let (k1, k2) = (&reports[0]["new_key_ids"]["JWT_SECRET"], &reports[1]["new_key_ids"]["JWT_SECRET"]);
    assert_ne!(k1, k2);
    let jwt = s.dir.read_str(".env").lines().find_map(|l| l.strip_prefix("JWT_SECRET=").map(str::to_string)).unwrap();
    let kid = aspjwt::token::key_id(&aspjwt::token::Secret::new(jwt));
    assert!(k1 == kid.as_str() || k2 == kid.as_str(), "the .env holds neither run's secret");
}

/// A service whose real environment keeps a previous secret open still accepts tokens
/// signed with it after the reload: the incident's verification must say so, not pass
/// on the new key ids alone (review of issue 19).
#[test]
fn an_open_graceful_window_fails_the_reload_check() {
    let dir = crate::service::setup_on(None, ENV, &[("a@example.com", "admin")]);
    let generated = dir.run(&["generate"]).code(0).stdout.clone();
    let previous = generated.lines().find_map(|l| l.strip_prefix("JWT_SECRET=")).unwrap().to_string();
    let until = humantime::format_rfc3339_seconds(std::time::SystemTime::now() + Duration::from_secs(600)).to_string();
    let s = Service::start_with(dir, &[("JWT_SECRET_PREVIOUS", &previous), ("JWT_SECRET_PREVIOUS_UNTIL", &until)]);
    s.dir.write("svc.pid", format!("{}\n", s.pid()));
    let report = incident(&s, &["--json", "--yes", "--pid-file", "svc.pid", "--url", &s.base]).code(1).json();
    let last = report["steps"].as_array().unwrap().last().unwrap().clone();
    assert_eq!((last["step"].as_str(), last["ok"].as_bool()), (Some("reload"), Some(false)), "{report}");
    assert!(last["detail"].as_str().unwrap().contains("still accepts previous secrets"), "{last}");
}

/// Without --url, a SIGHUP delivered is not a reload: the service records its reload
/// with its pid, and a service whose real environment overrides the rotated file reloads
/// the old secret, which the incident reports as a failure (review of issue 19).
#[test]
fn a_reload_that_keeps_the_old_secrets_fails_without_a_url() {
    let dir = crate::service::setup_on(None, ENV, &[("a@example.com", "admin")]);
    let env = dir.read_str(".env");
    let jwt = env.lines().find_map(|l| l.strip_prefix("JWT_SECRET=")).unwrap().to_string();
    let s = Service::start_with(dir, &[("JWT_SECRET", &jwt)]);
    s.dir.write("svc.pid", format!("{}\n", s.pid()));
    let report = incident(&s, &["--json", "--yes", "--pid-file", "svc.pid"]).code(1).json();
    let reload = report["steps"].as_array().unwrap().iter().find(|st| st["step"] == "reload").unwrap().clone();
    assert_eq!(reload["ok"], false, "{report}");
    assert!(reload["detail"].as_str().unwrap().contains("not with these files' secrets"), "{reload}");
    // A service that reads the rotated file reloads them: ok, from its own audit record.
    let plain = sqlite_service();
    plain.dir.write("svc.pid", format!("{}\n", plain.pid()));
    let report = incident(&plain, &["--json", "--yes", "--pid-file", "svc.pid"]).code(0).json();
    let reload = report["steps"].as_array().unwrap().iter().find(|st| st["step"] == "reload").unwrap().clone();
    assert!(reload["detail"].as_str().unwrap().contains("reloaded with the new key ids"), "{reload}");
}

/// The dry run shows every step, the --url check included; a file with nothing to rotate
/// is named as such; a missing .env is not met with a flag incident does not have.
#[test]
fn the_dry_run_shows_every_step_and_every_file() {
    let s = sqlite_service();
    s.dir.write("other.yml", "services:\n  web:\n    environment:\n      LOG_LEVEL: info\n");
    let dry = incident(&s, &["--json", "--dry-run", "--compose", "other.yml", "--url", &s.base]).code(0).json();
    let details: Vec<String> =
        dry["steps"].as_array().unwrap().iter().map(|st| st["detail"].as_str().unwrap().to_string()).collect();
    assert!(details.iter().any(|d| d.contains(&format!("would check that {}", s.base))), "{details:?}");
    assert!(details[0].contains("other.yml: nothing to rotate"), "{details:?}");
    let missing = s.dir.run(&["incident", "--env-file", "nothere.env", "--db", "aspjwt.db", "--yes"]);
    assert!(missing.code(2).stderr.contains("nothere.env: no such file"), "{}", missing.stderr);
    assert!(!missing.stderr.contains("--create"), "{}", missing.stderr);
    // rotate still offers it.
    assert!(s.dir.run(&["rotate", "--env-file", "nothere.env"]).code(2).stderr.contains("pass --create"));
}

/// A service in its own PID namespace (a container) knows itself as another pid than
/// the one the host signals; its reload record is still recognised (review of issue 19).
#[test]
fn a_service_in_another_pid_namespace_is_confirmed() {
    use std::io::BufRead;
    let dir = crate::service::setup_on(None, ENV, &[("a@example.com", "admin")]);
    let mut child = std::process::Command::new("unshare")
        .args(["--pid", "--fork", crate::util::BIN, "serve", "--bind", "127.0.0.1:0", "--db", "aspjwt.db"])
        .current_dir(dir.path(""))
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("unshare (util-linux) is required");
    let mut lines = std::io::BufReader::new(child.stdout.take().unwrap()).lines();
    let listening = lines.by_ref().map_while(Result::ok).find(|l| l.contains("\"event\":\"listening\"")).unwrap();
    assert!(listening.contains("\"pid\":1,"), "not in its own namespace: {listening}");
    std::thread::spawn(move || lines.for_each(drop));
    // Its pid here: the child of unshare.
    let host_pid = std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .find(|p| {
            std::fs::read_to_string(format!("/proc/{p}/status"))
                .is_ok_and(|s| s.lines().any(|l| l == format!("PPid:\t{}", child.id())))
        })
        .expect("the service under unshare");
    dir.write("svc.pid", format!("{host_pid}\n"));
    let out =
        dir.run(&["--json", "incident", "--env-file", ".env", "--db", "aspjwt.db", "--yes", "--pid-file", "svc.pid"]);
    let _ = std::process::Command::new("kill").arg(host_pid.to_string()).status();
    let _ = child.wait();
    let report = out.code(0).json();
    let reload = report["steps"].as_array().unwrap().iter().find(|st| st["step"] == "reload").unwrap().clone();
    assert!(reload["detail"].as_str().unwrap().contains("reloaded with the new key ids"), "{reload}");
}
