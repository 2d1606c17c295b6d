//! Revoked sessions, kept in memory so that checking an access token costs no
//! database query. A background task polls the store's revocation feed (so a
//! revocation made by `aspjwt sessions revoke` or another instance arrives within
//! the poll interval); revocations made here are added at once. An entry is dropped
//! once every access token of its session must have expired.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use crate::store::Store;

pub const POLL: Duration = Duration::from_millis(500);

#[derive(Default)]
struct Inner {
    /// Session id -> when it was revoked (epoch seconds).
    revoked: HashMap<String, i64>,
    cursor: i64,
}

#[derive(Clone, Default)]
pub struct Revocations {
    inner: Arc<RwLock<Inner>>,
}

impl Revocations {
    pub fn is_revoked(&self, sid: &str) -> bool {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).revoked.contains_key(sid)
    }

    pub fn insert(&self, sid: &str, at: i64) {
        self.inner.write().unwrap_or_else(|p| p.into_inner()).revoked.insert(sid.to_string(), at);
    }

    pub fn len(&self) -> usize {
        self.inner.read().unwrap_or_else(|p| p.into_inner()).revoked.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Loads the revocations that can still matter (younger than `keep`) and the cursor.
    pub fn seed(&self, store: &dyn Store, now: i64, keep: Duration) -> crate::store::Result<()> {
        let cursor = store.revocation_cursor()?;
        let recent = store.revocations_after(now - keep.as_secs() as i64)?;
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        for r in recent {
            inner.revoked.insert(r.session_id, r.revoked_at);
        }
        inner.cursor = cursor;
        Ok(())
    }

    /// Applies new revocations from the feed, drops entries older than `keep`, and
    /// returns the sessions newly revoked: those this instance had not already ended itself.
    pub fn poll(&self, store: &dyn Store, now: i64, keep: Duration) -> crate::store::Result<Vec<String>> {
        let cursor = self.inner.read().unwrap_or_else(|p| p.into_inner()).cursor;
        let new = store.revocations_since(cursor)?;
        let mut inner = self.inner.write().unwrap_or_else(|p| p.into_inner());
        let mut ended = Vec::with_capacity(new.len());
        for r in new {
            inner.cursor = inner.cursor.max(r.seq);
            if inner.revoked.insert(r.session_id.clone(), r.revoked_at).is_none() {
                ended.push(r.session_id);
            }
        }
        let oldest = now - keep.as_secs() as i64;
        inner.revoked.retain(|_, at| *at >= oldest);
        Ok(ended)
    }
}
