
using namespace System.Management.Automation
using namespace System.Management.Automation.Language

Register-ArgumentCompleter -Native -CommandName 'aspjwt' -ScriptBlock {
    param($wordToComplete, $commandAst, $cursorPosition)

    $commandElements = $commandAst.CommandElements
    $command = @(
        'aspjwt'
        for ($i = 1; $i -lt $commandElements.Count; $i++) {
            $element = $commandElements[$i]
            if ($element -isnot [StringConstantExpressionAst] -or
                $element.StringConstantType -ne [StringConstantType]::BareWord -or
                $element.Value.StartsWith('-') -or
                $element.Value -eq $wordToComplete) {
                break
        }
        $element.Value
    }) -join ';'

    $completions = @(switch ($command) {
        'aspjwt' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Print fresh secrets from the OS CSPRNG')
            [CompletionResult]::new('rotate', 'rotate', [CompletionResultType]::ParameterValue, 'Replace secrets in place across .env and compose files, all or nothing')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Validate a configuration offline: secrets, expiries, file permissions')
            [CompletionResult]::new('decode', 'decode', [CompletionResultType]::ParameterValue, 'Show a token''s header, claims and times. Never checks the signature')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Verify a token''s signature and claims with the configured secret')
            [CompletionResult]::new('mint', 'mint', [CompletionResultType]::ParameterValue, 'Print a token signed exactly as the service signs it')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the auth service (login, refresh with rotation, logout, token-info)')
            [CompletionResult]::new('health', 'health', [CompletionResultType]::ParameterValue, 'Check a live service: liveness, configuration, and a full login-refresh-logout round')
            [CompletionResult]::new('user', 'user', [CompletionResultType]::ParameterValue, 'Manage users (works with or without the service running)')
            [CompletionResult]::new('sessions', 'sessions', [CompletionResultType]::ParameterValue, 'List or revoke sessions: the incident-response "clear all user sessions"')
            [CompletionResult]::new('audit', 'audit', [CompletionResultType]::ParameterValue, 'Read the audit log')
            [CompletionResult]::new('incident', 'incident', [CompletionResultType]::ParameterValue, 'Respond to a suspected token compromise in one go: rotate every secret, end every session, record the incident, reload the services, report who is affected and what looks suspicious')
            [CompletionResult]::new('backup', 'backup', [CompletionResultType]::ParameterValue, 'Take a consistent snapshot of the database (users with their password hashes, sessions, audit log, account throttles) into one checksummed file, written 0600')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Load a backup into a database (SQLite or PostgreSQL) in one transaction')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print the man page (roff)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'aspjwt;generate' {
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'Output format')
            [CompletionResult]::new('--only', '--only', [CompletionResultType]::ParameterName, 'Only these of the default secrets (JWT_SECRET, JWT_REFRESH_SECRET, SESSION_SECRET)')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'Generate one custom secret with this name instead of the defaults')
            [CompletionResult]::new('--bytes', '--bytes', [CompletionResultType]::ParameterName, 'Random bytes for the custom secret [default: 32]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--url-safe', '--url-safe', [CompletionResultType]::ParameterName, 'base64url without padding instead of standard base64')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help (see more with ''--help'')')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;rotate' {
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'A .env file to rewrite (repeatable) [default: .env when no file is named]')
            [CompletionResult]::new('--compose', '--compose', [CompletionResultType]::ParameterName, 'A docker compose file whose services'' environment to rewrite (repeatable)')
            [CompletionResult]::new('--only', '--only', [CompletionResultType]::ParameterName, 'Only these of the secrets (the defaults and those given with --key)')
            [CompletionResult]::new('--key', '--key', [CompletionResultType]::ParameterName, 'Also rotate this secret, with BYTES random bytes [default: 32] (repeatable)')
            [CompletionResult]::new('--window', '--window', [CompletionResultType]::ParameterName, 'How long previous secrets stay valid [default: the access lifetime for JWT_SECRET, the refresh lifetime for JWT_REFRESH_SECRET and SESSION_SECRET; capped at that lifetime plus 5 minutes]')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another aspjwt rotating the same files')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Show what would change, as a diff with values masked; write nothing')
            [CompletionResult]::new('--backup', '--backup', [CompletionResultType]::ParameterName, 'Keep a 0600 copy of each file (FILE.bak-TIMESTAMP) before changing it')
            [CompletionResult]::new('--create', '--create', [CompletionResultType]::ParameterName, 'Create a missing .env file (mode 0600)')
            [CompletionResult]::new('--show-secrets', '--show-secrets', [CompletionResultType]::ParameterName, 'Print the new secret values (they are masked otherwise)')
            [CompletionResult]::new('--url-safe', '--url-safe', [CompletionResultType]::ParameterName, 'base64url without padding instead of standard base64')
            [CompletionResult]::new('--graceful', '--graceful', [CompletionResultType]::ParameterName, 'Routine rollover: keep each replaced secret as <KEY>_PREVIOUS, still valid for verification until <KEY>_PREVIOUS_UNTIL, so nobody is logged out')
            [CompletionResult]::new('--finish', '--finish', [CompletionResultType]::ParameterName, 'Remove the <KEY>_PREVIOUS entries whose window has ended (and only those)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;check' {
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'A .env file to check (repeatable; later files override earlier ones)')
            [CompletionResult]::new('--compose', '--compose', [CompletionResultType]::ParameterName, 'A docker compose file whose services'' environments to check (repeatable)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Fail on warnings too')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;decode' {
            [CompletionResult]::new('--cookie', '--cookie', [CompletionResultType]::ParameterName, 'The cookie to pick when the input is a cookie header')
            [CompletionResult]::new('--threshold', '--threshold', [CompletionResultType]::ParameterName, 'Say "should refresh" when the token expires within this long')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;verify' {
            [CompletionResult]::new('--cookie', '--cookie', [CompletionResultType]::ParameterName, 'The cookie to pick when the input is a cookie header')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'Read JWT_SECRET / JWT_REFRESH_SECRET (by token type) from this .env file [default: ./.env if present, else the environment]')
            [CompletionResult]::new('--secret-env', '--secret-env', [CompletionResultType]::ParameterName, 'Read the secret from this environment variable')
            [CompletionResult]::new('--secret-file', '--secret-file', [CompletionResultType]::ParameterName, 'Read the secret from this file (a trailing newline is trimmed)')
            [CompletionResult]::new('--typ', '--typ', [CompletionResultType]::ParameterName, 'The token type to insist on [default: with --env-file, the token''s own typ picks the secret]')
            [CompletionResult]::new('--alg', '--alg', [CompletionResultType]::ParameterName, 'Accept this algorithm as well as HS256')
            [CompletionResult]::new('--leeway', '--leeway', [CompletionResultType]::ParameterName, 'Clock skew allowed on exp and nbf')
            [CompletionResult]::new('--iss', '--iss', [CompletionResultType]::ParameterName, 'The issuer to insist on [default: with --env-file, JWT_ISSUER or aspjwt]')
            [CompletionResult]::new('--aud', '--aud', [CompletionResultType]::ParameterName, 'The audience to insist on [default: with --env-file, JWT_AUDIENCE or asp-cranes-crm]')
            [CompletionResult]::new('--threshold', '--threshold', [CompletionResultType]::ParameterName, 'Say "should refresh" when the token expires within this long')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--secret-stdin', '--secret-stdin', [CompletionResultType]::ParameterName, 'Read the secret from stdin (the token must then be an argument)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;mint' {
            [CompletionResult]::new('--sub', '--sub', [CompletionResultType]::ParameterName, 'User id (the sub claim)')
            [CompletionResult]::new('--email', '--email', [CompletionResultType]::ParameterName, 'email')
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'One of admin, sales_agent, operations_manager, operator, support')
            [CompletionResult]::new('--typ', '--typ', [CompletionResultType]::ParameterName, 'typ')
            [CompletionResult]::new('--ttl', '--ttl', [CompletionResultType]::ParameterName, 'Lifetime [default: JWT_ACCESS_TOKEN_EXPIRY or JWT_REFRESH_TOKEN_EXPIRY, else 15m / 7d]')
            [CompletionResult]::new('--sid', '--sid', [CompletionResultType]::ParameterName, 'Session id [default: a fresh random one]')
            [CompletionResult]::new('--claim', '--claim', [CompletionResultType]::ParameterName, 'An extra claim; VALUE is read as JSON when it parses, else as a string (repeatable)')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'Read JWT_SECRET / JWT_REFRESH_SECRET (by token type) from this .env file [default: ./.env if present, else the environment]')
            [CompletionResult]::new('--secret-env', '--secret-env', [CompletionResultType]::ParameterName, 'Read the secret from this environment variable')
            [CompletionResult]::new('--secret-file', '--secret-file', [CompletionResultType]::ParameterName, 'Read the secret from this file (a trailing newline is trimmed)')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--secret-stdin', '--secret-stdin', [CompletionResultType]::ParameterName, 'Read the secret from stdin (the token must then be an argument)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;serve' {
            [CompletionResult]::new('--bind', '--bind', [CompletionResultType]::ParameterName, 'Address to listen on (port 0 picks a free one, announced in the log)')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'The .env file to load (dotenvy; the real environment wins) [default: ./.env when present]')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB, else ./data/aspjwt.db]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;health' {
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'The service''s base URL')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'Judge this configuration and verify the service''s tokens with its secrets')
            [CompletionResult]::new('--email', '--email', [CompletionResultType]::ParameterName, 'The probe account for the deep check (login, refresh, logout)')
            [CompletionResult]::new('--password-env', '--password-env', [CompletionResultType]::ParameterName, 'Read the probe password from this environment variable')
            [CompletionResult]::new('--password-file', '--password-file', [CompletionResultType]::ParameterName, 'Read the probe password from this file (a trailing newline is trimmed)')
            [CompletionResult]::new('--timeout', '--timeout', [CompletionResultType]::ParameterName, 'Per-request timeout')
            [CompletionResult]::new('--watch', '--watch', [CompletionResultType]::ParameterName, 'Repeat every DURATION until interrupted, one line per run')
            [CompletionResult]::new('--cacert', '--cacert', [CompletionResultType]::ParameterName, 'Trust this PEM CA certificate for https')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--password-stdin', '--password-stdin', [CompletionResultType]::ParameterName, 'Read the probe password from the first line of stdin')
            [CompletionResult]::new('--quick', '--quick', [CompletionResultType]::ParameterName, 'Liveness only, no credentials: the Docker HEALTHCHECK form. With --env-file, also compares the key ids the service publishes with the local secrets')
            [CompletionResult]::new('--strict', '--strict', [CompletionResultType]::ParameterName, 'Fail on warnings too (hardening gaps: a missing header, no CSRF cookie, …)')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;user' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'The .env file that may name ASPJWT_DB [default: ./.env when present]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Create a user; without --password-stdin a 20-character password is generated and printed once')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List users')
            [CompletionResult]::new('disable', 'disable', [CompletionResultType]::ParameterValue, 'Disable a user and end their sessions')
            [CompletionResult]::new('enable', 'enable', [CompletionResultType]::ParameterValue, 'Enable a disabled user')
            [CompletionResult]::new('passwd', 'passwd', [CompletionResultType]::ParameterValue, 'Set a new password (from stdin) and end the user''s sessions')
            [CompletionResult]::new('role', 'role', [CompletionResultType]::ParameterValue, 'Change a user''s role and end their sessions')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Import users with their password hashes (bcrypt from the CRM''s Node backend, or argon2id) from a JSON array or a CSV file with a header; bcrypt hashes become argon2id at each user''s next login')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'aspjwt;user;add' {
            [CompletionResult]::new('--email', '--email', [CompletionResultType]::ParameterName, 'email')
            [CompletionResult]::new('--name', '--name', [CompletionResultType]::ParameterName, 'name')
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'admin, sales_agent, operations_manager, operator or support')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'The .env file that may name ASPJWT_DB [default: ./.env when present]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--password-stdin', '--password-stdin', [CompletionResultType]::ParameterName, 'Read the password from the first line of stdin')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;user;list' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'The .env file that may name ASPJWT_DB [default: ./.env when present]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;user;disable' {
            [CompletionResult]::new('--email', '--email', [CompletionResultType]::ParameterName, 'email')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'The .env file that may name ASPJWT_DB [default: ./.env when present]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;user;enable' {
            [CompletionResult]::new('--email', '--email', [CompletionResultType]::ParameterName, 'email')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'The .env file that may name ASPJWT_DB [default: ./.env when present]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;user;passwd' {
            [CompletionResult]::new('--email', '--email', [CompletionResultType]::ParameterName, 'email')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'The .env file that may name ASPJWT_DB [default: ./.env when present]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--password-stdin', '--password-stdin', [CompletionResultType]::ParameterName, 'Read the password from the first line of stdin')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;user;role' {
            [CompletionResult]::new('--email', '--email', [CompletionResultType]::ParameterName, 'email')
            [CompletionResult]::new('--role', '--role', [CompletionResultType]::ParameterName, 'role')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'The .env file that may name ASPJWT_DB [default: ./.env when present]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;user;import' {
            [CompletionResult]::new('--format', '--format', [CompletionResultType]::ParameterName, 'The file''s format [default: by extension, else by its first character]')
            [CompletionResult]::new('--role-map', '--role-map', [CompletionResultType]::ParameterName, 'The old backend''s role names to ours: OLD=NEW,… (e.g. agent=sales_agent)')
            [CompletionResult]::new('--on-conflict', '--on-conflict', [CompletionResultType]::ParameterName, 'What to do with an email the database already has')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'The .env file that may name ASPJWT_DB [default: ./.env when present]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Say what would happen; write nothing')
            [CompletionResult]::new('--skip-invalid', '--skip-invalid', [CompletionResultType]::ParameterName, 'Import the valid rows and report the refused ones, instead of refusing the file')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;user;help' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Create a user; without --password-stdin a 20-character password is generated and printed once')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List users')
            [CompletionResult]::new('disable', 'disable', [CompletionResultType]::ParameterValue, 'Disable a user and end their sessions')
            [CompletionResult]::new('enable', 'enable', [CompletionResultType]::ParameterValue, 'Enable a disabled user')
            [CompletionResult]::new('passwd', 'passwd', [CompletionResultType]::ParameterValue, 'Set a new password (from stdin) and end the user''s sessions')
            [CompletionResult]::new('role', 'role', [CompletionResultType]::ParameterValue, 'Change a user''s role and end their sessions')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Import users with their password hashes (bcrypt from the CRM''s Node backend, or argon2id) from a JSON array or a CSV file with a header; bcrypt hashes become argon2id at each user''s next login')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'aspjwt;user;help;add' {
            break
        }
        'aspjwt;user;help;list' {
            break
        }
        'aspjwt;user;help;disable' {
            break
        }
        'aspjwt;user;help;enable' {
            break
        }
        'aspjwt;user;help;passwd' {
            break
        }
        'aspjwt;user;help;role' {
            break
        }
        'aspjwt;user;help;import' {
            break
        }
        'aspjwt;user;help;help' {
            break
        }
        'aspjwt;sessions' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'The .env file that may name ASPJWT_DB [default: ./.env when present]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List live sessions, newest first')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke sessions: their refresh tokens stop at once, access tokens within 2 s')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'aspjwt;sessions;list' {
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Only this user''s sessions')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'The .env file that may name ASPJWT_DB [default: ./.env when present]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Include revoked and expired sessions')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;sessions;revoke' {
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Every session of this user')
            [CompletionResult]::new('--id', '--id', [CompletionResultType]::ParameterName, 'One session. Ids are base64url and may start with `-`: taken as they are')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'The .env file that may name ASPJWT_DB [default: ./.env when present]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--all', '--all', [CompletionResultType]::ParameterName, 'Every session of every user')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;sessions;help' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List live sessions, newest first')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke sessions: their refresh tokens stop at once, access tokens within 2 s')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'aspjwt;sessions;help;list' {
            break
        }
        'aspjwt;sessions;help;revoke' {
            break
        }
        'aspjwt;sessions;help;help' {
            break
        }
        'aspjwt;audit' {
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'Only events newer than this (e.g. 1h, 7d)')
            [CompletionResult]::new('--event', '--event', [CompletionResultType]::ParameterName, 'Only this event (e.g. login_failure, refresh_token_reuse)')
            [CompletionResult]::new('--user', '--user', [CompletionResultType]::ParameterName, 'Only events of this user (email or user id)')
            [CompletionResult]::new('--limit', '--limit', [CompletionResultType]::ParameterName, 'At most this many events, newest first (0: all)')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'The .env file that may name ASPJWT_DB [default: ./.env when present]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;incident' {
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'A .env file whose secrets are rotated (repeatable) [default: ./.env]')
            [CompletionResult]::new('--compose', '--compose', [CompletionResultType]::ParameterName, 'A docker-compose file whose literal secrets are rotated (repeatable)')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or the env files, else ./data/aspjwt.db]')
            [CompletionResult]::new('--since', '--since', [CompletionResultType]::ParameterName, 'How far back the report looks for suspicious activity')
            [CompletionResult]::new('--pid-file', '--pid-file', [CompletionResultType]::ParameterName, 'A file holding the pid of a service to send SIGHUP (repeatable)')
            [CompletionResult]::new('--url', '--url', [CompletionResultType]::ParameterName, 'A service whose /api/health must show the new key ids (repeatable)')
            [CompletionResult]::new('--report', '--report', [CompletionResultType]::ParameterName, 'Write the affected users as CSV (for a mail merge), mode 0600')
            [CompletionResult]::new('--lock-timeout', '--lock-timeout', [CompletionResultType]::ParameterName, 'How long to wait for another aspjwt rotating the same files')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--yes', '--yes', [CompletionResultType]::ParameterName, 'Do it without asking (required when stdin is not a terminal)')
            [CompletionResult]::new('--dry-run', '--dry-run', [CompletionResultType]::ParameterName, 'Show everything that would happen; change nothing')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;backup' {
            [CompletionResult]::new('--out', '--out', [CompletionResultType]::ParameterName, 'The backup file to write (0600; an existing file is replaced atomically)')
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'The .env file that may name ASPJWT_DB [default: ./.env when present]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;restore' {
            [CompletionResult]::new('--db', '--db', [CompletionResultType]::ParameterName, 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]')
            [CompletionResult]::new('--env-file', '--env-file', [CompletionResultType]::ParameterName, 'The .env file that may name ASPJWT_DB [default: ./.env when present]')
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--force', '--force', [CompletionResultType]::ParameterName, 'Replace everything in a database that already has users')
            [CompletionResult]::new('--revoke-sessions', '--revoke-sessions', [CompletionResultType]::ParameterName, 'Restore every session as revoked: users log in again, and no session the backup holds (one since stolen, say) comes back')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;completions' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;man' {
            [CompletionResult]::new('--color', '--color', [CompletionResultType]::ParameterName, 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout')
            [CompletionResult]::new('--json', '--json', [CompletionResultType]::ParameterName, 'Machine-readable JSON on stdout, nothing else there')
            [CompletionResult]::new('-q', '-q', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('--quiet', '--quiet', [CompletionResultType]::ParameterName, 'Print only results and errors: no summaries, notices or warnings')
            [CompletionResult]::new('-h', '-h', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('--help', '--help', [CompletionResultType]::ParameterName, 'Print help')
            [CompletionResult]::new('-V', '-V ', [CompletionResultType]::ParameterName, 'Print version')
            [CompletionResult]::new('--version', '--version', [CompletionResultType]::ParameterName, 'Print version')
            break
        }
        'aspjwt;help' {
            [CompletionResult]::new('generate', 'generate', [CompletionResultType]::ParameterValue, 'Print fresh secrets from the OS CSPRNG')
            [CompletionResult]::new('rotate', 'rotate', [CompletionResultType]::ParameterValue, 'Replace secrets in place across .env and compose files, all or nothing')
            [CompletionResult]::new('check', 'check', [CompletionResultType]::ParameterValue, 'Validate a configuration offline: secrets, expiries, file permissions')
            [CompletionResult]::new('decode', 'decode', [CompletionResultType]::ParameterValue, 'Show a token''s header, claims and times. Never checks the signature')
            [CompletionResult]::new('verify', 'verify', [CompletionResultType]::ParameterValue, 'Verify a token''s signature and claims with the configured secret')
            [CompletionResult]::new('mint', 'mint', [CompletionResultType]::ParameterValue, 'Print a token signed exactly as the service signs it')
            [CompletionResult]::new('serve', 'serve', [CompletionResultType]::ParameterValue, 'Run the auth service (login, refresh with rotation, logout, token-info)')
            [CompletionResult]::new('health', 'health', [CompletionResultType]::ParameterValue, 'Check a live service: liveness, configuration, and a full login-refresh-logout round')
            [CompletionResult]::new('user', 'user', [CompletionResultType]::ParameterValue, 'Manage users (works with or without the service running)')
            [CompletionResult]::new('sessions', 'sessions', [CompletionResultType]::ParameterValue, 'List or revoke sessions: the incident-response "clear all user sessions"')
            [CompletionResult]::new('audit', 'audit', [CompletionResultType]::ParameterValue, 'Read the audit log')
            [CompletionResult]::new('incident', 'incident', [CompletionResultType]::ParameterValue, 'Respond to a suspected token compromise in one go: rotate every secret, end every session, record the incident, reload the services, report who is affected and what looks suspicious')
            [CompletionResult]::new('backup', 'backup', [CompletionResultType]::ParameterValue, 'Take a consistent snapshot of the database (users with their password hashes, sessions, audit log, account throttles) into one checksummed file, written 0600')
            [CompletionResult]::new('restore', 'restore', [CompletionResultType]::ParameterValue, 'Load a backup into a database (SQLite or PostgreSQL) in one transaction')
            [CompletionResult]::new('completions', 'completions', [CompletionResultType]::ParameterValue, 'Print a shell completion script')
            [CompletionResult]::new('man', 'man', [CompletionResultType]::ParameterValue, 'Print the man page (roff)')
            [CompletionResult]::new('help', 'help', [CompletionResultType]::ParameterValue, 'Print this message or the help of the given subcommand(s)')
            break
        }
        'aspjwt;help;generate' {
            break
        }
        'aspjwt;help;rotate' {
            break
        }
        'aspjwt;help;check' {
            break
        }
        'aspjwt;help;decode' {
            break
        }
        'aspjwt;help;verify' {
            break
        }
        'aspjwt;help;mint' {
            break
        }
        'aspjwt;help;serve' {
            break
        }
        'aspjwt;help;health' {
            break
        }
        'aspjwt;help;user' {
            [CompletionResult]::new('add', 'add', [CompletionResultType]::ParameterValue, 'Create a user; without --password-stdin a 20-character password is generated and printed once')
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List users')
            [CompletionResult]::new('disable', 'disable', [CompletionResultType]::ParameterValue, 'Disable a user and end their sessions')
            [CompletionResult]::new('enable', 'enable', [CompletionResultType]::ParameterValue, 'Enable a disabled user')
            [CompletionResult]::new('passwd', 'passwd', [CompletionResultType]::ParameterValue, 'Set a new password (from stdin) and end the user''s sessions')
            [CompletionResult]::new('role', 'role', [CompletionResultType]::ParameterValue, 'Change a user''s role and end their sessions')
            [CompletionResult]::new('import', 'import', [CompletionResultType]::ParameterValue, 'Import users with their password hashes (bcrypt from the CRM''s Node backend, or argon2id) from a JSON array or a CSV file with a header; bcrypt hashes become argon2id at each user''s next login')
            break
        }
        'aspjwt;help;user;add' {
            break
        }
        'aspjwt;help;user;list' {
            break
        }
        'aspjwt;help;user;disable' {
            break
        }
        'aspjwt;help;user;enable' {
            break
        }
        'aspjwt;help;user;passwd' {
            break
        }
        'aspjwt;help;user;role' {
            break
        }
        'aspjwt;help;user;import' {
            break
        }
        'aspjwt;help;sessions' {
            [CompletionResult]::new('list', 'list', [CompletionResultType]::ParameterValue, 'List live sessions, newest first')
            [CompletionResult]::new('revoke', 'revoke', [CompletionResultType]::ParameterValue, 'Revoke sessions: their refresh tokens stop at once, access tokens within 2 s')
            break
        }
        'aspjwt;help;sessions;list' {
            break
        }
        'aspjwt;help;sessions;revoke' {
            break
        }
        'aspjwt;help;audit' {
            break
        }
        'aspjwt;help;incident' {
            break
        }
        'aspjwt;help;backup' {
            break
        }
        'aspjwt;help;restore' {
            break
        }
        'aspjwt;help;completions' {
            break
        }
        'aspjwt;help;man' {
            break
        }
        'aspjwt;help;help' {
            break
        }
    })

    $completions.Where{ $_.CompletionText -like "$wordToComplete*" } |
        Sort-Object -Property ListItemText
}
