#!/usr/bin/env bash
# Stop what tests/rgw/start.sh DIR started and remove DIR:
#
#   tests/rgw/stop.sh DIR [--keep]     (--keep: leave DIR, e.g. its logs)
#
# The gateway, then the OSD, then the monitor, each by its pid file in
# DIR/run: SIGTERM, then SIGKILL after 20 s.  A pid file whose process is
# gone, or is no longer that daemon, is skipped.  Safe to run twice.
set -uo pipefail

if [ $# -lt 1 ] || [ -z "$1" ]; then
  echo "usage: tests/rgw/stop.sh DIR [--keep]" >&2
  exit 1
fi
dir="$1"
keep="${2-}"

# stop_daemon PIDFILE COMM
stop_daemon ()
{
  local pidfile=$1 comm=$2 pid i
  [ -s "$pidfile" ] || return 0
  pid=$(cat "$pidfile")
  [[ "$pid" =~ ^[0-9]+$ ]] || return 0
  # Only the daemon the file names, never a process that reused its pid.
  [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = "$comm" ] || return 0
  kill -TERM "$pid" 2>/dev/null || return 0
  for (( i = 0; i < 200; i++ )); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
  echo "rgw/stop: $comm (pid $pid) ignored SIGTERM for 20 s: SIGKILL" >&2
  kill -KILL "$pid" 2>/dev/null || :
  for (( i = 0; i < 100; i++ )); do
    kill -0 "$pid" 2>/dev/null || return 0
    sleep 0.1
  done
}

if [ -d "$dir/run" ]; then
  for f in "$dir"/run/client.rgw.*.pid; do
    [ -e "$f" ] && stop_daemon "$f" radosgw
  done
  for f in "$dir"/run/osd.*.pid; do
    [ -e "$f" ] && stop_daemon "$f" ceph-osd
  done
  for f in "$dir"/run/mon.*.pid; do
    [ -e "$f" ] && stop_daemon "$f" ceph-mon
  done
fi
if [ "$keep" != --keep ] && [ -f "$dir/ceph.conf" ]; then
  rm -rf "$dir"
fi
exit 0
