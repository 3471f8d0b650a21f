#!/usr/bin/env bash
# Points in time on the S3 test server: a snapshot served with
# at=SNAPSHOT beside a live writer, and a clone in ANOTHER bucket of the
# same endpoint that diverges from its parent; the parent's prefix holds
# the clone's registration; a history longer than one LIST batch.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdsh --version
requires python3 -c 'import nbd'
requires curl --version
: "${HYPERFILE:?HYPERFILE must point at the hyperfile command}"
hf_tmpdir
start_s3rver
_hf_adopt_exit_trap
H="$HYPERFILE"
ep="endpoint=$S3_ENDPOINT"
src="s3://$S3_BUCKET/parent"
if [ "${HF_TEST_S3_EXPRESS-}" = 1 ]; then
  # The S3 Express emulation (test-s3-express.sh) serves one directory
  # bucket and only signed requests: the clone goes beside its parent.
  dst="s3://$S3_BUCKET/copy"
else
  dst="s3://hf-clone/copy"
  # The second bucket (s3rver creates buckets on an unsigned PUT).
  curl -sf -X PUT "$S3_ENDPOINT/hf-clone" > /dev/null
fi

expect ()
{
  local url="$1" c="$2"
  shift 2
  nbdkit -U "$(hf_usock)" "$PLUGIN" "$url" "$ep" "$@" --run "nbdsh -u \"\$uri\" -c '
assert h.pread(8192, 4096) == b\"$c\" * 8192, h.pread(16, 4096)'"
}
write ()
{
  nbdsh -u "$uri" -c "h.pwrite(b'$1' * 8192, 4096); h.flush()"
}

"$H" --endpoint "$S3_ENDPOINT" create "$src" --size 2M
hf_start "$src" "$ep"
write A
"$H" --endpoint "$S3_ENDPOINT" snapshot create "$src" first
write B
expect "$src" A at=first
hf_stop TERM

"$H" --endpoint "$S3_ENDPOINT" clone "$src@first" "$dst" --json > "$tmp/clone"
python3 -c '
import json, sys
c = json.load(open(sys.argv[1]))
assert c["clone"] == sys.argv[2] and c["base_seq"] >= 1, c' "$tmp/clone" "$dst"
expect "$dst" A
hf_start "$dst" "$ep"
write C
hf_stop TERM
expect "$dst" C
expect "$src" B
hf_start "$src" "$ep"
write D
hf_stop TERM
expect "$dst" C
expect "$src" D
expect "$src" A at=first
# The registration sits in the parent's prefix.
if [ "${HF_TEST_S3_EXPRESS-}" = 1 ]; then
  ls "$S3RVER_DIR/data/$S3_BUCKET/parent/clones/" | grep -E '^[0-9a-f]{32}'
else
  curl -sf "$S3_ENDPOINT/$S3_BUCKET?list-type=2&prefix=parent/clones/" \
    | grep -E 'parent/clones/[0-9a-f]{32}'
fi
# A history longer than the first header batches: 300 flushes, one segment
# each; `ls` reads all of them and an old time resolves.
long="s3://$S3_BUCKET/long"
"$H" --endpoint "$S3_ENDPOINT" create "$long" --size 1M
hf_start "$long" "$ep"
nbdsh -u "$uri" -c '
for i in range(300):
    h.pwrite(bytes([i % 251 + 1]) * 4096, (i % 64) * 4096)
    h.flush()
'
hf_stop TERM
"$H" --endpoint "$S3_ENDPOINT" ls "$long" --json > "$tmp/ls"
t="$(python3 -c '
import json, sys
p = json.load(open(sys.argv[1]))["points"]
seqs = [x["seq"] for x in p]
assert seqs == list(range(seqs[0], 0, -1)) and len(seqs) >= 300, seqs[:5]
# The point of the 10th write (the 10th segment).
print([x["time"] for x in p if x["seq"] == 10][0])' "$tmp/ls")"
nbdkit -U "$(hf_usock)" "$PLUGIN" "$long" "$ep" at="$t" --run 'nbdsh -u "$uri" -c "
assert h.pread(4096, 9 * 4096) == bytes([10]) * 4096
assert h.pread(4096, 10 * 4096) == bytes(4096)
"'

# Onto the existing clone: refused.
r=0
"$H" --endpoint "$S3_ENDPOINT" clone "$src" "$dst" > "$tmp/out" 2>&1 || r=$?
[ "$r" = 4 ]
echo "$0: ok"
