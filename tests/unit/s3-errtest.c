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
 *   lostreply         conditional puts whose first answer the server
 *                     drops (shim 7 in tests/s3rver/server.js): success
 *                     when the stored object is ours (small and above
 *                     the multipart threshold), EEXIST when another
 *                     writer's is there
 *   condbig           conditional puts above the multipart threshold
 *                     against a server that ignores If-None-Match on
 *                     CompleteMultipartUpload (shim 9, like Ceph RGW
 *                     16.2): the second writer gets EEXIST and the
 *                     first one's object stays (each is one plain PUT)
 *   cancel            a conditional put of 64 MiB that the server stalls
 *                     mid-body (shim 10) is called off with its cancel
 *                     flag: ECANCELED, one attempt, and the key stays
 *                     free (a conditional put of other bytes then
 *                     lands, and they read back)
 *   status            503 SlowDown on every attempt: retried, then EIO
 *                     naming the status; 500 once: retried, then served
 *                     (shim 8)
 *   tls CAFILE OTHER-CAFILE
 *                     https endpoint whose certificate CAFILE signed:
 *                     verification on by default refuses it (EIO, a
 *                     message naming TLS verification, no retries), so
 *                     does ca-file=OTHER-CAFILE, a missing ca-file fails
 *                     at open (ENOENT, one line), ca-file=CAFILE works,
 *                     tls-verify=false works (the store warns; the shell
 *                     checks the warning)
 *   token             temporary credentials (S3_TEMP_ACCESS_KEY,
 *                     S3_TEMP_SECRET_KEY, S3_TEMP_SESSION_TOKEN): without
 *                     the token and with a wrong one EACCES, with it put,
 *                     get, head, list, delete work
 *   express SECONDS   S3 Express One Zone (the emulation of
 *                     tests/s3rver/server.js, shims 10-11): the zonal
 *                     endpoint made from a directory bucket's name and
 *                     the region, names that are not directory buckets';
 *                     then against the server, puts and gets for SECONDS
 *                     (several session lives: the shell checks the
 *                     server made new sessions) without one error, and
 *                     listings of a prefix that does not end in '/'
 *   vhost ENDPOINT    virtual-host addressing against ENDPOINT
 *                     (http://s3.localhost:PORT): put, get, list, delete;
 *                     the shell checks the Host headers the server got
 *
 * S3_ERRTEST_DEBUG=1 turns on the store's debug log (-D hyperfile.s3).
 *
 * Exit status 0 on success, 1 on a failed check.
 */
#include <config.h>

#undef NDEBUG

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "objstore.h"
#include "test-util.h"

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
  /* The right key id with a wrong secret. */
  cfg.access_key = getenv ("AWS_ACCESS_KEY_ID") ? getenv ("AWS_ACCESS_KEY_ID")
                                                : "S3RVER";
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

  CHECK_ERR (hf_objstore_get_all (s, key, SIZE_MAX, &all, &alen), 0);
  CHECK (alen == n && memcmp (all, data, n) == 0);
  free (all);

  CHECK_ERR (hf_objstore_get (s, "ranges/missing", 0, 10, buf, &got),
             ENOENT);
  CHECK_ERR (hf_objstore_get_all (s, "ranges/missing",
                                  SIZE_MAX, &all, &alen), ENOENT);
  CHECK_ERR (hf_objstore_head (s, "ranges/missing", &info), ENOENT);

  CHECK_ERR (hf_objstore_put (s, "ranges/empty", "", 0, 0), 0);
  CHECK_ERR (hf_objstore_get_all (s, "ranges/empty", SIZE_MAX, &all, &alen), 0);
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
  CHECK_ERR (hf_objstore_get_all (s, "mp/a", SIZE_MAX, &all, &alen), 0);
  CHECK (alen == n && memcmp (all, data, n) == 0);
  free (all);
  CHECK_ERR (hf_objstore_get (s, "mp/a", 5 * 1024 * 1024 - 7, 100, buf,
                              &got), 0);
  CHECK (got == 100 && memcmp (buf, data + 5 * 1024 * 1024 - 7, 100) == 0);

  /* Conditional (one plain PUT, whatever the size): new key succeeds,
   * existing key EEXIST. */
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
    CHECK_ERR (hf_objstore_get_all (s, key, SIZE_MAX, &all, &alen), 0);
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

/* Whether process pid has ended (gone, or a zombie: its sockets are
 * closed by then), waiting up to 30 s.  A SIGKILLed server is not gone
 * when kill(2) returns: it closes its sockets as it exits, later on a
 * busy machine. */
static bool
errtest_wait_dead (pid_t pid)
{
  char path[64], buf[512], *p;
  int i;

  snprintf (path, sizeof path, "/proc/%ld/stat", (long) pid);
  for (i = 0; i < 3000; i++) {
    FILE *f = fopen (path, "r");
    size_t n;

    if (f == NULL)
      return true;              /* reaped */
    n = fread (buf, 1, sizeof buf - 1, f);
    fclose (f);
    buf[n] = '\0';
    p = strrchr (buf, ')');     /* "pid (comm) S ..." */
    if (p == NULL || p[1] == '\0')
      return true;              /* went away while read */
    if (p[2] == 'Z' || p[2] == 'X')
      return true;
    usleep (10000);
  }
  return false;
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
  CHECK (errtest_wait_dead (pid));
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
  const unsigned nsmall = 400, nbig = 8;
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

/* Conditional puts whose first answer is lost (tests/s3rver/server.js
 * shim 7). */
static int
errtest_cmd_lostreply (void)
{
  struct hf_s3_config cfg;
  struct hf_objstore *s;
  struct hf_objstore_stats st0, st1;
  const size_t big = 6 * 1024 * 1024 + 5;
  unsigned char *data = malloc (big);
  void *all;
  size_t alen;
  static const char theirs[] =
    "written by another writer (hyperfile test shim 7)";

  CHECK (data);
  errtest_config (&cfg);
  cfg.multipart_threshold = 5 * 1024 * 1024;
  cfg.part_size = 5 * 1024 * 1024;
  s = errtest_open (&cfg);
  errtest_fill (data, big, 3);

  /* Ours landed, the answer was lost: success, and our bytes. */
  hf_objstore_get_stats (s, &st0);
  CHECK_ERR (hf_objstore_put (s, "hf-shim-lost-reply-ours/a", "our head",
                              8, HF_PUT_IF_NONE_MATCH), 0);
  hf_objstore_get_stats (s, &st1);
  /* The resent PUT met 412 and the store looked (HEAD) whose it is. */
  CHECK (st1.requests[HF_OP_HEAD] - st0.requests[HF_OP_HEAD] == 1);
  CHECK_ERR (hf_objstore_get_all (s, "hf-shim-lost-reply-ours/a",
                                  SIZE_MAX, &all,
                                  &alen), 0);
  CHECK (alen == 8 && memcmp (all, "our head", 8) == 0);
  free (all);
  /* ... and the key is still taken for everyone else. */
  CHECK_ERR (hf_objstore_put (s, "hf-shim-lost-reply-ours/a", "our hea2",
                              8, HF_PUT_IF_NONE_MATCH), EEXIST);

  /* Now on a connection that served requests before: curl itself
   * resends a request once when a reused connection dies without an
   * answer, so the store sees one attempt that met 412. */
  hf_objstore_get_stats (s, &st0);
  CHECK_ERR (hf_objstore_put (s, "hf-shim-lost-reply-ours/b", "our tail",
                              8, HF_PUT_IF_NONE_MATCH), 0);
  hf_objstore_get_stats (s, &st1);
  CHECK (st1.requests[HF_OP_HEAD] - st0.requests[HF_OP_HEAD] == 1);
  CHECK_ERR (hf_objstore_get_all (s, "hf-shim-lost-reply-ours/b",
                                  SIZE_MAX, &all,
                                  &alen), 0);
  CHECK (alen == 8 && memcmp (all, "our tail", 8) == 0);
  free (all);

  /* The same above the multipart threshold (still one plain PUT). */
  CHECK_ERR (hf_objstore_put (s, "hf-shim-lost-reply-ours/big", data, big,
                              HF_PUT_IF_NONE_MATCH), 0);
  CHECK_ERR (hf_objstore_get_all (s, "hf-shim-lost-reply-ours/big",
                                  SIZE_MAX, &all,
                                  &alen), 0);
  CHECK (alen == big && memcmp (all, data, big) == 0);
  free (all);

  /* Another writer's object is there (the same size as ours, then
   * other sizes): EEXIST, and theirs stays. */
  {
    char mine[sizeof theirs];

    memcpy (mine, theirs, sizeof mine);
    mine[0] = 'W';              /* same size, other bytes */
    CHECK_ERR (hf_objstore_put (s, "hf-shim-lost-reply-theirs/b", mine,
                                sizeof mine - 1, HF_PUT_IF_NONE_MATCH),
               EEXIST);
  }
  CHECK_ERR (hf_objstore_get_all (s, "hf-shim-lost-reply-theirs/b",
                                  SIZE_MAX, &all,
                                  &alen), 0);
  CHECK (alen == sizeof theirs - 1 && memcmp (all, theirs, alen) == 0);
  free (all);
  CHECK_ERR (hf_objstore_put (s, "hf-shim-lost-reply-theirs/c", "mine", 4,
                              HF_PUT_IF_NONE_MATCH), EEXIST);
  CHECK_ERR (hf_objstore_put (s, "hf-shim-lost-reply-theirs/big", data, big,
                              HF_PUT_IF_NONE_MATCH), EEXIST);
  CHECK_ERR (hf_objstore_get_all (s, "hf-shim-lost-reply-theirs/big",
                                  SIZE_MAX, &all,
                                  &alen), 0);
  CHECK (alen == sizeof theirs - 1 && memcmp (all, theirs, alen) == 0);
  free (all);

  {
    const char *const keys[] = {
      "hf-shim-lost-reply-ours/a", "hf-shim-lost-reply-ours/b",
      "hf-shim-lost-reply-ours/big",
      "hf-shim-lost-reply-theirs/b", "hf-shim-lost-reply-theirs/c",
      "hf-shim-lost-reply-theirs/big",
    };
    CHECK_ERR (hf_objstore_delete_many (s, keys, 6), 0);
  }
  printf ("lostreply: ours -> success, theirs -> EEXIST (small and "
          "big)\n");
  hf_objstore_close (s);
  free (data);
  return 0;
}

/* A conditional put never depends on the server honouring the
 * condition on a multipart Complete (tests/s3rver/server.js shim 9):
 * a fenced writer's big segment must not replace the new writer's. */
static int
errtest_cmd_condbig (void)
{
  struct hf_s3_config cfg;
  struct hf_objstore *s;
  struct hf_objstore_stats st0, st1;
  const size_t n = 12 * 1024 * 1024 + 3;
  unsigned char *a = malloc (n), *b = malloc (n);
  const char *key = "hf-shim-complete-ignores-inm/seg";
  void *all;
  size_t alen;

  CHECK (a && b);
  errtest_config (&cfg);
  cfg.multipart_threshold = 5 * 1024 * 1024;
  cfg.part_size = 5 * 1024 * 1024;
  s = errtest_open (&cfg);
  errtest_fill (a, n, 4);
  errtest_fill (b, n, 5);
  CHECK_ERR (hf_objstore_delete (s, key), 0);
  CHECK_ERR (hf_objstore_put (s, key, a, n, HF_PUT_IF_NONE_MATCH), 0);
  hf_objstore_get_stats (s, &st0);
  CHECK_ERR (hf_objstore_put (s, key, b, n, HF_PUT_IF_NONE_MATCH), EEXIST);
  hf_objstore_get_stats (s, &st1);
  CHECK_ERR (hf_objstore_get_all (s, key, SIZE_MAX, &all, &alen), 0);
  CHECK (alen == n && memcmp (all, a, n) == 0);
  free (all);
  /* One plain PUT (412), then the HEAD that asks whose object it is. */
  CHECK (st1.requests[HF_OP_PUT] - st0.requests[HF_OP_PUT] == 1);
  CHECK (st1.requests[HF_OP_HEAD] - st0.requests[HF_OP_HEAD] == 1);
  /* Unconditional puts of that size still go multipart (create, 3
   * parts, complete). */
  hf_objstore_get_stats (s, &st0);
  CHECK_ERR (hf_objstore_put (s, key, b, n, 0), 0);
  hf_objstore_get_stats (s, &st1);
  CHECK (st1.requests[HF_OP_PUT] - st0.requests[HF_OP_PUT] == 5);
  CHECK_ERR (hf_objstore_delete (s, key), 0);
  printf ("condbig: a big conditional put is one PUT; the second writer "
          "gets EEXIST\n");
  hf_objstore_close (s);
  free (a);
  free (b);
  return 0;
}

/* A put called off mid-body (tests/s3rver/server.js shim 10). */
struct errtest_cancel_put {
  struct hf_objstore *s;
  const char *key;
  const unsigned char *data;
  size_t len;
  atomic_bool cancel;
  int r;
};

static void *
errtest_cancel_thread (void *arg)
{
  struct errtest_cancel_put *p = arg;

  p->r = hf_objstore_put_cancel (p->s, p->key, p->data, p->len,
                                 HF_PUT_IF_NONE_MATCH, &p->cancel);
  return NULL;
}

static int
errtest_cmd_cancel (void)
{
  struct hf_s3_config cfg;
  struct errtest_cancel_put p = { .key = "hf-shim-stall-body/seg" };
  struct hf_objstore_info info;
  struct hf_objstore_stats st0, st1;
  const size_t n = 64 * 1024 * 1024;
  unsigned char *a = malloc (n), *b = malloc (n);
  pthread_t th;
  void *all;
  size_t alen;
  uint64_t t0;
  int i, r;

  CHECK (a && b);
  errtest_config (&cfg);
  p.s = errtest_open (&cfg);
  errtest_fill (a, n, 6);
  errtest_fill (b, n, 7);
  p.data = a;
  p.len = n;
  atomic_init (&p.cancel, false);
  CHECK_ERR (hf_objstore_delete (p.s, p.key), 0);
  CHECK_ERR (hf_objstore_delete (p.s, "hf-shim-stall-body/seg.stalled"), 0);
  CHECK_ERR (hf_objstore_delete (p.s, "hf-shim-stall-body/seg.go"), 0);
  hf_objstore_get_stats (p.s, &st0);
  CHECK (pthread_create (&th, NULL, errtest_cancel_thread, &p) == 0);
  /* Wait (bounded) until the server has stalled the PUT mid-body. */
  for (i = 0; i < 6000; i++) {
    r = hf_objstore_head (p.s, "hf-shim-stall-body/seg.stalled", &info);
    if (r != ENOENT)
      break;
    usleep (10000);
  }
  CHECK_ERR (r, 0);
  t0 = hf_objstore_now_us ();
  atomic_store (&p.cancel, true);
  CHECK (pthread_join (th, NULL) == 0);
  CHECK_ERR (p.r, ECANCELED);
  printf ("cancel: the put stopped %.0f ms after its flag was raised\n",
          (hf_objstore_now_us () - t0) / 1000.0);
  hf_objstore_get_stats (p.s, &st1);
  CHECK (st1.requests[HF_OP_PUT] - st0.requests[HF_OP_PUT] == 1);
  CHECK (st1.retries == st0.retries);
  /* Let the server go on with what it received: the body cut short.
   * The next conditional put of the key waits for it (shim 1's lock),
   * then must find the key free. */
  CHECK_ERR (hf_objstore_put (p.s, "hf-shim-stall-body/seg.go", "", 0, 0), 0);
  CHECK_ERR (hf_objstore_put (p.s, p.key, b, n, HF_PUT_IF_NONE_MATCH), 0);
  CHECK_ERR (hf_objstore_get_all (p.s, p.key, SIZE_MAX, &all, &alen), 0);
  CHECK (alen == n && memcmp (all, b, n) == 0);
  free (all);
  /* A flag raised before the put starts: nothing is sent. */
  hf_objstore_get_stats (p.s, &st0);
  CHECK_ERR (hf_objstore_put_cancel (p.s, "hf-errtest-cancelled", a, 10,
                                     HF_PUT_IF_NONE_MATCH, &p.cancel),
             ECANCELED);
  hf_objstore_get_stats (p.s, &st1);
  CHECK (st1.requests[HF_OP_PUT] == st0.requests[HF_OP_PUT]);
  CHECK_ERR (hf_objstore_head (p.s, "hf-errtest-cancelled", &info), ENOENT);
  CHECK_ERR (hf_objstore_delete (p.s, p.key), 0);
  CHECK_ERR (hf_objstore_delete (p.s, "hf-shim-stall-body/seg.stalled"), 0);
  CHECK_ERR (hf_objstore_delete (p.s, "hf-shim-stall-body/seg.go"), 0);
  printf ("cancel: a put called off mid-body left no object\n");
  hf_objstore_close (p.s);
  free (a);
  free (b);
  return 0;
}

/* 5xx answers (tests/s3rver/server.js shim 8). */
static int
errtest_cmd_status (void)
{
  struct hf_s3_config cfg;
  struct hf_objstore *s;
  struct hf_objstore_stats st0, st1;
  char buf[16];
  size_t got;

  errtest_config (&cfg);
  s = errtest_open (&cfg);

  hf_objstore_get_stats (s, &st0);
  CHECK_ERR (hf_objstore_put (s, "hf-shim-status-503/k", "x", 1, 0), EIO);
  CHECK_ERR (hf_objstore_get (s, "hf-shim-status-503/k", 0, sizeof buf,
                              buf, &got), EIO);
  hf_objstore_get_stats (s, &st1);
  CHECK (st1.retries - st0.retries == 2 * cfg.max_retries);
  CHECK (st1.errors[HF_OP_PUT] - st0.errors[HF_OP_PUT]
         == cfg.max_retries + 1);
  CHECK (st1.errors[HF_OP_GET] - st0.errors[HF_OP_GET]
         == cfg.max_retries + 1);

  hf_objstore_get_stats (s, &st0);
  CHECK_ERR (hf_objstore_put (s, "hf-shim-status-500-once/k", "y", 1, 0),
             0);
  CHECK_ERR (hf_objstore_get (s, "hf-shim-status-500-once/k", 0,
                              sizeof buf, buf, &got), 0);
  CHECK (got == 1 && buf[0] == 'y');
  hf_objstore_get_stats (s, &st1);
  CHECK (st1.retries - st0.retries == 2);
  CHECK_ERR (hf_objstore_delete (s, "hf-shim-status-500-once/k"), 0);
  printf ("status: 503 -> EIO after %u attempts; 500 once -> retried\n",
          cfg.max_retries + 1);
  hf_objstore_close (s);
  return 0;
}

/* Put, read back, delete one object: the store works. */
static void
errtest_roundtrip (struct hf_objstore *s, const char *key)
{
  void *all;
  size_t alen;

  CHECK_ERR (hf_objstore_s3_check (s), 0);
  CHECK_ERR (hf_objstore_put (s, key, "round trip", 10, 0), 0);
  CHECK_ERR (hf_objstore_get_all (s, key, SIZE_MAX, &all, &alen), 0);
  CHECK (alen == 10 && memcmp (all, "round trip", 10) == 0);
  free (all);
  CHECK_ERR (hf_objstore_delete (s, key), 0);
}

static int
errtest_cmd_tls (const char *ca_file, const char *other_ca)
{
  struct hf_s3_config cfg;
  struct hf_objstore *s;
  struct hf_objstore_stats st;

  CHECK (strncmp (errtest_endpoint, "https://", 8) == 0);

  /* Verification is on by default and our CA is not in the system's. */
  errtest_config (&cfg);
  s = errtest_open (&cfg);
  fprintf (stderr, "tls: expect a TLS verification error:\n");
  CHECK_ERR (hf_objstore_s3_check (s), EIO);
  CHECK_ERR (hf_objstore_put (s, "tls/k", "x", 1, 0), EIO);
  hf_objstore_get_stats (s, &st);
  CHECK (st.retries == 0);      /* no point in trying again */
  hf_objstore_close (s);

  /* A ca-file that is not there: refused at open. */
  errtest_config (&cfg);
  cfg.ca_file = "/nonexistent/hf-ca.pem";
  s = NULL;
  CHECK_ERR (hf_objstore_s3_open (&cfg, &s), ENOENT);
  CHECK (s == NULL);

  /* A CA that did not sign the server's certificate. */
  errtest_config (&cfg);
  cfg.ca_file = other_ca;
  s = errtest_open (&cfg);
  fprintf (stderr, "tls: expect a TLS verification error (other CA):\n");
  CHECK_ERR (hf_objstore_s3_check (s), EIO);
  hf_objstore_close (s);

  /* The right CA. */
  errtest_config (&cfg);
  cfg.ca_file = ca_file;
  s = errtest_open (&cfg);
  errtest_roundtrip (s, "tls/with-ca-file");
  hf_objstore_close (s);

  /* No verification: works, with a warning at open. */
  errtest_config (&cfg);
  cfg.tls_verify = false;
  fprintf (stderr, "tls: expect a warning about tls-verify=false:\n");
  s = errtest_open (&cfg);
  errtest_roundtrip (s, "tls/no-verify");
  hf_objstore_close (s);
  printf ("tls: refused by default, ca-file works, tls-verify=false "
          "works\n");
  return 0;
}

static int
errtest_cmd_token (void)
{
  struct hf_s3_config cfg;
  struct hf_objstore *s;
  struct errtest_list_state l;
  struct hf_objstore_info info;
  char buf[16];
  size_t got;

  errtest_config (&cfg);
  cfg.access_key = getenv ("S3_TEMP_ACCESS_KEY");
  cfg.secret_key = getenv ("S3_TEMP_SECRET_KEY");
  CHECK (cfg.access_key && cfg.secret_key
         && getenv ("S3_TEMP_SESSION_TOKEN"));

  s = errtest_open (&cfg);      /* no token */
  CHECK_ERR (hf_objstore_s3_check (s), EACCES);
  hf_objstore_close (s);
  cfg.session_token = "hf-wrong-session-token";
  s = errtest_open (&cfg);
  CHECK_ERR (hf_objstore_put (s, "token/k", "x", 1, 0), EACCES);
  hf_objstore_close (s);

  cfg.session_token = getenv ("S3_TEMP_SESSION_TOKEN");
  s = errtest_open (&cfg);
  CHECK_ERR (hf_objstore_s3_check (s), 0);
  CHECK_ERR (hf_objstore_put (s, "token/k", "0123456789", 10,
                              HF_PUT_IF_NONE_MATCH), 0);
  CHECK_ERR (hf_objstore_get (s, "token/k", 2, 5, buf, &got), 0);
  CHECK (got == 5 && memcmp (buf, "23456", 5) == 0);
  CHECK_ERR (hf_objstore_head (s, "token/k", &info), 0);
  CHECK (info.size == 10);
  l = (struct errtest_list_state) { .ordered = true };
  CHECK_ERR (hf_objstore_list (s, "token/", NULL, errtest_list_cb, &l), 0);
  CHECK (l.n == 1 && l.ordered && strcmp (l.last, "token/k") == 0);
  {
    const char *const keys[] = { "token/k", "token/absent" };
    CHECK_ERR (hf_objstore_delete_many (s, keys, 2), 0);
  }
  CHECK_ERR (hf_objstore_head (s, "token/k", &info), ENOENT);
  hf_objstore_close (s);
  printf ("token: refused without or with a wrong token; works with "
          "it\n");
  return 0;
}

/* The store's description names the endpoint it would use. */
static void
errtest_express_name (const char *bucket, bool express, const char *want)
{
  struct hf_s3_config cfg;
  struct hf_objstore *s;
  char d[256];

  errtest_config (&cfg);
  cfg.bucket = bucket;
  cfg.endpoint = NULL;
  cfg.region = "us-west-2";
  cfg.express = express;
  if (want == NULL) {
    CHECK_ERR (hf_objstore_s3_open (&cfg, &s), EINVAL);
    return;
  }
  s = errtest_open (&cfg);
  snprintf (d, sizeof d, "s3://%s at %s", bucket, want);
  if (strcmp (hf_objstore_describe (s), d) != 0) {
    fprintf (stderr, "s3-errtest: %s: described as '%s', want '%s'\n",
             bucket, hf_objstore_describe (s), d);
    exit (1);
  }
  hf_objstore_close (s);
}

static int
errtest_cmd_express (unsigned seconds)
{
  struct hf_s3_config cfg;
  struct hf_objstore *s;
  struct errtest_list_state l;
  struct hf_objstore_stats st0, st1;
  unsigned char data[10], buf[64];
  time_t end;
  unsigned n = 0, i;
  size_t got;

  /* No request is made for these. */
  errtest_express_name ("vol--usw2-az1--x-s3", false,
                        "https://s3express-usw2-az1.us-west-2.amazonaws.com");
  errtest_express_name ("a-b--use1-az4--x-s3", false,
                        "https://s3express-use1-az4.us-west-2.amazonaws.com");
  errtest_express_name ("vol--x-s3", false,
                        "https://s3.us-west-2.amazonaws.com");
  errtest_express_name ("--usw2-az1--x-s3", false,
                        "https://s3.us-west-2.amazonaws.com");
  errtest_express_name ("vol--USW2-AZ1--x-s3", false,
                        "https://s3.us-west-2.amazonaws.com");
  errtest_express_name ("plain-bucket", true, NULL);
  errtest_config (&cfg);
  cfg.storage_class = "STANDARD";
  CHECK_ERR (hf_objstore_s3_open (&cfg, &s), EINVAL);
  cfg.storage_class = "EXPRESS_ONEZONE";
  hf_objstore_close (errtest_open (&cfg));
  printf ("express: zonal endpoints from bucket names: ok\n");

  errtest_config (&cfg);
  s = errtest_open (&cfg);
  CHECK_ERR (hf_objstore_s3_check (s), 0);
  hf_objstore_get_stats (s, &st0);
  end = time (NULL) + seconds;
  do {
    char key[64];

    snprintf (key, sizeof key, "express/k%05u", n % 50);
    /* 10 bytes: the size errtest_list_cb expects. */
    errtest_fill (data, 10, n);
    CHECK_ERR (hf_objstore_put (s, key, data, 10, 0), 0);
    CHECK_ERR (hf_objstore_get (s, key, 0, sizeof buf, buf, &got), 0);
    CHECK (got == 10 && memcmp (buf, data, got) == 0);
    n++;
    usleep (20000);
  } while (time (NULL) < end || n < 50);
  /* CreateSession has a counter of its own: the GETs are the loop's
   * (an attempt refused as expired is counted as a failed one), and
   * the sessions are what the server made (the shell compares). */
  hf_objstore_get_stats (s, &st1);
  CHECK (st1.requests[HF_OP_GET] - st0.requests[HF_OP_GET]
         - (st1.errors[HF_OP_GET] - st0.errors[HF_OP_GET]) == n);
  CHECK (st1.requests[HF_OP_SESSION] >= 3);
  printf ("express: %u puts and gets over %u s: ok\n", n, seconds);

  /* "express/k0001" is no directory: the listing is of "express/",
   * filtered and sorted here. */
  l = (struct errtest_list_state) { .ordered = true };
  CHECK_ERR (hf_objstore_list (s, "express/k0001", NULL, errtest_list_cb,
                               &l), 0);
  CHECK (l.n == 10 && l.ordered);
  CHECK (strcmp (l.last, "express/k00019") == 0);
  l = (struct errtest_list_state) { .ordered = true };
  CHECK_ERR (hf_objstore_list (s, "express/", "express/k00044",
                               errtest_list_cb, &l), 0);
  CHECK (l.n == 5 && strcmp (l.last, "express/k00049") == 0);
  for (i = 0; i < 50; i++) {
    char key[64];

    snprintf (key, sizeof key, "express/k%05u", i);
    CHECK_ERR (hf_objstore_delete (s, key), 0);
  }
  hf_objstore_get_stats (s, &st1);
  hf_objstore_close (s);
  printf ("express: listings without start-after, prefixes cut to '/': "
          "ok\n");
  printf ("express: CreateSession requests: %" PRIu64 "\n",
          st1.requests[HF_OP_SESSION]);
  return 0;
}

static int
errtest_cmd_vhost (const char *endpoint)
{
  struct hf_s3_config cfg;
  struct hf_objstore *s;
  struct errtest_list_state l;

  errtest_config (&cfg);
  cfg.endpoint = endpoint;
  cfg.virtual_host = true;
  s = errtest_open (&cfg);
  CHECK_ERR (hf_objstore_put (s, "vhost/k", "0123456789", 10, 0), 0);
  l = (struct errtest_list_state) { .ordered = true };
  CHECK_ERR (hf_objstore_list (s, "vhost/", NULL, errtest_list_cb, &l), 0);
  CHECK (l.n == 1 && l.ordered);
  errtest_roundtrip (s, "vhost/with space+plus");
  CHECK_ERR (hf_objstore_delete (s, "vhost/k"), 0);
  printf ("vhost: ok (%s)\n", hf_objstore_describe (s));
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
  if (getenv ("S3_ERRTEST_DEBUG"))
    hf_log_set_debug ("s3", true);
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
  if (strcmp (cmd, "lostreply") == 0)
    return errtest_cmd_lostreply ();
  if (strcmp (cmd, "condbig") == 0)
    return errtest_cmd_condbig ();
  if (strcmp (cmd, "status") == 0)
    return errtest_cmd_status ();
  if (strcmp (cmd, "cancel") == 0)
    return errtest_cmd_cancel ();
  if (strcmp (cmd, "tls") == 0 && argc == 4)
    return errtest_cmd_tls (argv[2], argv[3]);
  if (strcmp (cmd, "token") == 0)
    return errtest_cmd_token ();
  if (strcmp (cmd, "express") == 0 && argc == 3)
    return errtest_cmd_express ((unsigned) atoi (argv[2]));
  if (strcmp (cmd, "vhost") == 0 && argc == 3)
    return errtest_cmd_vhost (argv[2]);
  fprintf (stderr, "usage: s3-errtest badsecret|nobucket|ranges|multipart|"
           "cond|condbig|cancel|list|bench|lostreply|status|token|restart PID CMD|"
           "tls CAFILE OTHER-CAFILE|vhost ENDPOINT|express SECONDS\n");
  return 2;
}
