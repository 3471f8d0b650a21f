#!/usr/bin/env bash
# Points in time through nbdkit and the admin command, on the directory
# store: `hyperfile ls`, snapshots, at=SEQ|TIMESTAMP|SNAPSHOT served
# beside a live writer, rollback (older history stays readable), a clone
# that diverges from its parent, and the errors with their exit codes.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdsh --version
requires python3 -c 'import nbd'
: "${HYPERFILE:?HYPERFILE must point at the hyperfile command}"
hf_tmpdir
H="$HYPERFILE"

# expect URL CHAR [PARAMS...]: the first 8 KiB of URL are CHAR.
expect ()
{
  local url="$1" c="$2"
  shift 2
  nbdkit -U "$(hf_usock)" "$PLUGIN" "$url" "$@" --run "nbdsh -u \"\$uri\" -c '
assert h.pread(8192, 0) == b\"$c\" * 8192, h.pread(16, 0)'"
}

# write CHAR: through the running server, flushed.
write ()
{
  nbdsh -u "$uri" -c "h.pwrite(b'$1' * 8192, 0); h.flush()"
}

# head URL: the head seq, from `hyperfile ls --json`.
head_of ()
{
  "$H" ls "$1" --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["head"])'
}

# status CMD...: run, print the exit status (never fails).
status ()
{
  local r=0
  "$@" > "$tmp/out" 2>&1 || r=$?
  echo "$r"
}

"$H" create "$tmp/vol" --size 4M
hf_start "$tmp/vol"
write A
seq_a="$(head_of "$tmp/vol")"
sleep 0.2
between="$(date -u +%Y-%m-%dT%H:%M:%S.%NZ)"
sleep 0.2
write B
seq_b="$(head_of "$tmp/vol")"
"$H" snapshot create "$tmp/vol" snapA --at "$seq_a"
"$H" snapshot create "$tmp/vol" snapB
write C
seq_c="$(head_of "$tmp/vol")"
[ "$seq_a" -lt "$seq_b" ] && [ "$seq_b" -lt "$seq_c" ]

# Beside the live writer: by snapshot, by time, by seq.
expect "$tmp/vol" A at=snapA
expect "$tmp/vol" B at=snapB
expect "$tmp/vol" A at="$between"
expect "$tmp/vol" B at="$seq_b"
expect "$tmp/vol" C at=2400-01-01T00:00:00Z
"$H" ls "$tmp/vol" | grep -E "^$seq_a .*snapA"
"$H" snapshot list "$tmp/vol" --json | python3 -c '
import json, sys
s = json.load(sys.stdin)
assert [x["name"] for x in s] == ["snapA", "snapB"], s'

# Rollback needs the writer lease: refused while the writer runs.
[ "$(status "$H" rollback "$tmp/vol" snapA)" = 5 ]
grep -i 'lease' "$tmp/out"
hf_stop TERM

# Rollback to snapA: the head reads A, the newer points still read
# their own data, the rollback is a point of its own.
"$H" rollback "$tmp/vol" snapA
expect "$tmp/vol" A
expect "$tmp/vol" C at="$seq_c"
expect "$tmp/vol" B at=snapB
"$H" ls "$tmp/vol" --json | python3 -c '
import json, sys
p = json.load(sys.stdin)["points"]
assert p[0]["rollback"] and p[0]["checkpoint"], p[0]'

# A clone of point B in another directory diverges from its parent.
"$H" clone "$tmp/vol@snapB" "$tmp/clone"
expect "$tmp/clone" B
hf_start "$tmp/clone"
write D
hf_stop TERM
hf_start "$tmp/vol"
write E
hf_stop TERM
expect "$tmp/clone" D
expect "$tmp/vol" E
expect "$tmp/clone" B at="$seq_b"
expect "$tmp/vol" B at="$seq_b"
"$H" ls "$tmp/clone" | grep -E "^$seq_b .*parent"
"$H" info "$tmp/clone" | grep "clone of: *file://$tmp/vol at segment $seq_b"

# Errors, each with its exit status and a message.
[ "$(status "$H" snapshot create "$tmp/vol" snapA)" = 4 ]
grep 'snapshot snapA already exists' "$tmp/out"
[ "$(status "$H" rollback "$tmp/vol" nosuch)" = 6 ]
grep 'snapshot nosuch does not exist' "$tmp/out"
[ "$(status "$H" rollback "$tmp/vol" 999999)" = 6 ]
grep 'not a point in time' "$tmp/out"
[ "$(status "$H" rollback "$tmp/vol" 2026-11-25T99:00:00Z)" = 2 ]
grep 'not a time in ISO 8601' "$tmp/out"
[ "$(status "$H" rollback "$tmp/vol" 1999-01-01T00:00:00Z)" = 6 ]
grep 'before the first point' "$tmp/out"
[ "$(status "$H" clone "$tmp/vol" "$tmp/clone")" = 4 ]
grep 'already exists' "$tmp/out"
[ "$(status "$H" snapshot delete "$tmp/vol" nosuch)" = 6 ]
[ "$(status "$H" snapshot create "$tmp/vol" 'bad/name')" = 2 ]
[ "$(status "$H" ls "$tmp/absent")" = 3 ]
if nbdkit -U "$(hf_usock)" "$PLUGIN" "$tmp/vol" at=nosuch --run true > "$tmp/out" 2>&1
then
  echo "$0: at=nosuch was accepted"; exit 1
fi
grep 'snapshot nosuch does not exist' "$tmp/out"
"$H" snapshot delete "$tmp/vol" snapA
[ "$(status "$H" snapshot delete "$tmp/vol" snapA)" = 6 ]
echo "$0: ok"
