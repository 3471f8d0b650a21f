/* hyperfile: the admin command.
 *
 *   hyperfile [STORE OPTIONS] create URL --size SIZE [--block-size N]
 *   hyperfile [STORE OPTIONS] info URL [--json]
 *   hyperfile [STORE OPTIONS] ls URL [--json]
 *   hyperfile [STORE OPTIONS] snapshot create URL NAME [--at POINT]
 *   hyperfile [STORE OPTIONS] snapshot list URL [--json]
 *   hyperfile [STORE OPTIONS] snapshot delete URL NAME
 *   hyperfile [STORE OPTIONS] clone SRC-URL[@POINT] DST-URL
 *   hyperfile [STORE OPTIONS] rollback URL POINT [--takeover]
 *   hyperfile [STORE OPTIONS] gc URL [--dry-run] [--retain=DUR] [--grace=DUR]
 *   hyperfile [STORE OPTIONS] fsck URL [--json] [--retain=DUR]
 *   hyperfile [STORE OPTIONS] import FILE|- URL [--takeover]
 *   hyperfile [STORE OPTIONS] export URL FILE|- [--at POINT]
 *   hyperfile [STORE OPTIONS] resize URL SIZE
 *   hyperfile [STORE OPTIONS] children URL [--prune]
 *   hyperfile [STORE OPTIONS] flatten CLONE-URL
 *   hyperfile [STORE OPTIONS] diff URL --from POINT [--to POINT]
 *   hyperfile [STORE OPTIONS] export URL FILE --from POINT [--at POINT]
 *   hyperfile [STORE OPTIONS] rekey URL --new-key-file PATH|--new-key PASS
 *
 * Store options are the plugin's parameters spelled as long options
 * (--endpoint, --region, --access-key, --secret-key, --session-token,
 * --profile, --virtual-host, --tls-verify=false, --ca-file), so a URL that
 * works with `nbdkit hyperfile` works here.  Secrets accept the nbdkit
 * password syntax: +FILE reads the first line of FILE, -FD a line from
 * file descriptor FD, - a line from stdin.
 *
 * POINT is a point in time as the plugin's at=: SEQ, an ISO 8601 UTC
 * TIMESTAMP or a SNAPSHOT name.  Each command is one function taking
 * its own arguments (argc/argv after the command word).
 *
 * Exit codes (documented in hyperfile(1), EXIT STATUS): 0 success,
 * 1 the operation failed, 2 usage error (bad arguments, a bad snapshot
 * name or time syntax), 3 no volume at URL, 4 it exists already (create,
 * clone destination, snapshot name), 5 another writer holds the
 * volume's lease (rollback, import, resize, delete), 6 no such point
 * in time or snapshot, 7 fsck found damage.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <termios.h>
#include <unistd.h>
#include <time.h>

#include <json-c/json.h>

#include "cleanup.h"
#include "crypt.h"
#include "fsck.h"
#include "duration.h"
#include "gc.h"
#include "history.h"
#include "lease.h"
#include "lineage.h"
#include "log.h"
#include "objstore.h"
#include "volume.h"

#define EXIT_USAGE 2
#define EXIT_NOVOLUME 3
#define EXIT_EXISTS 4
#define EXIT_BUSY 5
#define EXIT_NOPOINT 6
#define EXIT_DAMAGED 7

static struct hf_s3_config hf_tool_s3 = { .tls_verify = true };
static bool hf_tool_json;
static uint64_t hf_tool_size;
static uint32_t hf_tool_block_size;
static bool hf_tool_verbose;
static const char *hf_tool_at;          /* --at POINT */
static bool hf_tool_takeover;           /* --takeover */
static bool hf_tool_dry_run;            /* gc --dry-run */
static uint64_t hf_tool_retain_ns =     /* gc, fsck --retain */
  (uint64_t) HF_GC_DEFAULT_RETAIN_S * 1000000000;
static uint64_t hf_tool_grace_ns =      /* gc, fsck --grace */
  (uint64_t) HF_GC_DEFAULT_GRACE_S * 1000000000;
static bool hf_tool_retain_set;         /* --retain given */
static bool hf_tool_tty;                /* stderr is a terminal */
static bool hf_tool_force;              /* export --force */
static bool hf_tool_quiet;              /* keep the first error line in */
static char hf_tool_held[1024];         /* hf_tool_held, not printed */
static bool hf_tool_create_missing;     /* import --create */
static bool hf_tool_create_silent;      /* create: no report */
static bool hf_tool_prune;              /* children --prune */
static const char *hf_tool_from;        /* diff, export --from POINT */
static const char *hf_tool_to;          /* diff --to POINT */

static double
hf_tool_now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (double) ts.tv_sec + (double) ts.tv_nsec / 1e9;
}

/* Secrets read from +FILE / - are kept here to free at exit. */
static char *hf_tool_secrets[5];

/* The volume key (--key-file, --key) and rekey's new one. */
static const char *hf_tool_key_file, *hf_tool_key_pass;
static const char *hf_tool_new_key_file, *hf_tool_new_key_pass;
static struct hf_user_key hf_tool_ukey, hf_tool_new_ukey;
static bool hf_tool_have_ukey;

/* --json output is built with json-c, which quotes and escapes every
 * string (a URL or name may hold any byte but NUL), and printed as one
 * document on one line. */
static json_object *
hf_j_new (json_object *o)
{
  if (o == NULL) {
    fprintf (stderr, "hyperfile: out of memory\n");
    exit (EXIT_FAILURE);
  }
  return o;
}
#define hf_j_obj() hf_j_new (json_object_new_object ())
#define hf_j_arr() hf_j_new (json_object_new_array ())
#define hf_j_str(o, k, v) \
  json_object_object_add ((o), (k), hf_j_new (json_object_new_string (v)))
#define hf_j_u64(o, k, v) \
  json_object_object_add ((o), (k), \
                          hf_j_new (json_object_new_uint64 (v)))
#define hf_j_bool(o, k, v) \
  json_object_object_add ((o), (k), json_object_new_boolean (v))
#define hf_j_dbl(o, k, v) \
  json_object_object_add ((o), (k), hf_j_new (json_object_new_double (v)))

/* Print o to fp and free it. */
static void
hf_j_print (json_object *o, FILE *fp)
{
  fprintf (fp, "%s\n", json_object_to_json_string_ext
           (o, JSON_C_TO_STRING_SPACED | JSON_C_TO_STRING_NOSLASHESCAPE));
  json_object_put (o);
}

static void
hf_tool_usage (FILE *fp)
{
  fprintf (fp,
"usage: hyperfile [OPTIONS] COMMAND URL [ARGS]\n"
"\n"
"Commands:\n"
"  create URL --size SIZE [--block-size N]   create a volume\n"
"  info URL [--json]                         show a volume's state\n"
"  ls URL [--json]                           list its points in time\n"
"  snapshot create URL NAME [--at POINT]     name a point (default: head)\n"
"  snapshot list URL [--json]                list the named snapshots\n"
"  snapshot delete URL NAME                  delete a named snapshot\n"
"  clone SRC-URL[@POINT] DST-URL             new volume sharing SRC's point\n"
"  rollback URL POINT [--takeover]           make POINT the head again\n"
"  gc URL [--dry-run] [--retain=DUR] [--grace=DUR]\n"
"                                            collect and compact segments\n"
"  fsck URL [--json] [--retain=DUR]          verify every structure and CRC\n"
"  import FILE|- URL [--takeover] [--create] raw image in (zero blocks skipped)\n"
"  export URL FILE|- [--at POINT] [--force]  raw image out (sparse file)\n"
"  export URL FILE --from POINT [--at POINT] only what changed since POINT\n"
"  diff URL --from POINT [--to POINT]        extents written between points\n"
"  delete URL [--force] [--json]             delete a volume or clone\n"
"  du URL [--retain=DUR] [--json]            space in the store, live, reclaimable\n"
"  resize URL SIZE [--force] [--json]        grow (or with --force shrink)\n"
"  children URL [--prune] [--json]           clones registered on the volume\n"
"  flatten CLONE-URL [--json]                copy what a clone reads from its parent\n"
"  rekey URL --new-key-file PATH|--new-key PASS  rewrap the data key\n"
"  help [COMMAND]                            this, or one command's usage\n"
"\n"
"URL is s3://BUCKET[/PREFIX], file:///DIR or a directory path.\n"
"POINT is a segment number, an ISO 8601 UTC time (2026-11-25T10:00:00Z:\n"
"the newest point at or before it) or a snapshot name.\n"
"\n"
"Store options (as the plugin's parameters):\n"
"  --endpoint URL        S3-compatible endpoint (implies path-style)\n"
"  --virtual-host        virtual-host addressing with --endpoint\n"
"  --express             S3 Express directory bucket (implied by its name)\n"
"  --region REGION\n"
"  --access-key KEY\n"
"  --secret-key SECRET   or +FILE, -FD (a file descriptor), or - (stdin)\n"
"  --session-token TOK   or +FILE, -FD, or -\n"
"  --profile NAME        profile in ~/.aws/credentials and ~/.aws/config\n"
"  --sse AES256|aws:kms  server-side encryption of new objects\n"
"  --sse-kms-key-id KEY  the KMS key for --sse aws:kms\n"
"  --storage-class CLASS S3 storage class of new objects\n"
"  --tls-verify=false    do not verify TLS certificates\n"
"  --ca-file FILE\n"
"  --request-timeout DUR an S3 request attempt's time, plus its bytes at\n"
"                        256 KiB/s (default 60s)\n"
"  --request-retries N   retries of a failed S3 request (default 8)\n"
"  --clone-parent-any    a directory volume may be a clone of one in S3\n"
"  --key-file PATH       the volume's encryption key (32 bytes or 64 hex)\n"
"  --key PASSPHRASE      or a passphrase: +FILE, or - to read it from stdin\n"
"  -v, --verbose         debug messages (all areas)\n"
"  --json                machine-readable output\n"
"  -h, --help            this, or with a command its usage\n"
"  -V, --version\n");
}

/* Parse SIZE with an optional K/M/G/T/P/E suffix (powers of 1024). */
static int
hf_tool_parse_size (const char *s, uint64_t *out)
{
  char *end;
  unsigned long long v;
  int shift = 0;

  if (*s < '0' || *s > '9')
    return -1;                  /* strtoull takes "-1" */
  errno = 0;
  v = strtoull (s, &end, 10);
  if (errno || end == s)
    return -1;
  switch (*end) {
  case '\0': break;
  case 'k': case 'K': shift = 10; end++; break;
  case 'm': case 'M': shift = 20; end++; break;
  case 'g': case 'G': shift = 30; end++; break;
  case 't': case 'T': shift = 40; end++; break;
  case 'p': case 'P': shift = 50; end++; break;
  case 'e': case 'E': shift = 60; end++; break;
  default: return -1;
  }
  if (*end == 'i' || *end == 'b' || *end == 'B')
    end++;
  if (*end == 'B')
    end++;
  if (*end != '\0')
    return -1;
  if (shift && v > (UINT64_MAX >> shift))
    return -1;
  *out = (uint64_t) v << shift;
  return 0;
}

/* nbdkit password syntax: "+FILE" reads FILE's first line, "-FD" a
 * line from file descriptor FD (3 or above; closed after), "-" a line
 * from stdin (on a terminal: prompted, without echo), anything else is
 * the secret itself.  Unlike nbdkit, "-" also reads a pipe (nothing
 * else uses our stdin). */
static const char *
hf_tool_read_secret (const char *arg, int slot)
{
  struct termios saved, quiet;
  bool tty = false;
  FILE *fp;
  char *line = NULL;
  size_t n = 0;
  ssize_t len;

  if (strcmp (arg, "-") == 0) {
    fp = stdin;
    if (isatty (0) && tcgetattr (0, &saved) == 0) {
      quiet = saved;
      quiet.c_lflag &= ~(tcflag_t) ECHO;
      tty = tcsetattr (0, TCSAFLUSH, &quiet) == 0;
      fprintf (stderr, "secret: ");
    }
  }
  else if (arg[0] == '-' && arg[1] >= '0' && arg[1] <= '9' &&
           strspn (arg + 1, "0123456789") == strlen (arg + 1)) {
    long fd = strtol (arg + 1, NULL, 10);

    if (fd < 3 || fd > 1000000) {
      fprintf (stderr, "hyperfile: %s: a file descriptor from 3 up (use "
               "- for standard input)\n", arg);
      exit (EXIT_USAGE);
    }
    fp = fdopen ((int) fd, "r");
    if (fp == NULL) {
      fprintf (stderr, "hyperfile: %s: file descriptor %ld: %m\n", arg, fd);
      exit (EXIT_USAGE);
    }
  }
  else if (arg[0] == '+') {
    fp = fopen (arg + 1, "r");
    if (fp == NULL) {
      fprintf (stderr, "hyperfile: %s: %m\n", arg + 1);
      exit (EXIT_USAGE);
    }
  }
  else
    return arg;
  len = getline (&line, &n, fp);
  if (tty) {
    tcsetattr (0, TCSAFLUSH, &saved);
    fputc ('\n', stderr);
  }
  if (fp != stdin)
    fclose (fp);
  if (len < 0) {
    fprintf (stderr, "hyperfile: could not read a secret from %s\n",
             arg[0] == '+' ? arg + 1 : arg[1] ? arg : "stdin");
    exit (EXIT_USAGE);
  }
  while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r'))
    line[--len] = '\0';
  free (hf_tool_secrets[slot]);
  hf_tool_secrets[slot] = line;
  return line;
}

static void
hf_tool_log (enum hf_log_level level, const char *msg)
{
  static const char *const names[] = { "error", "warning", "info", "debug" };

  if (level == HF_LOG_DEBUG && !hf_tool_verbose)
    return;
  if (hf_tool_quiet && level == HF_LOG_ERROR) {
    if (hf_tool_held[0] == '\0')
      snprintf (hf_tool_held, sizeof hf_tool_held, "%s", msg);
    return;
  }
  fprintf (stderr, "hyperfile: %s: %s\n", names[level], msg);
}

static int
hf_tool_open_store (const char *url, bool create, struct hf_objstore **s,
                    char **prefix)
{
  int r = hf_objstore_open_url (url, &hf_tool_s3, create, s, prefix);

  if (r)
    return r;
  if (strncmp (url, "s3://", 5) == 0 && (r = hf_objstore_s3_check (*s))) {
    hf_objstore_close (*s);
    free (*prefix);
    return r;
  }
  /* An encrypted volume is read and written through its crypt store;
   * without the right key nothing goes further (crypt.h). */
  if ((r = hf_crypt_attach (s, *prefix, hf_tool_have_ukey ? &hf_tool_ukey
                            : NULL)) != 0) {
    hf_objstore_close (*s);
    free (*prefix);
    return r;
  }
  return 0;
}

/* Is there a volume at url?  false with *code EXIT_NOVOLUME if not (no
 * message: the caller says what to do), or another exit code if the
 * store failed (the store said why). */
static bool
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

static int
hf_tool_create (const char *url)
{
  struct hf_objstore *s;
  char *prefix;
  int r;

  if (hf_tool_size == 0) {
    fprintf (stderr, "hyperfile: create: --size is required\n");
    return EXIT_USAGE;
  }
  if ((r = hf_tool_open_store (url, true, &s, &prefix)) != 0)
    return EXIT_FAILURE;
  r = hf_volume_create_key (s, prefix, hf_tool_size, hf_tool_block_size,
                            hf_tool_have_ukey ? &hf_tool_ukey : NULL);
  hf_objstore_close (s);
  free (prefix);
  if (r == EEXIST) {
    fprintf (stderr, "hyperfile: create: a volume already exists at %s\n",
             url);
    return EXIT_EXISTS;
  }
  if (r) {
    fprintf (stderr, "hyperfile: create: %s: %s\n", url, strerror (r));
    return EXIT_FAILURE;
  }
  if (hf_tool_create_silent)
    return EXIT_SUCCESS;
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "url", url);
    hf_j_u64 (o, "size", hf_tool_size);
    hf_j_bool (o, "created", true);
    hf_j_print (o, stdout);
  }
  else
    printf ("created %s (%" PRIu64 " bytes)\n", url, hf_tool_size);
  return EXIT_SUCCESS;
}

/* hf_volume_extents callback: count the blocks in data runs. */
static int
hf_tool_count_mapped (void *opaque, uint64_t offset, uint64_t length,
                      bool hole)
{
  uint64_t *bytes = opaque;

  (void) offset;
  if (!hole)
    *bytes += length;
  return 0;
}

static int
hf_tool_info (const char *url)
{
  struct hf_volume_options opts = { .readonly = true,
                                    .parent_cfg = &hf_tool_s3 };
  struct hf_volume_info vi;
  struct hf_vdesc d;
  struct hf_volume *v;
  struct hf_objstore *s;
  struct hf_lease_info li;
  bool have_lease;
  uint64_t mapped_bytes = 0, mapped, now_ns, exp_ns = 0;
  char *prefix, uuid[33];
  int r, i;

  if ((r = hf_tool_open_store (url, false, &s, &prefix)) != 0)
    return r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
  r = hf_volume_open (s, prefix, &opts, &v);
  if (r) {
    hf_objstore_close (s);
    free (prefix);
    if (r == ENOENT) {
      fprintf (stderr, "hyperfile: info: no volume at %s\n", url);
      return EXIT_NOVOLUME;
    }
    fprintf (stderr, "hyperfile: info: %s: %s\n", url, strerror (r));
    return EXIT_FAILURE;
  }
  hf_volume_get_info (v, &vi);
  for (i = 0; i < 16; i++)
    sprintf (uuid + 2 * i, "%02x", vi.uuid[i]);
  /* The blocks mapped at the head now: the index's count is as of the
   * last checkpoint, so walk the extents (index and the segments since
   * it, as a reader sees them). */
  r = hf_volume_extents (v, vi.size, 0, hf_tool_count_mapped, &mapped_bytes);
  if (r == 0)
    /* The writer's lease (read beside it, never written). */
    r = hf_lease_newest (s, prefix, &have_lease, &li);
  if (r) {
    fprintf (stderr, "hyperfile: info: %s: %s\n", url, strerror (r));
    hf_volume_close (v);
    hf_objstore_close (s);
    free (prefix);
    return EXIT_FAILURE;
  }
  mapped = (mapped_bytes + vi.block_size - 1) / vi.block_size;
  {
    struct timespec ts;

    clock_gettime (CLOCK_REALTIME, &ts);  /* leases hold wall time */
    now_ns = (uint64_t) ts.tv_sec * 1000000000 + (uint64_t) ts.tv_nsec;
  }
  if (have_lease)
    exp_ns = li.renewed_ns + (uint64_t) li.ttl_s * 1000000000;
  /* A clone says where it comes from. */
  if (hf_vdesc_read (s, prefix, &d) != 0)
    d.flags = 0;
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "url", url);
    hf_j_str (o, "uuid", uuid);
    hf_j_u64 (o, "size", vi.size);
    hf_j_u64 (o, "block_size", vi.block_size);
    hf_j_u64 (o, "head_seq", vi.head_seq);
    hf_j_u64 (o, "checkpoint_seq", vi.ckpt_seq);
    hf_j_u64 (o, "mapped_blocks", mapped);
    hf_j_u64 (o, "lease_epoch", have_lease ? li.epoch : 0);
    if (have_lease) {
      json_object *l = hf_j_obj ();

      hf_j_u64 (l, "epoch", li.epoch);
      hf_j_str (l, "holder", li.holder);
      hf_j_bool (l, "released", li.flags & HF_LS_RELEASED);
      hf_j_u64 (l, "renewed_ns", li.renewed_ns);
      hf_j_u64 (l, "ttl_s", li.ttl_s);
      json_object_object_add (l, "expires_in_s", hf_j_new
                              (json_object_new_int64
                               (((int64_t) exp_ns - (int64_t) now_ns)
                                / 1000000000)));
      json_object_object_add (o, "lease", l);
    }
    if (d.flags & HF_VD_CLONE) {
      hf_j_str (o, "clone_of", d.parent_url);
      hf_j_u64 (o, "base_seq", d.parent_seq);
      if (d.flags & HF_VD_FLATTENED)
        hf_j_u64 (o, "flattened_at", d.flat_seq);
    }
    hf_j_str (o, "encryption", !(d.flags & HF_VD_ENCRYPTED) ? "none"
              : d.crypt.kdf == HF_VD_KDF_SCRYPT ? "aes-256-gcm, passphrase"
              : "aes-256-gcm, key file");
    hf_j_print (o, stdout);
  }
  else {
    printf ("url:            %s\n"
            "uuid:           %s\n"
            "size:           %" PRIu64 "\n"
            "block size:     %" PRIu32 "\n"
            "head segment:   %" PRIu64 "\n"
            "checkpoint:     %" PRIu64 "\n"
            "mapped blocks:  %" PRIu64 " (%" PRIu64 " bytes)\n",
            url, uuid, vi.size, vi.block_size, vi.head_seq, vi.ckpt_seq,
            mapped, mapped * vi.block_size);
    if (!have_lease)
      printf ("lease:          none (never opened by a writer)\n");
    else if (li.flags & HF_LS_RELEASED)
      printf ("lease:          epoch %" PRIu64 " released by %s\n",
              li.epoch, li.holder);
    else if (exp_ns > now_ns)
      printf ("lease:          epoch %" PRIu64 " held by %s, expires in %"
              PRIu64 " s unless renewed\n", li.epoch, li.holder,
              (exp_ns - now_ns) / 1000000000);
    else
      printf ("lease:          epoch %" PRIu64 " of %s expired %" PRIu64
              " s ago, not released (the writer died: a new one takes "
              "over with takeover=true)\n", li.epoch, li.holder,
              (now_ns - exp_ns) / 1000000000);
  }
  if (!hf_tool_json && (d.flags & HF_VD_CLONE))
    printf ("clone of:       %s at segment %" PRIu64 "\n", d.parent_url,
            d.parent_seq);
  if (!hf_tool_json && (d.flags & HF_VD_FLATTENED))
    printf ("flattened at segment %" PRIu64 " (the points since need "
            "nothing of the parent)\n", d.flat_seq);
  if (!hf_tool_json && (d.flags & HF_VD_ENCRYPTED))
    printf ("encryption:     AES-256-GCM, data key wrapped with a %s\n",
            d.crypt.kdf == HF_VD_KDF_SCRYPT ? "passphrase (scrypt)"
            : "key file");
  hf_volume_close (v);
  hf_objstore_close (s);
  free (prefix);
  return EXIT_SUCCESS;
}

/* ---- Points in time, snapshots, clones, rollback ---- */

/* An open store and the history of the volume in it. */
struct hf_tool_vol {
  struct hf_objstore *s;
  char *prefix;
  struct hf_history *h;
};

static void
hf_tool_vol_close (struct hf_tool_vol *t)
{
  hf_history_close (t->h);
  hf_objstore_close (t->s);
  free (t->prefix);
  memset (t, 0, sizeof *t);
}

/* Open url's store and history: 0, or the exit code (message printed). */
static int
hf_tool_vol_open (const char *cmd, const char *url, struct hf_tool_vol *t)
{
  int r;

  memset (t, 0, sizeof *t);
  if ((r = hf_tool_open_store (url, false, &t->s, &t->prefix)) != 0)
    return r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
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
static int
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

static int
hf_tool_ls (int argc, char **argv)
{
  struct hf_tool_vol t;
  const struct hf_point *p;
  struct hf_snapshot *sn = NULL;
  json_object *jo = NULL, *jpts = NULL;
  size_t n, nsn = 0, i, j;
  int r;

  (void) argc;
  if ((r = hf_tool_vol_open ("ls", argv[0], &t)) != 0)
    return r;
  r = hf_history_points (t.h, &p, &n);
  if (r == 0)
    r = hf_snapshot_list (t.s, t.prefix, &sn, &nsn);
  if (r) {
    fprintf (stderr, "hyperfile: ls: %s: %s\n", argv[0], strerror (r));
    hf_tool_vol_close (&t);
    return EXIT_FAILURE;
  }
  if (hf_tool_json) {
    jo = hf_j_obj ();
    jpts = hf_j_arr ();
    hf_j_str (jo, "url", argv[0]);
    hf_j_u64 (jo, "head", hf_history_head (t.h));
    json_object_object_add (jo, "points", jpts);
  }
  else
    printf ("%-10s %-30s %-20s %-14s %s\n", "SEQ", "TIME (UTC)", "FLAGS",
            "SIZE", "SNAPSHOTS");
  for (i = 0; i < n; i++) {
    char ts[40], flags[40];
    bool first = true;

    hf_history_format_time (p[i].timestamp_ns, ts, sizeof ts);
    snprintf (flags, sizeof flags, "%s%s%s",
              p[i].flags & HF_SH_ROLLBACK ? "rollback," : "",
              p[i].flags & HF_SH_CHECKPOINT ? "checkpoint," : "",
              p[i].inherited ? "parent," : "");
    if (flags[0])
      flags[strlen (flags) - 1] = '\0';
    else
      strcpy (flags, "-");
    if (hf_tool_json) {
      json_object *pt = hf_j_obj (), *names = hf_j_arr ();

      hf_j_u64 (pt, "seq", p[i].seq);
      hf_j_u64 (pt, "parent", p[i].parent_seq);
      hf_j_str (pt, "time", ts);
      hf_j_u64 (pt, "timestamp_ns", p[i].timestamp_ns);
      hf_j_u64 (pt, "size", p[i].volume_size);
      hf_j_bool (pt, "checkpoint", p[i].flags & HF_SH_CHECKPOINT);
      hf_j_bool (pt, "rollback", p[i].flags & HF_SH_ROLLBACK);
      hf_j_bool (pt, "inherited", p[i].inherited);
      for (j = 0; j < nsn; j++)
        if (sn[j].seq == p[i].seq)
          json_object_array_add (names, hf_j_new
                                 (json_object_new_string (sn[j].name)));
      json_object_object_add (pt, "snapshots", names);
      json_object_array_add (jpts, pt);
    }
    else {
      printf ("%-10" PRIu64 " %-30s %-20s %-14" PRIu64 " ", p[i].seq, ts,
              flags, p[i].volume_size);
      for (j = 0; j < nsn; j++)
        if (sn[j].seq == p[i].seq) {
          printf ("%s%s", first ? "" : ",", sn[j].name);
          first = false;
        }
      printf ("%s\n", first ? "-" : "");
    }
  }
  if (hf_tool_json)
    hf_j_print (jo, stdout);
  free (sn);
  hf_tool_vol_close (&t);
  return EXIT_SUCCESS;
}

/* A snapshot name as the library accepts it: also not all digits,
 * which would read as a segment number.  Said here, so that such a
 * name is a usage error (2), not "no such snapshot" (6). */
static bool
hf_tool_snapshot_name_ok (const char *cmd, const char *name)
{
  if (hf_snapshot_name_valid (name) && strspn (name, "0123456789")
      != strlen (name))
    return true;
  fprintf (stderr, "hyperfile: %s: '%s' is not a valid snapshot name: "
           "1..128 characters of [A-Za-z0-9._-], not starting with '.', "
           "not only digits\n", cmd, name);
  return false;
}

static int
hf_tool_snapshot_create (const char *url, const char *name)
{
  struct hf_tool_vol t;
  struct hf_snapshot sn;
  uint64_t seq = 0;
  char ts[40];
  int r;

  if (!hf_tool_snapshot_name_ok ("snapshot create", name))
    return EXIT_USAGE;
  if (hf_tool_at && hf_history_check_at (hf_tool_at) != 0)
    return EXIT_USAGE;
  if ((r = hf_tool_vol_open ("snapshot create", url, &t)) != 0)
    return r;
  if (hf_tool_at &&
      (r = hf_tool_resolve ("snapshot create", &t, hf_tool_at, &seq)) != 0) {
    hf_tool_vol_close (&t);
    return r;
  }
  r = hf_snapshot_create (t.h, name, seq, &sn);
  hf_tool_vol_close (&t);
  if (r)                        /* history said why; the name is valid */
    return r == EEXIST ? EXIT_EXISTS : r == EINVAL ? EXIT_NOPOINT
      : EXIT_FAILURE;
  hf_history_format_time (sn.timestamp_ns, ts, sizeof ts);
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "name", name);
    hf_j_u64 (o, "seq", sn.seq);
    hf_j_str (o, "time", ts);
    hf_j_print (o, stdout);
  }
  else
    printf ("snapshot %s = segment %" PRIu64 " (%s)\n", name, sn.seq, ts);
  return EXIT_SUCCESS;
}

static int
hf_tool_snapshot_list (const char *url)
{
  struct hf_objstore *s;
  struct hf_snapshot *sn = NULL;
  json_object *ja = NULL;
  char *prefix;
  size_t n = 0, i;
  int r;

  if ((r = hf_tool_open_store (url, false, &s, &prefix)) != 0)
    return r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
  r = hf_snapshot_list (s, prefix, &sn, &n);
  hf_objstore_close (s);
  free (prefix);
  if (r)
    return EXIT_FAILURE;        /* history said why */
  if (hf_tool_json)
    ja = hf_j_arr ();
  else
    printf ("%-30s %-10s %-30s %s\n", "NAME", "SEQ", "TIME (UTC)",
            "CREATED (UTC)");
  for (i = 0; i < n; i++) {
    char ts[40], cr[40];

    hf_history_format_time (sn[i].timestamp_ns, ts, sizeof ts);
    hf_history_format_time (sn[i].created_ns, cr, sizeof cr);
    if (hf_tool_json) {
      json_object *o = hf_j_obj ();

      hf_j_str (o, "name", sn[i].name);
      hf_j_u64 (o, "seq", sn[i].seq);
      hf_j_str (o, "time", ts);
      hf_j_str (o, "created", cr);
      json_object_array_add (ja, o);
    }
    else
      printf ("%-30s %-10" PRIu64 " %-30s %s\n", sn[i].name, sn[i].seq, ts,
              cr);
  }
  if (hf_tool_json)
    hf_j_print (ja, stdout);
  free (sn);
  return EXIT_SUCCESS;
}

static int
hf_tool_snapshot_delete (const char *url, const char *name)
{
  struct hf_objstore *s;
  char *prefix;
  int r;

  if (!hf_tool_snapshot_name_ok ("snapshot delete", name))
    return EXIT_USAGE;
  if ((r = hf_tool_open_store (url, false, &s, &prefix)) != 0)
    return r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
  r = hf_snapshot_delete (s, prefix, name);
  hf_objstore_close (s);
  free (prefix);
  if (r)                        /* history said why */
    return r == ENOENT ? EXIT_NOPOINT : EXIT_FAILURE;
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "name", name);
    hf_j_bool (o, "deleted", true);
    hf_j_print (o, stdout);
  }
  else
    printf ("deleted snapshot %s\n", name);
  return EXIT_SUCCESS;
}

static int
hf_tool_snapshot (int argc, char **argv)
{
  const char *sub = argv[0];

  if (strcmp (sub, "create") == 0 && argc == 3)
    return hf_tool_snapshot_create (argv[1], argv[2]);
  if (strcmp (sub, "list") == 0 && argc == 2)
    return hf_tool_snapshot_list (argv[1]);
  if (strcmp (sub, "delete") == 0 && argc == 3)
    return hf_tool_snapshot_delete (argv[1], argv[2]);
  fprintf (stderr, "hyperfile: usage: snapshot create URL NAME [--at POINT]"
           " | snapshot list URL | snapshot delete URL NAME\n");
  return EXIT_USAGE;
}

static int
hf_tool_clone (int argc, char **argv)
{
  char *src = strdup (argv[0]), *at, *src_abs = NULL, *dst_abs = NULL;
  const char *dst = argv[1];
  struct hf_tool_vol t = { 0 };
  struct hf_objstore *ds = NULL;
  char *dprefix = NULL;
  uint64_t seq = 0, base = 0;
  int r, ret = EXIT_FAILURE;

  (void) argc;
  if (src == NULL)
    return EXIT_FAILURE;
  /* Before anything is made (the URLs end up in the store). */
  if (hf_objstore_check_url ("clone", src) != 0 ||
      hf_objstore_check_url ("clone", dst) != 0) {
    ret = EXIT_USAGE;
    goto out;
  }
  /* SRC@POINT: the last '@' (S3 keys and paths rarely hold one). */
  at = strrchr (src, '@');
  if (at) {
    *at++ = '\0';
    if (hf_history_check_at (at) != 0) {
      ret = EXIT_USAGE;
      goto out;
    }
  }
  if ((r = hf_tool_vol_open ("clone", src, &t)) != 0) {
    ret = r;
    goto out;
  }
  if (at && (r = hf_tool_resolve ("clone", &t, at, &seq)) != 0) {
    ret = r;
    goto out;
  }
  {
    /* Check the point before creating anything at the destination. */
    struct hf_point pt;
    if (seq == 0)
      seq = hf_history_head (t.h);
    if (hf_history_point (t.h, seq, &pt) != 0) {
      ret = EXIT_NOPOINT;
      goto out;
    }
  }
  /* A directory destination is created (an empty new volume's home). */
  if (strncmp (dst, "s3://", 5) != 0) {
    const char *path = strncmp (dst, "file://", 7) == 0 ? dst + 7 : dst;
    if (mkdir (path, 0700) == -1 && errno != EEXIST) {
      fprintf (stderr, "hyperfile: clone: %s: %m\n", path);
      goto out;
    }
  }
  src_abs = hf_objstore_abs_url (src);
  dst_abs = hf_objstore_abs_url (dst);
  if (src_abs == NULL || dst_abs == NULL)
    goto out;
  if (strcmp (src_abs, dst_abs) == 0) {
    fprintf (stderr, "hyperfile: clone: source and destination are the "
             "same volume\n");
    ret = EXIT_USAGE;
    goto out;
  }
  if ((r = hf_tool_open_store (dst, true, &ds, &dprefix)) != 0)
    goto out;
  r = hf_clone_create_key (t.h, src_abs, seq, ds, dprefix, dst_abs,
                           hf_tool_have_ukey ? &hf_tool_ukey : NULL, &base);
  if (r) {                      /* history said why */
    ret = r == EEXIST ? EXIT_EXISTS : r == EINVAL ? EXIT_NOPOINT
      : EXIT_FAILURE;
    goto out;
  }
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "source", src_abs);
    hf_j_str (o, "clone", dst_abs);
    hf_j_u64 (o, "base_seq", base);
    hf_j_print (o, stdout);
  }
  else
    printf ("cloned %s at segment %" PRIu64 " as %s\n", src_abs, base,
            dst_abs);
  ret = EXIT_SUCCESS;

 out:
  hf_objstore_close (ds);
  free (dprefix);
  if (t.s)
    hf_tool_vol_close (&t);
  free (src_abs);
  free (dst_abs);
  free (src);
  return ret;
}

static int
hf_tool_rollback (int argc, char **argv)
{
  /* accept_older_head: rollback is the explicit way past a damaged or
   * lost newest segment (the open commits a segment above it). */
  struct hf_volume_options o = { .takeover = hf_tool_takeover,
                                 .flush_interval_ms = UINT32_MAX,
                                 .accept_older_head = true,
                                 .parent_cfg = &hf_tool_s3 };
  struct hf_tool_vol t;
  struct hf_volume *v;
  uint64_t seq, new_seq = 0;
  int r;

  (void) argc;
  if (hf_history_check_at (argv[1]) != 0)
    return EXIT_USAGE;
  if ((r = hf_tool_vol_open ("rollback", argv[0], &t)) != 0)
    return r;
  /* The writer lease first: nobody commits between the check of the
   * point and the rollback segment. */
  r = hf_volume_open (t.s, t.prefix, &o, &v);
  if (r) {
    hf_tool_vol_close (&t);
    return r == EBUSY ? EXIT_BUSY : EXIT_FAILURE;  /* volume said why */
  }
  /* Re-read the history now that the head cannot move. */
  hf_history_close (t.h);
  t.h = NULL;
  r = hf_history_open (t.s, t.prefix, &hf_tool_s3, &t.h);
  if (r == 0)
    r = hf_tool_resolve ("rollback", &t, argv[1], &seq);
  else
    r = EXIT_FAILURE;
  if (r == 0 && seq == hf_history_head (t.h)) {
    fprintf (stderr, "hyperfile: rollback: %s is already the head "
             "(segment %" PRIu64 ")\n", argv[1], seq);
    r = EXIT_NOPOINT;
  }
  if (r == 0 && hf_volume_rollback (v, seq, &new_seq) != 0)
    r = EXIT_FAILURE;           /* volume said why */
  if (hf_volume_close (v) != 0 && r == 0)
    r = EXIT_FAILURE;
  hf_tool_vol_close (&t);
  if (r)
    return r;
  if (hf_tool_json) {
    json_object *jo = hf_j_obj ();

    hf_j_u64 (jo, "rolled_back_to", seq);
    hf_j_u64 (jo, "head", new_seq);
    hf_j_print (jo, stdout);
  }
  else
    printf ("rolled back to segment %" PRIu64 ": the head is now segment %"
            PRIu64 " (segments in between stay readable with at=)\n",
            seq, new_seq);
  return EXIT_SUCCESS;
}

/* ---- gc, fsck, import, export ---- */

/* Progress on stderr when it is a terminal: done of total bytes (total
 * 0 = unknown), rate and ETA; final ends the line. */
static void
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

static void
hf_tool_gc_deleted (void *opaque, uint64_t seq, uint64_t bytes,
                    const char *why)
{
  (void) opaque;
  if (!hf_tool_json && hf_tool_dry_run)
    printf ("would delete segment %" PRIu64 " (%" PRIu64 " bytes, %s)\n",
            seq, bytes, why);
}

/* What keeps space (gc, du): one line per root, or a JSON array
 * (opaque). */
static void
hf_tool_gc_pin (void *opaque, const char *kind, const char *name,
                uint64_t seq, uint64_t since_ns, uint64_t bytes, bool orphan)
{
  json_object *a = opaque;
  char ts[40];

  if (a) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "kind", kind);
    hf_j_str (o, "name", name);
    hf_j_u64 (o, "seq", seq);
    if (strcmp (kind, "window") == 0) {
      hf_history_format_time (since_ns, ts, sizeof ts);
      hf_j_str (o, "since", ts);
    }
    hf_j_u64 (o, "bytes", bytes);
    hf_j_bool (o, "orphan", orphan);
    json_object_array_add (a, o);
    return;
  }
  if (strcmp (kind, "head") == 0)
    printf ("kept by the head: %" PRIu64 " bytes\n", bytes);
  else if (strcmp (kind, "window") == 0) {
    hf_history_format_time (since_ns, ts, sizeof ts);
    printf ("kept by the retain window (points since %s): %" PRIu64
            " bytes more\n", ts, bytes);
  }
  else if (strcmp (kind, "snapshot") == 0)
    printf ("kept by snapshot %s (segment %" PRIu64 "): %" PRIu64
            " bytes more\n", name, seq, bytes);
  else
    printf ("kept by clone %s (base segment %" PRIu64 "): %" PRIu64
            " bytes more%s\n", name, seq, bytes, orphan
            ? " (orphan: the clone is gone; hyperfile children --prune)"
            : "");
}

static int
hf_tool_gc (int argc, char **argv)
{
  json_object *pins = hf_tool_json ? hf_j_arr () : NULL;
  struct hf_gc_options go = {
    .retain_ns = hf_tool_retain_ns, .grace_ns = hf_tool_grace_ns,
    .dry_run = hf_tool_dry_run, .compact = !hf_tool_dry_run,
    .cfg = &hf_tool_s3, .on_delete = hf_tool_gc_deleted,
    .on_pin = hf_tool_gc_pin, .opaque = pins };
  struct hf_volume_options wo = { .flush_interval_ms = UINT32_MAX,
                                  .takeover = hf_tool_takeover,
                                  .parent_cfg = &hf_tool_s3 };
  struct hf_gc_report rep;
  struct hf_volume *w = NULL;
  struct hf_objstore *s;
  char *prefix;
  int r;

  (void) argc;
  if ((r = hf_tool_open_store (argv[0], false, &s, &prefix)) != 0) {
    json_object_put (pins);
    return r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
  }
  /* Compaction writes through the writer: only when no server holds
   * the volume (then its own gc=on compacts). */
  if (!hf_tool_dry_run) {
    r = hf_volume_open (s, prefix, &wo, &w);
    if (r == EBUSY) {
      fprintf (stderr, "hyperfile: gc: a writer holds %s: collecting "
               "without compaction (its gc=on compacts)\n", argv[0]);
      w = NULL;
    }
    else if (r) {
      hf_objstore_close (s);
      free (prefix);
      json_object_put (pins);
      return r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
    }
  }
  r = hf_gc_run (s, prefix, w, &go, &rep);
  if (w && hf_volume_close (w) != 0 && r == 0)
    r = EIO;
  hf_objstore_close (s);
  free (prefix);
  if (r)
    json_object_put (pins);
  if (r == ENOENT)
    return EXIT_NOVOLUME;
  if (r) {
    fprintf (stderr, "hyperfile: gc: %s: %s\n", argv[0], strerror (r));
    return EXIT_FAILURE;
  }
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    json_object_object_add (o, "kept_by", pins);
    hf_j_u64 (o, "orphan_clones", rep.orphan_clones);

    hf_j_bool (o, "dry_run", hf_tool_dry_run);
    hf_j_u64 (o, "head", rep.head_seq);
    hf_j_u64 (o, "segments", rep.segments);
    hf_j_u64 (o, "bytes", rep.bytes);
    hf_j_u64 (o, "reachable_segments", rep.reachable_segments);
    hf_j_u64 (o, "reachable_bytes", rep.reachable_bytes);
    hf_j_u64 (o, "live_bytes", rep.live_bytes);
    hf_j_u64 (o, "deleted_segments", rep.deleted_segments);
    hf_j_u64 (o, "deleted_bytes", rep.deleted_bytes);
    hf_j_u64 (o, "orphans", rep.orphans);
    hf_j_u64 (o, "kept_young", rep.kept_young);
    hf_j_u64 (o, "compacted_segments", rep.compacted_segments);
    hf_j_u64 (o, "relocated_blocks", rep.relocated_blocks);
    hf_j_u64 (o, "leases_deleted", rep.leases_deleted);
    hf_j_print (o, stdout);
  }
  else
    printf ("head segment %" PRIu64 ": %" PRIu64 " segments, %" PRIu64
            " bytes; reachable %" PRIu64 " (%" PRIu64 " bytes); head uses %"
            PRIu64 " bytes\n%s %" PRIu64 " segments, %" PRIu64
            " bytes reclaimable%s (%" PRIu64 " orphans; %" PRIu64
            " unreachable kept for the grace period)\n"
            "compacted %" PRIu64 " segments (%" PRIu64 " blocks moved)\n",
            rep.head_seq, rep.segments, rep.bytes, rep.reachable_segments,
            rep.reachable_bytes, rep.live_bytes,
            hf_tool_dry_run ? "would delete" : "deleted",
            rep.deleted_segments, rep.deleted_bytes,
            hf_tool_dry_run ? "" : " and reclaimed", rep.orphans,
            rep.kept_young, rep.compacted_segments, rep.relocated_blocks);
  return EXIT_SUCCESS;
}

static void
hf_tool_fsck_problem (void *opaque, const char *object, uint64_t offset,
                      const char *what)
{
  json_object *problems = opaque;

  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "object", object);
    hf_j_u64 (o, "offset", offset);
    hf_j_str (o, "problem", what);
    json_object_array_add (problems, o);
  }
  else
    printf ("DAMAGED %s offset %" PRIu64 ": %s\n", object, offset, what);
}

static double hf_tool_fsck_t0;

static void
hf_tool_fsck_progress (void *opaque, uint64_t done, uint64_t total)
{
  (void) opaque;
  hf_tool_progress ("fsck", done, total, hf_tool_fsck_t0, done == total);
}

static int
hf_tool_fsck (int argc, char **argv)
{
  json_object *problems = hf_tool_json ? hf_j_arr () : NULL;
  /* Without --retain: the head, snapshots and clone bases only (fsck
   * cannot know the window GC used; a shorter one collected more). */
  struct hf_fsck_options fo = {
    .retain_ns = hf_tool_retain_set ? hf_tool_retain_ns : 0,
    .grace_ns = hf_tool_retain_set ? hf_tool_grace_ns : 0,
                                .cfg = &hf_tool_s3,
                                .fn = hf_tool_fsck_problem,
                                .opaque = problems,
                                .progress = hf_tool_fsck_progress };
  struct hf_fsck_report rep;
  struct hf_objstore *s;
  char *prefix;
  int r;

  (void) argc;
  if ((r = hf_tool_open_store (argv[0], false, &s, &prefix)) != 0) {
    json_object_put (problems);
    return r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
  }
  hf_tool_fsck_t0 = hf_tool_now ();
  r = hf_fsck_run (s, prefix, &fo, &rep);
  hf_objstore_close (s);
  free (prefix);
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    json_object_object_add (o, "problems_found", problems);
    hf_j_bool (o, "ok", r == 0 && rep.problems == 0);
    hf_j_u64 (o, "problems", rep.problems);
    hf_j_u64 (o, "head", rep.head_seq);
    hf_j_u64 (o, "segments", rep.segments);
    hf_j_u64 (o, "bytes", rep.bytes);
    hf_j_u64 (o, "data_blocks", rep.data_blocks);
    hf_j_u64 (o, "nodes", rep.nodes);
    hf_j_u64 (o, "points", rep.points);
    hf_j_u64 (o, "snapshots", rep.snapshots);
    hf_j_u64 (o, "clones", rep.clones);
    hf_j_u64 (o, "orphan_clones", rep.orphan_clones);
    hf_j_u64 (o, "checkpoints", rep.checkpoints);
    hf_j_u64 (o, "tree_nodes", rep.tree_nodes);
    hf_j_u64 (o, "entries", rep.entries);
    hf_j_u64 (o, "orphans", rep.orphans);
    hf_j_u64 (o, "incomplete", rep.incomplete);
    hf_j_print (o, stdout);
  }
  if (r == ENOENT)
    return EXIT_NOVOLUME;
  if (r) {
    fprintf (stderr, "hyperfile: fsck: %s: %s\n", argv[0], strerror (r));
    return EXIT_FAILURE;
  }
  if (!hf_tool_json)
    printf ("%s: %" PRIu64 " segments (%" PRIu64 " bytes, %" PRIu64
            " data blocks, %" PRIu64 " index nodes), %" PRIu64
            " points, %" PRIu64 " snapshots, %" PRIu64 " clones, %" PRIu64
            " checkpoints (%" PRIu64 " nodes, %" PRIu64 " entries) "
            "verified: %s (%" PRIu64 " problems)\n", argv[0], rep.segments,
            rep.bytes, rep.data_blocks, rep.nodes, rep.points,
            rep.snapshots, rep.clones, rep.checkpoints, rep.tree_nodes,
            rep.entries, rep.problems ? "DAMAGED" : "clean", rep.problems);
  if (!hf_tool_json && rep.incomplete)
    printf ("%s: %" PRIu64 " incomplete upload(s) (never committed; GC "
            "removes them)\n", argv[0], rep.incomplete);
  return rep.problems ? EXIT_DAMAGED : EXIT_SUCCESS;
}

static bool
hf_tool_zero (const uint8_t *p, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

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
hf_tool_hole_fn (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  struct hf_tool_hole *h = opaque;

  (void) offset;
  (void) length;
  if (!hole)
    h->all_hole = false;
  return 0;
}

#define HF_TOOL_CHUNK (4u << 20)

/* One import's state. */
struct hf_tool_import {
  struct hf_volume *v;
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
      hf_volume_extents (x->v, len, off, hf_tool_hole_fn, &h) == 0 &&
      !h.all_hole) {
    x->zeroed = true;
    if (hf_volume_zero (x->v, len, off, 0) != 0)
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
      if (hf_volume_pwrite (x->v, x->buf + i, j - i, off + i, 0) != 0)
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
hf_tool_import_undo (struct hf_volume *v, const char *url,
                     uint64_t head_seq, uint64_t size, uint64_t done)
{
  uint64_t new_seq = 0;
  int r;

  if (head_seq == 0) {
    r = hf_volume_trim (v, size, 0, 0);
    if (r == 0)
      r = hf_volume_flush (v);
    if (r == 0) {
      fprintf (stderr, "hyperfile: import: failed after %" PRIu64 " bytes; "
               "%s had never been written and is left empty (nothing of "
               "the image is at its head)\n", done, url);
      return;
    }
  }
  else {
    r = hf_volume_rollback (v, head_seq, &new_seq);
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

static int
hf_tool_import (int argc, char **argv)
{
  struct hf_volume_options wo = { .takeover = hf_tool_takeover,
                                  .parent_cfg = &hf_tool_s3 };
  const char *in = argv[0], *url = argv[1];
  struct hf_volume_info vi;
  struct hf_volume *v;
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
  if ((r = hf_tool_open_store (url, false, &s, &prefix)) != 0) {
    if (fd > 0)
      close (fd);
    return r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
  }
  r = hf_volume_open (s, prefix, &wo, &v);
  if (r) {
    hf_objstore_close (s);
    free (prefix);
    if (fd > 0)
      close (fd);
    return r == ENOENT ? EXIT_NOVOLUME : r == EBUSY ? EXIT_BUSY
      : EXIT_FAILURE;
  }
  hf_volume_get_info (v, &vi);
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
  x.v = v;
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
  if (r == 0 && hf_volume_flush (v) != 0)
    r = EXIT_FAILURE;
  hf_tool_progress ("import", off, total, t0, true);
  if (r && (x.written || x.zeroed))
    hf_tool_import_undo (v, url, vi.head_seq, vi.size, off);
 out:
  if (hf_volume_close (v) != 0 && r == 0)
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
  struct hf_volume *v;
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
                    bool hole)
{
  struct hf_tool_export *x = opaque;
  int r = 0;

  if (hole)
    r = hf_tool_export_zero (x, length);
  while (!hole && length > 0 && r == 0) {
    size_t k = length < HF_TOOL_CHUNK ? (size_t) length : HF_TOOL_CHUNK, i;

    r = hf_volume_pread (x->v, x->buf, k, offset);
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

/* ---- diff and incremental export ---- */

/* A diff between two points: the volume open at the newer one. */
struct hf_tool_diff {
  struct hf_volume *v;          /* read-only at `to` */
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
hf_tool_diff_run (void *opaque, uint64_t off, uint64_t len, bool hole)
{
  struct hf_tool_diff *x = opaque;
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

    if (!hole && (r = hf_volume_pread (x->v, x->buf, k, off)) != 0)
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
  return hf_volume_extents (x->v, len, off, hf_tool_diff_run, x);
}

/* Resolve --from and the newer point (to: --to or --at; NULL = the
 * head), and open the volume at it: 0, or the exit code. */
static int
hf_tool_diff_open (const char *cmd, const char *url, const char *to,
                   struct hf_tool_vol *t, uint64_t *from_seq,
                   uint64_t *to_seq, struct hf_tool_diff *x)
{
  struct hf_volume_options ro = { .readonly = true,
                                  .parent_cfg = &hf_tool_s3 };
  struct hf_volume_info vi;
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
  ro.at_seq = *to_seq;
  if (hf_volume_open (t->s, t->prefix, &ro, &x->v) != 0) {
    r = EXIT_FAILURE;           /* the volume said why */
    goto fail;
  }
  hf_volume_get_info (x->v, &vi);
  x->bs = vi.block_size;
  x->size = vi.size;
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

static int
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
  hf_volume_close (x.v);
  hf_tool_vol_close (&t);
  return r;
}

/* export --from POINT: bring an image of POINT (FILE, which must exist)
 * to the newer point (--at, default the head) by writing only the
 * extents written between them; a regular file is then cut or grown to
 * the volume's size at that point. */
static int
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
  hf_volume_close (x.v);
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

static int
hf_tool_export (int argc, char **argv)
{
  struct hf_volume_options ro = { .readonly = true,
                                  .parent_cfg = &hf_tool_s3 };
  struct hf_tool_export x = { .t0 = hf_tool_now () };
  const char *url = argv[0], *out = argv[1];
  struct hf_volume_info vi;
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
                                          &ro.at_seq)) != 0) {
    hf_tool_vol_close (&t);
    return r;
  }
  r = hf_volume_open (t.s, t.prefix, &ro, &x.v);
  if (r) {
    hf_tool_vol_close (&t);
    return r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
  }
  hf_volume_get_info (x.v, &vi);
  x.total = vi.size;
  x.bs = vi.block_size;
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
  r = hf_volume_extents (x.v, vi.size, 0, hf_tool_export_run, &x);
  /* A trailing hole: the file gets its full size. */
  if (r == 0 && x.sparse && ftruncate (x.fd, (off_t) vi.size) != 0)
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
  hf_volume_close (x.v);
  hf_tool_vol_close (&t);
  if (r)
    return r;
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_u64 (o, "bytes", vi.size);
    hf_j_u64 (o, "data", x.data);
    hf_j_u64 (o, "holes", x.holes);
    hf_j_bool (o, "sparse", x.sparse);
    hf_j_dbl (o, "seconds", hf_tool_now () - x.t0);
    hf_j_print (o, x.fd == 1 ? stderr : stdout);
  }
  else if (x.fd != 1)
    printf ("exported %" PRIu64 " bytes (%" PRIu64 " data, %" PRIu64
            " holes%s) in %.1f s\n", vi.size, x.data, x.holes,
            x.sparse ? " left sparse" : "", hf_tool_now () - x.t0);
  return EXIT_SUCCESS;
}

/* ---- delete ---- */

/* The keys of a volume, collected by hf_tool_delete_key. */
struct hf_tool_keys {
  char **keys;
  size_t n, cap;
  uint64_t bytes;
};

static int
hf_tool_delete_key (void *opaque, const char *key, uint64_t size)
{
  struct hf_tool_keys *k = opaque;

  if (k->n == k->cap) {
    size_t cap = k->cap ? 2 * k->cap : 1024;
    char **nk = realloc (k->keys, cap * sizeof *nk);

    if (nk == NULL)
      return ENOMEM;
    k->keys = nk;
    k->cap = cap;
  }
  if ((k->keys[k->n] = strdup (key)) == NULL)
    return ENOMEM;
  k->n++;
  k->bytes += size;
  return 0;
}

static void
hf_tool_keys_restart (void *opaque)
{
  struct hf_tool_keys *k = opaque;

  while (k->n > 0)
    free (k->keys[--k->n]);
  k->bytes = 0;
}

/* Delete the volume at url: every object under its prefix, its
 * descriptor last (so that a delete that fails part-way leaves a volume
 * that fsck reports and a second delete finishes).  Refused while a
 * writer holds the lease, and while clones are registered unless
 * --force; a clone is first unregistered from its parent. */
static int
hf_tool_delete (int argc, char **argv)
{
  const char *url = argv[0];
  struct hf_tool_keys k = { 0 };
  struct hf_clone_reg *cr = NULL;
  struct hf_objstore *s, *ps = NULL;
  struct hf_vdesc d;
  char *prefix, *pprefix = NULL, vkey[HF_OBJSTORE_KEY_MAX + 1];
  const char *unreg = NULL;
  size_t ncr = 0, i, done;
  double t0 = hf_tool_now ();
  int r, ret = EXIT_FAILURE;

  (void) argc;
  if ((r = hf_tool_open_store (url, false, &s, &prefix)) != 0)
    return r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
  r = hf_vdesc_read (s, prefix, &d);
  if (r) {
    ret = r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
    goto out;                   /* logged why */
  }
  if ((r = hf_lease_probe (s, prefix, hf_tool_takeover, false)) != 0) {
    ret = r == EBUSY ? EXIT_BUSY : EXIT_FAILURE;
    goto out;                   /* logged who holds it */
  }
  if ((r = hf_clone_reg_list (s, prefix, &cr, &ncr)) != 0)
    goto out;                   /* logged why */
  if (ncr > 0 && !hf_tool_force) {
    fprintf (stderr, "hyperfile: delete: %s has %zu clone(s) reading "
             "their older data from it:\n", url, ncr);
    for (i = 0; i < ncr; i++)
      fprintf (stderr, "  clone %s (base segment %" PRIu64 ")\n",
               cr[i].clone_url, cr[i].base_seq);
    fprintf (stderr, "delete them first, or add --force to delete it "
             "anyway (those clones then fail to read)\n");
    ret = EXIT_BUSY;
    goto out;
  }
  /* A clone: unregister it from its parent, which may then go. */
  if (d.flags & HF_VD_CLONE) {
    r = hf_objstore_open_url (d.parent_url, &hf_tool_s3, false, &ps,
                              &pprefix);
    if (r == 0)
      r = hf_clone_reg_delete (ps, pprefix, d.uuid);
    if (r == 0)
      unreg = d.parent_url;
    else if (r == ENOENT)
      fprintf (stderr, "hyperfile: delete: the parent %s is gone; nothing "
               "to unregister\n", d.parent_url);
    else {
      fprintf (stderr, "hyperfile: delete: could not unregister the clone "
               "from %s: %s; nothing deleted\n", d.parent_url,
               strerror (r));
      goto out;
    }
  }
  r = hf_objstore_list_retry (s, prefix, NULL, hf_tool_delete_key, &k,
                              hf_tool_keys_restart);
  if (r) {
    fprintf (stderr, "hyperfile: delete: listing %s: %s\n", url,
             strerror (r));
    goto out;
  }
  /* The descriptor last. */
  snprintf (vkey, sizeof vkey, "%svolume", prefix);
  for (i = 0; i < k.n; i++)
    if (strcmp (k.keys[i], vkey) == 0 && i + 1 < k.n) {
      char *t = k.keys[i];

      memmove (&k.keys[i], &k.keys[i + 1], (k.n - i - 1) * sizeof *k.keys);
      k.keys[k.n - 1] = t;
      break;
    }
  for (done = 0; done < k.n; ) {
    size_t b = k.n - done < 1000 ? k.n - done : 1000;

    r = hf_objstore_delete_many (s, (const char *const *) k.keys + done, b);
    if (r) {
      fprintf (stderr, "hyperfile: delete: %s: %s after %zu of %zu "
               "objects; run delete again to finish\n", url, strerror (r),
               done, k.n);
      goto out;
    }
    done += b;
    hf_tool_progress ("delete", done, k.n, t0, false);
  }
  hf_tool_progress ("delete", done, k.n, t0, true);
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "url", url);
    hf_j_u64 (o, "deleted_objects", k.n);
    hf_j_u64 (o, "deleted_bytes", k.bytes);
    json_object_object_add (o, "unregistered_from", unreg
                            ? hf_j_new (json_object_new_string (unreg))
                            : NULL);
    hf_j_u64 (o, "orphaned_clones", ncr);
    hf_j_print (o, stdout);
  }
  else
    printf ("deleted %s: %zu objects (%" PRIu64 " bytes)%s%s%s\n", url, k.n,
            k.bytes, unreg ? "; unregistered from its parent " : "",
            unreg ? unreg : "",
            ncr ? "; its clones can no longer read their base" : "");
  ret = EXIT_SUCCESS;
 out:
  for (i = 0; i < k.n; i++)
    free (k.keys[i]);
  free (k.keys);
  free (cr);
  hf_objstore_close (ps);
  free (pprefix);
  hf_objstore_close (s);
  free (prefix);
  return ret;
}

/* ---- du ---- */

/* Bytes mapped at point seq (0: the head) of the volume in s. */
static int
hf_tool_live_bytes (struct hf_objstore *s, const char *prefix, uint64_t seq,
                    uint64_t *out)
{
  struct hf_volume_options ro = { .readonly = true, .at_seq = seq,
                                  .parent_cfg = &hf_tool_s3 };
  struct hf_volume_info vi;
  struct hf_volume *v;
  int r;

  *out = 0;
  if ((r = hf_volume_open (s, prefix, &ro, &v)) != 0)
    return r;
  hf_volume_get_info (v, &vi);
  r = hf_volume_extents (v, vi.size, 0, hf_tool_count_mapped, out);
  hf_volume_close (v);
  return r;
}

/* Space: what the volume holds in the store, what its head and each
 * snapshot map, and what gc --retain would reclaim now (a dry run). */
static int
hf_tool_du (int argc, char **argv)
{
  const char *url = argv[0];
  json_object *pins = hf_tool_json ? hf_j_arr () : NULL;
  struct hf_gc_options go = {
    .retain_ns = hf_tool_retain_ns, .grace_ns = hf_tool_grace_ns,
    .dry_run = true, .cfg = &hf_tool_s3, .on_pin = hf_tool_gc_pin,
    .opaque = pins };
  struct hf_tool_keys k = { 0 };
  struct hf_snapshot *sn = NULL;
  struct hf_gc_report rep;
  struct hf_objstore *s;
  uint64_t head_live, *snap_live = NULL;
  size_t nsn = 0, i;
  char *prefix;
  int r, ret = EXIT_FAILURE;

  (void) argc;
  if ((r = hf_tool_open_store (url, false, &s, &prefix)) != 0) {
    json_object_put (pins);
    return r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
  }
  r = hf_tool_live_bytes (s, prefix, 0, &head_live);
  if (r) {
    ret = r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
    goto out;                   /* the volume said why */
  }
  r = hf_objstore_list_retry (s, prefix, NULL, hf_tool_delete_key, &k,
                              hf_tool_keys_restart);
  if (r == 0)
    r = hf_snapshot_list (s, prefix, &sn, &nsn);
  if (r == 0 && nsn && (snap_live = calloc (nsn, sizeof *snap_live)) == NULL)
    r = ENOMEM;
  for (i = 0; r == 0 && i < nsn; i++)
    r = hf_tool_live_bytes (s, prefix, sn[i].seq, &snap_live[i]);
  if (r == 0)
    r = hf_gc_run (s, prefix, NULL, &go, &rep);
  if (r) {
    fprintf (stderr, "hyperfile: du: %s: %s\n", url, strerror (r));
    goto out;
  }
  if (hf_tool_json) {
    json_object *o = hf_j_obj (), *a = hf_j_arr ();

    hf_j_str (o, "url", url);
    hf_j_u64 (o, "store_objects", k.n);
    hf_j_u64 (o, "store_bytes", k.bytes);
    hf_j_u64 (o, "head_seq", rep.head_seq);
    hf_j_u64 (o, "head_live_bytes", head_live);
    for (i = 0; i < nsn; i++) {
      json_object *e = hf_j_obj ();

      hf_j_str (e, "name", sn[i].name);
      hf_j_u64 (e, "seq", sn[i].seq);
      hf_j_u64 (e, "live_bytes", snap_live[i]);
      json_object_array_add (a, e);
    }
    json_object_object_add (o, "snapshots", a);
    hf_j_u64 (o, "reachable_bytes", rep.reachable_bytes);
    hf_j_u64 (o, "reclaimable_bytes", rep.deleted_bytes);
    hf_j_u64 (o, "reclaimable_segments", rep.deleted_segments);
    json_object_object_add (o, "kept_by", pins);
    pins = NULL;
    hf_j_u64 (o, "orphan_clones", rep.orphan_clones);
    hf_j_print (o, stdout);
  }
  else {
    printf ("store:        %" PRIu64 " bytes in %zu objects\n"
            "head:         %" PRIu64 " bytes mapped (segment %" PRIu64 ")\n",
            k.bytes, k.n, head_live, rep.head_seq);
    for (i = 0; i < nsn; i++)
      printf ("snapshot %s: %" PRIu64 " bytes mapped (segment %" PRIu64
              ")\n", sn[i].name, snap_live[i], sn[i].seq);
    printf ("reachable:    %" PRIu64 " bytes in segments the retained "
            "points need\n"
            "reclaimable:  %" PRIu64 " bytes in %" PRIu64 " segments (gc "
            "--retain as given now)\n", rep.reachable_bytes,
            rep.deleted_bytes, rep.deleted_segments);
  }
  ret = EXIT_SUCCESS;
 out:
  for (i = 0; i < k.n; i++)
    free (k.keys[i]);
  free (k.keys);
  free (sn);
  free (snap_live);
  json_object_put (pins);
  hf_objstore_close (s);
  free (prefix);
  return ret;
}

/* ---- children ---- */

/* The clones registered on the volume, each checked: "ok", or an orphan
 * ("gone": nothing at its URL; "replaced": another volume there), or
 * "unknown" (could not be read; a warning says why).  --prune deletes
 * the orphans' registrations (never one that could not be checked), so
 * that gc may collect what they kept. */
static int
hf_tool_children (int argc, char **argv)
{
  const char *url = argv[0];
  struct hf_clone_reg *cr = NULL;
  struct hf_objstore *s;
  json_object *a = NULL;
  size_t n = 0, i, pruned = 0, orphans = 0;
  char *prefix;
  int r, ret = EXIT_FAILURE;

  (void) argc;
  if ((r = hf_tool_open_store (url, false, &s, &prefix)) != 0)
    return r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
  {
    struct hf_vdesc d;

    if ((r = hf_vdesc_read (s, prefix, &d)) != 0) {
      ret = r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
      goto out;                 /* logged why */
    }
  }
  if (hf_clone_reg_list (s, prefix, &cr, &n) != 0)
    goto out;                   /* logged why */
  if (hf_tool_json)
    a = hf_j_arr ();
  else if (n == 0)
    printf ("%s has no clones\n", url);
  else
    printf ("%-9s %-10s %-30s %s\n", "STATE", "BASE", "CREATED (UTC)",
            "CLONE");
  for (i = 0; i < n; i++) {
    enum hf_clone_state st = hf_clone_reg_state
      (&cr[i], strncmp (url, "s3://", 5) == 0, &hf_tool_s3);
    bool orphan = st == HF_CLONE_GONE || st == HF_CLONE_REPLACED;
    bool gone = false;
    char ts[40];

    orphans += orphan;
    if (orphan && hf_tool_prune) {
      if (hf_clone_reg_delete (s, prefix, cr[i].clone_uuid) != 0)
        goto out;               /* logged why */
      gone = true;
      pruned++;
    }
    hf_history_format_time (cr[i].created_ns, ts, sizeof ts);
    if (a) {
      json_object *o = hf_j_obj ();

      hf_j_str (o, "url", cr[i].clone_url);
      hf_j_u64 (o, "base_seq", cr[i].base_seq);
      hf_j_str (o, "created", ts);
      hf_j_str (o, "state", hf_clone_state_name (st));
      hf_j_bool (o, "orphan", orphan);
      hf_j_bool (o, "pruned", gone);
      json_object_array_add (a, o);
    }
    else
      printf ("%-9s %-10" PRIu64 " %-30s %s%s\n",
              orphan ? "orphan" : hf_clone_state_name (st),
              cr[i].base_seq, ts, cr[i].clone_url,
              gone ? " (pruned: registration deleted)"
              : st == HF_CLONE_GONE ? " (gone: its descriptor is missing)"
              : st == HF_CLONE_REPLACED ? " (another volume is there now)"
              : "");
  }
  if (a) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "url", url);
    json_object_object_add (o, "clones", a);
    a = NULL;
    hf_j_u64 (o, "orphans", orphans);
    hf_j_u64 (o, "pruned", pruned);
    hf_j_print (o, stdout);
  }
  else if (orphans && !hf_tool_prune)
    printf ("%zu orphan registration(s) keep their base from gc: "
            "hyperfile children %s --prune removes them\n", orphans, url);
  else if (pruned)
    printf ("pruned %zu orphan registration(s)\n", pruned);
  ret = EXIT_SUCCESS;
 out:
  json_object_put (a);
  free (cr);
  hf_objstore_close (s);
  free (prefix);
  return ret;
}

/* ---- flatten ---- */

static double hf_tool_flat_t0;

static void
hf_tool_flat_progress (void *opaque, uint64_t done, uint64_t total)
{
  uint64_t bs = *(const uint32_t *) opaque;

  hf_tool_progress ("flatten", done * bs, total * bs, hf_tool_flat_t0,
                    done == total);
}

/* Make a clone independent of its parent: every block and index node
 * its head reads from the parent is copied into its own segments
 * (hf_gc_flatten, through the writer: the lease is held), the
 * descriptor says it is flattened (the parent is then followed only
 * while it exists, for the older points), and the clone is unregistered
 * from the parent, whose gc then frees the base and which may be
 * deleted. */
static int
hf_tool_flatten (int argc, char **argv)
{
  struct hf_volume_options wo = { .takeover = hf_tool_takeover,
                                  .flush_interval_ms = UINT32_MAX,
                                  .parent_cfg = &hf_tool_s3 };
  const char *url = argv[0];
  struct hf_gc_options go = { .cfg = &hf_tool_s3,
                              .progress = hf_tool_flat_progress };
  struct hf_gc_flatten_report rep;
  struct hf_volume_info vi;
  struct hf_objstore *s, *ps = NULL;
  struct hf_volume *v;
  struct hf_vdesc d;
  char *prefix, *pprefix = NULL, key[HF_OBJSTORE_KEY_MAX + 1];
  uint8_t buf[HF_VD_SIZE];
  bool was_flat, unreg = false;
  int r, ret = EXIT_FAILURE;

  (void) argc;
  if ((r = hf_tool_open_store (url, false, &s, &prefix)) != 0)
    return r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
  if ((r = hf_vdesc_read (s, prefix, &d)) != 0) {
    ret = r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
    goto out;                   /* logged why */
  }
  if (!(d.flags & HF_VD_CLONE)) {
    fprintf (stderr, "hyperfile: flatten: %s is not a clone: it reads "
             "nothing from another volume\n", url);
    ret = EXIT_USAGE;
    goto out;
  }
  was_flat = d.flags & HF_VD_FLATTENED;
  r = hf_volume_open (s, prefix, &wo, &v);
  if (r) {
    ret = r == EBUSY ? EXIT_BUSY : EXIT_FAILURE;  /* the volume said why */
    goto out;
  }
  hf_volume_get_info (v, &vi);
  go.opaque = &vi.block_size;
  hf_tool_flat_t0 = hf_tool_now ();
  r = hf_gc_flatten (s, prefix, v, &go, &rep);
  if (hf_volume_close (v) != 0 && r == 0)
    r = EIO;
  if (r)
    goto out;                   /* logged why */
  /* The descriptor last but one: from now on no point at or after
   * flat_seq needs the parent.  A plain PUT replaces it (an object PUT
   * is atomic: readers see the old or the new one). */
  if (!was_flat || rep.moved_blocks || rep.touched_nodes) {
    d.flags |= HF_VD_FLATTENED;
    d.flat_seq = rep.head_seq;
    hf_vdesc_encode (&d, buf);
    snprintf (key, sizeof key, "%svolume", prefix);
    r = hf_objstore_put_retry (s, key, buf, sizeof buf, 0);
    if (r) {
      fprintf (stderr, "hyperfile: flatten: %s: writing the descriptor: "
               "%s (the data is copied; run flatten again)\n", url,
               strerror (r));
      goto out;
    }
  }
  /* Then the parent's registration (its gc may free the base now). */
  hf_tool_held[0] = '\0';
  hf_tool_quiet = true;         /* a parent that is gone is fine */
  r = hf_objstore_open_url (d.parent_url, &hf_tool_s3, false, &ps,
                            &pprefix);
  hf_tool_quiet = false;
  if (r == 0)
    r = hf_clone_reg_delete (ps, pprefix, d.uuid);
  if (r == 0)
    unreg = true;
  else if (r != ENOENT)
    fprintf (stderr, "hyperfile: flatten: could not unregister the clone "
             "from %s: %s; it keeps the base until flatten runs again\n",
             d.parent_url, strerror (r));
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "url", url);
    hf_j_str (o, "parent", d.parent_url);
    hf_j_u64 (o, "moved_blocks", rep.moved_blocks);
    hf_j_u64 (o, "moved_bytes", rep.moved_blocks * vi.block_size);
    hf_j_u64 (o, "touched_nodes", rep.touched_nodes);
    hf_j_u64 (o, "flattened_at", d.flat_seq);
    hf_j_bool (o, "unregistered", unreg);
    hf_j_print (o, stdout);
  }
  else if (was_flat && rep.moved_blocks == 0 && rep.touched_nodes == 0)
    printf ("%s is already flattened at segment %" PRIu64 ": its head "
            "reads nothing from %s%s\n", url, d.flat_seq, d.parent_url,
            unreg ? " (registration removed)" : "");
  else
    printf ("flattened %s: %" PRIu64 " blocks (%" PRIu64 " bytes) and %"
            PRIu64 " index paths copied from %s into its own segments; "
            "head segment %" PRIu64 ".\n%s; points before segment %" PRIu64
            " still read from it while it exists.\n", url,
            rep.moved_blocks, rep.moved_blocks * vi.block_size,
            rep.touched_nodes, d.parent_url, d.flat_seq,
            unreg ? "Unregistered from the parent, which may be deleted now"
            : "The parent is gone", d.flat_seq);
  ret = EXIT_SUCCESS;
 out:
  hf_objstore_close (ps);
  free (pprefix);
  hf_objstore_close (s);
  free (prefix);
  return ret;
}

/* ---- resize ---- */

/* Resize the volume to SIZE (rounded up to whole blocks).  Through the
 * writer, so refused while another holds the lease; the new size is
 * committed in a segment of its own, so older points keep theirs.
 * Growing is always safe; shrinking drops the blocks past the new end
 * from the head, so it needs --force (without it: what would be lost,
 * and exit 2). */
static int
hf_tool_resize (int argc, char **argv)
{
  struct hf_volume_options wo = { .takeover = hf_tool_takeover,
                                  .flush_interval_ms = UINT32_MAX,
                                  .parent_cfg = &hf_tool_s3 };
  const char *url = argv[0];
  struct hf_volume_info vi;
  struct hf_volume *v;
  struct hf_objstore *s;
  uint64_t want, size, old;
  char *prefix;
  int r, ret = EXIT_SUCCESS;

  (void) argc;
  if (hf_tool_parse_size (argv[1], &want) == -1 || want == 0 ||
      want > HF_MAX_VOLUME_SIZE) {
    fprintf (stderr, "hyperfile: resize: SIZE '%s': expected a number of "
             "bytes from 1 to %" PRIu64 " with an optional K, M, G, T, P "
             "suffix\n", argv[1], HF_MAX_VOLUME_SIZE);
    return EXIT_USAGE;
  }
  if ((r = hf_tool_open_store (url, false, &s, &prefix)) != 0)
    return r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
  r = hf_volume_open (s, prefix, &wo, &v);
  if (r) {
    hf_objstore_close (s);
    free (prefix);
    if (r == ENOENT)
      fprintf (stderr, "hyperfile: resize: no volume at %s\n", url);
    return r == ENOENT ? EXIT_NOVOLUME : r == EBUSY ? EXIT_BUSY
      : EXIT_FAILURE;           /* the volume said why */
  }
  hf_volume_get_info (v, &vi);
  old = vi.size;
  size = (want + vi.block_size - 1) / vi.block_size * vi.block_size;
  if (size > HF_MAX_VOLUME_SIZE)
    size -= vi.block_size;      /* the largest whole size (a multiple) */
  if (size < old) {
    uint64_t lost = 0;

    r = hf_volume_extents (v, old - size, size, hf_tool_count_mapped, &lost);
    if (r) {
      fprintf (stderr, "hyperfile: resize: %s: %s\n", url, strerror (r));
      ret = EXIT_FAILURE;
    }
    else if (!hf_tool_force) {
      fprintf (stderr, "hyperfile: resize: shrinking %s from %" PRIu64
               " to %" PRIu64 " bytes drops the last %" PRIu64 " bytes "
               "from the head, %" PRIu64 " of them data; they stay "
               "readable at the older points (hyperfile ls, export --at) "
               "until gc.  Add --force to shrink\n", url, old, size,
               old - size, lost);
      ret = EXIT_USAGE;
    }
    else if ((r = hf_volume_shrink (v, size)) != 0) {
      fprintf (stderr, "hyperfile: resize: shrinking %s: %s\n", url,
               strerror (r));
      ret = EXIT_FAILURE;
    }
    else
      fprintf (stderr, "hyperfile: resize: dropped the last %" PRIu64
               " bytes (%" PRIu64 " of them data) from the head of %s\n",
               old - size, lost, url);
  }
  else if (size > old && (r = hf_volume_grow (v, size)) != 0) {
    fprintf (stderr, "hyperfile: resize: %s: %s\n", url, strerror (r));
    ret = EXIT_FAILURE;
  }
  /* The close commits the new size (and waits for it). */
  if (hf_volume_close (v) != 0 && ret == EXIT_SUCCESS)
    ret = EXIT_FAILURE;
  hf_objstore_close (s);
  free (prefix);
  if (ret)
    return ret;
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "url", url);
    hf_j_u64 (o, "old_size", old);
    hf_j_u64 (o, "size", size);
    hf_j_print (o, stdout);
  }
  else if (size == old)
    printf ("%s is already %" PRIu64 " bytes\n", url, size);
  else
    printf ("resized %s: %" PRIu64 " -> %" PRIu64 " bytes\n", url, old,
            size);
  return EXIT_SUCCESS;
}

/* Commands: name, argument count after the name (min, max), function
 * taking those arguments. */
static int
hf_tool_cmd_create (int argc, char **argv)
{
  (void) argc;
  return hf_tool_create (argv[0]);
}

static int
hf_tool_cmd_info (int argc, char **argv)
{
  (void) argc;
  return hf_tool_info (argv[0]);
}

static int hf_tool_help (int argc, char **argv);

/* --NAME-file PATH or --NAME PASS into *uk: 0 (also when neither was
 * given: *have false), or -1 with a message. */
static int
hf_tool_load_key (const char *file, const char *pass, const char *name,
                  struct hf_user_key *uk, bool *have)
{
  *have = false;
  if (file && pass) {
    fprintf (stderr, "hyperfile: --%s-file and --%s are two ways to give "
             "one key: give one of them\n", name, name);
    return -1;
  }
  if (file == NULL && pass == NULL)
    return 0;
  if ((file ? hf_crypt_key_file (file, uk) : hf_crypt_passphrase (pass, uk))
      != 0)
    return -1;                  /* logged what is wrong with it */
  *have = true;
  return 0;
}

/* rekey URL: rewrap the data key from the key to the new key. */
static int
hf_tool_rekey (int argc, char **argv)
{
  const char *url = argv[0];
  struct hf_objstore *s;
  char *prefix;
  bool have_new;
  int r;

  (void) argc;
  if (!hf_tool_have_ukey ||
      hf_tool_load_key (hf_tool_new_key_file, hf_tool_new_key_pass,
                        "new-key", &hf_tool_new_ukey, &have_new) != 0 ||
      !have_new) {
    fprintf (stderr, "hyperfile: rekey: give the current key (--key-file "
             "or --key) and the new one (--new-key-file or --new-key)\n");
    return EXIT_USAGE;
  }
  /* Opening checks the current key. */
  if ((r = hf_tool_open_store (url, false, &s, &prefix)) != 0)
    return r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;
  r = hf_crypt_rekey (s, prefix, &hf_tool_ukey, &hf_tool_new_ukey);
  hf_objstore_close (s);
  free (prefix);
  if (r)
    return r == ENOENT ? EXIT_NOVOLUME : EXIT_FAILURE;   /* logged why */
  if (hf_tool_json) {
    json_object *o = hf_j_obj ();

    hf_j_str (o, "url", url);
    hf_j_bool (o, "rekeyed", true);
    hf_j_print (o, stdout);
  }
  else
    printf ("rekeyed %s: its data key is now wrapped with the new %s\n",
            url, hf_tool_new_ukey.kdf == HF_VD_KDF_SCRYPT ? "passphrase"
            : "key file");
  return EXIT_SUCCESS;
}

static const struct hf_tool_cmd {
  const char *name;
  int min, max;
  int (*fn) (int argc, char **argv);
  const char *usage;            /* after "usage: hyperfile " */
  const char *help;             /* what it does, its own options */
} hf_tool_cmds[] = {
  { "create", 1, 1, hf_tool_cmd_create,
    "create URL --size SIZE [--block-size N] [--json]",
    "Create an empty (sparse) volume of SIZE bytes (K, M, G, T suffixes)\n"
    "with blocks of N bytes (a power of 2 from 512 to 65536; default 4K).\n"
    "Exit 4 if a volume exists there already.\n" },
  { "info", 1, 1, hf_tool_cmd_info, "info URL [--json]",
    "Show a volume's size, block size, head and checkpoint, mapped blocks,\n"
    "writer lease and, for a clone, its parent.\n" },
  { "ls", 1, 1, hf_tool_ls, "ls URL [--json]",
    "List the volume's points in time (the head's chain), newest first,\n"
    "with their times and snapshot names.\n" },
  { "snapshot", 2, 3, hf_tool_snapshot,
    "snapshot create URL NAME [--at POINT] | snapshot list URL [--json] | "
    "snapshot delete URL NAME",
    "Name a point in time (default: the head), list the names, or delete\n"
    "one.  NAME: 1..128 characters of [A-Za-z0-9._-], not starting with\n"
    "'.', not only digits.\n" },
  { "clone", 2, 2, hf_tool_clone, "clone SRC-URL[@POINT] DST-URL",
    "Make a new volume at DST-URL that starts as SRC's POINT (default: its\n"
    "head) and shares its data; writes to either stay their own.\n" },
  { "rollback", 2, 2, hf_tool_rollback, "rollback URL POINT [--takeover]",
    "Make the older POINT the head again (a new segment; the points after\n"
    "it stay readable).  Exit 5 if a server holds the writer lease.\n" },
  { "gc", 1, 1, hf_tool_gc,
    "gc URL [--dry-run] [--retain=DUR] [--grace=DUR]",
    "Delete segments no point within --retain (default 24h) needs, and\n"
    "compact sparse ones.  --dry-run says what it would delete.\n" },
  { "fsck", 1, 1, hf_tool_fsck, "fsck URL [--json] [--retain=DUR]",
    "Read and verify every structure and CRC reachable from the points\n"
    "within --retain.  Exit 7 if it found damage.\n" },
  { "import", 2, 2, hf_tool_import,
    "import FILE|- URL [--takeover] [--create]",
    "Write a raw image into the volume, skipping zero blocks.  The volume\n"
    "must exist (hyperfile create) unless --create, which creates it the\n"
    "size of FILE.  Exit 5 if a server holds the writer lease.\n" },
  { "export", 2, 2, hf_tool_export,
    "export URL FILE|- [--at POINT] [--force] | export URL FILE --from POINT"
    " [--at POINT]",
    "Write the volume (or POINT) as a raw image, leaving holes sparse.  An\n"
    "existing FILE is kept (exit 4) unless --force.  With --from, FILE is\n"
    "an image of that older point: only the extents written since are\n"
    "written into it (incremental backup).\n" },
  { "delete", 1, 1, hf_tool_delete,
    "delete URL [--force] [--takeover] [--json]",
    "Delete the volume (or clone) and every object it has in the store.\n"
    "Refused (exit 5) while a writer holds its lease, or while clones\n"
    "depend on it unless --force.  A clone is unregistered from its\n"
    "parent first, so that the parent can be deleted after it.\n" },
  { "du", 1, 1, hf_tool_du, "du URL [--retain=DUR] [--grace=DUR] [--json]",
    "Space: bytes and objects the volume holds in the store, bytes mapped\n"
    "at its head and at each snapshot, and what gc with the same --retain\n"
    "would reclaim now (a dry run; nothing is deleted).\n" },
  { "children", 1, 1, hf_tool_children, "children URL [--prune] [--json]",
    "List the clones registered on the volume (their URL, base segment\n"
    "and state): an orphan is a registration whose clone is gone (deleted\n"
    "by hand); it still keeps its base from gc.  --prune deletes the\n"
    "orphans' registrations.\n" },
  { "flatten", 1, 1, hf_tool_flatten, "flatten CLONE-URL [--takeover] [--json]",
    "Copy every block and index node the clone's head still reads from its\n"
    "parent into the clone's own segments, then unregister it from the\n"
    "parent, which may then be deleted.  Points of the clone before the\n"
    "flatten still read from the parent while it exists.  Exit 2 if it is\n"
    "not a clone, 5 if a server holds its writer lease.\n" },
  { "diff", 1, 1, hf_tool_diff,
    "diff URL --from POINT [--to POINT] [--json]",
    "List the extents written between two points (--to: default the head)\n"
    "from the segments' extent tables, each as data or a hole at --to.\n"
    "Exit 2 if --from is newer than --to, 6 for an unknown point.\n" },
  { "resize", 2, 2, hf_tool_resize,
    "resize URL SIZE [--force] [--takeover] [--json]",
    "Grow the volume to SIZE bytes (K, M, G, T suffixes; rounded up to\n"
    "whole blocks).  The new end reads as zeros; older points keep their\n"
    "size.  A smaller SIZE drops the end from the head: refused with what\n"
    "would be lost (exit 2) unless --force.  Exit 5 if a server holds the\n"
    "writer lease (a running server grows with a larger size= instead).\n" },
  { "rekey", 1, 1, hf_tool_rekey,
    "rekey URL (--key-file PATH | --key PASS) "
    "(--new-key-file PATH | --new-key PASS)",
    "Rewrap an encrypted volume's data key with a new key file or\n"
    "passphrase: only the descriptor is rewritten, no data.  The old key\n"
    "stops working; clones keep their own wrap (rekey them too).\n" },
  { "help", 0, 1, hf_tool_help, "help [COMMAND]",
    "Show the usage of every command, or of COMMAND.\n" },
};
#define HF_TOOL_NCMDS (sizeof hf_tool_cmds / sizeof hf_tool_cmds[0])

static const struct hf_tool_cmd *
hf_tool_find_cmd (const char *name)
{
  size_t i;

  for (i = 0; i < HF_TOOL_NCMDS; i++)
    if (strcmp (name, hf_tool_cmds[i].name) == 0)
      return &hf_tool_cmds[i];
  return NULL;
}

static void
hf_tool_cmd_usage (const struct hf_tool_cmd *cmd, FILE *fp)
{
  fprintf (fp, "usage: hyperfile [STORE OPTIONS] %s\n\n%s\n"
           "See hyperfile(1); `hyperfile help` lists the store options.\n",
           cmd->usage, cmd->help);
}

static int
hf_tool_help (int argc, char **argv)
{
  const struct hf_tool_cmd *cmd;

  if (argc == 0) {
    hf_tool_usage (stdout);
    return EXIT_SUCCESS;
  }
  cmd = hf_tool_find_cmd (argv[0]);
  if (cmd == NULL) {
    fprintf (stderr, "hyperfile: help: unknown command '%s'\n", argv[0]);
    return EXIT_USAGE;
  }
  hf_tool_cmd_usage (cmd, stdout);
  return EXIT_SUCCESS;
}

int
main (int argc, char *argv[])
{
  enum { O_SSE = 200, O_SSE_KMS, O_STORAGE_CLASS };
  enum { O_ENDPOINT = 256, O_VHOST, O_EXPRESS, O_REGION, O_AK, O_SK, O_ST, O_PROFILE,
         O_TLS, O_CA, O_JSON, O_SIZE, O_BS, O_AT, O_TAKEOVER, O_DRY_RUN, O_PARENT_ANY,
         O_RETAIN, O_GRACE, O_FORCE, O_CREATE, O_PRUNE, O_FROM, O_TO,
         O_REQ_TIMEOUT, O_REQ_RETRIES, O_KEY_FILE, O_KEY, O_NEW_KEY_FILE,
         O_NEW_KEY };
  static const struct option longopts[] = {
    { "endpoint", required_argument, NULL, O_ENDPOINT },
    { "virtual-host", no_argument, NULL, O_VHOST },
    { "express", no_argument, NULL, O_EXPRESS },
    { "region", required_argument, NULL, O_REGION },
    { "access-key", required_argument, NULL, O_AK },
    { "secret-key", required_argument, NULL, O_SK },
    { "session-token", required_argument, NULL, O_ST },
    { "profile", required_argument, NULL, O_PROFILE },
    { "tls-verify", required_argument, NULL, O_TLS },
    { "ca-file", required_argument, NULL, O_CA },
    { "request-timeout", required_argument, NULL, O_REQ_TIMEOUT },
    { "request-retries", required_argument, NULL, O_REQ_RETRIES },
    { "sse", required_argument, NULL, O_SSE },
    { "sse-kms-key-id", required_argument, NULL, O_SSE_KMS },
    { "storage-class", required_argument, NULL, O_STORAGE_CLASS },
    { "json", no_argument, NULL, O_JSON },
    { "size", required_argument, NULL, O_SIZE },
    { "block-size", required_argument, NULL, O_BS },
    { "at", required_argument, NULL, O_AT },
    { "takeover", no_argument, NULL, O_TAKEOVER },
    { "clone-parent-any", no_argument, NULL, O_PARENT_ANY },
    { "dry-run", no_argument, NULL, O_DRY_RUN },
    { "retain", required_argument, NULL, O_RETAIN },
    { "grace", required_argument, NULL, O_GRACE },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { "version", no_argument, NULL, 'V' },
    { "force", no_argument, NULL, O_FORCE },
    { "create", no_argument, NULL, O_CREATE },
    { "prune", no_argument, NULL, O_PRUNE },
    { "from", required_argument, NULL, O_FROM },
    { "to", required_argument, NULL, O_TO },
    { "key-file", required_argument, NULL, O_KEY_FILE },
    { "key", required_argument, NULL, O_KEY },
    { "new-key-file", required_argument, NULL, O_NEW_KEY_FILE },
    { "new-key", required_argument, NULL, O_NEW_KEY },
    { NULL, 0, NULL, 0 }
  };
  const struct hf_tool_cmd *cmd = NULL;
  uint64_t bs;
  bool help = false;
  int c, r, i, nargs;

  hf_log_set_sink (hf_tool_log);
  hf_tool_tty = isatty (2);
  /* GNU getopt permutes, so options may follow the command and URL. */
  while ((c = getopt_long (argc, argv, "vhV", longopts, NULL)) != -1) {
    switch (c) {
    case O_ENDPOINT: hf_tool_s3.endpoint = optarg; break;
    case O_VHOST: hf_tool_s3.virtual_host = true; break;
    case O_EXPRESS: hf_tool_s3.express = true; break;
    case O_REGION: hf_tool_s3.region = optarg; break;
    case O_AK: hf_tool_s3.access_key = optarg; break;
    case O_SK: hf_tool_s3.secret_key = hf_tool_read_secret (optarg, 0); break;
    case O_ST:
      hf_tool_s3.session_token = hf_tool_read_secret (optarg, 1);
      break;
    case O_PROFILE: hf_tool_s3.profile = optarg; break;
    case O_TLS:
      if (strcmp (optarg, "false") == 0 || strcmp (optarg, "off") == 0 ||
          strcmp (optarg, "0") == 0)
        hf_tool_s3.tls_verify = false;
      else if (strcmp (optarg, "true") == 0 || strcmp (optarg, "on") == 0 ||
               strcmp (optarg, "1") == 0)
        hf_tool_s3.tls_verify = true;
      else {
        fprintf (stderr, "hyperfile: --tls-verify: expected true or false\n");
        return EXIT_USAGE;
      }
      break;
    case O_CA: hf_tool_s3.ca_file = optarg; break;
    case O_REQ_TIMEOUT:
      if (hf_s3_config_request_timeout (&hf_tool_s3, optarg) != 0) {
        fprintf (stderr, "hyperfile: --request-timeout=%s: expected "
                 HF_S3_REQUEST_TIMEOUT_RANGE "\n", optarg);
        return EXIT_USAGE;
      }
      break;
    case O_REQ_RETRIES:
      if (hf_s3_config_retries (&hf_tool_s3, optarg) != 0) {
        fprintf (stderr, "hyperfile: --request-retries=%s: expected "
                 HF_S3_RETRIES_RANGE "\n", optarg);
        return EXIT_USAGE;
      }
      break;
    case O_SSE: hf_tool_s3.sse = optarg; break;
    case O_SSE_KMS: hf_tool_s3.sse_kms_key_id = optarg; break;
    case O_STORAGE_CLASS: hf_tool_s3.storage_class = optarg; break;
    case O_JSON: hf_tool_json = true; break;
    case O_SIZE:
      if (hf_tool_parse_size (optarg, &hf_tool_size) == -1 ||
          hf_tool_size == 0) {
        fprintf (stderr, "hyperfile: --size: cannot parse '%s'\n", optarg);
        return EXIT_USAGE;
      }
      if (hf_tool_size > HF_MAX_VOLUME_SIZE) {
        fprintf (stderr, "hyperfile: --size=%s: larger than a volume can "
                 "be (%" PRIu64 " bytes)\n", optarg, HF_MAX_VOLUME_SIZE);
        return EXIT_USAGE;
      }
      break;
    case O_BS:
      if (hf_tool_parse_size (optarg, &bs) == -1 || bs < 512 ||
          bs > 65536 || (bs & (bs - 1))) {
        fprintf (stderr, "hyperfile: --block-size: a power of 2 from 512 "
                 "to 65536\n");
        return EXIT_USAGE;
      }
      hf_tool_block_size = bs;
      break;
    case O_AT: hf_tool_at = optarg; break;
    case O_TAKEOVER: hf_tool_takeover = true; break;
    case O_PARENT_ANY: hf_tool_s3.clone_parent_any = true; break;
    case O_DRY_RUN: hf_tool_dry_run = true; break;
    case O_RETAIN:
    case O_GRACE:
      hf_tool_retain_set |= c == O_RETAIN;
      r = hf_parse_duration (optarg, c == O_RETAIN ? &hf_tool_retain_ns
                             : &hf_tool_grace_ns);
      if (r == ERANGE) {
        fprintf (stderr, "hyperfile: --%s=%s: too long (at most %" PRIu64
                 "d)\n", c == O_RETAIN ? "retain" : "grace", optarg,
                 HF_DURATION_MAX_NS / 86400000000000);
        return EXIT_USAGE;
      }
      if (r) {
        fprintf (stderr, "hyperfile: --%s: expected a duration such as "
                 "90s, 30m, 24h or 7d\n", c == O_RETAIN ? "retain" : "grace");
        return EXIT_USAGE;
      }
      break;
    case 'v':
      hf_tool_verbose = true;
      hf_log_set_debug ("all", true);
      break;
    case 'h':
      help = true;              /* with a command, its usage */
      break;
    case 'V':
      printf ("hyperfile %s\n", PACKAGE_VERSION);
      return EXIT_SUCCESS;
    case O_FORCE: hf_tool_force = true; break;
    case O_CREATE: hf_tool_create_missing = true; break;
    case O_PRUNE: hf_tool_prune = true; break;
    case O_FROM: hf_tool_from = optarg; break;
    case O_TO: hf_tool_to = optarg; break;
    case O_KEY_FILE: hf_tool_key_file = optarg; break;
    case O_KEY: hf_tool_key_pass = hf_tool_read_secret (optarg, 2); break;
    case O_NEW_KEY_FILE: hf_tool_new_key_file = optarg; break;
    case O_NEW_KEY:
      hf_tool_new_key_pass = hf_tool_read_secret (optarg, 3);
      break;
    default:
      hf_tool_usage (stderr);
      return EXIT_USAGE;
    }
  }
  if (optind < argc)
    cmd = hf_tool_find_cmd (argv[optind]);
  if (help) {
    if (cmd)
      hf_tool_cmd_usage (cmd, stdout);
    else
      hf_tool_usage (stdout);
    return EXIT_SUCCESS;
  }
  nargs = argc - optind - 1;
  if (hf_tool_load_key (hf_tool_key_file, hf_tool_key_pass, "key",
                        &hf_tool_ukey, &hf_tool_have_ukey) != 0)
    return EXIT_USAGE;
  if (cmd == NULL) {
    if (optind < argc)
      fprintf (stderr, "hyperfile: unknown command '%s'\n", argv[optind]);
    hf_tool_usage (stderr);
    r = EXIT_USAGE;
  }
  else if (nargs < cmd->min || nargs > cmd->max) {
    fprintf (stderr, "hyperfile: %s: wrong number of arguments\n",
             cmd->name);
    hf_tool_cmd_usage (cmd, stderr);
    r = EXIT_USAGE;
  }
  else
    r = cmd->fn (nargs, argv + optind + 1);
  hf_user_key_clear (&hf_tool_ukey);
  hf_user_key_clear (&hf_tool_new_ukey);
  for (i = 0; i < 5; i++) {
    if (hf_tool_secrets[i])
      memset (hf_tool_secrets[i], 0, strlen (hf_tool_secrets[i]));
    free (hf_tool_secrets[i]);
  }
  return r;
}
