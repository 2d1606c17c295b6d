#!/usr/bin/env bash
# The PostgreSQL the store and scale-out tests use: a server on 127.0.0.1:5432 with
# trust authentication for local connections and a database `test` to connect to.
# Each test then creates and drops a database of its own.
#
# - ASPJWT_TEST_PG set: the tests use that server; nothing is done here.
# - A server already answers on 127.0.0.1:5432: it is used as it is.
# - A cluster on port 5432 exists but is stopped: it is started.
# - No PostgreSQL server at all: Debian's `postgresql` is installed with apt-get, and
#   the cluster on port 5432 (the one the package creates, or a new one) is set up for
#   tests: trust auth for local connections, listening on 127.0.0.1 only, TLS with a
#   certificate for `localhost` made here. Then it is started.
# Runs as root, as every machine of this project does.
set -euo pipefail

HOST=127.0.0.1
PORT=5432

if [ -n "${ASPJWT_TEST_PG:-}" ]; then
  exit 0
fi

ready() { command -v pg_isready >/dev/null && pg_isready -q -h "$HOST" -p "$PORT" 2>/dev/null; }

wait_ready() {
  for _ in $(seq 1 60); do
    ready && return 0
    sleep 0.5
  done
  echo "PostgreSQL did not answer on $HOST:$PORT; set ASPJWT_TEST_PG to an admin URL of a server the tests may use" >&2
  return 1
}

ensure_test_db() {
  local exists
  exists=$(psql -h "$HOST" -p "$PORT" -U postgres -d postgres -w -Atc "SELECT 1 FROM pg_database WHERE datname = 'test'")
  if [ "$exists" != 1 ]; then
    psql -h "$HOST" -p "$PORT" -U postgres -d postgres -w -qc "CREATE DATABASE test"
  fi
}

# The newest installed version that has a server (a newer client alone does not count).
server_version() {
  local bin
  bin=$(ls -d /usr/lib/postgresql/*/bin/postgres 2>/dev/null | sort -V | tail -1)
  [ -n "$bin" ] && basename "$(dirname "$(dirname "$bin")")"
}

# Sets up cluster $1 $2 for the tests: loopback only, trust for local connections, a
# certificate for localhost that rustls accepts (an end entity: CA:FALSE).
configure_for_tests() {
  local version=$1 name=$2
  local conf=/etc/postgresql/$version/$name
  local data
  data=$(pg_lsclusters -h | awk -v v="$version" -v n="$name" '$1 == v && $2 == n { print $6 }')
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj /CN=localhost \
    -addext subjectAltName=DNS:localhost -addext basicConstraints=critical,CA:FALSE \
    -keyout "$data/aspjwt-test.key" -out "$data/aspjwt-test.pem" 2>/dev/null
  chown postgres:postgres "$data/aspjwt-test.key" "$data/aspjwt-test.pem"
  chmod 600 "$data/aspjwt-test.key"
  chmod 644 "$data/aspjwt-test.pem"
  mkdir -p "$conf/conf.d"
  cat > "$conf/conf.d/aspjwt-test.conf" <<EOF
listen_addresses = '$HOST'
port = $PORT
ssl = on
ssl_cert_file = '$data/aspjwt-test.pem'
ssl_key_file = '$data/aspjwt-test.key'
EOF
  cat > "$conf/pg_hba.conf" <<EOF
# Test server made by aspjwt's scripts/test-postgres.sh: trust for local connections only.
local all all trust
host all all 127.0.0.1/32 trust
host all all ::1/128 trust
EOF
}

if ready; then
  ensure_test_db
  exit 0
fi

INSTALLED=no
if ! command -v pg_createcluster >/dev/null || [ -z "$(server_version)" ]; then
  echo "installing PostgreSQL (Debian's postgresql package)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql openssl >/dev/null
  INSTALLED=yes
fi

VERSION=$(server_version)
CLUSTER=$(pg_lsclusters -h 2>/dev/null | awk -v p="$PORT" '$3 == p { print $1 " " $2; exit }')

if [ -z "$CLUSTER" ]; then
  NAME=main
  if [ -d "/etc/postgresql/$VERSION/main" ]; then
    NAME=aspjwt-test # `main` exists on another port: leave it alone
  fi
  echo "creating PostgreSQL $VERSION cluster '$NAME' on $HOST:$PORT (trust auth for local connections)"
  pg_createcluster --port "$PORT" --start-conf manual "$VERSION" "$NAME" -- --auth=trust >/dev/null
  CLUSTER="$VERSION $NAME"
  configure_for_tests $CLUSTER
elif [ "$INSTALLED" = yes ]; then
  # The package just created this cluster (password auth on TCP): it is ours to set up.
  echo "setting up the new PostgreSQL cluster $CLUSTER for the tests (trust auth for local connections)"
  configure_for_tests $CLUSTER
fi

# shellcheck disable=SC2086
if pg_ctlcluster --skip-systemctl-redirect $CLUSTER status >/dev/null 2>&1; then
  if [ "$INSTALLED" = yes ]; then
    echo "restarting PostgreSQL cluster $CLUSTER"
    pg_ctlcluster --skip-systemctl-redirect $CLUSTER restart
  fi
else
  echo "starting PostgreSQL cluster $CLUSTER"
  pg_ctlcluster --skip-systemctl-redirect $CLUSTER start
fi
wait_ready
ensure_test_db
