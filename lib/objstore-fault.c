/* hyperfile: the fault-injection store (see objstore.h).
 *
 * A fault store wraps an inner store (which it owns and closes) and, per
 * operation, draws from a seeded PRNG to decide whether to fail it.  Tests
 * use it to drive the volume engine and the conformance suite through the
 * failures a real object store produces:
 *
 *   down            every operation fails with EIO (inner not called)
 *   p_error         EIO before calling inner
 *   p_timeout       ETIMEDOUT before calling inner
 *   p_put_lost_ack  put: inner put succeeds, then EIO is reported
 *   p_short_read    get/get_all: inner read succeeds, then EIO is reported
 *                   (a torn reply: the caller's buffer holds garbage)
 *   p_put_torn      put: a prefix of the data (torn_keep of it, or a
 *                   random part) is stored in inner, the store goes down,
 *                   EIO is reported (an interrupted PUT whose body the
 *                   store kept, s3rver-style; the writer is taken to have
 *                   died, so nothing it does later lands)
 *   torn_nth        the same for the torn_nth put whose key contains
 *                   torn_key; with torn_kill the process then SIGKILLs
 *                   itself (the plugin's HF_TEST_TORN_PUT crash hook)
 *   max_delay_us    a uniform random delay in [0, max_delay_us] before
 *                   every operation
 *   put_bw          puts share a link of put_bw bytes/s: each takes
 *                   the next len / put_bw of it after those before it
 *                   and waits until its share has passed (no random
 *                   draw: the same puts take the same time)
 *   hold_key        a put whose key contains it waits before reaching
 *                   inner until hf_objstore_fault_release (a writer
 *                   stalled mid-upload, deterministically)
 *
 * A put's cancel flag (hf_objstore_put_cancel) is read during its delay
 * and its hold, and passed on to inner: once raised, the put returns
 * ECANCELED and nothing lands.
 *
 * Determinism: every operation takes exactly HF_FAULT_DRAWS numbers from
 * the PRNG in one critical section, whatever its kind and whatever the
 * probabilities, so a single-threaded caller doing the same operations
 * with the same seed and configuration sees the same faults.  (With
 * several threads the interleaving, and so the sequence, is up to the
 * scheduler.)
 *
 * The fault store counts its own requests (one per operation, with the
 * final result, injected or not) on its own handle; the inner store keeps
 * counting what actually reached it.  Each injected fault logs one debug
 * line in area "fault" (-D hyperfile.fault=1): injected faults are not
 * store errors and are not logged as such.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "log.h"
#include "objstore.h"

/* PRNG values taken per operation (see the top comment). */
#define HF_FAULT_DRAWS 5

struct hf_fault {
  struct hf_objstore handle;    /* handle.priv points to this struct */
  struct hf_objstore *inner;    /* owned */
  char *desc;                   /* "fault(<inner description>)", owned */

  /* lock protects cfg (including cfg.down) and rng. */
  pthread_mutex_t lock;
  struct hf_fault_config cfg;
  uint64_t rng;                 /* splitmix64 state */
  uint64_t torn_seen;           /* puts that matched torn_key */
  pthread_cond_t hold_cv;       /* with lock: hold_key released */
  unsigned held;                /* puts waiting in their hold now */
  uint64_t bw_next_us;          /* when the put_bw link is next free
                                   (monotonic) */

  uint64_t injected;            /* atomic */
};

/* What one operation drew: uniform values in [0, 1) and a delay. */
struct hf_fault_draw {
  bool down;
  double u_error;
  double u_timeout;
  double u_after;               /* for p_put_lost_ack / p_short_read */
  double u_torn;                /* for p_put_torn; also the kept length */
  unsigned delay_us;
  double p_error, p_timeout, p_put_lost_ack, p_short_read, p_put_torn;
  double torn_keep;
  bool torn_now;                /* this put is the torn_nth */
  bool torn_kill;
};

static const char *const hf_fault_op_names[HF_OP__MAX] = {
  [HF_OP_GET] = "get", [HF_OP_HEAD] = "head", [HF_OP_PUT] = "put",
  [HF_OP_DELETE] = "delete", [HF_OP_LIST] = "list",
  [HF_OP_SESSION] = "session",
};

/* splitmix64 step; caller holds f->lock. */
static uint64_t
hf_fault_next (struct hf_fault *f)
{
  uint64_t z = (f->rng += 0x9E3779B97F4A7C15ull);

  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

/* Uniform double in [0, 1) from the top 53 bits; caller holds f->lock. */
static double
hf_fault_uniform (struct hf_fault *f)
{
  return (hf_fault_next (f) >> 11) * (1.0 / 9007199254740992.0);
}

/* Take this operation's draws and a snapshot of the configuration. */
static void
hf_fault_draw (struct hf_fault *f, struct hf_fault_draw *d)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&f->lock);
  uint64_t r;

  d->down = f->cfg.down;
  d->p_error = f->cfg.p_error;
  d->p_timeout = f->cfg.p_timeout;
  d->p_put_lost_ack = f->cfg.p_put_lost_ack;
  d->p_short_read = f->cfg.p_short_read;
  d->p_put_torn = f->cfg.p_put_torn;
  d->torn_keep = f->cfg.torn_keep;
  d->torn_kill = f->cfg.torn_kill;
  d->torn_now = false;
  d->u_error = hf_fault_uniform (f);
  d->u_timeout = hf_fault_uniform (f);
  d->u_after = hf_fault_uniform (f);
  d->u_torn = hf_fault_uniform (f);
  r = hf_fault_next (f);
  d->delay_us = f->cfg.max_delay_us
    ? (unsigned) (r % ((uint64_t) f->cfg.max_delay_us + 1)) : 0;
}

static void
hf_fault_note (struct hf_fault *f, enum hf_objstore_op op, const char *key,
               const char *what)
{
  __atomic_add_fetch (&f->injected, 1, __ATOMIC_RELAXED);
  hf_debug ("fault", "%s %s: injected %s", hf_fault_op_names[op],
            key ? key : "", what);
}

/* Run before every operation: delay, then maybe fail it.  Returns 0 to go
 * on and call inner, or the injected errno. */
static int hf_fault_check_draw (struct hf_fault *f, enum hf_objstore_op op,
                                const char *key,
                                const struct hf_fault_draw *d);

static int
hf_fault_before (struct hf_fault *f, enum hf_objstore_op op,
                 const char *key, struct hf_fault_draw *d)
{
  hf_fault_draw (f, d);
  if (d->delay_us)
    usleep (d->delay_us);
  return hf_fault_check_draw (f, op, key, d);
}

/* The faults an operation drew that fail it before it reaches inner. */
static int
hf_fault_check_draw (struct hf_fault *f, enum hf_objstore_op op,
                     const char *key, const struct hf_fault_draw *d)
{
  if (d->down) {
    hf_fault_note (f, op, key, "EIO (store down)");
    return EIO;
  }
  if (d->u_error < d->p_error) {
    hf_fault_note (f, op, key, "EIO");
    return EIO;
  }
  if (d->u_timeout < d->p_timeout) {
    hf_fault_note (f, op, key, "ETIMEDOUT");
    return ETIMEDOUT;
  }
  return 0;
}

static struct hf_fault *
hf_fault_of (struct hf_objstore *s)
{
  return s->priv;
}

static int
hf_fault_get (struct hf_objstore *s, const char *key, uint64_t offset,
              size_t len, void *buf, size_t *got)
{
  struct hf_fault *f = hf_fault_of (s);
  struct hf_fault_draw d;
  uint64_t t0 = hf_objstore_now_us ();
  size_t n = 0;
  int r;

  r = hf_fault_before (f, HF_OP_GET, key, &d);
  if (r == 0) {
    r = hf_objstore_get (f->inner, key, offset, len, buf, &n);
    if (r == 0 && n > 0 && d.u_after < d.p_short_read) {
      hf_fault_note (f, HF_OP_GET, key, "short read (EIO)");
      r = EIO;
    }
  }
  hf_objstore_count (s, HF_OP_GET, hf_objstore_now_us () - t0,
                     r == 0 ? n : 0, 0, r);
  if (r == 0)
    *got = n;
  return r;
}

static int
hf_fault_get_all (struct hf_objstore *s, const char *key, size_t max,
                  void **data, size_t *len)
{
  struct hf_fault *f = hf_fault_of (s);
  struct hf_fault_draw d;
  uint64_t t0 = hf_objstore_now_us ();
  void *p = NULL;
  size_t n = 0;
  int r;

  r = hf_fault_before (f, HF_OP_GET, key, &d);
  if (r == 0) {
    r = hf_objstore_get_all (f->inner, key, max, &p, &n);
    if (r == 0 && n > 0 && d.u_after < d.p_short_read) {
      hf_fault_note (f, HF_OP_GET, key, "short read (EIO)");
      free (p);
      r = EIO;
    }
  }
  hf_objstore_count (s, HF_OP_GET, hf_objstore_now_us () - t0,
                     r == 0 ? n : 0, 0, r);
  if (r == 0) {
    *data = p;
    *len = n;
  }
  return r;
}

static int
hf_fault_head (struct hf_objstore *s, const char *key,
               struct hf_objstore_info *info)
{
  struct hf_fault *f = hf_fault_of (s);
  struct hf_fault_draw d;
  uint64_t t0 = hf_objstore_now_us ();
  int r;

  r = hf_fault_before (f, HF_OP_HEAD, key, &d);
  if (r == 0)
    r = hf_objstore_head (f->inner, key, info);
  hf_objstore_count (s, HF_OP_HEAD, hf_objstore_now_us () - t0, 0, 0, r);
  return r;
}

/* A put's hf_fault_before, with its cancel flag read during the delay
 * (slept in slices) and the hold (hold_key), which ends when released
 * or cancelled. */
static int
hf_fault_before_put (struct hf_fault *f, const char *key, size_t len,
                     struct hf_fault_draw *d, const atomic_bool *cancel)
{
  uint64_t delay_us;
  int r;

  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&f->lock);
    /* Held: wait (the draws come after, so that a held put takes them
     * when it goes on, as an unheld one would). */
    if (f->cfg.hold_key && strstr (key, f->cfg.hold_key)) {
      f->held++;
      hf_debug ("fault", "put %s: held", key);
      while (f->cfg.hold_key && strstr (key, f->cfg.hold_key) &&
             !hf_objstore_cancelled (cancel)) {
        struct timespec ts;

        clock_gettime (CLOCK_REALTIME, &ts);
        ts.tv_nsec += HF_OBJSTORE_CANCEL_POLL_MS * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
          ts.tv_sec++;
          ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait (&f->hold_cv, &f->lock, &ts);
      }
      f->held--;
    }
  }
  if (hf_objstore_cancelled (cancel)) {
    hf_debug ("fault", "put %s: cancelled while held", key);
    return ECANCELED;
  }
  /* The delay, in slices, reading the flag between them. */
  hf_fault_draw (f, d);
  delay_us = d->delay_us;
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&f->lock);

    if (f->cfg.put_bw) {
      uint64_t now = hf_objstore_now_us (), start;

      start = f->bw_next_us > now ? f->bw_next_us : now;
      f->bw_next_us = start +
        (uint64_t) ((double) len * 1e6 / (double) f->cfg.put_bw);
      delay_us += f->bw_next_us - now;
    }
  }
  for (; delay_us > 0;) {
    uint64_t n = delay_us < HF_OBJSTORE_CANCEL_POLL_MS * 1000u
      ? delay_us : HF_OBJSTORE_CANCEL_POLL_MS * 1000u;

    if (hf_objstore_cancelled (cancel))
      return ECANCELED;
    usleep ((useconds_t) n);
    delay_us -= n;
  }
  d->delay_us = 0;
  r = hf_fault_check_draw (f, HF_OP_PUT, key, d);
  return r;
}

static int
hf_fault_put (struct hf_objstore *s, const char *key, const void *data,
              size_t len, unsigned flags, const atomic_bool *cancel)
{
  struct hf_fault *f = hf_fault_of (s);
  struct hf_fault_draw d;
  uint64_t t0 = hf_objstore_now_us ();
  int r;

  r = hf_fault_before_put (f, key, len, &d, cancel);
  if (r == 0) {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&f->lock);
    if (f->cfg.torn_nth &&
        (f->cfg.torn_key == NULL || strstr (key, f->cfg.torn_key)) &&
        ++f->torn_seen == f->cfg.torn_nth)
      d.torn_now = true;
  }
  if (r == 0 && len > 1 && (d.u_torn < d.p_put_torn || d.torn_now)) {
    /* u_torn / p_put_torn is uniform in [0, 1) again. */
    double frac = d.torn_keep > 0 ? d.torn_keep
      : d.torn_now ? d.u_torn : d.u_torn / d.p_put_torn;
    size_t keep = (size_t) (frac * (double) len);

    if (keep < 1)
      keep = 1;
    if (keep >= len)
      keep = len - 1;
    r = hf_objstore_put_cancel (f->inner, key, data, keep, flags, cancel);
    {
      ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&f->lock);
      f->cfg.down = true;
    }
    hf_fault_note (f, HF_OP_PUT, key, "torn put (a prefix stored, then the "
                   "store went down)");
    if (d.torn_kill) {
      hf_warn ("fault: %s: torn put of %zu of %zu bytes; killing the "
               "process (torn_kill)", key, keep, len);
      raise (SIGKILL);
    }
    r = EIO;
  }
  else if (r == 0) {
    r = hf_objstore_put_cancel (f->inner, key, data, len, flags, cancel);
    if (r == 0 && d.u_after < d.p_put_lost_ack) {
      hf_fault_note (f, HF_OP_PUT, key, "lost ack (EIO after the put)");
      r = EIO;
    }
  }
  hf_objstore_count (s, HF_OP_PUT, hf_objstore_now_us () - t0, 0,
                     r == 0 ? len : 0, r == ECANCELED ? 0 : r);
  return r;
}

static int
hf_fault_del (struct hf_objstore *s, const char *key)
{
  struct hf_fault *f = hf_fault_of (s);
  struct hf_fault_draw d;
  uint64_t t0 = hf_objstore_now_us ();
  int r;

  r = hf_fault_before (f, HF_OP_DELETE, key, &d);
  if (r == 0)
    r = hf_objstore_delete (f->inner, key);
  hf_objstore_count (s, HF_OP_DELETE, hf_objstore_now_us () - t0, 0, 0, r);
  return r;
}

static int
hf_fault_delete_many (struct hf_objstore *s, const char *const *keys,
                      size_t n)
{
  struct hf_fault *f = hf_fault_of (s);
  struct hf_fault_draw d;
  uint64_t t0 = hf_objstore_now_us ();
  int r;

  r = hf_fault_before (f, HF_OP_DELETE, keys[0], &d);
  if (r == 0)
    r = hf_objstore_delete_many (f->inner, keys, n);
  hf_objstore_count (s, HF_OP_DELETE, hf_objstore_now_us () - t0, 0, 0, r);
  return r;
}

static int
hf_fault_list (struct hf_objstore *s, const char *prefix,
               const char *start_after, hf_objstore_list_fn fn, void *opaque)
{
  struct hf_fault *f = hf_fault_of (s);
  struct hf_fault_draw d;
  uint64_t t0 = hf_objstore_now_us ();
  int r;

  r = hf_fault_before (f, HF_OP_LIST, prefix, &d);
  if (r == 0)
    r = hf_objstore_list (f->inner, prefix, start_after, fn, opaque);
  hf_objstore_count (s, HF_OP_LIST, hf_objstore_now_us () - t0, 0, 0, r);
  return r;
}

static const char *
hf_fault_describe (struct hf_objstore *s)
{
  return hf_fault_of (s)->desc;
}

static void
hf_fault_close (struct hf_objstore *s)
{
  struct hf_fault *f = hf_fault_of (s);

  hf_objstore_close (f->inner);
  pthread_cond_destroy (&f->hold_cv);
  pthread_mutex_destroy (&f->lock);
  free (f->desc);
  free (f);
}

static const struct hf_objstore_ops hf_fault_ops = {
  .name = "fault",
  .get = hf_fault_get,
  .get_all = hf_fault_get_all,
  .head = hf_fault_head,
  .put = hf_fault_put,
  .del = hf_fault_del,
  .delete_many = hf_fault_delete_many,
  .list = hf_fault_list,
  .describe = hf_fault_describe,
  .close = hf_fault_close,
};

/* Returns NULL for a store that is not a fault store. */
static struct hf_fault *
hf_fault_check (struct hf_objstore *s)
{
  if (s == NULL || s->ops != &hf_fault_ops) {
    hf_error ("fault store function called on a %s store",
              s ? s->ops->name : "NULL");
    return NULL;
  }
  return s->priv;
}

static bool
hf_fault_valid_p (double p)
{
  return p >= 0.0 && p <= 1.0;  /* false for NaN too */
}

static int
hf_fault_check_config (const struct hf_fault_config *cfg)
{
  if (cfg == NULL ||
      !hf_fault_valid_p (cfg->p_error) ||
      !hf_fault_valid_p (cfg->p_timeout) ||
      !hf_fault_valid_p (cfg->p_put_lost_ack) ||
      !hf_fault_valid_p (cfg->p_short_read) ||
      !hf_fault_valid_p (cfg->p_put_torn) ||
      !hf_fault_valid_p (cfg->torn_keep)) {
    hf_error ("fault store: probabilities must be between 0 and 1");
    return EINVAL;
  }
  return 0;
}

/* On success the fault store owns inner and *out is a new store the
 * caller owns; on error *out is unchanged and the caller still owns
 * inner. */
int
hf_objstore_fault_open (struct hf_objstore *inner,
                        const struct hf_fault_config *cfg,
                        struct hf_objstore **out)
{
  struct hf_fault *f;
  int r;

  if (inner == NULL)
    return EINVAL;
  if ((r = hf_fault_check_config (cfg)) != 0)
    return r;
  f = calloc (1, sizeof *f);
  if (f == NULL)
    return ENOMEM;
  if (asprintf (&f->desc, "fault(%s)", hf_objstore_describe (inner)) < 0) {
    f->desc = NULL;
    goto err_free;
  }
  if (pthread_mutex_init (&f->lock, NULL) != 0)
    goto err_desc;
  if (pthread_cond_init (&f->hold_cv, NULL) != 0) {
    pthread_mutex_destroy (&f->lock);
    goto err_desc;
  }
  f->cfg = *cfg;
  f->rng = cfg->seed;
  f->inner = inner;
  f->handle.ops = &hf_fault_ops;
  f->handle.priv = f;
  *out = &f->handle;
  return 0;

 err_desc:
  free (f->desc);
 err_free:
  free (f);
  return ENOMEM;
}

void
hf_objstore_fault_set_down (struct hf_objstore *s, bool down)
{
  struct hf_fault *f = hf_fault_check (s);

  if (f == NULL)
    return;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&f->lock);
  f->cfg.down = down;
}

/* Replaces the probabilities, delay and down flag; the PRNG keeps its
 * state (cfg->seed is ignored) so a test switching faults off and on
 * again does not replay the same sequence. */
void
hf_objstore_fault_set_config (struct hf_objstore *s,
                              const struct hf_fault_config *cfg)
{
  struct hf_fault *f = hf_fault_check (s);

  if (f == NULL || hf_fault_check_config (cfg) != 0)
    return;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&f->lock);
  uint64_t seed = f->cfg.seed;
  f->cfg = *cfg;
  f->cfg.seed = seed;
  pthread_cond_broadcast (&f->hold_cv);        /* hold_key may be gone */
}

unsigned
hf_objstore_fault_held (struct hf_objstore *s)
{
  struct hf_fault *f = hf_fault_check (s);

  if (f == NULL)
    return 0;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&f->lock);
  return f->held;
}

void
hf_objstore_fault_release (struct hf_objstore *s)
{
  struct hf_fault *f = hf_fault_check (s);

  if (f == NULL)
    return;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&f->lock);
  f->cfg.hold_key = NULL;
  pthread_cond_broadcast (&f->hold_cv);
}

uint64_t
hf_objstore_fault_injected (struct hf_objstore *s)
{
  struct hf_fault *f = hf_fault_check (s);

  return f ? __atomic_load_n (&f->injected, __ATOMIC_RELAXED) : 0;
}
