//! Access tokens this instance has already verified, so that a browser polling
//! `token-info` (or calling protected routes) with the same token for its 15 minutes
//! costs a lookup instead of base64, two JSON parses and an HMAC on every request.
//!
//! Safe by construction:
//! - the key is the whole token, signature included, and an entry is added only after
//!   the full verification succeeded;
//! - only tokens whose `kid` names the current access secret are kept, and a hit counts
//!   only while it still does: after a rotation (SIGHUP) an old token is verified
//!   afresh, and fails, even if it is still here;
//! - the time rules (exp, nbf, iat) and the claim rules are checked again on every hit,
//!   and revocation is checked by the caller on every request, as before;
//! - at most `CAPACITY` entries (about 2 KB each): when full, an arbitrary one goes.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::token::Inspected;

const CAPACITY: usize = 2048;

#[derive(Default)]
pub struct Verified {
    map: RwLock<HashMap<Box<str>, Arc<Inspected>>>,
}

impl Verified {
    /// The verified token, when `raw` was verified with the key named `current_kid`.
    pub fn get(&self, raw: &str, current_kid: &str) -> Option<Arc<Inspected>> {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        map.get(raw).filter(|t| kid(t) == Some(current_kid)).cloned()
    }

    /// Remembers a token that passed full verification with the key named `current_kid`.
    pub fn insert(&self, raw: &str, token: Arc<Inspected>, current_kid: &str) {
        if kid(&token) != Some(current_kid) {
            return;
        }
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CAPACITY
            && let Some(any) = map.keys().next().cloned()
        {
            // An arbitrary entry makes room: beyond capacity the hit rate falls gently.
            map.remove(&any);
        }
        map.insert(raw.into(), token);
    }

    pub fn clear(&self) {
        self.map.write().unwrap_or_else(|p| p.into_inner()).clear();
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn kid(t: &Inspected) -> Option<&str> {
    t.header.get("kid").and_then(serde_json::Value::as_str)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::token::{Claims, Kind, Secret, inspect, sign};

    fn token(secret: &Secret, jti: &str) -> String {
        let claims = Claims {
            sub: "u".into(),
            email: "a@b.c".into(),
            role: "admin".into(),
            typ: Kind::Access,
            sid: "s".into(),
            jti: jti.into(),
            iat: 1_800_000_000,
            exp: 1_800_000_900,
            iss: "aspjwt".into(),
            aud: "asp-cranes-crm".into(),
            extra: Default::default(),
        };
        sign(&claims, secret)
    }

    #[test]
    fn hits_only_under_the_key_that_verified_and_stays_bounded() {
        let (current, next) = (Secret::new("a".repeat(88)), Secret::new("b".repeat(88)));
        let v = Verified::default();
        let raw = token(&current, "j1");
        let t = Arc::new(inspect(&raw).unwrap());
        v.insert(&raw, t.clone(), current.kid());
        assert!(v.get(&raw, current.kid()).is_some());
        assert!(v.get(&raw, next.kid()).is_none(), "after a rotation the entry is not used");
        assert!(v.get(&token(&current, "j2"), current.kid()).is_none());
        // A token signed with another key is never kept.
        let other = token(&next, "j3");
        v.insert(&other, Arc::new(inspect(&other).unwrap()), current.kid());
        assert_eq!(v.len(), 1);
        for i in 0..CAPACITY + 10 {
            let raw = format!("{raw}{i}");
            v.insert(&raw, t.clone(), current.kid());
        }
        assert_eq!(v.len(), CAPACITY);
        v.clear();
        assert!(v.is_empty());
    }
}
