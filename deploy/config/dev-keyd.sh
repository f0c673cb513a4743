#!/usr/bin/env bash
# Development setup for hosn-keyd on SoftHSM, matching
# deploy/config/hosn-keyd.dev.json (paths relative to the repository root):
#
#   bash deploy/config/dev-keyd.sh            # build/dev/: PKI, token, keys, PIN
#   SOFTHSM2_CONF=build/dev/softhsm2.conf build/release/server/keyd/hosn-keyd \
#       --config=deploy/config/hosn-keyd.dev.json --state_dir=build/dev/run
#
# Makes the dev PKI (deploy/pki/dev-pki.sh), a SoftHSM token "hosn-dev" with a
# KEK "hosn-kek" and an EC P-256 signing key "hosn-signer", the signing key's
# certificate, the PIN file, and the audit log directory build/dev/audit
# (checkpoints signed by hosn-signer). Throw-away values: the PINs appear on
# pkcs11-tool's argv, which production never does. Rerunning starts afresh.
set -euo pipefail
cd "$(dirname "$0")/../.."
dev=build/dev
module=/usr/lib/softhsm/libsofthsm2.so
rm -rf "$dev"
mkdir -p "$dev/softhsm/tokens" "$dev/run" "$dev/audit"
chmod 0700 "$dev/run" "$dev/audit"
umask 077

bash deploy/pki/dev-pki.sh "$dev/pki" >/dev/null

pin="$(openssl rand -hex 12)"
printf '%s\n' "$pin" >"$dev/pin"
printf 'directories.tokendir = %s\nobjectstore.backend = file\n' \
  "$(pwd)/$dev/softhsm/tokens" >"$dev/softhsm2.conf"
export SOFTHSM2_CONF="$(pwd)/$dev/softhsm2.conf"
softhsm2-util --init-token --free --label hosn-dev --so-pin "so-$pin" --pin "$pin" >/dev/null

p11() { pkcs11-tool --module "$module" --token-label hosn-dev --login --pin "$pin" "$@"; }
p11 --keygen --key-type AES:32 --label hosn-kek --id 01 --sensitive >/dev/null 2>&1
p11 --keypairgen --key-type EC:prime256v1 --label hosn-signer --id 02 >/dev/null 2>&1
p11 --read-object --type pubkey --label hosn-signer -o "$dev/signer.der" >/dev/null 2>&1
# Release key "hosn-release" (EC P-256, derive only) and challenge MAC key
# "hosn-challenge-mac", made by the HSM tool so they carry KeyStore's exact
# attributes (pkcs11-tool cannot make a derive-only, never-extractable pair).
tool="${HOSN_HSM_TOOL:-build/release/server/hsm/tools/hosn-hsm-selftest}"
for key in "release hosn-release 03" "challenge-mac hosn-challenge-mac 04"; do
  set -- $key
  "$tool" create-key --kind="$1" --key_label="$2" --key_id="$3" --uri="pkcs11:token=hosn-dev" \
    --module="$module" --pin="file:$(pwd)/$dev/pin" >/dev/null
done
openssl pkey -pubin -inform DER -in "$dev/signer.der" -out "$dev/signer.pub.pem"
bash deploy/pki/dev-pki.sh "$dev/pki" --hsm-signer "$dev/signer.pub.pem" >/dev/null

echo "dev-keyd: ready in $dev. Start with:"
echo "  SOFTHSM2_CONF=$dev/softhsm2.conf build/release/server/keyd/hosn-keyd \\"
echo "      --config=deploy/config/hosn-keyd.dev.json --state_dir=$dev/run"
