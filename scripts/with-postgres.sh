#!/usr/bin/env bash
# Runs a command with a throwaway PostgreSQL server on a free loopback port,
# exported as AGYN_TEST_POSTGRES_URL. The server and its files are removed
# when the command ends. Without PostgreSQL binaries the command runs alone
# (the PostgreSQL test cases are then reported as ignored, or the tests fail
# to build under AGYN_TEST_REQUIRE_ALL=1). With the binaries but without this
# script, each PostgreSQL case starts a throwaway server of its own.
set -euo pipefail

pg_bin=""
for dir in /usr/lib/postgresql/*/bin; do
  [ -x "$dir/initdb" ] && pg_bin="$dir"
done
if [ -z "$pg_bin" ] || [ -n "${AGYN_TEST_POSTGRES_URL:-}" ]; then
  [ -z "$pg_bin" ] && echo "with-postgres: no PostgreSQL server binaries found; running without" >&2
  exec "$@"
fi

as_pg=()
if [ "$(id -u)" = 0 ]; then
  # PostgreSQL refuses to run as root.
  as_pg=(runuser -u postgres --)
fi

dir=$(mktemp -d /tmp/agyn-pg.XXXXXX)
chmod 755 "$dir"
[ ${#as_pg[@]} -gt 0 ] && chown postgres "$dir"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')

cleanup() {
  "${as_pg[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap cleanup EXIT

"${as_pg[@]}" "$pg_bin/initdb" -D "$dir/data" -A trust -U agyn >/dev/null
"${as_pg[@]}" "$pg_bin/pg_ctl" -D "$dir/data" -l "$dir/log" -w \
  -o "-p $port -k $dir -c listen_addresses=127.0.0.1 -c max_connections=300 -c fsync=on" start >/dev/null
export AGYN_TEST_POSTGRES_URL="postgres://agyn@127.0.0.1:$port/postgres"
export AGYN_TEST_POSTGRES_DIR="$dir/data"
export AGYN_TEST_POSTGRES_BIN="$pg_bin"
echo "with-postgres: PostgreSQL on 127.0.0.1:$port" >&2
"$@"
