#!/usr/bin/env bash
# hyperfile tests: the S3 store against a real S3 server (s3rver, with the
# shims of tests/s3rver/server.js) and against a botocore-checked
# stand-in (tests/s3-botocore-server.py).
#
#  1. The store conformance suite (unit/check-objstore) with its S3 half
#     enabled by HF_TEST_S3_*: every case must pass.
#  2. unit/s3-errtest: wrong secret (EACCES, message names bucket and
#     endpoint, the secret never appears), missing bucket (ENOENT),
#     ranges, multipart, conditional-put races, paged listing, big
#     conditional puts against a server that ignores If-None-Match on
#     multipart Complete (Ceph RGW 16.2): still EEXIST.
#  3. Conditional puts whose answer is lost: ours -> success, another
#     writer's object -> EEXIST.  503 on every attempt: retried, then EIO;
#     500 once: retried, then served.
#  4. Session tokens: refused without/with a wrong token, works with it;
#     every request of temporary credentials carries the token and signs
#     it (the server's request log), botocore computes the same signature
#     for every request (the stand-in), and the token never reaches the
#     store's log even with debug on.
#  5. Virtual-host addressing: requests really go to Host
#     BUCKET.s3.localhost with the key as the whole path, and botocore
#     agrees with their signatures.
#  6. The server killed and restarted under one open handle.
#  7. TLS with a CA made here: verification on by default refuses the
#     server with a message naming TLS verification, a CA that did not
#     sign it too, ca-file= works, tls-verify=false works with a warning.
#  8. A small throughput figure, for the log.
set -e
source "$abs_srcdir/functions.sh"

requires test -x "$abs_builddir/unit/s3-errtest"
requires test -x "$abs_builddir/unit/check-objstore"
requires openssl version
start_s3rver

errtest="$abs_builddir/unit/s3-errtest"
work=$(mktemp -d --tmpdir hf-s3test.XXXXXX)
cleanup_add "rm -rf '$work'"
log=$work/log

fail ()
{
  echo "$0: FAIL: $*" >&2
  exit 1
}

# Lines the server logged since mark_reqlog.
mark_reqlog () { reqlog_mark=$(wc -l < "$S3RVER_REQLOG"); }
new_requests () { tail -n +$((reqlog_mark + 1)) "$S3RVER_REQLOG"; }

# 1. Conformance suite against S3.
start=$(date +%s)
HF_TEST_S3_ENDPOINT=$S3_ENDPOINT HF_TEST_S3_BUCKET=$S3_BUCKET \
  HF_TEST_S3_REGION=us-east-1 "$abs_builddir/unit/check-objstore"
echo "check-objstore against s3rver: passed ($(( $(date +%s) - start )) s)"

# 2. Wrong secret: EACCES, a message naming bucket and endpoint, and the
# secret string nowhere in what the store printed; a missing bucket:
# ENOENT with a clear line; ranges, multipart, conditional PUTs, listing
# (functions.sh).
s3_errtest_basics "$errtest" "$log"
# A conditional PUT called off mid-body (needs s3rver's stall shim 10):
# ECANCELED, and the key stays free.
"$errtest" cancel

# 3. Lost answers of conditional puts; 5xx.
"$errtest" lostreply
"$errtest" status 2>"$log"
cat "$log"
grep -q "PUT 'hf-shim-status-503/k' in bucket $S3_BUCKET at $S3_ENDPOINT failed: HTTP 503 SlowDown.*(after 4 attempts)" "$log"
grep -q "GET 'hf-shim-status-503/k' .*HTTP 503 SlowDown.*(after 4 attempts)" "$log"

# 4. Session tokens, against s3rver (which refuses the temporary key
# without its token) with the store's debug log on.
mark_reqlog
S3_ERRTEST_DEBUG=1 "$errtest" token 2>"$log"
grep -q "PUT token/k -> 200" "$log"     # the debug log was on
if grep -qF -e "$S3_TEMP_SESSION_TOKEN" -e "$S3_TEMP_SECRET_KEY" "$log"; then
  fail "the session token or secret appeared in the store's log"
fi
n=$(new_requests | grep -c "ak=$S3_TEMP_ACCESS_KEY .* token=yes" || :)
bad=$(new_requests | grep "ak=$S3_TEMP_ACCESS_KEY .* token=yes" |
      grep -vc "signed=[^ ]*x-amz-security-token" || :)
[ "$n" -ge 8 ] || fail "only $n requests carried the session token"
[ "$bad" -eq 0 ] || fail "$bad requests carried the token unsigned"
echo "token: $n requests with the session token, all signed"

# Against the botocore stand-in: every request re-signed by botocore.
py=
for cand in /usr/bin/python3 python3; do
  if "$cand" -c 'import botocore.auth' >/dev/null 2>&1; then
    py=$cand
    break
  fi
done
# botocore_server NAME ACCESS SECRET [TOKEN]: start the stand-in; sets
# boto_port.  Its stdout is $work/NAME.out, stderr $work/NAME.err.
botocore_server ()
{
  local name=$1 i
  shift
  : > "$work/$name.out"       # before the background job opens it
  "$py" "$abs_srcdir/s3-botocore-server.py" "$S3_BUCKET" "$@" \
    >"$work/$name.out" 2>"$work/$name.err" &
  cleanup_add "kill_started TERM $! '$(proc_start $!)'"
  for (( i = 0; i < 100; i++ )); do
    boto_port=$(awk '/^PORT /{print $2}' "$work/$name.out")
    [ -n "$boto_port" ] && return 0
    sleep 0.1
  done
  cat "$work/$name.err"
  fail "the botocore stand-in did not start"
}
# check_botocore NAME MIN: at least MIN requests verified, no mismatch.
check_botocore ()
{
  local n
  n=$(grep -c '^VERIFIED ' "$work/$1.out" || :)
  if grep -q MISMATCH "$work/$1.err"; then
    cat "$work/$1.err"
    fail "botocore signs $1 requests differently"
  fi
  [ "$n" -ge "$2" ] || fail "only $n $1 requests verified by botocore"
  echo "$1: botocore computed the same signature for $n requests"
}
if [ -n "$py" ]; then
  botocore_server token "$S3_TEMP_ACCESS_KEY" "$S3_TEMP_SECRET_KEY" \
    "$S3_TEMP_SESSION_TOKEN"
  S3_ENDPOINT=http://127.0.0.1:$boto_port "$errtest" token
  check_botocore token 7
  grep -q '^VERIFIED PUT .*signed=.*x-amz-security-token' "$work/token.out"
else
  echo "$0: no python3 with botocore: botocore comparison skipped"
fi

# 5. Virtual-host addressing: curl resolves *.localhost to loopback.
mark_reqlog
"$errtest" vhost "http://s3.localhost:$S3RVER_PORT"
n=$(new_requests | grep -c "^[A-Z]* $S3_BUCKET\.s3\.localhost:$S3RVER_PORT /" || :)
[ "$n" -ge 6 ] || fail "only $n requests used Host $S3_BUCKET.s3.localhost"
if new_requests | grep -v "^[A-Z]* $S3_BUCKET\.s3\.localhost:$S3RVER_PORT /" |
   grep .; then
  fail "requests above were not virtual-host style"
fi
if new_requests | grep -q " /$S3_BUCKET/"; then
  fail "a virtual-host request still named the bucket in its path"
fi
echo "vhost: $n requests to Host $S3_BUCKET.s3.localhost:$S3RVER_PORT"
if [ -n "$py" ]; then
  botocore_server vhost "$AWS_ACCESS_KEY_ID" "$AWS_SECRET_ACCESS_KEY"
  "$errtest" vhost "http://s3.localhost:$boto_port"
  check_botocore vhost 6
fi

# 6. Server killed and restarted on the same port under one open handle.
"$errtest" restart "$(cat "$S3RVER_PIDFILE")" \
  "bash -c '. \"$abs_srcdir/functions.sh\"; restart_s3rver'" 2>"$log"
cat "$log"
grep -q "after 4 attempts" "$log"
grep -q "in bucket $S3_BUCKET at $S3_ENDPOINT failed" "$log"

# 8. Throughput, for the log (before the TLS server replaces this one).
"$errtest" bench

# 7. TLS: a second server, on https, with a certificate from a CA made
# by start_s3rver; another CA that did not sign it must not do.
kill_s3rver
start_s3rver --tls
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
  -keyout "$work/other-ca.key" -out "$work/other-ca.pem" -days 2 \
  -subj "/CN=not the hyperfile test CA" 2>/dev/null
"$errtest" tls "$S3_CA_FILE" "$work/other-ca.pem" 2>"$log"
cat "$log"
grep -q "endpoint $S3_ENDPOINT for bucket $S3_BUCKET: TLS certificate verification failed" "$log"
grep -q "PUT 'tls/k' in bucket $S3_BUCKET at $S3_ENDPOINT failed: TLS certificate verification failed" "$log"
grep -q "ca-file /nonexistent/hf-ca.pem: No such file" "$log"
grep -q "warning: .*TLS certificate verification is off (tls-verify=false)" "$log"
