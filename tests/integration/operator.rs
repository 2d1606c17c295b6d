//! The operator commands: users, sessions and the audit log, with and without the service.

use std::time::Duration;

use crate::pg::sqlite_and_postgres;
use crate::service::{PASSWORD, Service, get, setup_on, within};
use crate::util::Dir;

sqlite_and_postgres!(user_lifecycle_from_the_cli, sessions_list_and_revoke_one, audit_filters_and_escapes);

/// On PostgreSQL (`db`), the .env names it as ASPJWT_DB; else the default ./data/aspjwt.db.
fn user_lifecycle_from_the_cli(db: Option<&str>) {
    let d = Dir::new();
    d.run(&["rotate", "--create", "-q"]).code(0);
    if let Some(url) = db {
        d.write(".env", format!("{}ASPJWT_DB={url}\n", d.read_str(".env")));
    }
    // A generated password is printed once and works.
    let out = d.run(&["user", "add", "--email", "New@Example.com", "--name", "New Hire", "--role", "sales_agent"]);
    out.code(0);
    let pw = out.stdout.lines().find_map(|l| l.strip_prefix("password: ")).unwrap().to_string();
    assert_eq!(pw.len(), 20);
    assert!(out.stderr.contains("shown once"));
    let list = d.run(&["--json", "user", "list"]).code(0).rows();
    assert_eq!(list[0]["email"], "new@example.com");
    assert_eq!(list[0]["role"], "sales_agent");
    assert!(!list.to_string().contains("$argon2"), "hashes are never listed (their scheme is)");
    assert!(
        d.run(&["user", "add", "--email", "new@example.com", "--name", "x", "--role", "admin"])
            .code(2)
            .stderr
            .contains("already exists")
    );
    assert!(
        d.run(&["user", "add", "--email", "a@b.c", "--name", "x", "--role", "root"])
            .code(2)
            .stderr
            .contains("not a role")
    );
    assert!(
        d.run_stdin(
            &["user", "add", "--email", "a@b.c", "--name", "x", "--role", "admin", "--password-stdin"],
            b"short\n"
        )
        .code(2)
        .stderr
        .contains("at least 8")
    );
    assert!(d.run(&["user", "disable", "--email", "nobody@example.com"]).code(2).stderr.contains("no user"));
    let s = match db {
        Some(_) => {
            assert!(!d.path("data").exists(), "ASPJWT_DB in .env is used, not the default file");
            Service::start(d)
        }
        None => {
            // The default database is ./data/aspjwt.db, created owner-only.
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(std::fs::metadata(d.path("data/aspjwt.db")).unwrap().permissions().mode() & 0o777, 0o600);
            Service::start_with(d, &[("ASPJWT_DB", "data/aspjwt.db")])
        }
    };
    let login = |pw: &str| {
        crate::service::post_json(
            &s.url("/api/auth/login"),
            &serde_json::json!({"email": "new@example.com", "password": pw}),
            &[],
        )
    };
    let ok = login(&pw);
    assert_eq!(ok.status, 200);
    let access = ok.cookie("access_token").unwrap();
    // Disabling ends the sessions (access tokens too) and blocks logins.
    s.dir.run(&["user", "disable", "--email", "new@example.com"]).code(0);
    assert!(
        within(Duration::from_secs(2), || get(&s.url("/api/auth/token-info"), &[("access_token", &access)], &[])
            .status
            == 401)
        .is_some()
    );
    assert_eq!(login(&pw).status, 401);
    s.dir.run(&["user", "enable", "--email", "new@example.com"]).code(0);
    let access = login(&pw).cookie("access_token").unwrap();
    // A new password ends the sessions; the old one stops working.
    s.dir
        .run_stdin(
            &["user", "passwd", "--email", "new@example.com", "--password-stdin"],
            format!("{PASSWORD}\n").as_bytes(),
        )
        .code(0);
    assert!(
        within(Duration::from_secs(2), || get(&s.url("/api/auth/token-info"), &[("access_token", &access)], &[])
            .status
            == 401)
        .is_some()
    );
    assert_eq!(login(&pw).status, 401);
    let access = login(PASSWORD).cookie("access_token").unwrap();
    // A role change ends the sessions; the next login carries the new role.
    s.dir.run(&["user", "role", "--email", "new@example.com", "--role", "support"]).code(0);
    assert!(
        within(Duration::from_secs(2), || get(&s.url("/api/auth/token-info"), &[("access_token", &access)], &[])
            .status
            == 401)
        .is_some()
    );
    let fresh = login(PASSWORD).cookie("access_token").unwrap();
    assert_eq!(get(&s.url("/api/auth/token-info"), &[("access_token", &fresh)], &[]).json()["role"], "support");
    let events: Vec<String> = s
        .dir
        .run(&["--json", "audit", "--user", "new@example.com", "--limit", "0"])
        .code(0)
        .rows()
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event"].as_str().unwrap().to_string())
        .collect();
    for e in [
        "user_created",
        "user_disabled",
        "user_enabled",
        "password_changed",
        "role_changed",
        "session_revoked",
        "login_success",
        "login_failure",
    ] {
        assert!(events.iter().any(|x| x == e), "{e} not in {events:?}");
    }
}

fn sessions_list_and_revoke_one(db: Option<&str>) {
    let s = Service::start(setup_on(db, "", &[("a@example.com", "admin"), ("b@example.com", "operator")]));
    let a1 = s.login("a@example.com", PASSWORD).cookie("access_token").unwrap();
    let a2 = s.login("a@example.com", PASSWORD).cookie("access_token").unwrap();
    s.login("b@example.com", PASSWORD);
    let all = s.cli(&["--json", "sessions", "list"]).code(0).rows();
    assert_eq!(all.as_array().unwrap().len(), 3);
    let mine = s.cli(&["--json", "sessions", "list", "--user", "a@example.com"]).code(0).rows();
    assert_eq!(mine.as_array().unwrap().len(), 2);
    let sid = get(&s.url("/api/auth/token-info"), &[("access_token", &a1)], &[]).json()["sessionId"]
        .as_str()
        .unwrap()
        .to_string();
    let out = s.cli(&["sessions", "revoke", "--id", &sid]);
    assert!(out.code(0).stdout.contains("revoked 1 session"));
    assert!(
        within(Duration::from_secs(2), || get(&s.url("/api/auth/token-info"), &[("access_token", &a1)], &[]).status
            == 401)
        .is_some()
    );
    assert_eq!(get(&s.url("/api/auth/token-info"), &[("access_token", &a2)], &[]).status, 200);
    let human = s.cli(&["sessions", "list", "--all"]).code(0).stdout.clone();
    assert!(human.lines().next().unwrap().starts_with("SESSION"));
    assert!(human.contains("revoked (revoked_by_operator)"), "{human}");
    assert_eq!(s.cli(&["--json", "sessions", "list"]).code(0).rows().as_array().unwrap().len(), 2);
    s.cli(&["sessions", "revoke"]).code(2);
    // One session id in 64 starts with '-' (base64url): it is an id, not a flag.
    let out = s.cli(&["sessions", "revoke", "--id", "-3fQ2notasession"]);
    assert!(out.code(0).stdout.contains("revoked 0 session"), "{}{}", out.stdout, out.stderr);
}

fn audit_filters_and_escapes(db: Option<&str>) {
    let s = Service::start(setup_on(db, "", &[("a@example.com", "admin")]));
    s.login("a@example.com", PASSWORD);
    // A forged-looking email with control characters is stored as given and shown escaped.
    s.login("evil\n2026-01-01 login_success admin\u{1b}[31m@example.com", "x-password");
    let human = s.cli(&["audit", "--since", "1h"]).code(0).stdout.clone();
    assert!(human.contains("evil\\n2026-01-01"), "{human}");
    assert!(!human.contains('\u{1b}'));
    assert_eq!(human.lines().count(), 1 + 3, "{human}"); // header + user_created + success + failure
    let fails = s.cli(&["--json", "audit", "--event", "login_failure"]).code(0).rows();
    assert_eq!(fails.as_array().unwrap().len(), 1);
    assert_eq!(fails[0]["ip"], "127.0.0.1");
    assert!(fails[0]["request_id"].is_string());
    assert!(fails[0]["user_agent"].is_string());
    let mine = s.cli(&["--json", "audit", "--user", "A@example.com"]).code(0).rows();
    assert_eq!(mine.as_array().unwrap().len(), 2);
    assert_eq!(
        s.cli(&["--json", "audit", "--since", "1h", "--event", "user_created"])
            .code(0)
            .rows()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(
        s.cli(&["--json", "audit", "--since", "1s", "--event", "user_created"])
            .code(0)
            .rows()
            .as_array()
            .unwrap()
            .len(),
        0
    );
    assert!(s.cli(&["audit", "--event", "nope"]).code(2).stderr.contains("unknown event"));
}

/// During an incident a mistyped --db must not answer "revoked 0 session(s)" from an
/// empty database it just made: only `user add` may create one (review of issue 15).
#[test]
fn read_and_revoke_commands_never_create_a_database() {
    let d = crate::util::Dir::new();
    for args in [
        &["sessions", "revoke", "--all", "--db", "typo.db"][..],
        &["sessions", "list", "--db", "typo.db"],
        &["user", "list", "--db", "typo.db"],
        &["audit", "--db", "typo.db"],
        &["user", "list", "--db", "no-such-folder/x.db"],
    ] {
        let out = d.run(args);
        assert!(out.code(2).stderr.contains("no such database file"), "{args:?}: {}", out.stderr);
    }
    assert!(!d.path("typo.db").exists() && !d.path("no-such-folder").exists());
}
