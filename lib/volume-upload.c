/* hyperfile: the upload pipeline (see volume-int.h for the map):
 * uploader threads, the in-order commit, the delta, the hand-off of
 * committed objects to the local cache, and the seal timer.
 *
 * max_uploads uploader threads PUT built segments with If-None-Match, in
 * parallel and in any order.  A landed segment is committed in memory
 * only in seq order: when the oldest sealed segment has landed it leaves
 * the sealed list, its extents join the delta and the head advances.  A
 * crash with N+2 landed and N+1 not leaves N+2 an orphan (its parent
 * link is broken), which open ignores; a writer numbers its segments
 * above every seq it saw, so an orphan's key is never reused.  A failed
 * PUT (EIO, ETIMEDOUT ...) is retried forever with capped exponential
 * backoff, keeping the data in memory (dirty_limit back-pressure
 * applies; flush gives up with EIO after flush_timeout_ms but keeps the
 * data).  EEXIST is for volume-fence.c to judge.  Once a segment
 * commits, the log records it holds are released.
 *
 * Lock rule: everything here is under v->lock except the PUT, the lease
 * check, the log release and the cache writes, which drop it.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "volume-int.h"

/* ---- The delta ---- */

/* Add segment m's extents to delta (its data runs borrow m's CRC
 * table, which moves to tabs: m->crcs becomes NULL).  The caller owns
 * delta and tabs (v's under v->lock, or a point being read). */
int
hf_vol_delta_add (uint32_t bs, struct hf_runs *delta, struct hf_runs *spare,
                  struct hf_vol_crctabs *tabs, struct hf_seg_meta *m)
{
  struct hf_runs runs = { 0 };
  int r = hf_runs_of_segment (m, bs, &runs);

  if (r == 0)
    r = spare ? hf_runs_apply_spare (delta, spare, runs.v, runs.n, false)
      : hf_runs_apply (delta, runs.v, runs.n, false);
  hf_runs_free (&runs);
  if (r == 0 && tabs->n == tabs->cap) {
    size_t nc = tabs->cap ? tabs->cap * 2 : 16;
    uint32_t **nt = realloc (tabs->v, nc * sizeof *nt);
    if (nt == NULL)
      r = ENOMEM;
    else {
      tabs->v = nt;
      tabs->cap = nc;
    }
  }
  if (r)
    return r;
  tabs->v[tabs->n++] = m->crcs;
  m->crcs = NULL;
  return 0;
}

/* Free delta's runs and tabs' tables; tabs keeps its array for reuse
 * (free tabs->v when done with it). */
void
hf_vol_delta_free (struct hf_runs *delta, struct hf_vol_crctabs *tabs)
{
  size_t i;

  hf_runs_free (delta);
  for (i = 0; i < tabs->n; i++)
    free (tabs->v[i]);
  tabs->n = 0;
}

/* Add committed segment m's extents to the delta.  Caller holds
 * v->lock. */
int
hf_vol_delta_add_locked (struct hf_volume *v, struct hf_seg_meta *m)
{
  HF_VOL_ASSERT_LOCKED (v);
  return hf_vol_delta_add (v->bs, &v->delta, &v->delta_spare, &v->crc_tabs,
                           m);
}

/* Empty the delta (a checkpoint committed).  Caller holds v->lock. */
void
hf_vol_delta_clear_locked (struct hf_volume *v)
{
  HF_VOL_ASSERT_LOCKED (v);
  /* The larger array stays as the spare: the delta grows back to about
   * its size before the next checkpoint. */
  if (v->delta.cap > v->delta_spare.cap) {
    struct hf_runs t = v->delta_spare;

    v->delta_spare = v->delta;
    v->delta_spare.n = 0;
    v->delta = t;
  }
  hf_vol_delta_free (&v->delta, &v->crc_tabs);
}

/* ---- Commit ---- */

static void hf_vol_cache_or_recycle_locked (struct hf_volume *v,
                                            struct hf_vol_seg *s,
                                            const uint32_t *crcs);

/* Move landed segments, oldest first, from the sealed list into the
 * delta and advance the head.  Caller holds v->lock. */
static void
hf_vol_commit_locked (struct hf_volume *v)
{
  /* One instant for the whole step: the drain estimate measures the
   * segments committed together as one (pace.c). */
  uint64_t now_us = hf_clock_mono_us ();
  struct hf_vol_seg *s;

  HF_VOL_ASSERT_LOCKED (v);
  while ((s = v->sealed) != NULL && s->state == HF_VSEG_LANDED) {
    /* The block CRCs, for the cache: the delta takes the table, and it
     * lives until the next checkpoint commits (maybe in this loop). */
    const uint32_t *crcs = s->meta.crcs;

    if (s->pins) {
      /* A reader is copying from s->obj without the lock (volume-
       * read.c): the object must not be recycled under it. */
      hf_vol_wait (v, &v->commit_cv, 0);
      continue;
    }
    if (s->ckpt) {
      hf_vol_delta_clear_locked (v);
      v->ckpt_seq = s->seq;
      v->ckpt_gen++;
      v->st.checkpoints_written++;
    }
    else {
      int r = hf_vol_delta_add_locked (v, &s->meta);

      if (r) {
        /* Cannot happen short of ENOMEM; the segment is committed in
         * the store, so stop rather than serve stale reads. */
        hf_error ("volume: applying segment %" PRIu64 ": %s", s->seq,
                  strerror (r));
        v->broken = r;
        hf_vol_wake_all_locked (v);
        return;
      }
    }
    v->head_seq = s->seq;
    v->committed_seq = s->seq;
    if (s->wal_lsn > v->wal_commit_upto)
      v->wal_commit_upto = s->wal_lsn;
    v->dirty_bytes -= s->buf->bytes;
    hf_pace_committed (&v->pace, now_us, s->built_us, s->buf->bytes);
    v->st.segments_committed++;
    v->st.last_commit_ns = hf_clock_wall_ns ();
    v->st.data_bytes_uploaded += (uint64_t) s->meta.h.n_data * v->bs;
    if (s->meta.h.codec == 0) {
      v->st.meta_bytes_uploaded += s->meta.h.object_size -
        (uint64_t) s->meta.h.n_data * v->bs;
      v->st.data_bytes_stored += (uint64_t) s->meta.h.n_data * v->bs;
    }
    else {
      v->st.meta_bytes_uploaded += s->meta.h.data_off;
      v->st.data_bytes_stored += s->meta.h.object_size - s->meta.h.data_off;
      /* Reads of s's blocks that miss the cache need its frames. */
      hf_vol_ftab_put (v, s->seq, &s->meta.h, s->meta.frames);
      s->meta.frames = NULL;
    }
    v->sealed = s->next;
    if (v->sealed)
      v->sealed->prev = NULL;
    else
      v->sealed_tail = NULL;
    hf_debug ("volume", "committed seq %" PRIu64 " (%" PRIu64 " bytes; "
              "pace rate %" PRIu64 ", measured %" PRIu64 ")", s->seq,
              s->buf->bytes, v->pace.rate, v->pace.measured);
    hf_vol_cache_or_recycle_locked (v, s, crcs);
    hf_vol_seg_free (s);
  }
  pthread_cond_broadcast (&v->commit_cv);
  pthread_cond_broadcast (&v->room_cv);
}

/* Release the log records that committed segments hold.  Caller holds
 * v->lock; it is dropped around the release (which unlinks files). */
void
hf_vol_wal_release_locked (struct hf_volume *v)
{
  uint64_t upto = v->wal_release_upto;
  int r;

  HF_VOL_ASSERT_LOCKED (v);
  if (v->wal == NULL || v->wal_replaying || upto <= v->wal_released)
    return;
  v->wal_released = upto;
  hf_vol_unlock (v);
  r = hf_wal_release (v->wal, upto);
  hf_vol_lock (v);
  if (r)            /* logged by the log; the space is reclaimed later */
    v->wal_released = 0;
}

/* The blocks and index nodes of a committed segment go into the local
 * cache (newly written blocks are likely read again soon, and an entry
 * keyed by (seq, offset) of an object in the store never goes stale).
 * Caching costs local disk time, so it happens after the commit, by the
 * thread that committed, from a short queue: commits (and the writers
 * waiting for dirty-limit) do not wait for it; uploaders do, which paces
 * them to the cache disk.  The queue holds a whole burst of commits
 * (HF_VOL_CACHEQ_BYTES: it held four segments, and a commit of the
 * oldest upload after eight had landed left four out of the cache,
 * whose blocks were then read from the store again); so committed
 * objects on their way into the cache may add up to dirty_limit (plus
 * two segments) of memory to the dirty data.  A queue fuller than that
 * (a cache disk slower than the store for long) leaves the segment out
 * of the cache (counted: cache_skipped).  The cache takes the blocks'
 * CRCs from the segment's table (crcs, borrowed; copied into the queue)
 * instead of hashing every block again. */
static void
hf_vol_cache_or_recycle_locked (struct hf_volume *v, struct hf_vol_seg *s,
                                const uint32_t *crcs)
{
  const struct hf_volume_hooks *hk = v->o.hooks;
  struct hf_vol_cacheq *q;

  HF_VOL_ASSERT_LOCKED (v);
  if (s->obj == NULL)
    return;
  if (hk && hk->cache_put && !v->crashed &&
      (v->cacheq == NULL ||
       v->cacheq_bytes + s->obj_len <= HF_VOL_CACHEQ_BYTES (v)) &&
      (q = calloc (1, sizeof *q)) != NULL) {
    q->obj = s->obj;
    q->cap = s->obj_cap;
    q->bytes = s->obj_len;      /* the image (uncompressed) */
    q->seq = s->seq;
    q->node_off = s->meta.h.node_off;
    q->n_nodes = s->meta.h.n_nodes;
    q->data_off = s->meta.h.data_off;
    q->n_data = s->meta.h.n_data;
    /* Without the copy (no memory) the cache computes them. */
    if (crcs && q->n_data &&
        (q->crcs = malloc ((size_t) q->n_data * sizeof *q->crcs)) != NULL)
      memcpy (q->crcs, crcs, (size_t) q->n_data * sizeof *q->crcs);
    /* A compressed segment's frame table for the table files: the
     * image's header and table are the stored object's. */
    if (s->meta.h.codec && hk->tables_put)
      q->tables = hf_seg_tables_encode (s->obj, &s->meta.h,
                                        &q->tables_len);
    if (v->cacheq_tail)
      v->cacheq_tail->next = q;
    else
      v->cacheq = q;
    v->cacheq_tail = q;
    v->cacheq_bytes += s->obj_len;
  }
  else {
    if (hk && hk->cache_put && !v->crashed) {
      v->st.cache_skipped++;
      hf_debug ("volume", "segment %" PRIu64 " not cached (queue full)",
                s->seq);
    }
    hf_vol_obj_recycle_locked (v, s->obj, s->obj_cap);
  }
  s->obj = NULL;
  hf_vol_obj_recycle_locked (v, s->up, s->up_cap);
  s->up = NULL;
}

/* Put the queued objects into the cache (drops v->lock meanwhile). */
void
hf_vol_cache_drain_locked (struct hf_volume *v)
{
  const struct hf_volume_hooks *hk = v->o.hooks;
  struct hf_vol_cacheq *q;

  HF_VOL_ASSERT_LOCKED (v);
  while ((q = v->cacheq) != NULL) {
    v->cacheq = q->next;
    if (v->cacheq == NULL)
      v->cacheq_tail = NULL;
    v->cacheq_bytes -= q->bytes;
    hf_vol_unlock (v);
    if (q->n_nodes)
      hk->cache_put (hk->opaque, q->seq, q->node_off, q->obj + q->node_off,
                     (size_t) q->n_nodes * HF_NODE_SIZE, NULL);
    if (q->n_data)
      hk->cache_put (hk->opaque, q->seq, q->data_off, q->obj + q->data_off,
                     (size_t) q->n_data * v->bs, q->crcs);
    if (q->tables)
      hk->tables_put (hk->opaque, q->seq, q->tables, q->tables_len);
    free (q->tables);
    hf_vol_lock (v);
    hf_vol_obj_recycle_locked (v, q->obj, q->cap);
    free (q->crcs);
    free (q);
  }
}

void *
hf_vol_uploader_thread (void *arg)
{
  struct hf_volume *v = arg;
  char key[HF_OBJSTORE_KEY_MAX + 1];

  hf_vol_lock (v);
  while (!v->stop) {
    struct hf_vol_seg *s, *pick = NULL;
    uint64_t now = hf_clock_mono_us (), wake = 0;
    uint64_t gen;
    bool stale;
    int r;

    if (!v->fenced && !v->broken)
      for (s = v->sealed; s; s = s->next)
        if (s->state == HF_VSEG_BUILT) {
          if (s->retry_at_us <= now) {
            pick = s;
            break;
          }
          if (wake == 0 || s->retry_at_us < wake)
            wake = s->retry_at_us;
        }
    if (pick == NULL) {
      hf_vol_wait (v, &v->work_cv, wake);
      continue;
    }
    s = pick;
    s->state = HF_VSEG_UPLOADING;
    v->uploading++;
    gen = v->flush_gen;
    stale = hf_vol_lease_stale_locked (v, now);
    hf_vol_unlock (v);

    hf_seg_key_vd (key, sizeof key, v->prefix, v->lin->lv[0].d.flags,
                   s->seq);
    r = hf_vol_fence_before_put (v, stale);
    if (r == 0) {
      r = hf_objstore_put_cancel (v->store, key, s->up ? s->up : s->obj,
                                  s->meta.h.object_size,
                                  HF_PUT_IF_NONE_MATCH, &v->put_cancel);
      r = hf_vol_fence_after_put (v, key, s, r);
    }

    hf_vol_lock (v);
    v->uploading--;
    if (v->crashed)
      break;
    if (r == 0) {
      s->state = HF_VSEG_LANDED;
      hf_vol_commit_locked (v);
      hf_vol_lease_record_locked (v);
      hf_vol_wal_release_locked (v);
      if (!v->crashed)
        hf_vol_cache_drain_locked (v);
    }
    else if (r == ECANCELED)
      s->state = HF_VSEG_BUILT;         /* fenced: not uploaded, or the
                                           PUT was called off */
    else if (r == EEXIST) {
      s->state = HF_VSEG_BUILT;
      hf_vol_fence_taken_over_locked (v, key);
    }
    else {
      unsigned sh = s->attempts < 6 ? s->attempts : 6;
      s->state = HF_VSEG_BUILT;
      s->attempts++;
      /* A flush that began during the attempt asked for a retry now:
       * its reset of retry_at_us found the segment uploading.  (With a
       * backoff it waited seconds for a store that is back.) */
      s->retry_at_us = v->flush_gen != gen ? 0 : hf_clock_mono_us () +
        (50000ull << sh) + (uint64_t) (rand () % 50000);
      if (s->attempts == 1 || s->attempts % 20 == 0)
        hf_warn ("volume: upload of %s failed (%s), attempt %u; retrying",
                 key, strerror (r), s->attempts);
    }
    pthread_cond_broadcast (&v->work_cv);
  }
  hf_vol_unlock (v);
  return NULL;
}

void *
hf_vol_timer_thread (void *arg)
{
  struct hf_volume *v = arg;
  uint64_t period = (uint64_t) v->o.flush_interval_ms * 1000 / 4;

  if (period > 1000000)
    period = 1000000;
  if (period < 1000)
    period = 1000;
  hf_vol_lock (v);
  while (!v->stop) {
    if (v->active && v->active->changed && !v->fenced &&
        hf_clock_mono_us () - v->active->first_us >=
        (uint64_t) v->o.flush_interval_ms * 1000)
      hf_vol_seal_locked (v, false, false);
    hf_vol_wait (v, &v->work_cv, hf_clock_mono_us () + period);
  }
  hf_vol_unlock (v);
  return NULL;
}
