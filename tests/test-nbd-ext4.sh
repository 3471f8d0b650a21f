#!/usr/bin/env bash
# A file system on the volume: nbdfuse exposes it as a file, losetup
# makes that a block device, mkfs.ext4 + mount, a tree of files written
# and checksummed; unmount, stop the server, start it again, e2fsck -fn
# must be clean and every checksum must match.  On the directory store,
# then on the S3 test server when it is installed.  Needs root (loop +
# mount) and /dev/fuse.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdfuse --version
requires fusermount3 --version
requires losetup --version
requires mkfs.ext4 -V
requires e2fsck -V
requires sha256sum --version
requires test "$(id -u)" = 0
requires test -c /dev/fuse
requires test -e /dev/loop-control
hf_tmpdir

mkdir "$tmp/fuse" "$tmp/mnt"

# attach: serve, nbdfuse, losetup; sets $loop.
attach ()
{
  hf_start "$@"
  nbdfuse "$tmp/fuse/disk" "$uri" &
  fuse_pid=$!
  cleanup_fn "fusermount3 -u '$tmp/fuse' 2>/dev/null; kill_ours TERM $fuse_pid '$tmp/fuse/disk'"
  local i
  for i in $(seq 1 100); do
    [ -e "$tmp/fuse/disk" ] && break
    sleep 0.1
  done
  loop="$(losetup -f --show "$tmp/fuse/disk")"
  cleanup_fn "losetup -d '$loop' 2>/dev/null"
}

# detach: the reverse, each step waiting for the previous.
detach ()
{
  sync
  losetup -d "$loop"
  # losetup -d is asynchronous: wait until the loop device lets go.
  local i
  for i in $(seq 1 100); do
    losetup "$loop" >/dev/null 2>&1 || break
    sleep 0.1
  done
  fusermount3 -u "$tmp/fuse"
  wait "$fuse_pid" 2>/dev/null || :
  hf_stop TERM
}

# round_trip URL PARAMS...: mkfs, write and sum a tree, restart, check.
round_trip ()
{
  local url="$1"; shift
  attach "$url" size=64M segment-size=1M "$@"
  mkfs.ext4 -q -F "$loop"
  mount "$loop" "$tmp/mnt"
  cleanup_fn "umount '$tmp/mnt' 2>/dev/null"
  for d in a b/c b/d; do
    mkdir -p "$tmp/mnt/$d"
    for i in 1 2 3 4 5; do
      head -c $((i * 37000 + 11)) /dev/urandom > "$tmp/mnt/$d/f$i"
    done
  done
  dd if=/dev/urandom of="$tmp/mnt/big" bs=1M count=8 status=none
  (cd "$tmp/mnt" && find . -type f -print0 | sort -z | xargs -0 sha256sum) \
    > "$tmp/sums"
  umount "$tmp/mnt"
  detach

  attach "$url" "$@"
  e2fsck -fn "$loop"
  mount "$loop" "$tmp/mnt"
  (cd "$tmp/mnt" && sha256sum --quiet -c "$tmp/sums")
  [ "$(wc -l < "$tmp/sums")" -eq 16 ]
  umount "$tmp/mnt"
  detach
}

if hf_dir_half; then
  round_trip "$tmp/vol"
fi
if hf_s3rver_start; then
  round_trip "s3://$S3_BUCKET/ext4" endpoint="$S3_ENDPOINT"
fi
echo "$0: ok"
