#!/usr/bin/env bash
# Garbage collection, fsck, import and export through the admin command
# and the plugin:
#  - import of a raw image with holes (zero blocks not written), export
#    to a sparse file and to a pipe, both byte-exact;
#  - the plugin's background GC (gc=on, short retention) keeps the
#    store close to the live data under overwrites, beside a reader of
#    a snapshot; `hyperfile gc --dry-run` beside the live writer;
#  - fsck clean (text and --json), then a flipped byte in a data block
#    is reported with its object and offset and exit status 7;
#  - import/export round trip and gc + fsck on the S3 test server.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdsh --version
requires python3 -c 'import nbd'
: "${HYPERFILE:?HYPERFILE must point at the hyperfile command}"
hf_tmpdir
H="$HYPERFILE"

# A 24 MiB image: random data at random places, long zero runs between
# them, a zero tail.
python3 - "$tmp/img" <<'EOF'
import os, random, sys
random.seed(7)
with open(sys.argv[1], 'wb') as f:
    f.truncate(24 << 20)
    for i in range(120):
        f.seek(random.randrange(0, (20 << 20)) // 512 * 512)
        f.write(os.urandom(random.randrange(1, 40000)))
EOF

# status CMD...: run with output in $tmp/out, print the exit status.
status ()
{
  local r=0
  "$@" > "$tmp/out" 2>&1 || r=$?
  echo "$r"
}

# store_bytes DIR: bytes of every segment object of a dir-store volume.
store_bytes ()
{
  python3 -c '
import os, sys
n = 0
for e in os.scandir(sys.argv[1]):
    try:
        n += e.stat().st_size
    except FileNotFoundError:   # collected meanwhile
        pass
print(n)' "$1/seg%"
}

# s3_part: import/export round trip, gc and fsck on the S3 test server
# (or the external one: tests/functions.sh).
s3_part ()
{
  S="$H --endpoint $S3_ENDPOINT"
  url="s3://$S3_BUCKET/gc"
  $S create "$url" --size 32M
  $S import "$tmp/img" "$url"
  $S export "$url" "$tmp/s3.raw"
  cmp -n $((24 << 20)) "$tmp/img" "$tmp/s3.raw"
  [ "$(stat -c %b "$tmp/s3.raw")" -lt $(( (16 << 20) / 512 )) ]
  $S import "$tmp/img" "$url"          # everything again: garbage
  $S gc "$url" --retain=0 --grace=0 --json > "$tmp/s3gc.json"
  python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["deleted_segments"] > 0, j' "$tmp/s3gc.json"
  $S fsck "$url" --retain=0 --grace=0
  $S export "$url" - | head -c $((24 << 20)) | cmp - "$tmp/img"
}

# With HF_TEST_S3_ONLY=1 (the RGW run), only that.
if ! hf_dir_half; then
  hf_s3rver_start
  s3_part
  echo "$0: OK"
  exit 0
fi

# ---- import / export on the directory store ----
"$H" create "$tmp/vol" --size 32M
"$H" import "$tmp/img" "$tmp/vol" --json > "$tmp/imp.json"
python3 - "$tmp/imp.json" <<'EOF'
import json, sys
j = json.load(open(sys.argv[1]))
assert j["bytes"] == 24 << 20, j
assert 0 < j["written"] < 8 << 20, j              # holes were skipped
assert j["written"] + j["zero_skipped"] == j["bytes"], j
EOF
"$H" export "$tmp/vol" "$tmp/out.raw" --json > "$tmp/exp.json"
[ "$(stat -c %s "$tmp/out.raw")" = $((32 << 20)) ]
cmp -n $((24 << 20)) "$tmp/img" "$tmp/out.raw"
cmp <(tail -c $((8 << 20)) "$tmp/out.raw") <(head -c $((8 << 20)) /dev/zero)
# Sparse: far fewer blocks allocated than the file's size.
[ "$(stat -c %b "$tmp/out.raw")" -lt $(( (16 << 20) / 512 )) ]
# To a pipe, holes are zeros.
"$H" export "$tmp/vol" - | cmp - "$tmp/out.raw"
# From stdin, and importing zeros over data unmaps it.
head -c $((1 << 20)) /dev/zero | "$H" import - "$tmp/vol"
"$H" export "$tmp/vol" - | head -c $((1 << 20)) | cmp - <(head -c $((1 << 20)) /dev/zero)
# An image larger than the volume is a usage error.
head -c $((33 << 20)) /dev/zero > "$tmp/big"
[ "$(status "$H" import "$tmp/big" "$tmp/vol")" = 2 ]
rm -f "$tmp/big"

# ---- background GC in the plugin ----
"$H" create "$tmp/g" --size 8M
hf_start "$tmp/g" gc=on gc-interval=300ms gc-grace=0 retain=0 \
  segment-size=256K flush-interval=100ms
nbdsh -u "$uri" -c "h.pwrite(b'S' * (2 << 20), 0); h.flush()"
"$H" snapshot create "$tmp/g" keep
# Overwrite the same 2 MiB 20 times: 40 MiB written.
nbdsh -u "$uri" -c '
import os
for i in range(20):
    for off in range(0, 2 << 20, 256 << 10):
        h.pwrite(bytes([65 + i]) * (256 << 10), off)
    h.flush()
'
# Two `hyperfile gc` at once beside the writer (which collects too) and a
# server reading the snapshot: every run succeeds (without compaction:
# the writer holds the lease), the snapshot reads exact throughout.
nbdkit -U "$(hf_usock)" "$PLUGIN" "$tmp/g" at=keep --run "
  ( for i in 1 2 3; do \"$H\" gc \"$tmp/g\" --retain=0 --grace=0 > \"$tmp/gc1.out\" 2>&1 || exit 1; done ) &
  p1=\$!
  ( for i in 1 2 3; do \"$H\" gc \"$tmp/g\" --retain=0 --grace=0 > \"$tmp/gc2.out\" 2>&1 || exit 1; done ) &
  p2=\$!
  for i in \$(seq 1 10); do
    nbdsh -u \"\$uri\" -c 'assert h.pread(2 << 20, 0) == b\"S\" * (2 << 20)'
  done
  wait \$p1 && wait \$p2
"
grep 'collecting without compaction' "$tmp/gc1.out"
nbdsh -u "$uri" -c "assert h.pread(2 << 20, 0) == b'T' * (2 << 20)"
# gc --dry-run beside the writer: reports, deletes nothing itself.
"$H" gc "$tmp/g" --dry-run --retain=0 --grace=0 --json > "$tmp/dry.json"
python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["dry_run"] and j["segments"] > 0, j' "$tmp/dry.json"
# Let the background GC catch up, then check the space.
ok=
for i in $(seq 1 100); do
  b="$(store_bytes "$tmp/g")"
  # live: 2 MiB (head) + 2 MiB (snapshot) + metadata
  if [ "$b" -le $((6 << 20)) ]; then ok=1; break; fi
  sleep 0.2
done
echo "store bytes after background GC: $b"
[ -n "$ok" ]
nbdkit -U "$(hf_usock)" "$PLUGIN" "$tmp/g" at=keep --run "nbdsh -u \"\$uri\" -c '
assert h.pread(2 << 20, 0) == b\"S\" * (2 << 20)'"
nbdsh -u "$uri" -c "assert h.pread(2 << 20, 0) == b'T' * (2 << 20)"
hf_stop TERM
grep 'background gc failed' "$log" && exit 1

# ---- fsck ----
"$H" fsck "$tmp/g" --retain=0 --grace=0
"$H" fsck "$tmp/g" --json > "$tmp/fsck.json"
python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert j["ok"] and j["problems"] == 0 and j["problems_found"] == [], j
assert j["data_blocks"] > 0 and j["checkpoints"] > 0, j' "$tmp/fsck.json"
# Flip the last byte of the biggest segment: it is in its last data block.
seg="$(ls -S "$tmp/g/seg%" | head -1)"
f="$tmp/g/seg%/$seg"
size="$(stat -c %s "$f")"
python3 - "$f" <<'EOF'
import sys
with open(sys.argv[1], 'r+b') as f:
    f.seek(-1, 2); c = f.read(1); f.seek(-1, 2); f.write(bytes([c[0] ^ 1]))
EOF
[ "$(status "$H" fsck "$tmp/g")" = 7 ]
cat "$tmp/out"
grep -E "^DAMAGED seg/$seg offset $((size - 4096)): data block [0-9]+ CRC mismatch" "$tmp/out"
[ "$(status "$H" fsck "$tmp/g" --json)" = 7 ]
python3 -c '
import json, sys
j = json.load(open(sys.argv[1]))
assert not j["ok"] and j["problems"] >= 1, j
p = j["problems_found"][0]
assert p["object"] == "seg/" + sys.argv[2] and p["offset"] == int(sys.argv[3]), p
' "$tmp/out" "$seg" $((size - 4096))
[ "$(status "$H" fsck "$tmp/nothing-here")" = 3 ]

# ---- the S3 test server ----
if hf_s3rver_start; then
  s3_part
fi
echo "$0: OK"
