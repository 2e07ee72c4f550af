#!/usr/bin/env bash
# Runs every test through ctest. Usage: scripts/test.sh BUILD_DIR
# Starts a private PostgreSQL cluster (scripts/pg-test-server.sh) for the PostgreSQL tests and
# exports its DSN as DTX_PG_DSN, unless DTX_PG_DSN is already set (e.g. to "skip" or to a server
# of your own). The cluster is stopped and removed on exit.
set -euo pipefail
build=${1:-build}
here=$(cd "$(dirname "$0")" && pwd)

if [[ -z ${DTX_PG_DSN:-} ]]; then
  pgdir=$(mktemp -d /tmp/dtx-pg.XXXXXX)
  trap 'bash "$here/pg-test-server.sh" stop "$pgdir" || true; rm -rf "$pgdir"' EXIT
  DTX_PG_DSN=$(bash "$here/pg-test-server.sh" start "$pgdir")
  export DTX_PG_DSN
  echo "test.sh: PostgreSQL test server at $DTX_PG_DSN"
fi

cd "$build"
ctest --output-on-failure -j "$(nproc)" --timeout 900
