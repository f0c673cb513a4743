#!/usr/bin/env bash
# buf lint over the proto tree (module root PROTO_DIR, config proto/buf.yaml).
# buf comes from $HOSN_BUF, or is installed once with npm (@bufbuild/buf)
# into TOOLS_DIR. Fails if buf reports anything or cannot be obtained.
set -euo pipefail
proto_dir="$1"
tools_dir="$2"
buf="${HOSN_BUF:-$tools_dir/node_modules/.bin/buf}"
if [ ! -x "$buf" ]; then
  mkdir -p "$tools_dir"
  npm install --prefix "$tools_dir" --no-audit --no-fund @bufbuild/buf >/dev/null
fi
cd "$proto_dir"
"$buf" lint
echo "buf lint: clean ($("$buf" --version))"
