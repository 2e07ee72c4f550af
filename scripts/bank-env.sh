# Shared by scripts/demo.sh and scripts/bank-bench.sh (sourced, not run): starts a private
# PostgreSQL and MariaDB, dtxd and the two bank services under WORK_DIR, and stops them on exit.
# The caller sets: here (scripts/), build (absolute build dir), work (WORK_DIR), and optionally
# bank_flags (extra bank-service flags) and dtxd_flags (extra dtxd flags), and defines say() and
# fail(). Afterwards: pg_url, maria_url, dtxd_url, start_dtxd, start_pg_bank, start_maria_bank.
dtxd_bin=$build/src/server/dtxd
bank_bin=$build/examples/bank/bank-service
for b in "$dtxd_bin" "$bank_bin"; do
  [[ -x $b ]] || { echo "$0: $b is missing; build first" >&2; exit 1; }
done
command -v jq >/dev/null || { echo "$0: jq is missing (scripts/install-deps.sh installs it)" >&2; exit 1; }
bank_flags=(${bank_flags[@]+"${bank_flags[@]}"})
dtxd_flags=(${dtxd_flags[@]+"${dtxd_flags[@]}"})

rm -rf "$work"
mkdir -p "$work"
work=$(cd "$work" && pwd)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  bash "$here/mariadb-test-server.sh" stop "$work/mariadb" >/dev/null 2>&1 || true
  bash "$here/pg-test-server.sh" stop "$work/pg" >/dev/null 2>&1 || true
}
trap cleanup EXIT

source "$here/common.sh"  # free_port

# Waits (bounded) until URL answers 200.
wait_http() {
  local url=$1 what=$2
  for _ in $(seq 1 100); do
    curl -fsS -o /dev/null "$url" 2>/dev/null && return 0
    sleep 0.1
  done
  fail "$what did not answer at $url"
}

say "starting PostgreSQL and MariaDB on 127.0.0.1"
pg_dsn=$(bash "$here/pg-test-server.sh" start "$work/pg")
maria_dsn=$(bash "$here/mariadb-test-server.sh" start "$work/mariadb")
echo "PostgreSQL: $pg_dsn"
echo "MariaDB:    $maria_dsn"

dtxd_port=$(free_port)
dtxd_url=http://127.0.0.1:$dtxd_port
start_dtxd() {
  "$dtxd_bin" --listen "127.0.0.1:$dtxd_port" --data-dir "$work/dtxd" --retry-interval-ms 200 \
    --max-retry-interval-ms 1000 --prepared-timeout-ms 5000 --msg-timeout-ms 5000 \
    --wait-result-timeout-ms 2000 ${dtxd_flags[@]+"${dtxd_flags[@]}"} >>"$work/dtxd.log" 2>&1 &
  dtxd_pid=$!
  pids+=("$dtxd_pid")
  wait_http "$dtxd_url/api/ping" dtxd
}
say "starting dtxd at $dtxd_url"
start_dtxd

pg_port=$(free_port)
maria_port=$(free_port)
pg_url=http://127.0.0.1:$pg_port
maria_url=http://127.0.0.1:$maria_port
start_pg_bank() {
  "$bank_bin" --name pg-bank --db postgres --dsn "$pg_dsn" --port "$pg_port" --dtxd "$dtxd_url" \
    --peer "$maria_url" --xa-recovery-interval-s 1 ${bank_flags[@]+"${bank_flags[@]}"} >>"$work/pg-bank.log" 2>&1 &
  pg_pid=$!
  pids+=("$pg_pid")
  wait_http "$pg_url/health" pg-bank
}
start_maria_bank() {
  "$bank_bin" --name maria-bank --db mariadb --dsn "$maria_dsn" --port "$maria_port" \
    --dtxd "$dtxd_url" --peer "$pg_url" --xa-recovery-interval-s 1 ${bank_flags[@]+"${bank_flags[@]}"} \
    >>"$work/maria-bank.log" 2>&1 &
  maria_pid=$!
  pids+=("$maria_pid")
  wait_http "$maria_url/health" maria-bank
}
say "starting the account services: pg-bank at $pg_url, maria-bank at $maria_url"
start_pg_bank
start_maria_bank

