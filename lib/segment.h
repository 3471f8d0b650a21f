/* hyperfile: segment objects (format.h, "Segment"): building one in
 * memory, and parsing and verifying one read back from a store.
 *
 * A segment is built by the volume in one contiguous buffer:
 *
 *   hf_seg_layout ()     computes the offsets of the tables, node area
 *                        and data area from the counts in a header;
 *   the caller fills the node area and the data area of a buffer of
 *   sh_object_size bytes;
 *   hf_seg_write_meta () writes the header, extent table and block CRC
 *                        table (zero padding included) and the CRCs.
 *
 * Reading: hf_seg_read_meta () fetches the header and tables with one
 * ranged GET of the first HF_SEG_META_READ bytes of the object, and a
 * second GET only when the tables are larger, then verifies everything
 * that can be verified without the data area: the object's length
 * against sh_object_size (a shorter object is an incomplete upload,
 * ENODATA), magic, version, header
 * CRC, every size and offset (sane, consistent and within the object),
 * volume uuid, block size and sequence number, the meta CRC, and each
 * extent.  Damage is EBADMSG with an hf_error line naming the object key
 * and the byte offset of the bad field.
 *
 * Compressed segments (version 2, format.h) keep the image's layout up
 * to the data area, which holds frames; hf_seg_compress makes them and
 * hf_seg_frame_decode checks and decodes one (bounded: a frame never
 * decodes to more than its image bytes).
 *
 * Thread safety: every function is reentrant; a struct hf_seg_meta is
 * immutable after parsing and may be shared by readers.
 */
#ifndef HF_SEGMENT_H
#define HF_SEGMENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "objstore.h"

/* Bytes fetched by the first GET of a segment's metadata. */
#define HF_SEG_META_READ (64 * 1024)

/* Longest key hf_seg_key_vd produces: prefix + "seg/" + 16 hex digits
 * of the group + "/" + 16 hex digits. */
#define HF_SEG_KEY_LEN(prefix_len) ((prefix_len) + 4 + 17 + 16 + 1)

/* Upper bound accepted for sh_object_size (sanity, 64 GiB). */
#define HF_SEG_MAX_OBJECT ((uint64_t) 64 << 30)

/* The decoded header (host byte order).  Field meanings: format.h. */
struct hf_seg_hdr {
  uint32_t flags;
  uint32_t block_size;
  uint8_t volume_uuid[HF_UUID_SIZE];
  uint64_t seq;
  uint64_t parent_seq;
  uint32_t parent_crc;
  uint64_t lease_epoch;
  uint64_t volume_size;
  uint64_t timestamp_ns;
  uint32_t n_ext;
  uint32_t n_data;
  uint32_t n_nodes;
  uint32_t ext_off;
  uint64_t crc_off;
  uint64_t node_off;
  uint64_t data_off;
  uint64_t object_size;
  uint64_t ckpt_seq;
  struct hf_disk_node_ptr ckpt_root;
  uint16_t ckpt_level;
  uint32_t meta_crc;
  uint64_t mapped;
  uint64_t live_bytes;
  uint64_t wal_lsn;             /* newest WAL record held (0: no WAL) */
  uint64_t wal_id;              /* that WAL's log id */
  uint32_t codec;               /* 0 or HF_SH_CODEC_ZSTD (frames) */
  uint32_t frame_blocks;        /* codec: data blocks per frame */
  uint32_t n_frames;            /* codec: set by hf_seg_layout */
  uint64_t frame_off;           /* codec: set by hf_seg_layout */
  uint32_t hdr_crc;             /* set by write_meta and parse */
};

/* A decoded frame table entry (compressed segments). */
struct hf_seg_frame {
  uint64_t off;                 /* byte offset in the object (derived) */
  uint32_t len;                 /* stored bytes */
  uint32_t crc;                 /* CRC32C of the stored bytes */
  uint16_t flags;               /* HF_FR_RAW */
};

/* A decoded extent table entry. */
struct hf_seg_ext {
  uint64_t lba;
  uint32_t nblocks;
  uint16_t flags;               /* HF_EXT_DATA or HF_EXT_ZERO */
};

/* Header plus tables of one segment. */
struct hf_seg_meta {
  struct hf_seg_hdr h;
  struct hf_seg_ext *ext;       /* h.n_ext entries, owned */
  uint32_t *crcs;               /* h.n_data entries, owned */
  struct hf_seg_frame *frames;  /* h.n_frames entries, owned (NULL
                                   when h.codec is 0) */
};

/* Write the key of segment seq under prefix (borrowed) into out
 * (outlen bytes, at least HF_SEG_KEY_LEN (strlen (prefix))). */
extern void hf_seg_key (char *out, size_t outlen, const char *prefix,
                        uint64_t seq);

/* The key of segment seq in a volume whose descriptor has vd_flags:
 * grouped with HF_VD_SEG_GROUPS, else hf_seg_key's (format.h). */
extern void hf_seg_key_vd (char *out, size_t outlen, const char *prefix,
                           uint32_t vd_flags, uint64_t seq);

/* The directory of group g's segment keys, PREFIX "seg/" HEX16(~g) "/"
 * (a volume with HF_VD_SEG_GROUPS; group of seq: seq >>
 * HF_SEG_GROUP_SHIFT). */
extern void hf_seg_group_dir (char *out, size_t outlen, const char *prefix,
                              uint64_t group);

/* Parse the last path element of a segment key ("seg/" HEX16(~seq)):
 * 0 and *seq set, or EINVAL if name is not 16 lowercase hex digits
 * naming a seq >= 1. */
extern int hf_seg_key_parse (const char *name, uint64_t *seq);

/* Parse what follows "seg/" in a segment key of either layout:
 * HEX16(~seq), or HEX16(~group) "/" HEX16(~seq) with the group that of
 * seq.  0 and *seq set, or EINVAL. */
extern int hf_seg_name_parse (const char *name, uint64_t *seq);

/* Compute ext_off, crc_off, node_off, data_off and object_size of *h
 * from h->n_ext, h->n_data, h->n_nodes and h->block_size.  EINVAL if the
 * object would exceed HF_SEG_MAX_OBJECT. */
extern int hf_seg_layout (struct hf_seg_hdr *h);

/* Bytes of the segment's image (format.h, "Compressed segments"): the
 * object as it would be with its data area uncompressed.  Equals
 * h->object_size when h->codec is 0. */
extern uint64_t hf_seg_image_size (const struct hf_seg_hdr *h);

/* Data blocks in frame i of *h. */
extern uint32_t hf_seg_frame_nblocks (const struct hf_seg_hdr *h, uint32_t i);

/* Blocks per frame for frames of about frame_bytes (rounded down to
 * whole blocks, at least one, at most HF_SEG_FRAME_MAX bytes). */
extern uint32_t hf_seg_frame_blocks_for (uint32_t block_size,
                                         uint32_t frame_bytes);

/* Should a frame of len bytes at src be given to zstd?  False when a
 * sample of it looks incompressible (segment.c says how it is judged). */
extern bool hf_seg_frame_worth (const uint8_t *src, size_t len);

/* Compress the data area of an image laid out for *h (h->codec set,
 * hf_seg_layout called): data is its h->n_data blocks; each frame is
 * compressed with zstd at level, or kept raw when hf_seg_frame_worth
 * says no or zstd does not make it smaller.  The stored frames go to dst
 * (room for h->n_data blocks, which is always enough), their table to fr
 * (h->n_frames entries), and h->object_size becomes h->data_off plus the
 * stored bytes.  If that equals hf_seg_image_size (every frame raw), dst
 * is left unwritten: the image's data area is the stored one.  ENOMEM,
 * or EIO if zstd fails otherwise (logged). */
extern int hf_seg_compress (const uint8_t *data, struct hf_seg_hdr *h,
                            int level, uint8_t *dst,
                            struct hf_seg_frame *fr);

/* Check and decode frame i of *h: stored (fr->len bytes, as fetched
 * from the object key, borrowed for messages) must match fr->crc and
 * decode to exactly hf_seg_frame_nblocks (h, i) blocks, written to out
 * (that many blocks of room; nothing beyond is ever written).  EBADMSG,
 * logged with key and the frame's byte offset, if it does not; ENOMEM. */
extern int hf_seg_frame_decode (const struct hf_seg_hdr *h, uint32_t i,
                                const struct hf_seg_frame *fr,
                                const void *stored, const char *key,
                                void *out);

/* Write the header and tables of the segment described by *h (laid out
 * with hf_seg_layout) into obj (caller owns, h->object_size bytes, node
 * and data areas already filled), computing h->meta_crc and
 * h->hdr_crc.  ext has h->n_ext entries and crcs h->n_data (borrowed). */
extern void hf_seg_write_meta (void *obj, struct hf_seg_hdr *h,
                               const struct hf_seg_ext *ext,
                               const uint32_t *crcs);
/* The same for a compressed segment: fr has h->n_frames entries (from
 * hf_seg_compress); obj may be the image or the stored object (their
 * bytes before h->data_off are the same). */
extern void hf_seg_write_meta_frames (void *obj, struct hf_seg_hdr *h,
                                      const struct hf_seg_ext *ext,
                                      const uint32_t *crcs,
                                      const struct hf_seg_frame *fr);

/* Decode and verify the header in buf (len bytes from offset 0 of the
 * object key, borrowed, for messages).  uuid (NULL: not checked),
 * block_size (0: not checked) and seq (0: not checked) are what the
 * header must say.  EBADMSG on any damage. */
extern int hf_seg_parse_hdr (const void *buf, size_t len, const char *key,
                             const uint8_t *uuid, uint32_t block_size,
                             uint64_t seq, struct hf_seg_hdr *out);

/* Decode and verify header and tables from buf (len bytes from offset 0
 * of the object; must reach at least node_off).  If whole is true, buf
 * is the whole object: len must equal sh_object_size and every data
 * block's CRC is checked too.  On success *out is filled (caller frees
 * with hf_seg_meta_free); on error *out is untouched. */
extern int hf_seg_parse (const void *buf, size_t len, bool whole,
                         const char *key, const uint8_t *uuid,
                         uint32_t block_size, uint64_t seq,
                         struct hf_seg_meta *out);

/* Fetch and verify the metadata of segment seq under prefix from s.
 * size is the object's length as listed (HF_SEG_SIZE_UNKNOWN: a HEAD
 * asks).  ENOENT if the object does not exist; ENODATA (logged as a
 * warning) if it is shorter than its intact header says, or than a
 * header: an incomplete upload, which a store that keeps the body of an
 * interrupted PUT holds as an object, and which never committed;
 * EBADMSG if damaged (longer than its header says included); or the
 * store's error.  On success *out is a new meta the caller owns (free
 * with hf_seg_meta_destroy). */
#define HF_SEG_SIZE_UNKNOWN UINT64_MAX
/* size for a reader that only wants the tables of a segment it knows
 * to be committed (the read path's frame tables): no HEAD, no check. */
#define HF_SEG_SIZE_ANY (UINT64_MAX - 1)
extern int hf_seg_read_meta (struct hf_objstore *s, const char *prefix,
                             uint64_t seq, const uint8_t *uuid,
                             uint32_t block_size, uint64_t size,
                             struct hf_seg_meta **out);
/* The same for a volume whose descriptor has vd_flags (the layout). */
extern int hf_seg_read_meta_vd (struct hf_objstore *s, const char *prefix,
                                uint32_t vd_flags, uint64_t seq,
                                const uint8_t *uuid, uint32_t block_size,
                                uint64_t size, struct hf_seg_meta **out);

/* The same, and for a compressed segment (when tables is not NULL)
 * *tables = hf_seg_tables_encode of it (NULL if not compressed or out
 * of memory; caller frees), *tables_len its length. */
extern int hf_seg_read_meta_tables (struct hf_objstore *s,
                                    const char *prefix, uint32_t vd_flags,
                                    uint64_t seq, const uint8_t *uuid,
                                    uint32_t block_size, uint64_t size,
                                    struct hf_seg_meta **out,
                                    void **tables, size_t *tables_len);

/* What a reader needs of a compressed segment to find its frames, as
 * one buffer to keep locally (the cache's table files): the header
 * (HF_SH_SIZE bytes) followed by the frame table (sh_n_frames entries),
 * both exactly as stored.  Encode from obj (the image or the stored
 * object, at least h->node_off bytes, already verified as *h): a new
 * buffer of *len bytes the caller frees, or NULL (not compressed, or
 * out of memory). */
extern void *hf_seg_tables_encode (const void *obj,
                                   const struct hf_seg_hdr *h, size_t *len);
/* Decode and check such a buffer (len bytes; key, uuid, block_size and
 * seq as for hf_seg_parse_hdr): header CRC, fields, frame table (the
 * extent and block CRC tables, and so sh_meta_crc, are not there).  On
 * success *h is set and *fr is a new array of h->n_frames entries the
 * caller frees; EBADMSG (logged with key) or ENOMEM. */
extern int hf_seg_tables_decode (const void *buf, size_t len,
                                 const char *key, const uint8_t *uuid,
                                 uint32_t block_size, uint64_t seq,
                                 struct hf_seg_hdr *h,
                                 struct hf_seg_frame **fr);

/* Is buf (the whole object, len bytes) an incomplete upload: shorter
 * than a header, or than the sh_object_size of a header that verifies
 * (magic, version, size, CRC)?  Logs nothing. */
extern bool hf_seg_incomplete (const void *buf, size_t len);

/* After hf_seg_parse_hdr or hf_seg_parse returned EBADMSG in this
 * thread: the byte offset of the damage (also in the logged line). */
extern uint64_t hf_seg_bad_offset (void);

/* Free the tables of *m (not m itself). */
extern void hf_seg_meta_free (struct hf_seg_meta *m);
/* Free a meta from hf_seg_read_meta.  NULL is a no-op. */
extern void hf_seg_meta_destroy (struct hf_seg_meta *m);

#endif /* HF_SEGMENT_H */
