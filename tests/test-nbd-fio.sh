#!/usr/bin/env bash
# fio over NBD with several jobs (each its own connection: multi-conn)
# writing and verifying with crc32c, then a restart and a verify-only
# pass.  Directory store, then the S3 test server when installed.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires fio --version
requires sh -c 'fio --enghelp | grep -qw nbd'
hf_tmpdir

# Each job owns its own 4 MiB region (offset_increment), so the
# verification of one never sees another's writes.
fio_job ()
{
  cat <<JOB
[global]
ioengine=nbd
uri=$uri
rw=randwrite
bsrange=512-64k
blockalign=512
size=4m
offset_increment=4m
numjobs=4
iodepth=8
verify=crc32c
verify_fatal=1
# no *-verify.state files left in the build directory (make distcheck)
verify_state_save=0
do_verify=1
randrepeat=1
group_reporting=1
[hf]
JOB
}

run_store ()
{
  local url="$1"; shift
  hf_start "$url" size=16M segment-size=256K "$@"
  fio_job > "$tmp/job.fio"
  fio --output="$tmp/fio.out" "$tmp/job.fio" || {
    cat "$tmp/fio.out"; exit 1; }
  grep -q 'err= 0' "$tmp/fio.out"
  hf_stop TERM

  # Read back everything the jobs wrote, verifying every block's crc.
  hf_start "$url" "$@"
  fio_job > "$tmp/job.fio"
  fio --output="$tmp/fio.out" --verify_only "$tmp/job.fio" || {
    cat "$tmp/fio.out"; exit 1; }
  grep -q 'err= 0' "$tmp/fio.out"
  hf_stop TERM
}

run_store "$tmp/vol"
if hf_s3rver_start; then
  run_store "s3://$S3_BUCKET/fio" endpoint="$S3_ENDPOINT"
fi
echo "$0: ok"
