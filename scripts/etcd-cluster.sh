#!/usr/bin/env bash
# A local 3-member etcd 3.4 cluster on 127.0.0.1 for the dtxkv comparison (dtxbench kv).
# fsync stays on (etcd's default; --unsafe-no-fsync is never passed).
#
# Usage:
#   scripts/etcd-cluster.sh start DIR        starts e1..e3 with data under DIR, waits (bounded)
#                                            until every member reports healthy and prints one
#                                            line per member: `etcd <i> <client-url> pid <pid>`
#   scripts/etcd-cluster.sh restart DIR I    starts member I again on its data dir (after a kill)
#   scripts/etcd-cluster.sh stop DIR         stops every member (TERM, then KILL after 10 s)
#
# DIR holds e<i>/ (data), e<i>.log, e<i>.pid and ports (client and peer port of each member).
set -euo pipefail

etcd_bin=${ETCD_BIN:-/usr/bin/etcd}
usage() { echo "usage: $0 start DIR | restart DIR I | stop DIR" >&2; exit 2; }
die() { echo "etcd-cluster: $*" >&2; exit 1; }

[[ $# -ge 2 ]] || usage
cmd=$1
dir=$2

# Sets `port` to a port nobody listens on that this cluster has not taken yet. Below 32768, out
# of Linux's default range of ephemeral ports, so outgoing connections do not take it meanwhile.
# (No $(...) here: the list of taken ports must survive the call.)
free_port() {
  local p
  for _ in $(seq 1 100); do
    p=$((20000 + RANDOM % 12000))
    if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null && [[ " ${taken[*]} " != *" $p "* ]]; then
      taken+=("$p")
      port=$p
      return
    fi
  done
  die "no free port found"
}

client_url() { echo "http://127.0.0.1:${client_port[$1]}"; }

load_ports() {
  [[ -f $dir/ports ]] || die "$dir/ports is missing (was the cluster started with $0 start $dir?)"
  local i c p
  while read -r i c p; do
    client_port[$i]=$c
    peer_port[$i]=$p
  done <"$dir/ports"
}

# Starts member $1 in the background, detached from our stdout so that $(...) callers return.
launch() {
  local i=$1 state=$2 cluster=""
  for j in 1 2 3; do
    cluster+="${cluster:+,}e$j=http://127.0.0.1:${peer_port[$j]}"
  done
  "$etcd_bin" --name "e$i" --data-dir "$dir/e$i" \
    --listen-client-urls "$(client_url "$i")" --advertise-client-urls "$(client_url "$i")" \
    --listen-peer-urls "http://127.0.0.1:${peer_port[$i]}" \
    --initial-advertise-peer-urls "http://127.0.0.1:${peer_port[$i]}" \
    --initial-cluster "$cluster" --initial-cluster-state "$state" \
    --initial-cluster-token "dtx-kvbench" --logger zap --log-level warn \
    </dev/null >>"$dir/e$i.log" 2>&1 &
  echo $! >"$dir/e$i.pid"
}

pid_of() { cat "$dir/e$1.pid" 2>/dev/null || true; }
# Whether $1 is a live etcd process (a recorded pid may have been reused after a crash).
is_etcd() { [[ -n $1 && $(cat "/proc/$1/comm" 2>/dev/null) == etcd ]]; }

# Waits (bounded, about 30 s) until every member in "$@" answers /health with true. Returns 1
# if a member exited (a port taken meanwhile, for instance).
wait_healthy() {
  local i pid
  for _ in $(seq 1 300); do
    local all=1
    for i in "$@"; do
      pid=$(pid_of "$i")
      if ! is_etcd "$pid"; then
        echo "etcd-cluster: member e$i exited during start-up; its log ($dir/e$i.log) ends:" >&2
        tail -n 3 "$dir/e$i.log" >&2 || true
        return 1
      fi
      curl -fsS -m 1 "$(client_url "$i")/health" 2>/dev/null | grep -q '"health":"true"' || all=0
    done
    ((all)) && return 0
    sleep 0.1
  done
  die "the cluster did not become healthy within 30 s (logs: $dir/e*.log)"
}

print_members() {
  local i
  for i in "$@"; do echo "etcd $i $(client_url "$i") pid $(pid_of "$i")"; done
}

# TERM every member, wait for them (bounded, 10 s), then KILL what is left.
stop_all() {
  local i pid pids=() alive
  for i in 1 2 3; do
    pid=$(pid_of "$i")
    if is_etcd "$pid" && kill "$pid" 2>/dev/null; then pids+=("$pid"); fi
  done
  for _ in $(seq 1 100); do
    alive=0
    for pid in ${pids[@]+"${pids[@]}"}; do is_etcd "$pid" && alive=1; done
    ((alive)) || break
    sleep 0.1
  done
  for pid in ${pids[@]+"${pids[@]}"}; do
    if is_etcd "$pid"; then kill -9 "$pid" 2>/dev/null || true; fi
  done
  rm -f "$dir"/e?.pid
}

declare -a client_port peer_port
taken=()
case $cmd in
  start)
    [[ -x $etcd_bin ]] || die "$etcd_bin is missing (apt-get install etcd-server)"
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    for i in 1 2 3; do
      pid=$(pid_of "$i")
      if is_etcd "$pid"; then die "member e$i already runs (pid $pid)"; fi
    done
    # A port can be taken between the check and etcd's bind: then start over on other ports.
    for attempt in 1 2 3; do
      rm -rf "$dir"/e1 "$dir"/e2 "$dir"/e3 "$dir"/e?.log "$dir"/e?.pid "$dir/ports"
      for i in 1 2 3; do
        free_port
        client_port[$i]=$port
        free_port
        peer_port[$i]=$port
        echo "$i ${client_port[$i]} ${peer_port[$i]}" >>"$dir/ports"
      done
      for i in 1 2 3; do launch "$i" new; done
      if wait_healthy 1 2 3; then
        print_members 1 2 3
        exit 0
      fi
      stop_all
      echo "etcd-cluster: start attempt $attempt failed" >&2
    done
    die "the cluster did not start (logs: $dir/e*.log)"
    ;;
  restart)
    [[ $# -eq 3 && $3 =~ ^[123]$ ]] || usage
    dir=$(cd "$dir" && pwd)
    load_ports
    pid=$(pid_of "$3")
    if is_etcd "$pid"; then die "member e$3 still runs (pid $pid)"; fi
    launch "$3" existing
    wait_healthy "$3" || die "member e$3 did not come back (log: $dir/e$3.log)"
    print_members "$3"
    ;;
  stop)
    [[ -d $dir ]] || exit 0
    stop_all
    ;;
  *) usage ;;
esac
