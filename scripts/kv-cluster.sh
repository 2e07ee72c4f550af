#!/usr/bin/env bash
# A local dtxkv cluster of 3 nodes on 127.0.0.1 (src/kv/node.h has the HTTP API).
#
#   kv-cluster.sh start BUILD_DIR DATA_DIR [EXTRA dtxkv FLAGS...]
#       starts nodes 1..3 (ports picked free), waits until every node answers /v1/status and
#       they agree on a leader, prints "node ID URL pid PID" per node. Logs: DATA_DIR/nodeID.log.
#   kv-cluster.sh stop DATA_DIR          SIGTERM every node, wait (SIGKILL after 10 s)
#   kv-cluster.sh kill DATA_DIR ID       SIGKILL node ID (a crash)
#   kv-cluster.sh restart DATA_DIR ID    start node ID again (after kill) with the same ports
#   kv-cluster.sh status DATA_DIR        each node's /v1/status
#   kv-cluster.sh leader DATA_DIR        the id of the leader (fails if none within 10 s)
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
source "$here/common.sh"

usage() { sed -n '2,12p' "$0" >&2; exit 2; }
die() { echo "kv-cluster.sh: $*" >&2; exit 1; }
[[ $# -ge 2 ]] || usage
cmd=$1
command -v curl >/dev/null || die "curl is missing (scripts/install-deps.sh installs it)"
command -v jq >/dev/null || die "jq is missing (scripts/install-deps.sh installs it)"

load() {
  data=$(cd "$1" 2>/dev/null && pwd) || die "no cluster in $1"
  [[ -f $data/cluster.env ]] || die "no cluster in $data (cluster.env missing)"
  source "$data/cluster.env"
}

pid_of() { cat "$data/node$1.pid" 2>/dev/null || true; }
alive() { local p; p=$(pid_of "$1"); [[ -n $p ]] && kill -0 "$p" 2>/dev/null; }

launch() {
  local id=$1
  alive "$id" && die "node $id is running (pid $(pid_of "$id"))"
  local args=(--id "$id" --data-dir "$data/node$id")
  for m in "${members[@]}"; do args+=(--member "$m"); done
  nohup "$bin" "${args[@]}" ${extra_flags[@]+"${extra_flags[@]}"} >>"$data/node$id.log" 2>&1 &
  echo $! >"$data/node$id.pid"
}

url_of() { echo "http://127.0.0.1:${http_ports[$(($1 - 1))]}"; }

# Waits until node $1 answers /v1/status (bounded: 10 s).
wait_up() {
  for _ in $(seq 1 100); do
    curl -sf -m 1 "$(url_of "$1")/v1/status" >/dev/null 2>&1 && return 0
    alive "$1" || die "node $1 exited; see $data/node$1.log"
    sleep 0.1
  done
  die "node $1 did not answer within 10 s; see $data/node$1.log"
}

# Prints the leader id once every running node names the same one (bounded: 10 s).
wait_leader() {
  local id lead seen
  for _ in $(seq 1 100); do
    seen=""
    for id in 1 2 3; do
      alive "$id" || continue
      lead=$(curl -sf -m 1 "$(url_of "$id")/v1/status" 2>/dev/null | jq -r '.leader // 0') || lead=0
      if [[ $lead == 0 ]] || { [[ -n $seen ]] && [[ $seen != "$lead" ]]; }; then seen=x; break; fi
      seen=$lead
    done
    if [[ -n $seen && $seen != x ]]; then echo "$seen"; return 0; fi
    sleep 0.1
  done
  die "no leader agreed on within 10 s; see $data/node*.log"
}

case $cmd in
  start)
    [[ $# -ge 3 ]] || usage
    build=$(cd "$2" && pwd) || die "no build dir $2"
    bin=$build/tools/dtxkv/dtxkv
    [[ -x $bin ]] || die "$bin is missing; build first"
    mkdir -p "$3"
    data=$(cd "$3" && pwd)
    [[ -f $data/cluster.env ]] && die "$data already holds a cluster (stop it, or remove the directory)"
    shift 3
    extra_flags=("$@")
    peer_ports=() http_ports=() members=()
    for id in 1 2 3; do
      peer_ports+=("$(free_port)")
      http_ports+=("$(free_port)")
      members+=("$id,127.0.0.1:${peer_ports[-1]},127.0.0.1:${http_ports[-1]}")
    done
    {
      echo "bin=$(printf %q "$bin")"
      echo "members=($(printf '%q ' "${members[@]}"))"
      echo "http_ports=(${http_ports[*]})"
      echo "extra_flags=(${extra_flags[@]+$(printf '%q ' "${extra_flags[@]}")})"
    } >"$data/cluster.env"
    for id in 1 2 3; do launch "$id"; done
    for id in 1 2 3; do wait_up "$id"; done
    wait_leader >/dev/null
    for id in 1 2 3; do echo "node $id $(url_of "$id") pid $(pid_of "$id")"; done
    ;;
  stop)
    load "$2"
    for id in 1 2 3; do alive "$id" && kill -TERM "$(pid_of "$id")" 2>/dev/null || true; done
    for id in 1 2 3; do
      for _ in $(seq 1 100); do alive "$id" || break; sleep 0.1; done
      alive "$id" && kill -KILL "$(pid_of "$id")" 2>/dev/null || true
      rm -f "$data/node$id.pid"
    done
    rm -f "$data/cluster.env"
    ;;
  kill)
    [[ $# -eq 3 ]] || usage
    load "$2"
    [[ $3 =~ ^[123]$ ]] || die "node id must be 1, 2 or 3"
    alive "$3" || die "node $3 is not running"
    p=$(pid_of "$3")
    kill -KILL "$p"
    while kill -0 "$p" 2>/dev/null; do sleep 0.05; done
    ;;
  restart)
    [[ $# -eq 3 ]] || usage
    load "$2"
    [[ $3 =~ ^[123]$ ]] || die "node id must be 1, 2 or 3"
    launch "$3"
    wait_up "$3"
    echo "node $3 $(url_of "$3") pid $(pid_of "$3")"
    ;;
  status)
    load "$2"
    for id in 1 2 3; do
      echo "node $id: $(curl -sf -m 1 "$(url_of "$id")/v1/status" 2>/dev/null || echo down)"
    done
    ;;
  leader)
    load "$2"
    wait_leader
    ;;
  *) usage ;;
esac
