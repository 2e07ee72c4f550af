#!/usr/bin/env bash
# Runs a private MariaDB server for the tests.
# Usage: scripts/mariadb-test-server.sh start|stop|dsn DIR
#   start: mariadb-install-db into DIR/data (once), start mariadbd listening only on a unix socket
#          in DIR and on 127.0.0.1 at a free port (written to DIR/port), create database dtx_test,
#          make root@localhost and root@127.0.0.1 usable without a password, print the DSN (the
#          key=value format of sdk::MariaDbOptions::Parse). Idempotent: a running server is left
#          alone and its DSN printed.
#   stop:  clean shutdown with a bounded wait; nothing to do if it is not running.
#   dsn:   print the DSN of the running server.
# Runs the server as the `mysql` OS user when invoked as root. Reads no option files
# (--no-defaults), so it never touches the system's MariaDB service, its data or its socket.
set -euo pipefail

die() { echo "mariadb-test-server: $*" >&2; exit 1; }

(($# == 2)) || die "usage: $0 start|stop|dsn DIR"
cmd=$1
dir=$2

for tool in mariadbd mariadb-install-db mariadb mariadb-admin; do
  command -v "$tool" >/dev/null 2>&1 || [[ -x /usr/sbin/$tool ]] ||
    die "$tool not found (run scripts/install-deps.sh)"
done
mariadbd=$(command -v mariadbd || echo /usr/sbin/mariadbd)

as_my=()
if [[ $(id -u) -eq 0 ]]; then
  id mysql >/dev/null 2>&1 || die "running as root but there is no 'mysql' OS user"
  as_my=(runuser -u mysql --)
fi
my() { "${as_my[@]}" "$@"; }

set_paths() {
  data=$dir/data
  log=$dir/server.log
  sock=$dir/mysqld.sock
  pidfile=$dir/mariadbd.pid
}
set_paths

# The server process of this directory, if it is alive (checked by its command line, so a stale
# pid file whose number was reused by another process does not count).
server_pid() {
  [[ -f $pidfile ]] || return 1
  local pid
  pid=$(cat "$pidfile" 2>/dev/null) || return 1
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "--datadir=$data " || return 1
  echo "$pid"
}

client() { mariadb --no-defaults --socket="$sock" -u root --connect-timeout=10 "$@"; }
running() { server_pid >/dev/null && mariadb-admin --no-defaults --socket="$sock" -u root \
  --connect-timeout=5 ping >/dev/null 2>&1; }

dsn() {
  [[ -f $dir/port ]] || die "no port file in $dir; is the server started?"
  echo "host=127.0.0.1 port=$(cat "$dir/port") user=root dbname=dtx_test"
}

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Waits (bounded) for the process `pid` to exit; returns non-zero if it is still alive.
wait_exit() {
  local pid=$1
  for _ in $(seq 1 120); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.5
  done
  return 1
}

case $cmd in
  start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    set_paths
    # The unix socket path must fit in sun_path (107 bytes).
    ((${#sock} <= 100)) || die "directory path too long for a unix socket: $dir"
    if running; then dsn; exit 0; fi
    [[ $(id -u) -eq 0 ]] && chown mysql: "$dir"
    if [[ ! -d $data/mysql ]]; then
      my mariadb-install-db --no-defaults --datadir="$data" --auth-root-authentication-method=normal \
        --skip-test-db --skip-name-resolve >"$dir/install-db.log" 2>&1 ||
        die "mariadb-install-db failed; see $dir/install-db.log"
    fi
    started=""
    for attempt in 1 2 3 4 5; do
      port=$((20000 + RANDOM % 20000))
      port_in_use "$port" && continue
      rm -f "$pidfile"
      my setsid "$mariadbd" --no-defaults --datadir="$data" --socket="$sock" \
        --pid-file="$pidfile" --bind-address=127.0.0.1 --port="$port" --skip-name-resolve \
        --innodb-flush-log-at-trx-commit=1 --max-connections=300 --log-error="$log" </dev/null \
        >/dev/null 2>&1 &
      launcher=$!
      # Ready when it answers on its socket; gone early when e.g. the port was taken meanwhile.
      for _ in $(seq 1 60); do
        if mariadb-admin --no-defaults --socket="$sock" -u root --connect-timeout=2 ping \
          >/dev/null 2>&1; then
          started=$port
          break
        fi
        kill -0 "$launcher" 2>/dev/null || break
        sleep 0.5
      done
      [[ -n $started ]] && break
      if kill -0 "$launcher" 2>/dev/null; then
        kill -TERM "$launcher" 2>/dev/null || true
        wait_exit "$launcher" || die "server did not become ready within 30 s and did not stop; see $log"
      fi
      echo "mariadb-test-server: start on port $port failed (attempt $attempt), retrying" >&2
    done
    [[ -n $started ]] || die "could not start the server; see $log"
    echo "$started" >"$dir/port"
    out=$(client -e "CREATE DATABASE IF NOT EXISTS dtx_test;
      CREATE USER IF NOT EXISTS 'root'@'127.0.0.1';
      GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;" 2>&1) ||
      die "setting up database dtx_test failed: $out"
    dsn
    ;;
  stop)
    [[ -d $dir ]] || exit 0
    dir=$(cd "$dir" && pwd)
    set_paths
    pid=$(server_pid) || exit 0
    mariadb-admin --no-defaults --socket="$sock" -u root --connect-timeout=5 shutdown \
      >/dev/null 2>&1 || kill -TERM "$pid" 2>/dev/null || true
    wait_exit "$pid" || die "server (pid $pid) did not stop within 60 s; see $log"
    ;;
  dsn)
    [[ -d $dir ]] || die "no server running in $dir"
    dir=$(cd "$dir" && pwd)
    set_paths
    running || die "no server running in $dir"
    dsn
    ;;
  *) die "unknown command '$cmd' (use start, stop or dsn)" ;;
esac
