/* hyperfile: the write-ahead log's internals, shared by its files (not
 * a public header: lib/wal.h is the contract).
 *
 * Where things live
 * -----------------
 *   wal-file.c   log files: names, header encoding, reference counts,
 *                creating (preallocation), complete writes, directory
 *                sync
 *   wal-open.c   opening: the lock file, listing the directory, reading
 *                and checking every record (the scan), cutting the log
 *                after the last valid record; close; hf_wal_replay
 *   wal.c        appending: reservation, the record write, rotation and
 *                reuse of released files, group commit (hf_wal_sync),
 *                release, queries
 *
 * Locks: one mutex, w->lock (see CONCURRENCY below).  Fields of struct
 * hf_wal and struct hf_wal_file say what guards them.
 *
 * ON-DISK FORMAT (all integers little-endian; also in hyperfile-format(5),
 * section WAL RECORDS)
 *
 *   DIR/wal.lock             empty; flock(LOCK_EX) held while a process
 *                            has the log open (a second opener: EBUSY)
 *   DIR/wal-HEX16.log        log files; HEX16 is the LSN of the file's
 *                            first record in 16 lowercase hex digits, so
 *                            names sort in LSN order
 *
 * The directory is created with mode 0700, files with mode 0600.  A log
 * file is a 512-byte file header followed by records, each starting on a
 * 512-byte boundary.  Files are preallocated (fallocate) to file_size
 * (at most a quarter of the free space, and smaller when even that
 * fails, so a nearly full disk still takes records);
 * the unused tail reads as zeros, and an all-zero record header is the
 * normal end of a file.
 *
 *   File header (512 bytes)
 *    OFFSET SIZE DESCRIPTION
 *         0    4 fh_magic        "HFWL"
 *         4    2 fh_version      1
 *         6    2 fh_hdr_size     512
 *         8    4 fh_flags        HF_WAL_FH_REUSED (1): the file was
 *                                reused, bytes after its records are
 *                                left over from its earlier life
 *        12    4 fh_align        512, the record alignment
 *        16   16 fh_volume_uuid  the volume the records belong to
 *        32    8 fh_first_lsn    LSN of the first record (= the name)
 *        40    8 fh_log_id       random, chosen when the log was created
 *                                empty; every record carries it
 *        48  460 fh_reserved     zero
 *       508    4 fh_crc          CRC32C of bytes 0 to 507
 *
 *   Record header (64 bytes), then the data, then zeros up to the next
 *   multiple of 512
 *    OFFSET SIZE DESCRIPTION
 *         0    4 wr_magic        "HFWR"
 *         4    2 wr_version      1
 *         6    2 wr_hdr_size     64
 *         8    4 wr_flags        0
 *        12    4 wr_type         HF_WAL_WRITE, _TRIM, _ZERO, _GROW, or
 *                                255 = padding (no data, skipped by
 *                                replay; fills the slot of a record whose
 *                                write failed)
 *        16    8 wr_lsn          log sequence number
 *        24    8 wr_offset       logical byte offset (GROW: new size)
 *        32    8 wr_len          logical length; data bytes for WRITE
 *        40    8 wr_rec_size     bytes of the whole record on disk
 *                                (header + data + padding, multiple of
 *                                512)
 *        48    8 wr_log_id       fh_log_id of the log
 *        56    4 wr_reserved     zero
 *        60    4 wr_crc          CRC32C of bytes 0 to 59, then the data
 *
 * Why 512-byte alignment: it is the smallest unit any disk writes
 * atomically, so appending a record never rewrites a sector holding an
 * earlier record, and a torn append can only damage itself.  4096 would
 * cost a 4 KiB write 8 KiB of log instead of 4.5 KiB.
 *
 * Validity.  A log is the files in LSN order; in each, records follow
 * the header back to back with LSNs increasing by one, continuing across
 * files (a file's first LSN is the previous file's last + 1).  A record
 * is valid when magic, version, sizes, type, log id, LSN and CRC check.
 * Open stops at the first record that is not valid (or a file header
 * that is not, or a gap in LSNs between files), logs it with file and
 * offset unless it is the clean end (zeros or end of file; in a reused
 * file also an older LSN, which in a fresh file is damage), truncates
 * the file there, deletes every later file and syncs that, so the next
 * append follows the last valid record and no discarded record can come
 * back.  A file header of another volume uuid fails open with EINVAL
 * before anything is changed.
 *
 * CONCURRENCY.  One mutex (w->lock) protects the in-memory state (see
 * struct hf_wal).  An append reserves its LSN and file offset under the
 * lock, then writes header, data and padding without it (GROUP WRITE),
 * then retakes the lock to mark its LSN written.  Writes therefore
 * complete out of order; w->written_lsn is the highest LSN L such that
 * every record <= L is written (a ring of done flags tracks the ones
 * above it).  Rotation (creating the next file) is done by one appender
 * at a time without the lock (w->rotating); other appenders wait.  Log
 * files are reference counted: the list holds one reference, and each
 * in-flight write or sync holds one, so release can unlink a file while
 * a write or sync still uses its descriptor.
 *
 * GROUP WRITE.  One record write is in flight at a time (w->writing;
 * concurrent writes to one file serialize on its inode lock anyway).
 * An appender that finds none in flight writes its record at once,
 * alone: no waiting, no added latency at queue depth 1.  One that finds
 * a write in flight queues its record (w->wq, in LSN order, on its own
 * stack) and sleeps on its semaphore; when the write completes, its
 * writer wakes the first queued as the lead, which writes everything
 * queued by then: each run of records that follow each other in one
 * file (reserved one after the other) is one pwritev of up to
 * HF_WAL_BATCH_IOV iovecs.  A batch holds only reserved records, so it
 * never exceeds the log's space; a full log still makes reserve wait.
 * Each record keeps its own header and CRC, so a batch torn anywhere by
 * a crash replays the records before the tear (open stops at the first
 * bad one).  A failed write fails every record of its run (each slot is
 * overwritten with a padding record, see FAILURE RULES).
 *
 * ACKNOWLEDGEMENT.  An append returns only once its record AND every
 * record reserved before it are written (LSN <= written_lsn): replay
 * stops at the first slot not written, so a record acknowledged behind
 * an unwritten one would be lost if the process were killed at that
 * moment, and the contract is that a killed process loses nothing
 * acknowledged (the page cache keeps it).  A record written before its
 * predecessors waits in w->ackq (LSN order); whoever writes the record
 * that advances written_lsn past it wakes it.  A reserved record is
 * always written (the API requires it, failures write padding), so
 * every wait ends.
 *
 * GROUP COMMIT.  hf_wal_sync (w) takes target = the highest LSN reserved
 * when it is called (that covers every record appended before the call).
 * Then, under the lock, in a loop:
 *   - synced_lsn >= target: done;
 *   - a sync is in flight: wait for it (if it covers target we are done
 *     when it completes, otherwise we go round again);
 *   - written_lsn < target: wait for the writes to complete;
 *   - otherwise become the syncer: upto = written_lsn (everything whose
 *     write has completed, possibly more than target), pick every file
 *     holding records in (synced_lsn, upto] and the directory if a file
 *     was created since its last sync, drop the lock, issue one
 *     IORING_OP_FSYNC (IORING_FSYNC_DATASYNC for files) per descriptor on
 *     the log's io_uring and wait for all, retake the lock, publish
 *     synced_lsn = upto and wake everyone.
 * Callers arriving while a sync is in flight all share the next one, so
 * N concurrent callers cost at most two fdatasyncs.  Only the syncer
 * touches the ring (w->sync_inflight is the token).
 *
 * FAILURE RULES.
 *   - fdatasync fails: the log is dead (w->sticky_err = EIO, logged
 *     once); every later append and sync returns EIO until reopen.  An
 *     fsync is never retried: after a failure the page cache may have
 *     dropped the dirty pages.
 *   - Space: appends wait while bytes_live + record > max_bytes (and
 *     something is live), until hf_wal_release deletes a file.
 *   - ENOSPC: files are preallocated at creation, so a full disk shows
 *     up as a failed fallocate when rotating; the half-created file is
 *     unlinked, the append returns ENOSPC (logged once until an append
 *     succeeds again) and nothing was reserved.  If a record's pwritev
 *     fails anyway (a filesystem without fallocate, EIO), its reserved
 *     slot is overwritten with a padding record so later records stay
 *     reachable, and the append returns the error; if even that fails
 *     the log goes sticky EIO.
 *
 * SPACE ACCOUNTING.  stats.bytes_live and bytes_appended count records
 * as they lie on disk (header + data + padding).  A released record
 * stays live until its whole file is deleted, so bytes_live, which
 * max_bytes bounds, is the log's real disk use (plus the preallocated,
 * still unused end of the newest file).  A record larger than max_bytes
 * is admitted once nothing else is live; one larger than file_size gets
 * a file of its own size.
 *
 * The lock file and the io_uring ring do not survive fork: open the log
 * in the process that uses it (after nbdkit daemonizes).
 *
 * Testing hook: the environment variable HF_WAL_TEST_FAIL_SYNC=N, read
 * at open, makes the N-th sync of that log fail with EIO as if
 * fdatasync had (the fsync is not issued).
 */
#ifndef HF_WAL_INT_H
#define HF_WAL_INT_H

#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "format.h"
#include "wal.h"

/* ---- Layout ---- */

#define HF_WAL_ALIGN      512
#define HF_WAL_FHDR_SIZE  512
#define HF_WAL_RHDR_SIZE  64
#define HF_WAL_VERSION    1
#define HF_WAL_FH_MAGIC   0x4c575748    /* "HFWL" */
#define HF_WAL_WR_MAGIC   0x52574648    /* "HFWR" */
#define HF_WAL_PAD        255           /* internal record type */
#define HF_WAL_FH_REUSED  1             /* fh_flags: a reused file */
#define HF_WAL_MAX_DATA   (UINT64_C (1) << 30)

/* File header field offsets. */
#define HF_WAL_FH_MAGIC_OFF    0
#define HF_WAL_FH_VERSION_OFF  4
#define HF_WAL_FH_HSIZE_OFF    6
#define HF_WAL_FH_FLAGS_OFF    8
#define HF_WAL_FH_ALIGN_OFF    12
#define HF_WAL_FH_UUID_OFF     16
#define HF_WAL_FH_FIRST_OFF    32
#define HF_WAL_FH_LOGID_OFF    40
#define HF_WAL_FH_CRC_OFF      508

/* Record header field offsets. */
#define HF_WAL_WR_MAGIC_OFF    0
#define HF_WAL_WR_VERSION_OFF  4
#define HF_WAL_WR_HSIZE_OFF    6
#define HF_WAL_WR_FLAGS_OFF    8
#define HF_WAL_WR_TYPE_OFF     12
#define HF_WAL_WR_LSN_OFF      16
#define HF_WAL_WR_OFFSET_OFF   24
#define HF_WAL_WR_LEN_OFF      32
#define HF_WAL_WR_RSIZE_OFF    40
#define HF_WAL_WR_LOGID_OFF    48
#define HF_WAL_WR_CRC_OFF      60

_Static_assert (HF_WAL_FH_CRC_OFF + 4 == HF_WAL_FHDR_SIZE, "file header");
_Static_assert (HF_WAL_WR_CRC_OFF + 4 == HF_WAL_RHDR_SIZE, "record header");
_Static_assert (HF_WAL_FHDR_SIZE % HF_WAL_ALIGN == 0, "alignment");

/* On-disk size of a record carrying datalen bytes. */
#define HF_WAL_REC_SIZE(datalen) \
  (((datalen) + HF_WAL_RHDR_SIZE + HF_WAL_ALIGN - 1) & \
   ~(uint64_t) (HF_WAL_ALIGN - 1))

#define HF_WAL_DEFAULT_MAX_BYTES  (UINT64_C (1) << 30)
#define HF_WAL_DEFAULT_FILE_SIZE  (UINT64_C (64) << 20)
#define HF_WAL_MIN_FILE_SIZE      (UINT64_C (8) << 10)
#define HF_WAL_READ_CHUNK         ((size_t) 1 << 20)
#define HF_WAL_RING_ENTRIES       16
#define HF_WAL_BATCH_IOV          256   /* iovecs of one record write */
#define HF_WAL_LOCK_NAME          "wal.lock"
#define HF_WAL_NAME_LEN           24    /* "wal-" HEX16 ".log" */
#define HF_WAL_SPARE_NAME         "wal-spare"   /* a released file kept */

struct hf_wal_pending;          /* wal.c: a record waiting for its write */

/* One log file.  Every field but refs is protected by w->lock; the
 * immutable ones (name, first_lsn, fd) may be read by a holder of a
 * reference without it.  refs: atomic, see hf_wal_file_unref. */
struct hf_wal_file {
  struct hf_wal_file *next;     /* list in LSN order; NULL: last */
  char name[HF_WAL_NAME_LEN + 1];
  int fd;
  uint64_t first_lsn;           /* LSN of the first record, the name */
  uint64_t last_lsn;            /* highest LSN reserved here;
                                   first_lsn - 1 while empty */
  uint64_t used;                /* next free byte (header included) */
  uint64_t size;                /* preallocated size; appends stay below */
  unsigned refs;                /* list + in-flight writes and syncs */
};

struct hf_wal {
  /* Set at open, then read-only. */
  char *dir;
  int dirfd;
  int lockfd;                   /* holds the flock */
  uint8_t uuid[HF_UUID_SIZE];
  uint64_t log_id;
  uint64_t max_bytes;
  uint64_t file_size;
  uint64_t fail_sync_at;        /* test hook: 0 or the sync to fail */
  bool use_uring;
  /* Used only by the thread that owns the in-flight sync
   * (sync_inflight), so no lock. */
  struct io_uring ring;

  /* lock protects everything below, and the file fields noted above. */
  pthread_mutex_t lock;
  pthread_cond_t space_cond;    /* bytes_live dropped, or log dead */
  pthread_cond_t rotate_cond;   /* rotating became false */
  pthread_cond_t sync_cond;     /* a sync completed, or written_lsn moved
                                   while write_waiters > 0 */
  struct hf_wal_file *head, *tail;      /* files in LSN order */
  struct hf_wal_file *spare;    /* released file to reuse, or NULL */
  bool spare_claimed;           /* a release is making one, or a
                                   rotation renaming it away: the one
                                   renamer of HF_WAL_SPARE_NAME */
  bool rotating;                /* an appender creates the next file */
  uint64_t next_lsn;            /* LSN the next append gets */
  uint64_t written_lsn;         /* records <= this are written */
  uint64_t synced_lsn;          /* records <= this are durable */
  uint64_t sync_upto;           /* what the in-flight sync covers */
  bool sync_inflight;
  unsigned write_waiters;       /* syncs waiting for written_lsn */
  uint8_t *done;                /* done[lsn & (done_cap - 1)] for LSNs
                                   in (written_lsn, next_lsn) */
  uint64_t done_cap;            /* power of 2 */
  struct hf_wal_pending *wq;    /* records waiting for the next write,
                                   in LSN order (GROUP WRITE) */
  struct hf_wal_pending *ackq;  /* written records waiting for one
                                   reserved before them, in LSN order */
  bool writing;                 /* a leader owns the record writes
                                   (atomic; cleared under lock) */
  uint64_t dir_gen, dir_synced_gen;     /* directory changes / synced */
  uint64_t syncs_started;       /* for the test hook */
  int sticky_err;               /* 0, or EIO after a failed sync */
  bool enospc_logged;           /* ENOSPC logged since the last success */
  bool replayed, appended;
  struct hf_wal_stats st;       /* files and bytes_live maintained live */
};

/* wal-file.c */
extern void hf_wal_file_unref (struct hf_wal_file *f);
extern void hf_wal_file_ref (struct hf_wal_file *f);
extern void hf_wal_name (char *buf, uint64_t first_lsn);
extern bool hf_wal_parse_name (const char *name, uint64_t *lsn);
extern int hf_wal_pwrite_all (int fd, const void *buf, size_t len,
                              uint64_t off);
extern int hf_wal_pwritev_all (int fd, struct iovec *iov, int n, uint64_t off);
extern void hf_wal_encode_fhdr (const struct hf_wal *w, uint8_t *h,
                                uint64_t first_lsn, uint32_t flags);
extern void hf_wal_encode_rhdr (const struct hf_wal *w, uint8_t *h,
                                uint32_t type, uint64_t lsn, uint64_t offset,
                                uint64_t len, uint64_t rec_size,
                                const void *data, uint64_t datalen,
                                const uint32_t *data_crc);
extern uint64_t hf_wal_datalen (uint32_t type, uint64_t len);
extern bool hf_wal_all_zero (const uint8_t *p, size_t n);
extern int hf_wal_fsync_dir (struct hf_wal *w);
extern struct hf_wal_file *hf_wal_file_new (const char *name, int fd,
                                            uint64_t first_lsn);
extern void hf_wal_list_append (struct hf_wal *w, struct hf_wal_file *f);
extern int hf_wal_preallocate (int fd, uint64_t size);

#endif /* HF_WAL_INT_H */
