//! `aspjwt backup` and `aspjwt restore`: a consistent snapshot under load, the same
//! file for both backends (SQLite to PostgreSQL is how one instance grows into
//! several), and damaged files refused with the database unchanged.

use std::os::unix::fs::PermissionsExt;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::Value;

use crate::pg::{PgDb, sqlite_and_postgres};
use crate::service::{Chain, PASSWORD, Service, login_chain, refresh_at, refresher, setup, setup_on};
use crate::util::Dir;

sqlite_and_postgres!(
    damaged_backups_are_refused_and_change_nothing,
    a_restore_under_a_running_service_ends_what_it_removes
);

const LOAD: &str = "AUTH_RATE_BURST=100000\nAUTH_RATE_PER_5MIN=1000000\nASPJWT_MAX_CONNECTIONS_PER_IP=1024\n";

fn claim(jwt: &str, name: &str) -> String {
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(jwt.split('.').nth(1).unwrap()).unwrap()).unwrap();
    claims[name].as_str().unwrap().to_string()
}

#[test]
fn a_backup_under_refresh_load_restores_into_postgres_and_every_session_goes_on() {
    let users: Vec<String> = (0..8).map(|i| format!("u{i}@example.com")).collect();
    let roles: Vec<(&str, &str)> = users.iter().map(|u| (u.as_str(), "operator")).collect();
    let s = Service::start(setup(LOAD, &roles));
    let chains: Vec<Arc<Mutex<Chain>>> = users.iter().map(|u| Arc::new(Mutex::new(login_chain(&s, u)))).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = chains.iter().map(|c| refresher(c.clone(), stop.clone(), s.base.clone())).collect();
    std::thread::sleep(Duration::from_millis(400));
    // Taken while every session rotates as fast as it can.
    let out = s.cli(&["--json", "backup", "--out", "snap.backup"]).code(0).json();
    std::thread::sleep(Duration::from_millis(200));
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    assert_eq!(out["counts"]["users"], 8);
    assert_eq!(out["counts"]["sessions"], 8);
    let mode = std::fs::metadata(s.dir.path("snap.backup")).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "a backup holds password hashes");
    assert!(chains.iter().all(|c| c.lock().unwrap().older.len() > 2), "the load did not run");

    let db = PgDb::new();
    let restored = s.dir.run(&["--json", "restore", "--db", &db.url, "snap.backup"]).code(0).json();
    assert_eq!(restored["counts"], out["counts"]);
    // A service on PostgreSQL with the same secrets: each session goes on from the token
    // that was current in the snapshot (a consistent one: one of the tokens its client held).
    let d = Dir::new();
    d.write(".env", format!("{}ASPJWT_DB={}\n", s.dir.read_str(".env"), db.url));
    let p = Service::start(d);
    for c in &chains {
        let c = c.lock().unwrap();
        let sid = claim(&c.current, "sid");
        let jti = db.query_text(&format!("SELECT refresh_jti FROM aspjwt.sessions WHERE id = '{sid}'"));
        let token = c
            .older
            .iter()
            .chain([&c.current])
            .find(|t| claim(t, "jti") == jti)
            .unwrap_or_else(|| panic!("the snapshot holds a refresh token its client never had (session {sid})"));
        let r = refresh_at(&p.base, token, &c.csrf);
        assert_eq!(r.status, 200, "session {sid} did not go on after the restore: {}", r.body);
    }
    // Password hashes came along: the users log in on the new database.
    assert_eq!(p.login("u3@example.com", PASSWORD).status, 200);
    let events = p.cli(&["--json", "audit", "--event", "refresh"]).code(0).rows();
    assert!(events.as_array().unwrap().len() > 8, "the audit log came along");
}

fn damaged_backups_are_refused_and_change_nothing(db: Option<&str>) {
    // A source with users, sessions, audit events and a throttle.
    let src = Service::start(setup("", &[("a@example.com", "admin"), ("b@example.com", "support")]));
    assert_eq!(src.login("a@example.com", PASSWORD).status, 200);
    assert_eq!(src.login("b@example.com", "wrong password").status, 401);
    src.cli(&["backup", "--out", "good.backup"]).code(0);
    let good = src.dir.read("good.backup");

    // The target already has a user of its own.
    let d = setup_on(db, "", &[("own@example.com", "admin")]);
    let db_args: Vec<String> = if db.is_some() { vec![] } else { vec!["--db".into(), "aspjwt.db".into()] };
    let run = |args: &[&str]| {
        let mut all: Vec<&str> = args.to_vec();
        all.extend(db_args.iter().map(String::as_str));
        d.run(&all)
    };
    let users = || run(&["--json", "user", "list"]).code(0).rows().as_array().unwrap().len();
    let audit = || run(&["--json", "audit"]).code(0).rows().as_array().unwrap().len();
    let before = (users(), audit());
    let mut truncated = good.clone();
    truncated.truncate(good.len() * 2 / 3);
    let mut flipped = good.clone();
    let mid = good.len() / 2;
    flipped[mid] = if flipped[mid] == b'a' { b'b' } else { b'a' };
    let v9 = String::from_utf8(good.clone()).unwrap().replacen("\"version\":1", "\"version\":9", 1);
    for (name, bytes, says) in [
        ("truncated.backup", truncated, "truncated"),
        ("flipped.backup", flipped, "checksum mismatch"),
        ("v9.backup", v9.into_bytes(), "version 9"),
        ("empty.backup", Vec::new(), "empty"),
        ("env.backup", b"JWT_SECRET=x\n".to_vec(), "not an aspjwt backup"),
    ] {
        d.write(name, bytes);
        let out = run(&["restore", "--force", name]);
        assert!(out.code(2).stderr.contains(says), "{name}: {}", out.stderr);
        assert!(out.stderr.contains(name) && out.stderr.contains("nothing was restored"), "{name}: {}", out.stderr);
        assert_eq!((users(), audit()), before, "{name} changed the database");
    }
    // A sound backup into a database with users: refused without --force.
    d.write("good.backup", &good);
    let out = run(&["restore", "good.backup"]);
    assert!(out.code(2).stderr.contains("not empty (it holds 1 user(s)"), "{}", out.stderr);
    assert_eq!((users(), audit()), before);
    // With --force it replaces everything, and the users log in with their passwords.
    run(&["restore", "--force", "good.backup"]).code(0);
    let emails: Vec<String> = run(&["--json", "user", "list"])
        .rows()
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["email"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(emails, ["a@example.com", "b@example.com"]);
    let s = Service::start(d);
    assert_eq!(s.login("b@example.com", PASSWORD).status, 200);
    // The source's throttle came along: one failure counted for b@example.com before this success.
    assert!(s.cli(&["--json", "audit", "--event", "login_failure"]).rows().as_array().unwrap().len() == 1);
}

#[test]
fn backup_refuses_a_database_that_is_not_there() {
    let d = Dir::new();
    let out = d.run(&["backup", "--db", "typo.db", "--out", "x.backup"]);
    assert!(out.code(2).stderr.contains("typo.db: no such database file"), "{}", out.stderr);
    assert!(!d.path("typo.db").exists() && !d.path("x.backup").exists());
}

/// A backup replaces only an earlier backup: never the database it reads (review of
/// issue 19), an .env, or the target of a symbolic link.
#[test]
fn a_backup_never_replaces_what_is_not_a_backup() {
    let s = crate::service::Service::start(crate::service::setup("", &[("a@example.com", "admin")]));
    let d = &s.dir;
    let env = d.read_str(".env");
    let db = std::fs::read(d.path("aspjwt.db")).unwrap();
    for (out, why) in [
        ("aspjwt.db", "aspjwt.db: exists and is not an aspjwt backup"),
        (".env", ".env: exists and is not an aspjwt backup"),
    ] {
        let r = d.run(&["backup", "--db", "aspjwt.db", "--out", out]);
        assert!(r.code(2).stderr.contains(why), "{}", r.stderr);
    }
    // The database's companions, even empty or absent (after a checkpoint): part of it.
    for companion in ["aspjwt.db-wal", "aspjwt.db-shm", "aspjwt.db-journal"] {
        let r = d.run(&["backup", "--db", "aspjwt.db", "--out", companion]);
        assert!(r.code(2).stderr.contains("is part of the SQLite database aspjwt.db"), "{companion}: {}", r.stderr);
    }
    d.write("victim.txt", "keep me\n");
    std::os::unix::fs::symlink(d.path("victim.txt"), d.path("link.backup")).unwrap();
    let r = d.run(&["backup", "--db", "aspjwt.db", "--out", "link.backup"]);
    assert!(r.code(2).stderr.contains("link.backup: is a symbolic link"), "{}", r.stderr);
    assert_eq!(d.read_str("victim.txt"), "keep me\n");
    assert_eq!(d.read_str(".env"), env);
    assert_eq!(std::fs::read(d.path("aspjwt.db")).unwrap().len(), db.len());
    s.cli(&["user", "list"]).code(0);
    // Yesterday's backup may be replaced by today's.
    d.run(&["backup", "--db", "aspjwt.db", "--out", "nightly.backup"]).code(0);
    d.run(&["backup", "--db", "aspjwt.db", "--out", "nightly.backup"]).code(0);
}

/// The other direction: a PostgreSQL backup restores into SQLite, byte for byte the same
/// rows (exported again, the two backups hold the same rows).
#[test]
fn a_postgres_backup_restores_into_sqlite_with_the_same_rows() {
    let db = PgDb::new();
    let s = Service::start(setup_on(Some(&db.url), LOAD, &[("a@example.com", "admin"), ("b@example.com", "support")]));
    let l = s.login("a@example.com", PASSWORD);
    assert_eq!(s.refresh(&l.cookie("refresh_token").unwrap(), &crate::service::csrf(&l)).status, 200);
    assert_eq!(s.login("b@example.com", "wrong password").status, 401);
    s.cli(&["backup", "--out", "pg.backup"]).code(0);
    let d = Dir::new();
    d.write("pg.backup", s.dir.read("pg.backup"));
    d.run(&["restore", "--db", "copy.db", "pg.backup"]).code(0);
    d.run(&["backup", "--db", "copy.db", "--out", "again.backup"]).code(0);
    // The same rows, plus the restore's own audit record (and nothing else).
    let rows = |b: Vec<u8>| -> Vec<String> {
        let text = String::from_utf8(b).unwrap();
        text.lines().skip(1).filter(|l| !l.starts_with("{\"sha256\"")).map(str::to_string).collect()
    };
    let (again, original) = (rows(d.read("again.backup")), rows(s.dir.read("pg.backup")));
    let restored: Vec<&String> = again.iter().filter(|l| l.contains("\"event\":\"backup_restored\"")).collect();
    assert_eq!(restored.len(), 1, "{again:?}");
    assert!(restored[0].contains("from pg.backup (a postgres backup taken"), "{}", restored[0]);
    let again: Vec<String> = again.into_iter().filter(|l| !l.contains("\"event\":\"backup_restored\"")).collect();
    assert_eq!(again, original, "the rows changed on the way");
    // The source recorded that a copy of its password hashes left it.
    let taken = s.cli(&["--json", "audit", "--event", "backup_taken"]).code(0).rows();
    assert!(taken[0]["reason"].as_str().unwrap().starts_with("to pg.backup: 2 user(s)"), "{taken}");
}

#[test]
fn backup_and_restore_refuse_to_invent_or_half_make_a_database() {
    // A PostgreSQL database without aspjwt's tables (a typo in the name) is not one to back up.
    let empty = PgDb::new();
    let d = Dir::new();
    let out = d.run(&["backup", "--db", &empty.url, "--out", "x.backup"]);
    assert!(out.code(2).stderr.contains("no aspjwt database"), "{}", out.stderr);
    assert_eq!(empty.query_i64("SELECT count(*) FROM pg_namespace WHERE nspname = 'aspjwt'"), 0, "it made the schema");
    assert!(!d.path("x.backup").exists());
    // A backup whose checksum holds but whose rows make no sense: refused with the line,
    // and the SQLite file the restore would have made is not left behind.
    let src = Service::start(setup("", &[("a@example.com", "admin")]));
    src.cli(&["backup", "--out", "good.backup"]).code(0);
    let text = src.dir.read_str("good.backup");
    let body: String = text.lines().filter(|l| !l.starts_with("{\"sha256\"")).map(|l| format!("{l}\n")).collect();
    let forged = body.replace("\"role\":\"admin\"", "\"role\":\"root\"");
    let sum: String =
        <sha2::Sha256 as sha2::Digest>::digest(forged.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    d.write("forged.backup", format!("{forged}{{\"sha256\":\"{sum}\"}}\n"));
    let out = d.run(&["restore", "--db", "new.db", "forged.backup"]);
    assert!(out.code(2).stderr.contains("line 2: user a@example.com: role \"root\""), "{}", out.stderr);
    assert!(!d.path("new.db").exists(), "a failed restore left a database file");
    // A database with no users but an audit log is not empty.
    d.write("good.backup", &text);
    let audit_only = d.path("audit-only.db");
    {
        use aspjwt::store::Store;
        let store = aspjwt::store::SqliteStore::open(&audit_only).unwrap();
        store.audit(&aspjwt::audit::Record::new(aspjwt::audit::Event::ConfigReloaded, true, 1)).unwrap();
    }
    let out = d.run(&["restore", "--db", "audit-only.db", "good.backup"]);
    assert!(
        out.code(2).stderr.contains("not empty (it holds 0 user(s), 0 session(s), 1 audit event(s)"),
        "{}",
        out.stderr
    );
}

/// `restore --force` under a running service: a session the backup does not hold stops
/// working within a poll (it is published on the revocation feed), and with
/// `--revoke-sessions` no session comes back, not even one ended since the backup.
fn a_restore_under_a_running_service_ends_what_it_removes(db: Option<&str>) {
    let s = Service::start(setup_on(db, "", &[("a@example.com", "admin"), ("b@example.com", "support")]));
    let a = s.login("a@example.com", PASSWORD);
    assert_eq!(a.status, 200);
    s.cli(&["backup", "--out", "snap.backup"]).code(0);
    let b = s.login("b@example.com", PASSWORD);
    let b_access = b.cookie("access_token").unwrap();
    let info =
        |token: &str| crate::service::get(&s.url("/api/auth/token-info"), &[("access_token", token)], &[]).status;
    assert_eq!(info(&b_access), 200);
    // Ended after the backup: the restore brings it back (documented; --revoke-sessions does not).
    assert_eq!(s.logout(&a.cookie("refresh_token").unwrap(), &crate::service::csrf(&a)).status, 204);

    s.cli(&["restore", "--force", "snap.backup"]).code(0);
    let gone = crate::service::within(Duration::from_secs(5), || info(&b_access) == 401);
    assert!(gone.is_some(), "a session the restore removed still works on the running service");
    assert_eq!(refresh_at(&s.base, &b.cookie("refresh_token").unwrap(), &crate::service::csrf(&b)).status, 401);

    let out = s.cli(&["restore", "--force", "--revoke-sessions", "snap.backup"]);
    assert!(out.code(0).stderr.contains("every restored session is revoked"), "{}", out.stderr);
    let r = refresh_at(&s.base, &a.cookie("refresh_token").unwrap(), &crate::service::csrf(&a));
    assert_eq!(r.status, 401, "a session restored with --revoke-sessions refreshed: {}", r.body);
    let sessions = s.cli(&["--json", "sessions", "list", "--all"]).code(0).rows();
    assert!(
        sessions.as_array().unwrap().iter().all(|x| !x["revoked_at"].is_null()),
        "live sessions after --revoke-sessions: {sessions}"
    );
}

/// `backup --out -` streams to stdout (as `restore -` reads stdin), and a restore refuses
/// a password hash that is not a PHC string instead of locking its user out silently.
#[test]
fn backups_stream_to_stdout_and_bad_hashes_are_refused() {
    let s = crate::service::Service::start(crate::service::setup("", &[("a@example.com", "admin")]));
    let d = &s.dir;
    let out = d.run(&["backup", "--db", "aspjwt.db", "--out", "-"]);
    assert!(
        out.code(0).stdout.starts_with("{\"format\":\"aspjwt-backup\""),
        "{}",
        &out.stdout[..80.min(out.stdout.len())]
    );
    assert!(!d.path("-").exists(), "a file named - was written");
    // A reader that stops early leaves a partial backup: that is a failure, not exit 0.
    // The pipe's reading end is closed before the backup starts: no race with its writes.
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let mut cmd = d.cmd();
    cmd.args(["backup", "--db", "aspjwt.db", "--out", "-"]).stdout(writer);
    cmd.stderr(std::process::Stdio::piped());
    let done = cmd.spawn().unwrap().wait_with_output().unwrap();
    assert_eq!(done.status.code(), Some(2), "{}", String::from_utf8_lossy(&done.stderr));
    assert!(String::from_utf8_lossy(&done.stderr).contains("the backup was not written whole"));
    // The streamed backup restores.
    let fresh = Dir::new();
    fresh.write("streamed.backup", &out.stdout);
    fresh.run(&["restore", "--db", "new.db", "streamed.backup"]).code(0);
    // A hash that is no PHC string, under a checksum that holds: refused, naming the user.
    let body: String = out.stdout.lines().filter(|l| !l.starts_with("{\"sha256\"")).map(|l| format!("{l}\n")).collect();
    let tampered = regex_free_replace_hash(&body);
    let sum: String =
        <sha2::Sha256 as sha2::Digest>::digest(tampered.as_bytes()).iter().map(|b| format!("{b:02x}")).collect();
    fresh.write("tampered.backup", format!("{tampered}{{\"sha256\":\"{sum}\"}}\n"));
    let r = fresh.run(&["restore", "--db", "other.db", "tampered.backup"]);
    assert!(r.code(2).stderr.contains("user a@example.com: the password hash: not a PHC string"), "{}", r.stderr);
    assert!(!fresh.path("other.db").exists());
}

/// Replaces the first `"password_hash":"…"` value with "hunter2".
fn regex_free_replace_hash(text: &str) -> String {
    let key = "\"password_hash\":\"";
    let start = text.find(key).expect("a password hash") + key.len();
    let end = start + text[start..].find('"').unwrap();
    format!("{}hunter2{}", &text[..start], &text[end..])
}

/// Unbounded inputs are refused at once, never read into memory: a device or a FIFO
/// as the backup, /dev/zero as a password (review of issue 15).
#[test]
fn restore_and_passwords_read_bounded_inputs() {
    let d = Dir::new();
    let started = std::time::Instant::now();
    let r = d.run(&["restore", "--db", "r.db", "/dev/zero"]);
    assert!(r.code(2).stderr.contains("/dev/zero: is a character device"), "{}", r.stderr);
    let fifo = d.path("pipe");
    let c = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
    let r = d.run(&["restore", "--db", "r.db", "pipe"]);
    assert!(r.code(2).stderr.contains("pipe: is a FIFO"), "{}", r.stderr);
    assert!(!d.path("r.db").exists());
    // A password on stdin that never ends its line.
    let zeros = vec![b'x'; 1 << 20];
    let mut cmd = d.cmd();
    cmd.args([
        "user",
        "add",
        "--db",
        "u.db",
        "--email",
        "a@example.com",
        "--name",
        "A",
        "--role",
        "admin",
        "--password-stdin",
    ]);
    let r = crate::util::run(&mut cmd, Some(&zeros));
    assert_eq!(r.code, 2, "{}", r.stderr);
    assert!(r.stderr.contains("more than"), "{}", r.stderr);
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}
