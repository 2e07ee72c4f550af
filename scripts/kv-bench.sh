#!/usr/bin/env bash
# dtxkv beside etcd 3.4 on this machine (issue 4, section 7; docs/benchmarks.md "dtxkv vs etcd"):
# starts a 3-member etcd cluster (scripts/etcd-cluster.sh) and a 3-node dtxkv cluster
# (scripts/kv-cluster.sh) in a temporary directory, runs `dtxbench kv` at 16 and 256 clients,
# `dtxbench kv-failover`, and `dtxbench kv-load` on a fresh dtxkv cluster, and stops everything
# on exit. etcd's failover is measured the same way. Without a dtxkv binary in BUILD_DIR
# (tools/dtxkv/dtxkv) only the etcd side runs.
#
# Usage: scripts/kv-bench.sh BUILD_DIR
# Environment: KV_SECONDS (per run, default 10), KV_ROUNDS (failover rounds, default 5),
#              KV_KEYS (kv-load, default 1000000), KV_LOAD_CLIENTS (default 64),
#              KV_KEEP=1 keeps the working directory (logs, data).
set -euo pipefail

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { printf '\n\033[31mkv-bench FAILED: %s\033[0m\n' "$*" >&2; exit 1; }

[[ $# -eq 1 ]] || { echo "usage: $0 BUILD_DIR" >&2; exit 2; }
here=$(cd "$(dirname "$0")" && pwd)
build=$(cd "$1" && pwd) || fail "no build directory $1"
bench=$build/tools/dtxbench/dtxbench
[[ -x $bench ]] || fail "$bench is missing; build first"
seconds=${KV_SECONDS:-10}
rounds=${KV_ROUNDS:-5}
keys=${KV_KEYS:-1000000}
load_clients=${KV_LOAD_CLIENTS:-64}

work=$(mktemp -d /tmp/dtx-kvbench.XXXXXX)
failed=()  # steps that reported a failure; the others still run
kv_dirs=()
cleanup() {
  for d in ${kv_dirs[@]+"${kv_dirs[@]}"}; do bash "$here/kv-cluster.sh" stop "$d" >/dev/null 2>&1 || true; done
  bash "$here/etcd-cluster.sh" stop "$work/etcd" >/dev/null 2>&1 || true
  if [[ ${KV_KEEP:-0} == 1 ]]; then echo "kept $work"; else rm -rf "$work"; fi
}
trap cleanup EXIT

# "etcd|node <id> <url> pid <pid>" lines -> comma-separated URLs / pids.
urls_of() { awk '$4 == "pid" { print $3 }' | paste -sd, -; }
pids_of() { awk '$4 == "pid" { print $5 }' | paste -sd, -; }

say "starting etcd 3.4 (3 members, fsync on)"
etcd_out=$(bash "$here/etcd-cluster.sh" start "$work/etcd") || fail "etcd did not start"
echo "$etcd_out"
etcd_urls=$(urls_of <<<"$etcd_out")
etcd_pids=$(pids_of <<<"$etcd_out")

dtxkv_urls=""
dtxkv_pids=""
if [[ -x $build/tools/dtxkv/dtxkv && -f $here/kv-cluster.sh ]]; then
  say "starting dtxkv (3 nodes)"
  kv_dirs+=("$work/dtxkv")
  kv_out=$(bash "$here/kv-cluster.sh" start "$build" "$work/dtxkv") || fail "dtxkv did not start"
  echo "$kv_out"
  dtxkv_urls=$(urls_of <<<"$kv_out")
  dtxkv_pids=$(pids_of <<<"$kv_out")
  [[ -n $dtxkv_urls ]] || fail "kv-cluster.sh printed no 'node ID URL pid PID' lines"
else
  say "$build/tools/dtxkv/dtxkv is not built: etcd only"
fi

systems=(--etcd "$etcd_urls")
[[ -n $dtxkv_urls ]] && systems+=(--dtxkv "$dtxkv_urls")
for clients in 16 256; do
  say "dtxbench kv, $clients clients"
  "$bench" kv "${systems[@]}" --clients "$clients" --seconds "$seconds" || failed+=("kv $clients clients")
done

say "dtxbench kv-failover --etcd, $rounds rounds"
"$bench" kv-failover --etcd "$etcd_urls" --pids "$etcd_pids" --rounds "$rounds" \
  --restart-cmd "bash $here/etcd-cluster.sh restart $work/etcd {id}" || failed+=("kv-failover --etcd")
bash "$here/etcd-cluster.sh" stop "$work/etcd" >/dev/null

if [[ -n $dtxkv_urls ]]; then
  say "dtxbench kv-failover, $rounds rounds"
  "$bench" kv-failover --dtxkv "$dtxkv_urls" --pids "$dtxkv_pids" --rounds "$rounds" \
    --restart-cmd "bash $here/kv-cluster.sh restart $work/dtxkv {id}" || failed+=("kv-failover --dtxkv")

  say "dtxbench kv-load, $keys keys, on a fresh dtxkv cluster"
  bash "$here/kv-cluster.sh" stop "$work/dtxkv" >/dev/null
  kv_dirs+=("$work/dtxkv-load")
  kv_out=$(bash "$here/kv-cluster.sh" start "$build" "$work/dtxkv-load") || fail "dtxkv did not start"
  echo "$kv_out"
  "$bench" kv-load --dtxkv "$(urls_of <<<"$kv_out")" --pids "$(pids_of <<<"$kv_out")" \
    --keys "$keys" --clients "$load_clients" || failed+=("kv-load")
  du -sh "$work/dtxkv-load" | awk '{ print "dtxkv data on disk after the load: " $1 }'
fi
((${#failed[@]} == 0)) || fail "these steps reported a failure (see above): ${failed[*]}"
say "kv-bench done"
