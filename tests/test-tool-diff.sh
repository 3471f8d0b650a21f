#!/usr/bin/env bash
# hyperfile diff URL --from A [--to B] lists the extents written between
# two points (from the segments' extent tables: writes, trims, a grow),
# each as data or a hole at B; export --from A writes only those into an
# image exported at A, which then equals a full export at B (also across
# a grow and a rollback, where the list widens).  Bad points: exit 2
# (--from not older than --to) and 6 (unknown); export --from needs an
# existing file (exit 2).  On the directory store and on the S3 server.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdsh --version
requires python3 --version
hf_tmpdir

hf_tool_test
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

scenario ()
{
  local v="$1" M=1048576
  shift
  rm -f "$tmp/img" "$tmp/full"
  run 0 create "$v" --size 16M
  head -c $((4 * M)) /dev/urandom > "$tmp/a.img"
  run 0 import "$tmp/a.img" "$v"
  run 0 snapshot create "$v" s1
  hf_start "$v" "$@"
  nbdsh -u "$uri" -c '
h.pwrite(b"\x01" * 4096, 8 << 20)
h.trim(65536, 1 << 20)
h.pwrite(b"\x02" * 8192, (3 << 20) - 4096)
h.flush()
'
  hf_stop
  run 0 snapshot create "$v" s2

  run 0 diff "$v" --from s1 --to s2 --json
  [ "$(extents)" = "$((M))+65536:hole $((3 * M - 4096))+8192:data $((8 * M))+4096:data" ] ||
    fail "diff s1..s2: $(extents)"
  run 0 diff "$v" --from s1
  grep -qE "^$((8 * M)) +4096 +data" "$tmp/out" || fail "diff text"
  run 0 diff "$v" --from s2 --json
  [ "$(extents)" = "" ] || fail "diff s2..head not empty"

  # An image at s1, brought to s2 by writing only the changes.
  run 0 export "$v" "$tmp/img" --at s1
  run 0 export "$v" "$tmp/img" --from s1 --json
  python3 - "$tmp/out" <<'PY' || fail "export --from --json"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["written"] == 4096 + 8192 and d["zeroed"] == 65536, d
PY
  run 0 export "$v" "$tmp/full" --force
  cmp "$tmp/img" "$tmp/full" || fail "incremental export differs"

  # A grow and a write past the old end.
  run 0 resize "$v" 20M
  hf_start "$v" "$@"
  nbdsh -u "$uri" -c 'h.pwrite(b"\x03" * 4096, 18 << 20); h.flush()'
  hf_stop
  run 0 export "$v" "$tmp/img" --from s2
  run 0 export "$v" "$tmp/full" --force
  [ "$(stat -c %s "$tmp/img")" = $((20 * M)) ] || fail "image not grown"
  cmp "$tmp/img" "$tmp/full" || fail "incremental export after a grow"
  run 0 snapshot create "$v" s3

  # A rollback to s1 in between: the list widens, the result is right.
  run 0 rollback "$v" s1
  run 0 diff "$v" --from s3 --json
  grep -q '"widened": true' "$tmp/out" || fail "not widened"
  run 0 export "$v" "$tmp/img" --from s3
  run 0 export "$v" "$tmp/full" --force
  cmp "$tmp/img" "$tmp/full" || fail "incremental export after a rollback"

  run 2 diff "$v" --from s2 --to s1
  run 6 diff "$v" --from nosuch
  run 2 diff "$v"
  run 2 export "$v" "$tmp/missing.img" --from s1
  run 2 export "$v" - --from s1
}

TOOL_ARGS=()
scenario "$tmp/v"

start_s3rver
_hf_adopt_exit_trap
TOOL_ARGS=(--endpoint "$S3_ENDPOINT")
scenario "s3://$S3_BUCKET/diff" endpoint="$S3_ENDPOINT"
echo "$0: ok"
