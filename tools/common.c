/* hyperfile admin command: what every command uses.
 *
 * Opening a URL's store (with the volume key), the store plus its
 * history (hf_tool_vol), resolving a POINT to an exit code, the
 * progress bar, JSON output and the small helpers more than one command
 * file needs.  tool.h documents them.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>

#include "crypt.h"
#include "file-int.h"
#include "history.h"
#include "log.h"
#include "objstore.h"
#include "volume.h"
#include "tool.h"

double
hf_tool_now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* --json output is built with json-c, which quotes and escapes every
 * string (a URL or name may hold any byte but NUL), and printed as one
 * document on one line. */
json_object *
hf_j_new (json_object *o)
{
  if (o == NULL) {
    fprintf (stderr, "hyperfile: out of memory\n");
    exit (EXIT_FAILURE);
  }
  return o;
}

/* Print o to fp and free it. */
void
hf_j_print (json_object *o, FILE *fp)
{
  fprintf (fp, "%s\n", json_object_to_json_string_ext
           (o, JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put (o);
}

int
hf_tool_open_store (const char *url, bool create, struct hf_objstore **s,
                    char **prefix)
{
  return hf_file_store_open (url, &hf_tool_s3, create,
                             hf_tool_have_ukey ? &hf_tool_ukey : NULL, s,
                             prefix);
}

int
hf_tool_store (const char *url, struct hf_objstore **s, char **prefix)
{
  int r = hf_tool_open_store (url, false, s, prefix);

  return r == 0 ? 0 : r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
}

/* Is there a volume at url?  false with *code EXIT_NOVOLUME if not (no
 * message: the caller says what to do), or another exit code if the
 * store failed (the store said why). */
bool
hf_tool_volume_exists (const char *url, int *code)
{
  struct hf_objstore_info oi;
  char key[HF_OBJSTORE_KEY_MAX + 1];
  struct hf_objstore *s;
  char *prefix;
  int r;

  hf_tool_held[0] = '\0';
  hf_tool_quiet = true;         /* a missing directory is an answer */
  r = hf_tool_open_store (url, false, &s, &prefix);
  hf_tool_quiet = false;
  if (r) {
    *code = r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
    if (r != ENOENT)
      fprintf (stderr, "hyperfile: error: %s\n",
               hf_tool_held[0] ? hf_tool_held : strerror (r));
    return false;
  }
  snprintf (key, sizeof key, "%svolume", prefix);
  r = hf_objstore_head (s, key, &oi);
  hf_objstore_close (s);
  free (prefix);
  *code = r == 0 ? EXIT_SUCCESS : r == ENOENT ? EXIT_NOVOLUME
    : EXIT_FAILURE;
  return r == 0;
}

/* hf_volume_extents callback: count the blocks in data runs. */
int
hf_tool_count_mapped (void *opaque, uint64_t offset, uint64_t length,
                      unsigned type)
{
  uint64_t *bytes = opaque;

  (void) offset;
  if (type != HF_FILE_EXTENT_HOLE)
    *bytes += length;
  return 0;
}

void
hf_tool_vol_close (struct hf_tool_vol *t)
{
  hf_history_close (t->h);
  hf_objstore_close (t->s);
  free (t->prefix);
  memset (t, 0, sizeof *t);
}

/* Open url's store and history: 0, or the exit code (message printed). */
int
hf_tool_vol_open (const char *cmd, const char *url, struct hf_tool_vol *t)
{
  int r;

  memset (t, 0, sizeof *t);
  if ((r = hf_tool_store (url, &t->s, &t->prefix)) != 0)
    return r;
  r = hf_history_open (t->s, t->prefix, &hf_tool_s3, &t->h);
  if (r) {
    hf_tool_vol_close (t);
    if (r == ENOENT) {
      fprintf (stderr, "hyperfile: %s: no volume at %s\n", cmd, url);
      return EXIT_NOVOLUME;
    }
    fprintf (stderr, "hyperfile: %s: %s: %s\n", cmd, url, strerror (r));
    return EXIT_FAILURE;
  }
  return 0;
}

/* Resolve POINT on t's chain: 0 and *seq, or the exit code. */
int
hf_tool_resolve (const char *cmd, struct hf_tool_vol *t, const char *point,
                 uint64_t *seq)
{
  int r;

  if (hf_history_check_at (point) != 0)
    return EXIT_USAGE;          /* the log line said what is wrong */
  r = hf_history_resolve (t->h, point, true, seq);
  if (r == 0)
    return 0;
  if (r == EINVAL || r == ENOENT)
    return EXIT_NOPOINT;
  fprintf (stderr, "hyperfile: %s: resolving %s: %s\n", cmd, point,
           strerror (r));
  return EXIT_FAILURE;
}

/* hf_file_open_ext on the store the command opened, with the store
 * options (a clone's parents are reached with them) and vo. */
static int
hf_tool_file_open (const char *url, struct hf_objstore *s,
                   const char *prefix, const struct hf_volume_options *vo,
                   struct hf_file **f)
{
  struct hf_file_ext x = { .store = s, .prefix = prefix, .s3 = &hf_tool_s3,
                           .vopts = vo };

  return hf_file_open_ext (url, NULL, &x, f);
}

int
hf_tool_writer_open (const char *url, struct hf_objstore *s,
                     const char *prefix, unsigned flags, struct hf_file **f)
{
  struct hf_volume_options wo = {
    .takeover = hf_tool_takeover,
    .flush_interval_ms = (flags & HF_TOOL_W_BATCH) ? UINT32_MAX : 0,
    .accept_older_head = (flags & HF_TOOL_W_OLDER_HEAD) != 0 };
  int r = hf_tool_file_open (url, s, prefix, &wo, f);

  if (r == 0)
    return 0;
  return r == ENOENT ? EXIT_NOVOLUME : r == EBUSY ? EXIT_BUSY
    : EXIT_FAILURE;
}

int
hf_tool_reader_open (const char *url, struct hf_objstore *s,
                     const char *prefix, uint64_t at_seq, struct hf_file **f)
{
  struct hf_volume_options ro = { .readonly = true, .at_seq = at_seq };

  return hf_tool_file_open (url, s, prefix, &ro, f);
}

/* Progress on stderr when it is a terminal: done of total bytes (total
 * 0 = unknown), rate and ETA; final ends the line. */
void
hf_tool_progress (const char *what, uint64_t done, uint64_t total,
                  double t0, bool final)
{
  static double last;
  double now = hf_tool_now (), el = now - t0, rate;

  if (!hf_tool_tty || (!final && now - last < 0.2))
    return;
  last = now;
  rate = el > 0 ? (double) done / el : 0;
  if (total) {
    double frac = (double) done / (double) total;
    int i, w = (int) (frac * 30);
    fprintf (stderr, "\r%s [", what);
    for (i = 0; i < 30; i++)
      fputc (i < w ? '#' : ' ', stderr);
    fprintf (stderr, "] %5.1f%% %8.1f MiB/s ETA %4.0fs ", frac * 100,
             rate / 1048576, rate > 0 ? (double) (total - done) / rate : 0);
  }
  else
    fprintf (stderr, "\r%s %10.1f MiB %8.1f MiB/s ", what,
             (double) done / 1048576, rate / 1048576);
  if (final)
    fputc ('\n', stderr);
  fflush (stderr);
}

bool
hf_tool_zero (const uint8_t *p, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}
