//! Durable state behind one narrow interface: users, sessions (with their rotation
//! state), revocations and the audit log. The service and the operator commands use
//! only this trait, so another backend can be added without touching them.
//!
//! Two backends: SQLite (embedded, the default) and PostgreSQL (several instances
//! over one database). The trait is synchronous (rusqlite is; the PostgreSQL store
//! drives its async driver on a runtime of its own); the service calls it on tokio's
//! blocking pool, never on the async runtime.

mod postgres;
mod sqlite;
mod target;

pub use postgres::PgStore;
pub use sqlite::SqliteStore;
pub use target::Target;

use crate::audit::Record;
use crate::throttle::Throttle;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("a user with email {0:?} already exists")]
    DuplicateEmail(String),
    #[error("no user with email {0:?}")]
    NoSuchUser(String),
    #[error("database error: {0}")]
    Db(String),
    #[error("database is unavailable: {0}")]
    Unavailable(String),
    #[error("{0} is the last enabled admin; make another user admin first")]
    LastAdmin(String),
    #[error("the database is not empty (it holds {0}); restore --force replaces everything in it")]
    NotEmpty(String),
    #[error("the user was disabled, or given another role or password, since the login checked them")]
    UserChanged,
    #[error("no aspjwt database here (no aspjwt tables): check the name; only `serve` and `user add` create one")]
    NoDatabase,
    #[error("id {0:?} already belongs to another user")]
    DuplicateId(String),
}

pub type Result<T> = std::result::Result<T, StoreError>;

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct User {
    pub id: String,
    pub email: String,
    pub name: String,
    pub role: String,
    /// A PHC string (argon2id); never logged.
    pub password_hash: String,
    pub disabled: bool,
    pub created_at: i64,
    pub updated_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewUser {
    pub email: String,
    pub name: String,
    pub role: String,
    pub password_hash: String,
}

/// The ids and times of one access/refresh token pair. With the session's user
/// fields they are enough to re-sign the exact same tokens.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Issued {
    pub access_jti: String,
    pub access_iat: i64,
    pub access_exp: i64,
    pub refresh_jti: String,
    pub refresh_iat: i64,
    pub refresh_exp: i64,
}

impl Issued {
    /// No token outlives the session it belongs to (`SESSION_MAX_LIFETIME`).
    pub fn capped_at(self, session_end: i64) -> Issued {
        Issued { access_exp: self.access_exp.min(session_end), refresh_exp: self.refresh_exp.min(session_end), ..self }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Session {
    pub id: String,
    pub user_id: String,
    pub email: String,
    pub role: String,
    pub created_at: i64,
    /// The absolute end of the session, however often it refreshes.
    pub expires_at: i64,
    pub current: Issued,
    pub prev_refresh_jti: Option<String>,
    pub prev_rotated_at: Option<i64>,
    /// When the previous refresh token was replaced, in epoch milliseconds: the grace
    /// period is counted from here.
    pub prev_rotated_ms: Option<i64>,
    pub rotations: i64,
    pub revoked_at: Option<i64>,
    pub revoke_reason: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub last_seen_at: i64,
}

#[derive(Debug, Clone)]
pub struct NewSession {
    pub id: String,
    pub user_id: String,
    pub email: String,
    pub role: String,
    pub created_at: i64,
    pub expires_at: i64,
    pub issued: Issued,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    /// The hash the login verified: the session is created only while the user still has
    /// it, with the same role, not disabled (see `Store::create_session`).
    pub password_hash: String,
    /// A legacy (bcrypt) hash's replacement, stored in the session's own transaction.
    pub rehash: Option<Rehash>,
}

/// A user `aspjwt user import` brings in, judged by `crate::import` first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportUser {
    /// The old backend's id, kept when given (else a new one).
    pub id: Option<String>,
    pub email: String,
    pub name: String,
    pub role: String,
    /// bcrypt or argon2id, within `password::check_imported`'s bounds.
    pub password_hash: String,
    /// None: a new user is enabled, an updated one keeps its status.
    pub disabled: Option<bool>,
}

/// What an update by import leaves a user with: the file's role and name; its status
/// when the file gives one, else the current one; and the file's hash, unless that would
/// put an old bcrypt hash over an argon2id one (a password set or upgraded since the
/// export, maybe after a compromise, must not be undone by the old backend's copy).
pub(crate) fn import_update(existing: &User, u: &ImportUser) -> (String, bool) {
    let keeps_argon2 = crate::password::Scheme::of(&existing.password_hash) == Some(crate::password::Scheme::Argon2id)
        && crate::password::Scheme::of(&u.password_hash).is_some_and(crate::password::Scheme::is_legacy);
    let hash = if keeps_argon2 { existing.password_hash.clone() } else { u.password_hash.clone() };
    (hash, u.disabled.unwrap_or(existing.disabled))
}

/// What an import does about an email the database already holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnConflict {
    Skip,
    Update,
    Fail,
}

/// What an import did with one user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Imported {
    Created,
    Updated,
    Skipped,
}

/// What an import did with one user, with the user as it was before (None when created,
/// read in the import's own transaction) and after.
pub type Outcome = (Imported, Option<User>, User);

/// The audit record of one imported user (never its hash): the user before (None when
/// created) and after.
pub type ImportAudit<'a> = &'a dyn Fn(Option<&User>, &User, Imported) -> Record;

/// The argon2id hash that replaces a user's bcrypt one at login, and its audit record
/// (`password_rehashed`, never the hash).
#[derive(Debug, Clone)]
pub struct Rehash {
    pub password_hash: String,
    pub audit: Record,
}

/// What presenting a refresh token did, decided in one transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rotation {
    /// The current token: the session now holds the new pair.
    Rotated(Session),
    /// The immediately previous token within the grace period: the current pair again.
    Grace(Session),
    /// An older token: the whole session is now revoked.
    Reused(Session),
    /// The session was already revoked.
    Revoked(Session),
    /// The session passed its absolute lifetime (now revoked).
    Expired(Session),
    /// No such session.
    Unknown,
}

impl Rotation {
    /// The audit record of this outcome, from a template holding who and where.
    pub fn audit_record(&self, template: &Record) -> Record {
        use crate::audit::Event;
        let (event, ok, reason) = match self {
            Rotation::Rotated(_) => (Event::Refresh, true, "rotated"),
            Rotation::Grace(_) => (Event::Refresh, true, "grace"),
            Rotation::Reused(_) => (Event::RefreshTokenReuse, false, "session revoked"),
            Rotation::Revoked(_) => (Event::RefreshFailure, false, "session_revoked"),
            Rotation::Expired(_) => (Event::RefreshFailure, false, "session_max_lifetime"),
            Rotation::Unknown => (Event::RefreshFailure, false, "unknown_session"),
        };
        let mut r = Record {
            event: event.as_str().into(),
            outcome: if ok { "success" } else { "failure" }.into(),
            ..template.clone()
        };
        r.reason = Some(reason.into());
        if let Rotation::Rotated(s)
        | Rotation::Grace(s)
        | Rotation::Reused(s)
        | Rotation::Revoked(s)
        | Rotation::Expired(s) = self
        {
            r.user_id = Some(s.user_id.clone());
            r.email = Some(s.email.clone());
        }
        r
    }
}

/// What a presented refresh token does to a session, decided from the session's row
/// alone; each backend reads that row (locked) and carries out the plan in the same
/// transaction, so both decide exactly alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Plan {
    AlreadyRevoked,
    /// Past the absolute end: revoke with reason `session_max_lifetime`.
    Expire,
    /// The current token: compare-and-swap to this pair (expiries already capped).
    Rotate(Issued),
    Grace,
    /// An older token: revoke with reason `refresh_token_reuse`.
    Reuse,
}

impl Plan {
    pub(crate) fn decide(s: &Session, presented: &str, next: Issued, now_ms: i64, grace_ms: i64) -> Plan {
        if s.revoked_at.is_some() {
            return Plan::AlreadyRevoked;
        }
        if now_ms.div_euclid(1000) >= s.expires_at {
            return Plan::Expire;
        }
        if presented == s.current.refresh_jti {
            return Plan::Rotate(next.capped_at(s.expires_at));
        }
        // Rows rotated before milliseconds were kept count from the start of their second.
        let rotated_ms = s.prev_rotated_ms.or(s.prev_rotated_at.map(|at| at.saturating_mul(1000)));
        let in_grace = s.prev_refresh_jti.as_deref() == Some(presented)
            && rotated_ms.is_some_and(|at| now_ms.saturating_sub(at) <= grace_ms);
        if in_grace { Plan::Grace } else { Plan::Reuse }
    }
}

/// The session after a rotation to `current` at `now_ms`.
pub(crate) fn rotated(s: Session, current: Issued, now_ms: i64) -> Session {
    let now = now_ms.div_euclid(1000);
    Session {
        prev_refresh_jti: Some(s.current.refresh_jti.clone()),
        prev_rotated_at: Some(now),
        prev_rotated_ms: Some(now_ms),
        rotations: s.rotations + 1,
        last_seen_at: now,
        current,
        ..s
    }
}

pub(crate) const USER_COLS: &str = "id, email, name, role, password_hash, disabled, created_at, updated_at";

pub(crate) const SESSION_COLS: &str = "id, user_id, email, role, created_at, expires_at, access_jti, access_iat, \
     access_exp, refresh_jti, refresh_iat, refresh_exp, prev_refresh_jti, prev_rotated_at, rotations, revoked_at, \
     revoke_reason, ip, user_agent, last_seen_at, prev_rotated_ms";

/// A `Session` from a row in `SESSION_COLS` order; `$get` is the driver's fallible getter.
macro_rules! session_from_row {
    ($r:ident . $get:ident) => {
        Session {
            id: $r.$get(0)?,
            user_id: $r.$get(1)?,
            email: $r.$get(2)?,
            role: $r.$get(3)?,
            created_at: $r.$get(4)?,
            expires_at: $r.$get(5)?,
            current: Issued {
                access_jti: $r.$get(6)?,
                access_iat: $r.$get(7)?,
                access_exp: $r.$get(8)?,
                refresh_jti: $r.$get(9)?,
                refresh_iat: $r.$get(10)?,
                refresh_exp: $r.$get(11)?,
            },
            prev_refresh_jti: $r.$get(12)?,
            prev_rotated_at: $r.$get(13)?,
            rotations: $r.$get(14)?,
            revoked_at: $r.$get(15)?,
            revoke_reason: $r.$get(16)?,
            ip: $r.$get(17)?,
            user_agent: $r.$get(18)?,
            last_seen_at: $r.$get(19)?,
            prev_rotated_ms: $r.$get(20)?,
        }
    };
}
pub(crate) use session_from_row;

/// An audit `Record` from a row in `AUDIT_COLS` order.
macro_rules! record_from_row {
    ($r:ident . $get:ident) => {
        Record {
            at_ms: $r.$get(0)?,
            event: $r.$get(1)?,
            outcome: $r.$get(2)?,
            user_id: $r.$get(3)?,
            email: $r.$get(4)?,
            ip: $r.$get(5)?,
            user_agent: $r.$get(6)?,
            request_id: $r.$get(7)?,
            reason: $r.$get(8)?,
        }
    };
}
pub(crate) use record_from_row;

pub(crate) const AUDIT_COLS: &str = "at_ms, event, outcome, user_id, email, ip, user_agent, request_id, reason";

/// Opens (and migrates) the database `target` names, creating it when it is missing.
pub fn open(target: &Target) -> Result<Box<dyn Store>> {
    Ok(match target {
        Target::Sqlite(path) => Box::new(SqliteStore::open(path)?),
        Target::Postgres(url) => Box::new(PgStore::open(url)?),
    })
}

/// Opens a database that exists (a SQLite file that is there, a PostgreSQL database
/// with aspjwt's tables); refuses (`NoDatabase`) rather than create one.
pub fn open_existing(target: &Target) -> Result<Box<dyn Store>> {
    Ok(match target {
        Target::Sqlite(path) if !path.is_file() || !SqliteStore::holds_aspjwt(path) => {
            return Err(StoreError::NoDatabase);
        }
        Target::Sqlite(path) => Box::new(SqliteStore::open(path)?),
        Target::Postgres(url) => Box::new(PgStore::open_existing(url)?),
    })
}

/// A SQLite target that is a non-empty file but not an aspjwt database.
pub fn foreign_sqlite(target: &Target) -> bool {
    match target {
        Target::Sqlite(path) => {
            path.metadata().is_ok_and(|m| !m.is_file() || m.len() > 0) && !SqliteStore::holds_aspjwt(path)
        }
        Target::Postgres(_) => false,
    }
}

/// One revocation, in the order they happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revocation {
    pub seq: i64,
    pub session_id: String,
    pub revoked_at: i64,
}

/// An account's failed-login state with its key (a normalised email), as backed up.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ThrottleRow {
    pub key: String,
    pub consecutive: i64,
    pub locked_until: i64,
    pub window_start: i64,
    pub window_failures: i64,
}

/// How a restore treats the database it loads into.
#[derive(Debug, Clone, Copy, Default)]
pub struct Import {
    /// Delete what the database holds first (`restore --force`).
    pub replace: bool,
    /// Restore every session as revoked (`restore --revoke-sessions`): nobody's old
    /// session comes back, whatever the backup held.
    pub revoke_sessions: bool,
    pub now: i64,
}

/// The sessions a restore publishes on the revocation feed, so that a service still
/// running on the database drops them at its next poll (their rows are gone or revoked,
/// and a service keeps live sessions in memory): every session the database held
/// before, unless the backup brings it back live, and every session the backup holds
/// revoked (all of them with `revoke_all`).
pub(crate) fn restore_revocations(before: &[String], rows: &[BackupRow], revoke_all: bool) -> Vec<String> {
    let mut live = std::collections::HashSet::new();
    let mut out: Vec<String> = Vec::new();
    for r in rows {
        if let BackupRow::Session(s) = r {
            if s.revoked_at.is_none() && !revoke_all {
                live.insert(s.id.as_str());
            } else {
                out.push(s.id.clone());
            }
        }
    }
    let restored: std::collections::HashSet<&str> = out.iter().map(String::as_str).collect();
    let gone: Vec<String> =
        before.iter().filter(|id| !live.contains(id.as_str()) && !restored.contains(id.as_str())).cloned().collect();
    out.extend(gone);
    out
}

/// One row of a backup (`crate::backup`), the same for both stores.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "table", content = "row")]
pub enum BackupRow {
    #[serde(rename = "users")]
    User(User),
    #[serde(rename = "sessions")]
    Session(Session),
    #[serde(rename = "audit_events")]
    AuditEvent(Record),
    #[serde(rename = "login_throttle")]
    Throttle(ThrottleRow),
}

/// Filters for reading the audit log.
#[derive(Debug, Clone, Default)]
pub struct AuditQuery {
    pub since_ms: Option<i64>,
    pub event: Option<String>,
    /// Matches the recorded email (normalised) or the user id.
    pub user: Option<String>,
    pub limit: usize,
}

pub trait Store: Send + Sync + 'static {
    /// Cheap liveness check of the database.
    fn ping(&self) -> Result<()>;

    fn create_user(&self, user: NewUser, now: i64) -> Result<User>;
    fn user_by_email(&self, email: &str) -> Result<Option<User>>;
    fn user_by_id(&self, id: &str) -> Result<Option<User>>;
    fn list_users(&self) -> Result<Vec<User>>;
    /// Refuses (`LastAdmin`) to disable the last enabled admin.
    fn set_disabled(&self, email: &str, disabled: bool, now: i64) -> Result<User>;
    fn set_password(&self, email: &str, password_hash: &str, now: i64) -> Result<User>;
    /// Refuses (`LastAdmin`) to take the role from the last enabled admin.
    fn set_role(&self, email: &str, role: &str, now: i64) -> Result<User>;

    /// Creates a session, atomically with a check that its user is still as the login
    /// saw them (enabled, same role, same password hash): a disable, new role or new
    /// password that lands while the password is being verified wins (`UserChanged`).
    fn create_session(&self, session: NewSession) -> Result<()>;
    /// The bcrypt costs of the users whose hashes are still bcrypt (imported from the
    /// Node backend, not yet upgraded at a login): how many remain, and the most any
    /// login must pay (`password::plan`).
    fn legacy_hash_costs(&self) -> Result<Vec<u32>>;
    /// Creates (or, by `on_conflict`, skips or updates) every user in one transaction,
    /// with an audit record for each created or updated one; nothing is written when any
    /// fails (an email that exists with `Fail`, an id another user has, the last admin).
    /// Without `commit` (a dry run) the same transaction is rolled back: a dry run meets
    /// every rule the import would.
    fn import_users(
        &self,
        users: &[ImportUser],
        on_conflict: OnConflict,
        now: i64,
        audit: ImportAudit<'_>,
        commit: bool,
    ) -> Result<Vec<Outcome>>;
    fn session(&self, id: &str) -> Result<Option<Session>>;
    /// Exactly-once rotation: `presented` is the refresh token's jti. The new pair's
    /// expiries are capped at the session's absolute end. The previous token is
    /// accepted (the grace answer) for `grace_ms` milliseconds after it was replaced.
    /// The audit record of the outcome (`Rotation::audit_record` of `audit`) is written
    /// in the same transaction.
    fn rotate(
        &self,
        id: &str,
        presented: &str,
        next: Issued,
        now_ms: i64,
        grace_ms: i64,
        audit: &Record,
    ) -> Result<Rotation>;
    /// Revokes one session; false when it was already revoked or unknown.
    fn revoke_session(&self, id: &str, reason: &str, now: i64) -> Result<bool>;
    fn revoke_user_sessions(&self, user_id: &str, reason: &str, now: i64) -> Result<usize>;
    /// Revokes every live session; returns the ids of those it ended (from its own
    /// transaction, so two runs at once never claim each other's).
    fn revoke_all_sessions(&self, reason: &str, now: i64) -> Result<Vec<String>>;
    /// Sessions, newest first; only live ones unless `all`.
    fn list_sessions(&self, user_id: Option<&str>, all: bool, now: i64) -> Result<Vec<Session>>;
    /// Sessions not revoked whose refresh token expired at or before `refresh_before`, or
    /// whose absolute end has passed by `now`: over, though nothing ended them. At most `limit`.
    fn lapsed_sessions(&self, now: i64, refresh_before: i64, limit: i64) -> Result<Vec<Session>>;
    fn revocations_since(&self, seq: i64) -> Result<Vec<Revocation>>;
    /// Revocations at or after `since` (epoch seconds), to seed a fresh cache.
    fn revocations_after(&self, since: i64) -> Result<Vec<Revocation>>;
    /// The newest revocation's sequence number (0 when none).
    fn revocation_cursor(&self) -> Result<i64>;

    /// The failed-login state of an account key (a normalised email, existing or not).
    fn throttle(&self, key: &str) -> Result<Throttle>;
    /// Records one failed login atomically and returns the new state.
    fn record_login_failure(&self, key: &str, now: i64) -> Result<Throttle>;
    /// A successful login resets the account's failure count.
    fn clear_throttle(&self, key: &str) -> Result<()>;
    /// Sessions neither revoked nor past their end.
    fn count_live_sessions(&self, now: i64) -> Result<i64>;

    fn audit(&self, record: &Record) -> Result<()>;
    /// Every user, session, audit event and account throttle, from one consistent
    /// snapshot (the service may be running): users, then sessions, audit events in
    /// time order, throttles.
    fn export(&self) -> Result<Vec<BackupRow>>;
    /// Loads `rows` in one transaction. A database that already has users is refused
    /// (`NotEmpty`) unless `opts.replace`, which first deletes everything in it. What a
    /// running service must stop honouring is published on the revocation feed (see
    /// `restore_revocations`).
    fn import(&self, rows: &[BackupRow], opts: &Import) -> Result<()>;
    /// Flushes and closes cleanly (on shutdown).
    fn close(&self) -> Result<()>;
    fn audit_query(&self, query: &AuditQuery) -> Result<Vec<Record>>;
}

/// "2 user(s), 0 session(s), …": what a database holds, for a refused restore.
pub(crate) fn holds((users, sessions, audit, throttles): (i64, i64, i64, i64)) -> String {
    format!("{users} user(s), {sessions} session(s), {audit} audit event(s), {throttles} account throttle(s)")
}

/// Whether a change leaves `user` an enabled admin; if not and it is the last one, the
/// change is refused. `enabled_admins` counts them, the change not yet made.
pub(crate) fn guard_last_admin(user: &User, stays_admin: bool, enabled_admins: i64) -> Result<()> {
    let is_admin = user.role == crate::names::ADMIN_ROLE && !user.disabled;
    if is_admin && !stays_admin && enabled_admins <= 1 {
        return Err(StoreError::LastAdmin(user.email.clone()));
    }
    Ok(())
}

/// How emails are compared and stored: trimmed and lower-cased.
pub fn normalize_email(email: &str) -> String {
    email.trim().to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn issued(n: &str, at: i64) -> Issued {
        Issued {
            access_jti: format!("a{n}"),
            access_iat: at,
            access_exp: at + 900,
            refresh_jti: format!("r{n}"),
            refresh_iat: at,
            refresh_exp: at + 3600,
        }
    }

    #[test]
    fn grace_is_counted_in_milliseconds() {
        let s = Session {
            id: "s".into(),
            user_id: "u".into(),
            email: "a@b.c".into(),
            role: "admin".into(),
            created_at: 1000,
            expires_at: 10_000,
            current: issued("2", 1000),
            prev_refresh_jti: Some("r1".into()),
            prev_rotated_at: Some(1000),
            prev_rotated_ms: Some(1_000_900),
            rotations: 1,
            revoked_at: None,
            revoke_reason: None,
            ip: None,
            user_agent: None,
            last_seen_at: 1000,
        };
        let at = |ms: i64| Plan::decide(&s, "r1", issued("3", ms / 1000), ms, 3000);
        assert_eq!(at(1_003_900), Plan::Grace, "exactly the grace");
        assert_eq!(at(1_003_901), Plan::Reuse, "a millisecond past it (in seconds: 1003 - 1000 = 3, inside)");
        // A row rotated before milliseconds were kept counts from the start of its second.
        let old = Session { prev_rotated_ms: None, ..s.clone() };
        assert_eq!(Plan::decide(&old, "r1", issued("3", 1003), 1_003_000, 3000), Plan::Grace);
        assert_eq!(Plan::decide(&old, "r1", issued("3", 1003), 1_003_001, 3000), Plan::Reuse);
    }
}
