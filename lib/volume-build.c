/* hyperfile: the builder thread (see volume-int.h for the map): it
 * turns sealed buffers into segment objects, in seq order.
 *
 * An object is: header, extent table (zero runs first, then data runs in
 * lba order, so data wins within a segment), block CRC table, node area
 * (checkpoints only, volume-ckpt.c), data area (format.h).  Headers chain
 * to the previously built segment (sh_parent_seq and sh_parent_crc).
 * Once built, the buffer's hash is remapped onto the object's data area
 * and the slots are freed (or kept as the spare slot array).
 *
 * Lock rule: the builder's b_* fields are its own (no lock); it takes
 * v->lock only to read the lease epoch, to take or give spare buffers
 * and to publish the built segment.  It never holds v->lock across a
 * copy of the data or any I/O.  A checkpoint also takes tree_lock, in
 * volume-ckpt.c.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "clock.h"
#include "log.h"
#include "volume-int.h"

/* An object buffer of at least len bytes (its size in *cap): the
 * smallest spare that fits, else a new one with some room to spare so
 * that it fits the next objects too. */
uint8_t *
hf_vol_obj_alloc (struct hf_volume *v, size_t len, size_t *cap)
{
  uint8_t *p = NULL;
  unsigned i, best = UINT_MAX;

  hf_vol_lock (v);
  for (i = 0; i < v->n_spare_obj; i++)
    if (v->spare_obj[i].cap >= len &&
        (best == UINT_MAX || v->spare_obj[i].cap < v->spare_obj[best].cap))
      best = i;
  if (best != UINT_MAX) {
    p = v->spare_obj[best].p;
    *cap = v->spare_obj[best].cap;
    v->spare_obj[best] = v->spare_obj[--v->n_spare_obj];
  }
  hf_vol_unlock (v);
  if (p)
    return p;
  /* Large objects get 1/8 more, rounded to 1 MiB, so that one buffer
   * fits the next objects of about the same size; small ones (a few
   * blocks, a flush's worth) only their pages. */
  if (len < (1u << 20))
    *cap = (len + 4095) & ~(size_t) 4095;
  else
    *cap = (len + len / 8 + (1u << 20) - 1) & ~(size_t) ((1u << 20) - 1);
  /* Page-aligned, so that the data and node areas (multiples of 4096
   * into the object) can be written with O_DIRECT. */
  if (posix_memalign ((void **) &p, 4096, *cap) != 0)
    return NULL;
  return p;
}

/* Keep a committed segment's object buffer for reuse (caller holds
 * v->lock); a full pool keeps the larger buffers. */
void
hf_vol_obj_recycle_locked (struct hf_volume *v, uint8_t *obj, size_t cap)
{
  unsigned i, small = 0;

  HF_VOL_ASSERT_LOCKED (v);
  if (obj == NULL)
    return;
  if (cap < (1u << 20))
    free (obj);
  else if (v->n_spare_obj < HF_VOL_SPARE_OBJS) {
    v->spare_obj[v->n_spare_obj].p = obj;
    v->spare_obj[v->n_spare_obj++].cap = cap;
  }
  else {
    for (i = 1; i < v->n_spare_obj; i++)
      if (v->spare_obj[i].cap < v->spare_obj[small].cap)
        small = i;
    if (v->spare_obj[small].cap < cap) {
      free (v->spare_obj[small].p);
      v->spare_obj[small].p = obj;
      v->spare_obj[small].cap = cap;
    }
    else
      free (obj);
  }
}

/* The extent and CRC tables and the header fields of s that do not
 * depend on the layout; ents (caller frees) are its data blocks in lba
 * order. */
static int
hf_vol_build_tables (struct hf_volume *v, struct hf_vol_seg *s,
                     struct hf_wbuf_ent **ents_out, size_t *n_out)
{
  struct hf_wbuf *b = s->buf;
  struct hf_seg_hdr *h = &s->meta.h;
  struct hf_wbuf_ent *ents;
  struct hf_seg_ext *ext;
  uint32_t *crcs;
  size_t n, i, nz = 0, next = 0;
  int r;

  r = hf_wbuf_sorted (b, &ents, &n);
  if (r)
    return r;
  /* Extent table: zero runs (split to fit ex_nblocks), then data. */
  for (i = 0; i < b->zeros.n; i++)
    nz += (b->zeros.v[i].n + UINT32_MAX - 1) / UINT32_MAX;
  ext = malloc ((nz + n + 1) * sizeof *ext);
  crcs = malloc ((n + 1) * sizeof *crcs);
  if (ext == NULL || crcs == NULL) {
    free (ext);
    free (crcs);
    free (ents);
    return ENOMEM;
  }
  for (i = 0; i < b->zeros.n; i++) {
    uint64_t lba = b->zeros.v[i].lba, left = b->zeros.v[i].n;
    while (left) {
      uint32_t c = left > UINT32_MAX ? UINT32_MAX : (uint32_t) left;
      ext[next++] = (struct hf_seg_ext) { lba, c, HF_EXT_ZERO };
      lba += c;
      left -= c;
    }
  }
  for (i = 0; i < n; i++) {
    /* Computed by the writer on the bytes it put (volume-write.c), not
     * again here: a block changed in memory since then no longer
     * matches and fails its read from the segment or the cache. */
    crcs[i] = ents[i].crc;
    if (i > 0 && ents[i].lba == ents[i - 1].lba + 1 &&
        ext[next - 1].flags == HF_EXT_DATA)
      ext[next - 1].nblocks++;
    else
      ext[next++] = (struct hf_seg_ext) { ents[i].lba, 1, HF_EXT_DATA };
  }

  memset (h, 0, sizeof *h);
  h->block_size = v->bs;
  memcpy (h->volume_uuid, v->uuid, HF_UUID_SIZE);
  h->seq = s->seq;
  h->parent_seq = v->b_parent_seq;
  h->parent_crc = v->b_parent_crc;
  hf_vol_lock (v);
  h->lease_epoch = v->lease.epoch;
  hf_vol_unlock (v);
  h->volume_size = s->volume_size;
  /* Build time, not commit time: the header is final before the PUT. */
  h->timestamp_ns = hf_clock_wall_ns ();
  h->wal_lsn = s->wal_lsn;
  h->wal_id = v->wal_id;
  h->n_ext = (uint32_t) next;
  h->n_data = (uint32_t) n;
  if (v->codec) {
    h->codec = v->codec;
    h->frame_blocks = hf_seg_frame_blocks_for (v->bs, HF_VOL_FRAME_BYTES);
  }
  s->meta.ext = ext;
  s->meta.crcs = crcs;
  *ents_out = ents;
  *n_out = n;
  return 0;
}

/* Does s carry a checkpoint?  A checkpoint rewrites every leaf that
 * changed, which for random writes is most of the tree: with the
 * default thresholds, space checkpoints out in proportion to the tree's
 * size (every mapped/8 entries, about 7% extra bytes at worst, 5 bytes
 * of delta memory per mapped block) so that big volumes do not pay a
 * whole-tree rewrite per GiB written. */
static bool
hf_vol_ckpt_due (struct hf_volume *v, const struct hf_vol_seg *s)
{
  uint64_t ent = v->o.checkpoint_entries, segs = v->o.checkpoint_segments;

  if (v->auto_ckpt && v->b_mapped / 8 > ent) {
    uint64_t per_seg = v->o.segment_size / v->bs;
    ent = v->b_mapped / 8;
    if (ent / per_seg > segs)
      segs = ent / per_seg;
  }
  return s->force_ckpt || v->b_segs_since + 1 >= segs ||
    v->b_ext_since + s->meta.h.n_ext >= ent;
}

/* A segment without a checkpoint names the builder's last one. */
static int
hf_vol_plain_layout (struct hf_volume *v, struct hf_vol_seg *s,
                     uint8_t **obj, size_t *obj_cap)
{
  struct hf_seg_hdr *h = &s->meta.h;

  h->ckpt_seq = v->b_ckpt_seq;
  if (!v->b_root.empty) {
    h->ckpt_root = v->b_root.ptr;
    h->ckpt_level = v->b_root.level;
  }
  h->mapped = v->b_mapped;
  if (hf_seg_layout (h))
    return EFBIG;
  *obj = hf_vol_obj_alloc (v, h->object_size, obj_cap);
  return *obj ? 0 : ENOMEM;
}

/* Compress the data area of the image obj (laid out for *h, tables
 * still to write) into the stored object *up (h->object_size becomes
 * its length) and write the tables into both: the header and tables
 * are the same bytes in the image and in the stored object, so the
 * header CRC that chains segments is the same too.  If no frame shrank,
 * *up is NULL and the image is uploaded.  *up is a buffer
 * of the pool, page-aligned like obj: the directory store writes such
 * an object with O_DIRECT, anything else through the page cache (a
 * fifth of a compressed volume's CPU on 4 KiB random writes), and a
 * fresh buffer per segment would fault its pages in every time. */
static int
hf_vol_compress (struct hf_volume *v, struct hf_vol_seg *s, uint8_t *obj,
                 uint8_t **up, size_t *up_cap)
{
  struct hf_seg_hdr *h = &s->meta.h;
  uint64_t image = h->object_size;
  struct hf_seg_frame *fr;
  uint8_t *u;
  int r;

  u = hf_vol_obj_alloc (v, image, up_cap);
  fr = calloc (h->n_frames ? h->n_frames : 1, sizeof *fr);
  if (u == NULL || fr == NULL) {
    free (u);
    free (fr);
    return ENOMEM;
  }
  r = hf_seg_compress (obj + h->data_off, h, v->codec_level, u + h->data_off,
                       fr);
  if (r) {
    h->object_size = image;
    free (u);
    free (fr);
    return r;
  }
  hf_seg_write_meta_frames (obj, h, s->meta.ext, s->meta.crcs, fr);
  s->meta.frames = fr;
  if (h->object_size == image) {
    /* Every frame raw (random data): the image is the stored object,
     * and is uploaded as it is, without a copy. */
    hf_vol_lock (v);
    hf_vol_obj_recycle_locked (v, u, *up_cap);
    hf_vol_unlock (v);
    *up = NULL;
    *up_cap = 0;
    return 0;
  }
  memcpy (u, obj, h->data_off);
  *up = u;
  return 0;
}

/* Build segment s into an object (see the top of the file).  Runs in
 * the builder thread without v->lock, except where noted. */
static int
hf_vol_build (struct hf_volume *v, struct hf_vol_seg *s)
{
  struct hf_wbuf *b = s->buf;
  struct hf_seg_hdr *h = &s->meta.h;
  CLEANUP_FREE struct hf_wbuf_ent *ents = NULL;
  uint8_t *obj = NULL, *old_slots, *up = NULL;
  size_t up_cap = 0;
  size_t obj_cap = 0;
  uint64_t image;
  size_t n = 0, i;
  bool ckpt;
  int r;

  hf_seg_meta_free (&s->meta);
  r = hf_vol_build_tables (v, s, &ents, &n);
  if (r)
    return r;
  ckpt = hf_vol_ckpt_due (v, s);
  if (ckpt)
    r = hf_vol_ckpt_build (v, s, &obj, &obj_cap);
  else
    r = hf_vol_plain_layout (v, s, &obj, &obj_cap);
  if (r) {
    if (!ckpt)
      free (obj);
    hf_seg_meta_free (&s->meta);
    return r;
  }

  /* Data area in lba order, then header and tables. */
  for (i = 0; i < n; i++)
    memcpy (obj + h->data_off + i * v->bs,
            b->slots + (size_t) ents[i].slot * v->bs, v->bs);
  if (!ckpt)
    memset (obj + h->node_off, 0, h->data_off - h->node_off);
  else
    memset (obj + h->node_off + (size_t) h->n_nodes * HF_NODE_SIZE, 0,
            h->data_off - h->node_off - (size_t) h->n_nodes * HF_NODE_SIZE);
  image = h->object_size;
  if (h->codec) {
    r = hf_vol_compress (v, s, obj, &up, &up_cap);
    if (r && ckpt) {
      /* The checkpoint changed the builder's tree state: like a failed
       * checkpoint (volume-ckpt.c), stop writing. */
      hf_vol_lock (v);
      v->broken = r == ENOMEM ? ENOMEM : EIO;
      hf_vol_wake_all_locked (v);
      hf_vol_unlock (v);
      hf_error ("volume: compressing segment %" PRIu64 ": %s; the volume "
                "refuses writes until reopened", s->seq, strerror (r));
      return r;
    }
    if (r) {
      free (obj);
      hf_seg_meta_free (&s->meta);
      return r;
    }
  }
  else
    hf_seg_write_meta (obj, h, s->meta.ext, s->meta.crcs);

  /* s may be uploaded, committed and freed as soon as it is BUILT:
   * take what the builder keeps first. */
  v->b_parent_seq = s->seq;
  v->b_parent_crc = h->hdr_crc;
  if (ckpt) {
    v->b_segs_since = 0;
    v->b_ext_since = 0;
  }
  else {
    v->b_segs_since++;
    v->b_ext_since += h->n_ext;
  }
  hf_debug ("volume", "built seq %" PRIu64 ": %" PRIu32 " extents, %" PRIu32
            " blocks, %" PRIu32 " nodes%s, %" PRIu64 " of %" PRIu64
            " bytes stored", s->seq, h->n_ext, h->n_data, h->n_nodes,
            ckpt ? " (checkpoint)" : "", h->object_size, image);

  /* Reads of s now come from the object's data area. */
  hf_vol_lock (v);
  old_slots = hf_wbuf_remap (b, ents, n, obj + h->data_off);
  s->obj = obj;
  s->obj_cap = obj_cap;
  s->obj_len = image;
  s->up = up;
  s->up_cap = up_cap;
  s->ckpt = ckpt;
  s->state = HF_VSEG_BUILT;
  s->built_us = hf_clock_mono_us ();
  if (old_slots && b->cap_slots >= 1024) {
    struct hf_wbuf_spare *sp = v->spare_slots.p == NULL ? &v->spare_slots
      : v->spare_slots2.p == NULL ? &v->spare_slots2 : NULL;

    if (sp) {
      sp->p = old_slots;
      sp->len = (size_t) b->cap_slots * v->bs;
      old_slots = NULL;
    }
  }
  pthread_cond_broadcast (&v->work_cv);
  hf_vol_unlock (v);
  free (old_slots);
  return 0;
}

void *
hf_vol_builder_thread (void *arg)
{
  struct hf_volume *v = arg;
  struct hf_vol_seg *s;
  int r;

  hf_vol_lock (v);
  while (!v->stop) {
    for (s = v->sealed; s && s->state != HF_VSEG_SEALED; s = s->next)
      ;
    if (s == NULL || v->broken) {
      hf_vol_wait (v, &v->work_cv, 0);
      continue;
    }
    hf_vol_unlock (v);
    r = hf_vol_build (v, s);
    hf_vol_lock (v);
    if (r && r != ECANCELED && !v->broken) {
      hf_error ("volume: building segment %" PRIu64 ": %s (retrying)",
                s->seq, strerror (r));
      hf_vol_wait (v, &v->work_cv, hf_clock_mono_us () + 100000);
    }
  }
  hf_vol_unlock (v);
  return NULL;
}
