//! The contract shared by the CLI, the service and the health check: env var
//! names, claim names, cookie names and defaults. Integration tests spell these
//! literally on purpose, so renaming one here breaks a test.

/// Signs access tokens (64 random bytes, base64: 88 characters).
pub const JWT_SECRET: &str = "JWT_SECRET";
/// Signs refresh tokens (64 random bytes, base64: 88 characters).
pub const JWT_REFRESH_SECRET: &str = "JWT_REFRESH_SECRET";
/// Keys session-bound values such as CSRF tokens (32 random bytes, base64: 44 characters).
pub const SESSION_SECRET: &str = "SESSION_SECRET";

pub const JWT_ACCESS_TOKEN_EXPIRY: &str = "JWT_ACCESS_TOKEN_EXPIRY";
pub const JWT_REFRESH_TOKEN_EXPIRY: &str = "JWT_REFRESH_TOKEN_EXPIRY";
pub const JWT_ISSUER: &str = "JWT_ISSUER";
pub const JWT_AUDIENCE: &str = "JWT_AUDIENCE";

/// Absolute cap of a session, however often it refreshes (default 30d).
pub const SESSION_MAX_LIFETIME: &str = "SESSION_MAX_LIFETIME";
/// How long before expiry a client should refresh (default 5m; token-info reports it).
pub const JWT_REFRESH_THRESHOLD: &str = "JWT_REFRESH_THRESHOLD";
/// How long the previous refresh token still gets the current pair (default 10s).
pub const REFRESH_REUSE_GRACE: &str = "REFRESH_REUSE_GRACE";
/// The database: a SQLite path (default `./data/aspjwt.db`).
pub const ASPJWT_DB: &str = "ASPJWT_DB";
/// `production` makes cookies `Secure` and adds HSTS (as TLS in the service does).
pub const APP_ENV: &str = "APP_ENV";

/// Per-IP token buckets for login and refresh: burst size and refill per 5 minutes.
pub const AUTH_RATE_BURST: &str = "AUTH_RATE_BURST";
pub const AUTH_RATE_PER_5MIN: &str = "AUTH_RATE_PER_5MIN";
/// Proxies (IPs or networks, comma-separated) whose `X-Forwarded-For` is believed.
pub const TRUSTED_PROXIES: &str = "TRUSTED_PROXIES";
/// Origins (comma-separated, exact) allowed for CORS and cookie-authenticated changes.
pub const ALLOWED_ORIGINS: &str = "ALLOWED_ORIGINS";
/// The CRM backend the protected routes are forwarded to.
pub const UPSTREAM_URL: &str = "UPSTREAM_URL";
/// A separate address for `/metrics` (no auth there: bind it privately).
pub const METRICS_BIND: &str = "METRICS_BIND";
/// Most connections served at once.
pub const ASPJWT_MAX_CONNECTIONS: &str = "ASPJWT_MAX_CONNECTIONS";
/// Most connections one TCP peer address may hold at once (default 64).
pub const ASPJWT_MAX_CONNECTIONS_PER_IP: &str = "ASPJWT_MAX_CONNECTIONS_PER_IP";
/// How long a request body the service reads itself may take in all, and how long a
/// body forwarded to the backend may go without a byte (default 10s); then 408.
pub const ASPJWT_BODY_TIMEOUT: &str = "ASPJWT_BODY_TIMEOUT";
/// How long a connection may sit with no request and no byte moving, and how long a
/// request's headers may take, before it is closed (default 10s).
pub const ASPJWT_IDLE_TIMEOUT: &str = "ASPJWT_IDLE_TIMEOUT";
/// Most client addresses each per-IP limiter keeps state for.
pub const ASPJWT_RATE_LIMIT_CLIENTS: &str = "ASPJWT_RATE_LIMIT_CLIENTS";
/// How long the upstream may take to start answering (default 30s).
pub const UPSTREAM_TIMEOUT: &str = "UPSTREAM_TIMEOUT";

/// Largest input file (`.env`, compose, certificate, token, key) any command reads:
/// bytes, or with a K/M/G(iB) suffix (default 16 MiB). Read from the process environment.
pub const ASPJWT_MAX_FILE_SIZE: &str = "ASPJWT_MAX_FILE_SIZE";
pub const DEFAULT_MAX_FILE_SIZE: u64 = 16 * 1024 * 1024;

/// The service's log filter: a level or `target=level` directives (default `info`).
pub const ASPJWT_LOG: &str = "ASPJWT_LOG";
/// The main listener speaks TLS with this PEM certificate chain (leaf first) ...
pub const ASPJWT_TLS_CERT: &str = "ASPJWT_TLS_CERT";
/// ... and this PEM private key (PKCS#8, PKCS#1 or SEC1). Both or neither.
pub const ASPJWT_TLS_KEY: &str = "ASPJWT_TLS_KEY";
/// With TLS on, a plain-HTTP listener that redirects every request to HTTPS (308).
pub const ASPJWT_REDIRECT_BIND: &str = "ASPJWT_REDIRECT_BIND";

/// Every variable the service reads from the environment or `.env`.
pub const SERVICE_VARS: &[&str] = &[
    ASPJWT_LOG,
    AUTH_RATE_BURST,
    AUTH_RATE_PER_5MIN,
    TRUSTED_PROXIES,
    ALLOWED_ORIGINS,
    UPSTREAM_URL,
    METRICS_BIND,
    ASPJWT_MAX_CONNECTIONS,
    ASPJWT_MAX_CONNECTIONS_PER_IP,
    ASPJWT_BODY_TIMEOUT,
    ASPJWT_IDLE_TIMEOUT,
    ASPJWT_RATE_LIMIT_CLIENTS,
    UPSTREAM_TIMEOUT,
    JWT_SECRET,
    JWT_REFRESH_SECRET,
    SESSION_SECRET,
    JWT_ACCESS_TOKEN_EXPIRY,
    JWT_REFRESH_TOKEN_EXPIRY,
    JWT_ISSUER,
    JWT_AUDIENCE,
    SESSION_MAX_LIFETIME,
    REFRESH_REUSE_GRACE,
    JWT_REFRESH_THRESHOLD,
    ASPJWT_DB,
    APP_ENV,
    ASPJWT_TLS_CERT,
    ASPJWT_TLS_KEY,
    ASPJWT_REDIRECT_BIND,
];

pub const DEFAULT_SESSION_MAX_LIFETIME: &str = "30d";
pub const DEFAULT_REFRESH_REUSE_GRACE: &str = "10s";
pub const DEFAULT_DB: &str = "./data/aspjwt.db";
pub const DEFAULT_BIND: &str = "127.0.0.1:8080";
pub const DEFAULT_RATE_BURST: u32 = 30;
pub const DEFAULT_RATE_PER_5MIN: u32 = 150;
pub const DEFAULT_MAX_CONNECTIONS: usize = 1024;
pub const DEFAULT_MAX_CONNECTIONS_PER_IP: usize = 64;
pub const DEFAULT_BODY_TIMEOUT: &str = "10s";
pub const DEFAULT_IDLE_TIMEOUT: &str = "10s";
pub const DEFAULT_RATE_LIMIT_CLIENTS: usize = 100_000;
pub const DEFAULT_UPSTREAM_TIMEOUT: &str = "30s";

/// During a graceful rollover, `<KEY>_PREVIOUS` holds the replaced secret and
/// `<KEY>_PREVIOUS_UNTIL` (RFC 3339 UTC) the end of its window.
pub fn previous_of(key: &str) -> String {
    format!("{key}_PREVIOUS")
}

pub fn previous_until_of(key: &str) -> String {
    format!("{key}_PREVIOUS_UNTIL")
}

/// A secret the project knows by name, with the number of random bytes it gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SecretSpec {
    pub name: &'static str,
    pub bytes: usize,
}

/// The three secrets `generate`, `rotate` and `check` handle by default, in output order.
pub const DEFAULT_SECRETS: [SecretSpec; 3] = [
    SecretSpec { name: JWT_SECRET, bytes: 64 },
    SecretSpec { name: JWT_REFRESH_SECRET, bytes: 64 },
    SecretSpec { name: SESSION_SECRET, bytes: 32 },
];

/// Bytes drawn for a `--key NAME` given without `:BYTES`.
pub const DEFAULT_CUSTOM_SECRET_BYTES: usize = 32;

pub const DEFAULT_ACCESS_EXPIRY: &str = "15m";
pub const DEFAULT_REFRESH_EXPIRY: &str = "7d";
pub const DEFAULT_ISSUER: &str = "aspjwt";
pub const DEFAULT_AUDIENCE: &str = "asp-cranes-crm";
/// A token this close to expiry should be refreshed.
pub const REFRESH_THRESHOLD_SECS: u64 = 5 * 60;

/// The role that administers users; at least one enabled user always holds it.
pub const ADMIN_ROLE: &str = "admin";

/// Roles a user may hold; the service's role matrix is written in these.
pub const ROLES: [&str; 5] = ["admin", "sales_agent", "operations_manager", "operator", "support"];

/// Claim names of the tokens the whole system issues.
pub mod claim {
    pub const SUB: &str = "sub";
    pub const EMAIL: &str = "email";
    pub const ROLE: &str = "role";
    pub const TYP: &str = "typ";
    pub const SID: &str = "sid";
    pub const JTI: &str = "jti";
    pub const IAT: &str = "iat";
    pub const NBF: &str = "nbf";
    pub const EXP: &str = "exp";
    pub const ISS: &str = "iss";
    pub const AUD: &str = "aud";
    /// The CRM's Node backend names the token's kind `type` (aspjwt: `typ`) ...
    pub const NODE_TYPE: &str = "type";
    /// ... and sometimes its subject `userId` (aspjwt: `sub`); `health` reads either.
    pub const NODE_USER_ID: &str = "userId";
}

/// Cookie names set by the service and read by `decode --cookie`.
pub mod cookie {
    pub const ACCESS_TOKEN: &str = "access_token";
    pub const REFRESH_TOKEN: &str = "refresh_token";
    pub const CSRF_TOKEN: &str = "csrf_token";
}

/// The header that must echo the `csrf_token` cookie on cookie-authenticated changes.
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Headers on every response of the service (helmet's defaults and the API's strict
/// content policy); `aspjwt health` checks for them by these names.
pub const SECURITY_HEADERS: &[(&str, &str)] = &[
    (
        "content-security-policy",
        "default-src 'none'; base-uri 'none'; object-src 'none'; frame-ancestors 'none'; form-action 'none'",
    ),
    ("cross-origin-opener-policy", "same-origin"),
    ("cross-origin-resource-policy", "same-origin"),
    ("origin-agent-cluster", "?1"),
    ("referrer-policy", "no-referrer"),
    ("x-content-type-options", "nosniff"),
    ("x-dns-prefetch-control", "off"),
    ("x-download-options", "noopen"),
    ("x-frame-options", "DENY"),
    ("x-permitted-cross-domain-policies", "none"),
    ("x-xss-protection", "0"),
];

/// How the service names itself on /api/health (`{"service": "aspjwt", "version": …}`),
/// so `aspjwt health` can tell it from another backend.
pub const SERVICE: &str = "aspjwt";

/// The values of the `typ` claim.
pub mod typ {
    pub const ACCESS: &str = "access";
    pub const REFRESH: &str = "refresh";
}

/// Looks up the byte count of a default secret.
pub fn default_secret(name: &str) -> Option<SecretSpec> {
    DEFAULT_SECRETS.iter().copied().find(|s| s.name == name)
}
