/* hyperfile: the nbdkit plugin.  Glue only: parameters, callbacks, and
 * errno translation.  Everything durable lives in lib/volume*.c.
 *
 * The plugin is a user of libhyperfile (hyperfile.h): it opens its
 * volume as a struct hf_file and serves every NBD request through the
 * public hf_file_* calls.  What the public API does not carry stays
 * internal (lib/file-int.h): hf_file_open_ext takes the store .get_ready
 * opened and checked (S3 check, encryption key, test fault store) and
 * the engine's tuning (dirty-limit, wal-size, at= resolved to a seq);
 * hf_file_volume / hf_file_cache give metrics, -v counters and
 * background GC the engine behind the handle.
 *
 *   nbdkit hyperfile s3://BUCKET/PREFIX size=10G endpoint=...
 *   nbdkit hyperfile /var/lib/hyperfile/vol1 size=10G
 *
 * Lifecycle: .config/.config_complete parse and check parameters;
 * .get_ready opens the store and validates the volume (so bad
 * configuration fails at startup, before nbdkit forks); .after_fork opens
 * the volume for real, because that starts the engine's background
 * threads, which would not survive nbdkit's daemonising fork (nor the
 * --run fork: fork(2) copies only the calling thread); a failure there
 * first stops the listening sockets (hyperfile_stop_listening); .cleanup
 * closes it, which commits everything to the store (also on SIGTERM and
 * SIGINT) and releases the writer lease.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>
#include <fcntl.h>
#include <dirent.h>
#include <poll.h>
#include <syslog.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/wait.h>

#define NBDKIT_API_VERSION 2
#include <nbdkit-plugin.h>

#include "cache.h"
#include "cleanup.h"
#include "clock.h"
#include "duration.h"
#include "crypt.h"
#include "file-int.h"
#include "gc.h"
#include "history.h"
#include "lease.h"
#include "localdir.h"
#include "log.h"
#include "objstore.h"
#include "volume.h"
#include "wal.h"

/* Debug flags: -D hyperfile.AREA=1 (see DEBUG FLAGS in the man page). */
NBDKIT_DLL_PUBLIC int hyperfile_debug_s3 = 0;
NBDKIT_DLL_PUBLIC int hyperfile_debug_dir = 0;
NBDKIT_DLL_PUBLIC int hyperfile_debug_volume = 0;
NBDKIT_DLL_PUBLIC int hyperfile_debug_btree = 0;
NBDKIT_DLL_PUBLIC int hyperfile_debug_segment = 0;
NBDKIT_DLL_PUBLIC int hyperfile_debug_fault = 0;
NBDKIT_DLL_PUBLIC int hyperfile_debug_cache = 0;
NBDKIT_DLL_PUBLIC int hyperfile_debug_gc = 0;

/* Parameters (set during .config, read-only afterwards). */
static char *hf_url;
static struct hf_s3_config hf_s3 = { .tls_verify = true };
static char *hf_secret_key, *hf_session_token;  /* from password syntax */
static const char *hf_key_file;       /* key-file=PATH */
static char *hf_key_pass;             /* key=, from password syntax */
static struct hf_user_key hf_ukey;    /* loaded in .config_complete */
static bool hf_have_ukey;
static int64_t hf_size = -1;
static uint64_t hf_grow_to;             /* size= above the volume's size:
                                           grown to it in .after_fork */
static uint32_t hf_block_size;
static const char *hf_compress;         /* compress=, checked at config */
static unsigned hf_codec;
static int hf_codec_level;
static struct hf_volume_options hf_opts;
static const char *hf_at;             /* at=SEQ|TIMESTAMP|SNAPSHOT */
static const char *hf_metrics;
static const char *hf_cache_dir;        /* NULL: no local block cache */
static uint64_t hf_cache_size;          /* 0: the cache's default */
static bool hf_gc_on = true;            /* gc=on|off */
static uint64_t hf_gc_interval_ms = 15 * 60 * 1000;     /* gc-interval= */
static struct hf_gc_options hf_gc_opts = {
  .retain_ns = (uint64_t) HF_GC_DEFAULT_RETAIN_S * 1000000000,
  .grace_ns = (uint64_t) HF_GC_DEFAULT_GRACE_S * 1000000000,
  .compact = true,
};

/* Background GC (writers with gc=on, lib/gc.c): started in
 * .after_fork, stopped in .cleanup before the volume closes. */
static struct hf_gc_sched *hf_gc_sched;
static const char *hf_wal_dir;          /* NULL: no write-ahead log */

/* State.  hf_store and hf_handle are set in .get_ready/.after_fork and
 * torn down in .cleanup; the callbacks in between only read them. */
static struct hf_objstore *hf_store;    /* hf_handle borrows it */
static char *hf_prefix;
static struct hf_file *hf_handle;       /* the volume (and its cache) */
static struct hf_volume_info hf_vinfo;  /* from .get_ready: uuid, block
                                           size for the cache */

/* The metrics thread: hf_metrics_lock protects hf_metrics_stop. */
static pthread_t hf_metrics_thread;
static bool hf_metrics_running;
static pthread_mutex_t hf_metrics_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t hf_metrics_cond;  /* CLOCK_MONOTONIC, made at start */
static bool hf_metrics_stop;

/* While hf_log_hold is set (only in .get_ready, single threaded), the
 * first error is kept in hf_log_held instead of printed, so that an
 * expected failure can be replaced by one clearer line. */
static bool hf_log_hold;
static char hf_log_held[1024];

/* The process that loaded the plugin: another pid means nbdkit has
 * forked into the background (its stderr is then /dev/null). */
static pid_t hf_load_pid;

/* A warning: something an operator should see that is not a failure.
 * nbdkit has no warning level and nbdkit_error would print "error:",
 * which log filters keyed on errors must not see.  In the foreground
 * it goes to stderr as "nbdkit: hyperfile: warning: ...", once forked
 * into the background to syslog at LOG_WARNING; with -v also as debug. */
static void
hyperfile_warning (const char *msg)
{
  nbdkit_debug ("warning: %s", msg);
  if (getpid () != hf_load_pid)
    syslog (LOG_WARNING, "hyperfile: warning: %s", msg);
  else {
    char line[1200];
    int n = snprintf (line, sizeof line, "nbdkit: hyperfile: warning: %s\n",
                      msg);

    if (n >= (int) sizeof line) {
      n = sizeof line - 1;
      line[n - 1] = '\n';
    }
    if (write (STDERR_FILENO, line, n) == -1) {
      /* nowhere left to say it */
    }
  }
}

/* The daemon's start status (see hyperfile_start_wait).  nbdkit's
 * daemonising parent exits 0 at the fork, before .after_fork opens the
 * volume in the child, so a writer that then loses the lease, or may
 * not write it, used to leave "exit 0" and a dead server.  The parent's
 * exit runs atexit handlers: ours waits there for the child to report
 * through hf_start_pipe (one status byte, then the errors the child
 * logged, which nbdkit sent to syslog) and exits 1 if it failed.
 * hf_start_lock guards hf_start_msg, written by any thread that logs
 * an error during the open. */
static int hf_start_pipe[2] = { -1, -1 };
static bool hf_start_capture;           /* in the child, opening */
static char hf_start_msg[2048];
static pthread_mutex_t hf_start_lock = PTHREAD_MUTEX_INITIALIZER;

static void
hyperfile_start_keep (const char *msg)
{
  size_t n;

  pthread_mutex_lock (&hf_start_lock);
  n = strlen (hf_start_msg);
  if (hf_start_capture && n + 2 < sizeof hf_start_msg)
    snprintf (hf_start_msg + n, sizeof hf_start_msg - n, "%s\n", msg);
  pthread_mutex_unlock (&hf_start_lock);
}

static void
hyperfile_log_sink (enum hf_log_level level, const char *msg)
{
  if (hf_log_hold && level == HF_LOG_ERROR) {
    if (hf_log_held[0] == '\0')
      snprintf (hf_log_held, sizeof hf_log_held, "%s", msg);
    return;
  }
  if (level == HF_LOG_ERROR)
    hyperfile_start_keep (msg);
  switch (level) {
  case HF_LOG_ERROR: nbdkit_error ("%s", msg); break;
  case HF_LOG_WARN: hyperfile_warning (msg); break;
  case HF_LOG_INFO: nbdkit_debug ("%s", msg); break;
  case HF_LOG_DEBUG: nbdkit_debug ("%s", msg); break;
  }
}

static void
hyperfile_load (void)
{
  hf_load_pid = getpid ();
  hf_log_set_sink (hyperfile_log_sink);
}

static void
hyperfile_unload (void)
{
  free (hf_url);
  free (hf_secret_key);
  free (hf_session_token);
  free (hf_prefix);
  if (hf_key_pass)
    memset (hf_key_pass, 0, strlen (hf_key_pass));
  free (hf_key_pass);
  hf_key_pass = NULL;
  hf_user_key_clear (&hf_ukey);
}

/* Parse a duration (duration.h) into ms. */
static int
hyperfile_parse_duration (const char *key, const char *value,
                          uint64_t *ms)
{
  uint64_t ns;
  int r = hf_parse_duration (value, &ns);

  if (r == ERANGE) {
    nbdkit_error ("%s=%s: too long (at most %" PRIu64 "d)", key, value,
                  HF_DURATION_MAX_NS / UINT64_C (86400000000000));
    return -1;
  }
  if (r) {
    nbdkit_error ("%s=%s: expected a duration like 500ms, 5s, 2m, 24h",
                  key, value);
    return -1;
  }
  *ms = ns / 1000000;
  return 0;
}

/* Is s a boolean word (case-insensitive)?  0: false-like, 1: true-like,
 * -1: neither. */
static int
hyperfile_bool_word (const char *s)
{
  static const char *const t[] = { "on", "yes", "true", "1", "enable",
                                   "enabled", "y" };
  static const char *const f[] = { "off", "no", "false", "0", "disable",
                                   "disabled", "n", "none" };
  size_t i;

  for (i = 0; i < sizeof f / sizeof f[0]; i++)
    if (strcasecmp (s, f[i]) == 0)
      return 0;
  for (i = 0; i < sizeof t / sizeof t[0]; i++)
    if (strcasecmp (s, t[i]) == 0)
      return 1;
  return -1;
}

/* ---- Parameters ----
 *
 * One row per parameter: its key, how its value is parsed and checked,
 * and where it goes.  Keys outside the table are refused. */

enum hyperfile_kind {
  HF_P_STR,                     /* the value as is (nbdkit keeps it) */
  HF_P_BOOL,                    /* nbdkit_parse_bool */
  HF_P_DIR,                     /* a directory, or "off" for none */
  HF_P_BYTES,                   /* nbdkit_parse_size, within min..max */
  HF_P_BYTES_SZ,                /* the same, into a size_t */
  HF_P_MS,                      /* a duration in ms, at least min */
  HF_P_NS,                      /* a duration, kept in ns */
  HF_P_FN,                      /* parsed by fn */
};

struct hyperfile_param {
  const char *key;
  enum hyperfile_kind kind;
  union {
    const char **str;
    bool *b;
    uint64_t *u64;
    size_t *sz;
    int (*fn) (const char *key, const char *value);
  } to;
  uint64_t min, max;            /* HF_P_BYTES, HF_P_MS: bounds (max 0:
                                   none) */
  const char *range;            /* the error's wording of the bounds */
  const char *meta;             /* --help: what follows "key=" */
  const char *help;             /* --help: what it does (lines after the
                                   first are indented under it) */
};

static int
hyperfile_set_url (const char *key, const char *value)
{
  free (hf_url);
  if ((hf_url = strdup (value)) == NULL) {
    nbdkit_error ("strdup: %m");
    return -1;
  }
  return 0;
}

static int
hyperfile_set_secret_key (const char *key, const char *value)
{
  free (hf_secret_key);
  hf_secret_key = NULL;
  if (nbdkit_read_password (value, &hf_secret_key) == -1)
    return -1;
  hf_s3.secret_key = hf_secret_key;
  return 0;
}

static int
hyperfile_set_key (const char *key, const char *value)
{
  free (hf_key_pass);
  hf_key_pass = NULL;
  return nbdkit_read_password (value, &hf_key_pass);
}

static int
hyperfile_set_session_token (const char *key, const char *value)
{
  free (hf_session_token);
  hf_session_token = NULL;
  if (nbdkit_read_password (value, &hf_session_token) == -1)
    return -1;
  hf_s3.session_token = hf_session_token;
  return 0;
}

static int
hyperfile_set_size (const char *key, const char *value)
{
  if ((hf_size = nbdkit_parse_size (value)) == -1)
    return -1;
  if (hf_size == 0) {
    nbdkit_error ("size=%s: must be greater than zero", value);
    return -1;
  }
  /* Rounded up to whole blocks, it must still be a size nbdkit can
   * serve. */
  if ((uint64_t) hf_size > HF_MAX_VOLUME_SIZE) {
    nbdkit_error ("size=%s: larger than a volume can be (%" PRIu64
                  " bytes)", value, HF_MAX_VOLUME_SIZE);
    return -1;
  }
  return 0;
}

static int
hyperfile_set_block_size (const char *key, const char *value)
{
  int64_t n = nbdkit_parse_size (value);

  if (n == -1)
    return -1;
  if (n < 512 || n > 65536 || (n & (n - 1))) {
    nbdkit_error ("block-size=%s: a power of 2 from 512 to 65536", value);
    return -1;
  }
  hf_block_size = n;
  return 0;
}

static int
hyperfile_set_compress (const char *key, const char *value)
{
  if (hf_codec_parse (value, &hf_codec, &hf_codec_level) != 0) {
    nbdkit_error ("compress=%s: " HF_CODEC_SYNTAX, value);
    return -1;
  }
  hf_compress = value;
  return 0;
}

static int
hyperfile_set_flush_interval (const char *key, const char *value)
{
  uint64_t ms;

  if (hyperfile_parse_duration (key, value, &ms) == -1)
    return -1;
  hf_opts.flush_interval_ms = ms == 0 ? UINT32_MAX
    : ms > UINT32_MAX - 1 ? UINT32_MAX - 1 : ms;
  return 0;
}

static int
hyperfile_set_request_timeout (const char *key, const char *value)
{
  if (hf_s3_config_request_timeout (&hf_s3, value) != 0) {
    nbdkit_error ("%s=%s: expected " HF_S3_REQUEST_TIMEOUT_RANGE, key,
                  value);
    return -1;
  }
  return 0;
}

static int
hyperfile_set_request_retries (const char *key, const char *value)
{
  if (hf_s3_config_retries (&hf_s3, value) != 0) {
    nbdkit_error ("%s=%s: expected " HF_S3_RETRIES_RANGE, key, value);
    return -1;
  }
  return 0;
}

static int
hyperfile_set_at (const char *key, const char *value)
{
  /* Syntax now; resolved to a seq against the volume in .get_ready. */
  if (hf_history_check_at (value) != 0)
    return -1;                  /* logged what is wrong */
  hf_at = value;
  return 0;
}

/* Each row ends with its --help text: the value's form and what it does
 * (hyperfile_config_help is made from them). */
#define P_STR(k, d, m, h) \
  { .key = k, .kind = HF_P_STR, .to.str = d, .meta = m, .help = h }
#define P_BOOL(k, d, m, h) \
  { .key = k, .kind = HF_P_BOOL, .to.b = d, .meta = m, .help = h }
#define P_DIR(k, d, h) \
  { .key = k, .kind = HF_P_DIR, .to.str = d, .meta = "DIR|off", .help = h }
#define P_FN(k, f, m, h) \
  { .key = k, .kind = HF_P_FN, .to.fn = f, .meta = m, .help = h }
#define P_NS(k, d, h) \
  { .key = k, .kind = HF_P_NS, .to.u64 = d, .meta = "DURATION", .help = h }
#define P_MS(k, d, lo, r, h) \
  { .key = k, .kind = HF_P_MS, .to.u64 = d, .min = lo, .range = r, \
    .meta = "DURATION", .help = h }
#define P_BYTES(k, d, lo, hi, r, h) \
  { .key = k, .kind = HF_P_BYTES, .to.u64 = d, .min = lo, .max = hi, \
    .range = r, .meta = "SIZE", .help = h }
#define P_BYTES_SZ(k, d, lo, hi, r, h) \
  { .key = k, .kind = HF_P_BYTES_SZ, .to.sz = d, .min = lo, .max = hi, \
    .range = r, .meta = "SIZE", .help = h }
#define MIB (UINT64_C (1) << 20)
static const struct hyperfile_param hyperfile_params[] = {
  /* The magic parameter: first, and shown as [url=]. */
  P_FN ("url", hyperfile_set_url, "s3://BUCKET[/PREFIX] | file:///DIR | DIR",
        "(required) the volume"),
  P_STR ("endpoint", &hf_s3.endpoint, "URL",
         "S3-compatible endpoint (path-style)"),
  P_BOOL ("virtual-host", &hf_s3.virtual_host, "true",
          "virtual-host addressing with endpoint="),
  P_BOOL ("express", &hf_s3.express, "true",
          "S3 Express directory bucket (implied by its name)"),
  P_STR ("region", &hf_s3.region, "REGION", "S3 region"),
  P_STR ("access-key", &hf_s3.access_key, "KEY", "S3 access key id"),
  P_FN ("secret-key", hyperfile_set_secret_key, "SECRET",
        "S3 secret (+FILE, -FD or - to read it)"),
  P_FN ("session-token", hyperfile_set_session_token, "TOKEN",
        "S3 session token (+FILE, -FD or -)"),
  P_STR ("profile", &hf_s3.profile, "NAME",
         "profile in ~/.aws/credentials and config"),
  P_STR ("sse", &hf_s3.sse, "AES256|aws:kms",
         "server-side encryption of new objects"),
  P_STR ("sse-kms-key-id", &hf_s3.sse_kms_key_id, "KEY",
         "the KMS key for sse=aws:kms"),
  P_STR ("storage-class", &hf_s3.storage_class, "CLASS",
         "S3 storage class of new objects"),
  P_FN ("size", hyperfile_set_size, "SIZE",
        "create the volume this size if missing, or grow it"),
  P_FN ("block-size", hyperfile_set_block_size, "N",
        "block size of a new volume (default 4096)"),
  P_FN ("compress", hyperfile_set_compress, "zstd[:LEVEL]|off",
        "compress a new volume's data (default off); LEVEL 1 to 19, "
        "or -1 to -10: zstd's fast levels"),
  P_STR ("key-file", &hf_key_file, "PATH",
         "encryption key of the volume (32 bytes or 64 hex)"),
  P_FN ("key", hyperfile_set_key, "PASSPHRASE",
        "encryption passphrase (+FILE, -FD or -)"),
  P_DIR ("wal", &hf_wal_dir, "write-ahead log directory (default off)"),
  P_BYTES ("wal-size", &hf_opts.wal_max_bytes, MIB, 0, "at least 1M",
           "log space before writers wait (default 1G)"),
  P_BYTES_SZ ("dirty-limit", &hf_opts.dirty_limit, 65536, 0, "at least 64K",
              "memory for data not yet in the store\n"
              "(default 4 x segment-size)"),
  P_DIR ("cache", &hf_cache_dir, "local block cache directory (default off)"),
  P_BYTES ("cache-size", &hf_cache_size, MIB, 0, "at least 1M",
           "local block cache size (default 1G)"),
  /* A segment goes up in one conditional PUT, at most 5 GiB: 1G of
   * data, the write that crossed it and a checkpoint's index nodes stay
   * below that. */
  P_BYTES_SZ ("segment-size", &hf_opts.segment_size, 65536,
              UINT64_C (1) << 30, "between 64K and 1G",
              "seal a segment at this size (default 32M)"),
  P_FN ("flush-interval", hyperfile_set_flush_interval, "DURATION",
        "seal a segment this old (default 5s)"),
  P_FN ("at", hyperfile_set_at, "SEQ|TIME|SNAPSHOT",
        "serve the volume read-only at that point"),
  P_NS ("retain", &hf_gc_opts.retain_ns,
        "time-travel window kept by GC (default 24h)"),
  P_BOOL ("gc", &hf_gc_on, "on|off",
          "background GC and compaction (default on)"),
  P_MS ("gc-interval", &hf_gc_interval_ms, 100, "at least 100ms",
        "time between background GC runs (default 15m)"),
  P_NS ("gc-grace", &hf_gc_opts.grace_ns,
        "grace for old readers and orphans (default 10m)"),
  P_BOOL ("takeover", &hf_opts.takeover, "true",
          "claim a volume whose writer lease expired"),
  P_BOOL ("tls-verify", &hf_s3.tls_verify, "false",
          "do not verify TLS certificates"),
  P_STR ("ca-file", &hf_s3.ca_file, "FILE", "CA certificates for TLS"),
  P_FN ("request-timeout", hyperfile_set_request_timeout, "DURATION",
        "an S3 request attempt's time, plus its bytes\n"
        "at 256 KiB/s (default 60s)"),
  P_FN ("request-retries", hyperfile_set_request_retries, "N",
        "retries of a failed S3 request (default 8)"),
  P_STR ("metrics", &hf_metrics, "FILE", "write Prometheus metrics to FILE"),
  P_BOOL ("clone-parent-any", &hf_s3.clone_parent_any, "true",
          "a directory volume may be a clone of one in S3"),
};
#undef MIB
#undef P_STR
#undef P_BOOL
#undef P_DIR
#undef P_FN
#undef P_NS
#undef P_MS
#undef P_BYTES
#undef P_BYTES_SZ

static int
hyperfile_config (const char *key, const char *value)
{
  const struct hyperfile_param *p = NULL;
  uint64_t u;
  int64_t n;
  size_t i;
  int b;

  for (i = 0; i < sizeof hyperfile_params / sizeof hyperfile_params[0]; i++)
    if (strcmp (key, hyperfile_params[i].key) == 0)
      p = &hyperfile_params[i];
  if (p == NULL) {
    nbdkit_error ("unknown parameter '%s'", key);
    return -1;
  }
  switch (p->kind) {
  case HF_P_STR:
    *p->to.str = value;
    return 0;
  case HF_P_BOOL:
    if ((b = nbdkit_parse_bool (value)) == -1)
      return -1;
    *p->to.b = b;
    return 0;
  case HF_P_DIR:
    if (*value == '\0') {
      nbdkit_error ("%s=: expected a directory or off", key);
      return -1;
    }
    /* A boolean is not a relative directory name: off-like words mean
     * off, and wal=on would silently make and use ./on. */
    switch (hyperfile_bool_word (value)) {
    case 0:
      *p->to.str = NULL;
      return 0;
    case 1:
      nbdkit_error ("%s=%s: a boolean, not a directory: give the "
                    "directory (%s=./%s if that is the name), or %s=off",
                    key, value, key, value, key);
      return -1;
    }
    *p->to.str = value;
    return 0;
  case HF_P_BYTES:
  case HF_P_BYTES_SZ:
    if ((n = nbdkit_parse_size (value)) == -1)
      return -1;
    if ((uint64_t) n < p->min || (p->max && (uint64_t) n > p->max)) {
      nbdkit_error ("%s=%s: %s", key, value, p->range);
      return -1;
    }
    if (p->kind == HF_P_BYTES)
      *p->to.u64 = n;
    else
      *p->to.sz = n;
    return 0;
  case HF_P_MS:
  case HF_P_NS:
    if (hyperfile_parse_duration (key, value, &u) == -1)
      return -1;
    if (u < p->min) {
      nbdkit_error ("%s=%s: %s", key, value, p->range);
      return -1;
    }
    *p->to.u64 = p->kind == HF_P_NS ? u * 1000000 : u;
    return 0;
  case HF_P_FN:
    return p->to.fn (key, value);
  }
  abort ();
}

/* Was nbdkit started with -r?  The plugin API (1.32) does not say so
 * before the first connection, but a read-only server must not take the
 * writer lease, or it would lock out the real writer.  So read nbdkit's
 * own command line (/proc/self/cmdline) the way its getopt does, up to
 * the plugin name.  If anything is unclear, answer false: the server then
 * opens the volume for writing, the behaviour without this check. */
static bool
hyperfile_nbdkit_readonly (void)
{
  /* nbdkit's options that take an argument. */
  static const char short_arg[] = "DegiPptUu";
  static const char *const long_arg[] = {
    "--debug", "--exportname", "--filter", "--group", "--ipaddr", "--log",
    "--mask-handshake", "--pidfile", "--port", "--run", "--selinux-label",
    "--threads", "--tls", "--tls-certificates", "--tls-psk", "--unix",
    "--user", NULL
  };
  char buf[65536];
  size_t len = 0, i;
  ssize_t n;
  bool ro = false, skip = true;   /* skip argv[0] */
  FILE *fp = fopen ("/proc/self/cmdline", "r");

  if (fp == NULL)
    return false;
  len = fread (buf, 1, sizeof buf - 1, fp);
  fclose (fp);
  if (len == 0 || len == sizeof buf - 1)
    return false;
  buf[len] = '\0';
  for (i = 0; i < len; i += n + 1) {
    const char *a = &buf[i];
    size_t j;

    n = strlen (a);
    if (skip) {                 /* argv[0] or an option's argument */
      skip = false;
      continue;
    }
    if (a[0] != '-' || strcmp (a, "-") == 0 || strcmp (a, "--") == 0)
      break;                    /* the plugin: nbdkit's options end */
    if (a[1] == '-') {
      if (strcmp (a, "--readonly") == 0 || strcmp (a, "--read-only") == 0)
        ro = true;
      else if (strchr (a, '=') == NULL)
        for (j = 0; long_arg[j]; j++)
          if (strcmp (a, long_arg[j]) == 0)
            skip = true;
      continue;
    }
    for (j = 1; a[j]; j++) {    /* bundled short options: -fr, -vU ... */
      if (a[j] == 'r')
        ro = true;
      if (strchr (short_arg, a[j])) {
        skip = a[j + 1] == '\0';       /* -U SOCK, not -USOCK */
        break;
      }
    }
  }
  return ro;
}

static int
hyperfile_config_complete (void)
{
  if (hf_url == NULL) {
    nbdkit_error ("url parameter is required: s3://BUCKET[/PREFIX], "
                  "file:///DIR or a directory path");
    return -1;
  }
  if (hyperfile_debug_s3) hf_log_set_debug ("s3", true);
  if (hyperfile_debug_dir) hf_log_set_debug ("dir", true);
  if (hyperfile_debug_volume) hf_log_set_debug ("volume", true);
  if (hyperfile_debug_btree) hf_log_set_debug ("btree", true);
  if (hyperfile_debug_segment) hf_log_set_debug ("segment", true);
  if (hyperfile_debug_fault) hf_log_set_debug ("fault", true);
  if (hyperfile_debug_cache) hf_log_set_debug ("cache", true);
  if (hyperfile_debug_gc) hf_log_set_debug ("gc", true);
  if (hf_key_file && hf_key_pass) {
    nbdkit_error ("key-file= and key= are two ways to give one key: "
                  "give one of them");
    return -1;
  }
  if (hf_key_file || hf_key_pass) {
    int r = hf_key_file ? hf_crypt_key_file (hf_key_file, &hf_ukey)
      : hf_crypt_passphrase (hf_key_pass, &hf_ukey);

    if (hf_key_pass) {
      memset (hf_key_pass, 0, strlen (hf_key_pass));
      free (hf_key_pass);
      hf_key_pass = NULL;
    }
    if (r)
      return -1;                /* logged what is wrong with it */
    hf_have_ukey = true;
  }
  if (hf_at)
    hf_opts.readonly = true;    /* at_seq is set in .get_ready */
  hf_opts.parent_cfg = &hf_s3;  /* a clone's parents: same endpoint */
  if (hyperfile_nbdkit_readonly ()) {
    nbdkit_debug ("nbdkit -r: opening the volume read-only (no lease)");
    hf_opts.readonly = true;
  }
  return 0;
}

/* --help, made from the parameter table when the plugin is loaded (a
 * constructor: nbdkit copies .config_help before .load runs), so that
 * it cannot disagree with what .config takes.  One line per parameter:
 * key=META padded to column 24, then what it does. */
static char hyperfile_config_help[4096];

/* Append to hyperfile_config_help; the buffer is sized with room to
 * spare, and a table that outgrows it must fail loudly, not be cut. */
static void __attribute__ ((format (printf, 2, 3)))
hyperfile_help_add (size_t *n, const char *fmt, ...)
{
  va_list ap;
  int w;

  va_start (ap, fmt);
  w = vsnprintf (hyperfile_config_help + *n,
                 sizeof hyperfile_config_help - *n, fmt, ap);
  va_end (ap);
  if (w < 0 || (size_t) w >= sizeof hyperfile_config_help - *n)
    abort ();
  *n += w;
}

static void __attribute__ ((constructor))
hyperfile_make_config_help (void)
{
  size_t n = 0, col, i;

  for (i = 0; i < sizeof hyperfile_params / sizeof hyperfile_params[0];
       i++) {
    const struct hyperfile_param *p = &hyperfile_params[i];
    const char *h, *nl;

    col = n;
    if (i == 0)                 /* the magic parameter: [url=]VALUE */
      hyperfile_help_add (&n, "[%s=]%s", p->key, p->meta);
    else
      hyperfile_help_add (&n, "%s=%s", p->key, p->meta);
    col = n - col;
    for (h = p->help; h; h = nl ? nl + 1 : NULL) {
      nl = strchr (h, '\n');
      hyperfile_help_add (&n, "%*s%.*s\n", col < 24 ? (int) (24 - col) : 2,
                          "", nl ? (int) (nl - h) : (int) strlen (h), h);
      col = 0;
    }
  }
  hyperfile_config_help[n - 1] = '\0';       /* nbdkit adds the last \n */
}

/* Turn at= into the seq to open (hf_opts.at_seq).  A TIMESTAMP is the
 * newest point at or before it on the head's chain (read beside a live
 * writer, so it is the head at startup), a SNAPSHOT its snap/ object. */
static int
hyperfile_resolve_at (const struct hf_volume_info *vi)
{
  struct hf_history *h;
  uint64_t seq;
  int r;

  r = hf_history_open (hf_store, hf_prefix, &hf_s3, &h);
  if (r == 0) {
    r = hf_history_resolve (h, hf_at, false, &seq);
    hf_history_close (h);
  }
  if (r)
    return -1;                  /* history logged why */
  if (seq > vi->head_seq) {
    nbdkit_error ("%s: at=%s is out of range: the newest point is %"
                  PRIu64, hf_url, hf_at, vi->head_seq);
    return -1;
  }
  nbdkit_debug ("at=%s is segment %" PRIu64, hf_at, seq);
  hf_opts.at_seq = seq;
  return 0;
}

/* Check a local directory parameter (cache=, wal=): create it if
 * missing, refuse a symlink or a directory others can write
 * (localdir.h), and refuse now, not after the fork, if another server
 * holds its lock file (hyperfile-format(5): CACHE FILES, WAL RECORDS).
 * The owner takes the lock for real in .after_fork. */
static int
hyperfile_check_local_dir (const char *param, const char *dir,
                           const char *lockname)
{
  CLEANUP_CLOSE int dfd = -1;
  int fd;

  if (hf_localdir_open (param, dir, &dfd) != 0)
    return -1;                  /* logged why */
  if (faccessat (dfd, ".", W_OK | X_OK, AT_EACCESS) == -1) {
    nbdkit_error ("%s=%s: %m", param, dir);
    return -1;
  }
  fd = hf_localdir_openat (dfd, lockname, O_RDWR | O_CREAT);
  if (fd == -1) {
    nbdkit_error ("%s=%s: %s: %s", param, dir, lockname,
                  hf_localdir_strerror (errno));
    return -1;
  }
  if (flock (fd, LOCK_EX | LOCK_NB) == -1) {
    nbdkit_error ("%s=%s: in use by another process", param, dir);
    close (fd);
    return -1;
  }
  close (fd);                   /* releases the lock */
  return 0;
}

/* Bytes as "1.5 GiB" for messages, in buf. */
static const char *
hyperfile_human (uint64_t b, char *buf, size_t len)
{
  if (b >= (UINT64_C (1) << 30))
    snprintf (buf, len, "%.1f GiB", b / 1073741824.0);
  else
    snprintf (buf, len, "%.1f MiB", b / 1048576.0);
  return buf;
}

/* Disk space the files in dir already hold (all but skip), which they
 * keep using, so that a restart does not count them twice. */
static uint64_t
hyperfile_dir_allocated (int dfd, const char *skip)
{
  uint64_t sum = 0;
  struct dirent *e;
  struct stat st;
  DIR *d;
  int fd = dup (dfd);

  if (fd == -1 || (d = fdopendir (fd)) == NULL) {
    if (fd != -1)
      close (fd);
    return 0;
  }
  while ((e = readdir (d)) != NULL)
    if (strcmp (e->d_name, skip) != 0 &&
        fstatat (dfd, e->d_name, &st, AT_SYMLINK_NOFOLLOW) == 0 &&
        S_ISREG (st.st_mode))
      sum += (uint64_t) st.st_blocks * 512;
  closedir (d);
  return sum;
}

/* One local directory's claim on its file system. */
struct hyperfile_space {
  const char *param, *dir, *size_param;
  uint64_t want;                /* bytes it will use at most */
  uint64_t held;                /* of which its files hold already */
  uint64_t avail;               /* free on its file system */
  dev_t dev;
};

static int
hyperfile_space_stat (struct hyperfile_space *sp, const char *lockname)
{
  CLEANUP_CLOSE int dfd = -1;
  struct statvfs vfs;
  struct stat st;

  if (hf_localdir_open (sp->param, sp->dir, &dfd) != 0)
    return -1;                  /* logged why */
  if (fstatvfs (dfd, &vfs) == -1 || fstat (dfd, &st) == -1) {
    nbdkit_error ("%s=%s: statvfs: %m", sp->param, sp->dir);
    return -1;
  }
  sp->avail = (uint64_t) vfs.f_bavail * vfs.f_frsize;
  sp->dev = st.st_dev;
  sp->held = hyperfile_dir_allocated (dfd, lockname);
  if (sp->held > sp->want)
    sp->held = sp->want;
  return 0;
}

static int
hyperfile_space_short (const struct hyperfile_space *sp)
{
  char want[32], need[32], have[32];

  if (sp->want - sp->held <= sp->avail)
    return 0;
  nbdkit_error ("%s=%s: %s=%s needs %s more free space but its file "
                "system has %s: give a smaller %s= or free some space",
                sp->param, sp->dir, sp->size_param,
                hyperfile_human (sp->want, want, sizeof want),
                hyperfile_human (sp->want - sp->held, need, sizeof need),
                hyperfile_human (sp->avail, have, sizeof have),
                sp->size_param);
  return -1;
}

/* Refuse now a cache or log whose file system cannot hold cache-size or
 * wal-size (the defaults when not given): after the fork the server
 * would start and then fail each write to them (the cache file is
 * sparse, the log preallocates file by file). */
static int
hyperfile_check_space (void)
{
  struct hyperfile_space c = { .param = "cache", .dir = hf_cache_dir,
                               .size_param = "cache-size" };
  struct hyperfile_space w = { .param = "wal", .dir = hf_wal_dir,
                               .size_param = "wal-size" };
  bool use_wal = hf_wal_dir && !hf_opts.readonly;

  c.want = hf_cache_size ? hf_cache_size : UINT64_C (1) << 30;
  c.want += HF_CACHE_TABLES_MAX (c.want);       /* its table files */
  w.want = hf_opts.wal_max_bytes ? hf_opts.wal_max_bytes
                                 : UINT64_C (1) << 30;
  if (hf_cache_dir && hyperfile_space_stat (&c, "cache.lock") == -1)
    return -1;
  if (use_wal && hyperfile_space_stat (&w, "wal.lock") == -1)
    return -1;
  if (hf_cache_dir && hyperfile_space_short (&c) == -1)
    return -1;
  if (use_wal && hyperfile_space_short (&w) == -1)
    return -1;
  if (hf_cache_dir && use_wal && c.dev == w.dev &&
      (c.want - c.held) + (w.want - w.held) > c.avail) {
    char need[32], have[32];

    nbdkit_error ("cache=%s and wal=%s share a file system: cache-size= "
                  "and wal-size= together need %s more free space but it "
                  "has %s: give smaller sizes, put them on different file "
                  "systems or free some space", c.dir, w.dir,
                  hyperfile_human ((c.want - c.held) + (w.want - w.held),
                                   need, sizeof need),
                  hyperfile_human (c.avail, have, sizeof have));
    return -1;
  }
  return 0;
}

/* Open the store and check the volume against the parameters.  Opens
 * the volume read-only briefly (no lease, no writes) to read its state. */
static int
hyperfile_get_ready_checks (void)
{
  /* With at= a damaged or lost newest segment does not stop us: at= is
   * the way to read the older points then (the open warns). */
  struct hf_volume_options ro = { .readonly = true,
                                  .node_cache = 64,
                                  .at_seq = 0,
                                  .accept_older_head = hf_at != NULL,
                                  .parent_cfg = &hf_s3 };
  struct hf_file_ext ext = { .s3 = &hf_s3, .vopts = &ro };
  struct hf_file_options fo;
  struct hf_volume_info vi;
  struct hf_file *probe;
  int r;

  hf_file_options_init (&fo);
  fo.flags = HF_FILE_READONLY;

  /* The cache and the log open in .after_fork; catch a bad directory
   * now. */
  if (hf_cache_dir &&
      hyperfile_check_local_dir ("cache", hf_cache_dir, "cache.lock") == -1)
    return -1;
  if (hf_wal_dir && !hf_opts.readonly &&
      hyperfile_check_local_dir ("wal", hf_wal_dir, "wal.lock") == -1)
    return -1;
  if (hyperfile_check_space () == -1)
    return -1;

  /* The metrics file is replaced by rename: its directory must take a
   * new file. */
  if (hf_metrics) {
    char tmp[4096];
    int fd;

    if (snprintf (tmp, sizeof tmp, "%s.tmp.XXXXXX", hf_metrics)
        >= (int) sizeof tmp) {
      nbdkit_error ("metrics=%s: name too long", hf_metrics);
      return -1;
    }
    fd = mkstemp (tmp);
    if (fd == -1) {
      nbdkit_error ("metrics=%s: cannot create a file there: %m",
                    hf_metrics);
      return -1;
    }
    close (fd);
    unlink (tmp);
  }

  /* A missing directory without size= deserves one line saying what
   * to do, not the store's "No such file or directory" as well. */
  hf_log_held[0] = '\0';
  hf_log_hold = true;
  r = hf_objstore_open_url (hf_url, &hf_s3, hf_size > 0, &hf_store,
                            &hf_prefix);
  hf_log_hold = false;
  if (r == ENOENT && hf_size <= 0) {
    nbdkit_error ("%s: no volume there; add size=SIZE to create one",
                  hf_url);
    return -1;
  }
  if (hf_log_held[0])
    nbdkit_error ("%s", hf_log_held);
  if (r)
    return -1;                  /* the store said why */
  if (strncmp (hf_url, "s3://", 5) == 0 &&
      hf_objstore_s3_check (hf_store) != 0)
    return -1;
  /* Testing hook (tests/test-nbd-torn-crash.sh), like the log's
   * HF_WAL_TEST_FAIL_SYNC: HF_TEST_TORN_PUT=N stores only a prefix of
   * this process's N-th segment upload and SIGKILLs it, as when a server
   * dies mid-PUT and the store keeps the truncated body. */
  {
    const char *e = getenv ("HF_TEST_TORN_PUT");

    if (e && *e) {
      struct hf_fault_config fc = { .torn_nth = strtoull (e, NULL, 10),
                                    .torn_key = "seg/",
                                    .torn_kill = true };
      struct hf_objstore *f;

      if (fc.torn_nth == 0 || hf_objstore_fault_open (hf_store, &fc, &f)) {
        nbdkit_error ("HF_TEST_TORN_PUT=%s: not a positive number", e);
        return -1;
      }
      hf_store = f;
      nbdkit_debug ("HF_TEST_TORN_PUT: segment upload %" PRIu64
                    " will be torn", fc.torn_nth);
    }
  }
  /* Benchmark hook (bench/run's slow-store workloads): HF_TEST_STORE_BW
   * =SIZE caps the store's PUT bandwidth at SIZE bytes per second, a
   * store slower than its clients (the fault store's put_bw). */
  {
    const char *e = getenv ("HF_TEST_STORE_BW");

    if (e && *e) {
      int64_t bw = nbdkit_parse_size (e);
      struct hf_fault_config fc = { .put_bw = bw > 0 ? (uint64_t) bw : 0 };
      struct hf_objstore *f;

      if (bw <= 0 || hf_objstore_fault_open (hf_store, &fc, &f)) {
        nbdkit_error ("HF_TEST_STORE_BW=%s: not a positive size", e);
        return -1;
      }
      hf_store = f;
      nbdkit_debug ("HF_TEST_STORE_BW: PUTs capped at %" PRIi64 " bytes/s",
                    bw);
    }
  }

  /* An encrypted volume: everything but the descriptor goes through
   * the crypt store, under the data key the user's key unwraps
   * (refused here, before anything is written, without the right key). */
  if (hf_crypt_attach (&hf_store, hf_prefix,
                       hf_have_ukey ? &hf_ukey : NULL) != 0)
    return -1;                  /* logged which volume and why */

  /* Look for the descriptor first, so a new volume is not an error. */
  {
    struct hf_objstore_info oi;
    char key[HF_OBJSTORE_KEY_MAX + 1];

    snprintf (key, sizeof key, "%svolume", hf_prefix);
    r = hf_objstore_head (hf_store, key, &oi);
    if (r && r != ENOENT)
      return -1;                /* the store logged why */
  }
  ext.store = hf_store;
  ext.prefix = hf_prefix;
  if (r == 0)
    r = hf_file_open_ext (hf_url, &fo, &ext, &probe);
  if (r == ENOENT) {
    if (hf_size <= 0) {
      nbdkit_error ("%s: no volume there; add size=SIZE to create one",
                    hf_url);
      return -1;
    }
    if (hf_at) {
      nbdkit_error ("%s: no volume there to open at=%s", hf_url, hf_at);
      return -1;
    }
    r = hf_volume_create_codec (hf_store, hf_prefix, hf_size, hf_block_size,
                                hf_have_ukey ? &hf_ukey : NULL, hf_codec,
                                hf_codec_level);
    if (r && r != EEXIST) {
      nbdkit_error ("%s: could not create the volume: %s", hf_url,
                    strerror (r));
      return -1;
    }
    if (hf_crypt_attach (&hf_store, hf_prefix,
                         hf_have_ukey ? &hf_ukey : NULL) != 0)
      return -1;
    nbdkit_debug ("created volume %s of %" PRIi64 " bytes", hf_url,
                  hf_size);
    ext.store = hf_store;       /* hf_crypt_attach may have wrapped it */
    r = hf_file_open_ext (hf_url, &fo, &ext, &probe);
  }
  if (r)
    return -1;                  /* the open logged why */
  hf_volume_get_info (hf_file_volume (probe), &vi);
  hf_file_close (probe);            /* read-only: nothing to commit */
  hf_vinfo = vi;
  /* The volume rounds its size up to whole blocks.  A larger size= is
   * a grow, done by the writer once it holds the lease; a server never
   * shrinks (its clients could still address the end). */
  if (hf_size > 0) {
    uint64_t want = ((uint64_t) hf_size + vi.block_size - 1)
      / vi.block_size * vi.block_size;

    if (want < vi.size) {
      nbdkit_error ("%s: size=%" PRIi64 " is smaller than the existing "
                    "volume's size %" PRIu64 ": a server never shrinks "
                    "a volume (omit size= to use it; hyperfile resize "
                    "--force shrinks it offline)", hf_url, hf_size,
                    vi.size);
      return -1;
    }
    if (want > vi.size && hf_opts.readonly) {
      nbdkit_error ("%s: size=%" PRIi64 " is larger than the volume "
                    "(%" PRIu64 " bytes), and a read-only server cannot "
                    "grow it (omit size=, or serve it writable)", hf_url,
                    hf_size, vi.size);
      return -1;
    }
    hf_grow_to = want > vi.size ? want : 0;
  }
  if (hf_block_size && hf_block_size != vi.block_size) {
    nbdkit_error ("%s: block-size=%" PRIu32 " disagrees with the existing "
                  "volume's block size %" PRIu32, hf_url, hf_block_size,
                  vi.block_size);
    return -1;
  }
  if (hf_compress &&
      (hf_codec != vi.codec || hf_codec_level != vi.codec_level)) {
    char cur[32] = "off";

    if (vi.codec)
      snprintf (cur, sizeof cur, "zstd:%d", vi.codec_level);
    nbdkit_error ("%s: compress=%s disagrees with the existing volume's "
                  "compression (%s; it is chosen at create)", hf_url,
                  hf_compress, cur);
    return -1;
  }
  if (hf_at)
    return hyperfile_resolve_at (&vi);
  /* A writer: refuse now if another holds the lease, before nbdkit
   * makes its socket (after the fork the failure costs a full open and
   * leaves the socket file; hyperfile_start_wait reports it).  The claim
   * itself stays in .after_fork (hf_file_open_ext). */
  if (!hf_opts.readonly &&
      hf_lease_probe (hf_store, hf_prefix, hf_opts.takeover,
                      hf_opts.break_lease) != 0)
    return -1;                  /* logged who holds it */
  /* Likewise a log directory holding another volume's log (wal= shared
   * by mistake): the open after the fork would refuse it. */
  if (hf_wal_dir && !hf_opts.readonly &&
      hf_wal_check (hf_wal_dir, vi.uuid) != 0)
    return -1;                  /* logged whose log it is */
  return 0;
}

/* In the daemonising parent's exit (atexit, registered by .get_ready):
 * wait for the child's start status and exit 1 if it failed to open
 * the volume, printing what it logged (nbdkit sent it to syslog), or
 * how it ended if it died before it reported (killed, or crashed: the
 * pipe closes with nothing in it).  Only in the process that loaded the
 * plugin, only if a child exists (nbdkit --run's parent has reaped its
 * server by now, and a failure before any fork has none), and only if
 * .after_fork did not run here (-f, -s, socket activation: no
 * daemonising fork). */
static void
hyperfile_start_wait (void)
{
  char buf[sizeof hf_start_msg + 1], *p, *nl, how[64] = "";
  size_t got = 0;
  ssize_t n;
  pid_t pid;
  int status;

  if (getpid () != hf_load_pid || hf_start_pipe[0] == -1)
    return;
  /* (The server may be dead already: this reaps it.) */
  pid = waitpid (-1, &status, WNOHANG);
  if (pid == -1 && errno == ECHILD)
    return;
  close (hf_start_pipe[1]);
  while (got < sizeof buf - 1 &&
         ((n = read (hf_start_pipe[0], buf + got, sizeof buf - 1 - got)) > 0
          || (n == -1 && errno == EINTR)))
    if (n > 0)
      got += n;
  buf[got] = '\0';
  if (got > 0 && buf[0] == '0')
    return;                     /* the server is up */
  for (p = buf + 1; got > 1 && *p; p = nl + 1) {
    if ((nl = strchr (p, '\n')) == NULL)
      nl = p + strlen (p) - 1;
    fprintf (stderr, "nbdkit: hyperfile: error: %.*s\n", (int) (nl - p), p);
  }
  /* Wait until it is gone, so that no server is left when we report
   * failure (bounded: 30 s), and say how it ended if it did not say. */
  for (n = 0; pid <= 0 && n < 300; n++) {
    pid = waitpid (-1, &status, WNOHANG);
    if (pid == 0)
      nanosleep (&(struct timespec) { .tv_nsec = 100000000 }, NULL);
  }
  if (got == 0 && pid > 0 && WIFSIGNALED (status))
    snprintf (how, sizeof how, "was killed by signal %d (%s)",
              WTERMSIG (status), strsignal (WTERMSIG (status)));
  else if (got == 0 && pid > 0 && WIFEXITED (status))
    snprintf (how, sizeof how, "exited with status %d",
              WEXITSTATUS (status));
  if (how[0])
    fprintf (stderr, "nbdkit: hyperfile: error: the server in the "
             "background %s before it opened %s (see syslog)\n", how,
             hf_url);
  else
    fprintf (stderr, "nbdkit: hyperfile: error: the server in the "
             "background failed to open %s and has exited%s\n", hf_url,
             got == 0 ? " (see syslog)" : "");
  _exit (EXIT_FAILURE);
}

static int
hyperfile_get_ready (void)
{
  static bool registered;

  if (hyperfile_get_ready_checks () == -1)
    return -1;
  if (pipe2 (hf_start_pipe, O_CLOEXEC) == -1) {
    nbdkit_error ("pipe2: %m");
    return -1;
  }
  if (!registered && atexit (hyperfile_start_wait) != 0) {
    nbdkit_error ("atexit: cannot register the start check");
    return -1;
  }
  registered = true;
  return 0;
}

/* ---- metrics ---- */

/* The volume label of every series: volume="URL", with backslash,
 * double quote and newline escaped as the text format requires. */
static void
hyperfile_volume_label (char *out, size_t len)
{
  size_t n = 0;
  const char *p;

  n += snprintf (out, len, "volume=\"");
  for (p = hf_url; *p && n + 4 < len; p++) {
    if (*p == '\\' || *p == '"')
      out[n++] = '\\', out[n++] = *p;
    else if (*p == '\n')
      out[n++] = '\\', out[n++] = 'n';
    else
      out[n++] = *p;
  }
  out[n++] = '"';
  out[n] = '\0';
}

/* Write every series once, each with the volume="URL" label, so that
 * the files of several servers can share one node_exporter textfile
 * directory. */
static void
hyperfile_write_metrics (FILE *fp)
{
  static const char *const ops[HF_OP__MAX] = {
    "get", "head", "put", "delete", "list", "session"
  };
  struct hf_objstore_stats st;
  struct hf_volume_info vi;
  char vl[8192];
  int i;

  hyperfile_volume_label (vl, sizeof vl);
  hf_objstore_get_stats (hf_store, &st);
  hf_volume_get_info (hf_file_volume (hf_handle), &vi);
#define HF_HEAD(name, type, help)                                       \
  fprintf (fp, "# HELP hyperfile_" name " " help "\n# TYPE hyperfile_"   \
           name " " type "\n")
  HF_HEAD ("build_info", "gauge", "The plugin's version (always 1).");
  fprintf (fp, "hyperfile_build_info{%s,version=\"%s\"} 1\n", vl,
           PACKAGE_VERSION);
  HF_HEAD ("store_requests_total", "counter",
           "Requests sent to the object store.");
  for (i = 0; i < HF_OP__MAX; i++)
    fprintf (fp, "hyperfile_store_requests_total{%s,op=\"%s\"} %" PRIu64
             "\n", vl, ops[i], st.requests[i]);
  HF_HEAD ("store_errors_total", "counter",
           "Failed store request attempts.");
  for (i = 0; i < HF_OP__MAX; i++)
    fprintf (fp, "hyperfile_store_errors_total{%s,op=\"%s\"} %" PRIu64
             "\n", vl, ops[i], st.errors[i]);
  HF_HEAD ("store_errors_by_kind_total", "counter", "Failed store request "
           "attempts by kind (timeout, auth, not_found, conflict, invalid, "
           "corrupt, io: server errors, throttling and connections, "
           "other).");
  for (i = 0; i < HF_EK__MAX; i++)
    fprintf (fp, "hyperfile_store_errors_by_kind_total{%s,kind=\"%s\"} %"
             PRIu64 "\n", vl, hf_objstore_errkind_name (i),
             st.errors_kind[i]);
  HF_HEAD ("store_latency_seconds_total", "counter",
           "Sum of store request latencies.");
  for (i = 0; i < HF_OP__MAX; i++)
    fprintf (fp, "hyperfile_store_latency_seconds_total{%s,op=\"%s\"} "
             "%.6f\n", vl, ops[i], st.latency_us[i] / 1e6);
#define HF_M(name, type, help, val)                                      \
  (HF_HEAD (name, type, help),                                           \
   fprintf (fp, "hyperfile_" name "{%s} %" PRIu64 "\n", vl,              \
            (uint64_t) (val)))
#define HF_MF(name, type, help, val)                                     \
  (HF_HEAD (name, type, help),                                           \
   fprintf (fp, "hyperfile_" name "{%s} %.6f\n", vl, (double) (val)))
  HF_M ("store_retries_total", "counter", "Store requests retried.",
        st.retries);
  HF_M ("store_bytes_in_total", "counter", "Bytes read from the store.",
        st.bytes_in);
  HF_M ("store_bytes_out_total", "counter", "Bytes written to the store.",
        st.bytes_out);
  HF_M ("size_bytes", "gauge", "Volume size.", vi.size);
  HF_M ("head_seq", "gauge", "Newest committed segment.", vi.head_seq);
  HF_M ("checkpoint_seq", "gauge", "Segment of the newest checkpoint.",
        vi.ckpt_seq);
  HF_M ("mapped_blocks", "gauge", "Mapped blocks in the index as of the "
        "newest checkpoint.", vi.mapped_blocks);
  HF_M ("segments_committed_total", "counter",
        "Segments committed by this server.", vi.segments_committed);
  if (vi.last_commit_ns)
    HF_MF ("last_commit_timestamp_seconds", "gauge", "When this server "
           "last committed a segment (Unix time).",
           vi.last_commit_ns / 1e9);
  HF_M ("checkpoints_total", "counter", "Checkpoints written.",
        vi.checkpoints_written);
  HF_M ("dirty_bytes", "gauge", "Data buffered or uploading, not yet "
        "committed to the store.", vi.dirty_bytes);
  HF_M ("uploads_in_flight", "gauge", "Segments sealed and not yet "
        "committed (the upload backlog).", vi.uploads_in_flight);
  HF_M ("dirty_waits_total", "counter", "Writes that waited because "
        "dirty-limit was reached (the store is slower than the writes).",
        vi.dirty_waits);
  HF_M ("paced_writes_total", "counter", "Writes delayed by pacing as "
        "dirty data neared dirty-limit.", vi.paced_writes);
  HF_MF ("paced_seconds_total", "counter", "The delays pacing gave "
         "those writes, in all.", vi.paced_us / 1e6);
  HF_M ("pace_drain_bytes_per_second", "gauge", "Pacing's estimate of "
        "the rate uploads drain dirty data.", vi.pace_rate);
  HF_M ("client_written_bytes_total", "counter", "Bytes written by "
        "clients.", vi.bytes_written);
  HF_M ("client_read_bytes_total", "counter", "Bytes read by clients.",
        vi.bytes_read);
  HF_M ("uploaded_data_bytes_total", "counter", "Data block bytes in "
        "committed segments.", vi.data_bytes_uploaded);
  HF_M ("uploaded_meta_bytes_total", "counter", "Metadata bytes in "
        "committed segments.", vi.meta_bytes_uploaded);
  HF_M ("frame_table_gets_total", "counter", "Compressed segments' frame "
        "tables read from the store (each a GET before the read that "
        "needed it).", vi.frame_table_gets);
  HF_M ("frame_table_local_total", "counter", "Compressed segments' frame "
        "tables read from the local cache's table files instead.",
        vi.frame_table_local);
  HF_M ("stored_data_bytes_total", "counter", "Bytes the data blocks of "
        "committed segments take in the store: less than "
        "uploaded_data_bytes_total when compressed, equal when not.", vi.data_bytes_stored);
  HF_M ("cache_hits_total", "counter", "Block cache hits.", vi.cache_hits);
  HF_M ("cache_misses_total", "counter", "Block cache misses.",
        vi.cache_misses);
  HF_M ("cache_skipped_segments_total", "counter", "Committed segments "
        "left out of the cache (its insert queue was full).",
        vi.cache_skipped);
  if (vi.cache_hits + vi.cache_misses)
    HF_MF ("cache_hit_ratio", "gauge", "Block cache hits over lookups "
           "since the server started.",
           (double) vi.cache_hits / (vi.cache_hits + vi.cache_misses));
  if (vi.wal) {
    HF_M ("wal_used_bytes", "gauge", "Write-ahead log bytes not yet "
          "released (their segments have not committed).",
          vi.wal_bytes_live);
    HF_M ("wal_limit_bytes", "gauge", "Write-ahead log space (wal-size); "
          "writers wait when it is used up.",
          hf_opts.wal_max_bytes ? hf_opts.wal_max_bytes
                                : UINT64_C (1) << 30);
    HF_M ("wal_appends_total", "counter", "Write-ahead log records "
          "appended.", vi.wal_appends);
    HF_M ("wal_writes_total", "counter", "Writes of write-ahead log "
          "records (records appended at the same time share one).",
          vi.wal_writes);
    HF_M ("wal_syncs_total", "counter", "fdatasyncs of the write-ahead log "
          "(group commit: one per batch of flushes).", vi.wal_syncs);
    HF_M ("wal_sync_requests_total", "counter", "Flushes and FUA writes "
          "that waited for a log sync.", vi.wal_sync_waiters);
    HF_M ("wal_full_waits_total", "counter", "Writes that waited because "
          "the log was full.", vi.wal_waits);
    HF_M ("wal_replayed_records", "gauge", "Log records replayed at open.",
          vi.wal_replayed);
  }
  if (hf_file_cache (hf_handle)) {
    struct hf_cache_stats cs;

    hf_cache_get_stats (hf_file_cache (hf_handle), &cs);
    HF_M ("local_cache_inserts_total", "counter", "Blocks put in the local "
          "cache.", cs.inserts);
    HF_M ("local_cache_evictions_total", "counter", "Blocks evicted from "
          "the local cache.", cs.evictions);
    HF_M ("local_cache_corrupt_total", "counter", "Damaged local cache "
          "entries dropped.", cs.corrupt);
    HF_M ("local_cache_used_bytes", "gauge", "Local cache bytes in use.",
          cs.bytes_used);
    HF_M ("local_cache_max_bytes", "gauge", "Local cache capacity.",
          cs.bytes_max);
    HF_M ("local_cache_tables_used_bytes", "gauge", "Bytes of compressed "
          "segments' frame tables kept in the local cache.",
          cs.tables_used);
    HF_M ("local_cache_tables_max_bytes", "gauge", "Their budget.",
          cs.tables_max);
  }
  if (!vi.readonly) {
    struct timespec now;

    clock_gettime (CLOCK_REALTIME, &now);
    HF_M ("lease_epoch", "gauge", "This writer's lease epoch.",
          vi.lease_epoch);
    HF_M ("lease_renewals_total", "counter", "Writer lease renewals.",
          vi.lease_renewals);
    HF_M ("lease_renewal_failures_total", "counter", "Writer lease "
          "renewals that failed (the writer is fenced when they keep "
          "failing).", vi.lease_renew_failures);
    HF_MF ("lease_age_seconds", "gauge", "Time since the lease was last "
           "acquired or renewed.",
           (now.tv_sec + now.tv_nsec / 1e9) - vi.lease_renewed_ns / 1e9);
  }
  HF_M ("node_cache_nodes", "gauge", "B+tree nodes in memory.",
        vi.node_cache_nodes);
  HF_M ("fenced", "gauge", "1 if another writer took over.", vi.fenced);
#undef HF_M
#undef HF_MF
#undef HF_HEAD
}

/* Write the metrics file atomically: a 0600 temp file, then rename. */
static void
hyperfile_metrics_once (void)
{
  char tmp[4096];
  FILE *fp;
  int fd;

  snprintf (tmp, sizeof tmp, "%s.tmp.XXXXXX", hf_metrics);
  fd = mkstemp (tmp);
  if (fd == -1) {
    nbdkit_debug ("metrics: %s: %m", tmp);
    return;
  }
  fp = fdopen (fd, "w");
  if (fp == NULL) {
    close (fd);
    unlink (tmp);
    return;
  }
  hyperfile_write_metrics (fp);
  fchmod (fd, 0644);            /* readable by a node exporter */
  if (fclose (fp) == EOF || rename (tmp, hf_metrics) == -1) {
    nbdkit_debug ("metrics: %s: %m", hf_metrics);
    unlink (tmp);
  }
}

static void *
hyperfile_metrics_loop (void *arg)
{
  struct timespec ts;

  pthread_mutex_lock (&hf_metrics_lock);
  while (!hf_metrics_stop) {
    pthread_mutex_unlock (&hf_metrics_lock);
    hyperfile_metrics_once ();
    pthread_mutex_lock (&hf_metrics_lock);
    {
      uint64_t until = hf_clock_mono_us () + 5000000;
      ts.tv_sec = (time_t) (until / 1000000);
      ts.tv_nsec = (long) (until % 1000000) * 1000;
    }
    while (!hf_metrics_stop &&
           pthread_cond_timedwait (&hf_metrics_cond, &hf_metrics_lock,
                                   &ts) == 0)
      ;
  }
  pthread_mutex_unlock (&hf_metrics_lock);
  return NULL;
}


/* .after_fork failed, and nbdkit will exit.  Under --run its parent
 * (server/captive.c in nbdkit 1.32) holds the listening sockets open
 * while it runs the command, so the command's client would wait for ever
 * in the socket's queue for a handshake that never comes.  The sockets
 * are shared with the parent: shutting them down here refuses every
 * later connection, and the connections already queued are closed, so
 * the client fails at once and --run ends.  nbdkit's listening sockets
 * are this process's only ones (SO_ACCEPTCONN). */
static void
hyperfile_stop_listening (void)
{
  DIR *d = opendir ("/proc/self/fd");
  struct dirent *e;

  if (d == NULL)
    return;
  while ((e = readdir (d)) != NULL) {
    int fd = atoi (e->d_name), on = 0, c;
    socklen_t len = sizeof on;
    struct pollfd pfd;

    if (e->d_name[0] < '0' || e->d_name[0] > '9' || fd == dirfd (d) ||
        getsockopt (fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len) == -1 || !on)
      continue;
    nbdkit_debug ("after_fork failed: closing listening socket %d", fd);
    shutdown (fd, SHUT_RDWR);
    pfd.fd = fd;
    pfd.events = POLLIN;
    while (poll (&pfd, 1, 0) == 1 && (pfd.revents & POLLIN) &&
           (c = accept4 (fd, NULL, NULL, SOCK_CLOEXEC)) >= 0)
      close (c);
  }
  closedir (d);
}

static int hyperfile_open_volume (void);

/* Testing hook (tests/test-nbd-startup.sh), like HF_TEST_TORN_PUT:
 * HF_TEST_DIE_IN_OPEN=kill (SIGKILL) or =exit (_exit (3)) ends the
 * server in .after_fork before it opens the volume or reports, as a
 * server killed or crashing in its open: the daemonising parent must
 * then exit 1 saying so, not 0 (nor wait). */
static void
hyperfile_test_die_in_open (void)
{
  const char *e = getenv ("HF_TEST_DIE_IN_OPEN");

  if (e == NULL || *e == '\0')
    return;
  if (strcmp (e, "kill") == 0)
    raise (SIGKILL);
  if (strcmp (e, "exit") == 0)
    _exit (3);
  nbdkit_error ("HF_TEST_DIE_IN_OPEN=%s: not kill or exit", e);
}

static int
hyperfile_after_fork (void)
{
  bool child = getpid () != hf_load_pid;
  int r;

  /* In a forked child nbdkit sends errors to syslog (daemon mode, even
   * with -v): keep them for the parent to print (under --run, where
   * they reach stderr, the parent does not read them). */
  if (child) {
    pthread_mutex_lock (&hf_start_lock);
    hf_start_capture = true;
    pthread_mutex_unlock (&hf_start_lock);
  }
  hyperfile_test_die_in_open ();
  r = hyperfile_open_volume ();
  if (r == -1)
    hyperfile_stop_listening ();
  if (hf_start_pipe[0] != -1) {
    char st0 = r == -1 ? '1' : '0';

    close (hf_start_pipe[0]);
    if (child) {
      pthread_mutex_lock (&hf_start_lock);
      hf_start_capture = false;
      if (write (hf_start_pipe[1], &st0, 1) == 1 && r == -1 &&
          hf_start_msg[0] &&
          write (hf_start_pipe[1], hf_start_msg, strlen (hf_start_msg)) == -1) {
        /* the parent prints its own line */
      }
      pthread_mutex_unlock (&hf_start_lock);
    }
    close (hf_start_pipe[1]);
    hf_start_pipe[0] = hf_start_pipe[1] = -1;
  }
  return r;
}

/* Open the volume for real: the cache, the log, the writer lease, the
 * engine's threads, metrics and background GC.  What can be checked
 * before the fork was (.get_ready); what fails here is a race with
 * another writer or a store that refuses what a writer must do. */
static int
hyperfile_open_volume (void)
{
  /* The cache's io_uring rings and lock, and the log's, must belong to
   * this process, so the handle is opened here, not in .get_ready; on
   * the store .get_ready opened and checked, with the uuid and block
   * size it read. */
  struct hf_file_ext ext = { .store = hf_store, .prefix = hf_prefix,
                             .s3 = &hf_s3, .vopts = &hf_opts,
                             .known = &hf_vinfo };
  struct hf_file_options fo;
  int r;

  hf_file_options_init (&fo);
  fo.flags = hf_opts.readonly ? HF_FILE_READONLY : 0;
  fo.wal_dir = hf_wal_dir;      /* the volume opens it (and its ring) */
  fo.cache_dir = hf_cache_dir;
  fo.cache_size = hf_cache_size;
  r = hf_file_open_ext (hf_url, &fo, &ext, &hf_handle);
  if (r)
    return -1;                  /* the open logged why */
  if (hf_grow_to) {
    struct hf_volume_info vi;

    /* Logged (WAL GROW record) and committed like a write; a replayed
     * log may have grown it already. */
    hf_volume_get_info (hf_file_volume (hf_handle), &vi);
    if (hf_grow_to > vi.size &&
        (r = hf_file_resize (hf_handle, hf_grow_to)) != 0) {
      hf_error ("%s: growing the volume from %" PRIu64 " to %" PRIu64
                " bytes (size=): %s", hf_url, vi.size, hf_grow_to,
                strerror (r));
      return -1;
    }
    if (hf_grow_to > vi.size)
      nbdkit_debug ("grew %s from %" PRIu64 " to %" PRIu64 " bytes",
                    hf_url, vi.size, hf_grow_to);
  }
  if (hf_metrics) {
    r = hf_clock_cond_init (&hf_metrics_cond);
    if (r == 0) {
      r = pthread_create (&hf_metrics_thread, NULL, hyperfile_metrics_loop,
                          NULL);
      if (r)
        pthread_cond_destroy (&hf_metrics_cond);
    }
    if (r) {
      hf_error ("pthread_create: %s", strerror (r));
      return -1;
    }
    hf_metrics_running = true;
  }
  if (hf_gc_on && !hf_opts.readonly) {
    /* Every gc-interval, collect and compact through the writer (gc.h
     * says why this is safe beside clients' writes, readers of old
     * points and other GCs). */
    hf_gc_opts.cfg = &hf_s3;
    r = hf_gc_sched_start (hf_store, hf_prefix, hf_file_volume (hf_handle),
                           &hf_gc_opts,
                           hf_gc_interval_ms, hf_url, &hf_gc_sched);
    if (r) {
      hf_error ("starting background gc: %s", strerror (r));
      return -1;
    }
  }
  return 0;
}

/* With -v, the counters when the server exits. */
static void
hyperfile_log_counters (void)
{
  static const char *const ops[HF_OP__MAX] = {
    "get", "head", "put", "delete", "list", "session"
  };
  struct hf_objstore_stats st;
  struct hf_volume_info vi;
  int i;

  hf_objstore_get_stats (hf_store, &st);
  hf_volume_get_info (hf_file_volume (hf_handle), &vi);
  for (i = 0; i < HF_OP__MAX; i++)
    if (st.requests[i] || st.errors[i])
      nbdkit_debug ("store %s: %s: %" PRIu64 " requests, %" PRIu64
                    " failed attempts, mean latency %.3f ms",
                    hf_objstore_describe (hf_store), ops[i],
                    st.requests[i], st.errors[i],
                    st.requests[i] + st.errors[i]
                    ? st.latency_us[i] / 1e3
                      / (st.requests[i] + st.errors[i]) : 0.0);
  nbdkit_debug ("store %s: %" PRIu64 " retries, %" PRIu64 " bytes in, %"
                PRIu64 " bytes out", hf_objstore_describe (hf_store),
                st.retries, st.bytes_in, st.bytes_out);
  nbdkit_debug ("volume: head %" PRIu64 ", segments committed %" PRIu64
                ", checkpoints %" PRIu64 ", written %" PRIu64 " read %"
                PRIu64 ", uploaded data %" PRIu64 " (stored %" PRIu64
                ") meta %" PRIu64 ", dirty %" PRIu64 ", uploads in flight %" PRIu64
                ", writes that waited for dirty-limit %" PRIu64
                ", cache hits %" PRIu64 " misses %" PRIu64,
                vi.head_seq, vi.segments_committed, vi.checkpoints_written,
                vi.bytes_written, vi.bytes_read, vi.data_bytes_uploaded,
                vi.data_bytes_stored, vi.meta_bytes_uploaded, vi.dirty_bytes, vi.uploads_in_flight,
                vi.dirty_waits, vi.cache_hits, vi.cache_misses);
  if (hf_file_cache (hf_handle)) {
    struct hf_cache_stats cs;

    hf_cache_get_stats (hf_file_cache (hf_handle), &cs);
    nbdkit_debug ("cache %s: %" PRIu64 " hits, %" PRIu64 " misses, %"
                  PRIu64 " inserts, %" PRIu64 " evictions, %" PRIu64
                  " damaged, %" PRIu64 " of %" PRIu64 " bytes used",
                  hf_cache_dir, cs.hits, cs.misses, cs.inserts,
                  cs.evictions, cs.corrupt, cs.bytes_used, cs.bytes_max);
  }
}

static void
hyperfile_cleanup (void)
{
  /* A run in progress stops at its next step; what it did is safe to
   * keep. */
  hf_gc_sched_stop (hf_gc_sched);
  hf_gc_sched = NULL;
  if (hf_metrics_running) {
    pthread_mutex_lock (&hf_metrics_lock);
    hf_metrics_stop = true;
    pthread_cond_signal (&hf_metrics_cond);
    pthread_mutex_unlock (&hf_metrics_lock);
    pthread_join (hf_metrics_thread, NULL);
    pthread_cond_destroy (&hf_metrics_cond);
    hf_metrics_running = false;
  }
  if (hf_handle) {
    int r;
    if (hf_metrics)
      hyperfile_metrics_once ();
    hyperfile_log_counters ();
    r = hf_file_close (hf_handle);      /* the volume, then its cache */
    hf_handle = NULL;
    if (r)
      nbdkit_error ("%s: closing the volume failed: %s; data not yet "
                    "committed is lost", hf_url, strerror (r));
    else
      nbdkit_debug ("%s: everything committed", hf_url);
  }
  hf_objstore_close (hf_store);        /* after the handle: it borrowed it */
  hf_store = NULL;
}

/* ---- per connection ---- */

static void *
hyperfile_open (int readonly)
{
  /* The volume is shared by every connection: flush is volume-wide,
   * which is what makes multi-conn safe. */
  return hf_handle;
}

static int64_t
hyperfile_get_size (void *handle)
{
  return hf_file_size (hf_handle);
}

static int
hyperfile_block_size (void *handle, uint32_t *minimum, uint32_t *preferred,
                      uint32_t *maximum)
{
  *minimum = 1;
  *preferred = hf_file_block_size (hf_handle);
  *maximum = 32 * 1024 * 1024;
  return 0;
}

static int
hyperfile_can_write (void *handle)
{
  return !hf_opts.readonly;
}

static int
hyperfile_can_true (void *handle)
{
  return 1;
}

static int
hyperfile_can_fua (void *handle)
{
  return NBDKIT_FUA_NATIVE;
}

static int
hyperfile_can_cache (void *handle)
{
  return NBDKIT_CACHE_NATIVE;
}

/* One place maps lib errors to what the client sees. */
static int
hyperfile_fail (int r)
{
  nbdkit_set_error (r == EBADMSG || r == ETIMEDOUT ? EIO : r);
  return -1;
}

static int
hyperfile_pread (void *handle, void *buf, uint32_t count, uint64_t offset,
                 uint32_t flags)
{
  int r = hf_file_pread (hf_handle, buf, count, offset);
  return r ? hyperfile_fail (r) : 0;
}

static int
hyperfile_pwrite (void *handle, const void *buf, uint32_t count,
                  uint64_t offset, uint32_t flags)
{
  int r = hf_file_pwrite (hf_handle, buf, count, offset,
                          flags & NBDKIT_FLAG_FUA ? HF_FILE_FUA : 0);
  return r ? hyperfile_fail (r) : 0;
}

static int
hyperfile_flush (void *handle, uint32_t flags)
{
  int r = hf_file_flush (hf_handle);
  return r ? hyperfile_fail (r) : 0;
}

static int
hyperfile_trim (void *handle, uint32_t count, uint64_t offset,
                uint32_t flags)
{
  int r = hf_file_trim (hf_handle, count, offset,
                        flags & NBDKIT_FLAG_FUA ? HF_FILE_FUA : 0);
  return r ? hyperfile_fail (r) : 0;
}

static int
hyperfile_zero (void *handle, uint32_t count, uint64_t offset,
                uint32_t flags)
{
  /* Zeroing unmaps whole blocks, so it is always fast. */
  int r = hf_file_zero (hf_handle, count, offset,
                        flags & NBDKIT_FLAG_FUA ? HF_FILE_FUA : 0);
  return r ? hyperfile_fail (r) : 0;
}

static int
hyperfile_add_extent (void *opaque, uint64_t offset, uint64_t length,
                      unsigned type)
{
  struct nbdkit_extents *extents = opaque;

  if (nbdkit_add_extent (extents, offset, length,
                         type == HF_FILE_EXTENT_HOLE
                         ? NBDKIT_EXTENT_HOLE | NBDKIT_EXTENT_ZERO
                         : 0) == -1)
    return errno ? errno : EIO;
  return 0;
}

static int
hyperfile_extents (void *handle, uint32_t count, uint64_t offset,
                   uint32_t flags, struct nbdkit_extents *extents)
{
  int r = hf_file_extents (hf_handle, count, offset, hyperfile_add_extent,
                           extents);
  return r ? hyperfile_fail (r) : 0;
}

static int
hyperfile_cache (void *handle, uint32_t count, uint64_t offset,
                 uint32_t flags)
{
  int r = hf_file_prefetch (hf_handle, count, offset);
  return r ? hyperfile_fail (r) : 0;
}

/* PARALLEL: the engine is thread safe, and reads of different blocks
 * must not wait for each other or for uploads. */
#define THREAD_MODEL NBDKIT_THREAD_MODEL_PARALLEL

static struct nbdkit_plugin plugin = {
  .name = "hyperfile",
  .longname = "hyperfile: a block device on S3",
  .version = PACKAGE_VERSION,
  .load = hyperfile_load,
  .unload = hyperfile_unload,
  .config = hyperfile_config,
  .config_complete = hyperfile_config_complete,
  .config_help = hyperfile_config_help,
  .magic_config_key = "url",
  .get_ready = hyperfile_get_ready,
  .after_fork = hyperfile_after_fork,
  .cleanup = hyperfile_cleanup,
  .open = hyperfile_open,
  .get_size = hyperfile_get_size,
  .block_size = hyperfile_block_size,
  .can_write = hyperfile_can_write,
  .can_flush = hyperfile_can_true,
  .can_fua = hyperfile_can_fua,
  .can_trim = hyperfile_can_true,
  .can_zero = hyperfile_can_true,
  .can_fast_zero = hyperfile_can_true,
  .can_extents = hyperfile_can_true,
  .can_multi_conn = hyperfile_can_true,
  .can_cache = hyperfile_can_cache,
  .pread = hyperfile_pread,
  .pwrite = hyperfile_pwrite,
  .flush = hyperfile_flush,
  .trim = hyperfile_trim,
  .zero = hyperfile_zero,
  .extents = hyperfile_extents,
  .cache = hyperfile_cache,
  .errno_is_preserved = 0,
};

NBDKIT_REGISTER_PLUGIN (plugin)
