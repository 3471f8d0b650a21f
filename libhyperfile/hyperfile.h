/* hyperfile.h: libhyperfile, the file-like C API of hyperfile.
 *
 * A hyperfile volume is a sparse array of bytes kept in an object store
 * (S3 or S3-compatible, or a local directory) as a log of immutable
 * segments, with an optional local write-ahead log and block cache.
 * This header is the library's only public interface; libhyperfile(3)
 * documents it in full.
 *
 * Stability: the handle (struct hf_file) is opaque.  The options
 * struct may grow at its end in later versions; its first field holds
 * the size the caller was compiled with (hf_file_options_init sets
 * it), so a program built against this version keeps working.
 *
 * Errors: every function returning int returns 0 on success or a
 * positive errno value (EINVAL, ENOSPC, EROFS, EIO, EBADMSG, ENOENT,
 * EEXIST, EBUSY, EOPNOTSUPP, ENOMEM, EACCES, ...); errno itself is not
 * used.  One log line (hf_file_set_log) says what went wrong.
 *
 * Thread safety is stated at each function.  In short: I/O, flush,
 * resize, extents and snapshots may run concurrently on one handle;
 * hf_file_close must not run concurrently with anything on it.
 */
#ifndef HYPERFILE_H
#define HYPERFILE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Version of this header (the library's is hf_file_version ()). */
#define HF_FILE_VERSION_MAJOR 0
#define HF_FILE_VERSION_MINOR 3

/* The largest volume: INT64_MAX rounded down to the largest block size
 * (2^63 - 64 KiB). */
#define HF_FILE_MAX_SIZE ((uint64_t) INT64_MAX & ~(uint64_t) 65535)

/* An open volume.  Opaque: its layout is private to the library. */
struct hf_file;

/* Option flags (struct hf_file_options, flags). */
#define HF_FILE_READONLY      0x1u /* no writer lease; writes fail EROFS */
#define HF_FILE_TAKEOVER      0x2u /* claim a writer lease that expired */
#define HF_FILE_VIRTUAL_HOST  0x4u /* S3: bucket.host addressing */
#define HF_FILE_NO_TLS_VERIFY 0x8u /* S3: do not verify certificates */
/* Since 0.3.  S3: a directory bucket (S3 Express One Zone): sessions
 * from CreateSession, virtual-host addressing, the zonal endpoint made
 * from the bucket name unless endpoint is set.  Implied by a bucket
 * named NAME--ZONEID--x-s3, as in the plugin (express=). */
#define HF_FILE_EXPRESS       0x10u

/* How to reach and run a volume.  Initialise with hf_file_options_init,
 * then set what you need; zero/NULL fields take the defaults.  Strings
 * are borrowed for the duration of the call they are passed to (the
 * library copies what it keeps). */
struct hf_file_options {
  size_t size;                  /* sizeof (struct hf_file_options) as
                                   compiled; set by hf_file_options_init */
  unsigned flags;               /* HF_FILE_* above */

  /* S3 (ignored for a directory store).  NULL = the standard AWS
   * environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
   * AWS_SESSION_TOKEN, AWS_REGION / AWS_DEFAULT_REGION,
   * AWS_ENDPOINT_URL, AWS_PROFILE and ~/.aws/credentials. */
  const char *endpoint;         /* "http://127.0.0.1:9000"; NULL = AWS */
  const char *region;
  const char *access_key;
  const char *secret_key;       /* never logged */
  const char *session_token;    /* never logged */
  const char *profile;
  const char *ca_file;

  /* Local directories (created 0700 when missing, their parent must
   * exist; refused if others can write them or they are symlinks). */
  const char *wal_dir;          /* write-ahead log: flush returns once
                                   writes are in it; NULL = none: flush
                                   waits for the store */
  const char *cache_dir;        /* block cache; NULL = none */
  uint64_t cache_size;          /* cache capacity; 0 = 1 GiB */

  uint64_t segment_size;        /* bytes per segment, 64 KiB to 4 GiB;
                                   0 = 32 MiB */
  uint32_t flush_interval_ms;   /* seal buffered writes this old;
                                   0 = 5000 */
  uint32_t block_size;          /* hf_file_create only: 512 to 65536, a
                                   power of 2; 0 = 4096 */
  const char *at;               /* open read-only at a point in time:
                                   segment seq (digits), ISO 8601 UTC
                                   time, or snapshot name; NULL = now */

  /* Since 0.3.  Client-side encryption (hyperfile-format(5),
   * ENCRYPTION): the user's key of an encrypted volume, at most one of
   * the two.  hf_file_create with a key makes an encrypted volume;
   * hf_file_open of one without its key is ENOKEY, with a wrong key
   * EKEYREJECTED, with the other kind of key or a key for a volume that
   * is not encrypted EINVAL; hf_file_clone of one needs a key, which
   * wraps the clone's copy of the data key.  NULL = no key. */
  const char *key_file;         /* a file of 32 random bytes or 64 hex
                                   digits, readable by its owner only */
  const char *key;              /* a passphrase (scrypt); never logged */

  /* Added after 0.3. */
  const char *compress;         /* hf_file_create only: "zstd",
                                   "zstd:LEVEL" (1 to 19, or -1 to -10:
                                   zstd's fast levels) or "off";
                                   NULL = off */
};

/* Fill *opts with the defaults and set opts->size.  Thread safe. */
extern void hf_file_options_init (struct hf_file_options *opts);

/* Create a volume of size bytes (1 to HF_FILE_MAX_SIZE, rounded up to
 * the block size) at url:
 * s3://BUCKET[/PREFIX], file:///DIR or a directory path (created if
 * missing).  Only opts' store fields, block_size and compress are
 * used; opts may
 * be NULL.  EEXIST if a volume is already there (not logged: "create
 * unless it exists" is an ordinary pattern).  Thread safe. */
extern int hf_file_create (const char *url, uint64_t size,
                           const struct hf_file_options *opts);

/* Open the volume at url (opts NULL = defaults, writable).  A writable
 * open takes the volume's writer lease: EBUSY while another live writer
 * holds it, ENOENT if there is no volume.  opts->at implies read-only.
 * On success *out is a new handle the caller owns (hf_file_close); on
 * error *out is unchanged.  Thread safe (each call opens its own
 * handle). */
extern int hf_file_open (const char *url, const struct hf_file_options *opts,
                         struct hf_file **out);

/* Flags for writes, trim and zero. */
#define HF_FILE_FUA 0x1u        /* durable (as after flush) on return */

/* Read or write count bytes at any byte offset.  Partial blocks are
 * read-modify-written inside the engine; concurrent writes to
 * different bytes of one block all land.  A write is atomic with
 * respect to crashes: after a crash it is wholly there or not at all.
 * offset + count beyond the size: EINVAL (read), ENOSPC (write).
 * EROFS on a read-only handle.  Thread safe. */
extern int hf_file_pread (struct hf_file *f, void *buf, size_t count,
                          uint64_t offset);
extern int hf_file_pwrite (struct hf_file *f, const void *buf, size_t count,
                           uint64_t offset, unsigned flags);

/* Discard (trim) or zero [offset, offset + count): both read back as
 * zeros and whole blocks cost no data in the store.  Thread safe. */
extern int hf_file_trim (struct hf_file *f, uint64_t count, uint64_t offset,
                         unsigned flags);
extern int hf_file_zero (struct hf_file *f, uint64_t count, uint64_t offset,
                         unsigned flags);

/* Make every write completed before the call durable: in the
 * write-ahead log if there is one, else committed to the store.  A
 * no-op on a read-only handle.  Thread safe. */
extern int hf_file_flush (struct hf_file *f);

/* Since 0.3. Hint that [offset, offset + count) will be read soon.
 * With a cache_dir, what of it is in the store is read into the local
 * block cache (at most 8 MiB from offset per call; data not yet
 * uploaded is in memory already) before the call returns; without
 * one, read-ahead from offset is started in the background.  Nothing
 * is returned to the caller; a later read is served locally.  Out of
 * range: EINVAL; store errors as for hf_file_pread.  Thread safe. */
extern int hf_file_prefetch (struct hf_file *f, uint64_t count,
                             uint64_t offset);

/* Grow the volume to new_size bytes (a multiple of the block size, at
 * most HF_FILE_MAX_SIZE: else EINVAL).  Shrinking is not supported by the engine: EOPNOTSUPP.
 * The same size is a no-op.  Thread safe; a write beyond the old size
 * may start only after resize returned. */
extern int hf_file_resize (struct hf_file *f, uint64_t new_size);

/* Current size in bytes, and the block size (the unit of the store's
 * mapping; I/O aligned to it avoids read-modify-write).  Thread
 * safe. */
extern uint64_t hf_file_size (struct hf_file *f);
extern uint32_t hf_file_block_size (struct hf_file *f);

/* Extent types. */
#define HF_FILE_EXTENT_DATA 0u
#define HF_FILE_EXTENT_HOLE 1u  /* reads as zeros, stores nothing */

/* Report [offset, offset + count) as runs of data and holes, in order,
 * covering the range exactly (runs of one type may be split).  fn
 * returns 0 to continue or a positive errno to stop (hf_file_extents
 * then returns it).  Out of range: EINVAL.  Thread safe. */
typedef int (*hf_file_extent_fn) (void *opaque, uint64_t offset,
                                  uint64_t length, unsigned type);
extern int hf_file_extents (struct hf_file *f, uint64_t count,
                            uint64_t offset, hf_file_extent_fn fn,
                            void *opaque);

/* Name the current state of a writable volume as snapshot name (1 to
 * 128 characters of [A-Za-z0-9._-], not starting with '.' and not all
 * digits: else EINVAL).  Every write completed before the call is
 * committed to the store first (this waits for uploads).  On success
 * *seq (may be NULL) is the snapshot's point (segment seq).  EEXIST if
 * the name is taken; EROFS on a read-only handle.  Thread safe. */
extern int hf_file_snapshot_create (struct hf_file *f, const char *name,
                                    uint64_t *seq);

/* Call fn once per snapshot of the volume, sorted by name; name is
 * borrowed for the call, timestamp_ns is the point's time (ns since the
 * epoch, UTC).  fn returns 0 to continue or a positive errno to stop
 * (returned).  Thread safe. */
typedef int (*hf_file_snapshot_fn) (void *opaque, const char *name,
                                    uint64_t seq, uint64_t timestamp_ns);
extern int hf_file_snapshot_list (struct hf_file *f, hf_file_snapshot_fn fn,
                                  void *opaque);

/* Since 0.2. Delete snapshot name.  Its point stays readable by seq
 * or time while retention keeps it (hf_file_gc).  ENOENT if there is no
 * such snapshot, EINVAL for an invalid name.  Works on read-only
 * handles too (the name is an object of its own, not a write to the
 * volume).  Thread safe. */
extern int hf_file_snapshot_delete (struct hf_file *f, const char *name);

/* Since 0.2. Make the older point at (segment seq, ISO 8601 UTC time or
 * snapshot name, as opts->at) the volume's state again.  Every write
 * completed before the call is committed first; then one segment is
 * committed whose state is that point's (size included); the points in
 * between stay readable with at=.  Reads go on meanwhile; a write made
 * during the call lands before the rollback (and is undone) or after
 * it.  On success *new_seq (may be NULL) is the new head.  EROFS on a
 * read-only handle, EINVAL if at is no point of the volume or is not
 * older than the head, EBUSY if writes kept committing while the point
 * was put in place.  On error nothing changed.  Thread safe. */
extern int hf_file_rollback (struct hf_file *f, const char *at,
                             uint64_t *new_seq);

/* Since 0.2. Create at clone_url a new volume whose initial state is
 * point at (NULL = the head) of the volume at parent_url: it shares the
 * parent's segments up to that point (nothing is copied) and writes its
 * own from then on.  The parent records the clone, so that its garbage
 * collection keeps what the clone reads.  opts (may be NULL) gives the
 * store settings of both URLs.  A directory clone_url is created.
 * EEXIST if a volume is at clone_url, EINVAL if at is no point or both
 * URLs name the same volume.  On success *base_seq (may be NULL) is the
 * parent's point the clone starts from.  Thread safe. */
extern int hf_file_clone (const char *parent_url, const char *at,
                          const char *clone_url,
                          const struct hf_file_options *opts,
                          uint64_t *base_seq);

/* Flags for hf_file_gc. */
#define HF_FILE_GC_DRY_RUN 0x1u  /* report what would go, delete nothing */

/* What hf_file_gc found and did. */
struct hf_file_gc_report {
  uint64_t head_seq;            /* the head it kept */
  uint64_t segments;            /* segment objects listed */
  uint64_t bytes;               /* their total size */
  uint64_t live_bytes;          /* data and index bytes the head uses */
  uint64_t deleted_segments;    /* deleted (dry run: deletable) */
  uint64_t deleted_bytes;
  uint64_t compacted_segments;  /* emptied by moving their live blocks */
  uint64_t reserved[8];         /* zero; for later versions */
};

/* Since 0.2. Collect garbage: delete the segments that no retained
 * point needs.  Kept: the head, every state of the last retain_ns
 * nanoseconds (0 = only the head), every snapshot and every clone's
 * base, and for ten minutes more (readers that opened an old point)
 * anything that just left that set.  On a writable handle sparse
 * segments are also compacted through f; on a read-only one nothing is
 * compacted (a writer elsewhere may hold the volume: safe beside it).
 * flags: HF_FILE_GC_* above.  *rep (may be NULL) receives the figures.
 * Thread safe. */
extern int hf_file_gc (struct hf_file *f, uint64_t retain_ns, unsigned flags,
                       struct hf_file_gc_report *rep);

/* Commit every write, release the writer lease and free f.  Returns 0,
 * or the error that kept data from being committed (f is freed either
 * way; with a write-ahead log that data is replayed by the next open).
 * Call it once, after every other call on f has returned. */
extern int hf_file_close (struct hf_file *f);

/* Log levels passed to the log function. */
#define HF_FILE_LOG_ERROR 0
#define HF_FILE_LOG_WARN  1
#define HF_FILE_LOG_INFO  2
#define HF_FILE_LOG_DEBUG 3

/* Send the library's log lines (without trailing newline; never
 * containing credentials) to fn instead of stderr; NULL restores
 * stderr.  Process-wide; fn must be thread safe.  Call it before
 * opening volumes. */
typedef void (*hf_file_log_fn) (int level, const char *msg);
extern void hf_file_set_log (hf_file_log_fn fn);

/* Turn debug messages of an area ("s3", "volume", "wal", "cache",
 * "history") on or off.  Process-wide; thread safe. */
extern void hf_file_set_debug (const char *area, int on);

/* The library's version, "MAJOR.MINOR.PATCH".  Thread safe. */
extern const char *hf_file_version (void);

#ifdef __cplusplus
}
#endif

#endif /* HYPERFILE_H */
