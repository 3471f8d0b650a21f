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
#   hf_torn_round ...       one round of a crash loop with a torn upload
#   hf_image_check URI FILE the export reads as FILE (or --eio: fails)
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

# ---- torn uploads (test-nbd-torn-crash.sh, test-tool-crypt.sh) ----

# hf_torn_count: torn uploads so far, the distinct keys in the fault
# store's warnings in $log (a warning may be logged more than once).
hf_torn_count ()
{
  grep -o 'fault: seg/[0-9a-f]*: torn put of' "$log" | sort -u | wc -l
}

# hf_torn_round URL JOURNAL NBLOCKS N SEED PARAMS...: serve URL with
# PARAMS while tests/wal-client.py writes NBLOCKS blocks (seed SEED,
# acknowledged writes in JOURNAL), the N-th segment upload torn
# (HF_TEST_TORN_PUT, a testing hook: the fault store keeps a prefix of
# the object, then SIGKILLs the server).  The server must die of that
# torn upload; restarted, it must serve every acknowledged write; it is
# then killed again.  Sets torn_what: how the round went.
hf_torn_round ()
{
  local url=$1 j=$2 nblocks=$3 n=$4 seed=$5 torn0 cpid i
  local client="$abs_srcdir/wal-client.py"
  shift 5
  torn0=$(hf_torn_count)
  rm -f "$tmp/ready"
  export HF_TEST_TORN_PUT=$n
  if hf_start "$url" "$@" > "$tmp/start.out"; then
    WAL_CLIENT_READY="$tmp/ready" \
      python3 "$client" write "$uri" "$j" "$nblocks" "$seed" 60 \
      > "$tmp/client.out" 2>&1 &
    cpid=$!
    # The server kills itself at the torn upload; the client then ends.
    for (( i = 0; i < 1200; i++ )); do
      kill -0 "$hf_pid" 2>/dev/null || break
      sleep 0.05
    done
    if kill -0 "$hf_pid" 2>/dev/null; then
      tail -30 "$log"
      echo "$0: FAIL: upload $n of $url: no torn upload within 60 s" >&2
      exit 1
    fi
    hf_stop KILL                        # reaps it
    if wait $cpid; then
      torn_what="$(tail -1 "$tmp/client.out")"
    elif [ ! -e "$tmp/ready" ]; then
      # The open replayed records from the last round's log and went
      # on committing them once it listened: the torn upload was one of
      # those, before the client had connected (it wrote nothing).
      torn_what="torn before the client connected"
    else
      cat "$tmp/client.out"; tail -40 "$log"
      echo "$0: FAIL: upload $n of $url: the client failed" >&2
      exit 1
    fi
  else
    # Torn while the open committed what the log replayed.
    torn_what="torn during the open"
  fi
  unset HF_TEST_TORN_PUT
  if [ "$(hf_torn_count)" -ne $(( torn0 + 1 )) ]; then
    cat "$tmp/start.out"; tail -30 "$log"
    echo "$0: FAIL: upload $n of $url: the server did not die of a" \
         "torn upload" >&2
    exit 1
  fi
  hf_start "$url" "$@"
  python3 "$client" verify "$uri" "$j" "$nblocks" || {
    tail -40 "$log"
    echo "$0: FAIL: upload $n of $url: acknowledged writes lost" >&2
    exit 1; }
  hf_stop KILL
}

# hf_image_check URI FILE: every byte of the export at URI is FILE's.
# hf_image_check URI --eio: reading the whole export fails (a damaged
# volume), as it must.
hf_image_check ()
{
  python3 - "$@" <<'PY'
import sys, nbd
uri, what = sys.argv[1:3]
h = nbd.NBD()
h.connect_uri(uri)
if what == "--eio":
    try:
        h.pread(h.get_size(), 0)
    except nbd.Error as e:
        print("read failed as expected:", e)
    else:
        raise AssertionError("a damaged volume read without an error")
else:
    model = open(what, "rb").read()
    got = h.pread(len(model), 0)
    assert got == model, "differs from %s at %d" % (what, next(
        i for i in range(len(model)) if got[i] != model[i]))
print("ok", what)
PY
}
