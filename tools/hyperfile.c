/* hyperfile: the admin command.
 *
 *   hyperfile [STORE OPTIONS] create URL --size SIZE [--block-size N]
 *   hyperfile [STORE OPTIONS] info URL [--json]
 *
 * Store options are the plugin's parameters spelled as long options
 * (--endpoint, --region, --access-key, --secret-key, --session-token,
 * --profile, --virtual-host, --tls-verify=false, --ca-file), so a URL that
 * works with `nbdkit hyperfile` works here.  Secrets accept the nbdkit
 * password syntax: +FILE reads the first line of FILE, - reads stdin.
 *
 * Exit codes: 0 success, 1 the operation failed, 2 usage error,
 * 3 the volume does not exist (info), 4 it exists already (create).
 */
#include <config.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "log.h"
#include "objstore.h"
#include "volume.h"

#define EXIT_USAGE 2
#define EXIT_NOVOLUME 3
#define EXIT_EXISTS 4

static struct hf_s3_config hf_tool_s3 = { .tls_verify = true };
static bool hf_tool_json;
static uint64_t hf_tool_size;
static uint32_t hf_tool_block_size;
static bool hf_tool_verbose;

/* Secrets read from +FILE / - are kept here to free at exit. */
static char *hf_tool_secrets[3];

static void
hf_tool_usage (FILE *fp)
{
  fprintf (fp,
"usage: hyperfile [OPTIONS] COMMAND URL [ARGS]\n"
"\n"
"Commands:\n"
"  create URL --size SIZE [--block-size N]   create a volume\n"
"  info URL [--json]                         show a volume's state\n"
"\n"
"URL is s3://BUCKET[/PREFIX], file:///DIR or a directory path.\n"
"\n"
"Store options (as the plugin's parameters):\n"
"  --endpoint URL        S3-compatible endpoint (implies path-style)\n"
"  --virtual-host        virtual-host addressing with --endpoint\n"
"  --region REGION\n"
"  --access-key KEY\n"
"  --secret-key SECRET   or +FILE, or - to read it from stdin\n"
"  --session-token TOK   or +FILE, or -\n"
"  --profile NAME        section of ~/.aws/credentials\n"
"  --tls-verify=false    do not verify TLS certificates\n"
"  --ca-file FILE\n"
"  -v, --verbose         debug messages (all areas)\n"
"  --json                machine-readable output\n"
"  -h, --help\n");
}

/* Parse SIZE with an optional K/M/G/T/P/E suffix (powers of 1024). */
static int
hf_tool_parse_size (const char *s, uint64_t *out)
{
  char *end;
  unsigned long long v;
  int shift = 0;

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

/* nbdkit password syntax: "+FILE" reads FILE's first line, "-" reads a
 * line from stdin, anything else is the secret itself. */
static const char *
hf_tool_read_secret (const char *arg, int slot)
{
  FILE *fp;
  char *line = NULL;
  size_t n = 0;
  ssize_t len;

  if (strcmp (arg, "-") == 0)
    fp = stdin;
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
  if (fp != stdin)
    fclose (fp);
  if (len < 0) {
    fprintf (stderr, "hyperfile: could not read a secret from %s\n",
             arg[0] == '+' ? arg + 1 : "stdin");
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
  return 0;
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
  r = hf_volume_create (s, prefix, hf_tool_size, hf_tool_block_size);
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
  if (hf_tool_json)
    printf ("{\"url\": \"%s\", \"size\": %" PRIu64 ", \"created\": true}\n",
            url, hf_tool_size);
  else
    printf ("created %s (%" PRIu64 " bytes)\n", url, hf_tool_size);
  return EXIT_SUCCESS;
}

static int
hf_tool_info (const char *url)
{
  struct hf_volume_options opts = { .readonly = true };
  struct hf_volume_info vi;
  struct hf_volume *v;
  struct hf_objstore *s;
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
  if (hf_tool_json)
    printf ("{\"url\": \"%s\", \"uuid\": \"%s\", \"size\": %" PRIu64
            ", \"block_size\": %" PRIu32 ", \"head_seq\": %" PRIu64
            ", \"checkpoint_seq\": %" PRIu64 ", \"mapped_blocks\": %"
            PRIu64 ", \"lease_epoch\": %" PRIu64 "}\n",
            url, uuid, vi.size, vi.block_size, vi.head_seq, vi.ckpt_seq,
            vi.mapped_blocks, vi.lease_epoch);
  else
    printf ("url:            %s\n"
            "uuid:           %s\n"
            "size:           %" PRIu64 "\n"
            "block size:     %" PRIu32 "\n"
            "head segment:   %" PRIu64 "\n"
            "checkpoint:     %" PRIu64 "\n"
            "mapped blocks:  %" PRIu64 " (%" PRIu64 " bytes)\n"
            "lease epoch:    %" PRIu64 "\n",
            url, uuid, vi.size, vi.block_size, vi.head_seq, vi.ckpt_seq,
            vi.mapped_blocks, vi.mapped_blocks * vi.block_size,
            vi.lease_epoch);
  hf_volume_close (v);
  hf_objstore_close (s);
  free (prefix);
  return EXIT_SUCCESS;
}

int
main (int argc, char *argv[])
{
  enum { O_ENDPOINT = 256, O_VHOST, O_REGION, O_AK, O_SK, O_ST, O_PROFILE,
         O_TLS, O_CA, O_JSON, O_SIZE, O_BS };
  static const struct option longopts[] = {
    { "endpoint", required_argument, NULL, O_ENDPOINT },
    { "virtual-host", no_argument, NULL, O_VHOST },
    { "region", required_argument, NULL, O_REGION },
    { "access-key", required_argument, NULL, O_AK },
    { "secret-key", required_argument, NULL, O_SK },
    { "session-token", required_argument, NULL, O_ST },
    { "profile", required_argument, NULL, O_PROFILE },
    { "tls-verify", required_argument, NULL, O_TLS },
    { "ca-file", required_argument, NULL, O_CA },
    { "json", no_argument, NULL, O_JSON },
    { "size", required_argument, NULL, O_SIZE },
    { "block-size", required_argument, NULL, O_BS },
    { "verbose", no_argument, NULL, 'v' },
    { "help", no_argument, NULL, 'h' },
    { NULL, 0, NULL, 0 }
  };
  const char *cmd, *url;
  uint64_t bs;
  int c, r, i;

  hf_log_set_sink (hf_tool_log);
  /* GNU getopt permutes, so options may follow the command and URL. */
  while ((c = getopt_long (argc, argv, "vh", longopts, NULL)) != -1) {
    switch (c) {
    case O_ENDPOINT: hf_tool_s3.endpoint = optarg; break;
    case O_VHOST: hf_tool_s3.virtual_host = true; break;
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
    case O_JSON: hf_tool_json = true; break;
    case O_SIZE:
      if (hf_tool_parse_size (optarg, &hf_tool_size) == -1 ||
          hf_tool_size == 0) {
        fprintf (stderr, "hyperfile: --size: cannot parse '%s'\n", optarg);
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
    case 'v':
      hf_tool_verbose = true;
      hf_log_set_debug ("all", true);
      break;
    case 'h':
      hf_tool_usage (stdout);
      return EXIT_SUCCESS;
    default:
      hf_tool_usage (stderr);
      return EXIT_USAGE;
    }
  }
  if (argc - optind != 2) {
    hf_tool_usage (stderr);
    return EXIT_USAGE;
  }
  cmd = argv[optind];
  url = argv[optind + 1];

  if (strcmp (cmd, "create") == 0)
    r = hf_tool_create (url);
  else if (strcmp (cmd, "info") == 0)
    r = hf_tool_info (url);
  else {
    fprintf (stderr, "hyperfile: unknown command '%s'\n", cmd);
    hf_tool_usage (stderr);
    r = EXIT_USAGE;
  }
  for (i = 0; i < 3; i++)
    free (hf_tool_secrets[i]);
  return r;
}
