/* hyperfile: local block cache (`cache=DIR`, `cache-size=`).
 *
 * Caches blocks of committed segments on local disk, keyed by their
 * immutable physical address (segment seq, byte offset in the segment).
 * Because segments never change, an entry never goes stale and survives
 * restarts.  Reads go through io_uring.  Every entry carries its own
 * CRC32C, checked on every hit: a damaged entry is a miss (and is
 * dropped), never wrong data.  Eviction (CLOCK or LRU) keeps the cache
 * within max_bytes.  Besides data blocks it holds B+tree nodes (the
 * volume passes their addresses like any other range).
 *
 * Granularity is the block: gets and puts cover whole blocks of
 * block_size bytes at offsets that are multiples of block_size; a get
 * hits only if every block of the range is present.
 *
 * Thread safety: all functions except open/close may be called from any
 * number of threads at once; gets of different blocks never wait for
 * each other's I/O.
 */
#ifndef HF_CACHE_H
#define HF_CACHE_H

#include <stddef.h>
#include <stdint.h>

struct hf_cache;

struct hf_cache_options {
  const char *dir;              /* created (0700) if missing; borrowed */
  uint8_t volume_uuid[16];      /* a cache of another volume is discarded */
  uint32_t block_size;          /* 512..65536, power of 2 */
  uint64_t max_bytes;           /* data capacity; 0 = 1 GiB */
};

/* The budget of the table files (below) for a cache of max data
 * bytes, on top of it: a sixteenth (frame tables are 1/1024 of the
 * image data they describe, so they cover 64 times what the cache
 * holds), at least 4 MiB. */
#define HF_CACHE_TABLES_MAX(max) \
  ((max) / 16 > (UINT64_C (4) << 20) ? (max) / 16 : (UINT64_C (4) << 20))

struct hf_cache_stats {
  uint64_t hits, misses, inserts, evictions, corrupt;
  uint64_t bytes_used, bytes_max;
  uint64_t tables_used, tables_max;     /* cache.tables/ bytes */
};

/* Open (or create) the cache in opts->dir, rebuilding or loading its
 * index; lock it against a second process (EBUSY).  On success *out is a
 * new cache the caller owns. */
extern int hf_cache_open (const struct hf_cache_options *opts,
                          struct hf_cache **out);

/* Copy len bytes (whole blocks) of segment seq at byte offset off into
 * buf.  0 on a hit, ENOENT on a miss (including a damaged entry), or
 * another errno on a local I/O failure. */
extern int hf_cache_get (struct hf_cache *c, uint64_t seq, uint64_t off,
                         void *buf, size_t len);

/* Insert len bytes (whole blocks, borrowed) of segment seq at off,
 * evicting as needed.  Failure to cache is not an error for the caller
 * beyond the return value (the volume ignores it). */
extern int hf_cache_put (struct hf_cache *c, uint64_t seq, uint64_t off,
                         const void *buf, size_t len);

/* Like hf_cache_put, with crcs[i] the CRC32C of block i of buf
 * (borrowed; NULL: computed here), from whoever computed it when the
 * block was written or verified.  The cache stores it as the entry's
 * CRC and checks the bytes against it on every hit, so a block whose
 * bytes do not match its CRC is never served: its get is a miss. */
extern int hf_cache_put_crcs (struct hf_cache *c, uint64_t seq,
                              uint64_t off, const void *buf, size_t len,
                              const uint32_t *crcs);

/* Tables of a compressed segment (opaque bytes: the volume's
 * hf_seg_tables_encode), kept in files of their own beside the blocks
 * (cache-tables.h): they survive restarts and crashes, within a budget
 * of a sixteenth of max_bytes (at least 4 MiB) on top of it, least
 * recently used out.  Get: 0 and *buf (caller frees), *len; ENOENT on
 * a miss or a damaged file (removed with a warning).  Put: failure only
 * means not kept. */
extern int hf_cache_tables_get (struct hf_cache *c, uint64_t seq,
                                void **buf, size_t *len);
extern void hf_cache_tables_put (struct hf_cache *c, uint64_t seq,
                                 const void *buf, size_t len);

/* Forget every block and the tables of segment seq (after GC deleted
 * it). */
extern void hf_cache_drop_segment (struct hf_cache *c, uint64_t seq);

extern void hf_cache_get_stats (struct hf_cache *c,
                                struct hf_cache_stats *out);

/* Persist the index (so the next open is fast) and free everything. */
extern void hf_cache_close (struct hf_cache *c);

#endif /* HF_CACHE_H */
