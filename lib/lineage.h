/* hyperfile: a volume's lineage -- where each segment seq lives.
 *
 * A plain volume owns every seq.  A clone (format.h, "Clones") owns the
 * seqs above its vd_parent_seq; the seqs at or below it belong to the
 * parent volume, found under vd_parent_url and carrying the parent's
 * uuid, and the same holds recursively for the parent.  A lineage is the
 * list of those volumes, the opened volume first:
 *
 *   level 0: the volume itself, seqs > floor[0] (0 for a plain volume)
 *   level 1: its parent,        seqs in (floor[1], floor[0]]
 *   ...
 *
 * hf_lineage_open reads the volume descriptor and, for a clone, each
 * ancestor's descriptor (checking that its uuid is the one the child
 * names and that floors strictly decrease), opening each ancestor's
 * store from its URL with the caller's S3 configuration (same endpoint
 * and credentials; the bucket comes from the URL).
 *
 * Thread safety: immutable after open; any number of threads may call
 * hf_lineage_locate at once.
 */
#ifndef HF_LINEAGE_H
#define HF_LINEAGE_H

#include <stdbool.h>
#include <stdint.h>

#include "crypt.h"
#include "format.h"
#include "objstore.h"

/* Deepest chain of clones accepted (a loop in parent URLs ends here). */
#define HF_LINEAGE_MAX 16

/* A decoded volume descriptor (format.h, "Volume descriptor"). */
struct hf_vdesc {
  uint32_t flags;
  uint32_t block_size;
  uint8_t uuid[HF_UUID_SIZE];
  uint64_t size;
  uint64_t created_ns;
  uint64_t parent_seq;
  uint8_t parent_uuid[HF_UUID_SIZE];
  char parent_url[257];
  uint64_t flat_seq;            /* HF_VD_FLATTENED: the head then */
  struct hf_crypt_desc crypt;   /* with HF_VD_ENCRYPTED; else zero */
  uint8_t codec;                /* vd_codec: 0 or HF_SH_CODEC_ZSTD */
  int8_t codec_level;           /* vd_codec_level: 1..19 or -1..-10 */
};

struct hf_lineage_level {
  struct hf_objstore *store;    /* level 0: borrowed; others: owned */
  char *prefix;                 /* owned */
  char *url;                    /* owned; NULL at level 0 */
  struct hf_vdesc d;
  uint64_t floor;               /* this level holds seqs > floor */
};

struct hf_lineage {
  unsigned n;
  struct hf_lineage_level lv[HF_LINEAGE_MAX];
};

/* Encode / decode a descriptor.  decode: EBADMSG with *bad_off on
 * damage (the caller logs it with the key). */
extern void hf_vdesc_encode (const struct hf_vdesc *d,
                             uint8_t out[HF_VD_SIZE]);
extern int hf_vdesc_decode (const void *buf, size_t len,
                            struct hf_vdesc *out, size_t *bad_off);

/* Read the descriptor PREFIX "volume" of store s (retrying transient
 * errors).  ENOENT (no volume there, logged), EBADMSG (damaged, logged),
 * or the store's error. */
extern int hf_vdesc_read (struct hf_objstore *s, const char *prefix,
                          struct hf_vdesc *out);

/* May a clone (child_s3: in S3; child names it for the log line) follow
 * parent_url?  A parent in S3 is reached with the child's own endpoint
 * and credentials.  Refused with EPERM, logged: a local directory as
 * the parent of a volume in S3, always (a planted descriptor must not
 * make a server read local files); an S3 parent of a volume in a
 * directory, unless any.  EINVAL for a control character. */
extern int hf_lineage_check_parent (bool child_s3, const char *child,
                                    const char *parent_url, bool any);

/* Build the lineage of the volume under prefix in s (both borrowed; s
 * must outlive the lineage).  cfg (borrowed, NULL = environment
 * defaults) configures the S3 stores of s3:// ancestors, and says which
 * parents may be followed (hf_lineage_check_parent, with
 * cfg->clone_parent_any); each parent followed is logged (info).  On success
 * *out is a new lineage the caller owns (hf_lineage_close). */
extern int hf_lineage_open (struct hf_objstore *s, const char *prefix,
                            const struct hf_s3_config *cfg,
                            struct hf_lineage **out);

/* The level holding segment seq (>= 1); never NULL for seq >= 1. */
extern const struct hf_lineage_level *
hf_lineage_locate (const struct hf_lineage *l, uint64_t seq);

/* Is the store behind s (through fault wrappers) an S3 store?  Its
 * description says ("s3://BUCKET at ...", "fault(s3://...)"). */
extern bool hf_lineage_store_is_s3 (struct hf_objstore *s);

/* NULL is a no-op. */
extern void hf_lineage_close (struct hf_lineage *l);

#endif /* HF_LINEAGE_H */
