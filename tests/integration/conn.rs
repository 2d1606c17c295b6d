//! Connections as a hostile client holds them: stalled bodies, idle keep-alive
//! connections, one address taking every slot, and requests so malformed that the HTTP
//! parser answers them itself. Raw sockets, so the tests control every byte.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::hardening::HEADERS;
use crate::service::{PASSWORD, Service, setup};

/// A response read off a raw socket, and whether the server closed the connection after it.
pub struct Raw {
    pub status: u16,
    pub head: String,
    pub body: String,
    pub closed: bool,
}

impl Raw {
    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().skip(1).find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then(|| v.trim().to_string())
        })
    }

    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {:?}\n{}", self.body, self.head))
    }
}

pub fn addr(s: &Service) -> SocketAddr {
    s.base.trim_start_matches("http://").parse().unwrap()
}

/// Reads one response (head and a Content-Length body) within `limit`, then whether
/// the server closes the connection within `close_within`. `None`: no response in time.
pub fn read_response(stream: &mut TcpStream, limit: Duration, close_within: Duration) -> Option<Raw> {
    let deadline = Instant::now() + limit;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        let left = deadline.checked_duration_since(Instant::now())?;
        stream.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(_) => return None,
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let status = head.split(' ').nth(1)?.parse().ok()?;
    let mut raw = Raw { status, head, body: String::new(), closed: false };
    let len: usize = raw.header("content-length").and_then(|v| v.parse().ok()).unwrap_or(0);
    let mut body = buf[head_end..].to_vec();
    while body.len() < len {
        let left = deadline.checked_duration_since(Instant::now())?;
        stream.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => body.extend_from_slice(&chunk[..n]),
        }
    }
    raw.body = String::from_utf8_lossy(&body[..len]).into_owned();
    raw.closed = closes_within(stream, close_within);
    Some(raw)
}

/// Whether the peer closes the connection (EOF or reset) within `limit`.
pub fn closes_within(stream: &mut TcpStream, limit: Duration) -> bool {
    let deadline = Instant::now() + limit;
    let mut chunk = [0u8; 4096];
    loop {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else { return false };
        stream.set_read_timeout(Some(left.max(Duration::from_millis(1)))).unwrap();
        match stream.read(&mut chunk) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                return false;
            }
            Err(_) => return true,
        }
    }
}

/// A login whose headers promise 100 body bytes and whose body stops after 4.
fn stalled_login(addr: SocketAddr) -> TcpStream {
    let mut s = TcpStream::connect(addr).unwrap();
    s.write_all(
        b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"em",
    )
    .unwrap();
    s
}

#[track_caller]
fn assert_json_error_with_headers(r: &Raw, status: u16, what: &str) {
    assert_eq!(r.status, status, "{what}:\n{}{}", r.head, r.body);
    for (k, v) in HEADERS {
        assert_eq!(r.header(k).as_deref(), Some(*v), "{what}: {k}\n{}", r.head);
    }
    assert!(r.header("x-request-id").is_some(), "{what}: x-request-id\n{}", r.head);
    assert!(r.header("content-type").unwrap_or_default().starts_with("application/json"), "{what}\n{}", r.head);
    assert!(r.json()["error"]["code"].is_string(), "{what}: {}", r.body);
    assert!(r.json()["error"]["message"].is_string(), "{what}: {}", r.body);
}

#[test]
fn a_stalled_body_gets_408_and_the_connection_closes() {
    let s = Service::start(setup("ASPJWT_BODY_TIMEOUT=1s\n", &[]));
    let started = Instant::now();
    let mut c = stalled_login(addr(&s));
    let r = read_response(&mut c, Duration::from_secs(6), Duration::from_secs(3))
        .expect("no answer to a stalled body within 6 s");
    assert_json_error_with_headers(&r, 408, "stalled body");
    assert_eq!(r.json()["error"]["code"], "request_timeout");
    assert!(r.closed, "the connection stays open after the 408");
    assert!(started.elapsed() >= Duration::from_millis(900), "answered before the deadline");
}

#[test]
fn stalled_connections_from_one_address_leave_room_for_others() {
    let s = Service::start(setup(
        "ASPJWT_MAX_CONNECTIONS=8\nASPJWT_MAX_CONNECTIONS_PER_IP=4\nASPJWT_BODY_TIMEOUT=30s\n",
        &[("a@example.com", "admin")],
    ));
    // Far more stalled logins from 127.0.0.1 than there are slots.
    let held: Vec<TcpStream> = (0..40).map(|_| stalled_login(addr(&s))).collect();
    std::thread::sleep(Duration::from_millis(300));
    let other = reqwest::blocking::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    let started = Instant::now();
    let health = other.get(s.url("/api/health")).send().expect("/api/health from 127.0.0.2 did not answer");
    assert_eq!(health.status().as_u16(), 200);
    assert!(started.elapsed() < Duration::from_secs(2), "took {:?}", started.elapsed());
    // 127.0.0.2 may log in while 127.0.0.1 holds its four.
    let login = other
        .post(s.url("/api/auth/login"))
        .json(&serde_json::json!({"email": "a@example.com", "password": PASSWORD}))
        .send()
        .unwrap();
    assert_eq!(login.status().as_u16(), 200);
    // The connections past the per-address cap were turned away with the JSON shape.
    let mut extra = TcpStream::connect(addr(&s)).unwrap();
    extra.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_response(&mut extra, Duration::from_secs(3), Duration::from_secs(2)).expect("no answer past the cap");
    assert_json_error_with_headers(&r, 503, "over the per-address cap");
    assert_eq!(r.json()["error"]["code"], "too_many_connections");
    assert!(r.closed);
    drop(held);
}

/// A tiny upstream that reads each request's whole body (however slowly it comes)
/// and answers 200 with the number of bytes it got; a body that never completes is
/// recorded as `None`.
fn counting_upstream() -> (String, Arc<Mutex<Vec<Option<usize>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(10) {
            let Ok(mut stream) = stream else { continue };
            let log = log.clone();
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                let got = loop {
                    if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..i]).to_ascii_lowercase();
                        let len: usize = head
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:").map(|v| v.trim().parse().unwrap()))
                            .unwrap_or(0);
                        if buf.len() - (i + 4) >= len {
                            break Some(len);
                        }
                    }
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break None,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                };
                log.lock().unwrap().push(got);
                if let Some(n) = got {
                    let reply = format!("{{\"got\":{n}}}");
                    let _ = write!(
                        stream,
                        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{reply}",
                        reply.len()
                    );
                }
            });
        }
    });
    (format!("http://{addr}"), seen)
}

#[test]
fn forwarded_bodies_get_an_idle_deadline_not_a_total_one() {
    let (url, seen) = counting_upstream();
    let s = Service::start(setup(
        &format!("UPSTREAM_URL={url}\nASPJWT_BODY_TIMEOUT=1s\n"),
        &[("m@example.com", "sales_agent")],
    ));
    let access = s.login("m@example.com", PASSWORD).cookie("access_token").unwrap();
    let send_head = |len: usize| {
        let mut c = TcpStream::connect(addr(&s)).unwrap();
        write!(
            c,
            "POST /api/leads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {access}\r\nContent-Type: application/octet-stream\r\nContent-Length: {len}\r\n\r\n"
        )
        .unwrap();
        c
    };
    // A slow body that never pauses for a whole second: forwarded in full, though it
    // takes three times the deadline.
    let mut slow = send_head(60);
    for _ in 0..6 {
        slow.write_all(b"0123456789").unwrap();
        std::thread::sleep(Duration::from_millis(500));
    }
    let r = read_response(&mut slow, Duration::from_secs(5), Duration::ZERO).expect("no answer to a slow body");
    assert_eq!((r.status, r.body.as_str()), (200, "{\"got\":60}"), "{}", r.head);
    // A body that stops: 408 within about a second of the last byte, and the connection closes.
    let mut stalled = send_head(1000);
    stalled.write_all(b"0123456789").unwrap();
    let started = Instant::now();
    let r = read_response(&mut stalled, Duration::from_secs(6), Duration::from_secs(3))
        .expect("no answer to a stalled forwarded body within 6 s");
    assert_json_error_with_headers(&r, 408, "stalled forwarded body");
    assert!(r.closed, "the connection stays open after the 408");
    assert!(started.elapsed() < Duration::from_secs(4), "{:?}", started.elapsed());
    assert!(within_secs(3, || seen.lock().unwrap().contains(&None)), "the upstream never saw the request end");
}

fn within_secs(secs: u64, mut f: impl FnMut() -> bool) -> bool {
    crate::service::within(Duration::from_secs(secs), &mut f).is_some()
}

#[test]
fn idle_keep_alive_connections_are_closed() {
    let s = Service::start(setup("ASPJWT_IDLE_TIMEOUT=1s\n", &[]));
    // HTTP/1.1: one request, then silence.
    let mut c = TcpStream::connect(addr(&s)).unwrap();
    c.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_response(&mut c, Duration::from_secs(3), Duration::from_secs(4)).unwrap();
    assert_eq!(r.status, 200);
    assert!(r.closed, "an idle HTTP/1.1 connection stays open");
    // HTTP/2 (prior knowledge): the preface and an empty SETTINGS frame, then silence.
    let mut h2 = TcpStream::connect(addr(&s)).unwrap();
    h2.write_all(H2_PREFACE).unwrap();
    assert!(closes_within(&mut h2, Duration::from_secs(4)), "an idle HTTP/2 connection stays open");
    // HTTP/2 with a PING every 300 ms and no request: still idle, still closed.
    let mut pinger = TcpStream::connect(addr(&s)).unwrap();
    pinger.write_all(H2_PREFACE).unwrap();
    let mut w = pinger.try_clone().unwrap();
    let keep = std::thread::spawn(move || {
        for _ in 0..20 {
            if w.write_all(b"\x00\x00\x08\x06\x00\x00\x00\x00\x00pingping").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    assert!(closes_within(&mut pinger, Duration::from_secs(4)), "PING frames keep an idle HTTP/2 connection open");
    keep.join().unwrap();
}

/// The HTTP/2 client preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\x00\x00\x00\x04\x00\x00\x00\x00\x00";

#[test]
fn a_trusted_proxy_is_not_held_to_the_per_address_cap() {
    // Behind a reverse proxy every connection comes from the proxy: the per-address
    // cap would cap the whole site. The proxy's clients are limited by the rate limits.
    let s = Service::start(setup("TRUSTED_PROXIES=127.0.0.1\nASPJWT_MAX_CONNECTIONS_PER_IP=2\n", &[]));
    let held: Vec<TcpStream> = (0..5).map(|_| stalled_login(addr(&s))).collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut c = TcpStream::connect(addr(&s)).unwrap();
    c.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
    let r = read_response(&mut c, Duration::from_secs(3), Duration::ZERO).expect("no answer");
    assert_eq!(r.status, 200, "{}", r.body);
    drop(held);
}

#[test]
fn responses_the_parser_makes_carry_the_headers_and_the_json_shape() {
    let s = Service::start(setup("METRICS_BIND=127.0.0.1:0\n", &[]));
    let send_to = |to: SocketAddr, bytes: &[u8]| {
        let mut c = TcpStream::connect(to).unwrap();
        c.write_all(bytes).unwrap();
        read_response(&mut c, Duration::from_secs(5), Duration::from_secs(2)).expect("no answer")
    };
    let metrics: SocketAddr = s
        .logs()
        .lines()
        .find(|l| l.contains("metrics_listening"))
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["addr"].as_str().unwrap().parse().unwrap())
        .unwrap();
    let on_metrics = send_to(metrics, b"GET /metrics HTTP/1.1\r\nHost: x\r\nX-Note: a\x01b\r\n\r\n");
    assert_json_error_with_headers(&on_metrics, 400, "the metrics listener");
    let send = |bytes: &[u8]| {
        let mut c = TcpStream::connect(addr(&s)).unwrap();
        c.write_all(bytes).unwrap();
        read_response(&mut c, Duration::from_secs(5), Duration::from_secs(2)).expect("no answer")
    };
    let control = send(b"GET /api/health HTTP/1.1\r\nHost: x\r\nX-Note: a\x01b\r\n\r\n");
    assert_json_error_with_headers(&control, 400, "control character in a header value");
    assert!(control.closed);
    let huge = format!("GET /api/health HTTP/1.1\r\nHost: x\r\nX-Junk: {}\r\n\r\n", "a".repeat(70_000));
    let huge = send(huge.as_bytes());
    assert_json_error_with_headers(&huge, 431, "70 KB header");
    let bad_method = send(b"G\x01T /api/health HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_json_error_with_headers(&bad_method, 400, "bad method");
    // The service is still fine afterwards.
    let ok = send(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
    assert_eq!(ok.status, 200);
}

/// A client that stops reading its answers (HTTP/1 pipelining into a full socket) or
/// grants no HTTP/2 flow-control window holds a connection with no request being
/// worked on: it loses it after the idle deadline, and its slot goes to the next one.
#[test]
fn a_client_that_takes_no_bytes_loses_its_connection() {
    let s = Service::start(setup("ASPJWT_MAX_CONNECTIONS_PER_IP=1\nASPJWT_IDLE_TIMEOUT=1s\n", &[]));
    let health_from_here = || {
        let mut c = TcpStream::connect(addr(&s)).unwrap();
        c.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").unwrap();
        read_response(&mut c, Duration::from_secs(2), Duration::ZERO).map(|r| r.status)
    };
    // HTTP/1: thousands of pipelined requests whose answers are never read.
    let mut h1 = TcpStream::connect(addr(&s)).unwrap();
    let many = "GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n".repeat(20_000);
    let writer = std::thread::spawn(move || {
        let _ = h1.write_all(many.as_bytes());
        std::thread::sleep(Duration::from_secs(8));
        drop(h1);
    });
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(health_from_here(), Some(503), "the reader-less connection holds the address's one slot");
    let freed = crate::service::within(Duration::from_secs(6), || health_from_here() == Some(200));
    assert!(freed.is_some(), "a client that reads nothing keeps its connection");
    writer.join().unwrap();

    // HTTP/2 with an initial window of 0: the answer's body can never be sent.
    let mut h2 = TcpStream::connect(addr(&s)).unwrap();
    let mut hello = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    hello.extend_from_slice(b"\x00\x00\x06\x04\x00\x00\x00\x00\x00\x00\x04\x00\x00\x00\x00"); // SETTINGS: INITIAL_WINDOW_SIZE = 0
    let block: Vec<u8> = [&b"\x82\x86\x44\x0b/api/health\x41\x01x"[..]].concat(); // GET http /api/health, authority x
    hello.extend_from_slice(&[0, 0, block.len() as u8, 0x01, 0x05, 0, 0, 0, 1]); // HEADERS, END_STREAM|END_HEADERS, stream 1
    hello.extend_from_slice(&block);
    h2.write_all(&hello).unwrap();
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(health_from_here(), Some(503), "the window-0 connection holds the slot");
    assert!(closes_within(&mut h2, Duration::from_secs(5)), "a client that grants no window keeps its connection");
    assert_eq!(health_from_here(), Some(200));
}

#[test]
fn the_metrics_listener_has_a_connection_cap() {
    let s = Service::start(setup("METRICS_BIND=127.0.0.1:0\n", &[]));
    let metrics: SocketAddr = s
        .logs()
        .lines()
        .find(|l| l.contains("metrics_listening"))
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["addr"].as_str().unwrap().parse().unwrap())
        .unwrap();
    let mut held: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(metrics).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let closed = held.iter_mut().map(|c| closes_within(c, Duration::from_millis(20))).filter(|x| *x).count();
    assert!(closed >= 30, "only {closed} of 100 idle metrics connections were turned away");
    assert_eq!(crate::service::get(&s.url("/api/health"), &[], &[]).status, 200);
}
