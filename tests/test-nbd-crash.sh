#!/usr/bin/env bash
# Durability through the plugin: after SIGKILL (no cleanup at all), every
# write acknowledged before a completed FLUSH, or sent with FUA, is there;
# each later write is either wholly there or wholly absent, and they
# form a prefix of the write order.  The dead server's lease is claimed
# by the next one on the same host.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdsh --version
requires python3 -c 'import nbd'
hf_tmpdir

run_store ()
{
  local url="$1"; shift
  hf_start "$url" size=8M segment-size=256K flush-interval=200ms "$@"
  python3 - "$uri" <<'PY'
import sys, nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
bs = 4096
# Flushed: blocks 0..99 hold 1..100; blocks 100..102 written with FUA.
for i in range(100):
    h.pwrite(bytes([i + 1]) * bs, i * bs)
h.flush()
h.pwrite(b"\xfe" * 3 * bs, 100 * bs, nbd.CMD_FLAG_FUA)
# Not flushed: 3-block writes from block 200 on, in order.
for i in range(150):
    h.pwrite(bytes([i + 50]) * 3 * bs, (200 + 3 * i) * bs)
PY
  hf_stop KILL
  hf_start "$url" "$@"
  python3 - "$uri" <<'PY'
import sys, nbd
h = nbd.NBD()
h.connect_uri(sys.argv[1])
bs = 4096
for i in range(100):
    assert h.pread(bs, i * bs) == bytes([i + 1]) * bs, "flushed block %d lost" % i
assert h.pread(3 * bs, 100 * bs) == b"\xfe" * 3 * bs, "FUA write lost"
present = []
for i in range(150):
    got = h.pread(3 * bs, (200 + 3 * i) * bs)
    new = bytes([i + 50]) * 3 * bs
    assert got in (new, bytes(3 * bs)), "write %d torn" % i
    present.append(got == new)
n = present.count(True)
assert present == [True] * n + [False] * (150 - n), "not a prefix: %r" % present
print("after SIGKILL: %d of 150 unflushed writes survived (a prefix)" % n)
PY
  hf_stop TERM
}

if hf_dir_half; then
  run_store "$tmp/vol"
fi
if hf_s3rver_start; then
  run_store "s3://$S3_BUCKET/crash" endpoint="$S3_ENDPOINT"
fi
echo "$0: ok"
