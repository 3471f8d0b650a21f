/* hyperfile: sorted extent run lists (see runs.h).  A pure data
 * structure: no locks (the caller serialises), no I/O. */
#include <config.h>

#include <errno.h>
#include <stdlib.h>

#include "runs.h"
void
hf_runs_free (struct hf_runs *r)
{
  free (r->v);
  r->v = NULL;
  r->n = r->cap = 0;
}

int
hf_runs_room (struct hf_runs *r)
{
  size_t nc;
  struct hf_run *nv;

  if (r->n < r->cap)
    return 0;
  nc = r->cap ? r->cap * 2 : 16;
  nv = realloc (r->v, nc * sizeof *nv);
  if (nv == NULL)
    return ENOMEM;
  r->v = nv;
  r->cap = nc;
  return 0;
}

/* Append x, coalescing with the last run when contiguous.  any_data:
 * data runs coalesce whatever their location (extents reporting). */
int
hf_runs_push (struct hf_runs *r, const struct hf_run *x,
                  bool any_data)
{
  if (x->n == 0)
    return 0;
  if (r->n > 0) {
    struct hf_run *l = &r->v[r->n - 1];
    if (l->data == x->data && l->lba + l->n == x->lba &&
        (!x->data || any_data ||
         (l->seq == x->seq && l->blk + l->n == x->blk &&
          l->crc + l->n == x->crc && l->n + x->n <= UINT32_MAX))) {
      l->n += x->n;
      return 0;
    }
  }
  if (hf_runs_room (r))
    return ENOMEM;
  r->v[r->n++] = *x;
  return 0;
}

struct hf_run
hf_run_piece (const struct hf_run *o, uint64_t from, uint64_t to)
{
  struct hf_run p = *o;
  uint64_t k = from - o->lba;

  p.lba = from;
  p.n = to - from;
  if (o->data) {
    p.blk = o->blk + (uint32_t) k;
    p.crc = o->crc ? o->crc + k : NULL;
  }
  return p;
}

/* *out = old overlaid with nw (nw wins where they overlap).  Both are
 * sorted and disjoint; O(n + m). */
int
hf_runs_overlay (const struct hf_run *old, size_t on,
                     const struct hf_run *nw, size_t nn, bool any_data,
                     struct hf_runs *out)
{
  size_t i, j = 0;
  struct hf_run p;
  uint64_t cov = 0;             /* end of the last new run pushed */

  out->n = 0;
  for (i = 0; i < on; i++) {
    const struct hf_run *o = &old[i];
    uint64_t pos = o->lba > cov ? o->lba : cov, end = o->lba + o->n;

    while (pos < end) {
      uint64_t nxt;
      while (j < nn && nw[j].lba <= pos) {
        if (hf_runs_push (out, &nw[j], any_data))
          return ENOMEM;
        cov = nw[j].lba + nw[j].n;
        if (cov > pos)
          pos = cov;
        j++;
      }
      if (pos >= end)
        break;
      nxt = j < nn && nw[j].lba < end ? nw[j].lba : end;
      p = hf_run_piece (o, pos, nxt);
      if (hf_runs_push (out, &p, any_data))
        return ENOMEM;
      pos = nxt;
    }
  }
  for (; j < nn; j++)
    if (hf_runs_push (out, &nw[j], any_data))
      return ENOMEM;
  return 0;
}

/* Index of the run containing lba, or -1. */
ssize_t
hf_runs_find (const struct hf_runs *r, uint64_t lba)
{
  size_t lo = hf_runs_lower_bound (r, lba);

  if (lo < r->n && r->v[lo].lba <= lba)
    return (ssize_t) lo;
  return -1;
}

size_t
hf_runs_lower_bound (const struct hf_runs *r, uint64_t lba)
{
  size_t lo = 0, hi = r->n;

  while (lo < hi) {
    size_t m = lo + (hi - lo) / 2;
    if (r->v[m].lba + r->v[m].n <= lba)
      lo = m + 1;
    else
      hi = m;
  }
  return lo;
}

/* Overlay r (in place) with nw, building into spare's storage. */
int
hf_runs_apply_spare (struct hf_runs *r, struct hf_runs *spare,
                     const struct hf_run *nw, size_t nn, bool any_data)
{
  struct hf_runs out = *spare;
  int e;

  if (nn == 0)
    return 0;
  out.n = 0;
  e = hf_runs_overlay (r->v, r->n, nw, nn, any_data, &out);
  if (e) {
    out.n = 0;
    *spare = out;
    return e;
  }
  *spare = *r;
  spare->n = 0;
  *r = out;
  return 0;
}

/* Overlay r (in place) with nw. */
int
hf_runs_apply (struct hf_runs *r, const struct hf_run *nw,
                   size_t nn, bool any_data)
{
  struct hf_runs spare = { 0 };
  int e = hf_runs_apply_spare (r, &spare, nw, nn, any_data);

  hf_runs_free (&spare);
  return e;
}

/* The runs a segment's extent table describes, in table order resolved
 * (later extents win).  Consecutive sorted, disjoint extents are
 * overlaid as one batch, so the usual table (zero runs, then data runs)
 * costs two linear passes. */
int
hf_runs_of_segment (const struct hf_seg_meta *m, uint32_t bs,
                 struct hf_runs *out)
{
  struct hf_runs batch = { 0 };
  uint64_t di = 0, blk0 = m->h.data_off / bs;
  uint32_t i = 0;
  int e = 0;

  out->n = 0;
  while (i < m->h.n_ext) {
    batch.n = 0;
    do {
      const struct hf_seg_ext *x = &m->ext[i];
      struct hf_run r = { .lba = x->lba, .n = x->nblocks };
      if (batch.n > 0) {
        const struct hf_run *l = &batch.v[batch.n - 1];
        if (l->lba + l->n > x->lba)
          break;
      }
      if (x->flags == HF_EXT_DATA) {
        r.data = true;
        r.seq = m->h.seq;
        r.blk = (uint32_t) (blk0 + di);
        r.crc = &m->crcs[di];
        di += x->nblocks;
      }
      e = hf_runs_push (&batch, &r, false);
      if (e)
        goto out;
      i++;
    } while (i < m->h.n_ext);
    e = hf_runs_apply (out, batch.v, batch.n, false);
    if (e)
      goto out;
  }
 out:
  hf_runs_free (&batch);
  return e;
}

