/* hyperfile: the B+tree's internals, shared by btree-node.c (node memory:
 * allocation, the node cache, decoding, encoding, getting and putting
 * nodes) and btree.c (the operations).  Not a public header: btree.h is
 * the contract; btree.c's opening comment describes the representation,
 * copy-on-write and the locking.
 */
#ifndef HF_BTREE_INT_H
#define HF_BTREE_INT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "btree.h"
#include "format.h"

#define HF_BTREE_MAX HF_BN_MAX_ENTS
#define HF_BTREE_MIN_CACHE 16
#define HF_BTREE_MAX_LEVEL 32   /* far more than 2^64 keys need */
#define HF_BTREE_STOP (-1)      /* internal: iterate callback said stop */

/* Reference to a child (or the root): dirty != NULL means the child is a
 * dirty node in memory; otherwise ptr names a clean node on disk. */
struct hf_btree_ref {
  struct hf_btree_node *dirty;
  struct hf_disk_node_ptr ptr;
};

struct hf_btree_lent {          /* leaf entry */
  uint64_t lba;
  struct hf_bmap m;
};

struct hf_btree_bent {          /* branch entry */
  uint64_t lba;
  struct hf_btree_ref child;
};

struct hf_btree_node {
  /* Cache linkage, clean nodes only, protected by hf_btree.lock. */
  struct hf_btree_node *hnext;          /* hash chain */
  struct hf_btree_node *lprev, *lnext;  /* LRU, only when refs == 0 */
  unsigned refs;                        /* pins by readers */
  bool in_lru;

  /* Constant while the node is clean (changed only by checkpoint,
   * which is exclusive). */
  bool dirty;
  uint16_t level;
  uint64_t seq;                 /* clean: address and CRC */
  uint32_t off;
  uint32_t crc;

  /* Entries: changed only while dirty. */
  uint32_t count;
  union {
    struct hf_btree_lent *leaf; /* level 0 */
    struct hf_btree_bent *br;   /* level > 0 */
  };
};

/* What the referrer expects of a node. */
struct hf_btree_expect {
  unsigned level;
  uint64_t lo;          /* smallest key allowed */
  uint64_t hi;          /* largest key allowed */
  bool exact;           /* the smallest key must equal lo (a child) */
};

struct hf_btree {
  hf_btree_read_fn rd;
  void *rd_opaque;
  size_t cache_max;

  /* The root and counters below are read by lookups and changed only by
   * mutations (exclusive by contract), so they need no lock. */
  bool empty;
  uint16_t level;
  struct hf_btree_ref root;
  uint64_t entries;
  size_t ndirty;

  /* Spare nodes for the splits of one insert, allocated before anything
   * changes (so an insert either completes or changes nothing) and kept
   * between inserts.  Mutations only. */
  struct hf_btree_node *spare_leaf;
  struct hf_btree_node *spare_br[HF_BTREE_MAX_LEVEL + 1];
  unsigned nspare_br;

  /* No-read mode (hf_btree_set_noread): a node that is not in memory
   * is not read but remembered (missed, miss_ptr, miss_e) for
   * hf_btree_pin_missed.  Set and used under the caller's exclusive
   * access; read by the pinning thread after it. */
  bool noread;
  bool missed;
  struct hf_disk_node_ptr miss_ptr;
  struct hf_btree_expect miss_e;

  /* lock protects: the hash table (buckets, every node's hnext), the
   * LRU list (lru_head, lru_tail, lprev, lnext, in_lru), every clean
   * node's refs, ncached, and the node_reads / node_hits counters.  It
   * is never held while calling the reader or the caller's callbacks. */
  pthread_mutex_t lock;
  struct hf_btree_node **buckets;
  size_t nbuckets;              /* power of 2 */
  struct hf_btree_node *lru_head, *lru_tail;
  size_t ncached;
  uint64_t node_reads;
  uint64_t node_hits;
};




static inline uint64_t
hf_btree_min_key (const struct hf_btree_node *n)
{
  assert (n->count > 0);
  return n->level == 0 ? n->leaf[0].lba : n->br[0].lba;
}

static inline uint64_t
hf_btree_last_key (const struct hf_btree_node *n)
{
  assert (n->count > 0);
  return n->level == 0 ? n->leaf[n->count - 1].lba : n->br[n->count - 1].lba;
}

static inline void
hf_btree_root_expect (const struct hf_btree *t, struct hf_btree_expect *e)
{
  e->level = t->level;
  e->lo = 0;
  e->hi = UINT64_MAX;
  e->exact = false;
}

/* Expectation for child i of branch n, whose own expectation is pe. */
static inline void
hf_btree_child_expect (const struct hf_btree_node *n, uint32_t i,
                       const struct hf_btree_expect *pe,
                       struct hf_btree_expect *e)
{
  e->level = n->level - 1;
  e->lo = n->br[i].lba;
  e->hi = i + 1 < n->count ? n->br[i + 1].lba - 1 : pe->hi;
  e->exact = true;
}

/* First leaf index with lba >= key. */
static inline uint32_t
hf_btree_leaf_lower (const struct hf_btree_node *n, uint64_t key)
{
  uint32_t a = 0, b = n->count;

  while (a < b) {
    uint32_t m = a + (b - a) / 2;
    if (n->leaf[m].lba < key)
      a = m + 1;
    else
      b = m;
  }
  return a;
}

static inline uint32_t
hf_btree_branch_child (const struct hf_btree_node *n, uint64_t key)
{
  uint32_t a = 0, b = n->count;

  while (a < b) {
    uint32_t m = a + (b - a) / 2;
    if (n->br[m].lba <= key)
      a = m + 1;
    else
      b = m;
  }
  return a > 0 ? a - 1 : 0;
}

/* btree-node.c */
extern struct hf_btree_node *hf_btree_node_alloc (unsigned level);
extern struct hf_btree_node *hf_btree_node_new_dirty (struct hf_btree *t,
                                                      unsigned level);
extern void hf_btree_free_dirty (struct hf_btree *t, struct hf_btree_node *n);
extern void hf_btree_evict (struct hf_btree *t);
extern void hf_btree_cache_insert (struct hf_btree *t,
                                   struct hf_btree_node *n);
extern int hf_btree_decode (const struct hf_disk_node_ptr *p,
                            const uint8_t *buf,
                            const struct hf_btree_expect *e,
                            struct hf_btree_node **out);
extern uint32_t hf_btree_encode (const struct hf_btree_node *n, uint64_t seq,
                                 uint32_t off, uint8_t *buf);
extern int hf_btree_get (struct hf_btree *t, const struct hf_btree_ref *ref,
                         const struct hf_btree_expect *e,
                         struct hf_btree_node **out);
extern void hf_btree_put (struct hf_btree *t, struct hf_btree_node *n);

#endif /* HF_BTREE_INT_H */
