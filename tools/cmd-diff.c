/* hyperfile admin command: what changed between two points.
 *
 *   diff, export --from
 *
 * Both walk the segments' extent tables between two points
 * (hf_history_changes): diff lists the extents, export --from writes
 * them into an image of the older point.
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

#include "history.h"
#include "log.h"
#include "objstore.h"
#include "volume.h"
#include "tool.h"

/* A diff between two points: the volume open at the newer one. */
struct hf_tool_diff {
  struct hf_file *f;            /* read-only at `to` */
  uint32_t bs;
  uint64_t size;                /* the volume's size at `to` */
  json_object *a;               /* diff --json: the extents */
  uint64_t changed;             /* bytes listed */
  int fd;                       /* export --from: the image; else -1 */
  bool regular;                 /* a regular file: holes are punched */
  uint8_t *buf;                 /* HF_TOOL_CHUNK bytes */
  uint64_t written, zeroed;
  double t0;
};

/* One run of data or hole at `to` inside a changed run. */
static int
hf_tool_diff_run (void *opaque, uint64_t off, uint64_t len, unsigned type)
{
  struct hf_tool_diff *x = opaque;
  bool hole = type == HF_FILE_EXTENT_HOLE;
  int r = 0;

  if (x->fd < 0) {
    if (x->a) {
      json_object *o = hf_j_obj ();

      hf_j_u64 (o, "offset", off);
      hf_j_u64 (o, "length", len);
      hf_j_bool (o, "data", !hole);
      json_object_array_add (x->a, o);
    }
    else
      printf ("%-20" PRIu64 " %-14" PRIu64 " %s\n", off, len,
              hole ? "hole" : "data");
    return 0;
  }
  if (hole) {
    x->zeroed += len;
    if (x->regular &&
        fallocate (x->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                   (off_t) off, (off_t) len) == 0)
      return 0;
    /* Past the end of the file, or no hole punching: write zeros. */
    memset (x->buf, 0, HF_TOOL_CHUNK);
  }
  while (len > 0 && r == 0) {
    size_t k = len < HF_TOOL_CHUNK ? (size_t) len : HF_TOOL_CHUNK;
    size_t done = 0;

    if (!hole && (r = hf_file_pread (x->f, x->buf, k, off)) != 0)
      break;
    while (done < k) {
      ssize_t w = pwrite (x->fd, x->buf + done, k - done,
                          (off_t) (off + done));
      if (w < 0 && errno == EINTR)
        continue;
      if (w < 0) {
        r = errno;
        break;
      }
      done += (size_t) w;
    }
    if (!hole)
      x->written += k;
    off += k;
    len -= k;
    hf_tool_progress ("export", x->written + x->zeroed, x->changed, x->t0,
                      false);
  }
  return r;
}

/* One changed run of blocks (hf_history_changes): split into data and
 * holes as the volume is at `to`. */
static int
hf_tool_diff_change (void *opaque, uint64_t lba, uint64_t n)
{
  struct hf_tool_diff *x = opaque;
  uint64_t off = lba * x->bs, len = n * x->bs;

  if (off >= x->size)
    return 0;                   /* past the end at `to` (a rollback) */
  if (len > x->size - off)
    len = x->size - off;
  x->changed += len;
  return hf_file_extents (x->f, len, off, hf_tool_diff_run, x);
}

/* Resolve --from and the newer point (to: --to or --at; NULL = the
 * head), and open the volume at it: 0, or the exit code. */
static int
hf_tool_diff_open (const char *cmd, const char *url, const char *to,
                   struct hf_tool_vol *t, uint64_t *from_seq,
                   uint64_t *to_seq, struct hf_tool_diff *x)
{
  int r;

  if (hf_tool_from == NULL) {
    fprintf (stderr, "hyperfile: %s: --from POINT is required\n", cmd);
    return EXIT_USAGE;
  }
  if (hf_history_check_at (hf_tool_from) != 0 ||
      (to && hf_history_check_at (to) != 0))
    return EXIT_USAGE;
  if ((r = hf_tool_vol_open (cmd, url, t)) != 0)
    return r;
  if ((r = hf_tool_resolve (cmd, t, hf_tool_from, from_seq)) != 0)
    goto fail;
  *to_seq = hf_history_head (t->h);
  if (to && (r = hf_tool_resolve (cmd, t, to, to_seq)) != 0)
    goto fail;
  if (*from_seq > *to_seq) {
    fprintf (stderr, "hyperfile: %s: --from %s (segment %" PRIu64 ") is "
             "newer than %s (segment %" PRIu64 ")\n", cmd, hf_tool_from,
             *from_seq, to ? to : "the head", *to_seq);
    r = EXIT_USAGE;
    goto fail;
  }
  if (hf_tool_reader_open (url, t->s, t->prefix, *to_seq, &x->f) != 0) {
    r = EXIT_FAILURE;           /* the volume said why */
    goto fail;
  }
  x->bs = hf_file_block_size (x->f);
  x->size = hf_file_size (x->f);
  return 0;
 fail:
  hf_tool_vol_close (t);
  return r;
}

/* Walk the changes (none when from == to): 0 or the exit code. */
static int
hf_tool_diff_walk (const char *cmd, struct hf_tool_vol *t, uint64_t from,
                   uint64_t to, struct hf_tool_diff *x, bool *widened)
{
  int r;

  *widened = false;
  if (from == to)
    return 0;
  r = hf_history_changes (t->h, from, to, hf_tool_diff_change, x, widened);
  if (r == 0)
    return 0;
  if (r != EINVAL && r != ENOENT)      /* those are logged */
    fprintf (stderr, "hyperfile: %s: %s\n", cmd, strerror (r));
  return r == EINVAL ? EXIT_NOPOINT : EXIT_FAILURE;
}

int
hf_tool_diff (int argc, char **argv)
{
  struct hf_tool_diff x = { .fd = -1 };
  struct hf_tool_vol t;
  uint64_t from, to;
  bool widened;
  int r;

  (void) argc;
  if ((r = hf_tool_diff_open ("diff", argv[0], hf_tool_to, &t, &from, &to,
                              &x)) != 0)
    return r;
  if (hf_tool_json)
    x.a = hf_j_arr ();
  else
    printf ("%-20s %-14s %s\n", "OFFSET", "LENGTH", "AT-TO");
  r = hf_tool_diff_walk ("diff", &t, from, to, &x, &widened);
  if (r == 0 && hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "url", argv[0]);
    hf_j_u64 (o, "from", from);
    hf_j_u64 (o, "to", to);
    hf_j_u64 (o, "size", x.size);
    hf_j_bool (o, "widened", widened);
    hf_j_u64 (o, "changed_bytes", x.changed);
    json_object_object_add (o, "extents", x.a);
    x.a = NULL;
    hf_j_print (o, stdout);
  }
  else if (r == 0 && widened)
    fprintf (stderr, "hyperfile: diff: a rollback lies between segments %"
             PRIu64 " and %" PRIu64 ": every extent written since the "
             "volume's first segment is listed\n", from, to);
  json_object_put (x.a);
  hf_file_close (x.f);
  hf_tool_vol_close (&t);
  return r;
}

/* export --from POINT: bring an image of POINT (FILE, which must exist)
 * to the newer point (--at, default the head) by writing only the
 * extents written between them; a regular file is then cut or grown to
 * the volume's size at that point. */
int
hf_tool_export_from (const char *url, const char *out)
{
  struct hf_tool_diff x = { .fd = -1, .t0 = hf_tool_now () };
  struct hf_tool_vol t;
  struct stat st;
  uint64_t from, to;
  bool widened;
  int r;

  if (strcmp (out, "-") == 0) {
    fprintf (stderr, "hyperfile: export: --from writes into an existing "
             "image, not to standard output\n");
    return EXIT_USAGE;
  }
  x.fd = open (out, O_WRONLY | O_CLOEXEC);
  if (x.fd < 0 || fstat (x.fd, &st) != 0) {
    fprintf (stderr, "hyperfile: export: %s: %m (--from %s writes the "
             "changes into the image exported at that point)\n", out,
             hf_tool_from);
    if (x.fd >= 0)
      close (x.fd);
    return errno == ENOENT ? EXIT_USAGE : EXIT_FAILURE;
  }
  x.regular = S_ISREG (st.st_mode);
  if ((r = hf_tool_diff_open ("export", url, hf_tool_at, &t, &from, &to,
                              &x)) != 0) {
    close (x.fd);
    return r;
  }
  x.buf = malloc (HF_TOOL_CHUNK);
  if (x.buf == NULL)
    r = EXIT_FAILURE;
  else if (!x.regular && S_ISBLK (st.st_mode)) {
    off_t e = lseek (x.fd, 0, SEEK_END);

    if (e < 0 || (uint64_t) e < x.size) {
      fprintf (stderr, "hyperfile: export: %s is smaller than the volume "
               "(%" PRIu64 " bytes)\n", out, x.size);
      r = EXIT_FAILURE;
    }
  }
  if (r == 0)
    r = hf_tool_diff_walk ("export", &t, from, to, &x, &widened);
  if (r == 0 && x.regular && ftruncate (x.fd, (off_t) x.size) != 0) {
    fprintf (stderr, "hyperfile: export: %s: %m\n", out);
    r = EXIT_FAILURE;
  }
  if (r == 0 && fsync (x.fd) != 0) {
    fprintf (stderr, "hyperfile: export: %s: %m\n", out);
    r = EXIT_FAILURE;
  }
  hf_tool_progress ("export", x.written + x.zeroed, x.changed, x.t0, true);
  if (close (x.fd) != 0 && r == 0) {
    fprintf (stderr, "hyperfile: export: %s: %m\n", out);
    r = EXIT_FAILURE;
  }
  free (x.buf);
  hf_file_close (x.f);
  hf_tool_vol_close (&t);
  if (r)
    return r;
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_u64 (o, "from", from);
    hf_j_u64 (o, "to", to);
    hf_j_u64 (o, "bytes", x.size);
    hf_j_u64 (o, "written", x.written);
    hf_j_u64 (o, "zeroed", x.zeroed);
    hf_j_bool (o, "widened", widened);
    hf_j_dbl (o, "seconds", hf_tool_now () - x.t0);
    hf_j_print (o, stdout);
  }
  else
    printf ("updated %s from segment %" PRIu64 " to %" PRIu64 ": %" PRIu64
            " bytes written, %" PRIu64 " zeroed%s in %.1f s\n", out, from,
            to, x.written, x.zeroed, widened ? " (a rollback between: "
            "every extent since the first segment)" : "",
            hf_tool_now () - x.t0);
  return EXIT_SUCCESS;
}
