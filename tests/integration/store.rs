//! The store's contract, one set of tests run against both backends: SQLite in a
//! temp folder and PostgreSQL in a database of its own. "Handles" are separate
//! `Store` values over one database, as separate instances of the service are.

use std::sync::{Arc, Barrier};

use aspjwt::audit::{Event, Record};
use aspjwt::store::{
    AuditQuery, Issued, NewSession, NewUser, PgStore, Rotation, SqliteStore, Store, StoreError, Target,
};

use crate::pg::{PgDb, Proxy, sqlite_and_postgres};

/// One database and a way to open more handles on it.
enum Backend {
    Sqlite(tempfile::TempDir),
    Postgres(String),
}

impl Backend {
    /// SQLite in a temp folder, or the PostgreSQL database at `url`.
    fn new(url: Option<&str>) -> Backend {
        match url {
            Some(u) => Backend::Postgres(u.to_string()),
            None => Backend::Sqlite(tempfile::tempdir().unwrap()),
        }
    }

    fn target(&self) -> Target {
        match self {
            Backend::Sqlite(d) => Target::Sqlite(d.path().join("aspjwt.db")),
            Backend::Postgres(url) => Target::Postgres(url.clone()),
        }
    }

    fn open(&self) -> Box<dyn Store> {
        aspjwt::store::open(&self.target()).unwrap()
    }
}

const NOW: i64 = 1_800_000_000;

fn new_user(email: &str) -> NewUser {
    NewUser { email: email.into(), name: "N".into(), role: "operator".into(), password_hash: "$argon2id$x".into() }
}

fn issued(tag: &str, at: i64) -> Issued {
    Issued {
        access_jti: format!("a-{tag}"),
        access_iat: at,
        access_exp: at + 900,
        refresh_jti: format!("r-{tag}"),
        refresh_iat: at,
        refresh_exp: at + 7 * 86400,
    }
}

fn session_for(store: &dyn Store, email: &str, id: &str) -> NewSession {
    let user = match store.user_by_email(email).unwrap() {
        Some(u) => u,
        None => store.create_user(new_user(email), NOW).unwrap(),
    };
    let s = NewSession {
        id: id.into(),
        user_id: user.id,
        email: user.email,
        role: user.role,
        created_at: NOW,
        expires_at: NOW + 30 * 86400,
        issued: issued(&format!("{id}-0"), NOW),
        ip: Some("127.0.0.1".into()),
        user_agent: Some("tests".into()),
        password_hash: user.password_hash,
        rehash: None,
    };
    store.create_session(s.clone()).unwrap();
    s
}

/// A session is created only for the user as the login saw them: disabled since, given
/// another role or another password since, it is refused (`UserChanged`).
fn sessions_are_refused_for_a_user_changed_since_the_login(db: Option<&str>) {
    let b = &Backend::new(db);
    let store = b.open();
    let s = session_for(&*store, "a@example.com", "s1");
    let again = |id: &str| NewSession { id: id.into(), ..s.clone() };
    store.create_session(again("s2")).unwrap();
    store.set_role("a@example.com", "support", NOW).unwrap();
    assert!(matches!(store.create_session(again("s3")), Err(StoreError::UserChanged)), "role changed");
    store.set_role("a@example.com", "operator", NOW).unwrap();
    store.set_password("a@example.com", "$argon2id$other", NOW).unwrap();
    assert!(matches!(store.create_session(again("s4")), Err(StoreError::UserChanged)), "password changed");
    let fresh = NewSession { password_hash: "$argon2id$other".into(), ..again("s5") };
    store.create_session(fresh.clone()).unwrap();
    store.set_disabled("a@example.com", true, NOW).unwrap();
    assert!(
        matches!(store.create_session(NewSession { id: "s6".into(), ..fresh }), Err(StoreError::UserChanged)),
        "disabled"
    );
    assert!(store.session("s3").unwrap().is_none() && store.session("s6").unwrap().is_none());
}

fn template() -> Record {
    Record::new(Event::Refresh, true, NOW * 1000)
}

fn users_round_trip(db: Option<&str>) {
    let b = &Backend::new(db);
    let store = b.open();
    let u = store.create_user(new_user("  Ann@Example.COM "), NOW).unwrap();
    assert_eq!(u.email, "ann@example.com");
    assert!(matches!(store.create_user(new_user("ANN@example.com"), NOW), Err(StoreError::DuplicateEmail(_))));
    store.create_user(new_user("bob@example.com"), NOW).unwrap();
    assert_eq!(store.user_by_email("ann@EXAMPLE.com").unwrap().unwrap(), u);
    assert_eq!(store.user_by_id(&u.id).unwrap().unwrap(), u);
    assert!(store.user_by_id("nope").unwrap().is_none());
    let emails: Vec<String> = store.list_users().unwrap().into_iter().map(|u| u.email).collect();
    assert_eq!(emails, ["ann@example.com", "bob@example.com"]);
    let d = store.set_disabled("ann@example.com", true, NOW + 5).unwrap();
    assert!(d.disabled && d.updated_at == NOW + 5 && d.created_at == NOW);
    assert_eq!(store.set_role("ann@example.com", "admin", NOW + 6).unwrap().role, "admin");
    assert_eq!(store.set_password("ann@example.com", "$argon2id$y", NOW + 7).unwrap().password_hash, "$argon2id$y");
    assert!(matches!(store.set_role("zed@example.com", "admin", NOW), Err(StoreError::NoSuchUser(_))));
    // Another handle sees the same rows.
    let other = b.open();
    assert_eq!(other.user_by_email("ann@example.com").unwrap().unwrap().role, "admin");
}

fn sessions_list_and_count(db: Option<&str>) {
    let b = &Backend::new(db);
    let store = b.open();
    let s1 = session_for(&*store, "a@example.com", "s1");
    session_for(&*store, "a@example.com", "s2");
    session_for(&*store, "b@example.com", "s3");
    let got = store.session("s1").unwrap().unwrap();
    assert_eq!((got.current.clone(), got.rotations, got.revoked_at), (s1.issued.clone(), 0, None));
    assert_eq!(got.ip.as_deref(), Some("127.0.0.1"));
    assert_eq!(store.count_live_sessions(NOW).unwrap(), 3);
    assert_eq!(store.list_sessions(Some(&s1.user_id), false, NOW).unwrap().len(), 2);
    assert!(store.revoke_session("s2", "logout", NOW + 1).unwrap());
    assert!(!store.revoke_session("s2", "logout", NOW + 2).unwrap(), "already revoked");
    assert!(!store.revoke_session("unknown", "logout", NOW + 2).unwrap());
    assert_eq!(store.list_sessions(None, false, NOW + 3).unwrap().len(), 2);
    let all = store.list_sessions(None, true, NOW + 3).unwrap();
    assert_eq!(all.len(), 3);
    let s2 = all.iter().find(|s| s.id == "s2").unwrap();
    assert_eq!((s2.revoked_at, s2.revoke_reason.as_deref()), (Some(NOW + 1), Some("logout")));
    assert_eq!(store.count_live_sessions(NOW + 3).unwrap(), 2);
    assert_eq!(store.revoke_user_sessions(&s1.user_id, "admin", NOW + 4).unwrap(), 1);
    assert_eq!(store.revoke_all_sessions("incident", NOW + 5).unwrap().len(), 1);
    assert_eq!(store.count_live_sessions(NOW + 6).unwrap(), 0);
}

fn rotation_outcomes_and_their_audit(db: Option<&str>) {
    let b = &Backend::new(db);
    let store = b.open();
    let s = session_for(&*store, "a@example.com", "s1");
    let first = s.issued.refresh_jti.clone();
    let r = store.rotate("s1", &first, issued("1", NOW + 10), (NOW + 10) * 1000, 10_000, &template()).unwrap();
    let Rotation::Rotated(after) = r else { panic!("{r:?}") };
    assert_eq!((after.current.refresh_jti.as_str(), after.rotations), ("r-1", 1));
    assert_eq!(after.prev_refresh_jti.as_deref(), Some(first.as_str()));
    assert_eq!(store.session("s1").unwrap().unwrap(), after, "what rotate returns is what is stored");
    // The previous token within the grace period: the current pair again, nothing moves.
    let g = store.rotate("s1", &first, issued("x", NOW + 15), (NOW + 15) * 1000, 10_000, &template()).unwrap();
    assert_eq!(g, Rotation::Grace(after.clone()));
    // Past the grace period the previous token is reuse: the session ends.
    let reuse = store.rotate("s1", &first, issued("y", NOW + 30), (NOW + 30) * 1000, 10_000, &template()).unwrap();
    let Rotation::Reused(dead) = reuse else { panic!("{reuse:?}") };
    assert_eq!(dead.revoke_reason.as_deref(), Some("refresh_token_reuse"));
    let r = store.rotate("s1", "r-1", issued("z", NOW + 31), (NOW + 31) * 1000, 10_000, &template()).unwrap();
    assert!(matches!(r, Rotation::Revoked(_)), "{r:?}");
    assert_eq!(
        store.rotate("nope", "r", issued("u", NOW), (NOW) * 1000, 10_000, &template()).unwrap(),
        Rotation::Unknown
    );
    // The absolute end caps new expiries and, once passed, ends the session.
    let s2 = session_for(&*store, "a@example.com", "s2");
    let late = s2.expires_at - 100;
    let Rotation::Rotated(capped) =
        store.rotate("s2", &s2.issued.refresh_jti, issued("2", late), (late) * 1000, 10_000, &template()).unwrap()
    else {
        panic!()
    };
    assert_eq!((capped.current.access_exp, capped.current.refresh_exp), (s2.expires_at, s2.expires_at));
    let end =
        store.rotate("s2", "r-2", issued("3", s2.expires_at), (s2.expires_at) * 1000, 10_000, &template()).unwrap();
    let Rotation::Expired(e) = end else { panic!("{end:?}") };
    assert_eq!(e.revoke_reason.as_deref(), Some("session_max_lifetime"));
    // Each outcome wrote its audit record in the same transaction.
    let reasons: Vec<String> = store
        .audit_query(&AuditQuery { limit: 0, ..Default::default() })
        .unwrap()
        .into_iter()
        .rev()
        .map(|r| format!("{}:{}", r.event, r.reason.unwrap_or_default()))
        .collect();
    assert_eq!(
        reasons,
        [
            "refresh:rotated",
            "refresh:grace",
            "refresh_token_reuse:session revoked",
            "refresh_failure:session_revoked",
            "refresh_failure:unknown_session",
            "refresh:rotated",
            "refresh_failure:session_max_lifetime"
        ]
    );
    // Both revocations are in the feed, once each, in order.
    let feed = store.revocations_since(0).unwrap();
    assert_eq!(feed.iter().map(|r| r.session_id.as_str()).collect::<Vec<_>>(), ["s1", "s2"]);
    assert!(feed[0].seq < feed[1].seq);
    assert_eq!(store.revocation_cursor().unwrap(), feed[1].seq);
    assert_eq!(store.revocations_since(feed[0].seq).unwrap(), feed[1..]);
    assert_eq!(store.revocations_after(NOW + 31).unwrap().len(), 1);
}

/// Twenty presentations of one token through two handles at once: one rotation,
/// nineteen grace answers carrying exactly the pair that rotation made; no fork, no
/// false reuse alarm.
fn racing_rotations_across_handles_rotate_once(db: Option<&str>) {
    let b = &Backend::new(db);
    let (h1, h2): (Arc<dyn Store>, Arc<dyn Store>) = (Arc::from(b.open()), Arc::from(b.open()));
    let s = session_for(&*h1, "a@example.com", "s1");
    let barrier = Arc::new(Barrier::new(20));
    let results: Vec<Rotation> = (0..20)
        .map(|i| {
            let (store, barrier, presented) =
                (if i % 2 == 0 { h1.clone() } else { h2.clone() }, barrier.clone(), s.issued.refresh_jti.clone());
            std::thread::spawn(move || {
                barrier.wait();
                store
                    .rotate("s1", &presented, issued(&format!("n{i}"), NOW + 1), (NOW + 1) * 1000, 10_000, &template())
                    .unwrap()
            })
        })
        .collect::<Vec<_>>()
        .into_iter()
        .map(|t| t.join().unwrap())
        .collect();
    let winners: Vec<_> =
        results.iter().filter_map(|r| if let Rotation::Rotated(s) = r { Some(s) } else { None }).collect();
    assert_eq!(winners.len(), 1, "{results:?}");
    for r in &results {
        match r {
            Rotation::Rotated(_) => {}
            Rotation::Grace(g) => assert_eq!(g.current, winners[0].current, "grace answers carry the winner's pair"),
            other => panic!("a racing presentation was {other:?}"),
        }
    }
    let stored = h2.session("s1").unwrap().unwrap();
    assert_eq!((stored.rotations, stored.revoked_at, &stored.current), (1, None, &winners[0].current));
    assert!(h1.revocations_since(0).unwrap().is_empty(), "no reuse alarm");
}

/// Revocations from two handles while a third polls the feed with a cursor, as a
/// service instance does: the poller ends up with every revoked session, none skipped.
fn the_revocation_feed_skips_nothing_under_concurrency(db: Option<&str>) {
    let b = &Backend::new(db);
    let setup = b.open();
    for i in 0..60 {
        session_for(&*setup, &format!("u{}@example.com", i % 6), &format!("s{i}"));
    }
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let poller = {
        let (store, done) = (b.open(), done.clone());
        std::thread::spawn(move || {
            let (mut cursor, mut seen) = (0, std::collections::BTreeSet::new());
            loop {
                let finished = done.load(std::sync::atomic::Ordering::SeqCst);
                for r in store.revocations_since(cursor).unwrap() {
                    assert!(r.seq > cursor, "the feed went backwards");
                    cursor = r.seq;
                    seen.insert(r.session_id);
                }
                if finished {
                    return seen;
                }
            }
        })
    };
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let store = b.open();
            std::thread::spawn(move || {
                for i in (w..60).step_by(4) {
                    assert!(store.revoke_session(&format!("s{i}"), "logout", NOW + 1).unwrap());
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    done.store(true, std::sync::atomic::Ordering::SeqCst);
    let seen = poller.join().unwrap();
    assert_eq!(seen.len(), 60, "the poller missed revocations");
}

/// Failed logins counted through two handles at once lose no count.
fn failed_logins_are_counted_exactly_across_handles(db: Option<&str>) {
    let b = &Backend::new(db);
    let handles: Vec<Arc<dyn Store>> = (0..2).map(|_| Arc::from(b.open())).collect();
    let threads: Vec<_> = (0..10)
        .map(|i| {
            let store = handles[i % 2].clone();
            std::thread::spawn(move || {
                for _ in 0..3 {
                    store.record_login_failure("ann@example.com", NOW).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let t = handles[1].throttle("ann@example.com").unwrap();
    assert_eq!((t.consecutive, t.window_failures, t.window_start), (30, 30, NOW));
    assert!(t.locked(NOW));
    handles[0].clear_throttle("ann@example.com").unwrap();
    let t = handles[1].throttle("ann@example.com").unwrap();
    assert_eq!((t.consecutive, t.window_failures), (0, 30), "the hourly window keeps counting");
    assert_eq!(handles[0].throttle("nobody@example.com").unwrap(), Default::default());
}

fn audit_queries_filter(db: Option<&str>) {
    let b = &Backend::new(db);
    let store = b.open();
    let u = store.create_user(new_user("ann@example.com"), NOW).unwrap();
    let rec = |event: Event, ok, at, email: Option<&str>, uid: Option<&str>| {
        let mut r = Record::new(event, ok, at);
        r.email = email.map(str::to_string);
        r.user_id = uid.map(str::to_string);
        store.audit(&r).unwrap();
    };
    rec(Event::LoginFailure, false, 1000, Some(" ANN@example.com"), None);
    rec(Event::LoginSuccess, true, 2000, None, Some(&u.id));
    rec(Event::LoginSuccess, true, 3000, Some("bob@example.com"), None);
    let q = |q: AuditQuery| store.audit_query(&q).unwrap().into_iter().map(|r| r.at_ms).collect::<Vec<_>>();
    assert_eq!(q(AuditQuery::default()), [3000, 2000, 1000]);
    assert_eq!(q(AuditQuery { limit: 2, ..Default::default() }), [3000, 2000]);
    assert_eq!(q(AuditQuery { since_ms: Some(2000), ..Default::default() }), [3000, 2000]);
    assert_eq!(q(AuditQuery { event: Some("login_success".into()), ..Default::default() }), [3000, 2000]);
    assert_eq!(q(AuditQuery { user: Some("Ann@Example.com".into()), ..Default::default() }), [2000, 1000]);
    assert_eq!(q(AuditQuery { user: Some(u.id.clone()), ..Default::default() }), [2000]);
}

/// Instances starting together all migrate the same fresh database without error.
fn concurrent_start_up_migrates_once(db: Option<&str>) {
    let b = &Backend::new(db);
    let target = b.target();
    let barrier = Arc::new(Barrier::new(8));
    let opened: Vec<_> = (0..8)
        .map(|_| {
            let (t, barrier) = (target.clone(), barrier.clone());
            std::thread::spawn(move || {
                barrier.wait();
                aspjwt::store::open(&t).map(|_| ())
            })
        })
        .collect();
    for o in opened {
        o.join().unwrap().unwrap();
    }
    let version = match &target {
        Target::Sqlite(p) => SqliteStore::open(p).unwrap().schema_version().unwrap(),
        Target::Postgres(url) => PgStore::open(url).unwrap().schema_version().unwrap(),
    };
    assert!(version >= 1);
    b.open().ping().unwrap();
}

sqlite_and_postgres!(
    users_round_trip,
    sessions_are_refused_for_a_user_changed_since_the_login,
    sessions_list_and_count,
    rotation_outcomes_and_their_audit,
    racing_rotations_across_handles_rotate_once,
    the_revocation_feed_skips_nothing_under_concurrency,
    failed_logins_are_counted_exactly_across_handles,
    audit_queries_filter,
    concurrent_start_up_migrates_once,
    lapsed_sessions_are_found_and_ended_once,
    racing_rehashing_logins_never_deadlock,
);

#[test]
fn postgres_outage_is_unavailable_and_heals() {
    // Nothing listens: opening fails quickly, as "unavailable".
    let refused = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap();
    let start = std::time::Instant::now();
    let err = PgStore::open(&format!("postgres://postgres@{refused}/x")).err().unwrap();
    assert!(matches!(err, StoreError::Unavailable(_)), "{err:?}");
    assert!(start.elapsed() < std::time::Duration::from_secs(10));
    // Through a proxy: cut the link under an open store, then restore it.
    let db = PgDb::new();
    // A URL that requires TLS never falls back to clear text: here the server's
    // certificate cannot be verified (no CA given, and it does not name 127.0.0.1).
    let tls = PgStore::open(&format!("{}?sslmode=require", db.url)).err().unwrap();
    assert!(tls.to_string().contains("TLS handshake"), "{tls}");
    let proxy = Proxy::new();
    let store = PgStore::open(&db.url_via(proxy.addr, "pw")).unwrap();
    store.create_user(new_user("ann@example.com"), NOW).unwrap();
    proxy.cut();
    for _ in 0..3 {
        let e = store.user_by_email("ann@example.com").unwrap_err();
        assert!(matches!(e, StoreError::Unavailable(_)), "{e:?}");
        assert!(matches!(store.ping(), Err(StoreError::Unavailable(_))));
    }
    proxy.restore();
    let healed = crate::service::within(std::time::Duration::from_secs(10), || store.ping().is_ok());
    assert!(healed.is_some(), "the pool did not reconnect");
    assert!(store.user_by_email("ann@example.com").unwrap().is_some());
    // Backends terminated by the server: the pool replaces them.
    assert!(db.terminate_backends() >= 1);
    let healed = crate::service::within(std::time::Duration::from_secs(10), || store.ping().is_ok());
    assert!(healed.is_some(), "the pool did not replace terminated connections");
}

/// Sessions nobody ended though they are over (refresh token expired, or past their
/// absolute end) are found, and two handles racing to end one end it once.
fn lapsed_sessions_are_found_and_ended_once(url: Option<&str>) {
    let b = Backend::new(url);
    let (one, two) = (b.open(), b.open());
    session_for(&*one, "a@example.com", "live");
    session_for(&*one, "b@example.com", "lapsed");
    session_for(&*one, "c@example.com", "revoked");
    one.revoke_session("revoked", "logout", NOW).unwrap();
    let refresh_end = NOW + 7 * 86400;
    let ids = |v: Vec<aspjwt::store::Session>| v.into_iter().map(|s| s.id).collect::<Vec<_>>();
    assert!(one.lapsed_sessions(NOW, refresh_end - 1, 100).unwrap().is_empty());
    // Every live one has lapsed once its refresh token expired; the revoked one is not listed.
    let mut lapsed = ids(one.lapsed_sessions(NOW, refresh_end, 100).unwrap());
    lapsed.sort();
    assert_eq!(lapsed, ["lapsed", "live"]);
    assert_eq!(one.lapsed_sessions(NOW, refresh_end, 1).unwrap().len(), 1, "the limit holds");
    // Past the absolute end, whatever the refresh token says.
    assert_eq!(one.lapsed_sessions(NOW + 30 * 86400, 0, 100).unwrap().len(), 2);
    // Two instances sweeping at once end it once.
    assert!(one.revoke_session("lapsed", "expired", NOW).unwrap());
    assert!(!two.revoke_session("lapsed", "expired", NOW).unwrap());
    assert_eq!(ids(two.lapsed_sessions(NOW, refresh_end, 100).unwrap()), ["live"]);
}

/// Two logins of one bcrypt user reach the store at once, each with its rehash: one
/// creates its session and upgrades the hash, the other finds the user changed (and the
/// service then goes on with the new hash). Never a deadlock (PostgreSQL used to answer
/// 40P01 here, a 503 to the user).
fn racing_rehashing_logins_never_deadlock(url: Option<&str>) {
    let b = Backend::new(url);
    let stores: Vec<Box<dyn Store>> = (0..2).map(|_| b.open()).collect();
    for round in 0..20 {
        let email = format!("race{round}@example.com");
        let user = stores[0]
            .create_user(NewUser { password_hash: format!("$2b$10$legacy{round}"), ..new_user(&email) }, NOW)
            .unwrap();
        let barrier = Barrier::new(2);
        let results: Vec<_> = std::thread::scope(|t| {
            let runs: Vec<_> = stores
                .iter()
                .enumerate()
                .map(|(i, store)| {
                    let (user, barrier) = (&user, &barrier);
                    t.spawn(move || {
                        let mut audit = Record::new(Event::PasswordRehashed, true, NOW * 1000);
                        audit.user_id = Some(user.id.clone());
                        let s = NewSession {
                            id: format!("s{round}-{i}"),
                            user_id: user.id.clone(),
                            email: user.email.clone(),
                            role: user.role.clone(),
                            created_at: NOW,
                            expires_at: NOW + 86400,
                            issued: issued(&format!("{round}-{i}"), NOW),
                            ip: None,
                            user_agent: None,
                            password_hash: user.password_hash.clone(),
                            rehash: Some(aspjwt::store::Rehash { password_hash: format!("$argon2id$new{i}"), audit }),
                        };
                        barrier.wait();
                        store.create_session(s)
                    })
                })
                .collect();
            runs.into_iter().map(|r| r.join().unwrap()).collect()
        });
        let ok = results.iter().filter(|r| r.is_ok()).count();
        let changed = results.iter().filter(|r| matches!(r, Err(StoreError::UserChanged))).count();
        assert_eq!((ok, changed), (1, 1), "round {round}: {results:?}");
    }
}
