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
    /// Seconds, for 429.
    pub retry_after: Option<u64>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError { status, code, message: message.into(), bearer_error: None, allow: None, retry_after: None }
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
        resp
    }
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
