#!/usr/bin/env bash
# Import speed of a sparse raw image: `hyperfile import` against nbdcopy
# and qemu-img convert into the plugin, on the directory store.  The
# image is SIZE MiB with DATA MiB of random data in 16 MiB runs spread
# evenly, the rest holes.  Each tool writes a fresh volume; the times are
# wall clock, best of ROUNDS.
#
#   bench/import-sparse.sh BUILD-DIR [SIZE-MiB [DATA-MiB [ROUNDS]]]
#
# HF_OLD=PATH also times another hyperfile binary (an older build).
set -e
build="$(cd "${1:?usage: import-sparse.sh BUILD-DIR [SIZE [DATA [ROUNDS]]]}" && pwd)"
size_mib="${2:-1024}"
data_mib="${3:-256}"
rounds="${4:-3}"
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
PLUGIN="$build/plugin/.libs/nbdkit-hyperfile-plugin.so"
H="$build/tools/hyperfile"
tmp="$(mktemp -d --tmpdir hf-import.XXXXXX)"
trap 'rm -rf "$tmp"' EXIT

img="$tmp/img"
truncate -s "${size_mib}M" "$img"
runs=$(( data_mib / 16 ))
stride=$(( size_mib / runs ))
for (( i = 0; i < runs; i++ )); do
  dd if=/dev/urandom of="$img" bs=1M count=16 seek=$(( i * stride )) \
    conv=notrunc status=none
done
echo "image: ${size_mib} MiB, ${data_mib} MiB data in $runs runs of 16 MiB"

# best NAME CMD...: run CMD (with $vol fresh) ROUNDS times, print the best.
best ()
{
  local name="$1" b="" t0 t1 t i
  shift
  for (( i = 0; i < rounds; i++ )); do
    rm -rf "$tmp/vol" "$tmp/nbd.sock"
    vol="$tmp/vol"
    "$H" create "$vol" --size "${size_mib}M" > /dev/null
    t0=$(date +%s%N)
    eval "$@" > /dev/null
    t1=$(date +%s%N)
    t=$(( (t1 - t0) / 1000000 ))
    if [ -z "$b" ] || [ "$t" -lt "$b" ]; then b=$t; fi
  done
  printf '%-34s %4d.%02d s\n' "$name" $(( b / 1000 )) $(( b % 1000 / 10 ))
}

best "hyperfile import" '"$H" import "$img" "$vol"'
if [ -n "$HF_OLD" ]; then
  best "hyperfile import (HF_OLD)" '"$HF_OLD" import "$img" "$vol"'
fi
if command -v nbdcopy > /dev/null; then
  best "nbdcopy into the plugin" \
    'nbdkit -U "$tmp/nbd.sock" "$PLUGIN" "$vol" gc=false --run "nbdcopy \"$img\" \"\$uri\""'
fi
if command -v qemu-img > /dev/null; then
  best "qemu-img convert into the plugin" \
    'nbdkit -U "$tmp/nbd.sock" "$PLUGIN" "$vol" gc=false --run "qemu-img convert -n -f raw -O raw \"$img\" \"\$uri\""'
fi
