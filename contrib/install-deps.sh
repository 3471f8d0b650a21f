#!/usr/bin/env bash
# Install what building (and, with --test, testing) hyperfile needs on
# Debian 12.  Installs only what is missing, so it is cheap to re-run.
#
#   contrib/install-deps.sh          build dependencies
#   contrib/install-deps.sh --test   build + test dependencies, npm ci
#   contrib/install-deps.sh --bench  build + test + benchmark dependencies
#                                    (bench/run: the peers s3backer and
#                                    nbdkit's S3 plugin, gnuplot, perf)
set -euo pipefail

cd "$(dirname "$0")/.."

build_pkgs=(build-essential autoconf automake libtool pkg-config perl
            nbdkit nbdkit-plugin-dev libcurl4-openssl-dev libssl-dev
            liburing-dev libxml2-dev libzstd-dev check libnbd-bin
            libjson-c-dev)
# libnbd-bin: nbdsh, nbdinfo, nbdcopy, nbdfuse; libjson-c-dev: the admin
# command's --json output
test_pkgs=(python3 python3-libnbd python3-botocore qemu-utils fuse3
           fio e2fsprogs util-linux valgrind cpio busybox-static
           qemu-system-x86 linux-image-amd64 procps psmisc openssl curl iproute2
           time   # /usr/bin/time: peak RSS in test-s3-hostile.sh
           clang libclang-rt-14-dev   # clang + libFuzzer: fuzz/ (check-all.sh)
           ceph-mon ceph-osd radosgw ceph-common)   # tests/rgw: Ceph RGW
# bench/run: peers (s3backer 1.5.4, nbdkit's S3 plugin = the Python
# plugin + boto3), plots, and the tools it drives and profiles with.
bench_pkgs=(s3backer nbdkit-plugin-python python3-boto3 gnuplot-nox fio
            curl bc time linux-perf fuse3 e2fsprogs util-linux libnbd-bin)

mode="${1-}"
case "$mode" in
  ""|--test|--bench) ;;
  *) echo "usage: contrib/install-deps.sh [--test|--bench]" >&2; exit 1 ;;
esac

want=("${build_pkgs[@]}")
if [ "$mode" = "--bench" ]; then
  want+=("${bench_pkgs[@]}")
fi
if [ "$mode" = "--test" ] || [ "$mode" = "--bench" ]; then
  want+=("${test_pkgs[@]}")
  # Node for the S3 test server; the image may already carry a newer one.
  command -v node >/dev/null 2>&1 || want+=(nodejs npm)
  command -v npm >/dev/null 2>&1 || want+=(npm)
fi

missing=()
for p in "${want[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
    missing+=("$p")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "install-deps: installing: ${missing[*]}"
  if [ "$(id -u)" -ne 0 ]; then
    echo "install-deps: need root to install packages (try sudo)" >&2
    exit 1
  fi
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

if { [ "$mode" = "--test" ] || [ "$mode" = "--bench" ]; } &&
   [ -f package-lock.json ]; then
  # Pinned S3 test server (@20minutes/s3rver); skip when already current.
  if [ ! -d node_modules ] || [ package-lock.json -nt node_modules ]; then
    echo "install-deps: npm ci"
    npm ci --no-audit --no-fund --loglevel=error
    touch node_modules
  fi
fi
