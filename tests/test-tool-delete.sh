#!/usr/bin/env bash
# hyperfile delete URL: refuses while a writer holds the lease (exit 5)
# or while clones depend on the volume (exit 5, unless --force); deletes
# every object of the volume; a clone is unregistered from its parent,
# so the parent can then be deleted; --json; exit 3 for no volume.
# hyperfile du: store bytes, bytes mapped at the head and at each
# snapshot, and what gc would reclaim.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdsh --version
requires python3 --version
hf_tmpdir

hf_tool_test
# objects DIR: how many files the directory store holds.
objects ()
{
  find "$1" -type f | wc -l
}

hf_start "$tmp/base" size=8M gc=false
nbdsh -u "$uri" -c 'h.pwrite(b"\x01" * 262144, 0); h.flush()'
run 5 delete "$tmp/base"
grep -q "is in use: writer lease epoch 1 held by .* pid $hf_pid" "$tmp/out"
hf_stop
[ "$(objects "$tmp/base")" -gt 2 ]

run 0 clone "$tmp/base" "$tmp/child"
run 5 delete "$tmp/base"
grep -q "clone.*$tmp/child" "$tmp/out" || fail "the clone not named"
grep -q -- "--force" "$tmp/out"
run 0 info "$tmp/base"

# Deleting the clone unregisters it; then the parent goes too.
run 0 delete "$tmp/child" --json
python3 - "$tmp/out" "$tmp/base" <<'PY' || fail "delete --json"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["deleted_objects"] >= 1 and d["unregistered_from"].endswith(sys.argv[2]), d
PY
[ "$(objects "$tmp/child")" = 0 ] || fail "objects left in the clone"
run 3 info "$tmp/child"
run 0 delete "$tmp/base"
[ "$(objects "$tmp/base")" = 0 ] || fail "objects left in the volume"
run 3 info "$tmp/base"
run 3 delete "$tmp/base"

# --force deletes a parent with clones; the clone then says what is gone.
run 0 create "$tmp/p2" --size 4M
head -c 65536 /dev/urandom > "$tmp/img"
run 0 import "$tmp/img" "$tmp/p2"
run 0 clone "$tmp/p2" "$tmp/c2"
run 0 delete "$tmp/p2" --force
[ "$(objects "$tmp/p2")" = 0 ]

# du
run 0 create "$tmp/d" --size 8M
head -c 1048576 /dev/urandom > "$tmp/a.img"
head -c 2097152 /dev/urandom > "$tmp/b.img"
run 0 import "$tmp/a.img" "$tmp/d"
run 0 snapshot create "$tmp/d" one
run 0 import "$tmp/b.img" "$tmp/d"
run 0 import "$tmp/b.img" "$tmp/d"
run 0 du "$tmp/d" --retain 0s --grace 0s --json
cp "$tmp/out" "$tmp/du1"
run 0 gc "$tmp/d" --retain 0s --grace 0s --dry-run --json
cp "$tmp/out" "$tmp/gc1"
store=$(find "$tmp/d" -type f -printf '%s\n' | awk '{ s += $1 } END { print s }')
python3 - "$tmp/du1" "$tmp/gc1" "$store" <<'PY' || fail "du --json"
import json, sys
d = json.load(open(sys.argv[1]))
g = json.load(open(sys.argv[2]))
assert d["store_bytes"] == int(sys.argv[3]), (d, sys.argv[3])
assert d["head_live_bytes"] == 2 << 20, d
assert [(s["name"], s["live_bytes"]) for s in d["snapshots"]] == [("one", 1 << 20)], d
assert d["reclaimable_bytes"] == g["deleted_bytes"] > 0, (d, g)
PY
run 0 gc "$tmp/d" --retain 0s --grace 0s
run 0 du "$tmp/d" --retain 0s --grace 0s
grep -qE "^reclaimable: +0 bytes" "$tmp/out" || fail "du after gc"
grep -qE "^head: +2097152 bytes mapped" "$tmp/out"
grep -qE "^snapshot one: +1048576 bytes mapped" "$tmp/out"
echo "$0: ok"
