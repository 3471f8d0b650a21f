#!/usr/bin/env bash
# The admin command as a user meets it: --version, `help CMD` and
# `CMD --help`; exit codes as hyperfile(1) documents them (an all-digit
# snapshot name is a usage error, 2, not "no such point", 6); export does
# not overwrite a file without --force; import into a missing volume says
# to create it, or creates it with --create; --json output is valid JSON
# whatever the URL holds (a quote broke info --json and create --json).
set -e
. "$abs_srcdir/nbd-functions.sh"
hf_tmpdir

hf_tool_test

run 0 --version
grep -qE '^hyperfile [0-9]+\.[0-9]+' "$tmp/out" || fail "--version output"
run 0 help
grep -q 'Commands:' "$tmp/out"
for c in create info ls snapshot clone rollback gc fsck import export; do
  run 0 help "$c"
  grep -q "^usage: hyperfile .*$c" "$tmp/out" || fail "help $c"
  run 0 "$c" --help
  grep -q "^usage: hyperfile .*$c" "$tmp/out" || fail "$c --help"
done
run 2 help no-such-command
grep -q "unknown command 'no-such-command'" "$tmp/out"

run 0 create "$tmp/v" --size 4M
# All-digit names are refused as names (they would read as segment
# numbers), before anything is looked up.
run 2 snapshot create "$tmp/v" 123
grep -q "not only digits" "$tmp/out"
run 2 snapshot delete "$tmp/v" 0042
run 6 snapshot delete "$tmp/v" nosuch

# export: an existing file is kept unless --force.
printf 'precious' > "$tmp/out.img"
run 4 export "$tmp/v" "$tmp/out.img"
grep -q -- '--force' "$tmp/out"
[ "$(cat "$tmp/out.img")" = precious ] || fail "export overwrote the file"
run 0 export "$tmp/v" "$tmp/out.img" --force
[ "$(stat -c %s "$tmp/out.img")" = 4194304 ]
run 0 export "$tmp/v" "$tmp/new.img"
run 0 export "$tmp/v" - --force

# import into a missing volume: what to do, and --create.
truncate -s 3M "$tmp/img"
printf 'hello' | dd of="$tmp/img" bs=1 seek=1048576 conv=notrunc 2>/dev/null
run 3 import "$tmp/img" "$tmp/nov"
grep -q "hyperfile create $tmp/nov --size" "$tmp/out" ||
  fail "no hint to create the volume"
grep -q -- "--create" "$tmp/out"
[ ! -e "$tmp/nov" ] || fail "import made something at the URL"
run 0 import "$tmp/img" "$tmp/nov" --create
run 0 info "$tmp/nov"
grep -q 'size: *3145728' "$tmp/out" || fail "--create: size of the image"
run 0 export "$tmp/nov" "$tmp/back.img"
cmp "$tmp/img" "$tmp/back.img"

# --json: one valid document, the URL given back exactly.
requires python3 --version
q="$tmp/a \"quoted\" \\ volume"
json ()
{
  python3 -c 'import json, sys; d = json.load(open(sys.argv[1])); print(repr(d))' \
    "$tmp/out" || fail "not JSON: $(cat "$tmp/out")"
}
run 0 create "$q" --size 4M --json
json
python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["url"] == sys.argv[2]' \
  "$tmp/out" "$q" || fail "create --json: url"
run 0 info "$q" --json
json
python3 -c 'import json, sys; assert json.load(open(sys.argv[1]))["url"] == sys.argv[2]' \
  "$tmp/out" "$q" || fail "info --json: url"
run 0 import "$tmp/img" "$q" --json --create
json
run 0 import "$tmp/img" "$tmp/nov2" --json --create
json
grep -q '"created": true' "$tmp/out"
run 0 snapshot create "$q" 'a.b-c_1' --json
json
run 0 ls "$q" --json
json
run 0 snapshot list "$q" --json
json
run 0 fsck "$q" --json
json
run 0 export "$q" "$tmp/q.img" --json
json

# import of a sparse file (SEEK_DATA/SEEK_HOLE): its holes unmap what
# the volume had there, its data lands, only the data blocks are written.
run 0 create "$tmp/sp" --size 8M
python3 -c 'import sys; sys.stdout.buffer.write(b"\x55" * (8 << 20))' \
  > "$tmp/full.img"
run 0 import "$tmp/full.img" "$tmp/sp"
truncate -s 8M "$tmp/sparse.img"
printf 'x' | dd of="$tmp/sparse.img" bs=1 seek=1048576 conv=notrunc 2>/dev/null
printf 'y' | dd of="$tmp/sparse.img" bs=1 seek=5242881 conv=notrunc 2>/dev/null
run 0 import "$tmp/sparse.img" "$tmp/sp" --json
python3 - "$tmp/out" <<'PY' || fail "sparse import: counts"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["bytes"] == 8 << 20 and d["written"] == 8192, d
assert d["zero_skipped"] == (8 << 20) - 8192, d
PY
run 0 export "$tmp/sp" "$tmp/sp.img"
cmp "$tmp/sparse.img" "$tmp/sp.img" || fail "sparse import: contents"
# The same through a pipe (read, not sought).
run 0 import "$tmp/full.img" "$tmp/sp"
cat "$tmp/sparse.img" | "$HYPERFILE" import - "$tmp/sp"
run 0 export "$tmp/sp" "$tmp/sp.img" --force
cmp "$tmp/sparse.img" "$tmp/sp.img" || fail "piped import: contents"

# info beside a live writer: the lease's holder, and the blocks mapped
# now (it showed those of the last checkpoint: 0 after writes, and the
# epoch from the volume's own open, 0, instead of the holder's).
requires nbdsh --version
hf_start "$tmp/vi" size=8M gc=false
nbdsh -u "$uri" -c '
h.pwrite(b"\x07" * 1048576, 0)
h.pwrite(b"\x08" * 65536, 4194304)
h.flush()
'
run 0 info "$tmp/vi" --json
python3 - "$tmp/out" "$hf_pid" <<'PY' || fail "info --json beside a writer"
import json, sys
d = json.load(open(sys.argv[1]))
assert d["mapped_blocks"] == 272, d
l = d["lease"]
assert l["epoch"] == 1 and not l["released"], l
assert l["holder"].endswith(" pid " + sys.argv[2]), l
assert 0 < l["expires_in_s"] <= 60, l
PY
run 0 info "$tmp/vi"
grep -qE "^mapped blocks: +272 \(1114112 bytes\)" "$tmp/out"
grep -qE "^lease: +epoch 1 held by .* pid $hf_pid, expires in [0-9]+ s" \
  "$tmp/out" || fail "info: lease holder"
hf_stop
run 0 info "$tmp/vi"
grep -qE "^lease: +epoch 1 released by .* pid $hf_pid" "$tmp/out" ||
  fail "info: released lease"
grep -qE "^mapped blocks: +272 " "$tmp/out"
run 0 info "$tmp/v"
grep -qE "^lease: +none" "$tmp/out"
echo "$0: ok"
