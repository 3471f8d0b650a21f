/* hyperfile: the write buffer (see wbuf.h): lba -> slot hash, slots,
 * zero runs.  No locks here (the volume holds v->lock), no I/O. */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "clock.h"
#include "wbuf.h"

void
hf_wbuf_free (struct hf_wbuf *b)
{
  if (b) {
    free (b->keys);
    free (b->vals);
    free (b->slots);
    free (b->crcs);
    hf_runs_free (&b->zeros);
    free (b);
  }
}

static size_t
hf_wbuf_hash (uint64_t lba, size_t cap)
{
  return (size_t) ((lba * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

/* Position of lba in the hash, or SIZE_MAX. */
size_t
hf_wbuf_find (const struct hf_wbuf *b, uint64_t lba)
{
  size_t i;

  if (b->cap == 0)
    return SIZE_MAX;
  for (i = hf_wbuf_hash (lba, b->cap);; i = (i + 1) & (b->cap - 1)) {
    if (b->keys[i] == lba + 1)
      return i;
    if (b->keys[i] == 0)
      return SIZE_MAX;
  }
}

static int
hf_wbuf_grow (struct hf_wbuf *b)
{
  size_t nc = b->cap ? b->cap * 2 : 1024, i;
  uint64_t *nk = calloc (nc, sizeof *nk);
  uint32_t *nv = malloc (nc * sizeof *nv);

  if (nk == NULL || nv == NULL) {
    free (nk);
    free (nv);
    return ENOMEM;
  }
  for (i = 0; i < b->cap; i++)
    if (b->keys[i]) {
      size_t j = hf_wbuf_hash (b->keys[i] - 1, nc);
      while (nk[j])
        j = (j + 1) & (nc - 1);
      nk[j] = b->keys[i];
      nv[j] = b->vals[i];
    }
  free (b->keys);
  free (b->vals);
  b->keys = nk;
  b->vals = nv;
  b->cap = nc;
  return 0;
}

/* Position of lba in the hash, inserted (value HF_WBUF_NO_SLOT) if new. */
static int
hf_wbuf_slot_of (struct hf_wbuf *b, uint64_t lba, size_t *pos)
{
  size_t i;

  if ((b->used + 1) * 2 > b->cap && hf_wbuf_grow (b))
    return ENOMEM;
  for (i = hf_wbuf_hash (lba, b->cap);; i = (i + 1) & (b->cap - 1)) {
    if (b->keys[i] == lba + 1)
      break;
    if (b->keys[i] == 0) {
      b->keys[i] = lba + 1;
      b->vals[i] = HF_WBUF_NO_SLOT;
      b->used++;
      break;
    }
  }
  *pos = i;
  return 0;
}

/* Is lba inside a zero run of b? */
static bool
hf_wbuf_in_zero (const struct hf_wbuf *b, uint64_t lba)
{
  return hf_runs_find (&b->zeros, lba) >= 0;
}

/* Add the zero run [lba, lba + n) to b->zeros, merging neighbours. */
static int
hf_wbuf_add_zero (struct hf_wbuf *b, uint64_t lba, uint64_t n)
{
  struct hf_runs *z = &b->zeros;
  size_t lo = 0, hi = z->n, first, last;
  uint64_t s = lba, e = lba + n;

  /* first run with end >= lba */
  while (lo < hi) {
    size_t m = lo + (hi - lo) / 2;
    if (z->v[m].lba + z->v[m].n < lba)
      lo = m + 1;
    else
      hi = m;
  }
  first = lo;
  last = first;
  while (last < z->n && z->v[last].lba <= e) {
    if (z->v[last].lba < s)
      s = z->v[last].lba;
    if (z->v[last].lba + z->v[last].n > e)
      e = z->v[last].lba + z->v[last].n;
    last++;
  }
  if (last == first) {            /* insert at first */
    struct hf_run r = { .lba = s, .n = e - s };
    if (hf_runs_room (z))
      return ENOMEM;
    memmove (&z->v[first + 1], &z->v[first],
             (z->n - first) * sizeof *z->v);
    z->v[first] = r;
    z->n++;
  }
  else {
    z->v[first].lba = s;
    z->v[first].n = e - s;
    memmove (&z->v[first + 1], &z->v[last], (z->n - last) * sizeof *z->v);
    z->n -= last - first - 1;
  }
  return 0;
}

/* Look lba up in buffer b: the slot's bytes, or NULL with *zero set if
 * zeroed, or NULL with *zero clear if b does not know it. */
const uint8_t *
hf_wbuf_lookup (const struct hf_wbuf *b, uint32_t bs, uint64_t lba,
                bool *zero)
{
  size_t i = hf_wbuf_find (b, lba);

  *zero = false;
  if (i != SIZE_MAX && b->vals[i] != HF_WBUF_NO_SLOT)
    return b->rdata + (size_t) b->vals[i] * bs;
  if ((i != SIZE_MAX) || hf_wbuf_in_zero (b, lba))
    *zero = true;
  return NULL;
}

void
hf_wbuf_touch (struct hf_wbuf *b)
{
  if (!b->changed) {
    b->changed = true;
    b->first_us = hf_clock_mono_us ();
  }
}

int
hf_wbuf_put (struct hf_wbuf *b, uint32_t bs, uint64_t lba,
             const uint8_t *data, uint32_t crc, struct hf_wbuf_spare *spare,
             bool *added)
{
  size_t pos;
  int r;

  *added = false;
  r = hf_wbuf_slot_of (b, lba, &pos);
  if (r)
    return r;
  if (b->vals[pos] == HF_WBUF_NO_SLOT) {
    if (b->n_slots == b->cap_slots) {
      uint32_t nc = b->cap_slots ? b->cap_slots * 2 : 64;
      uint8_t *ns;
      uint32_t *nk;
      bool from_spare = false;

      if (b->cap_slots == 0 && spare && spare->p && spare->len / bs >= nc) {
        nc = (uint32_t) (spare->len / bs);
        from_spare = true;
      }
      /* The CRCs first: a failure leaves the slots as they were. */
      nk = realloc (b->crcs, (size_t) nc * sizeof *nk);
      if (nk == NULL)
        return ENOMEM;
      b->crcs = nk;
      if (from_spare) {
        ns = spare->p;
        spare->p = NULL;
      }
      else
        ns = realloc (b->slots, (size_t) nc * bs);
      if (ns == NULL)
        return ENOMEM;
      b->slots = ns;
      b->rdata = ns;
      b->cap_slots = nc;
    }
    b->vals[pos] = b->n_slots++;
    b->bytes += bs;
    *added = true;
  }
  memcpy (b->slots + (size_t) b->vals[pos] * bs, data, bs);
  b->crcs[b->vals[pos]] = crc;
  hf_wbuf_touch (b);
  return 0;
}

int
hf_wbuf_zero (struct hf_wbuf *b, uint64_t lba, uint64_t n)
{
  size_t i;

  if (n < b->cap) {
    uint64_t k;
    for (k = 0; k < n; k++) {
      i = hf_wbuf_find (b, lba + k);
      if (i != SIZE_MAX)
        b->vals[i] = HF_WBUF_NO_SLOT;
    }
  }
  else
    for (i = 0; i < b->cap; i++)
      if (b->keys[i] && b->keys[i] - 1 >= lba && b->keys[i] - 1 - lba < n)
        b->vals[i] = HF_WBUF_NO_SLOT;
  hf_wbuf_touch (b);
  return hf_wbuf_add_zero (b, lba, n);
}

static int
hf_wbuf_cmp_ent (const void *x, const void *y)
{
  const struct hf_wbuf_ent *p = x, *q = y;

  return p->lba < q->lba ? -1 : p->lba > q->lba;
}

int
hf_wbuf_sorted (const struct hf_wbuf *b, struct hf_wbuf_ent **out, size_t *n)
{
  struct hf_wbuf_ent *ents = malloc ((b->used ? b->used : 1) * sizeof *ents);
  size_t i, k = 0;

  if (ents == NULL)
    return ENOMEM;
  for (i = 0; i < b->cap; i++)
    if (b->keys[i] && b->vals[i] != HF_WBUF_NO_SLOT) {
      ents[k].lba = b->keys[i] - 1;
      ents[k].slot = b->vals[i];
      ents[k].crc = b->crcs[b->vals[i]];
      ents[k].hpos = i;
      k++;
    }
  qsort (ents, k, sizeof *ents, hf_wbuf_cmp_ent);
  *out = ents;
  *n = k;
  return 0;
}

uint8_t *
hf_wbuf_remap (struct hf_wbuf *b, const struct hf_wbuf_ent *ents, size_t n,
               const uint8_t *rdata)
{
  uint8_t *old = b->slots;
  size_t i;

  for (i = 0; i < n; i++)
    b->vals[ents[i].hpos] = (uint32_t) i;
  b->slots = NULL;
  free (b->crcs);
  b->crcs = NULL;
  b->rdata = rdata;
  return old;
}

static int
hf_wbuf_cmp_u64 (const void *x, const void *y)
{
  uint64_t p = *(const uint64_t *) x, q = *(const uint64_t *) y;

  return p < q ? -1 : p > q;
}

/* Runs of buffer b clipped to [a, e), appended (overlaid) onto acc. */
int
hf_wbuf_extent_runs (const struct hf_wbuf *b, uint64_t a, uint64_t e,
                     struct hf_runs *acc)
{
  struct hf_runs z = { 0 }, d = { 0 };
  CLEANUP_FREE uint64_t *lbas = NULL;
  size_t i, n = 0;
  int r = 0;

  /* Zero runs first (older within the buffer than its data). */
  for (i = hf_runs_lower_bound (&b->zeros, a); i < b->zeros.n && r == 0; i++) {
    uint64_t s = b->zeros.v[i].lba, t = s + b->zeros.v[i].n;
    struct hf_run x = { .data = false };
    if (t <= a)
      continue;
    if (s >= e)
      break;
    x.lba = s < a ? a : s;
    x.n = (t > e ? e : t) - x.lba;
    r = hf_runs_push (&z, &x, true);
  }
  if (r == 0 && b->cap) {
    lbas = malloc (b->cap * sizeof *lbas);
    if (lbas == NULL)
      r = ENOMEM;
    for (i = 0; r == 0 && i < b->cap; i++)
      if (b->keys[i] && b->vals[i] != HF_WBUF_NO_SLOT &&
          b->keys[i] - 1 >= a && b->keys[i] - 1 < e)
        lbas[n++] = b->keys[i] - 1;
  }
  if (r == 0 && n) {
    qsort (lbas, n, sizeof *lbas, hf_wbuf_cmp_u64);
    for (i = 0; i < n && r == 0; i++) {
      struct hf_run x = { .lba = lbas[i], .n = 1, .data = true };
      r = hf_runs_push (&d, &x, true);
    }
  }
  if (r == 0)
    r = hf_runs_apply (acc, z.v, z.n, true);
  if (r == 0)
    r = hf_runs_apply (acc, d.v, d.n, true);
  hf_runs_free (&z);
  hf_runs_free (&d);
  return r;
}
