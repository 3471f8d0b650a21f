/* hf-snapread: read a snapshot of a hyperfile volume.
 *
 *   hf-snapread URL                 list the snapshots
 *   hf-snapread URL SNAPSHOT FILE   write the volume as it was at
 *                                   SNAPSHOT into FILE, sparse
 *
 * The snapshot is opened read-only (no writer lease), so this runs
 * beside a live writer of the volume.  Holes in the snapshot (found
 * with hf_file_extents) are not read and stay holes in FILE.  SNAPSHOT
 * may also be a segment number or an ISO 8601 UTC time.  S3 settings
 * come from the AWS_* environment.
 *
 * Build: cc hf-snapread.c $(pkg-config --cflags --libs hyperfile)
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hyperfile.h>

#define CHUNK (1024 * 1024)

static void
die (const char *what, int err)
{
  fprintf (stderr, "hf-snapread: %s: %s\n", what, strerror (err));
  exit (EXIT_FAILURE);
}

static int
print_snapshot (void *opaque, const char *name, uint64_t seq, uint64_t ns)
{
  time_t t = ns / 1000000000;
  char when[64];

  (void) opaque;
  strftime (when, sizeof when, "%Y-%m-%dT%H:%M:%SZ", gmtime (&t));
  printf ("%-24s point %-8" PRIu64 " %s\n", name, seq, when);
  return 0;
}

struct copy {
  struct hf_file *f;
  int fd;
  char *buf;
  uint64_t data;
};

/* Copy one run of data from the snapshot to the file. */
static int
copy_extent (void *opaque, uint64_t off, uint64_t len, unsigned type)
{
  struct copy *c = opaque;
  int r;

  if (type == HF_FILE_EXTENT_HOLE)
    return 0;                   /* the file is sparse there already */
  while (len > 0) {
    size_t n = len < CHUNK ? len : CHUNK;

    if ((r = hf_file_pread (c->f, c->buf, n, off)) != 0)
      return r;
    if (pwrite (c->fd, c->buf, n, off) != (ssize_t) n)
      return errno ? errno : EIO;
    off += n;
    len -= n;
    c->data += n;
  }
  return 0;
}

int
main (int argc, char **argv)
{
  struct hf_file_options o;
  struct copy c = { 0 };
  int r;

  if (argc != 2 && argc != 4) {
    fprintf (stderr, "usage: hf-snapread URL [SNAPSHOT FILE]\n");
    return 2;
  }
  hf_file_options_init (&o);
  o.flags = HF_FILE_READONLY;
  o.at = argc == 4 ? argv[2] : NULL;
  if ((r = hf_file_open (argv[1], &o, &c.f)) != 0)
    die (argv[1], r);
  if (argc == 2) {
    if ((r = hf_file_snapshot_list (c.f, print_snapshot, NULL)) != 0)
      die ("list", r);
    return hf_file_close (c.f) ? EXIT_FAILURE : EXIT_SUCCESS;
  }

  c.fd = open (argv[3], O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (c.fd == -1)
    die (argv[3], errno);
  if (ftruncate (c.fd, hf_file_size (c.f)) == -1)
    die (argv[3], errno);
  if ((c.buf = malloc (CHUNK)) == NULL)
    die ("malloc", ENOMEM);
  r = hf_file_extents (c.f, hf_file_size (c.f), 0, copy_extent, &c);
  if (r)
    die ("copy", r);
  if (fsync (c.fd) == -1 || close (c.fd) == -1)
    die (argv[3], errno);
  printf ("%s at %s: %" PRIu64 " bytes, %" PRIu64 " of them data\n",
          argv[1], argv[2], hf_file_size (c.f), c.data);
  free (c.buf);
  return hf_file_close (c.f) ? EXIT_FAILURE : EXIT_SUCCESS;
}
