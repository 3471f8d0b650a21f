/* hyperfile: the volume engine, usable as a C library without nbdkit.
 *
 * A volume is a sparse array of size bytes, stored as a log of immutable
 * segments in an object store (format.h).  Writes go into an in-memory
 * write buffer; a full buffer (segment_size), an old one
 * (flush_interval_ms) or a flush seals it into a segment that uploads in
 * the background while new writes fill the next buffer.  Reads see every
 * earlier write at every stage: buffer, sealed/uploading, committed.
 *
 * Durability: hf_volume_flush returns once every write that completed
 * before it was called is durable: committed to the store, or, with a
 * write-ahead log (opts->wal_dir), in the fdatasync'ed log, from which a
 * later open replays it.  HF_VOL_FUA on a write does the same for that
 * write.  Without flush there is no promise.  After a crash the volume
 * opens to a state containing every flushed write and a prefix of the
 * rest, in write order.
 *
 * Offsets and lengths: any byte offset and length is accepted (partial
 * blocks are read-modify-written); offset + count beyond the volume size
 * fails with EINVAL for reads and ENOSPC for writes, trim and zero.
 *
 * Errors are positive errno values: EINVAL, ENOSPC (see above), EROFS
 * (read-only open, or the writer was fenced by another writer), EIO
 * (store failure, after retries), EBADMSG (corrupt structure or block,
 * logged with object and offset; the plugin reports it as EIO), ENOENT
 * (open: no volume), EEXIST (create: already exists), EBUSY (open: another
 * writer holds a live lease; the message names it), ENOMEM.
 *
 * Thread safety: every function except open/create/close may be called
 * concurrently from any number of threads on one volume.  Reads of
 * different blocks never wait for each other or for uploads.
 */
#ifndef HF_VOLUME_H
#define HF_VOLUME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "objstore.h"

struct hf_volume;

/* Optional local hooks (the WAL and cache issue fills them; NULL members
 * are no-ops).  All must be thread safe; opaque is passed back. */
struct hf_volume_hooks {
  void *opaque;
  /* Read-through cache of immutable physical ranges: copy len bytes of
   * segment seq at byte offset off into buf and return 0, or return
   * ENOENT on a miss.  Data returned is still CRC-checked by the volume. */
  int (*cache_get) (void *opaque, uint64_t seq, uint64_t off, void *buf,
                    size_t len);
  /* Offer verified bytes of a committed segment to the cache, with
   * the CRC32C of each block of len (the segment's, borrowed: the cache
   * keeps them instead of hashing the bytes again), or crcs NULL (the
   * cache computes them: index nodes). */
  void (*cache_put) (void *opaque, uint64_t seq, uint64_t off,
                     const void *buf, size_t len, const uint32_t *crcs);
  /* Persistent keeping of compressed segments' frame tables (NULL:
   * none), so that after a restart a read that misses the cache costs
   * one GET, not a table GET first: get copies what was put for seq
   * into a new *buf (the caller frees) of *len bytes and returns 0, or
   * returns ENOENT; the volume checks it again (hf_seg_tables_decode). */
  int (*tables_get) (void *opaque, uint64_t seq, void **buf, size_t *len);
  void (*tables_put) (void *opaque, uint64_t seq, const void *buf,
                      size_t len);
};

struct hf_volume_options {
  size_t segment_size;          /* seal at this many buffered data bytes;
                                   0 = default 32 MiB */
  unsigned flush_interval_ms;   /* seal a non-empty buffer this old;
                                   0 = default 5000; UINT32_MAX = never */
  size_t dirty_limit;           /* buffered + uploading data bytes before
                                   writers wait; 0 = 4 * segment_size */
  unsigned max_uploads;         /* segments uploading at once; 0 = 4 */
  size_t node_cache;            /* clean B+tree nodes kept in memory;
                                   0 = default 16384 (64 MiB); a
                                   checkpoint merge pins up to as many
                                   again, one batch at a time */
  uint64_t checkpoint_entries;  /* checkpoint when this many extent
                                   entries accumulated since the last one;
                                   0 = default 262144 */
  unsigned checkpoint_segments; /* ... or this many segments; 0 = 64.
                                   With both 0, the thresholds also grow
                                   with the index (mapped blocks / 8) */
  unsigned lease_ttl_s;         /* writer lease lifetime; 0 = 60 */
  bool takeover;                /* claim a lease that has expired */
  bool break_lease;             /* claim the lease even if it is live
                                   (tests; admin recovery) */
  bool accept_older_head;       /* open at the newest intact chain even
                                   when a newer segment is damaged or the
                                   lease records a newer head (refused
                                   otherwise: EBADMSG, ESTALE); for
                                   hyperfile rollback and fsck */
  bool readonly;                /* no lease, no writes (EROFS) */
  uint64_t at_seq;              /* readonly at this segment; 0 = head */
  const struct hf_s3_config *parent_cfg; /* borrowed, for the open only:
                                   S3 settings (endpoint, credentials)
                                   to reach a clone's parents at their
                                   URLs; NULL = the environment's */
  const struct hf_volume_hooks *hooks; /* borrowed; must outlive the
                                          volume; NULL = none */
  const char *wal_dir;          /* write-ahead log directory (borrowed,
                                   created if missing); NULL = no log:
                                   flush waits for the store.  Ignored
                                   when readonly */
  uint64_t wal_max_bytes;       /* log space before writers wait for
                                   uploads; 0 = 1 GiB */
  unsigned flush_timeout_ms;    /* flush (and close) give up with EIO
                                   when the store keeps failing this
                                   long; the data stays queued and keeps
                                   being retried; 0 = 60000 */
  unsigned list_batch;          /* segment keys listed at a time at open
                                   (volume-recover.c); 0 = 1000, a LIST
                                   page.  Tests set a few */
};

/* Write flags. */
#define HF_VOL_FUA 0x1

/* Create a volume of size bytes (rounded up to block_size; block_size 0
 * = 4096) under prefix (borrowed; "" or ending in '/') in store
 * (borrowed; must outlive every volume opened on it).  Writes only the
 * volume descriptor (with grouped segment keys on a store that lists
 * whole, format.h HF_VD_SEG_GROUPS).  EEXIST if a volume is already
 * there. */
extern int hf_volume_create (struct hf_objstore *store, const char *prefix,
                             uint64_t size, uint32_t block_size);
/* The same with grouped segment keys (format.h, HF_VD_SEG_GROUPS) on
 * any store; hf_volume_create groups them on a store that lists whole
 * (hf_objstore_lists_whole) only.  For tests. */
extern int hf_volume_create_grouped (struct hf_objstore *store,
                                     const char *prefix, uint64_t size,
                                     uint32_t block_size);
/* The same, encrypted with the user's key uk (borrowed; NULL: not
 * encrypted): a new random data key is wrapped into the descriptor
 * (crypt.h).  Open it on a store passed through hf_crypt_attach. */
struct hf_user_key;
extern int hf_volume_create_key (struct hf_objstore *store,
                                 const char *prefix, uint64_t size,
                                 uint32_t block_size,
                                 const struct hf_user_key *uk);
/* The same, its segments compressed: codec 0 (not compressed) or
 * HF_SH_CODEC_ZSTD with level 1..19 or a fast level -1..-10
 * (hf_codec_parse reads the user's "zstd[:LEVEL]|off").  Recorded in
 * the descriptor, so every writer of the volume compresses alike.
 * EINVAL for anything else. */
extern int hf_volume_create_codec (struct hf_objstore *store,
                                   const char *prefix, uint64_t size,
                                   uint32_t block_size,
                                   const struct hf_user_key *uk,
                                   unsigned codec, int level);
/* Parse "off", "zstd" (level 1) or "zstd:LEVEL" (1..19, or -1..-10:
 * zstd's fast levels) into *codec and *level; EINVAL otherwise. */
extern int hf_codec_parse (const char *s, unsigned *codec, int *level);
/* Is level one a volume can be created with for codec (0 without)? */
extern bool hf_codec_level_ok (unsigned codec, int level);
/* What the user may write after compress=, for error messages. */
#define HF_CODEC_SYNTAX "zstd, zstd:LEVEL (1 to 19, or -1 to -10: " \
  "zstd's fast levels) or off"


/* Open the volume under prefix.  opts NULL = defaults (writable).  A
 * writable open takes the writer lease (EBUSY if another live writer
 * holds it; a lease left by a dead process on this host, or expired with
 * takeover set, is claimed), recovers the head, and starts the
 * background upload and timer threads.  On success *out is a new volume
 * the caller owns (close it with hf_volume_close); on error *out is
 * unchanged and one log line says why. */
extern int hf_volume_open (struct hf_objstore *store, const char *prefix,
                           const struct hf_volume_options *opts,
                           struct hf_volume **out);

extern int hf_volume_pread (struct hf_volume *v, void *buf, size_t count,
                            uint64_t offset);
extern int hf_volume_pwrite (struct hf_volume *v, const void *buf,
                             size_t count, uint64_t offset, unsigned flags);
/* Unmap: reads as zeros afterwards; costs no data bytes. */
extern int hf_volume_trim (struct hf_volume *v, uint64_t count,
                           uint64_t offset, unsigned flags);
/* Write zeros; whole blocks are unmapped, partial blocks written. */
extern int hf_volume_zero (struct hf_volume *v, uint64_t count,
                           uint64_t offset, unsigned flags);
extern int hf_volume_flush (struct hf_volume *v);

/* Report [offset, offset + count) as runs of data and holes, in order,
 * covering the range exactly (fn may be called once per run).  Data
 * that is buffered or uploading counts as data.  fn returns 0 to
 * continue, or a positive errno to stop (returned). */
typedef int (*hf_volume_extent_fn) (void *opaque, uint64_t offset,
                                    uint64_t length, bool hole);
extern int hf_volume_extents (struct hf_volume *v, uint64_t count,
                              uint64_t offset, hf_volume_extent_fn fn,
                              void *opaque);

/* Hint that [offset, offset + count) will be read soon. */
extern int hf_volume_prefetch (struct hf_volume *v, uint64_t count,
                               uint64_t offset);

/* Grow to new_size bytes (a multiple of the block size); EINVAL if it
 * is smaller than the current size.  Committed with the next segment. */
extern int hf_volume_grow (struct hf_volume *v, uint64_t new_size);

/* Shrink to new_size bytes (a multiple of the block size, at least one
 * block; EINVAL otherwise or if it is larger than the current size):
 * the blocks past it are unmapped and committed, then the new size is
 * committed; both are waited for.  Older points keep their size and
 * data.  ENOTSUP on a volume opened with a write-ahead log.  No other
 * call may run on v meanwhile (hyperfile resize holds the lease and is
 * the only user). */
extern int hf_volume_shrink (struct hf_volume *v, uint64_t new_size);

struct hf_volume_info {
  uint64_t size;
  uint32_t block_size;
  uint8_t uuid[16];
  uint32_t vd_flags;            /* the descriptor's HF_VD_* (format.h):
                                   the segment key layout */
  unsigned codec;               /* the descriptor's (0: not compressed) */
  int codec_level;              /* its level (1..19, -1..-10; 0) */
  bool readonly;
  bool fenced;                  /* another writer took over: EROFS */
  uint64_t head_seq;            /* newest committed segment (0: none) */
  uint64_t ckpt_seq;            /* segment of the newest checkpoint */
  uint64_t lease_epoch;
  uint64_t mapped_blocks;       /* in the B+tree, i.e. as of the last
                                   checkpoint merge (the delta since is
                                   not counted) */
  uint64_t segments_committed;  /* by this open */
  uint64_t checkpoints_written;
  uint64_t dirty_bytes;         /* buffered + uploading */
  uint64_t dirty_waits;         /* writes that waited for dirty_limit */
  uint64_t paced_writes;        /* writes delayed by pacing (pace.c) */
  uint64_t paced_us;            /* the delays they were given, in all */
  uint64_t pace_rate;           /* pacing's drain estimate, bytes/s */
  uint64_t uploads_in_flight;   /* segments sealed, not yet committed */
  uint64_t bytes_written;       /* by clients */
  uint64_t bytes_read;
  uint64_t data_bytes_uploaded; /* data-block bytes in segments */
  uint64_t meta_bytes_uploaded; /* headers, tables, nodes */
  uint64_t data_bytes_stored;   /* what data_bytes_uploaded took in the
                                   store (less when compressed) */
  uint64_t frame_table_gets;    /* compressed segments' frame tables read
                                   from the store (a GET before a read's
                                   own), and from the cache's table files
                                   (hooks->tables_get) */
  uint64_t frame_table_local;
  uint64_t cache_hits;
  uint64_t cache_misses;
  uint64_t cache_skipped;       /* committed segments left out of the
                                   cache (its queue was full) */
  uint64_t node_cache_nodes;
  bool wal;                     /* a write-ahead log is in use */
  uint64_t wal_bytes_live;      /* log bytes not yet released */
  uint64_t wal_appends, wal_syncs, wal_sync_waiters, wal_waits;
  uint64_t wal_writes;          /* record writes (several records each
                                   under concurrent appends) */
  uint64_t wal_replayed;        /* records replayed at open */
  uint64_t last_commit_ns;      /* wall clock of this open's newest
                                   commit (0: none yet) */
  uint64_t lease_renewals;      /* successful renewals by this open */
  uint64_t lease_renew_failures;
  uint64_t lease_renewed_ns;    /* wall clock of the newest acquire or
                                   renewal (0: no lease) */
};
extern void hf_volume_get_info (struct hf_volume *v,
                                struct hf_volume_info *out);

/* Make the older point in time seq the head again: commit a segment
 * with HF_SH_ROLLBACK | HF_SH_CHECKPOINT whose checkpoint is seq's whole
 * state and size (format.h, "Points in time"); the segments between seq
 * and the old head stay on the chain, readable with at_seq.  v must be
 * writable.  seq must be a point on the head's chain (hf_history_point
 * checks that; any intact chain is accepted here) and older than the
 * head (else EINVAL).  Data written before the call is committed first.
 * Reads go on meanwhile (the head's state until the rollback's is in
 * place); a write made during the call lands before the rollback (it
 * is undone) or after it.  On success *new_seq (may be NULL) is the
 * rollback segment's seq.  If reading seq fails, nothing changes (the
 * error is returned); if writes keep committing while seq's state is
 * put in place, EBUSY and nothing changes. */
extern int hf_volume_rollback (struct hf_volume *v, uint64_t seq,
                               uint64_t *new_seq);

/* ---- Compaction (used by lib/gc.c) ---- */

/* Move blocks [lba, lba + n) into the write buffer, if and only if each
 * is still mapped to block blk + i of segment seq at the moment it is
 * moved (a concurrent client write always wins).  crcs (borrowed) are
 * the n blocks' CRCs; the data is read and verified first.  *moved is
 * the number of blocks moved.  The moved copies are committed like any
 * write (flush or checkpoint).  EROFS on a read-only or fenced
 * volume. */
extern int hf_volume_relocate (struct hf_volume *v, uint64_t lba, uint32_t n,
                               uint64_t seq, uint32_t blk,
                               const uint32_t *crcs, uint32_t *moved);

/* Make the index path to lba (mapped or not) part of the next
 * checkpoint, unchanged in content, so that index nodes living in an
 * old segment get a fresh copy and stop pinning that segment. */
extern int hf_volume_touch_index (struct hf_volume *v, uint64_t lba);

/* Seal what is buffered and commit a checkpoint segment (the head then
 * needs no roll-forward); waits for it like flush.  EROFS if
 * read-only. */
extern int hf_volume_checkpoint (struct hf_volume *v);

/* Commit everything, release the lease, stop threads and free v.
 * Returns 0, or the error that kept data from being committed (v is
 * freed either way; the error has been logged). */
extern int hf_volume_close (struct hf_volume *v);

/* Tests only: free v as if the process died right now: nothing is
 * flushed, uploads in flight are abandoned (they may or may not land),
 * the lease is not released. */
extern void hf_volume_crash (struct hf_volume *v);

#endif /* HF_VOLUME_H */
