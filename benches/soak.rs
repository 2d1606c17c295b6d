//! The soak: many clients doing login → refresh × k → token-info → logout in loops
//! against the release binary, for SOAK_SECONDS (default 120; run it for minutes,
//! not in CI): `SOAK_SECONDS=600 cargo bench --bench soak`. It fails on any 5xx, on
//! any refresh that should have rotated and did not, and on memory that keeps growing.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;

mod common;
use common::{Http, PASSWORD, client, login, rss_kb, set_cookie, start};

#[derive(Default)]
struct Counts {
    requests: AtomicU64,
    server_errors: AtomicU64,
    failed_rotations: AtomicU64,
    cycles: AtomicU64,
}

async fn status(c: &Http, req: Request<Full<Bytes>>, counts: &Counts) -> (u16, Option<String>) {
    let resp = c.request(req).await.expect("request");
    counts.requests.fetch_add(1, Ordering::Relaxed);
    let s = resp.status().as_u16();
    if s >= 500 {
        counts.server_errors.fetch_add(1, Ordering::Relaxed);
    }
    let refresh = set_cookie(&resp, "refresh_token");
    let _ = resp.into_body().collect().await;
    (s, refresh)
}

async fn client_loop(c: Http, base: String, email: String, until: Instant, counts: Arc<Counts>) {
    while Instant::now() < until {
        let Some((access, mut refresh, csrf)) = login(&c, &base, &email, PASSWORD).await else {
            counts.failed_rotations.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        counts.requests.fetch_add(1, Ordering::Relaxed);
        for _ in 0..5 {
            let req = Request::post(format!("{base}/api/auth/refresh"))
                .header("cookie", format!("refresh_token={refresh}; csrf_token={csrf}"))
                .header("x-csrf-token", &csrf)
                .body(Full::default())
                .unwrap();
            match status(&c, req, &counts).await {
                (200, Some(next)) if next != refresh => refresh = next,
                _ => {
                    counts.failed_rotations.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        let req = Request::get(format!("{base}/api/auth/token-info"))
            .header("cookie", format!("access_token={access}"))
            .body(Full::default())
            .unwrap();
        status(&c, req, &counts).await;
        let req = Request::post(format!("{base}/api/auth/logout"))
            .header("cookie", format!("refresh_token={refresh}; csrf_token={csrf}"))
            .header("x-csrf-token", &csrf)
            .body(Full::default())
            .unwrap();
        status(&c, req, &counts).await;
        counts.cycles.fetch_add(1, Ordering::Relaxed);
    }
}

fn main() {
    let secs: u64 = std::env::var("SOAK_SECONDS").ok().and_then(|v| v.parse().ok()).unwrap_or(120);
    let clients = 32;
    let tmp = common::prepare(clients);
    let (mut server, base, _) = start(tmp.path());
    let pid = server.id();
    let counts = Arc::new(Counts::default());
    let rt = tokio::runtime::Builder::new_multi_thread().enable_all().build().unwrap();
    let mut samples = Vec::new();
    rt.block_on(async {
        let c = client();
        let until = Instant::now() + Duration::from_secs(secs);
        let tasks: Vec<_> = (0..clients)
            .map(|i| {
                tokio::spawn(client_loop(c.clone(), base.clone(), format!("u{i}@load.test"), until, counts.clone()))
            })
            .collect();
        while Instant::now() < until {
            tokio::time::sleep(Duration::from_secs(10).min(until.saturating_duration_since(Instant::now()))).await;
            let rss = rss_kb(pid);
            samples.push(rss);
            println!(
                "{:>4} s  {:>8} requests  {:>6} cycles  {} 5xx  {} failed rotations  {:.1} MB",
                samples.len() * 10,
                counts.requests.load(Ordering::Relaxed),
                counts.cycles.load(Ordering::Relaxed),
                counts.server_errors.load(Ordering::Relaxed),
                counts.failed_rotations.load(Ordering::Relaxed),
                rss as f64 / 1024.0
            );
        }
        for t in tasks {
            t.await.unwrap();
        }
    });
    let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
    let _ = server.wait();
    let (errors, failed) =
        (counts.server_errors.load(Ordering::Relaxed), counts.failed_rotations.load(Ordering::Relaxed));
    // Flat memory: the second half grows by less than 10% over the first half's peak.
    let half = samples.len() / 2;
    let (first, second) =
        (samples[..half.max(1)].iter().max().copied().unwrap_or(0), samples.last().copied().unwrap_or(0));
    println!(
        "soak: {} requests, {errors} 5xx, {failed} failed rotations, memory {:.1} MB → {:.1} MB",
        counts.requests.load(Ordering::Relaxed),
        first as f64 / 1024.0,
        second as f64 / 1024.0
    );
    assert_eq!(errors, 0, "server errors during the soak");
    assert_eq!(failed, 0, "rotations that should have succeeded failed");
    assert!(second as f64 <= first as f64 * 1.10 + 2048.0, "memory kept growing: {first} kB → {second} kB");
}
