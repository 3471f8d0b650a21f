/* hyperfile tests: the S3 store against a hostile endpoint
 * (tests/s3-hostile-server.py), driven by tests/test-s3-hostile.sh,
 * which runs each case as its own process and bounds and measures its
 * time and peak memory.
 *
 * Usage: s3-hostile ENDPOINT CASE
 *
 * Every case must end with the error named below (and a log line
 * saying why), whatever the server keeps sending:
 *
 *   flood       endless 200 bodies: get_all, put, delete, delete_many
 *               and list fail with EIO ("larger than")
 *   bigclen     a 16 GiB Content-Length: get_all fails with EIO before
 *               reading the body
 *   rangeflood  a ranged GET answered with an endless body: the range
 *               arrives, the rest is not read
 *   errflood    a 404 with an endless body: ENOENT
 *   drip        2 bytes per second: ETIMEDOUT after the retries
 *   loop        list pages repeating their continuation token: EIO
 *   emptytrunc  truncated list pages without keys: EIO
 *   endless     list pages without end: EIO after max_list_pages
 *   foreign     list keys outside the prefix or out of order: dropped
 *               with a log line; the right keys arrive, in order
 *   ok          a well-behaved bucket: put, get_all, list work
 *
 * Exit status 0 on success, 1 on a failed check.
 */
#include <config.h>

#undef NDEBUG

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "objstore.h"
#include "test-util.h"

static char last_log[4096];

static void
sink (enum hf_log_level level, const char *msg)
{
  fprintf (stderr, "s3-hostile: %s: %s\n",
           level == HF_LOG_ERROR ? "error" : level == HF_LOG_WARN
           ? "warning" : "debug", msg);
  if (level == HF_LOG_ERROR || level == HF_LOG_WARN)
    snprintf (last_log, sizeof last_log, "%s", msg);
}

static void
expect_log (const char *what)
{
  if (strstr (last_log, what) == NULL) {
    fprintf (stderr, "s3-hostile: the last log line \"%s\" does not say "
             "\"%s\"\n", last_log, what);
    exit (1);
  }
  last_log[0] = '\0';
}

struct keys {
  char k[16][64];
  unsigned n;
};

static int
collect (void *opaque, const char *key, uint64_t size)
{
  struct keys *ks = opaque;

  (void) size;
  if (ks->n < 16)
    snprintf (ks->k[ks->n], sizeof ks->k[0], "%s", key);
  ks->n++;
  return 0;
}

int
main (int argc, char **argv)
{
  struct hf_s3_config cfg = { 0 };
  struct hf_objstore *s = NULL;
  struct keys ks = { .n = 0 };
  const char *c;
  void *data = NULL;
  size_t len = 0, got = 0;
  char buf[4096];

  if (argc != 3) {
    fprintf (stderr, "usage: s3-hostile ENDPOINT CASE\n");
    return 1;
  }
  c = argv[2];
  hf_log_set_sink (sink);
  cfg.bucket = c;
  cfg.endpoint = argv[1];
  cfg.access_key = "AK";
  cfg.secret_key = "SK";
  cfg.tls_verify = true;
  cfg.connect_timeout_s = 2;
  cfg.request_timeout_s = 2;
  cfg.max_retries = 2;
  cfg.retry_base_ms = 20;
  cfg.retry_max_ms = 100;
  cfg.max_list_pages = 50;
  CHECK_ERR (hf_objstore_s3_open (&cfg, &s), 0);

  if (strcmp (c, "flood") == 0) {
    CHECK_ERR (hf_objstore_get_all (s, "k", 65536, &data, &len), EIO);
    expect_log ("larger than 65536 bytes");
    CHECK_ERR (hf_objstore_put (s, "k", "abc", 3, 0), EIO);
    expect_log ("larger than");
    CHECK_ERR (hf_objstore_delete (s, "k"), EIO);
    expect_log ("larger than");
    CHECK_ERR (hf_objstore_delete_many (s, (const char *[]) { "a", "b" },
                                        2), EIO);
    expect_log ("larger than");
    CHECK_ERR (hf_objstore_list (s, "p/", NULL, collect, &ks), EIO);
    expect_log ("larger than");
  }
  else if (strcmp (c, "bigclen") == 0) {
    CHECK_ERR (hf_objstore_get_all (s, "k", 1 << 20, &data, &len), EIO);
    expect_log ("larger than 1048576 bytes");
  }
  else if (strcmp (c, "rangeflood") == 0) {
    /* The asked range, and the rest is not read. */
    CHECK_ERR (hf_objstore_get (s, "k", 0, sizeof buf, buf, &got), 0);
    CHECK (got == sizeof buf && buf[0] == 'x' && buf[sizeof buf - 1] == 'x');
  }
  else if (strcmp (c, "errflood") == 0)
    CHECK_ERR (hf_objstore_get_all (s, "k", 65536, &data, &len), ENOENT);
  else if (strcmp (c, "drip") == 0) {
    CHECK_ERR (hf_objstore_get_all (s, "k", 65536, &data, &len), ETIMEDOUT);
    expect_log ("no complete answer within");
  }
  else if (strcmp (c, "loop") == 0) {
    CHECK_ERR (hf_objstore_list (s, "p/", NULL, collect, &ks), EIO);
    expect_log ("repeated its continuation token");
  }
  else if (strcmp (c, "emptytrunc") == 0) {
    CHECK_ERR (hf_objstore_list (s, "p/", NULL, collect, &ks), EIO);
    expect_log ("truncated page without keys");
  }
  else if (strcmp (c, "endless") == 0) {
    CHECK_ERR (hf_objstore_list (s, "p/", NULL, collect, &ks), EIO);
    expect_log ("more than 50 pages");
    CHECK (ks.n == 50);
  }
  else if (strcmp (c, "foreign") == 0) {
    CHECK_ERR (hf_objstore_list (s, "p/", NULL, collect, &ks), 0);
    CHECK (ks.n == 3);
    CHECK (strcmp (ks.k[0], "p/a") == 0);
    CHECK (strcmp (ks.k[1], "p/b") == 0);
    CHECK (strcmp (ks.k[2], "p/c") == 0);
    expect_log ("3 keys outside the requested prefix or out of order");
  }
  else if (strcmp (c, "ok") == 0) {
    CHECK_ERR (hf_objstore_put (s, "p/x", "hello", 5, 0), 0);
    CHECK_ERR (hf_objstore_get_all (s, "p/x", 5, &data, &len), 0);
    CHECK (len == 5 && memcmp (data, "hello", 5) == 0);
    free (data);
    data = NULL;
    /* One byte more than the caller allows: refused, not truncated. */
    CHECK_ERR (hf_objstore_get_all (s, "p/x", 4, &data, &len), EIO);
    CHECK (data == NULL);
    expect_log ("larger than 4 bytes");
    CHECK_ERR (hf_objstore_list (s, "p/", NULL, collect, &ks), 0);
    CHECK (ks.n == 1 && strcmp (ks.k[0], "p/x") == 0);
  }
  else {
    fprintf (stderr, "s3-hostile: unknown case %s\n", c);
    return 1;
  }
  CHECK (data == NULL);
  hf_objstore_close (s);
  printf ("s3-hostile: %s: ok\n", c);
  return 0;
}
