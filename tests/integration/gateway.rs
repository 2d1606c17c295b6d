//! The gateway in front of the CRM backend, attacked: paths that try to walk past the
//! role matrix, and headers that try to cross in either direction.

use std::io::{BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::conn::{addr, read_response};
use crate::service::{PASSWORD, Service, setup};

/// A backend that records each request line and head, and answers 200 with `extra`
/// response headers.
fn backend(extra: &'static str) -> (String, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(200) {
            let Ok(mut stream) = stream else { continue };
            let log = log.clone();
            // A thread per connection: a connection the client's pool opens and never
            // uses must not hold up the next request for the read timeout.
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
                let (head, _body) = crate::util::read_request(&mut BufReader::new(stream.try_clone().unwrap()));
                log.lock().unwrap().push(head);
                let reply = r#"{"from":"backend"}"#;
                let _ = write!(
                    stream,
                    "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\n{extra}content-length: {}\r\n\r\n{reply}",
                    reply.len()
                );
            });
        }
    });
    (format!("http://{addr}"), seen)
}

/// Sends `METHOD TARGET` byte for byte (no client-side normalisation) with a Bearer token.
fn raw(s: &Service, method: &str, target: &str, token: &str) -> crate::conn::Raw {
    let mut c = TcpStream::connect(addr(s)).unwrap();
    write!(
        c,
        "{method} {target} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    read_response(&mut c, Duration::from_secs(10), Duration::ZERO)
        .unwrap_or_else(|| panic!("{method} {target}: no answer"))
}

fn request_lines(seen: &Arc<Mutex<Vec<String>>>) -> Vec<String> {
    seen.lock().unwrap().iter().map(|h| h.lines().next().unwrap().to_string()).collect()
}

#[test]
fn dot_segments_and_encodings_cannot_walk_past_the_role_matrix() {
    let (url, seen) = backend("");
    let s = Service::start(setup(
        &format!("UPSTREAM_URL={url}\n"),
        &[("m@example.com", "sales_agent"), ("a@example.com", "admin")],
    ));
    let sales = s.login("m@example.com", PASSWORD).cookie("access_token").unwrap();
    // The review's two requests, and their relatives: each is really a jobs route,
    // which a sales agent may not use.
    for (method, target) in [
        ("POST", "/api/leads/../jobs/42/cancel"),
        ("DELETE", "/api/ai/%2E%2E/jobs/1"),
        ("DELETE", "/api/ai/%2e%2e/jobs/1"),
        ("POST", "/api/leads/.%2E/jobs/42/cancel"),
        ("GET", "/api/leads/x/../../jobs"),
        ("GET", "/api/leads/%2E/../jobs/7"),
        ("GET", "/api/quotations/../../api/jobs"),
    ] {
        let r = raw(&s, method, target, &sales);
        assert_eq!(r.status, 403, "{method} {target}: {}", r.body);
    }
    // What cannot be decided safely is refused before any auth decision.
    for target in [
        "/api/leads/x%2F..%2Fjobs",
        "/api/leads/x%2f..%2fjobs",
        "/api/leads/x%5C..%5Cjobs",
        "/api/leads/%00",
        "/api/leads/a%0Ab",
        "/api/leads/%7F",
        "/api/leads/%252E%252E/jobs",
    ] {
        let r = raw(&s, "GET", target, &sales);
        assert_eq!((r.status, r.json()["error"]["code"].as_str()), (400, Some("bad_path")), "{target}: {}", r.body);
    }
    // Segments that some backends still resolve as dot segments: `..;` (path parameters,
    // Tomcat, Spring, Jetty), overlong and fullwidth dots, dots with spaces.
    for target in [
        "/api/leads/..;/jobs",
        "/api/leads/%2e%2e;/jobs",
        "/api/leads/..%3b/jobs",
        "/api/leads/.;x/../jobs",
        "/api/leads/%c0%ae%c0%ae/jobs",
        "/api/leads/%ef%bc%8e%ef%bc%8e/jobs",
        "/api/leads/..%20/jobs",
        "/api/leads/.../jobs",
        "/api/leads/%ff/jobs",
        "/api/leads/%e2%80%a5/jobs",
        "/api/leads/%ef%b8%b0/jobs",
        "/api/leads/%e2%80%a6/jobs",
        "/api/leads/%ef%b8%99/jobs",
        "/api/leads/a%ef%bc%8fb",
    ] {
        let r = raw(&s, "GET", target, &sales);
        assert_eq!((r.status, r.json()["error"]["code"].as_str()), (400, Some("bad_path")), "{target}: {}", r.body);
    }
    // A raw backslash or control byte never gets through either (the parser may refuse it first).
    for target in ["/api/leads\\..\\jobs", "/api/leads/\x01"] {
        assert_eq!(raw(&s, "GET", target, &sales).status, 400, "{target:?}");
    }
    assert!(seen.lock().unwrap().is_empty(), "the backend was reached: {:?}", request_lines(&seen));

    // Allowed paths go through normalised: the backend gets exactly the path the matrix checked.
    for (target, forwarded) in [
        ("/api/leads/./42", "/api/leads/42"),
        ("/api/leads/%34%32?x=%2E%2E", "/api/leads/42?x=%2E%2E"),
        ("/api/leads/%7Euser/notes", "/api/leads/~user/notes"),
        ("/api/../api/leads/7", "/api/leads/7"),
        ("/api/leads/a%20b", "/api/leads/a%20b"),
        ("/api/leads/v1.2;rev=3", "/api/leads/v1.2;rev=3"),
        ("/api/leads/%C3%A9t%C3%A9", "/api/leads/%C3%A9t%C3%A9"),
    ] {
        seen.lock().unwrap().clear();
        let r = raw(&s, "GET", target, &sales);
        assert_eq!(r.status, 200, "{target}: {}", r.body);
        assert_eq!(request_lines(&seen), [format!("GET {forwarded} HTTP/1.1")], "{target}");
    }
    // The users API is reached the same way, by its normalised path only.
    let admin = s.login("a@example.com", PASSWORD).cookie("access_token").unwrap();
    assert_eq!(raw(&s, "GET", "/api/leads/../users", &admin).status, 200);
    assert_eq!(raw(&s, "GET", "/api/leads/../users", &sales).status, 403);
}

#[test]
fn backend_and_client_headers_do_not_cross() {
    let (url, seen) = backend(
        "x-powered-by: Express\r\nserver: nginx/1.25\r\nvia: 1.1 backend\r\nx-aspnet-version: 4.0\r\nset-cookie: access_token=forged; Path=/\r\nset-cookie: refresh_token=forged; Path=/api/auth\r\nset-cookie: csrf_token=forged; Path=/\r\nSet-Cookie:  Access_Token=forged\r\nset-cookie: access_token=planted; Path=/; Comment=\u{e9}\r\nset-cookie2: access_token=old-style\r\nset-cookie: =access_token=evil1; Path=/\r\nset-cookie: =refresh_token=evil6; Path=/api/auth\r\nset-cookie: csrf_token;Path=/\r\nset-cookie: \"access_token\"=evil3\r\nset-cookie:  = x; Path=/\r\nset-cookie: theme=dark; Path=/\r\ncontent-security-policy: default-src *\r\nx-frame-options: ALLOWALL\r\nreferrer-policy: unsafe-url\r\naccess-control-allow-origin: *\r\naccess-control-allow-credentials: true\r\nx-backend: kept\r\n",
    );
    let s = Service::start(setup(&format!("UPSTREAM_URL={url}\n"), &[("m@example.com", "sales_agent")]));
    let token = s.login("m@example.com", PASSWORD).cookie("access_token").unwrap();
    let r = reqwest::blocking::Client::new()
        .get(s.url("/api/leads/1"))
        .header("authorization", format!("Bearer {token}"))
        .header("forwarded", "for=6.6.6.6;host=evil.example;proto=https")
        .header("x-forwarded-host", "evil.example")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-port", "443")
        .header("x-forwarded-for", "6.6.6.6")
        .header("x-real-ip", "6.6.6.6")
        .header("x_forwarded_host", "evil.example")
        .header("x_auth_role", "admin")
        .header("cf-connecting-ip", "6.6.6.6")
        .header("x-http-method-override", "DELETE")
        .header("x-original-url", "/api/jobs/1")
        .header("x-url-scheme", "https")
        .header("front-end-https", "on")
        .header("x-original-method", "DELETE")
        .header("x-arr-ssl", "on")
        .header("x-original-uri", "/api/jobs/1")
        .header("remote-user", "admin")
        .header("x-user-id", "1")
        .header("x-authenticated-user", "admin")
        .header("x-originating-ip", "6.6.6.6")
        .header("x-envoy-external-address", "6.6.6.6")
        .header("origin", "https://not-allowed.example")
        .send()
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    for h in [
        "x-powered-by",
        "server",
        "via",
        "x-aspnet-version",
        "set-cookie2",
        "access-control-allow-origin",
        "access-control-allow-credentials",
    ] {
        assert!(r.headers().get(h).is_none(), "{h} reached the client");
    }
    // The service's own security headers, not the backend's.
    assert_eq!(r.headers()["x-frame-options"], "DENY");
    assert_eq!(r.headers()["referrer-policy"], "no-referrer");
    assert!(r.headers()["content-security-policy"].to_str().unwrap().starts_with("default-src 'none'"));
    assert_eq!(r.headers()["x-backend"], "kept");
    let cookies: Vec<String> =
        r.headers().get_all("set-cookie").iter().map(|v| v.to_str().unwrap().to_string()).collect();
    assert_eq!(cookies, ["theme=dark; Path=/"], "the backend set one of the service's cookies");
    let head = seen.lock().unwrap()[0].to_ascii_lowercase();
    for h in [
        "forwarded:",
        "x-forwarded-host:",
        "x-forwarded-port:",
        "x-real-ip:",
        "x_forwarded_host:",
        "x_auth_role:",
        "cf-connecting-ip:",
        "x-http-method-override:",
        "x-original-url:",
        "x-url-scheme:",
        "front-end-https:",
        "x-original-method:",
        "x-arr-ssl:",
        "x-original-uri:",
        "remote-user:",
        "x-user-id:",
        "x-authenticated-user:",
        "x-originating-ip:",
        "x-envoy-external-address:",
    ] {
        assert!(!head.contains(h), "{h} reached the backend:\n{head}");
    }
    assert!(!head.contains("6.6.6.6") && !head.contains("evil.example"), "{head}");
    assert!(head.contains("x-forwarded-for: 127.0.0.1\r\n"), "{head}");
    assert!(head.contains("x-forwarded-proto: http\r\n"), "{head}");
}

/// A backend whose response body is written in two parts, the second of which looks
/// like a response head; it must reach the client as body bytes, untouched.
#[test]
fn a_body_that_looks_like_a_response_head_is_left_alone() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr_b = listener.local_addr().unwrap();
    // Exactly the head hyper writes when it cannot parse a request.
    let second = b"HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\ndate: Mon, 30 Nov 2026 12:44:08 GMT\r\n\r\n";
    std::thread::spawn(move || {
        for stream in listener.incoming().take(5) {
            let Ok(mut stream) = stream else { continue };
            let mut buf = [0u8; 4096];
            let _ = stream.read(&mut buf);
            let len = 6 + second.len();
            let _ =
                write!(stream, "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {len}\r\n\r\nhello\n");
            let _ = stream.flush();
            std::thread::sleep(Duration::from_millis(300));
            let _ = stream.write_all(second);
        }
    });
    let s = Service::start(setup(&format!("UPSTREAM_URL=http://{addr_b}\n"), &[("m@example.com", "sales_agent")]));
    let token = s.login("m@example.com", PASSWORD).cookie("access_token").unwrap();
    let r = raw(&s, "GET", "/api/leads/split", &token);
    assert_eq!(r.status, 200);
    assert_eq!(r.body.as_bytes(), [b"hello\n".as_slice(), second].concat(), "the body was rewritten");
}
