/* hf-import: copy a local disk image into a hyperfile volume, reading
 * and sending only the parts of the file that hold data.
 *
 *   hf-import IMAGE URL [SNAPSHOT]
 *
 * The volume is created with the image's size if it does not exist; an
 * existing one must be at least that large.  The image's holes (found
 * with SEEK_DATA / SEEK_HOLE, so a sparse file is not read where it
 * has no data) are trimmed in the volume, which costs no data.  With
 * SNAPSHOT, the imported state is named so it can be read back later
 * (see hf-snapread).  S3 settings come from the AWS_* environment.
 *
 * Build: cc hf-import.c $(pkg-config --cflags --libs hyperfile)
 */
#define _GNU_SOURCE             /* SEEK_DATA, SEEK_HOLE */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hyperfile.h>

#define CHUNK (1024 * 1024)

static int
die (const char *what, int err)
{
  fprintf (stderr, "hf-import: %s: %s\n", what, strerror (err));
  exit (EXIT_FAILURE);
}

/* Copy [off, end) of fd into the volume. */
static uint64_t
copy_data (int fd, struct hf_file *f, off_t off, off_t end, char *buf)
{
  uint64_t copied = 0;
  int r;

  while (off < end) {
    size_t n = end - off < CHUNK ? (size_t) (end - off) : CHUNK;
    ssize_t got = pread (fd, buf, n, off);

    if (got <= 0)
      die ("read", got < 0 ? errno : EIO);
    if ((r = hf_file_pwrite (f, buf, got, off, 0)) != 0)
      die ("write", r);
    off += got;
    copied += got;
  }
  return copied;
}

int
main (int argc, char **argv)
{
  uint64_t data = 0, holes = 0;
  struct hf_file *f;
  struct stat st;
  off_t off = 0, next;
  char *buf;
  int fd, r;

  if (argc < 3 || argc > 4) {
    fprintf (stderr, "usage: hf-import IMAGE URL [SNAPSHOT]\n");
    return 2;
  }
  if ((fd = open (argv[1], O_RDONLY)) == -1 || fstat (fd, &st) == -1)
    die (argv[1], errno);
  if (st.st_size == 0)
    die (argv[1], EINVAL);
  if ((buf = malloc (CHUNK)) == NULL)
    die ("malloc", ENOMEM);

  r = hf_file_create (argv[2], st.st_size, NULL);
  if (r && r != EEXIST)
    die (argv[2], r);
  if ((r = hf_file_open (argv[2], NULL, &f)) != 0)
    die (argv[2], r);
  if (hf_file_size (f) < (uint64_t) st.st_size) {
    fprintf (stderr, "hf-import: %s is smaller than %s\n", argv[2], argv[1]);
    return EXIT_FAILURE;
  }

  /* Alternate data and holes.  SEEK_DATA fails with ENXIO when only a
   * hole is left; a file system without hole support reports all data. */
  while (off < st.st_size) {
    next = lseek (fd, off, SEEK_DATA);
    if (next == -1 && errno != ENXIO)
      die ("lseek SEEK_DATA", errno);
    if (next == -1)
      next = st.st_size;
    if (next > off) {           /* a hole: make the volume match */
      if ((r = hf_file_trim (f, next - off, off, 0)) != 0)
        die ("trim", r);
      holes += next - off;
      off = next;
      continue;
    }
    next = lseek (fd, off, SEEK_HOLE);
    if (next == -1)
      die ("lseek SEEK_HOLE", errno);
    data += copy_data (fd, f, off, next, buf);
    off = next;
  }

  if (argc == 4) {
    uint64_t seq;

    /* Commits everything first, so the snapshot holds the whole image. */
    if ((r = hf_file_snapshot_create (f, argv[3], &seq)) != 0)
      die ("snapshot", r);
    printf ("snapshot %s = point %" PRIu64 "\n", argv[3], seq);
  }
  if ((r = hf_file_close (f)) != 0)
    die ("close", r);
  printf ("imported %s: %" PRIu64 " bytes of data copied, %" PRIu64
          " bytes of holes skipped\n", argv[1], data, holes);
  free (buf);
  close (fd);
  return EXIT_SUCCESS;
}
