//! The command-line surface: clap derive types only. Doc comments are the help.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

const EXIT_CODES: &str = "\
Exit status:
  0  ok
  1  a check or verification failed
  2  usage or input error (bad flag, unreadable or invalid file)";

/// clap's default help layout; the examples follow it as literal template text.
const HELP_TEMPLATE: &str = "{before-help}{about-with-newline}\n{usage-heading} {usage}\n\n{all-args}";

/// The command line with every example kept on one line: clap wraps `after_help` to
/// the terminal's width, which breaks an example in the middle and makes it unsafe to
/// copy. Literal template text is never wrapped, so the examples move there.
pub fn command() -> clap::Command {
    fn unwrap_examples(cmd: clap::Command) -> clap::Command {
        let mut cmd = match cmd.get_after_help().map(|h| h.to_string()) {
            Some(text) => cmd.help_template(format!("{HELP_TEMPLATE}\n\n{text}")).after_help(None::<&str>),
            None => cmd,
        };
        let names: Vec<String> = cmd.get_subcommands().map(|s| s.get_name().to_string()).collect();
        for name in names {
            cmd = cmd.mut_subcommand(name, unwrap_examples);
        }
        cmd
    }
    unwrap_examples(full_command())
}

impl Cli {
    /// Parses argv with [`command`]'s help.
    pub fn parse_args() -> Cli {
        use clap::FromArgMatches;
        // Moving the examples costs a walk over every subcommand: only when help is shown.
        let help = std::env::args_os().skip(1).any(|a| a == "-h" || a == "--help" || a == "help");
        let cmd = if help {
            command()
        } else {
            use clap::CommandFactory;
            Cli::command()
        };
        let matches = cmd.try_get_matches().unwrap_or_else(|e| usage_error(e));
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| usage_error(e))
    }
}

/// Exits on a command-line error as clap does (message on stderr, exit 2); with --json
/// anywhere on the line, the error is also a JSON document on stdout.
fn usage_error(e: clap::Error) -> ! {
    use clap::error::ErrorKind;
    let shown = !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion)
        && !matches!(e.kind(), ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand);
    if !shown {
        e.exit()
    }
    let text = e.to_string();
    if std::env::args_os().any(|a| a == "--json") {
        let first = text.lines().next().unwrap_or("").trim_start_matches("error: ");
        println!("{}", crate::output::json_error("usage", first));
    }
    // clap quotes the offending argument as typed: escaped here, line by line, so an
    // argument cannot retitle the terminal (the message is printed without clap's colour).
    let escaped: Vec<String> = text.lines().map(crate::output::escape).collect();
    eprintln!("{}", escaped.join("\n"));
    std::process::exit(crate::error::Exit::Usage as i32)
}

/// A subcommand's arguments, built only when that subcommand is the one parsed (or its
/// help, completions or the man page are asked for): building all eighteen was most of
/// what a short command like `decode` spent before its work. clap applies the deferred
/// part whenever it builds the subcommand, so parsing, help and completions are unchanged.
#[derive(Debug)]
pub struct Lazy<T>(pub T);

/// Runs `augment` keeping what the subcommand's variant said about it: the derive sets a
/// struct's doc comment as `about` inside `augment_args`, which normally runs before the
/// variant's own text is applied, and now runs after it.
fn keeping_texts(cmd: clap::Command, augment: fn(clap::Command) -> clap::Command) -> clap::Command {
    let about = cmd.get_about().cloned();
    let long_about = cmd.get_long_about().cloned();
    let mut cmd = augment(cmd);
    if let Some(a) = about {
        cmd = cmd.about(a);
    }
    match long_about {
        Some(l) => cmd.long_about(l),
        None => cmd.long_about(None::<&str>),
    }
}

/// Build every subcommand at once: for completions, the man page and help, which walk
/// the whole tree (clap's generated `help` subcommand lists nested subcommands only if
/// they exist when the root is built).
static EAGER: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// The whole command line, nothing deferred.
pub fn full_command() -> clap::Command {
    use clap::CommandFactory;
    EAGER.store(true, std::sync::atomic::Ordering::Relaxed);
    Cli::command()
}

impl<T: Args> Args for Lazy<T> {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        if EAGER.load(std::sync::atomic::Ordering::Relaxed) {
            return T::augment_args(cmd);
        }
        cmd.defer(|c| keeping_texts(c, T::augment_args))
    }
    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        if EAGER.load(std::sync::atomic::Ordering::Relaxed) {
            return T::augment_args_for_update(cmd);
        }
        cmd.defer(|c| keeping_texts(c, T::augment_args_for_update))
    }
    fn group_id() -> Option<clap::Id> {
        T::group_id()
    }
}

impl<T: clap::FromArgMatches> clap::FromArgMatches for Lazy<T> {
    fn from_arg_matches(m: &clap::ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches(m).map(Lazy)
    }
    fn from_arg_matches_mut(m: &mut clap::ArgMatches) -> Result<Self, clap::Error> {
        T::from_arg_matches_mut(m).map(Lazy)
    }
    fn update_from_arg_matches(&mut self, m: &clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches(m)
    }
    fn update_from_arg_matches_mut(&mut self, m: &mut clap::ArgMatches) -> Result<(), clap::Error> {
        self.0.update_from_arg_matches_mut(m)
    }
}

/// Generate, rotate and check JWT secrets; decode, verify and mint tokens.
#[derive(Debug, Parser)]
#[command(name = "aspjwt", version, about, after_help = EXIT_CODES, propagate_version = true)]
pub struct Cli {
    /// Machine-readable JSON on stdout, nothing else there.
    #[arg(long, global = true)]
    pub json: bool,

    /// When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout.
    #[arg(long, global = true, value_enum, default_value_t = ColorChoice::Auto, value_name = "WHEN")]
    pub color: ColorChoice,

    /// Print only results and errors: no summaries, notices or warnings.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ColorChoice {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Print fresh secrets from the OS CSPRNG.
    #[command(
        after_help = "Examples:\n  aspjwt generate > .env\n  aspjwt generate --format yaml\n  aspjwt generate --name POSTGRES_PASSWORD --bytes 24 --url-safe"
    )]
    Generate(Lazy<GenerateArgs>),

    /// Replace secrets in place across .env and compose files, all or nothing.
    #[command(
        after_help = "Examples:\n  aspjwt rotate --env-file .env --compose docker-compose.yml\n  aspjwt rotate --env-file .env --dry-run\n  aspjwt rotate --env-file .env --create\n  aspjwt rotate --env-file .env --key POSTGRES_PASSWORD:24 --backup\n  aspjwt rotate --env-file .env --graceful && kill -HUP $(pidof aspjwt)\n  aspjwt rotate --env-file .env --finish\n\nWithout --graceful, every session and token signed with the old secrets stops working at once."
    )]
    Rotate(Lazy<RotateArgs>),

    /// Validate a configuration offline: secrets, expiries, file permissions.
    #[command(
        after_help = "Examples:\n  aspjwt check --env-file .env\n  aspjwt check --env-file .env --compose docker-compose.yml --strict --json\n\nWithout files it checks ./.env when present, else the process environment."
    )]
    Check(Lazy<CheckArgs>),

    /// Show a token's header, claims and times. Never checks the signature.
    #[command(
        after_help = "Examples:\n  aspjwt decode eyJhbGciOi...\n  pbpaste | aspjwt decode\n  echo 'access_token=eyJ...; refresh_token=eyJ...' | aspjwt decode --cookie refresh_token\n  aspjwt --json decode \"Bearer $TOKEN\""
    )]
    Decode(Lazy<DecodeArgs>),

    /// Verify a token's signature and claims with the configured secret.
    #[command(
        after_help = "Examples:\n  aspjwt verify --env-file .env \"$TOKEN\"\n  echo \"$TOKEN\" | aspjwt verify --secret-env JWT_SECRET --typ access\n  aspjwt verify --secret-file /run/secrets/jwt --leeway 60 \"$TOKEN\"\n\nExit status: 0 valid, 1 rejected (every reason is listed), 2 not a JWT or no key."
    )]
    Verify(Lazy<VerifyArgs>),

    /// Print a token signed exactly as the service signs it.
    #[command(
        after_help = "Examples:\n  aspjwt mint --sub 42 --email ops@example.com --role admin --env-file .env\n  curl -H \"Authorization: Bearer $(aspjwt mint --sub 1 --email a@b.c --role support)\" http://127.0.0.1:8080/api/auth/token-info"
    )]
    Mint(Lazy<MintArgs>),

    /// Run the auth service (login, refresh with rotation, logout, token-info).
    #[command(
        after_help = "Examples:\n  aspjwt serve\n  aspjwt serve --bind 0.0.0.0:8080 --env-file /etc/aspjwt/.env --db /var/lib/aspjwt/aspjwt.db\n\nIt refuses to start on any configuration `aspjwt check` fails. Logs and audit events are JSON lines on stdout.\nSIGHUP re-reads the configuration (new secrets, rollover windows) without dropping sessions; SIGTERM drains and stops.\nPrometheus metrics: GET /metrics with an admin's token on the main port, or without auth on METRICS_BIND (then only there)."
    )]
    Serve(Lazy<ServeArgs>),

    /// Check a live service: liveness, configuration, and a full login-refresh-logout round.
    #[command(
        after_help = "Examples:\n  aspjwt health --url http://127.0.0.1:8080 --quick\n  ASPJWT_PROBE_PASSWORD=… aspjwt health --url https://auth.example.com --env-file .env --email probe@example.com --password-env ASPJWT_PROBE_PASSWORD\n  aspjwt health --url http://127.0.0.1:8080 --watch 30s\n\nExit status: 0 healthy, 1 unhealthy, 2 usage error."
    )]
    Health(Lazy<HealthArgs>),

    /// Manage users (works with or without the service running).
    #[command(
        after_help = "Examples:\n  aspjwt user add --email ops@aspcranes.example --name 'Ops Desk' --role operations_manager\n  printf '%s\\n' \"$PW\" | aspjwt user passwd --email ops@aspcranes.example --password-stdin\n  aspjwt user disable --email leaver@aspcranes.example\n  aspjwt user list"
    )]
    User(Lazy<UserArgs>),

    /// List or revoke sessions: the incident-response "clear all user sessions".
    #[command(
        after_help = "Examples:\n  aspjwt sessions list --user ops@aspcranes.example\n  aspjwt sessions revoke --all\n  aspjwt sessions revoke --id 3fQ2..."
    )]
    Sessions(Lazy<SessionsArgs>),

    /// Read the audit log.
    #[command(
        after_help = "Examples:\n  aspjwt audit --since 1h\n  aspjwt audit --event refresh_token_reuse --json\n  aspjwt audit --user ops@aspcranes.example --since 7d"
    )]
    Audit(Lazy<AuditArgs>),

    /// Respond to a suspected token compromise in one go: rotate every secret, end every
    /// session, record the incident, reload the services, report who is affected and what
    /// looks suspicious.
    #[command(
        after_help = "Examples:\n  aspjwt incident --env-file .env --compose docker-compose.yml --pid-file /run/aspjwt.pid --url http://127.0.0.1:8080\n  aspjwt incident --env-file .env --dry-run\n  aspjwt incident --env-file .env --yes --since 72h --report affected-users.csv --json\n\nExit status: 0 every step done, 1 a step after the rotation failed (the report says which), 2 nothing was changed (bad input, no confirmation, or the rotation failed)."
    )]
    Incident(Lazy<IncidentArgs>),

    /// Take a consistent snapshot of the database (users with their password hashes,
    /// sessions, audit log, account throttles) into one checksummed file, written 0600.
    #[command(
        after_help = "Examples:\n  aspjwt backup --db ./data/aspjwt.db --out aspjwt-$(date +%F).backup\n  ASPJWT_DB=postgres://aspjwt@db/aspjwt aspjwt backup --out nightly.backup\n\nThe service may keep running: the snapshot is one read transaction."
    )]
    Backup(Lazy<BackupArgs>),

    /// Load a backup into a database (SQLite or PostgreSQL) in one transaction.
    #[command(
        after_help = "Examples:\n  aspjwt restore --db ./data/aspjwt.db nightly.backup\n  ASPJWT_DB=postgres://aspjwt@db/aspjwt aspjwt restore aspjwt.backup   # one instance grows into several\n\nThe file's checksum and version are checked first; a database that already has users is refused unless --force."
    )]
    Restore(Lazy<RestoreArgs>),

    /// Print a shell completion script.
    #[command(after_help = "Example:\n  aspjwt completions bash > /etc/bash_completion.d/aspjwt")]
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },

    /// Print the man page (roff).
    #[command(after_help = "Example:\n  aspjwt man | man -l -")]
    Man,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// KEY=value lines, for a .env file.
    Env,
    /// export KEY=value lines, for `eval`.
    Shell,
    /// One JSON object.
    Json,
    /// A compose `environment:` map.
    Yaml,
}

#[derive(Debug, Args)]
pub struct GenerateArgs {
    /// Output format.
    #[arg(long, value_enum, default_value_t = Format::Env)]
    pub format: Format,

    /// Only these of the default secrets (JWT_SECRET, JWT_REFRESH_SECRET, SESSION_SECRET).
    #[arg(long, value_delimiter = ',', value_name = "NAME[,NAME]", conflicts_with = "name")]
    pub only: Vec<String>,

    /// Generate one custom secret with this name instead of the defaults.
    #[arg(long, value_name = "NAME")]
    pub name: Option<String>,

    /// Random bytes for the custom secret [default: 32].
    #[arg(long, value_name = "N", requires = "name", value_parser = clap::value_parser!(u16).range(16..=4096))]
    pub bytes: Option<u16>,

    /// base64url without padding instead of standard base64.
    #[arg(long)]
    pub url_safe: bool,
}

#[derive(Debug, Args)]
pub struct RotateArgs {
    /// A .env file to rewrite (repeatable) [default: .env when no file is named].
    #[arg(long = "env-file", value_name = "PATH")]
    pub env_files: Vec<PathBuf>,

    /// A docker compose file whose services' environment to rewrite (repeatable).
    #[arg(long = "compose", value_name = "PATH")]
    pub compose_files: Vec<PathBuf>,

    /// Only these of the secrets (the defaults and those given with --key).
    #[arg(long, value_delimiter = ',', value_name = "NAME[,NAME]")]
    pub only: Vec<String>,

    /// Also rotate this secret, with BYTES random bytes [default: 32] (repeatable).
    #[arg(long = "key", value_name = "NAME[:BYTES]")]
    pub keys: Vec<String>,

    /// Show what would change, as a diff with values masked; write nothing.
    #[arg(long)]
    pub dry_run: bool,

    /// Keep a 0600 copy of each file (FILE.bak-TIMESTAMP) before changing it.
    #[arg(long)]
    pub backup: bool,

    /// Create a missing .env file (mode 0600).
    #[arg(long)]
    pub create: bool,

    /// Print the new secret values (they are masked otherwise).
    #[arg(long)]
    pub show_secrets: bool,

    /// base64url without padding instead of standard base64.
    #[arg(long)]
    pub url_safe: bool,

    /// Routine rollover: keep each replaced secret as <KEY>_PREVIOUS, still valid for
    /// verification until <KEY>_PREVIOUS_UNTIL, so nobody is logged out.
    #[arg(long, conflicts_with = "finish")]
    pub graceful: bool,

    /// How long previous secrets stay valid [default: the access lifetime for JWT_SECRET,
    /// the refresh lifetime for JWT_REFRESH_SECRET and SESSION_SECRET; capped at that
    /// lifetime plus 5 minutes].
    #[arg(long, value_name = "DURATION", requires = "graceful")]
    pub window: Option<String>,

    /// Remove the <KEY>_PREVIOUS entries whose window has ended (and only those).
    #[arg(long, conflicts_with_all = ["only", "keys", "create", "show_secrets", "url_safe"])]
    pub finish: bool,

    /// How long to wait for another aspjwt rotating the same files.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub lock_timeout: String,
}

/// Where a token comes from: the argument, or stdin when absent or `-`.
#[derive(Debug, Args)]
pub struct TokenInput {
    /// The token, `Bearer <jwt>`, a cookie header or Set-Cookie lines; `@FILE` reads it from FILE, `-` (or nothing) from stdin.
    #[arg(value_name = "TOKEN")]
    pub token: Option<String>,

    /// The cookie to pick when the input is a cookie header.
    #[arg(long, value_name = "NAME", default_value = "access_token")]
    pub cookie: String,
}

/// Where the verification or signing secret comes from. Never the command line.
#[derive(Debug, Args)]
pub struct KeySource {
    /// Read JWT_SECRET / JWT_REFRESH_SECRET (by token type) from this .env file [default: ./.env if present, else the environment].
    #[arg(long, value_name = "PATH", group = "key")]
    pub env_file: Option<PathBuf>,

    /// Read the secret from this environment variable.
    #[arg(long, value_name = "VAR", group = "key")]
    pub secret_env: Option<String>,

    /// Read the secret from this file (a trailing newline is trimmed).
    #[arg(long, value_name = "PATH", group = "key")]
    pub secret_file: Option<PathBuf>,

    /// Read the secret from stdin (the token must then be an argument).
    #[arg(long, group = "key")]
    pub secret_stdin: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum TokenKind {
    Access,
    Refresh,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ExtraAlg {
    #[value(name = "HS384")]
    Hs384,
    #[value(name = "HS512")]
    Hs512,
}

#[derive(Debug, Args)]
pub struct DecodeArgs {
    #[command(flatten)]
    pub input: TokenInput,

    /// Say "should refresh" when the token expires within this long.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub threshold: String,
}

#[derive(Debug, Args)]
pub struct VerifyArgs {
    #[command(flatten)]
    pub input: TokenInput,

    #[command(flatten)]
    pub key: KeySource,

    /// The token type to insist on [default: with --env-file, the token's own typ picks the secret].
    #[arg(long, value_enum)]
    pub typ: Option<TokenKind>,

    /// Accept this algorithm as well as HS256.
    #[arg(long, value_enum)]
    pub alg: Option<ExtraAlg>,

    /// Clock skew allowed on exp and nbf.
    #[arg(long, value_name = "DURATION", default_value = "0")]
    pub leeway: String,

    /// The issuer to insist on [default: with --env-file, JWT_ISSUER or aspjwt].
    #[arg(long, value_name = "ISS")]
    pub iss: Option<String>,

    /// The audience to insist on [default: with --env-file, JWT_AUDIENCE or asp-cranes-crm].
    #[arg(long, value_name = "AUD")]
    pub aud: Option<String>,

    /// Say "should refresh" when the token expires within this long.
    #[arg(long, value_name = "DURATION", default_value = "5m")]
    pub threshold: String,
}

#[derive(Debug, Args)]
pub struct MintArgs {
    /// User id (the sub claim).
    #[arg(long, value_name = "ID")]
    pub sub: String,

    #[arg(long, value_name = "EMAIL")]
    pub email: String,

    /// One of admin, sales_agent, operations_manager, operator, support.
    #[arg(long, value_name = "ROLE")]
    pub role: String,

    #[arg(long, value_enum, default_value_t = TokenKind::Access)]
    pub typ: TokenKind,

    /// Lifetime [default: JWT_ACCESS_TOKEN_EXPIRY or JWT_REFRESH_TOKEN_EXPIRY, else 15m / 7d].
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,

    /// Session id [default: a fresh random one].
    #[arg(long, value_name = "ID", allow_hyphen_values = true)]
    pub sid: Option<String>,

    /// An extra claim; VALUE is read as JSON when it parses, else as a string (repeatable).
    #[arg(long = "claim", value_name = "KEY=VALUE")]
    pub claims: Vec<String>,

    #[command(flatten)]
    pub key: KeySource,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free one, announced in the log).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    pub bind: String,

    /// The .env file to load (dotenvy; the real environment wins) [default: ./.env when present].
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,

    /// The database: a SQLite file or a postgres:// URL without a password
    /// [default: ASPJWT_DB, else ./data/aspjwt.db].
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<String>,
}

#[derive(Debug, Args)]
pub struct HealthArgs {
    /// The service's base URL.
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,

    /// Judge this configuration and verify the service's tokens with its secrets.
    #[arg(long, value_name = "PATH")]
    pub env_file: Option<PathBuf>,

    /// The probe account for the deep check (login, refresh, logout).
    #[arg(long, value_name = "EMAIL")]
    pub email: Option<String>,

    /// Read the probe password from this environment variable.
    #[arg(long, value_name = "VAR", group = "password", requires = "email")]
    pub password_env: Option<String>,

    /// Read the probe password from this file (a trailing newline is trimmed).
    #[arg(long, value_name = "PATH", group = "password", requires = "email")]
    pub password_file: Option<PathBuf>,

    /// Read the probe password from the first line of stdin.
    #[arg(long, group = "password", requires = "email")]
    pub password_stdin: bool,

    /// Liveness only, no credentials: the Docker HEALTHCHECK form. With --env-file, also
    /// compares the key ids the service publishes with the local secrets.
    #[arg(long)]
    pub quick: bool,

    /// Fail on warnings too (hardening gaps: a missing header, no CSRF cookie, …).
    #[arg(long)]
    pub strict: bool,

    /// Per-request timeout.
    #[arg(long, value_name = "DURATION", default_value = "5s")]
    pub timeout: String,

    /// Repeat every DURATION until interrupted, one line per run.
    #[arg(long, value_name = "DURATION")]
    pub watch: Option<String>,

    /// Trust this PEM CA certificate for https.
    #[arg(long, value_name = "FILE")]
    pub cacert: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct IncidentArgs {
    /// A .env file whose secrets are rotated (repeatable) [default: ./.env].
    #[arg(long = "env-file", value_name = "FILE")]
    pub env_files: Vec<PathBuf>,
    /// A docker-compose file whose literal secrets are rotated (repeatable).
    #[arg(long = "compose", value_name = "FILE")]
    pub compose_files: Vec<PathBuf>,
    /// The database: a SQLite file or a postgres:// URL without a password
    /// [default: ASPJWT_DB from the environment or the env files, else ./data/aspjwt.db].
    #[arg(long, value_name = "PATH|URL")]
    pub db: Option<String>,
    /// How far back the report looks for suspicious activity.
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    pub since: String,
    /// A file holding the pid of a service to send SIGHUP (repeatable).
    #[arg(long = "pid-file", value_name = "FILE")]
    pub pid_files: Vec<PathBuf>,
    /// A service whose /api/health must show the new key ids (repeatable).
    #[arg(long = "url", value_name = "URL")]
    pub urls: Vec<String>,
    /// Do it without asking (required when stdin is not a terminal).
    #[arg(long)]
    pub yes: bool,
    /// Show everything that would happen; change nothing.
    #[arg(long)]
    pub dry_run: bool,
    /// Write the affected users as CSV (for a mail merge), mode 0600.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,
    /// How long to wait for another aspjwt rotating the same files.
    #[arg(long, value_name = "DURATION", default_value = "10s")]
    pub lock_timeout: String,
}

#[derive(Debug, Args)]
pub struct BackupArgs {
    /// The backup file to write (0600; an existing file is replaced atomically).
    #[arg(long, value_name = "FILE")]
    pub out: PathBuf,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct RestoreArgs {
    /// The backup file (`-` reads stdin).
    #[arg(value_name = "FILE")]
    pub file: PathBuf,
    /// Replace everything in a database that already has users.
    #[arg(long)]
    pub force: bool,
    /// Restore every session as revoked: users log in again, and no session the backup
    /// holds (one since stolen, say) comes back.
    #[arg(long)]
    pub revoke_sessions: bool,
    #[command(flatten)]
    pub db: DbArgs,
}

/// Where the operator commands find the database.
#[derive(Debug, Args)]
pub struct DbArgs {
    /// The database: a SQLite file or a postgres:// URL without a password
    /// [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db].
    #[arg(long, value_name = "PATH|URL", global = true)]
    pub db: Option<String>,

    /// The .env file that may name ASPJWT_DB [default: ./.env when present].
    #[arg(long, value_name = "PATH", global = true)]
    pub env_file: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct UserArgs {
    #[command(subcommand)]
    pub command: UserCommand,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create a user; without --password-stdin a 20-character password is generated and printed once.
    Add {
        #[arg(long)]
        email: String,
        #[arg(long)]
        name: String,
        /// admin, sales_agent, operations_manager, operator or support.
        #[arg(long)]
        role: String,
        /// Read the password from the first line of stdin.
        #[arg(long)]
        password_stdin: bool,
    },
    /// List users.
    List,
    /// Disable a user and end their sessions.
    Disable {
        #[arg(long)]
        email: String,
    },
    /// Enable a disabled user.
    Enable {
        #[arg(long)]
        email: String,
    },
    /// Set a new password (from stdin) and end the user's sessions.
    Passwd {
        #[arg(long)]
        email: String,
        /// Read the password from the first line of stdin.
        #[arg(long, required = true)]
        password_stdin: bool,
    },
    /// Change a user's role and end their sessions.
    Role {
        #[arg(long)]
        email: String,
        #[arg(long)]
        role: String,
    },
    /// Import users with their password hashes (bcrypt from the CRM's Node backend, or
    /// argon2id) from a JSON array or a CSV file with a header; bcrypt hashes become
    /// argon2id at each user's next login.
    #[command(after_help = "Columns (or JSON fields): email, name, role, password_hash; optional disabled, id.\n\
        The whole import is one transaction: a refused row fails it (exit 2, nothing written) unless\n\
        --skip-invalid. May create the database, as `user add` does.")]
    Import {
        /// The file, or - for stdin.
        #[arg(value_name = "FILE")]
        file: String,
        /// The file's format [default: by extension, else by its first character].
        #[arg(long, value_enum)]
        format: Option<ImportFormat>,
        /// The old backend's role names to ours: OLD=NEW,… (e.g. agent=sales_agent).
        #[arg(long, value_name = "OLD=NEW,…")]
        role_map: Option<String>,
        /// Say what would happen; write nothing.
        #[arg(long)]
        dry_run: bool,
        /// What to do with an email the database already has.
        #[arg(long, value_enum, default_value_t = ImportConflict::Fail)]
        on_conflict: ImportConflict,
        /// Import the valid rows and report the refused ones, instead of refusing the file.
        #[arg(long)]
        skip_invalid: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportFormat {
    Json,
    Csv,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ImportConflict {
    Skip,
    Update,
    Fail,
}

#[derive(Debug, Args)]
pub struct SessionsArgs {
    #[command(subcommand)]
    pub command: SessionsCommand,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Subcommand)]
pub enum SessionsCommand {
    /// List live sessions, newest first.
    List {
        /// Only this user's sessions.
        #[arg(long, value_name = "EMAIL")]
        user: Option<String>,
        /// Include revoked and expired sessions.
        #[arg(long)]
        all: bool,
    },
    /// Revoke sessions: their refresh tokens stop at once, access tokens within 2 s.
    Revoke {
        /// Every session of every user.
        #[arg(long, group = "which")]
        all: bool,
        /// Every session of this user.
        #[arg(long, value_name = "EMAIL", group = "which")]
        user: Option<String>,
        /// One session. Ids are base64url and may start with `-`: taken as they are.
        #[arg(long, value_name = "SESSION", group = "which", allow_hyphen_values = true)]
        id: Option<String>,
    },
}

#[derive(Debug, Args)]
pub struct AuditArgs {
    /// Only events newer than this (e.g. 1h, 7d).
    #[arg(long, value_name = "DURATION")]
    pub since: Option<String>,
    /// Only this event (e.g. login_failure, refresh_token_reuse).
    #[arg(long, value_name = "NAME")]
    pub event: Option<String>,
    /// Only events of this user (email or user id).
    #[arg(long, value_name = "EMAIL")]
    pub user: Option<String>,
    /// At most this many events, newest first (0: all).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    #[command(flatten)]
    pub db: DbArgs,
}

#[derive(Debug, Args)]
pub struct CheckArgs {
    /// A .env file to check (repeatable; later files override earlier ones).
    #[arg(long = "env-file", value_name = "PATH")]
    pub env_files: Vec<PathBuf>,

    /// A docker compose file whose services' environments to check (repeatable).
    #[arg(long = "compose", value_name = "PATH")]
    pub compose_files: Vec<PathBuf>,

    /// Fail on warnings too.
    #[arg(long)]
    pub strict: bool,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn clap_invariants() {
        Cli::command().debug_assert();
    }

    /// However narrow the terminal, each example line is printed whole.
    #[test]
    fn examples_are_never_wrapped() {
        let mut root = command().term_width(40);
        root.build();
        for sub in Cli::command().get_subcommands() {
            let text = sub.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            let help = root.find_subcommand_mut(sub.get_name()).unwrap().render_help().to_string();
            for line in text.lines().filter(|l| l.trim_start().starts_with("aspjwt ")) {
                assert!(help.lines().any(|h| h == line), "{}: {line:?} is wrapped in\n{help}", sub.get_name());
            }
        }
        let top = command().term_width(40).render_help().to_string();
        assert!(!top.contains('\\'), "a stray backslash in the top-level help:\n{top}");
    }

    #[test]
    fn every_subcommand_has_an_example() {
        for sub in Cli::command().get_subcommands() {
            let help = sub.get_after_help().map(|h| h.to_string()).unwrap_or_default();
            assert!(help.contains("aspjwt "), "{} lacks an example", sub.get_name());
        }
    }
}
