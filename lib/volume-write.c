/* hyperfile: the volume's write path (see volume-int.h for the map):
 * client writes, trim and zero, flush and FUA, grow, sealing the active
 * buffer, and the relocation of live blocks for compaction.
 *
 * Writes land in the active buffer (wbuf.h).  Sub-block writes
 * read-modify-write the block through the normal read path and
 * re-check, under v->lock, that nobody wrote the block meanwhile
 * (optimistic, retried).  Every block of one write enters the buffer in
 * one critical section, so a seal never splits a write.
 *
 * The active buffer is sealed (moved to the sealed list and given the
 * next seq) when it holds segment_size bytes (the first few, until
 * pacing has measured a whole one's drain, less: pace.c), when it is
 * flush_interval_ms old (timer thread, volume-upload.c), on flush, grow
 * and close.  A sealed buffer is immutable and still serves reads.
 *
 * Write-ahead log (opts->wal_dir).  A write's log record is reserved
 * (LSN and place) under v->lock, in the same critical section that puts
 * it into the active buffer, so log order is buffer order and a replay
 * rebuilds exactly what the buffer held; it is written after the lock is
 * dropped.  The reservation never waits there: when the log is full it
 * fails with EAGAIN, and the writer drops the lock, waits for space
 * (uploads commit and release it) and starts over.  flush and FUA then
 * cost one group-committed fdatasync instead of an upload.  Each
 * segment records the newest record it holds (sh_wal_lsn, taken at
 * seal); once it commits, records up to there are released.
 *
 * Lock rule: buffers, sizes and the log reservation under v->lock; the
 * tree is read under a shared tree_lock (never with v->lock held); the
 * store and the log file are read and written with no lock held.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "clock.h"
#include "crc32c.h"
#include "log.h"
#include "volume-int.h"

/* Seal the active buffer (if it holds anything, or force).  Caller
 * holds v->lock. */
int
hf_vol_seal_locked (struct hf_volume *v, bool force, bool force_ckpt)
{
  struct hf_vol_seg *s;
  struct hf_wbuf *nb;

  HF_VOL_ASSERT_LOCKED (v);
  if (!force && !force_ckpt && (v->active == NULL || !v->active->changed))
    return 0;
  s = calloc (1, sizeof *s);
  nb = calloc (1, sizeof *nb);
  if (s == NULL || nb == NULL) {
    free (s);
    free (nb);
    return ENOMEM;
  }
  s->seq = v->next_seq++;
  s->state = HF_VSEG_SEALED;
  s->buf = v->active;
  s->volume_size = v->size;
  s->force_ckpt = force_ckpt;
  s->wal_lsn = v->wal_applied;
  if (s->buf == NULL)
    s->buf = nb, nb = NULL;
  s->prev = v->sealed_tail;
  if (v->sealed_tail)
    v->sealed_tail->next = s;
  else
    v->sealed = s;
  v->sealed_tail = s;
  if (nb == NULL) {
    nb = calloc (1, sizeof *nb);
    if (nb == NULL)
      return ENOMEM;    /* active stays NULL: allocated on next write */
  }
  v->active = nb;
  /* The new buffer's first write takes spare_slots (volume-int.h). */
  if (v->spare_slots.p == NULL && v->spare_slots2.p != NULL) {
    v->spare_slots = v->spare_slots2;
    v->spare_slots2.p = NULL;
  }
  hf_pace_sealed (&v->pace, s->buf->bytes);
  hf_debug ("volume", "sealed seq %" PRIu64 " (%" PRIu64 " bytes)",
            s->seq, s->buf->bytes);
  pthread_cond_broadcast (&v->work_cv);
  return 0;
}

int
hf_vol_write_err_locked (struct hf_volume *v)
{
  HF_VOL_ASSERT_LOCKED (v);
  if (v->readonly || v->fenced)
    return EROFS;
  if (v->broken)
    return v->broken;
  if (v->stop)
    return EIO;
  return 0;
}

/* Wait until there is room for more dirty data (a write may then
 * overshoot dirty_limit by its own size).  Caller holds lock. */
static int
hf_vol_wait_room_locked (struct hf_volume *v)
{
  bool waited = false;
  int r;

  HF_VOL_ASSERT_LOCKED (v);
  while ((r = hf_vol_write_err_locked (v)) == 0 &&
         v->dirty_bytes >= v->o.dirty_limit) {
    if (!waited) {
      waited = true;
      v->st.dirty_waits++;
      /* Pacing let this writer reach the limit: its drain estimate
       * is too high. */
      hf_pace_limit (&v->pace);
    }
    if (v->active && v->active->changed &&
        v->active->bytes * 2 >= v->dirty_bytes) {
      r = hf_vol_seal_locked (v, false, false);
      if (r)
        return r;
    }
    hf_vol_wait (v, &v->room_cv, 0);
  }
  return r;
}

static bool
hf_vol_all_zero (const uint8_t *p, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

/* The active buffer, allocated if there is none.  Caller holds lock. */
static struct hf_wbuf *
hf_vol_active_locked (struct hf_volume *v)
{
  HF_VOL_ASSERT_LOCKED (v);
  if (v->active == NULL)
    v->active = calloc (1, sizeof *v->active);
  return v->active;
}

/* Put one whole block, whose CRC32C is crc, into the active buffer.
 * Caller holds lock. */
static int
hf_vol_put_block_locked (struct hf_volume *v, uint64_t lba,
                         const uint8_t *data, uint32_t crc)
{
  struct hf_wbuf *b = hf_vol_active_locked (v);
  bool added;
  int r;

  HF_VOL_ASSERT_LOCKED (v);
  if (b == NULL)
    return ENOMEM;
  if (hf_vol_all_zero (data, v->bs))
    return hf_wbuf_zero (b, lba, 1);
  r = hf_wbuf_put (b, v->bs, lba, data, crc, &v->spare_slots, &added);
  if (r == 0 && added)
    v->dirty_bytes += v->bs;
  return r;
}

/* Zero-run [lba, lba + n) in the active buffer.  Caller holds lock. */
static int
hf_vol_put_zero_locked (struct hf_volume *v, uint64_t lba, uint64_t n)
{
  struct hf_wbuf *b = hf_vol_active_locked (v);

  HF_VOL_ASSERT_LOCKED (v);
  if (b == NULL)
    return ENOMEM;
  return hf_wbuf_zero (b, lba, n);
}

static int
hf_vol_maybe_seal_locked (struct hf_volume *v)
{
  HF_VOL_ASSERT_LOCKED (v);
  /* Until pacing has measured a whole segment's drain the segments are
   * sealed smaller, so that they commit soon and measure it (pace.c). */
  if (v->active &&
      (v->active->bytes >= hf_pace_seal_size (&v->pace) ||
       v->active->zeros.n >= HF_VOL_MAX_ZERO_RUNS))
    return hf_vol_seal_locked (v, false, false);
  return 0;
}

/* A partial block at the edge of a write: its old bytes, fetched
 * before taking the lock, and where they came from. */
struct hf_vol_edge {
  uint64_t lba;
  uint32_t boff, len;           /* the part the write replaces */
  struct hf_vol_loc loc;        /* as resolved when fetched */
  uint64_t gen;                 /* v->ckpt_gen when resolved */
  uint8_t *old;                 /* 2 * block_size bytes (+ scratch) */
};

/* Fetch the current bytes of an edge block (no lock held). */
static int
hf_vol_edge_fetch (struct hf_volume *v, struct hf_vol_edge *e)
{
  int r;

  hf_vol_lock (v);
  hf_vol_resolve_locked (v, e->lba, e->old, &e->loc);
  e->gen = v->ckpt_gen;
  hf_vol_unlock (v);
  if (e->loc.where == HF_VW_MEM || e->loc.where == HF_VW_ZERO)
    return 0;                   /* re-read under the lock at apply time */
  if (e->loc.where == HF_VW_NONE) {
    pthread_rwlock_rdlock (&v->tree_lock);
    r = hf_vol_resolve_tree (v, e->lba, &e->loc);
    pthread_rwlock_unlock (&v->tree_lock);
    if (r)
      return r;
    if (e->loc.where == HF_VW_ZERO) {
      e->loc.where = HF_VW_NONE;        /* a hole in the tree */
      memset (e->old, 0, v->bs);
      return 0;
    }
  }
  return hf_vol_fetch (v, e->loc.seq, e->loc.blk, 1, &e->loc.crc, e->old);
}

/* Under the lock: is the fetched edge still current?  Memory wins (and
 * is copied into e->old); an unchanged store location is fine; anything
 * else means a write raced with us: false, fetch again. */
static bool
hf_vol_edge_current_locked (struct hf_volume *v, struct hf_vol_edge *e)
{
  struct hf_vol_loc l;
  uint8_t *tmp = e->old + v->bs;        /* scratch block after old */

  HF_VOL_ASSERT_LOCKED (v);
  hf_vol_resolve_locked (v, e->lba, tmp, &l);
  if (l.where == HF_VW_MEM || l.where == HF_VW_ZERO) {
    memcpy (e->old, tmp, v->bs);
    return true;
  }
  /* Not in memory or the delta: the tree's answer is unchanged unless a
   * checkpoint moved newer entries from the delta into it meanwhile. */
  if (l.where == HF_VW_NONE)
    return (e->loc.where == HF_VW_NONE || e->loc.where == HF_VW_STORE) &&
      e->gen == v->ckpt_gen;
  /* l from the delta */
  return e->loc.where == HF_VW_STORE && e->loc.seq == l.seq &&
    e->loc.blk == l.blk;
}

static int hf_vol_durable (struct hf_volume *v);

/* Apply a write (data != NULL) or an unmap (data NULL) of [offset,
 * offset + count) atomically: every block of it enters the active
 * buffer in one critical section, so a seal never splits a write and a
 * crash leaves a prefix of whole writes.  With a log, the record of type
 * wal_type is reserved in that same critical section and written after
 * it; replay_lsn != 0
 * means the call replays that record (nothing is appended). */
int
hf_vol_modify (struct hf_volume *v, const uint8_t *data, uint64_t count,
               uint64_t offset, unsigned flags, uint32_t wal_type,
               uint64_t replay_lsn)
{
  uint64_t end = offset + count, first, last, k;
  struct hf_vol_edge edge[2];
  CLEANUP_FREE uint8_t *scratch = NULL;
  CLEANUP_FREE uint32_t *crc_heap = NULL;
  uint32_t crc_stack[HF_VOL_CRC_STACK], *crcs = crc_stack, data_crc = 0;
  struct hf_wal_ticket ticket;
  bool logged = false;
  size_t ne = 0, i;
  uint64_t pace_us = 0;
  int r;

  hf_vol_lock (v);
  r = hf_vol_write_err_locked (v);
  if (r == 0 && (offset > v->size || count > v->size - offset))
    r = ENOSPC;
  /* Near dirty_limit, a write with data waits its share of the drain
   * (pace.c) instead of some writes waiting a whole upload at the
   * limit.  Not a replayed record: the log is already written. */
  if (r == 0 && data && count && replay_lsn == 0) {
    pace_us = hf_pace_delay (&v->pace, hf_clock_mono_us (), v->dirty_bytes,
                             count);
    if (pace_us) {
      v->st.paced_writes++;
      v->st.paced_us += pace_us;
    }
  }
  hf_vol_unlock (v);
  if (r || count == 0)
    return r;
  if (pace_us)
    hf_clock_sleep_us (pace_us);

  /* Whole blocks [first, last); partial edges around them. */
  first = (offset + v->bs - 1) / v->bs;
  last = end / v->bs;
  if (first > last) {           /* inside one block */
    edge[ne++] = (struct hf_vol_edge) {
      .lba = offset / v->bs, .boff = (uint32_t) (offset % v->bs),
      .len = (uint32_t) count };
    first = last;
  }
  else {
    if (offset % v->bs)
      edge[ne++] = (struct hf_vol_edge) {
        .lba = offset / v->bs, .boff = (uint32_t) (offset % v->bs),
        .len = (uint32_t) (v->bs - offset % v->bs) };
    if (end % v->bs)
      edge[ne++] = (struct hf_vol_edge) {
        .lba = last, .boff = 0, .len = (uint32_t) (end % v->bs) };
  }
  if (ne) {
    scratch = malloc (ne * 2 * (size_t) v->bs);
    if (scratch == NULL)
      return ENOMEM;
    for (i = 0; i < ne; i++)
      edge[i].old = scratch + i * 2 * (size_t) v->bs;
  }
  /* The CRC32C of each whole block, computed here once, without the
   * lock and while the bytes are in the CPU's cache: it is the block's
   * CRC in the segment and in the cache, and (folded together) the
   * log record's data CRC.  Edges get theirs under the lock, once
   * merged. */
  if (data && last > first) {
    if (last - first > HF_VOL_CRC_STACK) {
      crc_heap = malloc ((size_t) (last - first) * sizeof *crc_heap);
      if (crc_heap == NULL)
        return ENOMEM;
      crcs = crc_heap;
    }
    for (k = first; k < last; k++) {
      crcs[k - first] = hf_crc32c (0, data + (k * v->bs - offset), v->bs);
      data_crc = k == first ? crcs[0] :
        hf_crc32c_combine (data_crc, crcs[k - first], v->bs);
    }
  }

  for (;;) {
    bool ok = true;

    for (i = 0; i < ne; i++) {
      r = hf_vol_edge_fetch (v, &edge[i]);
      if (r)
        return r;
    }
    hf_vol_lock (v);
    r = hf_vol_wait_room_locked (v);
    if (r)
      break;
    for (i = 0; i < ne && ok; i++)
      ok = hf_vol_edge_current_locked (v, &edge[i]);
    if (!ok) {
      hf_vol_unlock (v);
      continue;
    }
    if (v->wal == NULL)
      break;
    if (replay_lsn) {
      v->wal_applied = replay_lsn;
      break;
    }
    /* The record's place in the log is fixed here, in buffer order;
     * it is written after the lock is dropped. */
    r = hf_wal_try_reserve (v->wal, wal_type, data, count, &ticket);
    if (r == 0) {
      v->wal_applied = ticket.lsn;
      logged = true;
      break;
    }
    /* The log is full: its records are in buffers that must upload
     * before it can be released, so seal the active one now. */
    if (r == EAGAIN && hf_vol_seal_locked (v, false, false) != 0)
      r = ENOMEM;
    hf_vol_unlock (v);
    if (r != EAGAIN)
      return r;                 /* ENOSPC or EIO, logged by the log */
    /* Wait for uploads to release some of it. */
    r = hf_wal_wait_space (v->wal, wal_type, count);
    if (r)
      return r;
  }
  /* Holding v->lock from here. */
  for (i = 0; i < ne && r == 0; i++) {
    struct hf_vol_edge *e = &edge[i];
    uint64_t bstart = e->lba * v->bs + e->boff;
    if (data)
      memcpy (e->old + e->boff, data + (bstart - offset), e->len);
    else
      memset (e->old + e->boff, 0, e->len);
    r = hf_vol_put_block_locked (v, e->lba, e->old,
                                 hf_crc32c (0, e->old, v->bs));
  }
  if (r == 0 && last > first) {
    if (data)
      for (k = first; k < last && r == 0; k++)
        r = hf_vol_put_block_locked (v, k, data + (k * v->bs - offset),
                                     crcs[k - first]);
    else
      r = hf_vol_put_zero_locked (v, first, last - first);
  }
  if (r == 0) {
    if (data)
      v->st.bytes_written += count;
    r = hf_vol_maybe_seal_locked (v);
  }
  hf_vol_unlock (v);
  /* Written even after a failure above: a reserved record must be
   * (hf_wal_sync waits for it).  Failure: the client hears of it; the
   * blocks may still reach the store, as after any failed write. */
  if (logged) {
    /* A write of whole blocks only: its data CRC is the blocks'. */
    bool whole = data && ne == 0 && last > first;
    int wr = hf_wal_write_reserved_crc (v->wal, &ticket, wal_type, offset,
                                        data, count,
                                        whole ? &data_crc : NULL);
    if (r == 0)
      r = wr;
  }
  if (r == 0 && (flags & HF_VOL_FUA))
    r = hf_vol_durable (v);
  return r;
}

int
hf_volume_pwrite (struct hf_volume *v, const void *buf, size_t count,
                  uint64_t offset, unsigned flags)
{
  return hf_vol_modify (v, buf, count, offset, flags, HF_WAL_WRITE, 0);
}

int
hf_volume_trim (struct hf_volume *v, uint64_t count, uint64_t offset,
                unsigned flags)
{
  return hf_vol_modify (v, NULL, count, offset, flags, HF_WAL_TRIM, 0);
}

int
hf_volume_zero (struct hf_volume *v, uint64_t count, uint64_t offset,
                unsigned flags)
{
  return hf_vol_modify (v, NULL, count, offset, flags, HF_WAL_ZERO, 0);
}

/* Seal and wait until everything sealed so far has committed, or the
 * flush timeout passes (EIO; the data stays queued). */
int
hf_vol_flush_wait_force (struct hf_volume *v, bool force_ckpt)
{
  struct hf_vol_seg *s;
  uint64_t target, deadline;
  int r;

  hf_vol_lock (v);
  if (v->readonly) {
    hf_vol_unlock (v);
    return 0;
  }
  r = hf_vol_write_err_locked (v);
  if (r == 0)
    r = hf_vol_seal_locked (v, false, force_ckpt);
  /* A flush retries failed uploads now rather than after their backoff
   * (and one failing while it waits: flush_gen, volume-upload.c). */
  for (s = v->sealed; s; s = s->next)
    s->retry_at_us = 0;
  v->flush_gen++;
  pthread_cond_broadcast (&v->work_cv);
  target = v->next_seq - 1;
  deadline = hf_clock_mono_us () + (uint64_t) v->o.flush_timeout_ms * 1000;
  /* Committed, and the head recorded in the lease (or its record
   * tried: volume-fence.c, "Recording the head"). */
  while (r == 0 && (v->committed_seq < target ||
                    (v->lease.held && v->lease_rec_tried < v->head_seq))) {
    if (hf_clock_mono_us () >= deadline) {
      if (v->committed_seq < target)
        hf_error ("volume: flush: segment %" PRIu64
                  " not committed after %u ms (store failing?); data kept "
                  "in memory and retried", v->committed_seq + 1,
                  v->o.flush_timeout_ms);
      else
        hf_error ("volume: flush: segment %" PRIu64 " committed but not "
                  "recorded in the writer lease after %u ms (store "
                  "failing?)", v->head_seq, v->o.flush_timeout_ms);
      r = EIO;
      break;
    }
    hf_vol_wait (v, &v->commit_cv, deadline);
    r = hf_vol_write_err_locked (v);
  }
  hf_vol_unlock (v);
  return r;
}

int
hf_vol_flush_wait (struct hf_volume *v)
{
  return hf_vol_flush_wait_force (v, false);
}

/* Make every write completed so far durable: in the log if there is
 * one, else in the store. */
static int
hf_vol_durable (struct hf_volume *v)
{
  int r;

  if (v->wal == NULL)
    return hf_vol_flush_wait (v);
  hf_vol_lock (v);
  r = v->readonly ? 0 : hf_vol_write_err_locked (v);
  hf_vol_unlock (v);
  if (r == 0 && !v->readonly)
    r = hf_wal_sync (v->wal);
  return r;
}

int
hf_volume_flush (struct hf_volume *v)
{
  return hf_vol_durable (v);
}

/* Set the size, logging it first (replay_lsn: replaying that record). */
int
hf_vol_grow (struct hf_volume *v, uint64_t new_size, uint64_t replay_lsn)
{
  uint64_t lsn;
  int r;

  hf_vol_lock (v);
  for (;;) {
    r = hf_vol_write_err_locked (v);
    if (r == 0 && (new_size < v->size || new_size % v->bs != 0 ||
                   new_size > HF_MAX_VOLUME_SIZE))
      r = EINVAL;
    if (r || new_size == v->size)
      break;
    if (v->wal && replay_lsn)
      v->wal_applied = replay_lsn;
    else if (v->wal) {
      r = hf_wal_try_append (v->wal, HF_WAL_GROW, new_size, NULL, 0, &lsn);
      if (r == EAGAIN) {
        hf_vol_seal_locked (v, false, false);
        hf_vol_unlock (v);
        r = hf_wal_wait_space (v->wal, HF_WAL_GROW, 0);
        hf_vol_lock (v);
        if (r == 0)
          continue;
      }
      if (r)
        break;
      v->wal_applied = lsn;
    }
    v->size = new_size;
    r = hf_vol_seal_locked (v, true, false);
    break;
  }
  hf_vol_unlock (v);
  return r;
}

int
hf_volume_grow (struct hf_volume *v, uint64_t new_size)
{
  return hf_vol_grow (v, new_size, 0);
}

/* Unmap the blocks past new_size and commit that at the old size, then
 * commit the new size (a segment of its own, like a grow), so that no
 * segment holds an extent past its own size and a later grow reads
 * zeros there.  Only without a log: replaying a GROW record only grows,
 * and a shrink's two steps would have to replay as one. */
int
hf_volume_shrink (struct hf_volume *v, uint64_t new_size)
{
  uint64_t old;
  int r;

  hf_vol_lock (v);
  r = hf_vol_write_err_locked (v);
  if (r == 0 && v->wal)
    r = ENOTSUP;
  if (r == 0 && (new_size == 0 || new_size > v->size ||
                 new_size % v->bs != 0))
    r = EINVAL;
  old = v->size;
  hf_vol_unlock (v);
  if (r || new_size == old)
    return r;
  r = hf_volume_trim (v, old - new_size, new_size, 0);
  if (r == 0)
    r = hf_vol_flush_wait (v);
  if (r)
    return r;
  hf_vol_lock (v);
  r = hf_vol_write_err_locked (v);
  if (r == 0 && v->size != old)
    r = EBUSY;                  /* grown meanwhile: the caller broke the
                                   rule (no other call during a shrink) */
  if (r == 0) {
    v->size = new_size;
    r = hf_vol_seal_locked (v, true, false);
  }
  hf_vol_unlock (v);
  if (r == 0)
    r = hf_vol_flush_wait (v);
  return r;
}

/* ---- Compaction support (lib/gc.c) ----
 *
 * Compaction moves the live blocks of a mostly-dead segment into the
 * write buffer, so that they are written again in a new segment and the
 * old one stops being used by the head.  It must never undo a client
 * write: a block is moved only if, at the moment it enters the buffer
 * (under v->lock), the volume still maps it to exactly the physical
 * block it was read from.  A client write that lands before that point
 * wins because the block no longer matches; one that lands after
 * simply overwrites the moved copy in the buffer, as any later write. */

int
hf_volume_relocate (struct hf_volume *v, uint64_t lba, uint32_t n,
                    uint64_t seq, uint32_t blk, const uint32_t *crcs,
                    uint32_t *moved)
{
  CLEANUP_FREE uint8_t *buf = NULL;
  CLEANUP_FREE struct hf_vol_loc *tl = NULL;
  uint64_t gen;
  uint32_t i;
  int r;

  *moved = 0;
  if (n == 0)
    return 0;
  hf_vol_lock (v);
  r = hf_vol_write_err_locked (v);
  if (r == 0 && (lba >= v->size / v->bs || n > v->size / v->bs - lba))
    r = EINVAL;
  hf_vol_unlock (v);
  if (r)
    return r;
  buf = malloc ((size_t) n * v->bs);
  tl = calloc (n, sizeof *tl);
  if (buf == NULL || tl == NULL)
    return ENOMEM;
  r = hf_vol_fetch (v, seq, blk, n, crcs, buf);
  if (r) {
    /* Gone or unreadable: fine if no block of it is current any more
     * (a client overwrote them and GC collected the segment). */
    int e = r;
    pthread_rwlock_rdlock (&v->tree_lock);
    for (i = 0, r = 0; i < n && r == 0; i++) {
      r = hf_vol_resolve_tree (v, lba + i, &tl[i]);
      hf_vol_lock (v);
      {
        struct hf_vol_loc l;
        hf_vol_resolve_locked (v, lba + i, NULL, &l);
        if (l.where != HF_VW_NONE)
          tl[i] = l;
      }
      hf_vol_unlock (v);
      if (r == 0 && tl[i].where == HF_VW_STORE && tl[i].seq == seq &&
          tl[i].blk == blk + i)
        r = e;
    }
    pthread_rwlock_unlock (&v->tree_lock);
    return r;
  }

  for (;;) {
    /* What the tree says now (tree_lock before lock: lock order). */
    pthread_rwlock_rdlock (&v->tree_lock);
    hf_vol_lock (v);
    gen = v->ckpt_gen;
    hf_vol_unlock (v);
    for (i = 0; i < n && r == 0; i++)
      r = hf_vol_resolve_tree (v, lba + i, &tl[i]);
    pthread_rwlock_unlock (&v->tree_lock);
    if (r)
      return r;

    hf_vol_lock (v);
    r = hf_vol_wait_room_locked (v);
    if (r == 0 && gen != v->ckpt_gen) {
      /* A checkpoint moved the delta into the tree meanwhile. */
      hf_vol_unlock (v);
      continue;
    }
    for (i = 0; i < n && r == 0; i++) {
      struct hf_vol_loc l;
      bool current;

      hf_vol_resolve_locked (v, lba + i, NULL, &l);
      if (l.where == HF_VW_NONE)
        l = tl[i];
      current = l.where == HF_VW_STORE && l.seq == seq && l.blk == blk + i;
      if (current) {
        r = hf_vol_put_block_locked (v, lba + i, buf + (size_t) i * v->bs,
                                     crcs[i]);      /* checked by fetch */
        if (r == 0)
          (*moved)++;
      }
    }
    if (r == 0)
      r = hf_vol_maybe_seal_locked (v);
    hf_vol_unlock (v);
    return r;
  }
}
