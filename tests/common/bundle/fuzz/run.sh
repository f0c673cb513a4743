#!/usr/bin/env bash
# Builds the bundle fuzz targets with clang (libFuzzer, ASan, UBSan) and runs
# each for a short time. CI runs it as is; locally:
#   bash tests/common/bundle/fuzz/run.sh [seconds per target, default 30]
set -euo pipefail
cd "$(dirname "$0")/../../../.."
seconds="${1:-30}"
build_dir="build/fuzz"
cmake -S . -B "$build_dir" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ \
  -DHOSN_BUILD_FUZZERS=ON -DHOSN_BUILD_BENCHMARKS=OFF -DHOSN_SANITIZE=address,undefined \
  -DCMAKE_CXX_FLAGS=-fsanitize=fuzzer-no-link -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null
cmake --build "$build_dir" -j "${HOSN_JOBS:-$(nproc)}" --target bundle_manifest_fuzz bundle_segment_fuzz
for target in bundle_manifest_fuzz bundle_segment_fuzz; do
  corpus="$build_dir/fuzz-corpus/$target"
  seeds="tests/common/bundle/fuzz/seeds/${target#bundle_}"
  seeds="${seeds%_fuzz}"
  mkdir -p "$corpus"
  [ -d "$seeds" ] && cp -n "$seeds"/* "$corpus"/ 2>/dev/null || true
  echo "fuzz: $target for ${seconds}s"
  "$build_dir/tests/common/bundle/fuzz/$target" -max_total_time="$seconds" -rss_limit_mb=1024 \
    -print_final_stats=1 "$corpus"
done
