#!/usr/bin/env bash
# Startup fails loudly: a second writer on a busy volume, or a cache or
# write-ahead log that cannot get its space, makes nbdkit exit 1 at
# once with a message saying what to do, in nbdkit's default daemon mode
# as with --run (both used to pass .get_ready and fail after the fork:
# exit 0 and a dead server, or --run hanging), and leaves no socket and
# no sparse cache file behind.  Warnings are not printed as errors.  On
# S3 the lease message names the volume as s3://BUCKET/PREFIX at ENDPOINT.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires timeout --version
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

# ---- S3: the volume's name in the lease message ----
if hf_s3rver_start; then
  hf_start "s3://$S3_BUCKET/tw2" endpoint="$S3_ENDPOINT" size=4M gc=false
  refused busy-s3 "s3://$S3_BUCKET/tw2 at $S3_ENDPOINT is in use" \
    "s3://$S3_BUCKET/tw2" endpoint="$S3_ENDPOINT" gc=false
  hf_stop
fi
echo "$0: ok"
