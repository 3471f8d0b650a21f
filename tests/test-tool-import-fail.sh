#!/usr/bin/env bash
# An import that fails part-way leaves no half-written head: the
# volume is rolled back to its state before the import (the partial
# import stays readable as an older point), or, for a volume that had
# never been written, left empty; the message says which.  Here the
# failure is an image from a pipe that turns out larger than the
# volume, found after 8 MiB of it were written.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires python3 --version
hf_tmpdir

hf_tool_test
# pipe_import FILE URL: FILE through a pipe (its size unknown).
pipe_import ()
{
  local want="$1" r=0
  cat "$2" | "$HYPERFILE" import - "$3" > "$tmp/out" 2>&1 || r=$?
  echo "--- cat $2 | hyperfile import - $3 (exit $r)"; cat "$tmp/out"
  [ "$r" = "$want" ] || fail "import: exit $r, want $want"
}
mapped ()
{
  "$HYPERFILE" info "$1" --json |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["mapped_blocks"])'
}

head -c 4194304 /dev/urandom > "$tmp/a.img"
head -c 12582912 /dev/urandom > "$tmp/big.img"

# A volume with data: rolled back to it.
v="$tmp/v"
run 0 create "$v" --size 8M
run 0 import "$tmp/a.img" "$v"
pipe_import 2 "$tmp/big.img" "$v"
grep -q "larger than the volume" "$tmp/out"
grep -q "rolled back to segment [0-9]*, its state before the import" \
  "$tmp/out" || fail "the message does not say it rolled back"
run 0 export "$v" "$tmp/after.img"
cmp -n 4194304 "$tmp/a.img" "$tmp/after.img" || fail "old data not back"
cmp -i 4194304 -n 4194304 "$tmp/after.img" /dev/zero ||
  fail "part of the failed import is at the head"
run 0 ls "$v"
grep -q rollback "$tmp/out" || fail "no rollback point"
run 0 fsck "$v"

# A volume never written: left empty.
w="$tmp/w"
run 0 create "$w" --size 8M
pipe_import 2 "$tmp/big.img" "$w"
grep -q "left empty" "$tmp/out" || fail "the message does not say so"
[ "$(mapped "$w")" = 0 ] || fail "part of the failed import is at the head"
run 0 fsck "$w"

# A successful import after that is whole.
run 0 import "$tmp/a.img" "$w"
run 0 export "$w" "$tmp/w.img" --force
cmp -n 4194304 "$tmp/a.img" "$tmp/w.img"
echo "$0: ok"
