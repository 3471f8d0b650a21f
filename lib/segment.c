/* hyperfile: segment objects: layout, encoding, decoding and
 * verification (see segment.h; the format itself is in format.h).
 *
 * Encoding writes every field with hf_put_le*() at its offsetof () in
 * struct hf_disk_seg_hdr, so host byte order never matters.  Decoding
 * checks, in order: object long enough for a header, magic, version,
 * header size, header CRC, then each size and offset against the others
 * and against the object size, the expected uuid / block size / seq, the
 * meta CRC, and finally each extent.  The first failure is logged with
 * the object key and the byte offset of the field, and is EBADMSG.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "crc32c.h"
#include "format.h"
#include "log.h"
#include "segment.h"

#include <zstd.h>
#include <zstd_errors.h>

#define SH(field) offsetof (struct hf_disk_seg_hdr, field)

void
hf_seg_key (char *out, size_t outlen, const char *prefix, uint64_t seq)
{
  snprintf (out, outlen, "%sseg/%016" PRIx64, prefix, ~seq);
}

void
hf_seg_key_vd (char *out, size_t outlen, const char *prefix,
               uint32_t vd_flags, uint64_t seq)
{
  if (vd_flags & HF_VD_SEG_GROUPS)
    snprintf (out, outlen, "%sseg/%016" PRIx64 "/%016" PRIx64, prefix,
              ~(seq >> HF_SEG_GROUP_SHIFT), ~seq);
  else
    hf_seg_key (out, outlen, prefix, seq);
}

void
hf_seg_group_dir (char *out, size_t outlen, const char *prefix,
                  uint64_t group)
{
  snprintf (out, outlen, "%sseg/%016" PRIx64 "/", prefix, ~group);
}

/* 16 lowercase hex digits at p. */
static int
hf_seg_hex16 (const char *p, uint64_t *out)
{
  uint64_t v = 0;
  int i;

  for (i = 0; i < 16; i++) {
    char c = p[i];
    if (c >= '0' && c <= '9')
      v = v << 4 | (uint64_t) (c - '0');
    else if (c >= 'a' && c <= 'f')
      v = v << 4 | (uint64_t) (c - 'a' + 10);
    else
      return EINVAL;
  }
  *out = v;
  return 0;
}

int
hf_seg_name_parse (const char *name, uint64_t *seq)
{
  size_t n = strlen (name);
  uint64_t g;

  if (n == 16)
    return hf_seg_key_parse (name, seq);
  if (n != 33 || name[16] != '/' || hf_seg_hex16 (name, &g) != 0
      || hf_seg_key_parse (name + 17, seq) != 0
      || *seq >> HF_SEG_GROUP_SHIFT != ~g)
    return EINVAL;
  return 0;
}

int
hf_seg_key_parse (const char *name, uint64_t *seq)
{
  uint64_t v;

  if (hf_seg_hex16 (name, &v) != 0 || name[16] != '\0' || ~v == 0)
    return EINVAL;
  *seq = ~v;
  return 0;
}

static uint64_t
hf_seg_round_up (uint64_t v, uint64_t a)
{
  return (v + a - 1) / a * a;
}

int
hf_seg_layout (struct hf_seg_hdr *h)
{
  uint64_t align = h->block_size > HF_NODE_SIZE ? h->block_size
    : HF_NODE_SIZE;
  uint64_t end;

  uint64_t tables_end;

  h->ext_off = HF_SH_SIZE;
  h->crc_off = h->ext_off + (uint64_t) h->n_ext * HF_EXT_SIZE;
  tables_end = h->crc_off + (uint64_t) h->n_data * 4;
  if (h->codec) {
    if (h->frame_blocks == 0 ||
        (uint64_t) h->frame_blocks * h->block_size > HF_SEG_FRAME_MAX)
      return EINVAL;
    h->n_frames = (uint32_t) (((uint64_t) h->n_data + h->frame_blocks - 1) /
                              h->frame_blocks);
    h->frame_off = tables_end;
    tables_end += (uint64_t) h->n_frames * HF_FR_SIZE;
  }
  else {
    h->frame_blocks = 0;
    h->n_frames = 0;
    h->frame_off = 0;
  }
  h->node_off = hf_seg_round_up (tables_end, HF_NODE_SIZE);
  h->data_off = hf_seg_round_up (h->node_off +
                                 (uint64_t) h->n_nodes * HF_NODE_SIZE, align);
  end = h->data_off + (uint64_t) h->n_data * h->block_size;
  if (end > HF_SEG_MAX_OBJECT)
    return EINVAL;
  h->object_size = end;
  return 0;
}

uint64_t
hf_seg_image_size (const struct hf_seg_hdr *h)
{
  if (h->codec == 0)
    return h->object_size;
  return h->data_off + (uint64_t) h->n_data * h->block_size;
}

uint32_t
hf_seg_frame_nblocks (const struct hf_seg_hdr *h, uint32_t i)
{
  uint64_t first = (uint64_t) i * h->frame_blocks;

  if (first >= h->n_data)
    return 0;
  return h->n_data - first < h->frame_blocks ? (uint32_t) (h->n_data - first)
    : h->frame_blocks;
}

uint32_t
hf_seg_frame_blocks_for (uint32_t block_size, uint32_t frame_bytes)
{
  uint32_t n;

  if (frame_bytes > HF_SEG_FRAME_MAX)
    frame_bytes = HF_SEG_FRAME_MAX;
  n = frame_bytes / block_size;
  return n ? n : 1;
}

/* Early abort (the idea of btrfs's compression heuristic): zstd spends
 * about as long failing on random data as compressing text, and one
 * builder thread compresses every segment, so a frame zstd cannot shrink
 * is judged from a sample before zstd sees it.  The sample is
 * HF_SEG_SAMPLE_RUNS runs of up to HF_SEG_SAMPLE_RUN bytes spread evenly
 * over the frame (2 KiB of a 16 KiB frame; the whole frame below 2 KiB).
 * A frame is compressed if the sample's byte entropy is below
 * HF_SEG_ENTROPY_MAX bits per byte, or if its second half repeats its
 * first (a block written twice).  Random data's 2 KiB sample measures
 * 7.87-7.94 bits (20,000 frames; a sample of 2048 bytes of 256 values
 * cannot reach 8); a 16 KiB frame with 1 KiB of zeros measures 7.72-7.75
 * and zstd level 1 stores it in 0.94 of its size.  So what is given up
 * is frames zstd would shrink by less than about 5%, and small runs
 * between the sample's runs: the bench's data sets store the same bytes
 * within 0.1% (docs/benchmarks.md). */
#define HF_SEG_SAMPLE_RUNS 64
#define HF_SEG_SAMPLE_RUN 32
#define HF_SEG_SAMPLE_MAX (HF_SEG_SAMPLE_RUNS * HF_SEG_SAMPLE_RUN)
#define HF_SEG_ENTROPY_MAX 7.8

/* hf_seg_clog2[c] = c * log2 (c), for the entropy of a sample. */
static float hf_seg_clog2[HF_SEG_SAMPLE_MAX + 1];
static pthread_once_t hf_seg_clog2_once = PTHREAD_ONCE_INIT;

static void
hf_seg_clog2_init (void)
{
  unsigned c;

  for (c = 1; c <= HF_SEG_SAMPLE_MAX; c++)
    hf_seg_clog2[c] = (float) (c * log2 (c));
}

bool
hf_seg_frame_worth (const uint8_t *src, size_t len)
{
  uint32_t count[256] = { 0 };
  size_t stride = len / HF_SEG_SAMPLE_RUNS, run, half, n, i, j;
  bool repeats = true;
  double sum = 0;

  if (stride == 0)
    return true;                /* too small to judge: let zstd try */
  run = stride < HF_SEG_SAMPLE_RUN ? stride : HF_SEG_SAMPLE_RUN;
  n = run * HF_SEG_SAMPLE_RUNS;
  half = (size_t) HF_SEG_SAMPLE_RUNS / 2 * stride;
  for (i = 0; i < HF_SEG_SAMPLE_RUNS; i++) {
    const uint8_t *p = src + i * stride;
    /* Run i of the second half against run i of the first (random
     * data differs at the first byte). */
    if (repeats && i >= HF_SEG_SAMPLE_RUNS / 2)
      repeats = memcmp (p, p - half, run) == 0;
    for (j = 0; j < run; j++)
      count[p[j]]++;
  }
  if (repeats)
    return true;
  pthread_once (&hf_seg_clog2_once, hf_seg_clog2_init);
  for (i = 0; i < 256; i++)
    sum += hf_seg_clog2[count[i]];
  /* Entropy in bits per byte: log2 (n) - sum / n. */
  return log2 ((double) n) - sum / (double) n < HF_SEG_ENTROPY_MAX;
}

int
hf_seg_compress (const uint8_t *data, struct hf_seg_hdr *h, int level,
                 uint8_t *dst, struct hf_seg_frame *fr)
{
  ZSTD_CCtx *cc = NULL;
  uint64_t pos = 0, raw_head = 0;
  bool all_raw = true;
  uint32_t i;

  if (h->n_frames == 0) {
    h->object_size = h->data_off;
    return 0;
  }
  for (i = 0; i < h->n_frames; i++) {
    const uint8_t *src = data + (uint64_t) i * h->frame_blocks * h->block_size;
    size_t len = (size_t) hf_seg_frame_nblocks (h, i) * h->block_size;
    size_t z = 0;
    bool raw = true;

    fr[i].off = h->data_off + pos;
    if (hf_seg_frame_worth (src, len)) {
      if (cc == NULL && (cc = ZSTD_createCCtx ()) == NULL)
        return ENOMEM;
      /* Room for one byte less than the frame: what does not fit is not
       * worth keeping compressed, and is stored raw. */
      z = ZSTD_compressCCtx (cc, dst + pos, len - 1, src, len, level);
      if (ZSTD_isError (z)) {
        if (ZSTD_getErrorCode (z) == ZSTD_error_memory_allocation) {
          ZSTD_freeCCtx (cc);
          return ENOMEM;
        }
        if (ZSTD_getErrorCode (z) != ZSTD_error_dstSize_tooSmall) {
          hf_error ("segment %" PRIu64 ": zstd: %s", h->seq,
                    ZSTD_getErrorName (z));
          ZSTD_freeCCtx (cc);
          return EIO;
        }
      }
      else
        raw = false;
    }
    if (raw) {
      /* While every frame so far is raw, the stored bytes are the
       * image's at the same offsets: copied only once a frame shrinks,
       * and never if none does. */
      if (all_raw)
        raw_head = pos + len;
      else
        memcpy (dst + pos, src, len);
      fr[i].len = (uint32_t) len;
      fr[i].flags = HF_FR_RAW;
      fr[i].crc = hf_crc32c (0, src, len);
    }
    else {
      if (all_raw && raw_head)
        memcpy (dst, data, raw_head);
      all_raw = false;
      fr[i].len = (uint32_t) z;
      fr[i].flags = 0;
      fr[i].crc = hf_crc32c (0, dst + pos, fr[i].len);
    }
    pos += fr[i].len;
  }
  ZSTD_freeCCtx (cc);
  h->object_size = h->data_off + pos;
  return 0;
}

/* One decompression context per thread that decodes frames, freed when
 * the thread ends. */
static pthread_key_t hf_seg_dctx_key;
static pthread_once_t hf_seg_dctx_once = PTHREAD_ONCE_INIT;

static void
hf_seg_dctx_free (void *p)
{
  ZSTD_freeDCtx (p);
}

static void
hf_seg_dctx_init (void)
{
  if (pthread_key_create (&hf_seg_dctx_key, hf_seg_dctx_free) != 0)
    abort ();
}

static ZSTD_DCtx *
hf_seg_dctx (void)
{
  ZSTD_DCtx *d;

  pthread_once (&hf_seg_dctx_once, hf_seg_dctx_init);
  d = pthread_getspecific (hf_seg_dctx_key);
  if (d == NULL) {
    d = ZSTD_createDCtx ();
    if (d && pthread_setspecific (hf_seg_dctx_key, d) != 0) {
      ZSTD_freeDCtx (d);
      d = NULL;
    }
  }
  return d;
}

int
hf_seg_frame_decode (const struct hf_seg_hdr *h, uint32_t i,
                     const struct hf_seg_frame *fr, const void *stored,
                     const char *key, void *out)
{
  size_t want = (size_t) hf_seg_frame_nblocks (h, i) * h->block_size;
  unsigned long long csize;
  ZSTD_DCtx *d;
  size_t z;

  if (hf_crc32c (0, stored, fr->len) != fr->crc) {
    hf_error ("segment %s: corrupt at byte offset %" PRIu64 ": frame %"
              PRIu32 " CRC mismatch", key, fr->off, i);
    return EBADMSG;
  }
  if (fr->flags & HF_FR_RAW) {
    if (fr->len != want) {      /* hf_seg_parse checked; stay safe */
      hf_error ("segment %s: corrupt at byte offset %" PRIu64 ": raw frame %"
                PRIu32 " is %" PRIu32 " bytes, not %zu", key, fr->off, i,
                fr->len, want);
      return EBADMSG;
    }
    memcpy (out, stored, want);
    return 0;
  }
  /* The frame must say it decodes to exactly the frame's bytes; the
   * one-shot decoder writes into out only (no window buffer of its own)
   * and never past want bytes. */
  csize = ZSTD_getFrameContentSize (stored, fr->len);
  if (csize != want) {
    hf_error ("segment %s: corrupt at byte offset %" PRIu64 ": frame %"
              PRIu32 " declares %llu bytes, not %zu", key, fr->off, i,
              csize, want);
    return EBADMSG;
  }
  d = hf_seg_dctx ();
  if (d == NULL)
    return ENOMEM;
  z = ZSTD_decompressDCtx (d, out, want, stored, fr->len);
  if (ZSTD_isError (z) || z != want) {
    hf_error ("segment %s: corrupt at byte offset %" PRIu64 ": frame %"
              PRIu32 " does not decompress (%s)", key, fr->off, i,
              ZSTD_isError (z) ? ZSTD_getErrorName (z) : "short");
    return EBADMSG;
  }
  return 0;
}

void
hf_seg_write_meta (void *obj, struct hf_seg_hdr *h,
                   const struct hf_seg_ext *ext, const uint32_t *crcs)
{
  hf_seg_write_meta_frames (obj, h, ext, crcs, NULL);
}

void
hf_seg_write_meta_frames (void *obj, struct hf_seg_hdr *h,
                          const struct hf_seg_ext *ext, const uint32_t *crcs,
                          const struct hf_seg_frame *fr)
{
  uint8_t *o = obj;
  uint8_t *p;
  uint32_t i;

  memset (o, 0, h->node_off);
  p = o + h->ext_off;
  for (i = 0; i < h->n_ext; i++, p += HF_EXT_SIZE) {
    hf_put_le64 (p, ext[i].lba);
    hf_put_le32 (p + 8, ext[i].nblocks);
    hf_put_le16 (p + 12, ext[i].flags);
  }
  p = o + h->crc_off;
  for (i = 0; i < h->n_data; i++, p += 4)
    hf_put_le32 (p, crcs[i]);
  if (h->codec && fr)
    for (i = 0, p = o + h->frame_off; i < h->n_frames; i++, p += HF_FR_SIZE) {
      hf_put_le32 (p, fr[i].len);
      hf_put_le32 (p + 4, fr[i].crc);
      hf_put_le16 (p + 8, fr[i].flags);
    }
  h->meta_crc = hf_crc32c (0, o + h->ext_off, h->node_off - h->ext_off);

  hf_put_le32 (o + SH (sh_magic), HF_SH_MAGIC);
  hf_put_le16 (o + SH (sh_version),
               h->codec ? HF_SH_VERSION_FRAMES : HF_SH_VERSION);
  hf_put_le16 (o + SH (sh_hdr_size), HF_SH_SIZE);
  hf_put_le32 (o + SH (sh_flags), h->flags);
  hf_put_le32 (o + SH (sh_block_size), h->block_size);
  memcpy (o + SH (sh_volume_uuid), h->volume_uuid, HF_UUID_SIZE);
  hf_put_le64 (o + SH (sh_seq), h->seq);
  hf_put_le64 (o + SH (sh_parent_seq), h->parent_seq);
  hf_put_le64 (o + SH (sh_lease_epoch), h->lease_epoch);
  hf_put_le64 (o + SH (sh_volume_size), h->volume_size);
  hf_put_le64 (o + SH (sh_timestamp_ns), h->timestamp_ns);
  hf_put_le32 (o + SH (sh_n_ext), h->n_ext);
  hf_put_le32 (o + SH (sh_n_data), h->n_data);
  hf_put_le32 (o + SH (sh_n_nodes), h->n_nodes);
  hf_put_le32 (o + SH (sh_ext_off), h->ext_off);
  hf_put_le64 (o + SH (sh_crc_off), h->crc_off);
  hf_put_le64 (o + SH (sh_node_off), h->node_off);
  hf_put_le64 (o + SH (sh_data_off), h->data_off);
  hf_put_le64 (o + SH (sh_object_size), h->object_size);
  hf_put_le64 (o + SH (sh_ckpt_seq), h->ckpt_seq);
  hf_put_le64 (o + SH (sh_ckpt_root), h->ckpt_root.np_seq);
  hf_put_le32 (o + SH (sh_ckpt_root) + 8, h->ckpt_root.np_off);
  hf_put_le32 (o + SH (sh_ckpt_root) + 12, h->ckpt_root.np_crc);
  hf_put_le16 (o + SH (sh_ckpt_level), h->ckpt_level);
  hf_put_le32 (o + SH (sh_meta_crc), h->meta_crc);
  hf_put_le64 (o + SH (sh_mapped), h->mapped);
  hf_put_le64 (o + SH (sh_live_bytes), h->live_bytes);
  hf_put_le32 (o + SH (sh_parent_crc), h->parent_crc);
  hf_put_le64 (o + SH (sh_wal_lsn), h->wal_lsn);
  hf_put_le64 (o + SH (sh_wal_id), h->wal_id);
  if (h->codec) {
    hf_put_le32 (o + SH (sh_codec), h->codec);
    hf_put_le32 (o + SH (sh_frame_blocks), h->frame_blocks);
    hf_put_le32 (o + SH (sh_n_frames), h->n_frames);
    hf_put_le64 (o + SH (sh_frame_off), h->frame_off);
  }
  h->hdr_crc = hf_crc32c (0, o, SH (sh_hdr_crc));
  hf_put_le32 (o + SH (sh_hdr_crc), h->hdr_crc);
}

/* Byte offset of the last damage found by this thread (fsck). */
static __thread uint64_t hf_seg_bad;

uint64_t
hf_seg_bad_offset (void)
{
  return hf_seg_bad;
}

#define BAD(off, fmt, ...)                                              \
  do {                                                                  \
    hf_seg_bad = (uint64_t) (off);                                      \
    hf_error ("segment %s: corrupt at byte offset %" PRIu64 ": " fmt,    \
              key, (uint64_t) (off), ##__VA_ARGS__);                    \
    return EBADMSG;                                                     \
  } while (0)

bool
hf_seg_incomplete (const void *buf, size_t len)
{
  const uint8_t *o = buf;

  if (len < HF_SH_SIZE)
    return true;
  return hf_le32 (o + SH (sh_magic)) == HF_SH_MAGIC &&
    (hf_le16 (o + SH (sh_version)) == HF_SH_VERSION ||
     hf_le16 (o + SH (sh_version)) == HF_SH_VERSION_FRAMES) &&
    hf_le16 (o + SH (sh_hdr_size)) == HF_SH_SIZE &&
    hf_crc32c (0, o, SH (sh_hdr_crc)) == hf_le32 (o + SH (sh_hdr_crc)) &&
    len < hf_le64 (o + SH (sh_object_size));
}

int
hf_seg_parse_hdr (const void *buf, size_t len, const char *key,
                  const uint8_t *uuid, uint32_t block_size, uint64_t seq,
                  struct hf_seg_hdr *out)
{
  const uint8_t *o = buf;
  struct hf_seg_hdr h;
  uint64_t nodes_end, min_node_off;
  uint16_t version;

  if (len < HF_SH_SIZE)
    BAD (len, "object too short for a header (%zu bytes)", len);
  if (hf_le32 (o + SH (sh_magic)) != HF_SH_MAGIC)
    BAD (SH (sh_magic), "bad magic 0x%08" PRIx32,
         hf_le32 (o + SH (sh_magic)));
  version = hf_le16 (o + SH (sh_version));
  if (version != HF_SH_VERSION && version != HF_SH_VERSION_FRAMES)
    BAD (SH (sh_version), "unsupported version %u", (unsigned) version);
  if (hf_le16 (o + SH (sh_hdr_size)) != HF_SH_SIZE)
    BAD (SH (sh_hdr_size), "bad header size %u",
         (unsigned) hf_le16 (o + SH (sh_hdr_size)));
  h.hdr_crc = hf_le32 (o + SH (sh_hdr_crc));
  if (hf_crc32c (0, o, SH (sh_hdr_crc)) != h.hdr_crc)
    BAD (SH (sh_hdr_crc), "header CRC mismatch");

  h.flags = hf_le32 (o + SH (sh_flags));
  h.block_size = hf_le32 (o + SH (sh_block_size));
  memcpy (h.volume_uuid, o + SH (sh_volume_uuid), HF_UUID_SIZE);
  h.seq = hf_le64 (o + SH (sh_seq));
  h.parent_seq = hf_le64 (o + SH (sh_parent_seq));
  h.lease_epoch = hf_le64 (o + SH (sh_lease_epoch));
  h.volume_size = hf_le64 (o + SH (sh_volume_size));
  h.timestamp_ns = hf_le64 (o + SH (sh_timestamp_ns));
  h.n_ext = hf_le32 (o + SH (sh_n_ext));
  h.n_data = hf_le32 (o + SH (sh_n_data));
  h.n_nodes = hf_le32 (o + SH (sh_n_nodes));
  h.ext_off = hf_le32 (o + SH (sh_ext_off));
  h.crc_off = hf_le64 (o + SH (sh_crc_off));
  h.node_off = hf_le64 (o + SH (sh_node_off));
  h.data_off = hf_le64 (o + SH (sh_data_off));
  h.object_size = hf_le64 (o + SH (sh_object_size));
  h.ckpt_seq = hf_le64 (o + SH (sh_ckpt_seq));
  h.ckpt_root.np_seq = hf_le64 (o + SH (sh_ckpt_root));
  h.ckpt_root.np_off = hf_le32 (o + SH (sh_ckpt_root) + 8);
  h.ckpt_root.np_crc = hf_le32 (o + SH (sh_ckpt_root) + 12);
  h.ckpt_level = hf_le16 (o + SH (sh_ckpt_level));
  h.meta_crc = hf_le32 (o + SH (sh_meta_crc));
  h.mapped = hf_le64 (o + SH (sh_mapped));
  h.live_bytes = hf_le64 (o + SH (sh_live_bytes));
  h.parent_crc = hf_le32 (o + SH (sh_parent_crc));
  h.wal_lsn = hf_le64 (o + SH (sh_wal_lsn));
  h.wal_id = hf_le64 (o + SH (sh_wal_id));
  h.codec = h.frame_blocks = h.n_frames = 0;
  h.frame_off = 0;
  if (version == HF_SH_VERSION_FRAMES) {
    h.codec = hf_le32 (o + SH (sh_codec));
    h.frame_blocks = hf_le32 (o + SH (sh_frame_blocks));
    h.n_frames = hf_le32 (o + SH (sh_n_frames));
    h.frame_off = hf_le64 (o + SH (sh_frame_off));
  }

  if (h.block_size < HF_MIN_BLOCK_SIZE || h.block_size > HF_MAX_BLOCK_SIZE ||
      (h.block_size & (h.block_size - 1)) != 0)
    BAD (SH (sh_block_size), "bad block size %" PRIu32, h.block_size);
  if (block_size && h.block_size != block_size)
    BAD (SH (sh_block_size), "block size %" PRIu32 " is not the volume's %"
         PRIu32, h.block_size, block_size);
  if (uuid && memcmp (h.volume_uuid, uuid, HF_UUID_SIZE) != 0)
    BAD (SH (sh_volume_uuid), "belongs to another volume (uuid mismatch)");
  if (h.seq == 0 || (seq && h.seq != seq))
    BAD (SH (sh_seq), "holds seq %" PRIu64 ", expected %" PRIu64,
         h.seq, seq);
  if (h.parent_seq >= h.seq)
    BAD (SH (sh_parent_seq), "parent %" PRIu64 " not below seq %" PRIu64,
         h.parent_seq, h.seq);
  if (h.ckpt_seq > h.seq)
    BAD (SH (sh_ckpt_seq), "checkpoint %" PRIu64 " after seq %" PRIu64,
         h.ckpt_seq, h.seq);
  if ((h.flags & HF_SH_CHECKPOINT) && h.ckpt_seq != h.seq)
    BAD (SH (sh_ckpt_seq), "checkpoint segment names checkpoint %" PRIu64,
         h.ckpt_seq);
  if (!(h.flags & HF_SH_CHECKPOINT) && h.n_nodes != 0)
    BAD (SH (sh_n_nodes), "nodes in a segment without a checkpoint");
  if (h.flags & ~(uint32_t) (HF_SH_CHECKPOINT | HF_SH_ROLLBACK))
    BAD (SH (sh_flags), "unknown flags 0x%" PRIx32, h.flags);
  if (h.volume_size % h.block_size != 0)
    BAD (SH (sh_volume_size), "volume size %" PRIu64
         " not a multiple of the block size", h.volume_size);
  if (h.volume_size > HF_MAX_VOLUME_SIZE)
    BAD (SH (sh_volume_size), "volume size %" PRIu64 " out of range",
         h.volume_size);
  if (h.ext_off != HF_SH_SIZE)
    BAD (SH (sh_ext_off), "extent table at %" PRIu32, h.ext_off);
  if (h.crc_off != h.ext_off + (uint64_t) h.n_ext * HF_EXT_SIZE)
    BAD (SH (sh_crc_off), "CRC table at %" PRIu64 " does not follow %"
         PRIu32 " extents", h.crc_off, h.n_ext);
  min_node_off = h.crc_off + (uint64_t) h.n_data * 4;
  if (version == HF_SH_VERSION_FRAMES) {
    if (h.codec != HF_SH_CODEC_ZSTD)
      BAD (SH (sh_codec), "unknown codec %" PRIu32, h.codec);
    if (h.frame_blocks == 0 ||
        (uint64_t) h.frame_blocks * h.block_size > HF_SEG_FRAME_MAX)
      BAD (SH (sh_frame_blocks), "bad frame size of %" PRIu32 " blocks",
           h.frame_blocks);
    if (h.n_frames != ((uint64_t) h.n_data + h.frame_blocks - 1) /
        h.frame_blocks)
      BAD (SH (sh_n_frames), "%" PRIu32 " frames for %" PRIu32
           " data blocks", h.n_frames, h.n_data);
    if (h.frame_off != min_node_off)
      BAD (SH (sh_frame_off), "frame table at %" PRIu64 " does not follow "
           "the CRC table", h.frame_off);
    min_node_off += (uint64_t) h.n_frames * HF_FR_SIZE;
  }
  if (h.node_off < min_node_off || h.node_off % HF_NODE_SIZE != 0 ||
      h.node_off > HF_SEG_MAX_OBJECT)
    BAD (SH (sh_node_off), "bad node area offset %" PRIu64, h.node_off);
  nodes_end = h.node_off + (uint64_t) h.n_nodes * HF_NODE_SIZE;
  if (h.data_off < nodes_end || h.data_off % h.block_size != 0 ||
      h.data_off % HF_NODE_SIZE != 0 || h.data_off > HF_SEG_MAX_OBJECT)
    BAD (SH (sh_data_off), "bad data area offset %" PRIu64, h.data_off);
  if (h.codec == 0 &&
      h.object_size != h.data_off + (uint64_t) h.n_data * h.block_size)
    BAD (SH (sh_object_size), "object size %" PRIu64
         " does not match %" PRIu32 " data blocks", h.object_size, h.n_data);
  /* Frames: at least a byte each, at most the image's data area. */
  if (h.codec != 0 &&
      (h.object_size < h.data_off + h.n_frames ||
       h.object_size > h.data_off + (uint64_t) h.n_data * h.block_size))
    BAD (SH (sh_object_size), "object size %" PRIu64
         " does not fit %" PRIu32 " frames of %" PRIu32 " data blocks",
         h.object_size, h.n_frames, h.n_data);
  if (h.flags & HF_SH_CHECKPOINT) {
    bool empty = h.ckpt_root.np_seq == 0 && h.ckpt_root.np_off == 0 &&
      h.ckpt_root.np_crc == 0;
    if (!empty && h.ckpt_root.np_seq > h.seq)
      BAD (SH (sh_ckpt_root), "checkpoint root in a later segment");
    if (!empty && h.ckpt_root.np_seq == h.seq &&
        ((uint64_t) h.ckpt_root.np_off * HF_NODE_SIZE < h.node_off ||
         ((uint64_t) h.ckpt_root.np_off + 1) * HF_NODE_SIZE > nodes_end))
      BAD (SH (sh_ckpt_root), "checkpoint root outside the node area");
  }
  *out = h;
  return 0;
}

/* Decode and check the frame table of *h (h->n_frames entries at tab):
 * *out is a new array the caller frees.  EBADMSG (logged) or ENOMEM. */
static int
hf_seg_parse_frames (const struct hf_seg_hdr *h, const uint8_t *tab,
                     const char *key, struct hf_seg_frame **out)
{
  struct hf_seg_frame *fr;
  uint64_t pos = h->data_off;
  uint32_t i;

  fr = malloc (sizeof *fr * (h->n_frames ? h->n_frames : 1));
  if (fr == NULL)
    return ENOMEM;
  for (i = 0; i < h->n_frames; i++) {
    const uint8_t *p = tab + (uint64_t) i * HF_FR_SIZE;
    uint64_t off = h->frame_off + (uint64_t) i * HF_FR_SIZE;
    uint64_t want = (uint64_t) hf_seg_frame_nblocks (h, i) * h->block_size;

    fr[i].off = pos;
    fr[i].len = hf_le32 (p);
    fr[i].crc = hf_le32 (p + 4);
    fr[i].flags = hf_le16 (p + 8);
    if ((fr[i].flags & ~HF_FR_RAW) || fr[i].len == 0 ||
        fr[i].len > want ||
        ((fr[i].flags & HF_FR_RAW) != 0) != (fr[i].len == want) ||
        fr[i].len > h->object_size - pos) {
      uint32_t flen = fr[i].len, fl = fr[i].flags;
      free (fr);
      BAD (off, "bad frame %" PRIu32 " (%" PRIu32 " bytes, flags 0x%"
           PRIx32 ")", i, flen, fl);
    }
    pos += fr[i].len;
  }
  if (pos != h->object_size) {
    free (fr);
    BAD (SH (sh_object_size), "frames end at %" PRIu64 ", header says %"
         PRIu64, pos, h->object_size);
  }
  *out = fr;
  return 0;
}

void *
hf_seg_tables_encode (const void *obj, const struct hf_seg_hdr *h,
                      size_t *len)
{
  size_t ft = (size_t) h->n_frames * HF_FR_SIZE;
  uint8_t *t;

  if (h->codec == 0)
    return NULL;
  t = malloc (HF_SH_SIZE + ft);
  if (t == NULL)
    return NULL;
  memcpy (t, obj, HF_SH_SIZE);
  memcpy (t + HF_SH_SIZE, (const uint8_t *) obj + h->frame_off, ft);
  *len = HF_SH_SIZE + ft;
  return t;
}

int
hf_seg_tables_decode (const void *buf, size_t len, const char *key,
                      const uint8_t *uuid, uint32_t block_size, uint64_t seq,
                      struct hf_seg_hdr *h, struct hf_seg_frame **fr)
{
  const uint8_t *o = buf;
  struct hf_seg_hdr t;
  int r;

  r = hf_seg_parse_hdr (buf, len, key, uuid, block_size, seq, &t);
  if (r)
    return r;
  if (t.codec == 0)
    BAD (SH (sh_codec), "not a compressed segment's header");
  if (len != HF_SH_SIZE + (uint64_t) t.n_frames * HF_FR_SIZE)
    BAD (len, "%zu bytes of tables for %" PRIu32 " frames", len,
         t.n_frames);
  r = hf_seg_parse_frames (&t, o + HF_SH_SIZE, key, fr);
  if (r == 0)
    *h = t;
  return r;
}

int
hf_seg_parse (const void *buf, size_t len, bool whole, const char *key,
              const uint8_t *uuid, uint32_t block_size, uint64_t seq,
              struct hf_seg_meta *out)
{
  const uint8_t *o = buf;
  struct hf_seg_hdr h;
  struct hf_seg_ext *ext = NULL;
  uint32_t *crcs = NULL;
  struct hf_seg_frame *fr = NULL;
  uint64_t ndata = 0, max_lba;
  uint32_t i;
  int r;

  r = hf_seg_parse_hdr (buf, len, key, uuid, block_size, seq, &h);
  if (r)
    return r;
  if (len < h.node_off)
    BAD (len, "object truncated: tables end at %" PRIu64, h.node_off);
  if (whole && len != h.object_size)
    BAD (len < h.object_size ? len : h.object_size,
         "object is %zu bytes, header says %" PRIu64, len, h.object_size);
  if (hf_crc32c (0, o + h.ext_off, h.node_off - h.ext_off) != h.meta_crc)
    BAD (h.ext_off, "extent/CRC table CRC mismatch");

  ext = malloc (sizeof *ext * (h.n_ext ? h.n_ext : 1));
  crcs = malloc (sizeof *crcs * (h.n_data ? h.n_data : 1));
  if (ext == NULL || crcs == NULL) {
    free (ext);
    free (crcs);
    return ENOMEM;
  }
  max_lba = h.volume_size / h.block_size;
  for (i = 0; i < h.n_ext; i++) {
    const uint8_t *p = o + h.ext_off + (uint64_t) i * HF_EXT_SIZE;
    uint64_t off = h.ext_off + (uint64_t) i * HF_EXT_SIZE;

    ext[i].lba = hf_le64 (p);
    ext[i].nblocks = hf_le32 (p + 8);
    ext[i].flags = hf_le16 (p + 12);
    if ((ext[i].flags != HF_EXT_DATA && ext[i].flags != HF_EXT_ZERO) ||
        ext[i].nblocks == 0 || ext[i].lba >= max_lba ||
        ext[i].nblocks > max_lba - ext[i].lba) {
      struct hf_seg_ext bad = ext[i];
      free (ext);
      free (crcs);
      BAD (off, "bad extent %" PRIu32 " (lba %" PRIu64 ", %" PRIu32
           " blocks, flags 0x%x)", i, bad.lba, bad.nblocks,
           (unsigned) bad.flags);
    }
    if (ext[i].flags == HF_EXT_DATA)
      ndata += ext[i].nblocks;
  }
  if (ndata != h.n_data) {
    free (ext);
    free (crcs);
    BAD (SH (sh_n_data), "extents hold %" PRIu64 " data blocks, header says %"
         PRIu32, ndata, h.n_data);
  }
  for (i = 0; i < h.n_data; i++)
    crcs[i] = hf_le32 (o + h.crc_off + (uint64_t) i * 4);
  if (h.codec) {
    r = hf_seg_parse_frames (&h, o + h.frame_off, key, &fr);
    if (r) {
      free (ext);
      free (crcs);
      return r;
    }
  }
  if (whole && h.codec) {
    size_t fb = (size_t) h.frame_blocks * h.block_size;
    uint8_t *tmp = malloc (fb ? fb : 1);

    if (tmp == NULL) {
      free (ext);
      free (crcs);
      free (fr);
      return ENOMEM;
    }
    for (i = 0; i < h.n_frames; i++) {
      uint32_t b, nb = hf_seg_frame_nblocks (&h, i);

      r = hf_seg_frame_decode (&h, i, &fr[i], o + fr[i].off, key, tmp);
      if (r) {
        hf_seg_bad = fr[i].off;
        free (tmp);
        free (ext);
        free (crcs);
        free (fr);
        return r;
      }
      for (b = 0; b < nb; b++) {
        uint32_t d = i * h.frame_blocks + b;
        if (hf_crc32c (0, tmp + (size_t) b * h.block_size, h.block_size) !=
            crcs[d]) {
          uint64_t off = h.data_off + (uint64_t) d * h.block_size;
          free (tmp);
          free (ext);
          free (crcs);
          free (fr);
          BAD (off, "data block %" PRIu32 " CRC mismatch (image offset; "
               "frame %" PRIu32 ")", d, i);
        }
      }
    }
    free (tmp);
  }
  else if (whole) {
    for (i = 0; i < h.n_data; i++) {
      uint64_t off = h.data_off + (uint64_t) i * h.block_size;
      if (hf_crc32c (0, o + off, h.block_size) != crcs[i]) {
        free (ext);
        free (crcs);
        BAD (off, "data block %" PRIu32 " CRC mismatch", i);
      }
    }
  }
  out->h = h;
  out->ext = ext;
  out->crcs = crcs;
  out->frames = fr;
  return 0;
}

int
hf_seg_read_meta (struct hf_objstore *s, const char *prefix, uint64_t seq,
                  const uint8_t *uuid, uint32_t block_size, uint64_t size,
                  struct hf_seg_meta **out)
{
  return hf_seg_read_meta_vd (s, prefix, 0, seq, uuid, block_size, size,
                              out);
}

int
hf_seg_read_meta_vd (struct hf_objstore *s, const char *prefix,
                     uint32_t vd_flags, uint64_t seq, const uint8_t *uuid,
                     uint32_t block_size, uint64_t size,
                     struct hf_seg_meta **out)
{
  return hf_seg_read_meta_tables (s, prefix, vd_flags, seq, uuid,
                                  block_size, size, out, NULL, NULL);
}

int
hf_seg_read_meta_tables (struct hf_objstore *s, const char *prefix,
                         uint32_t vd_flags, uint64_t seq,
                         const uint8_t *uuid, uint32_t block_size,
                         uint64_t size, struct hf_seg_meta **out,
                         void **tables, size_t *tables_len)
{
  char key[HF_OBJSTORE_KEY_MAX + 1];
  CLEANUP_FREE uint8_t *buf = NULL;
  struct hf_seg_hdr h;
  struct hf_seg_meta *m;
  size_t got = 0;
  int r;

  hf_seg_key_vd (key, sizeof key, prefix, vd_flags, seq);
  if (size == HF_SEG_SIZE_UNKNOWN) {
    struct hf_objstore_info info;

    r = hf_objstore_head (s, key, &info);
    if (r)
      return r;
    size = info.size;
  }
  buf = malloc (HF_SEG_META_READ);
  if (buf == NULL)
    return ENOMEM;
  r = hf_objstore_get (s, key, 0, HF_SEG_META_READ, buf, &got);
  if (r)
    return r;
  if (got == 0)
    return ENOENT;              /* an empty object is treated as absent */
  /* Shorter than a header: what an interrupted upload leaves. */
  if (got < HF_SH_SIZE) {
    hf_warn ("segment %s is incomplete: %zu bytes, too short for a header "
             "(an upload that did not finish)", key, got);
    return ENODATA;
  }
  r = hf_seg_parse_hdr (buf, got, key, uuid, block_size, seq, &h);
  if (r)
    return r;
  /* The header is intact: the object must be as long as it says.  A
   * shorter one is a prefix of an upload that did not finish (a store
   * may keep the body of an interrupted PUT); a longer one is damage. */
  if (size == HF_SEG_SIZE_ANY)
    size = h.object_size;
  if (size < h.object_size) {
    hf_warn ("segment %s is incomplete: %" PRIu64 " bytes, its header "
             "says %" PRIu64 " (an upload that did not finish)", key, size,
             h.object_size);
    return ENODATA;
  }
  if (size > h.object_size)
    BAD (h.object_size, "object is %" PRIu64 " bytes, header says %" PRIu64,
         size, h.object_size);
  if (got < HF_SEG_META_READ && got < h.object_size)
    BAD (got, "object truncated: %zu bytes, header says %" PRIu64,
         got, h.object_size);
  if (h.node_off > got) {
    uint8_t *nb = realloc (buf, h.node_off);
    size_t got2 = 0;

    if (nb == NULL)
      return ENOMEM;
    buf = nb;
    r = hf_objstore_get (s, key, got, h.node_off - got, buf + got, &got2);
    if (r)
      return r;
    got += got2;
  }
  m = calloc (1, sizeof *m);
  if (m == NULL)
    return ENOMEM;
  r = hf_seg_parse (buf, got, false, key, uuid, block_size, seq, m);
  if (r) {
    free (m);
    return r;
  }
  if (tables)
    *tables = hf_seg_tables_encode (buf, &m->h, tables_len);
  *out = m;
  return 0;
}

void
hf_seg_meta_free (struct hf_seg_meta *m)
{
  free (m->ext);
  free (m->crcs);
  free (m->frames);
  m->ext = NULL;
  m->crcs = NULL;
  m->frames = NULL;
}

void
hf_seg_meta_destroy (struct hf_seg_meta *m)
{
  if (m) {
    hf_seg_meta_free (m);
    free (m);
  }
}
