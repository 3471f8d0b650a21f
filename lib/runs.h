/* hyperfile: sorted extent run lists.
 *
 * A run maps the logical blocks [lba, lba + n) either to a hole (data
 * false) or to the physical blocks blk .. blk + n - 1 of segment seq,
 * whose CRCs are crc[0 .. n-1] (borrowed from a segment's CRC table,
 * which must outlive the run).  A list is sorted by lba and its runs
 * are disjoint.  The volume keeps its delta (what committed segments
 * changed since the last checkpoint) and every write buffer's zero
 * runs as lists; the extents callback builds them on the fly.
 *
 * A pure data structure: no locks, no I/O.  Callers serialise access.
 * Functions return 0 or ENOMEM; on ENOMEM the output is unspecified but
 * still freeable with hf_runs_free.
 */
#ifndef HF_RUNS_H
#define HF_RUNS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "segment.h"

struct hf_run {
  uint64_t lba;
  uint64_t n;
  uint64_t seq;                 /* data runs: the segment */
  const uint32_t *crc;          /* data runs: n CRCs (borrowed) */
  uint32_t blk;                 /* data runs: first block in the segment */
  bool data;
};

struct hf_runs {
  struct hf_run *v;             /* owned; n used of cap */
  size_t n, cap;
};

/* Make room for one more run in r. */
extern int hf_runs_room (struct hf_runs *r);

/* Free r's array and leave r empty (and reusable). */
extern void hf_runs_free (struct hf_runs *r);

/* Append x (which must start at or after the end of the last run),
 * coalescing with the last run when contiguous.  any_data: data runs
 * coalesce whatever their location (extents reporting). */
extern int hf_runs_push (struct hf_runs *r, const struct hf_run *x,
                         bool any_data);

/* The part [from, to) of run o (o->lba <= from < to <= o->lba + o->n). */
extern struct hf_run hf_run_piece (const struct hf_run *o, uint64_t from,
                                   uint64_t to);

/* *out = old overlaid with nw (nw wins where they overlap).  Both are
 * sorted and disjoint; O(n + m).  out is emptied first; it must not be
 * old. */
extern int hf_runs_overlay (const struct hf_run *old, size_t on,
                            const struct hf_run *nw, size_t nn,
                            bool any_data, struct hf_runs *out);

/* Overlay r in place with nw (sorted, disjoint). */
extern int hf_runs_apply (struct hf_runs *r, const struct hf_run *nw,
                          size_t nn, bool any_data);

/* The same, building the result in spare's storage (a list kept for
 * this; its runs are dropped) and leaving r's old storage in spare for
 * the next call.  A list rebuilt at every call (the volume's delta, at
 * every commit) then goes back and forth between two arrays whose
 * pages are in place, instead of a new one, a page fault per 4 KiB of
 * it, each time.  On failure r is as it was. */
extern int hf_runs_apply_spare (struct hf_runs *r, struct hf_runs *spare,
                                const struct hf_run *nw, size_t nn,
                                bool any_data);

/* Index of the run containing lba, or -1. */
extern ssize_t hf_runs_find (const struct hf_runs *r, uint64_t lba);

/* Index of the first run that contains lba or starts after it (r->n if
 * none). */
extern size_t hf_runs_lower_bound (const struct hf_runs *r, uint64_t lba);

/* The runs segment m's extent table describes (later extents win), its
 * data blocks addressed in the segment's layout with block size bs.
 * The data runs borrow m->crcs. */
extern int hf_runs_of_segment (const struct hf_seg_meta *m, uint32_t bs,
                               struct hf_runs *out);

#endif /* HF_RUNS_H */
