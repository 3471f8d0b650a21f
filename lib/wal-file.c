/* hyperfile: local write-ahead log, its files (see wal-int.h for the
 * map and the on-disk format).
 *
 * What lives here: log file names (wal-HEX16.log), encoding of file
 * and record headers, the reference counts that let release unlink a
 * file still being written or synced, creating a file's entry and
 * preallocating it, writes that either complete or fail, and the
 * directory fsync.
 *
 * Lock rule: hf_wal_list_append is called with w->lock held (or at
 * open, before the log is shared); refs are atomic; the rest touches no
 * shared state.
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
#include "wal-int.h"

/* ---- Names, headers, references, writes ---- */

void
hf_wal_file_unref (struct hf_wal_file *f)
{
  if (__atomic_sub_fetch (&f->refs, 1, __ATOMIC_ACQ_REL) == 0) {
    close (f->fd);
    free (f);
  }
}

void
hf_wal_file_ref (struct hf_wal_file *f)
{
  __atomic_add_fetch (&f->refs, 1, __ATOMIC_RELAXED);
}

void
hf_wal_name (char *buf, uint64_t first_lsn)
{
  snprintf (buf, HF_WAL_NAME_LEN + 1, "wal-%016" PRIx64 ".log", first_lsn);
}

/* Parse a log file name; false if name is not one. */
bool
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

int
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
int
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

void
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
void
hf_wal_encode_rhdr (const struct hf_wal *w, uint8_t *h, uint32_t type,
                    uint64_t lsn, uint64_t offset, uint64_t len,
                    uint64_t rec_size, const void *data, uint64_t datalen,
                    const uint32_t *data_crc)
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
  /* The same wr_crc either way: a data CRC the caller already has is
   * folded in instead of hashing the data a second time. */
  if (datalen > 0 && data_crc)
    crc = hf_crc32c_combine (crc, *data_crc, datalen);
  else if (datalen > 0)
    crc = hf_crc32c (crc, data, datalen);
  hf_put_le32 (h + HF_WAL_WR_CRC_OFF, crc);
}

/* Data bytes a record of this type and len carries. */
uint64_t
hf_wal_datalen (uint32_t type, uint64_t len)
{
  return type == HF_WAL_WRITE ? len : 0;
}

bool
hf_wal_all_zero (const uint8_t *p, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

int
hf_wal_fsync_dir (struct hf_wal *w)
{
  if (fsync (w->dirfd) == -1) {
    int err = errno;
    hf_error ("wal: fsync %s: %s", w->dir, strerror (err));
    return err;
  }
  return 0;
}

struct hf_wal_file *
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

void
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
int
hf_wal_preallocate (int fd, uint64_t size)
{
  if (fallocate (fd, 0, 0, (off_t) size) == -1) {
    if (errno == EOPNOTSUPP || errno == ENOSYS)
      return 0;
    return errno;
  }
  return 0;
}
