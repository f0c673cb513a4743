#!/usr/bin/env bash
# Development PKI for hosn-keyd, made with the OpenSSL CLI. NOT for production:
# the CA key sits on disk unencrypted.
#
#   bash deploy/pki/dev-pki.sh OUT_DIR [--with-bad]
#
# Makes, in OUT_DIR (EC P-256 keys, mode 0600):
#   ca.pem / ca.key                  dev CA (CA:TRUE, keyCertSign, cRLSign)
#   server.pem / server.key          hosn-keyd: DNS localhost, IP 127.0.0.1,
#                                    URI hosn://keyd/dev; EKU serverAuth
#   node-a, node-b                   URI hosn://node/a, hosn://node/b
#   operator                         URI hosn://operator/alice
#   signer                           URI hosn://signer/ci
#   auditor                          URI hosn://auditor/audit
#                                    (all clients: EKU clientAuth only)
# With --with-bad, also the certificates that must be refused (case G1):
#   bad-selfsigned                   self-signed, clientAuth, hosn://node/a
#   bad-expired                      CA-signed, expired in 2020
#   bad-serverauth                   CA-signed, EKU serverAuth only
#   bad-nouri                        CA-signed, clientAuth, no hosn:// URI
#   other-ca.pem / other-ca.key      an unrelated CA, and
#   bad-otherca                      a client certificate from it
#
#   bash deploy/pki/dev-pki.sh OUT_DIR --hsm-signer PUBKEY.pem [NAME]
# issues OUT_DIR/NAME.pem (default hsm-signer.pem) from the existing dev CA in
# OUT_DIR for a public key that lives in the HSM (PEM SubjectPublicKeyInfo):
# the manifest signing certificate (keyUsage digitalSignature, EKU
# codeSigning). A second NAME issues a rotated signing key's certificate.
# The identity scheme (hosn://<role>/<name>) is specified in docs/api.md.
set -euo pipefail

if [ $# -lt 1 ]; then
  echo "usage: $0 OUT_DIR [--with-bad]" >&2
  exit 64
fi
out="$1"
with_bad="${2:-}"
mkdir -p "$out"
umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

newkey() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

# A throw-away "openssl ca" database, so that validity dates can be set
# exactly (also in the past, for the expired certificate).
ca_db() {
  local dir="$1"
  mkdir -p "$dir/new"
  : >"$dir/index.txt"
  openssl rand -hex 16 >"$dir/serial"
  cat >"$dir/ca.cnf" <<CNF
[ca]
default_ca = dev
[dev]
database = $dir/index.txt
serial = $dir/serial
new_certs_dir = $dir/new
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
CNF
}

# make_ca NAME CN
make_ca() {
  newkey "$out/$1.key"
  openssl req -x509 -new -key "$out/$1.key" -sha256 -days 3650 -subj "/CN=$2" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash" -out "$out/$1.pem"
}

# issue CA_NAME NAME CN EXTENSIONS [START END]
issue() {
  local ca="$1" name="$2" cn="$3" ext="$4"
  local start="${5:-}" end="${6:-}"
  newkey "$out/$name.key"
  openssl req -new -key "$out/$name.key" -subj "/CN=$cn" -out "$work/$name.csr"
  printf '%s\n' "[ext]" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" "authorityKeyIdentifier=keyid" \
    "subjectKeyIdentifier=hash" "$ext" | tr ';' '\n' >"$work/$name.ext"
  local dates=(-days 825)
  if [ -n "$start" ]; then dates=(-startdate "$start" -enddate "$end"); fi
  openssl ca -batch -config "$work/ca.cnf" -cert "$out/$ca.pem" -keyfile "$out/$ca.key" \
    -in "$work/$name.csr" -out "$work/$name.full" -extfile "$work/$name.ext" -extensions ext \
    -notext "${dates[@]}" 2>/dev/null
  openssl x509 -in "$work/$name.full" -out "$out/$name.pem"
}

client() { echo "extendedKeyUsage=clientAuth;subjectAltName=URI:$1"; }

ca_db "$work"
if [ "$with_bad" = "--hsm-signer" ]; then
  pub="${3:?public key PEM required}"
  name="${4:-hsm-signer}"
  case "$name" in *[!A-Za-z0-9._-]*|'') echo "dev-pki: bad NAME '$name'" >&2; exit 64 ;; esac
  newkey "$work/throwaway.key"
  openssl req -new -key "$work/throwaway.key" -subj "/CN=hosn manifest signer" -out "$work/s.csr"
  printf '%s\n' "[ext]" "basicConstraints=critical,CA:FALSE" \
    "keyUsage=critical,digitalSignature" "extendedKeyUsage=codeSigning" \
    "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" "subjectAltName=URI:hosn://signer/hsm" \
    >"$work/s.ext"
  openssl x509 -req -in "$work/s.csr" -CA "$out/ca.pem" -CAkey "$out/ca.key" -CAcreateserial \
    -force_pubkey "$pub" -days 825 -sha256 -extfile "$work/s.ext" -extensions ext \
    -out "$out/$name.pem" 2>/dev/null
  chmod 0644 "$out/$name.pem"
  echo "dev-pki: wrote $out/$name.pem"
  exit 0
fi
make_ca ca "hosn dev CA"
issue ca server "hosn-keyd dev" \
  "extendedKeyUsage=serverAuth;subjectAltName=DNS:localhost,IP:127.0.0.1,URI:hosn://keyd/dev"
issue ca node-a "node a" "$(client hosn://node/a)"
issue ca node-b "node b" "$(client hosn://node/b)"
issue ca operator "operator alice" "$(client hosn://operator/alice)"
issue ca signer "signer ci" "$(client hosn://signer/ci)"
issue ca auditor "auditor audit" "$(client hosn://auditor/audit)"

if [ "$with_bad" = "--with-bad" ]; then
  newkey "$out/bad-selfsigned.key"
  openssl req -x509 -new -key "$out/bad-selfsigned.key" -sha256 -days 30 -subj "/CN=node a" \
    -addext "basicConstraints=critical,CA:FALSE" -addext "extendedKeyUsage=clientAuth" \
    -addext "subjectAltName=URI:hosn://node/a" -out "$out/bad-selfsigned.pem"
  issue ca bad-expired "node a" "$(client hosn://node/a)" 20200101000000Z 20200201000000Z
  issue ca bad-serverauth "node a" "extendedKeyUsage=serverAuth;subjectAltName=URI:hosn://node/a"
  issue ca bad-nouri "node a" "extendedKeyUsage=clientAuth;subjectAltName=DNS:node-a.example"
  make_ca other-ca "unrelated CA"
  issue other-ca bad-otherca "node a" "$(client hosn://node/a)"
fi

chmod 0600 "$out"/*.key
chmod 0644 "$out"/*.pem
echo "dev-pki: wrote $(ls "$out" | wc -l) files to $out"
