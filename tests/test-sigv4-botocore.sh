#!/usr/bin/env bash
# Randomised comparison of lib/sigv4 with botocore's S3 signer: ~500
# S3-shaped requests from a fixed seed, signed by both sides
# (tests/sigv4-botocore.py drives `check-sigv4 --sign-stdin`).
set -e

# Skip (automake's 77) when a prerequisite is missing.
requires ()
{
  if ! "$@" >/dev/null 2>&1; then
    echo "$0: SKIP: requires $*"
    exit 77
  fi
}

srcdir="${abs_srcdir:-$(cd "$(dirname "$0")" && pwd)}"
builddir="${abs_builddir:-$PWD}"
signer="$builddir/unit/check-sigv4"

requires python3 --version
requires python3 -c 'import botocore.auth, botocore.awsrequest'
requires test -x "$signer"

python3 "$srcdir/sigv4-botocore.py" "$signer"
