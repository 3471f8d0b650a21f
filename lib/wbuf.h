/* hyperfile: the write buffer, one segment's worth of client writes in
 * memory.
 *
 * A hash from logical block to a slot in a growing array of block-sized
 * slots, plus a sorted list of zero runs (runs.h) for trim, zero and
 * all-zero blocks.  A zero run is one entry however long it is, so
 * trimming 1 TiB costs O(1) memory.  Blocks in the hash are always newer
 * than the zero runs covering them: zeroing a block that is in the hash
 * marks its entry HF_WBUF_NO_SLOT (a zero tombstone).
 *
 * Once the builder has copied the slots into a segment object it calls
 * hf_wbuf_remap: the hash then points into the object's data area
 * (rdata) and the slots are freed; the buffer is read-only from then on.
 *
 * No locks here: the volume holds v->lock around every call on a buffer
 * that other threads can see (volume-int.h).  Functions return 0 or
 * ENOMEM.
 */
#ifndef HF_WBUF_H
#define HF_WBUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "runs.h"

#define HF_WBUF_NO_SLOT UINT32_MAX      /* hash value: block zeroed */

struct hf_wbuf {
  uint64_t *keys;               /* lba + 1; 0 = empty */
  uint32_t *vals;               /* slot, or HF_WBUF_NO_SLOT (zeroed) */
  size_t cap, used;             /* hash capacity (power of 2), keys used */
  uint8_t *slots;               /* n_slots blocks; NULL after remap */
  uint32_t *crcs;               /* CRC32C of each slot, as the writer
                                   computed it (cap_slots entries); NULL
                                   after remap */
  const uint8_t *rdata;         /* where vals point: slots, or the
                                   object's data area after remap */
  uint32_t n_slots, cap_slots;
  struct hf_runs zeros;         /* sorted disjoint zero runs */
  uint64_t first_us;            /* monotonic time of the first change */
  uint64_t bytes;               /* n_slots * block size, for dirty */
  bool changed;
};

/* A spare slot array handed from buffer to buffer (a fresh 32 MiB
 * array costs a page fault per 4 KiB). */
struct hf_wbuf_spare {
  uint8_t *p;                   /* owned; NULL: none */
  size_t len;                   /* bytes */
};

/* One data block of a buffer, for building a segment. */
struct hf_wbuf_ent {
  uint64_t lba;
  uint32_t slot;
  uint32_t crc;                 /* the slot's CRC32C (b->crcs) */
  size_t hpos;                  /* its position in the hash */
};

/* Free b and everything it owns (NULL is fine). */
extern void hf_wbuf_free (struct hf_wbuf *b);

/* Mark b changed (the first change starts its flush_interval clock). */
extern void hf_wbuf_touch (struct hf_wbuf *b);

/* Position of lba in the hash, or SIZE_MAX. */
extern size_t hf_wbuf_find (const struct hf_wbuf *b, uint64_t lba);

/* Look lba up: the block's bytes, or NULL with *zero set if b zeroed
 * it, or NULL with *zero clear if b does not know it. */
extern const uint8_t *hf_wbuf_lookup (const struct hf_wbuf *b, uint32_t bs,
                                      uint64_t lba, bool *zero);

/* Store one block of bs bytes at lba, with crc, the CRC32C of those
 * bytes (the caller computed it, once: it becomes the segment's block
 * CRC and the cache's, and a wrong one is caught when the block is read
 * back from either).  A new slot may take the slot array from *spare
 * (if spare is not NULL and it is large enough); *added is set when a
 * slot was added (b->bytes grew by bs). */
extern int hf_wbuf_put (struct hf_wbuf *b, uint32_t bs, uint64_t lba,
                        const uint8_t *data, uint32_t crc,
                        struct hf_wbuf_spare *spare, bool *added);

/* Zero [lba, lba + n): tombstone the hash entries inside it and add the
 * zero run. */
extern int hf_wbuf_zero (struct hf_wbuf *b, uint64_t lba, uint64_t n);

/* The data blocks of b in lba order: *out (caller frees) holds *n
 * entries. */
extern int hf_wbuf_sorted (const struct hf_wbuf *b, struct hf_wbuf_ent **out,
                           size_t *n);

/* After the builder copied the blocks ents[0 .. n-1] (from
 * hf_wbuf_sorted) to rdata in that order: point the hash there.
 * Returns the old slot array (caller owns it); the CRCs are freed (the
 * segment's CRC table has them). */
extern uint8_t *hf_wbuf_remap (struct hf_wbuf *b,
                               const struct hf_wbuf_ent *ents, size_t n,
                               const uint8_t *rdata);

/* The runs of b clipped to [a, e) (zero runs, then data runs with
 * any_data coalescing), overlaid onto acc. */
extern int hf_wbuf_extent_runs (const struct hf_wbuf *b, uint64_t a,
                                uint64_t e, struct hf_runs *acc);

#endif /* HF_WBUF_H */
