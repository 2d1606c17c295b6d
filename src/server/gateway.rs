//! The authenticating gateway: protected routes other than `/api/users` are
//! forwarded to `UPSTREAM_URL` (the CRM backend) with the caller's identity in
//! `X-Auth-*` headers. Whatever the client sent under those names is dropped first.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Limited};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::http::request::Parts;
use hyper::{Request, Response, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;

use super::auth::Caller;
use super::http::{ApiError, Body, BoxError};
use super::{AppState, Ctx};
use crate::names::{claim, cookie as cookies};

/// Largest request body forwarded.
const MAX_BODY: usize = 10 * 1024 * 1024;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

pub type Upstream = Client<HttpConnector, Body>;

/// How many requests are forwarded at once: per client address (the per-address
/// connection cap again, however many HTTP/2 streams carry them) and in all (the
/// connection cap again). Each holds an upstream connection until its answer is sent.
pub struct Slots {
    per_ip: Arc<super::conn::PerIp>,
    total: Arc<tokio::sync::Semaphore>,
}

/// One forwarded request's place; dropped with its answer's body.
pub struct Slot {
    _ip: super::conn::IpSlot,
    _total: tokio::sync::OwnedSemaphorePermit,
}

impl Slots {
    pub fn new(per_ip: usize, total: usize) -> Slots {
        Slots { per_ip: super::conn::PerIp::new(per_ip), total: Arc::new(tokio::sync::Semaphore::new(total)) }
    }

    fn acquire(&self, ip: std::net::IpAddr) -> Option<Slot> {
        let ip_slot = self.per_ip.acquire(ip)?;
        let total = self.total.clone().try_acquire_owned().ok()?;
        Some(Slot { _ip: ip_slot, _total: total })
    }
}

/// A forwarded request body that fails once no byte has arrived for `idle`: a slow
/// upload goes through however long it takes, a stalled one does not hold the
/// connection (or the upstream's) for ever. Once the backend has answered (some answer
/// before they read a body, or without reading it), the rest must arrive within `idle`
/// in all: a trickle no longer holds the two connections.
struct IdleBody<B> {
    inner: B,
    idle: Duration,
    timer: Pin<Box<tokio::time::Sleep>>,
    timed_out: Arc<AtomicBool>,
    /// Set when the backend's answer arrived: the deadline for the rest of the body.
    answered: Arc<std::sync::OnceLock<tokio::time::Instant>>,
    /// Set when the client's body itself failed (too large, bad chunked encoding).
    client_fault: Arc<std::sync::OnceLock<ClientFault>>,
}

/// How a client's request body failed while it was being forwarded.
#[derive(Debug, Clone, Copy)]
enum ClientFault {
    TooLarge,
    Malformed,
}

impl<B> IdleBody<B> {
    fn new(
        inner: B,
        idle: Duration,
        timed_out: Arc<AtomicBool>,
        answered: Arc<std::sync::OnceLock<tokio::time::Instant>>,
        client_fault: Arc<std::sync::OnceLock<ClientFault>>,
    ) -> IdleBody<B> {
        IdleBody { inner, idle, timer: Box::pin(tokio::time::sleep(idle)), timed_out, answered, client_fault }
    }
}

impl<B> hyper::body::Body for IdleBody<B>
where
    B: hyper::body::Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if self.answered.get().is_some_and(|d| tokio::time::Instant::now() >= *d) {
            self.timed_out.store(true, Ordering::Relaxed);
            return Poll::Ready(Some(Err("the backend answered; the rest of the body did not arrive in time".into())));
        }
        match Pin::new(&mut self.inner).poll_frame(cx) {
            Poll::Ready(frame) => {
                let mut due = tokio::time::Instant::now() + self.idle;
                if let Some(deadline) = self.answered.get() {
                    due = due.min(*deadline);
                }
                self.timer.as_mut().reset(due);
                Poll::Ready(frame.map(|f| {
                    f.map_err(|e| {
                        // The client's body failed, not the backend: remembered so the
                        // answer is the client's fault (413 or 400), never a 502.
                        let e: BoxError = e.into();
                        let fault = if e.is::<http_body_util::LengthLimitError>() {
                            ClientFault::TooLarge
                        } else {
                            ClientFault::Malformed
                        };
                        let _ = self.client_fault.set(fault);
                        e
                    })
                }))
            }
            Poll::Pending if self.timer.as_mut().poll(cx).is_ready() => {
                self.timed_out.store(true, Ordering::Relaxed);
                Poll::Ready(Some(Err("no byte of the request body arrived in time".into())))
            }
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// A body that holds its request's `Slot` until it is done.
struct Holding<B> {
    inner: B,
    _slot: Slot,
}

impl<B: hyper::body::Body<Data = Bytes, Error = BoxError> + Unpin> hyper::body::Body for Holding<B> {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        // A backend's trailers are headers too, unfiltered: HTTP/2 clients would get its
        // Set-Cookie and X-Powered-By there. Nothing the service forwards needs them.
        loop {
            match ready!(Pin::new(&mut self.inner).poll_frame(cx)) {
                Some(Ok(frame)) if frame.is_trailers() => continue,
                other => return Poll::Ready(other),
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pub fn client() -> Upstream {
    let mut connector = HttpConnector::new();
    connector.set_connect_timeout(Some(CONNECT_TIMEOUT));
    connector.set_nodelay(true);
    Client::builder(TokioExecutor::new()).pool_idle_timeout(Duration::from_secs(60)).build(connector)
}

/// Connection-level headers, never forwarded (RFC 9110 §7.6.1), plus any the
/// `Connection` header names.
fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::from_bytes(n.trim().as_bytes()).ok())
        .collect();
    for n in named {
        headers.remove(n);
    }
    for h in [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ] {
        headers.remove(h);
    }
}

/// Client headers a backend might believe: the identity this service asserts
/// (`X-Auth-*`), where the client came from (`Forwarded`, `X-Forwarded-*`, `X-Real-IP`
/// and the CDNs' variants), and method overrides (which would let a GET that the role
/// matrix allowed act as a DELETE). Compared with `_` read as `-`, as CGI-style
/// backends fold them.
fn is_spoofable(name: &str) -> bool {
    let name = name.replace('_', "-");
    name.starts_with("x-auth-")
        || name.starts_with("x-forwarded-")
        || matches!(
            name.as_str(),
            "forwarded"
                | "x-real-ip"
                | "x-client-ip"
                | "client-ip"
                | "true-client-ip"
                | "cf-connecting-ip"
                | "fastly-client-ip"
                | "x-cluster-client-ip"
                | "x-original-forwarded-for"
                | "x-original-url"
                | "x-rewrite-url"
                | "x-original-host"
                | "x-host"
                | "x-http-method-override"
                | "x-http-method"
                | "x-method-override"
                | "x-original-method"
                | "x-url-scheme"
                | "x-scheme"
                | "front-end-https"
                | "x-original-proto"
                | "x-arr-ssl"
                | "x-original-uri"
                | "x-envoy-original-path"
                | "remote-user"
                | "x-remote-user"
                | "x-user"
                | "x-user-id"
                | "x-role"
                | "x-authenticated-user"
                | "x-authenticated-userid"
                | "x-consumer-id"
                | "x-forwarded"
                | "forwarded-for"
                | "x-originating-ip"
                | "x-remote-ip"
                | "x-remote-addr"
                | "x-proxyuser-ip"
                | "x-envoy-external-address"
        )
}

/// What a backend must not say to the client: what software it runs; cookies with
/// this service's names (it could plant or clear a session), matched on the raw bytes;
/// and its own security and CORS headers: those are the service's to set, on every answer.
fn strip_backend_headers(headers: &mut HeaderMap) {
    for h in [
        "x-powered-by",
        "server",
        "via",
        "x-aspnet-version",
        "x-aspnetmvc-version",
        "x-runtime",
        "x-generator",
        "set-cookie2",
    ] {
        headers.remove(h);
    }
    let owned: Vec<HeaderName> = headers
        .keys()
        .filter(|k| {
            k.as_str().starts_with("access-control-")
                || k.as_str() == "strict-transport-security"
                || crate::names::SECURITY_HEADERS.iter().any(|(name, _)| k.as_str() == *name)
        })
        .cloned()
        .collect();
    for k in owned {
        headers.remove(k);
    }
    let kept: Vec<HeaderValue> =
        headers.get_all(header::SET_COOKIE).iter().filter(|v| backend_may_set(v.as_bytes())).cloned().collect();
    headers.remove(header::SET_COOKIE);
    for v in kept {
        headers.append(header::SET_COOKIE, v);
    }
}

/// Whether a backend's `Set-Cookie` may reach the client: not one of this service's
/// cookies, in any spelling a browser would store under that name, and not a nameless
/// cookie (`=refresh_token=x`, `csrf_token;Path=/`): RFC 6265bis stores those and sends
/// them back as `refresh_token=x`, which would plant a session.
fn backend_may_set(set_cookie: &[u8]) -> bool {
    let pair = set_cookie.split(|b| *b == b';').next().unwrap_or_default();
    let Some(eq) = pair.iter().position(|b| *b == b'=') else { return false };
    let name = pair[..eq].trim_ascii();
    let unquoted = name.strip_prefix(b"\"").and_then(|n| n.strip_suffix(b"\"")).unwrap_or(name).trim_ascii();
    let ours = [cookies::ACCESS_TOKEN, cookies::REFRESH_TOKEN, cookies::CSRF_TOKEN];
    !unquoted.is_empty() && !ours.iter().any(|c| c.as_bytes().eq_ignore_ascii_case(unquoted))
}

/// The client's cookies minus this service's own.
fn foreign_cookies(headers: &HeaderMap) -> Option<HeaderValue> {
    let kept: Vec<&str> = headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .map(str::trim)
        .filter(|c| {
            let name = c.split('=').next().unwrap_or("");
            !c.is_empty() && ![cookies::ACCESS_TOKEN, cookies::REFRESH_TOKEN, cookies::CSRF_TOKEN].contains(&name)
        })
        .collect();
    (!kept.is_empty()).then(|| HeaderValue::from_str(&kept.join("; ")).ok()).flatten()
}

pub async fn forward(
    state: &AppState,
    parts: Parts,
    body: Incoming,
    caller: &Caller,
    ctx: &Ctx,
) -> Result<Response<Body>, ApiError> {
    let Some(base) = &state.cfg().upstream else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_not_configured",
            "UPSTREAM_URL is not set; this route has no backend",
        ));
    };
    let path = parts.uri.path_and_query().map_or("/", |p| p.as_str());
    let uri: Uri = format!("{base}{path}")
        .parse()
        .map_err(|_| ApiError::bad_request("bad_path", "the path cannot be forwarded"))?;

    let mut headers = parts.headers.clone();
    strip_hop_by_hop(&mut headers);
    // What a client says about who it is or where it came from is replaced by what this
    // service knows.
    let spoofable: Vec<HeaderName> = headers.keys().filter(|k| is_spoofable(k.as_str())).cloned().collect();
    for k in spoofable {
        headers.remove(k);
    }
    for h in [header::HOST, header::AUTHORIZATION, header::COOKIE, HeaderName::from_static("x-request-id")] {
        headers.remove(h);
    }
    if let Some(c) = foreign_cookies(&parts.headers) {
        headers.insert(header::COOKIE, c);
    }
    let t = &caller.token;
    let claim_value =
        |name: &str| HeaderValue::from_str(super::auth::str_claim(t, name)).unwrap_or(HeaderValue::from_static(""));
    headers.insert("x-auth-user-id", claim_value(claim::SUB));
    headers.insert("x-auth-email", claim_value(claim::EMAIL));
    headers.insert("x-auth-role", claim_value(claim::ROLE));
    headers.insert("x-auth-session-id", claim_value(claim::SID));
    headers.insert("x-request-id", HeaderValue::from_str(&ctx.request_id).expect("base64url"));
    // Only what this service decided: the client, and the trusted proxy it came through.
    // Hops a client wrote itself never reach a backend that might believe the leftmost.
    let via_proxy = state.cfg().trusted_proxies.iter().any(|n| n.contains(ctx.peer));
    let forwarded =
        if via_proxy && ctx.ip != ctx.peer { format!("{}, {}", ctx.ip, ctx.peer) } else { ctx.ip.to_string() };
    headers.insert("x-forwarded-for", HeaderValue::from_str(&forwarded).expect("ip addresses are ascii"));
    // Plain HTTP here; a trusted proxy in front may say it terminated TLS.
    let proto = match parts.headers.get("x-forwarded-proto").and_then(|v| v.to_str().ok()) {
        Some(p @ ("http" | "https")) if state.cfg().trusted_proxies.iter().any(|n| n.contains(ctx.peer)) => p,
        _ => "http",
    };
    headers.insert("x-forwarded-proto", HeaderValue::from_static(if proto == "https" { "https" } else { "http" }));

    let cfg = state.cfg();
    let Some(slot) = state.gateway_slots.acquire(ctx.ip) else {
        return Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "upstream_busy",
            "too many requests to the CRM backend at once; retry shortly",
        ));
    };
    let timed_out = Arc::new(AtomicBool::new(false));
    let answered = Arc::new(std::sync::OnceLock::new());
    let client_fault = Arc::new(std::sync::OnceLock::new());
    let body: Body = IdleBody::new(
        Limited::new(body, MAX_BODY),
        cfg.body_timeout,
        timed_out.clone(),
        answered.clone(),
        client_fault.clone(),
    )
    .boxed();
    let mut req =
        Request::builder().method(parts.method.clone()).uri(uri).body(body).map_err(|_| ApiError::internal())?;
    *req.headers_mut() = headers;

    let resp = match tokio::time::timeout(cfg.upstream_timeout, state.upstream.request(req)).await {
        Err(_) => {
            return Err(ApiError::new(
                StatusCode::GATEWAY_TIMEOUT,
                "upstream_timeout",
                "the CRM backend did not answer in time",
            ));
        }
        Ok(Err(_)) if timed_out.load(Ordering::Relaxed) => return Err(ApiError::request_timeout()),
        Ok(Err(_)) if client_fault.get().is_some() => {
            return Err(match client_fault.get() {
                Some(ClientFault::TooLarge) => ApiError::new(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "payload_too_large",
                    format!("the body is over {MAX_BODY} bytes"),
                ),
                _ => ApiError::bad_request("bad_body", "the request body is malformed (chunked encoding)"),
            });
        }
        Ok(Err(e)) => {
            tracing::warn!(error = %e, request_id = %ctx.request_id, "upstream request failed");
            return Err(ApiError::new(
                StatusCode::BAD_GATEWAY,
                "upstream_unavailable",
                "the CRM backend cannot be reached",
            ));
        }
        Ok(Ok(r)) => r,
    };
    let _ = answered.set(tokio::time::Instant::now() + cfg.body_timeout);
    let (mut parts, body) = resp.into_parts();
    strip_hop_by_hop(&mut parts.headers);
    strip_backend_headers(&mut parts.headers);
    // The slot goes with the answer's body: held until it is sent or dropped.
    let body = Holding { inner: body.map_err(|e| Box::new(e) as super::http::BoxError), _slot: slot };
    Ok(Response::from_parts(parts, body.boxed()))
}
