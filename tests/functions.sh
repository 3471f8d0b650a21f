# hyperfile tests: shell helpers sourced by every integration test
# (tests/test-*.sh), after nbdkit's tests/functions.sh in spirit.
#
#   requires CMD [ARGS...]   skip the test (exit 77) unless CMD ARGS runs
#   cleanup_add 'CMD'        run CMD when the test exits, however it exits
#                            (EXIT, INT, TERM), last added first
#   start_s3rver [--tls]     start the S3 test server (tests/s3rver) on a
#                            free port of 127.0.0.1 (held for it until the
#                            test ends) with a fresh data dir;
#                            --tls: https, with a certificate from a CA
#                            made here by openssl ($S3_CA_FILE)
#   kill_s3rver              SIGKILL it (data dir kept)
#   kill_ours SIG PID MARK   kill PID only if it is still our process
#                            (MARK, a unique path, on its command line)
#   restart_s3rver           start it again on the same port and data dir
#   hf_tool_test             for the admin command's tests: defines
#                            fail MSG (says "$0: FAIL: MSG", exits 1) and
#                            run WANT ARGS... (hyperfile ${TOOL_ARGS[@]}
#                            ARGS, its output in $tmp/out and shown; the
#                            test fails unless it exits WANT)
#
# With HF_TEST_S3_EXPRESS=1 the server emulates S3 Express One Zone
# (server.js, shims 10-11): the bucket gets a directory bucket's name
# (S3_BUCKET--use1-az4--x-s3), S3_ENDPOINT is http://s3.localhost:PORT
# (virtual-host only), sessions last HF_TEST_S3_EXPRESS_TTL seconds
# (default 4) and listings come unordered, HF_TEST_S3_EXPRESS_PAGE keys a
# page (default 100).
#
# start_s3rver exports S3_ENDPOINT, S3_BUCKET, AWS_ACCESS_KEY_ID,
# AWS_SECRET_ACCESS_KEY, AWS_REGION, S3RVER_PID, S3RVER_DIR, S3RVER_PORT
# and S3RVER_PIDFILE, S3RVER_REQLOG (one line per request the server got:
# method, Host, URL, key id, credential scope, signed headers, whether a
# session token came; see tests/s3rver/server.js), S3_CA_FILE with
# --tls, and these fake credentials the server also accepts:
#   S3_TEST_ACCESS_KEY / S3_TEST_SECRET_KEY     an ordinary key pair whose
#       secret is unlike anything else (tests grep logs for it);
#   S3_TEMP_ACCESS_KEY / S3_TEMP_SECRET_KEY / S3_TEMP_SESSION_TOKEN
#       temporary credentials: the server refuses requests made with
#       this key unless they carry this token, signed.
# The server's pid is also kept in S3RVER_PIDFILE so that a restart done
# by a child process (s3-errtest restart runs restart_s3rver itself) is
# still killed by this shell's cleanup.  Calling start_s3rver again
# starts another server; each one is cleaned up at exit.
#
# An external S3 server (a real one: tests/rgw/start.sh brings up Ceph's
# RADOS Gateway) is used instead of s3rver when HF_EXT_S3_ENDPOINT is set,
# with HF_EXT_S3_ACCESS_KEY, HF_EXT_S3_SECRET_KEY and HF_EXT_S3_REGION
# (what tests/rgw/start.sh prints):
#   start_ext_s3             make a fresh bucket for this test there
#                            (removed with its objects at exit, unless
#                            HF_EXT_S3_KEEP=1) and export S3_ENDPOINT,
#                            S3_BUCKET, AWS_* for it, as start_s3rver does
#                            (but no S3RVER_*: no kill, restart, shims or
#                            request log)
# hf_s3rver_start (tests/nbd-functions.sh) calls it instead of
# start_s3rver, so the S3 halves of the plugin tests run against that
# server; tests that need s3rver's shims call start_s3rver directly.
#
# Expects abs_top_srcdir, abs_srcdir and abs_builddir from the make
# environment (tests/Makefile.am); falls back to this file's directory.

: "${abs_srcdir:=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)}"
: "${abs_top_srcdir:=$(cd "$abs_srcdir/.." && pwd)}"
: "${abs_builddir:=$abs_srcdir}"

# Skip (77) unless the command runs.  `requires node --version`.
requires ()
{
  if ! "$@" >/dev/null 2>&1; then
    echo "$0: missing or broken: $*: test skipped"
    exit 77
  fi
}

# The admin command's tests (tests/test-tool-*.sh), after hf_tmpdir:
# fail and run as said at the top.  TOOL_ARGS (an array, may be unset)
# goes before each command's arguments, e.g. the S3 endpoint.
hf_tool_test ()
{
  fail ()
  {
    echo "$0: FAIL: $*" >&2
    exit 1
  }
  run ()
  {
    local want="$1" r=0
    shift
    "$HYPERFILE" ${TOOL_ARGS[@]+"${TOOL_ARGS[@]}"} "$@" > "$tmp/out" 2>&1 ||
      r=$?
    echo "--- hyperfile $* (exit $r)"; cat "$tmp/out"
    [ "$r" = "$want" ] || fail "hyperfile $*: exit $r, want $want"
  }
}

# ---- cleanup ----

_hf_cleanups=()

_hf_run_cleanups ()
{
  local status=$? i
  trap - EXIT INT TERM
  for (( i = ${#_hf_cleanups[@]} - 1; i >= 0; i-- )); do
    eval "${_hf_cleanups[$i]}" || :
  done
  _hf_cleanups=()
  return $status
}

_hf_on_signal ()
{
  _hf_run_cleanups
  exit 1
}

# Register CMD (a string, eval'ed) to run at exit, even on failure.
cleanup_add ()
{
  _hf_cleanups+=("$1")
}

trap _hf_run_cleanups EXIT
trap _hf_on_signal INT TERM

# ---- processes ----

# Whether pid is still the process we started: alive (not a zombie) and
# with mark (a path unique to this test) on its command line.  A pid
# whose process has exited may belong to anything by now: pid_max is
# 32768, tests fork a lot, and make -j2 runs another test beside this.
is_ours ()
{
  local pid=$1 mark=$2
  [ -n "$pid" ] && [ -n "$mark" ] || return 1
  tr '\0' ' ' 2>/dev/null < "/proc/$pid/cmdline" | grep -qF -- "$mark"
}

# kill_ours SIGNAL PID MARK: signal pid only while is_ours says it is
# ours (what a cleanup must do: it often runs after the process ended).
kill_ours ()
{
  if is_ours "$2" "$3"; then
    kill -"$1" "$2" 2>/dev/null || :
  fi
}

# The start time of pid (clock ticks after boot, field 22 of
# /proc/PID/stat; the fields after the command's closing parenthesis
# start at 3): with the pid it names one process for good.  Empty when
# pid is gone.
proc_start ()
{
  local st
  st=$(cat "/proc/$1/stat" 2>/dev/null) || return 0
  set -- ${st##*) }
  echo "${20}"
}

# kill_started SIGNAL PID START: signal pid only while it is the process
# that started at START (proc_start PID, read when it was started): for
# a process with nothing unique on its command line for kill_ours.
kill_started ()
{
  if [ -n "$3" ] && [ "$(proc_start "$2")" = "$3" ]; then
    kill -"$1" "$2" 2>/dev/null || :
  fi
}

# ---- S3 test server ----

# Fake credentials the test server accepts besides S3RVER / S3RVER.
S3_TEST_ACCESS_KEY=AKIDEXAMPLEHYPERFILE
S3_TEST_SECRET_KEY='hf-test-secret/wJalrXUtnFEMI+K7MDENG-EXAMPLE'
S3_TEMP_ACCESS_KEY=AKIDEXAMPLETEMPORARY
S3_TEMP_SECRET_KEY='hf-temp-secret/bPxRfiCY+EXAMPLEKEY'
S3_TEMP_SESSION_TOKEN='hf-session-token/FwoGZXIvYXdzEJr+EXAMPLE/token=='
export S3_TEST_ACCESS_KEY S3_TEST_SECRET_KEY S3_TEMP_ACCESS_KEY \
       S3_TEMP_SECRET_KEY S3_TEMP_SESSION_TOKEN

# A CA and a server certificate for 127.0.0.1, localhost and
# *.s3.localhost (virtual-host names), signed by it, in directory $1.
_hf_s3rver_make_tls ()
{
  local d=$1
  requires openssl version
  mkdir "$d"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 \
    -nodes -keyout "$d/ca.key" -out "$d/ca.pem" -days 2 \
    -subj "/CN=hyperfile test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes \
    -keyout "$d/server.key" -out "$d/server.csr" \
    -subj "/CN=127.0.0.1" 2>/dev/null
  printf '%s\n' \
    'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:s3.localhost,DNS:*.s3.localhost' \
    'basicConstraints=CA:FALSE' 'extendedKeyUsage=serverAuth' \
    > "$d/server.ext"
  openssl x509 -req -in "$d/server.csr" -CA "$d/ca.pem" -CAkey "$d/ca.key" \
    -CAcreateserial -out "$d/server.pem" -days 2 \
    -extfile "$d/server.ext" 2>/dev/null
}

# _hf_wait_port FILE PID: wait up to 30 s for the "PORT n" line that
# process PID writes to FILE once it listens (or holds a port); prints
# n.  Fails when PID ends without writing it, or after the 30 s.
_hf_wait_port ()
{
  local file=$1 pid=$2 i port alive
  for (( i = 0; i < 300; i++ )); do
    # Alive before the read: a line written just before the end counts.
    alive=0
    kill -0 "$pid" 2>/dev/null && alive=1
    port=$(awk '/^PORT /{print $2; exit}' "$file" 2>/dev/null)
    if [ -n "$port" ]; then
      echo "$port"
      return 0
    fi
    [ "$alive" = 1 ] || return 1
    sleep 0.1
  done
  return 1
}

# Start server.js with the saved settings; wait for its "PORT n" line.
_hf_s3rver_launch ()
{
  local port=$1 out="$S3RVER_DIR/server.out"
  local -a tls=()

  if [ -f "$S3RVER_DIR/tls/server.pem" ]; then
    tls=("$S3RVER_DIR/tls/server.key" "$S3RVER_DIR/tls/server.pem")
  fi
  : > "$out"
  HF_S3RVER_REQLOG="$S3RVER_REQLOG" \
  HF_S3RVER_KEY="$S3_TEST_ACCESS_KEY" HF_S3RVER_SECRET="$S3_TEST_SECRET_KEY" \
  HF_S3RVER_TEMP_KEY="$S3_TEMP_ACCESS_KEY" \
  HF_S3RVER_TEMP_SECRET="$S3_TEMP_SECRET_KEY" \
  HF_S3RVER_TEMP_TOKEN="$S3_TEMP_SESSION_TOKEN" \
  HF_S3RVER_CREDS_DIR="${HF_S3RVER_CREDS_DIR-}" \
  HF_S3RVER_EXPRESS="${HF_TEST_S3_EXPRESS-}" \
  HF_S3RVER_EXPRESS_TTL="${HF_TEST_S3_EXPRESS_TTL:-4}" \
  HF_S3RVER_EXPRESS_PAGE="${HF_TEST_S3_EXPRESS_PAGE:-100}" \
  node --openssl-legacy-provider "$abs_top_srcdir/tests/s3rver/server.js" \
       "$S3RVER_DIR/data" "$port" "$S3_BUCKET" "${tls[@]}" \
       >"$out" 2>"$S3RVER_DIR/server.err" </dev/null &
  S3RVER_PID=$!
  echo "$S3RVER_PID" > "$S3RVER_PIDFILE"
  if port=$(_hf_wait_port "$out" "$S3RVER_PID"); then
    S3RVER_PORT=$port
    return 0
  fi
  echo "$0: s3rver did not start:" >&2
  cat "$S3RVER_DIR/server.err" >&2
  return 1
}

# Reserve a port for the server for as long as this shell runs: a
# process of its own keeps it bound, not listening (SO_REUSEADDR), so
# the server (node sets SO_REUSEADDR too) can listen on it, connections
# are refused while the server is down, and no other process can have
# it meanwhile: bind(0) and connect() pass over a bound port.  Without
# it, restart_s3rver needed the port that kill_s3rver had let go, and
# failed when any bind(0) on the machine had been handed it in between.
# Sets S3RVER_PORT.
_hf_s3rver_hold_port ()
{
  local out="$S3RVER_DIR/port-holder.out" pid
  : > "$out"
  python3 -c '
import os, signal, socket, sys, time
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("127.0.0.1", 0))
print("PORT %d" % s.getsockname()[1], flush=True)
parent = os.getppid()
while os.getppid() == parent:   # ends with the shell that started it
    time.sleep(1)
' "$S3RVER_DIR" > "$out" 2> "$S3RVER_DIR/port-holder.err" < /dev/null &
  pid=$!
  cleanup_add "kill_ours TERM $pid '$S3RVER_DIR'"
  if S3RVER_PORT=$(_hf_wait_port "$out" "$pid"); then
    return 0
  fi
  echo "$0: no port for s3rver:" >&2
  cat "$S3RVER_DIR/port-holder.err" >&2
  return 1
}

start_s3rver ()
{
  local scheme=http
  requires node --version
  if [ ! -d "$abs_top_srcdir/node_modules/@20minutes/s3rver" ]; then
    echo "$0: @20minutes/s3rver is not installed" \
         "(run 'npm ci' in $abs_top_srcdir): test skipped"
    exit 77
  fi

  S3RVER_DIR=$(mktemp -d --tmpdir hf-s3rver.XXXXXX)
  S3RVER_PIDFILE="$S3RVER_DIR/pid"
  S3RVER_REQLOG="$S3RVER_DIR/requests.log"
  S3_BUCKET=${S3_BUCKET:-hf-test}
  if [ "${HF_TEST_S3_EXPRESS-}" = 1 ]; then
    # The S3 Express emulation (tests/s3rver/server.js, shims 10-11): a
    # directory bucket's name; the store then signs with sessions.
    case $S3_BUCKET in *--x-s3) ;; *) S3_BUCKET=$S3_BUCKET--use1-az4--x-s3 ;; esac
  fi
  # This server's own paths, fixed now: a later start_s3rver changes the
  # variables.  (The pid file's content changes on restart.)
  cleanup_add "kill_ours 9 \"\$(cat '$S3RVER_PIDFILE' 2>/dev/null)\" \
                 '$S3RVER_DIR';
               rm -rf '$S3RVER_DIR'"
  mkdir "$S3RVER_DIR/data"
  : > "$S3RVER_REQLOG"
  unset S3_CA_FILE
  if [ "${1-}" = --tls ]; then
    _hf_s3rver_make_tls "$S3RVER_DIR/tls"
    S3_CA_FILE="$S3RVER_DIR/tls/ca.pem"
    export S3_CA_FILE
    scheme=https
  fi
  _hf_s3rver_hold_port || exit 1
  _hf_s3rver_launch "$S3RVER_PORT" || exit 1

  S3_ENDPOINT=$scheme://127.0.0.1:$S3RVER_PORT
  if [ "${HF_TEST_S3_EXPRESS-}" = 1 ]; then
    # Virtual-host only: BUCKET.s3.localhost (curl resolves *.localhost).
    S3_ENDPOINT=$scheme://s3.localhost:$S3RVER_PORT
  fi
  AWS_ACCESS_KEY_ID=S3RVER
  AWS_SECRET_ACCESS_KEY=S3RVER
  AWS_REGION=us-east-1
  unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL
  export S3_ENDPOINT S3_BUCKET AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY \
         AWS_REGION S3RVER_PID S3RVER_DIR S3RVER_PORT S3RVER_PIDFILE \
         S3RVER_REQLOG
  echo "s3rver: $S3_ENDPOINT bucket $S3_BUCKET (pid $S3RVER_PID)"
}

kill_s3rver ()
{
  local pid
  pid=$(cat "$S3RVER_PIDFILE" 2>/dev/null) || return 0
  kill_ours 9 "$pid" "$S3RVER_DIR"
  # Reap it when it is our child; wait until the port is free otherwise.
  wait "$pid" 2>/dev/null || :
  while is_ours "$pid" "$S3RVER_DIR"; do sleep 0.05; done
}

restart_s3rver ()
{
  local i
  kill_s3rver
  # The port is held for it (_hf_s3rver_hold_port); a start that fails
  # all the same is tried again for a few seconds.
  for (( i = 0; i < 50; i++ )); do
    if _hf_s3rver_launch "$S3RVER_PORT" 2>/dev/null; then
      export S3RVER_PID
      echo "s3rver: restarted on port $S3RVER_PORT (pid $S3RVER_PID)"
      return 0
    fi
    sleep 0.1
  done
  echo "$0: s3rver did not restart on port $S3RVER_PORT" >&2
  cat "$S3RVER_DIR/server.err" >&2
  return 1
}

# ---- fake AWS credential endpoints ----

# start_creds_server DIR LIFETIME [CLAIMED]: start tests/aws-creds-server.py
# (IMDSv2, container credentials, STS AssumeRoleWithWebIdentity, a bucket
# in another region) handing out credentials valid for LIFETIME seconds
# whose Expiration says CLAIMED seconds.  It keeps them in DIR/creds for
# s3rver: set HF_S3RVER_CREDS_DIR=DIR before start_s3rver.  Exports
# CREDS_URL (http://127.0.0.1:PORT) and CREDS_LOG (its stdout: ISSUE and
# REFUSE lines); killed by the cleanup.
start_creds_server ()
{
  local dir=$1 port
  CREDS_LOG="$dir/creds-server.out"
  : > "$CREDS_LOG"
  /usr/bin/python3 "$abs_top_srcdir/tests/aws-creds-server.py" "$@" \
    > "$CREDS_LOG" 2> "$dir/creds-server.err" < /dev/null &
  CREDS_PID=$!
  cleanup_add "kill_ours 9 $CREDS_PID aws-creds-server.py"
  if port=$(_hf_wait_port "$CREDS_LOG" "$CREDS_PID"); then
    CREDS_URL=http://127.0.0.1:$port
    export CREDS_URL CREDS_LOG
    echo "credential endpoints: $CREDS_URL (pid $CREDS_PID)"
    return 0
  fi
  echo "$0: aws-creds-server.py did not start:" >&2
  cat "$dir/creds-server.err" >&2
  exit 1
}

# ---- external S3 server ----

start_ext_s3 ()
{
  local name
  : "${HF_EXT_S3_ENDPOINT:?start_ext_s3 needs HF_EXT_S3_ENDPOINT}"
  requires python3 -c 'import botocore'
  S3_ENDPOINT=$HF_EXT_S3_ENDPOINT
  AWS_ACCESS_KEY_ID=$HF_EXT_S3_ACCESS_KEY
  AWS_SECRET_ACCESS_KEY=$HF_EXT_S3_SECRET_KEY
  AWS_REGION=${HF_EXT_S3_REGION:-us-east-1}
  unset AWS_SESSION_TOKEN AWS_PROFILE AWS_ENDPOINT_URL S3_CA_FILE
  export S3_ENDPOINT AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_REGION
  # hf-TESTNAME-RANDOM: lower case, at most 63 characters.
  name=$(basename "$0" .sh | tr 'A-Z_' 'a-z-' | tr -cd 'a-z0-9-')
  S3_BUCKET="hf-${name:0:40}-$(od -An -N6 -tx1 /dev/urandom | tr -d ' \n')"
  export S3_BUCKET
  /usr/bin/python3 "$abs_top_srcdir/tests/s3-bucket.py" create "$S3_BUCKET" || {
    echo "$0: cannot make bucket $S3_BUCKET at $S3_ENDPOINT" >&2
    exit 1
  }
  if [ "${HF_EXT_S3_KEEP-}" != 1 ]; then
    cleanup_add "/usr/bin/python3 '$abs_top_srcdir/tests/s3-bucket.py' \
                 delete '$S3_BUCKET' >&2"
  fi
  echo "external S3 (${HF_EXT_S3_NAME:-?}): $S3_ENDPOINT bucket $S3_BUCKET"
}

# s3_errtest_basics ERRTEST LOG: the cases of unit/s3-errtest that every
# S3 server passes (s3rver and the external ones alike).  A wrong secret
# is a 403 naming bucket and endpoint, with neither the secret nor the
# signature in the log; a missing bucket is one clear line; ranged
# GETs, multipart uploads, conditional PUTs and listing work.
s3_errtest_basics ()
{
  local errtest=$1 log=$2
  "$errtest" badsecret 2>"$log"
  cat "$log"
  grep -q "bucket $S3_BUCKET at $S3_ENDPOINT" "$log"
  grep -q "403" "$log"
  if grep -q "WRONG-SECRET" "$log"; then
    echo "$0: FAIL: the secret key appeared in the log" >&2
    exit 1
  fi
  if grep -qi "authorization\|Signature=" "$log"; then
    echo "$0: FAIL: the Authorization header appeared in the log" >&2
    exit 1
  fi
  "$errtest" nobucket 2>"$log"
  cat "$log"
  grep -q "bucket hf-no-such-bucket does not exist at $S3_ENDPOINT" "$log"
  "$errtest" ranges
  "$errtest" multipart
  "$errtest" cond
  "$errtest" condbig
  "$errtest" list
}

# ---- the hostile S3 endpoint ----

# hostile_start DIR: start tests/s3-hostile-server.py (its bucket names
# pick the misbehaviour), stopped at exit; its request log goes to
# DIR/server.out.  Sets HOSTILE_ENDPOINT and HOSTILE_PID.
hostile_start ()
{
  local d=$1 port
  : > "$d/server.out"
  python3 "$abs_top_srcdir/tests/s3-hostile-server.py" > "$d/server.out" \
    2> "$d/server.err" &
  HOSTILE_PID=$!
  cleanup_add "kill_started TERM $HOSTILE_PID '$(proc_start $HOSTILE_PID)'"
  if ! port=$(_hf_wait_port "$d/server.out" "$HOSTILE_PID"); then
    cat "$d/server.err"
    echo "$0: FAIL: the hostile S3 server did not start" >&2
    exit 1
  fi
  HOSTILE_ENDPOINT=http://127.0.0.1:$port
}
