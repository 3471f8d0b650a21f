#!/usr/bin/env bash
# hyperfile resize URL SIZE grows a volume (data kept, the new end reads
# as zeros, older points keep their size); a smaller SIZE is refused
# (exit 2, nothing changed, what would be lost said) unless --force,
# which drops the end (a later grow reads zeros there); refused while a
# writer holds the lease (exit 5).  The plugin's size= larger than the volume grows it (with a
# write-ahead log too, and the grow survives a crash before any upload);
# a smaller size= and a larger one on a read-only server are refused.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdsh --version
requires python3 --version
hf_tmpdir

hf_tool_test
size_of ()
{
  "$HYPERFILE" info "$1" --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["size"])'
}

v="$tmp/v"
run 0 create "$v" --size 4M
head -c 4194304 /dev/urandom > "$tmp/a.img"
run 0 import "$tmp/a.img" "$v"
run 0 snapshot create "$v" small

# Grow: the data stays, the new end reads as zeros.
run 0 resize "$v" 8M
grep -q "4194304 -> 8388608" "$tmp/out" || fail "resize did not say it"
[ "$(size_of "$v")" = 8388608 ] || fail "size after resize"
run 0 export "$v" "$tmp/b.img"
[ "$(stat -c %s "$tmp/b.img")" = 8388608 ]
cmp -n 4194304 "$tmp/a.img" "$tmp/b.img" || fail "data changed by resize"
cmp -i 4194304 -n 4194304 "$tmp/b.img" /dev/zero || fail "new end not zero"
# The older point keeps its size.
run 0 export "$v" "$tmp/s.img" --at small
[ "$(stat -c %s "$tmp/s.img")" = 4194304 ] || fail "snapshot size changed"
# Not a multiple of the block size: rounded up, and said.
run 0 resize "$v" 8388609 --json
python3 - "$tmp/out" <<'PY' || fail "resize --json"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["old_size"] == 8388608 and d["size"] == 8388608 + 4096, d
PY
# The same size: nothing to do, exit 0.
run 0 resize "$v" 8392704
grep -q "already" "$tmp/out"

# Shrinking without --force says what it would drop and changes nothing.
run 2 resize "$v" 4M
grep -q "drops the last 4198400 bytes from the head, 0 of them data.*--force" \
  "$tmp/out" || fail "shrink refusal does not say what is lost"
[ "$(size_of "$v")" = 8392704 ]
run 2 resize "$v" 0
run 2 resize "$v" 9E
run 3 resize "$tmp/none" 8M

# Refused while a writer holds the lease.
hf_start "$v"
run 5 resize "$v" 16M
grep -q "is in use" "$tmp/out" || fail "lease holder not named"
hf_stop
[ "$(size_of "$v")" = 8392704 ]

# The plugin: a larger size= grows the volume.
hf_start "$v" size=12M
nbdsh -u "$uri" -c '
assert h.get_size() == 12 << 20, h.get_size()
h.pwrite(b"\x07" * 4096, (12 << 20) - 4096)
h.flush()
'
hf_stop
[ "$(size_of "$v")" = 12582912 ] || fail "size= did not grow the volume"

# With a log, killed before anything uploads: the grow and the write
# past the old end come back from the log.
hf_start "$v" size=16M wal="$tmp/wal" flush-interval=1h
nbdsh -u "$uri" -c '
assert h.get_size() == 16 << 20
h.pwrite(b"\x09" * 4096, (16 << 20) - 4096)
h.flush()
'
hf_stop KILL
hf_start "$v" wal="$tmp/wal"
nbdsh -u "$uri" -c '
assert h.get_size() == 16 << 20, h.get_size()
assert h.pread(4096, (16 << 20) - 4096) == b"\x09" * 4096
assert h.pread(4096, (12 << 20) - 4096) == b"\x07" * 4096
'
hf_stop
[ "$(size_of "$v")" = 16777216 ]

# A smaller size= is refused; a larger one on a read-only server too.
r=0; nbdkit -U "$tmp/x.sock" "$PLUGIN" "$v" size=8M --run true \
  > "$tmp/out" 2>&1 || r=$?
cat "$tmp/out"
[ "$r" = 1 ] && grep -q "disagrees\|smaller" "$tmp/out" ||
  fail "smaller size= accepted"
r=0; nbdkit -r -U "$tmp/x.sock" "$PLUGIN" "$v" size=32M --run true \
  > "$tmp/out" 2>&1 || r=$?
cat "$tmp/out"
[ "$r" = 1 ] && grep -q "read-only" "$tmp/out" ||
  fail "read-only server grew the volume"
[ "$(size_of "$v")" = 16777216 ]
run 0 fsck "$v"

# Shrinking with --force: the head loses its end, a grow after it reads
# zeros there (not the old data), the older point keeps it all.
run 0 snapshot create "$v" big
run 2 resize "$v" 8M
grep -q "drops the last 8388608 bytes from the head, 8192 of them data" \
  "$tmp/out" || fail "shrink refusal does not count the data"
run 0 resize "$v" 8M --force
grep -q "16777216 -> 8388608" "$tmp/out"
[ "$(size_of "$v")" = 8388608 ] || fail "not shrunk"
run 0 export "$v" "$tmp/c.img"
[ "$(stat -c %s "$tmp/c.img")" = 8388608 ]
cmp -n 4194304 "$tmp/a.img" "$tmp/c.img" || fail "shrink lost kept data"
run 0 resize "$v" 16M
run 0 export "$v" "$tmp/d.img" --force
cmp -i 8388608 -n 8388608 "$tmp/d.img" /dev/zero ||
  fail "the dropped end came back after a grow"
run 0 export "$v" "$tmp/e.img" --at big
cmp -i $((12582912 - 4096)):0 -n 4096 "$tmp/e.img" <(head -c 4096 /dev/zero | tr '\0' '\7') ||
  fail "the older point lost its end"
run 0 fsck "$v"
run 0 gc "$v" --retain 0s --grace 0s
run 0 fsck "$v"
echo "$0: ok"
