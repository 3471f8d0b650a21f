#!/usr/bin/env bash
# With wal=off, a clean shutdown (SIGTERM or SIGINT) commits everything:
# data written without any FLUSH survives a restart.  Also: a second
# server on the same volume is refused while the first holds the lease,
# and the metrics file is written in Prometheus format.  On the
# directory store, then on the S3 test server when it is installed.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdsh --version
requires python3 -c 'import nbd'
hf_tmpdir

# run_store URL PARAMS...: the checks above on one volume, per signal.
run_store ()
{
  local url="$1" sig n=0 sessions; shift
  for sig in TERM INT; do
    n=$((n + 1))
    hf_start "$url$n" size=16M wal=off flush-interval=1h \
      metrics="$tmp/metrics.prom" "$@"
    nbdsh -u "$uri" -c '
import random
r = random.Random(7)
for i in range(200):
    off = r.randrange(0, 16 * 1024 * 1024 - 9000)
    h.pwrite(bytes([i % 251 + 1]) * 9000, off)
with open("'"$tmp"'/expect", "wb") as f:
    f.write(h.pread(h.get_size(), 0))
'
    # A second writer on the same volume must be refused, naming the
    # holder.  (No --run: its exit status would be the command's, and the
    # lease is only taken in .after_fork, after nbdkit forks the command.)
    rm -f "$tmp/second.sock"
    if timeout 30 nbdkit -f -U "$tmp/second.sock" "$PLUGIN" "$url$n" "$@" \
        > "$tmp/second.log" 2>&1; then
      echo "$0: a second writer was allowed"; exit 1
    fi
    cat "$tmp/second.log"
    grep -qi 'lease\|held\|busy\|in use' "$tmp/second.log"
    # ... but a read-only server (nbdkit -r) takes no lease: it runs.
    nbdkit -r -U "$(hf_usock)" "$PLUGIN" "$url$n" "$@" \
      --run 'nbdsh -u "$uri" -c "assert h.is_read_only(); h.pread(4096, 0)"'

    hf_stop "$sig"
    grep -q 'everything committed' "$log"
    grep -q '^hyperfile_store_requests_total{volume=".*",op="put"}' "$tmp/metrics.prom"
    # CreateSession (S3 Express) is counted as op="session", not as a
    # get: some on a directory bucket, none elsewhere.
    sessions=$(sed -n 's/^hyperfile_store_requests_total{volume=".*",op="session"} //p' \
                 "$tmp/metrics.prom")
    case "$url:${HF_TEST_S3_EXPRESS:-}" in
      s3:*:?*) [ "${sessions:-0}" -gt 0 ] ;;
      *) [ "$sessions" = 0 ] ;;
    esac
    grep -q '^# TYPE hyperfile_dirty_bytes gauge' "$tmp/metrics.prom"
    rm "$tmp/metrics.prom"

    hf_start "$url$n" "$@"
    nbdsh -u "$uri" -c '
want = open("'"$tmp"'/expect", "rb").read()
got = h.pread(h.get_size(), 0)
assert got == want, "lost writes after SIG'"$sig"'"
'
    hf_stop TERM
  done
}

if hf_dir_half; then
  run_store "$tmp/vol"
fi
if hf_s3rver_start; then
  run_store "s3://$S3_BUCKET/restart" endpoint="$S3_ENDPOINT"
fi
echo "$0: ok"
