//! Connections before and around HTTP: the per-address cap, the idle deadline, and
//! the answers the HTTP/1 parser writes on its own (a malformed request never reaches
//! a handler, yet its 400 or 431 must carry the security headers and the JSON shape
//! like every other answer).

use std::collections::HashMap;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::Sleep;

/// The per-address cap that applies under a global cap of `total`: never so high that
/// one address can hold every slot (a quarter stays for the others), whatever was
/// configured or the open-files limit left.
pub fn per_ip_cap(configured: usize, total: usize) -> usize {
    if total <= 1 { configured.min(total).max(1) } else { configured.min((total * 3 / 4).max(1)) }
}

/// Open connections per TCP peer address, capped (`ASPJWT_MAX_CONNECTIONS_PER_IP`), so
/// that one address cannot hold every slot of `ASPJWT_MAX_CONNECTIONS`.
pub struct PerIp {
    open: Mutex<HashMap<IpAddr, usize>>,
    cap: usize,
}

/// One counted connection; dropping it gives the slot back.
pub struct IpSlot {
    owner: Arc<PerIp>,
    ip: IpAddr,
}

impl PerIp {
    pub fn new(cap: usize) -> Arc<PerIp> {
        Arc::new(PerIp { open: Mutex::new(HashMap::new()), cap })
    }

    /// A slot for `ip`, or `None` when it already holds the cap.
    pub fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<IpSlot> {
        let ip = crate::net::client_key(ip);
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let n = open.entry(ip).or_insert(0);
        if *n >= self.cap {
            return None;
        }
        *n += 1;
        Some(IpSlot { owner: self.clone(), ip })
    }
}

impl Drop for IpSlot {
    fn drop(&mut self) {
        let mut open = self.owner.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = open.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The requests of one connection, counted (no clock: the idle timer reads the counts
/// when it fires):
/// - `active`: from the handler's start to the end of its response body; while any is,
///   the connection is busy however long the handler or a backend takes;
/// - `bodies`: each response body's own progress: whether it holds data the client has
///   not taken (not yet asked for, or just handed over) and how often hyper asked it for
///   more. One body that waits for its client a whole idle period means the client
///   stopped reading it (or grants its HTTP/2 stream no window): the connection is cut,
///   however busy its other streams keep it;
/// - `unflushed`: bodies that ended since the last flush (their last bytes may still
///   be on their way out);
/// - `events`: starts and ends, so that a quick request shows as activity.
#[derive(Clone, Default)]
pub struct InFlight(Arc<InFlightInner>);

#[derive(Default)]
pub struct InFlightInner {
    active: AtomicUsize,
    bodies: Mutex<Vec<Arc<BodyProgress>>>,
    unflushed: AtomicUsize,
    events: AtomicUsize,
}

/// One response body's progress (see `InFlight`).
struct BodyProgress {
    /// Unique for the process's life (an address could be reused).
    id: u64,
    polls: AtomicUsize,
    awaiting: std::sync::atomic::AtomicBool,
}

/// The largest piece of a response body handed to hyper at once. Smaller pieces make a
/// body's progress visible: hyper asks for the next one only when the last has gone out
/// (on HTTP/2, as the stream's window allows), so a slow reader still shows movement
/// every piece, and a stalled stream shows none.
const PIECE: usize = 16 * 1024;

/// One request in flight; dropped with its response body (see `Tracked`).
pub struct Handling(InFlight);

impl InFlight {
    pub fn start(&self) -> Handling {
        self.0.active.fetch_add(1, Ordering::Relaxed);
        self.0.events.fetch_add(1, Ordering::Relaxed);
        Handling(self.clone())
    }

    fn get(a: &AtomicUsize) -> usize {
        a.load(Ordering::Relaxed)
    }

    /// No request in flight and every ended body flushed.
    fn settled(&self) -> bool {
        Self::get(&self.0.active) == 0 && Self::get(&self.0.unflushed) == 0
    }

    /// The bodies waiting on the client now, each as (identity, polls so far).
    fn awaiting(&self) -> Vec<(u64, usize)> {
        let bodies = self.0.bodies.lock().unwrap_or_else(|p| p.into_inner());
        bodies
            .iter()
            .filter(|b| b.awaiting.load(Ordering::Relaxed))
            .map(|b| (b.id, b.polls.load(Ordering::Relaxed)))
            .collect()
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        let c = &self.0.0;
        c.unflushed.fetch_add(1, Ordering::Relaxed);
        c.events.fetch_add(1, Ordering::Relaxed);
        c.active.fetch_sub(1, Ordering::Relaxed);
    }
}

/// A response body that keeps its request in flight until the body is done (sent or
/// dropped), hands its data over in pieces of at most `PIECE` bytes, and tells whether
/// it waits on the client (see `InFlight`).
struct Tracked {
    inner: super::http::Body,
    handling: Handling,
    progress: Arc<BodyProgress>,
    /// The rest of a data frame larger than `PIECE`.
    rest: bytes::Bytes,
}

impl hyper::body::Body for Tracked {
    type Data = bytes::Bytes;
    type Error = super::http::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<bytes::Bytes>, Self::Error>>> {
        self.progress.polls.fetch_add(1, Ordering::Relaxed);
        let polled = if self.rest.is_empty() {
            Pin::new(&mut self.inner).poll_frame(cx)
        } else {
            Poll::Ready(Some(Ok(hyper::body::Frame::data(std::mem::take(&mut self.rest)))))
        };
        let polled = polled.map(|frame| {
            frame.map(|r| {
                r.map(|f| match f.into_data() {
                    Ok(mut data) if data.len() > PIECE => {
                        self.rest = data.split_off(PIECE);
                        hyper::body::Frame::data(data)
                    }
                    Ok(data) => hyper::body::Frame::data(data),
                    Err(other) => other,
                })
            })
        });
        // Data handed over waits on the client; a body that waits on its source does not.
        self.progress.awaiting.store(matches!(polled, Poll::Ready(Some(Ok(_)))), Ordering::Relaxed);
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.rest.is_empty() && self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        let inner = self.inner.size_hint();
        let rest = self.rest.len() as u64;
        let mut hint = hyper::body::SizeHint::new();
        hint.set_lower(inner.lower() + rest);
        if let Some(upper) = inner.upper() {
            hint.set_upper(upper + rest);
        }
        hint
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        let mut bodies = self.handling.0.0.bodies.lock().unwrap_or_else(|p| p.into_inner());
        bodies.retain(|b| !Arc::ptr_eq(b, &self.progress));
    }
}

/// `resp`, with its request in flight until its body is done.
pub fn track(resp: hyper::Response<super::http::Body>, handling: Handling) -> hyper::Response<super::http::Body> {
    use http_body_util::BodyExt;
    // Not asked for yet: it waits for the client to take it.
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    let progress = Arc::new(BodyProgress { id, polls: AtomicUsize::new(0), awaiting: true.into() });
    handling.0.0.bodies.lock().unwrap_or_else(|p| p.into_inner()).push(progress.clone());
    resp.map(|inner| Tracked { inner, handling, progress, rest: bytes::Bytes::new() }.boxed())
}

/// HTTP/2's client preface: the connection is HTTP/2 once all of it has arrived, HTTP/1
/// from the first byte that differs (however the bytes are split across reads).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// The socket as hyper sees it:
/// - the connection ends once it has been idle for an `idle` period: no request in
///   flight and, on HTTP/1, no byte read or written (bytes of a request's headers
///   count); on HTTP/2 control frames (PING, SETTINGS) do not count, only requests do;
/// - and once one response has waited a whole period for a client that takes none of it
///   (stopped reading, or grants its HTTP/2 stream no window), however the connection's
///   other streams keep it warm. On HTTP/1 a response is moving while bytes are written
///   (a slow reader keeps its connection); on HTTP/2 while hyper asks its body for the
///   next piece (see `PIECE`);
/// - activity is counted, not timed: the timer looks when it fires, so this happens
///   after one to two periods (HTTP/1's header deadline, `idle` from a head's first byte,
///   is exact: the timer is set for it).
///   Reads then end (EOF) and writes fail;
/// - on HTTP/1, hyper's own answer to a request it could not parse (exactly its
///   `connection: close`, `content-length: 0`, `date` head, with no request in flight and
///   every response flushed) is replaced by the service's JSON error with the security
///   headers.
pub struct Guarded<T: AsyncWrite + Unpin> {
    inner: T,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
    in_flight: InFlight,
    /// HTTP/1 byte activity, counted.
    moved: u64,
    /// Bytes written to the socket.
    written: u64,
    /// (`moved`, request events, `written`) when the timer last fired.
    seen: (u64, usize, u64),
    /// The bodies that waited on the client when the timer last fired, with their polls.
    seen_awaiting: Vec<(u64, usize)>,
    /// How much of `H2_PREFACE` the first bytes matched, while undecided.
    preface_matched: usize,
    /// The connection was found idle or stalled: it is ending.
    expired: bool,
    production: bool,
    /// None until the first bytes arrive.
    http2: Option<bool>,
    /// A replacement answer still being written, and how far.
    rewrite: Option<(Vec<u8>, usize)>,
    /// HTTP/1: bytes of a request head arrived while no request was in flight, when
    /// `events` stood at this count. Still equal when the connection ends: the head never
    /// became a request (it stalled, trickled past the header deadline, or was cut).
    head_pending: Option<usize>,
    /// When the first byte of that head arrived: the head must be whole within `idle` of
    /// it (not of the previous response, as hyper's own header timer counts on a reused
    /// connection, which turned a quiet keep-alive client's next request into a 408).
    head_started: Option<tokio::time::Instant>,
}

impl<T: AsyncWrite + Unpin> Guarded<T> {
    pub fn new(inner: T, idle: Duration, in_flight: InFlight, production: bool) -> Guarded<T> {
        Guarded {
            inner,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
            seen: (0, InFlight::get(&in_flight.0.events), 0),
            seen_awaiting: Vec::new(),
            preface_matched: 0,
            in_flight,
            moved: 0,
            written: 0,
            expired: false,
            production,
            http2: None,
            rewrite: None,
            head_pending: None,
            head_started: None,
        }
    }

    /// Byte activity: it keeps HTTP/1 connections alive, never HTTP/2 ones.
    fn touch(&mut self) {
        if self.http2 != Some(true) {
            self.moved = self.moved.wrapping_add(1);
        }
    }

    /// True once the connection is idle or stalled (see the type); otherwise keeps the
    /// timer armed (moved only when it fires: once per period, not per request).
    fn poll_expired(&mut self, cx: &mut Context<'_>) -> bool {
        while !self.expired {
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            let c = &self.in_flight.0;
            // A request head that is not whole within `idle` of its first byte, however
            // it trickles: the connection ends (and is answered 408 as it drops).
            let head_late = self.head_pending == Some(InFlight::get(&c.events))
                && self.in_flight.settled()
                && self.head_started.is_some_and(|t| t.elapsed() >= self.idle);
            if head_late {
                self.expired = true;
                break;
            }
            let now = (self.moved, InFlight::get(&c.events), self.written);
            let awaiting = self.in_flight.awaiting();
            // A body that waited on the client at the last tick and has not been asked
            // for more since: it waited the whole period.
            let stalled = awaiting.iter().any(|b| self.seen_awaiting.contains(b));
            self.expired = if !awaiting.is_empty() {
                // On HTTP/1 one response is on the wire at a time: bytes going out are its.
                stalled && (self.http2 == Some(true) || now.2 == self.seen.2)
            } else if InFlight::get(&c.active) > 0 {
                false // a handler, or a body waiting on its source
            } else {
                now.0 == self.seen.0 && now.1 == self.seen.1
            };
            self.seen = now;
            self.seen_awaiting = awaiting;
            let mut due = tokio::time::Instant::now() + self.idle;
            // (Settled and pending here means the head is not yet late: were it, the
            // check above would have ended the connection, so this is in the future.)
            if self.head_pending == Some(now.1)
                && self.in_flight.settled()
                && let Some(started) = self.head_started
            {
                due = due.min(started + self.idle); // a head's deadline, exactly
            }
            self.timer.as_mut().reset(due);
        }
        true
    }

    fn gone() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::TimedOut, "the client took nothing for the idle timeout")
    }
}

impl<T: AsyncRead + AsyncWrite + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        if self.expired {
            return Poll::Ready(Ok(())); // EOF
        }
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                let got = &buf.filled()[before..];
                if !got.is_empty() {
                    if self.http2.is_none() {
                        let at = self.preface_matched;
                        let n = got.len().min(H2_PREFACE.len() - at);
                        if got[..n] != H2_PREFACE[at..at + n] {
                            self.http2 = Some(false);
                        } else if at + n == H2_PREFACE.len() {
                            self.http2 = Some(true);
                        } else {
                            self.preface_matched = at + n;
                        }
                    }
                    self.touch();
                    if self.http2 == Some(false) && self.in_flight.settled() {
                        let events = InFlight::get(&self.in_flight.0.events);
                        if self.head_pending != Some(events) {
                            self.head_pending = Some(events);
                            self.head_started = Some(tokio::time::Instant::now());
                            // Checked at exactly the head's deadline, not a period later.
                            let due = tokio::time::Instant::now() + self.idle;
                            if due < self.timer.deadline() {
                                self.timer.as_mut().reset(due);
                            }
                        }
                    }
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.poll_expired(cx) => Poll::Ready(Ok(())), // EOF: the peer went quiet
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> Guarded<T> {
    /// Counts what a write to the socket moved (the progress a slow reader shows); a
    /// write still waiting when the connection is found stalled fails it.
    fn after_write(&mut self, cx: &mut Context<'_>, r: Poll<std::io::Result<usize>>) -> Poll<std::io::Result<usize>> {
        match r {
            Poll::Ready(Ok(n)) => {
                if n > 0 {
                    self.touch();
                    self.written = self.written.wrapping_add(n as u64);
                }
                Poll::Ready(Ok(n))
            }
            Poll::Pending if self.poll_expired(cx) => Poll::Ready(Err(Self::gone())),
            other => other,
        }
    }

    /// Writes what is left of a replacement answer.
    fn poll_rewrite(&mut self, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        while let Some((bytes, done)) = &mut self.rewrite {
            if *done == bytes.len() {
                break;
            }
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*done..]))?;
            if n == 0 {
                return Poll::Ready(Err(std::io::ErrorKind::WriteZero.into()));
            }
            *done += n;
        }
        Poll::Ready(Ok(()))
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Guarded<T> {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        if self.rewrite.is_some() {
            // The parser's answer was replaced and the connection is ending: swallow the rest.
            ready!(self.poll_rewrite(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        if self.expired {
            return Poll::Ready(Err(Self::gone()));
        }
        if self.http2 == Some(false)
            && self.in_flight.settled()
            && let Some(status) = parser_answer(buf)
        {
            let replacement = super::http::raw_error(status, self.production);
            self.rewrite = Some((replacement, 0));
            ready!(self.poll_rewrite(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        let r = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.after_write(cx, r)
    }

    /// Vectored writes pass through (hyper then needs not copy bodies into one buffer);
    /// the parser's answer is one head in one slice, checked as in `poll_write`.
    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let mut filled = bufs.iter().filter(|b| !b.is_empty());
        if let (Some(only), None) = (filled.next(), filled.next())
            && (self.rewrite.is_some() || (self.http2 == Some(false) && self.in_flight.settled()))
        {
            return self.poll_write(cx, only);
        }
        if self.expired {
            return Poll::Ready(Err(Self::gone()));
        }
        let r = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.after_write(cx, r)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_rewrite(cx))?;
        match Pin::new(&mut self.inner).poll_flush(cx) {
            Poll::Ready(Ok(())) => {
                // Everything written so far is out: ended bodies are fully sent.
                self.in_flight.0.unflushed.store(0, Ordering::Relaxed);
                Poll::Ready(Ok(()))
            }
            Poll::Pending if self.poll_expired(cx) => Poll::Ready(Err(Self::gone())),
            other => other,
        }
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_rewrite(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// hyper ends a connection whose request head missed the header deadline without a
/// word (and drops it). The service answers it as it answers a stalled body: 408 with
/// the JSON error shape and the security headers, written once, best effort, without
/// waiting (the socket is idle, so its buffer has room; a peer that is gone just drops it).
impl<T: AsyncWrite + Unpin> Drop for Guarded<T> {
    fn drop(&mut self) {
        let unanswered = self.http2 == Some(false)
            && self.rewrite.is_none()
            && self.in_flight.settled()
            && self.head_pending == Some(InFlight::get(&self.in_flight.0.events));
        if unanswered {
            let bytes = super::http::raw_error(StatusCode::REQUEST_TIMEOUT, self.production);
            let mut cx = Context::from_waker(std::task::Waker::noop());
            let _ = Pin::new(&mut self.inner).poll_write(&mut cx, &bytes);
        }
    }
}

/// The status of the answer hyper writes itself to a request it could not parse:
/// `HTTP/1.1 400|414|431 …` with exactly `connection: close`, `content-length: 0` and
/// `date`, and nothing after the head. Every answer of the service's own has more
/// headers (at least `x-request-id`), so none is mistaken for it.
fn parser_answer(buf: &[u8]) -> Option<StatusCode> {
    let rest = buf.strip_prefix(b"HTTP/1.1 ").or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let status = StatusCode::from_bytes(rest.get(..3)?).ok()?;
    if !matches!(status.as_u16(), 400 | 414 | 431) {
        return None;
    }
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    if head_end + 4 != buf.len() {
        return None;
    }
    let mut names: Vec<Vec<u8>> = buf[..head_end]
        .split(|b| *b == b'\n')
        .skip(1)
        .map(|line| line.split(|b| *b == b':').next().unwrap_or_default().trim_ascii().to_ascii_lowercase())
        .collect();
    names.sort();
    let canned = [b"connection".to_vec(), b"content-length".to_vec(), b"date".to_vec()];
    let zero = buf[..head_end].windows(17).any(|w| w.eq_ignore_ascii_case(b"content-length: 0"));
    (names == canned && zero).then_some(status)
}

/// Answers a connection turned away at accept (over the per-address cap) with a 503 in
/// the JSON shape, then reads what the client sent for a moment before closing, so
/// that the kernel sends FIN rather than a reset that could discard the answer.
pub async fn refuse(mut stream: tokio::net::TcpStream, production: bool) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let answer = super::http::raw_error(StatusCode::SERVICE_UNAVAILABLE, production);
    let _ = tokio::time::timeout(Duration::from_millis(500), async {
        stream.write_all(&answer).await?;
        stream.shutdown().await?;
        let mut sink = [0u8; 4096];
        while stream.read(&mut sink).await? > 0 {}
        Ok::<_, std::io::Error>(())
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_address_never_holds_every_slot() {
        assert_eq!(per_ip_cap(64, 4), 3);
        assert_eq!(per_ip_cap(64, 2), 1);
        assert_eq!(per_ip_cap(64, 1), 1);
        assert_eq!(per_ip_cap(64, 1024), 64);
        assert_eq!(per_ip_cap(4, 8), 4);
        assert_eq!(per_ip_cap(100_000, 64), 48);
    }

    #[test]
    fn recognises_only_the_parsers_own_error_heads() {
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\nconnection: close\r\ncontent-length: 0\r\ndate: Mon, 30 Nov 2026 12:44:08 GMT\r\n\r\n";
        assert_eq!(parser_answer(hyper_431), Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\nx-request-id: abc\r\n\r\n{}";
        assert_eq!(parser_answer(ours), None);
        assert_eq!(parser_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"), None);
        assert_eq!(parser_answer(b"\x00\x00\x04\x04\x00"), None, "HTTP/2 frames");
        assert_eq!(parser_answer(b"HTTP/1.1 400 Bad"), None, "an incomplete head");
        // Body bytes that merely look like a head (a backend's page) are left alone.
        assert_eq!(parser_answer(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n"), None);
        let trailing = [hyper_431.as_slice(), b"more"].concat();
        assert_eq!(parser_answer(&trailing), None);
    }

    #[test]
    fn the_cap_counts_each_address_and_gives_slots_back() {
        let p = PerIp::new(2);
        let a: IpAddr = "127.0.0.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:127.0.0.1".parse().unwrap();
        let s1 = p.acquire(a).unwrap();
        let _s2 = p.acquire(mapped).unwrap();
        assert!(p.acquire(a).is_none(), "an IPv4-mapped address is the same peer");
        assert!(p.acquire("127.0.0.2".parse().unwrap()).is_some());
        drop(s1);
        assert!(p.acquire(a).is_some());
        // One IPv6 host with its own /64 is one address, whatever its interface id.
        let v6 = PerIp::new(1);
        let _held = v6.acquire("2001:db8:1:2::1".parse().unwrap()).unwrap();
        assert!(v6.acquire("2001:db8:1:2:ffff::9".parse().unwrap()).is_none());
        assert!(v6.acquire("2001:db8:1:3::1".parse().unwrap()).is_some());
    }
}
