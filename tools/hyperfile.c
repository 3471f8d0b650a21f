/* hyperfile: the admin command.
 *
 *   hyperfile [STORE OPTIONS] create URL --size SIZE [--block-size N]
 *             [--compress METHOD]
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
 *
 * The commands live in files of their own, grouped by what they work
 * on: cmd-volume.c (create, info, resize, delete, rekey), cmd-history.c
 * (ls, snapshot, rollback), cmd-clone.c (clone, children, flatten),
 * cmd-copy.c (import, export), cmd-diff.c (diff, export --from) and
 * cmd-maint.c (gc, du, fsck); common.c holds what they share and tool.h
 * declares it.  This file holds the options (set once by main, read by
 * the commands), the command table and main.
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <json-c/json.h>

#include "crypt.h"
#include "duration.h"
#include "gc.h"
#include "log.h"
#include "objstore.h"
#include "volume.h"

#include "tool.h"

/* The options: set by main before the command runs, read by the
 * commands (tool.h). */
struct hf_s3_config hf_tool_s3 = { .tls_verify = true };
bool hf_tool_json;
uint64_t hf_tool_size;
uint32_t hf_tool_block_size;
unsigned hf_tool_codec;         /* --compress */
int hf_tool_codec_level;
bool hf_tool_verbose;
const char *hf_tool_at;          /* --at POINT */
bool hf_tool_takeover;           /* --takeover */
bool hf_tool_dry_run;            /* gc --dry-run */
uint64_t hf_tool_retain_ns =     /* gc, fsck --retain */
  (uint64_t) HF_GC_DEFAULT_RETAIN_S * 1000000000;
uint64_t hf_tool_grace_ns =      /* gc, fsck --grace */
  (uint64_t) HF_GC_DEFAULT_GRACE_S * 1000000000;
bool hf_tool_retain_set;         /* --retain given */
bool hf_tool_tty;                /* stderr is a terminal */
bool hf_tool_force;              /* export --force */
bool hf_tool_quiet;              /* keep the first error line in */
char hf_tool_held[1024];         /* hf_tool_held, not printed */
bool hf_tool_create_missing;     /* import --create */
bool hf_tool_create_silent;      /* create: no report */
bool hf_tool_prune;              /* children --prune */
const char *hf_tool_from;        /* diff, export --from POINT */
const char *hf_tool_to;          /* diff --to POINT */

/* Secrets read from +FILE / - are kept here to free at exit. */
static char *hf_tool_secrets[5];

/* The volume key (--key-file, --key) and rekey's new one. */
const char *hf_tool_key_file, *hf_tool_key_pass;
const char *hf_tool_new_key_file, *hf_tool_new_key_pass;
struct hf_user_key hf_tool_ukey, hf_tool_new_ukey;
bool hf_tool_have_ukey;

static void
hf_tool_usage (FILE *fp)
{
  fprintf (fp,
"usage: hyperfile [OPTIONS] COMMAND URL [ARGS]\n"
"\n"
"Commands:\n"
"  create URL --size SIZE [--block-size N] [--compress METHOD]\n"
"                                            create a volume\n"
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
int
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

/* --NAME-file PATH or --NAME PASS into *uk: 0 (also when neither was
 * given: *have false), or -1 with a message. */
int
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

static const struct hf_tool_cmd {
  const char *name;
  int min, max;
  int (*fn) (int argc, char **argv);
  const char *usage;            /* after "usage: hyperfile " */
  const char *help;             /* what it does, its own options */
} hf_tool_cmds[] = {
  { "create", 1, 1, hf_tool_cmd_create,
    "create URL --size SIZE [--block-size N] [--compress METHOD] [--json]",
    "Create an empty (sparse) volume of SIZE bytes (K, M, G, T suffixes)\n"
    "with blocks of N bytes (a power of 2 from 512 to 65536; default 4K).\n"
    "--compress METHOD: zstd stores its data compressed (zstd level 1),\n"
    "zstd:LEVEL at LEVEL (1 to 19, or -1 to -10: zstd's fast levels,\n"
    "cheaper in CPU, larger), off not (the default); chosen once for the\n"
    "volume.\n"
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

int
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
  enum { O_SSE = 200, O_SSE_KMS, O_STORAGE_CLASS, O_COMPRESS };
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
    { "compress", required_argument, NULL, O_COMPRESS },
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
    case O_COMPRESS:
      if (hf_codec_parse (optarg, &hf_tool_codec, &hf_tool_codec_level)) {
        fprintf (stderr, "hyperfile: --compress=%s: " HF_CODEC_SYNTAX "\n",
                 optarg);
        return EXIT_USAGE;
      }
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
