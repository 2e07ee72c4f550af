#!/usr/bin/env bash
# Runs every test through ctest. Usage: scripts/test.sh BUILD_DIR
# Starts a private PostgreSQL cluster (scripts/pg-test-server.sh) and a private MariaDB server
# (scripts/mariadb-test-server.sh) for the database tests and exports their DSNs as DTX_PG_DSN and
# DTX_MARIADB_DSN, unless the variable is already set (e.g. to "skip" or to a server of your own).
# The servers are stopped and removed on exit.
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)

pgdir=""
mdbdir=""
cleanup() {
  if [[ -n $pgdir ]]; then bash "$here/pg-test-server.sh" stop "$pgdir" || true; rm -rf "$pgdir"; fi
  if [[ -n $mdbdir ]]; then
    bash "$here/mariadb-test-server.sh" stop "$mdbdir" || true
    rm -rf "$mdbdir"
  fi
}
trap cleanup EXIT

if [[ -z ${DTX_PG_DSN:-} ]]; then
  pgdir=$(mktemp -d /tmp/dtx-pg.XXXXXX)
  DTX_PG_DSN=$(bash "$here/pg-test-server.sh" start "$pgdir")
  export DTX_PG_DSN
  echo "test.sh: PostgreSQL test server at $DTX_PG_DSN"
fi

if [[ -z ${DTX_MARIADB_DSN:-} ]]; then
  mdbdir=$(mktemp -d /tmp/dtx-mdb.XXXXXX)
  DTX_MARIADB_DSN=$(bash "$here/mariadb-test-server.sh" start "$mdbdir")
  export DTX_MARIADB_DSN
  echo "test.sh: MariaDB test server at $DTX_MARIADB_DSN"
fi

cd "$build"
ctest --output-on-failure -j "$(nproc)" --timeout 900
