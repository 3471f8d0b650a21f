#!/usr/bin/env bash
# Secrets from a pipe or an inherited file descriptor, on the S3 test
# server: the plugin's secret-key=-FD (nbdkit's password syntax; its
# secret-key=- needs a terminal and says so), and hyperfile's
# --secret-key -FD and --secret-key - (standard input, a pipe here).  A
# wrong secret read that way is refused by the server (403); the secret
# never shows in ps or the output, only the -FD or - spelling.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdsh --version
hf_tmpdir

if ! hf_s3rver_start; then
  echo "$0: SKIP: no S3 test server"
  exit 77
fi
unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_REGION \
      AWS_DEFAULT_REGION AWS_ENDPOINT_URL AWS_PROFILE \
      AWS_SHARED_CREDENTIALS_FILE
export HOME="$tmp"
( umask 077
  printf '%s\n' "$S3_TEST_SECRET_KEY" > "$tmp/secret"
  printf '%s\n' "not-the-secret" > "$tmp/wrong" )

fail ()
{
  echo "$0: FAIL: $*" >&2
  exit 1
}
no_secret ()
{
  if grep -qF -e "$S3_TEST_SECRET_KEY" "$1"; then
    fail "the secret appeared in $1"
  fi
}
url="s3://$S3_BUCKET/secrets"
H=("$HYPERFILE" --endpoint "$S3_ENDPOINT" --access-key "$S3_TEST_ACCESS_KEY")
P=(endpoint="$S3_ENDPOINT" access-key="$S3_TEST_ACCESS_KEY")

# hyperfile --secret-key -FD, and - from a pipe.
"${H[@]}" --secret-key -5 create "$url" --size 4M 5<"$tmp/secret" \
  > "$tmp/out" 2>&1 || { cat "$tmp/out"; fail "create with -5"; }
no_secret "$tmp/out"
"${H[@]}" --secret-key - info "$url" < "$tmp/secret" > "$tmp/out" 2>&1 ||
  { cat "$tmp/out"; fail "info with - from a pipe"; }
grep -q "size: *4194304" "$tmp/out"
r=0; "${H[@]}" --secret-key -5 info "$url" 5<"$tmp/wrong" > "$tmp/out" 2>&1 ||
  r=$?
cat "$tmp/out"
[ "$r" = 1 ] && grep -q "403" "$tmp/out" || fail "a wrong secret: exit $r"
r=0; "${H[@]}" --secret-key -7 info "$url" > "$tmp/out" 2>&1 || r=$?
cat "$tmp/out"
[ "$r" = 2 ] && grep -q "file descriptor 7" "$tmp/out" ||
  fail "a closed descriptor: exit $r"
r=0; "${H[@]}" --secret-key -1 info "$url" > "$tmp/out" 2>&1 || r=$?
[ "$r" = 2 ] || fail "-1 accepted"

# The plugin: secret-key=-FD.
hf_start "$url" "${P[@]}" secret-key=-3 3<"$tmp/secret"
ps -ww -o args= -p "$hf_pid" > "$tmp/ps"
grep -qF "secret-key=-3" "$tmp/ps" || fail "ps: $(cat "$tmp/ps")"
no_secret "$tmp/ps"
nbdsh -u "$uri" -c 'h.pwrite(b"fd" * 2048, 0); h.flush()'
hf_stop
no_secret "$log"
# The man page's pipe example: the pipe on stdin, handed over as fd 3.
cat "$tmp/secret" | nbdkit -U "$(hf_usock)" "$PLUGIN" "$url" "${P[@]}" secret-key=-3 \
  --run 'nbdsh -u "$uri" -c "assert h.pread(4, 0) == b\"fdfd\""' 3<&0 ||
  fail "secret-key=-3 3<&0 from a pipe"
if nbdkit -U "$(hf_usock)" "$PLUGIN" "$url" "${P[@]}" secret-key=-3 --run true \
     3<"$tmp/wrong" > "$tmp/out" 2>&1; then
  fail "the plugin started with a wrong secret"
fi
cat "$tmp/out"
grep -q "403" "$tmp/out" || fail "no 403 for a wrong secret"
# secret-key=- reads only from a terminal (nbdkit's rule): a pipe is
# refused with a message, not read.
if echo "$S3_TEST_SECRET_KEY" | nbdkit -U "$(hf_usock)" "$PLUGIN" "$url" "${P[@]}" \
     secret-key=- --run true > "$tmp/out" 2>&1; then
  fail "secret-key=- read a pipe"
fi
cat "$tmp/out"
grep -q "not a tty" "$tmp/out" || fail "no reason given"
"${H[@]}" --secret-key +"$tmp/secret" export "$url" "$tmp/img" > /dev/null
head -c 4096 "$tmp/img" | grep -q "fdfd" || fail "data not written"
echo "$0: ok"
