#!/usr/bin/env bash
# Runs a private PostgreSQL cluster for the tests.
# Usage: scripts/pg-test-server.sh start|stop|dsn DIR
#   start: initdb into DIR/data (once), start the server listening only on a unix socket in DIR and
#          on 127.0.0.1 at a free port (written to DIR/port), create database dtx_test, print the
#          DSN. Idempotent: a running cluster is left alone and its DSN printed.
#   stop:  fast shutdown; nothing to do if it is not running.
#   dsn:   print the DSN of the running cluster.
# Runs the server as the `postgres` OS user when invoked as root. Never touches other clusters.
set -euo pipefail

die() { echo "pg-test-server: $*" >&2; exit 1; }

(($# == 2)) || die "usage: $0 start|stop|dsn DIR"
cmd=$1
dir=$2

bindir=""
for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
  if [[ -x $d/initdb && -x $d/pg_ctl ]]; then bindir=$d; break; fi
done
[[ -n $bindir ]] || die "no PostgreSQL server found in /usr/lib/postgresql/*/bin (run scripts/install-deps.sh)"

as_pg=()
if [[ $(id -u) -eq 0 ]]; then
  id postgres >/dev/null 2>&1 || die "running as root but there is no 'postgres' OS user"
  as_pg=(runuser -u postgres --)
fi
pg() { "${as_pg[@]}" "$@"; }

data=$dir/data
log=$dir/server.log

running() { [[ -f $data/PG_VERSION ]] && pg "$bindir/pg_ctl" -D "$data" status >/dev/null 2>&1; }

dsn() {
  [[ -f $dir/port ]] || die "no port file in $dir; is the cluster started?"
  echo "host=127.0.0.1 port=$(cat "$dir/port") dbname=dtx_test user=postgres"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

case $cmd in
  start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    data=$dir/data
    log=$dir/server.log
    # The unix socket path (DIR/.s.PGSQL.PORT) must fit in sun_path (107 bytes).
    ((${#dir} <= 80)) || die "directory path too long for a unix socket: $dir"
    if running; then dsn; exit 0; fi
    [[ $(id -u) -eq 0 ]] && chown postgres: "$dir"
    if [[ ! -f $data/PG_VERSION ]]; then
      pg "$bindir/initdb" -D "$data" -U postgres -A trust -E UTF8 --no-sync >"$dir/initdb.log" 2>&1 ||
        die "initdb failed; see $dir/initdb.log"
    fi
    started=""
    for attempt in 1 2 3 4 5; do
      port=$((20000 + RANDOM % 20000))
      port_in_use "$port" && continue
      opts="-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir"
      # Room for the bank example and benchmark: every worker thread of a service holds its own
      # connections (barrier store, XA resource).
      opts+=" -c max_prepared_transactions=128 -c max_connections=300 -c fsync=on"
      if pg "$bindir/pg_ctl" -D "$data" -l "$log" -w -t 30 -o "$opts" start >/dev/null 2>&1; then
        started=$port; break
      fi
      echo "pg-test-server: start on port $port failed (attempt $attempt), retrying" >&2
    done
    [[ -n $started ]] || die "could not start the server; see $log"
    echo "$started" >"$dir/port"
    ready=""
    for _ in $(seq 1 60); do
      if "$bindir/pg_isready" -q -h "$dir" -p "$started"; then ready=1; break; fi
      sleep 0.5
    done
    [[ -n $ready ]] || die "server did not become ready within 30 s; see $log"
    exists=$(pg "$bindir/psql" -h "$dir" -p "$started" -U postgres -d postgres -tAc \
      "SELECT 1 FROM pg_database WHERE datname = 'dtx_test'" 2>&1) || die "psql failed: $exists"
    if [[ $exists != 1 ]]; then
      out=$(pg "$bindir/createdb" -h "$dir" -p "$started" -U postgres dtx_test 2>&1) ||
        die "createdb failed: $out"
    fi
    dsn
    ;;
  stop)
    [[ -d $dir ]] || exit 0
    if running; then
      pg "$bindir/pg_ctl" -D "$data" -m fast -w -t 60 stop >/dev/null || die "stop failed; see $log"
    fi
    ;;
  dsn)
    running || die "no cluster running in $dir"
    dsn
    ;;
  *) die "unknown command '$cmd' (use start, stop or dsn)" ;;
esac
