#!/usr/bin/env bash
# End-to-end test of the main job (label e2e): a SoftHSM token, hosn-keyd on
# loopback mTLS, a swtpm node, the real npm model packed and signed through the
# daemon, node enrollment and boot policy, then hosn-agent with the demo
# embeddings server as the engine. Asserts the served embeddings, then every
# refusal: each refusal runs an engine that would create a marker file, and
# must end with the documented exit code, no marker and no target directory.
#
# Needs: a build with hosn-keyd, hosnctl, hosn-agent (HOSN_BINARY_DIR), npm
# access to fetch the model and the server's dependencies.
set -euo pipefail
export HOSN_ROOT="${HOSN_SOURCE_DIR:-$(cd "$(dirname "$0")/../.." && pwd)}"
export HOSN_BUILD="${HOSN_BINARY_DIR:?HOSN_BINARY_DIR: the build folder}"
# shellcheck source=deploy/demo/lib.sh
source "$HOSN_ROOT/deploy/demo/lib.sh"

work="$(mktemp -d)"
target="/dev/shm/hosn-e2e-$$"
marker="$work/engine-started"
failures=0
agent_pid=""
cleanup() {
  hosn_stop_all
  rm -rf "$work" "$target"
}
trap cleanup EXIT

pass() { echo "PASS $*"; }
fail() { echo "FAIL $*"; failures=$((failures + 1)); }

# expect_refused NAME CODE BUNDLE [agent flags...]
expect_refused() {
  local name="$1" want="$2" bundle="$3" code=0; shift 3
  rm -f "$marker"
  hosn_agent "$keyd" "$bundle" "$target" --deadline 10s "$@" -- touch "$marker" \
    >"$work/agent.log" 2>&1 || code=$?
  if [ "$code" -ne "$want" ]; then fail "$name: exit $code, want $want"; sed 's/^/    /' "$work/agent.log"; return; fi
  if [ -e "$marker" ]; then fail "$name: the engine ran"; return; fi
  if [ -e "$target" ]; then fail "$name: $target exists"; return; fi
  pass "$name: exit $code, engine not started, no plaintext left"
}

# expect_release NAME: the agent releases and execs an engine that records the
# decrypted directory; the plaintext must equal the model byte for byte.
expect_release() {
  local code=0
  rm -f "$marker"
  hosn_agent "$keyd" "$work/bundle" "$target" --deadline 10s \
    -- sh -c 'ls -A "$1" >"$2"' engine '{model_dir}' "$marker" >"$work/agent.log" 2>&1 || code=$?
  if [ "$code" -ne 0 ] || [ ! -s "$marker" ]; then
    fail "$1: exit $code"; sed 's/^/    /' "$work/agent.log"; return
  fi
  if diff -r "$MODEL" "$target" >/dev/null; then pass "$1: plaintext identical to the model"
  else fail "$1: plaintext differs from the model"; fi
  rm -rf "$target"
}

hosn_test_stack "$work" e2e embeddings-en

# 1. Serving: supervise mode, the embeddings server on the plaintext.
port="$(hosn_free_port_pair)"
hosn_agent_args "$keyd" "$work/bundle" "$target"
"$HOSN_BUILD/client/agent/hosn-agent" "${HOSN_AGENT_ARGS[@]}" --supervise \
  -- node "$ENGINE" --model-dir '{model_dir}' --port "$port" >"$work/serve.log" 2>&1 &
agent_pid=$!
if hosn_wait_http "$port" 60; then
  [ "$(stat -f -c %T "$target")" = tmpfs ] && pass "plaintext on tmpfs" || fail "plaintext not on tmpfs"
  curl -sf "http://127.0.0.1:$port/v1/embeddings" -H 'content-type: application/json' \
    -d '{"input": ["A cat sits on the mat.", "A kitten is resting on a rug.", "Quarterly tax filings are due in April."]}' \
    >"$work/answer.json"
  if node -e '
      const r = JSON.parse(require("fs").readFileSync(process.argv[1], "utf8"));
      const v = r.data.map((d) => d.embedding);
      const cos = (a, b) => a.reduce((s, x, i) => s + x * b[i], 0) /
          Math.sqrt(a.reduce((s, x) => s + x * x, 0) * b.reduce((s, x) => s + x * x, 0));
      const related = cos(v[0], v[1]), unrelated = cos(v[0], v[2]);
      console.log(`vectors ${v.length} x ${v[0].length}; related ${related.toFixed(3)}, unrelated ${unrelated.toFixed(3)}`);
      process.exit(v.length === 3 && v.every((x) => x.length === 512) && related > unrelated ? 0 : 1);' \
      "$work/answer.json"; then
    pass "embeddings: 512 floats each, related sentences closer than unrelated"
  else
    fail "embeddings"
  fi
else
  fail "engine did not serve"; sed 's/^/    /' "$work/serve.log"
fi
kill -TERM "$agent_pid"; code=0; wait "$agent_pid" || code=$?; agent_pid=""
[ "$code" -eq 0 ] && [ ! -e "$target" ] && pass "supervise: engine stopped, plaintext removed" \
  || fail "supervise: exit $code, target exists: $([ -e "$target" ] && echo yes || echo no)"

# 2. Exec mode: byte-identical plaintext.
expect_release "exec mode"
# An engine that cannot be started: exit 16 in both modes, plaintext removed.
for mode in exec supervise; do
  code=0; hosn_agent "$keyd" "$work/bundle" "$target" --mode "$mode" -- "$work/no-such-engine" \
    >"$work/agent.log" 2>&1 || code=$?
  [ "$code" -eq 16 ] && [ ! -e "$target" ] && pass "$mode, engine missing: exit 16, plaintext removed" \
    || { fail "$mode, engine missing: exit $code"; sed 's/^/    /' "$work/agent.log"; }
  rm -rf "$target"
done

# 3. Bundle refusals (checked by the node before or while decrypting).
cp -r "$work/bundle" "$work/tampered"
hosn_flip_byte "$(find "$work/tampered/data" -type f -name '*shard*' | sort | head -n 1)" 100
expect_refused "tampered shard" 15 "$work/tampered"
cp -r "$work/bundle" "$work/bad-manifest"
sed -i 's/embeddings-en/embeddings-xx/' "$work/bad-manifest/manifest.json"
expect_refused "tampered manifest" 13 "$work/bad-manifest"
expect_refused "wrong signer (another pinned CA)" 13 "$work/bundle" --signer-ca "$keyd/pki/other-ca.pem"
mkdir -p "$work/disk"
code=0; hosn_agent "$keyd" "$work/bundle" "$work/disk/model" -- touch "$marker" >/dev/null 2>&1 || code=$?
[ "$code" -eq 14 ] && [ ! -e "$work/disk/model" ] && [ ! -e "$marker" ] \
  && pass "target on disk refused: exit 14" || fail "target on disk: exit $code"

# 4. Daemon down: the agent retries with backoff, then gives up with 11.
hosn_stop_keyd
start=$(date +%s)
expect_refused "daemon down" 11 "$work/bundle" --deadline 3s
[ $(($(date +%s) - start)) -ge 3 ] && grep -q "retrying" "$work/agent.log" \
  && pass "daemon down: retried until the deadline" || fail "daemon down: no retries"
# ... and succeeds once the daemon comes back during the retries.
KEYD_PORT="$(hosn_free_port_pair)"
sed -i "0,/127.0.0.1:0\"/s//127.0.0.1:$KEYD_PORT\"/" "$keyd/keyd.json"  # the gRPC listener only
hosn_agent "$keyd" "$work/bundle" "$target" --deadline 30s -- true >"$work/agent.log" 2>&1 &
agent_pid=$!
sleep 2
hosn_start_keyd "$keyd"
code=0; wait "$agent_pid" || code=$?; agent_pid=""
[ "$code" -eq 0 ] && grep -q "retrying" "$work/agent.log" \
  && pass "daemon back during retries: released" || { fail "daemon back: exit $code"; cat "$work/agent.log"; }
rm -rf "$target"

# 5. A changed PCR is denied; after a TPM reset (PCRs back) it is released.
tpm2_pcrextend -T "$TCTI" "7:sha256=$(printf 'e2e: other bootloader' | sha256sum | cut -d' ' -f1)"
expect_refused "changed PCR 7" 12 "$work/bundle"
kill "$SWTPM_PID"; wait "$SWTPM_PID" 2>/dev/null || true
hosn_start_swtpm "$work/tpm"
expect_release "after TPM reset"

# 6. A revoked node is denied at once.
# shellcheck disable=SC2046
"$HOSN_BUILD/client/ctl/hosnctl" node revoke $(hosn_keyd_flags "$keyd" operator) --node-id a \
  --reason "e2e test" >/dev/null
expect_refused "revoked node" 12 "$work/bundle"

echo "agent_e2e: $failures failure(s)"
[ "$failures" -eq 0 ]
