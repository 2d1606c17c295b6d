//! HTTP plumbing shared by the handlers: the JSON error shape, response builders,
//! cookies and the security headers every response carries.

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};
use serde::Serialize;

pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Every response body: a buffer, or a stream from the upstream.
pub type Body = BoxBody<Bytes, BoxError>;

/// A complete body.
pub fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never| match never {}).boxed()
}

/// An error answer: a status, a stable machine code and a human message. Causes are
/// logged, never returned.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// For 401s: the `error=` of `WWW-Authenticate: Bearer`, when a token was presented.
    pub bearer_error: Option<&'static str>,
    pub allow: Option<&'static str>,
    /// Seconds, for 429 and 503.
    pub retry_after: Option<u64>,
    /// End the connection after this answer (HTTP/1): the request was not read to its end.
    pub close: bool,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            bearer_error: None,
            allow: None,
            retry_after: None,
            close: false,
        }
    }

    /// 408: the body did not arrive within `ASPJWT_BODY_TIMEOUT`; the connection ends.
    pub fn request_timeout() -> ApiError {
        ApiError {
            close: true,
            ..ApiError::new(StatusCode::REQUEST_TIMEOUT, "request_timeout", "the request body did not arrive in time")
        }
    }

    /// 401 without a usable credential.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, code, message)
    }

    /// 401 for a credential that was presented but is bad.
    pub fn invalid_token(message: impl Into<String>) -> ApiError {
        ApiError { bearer_error: Some("invalid_token"), ..ApiError::unauthorized("invalid_token", message) }
    }

    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    pub fn not_found() -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
    }

    pub fn method_not_allowed(allow: &'static str) -> ApiError {
        ApiError {
            allow: Some(allow),
            ..ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed", format!("use {allow}"))
        }
    }

    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, code, message)
    }

    pub fn too_many(retry_after: std::time::Duration) -> ApiError {
        ApiError {
            retry_after: Some(retry_after.as_secs_f64().ceil().max(1.0) as u64),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "rate_limited", "too many requests; slow down")
        }
    }

    pub fn unavailable() -> ApiError {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "unavailable",
            "the service cannot reach its database; try again shortly",
        )
    }

    pub fn internal() -> ApiError {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "something went wrong; the incident was logged",
        )
    }

    pub fn into_response(self) -> Response<Body> {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut resp = json(self.status, &body);
        if self.status == StatusCode::UNAUTHORIZED {
            let value = match self.bearer_error {
                Some(e) => format!("Bearer realm=\"aspjwt\", error=\"{e}\""),
                None => "Bearer realm=\"aspjwt\"".to_string(),
            };
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, HeaderValue::from_str(&value).expect("ascii"));
        }
        if let Some(allow) = self.allow {
            resp.headers_mut().insert(header::ALLOW, HeaderValue::from_static(allow));
        }
        if let Some(secs) = self.retry_after {
            resp.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        if self.close {
            resp.headers_mut().insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        resp
    }
}

/// A whole HTTP/1.1 error answer as bytes, for the paths that have no handler: the
/// parser's own errors and connections turned away at accept. Same JSON shape and
/// headers as every other answer; the connection ends after it.
pub fn raw_error(status: StatusCode, production: bool) -> Vec<u8> {
    let (code, message) = match status {
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => ("headers_too_large", "the request headers are too large"),
        StatusCode::URI_TOO_LONG => ("uri_too_long", "the request URI is too long"),
        StatusCode::REQUEST_TIMEOUT => ("request_timeout", "the request did not arrive in time"),
        StatusCode::SERVICE_UNAVAILABLE => {
            ("too_many_connections", "too many connections from your address; try again shortly")
        }
        _ => ("bad_request", "the request could not be parsed"),
    };
    let body = serde_json::to_vec(&serde_json::json!({"error": {"code": code, "message": message}})).expect("JSON");
    let mut h = HeaderMap::new();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    h.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    h.insert(header::CONNECTION, HeaderValue::from_static("close"));
    if status == StatusCode::SERVICE_UNAVAILABLE {
        h.insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    }
    security_headers(&mut h, production, true);
    h.insert("x-request-id", HeaderValue::from_str(&super::request_id()).expect("base64url"));
    let mut out =
        format!("HTTP/1.1 {} {}\r\n", status.as_u16(), status.canonical_reason().unwrap_or("Error")).into_bytes();
    for (k, v) in &h {
        out.extend_from_slice(k.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(v.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(&body);
    out
}

impl From<crate::store::StoreError> for ApiError {
    fn from(e: crate::store::StoreError) -> ApiError {
        match e {
            crate::store::StoreError::Unavailable(cause) => {
                tracing::error!(cause = %cause, "database unavailable");
                ApiError::unavailable()
            }
            other => {
                tracing::error!(cause = %other, "database error");
                ApiError::internal()
            }
        }
    }
}

pub fn json<T: Serialize>(status: StatusCode, value: &T) -> Response<Body> {
    let bytes = serde_json::to_vec(value).expect("JSON serialises");
    let mut resp = Response::new(full(bytes));
    *resp.status_mut() = status;
    resp.headers_mut().insert(header::CONTENT_TYPE, HeaderValue::from_static("application/json; charset=utf-8"));
    resp
}

pub fn empty(status: StatusCode) -> Response<Body> {
    let mut resp = Response::new(full(Bytes::new()));
    *resp.status_mut() = status;
    resp
}

/// Every line of a list-valued header (`X-Forwarded-For`), joined as RFC 9110 §5.3
/// says they combine: a proxy may append a line of its own rather than extend one.
/// A line with a byte that is not ASCII stays a line (its hops that parse still count).
pub fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let parts: Vec<String> =
        headers.get_all(name).iter().map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned()).collect();
    (!parts.is_empty()).then(|| parts.join(", "))
}

/// The value of cookie `name` across every Cookie header.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.trim())
        .filter(|v| !v.is_empty())
}

/// A `Set-Cookie` value. Tokens are HttpOnly; SameSite=Strict always; Secure in production.
pub fn set_cookie(name: &str, value: &str, path: &str, max_age: i64, http_only: bool, secure: bool) -> HeaderValue {
    let mut c = format!("{name}={value}; Path={path}; Max-Age={}; SameSite=Strict", max_age.max(0));
    if http_only {
        c.push_str("; HttpOnly");
    }
    if secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).expect("cookie values are base64url")
}

/// helmet's defaults and the API's strict content policy, on every response.
pub fn security_headers(headers: &mut HeaderMap, production: bool, no_store: bool) {
    for (k, v) in crate::names::SECURITY_HEADERS {
        headers.entry(*k).or_insert(HeaderValue::from_static(v));
    }
    if production {
        headers.insert("strict-transport-security", HeaderValue::from_static("max-age=31536000; includeSubDomains"));
    }
    if no_store {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(header::PRAGMA, HeaderValue::from_static("no-cache"));
    }
}
