#!/usr/bin/env bash
# Installs every build, test and demo dependency from Debian 12 packages.
# Idempotent: packages already present are left alone, and apt-get runs only
# when something is missing. Every entry point (test.sh, demo.sh, .ci/run)
# calls this script; nothing else installs anything.
set -euo pipefail

PACKAGES=(
  # toolchain
  build-essential cmake ninja-build pkg-config clang clang-format libclang-rt-14-dev
  # libraries
  libssl-dev libabsl-dev libprotobuf-dev protobuf-compiler libgrpc++-dev
  protobuf-compiler-grpc prometheus-cpp-dev libp11-kit-dev libtss2-dev
  libgtest-dev libgmock-dev libbenchmark-dev
  # hosn-keyd structured logging (docs/daemon.md)
  libspdlog-dev
  # HSM, TPM and interop tools used by tests and the demo
  softhsm2 opensc swtpm swtpm-tools tpm2-tools openssl
  # the demo asks the engine for an embedding over HTTP
  curl
  # operator tooling exercised by tests
  prometheus
  # model bundles: Unicode NFC and case folding of paths (ICU); the bundle
  # benchmark's comparisons (age, gpg) and its peak-RSS probe (/usr/bin/time)
  libicu-dev age gnupg time
)

missing=()
for pkg in "${PACKAGES[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$pkg")
  fi
done

# Node.js and npm fetch the demo model and run the demo engine. A machine may
# already carry another Node.js build that ships its own npm; only a machine
# without npm gets Debian's.
if ! command -v npm >/dev/null 2>&1; then
  missing+=(nodejs npm)
fi

if [ ${#missing[@]} -eq 0 ]; then
  echo "install-deps: all ${#PACKAGES[@]} packages present"
  exit 0
fi

echo "install-deps: installing ${missing[*]}"
SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
