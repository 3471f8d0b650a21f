#!/usr/bin/env bash
# hyperfile bench: opening a volume of N segments on a directory bucket
# (S3 Express One Zone) against the EMULATION in tests/s3rver/server.js
# (AWS itself was not reachable), beside the same on the ordinary test
# server, with bench/writeamp -o: one "open ..." line per open (clean,
# then after a crash) with the seconds and the store's requests by kind,
# and the server's own count of CreateSession and LIST requests.
#
# Usage: bench/express-open.sh [N...]      (default: 1000 10000)
# Run from a build tree where `make -C tests writeamp` has been run, or
# with WRITEAMP=/path/to/writeamp.  Sessions last 300 s and pages hold
# 1,000 keys, as AWS documents.
set -e
: "${abs_top_srcdir:=$(cd "$(dirname "$0")/.." && pwd)}"
abs_srcdir=$abs_top_srcdir/tests
export abs_top_srcdir abs_srcdir
source "$abs_srcdir/functions.sh"
: "${WRITEAMP:=$(ls "$PWD/tests/writeamp" "$PWD/_build/tests/writeamp" \
                   2>/dev/null | head -1)}"
[ -x "$WRITEAMP" ] || { echo "$0: no writeamp (make -C tests writeamp)" >&2; exit 2; }
[ $# -gt 0 ] || set -- 1000 10000

run ()
{
  local mode=$1 n=$2 stats
  if [ "$mode" = express ]; then
    export HF_TEST_S3_EXPRESS=1 HF_TEST_S3_EXPRESS_TTL=300 \
           HF_TEST_S3_EXPRESS_PAGE=1000
  else
    unset HF_TEST_S3_EXPRESS
  fi
  S3_BUCKET=hf-bench start_s3rver > /dev/null
  AWS_ENDPOINT_URL=$S3_ENDPOINT "$WRITEAMP" -o "$n" "s3://$S3_BUCKET/open" |
    sed "s/^/$mode: /"
  stats=$(curl -sf "http://127.0.0.1:$S3RVER_PORT/__hyperfile_stats")
  python3 -c '
import json, sys
r = json.loads(sys.argv[1])["requests"]
print("%s: server total: %d CreateSession, %d LIST, %d PUT, %d GET"
      % (sys.argv[2], r.get("CreateSession", 0), r.get("ListObjects", 0),
         r.get("PutObject", 0), r.get("GetObject", 0)))' "$stats" "$mode"
  kill_s3rver
}

for n in "$@"; do
  run express "$n"
  run ordinary "$n"
done
