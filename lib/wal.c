/* hyperfile: local write-ahead log (see wal.h for the contract).
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
 * lock, then writes header, data and padding with one pwritev without
 * it, then retakes the lock to mark its LSN written.  Writes therefore
 * complete out of order; w->written_lsn is the highest LSN L such that
 * every record <= L is written (a ring of done flags tracks the ones
 * above it).  Rotation (creating the next file) is done by one appender
 * at a time without the lock (w->rotating); other appenders wait.  Log
 * files are reference counted: the list holds one reference, and each
 * in-flight write or sync holds one, so release can unlink a file while
 * a write or sync still uses its descriptor.
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
#include <config.h>

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "crc32c.h"
#include "format.h"
#include "localdir.h"
#include "log.h"
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
#define HF_WAL_LOCK_NAME          "wal.lock"
#define HF_WAL_NAME_LEN           24    /* "wal-" HEX16 ".log" */
#define HF_WAL_SPARE_NAME         "wal-spare"   /* a released file kept */

static const uint8_t hf_wal_zeros[HF_WAL_ALIGN];

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
  uint64_t dir_gen, dir_synced_gen;     /* directory changes / synced */
  uint64_t syncs_started;       /* for the test hook */
  int sticky_err;               /* 0, or EIO after a failed sync */
  bool enospc_logged;           /* ENOSPC logged since the last success */
  bool replayed, appended;
  struct hf_wal_stats st;       /* files and bytes_live maintained live */
};

/* ---- Small helpers ---- */

static void
hf_wal_file_unref (struct hf_wal_file *f)
{
  if (__atomic_sub_fetch (&f->refs, 1, __ATOMIC_ACQ_REL) == 0) {
    close (f->fd);
    free (f);
  }
}

static void
hf_wal_file_ref (struct hf_wal_file *f)
{
  __atomic_add_fetch (&f->refs, 1, __ATOMIC_RELAXED);
}

static void
hf_wal_name (char *buf, uint64_t first_lsn)
{
  snprintf (buf, HF_WAL_NAME_LEN + 1, "wal-%016" PRIx64 ".log", first_lsn);
}

/* Parse a log file name; false if name is not one. */
static bool
hf_wal_parse_name (const char *name, uint64_t *lsn)
{
  uint64_t v = 0;
  int i;

  if (strlen (name) != HF_WAL_NAME_LEN || strncmp (name, "wal-", 4) != 0 ||
      strcmp (name + 20, ".log") != 0)
    return false;
  for (i = 4; i < 20; i++) {
    char c = name[i];
    int d;
    if (c >= '0' && c <= '9')
      d = c - '0';
    else if (c >= 'a' && c <= 'f')
      d = c - 'a' + 10;
    else
      return false;
    v = v << 4 | (uint64_t) d;
  }
  *lsn = v;
  return true;
}

static int
hf_wal_pwrite_all (int fd, const void *buf, size_t len, uint64_t off)
{
  const uint8_t *p = buf;

  while (len > 0) {
    ssize_t r = pwrite (fd, p, len, (off_t) off);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    if (r == 0)
      return EIO;
    p += r;
    len -= (size_t) r;
    off += (uint64_t) r;
  }
  return 0;
}

/* Write the iovecs at off, resuming after short writes.  iov is
 * modified. */
static int
hf_wal_pwritev_all (int fd, struct iovec *iov, int n, uint64_t off)
{
  while (n > 0) {
    ssize_t r = pwritev (fd, iov, n, (off_t) off);
    if (r < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    if (r == 0)
      return EIO;
    off += (uint64_t) r;
    while (n > 0 && (size_t) r >= iov->iov_len) {
      r -= (ssize_t) iov->iov_len;
      iov++;
      n--;
    }
    if (n > 0) {
      iov->iov_base = (uint8_t *) iov->iov_base + r;
      iov->iov_len -= (size_t) r;
    }
  }
  return 0;
}

static void
hf_wal_encode_fhdr (const struct hf_wal *w, uint8_t *h, uint64_t first_lsn,
                    uint32_t flags)
{
  memset (h, 0, HF_WAL_FHDR_SIZE);
  hf_put_le32 (h + HF_WAL_FH_MAGIC_OFF, HF_WAL_FH_MAGIC);
  hf_put_le32 (h + HF_WAL_FH_FLAGS_OFF, flags);
  hf_put_le16 (h + HF_WAL_FH_VERSION_OFF, HF_WAL_VERSION);
  hf_put_le16 (h + HF_WAL_FH_HSIZE_OFF, HF_WAL_FHDR_SIZE);
  hf_put_le32 (h + HF_WAL_FH_ALIGN_OFF, HF_WAL_ALIGN);
  memcpy (h + HF_WAL_FH_UUID_OFF, w->uuid, HF_UUID_SIZE);
  hf_put_le64 (h + HF_WAL_FH_FIRST_OFF, first_lsn);
  hf_put_le64 (h + HF_WAL_FH_LOGID_OFF, w->log_id);
  hf_put_le32 (h + HF_WAL_FH_CRC_OFF, hf_crc32c (0, h, HF_WAL_FH_CRC_OFF));
}

/* Fill a record header; the CRC covers it and then data. */
static void
hf_wal_encode_rhdr (const struct hf_wal *w, uint8_t *h, uint32_t type,
                    uint64_t lsn, uint64_t offset, uint64_t len,
                    uint64_t rec_size, const void *data, uint64_t datalen)
{
  uint32_t crc;

  memset (h, 0, HF_WAL_RHDR_SIZE);
  hf_put_le32 (h + HF_WAL_WR_MAGIC_OFF, HF_WAL_WR_MAGIC);
  hf_put_le16 (h + HF_WAL_WR_VERSION_OFF, HF_WAL_VERSION);
  hf_put_le16 (h + HF_WAL_WR_HSIZE_OFF, HF_WAL_RHDR_SIZE);
  hf_put_le32 (h + HF_WAL_WR_TYPE_OFF, type);
  hf_put_le64 (h + HF_WAL_WR_LSN_OFF, lsn);
  hf_put_le64 (h + HF_WAL_WR_OFFSET_OFF, offset);
  hf_put_le64 (h + HF_WAL_WR_LEN_OFF, len);
  hf_put_le64 (h + HF_WAL_WR_RSIZE_OFF, rec_size);
  hf_put_le64 (h + HF_WAL_WR_LOGID_OFF, w->log_id);
  crc = hf_crc32c (0, h, HF_WAL_WR_CRC_OFF);
  if (datalen > 0)
    crc = hf_crc32c (crc, data, datalen);
  hf_put_le32 (h + HF_WAL_WR_CRC_OFF, crc);
}

/* Data bytes a record of this type and len carries. */
static uint64_t
hf_wal_datalen (uint32_t type, uint64_t len)
{
  return type == HF_WAL_WRITE ? len : 0;
}

static bool
hf_wal_all_zero (const uint8_t *p, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

static int
hf_wal_fsync_dir (struct hf_wal *w)
{
  if (fsync (w->dirfd) == -1) {
    int err = errno;
    hf_error ("wal: fsync %s: %s", w->dir, strerror (err));
    return err;
  }
  return 0;
}

/* ---- Reading (open and replay) ---- */

/* A buffered reader over one file. */
struct hf_wal_reader {
  int fd;
  uint64_t file_len;
  uint8_t *buf;
  size_t cap;
  uint64_t buf_off;             /* file offset of buf[0] */
  size_t buf_len;               /* valid bytes in buf */
};

/* Make [off, off + len) available; *p points at it.  Returns the number
 * of bytes available (less than len at end of file), or -errno. */
static int64_t
hf_wal_read_at (struct hf_wal_reader *r, uint64_t off, size_t len,
                const uint8_t **p)
{
  size_t want, got = 0;

  if (off >= r->buf_off && off + len <= r->buf_off + r->buf_len) {
    *p = r->buf + (off - r->buf_off);
    return (int64_t) len;
  }
  want = len > HF_WAL_READ_CHUNK ? len : HF_WAL_READ_CHUNK;
  if (off >= r->file_len)
    want = 0;
  else if (want > r->file_len - off)
    want = (size_t) (r->file_len - off);
  if (want > r->cap) {
    uint8_t *nb = realloc (r->buf, want);
    if (nb == NULL)
      return -ENOMEM;
    r->buf = nb;
    r->cap = want;
  }
  r->buf_off = off;
  r->buf_len = 0;
  while (got < want) {
    ssize_t n = pread (r->fd, r->buf + got, want - got, (off_t) (off + got));
    if (n < 0) {
      if (errno == EINTR)
        continue;
      return -errno;
    }
    if (n == 0)
      break;
    got += (size_t) n;
  }
  r->buf_len = got;
  *p = r->buf;
  return (int64_t) (got < len ? got : len);
}

/* What a scan found. */
struct hf_wal_scan {
  uint64_t end;                 /* offset after the last valid record */
  uint64_t last_lsn;            /* its LSN (expect - 1 if none) */
  const char *why;              /* NULL: clean end; else why it stopped */
};

/* Scan the records of file f from its header on, expecting LSN expect
 * first.  For valid records with LSN > after (and not padding), call fn
 * if it is not NULL.  Returns 0 (see *sc), fn's error, or an errno for
 * I/O errors. */
/* Stop a scan at off for reason why: damage, unless the file is a
 * reused one (see hf_wal_scan_file). */
static int
hf_wal_scan_stop (struct hf_wal *w, const char *name, uint64_t off,
                  bool reused, struct hf_wal_scan *sc, const char *why)
{
  if (reused)
    hf_debug ("wal", "%s/%s: records end at offset %" PRIu64 " (%s; the "
              "rest is from the file's earlier use)", w->dir, name, off, why);
  else
    sc->why = why;
  return 0;
}

static int
hf_wal_scan_file (struct hf_wal *w, struct hf_wal_reader *r,
                  const char *name, uint64_t expect, uint64_t after,
                  hf_wal_replay_fn fn, void *opaque, struct hf_wal_scan *sc)
{
  uint64_t off = HF_WAL_FHDR_SIZE;
  const uint8_t *h;
  bool reused;
  int64_t n;

  sc->why = NULL;
  /* A reused file (fh_flags HF_WAL_FH_REUSED) holds what its earlier
   * life left after the new records: old records, or the middle of
   * one.  There, the first record that is not valid is the end of the
   * file's records, not damage; whether the log continues is decided by
   * the next file's first LSN, as for any file. */
  n = hf_wal_read_at (r, 0, HF_WAL_FHDR_SIZE, &h);
  if (n < 0) {
    hf_error ("wal: %s/%s: read at 0: %s", w->dir, name, strerror ((int) -n));
    return (int) -n;
  }
  reused = n >= HF_WAL_FHDR_SIZE &&
    (hf_le32 (h + HF_WAL_FH_FLAGS_OFF) & HF_WAL_FH_REUSED) != 0;
  for (;;) {
    uint32_t type, crc;
    uint64_t lsn, len, rec_size, datalen;

    sc->end = off;
    sc->last_lsn = expect - 1;
    n = hf_wal_read_at (r, off, HF_WAL_RHDR_SIZE, &h);
    if (n < 0) {
      hf_error ("wal: %s/%s: read at %" PRIu64 ": %s", w->dir, name, off,
                strerror ((int) -n));
      return (int) -n;
    }
    if (n == 0)
      return 0;                 /* end of file */
    if (hf_wal_all_zero (h, (size_t) n))
      return 0;                 /* preallocated, never written */
    if (n < HF_WAL_RHDR_SIZE) {
      return hf_wal_scan_stop (w, name, off, reused, sc,
        "record header cut short by the end of the file");
    }
    if (hf_le32 (h + HF_WAL_WR_MAGIC_OFF) != HF_WAL_WR_MAGIC) {
      return hf_wal_scan_stop (w, name, off, reused, sc,
                               "bad record magic");
    }
    if (hf_le16 (h + HF_WAL_WR_VERSION_OFF) != HF_WAL_VERSION ||
        hf_le16 (h + HF_WAL_WR_HSIZE_OFF) != HF_WAL_RHDR_SIZE ||
        hf_le32 (h + HF_WAL_WR_FLAGS_OFF) != 0) {
      return hf_wal_scan_stop (w, name, off, reused, sc,
        "unsupported record version, header size or flags");
    }
    type = hf_le32 (h + HF_WAL_WR_TYPE_OFF);
    lsn = hf_le64 (h + HF_WAL_WR_LSN_OFF);
    len = hf_le64 (h + HF_WAL_WR_LEN_OFF);
    rec_size = hf_le64 (h + HF_WAL_WR_RSIZE_OFF);
    if (type != HF_WAL_WRITE && type != HF_WAL_TRIM && type != HF_WAL_ZERO &&
        type != HF_WAL_GROW && type != HF_WAL_PAD) {
      return hf_wal_scan_stop (w, name, off, reused, sc,
                               "unknown record type");
    }
    datalen = type == HF_WAL_PAD ? 0 : hf_wal_datalen (type, len);
    if (datalen > HF_WAL_MAX_DATA || rec_size % HF_WAL_ALIGN != 0 ||
        rec_size < HF_WAL_REC_SIZE (datalen)) {
      return hf_wal_scan_stop (w, name, off, reused, sc,
                               "bad record size");
    }
    if (rec_size > r->file_len - off) {
      return hf_wal_scan_stop (w, name, off, reused, sc,
                               "record cut short by the end of the file");
    }
    if (hf_le64 (h + HF_WAL_WR_LOGID_OFF) != w->log_id) {
      return hf_wal_scan_stop (w, name, off, reused, sc,
                               "record of another log (log id)");
    }
    /* A file reused after release (see hf_wal_rotate) still holds its
     * old records after the new ones: an older LSN of this log is the
     * clean end.  A record header lies within one 512-byte sector, so
     * it is wholly old or wholly new.  In a fresh file nothing but
     * damage puts an older record there. */
    if (lsn < expect) {
      if (reused)
        return 0;
      return hf_wal_scan_stop (w, name, off, reused, sc,
                               "older LSN in a file that was never reused");
    }
    if (lsn != expect) {
      return hf_wal_scan_stop (w, name, off, reused, sc,
                               "LSN out of sequence");
    }
    n = hf_wal_read_at (r, off, HF_WAL_RHDR_SIZE + datalen, &h);
    if (n < 0) {
      hf_error ("wal: %s/%s: read at %" PRIu64 ": %s", w->dir, name, off,
                strerror ((int) -n));
      return (int) -n;
    }
    if ((uint64_t) n < HF_WAL_RHDR_SIZE + datalen) {
      return hf_wal_scan_stop (w, name, off, reused, sc,
                               "record cut short by the end of the file");
    }
    crc = hf_crc32c (0, h, HF_WAL_WR_CRC_OFF);
    crc = hf_crc32c (crc, h + HF_WAL_RHDR_SIZE, datalen);
    if (crc != hf_le32 (h + HF_WAL_WR_CRC_OFF)) {
      return hf_wal_scan_stop (w, name, off, reused, sc,
                               "record CRC mismatch");
    }
    if (fn && lsn > after && type != HF_WAL_PAD) {
      int err = fn (opaque, lsn, type, hf_le64 (h + HF_WAL_WR_OFFSET_OFF),
                    len, datalen > 0 ? h + HF_WAL_RHDR_SIZE :
                    type == HF_WAL_WRITE ? (const void *) "" : NULL);
      if (err)
        return err;
    }
    off += rec_size;
    expect++;
  }
}

/* ---- Open ---- */

/* A file found in the directory at open. */
struct hf_wal_found {
  uint64_t lsn;
  char name[HF_WAL_NAME_LEN + 1];
  int fd;                       /* -1 until opened */
  bool hdr_ok;                  /* header valid and of this volume */
  uint64_t log_id;
  uint64_t size, end, last_lsn; /* from the scan */
};

static int
hf_wal_found_cmp (const void *a, const void *b)
{
  const struct hf_wal_found *x = a, *y = b;

  return x->lsn < y->lsn ? -1 : x->lsn > y->lsn;
}

static void
hf_wal_format_uuid (char *buf, const uint8_t *u)
{
  int i;

  for (i = 0; i < HF_UUID_SIZE; i++)
    sprintf (buf + 2 * i, "%02x", u[i]);
}

/* List the log files of the directory, sorted, opened, headers checked.
 * On success the caller owns *out (and its descriptors). */
static int
hf_wal_list (struct hf_wal *w, struct hf_wal_found **out, size_t *nout)
{
  struct hf_wal_found *v = NULL;
  size_t n = 0, cap = 0, i;
  struct dirent *d;
  DIR *dp;
  int fd, err = 0;

  fd = dup (w->dirfd);
  if (fd == -1)
    return errno;
  dp = fdopendir (fd);
  if (dp == NULL) {
    err = errno;
    close (fd);
    return err;
  }
  rewinddir (dp);
  while ((errno = 0, d = readdir (dp)) != NULL) {
    uint64_t lsn;
    if (!hf_wal_parse_name (d->d_name, &lsn))
      continue;
    if (n == cap) {
      struct hf_wal_found *nv;
      cap = cap ? cap * 2 : 16;
      nv = realloc (v, cap * sizeof *v);
      if (nv == NULL) {
        err = ENOMEM;
        goto out;
      }
      v = nv;
    }
    v[n].lsn = lsn;
    memcpy (v[n].name, d->d_name, HF_WAL_NAME_LEN + 1);
    v[n].fd = -1;
    v[n].hdr_ok = false;
    v[n].log_id = 0;
    n++;
  }
  if (errno) {
    err = errno;
    hf_error ("wal: readdir %s: %s", w->dir, strerror (err));
    goto out;
  }
  if (n > 0)
    qsort (v, n, sizeof *v, hf_wal_found_cmp);

  for (i = 0; i < n; i++) {
    uint8_t h[HF_WAL_FHDR_SIZE];
    ssize_t r;

    v[i].fd = hf_localdir_openat (w->dirfd, v[i].name, O_RDWR);
    if (v[i].fd == -1) {
      err = errno;
      hf_error ("wal: open %s/%s: %s", w->dir, v[i].name,
                hf_localdir_strerror (err));
      goto out;
    }
    r = pread (v[i].fd, h, sizeof h, 0);
    if (r < 0) {
      err = errno;
      hf_error ("wal: read %s/%s: %s", w->dir, v[i].name, strerror (err));
      goto out;
    }
    if (r < (ssize_t) sizeof h ||
        hf_le32 (h + HF_WAL_FH_MAGIC_OFF) != HF_WAL_FH_MAGIC ||
        hf_le16 (h + HF_WAL_FH_VERSION_OFF) != HF_WAL_VERSION ||
        hf_le16 (h + HF_WAL_FH_HSIZE_OFF) != HF_WAL_FHDR_SIZE ||
        hf_le32 (h + HF_WAL_FH_ALIGN_OFF) != HF_WAL_ALIGN ||
        hf_le32 (h + HF_WAL_FH_CRC_OFF) !=
        hf_crc32c (0, h, HF_WAL_FH_CRC_OFF) ||
        hf_le64 (h + HF_WAL_FH_FIRST_OFF) != v[i].lsn)
      continue;                 /* torn or damaged: hdr_ok stays false */
    if (memcmp (h + HF_WAL_FH_UUID_OFF, w->uuid, HF_UUID_SIZE) != 0) {
      char theirs[2 * HF_UUID_SIZE + 1], ours[2 * HF_UUID_SIZE + 1];
      hf_wal_format_uuid (theirs, h + HF_WAL_FH_UUID_OFF);
      hf_wal_format_uuid (ours, w->uuid);
      hf_error ("wal: %s/%s belongs to volume %s, not to this volume %s; "
                "refusing to use this log directory", w->dir, v[i].name,
                theirs, ours);
      err = EINVAL;
      goto out;
    }
    v[i].hdr_ok = true;
    v[i].log_id = hf_le64 (h + HF_WAL_FH_LOGID_OFF);
  }
  *out = v;
  *nout = n;
  v = NULL;
  n = 0;
 out:
  for (i = 0; i < n; i++)
    if (v[i].fd >= 0)
      close (v[i].fd);
  free (v);
  closedir (dp);
  return err;
}

static struct hf_wal_file *
hf_wal_file_new (const char *name, int fd, uint64_t first_lsn)
{
  struct hf_wal_file *f = calloc (1, sizeof *f);

  if (f == NULL)
    return NULL;
  memcpy (f->name, name, HF_WAL_NAME_LEN + 1);
  f->fd = fd;
  f->first_lsn = first_lsn;
  f->last_lsn = first_lsn - 1;
  f->used = HF_WAL_FHDR_SIZE;
  f->refs = 1;
  return f;
}

static void
hf_wal_list_append (struct hf_wal *w, struct hf_wal_file *f)
{
  f->next = NULL;
  if (w->tail)
    w->tail->next = f;
  else
    w->head = f;
  w->tail = f;
  w->st.files++;
}

/* Preallocate [0, size) of fd.  Filesystems without fallocate are fine
 * (the file grows with the writes). */
static int
hf_wal_preallocate (int fd, uint64_t size)
{
  if (fallocate (fd, 0, 0, (off_t) size) == -1) {
    if (errno == EOPNOTSUPP || errno == ENOSYS)
      return 0;
    return errno;
  }
  return 0;
}

/* Load the log: verify every file, cut it after the last valid record,
 * and build w's file list and LSN counters. */
static int
hf_wal_load (struct hf_wal *w, uint64_t first_lsn)
{
  struct hf_wal_found *v = NULL;
  struct hf_wal_reader r = { .fd = -1 };
  struct hf_wal_file *f;
  size_t n = 0, i, keep = 0;
  uint64_t expect = 0, last = 0;
  bool have_records = false, deleted = false;
  int err;

  err = hf_wal_list (w, &v, &n);
  if (err)
    return err;

  /* Find how far the log is valid: files [0, keep) are kept, the last of
   * them up to v[keep - 1].end. */
  for (i = 0; i < n; i++) {
    struct hf_wal_scan sc;
    struct stat stbuf;

    if (!v[i].hdr_ok) {
      if (i + 1 < n)
        hf_error ("wal: %s/%s: damaged file header; discarding the log "
                  "from here on", w->dir, v[i].name);
      else
        hf_warn ("wal: %s/%s: incomplete file header (crash while "
                 "creating it?); discarding it", w->dir, v[i].name);
      break;
    }
    if (i == 0) {
      w->log_id = v[0].log_id;
      expect = v[0].lsn;
    }
    else if (v[i].log_id != w->log_id || v[i].lsn != expect) {
      hf_error ("wal: %s/%s: does not continue the log (expected first "
                "LSN %" PRIu64 "); discarding the log from here on",
                w->dir, v[i].name, expect);
      break;
    }
    if (fstat (v[i].fd, &stbuf) == -1) {
      err = errno;
      goto out;
    }
    r.fd = v[i].fd;
    r.file_len = (uint64_t) stbuf.st_size;
    r.buf_len = 0;
    err = hf_wal_scan_file (w, &r, v[i].name, expect, 0, NULL, NULL, &sc);
    if (err)
      goto out;
    keep = i + 1;
    v[i].size = (uint64_t) stbuf.st_size;
    v[i].end = sc.end;
    v[i].last_lsn = sc.last_lsn;
    if (sc.last_lsn >= expect) {
      have_records = true;
      last = sc.last_lsn;
    }
    expect = sc.last_lsn + 1;
    if (sc.why) {
      hf_error ("wal: %s/%s: torn or corrupt record at offset %" PRIu64
                " (%s); the log ends before it (LSN %" PRIu64 "), "
                "discarding the rest", w->dir, v[i].name, sc.end, sc.why,
                sc.last_lsn);
      break;
    }
  }

  /* An empty or obsolete log (the caller says everything <= first_lsn is
   * safe elsewhere): start over after first_lsn. */
  if (!have_records || last < first_lsn) {
    if (have_records)
      hf_info ("wal: %s: records up to LSN %" PRIu64 " are older than "
               "first_lsn %" PRIu64 "; discarding them", w->dir, last,
               first_lsn);
    keep = 0;
  }

  /* Delete what is not kept, newest first, so a crash in between cannot
   * leave a later file without an earlier one. */
  for (i = n; i > keep; i--) {
    if (unlinkat (w->dirfd, v[i - 1].name, 0) == -1) {
      err = errno;
      hf_error ("wal: unlink %s/%s: %s", w->dir, v[i - 1].name,
                strerror (err));
      goto out;
    }
    deleted = true;
  }

  /* The kept files become the list. */
  for (i = 0; i < keep; i++) {
    f = hf_wal_file_new (v[i].name, v[i].fd, v[i].lsn);
    if (f == NULL) {
      err = ENOMEM;
      goto out;
    }
    v[i].fd = -1;
    f->used = v[i].end;
    f->size = v[i].size;
    f->last_lsn = v[i].last_lsn;
    hf_wal_list_append (w, f);
    w->st.bytes_live += f->used - HF_WAL_FHDR_SIZE;
  }
  if ((f = w->tail) != NULL) {
    /* Everything after the last valid record goes, so that no stale
     * record can reappear behind new appends; then preallocate again. */
    if (ftruncate (f->fd, (off_t) f->used) == -1) {
      err = errno;
      hf_error ("wal: truncate %s/%s: %s", w->dir, f->name, strerror (err));
      goto out;
    }
    f->size = f->used > w->file_size ? f->used : w->file_size;
    if (hf_wal_preallocate (f->fd, f->size) != 0)
      f->size = f->used;        /* full: the next append rotates */
  }
  /* Make the cut and all kept records durable before anything new can
   * be synced behind them. */
  for (f = w->head; f; f = f->next)
    if (fdatasync (f->fd) == -1) {
      err = errno;
      hf_error ("wal: fdatasync %s/%s: %s", w->dir, f->name,
                strerror (err));
      goto out;
    }
  if (deleted) {
    err = hf_wal_fsync_dir (w);
    if (err)
      goto out;
  }

  if (w->head)
    w->next_lsn = last + 1;
  else {
    w->next_lsn = first_lsn + 1;
    if (getrandom (&w->log_id, sizeof w->log_id, 0) != sizeof w->log_id) {
      /* Not security relevant: it only tells logs apart. */
      struct timespec ts;
      clock_gettime (CLOCK_REALTIME, &ts);
      w->log_id = ((uint64_t) ts.tv_sec * 1000000007u) ^
        (uint64_t) ts.tv_nsec ^ ((uint64_t) getpid () << 32);
    }
  }
  w->written_lsn = w->synced_lsn = w->next_lsn - 1;
  hf_debug ("wal", "%s: %zu file(s), next LSN %" PRIu64, w->dir, keep,
            w->next_lsn);

 out:
  for (i = 0; i < n; i++)
    if (v[i].fd >= 0)
      close (v[i].fd);
  free (v);
  free (r.buf);
  return err;
}

int
hf_wal_open (const struct hf_wal_options *opts, struct hf_wal **out)
{
  struct hf_wal *w;
  const char *s;
  int err, ret;

  if (opts == NULL || opts->dir == NULL || out == NULL)
    return EINVAL;
  w = calloc (1, sizeof *w);
  if (w == NULL)
    return ENOMEM;
  w->dirfd = w->lockfd = -1;
  memcpy (w->uuid, opts->volume_uuid, HF_UUID_SIZE);
  w->max_bytes = opts->max_bytes ? opts->max_bytes : HF_WAL_DEFAULT_MAX_BYTES;
  w->file_size = opts->file_size ? opts->file_size : HF_WAL_DEFAULT_FILE_SIZE;
  if (w->file_size < HF_WAL_MIN_FILE_SIZE)
    w->file_size = HF_WAL_MIN_FILE_SIZE;
  w->file_size = (w->file_size + HF_WAL_ALIGN - 1) &
    ~(uint64_t) (HF_WAL_ALIGN - 1);
  s = getenv ("HF_WAL_TEST_FAIL_SYNC");
  if (s)
    w->fail_sync_at = strtoull (s, NULL, 10);
  w->done_cap = 64;
  w->done = calloc (w->done_cap, 1);
  w->dir = strdup (opts->dir);
  if (w->dir == NULL || w->done == NULL) {
    err = ENOMEM;
    goto err0;
  }

  err = hf_localdir_open ("wal", w->dir, &w->dirfd);
  if (err)
    goto err0;
  w->lockfd = hf_localdir_openat (w->dirfd, HF_WAL_LOCK_NAME,
                                  O_RDWR | O_CREAT);
  if (w->lockfd == -1) {
    err = errno;
    hf_error ("wal: open %s/%s: %s", w->dir, HF_WAL_LOCK_NAME,
              hf_localdir_strerror (err));
    goto err1;
  }
  if (flock (w->lockfd, LOCK_EX | LOCK_NB) == -1) {
    err = errno == EWOULDBLOCK ? EBUSY : errno;
    if (err == EBUSY)
      hf_error ("wal: %s is in use by another hyperfile process (or "
                "another open of it) holding %s/%s", w->dir, w->dir,
                HF_WAL_LOCK_NAME);
    else
      hf_error ("wal: flock %s/%s: %s", w->dir, HF_WAL_LOCK_NAME,
                strerror (err));
    goto err2;
  }

  err = pthread_mutex_init (&w->lock, NULL);
  if (err)
    goto err2;
  pthread_cond_init (&w->space_cond, NULL);
  pthread_cond_init (&w->rotate_cond, NULL);
  pthread_cond_init (&w->sync_cond, NULL);

  ret = io_uring_queue_init (HF_WAL_RING_ENTRIES, &w->ring, 0);
  if (ret < 0)
    hf_warn ("wal: io_uring_queue_init: %s; using fdatasync(2)",
             strerror (-ret));
  else
    w->use_uring = true;

  /* A spare left by an earlier process holds records of that log
   * instance; only this one's own spares are ever reused. */
  if (unlinkat (w->dirfd, HF_WAL_SPARE_NAME, 0) == 0)
    hf_debug ("wal", "%s/%s: removed", w->dir, HF_WAL_SPARE_NAME);
  err = hf_wal_load (w, opts->first_lsn);
  if (err)
    goto err3;
  *out = w;
  return 0;

 err3:
  /* Everything is set up by now: tear down as a close would. */
  hf_wal_close (w);
  return err;
 err2:
  close (w->lockfd);
 err1:
  close (w->dirfd);
 err0:
  free (w->dir);
  free (w->done);
  free (w);
  return err;
}

void
hf_wal_close (struct hf_wal *w)
{
  if (w == NULL)
    return;
  while (w->head) {
    struct hf_wal_file *f = w->head;
    w->head = f->next;
    hf_wal_file_unref (f);
  }
  if (w->spare) {
    unlinkat (w->dirfd, HF_WAL_SPARE_NAME, 0);
    hf_wal_file_unref (w->spare);
  }
  if (w->use_uring)
    io_uring_queue_exit (&w->ring);
  pthread_cond_destroy (&w->sync_cond);
  pthread_cond_destroy (&w->rotate_cond);
  pthread_cond_destroy (&w->space_cond);
  pthread_mutex_destroy (&w->lock);
  close (w->lockfd);            /* releases the flock */
  close (w->dirfd);
  free (w->dir);
  free (w->done);
  free (w);
}

/* ---- Replay ---- */

int
hf_wal_replay (struct hf_wal *w, uint64_t after, hf_wal_replay_fn fn,
               void *opaque)
{
  struct hf_wal_reader r = { .fd = -1 };
  struct hf_wal_file *f;
  uint64_t expect;
  int err = 0;

  if (fn == NULL)
    return EINVAL;
  pthread_mutex_lock (&w->lock);
  if (w->appended || w->replayed) {
    pthread_mutex_unlock (&w->lock);
    return EINVAL;              /* only once, before any append */
  }
  w->replayed = true;
  pthread_mutex_unlock (&w->lock);

  /* No append runs concurrently (contract), so the list is stable. */
  for (f = w->head; f; f = f->next) {
    struct hf_wal_scan sc;

    /* A file followed by one starting at or before after + 1 holds only
     * records <= after: skip it without reading. */
    if (f->next && f->next->first_lsn <= after + 1)
      continue;
    expect = f->first_lsn;
    r.fd = f->fd;
    r.file_len = f->used;
    r.buf_len = 0;
    err = hf_wal_scan_file (w, &r, f->name, expect, after, fn, opaque, &sc);
    if (err)
      break;
    if (sc.why || sc.last_lsn != f->last_lsn) {
      /* It verified at open: the disk changed under us. */
      hf_error ("wal: %s/%s: record at offset %" PRIu64 " no longer "
                "verifies (%s)", w->dir, f->name, sc.end,
                sc.why ? sc.why : "log shorter than at open");
      err = EIO;
      break;
    }
  }
  free (r.buf);
  return err;
}

/* ---- Append ---- */

/* Make room in the done ring for LSNs up to next_lsn.  Called with
 * w->lock held. */
static int
hf_wal_done_reserve (struct hf_wal *w)
{
  uint64_t need = w->next_lsn - w->written_lsn;   /* after reserving */
  uint64_t cap, l;
  uint8_t *nd;

  if (need <= w->done_cap)
    return 0;
  cap = w->done_cap * 2;
  while (cap < need)
    cap *= 2;
  nd = calloc (cap, 1);
  if (nd == NULL)
    return ENOMEM;
  for (l = w->written_lsn + 1; l < w->next_lsn; l++)
    nd[l & (cap - 1)] = w->done[l & (w->done_cap - 1)];
  free (w->done);
  w->done = nd;
  w->done_cap = cap;
  return 0;
}

/* Record LSN lsn as written and advance written_lsn.  w->lock held. */
static void
hf_wal_mark_written (struct hf_wal *w, uint64_t lsn)
{
  uint64_t before = w->written_lsn;

  w->done[lsn & (w->done_cap - 1)] = 1;
  while (w->written_lsn + 1 < w->next_lsn &&
         w->done[(w->written_lsn + 1) & (w->done_cap - 1)]) {
    w->written_lsn++;
    w->done[w->written_lsn & (w->done_cap - 1)] = 0;
  }
  if (w->written_lsn != before && w->write_waiters > 0)
    pthread_cond_broadcast (&w->sync_cond);
}

/* Make the log sticky-dead.  w->lock held. */
static void
hf_wal_set_dead (struct hf_wal *w)
{
  if (w->sticky_err == 0) {
    w->sticky_err = EIO;
    pthread_cond_broadcast (&w->space_cond);
    pthread_cond_broadcast (&w->rotate_cond);
    pthread_cond_broadcast (&w->sync_cond);
  }
}

/* Give the log a tail with room for rec_size bytes: create the next
 * file, or grow an empty tail.  Called with w->lock held and rotating
 * set by the caller; drops and retakes the lock. */
/* Turn the spare f into the log file name starting at LSN first: new
 * header first, then the rename, so whatever a crash leaves is either
 * the spare (removed at open) or a valid file whose old records read as
 * the clean end (older LSNs, see hf_wal_scan_file).  Reusing a file
 * overwrites page-cache pages that are already there instead of filling
 * fresh ones and allocating blocks: the log's share of the server's CPU
 * in a random-write profile was mostly that.  On failure f is gone. */
static int
hf_wal_reuse (struct hf_wal *w, struct hf_wal_file *f, const char *name,
              uint64_t first)
{
  uint8_t h[HF_WAL_FHDR_SIZE];
  int err;

  hf_wal_encode_fhdr (w, h, first, HF_WAL_FH_REUSED);
  err = hf_wal_pwrite_all (f->fd, h, sizeof h, 0);
  if (err == 0 && renameat (w->dirfd, HF_WAL_SPARE_NAME, w->dirfd, name) == -1)
    err = errno;
  if (err) {
    hf_warn ("wal: reusing %s/%s as %s: %s; creating a new file", w->dir,
             HF_WAL_SPARE_NAME, name, strerror (err));
    unlinkat (w->dirfd, HF_WAL_SPARE_NAME, 0);
    hf_wal_file_unref (f);
    return err;
  }
  /* Pages evicted since would make every partial-page append read
   * first: ask for them back in the background. */
  posix_fadvise (f->fd, 0, (off_t) f->size, POSIX_FADV_WILLNEED);
  memcpy (f->name, name, HF_WAL_NAME_LEN + 1);
  f->first_lsn = first;
  f->last_lsn = first - 1;
  f->used = HF_WAL_FHDR_SIZE;
  f->next = NULL;
  return 0;
}

static int
hf_wal_rotate (struct hf_wal *w, uint64_t rec_size)
{
  uint8_t h[HF_WAL_FHDR_SIZE];
  char name[HF_WAL_NAME_LEN + 1];
  struct hf_wal_file *f, *t = w->tail;
  uint64_t first = w->next_lsn;
  uint64_t size = w->file_size;
  int fd, err;
  uint64_t min = HF_WAL_FHDR_SIZE + rec_size;

  if (size < min)
    size = min;
  /* On a small file system, smaller files: a file is released only when
   * all its records have committed, so one file as big as the free
   * space would leave no room to rotate into meanwhile. */
  {
    struct statvfs sv;

    if (fstatvfs (w->dirfd, &sv) == 0) {
      uint64_t quarter = (uint64_t) sv.f_bavail * sv.f_frsize / 4;
      quarter &= ~(uint64_t) (HF_WAL_ALIGN - 1);
      if (quarter < size)
        size = quarter > min ? quarter : min;
    }
  }

  if (t && t->last_lsn < t->first_lsn) {
    /* An empty tail too small for an oversized record: grow it. */
    hf_wal_file_ref (t);
    pthread_mutex_unlock (&w->lock);
    err = hf_wal_preallocate (t->fd, size);
    pthread_mutex_lock (&w->lock);
    if (err == 0)
      t->size = size;
    else if ((err != ENOSPC && err != EDQUOT) || !w->enospc_logged) {
      hf_error ("wal: %s/%s: fallocate: %s", w->dir, t->name,
                strerror (err));
      if (err == ENOSPC || err == EDQUOT) {
        w->enospc_logged = true;
        err = ENOSPC;
      }
    }
    else
      err = ENOSPC;
    hf_wal_file_unref (t);
    return err;
  }

  hf_wal_name (name, first);
  if (w->spare && w->spare->size >= min) {
    assert (!w->spare_claimed);     /* set only while spare is NULL */
    f = w->spare;
    w->spare = NULL;
    /* The name HF_WAL_SPARE_NAME stays ours until the rename is done:
     * a release in between must not rename another file onto it (we
     * would rename that one, and the tail would be an unlinked inode). */
    w->spare_claimed = true;
    pthread_mutex_unlock (&w->lock);
    err = hf_wal_reuse (w, f, name, first);
    pthread_mutex_lock (&w->lock);
    w->spare_claimed = false;
    if (err == 0) {
      assert (w->next_lsn == first);
      hf_wal_list_append (w, f);
      w->dir_gen++;
      hf_debug ("wal", "%s/%s: reused", w->dir, name);
      return 0;
    }
  }
  pthread_mutex_unlock (&w->lock);
  fd = hf_localdir_openat (w->dirfd, name, O_RDWR | O_CREAT | O_EXCL);
  if (fd == -1) {
    err = errno;
    goto fail;
  }
  err = hf_wal_preallocate (fd, size);
  /* Short of space: smaller files still take records, so the log can
   * use the disk up to its last free blocks before appends fail. */
  while ((err == ENOSPC || err == EDQUOT) && size > min) {
    size = size / 2 > min ? (size / 2 + HF_WAL_ALIGN - 1) &
      ~(uint64_t) (HF_WAL_ALIGN - 1) : min;
    if (ftruncate (fd, 0) == -1) {
      err = errno;
      break;
    }
    err = hf_wal_preallocate (fd, size);
  }
  if (err == 0) {
    hf_wal_encode_fhdr (w, h, first, 0);
    err = hf_wal_pwrite_all (fd, h, sizeof h, 0);
  }
  if (err) {
    close (fd);
    unlinkat (w->dirfd, name, 0);
    goto fail;
  }
  f = hf_wal_file_new (name, fd, first);
  if (f == NULL) {
    close (fd);
    unlinkat (w->dirfd, name, 0);
    pthread_mutex_lock (&w->lock);
    return ENOMEM;
  }
  f->size = size;
  pthread_mutex_lock (&w->lock);
  /* next_lsn cannot have moved: appenders wait while we rotate. */
  assert (w->next_lsn == first);
  hf_wal_list_append (w, f);
  w->dir_gen++;
  hf_debug ("wal", "%s/%s: created", w->dir, name);
  return 0;

 fail:
  pthread_mutex_lock (&w->lock);
  if (err != ENOSPC && err != EDQUOT)
    hf_error ("wal: create %s/%s: %s", w->dir, name, strerror (err));
  else if (!w->enospc_logged) {
    w->enospc_logged = true;
    hf_error ("wal: create %s/%s: %s (the log's disk is full)", w->dir,
              name, strerror (err));
  }
  if (err == EDQUOT)
    err = ENOSPC;
  return err;
}

static int
hf_wal_check_args (uint32_t type, const void *data, uint64_t len)
{
  switch (type) {
  case HF_WAL_WRITE:
    if (len > HF_WAL_MAX_DATA || (data == NULL && len > 0))
      return EINVAL;
    return 0;
  case HF_WAL_TRIM: case HF_WAL_ZERO: case HF_WAL_GROW:
    return data != NULL ? EINVAL : 0;
  default:
    return EINVAL;
  }
}

/* Reserve the LSN and file space of a record (see wal.h). */
static int
hf_wal_reserve (struct hf_wal *w, uint32_t type, const void *data,
                uint64_t len, bool nowait, struct hf_wal_ticket *t)
{
  struct hf_wal_file *f;
  uint64_t rec_size;
  bool waited = false;
  int err;

  if (w == NULL || t == NULL)
    return EINVAL;
  err = hf_wal_check_args (type, data, len);
  if (err)
    return err;
  rec_size = HF_WAL_REC_SIZE (hf_wal_datalen (type, len));

  pthread_mutex_lock (&w->lock);
  for (;;) {
    if (w->sticky_err) {
      err = w->sticky_err;
      goto unlock;
    }
    if (w->st.bytes_live > 0 && w->st.bytes_live + rec_size > w->max_bytes) {
      if (nowait) {
        err = EAGAIN;
        goto unlock;
      }
      if (!waited) {
        waited = true;
        w->st.waits++;
      }
      pthread_cond_wait (&w->space_cond, &w->lock);
      continue;
    }
    if (w->rotating) {
      pthread_cond_wait (&w->rotate_cond, &w->lock);
      continue;
    }
    if (w->tail == NULL || w->tail->used + rec_size > w->tail->size) {
      w->rotating = true;
      err = hf_wal_rotate (w, rec_size);
      w->rotating = false;
      pthread_cond_broadcast (&w->rotate_cond);
      if (err)
        goto unlock;
      continue;                 /* recheck everything */
    }
    break;
  }
  err = hf_wal_done_reserve (w);
  if (err)
    goto unlock;
  f = w->tail;
  t->file = f;
  t->lsn = w->next_lsn++;
  t->off = f->used;
  t->rec_size = rec_size;
  f->used += rec_size;
  f->last_lsn = t->lsn;
  w->st.bytes_live += rec_size;
  w->appended = true;
  hf_wal_file_ref (f);
 unlock:
  pthread_mutex_unlock (&w->lock);
  return err;
}

int
hf_wal_write_reserved (struct hf_wal *w, const struct hf_wal_ticket *t,
                       uint32_t type, uint64_t offset, const void *data,
                       uint64_t len)
{
  struct hf_wal_file *f = t->file;
  uint64_t datalen = hf_wal_datalen (type, len), off = t->off;
  uint64_t lsn = t->lsn, rec_size = t->rec_size;
  uint8_t h[HF_WAL_RHDR_SIZE];
  struct iovec iov[3];
  int err, niov;

  /* Write without the lock. */
  hf_wal_encode_rhdr (w, h, type, lsn, offset, len, rec_size, data, datalen);
  iov[0].iov_base = h;
  iov[0].iov_len = HF_WAL_RHDR_SIZE;
  niov = 1;
  if (datalen > 0) {
    iov[niov].iov_base = (void *) data;
    iov[niov].iov_len = datalen;
    niov++;
  }
  if (rec_size > HF_WAL_RHDR_SIZE + datalen) {
    iov[niov].iov_base = (void *) hf_wal_zeros;
    iov[niov].iov_len = rec_size - HF_WAL_RHDR_SIZE - datalen;
    niov++;
  }
  err = hf_wal_pwritev_all (f->fd, iov, niov, off);
  if (err) {
    int perr;

    /* Leave no hole: fill the slot with a padding record so that the
     * records after it stay reachable. */
    hf_wal_encode_rhdr (w, h, HF_WAL_PAD, lsn, 0, 0, rec_size, NULL, 0);
    perr = hf_wal_pwrite_all (f->fd, h, HF_WAL_RHDR_SIZE, off);
    pthread_mutex_lock (&w->lock);
    if ((err != ENOSPC && err != EDQUOT) || !w->enospc_logged)
      hf_error ("wal: write %s/%s at offset %" PRIu64 ": %s", w->dir,
                f->name, off, strerror (err));
    if (err == ENOSPC || err == EDQUOT) {
      w->enospc_logged = true;
      err = ENOSPC;
    }
    if (perr) {
      hf_error ("wal: %s/%s: cannot pad the failed record at offset %"
                PRIu64 " (%s); the log refuses writes until reopened",
                w->dir, f->name, off, strerror (perr));
      hf_wal_set_dead (w);
    }
  }
  else {
    pthread_mutex_lock (&w->lock);
    w->st.appends++;
    w->st.bytes_appended += rec_size;
    w->enospc_logged = false;
  }
  hf_wal_mark_written (w, lsn);
  pthread_mutex_unlock (&w->lock);
  hf_wal_file_unref (f);
  return err;
}

static int
hf_wal_append_common (struct hf_wal *w, uint32_t type, uint64_t offset,
                      const void *data, uint64_t len, uint64_t *lsn_out,
                      bool nowait)
{
  struct hf_wal_ticket t;
  int err;

  if (lsn_out == NULL)
    return EINVAL;
  err = hf_wal_reserve (w, type, data, len, nowait, &t);
  if (err == 0)
    err = hf_wal_write_reserved (w, &t, type, offset, data, len);
  if (err == 0)
    *lsn_out = t.lsn;
  return err;
}

int
hf_wal_try_reserve (struct hf_wal *w, uint32_t type, const void *data,
                    uint64_t len, struct hf_wal_ticket *t)
{
  return hf_wal_reserve (w, type, data, len, true, t);
}

int
hf_wal_append (struct hf_wal *w, uint32_t type, uint64_t offset,
               const void *data, uint64_t len, uint64_t *lsn_out)
{
  return hf_wal_append_common (w, type, offset, data, len, lsn_out, false);
}

int
hf_wal_try_append (struct hf_wal *w, uint32_t type, uint64_t offset,
                   const void *data, uint64_t len, uint64_t *lsn_out)
{
  return hf_wal_append_common (w, type, offset, data, len, lsn_out, true);
}

int
hf_wal_wait_space (struct hf_wal *w, uint32_t type, uint64_t len)
{
  uint64_t rec_size = HF_WAL_REC_SIZE (hf_wal_datalen (type, len));
  bool waited = false;
  int err;

  pthread_mutex_lock (&w->lock);
  while ((err = w->sticky_err) == 0 && w->st.bytes_live > 0 &&
         w->st.bytes_live + rec_size > w->max_bytes) {
    if (!waited) {
      waited = true;
      w->st.waits++;
    }
    pthread_cond_wait (&w->space_cond, &w->lock);
  }
  pthread_mutex_unlock (&w->lock);
  return err;
}

/* ---- Sync ---- */

/* Issue the fdatasyncs of files[0..n) and, if dir, an fsync of the
 * directory, and wait for all.  Only the owner of the in-flight sync
 * calls this.  Returns 0 or the first error, with *what naming the file
 * (or the directory, "") it concerns; logs nothing. */
static int
hf_wal_do_fsyncs (struct hf_wal *w, struct hf_wal_file **files, size_t n,
                  bool dir, const char **what)
{
  size_t total = n + (dir ? 1 : 0), i = 0;
  int first_err = 0;

  *what = "";
  if (!w->use_uring) {
    for (i = 0; i < n; i++)
      if (fdatasync (files[i]->fd) == -1 && !first_err) {
        first_err = errno;
        *what = files[i]->name;
      }
    if (dir && fsync (w->dirfd) == -1 && !first_err)
      first_err = errno;
    return first_err;
  }

  while (i < total) {
    size_t batch = total - i, k;
    int ret;

    if (batch > HF_WAL_RING_ENTRIES)
      batch = HF_WAL_RING_ENTRIES;
    for (k = 0; k < batch; k++) {
      struct io_uring_sqe *sqe = io_uring_get_sqe (&w->ring);
      size_t j = i + k;

      assert (sqe != NULL);
      if (j < n)
        io_uring_prep_fsync (sqe, files[j]->fd, IORING_FSYNC_DATASYNC);
      else
        io_uring_prep_fsync (sqe, w->dirfd, 0);
      io_uring_sqe_set_data64 (sqe, j);
    }
    do
      ret = io_uring_submit_and_wait (&w->ring, (unsigned) batch);
    while (ret == -EINTR);
    if (ret < 0 || (size_t) ret != batch) {
      /* Cannot happen with a ring this size and no other user; treat it
       * as a failed sync (we cannot know what reached the disk). */
      *what = "io_uring_submit";
      return ret < 0 ? -ret : EIO;
    }
    for (k = 0; k < batch; k++) {
      struct io_uring_cqe *cqe;
      uint64_t j;

      do
        ret = io_uring_wait_cqe (&w->ring, &cqe);
      while (ret == -EINTR);
      if (ret < 0) {
        *what = "io_uring_wait_cqe";
        return -ret;
      }
      j = io_uring_cqe_get_data64 (cqe);
      if (cqe->res < 0 && !first_err) {
        first_err = -cqe->res;
        *what = j < n ? files[j]->name : "";
      }
      io_uring_cqe_seen (&w->ring, cqe);
    }
    i += batch;
  }
  return first_err;
}

int
hf_wal_sync (struct hf_wal *w)
{
  struct hf_wal_file **files = NULL;
  struct hf_wal_file *f;
  uint64_t target, upto, gen;
  const char *what = "";
  size_t n, cap = 0;
  bool dir, fail;
  int err;

  if (w == NULL)
    return EINVAL;
  pthread_mutex_lock (&w->lock);
  w->st.sync_waiters++;
  target = w->next_lsn - 1;
  for (;;) {
    if (w->sticky_err) {
      err = w->sticky_err;
      goto out;
    }
    if (w->synced_lsn >= target) {
      err = 0;
      goto out;
    }
    if (w->sync_inflight) {
      pthread_cond_wait (&w->sync_cond, &w->lock);
      continue;
    }
    if (w->written_lsn < target) {
      w->write_waiters++;
      pthread_cond_wait (&w->sync_cond, &w->lock);
      w->write_waiters--;
      continue;
    }
    break;
  }

  /* Become the syncer. */
  upto = w->written_lsn;
  n = 0;
  for (f = w->head; f; f = f->next)
    if (f->first_lsn <= upto && f->last_lsn > w->synced_lsn)
      n++;
  if (n > 0) {
    cap = n;
    files = malloc (cap * sizeof *files);
    if (files == NULL) {
      err = ENOMEM;
      goto out;
    }
  }
  n = 0;
  for (f = w->head; f && n < cap; f = f->next)
    if (f->first_lsn <= upto && f->last_lsn > w->synced_lsn) {
      hf_wal_file_ref (f);
      files[n++] = f;
    }
  gen = w->dir_gen;
  dir = gen != w->dir_synced_gen;
  if (n == 0 && !dir) {
    /* Everything up to upto was released before it needed a sync. */
    if (upto > w->synced_lsn)
      w->synced_lsn = upto;
    err = 0;
    goto out;
  }
  w->sync_inflight = true;
  w->sync_upto = upto;
  w->st.syncs++;
  w->syncs_started++;
  fail = w->fail_sync_at != 0 && w->syncs_started == w->fail_sync_at;
  pthread_mutex_unlock (&w->lock);

  if (fail) {
    err = EIO;
    what = "(injected by HF_WAL_TEST_FAIL_SYNC)";
  }
  else
    err = hf_wal_do_fsyncs (w, files, n, dir, &what);
  if (err)                      /* log before the names go away */
    hf_error ("wal: %s %s%s%s: %s; the log refuses all writes until it "
              "is reopened", *what ? "fdatasync" : "fsync", w->dir,
              *what == '(' ? " " : *what ? "/" : "", what, strerror (err));
  while (n > 0)
    hf_wal_file_unref (files[--n]);
  free (files);

  pthread_mutex_lock (&w->lock);
  w->sync_inflight = false;
  if (err) {
    /* Never retry: the kernel may have dropped the dirty pages. */
    hf_wal_set_dead (w);
    err = EIO;
  }
  else {
    if (upto > w->synced_lsn)
      w->synced_lsn = upto;
    if (dir)
      w->dir_synced_gen = gen;
  }
  pthread_cond_broadcast (&w->sync_cond);
 out:
  pthread_mutex_unlock (&w->lock);
  return err;
}

/* ---- Release ---- */

int
hf_wal_release (struct hf_wal *w, uint64_t upto)
{
  struct hf_wal_file *gone = NULL, **gp = &gone, *f;
  bool spare_ok;
  int err = 0;

  if (w == NULL)
    return EINVAL;
  pthread_mutex_lock (&w->lock);
  /* Whole files from the oldest on; the tail too once it has records
   * and all are released (the next append creates a new file). */
  while ((f = w->head) != NULL && f->last_lsn <= upto &&
         f->last_lsn >= f->first_lsn && !(f == w->tail && w->rotating)) {
    w->head = f->next;
    if (w->tail == f)
      w->tail = NULL;
    f->next = NULL;
    *gp = f;
    gp = &f->next;
    w->st.files--;
    w->st.bytes_live -= f->used - HF_WAL_FHDR_SIZE;
  }
  if (gone)
    pthread_cond_broadcast (&w->space_cond);
  spare_ok = gone && w->spare == NULL && !w->spare_claimed;
  if (spare_ok)
    w->spare_claimed = true;    /* one renamer of HF_WAL_SPARE_NAME */
  pthread_mutex_unlock (&w->lock);

  if (gone == NULL)
    return 0;
  /* Oldest first, so that what a crash leaves is still a suffix. */
  while ((f = gone) != NULL) {
    gone = f->next;
    /* Keep one full-size file for the next rotation, unless a write or
     * sync still uses it (no new user can find it: it left the list). */
    if (spare_ok && f->size >= w->file_size &&
        __atomic_load_n (&f->refs, __ATOMIC_ACQUIRE) == 1 &&
        renameat (w->dirfd, f->name, w->dirfd, HF_WAL_SPARE_NAME) == 0) {
      hf_debug ("wal", "%s/%s: released, kept as %s", w->dir, f->name,
                HF_WAL_SPARE_NAME);
      memcpy (f->name, HF_WAL_SPARE_NAME, sizeof HF_WAL_SPARE_NAME);
      pthread_mutex_lock (&w->lock);
      w->spare = f;
      w->spare_claimed = false;
      pthread_mutex_unlock (&w->lock);
      spare_ok = false;
      continue;
    }
    if (unlinkat (w->dirfd, f->name, 0) == -1 && err == 0) {
      err = errno;
      hf_error ("wal: unlink %s/%s: %s", w->dir, f->name, strerror (err));
    }
    else
      hf_debug ("wal", "%s/%s: released", w->dir, f->name);
    hf_wal_file_unref (f);
  }
  if (spare_ok) {
    pthread_mutex_lock (&w->lock);
    w->spare_claimed = false;
    pthread_mutex_unlock (&w->lock);
  }
  if (err == 0)
    err = hf_wal_fsync_dir (w);
  return err;
}

/* ---- Queries ---- */

uint64_t
hf_wal_last_lsn (struct hf_wal *w)
{
  uint64_t r;

  pthread_mutex_lock (&w->lock);
  r = w->next_lsn - 1;
  pthread_mutex_unlock (&w->lock);
  return r;
}

uint64_t
hf_wal_log_id (struct hf_wal *w)
{
  uint64_t r;

  pthread_mutex_lock (&w->lock);
  r = w->log_id;
  pthread_mutex_unlock (&w->lock);
  return r;
}

void
hf_wal_get_stats (struct hf_wal *w, struct hf_wal_stats *out)
{
  pthread_mutex_lock (&w->lock);
  *out = w->st;
  pthread_mutex_unlock (&w->lock);
}
