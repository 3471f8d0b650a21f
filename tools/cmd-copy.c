/* hyperfile admin command: raw images in and out.
 *
 *   import, export
 *
 * Sparse-aware copies between a file, device or pipe and a volume: zero
 * blocks are skipped on import and left as holes on export.  An
 * incremental export (--from) is in cmd-diff.c.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <json-c/json.h>

#include "cleanup.h"
#include "history.h"
#include "log.h"
#include "objstore.h"
#include "volume.h"
#include "tool.h"

/* Read up to n bytes (short only at end of input). */
static ssize_t
hf_tool_read_full (int fd, uint8_t *buf, size_t n)
{
  size_t got = 0;

  while (got < n) {
    ssize_t k = read (fd, buf + got, n - got);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0)
      return -1;
    if (k == 0)
      break;
    got += (size_t) k;
  }
  return (ssize_t) got;
}

struct hf_tool_hole {
  bool all_hole;
};

static int
hf_tool_hole_fn (void *opaque, uint64_t offset, uint64_t length,
                 unsigned type)
{
  struct hf_tool_hole *h = opaque;

  (void) offset;
  (void) length;
  if (type != HF_FILE_EXTENT_HOLE)
    h->all_hole = false;
  return 0;
}

/* One import's state. */
struct hf_tool_import {
  struct hf_file *f;
  bool fresh;                   /* nothing committed: holes stay holes */
  size_t bs;
  uint8_t *buf;                 /* HF_TOOL_CHUNK bytes */
  uint64_t off;                 /* input consumed, for the progress bar */
  uint64_t total;
  uint64_t written, skipped;
  bool zeroed;                  /* unmapped some of the volume's data */
  double t0;
};

/* [off, off + len) of the input is zeros: nothing to write on a fresh
 * volume, else unmap it where the volume has data (a zero extent costs
 * no data bytes). */
static int
hf_tool_import_zero (struct hf_tool_import *x, uint64_t off, uint64_t len)
{
  struct hf_tool_hole h = { true };

  if (!x->fresh &&
      hf_file_extents (x->f, len, off, hf_tool_hole_fn, &h) == 0 &&
      !h.all_hole) {
    x->zeroed = true;
    if (hf_file_zero (x->f, len, off, 0) != 0)
      return EXIT_FAILURE;
  }
  x->skipped += len;
  return 0;
}

/* n bytes of input at off in x->buf: runs of data blocks are written,
 * runs of all-zero blocks go to hf_tool_import_zero. */
static int
hf_tool_import_buf (struct hf_tool_import *x, size_t n, uint64_t off)
{
  size_t i, bs = x->bs;
  int r = 0;

  for (i = 0; i < n && r == 0;) {
    size_t len = n - i < bs ? n - i : bs, j = i;
    bool z = hf_tool_zero (x->buf + i, len);

    while (j < n) {
      size_t l = n - j < bs ? n - j : bs;
      if (hf_tool_zero (x->buf + j, l) != z)
        break;
      j += l;
    }
    if (!z) {
      if (hf_file_pwrite (x->f, x->buf + i, j - i, off + i, 0) != 0)
        r = EXIT_FAILURE;
      x->written += j - i;
    }
    else
      r = hf_tool_import_zero (x, off + i, j - i);
    i = j;
  }
  return r;
}

/* A pipe or a device: read it all, up to max bytes. */
static int
hf_tool_import_stream (struct hf_tool_import *x, int fd, const char *in,
                       uint64_t max)
{
  int r = 0;

  for (;;) {
    ssize_t n = hf_tool_read_full (fd, x->buf, HF_TOOL_CHUNK);

    if (n < 0) {
      fprintf (stderr, "hyperfile: import: reading %s: %m\n", in);
      return EXIT_FAILURE;
    }
    if (n == 0)
      return 0;
    if (x->off + (uint64_t) n > max) {
      fprintf (stderr, "hyperfile: import: input is larger than the "
               "volume (%" PRIu64 " bytes)\n", max);
      return EXIT_USAGE;
    }
    r = hf_tool_import_buf (x, (size_t) n, x->off);
    x->off += (uint64_t) n;
    hf_tool_progress ("import", x->off, x->total, x->t0, false);
    if (r)
      return r;
  }
}

/* A regular file of size bytes: its holes (SEEK_DATA/SEEK_HOLE) are not
 * read at all, only its data, as nbdcopy and qemu-img do.  A file system
 * without them reports the whole file as data. */
static int
hf_tool_import_sparse (struct hf_tool_import *x, int fd, const char *in,
                       uint64_t size)
{
  uint64_t pos = 0;
  int r = 0;

  while (pos < size && r == 0) {
    off_t d = lseek (fd, (off_t) pos, SEEK_DATA), h;

    if (d < 0 && errno == ENXIO)
      d = (off_t) size;         /* a hole to the end */
    else if (d < 0) {
      fprintf (stderr, "hyperfile: import: %s: lseek SEEK_DATA: %m\n", in);
      return EXIT_FAILURE;
    }
    if ((uint64_t) d > size)
      d = (off_t) size;
    if ((uint64_t) d > pos)
      r = hf_tool_import_zero (x, pos, (uint64_t) d - pos);
    if (r || (uint64_t) d >= size)
      break;
    h = lseek (fd, d, SEEK_HOLE);
    if (h < 0 || (uint64_t) h > size)
      h = (off_t) size;
    for (pos = (uint64_t) d; pos < (uint64_t) h && r == 0;) {
      size_t k = (uint64_t) h - pos < HF_TOOL_CHUNK
        ? (size_t) ((uint64_t) h - pos) : HF_TOOL_CHUNK;
      ssize_t n = pread (fd, x->buf, k, (off_t) pos);

      if (n < 0 && errno == EINTR)
        continue;
      if (n <= 0) {
        fprintf (stderr, "hyperfile: import: reading %s: %s\n", in,
                 n < 0 ? strerror (errno) : "the file shrank");
        return EXIT_FAILURE;
      }
      r = hf_tool_import_buf (x, (size_t) n, pos);
      pos += (uint64_t) n;
      x->off = pos;
      hf_tool_progress ("import", x->off, x->total, x->t0, false);
    }
  }
  x->off = r ? x->off : size;
  return r;
}

/* An import that failed after writing part of the image: no
 * half-written head is left.  A volume that had a head (head_seq) is
 * rolled back to it: the part written is committed, then a rollback
 * segment makes the old state the head again (the part stays readable
 * as the point before it, until gc).  A volume never written is left
 * empty (everything unmapped).  If that fails too (the store is down),
 * say how to do it by hand. */
static void
hf_tool_import_undo (struct hf_file *f, const char *url,
                     uint64_t head_seq, uint64_t size, uint64_t done)
{
  uint64_t new_seq = 0;
  int r;

  if (head_seq == 0) {
    r = hf_file_trim (f, size, 0, 0);
    if (r == 0)
      r = hf_file_flush (f);
    if (r == 0) {
      fprintf (stderr, "hyperfile: import: failed after %" PRIu64 " bytes; "
               "%s had never been written and is left empty (nothing of "
               "the image is at its head)\n", done, url);
      return;
    }
  }
  else {
    /* The engine's rollback to a seq: hf_file_rollback would resolve
     * the point through the history again. */
    r = hf_volume_rollback (hf_file_volume (f), head_seq, &new_seq);
    if (r == 0) {
      fprintf (stderr, "hyperfile: import: failed after %" PRIu64 " bytes; "
               "%s is rolled back to segment %" PRIu64 ", its state before "
               "the import (the head is now segment %" PRIu64 "; the part "
               "imported stays readable as the point before it, hyperfile "
               "ls, until gc)\n", done, url, head_seq, new_seq);
      return;
    }
  }
  if (head_seq)
    fprintf (stderr, "hyperfile: import: failed after %" PRIu64 " bytes, "
             "and undoing it failed too (%s): the head of %s may hold part "
             "of the image; `hyperfile rollback %s %" PRIu64 "` returns to "
             "its state before the import\n", done, strerror (r), url, url,
             head_seq);
  else
    fprintf (stderr, "hyperfile: import: failed after %" PRIu64 " bytes, "
             "and undoing it failed too (%s): %s, never written before, may "
             "hold part of the image: import again, or `hyperfile delete "
             "%s`\n", done, strerror (r), url, url);
}

int
hf_tool_import (int argc, char **argv)
{
  const char *in = argv[0], *url = argv[1];
  struct hf_volume_info vi;
  struct hf_file *f;
  struct hf_objstore *s;
  struct stat st;
  uint64_t off = 0, total = 0, written = 0, skipped = 0;
  CLEANUP_FREE uint8_t *buf = NULL;
  char *prefix;
  double t0 = hf_tool_now ();
  struct hf_tool_import x = { 0 };
  bool fresh, created = false, regular = false;
  int fd, r = 0;

  (void) argc;
  fd = strcmp (in, "-") == 0 ? 0 : open (in, O_RDONLY | O_CLOEXEC);
  if (fd < 0) {
    fprintf (stderr, "hyperfile: import: %s: %m\n", in);
    return EXIT_FAILURE;
  }
  if (fstat (fd, &st) == 0 && S_ISREG (st.st_mode)) {
    total = (uint64_t) st.st_size;
    regular = fd > 0;           /* stdin may be past its start */
  }
  else if (fd > 0 && fstat (fd, &st) == 0 && S_ISBLK (st.st_mode)) {
    off_t e = lseek (fd, 0, SEEK_END);
    if (e > 0)
      total = (uint64_t) e;
    lseek (fd, 0, SEEK_SET);
  }
  if (!hf_tool_volume_exists (url, &r)) {
    if (r == EXIT_NOVOLUME && !hf_tool_create_missing)
      fprintf (stderr, "hyperfile: import: no volume at %s: create it "
               "first with `hyperfile create %s --size SIZE`, or import "
               "with --create to make one the size of the image\n", url,
               url);
    else if (r == EXIT_NOVOLUME && total == 0) {
      fprintf (stderr, "hyperfile: import: --create needs the size of %s "
               "(a file or a block device, not a pipe): create the volume "
               "first with `hyperfile create %s --size SIZE`\n", in, url);
      r = EXIT_USAGE;
    }
    else if (r == EXIT_NOVOLUME) {
      hf_tool_size = total;
      hf_tool_create_silent = hf_tool_json;   /* one JSON document */
      r = hf_tool_create (url);
      hf_tool_create_silent = false;
      created = r == EXIT_SUCCESS;
    }
    if (r != EXIT_SUCCESS) {
      if (fd > 0)
        close (fd);
      return r;
    }
  }
  if ((r = hf_tool_store (url, &s, &prefix)) != 0) {
    if (fd > 0)
      close (fd);
    return r;
  }
  if ((r = hf_tool_writer_open (url, s, prefix, 0, &f)) != 0) {
    hf_objstore_close (s);
    free (prefix);
    if (fd > 0)
      close (fd);
    return r;
  }
  hf_volume_get_info (hf_file_volume (f), &vi);  /* the head too */
  fresh = vi.head_seq == 0;
  if (total > vi.size) {
    fprintf (stderr, "hyperfile: import: %s is %" PRIu64 " bytes, the "
             "volume only %" PRIu64 "\n", in, total, vi.size);
    r = EXIT_USAGE;
    goto out;
  }
  buf = malloc (HF_TOOL_CHUNK);
  if (buf == NULL) {
    r = EXIT_FAILURE;
    goto out;
  }
  x.f = f;
  x.fresh = fresh;
  x.bs = vi.block_size;
  x.buf = buf;
  x.total = total;
  x.t0 = t0;
  if (regular)
    r = hf_tool_import_sparse (&x, fd, in, total);
  else
    r = hf_tool_import_stream (&x, fd, in, vi.size);
  off = x.off;
  written = x.written;
  skipped = x.skipped;
  if (r == 0 && hf_file_flush (f) != 0)
    r = EXIT_FAILURE;
  hf_tool_progress ("import", off, total, t0, true);
  if (r && (x.written || x.zeroed))
    hf_tool_import_undo (f, url, vi.head_seq, vi.size, off);
 out:
  if (hf_file_close (f) != 0 && r == 0)
    r = EXIT_FAILURE;
  hf_objstore_close (s);
  free (prefix);
  if (fd > 0)
    close (fd);
  if (r)
    return r;
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_u64 (o, "bytes", off);
    hf_j_bool (o, "created", created);
    hf_j_u64 (o, "written", written);
    hf_j_u64 (o, "zero_skipped", skipped);
    hf_j_dbl (o, "seconds", hf_tool_now () - t0);
    hf_j_print (o, stdout);
  }
  else
    printf ("imported %" PRIu64 " bytes (%" PRIu64 " written, %" PRIu64
            " all-zero bytes skipped) in %.1f s\n", off, written, skipped,
            hf_tool_now () - t0);
  return EXIT_SUCCESS;
}

/* Export state: the volume, the output and the counters. */
struct hf_tool_export {
  struct hf_file *f;
  int fd;
  bool sparse;                  /* regular file: holes are seeks */
  uint8_t *buf;
  uint32_t bs;
  uint64_t done, total, data, holes;
  double t0;
};

static int
hf_tool_write_all (int fd, const uint8_t *p, size_t n)
{
  while (n > 0) {
    ssize_t k = write (fd, p, n);
    if (k < 0 && errno == EINTR)
      continue;
    if (k < 0)
      return errno;
    p += k;
    n -= (size_t) k;
  }
  return 0;
}

/* n zero bytes: a seek in a regular file, written to a pipe. */
static int
hf_tool_export_zero (struct hf_tool_export *x, uint64_t n)
{
  x->holes += n;
  if (x->sparse)
    return lseek (x->fd, (off_t) n, SEEK_CUR) < 0 ? errno : 0;
  memset (x->buf, 0, HF_TOOL_CHUNK);
  while (n > 0) {
    size_t k = n < HF_TOOL_CHUNK ? (size_t) n : HF_TOOL_CHUNK;
    int r = hf_tool_write_all (x->fd, x->buf, k);
    if (r)
      return r;
    n -= k;
  }
  return 0;
}

static int
hf_tool_export_run (void *opaque, uint64_t offset, uint64_t length,
                    unsigned type)
{
  struct hf_tool_export *x = opaque;
  bool hole = type == HF_FILE_EXTENT_HOLE;
  int r = 0;

  if (hole)
    r = hf_tool_export_zero (x, length);
  while (!hole && length > 0 && r == 0) {
    size_t k = length < HF_TOOL_CHUNK ? (size_t) length : HF_TOOL_CHUNK, i;

    r = hf_file_pread (x->f, x->buf, k, offset);
    /* Zero blocks inside data runs (sub-block writes of zeros) are
     * holes in a sparse output too. */
    for (i = 0; r == 0 && i < k;) {
      size_t l = k - i < x->bs ? k - i : x->bs;
      if (x->sparse && hf_tool_zero (x->buf + i, l))
        r = hf_tool_export_zero (x, l);
      else {
        r = hf_tool_write_all (x->fd, x->buf + i, l);
        x->data += l;
      }
      i += l;
    }
    offset += k;
    length -= k;
    x->done += k;
    hf_tool_progress ("export", x->done, x->total, x->t0, false);
  }
  if (hole) {
    x->done += length;
    hf_tool_progress ("export", x->done, x->total, x->t0, false);
  }
  return r;
}

int
hf_tool_export (int argc, char **argv)
{
  uint64_t at_seq = 0, size;
  struct hf_tool_export x = { .t0 = hf_tool_now () };
  const char *url = argv[0], *out = argv[1];
  struct hf_tool_vol t;
  struct stat st;
  int r;

  (void) argc;
  if (hf_tool_from)
    return hf_tool_export_from (url, out);
  /* Keep an existing file unless told (a device is meant to be
   * written: nbdcopy's rule); checked again by O_EXCL at the open. */
  if (!hf_tool_force && strcmp (out, "-") != 0 && lstat (out, &st) == 0 &&
      !S_ISBLK (st.st_mode) && !S_ISCHR (st.st_mode)) {
    fprintf (stderr, "hyperfile: export: %s exists; add --force to "
             "overwrite it\n", out);
    return EXIT_EXISTS;
  }
  if ((r = hf_tool_vol_open ("export", url, &t)) != 0)
    return r;
  if (hf_tool_at && (r = hf_tool_resolve ("export", &t, hf_tool_at,
                                          &at_seq)) != 0) {
    hf_tool_vol_close (&t);
    return r;
  }
  r = hf_tool_reader_open (url, t.s, t.prefix, at_seq, &x.f);
  if (r) {
    hf_tool_vol_close (&t);
    return r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
  }
  size = hf_file_size (x.f);
  x.total = size;
  x.bs = hf_file_block_size (x.f);
  if (strcmp (out, "-") == 0)
    x.fd = 1;
  else if (hf_tool_force || (lstat (out, &st) == 0 &&
                             (S_ISBLK (st.st_mode) || S_ISCHR (st.st_mode))))
    x.fd = open (out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  else
    x.fd = open (out, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
  if (x.fd < 0 && errno == EEXIST) {
    fprintf (stderr, "hyperfile: export: %s exists; add --force to "
             "overwrite it\n", out);
    r = EXIT_EXISTS;
    goto out;
  }
  x.buf = malloc (HF_TOOL_CHUNK);
  if (x.fd < 0 || x.buf == NULL) {
    fprintf (stderr, "hyperfile: export: %s: %m\n", out);
    r = EXIT_FAILURE;
    goto out;
  }
  x.sparse = fstat (x.fd, &st) == 0 && S_ISREG (st.st_mode);
  r = hf_file_extents (x.f, size, 0, hf_tool_export_run, &x);
  /* A trailing hole: the file gets its full size. */
  if (r == 0 && x.sparse && ftruncate (x.fd, (off_t) size) != 0)
    r = errno;
  if (r == 0 && x.fd != 1 && fsync (x.fd) != 0)
    r = errno;
  hf_tool_progress ("export", x.done, x.total, x.t0, true);
  if (r) {
    fprintf (stderr, "hyperfile: export: %s: %s\n", out, strerror (r));
    r = EXIT_FAILURE;
  }
 out:
  if (x.fd > 1 && close (x.fd) != 0 && r == 0) {
    fprintf (stderr, "hyperfile: export: %s: %m\n", out);
    r = EXIT_FAILURE;
  }
  free (x.buf);
  hf_file_close (x.f);           /* read-only: nothing to commit */
  hf_tool_vol_close (&t);
  if (r)
    return r;
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_u64 (o, "bytes", size);
    hf_j_u64 (o, "data", x.data);
    hf_j_u64 (o, "holes", x.holes);
    hf_j_bool (o, "sparse", x.sparse);
    hf_j_dbl (o, "seconds", hf_tool_now () - x.t0);
    hf_j_print (o, x.fd == 1 ? stderr : stdout);
  }
  else if (x.fd != 1)
    printf ("exported %" PRIu64 " bytes (%" PRIu64 " data, %" PRIu64
            " holes%s) in %.1f s\n", size, x.data, x.holes,
            x.sparse ? " left sparse" : "", hf_tool_now () - x.t0);
  return EXIT_SUCCESS;
}
