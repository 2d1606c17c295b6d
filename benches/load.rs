//! The load benchmark: `cargo bench --bench load` (release build). It starts the
//! release binary on loopback with a temp database, raises AUTH_RATE_* so that it
//! measures the service rather than the limiter, and prints one line per scenario.
//! LOAD_SECONDS (default 10) and LOAD_CONNECTIONS (default 64) tune it; LOAD_BIN runs
//! another build of aspjwt instead (two versions side by side on one machine). The refresh
//! scenario runs again on PostgreSQL (LOAD_PG, an admin URL, default the local
//! server), in a database the benchmark creates and drops.

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::Request;

mod common;
use common::{Http, PASSWORD, bin, cli, client, client_trusting, enable_tls, login, rss_kb, set_cookie, start};

struct Stats {
    count: usize,
    secs: f64,
    lat: Vec<u32>,
}

impl Stats {
    fn rate(&self) -> f64 {
        self.count as f64 / self.secs
    }
    fn pct(&self, p: f64) -> f64 {
        if self.lat.is_empty() {
            return 0.0;
        }
        self.lat[((self.lat.len() - 1) as f64 * p) as usize] as f64 / 1000.0
    }
    fn line(&self, name: &str) -> String {
        format!(
            "{name:<44} {:>9.0} req/s   p50 {:>6.2} ms   p99 {:>6.2} ms   ({} requests)",
            self.rate(),
            self.pct(0.5),
            self.pct(0.99),
            self.count
        )
    }
}

/// Logs in `sessions` users, then refreshes each session for `secs`, every request
/// with the token the previous one returned: rotation persisted on every request.
async fn refresh_load(c: &Http, base: &str, sessions: usize, secs: f64) -> Stats {
    let mut pairs = Vec::new();
    for i in 0..sessions {
        let (_, r, csrf) = login(c, base, &format!("u{i}@load.test"), PASSWORD).await.unwrap();
        pairs.push((r, csrf));
    }
    let u = Instant::now() + Duration::from_secs_f64(secs);
    load(sessions, secs, |i| {
        let (c, base) = (c.clone(), base.to_string());
        let (mut r, csrf) = pairs[i].clone();
        async move {
            let mut lat = Vec::new();
            while Instant::now() < u {
                let t = Instant::now();
                let req = Request::post(format!("{base}/api/auth/refresh"))
                    .header("cookie", format!("refresh_token={r}; csrf_token={csrf}"))
                    .header("x-csrf-token", &csrf)
                    .body(Full::default())
                    .unwrap();
                let resp = c.request(req).await.expect("refresh");
                assert_eq!(resp.status(), 200, "refresh failed");
                r = set_cookie(&resp, "refresh_token").unwrap();
                let _ = resp.into_body().collect().await;
                lat.push(t.elapsed().as_micros() as u32);
            }
            lat
        }
    })
    .await
}

/// The same refresh load on PostgreSQL (a database of its own on LOAD_PG, default
/// the local server, dropped afterwards), for the side-by-side figure.
fn postgres_refresh(sessions: usize, secs: f64) {
    let admin = std::env::var("LOAD_PG").unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let name = format!("aspjwt_load_{}", std::process::id());
    if let Err(e) = common::pg_admin(&admin, &format!("CREATE DATABASE {name}")) {
        println!("{:<44} not measured: no PostgreSQL at {admin} ({e})", "POST /api/auth/refresh on PostgreSQL");
        return;
    }
    let url = format!("{}/{name}", admin.rsplit_once('/').unwrap().0);
    let tmp = common::prepare_on(sessions, Some(&url));
    let (mut server, base, _) = start(tmp.path());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let refresh = rt.block_on(async { refresh_load(&client(), &base, sessions, secs).await });
    println!("{}", refresh.line(&format!("POST /api/auth/refresh ({sessions} sessions, PostgreSQL)")));
    println!("{:<44} {:>9.1} MB", "  resident memory (PostgreSQL run)", rss_kb(server.id()) as f64 / 1024.0);
    let _ = Command::new("kill").args(["-TERM", &server.id().to_string()]).status();
    let _ = server.wait();
    let _ = common::pg_admin(&admin, &format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"));
}

/// Runs `conns` loops of `one` for `secs`; `one` returns false on a failed request.
async fn load<F, Fut>(conns: usize, secs: f64, make: F) -> Stats
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = Vec<u32>> + Send + 'static,
{
    let t = Instant::now();
    let tasks: Vec<_> = (0..conns).map(|i| tokio::spawn(make(i))).collect();
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    lat.sort_unstable();
    Stats { count: lat.len(), secs: t.elapsed().as_secs_f64().max(secs.min(t.elapsed().as_secs_f64())), lat }
}

async fn get_loop(c: Http, url: String, cookie: String, until: Instant) -> Vec<u32> {
    let mut lat = Vec::new();
    while Instant::now() < until {
        let t = Instant::now();
        let req = Request::get(&url).header("cookie", &cookie).body(Full::default()).unwrap();
        let resp = c.request(req).await.expect("request");
        assert!(resp.status().is_success(), "{url}: {}", resp.status());
        let _ = resp.into_body().collect().await;
        lat.push(t.elapsed().as_micros() as u32);
    }
    lat
}

fn whole_process(args: &[&str], runs: usize) -> (f64, f64) {
    let mut times: Vec<f64> = (0..runs)
        .map(|_| {
            let t = Instant::now();
            let out = Command::new(bin()).args(args).stdout(Stdio::null()).stderr(Stdio::null()).status().unwrap();
            assert!(out.success());
            t.elapsed().as_secs_f64() * 1000.0
        })
        .collect();
    times.sort_by(|a, b| a.partial_cmp(b).unwrap());
    (times[runs / 2], times.iter().sum::<f64>() / runs as f64)
}

fn main() {
    let secs: f64 = std::env::var("LOAD_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(10.0);
    let conns: usize = std::env::var("LOAD_CONNECTIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(64);
    let sessions = conns.max(1);
    let tmp = common::prepare(sessions);
    let dir = tmp.path();
    let (mut server, base, started) = start(dir);
    let pid = server.id();
    println!(
        "machine: {} cores, {}",
        std::thread::available_parallelism().map_or(0, |n| n.get()),
        std::env::consts::ARCH
    );
    println!("{:<44} {:>9.1} ms", "start: process start to first accepted connection", started.as_secs_f64() * 1000.0);

    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    rt.block_on(async {
        let c = client();
        // One session per connection, as many browsers polling token-info would be.
        let mut cookies = Vec::new();
        for i in 0..conns {
            let (access, _, _) = login(&c, &base, &format!("u{}@load.test", i % sessions), PASSWORD).await.unwrap();
            cookies.push(format!("access_token={access}"));
        }
        // Warm up.
        let _ = load(8, 1.0, |_| {
            get_loop(c.clone(), format!("{base}/api/health"), String::new(), Instant::now() + Duration::from_secs(1))
        })
        .await;

        let until = || Instant::now() + Duration::from_secs_f64(secs);
        let u = until();
        let health = load(conns, secs, |_| get_loop(c.clone(), format!("{base}/api/health"), String::new(), u)).await;
        println!("{}", health.line("GET /api/health (static, the HTTP ceiling)"));
        let u = until();
        let cpu = common::cpu_ms(pid);
        let info =
            load(conns, secs, |i| get_loop(c.clone(), format!("{base}/api/auth/token-info"), cookies[i].clone(), u))
                .await;
        let info_cpu = (common::cpu_ms(pid) - cpu) * 1000.0 / info.count as f64;
        println!("{}", info.line(&format!("GET /api/auth/token-info ({conns} sessions)")));
        println!("{:<44} {:>9.1} %", "ratio token-info / health", 100.0 * info.rate() / health.rate());

        // The same over HTTPS: a second service serving TLS (ECDSA P-256), the same
        // keep-alive connections, so the handshakes are paid once and the records each time.
        let tls_tmp = common::prepare(sessions);
        let ca = enable_tls(tls_tmp.path());
        let (mut tls_server, tls_base, _) = start(tls_tmp.path());
        let tc = client_trusting(&[ca]);
        let mut tls_cookies = Vec::new();
        for i in 0..conns {
            let (access, _, _) =
                login(&tc, &tls_base, &format!("u{}@load.test", i % sessions), PASSWORD).await.unwrap();
            tls_cookies.push(format!("access_token={access}"));
        }
        let u = until();
        let cpu = common::cpu_ms(tls_server.id());
        let tls_info = load(conns, secs, |i| {
            get_loop(tc.clone(), format!("{tls_base}/api/auth/token-info"), tls_cookies[i].clone(), u)
        })
        .await;
        let tls_cpu = (common::cpu_ms(tls_server.id()) - cpu) * 1000.0 / tls_info.count as f64;
        println!("{}", tls_info.line(&format!("GET /api/auth/token-info over TLS ({conns} sessions)")));
        println!("{:<44} {:>9.1} %", "ratio token-info TLS / plain", 100.0 * tls_info.rate() / info.rate());
        // The client shares the two cores and pays for TLS too: the service's own CPU per
        // request says what TLS costs the service.
        println!(
            "{:<44} {:>9.1} µs plain, {:.1} µs TLS ({:.0} % of plain's throughput per CPU)",
            "  service CPU per token-info",
            info_cpu,
            tls_cpu,
            100.0 * info_cpu / tls_cpu
        );
        let _ = Command::new("kill").args(["-TERM", &tls_server.id().to_string()]).status();
        let _ = tls_server.wait();

        // Refresh with durable rotation: every session uses the token its last refresh returned.
        let refresh = refresh_load(&c, &base, sessions, secs).await;
        println!("{}", refresh.line(&format!("POST /api/auth/refresh ({sessions} sessions, SQLite)")));
        let rss_refresh = rss_kb(pid);

        // token-info while logins flood (wrong passwords: every one pays argon2).
        let stop = Arc::new(AtomicBool::new(false));
        let flood: Vec<_> = (0..16)
            .map(|i| {
                let (c, base, stop) = (c.clone(), base.clone(), stop.clone());
                tokio::spawn(async move {
                    // Unknown, never-repeated emails: no account lock, every attempt pays argon2.
                    let mut n = 0;
                    while !stop.load(Ordering::Relaxed) {
                        let _ = login(&c, &base, &format!("flood-{i}-{n}@load.test"), "wrong password").await;
                        n += 1;
                    }
                    n
                })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(500)).await;
        let u = until();
        let during =
            load(16, secs, |i| get_loop(c.clone(), format!("{base}/api/auth/token-info"), cookies[i].clone(), u)).await;
        stop.store(true, Ordering::Relaxed);
        let mut logins = 0;
        for f in flood {
            logins += f.await.unwrap();
        }
        println!("{}", during.line("token-info during a login flood"));
        let rss_flood = rss_kb(pid);
        println!(
            "{:<44} {:>9.1} MB after the refresh load, {:.1} MB after the login flood",
            "resident memory",
            rss_refresh as f64 / 1024.0,
            rss_flood as f64 / 1024.0
        );
        println!("{:<44} {:>9.1} logins/s (each one argon2id, 2 at a time)", "  the flood", logins as f64 / secs);
        let _ = Empty::<Bytes>::new();
    });

    // Memory for 100,000 sessions, on a fresh service that has hashed no password (the
    // argon2 work buffers are measured above): seeded through the store, all revoked, so
    // every one sits in the revocation cache (the worst case).
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = server.wait();
    let (mut server, _, _) = start(dir);
    let pid = server.id();
    let before = rss_kb(pid);
    let store = aspjwt::store::SqliteStore::open(&dir.join("aspjwt.db")).unwrap();
    use aspjwt::store::Store;
    let user = store.user_by_email("u0@load.test").unwrap().unwrap();
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() as i64;
    let t = Instant::now();
    for i in 0..100_000 {
        let issued = aspjwt::store::Issued {
            access_jti: format!("a{i}"),
            access_iat: now,
            access_exp: now + 900,
            refresh_jti: format!("r{i}"),
            refresh_iat: now,
            refresh_exp: now + 604_800,
        };
        store
            .create_session(aspjwt::store::NewSession {
                id: format!("load-session-{i}"),
                user_id: user.id.clone(),
                email: user.email.clone(),
                role: user.role.clone(),
                created_at: now,
                expires_at: now + 30 * 86_400,
                issued,
                ip: None,
                user_agent: None,
                password_hash: user.password_hash.clone(),
                rehash: None,
            })
            .unwrap();
    }
    let seeded = t.elapsed();
    let revoked = store.revoke_user_sessions(&user.id, "load test", now).unwrap();
    std::thread::sleep(Duration::from_secs(2)); // the revocation feed reaches the service
    println!(
        "{:<44} {:>9.0} sessions/s (one transaction each)",
        "store: session inserts",
        100_000.0 / seeded.as_secs_f64()
    );
    println!(
        "{:<44} {:>9.1} MB (fresh service {:.1} MB; {revoked} sessions, all revoked, all in the revocation cache)",
        "resident memory with 100,000 sessions",
        rss_kb(pid) as f64 / 1024.0,
        before as f64 / 1024.0
    );

    let jwt = cli(dir, &["mint", "--sub", "1", "--email", "a@b.c", "--role", "admin", "--env-file", ".env"], None);
    let (p50, mean) = whole_process(&["generate"], 50);
    println!("{:<44} {:>9.2} ms p50 ({mean:.2} ms mean, 50 runs)", "whole process: aspjwt generate", p50);
    let (p50, mean) = whole_process(&["decode", jwt.trim()], 50);
    println!("{:<44} {:>9.2} ms p50 ({mean:.2} ms mean, 50 runs)", "whole process: aspjwt decode", p50);
    let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = server.wait();

    postgres_refresh(sessions, secs);
}
