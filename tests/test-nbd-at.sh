#!/usr/bin/env bash
# at=SEQ: serve an older point in time read-only, beside the writer;
# at= beyond the newest point is refused at startup.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdsh --version
requires python3 -c 'import nbd'
hf_tmpdir

head_seq ()
{
  awk 'index($0, "hyperfile_head_seq{") == 1 { print $NF }' "$tmp/m"
}

# Version A, then version B on top of it.
hf_start "$tmp/vol" size=4M metrics="$tmp/m"
nbdsh -u "$uri" -c 'h.pwrite(b"A" * 10000, 777); h.flush()'
hf_stop TERM
seq_a="$(head_seq)"
[ "$seq_a" -ge 1 ]
hf_start "$tmp/vol" metrics="$tmp/m"
nbdsh -u "$uri" -c 'h.pwrite(b"B" * 5000, 1777); h.flush()'
seq_b="$(head_seq)"

# While the writer runs: at=A sees A only, and is read-only.
nbdkit -U "$(hf_usock)" "$PLUGIN" "$tmp/vol" at="$seq_a" --run 'nbdsh -u "$uri" -c "
assert h.is_read_only()
assert h.pread(10000, 777) == b\"A\" * 10000
try:
    h.pwrite(b\"x\", 0)
except nbd.Error:
    pass
else:
    raise AssertionError(\"write allowed at=\")
"'
hf_stop TERM
seq_b="$(head_seq)"
[ "$seq_b" -gt "$seq_a" ]
nbdkit -U "$(hf_usock)" "$PLUGIN" "$tmp/vol" at="$seq_b" --run 'nbdsh -u "$uri" -c "
assert h.pread(10000, 777) == b\"A\" * 1000 + b\"B\" * 5000 + b\"A\" * 4000
"'
if nbdkit -U "$(hf_usock)" "$PLUGIN" "$tmp/vol" at=999999 --run true \
    > "$tmp/out" 2>&1; then
  echo "$0: at= beyond the head was accepted"; exit 1
fi
grep 'out of range' "$tmp/out"
echo "$0: ok"
