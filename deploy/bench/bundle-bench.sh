#!/usr/bin/env bash
# Bundle benchmark: pack, verify and decrypt-into-tmpfs throughput of hosnctl
# on a generated model, printed beside ceilings measured in the same run
# (openssl speed AES-256-GCM decrypt on one and all cores, SHA-256, a plain
# cp into the same tmpfs, and age / gpg decryption of the same bytes when
# installed). Peak RSS of each hosnctl run comes from /usr/bin/time.
#
#   bash deploy/bench/bundle-bench.sh [--size-mib 2048] [--shards 8]
#        [--hosnctl build/release/client/ctl/hosnctl]
#
# The documented run (docs/benchmarks/bundle.md) is 2048 MiB in 8 shards; CI
# runs a small one. Needs root to mount its own tmpfs (plain and
# huge=always); without root it falls back to /dev/shm for both.
set -euo pipefail
cd "$(dirname "$0")/../.."

size_mib=2048
shards=8
hosnctl=build/release/client/ctl/hosnctl
while [ $# -gt 0 ]; do
  case "$1" in
    --size-mib) size_mib="$2"; shift 2 ;;
    --shards) shards="$2"; shift 2 ;;
    --hosnctl) hosnctl="$2"; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
hosnctl="$(realpath "$hosnctl")"
cores="$(nproc)"

work="$(mktemp -d /tmp/hosn-bundle-bench.XXXXXX)"
mounted=()
cleanup() {
  if [ -n "${GNUPGHOME:-}" ]; then gpgconf --kill all 2>/dev/null || true; fi
  # gpg-agent exits asynchronously after the kill: retry the unmount.
  for m in "${mounted[@]}"; do
    for _ in 1 2 3 4 5; do umount "$m" 2>/dev/null && break; sleep 1; done
  done
  rm -rf "$work"
}
trap cleanup EXIT

# Three memory file systems: the source side (model and bundle), a plain
# tmpfs target and a huge=always target (what the agent prepares itself).
tmpfs_size=$(( size_mib * 3 + 512 ))m
mkdir -p "$work/src" "$work/plain" "$work/huge"
if mount -t tmpfs -o size=$tmpfs_size,mode=0700 tmpfs "$work/src" 2>/dev/null; then
  mounted+=("$work/src")
  mount -t tmpfs -o size=$tmpfs_size,mode=0700 tmpfs "$work/plain"; mounted+=("$work/plain")
  mount -t tmpfs -o size=$tmpfs_size,mode=0700,huge=always tmpfs "$work/huge"
  mounted+=("$work/huge")
else
  echo "note: cannot mount tmpfs; using /dev/shm for every side" >&2
  for d in src plain huge; do rm -rf "$work/$d"; ln -s "$(mktemp -d /dev/shm/hosn-bench.XXXXXX)" "$work/$d"; done
fi

bytes=$(( size_mib * 1024 * 1024 ))
gbps() { awk -v b="$1" -v s="$2" 'BEGIN { printf "%.2f", b / s / 1e9 }'; }
now() { date +%s.%N; }
elapsed() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.3f", b - a }'; }

# 1. The model: shards of pseudo-random bytes plus small config files.
model="$work/src/model"
mkdir -p "$model"
shard_bytes=$(( bytes / shards ))
for i in $(seq 1 "$shards"); do
  name=$(printf "model-%05d-of-%05d.safetensors" "$i" "$shards")
  # openssl dies of SIGPIPE when head has enough; the size is checked instead.
  { openssl enc -aes-128-ctr -pass pass:bench -nosalt -pbkdf2 -in /dev/zero 2>/dev/null || true; } |
    head -c "$shard_bytes" >"$model/$name" || true
  [ "$(stat -c %s "$model/$name")" -eq "$shard_bytes" ] || { echo "short shard" >&2; exit 1; }
done
echo '{"architectures": ["Bench"]}' >"$model/config.json"
echo '{}' >"$model/tokenizer.json"
total=$(du -sb "$model" | cut -f1)

# 2. Keys: a throw-away DEK (hex, 0600), a wrapped blob, a CA and a signer.
keys="$work/src/keys"
mkdir -p "$keys"
openssl rand -hex 32 >"$keys/dek.hex"; chmod 600 "$keys/dek.hex"
openssl rand 40 >"$keys/dek.wrapped"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$keys/ca.key" 2>/dev/null
openssl req -x509 -new -key "$keys/ca.key" -subj "/CN=bench CA" -days 2 -out "$keys/ca.pem" \
  -addext basicConstraints=critical,CA:TRUE -addext keyUsage=critical,keyCertSign 2>/dev/null
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$keys/signer.key" 2>/dev/null
chmod 600 "$keys/signer.key"
openssl req -new -key "$keys/signer.key" -subj "/CN=bench signer" -out "$keys/signer.csr" 2>/dev/null
printf 'keyUsage=critical,digitalSignature\nextendedKeyUsage=codeSigning\n' >"$keys/signer.ext"
openssl x509 -req -in "$keys/signer.csr" -CA "$keys/ca.pem" -CAkey "$keys/ca.key" -set_serial 2 \
  -days 2 -extfile "$keys/signer.ext" -out "$keys/signer.pem" 2>/dev/null

# 3. Ceilings, measured now on this machine.
speed_one() {
  openssl speed -mr -evp aes-256-gcm -decrypt -bytes 1048576 -seconds 3 2>/dev/null |
    awk -F: '/^\+F:/ { printf "%.2f", $4 / 1e9 }'
}
aes_one=$(speed_one)
aes_multi=$(openssl speed -mr -multi "$cores" -evp aes-256-gcm -decrypt -bytes 1048576 -seconds 3 \
  2>/dev/null | awk -F: '/^\+F:/ { v = $4 } END { printf "%.2f", v / 1e9 }')
# All cores, measured as independent processes (openssl 3.0's -multi figure
# with -bytes is not reliable, so both are shown).
for i in $(seq 1 "$cores"); do speed_one >"$work/aes.$i" & done
wait
aes_all=$(cat "$work"/aes.* | awk '{ s += $1 } END { printf "%.2f", s }')
sha_speed=$(openssl speed -mr -evp sha256 -bytes 1048576 -seconds 3 2>/dev/null |
  awk -F: '/^\+F:/ { printf "%.2f", $4 / 1e9 }')
t0=$(now); openssl dgst -sha256 "$model"/* >/dev/null; t1=$(now)
sha_dgst=$(gbps "$total" "$(elapsed "$t0" "$t1")")

cp_into() {
  local target="$1"
  local t0 t1
  t0=$(now); cp -r "$model" "$target/cp"; t1=$(now)
  rm -rf "$target/cp"
  gbps "$total" "$(elapsed "$t0" "$t1")"
}
cp_plain=$(cp_into "$work/plain")
cp_huge=$(cp_into "$work/huge")

age_rate="not installed"
if command -v age >/dev/null && command -v age-keygen >/dev/null; then
  age-keygen -o "$keys/age.key" 2>/dev/null
  recipient=$(age-keygen -y "$keys/age.key")
  mkdir -p "$work/src/age"
  for f in "$model"/*; do age -r "$recipient" -o "$work/src/age/$(basename "$f")" "$f"; done
  t0=$(now)
  for f in "$work/src/age"/*; do age -d -i "$keys/age.key" -o "$work/plain/$(basename "$f")" "$f"; done
  t1=$(now)
  age_rate=$(gbps "$total" "$(elapsed "$t0" "$t1")")
  rm -rf "$work/src/age" "$work"/plain/*
fi
gpg_rate="not installed"
if command -v gpg >/dev/null; then
  export GNUPGHOME="$work/src/gnupg"; mkdir -p "$GNUPGHOME"; chmod 700 "$GNUPGHOME"
  mkdir -p "$work/src/gpg"
  for f in "$model"/*; do
    gpg --batch --quiet --pinentry-mode loopback --passphrase bench --symmetric \
      --cipher-algo AES256 --compress-algo none -o "$work/src/gpg/$(basename "$f")" "$f"
  done
  t0=$(now)
  for f in "$work/src/gpg"/*; do
    gpg --batch --quiet --pinentry-mode loopback --passphrase bench -d \
      -o "$work/plain/$(basename "$f")" "$f" 2>/dev/null
  done
  t1=$(now)
  gpg_rate=$(gbps "$total" "$(elapsed "$t0" "$t1")")
  rm -rf "$work/src/gpg" "$work"/plain/*
fi

# 4. hosnctl itself. Each run: wall time from /usr/bin/time, peak RSS.
run_timed() {
  local label="$1"; shift
  /usr/bin/time -f "%e %M" -o "$work/time.$label" "$@" >/dev/null 2>"$work/err.$label" || {
    cat "$work/err.$label" >&2; exit 1; }
  read -r secs rss_kib <"$work/time.$label"
  echo "$(gbps "$total" "$secs") $(( rss_kib / 1024 ))"
}
bundle="$work/src/bundle"
read -r pack_rate pack_rss < <(run_timed pack "$hosnctl" bundle pack --model "$model" \
  --out "$bundle" --name bench --version 1 --dek "file:$keys/dek.hex" \
  --wrapped-dek "$keys/dek.wrapped" --kek-label bench-kek --signer-cert "$keys/signer.pem" \
  --signer-key "file:$keys/signer.key")
read -r verify_rate verify_rss < <(run_timed verify "$hosnctl" bundle verify --bundle "$bundle" \
  --ca "$keys/ca.pem")
decrypt() {
  local label="$1" target="$2"; shift 2
  local result
  result=$(run_timed "$label" "$hosnctl" bundle decrypt --bundle "$bundle" --ca "$keys/ca.pem" \
    --dek "file:$keys/dek.hex" --target "$target/out" "$@")
  if [ "$label" = dec_plain ]; then
    diff -r "$model" "$target/out" >/dev/null || { echo "decrypt mismatch" >&2; exit 1; }
  fi
  rm -rf "$target/out"
  echo "$result"
}
read -r dec_plain dec_plain_rss < <(decrypt dec_plain "$work/plain")
read -r dec_plain_fast dec_plain_fast_rss < <(decrypt dec_plain_fast "$work/plain" --skip-plaintext-digests)
read -r dec_huge dec_huge_rss < <(decrypt dec_huge "$work/huge")
read -r dec_huge_fast dec_huge_fast_rss < <(decrypt dec_huge_fast "$work/huge" --skip-plaintext-digests)

pct() { awk -v a="$1" -v b="$2" 'BEGIN { if (b + 0 > 0) printf "%.0f%%", 100 * a / b; else print "n/a" }'; }
cat <<REPORT
load average at the end: $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews every figure)
bundle benchmark: $(awk -v b="$total" 'BEGIN { printf "%.2f GiB", b / 1073741824 }') in $shards shards, $cores cores, $(uname -r), $(openssl version | cut -d' ' -f1-2)

ceilings (GB/s)
  AES-256-GCM decrypt, 1 core (openssl speed)        $aes_one
  AES-256-GCM decrypt, all cores (-multi $cores)          $aes_multi
  AES-256-GCM decrypt, all cores ($cores processes)       $aes_all
  SHA-256, 1 core (openssl speed)                    $sha_speed
  SHA-256, openssl dgst over the model               $sha_dgst
  cp into plain tmpfs                                $cp_plain
  cp into huge=always tmpfs                          $cp_huge
  age -d into plain tmpfs                            $age_rate
  gpg -d into plain tmpfs                            $gpg_rate

hosnctl (GB/s, peak RSS MiB)
  pack (hash + encrypt, tmpfs to tmpfs)              $pack_rate  $pack_rss   $(pct "$pack_rate" "$(awk -v s="$sha_speed" -v c="$cores" 'BEGIN{print s*c}')") of all-core SHA-256
  verify (signature, layout, tag digests)            $verify_rate  $verify_rss
  decrypt -> plain tmpfs, digests checked            $dec_plain  $dec_plain_rss   $(pct "$dec_plain" "$cp_plain") of cp
  decrypt -> plain tmpfs, tags only                  $dec_plain_fast  $dec_plain_fast_rss   $(pct "$dec_plain_fast" "$cp_plain") of cp
  decrypt -> huge tmpfs, digests checked             $dec_huge  $dec_huge_rss   $(pct "$dec_huge" "$aes_all") of all-core AES-GCM
  decrypt -> huge tmpfs, tags only                   $dec_huge_fast  $dec_huge_fast_rss   $(pct "$dec_huge_fast" "$aes_all") of all-core AES-GCM
REPORT
