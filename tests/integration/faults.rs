//! Fault tests: crashes under load, a full or read-only disk, hostile HTTP input and
//! heavy concurrency, against the real binary.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};

use crate::service::{
    Chain, PASSWORD, Resp, Service, csrf, get, login_chain, post, post_json, refresh_at, refresher, setup,
};

/// Every client of these tests is 127.0.0.1: limits raised so the service, not a limiter, is tested.
const LOAD_ENV: &str = "AUTH_RATE_BURST=100000\nAUTH_RATE_PER_5MIN=1000000\nASPJWT_MAX_CONNECTIONS_PER_IP=1024\n";

#[test]
fn kill_9_under_refresh_load_loses_nothing_and_accepts_nothing_twice() {
    let users: Vec<String> = (0..12).map(|i| format!("u{i}@example.com")).collect();
    let roles: Vec<(&str, &str)> = users.iter().map(|u| (u.as_str(), "operator")).collect();
    let mut s = Service::start(setup(LOAD_ENV, &roles));
    let chains: Vec<Arc<Mutex<Chain>>> = users.iter().map(|u| Arc::new(Mutex::new(login_chain(&s, u)))).collect();
    let mut rng = proptest::test_runner::TestRng::deterministic_rng(proptest::test_runner::RngAlgorithm::ChaCha);
    for round in 0..3 {
        let stop = Arc::new(AtomicBool::new(false));
        let base = s.base.clone();
        let workers: Vec<_> = chains.iter().map(|c| refresher(c.clone(), stop.clone(), base.clone())).collect();
        std::thread::sleep(Duration::from_millis(200 + rng.random_range(0..600)));
        s.kill9();
        stop.store(true, Ordering::Relaxed);
        for w in workers {
            w.join().unwrap();
        }
        s.spawn();
        let rotated: usize = chains.iter().map(|c| c.lock().unwrap().older.len()).sum();
        assert!(rotated > 0, "round {round}: no refresh happened before the kill");
        // Every session goes on from the newest token its client holds: a rotation, or the
        // grace answer when the last response was lost with the process.
        for c in &chains {
            let mut g = c.lock().unwrap();
            let r = refresh_at(&s.base, &g.current, &g.csrf);
            assert_eq!(r.status, 200, "round {round}: a session was lost: {}", r.body);
            g.advance(r.cookie("refresh_token").unwrap());
        }
    }
    // Nothing is accepted twice: tokens two or more rotations old are refused (and
    // end their session, as reuse must), after the grace period.
    std::thread::sleep(Duration::from_millis(10_500));
    for c in &chains {
        let g = c.lock().unwrap();
        let stale = &g.older[g.older.len().saturating_sub(2)];
        assert_eq!(refresh_at(&s.base, stale, &g.csrf).status, 401, "a stale token was accepted");
        assert_eq!(refresh_at(&s.base, &g.current, &g.csrf).status, 401, "reuse ends the whole session");
    }
    assert_eq!(s.terminate(), Some(0));
    let store = aspjwt::store::SqliteStore::open(&s.dir.path("aspjwt.db")).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

fn sh(cmd: &str) {
    let out = std::process::Command::new("sh").arg("-c").arg(cmd).output().unwrap();
    assert!(out.status.success(), "{cmd}: {}", String::from_utf8_lossy(&out.stderr));
}

/// A small filesystem of its own for the database (root can mount tmpfs here; CI runs as root).
struct SmallDisk {
    path: std::path::PathBuf,
}

impl SmallDisk {
    fn new(dir: &std::path::Path, size: &str) -> SmallDisk {
        let path = dir.join("disk");
        std::fs::create_dir_all(&path).unwrap();
        sh(&format!("mount -t tmpfs -o size={size} aspjwt-test {}", path.display()));
        SmallDisk { path }
    }
}

impl Drop for SmallDisk {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// A database fault under a running service, with the database at `db`: while
/// `fault` holds, readiness, login and refresh answer 503 with the JSON error shape
/// (no database text) and token-info still answers from the access token; after
/// `heal`, the service is ready again by itself, the refresh token refused during the
/// fault works (nothing was half-written) and the database is intact.
fn fault_and_recovery(d: crate::util::Dir, db: &str, fault: impl FnOnce(), heal: impl FnOnce()) {
    d.run_stdin(
        &["user", "add", "--email", "a@example.com", "--name", "A", "--role", "admin", "--password-stdin", "--db", db],
        format!("{PASSWORD}\n").as_bytes(),
    )
    .code(0);
    let s = Service::start_with(d, &[("ASPJWT_DB", db)]);
    let l = s.login("a@example.com", PASSWORD);
    let (access, refresh, c) = (l.cookie("access_token").unwrap(), l.cookie("refresh_token").unwrap(), csrf(&l));
    let info = || get(&s.url("/api/auth/token-info"), &[("access_token", &access)], &[]).status;
    let ready = || get(&s.url("/api/health/ready"), &[], &[]);
    assert_eq!(ready().status, 200);
    // The alerting gauge follows writes, not only reads (a full disk still reads).
    let bearer = format!("Bearer {access}");
    let db_up = || {
        let m = get(&s.url("/metrics"), &[], &[("authorization", &bearer)]).body;
        m.lines().find_map(|l| l.strip_prefix("aspjwt_database_up ")).map(str::to_string)
    };
    assert_eq!(db_up().as_deref(), Some("1"));

    fault();
    let r = ready();
    assert_eq!(r.status, 503, "ready");
    assert_eq!(r.json()["error"]["code"], "unavailable");
    let login = s.login("a@example.com", PASSWORD);
    assert_eq!(login.status, 503, "login {}", login.body);
    assert_eq!(login.json()["error"]["code"], "unavailable");
    let rf = refresh_at(&s.base, &refresh, &c);
    assert_eq!(rf.status, 503, "refresh {}", rf.body);
    assert_eq!(info(), 200, "token-info keeps answering from the access token");
    assert!(!rf.body.to_lowercase().contains("sqlite") && !rf.body.contains("disk"), "no database text: {}", rf.body);
    let down = crate::service::within(Duration::from_secs(7), || db_up().as_deref() == Some("0"));
    assert!(down.is_some(), "aspjwt_database_up stays 1 while the database takes no writes");

    heal();
    let back = crate::service::within(Duration::from_secs(5), || ready().status == 200);
    assert!(back.is_some(), "not ready again after the fault was lifted");
    let r = refresh_at(&s.base, &refresh, &c);
    assert_eq!(r.status, 200, "the session survived, nothing was half-written: {}", r.body);
    assert_eq!(refresh_at(&s.base, &r.cookie("refresh_token").unwrap(), &c).status, 200);
    assert_eq!(s.login("a@example.com", PASSWORD).status, 200);
    assert!(crate::service::within(Duration::from_secs(7), || db_up().as_deref() == Some("1")).is_some());
    let store = aspjwt::store::SqliteStore::open(std::path::Path::new(db)).unwrap();
    assert_eq!(store.integrity_check().unwrap(), "ok");
}

#[test]
fn full_disk_answers_503_keeps_token_info_and_recovers() {
    let d = setup(LOAD_ENV, &[]);
    let disk = SmallDisk::new(d.tmp.path(), "4m");
    let db = disk.path.join("aspjwt.db").to_str().unwrap().to_string();
    let filler = disk.path.join("filler");
    fault_and_recovery(
        d,
        &db,
        // A filler takes every free byte.
        || {
            let _ = std::process::Command::new("dd")
                .arg("if=/dev/zero")
                .arg(format!("of={}", filler.display()))
                .args(["bs=64k", "count=1000"])
                .output();
        },
        || std::fs::remove_file(&filler).unwrap(),
    );
}

/// The database's files become read-only under the open database. (A read-only
/// remount is refused while SQLite holds the files open for writing, so the files are
/// made immutable instead: writes through the open descriptors then fail, for root too,
/// as they do on a file system gone read-only.)
#[test]
fn read_only_database_answers_503_keeps_token_info_and_recovers() {
    let d = setup(LOAD_ENV, &[]);
    let db = d.path("aspjwt.db").to_str().unwrap().to_string();
    let files = [db.clone(), format!("{db}-wal")];
    let chattr = |flag: &str| {
        for f in &files {
            sh(&format!("chattr {flag} {f}"));
        }
    };
    // Never leave immutable files behind, even when an assertion fails mid-way.
    struct Unfreeze(Vec<String>);
    impl Drop for Unfreeze {
        fn drop(&mut self) {
            for f in &self.0 {
                let _ =
                    std::process::Command::new("chattr").args(["-i", f]).stderr(std::process::Stdio::null()).status();
            }
        }
    }
    let _unfreeze = Unfreeze(files.to_vec());
    fault_and_recovery(d, &db, || chattr("+i"), || chattr("-i"));
}

#[test]
fn hostile_http_requests_never_crash_or_5xx() {
    let s = Service::start(setup(LOAD_ENV, &[("a@example.com", "admin")]));
    let valid = s.login("a@example.com", PASSWORD).cookie("access_token").unwrap();
    let methods =
        prop::sample::select(vec!["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "BREW", "get"]);
    let paths = prop_oneof![
        prop::sample::select(vec![
            "/",
            "/api/auth/login",
            "/api/auth/refresh",
            "/api/auth/logout",
            "/api/auth/token-info",
            "/api/health",
            "/api/health/ready",
            "/api/users",
            "/api/users/x",
            "/api/leads/1",
            "/metrics",
            "/assets/app.js",
        ])
        .prop_map(str::to_string),
        "/[a-zA-Z0-9/%._~-]{0,40}",
    ];
    let bodies = prop_oneof![
        Just(String::new()),
        "\\PC{0,200}",
        Just(r#"{"email":"a@example.com","password":"x"}"#.to_string()),
        Just(r#"{"email":[],"password":{}}"#.to_string()),
        Just(format!("{}1{}", "[".repeat(5000), "]".repeat(5000))),
    ];
    let cookies = prop_oneof![
        Just(String::new()),
        Just(format!("access_token={valid}")),
        "[ -~]{0,120}",
        Just("refresh_token=a.b.c; csrf_token=x.y".to_string()),
    ];
    let ctypes = prop::sample::select(vec!["application/json", "text/plain", "multipart/form-data; boundary=x", ""]);
    let client = reqwest::blocking::Client::builder().timeout(Duration::from_secs(10)).build().unwrap();
    let mut runner = TestRunner::new(Config { cases: 300, ..Config::default() });
    runner
        .run(&(methods, paths, bodies, cookies, ctypes), |(m, p, b, c, t)| {
            let Ok(method) = reqwest::Method::from_bytes(m.as_bytes()) else { return Ok(()) };
            let mut req = client.request(method, format!("{}{}", s.base, p)).body(b);
            if !c.is_empty() && reqwest::header::HeaderValue::from_str(&c).is_ok() {
                req = req.header("cookie", c);
            }
            if !t.is_empty() {
                req = req.header("content-type", t);
            }
            let started = Instant::now();
            let r = req.send().map_err(|e| TestCaseError::fail(format!("{m} {p}: {e}")))?;
            let status = r.status().as_u16();
            prop_assert!(status < 500 || status == 503, "{m} {p}: {status}");
            prop_assert!(started.elapsed() < Duration::from_secs(5));
            Ok(())
        })
        .unwrap();
    assert_eq!(get(&s.url("/api/health"), &[], &[]).status, 200, "still alive");
    assert!(!s.stderr().contains("panicked"), "{}", s.stderr());
}

#[test]
fn two_hundred_clients_twenty_racers_and_logouts_keep_every_invariant() {
    let users: Vec<String> = (0..40).map(|i| format!("c{i}@example.com")).collect();
    let roles: Vec<(&str, &str)> = users.iter().map(|u| (u.as_str(), "support")).collect();
    let s = Service::start(setup(LOAD_ENV, &roles));
    // 200 sessions over 40 users; every fifth is logged out half-way.
    let chains: Vec<Chain> = (0..200).map(|i| login_chain(&s, &users[i % 40])).collect();
    let racer = login_chain(&s, &users[0]);
    let base = s.base.clone();
    let handles: Vec<_> = chains
        .into_iter()
        .enumerate()
        .map(|(i, mut c)| {
            let base = base.clone();
            std::thread::spawn(move || {
                for step in 0..4 {
                    if i % 5 == 0 && step == 2 {
                        let out = post(
                            &format!("{base}/api/auth/logout"),
                            &[("refresh_token", &c.current), ("csrf_token", &c.csrf)],
                            &[("x-csrf-token", &c.csrf)],
                        );
                        assert_eq!(out.status, 204);
                        let after = refresh_at(&base, &c.current, &c.csrf);
                        assert_eq!(after.status, 401, "a logged-out session came back");
                        return (i, true);
                    }
                    let r = refresh_at(&base, &c.current, &c.csrf);
                    assert_eq!(r.status, 200, "client {i} step {step}: {}", r.body);
                    c.current = r.cookie("refresh_token").unwrap();
                }
                (i, false)
            })
        })
        .collect();
    let racers: Vec<_> = (0..20)
        .map(|_| {
            let (base, r) = (base.clone(), racer.clone());
            std::thread::spawn(move || refresh_at(&base, &r.current, &r.csrf))
        })
        .collect();
    let results: Vec<Resp> = racers.into_iter().map(|h| h.join().unwrap()).collect();
    for h in handles {
        h.join().unwrap();
    }
    assert!(results.iter().all(|r| r.status == 200), "a racer was refused");
    let first = results[0].cookie("refresh_token").unwrap();
    assert!(results.iter().all(|r| r.cookie("refresh_token").unwrap() == first), "racers forked the session");
    let audit = s.cli(&["--json", "audit", "--event", "refresh_token_reuse"]).code(0).rows();
    assert_eq!(audit.as_array().unwrap().len(), 0, "no false reuse alarm");
    let live = s.cli(&["--json", "sessions", "list"]).code(0).rows();
    assert_eq!(live.as_array().unwrap().len(), 200 - 40 + 1, "every logged-out session stays out");
    let _ = post_json(&s.url("/api/auth/login"), &serde_json::json!({}), &[]);
}
