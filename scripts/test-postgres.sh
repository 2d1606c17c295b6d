#!/usr/bin/env bash
# The PostgreSQL the store and scale-out tests use: a server on 127.0.0.1:5432 with
# trust authentication for local connections and a database `test` to connect to.
# Each test then creates and drops a database of its own.
#
# - ASPJWT_TEST_PG set: the tests use that server; nothing is done here.
# - A server already answers on 127.0.0.1:5432: it is used as it is.
# - A cluster exists but is stopped: it is started.
# - No PostgreSQL at all: Debian's `postgresql` is installed with apt-get, and a cluster
#   is created (trust auth for local connections, listening on 127.0.0.1 only, TLS with
#   a certificate for `localhost` made here) and started.
# Runs as root, as every machine of this project does.
set -euo pipefail

HOST=127.0.0.1
PORT=5432

if [ -n "${ASPJWT_TEST_PG:-}" ]; then
  exit 0
fi

ready() { pg_isready -q -h "$HOST" -p "$PORT" 2>/dev/null; }

wait_ready() {
  for _ in $(seq 1 60); do
    ready && return 0
    sleep 0.5
  done
  echo "PostgreSQL did not come up on $HOST:$PORT" >&2
  return 1
}

ensure_test_db() {
  local exists
  exists=$(psql -h "$HOST" -p "$PORT" -U postgres -d postgres -Atc "SELECT 1 FROM pg_database WHERE datname = 'test'")
  if [ "$exists" != 1 ]; then
    psql -h "$HOST" -p "$PORT" -U postgres -d postgres -qc "CREATE DATABASE test"
  fi
}

if ready; then
  ensure_test_db
  exit 0
fi

if ! command -v pg_createcluster >/dev/null || [ -z "$(ls /usr/lib/postgresql/*/bin/postgres 2>/dev/null)" ]; then
  echo "installing PostgreSQL (Debian's postgresql package)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql openssl >/dev/null
fi

VERSION=$(ls /usr/lib/postgresql | sort -V | tail -1)
CLUSTER=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PORT" '$3 == p { print $1 " " $2; exit }')

if [ -z "$CLUSTER" ]; then
  echo "creating PostgreSQL $VERSION cluster 'main' on $HOST:$PORT (trust auth for local connections)"
  pg_createcluster --port "$PORT" --start-conf manual "$VERSION" main -- --auth=trust >/dev/null
  CONF=/etc/postgresql/$VERSION/main
  DATA=/var/lib/postgresql/$VERSION/main
  # A certificate for `localhost`, so the sslmode=require tests can verify the server.
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost \
    -keyout "$DATA/aspjwt-test.key" -out "$DATA/aspjwt-test.pem" 2>/dev/null
  chown postgres:postgres "$DATA/aspjwt-test.key" "$DATA/aspjwt-test.pem"
  chmod 600 "$DATA/aspjwt-test.key"
  cat > "$CONF/conf.d/aspjwt-test.conf" <<EOF
listen_addresses = '$HOST'
port = $PORT
ssl = on
ssl_cert_file = '$DATA/aspjwt-test.pem'
ssl_key_file = '$DATA/aspjwt-test.key'
EOF
  cat > "$CONF/pg_hba.conf" <<EOF
# Test server: trust for local connections only.
local all all trust
host all all 127.0.0.1/32 trust
host all all ::1/128 trust
EOF
  CLUSTER="$VERSION main"
fi

echo "starting PostgreSQL cluster $CLUSTER"
# shellcheck disable=SC2086
pg_ctlcluster --skip-systemctl-redirect $CLUSTER start
wait_ready
ensure_test_db
