/* hyperfile: the cache's table files (see cache-tables.h for why).
 *
 * ON-DISK FORMAT (all integers little-endian; also in hyperfile-format(5),
 * section CACHE FILES)
 *
 *   DIR/cache.tables/          directory, 0700
 *   DIR/cache.tables/SEQ       one file per segment, SEQ its number in 16
 *                              lower-case hex digits: header (48 bytes)
 *                              then ct_len bytes of payload
 *   DIR/cache.tables/tmp.*     a file being written (removed at open)
 *
 *   Header
 *    OFFSET SIZE DESCRIPTION
 *         0    4 ct_magic       "HFCT"
 *         4    2 ct_version     1
 *         6    2 ct_hdr_size    48
 *         8    8 ct_seq         the segment (must match the name)
 *        16    4 ct_len         payload bytes (the file is 48 + ct_len)
 *        20    4 ct_crc         CRC32C of the payload
 *        24   16 ct_volume_uuid the volume whose cache this is (a file of
 *                               another is removed, as a miss)
 *        40    4 ct_reserved    zero
 *        44    4 ct_hdr_crc     CRC32C of bytes 0 to 43
 *
 * The payload is the volume's (hf_seg_tables_encode: the segment's
 * header and frame table as stored), which it checks again on use.
 *
 * IN MEMORY.  One record per file (seq, bytes, last use), in an array
 * scanned linearly: a lookup happens once per segment whose table is
 * not among the volume's 64 in memory, next to a file read, and
 * eviction (least recently used) only when a put goes over the budget.
 * Files found at open start unused, lowest seq evicted first.
 *
 * CONCURRENCY.  t->lock protects the array, used_bytes, tick and
 * tmp_next; files are read, written, renamed and removed without it.
 * A put racing an eviction of the same seq may lose its file, which
 * only costs a later miss (the record of a missing file is dropped by
 * the get that finds it gone).
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cache-tables.h"
#include "cleanup.h"
#include "crc32c.h"
#include "format.h"
#include "localdir.h"
#include "log.h"

#define HF_CTAB_DIR "cache.tables"
#define HF_CTAB_MAGIC 0x54434648u       /* "HFCT" */
#define HF_CTAB_VERSION 1
#define HF_CTAB_HDR 48
#define HF_CTAB_HDR_CRC 44
/* The largest file read: a table of 4 M frames (64 GiB of image). */
#define HF_CTAB_FILE_MAX (HF_CTAB_HDR + HF_SH_SIZE + ((size_t) 64 << 20))

struct hf_ctab_ent {
  uint64_t seq;
  uint64_t bytes;               /* the file's size */
  uint64_t used;                /* tick of the last get or put; 0: not
                                   since open */
};

struct hf_ctab {
  int fd;                       /* cache.tables/ (I) */
  char *dir;                    /* its path, for messages (I) */
  uint64_t max;                 /* budget in bytes (I) */
  uint8_t uuid[16];             /* the volume's (I) */
  pthread_mutex_t lock;         /* protects the fields below */
  struct hf_ctab_ent *ent;
  size_t n, cap;
  uint64_t used_bytes;          /* sum of ent[].bytes */
  uint64_t tick;
  unsigned tmp_next;            /* temporary file names */
};

static void
hf_ctab_name (char *buf, size_t len, uint64_t seq)
{
  snprintf (buf, len, "%016" PRIx64, seq);
}

static ssize_t
hf_ctab_find_locked (struct hf_ctab *t, uint64_t seq)
{
  size_t i;

  for (i = 0; i < t->n; i++)
    if (t->ent[i].seq == seq)
      return (ssize_t) i;
  return -1;
}

static void
hf_ctab_remove_locked (struct hf_ctab *t, size_t i)
{
  t->used_bytes -= t->ent[i].bytes;
  t->ent[i] = t->ent[--t->n];
}

static int
hf_ctab_add_locked (struct hf_ctab *t, uint64_t seq, uint64_t bytes,
                    uint64_t used)
{
  ssize_t k = hf_ctab_find_locked (t, seq);

  if (k >= 0) {
    t->used_bytes -= t->ent[k].bytes;
    t->ent[k].bytes = bytes;
    t->ent[k].used = used;
    t->used_bytes += bytes;
    return 0;
  }
  if (t->n == t->cap) {
    size_t cap = t->cap ? 2 * t->cap : 64;
    struct hf_ctab_ent *e = realloc (t->ent, cap * sizeof *e);
    if (e == NULL)
      return ENOMEM;
    t->ent = e;
    t->cap = cap;
  }
  t->ent[t->n++] = (struct hf_ctab_ent) { seq, bytes, used };
  t->used_bytes += bytes;
  return 0;
}

/* Take records out, least recently used first (then lowest seq), until
 * the files fit the budget, keeping keep's; their seqs go to *victims
 * (caller frees) for removal once the lock is dropped. */
static size_t
hf_ctab_evict_locked (struct hf_ctab *t, uint64_t keep, uint64_t **victims)
{
  size_t nv = 0, cap = 0;

  *victims = NULL;
  while (t->used_bytes > t->max && t->n > 1) {
    size_t i, best = SIZE_MAX;

    for (i = 0; i < t->n; i++)
      if (t->ent[i].seq != keep &&
          (best == SIZE_MAX || t->ent[i].used < t->ent[best].used ||
           (t->ent[i].used == t->ent[best].used &&
            t->ent[i].seq < t->ent[best].seq)))
        best = i;
    if (best == SIZE_MAX)
      break;
    if (nv == cap) {
      uint64_t *v = realloc (*victims, (cap = cap ? 2 * cap : 8) *
                             sizeof *v);
      if (v == NULL)
        break;                  /* the rest next time */
      *victims = v;
    }
    (*victims)[nv++] = t->ent[best].seq;
    hf_ctab_remove_locked (t, best);
  }
  return nv;
}

static void
hf_ctab_unlink (struct hf_ctab *t, const uint64_t *seqs, size_t n)
{
  char name[32];
  size_t i;

  for (i = 0; i < n; i++) {
    hf_ctab_name (name, sizeof name, seqs[i]);
    if (unlinkat (t->fd, name, 0) < 0 && errno != ENOENT)
      hf_debug ("cache", "unlink %s/%s: %m", t->dir, name);
  }
}

int
hf_ctab_open (int dir_fd, const char *dir, const uint8_t uuid[16],
              uint64_t max_bytes, bool wipe, struct hf_ctab **out)
{
  struct hf_ctab *t;
  struct stat st;
  struct dirent *de;
  DIR *d;
  uint64_t *victims;
  size_t nv;
  int fd, err;

  if (mkdirat (dir_fd, HF_CTAB_DIR, 0700) < 0 && errno != EEXIST) {
    err = errno;
    hf_error ("cache: mkdir %s/" HF_CTAB_DIR ": %s", dir, strerror (err));
    return err;
  }
  fd = openat (dir_fd, HF_CTAB_DIR,
               O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd < 0) {
    err = errno;
    hf_error ("cache: open %s/" HF_CTAB_DIR ": %s", dir,
              err == ENOTDIR || err == ELOOP ? "not a directory (a "
              "symbolic link or a file)" : strerror (err));
    return err;
  }
  /* Inside a directory only we can write to (localdir.h), but a
   * directory of another owner or that others can write to is refused
   * all the same: its files decide what is read. */
  if (fstat (fd, &st) < 0 || st.st_uid != geteuid () ||
      (st.st_mode & (S_IWGRP | S_IWOTH))) {
    hf_error ("cache: %s/" HF_CTAB_DIR ": owned by another user or "
              "writable by others; refusing it", dir);
    close (fd);
    return EPERM;
  }
  t = calloc (1, sizeof *t);
  if (t == NULL || (t->dir = malloc (strlen (dir) + sizeof HF_CTAB_DIR + 1))
      == NULL) {
    free (t);
    close (fd);
    return ENOMEM;
  }
  sprintf (t->dir, "%s/" HF_CTAB_DIR, dir);
  t->fd = fd;
  t->max = max_bytes;
  memcpy (t->uuid, uuid, 16);
  pthread_mutex_init (&t->lock, NULL);

  /* Load the records (no other thread yet); remove leftovers. */
  if ((fd = dup (t->fd)) < 0 || (d = fdopendir (fd)) == NULL) {
    err = errno;
    if (fd >= 0)
      close (fd);
    hf_error ("cache: opendir %s: %s", t->dir, strerror (err));
    hf_ctab_close (t);
    return err;
  }
  while ((de = readdir (d)) != NULL) {
    char *end;
    uint64_t seq;

    if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0)
      continue;
    errno = 0;
    seq = strtoull (de->d_name, &end, 16);
    if (!wipe && strlen (de->d_name) == 16 && *end == '\0' && errno == 0 &&
        fstatat (t->fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG (st.st_mode) && st.st_nlink == 1) {
      if (hf_ctab_add_locked (t, seq, (uint64_t) st.st_size, 0) == 0)
        continue;
    }
    if (unlinkat (t->fd, de->d_name, 0) < 0)
      hf_debug ("cache", "unlink %s/%s: %m", t->dir, de->d_name);
  }
  closedir (d);
  nv = hf_ctab_evict_locked (t, 0, &victims);
  hf_ctab_unlink (t, victims, nv);
  free (victims);
  hf_debug ("cache", "%s: %zu tables, %" PRIu64 " of %" PRIu64 " bytes",
            t->dir, t->n, t->used_bytes, t->max);
  *out = t;
  return 0;
}

/* A damaged or unusable file: say so, remove it and its record. */
static int
hf_ctab_bad (struct hf_ctab *t, uint64_t seq, const char *name,
             const char *why)
{
  ssize_t k;

  hf_warn ("cache: %s/%s: %s; removed (the segment's tables are read "
           "from the store again)", t->dir, name, why);
  if (unlinkat (t->fd, name, 0) < 0 && errno != ENOENT)
    hf_debug ("cache", "unlink %s/%s: %m", t->dir, name);
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&t->lock);
  if ((k = hf_ctab_find_locked (t, seq)) >= 0)
    hf_ctab_remove_locked (t, (size_t) k);
  return ENOENT;
}

int
hf_ctab_get (struct hf_ctab *t, uint64_t seq, void **buf, size_t *len)
{
  char name[32];
  CLEANUP_FREE uint8_t *f = NULL;
  uint8_t *p;
  struct stat st;
  size_t got = 0;
  uint32_t plen;
  ssize_t k;
  int fd;

  hf_ctab_name (name, sizeof name, seq);
  fd = hf_localdir_openat (t->fd, name, O_RDONLY);
  if (fd < 0) {
    if (errno != ENOENT)
      return hf_ctab_bad (t, seq, name, hf_localdir_strerror (errno));
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&t->lock);
    if ((k = hf_ctab_find_locked (t, seq)) >= 0)
      hf_ctab_remove_locked (t, (size_t) k);
    return ENOENT;
  }
  if (fstat (fd, &st) < 0 || st.st_size < HF_CTAB_HDR ||
      (uint64_t) st.st_size > HF_CTAB_FILE_MAX ||
      (f = malloc ((size_t) st.st_size)) == NULL) {
    close (fd);
    return hf_ctab_bad (t, seq, name, "unreadable or of a bad size");
  }
  while (got < (size_t) st.st_size) {
    ssize_t n = pread (fd, f + got, (size_t) st.st_size - got, (off_t) got);
    if (n <= 0)
      break;
    got += (size_t) n;
  }
  close (fd);
  plen = hf_le32 (f + 16);
  if (got != (size_t) st.st_size || hf_le32 (f) != HF_CTAB_MAGIC ||
      hf_le16 (f + 4) != HF_CTAB_VERSION || hf_le16 (f + 6) != HF_CTAB_HDR ||
      hf_crc32c (0, f, HF_CTAB_HDR_CRC) != hf_le32 (f + HF_CTAB_HDR_CRC) ||
      hf_le64 (f + 8) != seq ||
      (uint64_t) plen + HF_CTAB_HDR != got ||
      hf_crc32c (0, f + HF_CTAB_HDR, plen) != hf_le32 (f + 20))
    return hf_ctab_bad (t, seq, name, "damaged (header, length or CRC)");
  if (memcmp (f + 24, t->uuid, 16) != 0)
    return hf_ctab_bad (t, seq, name, "another volume's");
  p = malloc (plen ? plen : 1);
  if (p == NULL)
    return ENOMEM;
  memcpy (p, f + HF_CTAB_HDR, plen);
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&t->lock);
    if ((k = hf_ctab_find_locked (t, seq)) >= 0)
      t->ent[k].used = ++t->tick;
  }
  *buf = p;
  *len = plen;
  return 0;
}

void
hf_ctab_put (struct hf_ctab *t, uint64_t seq, const void *buf, size_t len)
{
  char name[32], tmp[48];
  CLEANUP_FREE uint8_t *f = NULL;
  uint64_t *victims = NULL;
  size_t nv = 0, done = 0;
  unsigned id;
  int fd;

  if (len > HF_CTAB_FILE_MAX - HF_CTAB_HDR ||
      (f = malloc (HF_CTAB_HDR + len)) == NULL)
    return;
  memset (f, 0, HF_CTAB_HDR);
  hf_put_le32 (f, HF_CTAB_MAGIC);
  hf_put_le16 (f + 4, HF_CTAB_VERSION);
  hf_put_le16 (f + 6, HF_CTAB_HDR);
  hf_put_le64 (f + 8, seq);
  hf_put_le32 (f + 16, (uint32_t) len);
  hf_put_le32 (f + 20, hf_crc32c (0, buf, len));
  memcpy (f + 24, t->uuid, 16);
  hf_put_le32 (f + HF_CTAB_HDR_CRC, hf_crc32c (0, f, HF_CTAB_HDR_CRC));
  memcpy (f + HF_CTAB_HDR, buf, len);

  hf_ctab_name (name, sizeof name, seq);
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&t->lock);
    id = t->tmp_next++;
  }
  snprintf (tmp, sizeof tmp, "tmp.%s.%u", name, id);
  fd = hf_localdir_openat (t->fd, tmp, O_WRONLY | O_CREAT | O_EXCL);
  if (fd < 0) {
    hf_debug ("cache", "create %s/%s: %m", t->dir, tmp);
    return;
  }
  while (done < HF_CTAB_HDR + len) {
    ssize_t n = write (fd, f + done, HF_CTAB_HDR + len - done);
    if (n <= 0)
      break;
    done += (size_t) n;
  }
  if (close (fd) < 0 || done != HF_CTAB_HDR + len ||
      renameat (t->fd, tmp, t->fd, name) < 0) {
    hf_debug ("cache", "write %s/%s: %m", t->dir, tmp);
    unlinkat (t->fd, tmp, 0);
    return;
  }
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&t->lock);
    if (hf_ctab_add_locked (t, seq, HF_CTAB_HDR + len, ++t->tick) != 0) {
      victims = malloc (sizeof *victims);
      if (victims) {
        victims[0] = seq;       /* untracked: do not keep it */
        nv = 1;
      }
    }
    else
      nv = hf_ctab_evict_locked (t, seq, &victims);
  }
  hf_ctab_unlink (t, victims, nv);
  free (victims);
}

void
hf_ctab_drop (struct hf_ctab *t, uint64_t seq)
{
  ssize_t k;

  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&t->lock);
    if ((k = hf_ctab_find_locked (t, seq)) >= 0)
      hf_ctab_remove_locked (t, (size_t) k);
  }
  hf_ctab_unlink (t, &seq, 1);
}

void
hf_ctab_usage (struct hf_ctab *t, uint64_t *used, uint64_t *max)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&t->lock);
  *used = t->used_bytes;
  *max = t->max;
}

void
hf_ctab_close (struct hf_ctab *t)
{
  if (t == NULL)
    return;
  close (t->fd);
  pthread_mutex_destroy (&t->lock);
  free (t->ent);
  free (t->dir);
  free (t);
}
