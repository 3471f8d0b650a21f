/* hyperfile: the directory object store, the embedded default.
 *
 * Each object is one file under the root directory.  A key "a/b/c" is
 * stored as ROOT/a%/b%/c: every component before a '/' is a directory
 * whose name ends in '%', the last component is a file, so the keys "a"
 * and "a/b" can coexist as they can in S3.  Inside a component, '%' and a
 * leading '.' are percent-encoded ("%25", "%2E"), so no name is ".",
 * "..", hidden or a temp file; an empty last component (a key ending in
 * '/') is the file "%%".  list decodes names back to keys and ignores
 * anything else in the tree.  Names starting with ".hf-tmp." are
 * temporary files, never objects.
 *
 * put is atomic and durable: the data goes to ".hf-tmp.<random>" in the
 * object's directory (O_EXCL, mode 0600; large page-aligned objects
 * with O_DIRECT, see hf_dir_write_direct), is fsync'ed, then renamed over
 * the key (or, for the conditional form, link()ed to it, which fails if
 * the key exists), and the directory is fsync'ed.  A crash at any point
 * leaves either no object or the whole object; leftover temp files are
 * ignored by list and removed at open once an hour old (a younger one may
 * belong to another process writing right now).
 *
 * head's etag is the hex of (size, mtime in ns, inode): it changes
 * whenever the object is replaced.
 *
 * Thread safety: only syscalls on paths derived from the key; no shared
 * mutable state beyond the atomic counters.
 */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <pthread.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "objstore.h"

#define HF_DIR_TMP_PREFIX ".hf-tmp."

struct hf_dir_store {
  struct hf_objstore base;      /* must be first */
  char *root;                   /* absolute or as given; no trailing '/' */
  char *desc;                   /* "dir:ROOT" */
};

static struct hf_dir_store *
hf_dir_priv (struct hf_objstore *s)
{
  return (struct hf_dir_store *) s;
}

/* Append one key component, escaped, to out (size outsz) at len; as a
 * directory name if is_dir.  Returns the new length or -1 if it does not
 * fit. */
static int
hf_dir_put_component (char *out, size_t outsz, size_t len, const char *c,
                      size_t clen, bool is_dir)
{
  size_t i;

  if (clen == 0 && !is_dir) {
    if (len + 2 >= outsz)
      return -1;
    out[len++] = '%';
    out[len++] = '%';
    return len;
  }
  for (i = 0; i < clen; i++) {
    if (len + 4 >= outsz)
      return -1;
    if (c[i] == '%' || (i == 0 && c[i] == '.'))
      len += snprintf (out + len, outsz - len, "%%%02X", (unsigned char) c[i]);
    else
      out[len++] = c[i];
  }
  if (is_dir) {
    if (len + 1 >= outsz)
      return -1;
    out[len++] = '%';
  }
  return len;
}

/* Map key to ROOT/escaped-path.  Returns 0 or EINVAL. */
static int
hf_dir_path (struct hf_dir_store *d, const char *key, char *out,
             size_t outsz)
{
  const char *p = key, *slash;
  int len;

  len = snprintf (out, outsz, "%s", d->root);
  if (len < 0 || (size_t) len >= outsz)
    return EINVAL;
  for (;;) {
    slash = strchr (p, '/');
    if ((size_t) len + 1 >= outsz)
      return EINVAL;
    out[len++] = '/';
    len = hf_dir_put_component (out, outsz, len, p,
                                slash ? (size_t) (slash - p) : strlen (p),
                                slash != NULL);
    if (len < 0)
      return EINVAL;
    if (!slash)
      break;
    p = slash + 1;
  }
  out[len] = '\0';
  return 0;
}

/* Decode one directory entry name into out; 0, or -1 if it is not a
 * name we produce (such entries are ignored). */
static int
hf_dir_decode_component (const char *name, bool is_dir, char *out,
                         size_t outsz, size_t *outlen)
{
  size_t n = strlen (name), i, o = 0;

  if (is_dir) {
    if (n == 0 || name[n - 1] != '%')
      return -1;
    n--;
  }
  else if (strcmp (name, "%%") == 0) {
    *outlen = 0;
    return 0;
  }
  for (i = 0; i < n; i++) {
    if (o >= outsz)
      return -1;
    if (name[i] == '%') {
      unsigned v;
      if (i + 2 >= n + 1 || sscanf (name + i + 1, "%2X", &v) != 1)
        return -1;
      out[o++] = (char) v;
      i += 2;
    }
    else
      out[o++] = name[i];
  }
  *outlen = o;
  return 0;
}

static int
hf_dir_fsync_dir (const char *path)
{
  int fd = open (path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  int r = 0;

  if (fd == -1)
    return errno;
  if (fsync (fd) == -1)
    r = errno;
  close (fd);
  return r;
}

/* mkdir -p of the parent directories of path (inside the root). */
static int
hf_dir_make_parents (struct hf_dir_store *d, char *path)
{
  size_t rootlen = strlen (d->root);
  char *p;

  for (p = path + rootlen + 1; (p = strchr (p, '/')) != NULL; p++) {
    *p = '\0';
    if (mkdir (path, 0700) == -1 && errno != EEXIST) {
      int e = errno;
      *p = '/';
      return e;
    }
    *p = '/';
  }
  return 0;
}

static int
hf_dir_get (struct hf_objstore *s, const char *key, uint64_t offset,
            size_t len, void *buf, size_t *got)
{
  struct hf_dir_store *d = hf_dir_priv (s);
  char path[PATH_MAX];
  uint64_t t0 = hf_objstore_now_us ();
  size_t done = 0;
  int fd, r = 0;

  if (hf_dir_path (d, key, path, sizeof path))
    return EINVAL;
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    r = errno;
    goto out;
  }
  while (done < len) {
    ssize_t n = pread (fd, (char *) buf + done, len - done, offset + done);
    if (n == -1) {
      if (errno == EINTR)
        continue;
      r = errno;
      break;
    }
    if (n == 0)
      break;
    done += n;
  }
  close (fd);
 out:
  hf_objstore_count (s, HF_OP_GET, hf_objstore_now_us () - t0, done, 0,
                     r == ENOENT ? 0 : r);
  if (r == EISDIR)
    r = ENOENT;
  if (r && r != ENOENT)
    hf_error ("get %s (%s): %s", key, path, strerror (r));
  if (r == 0)
    *got = done;
  return r;
}

static int
hf_dir_get_all (struct hf_objstore *s, const char *key, size_t max,
                void **data, size_t *lenp)
{
  struct hf_dir_store *d = hf_dir_priv (s);
  char path[PATH_MAX];
  uint64_t t0 = hf_objstore_now_us ();
  struct stat st;
  char *buf = NULL;
  size_t done = 0;
  bool logged = false;
  int fd, r = 0;

  if (hf_dir_path (d, key, path, sizeof path))
    return EINVAL;
  fd = open (path, O_RDONLY | O_CLOEXEC);
  if (fd == -1) {
    r = errno == EISDIR ? ENOENT : errno;
    goto out;
  }
  if (fstat (fd, &st) == -1) {
    r = errno;
    goto out_close;
  }
  if (!S_ISREG (st.st_mode)) {
    r = ENOENT;
    goto out_close;
  }
  if ((uint64_t) st.st_size > max) {
    hf_error ("get %s (%s): %" PRIu64 " bytes, larger than %zu bytes, the "
              "most this read expects", key, path, (uint64_t) st.st_size,
              max);
    logged = true;
    r = EIO;
    goto out_close;
  }
  buf = malloc (st.st_size ? st.st_size : 1);
  if (buf == NULL) {
    r = ENOMEM;
    goto out_close;
  }
  while (done < (size_t) st.st_size) {
    ssize_t n = pread (fd, buf + done, st.st_size - done, done);
    if (n == -1) {
      if (errno == EINTR)
        continue;
      r = errno;
      break;
    }
    if (n == 0) {
      r = EIO;                  /* shrank under us: objects are immutable */
      break;
    }
    done += n;
  }
 out_close:
  close (fd);
 out:
  hf_objstore_count (s, HF_OP_GET, hf_objstore_now_us () - t0, done, 0,
                     r == ENOENT ? 0 : r);
  if (r) {
    free (buf);
    if (r != ENOENT && !logged)
      hf_error ("get %s (%s): %s", key, path, strerror (r));
    return r;
  }
  *data = buf;
  *lenp = done;
  return 0;
}

static int
hf_dir_head (struct hf_objstore *s, const char *key,
             struct hf_objstore_info *info)
{
  struct hf_dir_store *d = hf_dir_priv (s);
  char path[PATH_MAX];
  uint64_t t0 = hf_objstore_now_us ();
  struct stat st;
  int r = 0;

  if (hf_dir_path (d, key, path, sizeof path))
    return EINVAL;
  if (stat (path, &st) == -1)
    r = errno;
  else if (!S_ISREG (st.st_mode))
    r = ENOENT;
  hf_objstore_count (s, HF_OP_HEAD, hf_objstore_now_us () - t0, 0, 0,
                     r == ENOENT ? 0 : r);
  if (r) {
    if (r != ENOENT && r != ENOTDIR)
      hf_error ("head %s (%s): %s", key, path, strerror (r));
    return r == ENOTDIR ? ENOENT : r;
  }
  info->size = st.st_size;
  info->mtime = st.st_mtim.tv_sec;
  snprintf (info->etag, sizeof info->etag, "%" PRIx64 "-%" PRIx64 "-%" PRIx64,
            (uint64_t) st.st_size,
            (uint64_t) st.st_mtim.tv_sec * 1000000000 + st.st_mtim.tv_nsec,
            (uint64_t) st.st_ino);
  return 0;
}

/* Write len bytes of data, in chunks of at most HF_OBJSTORE_CANCEL_CHUNK
 * so that a raised cancel flag (objstore.h) stops the put between two:
 * ECANCELED.  Chunks keep O_DIRECT's alignment (the chunk size is a
 * multiple of the page). */
static int
hf_dir_write_all (int fd, const void *data, size_t len,
                  const atomic_bool *cancel)
{
  size_t done = 0;

  while (done < len) {
    size_t want = len - done;
    ssize_t n;

    if (hf_objstore_cancelled (cancel))
      return ECANCELED;
    if (want > HF_OBJSTORE_CANCEL_CHUNK)
      want = HF_OBJSTORE_CANCEL_CHUNK;
    n = write (fd, (const char *) data + done, want);
    if (n == -1) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    done += n;
  }
  return 0;
}

/* Write a large page-aligned object with O_DIRECT (its page-aligned
 * prefix; the tail buffered).  Filling fresh page-cache pages costs
 * ~2 ms of CPU per MiB on the VMs measured, ~0.3 ms direct, and a
 * segment written here is read back rarely (the block cache has it).
 * EINVAL from the kernel (a file system without O_DIRECT): the caller
 * writes it buffered from the start. */
#define HF_DIR_DIO_ALIGN 4096
#define HF_DIR_DIO_MIN   (1024 * 1024)
static int
hf_dir_write_direct (int fd, const void *data, size_t len,
                     const atomic_bool *cancel)
{
  size_t head = len & ~(size_t) (HF_DIR_DIO_ALIGN - 1);
  int fl = fcntl (fd, F_GETFL), r;

  if (fl == -1 || fcntl (fd, F_SETFL, fl | O_DIRECT) == -1)
    return EINVAL;
  r = hf_dir_write_all (fd, data, head, cancel);
  if (fcntl (fd, F_SETFL, fl) == -1 && r == 0)
    r = errno;
  if (r == 0 && head < len)
    r = hf_dir_write_all (fd, (const char *) data + head, len - head,
                          cancel);
  return r;
}

static int
hf_dir_write_object (int fd, const void *data, size_t len,
                     const atomic_bool *cancel)
{
  if (len >= HF_DIR_DIO_MIN &&
      ((uintptr_t) data & (HF_DIR_DIO_ALIGN - 1)) == 0) {
    int r = hf_dir_write_direct (fd, data, len, cancel);
    if (r != EINVAL)
      return r;
    if (lseek (fd, 0, SEEK_SET) == -1 || ftruncate (fd, 0) == -1)
      return errno;
  }
  return hf_dir_write_all (fd, data, len, cancel);
}

static int
hf_dir_put (struct hf_objstore *s, const char *key, const void *data,
            size_t len, unsigned flags, const atomic_bool *cancel)
{
  struct hf_dir_store *d = hf_dir_priv (s);
  char path[PATH_MAX], tmp[PATH_MAX + 32], dir[PATH_MAX];
  uint64_t t0 = hf_objstore_now_us (), rnd;
  char *slash;
  int fd = -1, r;

  if (hf_dir_path (d, key, path, sizeof path))
    return EINVAL;
  snprintf (dir, sizeof dir, "%s", path);
  slash = strrchr (dir, '/');
  *slash = '\0';
  if (getrandom (&rnd, sizeof rnd, 0) != sizeof rnd)
    rnd = t0 ^ (uint64_t) pthread_self ();
  snprintf (tmp, sizeof tmp, "%s/" HF_DIR_TMP_PREFIX "%016" PRIx64, dir, rnd);

  fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  if (fd == -1 && errno == ENOENT) {
    if ((r = hf_dir_make_parents (d, tmp)) != 0)
      goto out;
    fd = open (tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
  }
  if (fd == -1) {
    r = errno;
    goto out;
  }
  if ((r = hf_dir_write_object (fd, data, len, cancel)) != 0)
    goto out_unlink;
  if (fsync (fd) == -1) {
    r = errno;
    goto out_unlink;
  }
  close (fd);
  fd = -1;
  /* The last moment to stop: the link or rename below lands it. */
  if (hf_objstore_cancelled (cancel)) {
    r = ECANCELED;
    goto out_unlink;
  }
  if (flags & HF_PUT_IF_NONE_MATCH) {
    /* link() fails with EEXIST if the key exists: an atomic create. */
    if (link (tmp, path) == -1) {
      r = errno;
      goto out_unlink;
    }
    unlink (tmp);
  }
  else if (rename (tmp, path) == -1) {
    r = errno;
    goto out_unlink;
  }
  r = hf_dir_fsync_dir (dir);
  goto out;

 out_unlink:
  if (fd >= 0)
    close (fd);
  unlink (tmp);
 out:
  hf_objstore_count (s, HF_OP_PUT, hf_objstore_now_us () - t0, 0,
                     r ? 0 : len, r == EEXIST || r == ECANCELED ? 0 : r);
  if (r == EISDIR || r == ENOTDIR)
    r = EINVAL;                 /* key collides with a "directory" key */
  if (r && r != EEXIST && r != ECANCELED)
    hf_error ("put %s (%s): %s", key, path, strerror (r));
  return r;
}

static int
hf_dir_del (struct hf_objstore *s, const char *key)
{
  struct hf_dir_store *d = hf_dir_priv (s);
  char path[PATH_MAX];
  uint64_t t0 = hf_objstore_now_us ();
  int r = 0;

  if (hf_dir_path (d, key, path, sizeof path))
    return EINVAL;
  if (unlink (path) == -1 && errno != ENOENT && errno != ENOTDIR)
    r = errno == EISDIR ? 0 : errno;
  hf_objstore_count (s, HF_OP_DELETE, hf_objstore_now_us () - t0, 0, 0, r);
  if (r)
    hf_error ("delete %s (%s): %s", key, path, strerror (r));
  return r;
}

static int
hf_dir_delete_many (struct hf_objstore *s, const char *const *keys, size_t n)
{
  size_t i;
  int r;

  for (i = 0; i < n; i++)
    if ((r = hf_dir_del (s, keys[i])) != 0)
      return r;
  return 0;
}

/* ---- list: walk the tree, collect matching keys, sort ---- */

struct hf_dir_ent {
  char *key;
  uint64_t size;
};

struct hf_dir_list {
  const char *prefix;
  size_t prefixlen;
  const char *start_after;
  struct hf_dir_ent *ents;
  size_t n, cap;
};

static int
hf_dir_list_add (struct hf_dir_list *l, char *key, size_t keylen,
                 uint64_t size)
{
  if (keylen < l->prefixlen || memcmp (key, l->prefix, l->prefixlen) != 0)
    return 0;
  key[keylen] = '\0';
  if (l->start_after && strcmp (key, l->start_after) <= 0)
    return 0;
  if (l->n == l->cap) {
    size_t cap = l->cap ? l->cap * 2 : 256;
    struct hf_dir_ent *e = realloc (l->ents, cap * sizeof *e);
    if (e == NULL)
      return ENOMEM;
    l->ents = e;
    l->cap = cap;
  }
  if ((l->ents[l->n].key = strndup (key, keylen)) == NULL)
    return ENOMEM;
  l->ents[l->n].size = size;
  l->n++;
  return 0;
}

/* Recurse into path, whose objects have keys starting with key[0..klen). */
static int
hf_dir_walk (struct hf_dir_list *l, char *path, size_t plen, char *key,
             size_t klen)
{
  DIR *dp;
  struct dirent *de;
  int r = 0;

  /* Prune directories that cannot contain keys with the prefix. */
  if (memcmp (key, l->prefix, klen < l->prefixlen ? klen : l->prefixlen))
    return 0;
  dp = opendir (path);
  if (dp == NULL)
    return errno == ENOENT ? 0 : errno;
  while (r == 0 && (de = readdir (dp)) != NULL) {
    struct stat st;
    size_t clen, nlen = strlen (de->d_name);

    if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0 ||
        strncmp (de->d_name, HF_DIR_TMP_PREFIX,
                 strlen (HF_DIR_TMP_PREFIX)) == 0)
      continue;
    if (plen + 1 + nlen >= PATH_MAX)
      continue;
    path[plen] = '/';
    memcpy (path + plen + 1, de->d_name, nlen + 1);
    if (lstat (path, &st) == 0 &&
        hf_dir_decode_component (de->d_name, S_ISDIR (st.st_mode), key + klen,
                                 HF_OBJSTORE_KEY_MAX + 1 - klen, &clen) == 0) {
      if (S_ISDIR (st.st_mode)) {
        if (klen + clen + 1 <= HF_OBJSTORE_KEY_MAX) {
          key[klen + clen] = '/';
          r = hf_dir_walk (l, path, plen + 1 + nlen, key, klen + clen + 1);
        }
      }
      else if (S_ISREG (st.st_mode))
        r = hf_dir_list_add (l, key, klen + clen, st.st_size);
    }
    path[plen] = '\0';
  }
  closedir (dp);
  return r;
}

static int
hf_dir_ent_cmp (const void *a, const void *b)
{
  const struct hf_dir_ent *x = a, *y = b;
  return strcmp (x->key, y->key);      /* byte order, like S3 */
}

static int
hf_dir_list (struct hf_objstore *s, const char *prefix,
             const char *start_after, hf_objstore_list_fn fn, void *opaque)
{
  struct hf_dir_store *d = hf_dir_priv (s);
  struct hf_dir_list l = { .prefix = prefix, .prefixlen = strlen (prefix),
                           .start_after = start_after };
  char path[PATH_MAX], key[HF_OBJSTORE_KEY_MAX + 2];
  uint64_t t0 = hf_objstore_now_us ();
  size_t i;
  int r;

  snprintf (path, sizeof path, "%s", d->root);
  r = hf_dir_walk (&l, path, strlen (path), key, 0);
  hf_objstore_count (s, HF_OP_LIST, hf_objstore_now_us () - t0, 0, 0, r);
  if (r == 0) {
    if (l.n > 0)
      qsort (l.ents, l.n, sizeof l.ents[0], hf_dir_ent_cmp);
    for (i = 0; i < l.n; i++) {
      r = fn (opaque, l.ents[i].key, l.ents[i].size);
      if (r == 1) {
        r = 0;
        break;
      }
      if (r)
        break;
    }
  }
  else
    hf_error ("list %s in %s: %s", prefix, d->root, strerror (r));
  for (i = 0; i < l.n; i++)
    free (l.ents[i].key);
  free (l.ents);
  return r;
}

static const char *
hf_dir_describe (struct hf_objstore *s)
{
  return hf_dir_priv (s)->desc;
}

static void
hf_dir_close (struct hf_objstore *s)
{
  struct hf_dir_store *d = hf_dir_priv (s);

  free (d->root);
  free (d->desc);
  free (d);
}

static const struct hf_objstore_ops hf_dir_ops = {
  .name = "dir",
  .get = hf_dir_get,
  .get_all = hf_dir_get_all,
  .head = hf_dir_head,
  .put = hf_dir_put,
  .del = hf_dir_del,
  .delete_many = hf_dir_delete_many,
  .list = hf_dir_list,
  .describe = hf_dir_describe,
  .close = hf_dir_close,
};

/* Remove temp files left by a crash (recursively). */
static void
hf_dir_sweep_tmp (char *path, size_t plen)
{
  DIR *dp = opendir (path);
  struct dirent *de;

  if (dp == NULL)
    return;
  while ((de = readdir (dp)) != NULL) {
    size_t nlen = strlen (de->d_name);
    struct stat st;

    if (strcmp (de->d_name, ".") == 0 || strcmp (de->d_name, "..") == 0 ||
        plen + 1 + nlen >= PATH_MAX)
      continue;
    path[plen] = '/';
    memcpy (path + plen + 1, de->d_name, nlen + 1);
    if (strncmp (de->d_name, HF_DIR_TMP_PREFIX,
                 strlen (HF_DIR_TMP_PREFIX)) == 0) {
      /* Only stale ones: another process (a writer beside this reader)
       * may be writing a fresh one right now. */
      if (lstat (path, &st) == 0 && st.st_mtime + 3600 < time (NULL))
        unlink (path);
    }
    else if (lstat (path, &st) == 0 && S_ISDIR (st.st_mode))
      hf_dir_sweep_tmp (path, plen + 1 + nlen);
    path[plen] = '\0';
  }
  closedir (dp);
}

int
hf_objstore_dir_open (const char *path, bool create,
                      struct hf_objstore **out)
{
  struct hf_dir_store *d;
  char sweep[PATH_MAX];
  struct stat st;
  size_t n;

  if (path == NULL || *path == '\0') {
    hf_error ("directory store: empty path");
    return EINVAL;
  }
  if (stat (path, &st) == -1) {
    int e = errno;
    if (e == ENOENT && create) {
      char tmp[PATH_MAX], *p;
      snprintf (tmp, sizeof tmp, "%s", path);
      for (p = tmp + 1; (p = strchr (p, '/')) != NULL; p++) {
        *p = '\0';
        if (mkdir (tmp, 0700) == -1 && errno != EEXIST) {
          e = errno;
          hf_error ("directory store %s: mkdir %s: %s", path, tmp,
                    strerror (e));
          return e;
        }
        *p = '/';
      }
      if (mkdir (tmp, 0700) == -1 && errno != EEXIST) {
        e = errno;
        hf_error ("directory store %s: mkdir: %s", path, strerror (e));
        return e;
      }
    }
    else {
      hf_error ("directory store %s: %s", path, strerror (e));
      return e;
    }
  }
  else if (!S_ISDIR (st.st_mode)) {
    hf_error ("directory store %s: not a directory", path);
    return ENOTDIR;
  }
  if (access (path, R_OK | W_OK | X_OK) == -1) {
    int e = errno;
    hf_error ("directory store %s: %s", path, strerror (e));
    return e;
  }

  d = calloc (1, sizeof *d);
  if (d == NULL)
    return ENOMEM;
  d->root = strdup (path);
  if (d->root == NULL)
    goto err;
  n = strlen (d->root);
  while (n > 1 && d->root[n - 1] == '/')
    d->root[--n] = '\0';
  if (n >= PATH_MAX - HF_OBJSTORE_KEY_MAX - 64) {
    hf_error ("directory store %s: path too long", path);
    free (d->root);
    free (d);
    return ENAMETOOLONG;
  }
  if (asprintf (&d->desc, "dir:%s", d->root) < 0) {
    d->desc = NULL;
    goto err;
  }
  d->base.ops = &hf_dir_ops;
  d->base.priv = d;
  snprintf (sweep, sizeof sweep, "%s", d->root);
  hf_dir_sweep_tmp (sweep, strlen (sweep));
  *out = &d->base;
  return 0;

 err:
  free (d->root);
  free (d->desc);
  free (d);
  return ENOMEM;
}
