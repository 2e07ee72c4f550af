#!/usr/bin/env bash
# Runs every test through ctest. Usage: scripts/test.sh BUILD_DIR
set -euo pipefail
build=${1:-build}
cd "$build"
ctest --output-on-failure -j "$(nproc)" --timeout 900
