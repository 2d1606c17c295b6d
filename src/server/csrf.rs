//! CSRF defence for cookie-authenticated state changes: Fetch Metadata, then an
//! exact Origin (or Referer) match, and always a signed double-submit token bound to
//! the session: `nonce.HMAC-SHA256(SESSION_SECRET, "csrf:" sid ":" nonce)`, set as the
//! readable `csrf_token` cookie and echoed in `X-CSRF-Token`.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{Hmac, Mac};
use hyper::HeaderMap;
use hyper::header;
use sha2::Sha256;

use crate::token::{Secret, random_id};

fn mac(key: &Secret, sid: &str, nonce: &str) -> Hmac<Sha256> {
    let mut m = Hmac::<Sha256>::new_from_slice(key.key()).expect("HMAC takes any key length");
    m.update(b"csrf:");
    m.update(sid.as_bytes());
    m.update(b":");
    m.update(nonce.as_bytes());
    m
}

/// A fresh token for session `sid`.
pub fn issue(key: &Secret, sid: &str) -> String {
    let nonce = random_id();
    let tag = URL_SAFE_NO_PAD.encode(mac(key, sid, &nonce).finalize().into_bytes());
    format!("{nonce}.{tag}")
}

/// True when `token` was issued for `sid` with `key` (constant-time).
pub fn valid(key: &Secret, sid: &str, token: &str) -> bool {
    let Some((nonce, tag)) = token.split_once('.') else { return false };
    let Ok(tag) = URL_SAFE_NO_PAD.decode(tag) else { return false };
    mac(key, sid, nonce).verify_slice(&tag).is_ok()
}

/// Why a request was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    CrossSite,
    OriginNotAllowed,
    MissingToken,
    BadToken,
}

impl Refusal {
    pub fn message(self) -> &'static str {
        match self {
            Refusal::CrossSite => "cross-site request refused",
            Refusal::OriginNotAllowed => "origin not allowed",
            Refusal::MissingToken => "the X-CSRF-Token header must echo the csrf_token cookie",
            Refusal::BadToken => "the CSRF token is not valid for this session",
        }
    }
}

/// The origin (`scheme://host[:port]`) of a URL.
fn origin_of(url: &str) -> Option<&str> {
    let rest = url.split_once("://")?.1;
    let end = rest.find('/').map_or(url.len(), |i| url.len() - rest.len() + i);
    Some(&url[..end])
}

/// Fetch Metadata, then Origin/Referer against the allowed origins.
pub fn check_origin(headers: &HeaderMap, allowed: &[String]) -> Result<(), Refusal> {
    match headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()) {
        Some("cross-site") => return Err(Refusal::CrossSite),
        Some("same-origin") => return Ok(()),
        _ => {}
    }
    let origin =
        headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()).map(str::to_string).or_else(|| {
            headers.get(header::REFERER).and_then(|v| v.to_str().ok()).and_then(origin_of).map(str::to_string)
        });
    match origin {
        None => Ok(()),
        Some(o) if allowed.contains(&o) => Ok(()),
        Some(_) => Err(Refusal::OriginNotAllowed),
    }
}

/// The double-submit check: header equals cookie, and it was issued for `sid` with
/// one of `keys`.
pub fn check_token(headers: &HeaderMap, keys: &[&Secret], sid: &str) -> Result<(), Refusal> {
    let header = headers.get(crate::names::CSRF_HEADER).and_then(|v| v.to_str().ok()).ok_or(Refusal::MissingToken)?;
    let cookie = super::http::cookie(headers, crate::names::cookie::CSRF_TOKEN).ok_or(Refusal::MissingToken)?;
    let same: bool =
        header.len() == cookie.len() && header.bytes().zip(cookie.bytes()).fold(0u8, |acc, (a, b)| acc | (a ^ b)) == 0;
    if same && keys.iter().any(|k| valid(k, sid, header)) { Ok(()) } else { Err(Refusal::BadToken) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_bind_to_session_and_key() {
        let k = Secret::new("k".repeat(44));
        let t = issue(&k, "s1");
        assert!(valid(&k, "s1", &t));
        assert!(!valid(&k, "s2", &t));
        assert!(!valid(&Secret::new("x".repeat(44)), "s1", &t));
        assert!(!valid(&k, "s1", "garbage"));
        assert_ne!(t, issue(&k, "s1"));
    }

    #[test]
    fn origins() {
        let allowed = vec!["https://crm.example.com".to_string()];
        let h = |pairs: &[(&'static str, &str)]| {
            let mut m = HeaderMap::new();
            for (k, v) in pairs {
                m.insert(*k, v.parse().unwrap());
            }
            m
        };
        assert_eq!(check_origin(&h(&[("sec-fetch-site", "cross-site")]), &allowed), Err(Refusal::CrossSite));
        assert_eq!(
            check_origin(&h(&[("sec-fetch-site", "same-origin"), ("origin", "https://evil.example")]), &allowed),
            Ok(())
        );
        assert_eq!(check_origin(&h(&[("origin", "https://crm.example.com")]), &allowed), Ok(()));
        assert_eq!(
            check_origin(&h(&[("origin", "https://crm.example.com.evil.example")]), &allowed),
            Err(Refusal::OriginNotAllowed)
        );
        assert_eq!(check_origin(&h(&[("referer", "https://crm.example.com/leads?x=1")]), &allowed), Ok(()));
        assert_eq!(check_origin(&h(&[("origin", "null")]), &allowed), Err(Refusal::OriginNotAllowed));
        assert_eq!(check_origin(&h(&[]), &allowed), Ok(()));
    }
}
