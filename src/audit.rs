//! The audit vocabulary, shared by the service and the operator commands.

use serde::Serialize;

/// What happened. `as_str` is the stable name stored and logged.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    LoginSuccess,
    LoginFailure,
    Refresh,
    RefreshFailure,
    RefreshTokenReuse,
    Logout,
    SessionRevoked,
    UserCreated,
    UserDisabled,
    UserEnabled,
    PasswordChanged,
    RoleChanged,
    RateLimited,
    AccountLocked,
    CsrfRejected,
    ConfigReloaded,
    ConfigReloadRefused,
    IncidentDeclared,
    BackupTaken,
    BackupRestored,
    UserImported,
    PasswordRehashed,
}

impl Event {
    pub const ALL: [Event; 22] = [
        Event::LoginSuccess,
        Event::LoginFailure,
        Event::Refresh,
        Event::RefreshFailure,
        Event::RefreshTokenReuse,
        Event::Logout,
        Event::SessionRevoked,
        Event::UserCreated,
        Event::UserDisabled,
        Event::UserEnabled,
        Event::PasswordChanged,
        Event::RoleChanged,
        Event::RateLimited,
        Event::AccountLocked,
        Event::CsrfRejected,
        Event::ConfigReloaded,
        Event::ConfigReloadRefused,
        Event::IncidentDeclared,
        Event::BackupTaken,
        Event::BackupRestored,
        Event::UserImported,
        Event::PasswordRehashed,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Event::LoginSuccess => "login_success",
            Event::LoginFailure => "login_failure",
            Event::Refresh => "refresh",
            Event::RefreshFailure => "refresh_failure",
            Event::RefreshTokenReuse => "refresh_token_reuse",
            Event::Logout => "logout",
            Event::SessionRevoked => "session_revoked",
            Event::UserCreated => "user_created",
            Event::UserDisabled => "user_disabled",
            Event::UserEnabled => "user_enabled",
            Event::PasswordChanged => "password_changed",
            Event::RoleChanged => "role_changed",
            Event::RateLimited => "rate_limited",
            Event::AccountLocked => "account_locked",
            Event::CsrfRejected => "csrf_rejected",
            Event::ConfigReloaded => "config_reloaded",
            Event::ConfigReloadRefused => "config_reload_refused",
            Event::IncidentDeclared => "incident_declared",
            Event::BackupTaken => "backup_taken",
            Event::BackupRestored => "backup_restored",
            Event::UserImported => "user_imported",
            Event::PasswordRehashed => "password_rehashed",
        }
    }

    pub fn parse(s: &str) -> Option<Event> {
        Event::ALL.into_iter().find(|e| e.as_str() == s)
    }
}

/// One audit record. Never holds a password, secret or token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Record {
    /// Milliseconds since the epoch.
    pub at_ms: i64,
    pub event: String,
    pub outcome: String,
    pub user_id: Option<String>,
    /// The email as submitted (escaped when shown).
    pub email: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub request_id: Option<String>,
    pub reason: Option<String>,
}

impl Record {
    pub fn new(event: Event, success: bool, at_ms: i64) -> Record {
        Record {
            at_ms,
            event: event.as_str().into(),
            outcome: if success { "success" } else { "failure" }.into(),
            user_id: None,
            email: None,
            ip: None,
            user_agent: None,
            request_id: None,
            reason: None,
        }
    }
}

/// Escapes control characters (C0, DEL, C1), line and paragraph separators (U+2028,
/// U+2029) and bidirectional overrides and isolates (U+202A–U+202E, U+2066–U+2069), so a field shown to a person can't forge lines,
/// colours or the order of what it is next to.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() || matches!(c, '\u{2028}'..='\u{202E}' | '\u{2066}'..='\u{2069}') {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_escape() {
        for e in Event::ALL {
            assert_eq!(Event::parse(e.as_str()), Some(e));
        }
        assert_eq!(escape("a\nb\x1b[31m"), "a\\nb\\u{1b}[31m");
        assert_eq!(escape("x\u{202e}y"), "x\\u{202e}y");
    }
}
