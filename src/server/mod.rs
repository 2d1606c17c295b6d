//! `aspjwt serve`: a lean hyper 1 auth service on tokio. One shared state, one
//! router, plain async functions for the steps around it.

mod assets;
mod auth;
mod conn;
mod csrf;
mod gateway;
mod http;
mod limits;
mod listener;
mod live;
mod metrics;
mod path;
mod revocations;
pub mod roles;
mod users_api;
mod verified;

use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
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

use governor::{DefaultDirectRateLimiter, Quota};

pub use self::http::{ApiError, Body};
pub use self::revocations::Revocations;
use crate::audit::Record;
use crate::config::ServiceConfig;
use crate::names;
use crate::store::Store;

/// Password hashes running at once; each holds ~19 MiB.
const HASH_PERMITS: usize = 2;
/// How long a login waits for a hashing slot before answering 503.
const HASH_QUEUE_WAIT: Duration = Duration::from_secs(10);
/// Connections the metrics listener serves at once.
const METRICS_CONNECTIONS: usize = 16;
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
    /// The client: the TCP peer, or the forwarded client behind a trusted proxy.
    pub ip: IpAddr,
    pub peer: IpAddr,
    pub user_agent: Option<String>,
    pub request_id: String,
}

pub struct AppState {
    /// Swapped whole by a SIGHUP reload; read with `cfg()`.
    cfg: std::sync::RwLock<Arc<ServiceConfig>>,
    pub store: Arc<dyn Store>,
    pub revoked: Revocations,
    /// Access tokens already verified with the current key (see `verified`).
    pub verified: verified::Verified,
    /// Sessions known to be live (or not), so access tokens need one (see `live`).
    pub live: live::LiveSessions,
    pub metrics: metrics::Metrics,
    login_limiter: limits::IpLimiter,
    refresh_limiter: limits::IpLimiter,
    /// Caps how many audit rows floods (rate limits, CSRF refusals) may write.
    noisy_audit: DefaultDirectRateLimiter,
    upstream: gateway::Upstream,
    /// Requests forwarded to the backend at once, per client and in all (each holds an
    /// upstream connection and a file descriptor for as long as its answer streams).
    pub gateway_slots: gateway::Slots,
    hashing: Semaphore,
    /// The highest bcrypt cost among the users' hashes (0: none left), which every login
    /// pays while any remain (`password::plan`); re-read every 30 s.
    legacy_max: std::sync::atomic::AtomicU32,
    /// Whether the last write probe (readiness, or the poller's every 5 s) succeeded: a
    /// full or read-only disk still reads.
    db_writable: std::sync::atomic::AtomicBool,
    /// The certificate new TLS handshakes get (None: plain HTTP); a reload swaps it.
    tls: Option<Arc<crate::tls::Served>>,
}

impl AppState {
    pub fn new(cfg: ServiceConfig, store: Arc<dyn Store>) -> AppState {
        let limiter = || limits::IpLimiter::new(cfg.rate_burst, cfg.rate_per_5min, cfg.rate_limit_clients);
        AppState {
            login_limiter: limiter(),
            refresh_limiter: limiter(),
            noisy_audit: DefaultDirectRateLimiter::direct(Quota::per_second(
                std::num::NonZeroU32::new(20).expect("non-zero"),
            )),
            upstream: gateway::client(),
            tls: cfg.tls.as_ref().map(crate::tls::Served::new),
            gateway_slots: gateway::Slots::new(cfg.max_connections_per_ip, cfg.max_connections),
            metrics: metrics::Metrics::default(),
            cfg: std::sync::RwLock::new(Arc::new(cfg)),
            store,
            revoked: Revocations::default(),
            verified: verified::Verified::default(),
            live: live::LiveSessions::default(),
            hashing: Semaphore::new(HASH_PERMITS),
            legacy_max: std::sync::atomic::AtomicU32::new(0),
            db_writable: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// The configuration in force.
    pub fn cfg(&self) -> Arc<ServiceConfig> {
        self.cfg.read().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Audits an event that attackers can cause in bulk, at most 20 a second.
    pub async fn audit_noisy(&self, r: Record) {
        if self.noisy_audit.check().is_ok() {
            self.audit(r).await;
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
    /// Checks a login's password against the user's hash (None: an unknown email) with
    /// the same work whoever asks (`password::plan`), inside the hashing permits.
    async fn verify_password(&self, password: String, hash: Option<String>) -> Result<bool, ApiError> {
        use std::sync::atomic::Ordering;
        if let Some(crate::password::Scheme::Bcrypt { cost }) = hash.as_deref().and_then(crate::password::Scheme::of) {
            // Imported since the last count: from now on every login pays it.
            self.legacy_max.fetch_max(cost, Ordering::Relaxed);
        }
        let legacy = Some(self.legacy_max.load(Ordering::Relaxed)).filter(|c| *c > 0);
        self.hashing_work(move || crate::password::verify_login(&password, hash.as_deref(), legacy)).await
    }

    /// An argon2id hash of a password, inside the hashing permits (a bcrypt user's upgrade).
    async fn hash_password(&self, password: String) -> Result<String, ApiError> {
        self.hashing_work(move || crate::password::hash(&password)).await
    }

    /// Runs password work off the async runtime, at most `HASH_PERMITS` at once.
    async fn hashing_work<T: Send + 'static>(&self, f: impl FnOnce() -> T + Send + 'static) -> Result<T, ApiError> {
        let permit = tokio::time::timeout(HASH_QUEUE_WAIT, self.hashing.acquire())
            .await
            .map_err(|_| ApiError::new(StatusCode::SERVICE_UNAVAILABLE, "busy", "too many logins at once; try again"))?
            .map_err(|_| ApiError::internal())?;
        let out = tokio::task::spawn_blocking(f).await.map_err(|_| ApiError::internal())?;
        drop(permit);
        Ok(out)
    }

    /// Re-reads the highest bcrypt cost left among the users (one login's upgrade, or an
    /// import on another instance, changes it).
    async fn refresh_legacy_max(&self) {
        if let Ok(costs) = self.blocking(|s| s.legacy_hash_costs()).await {
            let max = costs.iter().copied().max().unwrap_or(0);
            // Made before they are needed: a login that had to make one would stand out.
            let _ = tokio::task::spawn_blocking(move || crate::password::warm_dummies(&costs)).await;
            self.legacy_max.store(max, std::sync::atomic::Ordering::Relaxed);
        }
    }

    /// Writes an audit record to the store and as one JSON log line.
    pub async fn audit(&self, r: Record) {
        self.log(&r);
        if let Err(e) = self.blocking(move |s| s.audit(&r)).await {
            tracing::error!(code = e.code, "audit record not stored");
        }
    }

    /// The JSON log line of an audit record (for records the store already wrote).
    pub fn log(&self, r: &Record) {
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
    }

    /// Reads the revocation feed now (as the poller does every 500 ms), so that sessions
    /// this instance just ended through the store are refused from the next request on.
    pub async fn sync_revocations(&self) {
        let (revoked, store, keep) = (self.revoked.clone(), self.store.clone(), self.revocation_memory());
        match tokio::task::spawn_blocking(move || revoked.poll(&*store, now(), keep)).await {
            Ok(Ok(ended)) => {
                self.metrics.database_up(self.db_writable.load(std::sync::atomic::Ordering::Relaxed));
                for sid in &ended {
                    self.live.end(sid);
                }
                self.observe_operator_revocations(ended).await;
            }
            Ok(Err(e)) => {
                self.metrics.database_up(false);
                tracing::warn!(error = %e, "revocation poll failed");
            }
            Err(_) => {}
        }
    }

    /// Sessions ended outside any service's request path (`sessions revoke`, `incident`,
    /// a user disabled, demoted or given a new password, here or by the CLI) reach the
    /// session-age histogram as `revoked` when this instance reads them from the feed.
    /// Endings a service records itself (logout, new login, reuse, expiry) are skipped, so
    /// they are not counted twice. Every instance reads the whole feed: with several
    /// instances, each counts every such revocation (aggregate with max, not sum).
    async fn observe_operator_revocations(&self, sids: Vec<String>) {
        const BY_OPERATORS: &[&str] =
            &["revoked_by_operator", "incident", "user_disabled", "password_changed", "role_changed", "restored"];
        if sids.is_empty() {
            return;
        }
        // Only each ending's age and rotations are kept: a feed of 100,000 revocations (an
        // incident) must not hold 100,000 sessions in memory at once.
        let ended = self
            .blocking(move |s| {
                let mut ended = Vec::new();
                for sid in &sids {
                    if let Some(session) = s.session(sid)?
                        && let (Some(at), Some(reason)) = (session.revoked_at, session.revoke_reason.as_deref())
                        && BY_OPERATORS.contains(&reason)
                    {
                        ended.push((at - session.created_at, session.rotations));
                    }
                }
                Ok(ended)
            })
            .await
            .unwrap_or_default();
        for (age, rotations) in ended {
            self.metrics.session_ended("revoked", age, rotations);
        }
    }

    /// Sessions whose refresh token expired unused (the client never came back) or whose
    /// absolute end passed are over though nothing ended them: every 30 s they are
    /// ended in the store as `expired` and observed in the session-age histogram. The
    /// store ends each once, so with several instances exactly one instance counts it.
    async fn end_lapsed_sessions(&self) {
        let now = now();
        let refresh_before = now - auth::REFRESH_LEEWAY_SECS;
        let ended = self
            .blocking(move |s| {
                let mut ended = Vec::new();
                for session in s.lapsed_sessions(now, refresh_before, 1000)? {
                    if s.revoke_session(&session.id, "expired", now)? {
                        ended.push(session);
                    }
                }
                Ok(ended)
            })
            .await;
        for s in ended.unwrap_or_default() {
            self.revoked.insert(&s.id, now);
            self.live.end(&s.id);
            self.metrics.session_ended("expired", now - s.created_at, s.rotations);
        }
    }

    /// Writes the readiness heartbeat: whether the database takes writes now.
    async fn probe_writes(&self) -> bool {
        let ok = self.blocking(|s| s.ping()).await.is_ok();
        self.db_writable.store(ok, std::sync::atomic::Ordering::Relaxed);
        // A write that went through is the database answering: up at once, not at the next poll.
        self.metrics.database_up(ok);
        ok
    }

    /// How long a revocation must be remembered: until every access token of the
    /// session has expired, with the leeway tokens are checked with.
    fn revocation_memory(&self) -> Duration {
        self.cfg().tokens.access_ttl + Duration::from_secs(auth::LEEWAY_SECS as u64 + 5)
    }
}

/// A request id: 72 bits from the thread-local generator (unique, not a secret).
pub(crate) fn request_id() -> String {
    use base64::Engine;
    let mut b = [0u8; 9];
    rand::RngCore::fill_bytes(&mut rand::rng(), &mut b);
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(b)
}

/// The route class a path's latency is recorded under.
fn route_class(path: &str) -> &'static str {
    match path {
        "/api/auth/login" => return "login",
        "/api/auth/refresh" => return "refresh",
        "/api/auth/logout" => return "logout",
        "/api/auth/token-info" => return "token_info",
        _ => {}
    }
    if path.starts_with("/api/auth") {
        "other"
    } else if path.starts_with("/api/health") {
        "health"
    } else if path == "/metrics" {
        "metrics"
    } else if roles::area(path).is_some() {
        "protected"
    } else {
        "other"
    }
}

/// Routes one request; every answer gets the security headers, CORS headers for an
/// allowed origin, and a request id.
pub async fn handle(state: Arc<AppState>, req: Request<Incoming>, peer: SocketAddr) -> Response<Body> {
    let started = std::time::Instant::now();
    let (mut parts, body) = req.into_parts();
    // The path is decided here, once: every later decision and the gateway see only this one.
    let normalized = path::normalize(parts.uri.path());
    if let Ok(p) = &normalized
        && p != parts.uri.path()
    {
        parts.uri = with_path(&parts.uri, p);
    }
    let forwarded = http::joined(&parts.headers, "x-forwarded-for");
    let ctx = Ctx {
        ip: crate::net::client_ip(peer.ip(), forwarded.as_deref(), &state.cfg().trusted_proxies),
        peer: peer.ip(),
        user_agent: parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect()),
        request_id: request_id(),
    };
    let path = parts.uri.path().to_string();
    let origin = parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_string);
    let allowed_origin = origin.filter(|o| state.cfg().allowed_origins.iter().any(|a| a == o));
    let http2 = parts.version == hyper::Version::HTTP_2;
    let result = match normalized {
        Ok(_) => route(&state, parts, body, &ctx, &path, allowed_origin.is_some()).await,
        Err(e) => Err(ApiError::bad_request("bad_path", e.to_string())),
    };
    let mut resp = result.unwrap_or_else(ApiError::into_response);
    let h = resp.headers_mut();
    if http2 {
        // Connection-level headers do not exist in HTTP/2.
        h.remove(header::CONNECTION);
    }
    let no_store = path.starts_with("/api/") && !path.starts_with("/api/health") || h.contains_key(header::SET_COOKIE);
    http::security_headers(h, state.cfg().secure_transport(), no_store);
    if let Some(o) = allowed_origin {
        h.insert(header::ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_str(&o).expect("configured origins are ascii"));
        h.insert(header::ACCESS_CONTROL_ALLOW_CREDENTIALS, HeaderValue::from_static("true"));
    }
    h.append(header::VARY, HeaderValue::from_static("Origin"));
    h.insert("x-request-id", HeaderValue::from_str(&ctx.request_id).expect("base64url"));
    if resp.status().is_server_error() {
        tracing::warn!(status = resp.status().as_u16(), path = %crate::audit::escape(&path), request_id = %ctx.request_id, "server error");
    }
    state.metrics.observe(route_class(&path), started.elapsed());
    state.metrics.response(resp.status().as_u16());
    resp
}

/// The same URI with another path (its query, scheme and authority kept).
fn with_path(uri: &hyper::Uri, path: &str) -> hyper::Uri {
    let mut parts = uri.clone().into_parts();
    let pq = match uri.query() {
        Some(q) => format!("{path}?{q}"),
        None => path.to_string(),
    };
    parts.path_and_query = Some(pq.parse().expect("a normalised path is a valid URI path"));
    hyper::Uri::from_parts(parts).expect("only the path changed")
}

async fn route(
    state: &AppState,
    parts: hyper::http::request::Parts,
    body: Incoming,
    ctx: &Ctx,
    path: &str,
    cors_ok: bool,
) -> Result<Response<Body>, ApiError> {
    let method = parts.method.clone();
    if method == Method::TRACE {
        return Err(ApiError::method_not_allowed("GET, POST"));
    }
    if method == Method::OPTIONS {
        if !cors_ok {
            return Err(ApiError::forbidden("cors_rejected", "this origin may not call the API"));
        }
        let mut resp = http::empty(StatusCode::NO_CONTENT);
        let h = resp.headers_mut();
        h.insert(header::ACCESS_CONTROL_ALLOW_METHODS, HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE"));
        h.insert(
            header::ACCESS_CONTROL_ALLOW_HEADERS,
            HeaderValue::from_static("Content-Type, Authorization, X-CSRF-Token"),
        );
        h.insert(header::ACCESS_CONTROL_MAX_AGE, HeaderValue::from_static("600"));
        return Ok(resp);
    }
    if matches!(method, Method::GET | Method::HEAD)
        && let Some(resp) = assets::get(path)
    {
        return Ok(resp);
    }
    match (&method, path) {
        (&Method::GET | &Method::HEAD, "/api/health") => {
            return Ok(http::json(StatusCode::OK, &health_body(&state.cfg())));
        }
        (&Method::GET | &Method::HEAD, "/api/health/ready") => {
            return match state.probe_writes().await {
                true => Ok(http::json(StatusCode::OK, &json!({"status": "ready"}))),
                false => Err(ApiError::unavailable()),
            };
        }
        (&Method::POST, "/api/auth/login") => return auth::login(state, &parts, body, ctx).await,
        (&Method::POST, "/api/auth/refresh") => return auth::refresh(state, &parts, ctx).await,
        (&Method::POST, "/api/auth/logout") => return auth::logout(state, &parts, ctx).await,
        (&Method::GET | &Method::HEAD, "/api/auth/token-info") => return auth::token_info(state, &parts).await,
        (_, "/api/auth/login" | "/api/auth/refresh" | "/api/auth/logout") => {
            return Err(ApiError::method_not_allowed("POST"));
        }
        (_, "/api/auth/token-info" | "/api/health" | "/api/health/ready") => {
            return Err(ApiError::method_not_allowed("GET"));
        }
        (&Method::GET, "/metrics") if state.cfg().metrics_bind.is_none() => {
            let caller = auth::authenticate(state, &parts.headers).await?;
            if caller.role() != "admin" {
                return Err(ApiError::forbidden("forbidden", "metrics are for admins"));
            }
            return metrics_response(state).await;
        }
        _ => {}
    }
    // Protected routes: deny by default, the role matrix opens them.
    let Some(area) = roles::area(path) else { return Err(ApiError::not_found()) };
    let caller = auth::authenticate(state, &parts.headers).await?;
    if !roles::allows(area, caller.role(), &method) {
        return Err(ApiError::forbidden("forbidden", "your role may not do this"));
    }
    let unsafe_method = !matches!(method, Method::GET | Method::HEAD);
    if unsafe_method && caller.by_cookie {
        auth::require_csrf(state, &parts.headers, caller.sid(), ctx).await?;
    }
    match area {
        roles::Area::Users => users_api::handle(state, parts, body, ctx).await,
        _ => gateway::forward(state, parts, body, &caller, ctx).await,
    }
}

/// Liveness, with the key ids in use and any open rollover window (key ids are public
/// fingerprints, not secrets).
fn health_body(cfg: &ServiceConfig) -> serde_json::Value {
    use crate::token::key_id;
    let now = now();
    let t = &cfg.tokens;
    let mut rollover = Vec::new();
    for (name, prev) in [
        (crate::names::JWT_SECRET, &t.access_previous),
        (crate::names::JWT_REFRESH_SECRET, &t.refresh_previous),
        (crate::names::SESSION_SECRET, &cfg.session_previous),
    ] {
        if let Some(p) = prev.as_ref().filter(|p| p.until > now) {
            let until = crate::token::Time::new(p.until, now).rfc3339.unwrap_or_default();
            rollover.push(json!({"secret": name, "previousKid": key_id(&p.secret), "until": until}));
        }
    }
    json!({
        "status": "ok",
        "service": crate::names::SERVICE,
        "version": env!("CARGO_PKG_VERSION"),
        "keys": {"access": key_id(&t.access_secret), "refresh": key_id(&t.refresh_secret), "session": key_id(&cfg.session_secret)},
        "rollover": rollover,
    })
}

/// A warning in the log when the certificate in service (or one of its chain) is within
/// 14 days of its end, or past it: at start and at every reload.
fn warn_if_ending(t: &crate::tls::Identity) {
    let now = now();
    let (_, limit, freshness) = t.limit(now);
    if freshness != crate::tls::Freshness::Valid {
        tracing::warn!(
            event = "certificate_ending",
            not_after = limit.not_after,
            "the TLS certificate {} ({}) {}: renew it, then send SIGHUP",
            crate::audit::escape(&t.cert_path.display().to_string()),
            crate::audit::escape(&limit.subject),
            limit.expiry_text(now)
        );
    }
}

/// Where a SIGHUP re-reads the configuration from.
#[derive(Debug, Clone, Default)]
pub struct ReloadSource {
    pub env_file: Option<std::path::PathBuf>,
    pub db: Option<String>,
}

/// SIGHUP: re-read the env file and, when it passes `aspjwt check`'s rules, put the new
/// secrets, windows and lifetimes in force for new tokens at once, keeping connections
/// and sessions. Settings that need a restart (database, listeners, limits) keep
/// their running values. A failing reload changes nothing and is audited.
async fn reload_on_hup(state: Arc<AppState>, source: ReloadSource) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else { return };
    while hup.recv().await.is_some() {
        let loaded = crate::config::Settings::for_service(source.env_file.as_deref())
            .map_err(|e| vec![e.to_string()])
            .and_then(|s| ServiceConfig::reload(&s, source.db.as_deref(), &state.cfg()));
        let mut r = Record::new(crate::audit::Event::ConfigReloaded, true, now_ms());
        r.ip = Some("signal".into());
        match loaded {
            Ok(mut new) => {
                let old = state.cfg();
                // Settings bound at start (listeners, caps, limiters) keep their values
                // until a restart: said, not silently ignored.
                let fixed: Vec<&str> = [
                    (names::ASPJWT_DB, new.db.to_string() != old.db.to_string()),
                    (names::METRICS_BIND, new.metrics_bind != old.metrics_bind),
                    (names::ASPJWT_MAX_CONNECTIONS, new.max_connections != old.max_connections_configured),
                    (
                        names::ASPJWT_MAX_CONNECTIONS_PER_IP,
                        new.max_connections_per_ip != old.max_connections_per_ip_configured,
                    ),
                    (names::ASPJWT_IDLE_TIMEOUT, new.idle_timeout != old.idle_timeout),
                    (names::AUTH_RATE_BURST, new.rate_burst != old.rate_burst),
                    (names::AUTH_RATE_PER_5MIN, new.rate_per_5min != old.rate_per_5min),
                    (names::ASPJWT_RATE_LIMIT_CLIENTS, new.rate_limit_clients != old.rate_limit_clients),
                    (names::ASPJWT_REDIRECT_BIND, new.redirect_bind != old.redirect_bind),
                    // HTTPS on or off is the listener's kind; the pair itself reloads.
                    (names::ASPJWT_TLS_CERT, new.tls.is_some() != old.tls.is_some()),
                ]
                .into_iter()
                .filter_map(|(name, changed)| changed.then_some(name))
                .collect();
                if !fixed.is_empty() {
                    tracing::warn!(
                        event = "reload_needs_restart",
                        settings = %fixed.join(", "),
                        "SIGHUP cannot change {}: they take effect at the next restart",
                        fixed.join(", ")
                    );
                }
                new.max_connections_configured = old.max_connections_configured;
                new.max_connections_per_ip_configured = old.max_connections_per_ip_configured;
                new.db = old.db.clone();
                new.metrics_bind = old.metrics_bind;
                new.max_connections = old.max_connections;
                new.max_connections_per_ip = old.max_connections_per_ip;
                new.idle_timeout = old.idle_timeout;
                new.rate_burst = old.rate_burst;
                new.rate_per_5min = old.rate_per_5min;
                new.rate_limit_clients = old.rate_limit_clients;
                new.redirect_bind = old.redirect_bind;
                match (&state.tls, &new.tls) {
                    (Some(served), Some(identity)) => served.replace(identity),
                    _ => new.tls = old.tls.clone(),
                }
                let keys = health_body(&new);
                *state.cfg.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(new);
                // Not needed for safety (a hit needs the current kid), but frees the memory.
                state.verified.clear();
                // The pid lets `aspjwt incident` find this instance's answer to its SIGHUP.
                let certificate = state.cfg().tls.as_ref().map_or(String::new(), |t| {
                    warn_if_ending(t);
                    let now = now();
                    let chain = match t.limit(now) {
                        (1, ..) => String::new(),
                        (i, c, _) => format!(", certificate {i} of its chain {}", c.expiry_text(now)),
                    };
                    format!("; certificate sha256:{} {}{chain}", &t.leaf.fingerprint[..16], t.leaf.expiry_text(now))
                });
                r.reason = Some(format!(
                    "pid {}; {}keys {}; rollover {}{certificate}",
                    std::process::id(),
                    if fixed.is_empty() {
                        String::new()
                    } else {
                        format!("unchanged until a restart: {}; ", fixed.join(", "))
                    },
                    keys["keys"],
                    keys["rollover"]
                ));
                tracing::info!(event = "config_reloaded", "configuration reloaded on SIGHUP");
            }
            Err(problems) => {
                r = Record {
                    event: crate::audit::Event::ConfigReloadRefused.as_str().into(),
                    outcome: "failure".into(),
                    ..r
                };
                r.reason = Some(format!("pid {}; {}", std::process::id(), problems.join("; ")));
                tracing::warn!(
                    event = "config_reload_refused",
                    "SIGHUP reload refused; the running configuration stays"
                );
            }
        }
        state.audit(r).await;
    }
}

async fn metrics_response(state: &AppState) -> Result<Response<Body>, ApiError> {
    let now = now();
    let active = state.blocking(move |s| s.count_live_sessions(now)).await.ok();
    let legacy_hashes = state.blocking(|s| s.legacy_hash_costs()).await.ok().map(|c| c.len());
    let tracked = state.login_limiter.tracked() + state.refresh_limiter.tracked();
    let cfg = state.cfg();
    let t = &cfg.tokens;
    let end = |p: &Option<crate::token::Previous>| p.as_ref().filter(|p| p.until > now).map_or(0, |p| p.until);
    let rollover_ends = [
        (crate::names::JWT_SECRET, end(&t.access_previous)),
        (crate::names::JWT_REFRESH_SECRET, end(&t.refresh_previous)),
        (crate::names::SESSION_SECRET, end(&cfg.session_previous)),
    ];
    let gauges = metrics::Gauges {
        active_sessions: active,
        tracked_clients: tracked,
        rollover_ends: &rollover_ends,
        legacy_hashes,
        certificate_expiry: cfg.tls.as_ref().map(|t| t.limit(now).1.not_after),
    };
    let mut resp = Response::new(http::full(state.metrics.render(&gauges)));
    resp.headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"));
    Ok(resp)
}

/// Serves `/metrics` alone, without auth, on `METRICS_BIND`.
async fn serve_metrics(state: Arc<AppState>, listener: TcpListener) {
    // Prometheus needs one or two connections: a small cap keeps a flood of idle ones
    // from using up the process's file descriptors.
    let slots = Arc::new(Semaphore::new(METRICS_CONNECTIONS));
    loop {
        let Ok((stream, _)) = listener.accept().await else { continue };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            continue;
        };
        let st = state.clone();
        let cfg = state.cfg();
        let in_flight = conn::InFlight::default();
        let io = TokioIo::new(conn::Guarded::new(stream, cfg.idle_timeout, in_flight.clone(), cfg.production));
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let st = st.clone();
                let handling = in_flight.start();
                async move {
                    let mut resp = if req.uri().path() == "/metrics" {
                        metrics_response(&st).await.unwrap_or_else(ApiError::into_response)
                    } else {
                        ApiError::not_found().into_response()
                    };
                    http::security_headers(resp.headers_mut(), false, true);
                    Ok::<_, Infallible>(conn::track(resp, handling))
                }
            });
            let _ = hyper::server::conn::http1::Builder::new().serve_connection(io, svc).await;
            drop(slot);
        });
    }
}

/// Concurrent HTTP/2 streams per connection.
pub const MAX_STREAMS: u32 = 32;

/// The fewest connections the service runs with (`ASPJWT_MAX_CONNECTIONS` is at least
/// this too): with three quarters per address, one address leaves others a slot.
pub const MIN_CONNECTIONS: usize = 4;

/// Descriptors kept aside for the database, listeners, logs and the metrics listener.
const RESERVED_FDS: u64 = 128;

/// Every client connection and every forwarded request holds a file descriptor: raises
/// the soft open-files limit to the hard one, and if `ASPJWT_MAX_CONNECTIONS` (clients
/// plus as many forwarded requests) still does not fit, lowers it to what does, with a
/// warning. Running out of descriptors would stop accepting everyone, health checks
/// included.
fn fit_open_files(cfg: &mut ServiceConfig) -> anyhow::Result<()> {
    let mut lim = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: plain getrlimit/setrlimit on this process with a valid struct.
    let soft = unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) != 0 {
            return Ok(());
        }
        if lim.rlim_cur < lim.rlim_max {
            let raised = libc::rlimit { rlim_cur: lim.rlim_max, rlim_max: lim.rlim_max };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                lim.rlim_cur = lim.rlim_max;
            }
        }
        lim.rlim_cur
    };
    let fits = (soft.saturating_sub(RESERVED_FDS) / 2) as usize;
    // Fewer than four connections cannot keep one address from holding them all.
    if fits < MIN_CONNECTIONS {
        anyhow::bail!(
            "the open-files limit ({soft}) fits only {fits} connections; aspjwt needs at least {MIN_CONNECTIONS}, so that one address never holds them all: raise `ulimit -n` to {} or more",
            RESERVED_FDS + 2 * MIN_CONNECTIONS as u64
        );
    }
    if cfg.max_connections > fits {
        tracing::warn!(
            event = "open_files_limit",
            limit = soft,
            max_connections = fits,
            "the open-files limit ({soft}) fits only {fits} connections and as many forwarded requests; ASPJWT_MAX_CONNECTIONS lowered to {fits} (raise `ulimit -n` to allow more)"
        );
        cfg.max_connections = fits.max(1);
    }
    let per_ip = conn::per_ip_cap(cfg.max_connections_per_ip, cfg.max_connections);
    if per_ip != cfg.max_connections_per_ip {
        tracing::warn!(
            event = "per_ip_cap_lowered",
            max_connections = cfg.max_connections,
            configured = cfg.max_connections_per_ip,
            max_connections_per_ip = per_ip,
            "ASPJWT_MAX_CONNECTIONS_PER_IP ({}) would let one address hold all {} connections; lowered to {per_ip}, leaving the rest to other addresses",
            cfg.max_connections_per_ip,
            cfg.max_connections
        );
        cfg.max_connections_per_ip = per_ip;
    }
    Ok(())
}

/// Binds, announces the address as a JSON log line, serves until SIGTERM or
/// SIGINT, drains in-flight requests for up to 10 s and closes the store.
pub async fn run(
    cfg: ServiceConfig,
    bind: SocketAddr,
    store: Arc<dyn Store>,
    reload: ReloadSource,
) -> anyhow::Result<()> {
    let mut cfg = cfg;
    fit_open_files(&mut cfg)?;
    let state = Arc::new(AppState::new(cfg, store));
    // Before the first login: every login pays the highest bcrypt cost left.
    state.refresh_legacy_max().await;
    let reloader = tokio::spawn(reload_on_hup(state.clone(), reload));
    {
        let st = state.clone();
        let keep = state.revocation_memory();
        tokio::task::spawn_blocking(move || -> crate::store::Result<()> {
            let now = now();
            st.revoked.seed(&*st.store, now, keep)?;
            for s in st.store.list_sessions(None, false, now)? {
                st.live.remember(&s, now);
            }
            Ok(())
        })
        .await??;
    }
    let listener = TcpListener::bind(bind).await.map_err(|e| anyhow::anyhow!("cannot listen on {bind}: {e}"))?;
    let addr = listener.local_addr()?;
    let poller = tokio::spawn(poll_revocations(state.clone()));
    let metrics_server = match state.cfg().metrics_bind {
        Some(m) => {
            let l =
                TcpListener::bind(m).await.map_err(|e| anyhow::anyhow!("METRICS_BIND: cannot listen on {m}: {e}"))?;
            tracing::info!(event = "metrics_listening", addr = %l.local_addr()?, "metrics on http://{}/metrics", l.local_addr()?);
            Some(tokio::spawn(serve_metrics(state.clone(), l)))
        }
        None => None,
    };
    let cfg = state.cfg();
    let redirect_server = match cfg.redirect_bind {
        Some(r) => {
            let l = TcpListener::bind(r)
                .await
                .map_err(|e| anyhow::anyhow!("{}: cannot listen on {r}: {e}", names::ASPJWT_REDIRECT_BIND))?;
            tracing::info!(event = "redirect_listening", addr = %l.local_addr()?, "redirecting http://{} to https://", l.local_addr()?);
            Some(tokio::spawn(listener::redirect(l, addr.port(), cfg.idle_timeout, cfg.trusted_proxies.clone())))
        }
        None => None,
    };
    if cfg.production && cfg.tls.is_none() {
        tracing::warn!(
            event = "no_tls",
            "APP_ENV=production without {} and {}: aspjwt serves plain HTTP and expects a TLS-terminating proxy in front (cookies are Secure, so browsers send them only over HTTPS)",
            names::ASPJWT_TLS_CERT,
            names::ASPJWT_TLS_KEY
        );
    }
    if let Some(t) = &cfg.tls {
        warn_if_ending(t);
    }
    let scheme = if cfg.tls.is_some() { "https" } else { "http" };
    // Announced last, so that "listening" means every listener is up.
    tracing::info!(event = "listening", addr = %addr, url = %format!("{scheme}://{addr}"), db = %cfg.db, pid = std::process::id(), "listening on {scheme}://{addr}");
    let connections = Arc::new(Semaphore::new(cfg.max_connections));
    let per_ip = conn::PerIp::new(cfg.max_connections_per_ip);
    let mut builder = auto::Builder::new(TokioExecutor::new());
    // The header deadline is the connection guard's, counted from a head's first byte
    // (hyper's would count a keep-alive connection's quiet time against the next head).
    builder.http1().timer(TokioTimer::new()).header_read_timeout(None).max_buf_size(64 * 1024);
    // Browsers need a handful of streams; hyper's default of 200 a connection would let
    // a few connections hold thousands of requests.
    builder.http2().max_concurrent_streams(MAX_STREAMS);
    let graceful = GracefulShutdown::new();
    // Handshakes still in progress when the service stops are dropped, not waited for.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let serving = listener::Serving {
        stopping,
        builder,
        tls: state
            .tls
            .as_ref()
            .map(|served| tokio_rustls::TlsAcceptor::from(crate::tls::server_config(served.clone()))),
        idle: cfg.idle_timeout,
        secure: cfg.secure_transport(),
    };
    let plain = serving.tls.is_none();
    drop(cfg);
    let mut shutdown = std::pin::pin!(shutdown_signal());
    loop {
        tokio::select! {
            permit = connections.clone().acquire_owned() => {
                let permit = permit.expect("never closed");
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    signal = &mut shutdown => {
                        tracing::info!(event = "shutdown", signal = signal, "stopping: no new connections, draining");
                        break;
                    }
                };
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!(error = %e, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                // A trusted proxy carries everyone's connections: only the global cap holds it.
                let trusted = state.cfg().trusted_proxies.iter().any(|n| n.contains(peer.ip()));
                let Some(slot) = (if trusted { Some(None) } else { per_ip.acquire(peer.ip()).map(Some) }) else {
                    // One address already holds its share: answer 503 and close, off the
                    // slot (over TLS, close: an answer would cost a handshake).
                    drop(permit);
                    state.metrics.connection_refused();
                    if plain {
                        tokio::spawn(conn::refuse(stream, serving.secure));
                    }
                    continue;
                };
                let slots = listener::Slots { global: permit, per_ip: slot, watcher: graceful.watcher() };
                tokio::spawn(listener::serve(state.clone(), serving.clone(), stream, peer, slots));
            }
            signal = &mut shutdown => {
                tracing::info!(event = "shutdown", signal = signal, "stopping: no new connections, draining");
                break;
            }
        }
    }
    drop(listener);
    let _ = stop.send(true);
    drop(serving);
    poller.abort();
    reloader.abort();
    for task in [metrics_server, redirect_server].into_iter().flatten() {
        task.abort();
    }
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
    let mut ticks: u64 = 0;
    loop {
        tick.tick().await;
        ticks += 1;
        // Once a minute, forget clients whose buckets are full again, and give back
        // the password-hashing memory after a minute without logins.
        // Every 30 s, sessions that lapsed with nobody to end them.
        if ticks.is_multiple_of(60) {
            state.end_lapsed_sessions().await;
            state.refresh_legacy_max().await;
        }
        if ticks.is_multiple_of(120) {
            state.live.prune(now());
            state.login_limiter.forget_idle();
            state.refresh_limiter.forget_idle();
            tokio::task::spawn_blocking(|| crate::password::release_idle(Duration::from_secs(60)));
        }
        // Every 5 s, that the database takes writes too (readiness's heartbeat).
        if ticks.is_multiple_of(10) {
            state.probe_writes().await;
        }
        state.sync_revocations().await;
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
