//! A minimal HTTP/2 client over a raw socket (prior knowledge, no TLS), so that tests
//! control every frame a hostile or slow client sends: its windows, its streams, its
//! pace. Requests use HPACK literals only (no Huffman, no dynamic table); responses are
//! read as frames, with each stream's DATA kept.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub const DATA: u8 = 0;
pub const HEADERS: u8 = 1;
pub const SETTINGS: u8 = 4;
pub const WINDOW_UPDATE: u8 = 8;

pub fn frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len() as u32;
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&stream.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK's integer with an `n`-bit prefix, its first byte or'ed with `high`.
fn int(v: usize, n: u32, high: u8, out: &mut Vec<u8>) {
    let max = (1usize << n) - 1;
    if v < max {
        out.push(high | v as u8);
        return;
    }
    out.push(high | max as u8);
    let mut rest = v - max;
    while rest >= 128 {
        out.push((rest % 128 + 128) as u8);
        rest /= 128;
    }
    out.push(rest as u8);
}

fn string(s: &str, out: &mut Vec<u8>) {
    int(s.len(), 7, 0, out);
    out.extend_from_slice(s.as_bytes());
}

/// A request header block: `:method`, `:scheme http`, `:path`, `:authority x`, then `headers`.
pub fn request_block(method: &str, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut b = Vec::new();
    match method {
        "GET" => b.push(0x82),
        "POST" => b.push(0x83),
        other => {
            int(2, 4, 0, &mut b);
            string(other, &mut b);
        }
    }
    b.push(0x86); // :scheme http
    int(4, 4, 0, &mut b); // :path, literal without indexing
    string(path, &mut b);
    int(1, 4, 0, &mut b); // :authority
    string("x", &mut b);
    for (k, v) in headers {
        b.push(0); // literal without indexing, new name
        string(k, &mut b);
        string(v, &mut b);
    }
    b
}

/// The client preface and a SETTINGS frame with these (id, value) pairs.
pub fn preface(settings: &[(u16, u32)]) -> Vec<u8> {
    let mut out = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    let mut p = Vec::new();
    for (id, v) in settings {
        p.extend_from_slice(&id.to_be_bytes());
        p.extend_from_slice(&v.to_be_bytes());
    }
    out.extend(frame(SETTINGS, 0, 0, &p));
    out
}

pub fn headers(stream: u32, block: &[u8], end_stream: bool) -> Vec<u8> {
    frame(HEADERS, 0x4 | if end_stream { 0x1 } else { 0 }, stream, block)
}

pub fn window_update(stream: u32, increment: u32) -> Vec<u8> {
    frame(WINDOW_UPDATE, 0, stream, &increment.to_be_bytes())
}

/// What the server sent, as a background reader sees it.
#[derive(Default)]
pub struct Seen {
    /// DATA bytes per stream.
    pub data: HashMap<u32, Vec<u8>>,
    /// Streams the server ended (END_STREAM on HEADERS or DATA).
    pub ended: Vec<u32>,
    /// When the connection closed (EOF or error), counted from `Conn::open`.
    pub closed_after: Option<Duration>,
    /// HEADERS frames per stream: 1 for a response without trailers.
    pub headers: HashMap<u32, usize>,
}

pub struct Conn {
    pub out: TcpStream,
    pub seen: Arc<Mutex<Seen>>,
}

impl Conn {
    /// Connects, sends the preface with `settings`, and reads every frame in the background.
    pub fn open(addr: SocketAddr, settings: &[(u16, u32)]) -> Conn {
        let mut out = TcpStream::connect(addr).unwrap();
        out.write_all(&preface(settings)).unwrap();
        let mut input = out.try_clone().unwrap();
        let seen = Arc::new(Mutex::new(Seen::default()));
        let log = seen.clone();
        let started = Instant::now();
        std::thread::spawn(move || {
            let mut head = [0u8; 9];
            loop {
                if input.read_exact(&mut head).is_err() {
                    break;
                }
                let len = ((head[0] as usize) << 16) | ((head[1] as usize) << 8) | head[2] as usize;
                let (kind, flags) = (head[3], head[4]);
                let stream = u32::from_be_bytes([head[5], head[6], head[7], head[8]]) & 0x7fff_ffff;
                let mut payload = vec![0u8; len];
                if input.read_exact(&mut payload).is_err() {
                    break;
                }
                let mut s = log.lock().unwrap();
                if kind == DATA {
                    let pad = if flags & 0x8 != 0 { payload[0] as usize + 1 } else { 0 };
                    let body = &payload[pad.min(len)..len - pad.saturating_sub(1).min(len)];
                    s.data.entry(stream).or_default().extend_from_slice(body);
                }
                if kind == HEADERS {
                    *s.headers.entry(stream).or_default() += 1;
                }
                if (kind == DATA || kind == HEADERS) && flags & 0x1 != 0 {
                    s.ended.push(stream);
                }
            }
            log.lock().unwrap().closed_after = Some(started.elapsed());
        });
        Conn { out, seen }
    }

    /// Sends raw frames; false once the server has closed the connection.
    pub fn send(&mut self, bytes: &[u8]) -> bool {
        self.out.write_all(bytes).is_ok()
    }

    pub fn closed(&self) -> bool {
        self.seen.lock().unwrap().closed_after.is_some()
    }

    pub fn body(&self, stream: u32) -> String {
        String::from_utf8_lossy(self.seen.lock().unwrap().data.get(&stream).map_or(&[][..], |v| v)).into_owned()
    }
}
