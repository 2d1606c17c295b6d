//! The backup file: one portable, versioned, checksummed format that both stores
//! write and read, so that a SQLite backup restored into PostgreSQL is how one
//! instance grows into several. Pure: bytes in, rows out (and back).
//!
//! JSON Lines, UTF-8:
//! 1. a header: `{"format":"aspjwt-backup","version":1,"created_at":…,"source":…,"counts":{…}}`;
//! 2. one row a line: `{"table":"users","row":{…}}` (then sessions, audit events, throttles);
//! 3. a trailer: `{"sha256":"…"}`, the SHA-256 of every byte before it.
//!
//! A truncated file has no trailer; a changed byte breaks the checksum; a file of
//! another version says which. Nothing is loaded before all of that is checked.

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::store::BackupRow;

pub const FORMAT: &str = "aspjwt-backup";
pub const VERSION: u32 = 1;

/// How many rows of each kind a backup holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Counts {
    pub users: usize,
    pub sessions: usize,
    pub audit_events: usize,
    pub throttles: usize,
}

impl Counts {
    pub fn of(rows: &[BackupRow]) -> Counts {
        let mut c = Counts::default();
        for r in rows {
            match r {
                BackupRow::User(_) => c.users += 1,
                BackupRow::Session(_) => c.sessions += 1,
                BackupRow::AuditEvent(_) => c.audit_events += 1,
                BackupRow::Throttle(_) => c.throttles += 1,
            }
        }
        c
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Header {
    pub format: String,
    pub version: u32,
    /// RFC 3339.
    pub created_at: String,
    /// "sqlite" or "postgres": where it was taken (any store restores it).
    pub source: String,
    pub counts: Counts,
}

/// Why a file is not a backup this version can restore. Each names where it broke.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BackupError {
    #[error("empty: not an aspjwt backup")]
    Empty,
    #[error("line 1: not an aspjwt backup (no {FORMAT} header)")]
    NotABackup,
    #[error("line 1: backup format version {0}; this aspjwt reads version {VERSION}")]
    Version(u32),
    #[error("truncated: the checksum line at its end is missing")]
    Truncated,
    #[error("checksum mismatch: the file was changed or damaged after it was written")]
    Checksum,
    #[error("line {line}: {message}")]
    Line { line: usize, message: String },
    #[error("the header promises {promised:?} but the file holds {found:?}")]
    Counts { promised: Counts, found: Counts },
    #[error("line {line}: {message}")]
    Invalid { line: usize, message: String },
}

#[derive(Serialize, Deserialize)]
struct Trailer {
    sha256: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The backup file for `rows`, taken now from `source`.
/// The largest backup `restore` reads (it is checked whole, in memory, first).
pub const MAX_BACKUP_SIZE: u64 = 4 * 1024 * 1024 * 1024;

/// Whether a file's first bytes are an aspjwt backup's (a backup may replace only another).
pub fn looks_like_backup(head: &[u8]) -> bool {
    head.starts_with(format!("{{\"format\":\"{FORMAT}\"").as_bytes())
}

pub fn encode(rows: &[BackupRow], source: &str, created_at: &str) -> Vec<u8> {
    let header = Header {
        format: FORMAT.into(),
        version: VERSION,
        created_at: created_at.into(),
        source: source.into(),
        counts: Counts::of(rows),
    };
    let mut out = serde_json::to_vec(&header).expect("JSON");
    out.push(b'\n');
    for r in rows {
        serde_json::to_writer(&mut out, r).expect("JSON");
        out.push(b'\n');
    }
    let sum = hex(&Sha256::digest(&out));
    serde_json::to_writer(&mut out, &Trailer { sha256: sum }).expect("JSON");
    out.push(b'\n');
    out
}

/// Checks a backup whole (header, version, checksum, every line, the counts) and
/// returns its rows.
pub fn decode(bytes: &[u8]) -> Result<(Header, Vec<BackupRow>), BackupError> {
    if bytes.is_empty() {
        return Err(BackupError::Empty);
    }
    let first = bytes.split(|b| *b == b'\n').next().unwrap_or_default();
    let header: serde_json::Value = serde_json::from_slice(first).map_err(|_| BackupError::NotABackup)?;
    if header.get("format").and_then(|f| f.as_str()) != Some(FORMAT) {
        return Err(BackupError::NotABackup);
    }
    let version = header.get("version").and_then(|v| v.as_u64()).unwrap_or(0) as u32;
    if version != VERSION {
        return Err(BackupError::Version(version));
    }
    // The trailer: the last complete line.
    let body_end = bytes.strip_suffix(b"\n").ok_or(BackupError::Truncated)?;
    let trailer_at = body_end.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
    let trailer: Trailer = serde_json::from_slice(&body_end[trailer_at..]).map_err(|_| BackupError::Truncated)?;
    if trailer_at == 0 {
        return Err(BackupError::Truncated);
    }
    if hex(&Sha256::digest(&bytes[..trailer_at])) != trailer.sha256 {
        return Err(BackupError::Checksum);
    }
    let header: Header = serde_json::from_value(header)
        .map_err(|e| BackupError::Line { line: 1, message: format!("bad header: {e}") })?;
    let mut rows = Vec::with_capacity(header.counts.users + header.counts.sessions + header.counts.audit_events);
    for (i, line) in bytes[..trailer_at].split(|b| *b == b'\n').enumerate().skip(1) {
        if line.is_empty() {
            continue;
        }
        let row =
            serde_json::from_slice(line).map_err(|e| BackupError::Line { line: i + 1, message: e.to_string() })?;
        rows.push(row);
    }
    let found = Counts::of(&rows);
    if found != header.counts {
        return Err(BackupError::Counts { promised: header.counts, found });
    }
    let taken = crate::check::parse_time(&header.created_at).filter(|t| (0..=LATEST).contains(t)).ok_or_else(|| {
        BackupError::Line { line: 1, message: "bad header: created_at is not an RFC 3339 time".into() }
    })?;
    validate(&rows, taken)?;
    Ok((header, rows))
}

/// The latest time a backup may hold (9999-12-31), in seconds.
const LATEST: i64 = 253_402_300_799;

/// What a checksum cannot vouch for: that the rows make sense. Roles the service knows,
/// valid and unique emails, unique ids, sessions of users in the backup, times in range,
/// no control characters where people read them and no NUL anywhere (PostgreSQL refuses
/// it). Each refusal names the line.
fn validate(rows: &[BackupRow], taken: i64) -> Result<(), BackupError> {
    use std::collections::{HashMap, HashSet};
    // Each user's email and role: a session must carry its own user's, or a forged row
    // could restore a support user's session with an admin's role.
    let mut user_ids: HashMap<&str, (&str, &str)> = HashMap::new();
    let mut emails = HashSet::new();
    let mut session_ids = HashSet::new();
    let time = |t: i64| (0..=LATEST).contains(&t);
    let no_nul = |fields: &[Option<&str>]| fields.iter().flatten().all(|f| !f.contains('\0'));
    for (i, row) in rows.iter().enumerate() {
        let bad = |message: String| Err(BackupError::Invalid { line: i + 2, message });
        match row {
            BackupRow::User(u) => {
                if crate::users::check_email(&u.email).is_err() || u.email != crate::store::normalize_email(&u.email) {
                    return bad(format!("user {:?}: not a valid, normalised email", crate::audit::escape(&u.email)));
                }
                if crate::users::check_role(&u.role).is_err() {
                    return bad(format!(
                        "user {}: role {:?} is not one of ours",
                        u.email,
                        crate::audit::escape(&u.role)
                    ));
                }
                if u.name.trim().is_empty() || u.name.len() > 200 || crate::users::has_control(&u.name) {
                    return bad(format!("user {}: the name must be 1 to 200 printable characters", u.email));
                }
                if u.id.is_empty() || crate::users::has_control(&u.id) || crate::users::has_control(&u.password_hash) {
                    return bad(format!("user {}: bad id or password hash", u.email));
                }
                // A hash that is no PHC string would lock its user out without a word; one
                // with absurd parameters would make each of their logins an outage.
                if let Err(why) = crate::password::check_stored(&u.password_hash) {
                    return bad(format!("user {}: the password hash: {why}", u.email));
                }
                if !time(u.created_at) || !time(u.updated_at) {
                    return bad(format!("user {}: a time out of range", u.email));
                }
                if user_ids.insert(u.id.as_str(), (u.email.as_str(), u.role.as_str())).is_some()
                    || !emails.insert(u.email.as_str())
                {
                    return bad(format!("user {}: its id or email appears twice", u.email));
                }
            }
            BackupRow::Session(s) => {
                let Some(&(email, role)) = user_ids.get(s.user_id.as_str()) else {
                    return bad(format!("session {}: its user is not in the backup", crate::audit::escape(&s.id)));
                };
                if s.email != email || s.role != role {
                    return bad(format!(
                        "session {}: its email or role is not its user's ({email}, {role})",
                        crate::audit::escape(&s.id)
                    ));
                }
                if !session_ids.insert(s.id.as_str()) {
                    return bad(format!("session {}: appears twice", crate::audit::escape(&s.id)));
                }
                let c = &s.current;
                let texts = [&s.id, &s.email, &s.role, &c.access_jti, &c.refresh_jti];
                let times = [
                    s.created_at,
                    s.expires_at,
                    c.access_iat,
                    c.access_exp,
                    c.refresh_iat,
                    c.refresh_exp,
                    s.last_seen_at,
                ];
                if texts.iter().any(|t| t.is_empty() || crate::users::has_control(t))
                    || !no_nul(&[
                        s.ip.as_deref(),
                        s.user_agent.as_deref(),
                        s.revoke_reason.as_deref(),
                        s.prev_refresh_jti.as_deref(),
                    ])
                    || !times.iter().all(|t| time(*t))
                    || s.revoked_at.is_some_and(|t| !time(t))
                {
                    return bad(format!(
                        "session {}: a field out of range or with control characters",
                        crate::audit::escape(&s.id)
                    ));
                }
            }
            BackupRow::AuditEvent(r) => {
                let fields = [
                    Some(r.event.as_str()),
                    Some(r.outcome.as_str()),
                    r.user_id.as_deref(),
                    r.email.as_deref(),
                    r.ip.as_deref(),
                    r.user_agent.as_deref(),
                    r.request_id.as_deref(),
                    r.reason.as_deref(),
                ];
                if !no_nul(&fields) || !(0..=LATEST.saturating_mul(1000)).contains(&r.at_ms) {
                    return bad("an audit event with a NUL character or a time out of range".into());
                }
            }
            BackupRow::Throttle(t) => {
                if t.key.is_empty() || t.key.contains('\0') {
                    return bad("an account throttle without a key".into());
                }
                // No lock may outlast the longest one the service gives from when the backup
                // was taken: a forged `locked_until` would lock an account for ever.
                let counts = (0..=1_000_000).contains(&t.consecutive) && (0..=1_000_000).contains(&t.window_failures);
                if !counts
                    || !(0..=taken + crate::throttle::MAX_LOCK_SECS).contains(&t.locked_until)
                    || !(0..=taken).contains(&t.window_start)
                {
                    return bad(format!(
                        "account throttle {}: a count or time out of range (a lock may end at most {} after the backup was taken)",
                        crate::audit::escape(&t.key),
                        crate::duration::human(std::time::Duration::from_secs(crate::throttle::MAX_LOCK_SECS as u64))
                    ));
                }
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::Record;
    use crate::store::{ThrottleRow, User};

    fn rows() -> Vec<BackupRow> {
        vec![
            BackupRow::User(User {
                id: "u1".into(),
                email: "a@example.com".into(),
                name: "Ä \"quoted\", name".into(),
                role: "admin".into(),
                password_hash:
                    "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g".into(),
                disabled: false,
                created_at: 1,
                updated_at: 2,
            }),
            BackupRow::AuditEvent(Record {
                at_ms: 5,
                event: "login_success".into(),
                outcome: "success".into(),
                user_id: Some("u1".into()),
                email: None,
                ip: Some("127.0.0.1".into()),
                user_agent: None,
                request_id: None,
                reason: None,
            }),
            BackupRow::Throttle(ThrottleRow {
                key: "a@example.com".into(),
                consecutive: 3,
                locked_until: 0,
                window_start: 1,
                window_failures: 3,
            }),
        ]
    }

    fn session(role: &str) -> BackupRow {
        let issued = crate::store::Issued {
            access_jti: "a".into(),
            access_iat: 1,
            access_exp: 2,
            refresh_jti: "r".into(),
            refresh_iat: 1,
            refresh_exp: 3,
        };
        BackupRow::Session(crate::store::Session {
            id: "s1".into(),
            user_id: "u1".into(),
            email: "a@example.com".into(),
            role: role.into(),
            created_at: 1,
            expires_at: 3,
            current: issued,
            prev_refresh_jti: None,
            prev_rotated_at: None,
            prev_rotated_ms: None,
            rotations: 0,
            revoked_at: None,
            revoke_reason: None,
            ip: None,
            user_agent: None,
            last_seen_at: 1,
        })
    }

    #[test]
    fn refuses_rows_that_make_no_sense() {
        let mut bad_role = rows();
        if let BackupRow::User(u) = &mut bad_role[0] {
            u.role = "root".into();
        }
        let mut bad_name = rows();
        if let BackupRow::User(u) = &mut bad_name[0] {
            u.name = "Eve\u{1b}]0;x\u{7}".into();
        }
        let mut twice = rows();
        twice.insert(1, twice[0].clone());
        let mut upper = rows();
        if let BackupRow::User(u) = &mut upper[0] {
            u.email = "A@example.com".into();
        }
        // A session whose role is not its user's (support user, admin session).
        let mut promoted = rows();
        if let BackupRow::User(u) = &mut promoted[0] {
            u.role = "support".into();
        }
        promoted.insert(1, session("admin"));
        let mut forever = rows();
        if let BackupRow::Throttle(t) = &mut forever[2] {
            t.locked_until = 1 << 62;
        }
        let mut late = rows();
        if let BackupRow::Throttle(t) = &mut late[2] {
            t.locked_until = 1_796_040_000 + 15 * 60 + 1;
        }
        let mut ok = rows();
        ok.insert(1, session("admin"));
        if let BackupRow::Throttle(t) = &mut ok[3] {
            t.locked_until = 1_796_040_000 + 15 * 60;
        }
        decode(&encode(&ok, "sqlite", "2026-11-30T12:00:00Z")).expect("a lock within the longest one is kept");
        for (what, r, at) in [
            ("role", bad_role, 2),
            ("name", bad_name, 2),
            ("twice", twice, 3),
            ("case", upper, 2),
            ("promoted session", promoted, 3),
            ("locked forever", forever, 4),
            ("locked too long", late, 4),
        ] {
            let bytes = encode(&r, "sqlite", "2026-11-30T12:00:00Z");
            let got = decode(&bytes);
            assert!(matches!(got, Err(BackupError::Invalid { line, .. }) if line == at), "{what}: {got:?}");
        }
    }

    #[test]
    fn round_trips_and_refuses_damage() {
        let bytes = encode(&rows(), "sqlite", "2026-11-30T12:00:00Z");
        let (header, back) = decode(&bytes).unwrap();
        assert_eq!(back, rows());
        assert_eq!(header.counts, Counts { users: 1, sessions: 0, audit_events: 1, throttles: 1 });
        // Every truncation is refused, never half-loaded.
        for cut in [0, 1, 10, bytes.len() / 2, bytes.len() - 2, bytes.len() - 1] {
            assert!(decode(&bytes[..cut]).is_err(), "cut at {cut}");
        }
        // Any changed byte before the trailer breaks the checksum.
        for at in [20, bytes.len() / 2] {
            let mut bad = bytes.clone();
            bad[at] ^= 0x01;
            assert!(decode(&bad).is_err(), "flip at {at}");
        }
        // A line dropped with its checksum recomputed still fails the counts.
        let text = String::from_utf8(bytes.clone()).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let mut body = format!("{}\n{}\n", lines[0], lines[1]);
        let sum = hex(&Sha256::digest(body.as_bytes()));
        body.push_str(&format!("{{\"sha256\":\"{sum}\"}}\n"));
        assert!(matches!(decode(body.as_bytes()), Err(BackupError::Counts { .. })));
        assert_eq!(decode(b"hello\n"), Err(BackupError::NotABackup));
        let v2 = text.replacen("\"version\":1", "\"version\":2", 1);
        assert_eq!(decode(v2.as_bytes()), Err(BackupError::Version(2)));
    }
}
