//! `serve` over HTTPS (issue 21): certificates made here with rcgen (and openssl for the
//! PKCS#1 and SEC1 key forms), a real `aspjwt serve`, and clients that check what a
//! browser would: the certificate, ALPN, Secure cookies, HSTS, the redirect.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use sha2::Digest;

use crate::service::{PASSWORD, Service, setup, within};
use crate::util::Dir;

const ADMIN: &str = "admin@example.com";
const DAY: i64 = 86_400;

/// A private CA that issues leaf certificates for `localhost` and 127.0.0.1 into a folder.
struct Ca {
    issuer: Issuer<'static, KeyPair>,
    pem: String,
}

impl Ca {
    fn new() -> Ca {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "aspjwt test CA");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let pem = params.self_signed(&key).unwrap().pem();
        Ca { issuer: Issuer::new(params, key), pem }
    }

    /// Writes `{name}.crt` (leaf then CA) and `{name}.key` (PKCS#8) into `d`, valid from
    /// `from` to `to` seconds around now; returns the leaf's SHA-256 fingerprint.
    fn issue(&self, d: &Dir, name: &str, from: i64, to: i64) -> String {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()]).unwrap();
        params.distinguished_name.push(DnType::CommonName, format!("aspjwt {name}"));
        let now = time::OffsetDateTime::now_utc();
        params.not_before = now + time::Duration::seconds(from);
        params.not_after = now + time::Duration::seconds(to);
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        d.write(&format!("{name}.crt"), format!("{}{}", cert.pem(), self.pem));
        d.write(&format!("{name}.key"), key.serialize_pem());
        hex(cert.der())
    }

    /// A leaf for `d` issued by an intermediate CA valid from `from` to `to`: the chain
    /// file holds leaf, intermediate, root.
    fn issue_via_intermediate(&self, d: &Dir, name: &str, from: i64, to: i64) {
        let now = time::OffsetDateTime::now_utc();
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, "aspjwt intermediate");
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        params.not_before = now + time::Duration::seconds(from);
        params.not_after = now + time::Duration::seconds(to);
        let inter = params.signed_by(&key, &self.issuer).unwrap();
        let issuer = Issuer::new(params, key);
        let leaf_key = KeyPair::generate().unwrap();
        let leaf =
            CertificateParams::new(vec!["localhost".to_string()]).unwrap().signed_by(&leaf_key, &issuer).unwrap();
        d.write(&format!("{name}.crt"), format!("{}{}{}", leaf.pem(), inter.pem(), self.pem));
        d.write(&format!("{name}.key"), leaf_key.serialize_pem());
    }

    /// A leaf valid from a day ago for 90 days.
    fn leaf(&self, d: &Dir, name: &str) -> String {
        self.issue(d, name, -DAY, 90 * DAY)
    }
}

fn hex(der: &[u8]) -> String {
    sha2::Sha256::digest(der).iter().map(|b| format!("{b:02x}")).collect()
}

fn tls_env(cert: &str, key: &str) -> String {
    format!("ASPJWT_TLS_CERT={cert}\nASPJWT_TLS_KEY={key}\n")
}

/// A folder with a CA (`ca.pem`), a leaf `a` and a .env serving it, with one admin.
fn tls_setup(extra: &str) -> (Dir, Ca, String) {
    let ca = Ca::new();
    let d = setup(&format!("{}{extra}", tls_env("a.crt", "a.key")), &[(ADMIN, "admin")]);
    d.write("ca.pem", &ca.pem);
    let fp = ca.leaf(&d, "a");
    (d, ca, fp)
}

/// A client trusting the test CA, which reports the server's certificate.
fn client(ca: &Ca, http1: bool) -> reqwest::blocking::Client {
    let mut b = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .tls_info(true)
        .timeout(Duration::from_secs(20))
        .redirect(reqwest::redirect::Policy::none());
    if http1 {
        b = b.http1_only();
    }
    b.build().unwrap()
}

/// The fingerprint of the certificate the response came over.
fn served(resp: &reqwest::blocking::Response) -> String {
    let info = resp.extensions().get::<reqwest::tls::TlsInfo>().expect("a TLS response");
    hex(info.peer_certificate().expect("a certificate"))
}

fn set_cookies(resp: &reqwest::blocking::Response) -> Vec<String> {
    resp.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect()
}

fn cookie(cookies: &[String], name: &str) -> String {
    let line = cookies.iter().find(|c| c.starts_with(&format!("{name}="))).unwrap_or_else(|| panic!("{cookies:?}"));
    line.split(';').next().unwrap()[name.len() + 1..].to_string()
}

/// login → token-info → refresh → logout, as a browser on `version`: every cookie
/// Secure, HSTS on every answer, the certificate the CA issued.
fn round_trip(s: &Service, c: &reqwest::blocking::Client, version: reqwest::Version, fp: &str) {
    let login = c
        .post(s.url("/api/auth/login"))
        .json(&serde_json::json!({"email": ADMIN, "password": PASSWORD}))
        .send()
        .unwrap();
    assert_eq!(login.status(), 200);
    assert_eq!(login.version(), version);
    assert_eq!(served(&login), fp);
    assert_eq!(
        login.headers()["strict-transport-security"],
        "max-age=31536000; includeSubDomains",
        "HSTS without APP_ENV=production"
    );
    let cookies = set_cookies(&login);
    assert_eq!(cookies.len(), 3, "{cookies:?}");
    for c in &cookies {
        assert!(c.contains("; Secure"), "a cookie without Secure over HTTPS: {c}");
    }
    let (access, refresh, csrf) =
        (cookie(&cookies, "access_token"), cookie(&cookies, "refresh_token"), cookie(&cookies, "csrf_token"));
    let info = c.get(s.url("/api/auth/token-info")).bearer_auth(&access).send().unwrap();
    assert_eq!(info.status(), 200);
    assert!(info.headers().contains_key("strict-transport-security"));
    assert_eq!(info.json::<serde_json::Value>().unwrap()["email"], ADMIN);
    let refreshed = c
        .post(s.url("/api/auth/refresh"))
        .header("cookie", format!("refresh_token={refresh}; csrf_token={csrf}"))
        .header("x-csrf-token", &csrf)
        .send()
        .unwrap();
    assert_eq!(refreshed.status(), 200);
    let cookies = set_cookies(&refreshed);
    assert!(cookies.iter().all(|c| c.contains("; Secure")), "{cookies:?}");
    let (refresh, csrf) = (cookie(&cookies, "refresh_token"), cookie(&cookies, "csrf_token"));
    let out = c
        .post(s.url("/api/auth/logout"))
        .header("cookie", format!("refresh_token={refresh}; csrf_token={csrf}"))
        .header("x-csrf-token", &csrf)
        .send()
        .unwrap();
    assert_eq!(out.status(), 204);
    let cleared = set_cookies(&out);
    assert_eq!(cleared.len(), 3, "{cleared:?}");
    assert!(cleared.iter().all(|c| c.contains("Max-Age=0") && c.contains("; Secure")), "{cleared:?}");
}

#[test]
fn https_round_trip_over_http1_and_http2() {
    let (d, ca, fp) = tls_setup("");
    let s = Service::start(d);
    assert!(s.base.starts_with("https://127.0.0.1:"), "{}", s.base);
    round_trip(&s, &client(&ca, true), reqwest::Version::HTTP_11, &fp);
    // ALPN offers h2: a client that speaks it gets it.
    round_trip(&s, &client(&ca, false), reqwest::Version::HTTP_2, &fp);
    // `health` with the CA: the quick form and the deep check, with the certificate's expiry.
    let mut cmd = s.dir.cmd();
    cmd.args(["--json", "health", "--url", &s.base, "--cacert", "ca.pem", "--env-file", ".env"]);
    cmd.args(["--email", ADMIN, "--password-env", "PROBE_PW"]).env("PROBE_PW", PASSWORD);
    let out = crate::util::run(&mut cmd, None);
    let j = out.code(0).json();
    let cert = j["checks"].as_array().unwrap().iter().find(|c| c["name"] == "TLS certificate").unwrap().clone();
    assert_eq!(cert["status"], "pass", "{j}");
    // 90 days from the issue, read a moment later ("89d 23h", or "90d" within the second).
    assert!(
        cert["detail"].as_str().unwrap().contains("expires in 9")
            || cert["detail"].as_str().unwrap().contains("expires in 89d"),
        "{cert}"
    );
    s.dir.run(&["health", "--url", &s.base, "--quick", "--cacert", "ca.pem"]).code(0);
    // Plain http:// to the TLS port: said so.
    let plain = s.base.replace("https://", "http://");
    let j = s.dir.run(&["--json", "health", "--url", &plain, "--quick"]).code(1).json();
    assert_eq!(j["checks"][0]["detail"], "the server does not speak plain HTTP on this port (TLS? try https://)");
}

#[test]
fn pkcs1_and_sec1_keys_are_served() {
    for alg in ["rsa:2048", "ec"] {
        let d = setup(&tls_env("cert.pem", "key.pem"), &[]);
        let openssl = |args: &[&str]| {
            let out = std::process::Command::new("openssl").current_dir(d.tmp.path()).args(args).output().unwrap();
            assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        };
        let mut req = vec!["req", "-x509", "-newkey", alg];
        if alg == "ec" {
            req.extend(["-pkeyopt", "ec_paramgen_curve:P-256"]);
        }
        req.extend(["-nodes", "-days", "2", "-subj", "/CN=localhost", "-keyout", "pkcs8.pem", "-out", "cert.pem"]);
        openssl(&req);
        // The traditional forms: "RSA PRIVATE KEY" (PKCS#1) and "EC PRIVATE KEY" (SEC1).
        if alg == "ec" {
            openssl(&["ec", "-in", "pkcs8.pem", "-out", "key.pem"]);
        } else {
            openssl(&["rsa", "-in", "pkcs8.pem", "-traditional", "-out", "key.pem"]);
        }
        let marker = if alg == "ec" { "BEGIN EC PRIVATE KEY" } else { "BEGIN RSA PRIVATE KEY" };
        assert!(d.read_str("key.pem").contains(marker));
        let s = Service::start(d);
        let c = reqwest::blocking::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
        assert_eq!(c.get(s.url("/api/health")).send().unwrap().status(), 200, "{alg}");
    }
}

/// Start-up refuses a pair that cannot be served, in one line naming the file, and
/// `check` fails the same settings.
#[test]
fn unservable_pairs_are_refused_at_start_and_by_check() {
    let ca = Ca::new();
    let d = setup("", &[]);
    ca.leaf(&d, "a");
    ca.leaf(&d, "b");
    ca.issue(&d, "old", -90 * DAY, -DAY);
    ca.issue(&d, "future", DAY, 90 * DAY);
    ca.issue_via_intermediate(&d, "stale-intermediate", -90 * DAY, -DAY);
    d.write("garbage.pem", "not a certificate\n");
    // The key under a passphrase, and the chain with the CA first.
    let out = std::process::Command::new("openssl")
        .current_dir(d.tmp.path())
        .args(["pkcs8", "-topk8", "-v2", "aes-256-cbc", "-in", "a.key", "-out", "enc.key", "-passout", "pass:secret"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let a = d.read_str("a.crt");
    let leaf_end = a.find("-----END CERTIFICATE-----").unwrap() + "-----END CERTIFICATE-----\n".len();
    d.write("reversed.crt", format!("{}{}", &a[leaf_end..], &a[..leaf_end]));
    let base = d.read_str(".env");
    let cases = [
        ("ASPJWT_TLS_CERT=a.crt\n".to_string(), "ASPJWT_TLS_KEY: not set, while ASPJWT_TLS_CERT is (.env:"),
        ("ASPJWT_TLS_KEY=a.key\n".to_string(), "ASPJWT_TLS_CERT: not set, while ASPJWT_TLS_KEY is"),
        (tls_env("a.crt", "b.key"), "ASPJWT_TLS_KEY: the key in b.key does not match the certificate in a.crt"),
        (tls_env("nothere.crt", "a.key"), "ASPJWT_TLS_CERT: nothere.crt: no such file"),
        (tls_env(".", "a.key"), "ASPJWT_TLS_CERT: .: is a directory"),
        (tls_env("garbage.pem", "a.key"), "ASPJWT_TLS_CERT: garbage.pem: no PEM certificate in it"),
        (tls_env("a.crt", "a.crt"), "ASPJWT_TLS_KEY: a.crt: no PEM private key in it"),
        (tls_env("a.crt", "enc.key"), "ASPJWT_TLS_KEY: enc.key: the key is encrypted; aspjwt needs it unencrypted"),
        (
            tls_env("reversed.crt", "a.key"),
            "ASPJWT_TLS_CERT: reversed.crt: the key belongs to certificate 2 of the chain",
        ),
        (tls_env("old.crt", "old.key"), "ASPJWT_TLS_CERT: old.crt: expired 1d"),
        (tls_env("future.crt", "future.key"), "ASPJWT_TLS_CERT: future.crt: not valid before"),
        ("ASPJWT_REDIRECT_BIND=127.0.0.1:0\n".to_string(), "ASPJWT_REDIRECT_BIND: redirects to HTTPS, so it needs"),
        // Blank (as compose's ${ASPJWT_TLS_CERT:-} gives): no TLS, so nothing to redirect to.
        (format!("{}ASPJWT_REDIRECT_BIND=127.0.0.1:0\n", tls_env("", "")), "ASPJWT_REDIRECT_BIND: redirects to HTTPS"),
        // Every certificate of the chain is judged, not only the leaf.
        (
            tls_env("stale-intermediate.crt", "stale-intermediate.key"),
            "ASPJWT_TLS_CERT: stale-intermediate.crt: certificate 2 of the chain (CN=aspjwt intermediate) expired 1d",
        ),
    ];
    for (lines, said) in cases {
        d.write(".env", format!("{base}{lines}"));
        let out = d.run(&["serve", "--env-file", ".env", "--db", "t.db", "--bind", "127.0.0.1:0"]);
        out.code(2);
        let first = out.stderr.lines().next().unwrap_or_default();
        assert!(first.starts_with("aspjwt: refusing to start: ") && first.contains(said), "{lines}: {}", out.stderr);
        let check = d.run(&["--json", "check", "--env-file", ".env"]).code(1).json();
        let failed: Vec<String> = check["checks"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|c| c["status"] == "fail")
            .map(|c| format!("{}: {}", c["name"].as_str().unwrap(), c["detail"].as_str().unwrap()))
            .collect();
        assert!(failed.iter().any(|f| f.contains(said)), "check on {lines}: {failed:?}");
        assert!(!d.path("t.db").exists(), "a refused start created the database");
    }
    // Within 14 days of its end: a warning, and the service starts.
    ca.issue(&d, "soon", -DAY, 3 * DAY);
    d.write(".env", format!("{base}{}", tls_env("soon.crt", "soon.key")));
    let check = d.run(&["--json", "check", "--env-file", ".env"]).code(0).json();
    let cert = check["checks"].as_array().unwrap().iter().find(|c| c["name"] == "ASPJWT_TLS_CERT").unwrap().clone();
    assert_eq!(cert["status"], "warn", "{check}");
    let detail = cert["detail"].as_str().unwrap();
    assert!(detail.contains("expires in 3d (") || detail.contains("expires in 2d 23h"), "{cert}");
    d.run(&["check", "--strict", "--env-file", ".env"]).code(1);
    // A key every user of the machine can read is a warning of its own.
    use std::os::unix::fs::PermissionsExt;
    let key_warning = |d: &Dir| {
        let check = d.run(&["--json", "check", "--env-file", ".env"]).json();
        check["checks"].as_array().unwrap().iter().find(|c| c["name"] == "ASPJWT_TLS_KEY").cloned()
    };
    std::fs::set_permissions(d.path("soon.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let w = key_warning(&d).expect("no warning for a world-readable key");
    assert_eq!(w["status"], "warn");
    assert!(w["detail"].as_str().unwrap().contains("readable by every user"), "{w}");
    std::fs::set_permissions(d.path("soon.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(key_warning(&d), None);
    // `health` sees the same certificate served and warns; --strict makes it fail.
    d.write("ca.pem", &ca.pem);
    let s = Service::start(d);
    let j = s.dir.run(&["--json", "health", "--url", &s.base, "--quick", "--cacert", "ca.pem"]).code(0).json();
    let cert = j["checks"].as_array().unwrap().iter().find(|c| c["name"] == "TLS certificate").unwrap().clone();
    assert_eq!(cert["status"], "warn", "{j}");
    assert!(cert["detail"].as_str().unwrap().contains("renew it"), "{cert}");
    s.dir.run(&["health", "--url", &s.base, "--quick", "--cacert", "ca.pem", "--strict"]).code(1);
}

#[test]
fn sighup_swaps_the_certificate_and_open_connections_keep_theirs() {
    let (d, ca, first) = tls_setup("");
    let s = Service::start(d);
    let kept = client(&ca, true);
    assert_eq!(served(&kept.get(s.url("/api/health")).send().unwrap()), first);
    // A new pair in place of the old, then SIGHUP.
    let second = ca.leaf(&s.dir, "a");
    assert_ne!(first, second);
    s.hup();
    let fresh = || served(&client(&ca, true).get(s.url("/api/health")).send().unwrap());
    assert!(within(Duration::from_secs(5), || fresh() == second).is_some(), "the new certificate is not served");
    // The connection opened before the reload still works, on its own certificate.
    let again = kept.get(s.url("/api/health")).send().unwrap();
    assert_eq!(again.status(), 200);
    assert_eq!(served(&again), first, "the keep-alive connection was replaced");
    let rows = s.cli(&["--json", "audit", "--event", "config_reloaded"]).code(0).rows();
    let reason = rows[0]["reason"].as_str().unwrap();
    assert!(reason.contains(&format!("certificate sha256:{}", &second[..16])), "{reason}");

    // A mismatched pair is refused and audited; the certificate in service stays.
    ca.leaf(&s.dir, "b");
    s.dir.write(".env", s.dir.read_str(".env").replace("ASPJWT_TLS_KEY=a.key", "ASPJWT_TLS_KEY=b.key"));
    s.hup();
    let refused = || s.cli(&["--json", "audit", "--event", "config_reload_refused"]).rows();
    assert!(within(Duration::from_secs(5), || refused().as_array().is_some_and(|a| !a.is_empty())).is_some());
    let reason = refused()[0]["reason"].as_str().unwrap().to_string();
    assert!(reason.contains("ASPJWT_TLS_KEY: the key in b.key does not match the certificate in a.crt"), "{reason}");
    assert_eq!(fresh(), second);
    round_trip(&s, &client(&ca, false), reqwest::Version::HTTP_2, &second);
}

#[test]
fn the_redirect_listener_sends_everything_to_https() {
    let (d, ca, _) = tls_setup("ASPJWT_REDIRECT_BIND=127.0.0.1:0\n");
    let s = Service::start(d);
    let addr = s.log_event("redirect_listening")["addr"].as_str().unwrap().to_string();
    let https_port = s.base.rsplit(':').next().unwrap().to_string();
    let plain = reqwest::blocking::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    for (method, path) in
        [("GET", "/api/health?x=1"), ("POST", "/api/auth/login"), ("GET", "/api/auth/token-info"), ("GET", "/")]
    {
        let r = plain
            .request(method.parse().unwrap(), format!("http://{addr}{path}"))
            .header("host", format!("localhost:{}", addr.rsplit(':').next().unwrap()))
            .json(&serde_json::json!({"email": ADMIN, "password": PASSWORD}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 308, "{method} {path}");
        assert_eq!(r.headers()["location"], format!("https://localhost:{https_port}{path}"));
        assert!(r.headers().get("set-cookie").is_none(), "a cookie over plain HTTP");
        assert!(r.text().unwrap().is_empty());
    }
    // Following it lands on the service, which answers over TLS.
    let follow = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .build()
        .unwrap();
    let port = addr.rsplit(':').next().unwrap();
    let r = follow.get(format!("http://localhost:{port}/api/health")).send().unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.url().scheme(), "https");
    // A Host that is not a host name gets no redirect.
    let mut raw = TcpStream::connect(&addr).unwrap();
    raw.write_all(b"GET / HTTP/1.1\r\nHost: user@evil.example\r\nConnection: close\r\n\r\n").unwrap();
    let mut answer = String::new();
    raw.read_to_string(&mut answer).unwrap();
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer}");
    assert!(!answer.to_ascii_lowercase().contains("location:"), "{answer}");
}

/// Garbage, plain HTTP and stalled handshakes each cost one slot of their address and
/// nothing else: other clients are served at once, the service stays up, the failures
/// are counted and nothing is logged above debug.
#[test]
fn bad_and_stalled_handshakes_do_not_affect_others() {
    let (d, ca, _) = tls_setup("ASPJWT_MAX_CONNECTIONS_PER_IP=3\nMETRICS_BIND=127.0.0.1:0\n");
    let s = Service::start(d);
    let addr = s.base.trim_start_matches("https://").to_string();
    for junk in
        [&b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..], &[0x16, 0x03, 0x01, 0xff, 0xff, 0, 0, 0][..], &[0u8; 512][..]]
    {
        let mut c = TcpStream::connect(&addr).unwrap();
        c.set_read_timeout(Some(Duration::from_secs(15))).unwrap();
        let _ = c.write_all(junk);
        let mut rest = Vec::new();
        let _ = c.read_to_end(&mut rest);
        assert!(!String::from_utf8_lossy(&rest).contains("HTTP/1.1 200"), "served over plain TCP");
    }
    // Three handshakes that never start hold 127.0.0.1's three slots...
    let stalled: Vec<TcpStream> = (0..3).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    // ...so a fourth from that address is turned away, while another address is served.
    let mut fourth = TcpStream::connect(&addr).unwrap();
    fourth.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1];
    assert!(matches!(fourth.read(&mut buf), Ok(0) | Err(_)), "the per-address cap did not count handshakes");
    let other = reqwest::blocking::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(ca.pem.as_bytes()).unwrap())
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap();
    let t = std::time::Instant::now();
    assert_eq!(other.get(s.url("/api/health")).send().unwrap().status(), 200);
    assert!(t.elapsed() < Duration::from_secs(3), "another address waited {:?}", t.elapsed());
    // The handshake deadline frees the slots.
    assert!(
        within(Duration::from_secs(15), || client(&ca, true).get(s.url("/api/health")).send().is_ok()).is_some(),
        "stalled handshakes were never cut"
    );
    drop(stalled);
    let metrics = || reqwest::blocking::get(format!("http://{}/metrics", s.metrics_addr())).unwrap().text().unwrap();
    let failures = |text: &str| -> u64 {
        text.lines()
            .find_map(|l| l.strip_prefix("aspjwt_tls_handshake_failures_total "))
            .and_then(|v| v.parse().ok())
            .unwrap()
    };
    // Three junk connections and three stalled ones.
    assert!(within(Duration::from_secs(5), || failures(&metrics()) == 6).is_some(), "{}", metrics());
    let metrics = metrics();
    assert!(metrics.contains("aspjwt_tls_certificate_expiry_timestamp_seconds "), "no expiry gauge");
    assert!(!s.logs().contains("\"level\":\"WARN\""), "{}", s.logs());
    assert!(!s.logs().contains("\"level\":\"ERROR\""), "{}", s.logs());
}

/// `APP_ENV=production` without TLS: the service says at start that it expects a proxy.
#[test]
fn production_without_tls_warns_at_start() {
    let s = Service::start(setup("APP_ENV=production\n", &[]));
    let warning = s.log_event("no_tls");
    assert_eq!(warning["level"], "WARN");
    assert!(warning["message"].as_str().unwrap().contains("expects a TLS-terminating proxy"), "{warning}");
    let (d, _, _) = tls_setup("APP_ENV=production\n");
    let s = Service::start(d);
    assert!(!s.logs().contains("\"event\":\"no_tls\""));
}

/// A certificate that ends while the service runs must not veto the reload that rotates
/// the secrets (at 3 a.m. the operator rotates first and renews second): the pair in
/// service, unchanged, is kept with a warning.
#[test]
fn an_expired_certificate_in_service_does_not_block_a_reload() {
    let ca = Ca::new();
    let d = setup(&tls_env("a.crt", "a.key"), &[]);
    ca.issue(&d, "a", -DAY, 4);
    let s = Service::start(d);
    let insecure = reqwest::blocking::Client::builder().danger_accept_invalid_certs(true).build().unwrap();
    let keys =
        || insecure.get(s.url("/api/health")).send().unwrap().json::<serde_json::Value>().unwrap()["keys"].clone();
    let before = keys();
    std::thread::sleep(Duration::from_secs(5));
    s.dir.run(&["rotate", "--env-file", ".env", "-q"]).code(0);
    s.hup();
    assert!(
        within(Duration::from_secs(5), || keys() != before).is_some(),
        "the rotated secrets were not taken: {:?}",
        s.cli(&["--json", "audit", "--event", "config_reload_refused"]).rows()
    );
    // A different expired pair is still refused.
    ca.issue(&s.dir, "b", -2 * DAY, -DAY);
    s.dir.write(".env", s.dir.read_str(".env").replace("a.crt", "b.crt").replace("a.key", "b.key"));
    s.hup();
    let refused = || s.cli(&["--json", "audit", "--event", "config_reload_refused"]).rows();
    assert!(within(Duration::from_secs(5), || refused().as_array().is_some_and(|a| !a.is_empty())).is_some());
    assert!(refused()[0]["reason"].as_str().unwrap().contains("b.crt: expired 1d"), "{}", refused());
}

/// SIGTERM does not wait for a handshake that never comes.
#[test]
fn a_pending_handshake_does_not_hold_the_shutdown() {
    let (d, _, _) = tls_setup("");
    let mut s = Service::start(d);
    let _silent = TcpStream::connect(s.base.trim_start_matches("https://")).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let t = std::time::Instant::now();
    assert_eq!(s.terminate(), Some(0));
    assert!(t.elapsed() < Duration::from_secs(3), "shutdown took {:?}", t.elapsed());
}

/// The redirect listener keeps a busy keep-alive connection, and one address cannot
/// hold all of its connections.
#[test]
fn the_redirect_listener_keeps_busy_connections_and_caps_each_address() {
    let (d, _, _) = tls_setup("ASPJWT_REDIRECT_BIND=127.0.0.1:0\nASPJWT_IDLE_TIMEOUT=1s\n");
    let s = Service::start(d);
    let addr = s.log_event("redirect_listening")["addr"].as_str().unwrap().to_string();
    let mut c = TcpStream::connect(&addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    for i in 0..6 {
        c.write_all(format!("GET /r{i} HTTP/1.1\r\nHost: localhost\r\n\r\n").as_bytes()).unwrap();
        let mut buf = [0u8; 4096];
        let n = c.read(&mut buf).unwrap();
        let answer = String::from_utf8_lossy(&buf[..n]);
        assert!(answer.starts_with("HTTP/1.1 308"), "request {i}: {answer}");
        std::thread::sleep(Duration::from_millis(400));
    }
    let held: Vec<TcpStream> = (0..16).map(|_| TcpStream::connect(&addr).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut over = TcpStream::connect(&addr).unwrap();
    over.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let _ = over.write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n");
    let mut buf = [0u8; 64];
    assert!(matches!(over.read(&mut buf), Ok(0) | Err(_)), "a 17th connection from one address was served");
    let other = reqwest::blocking::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .local_address("127.0.0.2".parse::<std::net::IpAddr>().unwrap())
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    assert_eq!(other.get(format!("http://{addr}/")).send().unwrap().status(), 308);
    drop(held);
}

/// `aspjwt incident` reads the service's reload record; over HTTPS the record also names
/// the certificate, which must not read as a rollover left open (review of issue 21).
#[test]
fn an_incident_reload_of_an_https_service_is_recognised() {
    let (d, _, _) = tls_setup("");
    let s = Service::start(d);
    s.dir.write("svc.pid", format!("{}\n", s.pid()));
    let report = s.cli(&["--json", "incident", "--env-file", ".env", "--yes", "--pid-file", "svc.pid"]).code(0).json();
    let reload = report["steps"].as_array().unwrap().iter().find(|st| st["step"] == "reload").unwrap().clone();
    assert_eq!(reload["ok"], true, "{report}");
}
