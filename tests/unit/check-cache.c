/* Unit tests for lib/cache: round trips, misses, CLOCK eviction,
 * persistence, crash (no close), corruption of data and index, another
 * volume, the directory lock, drop_segment, and 8 threads racing puts,
 * gets and drops under eviction pressure, checking every hit byte for
 * byte.  Prints (never asserts) hit and put rates.
 *
 * HF_CACHE_TEST_QUICK=1 shortens the timed parts (for valgrind). */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "cache.h"
#include "crc32c.h"
#include "log.h"
#include "test-util.h"

#define BS 4096

static char *tmpdir;
static char cachedir[128];
static int quick;

static void
setup (void)
{
  tmpdir = make_tmpdir ();
  snprintf (cachedir, sizeof cachedir, "%s/cache", tmpdir);
  quick = getenv ("HF_CACHE_TEST_QUICK") != NULL;
}

static void
teardown (void)
{
  rm_tmpdir (tmpdir);
  tmpdir = NULL;
}

static struct hf_cache_options
opts_for (uint8_t uuid_byte, uint32_t bs, uint64_t nblocks)
{
  struct hf_cache_options o = {
    .dir = cachedir, .block_size = bs, .max_bytes = nblocks * bs,
  };

  memset (o.volume_uuid, uuid_byte, 16);
  return o;
}

static struct hf_cache *
open_cache (uint8_t uuid_byte, uint32_t bs, uint64_t nblocks)
{
  struct hf_cache_options o = opts_for (uuid_byte, bs, nblocks);
  struct hf_cache *c = NULL;

  ck_assert_int_eq (hf_cache_open (&o, &c), 0);
  ck_assert_ptr_nonnull (c);
  return c;
}

/* The bytes of block (seq, off): derived from both, so checkable. */
static void
fill (uint64_t seq, uint64_t off, void *buf, size_t len, uint32_t bs)
{
  uint64_t *w = buf;
  size_t i;

  for (i = 0; i < len / 8; i++) {
    uint64_t blk = off + (i * 8 / bs) * bs;
    uint64_t x = seq * 0x9e3779b97f4a7c15ULL ^ blk * 0xff51afd7ed558ccdULL
      ^ (i % (bs / 8)) * 0xc4ceb9fe1a85ec53ULL;

    x ^= x >> 33;
    w[i] = x;
  }
}

static int
check_get (struct hf_cache *c, uint64_t seq, uint64_t off, size_t len,
           uint32_t bs)
{
  char *buf = malloc (len), *want = malloc (len);
  int r;

  ck_assert_ptr_nonnull (buf);
  ck_assert_ptr_nonnull (want);
  r = hf_cache_get (c, seq, off, buf, len);
  if (r == 0) {
    fill (seq, off, want, len, bs);
    ck_assert_msg (memcmp (buf, want, len) == 0,
                   "wrong data for seq %" PRIu64 " off %" PRIu64,
                   seq, off);
  }
  free (buf);
  free (want);
  return r;
}

static void
put (struct hf_cache *c, uint64_t seq, uint64_t off, size_t len, uint32_t bs)
{
  char *buf = malloc (len);

  ck_assert_ptr_nonnull (buf);
  fill (seq, off, buf, len, bs);
  ck_assert_int_eq (hf_cache_put (c, seq, off, buf, len), 0);
  free (buf);
}

static void
stats (struct hf_cache *c, struct hf_cache_stats *st)
{
  hf_cache_get_stats (c, st);
  ck_assert_uint_le (st->bytes_used, st->bytes_max);
}

/* Table files: payload for seq, checkable. */
#define TAB_LEN (200 * 1024)

static void
tab_put (struct hf_cache *c, uint64_t seq)
{
  char *buf = malloc (TAB_LEN);

  ck_assert_ptr_nonnull (buf);
  fill (seq, 0, buf, TAB_LEN, BS);
  hf_cache_tables_put (c, seq, buf, TAB_LEN);
  free (buf);
}

static int
tab_get (struct hf_cache *c, uint64_t seq)
{
  char *want = malloc (TAB_LEN);
  void *buf;
  size_t len;
  int r;

  ck_assert_ptr_nonnull (want);
  r = hf_cache_tables_get (c, seq, &buf, &len);
  if (r == 0) {
    fill (seq, 0, want, TAB_LEN, BS);
    ck_assert_uint_eq (len, TAB_LEN);
    ck_assert (memcmp (buf, want, TAB_LEN) == 0);
    free (buf);
  }
  free (want);
  return r;
}

/* Table files (cache-tables.c): kept within their budget (4 MiB for a
 * small cache: twenty of these), least recently used out; kept across
 * a restart whose block index was lost (as after a crash); a damaged
 * file is a miss with a warning, and removed; leftovers of an
 * interrupted write are removed at open; another volume's cache starts
 * with none. */
START_TEST (test_tables)
{
  struct hf_cache *c = open_cache (1, BS, 64);
  struct hf_cache_stats st;
  char path[300];
  uint64_t k;
  FILE *f;

  hf_log_set_sink (log_capture);
  for (k = 1; k <= 10; k++)
    tab_put (c, k);
  ck_assert_int_eq (tab_get (c, 1), 0);
  for (k = 11; k <= 22; k++)
    tab_put (c, k);
  stats (c, &st);
  ck_assert_uint_eq (st.tables_max, 4 << 20);
  ck_assert_uint_le (st.tables_used, st.tables_max);
  ck_assert_uint_eq (st.tables_used, 20 * (TAB_LEN + 48));
  ck_assert_int_eq (tab_get (c, 1), 0);
  ck_assert_int_eq (tab_get (c, 2), ENOENT);
  ck_assert_int_eq (tab_get (c, 3), ENOENT);
  for (k = 4; k <= 22; k++)
    ck_assert_int_eq (tab_get (c, k), 0);
  /* A replaced table counts once. */
  tab_put (c, 22);
  stats (c, &st);
  ck_assert_uint_eq (st.tables_used, 20 * (TAB_LEN + 48));
  hf_cache_close (c);

  /* The block index lost, a leftover temporary file. */
  snprintf (path, sizeof path, "%s/cache.index", cachedir);
  ck_assert_int_eq (unlink (path), 0);
  snprintf (path, sizeof path, "%s/cache.tables/tmp.0000000000000005.7",
            cachedir);
  ck_assert ((f = fopen (path, "w")) != NULL);
  ck_assert_int_eq (fclose (f), 0);
  c = open_cache (1, BS, 64);
  ck_assert_int_ne (access (path, F_OK), 0);
  stats (c, &st);
  ck_assert_uint_eq (st.tables_used, 20 * (TAB_LEN + 48));
  ck_assert_int_eq (tab_get (c, 1), 0);
  ck_assert_int_eq (tab_get (c, 22), 0);
  /* Damage: a miss, a warning naming the file, the file gone. */
  snprintf (path, sizeof path, "%s/cache.tables/%016x", cachedir, 7);
  ck_assert ((f = fopen (path, "r+")) != NULL);
  ck_assert_int_eq (fseek (f, 5000, SEEK_SET), 0);
  ck_assert_int_eq (fputc (0x55, f), 0x55);
  ck_assert_int_eq (fclose (f), 0);
  last_warn[0] = '\0';
  ck_assert_int_eq (tab_get (c, 7), ENOENT);
  ck_assert_msg (strstr (last_warn, "0000000000000007") &&
                 strstr (last_warn, "damaged"), "warning: %s", last_warn);
  ck_assert_int_ne (access (path, F_OK), 0);
  stats (c, &st);
  ck_assert_uint_eq (st.tables_used, 19 * (TAB_LEN + 48));
  /* A truncated one (a torn write). */
  snprintf (path, sizeof path, "%s/cache.tables/%016x", cachedir, 8);
  ck_assert_int_eq (truncate (path, 1000), 0);
  ck_assert_int_eq (tab_get (c, 8), ENOENT);
  hf_cache_close (c);

  /* Another volume's cache: no tables. */
  c = open_cache (2, BS, 64);
  stats (c, &st);
  ck_assert_uint_eq (st.tables_used, 0);
  ck_assert_int_eq (tab_get (c, 1), ENOENT);
  hf_cache_close (c);
  hf_log_set_sink (NULL);
}
END_TEST

START_TEST (test_roundtrip)
{
  struct hf_cache *c = open_cache (1, BS, 256);
  struct hf_cache_stats st;
  char buf[BS];
  struct stat sb;

  ck_assert_int_eq (stat (cachedir, &sb), 0);
  ck_assert_int_eq (sb.st_mode & 0777, 0700);

  ck_assert_int_eq (check_get (c, 1, 0, BS, BS), ENOENT);
  put (c, 1, 0, BS, BS);
  ck_assert_int_eq (check_get (c, 1, 0, BS, BS), 0);
  ck_assert_int_eq (check_get (c, 2, 0, BS, BS), ENOENT);
  ck_assert_int_eq (check_get (c, 1, BS, BS, BS), ENOENT);

  /* Multi-block, and more than one chunk (64 blocks). */
  put (c, 7, 10 * BS, 8 * BS, BS);
  ck_assert_int_eq (check_get (c, 7, 10 * BS, 8 * BS, BS), 0);
  ck_assert_int_eq (check_get (c, 7, 12 * BS, 3 * BS, BS), 0);
  put (c, 9, 0, 150 * BS, BS);
  ck_assert_int_eq (check_get (c, 9, 0, 150 * BS, BS), 0);
  ck_assert_int_eq (check_get (c, 9, 100 * BS, 50 * BS, BS), 0);

  /* Partial presence is a miss. */
  ck_assert_int_eq (check_get (c, 7, 8 * BS, 4 * BS, BS), ENOENT);
  ck_assert_int_eq (check_get (c, 7, 16 * BS, 4 * BS, BS), ENOENT);
  ck_assert_int_eq (check_get (c, 9, 140 * BS, 20 * BS, BS), ENOENT);

  /* Putting again is harmless. */
  put (c, 7, 8 * BS, 4 * BS, BS);
  ck_assert_int_eq (check_get (c, 7, 8 * BS, 10 * BS, BS), 0);

  /* Misaligned. */
  ck_assert_int_eq (hf_cache_get (c, 1, 100, buf, BS), EINVAL);
  ck_assert_int_eq (hf_cache_get (c, 1, 0, buf, 100), EINVAL);
  ck_assert_int_eq (hf_cache_put (c, 1, 0, buf, 100), EINVAL);
  ck_assert_int_eq (hf_cache_get (c, 1, 0, buf, 0), 0);
  ck_assert_int_eq (hf_cache_put (c, 1, 0, buf, 0), 0);

  stats (c, &st);
  ck_assert_uint_eq (st.inserts, 1 + 8 + 150 + 2);
  ck_assert_uint_eq (st.bytes_used, (uint64_t) (1 + 8 + 150 + 2) * BS);
  ck_assert_uint_eq (st.bytes_max, 256 * BS);
  ck_assert_uint_eq (st.hits, 6);
  ck_assert_uint_eq (st.misses, 6);
  ck_assert_uint_eq (st.evictions, 0);
  ck_assert_uint_eq (st.corrupt, 0);
  hf_cache_close (c);

  ck_assert_int_eq (stat (cachedir, &sb), 0);
  {
    char p[256];

    snprintf (p, sizeof p, "%s/cache.data", cachedir);
    ck_assert_int_eq (stat (p, &sb), 0);
    ck_assert_int_eq (sb.st_mode & 0777, 0600);
    ck_assert_int_eq (sb.st_size, 256 * BS);
  }
}
END_TEST

START_TEST (test_bad_options)
{
  struct hf_cache_options o = opts_for (1, 1000, 10);
  struct hf_cache *c = NULL;

  ck_assert_int_eq (hf_cache_open (&o, &c), EINVAL);
  o = opts_for (1, 256, 10);
  ck_assert_int_eq (hf_cache_open (&o, &c), EINVAL);
  o = opts_for (1, 131072, 10);
  ck_assert_int_eq (hf_cache_open (&o, &c), EINVAL);
  o = opts_for (1, BS, 0);
  o.max_bytes = 100;            /* less than a block */
  ck_assert_int_eq (hf_cache_open (&o, &c), EINVAL);
  ck_assert_ptr_null (c);
}
END_TEST

START_TEST (test_eviction)
{
  struct hf_cache *c = open_cache (1, 512, 64);
  struct hf_cache_stats st;
  uint64_t k;
  int hits = 0;

  for (k = 0; k < 64; k++)
    put (c, 1, k * 512, 512, 512);
  stats (c, &st);
  ck_assert_uint_eq (st.bytes_used, 64 * 512);
  ck_assert_uint_eq (st.evictions, 0);

  /* Touch the first 16: CLOCK gives them a second chance. */
  for (k = 0; k < 16; k++)
    ck_assert_int_eq (check_get (c, 1, k * 512, 512, 512), 0);
  for (k = 0; k < 32; k++)
    put (c, 2, k * 512, 512, 512);
  stats (c, &st);
  ck_assert_uint_eq (st.bytes_used, 64 * 512);
  ck_assert_uint_eq (st.evictions, 32);
  for (k = 0; k < 16; k++)
    ck_assert_int_eq (check_get (c, 1, k * 512, 512, 512), 0);
  for (k = 0; k < 32; k++)
    ck_assert_int_eq (check_get (c, 2, k * 512, 512, 512), 0);
  for (k = 16; k < 64; k++)
    hits += check_get (c, 1, k * 512, 512, 512) == 0;
  ck_assert_int_eq (hits, 16);

  /* Lots more, multi-block: always within capacity, never wrong. */
  for (k = 0; k < 2000; k++) {
    put (c, 3 + k % 5, (k * 7 % 300) * 512, (1 + k % 4) * 512, 512);
    check_get (c, 3 + (k * 3) % 5, (k * 11 % 300) * 512, (1 + k % 3) * 512,
               512);
    stats (c, &st);
  }
  /* A put larger than the whole cache caches what fits. */
  {
    char *buf = malloc (100 * 512);

    fill (50, 0, buf, 100 * 512, 512);
    hf_cache_put (c, 50, 0, buf, 100 * 512);
    free (buf);
  }
  stats (c, &st);
  ck_assert_int_eq (check_get (c, 50, 0, 100 * 512, 512), ENOENT);
  hf_cache_close (c);
}
END_TEST

START_TEST (test_persistence)
{
  struct hf_cache *c = open_cache (1, BS, 256);
  struct hf_cache_stats st;
  uint64_t k;

  for (k = 0; k < 100; k++)
    put (c, 1 + k % 3, k * BS, BS, BS);
  hf_cache_drop_segment (c, 3);
  hf_cache_close (c);

  c = open_cache (1, BS, 256);
  stats (c, &st);
  ck_assert_uint_eq (st.bytes_used, 67 * BS);
  ck_assert_uint_eq (st.inserts, 0);
  for (k = 0; k < 100; k++)
    ck_assert_int_eq (check_get (c, 1 + k % 3, k * BS, BS, BS),
                      k % 3 == 2 ? ENOENT : 0);
  /* New puts do not overwrite loaded entries. */
  for (k = 0; k < 100; k++)
    put (c, 4, k * BS, BS, BS);
  for (k = 0; k < 100; k++)
    ck_assert_int_eq (check_get (c, 1 + k % 3, k * BS, BS, BS),
                      k % 3 == 2 ? ENOENT : 0);
  hf_cache_close (c);

  /* A smaller capacity keeps what fits, never wrong data. */
  c = open_cache (1, BS, 64);
  stats (c, &st);
  ck_assert_uint_le (st.bytes_used, 64 * BS);
  ck_assert_uint_gt (st.bytes_used, 0);
  for (k = 0; k < 100; k++) {
    check_get (c, 1 + k % 3, k * BS, BS, BS);
    check_get (c, 4, k * BS, BS, BS);
  }
  put (c, 5, 0, 10 * BS, BS);
  ck_assert_int_eq (check_get (c, 5, 0, 10 * BS, BS), 0);
  hf_cache_close (c);
}
END_TEST

/* A child opens the cache left by a clean close, overwrites most of it
 * and dies without closing; the parent must never see wrong data. */
START_TEST (test_crash)
{
  struct hf_cache *c = open_cache (1, BS, 64);
  struct hf_cache_stats st;
  uint64_t k;
  pid_t pid;
  int status;

  for (k = 0; k < 64; k++)
    put (c, 1, k * BS, BS, BS);
  hf_cache_close (c);

  pid = fork ();
  ck_assert_int_ge (pid, 0);
  if (pid == 0) {
    struct hf_cache_options o = opts_for (1, BS, 64);
    char buf[BS];

    if (hf_cache_open (&o, &c) != 0)
      _exit (1);
    if (hf_cache_get (c, 1, 0, buf, BS) != 0)
      _exit (2);
    for (k = 0; k < 48; k++) {
      fill (2, k * BS, buf, BS, BS);
      if (hf_cache_put (c, 2, k * BS, buf, BS) != 0)
        _exit (3);
    }
    _exit (0);
  }
  ck_assert_int_eq (waitpid (pid, &status, 0), pid);
  ck_assert (WIFEXITED (status));
  ck_assert_int_eq (WEXITSTATUS (status), 0);

  c = open_cache (1, BS, 64);
  stats (c, &st);
  /* Our design: after a crash the cache starts empty. */
  ck_assert_uint_eq (st.bytes_used, 0);
  for (k = 0; k < 64; k++) {
    check_get (c, 1, k * BS, BS, BS);
    check_get (c, 2, k * BS, BS, BS);
  }
  put (c, 3, 0, 4 * BS, BS);
  ck_assert_int_eq (check_get (c, 3, 0, 4 * BS, BS), 0);
  hf_cache_close (c);

  /* A copy of an open cache (what a crash leaves) opens empty too. */
  c = open_cache (1, BS, 64);
  put (c, 4, 0, 8 * BS, BS);
  {
    char cmd[512];

    snprintf (cmd, sizeof cmd, "cp -a '%s' '%s/copy'", cachedir, tmpdir);
    ck_assert_int_eq (system (cmd), 0);
  }
  hf_cache_close (c);
  snprintf (cachedir, sizeof cachedir, "%s/copy", tmpdir);
  c = open_cache (1, BS, 64);
  stats (c, &st);
  ck_assert_uint_eq (st.bytes_used, 0);
  ck_assert_int_eq (check_get (c, 4, 0, 8 * BS, BS), ENOENT);
  hf_cache_close (c);
}
END_TEST

static void
flip_byte (const char *name, off_t off)
{
  char p[256];

  snprintf (p, sizeof p, "%s/%s", cachedir, name);
  xor_byte (p, off, 0x55);
}

START_TEST (test_corrupt_data)
{
  struct hf_cache *c = open_cache (1, BS, 16);
  struct hf_cache_stats st;
  int i;

  put (c, 5, 3 * BS, BS, BS);
  put (c, 6, 0, 2 * BS, BS);
  ck_assert_int_eq (check_get (c, 5, 3 * BS, BS, BS), 0);
  hf_cache_drop_segment (c, 6);
  /* Damage every slot: only (5, 3*BS) is cached. */
  for (i = 0; i < 16; i++)
    flip_byte ("cache.data", (off_t) i * BS + 1000);
  ck_assert_int_eq (check_get (c, 5, 3 * BS, BS, BS), ENOENT);
  stats (c, &st);
  ck_assert_uint_eq (st.corrupt, 1);
  ck_assert_uint_eq (st.bytes_used, 0);
  ck_assert_int_eq (check_get (c, 5, 3 * BS, BS, BS), ENOENT);
  stats (c, &st);
  ck_assert_uint_eq (st.corrupt, 1);
  put (c, 5, 3 * BS, BS, BS);
  ck_assert_int_eq (check_get (c, 5, 3 * BS, BS, BS), 0);

  /* Damage inside a multi-block entry, then across a restart. */
  put (c, 7, 0, 4 * BS, BS);
  hf_cache_close (c);
  for (i = 0; i < 16; i++)
    flip_byte ("cache.data", (off_t) i * BS + 7);
  c = open_cache (1, BS, 16);
  ck_assert_int_eq (check_get (c, 7, 0, 4 * BS, BS), ENOENT);
  ck_assert_int_eq (check_get (c, 5, 3 * BS, BS, BS), ENOENT);
  stats (c, &st);
  ck_assert_uint_eq (st.corrupt, 4 + 1); /* per block, since open */
  ck_assert_uint_eq (st.bytes_used, 0);
  put (c, 7, 0, 4 * BS, BS);
  ck_assert_int_eq (check_get (c, 7, 0, 4 * BS, BS), 0);
  hf_cache_close (c);
}
END_TEST

/* Carried CRCs (hf_cache_put_crcs): blocks whose CRCs came with them
 * read back; a block whose bytes changed after its CRC was taken is
 * never served (a miss, counted corrupt), now and after a restart;
 * the blocks beside it still are. */
START_TEST (test_carried_crcs)
{
  struct hf_cache *c = open_cache (1, BS, 16);
  struct hf_cache_stats st;
  uint32_t crcs[4];
  char *buf = malloc (4 * BS);
  int k;

  ck_assert_ptr_nonnull (buf);
  fill (9, 0, buf, 4 * BS, BS);
  for (k = 0; k < 4; k++)
    crcs[k] = hf_crc32c (0, buf + k * BS, BS);
  buf[2 * BS + 123] ^= 0x01;    /* block 2 changes after its CRC */
  ck_assert_int_eq (hf_cache_put_crcs (c, 9, 0, buf, 4 * BS, crcs), 0);
  free (buf);
  for (k = 0; k < 4; k++)
    if (k != 2)
      ck_assert_int_eq (check_get (c, 9, (uint64_t) k * BS, BS, BS), 0);
  ck_assert_int_eq (check_get (c, 9, 2 * BS, BS, BS), ENOENT);
  ck_assert_int_eq (check_get (c, 9, 0, 4 * BS, BS), ENOENT);
  stats (c, &st);
  ck_assert_uint_eq (st.corrupt, 1);

  /* Persisted as put: the same after a restart. */
  fill (9, 0, (buf = malloc (4 * BS)), 4 * BS, BS);
  buf[3 * BS + 7] ^= 0x80;
  ck_assert_int_eq (hf_cache_put_crcs (c, 9, 3 * BS, buf + 3 * BS, BS,
                                       crcs + 3), 0);   /* present: kept */
  free (buf);
  hf_cache_close (c);
  c = open_cache (1, BS, 16);
  ck_assert_int_eq (check_get (c, 9, 0, 2 * BS, BS), 0);
  ck_assert_int_eq (check_get (c, 9, 3 * BS, BS, BS), 0);
  ck_assert_int_eq (check_get (c, 9, 2 * BS, BS, BS), ENOENT);
  hf_cache_close (c);
}
END_TEST

static void
damaged_index_case (off_t flip_at, off_t truncate_to)
{
  struct hf_cache *c = open_cache (1, BS, 64);
  struct hf_cache_stats st;
  char p[256];
  uint64_t k;

  for (k = 0; k < 20; k++)
    put (c, 1, k * BS, BS, BS);
  hf_cache_close (c);
  if (flip_at >= 0)
    flip_byte ("cache.index", flip_at);
  if (truncate_to >= 0) {
    snprintf (p, sizeof p, "%s/cache.index", cachedir);
    ck_assert_int_eq (truncate (p, truncate_to), 0);
  }
  c = open_cache (1, BS, 64);
  stats (c, &st);
  ck_assert_uint_eq (st.bytes_used, 0);
  for (k = 0; k < 20; k++)
    ck_assert_int_eq (check_get (c, 1, k * BS, BS, BS), ENOENT);
  put (c, 2, 0, 4 * BS, BS);
  ck_assert_int_eq (check_get (c, 2, 0, 4 * BS, BS), 0);
  hf_cache_close (c);
}

START_TEST (test_damaged_index)
{
  damaged_index_case (0, -1);             /* magic */
  damaged_index_case (40, -1);            /* n_entries (header CRC) */
  damaged_index_case (64 + 24 * 3 + 5, -1); /* an entry (entries CRC) */
  damaged_index_case (-1, 64 + 24 * 5);   /* truncated */
  damaged_index_case (-1, 10);            /* shorter than a header */
  damaged_index_case (-1, 0);             /* empty */
}
END_TEST

START_TEST (test_other_volume)
{
  struct hf_cache *c = open_cache (1, BS, 64);
  struct hf_cache_stats st;
  char p[256];
  struct stat sb;

  put (c, 1, 0, 8 * BS, BS);
  hf_cache_close (c);

  c = open_cache (2, BS, 64);   /* another uuid */
  stats (c, &st);
  ck_assert_uint_eq (st.bytes_used, 0);
  ck_assert_int_eq (check_get (c, 1, 0, BS, BS), ENOENT);
  put (c, 1, 0, 2 * BS, BS);
  hf_cache_close (c);
  c = open_cache (2, BS, 64);
  ck_assert_int_eq (check_get (c, 1, 0, 2 * BS, BS), 0);
  hf_cache_close (c);

  c = open_cache (2, 8192, 32); /* another block size */
  stats (c, &st);
  ck_assert_uint_eq (st.bytes_used, 0);
  ck_assert_int_eq (check_get (c, 1, 0, 8192, 8192), ENOENT);
  hf_cache_close (c);
  /* Wiped: the old volume's bytes are gone (zeros). */
  snprintf (p, sizeof p, "%s/cache.data", cachedir);
  ck_assert_int_eq (stat (p, &sb), 0);
  ck_assert_int_eq (sb.st_size, 32 * 8192);
  {
    static const char zero[2 * BS];
    char b[2 * BS];
    int fd = open (p, O_RDONLY);

    ck_assert_int_ge (fd, 0);
    ck_assert_int_eq (pread (fd, b, sizeof b, 0), sizeof b);
    ck_assert_int_eq (memcmp (b, zero, sizeof b), 0);
    close (fd);
  }
}
END_TEST

/* cache= names a directory others may control: a planted symlink must
 * never make the cache write (or truncate) a file outside it, and a
 * directory that is a symlink, writable by group or others, or owned by
 * another user is refused with a line naming why. */
static void
hostile_refused (int want_err, const char *want_msg)
{
  struct hf_cache_options o = opts_for (1, BS, 64);
  struct hf_cache *c = NULL;

  last_error[0] = '\0';
  ck_assert_int_eq (hf_cache_open (&o, &c), want_err);
  ck_assert_ptr_null (c);
  ck_assert_msg (strstr (last_error, want_msg) != NULL,
                 "error \"%s\" does not say \"%s\"", last_error, want_msg);
}

START_TEST (test_hostile_dir)
{
  struct hf_cache_options o = opts_for (1, BS, 64);
  char victim[256], p[256], real[256];
  struct hf_cache *c;
  static const char *const names[] = {
    "cache.data", "cache.lock", "cache.index", "cache.index.tmp",
  };
  size_t i;

  hf_log_set_sink (log_capture);
  snprintf (victim, sizeof victim, "%s/victim", tmpdir);

  /* Each cache file planted as a symlink to a file outside. */
  for (i = 0; i < sizeof names / sizeof names[0]; i++) {
    write_text (victim, "precious");
    ck_assert_int_eq (mkdir (cachedir, 0700), 0);
    snprintf (p, sizeof p, "%s/%s", cachedir, names[i]);
    ck_assert_int_eq (symlink (victim, p), 0);
    c = NULL;
    if (hf_cache_open (&o, &c) == 0) {
      /* Only the index files may be replaced: never followed. */
      ck_assert_msg (strstr (names[i], "index") != NULL,
                     "%s planted as a symlink was accepted", names[i]);
      put (c, 1, 0, 4 * BS, BS);
      hf_cache_close (c);
    }
    ck_assert_msg (text_is (victim, "precious"),
                   "the file behind a planted %s was changed", names[i]);
    snprintf (p, sizeof p, "rm -rf '%s'", cachedir);
    ck_assert_int_eq (system (p), 0);
  }

  /* The directory itself a symlink: refused, nothing made there. */
  snprintf (real, sizeof real, "%s/real", tmpdir);
  ck_assert_int_eq (mkdir (real, 0700), 0);
  ck_assert_int_eq (symlink (real, cachedir), 0);
  hostile_refused (ELOOP, "symbolic link");
  ck_assert_int_eq (rmdir (real), 0);          /* still empty */
  ck_assert_int_eq (unlink (cachedir), 0);

  /* Writable by others or by the group: refused, naming the mode. */
  ck_assert_int_eq (mkdir (cachedir, 0700), 0);
  ck_assert_int_eq (chmod (cachedir, 0777), 0);
  hostile_refused (EPERM, "mode 0777");
  ck_assert_int_eq (chmod (cachedir, 01777), 0);
  hostile_refused (EPERM, "mode 1777");
  ck_assert_int_eq (chmod (cachedir, 0770), 0);
  hostile_refused (EPERM, "mode 0770");
  snprintf (p, sizeof p, "%s/cache.data", cachedir);
  ck_assert_int_eq (access (p, F_OK), -1);     /* nothing created */

  /* Owned by another user. */
  ck_assert_int_eq (chmod (cachedir, 0700), 0);
  if (geteuid () == 0) {
    ck_assert_int_eq (chown (cachedir, 65534, 65534), 0);
    hostile_refused (EPERM, "owned by uid 65534");
    ck_assert_int_eq (chown (cachedir, 0, 0), 0);
  }
  else {
    /* "/" belongs to root: refused before anything is created. */
    o.dir = "/";
    c = NULL;
    ck_assert_int_eq (hf_cache_open (&o, &c), EPERM);
  }

  /* Mode 0755, ours: fine. */
  ck_assert_int_eq (chmod (cachedir, 0755), 0);
  c = open_cache (1, BS, 64);
  hf_cache_close (c);
  hf_log_set_sink (NULL);
}
END_TEST

/* The parent's cache in test_ebusy.  Static, so that the forked child,
 * which inherits it and must leave it alone (_exit), still reaches it
 * when valgrind looks for leaks at the child's exit. */
static struct hf_cache *ebusy_cache;

START_TEST (test_ebusy)
{
  struct hf_cache_options o = opts_for (1, BS, 64);
  struct hf_cache *c, *c2 = NULL;
  pid_t pid;
  int status, pfd[2];
  char res = 0;

  ebusy_cache = open_cache (1, BS, 64);
  ck_assert_int_eq (hf_cache_open (&o, &c2), EBUSY);
  ck_assert_ptr_null (c2);
  /* The child inherits the locked fd but must still get EBUSY.  It
   * reports through a pipe (valgrind may change its exit status). */
  ck_assert_int_eq (pipe (pfd), 0);
  pid = fork ();
  ck_assert_int_ge (pid, 0);
  if (pid == 0) {
    char r = hf_cache_open (&o, &c2) == EBUSY ? 'y' : 'n';

    if (write (pfd[1], &r, 1) != 1)
      _exit (1);
    _exit (0);
  }
  close (pfd[1]);
  ck_assert_int_eq (read (pfd[0], &res, 1), 1);
  close (pfd[0]);
  ck_assert_int_eq (res, 'y');
  ck_assert_int_eq (waitpid (pid, &status, 0), pid);
  put (ebusy_cache, 1, 0, BS, BS);
  hf_cache_close (ebusy_cache);
  ebusy_cache = NULL;
  c = open_cache (1, BS, 64);
  ck_assert_int_eq (check_get (c, 1, 0, BS, BS), 0);
  hf_cache_close (c);
}
END_TEST

/* How many of the first n pages of path are in the page cache. */
static size_t
resident_pages (const char *path, size_t n)
{
  int fd = open (path, O_RDONLY);
  unsigned char vec[256];
  void *m;
  size_t i, r = 0;

  ck_assert_int_ge (fd, 0);
  ck_assert_uint_le (n, sizeof vec);
  m = mmap (NULL, n * 4096, PROT_READ, MAP_SHARED, fd, 0);
  ck_assert_ptr_ne (m, MAP_FAILED);
  ck_assert_int_eq (mincore (m, n * 4096, vec), 0);
  for (i = 0; i < n; i++)
    r += vec[i] & 1;
  munmap (m, n * 4096);
  close (fd);
  return r;
}

/* Long page-aligned puts go to cache.data with O_DIRECT: they must not
 * fill the page cache, and a later put into the same slots must be seen
 * by a get even though an earlier get left those pages cached. */
START_TEST (test_direct_put)
{
  struct hf_cache *c = open_cache (1, BS, 256);
  char path[256];
  void *buf;
  size_t len = 64 * BS;
  bool direct;
  int fd;

  snprintf (path, sizeof path, "%s/cache.data", cachedir);
  fd = open (path, O_RDWR | O_DIRECT);
  direct = fd >= 0;
  if (fd >= 0)
    close (fd);
  else
    fprintf (stderr, "check-cache: %s: no O_DIRECT here (%m): only the "
             "buffered fallback is checked\n", path);
  if (under_valgrind ()) {
    fprintf (stderr, "check-cache: under valgrind: page cache residency "
             "not checked\n");
    direct = false;
  }
  ck_assert_int_eq (posix_memalign (&buf, 4096, len), 0);
  fill (1, 0, buf, len, BS);
  ck_assert_int_eq (hf_cache_put (c, 1, 0, buf, len), 0);
  if (direct)
    ck_assert_uint_eq (resident_pages (path, 64), 0);
  ck_assert_int_eq (check_get (c, 1, 0, len, BS), 0);
  if (!under_valgrind ())
    ck_assert_uint_eq (resident_pages (path, 64), 64);   /* read cached */
  hf_cache_drop_segment (c, 1);
  fill (2, 0, buf, len, BS);
  ck_assert_int_eq (hf_cache_put (c, 2, 0, buf, len), 0);
  ck_assert_int_eq (check_get (c, 2, 0, len, BS), 0);
  ck_assert_int_eq (check_get (c, 1, 0, BS, BS), ENOENT);
  free (buf);
  hf_cache_close (c);
}
END_TEST

/* pwrite, counted (-Wl,--wrap=pwrite): the writes of block data. */
static unsigned long data_writes;       /* atomic */

ssize_t __real_pwrite (int fd, const void *buf, size_t n, off_t off);
ssize_t __wrap_pwrite (int fd, const void *buf, size_t n, off_t off);

ssize_t
__wrap_pwrite (int fd, const void *buf, size_t n, off_t off)
{
  ssize_t r = __real_pwrite (fd, buf, n, off);

  if (r > 0 && n >= BS)
    __atomic_fetch_add (&data_writes, 1, __ATOMIC_RELAXED);
  return r;
}

/* A segment's worth of blocks is written in a few long runs, not one
 * per HF_CACHE_CHUNK (each write has a fixed cost): 2,148 blocks, more
 * than two batches, into free slots and then into slots evicted by the
 * CLOCK hand, three writes each, every block intact and carrying the
 * CRC it was put with. */
START_TEST (test_segment_put)
{
  const unsigned n = 2 * 1024 + 100;
  struct hf_cache *c = open_cache (1, BS, n);
  struct hf_cache_stats st;
  uint32_t *crcs = malloc (n * sizeof *crcs);
  void *buf;
  unsigned i;

  ck_assert_ptr_nonnull (crcs);
  ck_assert_int_eq (posix_memalign (&buf, 4096, (size_t) n * BS), 0);
  for (uint64_t seq = 1; seq <= 2; seq++) {
    fill (seq, 0, buf, (size_t) n * BS, BS);
    for (i = 0; i < n; i++)
      crcs[i] = hf_crc32c (0, (char *) buf + (size_t) i * BS, BS);
    __atomic_store_n (&data_writes, 0, __ATOMIC_RELAXED);
    ck_assert_int_eq (hf_cache_put_crcs (c, seq, 0, buf, (size_t) n * BS,
                                         crcs), 0);
    ck_assert_uint_eq (__atomic_load_n (&data_writes, __ATOMIC_RELAXED), 3);
  }
  stats (c, &st);
  ck_assert_uint_eq (st.evictions, n);
  for (i = 0; i < n; i++) {
    ck_assert_int_eq (check_get (c, 2, (uint64_t) i * BS, BS, BS), 0);
    ck_assert_int_eq (check_get (c, 1, (uint64_t) i * BS, BS, BS), ENOENT);
  }
  free (buf);
  free (crcs);
  hf_cache_close (c);
}
END_TEST

START_TEST (test_drop_segment)
{
  struct hf_cache *c = open_cache (1, BS, 64);
  struct hf_cache_stats st;

  put (c, 1, 0, 10 * BS, BS);
  put (c, 2, 0, 10 * BS, BS);
  put (c, 3, 0, 10 * BS, BS);
  hf_cache_drop_segment (c, 2);
  hf_cache_drop_segment (c, 99);
  stats (c, &st);
  ck_assert_uint_eq (st.bytes_used, 20 * BS);
  ck_assert_int_eq (check_get (c, 1, 0, 10 * BS, BS), 0);
  ck_assert_int_eq (check_get (c, 2, 0, BS, BS), ENOENT);
  ck_assert_int_eq (check_get (c, 2, 9 * BS, BS, BS), ENOENT);
  ck_assert_int_eq (check_get (c, 3, 0, 10 * BS, BS), 0);
  put (c, 2, 0, 10 * BS, BS);
  ck_assert_int_eq (check_get (c, 2, 0, 10 * BS, BS), 0);
  hf_cache_close (c);
}
END_TEST

/* ---- concurrency ---- */

struct worker {
  pthread_t t;
  struct hf_cache *c;
  unsigned id;
  double until;
  uint64_t gets, hits, puts;
};

#define NKEYSEGS 4
#define NKEYBLKS 96

static void *
worker_run (void *arg)
{
  struct worker *w = arg;
  uint64_t r = 0x1234567 + w->id * 0x9e3779b97f4a7c15ULL;
  char *buf = malloc (4 * BS), *want = malloc (4 * BS);
  unsigned n = 0;

  while ((++n & 63) != 0 || now () < w->until) {
    uint64_t seq, blk, nb;
    int err;

    r ^= r << 13;
    r ^= r >> 7;
    r ^= r << 17;
    seq = 1 + r % NKEYSEGS;
    nb = 1 + (r >> 8) % 4;
    blk = (r >> 16) % (NKEYBLKS - nb + 1);
    if ((r >> 32) % 3 == 0) {
      fill (seq, blk * BS, buf, nb * BS, BS);
      err = hf_cache_put (w->c, seq, blk * BS, buf, nb * BS);
      /* ENOSPC only if every slot is being written at once. */
      ck_assert (err == 0 || err == ENOSPC);
      w->puts++;
    }
    else if (w->id == 0 && (r >> 32) % 1000 == 1)
      hf_cache_drop_segment (w->c, seq);
    else {
      err = hf_cache_get (w->c, seq, blk * BS, buf, nb * BS);
      ck_assert (err == 0 || err == ENOENT);
      w->gets++;
      if (err == 0) {
        fill (seq, blk * BS, want, nb * BS, BS);
        ck_assert_msg (memcmp (buf, want, nb * BS) == 0,
                       "thread %u: wrong data for seq %" PRIu64
                       " block %" PRIu64 " n %" PRIu64,
                       w->id, seq, blk, nb);
        w->hits++;
      }
    }
  }
  free (buf);
  free (want);
  return NULL;
}

static void
run_workers (struct hf_cache *c, unsigned nthreads, double secs,
             uint64_t *gets, uint64_t *hits, uint64_t *puts)
{
  struct worker w[16];
  double until = now () + secs;
  unsigned i;

  *gets = *hits = *puts = 0;
  for (i = 0; i < nthreads; i++) {
    w[i] = (struct worker) { .c = c, .id = i, .until = until };
    ck_assert_int_eq (pthread_create (&w[i].t, NULL, worker_run, &w[i]), 0);
  }
  for (i = 0; i < nthreads; i++) {
    ck_assert_int_eq (pthread_join (w[i].t, NULL), 0);
    *gets += w[i].gets;
    *hits += w[i].hits;
    *puts += w[i].puts;
  }
}

START_TEST (test_concurrency)
{
  /* 48 slots for 384 possible blocks: constant eviction and reuse. */
  struct hf_cache *c = open_cache (1, BS, 48);
  struct hf_cache_stats st;
  uint64_t gets, hits, puts;

  run_workers (c, 8, quick ? 0.5 : 4, &gets, &hits, &puts);
  stats (c, &st);
  printf ("concurrency: %" PRIu64 " gets (%" PRIu64 " hits), %" PRIu64
          " puts, %" PRIu64 " evictions, %" PRIu64 " corrupt\n",
          gets, hits, puts, st.evictions, st.corrupt);
  ck_assert_uint_gt (hits, 0);
  ck_assert_uint_gt (st.evictions, 0);
  ck_assert_uint_eq (st.corrupt, 0);
  ck_assert_uint_eq (st.hits, hits);
  hf_cache_close (c);

  /* And the survivors persist correctly. */
  c = open_cache (1, BS, 48);
  {
    uint64_t seq, blk;

    for (seq = 1; seq <= NKEYSEGS; seq++)
      for (blk = 0; blk < NKEYBLKS; blk++)
        check_get (c, seq, blk * BS, BS, BS);
  }
  stats (c, &st);
  ck_assert_uint_gt (st.hits, 0);
  hf_cache_close (c);
}
END_TEST

/* ---- rates (printed, not asserted) ---- */

struct bench {
  pthread_t t;
  struct hf_cache *c;
  unsigned id;
  double until;
  uint64_t n, nblocks;
};

static void *
bench_run (void *arg)
{
  struct bench *b = arg;
  uint64_t r = 88172645463325252ULL + b->id;
  char buf[BS];

  while ((b->n & 255) != 0 || now () < b->until) {
    r ^= r << 13;
    r ^= r >> 7;
    r ^= r << 17;
    ck_assert_int_eq (hf_cache_get (b->c, 1, (r % b->nblocks) * BS, buf, BS),
                      0);
    b->n++;
  }
  return NULL;
}

static double
bench_gets (struct hf_cache *c, unsigned nthreads, uint64_t nblocks,
            double secs)
{
  struct bench b[8];
  double t0 = now (), until = t0 + secs;
  uint64_t total = 0;
  unsigned i;

  for (i = 0; i < nthreads; i++) {
    b[i] = (struct bench) { .c = c, .id = i, .until = until,
                            .nblocks = nblocks };
    ck_assert_int_eq (pthread_create (&b[i].t, NULL, bench_run, &b[i]), 0);
  }
  for (i = 0; i < nthreads; i++) {
    ck_assert_int_eq (pthread_join (b[i].t, NULL), 0);
    total += b[i].n;
  }
  return total / (now () - t0);
}

START_TEST (test_rates)
{
  uint64_t nblocks = quick ? 512 : 8192, k;
  struct hf_cache *c = open_cache (1, BS, nblocks);
  char buf[BS];
  double t0, put_rate, put_evict_rate;

  memset (buf, 0x5a, sizeof buf);
  t0 = now ();
  for (k = 0; k < nblocks; k++)
    ck_assert_int_eq (hf_cache_put (c, 1, k * BS, buf, BS), 0);
  put_rate = nblocks / (now () - t0);
  printf ("rates: 4 KiB puts (fill): %.0f/s\n", put_rate);
  printf ("rates: 4 KiB get hits, 1 thread: %.0f/s\n",
          bench_gets (c, 1, nblocks, quick ? 0.2 : 1.5));
  printf ("rates: 4 KiB get hits, 8 threads: %.0f/s\n",
          bench_gets (c, 8, nblocks, quick ? 0.2 : 1.5));
  t0 = now ();
  for (k = 0; k < nblocks; k++)
    ck_assert_int_eq (hf_cache_put (c, 2, k * BS, buf, BS), 0);
  put_evict_rate = nblocks / (now () - t0);
  printf ("rates: 4 KiB puts (evicting): %.0f/s\n", put_evict_rate);
  hf_cache_close (c);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("cache");
  TCase *tc = tcase_create ("core");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_roundtrip);
  tcase_add_test (tc, test_tables);
  tcase_add_test (tc, test_bad_options);
  tcase_add_test (tc, test_eviction);
  tcase_add_test (tc, test_persistence);
  tcase_add_test (tc, test_crash);
  tcase_add_test (tc, test_corrupt_data);
  tcase_add_test (tc, test_carried_crcs);
  tcase_add_test (tc, test_damaged_index);
  tcase_add_test (tc, test_other_volume);
  tcase_add_test (tc, test_ebusy);
  tcase_add_test (tc, test_hostile_dir);
  tcase_add_test (tc, test_drop_segment);
  tcase_add_test (tc, test_direct_put);
  tcase_add_test (tc, test_segment_put);
  tcase_add_test (tc, test_concurrency);
  tcase_add_test (tc, test_rates);
  suite_add_tcase (s, tc);
  return run_suite (s);
}
