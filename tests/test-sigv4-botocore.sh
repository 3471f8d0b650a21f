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

# Debian's python3-botocore lives under /usr/bin/python3; a python3 earlier
# in PATH (pyenv, venv) may lack it, so take the first one that has it.
py=
for cand in /usr/bin/python3 python3; do
  if "$cand" -c 'import botocore.auth, botocore.awsrequest' >/dev/null 2>&1; then
    py=$cand
    break
  fi
done
requires test -n "$py"
requires test -x "$signer"

"$py" "$srcdir/sigv4-botocore.py" "$signer"
