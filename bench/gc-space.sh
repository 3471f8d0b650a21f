#!/usr/bin/env bash
# Space benchmark for garbage collection and compaction: through the
# plugin with background GC (gc=on, retain=0, gc-grace=0), on the S3 test
# server (or the directory store with HF_BENCH_DIR=1), fill LIVE MiB,
# then overwrite it with random 4 KiB writes (ROUNDS times its size,
# flushed every 256 writes), wait for GC to settle and compare the bytes
# in the bucket with the live data.
#
#   bench/gc-space.sh BUILD-DIR [LIVE-MiB [ROUNDS]]
#
# Prints "store/live" ratios before and after; needs nbdkit, nbdsh and,
# for S3, node with the pinned s3rver (npm ci).
set -e
build="$(cd "${1:?usage: gc-space.sh BUILD-DIR [LIVE-MiB [ROUNDS]]}" && pwd)"
live_mib="${2:-32}"
rounds="${3:-4}"
export PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH
abs_srcdir="$(cd "$(dirname "$0")/../tests" && pwd)"
. "$abs_srcdir/functions.sh"
PLUGIN="$build/plugin/.libs/nbdkit-hyperfile-plugin.so"
H="$build/tools/hyperfile"
tmp="$(mktemp -d --tmpdir hf-gc-space.XXXXXX)"
cleanup_add "rm -rf '$tmp'"

if [ -n "$HF_BENCH_DIR" ]; then
  url="$tmp/vol"
  opts=()
else
  start_s3rver
  url="s3://$S3_BUCKET/space"
  opts=("endpoint=$S3_ENDPOINT")
  H="$H --endpoint $S3_ENDPOINT"
fi
$H create "$url" --size $((live_mib * 2))M >/dev/null
nbdkit -f -U "$tmp/sock" -P "$tmp/pid" "$PLUGIN" "$url" "${opts[@]}" \
  gc=on gc-interval=1s gc-grace=0 retain=0 segment-size=4M \
  flush-interval=1s > "$tmp/log" 2>&1 &
cleanup_add "kill_ours TERM \$(cat '$tmp/pid' 2>/dev/null) '$tmp/sock'"
for i in $(seq 1 100); do [ -S "$tmp/sock" ] && break; sleep 0.1; done
uri="nbd+unix:///?socket=$tmp/sock"

bytes () { $H gc "$url" --dry-run --json | python3 -c '
import json, sys; print(json.load(sys.stdin)["bytes"])'; }

t0=$(date +%s.%N)
nbdsh -u "$uri" -c "
import os, random
live = $live_mib << 20
for off in range(0, live, 1 << 20):
    h.pwrite(os.urandom(1 << 20), off)
h.flush()
random.seed(1)
n = 0
for i in range($rounds * (live >> 12)):
    h.pwrite(os.urandom(4096), random.randrange(live >> 12) << 12)
    n += 1
    if n % 256 == 0:
        h.flush()
h.flush()
"
t1=$(date +%s.%N)
before="$(bytes)"
live=$((live_mib << 20))
# GC runs every second: wait until the store stops shrinking.
prev=0
for i in $(seq 1 60); do
  sleep 2
  now="$(bytes)"
  [ "$now" = "$prev" ] && break
  prev="$now"
done
python3 -c "
live, before, after = $live, $before, $now
print('written: %d MiB of random 4 KiB overwrites in %.1f s' % (
    $rounds * live >> 20, $t1 - $t0))
print('live data: %d bytes' % live)
print('store right after the writes: %d bytes (%.3fx live)' % (before, before / live))
print('store after background GC + compaction: %d bytes (%.3fx live)' % (after, after / live))
"
grep -c 'background gc failed' "$tmp/log" | sed 's/^/background GC failures: /'
