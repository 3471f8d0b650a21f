# Shell helpers for the plugin's integration tests (tests/test-nbd-*.sh).
# Source it after `set -e`.  It provides:
#   requires CMD ARGS...    exit 77 (skip) unless the command succeeds
#   cleanup_fn CMD...       run CMD at exit, even on failure (LIFO)
#   hf_tmpdir               make $tmp (in $TMPDIR), removed at exit
#   hf_usock                a new socket path in $tmp for nbdkit -U
#   hf_start DIR/URL ARGS   start the plugin on $sock in the background
#   hf_stop [SIGNAL]        stop it (default SIGTERM) and wait
#   hf_s3rver_start         S3 for the test's S3 half (see below)
#   hf_dir_half             whether to run the directory-store half
# and sources tests/functions.sh (the S3 server helpers) when present.

: "${abs_srcdir:=$(cd "$(dirname "$0")" && pwd)}"
: "${PLUGIN:?PLUGIN must point at nbdkit-hyperfile-plugin.so}"

# Debian's python3 (with the nbd module) before any other in PATH; before
# it tests/bin, whose nbdkit refuses `-U -` (use hf_usock, below).
PATH=$abs_srcdir/bin:/usr/sbin:/usr/bin:/sbin:/bin:$PATH

if [ -s "$abs_srcdir/functions.sh" ]; then
  # shellcheck source=/dev/null
  . "$abs_srcdir/functions.sh"
fi

if ! type requires >/dev/null 2>&1; then
  requires ()
  {
    if ! "$@" >/dev/null 2>&1; then
      echo "$0: SKIP: requires $*"
      exit 77
    fi
  }
fi

if ! type kill_ours >/dev/null 2>&1; then
  # As in tests/functions.sh: signal pid only while it is still ours.
  is_ours ()
  {
    [ -n "$1" ] && [ -n "$2" ] &&
      tr '\0' ' ' 2>/dev/null < "/proc/$1/cmdline" | grep -qF -- "$2"
  }
  kill_ours ()
  {
    if is_ours "$2" "$3"; then kill -"$1" "$2" 2>/dev/null || :; fi
  }
fi

_hf_nbd_cleanups=()
cleanup_fn ()
{
  _hf_nbd_cleanups=("$*" "${_hf_nbd_cleanups[@]}")
}
# EXIT traps that tests/functions.sh set (when sourced, or when it
# starts the S3 server) are adopted and run after ours, so neither set
# of cleanups replaces the other.
_hf_foreign_exit=()
_hf_adopt_exit_trap ()
{
  local t
  t="$(trap -p EXIT)"
  if [ -n "$t" ] && [[ "$t" != *_hf_nbd_run_cleanups* ]]; then
    eval "set -- $t"            # trap -- 'COMMAND' EXIT
    _hf_foreign_exit=("$3" "${_hf_foreign_exit[@]}")
  fi
  trap _hf_nbd_run_cleanups EXIT
}
_hf_nbd_run_cleanups ()
{
  local status=$? c
  for c in "${_hf_nbd_cleanups[@]}"; do
    eval "$c" || :
  done
  _hf_nbd_cleanups=()
  for c in "${_hf_foreign_exit[@]}"; do
    eval "$c" || :
  done
  _hf_foreign_exit=()
  exit $status
}
_hf_adopt_exit_trap
trap 'exit 130' INT
trap 'exit 143' TERM

hf_tmpdir ()
{
  tmp="$(mktemp -d --tmpdir hf-test.XXXXXX)"
  cleanup_fn "rm -rf '$tmp'"
  sock="$tmp/nbd.sock"
  log="$tmp/nbdkit.log"
}

# hf_usock: a new socket path in $tmp, for `nbdkit -U "$(hf_usock)"
# ... --run CMD`.  Never `-U -` (tests/bin/nbdkit refuses it: nbdkit
# leaves /tmp/nbdkitXXXXXX behind when it fails or is killed), and a
# new name each time: nbdkit neither removes its socket nor binds over
# one that is left.
hf_usock ()
{
  mktemp -u "${tmp:?hf_usock needs hf_tmpdir}/nbdkit-XXXXXX"
}

# hf_start URL [PARAMS...]: serve on $sock; output goes to $log.
hf_start ()
{
  rm -f "$sock" "$tmp/nbdkit.pid"
  nbdkit -f -v -U "$sock" -P "$tmp/nbdkit.pid" "$PLUGIN" "$@" \
    >>"$log" 2>&1 &
  hf_pid=$!
  cleanup_fn "kill_ours 9 $hf_pid '$sock'"
  local i
  for i in $(seq 1 300); do
    if [ -S "$sock" ] && [ -s "$tmp/nbdkit.pid" ]; then
      uri="nbd+unix:///?socket=$sock"
      return 0
    fi
    if ! kill -0 "$hf_pid" 2>/dev/null; then
      echo "$0: nbdkit exited at startup:"
      tail -20 "$log"
      return 1
    fi
    sleep 0.1
  done
  echo "$0: nbdkit did not start"
  tail -20 "$log"
  return 1
}

# hf_stop [SIGNAL]: stop the server and wait for it to exit.
hf_stop ()
{
  local sig="${1:-TERM}" i
  kill_ours "$sig" "$hf_pid" "$sock"
  for i in $(seq 1 600); do
    is_ours "$hf_pid" "$sock" || break
    sleep 0.1
  done
  wait "$hf_pid" 2>/dev/null || :
}

# hf_s3rver_start: start the S3 test server (tests/functions.sh) and
# return 0, or return 1 when it is unavailable, so that a test runs its
# S3 half only where it can.  start_s3rver may exit 77 (skip) when the
# server is not installed; probing it in a subshell first keeps that
# from turning a passed directory-store half into a skip.
#
# With HF_EXT_S3_ENDPOINT set it uses that server (start_ext_s3: a fresh
# bucket) instead, and with HF_TEST_S3_ONLY=1 as well the tests skip
# their directory-store halves (hf_dir_half returns 1): the RGW run of
# contrib/check-all.sh (tests/rgw/check.sh).
hf_s3rver_start ()
{
  if [ -n "${HF_EXT_S3_ENDPOINT-}" ]; then
    start_ext_s3
    _hf_adopt_exit_trap
    return 0
  fi
  type start_s3rver >/dev/null 2>&1 || {
    echo "$0: no S3 test server helpers: skipping the S3 part"
    return 1
  }
  if ! (start_s3rver && kill_s3rver; r=$?; rm -rf "$S3RVER_DIR"; exit $r) \
      >/dev/null 2>&1; then
    echo "$0: the S3 test server does not start: skipping the S3 part"
    return 1
  fi
  start_s3rver
  _hf_adopt_exit_trap
}

# hf_dir_half: 0 when the test should run its directory-store half.
hf_dir_half ()
{
  [ "${HF_TEST_S3_ONLY-}" != 1 ]
}

