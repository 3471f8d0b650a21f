/* hyperfile: libFuzzer harness for B+tree nodes (lib/btree.c, lib/btree-node.c): a
 * checkpoint read back from a store, decoded, looked up, iterated,
 * walked, modified copy-on-write and checkpointed again.
 *
 * Input: a 16-byte preamble, then up to 32 nodes of HF_NODE_SIZE bytes
 * served as segment 1, node offsets 0, 1, 2 ...
 *   byte 0   mode: bit 0 recomputes every bn_crc and the np_crc of
 *            branch entries that point at segment 1 (fuzz.h)
 *   byte 1   the root's level
 *   byte 2   the root's node offset
 *   8..15    an lba for the lookup, insert and remove
 * The root pointer's np_crc is the root node's bn_crc as found.
 * Every node is also checked alone (hf_btree_verify_node, as fsck does).
 * Invariants: iteration yields strictly increasing keys; what a lookup
 * finds agrees with the iteration; after insert/remove and a checkpoint,
 * the tree read back from the checkpoint holds the same entries. */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "btree.h"
#include "crc32c.h"
#include "format.h"
#include "fuzz.h"

#define MAX_NODES 32
#define MAX_ENTRIES (MAX_NODES * HF_BN_MAX_ENTS + 8)
#define BN(f) offsetof (struct hf_disk_node_hdr, f)

struct src {
  const uint8_t *nodes;         /* segment 1 */
  size_t n;
  const uint8_t *ckpt;          /* segment 2, the harness's checkpoint */
  size_t nckpt;
};

static int
rd (void *opaque, const struct hf_disk_node_ptr *p, void *buf)
{
  struct src *s = opaque;

  if (p->np_seq == 1 && p->np_off < s->n)
    memcpy (buf, s->nodes + (size_t) p->np_off * HF_NODE_SIZE, HF_NODE_SIZE);
  else if (p->np_seq == 2 && p->np_off < s->nckpt)
    memcpy (buf, s->ckpt + (size_t) p->np_off * HF_NODE_SIZE, HF_NODE_SIZE);
  else
    return EIO;
  return 0;
}

static uint32_t
node_crc (uint8_t *b)
{
  hf_put_le32 (b + BN (bn_crc), 0);
  return hf_crc32c (0, b, HF_NODE_SIZE);
}

/* Leaves first, then each level up, so a branch's np_crc sees its
 * children's final CRC. */
static void
fix_crcs (uint8_t *nodes, size_t n)
{
  unsigned lv;
  size_t i;
  uint32_t k;

  for (lv = 0; lv < 8; lv++)
    for (i = 0; i < n; i++) {
      uint8_t *b = nodes + i * HF_NODE_SIZE;
      uint32_t count = hf_le32 (b + BN (bn_count));

      if (hf_le16 (b + BN (bn_level)) != lv)
        continue;
      if (lv > 0)
        for (k = 0; k < count && k < HF_BN_MAX_ENTS; k++) {
          uint8_t *e = b + HF_BN_HDR_SIZE + k * HF_BN_ENT_SIZE;
          uint32_t off = hf_le32 (e + 16);

          if (hf_le64 (e + 8) == 1 && off < n && off != i)
            hf_put_le32 (e + 20, hf_le32 (nodes + (size_t) off * HF_NODE_SIZE
                                          + BN (bn_crc)));
        }
      hf_put_le32 (b + BN (bn_crc), node_crc (b));
    }
}

struct ents {
  size_t n;
  uint64_t lba[MAX_ENTRIES];
  struct hf_bmap m[MAX_ENTRIES];
};

static int
collect (void *opaque, uint64_t lba, const struct hf_bmap *m)
{
  struct ents *e = opaque;

  if (e->n > 0)
    FUZZ_CHECK (lba > e->lba[e->n - 1]);
  if (e->n == MAX_ENTRIES)
    return 1;
  e->lba[e->n] = lba;
  e->m[e->n] = *m;
  e->n++;
  return 0;
}

static int
count_node (void *opaque, const struct hf_disk_node_ptr *p, unsigned level)
{
  (void) p;
  (void) level;
  (*(size_t *) opaque)++;
  return 0;
}

static struct ents e1, e2;

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  struct src s = { 0 };
  struct hf_btree *t = NULL, *t2 = NULL;
  struct hf_btree_root root, root2;
  struct hf_bmap m;
  uint8_t *nodes, *ckpt = NULL;
  uint64_t lba;
  size_t i, nn, walked = 0;
  unsigned level;
  int r;

  fuzz_quiet ();
  if (size < 16 + HF_NODE_SIZE)
    return 0;
  s.n = (size - 16) / HF_NODE_SIZE;
  if (s.n > MAX_NODES)
    s.n = MAX_NODES;
  nodes = malloc (s.n * HF_NODE_SIZE);
  if (nodes == NULL)
    return 0;
  memcpy (nodes, data + 16, s.n * HF_NODE_SIZE);
  if (data[0] & 1)
    fix_crcs (nodes, s.n);
  s.nodes = nodes;
  lba = hf_le64 (data + 8);

  for (i = 0; i < s.n; i++)
    if (hf_btree_verify_node (1, i, nodes + i * HF_NODE_SIZE, &level) == 0)
      FUZZ_CHECK (level == hf_le16 (nodes + i * HF_NODE_SIZE + BN (bn_level)));

  root.empty = false;
  root.level = data[1];
  root.ptr.np_seq = 1;
  root.ptr.np_off = data[2] % s.n;
  root.ptr.np_crc = hf_le32 (nodes + (size_t) root.ptr.np_off * HF_NODE_SIZE
                             + BN (bn_crc));
  if (hf_btree_open (&root, 0, rd, &s, 16, &t) != 0)
    goto out;

  e1.n = 0;
  r = hf_btree_iterate (t, 0, UINT64_MAX, collect, &e1);
  if (r == 0) {
    /* A complete, valid tree: every key found again by lookup. */
    for (i = 0; i < e1.n; i++) {
      FUZZ_CHECK (hf_btree_lookup (t, e1.lba[i], &m) == 0);
      FUZZ_CHECK (m.seq == e1.m[i].seq && m.blk == e1.m[i].blk &&
                  m.crc == e1.m[i].crc);
    }
    FUZZ_CHECK (hf_btree_walk_nodes (t, count_node, &walked) == 0);
  }
  else
    hf_btree_lookup (t, lba, &m);

  /* Modify copy-on-write; on a damaged tree these may fail cleanly. */
  m = (struct hf_bmap) { .seq = 2, .blk = 7, .crc = 0x1234 };
  if (hf_btree_insert (t, lba, &m) != 0 ||
      hf_btree_remove_range (t, lba ^ 0x55, 300) != 0 || r != 0)
    goto out;
  e1.n = 0;
  if (hf_btree_iterate (t, 0, UINT64_MAX, collect, &e1) != 0)
    goto out;
  nn = hf_btree_dirty_count (t);
  ckpt = calloc (nn ? nn : 1, HF_NODE_SIZE);
  if (ckpt == NULL)
    goto out;
  if (hf_btree_checkpoint (t, 2, 0, ckpt, &nn, &root2) != 0)
    goto out;
  s.ckpt = ckpt;
  s.nckpt = nn;
  FUZZ_CHECK (hf_btree_open (&root2, e1.n, rd, &s, 16, &t2) == 0);
  e2.n = 0;
  FUZZ_CHECK (hf_btree_iterate (t2, 0, UINT64_MAX, collect, &e2) == 0);
  FUZZ_CHECK (e2.n == e1.n);
  for (i = 0; i < e1.n; i++)
    FUZZ_CHECK (e1.lba[i] == e2.lba[i] && e1.m[i].seq == e2.m[i].seq &&
                e1.m[i].blk == e2.m[i].blk && e1.m[i].crc == e2.m[i].crc);

 out:
  if (t2)
    hf_btree_close (t2);
  if (t)
    hf_btree_close (t);
  free (ckpt);
  free (nodes);
  return 0;
}
