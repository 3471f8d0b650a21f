/* hyperfile: the cache's table files (cache.tables/ in the cache
 * directory; the block cache, cache.h, owns and opens them).
 *
 * A compressed segment's blocks are read through its frame table (where
 * each frame is stored), which the volume fetches from the store on a
 * segment's first read.  Kept here, by segment seq, as opaque buffers
 * (the volume's: hf_seg_tables_encode), the tables survive restarts and
 * crashes, so a cold read after one costs one GET, not two.  They are
 * small (16 bytes per 16 KiB frame, 1/1024 of the data, and a 256-byte
 * header per segment), so they get their own budget instead of
 * competing with data blocks for slots: the data a cache holds is a
 * fraction of the volume, the tables can cover far more of it.
 *
 * Every file is checked when read (magic, version, seq, length, CRC32C
 * of header and payload): a damaged or torn one is a miss, removed with
 * a warning, and the table is fetched from the store again.  Files are
 * written to a temporary name and renamed, without fsync: after a crash
 * a file is whole, absent, or caught by its checks.
 *
 * Thread safety: all functions except open/close may be called from any
 * number of threads at once; no I/O under the lock.
 */
#ifndef HF_CACHE_TABLES_H
#define HF_CACHE_TABLES_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hf_ctab;

/* Open (making it if missing) cache.tables/ under the cache directory
 * dir_fd (borrowed; dir names it in messages) of the volume uuid,
 * keeping at most max_bytes of files; wipe: remove every file first
 * (the cache belonged to another volume).  Files beyond the budget are
 * removed.  *out is a new store the caller closes. */
extern int hf_ctab_open (int dir_fd, const char *dir,
                         const uint8_t uuid[16], uint64_t max_bytes,
                         bool wipe, struct hf_ctab **out);

/* The buffer kept for segment seq: 0 and *buf (caller frees), *len; or
 * ENOENT (none, or damaged: then removed). */
extern int hf_ctab_get (struct hf_ctab *t, uint64_t seq, void **buf,
                        size_t *len);

/* Keep len bytes of buf (borrowed) for seq, replacing any, removing
 * the least recently used files beyond the budget.  Failure only means
 * it is not kept (logged at debug level). */
extern void hf_ctab_put (struct hf_ctab *t, uint64_t seq, const void *buf,
                         size_t len);

/* Forget seq (its segment was deleted). */
extern void hf_ctab_drop (struct hf_ctab *t, uint64_t seq);

/* Bytes of files kept, and the budget. */
extern void hf_ctab_usage (struct hf_ctab *t, uint64_t *used,
                           uint64_t *max);

extern void hf_ctab_close (struct hf_ctab *t);

#endif /* HF_CACHE_TABLES_H */
