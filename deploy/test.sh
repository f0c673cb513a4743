#!/usr/bin/env bash
# The whole test suite: installs dependencies, builds, runs ctest.
#
#   bash deploy/test.sh                      # release build, every test
#   HOSN_SANITIZE=address,undefined bash deploy/test.sh   # ASan + UBSan
#   HOSN_SANITIZE=thread bash deploy/test.sh -L concurrency  # TSan, one label
#   HOSN_FUZZ=1 HOSN_SANITIZE=address,undefined bash deploy/test.sh -L fuzz
#
# HOSN_TARGETS="a b" builds only those targets (the TSan run in CI builds just
# the concurrency tests). HOSN_FUZZ=1 also builds the libFuzzer targets (clang), which ctest runs for
# a few seconds each under the label "fuzz".
# Extra arguments go to ctest. The build lives in build/<flavour>/ so the
# sanitizer builds never mix with the release one.
set -euo pipefail
cd "$(dirname "$0")/.."

bash deploy/install-deps.sh

sanitize="${HOSN_SANITIZE:-}"
flavour="${sanitize:-release}"
flavour="${flavour//,/-}"
build_dir="build/${flavour}"
jobs="$(nproc)"

compiler_args=()
fuzz="OFF"
if [ "${HOSN_FUZZ:-0}" = "1" ]; then
  fuzz="ON"
fi
if [ -n "$sanitize" ] || [ "$fuzz" = "ON" ]; then
  # clang for sanitizer builds: its TSan and UBSan runtimes come from
  # libclang-rt-14-dev and it accepts -Wthread-safety.
  compiler_args=(-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++)
fi

cmake -S . -B "$build_dir" -G Ninja \
  -DHOSN_SANITIZE="$sanitize" -DHOSN_BUILD_FUZZERS="$fuzz" -DHOSN_BUILD_BENCHMARKS=ON "${compiler_args[@]}" >/dev/null
targets=()
for target in ${HOSN_TARGETS:-}; do targets+=(--target "$target"); done
cmake --build "$build_dir" -j "$jobs" "${targets[@]}"

export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
export TSAN_OPTIONS="halt_on_error=1:second_deadlock_stack=1"
cd "$build_dir"
ctest --output-on-failure -j "$jobs" "$@"
