/* hyperfile: the volume's read path (see volume-int.h for the map).
 *
 * Per block, newest first: the active buffer, the sealed segments
 * (newest first), the delta, the B+tree; then the data: in-memory bytes,
 * zeros for holes, or a ranged GET (hooks->cache_get first) that
 * coalesces neighbouring blocks of one segment; GETs of different
 * ranges run in parallel threads.  Every block is checked against its
 * CRC32C: a mismatch is EBADMSG, logged with object key and offset.
 * Two reads in a row that each start where the previous one ended wake
 * the read-ahead thread, which fetches the next contiguous physical run
 * (up to 2 MiB) into a small buffer keyed by (segment, block): physical
 * data is immutable, so that buffer never needs invalidating.
 *
 * Lock rule: memory and the delta are resolved under v->lock, the tree
 * under a shared tree_lock, never both at once; the store is read with
 * no lock held.  The read-ahead state is under ra_lock (a leaf).
 *
 * Store reads go through the object-store layer's retry policy
 * (hf_objstore_get_retry, objstore.h).
 *
 * Compressed segments (format.h): blocks keep their image addresses, so
 * everything above the store read is unchanged (the cache, the
 * read-ahead buffer and pending objects hold image bytes).  A store
 * read of a compressed segment's blocks fetches the frames that hold
 * them with one ranged GET, located by the segment's frame table: kept
 * in v->ftabs (the builder's own at commit; others read with the
 * segment's tables on first use, one GET), under ft_lock, a leaf that
 * is never held across I/O.  A table read from the store, and the
 * builder's own at commit (volume-upload.c), are also given to
 * hooks->tables_put (the cache's table files), and a table not in
 * memory is asked of hooks->tables_get before the store: after a
 * restart a read that misses the block cache costs one GET, as for an
 * uncompressed segment, not a table GET and then the frames' GET.
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

/* ---- Reading blocks and nodes ---- */

/* The key of segment seq, and the store holding it: the volume's own,
 * or for a clone's seq <= its base, an ancestor's (lineage.h). */
static struct hf_objstore *
hf_vol_seg_loc (const struct hf_volume *v, uint64_t seq, char *key,
                size_t len)
{
  const struct hf_lineage_level *lv = hf_lineage_locate (v->lin, seq);

  hf_seg_key_vd (key, len, lv->prefix, lv->d.flags, seq);
  return lv->store;
}

/* Copy bytes of segment seq at off from its in-memory object, if it is
 * still pending.  0, or ENOENT if not in memory.  The copy (up to a
 * read chunk, 4 MiB) is made without v->lock: the segment is pinned
 * meanwhile, and its commit waits for the pin to go. */
static int
hf_vol_mem_object (struct hf_volume *v, uint64_t seq, uint64_t off,
                   void *buf, size_t len)
{
  struct hf_vol_seg *s;
  const uint8_t *obj;

  hf_vol_lock (v);
  for (s = v->sealed; s; s = s->next)
    if (s->seq == seq)
      break;
  if (s == NULL || s->obj == NULL || off + len > s->obj_len) {
    hf_vol_unlock (v);
    return ENOENT;
  }
  s->pins++;
  obj = s->obj;
  hf_vol_unlock (v);
  memcpy (buf, obj + off, len);
  hf_vol_lock (v);
  if (--s->pins == 0)
    pthread_cond_broadcast (&v->commit_cv);
  hf_vol_unlock (v);
  return 0;
}


/* Read exactly len bytes of a segment object into buf: a missing object
 * or a short one is corruption of the volume (EBADMSG, logged with the
 * object and offset of what is missing), other errors pass through. */
static int
hf_vol_get_exact (struct hf_objstore *s, const char *key, uint64_t off,
                  size_t len, void *buf, const char *what)
{
  size_t got = 0;
  int r = hf_objstore_get_retry (s, key, off, len, buf, &got);

  if (r == ENOENT) {
    hf_error ("volume: %s at %s offset %" PRIu64 ": object missing",
              what, key, off);
    return EBADMSG;
  }
  if (r)
    return r;
  if (got != len) {
    hf_error ("segment %s: corrupt at byte offset %" PRIu64
              ": %s truncated", key, off + got, what);
    return EBADMSG;
  }
  return 0;
}

int
hf_vol_read_node (void *opaque, const struct hf_disk_node_ptr *ptr, void *buf)
{
  struct hf_volume *v = opaque;
  const struct hf_volume_hooks *hk = v->o.hooks;
  char key[HF_OBJSTORE_KEY_MAX + 1];
  uint64_t off = (uint64_t) ptr->np_off * HF_NODE_SIZE;
  int r;

  if (hf_vol_mem_object (v, ptr->np_seq, off, buf, HF_NODE_SIZE) == 0)
    return 0;
  if (hk && hk->cache_get &&
      hk->cache_get (hk->opaque, ptr->np_seq, off, buf, HF_NODE_SIZE) == 0)
    return 0;
  r = hf_vol_get_exact (hf_vol_seg_loc (v, ptr->np_seq, key, sizeof key),
                        key, off, HF_NODE_SIZE, buf, "node");
  if (r)
    return r;
  if (hk && hk->cache_put)
    hk->cache_put (hk->opaque, ptr->np_seq, off, buf, HF_NODE_SIZE, NULL);
  return 0;
}

/* ---- Frame tables ---- */

static void
hf_vol_ftab_drop (struct hf_vol_ftab *t)
{
  free (t->frames);
  memset (t, 0, sizeof *t);
}

void
hf_vol_ftab_put (struct hf_volume *v, uint64_t seq,
                 const struct hf_seg_hdr *h, struct hf_seg_frame *frames)
{
  struct hf_vol_ftab *t = NULL;
  unsigned i;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&v->ft_lock);

  for (i = 0; i < HF_VOL_FTABS; i++) {
    struct hf_vol_ftab *c = &v->ftabs[i];
    if (c->seq == seq) {        /* another reader was first */
      c->used = ++v->ft_tick;
      free (frames);
      return;
    }
    if (t == NULL || c->seq == 0 || (t->seq != 0 && c->used < t->used))
      t = c;
  }
  hf_vol_ftab_drop (t);
  t->seq = seq;
  t->used = ++v->ft_tick;
  t->h = *h;
  t->frames = frames;
}

void
hf_vol_ftab_clear (struct hf_volume *v)
{
  unsigned i;

  for (i = 0; i < HF_VOL_FTABS; i++)
    hf_vol_ftab_drop (&v->ftabs[i]);
}

/* The frames of a table (header th, frames tf) that hold blocks
 * [blk, blk + n): *h = *th and fr[0..*nf) (allocated, caller frees),
 * the first being frame *f0.  EBADMSG (logged) if the blocks are not
 * in the data area. */
static int
hf_vol_frames_pick (const struct hf_seg_hdr *th,
                    const struct hf_seg_frame *tf, const char *key,
                    uint32_t blk, uint32_t n, struct hf_seg_hdr *h,
                    struct hf_seg_frame **fr, uint32_t *f0, uint32_t *nf)
{
  uint64_t d0;

  *h = *th;
  *fr = NULL;
  *f0 = *nf = 0;
  if (h->codec == 0)
    return 0;
  d0 = (uint64_t) blk - h->data_off / h->block_size;
  if (blk < h->data_off / h->block_size || n == 0 ||
      d0 + n > h->n_data) {
    hf_error ("segment %s: corrupt at byte offset %" PRIu64 ": the index "
              "names data blocks outside its data area", key,
              (uint64_t) blk * h->block_size);
    return EBADMSG;
  }
  *f0 = (uint32_t) (d0 / h->frame_blocks);
  *nf = (uint32_t) ((d0 + n - 1) / h->frame_blocks) - *f0 + 1;
  *fr = malloc (*nf * sizeof **fr);
  if (*fr == NULL)
    return ENOMEM;
  memcpy (*fr, tf + *f0, *nf * sizeof **fr);
  return 0;
}

/* The same from the kept table of segment seq: ENOENT if not kept. */
static int
hf_vol_ftab_find (struct hf_volume *v, uint64_t seq, const char *key,
                  uint32_t blk, uint32_t n, struct hf_seg_hdr *h,
                  struct hf_seg_frame **fr, uint32_t *f0, uint32_t *nf)
{
  unsigned i;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&v->ft_lock);

  for (i = 0; i < HF_VOL_FTABS; i++)
    if (v->ftabs[i].seq == seq)
      break;
  if (i == HF_VOL_FTABS)
    return ENOENT;
  v->ftabs[i].used = ++v->ft_tick;
  return hf_vol_frames_pick (&v->ftabs[i].h, v->ftabs[i].frames, key, blk, n,
                             h, fr, f0, nf);
}

struct hf_vol_ftab_args {
  const struct hf_lineage_level *lv;
  uint64_t seq;
  uint32_t bs;
  struct hf_seg_meta **m;
  void **tables;                /* hf_seg_tables_encode of it, or NULL */
  size_t *tables_len;
};

static int
hf_vol_ftab_attempt (void *arg, unsigned attempt)
{
  struct hf_vol_ftab_args *a = arg;

  free (*a->tables);
  *a->tables = NULL;
  return hf_seg_read_meta_tables (a->lv->store, a->lv->prefix,
                                  a->lv->d.flags, a->seq, a->lv->d.uuid,
                                  a->bs, HF_SEG_SIZE_ANY, a->m, a->tables,
                                  a->tables_len);
}

/* Load the frame table of compressed segment seq (key) from the kept
 * table files (hooks->tables_get) into v->ftabs.  0, or ENOENT if not
 * kept or not usable (then the store is asked). */
static int
hf_vol_ftab_local (struct hf_volume *v, const struct hf_lineage_level *lv,
                   uint64_t seq, const char *key)
{
  const struct hf_volume_hooks *hk = v->o.hooks;
  char what[HF_OBJSTORE_KEY_MAX + 64];
  CLEANUP_FREE void *buf = NULL;
  struct hf_seg_frame *fr;
  struct hf_seg_hdr h;
  size_t len;

  if (hk == NULL || hk->tables_get == NULL ||
      hk->tables_get (hk->opaque, seq, &buf, &len) != 0)
    return ENOENT;
  snprintf (what, sizeof what, "%s (its tables kept in the cache)", key);
  if (hf_seg_tables_decode (buf, len, what, lv->d.uuid, v->bs, seq, &h,
                            &fr) != 0)
    return ENOENT;              /* logged; the store has them */
  hf_vol_ftab_put (v, seq, &h, fr);
  atomic_fetch_add_explicit (&v->ftab_local, 1, memory_order_relaxed);
  return 0;
}

/* Read blocks [blk, blk + n) of segment seq (key in store st) into buf:
 * from the frames that hold them if the segment is compressed, else as
 * they are.  Block CRCs are the caller's to check. */
static int
hf_vol_get_blocks (struct hf_volume *v, struct hf_objstore *st,
                   const char *key, uint64_t seq, uint32_t blk, uint32_t n,
                   uint8_t *buf)
{
  const struct hf_lineage_level *lv = hf_lineage_locate (v->lin, seq);
  CLEANUP_FREE struct hf_seg_frame *fr = NULL;
  CLEANUP_FREE uint8_t *stored = NULL, *tmp = NULL;
  struct hf_seg_hdr h;
  uint32_t f0, nf, i;
  uint64_t first, end;
  int r;

  if (lv->d.codec == 0)
    return hf_vol_get_exact (st, key, (uint64_t) blk * v->bs,
                             (size_t) n * v->bs, buf, "data block");
  r = hf_vol_ftab_find (v, seq, key, blk, n, &h, &fr, &f0, &nf);
  if (r == ENOENT && hf_vol_ftab_local (v, lv, seq, key) == 0)
    r = hf_vol_ftab_find (v, seq, key, blk, n, &h, &fr, &f0, &nf);
  if (r == ENOENT) {
    const struct hf_volume_hooks *hk = v->o.hooks;
    struct hf_seg_meta *m = NULL;
    CLEANUP_FREE void *tables = NULL;
    size_t tables_len = 0;
    struct hf_vol_ftab_args a = { lv, seq, v->bs, &m, &tables, &tables_len };

    r = hf_objstore_retry (lv->store, hf_vol_ftab_attempt, &a);
    if (r == ENOENT || r == ENODATA) {
      hf_error ("volume: data block at %s offset %" PRIu64 ": object "
                "missing", key, (uint64_t) blk * v->bs);
      return EBADMSG;
    }
    if (r)
      return r;
    atomic_fetch_add_explicit (&v->ftab_gets, 1, memory_order_relaxed);
    if (tables && hk && hk->tables_put)
      hk->tables_put (hk->opaque, seq, tables, tables_len);
    r = hf_vol_frames_pick (&m->h, m->frames, key, blk, n, &h, &fr, &f0,
                            &nf);
    hf_vol_ftab_put (v, seq, &m->h, m->frames);
    m->frames = NULL;
    hf_seg_meta_destroy (m);
  }
  if (r)
    return r;
  if (h.codec == 0)
    return hf_vol_get_exact (st, key, (uint64_t) blk * v->bs,
                             (size_t) n * v->bs, buf, "data block");

  first = fr[0].off;
  end = fr[nf - 1].off + fr[nf - 1].len;
  stored = malloc (end - first);
  tmp = malloc ((size_t) h.frame_blocks * v->bs);
  if (stored == NULL || tmp == NULL)
    return ENOMEM;
  r = hf_vol_get_exact (st, key, first, end - first, stored, "frame");
  if (r)
    return r;
  for (i = 0; i < nf; i++) {
    uint64_t fb0 = h.data_off / v->bs + (uint64_t) (f0 + i) * h.frame_blocks;
    uint64_t fb1 = fb0 + hf_seg_frame_nblocks (&h, f0 + i);
    uint64_t a = fb0 > blk ? fb0 : blk;
    uint64_t e = fb1 < (uint64_t) blk + n ? fb1 : (uint64_t) blk + n;

    r = hf_seg_frame_decode (&h, f0 + i, &fr[i], stored + (fr[i].off - first),
                             key, tmp);
    if (r)
      return r;
    memcpy (buf + (a - blk) * v->bs, tmp + (a - fb0) * v->bs,
            (e - a) * v->bs);
  }
  return 0;
}

/* Copy blocks [blk, blk + n) of segment seq from the read-ahead
 * buffer: 0, or ENOENT if it does not hold all of them. */
static int
hf_vol_ra_get (struct hf_volume *v, uint64_t seq, uint32_t blk, uint32_t n,
               uint8_t *buf)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&v->ra_lock);

  if (v->ra_n == 0 || v->ra_seq != seq || blk < v->ra_blk ||
      (uint64_t) blk + n > (uint64_t) v->ra_blk + v->ra_n)
    return ENOENT;
  memcpy (buf, v->ra_data + (size_t) (blk - v->ra_blk) * v->bs,
          (size_t) n * v->bs);
  return 0;
}

/* Fetch n blocks of segment seq starting at block blk into buf and
 * verify them against crcs.  Pending objects, the read-ahead buffer
 * and the cache hook are tried first. */
int
hf_vol_fetch (struct hf_volume *v, uint64_t seq, uint32_t blk, uint32_t n,
              const uint32_t *crcs, uint8_t *buf)
{
  const struct hf_volume_hooks *hk = v->o.hooks;
  char key[HF_OBJSTORE_KEY_MAX + 1];
  uint64_t off = (uint64_t) blk * v->bs;
  size_t len = (size_t) n * v->bs;
  bool from_cache = false;
  struct hf_objstore *st;
  uint32_t i;
  int r;

  st = hf_vol_seg_loc (v, seq, key, sizeof key);
  if (hf_vol_mem_object (v, seq, off, buf, len) == 0 ||
      hf_vol_ra_get (v, seq, blk, n, buf) == 0)
    from_cache = true;
  else if (hk && hk->cache_get &&
           hk->cache_get (hk->opaque, seq, off, buf, len) == 0) {
    from_cache = true;
    atomic_fetch_add_explicit (&v->cache_hits, 1, memory_order_relaxed);
  }
  if (from_cache) {
    for (i = 0; i < n; i++)
      if (hf_crc32c (0, buf + (size_t) i * v->bs, v->bs) != crcs[i])
        break;
    if (i == n)
      return 0;
    /* A bad cached copy: fall back to the store. */
  }
  if (hk && hk->cache_get)
    atomic_fetch_add_explicit (&v->cache_misses, 1, memory_order_relaxed);
  r = hf_vol_get_blocks (v, st, key, seq, blk, n, buf);
  if (r)
    return r;
  for (i = 0; i < n; i++)
    if (hf_crc32c (0, buf + (size_t) i * v->bs, v->bs) != crcs[i]) {
      hf_error ("segment %s: corrupt at byte offset %" PRIu64
                ": data block CRC mismatch", key,
                off + (uint64_t) i * v->bs);
      return EBADMSG;
    }
  if (hk && hk->cache_put)
    hk->cache_put (hk->opaque, seq, off, buf, len, crcs);  /* checked */
  return 0;
}


/* Resolve lba in memory and the delta.  If the bytes are in memory and
 * copy is not NULL, they are copied there.  Caller holds v->lock. */
void
hf_vol_resolve_locked (struct hf_volume *v, uint64_t lba, uint8_t *copy,
                       struct hf_vol_loc *loc)
{
  const uint8_t *p;
  bool zero;
  struct hf_vol_seg *s;
  ssize_t k;

  HF_VOL_ASSERT_LOCKED (v);
  memset (loc, 0, sizeof *loc);
  if (v->active) {
    p = hf_wbuf_lookup (v->active, v->bs, lba, &zero);
    if (p || zero)
      goto found;
  }
  /* Sealed segments, newest first. */
  for (s = v->sealed_tail; s; s = s->prev) {
    p = hf_wbuf_lookup (s->buf, v->bs, lba, &zero);
    if (p || zero)
      goto found;
  }
  k = hf_runs_find (&v->delta, lba);
  if (k >= 0) {
    const struct hf_run *r = &v->delta.v[k];
    if (!r->data) {
      loc->where = HF_VW_ZERO;
      if (copy)
        memset (copy, 0, v->bs);
    }
    else {
      loc->where = HF_VW_STORE;
      loc->seq = r->seq;
      loc->blk = r->blk + (uint32_t) (lba - r->lba);
      loc->crc = r->crc[lba - r->lba];
    }
    return;
  }
  loc->where = HF_VW_NONE;
  return;

 found:
  if (p) {
    loc->where = HF_VW_MEM;
    if (copy)
      memcpy (copy, p, v->bs);
  }
  else {
    loc->where = HF_VW_ZERO;
    if (copy)
      memset (copy, 0, v->bs);
  }
}

/* Resolve a HF_VW_NONE location through the tree. */
int
hf_vol_resolve_tree (struct hf_volume *v, uint64_t lba, struct hf_vol_loc *loc)
{
  struct hf_bmap m;
  int r;

  r = hf_btree_lookup (v->tree, lba, &m);
  if (r == ENOENT) {
    loc->where = HF_VW_ZERO;
    return 0;
  }
  if (r)
    return r;
  loc->where = HF_VW_STORE;
  loc->seq = m.seq;
  loc->blk = m.blk;
  loc->crc = m.crc;
  return 0;
}

/* One coalesced GET of the read path. */
struct hf_vol_rgroup {
  uint64_t lba;                 /* first block */
  uint64_t seq;
  uint32_t blk, n;
  uint32_t *crcs;               /* into the plan's crc array */
  uint8_t *out;                 /* n blocks, bounce buffer */
  int err;
};

/* ---- The read pool ----
 *
 * HF_VOL_READ_THREADS - 1 threads, started at open, help reads that fan
 * out into several GETs: such a read posts one job on v->rp_queue and
 * takes its groups one by one itself, as do the pool's threads, until
 * none is left.  (Before, every such read chunk created and joined up
 * to seven threads.)  rp_lock guards the queue, each job's done and
 * users, and rp_stop; a job's groups are claimed with an atomic index.
 * The job lives on the reader's stack: the reader leaves only when
 * every group is done and no pool thread still uses the job. */
struct hf_vol_rjob {
  struct hf_volume *v;
  struct hf_vol_rgroup *g;
  size_t ng;
  atomic_size_t next;           /* next group to claim */
  size_t done;                  /* rp_lock: groups finished */
  unsigned users;               /* rp_lock: pool threads inside it */
  struct hf_vol_rjob *qnext;    /* rp_lock: on v->rp_queue */
  bool queued;                  /* rp_lock */
};

/* Claim and fetch groups of j until none is left; the number done. */
static size_t
hf_vol_rjob_run (struct hf_vol_rjob *j)
{
  size_t i, k = 0;

  while ((i = atomic_fetch_add (&j->next, 1)) < j->ng) {
    struct hf_vol_rgroup *g = &j->g[i];
    g->err = hf_vol_fetch (j->v, g->seq, g->blk, g->n, g->crcs, g->out);
    k++;
  }
  return k;
}

/* Take j off the queue.  Caller holds rp_lock. */
static void
hf_vol_rjob_dequeue (struct hf_volume *v, struct hf_vol_rjob *j)
{
  struct hf_vol_rjob **pp;

  if (!j->queued)
    return;
  for (pp = &v->rp_queue; *pp != j; pp = &(*pp)->qnext)
    ;
  *pp = j->qnext;
  j->queued = false;
}

void *
hf_vol_rpool_thread (void *arg)
{
  struct hf_volume *v = arg;

  pthread_mutex_lock (&v->rp_lock);
  while (!v->rp_stop) {
    struct hf_vol_rjob *j = v->rp_queue;
    size_t k;

    if (j == NULL) {
      pthread_cond_wait (&v->rp_cv, &v->rp_lock);
      continue;
    }
    if (atomic_load (&j->next) >= j->ng) {
      hf_vol_rjob_dequeue (v, j);       /* all claimed */
      continue;
    }
    j->users++;
    pthread_mutex_unlock (&v->rp_lock);
    k = hf_vol_rjob_run (j);
    pthread_mutex_lock (&v->rp_lock);
    j->done += k;
    j->users--;
    if (j->done == j->ng || j->users == 0)
      pthread_cond_broadcast (&v->rp_done_cv);
  }
  pthread_mutex_unlock (&v->rp_lock);
  return NULL;
}

/* Fetch every group of g, with the pool's help. */
static void
hf_vol_fetch_groups (struct hf_volume *v, struct hf_vol_rgroup *g, size_t ng)
{
  struct hf_vol_rjob j = { .v = v, .g = g, .ng = ng };
  size_t k;

  atomic_init (&j.next, 0);
  if (ng > 1 && v->rp_n > 0) {
    pthread_mutex_lock (&v->rp_lock);
    j.qnext = v->rp_queue;
    v->rp_queue = &j;
    j.queued = true;
    pthread_cond_broadcast (&v->rp_cv);
    pthread_mutex_unlock (&v->rp_lock);
  }
  k = hf_vol_rjob_run (&j);
  pthread_mutex_lock (&v->rp_lock);
  j.done += k;
  hf_vol_rjob_dequeue (v, &j);
  while (j.done < j.ng || j.users > 0)
    pthread_cond_wait (&v->rp_done_cv, &v->rp_lock);
  pthread_mutex_unlock (&v->rp_lock);
}

/* Copy the part of block lba (bytes blk) that overlaps the request. */
static void
hf_vol_copy_out (uint8_t *dst, uint64_t off, size_t count, uint64_t lba,
                 uint32_t bs, const uint8_t *blk)
{
  uint64_t bstart = lba * bs, s = bstart > off ? bstart : off;
  uint64_t e = bstart + bs < off + count ? bstart + bs : off + count;

  if (blk)
    memcpy (dst + (s - off), blk + (s - bstart), e - s);
  else
    memset (dst + (s - off), 0, e - s);
}

/* Read the blocks [lba0, lba0 + n) overlapping [off, off + count) into
 * dst (dst corresponds to off). */
static int
hf_vol_read_chunk (struct hf_volume *v, uint8_t *dst, uint64_t off,
                   size_t count, uint64_t lba0, uint32_t n)
{
  CLEANUP_FREE struct hf_vol_loc *locs = calloc (n, sizeof *locs);
  CLEANUP_FREE uint8_t *tmp = malloc (v->bs);
  CLEANUP_FREE struct hf_vol_rgroup *g = NULL;
  CLEANUP_FREE uint32_t *crcs = NULL;
  CLEANUP_FREE uint8_t *bounce = NULL;
  size_t ng = 0, nfetch = 0, i, k;
  uint32_t b;
  int r = 0;

  if (locs == NULL || tmp == NULL)
    return ENOMEM;
  hf_vol_lock (v);
  for (b = 0; b < n; b++) {
    hf_vol_resolve_locked (v, lba0 + b, tmp, &locs[b]);
    if (locs[b].where == HF_VW_MEM)
      hf_vol_copy_out (dst, off, count, lba0 + b, v->bs, tmp);
  }
  hf_vol_unlock (v);

  pthread_rwlock_rdlock (&v->tree_lock);
  for (b = 0; b < n && r == 0; b++)
    if (locs[b].where == HF_VW_NONE)
      r = hf_vol_resolve_tree (v, lba0 + b, &locs[b]);
  pthread_rwlock_unlock (&v->tree_lock);
  if (r)
    return r;

  for (b = 0; b < n; b++) {
    if (locs[b].where == HF_VW_ZERO)
      hf_vol_copy_out (dst, off, count, lba0 + b, v->bs, NULL);
    else if (locs[b].where == HF_VW_STORE)
      nfetch++;
  }
  if (nfetch == 0)
    return 0;

  g = calloc (nfetch, sizeof *g);
  crcs = malloc (nfetch * sizeof *crcs);
  bounce = malloc (nfetch * (size_t) v->bs);
  if (g == NULL || crcs == NULL || bounce == NULL)
    return ENOMEM;
  k = 0;
  for (b = 0; b < n; b++) {
    struct hf_vol_loc *l = &locs[b];
    if (l->where != HF_VW_STORE)
      continue;
    if (ng > 0 && g[ng - 1].seq == l->seq &&
        g[ng - 1].blk + g[ng - 1].n == l->blk &&
        g[ng - 1].lba + g[ng - 1].n == lba0 + b)
      g[ng - 1].n++;
    else {
      g[ng].lba = lba0 + b;
      g[ng].seq = l->seq;
      g[ng].blk = l->blk;
      g[ng].n = 1;
      g[ng].crcs = &crcs[k];
      g[ng].out = bounce + k * v->bs;
      ng++;
    }
    crcs[k++] = l->crc;
  }

  hf_vol_fetch_groups (v, g, ng);
  for (i = 0; i < ng; i++) {
    if (g[i].err)
      return g[i].err;
    for (b = 0; b < g[i].n; b++)
      hf_vol_copy_out (dst, off, count, g[i].lba + b, v->bs,
                       g[i].out + (size_t) b * v->bs);
  }
  return 0;
}

/* Sequential read detection: after two reads that each start where the
 * previous ended, ask the read-ahead thread for the next
 * HF_VOL_RA_BYTES. */
static void
hf_vol_ra_note (struct hf_volume *v, uint64_t offset, size_t count)
{
  uint64_t next_lba = (offset + count + v->bs - 1) / v->bs;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&v->ra_lock);

  if (!v->ra_started)
    return;
  v->ra_streak = offset == v->ra_expect ? v->ra_streak + 1 : 0;
  v->ra_expect = offset + count;
  if (v->ra_streak >= 2 &&
      next_lba + HF_VOL_RA_BYTES / v->bs / 2 > v->ra_done_lba) {
    v->ra_req = true;
    v->ra_req_lba = next_lba > v->ra_done_lba ? next_lba : v->ra_done_lba;
    pthread_cond_signal (&v->ra_cv);
  }
}

/* The read-ahead thread: resolve the requested range and fetch the
 * first run of blocks that are contiguous in one segment. */
void *
hf_vol_ra_thread (void *arg)
{
  struct hf_volume *v = arg;
  uint32_t max = HF_VOL_RA_BYTES / v->bs;
  uint8_t *data = malloc (HF_VOL_RA_BYTES);
  uint32_t *crcs = malloc (max * sizeof *crcs);

  pthread_mutex_lock (&v->ra_lock);
  while (data && crcs && !v->ra_stop) {
    uint64_t lba, size, seq = 0;
    uint32_t i, n = 0, blk0 = 0, scanned = 0;

    if (!v->ra_req) {
      pthread_cond_wait (&v->ra_cv, &v->ra_lock);
      continue;
    }
    v->ra_req = false;
    lba = v->ra_req_lba;
    pthread_mutex_unlock (&v->ra_lock);

    hf_vol_lock (v);
    size = v->size / v->bs;
    hf_vol_unlock (v);
    for (i = 0; i < max && lba + i < size; i++) {
      struct hf_vol_loc l;
      hf_vol_lock (v);
      hf_vol_resolve_locked (v, lba + i, NULL, &l);
      hf_vol_unlock (v);
      if (l.where == HF_VW_NONE) {
        pthread_rwlock_rdlock (&v->tree_lock);
        if (hf_vol_resolve_tree (v, lba + i, &l))
          l.where = HF_VW_ZERO;
        pthread_rwlock_unlock (&v->tree_lock);
      }
      scanned = i + 1;
      if (l.where != HF_VW_STORE) {
        if (n)
          break;
        continue;
      }
      if (n == 0) {
        seq = l.seq;
        blk0 = l.blk;
      }
      else if (l.seq != seq || l.blk != blk0 + n)
        break;
      crcs[n++] = l.crc;
    }
    if (n && hf_vol_fetch (v, seq, blk0, n, crcs, data) == 0) {
      pthread_mutex_lock (&v->ra_lock);
      memcpy (v->ra_data, data, (size_t) n * v->bs);
      v->ra_seq = seq;
      v->ra_blk = blk0;
      v->ra_n = n;
      v->ra_done_lba = lba + scanned;
    }
    else {
      pthread_mutex_lock (&v->ra_lock);
      v->ra_done_lba = lba + scanned;
    }
  }
  pthread_mutex_unlock (&v->ra_lock);
  free (data);
  free (crcs);
  return NULL;
}

/* EINVAL unless [offset, offset + count) is inside the volume. */
static int
hf_vol_check_range (struct hf_volume *v, uint64_t count, uint64_t offset)
{
  int r = 0;

  hf_vol_lock (v);
  if (offset > v->size || count > v->size - offset)
    r = EINVAL;
  hf_vol_unlock (v);
  return r;
}

int
hf_volume_pread (struct hf_volume *v, void *buf, size_t count,
                 uint64_t offset)
{
  uint64_t lba, end_lba;
  int r;

  r = hf_vol_check_range (v, count, offset);
  if (r || count == 0)
    return r;
  lba = offset / v->bs;
  end_lba = (offset + count + v->bs - 1) / v->bs;
  while (lba < end_lba) {
    uint32_t n = end_lba - lba > HF_VOL_READ_CHUNK ? HF_VOL_READ_CHUNK
      : (uint32_t) (end_lba - lba);
    r = hf_vol_read_chunk (v, buf, offset, count, lba, n);
    if (r)
      return r;
    lba += n;
  }
  atomic_fetch_add_explicit (&v->bytes_read, count, memory_order_relaxed);
  hf_vol_ra_note (v, offset, count);
  return 0;
}

int
hf_volume_prefetch (struct hf_volume *v, uint64_t count, uint64_t offset)
{
  /* With a cache hook: read the range so that the hook keeps it.
   * Without one: a read-ahead request for its start. */
  const struct hf_volume_hooks *hk = v->o.hooks;
  CLEANUP_FREE uint8_t *buf = NULL;
  int r;

  r = hf_vol_check_range (v, count, offset);
  if (r || count == 0)
    return r;
  if (hk == NULL || hk->cache_put == NULL) {
    /* No cache: let the read-ahead thread fetch the start of it. */
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&v->ra_lock);
    if (v->ra_started) {
      v->ra_req = true;
      v->ra_req_lba = offset / v->bs;
      pthread_cond_signal (&v->ra_cv);
    }
    return 0;
  }
  if (count > 8 << 20)
    count = 8 << 20;
  buf = malloc (count);
  if (buf == NULL)
    return ENOMEM;
  return hf_volume_pread (v, buf, count, offset);
}

/* ---- Extents ----
 *
 * Per window of up to HF_VOL_EXTENT_WINDOW blocks: the tree's mapped
 * blocks (shared tree_lock), overlaid with the delta, the sealed
 * buffers oldest first and the active buffer (v->lock), then reported
 * in byte terms with holes for the gaps. */

struct hf_vol_iter_ctx {
  struct hf_runs *runs;
  int err;
};

static int
hf_vol_extent_iter (void *opaque, uint64_t lba, const struct hf_bmap *m)
{
  struct hf_vol_iter_ctx *c = opaque;
  struct hf_run r = { .lba = lba, .n = 1, .data = true };

  return hf_runs_push (c->runs, &r, true);
}


#define HF_VOL_EXTENT_WINDOW ((uint64_t) 1 << 20) /* blocks per pass */

int
hf_volume_extents (struct hf_volume *v, uint64_t count, uint64_t offset,
                   hf_volume_extent_fn fn, void *opaque)
{
  uint64_t end = offset + count, pos = offset;
  uint64_t pend_off = offset, pend_len = 0;
  bool pend_hole = false;
  int r = 0;

  r = hf_vol_check_range (v, count, offset);
  if (r)
    return r;

  while (pos < end && r == 0) {
    uint64_t a = pos / v->bs;
    uint64_t e = (end + v->bs - 1) / v->bs;
    struct hf_runs acc = { 0 }, dl = { 0 };
    struct hf_vol_iter_ctx ctx = { &acc, 0 };
    struct hf_vol_seg *s;
    uint64_t p, wend;
    size_t i;

    if (e - a > HF_VOL_EXTENT_WINDOW)
      e = a + HF_VOL_EXTENT_WINDOW;
    pthread_rwlock_rdlock (&v->tree_lock);
    r = hf_btree_iterate (v->tree, a, e - a, hf_vol_extent_iter, &ctx);
    pthread_rwlock_unlock (&v->tree_lock);
    hf_vol_lock (v);
    if (r == 0) {
      for (i = hf_runs_lower_bound (&v->delta, a);
           i < v->delta.n && r == 0; i++) {
        const struct hf_run *d = &v->delta.v[i];
        struct hf_run x = { .data = d->data };
        if (d->lba >= e)
          break;
        x.lba = d->lba < a ? a : d->lba;
        x.n = (d->lba + d->n > e ? e : d->lba + d->n) - x.lba;
        r = hf_runs_push (&dl, &x, true);
      }
      if (r == 0)
        r = hf_runs_apply (&acc, dl.v, dl.n, true);
    }
    for (s = v->sealed; s && r == 0; s = s->next)
      r = hf_wbuf_extent_runs (s->buf, a, e, &acc);
    if (r == 0 && v->active)
      r = hf_wbuf_extent_runs (v->active, a, e, &acc);
    hf_vol_unlock (v);
    hf_runs_free (&dl);

    /* Emit runs in byte terms, holes for gaps, clipped to the range. */
    wend = e * v->bs < end ? e * v->bs : end;
    p = pos;
    for (i = 0; i <= acc.n && r == 0; i++) {
      uint64_t rs = i < acc.n ? acc.v[i].lba * v->bs : wend;
      uint64_t re = i < acc.n ? (acc.v[i].lba + acc.v[i].n) * v->bs : wend;
      bool hole = i < acc.n ? !acc.v[i].data : true;
      int pass;
      if (rs > wend)
        rs = wend;
      if (re > wend)
        re = wend;
      for (pass = 0; pass < 2 && r == 0; pass++) {
        uint64_t s0 = pass == 0 ? p : (rs > p ? rs : p);
        uint64_t e0 = pass == 0 ? rs : re;
        bool h = pass == 0 ? true : hole;
        if (e0 <= s0)
          continue;
        if (pend_len && pend_hole == h && pend_off + pend_len == s0)
          pend_len += e0 - s0;
        else {
          if (pend_len)
            r = fn (opaque, pend_off, pend_len, pend_hole);
          pend_off = s0;
          pend_len = e0 - s0;
          pend_hole = h;
        }
        p = e0;
      }
    }
    hf_runs_free (&acc);
    pos = wend;
  }
  if (r == 0 && pend_len)
    r = fn (opaque, pend_off, pend_len, pend_hole);
  return r;
}
