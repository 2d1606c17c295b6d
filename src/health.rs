//! `aspjwt health`: checks a live service the way the CRM depends on it. Each check
//! reports pass / warn / fail with its duration and, on failure, what was expected
//! and what came back. It stores nothing between runs and never replays an old
//! token, so it never trips reuse detection or the probe account's lock.

use std::time::{Duration, Instant, SystemTime};

use reqwest::blocking::{Client, Response};
use reqwest::header::HeaderMap;
use serde::Serialize;

use crate::check::{self, Status};
use crate::config::Settings;
use crate::names::{self, cookie};
use crate::token::{self, Check, Kind, Subject};

/// Largest clock difference tolerated between here and the service.
pub const MAX_SKEW_SECS: i64 = 30;
/// How far `expiresInSeconds` may be from the configured access lifetime.
const EXPIRY_SLACK_SECS: i64 = 10;

/// One line of the health checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Outcome {
    pub name: String,
    pub status: Status,
    pub millis: u64,
    /// The same time, exact below a millisecond (a local check takes a few hundred µs).
    pub micros: u64,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub got: Option<String>,
}

impl Outcome {
    fn new(name: &str, status: Status, took: Duration, detail: impl Into<String>) -> Outcome {
        Outcome {
            name: name.into(),
            status,
            millis: took.as_millis() as u64,
            micros: took.as_micros() as u64,
            detail: detail.into(),
            expected: None,
            got: None,
        }
    }

    fn fail(name: &str, took: Duration, expected: impl Into<String>, got: impl Into<String>) -> Outcome {
        let (expected, got) = (expected.into(), got.into());
        Outcome {
            detail: format!("expected {expected}, got {got}"),
            expected: Some(expected),
            got: Some(got),
            ..Outcome::new(name, Status::Fail, took, "")
        }
    }
}

/// The probe account for the deep check.
pub struct Probe {
    pub email: String,
    pub password: String,
}

pub struct Options {
    /// Base URL, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    pub timeout: Duration,
    /// Liveness only (the Docker HEALTHCHECK form).
    pub quick: bool,
    pub probe: Option<Probe>,
    /// The configuration to judge and to verify issued tokens with.
    pub settings: Option<Settings>,
    pub cacert: Option<Vec<u8>>,
}

/// The most of a response body a check reads: aspjwt's answers are a few hundred bytes.
const MAX_BODY: u64 = 64 * 1024;

/// A response's JSON body, read up to `MAX_BODY`: a hostile or broken endpoint cannot
/// make a check read (and hold) without end.
pub fn json_body(resp: Response) -> Result<serde_json::Value, String> {
    use std::io::Read;
    let mut body = Vec::new();
    resp.take(MAX_BODY + 1).read_to_end(&mut body).map_err(|e| format!("reading the body: {e}"))?;
    if body.len() as u64 > MAX_BODY {
        return Err(format!("answered more than {} KiB: not aspjwt's answer", MAX_BODY / 1024));
    }
    serde_json::from_slice(&body).map_err(|_| "did not answer JSON".into())
}

/// A request failure, named as an operator would name it.
pub fn describe(e: &reqwest::Error, timeout: Duration) -> String {
    let chain = {
        let mut s = e.to_string();
        let mut src = std::error::Error::source(e);
        while let Some(x) = src {
            s.push_str(": ");
            s.push_str(&x.to_string());
            src = x.source();
        }
        s.to_lowercase()
    };
    if e.is_timeout() {
        format!("timed out after {}", crate::duration::human(timeout))
    } else if chain.contains("connection refused") {
        "connection refused (is the service running?)".into()
    } else if chain.contains("dns error")
        || chain.contains("failed to lookup")
        || chain.contains("name or service not known")
    {
        "DNS failure: the host name does not resolve".into()
    } else if let Some(why) = tls_cause(&chain) {
        format!("TLS failure: {why}")
    } else if chain.contains("certificate") || chain.contains("tls") || chain.contains("handshake") {
        format!("TLS failure: the handshake failed ({})", chain.rsplit(": ").next().unwrap_or("no detail"))
    } else if e.is_connect() {
        "cannot connect".into()
    } else {
        format!("request failed: {}", chain.rsplit(": ").next().unwrap_or("unknown error"))
    }
}

/// rustls names its errors in Debug form ("other(othererror(causedasendentity))");
/// each known one is said here as an operator would, with what to do about it.
fn tls_cause(chain: &str) -> Option<&'static str> {
    const CAUSES: &[(&[&str], &str)] = &[
        (&["unknownissuer", "unknown issuer"], "the certificate is signed by an unknown authority (pass --cacert)"),
        (
            &["causedasendentity", "caused as end entity", "ca used as end entity"],
            "the server presents a CA certificate as its own; it must serve a certificate issued for its host name",
        ),
        (&["notvalidforname"], "the certificate is not valid for this host name"),
        (&["expired"], "the certificate has expired"),
        (&["notvalidyet"], "the certificate is not valid yet (is a clock wrong?)"),
        (&["revoked"], "the certificate has been revoked"),
        (&["badsignature", "invalidsignature"], "the certificate's signature does not verify"),
        (&["badencoding", "unsupportedcertversion"], "the server's certificate cannot be parsed"),
        (
            &["invalidcontenttype", "corrupt message", "corruptmessage", "invalidmessage"],
            "the server does not speak TLS on this port (try http://)",
        ),
        (
            &["peerincompatible", "handshakefailure", "protocolversion", "nociphersuitesincommon"],
            "the server and aspjwt share no TLS version or cipher suite (aspjwt speaks TLS 1.2 and 1.3)",
        ),
    ];
    CAUSES.iter().find(|(needles, _)| needles.iter().any(|n| chain.contains(n))).map(|(_, why)| *why)
}

/// The value of a cookie set by a response, with its attributes.
fn set_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get_all("set-cookie").iter().filter_map(|v| v.to_str().ok()).find(|v| v.starts_with(&format!("{name}=")))
}

fn cookie_value(set_cookie: &str) -> &str {
    set_cookie.split(';').next().and_then(|kv| kv.split_once('=')).map_or("", |(_, v)| v)
}

/// Missing attributes of a token cookie: HttpOnly and SameSite always, Secure over https.
pub fn cookie_problems(set_cookie: &str, https: bool) -> Vec<&'static str> {
    let attrs: Vec<String> = set_cookie.split(';').skip(1).map(|a| a.trim().to_ascii_lowercase()).collect();
    let has = |p: &str| attrs.iter().any(|a| a == p || a.starts_with(&format!("{p}=")));
    let mut out = Vec::new();
    if !has("httponly") {
        out.push("HttpOnly");
    }
    if !has("samesite") {
        out.push("SameSite");
    }
    if https && !has("secure") {
        out.push("Secure");
    }
    out
}

/// The missing security headers.
pub fn missing_headers(headers: &HeaderMap) -> Vec<&'static str> {
    names::SECURITY_HEADERS.iter().map(|(h, _)| *h).filter(|h| !headers.contains_key(*h)).collect()
}

/// Seconds between the server's `Date` and `now`.
pub fn skew(date: &str, now: SystemTime) -> Option<i64> {
    let server = httpdate::parse_http_date(date).ok()?;
    Some(match server.duration_since(now) {
        Ok(ahead) => ahead.as_secs() as i64,
        Err(behind) => -(behind.duration().as_secs() as i64),
    })
}

struct Runner {
    client: Client,
    base: String,
    timeout: Duration,
    out: Vec<Outcome>,
}

impl Runner {
    fn send(&self, req: reqwest::blocking::RequestBuilder) -> (Duration, Result<Response, String>) {
        let t = Instant::now();
        let r = req.send().map_err(|e| describe(&e, self.timeout));
        (t.elapsed(), r)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn push(&mut self, o: Outcome) -> bool {
        let ok = o.status != Status::Fail;
        self.out.push(o);
        ok
    }

    /// A 429 is the limiter doing its job: a warning, not a failure of the service.
    fn rate_limited(&mut self, name: &str, took: Duration, r: &Response) -> bool {
        if r.status().as_u16() != 429 {
            return false;
        }
        let after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).unwrap_or("?");
        self.push(Outcome::new(
            name,
            Status::Warn,
            took,
            format!("rate limited (429): retry after {after}s; not a failure of the service"),
        ));
        true
    }
}

/// The certificates of a --cacert file: at least one, each a parseable X.509 certificate.
/// reqwest alone accepts any bytes (a key, a text file) and trusts nothing.
pub fn ca_certificates(pem: &[u8]) -> Result<Vec<reqwest::Certificate>, String> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    let ders: Vec<CertificateDer> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<_, _>>()
        .map_err(|e| format!("not a readable PEM file ({e})"))?;
    if ders.is_empty() {
        return Err("no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)".into());
    }
    let mut roots = rustls::RootCertStore::empty();
    ders.iter()
        .enumerate()
        .map(|(i, der)| {
            roots.add(der.clone()).map_err(|_| format!("certificate {} is not a valid X.509 certificate", i + 1))?;
            reqwest::Certificate::from_der(der).map_err(|e| format!("certificate {}: {e}", i + 1))
        })
        .collect()
}

/// Runs every check in order and returns the checklist.
pub fn run(opts: &Options) -> Vec<Outcome> {
    let mut builder = Client::builder()
        .timeout(opts.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("aspjwt-health/", env!("CARGO_PKG_VERSION")));
    if let Some(pem) = &opts.cacert {
        // Validated when the options were read; an error here cannot happen.
        for c in ca_certificates(pem).unwrap_or_default() {
            builder = builder.add_root_certificate(c);
        }
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => return vec![Outcome::new("HTTP client", Status::Fail, Duration::ZERO, e.to_string())],
    };
    let mut r =
        Runner { client, base: opts.url.trim_end_matches('/').to_string(), timeout: opts.timeout, out: Vec::new() };
    if !opts.quick
        && let Some(settings) = &opts.settings
    {
        configuration(&mut r, settings);
    }
    if liveness(&mut r)
        && !opts.quick
        && let Some(probe) = &opts.probe
    {
        deep(&mut r, probe, opts.settings.as_ref(), opts.url.starts_with("https://"));
    }
    r.out
}

/// The configuration's rules, and a local sign-and-verify round trip.
fn configuration(r: &mut Runner, settings: &Settings) {
    let t = Instant::now();
    let findings: Vec<_> =
        check::secrets(&settings.values).into_iter().chain(check::expiries(&settings.values)).collect();
    let bad: Vec<String> =
        findings.iter().filter(|f| f.status == Status::Fail).map(|f| format!("{}: {}", f.item, f.detail)).collect();
    let ok = bad.is_empty();
    r.push(if ok {
        Outcome::new(
            "configuration",
            Status::Pass,
            t.elapsed(),
            format!("{} checks pass ({})", findings.len(), settings.source),
        )
    } else {
        Outcome::new("configuration", Status::Fail, t.elapsed(), bad.join("; "))
    });
    let t = Instant::now();
    let Ok(cfg) = settings.token_config() else {
        r.push(Outcome::new("token generation", Status::Fail, t.elapsed(), "no secrets to sign with"));
        return;
    };
    let who = Subject {
        sub: "health".into(),
        email: "health@aspjwt.invalid".into(),
        role: "support".into(),
        sid: token::random_id(),
    };
    let now = crate::server::now();
    let mut problems = Vec::new();
    for kind in [Kind::Access, Kind::Refresh] {
        let jwt = token::sign(&cfg.claims(kind, &who, now, None), cfg.secret(kind));
        let check = Check {
            algorithms: vec![jsonwebtoken::Algorithm::HS256],
            leeway: 0,
            issuer: Some(cfg.issuer.clone()),
            audience: Some(cfg.audience.clone()),
            typ: Some(kind),
        };
        let parsed = token::inspect(&jwt).expect("own tokens parse");
        if !parsed.verify(cfg.secret(kind), &check, now).is_empty() {
            problems.push(format!("{kind} token does not verify"));
        }
        let other = if kind == Kind::Access { Kind::Refresh } else { Kind::Access };
        if parsed.verify(cfg.secret(other), &check, now).is_empty() {
            problems.push(format!("{kind} token verifies with the {other} secret"));
        }
    }
    r.push(if problems.is_empty() {
        Outcome::new(
            "token generation",
            Status::Pass,
            t.elapsed(),
            "access and refresh tokens sign and verify, each with its own secret",
        )
    } else {
        Outcome::new("token generation", Status::Fail, t.elapsed(), problems.join("; "))
    });
}

/// The checks that need no credentials. False when the service is unreachable or broken.
fn liveness(r: &mut Runner) -> bool {
    let (took, res) = r.send(r.client.get(r.url("/api/health")));
    let resp = match res {
        Err(e) => return r.push(Outcome::new("GET /api/health", Status::Fail, took, e)),
        Ok(resp) => resp,
    };
    let status = resp.status().as_u16();
    if status != 200 {
        r.push(Outcome::fail("GET /api/health", took, "200", status.to_string()));
        return false;
    }
    let headers = resp.headers().clone();
    let body = json_body(resp).unwrap_or_default();
    r.push(Outcome::new("GET /api/health", Status::Pass, took, format!("200{}", keys_summary(&body))));
    let missing = missing_headers(&headers);
    r.push(if missing.is_empty() {
        Outcome::new(
            "security headers",
            Status::Pass,
            Duration::ZERO,
            format!("all {} present", names::SECURITY_HEADERS.len()),
        )
    } else {
        Outcome::fail("security headers", Duration::ZERO, "all present", format!("missing {}", missing.join(", ")))
    });
    let date = headers.get("date").and_then(|v| v.to_str().ok()).and_then(|d| skew(d, SystemTime::now()));
    r.push(match date {
        None => Outcome::fail("clock skew", Duration::ZERO, "a Date header", "none"),
        Some(s) if s.abs() <= MAX_SKEW_SECS => {
            Outcome::new("clock skew", Status::Pass, Duration::ZERO, format!("{s:+} s"))
        }
        Some(s) => Outcome::fail(
            "clock skew",
            Duration::ZERO,
            format!("within {MAX_SKEW_SECS} s"),
            format!("{s:+} s: token expiry will misbehave"),
        ),
    });

    let (took, res) = r.send(r.client.get(r.url("/api/auth/token-info")));
    match res {
        Err(e) => r.push(Outcome::new("token-info without a token", Status::Fail, took, e)),
        Ok(resp) => {
            let www = resp.headers().get("www-authenticate").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
            let s = resp.status().as_u16();
            r.push(if s == 401 && www.starts_with("Bearer") {
                Outcome::new("token-info without a token", Status::Pass, took, "401 with WWW-Authenticate: Bearer")
            } else {
                Outcome::fail(
                    "token-info without a token",
                    took,
                    "401 with WWW-Authenticate: Bearer",
                    format!("{s} with WWW-Authenticate: {www:?}"),
                )
            })
        }
    };
    let (took, res) = r.send(r.client.post(r.url("/api/auth/refresh")));
    match res {
        Err(e) => r.push(Outcome::new("refresh without a cookie", Status::Fail, took, e)),
        Ok(resp) if r.rate_limited("refresh without a cookie", took, &resp) => true,
        Ok(resp) => {
            let s = resp.status().as_u16();
            r.push(if s == 401 {
                Outcome::new("refresh without a cookie", Status::Pass, took, "401")
            } else {
                Outcome::fail("refresh without a cookie", took, "401", s.to_string())
            })
        }
    };
    r.out.iter().all(|o| o.status != Status::Fail)
}

/// "; keys access=… refresh=…; rollover JWT_SECRET until …" from /api/health's body.
pub fn keys_summary(body: &serde_json::Value) -> String {
    let Some(keys) = body.get("keys") else { return String::new() };
    let kid = |k: &str| keys.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_string();
    let mut s = format!("; signing keys access={} refresh={}", kid("access"), kid("refresh"));
    for w in body.get("rollover").and_then(|r| r.as_array()).into_iter().flatten() {
        let f = |k: &str| w.get(k).and_then(|v| v.as_str()).unwrap_or("?").to_string();
        s.push_str(&format!("; rollover open: {} previous={} until {}", f("secret"), f("previousKid"), f("until")));
    }
    s
}

/// Verifies a token the service issued with the configured secret.
fn signed_locally(settings: &Settings, raw: &str, kind: Kind) -> Result<(), String> {
    let secret = settings.secret(kind).map_err(|e| e.to_string())?;
    let t = token::inspect(raw).map_err(|e| e.to_string())?;
    let check = Check {
        algorithms: vec![jsonwebtoken::Algorithm::HS256],
        leeway: 60,
        issuer: None,
        audience: None,
        typ: Some(kind),
    };
    let failures = t.verify(&secret, &check, crate::server::now());
    if failures.iter().any(|f| matches!(f, token::Failure::BadSignature)) {
        return Err(format!("service signs with a different {} than {}", kind.secret_var(), settings.source));
    }
    failures.first().map_or(Ok(()), |f| Err(f.to_string()))
}

/// The probe account's session while the deep check holds it.
struct ProbeSession {
    access: String,
    refresh: String,
    csrf: String,
    ended: bool,
}

/// login → token-info → refresh → logout → refresh again, with the probe account.
/// Once logged in, the session is ended before returning whatever failed: a check
/// that stops early (or runs every minute under --watch) never leaves sessions behind.
fn deep(r: &mut Runner, probe: &Probe, settings: Option<&Settings>, https: bool) {
    // Ctrl-C or a TERM from the login on waits for the logout: the checks stop at the
    // next step, the session is ended, then the process ends as it was asked to.
    let held = crate::fsx::Held::new();
    let Some((mut session, ok)) = login(r, probe, https) else { return };
    if ok && held.pending().is_none() {
        exercise(r, &mut session, settings, &|| held.pending().is_some());
    }
    if !session.ended {
        end_probe_session(r, &session);
    }
}

/// Logs the probe in; the session (when the service opened one) and whether the login check passed.
fn login(r: &mut Runner, probe: &Probe, https: bool) -> Option<(ProbeSession, bool)> {
    let (took, res) = r.send(
        r.client
            .post(r.url("/api/auth/login"))
            .json(&serde_json::json!({"email": probe.email, "password": probe.password})),
    );
    let resp = match res {
        Err(e) => {
            r.push(Outcome::new("login", Status::Fail, took, e));
            return None;
        }
        Ok(resp) if r.rate_limited("login", took, &resp) => return None,
        Ok(resp) => resp,
    };
    if resp.status().as_u16() != 200 {
        r.push(Outcome::fail("login", took, "200 for the probe account", resp.status().as_u16().to_string()));
        return None;
    }
    let headers = resp.headers().clone();
    let value = |name| set_cookie(&headers, name).map(|c| cookie_value(c).to_string());
    let session = ProbeSession {
        access: value(cookie::ACCESS_TOKEN).unwrap_or_default(),
        refresh: value(cookie::REFRESH_TOKEN).unwrap_or_default(),
        csrf: value(cookie::CSRF_TOKEN).unwrap_or_default(),
        ended: false,
    };
    let (Some(access_c), Some(refresh_c), Some(_)) = (
        set_cookie(&headers, cookie::ACCESS_TOKEN),
        set_cookie(&headers, cookie::REFRESH_TOKEN),
        set_cookie(&headers, cookie::CSRF_TOKEN),
    ) else {
        let ok = r.push(Outcome::fail(
            "login",
            took,
            "access_token, refresh_token and csrf_token cookies",
            "not all of them",
        ));
        return Some((session, ok));
    };
    let mut problems: Vec<String> = Vec::new();
    for (name, c) in [(cookie::ACCESS_TOKEN, access_c), (cookie::REFRESH_TOKEN, refresh_c)] {
        let missing = cookie_problems(c, https);
        if !missing.is_empty() {
            problems.push(format!("{name} lacks {}", missing.join(", ")));
        }
    }
    let ok = r.push(if problems.is_empty() {
        Outcome::new(
            "login",
            Status::Pass,
            took,
            format!("200, cookies HttpOnly and SameSite{}", if https { " and Secure" } else { "" }),
        )
    } else {
        Outcome::fail(
            "login",
            took,
            "HttpOnly, SameSite (and Secure over https) on the token cookies",
            problems.join("; "),
        )
    });
    Some((session, ok))
}

/// Everything after login, stopping at the first failure; `s` follows each rotation.
fn exercise(r: &mut Runner, s: &mut ProbeSession, settings: Option<&Settings>, interrupted: &dyn Fn() -> bool) {
    if let Some(settings) = settings {
        let t = Instant::now();
        let verdict = signed_locally(settings, &s.access, Kind::Access)
            .and_then(|()| signed_locally(settings, &s.refresh, Kind::Refresh));
        if !r.push(match verdict {
            Ok(()) => Outcome::new(
                "tokens match the configuration",
                Status::Pass,
                t.elapsed(),
                format!("both verify with the secrets in {}", settings.source),
            ),
            Err(e) => Outcome::new("tokens match the configuration", Status::Fail, t.elapsed(), e),
        }) {
            return;
        }
    }

    let ttl = settings.and_then(|s| s.ttl(Kind::Access).ok()).unwrap_or(Duration::from_secs(15 * 60)).as_secs() as i64;
    if interrupted() || !token_info(r, &s.access, "token-info", Some(ttl)) || interrupted() {
        return;
    }

    let (took, res) = r.send(
        r.client
            .post(r.url("/api/auth/refresh"))
            .header("cookie", refresh_cookies(s))
            .header(names::CSRF_HEADER, &s.csrf),
    );
    let resp = match res {
        Err(e) => {
            r.push(Outcome::new("refresh", Status::Fail, took, e));
            return;
        }
        Ok(resp) if r.rate_limited("refresh", took, &resp) => return,
        Ok(resp) => resp,
    };
    if resp.status().as_u16() != 200 {
        r.push(Outcome::fail("refresh", took, "200", resp.status().as_u16().to_string()));
        return;
    }
    let h = resp.headers().clone();
    let new_refresh = set_cookie(&h, cookie::REFRESH_TOKEN).map(|c| cookie_value(c).to_string()).unwrap_or_default();
    if let Some(c) = set_cookie(&h, cookie::ACCESS_TOKEN) {
        s.access = cookie_value(c).to_string();
    }
    if let Some(c) = set_cookie(&h, cookie::CSRF_TOKEN) {
        s.csrf = cookie_value(c).to_string();
    }
    if new_refresh.is_empty() || new_refresh == s.refresh {
        r.push(Outcome::fail("refresh", took, "a new refresh token (rotation)", "the same one, or none"));
        return;
    }
    s.refresh = new_refresh;
    r.push(Outcome::new("refresh", Status::Pass, took, "200, refresh token rotated"));
    if interrupted() || !token_info(r, &s.access, "token-info after refresh", None) || interrupted() {
        return;
    }

    let (took, res) = r.send(
        r.client
            .post(r.url("/api/auth/logout"))
            .header("cookie", refresh_cookies(s))
            .header(names::CSRF_HEADER, &s.csrf),
    );
    match res {
        Err(e) => {
            r.push(Outcome::new("logout", Status::Fail, took, e));
            return;
        }
        Ok(resp) if resp.status().as_u16() == 204 => {
            s.ended = true;
            r.push(Outcome::new("logout", Status::Pass, took, "204"))
        }
        Ok(resp) => {
            r.push(Outcome::fail("logout", took, "204", resp.status().as_u16().to_string()));
            return;
        }
    };
    let (took, res) = r.send(
        r.client
            .post(r.url("/api/auth/refresh"))
            .header("cookie", refresh_cookies(s))
            .header(names::CSRF_HEADER, &s.csrf),
    );
    match res {
        Err(e) => r.push(Outcome::new("refresh after logout", Status::Fail, took, e)),
        Ok(resp) if r.rate_limited("refresh after logout", took, &resp) => true,
        Ok(resp) if resp.status().as_u16() == 401 => {
            r.push(Outcome::new("refresh after logout", Status::Pass, took, "401: the session is over"))
        }
        Ok(resp) => r.push(Outcome::fail("refresh after logout", took, "401", resp.status().as_u16().to_string())),
    };
}

fn refresh_cookies(s: &ProbeSession) -> String {
    format!("{}={}; {}={}", cookie::REFRESH_TOKEN, s.refresh, cookie::CSRF_TOKEN, s.csrf)
}

/// Ends a probe session the checks left open. Not a check of the service (that failed
/// already), but said when it cannot be done, since a session is then left behind.
fn end_probe_session(r: &mut Runner, s: &ProbeSession) {
    let cookies = format!("{}={}; {}", cookie::ACCESS_TOKEN, s.access, refresh_cookies(s));
    let (took, res) =
        r.send(r.client.post(r.url("/api/auth/logout")).header("cookie", cookies).header(names::CSRF_HEADER, &s.csrf));
    let ended = matches!(&res, Ok(resp) if resp.status().is_success());
    let detail = match res {
        Ok(resp) if ended => format!("{}: the probe session was ended", resp.status().as_u16()),
        Ok(resp) => format!("got {}: the probe session may stay open until it expires", resp.status().as_u16()),
        Err(e) => format!("{e}: the probe session may stay open until it expires"),
    };
    r.push(Outcome::new("cleanup logout", if ended { Status::Pass } else { Status::Warn }, took, detail));
}

/// token-info with `access`; with `ttl`, expiresInSeconds must be near it.
fn token_info(r: &mut Runner, access: &str, name: &str, ttl: Option<i64>) -> bool {
    let (took, res) = r.send(
        r.client.get(r.url("/api/auth/token-info")).header("cookie", format!("{}={access}", cookie::ACCESS_TOKEN)),
    );
    let resp = match res {
        Err(e) => return r.push(Outcome::new(name, Status::Fail, took, e)),
        Ok(resp) => resp,
    };
    if resp.status().as_u16() != 200 {
        return r.push(Outcome::fail(name, took, "200", resp.status().as_u16().to_string()));
    }
    let body = json_body(resp).unwrap_or_default();
    let left = body["expiresInSeconds"].as_i64();
    match (left, ttl) {
        (None, _) => r.push(Outcome::fail(name, took, "expiresInSeconds", "none")),
        (Some(l), Some(ttl)) if (ttl - l).abs() > EXPIRY_SLACK_SECS => r.push(Outcome::fail(
            name,
            took,
            format!("expiresInSeconds ≈ {ttl} (the configured access expiry)"),
            l.to_string(),
        )),
        (Some(l), _) => r.push(Outcome::new(name, Status::Pass, took, format!("200, expires in {l} s"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_attributes() {
        assert!(cookie_problems("a=b; Path=/; HttpOnly; SameSite=Strict", false).is_empty());
        assert_eq!(cookie_problems("a=b; Path=/; HttpOnly; SameSite=Strict", true), ["Secure"]);
        assert_eq!(cookie_problems("a=b; Path=/", false), ["HttpOnly", "SameSite"]);
    }

    #[test]
    fn clock_skew() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(skew(&httpdate::fmt_http_date(now + Duration::from_secs(42)), now), Some(42));
        assert_eq!(skew(&httpdate::fmt_http_date(now - Duration::from_secs(7)), now), Some(-7));
        assert_eq!(skew("yesterday", now), None);
    }
}
