use std::fmt;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey};
use rand::{RngCore, TryRngCore};
use serde::{Deserialize, Serialize};

use crate::names;

/// Which secret signs a token, and what it may be used for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Kind {
    Access,
    Refresh,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Access => names::typ::ACCESS,
            Kind::Refresh => names::typ::REFRESH,
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        match s {
            names::typ::ACCESS => Some(Kind::Access),
            names::typ::REFRESH => Some(Kind::Refresh),
            _ => None,
        }
    }

    /// The env var holding the secret that signs this kind.
    pub fn secret_var(self) -> &'static str {
        match self {
            Kind::Access => names::JWT_SECRET,
            Kind::Refresh => names::JWT_REFRESH_SECRET,
        }
    }
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The claims of every token the service issues; `mint` issues exactly these.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Claims {
    /// User id.
    pub sub: String,
    pub email: String,
    pub role: String,
    pub typ: Kind,
    /// Session id.
    pub sid: String,
    /// 128 random bits, base64url.
    pub jti: String,
    pub iat: i64,
    pub exp: i64,
    pub iss: String,
    pub aud: String,
    /// Further claims given to `mint --claim`.
    #[serde(flatten)]
    pub extra: serde_json::Map<String, serde_json::Value>,
}

/// A secret string. Its Debug and Display never show it. Shared, so that a clone
/// on every request costs a reference count, not a copy. Its key id (a public
/// fingerprint) is computed once here, not on every token signed or checked.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret {
    value: std::sync::Arc<str>,
    kid: std::sync::Arc<str>,
}

impl Secret {
    pub fn new(s: impl Into<String>) -> Secret {
        let value: std::sync::Arc<str> = std::sync::Arc::from(s.into());
        let kid = std::sync::Arc::from(super::keys::fingerprint(value.as_bytes()));
        Secret { value, kid }
    }

    /// The HMAC key: the string's UTF-8 bytes, as Node's jsonwebtoken uses them.
    pub fn key(&self) -> &[u8] {
        self.value.as_bytes()
    }

    pub fn expose(&self) -> &str {
        &self.value
    }

    /// The key id tokens signed with this secret carry (see `keys::key_id`).
    pub fn kid(&self) -> &str {
        &self.kid
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

/// What signing and checking tokens needs from the configuration.
#[derive(Debug, Clone)]
pub struct TokenConfig {
    /// Current secrets: the only ones that sign.
    pub access_secret: Secret,
    pub refresh_secret: Secret,
    /// During a rollover, the secrets that still verify until their window ends.
    pub access_previous: Option<super::Previous>,
    pub refresh_previous: Option<super::Previous>,
    pub issuer: String,
    pub audience: String,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl TokenConfig {
    pub fn secret(&self, kind: Kind) -> &Secret {
        match kind {
            Kind::Access => &self.access_secret,
            Kind::Refresh => &self.refresh_secret,
        }
    }

    /// The secrets a token of `kind` may verify with.
    pub fn ring(&self, kind: Kind) -> super::KeyRing {
        let (current, previous) = match kind {
            Kind::Access => (&self.access_secret, &self.access_previous),
            Kind::Refresh => (&self.refresh_secret, &self.refresh_previous),
        };
        super::KeyRing { current: current.clone(), previous: previous.clone() }
    }

    pub fn ttl(&self, kind: Kind) -> Duration {
        match kind {
            Kind::Access => self.access_ttl,
            Kind::Refresh => self.refresh_ttl,
        }
    }

    /// Claims for a new token of `kind` for `who`, issued at `now` (epoch seconds).
    pub fn claims(&self, kind: Kind, who: &Subject, now: i64, ttl: Option<Duration>) -> Claims {
        let ttl = ttl.unwrap_or(self.ttl(kind)).as_secs() as i64;
        Claims {
            sub: who.sub.clone(),
            email: who.email.clone(),
            role: who.role.clone(),
            typ: kind,
            sid: who.sid.clone(),
            jti: random_id(),
            iat: now,
            exp: now.saturating_add(ttl),
            iss: self.issuer.clone(),
            aud: self.audience.clone(),
            extra: serde_json::Map::new(),
        }
    }
}

/// Who a token is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subject {
    pub sub: String,
    pub email: String,
    pub role: String,
    pub sid: String,
}

/// 128 random bits from the OS CSPRNG, base64url (22 characters).
pub fn random_id() -> String {
    let mut b = [0u8; 16];
    rand::rngs::OsRng.unwrap_err().fill_bytes(&mut b);
    URL_SAFE_NO_PAD.encode(b)
}

/// Signs claims with HS256: `base64url(header).base64url(claims).signature`. The
/// header is `{"alg":"HS256","typ":"JWT","kid":…}` (Node's order, plus the key id
/// that lets a rollover tell the current secret from the previous one).
pub fn sign(claims: &Claims, secret: &Secret) -> String {
    let header = format!(r#"{{"alg":"HS256","typ":"JWT","kid":"{}"}}"#, secret.kid());
    let payload = serde_json::to_vec(claims).expect("claims serialise");
    let input = format!("{}.{}", URL_SAFE_NO_PAD.encode(header), URL_SAFE_NO_PAD.encode(payload));
    let sig = jsonwebtoken::crypto::sign(input.as_bytes(), &EncodingKey::from_secret(secret.key()), Algorithm::HS256)
        .expect("HMAC signing cannot fail");
    format!("{input}.{sig}")
}
