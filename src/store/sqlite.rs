//! The embedded default: SQLite through rusqlite, in WAL mode, one writer
//! connection (writes are serialised, which makes rotation a compare-and-swap in
//! one immediate transaction) and a few reader connections.

use std::path::Path;
use std::sync::Mutex;
use std::sync::atomic::{AtomicUsize, Ordering};

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, TransactionBehavior, params};

use super::{
    AUDIT_COLS, AuditQuery, BackupRow, ImportAudit, ImportUser, Imported, Issued, NewSession, NewUser, OnConflict,
    Plan, Result, Revocation, Rotation, SESSION_COLS, Session, Store, StoreError, ThrottleRow, USER_COLS, User,
    guard_last_admin, import_update, normalize_email, record_from_row, rotated, session_from_row,
};
use crate::audit::Record;
use crate::throttle::Throttle;

/// Schema versions, applied in order at open; `PRAGMA user_version` records the last.
const MIGRATIONS: &[&str] = &[
    // 1: users, sessions with rotation state, revocations feed, audit log.
    r#"
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        disabled INTEGER NOT NULL DEFAULT 0,
        created_at INTEGER NOT NULL,
        updated_at INTEGER NOT NULL
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id),
        email TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at INTEGER NOT NULL,
        expires_at INTEGER NOT NULL,
        access_jti TEXT NOT NULL,
        access_iat INTEGER NOT NULL,
        access_exp INTEGER NOT NULL,
        refresh_jti TEXT NOT NULL,
        refresh_iat INTEGER NOT NULL,
        refresh_exp INTEGER NOT NULL,
        prev_refresh_jti TEXT,
        prev_rotated_at INTEGER,
        rotations INTEGER NOT NULL DEFAULT 0,
        revoked_at INTEGER,
        revoke_reason TEXT,
        ip TEXT,
        user_agent TEXT,
        last_seen_at INTEGER NOT NULL
    );
    CREATE INDEX sessions_user ON sessions(user_id);
    CREATE TABLE revocations (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        session_id TEXT NOT NULL,
        revoked_at INTEGER NOT NULL
    );
    CREATE INDEX revocations_at ON revocations(revoked_at);
    CREATE TABLE audit_events (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at_ms INTEGER NOT NULL,
        event TEXT NOT NULL,
        outcome TEXT NOT NULL,
        user_id TEXT,
        email TEXT,
        ip TEXT,
        user_agent TEXT,
        request_id TEXT,
        reason TEXT
    );
    CREATE INDEX audit_at ON audit_events(at_ms);
    "#,
    // 2: per-account failed-login throttling.
    r#"
    CREATE TABLE login_throttle (
        key TEXT PRIMARY KEY,
        consecutive INTEGER NOT NULL,
        locked_until INTEGER NOT NULL,
        window_start INTEGER NOT NULL,
        window_failures INTEGER NOT NULL
    );
    "#,
    // 3: one row the readiness probe rewrites, so a full or read-only disk shows as not ready.
    r#"
    CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at INTEGER NOT NULL);
    "#,
    // 4: the grace period counted in milliseconds.
    r#"
    ALTER TABLE sessions ADD COLUMN prev_rotated_ms INTEGER;
    UPDATE sessions SET prev_rotated_ms = prev_rotated_at * 1000 WHERE prev_rotated_at IS NOT NULL;
    "#,
];

const READERS: usize = 4;

pub struct SqliteStore {
    writer: Mutex<Connection>,
    readers: Vec<Mutex<Connection>>,
    next: AtomicUsize,
}

fn db(e: rusqlite::Error) -> StoreError {
    match e {
        rusqlite::Error::SqliteFailure(f, _)
            if matches!(
                f.code,
                rusqlite::ErrorCode::CannotOpen
                    | rusqlite::ErrorCode::ReadOnly
                    | rusqlite::ErrorCode::DiskFull
                    | rusqlite::ErrorCode::SystemIoFailure
                    | rusqlite::ErrorCode::DatabaseBusy
                    | rusqlite::ErrorCode::DatabaseLocked
            ) =>
        {
            StoreError::Unavailable(f.to_string())
        }
        // SQLite quotes the whole statement after " in ": one line, not our schema.
        rusqlite::Error::SqlInputError { msg, .. } => StoreError::Db(msg),
        other => StoreError::Db(other.to_string()),
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // A panic while holding the lock leaves the connection usable: SQLite rolls back.
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn configure(conn: &Connection) -> rusqlite::Result<()> {
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    conn.pragma_update(None, "foreign_keys", "ON")?;
    conn.pragma_update(None, "synchronous", "NORMAL")?;
    Ok(())
}

impl SqliteStore {
    /// Opens (creating with mode 0600 if needed) and migrates the database at `path`.
    pub fn open(path: &Path) -> Result<SqliteStore> {
        if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .map_err(|e| StoreError::Unavailable(format!("{}: cannot create the folder: {e}", dir.display())))?;
        }
        if !path.exists() {
            use std::os::unix::fs::OpenOptionsExt;
            std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(path)
                .map(drop)
                .or_else(|e| match e.kind() {
                    // Another process created it first: open theirs.
                    std::io::ErrorKind::AlreadyExists => Ok(()),
                    _ => Err(e),
                })
                .map_err(|e| StoreError::Unavailable(format!("{}: cannot create: {e}", path.display())))?;
        }
        let open = |flags| {
            Connection::open_with_flags(path, flags)
                .map_err(|e| StoreError::Unavailable(format!("{}: {e}", path.display())))
        };
        let writer = open(OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
        configure(&writer).map_err(db)?;
        // Switching to WAL needs a moment alone with the file; another process opening it
        // at the same time gets SQLITE_BUSY at once (no busy handler here), so retry.
        let mode: String =
            retry_busy(|| writer.pragma_update_and_check(None, "journal_mode", "WAL", |r| r.get(0))).map_err(db)?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(StoreError::Db(format!("could not switch to WAL mode (got {mode})")));
        }
        migrate(&writer)?;
        let readers = (0..READERS)
            .map(|_| {
                let c = open(OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX)?;
                configure(&c).map_err(db)?;
                Ok(Mutex::new(c))
            })
            .collect::<Result<Vec<_>>>()?;
        Ok(SqliteStore { writer: Mutex::new(writer), readers, next: AtomicUsize::new(0) })
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T> {
        let i = self.next.fetch_add(1, Ordering::Relaxed) % self.readers.len();
        f(&lock(&self.readers[i])).map_err(db)
    }

    fn write<T>(&self, f: impl FnOnce(&rusqlite::Transaction) -> Result<T>) -> Result<T> {
        self.write_then(true, f)
    }

    /// `write`, committed or (a dry run) rolled back.
    fn write_then<T>(&self, commit: bool, f: impl FnOnce(&rusqlite::Transaction) -> Result<T>) -> Result<T> {
        let mut conn = lock(&self.writer);
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate).map_err(db)?;
        let out = f(&tx)?;
        if commit { tx.commit() } else { tx.rollback() }.map_err(db)?;
        Ok(out)
    }

    /// Whether the file is an aspjwt database (it has the users table), read without
    /// writing: an empty or foreign SQLite file must not be turned into one by a command
    /// that only reads (a dry run, `user list`, a mistyped `--db`).
    pub fn holds_aspjwt(path: &Path) -> bool {
        let Ok(c) = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY) else { return false };
        c.query_row("SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'users'", [], |r| {
            r.get::<_, i64>(0)
        })
        .is_ok_and(|n| n == 1)
    }

    /// The schema version in force.
    pub fn schema_version(&self) -> Result<i64> {
        self.read(|c| c.pragma_query_value(None, "user_version", |r| r.get(0)))
    }

    /// Runs `PRAGMA integrity_check`; "ok" when sound.
    pub fn integrity_check(&self) -> Result<String> {
        self.read(|c| c.query_row("PRAGMA integrity_check", [], |r| r.get(0)))
    }
}

/// Runs `f` again while SQLite answers busy or locked, for up to 5 s.
fn retry_busy<T>(mut f: impl FnMut() -> rusqlite::Result<T>) -> rusqlite::Result<T> {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    loop {
        match f() {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
                    && std::time::Instant::now() < deadline =>
            {
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

fn migrate(conn: &Connection) -> Result<()> {
    // Another process may be migrating the same new file: wait for it (then there is
    // nothing left to do), as for any busy database.
    let tx = retry_busy(|| rusqlite::Transaction::new_unchecked(conn, TransactionBehavior::Immediate)).map_err(db)?;
    let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0)).map_err(db)?;
    if version as usize > MIGRATIONS.len() {
        return Err(StoreError::Db(format!(
            "the database has schema version {version}, newer than this aspjwt knows ({}); upgrade aspjwt",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.execute_batch(sql).map_err(db)?;
        tx.pragma_update(None, "user_version", (i + 1) as i64).map_err(db)?;
    }
    tx.commit().map_err(db)
}

fn user_row(r: &Row) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        email: r.get(1)?,
        name: r.get(2)?,
        role: r.get(3)?,
        password_hash: r.get(4)?,
        disabled: r.get::<_, i64>(5)? != 0,
        created_at: r.get(6)?,
        updated_at: r.get(7)?,
    })
}

fn session_row(r: &Row) -> rusqlite::Result<Session> {
    Ok(session_from_row!(r.get))
}

fn load_throttle(c: &Connection, key: &str) -> rusqlite::Result<Throttle> {
    c.query_row(
        "SELECT consecutive, locked_until, window_start, window_failures FROM login_throttle WHERE key = ?1",
        [key],
        |r| {
            Ok(Throttle {
                consecutive: r.get(0)?,
                locked_until: r.get(1)?,
                window_start: r.get(2)?,
                window_failures: r.get(3)?,
            })
        },
    )
    .optional()
    .map(Option::unwrap_or_default)
}

static SELECT_SESSION: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| format!("SELECT {SESSION_COLS} FROM sessions WHERE id = ?1"));

fn load_session(c: &Connection, id: &str) -> rusqlite::Result<Option<Session>> {
    c.prepare_cached(&SELECT_SESSION)?.query_row([id], session_row).optional()
}

fn load_user(c: &Connection, email: &str) -> Result<User> {
    c.query_row(&format!("SELECT {USER_COLS} FROM users WHERE email = ?1"), [normalize_email(email)], user_row)
        .optional()
        .map_err(db)?
        .ok_or_else(|| StoreError::NoSuchUser(email.to_string()))
}

/// Marks sessions revoked and appends them to the revocations feed.
fn revoke_where(
    tx: &rusqlite::Transaction,
    filter: &str,
    arg: Option<&str>,
    reason: &str,
    now: i64,
) -> Result<Vec<String>> {
    let ids: Vec<String> = {
        let sql = format!("SELECT id FROM sessions WHERE revoked_at IS NULL AND {filter}");
        let mut stmt = tx.prepare(&sql).map_err(db)?;
        stmt.query_map(rusqlite::params_from_iter(arg), |r| r.get(0))
            .map_err(db)?
            .collect::<rusqlite::Result<_>>()
            .map_err(db)?
    };
    for id in &ids {
        tx.execute("UPDATE sessions SET revoked_at = ?1, revoke_reason = ?2 WHERE id = ?3", params![now, reason, id])
            .map_err(db)?;
        tx.execute("INSERT INTO revocations (session_id, revoked_at) VALUES (?1, ?2)", params![id, now]).map_err(db)?;
    }
    Ok(ids)
}

/// The rotation decision and its writes, inside the caller's transaction.
fn decide_rotation(
    tx: &rusqlite::Transaction,
    id: &str,
    presented: &str,
    next: Issued,
    now_ms: i64,
    grace_ms: i64,
) -> Result<Rotation> {
    let now = now_ms.div_euclid(1000);
    let Some(s) = load_session(tx, id).map_err(db)? else { return Ok(Rotation::Unknown) };
    let revoke = |reason| -> Result<Session> {
        revoke_where(tx, "id = ?1", Some(id), reason, now)?;
        load_session(tx, id).map_err(db)?.ok_or_else(|| StoreError::Db("session vanished".into()))
    };
    Ok(match Plan::decide(&s, presented, next, now_ms, grace_ms) {
        Plan::AlreadyRevoked => Rotation::Revoked(s),
        Plan::Grace => Rotation::Grace(s),
        Plan::Expire => Rotation::Expired(revoke("session_max_lifetime")?),
        Plan::Reuse => Rotation::Reused(revoke("refresh_token_reuse")?),
        Plan::Rotate(c) => {
            // Compare-and-swap: only the holder of the current jti moves the session on.
            let changed = tx
                .prepare_cached(
                    "UPDATE sessions SET prev_refresh_jti = refresh_jti, prev_rotated_at = ?1, \
                     prev_rotated_ms = ?10, access_jti = ?2, access_iat = ?3, access_exp = ?4, \
                     refresh_jti = ?5, refresh_iat = ?6, refresh_exp = ?7, \
                     rotations = rotations + 1, last_seen_at = ?1 \
                     WHERE id = ?8 AND refresh_jti = ?9 AND revoked_at IS NULL",
                )
                .map_err(db)?
                .execute(params![
                    now,
                    c.access_jti,
                    c.access_iat,
                    c.access_exp,
                    c.refresh_jti,
                    c.refresh_iat,
                    c.refresh_exp,
                    id,
                    presented,
                    now_ms
                ])
                .map_err(db)?;
            if changed != 1 {
                return Err(StoreError::Db("rotation lost its compare-and-swap".into()));
            }
            Rotation::Rotated(rotated(s, c, now_ms))
        }
    })
}

/// Enabled admins, counted inside the writer's transaction (writes are serialised).
fn enabled_admins(tx: &rusqlite::Transaction) -> Result<i64> {
    tx.query_row("SELECT count(*) FROM users WHERE role = ?1 AND disabled = 0", [crate::names::ADMIN_ROLE], |r| {
        r.get(0)
    })
    .map_err(db)
}

fn insert_audit(tx: &rusqlite::Transaction, r: &Record) -> Result<()> {
    tx.prepare_cached(&format!("INSERT INTO audit_events ({AUDIT_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)"))
        .map_err(db)?
        .execute(params![r.at_ms, r.event, r.outcome, r.user_id, r.email, r.ip, r.user_agent, r.request_id, r.reason])
        .map_err(db)?;
    Ok(())
}

impl Store for SqliteStore {
    fn ping(&self) -> Result<()> {
        self.read(|c| c.query_row("SELECT count(*) FROM sqlite_master", [], |r| r.get::<_, i64>(0)))?;
        // Writable too: a read-only or full disk is not ready.
        self.write(|tx| {
            tx.execute("INSERT OR REPLACE INTO heartbeat (id, at) VALUES (1, strftime('%s','now'))", []).map_err(db)?;
            Ok(())
        })
    }

    fn create_user(&self, u: NewUser, now: i64) -> Result<User> {
        let email = normalize_email(&u.email);
        self.write(|tx| {
            let id = crate::token::random_id();
            let inserted = tx.execute(
                "INSERT INTO users (id, email, name, role, password_hash, disabled, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, 0, ?6, ?6) ON CONFLICT(email) DO NOTHING",
                params![id, email, u.name, u.role, u.password_hash, now],
            );
            match inserted.map_err(db)? {
                0 => Err(StoreError::DuplicateEmail(email.clone())),
                _ => load_user(tx, &email),
            }
        })
    }

    fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let email = normalize_email(email);
        self.read(|c| {
            c.query_row(&format!("SELECT {USER_COLS} FROM users WHERE email = ?1"), [email], user_row).optional()
        })
    }

    fn user_by_id(&self, id: &str) -> Result<Option<User>> {
        self.read(|c| c.query_row(&format!("SELECT {USER_COLS} FROM users WHERE id = ?1"), [id], user_row).optional())
    }

    fn list_users(&self) -> Result<Vec<User>> {
        self.read(|c| {
            let mut stmt = c.prepare(&format!("SELECT {USER_COLS} FROM users ORDER BY email"))?;
            stmt.query_map([], user_row)?.collect()
        })
    }

    fn set_disabled(&self, email: &str, disabled: bool, now: i64) -> Result<User> {
        self.write(|tx| {
            let user = load_user(tx, email)?;
            guard_last_admin(&user, !disabled, enabled_admins(tx)?)?;
            tx.execute(
                "UPDATE users SET disabled = ?1, updated_at = ?2 WHERE id = ?3",
                params![disabled as i64, now, user.id],
            )
            .map_err(db)?;
            load_user(tx, email)
        })
    }

    fn set_password(&self, email: &str, hash: &str, now: i64) -> Result<User> {
        self.write(|tx| {
            let user = load_user(tx, email)?;
            tx.execute(
                "UPDATE users SET password_hash = ?1, updated_at = ?2 WHERE id = ?3",
                params![hash, now, user.id],
            )
            .map_err(db)?;
            load_user(tx, email)
        })
    }

    fn set_role(&self, email: &str, role: &str, now: i64) -> Result<User> {
        self.write(|tx| {
            let user = load_user(tx, email)?;
            guard_last_admin(&user, role == crate::names::ADMIN_ROLE, enabled_admins(tx)?)?;
            tx.execute("UPDATE users SET role = ?1, updated_at = ?2 WHERE id = ?3", params![role, now, user.id])
                .map_err(db)?;
            load_user(tx, email)
        })
    }

    fn create_session(&self, s: NewSession) -> Result<()> {
        self.write(|tx| {
            // One statement: the row is inserted only if the user is still the one the
            // login checked (writes are serialised, so no change can land in between).
            let inserted = tx
                .prepare_cached(&format!(
                    "INSERT INTO sessions ({SESSION_COLS}) SELECT \
                     ?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, NULL, NULL, 0, NULL, NULL, ?13, ?14, ?5, NULL \
                     FROM users WHERE id = ?2 AND role = ?4 AND disabled = 0 AND password_hash = ?15"
                ))
                .and_then(|mut st| {
                    st.execute(params![
                        s.id,
                        s.user_id,
                        s.email,
                        s.role,
                        s.created_at,
                        s.expires_at,
                        s.issued.access_jti,
                        s.issued.access_iat,
                        s.issued.access_exp,
                        s.issued.refresh_jti,
                        s.issued.refresh_iat,
                        s.issued.refresh_exp,
                        s.ip,
                        s.user_agent,
                        s.password_hash
                    ])
                })
                .map_err(db)?;
            if inserted == 0 {
                return Err(StoreError::UserChanged);
            }
            if let Some(r) = &s.rehash {
                let changed = tx
                    .execute(
                        "UPDATE users SET password_hash = ?1, updated_at = ?2 WHERE id = ?3 AND password_hash = ?4",
                        params![r.password_hash, s.created_at, s.user_id, s.password_hash],
                    )
                    .map_err(db)?;
                if changed == 0 {
                    return Err(StoreError::UserChanged);
                }
                insert_audit(tx, &r.audit)?;
            }
            Ok(())
        })
    }

    fn import_users(
        &self,
        users: &[ImportUser],
        on_conflict: OnConflict,
        now: i64,
        audit: ImportAudit<'_>,
        commit: bool,
    ) -> Result<Vec<super::Outcome>> {
        self.write_then(commit, |tx| {
            let mut out = Vec::with_capacity(users.len());
            for u in users {
                let existing = match load_user(tx, &u.email) {
                    Ok(x) => Some(x),
                    Err(StoreError::NoSuchUser(_)) => None,
                    Err(e) => return Err(e),
                };
                let before = existing.clone();
                let what = match (existing, on_conflict) {
                    (None, _) => {
                        let id = u.id.clone().unwrap_or_else(crate::token::random_id);
                        let taken: Option<i64> =
                            tx.query_row("SELECT 1 FROM users WHERE id = ?1", [&id], |r| r.get(0)).optional().map_err(db)?;
                        if taken.is_some() {
                            return Err(StoreError::DuplicateId(id));
                        }
                        tx.execute(
                            "INSERT INTO users (id, email, name, role, password_hash, disabled, created_at, updated_at) \
                             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?7)",
                            params![id, u.email, u.name, u.role, u.password_hash, u.disabled.unwrap_or(false), now],
                        )
                        .map_err(db)?;
                        Imported::Created
                    }
                    (Some(x), OnConflict::Skip) => {
                        out.push((Imported::Skipped, Some(x.clone()), x));
                        continue;
                    }
                    (Some(_), OnConflict::Fail) => return Err(StoreError::DuplicateEmail(u.email.clone())),
                    (Some(x), OnConflict::Update) => {
                        let (hash, disabled) = import_update(&x, u);
                        let stays = u.role == crate::names::ADMIN_ROLE && !disabled;
                        guard_last_admin(&x, stays, enabled_admins(tx)?)?;
                        tx.execute(
                            "UPDATE users SET name = ?1, role = ?2, password_hash = ?3, disabled = ?4, updated_at = ?5 \
                             WHERE id = ?6",
                            params![u.name, u.role, hash, disabled, now, x.id],
                        )
                        .map_err(db)?;
                        Imported::Updated
                    }
                };
                let user = load_user(tx, &u.email)?;
                insert_audit(tx, &audit(before.as_ref(), &user, what))?;
                out.push((what, before, user));
            }
            Ok(out)
        })
    }

    fn legacy_hash_costs(&self) -> Result<Vec<u32>> {
        self.read(|c| {
            let mut stmt =
                c.prepare_cached("SELECT substr(password_hash, 5, 2) FROM users WHERE password_hash LIKE '$2%'")?;
            let costs = stmt.query_map([], |r| r.get::<_, String>(0))?.collect::<rusqlite::Result<Vec<_>>>()?;
            Ok(costs.iter().filter_map(|c| c.parse().ok()).collect())
        })
    }

    fn session(&self, id: &str) -> Result<Option<Session>> {
        self.read(|c| load_session(c, id))
    }

    fn rotate(
        &self,
        id: &str,
        presented: &str,
        next: Issued,
        now_ms: i64,
        grace_ms: i64,
        audit: &Record,
    ) -> Result<Rotation> {
        self.write(|tx| {
            let outcome = decide_rotation(tx, id, presented, next, now_ms, grace_ms)?;
            insert_audit(tx, &outcome.audit_record(audit))?;
            Ok(outcome)
        })
    }

    fn revoke_session(&self, id: &str, reason: &str, now: i64) -> Result<bool> {
        self.write(|tx| revoke_where(tx, "id = ?1", Some(id), reason, now).map(|ids| !ids.is_empty()))
    }

    fn revoke_user_sessions(&self, user_id: &str, reason: &str, now: i64) -> Result<usize> {
        self.write(|tx| revoke_where(tx, "user_id = ?1", Some(user_id), reason, now).map(|ids| ids.len()))
    }

    fn revoke_all_sessions(&self, reason: &str, now: i64) -> Result<Vec<String>> {
        self.write(|tx| revoke_where(tx, &format!("expires_at > {now} AND refresh_exp > {now}"), None, reason, now))
    }

    fn list_sessions(&self, user_id: Option<&str>, all: bool, now: i64) -> Result<Vec<Session>> {
        self.read(|c| {
            let live = if all { "?2 IS NOT NULL" } else { "revoked_at IS NULL AND expires_at > ?2 AND refresh_exp > ?2" };
            let sql = format!(
                "SELECT {SESSION_COLS} FROM sessions WHERE (?1 IS NULL OR user_id = ?1) AND {live} ORDER BY created_at DESC, id"
            );
            let mut stmt = c.prepare(&sql)?;
            stmt.query_map(params![user_id, now], session_row)?.collect()
        })
    }

    fn lapsed_sessions(&self, now: i64, refresh_before: i64, limit: i64) -> Result<Vec<Session>> {
        self.read(|c| {
            let sql = format!(
                "SELECT {SESSION_COLS} FROM sessions WHERE revoked_at IS NULL AND (refresh_exp <= ?1 OR expires_at <= ?2) \
                 ORDER BY refresh_exp LIMIT ?3"
            );
            let mut stmt = c.prepare_cached(&sql)?;
            stmt.query_map(params![refresh_before, now, limit], session_row)?.collect()
        })
    }

    fn revocations_since(&self, seq: i64) -> Result<Vec<Revocation>> {
        self.read(|c| {
            let mut stmt =
                c.prepare("SELECT seq, session_id, revoked_at FROM revocations WHERE seq > ?1 ORDER BY seq")?;
            stmt.query_map([seq], |r| Ok(Revocation { seq: r.get(0)?, session_id: r.get(1)?, revoked_at: r.get(2)? }))?
                .collect()
        })
    }

    fn revocations_after(&self, since: i64) -> Result<Vec<Revocation>> {
        self.read(|c| {
            let mut stmt =
                c.prepare("SELECT seq, session_id, revoked_at FROM revocations WHERE revoked_at >= ?1 ORDER BY seq")?;
            stmt.query_map([since], |r| {
                Ok(Revocation { seq: r.get(0)?, session_id: r.get(1)?, revoked_at: r.get(2)? })
            })?
            .collect()
        })
    }

    fn revocation_cursor(&self) -> Result<i64> {
        self.read(|c| c.query_row("SELECT coalesce(max(seq), 0) FROM revocations", [], |r| r.get(0)))
    }

    fn throttle(&self, key: &str) -> Result<Throttle> {
        self.read(|c| load_throttle(c, key))
    }

    fn record_login_failure(&self, key: &str, now: i64) -> Result<Throttle> {
        self.write(|tx| {
            let next = load_throttle(tx, key).map_err(db)?.after_failure(now);
            tx.execute(
                "INSERT INTO login_throttle (key, consecutive, locked_until, window_start, window_failures) \
                 VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT(key) DO UPDATE SET consecutive = ?2, locked_until = ?3, \
                 window_start = ?4, window_failures = ?5",
                params![key, next.consecutive, next.locked_until, next.window_start, next.window_failures],
            )
            .map_err(db)?;
            Ok(next)
        })
    }

    fn clear_throttle(&self, key: &str) -> Result<()> {
        self.write(|tx| {
            // The hourly window keeps counting; only the consecutive run resets.
            tx.execute("UPDATE login_throttle SET consecutive = 0 WHERE key = ?1", [key]).map_err(db)?;
            Ok(())
        })
    }

    fn count_live_sessions(&self, now: i64) -> Result<i64> {
        self.read(|c| {
            c.query_row(
                "SELECT count(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > ?1 AND refresh_exp > ?1",
                [now],
                |r| r.get(0),
            )
        })
    }

    fn audit(&self, r: &Record) -> Result<()> {
        self.write(|tx| insert_audit(tx, r))
    }

    /// Checkpoints the WAL into the main file.
    fn close(&self) -> Result<()> {
        lock(&self.writer).execute_batch("PRAGMA wal_checkpoint(TRUNCATE);").map_err(db)
    }

    fn export(&self) -> Result<Vec<BackupRow>> {
        // One read transaction: in WAL mode every statement in it sees the same snapshot,
        // whatever the service writes meanwhile.
        self.read(|c| {
            let tx = c.unchecked_transaction()?;
            let mut rows = Vec::new();
            let mut users = tx.prepare(&format!("SELECT {USER_COLS} FROM users ORDER BY created_at, id"))?;
            for u in users.query_map([], user_row)? {
                rows.push(BackupRow::User(u?));
            }
            let mut sessions = tx.prepare(&format!("SELECT {SESSION_COLS} FROM sessions ORDER BY created_at, id"))?;
            for s in sessions.query_map([], session_row)? {
                rows.push(BackupRow::Session(s?));
            }
            let mut audit = tx.prepare(&format!("SELECT {AUDIT_COLS} FROM audit_events ORDER BY id"))?;
            for r in audit.query_map([], |r| Ok(record_from_row!(r.get)))? {
                rows.push(BackupRow::AuditEvent(r?));
            }
            let mut throttles = tx.prepare(
                "SELECT key, consecutive, locked_until, window_start, window_failures FROM login_throttle ORDER BY key",
            )?;
            for t in throttles.query_map([], |r| {
                Ok(ThrottleRow {
                    key: r.get(0)?,
                    consecutive: r.get(1)?,
                    locked_until: r.get(2)?,
                    window_start: r.get(3)?,
                    window_failures: r.get(4)?,
                })
            })? {
                rows.push(BackupRow::Throttle(t?));
            }
            drop((users, sessions, audit, throttles));
            tx.commit()?;
            Ok(rows)
        })
    }

    fn import(&self, rows: &[BackupRow], opts: &super::Import) -> Result<()> {
        self.write(|tx| {
            let held: (i64, i64, i64, i64) = tx
                .query_row(
                    "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM sessions), \
                     (SELECT count(*) FROM audit_events), (SELECT count(*) FROM login_throttle)",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
                )
                .map_err(db)?;
            if held != (0, 0, 0, 0) && !opts.replace {
                return Err(StoreError::NotEmpty(super::holds(held)));
            }
            let before: Vec<String> = tx
                .prepare("SELECT id FROM sessions")
                .and_then(|mut st| st.query_map([], |r| r.get(0))?.collect())
                .map_err(db)?;
            tx.execute_batch(
                "DELETE FROM revocations; DELETE FROM sessions; DELETE FROM users; \
                 DELETE FROM audit_events; DELETE FROM login_throttle;",
            )
            .map_err(db)?;
            let session_values = (1..=21).map(|i| format!("?{i}")).collect::<Vec<_>>().join(", ");
            for row in rows {
                match row {
                    BackupRow::User(u) => tx
                        .prepare_cached(&format!("INSERT INTO users ({USER_COLS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)"))
                        .and_then(|mut st| {
                            st.execute(params![
                                u.id,
                                u.email,
                                u.name,
                                u.role,
                                u.password_hash,
                                u.disabled as i64,
                                u.created_at,
                                u.updated_at
                            ])
                        }),
                    BackupRow::Session(s) => tx
                        .prepare_cached(&format!("INSERT INTO sessions ({SESSION_COLS}) VALUES ({session_values})"))
                        .and_then(|mut st| {
                            let c = &s.current;
                            st.execute(params![
                                s.id,
                                s.user_id,
                                s.email,
                                s.role,
                                s.created_at,
                                s.expires_at,
                                c.access_jti,
                                c.access_iat,
                                c.access_exp,
                                c.refresh_jti,
                                c.refresh_iat,
                                c.refresh_exp,
                                s.prev_refresh_jti,
                                s.prev_rotated_at,
                                s.rotations,
                                s.revoked_at,
                                s.revoke_reason,
                                s.ip,
                                s.user_agent,
                                s.last_seen_at,
                                s.prev_rotated_ms
                            ])
                        }),
                    BackupRow::AuditEvent(r) => {
                        insert_audit(tx, r)?;
                        Ok(1)
                    }
                    BackupRow::Throttle(t) => tx
                        .prepare_cached(
                            "INSERT INTO login_throttle (key, consecutive, locked_until, window_start, window_failures) \
                             VALUES (?1, ?2, ?3, ?4, ?5)",
                        )
                        .and_then(|mut st| {
                            st.execute(params![t.key, t.consecutive, t.locked_until, t.window_start, t.window_failures])
                        }),
                }
                .map_err(db)?;
            }
            if opts.revoke_sessions {
                tx.execute(
                    "UPDATE sessions SET revoked_at = ?1, revoke_reason = 'restored' WHERE revoked_at IS NULL",
                    params![opts.now],
                )
                .map_err(db)?;
            }
            // AUTOINCREMENT: these sequence numbers follow every one the feed has shown.
            let mut st =
                tx.prepare_cached("INSERT INTO revocations (session_id, revoked_at) VALUES (?1, ?2)").map_err(db)?;
            for id in super::restore_revocations(&before, rows, opts.revoke_sessions) {
                st.execute(params![id, opts.now]).map_err(db)?;
            }
            Ok(())
        })
    }

    fn audit_query(&self, q: &AuditQuery) -> Result<Vec<Record>> {
        let user = q.user.as_deref().map(normalize_email);
        self.read(|c| {
            let mut stmt = c.prepare(&format!(
                "SELECT {AUDIT_COLS} FROM audit_events \
                 WHERE (?1 IS NULL OR at_ms >= ?1) AND (?2 IS NULL OR event = ?2) \
                 AND (?3 IS NULL OR lower(trim(email)) = ?3 OR user_id = ?5 \
                      OR user_id IN (SELECT id FROM users WHERE email = ?3)) \
                 ORDER BY at_ms DESC, id DESC LIMIT ?4"
            ))?;
            let limit = if q.limit == 0 { i64::MAX } else { q.limit as i64 };
            stmt.query_map(params![q.since_ms, q.event, user, limit, q.user.as_deref().map(str::trim)], |r| {
                Ok(record_from_row!(r.get))
            })?
            .collect()
        })
    }
}
