/* hyperfile: local write-ahead log, opening and replay (see wal.h for
 * the contract, wal-int.h for the map of its files and the on-disk
 * format).
 *
 * Open takes the lock file, lists the log files, reads and checks every
 * record in LSN order (hf_wal_scan_file), cuts the log after the last
 * valid record (truncating that file, deleting every later one, syncing
 * the directory) and builds the file list and LSN counters.  Replay
 * reads the records again and hands each one after a given LSN to the
 * caller.  Close frees it all.
 *
 * Lock rule: open and close run before and after any other thread uses
 * the log, so they take no lock.  Replay marks itself under w->lock
 * (once, before any append) and then reads the file list without it:
 * no append runs concurrently (the contract in wal.h).
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
#include "clock.h"
#include "crc32c.h"
#include "format.h"
#include "localdir.h"
#include "log.h"
#include "wal.h"
#include "wal-int.h"

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
  hf_clock_cond_init (&w->space_cond);
  hf_clock_cond_init (&w->rotate_cond);
  hf_clock_cond_init (&w->sync_cond);

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

int
hf_wal_check (const char *dir, const uint8_t volume_uuid[16])
{
  struct hf_wal w = { .dir = (char *) dir, .dirfd = -1 };
  struct hf_wal_found *v = NULL;
  size_t n = 0, i;
  int err;

  memcpy (w.uuid, volume_uuid, HF_UUID_SIZE);
  err = hf_localdir_open ("wal", dir, &w.dirfd);
  if (err)
    return err;
  err = hf_wal_list (&w, &v, &n);
  for (i = 0; i < n; i++)
    close (v[i].fd);
  free (v);
  close (w.dirfd);
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
