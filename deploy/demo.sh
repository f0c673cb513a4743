#!/usr/bin/env bash
# The main job end to end on the embedded defaults. Until the daemon and the
# agent land, this creates a dev SoftHSM token and exercises the key
# operations: KEKs, a wrapped DEK, its rotation to a new KEK, an EC P-256
# signing key and a signature that the OpenSSL CLI verifies.
set -euo pipefail
cd "$(dirname "$0")/.."
bash deploy/install-deps.sh

build_dir="build/release"
cmake -S . -B "$build_dir" -G Ninja >/dev/null
cmake --build "$build_dir" --target hosn-hsm-selftest

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
eval "$(bash deploy/dev-token.sh "$work/token" hosn-demo)"

"$build_dir/server/hsm/tools/hosn-hsm-selftest" \
  --uri="$HOSN_HSM_URI" --module="$HOSN_HSM_MODULE" --pin="$HOSN_HSM_PIN" --out_dir="$work"

# An independent check of the signature with the OpenSSL command line.
openssl pkey -pubin -inform DER -in "$work/pub.der" -out "$work/pub.pem"
openssl dgst -sha256 -verify "$work/pub.pem" -signature "$work/signature.der" "$work/message.txt"
echo "demo: all steps passed"
