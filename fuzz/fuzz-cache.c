/* hyperfile: libFuzzer harness for the block cache's index file
 * (cache.index, loaded by hf_cache_open: lib/cache.c) and the hits it
 * leads to, through the real files in a private directory.
 *
 * Input: a mode byte, then cache.index.  Mode bit 0 recomputes the
 * header and entry CRCs (fuzz.h).  cache.data holds FUZZ_CACHE_SLOTS
 * slots of 4 KiB, slot i filled with the byte i + 1.  The cache belongs
 * to the volume FUZZ_CACHE_UUID with block size 4096 (fuzz/make-seeds
 * writes such an index).  Invariants: every get of a block named by the
 * index either misses or returns the bytes of a slot whose CRC32C is the
 * one the index gives (never wrong data), and a block put afterwards
 * reads back exactly; a second open after close still never returns
 * wrong data. */
#include <config.h>

#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cache.h"
#include "crc32c.h"
#include "format.h"
#include "fuzz.h"

#define FUZZ_CACHE_UUID "fuzz-cache-uuid1"
#define FUZZ_CACHE_SLOTS 16
#define BS 4096

static uint8_t slots[FUZZ_CACHE_SLOTS][BS];

static void
fix_crcs (uint8_t *o, size_t len)
{
  if (len < 64)
    return;
  hf_put_le32 (o + 48, hf_crc32c (0, o + 64, len - 64));
  hf_put_le32 (o + 60, hf_crc32c (0, o, 60));
}

/* A hit must be the bytes of one slot, with the CRC of one of the index
 * entries for that key (the index may name a key twice; the cache keeps
 * one of them). */
static void
check_hit (const uint8_t *buf, const uint8_t *idx, size_t len,
           uint64_t seq, uint64_t off)
{
  uint32_t crc = hf_crc32c (0, buf, BS);
  size_t k;
  unsigned i;
  int named = 0;

  for (k = 64; k + 24 <= len; k += 24)
    if (hf_le64 (idx + k) == seq && hf_le64 (idx + k + 8) == off &&
        hf_le32 (idx + k + 20) == crc)
      named = 1;
  FUZZ_CHECK (named);
  for (i = 0; i < FUZZ_CACHE_SLOTS; i++)
    if (memcmp (buf, slots[i], BS) == 0)
      return;
  FUZZ_CHECK (!"a hit returned bytes of no slot");
}

static void
probe (struct hf_cache *c, const uint8_t *idx, size_t len)
{
  static uint8_t buf[BS];
  size_t k;

  for (k = 64; k + 24 <= len && k < 64 + 24 * 64; k += 24) {
    uint64_t seq = hf_le64 (idx + k), off = hf_le64 (idx + k + 8);
    int r;

    if (off % BS != 0 || (seq == 99 && off == 0))
      continue;                 /* unaligned; or the harness's own put */
    r = hf_cache_get (c, seq, off, buf, BS);
    FUZZ_CHECK (r == 0 || r == ENOENT);
    if (r == 0)
      check_hit (buf, idx, len, seq, off);
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static int init;
  struct hf_cache_options opts = { 0 };
  struct hf_cache *c = NULL;
  char path[PATH_MAX];
  uint8_t *idx;
  static uint8_t put[BS], buf[BS];
  unsigned i;

  fuzz_quiet ();
  if (!init) {
    for (i = 0; i < FUZZ_CACHE_SLOTS; i++)
      memset (slots[i], i + 1, BS);
    memset (put, 0xa5, BS);
    init = 1;
  }
  if (size < 1 || size > 64 + 24 * 4096)
    return 0;
  idx = malloc (size);
  if (idx == NULL)
    return 0;
  memcpy (idx, data + 1, size - 1);
  if (data[0] & 1)
    fix_crcs (idx, size - 1);

  fuzz_tmpdir_clear ();
  fuzz_write_file ("cache.index", idx, size - 1, path);
  fuzz_write_file ("cache.data", slots, sizeof slots, path);

  opts.dir = fuzz_tmpdir ();
  memcpy (opts.volume_uuid, FUZZ_CACHE_UUID, 16);
  opts.block_size = BS;
  opts.max_bytes = FUZZ_CACHE_SLOTS * BS;
  if (hf_cache_open (&opts, &c) != 0)
    goto out;
  probe (c, idx, size - 1);
  if (hf_cache_put (c, 99, 0, put, BS) == 0 &&
      hf_cache_get (c, 99, 0, buf, BS) == 0)
    FUZZ_CHECK (memcmp (buf, put, BS) == 0);
  hf_cache_close (c);
  c = NULL;

  /* The index written at close, loaded again. */
  FUZZ_CHECK (hf_cache_open (&opts, &c) == 0);
  probe (c, idx, size - 1);
  if (hf_cache_get (c, 99, 0, buf, BS) == 0)
    FUZZ_CHECK (memcmp (buf, put, BS) == 0);
  hf_cache_close (c);
 out:
  free (idx);
  return 0;
}
