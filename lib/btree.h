/* hyperfile: copy-on-write B+tree mapping logical blocks to where their
 * newest bytes live: (segment seq, block offset in that segment, CRC32C).
 *
 * The tree's persistent form is a checkpoint: nodes (format.h, struct
 * hf_disk_node_hdr and entries) written into a segment's node area, found
 * from a root pointer in a segment header.  In memory, nodes are paged in
 * on demand through a caller-supplied reader and kept in an LRU of
 * bounded size; modified ("dirty") nodes and their ancestors are copies
 * (copy-on-write: a checkpointed node is never changed in place) and are
 * pinned in memory until the next checkpoint writes them out.
 *
 * Thread safety: hf_btree_lookup, hf_btree_iterate and hf_btree_get_stats may
 * run concurrently with each other from any number of threads; node I/O
 * happens without holding the tree's internal lock, so lookups of
 * different blocks never wait for each other's reads.  hf_btree_insert,
 * hf_btree_remove_range, hf_btree_checkpoint and hf_btree_close need
 * exclusive access: the caller serialises them against every other call
 * (lib/volume holds a rwlock).
 *
 * Errors: 0, or ENOENT (lookup: hole), EBADMSG (a node failed its magic,
 * CRC or self-address check: logged with the segment and offset), EIO or
 * another errno from the reader, ENOMEM.
 */
#ifndef HF_BTREE_H
#define HF_BTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"

/* Where a logical block's data lives. */
struct hf_bmap {
  uint64_t seq;         /* segment number */
  uint32_t blk;         /* byte offset in the segment / block_size */
  uint32_t crc;         /* CRC32C of the block's bytes */
};

/* A checkpoint root; empty means the tree has no entries. */
struct hf_btree_root {
  bool empty;
  uint16_t level;       /* root's bn_level */
  struct hf_disk_node_ptr ptr;
};

/* Read the HF_NODE_SIZE bytes of the node at *ptr into buf (caller
 * owns).  Must be thread safe.  The tree checks magic, CRC and
 * self-address itself.  Returns 0 or a positive errno. */
typedef int (*hf_btree_read_fn) (void *opaque,
                                 const struct hf_disk_node_ptr *ptr,
                                 void *buf);

struct hf_btree;

struct hf_btree_stats {
  uint64_t nodes_cached;     /* clean nodes in memory */
  uint64_t nodes_dirty;      /* dirty nodes pinned in memory */
  uint64_t node_reads;       /* reader calls */
  uint64_t node_hits;        /* lookups served from memory */
  uint64_t entries;          /* mapped blocks (exact) */
};

/* Open a tree at root (borrowed; NULL or root->empty = new empty tree),
 * reading nodes through rd (opaque is passed to it).  At most cache_nodes
 * clean nodes stay in memory (minimum 16; dirty nodes come on top).
 * entries is the number of mapped blocks at root (from the segment
 * header's sh_mapped), kept up to date by insert/remove.  On success *out
 * is a new tree the caller owns; on error *out is unchanged. */
extern int hf_btree_open (const struct hf_btree_root *root, uint64_t entries,
                          hf_btree_read_fn rd, void *opaque,
                          size_t cache_nodes, struct hf_btree **out);

extern void hf_btree_close (struct hf_btree *t);

/* Find lba.  0 and *out filled if mapped, ENOENT if a hole. */
extern int hf_btree_lookup (struct hf_btree *t, uint64_t lba,
                            struct hf_bmap *out);

/* Call fn for every mapped block in [lba, lba + count) in increasing
 * order.  fn returns 0 to continue, 1 to stop early (iterate returns 0),
 * or a positive errno to abort (iterate returns it). */
typedef int (*hf_btree_iter_fn) (void *opaque, uint64_t lba,
                                 const struct hf_bmap *m);
extern int hf_btree_iterate (struct hf_btree *t, uint64_t lba,
                             uint64_t count, hf_btree_iter_fn fn,
                             void *opaque);

/* Map lba to *m (borrowed), replacing any earlier mapping. */
extern int hf_btree_insert (struct hf_btree *t, uint64_t lba,
                            const struct hf_bmap *m);

/* Unmap every block in [lba, lba + count).  Cost is proportional to the
 * number of mapped blocks in the range plus the tree depth, never to
 * count, so trimming a whole large volume is cheap. */
extern int hf_btree_remove_range (struct hf_btree *t, uint64_t lba,
                                  uint64_t count);

/* Pinning what a mutation will read.  A mutation reads the clean nodes
 * on its paths through the reader, which may go to the store; the
 * caller holds its exclusive lock then, so every lookup would wait for
 * those reads.  Instead the caller pins beforehand, under its shared
 * lock (beside lookups), and mutates in no-read mode:
 *
 * hf_btree_pin_range reads and pins the nodes on the paths to every
 * leaf that an insert or removal in [lba, lba + count) would visit, in
 * key order, into *pins (allocated on first use; NULL to start).  It
 * stops between two children once *pins holds max nodes and at least
 * one leaf's path of this call is pinned: *done is then the number of
 * blocks from lba whose paths are all pinned (at least 1), else count.
 * So memory stays bounded: a caller mutates [lba, lba + *done), unpins,
 * and pins the rest.
 *
 * hf_btree_set_noread (t, true), under the caller's exclusive access,
 * makes mutations fail with EAGAIN instead of reading a node that is
 * not in memory (an insert then changed nothing; a removal may have
 * removed part of its range: doing it again is harmless).  The missed
 * node is remembered: hf_btree_pin_missed (under the shared lock
 * again) reads and pins it.  A mutation can miss a node its range's
 * paths do not hold (an insert after a removal emptied the child it
 * used to go to lands in a neighbour); repeating pin and mutate
 * converges, each round pinning one more node.
 *
 * hf_btree_unpin releases every pin and frees pins; it may run beside
 * lookups, and after a checkpoint (pinned nodes stay valid).  Pins are
 * for one thread at a time. */
struct hf_btree_pins;
extern int hf_btree_pin_range (struct hf_btree *t, uint64_t lba,
                               uint64_t count, size_t max,
                               struct hf_btree_pins **pins, uint64_t *done);
extern int hf_btree_pin_missed (struct hf_btree *t,
                                struct hf_btree_pins **pins);
extern size_t hf_btree_pins_count (const struct hf_btree_pins *pins);
extern void hf_btree_unpin (struct hf_btree *t, struct hf_btree_pins *pins);
extern void hf_btree_set_noread (struct hf_btree *t, bool on);

/* Number of nodes the next checkpoint would write. */
extern size_t hf_btree_dirty_count (struct hf_btree *t);

/* Write out every dirty node: node i (0-based) is placed in segment seq
 * at np_off = first_off + i and serialised into buf + i * HF_NODE_SIZE
 * (caller owns buf, at least hf_btree_dirty_count () * HF_NODE_SIZE
 * bytes).  Children are written before parents.  On success *nnodes is
 * the number written, *root_out the new root, and the nodes are clean
 * (their pointers refer to the new addresses) — the caller must then
 * commit the segment, or discard the tree if that fails.  With no dirty
 * nodes, writes nothing and returns the current root. */
extern int hf_btree_checkpoint (struct hf_btree *t, uint64_t seq,
                                uint32_t first_off, void *buf,
                                size_t *nnodes,
                                struct hf_btree_root *root_out);

/* The current root (only meaningful when the tree is clean). */
extern void hf_btree_get_root (struct hf_btree *t, struct hf_btree_root *out);

extern void hf_btree_get_stats (struct hf_btree *t,
                                struct hf_btree_stats *out);

/* Visit every node reachable from the current (clean) root, parents
 * before children, reading each through the reader and verifying it.
 * For fsck and GC: fn receives the pointer and level of each node. */
typedef int (*hf_btree_node_fn) (void *opaque,
                                 const struct hf_disk_node_ptr *ptr,
                                 unsigned level);
extern int hf_btree_walk_nodes (struct hf_btree *t, hf_btree_node_fn fn,
                                void *opaque);

/* Like hf_btree_walk_nodes, and also call ent_fn (may be NULL) for every
 * entry of every visited leaf, in key order, after node_fn accepted the
 * leaf.  node_fn (may be NULL) may return HF_BTREE_SKIP to skip the
 * node's children and entries: GC walks many checkpoints that share
 * most of their nodes, and a subtree already visited (nodes are
 * immutable) need not be read again.  Either callback returns 0 to go
 * on or a positive errno to stop (returned).  A reader returning EAGAIN
 * stops the walk without an error line (the caller knows why). */
#define HF_BTREE_SKIP (-1)
typedef int (*hf_btree_entry_fn) (void *opaque, uint64_t lba,
                                  const struct hf_bmap *m);
extern int hf_btree_walk_full (struct hf_btree *t, hf_btree_node_fn node_fn,
                               hf_btree_entry_fn ent_fn, void *opaque);

/* Verify the raw node buf found at node offset off of segment seq on
 * its own (magic, version, CRC, self address, entry order), without a
 * parent's expectations: fsck scans node areas with it.  0 and *level
 * set, or EBADMSG (logged). */
extern int hf_btree_verify_node (uint64_t seq, uint32_t off, const void *buf,
                                 unsigned *level);

#endif /* HF_BTREE_H */
