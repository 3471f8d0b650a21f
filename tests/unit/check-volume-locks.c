/* Unit tests for the volume's lock rules (lib/volume-int.h):
 *
 *   - a *_locked function called without v->lock stops the program
 *     (the assertion that keeps the suffix's promise);
 *   - a checkpoint merge over a cold node cache does not hold up reads:
 *     its node reads from the store happen under the shared tree lock,
 *     so a read that needs the tree completes while the merge is still
 *     fetching (a store whose GETs are slow makes the merge long);
 *   - tree_lock prefers writers: once a writer waits, a new reader
 *     waits too (glibc's default would let readers starve it);
 *   - every condition variable of the volume and its log is made on
 *     CLOCK_MONOTONIC, and every timed wait's deadline is monotonic
 *     (pthread_cond_init and pthread_cond_timedwait are wrapped with
 *     -Wl,--wrap, tests/Makefile.am);
 *   - a checkpoint merge many times larger than the node cache makes no
 *     store GET while it holds tree_lock exclusively;
 *   - rollback reads the older point with no tree lock (a read goes on
 *     while its store requests are held), installs the point's image
 *     (checked against a model), and a failed read changes nothing.
 */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "objstore.h"
#include "test-util.h"
#include "volume-int.h"
#include "volume.h"
#include "wal-int.h"

#define BS 512

/* ---- A store whose GETs take slow_us each while slow is set ---- */

static struct hf_objstore *slow_inner;
static atomic_bool slow;
static atomic_uint slow_gets;           /* GETs served while slow */
static unsigned slow_us = 20000;

/* The gate: one thread's store requests (gate_thread's, once it has
 * listed: rollback's read phase lists the segments, then GETs their
 * metadata) stop until the test opens it, or fail with EACCES (not
 * retried) while gate_fail is set. */
static pthread_mutex_t gate_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t gate_cv = PTHREAD_COND_INITIALIZER;
static pthread_t gate_thread;
static bool gate_armed;         /* gate_lock: gate_thread is set */
static bool gate_shut;          /* gate_lock: gate_thread has listed */
static bool gate_open;          /* gate_lock */
static bool gate_fail;          /* gate_lock */
static unsigned gate_waiting;   /* gate_lock: requests held */

static int
gate (bool list)
{
  int r = 0;

  pthread_mutex_lock (&gate_lock);
  if (gate_armed && pthread_equal (pthread_self (), gate_thread)) {
    if (list)
      gate_shut = true;
    if (gate_shut && gate_fail)
      r = EACCES;
    else if (gate_shut) {
      gate_waiting++;
      pthread_cond_broadcast (&gate_cv);
      while (!gate_open)
        pthread_cond_wait (&gate_cv, &gate_lock);
      gate_waiting--;
    }
  }
  pthread_mutex_unlock (&gate_lock);
  return r;
}

/* GETs made by a thread holding some volume's tree_lock exclusively
 * (volume-int.h, hf_vol_tree_writer), and all GETs. */
static atomic_uint excl_gets, all_gets;

static void
count_get (void)
{
  atomic_fetch_add (&all_gets, 1);
  if (hf_vol_tree_writer != NULL)
    atomic_fetch_add (&excl_gets, 1);
}

/* The hold: while slow, the hold_at-th GET stops until the test sets
 * hold_open (test_reads_during_merge holds the merge in the middle of
 * its node reads).  0: no hold. */
static unsigned hold_at;        /* gate_lock */
static bool hold_open;          /* gate_lock */
static bool hold_held;          /* gate_lock: a GET is held */

static void
hold (unsigned n)
{
  pthread_mutex_lock (&gate_lock);
  if (hold_at != 0 && n == hold_at) {
    hold_held = true;
    pthread_cond_broadcast (&gate_cv);
    while (!hold_open)
      pthread_cond_wait (&gate_cv, &gate_lock);
    hold_held = false;
  }
  pthread_mutex_unlock (&gate_lock);
}

static int
slow_get (struct hf_objstore *s, const char *key, uint64_t off, size_t len,
          void *buf, size_t *got)
{
  int r = gate (false);

  count_get ();
  if (r)
    return r;
  if (atomic_load (&slow)) {
    usleep (slow_us);
    hold (atomic_fetch_add (&slow_gets, 1) + 1);
  }
  return hf_objstore_get (slow_inner, key, off, len, buf, got);
}

static int
slow_get_all (struct hf_objstore *s, const char *key, size_t max,
              void **data, size_t *len)
{
  int r = gate (false);

  count_get ();
  if (r)
    return r;
  return hf_objstore_get_all (slow_inner, key, max, data, len);
}

static int
slow_head (struct hf_objstore *s, const char *key,
           struct hf_objstore_info *info)
{
  return hf_objstore_head (slow_inner, key, info);
}

/* Segment PUTs failing (test_flush_retries_upload_under_way): with
 * put_down they fail with EIO; with put_hold one waits until put_hold
 * is cleared and then fails (the store was down when it was sent). */
static bool put_down;           /* gate_lock */
static bool put_hold;           /* gate_lock */
static bool put_held;           /* gate_lock: a PUT waits in put_hold */
static unsigned put_fails;      /* gate_lock: segment PUTs failed */

/* The gate_lock fields the tests wait on, read together under it. */
struct gate_snap {
  unsigned gate_waiting, put_fails;
  bool hold_held, put_held;
};

static struct gate_snap
gate_now (void)
{
  struct gate_snap g;

  pthread_mutex_lock (&gate_lock);
  g.gate_waiting = gate_waiting;
  g.put_fails = put_fails;
  g.hold_held = hold_held;
  g.put_held = put_held;
  pthread_mutex_unlock (&gate_lock);
  return g;
}

static int
slow_put (struct hf_objstore *s, const char *key, const void *data,
          size_t len, unsigned flags, const atomic_bool *cancel)
{
  bool fail = false;

  if (strncmp (key, "seg/", 4) == 0) {
    pthread_mutex_lock (&gate_lock);
    if (put_hold) {
      put_held = true;
      pthread_cond_broadcast (&gate_cv);
      while (put_hold)
        pthread_cond_wait (&gate_cv, &gate_lock);
      put_held = false;
      fail = true;
    }
    else
      fail = put_down;
    if (fail) {
      put_fails++;
      pthread_cond_broadcast (&gate_cv);
    }
    pthread_mutex_unlock (&gate_lock);
  }
  if (fail)
    return EIO;
  return hf_objstore_put_cancel (slow_inner, key, data, len, flags, cancel);
}

static int
slow_del (struct hf_objstore *s, const char *key)
{
  return hf_objstore_delete (slow_inner, key);
}

static int
slow_delete_many (struct hf_objstore *s, const char *const *keys, size_t n)
{
  return hf_objstore_delete_many (slow_inner, keys, n);
}

static int
slow_list (struct hf_objstore *s, const char *prefix,
           const char *start_after, hf_objstore_list_fn fn, void *opaque)
{
  int r = gate (true);

  return r ? r : hf_objstore_list (slow_inner, prefix, start_after, fn,
                                   opaque);
}

static const char *
slow_describe (struct hf_objstore *s)
{
  return "slow";
}

static void
slow_close (struct hf_objstore *s)
{
}

static const struct hf_objstore_ops slow_ops = {
  .name = "slow", .get = slow_get, .get_all = slow_get_all,
  .head = slow_head, .put = slow_put, .del = slow_del,
  .delete_many = slow_delete_many, .list = slow_list,
  .describe = slow_describe, .close = slow_close,
};

static struct hf_objstore slow_store = { .ops = &slow_ops };

static void
fill (uint8_t *p, uint64_t lba, unsigned gen)
{
  size_t i;

  for (i = 0; i < BS; i++)
    p[i] = (uint8_t) (lba * 13 + gen * 101 + i + 1);
}

/* ---- Condition variables, as the library makes and waits on them ----
 *
 * Every pthread_cond_init of the process is recorded with the clock of
 * its attribute (CLOCK_REALTIME without one); every timed wait is
 * checked: its condition variable must be one recorded as monotonic,
 * and its deadline near the monotonic clock's now (a wall-clock
 * deadline is decades away from it). */

#define NCONDS 256

static pthread_mutex_t conds_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
  const pthread_cond_t *cv;
  clockid_t clock;
} conds[NCONDS];
static unsigned nconds;
static unsigned timed_waits, timed_bad;
static char timed_why[256];

extern int __real_pthread_cond_init (pthread_cond_t *cv,
                                     const pthread_condattr_t *a);
extern int __wrap_pthread_cond_init (pthread_cond_t *cv,
                                     const pthread_condattr_t *a);
extern int __real_pthread_cond_timedwait (pthread_cond_t *cv,
                                          pthread_mutex_t *m,
                                          const struct timespec *ts);
extern int __wrap_pthread_cond_timedwait (pthread_cond_t *cv,
                                          pthread_mutex_t *m,
                                          const struct timespec *ts);

int
__wrap_pthread_cond_init (pthread_cond_t *cv, const pthread_condattr_t *a)
{
  clockid_t c = CLOCK_REALTIME;
  unsigned i;

  if (a)
    ck_assert_int_eq (pthread_condattr_getclock (a, &c), 0);
  pthread_mutex_lock (&conds_lock);
  for (i = 0; i < nconds && conds[i].cv != cv; i++)
    ;
  if (i < NCONDS) {
    conds[i].cv = cv;
    conds[i].clock = c;
    if (i == nconds)
      nconds++;
  }
  pthread_mutex_unlock (&conds_lock);
  return __real_pthread_cond_init (cv, a);
}

/* The clock cv was made with, or -1 if it was not seen. */
static clockid_t
cond_clock (const pthread_cond_t *cv)
{
  clockid_t c = (clockid_t) -1;
  unsigned i;

  pthread_mutex_lock (&conds_lock);
  for (i = 0; i < nconds; i++)
    if (conds[i].cv == cv)
      c = conds[i].clock;
  pthread_mutex_unlock (&conds_lock);
  return c;
}

int
__wrap_pthread_cond_timedwait (pthread_cond_t *cv, pthread_mutex_t *m,
                               const struct timespec *ts)
{
  struct timespec mono;
  double d;
  clockid_t c = cond_clock (cv);

  clock_gettime (CLOCK_MONOTONIC, &mono);
  d = (double) (ts->tv_sec - mono.tv_sec) +
    (double) (ts->tv_nsec - mono.tv_nsec) / 1e9;
  pthread_mutex_lock (&conds_lock);
  timed_waits++;
  /* A deadline is at most an hour ahead (the volume wakes at least
   * every second) and not more than a minute behind (the caller
   * computed it just now, give or take a loaded machine). */
  if (c != CLOCK_MONOTONIC || d < -60 || d > 3600) {
    if (timed_bad++ == 0)
      snprintf (timed_why, sizeof timed_why, "a timed wait on a condition "
                "variable made with clock %d has its deadline %.0f s from "
                "the monotonic clock's now", (int) c, d);
  }
  pthread_mutex_unlock (&conds_lock);
  return __real_pthread_cond_timedwait (cv, m, ts);
}

/* ---- Tests ---- */

/* Calling a *_locked function without the lock aborts.  The abort ends
 * the forked test, so its directory is made and removed by an unchecked
 * fixture, in the parent. */
static char *asserts_dir;

static void
asserts_setup (void)
{
  asserts_dir = make_tmpdir ();
}

static void
asserts_teardown (void)
{
  rm_tmpdir (asserts_dir);
  asserts_dir = NULL;
}

START_TEST (test_locked_asserts)
{
  const char *dir = asserts_dir;
  struct hf_objstore *s;
  struct hf_volume *v;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, BS), 0);
  ck_assert_int_eq (hf_volume_open (s, "", NULL, &v), 0);
  hf_vol_lock (v);
  ck_assert_int_eq (hf_vol_write_err_locked (v), 0);    /* held: fine */
  hf_vol_unlock (v);
  hf_vol_write_err_locked (v);                          /* aborts */
  ck_abort_msg ("not reached");
}
END_TEST

struct ckpt_arg {
  struct hf_volume *v;
  int r;
  atomic_bool done;
};

static void *
ckpt_thread (void *arg)
{
  struct ckpt_arg *a = arg;

  a->r = hf_volume_checkpoint (a->v);
  atomic_store (&a->done, true);
  return NULL;
}

/* A read in a thread of its own, for the tests that hold the store at
 * the gate: done is set and gate_cv broadcast when it returns. */
struct read_arg {
  struct hf_volume *v;
  uint64_t lba;
  uint8_t buf[BS];
  int r;
  bool done;                    /* gate_lock */
};

static void *
read_thread (void *arg)
{
  struct read_arg *a = arg;

  a->r = hf_volume_pread (a->v, a->buf, BS, a->lba * BS);
  pthread_mutex_lock (&gate_lock);
  a->done = true;
  pthread_cond_broadcast (&gate_cv);
  pthread_mutex_unlock (&gate_lock);
  return NULL;
}

#define NMAP 40000              /* mapped blocks: a few hundred leaves */
#define NNEW 4000               /* blocks in the delta, across them */

START_TEST (test_reads_during_merge)
{
  char *dir = make_tmpdir ();
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .checkpoint_segments = 1000,
                                 .checkpoint_entries = 1 << 30,
                                 .node_cache = 16 };
  static uint8_t buf[64 * BS];
  uint8_t blk[BS], rd[BS];
  struct hf_volume *v;
  struct ckpt_arg ca = { 0 };
  static struct read_arg ra;
  pthread_t th, rth;
  bool held = false, read_done, still_held;
  unsigned total;
  double t0;
  uint64_t i, probe = 1;        /* odd lbas are never rewritten */
  uint64_t st = 7;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &slow_inner), 0);
  ck_assert_int_eq (hf_volume_create (&slow_store, "",
                                      (uint64_t) NMAP * 2 * BS, BS), 0);
  /* Every other block mapped, checkpointed at close. */
  ck_assert_int_eq (hf_volume_open (&slow_store, "", &o, &v), 0);
  for (i = 0; i < NMAP; i += 64) {
    unsigned k;
    for (k = 0; k < 64; k++)
      fill (buf + (size_t) k * BS, i + k, 0);
    ck_assert_int_eq (hf_volume_pwrite (v, buf, 64 * BS, i * BS, 0), 0);
  }
  ck_assert_int_eq (hf_volume_close (v), 0);

  /* Reopen with a cold, small node cache; rewrite even blocks spread
   * over the whole tree (they wait in the delta). */
  ck_assert_int_eq (hf_volume_open (&slow_store, "", &o, &v), 0);
  for (i = 0; i < NNEW; i++) {
    uint64_t lba = (xorshift64 (&st) % NMAP) & ~(uint64_t) 1;
    fill (blk, lba, 1);
    ck_assert_int_eq (hf_volume_pwrite (v, blk, BS, lba * BS, 0), 0);
  }
  ck_assert_int_eq (hf_volume_flush (v), 0);
  /* The probe's path is in memory: its read needs no store request. */
  ck_assert_int_eq (hf_volume_pread (v, rd, BS, probe * BS), 0);

  /* The merge is held in its 5th node read (a store GET); a read of
   * the probe then completes while it is held, or it waited for the
   * merge.  (Counted node reads, "the read done before half of them",
   * failed when the reading thread lost its CPU for a while.)  The
   * minute's bound only ends a test that would hang. */
  atomic_store (&slow_gets, 0);
  hold_at = 5;
  hold_open = false;
  atomic_store (&slow, true);
  ca.v = v;
  ck_assert_int_eq (pthread_create (&th, NULL, ckpt_thread, &ca), 0);
  WAIT_UNTIL ((held = gate_now ().hold_held) || atomic_load (&ca.done), 60,
              "the merge's 5th node read, or its end");
  ck_assert_msg (held, "the merge made fewer than 5 node reads");
  ra.v = v;
  ra.lba = probe;
  ck_assert_int_eq (pthread_create (&rth, NULL, read_thread, &ra), 0);
  t0 = now ();
  for (;;) {
    pthread_mutex_lock (&gate_lock);
    read_done = ra.done;
    pthread_mutex_unlock (&gate_lock);
    if (read_done || now () - t0 >= 60)
      break;
    usleep (1000);
  }
  pthread_mutex_lock (&gate_lock);
  read_done = ra.done;
  still_held = hold_held;
  hold_open = true;             /* let the merge (and a waiting read) go */
  pthread_cond_broadcast (&gate_cv);
  pthread_mutex_unlock (&gate_lock);
  join_within (rth, 120, "the probe's read");
  join_within (th, 120, "the checkpoint");
  total = atomic_load (&slow_gets);
  atomic_store (&slow, false);
  pthread_mutex_lock (&gate_lock);
  hold_at = 0;
  pthread_mutex_unlock (&gate_lock);
  ck_assert_int_eq (ca.r, 0);
  ck_assert_int_eq (ra.r, 0);
  if (getenv ("HF_TEST_VERBOSE"))
    fprintf (stderr, "merge node reads %u\n", total);
  ck_assert_msg (read_done && still_held,
                 "the read waited for the merge's node read");
  fill (blk, probe, 0);
  ck_assert_int_eq (memcmp (ra.buf, blk, BS), 0);
  /* The merge went on to read many nodes after the read. */
  ck_assert_uint_ge (total, 50);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (slow_inner);
  rm_tmpdir (dir);
}
END_TEST

/* tree_lock prefers writers: while a reader holds it and a writer
 * waits, a new reader is refused (tryrdlock: EBUSY).  With readers
 * preferred, the new reader gets in every time and a steady stream of
 * reads would starve the writer (the checkpoint, then the pipeline). */
struct prefer_arg {
  struct hf_volume *v;
  atomic_bool got;              /* writer: holds the lock */
  atomic_bool refused;          /* tryer: a new reader was refused */
};

static void *
prefer_writer (void *arg)
{
  struct prefer_arg *a = arg;

  ck_assert_int_eq (pthread_rwlock_wrlock (&a->v->tree_lock), 0);
  atomic_store (&a->got, true);
  pthread_rwlock_unlock (&a->v->tree_lock);
  return NULL;
}

static void *
prefer_tryer (void *arg)
{
  struct prefer_arg *a = arg;
  double t0 = now ();
  int r;

  /* Until the writer has queued, a new reader still gets in; once it
   * has, never again (the bound only ends a test of a wrong lock). */
  while (now () - t0 < 10) {
    r = pthread_rwlock_tryrdlock (&a->v->tree_lock);
    if (r == EBUSY) {
      atomic_store (&a->refused, true);
      break;
    }
    ck_assert_int_eq (r, 0);
    pthread_rwlock_unlock (&a->v->tree_lock);
    usleep (1000);
  }
  return NULL;
}

START_TEST (test_tree_lock_prefers_writers)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume *v;
  struct prefer_arg a = { 0 };
  pthread_t w, t;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, BS), 0);
  ck_assert_int_eq (hf_volume_open (s, "", NULL, &v), 0);
  a.v = v;
  ck_assert_int_eq (pthread_rwlock_rdlock (&v->tree_lock), 0);
  ck_assert_int_eq (pthread_create (&w, NULL, prefer_writer, &a), 0);
  ck_assert_int_eq (pthread_create (&t, NULL, prefer_tryer, &a), 0);
  join_within (t, 60, "the new readers");
  ck_assert (!atomic_load (&a.got));    /* the first reader holds it */
  pthread_rwlock_unlock (&v->tree_lock);
  join_within (w, 60, "the writer");
  ck_assert (atomic_load (&a.got));
  ck_assert_msg (atomic_load (&a.refused), "new readers kept getting "
                 "tree_lock while a writer waited: it prefers readers");
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* Every condition variable of the volume and of its write-ahead log is
 * on CLOCK_MONOTONIC, and the timed waits of a volume at work (its
 * threads, a flush) have monotonic deadlines. */
START_TEST (test_cond_monotonic)
{
  char *dir = make_tmpdir (), *wdir = make_tmpdir (), *wal;
  struct hf_objstore *s;
  struct hf_volume_options o = { .flush_interval_ms = 50 };
  struct hf_volume *v;
  uint8_t blk[BS];
  unsigned i, waits;

  ck_assert (asprintf (&wal, "%s/wal", wdir) > 0);
  o.wal_dir = wal;
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, BS), 0);
  ck_assert_int_eq (hf_volume_open (s, "", &o, &v), 0);
  ck_assert_ptr_nonnull (v->wal);
  {
    const struct {
      const char *name;
      const pthread_cond_t *cv;
    } cvs[] = {
      { "work_cv", &v->work_cv }, { "commit_cv", &v->commit_cv },
      { "room_cv", &v->room_cv }, { "ra_cv", &v->ra_cv },
      { "rp_cv", &v->rp_cv }, { "rp_done_cv", &v->rp_done_cv },
      { "wal space_cond", &v->wal->space_cond },
      { "wal rotate_cond", &v->wal->rotate_cond },
      { "wal sync_cond", &v->wal->sync_cond },
    };
    for (i = 0; i < sizeof cvs / sizeof cvs[0]; i++)
      ck_assert_msg (cond_clock (cvs[i].cv) == CLOCK_MONOTONIC,
                     "%s is made with clock %d, not CLOCK_MONOTONIC",
                     cvs[i].name, (int) cond_clock (cvs[i].cv));
  }
  /* Work: writes, the seal timer, uploads, a flush. */
  for (i = 0; i < 20; i++) {
    fill (blk, i, 0);
    ck_assert_int_eq (hf_volume_pwrite (v, blk, BS, (uint64_t) i * BS, 0),
                      0);
    usleep (10000);
  }
  ck_assert_int_eq (hf_volume_flush (v), 0);
  ck_assert_int_eq (hf_volume_close (v), 0);
  pthread_mutex_lock (&conds_lock);
  waits = timed_waits;
  pthread_mutex_unlock (&conds_lock);
  ck_assert_uint_gt (waits, 0);
  ck_assert_msg (timed_bad == 0, "%u of %u timed waits: %s", timed_bad,
                 waits, timed_why);
  hf_objstore_close (s);
  free (wal);
  rm_tmpdir (wdir);
  rm_tmpdir (dir);
}
END_TEST

/* A flush retries failed uploads at once instead of after their
 * backoff, also the upload that is under way when the flush begins and
 * fails after it (flush_gen): the store came back during the flush.
 * Before, that attempt's failure set a backoff the flush's reset had
 * missed (after seven failures 3.2 s, longer than a 300 ms flush
 * waits), and the flush failed with EIO with the store up: check-
 * volume's test_store_down on a loaded machine.  The attempt is held in
 * the store until the flush has begun; after its failure the segment
 * is due now (retry_at_us 0) or already sent again, never waiting out a
 * backoff.  (Read under the lock, not timed: with a flush timeout below
 * the backoff it was a race with the retry under valgrind.) */
struct flush_arg {
  struct hf_volume *v;
  int r;
};

static void *
flush_thread (void *arg)
{
  struct flush_arg *a = arg;

  a->r = hf_volume_flush (a->v);
  return NULL;
}

static uint64_t
flush_gen_now (struct hf_volume *v)
{
  uint64_t gen;

  hf_vol_lock (v);
  gen = v->flush_gen;
  hf_vol_unlock (v);
  return gen;
}

/* Whether the held attempt's failure has been handled (false while it
 * is still held or failing); then *due says whether the segment is due
 * now, sent again or landed, and *left how long its backoff has yet to
 * run otherwise. */
static bool
failure_handled (struct hf_volume *v, unsigned attempts, bool *due,
                 double *left)
{
  struct hf_vol_seg *sg;
  bool handled = true;

  hf_vol_lock (v);
  sg = v->sealed;
  if (sg == NULL || sg->state == HF_VSEG_LANDED ||
      (sg->state == HF_VSEG_UPLOADING && sg->attempts > attempts))
    *due = true;
  else if (sg->state == HF_VSEG_BUILT) {
    *due = sg->retry_at_us == 0;
    *left = (double) ((int64_t) sg->retry_at_us
                      - (int64_t) hf_clock_mono_us ()) / 1e6;
  }
  else
    handled = false;
  hf_vol_unlock (v);
  return handled;
}

START_TEST (test_flush_retries_upload_under_way)
{
  char *dir = make_tmpdir ();
  /* No lease renewal in the test's time. */
  struct hf_volume_options o = { .flush_interval_ms = 20,
                                 .lease_ttl_s = 600 };
  struct hf_volume *v;
  struct flush_arg fa;
  pthread_t th;
  uint8_t blk[BS];
  uint64_t gen0;
  bool due = false;
  double left = 0;
  unsigned fails, attempts;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &slow_inner), 0);
  ck_assert_int_eq (hf_volume_create (&slow_store, "", 1 << 20, BS), 0);
  ck_assert_int_eq (hf_volume_open (&slow_store, "", &o, &v), 0);
  /* The store is down: six failed attempts (1.6 s of backoff). */
  pthread_mutex_lock (&gate_lock);
  put_down = true;
  put_fails = 0;
  pthread_mutex_unlock (&gate_lock);
  fill (blk, 3, 0);
  ck_assert_int_eq (hf_volume_pwrite (v, blk, BS, 3 * BS, 0), 0);
  WAIT_UNTIL (gate_now ().put_fails >= 6, 60, "six failed uploads (%u so far)",
              gate_now ().put_fails);
  /* The next attempt waits in the store. */
  pthread_mutex_lock (&gate_lock);
  put_hold = true;
  pthread_mutex_unlock (&gate_lock);
  WAIT_UNTIL (gate_now ().put_held, 60, "an upload attempt after the backoff");
  /* A flush begins while it is held ... */
  hf_vol_lock (v);
  gen0 = v->flush_gen;
  ck_assert_ptr_nonnull (v->sealed);
  ck_assert_int_eq (v->sealed->state, HF_VSEG_UPLOADING);
  attempts = v->sealed->attempts;
  hf_vol_unlock (v);
  fa.v = v;
  ck_assert_int_eq (pthread_create (&th, NULL, flush_thread, &fa), 0);
  WAIT_UNTIL (flush_gen_now (v) != gen0, 60, "the flush to begin "
              "(flush_gen still %" PRIu64 ")", gen0);
  /* ... the store comes back, and the attempt sent before fails. */
  pthread_mutex_lock (&gate_lock);
  fails = put_fails;
  put_down = false;
  put_hold = false;
  pthread_cond_broadcast (&gate_cv);
  pthread_mutex_unlock (&gate_lock);
  /* Once the failure is handled: due now, sent again, or landed. */
  WAIT_UNTIL (failure_handled (v, attempts, &due, &left), 60,
              "the held upload to fail once released");
  join_within (th, 120, "the flush (its own timeout is 60 s)");
  ck_assert_msg (due, "the upload that failed during the flush waits "
                 "for its backoff (retry in %.1f s)", left);
  ck_assert_uint_eq (gate_now ().put_fails, fails + 1);
  ck_assert_msg (fa.r == 0, "the flush failed (%s) with the store back",
                 strerror (fa.r));
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (slow_inner);
  rm_tmpdir (dir);
}
END_TEST

/* A checkpoint merge far larger than the node cache (a trim of most of
 * a mapped volume, writes all over it), with a cold cache of 16 nodes:
 * the merge pins its nodes in batches of that size, and makes no store
 * GET while it holds tree_lock exclusively.  The volume then reads as
 * the model says, and again after a reopen. */
START_TEST (test_large_merge_no_get_under_lock)
{
  char *dir = make_tmpdir ();
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .checkpoint_segments = 1000,
                                 .checkpoint_entries = 1 << 30,
                                 .node_cache = 16 };
  static uint8_t buf[64 * BS], got[64 * BS];
  static int gen[NMAP];
  uint8_t blk[BS];
  struct hf_volume *v;
  unsigned pass, merge_gets;
  uint64_t i, k, st = 5;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &slow_inner), 0);
  ck_assert_int_eq (hf_volume_create (&slow_store, "",
                                      (uint64_t) NMAP * BS, BS), 0);
  ck_assert_int_eq (hf_volume_open (&slow_store, "", &o, &v), 0);
  for (i = 0; i < NMAP; i += 64) {
    for (k = 0; k < 64; k++) {
      fill (buf + k * BS, i + k, 0);
      gen[i + k] = 0;
    }
    ck_assert_int_eq (hf_volume_pwrite (v, buf, sizeof buf, i * BS, 0), 0);
  }
  ck_assert_int_eq (hf_volume_close (v), 0);

  /* Cold cache; a trim of most of the tree (some hundred leaves), then
   * writes across all of it, waiting in the delta. */
  ck_assert_int_eq (hf_volume_open (&slow_store, "", &o, &v), 0);
  ck_assert_int_eq (hf_volume_trim (v, (uint64_t) (NMAP - 4000) * BS,
                                    2000 * BS, 0), 0);
  for (i = 2000; i < NMAP - 2000; i++)   /* count, then offset */
    gen[i] = -1;
  ck_assert_int_eq (hf_volume_flush (v), 0);
  for (i = 0; i < 2000; i++) {
    uint64_t lba = xorshift64 (&st) % NMAP;
    fill (blk, lba, 1);
    ck_assert_int_eq (hf_volume_pwrite (v, blk, BS, lba * BS, 0), 0);
    gen[lba] = 1;
  }
  ck_assert_int_eq (hf_volume_flush (v), 0);
  atomic_store (&excl_gets, 0);
  atomic_store (&all_gets, 0);
  ck_assert_int_eq (hf_volume_checkpoint (v), 0);
  merge_gets = atomic_load (&all_gets);
  ck_assert_msg (atomic_load (&excl_gets) == 0, "%u of the checkpoint's %u "
                 "GETs were made under the exclusive tree lock",
                 atomic_load (&excl_gets), merge_gets);
  /* The merge did read the index, many times the node cache's worth. */
  ck_assert_uint_gt (merge_gets, 10 * 16);
  for (pass = 0; pass < 2; pass++) {
    for (i = 0; i < NMAP; i += 64) {
      ck_assert_int_eq (hf_volume_pread (v, got, sizeof got, i * BS), 0);
      for (k = 0; k < 64; k++) {
        if (gen[i + k] < 0)
          memset (blk, 0, BS);
        else
          fill (blk, i + k, (unsigned) gen[i + k]);
        ck_assert_msg (memcmp (got + k * BS, blk, BS) == 0,
                       "block %" PRIu64 " differs from the model (pass %u)",
                       i + k, pass);
      }
    }
    ck_assert_int_eq (hf_volume_close (v), 0);
    if (pass == 0)
      ck_assert_int_eq (hf_volume_open (&slow_store, "", &o, &v), 0);
  }

  /* Touching the index (GC's compaction of index nodes) copies a path
   * under the exclusive lock too: from a cold cache, its node reads
   * happen before. */
  ck_assert_int_eq (hf_volume_open (&slow_store, "", &o, &v), 0);
  atomic_store (&excl_gets, 0);
  atomic_store (&all_gets, 0);
  for (i = 0; i < 20; i++)
    ck_assert_int_eq (hf_volume_touch_index (v, xorshift64 (&st) % NMAP), 0);
  ck_assert_uint_gt (atomic_load (&all_gets), 0);
  ck_assert_msg (atomic_load (&excl_gets) == 0, "%u of touch_index's %u "
                 "GETs were made under the exclusive tree lock",
                 atomic_load (&excl_gets), atomic_load (&all_gets));
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (slow_inner);
  rm_tmpdir (dir);
}
END_TEST

/* ---- Rollback ---- */

#define RB_BLOCKS 256

/* The image the model says the volume holds: block i is fill (i,
 * gen[i]), or zeros for gen[i] < 0. */
static void
check_image (struct hf_volume *v, const int *gen, const char *when)
{
  static uint8_t got[RB_BLOCKS * BS];
  uint8_t want[BS];
  unsigned i;

  ck_assert_int_eq (hf_volume_pread (v, got, sizeof got, 0), 0);
  for (i = 0; i < RB_BLOCKS; i++) {
    if (gen[i] < 0)
      memset (want, 0, BS);
    else
      fill (want, i, (unsigned) gen[i]);
    ck_assert_msg (memcmp (got + (size_t) i * BS, want, BS) == 0,
                   "%s: block %u differs from the model (generation %d)",
                   when, i, gen[i]);
  }
}

/* Write generation g to blocks [lo, hi) in v and the model. */
static void
write_gen (struct hf_volume *v, int *gen, unsigned lo, unsigned hi, int g)
{
  uint8_t blk[BS];
  unsigned i;

  for (i = lo; i < hi; i++) {
    fill (blk, i, (unsigned) g);
    ck_assert_int_eq (hf_volume_pwrite (v, blk, BS, (uint64_t) i * BS, 0),
                      0);
    gen[i] = g;
  }
}

/* A volume with two points: P (generation 0 on every block, a
 * checkpoint: reads of it go through the tree), then the head
 * (generation 1 on the first half, in the delta). */
static void
rollback_setup (struct hf_volume **vp, int *gen_p, int *gen_head,
                uint64_t *p)
{
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX };
  struct hf_volume_info vi;
  struct hf_volume *v;
  unsigned i;

  ck_assert_int_eq (hf_volume_create (&slow_store, "",
                                      (uint64_t) RB_BLOCKS * BS, BS), 0);
  ck_assert_int_eq (hf_volume_open (&slow_store, "", &o, &v), 0);
  for (i = 0; i < RB_BLOCKS; i++)
    gen_p[i] = -1;
  write_gen (v, gen_p, 0, RB_BLOCKS, 0);
  ck_assert_int_eq (hf_volume_checkpoint (v), 0);
  hf_volume_get_info (v, &vi);
  *p = vi.head_seq;
  memcpy (gen_head, gen_p, RB_BLOCKS * sizeof *gen_p);
  write_gen (v, gen_head, 0, RB_BLOCKS / 2, 1);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  hf_volume_get_info (v, &vi);
  ck_assert_uint_gt (vi.head_seq, *p);
  check_image (v, gen_head, "before the rollback");
  *vp = v;
}

struct rb_arg {
  struct hf_volume *v;
  uint64_t seq;
  int r;
  atomic_bool done;
};

static void *
rb_thread (void *arg)
{
  struct rb_arg *a = arg;

  pthread_mutex_lock (&gate_lock);
  gate_thread = pthread_self ();
  gate_armed = true;
  pthread_mutex_unlock (&gate_lock);
  a->r = hf_volume_rollback (a->v, a->seq, NULL);
  atomic_store (&a->done, true);
  pthread_mutex_lock (&gate_lock);
  gate_armed = false;
  pthread_cond_broadcast (&gate_cv);
  pthread_mutex_unlock (&gate_lock);
  return NULL;
}

/* While rollback reads the older point from the store (its requests
 * held at the gate), a read whose index path is in memory completes:
 * the read phase holds no tree lock.  (Before, rollback read the point
 * under tree_lock held exclusively, and the read waited for the
 * store.)  Then the volume holds the point's image, before and after a
 * reopen, and writes go on on top of it. */
START_TEST (test_rollback_reads_go_on)
{
  char *dir = make_tmpdir ();
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX };
  struct hf_volume *v;
  struct rb_arg ra = { 0 };
  struct read_arg rd = { 0 };
  pthread_t rt, dt;
  static int gen_p[RB_BLOCKS], gen[RB_BLOCKS];
  uint64_t p;
  uint8_t want[BS];
  double t0;
  bool read_done;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &slow_inner), 0);
  rollback_setup (&v, gen_p, gen, &p);
  /* The probe (generation 0, in the tree) has its path in memory. */
  rd.v = v;
  rd.lba = RB_BLOCKS - 1;
  ck_assert_int_eq (hf_volume_pread (v, rd.buf, BS, rd.lba * BS), 0);

  ra.v = v;
  ra.seq = p;
  ck_assert_int_eq (pthread_create (&rt, NULL, rb_thread, &ra), 0);
  /* Wait until rollback's read phase is held at the gate. */
  WAIT_UNTIL (gate_now ().gate_waiting > 0 || atomic_load (&ra.done), 60,
              "rollback's store request at the gate, or its end");
  ck_assert_msg (!atomic_load (&ra.done), "rollback made no store request "
                 "after listing (r = %d)", ra.r);
  ck_assert_int_eq (pthread_create (&dt, NULL, read_thread, &rd), 0);
  /* The read needs nothing the gate holds; a read that waits for the
   * rollback waits until the gate opens, which is after this bound. */
  t0 = now ();
  pthread_mutex_lock (&gate_lock);
  while (!rd.done && now () - t0 < 20) {
    pthread_mutex_unlock (&gate_lock);
    usleep (10000);
    pthread_mutex_lock (&gate_lock);
  }
  read_done = rd.done;
  gate_open = true;
  pthread_cond_broadcast (&gate_cv);
  pthread_mutex_unlock (&gate_lock);
  join_within (dt, 120, "the read");
  join_within (rt, 120, "the rollback");
  ck_assert_msg (read_done, "a read of a block whose index is in memory "
                 "waited for rollback's store requests");
  ck_assert_int_eq (rd.r, 0);
  fill (want, rd.lba, 0);
  ck_assert_int_eq (memcmp (rd.buf, want, BS), 0);
  ck_assert_int_eq (ra.r, 0);

  check_image (v, gen_p, "after the rollback");
  memcpy (gen, gen_p, sizeof gen);
  write_gen (v, gen, RB_BLOCKS / 4, RB_BLOCKS / 2 + 8, 2);
  check_image (v, gen, "after writes on the rolled-back state");
  ck_assert_int_eq (hf_volume_close (v), 0);
  ck_assert_int_eq (hf_volume_open (&slow_store, "", &o, &v), 0);
  check_image (v, gen, "reopened after the rollback");
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (slow_inner);
  rm_tmpdir (dir);
}
END_TEST

/* A rollback whose read of the older point fails changes nothing: the
 * volume keeps its head's image and takes writes (before, it refused
 * everything until reopened). */
START_TEST (test_rollback_read_error)
{
  char *dir = make_tmpdir ();
  struct hf_volume *v;
  struct rb_arg ra = { 0 };
  pthread_t rt;
  static int gen_p[RB_BLOCKS], gen[RB_BLOCKS];
  uint64_t p;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &slow_inner), 0);
  rollback_setup (&v, gen_p, gen, &p);
  gate_fail = true;
  ra.v = v;
  ra.seq = p;
  ck_assert_int_eq (pthread_create (&rt, NULL, rb_thread, &ra), 0);
  join_within (rt, 120, "the rollback");
  ck_assert_int_eq (ra.r, EACCES);
  check_image (v, gen, "after a failed rollback");
  write_gen (v, gen, 3, 9, 3);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  check_image (v, gen, "after writes");
  /* And a rollback that can read works. */
  gate_fail = false;
  ck_assert_int_eq (hf_volume_rollback (v, p, NULL), 0);
  check_image (v, gen_p, "after the rollback");
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (slow_inner);
  rm_tmpdir (dir);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("volume-locks");
  TCase *tc = tcase_create ("core");
  TCase *ta = tcase_create ("asserts");

  hf_log_set_sink (log_verbose);
  tcase_set_timeout (tc, 300);
  tcase_add_unchecked_fixture (ta, asserts_setup, asserts_teardown);
  tcase_add_test_raise_signal (ta, test_locked_asserts, SIGABRT);
  suite_add_tcase (s, ta);
  tcase_add_test (tc, test_tree_lock_prefers_writers);
  tcase_add_test (tc, test_cond_monotonic);
  tcase_add_test (tc, test_reads_during_merge);
  tcase_add_test (tc, test_large_merge_no_get_under_lock);
  tcase_add_test (tc, test_rollback_reads_go_on);
  tcase_add_test (tc, test_rollback_read_error);
  tcase_add_test (tc, test_flush_retries_upload_under_way);
  suite_add_tcase (s, tc);
  return run_suite (s);
}
