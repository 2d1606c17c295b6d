//! Random HTTP requests through the real request handler (`aspjwt::server::handle`),
//! over an in-memory HTTP/1.1 connection to a service on a temp SQLite database:
//! never a panic, never a 5xx, never a hang.
//!
//! An input is text: `METHOD PATH`, header lines `Name: value`, an empty line, the
//! body. `$ACCESS`, `$REFRESH` and `$CSRF` are replaced by a real session's tokens
//! (and `$ADMIN` by an admin's access token), so the fuzzer gets past authentication
//! and CSRF into the handlers behind them. Seeds: `fuzz/seeds/http/`.
#![no_main]
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use aspjwt::config::{ServiceConfig, Settings};
use aspjwt::envfile::EnvFile;
use aspjwt::server::AppState;
use aspjwt::store::{SqliteStore, Store};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::rt::TokioIo;
use libfuzzer_sys::fuzz_target;

const PASSWORD: &str = "correct horse battery staple";

struct World {
    rt: tokio::runtime::Runtime,
    state: Arc<AppState>,
    subs: Vec<(&'static str, String)>,
    _dir: tempfile::TempDir,
}

/// One request through a fresh in-memory connection: status, body (bounded in time).
async fn send(state: &Arc<AppState>, req: Request<Full<Bytes>>) -> (u16, String, Vec<String>) {
    let (client_io, server_io) = tokio::io::duplex(256 * 1024);
    let st = state.clone();
    let peer: SocketAddr = "127.0.0.1:40000".parse().unwrap();
    let server = tokio::spawn(async move {
        let svc = hyper::service::service_fn(move |req| {
            let st = st.clone();
            async move { Ok::<_, Infallible>(aspjwt::server::handle(st, req, peer).await) }
        });
        let _ = hyper::server::conn::http1::Builder::new().serve_connection(TokioIo::new(server_io), svc).await;
    });
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(client_io)).await.unwrap();
    let client = tokio::spawn(conn);
    let exchange = async {
        let resp = sender.send_request(req).await?;
        let status = resp.status().as_u16();
        let cookies = resp
            .headers()
            .get_all("set-cookie")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .map(|v| v.split(';').next().unwrap_or("").to_string())
            .collect();
        let body = resp.into_body().collect().await?.to_bytes();
        Ok::<_, hyper::Error>((status, String::from_utf8_lossy(&body).into_owned(), cookies))
    };
    let answer = match tokio::time::timeout(Duration::from_secs(10), exchange).await {
        Ok(Ok(answer)) => answer,
        // The handler refused the request at the HTTP level (hyper closed it): not a 5xx.
        Ok(Err(_)) => (400, String::new(), Vec::new()),
        Err(_) => panic!("the handler hung for 10 s"),
    };
    // Close the connection and wait for both ends, so that nothing of this request
    // outlives it (the leak checker runs after every input).
    drop(sender);
    let closed = tokio::time::timeout(Duration::from_secs(10), async {
        let _ = client.await;
        let _ = server.await;
    });
    closed.await.expect("the connection did not close");
    answer
}

async fn login(state: &Arc<AppState>, email: &str) -> Vec<(String, String)> {
    let body = format!(r#"{{"email":"{email}","password":"{PASSWORD}"}}"#);
    let req = Request::post("/api/auth/login")
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body)))
        .unwrap();
    let (status, body, cookies) = send(state, req).await;
    assert_eq!(status, 200, "{body}");
    cookies.iter().filter_map(|c| c.split_once('=')).map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn world() -> &'static World {
    static WORLD: OnceLock<World> = OnceLock::new();
    WORLD.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let mut env = String::new();
        for (name, bytes) in [("JWT_SECRET", 64), ("JWT_REFRESH_SECRET", 64), ("SESSION_SECRET", 32)] {
            env.push_str(&format!("{name}={}\n", aspjwt::secrets::generate_os(bytes, aspjwt::secrets::Encoding::Base64)));
        }
        env.push_str("AUTH_RATE_BURST=1000000\nAUTH_RATE_PER_5MIN=100000000\n");
        let settings = Settings::from_doc(&EnvFile::parse(env.as_bytes()).unwrap(), "fuzz");
        let db = dir.path().join("fuzz.db");
        let cfg = ServiceConfig::from_settings(&settings, Some(db.to_str().unwrap())).unwrap();
        let store = SqliteStore::open(&db).unwrap();
        let actor = aspjwt::users::Actor::cli();
        for (email, role) in [("a@example.com", "operator"), ("admin@example.com", "admin")] {
            aspjwt::users::create(&store, email, "Fuzz", role, Some(PASSWORD.into()), &actor, 1_800_000_000).unwrap();
        }
        let state = Arc::new(AppState::new(cfg, Arc::new(store) as Arc<dyn Store>));
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (user, admin) = rt.block_on(async { (login(&state, "a@example.com").await, login(&state, "admin@example.com").await) });
        let get = |c: &[(String, String)], k: &str| c.iter().find(|(n, _)| n == k).unwrap().1.clone();
        let subs = vec![
            ("$ACCESS", get(&user, "access_token")),
            ("$REFRESH", get(&user, "refresh_token")),
            ("$CSRF", get(&user, "csrf_token")),
            ("$ADMIN", get(&admin, "access_token")),
        ];
        World { rt, state, subs, _dir: dir }
    })
}

/// The request an input describes, or None when it is not a well-formed request.
fn request(text: &str) -> Option<Request<Full<Bytes>>> {
    let (head, body) = text.split_once("\n\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let (method, path) = lines.next()?.split_once(' ')?;
    let mut b = Request::builder().method(hyper::Method::from_bytes(method.as_bytes()).ok()?).uri(path);
    for line in lines {
        let (k, v) = line.split_once(':')?;
        b = b.header(k.trim(), v.trim());
    }
    b.body(Full::new(Bytes::from(body.to_string()))).ok()
}

fuzz_target!(|data: &[u8]| {
    let w = world();
    let mut text = String::from_utf8_lossy(data).into_owned();
    for (k, v) in &w.subs {
        text = text.replace(k, v);
    }
    let Some(req) = request(&text) else { return };
    let (status, body, _) = w.rt.block_on(send(&w.state, req));
    // The only 5xx allowed: a protected route with no backend configured (UPSTREAM_URL unset here).
    let no_backend = status == 503 && body.contains("upstream_not_configured");
    assert!(status < 500 || no_backend, "{status} for {text:?}: {body}");
});
