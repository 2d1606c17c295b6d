//! Reading a token without trusting it (its structure, claims and times) and then,
//! separately, verifying it. Every reason a token fails is reported, not just the first.

use std::fmt;
use std::time::{Duration, UNIX_EPOCH};

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, DecodingKey};
use serde::Serialize;
use serde_json::{Map, Value};

use super::claims::{Kind, Secret};
use super::keys::KeyRing;
use crate::{duration, names::claim};

/// A token that is not a JWT at all, with the exact cause.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MalformedToken {
    #[error("expected 3 dot-separated parts, found {0}")]
    Parts(usize),
    #[error("{part} is empty")]
    Empty { part: &'static str },
    #[error("{part} is not valid base64url at byte {at}")]
    Base64 { part: &'static str, at: usize },
    #[error("{part} is not valid UTF-8")]
    Utf8 { part: &'static str },
    #[error("{part} is not valid JSON: {message}")]
    Json { part: &'static str, message: String },
    #[error("{part} is not a JSON object")]
    NotObject { part: &'static str },
}

/// A structurally sound token, not yet trusted.
#[derive(Debug, Clone)]
pub struct Inspected {
    pub header: Map<String, Value>,
    pub claims: Map<String, Value>,
    signing_input: String,
    signature: String,
}

fn decode_part(part: &'static str, text: &str) -> Result<Map<String, Value>, MalformedToken> {
    if text.is_empty() {
        return Err(MalformedToken::Empty { part });
    }
    let bytes = URL_SAFE_NO_PAD.decode(text).map_err(|e| {
        let at = match e {
            base64::DecodeError::InvalidByte(at, _) | base64::DecodeError::InvalidLastSymbol(at, _) => at,
            base64::DecodeError::InvalidLength(_) | base64::DecodeError::InvalidPadding => text.len(),
        };
        MalformedToken::Base64 { part, at }
    })?;
    let text = std::str::from_utf8(&bytes).map_err(|_| MalformedToken::Utf8 { part })?;
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(MalformedToken::NotObject { part }),
        Err(e) => Err(MalformedToken::Json { part, message: e.to_string() }),
    }
}

/// Splits and decodes a compact JWS. Checks no signature.
pub fn inspect(token: &str) -> Result<Inspected, MalformedToken> {
    let parts: Vec<&str> = token.split('.').collect();
    if parts.len() != 3 {
        return Err(MalformedToken::Parts(parts.len()));
    }
    let header = decode_part("header", parts[0])?;
    let claims = decode_part("payload", parts[1])?;
    if !parts[2].is_empty() && URL_SAFE_NO_PAD.decode(parts[2]).is_err() {
        let at = parts[2]
            .bytes()
            .position(|b| !(b.is_ascii_alphanumeric() || b == b'-' || b == b'_'))
            .unwrap_or(parts[2].len());
        return Err(MalformedToken::Base64 { part: "signature", at });
    }
    Ok(Inspected {
        header,
        claims,
        signing_input: format!("{}.{}", parts[0], parts[1]),
        signature: parts[2].to_string(),
    })
}

/// An instant as epoch seconds, RFC 3339 UTC and relative to now.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Time {
    pub epoch: i64,
    /// `None` when the instant is outside years 1970 to 9999.
    pub rfc3339: Option<String>,
    pub relative: String,
}

impl Time {
    pub fn new(epoch: i64, now: i64) -> Time {
        Time { epoch, rfc3339: rfc3339(epoch), relative: duration::relative(epoch, now) }
    }
}

/// Epoch seconds as RFC 3339 UTC; `None` outside years 1970 to 9999.
pub fn rfc3339(epoch: i64) -> Option<String> {
    const MAX: i64 = 253_402_300_799; // 9999-12-31T23:59:59Z
    (0..=MAX)
        .contains(&epoch)
        .then(|| humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(epoch as u64)).to_string())
}

impl fmt::Display for Time {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.rfc3339 {
            Some(t) => write!(f, "{t} ({})", self.relative),
            None => write!(f, "{} (out of range)", self.epoch),
        }
    }
}

/// Whether the times say the token could be in use now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    ValidLooking,
    Expired,
    NotYetValid,
    NoExpiry,
}

impl fmt::Display for State {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            State::ValidLooking => "valid-looking",
            State::Expired => "expired",
            State::NotYetValid => "not yet valid",
            State::NoExpiry => "no expiry",
        })
    }
}

/// What `decode` shows below the JSON.
#[derive(Debug, Clone, Serialize)]
pub struct Summary {
    pub algorithm: Option<String>,
    pub kind: Option<String>,
    pub subject: Option<String>,
    pub email: Option<String>,
    pub role: Option<String>,
    pub session: Option<String>,
    pub issued_at: Option<Time>,
    pub not_before: Option<Time>,
    pub expires_at: Option<Time>,
    pub lifetime_seconds: Option<i64>,
    pub state: State,
    pub should_refresh: bool,
    pub warnings: Vec<String>,
}

/// A NumericDate claim as whole seconds, if it is a finite number in i64 range.
fn numeric_date(v: &Value) -> Option<i64> {
    if let Some(i) = v.as_i64() {
        return Some(i);
    }
    let f = v.as_f64()?;
    (f.is_finite() && f.abs() < 9.0e18).then(|| f.floor() as i64)
}

impl Inspected {
    /// The token's kind, by `typ` or (the CRM's Node backend) `type`.
    pub fn kind_claim(&self) -> Option<&str> {
        [claim::TYP, claim::NODE_TYPE].iter().find_map(|c| self.claims.get(*c)?.as_str())
    }

    /// The token's subject, by `sub` or `userId`.
    pub fn subject(&self) -> Option<&str> {
        [claim::SUB, claim::NODE_USER_ID].iter().find_map(|c| self.claims.get(*c)?.as_str())
    }

    fn text(&self, name: &str) -> Option<String> {
        self.claims.get(name).map(|v| match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        })
    }

    fn date(&self, name: &str) -> Option<i64> {
        self.claims.get(name).and_then(numeric_date)
    }

    pub fn algorithm(&self) -> Option<&str> {
        self.header.get("alg").and_then(Value::as_str)
    }

    /// Times, identity and state, as far as the token says.
    pub fn summary(&self, now: i64, threshold: i64) -> Summary {
        let (iat, nbf, exp) = (self.date(claim::IAT), self.date(claim::NBF), self.date(claim::EXP));
        let state = match (nbf, exp) {
            (Some(n), _) if n > now => State::NotYetValid,
            (_, Some(e)) if e <= now => State::Expired,
            (_, None) => State::NoExpiry,
            _ => State::ValidLooking,
        };
        let mut warnings = Vec::new();
        match self.header.get("alg") {
            Some(Value::String(a)) if a.eq_ignore_ascii_case("none") => {
                warnings.push("alg is \"none\": the token is unsigned and must never be accepted".into())
            }
            Some(Value::String(a)) if !matches!(a.as_str(), "HS256" | "HS384" | "HS512") => {
                warnings.push(format!("unknown or unexpected algorithm {a:?}: this system signs with HS256 only"))
            }
            Some(Value::String(_)) => {}
            _ => warnings.push("the header has no algorithm".into()),
        }
        for h in ["jku", "jwk", "x5u", "x5c"] {
            if self.header.contains_key(h) {
                warnings.push(format!("the header carries {h:?}, which this system ignores"));
            }
        }
        for (name, present) in [(claim::EXP, exp), (claim::IAT, iat), (claim::NBF, nbf)] {
            if self.claims.contains_key(name) && present.is_none() {
                warnings.push(format!("{name} is not a valid NumericDate"));
            }
        }
        Summary {
            algorithm: self.algorithm().map(str::to_string),
            kind: self.text(claim::TYP),
            subject: self.text(claim::SUB),
            email: self.text(claim::EMAIL),
            role: self.text(claim::ROLE),
            session: self.text(claim::SID),
            issued_at: iat.map(|t| Time::new(t, now)),
            not_before: nbf.map(|t| Time::new(t, now)),
            expires_at: exp.map(|t| Time::new(t, now)),
            lifetime_seconds: iat.zip(exp).map(|(i, e)| e.saturating_sub(i)),
            state,
            should_refresh: state == State::ValidLooking && exp.is_some_and(|e| e.saturating_sub(now) <= threshold),
            warnings,
        }
    }

    /// Checks against every secret the ring allows for this token's `kid`; the
    /// answer of the first whose signature matches, else of the current secret.
    pub fn verify_ring(&self, ring: &KeyRing, check: &Check, now: i64) -> Vec<Failure> {
        self.verify_ring_by(ring, check, now).0
    }

    /// As `verify_ring`, and whether the signature matched the ring's previous secret
    /// (a rollover still in use, for the metrics).
    pub fn verify_ring_by(&self, ring: &KeyRing, check: &Check, now: i64) -> (Vec<Failure>, bool) {
        let kid = self.header.get("kid").and_then(Value::as_str);
        let mut first = None;
        for secret in ring.candidates(kid, now) {
            let failures = self.verify(secret, check, now);
            if !failures.contains(&Failure::BadSignature) {
                return (failures, !std::ptr::eq(secret, &ring.current));
            }
            first.get_or_insert(failures);
        }
        (first.unwrap_or_else(|| self.verify(&ring.current, check, now)), false)
    }

    /// Checks the signature and every claim rule; an empty list means valid.
    pub fn verify(&self, secret: &Secret, check: &Check, now: i64) -> Vec<Failure> {
        let mut out = Vec::new();
        let alg = self.algorithm().unwrap_or("");
        let allowed = check.algorithms.iter().find(|a| alg_name(**a) == alg);
        match allowed {
            _ if alg.eq_ignore_ascii_case("none") => out.push(Failure::AlgNone),
            None => out.push(Failure::WrongAlgorithm {
                found: alg.to_string(),
                allowed: check.algorithms.iter().map(|a| alg_name(*a)).collect::<Vec<_>>().join(", "),
            }),
            Some(a) => {
                if !verify_signature(&self.signing_input, &self.signature, secret, *a) {
                    out.push(Failure::BadSignature);
                }
            }
        }
        out.extend(self.claim_failures(check, now));
        out
    }

    /// The claim rules alone (times, type, issuer, audience), without the signature:
    /// for a token whose signature was verified before.
    pub fn claim_failures(&self, check: &Check, now: i64) -> Vec<Failure> {
        let mut out = Vec::new();
        match self.claims.get(claim::EXP) {
            None => out.push(Failure::Missing(claim::EXP)),
            Some(v) => match numeric_date(v) {
                None => out.push(Failure::Invalid(claim::EXP)),
                Some(e) if now >= e.saturating_add(check.leeway) => out.push(Failure::Expired(Time::new(e, now))),
                Some(_) => {}
            },
        }
        if let Some(v) = self.claims.get(claim::NBF) {
            match numeric_date(v) {
                None => out.push(Failure::Invalid(claim::NBF)),
                Some(n) if n.saturating_sub(check.leeway) > now => out.push(Failure::NotYetValid(Time::new(n, now))),
                Some(_) => {}
            }
        }
        if let Some(v) = self.claims.get(claim::IAT) {
            match numeric_date(v) {
                None => out.push(Failure::Invalid(claim::IAT)),
                Some(i) if i.saturating_sub(check.leeway) > now => out.push(Failure::IssuedInFuture(Time::new(i, now))),
                Some(_) => {}
            }
        }
        if let Some(want) = check.typ {
            let found = self.text(claim::TYP);
            if found.as_deref() != Some(want.as_str()) {
                out.push(Failure::WrongType { found: found.unwrap_or_else(|| "none".into()), expected: want });
            }
        }
        if let Some(want) = &check.issuer {
            let found = self.text(claim::ISS);
            if found.as_deref() != Some(want.as_str()) {
                out.push(Failure::WrongIssuer {
                    found: found.unwrap_or_else(|| "none".into()),
                    expected: want.clone(),
                });
            }
        }
        if let Some(want) = &check.audience {
            let ok = match self.claims.get(claim::AUD) {
                Some(Value::String(s)) => s == want,
                Some(Value::Array(items)) => items.iter().any(|i| i.as_str() == Some(want)),
                _ => false,
            };
            if !ok {
                let found = self.claims.get(claim::AUD).map_or("none".to_string(), |v| v.to_string());
                out.push(Failure::WrongAudience { found, expected: want.clone() });
            }
        }
        out
    }
}

fn alg_name(a: Algorithm) -> &'static str {
    match a {
        Algorithm::HS256 => "HS256",
        Algorithm::HS384 => "HS384",
        Algorithm::HS512 => "HS512",
        _ => "unsupported",
    }
}

/// Constant-time HMAC check of `signature` (base64url) over `input` with the secret's UTF-8 bytes.
pub fn verify_signature(input: &str, signature: &str, secret: &Secret, alg: Algorithm) -> bool {
    !signature.is_empty()
        && jsonwebtoken::crypto::verify(signature, input.as_bytes(), &DecodingKey::from_secret(secret.key()), alg)
            .unwrap_or(false)
}

/// What a verification insists on.
#[derive(Debug, Clone)]
pub struct Check {
    /// Algorithms accepted: HS256, plus at most one other HMAC when asked.
    pub algorithms: Vec<Algorithm>,
    /// Seconds of clock skew allowed on `exp` and `nbf`.
    pub leeway: i64,
    pub issuer: Option<String>,
    pub audience: Option<String>,
    pub typ: Option<Kind>,
}

/// One reason a token is rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    BadSignature,
    AlgNone,
    WrongAlgorithm { found: String, allowed: String },
    Expired(Time),
    NotYetValid(Time),
    IssuedInFuture(Time),
    Missing(&'static str),
    Invalid(&'static str),
    WrongType { found: String, expected: Kind },
    WrongIssuer { found: String, expected: String },
    WrongAudience { found: String, expected: String },
}

impl Failure {
    /// A stable machine code for --json.
    pub fn code(&self) -> &'static str {
        match self {
            Failure::BadSignature => "bad_signature",
            Failure::AlgNone => "alg_none",
            Failure::WrongAlgorithm { .. } => "wrong_algorithm",
            Failure::Expired(_) => "expired",
            Failure::NotYetValid(_) => "not_yet_valid",
            Failure::IssuedInFuture(_) => "issued_in_future",
            Failure::Missing(_) => "missing_claim",
            Failure::Invalid(_) => "invalid_claim",
            Failure::WrongType { .. } => "wrong_type",
            Failure::WrongIssuer { .. } => "wrong_issuer",
            Failure::WrongAudience { .. } => "wrong_audience",
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::BadSignature => write!(f, "bad signature: not signed with this secret, or altered"),
            Failure::AlgNone => write!(f, "wrong algorithm: \"none\" (unsigned) is never accepted"),
            Failure::WrongAlgorithm { found, allowed } => write!(f, "wrong algorithm: {found:?}, accepted: {allowed}"),
            Failure::Expired(t) => write!(f, "expired at {t}"),
            Failure::NotYetValid(t) => write!(f, "not valid before {t}"),
            Failure::IssuedInFuture(t) => write!(f, "issued in the future, at {t}"),
            Failure::Missing(c) => write!(f, "missing claim {c:?}"),
            Failure::Invalid(c) => write!(f, "claim {c:?} is not a valid NumericDate"),
            Failure::WrongType { found, expected } => write!(f, "wrong type: typ is {found:?}, expected {expected:?}"),
            Failure::WrongIssuer { found, expected } => write!(f, "wrong issuer: {found:?}, expected {expected:?}"),
            Failure::WrongAudience { found, expected } => write!(f, "wrong audience: {found}, expected {expected:?}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{Subject, TokenConfig, sign};

    fn config() -> TokenConfig {
        TokenConfig {
            access_secret: Secret::new("a".repeat(88)),
            refresh_secret: Secret::new("r".repeat(88)),
            access_previous: None,
            refresh_previous: None,
            issuer: "aspjwt".into(),
            audience: "asp-cranes-crm".into(),
            access_ttl: Duration::from_secs(900),
            refresh_ttl: Duration::from_secs(7 * 86400),
        }
    }

    fn check(typ: Option<Kind>) -> Check {
        Check {
            algorithms: vec![Algorithm::HS256],
            leeway: 0,
            issuer: Some("aspjwt".into()),
            audience: Some("asp-cranes-crm".into()),
            typ,
        }
    }

    fn who() -> Subject {
        Subject { sub: "1".into(), email: "a@b.c".into(), role: "admin".into(), sid: "s".into() }
    }

    #[test]
    fn minted_tokens_verify_and_report_every_failure() {
        let cfg = config();
        let now = 1_800_000_000;
        let t = sign(&cfg.claims(Kind::Access, &who(), now, None), &cfg.access_secret);
        let i = inspect(&t).unwrap();
        assert_eq!(i.verify(&cfg.access_secret, &check(Some(Kind::Access)), now), vec![]);
        let later = now + 901;
        let fails = i.verify(&cfg.refresh_secret, &check(Some(Kind::Refresh)), later);
        let codes: Vec<_> = fails.iter().map(Failure::code).collect();
        assert_eq!(codes, ["bad_signature", "expired", "wrong_type"]);
        let s = i.summary(now + 700, 300);
        assert!(s.should_refresh);
        assert_eq!(s.lifetime_seconds, Some(900));
    }

    #[test]
    fn malformed_causes_are_exact() {
        assert_eq!(inspect("a.b").unwrap_err().to_string(), "expected 3 dot-separated parts, found 2");
        assert_eq!(
            inspect("eyJhIjoxfQ.eyJhIjoxfQ!x.sig").unwrap_err().to_string(),
            "payload is not valid base64url at byte 10"
        );
        assert_eq!(inspect("WzFd.eyJhIjoxfQ.sig").unwrap_err().to_string(), "header is not a JSON object");
        assert_eq!(inspect(".eyJhIjoxfQ.sig").unwrap_err().to_string(), "header is empty");
    }

    #[test]
    fn times_out_of_range_do_not_panic() {
        let payload = URL_SAFE_NO_PAD.encode(r#"{"exp":1e300,"iat":-5,"nbf":99999999999999}"#);
        let header = URL_SAFE_NO_PAD.encode(r#"{"alg":"HS256"}"#);
        let i = inspect(&format!("{header}.{payload}.")).unwrap();
        let s = i.summary(0, 300);
        assert_eq!(s.expires_at, None);
        assert!(s.warnings.iter().any(|w| w.contains("exp is not a valid NumericDate")));
        assert_eq!(s.not_before.unwrap().rfc3339, None);
    }
}
