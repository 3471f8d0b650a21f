#!/usr/bin/env bash
# Bad configuration fails at startup with one clear message, and no
# secret ever appears in any output.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
hf_tmpdir

secret="Sup3rS3cretValue-do-not-print"
echo "$secret" > "$tmp/secret"

one_line=1

# expect_fail PATTERN PARAMS...: nbdkit must fail and print PATTERN.
expect_fail ()
{
  local pattern="$1"; shift
  if nbdkit -f -U "$tmp/bad.sock" "$PLUGIN" "$@" --run true \
      > "$tmp/out" 2>&1; then
    echo "$0: expected failure for: $*"; cat "$tmp/out"; exit 1
  fi
  echo "--- $*"; cat "$tmp/out"
  if ! grep -qiE "$pattern" "$tmp/out"; then
    echo "$0: message does not match /$pattern/"; exit 1
  fi
  # One line, not the same failure told by every layer.  (The S3 cases
  # may add retry warnings, so they only need the right line.)
  if [ "$one_line" = 1 ] && [ "$(grep -c 'error:' "$tmp/out")" -ne 1 ]; then
    echo "$0: expected exactly one error line"; exit 1
  fi
  if grep -q "$secret" "$tmp/out"; then
    echo "$0: the secret leaked into the output"; exit 1
  fi
}

expect_fail 'url parameter is required'
expect_fail 'unknown scheme' 'http://example.com/x'
expect_fail 'url: a control character \(byte 0x0a at offset 4\)' "/tmp
x" size=1M
[ ! -e "/tmp
x" ]
expect_fail 'no bucket' 's3://' secret-key=+"$tmp/secret" access-key=AK
expect_fail 'no volume there.*size=' "$tmp/absent"
expect_fail 'size=' "$tmp/v" size=0
# Near 2^63: was rounded up past INT64_MAX into a volume nbdkit cannot
# serve.  The admin command refuses it too, and "-1".
expect_fail 'size=9223372036854775807: larger than a volume can be' \
  "$tmp/big" size=9223372036854775807
expect_fail 'size=9223372036854710273: larger than a volume' "$tmp/big" \
  size=9223372036854710273
[ ! -e "$tmp/big/volume" ]
r=0; "$HYPERFILE" create "$tmp/big" --size 9223372036854775807 \
  > "$tmp/out" 2>&1 || r=$?
cat "$tmp/out"
[ "$r" = 2 ] && grep -q 'larger than a volume can be' "$tmp/out"
r=0; "$HYPERFILE" create "$tmp/big" --size -1 > "$tmp/out" 2>&1 || r=$?
cat "$tmp/out"
[ "$r" = 2 ] && grep -q "cannot parse '-1'" "$tmp/out"
[ ! -e "$tmp/big/volume" ]
expect_fail 'wal=: expected a directory' "$tmp/v" size=1M wal=
# Booleans are not directories: wal=on and cache=yes made ./on and ./yes
# (in nbdkit's working directory) and used them.  Off-like words mean
# off; the rest is refused, and nothing is created.
( cd "$tmp"
  for p in wal=on cache=on wal=yes cache=true wal=1 cache=ON; do
    expect_fail "${p%%=*}=${p#*=}: a boolean, not a directory" v size=1M "$p"
  done
  [ -z "$(ls -A | grep -ivx 'v\|bad.sock\|out\|secret')" ] || {
    ls -la; echo "$0: a boolean made a directory"; exit 1; }
)
for p in wal=off cache=off wal=no cache=false wal=0 cache=OFF; do
  nbdkit -U "$(hf_usock)" "$PLUGIN" "$tmp/offvol" size=1M "$p" --run true
done
[ ! -e off ] && [ ! -e no ] && [ ! -e 0 ] && [ ! -e false ]
expect_fail 'wal-size=.*at least' "$tmp/v" size=1M wal="$tmp/wal" wal-size=10
expect_fail 'at=.*not a time in ISO 8601' "$tmp/v" size=1M at=2026-11-25T25:00:00Z
expect_fail 'at=.*not a time in ISO 8601' "$tmp/v" size=1M at=2026-11-25
expect_fail 'at=.*neither a segment number' "$tmp/v" size=1M at=.hidden
expect_fail 'no volume there to open at=yesterday' "$tmp/v" size=1M at=yesterday
expect_fail 'cache-size=.*at least' "$tmp/v" size=1M cache="$tmp/c" cache-size=10
touch "$tmp/notadir"
expect_fail 'cache=.*directory' "$tmp/v" size=1M cache="$tmp/notadir"
expect_fail 'wal=.*not a directory' "$tmp/v" size=1M wal="$tmp/notadir"
expect_fail 'block-size=' "$tmp/v" size=1M block-size=1000
expect_fail 'flush-interval=.*duration' "$tmp/v" size=1M flush-interval=soon
# Durations: one parser for plugin and tool, sign and overflow checked
# (retain=213504d wrapped to about 25 minutes, and GC then deleted the
# history it was meant to keep; flush-interval=-1 was accepted).
expect_fail 'flush-interval=-1: expected a duration' "$tmp/v" size=1M \
  flush-interval=-1
expect_fail 'retain=213504d: .*too long' "$tmp/v" size=1M retain=213504d
expect_fail 'retain=99999999999999999999s: .*too long' "$tmp/v" size=1M \
  retain=99999999999999999999s
expect_fail 'gc-grace=-5m: expected a duration' "$tmp/v" size=1M gc-grace=-5m
expect_fail 'gc-interval=.*expected a duration' "$tmp/v" size=1M \
  gc-interval=' 5s'
expect_fail 'unknown parameter' "$tmp/v" size=1M colour=blue
expect_fail 'request-timeout=0: expected a duration from 1s to 24h' \
  "$tmp/v" size=1M request-timeout=0
expect_fail 'request-timeout=25h: expected a duration from 1s to 24h' \
  "$tmp/v" size=1M request-timeout=25h
expect_fail 'request-timeout=-5s: expected a duration' "$tmp/v" size=1M \
  request-timeout=-5s
expect_fail 'request-retries=101: expected a number from 0 to 100' \
  "$tmp/v" size=1M request-retries=101
expect_fail 'request-retries=-1: expected a number' "$tmp/v" size=1M \
  request-retries=-1
expect_fail 'metrics=.*cannot create' "$tmp/v" size=1M metrics="$tmp/no/such/m"
# An existing volume: a smaller size= (a larger one grows it:
# test-tool-resize.sh), and at= out of range.
nbdkit -U "$(hf_usock)" "$PLUGIN" "$tmp/v" size=1M --run true
expect_fail 'is smaller than the existing volume.*never shrinks' "$tmp/v" size=512K
expect_fail 'at=99 is out of range' "$tmp/v" at=99
expect_fail 'no point in time yet' "$tmp/v" at=2026-11-25T10:00:00Z
expect_fail 'snapshot nosuch does not exist' "$tmp/v" at=nosuch
# A log directory another server uses (it holds wal.lock).  This shell
# holds the lock itself, taken before the server starts: a background
# `flock FILE sleep` may not hold it yet on a loaded machine, and
# killing it leaves its sleep behind.
mkdir -p "$tmp/wal2"
exec {lockfd}>"$tmp/wal2/wal.lock"
flock -n "$lockfd"
expect_fail 'wal=.*in use by another process' "$tmp/v" wal="$tmp/wal2"
exec {lockfd}>&-
# Local directories others could tamper with (nbdkit-hyperfile-plugin(1),
# LOCAL DIRECTORIES): a symlink for the directory, a directory others or
# the group can write, a planted symlink for the lock file.  Nothing
# behind a symlink is touched.
echo precious > "$tmp/victim"
mkdir -m 0700 "$tmp/realdir"
ln -s "$tmp/realdir" "$tmp/dirlink"
expect_fail 'cache=.*dirlink: is a symbolic link' "$tmp/v" cache="$tmp/dirlink"
expect_fail 'wal=.*dirlink: is a symbolic link' "$tmp/v" wal="$tmp/dirlink"
mkdir "$tmp/openwal"
chmod 0777 "$tmp/openwal"
expect_fail 'wal=.*openwal: mode 0777 lets others write' "$tmp/v" \
  wal="$tmp/openwal"
chmod 0770 "$tmp/openwal"
expect_fail 'cache=.*openwal: mode 0770 lets its group write' "$tmp/v" \
  cache="$tmp/openwal"
mkdir -m 0700 "$tmp/planted"
ln -s "$tmp/victim" "$tmp/planted/cache.lock"
ln -s "$tmp/victim" "$tmp/planted/wal.lock"
expect_fail 'cache=.*cache.lock: a symbolic link' "$tmp/v" cache="$tmp/planted"
expect_fail 'wal=.*wal.lock: a symbolic link' "$tmp/v" wal="$tmp/planted"
[ "$(cat "$tmp/victim")" = precious ]
[ -z "$(ls -A "$tmp/realdir")" ] && [ -z "$(ls -A "$tmp/openwal")" ]
# Verbose output of a working server does not show the secret either
# (given as +FILE; a literal value would be echoed by nbdkit -v itself).
nbdkit -v -U "$(hf_usock)" "$PLUGIN" "$tmp/v" access-key=AK secret-key=+"$tmp/secret" \
  session-token=+"$tmp/secret" --run true > "$tmp/out" 2>&1
if grep -q "$secret" "$tmp/out"; then
  echo "$0: the secret leaked into verbose output"; exit 1
fi

one_line=0
# Unreachable S3 endpoint (nothing listens on port 1), wrong credentials.
# A build without the S3 store says so clearly instead; then there is no
# S3 behaviour to test here.
if nbdkit -f -U "$tmp/probe.sock" "$PLUGIN" s3://probe endpoint=http://127.0.0.1:1 \
     access-key=AK secret-key=x --run true 2>&1 | grep -q 'not available in this build'; then
  expect_fail 'S3 store is not available' 's3://bucket/v' size=1M
  echo "$0: ok (S3 store not in this build)"
  exit 0
fi
expect_fail '127.0.0.1:1|connect' 's3://bucket/v' endpoint=http://127.0.0.1:1 \
  access-key=AK secret-key=+"$tmp/secret" size=1M
if hf_s3rver_start; then
  expect_fail "403|denied|credentials|signature" "s3://$S3_BUCKET/v" \
    endpoint="$S3_ENDPOINT" access-key="$AWS_ACCESS_KEY_ID" \
    secret-key=+"$tmp/secret" size=1M
  expect_fail "bucket" "s3://no-such-bucket-hf/v" endpoint="$S3_ENDPOINT" \
    size=1M
fi
echo "$0: ok"
