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
use tokio::time::{Instant, Sleep};

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
        let ip = canonical(ip);
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

/// An IPv4 peer seen as `::ffff:a.b.c.d` on a dual-stack socket counts as `a.b.c.d`.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

/// Requests of one connection that are being handled; while any is, the connection
/// is not idle however long the handler takes.
#[derive(Clone, Default)]
pub struct InFlight(Arc<AtomicUsize>);

pub struct Handling(InFlight);

impl InFlight {
    pub fn start(&self) -> Handling {
        self.0.fetch_add(1, Ordering::Relaxed);
        Handling(self.clone())
    }

    fn idle(&self) -> bool {
        self.0.load(Ordering::Relaxed) == 0
    }
}

impl Drop for Handling {
    fn drop(&mut self) {
        self.0.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The socket as hyper sees it:
/// - reads end (EOF) once no byte has moved either way for `idle` and no request is
///   being handled: an idle keep-alive connection (HTTP/1 or HTTP/2) is closed;
/// - a response head written without an `x-request-id` can only come from hyper's
///   own parse-error path (every answer of the service carries one): it is replaced
///   by the service's JSON error with the security headers, and the connection ends.
pub struct Guarded<T> {
    inner: T,
    idle: Duration,
    last: Instant,
    timer: Pin<Box<Sleep>>,
    in_flight: InFlight,
    production: bool,
    /// A replacement answer still being written, and how far.
    rewrite: Option<(Vec<u8>, usize)>,
}

impl<T> Guarded<T> {
    pub fn new(inner: T, idle: Duration, in_flight: InFlight, production: bool) -> Guarded<T> {
        let last = Instant::now();
        Guarded {
            inner,
            idle,
            last,
            timer: Box::pin(tokio::time::sleep_until(last + idle)),
            in_flight,
            production,
            rewrite: None,
        }
    }

    fn touch(&mut self) {
        self.last = Instant::now();
    }

    /// True when the connection has been idle too long; otherwise arms the timer.
    fn poll_idle(&mut self, cx: &mut Context<'_>) -> bool {
        loop {
            let due = self.last + self.idle;
            if self.timer.deadline() != due {
                self.timer.as_mut().reset(due);
            }
            if self.timer.as_mut().poll(cx).is_pending() {
                return false;
            }
            if self.in_flight.idle() {
                return true;
            }
            // A handler is still at work: count from now.
            self.touch();
        }
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for Guarded<T> {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        let before = buf.filled().len();
        match Pin::new(&mut self.inner).poll_read(cx, buf) {
            Poll::Ready(r) => {
                if buf.filled().len() > before {
                    self.touch();
                }
                Poll::Ready(r)
            }
            Poll::Pending if self.poll_idle(cx) => Poll::Ready(Ok(())), // EOF: the peer went quiet
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<T: AsyncWrite + Unpin> Guarded<T> {
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
        if let Some(status) = parser_answer(buf) {
            let replacement = super::http::raw_error(status, self.production);
            self.rewrite = Some((replacement, 0));
            ready!(self.poll_rewrite(cx))?;
            return Poll::Ready(Ok(buf.len()));
        }
        let n = ready!(Pin::new(&mut self.inner).poll_write(cx, buf))?;
        if n > 0 {
            self.touch();
        }
        Poll::Ready(Ok(n))
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_rewrite(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        ready!(self.poll_rewrite(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// The status of an HTTP/1 error head that hyper wrote itself: a 4xx/5xx status line
/// whose head has no `x-request-id`.
fn parser_answer(buf: &[u8]) -> Option<StatusCode> {
    let rest = buf.strip_prefix(b"HTTP/1.1 ").or_else(|| buf.strip_prefix(b"HTTP/1.0 "))?;
    let status = StatusCode::from_bytes(rest.get(..3)?).ok()?;
    if !(status.is_client_error() || status.is_server_error()) {
        return None;
    }
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = &buf[..head_end];
    let has_id =
        head.split(|b| *b == b'\n').any(|line| line.len() >= 13 && line[..13].eq_ignore_ascii_case(b"x-request-id:"));
    (!has_id).then_some(status)
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
    fn recognises_only_the_parsers_own_error_heads() {
        let hyper_431 = b"HTTP/1.1 431 Request Header Fields Too Large\r\ncontent-length: 0\r\ndate: x\r\n\r\n";
        assert_eq!(parser_answer(hyper_431), Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE));
        let ours = b"HTTP/1.1 400 Bad Request\r\ncontent-length: 2\r\nx-request-id: abc\r\n\r\n{}";
        assert_eq!(parser_answer(ours), None);
        assert_eq!(parser_answer(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\n\r\n"), None);
        assert_eq!(parser_answer(b"\x00\x00\x04\x04\x00"), None, "HTTP/2 frames");
        assert_eq!(parser_answer(b"HTTP/1.1 400 Bad"), None, "an incomplete head");
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
    }
}
