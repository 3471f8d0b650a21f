#!/usr/bin/env bash
# hyperfile tests: the S3 endpoint is not trusted.  Against
# tests/s3-hostile-server.py (endless bodies, a huge Content-Length,
# more than the asked range, a 2 bytes/s drip, list pages that repeat
# their token, are empty but truncated, never end, or carry foreign
# keys) every case of unit/s3-hostile ends with its clear error, within
# a bounded time (a hang is killed at 120 s and fails the test) and
# bounded memory (peak RSS, measured by /usr/bin/time, under 200 MiB;
# before the limits, one endless body took a `hyperfile info` to 19 GB).
# The admin command against the flood endpoint fails the same way.  A
# short request-timeout and request-retries end the drip in seconds,
# through the admin command and the plugin.
set -e
source "$abs_srcdir/functions.sh"

requires test -x "$abs_builddir/unit/s3-hostile"
requires python3 --version
requires /usr/bin/time true
requires timeout --version
requires curl --version

work=$(mktemp -d --tmpdir hf-hostile.XXXXXX)
cleanup_add "rm -rf '$work'"

fail ()
{
  echo "$0: FAIL: $*" >&2
  exit 1
}

hostile_start "$work"
endpoint=$HOSTILE_ENDPOINT

max_rss_kb=$((200 * 1024))

# bounded NAME CMD...: run CMD with a hard 120 s limit under
# /usr/bin/time; sets status, secs and rss_kb; its stderr is $work/NAME.
bounded ()
{
  local name=$1
  shift
  status=0
  /usr/bin/time -f 'TIME %e %M' -o "$work/$name.time" \
    timeout -s KILL 120 "$@" 2> "$work/$name" || status=$?
  # (time puts "Command exited with non-zero status" first)
  read -r _ secs rss_kb < <(grep '^TIME ' "$work/$name.time")
  echo "$name: exit $status, ${secs} s, peak RSS $((rss_kb / 1024)) MiB"
  if [ "$rss_kb" -gt "$max_rss_kb" ]; then
    cat "$work/$name"
    fail "$name: peak RSS ${rss_kb} KiB (limit $max_rss_kb KiB)"
  fi
}

for c in ok flood bigclen rangeflood errflood drip loop emptytrunc endless \
         foreign; do
  bounded "$c" "$abs_builddir/unit/s3-hostile" "$endpoint" "$c"
  if [ "$status" -ne 0 ]; then
    cat "$work/$c"
    fail "case $c: exit status $status"
  fi
done

# The admin command, with its defaults, against an endless body.
export AWS_ACCESS_KEY_ID=AK AWS_SECRET_ACCESS_KEY=SK AWS_REGION=us-east-1
bounded info "$HYPERFILE" --endpoint "$endpoint" info s3://flood/vol
cat "$work/info"
[ "$status" -ne 0 ] && [ "$status" -ne 137 ] ||
  fail "hyperfile info against an endless body: exit status $status"
grep -q "endpoint $endpoint for bucket flood: the answer is larger than" \
  "$work/info" || fail "hyperfile info did not say the answer was too large"

# A short request timeout and retry budget, through the admin command
# and the plugin: against the drip (2 bytes/s) the first request ends
# with its clear error after 2 attempts of about 2 s (the defaults,
# 60 s and 8 retries, take minutes).
bounded drip-tool "$HYPERFILE" --endpoint "$endpoint" --request-timeout 2s \
  --request-retries 1 info s3://drip/vol
cat "$work/drip-tool"
[ "$status" -ne 0 ] && [ "$status" -ne 137 ] && [ "${secs%.*}" -lt 30 ] ||
  fail "hyperfile --request-timeout 2s against the drip: exit $status, $secs s"
grep -q "bucket drip: no complete answer within 2\.[0-9] s" "$work/drip-tool" ||
  fail "hyperfile --request-timeout 2s did not say it timed out"
r=0
"$HYPERFILE" --request-timeout 500ms info "$work/none" 2> "$work/out" || r=$?
cat "$work/out"
[ "$r" = 2 ] && grep -q "expected a duration from 1s to 24h" "$work/out" ||
  fail "--request-timeout 500ms was not refused as a usage error"
if nbdkit --version > /dev/null 2>&1 && nbdinfo --version > /dev/null 2>&1
then
  bounded drip-plugin nbdkit -U "$work/sock" "$PLUGIN" s3://drip/vol \
    endpoint="$endpoint" request-timeout=2s request-retries=1 \
    --run 'nbdinfo --size "$uri"'
  cat "$work/drip-plugin"
  [ "$status" -ne 0 ] && [ "$status" -ne 137 ] &&
    [ "${secs%.*}" -lt 30 ] ||
    fail "request-timeout=2s against the drip: exit $status, $secs s"
  grep -q "bucket drip: no complete answer within 2\.[0-9] s" \
    "$work/drip-plugin" || fail "request-timeout=2s did not say it timed out"
fi

# A clone's parent URL is read from the store.  A volume in S3 never
# follows a parent in a local directory: a descriptor planted there
# (here: a directory clone's descriptor, uploaded) is refused at open,
# and the admin command does not make such a clone.  The "ok" bucket is
# a well-behaved S3 stand-in.
head -c 65536 /dev/urandom > "$work/img"
"$HYPERFILE" create "$work/src" --size 1M
"$HYPERFILE" import "$work/img" "$work/src" > /dev/null
"$HYPERFILE" clone "$work/src" "$work/child" > /dev/null
curl -sf -X PUT --data-binary @"$work/child/volume" \
  "$endpoint/ok/child/volume" > /dev/null
r=0
"$HYPERFILE" --endpoint "$endpoint" info s3://ok/child > "$work/out" 2>&1 ||
  r=$?
cat "$work/out"
[ "$r" -ne 0 ] || fail "an S3 volume followed a local parent"
grep -q "is a clone of file://$work/src, a local directory: refused" \
  "$work/out" || fail "no clear refusal of the local parent"
r=0
"$HYPERFILE" --endpoint "$endpoint" clone "$work/src" s3://ok/child2 \
  > "$work/out" 2>&1 || r=$?
cat "$work/out"
[ "$r" -ne 0 ] && grep -q "a local directory: refused" "$work/out" ||
  fail "the admin command made an S3 clone of a local volume"
curl -s -o /dev/null -w '%{http_code}' "$endpoint/ok/child2/volume" |
  grep -q 404 || fail "the refused clone left a descriptor"

# Control characters in URLs: refused, nothing stored.
r=0
"$HYPERFILE" clone "$work/src" "$work/bad
name" > "$work/out" 2>&1 || r=$?
cat "$work/out"
[ "$r" -ne 0 ] && grep -q "clone: a control character (byte 0x0a" "$work/out" ||
  fail "a URL with a newline was accepted"
[ ! -e "$work/bad
name" ] || fail "the clone with a newline in its URL was made"
# One registration: the first clone's.
[ "$(ls "$work/src/clones%" | wc -l)" = 1 ] ||
  fail "a registration was left for a refused clone"
r=0
"$HYPERFILE" --endpoint "http://127.0.0.1:$port/
x" info s3://ok/child > "$work/out" 2>&1 || r=$?
cat "$work/out"
[ "$r" -ne 0 ] && grep -q "endpoint: a control character" "$work/out" ||
  fail "an endpoint with a newline was accepted"

echo "$0: all cases ended with their error in bounded time and memory"
