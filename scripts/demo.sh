#!/usr/bin/env bash
# The main job end to end on the embedded defaults: new secrets, a checked
# configuration, a probe user, the service on loopback with SQLite, the deep health
# check, a clean stop. Everything lives in ./demo (git-ignored). Exit 0 only when
# every step worked.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/debug/aspjwt}
DIR=${DEMO_DIR:-demo}
# The folder is wiped first: only when it is new, empty, or an earlier demo's.
if [ -e "$DIR" ] && [ ! -f "$DIR/.aspjwt-demo" ] && [ -n "$(ls -A "$DIR" 2>/dev/null || echo x)" ]; then
  echo "demo: $DIR exists and was not made by a demo; refusing to delete it (remove it yourself or pick another DEMO_DIR)" >&2
  exit 2
fi
rm -rf "$DIR"
mkdir -p "$DIR"
touch "$DIR/.aspjwt-demo"
PID=
cleanup() { [ -n "$PID" ] && kill "$PID" 2>/dev/null || true; }
trap cleanup EXIT

# Colour as the binary does it: only on a terminal, never with NO_COLOR set.
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ] && [ "${TERM:-}" != dumb ]; then
  BOLD=$'\033[1m' GREEN=$'\033[1;32m' RESET=$'\033[0m'
else
  BOLD= GREEN= RESET=
fi
step() { printf '\n%s== %s%s\n' "$BOLD" "$*" "$RESET"; }

step "write a new .env (mode 0600) with fresh secrets"
"$BIN" rotate --env-file "$DIR/.env" --create

step "check it"
"$BIN" check --env-file "$DIR/.env" --strict

step "create a probe user with a generated password (kept in $DIR/probe.pw, mode 0600)"
"$BIN" generate --name PROBE --bytes 18 --url-safe | cut -d= -f2- > "$DIR/probe.pw"
chmod 600 "$DIR/probe.pw"
"$BIN" user add --email probe@aspjwt.local --name "Health probe" --role support --password-stdin --db "$DIR/aspjwt.db" < "$DIR/probe.pw"

step "start the service on loopback (SQLite in $DIR/aspjwt.db)"
"$BIN" serve --bind 127.0.0.1:0 --env-file "$DIR/.env" --db "$DIR/aspjwt.db" > "$DIR/serve.log" 2> "$DIR/serve.err" &
PID=$!
ADDR=
for _ in $(seq 1 200); do
  ADDR=$(sed -n 's/.*"event":"listening","addr":"\([^"]*\)".*/\1/p' "$DIR/serve.log" | head -1)
  [ -n "$ADDR" ] && break
  kill -0 "$PID" 2>/dev/null || { cat "$DIR/serve.err" >&2; exit 1; }
  sleep 0.05
done
[ -n "$ADDR" ] || { echo "the service did not start" >&2; cat "$DIR/serve.err" >&2; exit 1; }
echo "listening on http://$ADDR"

step "health check: configuration, liveness, login → token-info → refresh → replay → logout"
"$BIN" health --url "http://$ADDR" --env-file "$DIR/.env" --email probe@aspjwt.local --password-file "$DIR/probe.pw"

step "stop the service cleanly"
kill -TERM "$PID"
wait "$PID"
PID=
echo "stopped (exit 0)"

printf '\n%sdemo OK%s: everything it made is in %s/\n' "$GREEN" "$RESET" "$DIR"
