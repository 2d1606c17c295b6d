//! The hardened service: strict tokens, limits, CSRF, headers, roles, the gateway
//! and metrics, each against the real binary.

use std::io::{BufReader, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde_json::{Value, json};

use crate::service::{PASSWORD, Resp, Service, csrf, get, post, post_json, setup, within};

const ADMIN: &str = "admin@aspcranes.example";

fn access(r: &Resp) -> String {
    r.cookie("access_token").expect("access cookie")
}

/// Every response must carry exactly these (spelled out here: they are the contract).
pub const HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'none'",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("origin-agent-cluster", "?1"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("x-dns-prefetch-control", "off"),
    ("x-download-options", "noopen"),
    ("x-frame-options", "DENY"),
    ("x-permitted-cross-domain-policies", "none"),
    ("x-xss-protection", "0"),
];

#[track_caller]
fn assert_security_headers(r: &Resp, what: &str) {
    for (k, v) in HEADERS {
        assert_eq!(r.header(k).as_deref(), Some(*v), "{what}: {k}");
    }
    assert!(r.header("x-powered-by").is_none(), "{what}");
    assert!(r.header("server").is_none(), "{what}: no Server header");
    assert!(r.header("x-request-id").is_some(), "{what}");
}

#[test]
fn every_status_carries_the_full_header_set() {
    let s = Service::start(setup(
        "AUTH_RATE_BURST=6\nAUTH_RATE_PER_5MIN=1\n",
        &[(ADMIN, "admin"), ("s@example.com", "support")],
    ));
    let admin = s.login(ADMIN, PASSWORD);
    let support = access(&s.login("s@example.com", PASSWORD));
    let cases: Vec<(u16, Resp)> = vec![
        (200, get(&s.url("/api/health"), &[], &[])),
        (204, post(&s.url("/api/auth/logout"), &[], &[])),
        (400, post_json(&s.url("/api/auth/login"), &json!({"email": ADMIN}), &[])),
        (401, get(&s.url("/api/auth/token-info"), &[], &[])),
        (403, get(&s.url("/api/users"), &[("access_token", &support)], &[])),
        (404, get(&s.url("/api/nothing-here"), &[], &[])),
        (405, get(&s.url("/api/auth/login"), &[], &[])),
        (413, post_json(&s.url("/api/auth/login"), &json!({"email": "x", "password": "y".repeat(20_000)}), &[])),
        (415, post(&s.url("/api/auth/login"), &[], &[("content-type", "text/plain")])),
        (503, get(&s.url("/api/leads"), &[("access_token", &access(&admin))], &[])),
    ];
    for (want, r) in &cases {
        assert_eq!(r.status, *want, "{}", r.body);
        assert_security_headers(r, &want.to_string());
        if *want >= 400 {
            assert!(r.json()["error"]["code"].is_string(), "{want}: {}", r.body);
        }
    }
    // 429 last: logins, the 400, 413 and 415 above used five of the six tokens in the login bucket.
    let limited = (0..3).map(|_| s.login(ADMIN, "wrong")).find(|r| r.status == 429).expect("a 429");
    assert_security_headers(&limited, "429");
    assert!(limited.header("retry-after").unwrap().parse::<u64>().unwrap() >= 1);
    assert_eq!(limited.json()["error"]["code"], "rate_limited");
    // Everything under /api/auth and anything with personal data is not cached.
    assert_eq!(cases[3].1.header("cache-control").as_deref(), Some("no-store"));
    assert_eq!(cases[3].1.header("pragma").as_deref(), Some("no-cache"));
    assert!(cases[0].1.header("strict-transport-security").is_none(), "HSTS only in production");
}

fn forge(header: Value, claims: &Value, key: &[u8], alg: jsonwebtoken::Algorithm) -> String {
    let input =
        format!("{}.{}", URL_SAFE_NO_PAD.encode(header.to_string()), URL_SAFE_NO_PAD.encode(claims.to_string()));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &jsonwebtoken::EncodingKey::from_secret(key), alg).unwrap();
    format!("{input}.{sig}")
}

#[test]
fn attack_catalogue_of_forged_tokens() {
    let s = Service::start(setup("", &[(ADMIN, "admin")]));
    let login = s.login(ADMIN, PASSWORD);
    let good = access(&login);
    let refresh = login.cookie("refresh_token").unwrap();
    let secret =
        aspjwt::config::Settings::from_env_file(&s.dir.path(".env")).unwrap().get("JWT_SECRET").unwrap().value.clone();
    let key = secret.as_bytes();
    let part = |i: usize| good.split('.').nth(i).unwrap().to_string();
    let claims: Value = serde_json::from_slice(&URL_SAFE_NO_PAD.decode(part(1)).unwrap()).unwrap();
    let with = |k: &str, v: Value| {
        let mut c = claims.clone();
        c[k] = v;
        c
    };
    let hs256 = json!({"alg": "HS256", "typ": "JWT"});
    let now = claims["iat"].as_i64().unwrap();
    let pem = "-----BEGIN PUBLIC KEY-----\nMFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAE\n-----END PUBLIC KEY-----\n";
    let attacks: Vec<(&str, String)> = vec![
        ("alg none", format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"none","typ":"JWT"}"#), part(1))),
        ("alg None", format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"None"}"#), part(1))),
        ("alg NONE with signature", format!("{}.{}.{}", URL_SAFE_NO_PAD.encode(r#"{"alg":"NONE"}"#), part(1), part(2))),
        ("alg nOnE", format!("{}.{}.", URL_SAFE_NO_PAD.encode(r#"{"alg":"nOnE"}"#), part(1))),
        ("blank signature", format!("{}.{}.", part(0), part(1))),
        ("null signature", format!("{}.{}.null", part(0), part(1))),
        ("HS384 re-sign", forge(json!({"alg": "HS384", "typ": "JWT"}), &claims, key, jsonwebtoken::Algorithm::HS384)),
        ("HS512 re-sign", forge(json!({"alg": "HS512", "typ": "JWT"}), &claims, key, jsonwebtoken::Algorithm::HS512)),
        (
            "RS256 header, public key as HMAC secret",
            forge(json!({"alg": "RS256", "typ": "JWT"}), &claims, pem.as_bytes(), jsonwebtoken::Algorithm::HS256),
        ),
        ("public key as HMAC secret", forge(hs256.clone(), &claims, pem.as_bytes(), jsonwebtoken::Algorithm::HS256)),
        (
            "embedded jwk with attacker key",
            forge(
                json!({"alg": "HS256", "jwk": {"kty": "oct", "k": "YXR0YWNrZXI"}}),
                &claims,
                b"attacker",
                jsonwebtoken::Algorithm::HS256,
            ),
        ),
        (
            "jku pointing elsewhere",
            forge(
                json!({"alg": "HS256", "jku": "https://evil.example/jwks"}),
                &claims,
                b"attacker",
                jsonwebtoken::Algorithm::HS256,
            ),
        ),
        (
            "kid injection",
            forge(json!({"alg": "HS256", "kid": "../../dev/null"}), &claims, b"", jsonwebtoken::Algorithm::HS256),
        ),
        (
            "tampered role",
            format!("{}.{}.{}", part(0), URL_SAFE_NO_PAD.encode(with("role", json!("admin2")).to_string()), part(2)),
        ),
        (
            "expired beyond leeway",
            forge(hs256.clone(), &with("exp", json!(now - 61)), key, jsonwebtoken::Algorithm::HS256),
        ),
        ("not yet valid", forge(hs256.clone(), &with("nbf", json!(now + 120)), key, jsonwebtoken::Algorithm::HS256)),
        (
            "issued in the future",
            forge(hs256.clone(), &with("iat", json!(now + 120)), key, jsonwebtoken::Algorithm::HS256),
        ),
        (
            "wrong issuer",
            forge(hs256.clone(), &with("iss", json!("someone-else")), key, jsonwebtoken::Algorithm::HS256),
        ),
        ("wrong audience", forge(hs256.clone(), &with("aud", json!("other-app")), key, jsonwebtoken::Algorithm::HS256)),
        ("typ refresh", forge(hs256.clone(), &with("typ", json!("refresh")), key, jsonwebtoken::Algorithm::HS256)),
        (
            "no sid",
            forge(
                hs256.clone(),
                &{
                    let mut c = claims.clone();
                    c.as_object_mut().unwrap().remove("sid");
                    c
                },
                key,
                jsonwebtoken::Algorithm::HS256,
            ),
        ),
        ("refresh token as access", refresh.clone()),
    ];
    for (name, token) in &attacks {
        let r = get(&s.url("/api/auth/token-info"), &[], &[("authorization", &format!("Bearer {token}"))]);
        assert_eq!(r.status, 401, "{name} was accepted: {}", r.body);
        assert!(r.header("www-authenticate").unwrap().contains("error=\"invalid_token\""), "{name}");
    }
    // jwk/jku/kid/x5u are ignored, not trusted: a properly signed token with them still works.
    let ignored = forge(
        json!({"alg": "HS256", "kid": "x", "jku": "https://evil.example", "x5u": "https://evil.example/c"}),
        &claims,
        key,
        jsonwebtoken::Algorithm::HS256,
    );
    assert_eq!(
        get(&s.url("/api/auth/token-info"), &[], &[("authorization", &format!("Bearer {ignored}"))]).status,
        200
    );
    // Within the 60 s leeway is fine.
    let skewed = forge(hs256.clone(), &with("exp", json!(now - 30)), key, jsonwebtoken::Algorithm::HS256);
    assert_eq!(get(&s.url("/api/auth/token-info"), &[], &[("authorization", &format!("Bearer {skewed}"))]).status, 200);
    // An access token is not a refresh token; tokens in the query string are never read.
    let c = csrf(&login);
    let as_refresh =
        post(&s.url("/api/auth/refresh"), &[("refresh_token", &good), ("csrf_token", &c)], &[("x-csrf-token", &c)]);
    assert_eq!(as_refresh.status, 401);
    assert_eq!(get(&s.url(&format!("/api/auth/token-info?access_token={good}")), &[], &[]).status, 401);
    assert_eq!(get(&s.url(&format!("/api/auth/token-info?token={good}")), &[], &[]).status, 401);
}

#[test]
fn per_ip_buckets_and_trusted_proxies() {
    let s = Service::start(setup(
        "AUTH_RATE_BURST=2\nAUTH_RATE_PER_5MIN=1\nTRUSTED_PROXIES=127.0.0.1\n",
        &[(ADMIN, "admin")],
    ));
    let from = |ip: &str| vec![("x-forwarded-for", ip.to_string())];
    let login_from = |ip: &str| {
        let h = from(ip);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        let mut r = reqwest::blocking::Client::new()
            .post(s.url("/api/auth/login"))
            .json(&json!({"email": ADMIN, "password": "nope"}));
        for (k, v) in h {
            r = r.header(k, v);
        }
        r.send().unwrap().status().as_u16()
    };
    assert_eq!((login_from("198.51.100.1"), login_from("198.51.100.1"), login_from("198.51.100.1")), (401, 401, 429));
    // Another client behind the same proxy has its own bucket.
    assert_eq!(login_from("198.51.100.2"), 401);
    // The refresh bucket is separate from the login bucket.
    assert_eq!(post(&s.url("/api/auth/refresh"), &[], &[("x-forwarded-for", "198.51.100.1")]).status, 401);
    let audit = s.cli(&["--json", "audit", "--event", "rate_limited"]).code(0).rows();
    assert_eq!(audit[0]["ip"], "198.51.100.1");

    // Without TRUSTED_PROXIES, X-Forwarded-For is ignored: every spoofed address is 127.0.0.1.
    let plain = Service::start(setup("AUTH_RATE_BURST=2\nAUTH_RATE_PER_5MIN=1\n", &[]));
    let statuses: Vec<u16> = (0..3)
        .map(|i| post(&plain.url("/api/auth/refresh"), &[], &[("x-forwarded-for", &format!("203.0.113.{i}"))]).status)
        .collect();
    assert_eq!(statuses, [401, 401, 429]);
}

fn metric(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name}"))
}

#[test]
fn spraying_addresses_keeps_limiter_memory_bounded() {
    let s = Service::start(setup(
        "TRUSTED_PROXIES=127.0.0.1\nASPJWT_RATE_LIMIT_CLIENTS=500\nMETRICS_BIND=127.0.0.1:0\n",
        &[],
    ));
    let metrics_url = format!("http://{}/metrics", s.metrics_addr());
    let client = reqwest::blocking::Client::new();
    for i in 0..3000u32 {
        let ip = std::net::Ipv4Addr::from(0xC633_6400 + i); // 198.51.100.0 onwards
        let status =
            client.post(s.url("/api/auth/refresh")).header("x-forwarded-for", ip.to_string()).send().unwrap().status();
        assert_eq!(status, 401);
    }
    let text = client.get(&metrics_url).send().unwrap().text().unwrap();
    let tracked = metric(&text, "aspjwt_rate_limit_clients");
    assert!((400.0..=500.0).contains(&tracked), "tracked {tracked}");
    // The main port does not serve metrics when METRICS_BIND is set.
    assert_eq!(get(&s.url("/metrics"), &[], &[]).status, 404);
}

#[test]
fn account_lock_after_ten_failures() {
    // A roomy per-IP bucket: this test is about the per-account lock.
    let s = Service::start(setup("REFRESH_REUSE_GRACE=1s\nAUTH_RATE_BURST=1000\n", &[(ADMIN, "admin")]));
    let session = s.login(ADMIN, PASSWORD);
    for _ in 0..10 {
        assert_eq!(s.login(ADMIN, "wrong").status, 401);
    }
    // Locked: even the right password gets the generic answer.
    let locked = s.login(ADMIN, PASSWORD);
    assert_eq!(locked.status, 401);
    assert_eq!(locked.body, s.login(ADMIN, "wrong").body);
    // A lock never blocks refresh of an existing session.
    let r = s.refresh(&session.cookie("refresh_token").unwrap(), &csrf(&session));
    assert_eq!(r.status, 200);
    // Unknown emails lock the same way.
    for _ in 0..10 {
        s.login("ghost@example.com", "wrong");
    }
    let audit = s.cli(&["--json", "audit", "--event", "account_locked"]).code(0).rows();
    let emails: Vec<&str> = audit.as_array().unwrap().iter().map(|r| r["email"].as_str().unwrap()).collect();
    assert!(emails.contains(&ADMIN) && emails.contains(&"ghost@example.com"), "{emails:?}");
    // The lock ends (1 s, then 2 s, 4 s … doubling); a success resets the count.
    let ok = within(Duration::from_secs(20), || s.login(ADMIN, PASSWORD).status == 200);
    assert!(ok.is_some(), "the lock did not end");
    assert_eq!(s.login(ADMIN, "wrong").status, 401);
    assert_eq!(s.login(ADMIN, PASSWORD).status, 200, "one failure after a success must not lock");
}

#[test]
fn csrf_defences() {
    let s = Service::start(setup(
        "ALLOWED_ORIGINS=https://crm.example.com\n",
        &[(ADMIN, "admin"), ("sales@example.com", "sales_agent")],
    ));
    let l = s.login(ADMIN, PASSWORD);
    let (r, c) = (l.cookie("refresh_token").unwrap(), csrf(&l));
    assert!(l.set_cookie("csrf_token").unwrap().contains("SameSite=Strict"));
    assert!(!l.set_cookie("csrf_token").unwrap().contains("HttpOnly"), "the page must read it");
    let refresh =
        |cookies: &[(&str, &str)], headers: &[(&str, &str)]| post(&s.url("/api/auth/refresh"), cookies, headers).status;
    let both = [("refresh_token", r.as_str()), ("csrf_token", c.as_str())];
    assert_eq!(refresh(&both, &[]), 403, "no header");
    assert_eq!(refresh(&both, &[("x-csrf-token", "x.y")]), 403, "header differs from cookie");
    assert_eq!(refresh(&[("refresh_token", &r)], &[("x-csrf-token", &c)]), 403, "no cookie");
    assert_eq!(refresh(&both, &[("x-csrf-token", &c), ("sec-fetch-site", "cross-site")]), 403, "cross-site");
    assert_eq!(refresh(&both, &[("x-csrf-token", &c), ("origin", "https://evil.example")]), 403, "foreign origin");
    assert_eq!(refresh(&both, &[("x-csrf-token", &c), ("referer", "https://evil.example/x")]), 403, "foreign referer");
    // Another session's token does not fit this session.
    let other = csrf(&s.login("sales@example.com", PASSWORD));
    assert_eq!(refresh(&[("refresh_token", &r), ("csrf_token", &other)], &[("x-csrf-token", &other)]), 403);
    assert_eq!(
        refresh(&both, &[("x-csrf-token", &c), ("origin", "https://crm.example.com"), ("sec-fetch-site", "same-site")]),
        200
    );
    let audit = s.cli(&["--json", "audit", "--event", "csrf_rejected"]).code(0).rows();
    assert!(audit.as_array().unwrap().len() >= 6);

    // Unsafe cookie-authenticated requests on protected routes need it too; Bearer is exempt.
    let sales = s.login("sales@example.com", PASSWORD);
    let (sa, sc) = (access(&sales), csrf(&sales));
    assert_eq!(post(&s.url("/api/leads"), &[("access_token", &sa)], &[]).status, 403);
    assert_eq!(
        post(&s.url("/api/leads"), &[("access_token", &sa), ("csrf_token", &sc)], &[("x-csrf-token", &sc)]).status,
        503
    );
    assert_eq!(post(&s.url("/api/leads"), &[], &[("authorization", &format!("Bearer {sa}"))]).status, 503);
    assert_eq!(get(&s.url("/api/leads"), &[("access_token", &sa)], &[]).status, 503, "safe methods need no token");
    // Logout with a session cookie needs it as well.
    assert_eq!(
        post(&s.url("/api/auth/logout"), &[("refresh_token", &sales.cookie("refresh_token").unwrap())], &[]).status,
        403
    );
}

#[test]
fn methods_and_cors() {
    let s = Service::start(setup("ALLOWED_ORIGINS=https://crm.example.com,http://localhost:5173\n", &[]));
    for path in ["/api/auth/login", "/api/auth/refresh", "/api/auth/logout"] {
        let r = get(&s.url(path), &[], &[]);
        assert_eq!((r.status, r.header("allow").as_deref()), (405, Some("POST")), "{path}");
        let head = reqwest::blocking::Client::new().head(s.url(path)).send().unwrap();
        assert_eq!(head.status().as_u16(), 405);
    }
    for path in ["/api/health", "/api/health/ready"] {
        let head = reqwest::blocking::Client::new().head(s.url(path)).send().unwrap();
        assert_eq!(head.status().as_u16(), 200, "HEAD {path}");
    }
    let trace = reqwest::blocking::Client::new().request(reqwest::Method::TRACE, s.url("/api/health")).send().unwrap();
    assert_eq!(trace.status().as_u16(), 405);
    let ok = get(&s.url("/api/health"), &[], &[("origin", "https://crm.example.com")]);
    assert_eq!(ok.header("access-control-allow-origin").as_deref(), Some("https://crm.example.com"));
    assert_eq!(ok.header("access-control-allow-credentials").as_deref(), Some("true"));
    assert!(ok.header("vary").unwrap().contains("Origin"));
    let foreign = get(&s.url("/api/health"), &[], &[("origin", "https://evil.example")]);
    assert!(foreign.header("access-control-allow-origin").is_none());
    let pre = reqwest::blocking::Client::new()
        .request(reqwest::Method::OPTIONS, s.url("/api/auth/refresh"))
        .header("origin", "http://localhost:5173")
        .send()
        .unwrap();
    assert_eq!(pre.status().as_u16(), 204);
    assert!(pre.headers()["access-control-allow-headers"].to_str().unwrap().contains("X-CSRF-Token"));
    let bad = reqwest::blocking::Client::new()
        .request(reqwest::Method::OPTIONS, s.url("/api/auth/refresh"))
        .header("origin", "https://evil.example")
        .send()
        .unwrap();
    assert_eq!(bad.status().as_u16(), 403);
    // Oversized headers: 431.
    let huge = reqwest::blocking::Client::new()
        .get(s.url("/api/health"))
        .header("x-junk", "a".repeat(100_000))
        .send()
        .unwrap();
    assert_eq!(huge.status().as_u16(), 431);
}

#[test]
fn role_matrix_and_users_api() {
    let roles = [
        ("a@example.com", "admin"),
        ("s@example.com", "support"),
        ("o@example.com", "operator"),
        ("m@example.com", "sales_agent"),
    ];
    let s = Service::start(setup("", &roles));
    let tok: Vec<String> = roles.iter().map(|(e, _)| access(&s.login(e, PASSWORD))).collect();
    let call = |method: &str, path: &str, who: usize| {
        let r = reqwest::blocking::Client::new()
            .request(method.parse().unwrap(), s.url(path))
            .header("authorization", format!("Bearer {}", tok[who]))
            .header("content-type", "application/json")
            .body("{}")
            .send()
            .unwrap();
        r.status().as_u16()
    };
    // (method, path, admin, support, operator, sales): 503 = authorised, no upstream configured.
    let table = [
        ("GET", "/api/leads/7", [503, 503, 403, 503]),
        ("POST", "/api/leads", [503, 403, 403, 503]),
        ("GET", "/api/quotations", [503, 503, 403, 503]),
        ("DELETE", "/api/quotations/3", [503, 403, 403, 503]),
        ("GET", "/api/ai/suggest", [503, 403, 403, 503]),
        ("GET", "/api/jobs", [503, 503, 503, 403]),
        ("PATCH", "/api/jobs/9", [503, 403, 503, 403]),
        ("GET", "/api/users", [200, 403, 403, 403]),
    ];
    for (method, path, want) in table {
        let got: Vec<u16> = (0..4).map(|who| call(method, path, who)).collect();
        assert_eq!(got, want, "{method} {path}");
    }
    assert_eq!(get(&s.url("/api/leads"), &[], &[]).status, 401);
    let unconfigured = get(&s.url("/api/jobs"), &[], &[("authorization", &format!("Bearer {}", tok[0]))]);
    assert_eq!(unconfigured.json()["error"]["code"], "upstream_not_configured");
    // Routes outside the matrix are closed.
    assert_eq!(call("GET", "/api/billing", 0), 404);

    // The users API: the CLI's operations, the same audit events and session endings.
    let admin = [("authorization", format!("Bearer {}", tok[0]))];
    let h: Vec<(&str, &str)> = admin.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let list = get(&s.url("/api/users"), &[], &h).json();
    assert_eq!(list["users"].as_array().unwrap().len(), 4);
    assert!(!list.to_string().contains("$argon2"), "hashes are never listed (their scheme is)");
    let client = reqwest::blocking::Client::new();
    let created = client
        .post(s.url("/api/users"))
        .header("authorization", &admin[0].1)
        .json(&json!({"email": "new@example.com", "name": "New", "role": "operator"}))
        .send()
        .unwrap();
    assert_eq!(created.status().as_u16(), 201);
    let created: Value = created.json().unwrap();
    assert_eq!(created["password"].as_str().unwrap().len(), 20);
    let dup = client
        .post(s.url("/api/users"))
        .header("authorization", &admin[0].1)
        .json(&json!({"email": "NEW@example.com", "name": "x", "role": "admin"}))
        .send()
        .unwrap();
    assert_eq!(dup.status().as_u16(), 409);
    // Disabling the operator ends their session within 2 s.
    let op_id = list["users"].as_array().unwrap().iter().find(|u| u["email"] == "o@example.com").unwrap()["id"]
        .as_str()
        .unwrap()
        .to_string();
    let patched = client
        .patch(s.url(&format!("/api/users/{op_id}")))
        .header("authorization", &admin[0].1)
        .json(&json!({"disabled": true}))
        .send()
        .unwrap();
    assert_eq!(patched.status().as_u16(), 200);
    let patched: Value = patched.json().unwrap();
    assert_eq!(patched["user"]["disabled"], true);
    assert_eq!(patched["sessionsEnded"], 1);
    assert!(within(Duration::from_secs(2), || call("GET", "/api/jobs", 2) == 401).is_some());
    let role = client
        .patch(s.url(&format!("/api/users/{op_id}")))
        .header("authorization", &admin[0].1)
        .json(&json!({"role": "root"}))
        .send()
        .unwrap();
    assert_eq!(role.status().as_u16(), 400);
    let events = s.cli(&["--json", "audit", "--user", "o@example.com"]).code(0).rows();
    let names: Vec<&str> = events.as_array().unwrap().iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert!(names.contains(&"user_disabled") && names.contains(&"session_revoked"), "{names:?}");
}

/// Requests an upstream saw: head and body.
type Seen = Arc<Mutex<Vec<(String, String)>>>;

/// A tiny upstream: records each request's head and body, answers 200 with a JSON echo.
fn upstream(delay: Duration) -> (String, Seen) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(20) {
            let Ok(mut stream) = stream else { continue };
            let (head, body) = crate::util::read_request(&mut BufReader::new(stream.try_clone().unwrap()));
            log.lock().unwrap().push((head, String::from_utf8_lossy(&body).into_owned()));
            std::thread::sleep(delay);
            let reply = r#"{"from":"upstream"}"#;
            let _ = write!(
                stream,
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\nx-upstream: yes\r\ncontent-length: {}\r\n\r\n{reply}",
                reply.len()
            );
        }
    });
    (format!("http://{addr}"), seen)
}

#[test]
fn gateway_forwards_identity_and_strips_spoofing() {
    let (url, seen) = upstream(Duration::ZERO);
    let s = Service::start(setup(&format!("UPSTREAM_URL={url}\n"), &[("m@example.com", "sales_agent")]));
    let l = s.login("m@example.com", PASSWORD);
    let (a, c) = (access(&l), csrf(&l));
    let r = reqwest::blocking::Client::new()
        .post(s.url("/api/leads/42/notes?draft=1"))
        .header("cookie", format!("access_token={a}; csrf_token={c}; theme=dark"))
        .header("x-csrf-token", &c)
        .header("x-auth-role", "admin")
        .header("X-Auth-User-Id", "someone-else")
        .header("x-request-id", "spoofed")
        .header("content-type", "application/json")
        .body(r#"{"note":"call back"}"#)
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let rid = r.headers()["x-request-id"].to_str().unwrap().to_string();
    assert_eq!(r.headers()["x-upstream"], "yes");
    assert_eq!(r.text().unwrap(), r#"{"from":"upstream"}"#);
    let (head, body) = seen.lock().unwrap()[0].clone();
    let lower = head.to_ascii_lowercase();
    assert!(head.starts_with("POST /api/leads/42/notes?draft=1 HTTP/1.1"), "{head}");
    assert_eq!(body, r#"{"note":"call back"}"#);
    assert!(lower.contains("x-auth-role: sales_agent"), "{head}");
    assert!(lower.contains("x-auth-email: m@example.com"));
    assert!(lower.contains(&format!("x-request-id: {}", rid.to_ascii_lowercase())));
    assert!(lower.contains("x-auth-session-id: "));
    assert!(
        !lower.contains("someone-else") && !lower.contains("x-auth-role: admin") && !lower.contains("spoofed"),
        "{head}"
    );
    assert!(!head.contains(&a), "the access token must not reach the backend");
    assert!(lower.contains("cookie: theme=dark"), "other cookies pass: {head}");
    assert!(!lower.contains("authorization:"));
    assert!(lower.contains("x-forwarded-for: 127.0.0.1"));
}

#[test]
fn gateway_failures_are_502_and_504() {
    let closed = TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap(); // bound then dropped: refuses
    let s = Service::start(setup(&format!("UPSTREAM_URL=http://{closed}\n"), &[("m@example.com", "sales_agent")]));
    let a = access(&s.login("m@example.com", PASSWORD));
    let r = get(&s.url("/api/leads"), &[], &[("authorization", &format!("Bearer {a}"))]);
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (502, Some("upstream_unavailable")));
    assert_security_headers(&r, "502");

    let (slow, _) = upstream(Duration::from_secs(5));
    let s = Service::start(setup(
        &format!("UPSTREAM_URL={slow}\nUPSTREAM_TIMEOUT=1s\n"),
        &[("m@example.com", "sales_agent")],
    ));
    let a = access(&s.login("m@example.com", PASSWORD));
    let r = get(&s.url("/api/leads"), &[], &[("authorization", &format!("Bearer {a}"))]);
    assert_eq!((r.status, r.json()["error"]["code"].as_str()), (504, Some("upstream_timeout")));
}

#[test]
fn metrics_for_admins() {
    let s = Service::start(setup("", &[(ADMIN, "admin"), ("s@example.com", "support")]));
    let admin = access(&s.login(ADMIN, PASSWORD));
    let support = access(&s.login("s@example.com", PASSWORD));
    s.login(ADMIN, "wrong");
    assert_eq!(get(&s.url("/metrics"), &[], &[]).status, 401);
    assert_eq!(get(&s.url("/metrics"), &[("access_token", &support)], &[]).status, 403);
    let m = get(&s.url("/metrics"), &[], &[("authorization", &format!("Bearer {admin}"))]);
    assert_eq!(m.status, 200);
    assert!(m.header("content-type").unwrap().starts_with("text/plain; version=0.0.4"));
    assert_eq!(metric(&m.body, "aspjwt_logins_total{outcome=\"success\"}"), 2.0);
    assert_eq!(metric(&m.body, "aspjwt_logins_total{outcome=\"invalid_credentials\"}"), 1.0);
    assert_eq!(metric(&m.body, "aspjwt_active_sessions"), 2.0);
    assert!(metric(&m.body, "aspjwt_request_duration_seconds_count{class=\"login\"}") >= 3.0);
    for name in [
        "aspjwt_refreshes_total{outcome=\"rotated\"}",
        "aspjwt_refresh_success_ratio",
        "aspjwt_rate_limited_total",
        "aspjwt_csrf_rejected_total",
    ] {
        metric(&m.body, name);
    }
}

#[test]
fn a_new_login_ends_the_session_it_presents() {
    let s = Service::start(setup("", &[(ADMIN, "admin")]));
    let first = s.login(ADMIN, PASSWORD);
    let (a1, r1) = (access(&first), first.cookie("refresh_token").unwrap());
    let second =
        post_json(&s.url("/api/auth/login"), &json!({"email": ADMIN, "password": PASSWORD}), &[("refresh_token", &r1)]);
    assert_eq!(second.status, 200);
    assert!(
        within(Duration::from_secs(2), || get(&s.url("/api/auth/token-info"), &[("access_token", &a1)], &[]).status
            == 401)
        .is_some()
    );
    assert_eq!(get(&s.url("/api/auth/token-info"), &[("access_token", &access(&second))], &[]).status, 200);
}

/// The service's `/metrics` text, from its METRICS_BIND listener.
fn metrics_text(s: &Service) -> String {
    reqwest::blocking::get(format!("http://{}/metrics", s.metrics_addr())).unwrap().text().unwrap()
}

#[test]
fn access_tokens_need_a_live_session_of_their_user() {
    let s = Service::start(setup("METRICS_BIND=127.0.0.1:0\n", &[(ADMIN, "admin"), ("s@example.com", "support")]));
    let login = s.login(ADMIN, PASSWORD);
    let good = access(&login);
    let support = access(&s.login("s@example.com", PASSWORD));
    let secret =
        aspjwt::config::Settings::from_env_file(&s.dir.path(".env")).unwrap().get("JWT_SECRET").unwrap().value.clone();
    let claims_of = |t: &str| -> Value {
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(t.split('.').nth(1).unwrap()).unwrap()).unwrap()
    };
    let claims = claims_of(&good);
    let sign =
        |c: &Value| forge(json!({"alg": "HS256", "typ": "JWT"}), c, secret.as_bytes(), jsonwebtoken::Algorithm::HS256);
    let mut random_sid = claims.clone();
    random_sid["sid"] = json!("c2Vzc2lvbi10aGF0LW5ldmVy");
    let mut other_sub = claims.clone();
    other_sub["sub"] = claims_of(&support)["sub"].clone();
    let bearer = |t: &str| vec![("authorization", format!("Bearer {t}"))];
    let call = |path: &str, t: &str| {
        let h = bearer(t);
        let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
        get(&s.url(path), &[], &h).status
    };
    for (what, forged) in
        [("a session that never existed", sign(&random_sid)), ("another user's session", sign(&other_sub))]
    {
        for path in ["/api/auth/token-info", "/api/users", "/api/leads"] {
            assert_eq!(call(path, &forged), 401, "{what}: {path} accepted a token signed with the right secret");
        }
        assert_eq!(
            get(&s.url("/api/auth/token-info"), &[("access_token", &forged)], &[]).status,
            401,
            "{what}: cookie"
        );
    }
    assert_eq!(call("/api/users", &good), 200);
    // The steady state asks the database nothing: a known session is in memory, an
    // unknown one is looked up once and its absence remembered.
    for _ in 0..30 {
        assert_eq!(call("/api/auth/token-info", &good), 200);
        assert_eq!(call("/api/auth/token-info", &sign(&random_sid)), 401);
    }
    let lookups = metric(&metrics_text(&s), "aspjwt_session_lookups_total");
    assert!((1.0..=2.0).contains(&lookups), "{lookups} lookups for 60 requests");
    // A logged-out session's tokens, forged afresh with the secret, stay refused.
    let c = csrf(&login);
    assert_eq!(s.logout(&login.cookie("refresh_token").unwrap(), &c).status, 204);
    let mut fresh = claims.clone();
    fresh["iat"] = json!(claims["iat"].as_i64().unwrap() + 1);
    assert_eq!(call("/api/auth/token-info", &sign(&fresh)), 401);
}

#[test]
fn bearer_token_info_gives_the_sessions_refresh_expiry() {
    let s = Service::start(setup("", &[(ADMIN, "admin")]));
    let login = s.login(ADMIN, PASSWORD);
    let want = login.json()["refreshTokenExpiresAt"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {}", access(&login));
    let info = get(&s.url("/api/auth/token-info"), &[], &[("authorization", &bearer)]).json();
    assert_eq!(info["refreshTokenExpiresAt"], want.as_str(), "{info}");
    let r = s.refresh(&login.cookie("refresh_token").unwrap(), &csrf(&login));
    let want = r.json()["refreshTokenExpiresAt"].as_str().unwrap().to_string();
    let bearer = format!("Bearer {}", access(&r));
    let info = get(&s.url("/api/auth/token-info"), &[], &[("authorization", &bearer)]).json();
    assert_eq!(info["refreshTokenExpiresAt"], want.as_str(), "{info}");
}

#[test]
fn spraying_addresses_never_frees_a_limited_client() {
    let s = Service::start(setup(
        "TRUSTED_PROXIES=127.0.0.1\nASPJWT_RATE_LIMIT_CLIENTS=100\nAUTH_RATE_BURST=2\nAUTH_RATE_PER_5MIN=1\n",
        &[],
    ));
    let client = reqwest::blocking::Client::new();
    let refresh_from = |ip: &str| {
        client.post(s.url("/api/auth/refresh")).header("x-forwarded-for", ip).send().unwrap().status().as_u16()
    };
    let limited = "198.51.100.7";
    assert_eq!([refresh_from(limited), refresh_from(limited), refresh_from(limited)], [401, 401, 429]);
    for i in 0..300u32 {
        refresh_from(&std::net::Ipv4Addr::from(0xCB00_7100 + i).to_string()); // 203.0.113.0 onwards
    }
    assert_eq!(refresh_from(limited), 429, "the spray freed a client that was being limited");
}

#[test]
fn role_and_email_come_from_the_session_not_the_token() {
    let s = Service::start(setup("", &[("m@example.com", "sales_agent")]));
    let access = access(&s.login("m@example.com", PASSWORD));
    let secret =
        aspjwt::config::Settings::from_env_file(&s.dir.path(".env")).unwrap().get("JWT_SECRET").unwrap().value.clone();
    let claims: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(access.split('.').nth(1).unwrap()).unwrap()).unwrap();
    let sign =
        |c: &Value| forge(json!({"alg": "HS256", "typ": "JWT"}), c, secret.as_bytes(), jsonwebtoken::Algorithm::HS256);
    let mut admin = claims.clone();
    admin["role"] = json!("admin");
    let mut other_email = claims.clone();
    other_email["email"] = json!("ceo@example.com");
    for (what, t) in [("role", sign(&admin)), ("email", sign(&other_email))] {
        for path in ["/api/users", "/api/auth/token-info", "/api/leads"] {
            let r = get(&s.url(path), &[], &[("authorization", &format!("Bearer {t}"))]);
            assert_eq!(r.status, 401, "a token with another {what} got {} on {path}", r.status);
        }
    }
    assert_eq!(
        get(&s.url("/api/auth/token-info"), &[], &[("authorization", &format!("Bearer {}", sign(&claims)))]).status,
        200
    );
}

#[test]
fn every_x_forwarded_for_line_counts() {
    // A proxy that appends its own header line (HAProxy's `option forwardfor`) after the
    // client's: the client's line must not decide who the client is.
    let s = Service::start(setup("TRUSTED_PROXIES=127.0.0.1\nAUTH_RATE_BURST=3\nAUTH_RATE_PER_5MIN=1\n", &[]));
    let statuses: Vec<u16> = (0..6)
        .map(|i| {
            reqwest::blocking::Client::new()
                .post(s.url("/api/auth/login"))
                .header("x-forwarded-for", format!("198.51.100.{i}"))
                .header("x-forwarded-for", "203.0.113.5")
                .json(&json!({"email": "x@example.com", "password": "guess"}))
                .send()
                .unwrap()
                .status()
                .as_u16()
        })
        .collect();
    assert_eq!(statuses, [401, 401, 401, 429, 429, 429]);
    let audit = s.cli(&["--json", "audit", "--event", "login_failure"]).code(0).rows();
    assert!(audit.as_array().unwrap().iter().all(|r| r["ip"] == "203.0.113.5"), "{audit}");
    // A line with a byte that is not ASCII is still a line: its good hops count.
    let status = reqwest::blocking::Client::new()
        .post(s.url("/api/auth/login"))
        .header("x-forwarded-for", reqwest::header::HeaderValue::from_bytes(b"6.6.6.6\xff, 198.51.100.77").unwrap())
        .json(&json!({"email": "y@example.com", "password": "guess"}))
        .send()
        .unwrap()
        .status();
    assert_eq!(status, 401);
    let audit = s.cli(&["--json", "audit", "--event", "login_failure", "--user", "y@example.com"]).code(0).rows();
    assert_eq!(audit[0]["ip"], "198.51.100.77", "{audit}");
}

#[test]
fn a_login_ends_the_session_it_presents_by_any_token() {
    let s = Service::start(setup("", &[(ADMIN, "admin")]));
    for how in ["access cookie", "bearer"] {
        let first = s.login(ADMIN, PASSWORD);
        let a1 = access(&first);
        let body = json!({"email": ADMIN, "password": PASSWORD});
        let mut req = reqwest::blocking::Client::new().post(s.url("/api/auth/login")).json(&body);
        req = match how {
            "access cookie" => req.header("cookie", format!("access_token={a1}")),
            _ => req.header("authorization", format!("Bearer {a1}")),
        };
        assert_eq!(req.send().unwrap().status().as_u16(), 200);
        let ended = within(Duration::from_secs(2), || {
            get(&s.url("/api/auth/token-info"), &[("access_token", &a1)], &[]).status == 401
        });
        assert!(ended.is_some(), "{how}: the presented session lives on");
    }
}
