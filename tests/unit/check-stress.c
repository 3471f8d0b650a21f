/* Multi-threaded stress test of lib/volume, checked against a model.
 *
 * One writable volume on the fault store (random delays up to 2 ms,
 * errors, timeouts and lost acknowledgements the volume must retry
 * through), small segments and checkpoint thresholds, a short lease.
 * At once, for HF_STRESS_SECONDS (default 3; longer until each thread
 * has done its work once):
 *   - STRESS_WRITERS writers, each owning a contiguous chunk of blocks,
 *     write runs of whole blocks (some FUA) and zero or trim some;
 *   - STRESS_READERS readers read random ranges across the chunks;
 *   - a flusher, a checkpointer and a GC that compacts through the
 *     volume (the GC's store has the delays but not the errors);
 * then the lease is lost: another holder takes a newer epoch, and the
 * volume must notice and refuse writes (EROFS) while everything goes on.
 *
 * The model: per block, the generation of the newest write started
 * (`started'), the newest acknowledged (`acked'), the newest zero or
 * trim started (`zeroed') and the newest known durable (`durable':
 * acknowledged before a flush began that succeeded, or written with
 * FUA).  Block b of write g holds a pattern derived from (b, g) that
 * names both, so a read of b is right only if it is
 *   - the pattern of some g with acked-before-the-read <= g <= started-
 *     after-the-read (whole: a torn or misplaced block fails), or
 *   - zeros, when the block's acked generation was a zero (or none) or
 *     a zero started since.
 * After the volume stops (fenced, closed), a new writer opens the store
 * and every block must be between its durable and its started
 * generation in the same sense; the new writer then writes, closes, and
 * fsck finds nothing wrong.  Any error before the lease is lost, and
 * anything but EROFS from writes after it, fails the test.
 *
 * HF_STRESS_SECONDS=N runs longer (make check-soak); HF_TEST_SEED=N
 * changes the fault store's seed.  Under ThreadSanitizer this is the
 * test that puts every volume thread to work at once.
 */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fsck.h"
#include "gc.h"
#include "lease.h"
#include "log.h"
#include "objstore.h"
#include "test-util.h"
#include "volume.h"

#define BS 4096u
#define NBLK 1024u                      /* 4 MiB volume */
#define STRESS_WRITERS 4
#define STRESS_READERS 4
#define CHUNK (NBLK / STRESS_WRITERS)   /* blocks per writer */
#define MAX_RUN 8                       /* blocks per write */

/* A generation with its kind: gen << 1 | 1 for a zero or trim. */
#define G_ZERO 1u
#define G_GEN(x) ((x) >> 1)

struct stress {
  struct hf_objstore *s;                /* I: the fault store */
  /* I: GC's own view of the directory, with delays but no errors: a GC
   * run ends at the first store error (nothing is lost, the next run
   * starts over; check-gc tests that), which would stop this test. */
  struct hf_objstore *gs;
  struct hf_volume *v;                  /* I */
  /* Per block; each written only by the block's owner (writer thread,
   * flusher for durable_flush), read by anyone: atomics. */
  uint64_t started[NBLK], acked[NBLK], zeroed[NBLK];
  uint64_t durable_fua[NBLK];           /* owner */
  uint64_t durable_flush[NBLK];         /* flusher */
  bool stop;                            /* atomic: main */
  bool lease_lost;                      /* atomic: main, before the theft */
  int err;                              /* atomic: first failure */
  char what[256];                       /* who failed (err's writer) */
  /* Counters, atomics. */
  uint64_t writes, zeros, reads, blocks_checked, flushes, checkpoints;
  uint64_t gc_runs, erofs;
};

static unsigned
stress_seconds (void)
{
  const char *e = getenv ("HF_STRESS_SECONDS");
  unsigned n = e ? (unsigned) atoi (e) : 0;

  return n ? n : 3;
}

static uint64_t
ld (const uint64_t *p)
{
  return __atomic_load_n (p, __ATOMIC_ACQUIRE);
}

static void
st (uint64_t *p, uint64_t x)
{
  __atomic_store_n (p, x, __ATOMIC_RELEASE);
}

static void
count (uint64_t *p, uint64_t n)
{
  __atomic_fetch_add (p, n, __ATOMIC_RELAXED);
}

static bool
going (struct stress *t)
{
  return !__atomic_load_n (&t->stop, __ATOMIC_ACQUIRE)
    && __atomic_load_n (&t->err, __ATOMIC_ACQUIRE) == 0;
}

static bool
lease_lost (struct stress *t)
{
  return __atomic_load_n (&t->lease_lost, __ATOMIC_ACQUIRE);
}

/* Record the first failure (with a message) and stop everyone. */
static void __attribute__ ((format (printf, 3, 4)))
stress_fail (struct stress *t, int err, const char *fmt, ...)
{
  static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
  int zero = 0;
  va_list ap;

  pthread_mutex_lock (&lock);
  if (__atomic_compare_exchange_n (&t->err, &zero, err ? err : EINVAL,
                                   false, __ATOMIC_ACQ_REL,
                                   __ATOMIC_ACQUIRE)) {
    va_start (ap, fmt);
    vsnprintf (t->what, sizeof t->what, fmt, ap);
    va_end (ap);
  }
  pthread_mutex_unlock (&lock);
}

/* Is r what this call may return now?  0 always; EROFS once the lease
 * is lost (the volume is fenced, or will be).  Anything else fails the
 * test.  Returns true to go on. */
static bool
allowed (struct stress *t, int r, const char *op)
{
  if (r == 0)
    return true;
  if (r == EROFS && lease_lost (t)) {
    count (&t->erofs, 1);
    return false;
  }
  stress_fail (t, r, "%s: %s%s", op, strerror (r),
        lease_lost (t) ? " (after the lease was lost)" : "");
  return false;
}

/* ---- Block contents ---- */

/* Block b as write generation g (>= 1) leaves it: (b, g), then bytes of
 * a xorshift stream seeded by both. */
static void
stamp (uint8_t *p, uint64_t b, uint64_t g)
{
  uint64_t x = (b + 1) * 0x9E3779B97F4A7C15ull ^ g * 0xBF58476D1CE4E5B9ull;
  size_t i;

  if (x == 0)
    x = 1;
  memcpy (p, &b, 8);
  memcpy (p + 8, &g, 8);
  for (i = 16; i < BS; i += 8) {
    uint64_t r = xorshift64 (&x);
    memcpy (p + i, &r, 8);
  }
}

static bool
all_zero (const uint8_t *p, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

/* Does block b's content p fit: a stamp of a generation in [lo, hi]
 * (lo, hi with kind bits), or zeros if lo is a zero (or nothing) or a
 * zero started after lo (zeroed > lo)?  On false, why holds the reason. */
static bool
block_fits (const uint8_t *p, uint64_t b, uint64_t lo, uint64_t hi,
            uint64_t zeroed, char *why, size_t whylen)
{
  uint8_t want[BS];
  uint64_t sb, sg;

  if (all_zero (p, BS)) {
    if (G_GEN (lo) == 0 || (lo & G_ZERO) || G_GEN (zeroed) > G_GEN (lo))
      return true;
    snprintf (why, whylen, "block %" PRIu64 " reads as zeros, but "
              "write %" PRIu64 " was acknowledged and no zero started since",
              b, G_GEN (lo));
    return false;
  }
  memcpy (&sb, p, 8);
  memcpy (&sg, p + 8, 8);
  if (sb != b || sg == 0) {
    snprintf (why, whylen, "block %" PRIu64 " holds block %" PRIu64
              "'s data (write %" PRIu64 ")", b, sb, sg);
    return false;
  }
  stamp (want, b, sg);
  if (memcmp (p, want, BS) != 0) {
    snprintf (why, whylen, "block %" PRIu64 " of write %" PRIu64
              " is torn", b, sg);
    return false;
  }
  if (sg < G_GEN (lo) || sg > G_GEN (hi)) {
    snprintf (why, whylen, "block %" PRIu64 " holds write %" PRIu64
              ", expected %" PRIu64 " to %" PRIu64, b, sg, G_GEN (lo),
              G_GEN (hi));
    return false;
  }
  return true;
}

/* ---- Threads ---- */

struct writer_arg {
  struct stress *t;
  unsigned id;
};

static void *
writer_thread (void *arg)
{
  struct writer_arg *a = arg;
  struct stress *t = a->t;
  uint64_t first = (uint64_t) a->id * CHUNK, gen = 0;
  uint8_t *buf = malloc ((size_t) MAX_RUN * BS);

  rng_state = 0x5157 + a->id;
  ck_assert (buf != NULL);
  while (going (t)) {
    unsigned n = 1 + (unsigned) rndn (MAX_RUN), k;
    uint64_t b0 = first + rndn (CHUNK - n + 1), g;
    bool zero = rndn (10) == 0, fua = rndn (20) == 0;
    int r;

    g = ++gen << 1 | (zero ? G_ZERO : 0);
    for (k = 0; k < n; k++) {
      st (&t->started[b0 + k], g);
      if (zero)
        st (&t->zeroed[b0 + k], g);
      else
        stamp (buf + (size_t) k * BS, b0 + k, gen);
    }
    if (zero && rndn (2))
      r = hf_volume_trim (t->v, (uint64_t) n * BS, b0 * BS,
                          fua ? HF_VOL_FUA : 0);
    else if (zero)
      r = hf_volume_zero (t->v, (uint64_t) n * BS, b0 * BS,
                          fua ? HF_VOL_FUA : 0);
    else
      r = hf_volume_pwrite (t->v, buf, (size_t) n * BS, b0 * BS,
                            fua ? HF_VOL_FUA : 0);
    if (!allowed (t, r, zero ? "zero/trim" : "pwrite"))
      break;
    for (k = 0; k < n; k++) {
      st (&t->acked[b0 + k], g);
      if (fua)
        st (&t->durable_fua[b0 + k], g);
    }
    count (zero ? &t->zeros : &t->writes, 1);
  }
  free (buf);
  return NULL;
}

static void *
reader_thread (void *arg)
{
  struct writer_arg *a = arg;
  struct stress *t = a->t;
  uint64_t lo[64];
  uint8_t *buf = malloc ((size_t) 64 * BS);
  char why[200];

  rng_state = 0x7ead + a->id;
  ck_assert (buf != NULL);
  while (going (t)) {
    unsigned n = 1 + (unsigned) rndn (64), k;
    uint64_t b0 = rndn (NBLK - n + 1);
    int r;

    for (k = 0; k < n; k++)
      lo[k] = ld (&t->acked[b0 + k]);
    r = hf_volume_pread (t->v, buf, (size_t) n * BS, b0 * BS);
    if (r) {
      stress_fail (t, r, "pread of blocks %" PRIu64 "+%u: %s", b0, n,
                   strerror (r));
      break;
    }
    for (k = 0; k < n; k++)
      if (!block_fits (buf + (size_t) k * BS, b0 + k, lo[k],
                       ld (&t->started[b0 + k]), ld (&t->zeroed[b0 + k]),
                       why, sizeof why)) {
        stress_fail (t, EILSEQ, "reader: %s", why);
        break;
      }
    count (&t->reads, 1);
    count (&t->blocks_checked, n);
  }
  free (buf);
  return NULL;
}

static void *
flusher_thread (void *arg)
{
  struct stress *t = arg;
  uint64_t *snap = malloc (sizeof t->acked);
  unsigned b;

  ck_assert (snap != NULL);
  while (going (t)) {
    int r;

    for (b = 0; b < NBLK; b++)
      snap[b] = ld (&t->acked[b]);
    r = hf_volume_flush (t->v);
    if (!allowed (t, r, "flush"))
      break;
    /* Everything acknowledged before the flush began is durable. */
    for (b = 0; b < NBLK; b++)
      if (G_GEN (snap[b]) > G_GEN (ld (&t->durable_flush[b])))
        st (&t->durable_flush[b], snap[b]);
    count (&t->flushes, 1);
    usleep (1000 * (1 + rndn (20)));
  }
  free (snap);
  return NULL;
}

static void *
checkpoint_thread (void *arg)
{
  struct stress *t = arg;

  while (going (t)) {
    usleep (1000 * (10 + rndn (60)));
    if (!allowed (t, hf_volume_checkpoint (t->v), "checkpoint"))
      break;
    count (&t->checkpoints, 1);
  }
  return NULL;
}

static void *
gc_thread (void *arg)
{
  struct stress *t = arg;
  struct hf_gc_options o = { .compact = true, .compact_min_gain = 1,
                             .compact_threshold = 0.9 };

  while (going (t)) {
    if (!allowed (t, hf_gc_run (t->gs, "", t->v, &o, NULL), "gc"))
      break;
    count (&t->gc_runs, 1);
    usleep (1000 * (5 + rndn (30)));
  }
  return NULL;
}

/* ---- The test ---- */

static const struct hf_volume_options stress_opts = {
  .segment_size = 64 * 1024,
  .flush_interval_ms = 20,
  .dirty_limit = 512 * 1024,
  .max_uploads = 3,
  .node_cache = 16,
  .checkpoint_entries = 64,
  .checkpoint_segments = 4,
  .lease_ttl_s = 3,                     /* renewed every second */
  .flush_timeout_ms = 60000,
};

static void
fsck_print (void *opaque, const char *object, uint64_t offset,
            const char *what)
{
  (void) opaque;
  fprintf (stderr, "fsck: %s offset %" PRIu64 ": %s\n", object, offset, what);
}

START_TEST (test_stress)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *d;
  struct stress *t = calloc (1, sizeof *t);
  struct hf_fault_config fc = {
    .seed = 1, .p_error = 0.02, .p_timeout = 0.01, .p_put_lost_ack = 0.03,
    .max_delay_us = 2000,
  };
  pthread_t wt[STRESS_WRITERS], rt[STRESS_READERS], ft, ct, gt;
  struct writer_arg wa[STRESS_WRITERS], ra[STRESS_READERS];
  struct hf_volume_options o = stress_opts;
  struct hf_volume_info info;
  struct hf_lease thief;
  double t0, secs = stress_seconds ();
  unsigned i, b;
  uint8_t *img;
  char why[200];
  int r;

  ck_assert (t != NULL);
  if (getenv ("HF_TEST_SEED"))
    fc.seed = strtoull (getenv ("HF_TEST_SEED"), NULL, 10);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &d), 0);
  ck_assert_int_eq (hf_objstore_fault_open (d, &fc, &t->s), 0);
  {
    struct hf_objstore *d2;
    struct hf_fault_config gfc = { .seed = fc.seed + 1,
                                   .max_delay_us = fc.max_delay_us };
    ck_assert_int_eq (hf_objstore_dir_open (dir, false, &d2), 0);
    ck_assert_int_eq (hf_objstore_fault_open (d2, &gfc, &t->gs), 0);
  }
  do
    r = hf_volume_create (t->s, "", (uint64_t) NBLK * BS, BS);
  while (r == EIO || r == ETIMEDOUT);
  ck_assert_msg (r == 0 || r == EEXIST, "create: %s", strerror (r));
  r = hf_volume_open (t->s, "", &o, &t->v);
  ck_assert_msg (r == 0, "open: %s (%s)", strerror (r), last_error);

  for (i = 0; i < STRESS_WRITERS; i++) {
    wa[i] = (struct writer_arg) { t, i };
    ck_assert_int_eq (pthread_create (&wt[i], NULL, writer_thread, &wa[i]),
                      0);
  }
  for (i = 0; i < STRESS_READERS; i++) {
    ra[i] = (struct writer_arg) { t, i };
    ck_assert_int_eq (pthread_create (&rt[i], NULL, reader_thread, &ra[i]),
                      0);
  }
  ck_assert_int_eq (pthread_create (&ft, NULL, flusher_thread, t), 0);
  ck_assert_int_eq (pthread_create (&ct, NULL, checkpoint_thread, t), 0);
  ck_assert_int_eq (pthread_create (&gt, NULL, gc_thread, t), 0);

  /* Everything at once, then the lease is lost under it all: after
   * HF_STRESS_SECONDS, and once every kind of thread has done its work
   * at least once (a slow machine or valgrind takes longer). */
  t0 = now ();
  while (going (t) && now () - t0 < 600
         && (now () - t0 < secs || ld (&t->gc_runs) == 0
             || ld (&t->checkpoints) == 0 || ld (&t->flushes) == 0
             || ld (&t->reads) == 0))
    usleep (20000);
  if (going (t)) {
    __atomic_store_n (&t->lease_lost, true, __ATOMIC_RELEASE);
    ck_assert_int_eq (hf_lease_init (&thief, d, "", 3), 0);
    r = hf_lease_acquire (&thief, false, true);
    ck_assert_msg (r == 0, "taking the lease: %s", strerror (r));
    /* The volume renews every ttl/3 = 1 s: it must notice well within
     * the ttl, and refuse writes from then on. */
    t0 = now ();
    do {
      usleep (20000);
      hf_volume_get_info (t->v, &info);
    } while (!info.fenced && now () - t0 < 30 && going (t));
    ck_assert_msg (info.fenced || !going (t),
                   "the volume did not notice the lost lease in 30 s");
    if (going (t)) {
      /* Fenced: a write now is refused. */
      uint8_t blk[BS];
      memset (blk, 0x33, sizeof blk);
      ck_assert_int_eq (hf_volume_pwrite (t->v, blk, BS, 0, 0), EROFS);
      usleep (200000);                /* everyone meets the fence */
    }
  }
  __atomic_store_n (&t->stop, true, __ATOMIC_RELEASE);
  for (i = 0; i < STRESS_WRITERS; i++)
    pthread_join (wt[i], NULL);
  for (i = 0; i < STRESS_READERS; i++)
    pthread_join (rt[i], NULL);
  pthread_join (ft, NULL);
  pthread_join (ct, NULL);
  pthread_join (gt, NULL);
  fprintf (stderr, "stress: %.0f s: %" PRIu64 " writes, %" PRIu64
           " zeros/trims, %" PRIu64 " reads (%" PRIu64 " blocks checked), %"
           PRIu64 " flushes, %" PRIu64 " checkpoints, %" PRIu64
           " GC runs, %" PRIu64 " faults injected, %" PRIu64
           " calls refused after the lease was lost\n",
           secs, t->writes, t->zeros, t->reads, t->blocks_checked,
           t->flushes, t->checkpoints, t->gc_runs,
           hf_objstore_fault_injected (t->s), t->erofs);
  ck_assert_msg (t->err == 0, "%s", t->what);
  ck_assert_uint_gt (t->writes, 0);
  ck_assert_uint_gt (t->reads, 0);
  ck_assert_uint_gt (t->flushes, 0);
  ck_assert_uint_gt (t->checkpoints, 0);
  ck_assert_uint_gt (t->gc_runs, 0);
  ck_assert_uint_gt (hf_objstore_fault_injected (t->s), 0);

  /* The fenced volume cannot commit what it still holds. */
  r = hf_volume_close (t->v);
  ck_assert_msg (r == 0 || r == EROFS, "close: %s", strerror (r));

  /* A new writer sees every durable write (or a later one). */
  o.break_lease = true;
  r = hf_volume_open (t->s, "", &o, &t->v);
  ck_assert_msg (r == 0, "reopen: %s (%s)", strerror (r), last_error);
  img = malloc ((size_t) NBLK * BS);
  ck_assert (img != NULL);
  ck_assert_int_eq (hf_volume_pread (t->v, img, (size_t) NBLK * BS, 0), 0);
  for (b = 0; b < NBLK; b++) {
    uint64_t dur = t->durable_flush[b];
    if (G_GEN (t->durable_fua[b]) > G_GEN (dur))
      dur = t->durable_fua[b];
    ck_assert_msg (block_fits (img + (size_t) b * BS, b, dur, t->started[b],
                               t->zeroed[b], why, sizeof why),
                   "after reopen: %s (durable: write %" PRIu64 ")", why,
                   G_GEN (dur));
  }
  /* It writes, and what it wrote is there after a clean close. */
  for (b = 0; b < NBLK; b += 7)
    stamp (img + (size_t) b * BS, b, 1u << 30);
  ck_assert_int_eq (hf_volume_pwrite (t->v, img, (size_t) NBLK * BS, 0, 0),
                    0);
  ck_assert_int_eq (hf_volume_close (t->v), 0);
  o.break_lease = false;
  o.readonly = true;
  ck_assert_int_eq (hf_volume_open (t->s, "", &o, &t->v), 0);
  {
    uint8_t *got = malloc ((size_t) NBLK * BS);
    ck_assert (got != NULL);
    ck_assert_int_eq (hf_volume_pread (t->v, got, (size_t) NBLK * BS, 0), 0);
    ck_assert (memcmp (got, img, (size_t) NBLK * BS) == 0);
    free (got);
  }
  ck_assert_int_eq (hf_volume_close (t->v), 0);
  {
    struct hf_fsck_options fo = { .fn = fsck_print };
    struct hf_fsck_report fr;
    ck_assert_int_eq (hf_fsck_run (d, "", &fo, &fr), 0);
    ck_assert_uint_eq (fr.problems, 0);
  }
  free (img);
  hf_objstore_close (t->gs);
  hf_objstore_close (t->s);
  free (t);
  rm_tmpdir (dir);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("stress");
  TCase *tc = tcase_create ("stress");

  hf_log_set_sink (log_capture);
  tcase_set_timeout (tc, 900 + 2 * stress_seconds ());
  tcase_add_test (tc, test_stress);
  suite_add_tcase (s, tc);
  return run_suite (s);
}
