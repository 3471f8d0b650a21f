/* Unit tests for lib/segment: build/parse round trips of every header
 * field and table, keys, and each kind of damage (header byte, table
 * byte, data byte, truncation, wrong uuid / block size / seq) giving
 * EBADMSG.  Reading through a store uses the dir store. */
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
  suite_add_tcase (s, tc);
  return run_suite (s);
}
