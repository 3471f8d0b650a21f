/* hyperfile: checkpoints, rollback and touch_index (see volume-int.h
 * for the map): the only file that takes tree_lock exclusively.
 *
 * The delta is a sorted list of runs describing what committed segments
 * since the last checkpoint changed; reads consult it before the
 * B+tree.  When the extents or segments since the checkpoint exceed
 * checkpoint_entries or checkpoint_segments (or at close), the builder
 * drains the pipeline (waits until every earlier segment has
 * committed), merges the delta and the segment's own extents into the
 * tree, and writes the dirty nodes into the segment's node area
 * (format.h: a checkpoint includes its segment's own extents).  The
 * merge first reads and pins the index nodes it will change under the
 * shared tree_lock (reads go on meanwhile), then changes the tree in
 * memory under the exclusive lock.  When that segment commits the delta is emptied
 * (volume-upload.c).  Until then the object stays in memory and node
 * reads of it are served from there.
 *
 * Lock rule: tree_lock exclusively around every change of the tree,
 * then (lock order) v->lock for what must be published with it.
 * Neither the checkpoint nor rollback makes a store request under the
 * exclusive lock: both read what they need first (under the shared
 * lock, or none), then change memory.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "volume-int.h"

/* ---- Merging runs into the tree ----
 *
 * In rounds.  A round first reads and pins, under the shared tree_lock
 * (reads go on), the nodes that the next runs will visit, up to
 * node_cache nodes (bounded memory: a trim of a huge mapped range pins
 * one batch at a time), then applies those runs under the exclusive
 * lock in no-read mode (btree.h): a node that is not in memory is not
 * read there; the mutation stops with EAGAIN, and the next round pins
 * that node too and goes on where it stopped.  So no store request is
 * made under the exclusive lock.
 *
 * Between rounds readers see a partly merged tree, which is fine: every
 * block a merge touches is shadowed, until the merge's segment commits,
 * by the delta or by that segment's own buffer (volume-read.c resolves
 * them first); and merging the same runs again changes nothing more,
 * so a merge that fails half way may simply be done again. */

/* A place in a run list: block k of run i. */
struct hf_vol_rpos {
  size_t i;
  uint64_t k;
};

static bool
hf_vol_rpos_before (const struct hf_vol_rpos *a, const struct hf_vol_rpos *b)
{
  return a->i < b->i || (a->i == b->i && a->k < b->k);
}

/* Apply runs r from *pos up to end to the tree (holes remove, data
 * inserts with the runs' block addresses), advancing *pos.  Caller
 * holds tree_lock exclusively; with no-read mode on, EAGAIN stops it at
 * the piece to do again. */
static int
hf_vol_tree_apply (struct hf_volume *v, const struct hf_runs *r,
                   struct hf_vol_rpos *pos, const struct hf_vol_rpos *end)
{
  int e = 0;

  while (e == 0 && hf_vol_rpos_before (pos, end)) {
    const struct hf_run *x = &r->v[pos->i];
    uint64_t stop = pos->i == end->i ? end->k : x->n;

    if (!x->data) {
      e = hf_btree_remove_range (v->tree, x->lba + pos->k, stop - pos->k);
      if (e == 0)
        pos->k = stop;
    }
    else
      for (; pos->k < stop && e == 0; pos->k += e == 0) {
        struct hf_bmap m = { x->seq, x->blk + (uint32_t) pos->k,
                             x->crc[pos->k] };
        e = hf_btree_insert (v->tree, x->lba + pos->k, &m);
      }
    if (pos->k == x->n) {
      pos->i++;
      pos->k = 0;
    }
  }
  return e;
}

/* Rounds without progress before the merge gives up: each pins one
 * more missed node, and one mutation misses at most a path's worth. */
#define HF_VOL_MERGE_STALLS (4 * 32)

/* Merge the runs r into the tree in rounds (above).  Takes and drops
 * tree_lock itself.  On error (the store's, ENOMEM) the tree may be
 * partly merged (see above). */
static int
hf_vol_tree_merge (struct hf_volume *v, const struct hf_runs *r)
{
  struct hf_vol_rpos pos = { 0, 0 }, end;
  struct hf_btree_pins *pins = NULL, *miss = NULL;
  size_t max = v->o.node_cache;
  unsigned stalls = 0;
  int e = 0;

  while (e == 0 && pos.i < r->n) {
    struct hf_vol_rpos from = pos;

    /* Read and pin what the next runs visit. */
    pthread_rwlock_rdlock (&v->tree_lock);
    e = hf_btree_pin_missed (v->tree, &miss);
    for (end = pos; e == 0 && end.i < r->n;) {
      const struct hf_run *x = &r->v[end.i];
      uint64_t done;

      if (hf_btree_pins_count (pins) >= max && hf_vol_rpos_before (&pos,
                                                                   &end))
        break;
      e = hf_btree_pin_range (v->tree, x->lba + end.k, x->n - end.k, max,
                              &pins, &done);
      if (e)
        break;
      end.k += done;
      if (end.k < x->n)
        break;                  /* a full batch ends inside this run */
      end.i++;
      end.k = 0;
    }
    pthread_rwlock_unlock (&v->tree_lock);

    /* Apply them, in memory only. */
    if (e == 0) {
      hf_vol_tree_wrlock (v);
      hf_btree_set_noread (v->tree, true);
      e = hf_vol_tree_apply (v, r, &pos, &end);
      hf_btree_set_noread (v->tree, false);
      hf_vol_tree_wrunlock (v);
    }
    hf_btree_unpin (v->tree, pins);
    pins = NULL;
    if (hf_vol_rpos_before (&from, &pos)) {
      hf_btree_unpin (v->tree, miss);   /* what it missed is behind */
      miss = NULL;
      stalls = 0;
    }
    if (e == EAGAIN) {
      e = 0;
      if (++stalls > HF_VOL_MERGE_STALLS) {
        hf_error ("volume: merging into the index: no progress after %u "
                  "rounds at run %zu", stalls - 1, pos.i);
        e = EIO;
      }
    }
  }
  hf_btree_unpin (v->tree, miss);
  return e;
}

/* Lay out checkpoint segment s (its tables built): drain the pipeline,
 * merge the delta and s's own extents into the tree, write the dirty
 * nodes into a new object's node area and publish the object in s (node
 * reads of s are served from it until it commits).  On success *obj and
 * *obj_cap are the object.  On failure nothing is allocated; a failed
 * merge leaves the tree partly merged, which is harmless (see above:
 * the builder tries again); a failure in the layout that follows
 * breaks the volume (v->broken). */
int
hf_vol_ckpt_build (struct hf_volume *v, struct hf_vol_seg *s,
                   uint8_t **objp, size_t *obj_capp)
{
  struct hf_seg_hdr *h = &s->meta.h;
  struct hf_runs own = { 0 }, merged = { 0 };
  struct hf_btree_root root;
  struct hf_btree_stats bst;
  uint8_t *obj = NULL;
  size_t obj_cap = 0, dirty = 0, nn = 0;
  struct hf_vol_rpos pos, end;
  int r, tries;

  /* Drain: every earlier segment must have committed, so that the
   * delta is exactly the state before this segment. */
  hf_vol_lock (v);
  while (v->sealed != s && !v->stop)
    hf_vol_wait (v, &v->commit_cv, 0);
  if (v->stop) {
    hf_vol_unlock (v);
    return ECANCELED;
  }
  hf_vol_unlock (v);

  /* No commit can change the delta until s commits, so it is read
   * here without v->lock (readers only read it). */
  h->data_off = 0;
  r = hf_runs_of_segment (&s->meta, v->bs, &own);
  if (r == 0)
    r = hf_runs_overlay (v->delta.v, v->delta.n, own.v, own.n, false,
                         &merged);
  if (r == 0)
    r = hf_vol_tree_merge (v, &merged);
  hf_runs_free (&merged);
  if (r) {
    /* The tree may be partly merged: harmless, the builder tries
     * again (see above). */
    hf_runs_free (&own);
    hf_error ("volume: checkpoint for segment %" PRIu64 ": merging into "
              "the index: %s", s->seq, strerror (r));
    return r;
  }

  /* The own blocks' addresses depend on the node count, which depends
   * on the merge: re-insert them until the layout is stable (one
   * extra pass at most: rewriting dirty leaves dirties nothing new).
   * Their paths are dirty (in memory) since the merge inserted them. */
  hf_vol_tree_wrlock (v);
  hf_btree_set_noread (v->tree, true);
  for (tries = 0; r == 0; tries++) {
    uint64_t old_data_off = h->data_off;
    dirty = hf_btree_dirty_count (v->tree);
    h->n_nodes = (uint32_t) dirty;
    if (hf_seg_layout (h)) {
      r = EFBIG;
      break;
    }
    if (h->data_off == old_data_off)
      break;
    if (tries == 4) {
      r = EIO;
      hf_error ("volume: checkpoint layout does not converge");
      break;
    }
    r = hf_runs_of_segment (&s->meta, v->bs, &own);
    pos = (struct hf_vol_rpos) { 0, 0 };
    end = (struct hf_vol_rpos) { own.n, 0 };
    if (r == 0)
      r = hf_vol_tree_apply (v, &own, &pos, &end);
    if (r == EAGAIN) {
      hf_error ("volume: checkpoint: an index path of the segment's own "
                "blocks is not in memory");
      r = EIO;
    }
  }
  hf_btree_set_noread (v->tree, false);
  hf_runs_free (&own);
  if (r == 0) {
    obj = hf_vol_obj_alloc (v, h->object_size, &obj_cap);
    if (obj == NULL)
      r = ENOMEM;
  }
  if (r == 0)
    r = hf_btree_checkpoint (v->tree, s->seq,
                             (uint32_t) (h->node_off / HF_NODE_SIZE),
                             obj + h->node_off, &nn, &root);
  if (r == 0 && nn != dirty) {
    hf_error ("volume: checkpoint wrote %zu nodes, expected %zu",
              nn, dirty);
    r = EIO;
  }
  if (r) {
    hf_vol_tree_wrunlock (v);
    free (obj);
    /* The tree's layout is half done: stop writing. */
    hf_vol_lock (v);
    v->broken = r == ENOMEM ? ENOMEM : EIO;
    hf_vol_wake_all_locked (v);
    hf_vol_unlock (v);
    hf_error ("volume: checkpoint merge for segment %" PRIu64
              " failed: %s; the volume refuses writes until reopened",
              s->seq, strerror (r));
    return r;
  }
  hf_btree_get_stats (v->tree, &bst);
  h->flags |= HF_SH_CHECKPOINT | (s->rollback ? HF_SH_ROLLBACK : 0);
  h->ckpt_seq = s->seq;
  if (!root.empty) {
    h->ckpt_root = root.ptr;
    h->ckpt_level = root.level;
  }
  h->mapped = bst.entries;
  v->b_root = root;
  v->b_ckpt_seq = s->seq;
  v->b_mapped = bst.entries;
  /* Node reads of this segment are served from memory until it
   * commits: publish the object before other readers can need it. */
  hf_vol_lock (v);
  s->obj = obj;
  s->obj_cap = obj_cap;
  s->obj_len = h->object_size;  /* the image (before any compression) */
  hf_vol_unlock (v);
  hf_vol_tree_wrunlock (v);
  *objp = obj;
  *obj_capp = obj_cap;
  return 0;
}

/* ---- Rollback ----
 *
 * Two phases.  The read phase reads the state at seq (its checkpoint
 * tree, opened cold, and its roll-forward) into a struct hf_vol_point
 * with no tree lock: it changes nothing of the volume, whose reads and
 * writes go on.  The install phase, under tree_lock exclusively and
 * v->lock, revalidates (nothing sealed, the head the one the read
 * phase started from: otherwise the pipeline is drained and it tries
 * again), swaps in the tree, delta and size, and seals the rollback
 * segment: no store request, and the old state is freed after the
 * locks are dropped.  The checkpoint of that segment (above) then
 * merges with its node reads under the shared lock. */

#define HF_VOL_ROLLBACK_TRIES 4

/* Install pt (whose tree, delta and tables move into v) and seal the
 * rollback segment, if nothing is sealed and the head is still head.
 * 0, EAGAIN (revalidation failed: *head is the head now, nothing
 * changed) or the write error that refuses it.  The replaced state is
 * returned in *old to be freed without the locks. */
static int
hf_vol_rollback_install (struct hf_volume *v, struct hf_vol_point *pt,
                         uint64_t *head, struct hf_vol_point *old)
{
  int r;

  memset (old, 0, sizeof *old);
  hf_vol_tree_wrlock (v);
  hf_vol_lock (v);
  r = hf_vol_write_err_locked (v);
  if (r == 0 && (v->sealed != NULL || v->head_seq != *head)) {
    *head = v->head_seq;
    r = EAGAIN;
  }
  if (r) {
    hf_vol_unlock (v);
    hf_vol_tree_wrunlock (v);
    return r;
  }
  /* What names the real head (the rollback segment chains onto it)
   * and the numbering (seqs above every seq seen) stay; the builder is
   * idle (nothing is sealed), so its fields may change here. */
  old->tree = v->tree;
  old->delta = v->delta;
  old->tabs = v->crc_tabs;
  v->tree = pt->tree;
  v->delta = pt->delta;
  v->crc_tabs = pt->tabs;
  pt->tree = NULL;
  memset (&pt->delta, 0, sizeof pt->delta);
  memset (&pt->tabs, 0, sizeof pt->tabs);
  v->size = pt->size;
  v->ckpt_seq = pt->ckpt_seq;
  v->b_ckpt_seq = pt->ckpt_seq;
  v->b_root = pt->root;
  v->b_mapped = pt->mapped;
  v->b_segs_since = pt->segs_since;
  v->b_ext_since = pt->ext_since;
  /* One checkpoint segment holding seq's whole state, flagged. */
  r = hf_vol_seal_locked (v, true, true);
  if (r == 0)
    v->sealed_tail->rollback = true;
  else {
    /* The state in memory is seq's, the store's is not: stop. */
    v->broken = r == ENOMEM ? ENOMEM : EIO;
    hf_vol_wake_all_locked (v);
  }
  hf_vol_unlock (v);
  hf_vol_tree_wrunlock (v);
  return r;
}

int
hf_volume_rollback (struct hf_volume *v, uint64_t seq, uint64_t *new_seq)
{
  struct hf_volume_info vi;
  struct hf_vol_point pt, old;
  uint64_t head;
  int r, tries;

  if (v->readonly)
    return EROFS;
  /* Everything written so far is committed first, so the new segment's
   * parent is the real head and the sealed list is empty. */
  r = hf_vol_flush_wait (v);
  if (r)
    return r;
  hf_volume_get_info (v, &vi);
  head = vi.head_seq;
  if (seq == 0 || seq >= head) {
    hf_error ("volume: rollback to %" PRIu64 ": not older than the head %"
              PRIu64, seq, head);
    return EINVAL;
  }
  /* Check that seq's chain is intact before reading its state. */
  r = hf_vol_chain_check (v, seq);
  if (r) {
    hf_error ("volume: rollback to %" PRIu64 ": not a readable point in "
              "time (%s)", seq, strerror (r));
    return r == ENOMEM ? r : EINVAL;
  }

  /* Read phase: no tree lock (reads go on), nothing changes. */
  r = hf_vol_point_read (v, seq, &pt);
  if (r) {
    hf_error ("volume: rollback to %" PRIu64 ": reading that point: %s; "
              "nothing changed", seq, strerror (r));
    return r;
  }
  /* Install phase; if a write committed meanwhile, drain and retry
   * (the state at seq does not depend on the head). */
  for (tries = 0;; tries++) {
    r = hf_vol_rollback_install (v, &pt, &head, &old);
    if (r != EAGAIN || tries + 1 == HF_VOL_ROLLBACK_TRIES)
      break;
    r = hf_vol_flush_wait (v);
    if (r)
      break;
  }
  hf_vol_point_free (&pt);
  hf_vol_point_free (&old);
  if (r == EAGAIN) {
    hf_error ("volume: rollback to %" PRIu64 ": writes kept committing; "
              "nothing changed", seq);
    return EBUSY;
  }
  if (r == 0)
    r = hf_vol_flush_wait (v);
  if (r) {
    hf_error ("volume: rollback to %" PRIu64 ": %s", seq, strerror (r));
    return r;
  }
  hf_volume_get_info (v, &vi);
  hf_info ("volume: rolled back to segment %" PRIu64 " as segment %" PRIu64,
           seq, vi.head_seq);
  if (new_seq)
    *new_seq = vi.head_seq;
  return 0;
}

int
hf_volume_touch_index (struct hf_volume *v, uint64_t lba)
{
  struct hf_btree_pins *pins = NULL;
  struct hf_bmap m;
  uint64_t done;
  unsigned tries;
  int r;

  hf_vol_lock (v);
  r = hf_vol_write_err_locked (v);
  hf_vol_unlock (v);
  if (r)
    return r;
  /* Pin lba's path (shared lock), then copy it (exclusive, no-read
   * mode: see the merge above). */
  for (tries = 0;; tries++) {
    pthread_rwlock_rdlock (&v->tree_lock);
    r = hf_btree_pin_missed (v->tree, &pins);
    if (r == 0)
      r = hf_btree_pin_range (v->tree, lba, 1, SIZE_MAX, &pins, &done);
    pthread_rwlock_unlock (&v->tree_lock);
    if (r)
      break;
    hf_vol_tree_wrlock (v);
    hf_btree_set_noread (v->tree, true);
    r = hf_btree_lookup (v->tree, lba, &m);
    if (r == 0)
      r = hf_btree_insert (v->tree, lba, &m);   /* same value: copies the path */
    else if (r == ENOENT)
      r = 0;
    hf_btree_set_noread (v->tree, false);
    hf_vol_tree_wrunlock (v);
    if (r != EAGAIN || tries == HF_VOL_MERGE_STALLS)
      break;
  }
  hf_btree_unpin (v->tree, pins);
  if (r == EAGAIN) {
    hf_error ("volume: touching the index at %" PRIu64 ": no progress",
              lba);
    r = EIO;
  }
  return r;
}

int
hf_volume_checkpoint (struct hf_volume *v)
{
  if (v->readonly)
    return EROFS;
  return hf_vol_flush_wait_force (v, true);
}
