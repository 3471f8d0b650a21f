/* Unit tests for lib/volume.
 *
 * The core is a model-based randomised test: random pwrite / trim /
 * zero / flush / grow / reopen / crash steps at random sizes and
 * alignments (sub-block, cross-block, cross-segment, with 64 KiB
 * segments and small checkpoint thresholds so that checkpoints and
 * roll-forward happen all the time), checked against an in-memory
 * reference image, over several seeds, on the dir store and on the
 * fault store (errors, timeouts, lost acknowledgements and delays).
 * After a crash (hf_volume_crash, then reopen with break_lease) the
 * image must equal the image after some write k >= the last completed
 * flush: every flushed write is there and the rest is a prefix.
 *
 * Then targeted tests: corruption of a data block and of the newest
 * segment header (refused; accept_older_head gets past it), two writers (EBUSY, takeover after expiry, forced
 * race: exactly one wins each seq, the loser gets EROFS), read-only
 * time travel, extents, trim of a huge range.
 *
 * HF_TEST_LONG=1 runs many more seeds and steps (make check-soak),
 * HF_VOLUME_TEST_QUICK=1 fewer (make check-valgrind);
 * HF_TEST_SEED=N adds N to every model seed (a soak run varies them; a
 * failure names its seed).
 */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <pthread.h>

#include "cache.h"
#include "crc32c.h"
#include "format.h"
#include "lineage.h"
#include "log.h"
#include "objstore.h"
#include "segment.h"
#include "test-util.h"
#include "volume.h"
#include "volume-int.h"             /* test_carried_crc spoils a slot */
#include "wal.h"

static bool long_run;                   /* HF_TEST_LONG */
static bool quick;                      /* HF_VOLUME_TEST_QUICK (valgrind) */
/* Seeds or steps of a model test: long, normal, quick. */
#define SCALE(l, n, q) (long_run ? (l) : quick ? (q) : (n))
static uint64_t seed_base;              /* HF_TEST_SEED */
static unsigned cur_step;
static bool trace, paranoid;
/* Built as unit/check-volume-model (tests/Makefile.am): only the model
 * tests on the fault store, with the log and with compression, about
 * half of the time, so that make -j runs them beside the rest (the
 * whole took six minutes under ThreadSanitizer, on a loaded machine). */
#ifdef HF_CHECK_VOLUME_MODEL
static const bool model_half = true;
#else
static const bool model_half = false;
#endif

static bool
all_zero (const uint8_t *p, size_t n)
{
  size_t i;
  for (i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

/* Is the fault store available (it may be a placeholder)? */
static bool
have_fault (void)
{
  struct hf_objstore *d, *f;
  struct hf_fault_config fc = { .seed = 1 };
  char *dir = make_tmpdir ();
  bool ok;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &d), 0);
  ok = hf_objstore_fault_open (d, &fc, &f) == 0;
  if (ok)
    hf_objstore_close (f);
  else
    hf_objstore_close (d);
  rm_tmpdir (dir);
  return ok;
}

/* ---- The reference model ---- */

enum op_kind { OP_WRITE, OP_TRIM, OP_ZERO, OP_GROW };
struct op {
  enum op_kind kind;
  uint64_t off, len;
  uint8_t *data;
};

struct model {
  uint64_t max_size, size;
  uint8_t *img;                 /* current image, max_size bytes */
  uint64_t fsize;               /* size at the last completed flush */
  uint8_t *flushed;             /* image at the last completed flush */
  struct op *ops;               /* applied since the last flush */
  size_t nops, capops;
};

static void
model_init (struct model *m, uint64_t size, uint64_t max_size)
{
  m->max_size = max_size;
  m->size = m->fsize = size;
  m->img = calloc (1, max_size);
  m->flushed = calloc (1, max_size);
  m->ops = NULL;
  m->nops = m->capops = 0;
  ck_assert (m->img && m->flushed);
}

static void
model_clear_ops (struct model *m)
{
  size_t i;
  for (i = 0; i < m->nops; i++)
    free (m->ops[i].data);
  m->nops = 0;
}

static void
model_free (struct model *m)
{
  model_clear_ops (m);
  free (m->ops);
  free (m->img);
  free (m->flushed);
}

static void
op_apply (uint8_t *img, uint64_t *size, const struct op *o)
{
  switch (o->kind) {
  case OP_WRITE:
    memcpy (img + o->off, o->data, o->len);
    break;
  case OP_TRIM:
  case OP_ZERO:
    memset (img + o->off, 0, o->len);
    break;
  case OP_GROW:
    *size = o->off;
    break;
  }
}

static void
model_record (struct model *m, enum op_kind k, uint64_t off, uint64_t len,
              const uint8_t *data)
{
  struct op o = { k, off, len, NULL };
  if (data) {
    o.data = malloc (len);
    ck_assert (o.data);
    memcpy (o.data, data, len);
  }
  op_apply (m->img, &m->size, &o);
  if (m->nops == m->capops) {
    m->capops = m->capops ? m->capops * 2 : 64;
    m->ops = realloc (m->ops, m->capops * sizeof *m->ops);
    ck_assert (m->ops);
  }
  m->ops[m->nops++] = o;
}

static void
model_flushed (struct model *m)
{
  memcpy (m->flushed, m->img, m->max_size);
  m->fsize = m->size;
  model_clear_ops (m);
}

/* After a crash: the volume must hold flushed + a prefix of ops. */
static void
model_check_prefix (struct model *m, struct hf_volume *v)
{
  struct hf_volume_info info;
  uint8_t *got, *cand;
  uint64_t csize = m->fsize;
  size_t k;
  bool found = false;

  hf_volume_get_info (v, &info);
  got = calloc (1, m->max_size);
  cand = malloc (m->max_size);
  ck_assert (got && cand);
  ck_assert_int_eq (hf_volume_pread (v, got, info.size, 0), 0);
  memcpy (cand, m->flushed, m->max_size);
  for (k = 0; ; k++) {
    if (csize == info.size && memcmp (cand, got, csize) == 0) {
      found = true;
      break;
    }
    if (k == m->nops)
      break;
    op_apply (cand, &csize, &m->ops[k]);
  }
  if (!found) {
    uint64_t i;
    for (i = 0; i < info.size && i < m->max_size; i++)
      if (got[i] != m->img[i])
        break;
    fprintf (stderr, "crash check failed: size %llu (flushed %llu, now %llu)"
             ", %zu ops since flush, first diff vs latest at %llu\n",
             (unsigned long long) info.size, (unsigned long long) m->fsize,
             (unsigned long long) m->size, m->nops,
             (unsigned long long) i);
  }
  ck_assert_msg (found, "image after crash is not flushed + a prefix");
  /* The volume now is that image. */
  memcpy (m->img, cand, m->max_size);
  memset (m->img + csize, 0, m->max_size - csize);
  m->size = csize;
  model_flushed (m);
  free (got);
  free (cand);
}

static void
model_check_range (struct model *m, struct hf_volume *v, uint64_t off,
                   uint64_t len)
{
  uint8_t *got = malloc (len ? len : 1);
  int r;

  ck_assert (got);
  r = hf_volume_pread (v, got, len, off);
  ck_assert_msg (r == 0, "pread %llu+%llu: %s", (unsigned long long) off,
                 (unsigned long long) len, strerror (r));
  if (memcmp (got, m->img + off, len) != 0) {
    uint64_t i;
    for (i = 0; i < len && got[i] == m->img[off + i]; i++)
      ;
    ck_abort_msg ("step %u: pread %llu+%llu differs at byte %llu (got %u "
                  "want %u)", cur_step,
                  (unsigned long long) off, (unsigned long long) len,
                  (unsigned long long) (off + i), got[i], m->img[off + i]);
  }
  free (got);
}

struct ext_check {
  struct model *m;
  uint64_t next;
};

static int
ext_cb (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  struct ext_check *c = opaque;
  uint64_t i;

  ck_assert_uint_eq (offset, c->next);
  ck_assert_uint_gt (length, 0);
  if (hole)
    for (i = 0; i < length; i++)
      if (c->m->img[offset + i] != 0)   /* (ck_assert per byte is slow) */
        ck_abort_msg ("extents: hole at %llu holds data",
                      (unsigned long long) (offset + i));
  c->next = offset + length;
  return 0;
}

static void
model_check_extents (struct model *m, struct hf_volume *v, uint64_t off,
                     uint64_t len)
{
  struct ext_check c = { m, off };
  ck_assert_int_eq (hf_volume_extents (v, len, off, ext_cb, &c), 0);
  ck_assert_uint_eq (c.next, off + len);
}

/* ---- Randomised model test ---- */

struct run_cfg {
  uint64_t seed;
  unsigned steps;
  uint32_t bs;
  bool fault;
  bool wal;                     /* with a write-ahead log */
  bool zstd;                    /* compressed volume, half the writes
                                   compressible */
};

/* The write-ahead log directory open_vol uses (NULL: none). */
static char *model_wal_dir;

static void
fill_random (uint8_t *p, size_t n)
{
  size_t i;
  for (i = 0; i < n; i++)
    p[i] = (uint8_t) rnd ();
}

static struct hf_volume *
open_vol (struct hf_objstore *s, bool break_lease, uint64_t seed)
{
  struct hf_volume_options o = {
    .segment_size = 64 * 1024,
    .flush_interval_ms = seed % 3 == 0 ? 20 : UINT32_MAX,
    .dirty_limit = 256 * 1024,
    .max_uploads = 1 + seed % 3,
    .node_cache = 16,
    .checkpoint_entries = 64,
    .checkpoint_segments = 3 + seed % 4,
    .break_lease = break_lease,
    .flush_timeout_ms = 20000,
    .wal_dir = model_wal_dir,
    .wal_max_bytes = seed % 2 ? 64 * 1024 : 0,   /* small: back-pressure */
  };
  struct hf_volume *v = NULL;
  int r = hf_volume_open (s, "v/", &o, &v);

  ck_assert_msg (r == 0, "open: %s (%s)", strerror (r), last_error);
  return v;
}

static void
run_model (const struct run_cfg *cfg)
{
  char *dir = make_tmpdir ();
  char *wdir = NULL;
  struct hf_objstore *d, *s;
  struct hf_volume *v;
  struct model m;
  uint64_t size = 1 << 20, max_size = 2 << 20;
  unsigned step;
  uint8_t *buf = malloc (300 * 1024);
  struct hf_fault_config fc = {
    .seed = cfg->seed, .p_error = 0.03, .p_timeout = 0.01,
    .p_put_lost_ack = 0.05, .max_delay_us = 300,
  };

  ck_assert (buf);
  if (cfg->wal) {
    wdir = make_tmpdir ();
    ck_assert (asprintf (&model_wal_dir, "%s/wal", wdir) > 0);
  }
  rng_state = cfg->seed * 0x9E3779B97F4A7C15ull + 1;
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &d), 0);
  s = d;
  if (cfg->fault)
    ck_assert_int_eq (hf_objstore_fault_open (d, &fc, &s), 0);
  {
    int r;
    /* create is not retried by the volume: retry here on injected EIO */
    do
      r = hf_volume_create_codec (s, "v/", size, cfg->bs, NULL,
                                  cfg->zstd ? HF_SH_CODEC_ZSTD : 0,
                                  cfg->zstd ? 1 + cfg->seed % 3 : 0);
    while (cfg->fault && (r == EIO || r == ETIMEDOUT));
    ck_assert_msg (r == 0 || (cfg->fault && r == EEXIST), "create: %s",
                   strerror (r));
  }
  model_init (&m, size, max_size);
  v = open_vol (s, false, cfg->seed);

  for (step = 0; step < cfg->steps; step++) {
    unsigned what = (unsigned) rndn (100);
    uint64_t off, len;
    int r;

    cur_step = step;
    if (trace)
      fprintf (stderr, "seed %llu step %u: what %u size %llu\n",
               (unsigned long long) cfg->seed, step, what,
               (unsigned long long) m.size);

    if (what < 50) {                    /* write */
      unsigned shape = (unsigned) rndn (10);
      if (shape < 5) {                  /* small, any alignment */
        len = 1 + rndn (3 * cfg->bs);
        off = rndn (m.size - len);
      }
      else if (shape < 9) {             /* whole blocks */
        len = (1 + rndn (40)) * cfg->bs;
        if (len > m.size)
          len = m.size;
        off = rndn ((m.size - len) / cfg->bs + 1) * cfg->bs;
      }
      else {                            /* large, crosses segments */
        len = 1 + rndn (200 * 1024);
        off = rndn (m.size - len);
      }
      fill_random (buf, len);
      if (cfg->zstd && rndn (2) == 0) { /* compressible */
        uint64_t k;
        for (k = 0; k < len; k++)
          buf[k] = (uint8_t) ('a' + (k / 7 + step) % 5);
      }
      if (rndn (4) == 0) {              /* some all-zero blocks */
        uint64_t z = rndn (len), zl = rndn (2 * cfg->bs);
        if (z + zl > len)
          zl = len - z;
        memset (buf + z, 0, zl);
      }
      r = hf_volume_pwrite (v, buf, len, off, rndn (50) == 0 ? HF_VOL_FUA : 0);
      ck_assert_msg (r == 0, "pwrite: %s", strerror (r));
      model_record (&m, OP_WRITE, off, len, buf);
      if (trace)
        fprintf (stderr, "  write %llu+%llu\n", (unsigned long long) off,
                 (unsigned long long) len);
    }
    else if (what < 58) {               /* trim / zero */
      len = 1 + rndn (rndn (4) == 0 ? m.size : 20 * cfg->bs);
      if (len > m.size)
        len = m.size;
      off = rndn (m.size - len + 1);
      if (what < 54)
        r = hf_volume_trim (v, len, off, 0);
      else
        r = hf_volume_zero (v, len, off, 0);
      ck_assert_msg (r == 0, "trim/zero: %s", strerror (r));
      model_record (&m, what < 54 ? OP_TRIM : OP_ZERO, off, len, NULL);
      if (trace)
        fprintf (stderr, "  trim %llu+%llu\n", (unsigned long long) off,
                 (unsigned long long) len);
    }
    else if (what < 66) {               /* flush */
      r = hf_volume_flush (v);
      ck_assert_msg (r == 0, "flush: %s", strerror (r));
      model_flushed (&m);
    }
    else if (what < 82) {               /* read check */
      len = 1 + rndn (rndn (3) == 0 ? m.size : 5 * cfg->bs);
      if (len > m.size)
        len = m.size;
      off = rndn (m.size - len + 1);
      model_check_range (&m, v, off, len);
    }
    else if (what < 86) {               /* extents */
      len = 1 + rndn (m.size);
      off = rndn (m.size - len + 1);
      model_check_extents (&m, v, off, len);
    }
    else if (what < 87 && m.size + 64 * 1024 <= max_size) {
      uint64_t ns = m.size + cfg->bs * (1 + rndn (16));
      r = hf_volume_grow (v, ns);
      ck_assert_msg (r == 0, "grow: %s", strerror (r));
      model_record (&m, OP_GROW, ns, 0, NULL);
    }
    else if (what < 91) {               /* clean reopen */
      r = hf_volume_close (v);
      ck_assert_msg (r == 0, "close: %s", strerror (r));
      model_flushed (&m);
      v = open_vol (s, false, cfg->seed);
      model_check_range (&m, v, 0, m.size);
    }
    else if (what < 95) {               /* crash and reopen */
      hf_volume_crash (v);
      v = open_vol (s, true, cfg->seed);
      if (cfg->wal) {
        /* A process crash keeps the log's page cache: every write that
         * returned is replayed, not just a prefix. */
        model_flushed (&m);
        model_check_range (&m, v, 0, m.size);
      }
      else
        model_check_prefix (&m, v);
    }
    if (paranoid)
      model_check_range (&m, v, 0, m.size);
  }
  model_check_range (&m, v, 0, m.size);
  ck_assert_int_eq (hf_volume_close (v), 0);
  model_flushed (&m);
  v = open_vol (s, false, cfg->seed);
  model_check_range (&m, v, 0, m.size);
  model_check_extents (&m, v, 0, m.size);
  {
    struct hf_volume_info info;
    hf_volume_get_info (v, &info);
    ck_assert_uint_eq (info.size, m.size);
  }
  ck_assert_int_eq (hf_volume_close (v), 0);
  if (cfg->fault) {
    uint64_t inj = hf_objstore_fault_injected (s);
    if (trace)
      fprintf (stderr, "seed %llu: %llu faults injected\n",
               (unsigned long long) cfg->seed, (unsigned long long) inj);
    ck_assert_uint_gt (inj, 0);
  }
  hf_objstore_close (s);
  model_free (&m);
  free (buf);
  rm_tmpdir (dir);
  fprintf (stderr, "model: seed %llu%s%s: %u steps ok\n",
           (unsigned long long) cfg->seed, cfg->fault ? ", fault store" : "",
           cfg->wal ? ", log" : "", cfg->steps);
  if (wdir) {
    free (model_wal_dir);
    model_wal_dir = NULL;
    rm_tmpdir (wdir);
  }
}

START_TEST (test_model_dir)
{
  unsigned seeds = SCALE (60, 10, 2), i;

  hf_log_set_sink (log_capture);
  for (i = 0; i < seeds; i++) {
    struct run_cfg c = { seed_base + 1000 + i, SCALE (2000, 500, 150),
                         i % 3 == 2 ? 512 : 4096, false, false, false };
    run_model (&c);
  }
}
END_TEST

START_TEST (test_model_fault)
{
  unsigned seeds = SCALE (30, 3, 1), i;

  if (!have_fault ()) {
    fprintf (stderr, "check-volume: fault store not available, skipped\n");
    return;
  }
  hf_log_set_sink (log_capture);
  for (i = 0; i < seeds; i++) {
    struct run_cfg c = { seed_base + 5000 + i, SCALE (1500, 300, 100),
                         4096, true, false, false };
    run_model (&c);
  }
}
END_TEST

START_TEST (test_model_wal)
{
  unsigned seeds = SCALE (30, 4, 1), i;

  hf_log_set_sink (log_capture);
  for (i = 0; i < seeds; i++) {
    struct run_cfg c = { seed_base + 7000 + i, SCALE (2000, 400, 150),
                         i % 3 == 2 ? 512 : 4096, false, true, false };
    run_model (&c);
  }
}
END_TEST

START_TEST (test_model_wal_fault)
{
  unsigned seeds = SCALE (20, 2, 1), i;

  if (!have_fault ())
    return;
  hf_log_set_sink (log_capture);
  for (i = 0; i < seeds; i++) {
    struct run_cfg c = { seed_base + 9000 + i, SCALE (1500, 300, 100),
                         4096, true, true, false };
    run_model (&c);
  }
}
END_TEST

START_TEST (test_model_zstd)
{
  unsigned seeds = SCALE (30, 4, 1), i;

  hf_log_set_sink (log_capture);
  for (i = 0; i < seeds; i++) {
    struct run_cfg c = { seed_base + 11000 + i, SCALE (2000, 400, 150),
                         i % 3 == 2 ? 512 : 4096, i % 2 == 1 && have_fault (),
                         i % 4 == 3, true };
    run_model (&c);
  }
}
END_TEST

/* ---- Targeted tests ---- */

static struct hf_volume *
open_opts (struct hf_objstore *s, struct hf_volume_options *o)
{
  struct hf_volume *v = NULL;
  int r = hf_volume_open (s, "", o, &v);
  ck_assert_msg (r == 0, "open: %s (%s)", strerror (r), last_error);
  return v;
}

static void
pattern (uint8_t *p, size_t n, unsigned seed)
{
  size_t i;
  for (i = 0; i < n; i++)
    p[i] = (uint8_t) (i * 7 + seed * 13 + (i >> 12));
}

START_TEST (test_basic)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume *v;
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX };
  struct hf_volume_info info;
  uint8_t w[3 * 4096], r[3 * 4096];

  hf_log_set_sink (log_capture);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_open (s, "", NULL, &v), ENOENT);
  ck_assert_int_eq (hf_volume_create (s, "", 1000000, 0), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1000000, 0), EEXIST);
  v = open_opts (s, &o);
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.size, 1003520);       /* rounded up */
  ck_assert_uint_eq (info.block_size, 4096);
  ck_assert_uint_eq (info.lease_epoch, 1);
  /* Out of range. */
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, info.size - 100), EINVAL);
  ck_assert_int_eq (hf_volume_pwrite (v, w, 4096, info.size - 100, 0),
                    ENOSPC);
  ck_assert_int_eq (hf_volume_trim (v, 4096, info.size, 0), ENOSPC);
  ck_assert_int_eq (hf_volume_grow (v, 4096), EINVAL);
  /* Unwritten reads as zeros. */
  memset (r, 1, sizeof r);
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 5000), 0);
  ck_assert (all_zero (r, sizeof r));
  pattern (w, sizeof w, 1);
  ck_assert_int_eq (hf_volume_pwrite (v, w, sizeof w, 5000, 0), 0);
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 5000), 0);
  ck_assert (memcmp (w, r, sizeof w) == 0);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 5000), 0);
  ck_assert (memcmp (w, r, sizeof w) == 0);
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.segments_committed, 1);
  ck_assert_uint_eq (info.head_seq, 1);
  ck_assert_uint_eq (info.data_bytes_uploaded, 4 * 4096);
  ck_assert_uint_gt (info.meta_bytes_uploaded, 0);
  ck_assert_int_eq (hf_volume_close (v), 0);
  /* Reopen: a second writer gets nothing in the way (released). */
  v = open_opts (s, &o);
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.lease_epoch, 2);
  ck_assert_uint_eq (info.ckpt_seq, info.head_seq);     /* close ckpt */
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 5000), 0);
  ck_assert (memcmp (w, r, sizeof w) == 0);
  /* Trim 1 TiB-scale range costs O(1): grow and trim everything. */
  ck_assert_int_eq (hf_volume_grow (v, (uint64_t) 1 << 40), 0);
  ck_assert_int_eq (hf_volume_trim (v, (uint64_t) 1 << 40, 0, 0), 0);
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 5000), 0);
  ck_assert (all_zero (r, sizeof r));
  ck_assert_int_eq (hf_volume_pwrite (v, w, 4096, ((uint64_t) 1 << 40) -
                                      4096, HF_VOL_FUA), 0);
  ck_assert_int_eq (hf_volume_close (v), 0);
  v = open_opts (s, &o);
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.size, (uint64_t) 1 << 40);
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, ((uint64_t) 1 << 40) -
                                     4096), 0);
  ck_assert (memcmp (w, r, 4096) == 0);
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 5000), 0);
  ck_assert (all_zero (r, sizeof r));
  ck_assert_int_eq (hf_volume_close (v), 0);
  /* Read-only open: EROFS for writes. */
  o.readonly = true;
  v = open_opts (s, &o);
  ck_assert_int_eq (hf_volume_pwrite (v, w, 4096, 0, 0), EROFS);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* Sizes a volume cannot have.  size= near 2^63 was rounded up past
 * INT64_MAX, making a volume nbdkit can never serve (.get_size
 * negative); such a size, or 0, in a descriptor or in a log GROW record
 * is damage, not a size to take. */
START_TEST (test_size_limits)
{
  char *dir = make_tmpdir (), *wdir = make_tmpdir (), *wal = NULL;
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX };
  struct hf_wal_options wo = { 0 };
  struct hf_volume_info info;
  struct hf_vdesc d = { .block_size = 4096, .size = 1 << 20 };
  struct hf_objstore *s;
  struct hf_volume *v = NULL;
  struct hf_wal *w;
  uint8_t enc[HF_VD_SIZE];
  const uint64_t top = (UINT64_C (1) << 63) - 65536;
  uint64_t lsn;
  size_t bad;

  hf_log_set_sink (log_capture);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);

  /* Create: the largest size is 2^63 - 64 KiB; anything that would
   * round past it is refused. */
  ck_assert_int_eq (hf_volume_create (s, "a/", INT64_MAX, 4096), EINVAL);
  ck_assert_int_eq (hf_volume_create (s, "a/", INT64_MAX - 4095, 4096),
                    EINVAL);
  ck_assert_int_eq (hf_volume_create (s, "a/", UINT64_C (1) << 63, 512),
                    EINVAL);
  ck_assert_int_eq (hf_volume_create (s, "a/", top + 1, 512), EINVAL);
  ck_assert_int_eq (hf_volume_create (s, "a/", top, 65536), 0);
  v = NULL;
  ck_assert_int_eq (hf_volume_open (s, "a/", &o, &v), 0);
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.size, top);
  ck_assert_int_le (info.size, INT64_MAX);
  ck_assert_int_eq (hf_volume_close (v), 0);

  /* Descriptors: 0 and past the top are damage. */
  d.size = 0;
  hf_vdesc_encode (&d, enc);
  ck_assert_int_eq (hf_vdesc_decode (enc, sizeof enc, &d, &bad), EBADMSG);
  d.size = UINT64_C (1) << 63;
  hf_vdesc_encode (&d, enc);
  ck_assert_int_eq (hf_vdesc_decode (enc, sizeof enc, &d, &bad), EBADMSG);
  ck_assert_int_eq (hf_objstore_put (s, "b/volume", enc, sizeof enc, 0), 0);
  v = NULL;
  ck_assert_int_eq (hf_volume_open (s, "b/", &o, &v), EBADMSG);
  ck_assert_ptr_null (v);
  d.size = 1 << 20;
  hf_vdesc_encode (&d, enc);
  ck_assert_int_eq (hf_vdesc_decode (enc, sizeof enc, &d, &bad), 0);

  /* Growing past the top: refused. */
  ck_assert_int_eq (hf_volume_create (s, "c/", 1 << 20, 4096), 0);
  ck_assert (asprintf (&wal, "%s/wal", wdir) > 0);
  o.wal_dir = wal;
  v = NULL;
  ck_assert_int_eq (hf_volume_open (s, "c/", &o, &v), 0);
  ck_assert_int_eq (hf_volume_grow (v, UINT64_C (1) << 63), EINVAL);
  ck_assert_int_eq (hf_volume_grow (v, top + 65536), EINVAL);
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.size, 1 << 20);
  memcpy (wo.volume_uuid, info.uuid, sizeof wo.volume_uuid);
  {
    uint8_t blk[4096];

    pattern (blk, sizeof blk, 9);
    ck_assert_int_eq (hf_volume_pwrite (v, blk, sizeof blk, 0, 0), 0);
    ck_assert_int_eq (hf_volume_flush (v), 0);      /* only in the log */
  }
  hf_volume_crash (v);

  /* A GROW record past the top in the log (as a damaged or planted log
   * would hold): replay refuses it. */
  wo.dir = wal;
  ck_assert_int_eq (hf_wal_open (&wo, &w), 0);
  ck_assert_int_eq (hf_wal_append (w, HF_WAL_GROW, UINT64_C (1) << 63,
                                   NULL, 0, &lsn), 0);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  hf_wal_close (w);
  o.break_lease = true;
  v = NULL;
  last_error[0] = '\0';
  ck_assert_int_eq (hf_volume_open (s, "c/", &o, &v), EBADMSG);
  ck_assert_ptr_null (v);
  ck_assert_msg (strstr (last_error, "GROW") != NULL ||
                 strstr (last_error, "size") != NULL,
                 "error: %s", last_error);

  free (wal);
  hf_objstore_close (s);
  rm_tmpdir (dir);
  rm_tmpdir (wdir);
}
END_TEST

/* A clone's parent URL comes from the store: a planted descriptor must
 * not make the server open what the operator did not allow.  A volume
 * in a directory naming an S3 parent is refused unless
 * clone_parent_any; a control character in it is damage. */
START_TEST (test_clone_parent)
{
  char *dir = make_tmpdir ();
  struct hf_s3_config cfg = { .tls_verify = true, .access_key = "AK",
                              .secret_key = "SK",
                              .endpoint = "http://127.0.0.1:1",
                              .max_retries = 1, .retry_base_ms = 1,
                              .retry_max_ms = 2, .connect_timeout_s = 1 };
  struct hf_volume_options o = { .readonly = true, .parent_cfg = &cfg };
  struct hf_vdesc d = { .flags = HF_VD_CLONE, .block_size = 4096,
                        .size = 1 << 20, .parent_seq = 1 };
  struct hf_objstore *s;
  struct hf_volume *v = NULL;
  uint8_t enc[HF_VD_SIZE];
  size_t bad;
  int r;

  hf_log_set_sink (log_capture);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  memset (d.uuid, 7, sizeof d.uuid);
  memset (d.parent_uuid, 8, sizeof d.parent_uuid);
  strcpy (d.parent_url, "s3://other-bucket/vol");
  hf_vdesc_encode (&d, enc);
  ck_assert_int_eq (hf_objstore_put (s, "a/volume", enc, sizeof enc, 0), 0);
  last_error[0] = '\0';
  ck_assert_int_eq (hf_volume_open (s, "a/", &o, &v), EPERM);
  ck_assert_ptr_null (v);
  ck_assert_msg (strstr (last_error, "s3://other-bucket/vol, in S3: "
                         "refused") != NULL, "error: %s", last_error);
  /* Allowed: the S3 parent is tried (nothing listens there). */
  cfg.clone_parent_any = true;
  last_error[0] = '\0';
  r = hf_volume_open (s, "a/", &o, &v);
  ck_assert_int_ne (r, 0);
  ck_assert_int_ne (r, EPERM);
  ck_assert_ptr_null (v);
  ck_assert_msg (strstr (last_error, "refused") == NULL, "error: %s",
                 last_error);

  /* A newline in the parent URL: damage, not a URL. */
  strcpy (d.parent_url, "file:///tmp/x\nfile:///etc");
  hf_vdesc_encode (&d, enc);
  ck_assert_int_eq (hf_vdesc_decode (enc, sizeof enc, &d, &bad), EBADMSG);
  ck_assert_uint_eq (bad, offsetof (struct hf_disk_volume, vd_parent_url)
                     + 13);
  ck_assert_int_eq (hf_objstore_put (s, "b/volume", enc, sizeof enc, 0), 0);
  ck_assert_int_eq (hf_volume_open (s, "b/", &o, &v), EBADMSG);
  ck_assert_ptr_null (v);

  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* Damage via the store API (get the object, change it, put it back). */
static void
damage (struct hf_objstore *s, const char *key, uint64_t off)
{
  void *data;
  size_t len;

  ck_assert_int_eq (hf_objstore_get_all (s, key, SIZE_MAX, &data, &len), 0);
  ck_assert_uint_lt (off, len);
  ((uint8_t *) data)[off] ^= 0x5a;
  ck_assert_int_eq (hf_objstore_put (s, key, data, len, 0), 0);
  free (data);
}

START_TEST (test_corruption)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume *v;
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX };
  struct hf_volume_info info;
  struct hf_seg_meta *m;
  uint8_t w[16 * 4096], w2[16 * 4096], r[16 * 4096];
  char key[64];
  uint64_t seq1;
  int e;

  hf_log_set_sink (log_capture);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, 4096), 0);
  v = open_opts (s, &o);
  pattern (w, sizeof w, 3);
  ck_assert_int_eq (hf_volume_pwrite (v, w, sizeof w, 0, 0), 0);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  hf_volume_get_info (v, &info);
  seq1 = info.head_seq;
  ck_assert_int_eq (hf_volume_close (v), 0);

  /* Flip a byte of data block 5 of segment seq1. */
  ck_assert_int_eq (hf_seg_read_meta (s, "", seq1, info.uuid, 4096,
                                      HF_SEG_SIZE_UNKNOWN, &m), 0);
  hf_seg_key (key, sizeof key, "", seq1);
  damage (s, key, m->h.data_off + 5 * 4096 + 100);
  v = open_opts (s, &o);
  last_error[0] = '\0';
  e = hf_volume_pread (v, r, 4096, 5 * 4096);
  ck_assert_int_eq (e, EBADMSG);
  ck_assert_msg (strstr (last_error, key) && strstr (last_error, "offset"),
                 "error names object and offset: %s", last_error);
  ck_assert_int_eq (hf_volume_pread (v, r, 4096 * 5, 0), 0);
  ck_assert (memcmp (r, w, 5 * 4096) == 0);
  ck_assert_int_eq (hf_volume_pread (v, r, 4096 * 10, 6 * 4096), 0);
  ck_assert (memcmp (r, w + 6 * 4096, 10 * 4096) == 0);
  ck_assert_int_eq (hf_volume_pread (v, r, 100, 5 * 4096 + 3000), EBADMSG);
  /* Overwriting the bad block heals it. */
  ck_assert_int_eq (hf_volume_pwrite (v, w + 5 * 4096, 4096, 5 * 4096, 0), 0);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 0), 0);
  ck_assert (memcmp (r, w, sizeof w) == 0);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_seg_meta_destroy (m);

  /* A second generation, then damage the newest segment's header: open
   * refuses (never an older point served as current, see also
   * check-volume-recover); accept_older_head, what hyperfile rollback
   * uses, opens at the intact older point and commits above the
   * damaged one. */
  v = open_opts (s, &o);
  pattern (w2, sizeof w2, 9);
  ck_assert_int_eq (hf_volume_pwrite (v, w2, sizeof w2, 0, 0), 0);
  ck_assert_int_eq (hf_volume_close (v), 0);
  {
    struct hf_volume_options ro = { .readonly = true };
    v = open_opts (s, &ro);
    hf_volume_get_info (v, &info);
    ck_assert_int_eq (hf_volume_close (v), 0);
  }
  hf_seg_key (key, sizeof key, "", info.head_seq);
  damage (s, key, 40);
  ck_assert_int_eq (hf_volume_open (s, "", &o, &v), EBADMSG);
  o.accept_older_head = true;
  v = open_opts (s, &o);
  o.accept_older_head = false;
  {
    struct hf_volume_info i2;
    hf_volume_get_info (v, &i2);
    /* Committed above the damaged one at once. */
    ck_assert_uint_gt (i2.head_seq, info.head_seq);
  }
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 0), 0);
  /* The point before the damaged newest one already holds w2: the
   * close committed the data, then the object that was damaged. */
  ck_assert (memcmp (r, w2, sizeof w2) == 0);
  ck_assert_int_eq (hf_volume_pwrite (v, w2, 4096, 0, 0), 0);
  ck_assert_int_eq (hf_volume_close (v), 0);
  v = open_opts (s, &o);
  /* The next writer numbered above the damaged one. */
  {
    uint64_t damaged = info.head_seq;
    hf_volume_get_info (v, &info);
    ck_assert_uint_gt (info.head_seq, damaged);
  }
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, 0), 0);
  ck_assert (memcmp (r, w2, 4096) == 0);
  ck_assert_int_eq (hf_volume_close (v), 0);

  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* The block CRC is computed once, by the writer, and carried into the
 * segment's CRC table and the cache: a block whose bytes change in
 * memory after that (here: flipped in the write buffer's slot) is
 * caught where it is read back, from the cache (a miss, counted
 * corrupt) and from the store (EBADMSG naming the object and offset),
 * never served.  Whole blocks (CRC before the lock) and an edge block
 * (merged, then its CRC under the lock) alike.  cc_cache_get and
 * cc_cache_put are the volume's cache hooks on an hf_cache (opaque);
 * test_compressed_cold_read uses them too. */
static int
cc_cache_get (void *opaque, uint64_t seq, uint64_t off, void *buf,
              size_t len)
{
  return hf_cache_get (opaque, seq, off, buf, len);
}

static void
cc_cache_put (void *opaque, uint64_t seq, uint64_t off, const void *buf,
              size_t len, const uint32_t *crcs)
{
  hf_cache_put_crcs (opaque, seq, off, buf, len, crcs);
}

static void
cc_spoil (struct hf_volume *v, uint64_t lba, size_t at)
{
  struct hf_wbuf *b;
  size_t pos;

  hf_vol_lock (v);
  b = v->active;
  ck_assert_ptr_nonnull (b);
  pos = hf_wbuf_find (b, lba);
  ck_assert_uint_ne (pos, SIZE_MAX);
  ck_assert_uint_ne (b->vals[pos], HF_WBUF_NO_SLOT);
  b->slots[(size_t) b->vals[pos] * v->bs + at] ^= 0x21;
  hf_vol_unlock (v);
}

START_TEST (test_carried_crc)
{
  char *dir = make_tmpdir (), cdir[256], key[64];
  struct hf_objstore *s;
  struct hf_volume *v;
  struct hf_cache *c;
  struct hf_cache_options co = { .block_size = 4096, .max_bytes = 1 << 20 };
  struct hf_cache_stats cst;
  struct hf_volume_hooks hk = { .cache_get = cc_cache_get,
                                .cache_put = cc_cache_put };
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .hooks = &hk };
  struct hf_volume_info info;
  uint8_t w[4 * 4096], r[4 * 4096], e[4096];
  int i;

  hf_log_set_sink (log_capture);
  snprintf (cdir, sizeof cdir, "%s/cache", dir);
  co.dir = cdir;
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, 4096), 0);
  ck_assert_int_eq (hf_cache_open (&co, &c), 0);
  hk.opaque = c;
  v = open_opts (s, &o);
  pattern (w, sizeof w, 5);
  pattern (e, sizeof e, 6);
  ck_assert_int_eq (hf_volume_pwrite (v, w, sizeof w, 0, 0), 0);
  ck_assert_int_eq (hf_volume_pwrite (v, e + 100, 200, 4 * 4096 + 100, 0),
                    0);
  cc_spoil (v, 2, 3000);        /* a whole block */
  cc_spoil (v, 4, 150);         /* the edge block, inside the write */
  ck_assert_int_eq (hf_volume_flush (v), 0);
  hf_volume_get_info (v, &info);
  ck_assert_int_eq (hf_volume_close (v), 0);   /* drains into the cache */

  v = open_opts (s, &o);
  hf_seg_key (key, sizeof key, "", info.head_seq);
  for (i = 0; i < 4; i++) {
    log_error_clear ();         /* read-ahead threads log too */
    if (i == 2) {
      char err[sizeof last_error];

      ck_assert_int_eq (hf_volume_pread (v, r, 4096, 2 * 4096), EBADMSG);
      log_error_copy (err, sizeof err);
      ck_assert_msg (strstr (err, key) && strstr (err, "offset"),
                     "error names object and offset: %s", err);
    }
    else {
      ck_assert_int_eq (hf_volume_pread (v, r, 4096, (uint64_t) i * 4096), 0);
      ck_assert (memcmp (r, w + i * 4096, 4096) == 0);
    }
  }
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, 4 * 4096), EBADMSG);
  ck_assert_int_eq (hf_volume_pread (v, r, 100, 4 * 4096), EBADMSG);
  /* Both were in the cache, and its check caught them first. */
  hf_cache_get_stats (c, &cst);
  ck_assert_uint_ge (cst.corrupt, 2);
  ck_assert_uint_ge (cst.hits, 3);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_cache_close (c);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* A compressed volume: smaller objects for compressible data, the
 * same bytes back after a reopen (through the frames: no cache here),
 * a clone of it compresses too, and a flipped byte in a frame is
 * EBADMSG naming the object and offset. */
START_TEST (test_compressed)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume *v;
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX };
  struct hf_volume_info info;
  struct hf_seg_meta *m;
  uint8_t *w = malloc (64 * 4096), *r = malloc (64 * 4096);
  char key[64];
  unsigned i;

  hf_log_set_sink (log_capture);
  ck_assert (w && r);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create_codec (s, "", 1 << 20, 4096, NULL, 7, 1),
                    EINVAL);
  ck_assert_int_eq (hf_volume_create_codec (s, "", 1 << 20, 4096, NULL,
                                            HF_SH_CODEC_ZSTD, 20), EINVAL);
  ck_assert_int_eq (hf_volume_create_codec (s, "", 1 << 20, 4096, NULL,
                                            HF_SH_CODEC_ZSTD, 3), 0);
  v = open_opts (s, &o);
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.codec, HF_SH_CODEC_ZSTD);
  ck_assert_uint_eq (info.codec_level, 3);
  /* Blocks 0..31 text, 32..63 random. */
  for (i = 0; i < 32 * 4096; i++)
    w[i] = (uint8_t) ("hyperfile compresses "[i % 21]);
  fill_random (w + 32 * 4096, 32 * 4096);
  ck_assert_int_eq (hf_volume_pwrite (v, w, 64 * 4096, 0, 0), 0);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.data_bytes_uploaded, 64 * 4096);
  ck_assert_uint_lt (info.data_bytes_stored, 33 * 4096);
  ck_assert_uint_gt (info.data_bytes_stored, 32 * 4096);
  /* Reads of pending and committed data. */
  ck_assert_int_eq (hf_volume_pread (v, r, 64 * 4096, 0), 0);
  ck_assert (memcmp (r, w, 64 * 4096) == 0);
  ck_assert_int_eq (hf_volume_close (v), 0);

  o.readonly = true;
  v = open_opts (s, &o);
  /* Unaligned, across frames, one block, the last block. */
  ck_assert_int_eq (hf_volume_pread (v, r, 64 * 4096 - 1000, 500), 0);
  ck_assert (memcmp (r, w + 500, 64 * 4096 - 1000) == 0);
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, 5 * 4096), 0);
  ck_assert (memcmp (r, w + 5 * 4096, 4096) == 0);
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, 63 * 4096), 0);
  ck_assert (memcmp (r, w + 63 * 4096, 4096) == 0);
  hf_volume_get_info (v, &info);
  ck_assert_int_eq (hf_volume_close (v), 0);

  /* Flip a byte in the frame holding block 9 (text, compressed). */
  ck_assert_int_eq (hf_seg_read_meta (s, "", 1, info.uuid, 4096,
                                      HF_SEG_SIZE_UNKNOWN, &m), 0);
  ck_assert_uint_eq (m->h.codec, HF_SH_CODEC_ZSTD);
  ck_assert_uint_eq (m->h.frame_blocks, 4);
  ck_assert_uint_eq (m->frames[2].flags, 0);
  ck_assert_uint_eq (m->frames[10].flags, HF_FR_RAW);
  hf_seg_key (key, sizeof key, "", 1);
  damage (s, key, m->frames[2].off + 3);
  v = open_opts (s, &o);
  last_error[0] = '\0';
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, 9 * 4096), EBADMSG);
  ck_assert_msg (strstr (last_error, key) && strstr (last_error, "offset"),
                 "error names object and offset: %s", last_error);
  ck_assert_int_eq (hf_volume_pread (v, r, 8 * 4096, 0), 0);
  ck_assert (memcmp (r, w, 8 * 4096) == 0);
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, 12 * 4096), 0);
  ck_assert (memcmp (r, w + 12 * 4096, 4096) == 0);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_seg_meta_destroy (m);

  free (w);
  free (r);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* zstd's fast levels (compress=zstd:-N): parsed with their range, the
 * descriptor says version 5 and the level as a signed byte, an open
 * reports it and the volume compresses at it; a version 4 descriptor
 * with a negative level, or a version 5 one with a positive or too low
 * level, is damage; a version 6 one is refused as a newer hyperfile's,
 * not as damage. */
/* Give an encoded descriptor another version, its CRC kept valid, so
 * only the version-against-level rule can refuse it. */
static void
vdesc_set_version (uint8_t *enc, unsigned version)
{
  hf_put_le16 (enc + offsetof (struct hf_disk_volume, vd_version), version);
  hf_put_le32 (enc + offsetof (struct hf_disk_volume, vd_crc),
               hf_crc32c (0, enc, offsetof (struct hf_disk_volume, vd_crc)));
}

START_TEST (test_fast_level)
{
  static const char *bad[] = { "zstd:-11", "zstd:-0", "zstd:0", "zstd:20",
                               "zstd:-", "zstd:- 1", "zstd:+1", "zstd: 1",
                               "zstd:-1x", "zstd:-9999999999999999999",
                               "zstd-1", "lz4" };
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume *v;
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX };
  struct hf_volume_info info;
  struct hf_vdesc d;
  uint8_t *w = malloc (64 * 4096), *r = malloc (64 * 4096), *enc = NULL;
  size_t len = 0, bad_off, i;
  unsigned codec;
  int level;

  hf_log_set_sink (log_capture);
  ck_assert (w && r);
  ck_assert_int_eq (hf_codec_parse ("zstd:-1", &codec, &level), 0);
  ck_assert_uint_eq (codec, HF_SH_CODEC_ZSTD);
  ck_assert_int_eq (level, -1);
  ck_assert_int_eq (hf_codec_parse ("zstd:-10", &codec, &level), 0);
  ck_assert_int_eq (level, -10);
  ck_assert_int_eq (hf_codec_parse ("zstd:19", &codec, &level), 0);
  ck_assert_int_eq (level, 19);
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg (hf_codec_parse (bad[i], &codec, &level) == EINVAL,
                   "%s accepted", bad[i]);

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create_codec (s, "", 1 << 20, 4096, NULL,
                                            HF_SH_CODEC_ZSTD, -11), EINVAL);
  ck_assert_int_eq (hf_volume_create_codec (s, "", 1 << 20, 4096, NULL,
                                            HF_SH_CODEC_ZSTD, 0), EINVAL);
  ck_assert_int_eq (hf_volume_create_codec (s, "", 1 << 20, 4096, NULL,
                                            0, -5), EINVAL);
  ck_assert_int_eq (hf_volume_create_codec (s, "", 1 << 20, 4096, NULL,
                                            HF_SH_CODEC_ZSTD, -5), 0);
  ck_assert_int_eq (hf_objstore_get_all (s, "volume", HF_VD_SIZE,
                                         (void **) &enc, &len), 0);
  ck_assert_uint_eq (len, HF_VD_SIZE);
  ck_assert_uint_eq (hf_le16 (enc + offsetof (struct hf_disk_volume,
                                              vd_version)),
                     HF_VD_VERSION_FAST);
  ck_assert_uint_eq (enc[offsetof (struct hf_disk_volume, vd_codec_level)],
                     0xfb);

  v = open_opts (s, &o);
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.codec, HF_SH_CODEC_ZSTD);
  ck_assert_int_eq (info.codec_level, -5);
  for (i = 0; i < 64 * 4096; i++)
    w[i] = (uint8_t) ("fast levels still compress text "[i % 32]);
  ck_assert_int_eq (hf_volume_pwrite (v, w, 64 * 4096, 0, 0), 0);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.data_bytes_uploaded, 64 * 4096);
  ck_assert_uint_lt (info.data_bytes_stored, 4 * 4096);
  ck_assert_int_eq (hf_volume_close (v), 0);
  o.readonly = true;
  v = open_opts (s, &o);
  memset (r, 0, 64 * 4096);
  ck_assert_int_eq (hf_volume_pread (v, r, 64 * 4096, 0), 0);
  ck_assert (memcmp (r, w, 64 * 4096) == 0);
  ck_assert_int_eq (hf_volume_close (v), 0);

  /* The level must agree with the version. */
  ck_assert_int_eq (hf_vdesc_decode (enc, len, &d, &bad_off), 0);
  ck_assert_int_eq (d.codec_level, -5);
  d.codec_level = -10;
  hf_vdesc_encode (&d, enc);
  ck_assert_int_eq (hf_vdesc_decode (enc, len, &d, &bad_off), 0);
  ck_assert_int_eq (d.codec_level, -10);
  d.codec_level = -11;
  hf_vdesc_encode (&d, enc);
  ck_assert_int_eq (hf_vdesc_decode (enc, len, &d, &bad_off), EBADMSG);
  ck_assert_uint_eq (bad_off, offsetof (struct hf_disk_volume,
                                        vd_codec_level));
  d.codec_level = -5;
  hf_vdesc_encode (&d, enc);
  vdesc_set_version (enc, HF_VD_VERSION_CODEC);
  ck_assert_int_eq (hf_vdesc_decode (enc, len, &d, &bad_off), EBADMSG);
  ck_assert_uint_eq (bad_off, offsetof (struct hf_disk_volume,
                                        vd_codec_level));
  d.codec_level = 3;
  hf_vdesc_encode (&d, enc);
  ck_assert_uint_eq (hf_le16 (enc + offsetof (struct hf_disk_volume,
                                              vd_version)),
                     HF_VD_VERSION_CODEC);
  vdesc_set_version (enc, HF_VD_VERSION_FAST);
  ck_assert_int_eq (hf_vdesc_decode (enc, len, &d, &bad_off), EBADMSG);
  ck_assert_uint_eq (bad_off, offsetof (struct hf_disk_volume,
                                        vd_codec_level));

  /* A version above 5 (a newer hyperfile's volume): refused, and the
   * log says why instead of calling it corrupt. */
  d.codec_level = -5;
  hf_vdesc_encode (&d, enc);
  vdesc_set_version (enc, HF_VD_VERSION_FAST + 1);
  ck_assert_int_eq (hf_objstore_put (s, "n/volume", enc, len, 0), 0);
  v = NULL;
  last_error[0] = '\0';
  ck_assert_int_eq (hf_volume_open (s, "n/", &o, &v), EBADMSG);
  ck_assert_ptr_null (v);
  ck_assert_msg (strstr (last_error, "descriptor version 6 is newer") &&
                 !strstr (last_error, "corrupt"), "error: %s", last_error);

  free (enc);
  free (w);
  free (r);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

static int
tc_tables_get (void *opaque, uint64_t seq, void **buf, size_t *len)
{
  return hf_cache_tables_get (opaque, seq, buf, len);
}

static void
tc_tables_put (void *opaque, uint64_t seq, const void *buf, size_t len)
{
  hf_cache_tables_put (opaque, seq, buf, len);
}

static uint64_t
store_gets (struct hf_objstore *s)
{
  struct hf_objstore_stats st;

  hf_objstore_get_stats (s, &st);
  return st.requests[HF_OP_GET];
}

/* Open (tables_only: a cache that lost its blocks, as after a crash,
 * but kept its table files) the cache in cdir for the volume in s, with
 * hooks in hk. */
static struct hf_cache *
tc_cache_open (struct hf_objstore *s, const char *cdir, bool blocks_lost,
               struct hf_volume_hooks *hk)
{
  struct hf_cache_options co = { .dir = cdir, .block_size = 4096,
                                 .max_bytes = 8 << 20 };
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .readonly = true };
  struct hf_volume_info info;
  struct hf_volume *v = open_opts (s, &o);
  struct hf_cache *c;
  char path[4096];

  hf_volume_get_info (v, &info);
  ck_assert_int_eq (hf_volume_close (v), 0);
  memcpy (co.volume_uuid, info.uuid, 16);
  if (blocks_lost) {
    snprintf (path, sizeof path, "%s/cache.index", cdir);
    unlink (path);
  }
  ck_assert_int_eq (hf_cache_open (&co, &c), 0);
  *hk = (struct hf_volume_hooks) { c, cc_cache_get, cc_cache_put,
                                   tc_tables_get, tc_tables_put };
  return c;
}

/* Eight blocks of text for segment i of test_compressed_cold_read. */
static void
cold_text (uint8_t *w, unsigned i)
{
  unsigned k;

  for (k = 0; k < 8 * 4096; k++)
    w[k] = (uint8_t) ("segment N of six "[k % 17] + (k % 17 == 8) * i);
}

/* A cold read of compressed segments after a restart costs one GET per
 * segment read, as for uncompressed ones: the frame tables (fetched by
 * the first reader, or the builder's own at commit) are kept in the
 * cache's table files, which survive a crash that empties the block
 * cache.  A damaged table file is a miss (a warning), never a wrong
 * read. */
START_TEST (test_compressed_cold_read)
{
  char *dir = make_tmpdir ();
  char cdir[4096], path[4200];
  struct hf_objstore *s;
  struct hf_volume *v;
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX };
  struct hf_volume_hooks hk;
  struct hf_volume_info info;
  struct hf_cache *c;
  uint8_t w[8 * 4096], r[4096];
  uint64_t g0;
  unsigned i;
  FILE *f;

  hf_log_set_sink (log_capture);
  snprintf (cdir, sizeof cdir, "%s/cache", dir);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create_codec (s, "", 1 << 20, 4096, NULL,
                                            HF_SH_CODEC_ZSTD, 3), 0);
  /* Six segments of text (compressed), written with no cache. */
  v = open_opts (s, &o);
  for (i = 0; i < 6; i++) {
    cold_text (w, i);
    ck_assert_int_eq (hf_volume_pwrite (v, w, sizeof w, i * 16 * 4096, 0),
                      0);
    ck_assert_int_eq (hf_volume_flush (v), 0);
  }
  ck_assert_int_eq (hf_volume_close (v), 0);

  /* A first reader: a table GET and a data GET per segment; it keeps
   * the tables. */
  c = tc_cache_open (s, cdir, false, &hk);
  o.readonly = true;
  o.hooks = &hk;
  v = open_opts (s, &o);
  /* (A hole: the index's nodes are read, not counted below.) */
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, 150 * 4096), 0);
  g0 = store_gets (s);
  for (i = 0; i < 6; i++)
    ck_assert_int_eq (hf_volume_pread (v, r, 4096, (i * 16 + 3) * 4096), 0);
  ck_assert_uint_eq (store_gets (s) - g0, 12);
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.frame_table_gets, 6);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_cache_close (c);

  /* Restarted after a crash: the blocks are gone, the tables are not. */
  c = tc_cache_open (s, cdir, true, &hk);
  v = open_opts (s, &o);
  /* (A hole: the index's nodes are read, not counted below.) */
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, 150 * 4096), 0);
  g0 = store_gets (s);
  for (i = 0; i < 6; i++) {
    ck_assert_int_eq (hf_volume_pread (v, r, 4096, (i * 16 + 5) * 4096), 0);
    cold_text (w, i);
    ck_assert (memcmp (r, w + 5 * 4096, 4096) == 0);
  }
  ck_assert_uint_eq (store_gets (s) - g0, 6);
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.frame_table_gets, 0);
  ck_assert_uint_eq (info.frame_table_local, 6);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_cache_close (c);

  /* A damaged table file (segment 2's): a warning, the store's table,
   * the right bytes. */
  snprintf (path, sizeof path, "%s/cache.tables/%016x", cdir, 2);
  ck_assert ((f = fopen (path, "r+")) != NULL);
  ck_assert_int_eq (fseek (f, 100, SEEK_SET), 0);
  ck_assert_int_eq (fputc ('!', f), '!');
  ck_assert_int_eq (fclose (f), 0);
  c = tc_cache_open (s, cdir, true, &hk);
  v = open_opts (s, &o);
  last_warn[0] = '\0';
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, (1 * 16 + 6) * 4096), 0);
  cold_text (w, 1);
  ck_assert (memcmp (r, w + 6 * 4096, 4096) == 0);
  ck_assert_msg (strstr (last_warn, "cache.tables") &&
                 strstr (last_warn, "damaged"), "warning: %s", last_warn);
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.frame_table_gets, 1);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_cache_close (c);

  /* A writer with the cache keeps its own segments' tables at commit. */
  rm_tmpdir (strdup (cdir));
  c = tc_cache_open (s, cdir, false, &hk);
  o.readonly = false;
  v = open_opts (s, &o);
  ck_assert_int_eq (hf_volume_pwrite (v, w, sizeof w, 200 * 4096, 0), 0);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  hf_volume_get_info (v, &info);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_cache_close (c);
  c = tc_cache_open (s, cdir, true, &hk);
  o.readonly = true;
  v = open_opts (s, &o);
  /* (A hole: the index's nodes are read, not counted below.) */
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, 150 * 4096), 0);
  g0 = store_gets (s);
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, 201 * 4096), 0);
  ck_assert_uint_eq (store_gets (s) - g0, 1);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_cache_close (c);

  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* The frame tables kept in memory are bounded (HF_VOL_FTABS, least
 * recently used out): reading 65 compressed segments and then the
 * first again fetches its table again; the last one's stays. */
START_TEST (test_ftabs_bounded)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume *v;
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX };
  struct hf_volume_info info;
  uint8_t w[4096], r[4096];
  unsigned i;

  hf_log_set_sink (log_capture);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create_codec (s, "", 4 << 20, 4096, NULL,
                                            HF_SH_CODEC_ZSTD, 1), 0);
  v = open_opts (s, &o);
  memset (w, 'x', sizeof w);
  for (i = 0; i < 65; i++) {
    w[0] = (uint8_t) i;
    ck_assert_int_eq (hf_volume_pwrite (v, w, 4096, i * 8 * 4096, 0), 0);
    ck_assert_int_eq (hf_volume_flush (v), 0);
  }
  ck_assert_int_eq (hf_volume_close (v), 0);
  o.readonly = true;
  v = open_opts (s, &o);
  for (i = 0; i < 65; i++) {
    ck_assert_int_eq (hf_volume_pread (v, r, 4096, i * 8 * 4096), 0);
    ck_assert_uint_eq (r[0], i);
  }
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.frame_table_gets, 65);
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, 64 * 8 * 4096), 0);
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.frame_table_gets, 65);
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, 0), 0);
  ck_assert_uint_eq (r[0], 0);
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.frame_table_gets, 66);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* Every put goes through here (-Wl,--wrap): test_compressed_aligned
 * counts the large objects handed to the store and those of them that
 * are not page-aligned. */
int __real_hf_objstore_put_cancel (struct hf_objstore *s, const char *key,
                                   const void *data, size_t len,
                                   unsigned flags, const atomic_bool *cancel);
int __wrap_hf_objstore_put_cancel (struct hf_objstore *s, const char *key,
                                   const void *data, size_t len,
                                   unsigned flags, const atomic_bool *cancel);
static _Atomic unsigned large_puts, large_puts_unaligned;

int
__wrap_hf_objstore_put_cancel (struct hf_objstore *s, const char *key,
                               const void *data, size_t len, unsigned flags,
                               const atomic_bool *cancel)
{
  if (len >= (1 << 20)) {
    large_puts++;
    if ((uintptr_t) data % 4096)
      large_puts_unaligned++;
  }
  return __real_hf_objstore_put_cancel (s, key, data, len, flags, cancel);
}

/* A compressed segment goes to the store in a page-aligned buffer, as
 * an uncompressed one does: the directory store writes a large aligned
 * object with O_DIRECT and anything else through the page cache, which
 * cost a compressed volume a fifth of its CPU on 4 KiB random writes. */
START_TEST (test_compressed_aligned)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume *v;
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX };
  struct hf_volume_info info;
  size_t n = 4 << 20, i;
  uint8_t *w = malloc (n);

  ck_assert (w);
  /* Half of every block random, half text: about 2 MiB stored. */
  fill_random (w, n);
  for (i = 0; i < n; i++)
    if (i % 4096 >= 2048)
      w[i] = (uint8_t) ("hyperfile compresses "[i % 21]);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create_codec (s, "", 64 << 20, 4096, NULL,
                                            HF_SH_CODEC_ZSTD, 1), 0);
  v = open_opts (s, &o);
  large_puts = large_puts_unaligned = 0;
  ck_assert_int_eq (hf_volume_pwrite (v, w, n, 0, 0), 0);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  hf_volume_get_info (v, &info);
  ck_assert_uint_gt (info.data_bytes_stored, 1 << 20);
  ck_assert_uint_lt (info.data_bytes_stored, 3 << 20);
  ck_assert_uint_ge (large_puts, 1);
  ck_assert_msg (large_puts_unaligned == 0,
                 "%u of %u large puts not page-aligned",
                 large_puts_unaligned, large_puts);
  ck_assert_int_eq (hf_volume_close (v), 0);
  free (w);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

START_TEST (test_two_writers)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume *a, *b;
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .lease_ttl_s = 1 };
  uint8_t x[8 * 4096], y[8 * 4096], r[8 * 4096];
  int ea, eb, round;

  hf_log_set_sink (log_capture);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, 4096), 0);
  pattern (x, sizeof x, 1);
  pattern (y, sizeof y, 2);

  a = open_opts (s, &o);
  last_error[0] = '\0';
  ck_assert_int_eq (hf_volume_open (s, "", &o, &b), EBUSY);
  ck_assert_msg (strstr (last_error, "pid") && strstr (last_error, "epoch"),
                 "EBUSY names the holder: %s", last_error);
  /* Crash: the lease stays; after expiry, takeover claims it. */
  ck_assert_int_eq (hf_volume_pwrite (a, x, sizeof x, 0, HF_VOL_FUA), 0);
  hf_volume_crash (a);
  usleep (1200 * 1000);
  ck_assert_int_eq (hf_volume_open (s, "", &o, &b), EBUSY);
  o.takeover = true;
  b = open_opts (s, &o);
  o.takeover = false;
  ck_assert_int_eq (hf_volume_pread (b, r, sizeof r, 0), 0);
  ck_assert (memcmp (r, x, sizeof r) == 0);
  ck_assert_int_eq (hf_volume_close (b), 0);

  /* Forced race, both orders: the first to commit the contested seq
   * wins; the other is fenced (EROFS) and the winner's data is intact. */
  o.lease_ttl_s = 60;
  for (round = 0; round < 2; round++) {
    struct hf_volume_info ia, ib;
    a = open_opts (s, &o);
    o.break_lease = true;
    b = open_opts (s, &o);
    o.break_lease = false;
    if (round == 0) {
      ea = hf_volume_pwrite (a, x, sizeof x, 0, HF_VOL_FUA);
      eb = hf_volume_pwrite (b, y, sizeof y, 0, 0);
      if (eb == 0)
        eb = hf_volume_flush (b);
      ck_assert_int_eq (ea, 0);
      ck_assert_int_eq (eb, EROFS);
    }
    else {
      eb = hf_volume_pwrite (b, y, sizeof y, 0, HF_VOL_FUA);
      ea = hf_volume_pwrite (a, x, sizeof x, 0, 0);
      if (ea == 0)
        ea = hf_volume_flush (a);
      ck_assert_int_eq (eb, 0);
      ck_assert_int_eq (ea, EROFS);
    }
    hf_volume_get_info (a, &ia);
    hf_volume_get_info (b, &ib);
    ck_assert (ia.fenced != ib.fenced);
    ck_assert_int_eq (hf_volume_pwrite (round == 0 ? b : a, x, 4096, 0, 0),
                      EROFS);
    hf_volume_crash (a);
    hf_volume_crash (b);
    o.break_lease = true;
    a = open_opts (s, &o);
    o.break_lease = false;
    ck_assert_int_eq (hf_volume_pread (a, r, sizeof r, 0), 0);
    ck_assert (memcmp (r, round == 0 ? x : y, sizeof r) == 0);
    ck_assert_int_eq (hf_volume_close (a), 0);
  }
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

START_TEST (test_time_travel)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume *v;
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .checkpoint_segments = 2 };
  struct hf_volume_info info;
  uint8_t w[4][4 * 4096], r[4 * 4096];
  uint64_t seqs[4];
  int i;

  hf_log_set_sink (log_capture);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, 4096), 0);
  v = open_opts (s, &o);
  for (i = 0; i < 4; i++) {
    pattern (w[i], sizeof w[i], 20 + i);
    ck_assert_int_eq (hf_volume_pwrite (v, w[i], sizeof w[i], 8192, 0), 0);
    ck_assert_int_eq (hf_volume_flush (v), 0);
    hf_volume_get_info (v, &info);
    seqs[i] = info.head_seq;
  }
  ck_assert_int_eq (hf_volume_close (v), 0);
  for (i = 0; i < 4; i++) {
    struct hf_volume_options ro = { .at_seq = seqs[i] };
    v = open_opts (s, &ro);
    hf_volume_get_info (v, &info);
    ck_assert (info.readonly);
    ck_assert_uint_eq (info.head_seq, seqs[i]);
    ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 8192), 0);
    ck_assert (memcmp (r, w[i], sizeof r) == 0);
    ck_assert_int_eq (hf_volume_pwrite (v, r, 10, 0, 0), EROFS);
    ck_assert_int_eq (hf_volume_close (v), 0);
  }
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* Orphans: a segment whose parent is missing is ignored, and the next
 * writer numbers above it. */
START_TEST (test_orphan)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume *v;
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .checkpoint_segments = 100 };
  struct hf_volume_info info;
  uint8_t w[3][4096], r[4096];
  char key[64];
  uint64_t orphan_seq;
  int i;

  hf_log_set_sink (log_capture);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, 4096), 0);
  v = open_opts (s, &o);
  for (i = 0; i < 3; i++) {
    pattern (w[i], sizeof w[i], 40 + i);
    ck_assert_int_eq (hf_volume_pwrite (v, w[i], 4096, 0, HF_VOL_FUA), 0);
  }
  hf_volume_get_info (v, &info);
  orphan_seq = info.head_seq;
  hf_volume_crash (v);
  /* Remove the middle one: the newest becomes an orphan (of a history
   * whose writer died before recording it in the lease: an upload that
   * landed while the one before it had not). */
  hf_seg_key (key, sizeof key, "", info.head_seq - 1);
  ck_assert_int_eq (hf_objstore_delete (s, key), 0);
  test_lease_set_committed (s, "", info.head_seq - 2);
  o.break_lease = true;
  v = open_opts (s, &o);
  {
    struct hf_volume_info i2;
    hf_volume_get_info (v, &i2);
    ck_assert_uint_eq (i2.head_seq, info.head_seq - 2);
  }
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, 0), 0);
  ck_assert (memcmp (r, w[0], 4096) == 0);
  ck_assert_int_eq (hf_volume_pwrite (v, w[2], 4096, 0, HF_VOL_FUA), 0);
  hf_volume_get_info (v, &info);
  ck_assert_uint_gt (info.head_seq, orphan_seq);
  /* The orphan is still there, untouched: nobody wrote over it. */
  hf_seg_key (key, sizeof key, "", orphan_seq);
  {
    struct hf_objstore_info oi;
    ck_assert_int_eq (hf_objstore_head (s, key, &oi), 0);
  }
  ck_assert_int_eq (hf_volume_close (v), 0);
  v = open_opts (s, &o);
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, 0), 0);
  ck_assert (memcmp (r, w[2], 4096) == 0);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST


/* Concurrency: threads write their own 512-byte sectors, interleaved
 * within shared 4 KiB blocks (so read-modify-writes of one block race),
 * read back what they own, while another thread flushes. */
#define CT_THREADS 4
#define CT_SECTORS 512                  /* 256 KiB shared region */
struct ct_arg {
  struct hf_volume *v;
  unsigned id;
  uint8_t img[CT_SECTORS][512];         /* this thread's view (own) */
  uint64_t seed;
};

static void *
ct_worker (void *p)
{
  struct ct_arg *a = p;
  uint64_t st = a->seed;
  uint8_t buf[4 * 512];
  unsigned i, k;

  for (i = 0; i < 400; i++) {
    unsigned sec;
    st ^= st << 13; st ^= st >> 7; st ^= st << 17;
    sec = (unsigned) (st % (CT_SECTORS / CT_THREADS)) * CT_THREADS + a->id;
    if (st % 3) {
      memset (buf, (int) (st >> 20), 512);
      buf[0] = (uint8_t) a->id;
      if (hf_volume_pwrite (a->v, buf, 512, (uint64_t) sec * 512, 0) != 0)
        return "pwrite";
      memcpy (a->img[sec], buf, 512);
    }
    else {
      if (hf_volume_pread (a->v, buf, 512, (uint64_t) sec * 512) != 0)
        return "pread";
      if (memcmp (buf, a->img[sec], 512) != 0)
        return "read back wrong data";
    }
    (void) k;
  }
  return NULL;
}

static void *
ct_flusher (void *p)
{
  struct hf_volume *v = p;
  unsigned i;
  for (i = 0; i < 20; i++) {
    if (hf_volume_flush (v) != 0)
      return "flush";
    usleep (2000);
  }
  return NULL;
}

START_TEST (test_concurrent)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume *v;
  struct hf_volume_options o = { .segment_size = 16384,
                                 .checkpoint_segments = 4,
                                 .checkpoint_entries = 32,
                                 .flush_interval_ms = 5 };
  static struct ct_arg args[CT_THREADS];
  pthread_t th[CT_THREADS], fl;
  uint8_t buf[512];
  void *ret;
  unsigned i, sec, round;

  hf_log_set_sink (log_capture);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, 4096), 0);
  memset (args, 0, sizeof args);
  for (round = 0; round < (long_run ? 10 : 3); round++) {
    v = open_opts (s, &o);
    for (i = 0; i < CT_THREADS; i++) {
      args[i].v = v;
      args[i].id = i;
      args[i].seed = 77 + i + round * 1000;
      ck_assert_int_eq (pthread_create (&th[i], NULL, ct_worker, &args[i]),
                        0);
    }
    ck_assert_int_eq (pthread_create (&fl, NULL, ct_flusher, v), 0);
    for (i = 0; i < CT_THREADS; i++) {
      ck_assert_int_eq (pthread_join (th[i], &ret), 0);
      ck_assert_msg (ret == NULL, "thread %u: %s", i, (char *) ret);
    }
    ck_assert_int_eq (pthread_join (fl, &ret), 0);
    ck_assert_msg (ret == NULL, "flusher: %s", (char *) ret);
    ck_assert_int_eq (hf_volume_close (v), 0);
    v = open_opts (s, &o);
    for (sec = 0; sec < CT_SECTORS; sec++) {
      ck_assert_int_eq (hf_volume_pread (v, buf, 512, sec * 512), 0);
      ck_assert_msg (memcmp (buf, args[sec % CT_THREADS].img[sec], 512) == 0,
                     "sector %u lost an update", sec);
    }
    ck_assert_int_eq (hf_volume_close (v), 0);
  }
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* The store goes down: flush gives up with EIO after flush_timeout_ms
 * but keeps the data (reads see it, uploads keep being retried); when
 * the store comes back, flush succeeds and the data survives a crash. */
START_TEST (test_store_down)
{
  char *dir;
  struct hf_objstore *d, *s;
  struct hf_volume *v;
  struct hf_fault_config fc = { .seed = 9 };
  struct hf_fault_config slow = { .seed = 9, .put_bw = 100000 };
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .flush_timeout_ms = 300 };
  uint8_t w[8 * 4096], rb[8 * 4096];
  unsigned i;
  int r;

  if (!have_fault ())
    return;
  hf_log_set_sink (log_capture);
  dir = make_tmpdir ();
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &d), 0);
  ck_assert_int_eq (hf_objstore_fault_open (d, &fc, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, 4096), 0);
  v = open_opts (s, &o);
  pattern (w, sizeof w, 5);
  ck_assert_int_eq (hf_volume_pwrite (v, w, sizeof w, 4096, 0), 0);
  hf_objstore_fault_set_down (s, true);
  ck_assert_int_eq (hf_volume_flush (v), EIO);
  ck_assert_int_eq (hf_volume_pread (v, rb, sizeof rb, 4096), 0);
  ck_assert (memcmp (rb, w, sizeof w) == 0);
  ck_assert_int_eq (hf_volume_pwrite (v, w, 4096, 0, 0), 0);
  ck_assert_int_eq (hf_volume_flush (v), EIO);
  /* It comes back slower than flush_timeout_ms allows (as a loaded
   * machine can make it): a flush may still give up, but the data is
   * kept and retried, so flushing again gets there. */
  hf_objstore_fault_set_down (s, false);
  hf_objstore_fault_set_config (s, &slow);
  for (i = 0; (r = hf_volume_flush (v)) == EIO && i < 200; i++)
    ;
  ck_assert_int_eq (r, 0);
  hf_volume_crash (v);
  /* Slower still, and the default flush timeout from here: close
   * flushes too (its checkpoint and lease release take over 300 ms). */
  slow.put_bw = 4000;
  hf_objstore_fault_set_config (s, &slow);
  o.flush_timeout_ms = 0;
  o.break_lease = true;
  v = open_opts (s, &o);
  ck_assert_int_eq (hf_volume_pread (v, rb, sizeof rb, 4096), 0);
  ck_assert (memcmp (rb, w, sizeof w) == 0);
  ck_assert_int_eq (hf_volume_pread (v, rb, 4096, 0), 0);
  ck_assert (memcmp (rb, w, 4096) == 0);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* The write-ahead log: flush is durable without the store; a crash
 * replays; a store outage is ridden out; records superseded by a writer
 * without the log are discarded, not replayed over newer data; a failed
 * fdatasync makes the volume refuse writes. */
START_TEST (test_wal)
{
  char *dir, *wdir, *wal;
  struct hf_objstore *d, *s;
  struct hf_volume *v;
  struct hf_volume_info info;
  struct hf_fault_config fc = { .seed = 11 };
  /* A long timeout: each open commits a segment naming the log, which
   * must not fail just because a loaded machine is slow. */
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .flush_timeout_ms = 30000 };
  uint8_t a[8 * 4096], b[8 * 4096], c[4096], r[8 * 4096];
  uint64_t head;

  if (!have_fault ())
    return;
  hf_log_set_sink (log_capture);
  dir = make_tmpdir ();
  wdir = make_tmpdir ();
  ck_assert (asprintf (&wal, "%s/wal", wdir) > 0);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &d), 0);
  ck_assert_int_eq (hf_objstore_fault_open (d, &fc, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, 4096), 0);
  o.wal_dir = wal;

  /* Open commits one empty segment naming the new log. */
  v = open_opts (s, &o);
  hf_volume_get_info (v, &info);
  ck_assert (info.wal);
  ck_assert_uint_eq (info.head_seq, 1);
  head = info.head_seq;

  /* Flush is the log's fdatasync: nothing reaches the store. */
  pattern (a, sizeof a, 1);
  ck_assert_int_eq (hf_volume_pwrite (v, a, sizeof a, 8192, 0), 0);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  pattern (c, sizeof c, 3);
  ck_assert_int_eq (hf_volume_pwrite (v, c, 100, 5, HF_VOL_FUA), 0);
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.head_seq, head);
  ck_assert_uint_ge (info.wal_syncs, 1);
  ck_assert_uint_eq (info.wal_appends, 2);
  ck_assert_uint_gt (info.wal_bytes_live, sizeof a);

  /* The store goes down; writes and flushes go on. */
  hf_objstore_fault_set_down (s, true);
  pattern (b, sizeof b, 2);
  ck_assert_int_eq (hf_volume_pwrite (v, b, sizeof b, 65536, 0), 0);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  hf_volume_crash (v);
  hf_objstore_fault_set_down (s, false);

  /* Replayed: everything flushed is there. */
  o.break_lease = true;
  v = open_opts (s, &o);
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.wal_replayed, 3);
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof a, 8192), 0);
  ck_assert (memcmp (r, a, sizeof a) == 0);
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof b, 65536), 0);
  ck_assert (memcmp (r, b, sizeof b) == 0);
  ck_assert_int_eq (hf_volume_pread (v, r, 100, 5), 0);
  ck_assert (memcmp (r, c, 100) == 0);
  /* A clean close commits it all and empties the log. */
  ck_assert_int_eq (hf_volume_close (v), 0);
  o.break_lease = false;
  o.wal_dir = NULL;
  v = open_opts (s, &o);
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof b, 65536), 0);
  ck_assert (memcmp (r, b, sizeof b) == 0);
  ck_assert_int_eq (hf_volume_close (v), 0);

  /* Superseded: a flushed write only in the log, then a writer without
   * the log writes the same place.  The log's record must not come
   * back over it. */
  o.wal_dir = wal;
  v = open_opts (s, &o);
  memset (c, 0xaa, sizeof c);
  ck_assert_int_eq (hf_volume_pwrite (v, c, sizeof c, 0, 0), 0);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  hf_volume_crash (v);
  o.wal_dir = NULL;
  o.break_lease = true;
  v = open_opts (s, &o);
  memset (c, 0x55, sizeof c);
  ck_assert_int_eq (hf_volume_pwrite (v, c, sizeof c, 0, 0), 0);
  ck_assert_int_eq (hf_volume_close (v), 0);
  o.wal_dir = wal;
  o.break_lease = false;
  last_warn[0] = '\0';
  v = open_opts (s, &o);
  ck_assert_msg (strstr (last_warn, "superseded") != NULL, "log: %s",
                 last_warn);
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, 0), 0);
  ck_assert (memcmp (r, c, 4096) == 0);
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.wal_replayed, 0);
  ck_assert_int_eq (hf_volume_close (v), 0);

  /* A failed fdatasync: EIO for the flush and every later write, until
   * the volume is reopened; what is in memory still commits. */
  setenv ("HF_WAL_TEST_FAIL_SYNC", "1", 1);
  v = open_opts (s, &o);
  unsetenv ("HF_WAL_TEST_FAIL_SYNC");
  ck_assert_int_eq (hf_volume_pwrite (v, a, 4096, 0, 0), 0);
  ck_assert_int_eq (hf_volume_flush (v), EIO);
  ck_assert_int_eq (hf_volume_pwrite (v, b, 4096, 0, 0), EIO);
  ck_assert_int_eq (hf_volume_pwrite (v, b, 4096, 0, HF_VOL_FUA), EIO);
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, 0), 0);
  ck_assert (memcmp (r, a, 4096) == 0);
  ck_assert_int_eq (hf_volume_close (v), 0);
  v = open_opts (s, &o);
  ck_assert_int_eq (hf_volume_pread (v, r, 4096, 0), 0);
  ck_assert (memcmp (r, a, 4096) == 0);
  ck_assert_int_eq (hf_volume_pwrite (v, b, 4096, 0, HF_VOL_FUA), 0);
  ck_assert_int_eq (hf_volume_close (v), 0);

  hf_objstore_close (s);
  free (wal);
  rm_tmpdir (wdir);
  rm_tmpdir (dir);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("volume");
  TCase *tc = tcase_create ("core");

  long_run = getenv ("HF_TEST_LONG") != NULL;
  quick = getenv ("HF_VOLUME_TEST_QUICK") != NULL;
  if (getenv ("HF_TEST_SEED"))
    seed_base = strtoull (getenv ("HF_TEST_SEED"), NULL, 10);
  trace = getenv ("HF_TEST_TRACE") != NULL;
  paranoid = getenv ("HF_TEST_PARANOID") != NULL;
  hf_log_set_sink (log_quiet);
  tcase_set_timeout (tc, long_run ? 7200 : 600);
  if (!model_half) {
    tcase_add_test (tc, test_basic);
    tcase_add_test (tc, test_corruption);
    tcase_add_test (tc, test_carried_crc);
    tcase_add_test (tc, test_compressed);
    tcase_add_test (tc, test_fast_level);
    tcase_add_test (tc, test_compressed_cold_read);
    tcase_add_test (tc, test_ftabs_bounded);
    tcase_add_test (tc, test_compressed_aligned);
    tcase_add_test (tc, test_time_travel);
    tcase_add_test (tc, test_orphan);
    tcase_add_test (tc, test_two_writers);
    tcase_add_test (tc, test_concurrent);
    tcase_add_test (tc, test_store_down);
    tcase_add_test (tc, test_wal);
    tcase_add_test (tc, test_size_limits);
    tcase_add_test (tc, test_clone_parent);
    tcase_add_test (tc, test_model_dir);
  } else {
    tcase_add_test (tc, test_model_fault);
    tcase_add_test (tc, test_model_wal);
    tcase_add_test (tc, test_model_wal_fault);
    tcase_add_test (tc, test_model_zstd);
  }
  suite_add_tcase (s, tc);
  return run_suite (s);
}
