//! PostgreSQL, for several `aspjwt serve` instances over one database: tokio-postgres
//! with a deadpool connection pool, driven on a small runtime of the store's own so
//! the synchronous `Store` trait serves the service (from tokio's blocking pool) and
//! the operator commands alike.
//!
//! Cross-instance guarantees come from the database, not from this process:
//! - rotation reads the session row `FOR UPDATE`, so two instances presenting the same
//!   token queue on the row and the second sees the first's result (one rotation,
//!   one grace answer);
//! - the revocation feed is appended under a transaction-scoped advisory lock, so
//!   its sequence numbers become visible in order and a poller's cursor skips none;
//! - failed logins are counted on a locked row;
//! - migrations run under an advisory lock, so instances starting together apply
//!   each one once.
//!
//! Tables live in their own schema, `aspjwt`, so the database can be shared with the
//! application's own tables (a CRM has its own `users`). `?sslmode=require` connects
//! over TLS with the server's certificate verified (`tls_for`).

use std::time::Duration;

use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime, Transaction};
use tokio_postgres::NoTls;
use tokio_postgres::types::ToSql;

use super::{
    AUDIT_COLS, AuditQuery, BackupRow, ImportAudit, ImportUser, Imported, Issued, NewSession, NewUser, OnConflict,
    Plan, Result, Revocation, Rotation, SESSION_COLS, Session, Store, StoreError, ThrottleRow, USER_COLS, User,
    guard_last_admin, import_update, normalize_email, record_from_row, rotated, session_from_row,
};
use crate::audit::Record;
use crate::throttle::Throttle;

pub const SCHEMA: &str = "aspjwt";

/// Schema versions, applied in order at open; `aspjwt.schema_version` records them.
const MIGRATIONS: &[&str] = &[
    // 1: the same tables as SQLite's versions 1–3.
    r#"
    CREATE TABLE users (
        id TEXT PRIMARY KEY,
        email TEXT NOT NULL UNIQUE,
        name TEXT NOT NULL,
        role TEXT NOT NULL,
        password_hash TEXT NOT NULL,
        disabled BOOLEAN NOT NULL DEFAULT false,
        created_at BIGINT NOT NULL,
        updated_at BIGINT NOT NULL
    );
    CREATE TABLE sessions (
        id TEXT PRIMARY KEY,
        user_id TEXT NOT NULL REFERENCES users(id),
        email TEXT NOT NULL,
        role TEXT NOT NULL,
        created_at BIGINT NOT NULL,
        expires_at BIGINT NOT NULL,
        access_jti TEXT NOT NULL,
        access_iat BIGINT NOT NULL,
        access_exp BIGINT NOT NULL,
        refresh_jti TEXT NOT NULL,
        refresh_iat BIGINT NOT NULL,
        refresh_exp BIGINT NOT NULL,
        prev_refresh_jti TEXT,
        prev_rotated_at BIGINT,
        rotations BIGINT NOT NULL DEFAULT 0,
        revoked_at BIGINT,
        revoke_reason TEXT,
        ip TEXT,
        user_agent TEXT,
        last_seen_at BIGINT NOT NULL
    );
    CREATE INDEX sessions_user ON sessions(user_id);
    CREATE TABLE revocations (
        seq BIGSERIAL PRIMARY KEY,
        session_id TEXT NOT NULL,
        revoked_at BIGINT NOT NULL
    );
    CREATE INDEX revocations_at ON revocations(revoked_at);
    CREATE TABLE audit_events (
        id BIGSERIAL PRIMARY KEY,
        at_ms BIGINT NOT NULL,
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
    CREATE TABLE login_throttle (
        key TEXT PRIMARY KEY,
        consecutive BIGINT NOT NULL,
        locked_until BIGINT NOT NULL,
        window_start BIGINT NOT NULL,
        window_failures BIGINT NOT NULL
    );
    CREATE TABLE heartbeat (id INTEGER PRIMARY KEY CHECK (id = 1), at BIGINT NOT NULL);
    "#,
    // 2: the grace period counted in milliseconds (SQLite's version 4).
    r#"
    ALTER TABLE sessions ADD COLUMN prev_rotated_ms BIGINT;
    UPDATE sessions SET prev_rotated_ms = prev_rotated_at * 1000 WHERE prev_rotated_at IS NOT NULL;
    "#,
];

/// Audit rows a restore inserts per statement (9 parameters each, far below 65,535).
const AUDIT_BATCH: usize = 1000;

/// Advisory lock keys ("aspjwt" and a number), so that they cannot meet another
/// application's by accident.
const MIGRATION_LOCK: i64 = 0x6173_706a_7774_0001;
const REVOCATION_LOCK: i64 = 0x6173_706a_7774_0002;

/// Connections per instance: enough to keep two cores and the database busy.
const POOL_SIZE: usize = 16;
/// How long a request waits for a connection (or to make one) before answering 503.
const WAIT: Duration = Duration::from_secs(3);
const CONNECT: Duration = Duration::from_secs(2);
/// No statement may hold a connection (and a row lock) for longer.
const STATEMENT_TIMEOUT_MS: u32 = 10_000;

pub struct PgStore {
    pool: Pool,
    /// Drives the pool's connections; `None` only while dropping.
    rt: Option<tokio::runtime::Runtime>,
}

/// A database error: connection trouble (class 08), resource exhaustion (53), the
/// server shutting down (57P), a statement that ran out of time waiting (57014: a lock
/// held by a restore, say), a read-only server (25006), deadlock or serialisation
/// failures (40) and any I/O failure mean "try again later" (503); the rest are bugs.
fn pg(e: tokio_postgres::Error) -> StoreError {
    match e.as_db_error() {
        Some(d) => {
            let code = d.code().code();
            let msg = format!("{code}: {}", d.message());
            if ["08", "53", "57P", "57014", "25006", "40"].iter().any(|p| code.starts_with(p)) {
                StoreError::Unavailable(msg)
            } else {
                StoreError::Db(msg)
            }
        }
        None => StoreError::Unavailable(with_causes(&e)),
    }
}

/// "error connecting to server: Connection refused (os error 111)": the driver's
/// message with its causes (which never hold the password).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text = format!("{text}: {c}");
        cause = c.source();
    }
    text
}

/// A row that does not fit its type is a bug, never an outage.
fn row(e: tokio_postgres::Error) -> StoreError {
    StoreError::Db(format!("unexpected row: {e}"))
}

fn pool_err(e: deadpool_postgres::PoolError) -> StoreError {
    use deadpool_postgres::PoolError;
    match e {
        PoolError::Backend(e) => pg(e),
        other => StoreError::Unavailable(format!("no database connection: {other}")),
    }
}

fn user_row(r: &tokio_postgres::Row) -> Result<User> {
    (|| {
        Ok(User {
            id: r.try_get(0)?,
            email: r.try_get(1)?,
            name: r.try_get(2)?,
            role: r.try_get(3)?,
            password_hash: r.try_get(4)?,
            disabled: r.try_get(5)?,
            created_at: r.try_get(6)?,
            updated_at: r.try_get(7)?,
        })
    })()
    .map_err(row)
}

fn session_row(r: &tokio_postgres::Row) -> Result<Session> {
    (|| Ok(session_from_row!(r.try_get)))().map_err(row)
}

fn record_row(r: &tokio_postgres::Row) -> Result<Record> {
    (|| Ok(record_from_row!(r.try_get)))().map_err(row)
}

fn throttle_row(r: &tokio_postgres::Row) -> Result<Throttle> {
    (|| {
        Ok(Throttle {
            consecutive: r.try_get(0)?,
            locked_until: r.try_get(1)?,
            window_start: r.try_get(2)?,
            window_failures: r.try_get(3)?,
        })
    })()
    .map_err(row)
}

impl PgStore {
    /// Connects to `url` and applies the migrations this version knows.
    /// Opens the database at `url`, creating (migrating) the aspjwt schema when it is
    /// missing: what `serve` and `user add` do.
    pub fn open(url: &str) -> Result<PgStore> {
        Self::connect(url, true)
    }

    /// Opens a database that already holds aspjwt's schema; one without it is refused
    /// (`NoDatabase`) and left untouched: a typo in a URL must not become an empty
    /// aspjwt database that a nightly backup then copies.
    pub fn open_existing(url: &str) -> Result<PgStore> {
        Self::connect(url, false)
    }

    fn connect(url: &str, create: bool) -> Result<PgStore> {
        let mut cfg: tokio_postgres::Config =
            url.parse().map_err(|e| StoreError::Db(format!("not a valid PostgreSQL URL: {e}")))?;
        if cfg.get_password().is_none()
            && let Ok(pw) = std::env::var("PGPASSWORD")
        {
            cfg.password(pw);
        }
        if cfg.get_connect_timeout().is_none() {
            cfg.connect_timeout(CONNECT);
        }
        let options = format!(
            "{} -c search_path={SCHEMA} -c statement_timeout={STATEMENT_TIMEOUT_MS} -c client_min_messages=warning",
            cfg.get_options().unwrap_or_default()
        );
        cfg.options(options.trim());
        cfg.application_name("aspjwt");
        let recycling = ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match tls_for(&cfg)? {
            Some(tls) => Manager::from_config(cfg, tls, recycling),
            None => Manager::from_config(cfg, NoTls, recycling),
        };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("aspjwt-pg")
            .enable_all()
            .build()
            .map_err(|e| StoreError::Db(format!("cannot start the database runtime: {e}")))?;
        let pool = {
            let _guard = rt.enter();
            Pool::builder(manager)
                .max_size(POOL_SIZE)
                .runtime(Runtime::Tokio1)
                .wait_timeout(Some(WAIT))
                .create_timeout(Some(CONNECT))
                .recycle_timeout(Some(CONNECT))
                .build()
                .map_err(|e| StoreError::Db(format!("cannot build the connection pool: {e}")))?
        };
        let store = PgStore { pool, rt: Some(rt) };
        if !create {
            let present = store.run(async |c| {
                let row = c.query_one("SELECT to_regclass($1) IS NOT NULL", &[&format!("{SCHEMA}.users")]).await;
                Ok(row.map_err(pg)?.get::<_, bool>(0))
            })?;
            if !present {
                return Err(StoreError::NoDatabase);
            }
        }
        store.run(async |c| migrate(c).await)?;
        Ok(store)
    }

    fn rt(&self) -> &tokio::runtime::Runtime {
        self.rt.as_ref().expect("runtime lives until drop")
    }

    /// Runs `f` with a pooled connection, blocking the calling (non-async) thread.
    fn run<T>(&self, f: impl AsyncFnOnce(&mut Object) -> Result<T>) -> Result<T> {
        self.rt().block_on(async {
            let mut c = self.pool.get().await.map_err(pool_err)?;
            f(&mut c).await
        })
    }

    /// Runs `f` in one transaction (read committed), committed when it returns Ok.
    fn tx<T>(&self, f: impl AsyncFnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.tx_then(true, f)
    }

    /// `tx`, committed or (a dry run) rolled back.
    fn tx_then<T>(&self, commit: bool, f: impl AsyncFnOnce(&Transaction<'_>) -> Result<T>) -> Result<T> {
        self.run(async move |c| {
            let tx = c.transaction().await.map_err(pg)?;
            let out = f(&tx).await?;
            if commit { tx.commit().await } else { tx.rollback().await }.map_err(pg)?;
            Ok(out)
        })
    }

    /// The schema version in force.
    pub fn schema_version(&self) -> Result<i64> {
        self.run(async |c| {
            let r = c.query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[]).await.map_err(pg)?;
            r.try_get(0).map_err(row)
        })
    }
}

/// TLS for `sslmode=require`, with the server's certificate verified as libpq's
/// `verify-full` does: it must chain to the CA in PGSSLROOTCERT (a PEM file) when set,
/// else to the public web roots, and name the host. Other modes connect in clear.
fn tls_for(cfg: &tokio_postgres::Config) -> Result<Option<tokio_postgres_rustls::MakeRustlsConnect>> {
    use rustls_pki_types::CertificateDer;
    use rustls_pki_types::pem::PemObject;
    if cfg.get_ssl_mode() != tokio_postgres::config::SslMode::Require {
        return Ok(None);
    }
    let mut roots = rustls::RootCertStore::empty();
    match std::env::var_os("PGSSLROOTCERT") {
        Some(path) => {
            let shown = std::path::Path::new(&path).display().to_string();
            let bad = |e: &dyn std::fmt::Display| StoreError::Db(format!("PGSSLROOTCERT {shown}: {e}"));
            let certs: Vec<CertificateDer> = CertificateDer::pem_file_iter(&path)
                .map_err(|e| bad(&e))?
                .collect::<std::result::Result<_, _>>()
                .map_err(|e| bad(&e))?;
            if certs.is_empty() {
                return Err(bad(&"no certificate in the file"));
            }
            for c in certs {
                roots.add(c).map_err(|e| bad(&e))?;
            }
        }
        None => roots.extend(webpki_roots::TLS_SERVER_ROOTS.iter().cloned()),
    }
    let config =
        rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .map_err(|e| StoreError::Db(format!("TLS set-up: {e}")))?
            .with_root_certificates(roots)
            .with_no_client_auth();
    Ok(Some(tokio_postgres_rustls::MakeRustlsConnect::new(config)))
}

impl Drop for PgStore {
    fn drop(&mut self) {
        self.pool.close();
        // Safe from inside another runtime too (a plain drop would panic there).
        if let Some(rt) = self.rt.take() {
            rt.shutdown_background();
        }
    }
}

async fn migrate(c: &mut Object) -> Result<()> {
    let tx = c.transaction().await.map_err(pg)?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK]).await.map_err(pg)?;
    tx.batch_execute(&format!(
        "CREATE SCHEMA IF NOT EXISTS {SCHEMA}; \
         CREATE TABLE IF NOT EXISTS {SCHEMA}.schema_version (version BIGINT PRIMARY KEY, applied_at BIGINT NOT NULL);"
    ))
    .await
    .map_err(pg)?;
    let version: i64 = tx
        .query_one("SELECT coalesce(max(version), 0) FROM schema_version", &[])
        .await
        .map_err(pg)?
        .try_get(0)
        .map_err(row)?;
    if version as usize > MIGRATIONS.len() {
        return Err(StoreError::Db(format!(
            "the database has schema version {version}, newer than this aspjwt knows ({}); upgrade aspjwt",
            MIGRATIONS.len()
        )));
    }
    for (i, sql) in MIGRATIONS.iter().enumerate().skip(version as usize) {
        tx.batch_execute(sql).await.map_err(pg)?;
        tx.execute(
            "INSERT INTO schema_version (version, applied_at) VALUES ($1, extract(epoch FROM now())::bigint)",
            &[&(i as i64 + 1)],
        )
        .await
        .map_err(pg)?;
    }
    tx.commit().await.map_err(pg)
}

async fn load_session(tx: &Transaction<'_>, id: &str, lock: bool) -> Result<Option<Session>> {
    let sql = format!("SELECT {SESSION_COLS} FROM sessions WHERE id = $1{}", if lock { " FOR UPDATE" } else { "" });
    let stmt = tx.prepare_cached(&sql).await.map_err(pg)?;
    tx.query_opt(&stmt, &[&id]).await.map_err(pg)?.as_ref().map(session_row).transpose()
}

/// Marks the live sessions matching `filter` (with `$3` bound to `arg`) revoked and
/// appends them to the revocations feed, in sequence order (see the module doc).
async fn revoke_where(
    tx: &Transaction<'_>,
    filter: &str,
    arg: Option<&str>,
    reason: &str,
    now: i64,
) -> Result<Vec<String>> {
    let sql = format!(
        "UPDATE sessions SET revoked_at = $1, revoke_reason = $2 WHERE revoked_at IS NULL AND {filter} RETURNING id"
    );
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&now, &reason];
    if let Some(a) = &arg {
        params.push(a);
    }
    let ids: Vec<String> =
        tx.query(&sql, &params).await.map_err(pg)?.iter().map(|r| r.try_get(0).map_err(row)).collect::<Result<_>>()?;
    if !ids.is_empty() {
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&REVOCATION_LOCK]).await.map_err(pg)?;
        tx.execute(
            "INSERT INTO revocations (session_id, revoked_at) SELECT unnest($1::text[]), $2 ORDER BY 1",
            &[&ids, &now],
        )
        .await
        .map_err(pg)?;
    }
    Ok(ids)
}

/// One audit row, inside a rotation's transaction or on its own.
async fn insert_audit(c: &impl GenericClient, r: &Record) -> Result<()> {
    let stmt = c
        .prepare_cached(&format!("INSERT INTO audit_events ({AUDIT_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"))
        .await
        .map_err(pg)?;
    c.execute(
        &stmt,
        &[&r.at_ms, &r.event, &r.outcome, &r.user_id, &r.email, &r.ip, &r.user_agent, &r.request_id, &r.reason],
    )
    .await
    .map_err(pg)?;
    Ok(())
}

/// The rotation decision (shared with SQLite) on the locked row, and its writes.
async fn decide_rotation(
    tx: &Transaction<'_>,
    id: &str,
    presented: &str,
    next: Issued,
    now_ms: i64,
    grace_ms: i64,
) -> Result<Rotation> {
    let now = now_ms.div_euclid(1000);
    let Some(s) = load_session(tx, id, true).await? else { return Ok(Rotation::Unknown) };
    let reload = async |reason| {
        revoke_where(tx, "id = $3", Some(id), reason, now).await?;
        load_session(tx, id, false).await?.ok_or_else(|| StoreError::Db("session vanished".into()))
    };
    Ok(match Plan::decide(&s, presented, next, now_ms, grace_ms) {
        Plan::AlreadyRevoked => Rotation::Revoked(s),
        Plan::Grace => Rotation::Grace(s),
        Plan::Expire => Rotation::Expired(reload("session_max_lifetime").await?),
        Plan::Reuse => Rotation::Reused(reload("refresh_token_reuse").await?),
        Plan::Rotate(c) => {
            let stmt = tx
                .prepare_cached(
                    "UPDATE sessions SET prev_refresh_jti = refresh_jti, prev_rotated_at = $1, \
                     prev_rotated_ms = $10, access_jti = $2, access_iat = $3, access_exp = $4, \
                     refresh_jti = $5, refresh_iat = $6, refresh_exp = $7, \
                     rotations = rotations + 1, last_seen_at = $1 \
                     WHERE id = $8 AND refresh_jti = $9 AND revoked_at IS NULL",
                )
                .await
                .map_err(pg)?;
            let changed = tx
                .execute(
                    &stmt,
                    &[
                        &now,
                        &c.access_jti,
                        &c.access_iat,
                        &c.access_exp,
                        &c.refresh_jti,
                        &c.refresh_iat,
                        &c.refresh_exp,
                        &id,
                        &presented,
                        &now_ms,
                    ],
                )
                .await
                .map_err(pg)?;
            if changed != 1 {
                return Err(StoreError::Db("rotation lost its compare-and-swap".into()));
            }
            Rotation::Rotated(rotated(s, c, now_ms))
        }
    })
}

/// The last-admin rule under concurrency: every enabled admin's row is locked first,
/// so two transactions demoting the last two admins run one after the other and the
/// second sees the first's result.
async fn guard_admins(tx: &Transaction<'_>, email: &str, stays_admin: impl Fn(&User) -> bool) -> Result<()> {
    let admins = tx
        .query(
            "SELECT id FROM users WHERE role = $1 AND NOT disabled ORDER BY id FOR UPDATE",
            &[&crate::names::ADMIN_ROLE],
        )
        .await
        .map_err(pg)?
        .len() as i64;
    let sql = format!("SELECT {USER_COLS} FROM users WHERE email = $1");
    match tx.query_opt(&sql, &[&normalize_email(email)]).await.map_err(pg)? {
        Some(r) => {
            let user = user_row(&r)?;
            guard_last_admin(&user, stays_admin(&user), admins)
        }
        None => Err(StoreError::NoSuchUser(normalize_email(email))),
    }
}

async fn update_user(
    c: &impl GenericClient,
    set: &str,
    value: &(dyn ToSql + Sync),
    email: &str,
    now: i64,
) -> Result<User> {
    let email = normalize_email(email);
    let sql = format!("UPDATE users SET {set} = $1, updated_at = $2 WHERE email = $3 RETURNING {USER_COLS}");
    match c.query_opt(&sql, &[value, &now, &email]).await.map_err(pg)? {
        Some(r) => user_row(&r),
        None => Err(StoreError::NoSuchUser(email)),
    }
}

fn revocation(r: &tokio_postgres::Row) -> Result<Revocation> {
    (|| Ok(Revocation { seq: r.try_get(0)?, session_id: r.try_get(1)?, revoked_at: r.try_get(2)? }))().map_err(row)
}

impl Store for PgStore {
    fn ping(&self) -> Result<()> {
        // A write, so that a read-only server (a standby) is not ready either.
        self.run(async |c| {
            c.execute(
                "INSERT INTO heartbeat (id, at) VALUES (1, extract(epoch FROM now())::bigint) \
                 ON CONFLICT (id) DO UPDATE SET at = excluded.at",
                &[],
            )
            .await
            .map_err(pg)?;
            Ok(())
        })
    }

    fn create_user(&self, u: NewUser, now: i64) -> Result<User> {
        let email = normalize_email(&u.email);
        self.run(async |c| {
            let id = crate::token::random_id();
            let sql = format!(
                "INSERT INTO users (id, email, name, role, password_hash, disabled, created_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, false, $6, $6) ON CONFLICT (email) DO NOTHING RETURNING {USER_COLS}"
            );
            match c.query_opt(&sql, &[&id, &email, &u.name, &u.role, &u.password_hash, &now]).await.map_err(pg)? {
                Some(r) => user_row(&r),
                None => Err(StoreError::DuplicateEmail(email.clone())),
            }
        })
    }

    fn user_by_email(&self, email: &str) -> Result<Option<User>> {
        let email = normalize_email(email);
        self.run(async |c| {
            let stmt =
                c.prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE email = $1")).await.map_err(pg)?;
            c.query_opt(&stmt, &[&email]).await.map_err(pg)?.as_ref().map(user_row).transpose()
        })
    }

    fn user_by_id(&self, id: &str) -> Result<Option<User>> {
        self.run(async |c| {
            let stmt = c.prepare_cached(&format!("SELECT {USER_COLS} FROM users WHERE id = $1")).await.map_err(pg)?;
            c.query_opt(&stmt, &[&id]).await.map_err(pg)?.as_ref().map(user_row).transpose()
        })
    }

    fn list_users(&self) -> Result<Vec<User>> {
        self.run(async |c| {
            let rows = c.query(&format!("SELECT {USER_COLS} FROM users ORDER BY email"), &[]).await.map_err(pg)?;
            rows.iter().map(user_row).collect()
        })
    }

    fn set_disabled(&self, email: &str, disabled: bool, now: i64) -> Result<User> {
        self.tx(async |tx| {
            guard_admins(tx, email, |_| !disabled).await?;
            update_user(tx, "disabled", &disabled, email, now).await
        })
    }

    fn set_password(&self, email: &str, hash: &str, now: i64) -> Result<User> {
        self.run(async |c| update_user(c, "password_hash", &hash, email, now).await)
    }

    fn set_role(&self, email: &str, role: &str, now: i64) -> Result<User> {
        self.tx(async |tx| {
            guard_admins(tx, email, |_| role == crate::names::ADMIN_ROLE).await?;
            update_user(tx, "role", &role, email, now).await
        })
    }

    fn create_session(&self, s: NewSession) -> Result<()> {
        // One statement: the user's row is share-locked and checked, so a disable or
        // a new role or password either commits first (and the insert finds no row)
        // or waits for this insert (and then ends the new session with the others).
        // A rehash adds its update and audit row in the same transaction.
        async fn insert(c: &impl GenericClient, s: &NewSession) -> Result<()> {
            let stmt = c
                .prepare_cached(&format!(
                    "INSERT INTO sessions ({SESSION_COLS}) SELECT \
                     $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, NULL, NULL, 0, NULL, NULL, $13, $14, $5, NULL \
                     FROM users WHERE id = $2 AND role = $4 AND NOT disabled AND password_hash = $15 FOR SHARE"
                ))
                .await
                .map_err(pg)?;
            let i = &s.issued;
            let inserted = c
                .execute(
                    &stmt,
                    &[
                        &s.id,
                        &s.user_id,
                        &s.email,
                        &s.role,
                        &s.created_at,
                        &s.expires_at,
                        &i.access_jti,
                        &i.access_iat,
                        &i.access_exp,
                        &i.refresh_jti,
                        &i.refresh_iat,
                        &i.refresh_exp,
                        &s.ip,
                        &s.user_agent,
                        &s.password_hash,
                    ],
                )
                .await
                .map_err(pg)?;
            if inserted == 0 {
                return Err(StoreError::UserChanged);
            }
            Ok(())
        }
        let Some(r) = s.rehash.clone() else { return self.run(async |c| insert(&*c, &s).await) };
        self.tx(async |tx| {
            // The row first, for update: two logins of one bcrypt user at once would
            // otherwise each share-lock it in `insert`, each wait for the other's update,
            // and deadlock. Now the second waits here, then finds the hash changed.
            tx.execute("SELECT 1 FROM users WHERE id = $1 FOR NO KEY UPDATE", &[&s.user_id]).await.map_err(pg)?;
            insert(tx, &s).await?;
            let changed = tx
                .execute(
                    "UPDATE users SET password_hash = $1, updated_at = $2 WHERE id = $3 AND password_hash = $4",
                    &[&r.password_hash, &s.created_at, &s.user_id, &s.password_hash],
                )
                .await
                .map_err(pg)?;
            if changed == 0 {
                return Err(StoreError::UserChanged);
            }
            insert_audit(tx, &r.audit).await
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
        self.tx_then(commit, async |tx| {
            // Imports (and user add) one at a time: two at once would both see an email
            // free and the second fail on the unique index whatever --on-conflict says.
            // Logins only share-lock user rows, so they go on.
            tx.batch_execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE").await.map_err(pg)?;
            let load = format!("SELECT {USER_COLS} FROM users WHERE email = $1");
            let mut out = Vec::with_capacity(users.len());
            for u in users {
                let existing = tx.query_opt(&load, &[&u.email]).await.map_err(pg)?.as_ref().map(user_row).transpose()?;
                let before = existing.clone();
                let what = match (existing, on_conflict) {
                    (None, _) => {
                        let id = u.id.clone().unwrap_or_else(crate::token::random_id);
                        if tx.query_opt("SELECT 1 FROM users WHERE id = $1", &[&id]).await.map_err(pg)?.is_some() {
                            return Err(StoreError::DuplicateId(id));
                        }
                        tx.execute(
                            "INSERT INTO users (id, email, name, role, password_hash, disabled, created_at, updated_at) \
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
                            &[&id, &u.email, &u.name, &u.role, &u.password_hash, &u.disabled.unwrap_or(false), &now],
                        )
                        .await
                        .map_err(pg)?;
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
                        guard_admins(tx, &u.email, |_| stays).await?;
                        tx.execute(
                            "UPDATE users SET name = $1, role = $2, password_hash = $3, disabled = $4, updated_at = $5 \
                             WHERE id = $6",
                            &[&u.name, &u.role, &hash, &disabled, &now, &x.id],
                        )
                        .await
                        .map_err(pg)?;
                        Imported::Updated
                    }
                };
                let user = tx
                    .query_opt(&load, &[&u.email])
                    .await
                    .map_err(pg)?
                    .as_ref()
                    .map(user_row)
                    .transpose()?
                    .ok_or_else(|| StoreError::NoSuchUser(u.email.clone()))?;
                insert_audit(tx, &audit(before.as_ref(), &user, what)).await?;
                out.push((what, before, user));
            }
            Ok(out)
        })
    }

    fn legacy_hash_costs(&self) -> Result<Vec<u32>> {
        self.run(async |c| {
            let rows = c
                .query("SELECT substr(password_hash, 5, 2) FROM users WHERE password_hash LIKE '$2%'", &[])
                .await
                .map_err(pg)?;
            Ok(rows.iter().filter_map(|r| r.get::<_, String>(0).parse().ok()).collect())
        })
    }

    fn session(&self, id: &str) -> Result<Option<Session>> {
        self.run(async |c| {
            let stmt =
                c.prepare_cached(&format!("SELECT {SESSION_COLS} FROM sessions WHERE id = $1")).await.map_err(pg)?;
            c.query_opt(&stmt, &[&id]).await.map_err(pg)?.as_ref().map(session_row).transpose()
        })
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
        self.tx(async |tx| {
            let outcome = decide_rotation(tx, id, presented, next, now_ms, grace_ms).await?;
            insert_audit(tx, &outcome.audit_record(audit)).await?;
            Ok(outcome)
        })
    }

    fn revoke_session(&self, id: &str, reason: &str, now: i64) -> Result<bool> {
        self.tx(async |tx| Ok(!revoke_where(tx, "id = $3", Some(id), reason, now).await?.is_empty()))
    }

    fn revoke_user_sessions(&self, user_id: &str, reason: &str, now: i64) -> Result<usize> {
        self.tx(async |tx| Ok(revoke_where(tx, "user_id = $3", Some(user_id), reason, now).await?.len()))
    }

    fn revoke_all_sessions(&self, reason: &str, now: i64) -> Result<Vec<String>> {
        let live = format!("expires_at > {now} AND refresh_exp > {now}");
        self.tx(async |tx| revoke_where(tx, &live, None, reason, now).await)
    }

    fn list_sessions(&self, user_id: Option<&str>, all: bool, now: i64) -> Result<Vec<Session>> {
        self.run(async |c| {
            let live = if all {
                "$2::bigint IS NOT NULL"
            } else {
                "revoked_at IS NULL AND expires_at > $2 AND refresh_exp > $2"
            };
            let sql = format!(
                "SELECT {SESSION_COLS} FROM sessions WHERE ($1::text IS NULL OR user_id = $1) AND {live} \
                 ORDER BY created_at DESC, id"
            );
            c.query(&sql, &[&user_id, &now]).await.map_err(pg)?.iter().map(session_row).collect()
        })
    }

    fn lapsed_sessions(&self, now: i64, refresh_before: i64, limit: i64) -> Result<Vec<Session>> {
        self.run(async |c| {
            let sql = format!(
                "SELECT {SESSION_COLS} FROM sessions WHERE revoked_at IS NULL AND (refresh_exp <= $1 OR expires_at <= $2) \
                 ORDER BY refresh_exp LIMIT $3"
            );
            c.query(&sql, &[&refresh_before, &now, &limit]).await.map_err(pg)?.iter().map(session_row).collect()
        })
    }

    fn revocations_since(&self, seq: i64) -> Result<Vec<Revocation>> {
        self.run(async |c| {
            let stmt = c
                .prepare_cached("SELECT seq, session_id, revoked_at FROM revocations WHERE seq > $1 ORDER BY seq")
                .await
                .map_err(pg)?;
            c.query(&stmt, &[&seq]).await.map_err(pg)?.iter().map(revocation).collect()
        })
    }

    fn revocations_after(&self, since: i64) -> Result<Vec<Revocation>> {
        self.run(async |c| {
            c.query(
                "SELECT seq, session_id, revoked_at FROM revocations WHERE revoked_at >= $1 ORDER BY seq",
                &[&since],
            )
            .await
            .map_err(pg)?
            .iter()
            .map(revocation)
            .collect()
        })
    }

    fn revocation_cursor(&self) -> Result<i64> {
        self.run(async |c| {
            c.query_one("SELECT coalesce(max(seq), 0) FROM revocations", &[]).await.map_err(pg)?.try_get(0).map_err(row)
        })
    }

    fn throttle(&self, key: &str) -> Result<Throttle> {
        self.run(async |c| {
            let stmt = c
                .prepare_cached(
                    "SELECT consecutive, locked_until, window_start, window_failures FROM login_throttle WHERE key = $1",
                )
                .await
                .map_err(pg)?;
            Ok(c.query_opt(&stmt, &[&key]).await.map_err(pg)?.as_ref().map(throttle_row).transpose()?.unwrap_or_default())
        })
    }

    fn record_login_failure(&self, key: &str, now: i64) -> Result<Throttle> {
        self.tx(async |tx| {
            // Make sure the row exists, then count on it locked: instances queue here.
            tx.execute(
                "INSERT INTO login_throttle (key, consecutive, locked_until, window_start, window_failures) \
                 VALUES ($1, 0, 0, 0, 0) ON CONFLICT (key) DO NOTHING",
                &[&key],
            )
            .await
            .map_err(pg)?;
            let current = tx
                .query_one(
                    "SELECT consecutive, locked_until, window_start, window_failures FROM login_throttle \
                     WHERE key = $1 FOR UPDATE",
                    &[&key],
                )
                .await
                .map_err(pg)?;
            let next = throttle_row(&current)?.after_failure(now);
            tx.execute(
                "UPDATE login_throttle SET consecutive = $2, locked_until = $3, window_start = $4, \
                 window_failures = $5 WHERE key = $1",
                &[&key, &next.consecutive, &next.locked_until, &next.window_start, &next.window_failures],
            )
            .await
            .map_err(pg)?;
            Ok(next)
        })
    }

    fn clear_throttle(&self, key: &str) -> Result<()> {
        self.run(async |c| {
            // The hourly window keeps counting; only the consecutive run resets.
            c.execute("UPDATE login_throttle SET consecutive = 0 WHERE key = $1 AND consecutive <> 0", &[&key])
                .await
                .map_err(pg)?;
            Ok(())
        })
    }

    fn count_live_sessions(&self, now: i64) -> Result<i64> {
        self.run(async |c| {
            c.query_one(
                "SELECT count(*) FROM sessions WHERE revoked_at IS NULL AND expires_at > $1 AND refresh_exp > $1",
                &[&now],
            )
            .await
            .map_err(pg)?
            .try_get(0)
            .map_err(row)
        })
    }

    fn audit(&self, r: &Record) -> Result<()> {
        self.run(async |c| insert_audit(&*c, r).await)
    }

    fn close(&self) -> Result<()> {
        self.pool.close();
        Ok(())
    }

    fn export(&self) -> Result<Vec<BackupRow>> {
        self.run(async |c| {
            // One REPEATABLE READ transaction: every query sees the same snapshot.
            let tx = c
                .build_transaction()
                .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
                .read_only(true)
                .start()
                .await
                .map_err(pg)?;
            let mut rows = Vec::new();
            for r in
                tx.query(&format!("SELECT {USER_COLS} FROM users ORDER BY created_at, id"), &[]).await.map_err(pg)?
            {
                rows.push(BackupRow::User(user_row(&r)?));
            }
            let sql = format!("SELECT {SESSION_COLS} FROM sessions ORDER BY created_at, id");
            for r in tx.query(&sql, &[]).await.map_err(pg)? {
                rows.push(BackupRow::Session(session_row(&r)?));
            }
            // The audit log can be long: in pages, by id, inside the same snapshot.
            let mut after: i64 = 0;
            loop {
                let page = tx
                    .query(
                        &format!("SELECT {AUDIT_COLS}, id FROM audit_events WHERE id > $1 ORDER BY id LIMIT 10000"),
                        &[&after],
                    )
                    .await
                    .map_err(pg)?;
                let Some(last) = page.last() else { break };
                after = last.try_get(9).map_err(row)?;
                for r in &page {
                    rows.push(BackupRow::AuditEvent(record_row(r)?));
                }
            }
            let sql =
                "SELECT consecutive, locked_until, window_start, window_failures, key FROM login_throttle ORDER BY key";
            for r in tx.query(sql, &[]).await.map_err(pg)? {
                let t = throttle_row(&r)?;
                rows.push(BackupRow::Throttle(ThrottleRow {
                    key: r.try_get(4).map_err(row)?,
                    consecutive: t.consecutive,
                    locked_until: t.locked_until,
                    window_start: t.window_start,
                    window_failures: t.window_failures,
                }));
            }
            tx.commit().await.map_err(pg)?;
            Ok(rows)
        })
    }

    fn import(&self, rows: &[BackupRow], opts: &super::Import) -> Result<()> {
        let opts = *opts;
        self.tx(async |tx| {
            // Locks out a concurrent restore or user creation for the transaction's length.
            tx.batch_execute("LOCK TABLE users, sessions, audit_events, login_throttle, revocations IN EXCLUSIVE MODE")
                .await
                .map_err(pg)?;
            let held: (i64, i64, i64, i64) = {
                let r = tx
                    .query_one(
                        "SELECT (SELECT count(*) FROM users), (SELECT count(*) FROM sessions), \
                         (SELECT count(*) FROM audit_events), (SELECT count(*) FROM login_throttle)",
                        &[],
                    )
                    .await
                    .map_err(pg)?;
                (r.get(0), r.get(1), r.get(2), r.get(3))
            };
            if held != (0, 0, 0, 0) && !opts.replace {
                return Err(StoreError::NotEmpty(super::holds(held)));
            }
            let before: Vec<String> =
                tx.query("SELECT id FROM sessions", &[]).await.map_err(pg)?.iter().map(|r| r.get(0)).collect();
            tx.batch_execute(
                "DELETE FROM revocations; DELETE FROM sessions; DELETE FROM users; \
                 DELETE FROM audit_events; DELETE FROM login_throttle;",
            )
            .await
            .map_err(pg)?;
            let user_sql = format!("INSERT INTO users ({USER_COLS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)");
            let session_sql = format!(
                "INSERT INTO sessions ({SESSION_COLS}) VALUES ({})",
                (1..=21).map(|i| format!("${i}")).collect::<Vec<_>>().join(", ")
            );
            let throttle_sql = "INSERT INTO login_throttle (key, consecutive, locked_until, window_start, window_failures) \
                                VALUES ($1, $2, $3, $4, $5)";
            let (user_st, session_st, throttle_st) = (
                tx.prepare_cached(&user_sql).await.map_err(pg)?,
                tx.prepare_cached(&session_sql).await.map_err(pg)?,
                tx.prepare_cached(throttle_sql).await.map_err(pg)?,
            );
            // Users first, then the sessions that refer to them: the backup's order.
            for r in rows {
                {
                    match r {
                        BackupRow::User(u) => tx
                            .execute(
                                &user_st,
                                &[&u.id, &u.email, &u.name, &u.role, &u.password_hash, &u.disabled, &u.created_at, &u.updated_at],
                            )
                            .await
                            .map(|_| ())
                            .map_err(pg),
                        BackupRow::Session(s) => {
                            let c = &s.current;
                            tx.execute(
                                &session_st,
                                &[
                                    &s.id,
                                    &s.user_id,
                                    &s.email,
                                    &s.role,
                                    &s.created_at,
                                    &s.expires_at,
                                    &c.access_jti,
                                    &c.access_iat,
                                    &c.access_exp,
                                    &c.refresh_jti,
                                    &c.refresh_iat,
                                    &c.refresh_exp,
                                    &s.prev_refresh_jti,
                                    &s.prev_rotated_at,
                                    &s.rotations,
                                    &s.revoked_at,
                                    &s.revoke_reason,
                                    &s.ip,
                                    &s.user_agent,
                                    &s.last_seen_at,
                                    &s.prev_rotated_ms,
                                ],
                            )
                            .await
                            .map(|_| ())
                            .map_err(pg)
                        }
                        BackupRow::AuditEvent(_) => Ok(()), // in batches, below
                        BackupRow::Throttle(t) => tx
                            .execute(
                                &throttle_st,
                                &[&t.key, &t.consecutive, &t.locked_until, &t.window_start, &t.window_failures],
                            )
                            .await
                            .map(|_| ())
                            .map_err(pg),
                    }
                }?;
            }
            // The audit log is most of a backup: many rows a statement.
            let audit: Vec<&Record> =
                rows.iter().filter_map(|r| if let BackupRow::AuditEvent(a) = r { Some(a) } else { None }).collect();
            for chunk in audit.chunks(AUDIT_BATCH) {
                let values: Vec<String> = (0..chunk.len())
                    .map(|i| format!("({})", (1..=9).map(|c| format!("${}", i * 9 + c)).collect::<Vec<_>>().join(", ")))
                    .collect();
                let sql = format!("INSERT INTO audit_events ({AUDIT_COLS}) VALUES {}", values.join(", "));
                let mut params: Vec<&(dyn ToSql + Sync)> = Vec::with_capacity(chunk.len() * 9);
                for r in chunk {
                    params.extend([
                        &r.at_ms as &(dyn ToSql + Sync),
                        &r.event,
                        &r.outcome,
                        &r.user_id,
                        &r.email,
                        &r.ip,
                        &r.user_agent,
                        &r.request_id,
                        &r.reason,
                    ]);
                }
                tx.execute(&sql, &params).await.map_err(pg)?;
            }
            if opts.revoke_sessions {
                tx.execute(
                    "UPDATE sessions SET revoked_at = $1, revoke_reason = 'restored' WHERE revoked_at IS NULL",
                    &[&opts.now],
                )
                .await
                .map_err(pg)?;
            }
            // The sequence only grows: these follow every revocation the feed has shown.
            let ids = super::restore_revocations(&before, rows, opts.revoke_sessions);
            tx.execute(
                "INSERT INTO revocations (session_id, revoked_at) SELECT id, $2 FROM unnest($1::text[]) AS id",
                &[&ids, &opts.now],
            )
            .await
            .map_err(pg)?;
            Ok(())
        })
    }

    fn audit_query(&self, q: &AuditQuery) -> Result<Vec<Record>> {
        let user = q.user.as_deref().map(normalize_email);
        let raw = q.user.as_deref().map(str::trim);
        let limit = if q.limit == 0 { i64::MAX } else { q.limit as i64 };
        self.run(async |c| {
            let sql = format!(
                "SELECT {AUDIT_COLS} FROM audit_events \
                 WHERE ($1::bigint IS NULL OR at_ms >= $1) AND ($2::text IS NULL OR event = $2) \
                 AND ($3::text IS NULL OR lower(trim(email)) = $3 OR user_id = $5 \
                      OR user_id IN (SELECT id FROM users WHERE email = $3)) \
                 ORDER BY at_ms DESC, id DESC LIMIT $4"
            );
            c.query(&sql, &[&q.since_ms, &q.event, &user, &limit, &raw])
                .await
                .map_err(pg)?
                .iter()
                .map(record_row)
                .collect()
        })
    }
}
