#!/usr/bin/env bash
# Sparse images in and out: nbdcopy copies a sparse raw image into the
# volume and back byte for byte, and `nbdinfo --map` reports the holes;
# qemu-img converts a qcow2 into the volume and back (compared), and
# qemu-io writes and verifies patterns.  Directory store, then the S3
# test server when it is installed.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdcopy --version
requires nbdinfo --version
requires qemu-img --version
requires qemu-io --version
requires truncate --version
hf_tmpdir

# A 24 MiB sparse image: data at the start, in the middle (unaligned)
# and at the end, holes between.
img="$tmp/sparse.img"
truncate -s 24M "$img"
head -c 1M /dev/urandom | dd of="$img" conv=notrunc status=none
head -c 300000 /dev/urandom | dd of="$img" bs=1 seek=$((10 * 1048576 + 123)) \
  conv=notrunc status=none
head -c 65536 /dev/urandom | dd of="$img" bs=65536 seek=$((24 * 16 - 1)) \
  conv=notrunc status=none

run_store ()
{
  local url="$1"; shift

  # nbdcopy in, map, nbdcopy out.
  hf_start "$url" size=24M segment-size=1M "$@"
  nbdcopy "$img" "$uri"
  nbdinfo --map "$uri" > "$tmp/map"
  cat "$tmp/map"
  # The 1M..10M range was never written: it must be reported as a hole.
  awk '$1 <= 1048576 && $1 + $2 >= 10485760 && $3 == 3 { ok = 1 }
       END { exit !ok }' "$tmp/map"
  rm -f "$tmp/out.img"
  nbdcopy "$uri" "$tmp/out.img"
  cmp "$img" "$tmp/out.img"
  hf_stop TERM

  # After a restart: still identical, holes still holes.
  hf_start "$url" "$@"
  rm -f "$tmp/out.img"
  nbdcopy "$uri" "$tmp/out.img"
  cmp "$img" "$tmp/out.img"
  nbdinfo --map "$uri" | grep -q 'hole'

  # qemu-img: a qcow2 in, raw out again, compared.
  qemu-img create -q -f qcow2 "$tmp/src.qcow2" 24M
  qemu-io -f qcow2 -c 'write -P 0x5a 0 1M' -c 'write -P 0xa5 5000k 7k' \
    -c 'write -P 0x33 23M 1M' "$tmp/src.qcow2" > /dev/null
  qemu-img convert -n -f qcow2 -O raw "$tmp/src.qcow2" "$uri"
  qemu-img compare -f qcow2 -F raw "$tmp/src.qcow2" "$uri"
  rm -f "$tmp/back.qcow2"
  qemu-img convert -f raw -O qcow2 "$uri" "$tmp/back.qcow2"
  qemu-img compare "$tmp/src.qcow2" "$tmp/back.qcow2"
  qemu-img map -f raw --output=json "$uri" | grep -q '"data": false'

  # qemu-io: unaligned patterns written, verified, overwritten, verified.
  qemu-io -f raw -c 'write -P 0x11 4095 9000' -c 'read -P 0x11 4095 9000' \
    -c 'write -P 0x22 6000 100' -c 'read -P 0x11 4095 1905' \
    -c 'read -P 0x22 6000 100' -c 'read -P 0x11 6100 6995' \
    -c 'write -z 1M 512k' -c 'read -P 0 1M 512k' -c flush "$uri" \
    > "$tmp/qemu-io.out"
  cat "$tmp/qemu-io.out"
  if grep -qi 'pattern verification failed\|error' "$tmp/qemu-io.out"; then
    echo "$0: qemu-io verification failed"; exit 1
  fi
  hf_stop TERM
}

run_store "$tmp/vol"
if hf_s3rver_start; then
  run_store "s3://$S3_BUCKET/copy" endpoint="$S3_ENDPOINT"
fi
echo "$0: ok"
