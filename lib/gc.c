/* hyperfile: garbage collection and compaction (the rules, and why they
 * are safe, are in gc.h).
 *
 * One run:
 *   1. (compaction) checkpoint the writer, so the head's state is one
 *      tree and its live counts are exact;
 *   2. list seg/ (seq and size of every segment: the segment table,
 *      sorted by seq), and recover the head with a read-only open;
 *   3. roots: walk the head's chain back through the retention window,
 *      then snapshots and clone bases, marking every segment from each
 *      root back to its checkpoint and collecting the checkpoints;
 *   4. mark: walk each checkpoint's tree (the head's first, counting the
 *      head's live data blocks and nodes per segment), marking the
 *      segments that hold its nodes and the data its leaves name;
 *      subtrees already visited from another checkpoint are skipped;
 *   5. (compaction) pick the head's low-utilisation segments, walk the
 *      head's tree again moving their live blocks and touching their
 *      nodes through the writer, checkpoint, and start over at 2;
 *   6. sweep: delete every listed segment below the head that no root
 *      reached and that is older than grace.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "btree.h"
#include "cleanup.h"
#include "clock.h"
#include "format.h"
#include "gc.h"
#include "history.h"
#include "lineage.h"
#include "log.h"
#include "nodeset.h"
#include "segment.h"

#define HF_GC_DELETE_BATCH 256
#define HF_GC_RUN_MAX 256             /* blocks per relocation */
#define HF_GC_THREADS 8               /* parallel header GETs */

/* One listed segment. */
struct hf_gc_seg {
  uint64_t seq;
  uint64_t size;                /* object size from the LIST */
  uint32_t live_blocks;         /* data blocks the head maps here */
  uint32_t live_nodes;          /* index nodes of the head's tree here */
  uint8_t fl;
  int8_t hdr_err;               /* prefetched header: 0 ok, else errno;
                                   -1 not fetched */
  uint16_t ckpt_level;
  uint32_t flags;
  uint64_t parent_seq, timestamp_ns, ckpt_seq, mapped;
  struct hf_disk_node_ptr ckpt_root;
};
#define HF_GC_REACHED 0x1
#define HF_GC_CAND 0x2          /* compaction candidate */

struct hf_gc {
  struct hf_objstore *s;        /* borrowed */
  const char *prefix;           /* borrowed */
  struct hf_gc_options o;
  struct hf_lineage *lin;       /* a clone's ancestors (nodes of theirs) */
  uint8_t uuid[HF_UUID_SIZE];
  uint32_t bs;
  uint32_t vd_flags;            /* the descriptor's (segment key layout) */
  uint64_t floor;               /* seqs <= floor belong to a parent */
  uint64_t head, head_ckpt, now, cutoff;
  uint64_t chain_low;           /* lowest seq of the head's chain walked */

  struct hf_gc_seg *seg;
  size_t nseg, capseg;
  size_t last;                  /* index of the last lookup (a hint) */

  uint64_t *ckpts;              /* checkpoints to walk, head's first */
  size_t nckpt, capckpt;

  struct hf_nodeset vis;        /* node addresses already walked */

  /* Walk mode. */
  bool counting;                /* the head's tree: count live */
  bool dedup;                   /* skip visited subtrees */
  bool compacting;              /* relocate candidates' blocks */
  bool pending_touch;
  bool head_walk;               /* walking the head's own chain or tree */
  uint64_t cur_ckpt;            /* the checkpoint being walked */
  bool tree_gone;               /* part of that tree is collected */
  bool race;                    /* something vanished under us */
  uint64_t missing;             /* references to unlisted segments */
  struct hf_volume *w;

  /* The relocation run being gathered. */
  uint64_t run_lba, run_seq;
  uint32_t run_blk, run_n;
  uint32_t run_crc[HF_GC_RUN_MAX];

  struct hf_gc_report rep;

  /* Flatten (hf_gc_flatten): every block and node of the parent's
   * (seq <= floor) is a candidate; counting them first. */
  bool flatten, flat_counting;
  uint64_t flat_blocks, flat_nodes, flat_total;

  /* What each root keeps (the last scan's; reported at the end). */
  struct hf_gc_pin {
    const char *kind;
    char name[HF_CR_URL_MAX + 1];
    uint64_t seq, since_ns, bytes;
    bool orphan;
  } *pins;
  size_t npin, cappin;
};

/* ---- The segment table ---- */

static int
hf_gc_list_fn (void *opaque, const char *key, uint64_t size)
{
  struct hf_gc *g = opaque;
  const char *name = strrchr (key, '/');
  uint64_t seq;

  if (name == NULL || hf_seg_key_parse (name + 1, &seq) != 0)
    return 0;                   /* not a segment: not ours to touch */
  if (g->nseg == g->capseg) {
    size_t nc = g->capseg ? g->capseg * 2 : 256;
    struct hf_gc_seg *nv = realloc (g->seg, nc * sizeof *nv);
    if (nv == NULL)
      return ENOMEM;
    g->seg = nv;
    g->capseg = nc;
  }
  g->seg[g->nseg++] = (struct hf_gc_seg) { .seq = seq, .size = size,
                                           .hdr_err = -1 };
  return 0;
}

static int
hf_gc_cmp_seg (const void *x, const void *y)
{
  const struct hf_gc_seg *a = x, *b = y;
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static void
hf_gc_list_restart (void *opaque)
{
  struct hf_gc *g = opaque;

  g->nseg = 0;
}

static int
hf_gc_list (struct hf_gc *g)
{
  char pfx[HF_OBJSTORE_KEY_MAX + 1];
  int r;

  snprintf (pfx, sizeof pfx, "%sseg/", g->prefix);
  r = hf_objstore_list_retry (g->s, pfx, NULL, hf_gc_list_fn, g,
                              hf_gc_list_restart);
  if (r) {
    hf_error ("gc: %s: listing segments: %s",
              HF_OBJSTORE_NAME (g->s, g->prefix), strerror (r));
    return r;
  }
  /* Keys sort newest first (complemented seqs); the table is by seq. */
  qsort (g->seg, g->nseg, sizeof *g->seg, hf_gc_cmp_seg);
  return 0;
}

static struct hf_gc_seg *
hf_gc_find (struct hf_gc *g, uint64_t seq)
{
  size_t lo = 0, hi = g->nseg;

  if (g->last < g->nseg && g->seg[g->last].seq == seq)
    return &g->seg[g->last];
  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (g->seg[mid].seq < seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  if (lo < g->nseg && g->seg[lo].seq == seq) {
    g->last = lo;
    return &g->seg[lo];
  }
  return NULL;
}

/* Mark seq reached; a reference to a segment that is not listed (and
 * is not a parent's) is damage that fsck reports; GC just counts it. */
static struct hf_gc_seg *
hf_gc_mark (struct hf_gc *g, uint64_t seq)
{
  struct hf_gc_seg *e = hf_gc_find (g, seq);

  if (e)
    e->fl |= HF_GC_REACHED;
  else if (seq > g->floor && seq <= g->head) {
    /* Collected by a GC with a newer view, or damage (fsck's job). */
    if (g->missing++ < 5)
      hf_debug ("gc", "segment %" PRIu64 " is referenced but missing", seq);
  }
  return e;
}

/* ---- Headers ---- */

/* Read and verify the header of segment seq of this volume (from the
 * store). */
static int
hf_gc_hdr_get (struct hf_gc *g, uint64_t seq, struct hf_seg_hdr *h)
{
  char key[HF_OBJSTORE_KEY_MAX + 1];
  uint8_t buf[HF_SH_SIZE];
  size_t got = 0;
  int r;

  if (g->lin && seq <= g->floor) {
    /* A parent's segment (flatten reads the parent's checkpoint). */
    const struct hf_lineage_level *lv = hf_lineage_locate (g->lin, seq);

    hf_seg_key_vd (key, sizeof key, lv->prefix, lv->d.flags, seq);
    r = hf_objstore_get_retry (lv->store, key, 0, sizeof buf, buf, &got);
    if (r)
      return r;
    return hf_seg_parse_hdr (buf, got, key, lv->d.uuid, g->bs, seq, h);
  }
  hf_seg_key_vd (key, sizeof key, g->prefix, g->vd_flags, seq);
  r = hf_objstore_get_retry (g->s, key, 0, sizeof buf, buf, &got);
  if (r)
    return r;
  return hf_seg_parse_hdr (buf, got, key, g->uuid, g->bs, seq, h);
}

/* The header of seq: prefetched (segments are immutable, so a copy is
 * as good as the object), else from the store.  Only the fields GC uses
 * are kept. */
static int
hf_gc_hdr (struct hf_gc *g, uint64_t seq, struct hf_seg_hdr *h)
{
  struct hf_gc_seg *e = hf_gc_find (g, seq);

  if (e == NULL || e->hdr_err < 0)
    return hf_gc_hdr_get (g, seq, h);
  if (e->hdr_err)
    return e->hdr_err;
  memset (h, 0, sizeof *h);
  h->seq = seq;
  h->flags = e->flags;
  h->parent_seq = e->parent_seq;
  h->timestamp_ns = e->timestamp_ns;
  h->ckpt_seq = e->ckpt_seq;
  h->ckpt_root = e->ckpt_root;
  h->ckpt_level = e->ckpt_level;
  h->mapped = e->mapped;
  return 0;
}

/* Fetch the headers of every listed segment up to the head with
 * HF_GC_THREADS parallel GETs (one 256-byte range each): the chain
 * walks and the sweep then need no sequential round trips. */
struct hf_gc_pf {
  struct hf_gc *g;
  pthread_mutex_t lock;
  size_t next;
};

static void *
hf_gc_prefetch_worker (void *arg)
{
  struct hf_gc_pf *pf = arg;
  struct hf_gc *g = pf->g;

  for (;;) {
    struct hf_seg_hdr h;
    struct hf_gc_seg *e;
    size_t i;
    int r;

    pthread_mutex_lock (&pf->lock);
    i = pf->next++;
    pthread_mutex_unlock (&pf->lock);
    if (i >= g->nseg || g->seg[i].seq > g->head)
      return NULL;
    e = &g->seg[i];
    r = hf_gc_hdr_get (g, e->seq, &h);
    if (r == 0) {
      e->flags = h.flags;
      e->parent_seq = h.parent_seq;
      e->timestamp_ns = h.timestamp_ns;
      e->ckpt_seq = h.ckpt_seq;
      e->ckpt_root = h.ckpt_root;
      e->ckpt_level = h.ckpt_level;
      e->mapped = h.mapped;
    }
    /* Store errors are asked again later (and fail the run there if
     * they persist); answers about the object are kept. */
    e->hdr_err = r == 0 || r == ENOENT || r == EBADMSG ? (int8_t) r : -1;
  }
}

static void
hf_gc_prefetch (struct hf_gc *g)
{
  struct hf_gc_pf pf = { .g = g, .next = 0 };
  pthread_t th[HF_GC_THREADS];
  unsigned n = 0, i;

  pthread_mutex_init (&pf.lock, NULL);
  for (i = 0; i < HF_GC_THREADS; i++)
    if (pthread_create (&th[n], NULL, hf_gc_prefetch_worker, &pf) == 0)
      n++;
  if (n == 0)
    hf_gc_prefetch_worker (&pf);        /* no threads: do it here */
  for (i = 0; i < n; i++)
    pthread_join (th[i], NULL);
  pthread_mutex_destroy (&pf.lock);
}

static int
hf_gc_add_ckpt (struct hf_gc *g, uint64_t c)
{
  size_t i;

  if (c == 0)
    return 0;
  for (i = 0; i < g->nckpt; i++)
    if (g->ckpts[i] == c)
      return 0;
  if (g->nckpt == g->capckpt) {
    size_t nc = g->capckpt ? g->capckpt * 2 : 16;
    uint64_t *nv = realloc (g->ckpts, nc * sizeof *nv);
    if (nv == NULL)
      return ENOMEM;
    g->ckpts = nv;
    g->capckpt = nc;
  }
  g->ckpts[g->nckpt++] = c;
  return 0;
}

/* Mark the chain from point seq back to its checkpoint (or to the
 * first segment when there is none) and collect the checkpoint.  For
 * the head (window true) keep walking through every point of the
 * retention window, down to the checkpoint of the oldest one.  A
 * segment missing below the first one means history already collected
 * (or lost): the walk stops there, since nothing beyond it can be read
 * through this root anyway. */
static int
hf_gc_root (struct hf_gc *g, uint64_t seq, bool window, const char *what)
{
  struct hf_seg_hdr h;
  uint64_t target = UINT64_MAX;  /* walk down to this seq */
  bool first = true, is_head = window;
  int r;

  g->rep.roots++;
  while (seq > g->floor) {
    r = hf_gc_hdr (g, seq, &h);
    if (r == ENOENT && (hf_gc_find (g, seq) ||
                        (is_head && seq >= g->head_ckpt))) {
      g->race = true;
      return EAGAIN;
    }
    if (r == ENOENT) {
      hf_debug ("gc", "%s: segment %" PRIu64 " is gone; the chain ends "
                "there", what, seq);
      return 0;
    }
    if (r) {
      hf_error ("gc: %s: %s: segment %" PRIu64 " on the chain: %s",
                HF_OBJSTORE_NAME (g->s, g->prefix), what, seq,
                r == ENOENT ? "missing" : strerror (r));
      return r == ENOENT ? EBADMSG : r;
    }
    hf_gc_mark (g, seq);
    if (is_head)
      g->chain_low = seq;
    if (first || window) {
      /* A point: its checkpoint's tree is needed. */
      if (!first)
        g->rep.roots++;
      r = hf_gc_add_ckpt (g, h.ckpt_seq);
      if (r)
        return r;
      if (h.ckpt_seq < target)
        target = h.ckpt_seq;
      /* The newest point older than the cutoff was the state at the
       * cutoff: it is the last point of the window. */
      if (window && h.timestamp_ns < g->cutoff)
        window = false;
    }
    first = false;
    if (!window && seq <= target)
      break;
    seq = h.parent_seq;
    if (seq == 0)
      break;
  }
  return 0;
}

/* ---- Walking trees ---- */

static int
hf_gc_read_node (void *opaque, const struct hf_disk_node_ptr *ptr, void *buf)
{
  struct hf_gc *g = opaque;
  char key[HF_OBJSTORE_KEY_MAX + 1];
  struct hf_objstore *s = g->s;
  const char *prefix = g->prefix;
  uint32_t vd_flags = g->vd_flags;
  size_t got = 0;
  int r;

  if (g->lin && ptr->np_seq <= g->floor) {
    const struct hf_lineage_level *lv = hf_lineage_locate (g->lin,
                                                           ptr->np_seq);
    s = lv->store;
    prefix = lv->prefix;
    vd_flags = lv->d.flags;
  }
  hf_seg_key_vd (key, sizeof key, prefix, vd_flags, ptr->np_seq);
  r = hf_objstore_get_retry (s, key, (uint64_t) ptr->np_off * HF_NODE_SIZE,
                             HF_NODE_SIZE, buf, &got);
  if (r == ENOENT && (g->head_walk || hf_gc_find (g, ptr->np_seq))) {
    /* Listed when the run started, or needed by the head: another GC
     * collected it (its view was newer), so this run's view is stale. */
    g->race = true;
    return EAGAIN;
  }
  if (r == ENOENT) {
    /* Another point's tree, in a segment already gone when the run
     * started: a GC with a later view collected that point (or it is
     * damage, fsck's business).  What it still reaches is not the
     * head's, so the walk of this tree just stops. */
    hf_debug ("gc", "checkpoint %" PRIu64 ": node in missing segment %"
              PRIu64 "; the rest of this tree is not walked", g->cur_ckpt,
              ptr->np_seq);
    g->tree_gone = true;
    return EAGAIN;
  }
  if (r == 0 && got != HF_NODE_SIZE) {
    hf_error ("segment %s: corrupt at byte offset %" PRIu64 ": node %s "
              "(index of checkpoint %" PRIu64 ", head %" PRIu64 ")",
              key, (uint64_t) ptr->np_off * HF_NODE_SIZE,
              "truncated",
              g->cur_ckpt, g->head);
    return EBADMSG;
  }
  return r;
}

static int
hf_gc_flush_run (struct hf_gc *g)
{
  uint32_t moved = 0;
  int r;

  if (g->run_n == 0)
    return 0;
  r = hf_volume_relocate (g->w, g->run_lba, g->run_n, g->run_seq,
                          g->run_blk, g->run_crc, &moved);
  g->run_n = 0;
  g->rep.relocated_blocks += moved;
  if (g->flatten && g->o.progress)
    g->o.progress (g->o.opaque, g->rep.relocated_blocks, g->flat_total);
  return r;
}

static int
hf_gc_node_fn (void *opaque, const struct hf_disk_node_ptr *ptr,
               unsigned level)
{
  struct hf_gc *g = opaque;
  struct hf_gc_seg *e;

  (void) level;
  if (g->dedup && hf_nodeset_seen (&g->vis, ptr->np_seq, ptr->np_off))
    return HF_BTREE_SKIP;
  g->rep.nodes_visited++;
  e = hf_gc_mark (g, ptr->np_seq);
  if (e && g->counting)
    e->live_nodes++;
  if (g->flat_counting && ptr->np_seq <= g->floor)
    g->flat_nodes++;
  if (g->compacting && (g->flatten ? ptr->np_seq <= g->floor
                        : e && (e->fl & HF_GC_CAND)))
    g->pending_touch = true;
  return 0;
}

static bool
hf_gc_cancelled (const struct hf_gc *g)
{
  return g->o.cancel && __atomic_load_n (g->o.cancel, __ATOMIC_RELAXED);
}

static int
hf_gc_ent_fn (void *opaque, uint64_t lba, const struct hf_bmap *m)
{
  struct hf_gc *g = opaque;
  struct hf_gc_seg *e;
  int r;

  if (g->compacting && hf_gc_cancelled (g))
    return ECANCELED;

  e = hf_gc_mark (g, m->seq);
  if (e && g->counting)
    e->live_blocks++;
  if (g->flat_counting && m->seq <= g->floor)
    g->flat_blocks++;
  if (!g->compacting)
    return 0;
  if (g->pending_touch) {
    /* The first key below a candidate node: touching it copies the
     * whole path (that node included) into the next checkpoint. */
    g->pending_touch = false;
    r = hf_volume_touch_index (g->w, lba);
    if (r)
      return r;
    g->rep.touched_nodes++;
  }
  if (g->flatten ? m->seq > g->floor : e == NULL || !(e->fl & HF_GC_CAND))
    return 0;
  if (g->run_n > 0 &&
      (g->run_n == HF_GC_RUN_MAX || g->run_seq != m->seq ||
       g->run_lba + g->run_n != lba || g->run_blk + g->run_n != m->blk)) {
    r = hf_gc_flush_run (g);
    if (r)
      return r;
  }
  if (g->run_n == 0) {
    g->run_lba = lba;
    g->run_seq = m->seq;
    g->run_blk = m->blk;
  }
  g->run_crc[g->run_n++] = m->crc;
  return 0;
}

/* Walk the tree of checkpoint c. */
static int
hf_gc_walk (struct hf_gc *g, uint64_t c)
{
  struct hf_btree_root root = { .empty = true };
  struct hf_btree *t;
  struct hf_seg_hdr h;
  int r;

  r = hf_gc_hdr (g, c, &h);
  if (r == ENOENT && (c == g->head_ckpt || hf_gc_find (g, c))) {
    g->race = true;
    return EAGAIN;
  }
  if (r == ENOENT) {
    /* Its root node lived there: the points using it are unreadable
     * already, and nothing they reach can be told apart. */
    hf_debug ("gc", "checkpoint segment %" PRIu64 " is gone", c);
    return 0;
  }
  if (r) {
    hf_error ("gc: %s: checkpoint segment %" PRIu64 ": %s",
              HF_OBJSTORE_NAME (g->s, g->prefix), c,
              r == ENOENT ? "missing" : strerror (r));
    return r == ENOENT ? EBADMSG : r;
  }
  if (!(h.flags & HF_SH_CHECKPOINT)) {
    hf_error ("gc: segment %" PRIu64 " is named as a checkpoint but holds "
              "none", c);
    return EBADMSG;
  }
  if (h.ckpt_root.np_seq == 0 && h.ckpt_root.np_off == 0 &&
      h.ckpt_root.np_crc == 0)
    return 0;                   /* an empty tree */
  root.empty = false;
  root.ptr = h.ckpt_root;
  root.level = h.ckpt_level;
  r = hf_btree_open (&root, h.mapped, hf_gc_read_node, g, g->o.node_cache,
                     &t);
  if (r)
    return r;
  g->rep.checkpoints_walked++;
  g->head_walk = c == g->head_ckpt;
  g->cur_ckpt = c;
  g->tree_gone = false;
  r = hf_btree_walk_full (t, hf_gc_node_fn, hf_gc_ent_fn, g);
  g->head_walk = false;
  hf_btree_close (t);
  if (g->race)
    r = EAGAIN;
  else if (g->tree_gone && r == EAGAIN)
    r = 0;
  return r;
}

/* ---- Steps ---- */

/* Walk the trees of the checkpoints collected since *walked. */
static int
hf_gc_walk_new (struct hf_gc *g, size_t *walked)
{
  int r = 0;

  for (; *walked < g->nckpt && r == 0; (*walked)++) {
    /* The head's tree is the first: count its live bytes (its nodes
     * are all distinct anyway). */
    g->counting = g->ckpts[*walked] == g->head_ckpt;
    g->dedup = true;
    r = hf_gc_walk (g, g->ckpts[*walked]);
  }
  g->counting = false;
  return r;
}

/* Listed bytes of the reached segments up to the head. */
static uint64_t
hf_gc_reached_bytes (const struct hf_gc *g)
{
  uint64_t b = 0;
  size_t i;

  for (i = 0; i < g->nseg; i++)
    if ((g->seg[i].fl & HF_GC_REACHED) && g->seg[i].seq <= g->head)
      b += g->seg[i].size;
  return b;
}

/* Root seq (window: the head with its retention window), its trees
 * walked, and what it keeps beyond the roots before it recorded. */
static int
hf_gc_pin_root (struct hf_gc *g, size_t *walked, const char *kind,
                const char *name, uint64_t seq, bool window, bool orphan)
{
  uint64_t before = hf_gc_reached_bytes (g);
  struct hf_gc_pin *p;
  int r;

  r = hf_gc_root (g, seq, window, name);
  if (r == 0)
    r = hf_gc_walk_new (g, walked);
  if (r)
    return r;
  if (g->npin == g->cappin) {
    size_t nc = g->cappin ? 2 * g->cappin : 8;
    struct hf_gc_pin *nv = realloc (g->pins, nc * sizeof *nv);

    if (nv == NULL)
      return ENOMEM;
    g->pins = nv;
    g->cappin = nc;
  }
  p = &g->pins[g->npin++];
  memset (p, 0, sizeof *p);
  p->kind = kind;
  snprintf (p->name, sizeof p->name, "%s", window ? "" : name);
  p->seq = window ? g->chain_low : seq;
  p->since_ns = window ? g->cutoff : 0;
  p->bytes = hf_gc_reached_bytes (g) - before;
  p->orphan = orphan;
  return 0;
}

/* Steps 2-4 (see the top): list, head, roots, mark. */
static int
hf_gc_scan (struct hf_gc *g)
{
  struct hf_volume_options ro = { .readonly = true, .node_cache = 64 };
  struct hf_volume_info vi;
  struct hf_volume *v;
  struct hf_snapshot *sn = NULL;
  struct hf_clone_reg *cr = NULL;
  size_t nsn = 0, ncr = 0, i, walked = 0;
  int r;

  g->nckpt = 0;
  g->chain_low = UINT64_MAX;
  g->missing = 0;
  g->race = false;
  hf_nodeset_clear (&g->vis);
  memset (&g->rep, 0, sizeof g->rep);

  /* The head first, then the list: a segment committed in between is
   * newer than the head and kept. */
  r = hf_volume_open (g->s, g->prefix, &ro, &v);
  if (r == EBADMSG) {
    /* The newest chains vanished while the open read them: a GC with a
     * newer view collected them.  Look again. */
    g->race = true;
    return EAGAIN;
  }
  if (r)
    return r;
  hf_volume_get_info (v, &vi);
  hf_volume_close (v);
  memcpy (g->uuid, vi.uuid, HF_UUID_SIZE);
  g->bs = vi.block_size;
  g->vd_flags = vi.vd_flags;
  g->head = vi.head_seq;
  g->head_ckpt = vi.ckpt_seq;
  g->rep.head_seq = g->head;
  r = hf_gc_list (g);
  if (r)
    return r;
  for (i = 0; i < g->nseg; i++) {
    g->rep.segments++;
    g->rep.bytes += g->seg[i].size;
  }
  if (g->head == 0)
    return 0;
  hf_gc_prefetch (g);

  r = hf_snapshot_list (g->s, g->prefix, &sn, &nsn);
  if (r == 0)
    r = hf_clone_reg_list (g->s, g->prefix, &cr, &ncr);
  if (r)
    goto out;

  /* Root by root, each walked before the next, so that what each
   * keeps beyond the ones before it can be told (on_pin).  The head's
   * checkpoint is ckpts[0]. */
  g->npin = 0;
  r = hf_gc_pin_root (g, &walked, "head", "head", g->head, false, false);
  if (r == 0) {
    r = hf_gc_pin_root (g, &walked, "window", "retain window", g->head,
                        true, false);
    g->rep.roots--;             /* the head, once more */
  }
  for (i = 0; r == 0 && i < nsn; i++)
    if (sn[i].seq > g->floor)
      r = hf_gc_pin_root (g, &walked, "snapshot", sn[i].name, sn[i].seq,
                          false, false);
  for (i = 0; r == 0 && i < ncr; i++) {
    enum hf_clone_state st = hf_clone_reg_state
      (&cr[i], hf_lineage_store_is_s3 (g->s), g->o.cfg);
    bool orphan = st == HF_CLONE_GONE || st == HF_CLONE_REPLACED;

    if (orphan)
      g->rep.orphan_clones++;   /* warned about at the end of the run */
    if (cr[i].base_seq > g->floor)
      r = hf_gc_pin_root (g, &walked, "clone", cr[i].clone_url,
                          cr[i].base_seq, false, orphan);
  }
  if (r)
    goto out;

  for (i = 0; i < g->nseg; i++) {
    struct hf_gc_seg *e = &g->seg[i];

    if (e->seq > g->head)
      e->fl |= HF_GC_REACHED;           /* newer than the head */
    if (e->fl & HF_GC_REACHED) {
      g->rep.reachable_segments++;
      g->rep.reachable_bytes += e->size;
    }
    /* The head's delta segments (after its checkpoint) are live whole. */
    if (e->seq > g->head_ckpt && e->seq <= g->head)
      g->rep.live_bytes += e->size;
    else
      g->rep.live_bytes += (uint64_t) e->live_blocks * g->bs +
        (uint64_t) e->live_nodes * HF_NODE_SIZE;
    hf_debug ("gc", "segment %" PRIu64 ": %" PRIu64 " bytes, head uses %"
              PRIu32 " blocks and %" PRIu32 " nodes%s", e->seq, e->size,
              e->live_blocks, e->live_nodes,
              e->fl & HF_GC_REACHED ? "" : ", unreachable");
  }
 out:
  free (sn);
  free (cr);
  return r;
}

/* Does the writer's head need a checkpoint to be one tree (writes
 * since the last one, committed or not)? */
static bool
hf_gc_needs_ckpt (struct hf_volume *w)
{
  struct hf_volume_info vi;

  hf_volume_get_info (w, &vi);
  return vi.head_seq != vi.ckpt_seq || vi.dirty_bytes > 0;
}

/* Step 5: compaction.  Returns 0 with *did set if it moved anything
 * (the caller then scans again). */
static int
hf_gc_compact (struct hf_gc *g, bool *did)
{
  uint64_t moved_bytes = 0, gain = 0;
  size_t i, ncand = 0;
  int r;

  *did = false;
  for (i = 0; i < g->nseg; i++) {
    struct hf_gc_seg *e = &g->seg[i];
    uint64_t live = (uint64_t) e->live_blocks * g->bs +
      (uint64_t) e->live_nodes * HF_NODE_SIZE;

    e->fl &= ~HF_GC_CAND;
    /* Not the head's checkpoint (its nodes are the newest already) nor
     * what the head does not use at all (retention frees that). */
    if (e->seq >= g->head_ckpt || live == 0 || e->size == 0)
      continue;
    if ((double) live >= g->o.compact_threshold * (double) e->size)
      continue;
    if (moved_bytes + live > g->o.compact_max_bytes)
      break;
    e->fl |= HF_GC_CAND;
    moved_bytes += live;
    gain += e->size - live;
    ncand++;
  }
  if (ncand == 0 || gain < g->o.compact_min_gain) {
    hf_debug ("gc", "compaction: %zu candidates would free %" PRIu64
              " bytes: not worth it", ncand, gain);
    return 0;
  }
  hf_debug ("gc", "compaction: moving %" PRIu64 " live bytes out of %zu "
            "segments to free %" PRIu64 " bytes", moved_bytes, ncand, gain);
  g->compacting = true;
  g->dedup = false;
  g->pending_touch = false;
  g->run_n = 0;
  r = hf_gc_walk (g, g->head_ckpt);
  if (r == EAGAIN)
    r = 0;              /* a newer view collected part of it: stop here */
  if (r == ECANCELED) {
    g->compacting = false;
    return r;           /* moved blocks commit with the writer's close */
  }
  if (r == 0)
    r = hf_gc_flush_run (g);
  g->compacting = false;
  if (r == 0 && (g->rep.relocated_blocks || g->rep.touched_nodes ||
                 hf_gc_needs_ckpt (g->w)))
    r = hf_volume_checkpoint (g->w);
  if (r) {
    if (r != ECANCELED)
      hf_error ("gc: compaction: %s", strerror (r));
    return r;
  }
  g->rep.compacted_segments += ncand;
  *did = true;
  return 0;
}

/* Is an unreachable segment old enough to delete?  Its header's
 * timestamp, or the store's mtime when the header is damaged.  -1 if
 * it is gone already. */
static int
hf_gc_old_enough (struct hf_gc *g, uint64_t seq)
{
  struct hf_seg_hdr h;
  uint64_t t;
  int r = hf_gc_hdr (g, seq, &h);

  if (r == ENOENT)
    return -1;
  if (r == 0)
    t = h.timestamp_ns;
  else {
    char key[HF_OBJSTORE_KEY_MAX + 1];
    struct hf_objstore_info info;

    hf_seg_key_vd (key, sizeof key, g->prefix, g->vd_flags, seq);
    r = hf_objstore_head (g->s, key, &info);
    if (r == ENOENT)
      return -1;
    if (r || info.mtime <= 0)
      return 0;                 /* cannot tell: keep it */
    t = (uint64_t) info.mtime * 1000000000;
  }
  return t + g->o.grace_ns <= g->now;
}

static int
hf_gc_delete_batch (struct hf_gc *g, char **keys, size_t n)
{
  int r;
  size_t i;

  if (n == 0)
    return 0;
  r = hf_objstore_delete_many (g->s, (const char *const *) keys, n);
  for (i = 0; i < n; i++)
    free (keys[i]);
  if (r)
    hf_error ("gc: %s: deleting segments: %s",
              HF_OBJSTORE_NAME (g->s, g->prefix), strerror (r));
  return r;
}

/* Step 6. */
static int
hf_gc_sweep (struct hf_gc *g)
{
  char *keys[HF_GC_DELETE_BATCH];
  size_t nk = 0, i;
  int r = 0;

  for (i = 0; i < g->nseg && r == 0; i++) {
    struct hf_gc_seg *e = &g->seg[i];
    char key[HF_OBJSTORE_KEY_MAX + 1];
    const char *why;
    int old;

    if ((e->fl & HF_GC_REACHED) || e->seq >= g->head)
      continue;
    old = hf_gc_old_enough (g, e->seq);
    if (old < 0)
      continue;                 /* another GC deleted it */
    if (old == 0) {
      g->rep.kept_young++;
      continue;
    }
    /* Every segment of the head's chain down to chain_low is reached:
     * one above it was never on the chain; below it, it is old history
     * (or an orphan of that time: no longer told apart). */
    why = e->seq > g->chain_low ? "orphan" : "unreachable";
    if (e->seq > g->chain_low)
      g->rep.orphans++;
    g->rep.deleted_segments++;
    g->rep.deleted_bytes += e->size;
    if (g->o.on_delete)
      g->o.on_delete (g->o.opaque, e->seq, e->size, why);
    hf_debug ("gc", "%s segment %" PRIu64 " (%" PRIu64 " bytes, %s)",
              g->o.dry_run ? "would delete" : "deleting", e->seq, e->size,
              why);
    if (g->o.dry_run)
      continue;
    hf_seg_key_vd (key, sizeof key, g->prefix, g->vd_flags, e->seq);
    keys[nk] = strdup (key);
    if (keys[nk] == NULL) {
      r = ENOMEM;
      break;
    }
    if (++nk == HF_GC_DELETE_BATCH) {
      r = hf_gc_delete_batch (g, keys, nk);
      nk = 0;
    }
  }
  if (r == 0)
    r = hf_gc_delete_batch (g, keys, nk);
  else
    while (nk > 0)
      free (keys[--nk]);
  return r;
}

/* Scan; if another GC collected something this scan was reading (its
 * view was newer), this view is stale and must not sweep: start again
 * from the newer head, a few times. */
static int
hf_gc_scan_retry (struct hf_gc *g)
{
  int r = EAGAIN, i;

  for (i = 0; i < 8; i++) {
    /* The clock after any checkpoint this run made: the head it made
     * is older than the cutoff with retain=0. */
    g->now = g->o.now_ns ? g->o.now_ns : hf_clock_wall_ns ();
    g->cutoff = g->now > g->o.retain_ns + g->o.grace_ns ?
      g->now - g->o.retain_ns - g->o.grace_ns : 0;
    r = hf_gc_scan (g);
    if (r != EAGAIN)
      return r;
    hf_debug ("gc", "another GC collected what this one was reading; "
              "scanning again");
    {
      struct timespec ts = { 0, (long) (1 + rand () % 50) * 1000000 };
      nanosleep (&ts, NULL);
    }
  }
  hf_error ("gc: %s: the head's chain or index kept vanishing (other "
            "GCs collecting, or damage: see hyperfile fsck); nothing "
            "deleted", HF_OBJSTORE_NAME (g->s, g->prefix));
  return r;
}

/* Old writer leases: each writable open takes a new epoch and leaves
 * its lease object behind.  Only the newest epoch decides anything
 * (format.h, "Writer lease"); the newest two are kept so that a writer
 * acquiring the next epoch right now still sees its predecessor. */
struct hf_gc_keys {
  char **k;
  size_t n, cap;
};

static int
hf_gc_lease_fn (void *opaque, const char *key, uint64_t size)
{
  struct hf_gc_keys *ks = opaque;

  (void) size;
  if (ks->n == ks->cap) {
    size_t nc = ks->cap ? ks->cap * 2 : 16;
    char **nv = realloc (ks->k, nc * sizeof *nv);
    if (nv == NULL)
      return ENOMEM;
    ks->k = nv;
    ks->cap = nc;
  }
  if ((ks->k[ks->n] = strdup (key)) == NULL)
    return ENOMEM;
  ks->n++;
  return 0;
}

static int
hf_gc_leases (struct hf_gc *g)
{
  char pfx[HF_OBJSTORE_KEY_MAX + 1];
  struct hf_gc_keys ks = { 0 };
  size_t i;
  int r;

  snprintf (pfx, sizeof pfx, "%slease/", g->prefix);
  r = hf_objstore_list (g->s, pfx, NULL, hf_gc_lease_fn, &ks);
  if (r == 0 && ks.n > 2) {
    g->rep.leases_deleted = ks.n - 2;
    if (!g->o.dry_run)
      for (i = 2; i < ks.n && r == 0; i += HF_GC_DELETE_BATCH) {
        size_t n = ks.n - i < HF_GC_DELETE_BATCH ? ks.n - i
          : HF_GC_DELETE_BATCH;
        r = hf_objstore_delete_many (g->s, (const char *const *) ks.k + i,
                                     n);
      }
  }
  for (i = 0; i < ks.n; i++)
    free (ks.k[i]);
  free (ks.k);
  if (r)
    hf_warn ("gc: %s: collecting old leases: %s",
             HF_OBJSTORE_NAME (g->s, g->prefix), strerror (r));
  return 0;                     /* old leases are only clutter */
}

int
hf_gc_run (struct hf_objstore *s, const char *prefix,
           struct hf_volume *writer, const struct hf_gc_options *o,
           struct hf_gc_report *rep)
{
  struct hf_gc g = { .s = s, .prefix = prefix ? prefix : "", .w = writer };
  const struct hf_lineage *lin0;
  struct hf_gc_report acc = { 0 };
  bool did = false;
  size_t i;
  int r;

  if (o)
    g.o = *o;
  else {
    g.o.retain_ns = (uint64_t) HF_GC_DEFAULT_RETAIN_S * 1000000000;
    g.o.grace_ns = (uint64_t) HF_GC_DEFAULT_GRACE_S * 1000000000;
  }
  if (g.o.compact_threshold <= 0)
    g.o.compact_threshold = 0.7;
  if (g.o.compact_max_bytes == 0)
    g.o.compact_max_bytes = (uint64_t) 1 << 30;
  if (g.o.compact_min_gain == 0)
    g.o.compact_min_gain = 4 << 20;
  if (g.o.node_cache == 0)
    g.o.node_cache = 1024;
  if (g.o.visited_max == 0)
    g.o.visited_max = 1 << 18;
  hf_nodeset_init (&g.vis, g.o.visited_max);

  /* A clone: the segments at or below its base are its parent's. */
  r = hf_lineage_open (s, g.prefix, g.o.cfg, &g.lin);
  if (r)
    goto out;
  lin0 = g.lin;
  g.floor = lin0->lv[0].floor;

  if (g.o.compact && writer && !g.o.dry_run && hf_gc_needs_ckpt (writer)) {
    r = hf_volume_checkpoint (writer);
    if (r) {
      hf_error ("gc: checkpoint before compaction: %s", strerror (r));
      goto out;
    }
  }
  r = hf_gc_scan_retry (&g);
  if (r == 0 && g.o.compact && writer && !g.o.dry_run && g.head) {
    r = hf_gc_compact (&g, &did);
    acc.compacted_segments = g.rep.compacted_segments;
    acc.relocated_blocks = g.rep.relocated_blocks;
    acc.touched_nodes = g.rep.touched_nodes;
    if (r == 0 && did)
      r = hf_gc_scan_retry (&g);
  }
  if (r == 0 && hf_gc_cancelled (&g))
    r = ECANCELED;
  if (r == 0)
    r = hf_gc_sweep (&g);
  if (r == 0)
    r = hf_gc_leases (&g);
  g.rep.compacted_segments = acc.compacted_segments;
  g.rep.relocated_blocks = acc.relocated_blocks;
  g.rep.touched_nodes = acc.touched_nodes;
  for (i = 0; r == 0 && i < g.npin; i++) {
    const struct hf_gc_pin *p = &g.pins[i];

    if (p->orphan)
      hf_warn ("gc: %s: clone registration of %s: the clone is gone (no "
               "volume with its uuid there); its base segment %" PRIu64
               " and what that reaches (%" PRIu64 " bytes) are still kept: "
               "remove it with `hyperfile children URL --prune`",
               HF_OBJSTORE_NAME (s, g.prefix), p->name, p->seq, p->bytes);
    if (g.o.on_pin)
      g.o.on_pin (g.o.opaque, p->kind, p->name, p->seq, p->since_ns,
                  p->bytes, p->orphan);
  }
  if (r == 0)
    hf_debug ("gc", "%s: head %" PRIu64 ", %" PRIu64 " segments (%" PRIu64
              " bytes), %" PRIu64 " reachable, %s %" PRIu64 " (%" PRIu64
              " bytes)", HF_OBJSTORE_NAME (s, g.prefix), g.rep.head_seq,
              g.rep.segments, g.rep.bytes, g.rep.reachable_segments,
              g.o.dry_run ? "would delete" : "deleted",
              g.rep.deleted_segments, g.rep.deleted_bytes);
 out:
  if (rep)
    *rep = g.rep;
  hf_lineage_close (g.lin);
  free (g.seg);
  free (g.ckpts);
  free (g.pins);
  hf_nodeset_free (&g.vis);
  return r;
}

/* ---- Flatten ---- */

/* Count what the head's tree still reads from the parent. */
static int
hf_gc_flat_count (struct hf_gc *g)
{
  int r;

  g->flat_blocks = g->flat_nodes = 0;
  g->flat_counting = true;
  g->dedup = false;
  r = hf_gc_walk (g, g->head_ckpt);
  g->flat_counting = false;
  return r;
}

int
hf_gc_flatten (struct hf_objstore *s, const char *prefix,
               struct hf_volume *w, const struct hf_gc_options *o,
               struct hf_gc_flatten_report *rep)
{
  struct hf_gc g = { .s = s, .prefix = prefix ? prefix : "", .w = w,
                     .flatten = true };
  struct hf_volume_info vi;
  int r, pass;

  memset (rep, 0, sizeof *rep);
  if (o)
    g.o = *o;
  g.o.node_cache = g.o.node_cache ? g.o.node_cache : 1024;
  hf_nodeset_init (&g.vis, g.o.visited_max ? g.o.visited_max : 1 << 18);
  r = hf_lineage_open (s, g.prefix, g.o.cfg, &g.lin);
  if (r)
    goto out;
  g.floor = g.lin->lv[0].floor;
  if (g.floor == 0) {
    hf_error ("flatten: %s is not a clone", HF_OBJSTORE_NAME (s, g.prefix));
    r = EINVAL;
    goto out;
  }
  /* Pass after pass: checkpoint (so the head is one tree), count what
   * it reads from the parent, move that (blocks relocated, index paths
   * touched) and checkpoint.  One pass moves everything; a pass that
   * finds nothing ends the loop, and the last one checks. */
  for (pass = 0; pass < 4; pass++) {
    hf_volume_get_info (w, &vi);
    /* A head still on the parent's checkpoint gets one of its own. */
    if ((hf_gc_needs_ckpt (w) || vi.ckpt_seq <= g.floor) &&
        (r = hf_volume_checkpoint (w)) != 0)
      break;
    hf_volume_get_info (w, &vi);
    memcpy (g.uuid, vi.uuid, HF_UUID_SIZE);
    g.bs = vi.block_size;
    g.vd_flags = vi.vd_flags;
    g.head = vi.head_seq;
    g.head_ckpt = vi.ckpt_seq;
    g.nseg = 0;
    if ((r = hf_gc_list (&g)) != 0)
      break;
    hf_nodeset_clear (&g.vis);
    if ((r = hf_gc_flat_count (&g)) != 0)
      break;
    if (pass == 0)
      rep->parent_blocks = g.flat_blocks, rep->parent_nodes = g.flat_nodes;
    hf_debug ("gc", "flatten pass %d: the head (checkpoint %" PRIu64 ") "
              "reads %" PRIu64 " blocks and %" PRIu64 " index nodes from "
              "the parent", pass, g.head_ckpt, g.flat_blocks, g.flat_nodes);
    if (g.flat_blocks == 0 && g.flat_nodes == 0 && g.head_ckpt > g.floor)
      break;
    g.flat_total = g.rep.relocated_blocks + g.flat_blocks;
    g.compacting = true;
    g.pending_touch = false;
    g.run_n = 0;
    r = hf_gc_walk (&g, g.head_ckpt);
    if (r == 0)
      r = hf_gc_flush_run (&g);
    g.compacting = false;
    if (r == 0)
      r = hf_volume_checkpoint (w);
    if (r)
      break;
  }
  if (r == 0 && pass == 4) {
    hf_error ("flatten: %s: the head still reads %" PRIu64 " blocks and %"
              PRIu64 " index nodes from the parent after %d passes",
              HF_OBJSTORE_NAME (s, g.prefix), g.flat_blocks, g.flat_nodes,
              pass);
    r = EAGAIN;
  }
  if (r == 0 && g.o.progress)
    g.o.progress (g.o.opaque, g.rep.relocated_blocks,
                  g.rep.relocated_blocks);
  rep->moved_blocks = g.rep.relocated_blocks;
  rep->touched_nodes = g.rep.touched_nodes;
  rep->head_seq = g.head;
  if (r && r != EINVAL)
    hf_error ("flatten: %s: %s", HF_OBJSTORE_NAME (s, g.prefix),
              strerror (r));
 out:
  hf_lineage_close (g.lin);
  free (g.seg);
  free (g.ckpts);
  free (g.pins);
  hf_nodeset_free (&g.vis);
  return r;
}

/* ---- Background scheduling ---- */

struct hf_gc_sched {
  struct hf_objstore *s;
  const char *prefix, *what;
  struct hf_volume *writer;
  struct hf_gc_options o;
  uint64_t interval_ms;
  pthread_t thread;
  /* lock protects stop (also read atomically by a run: o.cancel); cv
   * (CLOCK_MONOTONIC) wakes the thread to stop. */
  pthread_mutex_t lock;
  pthread_cond_t cv;
  bool stop;
};

static void *
hf_gc_sched_thread (void *arg)
{
  struct hf_gc_sched *g = arg;

  pthread_mutex_lock (&g->lock);
  while (!g->stop) {
    uint64_t until = hf_clock_mono_us () + g->interval_ms * 1000;
    struct timespec ts = { .tv_sec = (time_t) (until / 1000000),
                           .tv_nsec = (long) (until % 1000000) * 1000 };
    struct hf_gc_report rep;
    int r;

    while (!g->stop &&
           pthread_cond_timedwait (&g->cv, &g->lock, &ts) == 0)
      ;
    if (g->stop)
      break;
    pthread_mutex_unlock (&g->lock);
    r = hf_gc_run (g->s, g->prefix, g->writer, &g->o, &rep);
    if (r == ECANCELED)
      hf_debug ("gc", "%s: gc stopped: the server is shutting down",
                g->what);
    else if (r)
      hf_error ("%s: background gc failed: %s (retried in %" PRIu64 " ms)",
                g->what, strerror (r), g->interval_ms);
    else
      hf_debug ("gc", "%s: %" PRIu64 " segments (%" PRIu64 " bytes), "
                "deleted %" PRIu64 " (%" PRIu64 " bytes), compacted %"
                PRIu64 " (%" PRIu64 " blocks moved)", g->what,
                rep.segments, rep.bytes, rep.deleted_segments,
                rep.deleted_bytes, rep.compacted_segments,
                rep.relocated_blocks);
    pthread_mutex_lock (&g->lock);
  }
  pthread_mutex_unlock (&g->lock);
  return NULL;
}

int
hf_gc_sched_start (struct hf_objstore *s, const char *prefix,
                   struct hf_volume *writer, const struct hf_gc_options *o,
                   uint64_t interval_ms, const char *what,
                   struct hf_gc_sched **out)
{
  struct hf_gc_sched *g = calloc (1, sizeof *g);
  int r;

  if (g == NULL)
    return ENOMEM;
  g->s = s;
  g->prefix = prefix;
  g->writer = writer;
  g->what = what;
  g->interval_ms = interval_ms;
  if (o)
    g->o = *o;
  else {
    g->o.retain_ns = (uint64_t) HF_GC_DEFAULT_RETAIN_S * 1000000000;
    g->o.grace_ns = (uint64_t) HF_GC_DEFAULT_GRACE_S * 1000000000;
  }
  g->o.cancel = &g->stop;
  pthread_mutex_init (&g->lock, NULL);
  hf_clock_cond_init (&g->cv);
  r = pthread_create (&g->thread, NULL, hf_gc_sched_thread, g);
  if (r) {
    pthread_cond_destroy (&g->cv);
    pthread_mutex_destroy (&g->lock);
    free (g);
    return r;
  }
  *out = g;
  return 0;
}

void
hf_gc_sched_stop (struct hf_gc_sched *g)
{
  if (g == NULL)
    return;
  pthread_mutex_lock (&g->lock);
  __atomic_store_n (&g->stop, true, __ATOMIC_RELAXED);
  pthread_cond_signal (&g->cv);
  pthread_mutex_unlock (&g->lock);
  pthread_join (g->thread, NULL);
  pthread_cond_destroy (&g->cv);
  pthread_mutex_destroy (&g->lock);
  free (g);
}
