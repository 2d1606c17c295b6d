//! Signing keys and rollover: a secret's key id (`kid`), and the set of secrets a
//! token may verify with: the current one, and the previous one until its window ends.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use super::claims::Secret;

/// A short public fingerprint of a secret: the first 8 bytes of its SHA-256,
/// base64url. It names the key without revealing anything usable about it.
pub fn key_id(secret: &Secret) -> String {
    secret.kid().to_string()
}

/// The fingerprint of a key's bytes (`Secret` computes it once, at creation).
pub(super) fn fingerprint(key: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(&Sha256::digest(key)[..8])
}

/// A secret that still verifies (never signs) until `until` (epoch seconds).
#[derive(Debug, Clone)]
pub struct Previous {
    pub secret: Secret,
    pub until: i64,
}

/// The current signing secret and, during a rollover, the previous one.
#[derive(Debug, Clone)]
pub struct KeyRing {
    pub current: Secret,
    pub previous: Option<Previous>,
}

impl KeyRing {
    pub fn new(current: Secret) -> KeyRing {
        KeyRing { current, previous: None }
    }

    /// The secrets to try for a token with header `kid` at `now`. A kid only picks
    /// among this ring's own secrets (it never brings a key in): a known kid picks its
    /// secret; no kid or an unknown one (a Node-minted token) tries the current secret,
    /// then the previous one while its window is open.
    pub fn candidates(&self, kid: Option<&str>, now: i64) -> Vec<&Secret> {
        let previous = self.previous.as_ref().filter(|p| now < p.until).map(|p| &p.secret);
        match kid {
            Some(k) if k == self.current.kid() => vec![&self.current],
            Some(k) if previous.is_some_and(|p| p.kid() == k) => previous.into_iter().collect(),
            _ => std::iter::once(&self.current).chain(previous).collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidates_by_kid_and_window() {
        let (a, b) = (Secret::new("a".repeat(88)), Secret::new("b".repeat(88)));
        let ring = KeyRing { current: a.clone(), previous: Some(Previous { secret: b.clone(), until: 100 }) };
        assert_eq!(key_id(&a).len(), 11);
        assert_ne!(key_id(&a), key_id(&b));
        assert_eq!(ring.candidates(Some(&key_id(&a)), 50), vec![&a]);
        assert_eq!(ring.candidates(Some(&key_id(&b)), 50), vec![&b]);
        assert_eq!(ring.candidates(Some(&key_id(&b)), 100), vec![&a], "never the previous after its window");
        assert_eq!(ring.candidates(Some("unknown"), 50), vec![&a, &b]);
        assert_eq!(ring.candidates(None, 50), vec![&a, &b]);
        assert_eq!(ring.candidates(None, 150), vec![&a]);
    }
}
