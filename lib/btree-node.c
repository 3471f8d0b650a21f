/* hyperfile: B+tree node memory (see btree-int.h; the representation
 * and locking are described at the top of btree.c): allocation, the node
 * cache (hash + LRU, under t->lock), decoding with verification,
 * encoding, and getting / putting nodes for the operations.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "btree.h"
#include "cleanup.h"
#include "crc32c.h"
#include "format.h"
#include "log.h"

#include "btree-int.h"

/* ---- Node allocation ---- */

struct hf_btree_node *
hf_btree_node_alloc (unsigned level)
{
  size_t esz = level == 0 ? sizeof (struct hf_btree_lent)
    : sizeof (struct hf_btree_bent);
  struct hf_btree_node *n;

  n = calloc (1, sizeof *n + esz * HF_BTREE_MAX);
  if (n == NULL)
    return NULL;
  n->level = level;
  if (level == 0)
    n->leaf = (struct hf_btree_lent *) (n + 1);
  else
    n->br = (struct hf_btree_bent *) (n + 1);
  return n;
}

struct hf_btree_node *
hf_btree_node_new_dirty (struct hf_btree *t, unsigned level)
{
  struct hf_btree_node *n = hf_btree_node_alloc (level);

  if (n) {
    n->dirty = true;
    t->ndirty++;
  }
  return n;
}

/* Free a dirty node and every dirty node below it. */
void
hf_btree_free_dirty (struct hf_btree *t, struct hf_btree_node *n)
{
  uint32_t i;

  assert (n->dirty);
  if (n->level > 0)
    for (i = 0; i < n->count; i++)
      if (n->br[i].child.dirty)
        hf_btree_free_dirty (t, n->br[i].child.dirty);
  t->ndirty--;
  free (n);
}

/* ---- Node cache (call with t->lock held) ---- */

static size_t
hf_btree_hash (const struct hf_btree *t, uint64_t seq, uint32_t off)
{
  uint64_t h = seq * 0x9e3779b97f4a7c15ull;

  h ^= (uint64_t) off * 0xc2b2ae3d27d4eb4full;
  h ^= h >> 29;
  return (size_t) h & (t->nbuckets - 1);
}

static struct hf_btree_node *
hf_btree_hash_find (struct hf_btree *t, uint64_t seq, uint32_t off)
{
  struct hf_btree_node *n;

  for (n = t->buckets[hf_btree_hash (t, seq, off)]; n; n = n->hnext)
    if (n->seq == seq && n->off == off)
      return n;
  return NULL;
}

static void
hf_btree_hash_remove (struct hf_btree *t, struct hf_btree_node *n)
{
  struct hf_btree_node **pp = &t->buckets[hf_btree_hash (t, n->seq, n->off)];

  while (*pp != n)
    pp = &(*pp)->hnext;
  *pp = n->hnext;
}

static void
hf_btree_lru_unlink (struct hf_btree *t, struct hf_btree_node *n)
{
  assert (n->in_lru);
  if (n->lprev)
    n->lprev->lnext = n->lnext;
  else
    t->lru_head = n->lnext;
  if (n->lnext)
    n->lnext->lprev = n->lprev;
  else
    t->lru_tail = n->lprev;
  n->lprev = n->lnext = NULL;
  n->in_lru = false;
}

static void
hf_btree_lru_push (struct hf_btree *t, struct hf_btree_node *n)
{
  assert (!n->in_lru);
  n->lprev = NULL;
  n->lnext = t->lru_head;
  if (t->lru_head)
    t->lru_head->lprev = n;
  else
    t->lru_tail = n;
  t->lru_head = n;
  n->in_lru = true;
}

/* Evict unpinned clean nodes until the cache is within its limit. */
void
hf_btree_evict (struct hf_btree *t)
{
  while (t->ncached > t->cache_max && t->lru_tail) {
    struct hf_btree_node *n = t->lru_tail;

    hf_btree_lru_unlink (t, n);
    hf_btree_hash_remove (t, n);
    t->ncached--;
    free (n);
  }
}

/* Insert clean node n (unpinned if refs == 0) into the cache, replacing
 * an unpinned node with the same address (only possible when the caller
 * reuses addresses after a failed commit). */
void
hf_btree_cache_insert (struct hf_btree *t, struct hf_btree_node *n)
{
  struct hf_btree_node *old = hf_btree_hash_find (t, n->seq, n->off);
  size_t b;

  if (old) {
    assert (old->refs == 0);
    hf_btree_lru_unlink (t, old);
    hf_btree_hash_remove (t, old);
    t->ncached--;
    free (old);
  }
  b = hf_btree_hash (t, n->seq, n->off);
  n->hnext = t->buckets[b];
  t->buckets[b] = n;
  t->ncached++;
  if (n->refs == 0)
    hf_btree_lru_push (t, n);
}


/* ---- Decoding and verification ---- */

static int
hf_btree_bad (const struct hf_disk_node_ptr *p, const char *what)
{
  hf_error ("btree: segment %" PRIu64 " node offset %" PRIu64
            " (node %" PRIu32 "): %s",
            p->np_seq, (uint64_t) p->np_off * HF_NODE_SIZE, p->np_off, what);
  return EBADMSG;
}

/* Check a node (decoded or cached) against what its referrer expects. */
static int
hf_btree_check_expect (const struct hf_btree_node *n,
                       const struct hf_disk_node_ptr *p,
                       const struct hf_btree_expect *e)
{
  if (n->level != e->level)
    return hf_btree_bad (p, "level differs from the parent's expectation");
  if (n->count == 0)
    return hf_btree_bad (p, "empty node");
  if (e->exact ? hf_btree_min_key (n) != e->lo : hf_btree_min_key (n) < e->lo)
    return hf_btree_bad (p, "first key differs from the parent's entry");
  if (hf_btree_last_key (n) > e->hi)
    return hf_btree_bad (p, "key beyond the parent's next entry");
  return 0;
}

/* Verify the raw node in buf read from *p and decode it into a new
 * clean node (*out, caller owns). */
int
hf_btree_decode (const struct hf_disk_node_ptr *p, const uint8_t *buf,
                 const struct hf_btree_expect *e, struct hf_btree_node **out)
{
  uint8_t tmp[HF_BN_HDR_SIZE];
  struct hf_btree_node *n;
  uint32_t crc, count, i;
  uint16_t level, flags;
  const uint8_t *ent;
  int r;

  if (hf_le32 (buf + offsetof (struct hf_disk_node_hdr, bn_magic))
      != HF_BN_MAGIC)
    return hf_btree_bad (p, "bad magic");
  if (hf_le16 (buf + offsetof (struct hf_disk_node_hdr, bn_version))
      != HF_BN_VERSION)
    return hf_btree_bad (p, "unsupported version");
  if (hf_le16 (buf + offsetof (struct hf_disk_node_hdr, bn_hdr_size))
      != HF_BN_HDR_SIZE)
    return hf_btree_bad (p, "bad header size");
  crc = hf_le32 (buf + offsetof (struct hf_disk_node_hdr, bn_crc));
  memcpy (tmp, buf, HF_BN_HDR_SIZE);
  hf_put_le32 (tmp + offsetof (struct hf_disk_node_hdr, bn_crc), 0);
  if (hf_crc32c (hf_crc32c (0, tmp, HF_BN_HDR_SIZE), buf + HF_BN_HDR_SIZE,
                 HF_NODE_SIZE - HF_BN_HDR_SIZE) != crc)
    return hf_btree_bad (p, "CRC mismatch");
  if (crc != p->np_crc)
    return hf_btree_bad (p, "CRC differs from the parent's pointer");
  if (hf_le64 (buf + offsetof (struct hf_disk_node_hdr, bn_seq)) != p->np_seq
      || hf_le32 (buf + offsetof (struct hf_disk_node_hdr, bn_off))
      != p->np_off)
    return hf_btree_bad (p, "self address differs (misdirected node)");
  level = hf_le16 (buf + offsetof (struct hf_disk_node_hdr, bn_level));
  flags = hf_le16 (buf + offsetof (struct hf_disk_node_hdr, bn_flags));
  count = hf_le32 (buf + offsetof (struct hf_disk_node_hdr, bn_count));
  if (level != e->level)
    return hf_btree_bad (p, "level differs from the parent's expectation");
  if (!!(flags & HF_BN_LEAF) != (level == 0))
    return hf_btree_bad (p, "leaf flag inconsistent with level");
  if (count > HF_BTREE_MAX)
    return hf_btree_bad (p, "too many entries");
  if (count == 0)
    return hf_btree_bad (p, "empty node");

  n = hf_btree_node_alloc (level);
  if (n == NULL)
    return ENOMEM;
  n->seq = p->np_seq;
  n->off = p->np_off;
  n->crc = crc;
  n->count = count;
  for (i = 0, ent = buf + HF_BN_HDR_SIZE; i < count;
       i++, ent += HF_BN_ENT_SIZE) {
    uint64_t lba = hf_le64 (ent);

    if (i > 0 && lba <= (level == 0 ? n->leaf[i - 1].lba : n->br[i - 1].lba)) {
      free (n);
      return hf_btree_bad (p, "keys not strictly increasing");
    }
    if (level == 0) {
      n->leaf[i].lba = lba;
      n->leaf[i].m.seq = hf_le64 (ent + 8);
      n->leaf[i].m.blk = hf_le32 (ent + 16);
      n->leaf[i].m.crc = hf_le32 (ent + 20);
    }
    else {
      n->br[i].lba = lba;
      n->br[i].child.dirty = NULL;
      n->br[i].child.ptr.np_seq = hf_le64 (ent + 8);
      n->br[i].child.ptr.np_off = hf_le32 (ent + 16);
      n->br[i].child.ptr.np_crc = hf_le32 (ent + 20);
    }
  }
  r = hf_btree_check_expect (n, p, e);
  if (r) {
    free (n);
    return r;
  }
  *out = n;
  return 0;
}

int
hf_btree_verify_node (uint64_t seq, uint32_t off, const void *buf,
                      unsigned *level)
{
  const uint8_t *b = buf;
  struct hf_disk_node_ptr p = { seq, off,
    hf_le32 (b + offsetof (struct hf_disk_node_hdr, bn_crc)) };
  struct hf_btree_expect e = {
    .level = hf_le16 (b + offsetof (struct hf_disk_node_hdr, bn_level)),
    .lo = 0, .hi = UINT64_MAX, .exact = false };
  struct hf_btree_node *n;
  int r = hf_btree_decode (&p, b, &e, &n);

  if (r == 0) {
    *level = n->level;
    free (n);
  }
  return r;
}

/* Serialise dirty node n into buf as (seq, off) and return its CRC. */
uint32_t
hf_btree_encode (const struct hf_btree_node *n, uint64_t seq, uint32_t off,
                 uint8_t *buf)
{
  uint8_t *ent;
  uint32_t i, crc;

  memset (buf, 0, HF_NODE_SIZE);
  hf_put_le32 (buf + offsetof (struct hf_disk_node_hdr, bn_magic),
               HF_BN_MAGIC);
  hf_put_le16 (buf + offsetof (struct hf_disk_node_hdr, bn_version),
               HF_BN_VERSION);
  hf_put_le16 (buf + offsetof (struct hf_disk_node_hdr, bn_hdr_size),
               HF_BN_HDR_SIZE);
  hf_put_le16 (buf + offsetof (struct hf_disk_node_hdr, bn_flags),
               n->level == 0 ? HF_BN_LEAF : 0);
  hf_put_le16 (buf + offsetof (struct hf_disk_node_hdr, bn_level), n->level);
  hf_put_le32 (buf + offsetof (struct hf_disk_node_hdr, bn_count), n->count);
  hf_put_le64 (buf + offsetof (struct hf_disk_node_hdr, bn_seq), seq);
  hf_put_le32 (buf + offsetof (struct hf_disk_node_hdr, bn_off), off);
  for (i = 0, ent = buf + HF_BN_HDR_SIZE; i < n->count;
       i++, ent += HF_BN_ENT_SIZE) {
    if (n->level == 0) {
      hf_put_le64 (ent, n->leaf[i].lba);
      hf_put_le64 (ent + 8, n->leaf[i].m.seq);
      hf_put_le32 (ent + 16, n->leaf[i].m.blk);
      hf_put_le32 (ent + 20, n->leaf[i].m.crc);
    }
    else {
      assert (n->br[i].child.dirty == NULL);
      hf_put_le64 (ent, n->br[i].lba);
      hf_put_le64 (ent + 8, n->br[i].child.ptr.np_seq);
      hf_put_le32 (ent + 16, n->br[i].child.ptr.np_off);
      hf_put_le32 (ent + 20, n->br[i].child.ptr.np_crc);
    }
  }
  crc = hf_crc32c (0, buf, HF_NODE_SIZE);
  hf_put_le32 (buf + offsetof (struct hf_disk_node_hdr, bn_crc), crc);
  return crc;
}

/* ---- Getting nodes ---- */


/* Make the node referenced by ref available: a dirty node directly, a
 * clean one pinned from the cache (read and verified on a miss, without
 * holding the lock).  Release with hf_btree_put. */
int
hf_btree_get (struct hf_btree *t, const struct hf_btree_ref *ref,
              const struct hf_btree_expect *e, struct hf_btree_node **out)
{
  const struct hf_disk_node_ptr *p = &ref->ptr;
  struct hf_btree_node *n, *other;
  uint8_t buf[HF_NODE_SIZE];
  int r;

  if (ref->dirty) {
    *out = ref->dirty;
    return 0;
  }

  pthread_mutex_lock (&t->lock);
  n = hf_btree_hash_find (t, p->np_seq, p->np_off);
  if (n) {
    if (n->refs++ == 0)
      hf_btree_lru_unlink (t, n);
    t->node_hits++;
  }
  pthread_mutex_unlock (&t->lock);
  if (n) {
    if (n->crc != p->np_crc)
      r = hf_btree_bad (p, "CRC differs from the parent's pointer");
    else
      r = hf_btree_check_expect (n, p, e);
    if (r) {
      hf_btree_put (t, n);
      return r;
    }
    *out = n;
    return 0;
  }

  if (t->noread) {
    /* The caller holds its exclusive lock: no store request here. */
    t->missed = true;
    t->miss_ptr = *p;
    t->miss_e = *e;
    return EAGAIN;
  }
  /* Miss: read without the lock. */
  r = t->rd (t->rd_opaque, p, buf);
  pthread_mutex_lock (&t->lock);
  t->node_reads++;
  pthread_mutex_unlock (&t->lock);
  if (r) {
    hf_error ("btree: segment %" PRIu64 " node offset %" PRIu64
              ": read: %s", p->np_seq, (uint64_t) p->np_off * HF_NODE_SIZE,
              strerror (r));
    return r;
  }
  r = hf_btree_decode (p, buf, e, &n);
  if (r)
    return r;

  pthread_mutex_lock (&t->lock);
  other = hf_btree_hash_find (t, p->np_seq, p->np_off);
  if (other) {
    /* Another thread read it meanwhile: use the cached copy. */
    free (n);
    n = other;
    if (n->refs++ == 0)
      hf_btree_lru_unlink (t, n);
    pthread_mutex_unlock (&t->lock);
    if (n->crc != p->np_crc) {
      hf_btree_put (t, n);
      return hf_btree_bad (p, "CRC differs from the parent's pointer");
    }
    *out = n;
    return 0;
  }
  n->refs = 1;
  hf_btree_cache_insert (t, n);
  hf_btree_evict (t);
  pthread_mutex_unlock (&t->lock);
  *out = n;
  return 0;
}

void
hf_btree_put (struct hf_btree *t, struct hf_btree_node *n)
{
  if (n->dirty)
    return;
  pthread_mutex_lock (&t->lock);
  assert (n->refs > 0);
  if (--n->refs == 0) {
    hf_btree_lru_push (t, n);
    hf_btree_evict (t);
  }
  pthread_mutex_unlock (&t->lock);
}

/* Index of the child whose subtree would hold key: the last entry with
 * lba <= key, or 0. */
