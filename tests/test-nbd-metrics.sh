#!/usr/bin/env bash
# metrics=FILE: every series carries volume="URL" (two volumes in one
# node_exporter textfile directory collided: "collected before" and one
# volume dropped), hyperfile_build_info, and what operators watch (dirty
# bytes and upload backlog, store errors by kind, cache hit ratio, log
# bytes against wal-size, lease age and renewals, last commit time, data
# bytes stored against uploaded: the compression ratio), in
# a format tests/prom-check.py (a strict stand-in for `promtool check
# metrics`, whose Debian package is ~100 MB) accepts, alone and merged.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdsh --version
requires python3 -c 'import nbd'
hf_tmpdir

fail ()
{
  echo "$0: FAIL: $*" >&2
  exit 1
}
mkdir -m 700 "$tmp/m" "$tmp/wal" "$tmp/cache"

# value FILE NAME [LABEL-TEXT]: the value of NAME's one series in FILE
# (whose labels contain LABEL-TEXT).
value ()
{
  grep -F "$1{" "$2" | grep -F "${3:-}" | awk '{ print $NF }' | head -1
}

# Volume 1: a log, a cache, writes and reads.  A quote and a backslash in
# its path must be escaped in the label.
v1="$tmp/vol\"one\\x"
t0=$(date +%s)
# The writer lease lands 6 s late (the shim tests/shim/delay.c delays
# its rename in the directory store): a segment is committed (dirty
# bytes 0) and its log records are released only once the lease records
# it, so for longer than the 5 s between two metrics files the file shows
# the commit with the log not yet empty: the wait below is for the state
# the checks are about, not for the first sign of a commit (which took
# such a file now and then, and failed wal_used_bytes = 0).
shim="$abs_builddir/shim/.libs/hf-delay.so"
[ -f "$shim" ] || fail "$shim is not built"
LD_PRELOAD="$shim${LD_PRELOAD:+:$LD_PRELOAD}" HF_RENAME_DELAY_MS=6000 \
HF_RENAME_DELAY_MATCH=/lease%/ \
hf_start "$v1" size=8M wal="$tmp/wal" wal-size=64M cache="$tmp/cache" \
  cache-size=16M metrics="$tmp/m/v1.prom" gc=false flush-interval=100ms
nbdsh -u "$uri" -c '
h.pwrite(b"\x01" * 1048576, 0)
h.flush()
'
# The file is rewritten every 5 s: wait for one that shows the MiB
# uploaded and committed and its log released, which happen in that
# order (a file written in between is a true picture too, and the
# checks below are of the end state).
settled=
f="$tmp/v1-live.prom"
for i in $(seq 1 300); do
  cp "$tmp/m/v1.prom" "$f" 2>/dev/null || :
  up=$(value hyperfile_uploaded_data_bytes_total "$f" 2>/dev/null || :)
  if [ "${up:-0}" -ge 1048576 ] &&
     [ "$(value hyperfile_dirty_bytes "$f")" = 0 ] &&
     [ "$(value hyperfile_uploads_in_flight "$f")" = 0 ] &&
     [ "$(value hyperfile_wal_used_bytes "$f")" = 0 ]; then
    settled=1
    break
  fi
  sleep 0.1
done
[ -n "$settled" ] || { cat "$f"; fail "the MiB written did not show as \
committed with its log released in 30 s"; }
hf_stop
# Again, reading the MiB three times (the upload filled the cache).
hf_start "$v1" wal="$tmp/wal" wal-size=64M cache="$tmp/cache" \
  cache-size=16M metrics="$tmp/m/v1.prom" gc=false
nbdsh -u "$uri" -c '
for i in range(3):
    h.pread(1048576, 0)
'
hf_stop
# Volume 2, a plain one, and a read-only server of volume 1 (no lease).
hf_start "$tmp/vol2" size=4M metrics="$tmp/m/v2.prom" gc=false
nbdsh -u "$uri" -c 'h.pwrite(b"\x02" * 65536, 0); h.flush()'
hf_stop
# Volume 3, compressed: text compresses, so the data stored is less
# than the data uploaded (no log: the flush returns once committed, and
# the file is written once more as the server stops).
hf_start "$tmp/vol3" size=4M compress=zstd metrics="$tmp/m/v3.prom" gc=false
nbdsh -u "$uri" -c 'h.pwrite(b"hyperfile metrics " * 58254, 0); h.flush()'
hf_stop
# (Its file is elsewhere: the same volume twice in one directory would
# collide, as two servers of one volume are the same series.)
nbdkit -U "$(hf_usock)" -r "$PLUGIN" "$v1" metrics="$tmp/v1-ro.prom" \
  --run 'nbdsh -u "$uri" -c "h.pread(4096, 0)"'
for f in "$tmp"/m/*.prom "$tmp/v1-ro.prom"; do echo "--- $f"; cat "$f"; done

python3 "$abs_srcdir/prom-check.py" "$tmp/m/v1.prom"
python3 "$abs_srcdir/prom-check.py" "$tmp/m/v2.prom"
python3 "$abs_srcdir/prom-check.py" "$tmp/v1-ro.prom"
# As node_exporter's textfile collector merges a directory.
python3 "$abs_srcdir/prom-check.py" "$tmp"/m/*.prom ||
  fail "the volumes' files collide"
if command -v promtool >/dev/null; then
  for f in "$tmp"/m/*.prom; do promtool check metrics < "$f"; done
fi

# Every sample names its volume, escaped as the format says.
esc1='volume="'"$tmp"'/vol\"one\\x"'
for f in "$tmp"/m/*.prom "$tmp/v1-ro.prom"; do
  if grep -v '^#' "$f" | grep -v 'volume="' | grep -q .; then
    fail "$f: a series without volume="
  fi
done
grep -v '^#' "$tmp/m/v1.prom" | grep -vqF "$esc1" &&
  fail "v1: a series with another volume label (want $esc1)"
grep -qF "hyperfile_build_info{$esc1,version=\"" "$tmp/m/v1.prom" ||
  fail "no hyperfile_build_info"
[ "$(value hyperfile_build_info "$tmp/m/v2.prom")" = 1 ]

m1="$tmp/v1-live.prom"
python3 "$abs_srcdir/prom-check.py" "$m1"
# Written, flushed, committed: nothing dirty or uploading.
[ "$(value hyperfile_dirty_bytes "$m1")" = 0 ]
[ "$(value hyperfile_uploads_in_flight "$m1")" = 0 ]
# The log: its limit is wal-size, and all of it was released.
[ "$(value hyperfile_wal_limit_bytes "$m1")" = $((64 << 20)) ]
[ "$(value hyperfile_wal_used_bytes "$m1")" = 0 ]
# Last commit: after the start, not in the future.
lc=$(value hyperfile_last_commit_timestamp_seconds "$m1")
lc=${lc%.*}
[ "$lc" -ge "$t0" ] && [ "$lc" -le "$(date +%s)" ] ||
  fail "last commit time $lc not in [$t0, now]"
# Stored data: as uploaded without compression, less with it.
up=$(value hyperfile_uploaded_data_bytes_total "$m1")
st=$(value hyperfile_stored_data_bytes_total "$m1")
[ "$up" -ge 1048576 ] && [ "$st" = "$up" ] ||
  fail "uncompressed: stored $st, uploaded $up"
up=$(value hyperfile_uploaded_data_bytes_total "$tmp/m/v3.prom")
st=$(value hyperfile_stored_data_bytes_total "$tmp/m/v3.prom")
[ "$up" -ge 1048576 ] && [ "$st" -gt 0 ] && [ "$st" -lt $((up / 4)) ] ||
  fail "compressed: stored $st, uploaded $up"
# Reads: three reads of the same MiB: hits/(hits+misses) as the ratio.
hits=$(value hyperfile_cache_hits_total "$tmp/m/v1.prom")
miss=$(value hyperfile_cache_misses_total "$tmp/m/v1.prom")
ratio=$(value hyperfile_cache_hit_ratio "$tmp/m/v1.prom")
[ "$hits" -gt 0 ]
python3 -c "import sys; h, m, r = $hits, $miss, float('$ratio')
sys.exit(abs(r - h / (h + m)) > 1e-6)" || fail "hit ratio $ratio"
# The writer's lease: epoch 1, renewed (acquired) moments ago.
[ "$(value hyperfile_lease_epoch "$m1")" = 1 ]
age=$(value hyperfile_lease_age_seconds "$m1")
python3 -c "import sys; sys.exit(not 0 <= $age < 60)" || fail "lease age $age"
value hyperfile_lease_renewals_total "$m1" | grep -qE '^[0-9]+$'
value hyperfile_lease_renewal_failures_total "$m1" | grep -qx 0
# Store errors by kind: every kind listed, none happened.
for k in timeout auth not_found conflict invalid corrupt io other; do
  [ "$(value hyperfile_store_errors_by_kind_total "$m1" "kind=\"$k\"")" = 0 ] ||
    fail "kind $k"
done
# A reader holds no lease.
if grep -q '^hyperfile_lease_' "$tmp/v1-ro.prom"; then
  fail "lease metrics from a reader"
fi
echo "$0: ok"
