/* hyperfile: libFuzzer harness for segment headers and tables
 * (hf_seg_parse_hdr, hf_seg_parse, hf_seg_key_parse: lib/segment.c).
 *
 * Input: a mode byte, then the head (or, with mode bit 1, the whole) of
 * a segment object.  Mode bit 0: recompute sh_meta_crc and sh_hdr_crc
 * first (fuzz.h).  On success the decoded header and tables must keep
 * every promise segment.h makes: the areas in order and inside the
 * object, the extents inside the volume, the data extents covering
 * exactly sh_n_data blocks, a checkpoint root inside the node area;
 * for a compressed segment, frames that tile the data area.  Then each
 * frame the input holds is decoded (hf_seg_frame_decode) into a buffer
 * of exactly its size (ASan sees any write past it); mode bit 2 sets
 * each fr_crc to the stored bytes' CRC first, so that mutations reach
 * the zstd decoder. */
#include <config.h>

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "format.h"
#include "segment.h"
#include "fuzz.h"

#define SH(f) offsetof (struct hf_disk_seg_hdr, f)

static void
fix_crcs (uint8_t *o, size_t len)
{
  uint64_t ext_off, node_off;

  if (len < HF_SH_SIZE)
    return;
  ext_off = hf_le32 (o + SH (sh_ext_off));
  node_off = hf_le64 (o + SH (sh_node_off));
  if (ext_off <= node_off && node_off <= len)
    hf_put_le32 (o + SH (sh_meta_crc),
                 hf_crc32c (0, o + ext_off, node_off - ext_off));
  hf_put_le32 (o + SH (sh_hdr_crc), hf_crc32c (0, o, SH (sh_hdr_crc)));
}

static void
check_hdr (const struct hf_seg_hdr *h, size_t len, bool whole)
{
  uint64_t nodes_end = h->node_off + (uint64_t) h->n_nodes * HF_NODE_SIZE;

  FUZZ_CHECK (h->seq >= 1 && h->parent_seq < h->seq);
  FUZZ_CHECK (h->ckpt_seq <= h->seq);
  FUZZ_CHECK (h->block_size >= HF_MIN_BLOCK_SIZE &&
              h->block_size <= HF_MAX_BLOCK_SIZE &&
              (h->block_size & (h->block_size - 1)) == 0);
  FUZZ_CHECK (h->ext_off == HF_SH_SIZE);
  FUZZ_CHECK (h->crc_off == h->ext_off + (uint64_t) h->n_ext * HF_EXT_SIZE);
  FUZZ_CHECK (h->node_off >= h->crc_off + (uint64_t) h->n_data * 4 +
              (uint64_t) h->n_frames * HF_FR_SIZE);
  FUZZ_CHECK (h->data_off >= nodes_end);
  if (h->codec == 0)
    FUZZ_CHECK (h->object_size ==
                h->data_off + (uint64_t) h->n_data * h->block_size);
  else {
    FUZZ_CHECK (h->codec == HF_SH_CODEC_ZSTD);
    FUZZ_CHECK (h->frame_blocks >= 1 && (uint64_t) h->frame_blocks *
                h->block_size <= HF_SEG_FRAME_MAX);
    FUZZ_CHECK (h->n_frames == ((uint64_t) h->n_data + h->frame_blocks - 1)
                / h->frame_blocks);
    FUZZ_CHECK (h->object_size >= h->data_off + h->n_frames &&
                h->object_size <= hf_seg_image_size (h));
  }
  FUZZ_CHECK (h->object_size <= HF_SEG_MAX_OBJECT +
              (uint64_t) UINT32_MAX * HF_MAX_BLOCK_SIZE);
  if (whole)
    FUZZ_CHECK (len == h->object_size);
  if ((h->flags & HF_SH_CHECKPOINT) && h->ckpt_root.np_seq == h->seq) {
    uint64_t at = (uint64_t) h->ckpt_root.np_off * HF_NODE_SIZE;

    FUZZ_CHECK (at >= h->node_off && at + HF_NODE_SIZE <= nodes_end);
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct hf_seg_hdr h;
  struct hf_seg_meta m;
  uint8_t mode;
  uint8_t *o;
  uint64_t seq;
  char name[32];

  fuzz_quiet ();
  if (size < 1)
    return 0;
  mode = data[0];
  data++;
  size--;

  /* The key parser sees the first bytes as a name. */
  snprintf (name, sizeof name, "%.*s", (int) (size < 20 ? size : 20),
            (const char *) data);
  if (hf_seg_key_parse (name, &seq) == 0) {
    char key[64];

    FUZZ_CHECK (seq >= 1);
    hf_seg_key (key, sizeof key, "", seq);
    FUZZ_CHECK (strcmp (key + 4, name) == 0);
  }

  o = malloc (size ? size : 1);
  if (o == NULL)
    return 0;
  memcpy (o, data, size);
  if (mode & 1)
    fix_crcs (o, size);

  if (hf_seg_parse_hdr (o, size, "seg/fuzz", NULL, 0, 0, &h) == 0)
    check_hdr (&h, size, false);
  if (hf_seg_parse (o, size, mode & 2, "seg/fuzz", NULL, 0, 0, &m) == 0) {
    uint64_t max_lba = m.h.volume_size / m.h.block_size, ndata = 0;
    uint32_t i;

    check_hdr (&m.h, size, mode & 2);
    FUZZ_CHECK (size >= m.h.node_off);
    for (i = 0; i < m.h.n_ext; i++) {
      FUZZ_CHECK (m.ext[i].flags == HF_EXT_DATA ||
                  m.ext[i].flags == HF_EXT_ZERO);
      FUZZ_CHECK (m.ext[i].nblocks >= 1 && m.ext[i].lba < max_lba &&
                  m.ext[i].nblocks <= max_lba - m.ext[i].lba);
      if (m.ext[i].flags == HF_EXT_DATA)
        ndata += m.ext[i].nblocks;
    }
    FUZZ_CHECK (ndata == m.h.n_data);
    if (m.h.n_data)
      FUZZ_CHECK (m.crcs[m.h.n_data - 1] ==
                  hf_le32 (o + m.h.crc_off + (m.h.n_data - 1) * 4ull));
    if (m.h.codec) {
      uint64_t pos = m.h.data_off;

      for (i = 0; i < m.h.n_frames; i++) {
        size_t want = (size_t) hf_seg_frame_nblocks (&m.h, i) *
          m.h.block_size;
        struct hf_seg_frame f = m.frames[i];
        uint8_t *out;

        FUZZ_CHECK (f.off == pos && f.len >= 1 && f.len <= want);
        FUZZ_CHECK (((f.flags & HF_FR_RAW) != 0) == (f.len == want));
        pos += f.len;
        if (f.off + f.len > size)
          continue;
        if (mode & 4)
          f.crc = hf_crc32c (0, o + f.off, f.len);
        out = malloc (want);
        if (out == NULL)
          continue;
        (void) hf_seg_frame_decode (&m.h, i, &f, o + f.off, "seg/fuzz", out);
        free (out);
      }
      FUZZ_CHECK (pos == m.h.object_size);
    }
    hf_seg_meta_free (&m);
  }
  free (o);
  return 0;
}
