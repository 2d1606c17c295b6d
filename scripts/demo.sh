#!/usr/bin/env bash
# The main job end to end on the embedded defaults. Everything it creates lives in
# ./demo (git-ignored). Exit 0 only when every step worked.
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${BIN:-target/debug/aspjwt}
DIR=demo
rm -rf "$DIR"
mkdir -p "$DIR"

step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

step "write a new .env (mode 0600) with fresh secrets"
"$BIN" rotate --env-file "$DIR/.env" --create

step "check it"
"$BIN" check --env-file "$DIR/.env" --strict

step "rotate again, dry run: what would change, values masked"
"$BIN" rotate --env-file "$DIR/.env" --dry-run

step "rotate for real, keeping a backup"
( cd "$DIR" && "../$BIN" rotate --env-file .env --backup )
"$BIN" check --env-file "$DIR/.env" --strict

printf '\n\033[1;32mdemo OK\033[0m: files in %s/\n' "$DIR"
