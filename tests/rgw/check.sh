#!/usr/bin/env bash
# Run the S3-facing tests against a real Ceph RADOS Gateway:
#
#   tests/rgw/check.sh BUILDDIR [TEST...]
#
# Brings up a single-node cluster (tests/rgw/start.sh), runs
# `make -C BUILDDIR/tests check` with TESTS = the given tests or
# `make print-rgw-tests` (tests/Makefile.am RGW_TESTS), pointed at it
# (HF_EXT_S3_*, a fresh bucket per test) with their directory-store
# halves skipped (HF_TEST_S3_ONLY=1), and tears the cluster down however
# it ends.  Output: BUILDDIR/check-rgw.out (the automake summary, as
# contrib/check-all.sh reads it); the failed tests' logs are printed.
# Exit status: 0 if every test passed, 77 if Ceph is not installed.
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
if [ $# -lt 1 ]; then
  echo "usage: tests/rgw/check.sh BUILDDIR [TEST...]" >&2
  exit 1
fi
build="$(cd "$1" && pwd)"
shift

rgw_dir=
cleanup ()
{
  if [ -n "$rgw_dir" ]; then "$here/stop.sh" "$rgw_dir" || :; fi
}
trap cleanup EXIT
trap 'exit 1' INT TERM

start=$(date +%s)
rgw_dir="$(mktemp -d --tmpdir hf-rgw.XXXXXX)"
r=0
"$here/start.sh" "$rgw_dir" > "$rgw_dir.env" || r=$?
if [ "$r" -ne 0 ]; then
  rm -f "$rgw_dir.env"
  rm -rf "$rgw_dir"
  rgw_dir=
  exit "$r"
fi
# shellcheck source=/dev/null
. "$rgw_dir.env"
rm -f "$rgw_dir.env"
echo "rgw/check: cluster up in $(( $(date +%s) - start )) s"

if [ $# -gt 0 ]; then
  tests="$*"
else
  # Only the test names, whatever else make prints (a regenerated
  # Makefile's warnings).
  tests="$(make -s -C "$build/tests" print-rgw-tests |
           grep -oE '(^| )test-[a-z0-9-]+\.sh' | tr -d ' ' | tr '\n' ' ')"
fi
status=0
HF_TEST_S3_ONLY=1 make -s -C "$build/tests" check TESTS="$tests" \
  > "$build/check-rgw.out" 2>&1 || status=1
grep -E '^(PASS|FAIL|SKIP|XFAIL|XPASS|ERROR|#)' "$build/check-rgw.out" || :
if [ "$status" -ne 0 ]; then
  for t in $tests; do
    if grep -qE '^:test-result: (FAIL|ERROR|XPASS)' \
         "$build/tests/$t.trs" 2>/dev/null; then
      echo "===== $t.log (against RGW) ====="
      tail -n 100 "$build/tests/$t.log" || :
    fi
  done
fi
echo "rgw/check: $(( $(date +%s) - start )) s in all"
exit "$status"
