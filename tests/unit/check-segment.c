/* Unit tests for lib/segment: build/parse round trips of every header
 * field and table, keys, and each kind of damage (header byte, table
 * byte, data byte, truncation, wrong uuid / block size / seq) giving
 * EBADMSG; compressed segments (frame table, raw fallback, a corrupt
 * frame, hostile tables and frames).  Reading through a store uses the
 * dir store. */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "crc32c.h"
#include "format.h"
#include "log.h"
#include "objstore.h"
#include "segment.h"
#include "test-util.h"

#include <zstd.h>

static const uint8_t test_uuid[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
                                       13, 14, 15, 16 };

/* Build a segment with n_data blocks (one DATA extent per 3 blocks plus
 * a ZERO extent) and n_nodes fake nodes.  Caller frees *obj. */
static void
build (uint32_t bs, uint32_t n_data, uint32_t n_nodes, uint8_t **obj,
       struct hf_seg_hdr *h, struct hf_seg_ext **ext_out,
       uint32_t **crcs_out)
{
  struct hf_seg_ext *ext = calloc (n_data + 2, sizeof *ext);
  uint32_t *crcs = calloc (n_data + 1, sizeof *crcs);
  uint32_t i, n_ext = 0, left = n_data;
  uint8_t *o;

  ck_assert (ext && crcs);
  ext[n_ext++] = (struct hf_seg_ext) { 1000, 77, HF_EXT_ZERO };
  for (i = 0; left; i++) {
    uint32_t c = left < 3 ? left : 3;
    ext[n_ext++] = (struct hf_seg_ext) { 10 * i, c, HF_EXT_DATA };
    left -= c;
  }
  memset (h, 0, sizeof *h);
  h->flags = n_nodes ? HF_SH_CHECKPOINT : 0;
  h->block_size = bs;
  memcpy (h->volume_uuid, test_uuid, 16);
  h->seq = 42;
  h->parent_seq = 41;
  h->parent_crc = 0xdeadbeef;
  h->lease_epoch = 7;
  h->volume_size = (uint64_t) 1 << 30;
  h->timestamp_ns = 123456789;
  h->n_ext = n_ext;
  h->n_data = n_data;
  h->n_nodes = n_nodes;
  h->ckpt_seq = n_nodes ? 42 : 40;
  h->mapped = 999;
  ck_assert_int_eq (hf_seg_layout (h), 0);
  if (n_nodes) {
    h->ckpt_root.np_seq = 42;
    h->ckpt_root.np_off = (uint32_t) (h->node_off / HF_NODE_SIZE);
    h->ckpt_root.np_crc = 0x12345678;
    h->ckpt_level = 2;
  }
  o = malloc (h->object_size);
  ck_assert (o != NULL);
  for (i = 0; i < n_nodes; i++)
    memset (o + h->node_off + (size_t) i * HF_NODE_SIZE, 0xa0 + i,
            HF_NODE_SIZE);
  for (i = 0; i < n_data; i++) {
    uint8_t *b = o + h->data_off + (size_t) i * bs;
    memset (b, (int) (i * 31 + 1), bs);
    crcs[i] = hf_crc32c (0, b, bs);
  }
  hf_seg_write_meta (o, h, ext, crcs);
  *obj = o;
  *ext_out = ext;
  *crcs_out = crcs;
}

START_TEST (test_keys)
{
  char key[64];
  uint64_t seq;

  hf_seg_key (key, sizeof key, "vol/", 1);
  ck_assert_str_eq (key, "vol/seg/fffffffffffffffe");
  ck_assert_int_eq (hf_seg_key_parse ("fffffffffffffffe", &seq), 0);
  ck_assert_uint_eq (seq, 1);
  hf_seg_key (key, sizeof key, "", 0x1234);
  ck_assert_int_eq (hf_seg_key_parse (key + 4, &seq), 0);
  ck_assert_uint_eq (seq, 0x1234);
  ck_assert_int_eq (hf_seg_key_parse ("ffffffffffffffff", &seq), EINVAL);
  ck_assert_int_eq (hf_seg_key_parse ("fffffffffffffffE", &seq), EINVAL);
  ck_assert_int_eq (hf_seg_key_parse ("fffffffffffffffe.tmp", &seq), EINVAL);
  ck_assert_int_eq (hf_seg_key_parse ("ffff", &seq), EINVAL);
  /* Newer sorts first. */
  {
    char a[64], b[64];
    hf_seg_key (a, sizeof a, "", 9);
    hf_seg_key (b, sizeof b, "", 10);
    ck_assert_int_lt (strcmp (b, a), 0);
  }
  /* Grouped keys (HF_VD_SEG_GROUPS): 512 seqs a group, newest first. */
  hf_seg_key_vd (key, sizeof key, "vol/", 0, 1);
  ck_assert_str_eq (key, "vol/seg/fffffffffffffffe");
  hf_seg_key_vd (key, sizeof key, "vol/", HF_VD_SEG_GROUPS, 1);
  ck_assert_str_eq (key, "vol/seg/ffffffffffffffff/fffffffffffffffe");
  hf_seg_key_vd (key, sizeof key, "", HF_VD_SEG_GROUPS, 512);
  ck_assert_str_eq (key, "seg/fffffffffffffffe/fffffffffffffdff");
  ck_assert_int_eq (hf_seg_name_parse (key + 4, &seq), 0);
  ck_assert_uint_eq (seq, 512);
  ck_assert_int_eq (hf_seg_name_parse ("fffffffffffffdff", &seq), 0);
  ck_assert_uint_eq (seq, 512);
  /* 512 is in group 1, not 0; and no other shapes. */
  ck_assert_int_eq (hf_seg_name_parse ("ffffffffffffffff/fffffffffffffdff",
                                       &seq), EINVAL);
  ck_assert_int_eq (hf_seg_name_parse ("fffffffffffffffe/fffffffffffffdff/",
                                       &seq), EINVAL);
  ck_assert_int_eq (hf_seg_name_parse ("fffffffffffffffe-fffffffffffffdff",
                                       &seq), EINVAL);
  hf_seg_group_dir (key, sizeof key, "p/", 1);
  ck_assert_str_eq (key, "p/seg/fffffffffffffffe/");
  {
    char a[64], b[64];
    hf_seg_key_vd (a, sizeof a, "", HF_VD_SEG_GROUPS, 511);
    hf_seg_key_vd (b, sizeof b, "", HF_VD_SEG_GROUPS, 512);
    ck_assert_int_lt (strcmp (b, a), 0);
    ck_assert_uint_le (strlen (a) + 1, HF_SEG_KEY_LEN (0));
  }
}
END_TEST

START_TEST (test_round_trip)
{
  static const uint32_t sizes[] = { 512, 4096, 65536 };
  size_t si;

  for (si = 0; si < 3; si++) {
    uint32_t nd, nn;
    for (nd = 0; nd < 20; nd += 7)
      for (nn = 0; nn < 3; nn += 2) {
        struct hf_seg_hdr h;
        struct hf_seg_ext *ext;
        uint32_t *crcs, i;
        uint8_t *o;
        struct hf_seg_meta m;

        build (sizes[si], nd, nn, &o, &h, &ext, &crcs);
        ck_assert_uint_eq (h.data_off % sizes[si], 0);
        ck_assert_uint_eq (h.data_off % HF_NODE_SIZE, 0);
        ck_assert_uint_eq (h.node_off % HF_NODE_SIZE, 0);
        ck_assert_int_eq (hf_seg_parse (o, h.object_size, true, "k",
                                        test_uuid, sizes[si], 42, &m), 0);
        ck_assert_uint_eq (m.h.flags, h.flags);
        ck_assert_uint_eq (m.h.block_size, sizes[si]);
        ck_assert (memcmp (m.h.volume_uuid, test_uuid, 16) == 0);
        ck_assert_uint_eq (m.h.seq, 42);
        ck_assert_uint_eq (m.h.parent_seq, 41);
        ck_assert_uint_eq (m.h.parent_crc, 0xdeadbeef);
        ck_assert_uint_eq (m.h.lease_epoch, 7);
        ck_assert_uint_eq (m.h.volume_size, (uint64_t) 1 << 30);
        ck_assert_uint_eq (m.h.timestamp_ns, 123456789);
        ck_assert_uint_eq (m.h.n_ext, h.n_ext);
        ck_assert_uint_eq (m.h.n_data, nd);
        ck_assert_uint_eq (m.h.n_nodes, nn);
        ck_assert_uint_eq (m.h.ext_off, HF_SH_SIZE);
        ck_assert_uint_eq (m.h.crc_off, h.crc_off);
        ck_assert_uint_eq (m.h.node_off, h.node_off);
        ck_assert_uint_eq (m.h.data_off, h.data_off);
        ck_assert_uint_eq (m.h.object_size, h.object_size);
        ck_assert_uint_eq (m.h.ckpt_seq, h.ckpt_seq);
        ck_assert_uint_eq (m.h.ckpt_root.np_seq, h.ckpt_root.np_seq);
        ck_assert_uint_eq (m.h.ckpt_root.np_off, h.ckpt_root.np_off);
        ck_assert_uint_eq (m.h.ckpt_root.np_crc, h.ckpt_root.np_crc);
        ck_assert_uint_eq (m.h.ckpt_level, h.ckpt_level);
        ck_assert_uint_eq (m.h.meta_crc, h.meta_crc);
        ck_assert_uint_eq (m.h.mapped, 999);
        ck_assert_uint_eq (m.h.hdr_crc, h.hdr_crc);
        for (i = 0; i < h.n_ext; i++) {
          ck_assert_uint_eq (m.ext[i].lba, ext[i].lba);
          ck_assert_uint_eq (m.ext[i].nblocks, ext[i].nblocks);
          ck_assert_uint_eq (m.ext[i].flags, ext[i].flags);
        }
        for (i = 0; i < nd; i++)
          ck_assert_uint_eq (m.crcs[i], crcs[i]);
        /* Header-only parse too, and the on-disk bytes are LE. */
        ck_assert_uint_eq (hf_le32 (o), HF_SH_MAGIC);
        ck_assert_uint_eq (hf_le64 (o + 32), 42);
        hf_seg_meta_free (&m);
        free (o);
        free (ext);
        free (crcs);
      }
  }
}
END_TEST

/* Flip each byte of the header and of the tables: always EBADMSG. */
START_TEST (test_damage)
{
  struct hf_seg_hdr h;
  struct hf_seg_ext *ext;
  uint32_t *crcs;
  uint8_t *o;
  struct hf_seg_meta m;
  uint8_t other[16];
  size_t i;

  hf_log_set_sink (log_quiet);
  build (4096, 10, 1, &o, &h, &ext, &crcs);
  for (i = 0; i < h.node_off; i++) {
    o[i] ^= 0x40;
    ck_assert_int_eq (hf_seg_parse (o, h.object_size, false, "k", test_uuid,
                                    4096, 42, &m), EBADMSG);
    o[i] ^= 0x40;
  }
  /* A data byte: only a whole-object parse sees it. */
  o[h.data_off + 5000] ^= 1;
  ck_assert_int_eq (hf_seg_parse (o, h.object_size, false, "k", test_uuid,
                                  4096, 42, &m), 0);
  hf_seg_meta_free (&m);
  ck_assert_int_eq (hf_seg_parse (o, h.object_size, true, "k", test_uuid,
                                  4096, 42, &m), EBADMSG);
  o[h.data_off + 5000] ^= 1;
  /* Truncated. */
  ck_assert_int_eq (hf_seg_parse (o, h.object_size - 1, true, "k",
                                  test_uuid, 4096, 42, &m), EBADMSG);
  ck_assert_int_eq (hf_seg_parse (o, h.node_off - 1, false, "k",
                                  test_uuid, 4096, 42, &m), EBADMSG);
  ck_assert_int_eq (hf_seg_parse (o, 100, false, "k", test_uuid, 4096, 42,
                                  &m), EBADMSG);
  /* Wrong uuid, block size, seq. */
  memcpy (other, test_uuid, 16);
  other[3] ^= 1;
  ck_assert_int_eq (hf_seg_parse (o, h.object_size, false, "k", other,
                                  4096, 42, &m), EBADMSG);
  ck_assert_int_eq (hf_seg_parse (o, h.object_size, false, "k", test_uuid,
                                  512, 42, &m), EBADMSG);
  ck_assert_int_eq (hf_seg_parse (o, h.object_size, false, "k", test_uuid,
                                  4096, 43, &m), EBADMSG);
  ck_assert_int_eq (hf_seg_parse (o, h.object_size, true, "k", test_uuid,
                                  4096, 42, &m), 0);
  hf_seg_meta_free (&m);
  free (o);
  free (ext);
  free (crcs);
  hf_log_set_sink (NULL);
}
END_TEST

/* Consistent but insane headers (CRC recomputed): still EBADMSG. */
START_TEST (test_insane)
{
  struct hf_seg_hdr h, h2;
  struct hf_seg_ext *ext;
  uint32_t *crcs;
  uint8_t *o;
  struct hf_seg_meta m;
  int k;

  hf_log_set_sink (log_quiet);
  build (4096, 6, 0, &o, &h, &ext, &crcs);
  for (k = 0; k < 8; k++) {
    h2 = h;
    switch (k) {
    case 0: h2.parent_seq = 42; break;
    case 1: h2.ckpt_seq = 43; break;
    case 2: h2.n_nodes = 1; break;     /* nodes without checkpoint */
    case 3: h2.volume_size = 12345; break;
    case 4: h2.block_size = 3000; break;
    case 5: h2.flags = 0x80; break;
    case 6: h2.seq = 0; break;
    case 7: ext[1].nblocks = 0; break;
    }
    hf_seg_write_meta (o, &h2, ext, crcs);
    if (k == 7)
      ext[1].nblocks = 3;
    ck_assert_int_eq (hf_seg_parse (o, h.object_size, false, "k", NULL, 0, 0,
                                    &m), EBADMSG);
  }
  free (o);
  free (ext);
  free (crcs);
  hf_log_set_sink (NULL);
}
END_TEST

/* A checkpoint root at node offset 0xffffffff is far outside the node
 * area; (np_off + 1) computed in 32 bits wrapped to 0 and let it
 * through (found by fuzz-segment; fuzz/corpus/segment/regress-root-wrap). */
START_TEST (test_root_offset_wrap)
{
  struct hf_seg_hdr h, h2;
  struct hf_seg_ext *ext;
  uint32_t *crcs;
  uint8_t *o;
  struct hf_seg_meta m;

  hf_log_set_sink (log_quiet);
  build (4096, 3, 2, &o, &h, &ext, &crcs);
  ck_assert_int_eq (hf_seg_parse (o, h.object_size, true, "k", NULL, 0, 0,
                                  &m), 0);
  hf_seg_meta_free (&m);
  h2 = h;
  h2.ckpt_root.np_off = UINT32_MAX;
  hf_seg_write_meta (o, &h2, ext, crcs);
  ck_assert_int_eq (hf_seg_parse_hdr (o, h.object_size, "k", NULL, 0, 0,
                                      &h2), EBADMSG);
  ck_assert_uint_eq (hf_seg_bad_offset (),
                     offsetof (struct hf_disk_seg_hdr, sh_ckpt_root));
  free (o);
  free (ext);
  free (crcs);
  hf_log_set_sink (NULL);
}
END_TEST

START_TEST (test_read_meta)
{
  char *dir = make_tmpdir (), key[64];
  struct hf_objstore *s;
  struct hf_seg_hdr h;
  struct hf_seg_ext *ext;
  uint32_t *crcs;
  uint8_t *o;
  struct hf_seg_meta *m = NULL;

  hf_log_set_sink (log_quiet);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  /* Tables bigger than the first GET: needs a second one. */
  build (4096, 20000, 0, &o, &h, &ext, &crcs);
  ck_assert_uint_gt (h.node_off, HF_SEG_META_READ);
  hf_seg_key (key, sizeof key, "p/", 42);
  ck_assert_int_eq (hf_objstore_put (s, key, o, h.object_size, 0), 0);
  ck_assert_int_eq (hf_seg_read_meta (s, "p/", 42, test_uuid, 4096,
                                      HF_SEG_SIZE_UNKNOWN, &m), 0);
  ck_assert_uint_eq (m->h.n_data, 20000);
  hf_seg_meta_destroy (m);
  ck_assert_int_eq (hf_seg_read_meta (s, "p/", 42, test_uuid, 4096,
                                      h.object_size, &m), 0);
  ck_assert_uint_eq (m->crcs[19999], crcs[19999]);
  hf_seg_meta_destroy (m);
  ck_assert_int_eq (hf_seg_read_meta (s, "p/", 43, test_uuid, 4096,
                                      HF_SEG_SIZE_UNKNOWN, &m), ENOENT);
  /* Cut in the data area (tables intact): an incomplete upload, by the
   * listed size or by a HEAD; longer than the header says: damage. */
  ck_assert_int_eq (hf_objstore_put (s, key, o, h.object_size - 4096, 0), 0);
  ck_assert_int_eq (hf_seg_read_meta (s, "p/", 42, test_uuid, 4096,
                                      h.object_size - 4096, &m), ENODATA);
  ck_assert_int_eq (hf_seg_read_meta (s, "p/", 42, test_uuid, 4096,
                                      HF_SEG_SIZE_UNKNOWN, &m), ENODATA);
  ck_assert_int_eq (hf_seg_read_meta (s, "p/", 42, test_uuid, 4096,
                                      h.object_size + 1, &m), EBADMSG);
  /* Shorter than a header: incomplete too. */
  ck_assert_int_eq (hf_objstore_put (s, key, o, 100, 0), 0);
  ck_assert_int_eq (hf_seg_read_meta (s, "p/", 42, test_uuid, 4096, 100, &m),
                    ENODATA);
  /* A damaged header is damage, whatever the length. */
  o[40] ^= 1;
  ck_assert_int_eq (hf_objstore_put (s, key, o, h.object_size, 0), 0);
  ck_assert_int_eq (hf_seg_read_meta (s, "p/", 42, test_uuid, 4096,
                                      h.object_size, &m), EBADMSG);
  o[40] ^= 1;
  /* Truncated object (shorter than the first GET). */
  free (o);
  free (ext);
  free (crcs);
  build (4096, 3, 0, &o, &h, &ext, &crcs);
  hf_seg_key (key, sizeof key, "p/", 42);
  ck_assert_int_eq (hf_objstore_put (s, key, o, h.object_size - 10, 0), 0);
  ck_assert_int_eq (hf_seg_read_meta (s, "p/", 42, test_uuid, 4096,
                                      h.object_size - 10, &m), ENODATA);
  free (o);
  free (ext);
  free (crcs);
  hf_objstore_close (s);
  rm_tmpdir (dir);
  hf_log_set_sink (NULL);
}
END_TEST

/* ---- Compressed segments (version 2, frames) ---- */

/* Build a compressed segment of n_data blocks of bs bytes: block i is
 * random when random_mask has bit i % 64 set, else compressible text.
 * *img is the image, *obj the stored object (h->object_size bytes),
 * *fr the frame table; caller frees all four. */
static void
build_z (uint32_t bs, uint32_t n_data, uint32_t n_nodes, uint64_t random_mask,
         uint8_t **img, uint8_t **obj, struct hf_seg_hdr *h,
         struct hf_seg_frame **fr_out, uint32_t **crcs_out)
{
  struct hf_seg_ext ext[2] = { { 1000, 5, HF_EXT_ZERO },
                               { 0, n_data, HF_EXT_DATA } };
  uint32_t *crcs = calloc (n_data + 1, sizeof *crcs);
  struct hf_seg_frame *fr;
  uint8_t *o, *u;
  uint64_t image;
  uint32_t i, j;

  ck_assert (crcs != NULL);
  memset (h, 0, sizeof *h);
  h->flags = n_nodes ? HF_SH_CHECKPOINT : 0;
  h->block_size = bs;
  memcpy (h->volume_uuid, test_uuid, 16);
  h->seq = 42;
  h->parent_seq = 41;
  h->volume_size = (uint64_t) 1 << 30;
  h->n_ext = n_data ? 2 : 1;
  h->n_data = n_data;
  h->n_nodes = n_nodes;
  h->ckpt_seq = n_nodes ? 42 : 40;
  h->codec = HF_SH_CODEC_ZSTD;
  h->frame_blocks = hf_seg_frame_blocks_for (bs, 16384);
  ck_assert_int_eq (hf_seg_layout (h), 0);
  ck_assert_uint_eq (h->n_frames, (n_data + h->frame_blocks - 1) /
                     h->frame_blocks);
  ck_assert_uint_eq (h->frame_off, h->crc_off + 4 * (uint64_t) n_data);
  ck_assert_uint_ge (h->node_off, h->frame_off + 16 * (uint64_t) h->n_frames);
  image = h->object_size;
  ck_assert_uint_eq (hf_seg_image_size (h), image);
  o = calloc (1, image);
  u = calloc (1, image);
  fr = calloc (h->n_frames + 1, sizeof *fr);
  ck_assert (o && u && fr);
  for (i = 0; i < n_nodes; i++)
    memset (o + h->node_off + (size_t) i * HF_NODE_SIZE, 0xa0 + i,
            HF_NODE_SIZE);
  for (i = 0; i < n_data; i++) {
    uint8_t *b = o + h->data_off + (size_t) i * bs;
    if (random_mask >> (i % 64) & 1)
      fill_rnd (b, bs);
    else
      for (j = 0; j < bs; j += 16)
        snprintf ((char *) b + j, 16, "blk %6u %3u", i % 100000, j % 1000);
    crcs[i] = hf_crc32c (0, b, bs);
  }
  ck_assert_int_eq (hf_seg_compress (o + h->data_off, h, 1, u + h->data_off,
                                     fr), 0);
  ck_assert_uint_le (h->object_size, image);
  hf_seg_write_meta_frames (o, h, ext, crcs, fr);
  /* Every frame raw: the image is the stored object (hf_seg_compress
   * left u's data area alone). */
  memcpy (u, o, h->object_size == image ? image : h->data_off);
  *img = o;
  *obj = u;
  *fr_out = fr;
  *crcs_out = crcs;
}

/* Frames round trip: every size and mix parses whole, each frame
 * decodes to the image's blocks, text frames shrink, random ones are
 * raw, and the header and tables are the image's. */
START_TEST (test_frames_round_trip)
{
  static const uint32_t sizes[] = { 512, 4096, 65536 };
  static const uint32_t counts[] = { 0, 1, 4, 5, 13, 64 };
  size_t si, ci;

  for (si = 0; si < 3; si++)
    for (ci = 0; ci < 6; ci++) {
      uint32_t bs = sizes[si], nd = counts[ci], i;
      struct hf_seg_hdr h;
      struct hf_seg_frame *fr;
      struct hf_seg_meta m;
      uint32_t *crcs;
      uint8_t *img, *obj, *tmp;
      bool any_raw = false, any_z = false;

      build_z (bs, nd, ci & 1, 0x00f0f0f0f0f0f0f0ull, &img, &obj, &h, &fr,
               &crcs);
      ck_assert_int_eq (hf_seg_parse (obj, h.object_size, true, "k",
                                      test_uuid, bs, 42, &m), 0);
      ck_assert_uint_eq (m.h.codec, HF_SH_CODEC_ZSTD);
      ck_assert_uint_eq (m.h.n_frames, h.n_frames);
      ck_assert_uint_eq (m.h.hdr_crc, h.hdr_crc);
      ck_assert_int_eq (memcmp (obj, img, h.data_off), 0);
      tmp = malloc ((size_t) h.frame_blocks * bs);
      for (i = 0; i < m.h.n_frames; i++) {
        uint32_t nb = hf_seg_frame_nblocks (&m.h, i);
        ck_assert_uint_eq (m.frames[i].off, fr[i].off);
        ck_assert_uint_eq (m.frames[i].len, fr[i].len);
        ck_assert_int_eq (hf_seg_frame_decode (&m.h, i, &m.frames[i],
                                               obj + m.frames[i].off, "k",
                                               tmp), 0);
        ck_assert_int_eq (memcmp (tmp, img + h.data_off +
                                  (size_t) i * h.frame_blocks * bs,
                                  (size_t) nb * bs), 0);
        if (m.frames[i].flags & HF_FR_RAW)
          any_raw = true;
        else
          any_z = true;
      }
      /* 64 KiB blocks: 1 block per frame, block i random when bit i. */
      if (nd >= 13) {
        ck_assert (any_z);
        ck_assert (bs == 512 || any_raw);
      }
      if (nd && !any_raw)
        ck_assert_uint_lt (h.object_size, hf_seg_image_size (&h));
      free (tmp);
      hf_seg_meta_free (&m);
      free (img);
      free (obj);
      free (fr);
      free (crcs);
    }
}
END_TEST

/* Incompressible data is stored raw: no frame grows, the object is the
 * image's size exactly, and a v1 reader's layout rules still hold. */
START_TEST (test_frames_raw_fallback)
{
  struct hf_seg_hdr h;
  struct hf_seg_frame *fr;
  struct hf_seg_meta m;
  uint32_t *crcs, i;
  uint8_t *img, *obj;

  build_z (4096, 17, 0, ~(uint64_t) 0, &img, &obj, &h, &fr, &crcs);
  ck_assert_uint_eq (h.object_size, hf_seg_image_size (&h));
  for (i = 0; i < h.n_frames; i++) {
    ck_assert_uint_eq (fr[i].flags, HF_FR_RAW);
    ck_assert_uint_eq (fr[i].len, hf_seg_frame_nblocks (&h, i) * 4096);
  }
  ck_assert_int_eq (memcmp (obj + h.data_off, img + h.data_off,
                            17 * 4096), 0);
  ck_assert_int_eq (hf_seg_parse (obj, h.object_size, true, "k", test_uuid,
                                  4096, 42, &m), 0);
  hf_seg_meta_free (&m);
  free (img);
  free (obj);
  free (fr);
  free (crcs);
}
END_TEST

/* Calls of zstd's compressor, counted for the early abort's tests
 * (-Wl,--wrap=ZSTD_compressCCtx). */
static unsigned zstd_calls;

size_t __real_ZSTD_compressCCtx (ZSTD_CCtx *cc, void *dst, size_t cap,
                                 const void *src, size_t len, int level);
size_t __wrap_ZSTD_compressCCtx (ZSTD_CCtx *cc, void *dst, size_t cap,
                                 const void *src, size_t len, int level);

size_t
__wrap_ZSTD_compressCCtx (ZSTD_CCtx *cc, void *dst, size_t cap,
                          const void *src, size_t len, int level)
{
  zstd_calls++;
  return __real_ZSTD_compressCCtx (cc, dst, cap, src, len, level);
}

static void
fill_text (uint8_t *p, size_t len)
{
  static const char words[] = "the quick brown fox jumps over a lazy "
    "dog while segment frames compress ";
  size_t i;

  for (i = 0; i < len; i++)
    p[i] = (uint8_t) words[(i * 7 + i / 64) % (sizeof words - 1)];
}

/* Compress one 16 KiB frame (4 blocks of 4 KiB) as a segment's data
 * area: its table entry in *fr, the zstd calls it took returned. */
static unsigned
compress_frame (const uint8_t *frame, struct hf_seg_frame *fr)
{
  struct hf_seg_hdr h;
  uint8_t *dst = malloc (16384), *back = malloc (16384);
  unsigned before = zstd_calls;

  ck_assert (dst && back);
  memset (&h, 0, sizeof h);
  h.codec = HF_SH_CODEC_ZSTD;
  h.block_size = 4096;
  h.n_data = 4;
  h.frame_blocks = 4;
  h.n_frames = 1;
  h.data_off = 0;
  ck_assert_int_eq (hf_seg_compress (frame, &h, 1, dst, fr), 0);
  ck_assert_uint_eq (h.object_size, fr->len);
  /* Whatever was chosen decodes to the frame. */
  ck_assert_int_eq (hf_seg_frame_decode (&h, 0, fr, fr->flags & HF_FR_RAW ?
                                         frame : dst, "k", back), 0);
  ck_assert_int_eq (memcmp (back, frame, 16384), 0);
  free (dst);
  free (back);
  return zstd_calls - before;
}

/* The early abort: random frames are stored raw without zstd being
 * called; text, sparse noise in zeros, half-random frames either way
 * round and a block written twice are compressed. */
START_TEST (test_frames_early_abort)
{
  uint8_t *f = malloc (16384);
  struct hf_seg_frame fr;
  unsigned i;

  ck_assert (f != NULL);
  /* Random: 200 frames, never tried (their samples measure 7.87-7.94
   * bits per byte against 7.8). */
  for (i = 0; i < 200; i++) {
    fill_rnd (f, 16384);
    ck_assert (!hf_seg_frame_worth (f, 16384));
    ck_assert_uint_eq (compress_frame (f, &fr), 0);
    ck_assert_uint_eq (fr.flags, HF_FR_RAW);
    ck_assert_uint_eq (fr.len, 16384);
  }
  /* Text. */
  fill_text (f, 16384);
  ck_assert_uint_eq (compress_frame (f, &fr), 1);
  ck_assert_uint_eq (fr.flags, 0);
  ck_assert_uint_lt (fr.len, 16384 / 8);
  /* Zeros with noise: one random byte in 32. */
  memset (f, 0, 16384);
  for (i = 0; i < 16384; i += 32)
    f[i + rndn (32)] = (uint8_t) (rnd () | 1);
  ck_assert_uint_eq (compress_frame (f, &fr), 1);
  ck_assert_uint_eq (fr.flags, 0);
  ck_assert_uint_lt (fr.len, 16384 / 4);
  /* First half random, second half text; then the other way round: the
   * sample spans the frame, so half of it is text (about 5 bits per
   * byte), and zstd stores a little over half. */
  fill_rnd (f, 8192);
  fill_text (f + 8192, 8192);
  ck_assert_uint_eq (compress_frame (f, &fr), 1);
  ck_assert_uint_eq (fr.flags, 0);
  ck_assert_uint_lt (fr.len, 16384 * 6 / 10);
  fill_text (f, 8192);
  fill_rnd (f + 8192, 8192);
  ck_assert_uint_eq (compress_frame (f, &fr), 1);
  ck_assert_uint_lt (fr.len, 16384 * 6 / 10);
  /* Random with one block of zeros (fio's buffer_compress_percentage
   * of 25, or a file's zero-padded tail): compressed. */
  fill_rnd (f, 12288);
  memset (f + 12288, 0, 4096);
  ck_assert_uint_eq (compress_frame (f, &fr), 1);
  ck_assert_uint_lt (fr.len, 16384 * 8 / 10);
  /* Random with 2 KiB of zeros (7.43 bits): zstd saves 12%. */
  fill_rnd (f, 14336);
  memset (f + 14336, 0, 2048);
  ck_assert_uint_eq (compress_frame (f, &fr), 1);
  ck_assert_uint_eq (fr.flags, 0);
  /* The same random 8 KiB twice: as random per byte as the rest, but
   * the sample's halves match. */
  fill_rnd (f, 8192);
  memcpy (f + 8192, f, 8192);
  ck_assert_uint_eq (compress_frame (f, &fr), 1);
  ck_assert_uint_lt (fr.len, 16384 * 6 / 10);
  /* What is given up: random with 512 zero bytes at the end (zstd
   * would save 2.3%) is stored raw untried. */
  fill_rnd (f, 16384 - 512);
  memset (f + 16384 - 512, 0, 512);
  ck_assert (!hf_seg_frame_worth (f, 16384));
  /* Frames too small to sample (under 64 bytes) are always tried. */
  fill_rnd (f, 48);
  ck_assert (hf_seg_frame_worth (f, 48));
  free (f);
}
END_TEST

/* Raw frames in front of compressed ones: the stored object gets the
 * raw head copied in once the first frame shrinks, and parses and
 * decodes whole; all raw, the image is the object and zstd was never
 * called. */
START_TEST (test_frames_raw_head)
{
  struct hf_seg_hdr h;
  struct hf_seg_frame *fr;
  struct hf_seg_meta m;
  uint32_t *crcs, i;
  uint8_t *img, *obj, *tmp = malloc (16384);
  unsigned before;

  ck_assert (tmp != NULL);
  /* Blocks 0-7 random (frames 0 and 1), then text; 13 blocks. */
  before = zstd_calls;
  build_z (4096, 13, 0, 0xff, &img, &obj, &h, &fr, &crcs);
  ck_assert_uint_eq (zstd_calls - before, 2);
  ck_assert_uint_eq (fr[0].flags, HF_FR_RAW);
  ck_assert_uint_eq (fr[1].flags, HF_FR_RAW);
  ck_assert_uint_eq (fr[2].flags, 0);
  ck_assert_uint_eq (fr[3].flags, 0);
  ck_assert_uint_lt (h.object_size, hf_seg_image_size (&h));
  ck_assert_int_eq (hf_seg_parse (obj, h.object_size, true, "k", test_uuid,
                                  4096, 42, &m), 0);
  for (i = 0; i < m.h.n_frames; i++) {
    ck_assert_int_eq (hf_seg_frame_decode (&m.h, i, &m.frames[i],
                                           obj + m.frames[i].off, "k", tmp),
                      0);
    ck_assert_int_eq (memcmp (tmp, img + h.data_off + (size_t) i * 16384,
                              (size_t) hf_seg_frame_nblocks (&m.h, i) * 4096),
                      0);
  }
  hf_seg_meta_free (&m);
  free (img);
  free (obj);
  free (fr);
  free (crcs);

  before = zstd_calls;
  build_z (4096, 17, 0, ~(uint64_t) 0, &img, &obj, &h, &fr, &crcs);
  ck_assert_uint_eq (zstd_calls - before, 0);
  ck_assert_uint_eq (h.object_size, hf_seg_image_size (&h));
  free (img);
  free (obj);
  free (fr);
  free (crcs);
  free (tmp);
}
END_TEST

/* A flipped byte anywhere in a frame (compressed or raw) fails its CRC:
 * EBADMSG naming the frame's offset, never bytes. */
START_TEST (test_frames_corrupt)
{
  struct hf_seg_hdr h;
  struct hf_seg_frame *fr;
  struct hf_seg_meta m;
  uint32_t *crcs, i;
  uint8_t *img, *obj, *tmp;

  hf_log_set_sink (log_capture);
  build_z (4096, 16, 0, 0xf0, &img, &obj, &h, &fr, &crcs);
  tmp = malloc (16384);
  for (i = 0; i < h.n_frames; i++) {
    uint64_t at = fr[i].off + fr[i].len / 2;
    obj[at] ^= 0x20;
    ck_assert_int_eq (hf_seg_parse (obj, h.object_size, true, "seg/x",
                                    test_uuid, 4096, 42, &m), EBADMSG);
    ck_assert_uint_eq (hf_seg_bad_offset (), fr[i].off);
    ck_assert_ptr_nonnull (strstr (last_error, "seg/x"));
    ck_assert_ptr_nonnull (strstr (last_error, "frame"));
    memset (tmp, 0x5a, 16384);
    ck_assert_int_eq (hf_seg_frame_decode (&h, i, &fr[i], obj + fr[i].off,
                                           "seg/x", tmp), EBADMSG);
    obj[at] ^= 0x20;
  }
  /* Both kinds were hit. */
  ck_assert_uint_eq (fr[1].flags, HF_FR_RAW);
  ck_assert_uint_eq (fr[0].flags, 0);
  /* Not whole: the tables alone still parse (frames are read later). */
  obj[fr[0].off] ^= 1;
  ck_assert_int_eq (hf_seg_parse (obj, h.object_size, false, "seg/x",
                                  test_uuid, 4096, 42, &m), 0);
  hf_seg_meta_free (&m);
  free (tmp);
  free (img);
  free (obj);
  free (fr);
  free (crcs);
  hf_log_set_sink (NULL);
}
END_TEST

/* Make the header CRC of segment obj right again after a change. */
static void
reseal_hdr (uint8_t *obj)
{
  hf_put_le32 (obj + offsetof (struct hf_disk_seg_hdr, sh_hdr_crc),
               hf_crc32c (0, obj, offsetof (struct hf_disk_seg_hdr,
                                            sh_hdr_crc)));
}

/* Rewrite the frame table entry i of obj (and the CRCs), as damage
 * that CRCs do not catch would look. */
static void
set_frame (uint8_t *obj, struct hf_seg_hdr *h, uint32_t i, uint32_t len,
           uint16_t flags)
{
  uint8_t *p = obj + h->frame_off + (uint64_t) i * HF_FR_SIZE;
  uint32_t crc;

  hf_put_le32 (p, len);
  hf_put_le16 (p + 8, flags);
  crc = hf_crc32c (0, obj + h->ext_off, h->node_off - h->ext_off);
  hf_put_le32 (obj + offsetof (struct hf_disk_seg_hdr, sh_meta_crc), crc);
  reseal_hdr (obj);
}

/* A copy of segment obj (size bytes) whose header field at off (width
 * 2 or 4 bytes) says val, its header CRC right: a header that does not
 * add up, which hf_seg_parse must refuse with EBADMSG. */
static void
expect_bad_hdr (const uint8_t *obj, size_t size, size_t off,
                unsigned width, uint32_t val)
{
  struct hf_seg_meta m;
  uint8_t *o2 = malloc (size);

  ck_assert_ptr_nonnull (o2);
  memcpy (o2, obj, size);
  if (width == 2)
    hf_put_le16 (o2 + off, (uint16_t) val);
  else
    hf_put_le32 (o2 + off, val);
  reseal_hdr (o2);
  ck_assert_int_eq (hf_seg_parse (o2, size, false, "k", test_uuid, 4096, 42,
                                  &m), EBADMSG);
  free (o2);
}

/* Hostile tables and frames with valid CRCs: refused at parse, or at
 * decode without writing a byte past the frame's size. */
START_TEST (test_frames_hostile)
{
  struct hf_seg_hdr h;
  struct hf_seg_frame *fr, f;
  struct hf_seg_meta m;
  uint32_t *crcs;
  uint8_t *img, *obj, *tmp, *big, *z;
  size_t zn, zcap;

  hf_log_set_sink (log_capture);
  build_z (4096, 8, 0, 0, &img, &obj, &h, &fr, &crcs);
  ck_assert_uint_eq (h.n_frames, 2);
  ck_assert_uint_eq (fr[0].flags, 0);
  /* Table entries: zero length, longer than the frame, raw but short,
   * compressed but full size, unknown flag, not ending at the object's
   * end. */
  set_frame (obj, &h, 0, 0, 0);
  ck_assert_int_eq (hf_seg_parse (obj, h.object_size, false, "k", test_uuid,
                                  4096, 42, &m), EBADMSG);
  set_frame (obj, &h, 0, 16385, 0);
  ck_assert_int_eq (hf_seg_parse (obj, h.object_size, false, "k", test_uuid,
                                  4096, 42, &m), EBADMSG);
  set_frame (obj, &h, 0, fr[0].len, HF_FR_RAW);
  ck_assert_int_eq (hf_seg_parse (obj, h.object_size, false, "k", test_uuid,
                                  4096, 42, &m), EBADMSG);
  set_frame (obj, &h, 0, 16384, 0);
  ck_assert_int_eq (hf_seg_parse (obj, h.object_size, false, "k", test_uuid,
                                  4096, 42, &m), EBADMSG);
  set_frame (obj, &h, 0, fr[0].len, 0x4);
  ck_assert_int_eq (hf_seg_parse (obj, h.object_size, false, "k", test_uuid,
                                  4096, 42, &m), EBADMSG);
  set_frame (obj, &h, 0, fr[0].len - 1, 0);
  ck_assert_int_eq (hf_seg_parse (obj, h.object_size, false, "k", test_uuid,
                                  4096, 42, &m), EBADMSG);
  ck_assert_ptr_nonnull (strstr (last_error, "frames end at"));
  set_frame (obj, &h, 0, fr[0].len, 0);
  ck_assert_int_eq (hf_seg_parse (obj, h.object_size, true, "k", test_uuid,
                                  4096, 42, &m), 0);
  hf_seg_meta_free (&m);

  /* Header: frame geometry that does not add up: 4 MiB frames (too
   * big), an unknown codec, a frame count that is not the table's. */
  expect_bad_hdr (obj, h.object_size,
                  offsetof (struct hf_disk_seg_hdr, sh_frame_blocks), 4,
                  1024);
  ck_assert_uint_eq (hf_seg_bad_offset (),
                     offsetof (struct hf_disk_seg_hdr, sh_frame_blocks));
  expect_bad_hdr (obj, h.object_size,
                  offsetof (struct hf_disk_seg_hdr, sh_codec), 4, 9);
  expect_bad_hdr (obj, h.object_size,
                  offsetof (struct hf_disk_seg_hdr, sh_n_frames), 4, 3);
  /* Version 1 with frames: the codec fields are not read, and its
   * size does not fit blocks stored as they are. */
  expect_bad_hdr (obj, h.object_size,
                  offsetof (struct hf_disk_seg_hdr, sh_version), 2, 1);

  /* Frames whose CRC is right but whose content is not: a zstd frame
   * of 1 MiB where 16 KiB belong, one with no content size, and
   * garbage.  The output buffer has a guard after the frame's size. */
  tmp = malloc (16384 + 4096);
  big = calloc (1, 1 << 20);
  zcap = ZSTD_compressBound (1 << 20);
  z = malloc (zcap);
  ck_assert (tmp && big && z);
  zn = ZSTD_compress (z, zcap, big, 1 << 20, 1);
  ck_assert (!ZSTD_isError (zn));
  f = (struct hf_seg_frame) { .off = 4096, .len = (uint32_t) zn,
                              .crc = hf_crc32c (0, z, zn), .flags = 0 };
  memset (tmp, 0x77, 16384 + 4096);
  ck_assert_int_eq (hf_seg_frame_decode (&h, 0, &f, z, "seg/h", tmp),
                    EBADMSG);
  ck_assert_ptr_nonnull (strstr (last_error, "seg/h"));
  ck_assert_ptr_nonnull (strstr (last_error, "4096"));
  {
    size_t k;
    for (k = 16384; k < 16384 + 4096; k++)
      ck_assert_uint_eq (tmp[k], 0x77);
  }
  /* No content size in the frame header (streaming): refused. */
  {
    ZSTD_CCtx *cc = ZSTD_createCCtx ();
    ck_assert (!ZSTD_isError (ZSTD_CCtx_setParameter
                              (cc, ZSTD_c_contentSizeFlag, 0)));
    zn = ZSTD_compress2 (cc, z, zcap, big, 16384);
    ck_assert (!ZSTD_isError (zn));
    ck_assert_uint_eq (ZSTD_getFrameContentSize (z, zn),
                       ZSTD_CONTENTSIZE_UNKNOWN);
    ZSTD_freeCCtx (cc);
    f.len = (uint32_t) zn;
    f.crc = hf_crc32c (0, z, zn);
    ck_assert_int_eq (hf_seg_frame_decode (&h, 0, &f, z, "seg/h", tmp),
                      EBADMSG);
  }
  /* Garbage with a right CRC. */
  memset (z, 0xab, 100);
  f.len = 100;
  f.crc = hf_crc32c (0, z, 100);
  ck_assert_int_eq (hf_seg_frame_decode (&h, 0, &f, z, "seg/h", tmp),
                    EBADMSG);
  /* An 8 KiB frame in a 16 KiB slot. */
  zn = ZSTD_compress (z, zcap, big, 8192, 1);
  f.len = (uint32_t) zn;
  f.crc = hf_crc32c (0, z, zn);
  ck_assert_int_eq (hf_seg_frame_decode (&h, 0, &f, z, "seg/h", tmp),
                    EBADMSG);
  free (z);
  free (big);
  free (tmp);
  free (img);
  free (obj);
  free (fr);
  free (crcs);
  hf_log_set_sink (NULL);
}
END_TEST

/* hf_seg_read_meta reads a compressed segment's frame table, and the
 * listed size is the stored (compressed) size. */
START_TEST (test_frames_read_meta)
{
  char *dir = make_tmpdir (), key[64];
  struct hf_objstore *s;
  struct hf_seg_hdr h;
  struct hf_seg_frame *fr;
  struct hf_seg_meta *m = NULL;
  uint32_t *crcs, i;
  uint8_t *img, *obj;

  hf_log_set_sink (log_quiet);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  /* Tables past the first GET (second GET), a node. */
  build_z (4096, 12000, 1, 0x1, &img, &obj, &h, &fr, &crcs);
  ck_assert_uint_gt (h.node_off, HF_SEG_META_READ);
  hf_seg_key (key, sizeof key, "p/", 42);
  ck_assert_int_eq (hf_objstore_put (s, key, obj, h.object_size, 0), 0);
  ck_assert_int_eq (hf_seg_read_meta (s, "p/", 42, test_uuid, 4096,
                                      HF_SEG_SIZE_UNKNOWN, &m), 0);
  ck_assert_uint_eq (m->h.n_frames, 3000);
  for (i = 0; i < 3000; i++)
    ck_assert_uint_eq (m->frames[i].off, fr[i].off);
  hf_seg_meta_destroy (m);
  ck_assert_int_eq (hf_seg_read_meta (s, "p/", 42, test_uuid, 4096,
                                      HF_SEG_SIZE_ANY, &m), 0);
  hf_seg_meta_destroy (m);
  /* The image's size is not the object's: an interrupted upload of the
   * stored object is still told apart. */
  ck_assert_int_eq (hf_seg_read_meta (s, "p/", 42, test_uuid, 4096,
                                      h.object_size - 1, &m), ENODATA);
  ck_assert_int_eq (hf_seg_read_meta (s, "p/", 42, test_uuid, 4096,
                                      hf_seg_image_size (&h), &m), EBADMSG);
  ck_assert (hf_seg_incomplete (obj, h.object_size - 1));
  ck_assert (!hf_seg_incomplete (obj, h.object_size));
  free (img);
  free (obj);
  free (fr);
  free (crcs);
  hf_objstore_close (s);
  rm_tmpdir (dir);
  hf_log_set_sink (NULL);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("segment");
  TCase *tc = tcase_create ("core");

  tcase_add_test (tc, test_keys);
  tcase_add_test (tc, test_round_trip);
  tcase_add_test (tc, test_damage);
  tcase_add_test (tc, test_insane);
  tcase_add_test (tc, test_root_offset_wrap);
  tcase_add_test (tc, test_read_meta);
  tcase_add_test (tc, test_frames_round_trip);
  tcase_add_test (tc, test_frames_raw_fallback);
  tcase_add_test (tc, test_frames_early_abort);
  tcase_add_test (tc, test_frames_raw_head);
  tcase_add_test (tc, test_frames_corrupt);
  tcase_add_test (tc, test_frames_hostile);
  tcase_add_test (tc, test_frames_read_meta);
  suite_add_tcase (s, tc);
  return run_suite (s);
}
