#!/usr/bin/env bash
# cache=DIR: reads fill the local block cache, a restarted server hits
# the persisted cache without asking the store, NBD CACHE fills it ahead
# of reads, a damaged cache file is
# never returned as data (every block is CRC-checked), blocks written
# enter the cache when their segment commits, and a compressed volume's
# frame tables are kept there and used after a crash.
set -e
. "$abs_srcdir/nbd-functions.sh"
requires nbdkit --version
requires nbdsh --version
requires python3 -c 'import nbd'
hf_tmpdir

# metric NAME: its value in the metrics file written at exit.
metric ()
{
  awk -v n="$1" 'index($0, n "{") == 1 { print $NF }' "$tmp/m"
}

# A volume with data in the store (written without a cache).
hf_start "$tmp/vol" size=8M segment-size=256K
nbdsh -u "$uri" -c '
import random
data = random.Random(3).randbytes(3 * 1024 * 1024 + 77)
open("'"$tmp"'/expect", "wb").write(data)
h.pwrite(data, 12345)
h.flush()
'
hf_stop TERM

read_all ()
{
  hf_start "$tmp/vol" cache="$tmp/cache" cache-size=16M metrics="$tmp/m"
  nbdsh -u "$uri" -c '
want = open("'"$tmp"'/expect", "rb").read()
assert h.pread(len(want), 12345) == want
assert h.pread(len(want), 12345) == want
'
  hf_stop TERM
  cat "$tmp/m" | grep cache_
}

# First server: misses fill the cache.
read_all
[ "$(metric hyperfile_cache_misses_total)" -gt 0 ]
[ "$(metric hyperfile_local_cache_inserts_total)" -gt 0 ]
# Second server: the persisted cache answers everything.
read_all
[ "$(metric hyperfile_cache_hits_total)" -gt 0 ]
[ "$(metric hyperfile_cache_misses_total)" -eq 0 ]
[ "$(metric hyperfile_store_bytes_in_total)" -lt 1048576 ]
# NBD CACHE (hf_file_prefetch) fills the cache before the client reads:
# the read after it is all hits (without it the one read misses every
# block, as the first server above did).
hf_start "$tmp/vol" cache="$tmp/cache3" cache-size=16M metrics="$tmp/m"
nbdsh -u "$uri" -c '
want = open("'"$tmp"'/expect", "rb").read()
assert h.can_cache()
h.cache(len(want), 12345)
assert h.pread(len(want), 12345) == want
'
hf_stop TERM
grep cache_ "$tmp/m"
[ "$(metric hyperfile_local_cache_inserts_total)" -gt 0 ]
[ "$(metric hyperfile_cache_hits_total)" -gt 0 ]
# A cache directory serves one server: a second one fails at startup.
hf_start "$tmp/vol" cache="$tmp/cache"
if nbdkit -r -U "$(hf_usock)" "$PLUGIN" "$tmp/vol" cache="$tmp/cache" --run true \
    > "$tmp/out" 2>&1; then
  echo "$0: two servers shared a cache"; exit 1
fi
cat "$tmp/out"
grep -q 'cache=.*in use' "$tmp/out"
hf_stop TERM
# Damage the cache's data file: reads stay correct (from the store).
python3 -c '
import os, sys
p = sys.argv[1]
size = os.path.getsize(p)
with open(p, "r+b") as f:
    for off in range(0, min(size, 64 * 1024 * 1024), 4096):
        f.seek(off); f.write(b"\xde\xad" * 64)
' "$tmp/cache/cache.data"
read_all
[ "$(metric hyperfile_local_cache_corrupt_total)" -gt 0 ]

# Blocks a server writes go into its cache when their segment commits:
# the next server reads them (and the index) without a single miss.
hf_start "$tmp/vol2" size=8M segment-size=256K cache="$tmp/cache2" \
  cache-size=16M metrics="$tmp/m"
nbdsh -u "$uri" -c '
want = open("'"$tmp"'/expect", "rb").read()
h.pwrite(want, 12345)
h.flush()
'
hf_stop TERM
[ "$(metric hyperfile_local_cache_inserts_total)" -gt 0 ]
hf_start "$tmp/vol2" cache="$tmp/cache2" cache-size=16M metrics="$tmp/m"
nbdsh -u "$uri" -c '
want = open("'"$tmp"'/expect", "rb").read()
assert h.pread(len(want), 12345) == want
'
hf_stop TERM
grep cache_ "$tmp/m"
[ "$(metric hyperfile_cache_misses_total)" -eq 0 ]
[ "$(metric hyperfile_cache_hits_total)" -gt 0 ]

# A compressed volume: the writer keeps its segments' frame tables in
# cache.tables/ at commit.  After a crash (the block index lost, so every
# read misses) the reads find the tables there: no table is read from
# the store, each read that misses costs its one GET.
hf_start "$tmp/vol3" size=8M segment-size=256K compress=zstd \
  cache="$tmp/cache4" cache-size=16M metrics="$tmp/m"
nbdsh -u "$uri" -c '
data = (b"hyperfile keeps frame tables " * 110000)[:3 * 1024 * 1024]
open("'"$tmp"'/expect3", "wb").write(data)
for off in range(0, len(data), 262144):
    h.pwrite(data[off:off + 262144], off)
h.flush()
'
hf_stop TERM
ls "$tmp/cache4/cache.tables" | grep -qE '^[0-9a-f]{16}$'
rm "$tmp/cache4/cache.index"
hf_start "$tmp/vol3" cache="$tmp/cache4" cache-size=16M metrics="$tmp/m"
nbdsh -u "$uri" -c '
want = open("'"$tmp"'/expect3", "rb").read()
assert h.pread(len(want), 0) == want
'
hf_stop TERM
grep -E 'cache_|frame_table' "$tmp/m"
[ "$(metric hyperfile_cache_misses_total)" -gt 0 ]
[ "$(metric hyperfile_frame_table_gets_total)" -eq 0 ]
[ "$(metric hyperfile_frame_table_local_total)" -gt 1 ]
[ "$(metric hyperfile_local_cache_tables_used_bytes)" -gt 0 ]
echo "$0: ok"
