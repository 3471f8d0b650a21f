/* hyperfile: libFuzzer harness for the plugin's parameter parsing
 * (hyperfile_config and hyperfile_config_complete in plugin/hyperfile.c,
 * compiled into this harness as they are).
 *
 * nbdkit's own helpers, which the plugin calls, are provided here with
 * the behaviour nbdkit documents (nbdkit_parse_size: a number with an
 * optional b, s, K, M, G, T, P or E suffix, no sign, no overflow;
 * nbdkit_parse_bool: 1, true, t, yes, y, on and 0, false, f, no, n, off
 * in any case; nbdkit_read_password: *password NULL first, then the
 * value itself, "+FILE" and "-FD" refused here because a harness must
 * not read files or stdin).
 *
 * Input: lines "key=value"; each is passed to .config in order, then
 * .config_complete runs.  Invariants: an accepted duration (retain,
 * gc-grace, gc-interval) of the form DIGITS[ms|s|m|h|d] is stored
 * exactly (never wrapped), and one too large to store is refused;
 * request-timeout is accepted exactly from 1s to 24h and kept in whole
 * seconds, rounded up. */
#include <config.h>

#include <ctype.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "../plugin/hyperfile.c"

#include "fuzz.h"

void
nbdkit_error (const char *fs, ...)
{
  (void) fs;
}

void
nbdkit_debug (const char *fs, ...)
{
  (void) fs;
}

void
nbdkit_set_error (int err)
{
  (void) err;
}

int64_t
nbdkit_parse_size (const char *str)
{
  static const char suffixes[] = "BSKMGTPE";
  static const int shifts[] = { 0, 9, 10, 20, 30, 40, 50, 60 };
  uint64_t v = 0;
  const char *p = str, *s;

  if (!isdigit ((unsigned char) *p))
    return -1;
  for (; isdigit ((unsigned char) *p); p++) {
    if (v > (UINT64_MAX - 9) / 10)
      return -1;
    v = v * 10 + (uint64_t) (*p - '0');
  }
  if (*p != '\0') {
    s = strchr (suffixes, toupper ((unsigned char) *p));
    if (p[1] != '\0' || s == NULL)
      return -1;
    if (v > (uint64_t) INT64_MAX >> shifts[s - suffixes])
      return -1;
    v <<= shifts[s - suffixes];
  }
  if (v > INT64_MAX)
    return -1;
  return (int64_t) v;
}

int
nbdkit_parse_bool (const char *str)
{
  if (!strcmp (str, "1") || !strcasecmp (str, "true") ||
      !strcasecmp (str, "t") || !strcasecmp (str, "yes") ||
      !strcasecmp (str, "y") || !strcasecmp (str, "on"))
    return 1;
  if (!strcmp (str, "0") || !strcasecmp (str, "false") ||
      !strcasecmp (str, "f") || !strcasecmp (str, "no") ||
      !strcasecmp (str, "n") || !strcasecmp (str, "off"))
    return 0;
  return -1;
}

int
nbdkit_read_password (const char *value, char **password)
{
  *password = NULL;             /* as nbdkit does, also on error */
  if (value[0] == '-' || value[0] == '+')
    return -1;
  *password = strdup (value);
  return *password ? 0 : -1;
}

int
nbdkit_add_extent (struct nbdkit_extents *e, uint64_t offset,
                   uint64_t length, uint32_t type)
{
  abort ();                     /* not reached from .config */
}

/* The exact value in ms of DIGITS[ms|s|m|h|d]: 1 and *ms, 0 if value is
 * not of that form, -1 if it is but does not fit in 64 bits. */
static int
model_duration_ms (const char *v, unsigned __int128 *ms)
{
  unsigned __int128 n = 0, mult;
  const char *p = v;

  if (!isdigit ((unsigned char) *p))
    return 0;
  for (; isdigit ((unsigned char) *p); p++) {
    n = n * 10 + (unsigned) (*p - '0');
    if (n > UINT64_MAX)
      return -1;
  }
  if (strcmp (p, "ms") == 0) mult = 1;
  else if (*p == '\0' || strcmp (p, "s") == 0) mult = 1000;
  else if (strcmp (p, "m") == 0) mult = 60000;
  else if (strcmp (p, "h") == 0) mult = 3600000;
  else if (strcmp (p, "d") == 0) mult = 86400000;
  else
    return 0;
  *ms = n * mult;
  return 1;
}

static void
check_duration (const char *key, const char *value, int accepted)
{
  unsigned __int128 ms, stored, want;
  int m = model_duration_ms (value, &ms);

  if (m == 0)
    return;
  if (strcmp (key, "retain") == 0) {
    stored = hf_gc_opts.retain_ns;
    want = ms * 1000000;
  }
  else if (strcmp (key, "gc-grace") == 0) {
    stored = hf_gc_opts.grace_ns;
    want = ms * 1000000;
  }
  else if (strcmp (key, "gc-interval") == 0) {
    stored = hf_gc_interval_ms;
    want = ms;
  }
  else if (strcmp (key, "request-timeout") == 0) {
    /* 1s to 24h, kept in whole seconds rounded up. */
    if (m < 0 || ms < 1000 || ms > 86400000)
      FUZZ_CHECK (!accepted);
    else
      FUZZ_CHECK (accepted && hf_s3.request_timeout_s == (ms + 999) / 1000);
    return;
  }
  else
    return;
  if (m < 0 || want > UINT64_MAX)
    FUZZ_CHECK (!accepted);     /* too large to keep: refused */
  else if (accepted)
    FUZZ_CHECK (stored == want);
}

/* The plugin's configuration as loaded, before any input: the structs
 * and scalars the parameters set go back to it between inputs, so that
 * no input depends on the ones before it. */
static struct {
  bool saved;
  struct hf_s3_config s3;
  struct hf_volume_options opts;
  struct hf_gc_options gc_opts;
  int64_t size;
  uint32_t block_size;
  uint64_t cache_size, gc_interval_ms;
  bool gc_on;
} fuzz_init;

static void
fuzz_config_save (void)
{
  if (fuzz_init.saved)
    return;
  fuzz_init.s3 = hf_s3;
  fuzz_init.opts = hf_opts;
  fuzz_init.gc_opts = hf_gc_opts;
  fuzz_init.size = hf_size;
  fuzz_init.block_size = hf_block_size;
  fuzz_init.cache_size = hf_cache_size;
  fuzz_init.gc_interval_ms = hf_gc_interval_ms;
  fuzz_init.gc_on = hf_gc_on;
  fuzz_init.saved = true;
}

/* Back to the plugin as loaded, for the next input.  EVERY POINTER that
 * a parameter sets (P_STR, P_DIR, P_FN in plugin/hyperfile.c's
 * hyperfile_params, and what .config_complete sets) must be cleared
 * here: a P_STR or P_DIR pointer points into the value that the caller
 * frees after this call, a P_FN one owns memory that hyperfile_unload
 * frees, and one left set is read by the next input (key-file= was
 * missed once: a use-after-free in this harness).  A new parameter that
 * stores a pointer outside hf_s3 and hf_opts (restored whole below)
 * needs its line here.  Today: url, secret-key, session-token, key
 * (hyperfile_unload frees and clears it), key-file, wal, cache, at,
 * metrics; hf_prefix; the key loaded from key-file= or key=. */
static void
fuzz_config_reset (void)
{
  hyperfile_unload ();          /* frees url, secret/session, key, prefix */
  hf_url = NULL;
  hf_secret_key = NULL;
  hf_session_token = NULL;
  hf_prefix = NULL;
  hf_key_file = NULL;
  hf_wal_dir = NULL;
  hf_cache_dir = NULL;
  hf_at = NULL;
  hf_metrics = NULL;
  hf_have_ukey = false;
  /* Structs whose pointer members are P_STR values (hf_s3: endpoint,
   * region ...) or set by .config_complete (hf_opts.parent_cfg), and
   * the scalars. */
  hf_s3 = fuzz_init.s3;
  hf_opts = fuzz_init.opts;
  hf_gc_opts = fuzz_init.gc_opts;
  hf_size = fuzz_init.size;
  hf_block_size = fuzz_init.block_size;
  hf_cache_size = fuzz_init.cache_size;
  hf_gc_interval_ms = fuzz_init.gc_interval_ms;
  hf_gc_on = fuzz_init.gc_on;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *in, *line, *next, *keep[64];
  size_t nkeep = 0, i;

  fuzz_quiet ();
  fuzz_config_save ();
  if (size > 4096)
    return 0;
  in = malloc (size + 1);
  if (in == NULL)
    return 0;
  memcpy (in, data, size);
  in[size] = '\0';
  for (line = in; line && nkeep + 2 <= 64; line = next) {
    char *eq, *key, *value;
    int r;

    next = strchr (line, '\n');
    if (next)
      *next++ = '\0';
    eq = strchr (line, '=');
    if (eq == NULL)
      continue;
    *eq = '\0';
    /* nbdkit keeps key and value for the plugin's lifetime. */
    key = strdup (line);
    value = strdup (eq + 1);
    if (key == NULL || value == NULL)
      abort ();
    keep[nkeep++] = key;
    keep[nkeep++] = value;
    r = hyperfile_config (key, value);
    check_duration (key, value, r == 0);
  }
  hyperfile_config_complete ();

  fuzz_config_reset ();
  for (i = 0; i < nkeep; i++)
    free (keep[i]);
  free (in);
  return 0;
}
