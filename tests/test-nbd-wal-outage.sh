#!/usr/bin/env bash
# The write-ahead log rides out S3 trouble and a full local disk.
#
# Outage: while a client writes and flushes, the S3 server is frozen
# (SIGSTOP) for 20 s, then SIGKILLed and restarted.  No write or flush
# may wait for S3 (each must finish within 5 s), the data drains once S3
# is back, and after a clean stop the store alone (wal=off) holds every
# acknowledged write.
#
# Full disk: the log lives on an 8 MiB tmpfs and S3 is frozen, so
# nothing can be released: the client gets ENOSPC, the server says why
# in one line, and once S3 returns the uploads release the log, writes
# work again, and nothing acknowledged is lost.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires python3 -c 'import nbd'
hf_tmpdir
if ! hf_s3rver_start; then
  echo "$0: needs the S3 test server"
  exit 77
fi
cleanup_fn "kill -CONT \$S3RVER_PID 2>/dev/null"

nblocks=1024
client="$abs_srcdir/wal-client.py"
url="s3://$S3_BUCKET/outage"
j="$tmp/journal"
params=(size=16M segment-size=256K dirty-limit=256M flush-interval=200ms wal="$tmp/wal"
        cache="$tmp/cache" endpoint="$S3_ENDPOINT")

# ---- Outage ----
hf_start "$url" "${params[@]}"
# 150 writes/s (about 5 MiB/s): the 20 s outage fits in memory.
WAL_CLIENT_READY="$tmp/ready" \
  python3 "$client" write "$uri" "$j" $nblocks 1 34 5 150 > "$tmp/client.out" 2>&1 &
cpid=$!
# The outage starts 3 s into the writes, however slowly the client starts.
for i in $(seq 1 600); do
  [ -e "$tmp/ready" ] || ! kill -0 $cpid 2>/dev/null && break
  sleep 0.05
done
sleep 3
echo "freezing the S3 server"
kill -STOP "$S3RVER_PID"
sleep 20
echo "thawing it, then killing and restarting it"
kill -CONT "$S3RVER_PID"
sleep 2
kill_s3rver
sleep 2
restart_s3rver
wait $cpid || { echo "$0: the client stalled or failed:"; cat "$tmp/client.out"; exit 1; }
cat "$tmp/client.out"
python3 "$client" verify "$uri" "$j" $nblocks
hf_stop TERM                    # commits everything still in the log
grep -E 'upload of .* failed|retrying' "$log" | head -3
hf_start "$url" "${params[@]/wal=*/wal=off}"
python3 "$client" verify "$uri" "$j" $nblocks
hf_stop TERM

# ---- Full local disk ----
if ! mkdir -p "$tmp/small" || ! mount -t tmpfs -o size=8M tmpfs "$tmp/small"
then
  echo "$0: cannot mount a tmpfs (not root?): skipping the full-disk part"
  exit 0
fi
cleanup_fn "umount -l '$tmp/small'"
# wal-size fits the empty file system (startup refuses one that does
# not); the disk then fills up under the running server.
params=(segment-size=256K dirty-limit=256M flush-interval=200ms wal="$tmp/small/wal"
        wal-size=6M endpoint="$S3_ENDPOINT")
: > "$log"
hf_start "$url" "${params[@]}"
# The volume is open (and its log named in the store) once a read works.
python3 -c 'import nbd, sys; h = nbd.NBD(); h.connect_uri(sys.argv[1]); h.pread(4096, 0)' "$uri"
# Another program takes all but 3 MiB of what is left.
free_kb=$(df -k --output=avail "$tmp/small" | tail -1)
dd if=/dev/zero of="$tmp/small/filler" bs=1K count=$((free_kb - 3072)) \
   status=none
df -k "$tmp/small"
kill -STOP "$S3RVER_PID"
set +e
# (Only writes: reading what is neither in memory nor cached needs S3.)
WAL_CLIENT_NO_READS=1 python3 "$client" write "$uri" "$j" $nblocks 2 60 \
  > "$tmp/client.out" 2>&1
rc=$?
set -e
cat "$tmp/client.out"
if [ $rc -ne 28 ]; then
  echo "$0: expected ENOSPC (exit 28), got $rc"; exit 1
fi
n=$(grep -c 'disk is full' "$log" || true)
grep 'disk is full' "$log"
if [ "$n" -ne 1 ]; then
  echo "$0: expected one log line saying the disk is full, got $n"; exit 1
fi
kill -CONT "$S3RVER_PID"
# Space returns as uploads commit and the log is released: wait until
# the log files hold less than 1 MiB in all.  (Waiting for no file
# above 1 MiB passed at once when the log was many smaller files, and
# the writes below met a full disk.)
wal_kb () { du -sk "$tmp/small/wal" | cut -f1; }
for i in $(seq 1 600); do
  [ "$(wal_kb)" -lt 1024 ] && break
  sleep 0.1
done
ls -l "$tmp/small/wal"
if [ "$(wal_kb)" -ge 1024 ]; then
  echo "$0: the log was not released once S3 returned"; tail -20 "$log"; exit 1
fi
# The other program ends too: the writes below have the disk, not 2 MiB
# of it, however slowly uploads keep up on a busy machine.
rm -f "$tmp/small/filler"
# Writes work again.
WAL_CLIENT_NO_READS=1 python3 "$client" write "$uri" "$j" $nblocks 3 4 0 30 \
  > "$tmp/client.out" 2>&1 || {
  echo "$0: writes did not recover after space returned"
  cat "$tmp/client.out"; tail -20 "$log"; exit 1; }
cat "$tmp/client.out"
python3 "$client" verify "$uri" "$j" $nblocks
hf_stop TERM
hf_start "$url" "${params[@]/wal=*/wal=off}"
python3 "$client" verify "$uri" "$j" $nblocks
hf_stop TERM
"$HYPERFILE" fsck "$url" --endpoint "$S3_ENDPOINT"
echo "$0: ok"
