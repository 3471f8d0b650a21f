/* hyperfile: recovery at open (see volume-int.h for the map): head
 * discovery, the chain check, roll-forward into the delta, and the
 * write-ahead log's replay.
 *
 * The head is the newest segment (keys sort newest first) whose chain of
 * parents back to its checkpoint is intact: each parent's header CRC,
 * epoch and checkpoint match what the child names.  Segment keys are
 * listed with their lengths, newest first, in batches of a LIST page as
 * far down as the open needs: every candidate above the head, and every
 * segment on the head's chain back to its checkpoint (one page at an
 * ordinary open, however many segments the volume holds; a directory
 * bucket lists whole, hf_objstore_lists_whole).  A candidate that never landed (missing from
 * its chain, or incomplete: shorter than its header says, the body of an
 * interrupted PUT a store kept) or whose chain leads to another writer's
 * segment (an orphan) is passed over with a warning, however many there
 * are.  Damage is not: a segment that does not verify stops the open
 * (EBADMSG, naming it) rather than silently fall back to older data, and
 * so does a head older than the newest lease's record of the committed
 * head (ESTALE: segments deleted or lost); accept_older_head (rollback,
 * fsck, history) goes on at the older head.  The tree opens at the
 * checkpoint; the segments after it are rolled forward into the delta,
 * oldest first.
 *
 * Lock rule: reading a point (hf_vol_point_read) touches none of the
 * volume's mutable state: it fills a struct hf_vol_point that open
 * installs before any thread starts (hf_vol_recover), and rollback
 * (volume-ckpt.c) installs under tree_lock and v->lock.  The log is
 * replayed while the threads run, through the write path.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "volume-int.h"

/* ---- Listing ---- */

/* Segment keys of the volume with their lengths, newest first (LIST
 * order: keys hold ~seq), listed a batch at a time as far down as the
 * open needs (hf_vol_list_upto): any number of orphans may lie above
 * the head (uploads that landed while an older one kept failing, over
 * several crashes), so candidates are taken until one is the head, and
 * the lengths are what tells a complete segment from an interrupted
 * upload, so the head's chain is listed too.  Everything older is never
 * read: one LIST page opens a volume of any number of segments. */
#define HF_VOL_LIST_BATCH 1000  /* keys per batch: S3's page */

struct hf_vol_seglist {
  size_t plen;
  struct hf_vol_listed {
    uint64_t seq, size;
  } *v;
  size_t n, cap;
  size_t n0;                    /* n when this batch started */
  size_t batch;                 /* keys this batch may take; 0: all */
  char after[HF_OBJSTORE_KEY_MAX + 1]; /* the last key listed */
  bool more;                    /* the batch stopped before the end */
  bool done;                    /* every key is listed */
  /* Grouped keys (HF_VD_SEG_GROUPS): listed a group directory at a
   * time, from the group of from (the lease's committed head, or
   * at_seq) up to the first empty group above it, then older groups
   * one by one as the open needs them. */
  uint64_t from;                /* 0: unknown, list seg/ as above */
  bool up;                      /* list the groups above from's too (not
                                   for at_seq: only its chain counts) */
  bool grouped;
  uint64_t g_lo;                /* the oldest group listed */
};

static int
hf_vol_list_cb (void *opaque, const char *key, uint64_t size)
{
  struct hf_vol_seglist *f = opaque;
  uint64_t num;

  snprintf (f->after, sizeof f->after, "%s", key);
  if (strlen (key) <= f->plen || hf_seg_name_parse (key + f->plen, &num))
    return 0;
  if (f->n == f->cap) {
    size_t nc = f->cap ? f->cap * 2 : 64;
    struct hf_vol_listed *nv = realloc (f->v, nc * sizeof *nv);
    if (nv == NULL)
      return ENOMEM;
    f->v = nv;
    f->cap = nc;
  }
  f->v[f->n++] = (struct hf_vol_listed) { num, size };
  if (f->batch && f->n - f->n0 == f->batch) {
    /* Full: stop here, not at the next key (which could take another
     * LIST page); the next batch starts after this one. */
    f->more = true;
    return 1;
  }
  return 0;
}

static void
hf_vol_list_restart (void *opaque)
{
  struct hf_vol_seglist *f = opaque;

  f->n = f->n0;
  f->more = false;
}

/* List group g's directory of a grouped volume, whole. */
static int
hf_vol_list_group (struct hf_volume *v, struct hf_vol_seglist *f,
                   uint64_t g)
{
  char dir[HF_OBJSTORE_KEY_MAX + 1];

  hf_seg_group_dir (dir, sizeof dir, v->prefix, g);
  f->n0 = f->n;
  f->more = false;
  return hf_objstore_list_retry (v->store, dir, NULL, hf_vol_list_cb, f,
                                 hf_vol_list_restart);
}

static int
hf_vol_seq_cmp_desc (const void *x, const void *y)
{
  const struct hf_vol_listed *a = x, *b = y;

  return a->seq < b->seq ? 1 : a->seq > b->seq ? -1 : 0;
}

/* The first listing of a grouped volume: the group of f->from and those
 * above it up to the first empty one.  Segments above the committed
 * head are never a group apart: a writer numbers its segments one by
 * one from above every seq it saw, and a gap is an upload that never
 * landed, at most max_uploads of them in a row. */
static int
hf_vol_list_groups_first (struct hf_volume *v, struct hf_vol_seglist *f)
{
  uint64_t g = f->from >> HF_SEG_GROUP_SHIFT;
  int r;

  f->g_lo = g;
  for (;; g++) {
    r = hf_vol_list_group (v, f, g);
    if (r)
      return r;
    if (!f->up || (g > f->g_lo && f->n == f->n0))
      break;
  }
  qsort (f->v, f->n, sizeof *f->v, hf_vol_seq_cmp_desc);
  if (f->g_lo == 0)
    f->done = true;
  return 0;
}

/* List the next batch of segment keys (all of them on a store that
 * lists whole): it ends at its batch-th segment key, after any number
 * of keys that are not segments'; a batch that ends exactly at the last
 * key is followed by an empty one.  On error the batch is as if never
 * listed.  A grouped volume: its first groups, then the next older
 * group each time. */
static int
hf_vol_list_batch (struct hf_volume *v, struct hf_vol_seglist *f)
{
  char pfx[HF_OBJSTORE_KEY_MAX + 1], after[HF_OBJSTORE_KEY_MAX + 1];
  int r;

  snprintf (pfx, sizeof pfx, "%sseg/", v->prefix);
  if (f->plen == 0) {           /* the first batch */
    f->plen = strlen (pfx);
    f->grouped = (v->lin->lv[0].d.flags & HF_VD_SEG_GROUPS) && f->from;
    f->batch = f->grouped || hf_objstore_lists_whole (v->store) ? 0
      : v->o.list_batch ? v->o.list_batch : HF_VOL_LIST_BATCH;
    if (f->grouped) {
      r = hf_vol_list_groups_first (v, f);
      if (r) {
        f->plen = 0;            /* all again next time */
        f->n = 0;
      }
      return r;
    }
  }
  else if (f->grouped) {        /* the next older group */
    r = hf_vol_list_group (v, f, f->g_lo - 1);
    if (r)
      return r;
    if (--f->g_lo == 0)
      f->done = true;
    return 0;
  }
  memcpy (after, f->after, sizeof after);
  f->n0 = f->n;
  f->more = false;
  r = hf_objstore_list_retry (v->store, pfx, after[0] ? after : NULL,
                              hf_vol_list_cb, f, hf_vol_list_restart);
  if (r == 0 && !f->more)
    f->done = true;
  return r;
}

/* List until seq is listed or passed (or everything is). */
static int
hf_vol_list_upto (struct hf_volume *v, struct hf_vol_seglist *f,
                  uint64_t seq)
{
  int r = 0;

  while (r == 0 && !f->done && (f->n == 0 || f->v[f->n - 1].seq > seq))
    r = hf_vol_list_batch (v, f);
  return r;
}

/* The listed length of segment seq, or HF_SEG_SIZE_UNKNOWN (not in the
 * list: at_seq names a key that is missing, or one that landed since).
 * The list reaches seq (hf_vol_list_upto). */
static uint64_t
hf_vol_listed_size (const struct hf_vol_seglist *f, uint64_t seq)
{
  size_t lo = 0, hi = f ? f->n : 0;

  while (lo < hi) {             /* f->v is sorted by seq, descending */
    size_t mid = lo + (hi - lo) / 2;
    if (f->v[mid].seq == seq)
      return f->v[mid].size;
    if (f->v[mid].seq > seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  return HF_SEG_SIZE_UNKNOWN;
}

/* ---- Recovery ---- */

/* Segment metadata read during one open, by seq (a tiny cache so that
 * the chains of several candidates share reads). */
struct hf_vol_mcache {
  uint64_t seq;
  struct hf_seg_meta *m;
  int err;
};

struct hf_vol_recover {
  struct hf_vol_mcache *c;
  size_t n, cap;
  struct hf_vol_seglist *listed;        /* borrowed; NULL: none */
};

struct hf_vol_meta_args {
  struct hf_volume *v;
  const struct hf_lineage_level *lv;
  uint64_t seq;
  uint64_t size;                /* as listed, or HF_SEG_SIZE_UNKNOWN */
  struct hf_seg_meta **m;
};

static int
hf_vol_meta_attempt (void *arg, unsigned attempt)
{
  struct hf_vol_meta_args *a = arg;

  return hf_seg_read_meta_vd (a->lv->store, a->lv->prefix,
                              a->lv->d.flags, a->seq, a->lv->d.uuid,
                              a->v->bs, a->size, a->m);
}

/* Segment seq's metadata, read once per recovery (rc caches it). */
static int
hf_vol_meta (struct hf_volume *v, struct hf_vol_recover *rc, uint64_t seq,
             struct hf_seg_meta **out)
{
  struct hf_seg_meta *m = NULL;
  size_t i;
  int r;

  for (i = 0; i < rc->n; i++)
    if (rc->c[i].seq == seq) {
      *out = rc->c[i].m;
      return rc->c[i].err;
    }
  {
    struct hf_vol_meta_args a = { v, hf_lineage_locate (v->lin, seq), seq,
                                  HF_SEG_SIZE_UNKNOWN, &m };

    r = 0;
    if (a.lv == &v->lin->lv[0] && rc->listed) {
      r = hf_vol_list_upto (v, rc->listed, seq);
      if (r)
        return r;              /* not cached: the listing may work later */
      a.size = hf_vol_listed_size (rc->listed, seq);
    }
    r = hf_objstore_retry (a.lv->store, hf_vol_meta_attempt, &a);
  }
  if (rc->n == rc->cap) {
    size_t nc = rc->cap ? rc->cap * 2 : 32;
    struct hf_vol_mcache *nv = realloc (rc->c, nc * sizeof *nv);
    if (nv == NULL) {
      hf_seg_meta_destroy (m);
      return ENOMEM;
    }
    rc->c = nv;
    rc->cap = nc;
  }
  rc->c[rc->n++] = (struct hf_vol_mcache) { seq, r ? NULL : m, r };
  *out = r ? NULL : m;
  return r;
}

static void
hf_vol_recover_free (struct hf_vol_recover *rc)
{
  size_t i;

  for (i = 0; i < rc->n; i++)
    hf_seg_meta_destroy (rc->c[i].m);
  free (rc->c);
}

/* Verify the chain from cand back to its checkpoint; on success *chain
 * (newest first, borrowed from rc) and *nchain are set.  Otherwise:
 *   ENOENT   cand is not the head of an intact chain and nothing is
 *            damaged: it, or a segment on its chain, never landed
 *            (missing, or an incomplete upload), or a parent link
 *            leads to another writer's segment (an orphan of a fenced
 *            writer); recovery tries the next older candidate;
 *   EBADMSG  a segment on the chain is damaged, *bad_seq says which:
 *            falling back would serve stale data, recovery refuses;
 *   other    the store's error (EIO ...), *bad_seq says where. */
static int
hf_vol_chain (struct hf_volume *v, struct hf_vol_recover *rc, uint64_t cand,
              struct hf_seg_meta ***chain, size_t *nchain,
              uint64_t *bad_seq)
{
  struct hf_seg_meta *m, *p, **ch = NULL;
  size_t n = 0, cap = 0;
  uint64_t C;
  int r;

  *bad_seq = cand;
  r = hf_vol_meta (v, rc, cand, &m);
  if (r == ENODATA)
    r = ENOENT;                 /* an incomplete upload never landed */
  if (r)
    return r;
  C = m->h.ckpt_seq;
  for (;;) {
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 16;
      struct hf_seg_meta **nv = realloc (ch, nc * sizeof *nv);
      if (nv == NULL) {
        free (ch);
        return ENOMEM;
      }
      ch = nv;
      cap = nc;
    }
    ch[n++] = m;
    /* Inconsistencies within a verified segment are damage. */
    if (m->h.seq == C) {
      if (!(m->h.flags & HF_SH_CHECKPOINT)) {
        hf_warn ("volume: segment %" PRIu64 " is named as a checkpoint "
                 "but holds none", C);
        *bad_seq = C;
        r = EBADMSG;
        break;
      }
      break;
    }
    if (m->h.parent_seq == 0) {
      if (C == 0)
        break;
      hf_warn ("volume: segment %" PRIu64 ": chain ends before its "
               "checkpoint %" PRIu64, m->h.seq, C);
      *bad_seq = m->h.seq;
      r = EBADMSG;
      break;
    }
    if (m->h.parent_seq < C) {
      hf_warn ("volume: segment %" PRIu64 ": parent %" PRIu64
               " is older than checkpoint %" PRIu64, m->h.seq,
               m->h.parent_seq, C);
      *bad_seq = m->h.seq;
      r = EBADMSG;
      break;
    }
    *bad_seq = m->h.parent_seq;
    r = hf_vol_meta (v, rc, m->h.parent_seq, &p);
    if (r) {
      hf_warn ("volume: segment %" PRIu64 ": parent %" PRIu64 " %s",
               m->h.seq, m->h.parent_seq,
               r == ENOENT ? "is missing" : r == ENODATA ?
               "is incomplete (never landed)" : r == EBADMSG ?
               "is damaged" : "is unreadable");
      if (r == ENODATA)
        r = ENOENT;
      break;
    }
    /* A verified segment that is not the parent: the orphan of a
     * writer that lost a race or was fenced, not damage. */
    if (p->h.hdr_crc != m->h.parent_crc ||
        p->h.lease_epoch > m->h.lease_epoch || p->h.ckpt_seq != C) {
      hf_warn ("volume: segment %" PRIu64 ": segment %" PRIu64
               " is not its parent (written by another writer or another "
               "history)", m->h.seq, p->h.seq);
      r = ENOENT;
      break;
    }
    m = p;
  }
  if (r) {
    free (ch);
    return r;
  }
  *chain = ch;
  *nchain = n;
  return 0;
}

int
hf_vol_chain_check (struct hf_volume *v, uint64_t seq)
{
  struct hf_vol_recover rc = { 0 };
  struct hf_seg_meta **chain = NULL;
  size_t nchain = 0;
  uint64_t bad;
  int r;

  r = hf_vol_chain (v, &rc, seq, &chain, &nchain, &bad);
  free (chain);
  hf_vol_recover_free (&rc);
  return r;
}

/* Which segment breaks the history the lease records: from known (its
 * ls_committed_seq) down the parent links towards head (where the
 * intact chain ends), the first segment that is missing (ENOENT),
 * incomplete (ENODATA), damaged (EBADMSG) or unreadable; else (the
 * links lead elsewhere, e.g. a parent CRC that does not match) known
 * itself, with 0.  *lost is that segment; returns why. */
static int
hf_vol_lost_seg (struct hf_volume *v, struct hf_vol_recover *rc,
                 uint64_t known, uint64_t head, uint64_t *lost)
{
  uint64_t seq = known;
  unsigned n;

  *lost = known;
  for (n = 0; seq > head && n < 100000; n++) {
    struct hf_seg_meta *m;
    int r = hf_vol_meta (v, rc, seq, &m);

    if (r) {
      *lost = seq;
      return r;
    }
    seq = m->h.parent_seq;
  }
  return 0;
}

/* Read the state at segment at_seq (0: the head) into *pt (on error
 * *pt holds nothing).  Reads the store; touches none of v's mutable
 * state, so it runs beside reads and writes (rollback). */
int
hf_vol_point_read (struct hf_volume *v, uint64_t at_seq,
                   struct hf_vol_point *pt)
{
  struct hf_vol_seglist f = { 0 };
  struct hf_vol_recover rc = { .listed = &f };
  struct hf_seg_meta **chain = NULL, *head, *cm;
  struct hf_btree_root root = { .empty = true };
  char desc_buf[HF_OBJSTORE_NAME_MAX];
  const char *desc = hf_objstore_name (v->store, v->prefix, desc_buf,
                                      sizeof desc_buf);
  uint64_t max_seen = 0, mapped = 0, known = 0, bad_seq = 0, one;
  size_t nchain = 0, i;
  bool have_head = false;
  int r = 0;

  memset (pt, 0, sizeof *pt);

  /* How far the history is known to reach (lease.h): the last writer's
   * record, read with the lease (a writer's own acquire carried it).
   * Read before the list: a live writer records a segment only after
   * it committed, so whatever the lease says is then in the list. */
  if (!at_seq) {
    if (v->lease.held)
      known = v->lease.committed_seq;
    else {
      struct hf_lease_info li;
      bool found;

      r = hf_lease_newest (v->store, v->prefix, &found, &li);
      if (r == EBADMSG) {
        /* Logged; a writer could not open either.  Reading goes on. */
        hf_warn ("volume: %s: the writer lease is damaged: cannot tell "
                 "whether newer segments were lost", desc);
        r = 0;
        found = false;
      }
      if (r) {
        hf_error ("volume: %s: reading the writer lease: %s", desc,
                  strerror (r));
        goto out;
      }
      if (found)
        known = li.committed_seq;
    }
  }
  /* The first batch: the newest keys (a batch may hold none that
   * parse, then the next). */
  f.from = at_seq ? at_seq : known;
  f.up = !at_seq;
  r = hf_vol_list_upto (v, &f, UINT64_MAX);
  if (r) {
    hf_error ("volume: %s: listing segments: %s", desc,
              strerror (r));
    goto out;
  }
  if (f.n > 0)
    max_seen = f.v[0].seq;

  /* Candidates: at_seq, or the listed keys newest first, listing more
   * as they run out. */
  one = at_seq;
  if (!one && f.n == 0 && v->lin->lv[0].floor)
    /* A clone without segments of its own: its state is the parent's
     * at the base (format.h, "Clones"). */
    one = v->lin->lv[0].floor;
  /* Newest first.  A candidate that never landed, or an orphan, makes
   * way for the next older one; damage does not: opening an older head
   * then would serve stale data as current, and the next writer would
   * orphan the damaged segment's writes for good. */
  for (i = 0;; i++) {
    char key[HF_OBJSTORE_KEY_MAX + 1];
    uint64_t cand;

    if (one && i == 1)
      break;
    if (!one && i == f.n) {
      if (f.done)
        break;
      r = hf_vol_list_batch (v, &f);
      if (r) {
        hf_error ("volume: %s: listing segments: %s", desc,
                  strerror (r));
        goto out;
      }
      i--;
      continue;
    }
    cand = one ? one : f.v[i].seq;
    r = hf_vol_chain (v, &rc, cand, &chain, &nchain, &bad_seq);
    if (r == 0) {
      have_head = true;
      break;
    }
    if (r == ENOMEM)
      goto out;
    if (r == EBADMSG && v->o.accept_older_head)
      pt->older_head = true;
    if (r == ENOENT || (r == EBADMSG && v->o.accept_older_head)) {
      hf_warn ("volume: %s: rejecting segment %" PRIu64 " as head: %s",
               desc, cand, r == ENOENT ?
               "not on an intact chain (an upload that never landed, or "
               "an orphan)" : "damaged (accept_older_head)");
      continue;
    }
    hf_seg_key_vd (key, sizeof key,
                   hf_lineage_locate (v->lin, bad_seq)->prefix,
                   hf_lineage_locate (v->lin, bad_seq)->d.flags, bad_seq);
    if (r == EBADMSG && at_seq)
      hf_error ("volume: %s: segment %s is damaged", desc,
                key);
    else if (r == EBADMSG)
      hf_error ("volume: %s: segment %s is damaged; refusing to open at "
                "an older point, which would serve stale data as current.  "
                "Read an older point with at=SEQ (hyperfile ls lists them), "
                "or make one the head with hyperfile rollback", desc, key);
    else
      hf_error ("volume: %s: reading segment %s: %s; cannot tell which "
                "segment is the head", desc, key, strerror (r));
    goto out;
  }
  r = 0;
  if (i > 0 && !have_head) {
    hf_error ("volume: %s: no intact segment chain among the %zu "
              "segments%s", desc, i,
              at_seq ? " (at_seq)" : "");
    r = at_seq ? ENOENT : EBADMSG;
    goto out;
  }
  /* The newest segments are gone (deleted, or lost by the store), or
   * the ones above are damaged and were skipped on request. */
  if (known > (nchain ? chain[0]->h.seq : 0)) {
    if (!v->o.accept_older_head) {
      uint64_t lost;
      int why = hf_vol_lost_seg (v, &rc, known,
                                 nchain ? chain[0]->h.seq : 0, &lost);
      char key[HF_OBJSTORE_KEY_MAX + 1];

      hf_seg_key_vd (key, sizeof key,
                     hf_lineage_locate (v->lin, lost)->prefix,
                     hf_lineage_locate (v->lin, lost)->d.flags, lost);
      hf_error ("volume: %s: the writer lease records segment %" PRIu64
                " as committed, but the newest intact chain ends at "
                "segment %" PRIu64 ": segment %" PRIu64 " (%s) is %s; "
                "segments were deleted or lost.  "
                "Refusing to open at that older point (the volume would "
                "roll back unnoticed); read it with at=%" PRIu64 ", or "
                "make it the head with hyperfile rollback", desc,
                known, nchain ? chain[0]->h.seq : 0, lost, key,
                why == ENOENT ? "missing" : why == ENODATA ?
                "incomplete (cut short after it was committed)" :
                why == EBADMSG ? "damaged" : "not on the chain",
                nchain ? chain[0]->h.seq : 0);
      r = ESTALE;
      goto out;
    }
    hf_warn ("volume: %s: the writer lease records segment %" PRIu64
             " as committed; opening at segment %" PRIu64
             " (accept_older_head)", desc, known,
             nchain ? chain[0]->h.seq : 0);
    pt->older_head = true;
  }
  if (known > max_seen)
    max_seen = known;           /* never reuse a committed seq's key */

  if (nchain > 0) {
    head = chain[0];
    cm = chain[nchain - 1];
    if (cm->h.seq == head->h.ckpt_seq && head->h.ckpt_seq != 0) {
      bool empty = cm->h.ckpt_root.np_seq == 0 && cm->h.ckpt_root.np_off == 0
        && cm->h.ckpt_root.np_crc == 0;
      if (!empty) {
        root.empty = false;
        root.ptr = cm->h.ckpt_root;
        root.level = cm->h.ckpt_level;
      }
      mapped = cm->h.mapped;
    }
    else
      cm = NULL;
    pt->size = head->h.volume_size;
    pt->seq = head->h.seq;
    pt->ckpt_seq = head->h.ckpt_seq;
    pt->hdr_crc = head->h.hdr_crc;
    pt->wal_lsn = head->h.wal_lsn;
    pt->wal_id = head->h.wal_id;
  }
  pt->root = root;
  pt->mapped = mapped;
  r = hf_btree_open (&root, mapped, hf_vol_read_node, v, v->o.node_cache,
                     &pt->tree);
  if (r) {
    hf_error ("volume: %s: opening the index at segment %" PRIu64 ": %s",
              desc, pt->ckpt_seq, strerror (r));
    goto out;
  }
  /* Roll forward, oldest first, skipping the checkpoint segment (its
   * extents are in the tree). */
  for (i = nchain; i-- > 0;) {
    struct hf_seg_meta *m = chain[i];

    if (m->h.flags & HF_SH_CHECKPOINT)
      continue;
    r = hf_vol_delta_add (v->bs, &pt->delta, NULL, &pt->tabs, m);
    if (r)
      goto out;
    pt->segs_since++;
    pt->ext_since += m->h.n_ext;
  }
  pt->max_seen = max_seen;
 out:
  if (r)
    hf_vol_point_free (pt);
  free (chain);
  free (f.v);
  hf_vol_recover_free (&rc);
  return r;
}

void
hf_vol_point_free (struct hf_vol_point *pt)
{
  hf_btree_close (pt->tree);
  pt->tree = NULL;
  hf_vol_delta_free (&pt->delta, &pt->tabs);
  free (pt->tabs.v);
  memset (&pt->tabs, 0, sizeof pt->tabs);
}

/* Recover the state at segment at_seq (0: the head) into v at open,
 * before any thread starts: tree, delta, size, head and the builder's
 * fields. */
int
hf_vol_recover (struct hf_volume *v, uint64_t at_seq)
{
  struct hf_vol_point pt;
  int r = hf_vol_point_read (v, at_seq, &pt);

  if (r)
    return r;
  v->tree = pt.tree;
  v->delta = pt.delta;
  v->crc_tabs = pt.tabs;
  v->older_head = pt.older_head;
  if (pt.seq) {                 /* else a new volume: v's size stays */
    v->size = pt.size;
    v->head_seq = pt.seq;
    v->ckpt_seq = pt.ckpt_seq;
    v->b_parent_seq = pt.seq;
    v->b_parent_crc = pt.hdr_crc;
    v->b_ckpt_seq = pt.ckpt_seq;
    v->head_wal_lsn = pt.wal_lsn;
    v->head_wal_id = pt.wal_id;
  }
  v->b_root = pt.root;
  v->b_mapped = pt.mapped;
  v->b_segs_since = pt.segs_since;
  v->b_ext_since = pt.ext_since;
  v->next_seq = (pt.max_seen > pt.seq ? pt.max_seen : pt.seq) + 1;
  v->committed_seq = v->next_seq - 1;
  hf_debug ("volume", "opened at head %" PRIu64 " (checkpoint %" PRIu64
            ", %zu segments rolled forward, %zu delta runs), next seq %"
            PRIu64, v->head_seq, v->ckpt_seq, (size_t) v->b_segs_since,
            v->delta.n, v->next_seq);
  return 0;
}


/* ---- Write-ahead log at open ----
 *
 * Open replays the log's records above the head's sh_wal_lsn if the
 * head names this log (sh_wal_id).  If it names another log (or none),
 * the records here were superseded by a writer that committed without
 * them: they are discarded with a warning, and an empty segment naming
 * this log is committed before any write, so that a crash before the
 * next upload still finds its records replayable. */

struct hf_vol_replay {
  struct hf_volume *v;
  uint64_t n, last;
};

static int
hf_vol_replay_one (void *opaque, uint64_t lsn, uint32_t type,
                   uint64_t offset, uint64_t len, const void *data)
{
  struct hf_vol_replay *rp = opaque;
  struct hf_volume *v = rp->v;
  int r;

  switch (type) {
  case HF_WAL_WRITE:
    r = hf_vol_modify (v, data, len, offset, 0, type, lsn);
    break;
  case HF_WAL_TRIM:
  case HF_WAL_ZERO:
    r = hf_vol_modify (v, NULL, len, offset, 0, type, lsn);
    break;
  case HF_WAL_GROW:
    /* A size no volume can have is damage, not a size. */
    r = offset == 0 || offset > HF_MAX_VOLUME_SIZE ? EBADMSG
      : hf_vol_grow (v, offset, lsn);
    break;
  default:
    r = EBADMSG;
  }
  if (r && type == HF_WAL_GROW) {
    hf_error ("volume: replaying write-ahead log record %" PRIu64
              " (GROW to %" PRIu64 " bytes): %s", lsn, offset,
              r == EBADMSG ? "not a size a volume can have" : strerror (r));
    return r;
  }
  if (r) {
    hf_error ("volume: replaying write-ahead log record %" PRIu64
              " (type %" PRIu32 ", offset %" PRIu64 ", length %" PRIu64
              "): %s", lsn, type, offset, len, strerror (r));
    return r;
  }
  rp->n++;
  if (rp->n % 65536 == 0)
    hf_info ("volume: replayed %" PRIu64 " of %" PRIu64 " log records",
             rp->n, rp->last - lsn + rp->n);
  return 0;
}

/* Open the log, then replay it or, if the head names another log,
 * discard it and commit a segment naming this one (see above).  Threads
 * are running. */
int
hf_vol_wal_open (struct hf_volume *v)
{
  struct hf_wal_options wo = {
    .dir = v->o.wal_dir, .max_bytes = v->o.wal_max_bytes,
    .first_lsn = v->head_wal_lsn,
  };
  struct hf_vol_replay rp = { .v = v };
  struct hf_wal_stats ws;
  uint64_t id, last;
  int r;

  memcpy (wo.volume_uuid, v->uuid, HF_UUID_SIZE);
  r = hf_wal_open (&wo, &v->wal);
  if (r)
    return r;
  id = hf_wal_log_id (v->wal);
  last = hf_wal_last_lsn (v->wal);
  hf_wal_get_stats (v->wal, &ws);
  hf_vol_lock (v);
  v->wal_id = id;
  v->wal_applied = last;
  hf_vol_unlock (v);

  if (id == v->head_wal_id) {
    if (last > v->head_wal_lsn) {
      hf_info ("volume: replaying write-ahead log %s: records %" PRIu64
               " to %" PRIu64 " (after segment %" PRIu64 ")", v->o.wal_dir,
               v->head_wal_lsn + 1, last, v->head_seq);
      hf_vol_lock (v);
      v->wal_replaying = true;
      v->wal_applied = v->head_wal_lsn;
      hf_vol_unlock (v);
      rp.last = last;
      r = hf_wal_replay (v->wal, v->head_wal_lsn, hf_vol_replay_one, &rp);
      hf_vol_lock (v);
      v->wal_replaying = false;
      v->st.wal_replayed = rp.n;
      hf_vol_unlock (v);
      if (r)
        return r;
      hf_info ("volume: replayed %" PRIu64 " log records", rp.n);
    }
    hf_vol_lock (v);
    /* The head was recorded in the lease at open (or its record
     * failed, logged): what it holds may go. */
    if (v->head_wal_lsn > v->wal_commit_upto)
      v->wal_commit_upto = v->head_wal_lsn;
    if (v->head_wal_lsn > v->wal_release_upto)
      v->wal_release_upto = v->head_wal_lsn;
    hf_vol_wal_release_locked (v);
    hf_vol_unlock (v);
    return 0;
  }

  if (ws.bytes_live > 0) {
    hf_warn ("volume: write-ahead log %s holds records up to %" PRIu64
             " that the volume never received: its head (segment %"
             PRIu64 ") was committed by %s; those writes were superseded "
             "(the volume was taken over or written without this log) "
             "and are discarded", v->o.wal_dir, last, v->head_seq,
             v->head_wal_id ? "a writer with another log"
             : "a writer without a log");
    r = hf_wal_release (v->wal, last);
    if (r)
      return r;
  }
  /* Name this log in the head before accepting writes. */
  hf_vol_lock (v);
  r = hf_vol_seal_locked (v, true, false);
  hf_vol_unlock (v);
  if (r == 0)
    r = hf_vol_flush_wait (v);
  if (r)
    hf_error ("volume: committing the segment that names write-ahead log "
              "%s: %s", v->o.wal_dir, strerror (r));
  return r;
}
