#!/usr/bin/env bash
# Start a single-node Ceph cluster and a RADOS Gateway (S3) for tests:
#
#   tests/rgw/start.sh [DIR]       (DIR: default a new $TMPDIR/hf-rgw.XXXXXX)
#   tests/rgw/stop.sh DIR
#
# One monitor, one bluestore OSD on a sparse file, pools of size 1, no
# manager (S3 does not need one), no authentication between the daemons,
# everything listening on 127.0.0.1 only, every file under DIR (config,
# logs, admin sockets, pid files, data).  An S3 user with the fixed test
# keys below and a bucket (hf-test) are made.  Up in about 20 seconds.
#
# On success it prints shell assignments to stdout (and writes them to
# DIR/env):
#   HF_EXT_S3_NAME=rgw  HF_EXT_S3_ENDPOINT=http://127.0.0.1:PORT
#   HF_EXT_S3_VHOST_ENDPOINT=http://s3.localhost:PORT (rgw_dns_name is
#       s3.localhost, so BUCKET.s3.localhost:PORT is virtual-host style)
#   HF_EXT_S3_REGION  HF_EXT_S3_ACCESS_KEY  HF_EXT_S3_SECRET_KEY
#   HF_EXT_S3_BUCKET  HF_RGW_DIR
# so `eval "$(tests/rgw/start.sh)"` points the tests at it (see
# tests/functions.sh, "external S3 server").  On failure everything it
# started is stopped and DIR removed (if it made DIR), and the daemons'
# logs go to stderr.
#
# Environment: HF_RGW_PORT (the S3 port; default: the one the kernel
# gives the gateway when it binds),
# HF_RGW_OSD_SIZE (the OSD's sparse file, default 64G).
#
# Facts this relies on (issue 16): a memstore OSD loses everything when
# stopped and grows without bound, so bluestore on a sparse file; the
# beast frontend needs tcp_nodelay=1, or each request after the first on
# a kept-alive connection waits ~43 ms (Nagle + delayed ACK).
set -euo pipefail

here="$(cd "$(dirname "$0")" && pwd)"
PATH=/usr/sbin:/usr/bin:/sbin:/bin:$PATH

HF_RGW_ACCESS_KEY=HFRGWTESTACCESSKEY01
HF_RGW_SECRET_KEY='hf-rgw-test-secret/Kq7+EXAMPLE0KEY0ONLY'
HF_RGW_BUCKET=hf-test

for c in ceph-mon ceph-osd radosgw radosgw-admin ceph monmaptool curl \
         python3; do
  if ! command -v "$c" >/dev/null 2>&1; then
    echo "rgw/start: $c is missing (contrib/install-deps.sh --test)" >&2
    exit 77
  fi
done

made_dir=
if [ $# -ge 1 ]; then
  dir="$1"
  mkdir -p "$dir"
  if [ -n "$(ls -A "$dir")" ]; then
    echo "rgw/start: $dir is not empty" >&2
    exit 1
  fi
else
  dir="$(mktemp -d --tmpdir hf-rgw.XXXXXX)"
  made_dir=1
fi
dir="$(cd "$dir" && pwd)"
chmod 0700 "$dir"

failed ()
{
  local status=$? f
  trap - EXIT
  [ "$status" -eq 0 ] && return 0
  echo "rgw/start: failed; daemon logs follow" >&2
  for f in "$dir"/log/*.log; do
    [ -f "$f" ] || continue
    echo "==== $f" >&2
    tail -n 30 "$f" >&2
  done
  "$here/stop.sh" "$dir" --keep >&2 || :
  if [ -n "$made_dir" ]; then rm -rf "$dir"; fi
  exit "$status"
}
trap failed EXIT
trap 'exit 1' INT TERM

# free_port: a port nobody listens on now.  Only a moment's truth:
# bind(0) of any other process on the machine (another test's server)
# may be handed the same port before the monitor binds it (see below).
free_port ()
{
  python3 -c 'import socket
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1])'
}

# listen_port PID: the TCP port PID listens on at 127.0.0.1 (nothing
# while it listens on none).
listen_port ()
{
  ss -Hltnp src 127.0.0.1 2>/dev/null |
    awk -v p="pid=$1," 'index($0, p) { n = split($4, a, ":"); print a[n]; exit }'
}

# listening PIDFILE PORT: the daemon of PIDFILE listens on PORT.
listening ()
{
  [ -s "$1" ] && [ "$(listen_port "$(cat "$1")")" = "$2" ]
}

# wait_for SECONDS WHAT CMD...: retry CMD every 0.2 s.
wait_for ()
{
  local t=$(( $1 * 5 )) what=$2 i
  shift 2
  for (( i = 0; i < t; i++ )); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 0.2
  done
  echo "rgw/start: timed out waiting for $what" >&2
  return 1
}

# The gateway's port: HF_RGW_PORT, or 0 for the kernel to choose as the
# gateway binds (read back from its socket below).  It was a port
# picked by free_port a minute before the gateway started: a bind(0)
# of any other process in that minute (each one draws from the ~14,000
# odd ports of the ephemeral range) could be handed it, and then the
# gateway failed ("failed to bind address ... Address already in use")
# and the whole run with it.
rgw_port=${HF_RGW_PORT:-0}
fsid=$(cat /proc/sys/kernel/random/uuid)
osd_uuid=$(cat /proc/sys/kernel/random/uuid)
conf="$dir/ceph.conf"
mkdir -p "$dir/mon" "$dir/osd" "$dir/log" "$dir/run" "$dir/rgw"
: > "$dir/keyring"

# write_conf: ceph.conf for the monitor at $mon_port.
write_conf ()
{
cat > "$conf" <<EOF
[global]
fsid = $fsid
mon_host = [v2:127.0.0.1:$mon_port]
public_addr = 127.0.0.1
ms_bind_msgr1 = false
ms_bind_ipv6 = false
auth_cluster_required = none
auth_service_required = none
auth_client_required = none
# Without authentication only crc mode exists (daemons default to
# secure towards the monitor and would never connect).
ms_mon_client_mode = crc
ms_mon_cluster_mode = crc
ms_mon_service_mode = crc
ms_client_mode = crc
ms_cluster_mode = crc
ms_service_mode = crc
keyring = $dir/keyring
run_dir = $dir/run
admin_socket = $dir/run/\$name.asok
pid_file = $dir/run/\$name.pid
log_file = $dir/log/\$name.log
log_to_stderr = false
err_to_stderr = false
log_to_syslog = false
crash_dir = $dir/crash
osd_pool_default_size = 1
osd_pool_default_min_size = 1
osd_pool_default_pg_num = 8
osd_pool_default_pgp_num = 8
osd_pool_default_pg_autoscale_mode = off
osd_crush_chooseleaf_type = 0
mon_allow_pool_size_one = true
mon_warn_on_pool_no_redundancy = false
mon_data_avail_crit = 1
mon_data_avail_warn = 2

[mon]
mon_data = $dir/mon/\$id
mon_cluster_log_file = $dir/log/cluster.log

[osd]
osd_data = $dir/osd/\$id
osd_objectstore = bluestore
bluestore_block_path = $dir/osd/block
bluestore_block_create = true
bluestore_block_size = ${HF_RGW_OSD_SIZE:-64G}
bluestore_fsck_on_mkfs = false
bluestore_fsck_on_mount = false
osd_memory_target = 1073741824
osd_crush_update_on_start = true

[client.rgw.hf]
rgw_frontends = beast endpoint=127.0.0.1:$rgw_port tcp_nodelay=1
rgw_dns_name = s3.localhost
rgw_data = $dir/rgw
rgw_enable_usage_log = false
rgw_thread_pool_size = 64
EOF
}

# The monitor's port is in the monmap before the monitor runs, so it
# cannot be the kernel's choice at bind time: a free port, and if it
# was taken in the seconds before the monitor bound it (ceph-mon tries
# for 10 s, then exits 1 logging "unable to bind monitor"), another
# one, on a new monitor.
for (( try = 1; ; try++ )); do
  mon_port=$(free_port)
  write_conf
  rm -rf "$dir/mon/hf" "$dir/monmap"
  monmaptool --create --fsid "$fsid" --addv hf "[v2:127.0.0.1:$mon_port]" \
    "$dir/monmap" >/dev/null
  ceph-mon -c "$conf" -i hf --mkfs --monmap "$dir/monmap"
  if timeout 60 ceph-mon -c "$conf" -i hf &&
     wait_for 30 "the monitor on 127.0.0.1:$mon_port" \
       listening "$dir/run/mon.hf.pid" "$mon_port"; then
    break
  fi
  if [ "$try" -ge 5 ] ||
     ! grep -q 'unable to bind monitor' "$dir/log/mon.hf.log" 2>/dev/null; then
    echo "rgw/start: the monitor did not start" >&2
    exit 1
  fi
  echo "rgw/start: port $mon_port was taken before the monitor bound it:" \
       "another one" >&2
  "$here/stop.sh" "$dir" --keep >&2 || :
  mv "$dir/log/mon.hf.log" "$dir/log/mon.hf.log.$try"
done
echo "rgw/start: cluster in $dir (mon 127.0.0.1:$mon_port)" >&2
wait_for 30 "the monitor" ceph -c "$conf" --connect-timeout 5 mon stat

osd_id=$(ceph -c "$conf" osd new "$osd_uuid")
mkdir -p "$dir/osd/$osd_id"
ceph-osd -c "$conf" -i "$osd_id" --mkfs --osd-uuid "$osd_uuid" \
  >"$dir/log/osd-mkfs.out" 2>&1
timeout 60 ceph-osd -c "$conf" -i "$osd_id"
osd_up () { ceph -c "$conf" osd dump | grep -q "^osd\.$osd_id up"; }
wait_for 60 "the OSD" osd_up

# Makes the gateway's pools (it waits until they are active).  The
# keys are fixed test keys, printed by this script anyway.
timeout 120 radosgw-admin -c "$conf" -n client.rgw.hf user create \
  --uid=hf-test --display-name="hyperfile tests" \
  --access-key="$HF_RGW_ACCESS_KEY" --secret-key="$HF_RGW_SECRET_KEY" \
  >/dev/null
timeout 60 radosgw -c "$conf" -n client.rgw.hf
rgw_listens ()
{
  local p
  [ -s "$dir/run/client.rgw.hf.pid" ] || return 1
  p=$(listen_port "$(cat "$dir/run/client.rgw.hf.pid")")
  [ -n "$p" ] && { [ "$rgw_port" = 0 ] || [ "$p" = "$rgw_port" ]; } &&
    rgw_port=$p
}
where=127.0.0.1:$rgw_port
[ "$rgw_port" = 0 ] && where="127.0.0.1 (a port of its choice)"
wait_for 60 "radosgw to listen on $where" rgw_listens
wait_for 60 "radosgw on 127.0.0.1:$rgw_port" \
  curl -sf -o /dev/null "http://127.0.0.1:$rgw_port/"

# The bucket.  RGW wants x-amz-content-sha256 with curl's SigV4.
empty_sha=e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855
# The keys go in on stdin (-K -), not in argv where ps shows them.
printf 'aws-sigv4 = "aws:amz:us-east-1:s3"\nuser = "%s:%s"\n' \
  "$HF_RGW_ACCESS_KEY" "$HF_RGW_SECRET_KEY" |
  curl -sS -f -K - -X PUT -H "x-amz-content-sha256: $empty_sha" \
    "http://127.0.0.1:$rgw_port/$HF_RGW_BUCKET" -o /dev/null

{
  printf 'HF_EXT_S3_NAME=rgw\n'
  printf 'HF_EXT_S3_ENDPOINT=http://127.0.0.1:%s\n' "$rgw_port"
  printf 'HF_EXT_S3_VHOST_ENDPOINT=http://s3.localhost:%s\n' "$rgw_port"
  printf 'HF_EXT_S3_REGION=us-east-1\n'
  printf 'HF_EXT_S3_ACCESS_KEY=%s\n' "$HF_RGW_ACCESS_KEY"
  printf "HF_EXT_S3_SECRET_KEY='%s'\n" "$HF_RGW_SECRET_KEY"
  printf 'HF_EXT_S3_BUCKET=%s\n' "$HF_RGW_BUCKET"
  printf 'HF_RGW_DIR=%s\n' "$dir"
  printf 'export HF_EXT_S3_NAME HF_EXT_S3_ENDPOINT HF_EXT_S3_VHOST_ENDPOINT'
  printf ' HF_EXT_S3_REGION HF_EXT_S3_ACCESS_KEY HF_EXT_S3_SECRET_KEY'
  printf ' HF_EXT_S3_BUCKET HF_RGW_DIR\n'
} > "$dir/env"
chmod 0600 "$dir/env"
cat "$dir/env"
echo "rgw/start: S3 at http://127.0.0.1:$rgw_port, bucket $HF_RGW_BUCKET" >&2
