# Shell helpers shared by the scripts (sourced, not run).

# Prints a TCP port on 127.0.0.1 that nothing listens on now (random in 20000..39999).
free_port() {
  local p
  for _ in $(seq 1 50); do
    p=$((20000 + RANDOM % 20000))
    (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null || { echo "$p"; return; }
  done
  echo "no free port found" >&2; exit 1
}
