//! Which database a command or the service uses, from `--db` or ASPJWT_DB: a
//! PostgreSQL URL selects PostgreSQL; a path or a `sqlite:` URL selects SQLite.
//! A PostgreSQL URL may carry a password, so it is never shown whole: `Display`
//! and `Debug` print it with the password masked.

use std::fmt;
use std::path::PathBuf;

#[derive(Clone, PartialEq, Eq)]
pub enum Target {
    Sqlite(PathBuf),
    /// The URL as given (it may hold a password: never print it, use `Display`).
    Postgres(String),
}

impl Target {
    /// Parses a `--db` value or ASPJWT_DB. Errors name the problem, never the password.
    pub fn parse(raw: &str) -> Result<Target, String> {
        let raw = raw.trim();
        if raw.is_empty() {
            return Err("is empty: give a file path or a postgres:// URL".into());
        }
        if raw.starts_with("postgres://") || raw.starts_with("postgresql://") {
            return match raw.parse::<tokio_postgres::Config>() {
                Ok(_) => Ok(Target::Postgres(raw.to_string())),
                Err(e) => Err(format!("{}: not a valid PostgreSQL URL: {e}", mask(raw))),
            };
        }
        if let Some(path) = raw.strip_prefix("sqlite://").or_else(|| raw.strip_prefix("sqlite:")) {
            return Ok(Target::Sqlite(PathBuf::from(path)));
        }
        if let Some((scheme, _)) = raw.split_once("://")
            && !scheme.is_empty()
            && scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c))
        {
            return Err(format!("{scheme}:// is not a supported database (use a file path, sqlite: or postgres://)"));
        }
        Ok(Target::Sqlite(PathBuf::from(raw)))
    }

    /// True for a PostgreSQL URL that holds a password (not for the command line).
    pub fn has_password(&self) -> bool {
        match self {
            Target::Postgres(url) => url.parse::<tokio_postgres::Config>().is_ok_and(|c| c.get_password().is_some()),
            Target::Sqlite(_) => false,
        }
    }

    pub fn is_postgres(&self) -> bool {
        matches!(self, Target::Postgres(_))
    }
}

/// The URL with the password (between `user:` and `@` in the authority) and any
/// `password=` query parameter replaced by `***`.
fn mask(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let (authority, tail) = match rest.find(['/', '?']) {
        Some(i) => rest.split_at(i),
        None => (rest, ""),
    };
    let authority = match authority.rsplit_once('@') {
        Some((userinfo, host)) => match userinfo.split_once(':') {
            Some((user, _)) => format!("{user}:***@{host}"),
            None => authority.to_string(),
        },
        None => authority.to_string(),
    };
    let tail = match tail.split_once('?') {
        Some((path, query)) => {
            let query: Vec<String> = query
                .split('&')
                .map(|kv| match kv.split_once('=') {
                    Some((k, _)) if k.eq_ignore_ascii_case("password") => format!("{k}=***"),
                    _ => kv.to_string(),
                })
                .collect();
            format!("{path}?{}", query.join("&"))
        }
        None => tail.to_string(),
    };
    format!("{scheme}://{authority}{tail}")
}

impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Sqlite(p) => write!(f, "{}", p.display()),
            Target::Postgres(url) => f.write_str(&mask(url)),
        }
    }
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Target::Sqlite(p) => f.debug_tuple("Sqlite").field(p).finish(),
            Target::Postgres(_) => f.debug_tuple("Postgres").field(&self.to_string()).finish(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_and_sqlite_urls_select_sqlite() {
        assert_eq!(Target::parse("./data/a.db").unwrap(), Target::Sqlite("./data/a.db".into()));
        assert_eq!(Target::parse("sqlite:a.db").unwrap(), Target::Sqlite("a.db".into()));
        assert_eq!(Target::parse("sqlite:///var/a.db").unwrap(), Target::Sqlite("/var/a.db".into()));
        assert!(Target::parse("mysql://x/y").unwrap_err().contains("mysql://"));
        assert!(Target::parse("  ").is_err());
    }

    #[test]
    fn postgres_urls_select_postgres_and_never_show_the_password() {
        let t = Target::parse("postgres://aspjwt:s3cr3t-pw@db:5432/aspjwt?sslmode=disable").unwrap();
        assert!(t.is_postgres() && t.has_password());
        assert_eq!(t.to_string(), "postgres://aspjwt:***@db:5432/aspjwt?sslmode=disable");
        assert!(!format!("{t:?}").contains("s3cr3t"));
        let q = Target::parse("postgresql://u@h/d?password=s3cr3t-pw").unwrap();
        assert!(q.has_password() && !q.to_string().contains("s3cr3t"));
        let plain = Target::parse("postgres://aspjwt@127.0.0.1/test").unwrap();
        assert!(!plain.has_password());
        assert_eq!(plain.to_string(), "postgres://aspjwt@127.0.0.1/test");
        let bad = Target::parse("postgres://u:s3cr3t-pw@h:notaport/d").unwrap_err();
        assert!(bad.contains("port") && !bad.contains("s3cr3t"), "{bad}");
    }
}
