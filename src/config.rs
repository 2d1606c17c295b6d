//! Configuration as the CLI reads it: settings from `.env` files (or the process
//! environment), each remembering where it came from, and typed accessors for the
//! token rules. `aspjwt check` judges the same settings.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::check::Setting;
use crate::envfile::EnvFile;
use crate::token::{Kind, Secret, TokenConfig};
use crate::{duration, names, rotate};

/// A configuration problem, naming the setting and where it was read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    #[error("{0}")]
    File(String),
    #[error("{name} is not set ({origin})")]
    Missing { name: &'static str, origin: String },
    #[error("{name}: {message} ({origin})")]
    Invalid { name: &'static str, message: String, origin: String },
}

/// Reads and parses a .env file, naming the file (and line:column) in any error.
pub fn read_env_doc(path: &Path) -> Result<EnvFile, ConfigError> {
    let shown = path.display().to_string();
    let bytes = std::fs::read(path)
        .map_err(|e| ConfigError::File(format!("{shown}: cannot read: {}", rotate::plain_io(&e))))?;
    EnvFile::parse(&bytes).map_err(|e| ConfigError::File(rotate::located(&shown, &e)))
}

/// Settings by name, with where each came from.
#[derive(Debug, Clone, Default)]
pub struct Settings {
    pub values: BTreeMap<String, Setting>,
    /// Where settings were looked for, for "not set" messages.
    pub source: String,
}

impl Settings {
    /// Reads a .env file with the same (compose) rules `rotate` edits it by.
    pub fn from_env_file(path: &Path) -> Result<Settings, ConfigError> {
        Ok(Settings::from_doc(&read_env_doc(path)?, &path.display().to_string()))
    }

    /// The settings of a parsed .env file; a key set twice keeps its last value, as compose does.
    pub fn from_doc(doc: &EnvFile, shown: &str) -> Settings {
        let mut values = BTreeMap::new();
        for e in doc.entries() {
            if let Some(v) = &e.value {
                let line = doc.pos_of(e.key_at).line;
                values.insert(e.key.clone(), Setting { value: v.text.clone(), origin: format!("{shown}:{line}") });
            }
        }
        Settings { values, source: shown.to_string() }
    }

    /// Adds `other`'s settings over these (a later file wins).
    pub fn merge(&mut self, other: Settings) {
        self.values.extend(other.values);
        self.source = if self.source.is_empty() { other.source } else { format!("{}, {}", self.source, other.source) };
    }

    /// The process environment's settings for this system.
    pub fn from_process_env() -> Settings {
        let values = std::env::vars()
            .filter(|(k, _)| k.starts_with("JWT_") || k == names::SESSION_SECRET)
            .map(|(k, v)| (k, Setting { value: v, origin: "environment".into() }))
            .collect();
        Settings { values, source: "environment".into() }
    }

    pub fn get(&self, name: &str) -> Option<&Setting> {
        self.values.get(name)
    }

    /// The secret that signs `kind`.
    pub fn secret(&self, kind: Kind) -> Result<Secret, ConfigError> {
        let name = kind.secret_var();
        match self.get(name) {
            Some(s) if !s.value.is_empty() => Ok(Secret::new(s.value.clone())),
            _ => Err(ConfigError::Missing { name, origin: self.source.clone() }),
        }
    }

    fn text(&self, name: &str, default: &str) -> String {
        self.get(name).map_or_else(|| default.to_string(), |s| s.value.clone())
    }

    pub fn issuer(&self) -> String {
        self.text(names::JWT_ISSUER, names::DEFAULT_ISSUER)
    }

    pub fn audience(&self) -> String {
        self.text(names::JWT_AUDIENCE, names::DEFAULT_AUDIENCE)
    }

    /// A lifetime setting, or its default.
    pub fn duration(&self, name: &'static str, default: &str) -> Result<Duration, ConfigError> {
        match self.get(name) {
            None => Ok(duration::parse(default).expect("defaults parse")),
            Some(s) => duration::parse(&s.value).map_err(|e| ConfigError::Invalid {
                name,
                message: e.to_string(),
                origin: s.origin.clone(),
            }),
        }
    }

    pub fn ttl(&self, kind: Kind) -> Result<Duration, ConfigError> {
        match kind {
            Kind::Access => self.duration(names::JWT_ACCESS_TOKEN_EXPIRY, names::DEFAULT_ACCESS_EXPIRY),
            Kind::Refresh => self.duration(names::JWT_REFRESH_TOKEN_EXPIRY, names::DEFAULT_REFRESH_EXPIRY),
        }
    }

    /// Everything signing needs; fails when either secret is missing.
    pub fn token_config(&self) -> Result<TokenConfig, ConfigError> {
        Ok(TokenConfig {
            access_secret: self.secret(Kind::Access)?,
            refresh_secret: self.secret(Kind::Refresh)?,
            issuer: self.issuer(),
            audience: self.audience(),
            access_ttl: self.ttl(Kind::Access)?,
            refresh_ttl: self.ttl(Kind::Refresh)?,
        })
    }
}
