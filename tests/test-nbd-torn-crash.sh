#!/usr/bin/env bash
# Crash loop on a store that keeps torn uploads.  In every round the
# server (with the write-ahead log) tears one of its segment uploads,
# the N-th: only a prefix of the object lands, as on S3-compatible
# servers that keep the body of an interrupted PUT, and the server dies
# at that moment (HF_TEST_TORN_PUT, a testing hook: the fault store
# stores the prefix, then SIGKILLs the process).  After each restart
# every acknowledged write must be there and no block torn: recovery
# must not take the torn segment as committed, and the log replays the
# writes it held.  At the end fsck passes and counts one incomplete
# upload per round, and the volume serves the same data without the log.
#
# HF_TORN_ROUNDS (default 50) sets the rounds.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires python3 -c 'import nbd'
requires test -x "$HYPERFILE"
hf_tmpdir

rounds="${HF_TORN_ROUNDS:-50}"
nblocks=1024                            # 4 MiB region
url="$tmp/vol"
j="$tmp/journal"
# gc=off: the torn objects stay, so that fsck can count them.
params=(size=16M segment-size=64K flush-interval=100ms wal="$tmp/wal"
        gc=off)

hf_start "$url" "${params[@]}"
hf_stop TERM
for r in $(seq 1 "$rounds"); do
  # Every open commits a segment naming its log first: tear the 2nd to
  # the 5th upload, all of them the client's writes.
  hf_torn_round "$url" "$j" $nblocks $(( 2 + r % 4 )) $((r * 7919)) \
    "${params[@]}"
  echo "round $r: $torn_what"
done
echo "torn uploads logged: $(hf_torn_count)"

# A clean stop commits what the log holds; fsck passes and finds one
# incomplete upload per round.
hf_start "$url" "${params[@]}"
hf_stop TERM
"$HYPERFILE" fsck "$url" > "$tmp/fsck.out" || {
  cat "$tmp/fsck.out"; echo "$0: fsck failed"; exit 1; }
cat "$tmp/fsck.out"
grep -q "^$url: $rounds incomplete upload(s)" "$tmp/fsck.out" || {
  echo "$0: expected $rounds incomplete uploads"; exit 1; }
# The data is in the store itself: serve it without the log.
hf_start "$url" "${params[@]/wal=*/wal=off}"
python3 "$abs_srcdir/wal-client.py" verify "$uri" "$j" $nblocks
hf_stop TERM
echo "$0: ok"
