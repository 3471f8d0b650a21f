#!/usr/bin/env bash
# hyperfile flatten CLONE copies every block and index node the clone's
# head still reads from its parent into the clone's own segments,
# unregisters it from the parent, and marks its descriptor flattened;
# the parent can then be deleted without --force and the clone reads,
# writes, reopens, lists its points and passes fsck without it.
# Refused for a volume that is not a clone (exit 2) and while a writer
# holds the clone's lease (exit 5); a second flatten has nothing to do.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdsh --version
requires python3 --version
hf_tmpdir

hf_tool_test

p="$tmp/parent"
c="$tmp/clone"
run 0 create "$p" --size 16M
# Enough blocks for an index of several nodes, some overwritten below.
head -c 8388608 /dev/urandom > "$tmp/p.img"
run 0 import "$tmp/p.img" "$p"
run 0 clone "$p" "$c"
head -c 1048576 /dev/urandom > "$tmp/c.img"
hf_start "$c"
nbdsh -u "$uri" -c '
with open("'"$tmp/c.img"'", "rb") as f:
    h.pwrite(f.read(), 2 << 20)
h.flush()
'
run 5 flatten "$c"
grep -q "is in use" "$tmp/out" || fail "lease holder not named"
hf_stop
# What the clone must read after the flatten.
cp "$tmp/p.img" "$tmp/want.img"
dd if="$tmp/c.img" of="$tmp/want.img" bs=1M seek=2 conv=notrunc status=none
truncate -s 16M "$tmp/want.img"

run 2 flatten "$p"
grep -q "not a clone" "$tmp/out"
run 3 flatten "$tmp/none"

run 0 flatten "$c" --json
python3 - "$tmp/out" <<'PY' || fail "flatten --json"
import json, sys
d = json.loads(open(sys.argv[1]).read().splitlines()[-1])
assert d["moved_blocks"] == 7 * 256, d
assert d["unregistered"] and d["flattened_at"] > 0, d
PY
run 0 children "$p"
grep -q "no clones" "$tmp/out" || fail "still registered"
run 0 info "$c"
grep -q "flattened at segment" "$tmp/out" || fail "info does not say so"
run 0 flatten "$c"
grep -q "already flattened" "$tmp/out"

# The parent goes; the clone does not miss it.
run 0 delete "$p"
run 0 export "$c" "$tmp/got.img"
cmp "$tmp/want.img" "$tmp/got.img" || fail "the clone lost data"
run 0 ls "$c"
run 0 fsck "$c"
hf_start "$c"
nbdsh -u "$uri" -c '
h.pwrite(b"\x05" * 4096, 0)
h.flush()
'
hf_stop
hf_start "$c"
nbdsh -u "$uri" -c '
assert h.pread(4096, 0) == b"\x05" * 4096
with open("'"$tmp/want.img"'", "rb") as f:
    want = f.read()
assert h.pread(len(want) - 4096, 4096) == want[4096:]
'
hf_stop
run 0 gc "$c" --retain 0s --grace 0s
run 0 fsck "$c"
run 0 export "$c" "$tmp/got2.img"
cmp -i 4096 "$tmp/want.img" "$tmp/got2.img" || fail "gc lost data"

# A clone never written (its head is the parent's checkpoint).
run 0 create "$tmp/p2" --size 8M
run 0 import "$tmp/c.img" "$tmp/p2"
run 0 clone "$tmp/p2" "$tmp/c3"
run 0 flatten "$tmp/c3"
grep -q "Unregistered from the parent" "$tmp/out"
run 0 delete "$tmp/p2"
run 0 export "$tmp/c3" "$tmp/got3.img"
cmp -n 1048576 "$tmp/c.img" "$tmp/got3.img" || fail "c3 lost data"
run 0 fsck "$tmp/c3"
echo "$0: ok"
