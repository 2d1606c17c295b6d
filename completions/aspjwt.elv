
use builtin;
use str;

set edit:completion:arg-completer[aspjwt] = {|@words|
    fn spaces {|n|
        builtin:repeat $n ' ' | str:join ''
    }
    fn cand {|text desc|
        edit:complex-candidate $text &display=$text' '(spaces (- 14 (wcswidth $text)))$desc
    }
    var command = 'aspjwt'
    for word $words[1..-1] {
        if (str:has-prefix $word '-') {
            break
        }
        set command = $command';'$word
    }
    var completions = [
        &'aspjwt'= {
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand generate 'Print fresh secrets from the OS CSPRNG'
            cand rotate 'Replace secrets in place across .env and compose files, all or nothing'
            cand check 'Validate a configuration offline: secrets, expiries, file permissions'
            cand decode 'Show a token''s header, claims and times. Never checks the signature'
            cand verify 'Verify a token''s signature and claims with the configured secret'
            cand mint 'Print a token signed exactly as the service signs it'
            cand serve 'Run the auth service (login, refresh with rotation, logout, token-info)'
            cand health 'Check a live service: liveness, configuration, and a full login-refresh-logout round'
            cand user 'Manage users (works with or without the service running)'
            cand sessions 'List or revoke sessions: the incident-response "clear all user sessions"'
            cand audit 'Read the audit log'
            cand incident 'Respond to a suspected token compromise in one go: rotate every secret, end every session, record the incident, reload the services, report who is affected and what looks suspicious'
            cand backup 'Take a consistent snapshot of the database (users with their password hashes, sessions, audit log, account throttles) into one checksummed file, written 0600'
            cand restore 'Load a backup into a database (SQLite or PostgreSQL) in one transaction'
            cand completions 'Print a shell completion script'
            cand man 'Print the man page (roff)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'aspjwt;generate'= {
            cand --format 'Output format'
            cand --only 'Only these of the default secrets (JWT_SECRET, JWT_REFRESH_SECRET, SESSION_SECRET)'
            cand --name 'Generate one custom secret with this name instead of the defaults'
            cand --bytes 'Random bytes for the custom secret [default: 32]'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --url-safe 'base64url without padding instead of standard base64'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help (see more with ''--help'')'
            cand --help 'Print help (see more with ''--help'')'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;rotate'= {
            cand --env-file 'A .env file to rewrite (repeatable) [default: .env when no file is named]'
            cand --compose 'A docker compose file whose services'' environment to rewrite (repeatable)'
            cand --only 'Only these of the secrets (the defaults and those given with --key)'
            cand --key 'Also rotate this secret, with BYTES random bytes [default: 32] (repeatable)'
            cand --window 'How long previous secrets stay valid [default: the access lifetime for JWT_SECRET, the refresh lifetime for JWT_REFRESH_SECRET and SESSION_SECRET; capped at that lifetime plus 5 minutes]'
            cand --lock-timeout 'How long to wait for another aspjwt rotating the same files'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --dry-run 'Show what would change, as a diff with values masked; write nothing'
            cand --backup 'Keep a 0600 copy of each file (FILE.bak-TIMESTAMP) before changing it'
            cand --create 'Create a missing .env file (mode 0600)'
            cand --show-secrets 'Print the new secret values (they are masked otherwise)'
            cand --url-safe 'base64url without padding instead of standard base64'
            cand --graceful 'Routine rollover: keep each replaced secret as <KEY>_PREVIOUS, still valid for verification until <KEY>_PREVIOUS_UNTIL, so nobody is logged out'
            cand --finish 'Remove the <KEY>_PREVIOUS entries whose window has ended (and only those)'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;check'= {
            cand --env-file 'A .env file to check (repeatable; later files override earlier ones)'
            cand --compose 'A docker compose file whose services'' environments to check (repeatable)'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --strict 'Fail on warnings too'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;decode'= {
            cand --cookie 'The cookie to pick when the input is a cookie header'
            cand --threshold 'Say "should refresh" when the token expires within this long'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;verify'= {
            cand --cookie 'The cookie to pick when the input is a cookie header'
            cand --env-file 'Read JWT_SECRET / JWT_REFRESH_SECRET (by token type) from this .env file [default: ./.env if present, else the environment]'
            cand --secret-env 'Read the secret from this environment variable'
            cand --secret-file 'Read the secret from this file (a trailing newline is trimmed)'
            cand --typ 'The token type to insist on [default: with --env-file, the token''s own typ picks the secret]'
            cand --alg 'Accept this algorithm as well as HS256'
            cand --leeway 'Clock skew allowed on exp and nbf'
            cand --iss 'The issuer to insist on [default: with --env-file, JWT_ISSUER or aspjwt]'
            cand --aud 'The audience to insist on [default: with --env-file, JWT_AUDIENCE or asp-cranes-crm]'
            cand --threshold 'Say "should refresh" when the token expires within this long'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --secret-stdin 'Read the secret from stdin (the token must then be an argument)'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;mint'= {
            cand --sub 'User id (the sub claim)'
            cand --email 'email'
            cand --role 'One of admin, sales_agent, operations_manager, operator, support'
            cand --typ 'typ'
            cand --ttl 'Lifetime [default: JWT_ACCESS_TOKEN_EXPIRY or JWT_REFRESH_TOKEN_EXPIRY, else 15m / 7d]'
            cand --sid 'Session id [default: a fresh random one]'
            cand --claim 'An extra claim; VALUE is read as JSON when it parses, else as a string (repeatable)'
            cand --env-file 'Read JWT_SECRET / JWT_REFRESH_SECRET (by token type) from this .env file [default: ./.env if present, else the environment]'
            cand --secret-env 'Read the secret from this environment variable'
            cand --secret-file 'Read the secret from this file (a trailing newline is trimmed)'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --secret-stdin 'Read the secret from stdin (the token must then be an argument)'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;serve'= {
            cand --bind 'Address to listen on (port 0 picks a free one, announced in the log)'
            cand --env-file 'The .env file to load (dotenvy; the real environment wins) [default: ./.env when present]'
            cand --db 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB, else ./data/aspjwt.db]'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;health'= {
            cand --url 'The service''s base URL'
            cand --env-file 'Judge this configuration and verify the service''s tokens with its secrets'
            cand --email 'The probe account for the deep check (login, refresh, logout)'
            cand --password-env 'Read the probe password from this environment variable'
            cand --password-file 'Read the probe password from this file (a trailing newline is trimmed)'
            cand --timeout 'Per-request timeout'
            cand --watch 'Repeat every DURATION until interrupted, one line per run'
            cand --cacert 'Trust this PEM CA certificate for https'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --password-stdin 'Read the probe password from the first line of stdin'
            cand --quick 'Liveness only, no credentials: the Docker HEALTHCHECK form. With --env-file, also compares the key ids the service publishes with the local secrets'
            cand --strict 'Fail on warnings too (hardening gaps: a missing header, no CSRF cookie, …)'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;user'= {
            cand --db 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]'
            cand --env-file 'The .env file that may name ASPJWT_DB [default: ./.env when present]'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand add 'Create a user; without --password-stdin a 20-character password is generated and printed once'
            cand list 'List users'
            cand disable 'Disable a user and end their sessions'
            cand enable 'Enable a disabled user'
            cand passwd 'Set a new password (from stdin) and end the user''s sessions'
            cand role 'Change a user''s role and end their sessions'
            cand import 'Import users with their password hashes (bcrypt from the CRM''s Node backend, or argon2id) from a JSON array or a CSV file with a header; bcrypt hashes become argon2id at each user''s next login'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'aspjwt;user;add'= {
            cand --email 'email'
            cand --name 'name'
            cand --role 'admin, sales_agent, operations_manager, operator or support'
            cand --db 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]'
            cand --env-file 'The .env file that may name ASPJWT_DB [default: ./.env when present]'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --password-stdin 'Read the password from the first line of stdin'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;user;list'= {
            cand --db 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]'
            cand --env-file 'The .env file that may name ASPJWT_DB [default: ./.env when present]'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;user;disable'= {
            cand --email 'email'
            cand --db 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]'
            cand --env-file 'The .env file that may name ASPJWT_DB [default: ./.env when present]'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;user;enable'= {
            cand --email 'email'
            cand --db 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]'
            cand --env-file 'The .env file that may name ASPJWT_DB [default: ./.env when present]'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;user;passwd'= {
            cand --email 'email'
            cand --db 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]'
            cand --env-file 'The .env file that may name ASPJWT_DB [default: ./.env when present]'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --password-stdin 'Read the password from the first line of stdin'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;user;role'= {
            cand --email 'email'
            cand --role 'role'
            cand --db 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]'
            cand --env-file 'The .env file that may name ASPJWT_DB [default: ./.env when present]'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;user;import'= {
            cand --format 'The file''s format [default: by extension, else by its first character]'
            cand --role-map 'The old backend''s role names to ours: OLD=NEW,… (e.g. agent=sales_agent)'
            cand --on-conflict 'What to do with an email the database already has'
            cand --db 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]'
            cand --env-file 'The .env file that may name ASPJWT_DB [default: ./.env when present]'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --dry-run 'Say what would happen; write nothing'
            cand --skip-invalid 'Import the valid rows and report the refused ones, instead of refusing the file'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;user;help'= {
            cand add 'Create a user; without --password-stdin a 20-character password is generated and printed once'
            cand list 'List users'
            cand disable 'Disable a user and end their sessions'
            cand enable 'Enable a disabled user'
            cand passwd 'Set a new password (from stdin) and end the user''s sessions'
            cand role 'Change a user''s role and end their sessions'
            cand import 'Import users with their password hashes (bcrypt from the CRM''s Node backend, or argon2id) from a JSON array or a CSV file with a header; bcrypt hashes become argon2id at each user''s next login'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'aspjwt;user;help;add'= {
        }
        &'aspjwt;user;help;list'= {
        }
        &'aspjwt;user;help;disable'= {
        }
        &'aspjwt;user;help;enable'= {
        }
        &'aspjwt;user;help;passwd'= {
        }
        &'aspjwt;user;help;role'= {
        }
        &'aspjwt;user;help;import'= {
        }
        &'aspjwt;user;help;help'= {
        }
        &'aspjwt;sessions'= {
            cand --db 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]'
            cand --env-file 'The .env file that may name ASPJWT_DB [default: ./.env when present]'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
            cand list 'List live sessions, newest first'
            cand revoke 'Revoke sessions: their refresh tokens stop at once, access tokens within 2 s'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'aspjwt;sessions;list'= {
            cand --user 'Only this user''s sessions'
            cand --db 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]'
            cand --env-file 'The .env file that may name ASPJWT_DB [default: ./.env when present]'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --all 'Include revoked and expired sessions'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;sessions;revoke'= {
            cand --user 'Every session of this user'
            cand --id 'One session. Ids are base64url and may start with `-`: taken as they are'
            cand --db 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]'
            cand --env-file 'The .env file that may name ASPJWT_DB [default: ./.env when present]'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --all 'Every session of every user'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;sessions;help'= {
            cand list 'List live sessions, newest first'
            cand revoke 'Revoke sessions: their refresh tokens stop at once, access tokens within 2 s'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'aspjwt;sessions;help;list'= {
        }
        &'aspjwt;sessions;help;revoke'= {
        }
        &'aspjwt;sessions;help;help'= {
        }
        &'aspjwt;audit'= {
            cand --since 'Only events newer than this (e.g. 1h, 7d)'
            cand --event 'Only this event (e.g. login_failure, refresh_token_reuse)'
            cand --user 'Only events of this user (email or user id)'
            cand --limit 'At most this many events, newest first (0: all)'
            cand --db 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]'
            cand --env-file 'The .env file that may name ASPJWT_DB [default: ./.env when present]'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;incident'= {
            cand --env-file 'A .env file whose secrets are rotated (repeatable) [default: ./.env]'
            cand --compose 'A docker-compose file whose literal secrets are rotated (repeatable)'
            cand --db 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or the env files, else ./data/aspjwt.db]'
            cand --since 'How far back the report looks for suspicious activity'
            cand --pid-file 'A file holding the pid of a service to send SIGHUP (repeatable)'
            cand --url 'A service whose /api/health must show the new key ids (repeatable)'
            cand --report 'Write the affected users as CSV (for a mail merge), mode 0600'
            cand --lock-timeout 'How long to wait for another aspjwt rotating the same files'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --yes 'Do it without asking (required when stdin is not a terminal)'
            cand --dry-run 'Show everything that would happen; change nothing'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;backup'= {
            cand --out 'The backup file to write (0600; an existing file is replaced atomically)'
            cand --db 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]'
            cand --env-file 'The .env file that may name ASPJWT_DB [default: ./.env when present]'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;restore'= {
            cand --db 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]'
            cand --env-file 'The .env file that may name ASPJWT_DB [default: ./.env when present]'
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --force 'Replace everything in a database that already has users'
            cand --revoke-sessions 'Restore every session as revoked: users log in again, and no session the backup holds (one since stolen, say) comes back'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;completions'= {
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;man'= {
            cand --color 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout'
            cand --json 'Machine-readable JSON on stdout, nothing else there'
            cand -q 'Print only results and errors: no summaries, notices or warnings'
            cand --quiet 'Print only results and errors: no summaries, notices or warnings'
            cand -h 'Print help'
            cand --help 'Print help'
            cand -V 'Print version'
            cand --version 'Print version'
        }
        &'aspjwt;help'= {
            cand generate 'Print fresh secrets from the OS CSPRNG'
            cand rotate 'Replace secrets in place across .env and compose files, all or nothing'
            cand check 'Validate a configuration offline: secrets, expiries, file permissions'
            cand decode 'Show a token''s header, claims and times. Never checks the signature'
            cand verify 'Verify a token''s signature and claims with the configured secret'
            cand mint 'Print a token signed exactly as the service signs it'
            cand serve 'Run the auth service (login, refresh with rotation, logout, token-info)'
            cand health 'Check a live service: liveness, configuration, and a full login-refresh-logout round'
            cand user 'Manage users (works with or without the service running)'
            cand sessions 'List or revoke sessions: the incident-response "clear all user sessions"'
            cand audit 'Read the audit log'
            cand incident 'Respond to a suspected token compromise in one go: rotate every secret, end every session, record the incident, reload the services, report who is affected and what looks suspicious'
            cand backup 'Take a consistent snapshot of the database (users with their password hashes, sessions, audit log, account throttles) into one checksummed file, written 0600'
            cand restore 'Load a backup into a database (SQLite or PostgreSQL) in one transaction'
            cand completions 'Print a shell completion script'
            cand man 'Print the man page (roff)'
            cand help 'Print this message or the help of the given subcommand(s)'
        }
        &'aspjwt;help;generate'= {
        }
        &'aspjwt;help;rotate'= {
        }
        &'aspjwt;help;check'= {
        }
        &'aspjwt;help;decode'= {
        }
        &'aspjwt;help;verify'= {
        }
        &'aspjwt;help;mint'= {
        }
        &'aspjwt;help;serve'= {
        }
        &'aspjwt;help;health'= {
        }
        &'aspjwt;help;user'= {
            cand add 'Create a user; without --password-stdin a 20-character password is generated and printed once'
            cand list 'List users'
            cand disable 'Disable a user and end their sessions'
            cand enable 'Enable a disabled user'
            cand passwd 'Set a new password (from stdin) and end the user''s sessions'
            cand role 'Change a user''s role and end their sessions'
            cand import 'Import users with their password hashes (bcrypt from the CRM''s Node backend, or argon2id) from a JSON array or a CSV file with a header; bcrypt hashes become argon2id at each user''s next login'
        }
        &'aspjwt;help;user;add'= {
        }
        &'aspjwt;help;user;list'= {
        }
        &'aspjwt;help;user;disable'= {
        }
        &'aspjwt;help;user;enable'= {
        }
        &'aspjwt;help;user;passwd'= {
        }
        &'aspjwt;help;user;role'= {
        }
        &'aspjwt;help;user;import'= {
        }
        &'aspjwt;help;sessions'= {
            cand list 'List live sessions, newest first'
            cand revoke 'Revoke sessions: their refresh tokens stop at once, access tokens within 2 s'
        }
        &'aspjwt;help;sessions;list'= {
        }
        &'aspjwt;help;sessions;revoke'= {
        }
        &'aspjwt;help;audit'= {
        }
        &'aspjwt;help;incident'= {
        }
        &'aspjwt;help;backup'= {
        }
        &'aspjwt;help;restore'= {
        }
        &'aspjwt;help;completions'= {
        }
        &'aspjwt;help;man'= {
        }
        &'aspjwt;help;help'= {
        }
    ]
    $completions[$command]
}
