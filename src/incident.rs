//! The incident report, as data: who is affected (everyone whose session was ended)
//! and what looks suspicious in the window (failed logins by address and by email,
//! account locks, refresh-token reuse, logins from addresses not seen in the 30 days
//! before it). Pure: sessions, users and audit records in, a report out; the CSV for
//! a mail merge too. `aspjwt incident` does the I/O.

use std::collections::{BTreeMap, BTreeSet};

use serde::Serialize;

use crate::audit::{Event, Record};
use crate::store::{Session, User};

/// How far back "an address seen before" looks, before the window.
pub const SEEN_BEFORE_MS: i64 = 30 * 86_400_000;

/// A user whose sessions the incident ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Affected {
    pub email: String,
    pub name: String,
    pub role: String,
    /// The newest login (session start), RFC 3339.
    pub last_login: Option<String>,
    pub sessions_ended: usize,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Count {
    pub key: String,
    pub count: usize,
    /// The count includes rate-limited attempts, which the service audits at most 20 a
    /// second: the real number may be higher.
    pub at_least: bool,
}

/// One audit event worth a look.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Sighting {
    pub at: String,
    pub email: Option<String>,
    pub ip: Option<String>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Suspicious {
    pub since: String,
    pub failed_logins_by_address: Vec<Count>,
    pub failed_logins_by_email: Vec<Count>,
    pub account_locks: Vec<Sighting>,
    pub refresh_token_reuse: Vec<Sighting>,
    /// Successful logins from addresses with no successful login in the 30 days before `since`.
    pub logins_from_new_addresses: Vec<Sighting>,
}

fn rfc3339_ms(ms: i64) -> String {
    crate::token::rfc3339(ms.div_euclid(1000)).unwrap_or_default()
}

/// The users whose sessions in `ended` were ended, with their newest login among
/// `all_sessions`, by email.
pub fn affected(ended: &[Session], all_sessions: &[Session], users: &[User]) -> Vec<Affected> {
    let mut per_user: BTreeMap<&str, usize> = BTreeMap::new();
    for s in ended {
        *per_user.entry(&s.user_id).or_default() += 1;
    }
    let mut out: Vec<Affected> = per_user
        .into_iter()
        .map(|(id, n)| {
            let user = users.iter().find(|u| u.id == id);
            let fallback = ended.iter().find(|s| s.user_id == id);
            let last = all_sessions.iter().filter(|s| s.user_id == id).map(|s| s.created_at).max();
            Affected {
                email: user.map(|u| u.email.clone()).or(fallback.map(|s| s.email.clone())).unwrap_or_default(),
                name: user.map(|u| u.name.clone()).unwrap_or_default(),
                role: user.map(|u| u.role.clone()).or(fallback.map(|s| s.role.clone())).unwrap_or_default(),
                last_login: last.and_then(crate::token::rfc3339),
                sessions_ended: n,
            }
        })
        .collect();
    out.sort_by(|a, b| a.email.cmp(&b.email));
    out
}

/// Counts by key; `sampled` marks keys whose count includes sampled (rate-limited) events.
fn counted<'a>(keys: impl Iterator<Item = (&'a str, bool)>) -> Vec<Count> {
    let mut m: BTreeMap<&str, (usize, bool)> = BTreeMap::new();
    for (k, sampled) in keys {
        let e = m.entry(k).or_default();
        e.0 += 1;
        e.1 |= sampled;
    }
    let mut v: Vec<Count> =
        m.into_iter().map(|(key, (count, at_least))| Count { key: key.to_string(), count, at_least }).collect();
    v.sort_by(|a, b| b.count.cmp(&a.count).then(a.key.cmp(&b.key)));
    v
}

fn sighting(r: &Record) -> Sighting {
    Sighting { at: rfc3339_ms(r.at_ms), email: r.email.clone(), ip: r.ip.clone(), reason: r.reason.clone() }
}

/// What looks suspicious in `audit` (any order) at or after `since_ms`; `audit` must
/// reach back `SEEN_BEFORE_MS` before it for the new-address rule.
pub fn suspicious(audit: &[Record], since_ms: i64) -> Suspicious {
    let mut in_window: Vec<&Record> = audit.iter().filter(|r| r.at_ms >= since_ms).collect();
    in_window.sort_by_key(|r| r.at_ms);
    let of = |e: Event| in_window.iter().filter(move |r| r.event == e.as_str());
    let failures: Vec<&&Record> = of(Event::LoginFailure).collect();
    // Attempts the per-IP login limit refused are failed logins too (they carry no email).
    let limited = of(Event::RateLimited).filter(|r| r.reason.as_deref().is_some_and(|x| x.starts_with("login")));
    let seen_before: BTreeSet<&str> = audit
        .iter()
        .filter(|r| r.event == Event::LoginSuccess.as_str())
        .filter(|r| r.at_ms < since_ms && r.at_ms >= since_ms - SEEN_BEFORE_MS)
        .filter_map(|r| r.ip.as_deref())
        .collect();
    let mut first_seen: BTreeSet<&str> = BTreeSet::new();
    let logins_from_new_addresses = of(Event::LoginSuccess)
        .filter(|r| r.ip.as_deref().is_some_and(|ip| !seen_before.contains(ip) && first_seen.insert(ip)))
        .map(|r| sighting(r))
        .collect();
    Suspicious {
        since: rfc3339_ms(since_ms),
        failed_logins_by_address: counted(
            failures
                .iter()
                .map(|r| (r.ip.as_deref().unwrap_or("?"), false))
                .chain(limited.map(|r| (r.ip.as_deref().unwrap_or("?"), true))),
        ),
        failed_logins_by_email: counted(failures.iter().map(|r| (r.email.as_deref().unwrap_or("?"), false))),
        account_locks: of(Event::AccountLocked).map(|r| sighting(r)).collect(),
        refresh_token_reuse: of(Event::RefreshTokenReuse).map(|r| sighting(r)).collect(),
        logins_from_new_addresses,
    }
}

/// One CSV field (RFC 4180). Control characters and bidirectional overrides are escaped
/// (they can only have come through a restore, and would run in a terminal or reorder a
/// spreadsheet cell). Any value that starts like a spreadsheet formula (`=`, `+`, `-`,
/// `@`, tab, CR) gets a leading `'`, email addresses included: an address may legally
/// start with `=` or `-`, and a report is no place to find out what a spreadsheet does
/// with one.
fn csv_field(v: &str) -> String {
    let v = crate::audit::escape(v);
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{v}") } else { v };
    if v.contains([',', '"', '\n', '\r']) { format!("\"{}\"", v.replace('"', "\"\"")) } else { v }
}

/// The affected users as CSV, header first, for a mail merge.
/// The report's first line: a report may replace only an earlier report.
pub const CSV_HEADER: &str = "email,name,role,last_login,sessions_ended\r\n";

pub fn csv(users: &[Affected]) -> String {
    let mut out = String::from(CSV_HEADER);
    for u in users {
        let fields = [
            u.email.as_str(),
            u.name.as_str(),
            u.role.as_str(),
            u.last_login.as_deref().unwrap_or(""),
            &u.sessions_ended.to_string(),
        ];
        out.push_str(&fields.iter().map(|f| csv_field(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(event: Event, at_ms: i64, email: &str, ip: &str) -> Record {
        let mut r = Record::new(event, event == Event::LoginSuccess, at_ms);
        r.email = Some(email.into());
        r.ip = Some(ip.into());
        r
    }

    #[test]
    fn suspicious_activity_in_the_window() {
        let since = 100 * 86_400_000;
        let audit = vec![
            rec(Event::LoginSuccess, since - 5 * 86_400_000, "a@x", "10.0.0.1"), // seen before
            rec(Event::LoginSuccess, since - 40 * 86_400_000, "a@x", "10.0.0.9"), // too long ago
            rec(Event::LoginFailure, since - 1, "a@x", "6.6.6.6"),               // before the window
            rec(Event::LoginFailure, since + 1, "a@x", "6.6.6.6"),
            rec(Event::LoginFailure, since + 2, "b@x", "6.6.6.6"),
            rec(Event::LoginFailure, since + 3, "b@x", "7.7.7.7"),
            rec(Event::AccountLocked, since + 4, "b@x", "7.7.7.7"),
            rec(Event::RefreshTokenReuse, since + 5, "c@x", "8.8.8.8"),
            rec(Event::LoginSuccess, since + 6, "a@x", "10.0.0.1"),
            rec(Event::LoginSuccess, since + 7, "a@x", "10.0.0.9"),
            rec(Event::LoginSuccess, since + 8, "c@x", "10.0.0.9"),
            Record {
                reason: Some("login limit; retry in 2s".into()),
                ..rec(Event::RateLimited, since + 9, "", "6.6.6.6")
            },
            Record {
                reason: Some("refresh limit; retry in 2s".into()),
                ..rec(Event::RateLimited, since + 9, "", "6.6.6.6")
            },
        ];
        let s = suspicious(&audit, since);
        let pairs = |v: &[Count]| v.iter().map(|c| (c.key.clone(), c.count)).collect::<Vec<_>>();
        assert_eq!(
            pairs(&s.failed_logins_by_address),
            [("6.6.6.6".into(), 3), ("7.7.7.7".into(), 1)],
            "a refused login counts"
        );
        // ... as a floor: the service audits refusals at most 20 a second.
        assert_eq!(s.failed_logins_by_address.iter().map(|c| c.at_least).collect::<Vec<_>>(), [true, false]);
        assert_eq!(pairs(&s.failed_logins_by_email), [("b@x".into(), 2), ("a@x".into(), 1)]);
        assert_eq!(s.account_locks.len(), 1);
        assert_eq!(s.refresh_token_reuse[0].email.as_deref(), Some("c@x"));
        let new: Vec<_> = s.logins_from_new_addresses.iter().map(|x| x.ip.clone().unwrap()).collect();
        assert_eq!(new, ["10.0.0.9"], "once per address, and not one seen in the 30 days before");
    }

    #[test]
    fn csv_is_quoted_and_defused() {
        let users = vec![
            Affected {
                email: "a@example.com".into(),
                name: "=HYPERLINK(\"x\"), Jr.".into(),
                role: "admin".into(),
                last_login: None,
                sessions_ended: 2,
            },
            Affected {
                email: "-x@example.com".into(),
                name: "Eve\u{1b}]0;pwned\u{7}\u{202e}".into(),
                role: "support".into(),
                last_login: None,
                sessions_ended: 1,
            },
        ];
        assert_eq!(
            csv(&users),
            "email,name,role,last_login,sessions_ended\r\n\
             a@example.com,\"'=HYPERLINK(\"\"x\"\"), Jr.\",admin,,2\r\n\
             '-x@example.com,Eve\\u{1b}]0;pwned\\u{7}\\u{202e},support,,1\r\n"
        );
    }
}
