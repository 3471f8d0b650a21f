#!/usr/bin/env bash
# Install what is missing, build, and run the whole test suite: the
# normal build with warnings as errors (unit + integration tests), then
# the S3-facing tests against Ceph RGW (tests/rgw/check.sh), the unit
# tests once more under ASan + UBSan, then each libFuzzer harness for a
# short time (clang), then the unit tests (with the multi-threaded volume
# stress test) under ThreadSanitizer and under valgrind (make
# check-valgrind).  This is what CI runs.  Anything the tests leave in
# TMPDIR (a fresh directory for the run) fails it.
#
# Environment: JOBS (default: number of CPUs), HF_SKIP_SANITIZERS=1,
# HF_SKIP_RGW=1, HF_SKIP_FUZZ=1, HF_FUZZ_SECONDS (per harness, default 15),
# HF_FUZZ_SEED (default 1: the same inputs every run; fuzz/run-fuzzers),
# HF_SKIP_TSAN=1, HF_SKIP_VALGRIND=1.
set -euo pipefail

top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
jobs="${JOBS:-$(nproc)}"

contrib/install-deps.sh --test

# Every test keeps its temporary files under $TMPDIR (here a directory
# of this run's own, so that what other programs on the machine make in
# /tmp meanwhile does not count) and removes them, even when it fails or
# kills a server: what is left there at the end fails the run, named.
# (nbdkit's `-U -` makes /tmp/nbdkitXXXXXX whatever TMPDIR says:
# tests/bin/nbdkit refuses it.)
suite_tmp="$(mktemp -d /tmp/hf-ci.XXXXXX)"
trap 'rm -rf "$suite_tmp"' EXIT
export TMPDIR="$suite_tmp"

if [ ! -x configure ] || [ configure.ac -nt configure ]; then
  autoreconf -fi
fi

summary_pass=0 summary_fail=0 summary_skip=0
collect () {
  local log="$1" n
  for kind in PASS FAIL SKIP XFAIL XPASS ERROR; do
    n=$(sed -n "s/^# $kind: *\([0-9]*\)$/\1/p" "$log" | tail -1)
    n=${n:-0}
    case $kind in
      PASS|XFAIL) summary_pass=$((summary_pass + n)) ;;
      FAIL|XPASS|ERROR) summary_fail=$((summary_fail + n)) ;;
      SKIP) summary_skip=$((summary_skip + n)) ;;
    esac
  done
}

show_failures () {
  local dir="$1" f
  for f in $(find "$dir/tests" -name '*.trs' 2>/dev/null); do
    if grep -qE '^:test-result: (FAIL|ERROR|XPASS)' "$f"; then
      echo "===== ${f%.trs}.log ====="
      tail -n 100 "${f%.trs}.log" || true
    fi
  done
}

status=0

# 1. Normal build, full suite.
mkdir -p _build
( cd _build
  [ -f Makefile ] || ../configure --enable-werror -q
  make -j"$jobs" -s
  make -j"$jobs" -s check > check.out 2>&1 ) || status=1
cat _build/check.out 2>/dev/null | grep -E '^(PASS|FAIL|SKIP|XFAIL|XPASS|ERROR|#)' || true
[ -f _build/check.out ] && collect _build/check.out
[ "$status" -eq 0 ] || show_failures _build

# 1b. The S3-facing tests once more against a real Ceph RADOS Gateway
# (tests/rgw/check.sh; what runs where: tests/rgw/README.md).
if [ "${HF_SKIP_RGW-}" != 1 ] && [ -f _build/Makefile ]; then
  tests/rgw/check.sh _build || status=1
  [ -f _build/check-rgw.out ] && collect _build/check-rgw.out
fi

# 2. Sanitizer build, unit tests only.
if [ "${HF_SKIP_SANITIZERS-}" != 1 ]; then
  mkdir -p _build-san
  ( cd _build-san
    [ -f Makefile ] || ../configure --enable-werror --enable-sanitizers -q
    make -j"$jobs" -s -C lib
    unit=$(make -s -C tests print-unit-tests)
    ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 \
      make -j"$jobs" -s -C tests check TESTS="$unit" > check.out 2>&1 ) \
    || { status=1; show_failures _build-san; }
  cat _build-san/check.out 2>/dev/null | grep -E '^(PASS|FAIL|SKIP|ERROR|#)' || true
  [ -f _build-san/check.out ] && collect _build-san/check.out
fi

# 3. libFuzzer harnesses: every committed input, then mutation.
if [ "${HF_SKIP_FUZZ-}" != 1 ]; then
  mkdir -p _build-fuzz
  ( cd _build-fuzz
    [ -f Makefile ] || CC=clang ../configure --enable-werror --enable-fuzz -q
    make -j"$jobs" -s fuzz > make.out 2>&1 || { cat make.out; exit 1; }
    HF_FUZZ_SEED="${HF_FUZZ_SEED:-1}" \
      ../fuzz/run-fuzzers . "${HF_FUZZ_SECONDS:-15}" ) > _build-fuzz/fuzz.out 2>&1 \
    || status=1
  cat _build-fuzz/fuzz.out
  n=$(grep -c '^fuzz-.*: ok' _build-fuzz/fuzz.out || :)
  summary_pass=$((summary_pass + n))
  n=$(grep -c '^fuzz-.*: FAILED' _build-fuzz/fuzz.out || :)
  summary_fail=$((summary_fail + n))
fi

# 4. ThreadSanitizer build, unit tests only (check-stress puts every
# volume thread to work at once).  No suppressions: a report is a bug.
if [ "${HF_SKIP_TSAN-}" != 1 ]; then
  mkdir -p _build-tsan
  ( cd _build-tsan
    [ -f Makefile ] || ../configure --enable-werror --enable-tsan -q
    make -j"$jobs" -s -C lib
    unit=$(make -s -C tests print-unit-tests)
    TSAN_OPTIONS="halt_on_error=1 second_deadlock_stack=1" \
      make -j"$jobs" -s -C tests check TESTS="$unit" > check.out 2>&1 ) \
    || { status=1; show_failures _build-tsan; }
  cat _build-tsan/check.out 2>/dev/null | grep -E '^(PASS|FAIL|SKIP|ERROR|#)' || true
  [ -f _build-tsan/check.out ] && collect _build-tsan/check.out
fi

# 5. valgrind (memcheck, leaks are errors) on the normal build's unit
# tests; suppressions only for third-party libraries, in valgrind/.
if [ "${HF_SKIP_VALGRIND-}" != 1 ]; then
  ( cd _build
    make -j"$jobs" -s -C tests check-valgrind > check-valgrind.out 2>&1 ) \
    || { status=1; show_failures _build; }
  grep -E '^(PASS|FAIL|SKIP|ERROR|#)' _build/check-valgrind.out || true
  [ -f _build/check-valgrind.out ] && collect _build/check-valgrind.out
fi

left="$(ls -A "$suite_tmp")"
if [ -n "$left" ]; then
  echo "FAIL: the tests left these behind in TMPDIR ($suite_tmp):"
  ( cd "$suite_tmp" && ls -ld -- $left )
  summary_fail=$((summary_fail + 1))
fi

echo "${summary_pass} passed, ${summary_fail} failed, ${summary_skip} skipped"
[ "$summary_fail" -eq 0 ] || status=1
exit "$status"
