/* hyperfile: the writer lease and fencing (see volume-int.h for the
 * map).  The lease itself (objects, epochs, takeover) is lease.c.
 *
 * A writable open claims PREFIX "lease/" HEX16(~epoch) (lease.h,
 * format.h); the renewal thread here rewrites it every ttl/3 after
 * checking that no newer epoch exists.  close releases it.
 *
 * This file is the one place that decides "we are fenced": when a
 * renewal finds a newer epoch, or when a conditional PUT of a segment
 * says EEXIST and the object there is not our own earlier attempt
 * (another writer took the seq).  From then on every write fails with
 * EROFS, nothing more is uploaded, and a segment PUT under way is
 * called off (v->put_cancel): cut off before its last byte, it never
 * lands.
 *
 * Lock rule: v->fenced and lease_ok_us under v->lock; lease I/O with no
 * lock held.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "volume-int.h"

/* Fence this writer: log why (the first time) and wake everyone.
 * Caller holds v->lock. */
static void
hf_vol_fence_locked (struct hf_volume *v, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));

static void
hf_vol_fence_locked (struct hf_volume *v, const char *fmt, ...)
{
  va_list ap;

  HF_VOL_ASSERT_LOCKED (v);
  if (!v->fenced) {
    va_start (ap, fmt);
    hf_vlog (HF_LOG_ERROR, fmt, ap);
    va_end (ap);
  }
  v->fenced = true;
  /* A segment PUT under way stops (its uploader holds no lock): it
   * would land after the new writer started, and if first, take the
   * new writer's seq and stop it. */
  atomic_store_explicit (&v->put_cancel, true, memory_order_release);
  hf_vol_wake_all_locked (v);
}

bool
hf_vol_lease_stale_locked (struct hf_volume *v, uint64_t now_us)
{
  HF_VOL_ASSERT_LOCKED (v);
  return now_us - v->lease_ok_us > (uint64_t) v->o.lease_ttl_s * 2000000 / 3;
}

int
hf_vol_fence_before_put (struct hf_volume *v, bool stale)
{
  /* Renewals have been failing: before committing anything, make sure
   * nobody took the volume over meanwhile. */
  int r = stale ? hf_lease_check (&v->lease) : 0;

  /* Fenced meanwhile (a renewal found a newer epoch): start no upload.
   * One already under way cannot replace a segment the new writer
   * committed: it is one conditional PUT (objstore.h), whatever the
   * store does with conditions on multipart uploads. */
  if (r == 0) {
    hf_vol_lock (v);
    if (v->fenced)
      r = ECANCELED;
    hf_vol_unlock (v);
  }
  return r;
}

/* After a retried conditional PUT said EEXIST: is the object there an
 * earlier attempt of ours whose reply was lost?  The header holds our
 * timestamp, epoch and the CRC of every table; the length must be
 * whole too.  Returns 0 (ours, landed), EEXIST (another writer's), or
 * EIO to try again later: a read failed, or the object is our own
 * attempt cut short, whose body the store kept (the body of an
 * interrupted PUT), which is deleted first.  Taking such a prefix as
 * landed would commit a segment that recovery passes over (incomplete)
 * after its log records were released. */
static int
hf_vol_own_attempt (struct hf_volume *v, const char *key,
                    const struct hf_vol_seg *s)
{
  struct hf_objstore_info info;
  uint8_t hdr[HF_SH_SIZE];
  size_t got = 0;
  int r;

  r = hf_objstore_get_retry (v->store, key, 0, HF_SH_SIZE, hdr, &got);
  if (r == ENOENT)
    return EIO;                 /* gone again: try again */
  if (r)
    return r;
  if (got != HF_SH_SIZE || memcmp (hdr, s->obj, HF_SH_SIZE) != 0) {
    /* Shorter than a header: possibly our own prefix; the header cannot
     * say.  Only a whole header identical to ours makes it ours. */
    if (got < HF_SH_SIZE && memcmp (hdr, s->obj, got) == 0) {
      hf_warn ("volume: %s holds %zu bytes that begin our segment: an "
               "earlier attempt of ours cut short, kept by the store; "
               "deleting it and uploading again", key, got);
      r = hf_objstore_delete (v->store, key);
      return r ? r : EIO;
    }
    return EEXIST;
  }
  r = hf_objstore_head (v->store, key, &info);
  if (r == ENOENT)
    return EIO;
  if (r)
    return r;
  if (info.size == s->meta.h.object_size)
    return 0;
  if (info.size < s->meta.h.object_size) {
    hf_warn ("volume: %s holds %" PRIu64 " of our %" PRIu64 " bytes: an "
             "earlier attempt of ours cut short, kept by the store; "
             "deleting it and uploading again", key, info.size,
             s->meta.h.object_size);
    r = hf_objstore_delete (v->store, key);
    return r ? r : EIO;
  }
  return EEXIST;
}

int
hf_vol_fence_after_put (struct hf_volume *v, const char *key,
                        const struct hf_vol_seg *s, int r)
{
  if (r == EEXIST && s->attempts > 0)
    return hf_vol_own_attempt (v, key, s);
  return r;
}

void
hf_vol_fence_taken_over_locked (struct hf_volume *v, const char *key)
{
  HF_VOL_ASSERT_LOCKED (v);
  hf_vol_fence_locked (v, "volume: segment %s already exists: another "
                       "writer has taken over this volume (our lease "
                       "epoch %" PRIu64 "); this writer is fenced and "
                       "refuses further writes", key, v->lease.epoch);
}

/* What the next lease write records as committed (format.h, "Writer
 * lease"): the head, never less than what the lease already says. */
void
hf_vol_lease_note_head_locked (struct hf_volume *v)
{
  HF_VOL_ASSERT_LOCKED (v);
  if (v->head_seq > v->lease.committed_seq)
    v->lease.committed_seq = v->head_seq;
}

void *
hf_vol_lease_thread (void *arg)
{
  struct hf_volume *v = arg;
  uint64_t period = (uint64_t) v->o.lease_ttl_s * 1000000 / 3;

  hf_vol_lock (v);
  for (;;) {
    uint64_t until = hf_clock_mono_us () + period;
    struct hf_lease_info l;
    int r;

    while (!v->stop && hf_clock_mono_us () < until)
      hf_vol_wait (v, &v->work_cv, until);
    if (v->stop || v->fenced)
      break;
    hf_vol_lease_note_head_locked (v);
    hf_vol_unlock (v);
    r = hf_lease_renew (&v->lease, &l);
    if (r == EEXIST) {
      hf_vol_lock (v);
      hf_vol_fence_locked (v, "volume: writer lease epoch %" PRIu64
                           " taken by \"%s\" (ours %" PRIu64 "): this "
                           "writer is fenced and refuses further writes",
                           l.epoch, l.holder, v->lease.epoch);
      break;
    }
    if (r)
      hf_warn ("volume: renewing the writer lease: %s", strerror (r));
    hf_vol_lock (v);
    if (r == 0) {
      v->lease_ok_us = hf_clock_mono_us ();
      v->st.lease_renewals++;
      v->st.lease_renewed_ns = hf_clock_wall_ns ();
    }
    else
      v->st.lease_renew_failures++;
  }
  hf_vol_unlock (v);
  return NULL;
}
