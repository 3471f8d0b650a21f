/* hyperfile: fsck -- read every object of a volume and verify every
 * structure and checksum that a reader of a retained point relies on
 * (what is checked is listed in fsck.h).
 *
 * Pass 1 reads each segment whole (one at a time) and verifies it on its
 * own, keeping only a small summary and its block CRC table.  Pass 2
 * follows the chain and the checkpoint trees using those summaries, so
 * the trees' leaf entries are checked against the tables without
 * reading any segment again (the nodes are read once more, by offset).
 */
#include <config.h>

#include <errno.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "btree.h"
#include "cleanup.h"
#include "crc32c.h"
#include "format.h"
#include "fsck.h"
#include "history.h"
#include "lease.h"
#include "lineage.h"
#include "log.h"
#include "nodeset.h"
#include "segment.h"
#include "volume.h"


/* What pass 1 learnt about one segment. */
struct hf_fsck_seg {
  uint64_t seq, size;
  bool ok;                      /* header and tables verified */
  bool incomplete;              /* an interrupted upload's body */
  bool on_chain;
  struct hf_seg_hdr h;
  uint32_t *crcs;               /* h.n_data, owned */
};

struct hf_fsck {
  struct hf_objstore *s;
  const char *prefix;
  hf_fsck_fn fn;
  void *opaque;
  struct hf_lineage *lin;
  struct hf_vdesc d;
  uint64_t floor;
  struct hf_fsck_seg *seg;
  size_t nseg, capseg;
  uint64_t *ckpts;
  size_t nckpt, capckpt;
  /* Tree walk state. */
  struct hf_disk_node_ptr cur_leaf, last_read;
  struct hf_nodeset vis;        /* node addresses already walked */
  struct hf_fsck_report rep;
};

static void
hf_fsck_problem (struct hf_fsck *f, const char *object, uint64_t off,
                 const char *fmt, ...)
  __attribute__ ((format (printf, 4, 5)));

static void
hf_fsck_problem (struct hf_fsck *f, const char *object, uint64_t off,
                 const char *fmt, ...)
{
  char what[600];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (what, sizeof what, fmt, ap);
  va_end (ap);
  f->rep.problems++;
  if (f->fn)
    f->fn (f->opaque, object, off, what);
}

static void
hf_fsck_key (struct hf_fsck *f, uint64_t seq, char *key, size_t n)
{
  hf_seg_key_vd (key, n, f->prefix, f->d.flags, seq);
}

static int
hf_fsck_get_all (struct hf_fsck *f, const char *key, size_t max,
                 uint8_t **buf, size_t *len)
{
  return hf_objstore_get_all_retry (f->s, key, max, (void **) buf, len);
}

/* ---- Pass 1: each object on its own ---- */

static int
hf_fsck_list_fn (void *opaque, const char *key, uint64_t size)
{
  struct hf_fsck *f = opaque;
  const char *name = strrchr (key, '/');
  uint64_t seq;

  if (name == NULL || hf_seg_key_parse (name + 1, &seq) != 0) {
    hf_fsck_problem (f, key, 0, "not a segment name");
    return 0;
  }
  if (f->nseg == f->capseg) {
    size_t nc = f->capseg ? f->capseg * 2 : 256;
    struct hf_fsck_seg *nv = realloc (f->seg, nc * sizeof *nv);
    if (nv == NULL)
      return ENOMEM;
    f->seg = nv;
    f->capseg = nc;
  }
  memset (&f->seg[f->nseg], 0, sizeof f->seg[0]);
  f->seg[f->nseg].seq = seq;
  f->seg[f->nseg].size = size;
  f->nseg++;
  return 0;
}

static int
hf_fsck_cmp_seg (const void *x, const void *y)
{
  const struct hf_fsck_seg *a = x, *b = y;
  return a->seq < b->seq ? -1 : a->seq > b->seq;
}

static struct hf_fsck_seg *
hf_fsck_find (struct hf_fsck *f, uint64_t seq)
{
  size_t lo = 0, hi = f->nseg;

  while (lo < hi) {
    size_t mid = lo + (hi - lo) / 2;
    if (f->seg[mid].seq < seq)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo < f->nseg && f->seg[lo].seq == seq ? &f->seg[lo] : NULL;
}

/* Pass 1 for a compressed segment's data area: every frame checks
 * (fr_crc, decodes to exactly its size) and every block in it matches
 * its CRC.  Takes m's frames (frees them). */
static int
hf_fsck_frames (struct hf_fsck *f, const char *key, const uint8_t *o,
                struct hf_seg_meta *m)
{
  size_t fb = (size_t) m->h.frame_blocks * m->h.block_size;
  CLEANUP_FREE uint8_t *tmp = malloc (fb ? fb : 1);
  uint32_t i, b;
  int r = 0;

  if (tmp == NULL)
    r = ENOMEM;
  for (i = 0; i < m->h.n_frames && r == 0; i++) {
    uint32_t nb = hf_seg_frame_nblocks (&m->h, i);
    int e = hf_seg_frame_decode (&m->h, i, &m->frames[i],
                                 o + m->frames[i].off, key, tmp);

    f->rep.data_blocks += nb;
    if (e == ENOMEM)
      r = e;
    else if (e) {
      hf_fsck_problem (f, key, m->frames[i].off, "%s", hf_log_last_error ());
      continue;
    }
    for (b = 0; b < nb && e == 0; b++) {
      uint32_t d = i * m->h.frame_blocks + b;
      if (hf_crc32c (0, tmp + (size_t) b * m->h.block_size,
                     m->h.block_size) != m->crcs[d])
        hf_fsck_problem (f, key, m->frames[i].off, "data block %" PRIu32
                         " (frame %" PRIu32 ") CRC mismatch", d, i);
    }
  }
  free (m->frames);
  m->frames = NULL;
  return r;
}

static int
hf_fsck_segment (struct hf_fsck *f, struct hf_fsck_seg *e)
{
  char key[HF_OBJSTORE_KEY_MAX + 1];
  CLEANUP_FREE uint8_t *o = NULL;
  struct hf_seg_meta m;
  size_t len = 0;
  uint32_t i;
  int r;

  hf_fsck_key (f, e->seq, key, sizeof key);
  /* No more than the listing said it holds. */
  r = hf_fsck_get_all (f, key, e->size < HF_SEG_MAX_OBJECT ? e->size
                       : HF_SEG_MAX_OBJECT, &o, &len);
  if (r == ENOENT)
    return 0;                   /* deleted since the list (GC) */
  if (r == EBADMSG) {
    /* A store layer found it damaged (an encrypted volume's chunk that
     * does not authenticate): damage to report, not a failure to run. */
    hf_fsck_problem (f, key, 0, "%s", hf_log_last_error ());
    return 0;
  }
  if (r) {
    hf_error ("fsck: reading %s: %s", key, strerror (r));
    return r;
  }
  f->rep.segments++;
  f->rep.bytes += len;
  /* Shorter than its intact header says, or than a header: the body of
   * an interrupted PUT that the store kept.  It never committed (the
   * engine passes over it, see hf_seg_read_meta); if a chain needed it,
   * pass 2 says so. */
  if (hf_seg_incomplete (o, len)) {
    e->incomplete = true;
    f->rep.incomplete++;
    hf_debug ("fsck", "%s: incomplete upload (%zu bytes)", key, len);
    return 0;
  }
  r = hf_seg_parse (o, len, false, key, f->d.uuid, f->d.block_size, e->seq,
                    &m);
  if (r == ENOMEM)
    return r;
  if (r) {
    hf_fsck_problem (f, key, hf_seg_bad_offset (), "%s",
                     hf_log_last_error ());
    return 0;
  }
  e->ok = true;
  e->h = m.h;
  e->crcs = m.crcs;
  free (m.ext);
  if (len != m.h.object_size) {
    hf_fsck_problem (f, key, len < m.h.object_size ? len : m.h.object_size,
                     "object is %zu bytes, its header says %" PRIu64, len,
                     m.h.object_size);
    if (len < m.h.object_size) {
      e->ok = false;
      free (m.frames);
      return 0;
    }
  }
  for (i = 0; i < m.h.n_nodes; i++) {
    uint32_t off = (uint32_t) (m.h.node_off / HF_NODE_SIZE) + i;
    unsigned level;

    f->rep.nodes++;
    if (hf_btree_verify_node (e->seq, off, o + (size_t) off * HF_NODE_SIZE,
                              &level))
      hf_fsck_problem (f, key, (uint64_t) off * HF_NODE_SIZE, "%s",
                       hf_log_last_error ());
  }
  if (m.h.codec)
    return hf_fsck_frames (f, key, o, &m);
  for (i = 0; i < m.h.n_data; i++) {
    uint64_t off = m.h.data_off + (uint64_t) i * m.h.block_size;

    f->rep.data_blocks++;
    if (hf_crc32c (0, o + off, m.h.block_size) != m.crcs[i])
      hf_fsck_problem (f, key, off, "data block %" PRIu32
                       " CRC mismatch", i);
  }
  return 0;
}

/* ---- Pass 2: chains and trees ---- */

static int
hf_fsck_add_ckpt (struct hf_fsck *f, uint64_t c)
{
  size_t i;

  if (c == 0 || c <= f->floor)
    return 0;
  for (i = 0; i < f->nckpt; i++)
    if (f->ckpts[i] == c)
      return 0;
  if (f->nckpt == f->capckpt) {
    size_t nc = f->capckpt ? f->capckpt * 2 : 16;
    uint64_t *nv = realloc (f->ckpts, nc * sizeof *nv);
    if (nv == NULL)
      return ENOMEM;
    f->ckpts = nv;
    f->capckpt = nc;
  }
  f->ckpts[f->nckpt++] = c;
  return 0;
}

/* Is the chain of point seq intact back to its checkpoint?  With report
 * set, every break is damage (a snapshot, a clone base, the head). */
static bool
hf_fsck_chain (struct hf_fsck *f, uint64_t seq, bool report,
               const char *what)
{
  char key[HF_OBJSTORE_KEY_MAX + 1];
  struct hf_fsck_seg *e = hf_fsck_find (f, seq), *p;
  uint64_t c;

  if (seq <= f->floor)
    return true;                /* the parent's: its own fsck */
  if (e == NULL || !e->ok) {
    if (report) {
      hf_fsck_key (f, seq, key, sizeof key);
      hf_fsck_problem (f, key, 0, "%s: segment %s", what,
                       e ? "damaged" : "missing");
    }
    return false;
  }
  c = e->h.ckpt_seq;
  while (e->seq != c && e->h.parent_seq > f->floor) {
    p = hf_fsck_find (f, e->h.parent_seq);
    if (p == NULL || !p->ok || p->h.hdr_crc != e->h.parent_crc) {
      if (report) {
        hf_fsck_key (f, e->seq, key, sizeof key);
        hf_fsck_problem (f, key,
                         p && p->ok ? offsetof (struct hf_disk_seg_hdr,
                                                sh_parent_crc)
                         : offsetof (struct hf_disk_seg_hdr, sh_parent_seq),
                         "%s: parent segment %" PRIu64 " %s", what,
                         e->h.parent_seq,
                         p == NULL ? "is missing" : !p->ok ? "is damaged"
                         : "does not match the link (sh_parent_crc)");
      }
      return false;
    }
    if (e->h.parent_seq == 0)
      break;
    e = p;
  }
  return true;
}

static int
hf_fsck_read_node (void *opaque, const struct hf_disk_node_ptr *ptr,
                   void *buf)
{
  struct hf_fsck *f = opaque;
  char key[HF_OBJSTORE_KEY_MAX + 1];
  struct hf_objstore *s = f->s;
  const char *prefix = f->prefix;
  uint32_t vd_flags = f->d.flags;
  size_t got = 0;
  int r;

  f->last_read = *ptr;
  if (ptr->np_seq <= f->floor) {
    const struct hf_lineage_level *lv = hf_lineage_locate (f->lin,
                                                           ptr->np_seq);
    s = lv->store;
    prefix = lv->prefix;
    vd_flags = lv->d.flags;
  }
  hf_seg_key_vd (key, sizeof key, prefix, vd_flags, ptr->np_seq);
  r = hf_objstore_get_retry (s, key, (uint64_t) ptr->np_off * HF_NODE_SIZE,
                             HF_NODE_SIZE, buf, &got);
  if (r == 0 && got != HF_NODE_SIZE)
    r = EBADMSG;
  if (r == ENOENT)
    r = EBADMSG;
  return r;
}

static int
hf_fsck_node_fn (void *opaque, const struct hf_disk_node_ptr *ptr,
                 unsigned level)
{
  struct hf_fsck *f = opaque;

  if (hf_nodeset_seen (&f->vis, ptr->np_seq, ptr->np_off))
    return HF_BTREE_SKIP;
  f->rep.tree_nodes++;
  if (level == 0)
    f->cur_leaf = *ptr;
  return 0;
}

static int
hf_fsck_ent_fn (void *opaque, uint64_t lba, const struct hf_bmap *m)
{
  struct hf_fsck *f = opaque;
  char key[HF_OBJSTORE_KEY_MAX + 1];
  struct hf_fsck_seg *e;
  const char *bad = NULL;

  f->rep.entries++;
  if (m->seq <= f->floor)
    return 0;                   /* the parent's fsck checks it */
  e = hf_fsck_find (f, m->seq);
  if (e == NULL)
    bad = "names a missing segment";
  else if (!e->ok)
    bad = "names a damaged segment";
  else if (m->blk < e->h.data_off / e->h.block_size ||
           m->blk - e->h.data_off / e->h.block_size >= e->h.n_data)
    bad = "names a block outside the segment's data area";
  else if (e->crcs[m->blk - e->h.data_off / e->h.block_size] != m->crc)
    bad = "CRC differs from the segment's block CRC table";
  if (bad) {
    hf_seg_key_vd (key, sizeof key, f->prefix, f->d.flags,
                   f->cur_leaf.np_seq);
    hf_fsck_problem (f, key, (uint64_t) f->cur_leaf.np_off * HF_NODE_SIZE,
                     "leaf entry for block %" PRIu64 " (segment %" PRIu64
                     ", block %" PRIu32 ") %s", lba, m->seq, m->blk, bad);
  }
  return 0;
}

static int
hf_fsck_tree (struct hf_fsck *f, uint64_t c)
{
  char key[HF_OBJSTORE_KEY_MAX + 1];
  struct hf_fsck_seg *e = hf_fsck_find (f, c);
  struct hf_btree_root root = { .empty = true };
  struct hf_btree *t;
  int r;

  hf_fsck_key (f, c, key, sizeof key);
  if (e == NULL || !e->ok)
    return 0;                   /* reported with its chain */
  if (!(e->h.flags & HF_SH_CHECKPOINT)) {
    hf_fsck_problem (f, key, offsetof (struct hf_disk_seg_hdr, sh_flags),
                     "named as a checkpoint but holds none");
    return 0;
  }
  if (e->h.ckpt_root.np_seq == 0 && e->h.ckpt_root.np_off == 0 &&
      e->h.ckpt_root.np_crc == 0)
    return 0;
  f->rep.checkpoints++;
  root.empty = false;
  root.ptr = e->h.ckpt_root;
  root.level = e->h.ckpt_level;
  r = hf_btree_open (&root, e->h.mapped, hf_fsck_read_node, f, 256, &t);
  if (r)
    return r;
  r = hf_btree_walk_full (t, hf_fsck_node_fn, hf_fsck_ent_fn, f);
  hf_btree_close (t);
  if (r == EBADMSG) {
    hf_seg_key_vd (key, sizeof key, f->prefix, f->d.flags,
                   f->last_read.np_seq);
    hf_fsck_problem (f, key, (uint64_t) f->last_read.np_off * HF_NODE_SIZE,
                     "index of checkpoint %" PRIu64 ": %s", c,
                     hf_log_last_error ());
    r = 0;
  }
  return r;
}

static int
hf_fsck_descriptor (struct hf_fsck *f)
{
  char key[HF_OBJSTORE_KEY_MAX + 1];
  CLEANUP_FREE uint8_t *o = NULL;
  size_t len = 0, bad = 0;
  int r;

  snprintf (key, sizeof key, "%svolume", f->prefix);
  r = hf_fsck_get_all (f, key, HF_OBJSTORE_SMALL_MAX, &o, &len);
  if (r == ENOENT)
    hf_error ("fsck: %s: no volume at %s", hf_objstore_describe (f->s), key);
  if (r)
    return r;
  if (hf_vdesc_decode (o, len, &f->d, &bad)) {
    hf_fsck_problem (f, key, bad, "volume descriptor damaged (magic, "
                     "version, CRC, block size or clone fields)");
    return EBADMSG;
  }
  f->floor = f->d.flags & HF_VD_CLONE ? f->d.parent_seq : 0;
  return 0;
}

int
hf_fsck_run (struct hf_objstore *s, const char *prefix,
             const struct hf_fsck_options *o, struct hf_fsck_report *rep)
{
  struct hf_fsck f = { .s = s, .prefix = prefix ? prefix : "",
                       .fn = o->fn, .opaque = o->opaque };
  struct timespec now;
  uint64_t cutoff;
  struct hf_volume_options ro = { .readonly = true, .node_cache = 64,
                                  .accept_older_head = true };
  struct hf_snapshot *sn = NULL;
  struct hf_clone_reg *cr = NULL;
  struct hf_volume_info vi;
  struct hf_volume *v;
  char pfx[HF_OBJSTORE_KEY_MAX + 1];
  size_t nsn = 0, ncr = 0, i;
  uint64_t seq, oldest_ok = UINT64_MAX, done = 0, total = 0;
  int r;

  hf_nodeset_init (&f.vis, 1 << 18);
  r = hf_fsck_descriptor (&f);
  if (r == EBADMSG) {
    r = 0;                      /* reported; nothing else can be read */
    goto out;
  }
  if (r)
    goto out;
  if (f.floor) {
    r = hf_lineage_open (s, f.prefix, o->cfg, &f.lin);
    if (r)
      goto out;
  }

  snprintf (pfx, sizeof pfx, "%sseg/", f.prefix);
  r = hf_objstore_list (s, pfx, NULL, hf_fsck_list_fn, &f);
  if (r)
    goto out;
  qsort (f.seg, f.nseg, sizeof *f.seg, hf_fsck_cmp_seg);
  for (i = 0; i < f.nseg; i++)
    total += f.seg[i].size;
  for (i = 0; i < f.nseg && r == 0; i++) {
    r = hf_fsck_segment (&f, &f.seg[i]);
    done += f.seg[i].size;
    if (o->progress)
      o->progress (o->opaque, done, total);
  }
  if (r)
    goto out;

  /* The head, as the engine recovers it, past damaged or lost newest
   * segments (accept_older_head): those are reported, and the rest is
   * still checked. */
  r = hf_volume_open (s, f.prefix, &ro, &v);
  if (r) {
    hf_fsck_problem (&f, "seg/", 0, "no intact head: %s",
                     hf_log_last_error ());
    r = 0;
    goto out;
  }
  hf_volume_get_info (v, &vi);
  hf_volume_close (v);
  f.rep.head_seq = vi.head_seq;
  /* The last writer's record of its head (format.h, "Writer lease"). */
  {
    struct hf_lease_info li;
    bool found;
    char lkey[HF_OBJSTORE_KEY_MAX + 1];

    r = hf_lease_newest (s, f.prefix, &found, &li);
    if (r == EBADMSG) {
      snprintf (lkey, sizeof lkey, "%slease/", f.prefix);
      hf_fsck_problem (&f, lkey, 0, "%s", hf_log_last_error ());
      r = 0;
    }
    if (r)
      goto out;
    if (found && li.committed_seq > vi.head_seq) {
      snprintf (lkey, sizeof lkey, "%slease/%016" PRIx64, f.prefix,
                ~li.epoch);
      hf_fsck_problem (&f, lkey, 0, "the writer lease (epoch %" PRIu64
                       ") records segment %" PRIu64 " as committed, but "
                       "the newest intact chain ends at segment %" PRIu64
                       ": newer segments were deleted or lost",
                       li.epoch, li.committed_seq, vi.head_seq);
      /* Name the one that breaks it: from the recorded head down the
       * parent links, the first missing or incomplete segment (a
       * damaged one is reported by pass 1). */
      for (seq = li.committed_seq; seq > vi.head_seq;) {
        struct hf_fsck_seg *e = hf_fsck_find (&f, seq);
        char key[HF_OBJSTORE_KEY_MAX + 1];

        hf_seg_key_vd (key, sizeof key, f.prefix, f.d.flags, seq);
        if (e == NULL || !e->ok) {
          if (e == NULL || e->incomplete)
            hf_fsck_problem (&f, key, 0, "segment %" PRIu64 " is %s, but "
                             "the writer lease records segment %" PRIu64
                             " as committed: deleted or lost", seq,
                             e == NULL ? "missing" :
                             "incomplete (cut short)", li.committed_seq);
          break;
        }
        seq = e->h.parent_seq;
      }
    }
  }

  /* The points GC keeps: from the head back through the window. */
  clock_gettime (CLOCK_REALTIME, &now);
  cutoff = (uint64_t) now.tv_sec * 1000000000 + (uint64_t) now.tv_nsec;
  cutoff = cutoff > o->retain_ns + o->grace_ns ?
    cutoff - o->retain_ns - o->grace_ns : 0;
  for (seq = vi.head_seq; seq > f.floor;) {
    struct hf_fsck_seg *e = hf_fsck_find (&f, seq);
    char what[64];

    snprintf (what, sizeof what, "point %" PRIu64, seq);
    if (!hf_fsck_chain (&f, seq, true, what))
      break;
    e->on_chain = true;
    f.rep.points++;
    oldest_ok = seq;
    r = hf_fsck_add_ckpt (&f, e->h.ckpt_seq);
    if (r)
      goto out;
    if (e->h.timestamp_ns < cutoff)
      break;                    /* the state at the window's start */
    seq = e->h.parent_seq;
  }
  for (i = 0; i < f.nseg; i++)
    if (f.seg[i].seq < oldest_ok)
      f.rep.older_segments++;           /* history GC collects */

  r = hf_snapshot_list (s, f.prefix, &sn, &nsn);
  if (r == EBADMSG) {
    hf_fsck_problem (&f, "snap/", 0, "%s", hf_log_last_error ());
    r = 0;
  }
  if (r)
    goto out;
  r = hf_clone_reg_list (s, f.prefix, &cr, &ncr);
  if (r == EBADMSG) {
    hf_fsck_problem (&f, "clones/", 0, "%s", hf_log_last_error ());
    r = 0;
  }
  if (r)
    goto out;
  for (i = 0; i < nsn && r == 0; i++) {
    char what[200];
    struct hf_fsck_seg *e = hf_fsck_find (&f, sn[i].seq);

    f.rep.snapshots++;
    if (memcmp (sn[i].volume_uuid, f.d.uuid, HF_UUID_SIZE) != 0) {
      /* Another volume's (copied or swapped in): the seq it names here
       * is not its point; at=NAME refuses it the same way. */
      snprintf (what, sizeof what, "%ssnap/%s", f.prefix, sn[i].name);
      hf_fsck_problem (&f, what,
                       offsetof (struct hf_disk_snapshot, sn_volume_uuid),
                       "snapshot %s belongs to another volume (uuid "
                       "differs)", sn[i].name);
      continue;
    }
    snprintf (what, sizeof what, "snapshot %s", sn[i].name);
    if (hf_fsck_chain (&f, sn[i].seq, true, what) && e)
      r = hf_fsck_add_ckpt (&f, e->h.ckpt_seq);
  }
  for (i = 0; i < ncr && r == 0; i++) {
    char what[300];
    struct hf_fsck_seg *e = hf_fsck_find (&f, cr[i].base_seq);

    enum hf_clone_state st;

    f.rep.clones++;
    /* A registration whose clone is gone is no damage, but it keeps
     * the base (and what it reaches) from GC forever: say so. */
    st = hf_clone_reg_state (&cr[i], hf_lineage_store_is_s3 (s), o->cfg);
    if (st == HF_CLONE_GONE || st == HF_CLONE_REPLACED) {
      f.rep.orphan_clones++;
      hf_warn ("fsck: %s: clone registration of %s: the clone is gone (%s); "
               "it still keeps base segment %" PRIu64 " from gc: remove it "
               "with `hyperfile children URL --prune`",
               HF_OBJSTORE_NAME (s, f.prefix), cr[i].clone_url,
               st == HF_CLONE_GONE ? "no descriptor there"
               : "another volume is there", cr[i].base_seq);
    }
    snprintf (what, sizeof what, "base of clone %s", cr[i].clone_url);
    if (hf_fsck_chain (&f, cr[i].base_seq, true, what) && e)
      r = hf_fsck_add_ckpt (&f, e->h.ckpt_seq);
  }
  for (i = 0; i < f.nckpt && r == 0; i++)
    r = hf_fsck_tree (&f, f.ckpts[i]);
  for (i = 0; i < f.nseg; i++)
    if (f.seg[i].seq > oldest_ok && !f.seg[i].on_chain)
      f.rep.orphans++;

 out:
  if (rep)
    *rep = f.rep;
  for (i = 0; i < f.nseg; i++)
    free (f.seg[i].crcs);
  free (f.seg);
  free (f.ckpts);
  hf_nodeset_free (&f.vis);
  free (sn);
  free (cr);
  hf_lineage_close (f.lin);
  return r;
}
