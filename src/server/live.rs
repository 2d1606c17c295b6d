//! Which sessions are live, kept in memory, so that an access token counts only while
//! its (`sid`, `sub`) is a live session of that user, at no database query per request:
//! a leaked (or previous) signing secret alone no longer mints access.
//!
//! - Sessions this instance creates or rotates are remembered at once.
//! - A miss (a session another instance created, or a token this instance has not seen)
//!   is looked up once in the store; an absent or ended session is remembered as dead
//!   for `DEAD_FOR`, so a flood of forged tokens costs one query a sid, not one a request.
//! - A token issued after the remembered pair (another instance rotated the session)
//!   is looked up again, which also refreshes the session's refresh expiry.
//! - Revocations (local, and from the feed) mark the session dead.
//! - At most `CAPACITY` entries; past it an arbitrary one goes (and is looked up again).

use std::collections::HashMap;
use std::sync::RwLock;
use std::time::{Duration, Instant};

use crate::store::Session;

const CAPACITY: usize = 200_000;
/// How long "no such live session" is believed before asking the store again.
pub const DEAD_FOR: Duration = Duration::from_secs(10);

#[derive(Debug, Clone)]
struct Known {
    user_id: Box<str>,
    /// The role and email the session was issued with: a token must carry these.
    role: Box<str>,
    email: Box<str>,
    /// The session's absolute end (epoch seconds).
    expires_at: i64,
    /// The current pair's times, as the store last said.
    access_iat: i64,
    refresh_exp: i64,
}

#[derive(Debug, Clone)]
enum Entry {
    Live(Known),
    Dead(Instant),
}

/// What memory says about a token's session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Live, with the session's current refresh expiry.
    Live { refresh_exp: i64 },
    /// Ended, unknown to the store, or another user's.
    Dead,
    /// Not known well enough: ask the store.
    Unknown,
}

/// What an access token says about who it is for.
pub struct Claimed<'a> {
    pub sub: &'a str,
    pub role: &'a str,
    pub email: &'a str,
    pub iat: i64,
}

#[derive(Default)]
pub struct LiveSessions {
    map: RwLock<HashMap<Box<str>, Entry>>,
}

impl LiveSessions {
    /// The verdict for an access token of session `sid` carrying these claims.
    pub fn check(&self, sid: &str, claims: &Claimed, now: i64) -> Verdict {
        let map = self.map.read().unwrap_or_else(|p| p.into_inner());
        let iat = claims.iat;
        match map.get(sid) {
            None => Verdict::Unknown,
            Some(Entry::Dead(until)) if Instant::now() < *until => Verdict::Dead,
            Some(Entry::Dead(_)) => Verdict::Unknown,
            // A session's user, role and email never change (a new role ends the session):
            // a token naming others is forged.
            Some(Entry::Live(k))
                if *k.user_id != *claims.sub
                    || *k.role != *claims.role
                    || *k.email != *claims.email
                    || now >= k.expires_at =>
            {
                Verdict::Dead
            }
            Some(Entry::Live(k)) if iat > k.access_iat => Verdict::Unknown,
            Some(Entry::Live(k)) => Verdict::Live { refresh_exp: k.refresh_exp },
        }
    }

    /// Remembers what the store says of `sid` (`None`: no such session).
    pub fn learn(&self, sid: &str, session: Option<&Session>, now: i64) {
        match session {
            Some(s) if s.revoked_at.is_none() && now < s.expires_at => self.insert(
                sid,
                Entry::Live(Known {
                    user_id: s.user_id.as_str().into(),
                    role: s.role.as_str().into(),
                    email: s.email.as_str().into(),
                    expires_at: s.expires_at,
                    access_iat: s.current.access_iat,
                    refresh_exp: s.current.refresh_exp,
                }),
            ),
            _ => self.end(sid),
        }
    }

    /// A session this instance just created or rotated.
    pub fn remember(&self, s: &Session, now: i64) {
        self.learn(&s.id, Some(s), now);
    }

    /// A session that ended (logout, revocation, reuse, expiry).
    pub fn end(&self, sid: &str) {
        self.insert(sid, Entry::Dead(Instant::now() + DEAD_FOR));
    }

    fn insert(&self, sid: &str, entry: Entry) {
        let mut map = self.map.write().unwrap_or_else(|p| p.into_inner());
        if map.len() >= CAPACITY
            && !map.contains_key(sid)
            && let Some(any) = map.keys().next().cloned()
        {
            map.remove(&any);
        }
        map.insert(sid.into(), entry);
    }

    /// Drops what no longer helps: dead entries past their time, sessions past their end.
    pub fn prune(&self, now: i64) {
        let at = Instant::now();
        self.map.write().unwrap_or_else(|p| p.into_inner()).retain(|_, e| match e {
            Entry::Dead(until) => *until > at,
            Entry::Live(k) => k.expires_at > now,
        });
    }

    pub fn len(&self) -> usize {
        self.map.read().unwrap_or_else(|p| p.into_inner()).len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::Issued;

    fn session(id: &str, user: &str, iat: i64) -> Session {
        Session {
            id: id.into(),
            user_id: user.into(),
            email: "a@b.c".into(),
            role: "admin".into(),
            created_at: iat,
            expires_at: iat + 1000,
            current: Issued {
                access_jti: "a".into(),
                access_iat: iat,
                access_exp: iat + 900,
                refresh_jti: "r".into(),
                refresh_iat: iat,
                refresh_exp: iat + 999,
            },
            prev_refresh_jti: None,
            prev_rotated_at: None,
            prev_rotated_ms: None,
            rotations: 0,
            revoked_at: None,
            revoke_reason: None,
            ip: None,
            user_agent: None,
            last_seen_at: iat,
        }
    }

    #[test]
    fn verdicts() {
        let live = LiveSessions::default();
        let c = |sub, role, iat| Claimed { sub, role, email: "a@b.c", iat };
        assert_eq!(live.check("s", &c("u", "admin", 100), 100), Verdict::Unknown);
        live.remember(&session("s", "u", 100), 100);
        assert_eq!(live.check("s", &c("u", "admin", 100), 150), Verdict::Live { refresh_exp: 1099 });
        assert_eq!(live.check("s", &c("u", "admin", 90), 150), Verdict::Live { refresh_exp: 1099 }, "an older token");
        assert_eq!(live.check("s", &c("other", "admin", 100), 150), Verdict::Dead, "another user's token");
        assert_eq!(live.check("s", &c("u", "support", 100), 150), Verdict::Dead, "another role");
        let other_email = Claimed { email: "x@y.z", ..c("u", "admin", 100) };
        assert_eq!(live.check("s", &other_email, 150), Verdict::Dead, "another email");
        assert_eq!(live.check("s", &c("u", "admin", 101), 150), Verdict::Unknown, "a newer pair: ask again");
        assert_eq!(live.check("s", &c("u", "admin", 100), 1100), Verdict::Dead, "past the session's end");
        live.learn("x", None, 100);
        assert_eq!(live.check("x", &c("u", "admin", 100), 100), Verdict::Dead);
        live.end("s");
        assert_eq!(live.check("s", &c("u", "admin", 100), 150), Verdict::Dead);
        let mut revoked = session("r", "u", 100);
        revoked.revoked_at = Some(120);
        live.learn("r", Some(&revoked), 130);
        assert_eq!(live.check("r", &c("u", "admin", 100), 130), Verdict::Dead);
        live.prune(2000);
        assert_eq!(live.len(), 3, "dead entries stay for DEAD_FOR");
    }
}
