/* hyperfile: points in time, named snapshots and clone registrations.
 *
 * Every segment on the head's chain of parent links is a point in time
 * (format.h, "Points in time").  This module lists them, resolves the
 * plugin's at=SEQ|TIMESTAMP|SNAPSHOT to a seq, and creates, lists and
 * deletes the snap/ and clones/ objects.  It reads only segment headers
 * (one 256-byte ranged GET each, HF_HISTORY_THREADS in parallel, in
 * growing batches after each LIST page of seg/) and never the data or
 * the index, and stops as soon as it has what it needs: resolving a
 * recent seq or time costs one LIST page and a few GETs however long the
 * history is; listing all points costs one GET per segment.
 *
 * The head is the one a read-only open of the volume recovers
 * (hf_volume_open), so history and the engine always agree on it.  The
 * walk back from the head follows parent links across checkpoints and
 * rollbacks, and for a clone into its parent down to the clone's base
 * (the clone's first point; older points of the parent are the parent's
 * history, not the clone's).  It stops early where a parent segment is
 * gone (reclaimed by GC) or does not match the link (sh_parent_crc); a
 * point beyond such a gap that a snapshot keeps is still a point for
 * hf_history_point (so snapshots stay usable for rollback and clone).
 *
 * Errors are positive errno values, each logged once with a sentence a
 * user can act on: ENOENT (no volume; unknown snapshot; no point at or
 * before a time), EINVAL (bad name, bad time syntax, seq not a point of
 * this volume), EEXIST (snapshot name taken), EBADMSG (damaged object),
 * or the store's error.
 *
 * Thread safety: a struct hf_history is immutable after open except for
 * its lazily loaded point list, which is filled under a lock; functions
 * may be called from several threads.
 */
#ifndef HF_HISTORY_H
#define HF_HISTORY_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"
#include "lineage.h"
#include "objstore.h"

#define HF_HISTORY_THREADS 8

/* One point in time: the decoded fields of its segment header. */
struct hf_point {
  uint64_t seq;
  uint64_t parent_seq;          /* 0: the first segment */
  uint64_t timestamp_ns;        /* sh_timestamp_ns */
  uint32_t flags;               /* HF_SH_CHECKPOINT, HF_SH_ROLLBACK */
  uint64_t ckpt_seq;
  uint64_t volume_size;
  uint64_t mapped;              /* sh_mapped (informational) */
  bool inherited;               /* a clone's base: a parent segment */
};

struct hf_history;

/* Open the history of the volume under prefix in s (both borrowed, must
 * outlive h).  cfg (borrowed, NULL = environment) is used to reach a
 * clone's ancestors.  Recovers the head like a read-only open.  On
 * success *out is a new handle the caller owns (hf_history_close). */
extern int hf_history_open (struct hf_objstore *s, const char *prefix,
                            const struct hf_s3_config *cfg,
                            struct hf_history **out);
extern void hf_history_close (struct hf_history *h);

/* Head seq (0: the volume has no segment yet), volume uuid, lineage
 * (borrowed from h). */
extern uint64_t hf_history_head (const struct hf_history *h);
extern const uint8_t *hf_history_uuid (const struct hf_history *h);
extern const struct hf_lineage *hf_history_lineage (const struct hf_history *h);

/* The points in time, newest first (*out borrowed from h, valid until
 * the next call on h; *n may be 0). */
extern int hf_history_points (struct hf_history *h,
                              const struct hf_point **out, size_t *n);

/* The point seq on the head's chain: 0 and *out filled, or EINVAL
 * (logged: "not a point in time of this volume"). */
extern int hf_history_point (struct hf_history *h, uint64_t seq,
                             struct hf_point *out);

/* Parse an ISO 8601 UTC time: YYYY-MM-DDTHH:MM:SS[.fraction]Z (also
 * "+00:00" for Z, and a space for T).  EINVAL on anything else. */
extern int hf_history_parse_time (const char *s, uint64_t *ns);
/* Format ns as YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ into buf (>= 32 bytes). */
extern void hf_history_format_time (uint64_t ns, char *buf, size_t len);

/* Resolve at (borrowed): all digits is a seq (checked to be a point on
 * the chain only if check_seq), something that parses as a time is the
 * newest point at or before it, anything else a snapshot name.  On
 * success *seq is set. */
extern int hf_history_resolve (struct hf_history *h, const char *at,
                               bool check_seq, uint64_t *seq);

/* Check the syntax of an at= value without a store (a seq >= 1, a time
 * as above, or a snapshot name): 0, or EINVAL with one logged line. */
extern int hf_history_check_at (const char *at);

/* ---- Changes between two points ---- */

/* Call fn (in increasing order, merged, not overlapping) for every run
 * of logical blocks [lba, lba + n) that may differ between the points
 * from and to (from < to, both on the head's chain: from an ancestor of
 * to): the union of the extent tables (writes, zeroes, trims) of the
 * segments after from up to to, read from the segments' metadata, never
 * their data or the index.  A superset: a block written with the bytes
 * it had (compaction moves blocks) is listed too.  A rollback segment
 * between them replaces the state wholesale without listing its blocks,
 * so then the union runs from the volume's first segment (a clone's
 * base) instead, and *widened (may be NULL) is set.  EINVAL (logged) if
 * from is not an older point of to's chain; ENOENT (logged) if a
 * segment the union needs is gone (collected by gc): the changes cannot
 * be told, a full copy is needed; or the store's error.  fn returns 0
 * to go on, or an errno to stop (returned). */
typedef int (*hf_history_change_fn) (void *opaque, uint64_t lba,
                                     uint64_t n);
extern int hf_history_changes (struct hf_history *h, uint64_t from,
                               uint64_t to, hf_history_change_fn fn,
                               void *opaque, bool *widened);

/* ---- Named snapshots (snap/NAME) ---- */

/* Name point seq (0 = the head) as name.  seq must be a point on the
 * chain.  Names of digits only are refused (they would read as at=SEQ).
 * On success *out (may be NULL) receives what was written. */
extern int hf_snapshot_create (struct hf_history *h, const char *name,
                               uint64_t seq, struct hf_snapshot *out);

/* Read one snapshot: ENOENT (logged) if it does not exist. */
extern int hf_snapshot_get (struct hf_objstore *s, const char *prefix,
                            const char *name, struct hf_snapshot *out);

/* All snapshots, sorted by name.  *out is a malloc'd array the caller
 * frees (NULL when *n is 0).  A damaged snapshot object fails the whole
 * list with EBADMSG (logged), since GC must not guess. */
extern int hf_snapshot_list (struct hf_objstore *s, const char *prefix,
                             struct hf_snapshot **out, size_t *n);

/* Delete: ENOENT (logged) if it does not exist. */
extern int hf_snapshot_delete (struct hf_objstore *s, const char *prefix,
                               const char *name);

/* ---- Clone registrations (clones/HEX32) ---- */

/* Key of the registration of clone uuid under prefix. */
extern void hf_clone_reg_key (char *out, size_t len, const char *prefix,
                              const uint8_t *uuid);
/* Write a registration (conditional PUT; EEXIST if present). */
extern int hf_clone_reg_put (struct hf_objstore *s, const char *prefix,
                             const struct hf_clone_reg *r);
/* All registrations, in key order; *out malloc'd, caller frees.  A
 * damaged one fails the list with EBADMSG (logged). */
extern int hf_clone_reg_list (struct hf_objstore *s, const char *prefix,
                              struct hf_clone_reg **out, size_t *n);
/* Delete the registration of clone uuid (missing is not an error). */
extern int hf_clone_reg_delete (struct hf_objstore *s, const char *prefix,
                                const uint8_t *uuid);

/* Is the clone a registration names still there?  HF_CLONE_OK: its
 * descriptor is at the registered URL with the registered uuid;
 * HF_CLONE_GONE: no volume there any more (removed by hand: an orphan
 * registration); HF_CLONE_REPLACED: another volume is there (an orphan
 * too); HF_CLONE_UNKNOWN: it could not be read (the reason is logged as
 * a warning), or it was not followed: a volume in S3 (parent_s3) does
 * not follow a registration naming a local directory unless
 * cfg->clone_parent_any, as for parents (hf_lineage_check_parent).
 * Only GONE and REPLACED are orphans. */
enum hf_clone_state {
  HF_CLONE_OK, HF_CLONE_GONE, HF_CLONE_REPLACED, HF_CLONE_UNKNOWN
};
extern enum hf_clone_state hf_clone_reg_state (const struct hf_clone_reg *cr,
                                               bool parent_s3,
                                               const struct hf_s3_config *cfg);
/* A word for st: "ok", "gone", "replaced", "unknown". */
extern const char *hf_clone_state_name (enum hf_clone_state st);

/* ---- Clones ---- */

/* Create a clone of the volume of src at point base (0 = src's head;
 * must be a point on src's chain) as a new volume under dst_prefix in
 * dst (borrowed), whose URL is dst_url; src_url is src's URL as the
 * clone will reach it (absolute: s3://BUCKET/PREFIX or file:///DIR).
 * Registers the clone in src's prefix first, then writes the clone's
 * descriptor with a conditional PUT; if that fails the registration is
 * removed again.  EEXIST (logged) if a volume exists at dst.  On success
 * *seq_out (may be NULL) is the base. */
extern int hf_clone_create (struct hf_history *src, const char *src_url,
                            uint64_t base, struct hf_objstore *dst,
                            const char *dst_prefix, const char *dst_url,
                            uint64_t *seq_out);
/* The same; when src is encrypted (its store is a crypt store), the
 * clone shares its data key, wrapped with uk (required: ENOKEY). */
struct hf_user_key;
extern int hf_clone_create_key (struct hf_history *src, const char *src_url,
                                uint64_t base, struct hf_objstore *dst,
                                const char *dst_prefix, const char *dst_url,
                                const struct hf_user_key *uk,
                                uint64_t *seq_out);

#endif /* HF_HISTORY_H */
