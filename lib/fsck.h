/* hyperfile: verify a volume (hyperfile fsck).
 *
 * Checks, reading every object once:
 *   - the volume descriptor (magic, version, CRC, sizes);
 *   - every segment object: header, extent and block CRC tables, size,
 *     every B+tree node of its node area, every data block's CRC32C;
 *   - every point GC keeps (gc.h: the head, the points of the retention
 *     window and the one at its start, every snapshot and clone base):
 *     each parent link (sh_parent_crc) down to the point's checkpoint;
 *     older points are GC's to collect and are not checked;
 *   - every checkpoint tree those points use, walked from its root with
 *     the parent's expectations (level, key range, CRC in the pointer),
 *     and every leaf entry: its segment exists, the block is inside the
 *     data area and its CRC equals the segment's block CRC table.
 *   - the head against the newest writer lease's record of the last
 *     committed segment (newer segments deleted or lost are damage).
 * Each damage is reported once through the callback with the object key,
 * the byte offset in it and a sentence; orphan segments that verify are
 * not damage, nor are incomplete uploads (objects shorter than their
 * header says: the body of an interrupted PUT a store kept), which are
 * counted.  A damaged newest segment is reported and the older intact
 * head is checked.
 *
 * Memory: the block CRC tables of all segments (4 bytes per stored data
 * block, about 0.1% of the data) plus one segment object at a time.
 *
 * Returns 0 when the check ran (damage is counted in the report), or an
 * errno when it could not run: ENOENT (no volume), or the store's error.
 */
#ifndef HF_FSCK_H
#define HF_FSCK_H

#include <stdint.h>

#include "objstore.h"

typedef void (*hf_fsck_fn) (void *opaque, const char *object,
                            uint64_t offset, const char *what);

struct hf_fsck_report {
  uint64_t head_seq;
  uint64_t segments, bytes;
  uint64_t data_blocks, nodes;
  uint64_t points;              /* verified points of the window */
  uint64_t older_segments;      /* below the oldest readable point */
  uint64_t snapshots, clones;
  uint64_t orphan_clones;       /* registrations whose clone is gone
                                   (warned about; not damage) */
  uint64_t checkpoints, tree_nodes, entries;
  uint64_t orphans;
  uint64_t incomplete;          /* interrupted uploads (never committed) */
  uint64_t problems;
};

struct hf_fsck_options {
  uint64_t retain_ns;           /* the window GC keeps (gc.h) */
  uint64_t grace_ns;
  const struct hf_s3_config *cfg; /* a clone's ancestors; NULL = env */
  hf_fsck_fn fn;                /* gets each damage; NULL = none */
  void *opaque;
  /* Called after each segment read (NULL = none): bytes read so far of
   * the total listed. */
  void (*progress) (void *opaque, uint64_t done, uint64_t total);
};

/* Check the volume under prefix in s (borrowed). */
extern int hf_fsck_run (struct hf_objstore *s, const char *prefix,
                        const struct hf_fsck_options *o,
                        struct hf_fsck_report *rep);

#endif /* HF_FSCK_H */
