/* hyperfile tests: the S3 store against a real S3 server (s3rver),
 * driven by tests/test-objstore-s3.sh.
 *
 * Usage: s3-errtest SUBCOMMAND [ARGS]
 * with S3_ENDPOINT, S3_BUCKET and AWS_* credentials in the environment
 * (tests/functions.sh start_s3rver sets them).  Subcommands:
 *
 *   badsecret         wrong secret: check and put fail with EACCES, the
 *                     message names bucket and endpoint (the shell checks
 *                     that the secret never reaches stderr)
 *   nobucket          missing bucket: check and get give ENOENT
 *   ranges            ranged gets, short reads at the end, head, get_all,
 *                     delete, empty objects, keys needing encoding
 *   multipart         12 MiB object with 5 MiB threshold and parts
 *   cond              two threads race conditional puts: one wins each
 *   list              1500 keys, paged listing, start-after, early stop,
 *                     delete_many
 *   restart PID CMD   SIGKILL the server PID: requests fail after counted
 *                     retries with a clear error; run CMD (restarts the
 *                     server on the same port) and the same handle works
 *   bench             small PUTs/s and 4 MiB PUT MB/s
 *
 * Exit status 0 on success, 1 on a failed check.
 */
#include <config.h>

#undef NDEBUG

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "objstore.h"

#define CHECK(cond)                                                     \
  do {                                                                  \
    if (!(cond)) {                                                      \
      fprintf (stderr, "s3-errtest: %s:%d: check failed: %s\n",         \
               __FILE__, __LINE__, #cond);                              \
      exit (1);                                                         \
    }                                                                   \
  } while (0)

#define CHECK_ERR(expr, want)                                           \
  do {                                                                  \
    int r_ = (expr);                                                    \
    if (r_ != (want)) {                                                 \
      fprintf (stderr, "s3-errtest: %s:%d: %s = %d (%s), want %d (%s)\n", \
               __FILE__, __LINE__, #expr, r_, strerror (r_), (want),    \
               strerror (want));                                        \
      exit (1);                                                         \
    }                                                                   \
  } while (0)

static const char *errtest_endpoint, *errtest_bucket;

static void
errtest_config (struct hf_s3_config *cfg)
{
  memset (cfg, 0, sizeof *cfg);
  cfg->bucket = errtest_bucket;
  cfg->endpoint = errtest_endpoint;
  cfg->tls_verify = true;
  cfg->retry_base_ms = 20;
  cfg->retry_max_ms = 200;
  cfg->max_retries = 3;
}

static struct hf_objstore *
errtest_open (const struct hf_s3_config *cfg)
{
  struct hf_objstore *s = NULL;

  CHECK_ERR (hf_objstore_s3_open (cfg, &s), 0);
  return s;
}

static void
errtest_fill (unsigned char *p, size_t n, unsigned seed)
{
  size_t i;
  uint32_t x = seed * 2654435761u + 1;

  for (i = 0; i < n; i++) {
    x = x * 1103515245u + 12345u;
    p[i] = (unsigned char) (x >> 16);
  }
}

static int
errtest_cmd_badsecret (void)
{
  struct hf_s3_config cfg;
  struct hf_objstore *s;

  errtest_config (&cfg);
  cfg.access_key = "S3RVER";
  cfg.secret_key = "WRONG-SECRET-hf-errtest-7f3a";
  s = errtest_open (&cfg);
  CHECK_ERR (hf_objstore_s3_check (s), EACCES);
  CHECK_ERR (hf_objstore_put (s, "badsecret", "x", 1, 0), EACCES);
  hf_objstore_close (s);
  printf ("badsecret: EACCES as expected\n");
  return 0;
}

static int
errtest_cmd_nobucket (void)
{
  struct hf_s3_config cfg;
  struct hf_objstore *s;
  char buf[16];
  size_t got;

  errtest_config (&cfg);
  cfg.bucket = "hf-no-such-bucket";
  s = errtest_open (&cfg);
  CHECK_ERR (hf_objstore_s3_check (s), ENOENT);
  CHECK_ERR (hf_objstore_get (s, "k", 0, sizeof buf, buf, &got), ENOENT);
  hf_objstore_close (s);
  printf ("nobucket: ENOENT as expected\n");
  return 0;
}

static int
errtest_cmd_ranges (void)
{
  struct hf_s3_config cfg;
  struct hf_objstore *s;
  struct hf_objstore_info info;
  const size_t n = 1024 * 1024 + 17;
  unsigned char *data = malloc (n), *buf = malloc (n);
  void *all;
  size_t got, alen;
  const char *key = "ranges/obj with spaces+plus&amp=eq%pct~ü";

  CHECK (data && buf);
  errtest_config (&cfg);
  s = errtest_open (&cfg);
  CHECK_ERR (hf_objstore_s3_check (s), 0);
  errtest_fill (data, n, 1);
  CHECK_ERR (hf_objstore_put (s, key, data, n, 0), 0);

  CHECK_ERR (hf_objstore_get (s, key, 0, 100, buf, &got), 0);
  CHECK (got == 100 && memcmp (buf, data, 100) == 0);
  CHECK_ERR (hf_objstore_get (s, key, 4097, 65536, buf, &got), 0);
  CHECK (got == 65536 && memcmp (buf, data + 4097, 65536) == 0);
  CHECK_ERR (hf_objstore_get (s, key, n - 10, 100, buf, &got), 0);
  CHECK (got == 10 && memcmp (buf, data + n - 10, 10) == 0);
  CHECK_ERR (hf_objstore_get (s, key, 0, n + 5, buf, &got), 0);
  CHECK (got == n && memcmp (buf, data, n) == 0);
  CHECK_ERR (hf_objstore_get (s, key, n, 100, buf, &got), 0);
  CHECK (got == 0);
  CHECK_ERR (hf_objstore_get (s, key, n + 1000, 100, buf, &got), 0);
  CHECK (got == 0);

  CHECK_ERR (hf_objstore_head (s, key, &info), 0);
  CHECK (info.size == n);
  CHECK (info.etag[0] != '\0' && strchr (info.etag, '"') == NULL);
  CHECK (info.mtime > 1600000000);

  CHECK_ERR (hf_objstore_get_all (s, key, &all, &alen), 0);
  CHECK (alen == n && memcmp (all, data, n) == 0);
  free (all);

  CHECK_ERR (hf_objstore_get (s, "ranges/missing", 0, 10, buf, &got),
             ENOENT);
  CHECK_ERR (hf_objstore_get_all (s, "ranges/missing", &all, &alen), ENOENT);
  CHECK_ERR (hf_objstore_head (s, "ranges/missing", &info), ENOENT);

  CHECK_ERR (hf_objstore_put (s, "ranges/empty", "", 0, 0), 0);
  CHECK_ERR (hf_objstore_get_all (s, "ranges/empty", &all, &alen), 0);
  CHECK (alen == 0);
  free (all);
  CHECK_ERR (hf_objstore_get (s, "ranges/empty", 0, 10, buf, &got), 0);
  CHECK (got == 0);
  CHECK_ERR (hf_objstore_head (s, "ranges/empty", &info), 0);
  CHECK (info.size == 0);

  CHECK_ERR (hf_objstore_delete (s, key), 0);
  CHECK_ERR (hf_objstore_delete (s, key), 0);
  CHECK_ERR (hf_objstore_delete (s, "ranges/empty"), 0);
  CHECK_ERR (hf_objstore_head (s, key, &info), ENOENT);
  CHECK (strcmp (hf_objstore_describe (s), "s3://") > 0);
  printf ("ranges: ok (%s)\n", hf_objstore_describe (s));
  hf_objstore_close (s);
  free (data);
  free (buf);
  return 0;
}

static int
errtest_cmd_multipart (void)
{
  struct hf_s3_config cfg;
  struct hf_objstore *s;
  struct hf_objstore_stats st;
  const size_t n = 12 * 1024 * 1024 + 3;
  unsigned char *data = malloc (n), *buf = malloc (n);
  void *all;
  size_t alen, got;

  CHECK (data && buf);
  errtest_config (&cfg);
  cfg.multipart_threshold = 5 * 1024 * 1024;
  cfg.part_size = 5 * 1024 * 1024;
  s = errtest_open (&cfg);
  errtest_fill (data, n, 2);
  hf_objstore_delete (s, "mp/a");
  hf_objstore_delete (s, "mp/b");
  CHECK_ERR (hf_objstore_put (s, "mp/a", data, n, 0), 0);
  hf_objstore_get_stats (s, &st);
  /* 2 deletes, create, 3 parts, complete */
  CHECK (st.requests[HF_OP_PUT] == 5);
  CHECK_ERR (hf_objstore_get_all (s, "mp/a", &all, &alen), 0);
  CHECK (alen == n && memcmp (all, data, n) == 0);
  free (all);
  CHECK_ERR (hf_objstore_get (s, "mp/a", 5 * 1024 * 1024 - 7, 100, buf,
                              &got), 0);
  CHECK (got == 100 && memcmp (buf, data + 5 * 1024 * 1024 - 7, 100) == 0);

  /* Conditional multipart: new key succeeds, existing key EEXIST. */
  CHECK_ERR (hf_objstore_put (s, "mp/b", data, n, HF_PUT_IF_NONE_MATCH), 0);
  data[0] ^= 1;
  CHECK_ERR (hf_objstore_put (s, "mp/b", data, n, HF_PUT_IF_NONE_MATCH),
             EEXIST);
  CHECK_ERR (hf_objstore_get (s, "mp/b", 0, 1, buf, &got), 0);
  CHECK (got == 1 && buf[0] == (data[0] ^ 1));
  CHECK_ERR (hf_objstore_delete (s, "mp/a"), 0);
  CHECK_ERR (hf_objstore_delete (s, "mp/b"), 0);
  printf ("multipart: ok (12 MiB in 3 parts)\n");
  hf_objstore_close (s);
  free (data);
  free (buf);
  return 0;
}

struct errtest_race {
  struct hf_objstore *s;
  const char *key;
  char data[64];
  pthread_barrier_t *bar;
  int result;
};

static void *
errtest_race_thread (void *opaque)
{
  struct errtest_race *r = opaque;

  pthread_barrier_wait (r->bar);
  r->result = hf_objstore_put (r->s, r->key, r->data, strlen (r->data),
                               HF_PUT_IF_NONE_MATCH);
  return NULL;
}

static int
errtest_cmd_cond (void)
{
  struct hf_s3_config cfg;
  struct hf_objstore *s;
  int round;

  errtest_config (&cfg);
  s = errtest_open (&cfg);
  for (round = 0; round < 20; round++) {
    struct errtest_race r[2];
    pthread_barrier_t bar;
    pthread_t th[2];
    char key[64];
    void *all;
    size_t alen;
    int i, wins = 0, winner = -1;

    snprintf (key, sizeof key, "cond/head-%d", round);
    hf_objstore_delete (s, key);
    pthread_barrier_init (&bar, NULL, 2);
    for (i = 0; i < 2; i++) {
      r[i].s = s;
      r[i].key = key;
      r[i].bar = &bar;
      snprintf (r[i].data, sizeof r[i].data, "writer %d round %d", i, round);
      CHECK (pthread_create (&th[i], NULL, errtest_race_thread, &r[i]) == 0);
    }
    for (i = 0; i < 2; i++) {
      pthread_join (th[i], NULL);
      if (r[i].result == 0) {
        wins++;
        winner = i;
      }
      else
        CHECK_ERR (r[i].result, EEXIST);
    }
    pthread_barrier_destroy (&bar);
    CHECK (wins == 1);
    CHECK_ERR (hf_objstore_get_all (s, key, &all, &alen), 0);
    CHECK (alen == strlen (r[winner].data)
           && memcmp (all, r[winner].data, alen) == 0);
    free (all);
    CHECK_ERR (hf_objstore_delete (s, key), 0);
  }
  printf ("cond: ok (20 races, exactly one winner each)\n");
  hf_objstore_close (s);
  return 0;
}

#define LIST_N 1500

struct errtest_put_job {
  struct hf_objstore *s;
  unsigned first, step, count;
  const char *fmt;
  size_t size;
  int err;
};

static void *
errtest_put_thread (void *opaque)
{
  struct errtest_put_job *j = opaque;
  unsigned char *data = malloc (j->size ? j->size : 1);
  unsigned i;

  CHECK (data);
  errtest_fill (data, j->size, j->first);
  for (i = j->first; i < j->count && j->err == 0; i += j->step) {
    char key[64];

    snprintf (key, sizeof key, j->fmt, i);
    j->err = hf_objstore_put (j->s, key, data, j->size, 0);
  }
  free (data);
  return NULL;
}

/* Put count keys named fmt % i with nthreads threads. */
static void
errtest_put_many (struct hf_objstore *s, const char *fmt, unsigned count,
                  size_t size, unsigned nthreads)
{
  struct errtest_put_job j[16];
  pthread_t th[16];
  unsigned i;

  CHECK (nthreads <= 16);
  for (i = 0; i < nthreads; i++) {
    j[i] = (struct errtest_put_job) { s, i, nthreads, count, fmt, size, 0 };
    CHECK (pthread_create (&th[i], NULL, errtest_put_thread, &j[i]) == 0);
  }
  for (i = 0; i < nthreads; i++) {
    pthread_join (th[i], NULL);
    CHECK_ERR (j[i].err, 0);
  }
}

struct errtest_list_state {
  unsigned n;
  unsigned stop_at;             /* 0 = never */
  char last[HF_OBJSTORE_KEY_MAX + 1];
  bool ordered;
};

static int
errtest_list_cb (void *opaque, const char *key, uint64_t size)
{
  struct errtest_list_state *l = opaque;

  if (l->n > 0 && strcmp (l->last, key) >= 0)
    l->ordered = false;
  snprintf (l->last, sizeof l->last, "%s", key);
  l->n++;
  if (size != 10)
    l->ordered = false;
  return l->stop_at && l->n >= l->stop_at ? 1 : 0;
}

static int
errtest_cmd_list (void)
{
  struct hf_s3_config cfg;
  struct hf_objstore *s;
  struct hf_objstore_stats st0, st1;
  struct errtest_list_state l;
  const char **keys;
  unsigned i;

  errtest_config (&cfg);
  s = errtest_open (&cfg);
  errtest_put_many (s, "list/k%05u", LIST_N, 10, 8);
  CHECK_ERR (hf_objstore_put (s, "listx", "0123456789", 10, 0), 0);

  hf_objstore_get_stats (s, &st0);
  l = (struct errtest_list_state) { .ordered = true };
  CHECK_ERR (hf_objstore_list (s, "list/", NULL, errtest_list_cb, &l), 0);
  hf_objstore_get_stats (s, &st1);
  CHECK (l.n == LIST_N && l.ordered);
  CHECK (strcmp (l.last, "list/k01499") == 0);
  CHECK (st1.requests[HF_OP_LIST] - st0.requests[HF_OP_LIST] >= 2);
  printf ("list: %u keys in %" PRIu64 " pages\n", l.n,
          st1.requests[HF_OP_LIST] - st0.requests[HF_OP_LIST]);

  l = (struct errtest_list_state) { .ordered = true };
  CHECK_ERR (hf_objstore_list (s, "list/", "list/k00999", errtest_list_cb,
                               &l), 0);
  CHECK (l.n == 500 && l.ordered);

  l = (struct errtest_list_state) { .ordered = true, .stop_at = 10 };
  CHECK_ERR (hf_objstore_list (s, "list/", NULL, errtest_list_cb, &l), 0);
  CHECK (l.n == 10 && strcmp (l.last, "list/k00009") == 0);

  keys = calloc (LIST_N + 1, sizeof *keys);
  CHECK (keys);
  for (i = 0; i < LIST_N; i++) {
    char *k;

    CHECK (asprintf (&k, "list/k%05u", i) > 0);
    keys[i] = k;
  }
  keys[LIST_N] = "list/never-existed";
  CHECK_ERR (hf_objstore_delete_many (s, keys, LIST_N + 1), 0);
  l = (struct errtest_list_state) { .ordered = true };
  CHECK_ERR (hf_objstore_list (s, "list", NULL, errtest_list_cb, &l), 0);
  CHECK (l.n == 1 && strcmp (l.last, "listx") == 0);
  CHECK_ERR (hf_objstore_delete (s, "listx"), 0);
  for (i = 0; i < LIST_N; i++)
    free ((char *) keys[i]);
  free (keys);
  printf ("list: ok (start-after, early stop, delete_many of %u)\n",
          LIST_N + 1);
  hf_objstore_close (s);
  return 0;
}

static int
errtest_cmd_restart (pid_t pid, const char *restart_cmd)
{
  struct hf_s3_config cfg;
  struct hf_objstore *s;
  struct hf_objstore_stats st0, st1;
  char buf[16];
  size_t got;
  int r;

  errtest_config (&cfg);
  s = errtest_open (&cfg);
  CHECK_ERR (hf_objstore_put (s, "restart/k", "before", 6, 0), 0);

  CHECK (kill (pid, SIGKILL) == 0);
  usleep (200000);
  hf_objstore_get_stats (s, &st0);
  r = hf_objstore_get (s, "restart/k", 0, sizeof buf, buf, &got);
  CHECK_ERR (r, EIO);
  hf_objstore_get_stats (s, &st1);
  CHECK (st1.retries - st0.retries == cfg.max_retries);
  CHECK (st1.errors[HF_OP_GET] - st0.errors[HF_OP_GET]
         == cfg.max_retries + 1);
  printf ("restart: server down: EIO after %" PRIu64 " retries\n",
          st1.retries - st0.retries);

  fflush (stdout);
  CHECK (system (restart_cmd) == 0);
  CHECK_ERR (hf_objstore_get (s, "restart/k", 0, sizeof buf, buf, &got), 0);
  CHECK (got == 6 && memcmp (buf, "before", 6) == 0);
  CHECK_ERR (hf_objstore_put (s, "restart/k", "after", 5, 0), 0);
  CHECK_ERR (hf_objstore_delete (s, "restart/k"), 0);
  printf ("restart: same handle works after the restart\n");
  hf_objstore_close (s);
  return 0;
}

static int
errtest_cmd_bench (void)
{
  struct hf_s3_config cfg;
  struct hf_objstore *s;
  uint64_t t0, t1;
  const unsigned nsmall = 1000, nbig = 16;
  const size_t big = 4 * 1024 * 1024;

  errtest_config (&cfg);
  s = errtest_open (&cfg);
  t0 = hf_objstore_now_us ();
  errtest_put_many (s, "bench/small-%05u", nsmall, 4096, 8);
  t1 = hf_objstore_now_us ();
  printf ("bench: %u x 4 KiB PUT, 8 threads: %.0f PUT/s\n", nsmall,
          nsmall / ((t1 - t0) / 1e6));
  t0 = hf_objstore_now_us ();
  errtest_put_many (s, "bench/big-%05u", nbig, big, 4);
  t1 = hf_objstore_now_us ();
  printf ("bench: %u x 4 MiB PUT, 4 threads: %.1f MB/s\n", nbig,
          nbig * (double) big / 1e6 / ((t1 - t0) / 1e6));
  hf_objstore_close (s);
  return 0;
}

int
main (int argc, char *argv[])
{
  const char *cmd = argc > 1 ? argv[1] : "";

  errtest_endpoint = getenv ("S3_ENDPOINT");
  errtest_bucket = getenv ("S3_BUCKET");
  if (errtest_endpoint == NULL || errtest_bucket == NULL) {
    fprintf (stderr, "s3-errtest: S3_ENDPOINT and S3_BUCKET must be set\n");
    exit (2);
  }
  setvbuf (stdout, NULL, _IOLBF, 0);
  if (strcmp (cmd, "badsecret") == 0)
    return errtest_cmd_badsecret ();
  if (strcmp (cmd, "nobucket") == 0)
    return errtest_cmd_nobucket ();
  if (strcmp (cmd, "ranges") == 0)
    return errtest_cmd_ranges ();
  if (strcmp (cmd, "multipart") == 0)
    return errtest_cmd_multipart ();
  if (strcmp (cmd, "cond") == 0)
    return errtest_cmd_cond ();
  if (strcmp (cmd, "list") == 0)
    return errtest_cmd_list ();
  if (strcmp (cmd, "restart") == 0 && argc == 4)
    return errtest_cmd_restart ((pid_t) atol (argv[2]), argv[3]);
  if (strcmp (cmd, "bench") == 0)
    return errtest_cmd_bench ();
  fprintf (stderr, "usage: s3-errtest badsecret|nobucket|ranges|multipart|"
           "cond|list|bench|restart PID CMD\n");
  return 2;
}
