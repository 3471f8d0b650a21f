#!/usr/bin/env bash
# hyperfile tests: S3 Express One Zone (directory buckets) against the
# EMULATION in tests/s3rver/server.js (shims 10-11: HF_TEST_S3_EXPRESS=1
# in tests/functions.sh).  AWS itself was not reachable for testing: the
# emulation follows AWS's API reference, and so does the client; this
# checks that they agree and that hyperfile needs nothing a directory
# bucket lacks (sorted listings, start-after, path-style requests).
#
# Sessions last 4 s here (AWS: 5 minutes) and listings come in pages of
# 100 keys in no order.
#
#  1. s3-errtest express: zonal endpoints made from bucket names; puts
#     and gets over 9 s (2.25 session lives) without an error; listings
#     of a prefix not ending in '/', start-after done by the client.  The
#     server made new sessions, every request but CreateSession was
#     signed with one (x-amz-s3session-token, scope s3express, Host
#     BUCKET.s3.localhost), CreateSession with the account's key.
#  2. A server that refuses the first request of its first session as
#     expired: the store retries it once, with a new session.
#  3. The store conformance suite (unit/check-objstore: ranges, key
#     names, conditional puts, multipart, concurrency ...), paged
#     listings with start-after and early stops (s3-errtest list), a
#     wrong secret (CreateSession's failure logged once); a volume made
#     there has grouped segment keys, which fsck reads.
#  4. The S3 halves of the plugin read/write, restart, crash, GC and
#     history tests, each against its own emulated server.
set -e
source "$abs_srcdir/functions.sh"

requires test -x "$abs_builddir/unit/s3-errtest"
requires test -x "$abs_builddir/unit/check-objstore"
requires nbdkit --version
requires nbdsh --version
requires python3 -c 'import nbd'
requires curl --version
: "${PLUGIN:?PLUGIN must point at nbdkit-hyperfile-plugin.so}"
: "${HYPERFILE:?HYPERFILE must point at the hyperfile command}"

export HF_TEST_S3_EXPRESS=1 HF_TEST_S3_EXPRESS_TTL=4 HF_TEST_S3_EXPRESS_PAGE=100
errtest="$abs_builddir/unit/s3-errtest"
t0=$(date +%s)

fail ()
{
  echo "$0: FAIL: $*" >&2
  exit 1
}

stats () { curl -sf "http://127.0.0.1:$S3RVER_PORT/__hyperfile_stats"; }

# The parts wait on the network and on sessions far more than they
# compute, so they overlap: 4's tests start now in the background (each
# has its own server and cleanup; killed with TERM if this one stops
# first), 1 runs beside 2 and 3, and each is checked as it was alone.
logs=$(mktemp -d --tmpdir hf-s3-express.XXXXXX)
cleanup_add "rm -rf '$logs'"
part4="test-nbd-rw.sh test-nbd-restart.sh test-nbd-crash.sh test-gc.sh
       test-history-s3.sh"
declare -A pid4
for t in $part4; do
  HF_TEST_S3_ONLY=1 "$abs_srcdir/$t" > "$logs/$t.log" 2>&1 &
  pid4[$t]=$!
  cleanup_add "kill_ours TERM ${pid4[$t]} '$abs_srcdir/$t'"
done

# 1.
start_s3rver
p1_dir=$S3RVER_DIR p1_port=$S3RVER_PORT p1_pidfile=$S3RVER_PIDFILE
p1_reqlog=$S3RVER_REQLOG
"$errtest" express 9 > "$p1_dir/express.out" 2>&1 &
p1_pid=$!
cleanup_add "kill_ours 9 $p1_pid '$errtest'"

# 2. A new session is made and the request retried, once.
HF_S3RVER_EXPRESS_REFUSE=1 start_s3rver
"$errtest" ranges
stats > "$S3RVER_DIR/stats"
python3 -c '
import json, sys
x = json.load(open(sys.argv[1]))["express"]
assert x["refused"] == 1 and x["sessions"] >= 2, x
print("express: a request refused early, retried with a new session")' "$S3RVER_DIR/stats"
kill_s3rver

# 3.
start_s3rver
# (Its cases of thousands of keys, "s3-bulk", run in test-objstore-s3.sh;
# here s3-errtest list pages through 1,500 keys unordered instead.)
HF_TEST_S3_ENDPOINT=$S3_ENDPOINT HF_TEST_S3_BUCKET=$S3_BUCKET \
  HF_TEST_S3_REGION=us-east-1 CK_RUN_CASE=s3 \
  "$abs_builddir/unit/check-objstore"
"$errtest" list
"$errtest" badsecret 2> "$S3RVER_DIR/badsecret.log"
grep -q "CreateSession in bucket $S3_BUCKET at $S3_ENDPOINT failed: HTTP 403" \
  "$S3RVER_DIR/badsecret.log" || fail "a wrong secret: $(cat "$S3RVER_DIR/badsecret.log")"
# Each failed CreateSession is logged once (check and put: two lines),
# not again by the request that needed the session.
[ "$(grep -c 'error:' "$S3RVER_DIR/badsecret.log")" = 2 ] &&
  [ "$(grep -c 'error: s3: CreateSession in bucket' "$S3RVER_DIR/badsecret.log")" = 2 ] ||
  fail "a failed CreateSession not logged exactly once: $(cat "$S3RVER_DIR/badsecret.log")"
if grep -q "WRONG-SECRET" "$S3RVER_DIR/badsecret.log"; then
  fail "the secret key appeared in the log"
fi
# A volume made on a directory bucket has grouped segment keys
# (HF_VD_SEG_GROUPS: seg/GROUP/SEQ), and fsck reads them.
nbdkit -U "$logs/grp.sock" "$PLUGIN" "s3://$S3_BUCKET/grp" \
  endpoint="$S3_ENDPOINT" size=1M wal=off --run 'nbdsh -u "$uri" -c "h.pwrite(b\"g\" * 4096, 8192); h.flush()"'
grep -Eq '^PUT [^ ]* /grp/seg/[0-9a-f]{16}/[0-9a-f]{16} ' "$S3RVER_REQLOG" ||
  fail "no grouped segment key: $(grep ' /grp/seg/' "$S3RVER_REQLOG" | head -3)"
"$HYPERFILE" --endpoint "$S3_ENDPOINT" fsck "s3://$S3_BUCKET/grp"
kill_s3rver
echo "$0: store: ok ($(( $(date +%s) - t0 )) s)"

# 1, checked.
wait "$p1_pid" || { cat "$p1_dir/express.out"; fail "s3-errtest express"; }
cat "$p1_dir/express.out"
S3RVER_DIR=$p1_dir S3RVER_PORT=$p1_port S3RVER_PIDFILE=$p1_pidfile
S3RVER_REQLOG=$p1_reqlog
stats > "$S3RVER_DIR/stats"
python3 -c '
import json, re, sys
s = json.load(open(sys.argv[1]))
x = s["express"]
# 9 s of 4 s sessions renewed ahead of expiry: at least 3.
assert x["sessions"] >= 3, x
assert s["requests"]["CreateSession"] == x["sessions"], s
# The store counts them as sessions (not as GETs), each once.
n = int(re.search(r"CreateSession requests: (\d+)",
                  open(sys.argv[2]).read()).group(1))
assert n == x["sessions"], (n, x)
print("express: %d sessions, %d requests refused as expired" %
      (x["sessions"], x["expired"]))' "$S3RVER_DIR/stats" "$S3RVER_DIR/express.out"
awk -v host="$S3_BUCKET.s3.localhost:$S3RVER_PORT" '
  $1 == "EXPIRED" { next }
  {
    delete f
    for (i = 4; i <= NF; i++) { k = $i; sub(/=.*/, "", k); v = $i
                                sub(/^[^=]*=/, "", v); f[k] = v }
  }
  $2 != host { print "wrong host: " $0; bad = 1 }
  f["scope"] !~ /\/s3express\/aws4_request$/ {
    print "not signed for s3express: " $0; bad = 1 }
  $3 == "/?session" {
    if (f["ak"] != "S3RVER" || f["s3session"] != "no") {
      print "CreateSession not signed with the account key: " $0; bad = 1 }
    next }
  f["ak"] !~ /^HFXS/ || f["signed"] !~ /x-amz-s3session-token/ ||
  f["token"] != "no" || f["s3session"] != "yes" {
    print "not signed with a session: " $0; bad = 1 }
  END { exit bad }' "$S3RVER_REQLOG" || fail "requests not as directory buckets take them"
kill_s3rver
echo "$0: express sessions: ok ($(( $(date +%s) - t0 )) s)"

# 4. Directory-store halves skipped; a skip is a failure here.
for t in $part4; do
  r=0
  wait "${pid4[$t]}" || r=$?
  if [ "$r" != 0 ]; then
    cat "$logs/$t.log"
    fail "$t in Express mode: exit status $r"
  fi
  grep -q "bucket $S3_BUCKET" "$logs/$t.log" ||
    fail "$t did not run against the Express emulation"
  echo "$0: $t: ok ($(( $(date +%s) - t0 )) s)"
done
echo "$0: ok"
