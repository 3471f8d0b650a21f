#!/usr/bin/env bash
# hyperfile tests: the S3 store against an external, real S3 server
# (HF_EXT_S3_*: tests/rgw/start.sh, Ceph's RADOS Gateway), in a fresh
# bucket.  Skipped without one; contrib/check-all.sh runs it through
# tests/rgw/check.sh.  What needs s3rver's shims, kill/restart or its
# request log stays in test-objstore-s3.sh.
#
#  1. The store conformance suite (unit/check-objstore, S3 half).
#  2. unit/s3-errtest: wrong secret (EACCES, names bucket and endpoint,
#     the secret never printed), missing bucket (ENOENT), ranges,
#     multipart, conditional-put races, a big conditional put (one PUT:
#     RGW 16 ignores If-None-Match on CompleteMultipartUpload), paged
#     listing, virtual-host addressing (HF_EXT_S3_VHOST_ENDPOINT), and a
#     throughput figure for the log.
set -e
source "$abs_srcdir/functions.sh"

requires test -n "${HF_EXT_S3_ENDPOINT-}"
requires test -x "$abs_builddir/unit/s3-errtest"
requires test -x "$abs_builddir/unit/check-objstore"
start_ext_s3

errtest="$abs_builddir/unit/s3-errtest"
work=$(mktemp -d --tmpdir hf-s3ext.XXXXXX)
cleanup_add "rm -rf '$work'"
log=$work/log

# 1. Conformance suite.
start=$(date +%s)
HF_TEST_S3_ENDPOINT=$S3_ENDPOINT HF_TEST_S3_BUCKET=$S3_BUCKET \
  HF_TEST_S3_REGION=$AWS_REGION "$abs_builddir/unit/check-objstore"
echo "check-objstore against $HF_EXT_S3_NAME: passed" \
     "($(( $(date +%s) - start )) s)"

# 2. Wrong secret, missing bucket, ranges, multipart, conditional PUTs,
# listing (functions.sh).
s3_errtest_basics "$errtest" "$log"
if [ -n "${HF_EXT_S3_VHOST_ENDPOINT-}" ]; then
  "$errtest" vhost "$HF_EXT_S3_VHOST_ENDPOINT"
fi
"$errtest" bench
echo "$0: ok"
