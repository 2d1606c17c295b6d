//! Configuration as the CLI reads it: settings from `.env` files (or the process
//! environment), each remembering where it came from, and typed accessors for the
//! token rules. `aspjwt check` judges the same settings.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use crate::check::Setting;
use crate::envfile::EnvFile;
use crate::store::Target;
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
    let bytes = crate::fsx::read_path(path).map_err(ConfigError::File)?;
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
    /// Reads a .env file with the same (compose) rules `rotate` edits it by; `check`,
    /// `serve` and every other command read it through here, so they cannot disagree.
    pub fn from_env_file(path: &Path) -> Result<Settings, ConfigError> {
        Settings::from_doc(&read_env_doc(path)?, &path.display().to_string())
    }

    /// The settings of a parsed .env file, interpolated as compose does (`${VAR}` from
    /// the process environment first, then the lines above); a key set twice keeps its
    /// last value. A bare `KEY` line takes the process environment's value, if any.
    pub fn from_doc(doc: &EnvFile, shown: &str) -> Result<Settings, ConfigError> {
        let mut values: BTreeMap<String, Setting> = BTreeMap::new();
        for e in doc.entries() {
            let origin = format!("{shown}:{}", doc.pos_of(e.key_at).line);
            let value = match &e.value {
                None => match std::env::var(&e.key) {
                    Ok(v) => v,
                    Err(_) => continue,
                },
                Some(v) if v.interpolates() => {
                    let lookup =
                        |name: &str| std::env::var(name).ok().or_else(|| values.get(name).map(|s| s.value.clone()));
                    crate::interpolate::resolve(&v.text, &lookup)
                        .map_err(|err| {
                            ConfigError::File(format!(
                                "{}: {}: {err}",
                                rotate::located(shown, &doc.pos_of(v.span.start)),
                                e.key
                            ))
                        })?
                        .value
                }
                Some(v) => v.text.clone(),
            };
            values.insert(e.key.clone(), Setting { value, origin });
        }
        Ok(Settings { values, source: shown.to_string() })
    }

    /// Adds `other`'s settings over these (a later file wins).
    pub fn merge(&mut self, other: Settings) {
        self.values.extend(other.values);
        self.source = if self.source.is_empty() { other.source } else { format!("{}, {}", self.source, other.source) };
    }

    /// The process environment's settings for this system.
    pub fn from_process_env() -> Settings {
        // Every rollover entry too, SESSION_SECRET's included: one ignored here would be
        // neither judged nor honoured (review of issue 14).
        let rollover = |k: &str| {
            names::DEFAULT_SECRETS
                .iter()
                .any(|d| k == names::previous_of(d.name) || k == names::previous_until_of(d.name))
        };
        let values = std::env::vars()
            .filter(|(k, _)| names::SERVICE_VARS.contains(&k.as_str()) || k.starts_with("JWT_") || rollover(k))
            .map(|(k, v)| (k, Setting { value: v, origin: "environment".into() }))
            .collect();
        Settings { values, source: "environment".into() }
    }

    /// What the service reads: the .env file (when given, or `./.env` when present),
    /// read as `check` reads it, with the real environment winning.
    pub fn for_service(env_file: Option<&Path>) -> Result<Settings, ConfigError> {
        let default = Path::new(".env");
        let path = match env_file {
            Some(p) => Some(p),
            None if default.is_file() => Some(default),
            None => None,
        };
        let mut settings = match path {
            Some(p) => Settings::from_env_file(p)?,
            None => Settings::default(),
        };
        settings.merge(Settings::from_process_env());
        Ok(settings)
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

    /// The previous value of secret `name` and the end of its window, during a rollover.
    /// The previous secret of `name` and its window, only when the rollover passes every
    /// rule of `check` (a weak or over-long one verifies nothing, as `serve` refuses it).
    pub fn previous(&self, name: &str) -> Option<crate::token::Previous> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let item = format!("{name} rollover");
        if crate::check::rollover(&self.values, now)
            .iter()
            .any(|f| f.item == item && f.status == crate::check::Status::Fail)
        {
            return None;
        }
        let secret = crate::check::rollover_entry(&self.values, &names::previous_of(name))?;
        let until = crate::check::parse_time(
            &crate::check::rollover_entry(&self.values, &names::previous_until_of(name))?.value,
        )?;
        Some(crate::token::Previous { secret: Secret::new(secret.value.clone()), until })
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
            access_previous: self.previous(names::JWT_SECRET),
            refresh_previous: self.previous(names::JWT_REFRESH_SECRET),
            issuer: self.issuer(),
            audience: self.audience(),
            access_ttl: self.ttl(Kind::Access)?,
            refresh_ttl: self.ttl(Kind::Refresh)?,
        })
    }
}

/// Everything `aspjwt serve` needs, validated.
#[derive(Debug, Clone)]
pub struct ServiceConfig {
    pub tokens: TokenConfig,
    pub session_secret: Secret,
    /// During a rollover, the previous SESSION_SECRET (CSRF tokens it signed stay valid).
    pub session_previous: Option<crate::token::Previous>,
    /// Absolute cap of a session.
    pub session_max: Duration,
    /// How long the previous refresh token still gets the current pair.
    pub reuse_grace: Duration,
    /// How long before expiry clients should refresh (`refreshThresholdSeconds`).
    pub refresh_threshold: Duration,
    pub db: Target,
    /// `APP_ENV=production`: Secure cookies, HSTS (see `secure_transport`).
    pub production: bool,
    /// The certificate and key the main listener serves HTTPS with (restart to switch
    /// TLS on or off; a reload may swap the pair).
    pub tls: Option<crate::tls::Identity>,
    /// A plain-HTTP listener that redirects to HTTPS (restart to change).
    pub redirect_bind: Option<std::net::SocketAddr>,
    pub rate_burst: u32,
    pub rate_per_5min: u32,
    pub trusted_proxies: Vec<crate::net::Net>,
    /// Exact origins (`https://crm.example.com`).
    pub allowed_origins: Vec<String>,
    /// `http://host:port` (path prefix allowed) of the CRM backend.
    pub upstream: Option<String>,
    pub metrics_bind: Option<std::net::SocketAddr>,
    pub max_connections: usize,
    /// Connections one peer address may hold (restart to change).
    pub max_connections_per_ip: usize,
    /// The values as configured, before start-up fitted them to the open-files limit
    /// and the global cap: what a reload compares against.
    pub max_connections_configured: usize,
    pub max_connections_per_ip_configured: usize,
    /// The whole-body deadline for bodies the service reads, the idle deadline for
    /// bodies it forwards.
    pub body_timeout: Duration,
    /// Idle keep-alive and header-read deadline (restart to change).
    pub idle_timeout: Duration,
    /// Client addresses each per-IP limiter keeps state for.
    pub rate_limit_clients: usize,
    pub upstream_timeout: Duration,
}

/// Checks an `ASPJWT_LOG` value: levels (`off`, `error`, `warn`, `info`, `debug`,
/// `trace`) and `target=level` directives. A bare word that is neither is a target
/// filter to tracing, which then logs nothing of the service: no start-up line, no
/// audit lines, silently. Refused instead.
pub fn log_filter(value: &str) -> Result<(), String> {
    const LEVELS: [&str; 6] = ["off", "error", "warn", "info", "debug", "trace"];
    for d in value.split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let level = d.rsplit_once('=').map_or(d, |(_, l)| l);
        if !LEVELS.contains(&level.to_ascii_lowercase().as_str()) {
            return Err(format!("{d:?} is not a level ({}) or a target=level directive", LEVELS.join(", ")));
        }
    }
    tracing_subscriber::EnvFilter::try_new(value).map(drop).map_err(|e| e.to_string())
}

impl ServiceConfig {
    /// Whether browsers reach the service over HTTPS (its own TLS, or a TLS-terminating
    /// proxy in production): cookies are then `Secure` and HSTS is sent.
    pub fn secure_transport(&self) -> bool {
        self.production || self.tls.is_some()
    }

    /// Builds the configuration, or every reason it is unacceptable, one line each:
    /// the rules of `aspjwt check`, with no development bypass.
    pub fn from_settings(s: &Settings, db_flag: Option<&str>) -> Result<ServiceConfig, Vec<String>> {
        ServiceConfig::judge(s, db_flag, None)
    }

    /// `from_settings` for a SIGHUP reload of the service running `running`: its TLS
    /// pair, unchanged, is kept whatever its dates (an expired certificate must not
    /// block the reload that rotates the secrets).
    pub fn reload(s: &Settings, db_flag: Option<&str>, running: &ServiceConfig) -> Result<ServiceConfig, Vec<String>> {
        ServiceConfig::judge(s, db_flag, running.tls.as_ref())
    }

    fn judge(
        s: &Settings,
        db_flag: Option<&str>,
        tls_in_service: Option<&crate::tls::Identity>,
    ) -> Result<ServiceConfig, Vec<String>> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs() as i64);
        let mut problems: Vec<String> = crate::check::secrets(&s.values)
            .into_iter()
            .chain(crate::check::expiries(&s.values))
            .chain(crate::check::rollover(&s.values, now))
            .filter(|f| f.status == crate::check::Status::Fail)
            .map(|f| format!("{}: {}", f.item, f.detail))
            .collect();
        let mut dur = |name, default| match s.duration(name, default) {
            Ok(d) => Some(d),
            Err(e) => {
                problems.push(e.to_string());
                None
            }
        };
        let session_max = dur(names::SESSION_MAX_LIFETIME, names::DEFAULT_SESSION_MAX_LIFETIME);
        let reuse_grace = dur(names::REFRESH_REUSE_GRACE, names::DEFAULT_REFRESH_REUSE_GRACE);
        let upstream_timeout =
            dur(names::UPSTREAM_TIMEOUT, names::DEFAULT_UPSTREAM_TIMEOUT).unwrap_or(Duration::from_secs(30));
        let body_timeout =
            dur(names::ASPJWT_BODY_TIMEOUT, names::DEFAULT_BODY_TIMEOUT).unwrap_or(Duration::from_secs(10));
        let idle_timeout =
            dur(names::ASPJWT_IDLE_TIMEOUT, names::DEFAULT_IDLE_TIMEOUT).unwrap_or(Duration::from_secs(10));
        let zero = [(names::ASPJWT_BODY_TIMEOUT, body_timeout), (names::ASPJWT_IDLE_TIMEOUT, idle_timeout)]
            .into_iter()
            .filter(|(_, d)| d.is_zero())
            .map(|(name, _)| format!("{name}: must be longer than zero"));
        let mut zero: Vec<String> = zero.collect();
        // Upper bounds where a huge value quietly switches a defence off: a day of grace
        // is reuse detection off; a stalled body or an idle socket held for days is the
        // slot exhaustion these deadlines exist to stop.
        for (name, value, max, why) in [
            (
                names::UPSTREAM_TIMEOUT,
                Some(upstream_timeout),
                Duration::from_secs(600),
                "a backend that never answers holds a slot that long",
            ),
            (
                names::REFRESH_REUSE_GRACE,
                reuse_grace,
                Duration::from_secs(60),
                "a longer grace lets a stolen refresh token be replayed unnoticed",
            ),
            (
                names::ASPJWT_BODY_TIMEOUT,
                Some(body_timeout),
                Duration::from_secs(600),
                "a stalled body holds a slot that long",
            ),
            (
                names::ASPJWT_IDLE_TIMEOUT,
                Some(idle_timeout),
                Duration::from_secs(3600),
                "an idle socket holds a slot that long",
            ),
        ] {
            if value.is_some_and(|v| v > max) {
                zero.push(format!("{name}: at most {} ({why})", duration::human(max)));
            }
        }
        // Unset, the threshold is 5 minutes, or a third of a shorter access lifetime.
        let access = s.ttl(Kind::Access).unwrap_or(Duration::from_secs(900));
        let refresh_threshold = match s.get(names::JWT_REFRESH_THRESHOLD) {
            None => Duration::from_secs(names::REFRESH_THRESHOLD_SECS).min(access / 3),
            Some(_) => {
                let t = dur(names::JWT_REFRESH_THRESHOLD, "5m").unwrap_or(Duration::from_secs(300));
                if t >= access {
                    problems.push(format!(
                        "{}: must be shorter than the access token lifetime",
                        names::JWT_REFRESH_THRESHOLD
                    ));
                }
                t
            }
        };
        problems.extend(zero);
        if let Some(v) = s.get(names::ASPJWT_LOG)
            && let Err(e) = log_filter(&v.value)
        {
            problems.push(format!("ASPJWT_LOG: {e} ({})", v.origin));
        }
        let list = |name: &str| -> Vec<String> {
            s.get(name).map_or_else(Vec::new, |v| {
                v.value.split(',').map(str::trim).filter(|x| !x.is_empty()).map(str::to_string).collect()
            })
        };
        let mut number = |name: &str, default: u64, range: std::ops::RangeInclusive<u64>| -> u64 {
            match s.get(name) {
                None => default,
                Some(v) => match v.value.trim().parse::<u64>() {
                    Ok(n) if range.contains(&n) => n,
                    _ => {
                        problems.push(format!(
                            "{name}: {:?} is not a number from {} to {} ({})",
                            v.value,
                            range.start(),
                            range.end(),
                            v.origin
                        ));
                        default
                    }
                },
            }
        };
        let rate_burst = number(names::AUTH_RATE_BURST, names::DEFAULT_RATE_BURST.into(), 1..=1_000_000) as u32;
        let rate_per_5min =
            number(names::AUTH_RATE_PER_5MIN, names::DEFAULT_RATE_PER_5MIN.into(), 1..=100_000_000) as u32;
        let max_connections =
            number(names::ASPJWT_MAX_CONNECTIONS, names::DEFAULT_MAX_CONNECTIONS as u64, 4..=1_000_000) as usize;
        let max_connections_per_ip =
            number(names::ASPJWT_MAX_CONNECTIONS_PER_IP, names::DEFAULT_MAX_CONNECTIONS_PER_IP as u64, 1..=1_000_000)
                as usize;
        let rate_limit_clients =
            number(names::ASPJWT_RATE_LIMIT_CLIENTS, names::DEFAULT_RATE_LIMIT_CLIENTS as u64, 100..=10_000_000)
                as usize;
        let mut trusted_proxies = Vec::new();
        for p in list(names::TRUSTED_PROXIES) {
            match p.parse() {
                Ok(n) => trusted_proxies.push(n),
                Err(e) => problems.push(format!("{}: {e}", names::TRUSTED_PROXIES)),
            }
        }
        let allowed_origins = list(names::ALLOWED_ORIGINS);
        for o in &allowed_origins {
            let ok = (o.starts_with("https://") || o.starts_with("http://"))
                && !o.trim_end_matches('/').contains(['*', ' '])
                && !o.ends_with('/');
            if !ok {
                problems.push(format!(
                    "{}: {o:?} is not an exact origin like https://crm.example.com (no path, no wildcard)",
                    names::ALLOWED_ORIGINS
                ));
            }
        }
        let upstream = s
            .get(names::UPSTREAM_URL)
            .map(|v| v.value.trim().trim_end_matches('/').to_string())
            .filter(|v| !v.is_empty());
        if let Some(u) = &upstream
            && (!u.starts_with("http://") || u.parse::<hyper::Uri>().is_err())
        {
            problems.push(format!("{}: {u:?} is not an http:// URL of the CRM backend", names::UPSTREAM_URL));
        }
        let metrics_bind = match s.get(names::METRICS_BIND) {
            None => None,
            Some(v) => match v.value.trim().parse() {
                Ok(a) => Some(a),
                Err(_) => {
                    problems.push(format!(
                        "{}: {:?} is not an address like 127.0.0.1:9100",
                        names::METRICS_BIND,
                        v.value
                    ));
                    None
                }
            },
        };
        let (tls_findings, tls) = crate::check::tls(&s.values, now, tls_in_service);
        problems.extend(
            tls_findings
                .iter()
                .filter(|f| f.status == crate::check::Status::Fail)
                .map(|f| format!("{}: {}", f.item, f.detail)),
        );
        let redirect_bind = match s.get(names::ASPJWT_REDIRECT_BIND).filter(|v| !v.value.trim().is_empty()) {
            None => None,
            Some(v) => match v.value.trim().parse() {
                // TLS is configured when `check::tls` judged anything (blank settings are unset
                // there); a pair it refused is already among the problems.
                Ok(a) if !tls_findings.is_empty() => Some(a),
                Ok(_) => {
                    problems.push(format!(
                        "{}: redirects to HTTPS, so it needs {} and {} ({})",
                        names::ASPJWT_REDIRECT_BIND,
                        names::ASPJWT_TLS_CERT,
                        names::ASPJWT_TLS_KEY,
                        v.origin
                    ));
                    None
                }
                Err(_) => {
                    problems.push(format!(
                        "{}: {:?} is not an address like 0.0.0.0:80 ({})",
                        names::ASPJWT_REDIRECT_BIND,
                        v.value,
                        v.origin
                    ));
                    None
                }
            },
        };
        let db = db_target(db_flag, s).unwrap_or_else(|e| {
            problems.push(e);
            Target::Sqlite(names::DEFAULT_DB.into())
        });
        let tokens = s.token_config();
        let session_secret = s.get(names::SESSION_SECRET).map(|v| Secret::new(v.value.clone()));
        match (tokens, session_secret, session_max, reuse_grace) {
            (Ok(tokens), Some(session_secret), Some(session_max), Some(reuse_grace)) if problems.is_empty() => {
                Ok(ServiceConfig {
                    tokens,
                    session_secret,
                    session_previous: s.previous(names::SESSION_SECRET),
                    session_max,
                    reuse_grace,
                    refresh_threshold,
                    db,
                    production: s.get(names::APP_ENV).is_some_and(|v| v.value.eq_ignore_ascii_case("production")),
                    tls,
                    redirect_bind,
                    rate_burst,
                    rate_per_5min,
                    trusted_proxies,
                    allowed_origins,
                    upstream,
                    metrics_bind,
                    max_connections,
                    max_connections_per_ip,
                    max_connections_configured: max_connections,
                    max_connections_per_ip_configured: max_connections_per_ip,
                    body_timeout,
                    idle_timeout,
                    rate_limit_clients,
                    upstream_timeout,
                })
            }
            (tokens, ..) => {
                if let Err(e) = tokens
                    && problems.is_empty()
                {
                    problems.push(e.to_string());
                }
                Err(problems)
            }
        }
    }
}

/// The database: `--db`, else ASPJWT_DB, else `./data/aspjwt.db` (see `store::Target`).
/// A password in `--db` is refused: the command line is visible to every user.
pub fn db_target(flag: Option<&str>, s: &Settings) -> Result<Target, String> {
    match flag {
        Some(raw) => {
            let t = Target::parse(raw).map_err(|e| format!("--db: {e}"))?;
            if t.has_password() {
                return Err(format!(
                    "--db: {t}: the URL holds a password, and the command line is visible to every user (ps); \
                     put the URL in {} (environment or .env) or the password in PGPASSWORD",
                    names::ASPJWT_DB
                ));
            }
            Ok(t)
        }
        None => match s.get(names::ASPJWT_DB) {
            Some(v) => Target::parse(&v.value).map_err(|e| format!("{}: {e}", names::ASPJWT_DB)),
            None => Ok(Target::Sqlite(names::DEFAULT_DB.into())),
        },
    }
}
