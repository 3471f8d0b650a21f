#!/usr/bin/env bash
# A volume keeps working while its temporary credentials expire under it.
# The credentials come from EC2 instance metadata (the fake endpoints of
# tests/aws-creds-server.py) and s3rver refuses them with 400
# ExpiredToken once they expire (its shim 6b, HF_S3RVER_CREDS_DIR).
#
#   A. Credentials valid for 5 s, and saying so: writes, flushes and
#      uploads go on for several lifetimes.
#   A2. Credentials whose Expiration says 4 s but that the server takes
#      for a minute: the plugin fetches new ones because of the
#      Expiration alone (no request is ever refused).
#   B. Credentials valid for 4 s whose Expiration says an hour (a server
#      whose clock runs ahead, or credentials revoked early): nothing is
#      due for a refresh, so the first request refused as ExpiredToken
#      must fetch new ones and be sent again.
#
# Every write and flush must succeed, the data read back, and requests
# must have been signed by several successive credentials; no secret or
# token in the log.
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

mkdir "$tmp/fake"
HF_S3RVER_CREDS_DIR=$tmp/fake
export HF_S3RVER_CREDS_DIR
start_s3rver
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE \
      AWS_SHARED_CREDENTIALS_FILE AWS_CONFIG_FILE AWS_ROLE_ARN \
      AWS_WEB_IDENTITY_TOKEN_FILE AWS_CONTAINER_CREDENTIALS_RELATIVE_URI \
      AWS_CONTAINER_CREDENTIALS_FULL_URI
export HOME="$tmp"
export AWS_EC2_METADATA_DISABLED=false

# workload SECONDS: write a new 64 KiB pattern and flush every 0.3 s for
# that long, then read every pattern back.
workload ()
{
  nbdsh -u "$uri" -c "
import time
end = time.time() + $1
n = 0
while time.time() < end:
    h.pwrite(bytes([n % 251 + 1]) * 65536, n * 65536 % (8 << 20))
    h.flush()
    n += 1
    time.sleep(0.3)
for i in range(min(n, 128)):
    j = n - 1 - i
    assert h.pread(65536, j * 65536 % (8 << 20)) == bytes([j % 251 + 1]) * 65536, j
print('wrote and flushed', n, 'patterns')
"
}

# check_run NAME: no secret in the log; the keys that signed requests.
check_run ()
{
  local f
  for f in "$tmp/fake/creds"/*.json; do
    python3 - "$f" "$log" <<'PY' || fail "a secret of $f appeared in the log"
import json, sys
c = json.load(open(sys.argv[1]))
out = open(sys.argv[2], errors='replace').read()
sys.exit(1 if c['secret'] in out or c['token'] in out else 0)
PY
  done
  keys=$(grep -o 'ak=ASIAHFTEST[A-Z0-9]*' "$S3RVER_REQLOG" | sort -u | wc -l)
  expired=$(grep -c '^EXPIRED ' "$S3RVER_REQLOG" || :)
  issued=$(grep -c '^ISSUE imds ' "$CREDS_LOG" || :)
  echo "$1: $issued credentials issued, $keys signed requests," \
       "$expired requests refused as expired"
}

# part NAME SECONDS LIFETIME [CLAIMED]: with a fresh request log and
# a credential server issuing credentials for LIFETIME s that claim to
# last CLAIMED s (start_creds_server), run the workload for SECONDS on
# volume expiry-NAME, stop, and check_run (keys, expired, issued).
part ()
{
  local name=$1 secs=$2
  shift 2
  : > "$S3RVER_REQLOG"
  rm -f "$tmp/fake/creds"/*
  start_creds_server "$tmp/fake" "$@"
  export AWS_EC2_METADATA_SERVICE_ENDPOINT=$CREDS_URL
  log=$tmp/$name.log
  hf_start "s3://$S3_BUCKET/expiry-${name,,}" endpoint="$S3_ENDPOINT" \
    size=8M flush-interval=200ms -D hyperfile.s3=1
  workload "$secs"
  hf_stop
  kill_ours 9 "$CREDS_PID" aws-creds-server.py
  wait "$CREDS_PID" 2>/dev/null || :
  check_run "$name"
}

# A. Refreshed while they expire.
part A 12 5
[ "$keys" -ge 3 ] || fail "A: requests were signed by only $keys credentials"

# A2. Refreshed because of the Expiration, before the server minds.
part A2 11 60 4
[ "$keys" -ge 3 ] || fail "A2: requests were signed by only $keys credentials"
[ "$expired" = 0 ] || fail "A2: $expired requests refused as expired"
grep -q "credentials from EC2 instance metadata (IMDSv2) refreshed" "$log" ||
  fail "A2: no refresh in the log"

# B. The server calls them expired long before their Expiration.
part B 8 4 3600
[ "$expired" -ge 1 ] || fail "B: no request was refused as expired"
[ "$keys" -ge 2 ] || fail "B: requests were signed by only $keys credentials"
if grep -q "error: .*ExpiredToken" "$log"; then
  fail "B: an operation failed with ExpiredToken"
fi

echo "$0: ok"
