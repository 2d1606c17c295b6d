//! `aspjwt health` against the real service and against broken fakes.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::service::{PASSWORD, Service, run_env, setup};
use crate::util::Dir;

const PROBE: &str = "probe@aspcranes.example";

fn health(dir: &Dir, args: &[&str]) -> crate::util::Output {
    run_env(dir, args, &[("PROBE_PW", PASSWORD)])
}

fn checks(j: &Value) -> Vec<(String, String)> {
    j["checks"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["name"].as_str().unwrap().to_string(), c["status"].as_str().unwrap().to_string()))
        .collect()
}

/// The names of the checks with `status`, in order.
pub fn with_status(j: &Value, status: &str) -> Vec<String> {
    checks(j).into_iter().filter(|(_, s)| s == status).map(|(n, _)| n).collect()
}

fn failed(j: &Value) -> Vec<String> {
    with_status(j, "fail")
}

fn warned(j: &Value) -> Vec<String> {
    with_status(j, "warn")
}

/// One field (`status`, `detail`, …) of the check `name`.
pub fn field(j: &Value, name: &str, field: &str) -> String {
    let c = j["checks"].as_array().unwrap().iter().find(|c| c["name"] == name);
    c.unwrap_or_else(|| panic!("no check {name:?}: {j}"))[field].as_str().unwrap().to_string()
}

#[test]
fn a_healthy_service_passes_every_check() {
    let s = Service::start(setup("", &[(PROBE, "support")]));
    let out = health(
        &s.dir,
        &["--json", "health", "--url", &s.base, "--env-file", ".env", "--email", PROBE, "--password-env", "PROBE_PW"],
    );
    let j = out.code(0).json();
    assert_eq!(j["ok"], true);
    assert_eq!(j["url"], s.base.as_str());
    let names: Vec<String> = checks(&j)
        .into_iter()
        .map(|(n, st)| {
            assert_eq!(st, "pass", "{n}: {j}");
            n
        })
        .collect();
    assert_eq!(
        names,
        [
            "configuration",
            "token generation",
            "GET /api/health",
            "signing keys",
            "security headers",
            "clock skew",
            "token-info without a token",
            "refresh without a cookie",
            "login",
            "CSRF cookie",
            "tokens match the configuration",
            "token-info",
            "refresh",
            "rotated tokens match the configuration",
            "token-info after refresh",
            "previous refresh token",
            "logout",
            "refresh after logout",
        ]
    );
    assert_eq!(j["backend"], format!("aspjwt {}", env!("CARGO_PKG_VERSION")));
    assert_eq!((j["warnings"].as_u64(), j["strict"].as_bool()), (Some(0), Some(false)));
    // Within aspjwt's reuse grace the spent token is answered with the one in force.
    let replay = j["checks"].as_array().unwrap().iter().find(|c| c["name"] == "previous refresh token").unwrap();
    assert!(replay["detail"].as_str().unwrap().contains("within the 10s grace"), "{replay}");
    for c in j["checks"].as_array().unwrap() {
        assert!(c["millis"].is_u64() && c["micros"].is_u64() && c["detail"].is_string());
    }
    // Human output: a checklist and a one-line verdict; run twice, it never trips reuse detection.
    let human = health(
        &s.dir,
        &["health", "--url", &s.base, "--env-file", ".env", "--email", PROBE, "--password-env", "PROBE_PW"],
    );
    let last = human.code(0).stdout.lines().last().unwrap().to_string();
    assert!(
        last.starts_with(&format!("healthy (aspjwt {}): 18 checks passed in", env!("CARGO_PKG_VERSION"))),
        "{last}"
    );
    assert!(human.stdout.contains("✔ refresh "));
    // A local check takes well under a millisecond: shown in µs, never "0 ms".
    assert!(!human.stdout.contains(" 0 ms"), "{}", human.stdout);
    assert!(human.stdout.contains(" µs"), "{}", human.stdout);
    // -q: nothing when healthy.
    let quiet = health(&s.dir, &["-q", "health", "--url", &s.base, "--quick"]);
    assert!(quiet.code(0).stdout.is_empty() && quiet.stderr.is_empty(), "{} {}", quiet.stdout, quiet.stderr);
    assert_eq!(
        s.cli(&["--json", "audit", "--event", "refresh_token_reuse"]).code(0).rows().as_array().unwrap().len(),
        0
    );
    // The quick form: liveness only, and with the configuration the key ids it publishes.
    let quick = health(&s.dir, &["--json", "health", "--url", &s.base, "--quick"]).code(0).json();
    assert_eq!(checks(&quick).len(), 5);
    let quick = health(&s.dir, &["--json", "health", "--url", &s.base, "--quick", "--env-file", ".env"]).code(0).json();
    let keys = quick["checks"].as_array().unwrap().iter().find(|c| c["name"] == "signing keys").unwrap().clone();
    assert_eq!(keys["status"], "pass", "{quick}");
    assert_eq!(keys["detail"], "JWT_SECRET, JWT_REFRESH_SECRET, SESSION_SECRET match .env");
}

#[test]
fn usage_errors() {
    let d = Dir::new();
    assert!(d.run(&["health", "--url", "ftp://x"]).code(2).stderr.contains("--url"));
    d.run(&["health", "--password", "x"]).code(2);
    assert!(d.run(&["health", "--email", "a@b.c"]).code(2).stderr.contains("never the command line"));
    d.run(&["health", "--password-env", "X"]).code(2); // requires --email
}

#[test]
fn nothing_listening() {
    let port = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port(); // closed again
    let d = Dir::new();
    let j = d.run(&["--json", "health", "--url", &format!("http://127.0.0.1:{port}")]).code(1).json();
    assert_eq!(failed(&j), ["GET /api/health"]);
    assert!(j["checks"][0]["detail"].as_str().unwrap().contains("connection refused"));
}

#[test]
fn a_service_with_other_secrets_than_the_env_file() {
    let s = Service::start(setup("", &[(PROBE, "support")]));
    let other = s.dir.run(&["generate"]).stdout.clone();
    s.dir.write("other.env", other);
    let j = health(
        &s.dir,
        &[
            "--json",
            "health",
            "--url",
            &s.base,
            "--env-file",
            "other.env",
            "--email",
            PROBE,
            "--password-env",
            "PROBE_PW",
        ],
    )
    .code(1)
    .json();
    assert_eq!(
        failed(&j),
        ["signing keys", "tokens match the configuration", "rotated tokens match the configuration"]
    );
    let detail = |j: &Value, name: &str| field(j, name, "detail");
    assert_eq!(
        detail(&j, "tokens match the configuration"),
        "service signs with a different JWT_SECRET than other.env; service signs with a different JWT_REFRESH_SECRET than other.env"
    );
    assert!(detail(&j, "signing keys").contains("send SIGHUP"), "{j}");
    // A failure does not stop the run: every later step ran, and the logout ended the session.
    assert_eq!(checks(&j).last().unwrap(), &("refresh after logout".to_string(), "pass".to_string()), "{j}");
    // --quick with the configuration catches it without a probe account.
    let quick = health(&s.dir, &["--json", "health", "--url", &s.base, "--quick", "--env-file", "other.env"]);
    let quick = quick.code(1).json();
    assert_eq!(failed(&quick), ["signing keys"]);
    assert!(detail(&quick, "signing keys").starts_with("JWT_SECRET: the service signs with key "), "{quick}");
    // Run again (as --watch would): still no session left behind.
    health(
        &s.dir,
        &["health", "--url", &s.base, "--env-file", "other.env", "--email", PROBE, "--password-env", "PROBE_PW"],
    )
    .code(1);
    let live = s.cli(&["--json", "sessions", "list"]).code(0).rows();
    assert_eq!(live.as_array().unwrap().len(), 0, "probe sessions left open: {live}");
}

/// What a fake answers: status, extra headers, body.
type Reply = (u16, Vec<(String, String)>, String);

/// A well-behaved service's headers: the same list the hardening tests demand.
const GOOD_HEADERS: &[(&str, &str)] = crate::hardening::HEADERS;

fn h(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The value of cookie `name` in a request head.
fn request_cookie(head: &str, name: &str) -> Option<String> {
    head.lines()
        .filter_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("cookie")).map(|(_, v)| v))
        .flat_map(|v| v.split(';'))
        .find_map(|kv| kv.trim().strip_prefix(&format!("{name}=")).map(str::to_string))
}

/// The value of a request header.
fn request_header(head: &str, name: &str) -> Option<String> {
    head.lines().find_map(|l| {
        let (k, v) = l.split_once(':')?;
        k.eq_ignore_ascii_case(name).then(|| v.trim().to_string())
    })
}

/// The fake's sessions: each login opens one, whose live refresh token rotates; a spent
/// token ends its session (reuse detection) unless a quirk says otherwise.
#[derive(Default)]
pub struct Sessions {
    /// Per session, its live refresh token (None once ended).
    live: Vec<Option<String>>,
    /// Spent refresh tokens and their session.
    spent: Vec<(String, usize)>,
    issued: usize,
    /// The access token the last login handed out.
    first_access: String,
    logged_out: bool,
}

impl Sessions {
    pub fn open(&self) -> usize {
        self.live.iter().filter(|l| l.is_some()).count()
    }

    /// A JWT-shaped token (not signed: the fake is judged without --env-file).
    fn token(&mut self, typ: &str, sub: serde_json::Value) -> String {
        use base64::Engine;
        self.issued += 1;
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let claims = serde_json::json!({"sub": sub, "type": typ, "jti": self.issued, "iat": now, "exp": now + 900});
        let b64 = |v: &[u8]| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v);
        format!("{}.{}.c2ln", b64(br#"{"alg":"HS256","typ":"JWT"}"#), b64(claims.to_string().as_bytes()))
    }
}

/// A service that behaves right except where `quirks` say (several joined by `+`).
fn fake(quirks: &'static str) -> impl Fn(&str, &str, &str) -> Option<Reply> + Send + Sync + 'static {
    fake_sessions(quirks).0
}

/// A fake's sessions, shared with the test that looks at what the probe left open.
type Shared = Arc<std::sync::Mutex<Sessions>>;

/// As `fake`, with its sessions.
fn fake_sessions(quirks: &'static str) -> (impl Fn(&str, &str, &str) -> Option<Reply> + Send + Sync + 'static, Shared) {
    let sessions = Arc::new(std::sync::Mutex::new(Sessions::default()));
    let state = sessions.clone();
    let has = move |q: &str| quirks.split('+').any(|x| x == q);
    let handler = move |method: &str, path: &str, head: &str| {
        let mut headers = if has("no_headers") { vec![] } else { h(GOOD_HEADERS) };
        let presented = request_cookie(head, "refresh_token");
        let mut st = sessions.lock().unwrap();
        let sub = if has("numeric_sub") { serde_json::json!(42) } else { serde_json::json!("u-1") };
        let attrs =
            if has("samesite_none") { "Path=/; HttpOnly; SameSite=None" } else { "Path=/; HttpOnly; SameSite=Strict" };
        // Sets a session's cookies, as the quirks have them.
        let set = |headers: &mut Vec<(String, String)>, access: &str, refresh: &str, attrs: &str| {
            let clear = |headers: &mut Vec<(String, String)>| {
                for name in ["access_token", "refresh_token"] {
                    headers.push(("set-cookie".into(), format!("{name}=; Path=/; Max-Age=0")));
                }
            };
            if has("clear_first") {
                clear(headers);
            }
            for (name, v) in [("access_token", access), ("refresh_token", refresh), ("csrf_token", "n.t")] {
                headers.push(("set-cookie".into(), format!("{name}={v}; {attrs}")));
            }
            if has("clear_after") {
                clear(headers);
            }
        };
        let health_body = if has("health_down") {
            r#"{"status":"down"}"#
        } else if has("aspjwt_spoof") {
            r#"{"status":"ok","service":"aspjwt","version":"9.9.9"}"#
        } else {
            r#"{"status":"ok"}"#
        };
        if has("hang") {
            std::thread::sleep(Duration::from_secs(5));
            return None;
        }
        Some(match (method, path) {
            ("GET", "/api/health") if has("500") => (500, headers, "{}".into()),
            ("GET", "/api/health") if has("stall_body") => {
                headers.push((STALL.into(), "5".into()));
                (200, headers, health_body.into())
            }
            ("GET", "/api/health") => (200, headers, health_body.into()),
            ("GET", "/api/auth/token-info") => {
                let bearer =
                    request_header(head, "authorization").and_then(|v| v.strip_prefix("Bearer ").map(str::to_string));
                let cookie = request_cookie(head, "access_token");
                let token = if has("bearer_only") { bearer } else { cookie.or(bearer) };
                if token.is_none() {
                    if has("www_basic_then_bearer") {
                        headers.push(("www-authenticate".into(), "Basic realm=\"x\"".into()));
                    }
                    let www = if has("www_lower") {
                        "bearer realm=\"x\""
                    } else if has("www_nonsense") {
                        "BearerNonsense"
                    } else {
                        "Bearer realm=\"x\""
                    };
                    headers.push(("www-authenticate".into(), www.into()));
                    return Some((401, headers, "{}".into()));
                }
                let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
                let at = std::time::UNIX_EPOCH + Duration::from_secs(now + 900);
                let mut body = serde_json::json!({
                    "userId": sub, "expiresInSeconds": 900,
                    "expiresAt": humantime::format_rfc3339_seconds(at).to_string(),
                });
                if has("ti_userid_number") {
                    body["userId"] = 42.into();
                }
                if has("ti_no_userid") {
                    body.as_object_mut().unwrap().remove("userId");
                }
                if has("ti_seconds_string") {
                    body["expiresInSeconds"] = "900".into();
                }
                if has("ti_float_seconds") {
                    body["expiresInSeconds"] = serde_json::json!(899.6);
                }
                if has("ti_expires_at_wrong") {
                    body["expiresAt"] = "2001-01-01T00:00:00Z".into();
                }
                if has("ti_offset") {
                    // The same instant, written an hour east of UTC.
                    let east = humantime::format_rfc3339_seconds(at + Duration::from_secs(3600)).to_string();
                    body["expiresAt"] = east.replace('Z', "+01:00").into();
                }
                (200, headers, body.to_string())
            }
            ("POST", "/api/auth/refresh") if has("429") && presented.is_none() => {
                headers.push(("retry-after".into(), "30".into()));
                (429, headers, "{}".into())
            }
            ("POST", "/api/auth/refresh") if has("429_after_logout") && st.logged_out => {
                headers.push(("retry-after".into(), "30".into()));
                (429, headers, "{}".into())
            }
            ("POST", "/api/auth/login") if has("login_429") => {
                headers.push(("retry-after".into(), "30".into()));
                (429, headers, "{}".into())
            }
            ("POST", "/api/auth/login") => {
                let (access, refresh) = (st.token("access", sub.clone()), st.token("refresh", sub));
                st.first_access = access.clone();
                st.live.push(Some(refresh.clone()));
                set(&mut headers, &access, &refresh, attrs);
                (if has("login_500_cookies") { 500 } else { 200 }, headers, "{}".into())
            }
            ("POST", "/api/auth/refresh") => {
                let Some(presented) = presented else { return Some((401, headers, "{}".into())) };
                let attrs = if has("rotated_bare") { "Path=/" } else { attrs };
                if let Some(i) = st.live.iter().position(|l| l.as_deref() == Some(&presented)) {
                    let next = if has("no_rotation") { presented.clone() } else { st.token("refresh", sub.clone()) };
                    if next != presented {
                        st.spent.push((presented, i));
                    }
                    st.live[i] = Some(next.clone());
                    let access = if has("rot_same_access") { st.first_access.clone() } else { st.token("access", sub) };
                    set(&mut headers, &access, &next, attrs);
                    return Some((200, headers, "{}".into()));
                }
                let Some(&(_, i)) = st.spent.iter().find(|(t, _)| *t == presented) else {
                    return Some((401, headers, "{}".into()));
                };
                if st.live[i].is_some() && has("aspjwt_spoof") {
                    return Some((200, headers, "{}".into())); // no cookies at all
                }
                if st.live[i].is_some() && has("replay_fork") {
                    let (access, refresh) = (st.token("access", sub.clone()), st.token("refresh", sub));
                    st.live.push(Some(refresh.clone()));
                    set(&mut headers, &access, &refresh, attrs);
                    return Some((200, headers, "{}".into()));
                }
                if st.live[i].is_none() && has("reuse_503") {
                    return Some((503, headers, "{}".into()));
                }
                // Reuse ends the session: its live token is spent too.
                if let Some(live) = st.live[i].take() {
                    st.spent.push((live, i));
                }
                (401, headers, "{}".into())
            }
            ("POST", "/api/auth/logout") => {
                st.logged_out = true;
                if !has("logout_keeps")
                    && let Some(p) = &presented
                    && let Some(i) = st.live.iter().position(|l| l.as_deref() == Some(p))
                {
                    st.live[i] = None;
                }
                (204, headers, String::new())
            }
            _ => (404, headers, "{}".into()),
        })
    };
    (handler, state)
}

/// A header a fake's reply may carry to stall: the head and part of the body go out,
/// then nothing for that many seconds.
const STALL: &str = "x-test-stall";

/// Serves `handler` on loopback (plain, or TLS with `tls`); returns the base URL.
fn serve_fake<F>(handler: F, tls: Option<Arc<rustls::ServerConfig>>) -> String
where
    F: Fn(&str, &str, &str) -> Option<Reply> + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler = Arc::new(handler);
    let scheme = if tls.is_some() { "https" } else { "http" };
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(stream) = stream else { continue };
            let (handler, tls) = (handler.clone(), tls.clone());
            std::thread::spawn(move || match tls {
                Some(cfg) => {
                    let conn = rustls::ServerConnection::new(cfg).unwrap();
                    answer(rustls::StreamOwned::new(conn, stream), &*handler);
                }
                None => answer(stream, &*handler),
            });
        }
    });
    format!("{scheme}://localhost:{port}")
}

fn answer<S: Read + Write, F: Fn(&str, &str, &str) -> Option<Reply>>(mut stream: S, handler: &F) {
    let mut head = String::new();
    {
        let mut reader = BufReader::new(&mut stream);
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                break;
            }
            head.push_str(&line);
        }
    }
    let mut first = head.split_whitespace();
    let (method, path) = (first.next().unwrap_or("").to_string(), first.next().unwrap_or("").to_string());
    let Some((status, headers, body)) = handler(&method, &path, &head) else { return };
    let stall = headers.iter().find(|(k, _)| k == STALL).and_then(|(_, v)| v.parse::<u64>().ok());
    let mut reply = format!(
        "HTTP/1.1 {status} X\r\ncontent-length: {}\r\nconnection: close\r\ndate: {}\r\n",
        body.len(),
        httpdate::fmt_http_date(std::time::SystemTime::now())
    );
    for (k, v) in headers.iter().filter(|(k, _)| k != STALL) {
        reply.push_str(&format!("{k}: {v}\r\n"));
    }
    reply.push_str("\r\n");
    match stall {
        Some(secs) => {
            reply.push_str(&body[..body.len() / 2]);
            let _ = stream.write_all(reply.as_bytes());
            let _ = stream.flush();
            std::thread::sleep(Duration::from_secs(secs));
        }
        None => {
            reply.push_str(&body);
            let _ = stream.write_all(reply.as_bytes());
            let _ = stream.flush();
        }
    }
}

fn deep(d: &Dir, url: &str, extra: &[&str]) -> crate::util::Output {
    let mut args =
        vec!["--json", "health", "--url", url, "--email", PROBE, "--password-env", "PROBE_PW", "--timeout", "1s"];
    args.extend(extra);
    health(d, &args)
}

#[test]
fn broken_services_fail_the_named_check() {
    let d = Dir::new();
    let cases: &[(&str, &[&str])] =
        &[("500", &["GET /api/health"]), ("hang", &["GET /api/health"]), ("no_rotation", &["refresh"])];
    for (quirk, want) in cases {
        let url = serve_fake(fake(quirk), None);
        let j = deep(&d, &url, &[]).code(1).json();
        assert_eq!(failed(&j), *want, "{quirk}: {j}");
    }
    let url = serve_fake(fake("hang"), None);
    let j = deep(&d, &url, &[]).json();
    assert!(j["checks"][0]["detail"].as_str().unwrap().contains("timed out after 1s"), "{j}");
    // Missing security headers are a hardening gap: a warning, and the deep check goes on.
    let url = serve_fake(fake("no_headers"), None);
    let j = deep(&d, &url, &[]).code(0).json();
    assert!(failed(&j).is_empty(), "{j}");
    assert_eq!(warned(&j), ["security headers"], "{j}");
    assert_eq!(j["warnings"], 1);
    assert!(checks(&j).iter().any(|(n, s)| n == "refresh after logout" && s == "pass"), "{j}");
    // -q drops the checklist, never the reason for exit 1; --strict fails a warning.
    let quiet = health(&d, &["-q", "health", "--url", &url, "--quick", "--strict"]);
    assert!(quiet.code(1).stdout.is_empty(), "{}", quiet.stdout);
    assert!(
        quiet
            .stderr
            .starts_with("aspjwt: unhealthy: 1 of 5 checks failed or warned (--strict); first: security headers"),
        "{}",
        quiet.stderr
    );
    health(&d, &["-q", "health", "--url", &url, "--quick"]).code(0);
    let url = serve_fake(fake("500"), None);
    let j = deep(&d, &url, &[]).json();
    assert_eq!((j["checks"][0]["expected"].as_str(), j["checks"][0]["got"].as_str()), (Some("200"), Some("500")));
}

#[test]
fn a_429_is_a_warning_not_a_failure() {
    let d = Dir::new();
    let url = serve_fake(fake("429"), None);
    let j = health(&d, &["--json", "health", "--url", &url, "--quick"]).code(0).json();
    let refresh =
        j["checks"].as_array().unwrap().iter().find(|c| c["name"] == "refresh without a cookie").unwrap().clone();
    assert_eq!(refresh["status"], "warn");
    assert!(refresh["detail"].as_str().unwrap().contains("rate limited (429): retry after 30s"));
}

#[test]
fn https_with_a_private_ca() {
    let d = Dir::new();
    // A private CA and a leaf certificate for localhost signed by it.
    let openssl = |args: &[&str]| {
        let out = std::process::Command::new("openssl").current_dir(d.tmp.path()).args(args).output().unwrap();
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"];
    openssl(
        &[
            &["req", "-x509"][..],
            &ec,
            &["-days", "1", "-subj", "/CN=aspjwt test CA", "-keyout", "ca.key", "-out", "ca.pem"],
        ]
        .concat(),
    );
    openssl(&[&["req"][..], &ec, &["-subj", "/CN=localhost", "-keyout", "key.pem", "-out", "leaf.csr"]].concat());
    d.write("leaf.ext", "subjectAltName=DNS:localhost\nbasicConstraints=CA:FALSE\n");
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "1",
        "-extfile",
        "leaf.ext",
        "-out",
        "cert.pem",
    ]);
    use rustls_pki_types::pem::PemObject;
    let certs = rustls_pki_types::CertificateDer::pem_file_iter(d.path("cert.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let key = rustls_pki_types::PrivateKeyDer::from_pem_file(d.path("key.pem")).unwrap();
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let cfg = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .unwrap();
    let url = serve_fake(fake("ok"), Some(Arc::new(cfg)));
    // A server that presents its CA certificate as its own: one clear line.
    let ca_certs = rustls_pki_types::CertificateDer::pem_file_iter(d.path("ca.pem"))
        .unwrap()
        .collect::<Result<Vec<_>, _>>()
        .unwrap();
    let ca_key = rustls_pki_types::PrivateKeyDer::from_pem_file(d.path("ca.key")).unwrap();
    let ca_cfg = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(ca_certs, ca_key)
        .unwrap();
    let ca_url = serve_fake(fake("ok"), Some(Arc::new(ca_cfg)));
    let j = health(&d, &["--json", "health", "--url", &ca_url, "--quick", "--cacert", "ca.pem"]).code(1).json();
    assert_eq!(
        j["checks"][0]["detail"],
        "TLS failure: the server presents a CA certificate as its own; it must serve a certificate issued for its host name"
    );
    // https:// to a port that speaks plain http.
    let plain = serve_fake(fake("ok"), None).replace("http://", "https://");
    let j = health(&d, &["--json", "health", "--url", &plain, "--quick"]).code(1).json();
    assert_eq!(j["checks"][0]["detail"], "TLS failure: the server does not speak TLS on this port (try http://)");
    // --cacert must be a PEM certificate: anything else is a usage error, before any request.
    d.write("not.pem", "hello\n");
    for bad in ["not.pem", "key.pem"] {
        let out = health(&d, &["health", "--url", &url, "--quick", "--cacert", bad]);
        assert!(out.code(2).stderr.contains(&format!("--cacert {bad}: no PEM certificate in it")), "{}", out.stderr);
    }
    let out = health(&d, &["health", "--url", &url, "--quick", "--cacert", "nothere.pem"]);
    assert!(out.code(2).stderr.contains("nothere.pem"), "{}", out.stderr);
    let untrusted = health(&d, &["--json", "health", "--url", &url, "--quick"]).code(1).json();
    assert_eq!(
        untrusted["checks"][0]["detail"],
        "TLS failure: the certificate is signed by an unknown authority (pass --cacert)"
    );
    let trusted = health(&d, &["--json", "health", "--url", &url, "--quick", "--cacert", "ca.pem"]).code(0).json();
    assert_eq!(trusted["ok"], true);
    // Over https the token cookies must be Secure: the fake's are not.
    let j = deep(&d, &url, &["--cacert", "ca.pem"]).code(1).json();
    assert_eq!(failed(&j), ["login", "refresh"]);
    assert!(j.to_string().contains("Secure"));
}

#[test]
fn watch_prints_one_line_per_run() {
    let s = Service::start(setup("", &[]));
    let mut child = s
        .dir
        .cmd()
        .args(["health", "--url", &s.base, "--quick", "--watch", "1s"])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines: Vec<String> = BufReader::new(stdout).lines().take(2).map(Result::unwrap).collect();
    child.kill().unwrap();
    child.wait().unwrap();
    for l in &lines {
        assert!(l.contains(&format!("healthy (aspjwt {}): 5 checks passed", env!("CARGO_PKG_VERSION"))), "{l}");
    }
}

/// Ctrl-C or a TERM after login waits for the logout: the run stops at the next step,
/// ends the probe session, then ends as it was asked to (review of issue 15).
#[test]
fn a_signal_after_login_still_logs_out() {
    let logouts = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let seen = logouts.clone();
    let good = fake("ok");
    let url = serve_fake(
        move |method, path, head| {
            if (method, path) == ("POST", "/api/auth/logout") {
                seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
            if (method, path) == ("GET", "/api/auth/token-info") && head.to_ascii_lowercase().contains("cookie:") {
                std::thread::sleep(Duration::from_secs(2)); // the signal arrives meanwhile
            }
            good(method, path, head)
        },
        None,
    );
    let d = Dir::new();
    let mut cmd = d.cmd();
    cmd.args(["health", "--url", &url, "--email", PROBE, "--password-env", "PROBE_PW", "--timeout", "5s"])
        .env("PROBE_PW", PASSWORD)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null());
    let mut child = cmd.spawn().unwrap();
    std::thread::sleep(Duration::from_millis(1000));
    std::process::Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    let status = child.wait().unwrap();
    use std::os::unix::process::ExitStatusExt;
    assert_eq!(status.signal(), Some(15), "it should end by the signal it was sent: {status:?}");
    assert_eq!(logouts.load(std::sync::atomic::Ordering::SeqCst), 1, "the probe session was not ended");
}

/// Runs the deep check against the fake with `quirk`; the report and the sessions it left.
fn deep_against(quirk: &'static str, extra: &[&str]) -> (Value, usize, i32) {
    let d = Dir::new();
    let (handler, sessions) = fake_sessions(quirk);
    let url = serve_fake(handler, None);
    let out = deep(&d, &url, extra);
    let open = sessions.lock().unwrap().open();
    (out.json(), open, out.code)
}

fn status_of(j: &Value, name: &str) -> String {
    field(j, name, "status")
}

/// Cookies are read as a browser keeps them: the last Set-Cookie of a name wins, and an
/// empty or expired one clears it; SameSite=None protects nothing; the cookies a refresh
/// sets are judged as the login's are (review of issue 16).
#[test]
fn cookies_are_read_as_a_browser_keeps_them() {
    let (j, open, code) = deep_against("clear_first", &[]);
    assert_eq!((code, failed(&j), open), (0, vec![], 0), "{j}");
    let (j, _, code) = deep_against("clear_after", &[]);
    assert_eq!((code, failed(&j)), (1, vec!["login".to_string()]), "{j}");
    let (j, _, code) = deep_against("samesite_none", &[]);
    assert_eq!(code, 1);
    assert_eq!(failed(&j), ["login", "refresh"], "{j}");
    assert!(j.to_string().contains("SameSite=None"), "{j}");
    let (j, _, code) = deep_against("rotated_bare", &[]);
    assert_eq!((code, failed(&j)), (1, vec!["refresh".to_string()]), "{j}");
}

/// Every session the probe was handed is ended, and a cleanup after a logout that ends
/// nothing does not claim it did (review of issue 16).
#[test]
fn every_session_the_probe_was_handed_is_ended() {
    let (j, open, code) = deep_against("replay_fork", &[]);
    assert_eq!(code, 1);
    assert_eq!(failed(&j), ["previous refresh token"], "{j}");
    assert_eq!(open, 0, "a session was left open: {j}");
    let (j, _, code) = deep_against("logout_keeps", &[]);
    assert_eq!(code, 1);
    assert_eq!(failed(&j), ["refresh after logout"], "{j}");
    assert_eq!(status_of(&j, "cleanup logout"), "warn", "{j}");
}

/// A 5xx is a failure at every step, the reuse check included; a body that stalls is
/// a failure within the timeout, not a pass (review of issue 16).
#[test]
fn server_errors_and_stalled_bodies_fail() {
    // This fake answers 503 to any refresh of a session reuse ended: both steps fail.
    let (j, _, code) = deep_against("reuse_503", &[]);
    assert_eq!(code, 1);
    assert_eq!(failed(&j), ["reuse ends the session", "refresh after logout"], "{j}");
    let t = std::time::Instant::now();
    let (j, _, code) = deep_against("stall_body", &[]);
    assert_eq!(code, 1);
    assert_eq!(failed(&j), ["GET /api/health"], "{j}");
    assert!(j["checks"][0]["detail"].as_str().unwrap().contains("timed out"), "{j}");
    assert!(t.elapsed() < Duration::from_secs(4), "took {:?}", t.elapsed());
}

/// token-info is judged field by field, in either place the token may go; /api/health's
/// body and the WWW-Authenticate scheme are read as written (review of issue 16).
#[test]
fn answers_are_judged_field_by_field() {
    for quirk in ["ti_userid_number", "ti_no_userid", "ti_seconds_string", "ti_expires_at_wrong"] {
        let (j, _, code) = deep_against(quirk, &[]);
        assert_eq!(code, 1, "{quirk}: {j}");
        assert_eq!(failed(&j), ["token-info", "token-info after refresh"], "{quirk}: {j}");
    }
    let (j, _, code) = deep_against("bearer_only", &[]);
    assert_eq!((code, failed(&j)), (0, vec![]), "{j}");
    let (j, _, _) = deep_against("www_lower", &[]);
    assert_eq!(status_of(&j, "token-info without a token"), "pass", "{j}");
    let (j, _, _) = deep_against("www_nonsense", &[]);
    assert_eq!(status_of(&j, "token-info without a token"), "warn", "{j}");
    // A backend that calls itself aspjwt gets its grace, but a replay must still be answered
    // with the token in force, not with nothing.
    let (j, open, code) = deep_against("aspjwt_spoof", &[]);
    assert_eq!(code, 1);
    assert_eq!(failed(&j), ["previous refresh token"], "{j}");
    assert_eq!(open, 0, "{j}");
}

/// -q under --watch prints nothing for a healthy run (review of issue 16).
#[test]
fn quiet_watch_prints_only_unhealthy_runs() {
    let url = serve_fake(fake("ok"), None);
    let d = Dir::new();
    let mut child = d
        .cmd()
        .args(["-q", "health", "--url", &url, "--quick", "--watch", "200ms"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(900));
    child.kill().unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.stdout.is_empty() && out.stderr.is_empty(), "{}", String::from_utf8_lossy(&out.stdout));
}

/// Second review of issue 16: what still passed that should not, and what failed that
/// should pass.
#[test]
fn second_review_of_the_deep_check() {
    // A fork's cleanup does not claim success once logout is shown to end nothing.
    let (j, _, code) = deep_against("replay_fork+logout_keeps", &[]);
    assert_eq!(code, 1);
    let cleanups: Vec<&Value> =
        j["checks"].as_array().unwrap().iter().filter(|c| c["name"] == "cleanup logout").collect();
    assert_eq!(cleanups.len(), 2, "{j}");
    assert!(cleanups.iter().all(|c| c["status"] == "warn"), "{j}");
    // A 429 at a step of the deep check leaves that promise unchecked: not healthy.
    for quirks in ["login_429", "logout_keeps+429_after_logout"] {
        let (j, _, code) = deep_against(quirks, &[]);
        assert_eq!(code, 1, "{quirks}: {j}");
        assert!(j.to_string().contains("not checked"), "{quirks}: {j}");
    }
    // A refresh that hands back the old access token did not rotate it.
    let (j, _, code) = deep_against("rot_same_access", &[]);
    assert_eq!((code, failed(&j)), (1, vec!["refresh".to_string()]), "{j}");
    // A login refused with 500 that opened a session all the same: it is ended.
    let (j, open, code) = deep_against("login_500_cookies", &[]);
    assert_eq!((code, open), (1, 0), "{j}");
    // Cookies a browser would drop leave nothing to log out with: said, not hidden.
    let (j, _, _) = deep_against("clear_after", &[]);
    assert_eq!(status_of(&j, "cleanup logout"), "warn", "{j}");
    // Shapes a Node backend may well answer: fractional seconds, numeric ids, an offset.
    for quirks in ["ti_float_seconds", "numeric_sub", "ti_offset", "www_basic_then_bearer"] {
        let (j, _, code) = deep_against(quirks, &[]);
        assert_eq!((code, failed(&j), warned(&j)), (0, vec![], vec![]), "{quirks}: {j}");
    }
    // A degraded /api/health fails, and every later step still runs.
    let (j, _, code) = deep_against("health_down", &[]);
    assert_eq!(code, 1);
    assert_eq!(failed(&j), ["GET /api/health"], "{j}");
    assert_eq!(status_of(&j, "refresh after logout"), "pass", "{j}");
}
