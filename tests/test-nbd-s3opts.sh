#!/usr/bin/env bash
# The plugin's S3 parameters, end to end through nbdkit against the S3
# test server (tests/s3rver/server.js), with nothing from the
# environment: endpoint=, region=, access-key=, secret-key=+FILE,
# session-token=+FILE, virtual-host=true, tls-verify=false, ca-file=;
# then the other sources of credentials (environment, profiles).
# Each is checked where it shows: what the server received (its request
# log: Host, credential scope, key id, signed token), what it refuses
# (temporary credentials without their token, TLS without the CA), and
# that no secret or token appears in `ps` or in nbdkit's verbose and
# debug output.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdsh --version
requires python3 -c 'import nbd'
requires openssl version
hf_tmpdir

if ! hf_s3rver_start; then
  echo "$0: SKIP: no S3 test server"
  exit 77
fi

# Only parameters: no credentials, region or profile from elsewhere.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION \
      AWS_DEFAULT_REGION AWS_ENDPOINT_URL AWS_PROFILE \
      AWS_SHARED_CREDENTIALS_FILE
export HOME="$tmp"

( umask 077
  printf '%s\n' "$S3_TEST_SECRET_KEY" > "$tmp/secret"
  printf '%s\n' "$S3_TEMP_SECRET_KEY" > "$tmp/temp-secret"
  printf '%s\n' "$S3_TEMP_SESSION_TOKEN" > "$tmp/token" )

fail ()
{
  echo "$0: FAIL: $*" >&2
  exit 1
}

# no_secrets FILE: no secret key or session token in FILE.
no_secrets ()
{
  if grep -qF -e "$S3_TEST_SECRET_KEY" -e "$S3_TEMP_SECRET_KEY" \
       -e "$S3_TEMP_SESSION_TOKEN" "$1"; then
    fail "a secret or the session token appeared in $1"
  fi
}

mark_reqlog () { reqlog_mark=$(wc -l < "$S3RVER_REQLOG"); }
new_requests () { tail -n +$((reqlog_mark + 1)) "$S3RVER_REQLOG"; }

# The data check, run through nbdkit --run ($uri).
pattern='b"hyperfile s3 parameters " * 163'
write_check="nbdsh -u \"\$uri\" -c 'd = $pattern' \
  -c 'h.pwrite(d, 12345)' -c 'h.flush()' -c 'assert h.pread(len(d), 12345) == d'"
read_check="nbdsh -u \"\$uri\" -c 'd = $pattern' \
  -c 'assert h.pread(len(d), 12345) == d'"

# serve LOG RUN PARAMS...: nbdkit -v with -D hyperfile.s3=1, running RUN.
serve ()
{
  local out=$1 run=$2
  shift 2
  nbdkit -f -v -D hyperfile.s3=1 -U "$(hf_usock)" "$PLUGIN" "$@" --run "$run" \
    > "$out" 2>&1 || { cat "$out"; fail "nbdkit $*"; }
  no_secrets "$out"
}

# expect_refusal LOG PATTERN PARAMS...: startup fails, saying PATTERN.
expect_refusal ()
{
  local out=$1 pattern=$2
  shift 2
  if nbdkit -f -U "$(hf_usock)" "$PLUGIN" "$@" --run true > "$out" 2>&1; then
    cat "$out"
    fail "nbdkit started with $*"
  fi
  echo "--- refused as expected: $*"
  cat "$out"
  grep -qE "$pattern" "$out" || fail "no /$pattern/ in the message"
  no_secrets "$out"
}

# 1. endpoint=, region=, access-key=, secret-key=+FILE.  While the server
# runs, its command line shows the file name, not the secret.
base=(endpoint="$S3_ENDPOINT" region=eu-west-3
      access-key="$S3_TEST_ACCESS_KEY" secret-key=+"$tmp/secret")
mark_reqlog
hf_start "s3://$S3_BUCKET/opts-plain" size=4M "${base[@]}"
ps -ww -o args= -p "$hf_pid" > "$tmp/ps"
grep -qF "secret-key=+$tmp/secret" "$tmp/ps" || fail "ps: $(cat "$tmp/ps")"
no_secrets "$tmp/ps"
nbdsh -u "$uri" -c "d = $pattern" -c 'h.pwrite(d, 12345)' -c 'h.flush()'
hf_stop
no_secrets "$log"
n=$(new_requests | grep -c "ak=$S3_TEST_ACCESS_KEY scope=[0-9]*/eu-west-3/s3/aws4_request" || :)
[ "$n" -ge 3 ] || fail "only $n requests signed for eu-west-3 with access-key="
if new_requests | grep -v "ak=$S3_TEST_ACCESS_KEY " | grep .; then
  fail "requests above did not use access-key="
fi
serve "$tmp/plain2.out" "$read_check" "s3://$S3_BUCKET/opts-plain" "${base[@]}"
grep -q "s3: GET .* -> 20[06]" "$tmp/plain2.out" ||
  fail "no S3 debug output (-D hyperfile.s3=1) in $tmp/plain2.out"
echo "ok: endpoint=, region=, access-key=, secret-key=+FILE ($n requests)"

# 2. session-token=+FILE: temporary credentials are refused without it.
temp=(endpoint="$S3_ENDPOINT" access-key="$S3_TEMP_ACCESS_KEY"
      secret-key=+"$tmp/temp-secret")
expect_refusal "$tmp/notoken.out" "403 InvalidToken" \
  "s3://$S3_BUCKET/opts-token" size=4M "${temp[@]}"
mark_reqlog
serve "$tmp/token.out" "$write_check" "s3://$S3_BUCKET/opts-token" size=4M \
  "${temp[@]}" session-token=+"$tmp/token"
n=$(new_requests | grep -c "ak=$S3_TEMP_ACCESS_KEY .*signed=[^ ]*x-amz-security-token[^ ]* token=yes" || :)
[ "$n" -ge 3 ] || fail "only $n requests carried a signed session token"
echo "ok: session-token=+FILE ($n requests with the token, signed)"

# 3. virtual-host=true: Host BUCKET.s3.localhost (curl resolves it).
vhost_ep="http://s3.localhost:$S3RVER_PORT"
mark_reqlog
serve "$tmp/vhost.out" "$write_check" "s3://$S3_BUCKET/opts-vhost" size=4M \
  endpoint="$vhost_ep" virtual-host=true access-key="$S3_TEST_ACCESS_KEY" \
  secret-key=+"$tmp/secret"
n=$(new_requests | grep -c "^[A-Z]* $S3_BUCKET\.s3\.localhost:$S3RVER_PORT /opts-vhost" || :)
[ "$n" -ge 3 ] || fail "only $n virtual-host requests"
if new_requests | grep -v "^[A-Z]* $S3_BUCKET\.s3\.localhost:$S3RVER_PORT /" |
   grep .; then
  fail "requests above were not virtual-host style"
fi
echo "ok: virtual-host=true ($n requests to $S3_BUCKET.s3.localhost)"

# 4. The other credential sources: the environment, with a session
# token; ~/.aws/credentials profiles (profile=, AWS_PROFILE, the default
# one, AWS_SHARED_CREDENTIALS_FILE), a token there too.  Each run must
# sign every request with the key (and token) it was meant to use.
# used_key KEY yes|no: so did the requests since mark_reqlog.
used_key ()
{
  local n
  n=$(new_requests | grep -c "ak=$1 .* token=$2" || :)
  [ "$n" -ge 2 ] || fail "only $n requests with key $1, token=$2"
  if new_requests | grep -v "ak=$1 .* token=$2" | grep .; then
    fail "the requests above did not use key $1, token=$2"
  fi
  if [ "$2" = yes ] && new_requests |
     grep -v "signed=[^ ]*x-amz-security-token" | grep .; then
    fail "the requests above did not sign the token"
  fi
}
mark_reqlog
AWS_ACCESS_KEY_ID=$S3_TEMP_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_TEMP_SECRET_KEY \
  AWS_SESSION_TOKEN=$S3_TEMP_SESSION_TOKEN \
  serve "$tmp/env.out" "$read_check" "s3://$S3_BUCKET/opts-token" \
  endpoint="$S3_ENDPOINT"
used_key "$S3_TEMP_ACCESS_KEY" yes
mkdir "$tmp/.aws"
cat > "$tmp/.aws/credentials" <<CREDS
[default]
aws_access_key_id = $S3_TEMP_ACCESS_KEY
aws_secret_access_key = $S3_TEMP_SECRET_KEY
aws_session_token = $S3_TEMP_SESSION_TOKEN

# a comment
[hf-test]
aws_access_key_id=$S3_TEST_ACCESS_KEY
aws_secret_access_key=$S3_TEST_SECRET_KEY
CREDS
mark_reqlog
serve "$tmp/profile-default.out" "$read_check" "s3://$S3_BUCKET/opts-token" \
  endpoint="$S3_ENDPOINT"
used_key "$S3_TEMP_ACCESS_KEY" yes
mark_reqlog
serve "$tmp/profile.out" "$read_check" "s3://$S3_BUCKET/opts-plain" \
  endpoint="$S3_ENDPOINT" profile=hf-test
used_key "$S3_TEST_ACCESS_KEY" no
mark_reqlog
AWS_PROFILE=hf-test serve "$tmp/aws-profile.out" "$read_check" \
  "s3://$S3_BUCKET/opts-plain" endpoint="$S3_ENDPOINT"
used_key "$S3_TEST_ACCESS_KEY" no
mv "$tmp/.aws/credentials" "$tmp/creds"
mark_reqlog
AWS_SHARED_CREDENTIALS_FILE=$tmp/creds serve "$tmp/creds-file.out" \
  "$read_check" "s3://$S3_BUCKET/opts-plain" endpoint="$S3_ENDPOINT" \
  profile=hf-test
used_key "$S3_TEST_ACCESS_KEY" no
expect_refusal "$tmp/no-creds.out" "no credentials" \
  "s3://$S3_BUCKET/opts-plain" endpoint="$S3_ENDPOINT"
echo "ok: environment and ~/.aws/credentials (profile=, AWS_PROFILE," \
     "AWS_SHARED_CREDENTIALS_FILE, tokens)"

# 5. TLS, on a second server with a certificate from a CA of its own.
kill_s3rver
start_s3rver --tls
tls=(endpoint="$S3_ENDPOINT" access-key="$S3_TEST_ACCESS_KEY"
     secret-key=+"$tmp/secret")
expect_refusal "$tmp/tls-default.out" \
  "TLS certificate verification failed.*ca-file=" \
  "s3://$S3_BUCKET/opts-tls" size=4M "${tls[@]}"
expect_refusal "$tmp/tls-noca.out" "ca-file $tmp/no-such-ca.pem: No such file" \
  "s3://$S3_BUCKET/opts-tls" size=4M "${tls[@]}" ca-file="$tmp/no-such-ca.pem"
serve "$tmp/tls-ca.out" "$write_check" "s3://$S3_BUCKET/opts-tls" size=4M \
  "${tls[@]}" ca-file="$S3_CA_FILE"
if grep -q "verification is off" "$tmp/tls-ca.out"; then
  fail "a warning about verification with ca-file="
fi
serve "$tmp/tls-off.out" "$read_check" "s3://$S3_BUCKET/opts-tls" \
  "${tls[@]}" tls-verify=false
grep -q "warning: .*TLS certificate verification is off (tls-verify=false)" \
  "$tmp/tls-off.out" || fail "no warning about tls-verify=false"
echo "ok: TLS refused by default, ca-file= and tls-verify=false work"

echo "$0: ok"
