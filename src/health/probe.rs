//! The deep check with the probe account: login, the tokens against the configuration,
//! token-info, refresh and its rotation, a replay of the spent refresh token, logout.
//! It adapts to the backend: the CSRF header goes only with a `csrf_token` cookie,
//! claims are read by either dialect's names, logout may answer 200 or 204.
//!
//! The probe's sessions are always ended before it returns, whatever failed, so a run
//! that stops early (or runs every minute under --watch) leaves none behind.

use std::time::{Duration, Instant};

use reqwest::blocking::{RequestBuilder, Response};

use super::{Backend, Outcome, Probe, Runner, cookie_problems, cookie_value, json_body, refused, set_cookie};
use crate::check::Status;
use crate::config::Settings;
use crate::names::{self, cookie};
use crate::token::{self, Check, Kind};

/// How far token-info's `expiresInSeconds` may be from the token's own expiry.
const EXPIRY_SLACK_SECS: i64 = 10;

/// The probe account's session while the deep check holds it.
#[derive(Default, Clone)]
struct Session {
    access: String,
    refresh: String,
    /// Empty when the backend sets no CSRF cookie: then no CSRF header is sent either.
    csrf: String,
    /// Ended by the server (logout, reuse detection): nothing to clean up.
    ended: bool,
    /// Sessions a broken backend handed out besides this one (a replay that forked the
    /// session): each is ended before the check returns.
    forks: Vec<Session>,
}

impl Session {
    /// The cookies a refresh or logout sends: the refresh token, and the CSRF cookie if any.
    fn cookies(&self, refresh: &str) -> String {
        let mut c = format!("{}={refresh}", cookie::REFRESH_TOKEN);
        if !self.csrf.is_empty() {
            c.push_str(&format!("; {}={}", cookie::CSRF_TOKEN, self.csrf));
        }
        c
    }

    /// The CSRF header, when the backend set the cookie it echoes.
    fn with_csrf(&self, req: RequestBuilder) -> RequestBuilder {
        if self.csrf.is_empty() { req } else { req.header(names::CSRF_HEADER, &self.csrf) }
    }

    /// Takes the tokens a response set (a rotation); true when it set a new refresh token.
    fn follow(&mut self, resp: &Response) -> bool {
        let h = resp.headers();
        let value = |name| set_cookie(h, name).map(|c| cookie_value(c).to_string()).filter(|v| !v.is_empty());
        if let Some(a) = value(cookie::ACCESS_TOKEN) {
            self.access = a;
        }
        if let Some(c) = value(cookie::CSRF_TOKEN) {
            self.csrf = c;
        }
        match value(cookie::REFRESH_TOKEN) {
            Some(r) if r != self.refresh => {
                self.refresh = r;
                true
            }
            _ => false,
        }
    }
}

/// The reuse grace the backend documents: aspjwt's `REFRESH_REUSE_GRACE` (from the
/// configuration given, else its default); none for another backend.
fn documented_grace(backend: &Backend, settings: Option<&Settings>) -> Duration {
    match backend {
        Backend::Unknown => Duration::ZERO,
        Backend::Aspjwt(_) => settings
            .and_then(|s| s.get(names::REFRESH_REUSE_GRACE))
            .map(|s| s.value.clone())
            .and_then(|v| crate::duration::parse(&v).ok())
            .unwrap_or_else(|| crate::duration::parse(names::DEFAULT_REFRESH_REUSE_GRACE).unwrap_or_default()),
    }
}

/// login → tokens → token-info → refresh → token-info → replay → logout → refresh.
pub(super) fn deep(r: &mut Runner, probe: &Probe, settings: Option<&Settings>, backend: &Backend) {
    // Ctrl-C or a TERM from the login on waits for the logout: the checks stop at the
    // next step, the session is ended, then the process ends as it was asked to.
    let held = crate::fsx::Held::new();
    let interrupted = || held.pending().is_some();
    r.deep = true;
    let Some(mut s) = login(r, probe, true) else { return };
    if !interrupted() {
        exercise(r, &mut s, probe, settings, backend, &interrupted);
    }
    for fork in std::mem::take(&mut s.forks).iter().chain([&s]).filter(|s| !s.ended) {
        end_probe_session(r, fork);
    }
}

/// Logs the probe in; the first login also judges the cookies (attributes, CSRF), a second
/// one (for the logout check, after reuse detection ended the first) only that it worked.
/// None when there is no session to go on with.
fn login(r: &mut Runner, probe: &Probe, first: bool) -> Option<Session> {
    let name = if first { "login" } else { "login for the logout check" };
    let body = serde_json::json!({"email": probe.email, "password": probe.password});
    let (took, resp) = r.request(name, r.client.post(r.url("/api/auth/login")).json(&body))?;
    let headers = resp.headers().clone();
    let mut s = Session::default();
    s.follow(&resp);
    let both =
        set_cookie(&headers, cookie::ACCESS_TOKEN).is_some() && set_cookie(&headers, cookie::REFRESH_TOKEN).is_some();
    let status = resp.status().as_u16();
    if status != 200 || !both {
        r.push(if status != 200 {
            Outcome::fail(name, took, "200 for the probe account", status.to_string())
        } else {
            Outcome::fail(name, took, "access_token and refresh_token cookies", "not both of them")
        });
        // Whatever session it opened is ended all the same, or said to be left open.
        if !s.access.is_empty() || !s.refresh.is_empty() {
            end_probe_session(r, &s);
        } else if resp.status().is_success() {
            r.push(Outcome::new(
                "cleanup logout",
                Status::Warn,
                Duration::ZERO,
                "no token to log out with (the cookies were cleared): a session the backend opened may stay open until it expires",
            ));
        }
        return None;
    }
    if !first {
        r.push(Outcome::new(name, Status::Pass, took, "200"));
        return Some(s);
    }
    let problems = cookie_attributes(&headers, r.https);
    let https = r.https;
    r.push(if problems.is_empty() {
        Outcome::new(
            name,
            Status::Pass,
            took,
            format!("200, cookies HttpOnly and SameSite{}", if https { " and Secure" } else { "" }),
        )
    } else {
        Outcome::fail(name, took, COOKIE_RULE, problems.join("; "))
    });
    r.push(if s.csrf.is_empty() {
        Outcome::warn(
            "CSRF cookie",
            Duration::ZERO,
            "a csrf_token cookie (double submit)",
            "none: the backend relies on SameSite alone",
        )
    } else {
        Outcome::new("CSRF cookie", Status::Pass, Duration::ZERO, "csrf_token set; sent back as X-CSRF-Token")
    });
    Some(s)
}

/// Everything after login. Each step runs when the ones before left something to run it
/// with; a failure is recorded and the rest go on.
fn exercise(
    r: &mut Runner,
    s: &mut Session,
    probe: &Probe,
    settings: Option<&Settings>,
    backend: &Backend,
    interrupted: &dyn Fn() -> bool,
) {
    if let Some(settings) = settings {
        tokens_match(r, s, settings, "tokens match the configuration");
    }
    let ttl = settings.and_then(|s| s.ttl(Kind::Access).ok()).map(|d| d.as_secs() as i64);
    token_info(r, &s.access, "token-info", ttl);
    if interrupted() {
        return;
    }

    let previous = s.refresh.clone();
    let rotated = refresh(r, s);
    if rotated {
        if let Some(settings) = settings {
            tokens_match(r, s, settings, "rotated tokens match the configuration");
        }
        token_info(r, &s.access, "token-info after refresh", ttl);
    }
    if interrupted() {
        return;
    }
    if rotated {
        replay(r, s, &previous, documented_grace(backend, settings));
        if interrupted() {
            return;
        }
    }
    if s.ended {
        // Reuse detection ended the session: the logout check needs a live one.
        match login(r, probe, false) {
            Some(fresh) => {
                let forks = std::mem::take(&mut s.forks);
                *s = Session { forks, ..fresh };
            }
            None => return,
        }
    }
    logout(r, s);
}

/// Both tokens verify with the configured secrets, each only with its own.
fn tokens_match(r: &mut Runner, s: &Session, settings: &Settings, name: &str) {
    let t = Instant::now();
    let problems: Vec<String> = [(&s.access, Kind::Access), (&s.refresh, Kind::Refresh)]
        .into_iter()
        .filter_map(|(raw, kind)| signed_locally(settings, raw, kind).err())
        .collect();
    r.push(if problems.is_empty() {
        Outcome::new(
            name,
            Status::Pass,
            t.elapsed(),
            format!("both verify with the secrets in {}, each only with its own", settings.source),
        )
    } else {
        Outcome::new(name, Status::Fail, t.elapsed(), problems.join("; "))
    });
}

/// Verifies a token the service issued with the configured secret of its kind, and
/// makes sure the other secret does not verify it. The kind is read from `typ` or
/// `type`, whichever the backend writes (a token with neither is judged by signature).
fn signed_locally(settings: &Settings, raw: &str, kind: Kind) -> Result<(), String> {
    let secret = settings.secret(kind).map_err(|e| e.to_string())?;
    let t = token::inspect(raw).map_err(|e| format!("the {kind} token: {e}"))?;
    let check =
        Check { algorithms: vec![jsonwebtoken::Algorithm::HS256], leeway: 60, issuer: None, audience: None, typ: None };
    let now = crate::server::now();
    let failures = t.verify(&secret, &check, now);
    if failures.iter().any(|f| matches!(f, token::Failure::BadSignature)) {
        return Err(format!("service signs with a different {} than {}", kind.secret_var(), settings.source));
    }
    if let Some(f) = failures.first() {
        return Err(format!("the {kind} token: {f}"));
    }
    let kinds: Vec<&str> =
        [names::claim::TYP, names::claim::NODE_TYPE].iter().filter_map(|c| t.claims.get(*c)?.as_str()).collect();
    if let [typ, typ_node] = kinds[..]
        && typ != typ_node
    {
        return Err(format!(
            "the {kind} token's typ {typ:?} and type {typ_node:?} disagree: a verifier reading either is fooled"
        ));
    }
    if let Some(found) = t.kind_claim()
        && found != kind.as_str()
    {
        return Err(format!("the {kind} token says it is {found:?}"));
    }
    // A token may live shorter than configured (aspjwt caps both at the session's end),
    // never longer.
    let exp = t.claims.get(names::claim::EXP).and_then(serde_json::Value::as_i64);
    if let (Some(exp), Ok(ttl)) = (exp, settings.ttl(kind))
        && exp - now > ttl.as_secs() as i64 + EXPIRY_SLACK_SECS
    {
        let var = match kind {
            Kind::Access => names::JWT_ACCESS_TOKEN_EXPIRY,
            Kind::Refresh => names::JWT_REFRESH_TOKEN_EXPIRY,
        };
        return Err(format!(
            "the {kind} token outlives {var}: it expires in {}, the configuration says {}",
            crate::duration::human(Duration::from_secs((exp - now).max(0) as u64)),
            crate::duration::human(ttl)
        ));
    }
    let other = if kind == Kind::Access { Kind::Refresh } else { Kind::Access };
    if let Ok(other_secret) = settings.secret(other)
        && !t.verify(&other_secret, &check, now).iter().any(|f| matches!(f, token::Failure::BadSignature))
    {
        return Err(format!("the {kind} token also verifies with {}: one secret signs both kinds", other.secret_var()));
    }
    Ok(())
}

/// token-info with `access`, as a cookie (or, when that is refused, as a Bearer token:
/// either form is the CRM's), judged by [`judge_token_info`].
fn token_info(r: &mut Runner, access: &str, name: &str, ttl: Option<i64>) {
    let t = Instant::now();
    let by_cookie =
        r.client.get(r.url("/api/auth/token-info")).header("cookie", format!("{}={access}", cookie::ACCESS_TOKEN));
    let Some((_, mut resp)) = r.request(name, by_cookie) else { return };
    let mut how = "";
    if resp.status().as_u16() == 401 {
        let by_bearer = r.client.get(r.url("/api/auth/token-info")).bearer_auth(access);
        let Some((_, again)) = r.request(name, by_bearer) else { return };
        // What the Bearer try answered is reported when it says more than the 401 did.
        if again.status().as_u16() == 200 {
            (resp, how) = (again, " (as a Bearer token; the cookie was refused)");
        } else if again.status().is_server_error() {
            resp = again;
        }
    }
    if resp.status().as_u16() != 200 {
        r.push(Outcome::fail(name, t.elapsed(), "200", resp.status().as_u16().to_string()));
        return;
    }
    let verdict = json_body(resp, r.timeout)
        .map_err(|e| ("a JSON body".to_string(), e))
        .and_then(|body| judge_token_info(&body, access, crate::server::now(), ttl));
    r.push(match verdict {
        Ok(left) => Outcome::new(name, Status::Pass, t.elapsed(), format!("200, expires in {left} s{how}")),
        Err((expected, got)) => Outcome::fail(name, t.elapsed(), expected, got),
    });
}

/// A token-info answer, field by field, in either backend's shape: `userId` the access
/// token's subject; `expiresInSeconds` (a number) and `expiresAt` (RFC 3339), at least one
/// of them, each within a few seconds of the token's `exp` and, with `ttl`, of the
/// configured access lifetime. The seconds left, or what was expected and what came.
fn judge_token_info(
    body: &serde_json::Value,
    access: &str,
    now: i64,
    ttl: Option<i64>,
) -> Result<i64, (String, String)> {
    use serde_json::Value;
    let unexpected = |e: &str, g: String| Err((e.to_string(), g));
    let token = token::inspect(access).ok();
    // A user id is a string or a number (a SQL-backed CRM's ids are numbers), in the body
    // as in the token (`sub` or `userId`); compared by value.
    let id = |v: &Value| match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        _ => None,
    };
    let subject = token.as_ref().and_then(|t| {
        let claim = t.claims.get(names::claim::SUB).or_else(|| t.claims.get(names::claim::NODE_USER_ID))?;
        id(claim)
    });
    match (&body["userId"], id(&body["userId"]), &subject) {
        (Value::Null, _, _) => return unexpected("userId", "none".into()),
        (_, None, _) => return unexpected("userId as a string or a number", body["userId"].to_string()),
        (_, Some(about), Some(sub)) if &about != sub => {
            return Err((format!("userId {sub:?} (the token's subject)"), format!("{about:?}")));
        }
        _ => {}
    }
    let seconds = match &body["expiresInSeconds"] {
        Value::Null => None,
        v => {
            Some(v.as_f64().ok_or_else(|| ("expiresInSeconds as a number".to_string(), v.to_string()))?.round() as i64)
        }
    };
    let at = match &body["expiresAt"] {
        Value::Null => None,
        v => {
            let epoch = v.as_str().and_then(rfc3339_epoch);
            let epoch = epoch.ok_or_else(|| ("expiresAt as an RFC 3339 time".to_string(), v.to_string()))?;
            Some((v.as_str().unwrap_or_default().to_string(), epoch - now))
        }
    };
    let Some(left) = seconds.or(at.as_ref().map(|(_, left)| *left)) else {
        return unexpected("expiresInSeconds or expiresAt", "neither".into());
    };
    let exp_left = token.as_ref().and_then(|t| t.claims.get(names::claim::EXP)?.as_i64()).map(|e| e - now);
    let mut against = Vec::new();
    if let Some(e) = exp_left {
        against.push((e, "the token's exp"));
    }
    if let Some(ttl) = ttl {
        against.push((ttl, "the configured access expiry"));
    }
    for (want, what) in against {
        if let Some(s) = seconds
            && (want - s).abs() > EXPIRY_SLACK_SECS
        {
            return Err((format!("expiresInSeconds ≈ {want} ({what})"), s.to_string()));
        }
        if let Some((text, l)) = &at
            && (want - l).abs() > EXPIRY_SLACK_SECS
        {
            return Err((format!("expiresAt ≈ {want} s from now ({what})"), text.clone()));
        }
    }
    Ok(left)
}

/// Seconds since the epoch of an RFC 3339 time, with `Z` or a numeric offset
/// (`2026-11-30T18:33:04.000Z`, `2026-11-30T19:33:04+01:00`).
fn rfc3339_epoch(text: &str) -> Option<i64> {
    let epoch = |t: std::time::SystemTime| t.duration_since(std::time::UNIX_EPOCH).ok().map(|d| d.as_secs() as i64);
    if let Ok(t) = humantime::parse_rfc3339_weak(text) {
        return epoch(t);
    }
    let (base, offset) = text.split_at(text.len().checked_sub(6)?);
    let sign = match offset.as_bytes().first()? {
        b'+' => 1,
        b'-' => -1,
        _ => return None,
    };
    let (h, m) = offset[1..].split_once(':')?;
    let shift = sign * (h.parse::<i64>().ok()? * 3600 + m.parse::<i64>().ok()? * 60);
    Some(epoch(humantime::parse_rfc3339_weak(&format!("{base}Z")).ok()?)? - shift)
}

/// One refresh with the session's cookies; true when it rotated (a new refresh token
/// and a new access token).
fn refresh(r: &mut Runner, s: &mut Session) -> bool {
    let name = "refresh";
    let Some((took, resp)) = r.request(name, refresh_request(r, s, &s.refresh)) else { return false };
    if resp.status().as_u16() != 200 {
        r.push(Outcome::fail(name, took, "200", resp.status().as_u16().to_string()));
        return false;
    }
    let old_access = s.access.clone();
    let new_access = set_cookie(resp.headers(), cookie::ACCESS_TOKEN).is_some_and(|c| cookie_value(c) != old_access);
    if !s.follow(&resp) {
        r.push(Outcome::fail(name, took, "a new refresh token (rotation)", "the same one, or none"));
        return false;
    }
    if !new_access {
        r.push(Outcome::fail(name, took, "new access_token and refresh_token cookies", "no new access token"));
        return true;
    }
    let problems = cookie_attributes(resp.headers(), r.https);
    r.push(if problems.is_empty() {
        Outcome::new(name, Status::Pass, took, "200, refresh token rotated")
    } else {
        Outcome::fail(name, took, COOKIE_RULE, problems.join("; "))
    });
    true
}

/// What the token cookies a response sets must carry.
const COOKIE_RULE: &str = "HttpOnly, SameSite=Lax or Strict (and Secure over https) on the token cookies";

/// What the token cookies a response sets lack, one entry per cookie.
fn cookie_attributes(headers: &reqwest::header::HeaderMap, https: bool) -> Vec<String> {
    [cookie::ACCESS_TOKEN, cookie::REFRESH_TOKEN]
        .into_iter()
        .filter_map(|name| {
            let missing = cookie_problems(set_cookie(headers, name)?, https);
            (!missing.is_empty()).then(|| format!("{name} lacks {}", missing.join(", ")))
        })
        .collect()
}

fn refresh_request(r: &Runner, s: &Session, refresh: &str) -> RequestBuilder {
    s.with_csrf(r.client.post(r.url("/api/auth/refresh")).header("cookie", s.cookies(refresh)))
}

/// A logout with every cookie the session holds.
fn logout_request(r: &Runner, s: &Session) -> RequestBuilder {
    let cookies = format!("{}={}; {}", cookie::ACCESS_TOKEN, s.access, s.cookies(&s.refresh));
    s.with_csrf(r.client.post(r.url("/api/auth/logout")).header("cookie", cookies))
}

/// The spent refresh token, presented again. Within a documented grace (aspjwt's, for
/// two tabs refreshing at once) it may be answered with the token already in force, never
/// with another; with no grace it must be refused, and the refusal should end the session
/// (reuse detection). The check replays at once: it never waits a grace out.
fn replay(r: &mut Runner, s: &mut Session, previous: &str, grace: Duration) {
    let name = "previous refresh token";
    let Some((took, resp)) = r.request(name, refresh_request(r, s, previous)) else { return };
    let status = resp.status().as_u16();
    // What the answer hands out is a session of its own when it is a new token: ended
    // at the end like the probe's, never mistaken for it.
    let mut answer = Session { forks: Vec::new(), ..s.clone() };
    let minted = answer.follow(&resp);
    let in_force = set_cookie(resp.headers(), cookie::REFRESH_TOKEN).map(cookie_value) == Some(s.refresh.as_str());
    if minted {
        s.forks.push(answer);
    }
    let grace_text = crate::duration::human(grace);
    r.push(match status {
        200 if grace.is_zero() => Outcome::fail(
            name,
            took,
            "401: a spent refresh token is refused (the backend documents no grace)",
            "200: still accepted",
        ),
        200 if minted => Outcome::fail(
            name,
            took,
            format!("within the {grace_text} grace, the token already in force"),
            "200 with another new refresh token: a replay forks the session",
        ),
        200 if !in_force => Outcome::fail(
            name,
            took,
            format!("within the {grace_text} grace, the token already in force"),
            "200 without it",
        ),
        200 => Outcome::new(
            name,
            Status::Pass,
            took,
            format!(
                "200 within the {grace_text} grace aspjwt allows, answered with the token in force (not waited out)"
            ),
        ),
        s_ if refused(s_) => {
            r.push(Outcome::new(name, Status::Pass, took, format!("{status}: refused")));
            reuse_ends_session(r, s);
            return;
        }
        _ => Outcome::fail(name, took, "401", status.to_string()),
    });
}

/// After a refused replay, the session's own refresh token should be refused too: reuse
/// detection ends the session the stolen token belonged to. A warning when it does not.
fn reuse_ends_session(r: &mut Runner, s: &mut Session) {
    let ended = Ended { name: "reuse ends the session", by: "a replayed token", or_else: Status::Warn };
    ended.check(r, s);
}

/// logout (200 or 204), then a refresh with the same cookies must be refused.
fn logout(r: &mut Runner, s: &mut Session) {
    let Some((took, resp)) = r.request("logout", logout_request(r, s)) else { return };
    let status = resp.status().as_u16();
    if !matches!(status, 200 | 204) {
        r.push(Outcome::fail("logout", took, "200 or 204", status.to_string()));
        return;
    }
    r.push(Outcome::new("logout", Status::Pass, took, status.to_string()));
    Ended { name: "refresh after logout", by: "logout", or_else: Status::Fail }.check(r, s);
}

/// A check that the session is over: its refresh token is refused. Otherwise `or_else`
/// (and the session goes on with what the refresh answered, so it can be cleaned up).
struct Ended {
    name: &'static str,
    /// What should have ended it.
    by: &'static str,
    or_else: Status,
}

impl Ended {
    fn check(&self, r: &mut Runner, s: &mut Session) {
        let Some((took, resp)) = r.request(self.name, refresh_request(r, s, &s.refresh)) else { return };
        let status = resp.status().as_u16();
        // Only a 401 says the session is over: a 400 or 403 may refuse the request itself.
        if status == 401 {
            s.ended = true;
            r.push(Outcome::new(self.name, Status::Pass, took, format!("{status}: the session is over")));
            return;
        }
        s.follow(&resp);
        let lives_on = resp.status().is_success();
        let got = if lives_on { format!("{status}: the session lives on") } else { status.to_string() };
        let expected = format!("401: {} ends the session", self.by);
        // A server error is a failure whatever the step.
        let severity = if resp.status().is_server_error() { Status::Fail } else { self.or_else };
        r.push(Outcome::unexpected(self.name, severity, took, expected, got));
    }
}

/// Ends a probe session the checks left open, then makes sure: a refresh with its token
/// must be refused. Not a check of the service (that failed already, or passed), but said
/// when the session may stay open, since it is then left behind.
fn end_probe_session(r: &mut Runner, s: &Session) {
    let name = "cleanup logout";
    let (took, res) = r.send(logout_request(r, s));
    let logout = match res {
        Err(e) => {
            r.push(Outcome::new(
                name,
                Status::Warn,
                took,
                format!("{e}: the probe session may stay open until it expires"),
            ));
            return;
        }
        Ok(resp) => resp.status().as_u16(),
    };
    let (_, confirm) = r.send(refresh_request(r, s, &s.refresh));
    let confirm = confirm.map(|c| c.status().as_u16());
    r.push(match confirm {
        Ok(401) if (200..300).contains(&logout) => {
            Outcome::new(name, Status::Pass, took, format!("{logout}: the probe session was ended"))
        }
        Ok(c) if (200..300).contains(&c) => Outcome::new(
            name,
            Status::Warn,
            took,
            format!("{logout}, yet its refresh token still works ({c}): the probe session stays open until it expires"),
        ),
        Ok(c) => Outcome::new(
            name,
            Status::Warn,
            took,
            format!(
                "{logout}, not confirmed (a refresh answered {c}): the probe session may stay open until it expires"
            ),
        ),
        Err(e) => Outcome::new(name, Status::Warn, took, format!("{logout}, not confirmed ({e})")),
    });
}
