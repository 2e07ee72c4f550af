#!/usr/bin/env bash
# Installs the SDK of a built tree into a temporary prefix and proves the installation is usable
# from outside the tree: every installed header compiles alone with only the prefix on the include
# path, and the consumer project (consumer/) is built once with find_package(dtx) and once with
# pkg-config, and both binaries print OK. The temporary directory is removed on exit.
#
# Usage: check-install.sh BUILD_DIR SOURCE_DIR LIBDIR CXX GENERATOR [EXTRA_FLAGS]
#   LIBDIR       CMAKE_INSTALL_LIBDIR of the tree (relative to the prefix)
#   EXTRA_FLAGS  compile and link flags the tree's libraries need (sanitizers), may be empty
# $CMAKE names the cmake binary (default: cmake from PATH).
set -euo pipefail

if [[ $# -lt 5 ]]; then
  echo "usage: $0 BUILD_DIR SOURCE_DIR LIBDIR CXX GENERATOR [EXTRA_FLAGS]" >&2
  exit 2
fi
cmake=${CMAKE:-cmake}
build=$1 src=$2 libdir=$3 cxx=$4 generator=$5 extra=${6:-}
read -r -a extra_flags <<<"$extra"

fail() {
  echo "sdk_install: FAIL: $*" >&2
  exit 1
}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/dtx-sdk-install.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
prefix=$tmp/prefix

# Brings the libraries up to date (a no-op after a full build, which CI does first).
timeout 540 "$cmake" --build "$build" --target dtx_sdk >"$tmp/build.log" 2>&1 ||
  { cat "$tmp/build.log" >&2; fail "building dtx_sdk in $build"; }

timeout 60 "$cmake" --install "$build" --prefix "$prefix" --component sdk >"$tmp/install.log" 2>&1 ||
  { cat "$tmp/install.log" >&2; fail "cmake --install"; }

for f in "$libdir/libdtx_sdk.a" "$libdir/libdtx_runtime.a" "$libdir/libdtx_base.a" \
  "$libdir/cmake/dtx/dtxConfig.cmake" "$libdir/cmake/dtx/dtxConfigVersion.cmake" \
  "$libdir/cmake/dtx/dtxTargets.cmake" "$libdir/pkgconfig/dtx.pc"; do
  [[ -f $prefix/$f ]] || fail "$f was not installed"
done

# Every public header of the source tree is installed and compiles on its own.
shopt -s nullglob
headers=("$src"/include/dtx/*.h)
[[ ${#headers[@]} -gt 0 ]] || fail "no headers in $src/include/dtx"
for h in "${headers[@]}"; do
  name=$(basename "$h")
  installed=$prefix/include/dtx/$name
  [[ -f $installed ]] || fail "include/dtx/$name was not installed"
  echo "#include <dtx/$name>" |
    timeout 60 "$cxx" -std=c++20 -Wall -Wextra -fsyntax-only -I "$prefix/include" -x c++ - ||
    fail "the installed header dtx/$name does not compile alone (-I $prefix/include only)"
done

check_output() {  # check_output BINARY WHAT
  local out
  out=$(timeout 30 "$1" 2>&1) || fail "$2 consumer exited with an error: $out"
  [[ $out == "OK" ]] || fail "$2 consumer printed '$out', want 'OK'"
}

# 1. CMake: find_package(dtx CONFIG REQUIRED) through CMAKE_PREFIX_PATH.
timeout 120 "$cmake" -S "$src/tests/sdk_install/consumer" -B "$tmp/cmake-build" -G "$generator" \
  -DCMAKE_CXX_COMPILER="$cxx" -DCMAKE_PREFIX_PATH="$prefix" -DCMAKE_BUILD_TYPE=Release \
  -DCMAKE_FIND_USE_PACKAGE_REGISTRY=OFF \
  -DCMAKE_CXX_FLAGS="$extra" -DCMAKE_EXE_LINKER_FLAGS="$extra" >"$tmp/configure.log" 2>&1 ||
  { cat "$tmp/configure.log" >&2; fail "configuring the find_package consumer"; }
found=$(sed -n 's/^dtx_DIR:PATH=//p' "$tmp/cmake-build/CMakeCache.txt")
[[ $found == "$prefix/$libdir/cmake/dtx" ]] ||
  fail "find_package(dtx) found '$found', not the temporary prefix"
timeout 300 "$cmake" --build "$tmp/cmake-build" >"$tmp/cmake-build.log" 2>&1 ||
  { cat "$tmp/cmake-build.log" >&2; fail "building the find_package consumer"; }
check_output "$tmp/cmake-build/consumer" "find_package"

# 2. pkg-config with the compiler directly.
export PKG_CONFIG_PATH=$prefix/$libdir/pkgconfig
flags=$(pkg-config --cflags --libs dtx) || fail "pkg-config --cflags --libs dtx"
read -r -a pc_flags <<<"$flags"
include_found=no
for f in "${pc_flags[@]}"; do
  if [[ $f == -I* && $(realpath -m "${f#-I}") == "$(realpath "$prefix/include")" ]]; then
    include_found=yes
  fi
done
[[ $include_found == yes ]] || fail "pkg-config flags '$flags' lack -I for $prefix/include"
timeout 300 "$cxx" -std=c++20 "${extra_flags[@]}" "$src/tests/sdk_install/consumer/main.cc" \
  "${pc_flags[@]}" -o "$tmp/consumer-pc" || fail "building the pkg-config consumer with: $flags"
check_output "$tmp/consumer-pc" "pkg-config"

echo "sdk_install: OK (${#headers[@]} headers, find_package and pkg-config consumers)"
