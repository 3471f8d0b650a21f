#!/usr/bin/env bash
# The history and space commands on encrypted volumes (issue #18): each
# works with the key and refuses without it, and no object in the store
# shows a marker the client wrote.
#   - diff --from/--to and export --from: the changed extents, and an
#     image at s1 brought to the head by them equals a full export;
#   - clone, and a clone of that clone (sharing the data key, each
#     wrapped in its own descriptor), children listing each level;
#   - gc with nothing retained keeps what the clones read (fsck passes
#     on all three afterwards);
#   - flatten of the clone of the clone: it reads the same after its
#     parent is deleted;
#   - torn uploads (the fault store keeps a prefix of a sealed segment
#     and the server dies, HF_TEST_TORN_PUT): after a restart every
#     acknowledged write is there, and fsck counts each torn object as
#     an incomplete upload, not as damage.
# The directory store only: the crypt store sits above any store, and
# test-nbd-crypt.sh runs the same sealing against the S3 server.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdsh --version
requires python3 -c 'import nbd'
requires openssl version
requires test -x "$HYPERFILE"
hf_tmpdir

hf_tool_test
openssl rand -hex 32 > "$tmp/k1"
openssl rand -hex 32 > "$tmp/k2"
chmod 600 "$tmp/k1" "$tmp/k2"
MARK="HF-CRYPT-TOOLS-MARKER-93b2"
M=1048576

# no_marker DIR...: the marker is in no file under the directories.
no_marker ()
{
  if grep -r -l -a -- "$MARK" "$@"; then
    fail "plaintext marker in the store (files above)"
  fi
}

# extents: the diff's JSON as "offset+length:data|hole ..."
extents ()
{
  python3 -c '
import json, sys
d = json.loads(open(sys.argv[1]).read())
print(" ".join("%d+%d:%s" % (e["offset"], e["length"],
               "data" if e["data"] else "hole") for e in d["extents"]))
' "$tmp/out"
}

# An image of text blocks holding the marker, and random data.
python3 - "$tmp/a.img" "$MARK" <<'PY'
import sys, os
path, mark = sys.argv[1:3]
bs = 4096
with open(path, "wb") as f:
    for i in range(512):
        f.write((mark + " parent block %d " % i).encode().ljust(bs, b"."))
    f.write(os.urandom(2 << 20))
PY

p="$tmp/parent" c1="$tmp/c1" c2="$tmp/c2"
TOOL_ARGS=(--key-file "$tmp/k1")
run 0 create "$p" --size 16M
run 0 import "$tmp/a.img" "$p"
run 0 snapshot create "$p" s1
hf_start "$p" key-file="$tmp/k1"
nbdsh -u "$uri" -c '
h.pwrite(b"'"$MARK"' head".ljust(4096, b"!"), 8 << 20)
h.trim(65536, 1 << 20)
h.flush()
'
hf_stop
run 0 snapshot create "$p" s2

# diff and an incremental export.
run 0 diff "$p" --from s1 --to s2 --json
[ "$(extents)" = "$((M))+65536:hole $((8 * M))+4096:data" ] ||
  fail "diff s1..s2: $(extents)"
run 0 export "$p" "$tmp/img" --at s1
run 0 export "$p" "$tmp/img" --from s1
run 0 export "$p" "$tmp/full" --force
cmp "$tmp/img" "$tmp/full" || fail "incremental export differs"
cp "$tmp/full" "$tmp/p-s2.img"
TOOL_ARGS=()
run 1 diff "$p" --from s1
grep -q "is encrypted: give its key" "$tmp/out" || fail "diff without key"
TOOL_ARGS=(--key-file "$tmp/k2")
run 1 export "$p" "$tmp/img" --from s1
grep -q "wrong key for volume" "$tmp/out" || fail "export with a wrong key"
cmp "$tmp/img" "$tmp/full" || fail "a refused export changed the image"

# A clone, and a clone of the clone.
TOOL_ARGS=(--key-file "$tmp/k1")
run 0 clone "$p@s1" "$c1"
hf_start "$c1" key-file="$tmp/k1"
nbdsh -u "$uri" -c '
h.pwrite(b"'"$MARK"' c1".ljust(4096, b"1"), 4 << 20)
h.flush()
'
hf_stop
run 0 clone "$c1" "$c2"
run 0 children "$p"
grep -q "$c1" "$tmp/out" || fail "children of the parent"
run 0 children "$c1"
grep -q "$c2" "$tmp/out" || fail "children of the clone"
cp "$tmp/a.img" "$tmp/c2.img"
truncate -s 16M "$tmp/c2.img"
python3 - "$tmp/c2.img" "$MARK" <<'PY'
import sys
path, mark = sys.argv[1:3]
with open(path, "r+b") as f:
    f.seek(4 << 20)
    f.write((mark + " c1").encode().ljust(4096, b"1"))
PY
run 0 export "$c2" "$tmp/got" --force
cmp "$tmp/c2.img" "$tmp/got" || fail "the clone of the clone reads wrong"
TOOL_ARGS=()
run 1 export "$c2" "$tmp/got" --force
grep -q "is encrypted: give its key" "$tmp/out" || fail "c2 without key"
TOOL_ARGS=(--key-file "$tmp/k1")

# Garbage: overwrite the parent, collect with nothing retained; the
# clones' bases stay.
hf_start "$p" key-file="$tmp/k1" segment-size=256K
nbdsh -u "$uri" -c '
for i in range(64):
    h.pwrite(bytes([i]) * 65536, i * 65536)
h.flush()
'
hf_stop
run 0 gc "$p" --retain 0s --grace 0s
for v in "$p" "$c1" "$c2"; do
  run 0 fsck "$v"
done
run 0 export "$c2" "$tmp/got" --force
cmp "$tmp/c2.img" "$tmp/got" || fail "gc of the parent broke a clone"

# Flatten the clone of the clone; its parent can then go.
run 0 flatten "$c2"
run 0 children "$c1"
grep -q "no clones" "$tmp/out" || fail "c2 still registered on c1"
run 0 delete "$c1"
run 0 export "$c2" "$tmp/got" --force
cmp "$tmp/c2.img" "$tmp/got" || fail "the flattened clone reads wrong"
run 0 fsck "$c2"
no_marker "$p" "$c2"

# Torn uploads of sealed segments, with the log: three rounds.
t="$tmp/torn" j="$tmp/journal" nblocks=512
params=(size=16M segment-size=64K flush-interval=100ms wal="$tmp/wal"
        gc=off key-file="$tmp/k1")
hf_start "$t" "${params[@]}"
hf_stop TERM
for r in 1 2 3; do
  hf_torn_round "$t" "$j" $nblocks $(( 2 + r )) $((r * 7919)) "${params[@]}"
  echo "round $r: $torn_what"
done
hf_start "$t" "${params[@]}"
hf_stop TERM
run 0 fsck "$t"
grep -q "^$t: 3 incomplete upload(s)" "$tmp/out" ||
  fail "expected 3 incomplete uploads"
hf_start "$t" "${params[@]/wal=*/wal=off}"
python3 "$abs_srcdir/wal-client.py" verify "$uri" "$j" $nblocks
hf_stop TERM
echo "$0: ok"
