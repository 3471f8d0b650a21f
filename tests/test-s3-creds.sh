#!/usr/bin/env bash
# The AWS credential chain and region, through the admin command, against
# the S3 test server and the fake credential endpoints
# (tests/aws-creds-server.py): EC2 instance metadata (IMDSv2), container
# credentials (FULL_URI + authorization token file), web identity (STS
# AssumeRoleWithWebIdentity), credential_process and region in
# ~/.aws/config, the order of the chain, the errors (a named profile
# that is missing, source_profile, a failing credential_process, a wrong
# web identity token, a container endpoint that is not allowed), a
# bucket in another region (301 PermanentRedirect), and the server-side
# encryption and storage class headers (sse=, sse-kms-key-id=,
# storage-class=, in the tool and the plugin).  No secret or token may
# appear in any output.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires python3 --version
requires nbdkit --version
hf_tmpdir

mkdir "$tmp/fake"
HF_S3RVER_CREDS_DIR=$tmp/fake
export HF_S3RVER_CREDS_DIR
start_creds_server "$tmp/fake" 3600
start_s3rver
# Nothing from the environment but what each case sets.
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION \
      AWS_DEFAULT_REGION AWS_ENDPOINT_URL AWS_PROFILE \
      AWS_SHARED_CREDENTIALS_FILE AWS_CONFIG_FILE AWS_ROLE_ARN \
      AWS_WEB_IDENTITY_TOKEN_FILE AWS_ROLE_SESSION_NAME \
      AWS_CONTAINER_CREDENTIALS_RELATIVE_URI \
      AWS_CONTAINER_CREDENTIALS_FULL_URI AWS_CONTAINER_AUTHORIZATION_TOKEN \
      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE AWS_ENDPOINT_URL_STS \
      AWS_EC2_METADATA_SERVICE_ENDPOINT
export HOME="$tmp/home"
mkdir -p "$HOME/.aws"

web_token='hf-web-identity-token/eyJhbGciOiJSUzI1NiJ9.EXAMPLE'
container_token='hf-container-authorization/EXAMPLE-TOKEN'
( umask 077
  printf '%s\n' "$web_token" > "$tmp/fake/web-token"
  printf '%s\n' "$container_token" > "$tmp/fake/container-token"
  printf '%s\n' "$web_token" > "$tmp/web-token"
  printf '%s\n' "$container_token" > "$tmp/container-token" )

fail ()
{
  echo "$0: FAIL: $*" >&2
  exit 1
}

# no_secrets FILE: none of the secrets, tokens handed out or test keys.
no_secrets ()
{
  local f
  if grep -qF -e "$S3_TEST_SECRET_KEY" -e "$web_token" \
       -e "$container_token" -e hf-fake-secret/ -e hf-fake-token/ \
       -e imds-session- "$1"; then
    fail "a secret or token appeared in $1"
  fi
  for f in "$tmp/fake/creds"/*.json; do
    [ -e "$f" ] || continue
    python3 - "$f" "$1" <<'PY' || fail "a secret of $f appeared in $1"
import json, sys
c = json.load(open(sys.argv[1]))
out = open(sys.argv[2], errors='replace').read()
sys.exit(1 if c['secret'] in out or c['token'] in out else 0)
PY
  done
}

mark () { reqlog_mark=$(wc -l < "$S3RVER_REQLOG"); creds_mark=$(wc -l < "$CREDS_LOG"); }
new_requests () { tail -n +$((reqlog_mark + 1)) "$S3RVER_REQLOG"; }
new_issues () { tail -n +$((creds_mark + 1)) "$CREDS_LOG"; }

# run WANT-EXIT NAME ARGS...: the admin command, output in $tmp/NAME.out.
run ()
{
  local want=$1 name=$2 r=0
  shift 2
  "$HYPERFILE" -v "$@" > "$tmp/$name.out" 2>&1 || r=$?
  echo "--- hyperfile $* (exit $r)"
  grep -v '^hyperfile: debug: s3: [A-Z]* ' "$tmp/$name.out" | head -20 || :
  no_secrets "$tmp/$name.out"
  [ "$r" = "$want" ] || fail "hyperfile $*: exit $r, want $want"
}

# signed_by_fake SOURCE: every request since mark used credentials the
# fake handed out from SOURCE, with their token, signed.
signed_by_fake ()
{
  local key n
  key=$(new_issues | awk -v s="$1" '$1 == "ISSUE" && $2 == s {print $3}' |
        tail -1)
  [ -n "$key" ] || fail "the fake handed out nothing from $1"
  n=$(new_requests | grep -c "ak=$key .*signed=[^ ]*x-amz-security-token[^ ]* token=yes" || :)
  [ "$n" -ge 2 ] || fail "only $n requests signed with $key from $1"
  if new_requests | grep -v "ak=ASIAHFTEST.* token=yes" | grep .; then
    fail "requests above did not use the fake's credentials"
  fi
}

ep=(--endpoint "$S3_ENDPOINT")

# 1. EC2 instance metadata, IMDSv2: the fake refuses metadata requests
# without a session token, so success means the token was PUT first.
mark
AWS_EC2_METADATA_DISABLED=false \
AWS_EC2_METADATA_SERVICE_ENDPOINT=$CREDS_URL \
  run 0 imds create "s3://$S3_BUCKET/imds" --size 4M "${ep[@]}"
signed_by_fake imds
if new_issues | grep -q '^REFUSE'; then
  fail "the fake refused a request: $(new_issues | grep '^REFUSE')"
fi
grep -q "credentials from EC2 instance metadata (IMDSv2)" "$tmp/imds.out" ||
  fail "no debug line naming the source"
echo "ok: EC2 instance metadata (IMDSv2)"

# ... and AWS_EC2_METADATA_DISABLED=true turns it off.
AWS_EC2_METADATA_SERVICE_ENDPOINT=$CREDS_URL \
  run 1 imds-off info "s3://$S3_BUCKET/imds" "${ep[@]}"
grep -q "no credentials: .*AWS_EC2_METADATA_DISABLED is set" \
  "$tmp/imds-off.out" || fail "no 'no credentials' error with IMDS off"

# 2. Container credentials, with the authorization token file; a wrong
# token is refused; plain http to a host that is not loopback is not
# allowed.
mark
AWS_CONTAINER_CREDENTIALS_FULL_URI=$CREDS_URL/container/credentials \
AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=$tmp/container-token \
  run 0 container info "s3://$S3_BUCKET/imds" "${ep[@]}"
signed_by_fake container
AWS_CONTAINER_CREDENTIALS_FULL_URI=$CREDS_URL/container/credentials \
AWS_CONTAINER_AUTHORIZATION_TOKEN=wrong-token \
  run 1 container-bad info "s3://$S3_BUCKET/imds" "${ep[@]}"
grep -q "credentials from the container credentials endpoint $CREDS_URL/container/credentials: HTTP 403" "$tmp/container-bad.out" ||
  fail "no clear error for a refused container token"
AWS_CONTAINER_CREDENTIALS_FULL_URI=http://192.0.2.1/creds \
  run 1 container-host info "s3://$S3_BUCKET/imds" "${ep[@]}"
grep -q "AWS_CONTAINER_CREDENTIALS_FULL_URI .*only a loopback address" \
  "$tmp/container-host.out" || fail "a non-loopback http FULL_URI was not refused"
echo "ok: container credentials (FULL_URI, authorization token file)"

# 3. Web identity: STS AssumeRoleWithWebIdentity with the token file.
mark
AWS_WEB_IDENTITY_TOKEN_FILE=$tmp/web-token \
AWS_ROLE_ARN=arn:aws:iam::123456789012:role/hf-test \
AWS_ROLE_SESSION_NAME=hf-session \
AWS_ENDPOINT_URL_STS=$CREDS_URL/sts/ \
  run 0 web info "s3://$S3_BUCKET/imds" "${ep[@]}"
signed_by_fake sts
new_issues | grep -q "^STS role=arn:aws:iam::123456789012:role/hf-test session=hf-session$" ||
  fail "STS did not get the role and session name"
printf 'not-the-token\n' > "$tmp/wrong-web-token"
AWS_WEB_IDENTITY_TOKEN_FILE=$tmp/wrong-web-token \
AWS_ROLE_ARN=arn:aws:iam::123456789012:role/hf-test \
AWS_ENDPOINT_URL_STS=$CREDS_URL/sts/ \
  run 1 web-bad info "s3://$S3_BUCKET/imds" "${ep[@]}"
grep -q "STS AssumeRoleWithWebIdentity at .*HTTP 400 InvalidIdentityToken" \
  "$tmp/web-bad.out" || fail "no clear error for a refused web identity"
echo "ok: web identity (STS AssumeRoleWithWebIdentity)"

# 4. ~/.aws/config: [profile NAME] with region and credential_process;
# the credentials file wins keys both set; region order.
cat > "$tmp/process.sh" <<EOF
#!/bin/sh
# A credential_process: Version 1 JSON on stdout.
echo "process ran" >> "$tmp/process.ran"
printf '{"Version": 1, "AccessKeyId": "%s", "SecretAccessKey": "%s"}\n' \
  "$S3_TEST_ACCESS_KEY" "$S3_TEST_SECRET_KEY"
EOF
chmod +x "$tmp/process.sh"
cat > "$HOME/.aws/config" <<EOF
[default]
region = ap-south-1

[profile hf-proc]
region = eu-west-3
credential_process = "$tmp/process.sh" --unused-arg

[profile hf-fail]
credential_process = sh -c 'echo "helper: cannot reach the vault" >&2; exit 3'

[profile hf-badjson]
credential_process = echo '{"Version": 2, "AccessKeyId": "A"}'

[profile hf-role]
role_arn = arn:aws:iam::123456789012:role/other
source_profile = default

[profile hf-static]
region = eu-north-1
aws_access_key_id = AKIDWRONG
aws_secret_access_key = wrong-secret-from-config
EOF
cat > "$HOME/.aws/credentials" <<EOF
[hf-static]
aws_access_key_id = $S3_TEST_ACCESS_KEY
aws_secret_access_key = $S3_TEST_SECRET_KEY
EOF
mark
run 0 process info "s3://$S3_BUCKET/imds" "${ep[@]}" --profile hf-proc
[ -s "$tmp/process.ran" ] || fail "credential_process did not run"
n=$(new_requests | grep -c "ak=$S3_TEST_ACCESS_KEY scope=[0-9]*/eu-west-3/" || :)
[ "$n" -ge 2 ] || fail "credential_process / profile region: $n requests"
if new_requests | grep -v "ak=$S3_TEST_ACCESS_KEY scope=[0-9]*/eu-west-3/" |
   grep .; then
  fail "requests above did not use the process's key and eu-west-3"
fi
echo "ok: credential_process and region of a [profile NAME] in ~/.aws/config"

mark
AWS_PROFILE=hf-static run 0 static info "s3://$S3_BUCKET/imds" "${ep[@]}"
n=$(new_requests | grep -c "ak=$S3_TEST_ACCESS_KEY scope=[0-9]*/eu-north-1/" || :)
[ "$n" -ge 2 ] || fail "credentials file over config: $n requests"
mark
AWS_REGION=us-west-2 AWS_DEFAULT_REGION=eu-central-1 AWS_PROFILE=hf-static \
  run 0 static-region info "s3://$S3_BUCKET/imds" "${ep[@]}"
n=$(new_requests | grep -c "scope=[0-9]*/us-west-2/" || :)
[ "$n" -ge 2 ] || fail "AWS_REGION over the profile's region: $n requests"
mark
AWS_DEFAULT_REGION=eu-central-1 AWS_PROFILE=hf-static \
  run 0 static-region2 info "s3://$S3_BUCKET/imds" "${ep[@]}"
n=$(new_requests | grep -c "scope=[0-9]*/eu-central-1/" || :)
[ "$n" -ge 2 ] || fail "AWS_DEFAULT_REGION over the profile's: $n requests"
mark
AWS_PROFILE=hf-static run 0 static-region3 info "s3://$S3_BUCKET/imds" \
  "${ep[@]}" --region sa-east-1
n=$(new_requests | grep -c "scope=[0-9]*/sa-east-1/" || :)
[ "$n" -ge 2 ] || fail "--region over everything: $n requests"
echo "ok: credentials file over config; region: --region, AWS_REGION," \
     "AWS_DEFAULT_REGION, profile"

run 1 proc-fail info "s3://$S3_BUCKET/imds" "${ep[@]}" --profile hf-fail
grep -q "credentials from profile hf-fail in .*: credential_process: exited with status 3" \
  "$tmp/proc-fail.out" || fail "no clear error for a failing process"
run 1 proc-json info "s3://$S3_BUCKET/imds" "${ep[@]}" --profile hf-badjson
grep -q 'profile hf-badjson in .*: credential_process: its output has no "Version": 1' \
  "$tmp/proc-json.out" || fail "no clear error for Version 2"
run 1 role info "s3://$S3_BUCKET/imds" "${ep[@]}" --profile hf-role
grep -q "profile hf-role in .*: role_arn with source_profile is not supported" \
  "$tmp/role.out" || fail "no clear error for source_profile"
run 1 missing info "s3://$S3_BUCKET/imds" "${ep[@]}" --profile hf-nope
grep -q "profile hf-nope (profile=) is in neither" "$tmp/missing.out" ||
  fail "no clear error for a missing profile"
echo "ok: errors (failing process, bad JSON, source_profile, missing profile)"

# 5. The order: the environment before web identity, web identity before
# the profile, the profile before container credentials and IMDS.
mark
AWS_ACCESS_KEY_ID=$S3_TEST_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_TEST_SECRET_KEY \
AWS_WEB_IDENTITY_TOKEN_FILE=$tmp/web-token AWS_ROLE_ARN=arn:aws:iam::1:role/x \
AWS_ENDPOINT_URL_STS=$CREDS_URL/sts/ AWS_PROFILE=hf-proc \
AWS_CONTAINER_CREDENTIALS_FULL_URI=$CREDS_URL/container/credentials \
AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=$tmp/container-token \
AWS_EC2_METADATA_DISABLED=false AWS_EC2_METADATA_SERVICE_ENDPOINT=$CREDS_URL \
  run 0 order1 info "s3://$S3_BUCKET/imds" "${ep[@]}"
[ -z "$(new_issues)" ] || fail "the environment did not come first"
rm -f "$tmp/process.ran"
mark
AWS_WEB_IDENTITY_TOKEN_FILE=$tmp/web-token AWS_ROLE_ARN=arn:aws:iam::1:role/x \
AWS_ENDPOINT_URL_STS=$CREDS_URL/sts/ AWS_PROFILE=hf-proc \
AWS_CONTAINER_CREDENTIALS_FULL_URI=$CREDS_URL/container/credentials \
AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=$tmp/container-token \
AWS_EC2_METADATA_DISABLED=false AWS_EC2_METADATA_SERVICE_ENDPOINT=$CREDS_URL \
  run 0 order2 info "s3://$S3_BUCKET/imds" "${ep[@]}"
[ "$(new_issues | awk '$1 == "ISSUE" {print $2}' | sort -u)" = sts ] ||
  fail "web identity did not come before the profile"
[ ! -e "$tmp/process.ran" ] || fail "credential_process ran after web identity"
mark
AWS_PROFILE=hf-proc \
AWS_CONTAINER_CREDENTIALS_FULL_URI=$CREDS_URL/container/credentials \
AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=$tmp/container-token \
AWS_EC2_METADATA_DISABLED=false AWS_EC2_METADATA_SERVICE_ENDPOINT=$CREDS_URL \
  run 0 order3 info "s3://$S3_BUCKET/imds" "${ep[@]}"
[ -z "$(new_issues)" ] && [ -s "$tmp/process.ran" ] ||
  fail "the profile did not come before container credentials"
mark
AWS_CONTAINER_CREDENTIALS_FULL_URI=$CREDS_URL/container/credentials \
AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=$tmp/container-token \
AWS_EC2_METADATA_DISABLED=false AWS_EC2_METADATA_SERVICE_ENDPOINT=$CREDS_URL \
  run 0 order4 info "s3://$S3_BUCKET/imds" "${ep[@]}" --profile default
[ "$(new_issues | awk '$1 == "ISSUE" {print $2}' | sort -u)" = container ] ||
  fail "container credentials did not come before IMDS"
echo "ok: the order of the chain"

# 6. A bucket in another region: S3 answers 301 PermanentRedirect with
# x-amz-bucket-region.
AWS_ACCESS_KEY_ID=$S3_TEST_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_TEST_SECRET_KEY \
  run 1 moved info "s3://hf-moved/vol" --endpoint "$CREDS_URL" \
  --region us-east-1
grep -q "HTTP 301 PermanentRedirect: the bucket is in region eu-west-1, not us-east-1: set region=eu-west-1" \
  "$tmp/moved.out" || fail "no 'set region=eu-west-1' in the error"
echo "ok: a 301 names the bucket's region"

# 7. Server-side encryption and storage class: sent on every object PUT,
# in the tool and the plugin; refused when invalid.
export AWS_ACCESS_KEY_ID=$S3_TEST_ACCESS_KEY AWS_SECRET_ACCESS_KEY=$S3_TEST_SECRET_KEY
mark
run 0 sse create "s3://$S3_BUCKET/sse" --size 4M "${ep[@]}" \
  --sse aws:kms --sse-kms-key-id arn:aws:kms:us-east-1:1:key/hf \
  --storage-class STANDARD_IA
n=$(new_requests | grep -cE "^PUT .* sse=aws:kms kms=yes class=STANDARD_IA( |$)" || :)
[ "$n" -ge 1 ] || fail "no PUT carried the SSE and storage class headers"
if new_requests | grep "^PUT " | grep -vE "sse=aws:kms kms=yes class=STANDARD_IA( |$)"; then
  fail "PUTs above lacked the headers"
fi
if new_requests | grep -v "^PUT " | grep -vE "sse=- kms=no class=-( |$)"; then
  fail "requests above that write no object carried the headers"
fi
echo "ok: the tool sends x-amz-server-side-encryption (aws:kms, key id)" \
     "and x-amz-storage-class on $n PUTs"
mark
nbdkit -f -U "$(hf_usock)" "$PLUGIN" "s3://$S3_BUCKET/sse" endpoint="$S3_ENDPOINT" \
  sse=AES256 storage-class=ONEZONE_IA \
  --run 'nbdsh -u "$uri" -c "h.pwrite(b\"x\" * 65536, 0)" -c "h.flush()"' \
  > "$tmp/plugin-sse.out" 2>&1 || { cat "$tmp/plugin-sse.out"; fail "plugin sse"; }
n=$(new_requests | grep -cE "^PUT .* sse=AES256 kms=no class=ONEZONE_IA( |$)" || :)
[ "$n" -ge 1 ] || fail "the plugin sent no PUT with sse=AES256"
if new_requests | grep "^PUT " | grep -vE "sse=AES256 kms=no class=ONEZONE_IA( |$)"; then
  fail "plugin PUTs above lacked the headers"
fi
echo "ok: the plugin sends sse=AES256 and storage-class=ONEZONE_IA ($n PUTs)"

run 1 sse-bad info "s3://$S3_BUCKET/sse" "${ep[@]}" --sse aes256
grep -q "sse=aes256: expected AES256 or aws:kms" "$tmp/sse-bad.out" ||
  fail "sse=aes256 not refused clearly"
run 1 kms-bad info "s3://$S3_BUCKET/sse" "${ep[@]}" --sse-kms-key-id k
grep -q "sse-kms-key-id= needs sse=aws:kms" "$tmp/kms-bad.out" ||
  fail "sse-kms-key-id without sse=aws:kms not refused"
run 1 class-bad info "s3://$S3_BUCKET/sse" "${ep[@]}" --storage-class GLACIER
grep -q "storage-class=GLACIER: objects in it must be restored" \
  "$tmp/class-bad.out" || fail "storage-class=GLACIER not refused clearly"
run 1 class-bad2 info "s3://$S3_BUCKET/sse" "${ep[@]}" --storage-class cold
grep -q "storage-class=cold: expected STANDARD" "$tmp/class-bad2.out" ||
  fail "storage-class=cold not refused clearly"
if nbdkit -f -U "$(hf_usock)" "$PLUGIN" "s3://$S3_BUCKET/sse" endpoint="$S3_ENDPOINT" \
     sse=kms --run true > "$tmp/plugin-sse-bad.out" 2>&1; then
  fail "the plugin started with sse=kms"
fi
grep -q "sse=kms: expected AES256 or aws:kms" "$tmp/plugin-sse-bad.out" ||
  { cat "$tmp/plugin-sse-bad.out"; fail "the plugin did not refuse sse=kms clearly"; }
echo "ok: invalid sse=, sse-kms-key-id=, storage-class= refused"

echo "$0: ok"
