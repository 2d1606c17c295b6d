//! One accepted connection, plain or TLS, served until it ends; and the plain-HTTP
//! listener that sends browsers to HTTPS (`ASPJWT_REDIRECT_BIND`).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use hyper::header::{self, HeaderValue};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::Watcher;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{AppState, Body, conn, http};

/// What one connection holds until it closes: its place under the global cap and, for
/// an address that is not a trusted proxy, under its address's cap. Held from the
/// accept, through the TLS handshake, to the last byte.
pub struct Slots {
    pub global: OwnedSemaphorePermit,
    pub per_ip: Option<conn::IpSlot>,
    /// The graceful shutdown's watch on this connection (taken at the accept, so a
    /// shutdown cannot slip between the accept and the first request).
    pub watcher: Watcher,
}

/// How the main listener's connections are served.
#[derive(Clone)]
pub struct Serving {
    pub builder: auto::Builder<TokioExecutor>,
    pub tls: Option<tokio_rustls::TlsAcceptor>,
    /// Turns true when the service stops: handshakes in progress are dropped.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    pub idle: std::time::Duration,
    /// Raw answers (the parser's 400, a timeout's 408) carry HSTS when true.
    pub secure: bool,
}

/// Serves one accepted connection: the TLS handshake first (bounded by
/// `tls::HANDSHAKE_TIMEOUT`, and failing quietly: a port scanner or plain HTTP sent to
/// the TLS port is no event worth a log line), then HTTP/1.1 or HTTP/2.
pub async fn serve(state: Arc<AppState>, serving: Serving, stream: TcpStream, peer: SocketAddr, slots: Slots) {
    let _ = stream.set_nodelay(true);
    let Slots { global, per_ip, watcher } = slots;
    match &serving.tls {
        None => serve_io(state, &serving, stream, peer, watcher).await,
        Some(acceptor) => {
            let mut stopping = serving.stopping.clone();
            let handshake = tokio::time::timeout(crate::tls::HANDSHAKE_TIMEOUT, acceptor.accept(stream));
            let done = tokio::select! {
                done = handshake => done,
                _ = stopping.wait_for(|stop| *stop) => return,
            };
            match done {
                Ok(Ok(tls)) => serve_io(state, &serving, tls, peer, watcher).await,
                Ok(Err(e)) => {
                    state.metrics.tls_handshake_failed();
                    tracing::debug!(peer = %peer.ip(), error = %e, "TLS handshake failed");
                }
                Err(_) => {
                    state.metrics.tls_handshake_failed();
                    tracing::debug!(peer = %peer.ip(), "TLS handshake timed out");
                }
            }
        }
    }
    drop((global, per_ip));
}

async fn serve_io<I>(state: Arc<AppState>, serving: &Serving, io: I, peer: SocketAddr, watcher: Watcher)
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let in_flight = conn::InFlight::default();
    let busy = in_flight.clone();
    let svc = service_fn(move |req| {
        let st = state.clone();
        let handling = busy.start();
        async move { Ok::<_, Infallible>(conn::track(super::handle(st, req, peer).await, handling)) }
    });
    let io = TokioIo::new(conn::Guarded::new(io, serving.idle, in_flight, serving.secure));
    let conn = serving.builder.serve_connection_with_upgrades(io, svc);
    let _ = watcher.watch(conn.into_owned()).await;
}

/// Connections the redirect listener serves at once, and per client address: a browser
/// makes one or two.
const REDIRECT_CONNECTIONS: usize = 256;
const REDIRECT_PER_ADDRESS: usize = 16;

/// Answers every request on the plain-HTTP port with 308 to the same path and query on
/// HTTPS: never the API, never a cookie. The host is the request's own; the port is
/// the TLS listener's when the request named one (`localhost:8080` →
/// `localhost:8443`), else none (port 80 maps to 443, as behind Docker's `80:8080`).
pub async fn redirect(
    listener: TcpListener,
    https_port: u16,
    idle: std::time::Duration,
    trusted_proxies: Vec<crate::net::Net>,
) {
    let slots = Arc::new(Semaphore::new(REDIRECT_CONNECTIONS));
    let per_ip = conn::PerIp::new(REDIRECT_PER_ADDRESS);
    loop {
        let Ok((stream, peer)) = listener.accept().await else { continue };
        // A trusted proxy carries everyone's connections: only the global cap holds it.
        let trusted = trusted_proxies.iter().any(|n| n.contains(peer.ip()));
        let address = if trusted { Some(None) } else { per_ip.acquire(peer.ip()).map(Some) };
        let (Some(address), Ok(slot)) = (address, slots.clone().try_acquire_owned()) else {
            drop(stream);
            continue;
        };
        let in_flight = conn::InFlight::default();
        let io = TokioIo::new(conn::Guarded::new(stream, idle, in_flight.clone(), false));
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<hyper::body::Incoming>| {
                // Counted like the main listener's requests, so the idle deadline sees them.
                let handling = in_flight.start();
                async move { Ok::<_, Infallible>(conn::track(redirect_response(&req, https_port), handling)) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .max_buf_size(16 * 1024)
                .serve_connection(io, svc)
                .await;
            drop((slot, address));
        });
    }
}

/// The 308 for one request (400 when its Host is not a host name or address).
pub fn redirect_response<B>(req: &Request<B>, https_port: u16) -> Response<Body> {
    // An absolute-form request line names its own host; else the one Host header (two
    // are a 400, RFC 9112 3.2).
    let hosts: Vec<&HeaderValue> = req.headers().get_all(header::HOST).iter().collect();
    let host = match hosts.as_slice() {
        [_, _, ..] => None,
        [h] => req.uri().authority().map(|a| a.as_str()).or(h.to_str().ok()),
        [] => req.uri().authority().map(|a| a.as_str()),
    };
    let Some(target) = host.and_then(|h| https_location(h, https_port, req.uri())) else {
        let mut resp =
            super::ApiError::bad_request("bad_host", "the Host header must name this service").into_response();
        http::security_headers(resp.headers_mut(), false, true);
        return resp;
    };
    let mut resp = http::empty(StatusCode::PERMANENT_REDIRECT);
    let h = resp.headers_mut();
    h.insert(header::LOCATION, HeaderValue::from_str(&target).expect("checked to be a plain URL"));
    http::security_headers(h, false, true);
    resp
}

/// `https://host[:port]/path?query` for a request that arrived as `host` on plain HTTP,
/// or None when `host` is not a bare host name, IPv4 address or bracketed IPv6 address
/// with an optional port (anything else could point the redirect elsewhere).
fn https_location(host: &str, https_port: u16, uri: &hyper::Uri) -> Option<String> {
    let authority: hyper::http::uri::Authority = host.parse().ok()?;
    if authority.as_str().contains('@') {
        return None;
    }
    let name = authority.host();
    let valid = if let Some(v6) = name.strip_prefix('[').and_then(|n| n.strip_suffix(']')) {
        v6.parse::<std::net::Ipv6Addr>().is_ok()
    } else {
        !name.is_empty() && name.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.')
    };
    if !valid {
        return None;
    }
    // No port, or HTTP's own: the public HTTPS port (443). Another: a development set-up
    // reached on its own ports, so the TLS listener's.
    let port = match (authority.port_u16(), https_port) {
        (None | Some(80 | 443), _) | (Some(_), 443) => String::new(),
        (Some(_), p) => format!(":{p}"),
    };
    let path = uri.path_and_query().map_or("/", |pq| pq.as_str());
    // An absolute-form request line carries its own scheme and host: only its path counts.
    let path = if path.starts_with('/') { path } else { "/" };
    Some(format!("https://{name}{port}{path}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn loc(host: &str, port: u16, uri: &str) -> Option<String> {
        https_location(host, port, &uri.parse().unwrap())
    }

    #[test]
    fn redirects_keep_host_path_and_query() {
        assert_eq!(
            loc("crm.example.com", 443, "/api/health?x=1").as_deref(),
            Some("https://crm.example.com/api/health?x=1")
        );
        assert_eq!(loc("localhost:8080", 8443, "/").as_deref(), Some("https://localhost:8443/"));
        assert_eq!(loc("crm.example.com", 8443, "/a").as_deref(), Some("https://crm.example.com/a"));
        assert_eq!(loc("127.0.0.1:80", 443, "/a").as_deref(), Some("https://127.0.0.1/a"));
        assert_eq!(loc("[::1]:80", 8443, "/a").as_deref(), Some("https://[::1]/a"));
        assert_eq!(loc("[::1]:8080", 8443, "/a").as_deref(), Some("https://[::1]:8443/a"));
    }

    #[test]
    fn two_hosts_are_refused_and_absolute_forms_use_their_own() {
        let req = |uri: &str, hosts: &[&str]| {
            let mut b = Request::get(uri);
            for h in hosts {
                b = b.header(header::HOST, *h);
            }
            redirect_response(&b.body(()).unwrap(), 8443)
        };
        assert_eq!(req("/x", &["a.example", "b.example"]).status(), StatusCode::BAD_REQUEST);
        assert_eq!(req("http://a.example/x", &["a.example", "b.example"]).status(), StatusCode::BAD_REQUEST);
        let r = req("http://a.example:443/x?q", &["b.example"]);
        assert_eq!(r.headers()[header::LOCATION], "https://a.example/x?q");
        assert_eq!(req("/", &[]).status(), StatusCode::BAD_REQUEST);
    }

    #[test]
    fn hostile_hosts_get_no_redirect() {
        for bad in ["evil.com/x", "user@evil.com", "a b", "", "[zz]", "evil.com\\x", "evil.com%2f"] {
            assert_eq!(loc(bad, 443, "/"), None, "{bad}");
        }
    }
}
