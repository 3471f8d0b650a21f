/* hyperfile: a bounded set of B+tree node addresses (segment, node
 * offset), for walks over many checkpoints that share most of their
 * nodes (lib/gc, lib/fsck): a node already visited has an identical
 * subtree below it (nodes are immutable), so the walk can skip it.
 *
 * Open addressing in a power-of-two table allocated once; when it is
 * three quarters full new addresses are no longer remembered (the walk
 * then visits shared subtrees again: slower, never wrong).  Not thread
 * safe: one walker owns it.
 */
#ifndef HF_NODESET_H
#define HF_NODESET_H

#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

struct hf_nodeset_ent {
  uint64_t seq;                 /* 0: empty slot (seqs start at 1) */
  uint32_t off;
};

struct hf_nodeset {
  struct hf_nodeset_ent *v;     /* cap slots, owned */
  size_t cap, n;
};

/* Room for about max addresses (16 bytes each).  Without memory the
 * set stays empty and remembers nothing. */
static inline void
hf_nodeset_init (struct hf_nodeset *s, size_t max)
{
  s->n = 0;
  for (s->cap = 1024; s->cap < max + max / 3; s->cap *= 2)
    ;
  s->v = calloc (s->cap, sizeof *s->v);
  if (s->v == NULL)
    s->cap = 0;
}

static inline void
hf_nodeset_clear (struct hf_nodeset *s)
{
  if (s->cap)
    memset (s->v, 0, s->cap * sizeof *s->v);
  s->n = 0;
}

static inline void
hf_nodeset_free (struct hf_nodeset *s)
{
  free (s->v);
  s->v = NULL;
  s->cap = s->n = 0;
}

/* true if (seq, off) is in the set; otherwise adds it (if there is
 * room) and returns false. */
static inline bool
hf_nodeset_seen (struct hf_nodeset *s, uint64_t seq, uint32_t off)
{
  uint64_t h;
  size_t i;

  if (s->cap == 0)
    return false;
  h = seq * 0x9e3779b97f4a7c15ull ^ (uint64_t) off * 0xc2b2ae3d27d4eb4full;
  for (i = (h ^ h >> 29) & (s->cap - 1); s->v[i].seq;
       i = (i + 1) & (s->cap - 1))
    if (s->v[i].seq == seq && s->v[i].off == off)
      return true;
  if (s->n * 4 < s->cap * 3) {
    s->v[i].seq = seq;
    s->v[i].off = off;
    s->n++;
  }
  return false;
}

#endif /* HF_NODESET_H */
