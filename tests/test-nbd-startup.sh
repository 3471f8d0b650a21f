#!/usr/bin/env bash
# Startup fails loudly: a second writer on a busy volume, or a cache or
# write-ahead log that cannot get its space, makes nbdkit exit 1 at
# once with a message saying what to do, in nbdkit's default daemon mode
# as with --run (both used to pass .get_ready and fail after the fork:
# exit 0 and a dead server, or --run hanging), and leaves no socket and
# no sparse cache file behind.  Warnings are not printed as errors.  On
# S3 the lease message names the volume as s3://BUCKET/PREFIX at ENDPOINT.
# A damaged volume (head segment corrupt or deleted, descriptor failing
# its CRC) and a log directory holding another volume's log are refused
# the same way.  What only the real open after the fork can find (here:
# credentials that may read but not write, so the writer lease cannot be
# written) ends `nbdkit --run` at once with the error, a client of the
# command failing instead of waiting for ever (it did, until killed).
# A server killed or exiting in its open before it reports (the
# HF_TEST_DIE_IN_OPEN hook) makes the daemon-mode command exit 1 saying
# how it ended (it said "failed to open ... (see syslog)", with nothing
# in syslog).
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires timeout --version
requires nbdinfo --version
hf_tmpdir

fail ()
{
  echo "$0: FAIL: $*" >&2
  exit 1
}

# refused NAME PATTERN PARAMS...: a second nbdkit with PARAMS exits 1
# quickly printing PATTERN, in daemon mode and with --run, and leaves
# no socket behind.
refused ()
{
  local name="$1" pattern="$2" r
  shift 2
  rm -f "$tmp/b.sock" "$tmp/b.pid"
  r=0
  timeout 30 nbdkit -U "$tmp/b.sock" -P "$tmp/b.pid" "$PLUGIN" "$@" \
    > "$tmp/out" 2>&1 || r=$?
  echo "--- $name (daemon): exit $r"; cat "$tmp/out"
  if [ -s "$tmp/b.pid" ]; then
    kill "$(cat "$tmp/b.pid")" 2>/dev/null || :
  fi
  [ "$r" = 1 ] || fail "$name: daemon mode exited $r, not 1"
  grep -qE "$pattern" "$tmp/out" || fail "$name: no /$pattern/ (daemon)"
  [ ! -e "$tmp/b.sock" ] || fail "$name: socket left behind"
  r=0
  timeout 30 nbdkit -U "$tmp/b.sock" "$PLUGIN" "$@" --run 'exit 0' \
    > "$tmp/out" 2>&1 || r=$?
  echo "--- $name (--run): exit $r"; cat "$tmp/out"
  [ "$r" = 1 ] || fail "$name: --run exited $r, not 1"
  grep -qE "$pattern" "$tmp/out" || fail "$name: no /$pattern/ (--run)"
  [ ! -e "$tmp/b.sock" ] || fail "$name: socket left behind"
  if grep -q 'error: warning' "$tmp/out"; then
    fail "$name: a warning printed as an error"
  fi
  refused_client "$name" "$pattern" "$@"
}

# refused_client NAME PATTERN PARAMS...: nbdkit --run with a client that
# connects must end non-zero within 60 s printing PATTERN: the client
# fails instead of waiting in the socket's queue for a handshake.
refused_client ()
{
  local name="$1" pattern="$2" r start
  shift 2
  rm -f "$tmp/b.sock"
  r=0
  start=$(date +%s)
  timeout -s KILL 60 nbdkit -U "$tmp/b.sock" "$PLUGIN" "$@" \
    --run 'nbdinfo --size "$uri"' > "$tmp/out" 2>&1 || r=$?
  echo "--- $name (--run nbdinfo): exit $r in $(( $(date +%s) - start )) s"
  cat "$tmp/out"
  [ "$r" != 137 ] || fail "$name: --run nbdinfo hung (killed after 60 s)"
  [ "$r" != 0 ] || fail "$name: --run nbdinfo exited 0"
  grep -qE "$pattern" "$tmp/out" || fail "$name: no /$pattern/ (nbdinfo)"
  # (A failure after the fork leaves the socket file: nbdkit 1.32 does
  # not remove a -U socket, even after a clean --run.)
  rm -f "$tmp/b.sock"
}

# ---- a busy volume (directory store) ----
hf_start "$tmp/v" size=4M gc=false
refused busy "$tmp/v is in use: writer lease epoch 1 held by .* pid $hf_pid.*(stop|takeover)" \
  "$tmp/v" gc=false
# A reader is not refused.
timeout 30 nbdkit -U "$tmp/b.sock" -r "$PLUGIN" "$tmp/v" --run 'exit 0'

# ---- no room for the cache or the log ----
# Margins of gigabytes: other processes write and delete meanwhile.
avail=$(df --output=avail -B1 "$tmp" | tail -1)
big=$(( avail / 1048576 * 2 + 16384 ))M
mkdir -m 700 "$tmp/cache" "$tmp/wal"
refused cache "cache=$tmp/cache: cache-size=.* needs .* free.*(smaller cache-size|free)" \
  "$tmp/v2" size=4M cache="$tmp/cache" cache-size="$big" gc=false
[ ! -e "$tmp/cache/cache.data" ] || fail "cache.data left behind"
refused wal "wal=$tmp/wal: wal-size=.* needs .* free.*(smaller wal-size|free)" \
  "$tmp/v2" size=4M wal="$tmp/wal" wal-size="$big" gc=false
[ -z "$(ls "$tmp/wal" | grep -v '^wal.lock$')" ] || fail "files left in wal="
# Both on one file system: each fits alone, not both together.
half=$(( avail / 1048576 * 5 / 8 ))M
refused both "share a file system: .* together need .* free" "$tmp/v2" \
  size=4M cache="$tmp/cache" cache-size="$half" wal="$tmp/wal" \
  wal-size="$half" gc=false

# ---- warnings are not errors ----
# The first server dies; the next one claims its lease with a warning.
hf_stop KILL
hf_start "$tmp/v" gc=false
hf_stop
cat "$log"
grep -q 'warning: .*claiming the writer lease' "$log" ||
  fail "no warning about the claimed lease"
if grep -q 'error: warning' "$log"; then
  fail "a warning printed as an error"
fi

# ---- damage: refused before the fork ----
# A volume of two segments (segment-size=64K, three blocks of 64K
# written), the newest sorting first in seg%/.
hf_start "$tmp/d" size=1M gc=false segment-size=64K
nbdsh -u "$uri" -c 'h.pwrite(b"d" * 196608, 0); h.flush()'
hf_stop
cp -a "$tmp/d" "$tmp/d.good"
head_seg="$(ls "$tmp/d/seg%" | head -1)"
[ "$(ls "$tmp/d/seg%" | wc -l)" -ge 2 ] || fail "expected two segments"
damaged ()                      # damaged NAME PATTERN: after the damage
{
  refused "$1" "$2" "$tmp/d" gc=false
  rm -rf "$tmp/d"
  cp -a "$tmp/d.good" "$tmp/d"
}
flip_byte ()                    # flip_byte FILE OFFSET: invert one byte
{
  # Not a fixed byte: where the byte is random (byte 40 of the
  # descriptor is the creation time's lowest) a fixed one left the file
  # unchanged 1 time in 256, and the "damaged" volume opened.
  local b
  b=$(od -An -j "$2" -N1 -tu1 "$1" | tr -d ' ')
  printf "\\$(printf %03o $(( b ^ 255 )))" |
    dd of="$1" bs=1 seek="$2" conv=notrunc status=none
  [ "$(od -An -j "$2" -N1 -tu1 "$1" | tr -d ' ')" = $(( b ^ 255 )) ] ||
    fail "flip_byte: $1 byte $2 unchanged"
}
flip_byte "$tmp/d/seg%/$head_seg" 100
damaged head-corrupt "segment seg/$head_seg: corrupt at byte offset .*CRC"
rm "$tmp/d/seg%/$head_seg"
damaged head-deleted "segments were deleted or lost"
flip_byte "$tmp/d/volume" 40
damaged descriptor-corrupt "volume volume: corrupt at byte offset .*descriptor"

# ---- another volume's write-ahead log ----
# A server of $tmp/o dies with records in its log (flush-interval=1h:
# none of them in a segment yet); that log directory given to $tmp/d
# is refused, not replayed into the wrong volume.
mkdir -m 700 "$tmp/wo"
hf_start "$tmp/o" size=1M gc=false wal="$tmp/wo" flush-interval=1h
nbdsh -u "$uri" -c 'h.pwrite(b"o" * 4096, 0); h.flush()'
hf_stop KILL
ls "$tmp/wo" | grep -q '^wal-.*\.log$' || fail "no log left by the killed server"
refused wal-other "wal: $tmp/wo/wal-.*belongs to volume .*, not to this volume" \
  "$tmp/d" gc=false wal="$tmp/wo"

# ---- S3: found only after the fork ----
# Credentials that may read but not write: .get_ready reads the volume
# and the lease; the claim of the lease after the fork gets a 403.
# nbdkit's daemonising parent returns at the fork (exit 0): the plugin's
# exit handler waits there for the child's open and exits 1 with its
# errors (it exited 0, the error only in syslog, before).  With -v the
# child's stderr stays open and the error is printed once.
hostile_start "$tmp"
export AWS_ACCESS_KEY_ID=AK AWS_SECRET_ACCESS_KEY=SK AWS_REGION=us-east-1
"$HYPERFILE" --endpoint "$HOSTILE_ENDPOINT" create s3://ok/ro --size 1M
ro_err="s3://readonly/ro at $HOSTILE_ENDPOINT: cannot write the writer lease: Permission denied"
for v in "" -v; do
  rm -f "$tmp/b.sock" "$tmp/b.pid"
  r=0
  timeout 60 nbdkit $v -U "$tmp/b.sock" -P "$tmp/b.pid" "$PLUGIN" \
    s3://readonly/ro endpoint="$HOSTILE_ENDPOINT" gc=false \
    > "$tmp/out" 2>&1 || r=$?
  echo "--- readonly-s3 (daemon $v): exit $r"; grep -v debug: "$tmp/out" || :
  [ "$r" = 1 ] || fail "readonly-s3: daemon mode $v exited $r, not 1"
  [ "$(grep -c "error: .*$ro_err" "$tmp/out")" = 1 ] ||
    fail "readonly-s3: daemon mode $v: not exactly one /$ro_err/"
  grep -q "failed to open s3://readonly/ro and has exited" "$tmp/out" ||
    fail "readonly-s3: daemon mode $v: no closing line"
  # The child has exited: nothing answers on the socket.
  if [ -s "$tmp/b.pid" ] && kill -0 "$(cat "$tmp/b.pid")" 2>/dev/null; then
    kill "$(cat "$tmp/b.pid")"
    fail "readonly-s3: daemon mode $v: the server is still running"
  fi
done
refused_client readonly-s3 "$ro_err" \
  s3://readonly/ro endpoint="$HOSTILE_ENDPOINT" gc=false
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION

# ---- the server dies in its open, before it reports ----
# Killed (SIGKILL) or gone (_exit) in .after_fork: the daemonising
# parent exits 1 saying how the server ended, within the timeout (not
# 0, not waiting for a report that never comes).
for how in kill exit; do
  case $how in
  kill) said="was killed by signal 9" ;;
  exit) said="exited with status 3" ;;
  esac
  for v in "" -v; do
    rm -f "$tmp/b.sock" "$tmp/b.pid"
    r=0
    HF_TEST_DIE_IN_OPEN=$how timeout 60 nbdkit $v -U "$tmp/b.sock" \
      -P "$tmp/b.pid" "$PLUGIN" "$tmp/die" size=1M gc=false \
      > "$tmp/out" 2>&1 || r=$?
    echo "--- die-in-open $how (daemon $v): exit $r"
    grep -v debug: "$tmp/out" || :
    [ "$r" != 124 ] || fail "die-in-open $how $v: nbdkit waited 60 s"
    [ "$r" = 1 ] || fail "die-in-open $how $v: daemon mode exited $r, not 1"
    grep -q "error: the server in the background $said.* before it opened $tmp/die" \
      "$tmp/out" || fail "die-in-open $how $v: no /$said/"
    if [ -s "$tmp/b.pid" ] && kill -0 "$(cat "$tmp/b.pid")" 2>/dev/null; then
      kill "$(cat "$tmp/b.pid")"
      fail "die-in-open $how $v: the server is still running"
    fi
  done
done
rm -f "$tmp/b.sock"

# ---- S3: the volume's name in the lease message ----
if hf_s3rver_start; then
  hf_start "s3://$S3_BUCKET/tw2" endpoint="$S3_ENDPOINT" size=4M gc=false
  refused busy-s3 "s3://$S3_BUCKET/tw2 at $S3_ENDPOINT is in use" \
    "s3://$S3_BUCKET/tw2" endpoint="$S3_ENDPOINT" gc=false
  hf_stop
fi
echo "$0: ok"
