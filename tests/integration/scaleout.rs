//! Several instances over one PostgreSQL database: two real `aspjwt serve`
//! processes on two loopback ports, sharing sessions, rotation, revocations and
//! throttling; and an instance losing its database and getting it back.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier, Mutex};
use std::time::Duration;

use crate::pg::{PgDb, Proxy};
use crate::service::{Chain, PASSWORD, Service, csrf, get, login_chain, refresh_at, refresher, setup_on, within};
use crate::util::Dir;

const ENV: &str =
    "AUTH_RATE_BURST=100000\nAUTH_RATE_PER_5MIN=1000000\nREFRESH_REUSE_GRACE=1s\nASPJWT_MAX_CONNECTIONS_PER_IP=1024\n";

/// Two instances, A and B, with the same .env over one fresh database. Fields drop
/// in order: the services stop before the database is dropped.
struct Pair {
    a: Service,
    b: Service,
    db: PgDb,
}

fn pair(users: &[(&str, &str)]) -> Pair {
    let db = PgDb::new();
    let da = setup_on(Some(&db.url), ENV, users);
    let db_dir = Dir::new();
    db_dir.write(".env", da.read_str(".env"));
    let (a, b) = (Service::start(da), Service::start(db_dir));
    assert_ne!(a.base, b.base);
    Pair { a, b, db }
}

fn info(base: &str, access: &str) -> u16 {
    get(&format!("{base}/api/auth/token-info"), &[("access_token", access)], &[]).status
}

#[test]
fn a_session_moves_freely_between_instances() {
    let p = pair(&[("a@example.com", "admin")]);
    let l = p.a.login("a@example.com", PASSWORD);
    assert_eq!(l.status, 200, "{}", l.body);
    let c = csrf(&l);
    assert_eq!(info(&p.b.base, &l.cookie("access_token").unwrap()), 200, "B accepts A's access token");
    let on_b = refresh_at(&p.b.base, &l.cookie("refresh_token").unwrap(), &c);
    assert_eq!(on_b.status, 200, "refresh on B: {}", on_b.body);
    let on_a = refresh_at(&p.a.base, &on_b.cookie("refresh_token").unwrap(), &c);
    assert_eq!(on_a.status, 200, "refresh again on A: {}", on_a.body);
    assert_eq!(info(&p.b.base, &on_a.cookie("access_token").unwrap()), 200);
    assert_eq!(p.db.query_i64("SELECT rotations FROM aspjwt.sessions"), 2);
    // Failed logins count across instances: five on A and five on B lock the account.
    for s in [&p.a, &p.b].repeat(5) {
        assert_eq!(s.login("a@example.com", "wrong-password").status, 401);
    }
    assert_eq!(p.db.query_i64("SELECT consecutive FROM aspjwt.login_throttle"), 10);
    assert!(p.db.query_i64("SELECT locked_until FROM aspjwt.login_throttle") > 0, "ten failures lock the account");
}

#[test]
fn twenty_refreshes_of_one_token_over_two_instances_rotate_once() {
    let p = pair(&[("a@example.com", "admin")]);
    let l = p.a.login("a@example.com", PASSWORD);
    let (token, c) = (l.cookie("refresh_token").unwrap(), csrf(&l));
    let barrier = Arc::new(Barrier::new(20));
    let answers: Vec<(u16, Option<String>, Option<String>)> = (0..20)
        .map(|i| {
            let base = if i % 2 == 0 { p.a.base.clone() } else { p.b.base.clone() };
            let (token, c, barrier) = (token.clone(), c.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                let r = refresh_at(&base, &token, &c);
                (r.status, r.cookie("refresh_token"), r.cookie("access_token"))
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    assert!(answers.iter().all(|a| a.0 == 200), "{answers:?}");
    let pairs: BTreeSet<_> = answers.iter().map(|a| (a.1.clone().unwrap(), a.2.clone().unwrap())).collect();
    assert_eq!(pairs.len(), 1, "every answer carries the one new pair (a fork otherwise)");
    assert_eq!(p.db.query_i64("SELECT rotations FROM aspjwt.sessions"), 1);
    assert_eq!(p.db.query_i64("SELECT count(*) FROM aspjwt.audit_events WHERE reason = 'rotated'"), 1);
    assert_eq!(p.db.query_i64("SELECT count(*) FROM aspjwt.audit_events WHERE reason = 'grace'"), 19);
    assert_eq!(p.db.query_i64("SELECT count(*) FROM aspjwt.revocations"), 0, "no false reuse alarm");
    let (next, _) = pairs.into_iter().next().unwrap();
    assert_eq!(refresh_at(&p.b.base, &next, &c).status, 200, "the session goes on");
}

#[test]
fn revocation_on_one_instance_reaches_the_other_within_2s() {
    let p = pair(&[("a@example.com", "admin"), ("b@example.com", "operator")]);
    let within_2s = |base: &str, access: &str| within(Duration::from_secs(2), || info(base, access) == 401);
    // Logout on B.
    let l = p.a.login("a@example.com", PASSWORD);
    let access = l.cookie("access_token").unwrap();
    assert_eq!(info(&p.a.base, &access), 200);
    assert_eq!(p.b.logout(&l.cookie("refresh_token").unwrap(), &csrf(&l)).status, 204);
    let took = within_2s(&p.a.base, &access).expect("A still accepts the access token 2 s after logout on B");
    eprintln!("logout on B reached A in {took:?}");
    // Reuse detected on A ends the session on B too.
    let l = p.b.login("b@example.com", PASSWORD);
    let (access, first, c) = (l.cookie("access_token").unwrap(), l.cookie("refresh_token").unwrap(), csrf(&l));
    let next = refresh_at(&p.a.base, &first, &c);
    assert_eq!(next.status, 200);
    let access2 = next.cookie("access_token").unwrap();
    std::thread::sleep(Duration::from_millis(2100)); // past the 1 s grace, in whole seconds
    assert_eq!(refresh_at(&p.a.base, &first, &c).status, 401, "reuse");
    assert!(within_2s(&p.b.base, &access2).is_some(), "reuse on A did not reach B");
    assert_eq!(info(&p.b.base, &access), 401);
    // `aspjwt sessions revoke` against the database reaches both.
    let l = p.a.login("a@example.com", PASSWORD);
    let access = l.cookie("access_token").unwrap();
    assert!(p.a.cli(&["sessions", "revoke", "--all"]).code(0).stdout.contains("revoked"));
    assert!(within_2s(&p.a.base, &access).is_some() && within_2s(&p.b.base, &access).is_some());
}

#[test]
fn kill_9_of_one_instance_under_load_loses_nothing_on_the_other() {
    let users: Vec<String> = (0..8).map(|i| format!("u{i}@example.com")).collect();
    let roles: Vec<(&str, &str)> = users.iter().map(|u| (u.as_str(), "operator")).collect();
    let mut p = pair(&roles);
    let chains: Vec<Arc<Mutex<Chain>>> = users.iter().map(|u| Arc::new(Mutex::new(login_chain(&p.a, u)))).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let workers: Vec<_> = chains.iter().map(|c| refresher(c.clone(), stop.clone(), p.a.base.clone())).collect();
    std::thread::sleep(Duration::from_millis(800));
    p.a.kill9();
    stop.store(true, Ordering::Relaxed);
    for w in workers {
        w.join().unwrap();
    }
    let rotated: usize = chains.iter().map(|c| c.lock().unwrap().older.len()).sum();
    assert!(rotated > 0, "no refresh happened before the kill");
    // Every session goes on at B from the newest token its client holds (a rotation,
    // or the grace answer when A died before its answer arrived).
    for chain in &chains {
        let mut g = chain.lock().unwrap();
        let r = refresh_at(&p.b.base, &g.current, &g.csrf);
        assert_eq!(r.status, 200, "a session was lost with A: {}", r.body);
        g.advance(r.cookie("refresh_token").unwrap());
    }
    // Nothing is accepted twice: past the 1 s grace period, a token two rotations old is
    // refused on B (and, as reuse, ends its session).
    std::thread::sleep(Duration::from_millis(2100));
    for chain in &chains {
        let g = chain.lock().unwrap();
        let stale = &g.older[g.older.len() - 2];
        assert_eq!(refresh_at(&p.b.base, stale, &g.csrf).status, 401, "a stale token was accepted");
        assert_eq!(refresh_at(&p.b.base, &g.current, &g.csrf).status, 401, "reuse ends the whole session");
    }
    let sessions = p.db.query_i64("SELECT count(*) FROM aspjwt.sessions");
    assert_eq!(sessions, users.len() as i64, "no session lost or duplicated");
}

/// The link to PostgreSQL cut under a running instance: not ready, 503 with the
/// JSON error shape for login and refresh, token-info still answered; back to normal
/// by itself when the link returns, and after the server ends its connections.
#[test]
fn losing_postgres_answers_503_keeps_token_info_and_heals() {
    let db = PgDb::new();
    let proxy = Proxy::new();
    let d = setup_on(Some(&db.url), ENV, &[("a@example.com", "admin")]);
    const PASSWORD_IN_URL: &str = "pg-s3cr3t-in-url";
    let s = Service::start_with(d, &[("ASPJWT_DB", &db.url_via(proxy.addr, PASSWORD_IN_URL))]);
    let l = s.login("a@example.com", PASSWORD);
    assert_eq!(l.status, 200, "{}", l.body);
    let (access, refresh, c) = (l.cookie("access_token").unwrap(), l.cookie("refresh_token").unwrap(), csrf(&l));
    let ready = || get(&s.url("/api/health/ready"), &[], &[]);
    assert_eq!(ready().status, 200);

    proxy.cut();
    let r = ready();
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (503, Some("unavailable")), "ready: {}", r.body);
    let login = s.login("a@example.com", PASSWORD);
    assert_eq!((login.status, login.json()["error"]["code"].as_str()), (503, Some("unavailable")), "{}", login.body);
    let rf = refresh_at(&s.base, &refresh, &c);
    assert_eq!((rf.status, rf.json()["error"]["code"].as_str()), (503, Some("unavailable")), "{}", rf.body);
    assert!(!rf.body.to_lowercase().contains("postgres"), "no database text: {}", rf.body);
    assert_eq!(info(&s.base, &access), 200, "token-info answers from the access token alone");
    assert_eq!(get(&s.url("/api/health"), &[], &[]).status, 200, "liveness is not readiness");

    proxy.restore();
    assert!(within(Duration::from_secs(10), || ready().status == 200).is_some(), "not ready after the link returned");
    let rf = refresh_at(&s.base, &refresh, &c);
    assert_eq!(rf.status, 200, "nothing was half-written: the token refused during the outage works: {}", rf.body);
    assert_eq!(db.query_i64("SELECT rotations FROM aspjwt.sessions"), 1);

    // The server ends every connection (a restart or failover): the pool replaces them.
    assert!(db.terminate_backends() >= 1);
    assert!(within(Duration::from_secs(10), || ready().status == 200).is_some());
    let back = within(Duration::from_secs(5), || s.login("a@example.com", PASSWORD).status == 200);
    assert!(back.is_some(), "logins work again");
    // The outage was logged (the 503s and the pool's connection errors), the database password never.
    let (logs, stderr) = (s.logs(), s.stderr());
    assert!(logs.contains(r#""status":503"#) && logs.contains("deadpool.postgres"), "{logs}");
    assert!(logs.contains("postgres://postgres:***@"), "the listening line names the database, masked");
    assert!(!logs.contains(PASSWORD_IN_URL) && !stderr.contains(PASSWORD_IN_URL));
}

/// Start-up needs the database: an unreachable PostgreSQL ends `serve` at once with a
/// clear error (the URL's password masked), for compose or systemd to restart it.
#[test]
fn serve_refuses_to_start_without_its_database() {
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let d = setup_on(None, ENV, &[]);
    let url = format!("postgres://aspjwt:pg-s3cr3t@{refused}/aspjwt");
    let started = std::time::Instant::now();
    let out = crate::service::run_env(&d, &["serve", "--bind", "127.0.0.1:0"], &[("ASPJWT_DB", url.as_str())]);
    out.code(2);
    assert!(started.elapsed() < Duration::from_secs(10));
    assert!(
        out.stderr.contains(&format!("postgres://aspjwt:***@{refused}/aspjwt: database is unavailable")),
        "{}",
        out.stderr
    );
    assert!(out.stderr.contains("Connection refused"), "{}", out.stderr);
    assert!(!out.stderr.contains("pg-s3cr3t") && !out.stdout.contains("pg-s3cr3t"));
}

/// `?sslmode=require`: TLS with the server's certificate verified (as libpq's
/// verify-full). The test server serves a self-signed certificate for `localhost`
/// (Debian's snakeoil one, or the one `scripts/test-postgres.sh` made), used here as
/// the CA; ASPJWT_TEST_PG_CA names another CA file.
#[test]
fn tls_to_postgres_is_verified_and_used() {
    let db = PgDb::new();
    let ca = std::env::var("ASPJWT_TEST_PG_CA").unwrap_or_else(|_| {
        // A relative ssl_cert_file is relative to the data directory.
        let file = std::path::PathBuf::from(db.query_text("SHOW ssl_cert_file"));
        std::path::PathBuf::from(db.query_text("SHOW data_directory")).join(file).display().to_string()
    });
    assert!(std::path::Path::new(&ca).is_file(), "{ca}: the CA of the test PostgreSQL is required");
    let url = format!("{}?sslmode=require", db.url.replace("@127.0.0.1:", "@localhost:"));
    let d = setup_on(None, ENV, &[]);
    let list = |env: &[(&str, &str)]| crate::service::run_env(&d, &["user", "list"], env);
    // No CA given: a self-signed certificate chains to no public root.
    let out = list(&[("ASPJWT_DB", &url)]);
    assert!(out.code(2).stderr.contains("UnknownIssuer"), "{}", out.stderr);
    // The right CA, but an address the certificate does not name.
    let by_ip = url.replace("@localhost:", "@127.0.0.1:");
    let out = list(&[("ASPJWT_DB", &by_ip), ("PGSSLROOTCERT", &ca)]);
    assert!(out.code(2).stderr.contains("not valid for name"), "{}", out.stderr);
    // Verified: the commands and the service work, and every connection is encrypted.
    let env = [("ASPJWT_DB", url.as_str()), ("PGSSLROOTCERT", ca.as_str())];
    let mut add = d.cmd();
    add.args(["user", "add", "--email", "a@example.com", "--name", "A", "--role", "admin", "--password-stdin"]);
    add.envs(env);
    crate::util::run(&mut add, Some(format!("{PASSWORD}\n").as_bytes())).code(0);
    let s = Service::start_with(d, &env);
    assert_eq!(s.login("a@example.com", PASSWORD).status, 200);
    let count = |ssl: bool| {
        db.query_i64(&format!(
            "SELECT count(*) FROM pg_stat_ssl s JOIN pg_stat_activity a USING (pid) \
             WHERE a.datname = '{}' AND a.application_name = 'aspjwt' AND s.ssl = {ssl}",
            db.name
        ))
    };
    assert!(count(true) >= 1, "the service's connections use TLS");
    assert_eq!(count(false), 0, "no connection in clear");
}
