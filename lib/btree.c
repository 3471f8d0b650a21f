/* hyperfile: copy-on-write B+tree (contract in btree.h, node format in
 * format.h).
 *
 * In-memory representation
 *
 *   Every node in memory is a struct hf_btree_node followed by its
 *   decoded entries (leaf: lba -> seq/blk/crc, 24 bytes; branch: lba,
 *   child disk pointer and an in-memory pointer to a dirty child, 32
 *   bytes), so a cached node costs about 4-5.5 KiB.  A node is either
 *
 *   - clean: an exact decoded image of a verified node on disk at
 *     (seq, off).  Clean nodes live in the node cache: a hash table
 *     keyed by (seq, off) plus an LRU list of the clean nodes nobody is
 *     using.  A clean node is never modified.  Readers pin a clean node
 *     (refs > 0) while they look at it; a pinned node is off the LRU
 *     and cannot be evicted.  When more than cache_nodes clean nodes
 *     exist, unpinned ones are evicted from the LRU tail.
 *
 *   - dirty: a private copy made by a mutation (copy-on-write), or a
 *     node created by a split.  Dirty nodes are owned by their parent
 *     (or by the tree, for the root), are not in the cache and are not
 *     counted against cache_nodes; they stay until a checkpoint writes
 *     them or a removal frees them.
 *
 *   A child is referenced from its parent's entry by struct
 *   hf_btree_ref: "dirty" points to a dirty child, otherwise the child
 *   is clean and named only by its disk pointer, and is looked up in the
 *   cache (read through the caller's reader on a miss).  No node ever
 *   holds a raw pointer to an evictable node.
 *
 * Copy-on-write
 *
 *   A mutation walks from the root down, replacing every clean node on
 *   its path by a dirty copy (path copying) before it changes anything,
 *   so the clean originals, and every older checkpoint, stay intact.
 *   hf_btree_checkpoint serialises the dirty nodes children first
 *   (post-order) into the caller's buffer, giving node i the address
 *   (seq, first_off + i); each parent's pointer then gets the child's
 *   address and CRC.  Written nodes turn clean and enter the cache under
 *   their new addresses.
 *
 * Invariants kept in memory and checked on every read from disk: keys
 * strictly increase within a node; a branch entry's lba is exactly the
 * smallest key of its child's subtree and every key of that subtree is
 * below the next entry's lba; a child's level is its parent's minus
 * one; no node except the root of an empty tree is empty (an empty tree
 * has no node at all).  Underfull nodes are allowed (no merging); empty
 * nodes are removed and a root with one child is collapsed.
 *
 * Locking: see struct hf_btree.  Lookups and iterations take the cache
 * mutex only to find/pin/unpin nodes; reads from the store happen with
 * the mutex released, so two threads missing the same node may both
 * read it and the second one to finish drops its copy.  Mutations are
 * serialised by the caller against everything else (btree.h), so they
 * read and change dirty nodes and the root without the mutex.
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

/* ---- Open / close ---- */

int
hf_btree_open (const struct hf_btree_root *root, uint64_t entries,
               hf_btree_read_fn rd, void *opaque,
               size_t cache_nodes, struct hf_btree **out)
{
  struct hf_btree *t;
  size_t nb;
  int r;

  if (rd == NULL || out == NULL)
    return EINVAL;
  if (root && !root->empty && root->level >= HF_BTREE_MAX_LEVEL) {
    hf_error ("btree: segment %" PRIu64 " node offset %" PRIu64
              ": root level %u is implausible", root->ptr.np_seq,
              (uint64_t) root->ptr.np_off * HF_NODE_SIZE, root->level);
    return EBADMSG;
  }
  if (cache_nodes < HF_BTREE_MIN_CACHE)
    cache_nodes = HF_BTREE_MIN_CACHE;

  t = calloc (1, sizeof *t);
  if (t == NULL)
    return ENOMEM;
  t->rd = rd;
  t->rd_opaque = opaque;
  t->cache_max = cache_nodes;
  for (nb = 64; nb < cache_nodes * 2 && nb < ((size_t) 1 << 24); nb *= 2)
    ;
  t->nbuckets = nb;
  t->buckets = calloc (nb, sizeof *t->buckets);
  if (t->buckets == NULL) {
    r = ENOMEM;
    goto err_t;
  }
  r = pthread_mutex_init (&t->lock, NULL);
  if (r)
    goto err_buckets;
  if (root == NULL || root->empty) {
    t->empty = true;
    t->entries = 0;
  }
  else {
    t->empty = false;
    t->level = root->level;
    t->root.ptr = root->ptr;
    t->entries = entries;
  }
  *out = t;
  return 0;

 err_buckets:
  free (t->buckets);
 err_t:
  free (t);
  return r;
}

void
hf_btree_close (struct hf_btree *t)
{
  size_t b;

  if (t == NULL)
    return;
  if (!t->empty && t->root.dirty)
    hf_btree_free_dirty (t, t->root.dirty);
  free (t->spare_leaf);
  while (t->nspare_br > 0)
    free (t->spare_br[--t->nspare_br]);
  for (b = 0; b < t->nbuckets; b++) {
    struct hf_btree_node *n = t->buckets[b], *next;

    for (; n; n = next) {
      next = n->hnext;
      assert (n->refs == 0);
      free (n);
    }
  }
  free (t->buckets);
  pthread_mutex_destroy (&t->lock);
  free (t);
}

/* ---- Pinning (see btree.h) ---- */

static uint64_t hf_btree_range_last (uint64_t lba, uint64_t count);

struct hf_btree_pins {
  struct hf_btree_node **v;     /* pinned clean nodes (refs held) */
  size_t n, cap;
};

/* One hf_btree_pin_range walk. */
struct hf_btree_pinwalk {
  struct hf_btree_pins *p;
  size_t max;
  uint64_t lo, last;
  bool leaf;                    /* a leaf's path is pinned */
  bool full;                    /* stopped at max pins ... */
  uint64_t stop;                /* ... before this key */
};

/* Keep n (a clean node, referenced by the caller) in p. */
static int
hf_btree_pins_add (struct hf_btree *t, struct hf_btree_pins *p,
                   struct hf_btree_node *n)
{
  if (p->n == p->cap) {
    size_t nc = p->cap ? p->cap * 2 : 64;
    struct hf_btree_node **nv = realloc (p->v, nc * sizeof *nv);
    if (nv == NULL) {
      hf_btree_put (t, n);
      return ENOMEM;
    }
    p->v = nv;
    p->cap = nc;
  }
  p->v[p->n++] = n;             /* keeps the reference */
  return 0;
}

static int
hf_btree_pin_node (struct hf_btree *t, const struct hf_btree_ref *ref,
                   const struct hf_btree_expect *e,
                   struct hf_btree_pinwalk *w)
{
  struct hf_btree_node *n;
  uint32_t i, i0, i1;
  int r;

  r = hf_btree_get (t, ref, e, &n);
  if (r)
    return r;
  if (!n->dirty && (r = hf_btree_pins_add (t, w->p, n)) != 0)
    return r;
  if (n->level == 0) {
    w->leaf = true;
    return 0;
  }
  i0 = hf_btree_branch_child (n, w->lo);
  i1 = hf_btree_branch_child (n, w->last);
  for (i = i0; i <= i1 && r == 0 && !w->full; i++) {
    struct hf_btree_expect ce;

    /* Stop only between children and after one leaf's path, so that
     * the keys below child i are covered and the walk covers some. */
    if (w->leaf && w->p->n >= w->max) {
      w->full = true;
      w->stop = n->br[i].lba > w->lo ? n->br[i].lba : w->lo;
      break;
    }
    hf_btree_child_expect (n, i, e, &ce);
    r = hf_btree_pin_node (t, &n->br[i].child, &ce, w);
  }
  return r;
}

int
hf_btree_pin_range (struct hf_btree *t, uint64_t lba, uint64_t count,
                    size_t max, struct hf_btree_pins **pins, uint64_t *done)
{
  struct hf_btree_pinwalk w = { .max = max, .lo = lba };
  struct hf_btree_expect e;
  int r;

  if (*pins == NULL && (*pins = calloc (1, sizeof **pins)) == NULL)
    return ENOMEM;
  *done = count;
  if (t->empty || count == 0)
    return 0;
  w.p = *pins;
  w.last = hf_btree_range_last (lba, count);
  hf_btree_root_expect (t, &e);
  r = hf_btree_pin_node (t, &t->root, &e, &w);
  if (r == 0 && w.full) {
    assert (w.stop > lba && w.stop <= w.last);
    *done = w.stop - lba;
  }
  return r;
}

int
hf_btree_pin_missed (struct hf_btree *t, struct hf_btree_pins **pins)
{
  struct hf_btree_ref ref = { .dirty = NULL };
  struct hf_btree_node *n;
  int r;

  if (!t->missed)
    return 0;
  if (*pins == NULL && (*pins = calloc (1, sizeof **pins)) == NULL)
    return ENOMEM;
  ref.ptr = t->miss_ptr;
  r = hf_btree_get (t, &ref, &t->miss_e, &n);
  if (r == 0 && !n->dirty)
    r = hf_btree_pins_add (t, *pins, n);
  if (r == 0)
    t->missed = false;
  return r;
}

size_t
hf_btree_pins_count (const struct hf_btree_pins *pins)
{
  return pins ? pins->n : 0;
}

void
hf_btree_unpin (struct hf_btree *t, struct hf_btree_pins *pins)
{
  size_t i;

  if (pins == NULL)
    return;
  for (i = 0; i < pins->n; i++)
    hf_btree_put (t, pins->v[i]);
  free (pins->v);
  free (pins);
}

void
hf_btree_set_noread (struct hf_btree *t, bool on)
{
  t->noread = on;
  if (on)
    t->missed = false;
}

/* ---- Lookup and iterate ---- */

int
hf_btree_lookup (struct hf_btree *t, uint64_t lba, struct hf_bmap *out)
{
  struct hf_btree_expect e;
  struct hf_btree_node *n, *c;
  uint32_t i;
  int r;

  if (t->empty)
    return ENOENT;
  hf_btree_root_expect (t, &e);
  r = hf_btree_get (t, &t->root, &e, &n);
  if (r)
    return r;
  while (n->level > 0) {
    struct hf_btree_expect ce;

    i = hf_btree_branch_child (n, lba);
    hf_btree_child_expect (n, i, &e, &ce);
    r = hf_btree_get (t, &n->br[i].child, &ce, &c);
    hf_btree_put (t, n);
    if (r)
      return r;
    n = c;
    e = ce;
  }
  i = hf_btree_leaf_lower (n, lba);
  if (i < n->count && n->leaf[i].lba == lba) {
    *out = n->leaf[i].m;
    r = 0;
  }
  else
    r = ENOENT;
  hf_btree_put (t, n);
  return r;
}

struct hf_btree_iter {
  uint64_t lo, last;
  hf_btree_iter_fn fn;
  void *opaque;
};

static int
hf_btree_iter_node (struct hf_btree *t, const struct hf_btree_ref *ref,
                    const struct hf_btree_expect *e,
                    struct hf_btree_iter *it)
{
  struct hf_btree_node *n;
  uint32_t i;
  int r;

  r = hf_btree_get (t, ref, e, &n);
  if (r)
    return r;
  if (n->level == 0) {
    for (i = hf_btree_leaf_lower (n, it->lo);
         i < n->count && n->leaf[i].lba <= it->last; i++) {
      r = it->fn (it->opaque, n->leaf[i].lba, &n->leaf[i].m);
      if (r == 1) {
        r = HF_BTREE_STOP;
        break;
      }
      if (r)
        break;
    }
  }
  else {
    for (i = hf_btree_branch_child (n, it->lo);
         i < n->count && n->br[i].lba <= it->last; i++) {
      struct hf_btree_expect ce;

      hf_btree_child_expect (n, i, e, &ce);
      r = hf_btree_iter_node (t, &n->br[i].child, &ce, it);
      if (r)
        break;
    }
  }
  hf_btree_put (t, n);
  return r;
}

/* Last block of [lba, lba + count), clamped at the top of the key
 * space.  count must be > 0. */
static uint64_t
hf_btree_range_last (uint64_t lba, uint64_t count)
{
  return count - 1 > UINT64_MAX - lba ? UINT64_MAX : lba + (count - 1);
}

int
hf_btree_iterate (struct hf_btree *t, uint64_t lba, uint64_t count,
                  hf_btree_iter_fn fn, void *opaque)
{
  struct hf_btree_iter it;
  struct hf_btree_expect e;
  int r;

  if (t->empty || count == 0)
    return 0;
  it.lo = lba;
  it.last = hf_btree_range_last (lba, count);
  it.fn = fn;
  it.opaque = opaque;
  hf_btree_root_expect (t, &e);
  r = hf_btree_iter_node (t, &t->root, &e, &it);
  return r == HF_BTREE_STOP ? 0 : r;
}

/* ---- Mutations (exclusive) ---- */

/* Make the node referenced by ref dirty (copying a clean node) and
 * return it.  On error nothing changed. */
static int
hf_btree_cow (struct hf_btree *t, struct hf_btree_ref *ref,
              const struct hf_btree_expect *e, struct hf_btree_node **out)
{
  struct hf_btree_node *c, *d;
  int r;

  if (ref->dirty) {
    *out = ref->dirty;
    return 0;
  }
  r = hf_btree_get (t, ref, e, &c);
  if (r)
    return r;
  d = hf_btree_node_new_dirty (t, c->level);
  if (d == NULL) {
    hf_btree_put (t, c);
    return ENOMEM;
  }
  d->count = c->count;
  if (c->level == 0)
    memcpy (d->leaf, c->leaf, c->count * sizeof *c->leaf);
  else
    memcpy (d->br, c->br, c->count * sizeof *c->br);
  hf_btree_put (t, c);
  ref->dirty = d;
  *out = d;
  return 0;
}

/* Make sure the spares cover the worst case of one insert: a leaf and
 * one branch per level split, plus a new root. */
static int
hf_btree_fill_spares (struct hf_btree *t)
{
  if (t->spare_leaf == NULL) {
    t->spare_leaf = hf_btree_node_alloc (0);
    if (t->spare_leaf == NULL)
      return ENOMEM;
  }
  while (t->nspare_br < (unsigned) t->level + 1) {
    t->spare_br[t->nspare_br] = hf_btree_node_alloc (1);
    if (t->spare_br[t->nspare_br] == NULL)
      return ENOMEM;
    t->nspare_br++;
  }
  return 0;
}

static struct hf_btree_node *
hf_btree_take_spare (struct hf_btree *t, unsigned level)
{
  struct hf_btree_node *n;

  if (level == 0) {
    n = t->spare_leaf;
    t->spare_leaf = NULL;
  }
  else {
    assert (t->nspare_br > 0);
    n = t->spare_br[--t->nspare_br];
    n->level = level;
  }
  assert (n != NULL && n->count == 0);
  n->dirty = true;
  t->ndirty++;
  return n;
}

/* Where to split a full node when inserting at position pos: sequential
 * inserts at the right (left) end leave the left (right) node full. */
static uint32_t
hf_btree_split_point (uint32_t pos)
{
  if (pos == HF_BTREE_MAX)
    return HF_BTREE_MAX;
  if (pos == 0)
    return 0;
  return HF_BTREE_MAX / 2;
}

/* Insert into dirty node n.  If n splits, *split is the new right node
 * and *split_key its smallest key. */
static int
hf_btree_ins (struct hf_btree *t, struct hf_btree_node *n,
              const struct hf_btree_expect *e, uint64_t lba,
              const struct hf_bmap *m, bool *added,
              struct hf_btree_node **split, uint64_t *split_key)
{
  struct hf_btree_node *target, *right, *cs = NULL;
  uint64_t ck = 0;
  uint32_t pos, k;
  int r;

  *split = NULL;
  if (n->level == 0) {
    pos = hf_btree_leaf_lower (n, lba);
    if (pos < n->count && n->leaf[pos].lba == lba) {
      n->leaf[pos].m = *m;
      *added = false;
      return 0;
    }
    *added = true;
  }
  else {
    struct hf_btree_expect ce;
    struct hf_btree_node *c;

    pos = hf_btree_branch_child (n, lba);
    hf_btree_child_expect (n, pos, e, &ce);
    r = hf_btree_cow (t, &n->br[pos].child, &ce, &c);
    if (r)
      return r;
    r = hf_btree_ins (t, c, &ce, lba, m, added, &cs, &ck);
    if (r)
      return r;
    if (lba < n->br[pos].lba)
      n->br[pos].lba = lba;
    if (cs == NULL)
      return 0;
    pos++;                      /* the new child goes after c */
  }

  /* Insert an entry at pos (a leaf entry, or the branch entry for cs). */
  target = n;
  if (n->count == HF_BTREE_MAX) {
    right = hf_btree_take_spare (t, n->level);
    k = hf_btree_split_point (pos);
    right->count = n->count - k;
    if (n->level == 0)
      memcpy (right->leaf, n->leaf + k, right->count * sizeof *n->leaf);
    else
      memcpy (right->br, n->br + k, right->count * sizeof *n->br);
    n->count = k;
    if (pos > k || (pos == k && k == HF_BTREE_MAX)) {
      target = right;
      pos -= k;
    }
    *split = right;
  }
  if (target->level == 0) {
    memmove (target->leaf + pos + 1, target->leaf + pos,
             (target->count - pos) * sizeof *target->leaf);
    target->leaf[pos].lba = lba;
    target->leaf[pos].m = *m;
  }
  else {
    memmove (target->br + pos + 1, target->br + pos,
             (target->count - pos) * sizeof *target->br);
    target->br[pos].lba = ck;
    target->br[pos].child.dirty = cs;
    memset (&target->br[pos].child.ptr, 0, sizeof target->br[pos].child.ptr);
  }
  target->count++;
  if (*split)
    *split_key = hf_btree_min_key (*split);
  return 0;
}

int
hf_btree_insert (struct hf_btree *t, uint64_t lba, const struct hf_bmap *m)
{
  struct hf_btree_expect e;
  struct hf_btree_node *root, *split, *nr;
  uint64_t split_key;
  bool added;
  int r = 0;

  if (t->empty) {
    root = hf_btree_node_new_dirty (t, 0);
    if (root == NULL)
      return ENOMEM;
    root->count = 1;
    root->leaf[0].lba = lba;
    root->leaf[0].m = *m;
    t->root.dirty = root;
    memset (&t->root.ptr, 0, sizeof t->root.ptr);
    t->level = 0;
    t->empty = false;
    t->entries = 1;
    return 0;
  }

  r = hf_btree_fill_spares (t);
  if (r)
    return r;
  hf_btree_root_expect (t, &e);
  r = hf_btree_cow (t, &t->root, &e, &root);
  if (r)
    return r;
  r = hf_btree_ins (t, root, &e, lba, m, &added, &split, &split_key);
  if (r)
    return r;
  if (split) {
    nr = hf_btree_take_spare (t, t->level + 1);
    nr->count = 2;
    nr->br[0].lba = hf_btree_min_key (root);
    nr->br[0].child.dirty = root;
    nr->br[1].lba = split_key;
    nr->br[1].child.dirty = split;
    t->root.dirty = nr;
    t->level++;
  }
  if (added)
    t->entries++;
  return 0;
}

/* Count the entries of the subtree at ref (reading clean nodes) without
 * changing anything. */
static int
hf_btree_count_subtree (struct hf_btree *t, const struct hf_btree_ref *ref,
                        const struct hf_btree_expect *e, uint64_t *total)
{
  struct hf_btree_node *n;
  uint32_t i;
  int r = 0;

  r = hf_btree_get (t, ref, e, &n);
  if (r)
    return r;
  if (n->level == 0)
    *total += n->count;
  else
    for (i = 0; i < n->count && r == 0; i++) {
      struct hf_btree_expect ce;

      hf_btree_child_expect (n, i, e, &ce);
      r = hf_btree_count_subtree (t, &n->br[i].child, &ce, total);
    }
  hf_btree_put (t, n);
  return r;
}

/* Does the subtree at ref hold any key in [lo, last]? */
static int
hf_btree_any_in (struct hf_btree *t, const struct hf_btree_ref *ref,
                 const struct hf_btree_expect *e, uint64_t lo, uint64_t last,
                 bool *any)
{
  struct hf_btree_node *n;
  uint32_t i;
  int r = 0;

  r = hf_btree_get (t, ref, e, &n);
  if (r)
    return r;
  if (n->level == 0) {
    i = hf_btree_leaf_lower (n, lo);
    *any = i < n->count && n->leaf[i].lba <= last;
  }
  else {
    struct hf_btree_expect ce;

    i = hf_btree_branch_child (n, lo);
    hf_btree_child_expect (n, i, e, &ce);
    r = hf_btree_any_in (t, &n->br[i].child, &ce, lo, last, any);
    if (r == 0 && !*any)
      *any = i + 1 < n->count && n->br[i + 1].lba <= last;
  }
  hf_btree_put (t, n);
  return r;
}

/* Remove [lo, last] from dirty node n.  Cost: the nodes on the paths to
 * the two ends of the range, plus reading the nodes of wholly covered
 * subtrees (to keep the entry count exact).  On error the tree is
 * consistent and t->entries exact, but only part of the range may have
 * been removed. */
static int
hf_btree_rm (struct hf_btree *t, struct hf_btree_node *n,
             const struct hf_btree_expect *e, uint64_t lo, uint64_t last)
{
  struct hf_btree_expect ce;
  uint32_t i, i0, i1, a, b, w, part[2];
  unsigned np, j;
  uint64_t dropped = 0;
  bool whole0, whole1;
  int r = 0;

  if (n->level == 0) {
    a = hf_btree_leaf_lower (n, lo);
    for (b = a; b < n->count && n->leaf[b].lba <= last; b++)
      ;
    memmove (n->leaf + a, n->leaf + b, (n->count - b) * sizeof *n->leaf);
    n->count -= b - a;
    t->entries -= b - a;
    return 0;
  }

  if (last < n->br[0].lba)
    return 0;
  i0 = hf_btree_branch_child (n, lo);
  i1 = hf_btree_branch_child (n, last);

  /* Only the end children i0 and i1 can be partly covered; every child
   * in between is wholly covered. */
  hf_btree_child_expect (n, i0, e, &ce);
  whole0 = ce.lo >= lo && ce.hi <= last;
  hf_btree_child_expect (n, i1, e, &ce);
  whole1 = ce.lo >= lo && ce.hi <= last;

  /* Count the wholly covered subtrees first: on failure nothing changed. */
  for (i = i0; i <= i1; i++) {
    if ((i == i0 && !whole0) || (i == i1 && !whole1))
      continue;
    hf_btree_child_expect (n, i, e, &ce);
    r = hf_btree_count_subtree (t, &n->br[i].child, &ce, &dropped);
    if (r)
      return r;
  }

  /* Recurse into the partly covered ends that hold a key in range. */
  np = 0;
  if (!whole1)
    part[np++] = i1;
  if (!whole0 && i0 != i1)
    part[np++] = i0;
  for (j = 0; j < np && r == 0; j++) {
    struct hf_btree_node *c;
    bool any;

    i = part[j];
    hf_btree_child_expect (n, i, e, &ce);
    r = hf_btree_any_in (t, &n->br[i].child, &ce, lo, last, &any);
    if (r || !any)
      continue;
    r = hf_btree_cow (t, &n->br[i].child, &ce, &c);
    if (r == 0)
      r = hf_btree_rm (t, c, &ce, lo, last);
  }

  /* Compact [i0, i1]: drop wholly covered children (only if everything
   * succeeded, since their entries are subtracted only then) and
   * emptied ones; refresh the keys of changed ones. */
  for (i = w = i0; i <= i1; i++) {
    struct hf_btree_node *c = n->br[i].child.dirty;
    bool whole = !((i == i0 && !whole0) || (i == i1 && !whole1));

    if (whole && r == 0) {
      if (c)
        hf_btree_free_dirty (t, c);
      continue;
    }
    if (c && c->count == 0) {
      hf_btree_free_dirty (t, c);
      continue;
    }
    if (c)
      n->br[i].lba = hf_btree_min_key (c);
    n->br[w++] = n->br[i];
  }
  memmove (n->br + w, n->br + i1 + 1, (n->count - i1 - 1) * sizeof *n->br);
  n->count -= i1 + 1 - w;
  if (r == 0)
    t->entries -= dropped;
  return r;
}

int
hf_btree_remove_range (struct hf_btree *t, uint64_t lba, uint64_t count)
{
  struct hf_btree_expect e;
  struct hf_btree_node *root;
  uint64_t last;
  bool any;
  int r;

  if (t->empty || count == 0)
    return 0;
  last = hf_btree_range_last (lba, count);
  hf_btree_root_expect (t, &e);
  r = hf_btree_any_in (t, &t->root, &e, lba, last, &any);
  if (r || !any)
    return r;
  r = hf_btree_cow (t, &t->root, &e, &root);
  if (r)
    return r;
  r = hf_btree_rm (t, root, &e, lba, last);

  /* Remove an empty root; collapse roots with one child. */
  while (!t->empty) {
    root = t->root.dirty;
    if (root && root->count == 0) {
      hf_btree_free_dirty (t, root);
      memset (&t->root, 0, sizeof t->root);
      t->empty = true;
      t->level = 0;
    }
    else if (root) {
      if (root->level == 0 || root->count > 1)
        break;
      t->root = root->br[0].child;
      t->level--;
      root->count = 0;          /* the child is now owned by t->root */
      hf_btree_free_dirty (t, root);
    }
    else {
      /* A clean root with one child (kept from disk): follow it. */
      struct hf_btree_node *c;

      if (t->level == 0)
        break;
      hf_btree_root_expect (t, &e);
      if (hf_btree_get (t, &t->root, &e, &c))
        break;                  /* still a valid tree; logged */
      if (c->count != 1) {
        hf_btree_put (t, c);
        break;
      }
      t->root = c->br[0].child;
      t->level--;
      hf_btree_put (t, c);
    }
  }
  if (t->empty)
    t->entries = 0;
  return r;
}

/* ---- Checkpoint ---- */

struct hf_btree_ckpt {
  uint64_t seq;
  uint32_t first_off;
  uint8_t *buf;
  size_t n;
};

/* Write dirty node n and its dirty descendants, children first; return
 * n's new pointer in *p.  n becomes clean and enters the cache (and may
 * be evicted at once: afterwards only *p refers to it). */
static void
hf_btree_ckpt_node (struct hf_btree *t, struct hf_btree_node *n,
                    struct hf_btree_ckpt *ck, struct hf_disk_node_ptr *p)
{
  uint32_t i, off;

  if (n->level > 0)
    for (i = 0; i < n->count; i++)
      if (n->br[i].child.dirty) {
        hf_btree_ckpt_node (t, n->br[i].child.dirty, ck, &n->br[i].child.ptr);
        n->br[i].child.dirty = NULL;
      }
  off = ck->first_off + (uint32_t) ck->n;
  p->np_seq = ck->seq;
  p->np_off = off;
  p->np_crc = hf_btree_encode (n, ck->seq, off,
                               ck->buf + ck->n * HF_NODE_SIZE);
  ck->n++;

  n->dirty = false;
  n->seq = ck->seq;
  n->off = off;
  n->crc = p->np_crc;
  n->refs = 0;
  t->ndirty--;
  pthread_mutex_lock (&t->lock);
  hf_btree_cache_insert (t, n);
  hf_btree_evict (t);
  pthread_mutex_unlock (&t->lock);
}

int
hf_btree_checkpoint (struct hf_btree *t, uint64_t seq, uint32_t first_off,
                     void *buf, size_t *nnodes,
                     struct hf_btree_root *root_out)
{
  struct hf_btree_ckpt ck;

  if (t->ndirty > 0 && (buf == NULL
                        || t->ndirty > (size_t) UINT32_MAX - first_off))
    return EINVAL;
  ck.seq = seq;
  ck.first_off = first_off;
  ck.buf = buf;
  ck.n = 0;
  if (!t->empty && t->root.dirty) {
    struct hf_btree_node *root = t->root.dirty;

    t->root.dirty = NULL;
    hf_btree_ckpt_node (t, root, &ck, &t->root.ptr);
  }
  assert (t->ndirty == 0);
  if (nnodes)
    *nnodes = ck.n;
  if (root_out)
    hf_btree_get_root (t, root_out);
  return 0;
}

size_t
hf_btree_dirty_count (struct hf_btree *t)
{
  return t->ndirty;
}

void
hf_btree_get_root (struct hf_btree *t, struct hf_btree_root *out)
{
  memset (out, 0, sizeof *out);
  out->empty = t->empty;
  if (!t->empty) {
    out->level = t->level;
    out->ptr = t->root.ptr;
  }
}

void
hf_btree_get_stats (struct hf_btree *t, struct hf_btree_stats *out)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&t->lock);
  out->nodes_cached = t->ncached;
  out->nodes_dirty = t->ndirty;
  out->node_reads = t->node_reads;
  out->node_hits = t->node_hits;
  out->entries = t->entries;
}

/* ---- Walk (fsck, GC) ---- */

struct hf_btree_walker {
  struct hf_btree *t;
  hf_btree_node_fn node_fn;
  hf_btree_entry_fn ent_fn;
  void *opaque;
};

static int
hf_btree_walk (struct hf_btree_walker *w, const struct hf_disk_node_ptr *p,
               const struct hf_btree_expect *e)
{
  struct hf_btree *t = w->t;
  struct hf_btree_node *n;
  uint8_t *buf;
  uint32_t i;
  int r;

  buf = malloc (HF_NODE_SIZE);
  if (buf == NULL)
    return ENOMEM;
  r = t->rd (t->rd_opaque, p, buf);
  pthread_mutex_lock (&t->lock);
  t->node_reads++;
  pthread_mutex_unlock (&t->lock);
  if (r) {
    if (r != EAGAIN)            /* EAGAIN: the reader stops the walk */
      hf_error ("btree: segment %" PRIu64 " node offset %" PRIu64
                ": read: %s", p->np_seq,
                (uint64_t) p->np_off * HF_NODE_SIZE, strerror (r));
    free (buf);
    return r;
  }
  r = hf_btree_decode (p, buf, e, &n);
  free (buf);
  if (r)
    return r;
  r = w->node_fn ? w->node_fn (w->opaque, p, n->level) : 0;
  if (r == HF_BTREE_SKIP) {
    free (n);
    return 0;
  }
  for (i = 0; r == 0 && n->level == 0 && w->ent_fn && i < n->count; i++)
    r = w->ent_fn (w->opaque, n->leaf[i].lba, &n->leaf[i].m);
  for (i = 0; r == 0 && n->level > 0 && i < n->count; i++) {
    struct hf_btree_expect ce;

    hf_btree_child_expect (n, i, e, &ce);
    r = hf_btree_walk (w, &n->br[i].child.ptr, &ce);
  }
  free (n);
  return r;
}

int
hf_btree_walk_full (struct hf_btree *t, hf_btree_node_fn node_fn,
                    hf_btree_entry_fn ent_fn, void *opaque)
{
  struct hf_btree_walker w = { t, node_fn, ent_fn, opaque };
  struct hf_btree_expect e;

  if (t->empty)
    return 0;
  if (t->ndirty > 0)
    return EBUSY;
  hf_btree_root_expect (t, &e);
  return hf_btree_walk (&w, &t->root.ptr, &e);
}

int
hf_btree_walk_nodes (struct hf_btree *t, hf_btree_node_fn fn, void *opaque)
{
  return hf_btree_walk_full (t, fn, NULL, opaque);
}

