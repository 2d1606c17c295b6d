# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_aspjwt_global_optspecs
    string join \n json color= q/quiet h/help V/version
end

function __fish_aspjwt_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_aspjwt_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_aspjwt_using_subcommand
    set -l cmd (__fish_aspjwt_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c aspjwt -n "__fish_aspjwt_needs_command" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_needs_command" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -f -a "generate" -d 'Print fresh secrets from the OS CSPRNG'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -f -a "rotate" -d 'Replace secrets in place across .env and compose files, all or nothing'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -f -a "check" -d 'Validate a configuration offline: secrets, expiries, file permissions'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -f -a "decode" -d 'Show a token\'s header, claims and times. Never checks the signature'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -f -a "verify" -d 'Verify a token\'s signature and claims with the configured secret'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -f -a "mint" -d 'Print a token signed exactly as the service signs it'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -f -a "serve" -d 'Run the auth service (login, refresh with rotation, logout, token-info)'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -f -a "health" -d 'Check a live service: liveness, configuration, and a full login-refresh-logout round'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -f -a "user" -d 'Manage users (works with or without the service running)'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -f -a "sessions" -d 'List or revoke sessions: the incident-response "clear all user sessions"'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -f -a "audit" -d 'Read the audit log'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -f -a "incident" -d 'Respond to a suspected token compromise in one go: rotate every secret, end every session, record the incident, reload the services, report who is affected and what looks suspicious'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -f -a "backup" -d 'Take a consistent snapshot of the database (users with their password hashes, sessions, audit log, account throttles) into one checksummed file, written 0600'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -f -a "restore" -d 'Load a backup into a database (SQLite or PostgreSQL) in one transaction'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -f -a "completions" -d 'Print a shell completion script'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -f -a "man" -d 'Print the man page (roff)'
complete -c aspjwt -n "__fish_aspjwt_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand generate" -l format -d 'Output format' -r -f -a "env\t'KEY=value lines, for a .env file'
shell\t'export KEY=value lines, for `eval`'
json\t'One JSON object'
yaml\t'A compose `environment:` map'"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand generate" -l only -d 'Only these of the default secrets (JWT_SECRET, JWT_REFRESH_SECRET, SESSION_SECRET)' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand generate" -l name -d 'Generate one custom secret with this name instead of the defaults' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand generate" -l bytes -d 'Random bytes for the custom secret [default: 32]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand generate" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand generate" -l url-safe -d 'base64url without padding instead of standard base64'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand generate" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand generate" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand generate" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand generate" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand rotate" -l env-file -d 'A .env file to rewrite (repeatable) [default: .env when no file is named]' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand rotate" -l compose -d 'A docker compose file whose services\' environment to rewrite (repeatable)' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand rotate" -l only -d 'Only these of the secrets (the defaults and those given with --key)' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand rotate" -l key -d 'Also rotate this secret, with BYTES random bytes [default: 32] (repeatable)' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand rotate" -l window -d 'How long previous secrets stay valid [default: the access lifetime for JWT_SECRET, the refresh lifetime for JWT_REFRESH_SECRET and SESSION_SECRET; capped at that lifetime plus 5 minutes]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand rotate" -l lock-timeout -d 'How long to wait for another aspjwt rotating the same files' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand rotate" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand rotate" -l dry-run -d 'Show what would change, as a diff with values masked; write nothing'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand rotate" -l backup -d 'Keep a 0600 copy of each file (FILE.bak-TIMESTAMP) before changing it'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand rotate" -l create -d 'Create a missing .env file (mode 0600)'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand rotate" -l show-secrets -d 'Print the new secret values (they are masked otherwise)'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand rotate" -l url-safe -d 'base64url without padding instead of standard base64'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand rotate" -l graceful -d 'Routine rollover: keep each replaced secret as <KEY>_PREVIOUS, still valid for verification until <KEY>_PREVIOUS_UNTIL, so nobody is logged out'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand rotate" -l finish -d 'Remove the <KEY>_PREVIOUS entries whose window has ended (and only those)'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand rotate" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand rotate" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand rotate" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand rotate" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand check" -l env-file -d 'A .env file to check (repeatable; later files override earlier ones)' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand check" -l compose -d 'A docker compose file whose services\' environments to check (repeatable)' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand check" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand check" -l strict -d 'Fail on warnings too'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand check" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand check" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand check" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand check" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand decode" -l cookie -d 'The cookie to pick when the input is a cookie header' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand decode" -l threshold -d 'Say "should refresh" when the token expires within this long' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand decode" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand decode" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand decode" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand decode" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand decode" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand verify" -l cookie -d 'The cookie to pick when the input is a cookie header' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand verify" -l env-file -d 'Read JWT_SECRET / JWT_REFRESH_SECRET (by token type) from this .env file [default: ./.env if present, else the environment]' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand verify" -l secret-env -d 'Read the secret from this environment variable' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand verify" -l secret-file -d 'Read the secret from this file (a trailing newline is trimmed)' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand verify" -l typ -d 'The token type to insist on [default: with --env-file, the token\'s own typ picks the secret]' -r -f -a "access\t''
refresh\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand verify" -l alg -d 'Accept this algorithm as well as HS256' -r -f -a "HS384\t''
HS512\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand verify" -l leeway -d 'Clock skew allowed on exp and nbf' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand verify" -l iss -d 'The issuer to insist on [default: with --env-file, JWT_ISSUER or aspjwt]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand verify" -l aud -d 'The audience to insist on [default: with --env-file, JWT_AUDIENCE or asp-cranes-crm]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand verify" -l threshold -d 'Say "should refresh" when the token expires within this long' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand verify" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand verify" -l secret-stdin -d 'Read the secret from stdin (the token must then be an argument)'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand verify" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand verify" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand verify" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand verify" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand mint" -l sub -d 'User id (the sub claim)' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand mint" -l email -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand mint" -l role -d 'One of admin, sales_agent, operations_manager, operator, support' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand mint" -l typ -r -f -a "access\t''
refresh\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand mint" -l ttl -d 'Lifetime [default: JWT_ACCESS_TOKEN_EXPIRY or JWT_REFRESH_TOKEN_EXPIRY, else 15m / 7d]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand mint" -l sid -d 'Session id [default: a fresh random one]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand mint" -l claim -d 'An extra claim; VALUE is read as JSON when it parses, else as a string (repeatable)' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand mint" -l env-file -d 'Read JWT_SECRET / JWT_REFRESH_SECRET (by token type) from this .env file [default: ./.env if present, else the environment]' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand mint" -l secret-env -d 'Read the secret from this environment variable' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand mint" -l secret-file -d 'Read the secret from this file (a trailing newline is trimmed)' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand mint" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand mint" -l secret-stdin -d 'Read the secret from stdin (the token must then be an argument)'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand mint" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand mint" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand mint" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand mint" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand serve" -l bind -d 'Address to listen on (port 0 picks a free one, announced in the log)' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand serve" -l env-file -d 'The .env file to load (dotenvy; the real environment wins) [default: ./.env when present]' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand serve" -l db -d 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB, else ./data/aspjwt.db]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand serve" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand serve" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand serve" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand serve" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand serve" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand health" -l url -d 'The service\'s base URL' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand health" -l env-file -d 'Judge this configuration and verify the service\'s tokens with its secrets' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand health" -l email -d 'The probe account for the deep check (login, refresh, logout)' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand health" -l password-env -d 'Read the probe password from this environment variable' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand health" -l password-file -d 'Read the probe password from this file (a trailing newline is trimmed)' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand health" -l timeout -d 'Per-request timeout' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand health" -l watch -d 'Repeat every DURATION until interrupted, one line per run' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand health" -l cacert -d 'Trust this PEM CA certificate for https' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand health" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand health" -l password-stdin -d 'Read the probe password from the first line of stdin'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand health" -l quick -d 'Liveness only, no credentials: the Docker HEALTHCHECK form. With --env-file, also compares the key ids the service publishes with the local secrets'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand health" -l strict -d 'Fail on warnings too (hardening gaps: a missing header, no CSRF cookie, …)'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand health" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand health" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand health" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand health" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and not __fish_seen_subcommand_from add list disable enable passwd role import help" -l db -d 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and not __fish_seen_subcommand_from add list disable enable passwd role import help" -l env-file -d 'The .env file that may name ASPJWT_DB [default: ./.env when present]' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and not __fish_seen_subcommand_from add list disable enable passwd role import help" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and not __fish_seen_subcommand_from add list disable enable passwd role import help" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and not __fish_seen_subcommand_from add list disable enable passwd role import help" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and not __fish_seen_subcommand_from add list disable enable passwd role import help" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and not __fish_seen_subcommand_from add list disable enable passwd role import help" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and not __fish_seen_subcommand_from add list disable enable passwd role import help" -f -a "add" -d 'Create a user; without --password-stdin a 20-character password is generated and printed once'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and not __fish_seen_subcommand_from add list disable enable passwd role import help" -f -a "list" -d 'List users'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and not __fish_seen_subcommand_from add list disable enable passwd role import help" -f -a "disable" -d 'Disable a user and end their sessions'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and not __fish_seen_subcommand_from add list disable enable passwd role import help" -f -a "enable" -d 'Enable a disabled user'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and not __fish_seen_subcommand_from add list disable enable passwd role import help" -f -a "passwd" -d 'Set a new password (from stdin) and end the user\'s sessions'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and not __fish_seen_subcommand_from add list disable enable passwd role import help" -f -a "role" -d 'Change a user\'s role and end their sessions'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and not __fish_seen_subcommand_from add list disable enable passwd role import help" -f -a "import" -d 'Import users with their password hashes (bcrypt from the CRM\'s Node backend, or argon2id) from a JSON array or a CSV file with a header; bcrypt hashes become argon2id at each user\'s next login'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and not __fish_seen_subcommand_from add list disable enable passwd role import help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from add" -l email -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from add" -l name -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from add" -l role -d 'admin, sales_agent, operations_manager, operator or support' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from add" -l db -d 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from add" -l env-file -d 'The .env file that may name ASPJWT_DB [default: ./.env when present]' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from add" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from add" -l password-stdin -d 'Read the password from the first line of stdin'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from add" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from add" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from add" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from add" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from list" -l db -d 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from list" -l env-file -d 'The .env file that may name ASPJWT_DB [default: ./.env when present]' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from list" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from list" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from disable" -l email -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from disable" -l db -d 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from disable" -l env-file -d 'The .env file that may name ASPJWT_DB [default: ./.env when present]' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from disable" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from disable" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from disable" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from disable" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from disable" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from enable" -l email -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from enable" -l db -d 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from enable" -l env-file -d 'The .env file that may name ASPJWT_DB [default: ./.env when present]' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from enable" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from enable" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from enable" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from enable" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from enable" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from passwd" -l email -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from passwd" -l db -d 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from passwd" -l env-file -d 'The .env file that may name ASPJWT_DB [default: ./.env when present]' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from passwd" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from passwd" -l password-stdin -d 'Read the password from the first line of stdin'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from passwd" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from passwd" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from passwd" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from passwd" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from role" -l email -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from role" -l role -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from role" -l db -d 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from role" -l env-file -d 'The .env file that may name ASPJWT_DB [default: ./.env when present]' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from role" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from role" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from role" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from role" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from role" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from import" -l format -d 'The file\'s format [default: by extension, else by its first character]' -r -f -a "json\t''
csv\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from import" -l role-map -d 'The old backend\'s role names to ours: OLD=NEW,… (e.g. agent=sales_agent)' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from import" -l on-conflict -d 'What to do with an email the database already has' -r -f -a "skip\t''
update\t''
fail\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from import" -l db -d 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from import" -l env-file -d 'The .env file that may name ASPJWT_DB [default: ./.env when present]' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from import" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from import" -l dry-run -d 'Say what would happen; write nothing'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from import" -l skip-invalid -d 'Import the valid rows and report the refused ones, instead of refusing the file'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from import" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from import" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from import" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from import" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "add" -d 'Create a user; without --password-stdin a 20-character password is generated and printed once'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "list" -d 'List users'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "disable" -d 'Disable a user and end their sessions'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "enable" -d 'Enable a disabled user'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "passwd" -d 'Set a new password (from stdin) and end the user\'s sessions'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "role" -d 'Change a user\'s role and end their sessions'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "import" -d 'Import users with their password hashes (bcrypt from the CRM\'s Node backend, or argon2id) from a JSON array or a CSV file with a header; bcrypt hashes become argon2id at each user\'s next login'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand user; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and not __fish_seen_subcommand_from list revoke help" -l db -d 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and not __fish_seen_subcommand_from list revoke help" -l env-file -d 'The .env file that may name ASPJWT_DB [default: ./.env when present]' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and not __fish_seen_subcommand_from list revoke help" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and not __fish_seen_subcommand_from list revoke help" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and not __fish_seen_subcommand_from list revoke help" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and not __fish_seen_subcommand_from list revoke help" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and not __fish_seen_subcommand_from list revoke help" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and not __fish_seen_subcommand_from list revoke help" -f -a "list" -d 'List live sessions, newest first'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and not __fish_seen_subcommand_from list revoke help" -f -a "revoke" -d 'Revoke sessions: their refresh tokens stop at once, access tokens within 2 s'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and not __fish_seen_subcommand_from list revoke help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from list" -l user -d 'Only this user\'s sessions' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from list" -l db -d 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from list" -l env-file -d 'The .env file that may name ASPJWT_DB [default: ./.env when present]' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from list" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from list" -l all -d 'Include revoked and expired sessions'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from list" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from list" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from list" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from list" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from revoke" -l user -d 'Every session of this user' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from revoke" -l id -d 'One session. Ids are base64url and may start with `-`: taken as they are' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from revoke" -l db -d 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from revoke" -l env-file -d 'The .env file that may name ASPJWT_DB [default: ./.env when present]' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from revoke" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from revoke" -l all -d 'Every session of every user'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from revoke" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from revoke" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from revoke" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from revoke" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "list" -d 'List live sessions, newest first'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "revoke" -d 'Revoke sessions: their refresh tokens stop at once, access tokens within 2 s'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand sessions; and __fish_seen_subcommand_from help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand audit" -l since -d 'Only events newer than this (e.g. 1h, 7d)' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand audit" -l event -d 'Only this event (e.g. login_failure, refresh_token_reuse)' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand audit" -l user -d 'Only events of this user (email or user id)' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand audit" -l limit -d 'At most this many events, newest first (0: all)' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand audit" -l db -d 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand audit" -l env-file -d 'The .env file that may name ASPJWT_DB [default: ./.env when present]' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand audit" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand audit" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand audit" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand audit" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand audit" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand incident" -l env-file -d 'A .env file whose secrets are rotated (repeatable) [default: ./.env]' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand incident" -l compose -d 'A docker-compose file whose literal secrets are rotated (repeatable)' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand incident" -l db -d 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or the env files, else ./data/aspjwt.db]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand incident" -l since -d 'How far back the report looks for suspicious activity' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand incident" -l pid-file -d 'A file holding the pid of a service to send SIGHUP (repeatable)' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand incident" -l url -d 'A service whose /api/health must show the new key ids (repeatable)' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand incident" -l report -d 'Write the affected users as CSV (for a mail merge), mode 0600' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand incident" -l lock-timeout -d 'How long to wait for another aspjwt rotating the same files' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand incident" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand incident" -l yes -d 'Do it without asking (required when stdin is not a terminal)'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand incident" -l dry-run -d 'Show everything that would happen; change nothing'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand incident" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand incident" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand incident" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand incident" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand backup" -l out -d 'The backup file to write (0600; an existing file is replaced atomically)' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand backup" -l db -d 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand backup" -l env-file -d 'The .env file that may name ASPJWT_DB [default: ./.env when present]' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand backup" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand backup" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand backup" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand backup" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand backup" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand restore" -l db -d 'The database: a SQLite file or a postgres:// URL without a password [default: ASPJWT_DB from the environment or .env, else ./data/aspjwt.db]' -r
complete -c aspjwt -n "__fish_aspjwt_using_subcommand restore" -l env-file -d 'The .env file that may name ASPJWT_DB [default: ./.env when present]' -r -F
complete -c aspjwt -n "__fish_aspjwt_using_subcommand restore" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand restore" -l force -d 'Replace everything in a database that already has users'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand restore" -l revoke-sessions -d 'Restore every session as revoked: users log in again, and no session the backup holds (one since stolen, say) comes back'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand restore" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand restore" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand restore" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand restore" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand completions" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand completions" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand completions" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand completions" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand completions" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand man" -l color -d 'When to colour output: auto honours NO_COLOR, TERM=dumb and a non-terminal stdout' -r -f -a "auto\t''
always\t''
never\t''"
complete -c aspjwt -n "__fish_aspjwt_using_subcommand man" -l json -d 'Machine-readable JSON on stdout, nothing else there'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand man" -s q -l quiet -d 'Print only results and errors: no summaries, notices or warnings'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand man" -s h -l help -d 'Print help'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand man" -s V -l version -d 'Print version'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and not __fish_seen_subcommand_from generate rotate check decode verify mint serve health user sessions audit incident backup restore completions man help" -f -a "generate" -d 'Print fresh secrets from the OS CSPRNG'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and not __fish_seen_subcommand_from generate rotate check decode verify mint serve health user sessions audit incident backup restore completions man help" -f -a "rotate" -d 'Replace secrets in place across .env and compose files, all or nothing'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and not __fish_seen_subcommand_from generate rotate check decode verify mint serve health user sessions audit incident backup restore completions man help" -f -a "check" -d 'Validate a configuration offline: secrets, expiries, file permissions'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and not __fish_seen_subcommand_from generate rotate check decode verify mint serve health user sessions audit incident backup restore completions man help" -f -a "decode" -d 'Show a token\'s header, claims and times. Never checks the signature'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and not __fish_seen_subcommand_from generate rotate check decode verify mint serve health user sessions audit incident backup restore completions man help" -f -a "verify" -d 'Verify a token\'s signature and claims with the configured secret'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and not __fish_seen_subcommand_from generate rotate check decode verify mint serve health user sessions audit incident backup restore completions man help" -f -a "mint" -d 'Print a token signed exactly as the service signs it'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and not __fish_seen_subcommand_from generate rotate check decode verify mint serve health user sessions audit incident backup restore completions man help" -f -a "serve" -d 'Run the auth service (login, refresh with rotation, logout, token-info)'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and not __fish_seen_subcommand_from generate rotate check decode verify mint serve health user sessions audit incident backup restore completions man help" -f -a "health" -d 'Check a live service: liveness, configuration, and a full login-refresh-logout round'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and not __fish_seen_subcommand_from generate rotate check decode verify mint serve health user sessions audit incident backup restore completions man help" -f -a "user" -d 'Manage users (works with or without the service running)'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and not __fish_seen_subcommand_from generate rotate check decode verify mint serve health user sessions audit incident backup restore completions man help" -f -a "sessions" -d 'List or revoke sessions: the incident-response "clear all user sessions"'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and not __fish_seen_subcommand_from generate rotate check decode verify mint serve health user sessions audit incident backup restore completions man help" -f -a "audit" -d 'Read the audit log'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and not __fish_seen_subcommand_from generate rotate check decode verify mint serve health user sessions audit incident backup restore completions man help" -f -a "incident" -d 'Respond to a suspected token compromise in one go: rotate every secret, end every session, record the incident, reload the services, report who is affected and what looks suspicious'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and not __fish_seen_subcommand_from generate rotate check decode verify mint serve health user sessions audit incident backup restore completions man help" -f -a "backup" -d 'Take a consistent snapshot of the database (users with their password hashes, sessions, audit log, account throttles) into one checksummed file, written 0600'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and not __fish_seen_subcommand_from generate rotate check decode verify mint serve health user sessions audit incident backup restore completions man help" -f -a "restore" -d 'Load a backup into a database (SQLite or PostgreSQL) in one transaction'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and not __fish_seen_subcommand_from generate rotate check decode verify mint serve health user sessions audit incident backup restore completions man help" -f -a "completions" -d 'Print a shell completion script'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and not __fish_seen_subcommand_from generate rotate check decode verify mint serve health user sessions audit incident backup restore completions man help" -f -a "man" -d 'Print the man page (roff)'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and not __fish_seen_subcommand_from generate rotate check decode verify mint serve health user sessions audit incident backup restore completions man help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "add" -d 'Create a user; without --password-stdin a 20-character password is generated and printed once'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "list" -d 'List users'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "disable" -d 'Disable a user and end their sessions'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "enable" -d 'Enable a disabled user'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "passwd" -d 'Set a new password (from stdin) and end the user\'s sessions'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "role" -d 'Change a user\'s role and end their sessions'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and __fish_seen_subcommand_from user" -f -a "import" -d 'Import users with their password hashes (bcrypt from the CRM\'s Node backend, or argon2id) from a JSON array or a CSV file with a header; bcrypt hashes become argon2id at each user\'s next login'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "list" -d 'List live sessions, newest first'
complete -c aspjwt -n "__fish_aspjwt_using_subcommand help; and __fish_seen_subcommand_from sessions" -f -a "revoke" -d 'Revoke sessions: their refresh tokens stop at once, access tokens within 2 s'
