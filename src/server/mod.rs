//! `aspjwt serve`: a lean hyper 1 auth service on tokio. One shared state, one
//! router, plain async functions for the steps around it.

mod auth;
mod http;
mod revocations;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use hyper::body::Incoming;
use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use serde_json::json;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;

pub use self::http::{ApiError, Body};
pub use self::revocations::Revocations;
use crate::audit::Record;
use crate::config::ServiceConfig;
use crate::store::Store;

/// Password hashes running at once; each holds ~19 MiB.
const HASH_PERMITS: usize = 2;
/// How long a login waits for a hashing slot before answering 503.
const HASH_QUEUE_WAIT: Duration = Duration::from_secs(10);
/// In-flight requests get this long to finish after SIGTERM/SIGINT.
const DRAIN: Duration = Duration::from_secs(10);

pub fn now() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64)
}

pub fn now_ms() -> i64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64)
}

/// What one request knows about its client.
pub struct Ctx {
    pub ip: String,
    pub user_agent: Option<String>,
    pub request_id: String,
}

pub struct AppState {
    pub cfg: ServiceConfig,
    pub store: Arc<dyn Store>,
    pub revoked: Revocations,
    hashing: Semaphore,
    /// Verified against for unknown emails, so they cost what a wrong password costs.
    dummy_hash: String,
}

impl AppState {
    pub fn new(cfg: ServiceConfig, store: Arc<dyn Store>) -> AppState {
        AppState {
            cfg,
            store,
            revoked: Revocations::default(),
            hashing: Semaphore::new(HASH_PERMITS),
            dummy_hash: crate::password::hash(&crate::token::random_id()),
        }
    }

    /// Runs a store call on the blocking pool.
    pub async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&dyn Store) -> crate::store::Result<T> + Send + 'static,
    ) -> Result<T, ApiError> {
        let store = self.store.clone();
        tokio::task::spawn_blocking(move || f(&*store)).await.map_err(|_| ApiError::internal())?.map_err(ApiError::from)
    }

    /// Verifies a password off the runtime, at most HASH_PERMITS at once.
    async fn verify_password(&self, password: String, hash: String) -> Result<bool, ApiError> {
        let permit = tokio::time::timeout(HASH_QUEUE_WAIT, self.hashing.acquire())
            .await
            .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "too many logins at once; try again"))?
            .map_err(|_| ApiError::internal())?;
        let ok = tokio::task::spawn_blocking(move || crate::password::verify(&password, &hash))
            .await
            .map_err(|_| ApiError::internal())?;
        drop(permit);
        Ok(ok)
    }

    /// Writes an audit record to the store and as one JSON log line.
    pub async fn audit(&self, r: Record) {
        tracing::info!(
            target: "audit",
            event = %r.event,
            outcome = %r.outcome,
            user_id = r.user_id.as_deref(),
            email = r.email.as_deref(),
            ip = r.ip.as_deref(),
            user_agent = r.user_agent.as_deref(),
            request_id = r.request_id.as_deref(),
            reason = r.reason.as_deref(),
            "audit"
        );
        if let Err(e) = self.blocking(move |s| s.audit(&r)).await {
            tracing::error!(code = e.code, "audit record not stored");
        }
    }

    /// How long a revocation must be remembered: until every access token of the
    /// session has expired, with the leeway tokens are checked with.
    fn revocation_memory(&self) -> Duration {
        self.cfg.tokens.access_ttl + Duration::from_secs(auth::LEEWAY_SECS as u64 + 5)
    }
}

fn request_id() -> String {
    crate::token::random_id()[..12].to_string()
}

/// Routes one request; every answer gets the security headers and a request id.
pub async fn handle(state: Arc<AppState>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let (parts, body) = req.into_parts();
    let ctx = Ctx {
        ip: peer.ip().to_string(),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
        request_id: request_id(),
    };
    let path = parts.uri.path().to_string();
    let method = parts.method.clone();
    let result = match (&method, path.as_str()) {
        (&Method::TRACE, _) => Err(ApiError::method_not_allowed("GET, POST")),
        (&Method::GET, "/api/health") => Ok(http::json(StatusCode::OK, &json!({"status": "ok"}))),
        (&Method::GET, "/api/health/ready") => match state.blocking(|s| s.ping()).await {
            Ok(()) => Ok(http::json(StatusCode::OK, &json!({"status": "ready"}))),
            Err(_) => Err(ApiError::unavailable()),
        },
        (&Method::POST, "/api/auth/login") => auth::login(&state, &parts, body, &ctx).await,
        (&Method::POST, "/api/auth/refresh") => auth::refresh(&state, &parts, &ctx).await,
        (&Method::POST, "/api/auth/logout") => auth::logout(&state, &parts, &ctx).await,
        (&Method::GET | &Method::HEAD, "/api/auth/token-info") => auth::token_info(&state, &parts).await,
        (_, "/api/auth/login" | "/api/auth/refresh" | "/api/auth/logout") => Err(ApiError::method_not_allowed("POST")),
        (_, "/api/auth/token-info") => Err(ApiError::method_not_allowed("GET")),
        (_, "/api/health" | "/api/health/ready") => Err(ApiError::method_not_allowed("GET")),
        _ => Err(ApiError::not_found()),
    };
    let mut resp = result.unwrap_or_else(ApiError::into_response);
    let no_store = path.starts_with("/api/auth") || resp.headers().contains_key(header::SET_COOKIE);
    http::security_headers(resp.headers_mut(), state.cfg.production, no_store);
    resp.headers_mut().insert("x-request-id", HeaderValue::from_str(&ctx.request_id).expect("base64url"));
    if resp.status().is_server_error() {
        tracing::warn!(status = resp.status().as_u16(), path = %crate::audit::escape(&path), request_id = %ctx.request_id, "server error");
    }
    resp
}

/// Binds, announces the address as a JSON log line, serves until SIGTERM or
/// SIGINT, drains in-flight requests for up to 10 s and closes the store.
pub async fn run(cfg: ServiceConfig, bind: SocketAddr, store: Arc<dyn Store>) -> anyhow::Result<()> {
    let state = Arc::new(AppState::new(cfg, store));
    {
        let st = state.clone();
        let keep = state.revocation_memory();
        tokio::task::spawn_blocking(move || st.revoked.seed(&*st.store, now(), keep)).await??;
    }
    let listener = TcpListener::bind(bind).await.map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
    let addr = listener.local_addr()?;
    tracing::info!(event = "listening", addr = %addr, db = %state.cfg.db.display(), "listening on http://{addr}");

    let poller = tokio::spawn(poll_revocations(state.clone()));
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(Duration::from_secs(10)).max_buf_size(64 * 1024);
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let st = state.clone();
                let svc = service_fn(move |req| {
                    let st = st.clone();
                    async move { Ok::<_, Infallible>(handle(st, req, peer).await) }
                });
                let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
                let conn = graceful.watch(conn.into_owned());
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            signal = &mut shutdown => {
                tracing::info!(event = "shutdown", signal = signal, "stopping: no new connections, draining");
                break;
            }
        }
    }
    drop(listener);
    poller.abort();
    if tokio::time::timeout(DRAIN, graceful.shutdown()).await.is_err() {
        tracing::warn!(event = "shutdown", "requests still in flight after {}s; closing anyway", DRAIN.as_secs());
    }
    let st = state.clone();
    tokio::task::spawn_blocking(move || st.store.close()).await??;
    tracing::info!(event = "stopped", "database closed; bye");
    Ok(())
}

async fn poll_revocations(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(revocations::POLL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        let st = state.clone();
        let keep = state.revocation_memory();
        match tokio::task::spawn_blocking(move || st.revoked.poll(&*st.store, now(), keep)).await {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(error = %e, "revocation poll failed"),
            Err(_) => {}
        }
    }
}

async fn shutdown_signal() -> &'static str {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    tokio::select! {
        _ = term.recv() => "SIGTERM",
        _ = int.recv() => "SIGINT",
    }
}
