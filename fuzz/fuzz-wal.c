/* hyperfile: libFuzzer harness for the write-ahead log scan at open and
 * replay (hf_wal_open, hf_wal_replay: lib/wal-open.c), through the real
 * files: the input becomes one log file in a private directory.
 *
 * Input: a mode byte, then the file (512-byte header, records).  The
 * file is named after its fh_first_lsn.  Mode bit 0 recomputes fh_crc
 * and every record's wr_crc (fuzz.h).  The log must belong to the volume
 * FUZZ_WAL_UUID (what fuzz/make-seeds writes).  Invariants: replay
 * yields LSNs increasing by one, WRITE records with their data and the
 * others without; after replay an append succeeds with the next LSN and
 * a second open replays what the first did plus that record. */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "format.h"
#include "wal.h"
#include "fuzz.h"

#define FUZZ_WAL_UUID "fuzz-wal-uuid-01"

struct seen {
  uint64_t n, first, last;
  uint64_t sum;                 /* of (lsn, type, offset, len) */
};

static int
replay_cb (void *opaque, uint64_t lsn, uint32_t type, uint64_t offset,
           uint64_t len, const void *data)
{
  struct seen *s = opaque;

  if (s->n > 0)
    FUZZ_CHECK (lsn == s->last + 1);
  else
    s->first = lsn;
  s->last = lsn;
  s->n++;
  FUZZ_CHECK (type == HF_WAL_WRITE || type == HF_WAL_TRIM ||
              type == HF_WAL_ZERO || type == HF_WAL_GROW);
  FUZZ_CHECK ((type == HF_WAL_WRITE) == (data != NULL));
  if (type == HF_WAL_WRITE && len > 0)
    /* The sanitizers check that all len bytes are readable. */
    s->sum += ((const uint8_t *) data)[0] + ((const uint8_t *) data)[len - 1];
  s->sum += lsn * 31 + type * 7 + offset + len;
  return 0;
}

static void
fix_crcs (uint8_t *o, size_t len)
{
  size_t off = 512;

  if (len < 512)
    return;
  hf_put_le32 (o + 508, hf_crc32c (0, o, 508));
  while (off + 64 <= len && hf_le32 (o + off) != 0) {
    uint8_t *h = o + off;
    uint32_t type = hf_le32 (h + 12);
    uint64_t dlen = type == HF_WAL_WRITE ? hf_le64 (h + 32) : 0;
    uint64_t rec = hf_le64 (h + 40);
    uint32_t crc;

    if (dlen > len - off - 64 || rec < 512 || rec % 512 != 0)
      break;
    crc = hf_crc32c (0, h, 60);
    hf_put_le32 (h + 60, hf_crc32c (crc, h + 64, dlen));
    if (rec > len - off)
      break;
    off += rec;
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct hf_wal_options opts = { 0 };
  struct hf_wal *w = NULL;
  struct seen s1 = { 0 }, s2 = { 0 };
  char name[64], path[PATH_MAX];
  uint8_t *o;
  uint64_t first_lsn = 1, lsn;
  int r;

  fuzz_quiet ();
  if (size < 1 || size > (1 << 20))
    return 0;
  o = malloc (size);
  if (o == NULL)
    return 0;
  memcpy (o, data + 1, size - 1);
  if (data[0] & 1)
    fix_crcs (o, size - 1);
  if (size - 1 >= 40)
    first_lsn = hf_le64 (o + 32);
  if (first_lsn == 0 || first_lsn > UINT64_MAX / 2)
    first_lsn = 1;
  fuzz_tmpdir_clear ();
  snprintf (name, sizeof name, "wal-%016" PRIx64 ".log", first_lsn);
  fuzz_write_file (name, o, size - 1, path);
  free (o);

  opts.dir = fuzz_tmpdir ();
  memcpy (opts.volume_uuid, FUZZ_WAL_UUID, 16);
  opts.file_size = 1 << 20;
  opts.max_bytes = 8 << 20;
  if (hf_wal_open (&opts, &w) != 0)
    return 0;
  r = hf_wal_replay (w, 0, replay_cb, &s1);
  FUZZ_CHECK (r == 0);
  if (s1.n > 0)
    FUZZ_CHECK (hf_wal_last_lsn (w) == s1.last);
  r = hf_wal_append (w, HF_WAL_TRIM, 4096, NULL, 4096, &lsn);
  if (r == 0) {
    FUZZ_CHECK (s1.n == 0 || lsn == s1.last + 1);
    FUZZ_CHECK (hf_wal_sync (w) == 0);
  }
  hf_wal_close (w);
  w = NULL;
  if (r != 0)
    return 0;

  /* Reopen: everything replayed before, and the new record. */
  FUZZ_CHECK (hf_wal_open (&opts, &w) == 0);
  FUZZ_CHECK (hf_wal_replay (w, 0, replay_cb, &s2) == 0);
  FUZZ_CHECK (s2.n == s1.n + 1 && s2.last == lsn);
  FUZZ_CHECK (s2.sum == s1.sum + lsn * 31 + HF_WAL_TRIM * 7 + 4096 + 4096);
  hf_wal_close (w);
  return 0;
}
