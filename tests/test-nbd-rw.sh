#!/usr/bin/env bash
# Byte-exact reads and writes through the real plugin with nbdsh: odd
# offsets and lengths across block and segment edges, trim, zero,
# extents, FUA, flush, out-of-range requests; then a restart and a
# re-read.  On the directory store, and on the S3 test server when it is
# installed.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdsh --version
requires python3 -c 'import nbd'

hf_tmpdir

script="$tmp/rw.py"
cat > "$script" <<'PY'
import os, random, sys, nbd
uri, model_path, mode = sys.argv[1], sys.argv[2], sys.argv[3]
h = nbd.NBD()
h.connect_uri(uri)
size = h.get_size()
bs = 4096
if mode == "write":
    rnd = random.Random(1234)
    model = bytearray(size)
    # Edges: blocks, and segments (segment-size=256K).
    spots = [0, 1, bs - 1, bs, bs + 1, 256 * 1024 - 3, 256 * 1024,
             512 * 1024 - 1, size - 1, size - 5000]
    for i in range(400):
        if i < len(spots):
            off = spots[i]
            ln = min(size - off, rnd.choice([1, 7, bs, bs + 3, 3 * bs - 1]))
        else:
            off = rnd.randrange(0, size - 1)
            ln = min(size - off, rnd.choice([1, 17, 512, bs, 9000, 70000]))
        data = bytes(rnd.getrandbits(8) for _ in range(min(ln, 64))) * (ln // 64 + 1)
        data = data[:ln]
        flags = nbd.CMD_FLAG_FUA if i % 37 == 0 else 0
        h.pwrite(data, off, flags)
        model[off:off + ln] = data
        if i % 50 == 0:
            h.flush()
        # read back through every stage (buffer, uploading, committed)
        assert h.pread(ln, off) == data, "readback at %d+%d" % (off, ln)
    # trim and zero, aligned and not
    for off, ln in [(8 * bs, 16 * bs), (100 * bs + 100, 3 * bs), (0, 10)]:
        h.trim(ln, off)
        model[off:off + ln] = bytes(ln)
    for off, ln in [(300 * bs, 64 * bs), (77, 5000)]:
        h.zero(ln, off)
        model[off:off + ln] = bytes(ln)
    h.flush()
    assert h.pread(size, 0) == model, "whole image"
    # extents: a fully trimmed range must be reported as a hole
    h.trim(64 * bs, 1024 * bs)
    model[1024 * bs:1088 * bs] = bytes(64 * bs)
    h.flush()
    seen = []
    def cb(meta, off, ents, err):
        if meta == nbd.CONTEXT_BASE_ALLOCATION:
            pos = off
            for i in range(0, len(ents), 2):
                seen.append((pos, ents[i], ents[i + 1]))
                pos += ents[i]
        return 0
    h2 = nbd.NBD()
    h2.add_meta_context(nbd.CONTEXT_BASE_ALLOCATION)
    h2.connect_uri(uri)
    h2.block_status(64 * bs, 1024 * bs, cb)
    assert any(f & nbd.STATE_HOLE for (_, _, f) in seen), seen
    for (o, l, f) in seen:
        if f & nbd.STATE_ZERO:
            assert model[o:o + l] == bytes(l), "zero extent has data"
    # out of range: errors, never a crash
    for off, ln in [(size, 1), (size - 1, 2), (size + 4096, 4096)]:
        for op in ("pread", "pwrite", "trim", "zero"):
            try:
                if op == "pread": h.pread(ln, off)
                elif op == "pwrite": h.pwrite(b"x" * ln, off)
                elif op == "trim": h.trim(ln, off)
                else: h.zero(ln, off)
            except nbd.Error as e:
                pass
            else:
                raise AssertionError("%s out of range succeeded" % op)
    h2.shutdown()
    open(model_path, "wb").write(model)
else:
    model = open(model_path, "rb").read()
    got = h.pread(size, 0)
    assert got == model, "after restart: first difference at %d" % next(
        i for i in range(size) if got[i] != model[i])
h.shutdown()
print("ok", mode)
PY

run_store ()
{
  local url="$1"; shift
  hf_start "$url" size=8M segment-size=256K "$@"
  python3 "$script" "$uri" "$tmp/model" write
  hf_stop TERM
  hf_start "$url" segment-size=256K "$@"
  python3 "$script" "$uri" "$tmp/model" read
  hf_stop TERM
}

if hf_dir_half; then
  run_store "$tmp/vol"
fi

if hf_s3rver_start; then
  run_store "s3://$S3_BUCKET/rw" endpoint="$S3_ENDPOINT"
fi
echo "$0: ok"
