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
 * Lock rule: v->fenced and lease_ok_us under v->lock; writes of our
 * lease object under lease_io_lock (which orders the renewal thread and
 * the records of commits), with v->lock not held.
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
 * lease"): the head, never less than what the lease already says.
 * Caller holds lease_io_lock (or is alone: open, close) and v->lock. */
void
hf_vol_lease_note_head_locked (struct hf_volume *v)
{
  HF_VOL_ASSERT_LOCKED (v);
  if (v->head_seq > v->lease.committed_seq)
    v->lease.committed_seq = v->head_seq;
}

/* ---- Recording the head ----
 *
 * The lease's ls_committed_seq is how an open tells "the newest
 * segments were deleted or lost" from "never committed" (recovery
 * refuses the first, ESTALE).  Written only at renewals (every ttl/3),
 * it missed the head of a writer killed between a commit and its next
 * renewal: that segment deleted, or cut short (which reads as an upload
 * that never landed), the volume opened one point older, silently.  So
 * every commit is recorded at once: the uploader that committed
 * rewrites our lease object (one small PUT per segment, no LIST), and
 *   - without a log, a flush (which waits for the commit) also waits
 *     for that record (lease_rec_tried), so a flushed write is in a
 *     segment the lease names before the client hears of it;
 *   - with a log, the records a segment holds are released only once
 *     the lease records it (wal_release_upto): until then, if the
 *     segment goes, the log still replays them.
 * A failed record (the store failing, after its retries) is logged and
 * not waited for: the data is committed, only its witness is late; the
 * next commit or renewal records the head.  Commits that land while a
 * record is being written are recorded by the same thread's next turn,
 * so there is at most one record in flight and it is always of the
 * newest head. */

/* One write of our lease object with the current head: a record, or
 * (renew) a renewal, which first looks for a newer epoch (EEXIST,
 * *newer filled in).  Caller holds v->lock, dropped around the store
 * request (under lease_io_lock).  Returns its result; on success the
 * head written is recorded. */
static int
hf_vol_lease_write_locked (struct hf_volume *v, bool renew,
                           struct hf_lease_info *newer)
{
  uint64_t seq, lsn;
  int r;

  HF_VOL_ASSERT_LOCKED (v);
  hf_vol_unlock (v);
  pthread_mutex_lock (&v->lease_io_lock);
  hf_vol_lock (v);
  hf_vol_lease_note_head_locked (v);
  seq = v->head_seq;
  lsn = v->wal_commit_upto;
  hf_vol_unlock (v);
  r = renew ? hf_lease_renew (&v->lease, newer)
    : hf_lease_record (&v->lease);
  pthread_mutex_unlock (&v->lease_io_lock);
  hf_vol_lock (v);
  if (seq > v->lease_rec_tried)
    v->lease_rec_tried = seq;
  if (r == 0) {
    if (seq > v->lease_rec_seq)
      v->lease_rec_seq = seq;
    if (lsn > v->wal_release_upto)
      v->wal_release_upto = lsn;
  }
  pthread_cond_broadcast (&v->commit_cv);
  return r;
}

void
hf_vol_lease_record_locked (struct hf_volume *v)
{
  HF_VOL_ASSERT_LOCKED (v);
  if (!v->lease.held) {         /* nothing to record in */
    v->lease_rec_seq = v->lease_rec_tried = v->head_seq;
    v->wal_release_upto = v->wal_commit_upto;
    return;
  }
  while (!v->lease_recording && !v->fenced && !v->crashed &&
         v->head_seq > v->lease_rec_tried) {
    int r;

    v->lease_recording = true;
    r = hf_vol_lease_write_locked (v, false, NULL);
    v->lease_recording = false;
    if (r) {
      /* Everything committed so far had its attempt: flushes go on. */
      v->lease_rec_tried = v->head_seq;
      hf_warn ("volume: recording segment %" PRIu64 " as committed in "
               "the writer lease: %s; the next commit or renewal tries "
               "again", v->lease_rec_tried, strerror (r));
      break;
    }
  }
}

void
hf_vol_lease_record_open (struct hf_volume *v)
{
  int r = 0;

  /* The head found may be newer than the lease says (its writer died
   * before recording it): record it before anything relies on it, the
   * log's release at open among them. */
  if (v->lease.held && v->head_seq > v->lease.committed_seq) {
    v->lease.committed_seq = v->head_seq;
    r = hf_lease_record (&v->lease);
    if (r)
      hf_warn ("volume: recording segment %" PRIu64 " as committed in "
               "the writer lease: %s; the next commit or renewal tries "
               "again", v->head_seq, strerror (r));
  }
  hf_vol_lock (v);
  v->lease_rec_tried = v->head_seq;
  if (r == 0)
    v->lease_rec_seq = v->head_seq;
  hf_vol_unlock (v);
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
    r = hf_vol_lease_write_locked (v, true, &l);
    if (r == EEXIST) {
      hf_vol_fence_locked (v, "volume: writer lease epoch %" PRIu64
                           " taken by \"%s\" (ours %" PRIu64 "): this "
                           "writer is fenced and refuses further writes",
                           l.epoch, l.holder, v->lease.epoch);
      break;
    }
    if (r)
      hf_warn ("volume: renewing the writer lease: %s", strerror (r));
    if (r == 0) {
      v->lease_ok_us = hf_clock_mono_us ();
      v->st.lease_renewals++;
      v->st.lease_renewed_ns = hf_clock_wall_ns ();
      /* It recorded the head: log records a failed record of a commit
       * kept (see "Recording the head") may go now. */
      hf_vol_wal_release_locked (v);
    }
    else
      v->st.lease_renew_failures++;
  }
  hf_vol_unlock (v);
  return NULL;
}
