//! The auth endpoints: login, refresh (rotation with reuse detection), logout and
//! token-info, and `authenticate` for every protected route. Handlers stay thin:
//! check limits, parse, call the store off the runtime, sign, answer; every
//! decision worth auditing is audited.

use std::sync::Arc;
use std::time::Duration;

use http_body_util::{BodyExt, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap};
use hyper::http::request::Parts;
use hyper::{Response, StatusCode};
use serde_json::{Value, json};

use super::csrf;
use super::http::{ApiError, Body, cookie, empty, json as json_response, set_cookie};
use super::live::{Claimed, Verdict};
use super::{AppState, Ctx, now};
use crate::audit::{Event, Record};
use crate::names::{claim, cookie as cookies};
use crate::store::{Issued, NewSession, Rotation, Session, normalize_email};
use crate::token::{self, Check, Claims, Inspected, Kind};

/// Login bodies larger than this are refused with 413.
pub const MAX_LOGIN_BODY: usize = 16 * 1024;
/// Clock skew allowed when checking tokens (exp, nbf, iat).
pub const LEEWAY_SECS: i64 = 60;
/// The skew allowed on a refresh token's expiry when it is used: only this service (or
/// another instance of it, whose clock is hours-synchronised) ever reads one, and the
/// browser drops the cookie at that moment anyway; a minute more was a minute in which
/// an expired refresh token still renewed a session (review of issue 19).
pub const REFRESH_LEEWAY_SECS: i64 = 5;
/// The longest `sid`, `jti` or `sub` a token may carry (ours are 22 characters).
const MAX_ID_LEN: usize = 128;

fn rfc3339(epoch: i64) -> String {
    token::rfc3339(epoch).unwrap_or_default()
}

/// The pair of tokens a session's current row describes, signed. Signing the same
/// row twice gives the same two strings, which is what the grace answer relies on.
fn sign_pair(state: &AppState, s: &Session) -> (String, String) {
    let cfg = &state.cfg().tokens;
    let claims = |kind: Kind, jti: &str, iat: i64, exp: i64| Claims {
        sub: s.user_id.clone(),
        email: s.email.clone(),
        role: s.role.clone(),
        typ: kind,
        sid: s.id.clone(),
        jti: jti.to_string(),
        iat,
        exp,
        iss: cfg.issuer.clone(),
        aud: cfg.audience.clone(),
        extra: Default::default(),
    };
    let c = &s.current;
    (
        token::sign(&claims(Kind::Access, &c.access_jti, c.access_iat, c.access_exp), &cfg.access_secret),
        token::sign(&claims(Kind::Refresh, &c.refresh_jti, c.refresh_iat, c.refresh_exp), &cfg.refresh_secret),
    )
}

/// Fresh token ids and times; the store caps them at the session's absolute end.
fn next_pair(state: &AppState, now: i64) -> Issued {
    let cfg = &state.cfg().tokens;
    let secs = |d: Duration| d.as_secs() as i64;
    Issued {
        access_jti: token::random_id(),
        access_iat: now,
        access_exp: now.saturating_add(secs(cfg.access_ttl)),
        refresh_jti: token::random_id(),
        refresh_iat: now,
        refresh_exp: now.saturating_add(secs(cfg.refresh_ttl)),
    }
}

/// A 200 with the token cookies and a fresh CSRF cookie, from the session's current pair.
fn session_response(state: &AppState, s: &Session, user: Value) -> Response<Body> {
    let (access, refresh) = sign_pair(state, s);
    let now = now();
    let secure = state.cfg().secure_transport();
    let c = &s.current;
    let mut resp = json_response(
        StatusCode::OK,
        &json!({
            "user": user,
            "accessTokenExpiresAt": rfc3339(c.access_exp),
            "refreshTokenExpiresAt": rfc3339(c.refresh_exp),
        }),
    );
    let csrf = csrf::issue(&state.cfg().session_secret, &s.id);
    let h = resp.headers_mut();
    h.append(header::SET_COOKIE, set_cookie(cookies::ACCESS_TOKEN, &access, "/", c.access_exp - now, true, secure));
    h.append(
        header::SET_COOKIE,
        set_cookie(cookies::REFRESH_TOKEN, &refresh, "/api/auth", c.refresh_exp - now, true, secure),
    );
    h.append(header::SET_COOKIE, set_cookie(cookies::CSRF_TOKEN, &csrf, "/", c.refresh_exp - now, false, secure));
    resp
}

fn clear_cookies(resp: &mut Response<Body>, secure: bool) {
    let h = resp.headers_mut();
    h.append(header::SET_COOKIE, set_cookie(cookies::ACCESS_TOKEN, "", "/", 0, true, secure));
    h.append(header::SET_COOKIE, set_cookie(cookies::REFRESH_TOKEN, "", "/api/auth", 0, true, secure));
    h.append(header::SET_COOKIE, set_cookie(cookies::CSRF_TOKEN, "", "/", 0, false, secure));
}

pub fn record(event: Event, ok: bool, ctx: &Ctx) -> Record {
    let mut r = Record::new(event, ok, super::now_ms());
    r.ip = Some(ctx.ip.to_string());
    r.user_agent = ctx.user_agent.clone();
    r.request_id = Some(ctx.request_id.clone());
    r
}

/// Checks a token against this service's rules for `kind`: HS256 only, exp/nbf/iat
/// with leeway, iss, aud, typ, and non-empty sid, jti and sub.
/// An access token verified before with the current key (`verified`) skips the
/// signature and is checked against the claim rules again.
fn check_token(state: &AppState, raw: &str, kind: Kind, leeway: i64) -> Result<Arc<Inspected>, String> {
    let cfg = state.cfg();
    let check = Check {
        algorithms: vec![jsonwebtoken::Algorithm::HS256],
        leeway,
        issuer: Some(cfg.tokens.issuer.clone()),
        audience: Some(cfg.tokens.audience.clone()),
        typ: Some(kind),
    };
    let now = now();
    let current_kid = cfg.tokens.access_secret.kid();
    if kind == Kind::Access
        && let Some(t) = state.verified.get(raw, current_kid)
    {
        return match t.claim_failures(&check, now).first() {
            Some(f) => Err(f.code().to_string()),
            None => Ok(t),
        };
    }
    let t = token::inspect(raw).map_err(|e| e.to_string())?;
    let (failures, by_previous) = t.verify_ring_by(&cfg.tokens.ring(kind), &check, now);
    if let Some(f) = failures.first() {
        return Err(f.code().to_string());
    }
    if by_previous {
        let until = match kind {
            Kind::Access => cfg.tokens.access_previous.as_ref(),
            Kind::Refresh => cfg.tokens.refresh_previous.as_ref(),
        }
        .map_or(i64::MAX, |p| p.until);
        let exp = t.claims.get(claim::EXP).and_then(Value::as_i64).unwrap_or(0);
        state.metrics.previous_key_used(kind.secret_var(), exp > until);
    }
    for c in [claim::SID, claim::JTI, claim::SUB] {
        match t.claims.get(c).and_then(Value::as_str) {
            None | Some("") => return Err(format!("missing_{c}")),
            // Ids this service issues are short and printable; anything else is not ours.
            Some(v) if v.len() > MAX_ID_LEN || v.chars().any(char::is_control) => return Err(format!("bad_{c}")),
            Some(_) => {}
        }
    }
    // No token of ours outlives its kind's lifetime: one forged with an old `iat` and a
    // far `exp` is not accepted.
    let lifetime = match kind {
        Kind::Access => cfg.tokens.access_ttl,
        Kind::Refresh => cfg.tokens.refresh_ttl,
    };
    let num = |name: &str| t.claims.get(name).and_then(Value::as_i64).unwrap_or(0);
    if num(claim::EXP).saturating_sub(num(claim::IAT)) > lifetime.as_secs() as i64 + LEEWAY_SECS {
        return Err("lifetime_too_long".into());
    }
    let t = Arc::new(t);
    if kind == Kind::Access {
        state.verified.insert(raw, t.clone(), current_kid);
    }
    Ok(t)
}

pub fn str_claim<'a>(t: &'a Inspected, name: &str) -> &'a str {
    t.claims.get(name).and_then(Value::as_str).unwrap_or("")
}

fn bearer(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.get(..7).filter(|p| p.eq_ignore_ascii_case("bearer ")).map(|_| v[7..].trim()))
}

/// A caller authenticated by an access token of a live session.
pub struct Caller {
    pub token: Arc<Inspected>,
    /// True when the token came from the cookie (so CSRF rules apply), false for Bearer.
    pub by_cookie: bool,
    /// The session's current refresh-token expiry.
    pub refresh_exp: i64,
}

impl Caller {
    pub fn sid(&self) -> &str {
        str_claim(&self.token, claim::SID)
    }

    pub fn role(&self) -> &str {
        str_claim(&self.token, claim::ROLE)
    }
}

/// Authenticates a request by its access token (Bearer, else cookie; never the query
/// string), which counts only while its (`sid`, `sub`) is a live session of that user.
/// In the steady state no database query: revocations come from the in-memory set, live
/// sessions from `live`; a session not known yet is looked up once.
pub async fn authenticate(state: &AppState, headers: &HeaderMap) -> Result<Caller, ApiError> {
    let (raw, by_cookie) = match bearer(headers) {
        Some(t) => (t, false),
        None => match cookie(headers, cookies::ACCESS_TOKEN) {
            Some(t) => (t, true),
            None => {
                state.metrics.access_rejected("missing");
                return Err(ApiError::unauthorized("missing_token", "an access token is required"));
            }
        },
    };
    let token = check_token(state, raw, Kind::Access, LEEWAY_SECS).map_err(|_| {
        state.metrics.access_rejected("invalid");
        ApiError::invalid_token("the access token is invalid or expired")
    })?;
    let sid = str_claim(&token, claim::SID);
    if state.revoked.is_revoked(sid) {
        state.metrics.access_rejected("revoked");
        return Err(ApiError::invalid_token("the session has ended"));
    }
    let claimed = Claimed {
        sub: str_claim(&token, claim::SUB),
        role: str_claim(&token, claim::ROLE),
        email: str_claim(&token, claim::EMAIL),
        iat: token.claims.get(claim::IAT).and_then(Value::as_i64).unwrap_or(0),
    };
    let now = now();
    let mut verdict = state.live.check(sid, &claimed, now);
    if verdict == Verdict::Unknown {
        state.metrics.session_lookup();
        let id = sid.to_string();
        let session = state.blocking(move |s| s.session(&id)).await?;
        state.live.learn(sid, session.as_ref(), now);
        verdict = state.live.check(sid, &claimed, now);
    }
    match verdict {
        Verdict::Live { refresh_exp } => Ok(Caller { token, by_cookie, refresh_exp }),
        // Unknown after a lookup: the token claims a newer pair than the session holds.
        Verdict::Dead | Verdict::Unknown => {
            state.metrics.access_rejected("no_session");
            Err(ApiError::invalid_token("the session has ended"))
        }
    }
}

/// The CSRF rules for a cookie-authenticated change to session `sid`.
pub async fn require_csrf(state: &AppState, headers: &HeaderMap, sid: &str, ctx: &Ctx) -> Result<(), ApiError> {
    let cfg = state.cfg();
    let now = now();
    // During a SESSION_SECRET rollover, tokens signed with the previous secret stay valid.
    let keys: Vec<&crate::token::Secret> = std::iter::once(&cfg.session_secret)
        .chain(cfg.session_previous.as_ref().filter(|p| now < p.until).map(|p| &p.secret))
        .collect();
    let verdict =
        csrf::check_origin(headers, &cfg.allowed_origins).and_then(|()| csrf::check_token(headers, &keys, sid));
    if let Err(refusal) = verdict {
        state.metrics.csrf_rejected();
        let mut r = record(Event::CsrfRejected, false, ctx);
        r.reason = Some(refusal.message().into());
        state.audit_noisy(r).await;
        return Err(ApiError::forbidden("csrf_rejected", refusal.message()));
    }
    Ok(())
}

/// The per-IP bucket for `which` ("login" or "refresh").
async fn rate_limit(state: &AppState, which: &str, ctx: &Ctx) -> Result<(), ApiError> {
    let limiter = if which == "login" { &state.login_limiter } else { &state.refresh_limiter };
    if let Err(wait) = limiter.check(ctx.ip) {
        state.metrics.rate_limited();
        if which == "login" {
            state.metrics.login("rate_limited");
        } else {
            state.metrics.refresh("rate_limited");
        }
        let mut r = record(Event::RateLimited, false, ctx);
        r.reason = Some(format!("{which} limit; retry in {}s", wait.as_secs_f64().ceil()));
        state.audit_noisy(r).await;
        return Err(ApiError::too_many(wait));
    }
    Ok(())
}

/// Reads a JSON body of at most `limit` bytes, whole within `deadline`
/// (`ASPJWT_BODY_TIMEOUT`): a body that stalls gets 408 and the connection ends.
async fn read_json(parts: &Parts, body: Incoming, limit: usize, deadline: Duration) -> Result<Value, ApiError> {
    let ctype = parts.headers.get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("");
    let mime = ctype.split(';').next().unwrap_or("").trim();
    if !mime.eq_ignore_ascii_case("application/json") {
        return Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            "send JSON (Content-Type: application/json)",
        ));
    }
    let too_large =
        || ApiError::new(StatusCode::PAYLOAD_TOO_LARGE, "payload_too_large", format!("the body is over {limit} bytes"));
    if parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<usize>().ok())
        .is_some_and(|n| n > limit)
    {
        return Err(too_large());
    }
    let bytes = tokio::time::timeout(deadline, Limited::new(body, limit).collect())
        .await
        .map_err(|_| ApiError::request_timeout())?
        .map_err(|e| {
            // Over the limit is 413; anything else (bad chunked encoding) is the client's 400.
            if e.is::<http_body_util::LengthLimitError>() {
                too_large()
            } else {
                ApiError::bad_request("bad_body", "the request body is malformed (chunked encoding)")
            }
        })?
        .to_bytes();
    serde_json::from_slice(&bytes).map_err(|_| ApiError::bad_request("invalid_json", "the body is not valid JSON"))
}

/// Parses a JSON body for the users API (same rules as login).
pub async fn json_body(state: &AppState, parts: &Parts, body: Incoming) -> Result<Value, ApiError> {
    read_json(parts, body, MAX_LOGIN_BODY, state.cfg().body_timeout).await
}

pub async fn login(state: &AppState, parts: &Parts, body: Incoming, ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    rate_limit(state, "login", ctx).await?;
    let body = json_body(state, parts, body).await?;
    let field = |name: &str| body.get(name).and_then(Value::as_str).map(str::to_string);
    let (Some(email), Some(password)) = (field("email"), field("password")) else {
        return Err(ApiError::bad_request("missing_fields", "email and password are required"));
    };
    let generic = || ApiError::unauthorized("invalid_credentials", "invalid email or password");
    let mut rec = record(Event::LoginFailure, false, ctx);
    // Audited escaped: whatever was sent, the audit row can be stored and read.
    rec.email = Some(crate::audit::escape(&email));

    if password.len() > crate::password::MAX_BYTES || email.len() > 320 {
        rec.reason = Some("too_long".into());
        state.metrics.login("invalid_credentials");
        state.audit(rec).await;
        return Err(generic());
    }
    // Checked before any store sees them: the same answer on every backend, audited.
    if crate::users::has_control(&email) || crate::users::has_control(&password) {
        rec.reason = Some("invalid_input".into());
        state.metrics.login("invalid_credentials");
        state.audit(rec).await;
        return Err(generic());
    }
    // Per account, existing or not: a lock answers like a wrong password.
    let key = normalize_email(&email);
    let now = now();
    let throttle = state
        .blocking({
            let key = key.clone();
            move |s| s.throttle(&key)
        })
        .await?;
    if throttle.locked(now) {
        rec.reason = Some(format!("account_locked until {}", rfc3339(throttle.locked_until)));
        state.metrics.login("locked");
        state.audit(rec).await;
        return Err(generic());
    }

    let user = state.blocking(move |s| s.user_by_email(&normalize_email(&email))).await?;
    // Unknown emails verify against dummies: same work, same time, same answer.
    let hash = user.as_ref().map(|u| u.password_hash.clone());
    let ok = state.verify_password(password.clone(), hash).await?;
    let user = match user {
        Some(u) if ok && !u.disabled => u,
        other => {
            rec.user_id = other.as_ref().map(|u| u.id.clone());
            rec.reason = Some(
                match other {
                    None => "unknown_email",
                    Some(u) if u.disabled => "disabled",
                    Some(_) => "bad_password",
                }
                .into(),
            );
            state.metrics.login("invalid_credentials");
            let after = state
                .blocking({
                    let key = key.clone();
                    move |s| s.record_login_failure(&key, now)
                })
                .await?;
            let email = rec.email.clone();
            state.audit(rec).await;
            if after.locked_until > throttle.locked_until.max(now) {
                state.metrics.account_locked();
                let mut lock = record(Event::AccountLocked, false, ctx);
                lock.email = email;
                lock.reason = Some(format!(
                    "{} consecutive failures; locked until {}",
                    after.consecutive,
                    rfc3339(after.locked_until)
                ));
                state.audit(lock).await;
            }
            return Err(generic());
        }
    };
    if throttle.consecutive > 0 {
        state.blocking(move |s| s.clear_throttle(&key)).await?;
    }
    // A successful login while presenting a session, by any of its tokens, ends that
    // session (whoever it belonged to); a failed one changed nothing above.
    let presented = cookie(&parts.headers, cookies::REFRESH_TOKEN)
        .and_then(|raw| check_token(state, raw, Kind::Refresh, LEEWAY_SECS).ok())
        .or_else(|| {
            cookie(&parts.headers, cookies::ACCESS_TOKEN)
                .or_else(|| bearer(&parts.headers))
                .and_then(|raw| check_token(state, raw, Kind::Access, LEEWAY_SECS).ok())
        });
    if let Some(t) = presented {
        end_session(state, str_claim(&t, claim::SID), "new_login", ctx).await?;
    }

    // A bcrypt hash imported from the Node backend is replaced by argon2id in the
    // session's own transaction (so a failed login never upgrades anything).
    let rehash = match crate::password::Scheme::of(&user.password_hash) {
        Some(scheme @ crate::password::Scheme::Bcrypt { cost }) if scheme.is_legacy() => {
            let mut audit = record(Event::PasswordRehashed, true, ctx);
            (audit.user_id, audit.email) = (Some(user.id.clone()), Some(user.email.clone()));
            audit.reason = Some(format!("bcrypt cost {cost} upgraded to argon2id at login"));
            Some(crate::store::Rehash { password_hash: state.hash_password(password.clone()).await?, audit })
        }
        _ => None,
    };
    let mut rehashed = rehash.as_ref().map(|r| r.audit.clone());
    let end = now + state.cfg().session_max.as_secs() as i64;
    let new = NewSession {
        id: token::random_id(),
        user_id: user.id.clone(),
        email: user.email.clone(),
        role: user.role.clone(),
        created_at: now,
        expires_at: end,
        // Capped from the first pair on: login reports (and the cookie lives for) the
        // session's real end, not one the store would only enforce at the first refresh.
        issued: next_pair(state, now).capped_at(end),
        ip: Some(ctx.ip.to_string()),
        user_agent: ctx.user_agent.clone(),
        password_hash: user.password_hash.clone(),
        rehash,
    };
    let sid = new.id.clone();
    let store = state.store.clone();
    let retry = new.clone();
    let mut created = tokio::task::spawn_blocking(move || store.create_session(new)).await;
    // Two logins of one bcrypt user at once: the first upgrades the hash, and the
    // second, which checked the bcrypt one, finds it changed. If only the hash changed,
    // to an argon2id one this password also opens, the second goes on with that one.
    if rehashed.is_some() && matches!(created, Ok(Err(crate::store::StoreError::UserChanged))) {
        let id = user.id.clone();
        let now_user = state.blocking(move |s| s.user_by_id(&id)).await?;
        if let Some(u) = now_user.filter(|u| {
            u.role == user.role
                && !u.disabled
                && crate::password::Scheme::of(&u.password_hash) == Some(crate::password::Scheme::Argon2id)
        }) && state.verify_password(password, Some(u.password_hash.clone())).await?
        {
            let again = NewSession { password_hash: u.password_hash, rehash: None, ..retry };
            let store = state.store.clone();
            created = tokio::task::spawn_blocking(move || store.create_session(again)).await;
            rehashed = None; // the other login upgraded it
        }
    }
    match created.map_err(|_| ApiError::internal())? {
        Ok(()) => {
            // Written by the store with the session; logged here.
            if let Some(r) = &rehashed {
                state.log(r);
            }
        }
        // Disabled, or given another role or password, while the password was checked.
        Err(crate::store::StoreError::UserChanged) => {
            let mut rec = record(Event::LoginFailure, false, ctx);
            (rec.user_id, rec.email) = (Some(user.id.clone()), Some(user.email.clone()));
            rec.reason = Some("user_changed".into());
            state.metrics.login("invalid_credentials");
            state.audit(rec).await;
            return Err(generic());
        }
        Err(e) => return Err(e.into()),
    }
    let session = state.blocking(move |s| s.session(&sid)).await?.ok_or_else(ApiError::internal)?;
    state.live.remember(&session, now);
    let mut rec = record(Event::LoginSuccess, true, ctx);
    rec.user_id = Some(user.id.clone());
    rec.email = Some(user.email.clone());
    state.audit(rec).await;
    state.metrics.login("success");
    Ok(session_response(
        state,
        &session,
        json!({"id": user.id, "email": user.email, "name": user.name, "role": user.role}),
    ))
}

pub async fn refresh(state: &AppState, parts: &Parts, ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    rate_limit(state, "refresh", ctx).await?;
    let mut rec = record(Event::RefreshFailure, false, ctx);
    let Some(raw) = cookie(&parts.headers, cookies::REFRESH_TOKEN) else {
        state.metrics.refresh("missing");
        return Err(ApiError::unauthorized("missing_token", "no refresh token"));
    };
    let t = match check_token(state, raw, Kind::Refresh, REFRESH_LEEWAY_SECS) {
        Ok(t) => t,
        Err(reason) => {
            if reason == "expired" {
                end_if_expired(state, raw).await;
            }
            rec.reason = Some(reason);
            state.metrics.refresh("invalid");
            state.audit(rec).await;
            return Err(ApiError::invalid_token("the refresh token is invalid or expired"));
        }
    };
    let sid = str_claim(&t, claim::SID).to_string();
    require_csrf(state, &parts.headers, &sid, ctx).await?;
    let jti = str_claim(&t, claim::JTI).to_string();
    rec.user_id = Some(str_claim(&t, claim::SUB).to_string());
    rec.email = t.claims.get(claim::EMAIL).and_then(Value::as_str).map(str::to_string);
    let now_ms = super::now_ms();
    let now = now_ms.div_euclid(1000);
    let grace_ms = state.cfg().reuse_grace.as_millis() as i64;
    let next = next_pair(state, now);
    // The outcome's audit record is written in the rotation's own transaction.
    let template = rec.clone();
    let outcome = state.blocking(move |s| s.rotate(&sid, &jti, next, now_ms, grace_ms, &template)).await?;
    state.log(&outcome.audit_record(&rec));
    let user = |s: &Session| json!({"id": s.user_id, "email": s.email, "role": s.role});
    match outcome {
        Rotation::Rotated(s) => {
            state.live.remember(&s, now);
            state.metrics.refresh("rotated");
            Ok(session_response(state, &s, user(&s)))
        }
        Rotation::Grace(s) => {
            state.live.remember(&s, now);
            state.metrics.refresh("grace");
            Ok(session_response(state, &s, user(&s)))
        }
        Rotation::Reused(s) => {
            state.revoked.insert(&s.id, now);
            state.live.end(&s.id);
            state.metrics.session_ended("reuse", now - s.created_at, s.rotations);
            state.metrics.refresh("reuse_revoked");
            let mut resp = ApiError::invalid_token("this refresh token was already used; the session has been ended")
                .into_response();
            clear_cookies(&mut resp, state.cfg().secure_transport());
            Ok(resp)
        }
        other => {
            if let Rotation::Expired(s) = &other {
                state.revoked.insert(&s.id, now);
                state.live.end(&s.id);
                state.metrics.session_ended("expired", now - s.created_at, s.rotations);
            }
            state.metrics.refresh("invalid");
            Err(ApiError::invalid_token("the session has ended; log in again"))
        }
    }
}

/// A refresh token presented after its expiry that is still its session's current one
/// (signature checked: "expired" is only reported for a token this service signed): the
/// session is over, since nothing can refresh it any more. It is ended in the store with
/// reason `expired` and observed in the session-age histogram, which otherwise never
/// hears of sessions that lapse. An old token of a session that went on is left alone.
async fn end_if_expired(state: &AppState, raw: &str) {
    let Ok(t) = token::inspect(raw) else { return };
    let (sid, jti) = (str_claim(&t, claim::SID).to_string(), str_claim(&t, claim::JTI).to_string());
    let now = now();
    let ended = state
        .blocking(move |s| match s.session(&sid)? {
            Some(session)
                if session.revoked_at.is_none()
                    && session.current.refresh_jti == jti
                    && session.current.refresh_exp <= now =>
            {
                Ok(s.revoke_session(&sid, "expired", now)?.then_some(session))
            }
            _ => Ok(None),
        })
        .await;
    if let Ok(Some(s)) = ended {
        state.revoked.insert(&s.id, now);
        state.live.end(&s.id);
        state.metrics.session_ended("expired", now - s.created_at, s.rotations);
    }
}

/// Revokes a session here and in the store, and audits it. `reason` is `logout` or
/// `new_login` (also its label in `aspjwt_session_age_seconds`).
async fn end_session(state: &AppState, sid: &str, reason: &'static str, ctx: &Ctx) -> Result<bool, ApiError> {
    let now = now();
    let id = sid.to_string();
    let (revoked, session) = state
        .blocking(move |s| {
            let session = s.session(&id)?;
            Ok((s.revoke_session(&id, reason, now)?, session))
        })
        .await?;
    state.revoked.insert(sid, now);
    state.live.end(sid);
    if let (true, Some(s)) = (revoked, &session) {
        state.metrics.session_ended(reason, now - s.created_at, s.rotations);
    }
    if revoked {
        let mut r = record(if reason == "logout" { Event::Logout } else { Event::SessionRevoked }, true, ctx);
        r.reason = Some(format!("{reason} (session {sid})"));
        // Whose session it was: `aspjwt audit --user` must find logouts too.
        if let Some(s) = &session {
            (r.user_id, r.email) = (Some(s.user_id.clone()), Some(s.email.clone()));
        }
        state.audit(r).await;
    }
    Ok(revoked)
}

pub async fn logout(state: &AppState, parts: &Parts, ctx: &Ctx) -> Result<Response<Body>, ApiError> {
    // The session is named by a token this service signed; expiry does not matter here.
    let forever = i64::MAX / 4;
    let by_cookie = cookie(&parts.headers, cookies::REFRESH_TOKEN)
        .and_then(|raw| check_token(state, raw, Kind::Refresh, forever).ok())
        .or_else(|| {
            cookie(&parts.headers, cookies::ACCESS_TOKEN)
                .and_then(|raw| check_token(state, raw, Kind::Access, forever).ok())
        });
    let by_bearer = || bearer(&parts.headers).and_then(|raw| check_token(state, raw, Kind::Access, forever).ok());
    if let Some(t) = &by_cookie {
        require_csrf(state, &parts.headers, str_claim(t, claim::SID), ctx).await?;
    }
    if let Some(t) = by_cookie.or_else(by_bearer) {
        end_session(state, str_claim(&t, claim::SID), "logout", ctx).await?;
    }
    let mut resp = empty(StatusCode::NO_CONTENT);
    clear_cookies(&mut resp, state.cfg().secure_transport());
    Ok(resp)
}

pub async fn token_info(state: &AppState, parts: &Parts) -> Result<Response<Body>, ApiError> {
    let caller = authenticate(state, &parts.headers).await?;
    let t = &caller.token;
    let now = now();
    let num = |name: &str| t.claims.get(name).and_then(Value::as_i64).unwrap_or(0);
    let (iat, exp) = (num(claim::IAT), num(claim::EXP));
    let threshold = state.cfg().refresh_threshold.as_secs() as i64;
    let expires_in = (exp - now).max(0);
    // The refresh token's expiry: the cookie's when it came along (it is scoped to
    // /api/auth), else the session's current one (a Bearer caller).
    let refresh_exp = cookie(&parts.headers, cookies::REFRESH_TOKEN)
        .and_then(|raw| check_token(state, raw, Kind::Refresh, 0).ok())
        .filter(|r| str_claim(r, claim::SID) == caller.sid())
        .and_then(|r| r.claims.get(claim::EXP).and_then(Value::as_i64))
        .unwrap_or(caller.refresh_exp);
    Ok(json_response(
        StatusCode::OK,
        &TokenInfo {
            user_id: str_claim(t, claim::SUB),
            email: str_claim(t, claim::EMAIL),
            role: caller.role(),
            session_id: caller.sid(),
            issued_at: rfc3339(iat),
            expires_at: rfc3339(exp),
            expires_in_seconds: expires_in,
            refresh_threshold_seconds: threshold,
            should_refresh: expires_in <= threshold,
            refresh_token_expires_at: Some(rfc3339(refresh_exp)),
        },
    ))
}

/// The body of `GET /api/auth/token-info` (a struct, not a JSON map built per request:
/// this is the hottest route).
#[derive(serde::Serialize)]
#[serde(rename_all = "camelCase")]
struct TokenInfo<'a> {
    user_id: &'a str,
    email: &'a str,
    role: &'a str,
    session_id: &'a str,
    issued_at: String,
    expires_at: String,
    expires_in_seconds: i64,
    refresh_threshold_seconds: i64,
    should_refresh: bool,
    refresh_token_expires_at: Option<String>,
}
