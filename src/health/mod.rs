//! `aspjwt health`: checks a live service the way the CRM depends on it, whether it is
//! `aspjwt serve` or the CRM's original Node/Express backend. Each check reports pass,
//! warn or fail with its duration and, on failure, what was expected and what came
//! back. A `fail` is a broken promise of the CRM's security document (down, tokens
//! that do not verify, no rotation, a refresh token that outlives its use or a logout);
//! a `warn` is a hardening gap (a missing header, no CSRF cookie, some clock skew).
//! Every step that can run does, so one run reports everything. It stores nothing
//! between runs.

use std::time::{Duration, Instant, SystemTime};

use reqwest::blocking::{Client, RequestBuilder, Response};
use reqwest::header::HeaderMap;
use serde::Serialize;

use crate::check::{self, Status};
use crate::config::Settings;
use crate::names;
use crate::token::{self, Check, Kind, Subject};

mod probe;

/// Clock difference up to which the service's clock passes; above, a warning.
pub const MAX_SKEW_SECS: i64 = 30;
/// Clock difference from which token times misbehave (verifiers allow about a minute).
pub const FAIL_SKEW_SECS: i64 = 60;

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
        Outcome::unexpected(name, Status::Fail, took, expected, got)
    }

    fn warn(name: &str, took: Duration, expected: impl Into<String>, got: impl Into<String>) -> Outcome {
        Outcome::unexpected(name, Status::Warn, took, expected, got)
    }

    pub(crate) fn unexpected(
        name: &str,
        status: Status,
        took: Duration,
        expected: impl Into<String>,
        got: impl Into<String>,
    ) -> Outcome {
        let (expected, got) = (expected.into(), got.into());
        Outcome {
            detail: format!("expected {expected}, got {got}"),
            expected: Some(expected),
            got: Some(got),
            ..Outcome::new(name, status, took, "")
        }
    }
}

/// What a run found: the backend that answered and the checklist.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    /// "aspjwt 0.1.0" when the service names itself on /api/health, "unknown" for
    /// another backend, null when nothing answered.
    pub backend: Option<String>,
    pub checks: Vec<Outcome>,
}

impl Report {
    /// No check failed (and, when `strict`, none warned).
    pub fn healthy(&self, strict: bool) -> bool {
        !self.checks.is_empty()
            && self.checks.iter().all(|o| o.status != Status::Fail && !(strict && o.status == Status::Warn))
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
    /// Liveness and key ids only (the Docker HEALTHCHECK form).
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
pub fn json_body(resp: Response, timeout: Duration) -> Result<serde_json::Value, String> {
    use std::io::Read;
    // reqwest bounds each read, not the whole body: a body trickled a byte at a time
    // would hold the check for ever. The deadline bounds it (to about twice `timeout`,
    // since the read in progress ends by its own timeout).
    let deadline = Instant::now() + timeout;
    let timed_out = || format!("timed out after {} reading the body", crate::duration::human(timeout));
    let mut body = Vec::new();
    let mut resp = resp.take(MAX_BODY + 1);
    let mut buf = [0u8; 8192];
    loop {
        match resp.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => body.extend_from_slice(&buf[..n]),
            // reqwest reports a read that outlived the timeout as "error decoding
            // response body", with the timeout only in its source.
            Err(e)
                if e.kind() == std::io::ErrorKind::TimedOut
                    || e.get_ref().and_then(|s| s.downcast_ref::<reqwest::Error>()).is_some_and(|r| r.is_timeout())
                    || Instant::now() >= deadline =>
            {
                return Err(timed_out());
            }
            Err(e) => return Err(format!("reading the body: {e}")),
        }
        if Instant::now() > deadline {
            return Err(timed_out());
        }
    }
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
    } else if chain.contains("invalid http version") && e.url().is_some_and(|u| u.scheme() == "http") {
        // A TLS server's alert read as an HTTP response.
        "the server does not speak plain HTTP on this port (TLS? try https://)".into()
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

/// The served certificate's dates: a warning within 14 days of its end (the handshake
/// itself fails once it has ended).
fn certificate_outcome(parsed: Result<crate::tls::CertInfo, String>, now: i64) -> Outcome {
    use crate::tls::Freshness;
    const NAME: &str = "TLS certificate";
    match parsed {
        Err(e) => Outcome::warn(NAME, Duration::ZERO, "a readable certificate", e),
        Ok(c) => match c.freshness(now) {
            Freshness::Valid => {
                Outcome::new(NAME, Status::Pass, Duration::ZERO, format!("{}, {}", c.subject, c.expiry_text(now)))
            }
            Freshness::EndingSoon => Outcome::warn(
                NAME,
                Duration::ZERO,
                format!("more than {} left", crate::duration::human(crate::tls::EXPIRY_WARNING)),
                format!("{}: renew it", c.expiry_text(now)),
            ),
            Freshness::Expired | Freshness::NotYetValid => Outcome::fail(
                NAME,
                Duration::ZERO,
                "a certificate in date",
                format!("{} (valid from {})", c.expiry_text(now), crate::token::Time::new(c.not_before, now).relative),
            ),
        },
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

/// The cookie `name` as a browser keeps it after this response, with its attributes:
/// the last Set-Cookie of that name wins, and None when it clears the cookie (an empty
/// value, `Max-Age` ≤ 0 or an `Expires` in the past) or none sets it.
fn set_cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let last = headers
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .rfind(|v| v.split_once('=').is_some_and(|(n, _)| n.trim() == name))?;
    (!clears(last)).then_some(last)
}

/// Whether a Set-Cookie removes its cookie rather than setting it.
fn clears(set_cookie: &str) -> bool {
    if cookie_value(set_cookie).is_empty() {
        return true;
    }
    // The last of each attribute counts, and Max-Age wins over Expires (RFC 6265 5.3).
    let attr = |name: &str| {
        let attrs: Vec<(&str, &str)> = set_cookie.split(';').skip(1).filter_map(|a| a.split_once('=')).collect();
        attrs.into_iter().rfind(|(k, _)| k.trim().eq_ignore_ascii_case(name)).map(|(_, v)| v.trim())
    };
    match (attr("max-age"), attr("expires")) {
        (Some(age), _) => age.parse::<i64>().is_ok_and(|age| age <= 0),
        (None, Some(at)) => httpdate::parse_http_date(at).is_ok_and(|at| at <= SystemTime::now()),
        (None, None) => false,
    }
}

fn cookie_value(set_cookie: &str) -> &str {
    set_cookie.split(';').next().and_then(|kv| kv.split_once('=')).map_or("", |(_, v)| v)
}

/// What a token cookie lacks: HttpOnly, SameSite=Lax or Strict (None, or an empty value,
/// protects nothing), and Secure over https.
pub fn cookie_problems(set_cookie: &str, https: bool) -> Vec<String> {
    let attrs: Vec<String> = set_cookie.split(';').skip(1).map(|a| a.trim().to_ascii_lowercase()).collect();
    let has = |p: &str| attrs.iter().any(|a| a == p || a.starts_with(&format!("{p}=")));
    let mut out = Vec::new();
    if !has("httponly") {
        out.push("HttpOnly".to_string());
    }
    // The last SameSite counts, as a browser reads it.
    let samesite =
        attrs.iter().rev().find_map(|a| if a == "samesite" { Some("") } else { a.strip_prefix("samesite=") });
    match samesite.map(str::trim) {
        None => out.push("SameSite".to_string()),
        Some("lax" | "strict") => {}
        Some("") => out.push("SameSite=Lax or Strict (it has an empty SameSite)".to_string()),
        Some(other) => out.push(format!("SameSite=Lax or Strict (it has SameSite={})", capitalized(other))),
    }
    if https && !has("secure") {
        out.push("Secure".to_string());
    }
    out
}

fn capitalized(s: &str) -> String {
    let mut c = s.chars();
    c.next().map(|f| f.to_uppercase().chain(c).collect()).unwrap_or_default()
}

/// The security headers (helmet's defaults) a response lacks; HSTS counts over https only.
pub fn missing_headers(headers: &HeaderMap, https: bool) -> Vec<&'static str> {
    let hsts = https.then_some("strict-transport-security");
    names::SECURITY_HEADERS.iter().map(|(h, _)| *h).chain(hsts).filter(|h| !headers.contains_key(*h)).collect()
}

/// Seconds between the server's `Date` and `now`.
pub fn skew(date: &str, now: SystemTime) -> Option<i64> {
    let server = httpdate::parse_http_date(date).ok()?;
    Some(match server.duration_since(now) {
        Ok(ahead) => ahead.as_secs() as i64,
        Err(behind) => -(behind.duration().as_secs() as i64),
    })
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

/// The requests of one run, and the checklist they fill.
struct Runner {
    client: Client,
    base: String,
    timeout: Duration,
    https: bool,
    /// In the deep check a 429 leaves a promise unchecked: a failure, not a warning.
    deep: bool,
    out: Vec<Outcome>,
}

impl Runner {
    fn send(&self, req: RequestBuilder) -> (Duration, Result<Response, String>) {
        let t = Instant::now();
        let r = req.send().map_err(|e| describe(&e, self.timeout));
        (t.elapsed(), r)
    }

    /// Sends a check's request: its answer, or None once what stands in for one is
    /// recorded under `name` (a failure when nothing answered, a warning for a 429).
    fn request(&mut self, name: &str, req: RequestBuilder) -> Option<(Duration, Response)> {
        match self.send(req) {
            (took, Err(e)) => {
                self.push(Outcome::new(name, Status::Fail, took, e));
                None
            }
            (took, Ok(resp)) if self.rate_limited(name, took, &resp) => None,
            (took, Ok(resp)) => Some((took, resp)),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Records `o`; true unless it failed.
    fn push(&mut self, o: Outcome) -> bool {
        let ok = o.status != Status::Fail;
        self.out.push(o);
        ok
    }

    /// A 429 is the limiter doing its job: a warning for a liveness check, but in the
    /// deep check the step's promise went unchecked, so the run cannot say healthy.
    fn rate_limited(&mut self, name: &str, took: Duration, r: &Response) -> bool {
        if r.status().as_u16() != 429 {
            return false;
        }
        let after = r.headers().get("retry-after").and_then(|v| v.to_str().ok()).unwrap_or("?");
        self.push(if self.deep {
            Outcome::new(
                name,
                Status::Fail,
                took,
                format!("rate limited (429): not checked; retry after {after}s (the probe account's limit?)"),
            )
        } else {
            Outcome::new(
                name,
                Status::Warn,
                took,
                format!("rate limited (429): retry after {after}s; not a failure of the service"),
            )
        });
        true
    }
}

/// The backend behind the URL, as its /api/health names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Backend {
    /// `aspjwt serve`, with its version.
    Aspjwt(String),
    /// Anything else (the CRM's Node backend answers `{"status":"ok"}`).
    Unknown,
}

impl Backend {
    fn from_health(body: &serde_json::Value) -> Backend {
        match (body["service"].as_str(), body["version"].as_str()) {
            (Some(names::SERVICE), Some(v)) => Backend::Aspjwt(v.to_string()),
            _ => Backend::Unknown,
        }
    }
}

impl std::fmt::Display for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Aspjwt(v) => write!(f, "{} {v}", names::SERVICE),
            Backend::Unknown => f.write_str("unknown"),
        }
    }
}

/// Runs every check in order and returns what was found.
pub fn run(opts: &Options) -> Report {
    let https = opts.url.starts_with("https://");
    let mut builder = Client::builder()
        .timeout(opts.timeout)
        .redirect(reqwest::redirect::Policy::none())
        .user_agent(concat!("aspjwt-health/", env!("CARGO_PKG_VERSION")))
        .tls_info(true);
    if let Some(pem) = &opts.cacert {
        // Validated when the options were read; an error here cannot happen.
        for c in ca_certificates(pem).unwrap_or_default() {
            builder = builder.add_root_certificate(c);
        }
    }
    let client = match builder.build() {
        Ok(c) => c,
        Err(e) => {
            let checks = vec![Outcome::new("HTTP client", Status::Fail, Duration::ZERO, e.to_string())];
            return Report { backend: None, checks };
        }
    };
    let mut r = Runner {
        client,
        base: opts.url.trim_end_matches('/').to_string(),
        timeout: opts.timeout,
        https,
        deep: false,
        out: Vec::new(),
    };
    if !opts.quick
        && let Some(settings) = &opts.settings
    {
        configuration(&mut r, settings);
    }
    let deep = !opts.quick && opts.probe.is_some();
    let backend = liveness(&mut r, opts.settings.as_ref(), deep);
    if let (Some(backend), Some(probe), false) = (&backend, &opts.probe, opts.quick) {
        probe::deep(&mut r, probe, opts.settings.as_ref(), backend);
    }
    Report { backend: backend.map(|b| b.to_string()), checks: r.out }
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

/// The checks that need no credentials. The backend when /api/health answered 200
/// (the deep check runs then, whatever else these found), else None.
fn liveness(r: &mut Runner, settings: Option<&Settings>, deep: bool) -> Option<Backend> {
    let name = "GET /api/health";
    let t = Instant::now();
    let (_, res) = r.send(r.client.get(r.url("/api/health")));
    let resp = match res {
        Err(e) => {
            r.push(Outcome::new(name, Status::Fail, t.elapsed(), e));
            return None;
        }
        Ok(resp) => resp,
    };
    // The clock is read when the head arrives, not after a slow body.
    let skew = resp.headers().get("date").and_then(|v| v.to_str().ok()).and_then(|d| skew(d, SystemTime::now()));
    let certificate = resp
        .extensions()
        .get::<reqwest::tls::TlsInfo>()
        .and_then(|i| i.peer_certificate())
        .map(crate::tls::CertInfo::parse);
    // Whatever /api/health says, the service answered: every later check still runs.
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = if status == 200 { Some(json_body(resp, r.timeout)) } else { None };
    let took = t.elapsed();
    let body = match body {
        None => {
            r.push(Outcome::fail(name, took, "200", status.to_string()));
            serde_json::Value::Null
        }
        Some(Err(e)) if e.starts_with("timed out") || e.starts_with("reading") => {
            r.push(Outcome::new(name, Status::Fail, took, e));
            serde_json::Value::Null
        }
        Some(Err(e)) => {
            r.push(Outcome::warn(name, took, r#"200 with {"status":"ok"}"#, format!("200 that {e}")));
            serde_json::Value::Null
        }
        Some(Ok(body)) => {
            r.push(match body.get("status").map(|s| s.as_str()) {
                Some(Some("ok")) => Outcome::new(
                    name,
                    Status::Pass,
                    took,
                    format!("200; {}{}", Backend::from_health(&body), keys_summary(&body)),
                ),
                Some(other) => {
                    let said = other.map_or_else(|| body["status"].to_string(), |s| format!("{s:?}"));
                    Outcome::fail(name, took, r#"{"status":"ok"}"#, format!("status {said}"))
                }
                None => Outcome::warn(name, took, r#"200 with {"status":"ok"}"#, "200 without a status"),
            });
            body
        }
    };
    let backend = Backend::from_health(&body);
    if let Some(certificate) = certificate {
        r.push(certificate_outcome(certificate, crate::server::now()));
    }
    if let Some(settings) = settings {
        signing_keys(r, &body, settings, deep);
    }
    let missing = missing_headers(&headers, r.https);
    r.push(if missing.is_empty() {
        Outcome::new("security headers", Status::Pass, Duration::ZERO, "all of helmet's defaults present")
    } else {
        Outcome::warn(
            "security headers",
            Duration::ZERO,
            "helmet's defaults",
            format!("missing {}", missing.join(", ")),
        )
    });
    r.push(match skew {
        None => Outcome::warn("clock skew", Duration::ZERO, "a Date header", "none"),
        Some(s) if s.abs() <= MAX_SKEW_SECS => {
            Outcome::new("clock skew", Status::Pass, Duration::ZERO, format!("{s:+} s"))
        }
        Some(s) if s.abs() < FAIL_SKEW_SECS => {
            Outcome::warn("clock skew", Duration::ZERO, format!("within {MAX_SKEW_SECS} s"), format!("{s:+} s"))
        }
        Some(s) => Outcome::fail(
            "clock skew",
            Duration::ZERO,
            format!("within {MAX_SKEW_SECS} s"),
            format!("{s:+} s: token expiry will misbehave"),
        ),
    });

    let name = "token-info without a token";
    if let Some((took, resp)) = r.request(name, r.client.get(r.url("/api/auth/token-info"))) {
        let challenges: Vec<&str> =
            resp.headers().get_all("www-authenticate").iter().filter_map(|v| v.to_str().ok()).collect();
        let www = challenges.join(", ");
        let bearer = challenges
            .iter()
            .any(|c| c.split_whitespace().next().is_some_and(|scheme| scheme.eq_ignore_ascii_case("bearer")));
        r.push(match resp.status().as_u16() {
            401 if bearer => Outcome::new(name, Status::Pass, took, "401 with WWW-Authenticate: Bearer"),
            401 => Outcome::warn(
                name,
                took,
                "401 with WWW-Authenticate: Bearer (RFC 6750)",
                format!("401 with WWW-Authenticate: {www:?}"),
            ),
            s => Outcome::fail(name, took, "401", s.to_string()),
        });
    }
    let name = "refresh without a cookie";
    if let Some((took, resp)) = r.request(name, r.client.post(r.url("/api/auth/refresh"))) {
        let s = resp.status().as_u16();
        r.push(if refused(s) {
            Outcome::new(name, Status::Pass, took, format!("{s}: refused"))
        } else {
            Outcome::fail(name, took, "401", s.to_string())
        });
    }
    Some(backend)
}

/// A refusal of a refresh: 401 (or 400/403, as some backends answer a missing cookie).
fn refused(status: u16) -> bool {
    matches!(status, 400 | 401 | 403)
}

/// The key ids /api/health publishes against the local secrets: a service that was not
/// reloaded after a rotation (or reads another file) is caught without a probe account.
fn signing_keys(r: &mut Runner, body: &serde_json::Value, settings: &Settings, deep: bool) {
    let name = "signing keys";
    let Some(keys) = body.get("keys").filter(|k| k.is_object()) else {
        // With a probe account, the deep check verifies the service's tokens instead.
        if !deep {
            r.push(Outcome::new(
                name,
                Status::Warn,
                Duration::ZERO,
                format!(
                    "the service publishes no key ids: cannot compare its keys with {} without the deep check (--email, no --quick)",
                    settings.source
                ),
            ));
        }
        return;
    };
    let mut compared = Vec::new();
    let mut differ = Vec::new();
    for (field, var) in
        [("access", names::JWT_SECRET), ("refresh", names::JWT_REFRESH_SECRET), ("session", names::SESSION_SECRET)]
    {
        let (Some(theirs), Some(ours)) = (
            keys[field].as_str(),
            settings.get(var).filter(|s| !s.value.is_empty()).map(|s| token::Secret::new(s.value.clone())),
        ) else {
            continue;
        };
        compared.push(var);
        if theirs != ours.kid() {
            differ.push(format!(
                "{var}: the service signs with key {theirs}, {} holds {}",
                settings.source,
                ours.kid()
            ));
        }
    }
    r.push(if !differ.is_empty() {
        Outcome::new(
            name,
            Status::Fail,
            Duration::ZERO,
            format!("{} (rotated but not reloaded? send SIGHUP)", differ.join("; ")),
        )
    } else if compared.is_empty() {
        Outcome::new(name, Status::Warn, Duration::ZERO, "no key ids to compare")
    } else {
        Outcome::new(name, Status::Pass, Duration::ZERO, format!("{} match {}", compared.join(", "), settings.source))
    });
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_attributes() {
        assert!(cookie_problems("a=b; Path=/; HttpOnly; SameSite=Strict", false).is_empty());
        assert_eq!(cookie_problems("a=b; Path=/; HttpOnly; SameSite=Strict", true), ["Secure"]);
        assert_eq!(cookie_problems("a=b; Path=/", false), ["HttpOnly", "SameSite"]);
        assert_eq!(
            cookie_problems("a=b; HttpOnly; samesite=none", false),
            ["SameSite=Lax or Strict (it has SameSite=None)"]
        );
        assert_eq!(
            cookie_problems("a=b; HttpOnly; SameSite", false),
            ["SameSite=Lax or Strict (it has an empty SameSite)"]
        );
        assert!(cookie_problems("a=b; httponly; SAMESITE=lax", false).is_empty());
        // The last SameSite is the one a browser keeps.
        assert!(!cookie_problems("a=b; HttpOnly; SameSite=Strict; SameSite=None", false).is_empty());
        assert!(cookie_problems("a=b; HttpOnly; SameSite=None; SameSite=Lax", false).is_empty());
    }

    #[test]
    fn the_cookie_a_browser_keeps() {
        let mut h = HeaderMap::new();
        for v in ["t=; Max-Age=0", "t=new; HttpOnly", "u=x", "t=newer; HttpOnly"] {
            h.append("set-cookie", v.parse().unwrap());
        }
        assert_eq!(set_cookie(&h, "t"), Some("t=newer; HttpOnly"));
        for cleared in ["t=", "t=x; Max-Age=0", "t=x; max-age=-1", "t=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT"] {
            h.append("set-cookie", cleared.parse().unwrap());
            assert_eq!(set_cookie(&h, "t"), None, "{cleared}");
        }
        assert_eq!(set_cookie(&h, "u"), Some("u=x"));
        // Max-Age wins over Expires, whichever comes first.
        assert!(!clears("t=x; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=900"));
        assert!(!clears("t=x; Max-Age=900; Expires=Thu, 01 Jan 1970 00:00:00 GMT"));
        assert!(clears("t=x; Max-Age=900; Max-Age=0"));
        assert_eq!(set_cookie(&h, "tt"), None);
    }

    #[test]
    fn clock_skew() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(skew(&httpdate::fmt_http_date(now + Duration::from_secs(42)), now), Some(42));
        assert_eq!(skew(&httpdate::fmt_http_date(now - Duration::from_secs(7)), now), Some(-7));
        assert_eq!(skew("yesterday", now), None);
    }
}
