#!/usr/bin/env bash
# Builds the libFuzzer targets with clang (ASan + UBSan) and runs each for a bounded time.
# Usage: fuzz/run_fuzz.sh OUT_DIR [SECONDS]
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
src="$here/../src"
out=${1:?output dir}
seconds=${2:-30}
mkdir -p "$out"
flags=(-std=c++20 -O1 -g -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -I"$src"
  -I"$here/../include")
clang++ "${flags[@]}" "$here/request_fuzz.cc" "$src/coord/request.cc" "$src/coord/txn.cc" \
  "$src/base/status.cc" -o "$out/request_fuzz"
corpus="$out/request_corpus"
mkdir -p "$corpus"
cp -n "$here"/corpus/request/* "$corpus"/ 2>/dev/null || true
"$out/request_fuzz" -max_total_time="$seconds" -max_len=4096 -timeout=10 -rss_limit_mb=2048 \
  -print_final_stats=1 "$corpus" 2>&1 | tail -n 25
