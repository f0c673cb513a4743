#!/usr/bin/env bash
# Creates a development SoftHSM token in a folder of its own, with the
# release key "hosn-release" (EC P-256, derive only) and the challenge MAC key
# "hosn-challenge-mac" that hosn-keyd expects. Idempotent: running it again on
# the same folder reuses the token, its PIN files and its keys. Keys are made
# by `hosn-hsm-selftest create-key` (KeyStore's own attributes), from
# $HOSN_HSM_TOOL or build/release/server/hsm/tools/hosn-hsm-selftest.
#
#   eval "$(bash deploy/dev-token.sh /var/tmp/hosn-token [LABEL])"
#
# The folder gets softhsm2.conf, tokens/, user.pin and so.pin (both 0600,
# random on first run). Prints shell exports for SOFTHSM2_CONF,
# HOSN_HSM_MODULE, HOSN_HSM_URI (selects the token by label and serial) and
# HOSN_HSM_PIN (a file: reference, never the PIN itself).
#
# Development only: softhsm2-util takes the PINs on its command line, so they
# are briefly visible in the process list of this machine.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 DIR [LABEL]" >&2
  exit 2
fi
dir="$1"
label="${2:-hosn-dev}"
module="/usr/lib/softhsm/libsofthsm2.so"

umask 077
mkdir -p "$dir/tokens"
dir="$(cd "$dir" && pwd)"
conf="$dir/softhsm2.conf"
if [ ! -f "$conf" ]; then
  printf 'directories.tokendir = %s/tokens\nobjectstore.backend = file\nlog.level = ERROR\nslots.removable = false\n' \
    "$dir" >"$conf"
fi
export SOFTHSM2_CONF="$conf"

for pin in user so; do
  if [ ! -s "$dir/$pin.pin" ]; then
    openssl rand -hex 16 >"$dir/$pin.pin"
  fi
  chmod 0600 "$dir/$pin.pin"
done

# The serial of the token with our label, if it exists already.
token_serial() {
  softhsm2-util --show-slots 2>/dev/null | awk -v want="$label" '
    /^Slot / { serial = ""; lbl = "" }
    /Serial number:/ { serial = $3 }
    /Label:/ { sub(/^[ \t]*Label:[ \t]*/, ""); sub(/[ \t]+$/, ""); lbl = $0; if (lbl == want && serial != "") { print serial; exit } }
  '
}

serial="$(token_serial)"
if [ -z "$serial" ]; then
  softhsm2-util --init-token --free --label "$label" \
    --so-pin "$(cat "$dir/so.pin")" --pin "$(cat "$dir/user.pin")" >/dev/null
  serial="$(token_serial)"
  echo "dev-token: created token '$label' (serial $serial) in $dir" >&2
else
  echo "dev-token: reusing token '$label' (serial $serial) in $dir" >&2
fi
if [ -z "$serial" ]; then
  echo "dev-token: cannot find the serial of token '$label'" >&2
  exit 1
fi

tool="${HOSN_HSM_TOOL:-$(cd "$(dirname "$0")/.." && pwd)/build/release/server/hsm/tools/hosn-hsm-selftest}"
if [ ! -x "$tool" ]; then
  echo "dev-token: $tool is missing; build the target hosn-hsm-selftest or set HOSN_HSM_TOOL" >&2
  exit 1
fi
for key in "release hosn-release 03" "challenge-mac hosn-challenge-mac 04"; do
  set -- $key
  "$tool" create-key --kind="$1" --key_label="$2" --key_id="$3" \
    --uri="pkcs11:token=$label;serial=$serial" --module="$module" --pin="file:$dir/user.pin" >&2
done

echo "export SOFTHSM2_CONF='$conf'"
echo "export HOSN_HSM_MODULE='$module'"
echo "export HOSN_HSM_URI='pkcs11:token=$label;serial=$serial'"
echo "export HOSN_HSM_PIN='file:$dir/user.pin'"
