/* hf-logwriter: an append-only log in a hyperfile volume.
 *
 *   hf-logwriter URL N [WALDIR] < lines     append each line as a record,
 *                                           flushing every N records
 *   hf-logwriter URL --cat                  print the records
 *
 * A record is a 4-byte little-endian length and that many bytes; a
 * zero length (never-written space reads as zeros) ends the log.  Each
 * record goes in with one hf_file_pwrite, and hyperfile keeps writes
 * whole and in order across a crash, so after a crash the log is a
 * prefix of what was appended: at least every record up to the last
 * flush, never a torn record.  Appending again continues at the end.
 * The volume is created (1 MiB) when missing and doubled when full.
 * With WALDIR, flushes go to a local write-ahead log (fast) instead of
 * waiting for the store.  S3 settings come from the AWS_* environment.
 *
 * Build: cc hf-logwriter.c $(pkg-config --cflags --libs hyperfile)
 */
#define _GNU_SOURCE             /* getline */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hyperfile.h>

static void
die (const char *what, int err)
{
  fprintf (stderr, "hf-logwriter: %s: %s\n", what, strerror (err));
  exit (EXIT_FAILURE);
}

/* Read the length at off: 0 at the end of the log (or of the volume). */
static uint32_t
record_len (struct hf_file *f, uint64_t off)
{
  unsigned char b[4];
  int r;

  if (off + 4 > hf_file_size (f))
    return 0;
  if ((r = hf_file_pread (f, b, 4, off)) != 0)
    die ("read", r);
  return b[0] | b[1] << 8 | b[2] << 16 | (uint32_t) b[3] << 24;
}

int
main (int argc, char **argv)
{
  struct hf_file_options o;
  struct hf_file *f;
  uint64_t end = 0, every, n = 0;
  uint32_t len;
  char *line = NULL, *rec = NULL;
  size_t cap = 0;
  ssize_t got;
  int r;

  if (argc < 3 || argc > 4) {
    fprintf (stderr, "usage: hf-logwriter URL N [WALDIR] | URL --cat\n");
    return 2;
  }
  hf_file_options_init (&o);
  if (strcmp (argv[2], "--cat") == 0)
    o.flags = HF_FILE_READONLY; /* beside a running writer */
  else {
    r = hf_file_create (argv[1], 1024 * 1024, NULL);
    if (r && r != EEXIST)
      die (argv[1], r);
    o.wal_dir = argc == 4 ? argv[3] : NULL;
  }
  if ((r = hf_file_open (argv[1], &o, &f)) != 0)
    die (argv[1], r);

  /* Find the end (and print the records with --cat). */
  while ((len = record_len (f, end)) != 0) {
    if (len > hf_file_size (f) - end - 4)
      die ("damaged log: record runs past the end", EBADMSG);
    if (o.flags & HF_FILE_READONLY) {
      if ((rec = realloc (rec, len)) == NULL)
        die ("malloc", ENOMEM);
      if ((r = hf_file_pread (f, rec, len, end + 4)) != 0)
        die ("read", r);
      fwrite (rec, 1, len, stdout);
      putchar ('\n');
    }
    end += 4 + (uint64_t) len;
  }
  if (o.flags & HF_FILE_READONLY)
    return hf_file_close (f) ? EXIT_FAILURE : EXIT_SUCCESS;

  every = strtoull (argv[2], NULL, 10);
  if (every == 0)
    die ("N", EINVAL);
  while ((got = getline (&line, &cap, stdin)) > 0) {
    uint64_t size = hf_file_size (f), need;

    if (line[got - 1] == '\n')
      got--;
    if (got == 0)
      continue;                 /* a zero length would end the log */
    /* The record and the zero length after it must fit. */
    need = end + 4 + (uint64_t) got + 4;
    if (size < need) {
      while (size < need)
        size *= 2;
      if ((r = hf_file_resize (f, size)) != 0)
        die ("resize", r);
    }
    if ((rec = realloc (rec, 4 + got)) == NULL)
      die ("malloc", ENOMEM);
    rec[0] = got & 0xff;
    rec[1] = got >> 8 & 0xff;
    rec[2] = got >> 16 & 0xff;
    rec[3] = got >> 24 & 0xff;
    memcpy (rec + 4, line, got);
    if ((r = hf_file_pwrite (f, rec, 4 + got, end, 0)) != 0)
      die ("write", r);
    end += 4 + (uint64_t) got;
    if (++n % every == 0 && (r = hf_file_flush (f)) != 0)
      die ("flush", r);
  }
  if ((r = hf_file_close (f)) != 0)   /* commits the rest */
    die ("close", r);
  fprintf (stderr, "hf-logwriter: appended %" PRIu64 " records, log ends "
           "at byte %" PRIu64 "\n", n, end);
  free (line);
  free (rec);
  return EXIT_SUCCESS;
}
