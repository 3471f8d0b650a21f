#!/usr/bin/env bash
# A test's cleanup kills only the processes it started.  hf_start and
# start_s3rver register a kill of their server's pid for the test's
# exit; once that server has stopped, the pid may belong to an unrelated
# process by then (pid_max is 32768 and tests fork a lot; with make -j2,
# a test running beside this one), which a blind `kill -9 PID` would
# take down.  Here the pid is reused on purpose: in a new pid namespace
# (root and unshare needed) the next pid can be chosen through
# /proc/sys/kernel/ns_last_pid.  (bench/run stopped each of its servers
# and kill -9'd all their pids again at its exit, minutes later.)
set -e
case "${1-}" in
'')
  . "$abs_srcdir/functions.sh"
  requires unshare --version
  requires nbdkit --version
  if [ "$(id -u)" != 0 ]; then
    echo "$0: a pid namespace needs root: test skipped"
    exit 77
  fi
  exec unshare --pid --fork --mount-proc "$BASH" "$0" ns
  ;;

ns)
  # pid 1 of the namespace: run each case in a child shell, whose exit
  # runs the cleanups, then see whether the stand-in survived.
  dir="$(mktemp -d --tmpdir hf-stalepid.XXXXXX)"
  trap 'rm -rf "$dir"' EXIT
  fail=0
  for what in nbdkit s3rver hostile; do
    st=0
    "$BASH" "$0" case "$what" "$dir" || st=$?
    if [ "$st" = 77 ]; then
      echo "$what: skipped"
      continue
    fi
    [ "$st" = 0 ] || exit "$st"
    p="$(cat "$dir/victim-$what")"
    if [ -e "/proc/$p" ] && ! grep -q '^State:.*Z' "/proc/$p/status"; then
      echo "$what: pid $p (now an unrelated sleep) survived the cleanup"
      kill -9 "$p"
    else
      echo "$what: the cleanup killed pid $p, which was no longer its process"
      fail=1
    fi
  done
  exit $fail
  ;;

case)
  what=$2 dir=$3
  . "$abs_srcdir/nbd-functions.sh"
  hf_tmpdir
  if [ "$what" = nbdkit ]; then
    hf_start "$tmp/vol" size=1M
    p=$hf_pid
    hf_stop
  elif [ "$what" = s3rver ]; then
    unset HF_EXT_S3_ENDPOINT
    hf_s3rver_start > /dev/null || exit 77      # not installed: skip
    p="$(cat "$S3RVER_PIDFILE")"
    kill_s3rver
  else
    # A server with nothing of its own on its command line: its cleanup
    # goes by pid and start time (kill_started).
    hostile_start "$tmp"
    p=$HOSTILE_PID
    kill "$p"
    wait "$p" 2>/dev/null || :
  fi
  # The stand-in gets the server's old pid.
  echo $(( p - 1 )) > /proc/sys/kernel/ns_last_pid
  sleep 600 < /dev/null > /dev/null 2>&1 &
  if [ "$!" != "$p" ]; then
    echo "$0: pid $p was not reused (got $!)"
    kill "$!"
    exit 1
  fi
  echo "$p" > "$dir/victim-$what"
  exit 0                        # the cleanups run now
  ;;
esac
