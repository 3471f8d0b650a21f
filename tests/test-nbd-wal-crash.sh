#!/usr/bin/env bash
# Crash loop with the write-ahead log: a client writes overlapping
# extents and flushes now and then while the server is SIGKILLed at a
# random moment, again and again.  Segments are tiny and sealed every
# 100 ms and the cache is small, so kills land during uploads, log
# releases and cache evictions.  After every restart each acknowledged
# write is there (a killed process leaves its log in the page cache, so
# even unflushed acknowledged writes survive; a flushed one would
# survive a machine crash too), no block is torn, and at the end the
# volume passes fsck.
#
# HF_CRASH_ROUNDS (default 20) sets the rounds on the directory store;
# the S3 store gets a quarter of them.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires python3 -c 'import nbd'
hf_tmpdir

rounds="${HF_CRASH_ROUNDS:-20}"
nblocks=1024                            # 4 MiB region
client="$abs_srcdir/wal-client.py"

crash_loop ()
{
  local url="$1" n="$2" tag="$3"; shift 3
  local wal="$tmp/wal-$tag" cache="$tmp/cache-$tag" j="$tmp/journal-$tag"
  local params=(size=16M segment-size=64K flush-interval=100ms
                wal="$wal" cache="$cache" cache-size=1M "$@")
  local r cpid i ms
  hf_start "$url" "${params[@]}"
  for r in $(seq 1 "$n"); do
    rm -f "$tmp/ready"
    WAL_CLIENT_READY="$tmp/ready" \
      python3 "$client" write "$uri" "$j" $nblocks $((r * 7919)) 30 \
      > "$tmp/client.out" 2>&1 &
    cpid=$!
    # The kill delay runs from the moment the client is connected:
    # counted from its launch, a slow start (Python, the journal, a busy
    # machine) ate it and the server died before the client connected.
    for (( i = 0; i < 600; i++ )); do
      [ -e "$tmp/ready" ] || ! kill -0 "$cpid" 2>/dev/null && break
      sleep 0.05
    done
    [ -e "$tmp/ready" ] || {
      echo "$0: round $r: the client did not connect:"
      cat "$tmp/client.out"; tail -40 "$log"; exit 1; }
    ms=$(( 200 + RANDOM % 1301 ))           # 0.2 to 1.5 s
    sleep "$(( ms / 1000 )).$(printf %03d $(( ms % 1000 )))"
    # A client gone before the kill failed early: show what the live
    # server holds (its descriptors, the listening socket) for the log.
    if ! kill -0 "$cpid" 2>/dev/null; then
      echo "$0: round $r: client ended early; server $hf_pid descriptors:"
      ls -l "/proc/$hf_pid/fd" 2>&1 | sed 's/^/  /'
      ss -xlp 2>/dev/null | grep -F "$sock" | sed 's/^/  listening: /' || :
    fi
    hf_stop KILL
    wait $cpid || { cat "$tmp/client.out"; echo "$0: server log:";
                    tail -40 "$log"; exit 1; }
    hf_start "$url" "${params[@]}"
    echo "round $r ($tag): $(tail -1 "$tmp/client.out")"
    python3 "$client" verify "$uri" "$j" $nblocks || {
      echo "$0: round $r ($tag) lost data"; tail -30 "$log"; exit 1; }
  done
  # Everything drains into the store at a clean stop; the volume checks.
  hf_stop TERM
  "$HYPERFILE" fsck "$url" "${store_opts[@]}" || {
    echo "$0: fsck failed after the crash loop ($tag)"; exit 1; }
  # And the data is in the store itself: serve it without the log.
  hf_start "$url" "${params[@]/wal=*/wal=off}"
  python3 "$client" verify "$uri" "$j" $nblocks
  hf_stop TERM
}

store_opts=()
if hf_dir_half; then
  crash_loop "$tmp/vol" "$rounds" dir
fi
if hf_s3rver_start; then
  store_opts=(--endpoint "$S3_ENDPOINT")
  crash_loop "s3://$S3_BUCKET/walcrash" $(((rounds + 3) / 4)) s3 \
    endpoint="$S3_ENDPOINT"
fi
grep -c 'replaying write-ahead log' "$log" | sed 's/^/replays logged: /'
echo "$0: ok"
