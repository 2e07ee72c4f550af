#!/usr/bin/env bash
# The bank demo (`make demo`): a private PostgreSQL and MariaDB on loopback, dtxd, and two account
# services ("pg-bank" on PostgreSQL, "maria-bank" on MariaDB, 5 accounts of 1000 each). It moves
# money between them in every mode (saga, tcc, xa, msg), including refused debits and a service
# killed while transfers are in flight, and prints the balances after each step. It exits non-zero
# if the bank invariant breaks: the total over both databases changes, an account goes negative,
# money stays frozen, an XA branch stays prepared, or a transaction does not finish.
#
# Usage: scripts/demo.sh BUILD_DIR [WORK_DIR]   (WORK_DIR, default ./demo-data, is wiped first)
# Everything started here is stopped on exit.
set -euo pipefail

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { printf '\n\033[31mdemo FAILED: %s\033[0m\n' "$*" >&2; exit 1; }

build=${1:-build}
work=${2:-$PWD/demo-data}
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$build" && pwd)

source "$here/bank-env.sh"

gids=()
# transfer FROM_URL MODE FROM TO AMOUNT: prints the service's answer, remembers the gid.
transfer() {
  local from_url=$1 mode=$2 from=$3 to=$4 amount=$5 answer
  answer=$(curl -sS -X POST "$from_url/transfer" \
    -d "{\"mode\":\"$mode\",\"from\":$from,\"to\":$to,\"amount\":$amount}" || true)
  printf '  %-4s %s account %s -> peer account %s, amount %5s: %s\n' "$mode" \
    "$( [[ $from_url == "$pg_url" ]] && echo pg-bank || echo maria-bank)" "$from" "$to" "$amount" \
    "$(jq -c '{result, gid, message}' <<<"$answer" 2>/dev/null || echo "$answer")"
  local gid
  gid=$(jq -r '.gid // empty' <<<"$answer" 2>/dev/null || true)
  [[ -n $gid ]] && gids+=("$gid")
  return 0
}

balances() {
  local pg maria
  pg=$(curl -fsS "$pg_url/balances") || fail "pg-bank /balances"
  maria=$(curl -fsS "$maria_url/balances") || fail "maria-bank /balances"
  printf '  %-10s %s  total %s  frozen %s\n' pg-bank "$(jq -c '[.accounts[].balance]' <<<"$pg")" \
    "$(jq .total <<<"$pg")" "$(jq .frozen <<<"$pg")"
  printf '  %-10s %s  total %s  frozen %s\n' maria-bank \
    "$(jq -c '[.accounts[].balance]' <<<"$maria")" "$(jq .total <<<"$maria")" \
    "$(jq .frozen <<<"$maria")"
  total=$(($(jq .total <<<"$pg") + $(jq .total <<<"$maria")))
  frozen=$(($(jq .frozen <<<"$pg") + $(jq .frozen <<<"$maria")))
  negative=$(jq -s '[.[].accounts[] | select(.balance < 0)] | length' <<<"$pg $maria")
  echo "  sum over both databases: $total"
}

# Waits (bounded) until every transaction started so far is succeed or failed in dtxd.
settle() {
  local gid status pending
  for _ in $(seq 1 150); do
    pending=0
    for gid in "${gids[@]}"; do
      status=$(curl -fsS "$dtxd_url/api/dtmsvr/query?gid=$gid" | jq -r '.transaction.status // "none"')
      [[ $status == succeed || $status == failed ]] || pending=$((pending + 1))
    done
    ((pending == 0)) && return 0
    sleep 0.2
  done
  fail "$pending transactions did not finish within 30 s"
}

check_invariant() {
  settle
  balances
  ((total == 10000)) || fail "total is $total, expected 10000"
  ((frozen == 0)) || fail "$frozen still frozen"
  ((negative == 0)) || fail "$negative accounts negative"
  echo "  invariant holds: total 10000, nothing frozen, no negative account"
}

say "initial balances"
balances

say "1. a successful transfer in every mode (pg-bank -> maria-bank, and back)"
for mode in saga tcc xa msg; do transfer "$pg_url" "$mode" 1 1 100; done
for mode in saga tcc xa msg; do transfer "$maria_url" "$mode" 2 2 50; done
check_invariant

say "2. refused debits: 5000 from an account holding about 1000, in every mode"
for mode in saga tcc xa msg; do transfer "$pg_url" "$mode" 3 3 5000; done
check_invariant

say "3. maria-bank killed (kill -9); transfers to it meanwhile; then it restarts"
kill -9 "$maria_pid"
wait "$maria_pid" 2>/dev/null || true
for mode in saga tcc xa msg; do transfer "$pg_url" "$mode" 4 4 70; done
echo "  (saga and msg wait for maria-bank; tcc and xa could not reach it and were rolled back)"
start_maria_bank
echo "  maria-bank restarted"
check_invariant

say "4. dtxd killed (kill -9) and restarted with transfers around it"
for mode in saga tcc xa msg; do transfer "$maria_url" "$mode" 5 5 30; done
kill -9 "$dtxd_pid"
wait "$dtxd_pid" 2>/dev/null || true
start_dtxd
for mode in saga tcc xa msg; do transfer "$pg_url" "$mode" 5 5 20; done
check_invariant

prepared=$(($(curl -fsS "$pg_url/xa/prepared" | jq '.prepared | length') +
  $(curl -fsS "$maria_url/xa/prepared" | jq '.prepared | length')))
((prepared == 0)) || fail "$prepared XA branches left prepared"
say "demo passed: ${#gids[@]} transfers, balances conserved, no XA branch left prepared"
echo "logs: $work/*.log"
