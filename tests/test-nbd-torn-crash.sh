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
client="$abs_srcdir/wal-client.py"
url="$tmp/vol"
j="$tmp/journal"
# gc=off: the torn objects stay, so that fsck can count them.
params=(size=16M segment-size=64K flush-interval=100ms wal="$tmp/wal"
        gc=off)

# Torn uploads so far: distinct keys in the fault store's warnings (a
# warning may be logged more than once).
torn_count ()
{
  grep -o 'fault: seg/[0-9a-f]*: torn put of' "$log" | sort -u | wc -l
}

hf_start "$url" "${params[@]}"
hf_stop TERM
for r in $(seq 1 "$rounds"); do
  # Every open commits a segment naming its log first: tear the 2nd to
  # the 5th upload, all of them the client's writes.
  export HF_TEST_TORN_PUT=$(( 2 + r % 4 ))
  torn0=$(torn_count)
  rm -f "$tmp/ready"
  if hf_start "$url" "${params[@]}" > "$tmp/start.out"; then
    WAL_CLIENT_READY="$tmp/ready" \
      python3 "$client" write "$uri" "$j" $nblocks $((r * 7919)) 60 \
      > "$tmp/client.out" 2>&1 &
    cpid=$!
    # The server kills itself at the torn upload; the client then ends.
    for (( i = 0; i < 1200; i++ )); do
      kill -0 "$hf_pid" 2>/dev/null || break
      sleep 0.05
    done
    if kill -0 "$hf_pid" 2>/dev/null; then
      echo "$0: round $r: no torn upload within 60 s"; tail -30 "$log"
      exit 1
    fi
    hf_stop KILL                        # reaps it
    if wait $cpid; then
      what="$(tail -1 "$tmp/client.out")"
    elif [ ! -e "$tmp/ready" ]; then
      # The open replayed records from the last round's log and went
      # on committing them once it listened: the torn upload was one of
      # those, before the client had connected (it wrote nothing).
      what="torn before the client connected"
    else
      cat "$tmp/client.out"; tail -40 "$log"; exit 1
    fi
  else
    # Torn while the open committed what the log replayed.
    what="torn during the open"
  fi
  unset HF_TEST_TORN_PUT
  [ "$(torn_count)" -eq $(( torn0 + 1 )) ] || {
    cat "$tmp/start.out"; tail -30 "$log"
    echo "$0: round $r: the server did not die of a torn upload"; exit 1; }
  hf_start "$url" "${params[@]}"
  echo "round $r: $what"
  python3 "$client" verify "$uri" "$j" $nblocks || {
    echo "$0: round $r lost data"; tail -40 "$log"; exit 1; }
  hf_stop KILL
done
echo "torn uploads logged: $(torn_count)"

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
python3 "$client" verify "$uri" "$j" $nblocks
hf_stop TERM
echo "$0: ok"
