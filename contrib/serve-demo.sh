#!/usr/bin/env bash
# Install what is missing, build hyperfile, and serve a demo volume on the
# local-directory store (no S3 needed) until interrupted with ^C.
#
# Environment:
#   HF_DEMO_DIR   where the volume's objects live (default /var/tmp/hyperfile-demo)
#   HF_DEMO_SIZE  volume size when it is created (default 4G)
#   HF_DEMO_SOCK  unix socket to serve on (default /tmp/hyperfile-demo.sock)
# The write-ahead log and the block cache go beside the volume, in
# HF_DEMO_DIR.wal and HF_DEMO_DIR.cache (wal=off or cache=off as extra
# arguments turn them off).
# Extra arguments are passed to the plugin (e.g. segment-size=8M).
set -euo pipefail

top="$(cd "$(dirname "$0")/.." && pwd)"
cd "$top"
dir="${HF_DEMO_DIR:-/var/tmp/hyperfile-demo}"
size="${HF_DEMO_SIZE:-4G}"
sock="${HF_DEMO_SOCK:-/tmp/hyperfile-demo.sock}"

contrib/install-deps.sh

if [ ! -x configure ] || [ configure.ac -nt configure ]; then
  autoreconf -fi
fi
mkdir -p _build
( cd _build
  [ -f Makefile ] || ../configure -q
  make -j"$(nproc)" -s )

plugin="$top/_build/plugin/.libs/nbdkit-hyperfile-plugin.so"
mkdir -p "$dir"

cat <<MSG

hyperfile: serving the volume in $dir ($size if new) on $sock,
with the write-ahead log in $dir.wal and the block cache in $dir.cache

Connect with any NBD client, for example:
  nbdinfo 'nbd+unix:///?socket=$sock'
  nbd-client -unix $sock /dev/nbd0              # then mkfs.ext4 /dev/nbd0
  qemu-img info 'nbd:unix:$sock'
  mkdir -p /tmp/hf-fuse && nbdfuse /tmp/hf-fuse/disk 'nbd+unix:///?socket=$sock' &
Admin command: $top/_build/tools/hyperfile info $dir
Press ^C to stop: everything written is committed to the store first.

MSG
exec nbdkit -f -U "$sock" "$plugin" "$dir" size="$size" \
  wal="$dir.wal" cache="$dir.cache" "$@"
