#!/usr/bin/env bash
# The transfer benchmark of issue 3: the bank example's two-database transfer (PostgreSQL ->
# MariaDB; two SQL statements per branch, the barrier on) without dtx ("direct") and through dtxd
# in each mode, in one run, with the ratio coordinated / direct. Starts its own servers like
# scripts/demo.sh and stops them on exit.
#
# Usage: scripts/bank-bench.sh BUILD_DIR [dtxbench transfer options...]
#   e.g. scripts/bank-bench.sh build --concurrency 16 --seconds 10
set -euo pipefail

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { printf '\n\033[31mbank-bench FAILED: %s\033[0m\n' "$*" >&2; exit 1; }

build=${1:-build}
shift || true
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$build" && pwd)
work=$(mktemp -d /tmp/dtx-bankbench.XXXXXX)
accounts=1000
# Each /transfer holds a worker while it waits; half the workers stay free for branch calls, so
# keep BANK_WORKERS above twice the concurrency (each worker holds up to 3 database connections).
bank_flags=(--accounts "$accounts" --initial-balance 1000000000 --workers "${BANK_WORKERS:-40}")
dtxd_flags=(--log-level warn)

source "$here/bank-env.sh"
trap 'cleanup; rm -rf "$work"' EXIT

say "dtxbench transfer"
"$build/tools/dtxbench/dtxbench" transfer --dtxd "$dtxd_url" --dtxd-pid "$dtxd_pid" \
  --bank "$pg_url" --accounts "$accounts" "$@"
