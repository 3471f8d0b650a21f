/* hyperfile: local write-ahead log, the write side (see wal.h for the
 * contract, wal-int.h for the map of its files and the on-disk format).
 *
 * Appending: an append reserves its LSN and file offset under w->lock
 * (rotating to a new or reused file when the current one is full),
 * writes header, data and padding without the lock (concurrent records
 * in one pwritev: GROUP WRITE in wal-int.h), marks its LSN written and
 * returns once every record before it is written too.  Group commit
 * (hf_wal_sync): one syncer at a time issues the fdatasyncs for every
 * caller waiting.  Release deletes (or keeps as the spare) files whose
 * records are all released; queries read the counters.
 *
 * Lock rule: w->lock guards the log's mutable state and is never held
 * across file I/O; rotation runs without it (w->rotating), the sync
 * without it (w->sync_inflight).  Functions named *_locked, and those
 * whose comment says so, are called with it held.
 */
#include <config.h>

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <liburing.h>
#include <pthread.h>
#include <semaphore.h>
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
#include "wal-int.h"

static const uint8_t hf_wal_zeros[HF_WAL_ALIGN];

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

/* A record waiting for its write (GROUP WRITE in wal-int.h).  It lives
 * on its appender's stack; the leader of its batch touches it until it
 * posts wake, and nothing touches it after. */
struct hf_wal_pending {
  struct hf_wal_pending *next;  /* w->wq in LSN order, then the batch */
  struct hf_wal_file *f;        /* the ticket's (its reference) */
  uint64_t lsn, off, rec_size;
  struct iovec iov[3];          /* header, data, padding */
  int niov;
  uint8_t h[HF_WAL_RHDR_SIZE];
  int err, perr;                /* the write's and the padding's result */
  bool lead;                    /* woken to write the next batch */
  sem_t wake;                   /* posted once: written, or lead */
};

/* Write the records of batch (in LSN order): each run of records that
 * follow each other in one file is one pwritev.  Sets every record's
 * err (and perr); returns the number of writes issued.  Runs without
 * w->lock, by the leader only. */
static uint64_t
hf_wal_write_batch (struct hf_wal *w, struct hf_wal_pending *batch)
{
  struct iovec iov[HF_WAL_BATCH_IOV];
  struct hf_wal_pending *run, *p, *end;
  uint64_t writes = 0;

  for (run = batch; run; run = end) {
    int niov = 0, err;

    for (p = run;; p = end) {
      memcpy (iov + niov, p->iov, (size_t) p->niov * sizeof *iov);
      niov += p->niov;
      end = p->next;
      if (end == NULL || end->f != p->f ||
          end->off != p->off + p->rec_size ||
          niov + end->niov > HF_WAL_BATCH_IOV)
        break;
    }
    err = hf_wal_pwritev_all (run->f->fd, iov, niov, run->off);
    writes++;
    for (p = run; p != end; p = p->next) {
      p->err = err;
      p->perr = 0;
      if (err) {
        /* Leave no hole: fill each slot of the run with a padding
         * record so that the records after it stay reachable (any of
         * the run may have reached the file, or none). */
        hf_wal_encode_rhdr (w, p->h, HF_WAL_PAD, p->lsn, 0, 0, p->rec_size,
                            NULL, 0, NULL);
        p->perr = hf_wal_pwrite_all (p->f->fd, p->h, HF_WAL_RHDR_SIZE,
                                     p->off);
      }
    }
  }
  return writes;
}

/* Account for the written record p, or log its failure; mark it
 * written.  w->lock held. */
static void
hf_wal_finish_locked (struct hf_wal *w, struct hf_wal_pending *p)
{
  int err = p->err;

  if (err) {
    if ((err != ENOSPC && err != EDQUOT) || !w->enospc_logged)
      hf_error ("wal: write %s/%s at offset %" PRIu64 ": %s", w->dir,
                p->f->name, p->off, strerror (err));
    if (err == ENOSPC || err == EDQUOT) {
      w->enospc_logged = true;
      p->err = ENOSPC;
    }
    if (p->perr) {
      hf_error ("wal: %s/%s: cannot pad the failed record at offset %"
                PRIu64 " (%s); the log refuses writes until reopened",
                w->dir, p->f->name, p->off, strerror (p->perr));
      hf_wal_set_dead (w);
    }
  }
  else {
    w->st.appends++;
    w->st.bytes_appended += p->rec_size;
    w->enospc_logged = false;
  }
  hf_wal_mark_written (w, p->lsn);
}

/* Move the written records of batch (in LSN order) to w->ackq, keeping
 * it in LSN order, then take off it every record with nothing unwritten
 * before it: returns those (linked by next), to be acknowledged.
 * w->lock held. */
static struct hf_wal_pending *
hf_wal_ackable_locked (struct hf_wal *w, struct hf_wal_pending *batch)
{
  struct hf_wal_pending *q = w->ackq, *out = NULL, **tail = &out, *ack;

  while (batch || q) {
    struct hf_wal_pending **from = q == NULL ||
      (batch && batch->lsn < q->lsn) ? &batch : &q;
    *tail = *from;
    *from = (*from)->next;
    tail = &(*tail)->next;
  }
  *tail = NULL;
  ack = out;
  for (tail = &ack; *tail && (*tail)->lsn <= w->written_lsn;
       tail = &(*tail)->next)
    ;
  w->ackq = *tail;
  *tail = NULL;
  return ack;
}

int
hf_wal_write_reserved_crc (struct hf_wal *w, const struct hf_wal_ticket *t,
                           uint32_t type, uint64_t offset, const void *data,
                           uint64_t len, const uint32_t *data_crc)
{
  uint64_t datalen = hf_wal_datalen (type, len), writes;
  struct hf_wal_pending me, *batch, *p, *next, *lead, *ack, **pp;
  bool acked = false;

  /* Header (its CRC covers the data) without the lock. */
  me.f = t->file;
  me.lsn = t->lsn;
  me.off = t->off;
  me.rec_size = t->rec_size;
  me.err = me.perr = 0;
  me.lead = false;
  hf_wal_encode_rhdr (w, me.h, type, me.lsn, offset, len, me.rec_size, data,
                      datalen, data_crc);
  me.iov[0].iov_base = me.h;
  me.iov[0].iov_len = HF_WAL_RHDR_SIZE;
  me.niov = 1;
  if (datalen > 0) {
    me.iov[me.niov].iov_base = (void *) data;
    me.iov[me.niov].iov_len = datalen;
    me.niov++;
  }
  if (me.rec_size > HF_WAL_RHDR_SIZE + datalen) {
    me.iov[me.niov].iov_base = (void *) hf_wal_zeros;
    me.iov[me.niov].iov_len = me.rec_size - HF_WAL_RHDR_SIZE - datalen;
    me.niov++;
  }
  sem_init (&me.wake, 0, 0);

  /* No write in flight: ours goes out at once, alone (the queue is
   * empty while writing is false). */
  if (__atomic_exchange_n (&w->writing, true, __ATOMIC_ACQUIRE) == false) {
    me.next = NULL;
    batch = &me;
  }
  else {
    pthread_mutex_lock (&w->lock);
    if (__atomic_exchange_n (&w->writing, true, __ATOMIC_ACQUIRE)) {
      /* A write is in flight: ours goes in the next one, written by the
       * first queued (woken as the lead) when this one completes.
       * Queued in LSN order: records reserved one after the other lie
       * one after the other in the file, and go out in one write. */
      for (pp = &w->wq; *pp && (*pp)->lsn < me.lsn; pp = &(*pp)->next)
        ;
      me.next = *pp;
      *pp = &me;
      pthread_mutex_unlock (&w->lock);
      while (sem_wait (&me.wake) == -1)
        assert (errno == EINTR);
      if (!me.lead) {
        acked = true;           /* written by another, and acknowledged */
        goto out;
      }
      pthread_mutex_lock (&w->lock);
      /* The lead: write everything queued, ours included. */
      batch = w->wq;
      w->wq = NULL;
    }
    else {
      me.next = NULL;
      batch = &me;
    }
    pthread_mutex_unlock (&w->lock);
  }

  writes = hf_wal_write_batch (w, batch);

  pthread_mutex_lock (&w->lock);
  for (p = batch; p; p = p->next)
    hf_wal_finish_locked (w, p);
  w->st.writes += writes;
  ack = hf_wal_ackable_locked (w, batch);
  /* Records queued meanwhile: the first one leads the next write. */
  lead = w->wq;
  if (lead)
    lead->lead = true;
  else
    __atomic_store_n (&w->writing, false, __ATOMIC_RELEASE);
  pthread_mutex_unlock (&w->lock);
  for (p = ack; p; p = next) {
    next = p->next;             /* p is gone once posted */
    if (p == &me)
      acked = true;
    else
      sem_post (&p->wake);
  }
  if (lead)
    sem_post (&lead->wake);
  /* Ours waits in ackq for a record reserved before it: acknowledged
   * by the writer of that one. */
  while (!acked && sem_wait (&me.wake) == -1)
    assert (errno == EINTR);
 out:
  sem_destroy (&me.wake);
  hf_wal_file_unref (me.f);
  return me.err;
}

int
hf_wal_write_reserved (struct hf_wal *w, const struct hf_wal_ticket *t,
                       uint32_t type, uint64_t offset, const void *data,
                       uint64_t len)
{
  return hf_wal_write_reserved_crc (w, t, type, offset, data, len, NULL);
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
