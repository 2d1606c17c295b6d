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
    let (held, other) = stall_then_other_address(&s, 40);
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

/// `n` stalled logins from 127.0.0.1 (kept open while the result lives), then a client
/// bound to 127.0.0.2 that gives up after 3 s.
fn stall_then_other_address(s: &Service, n: usize) -> (Vec<TcpStream>, reqwest::blocking::Client) {
    let held: Vec<TcpStream> = (0..n).map(|_| stalled_login(addr(s))).collect();
    std::thread::sleep(Duration::from_millis(300));
    let other = reqwest::blocking::Client::builder()
        .local_address(Some("127.0.0.2".parse().unwrap()))
        .timeout(Duration::from_secs(3))
        .build()
        .unwrap();
    (held, other)
}

/// The issue's own example: only ASPJWT_MAX_CONNECTIONS=4, the per-address cap left at
/// its default (64). One address must still not take every slot.
#[test]
fn a_small_global_cap_still_leaves_room_for_other_addresses() {
    let s = Service::start(setup("ASPJWT_MAX_CONNECTIONS=4\nASPJWT_BODY_TIMEOUT=30s\n", &[]));
    let (held, other) = stall_then_other_address(&s, 6);
    let health = other.get(s.url("/api/health")).send().expect("/api/health from 127.0.0.2 did not answer");
    assert_eq!(health.status().as_u16(), 200);
    // The service said it lowered the per-address cap.
    let log = s.logs();
    assert!(log.contains("\"event\":\"per_ip_cap_lowered\""), "{log}");
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
    let metrics = s.metrics_addr();
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
    let metrics = s.metrics_addr();
    let mut held: Vec<TcpStream> = (0..100).map(|_| TcpStream::connect(metrics).unwrap()).collect();
    std::thread::sleep(Duration::from_millis(300));
    let closed = held.iter_mut().map(|c| closes_within(c, Duration::from_millis(20))).filter(|x| *x).count();
    assert!(closed >= 30, "only {closed} of 100 idle metrics connections were turned away");
    assert_eq!(crate::service::get(&s.url("/api/health"), &[], &[]).status, 200);
}

/// A backend on loopback: each connection's request head goes to `answer`, which writes
/// whatever it likes (at most 64 connections, each on its own thread).
fn tiny_backend(answer: impl Fn(&mut TcpStream, &str) + Send + Sync + 'static) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let answer = Arc::new(answer);
    std::thread::spawn(move || {
        for stream in listener.incoming().take(64) {
            let Ok(mut stream) = stream else { continue };
            let answer = answer.clone();
            std::thread::spawn(move || {
                stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
                let mut head = Vec::new();
                let mut byte = [0u8; 1];
                while !head.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut byte) {
                        Ok(1) => head.push(byte[0]),
                        _ => return,
                    }
                }
                answer(&mut stream, &String::from_utf8_lossy(&head));
            });
        }
    });
    format!("http://{addr}")
}

/// A service forwarding to `upstream`, with one sales agent's access token.
fn gateway_service(upstream: &str, extra: &str) -> (Service, String) {
    let s = Service::start(setup(&format!("UPSTREAM_URL={upstream}\n{extra}"), &[("m@example.com", "sales_agent")]));
    let access = s.login("m@example.com", PASSWORD).cookie("access_token").unwrap();
    (s, access)
}

/// One HTTP/2 stream whose window the client never opens, while its other streams keep
/// the connection busy with small requests: the stalled stream still costs the client
/// its connection (review of issue 14, D1).
#[test]
fn one_stalled_http2_stream_ends_the_connection_however_busy_the_others() {
    let s = Service::start(setup("ASPJWT_IDLE_TIMEOUT=1s\n", &[]));
    // SETTINGS_INITIAL_WINDOW_SIZE = 0: no stream may send DATA until given a window.
    let mut c = crate::h2::Conn::open(addr(&s), &[(4, 0)]);
    let block = crate::h2::request_block("GET", "/api/health", &[]);
    c.send(&crate::h2::headers(1, &block, true));
    let started = Instant::now();
    let mut stream = 3;
    while started.elapsed() < Duration::from_secs(8) && !c.closed() {
        // A quick request every 300 ms, given the window it needs.
        let mut next = crate::h2::headers(stream, &block, true);
        next.extend(crate::h2::window_update(stream, 65_535));
        if !c.send(&next) {
            break;
        }
        stream += 2;
        std::thread::sleep(Duration::from_millis(300));
    }
    let closed = crate::service::within(Duration::from_secs(2), || c.closed());
    assert!(closed.is_some(), "a stream that took nothing for 8 s kept its connection");
    assert!(started.elapsed() < Duration::from_secs(6), "cut only after {:?}", started.elapsed());
    assert!(stream > 5, "the other streams were served meanwhile");
}

/// A client reading a large forwarded download slowly but steadily keeps its connection,
/// on HTTP/1 and on HTTP/2 (review of issue 14, D2).
#[test]
fn slow_but_steady_readers_keep_their_connection() {
    const SIZE: usize = 192 * 1024;
    let upstream = tiny_backend(|s, _| {
        let _ = write!(
            s,
            "HTTP/1.1 200 OK\r\ncontent-type: application/octet-stream\r\ncontent-length: {SIZE}\r\nconnection: close\r\n\r\n"
        );
        let _ = s.write_all(&vec![b'x'; SIZE]);
    });
    let (s, access) = gateway_service(&upstream, "ASPJWT_IDLE_TIMEOUT=1s\n");
    // HTTP/2: the client opens 8 KiB of window every 200 ms (40 KiB/s): about 5 s in all.
    let mut c = crate::h2::Conn::open(addr(&s), &[(4, 0)]);
    let auth = format!("Bearer {access}");
    let block = crate::h2::request_block("GET", "/api/leads/export", &[("authorization", &auth)]);
    c.send(&crate::h2::headers(1, &block, true));
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(15) && !c.seen.lock().unwrap().ended.contains(&1) && !c.closed() {
        let mut grant = crate::h2::window_update(1, 8192);
        grant.extend(crate::h2::window_update(0, 8192));
        c.send(&grant);
        std::thread::sleep(Duration::from_millis(200));
    }
    let got = c.seen.lock().unwrap().data.get(&1).map_or(0, Vec::len);
    assert_eq!(got, SIZE, "HTTP/2: the slow reader was cut after {:?}", started.elapsed());
    assert!(started.elapsed() > Duration::from_secs(3), "not slow enough to test anything");

    // HTTP/1: a client with a small receive buffer reading 8 KiB every 150 ms.
    let mut h1 = small_buffer_connect(addr(&s), 8192);
    write!(h1, "GET /api/leads/export HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {access}\r\n\r\n").unwrap();
    let started = Instant::now();
    let mut got = Vec::new();
    let mut chunk = vec![0u8; 8192];
    h1.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    while started.elapsed() < Duration::from_secs(30) {
        match h1.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
        }
        if got.windows(4).position(|w| w == b"\r\n\r\n").is_some_and(|i| got.len() - i - 4 >= SIZE) {
            break;
        }
        std::thread::sleep(Duration::from_millis(150));
    }
    let body = got.windows(4).position(|w| w == b"\r\n\r\n").map_or(0, |i| got.len() - i - 4);
    assert_eq!(body, SIZE, "HTTP/1: the slow reader was cut after {:?}", started.elapsed());
}

/// A connection whose receive buffer is `bytes` from the start (set before connecting,
/// so the window it advertises is small too).
fn small_buffer_connect(to: SocketAddr, bytes: i32) -> TcpStream {
    use std::os::fd::FromRawFd;
    let SocketAddr::V4(v4) = to else { panic!("IPv4 loopback only") };
    // SAFETY: a fresh socket, configured and connected here, then owned by the TcpStream.
    unsafe {
        let fd = libc::socket(libc::AF_INET, libc::SOCK_STREAM, 0);
        assert!(fd >= 0);
        let size = bytes;
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_RCVBUF,
            &size as *const i32 as *const libc::c_void,
            std::mem::size_of::<i32>() as u32,
        );
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as u16,
            sin_port: v4.port().to_be(),
            sin_addr: libc::in_addr { s_addr: u32::from_ne_bytes(v4.ip().octets()) },
            sin_zero: [0; 8],
        };
        let rc = libc::connect(
            fd,
            &sa as *const _ as *const libc::sockaddr,
            std::mem::size_of::<libc::sockaddr_in>() as u32,
        );
        assert_eq!(rc, 0, "connect");
        TcpStream::from_raw_fd(fd)
    }
}

/// A backend that answers before reading the body (as Express does with a 401 or 404):
/// the client's trickle of the rest no longer holds the connection (review D3).
#[test]
fn a_body_trickled_after_the_backend_answered_does_not_hold_the_connection() {
    let upstream = tiny_backend(|s, _| {
        let _ = s.write_all(b"HTTP/1.1 202 Accepted\r\ncontent-length: 2\r\n\r\nok");
        // Never reads the body; keeps its end open as a lenient backend would.
        std::thread::sleep(Duration::from_secs(20));
    });
    let (s, access) = gateway_service(&upstream, "ASPJWT_BODY_TIMEOUT=1s\nASPJWT_IDLE_TIMEOUT=1s\n");
    let mut c = TcpStream::connect(addr(&s)).unwrap();
    write!(c, "POST /api/leads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {access}\r\nContent-Length: 100000\r\n\r\n0123456789").unwrap();
    let r = read_response(&mut c, Duration::from_secs(5), Duration::ZERO).expect("no answer");
    assert_eq!(r.status, 202);
    let answered = Instant::now();
    let mut writer = c.try_clone().unwrap();
    let trickle = std::thread::spawn(move || {
        for _ in 0..40 {
            if writer.write_all(b"x").is_err() {
                return;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
    });
    assert!(
        closes_within(&mut c, Duration::from_secs(8)),
        "a trickled body held the connection for 8 s after the answer"
    );
    assert!(answered.elapsed() < Duration::from_secs(6), "closed only after {:?}", answered.elapsed());
    trickle.join().unwrap();
}

/// A malformed request whose first segment is the single byte `P` (the start of the
/// HTTP/2 preface) still gets the service's JSON error with its headers (review D4).
#[test]
fn a_one_byte_first_segment_does_not_pass_for_http2() {
    let s = Service::start(setup("", &[]));
    let mut c = TcpStream::connect(addr(&s)).unwrap();
    c.set_nodelay(true).unwrap();
    c.write_all(b"P").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    c.write_all(b"OST /api/auth/login HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n").unwrap();
    let r = read_response(&mut c, Duration::from_secs(3), Duration::from_secs(2)).expect("no answer");
    assert_json_error_with_headers(&r, 400, "malformed request after a one-byte first segment");
}

/// Requests forwarded at once are capped per client address, however many HTTP/2
/// streams carry them (review D1): each holds an upstream connection.
#[test]
fn forwarded_requests_in_flight_are_capped_per_address() {
    let upstream = tiny_backend(|s, _| {
        std::thread::sleep(Duration::from_secs(2));
        let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok");
    });
    let (s, access) = gateway_service(&upstream, "ASPJWT_MAX_CONNECTIONS_PER_IP=2\n");
    let mut c = crate::h2::Conn::open(addr(&s), &[]);
    let auth = format!("Bearer {access}");
    let block = crate::h2::request_block("GET", "/api/leads", &[("authorization", &auth)]);
    for stream in [1, 3, 5] {
        c.send(&crate::h2::headers(stream, &block, true));
    }
    let done = crate::service::within(Duration::from_secs(8), || c.seen.lock().unwrap().ended.len() >= 3);
    assert!(done.is_some(), "the three streams did not all end");
    let bodies: Vec<String> = [1, 3, 5].iter().map(|&n| c.body(n)).collect();
    assert_eq!(bodies.iter().filter(|b| *b == "ok").count(), 2, "{bodies:?}");
    assert_eq!(bodies.iter().filter(|b| b.contains("upstream_busy")).count(), 1, "{bodies:?}");
}

/// Under an open-files limit too small for ASPJWT_MAX_CONNECTIONS (clients plus as many
/// forwarded requests), the service lowers it to what fits and says so, rather than
/// run out of descriptors and stop accepting everyone (review D1).
#[test]
fn the_connection_cap_fits_the_open_files_limit() {
    use std::io::BufRead;
    use std::os::unix::process::CommandExt;
    let d = setup("", &[]);
    let mut cmd = d.cmd();
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--env-file", ".env", "--db", "aspjwt.db"]);
    // SAFETY: only setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: 300, rlim_max: 300 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
        });
    }
    let mut child = cmd.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::null()).spawn().unwrap();
    let mut warned = None;
    for line in std::io::BufReader::new(child.stdout.take().unwrap()).lines().map_while(Result::ok) {
        if line.contains("\"event\":\"open_files_limit\"") {
            warned = Some(serde_json::from_str::<Value>(&line).unwrap());
        }
        if line.contains("\"event\":\"listening\"") {
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let warned = warned.expect("no open_files_limit warning under a 300-descriptor limit");
    assert_eq!(warned["max_connections"], (300 - 128) / 2, "{warned}");
    // A limit that fits fewer than four connections: one address would hold them all.
    // Refused at start, with what to do (review of issue 14).
    let mut cmd = d.cmd();
    cmd.args(["serve", "--bind", "127.0.0.1:0", "--env-file", ".env", "--db", "aspjwt.db"]);
    // SAFETY: only setrlimit between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: 132, rlim_max: 132 };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &lim) == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) }
        });
    }
    let out = crate::util::run(&mut cmd, None);
    assert_eq!(out.code, 2, "{}", out.stderr);
    assert!(out.stderr.contains("raise `ulimit -n` to 136 or more"), "{}", out.stderr);
}

/// A body with broken chunked encoding is the client's malformed request: 400 `bad_body`,
/// not 413 "over 16384 bytes" (login) nor a 502 that blames the backend (gateway).
#[test]
fn malformed_chunked_bodies_are_400() {
    let (url, _seen) = counting_upstream();
    let (s, access) = gateway_service(&url, "");
    let bad_chunks = "zz\r\n{}\r\n0\r\n\r\n";
    for (what, head) in [
        ("login", "POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n".to_string()),
        ("gateway", format!("POST /api/leads HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {access}\r\n")),
    ] {
        let mut c = TcpStream::connect(addr(&s)).unwrap();
        write!(c, "{head}Transfer-Encoding: chunked\r\n\r\n{bad_chunks}").unwrap();
        let r = read_response(&mut c, Duration::from_secs(5), Duration::ZERO).expect("no answer");
        assert_eq!(r.status, 400, "{what}: {}{}\n{}", r.head, r.body, s.logs());
        assert_json_error_with_headers(&r, 400, what);
        assert_eq!(r.json()["error"]["code"], "bad_body", "{what}: {}", r.body);
    }
    assert!(!s.logs().contains("upstream request failed"), "a client's bad body was logged as a backend failure");
}

/// A request head that stalls, or trickles in without ever ending, gets 408 with the JSON
/// error shape and the security headers when the header deadline (ASPJWT_IDLE_TIMEOUT)
/// ends it, as a stalled body does; it used to be closed with no answer at all.
#[test]
fn a_stalled_request_head_gets_408() {
    let s = Service::start(setup("ASPJWT_IDLE_TIMEOUT=1s\n", &[]));
    let mut stalled = TcpStream::connect(addr(&s)).unwrap();
    stalled.write_all(b"POST /api/auth/login HTTP/1.1\r\nHost: x\r\nContent-Type: appl").unwrap();
    let r = read_response(&mut stalled, Duration::from_secs(4), Duration::from_secs(2))
        .expect("no answer to a stalled head");
    assert_json_error_with_headers(&r, 408, "stalled head");
    assert_eq!(r.json()["error"]["code"], "request_timeout");
    // Trickled: a byte every 200 ms, never the blank line.
    let mut trickle = TcpStream::connect(addr(&s)).unwrap();
    trickle.write_all(b"GET /api/health HTTP/1.1\r\nX-A: ").unwrap();
    let writer = {
        let mut w = trickle.try_clone().unwrap();
        std::thread::spawn(move || {
            for _ in 0..15 {
                if w.write_all(b"a").is_err() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    let r = read_response(&mut trickle, Duration::from_secs(4), Duration::from_secs(2))
        .expect("no answer to a trickled head");
    assert_json_error_with_headers(&r, 408, "trickled head");
    writer.join().unwrap();
    // A keep-alive client that is quiet for most of the deadline and then takes a while
    // over its next head: the deadline counts from the head's first byte, as on a new
    // connection (review: it used to count from the previous response and answer 408).
    let mut slow = TcpStream::connect(addr(&s)).unwrap();
    slow.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut slow, Duration::from_secs(2), Duration::ZERO).expect("first").status, 200);
    std::thread::sleep(Duration::from_millis(800));
    slow.write_all(b"GET /api/health HTTP/1.1\r\n").unwrap();
    std::thread::sleep(Duration::from_millis(500));
    slow.write_all(b"Host: x\r\n\r\n").unwrap();
    let r = read_response(&mut slow, Duration::from_secs(2), Duration::ZERO).expect("second");
    assert_eq!(r.status, 200, "{}{}", r.head, r.body);
    // A keep-alive connection that goes quiet after a whole exchange is closed without one.
    let mut quiet = TcpStream::connect(addr(&s)).unwrap();
    quiet.write_all(b"GET /api/health HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let r = read_response(&mut quiet, Duration::from_secs(2), Duration::ZERO).expect("health");
    assert_eq!(r.status, 200);
    let mut rest = Vec::new();
    let _ = quiet.set_read_timeout(Some(Duration::from_secs(4)));
    let _ = std::io::Read::read_to_end(&mut quiet, &mut rest);
    assert!(rest.is_empty(), "an idle keep-alive connection got {:?}", String::from_utf8_lossy(&rest));
}

/// A backend's response trailers are headers the filter never saw (Set-Cookie,
/// X-Powered-By): HTTP/2 clients used to receive them. None reach the client now.
#[test]
fn backend_trailers_do_not_reach_http2_clients() {
    let upstream = tiny_backend(|stream, _head| {
        let _ = stream.write_all(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ntrailer: set-cookie, x-powered-by\r\n\r\n2\r\nok\r\n0\r\nset-cookie: refresh_token=trailer1\r\nx-powered-by: Express\r\n\r\n",
        );
    });
    let (s, access) = gateway_service(&upstream, "");
    let mut c = crate::h2::Conn::open(addr(&s), &[]);
    let block = crate::h2::request_block("GET", "/api/leads/1", &[("authorization", &format!("Bearer {access}"))]);
    c.send(&crate::h2::headers(1, &block, true));
    let deadline = Instant::now() + Duration::from_secs(5);
    while !c.seen.lock().unwrap().ended.contains(&1) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let seen = c.seen.lock().unwrap();
    assert!(seen.ended.contains(&1), "the stream did not end");
    assert_eq!(String::from_utf8_lossy(&seen.data[&1]), "ok");
    assert_eq!(seen.headers.get(&1), Some(&1), "a trailer HEADERS frame reached the client");
}
