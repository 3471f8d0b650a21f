/* Test helper: a reference model of a volume's points in time.
 *
 * hm_workload drives random pwrite / trim / zero / grow steps and
 * flushes through lib/volume and records the exact expected image at
 * every committed point (the volume must be opened with a segment size
 * and flush interval that never seal on their own, so that each flush
 * that changed something is exactly one new point).  hm_check_all then
 * opens every recorded point read-only -- by seq, by timestamp and by a
 * snapshot name -- and compares the whole image and size.  Used by
 * check-history (snapshots, rollback, clones) and reusable by GC tests
 * ("every retained point reads back exactly").
 */
#ifndef HF_TEST_HISTORY_MODEL_H
#define HF_TEST_HISTORY_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "objstore.h"
#include "volume.h"

struct hm_point {
  uint64_t seq;
  uint64_t timestamp_ns;        /* from the segment header (history) */
  uint64_t size;
  uint8_t *img;                 /* size bytes */
};

struct hm_model {
  uint64_t max_size;
  uint64_t size;
  uint8_t *img;                 /* current image, max_size bytes */
  struct hm_point *pts;         /* recorded points, oldest first */
  size_t n, cap;
  uint64_t rng;
  /* Test hook, NULL for none: called by hm_grow between the grow and
   * the flush, with the head before the grow. */
  void (*after_grow) (struct hf_volume *v, uint64_t head_before);
};

/* Volume options that make each flush exactly one point. */
extern struct hf_volume_options hm_volume_options (unsigned ckpt_segments);

extern void hm_init (struct hm_model *m, uint64_t size, uint64_t max_size,
                     uint64_t seed);
/* A model whose current image is point p of another model (a clone). */
extern void hm_init_from (struct hm_model *m, const struct hm_model *src,
                          uint64_t seq, uint64_t seed);
extern void hm_free (struct hm_model *m);

/* steps random operations on v (writable, opened with
 * hm_volume_options), flushing about every flush_every steps; records
 * every new point. */
extern void hm_workload (struct hm_model *m, struct hf_volume *v,
                         unsigned steps, unsigned flush_every);
/* Grow v to new_size (the model's image grows with zeros) and record
 * the point the grow makes. */
extern void hm_grow (struct hm_model *m, struct hf_volume *v,
                     uint64_t new_size);
/* Flush v and record the new point if the head moved. */
extern void hm_flush_record (struct hm_model *m, struct hf_volume *v);
/* Record the head of v as a point whose image is the current image. */
extern void hm_record (struct hm_model *m, struct hf_volume *v);
/* Close v (its close may commit a checkpoint segment: a new point with
 * the current image) and record that point if there is one. */
extern void hm_close_record (struct hm_model *m, struct hf_volume *v,
                             struct hf_objstore *s, const char *prefix);
/* The recorded point seq, or NULL. */
extern const struct hm_point *hm_find (const struct hm_model *m,
                                       uint64_t seq);
/* Make the current image that of point seq (after a rollback). */
extern void hm_set_current (struct hm_model *m, uint64_t seq);

/* Read the whole of v and compare it with (size, img). */
extern void hm_check_volume (struct hf_volume *v, uint64_t size,
                             const uint8_t *img, const char *what);

#define HM_BY_SEQ 0x1
#define HM_BY_TIME 0x2
#define HM_BY_SNAPSHOT 0x4          /* creates snapshot "hm-SEQ" if missing */

/* Open every recorded point of the volume under prefix in s (cfg for a
 * clone's parents, may be NULL) in each way of ways and compare; also
 * checks that the recorded points are exactly the volume's points in
 * time newer than the first recorded one. */
extern void hm_check_all (struct hm_model *m, struct hf_objstore *s,
                          const char *prefix, unsigned ways);

#endif /* HF_TEST_HISTORY_MODEL_H */
