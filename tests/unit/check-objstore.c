/* Conformance suite for the object stores (lib/objstore*.c).
 *
 * One set of cases, written against objstore.h only, runs against every
 * store: "dir" (a fresh directory per case), "fault" (the fault store
 * wrapping a dir store with every probability 0) and, only when
 * HF_TEST_S3_ENDPOINT is set, "s3" (and then only s3:
 * tests/test-objstore-s3.sh runs us that way against a local server).
 *
 * The s3 store is configured from HF_TEST_S3_ENDPOINT, HF_TEST_S3_BUCKET
 * (default "hyperfile-test"), HF_TEST_S3_REGION and the AWS_* credential
 * variables, with 5 MiB multipart threshold and parts so that the 12 MiB
 * case goes multipart.  Every case works under its own key prefix
 * (unique per run and per case) and deletes it afterwards.
 *
 * Then cases for one store: the fault store's injections (errno, counts,
 * lost acks landing, same seed -> same faults, down mode) and the dir
 * store's temp files and ENOSPC (on a 1 MiB tmpfs; needs root, skipped
 * with a message otherwise).
 *
 * Each case runs in a forked child (libcheck's default); per-run state
 * (the temp directory, the tmpfs mount) is created and removed by
 * unchecked fixtures in the parent, so it is cleaned up even when a case
 * fails.
 */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "objstore.h"
#include "test-util.h"

#define MiB (1024 * 1024)

/* ---- Per-run and per-case state ---- */

enum hf_test_kind { KIND_DIR, KIND_FAULT, KIND_S3 };

static char *top_dir;           /* per-run temp dir (dir, fault) */
static char run_prefix[64];     /* per-run key prefix */
static unsigned case_no;

static enum hf_test_kind kind;
static struct hf_objstore *store;       /* the store under test */
static struct hf_objstore *inner;       /* fault: the wrapped dir store */
static char *case_dir;                  /* dir, fault: the store's root */
static char pfx[128];                   /* this case's key prefix */

static void
rm_rf (const char *path)
{
  char cmd[1024];

  snprintf (cmd, sizeof cmd, "rm -rf '%s'", path);
  if (system (cmd) != 0)
    fprintf (stderr, "check-objstore: %s failed\n", cmd);
}

/* Key helper: pfx + printf-formatted name, in a small thread-local ring
 * of buffers (so a few keys can be live at once in one expression). */
static const char *
K (const char *fmt, ...)
{
  static __thread char ring[8][HF_OBJSTORE_KEY_MAX + 1];
  static __thread unsigned next;
  char *b = ring[next++ % 8];
  size_t n;
  va_list ap;

  n = snprintf (b, sizeof ring[0], "%s", pfx);
  va_start (ap, fmt);
  vsnprintf (b + n, sizeof ring[0] - n, fmt, ap);
  va_end (ap);
  return b;
}

/* Deterministic bytes: fill p with a xorshift stream seeded with seed. */
static void
fill (void *p, size_t n, uint64_t seed)
{
  uint8_t *b = p;
  uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x1234567;
  size_t i;

  for (i = 0; i < n; i++) {
    if (i % 8 == 0)
      xorshift64 (&x);
    b[i] = (uint8_t) (x >> (8 * (i % 8)));
  }
}

static void *
xmalloc (size_t n)
{
  void *p = malloc (n ? n : 1);

  ck_assert (p != NULL);
  return p;
}

static void
put_ok (const char *key, const void *data, size_t len)
{
  int r = hf_objstore_put (store, key, data, len, 0);

  ck_assert_msg (r == 0, "put %s: %s", key, strerror (r));
}

static void
check_content (const char *key, const void *want, size_t len)
{
  void *data = NULL;
  size_t n = 0;
  int r = hf_objstore_get_all (store, key, SIZE_MAX, &data, &n);

  ck_assert_msg (r == 0, "get_all %s: %s", key, strerror (r));
  ck_assert_uint_eq (n, len);
  ck_assert (len == 0 || memcmp (data, want, len) == 0);
  free (data);
}

/* Put n objects (keys[i] <- data[i], len[i] bytes; all borrowed) from
 * PM_THREADS threads, for the cases that need thousands of keys: a
 * remote server answers one client's requests one at a time, and many
 * at once much faster. */
#define PM_THREADS 8

struct pm_job {
  const char *const *keys;
  const void *const *data;
  const size_t *len;
  size_t n;
  pthread_mutex_t lock;         /* protects next, err, bad */
  size_t next;
  int err;
  size_t bad;                   /* index of the failed key */
};

static void *
pm_thread (void *p)
{
  struct pm_job *j = p;

  for (;;) {
    size_t i;
    int r;

    pthread_mutex_lock (&j->lock);
    i = j->next++;
    if (j->err || i >= j->n) {
      pthread_mutex_unlock (&j->lock);
      return NULL;
    }
    pthread_mutex_unlock (&j->lock);
    r = hf_objstore_put (store, j->keys[i], j->data[i], j->len[i], 0);
    if (r) {
      pthread_mutex_lock (&j->lock);
      if (j->err == 0) {
        j->err = r;
        j->bad = i;
      }
      pthread_mutex_unlock (&j->lock);
    }
  }
}

static void
put_many (const char *const *keys, const void *const *data,
          const size_t *len, size_t n)
{
  struct pm_job j = { .keys = keys, .data = data, .len = len, .n = n };
  pthread_t th[PM_THREADS];
  unsigned t;

  pthread_mutex_init (&j.lock, NULL);
  for (t = 0; t < PM_THREADS; t++)
    ck_assert_int_eq (pthread_create (&th[t], NULL, pm_thread, &j), 0);
  for (t = 0; t < PM_THREADS; t++)
    ck_assert_int_eq (pthread_join (th[t], NULL), 0);
  pthread_mutex_destroy (&j.lock);
  ck_assert_msg (j.err == 0, "put %s: %s", j.err ? keys[j.bad] : "",
                 strerror (j.err));
}

/* Collect keys from list into a malloc'd array. */
struct keylist {
  char **keys;
  uint64_t *sizes;
  size_t n, cap;
  size_t stop_after;            /* return 1 after this many; 0 = never */
  int fail_with;                /* return this errno at stop_after */
};

static int
collect (void *opaque, const char *key, uint64_t size)
{
  struct keylist *l = opaque;

  if (l->n == l->cap) {
    l->cap = l->cap ? l->cap * 2 : 64;
    l->keys = realloc (l->keys, l->cap * sizeof *l->keys);
    l->sizes = realloc (l->sizes, l->cap * sizeof *l->sizes);
    ck_assert (l->keys && l->sizes);
  }
  l->keys[l->n] = strdup (key);
  ck_assert (l->keys[l->n]);
  l->sizes[l->n] = size;
  l->n++;
  if (l->stop_after && l->n == l->stop_after)
    return l->fail_with ? l->fail_with : 1;
  return 0;
}

static void
keylist_free (struct keylist *l)
{
  size_t i;

  for (i = 0; i < l->n; i++)
    free (l->keys[i]);
  free (l->keys);
  free (l->sizes);
  memset (l, 0, sizeof *l);
}

static void
check_sorted (const struct keylist *l)
{
  size_t i;

  for (i = 1; i < l->n; i++)
    ck_assert_msg (strcmp (l->keys[i - 1], l->keys[i]) < 0,
                   "list order: '%s' then '%s'", l->keys[i - 1], l->keys[i]);
}

static int
list_all (const char *prefix, const char *start_after, struct keylist *l)
{
  memset (l, 0, sizeof *l);
  return hf_objstore_list (store, prefix, start_after, collect, l);
}

/* Delete everything under prefix p (best effort, for cleanup). */
static void
delete_prefix (struct hf_objstore *s, const char *p)
{
  struct keylist l = { 0 };

  if (hf_objstore_list (s, p, NULL, collect, &l) == 0 && l.n > 0)
    hf_objstore_delete_many (s, (const char *const *) l.keys, l.n);
  keylist_free (&l);
}

/* ---- Fixtures ---- */

static void
run_setup (void)
{
  top_dir = make_tmpdir ();
}

static void
run_teardown (void)
{
  if (top_dir)
    rm_rf (top_dir);
  free (top_dir);
  top_dir = NULL;
}

static void
make_case_prefix (void)
{
  snprintf (pfx, sizeof pfx, "%s%ld-%u/", run_prefix, (long) getpid (),
            case_no++);
}

static void
open_dir_case (void)
{
  int r;

  make_case_prefix ();
  ck_assert (asprintf (&case_dir, "%s/%ld-%u", top_dir, (long) getpid (),
                       case_no) > 0);
  r = hf_objstore_dir_open (case_dir, true, &store);
  ck_assert_msg (r == 0, "dir_open %s: %s", case_dir, strerror (r));
  inner = NULL;
}

static void
setup_dir (void)
{
  kind = KIND_DIR;
  open_dir_case ();
}

static void
setup_fault (void)
{
  struct hf_fault_config fc = { .seed = 42 };

  kind = KIND_FAULT;
  open_dir_case ();
  inner = store;
  ck_assert_int_eq (hf_objstore_fault_open (inner, &fc, &store), 0);
}

static void
setup_s3 (void)
{
  struct hf_s3_config cfg = { 0 };
  int r;

  kind = KIND_S3;
  make_case_prefix ();
  cfg.endpoint = getenv ("HF_TEST_S3_ENDPOINT");
  cfg.bucket = getenv ("HF_TEST_S3_BUCKET");
  if (cfg.bucket == NULL)
    cfg.bucket = "hyperfile-test";
  cfg.region = getenv ("HF_TEST_S3_REGION");
  cfg.access_key = getenv ("AWS_ACCESS_KEY_ID");
  cfg.secret_key = getenv ("AWS_SECRET_ACCESS_KEY");
  cfg.session_token = getenv ("AWS_SESSION_TOKEN");
  cfg.tls_verify = true;
  cfg.multipart_threshold = 5 * MiB;
  cfg.part_size = 5 * MiB;
  r = hf_objstore_s3_open (&cfg, &store);
  ck_assert_msg (r == 0, "s3_open: %s", strerror (r));
  r = hf_objstore_s3_check (store);
  ck_assert_msg (r == 0, "s3_check: %s", strerror (r));
  inner = NULL;
}

static void
teardown_case (void)
{
  if (store) {
    if (kind == KIND_S3)
      delete_prefix (store, pfx);
    hf_objstore_close (store);
  }
  store = inner = NULL;
  if (case_dir)
    rm_rf (case_dir);
  free (case_dir);
  case_dir = NULL;
}

/* Bigger cases do less against a remote server. */
static unsigned
scaled (unsigned local, unsigned remote)
{
  return kind == KIND_S3 ? remote : local;
}

/* ---- Common cases ---- */

START_TEST (test_put_get_ranges)
{
  uint8_t data[1000], buf[2000];
  size_t got = 12345;

  fill (data, sizeof data, 1);
  put_ok (K ("obj"), data, sizeof data);
  check_content (K ("obj"), data, sizeof data);

  /* first byte */
  ck_assert_int_eq (hf_objstore_get (store, K ("obj"), 0, 1, buf, &got), 0);
  ck_assert_uint_eq (got, 1);
  ck_assert_uint_eq (buf[0], data[0]);
  /* last byte */
  ck_assert_int_eq (hf_objstore_get (store, K ("obj"), 999, 1, buf, &got), 0);
  ck_assert_uint_eq (got, 1);
  ck_assert_uint_eq (buf[0], data[999]);
  /* inside */
  ck_assert_int_eq (hf_objstore_get (store, K ("obj"), 100, 300, buf, &got),
                    0);
  ck_assert_uint_eq (got, 300);
  ck_assert (memcmp (buf, data + 100, 300) == 0);
  /* whole, exactly */
  ck_assert_int_eq (hf_objstore_get (store, K ("obj"), 0, 1000, buf, &got),
                    0);
  ck_assert_uint_eq (got, 1000);
  ck_assert (memcmp (buf, data, 1000) == 0);
  /* crossing the end: short */
  ck_assert_int_eq (hf_objstore_get (store, K ("obj"), 990, 100, buf, &got),
                    0);
  ck_assert_uint_eq (got, 10);
  ck_assert (memcmp (buf, data + 990, 10) == 0);
  ck_assert_int_eq (hf_objstore_get (store, K ("obj"), 0, 2000, buf, &got),
                    0);
  ck_assert_uint_eq (got, 1000);
  ck_assert (memcmp (buf, data, 1000) == 0);
  /* at and past the end */
  got = 12345;
  ck_assert_int_eq (hf_objstore_get (store, K ("obj"), 1000, 10, buf, &got),
                    0);
  ck_assert_uint_eq (got, 0);
  got = 12345;
  ck_assert_int_eq (hf_objstore_get (store, K ("obj"), 5000, 10, buf, &got),
                    0);
  ck_assert_uint_eq (got, 0);
  /* missing */
  ck_assert_int_eq (hf_objstore_get (store, K ("nope"), 0, 10, buf, &got),
                    ENOENT);
  {
    void *p = (void *) 1;
    size_t n = 77;

    ck_assert_int_eq (hf_objstore_get_all (store, K ("nope"), SIZE_MAX, &p,
                                           &n), ENOENT);
    ck_assert (p == (void *) 1);        /* unchanged on error */
    ck_assert_uint_eq (n, 77);
    /* Larger than the caller takes: EIO, nothing returned; exactly
     * max: fine. */
    ck_assert_int_eq (hf_objstore_get_all (store, K ("obj"), 999, &p, &n),
                      EIO);
    ck_assert (p == (void *) 1);
    ck_assert_uint_eq (n, 77);
    ck_assert_int_eq (hf_objstore_get_all (store, K ("obj"), 1000, &p, &n),
                      0);
    ck_assert_uint_eq (n, 1000);
    ck_assert (memcmp (p, data, 1000) == 0);
    free (p);
  }
  /* bad keys */
  ck_assert_int_eq (hf_objstore_get (store, "", 0, 10, buf, &got), EINVAL);
  ck_assert_int_eq (hf_objstore_put (store, "", data, 1, 0), EINVAL);
}
END_TEST

START_TEST (test_empty_object)
{
  struct hf_objstore_info info;
  struct keylist l;
  uint8_t buf[16];
  size_t got = 99;

  put_ok (K ("empty"), "", 0);
  check_content (K ("empty"), "", 0);
  ck_assert_int_eq (hf_objstore_head (store, K ("empty"), &info), 0);
  ck_assert_uint_eq (info.size, 0);
  ck_assert_int_eq (hf_objstore_get (store, K ("empty"), 0, sizeof buf, buf,
                                     &got), 0);
  ck_assert_uint_eq (got, 0);
  ck_assert_int_eq (list_all (pfx, NULL, &l), 0);
  ck_assert_uint_eq (l.n, 1);
  ck_assert_str_eq (l.keys[0], K ("empty"));
  ck_assert_uint_eq (l.sizes[0], 0);
  keylist_free (&l);
}
END_TEST

START_TEST (test_binary_content)
{
  uint8_t data[256 * 4];
  size_t i;

  for (i = 0; i < sizeof data; i++)
    data[i] = (uint8_t) (i * 131);     /* every byte value, NULs included */
  memcpy (data + 10, "\r\n\0\r\n\x1a\xff\xfe", 8);
  put_ok (K ("bin"), data, sizeof data);
  check_content (K ("bin"), data, sizeof data);
  put_ok (K ("nul"), "\0", 1);
  check_content (K ("nul"), "\0", 1);
}
END_TEST

static const char *const odd_names[] = {
  "a/b/c",
  "with space",
  "two  spaces and end ",
  "unicode-\xc3\xa9-\xe6\x97\xa5\xe6\x9c\xac-\xf0\x9f\x98\x80",
  "plus+sign",
  "percent%20not-encoded%",
  "tilde~x",
  "equals=x&y=z",
  "dirlike/",
  "deep/er/still/x y+z%~=",
  "star*question?colon:semi;comma,",
};
#define N_ODD (sizeof odd_names / sizeof odd_names[0])

static int
cmp_str (const void *a, const void *b)
{
  return strcmp (*(const char *const *) a, *(const char *const *) b);
}

START_TEST (test_key_names)
{
  struct hf_objstore_info info;
  struct keylist l;
  const char *sorted[N_ODD];
  char want[64];
  size_t i;

  for (i = 0; i < N_ODD; i++) {
    snprintf (want, sizeof want, "content of %zu", i);
    put_ok (K ("%s", odd_names[i]), want, strlen (want));
  }
  for (i = 0; i < N_ODD; i++) {
    snprintf (want, sizeof want, "content of %zu", i);
    check_content (K ("%s", odd_names[i]), want, strlen (want));
    ck_assert_int_eq (hf_objstore_head (store, K ("%s", odd_names[i]), &info),
                      0);
    ck_assert_uint_eq (info.size, strlen (want));
  }
  /* Listing returns exactly these keys, in byte order. */
  memcpy (sorted, odd_names, sizeof sorted);
  qsort (sorted, N_ODD, sizeof sorted[0], cmp_str);
  ck_assert_int_eq (list_all (pfx, NULL, &l), 0);
  ck_assert_uint_eq (l.n, N_ODD);
  for (i = 0; i < N_ODD; i++)
    ck_assert_str_eq (l.keys[i], K ("%s", sorted[i]));
  keylist_free (&l);
  /* A key that only differs by the trailing '/' is a different key. */
  ck_assert_int_eq (hf_objstore_head (store, K ("dirlike"), &info), ENOENT);
  for (i = 0; i < N_ODD; i++)
    ck_assert_int_eq (hf_objstore_delete (store, K ("%s", odd_names[i])), 0);
  ck_assert_int_eq (list_all (pfx, NULL, &l), 0);
  ck_assert_uint_eq (l.n, 0);
  keylist_free (&l);
}
END_TEST

START_TEST (test_head)
{
  struct hf_objstore_info info;
  uint8_t data[4097];
  int64_t before, after;

  fill (data, sizeof data, 2);
  before = time (NULL);
  put_ok (K ("h"), data, sizeof data);
  after = time (NULL);
  memset (&info, 0x55, sizeof info);
  ck_assert_int_eq (hf_objstore_head (store, K ("h"), &info), 0);
  ck_assert_uint_eq (info.size, sizeof data);
  ck_assert (memchr (info.etag, '\0', sizeof info.etag) != NULL);
  ck_assert_msg (info.etag[0] != '\0', "empty etag");
  ck_assert (strchr (info.etag, '"') == NULL);
  /* The time of the put, to the second (HTTP dates have no fraction;
   * a server on this host shares our clock). */
  ck_assert_msg (info.mtime >= before - 1 && info.mtime <= after + 1,
                 "mtime %" PRId64 ", put between %" PRId64 " and %" PRId64,
                 info.mtime, before, after);
  ck_assert_int_eq (hf_objstore_head (store, K ("missing"), &info), ENOENT);
  ck_assert_int_eq (hf_objstore_head (store, K ("h/"), &info), ENOENT);
}
END_TEST

START_TEST (test_overwrite)
{
  uint8_t a[5000], b[100];
  struct hf_objstore_info info;

  fill (a, sizeof a, 3);
  fill (b, sizeof b, 4);
  put_ok (K ("ow"), a, sizeof a);
  put_ok (K ("ow"), b, sizeof b);
  check_content (K ("ow"), b, sizeof b);
  ck_assert_int_eq (hf_objstore_head (store, K ("ow"), &info), 0);
  ck_assert_uint_eq (info.size, sizeof b);
  put_ok (K ("ow"), a, sizeof a);
  check_content (K ("ow"), a, sizeof a);
}
END_TEST

struct race_arg {
  pthread_barrier_t *barrier;
  const char *key;
  char content[32];
  int r;
};

static void *
race_thread (void *p)
{
  struct race_arg *a = p;

  pthread_barrier_wait (a->barrier);
  a->r = hf_objstore_put (store, a->key, a->content, strlen (a->content),
                          HF_PUT_IF_NONE_MATCH);
  return NULL;
}

START_TEST (test_conditional_put)
{
  pthread_barrier_t barrier;
  unsigned iter, t;

  ck_assert_int_eq (hf_objstore_put (store, K ("c"), "first", 5,
                                     HF_PUT_IF_NONE_MATCH), 0);
  ck_assert_int_eq (hf_objstore_put (store, K ("c"), "second", 6,
                                     HF_PUT_IF_NONE_MATCH), EEXIST);
  check_content (K ("c"), "first", 5);
  /* An unconditional put still overwrites. */
  put_ok (K ("c"), "third", 5);
  check_content (K ("c"), "third", 5);
  /* After a delete the key is free again. */
  ck_assert_int_eq (hf_objstore_delete (store, K ("c")), 0);
  ck_assert_int_eq (hf_objstore_put (store, K ("c"), "fourth", 6,
                                     HF_PUT_IF_NONE_MATCH), 0);
  check_content (K ("c"), "fourth", 6);
  ck_assert_int_eq (hf_objstore_put (store, K ("c"), "x", 1, 0x80), EINVAL);
  /* A conditional put is one request, at most 5 GiB, on every store
   * (refused before the data is read: the buffer is not that long). */
  ck_assert_int_eq (hf_objstore_put (store, K ("huge"), "x",
                                     (size_t) HF_OBJSTORE_COND_PUT_MAX + 1,
                                     HF_PUT_IF_NONE_MATCH), EFBIG);
  {
    struct hf_objstore_info info;
    ck_assert_int_eq (hf_objstore_head (store, K ("huge"), &info), ENOENT);
  }

  /* Two threads race to create the same new key: exactly one wins and
   * its content is what is stored. */
  ck_assert_int_eq (pthread_barrier_init (&barrier, NULL, 2), 0);
  for (iter = 0; iter < 20; iter++) {
    struct race_arg a[2];
    pthread_t th[2];
    const char *key = K ("race/%u", iter);
    int winner;

    for (t = 0; t < 2; t++) {
      a[t].barrier = &barrier;
      a[t].key = key;
      snprintf (a[t].content, sizeof a[t].content, "thread %u iter %u", t,
                iter);
      ck_assert_int_eq (pthread_create (&th[t], NULL, race_thread, &a[t]),
                        0);
    }
    for (t = 0; t < 2; t++)
      ck_assert_int_eq (pthread_join (th[t], NULL), 0);
    ck_assert_msg ((a[0].r == 0 && a[1].r == EEXIST) ||
                   (a[0].r == EEXIST && a[1].r == 0),
                   "iteration %u: results %d, %d", iter, a[0].r, a[1].r);
    winner = a[0].r == 0 ? 0 : 1;
    check_content (key, a[winner].content, strlen (a[winner].content));
  }
  pthread_barrier_destroy (&barrier);
}
END_TEST

START_TEST (test_delete)
{
  struct hf_objstore_info info;

  put_ok (K ("d"), "x", 1);
  put_ok (K ("d2"), "y", 1);
  ck_assert_int_eq (hf_objstore_delete (store, K ("d")), 0);
  ck_assert_int_eq (hf_objstore_head (store, K ("d"), &info), ENOENT);
  {
    uint8_t b[4];
    size_t got;
    ck_assert_int_eq (hf_objstore_get (store, K ("d"), 0, 4, b, &got),
                      ENOENT);
  }
  ck_assert_int_eq (hf_objstore_delete (store, K ("d")), 0);
  ck_assert_int_eq (hf_objstore_delete (store, K ("never")), 0);
  ck_assert_int_eq (hf_objstore_delete (store, K ("no/such/dir/k")), 0);
  check_content (K ("d2"), "y", 1);
  ck_assert_int_eq (hf_objstore_delete (store, ""), EINVAL);
}
END_TEST

START_TEST (test_delete_many)
{
  const unsigned n = 2500;
  char **keys = xmalloc ((n + 2) * sizeof *keys);
  const void **data = xmalloc (n * sizeof *data);
  size_t *len = xmalloc (n * sizeof *len);
  struct keylist l;
  unsigned i;

  for (i = 0; i < n; i++) {
    ck_assert (asprintf (&keys[i], "%sdm/%s/k%05u", pfx,
                         i % 2 ? "odd" : "even", i) > 0);
    data[i] = keys[i];
    len[i] = strlen (keys[i]) % 7;
  }
  put_many ((const char *const *) keys, data, len, n);
  free (data);
  free (len);
  /* Keys that do not exist are not an error. */
  ck_assert (asprintf (&keys[n], "%sdm/absent", pfx) > 0);
  ck_assert (asprintf (&keys[n + 1], "%sno/such/dir", pfx) > 0);
  put_ok (K ("keep"), "k", 1);
  ck_assert_int_eq (list_all (pfx, NULL, &l), 0);
  ck_assert_uint_eq (l.n, n + 1);
  keylist_free (&l);

  ck_assert_int_eq (hf_objstore_delete_many (store,
                                             (const char *const *) keys,
                                             n + 2), 0);
  ck_assert_int_eq (list_all (pfx, NULL, &l), 0);
  ck_assert_uint_eq (l.n, 1);
  ck_assert_str_eq (l.keys[0], K ("keep"));
  keylist_free (&l);
  ck_assert_int_eq (hf_objstore_delete_many (store,
                                             (const char *const *) keys, 0),
                    0);
  for (i = 0; i < n + 2; i++)
    free (keys[i]);
  free (keys);
}
END_TEST

START_TEST (test_list)
{
  const unsigned n = 1500;
  /* Byte order traps: '-' (0x2d) < '/' (0x2f) < '0' (0x30), and a
   * "directory" must sort by its full key, not by its name. */
  static const char *const traps[] = {
    "t/a-b", "t/a/b", "t/a/c/d", "t/a0", "t/a~", "t/A", "t/a.b",
  };
  char **keys = xmalloc (n * sizeof *keys);
  const void **data = xmalloc (n * sizeof *data);
  size_t *len = xmalloc (n * sizeof *len);
  struct keylist l;
  unsigned i;

  for (i = 0; i < n; i++) {
    keys[i] = strdup (K ("l/k%05u", i));
    ck_assert (keys[i] != NULL);
    data[i] = "0123456789";
    len[i] = i % 11;
  }
  put_many ((const char *const *) keys, data, len, n);
  for (i = 0; i < n; i++)
    free (keys[i]);
  free (keys);
  free (data);
  free (len);
  put_ok (K ("l-before"), "x", 1);      /* '-' sorts before '/' */
  put_ok (K ("l0after"), "x", 1);
  put_ok (K ("m"), "x", 1);
  for (i = 0; i < sizeof traps / sizeof traps[0]; i++)
    put_ok (K ("%s", traps[i]), "t", 1);

  /* Everything under l/, in order, with sizes. */
  ck_assert_int_eq (list_all (K ("l/"), NULL, &l), 0);
  ck_assert_uint_eq (l.n, n);
  check_sorted (&l);
  for (i = 0; i < n; i++) {
    ck_assert_str_eq (l.keys[i], K ("l/k%05u", i));
    ck_assert_uint_eq (l.sizes[i], i % 11);
  }
  keylist_free (&l);

  /* A prefix that is not a "directory". */
  ck_assert_int_eq (list_all (K ("l/k0001"), NULL, &l), 0);
  ck_assert_uint_eq (l.n, 10);
  ck_assert_str_eq (l.keys[0], K ("l/k00010"));
  ck_assert_str_eq (l.keys[9], K ("l/k00019"));
  keylist_free (&l);
  ck_assert_int_eq (list_all (K ("l"), NULL, &l), 0);
  ck_assert_uint_eq (l.n, n + 2);
  check_sorted (&l);
  ck_assert_str_eq (l.keys[0], K ("l-before"));
  ck_assert_str_eq (l.keys[n + 1], K ("l0after"));
  keylist_free (&l);

  /* The whole case prefix, byte order across "directories". */
  ck_assert_int_eq (list_all (pfx, NULL, &l), 0);
  ck_assert_uint_eq (l.n, n + 3 + sizeof traps / sizeof traps[0]);
  check_sorted (&l);
  keylist_free (&l);
  ck_assert_int_eq (list_all (K ("t/"), NULL, &l), 0);
  ck_assert_uint_eq (l.n, 7);
  ck_assert_str_eq (l.keys[0], K ("t/A"));
  ck_assert_str_eq (l.keys[1], K ("t/a-b"));
  ck_assert_str_eq (l.keys[2], K ("t/a.b"));
  ck_assert_str_eq (l.keys[3], K ("t/a/b"));
  ck_assert_str_eq (l.keys[4], K ("t/a/c/d"));
  ck_assert_str_eq (l.keys[5], K ("t/a0"));
  ck_assert_str_eq (l.keys[6], K ("t/a~"));
  keylist_free (&l);

  /* start_after: an existing key, a key between two, and the last one. */
  ck_assert_int_eq (list_all (K ("l/"), K ("l/k00700"), &l), 0);
  ck_assert_uint_eq (l.n, n - 701);
  ck_assert_str_eq (l.keys[0], K ("l/k00701"));
  check_sorted (&l);
  keylist_free (&l);
  ck_assert_int_eq (list_all (K ("l/"), K ("l/k00700x"), &l), 0);
  ck_assert_uint_eq (l.n, n - 701);
  ck_assert_str_eq (l.keys[0], K ("l/k00701"));
  keylist_free (&l);
  ck_assert_int_eq (list_all (K ("l/"), K ("l/k%05u", n - 1), &l), 0);
  ck_assert_uint_eq (l.n, 0);
  keylist_free (&l);
  /* start_after before the prefix lists the whole prefix. */
  ck_assert_int_eq (list_all (K ("l/"), K ("a"), &l), 0);
  ck_assert_uint_eq (l.n, n);
  keylist_free (&l);
  ck_assert_int_eq (list_all (K ("t/"), K ("t/a/b"), &l), 0);
  ck_assert_uint_eq (l.n, 3);
  ck_assert_str_eq (l.keys[0], K ("t/a/c/d"));
  keylist_free (&l);

  /* Early stop: callback returns 1 -> list returns 0. */
  memset (&l, 0, sizeof l);
  l.stop_after = 10;
  ck_assert_int_eq (hf_objstore_list (store, K ("l/"), NULL, collect, &l), 0);
  ck_assert_uint_eq (l.n, 10);
  ck_assert_str_eq (l.keys[9], K ("l/k00009"));
  keylist_free (&l);
  /* Stop after the first page boundary too. */
  memset (&l, 0, sizeof l);
  l.stop_after = 1001;
  ck_assert_int_eq (hf_objstore_list (store, K ("l/"), NULL, collect, &l), 0);
  ck_assert_uint_eq (l.n, 1001);
  keylist_free (&l);
  /* Callback errno aborts and is returned. */
  memset (&l, 0, sizeof l);
  l.stop_after = 3;
  l.fail_with = ECANCELED;
  ck_assert_int_eq (hf_objstore_list (store, K ("l/"), NULL, collect, &l),
                    ECANCELED);
  ck_assert_uint_eq (l.n, 3);
  keylist_free (&l);

  /* No match. */
  ck_assert_int_eq (list_all (K ("zzz"), NULL, &l), 0);
  ck_assert_uint_eq (l.n, 0);
  keylist_free (&l);
  ck_assert_int_eq (list_all (K ("l/k00001/"), NULL, &l), 0);
  ck_assert_uint_eq (l.n, 0);
  keylist_free (&l);
}
END_TEST

START_TEST (test_large_object)
{
  const size_t size = 12 * MiB;
  uint8_t *data = xmalloc (size), *buf = xmalloc (2 * MiB);
  struct hf_objstore_info info;
  void *all = NULL;
  size_t n = 0, got;
  uint64_t x = 7;
  unsigned i;

  fill (data, size, 5);
  put_ok (K ("big"), data, size);
  ck_assert_int_eq (hf_objstore_head (store, K ("big"), &info), 0);
  ck_assert_uint_eq (info.size, size);
  ck_assert_int_eq (hf_objstore_get_all (store, K ("big"),
                                         SIZE_MAX, &all, &n), 0);
  ck_assert_uint_eq (n, size);
  ck_assert (memcmp (all, data, size) == 0);
  free (all);

  /* Ranges across the 5 MiB part boundaries, and random ones. */
  {
    static const uint64_t offs[] = { 0, 5 * MiB - 7, 10 * MiB - 1,
                                     12 * MiB - 100 };
    for (i = 0; i < sizeof offs / sizeof offs[0]; i++) {
      ck_assert_int_eq (hf_objstore_get (store, K ("big"), offs[i], 1000,
                                         buf, &got), 0);
      ck_assert_uint_eq (got, offs[i] + 1000 > size ? size - offs[i] : 1000);
      ck_assert (memcmp (buf, data + offs[i], got) == 0);
    }
  }
  for (i = 0; i < 20; i++) {
    uint64_t off, len;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    off = x % size;
    len = 1 + (x >> 32) % (2 * MiB);
    ck_assert_int_eq (hf_objstore_get (store, K ("big"), off, len, buf,
                                       &got), 0);
    ck_assert_uint_eq (got, off + len > size ? size - off : len);
    ck_assert (memcmp (buf, data + off, got) == 0);
  }
  free (data);
  free (buf);
}
END_TEST

/* 8 threads: each owns keys only it writes (content checked exactly), and
 * all share a few keys whose content is self-describing (a header with
 * the fill seed and length) so any reader can check it is whole. */
#define CT_THREADS 8
#define CT_OWN 6
#define CT_SHARED 4

struct ct_arg {
  unsigned id, iters;
  char err[256];
};

static void
ct_make_shared (uint8_t *b, size_t *len, uint64_t seed)
{
  uint64_t len64 = 16 + seed % 3000;

  *len = len64;
  memcpy (b, &seed, 8);
  memcpy (b + 8, &len64, 8);
  fill (b + 16, *len - 16, seed);
}

static bool
ct_check_shared (const uint8_t *b, size_t len)
{
  uint8_t want[3100];
  uint64_t seed;
  size_t wlen;

  if (len < 16)
    return false;
  memcpy (&seed, b, 8);
  ct_make_shared (want, &wlen, seed);
  return wlen == len && memcmp (want, b, len) == 0;
}

static int
ct_list_check (void *opaque, const char *key, uint64_t size)
{
  const char **prev = opaque;
  int r = *prev && strcmp (*prev, key) >= 0 ? EPROTO : 0;

  (void) size;
  free ((char *) *prev);
  *prev = strdup (key);
  return r;
}

#define CT_FAIL(a, ...)                                                 \
  do {                                                                  \
    snprintf ((a)->err, sizeof (a)->err, __VA_ARGS__);                  \
    goto out;                                                           \
  } while (0)

static void *
ct_thread (void *p)
{
  struct ct_arg *a = p;
  uint64_t version[CT_OWN] = { 0 }, x = a->id * 7919 + 1;
  uint8_t *buf = xmalloc (4000), *want = xmalloc (4000);
  unsigned i;

  for (i = 0; i < a->iters; i++) {
    unsigned op, j;
    size_t len, got;
    void *all = NULL;
    int r;

    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    op = x % 8;
    j = (x >> 8) % CT_OWN;
    switch (op) {
    case 0: case 1:             /* put own key, next version */
      version[j]++;
      len = (version[j] * 131 + j) % 4000;
      fill (buf, len, a->id * 1000000 + j * 10000 + version[j]);
      if ((r = hf_objstore_put (store, K ("ct/own%u/%u", a->id, j), buf, len,
                                0)) != 0)
        CT_FAIL (a, "put own: %s", strerror (r));
      break;
    case 2: case 3:             /* read own key, exact */
      r = hf_objstore_get_all (store, K ("ct/own%u/%u", a->id, j),
                               SIZE_MAX, &all,
                               &len);
      if (version[j] == 0) {
        if (r != ENOENT)
          CT_FAIL (a, "get deleted own key: %s", strerror (r));
        break;
      }
      if (r)
        CT_FAIL (a, "get own: %s", strerror (r));
      got = (version[j] * 131 + j) % 4000;
      fill (want, got, a->id * 1000000 + j * 10000 + version[j]);
      r = len != got || memcmp (all, want, len) != 0;
      free (all);
      if (r)
        CT_FAIL (a, "own key %u: wrong content", j);
      break;
    case 4:                     /* delete own key */
      if ((r = hf_objstore_delete (store, K ("ct/own%u/%u", a->id, j))) != 0)
        CT_FAIL (a, "delete own: %s", strerror (r));
      version[j] = 0;
      break;
    case 5:                     /* write a shared key */
      ct_make_shared (buf, &len, x >> 16);
      if ((r = hf_objstore_put (store, K ("ct/shared/%u", j % CT_SHARED),
                                buf, len, 0)) != 0)
        CT_FAIL (a, "put shared: %s", strerror (r));
      break;
    case 6:                     /* read a shared key: whole or absent */
      if (x & 0x100000) {
        r = hf_objstore_get (store, K ("ct/shared/%u", j % CT_SHARED), 0,
                             4000, buf, &got);
        if (r == 0 && !ct_check_shared (buf, got))
          CT_FAIL (a, "torn shared read (%zu bytes)", got);
      }
      else {
        r = hf_objstore_get_all (store, K ("ct/shared/%u", j % CT_SHARED),
                                 SIZE_MAX,
                                 &all, &len);
        if (r == 0) {
          bool ok = ct_check_shared (all, len);
          free (all);
          if (!ok)
            CT_FAIL (a, "torn shared get_all (%zu bytes)", len);
        }
      }
      if (r && r != ENOENT)
        CT_FAIL (a, "get shared: %s", strerror (r));
      break;
    case 7:                     /* list, or delete a shared key */
      if (x & 0x100000) {
        const char *prev = NULL;
        r = hf_objstore_list (store, K ("ct/"), NULL, ct_list_check, &prev);
        free ((char *) prev);
        if (r)
          CT_FAIL (a, "list: %s", strerror (r));
      }
      else if ((r = hf_objstore_delete (store,
                                        K ("ct/shared/%u", j % CT_SHARED)))
               != 0)
        CT_FAIL (a, "delete shared: %s", strerror (r));
      break;
    }
  }
  /* Final check of every own key. */
  for (i = 0; i < CT_OWN; i++) {
    struct hf_objstore_info info;
    int r = hf_objstore_head (store, K ("ct/own%u/%u", a->id, i), &info);

    if (version[i] == 0 ? r != ENOENT
        : r != 0 || info.size != (version[i] * 131 + i) % 4000)
      CT_FAIL (a, "final head own %u: %s", i, strerror (r));
  }
 out:
  free (buf);
  free (want);
  return NULL;
}

START_TEST (test_concurrent)
{
  struct ct_arg a[CT_THREADS];
  pthread_t th[CT_THREADS];
  unsigned t;

  for (t = 0; t < CT_THREADS; t++) {
    a[t].id = t;
    a[t].iters = scaled (400, 60);
    a[t].err[0] = '\0';
    ck_assert_int_eq (pthread_create (&th[t], NULL, ct_thread, &a[t]), 0);
  }
  for (t = 0; t < CT_THREADS; t++)
    ck_assert_int_eq (pthread_join (th[t], NULL), 0);
  for (t = 0; t < CT_THREADS; t++)
    ck_assert_msg (a[t].err[0] == '\0', "thread %u: %s", t, a[t].err);
}
END_TEST

START_TEST (test_counters)
{
  struct hf_objstore_stats s0, s1;
  struct hf_objstore_info info;
  struct keylist l;
  uint8_t data[10000], buf[10000];
  size_t got;
  int i;

  fill (data, sizeof data, 6);
  hf_objstore_get_stats (store, &s0);
  put_ok (K ("cnt"), data, sizeof data);
  ck_assert_int_eq (hf_objstore_get (store, K ("cnt"), 0, sizeof buf, buf,
                                     &got), 0);
  ck_assert_int_eq (hf_objstore_head (store, K ("cnt"), &info), 0);
  ck_assert_int_eq (list_all (pfx, NULL, &l), 0);
  keylist_free (&l);
  ck_assert_int_eq (hf_objstore_delete (store, K ("cnt")), 0);
  hf_objstore_get_stats (store, &s1);
  for (i = 0; i < HF_OP__MAX; i++) {
    if (i == HF_OP_SESSION)     /* S3 Express only, when it needs one */
      continue;
    ck_assert_msg (s1.requests[i] > s0.requests[i], "requests[%d]", i);
    ck_assert (s1.errors[i] >= s0.errors[i]);
    ck_assert (s1.latency_us[i] >= s0.latency_us[i]);
  }
  ck_assert_uint_ge (s1.bytes_out - s0.bytes_out, sizeof data);
  ck_assert_uint_ge (s1.bytes_in - s0.bytes_in, sizeof data);
  ck_assert_uint_ge (s1.retries, s0.retries);
  /* Monotonic: more requests only add. */
  ck_assert_int_eq (hf_objstore_head (store, K ("cnt"), &info), ENOENT);
  hf_objstore_get_stats (store, &s0);
  ck_assert_uint_gt (s0.requests[HF_OP_HEAD], s1.requests[HF_OP_HEAD]);
  ck_assert_uint_ge (s0.bytes_in, s1.bytes_in);
}
END_TEST

START_TEST (test_describe)
{
  const char *d = hf_objstore_describe (store);

  ck_assert (d != NULL && *d != '\0');
  switch (kind) {
  case KIND_DIR:
    ck_assert_msg (strstr (d, case_dir) != NULL, "describe: %s", d);
    break;
  case KIND_FAULT:
    {
      char want[1024];
      snprintf (want, sizeof want, "fault(%s)",
                hf_objstore_describe (inner));
      ck_assert_str_eq (d, want);
    }
    break;
  case KIND_S3:
    {
      const char *ak = getenv ("AWS_ACCESS_KEY_ID");
      const char *sk = getenv ("AWS_SECRET_ACCESS_KEY");
      ck_assert (ak == NULL || *ak == '\0' || strstr (d, ak) == NULL);
      ck_assert (sk == NULL || *sk == '\0' || strstr (d, sk) == NULL);
    }
    break;
  }
}
END_TEST

/* ---- Fault store cases (store = fault over dir, inner = the dir) ---- */

static void
set_faults (double p_error, double p_timeout, double p_lost, double p_short)
{
  struct hf_fault_config fc = {
    .p_error = p_error, .p_timeout = p_timeout,
    .p_put_lost_ack = p_lost, .p_short_read = p_short,
  };

  hf_objstore_fault_set_config (store, &fc);
}

/* Run every kind of operation, expecting err from each. */
static void
all_ops_fail (int err)
{
  struct hf_objstore_info info;
  struct keylist l;
  const char *keys[2] = { K ("x"), K ("y") };
  uint8_t buf[8];
  void *p;
  size_t got, n;

  ck_assert_int_eq (hf_objstore_put (store, K ("x"), "new", 3, 0), err);
  ck_assert_int_eq (hf_objstore_get (store, K ("x"), 0, 8, buf, &got), err);
  ck_assert_int_eq (hf_objstore_get_all (store, K ("x"),
                                         SIZE_MAX, &p, &n), err);
  ck_assert_int_eq (hf_objstore_head (store, K ("x"), &info), err);
  ck_assert_int_eq (hf_objstore_delete (store, K ("x")), err);
  ck_assert_int_eq (hf_objstore_delete_many (store, keys, 2), err);
  ck_assert_int_eq (list_all (pfx, NULL, &l), err);
  ck_assert_uint_eq (l.n, 0);
  keylist_free (&l);
}
#define ALL_OPS 7

START_TEST (test_fault_errors)
{
  struct hf_objstore_stats s0, s1, i0, i1;
  uint8_t buf[8];
  void *p;
  size_t got, n;
  uint64_t inj;
  int i;

  put_ok (K ("x"), "old", 3);
  hf_objstore_get_stats (store, &s0);
  hf_objstore_get_stats (inner, &i0);
  ck_assert_uint_eq (hf_objstore_fault_injected (store), 0);

  /* p_error = 1: EIO from everything, inner never called. */
  set_faults (1, 0, 0, 0);
  all_ops_fail (EIO);
  ck_assert_uint_eq (hf_objstore_fault_injected (store), ALL_OPS);
  /* p_timeout = 1: ETIMEDOUT. */
  set_faults (0, 1, 0, 0);
  all_ops_fail (ETIMEDOUT);
  ck_assert_uint_eq (hf_objstore_fault_injected (store), 2 * ALL_OPS);
  hf_objstore_get_stats (store, &s1);
  hf_objstore_get_stats (inner, &i1);
  for (i = 0; i < HF_OP__MAX; i++) {
    ck_assert_uint_eq (i1.requests[i], i0.requests[i]);
    ck_assert_uint_eq (s1.requests[i] - s0.requests[i],
                       s1.errors[i] - s0.errors[i]);
  }
  ck_assert_uint_eq (s1.requests[HF_OP_GET] - s0.requests[HF_OP_GET], 4);
  ck_assert_uint_eq (s1.requests[HF_OP_PUT] - s0.requests[HF_OP_PUT], 2);
  ck_assert_uint_eq (s1.requests[HF_OP_DELETE] - s0.requests[HF_OP_DELETE],
                     4);
  ck_assert_uint_eq (s1.requests[HF_OP_LIST] - s0.requests[HF_OP_LIST], 2);
  ck_assert_uint_eq (s1.requests[HF_OP_HEAD] - s0.requests[HF_OP_HEAD], 2);

  /* Nothing reached the inner store. */
  set_faults (0, 0, 0, 0);
  check_content (K ("x"), "old", 3);

  /* p_short_read = 1: reads reach inner, then EIO; other ops work. */
  set_faults (0, 0, 0, 1);
  inj = hf_objstore_fault_injected (store);
  ck_assert_int_eq (hf_objstore_get (store, K ("x"), 0, 8, buf, &got), EIO);
  p = (void *) 1;
  n = 5;
  ck_assert_int_eq (hf_objstore_get_all (store, K ("x"),
                                         SIZE_MAX, &p, &n), EIO);
  ck_assert (p == (void *) 1);
  ck_assert_uint_eq (n, 5);
  ck_assert_uint_eq (hf_objstore_fault_injected (store), inj + 2);
  {
    struct hf_objstore_info info;
    ck_assert_int_eq (hf_objstore_head (store, K ("x"), &info), 0);
  }
  put_ok (K ("y"), "yy", 2);
  ck_assert_int_eq (hf_objstore_get (store, K ("x"), 10, 8, buf, &got), 0);
  ck_assert_uint_eq (got, 0);           /* nothing to tear */
  ck_assert_uint_eq (hf_objstore_fault_injected (store), inj + 2);
  hf_objstore_get_stats (inner, &i1);
  ck_assert_uint_ge (i1.requests[HF_OP_GET] - i0.requests[HF_OP_GET], 2);

  /* Bad probabilities are refused. */
  {
    struct hf_fault_config bad = { .p_error = 1.5 };
    struct hf_objstore *d, *f = NULL;
    char *path;

    ck_assert (asprintf (&path, "%s/bad", case_dir) > 0);
    ck_assert_int_eq (hf_objstore_dir_open (path, true, &d), 0);
    ck_assert_int_eq (hf_objstore_fault_open (d, &bad, &f), EINVAL);
    ck_assert (f == NULL);
    hf_objstore_close (d);
    free (path);
  }
}
END_TEST

START_TEST (test_fault_lost_ack)
{
  uint64_t inj;

  set_faults (0, 0, 1, 0);
  inj = hf_objstore_fault_injected (store);
  ck_assert_int_eq (hf_objstore_put (store, K ("la"), "landed", 6, 0), EIO);
  ck_assert_uint_eq (hf_objstore_fault_injected (store), inj + 1);
  /* It landed: visible in the inner store and through the fault store. */
  {
    void *p;
    size_t n;
    ck_assert_int_eq (hf_objstore_get_all (inner, K ("la"),
                                           SIZE_MAX, &p, &n), 0);
    ck_assert_uint_eq (n, 6);
    ck_assert (memcmp (p, "landed", 6) == 0);
    free (p);
  }
  /* A conditional put lost ack: landed; a retry then sees EEXIST. */
  ck_assert_int_eq (hf_objstore_put (store, K ("lc"), "cond", 4,
                                     HF_PUT_IF_NONE_MATCH), EIO);
  set_faults (0, 0, 0, 0);
  check_content (K ("la"), "landed", 6);
  check_content (K ("lc"), "cond", 4);
  ck_assert_int_eq (hf_objstore_put (store, K ("lc"), "cond", 4,
                                     HF_PUT_IF_NONE_MATCH), EEXIST);
  /* A failed inner put is not turned into a lost ack. */
  set_faults (0, 0, 1, 0);
  inj = hf_objstore_fault_injected (store);
  ck_assert_int_eq (hf_objstore_put (store, K ("lc"), "again", 5,
                                     HF_PUT_IF_NONE_MATCH), EEXIST);
  ck_assert_uint_eq (hf_objstore_fault_injected (store), inj);
}
END_TEST

/* p_put_torn: a prefix of the object lands (also for a conditional put
 * of a new key), the store goes down and answers EIO; once it is up
 * again the prefix is there as a whole object. */
START_TEST (test_fault_torn_put)
{
  struct hf_fault_config fc = { .p_put_torn = 1.0 };
  struct hf_objstore_info info;
  char data[1000];
  void *p;
  size_t n;
  unsigned i;
  uint64_t inj = hf_objstore_fault_injected (store);

  for (i = 0; i < sizeof data; i++)
    data[i] = (char) (i * 7 + 1);
  hf_objstore_fault_set_config (store, &fc);
  ck_assert_int_eq (hf_objstore_put (store, K ("torn"), data, sizeof data,
                                     HF_PUT_IF_NONE_MATCH), EIO);
  ck_assert_uint_eq (hf_objstore_fault_injected (store), inj + 1);
  /* Down: nothing more gets through, whatever the probabilities. */
  fc.p_put_torn = 0;
  fc.down = true;
  hf_objstore_fault_set_config (store, &fc);
  ck_assert_int_eq (hf_objstore_head (store, K ("torn"), &info), EIO);
  hf_objstore_fault_set_down (store, false);
  ck_assert_int_eq (hf_objstore_get_all (store, K ("torn"), SIZE_MAX, &p,
                                         &n), 0);
  ck_assert_uint_ge (n, 1);
  ck_assert_uint_lt (n, sizeof data);
  ck_assert (memcmp (p, data, n) == 0);
  free (p);
  /* The key is taken: a conditional put of the whole object fails. */
  ck_assert_int_eq (hf_objstore_put (store, K ("torn"), data, sizeof data,
                                     HF_PUT_IF_NONE_MATCH), EEXIST);
  /* torn_keep fixes the prefix. */
  fc.p_put_torn = 1.0;
  fc.torn_keep = 0.25;
  fc.down = false;
  hf_objstore_fault_set_config (store, &fc);
  ck_assert_int_eq (hf_objstore_put (store, K ("torn2"), data, sizeof data,
                                     0), EIO);
  hf_objstore_fault_set_down (store, false);
  fc.p_put_torn = 0;
  hf_objstore_fault_set_config (store, &fc);
  check_content (K ("torn2"), data, 250);
}
END_TEST

/* Run a fixed single-threaded workload on a fresh fault store over dir
 * path with cfg; record each result in res (n entries). */
static void
fault_run (const char *path, const struct hf_fault_config *cfg, int *res,
           unsigned n, uint64_t *injected)
{
  struct hf_objstore *d, *f;
  struct hf_objstore_info info;
  uint8_t buf[64];
  size_t got;
  unsigned i;

  ck_assert_int_eq (hf_objstore_dir_open (path, true, &d), 0);
  ck_assert_int_eq (hf_objstore_fault_open (d, cfg, &f), 0);
  for (i = 0; i < n; i++) {
    char key[32];

    snprintf (key, sizeof key, "k%u", i % 10);
    switch (i % 3) {
    case 0:
      res[i] = hf_objstore_put (f, key, key, strlen (key), 0);
      break;
    case 1:
      res[i] = hf_objstore_get (f, key, 0, sizeof buf, buf, &got);
      break;
    default:
      res[i] = hf_objstore_head (f, key, &info);
      break;
    }
  }
  *injected = hf_objstore_fault_injected (f);
  hf_objstore_close (f);
}

START_TEST (test_fault_seed)
{
  struct hf_fault_config fc = {
    .seed = 12345, .p_error = 0.2, .p_timeout = 0.1, .p_put_lost_ack = 0.2,
    .p_short_read = 0.2, .max_delay_us = 50,
  };
  enum { N = 300 };
  int r1[N], r2[N], r3[N];
  uint64_t inj1, inj2, inj3;
  char *p1, *p2, *p3;
  unsigned i, ok = 0;

  ck_assert (asprintf (&p1, "%s/s1", case_dir) > 0);
  ck_assert (asprintf (&p2, "%s/s2", case_dir) > 0);
  ck_assert (asprintf (&p3, "%s/s3", case_dir) > 0);
  fault_run (p1, &fc, r1, N, &inj1);
  fault_run (p2, &fc, r2, N, &inj2);
  fc.seed = 54321;
  fault_run (p3, &fc, r3, N, &inj3);
  ck_assert (memcmp (r1, r2, sizeof r1) == 0);
  ck_assert_uint_eq (inj1, inj2);
  ck_assert (memcmp (r1, r3, sizeof r1) != 0);
  ck_assert_uint_gt (inj1, N / 10);
  ck_assert_uint_lt (inj1, N * 3 / 4);
  for (i = 0; i < N; i++) {
    ck_assert_msg (r1[i] == 0 || r1[i] == EIO || r1[i] == ETIMEDOUT ||
                   r1[i] == ENOENT, "result %d", r1[i]);
    ok += r1[i] == 0;
  }
  ck_assert_uint_gt (ok, N / 4);
  free (p1);
  free (p2);
  free (p3);
}
END_TEST

/* put_bw: puts share a link of put_bw bytes/s, so four puts of 25,000
 * bytes, two threads at a time, take at least 100 ms at 1,000,000
 * bytes/s (a lower bound: sleeps never end early, so this cannot fail
 * by chance), and gets are not slowed. */
struct bw_arg {
  struct hf_objstore *f;
  const char *k1, *k2;
  const uint8_t *data;
};

static void *
bw_putter (void *arg)
{
  struct bw_arg *a = arg;

  ck_assert_int_eq (hf_objstore_put (a->f, a->k1, a->data, 25000, 0), 0);
  ck_assert_int_eq (hf_objstore_put (a->f, a->k2, a->data, 25000, 0), 0);
  return NULL;
}

START_TEST (test_fault_put_bw)
{
  struct hf_fault_config fc = { .put_bw = 1000000 };
  struct hf_objstore *d, *f;
  static uint8_t data[25000];
  uint8_t buf[16];
  size_t got;
  pthread_t th;
  char *path;
  double t0, t1;
  struct bw_arg a1, a2;

  ck_assert (asprintf (&path, "%s/bw", case_dir) > 0);
  ck_assert_int_eq (hf_objstore_dir_open (path, true, &d), 0);
  ck_assert_int_eq (hf_objstore_fault_open (d, &fc, &f), 0);
  memset (data, 'b', sizeof data);
  a1 = (struct bw_arg) { f, "a1", "a2", data };
  a2 = (struct bw_arg) { f, "b1", "b2", data };
  t0 = now ();
  ck_assert_int_eq (pthread_create (&th, NULL, bw_putter, &a1), 0);
  bw_putter (&a2);
  ck_assert_int_eq (pthread_join (th, NULL), 0);
  t1 = now ();
  ck_assert_msg (t1 - t0 >= 0.1, "4 x 25,000 bytes at 1 MB/s in %.3f s",
                 t1 - t0);
  ck_assert_int_eq (hf_objstore_get (f, "b2", 0, sizeof buf, buf, &got), 0);
  ck_assert_uint_eq (got, sizeof buf);
  ck_assert_int_eq (buf[0], 'b');
  hf_objstore_close (f);
  free (path);
}
END_TEST

START_TEST (test_fault_down)
{
  struct hf_fault_config fc = { .max_delay_us = 2000 };
  uint64_t inj, t0;
  unsigned i;

  put_ok (K ("x"), "old", 3);
  inj = hf_objstore_fault_injected (store);
  hf_objstore_fault_set_down (store, true);
  all_ops_fail (EIO);
  ck_assert_uint_eq (hf_objstore_fault_injected (store), inj + ALL_OPS);
  hf_objstore_fault_set_down (store, false);
  check_content (K ("x"), "old", 3);
  put_ok (K ("x"), "new", 3);
  check_content (K ("x"), "new", 3);
  ck_assert_uint_eq (hf_objstore_fault_injected (store), inj + ALL_OPS);

  /* Delays: 50 operations with up to 2 ms each take a while, and do not
   * count as faults. */
  hf_objstore_fault_set_config (store, &fc);
  t0 = hf_objstore_now_us ();
  for (i = 0; i < 50; i++)
    check_content (K ("x"), "new", 3);
  ck_assert_uint_gt (hf_objstore_now_us () - t0, 10000);
  ck_assert_uint_eq (hf_objstore_fault_injected (store), inj + ALL_OPS);
}
END_TEST

/* 8 threads retry through faults: every EIO/ETIMEDOUT they see is an
 * injected fault (the inner dir store does not fail), so the totals must
 * match the injected counter, and retried puts and gets must end with the
 * right content. */
struct fc_arg {
  unsigned id;
  uint64_t seen;
  char err[256];
};

static void *
fc_thread (void *p)
{
  struct fc_arg *a = p;
  uint8_t data[3000];
  unsigned i;

  for (i = 0; i < 150; i++) {
    const char *key = K ("fc/%u/%u", a->id, i % 10);
    size_t len = (a->id * 100 + i * 7) % sizeof data, n = 0;
    void *all = NULL;
    int r;

    fill (data, len, a->id * 1000 + i);
    while ((r = hf_objstore_put (store, key, data, len, 0)) != 0) {
      if (r != EIO && r != ETIMEDOUT)
        CT_FAIL (a, "put: %s", strerror (r));
      a->seen++;
    }
    while ((r = hf_objstore_get_all (store, key, SIZE_MAX, &all, &n)) != 0) {
      if (r != EIO && r != ETIMEDOUT)
        CT_FAIL (a, "get_all: %s", strerror (r));
      a->seen++;
    }
    r = n != len || memcmp (all, data, len) != 0;
    free (all);
    if (r)
      CT_FAIL (a, "wrong content after retries");
  }
 out:
  return NULL;
}

START_TEST (test_fault_concurrent)
{
  struct hf_fault_config fc = {
    .p_error = 0.1, .p_timeout = 0.05, .p_put_lost_ack = 0.1,
    .p_short_read = 0.1, .max_delay_us = 100,
  };
  struct fc_arg a[CT_THREADS];
  pthread_t th[CT_THREADS];
  uint64_t seen = 0;
  unsigned t;

  hf_objstore_fault_set_config (store, &fc);
  for (t = 0; t < CT_THREADS; t++) {
    a[t].id = t;
    a[t].seen = 0;
    a[t].err[0] = '\0';
    ck_assert_int_eq (pthread_create (&th[t], NULL, fc_thread, &a[t]), 0);
  }
  for (t = 0; t < CT_THREADS; t++) {
    ck_assert_int_eq (pthread_join (th[t], NULL), 0);
    ck_assert_msg (a[t].err[0] == '\0', "thread %u: %s", t, a[t].err);
    seen += a[t].seen;
  }
  ck_assert_uint_gt (seen, 100);
  ck_assert_uint_eq (hf_objstore_fault_injected (store), seen);
}
END_TEST

/* Injected faults log debug lines in area "fault", never errors. */
static unsigned log_fault_debug, log_errors;

static void
count_sink (enum hf_log_level level, const char *msg)
{
  if (level == HF_LOG_DEBUG && strncmp (msg, "fault: ", 7) == 0)
    __atomic_add_fetch (&log_fault_debug, 1, __ATOMIC_RELAXED);
  if (level <= HF_LOG_WARN)
    __atomic_add_fetch (&log_errors, 1, __ATOMIC_RELAXED);
}

START_TEST (test_fault_logging)
{
  hf_log_set_sink (count_sink);
  hf_log_set_debug ("fault", true);
  set_faults (1, 0, 0, 0);
  all_ops_fail (EIO);
  set_faults (0, 0, 1, 0);
  ck_assert_int_eq (hf_objstore_put (store, K ("x"), "x", 1, 0), EIO);
  hf_objstore_fault_set_down (store, true);
  all_ops_fail (EIO);
  hf_log_set_debug ("fault", false);
  hf_log_set_sink (log_verbose);
  ck_assert_uint_eq (log_fault_debug, 2 * ALL_OPS + 1);
  ck_assert_uint_eq (log_errors, 0);
  ck_assert_uint_eq (hf_objstore_fault_injected (store), 2 * ALL_OPS + 1);
}
END_TEST

/* ---- Dir store cases ---- */

static void
write_file (const char *path, const char *content)
{
  FILE *fp = fopen (path, "w");

  ck_assert_msg (fp != NULL, "%s: %m", path);
  fputs (content, fp);
  ck_assert_int_eq (fclose (fp), 0);
}

/* The path of the dir store directory holding keys that start with
 * prefix (which ends in '/' and has no '%' nor components starting with
 * '.'): each component becomes a directory named "<component>%" (see
 * lib/objstore-dir.c).  Caller frees. */
static char *
dir_path_of (const char *prefix)
{
  char *p = xmalloc (strlen (case_dir) + 2 * strlen (prefix) + 2);
  const char *c;
  size_t n;

  n = sprintf (p, "%s/", case_dir);
  for (c = prefix; *c; c++) {
    if (*c == '/')
      p[n++] = '%';
    p[n++] = *c;
  }
  p[n] = '\0';
  return p;
}

START_TEST (test_dir_temp_files)
{
  struct hf_objstore_info info;
  struct keylist l;
  char *path, *dir;
  uint8_t buf[16];
  size_t got;
  int r;

  put_ok (K ("a/obj"), "real", 4);
  put_ok (K ("top"), "top", 3);
  /* Leftovers of puts interrupted by a crash, in the objects'
   * directories, and one at the root. */
  dir = dir_path_of (K ("a/"));
  ck_assert (asprintf (&path, "%s.hf-tmp.obj.12345", dir) > 0);
  write_file (path, "torn");
  free (path);
  free (dir);
  dir = dir_path_of (pfx);
  ck_assert (asprintf (&path, "%s.hf-tmp.top.1", dir) > 0);
  write_file (path, "torn");
  free (path);
  free (dir);
  ck_assert (asprintf (&path, "%s/.hf-tmp.x", case_dir) > 0);
  write_file (path, "torn");
  free (path);

  ck_assert_int_eq (list_all (NULL, NULL, &l), 0);
  ck_assert_uint_eq (l.n, 2);
  ck_assert_str_eq (l.keys[0], K ("a/obj"));
  ck_assert_str_eq (l.keys[1], K ("top"));
  keylist_free (&l);
  ck_assert_int_eq (list_all (K ("a/.hf"), NULL, &l), 0);
  ck_assert_uint_eq (l.n, 0);
  keylist_free (&l);
  /* A temp file is not an object, under its name or any other. */
  r = hf_objstore_get (store, K ("a/.hf-tmp.obj.12345"), 0, sizeof buf, buf,
                       &got);
  ck_assert_msg (r == ENOENT || r == EINVAL, "get temp file: %d", r);
  r = hf_objstore_head (store, ".hf-tmp.x", &info);
  ck_assert_msg (r == ENOENT || r == EINVAL, "head temp file: %d", r);
  r = hf_objstore_head (store, K (".hf-tmp.top.1"), &info);
  ck_assert_msg (r == ENOENT || r == EINVAL, "head temp file: %d", r);
  check_content (K ("a/obj"), "real", 4);
  check_content (K ("top"), "top", 3);
  /* A key that looks like a temp file is an ordinary object. */
  put_ok (K (".hf-tmp.mine"), "mine", 4);
  check_content (K (".hf-tmp.mine"), "mine", 4);
  ck_assert_int_eq (list_all (pfx, NULL, &l), 0);
  ck_assert_uint_eq (l.n, 3);
  ck_assert_str_eq (l.keys[0], K (".hf-tmp.mine"));
  keylist_free (&l);
}
END_TEST

/* Keys are opaque: "..", "." and leading dots must neither escape the
 * root nor collide; the store either refuses such a key (EINVAL) or
 * stores it inside the root and lists it as itself. */
START_TEST (test_dir_escape)
{
  static const char *const names[] = {
    "../escape", "a/../../../escape2", "./x", "..", ".", "a/./b", "a//b",
  };
  struct keylist l;
  struct stat st;
  char *path;
  size_t i, stored = 0;
  int r;

  for (i = 0; i < sizeof names / sizeof names[0]; i++) {
    const char *key = i < 2 ? names[i] : K ("%s", names[i]);

    r = hf_objstore_put (store, key, names[i], strlen (names[i]), 0);
    ck_assert_msg (r == 0 || r == EINVAL, "put %s: %s", key, strerror (r));
    if (r == 0) {
      check_content (key, names[i], strlen (names[i]));
      ck_assert_int_eq (list_all (key, NULL, &l), 0);
      ck_assert_uint_ge (l.n, 1);
      ck_assert_str_eq (l.keys[0], key);
      keylist_free (&l);
      stored++;
    }
  }
  ck_assert (asprintf (&path, "%s/../escape", case_dir) > 0);
  ck_assert (stat (path, &st) != 0);
  free (path);
  ck_assert (asprintf (&path, "%s/../escape2", case_dir) > 0);
  ck_assert (stat (path, &st) != 0);
  free (path);
  ck_assert_int_eq (list_all (NULL, NULL, &l), 0);
  ck_assert_uint_eq (l.n, stored);
  check_sorted (&l);
  keylist_free (&l);
}
END_TEST

/* The ENOSPC case works on a 1 MiB tmpfs mounted by this unchecked
 * fixture (in the parent, so it is unmounted even when the case fails). */
static char *mnt_dir;
static bool mnt_ok;
static char mnt_why[256];

static void
mnt_setup (void)
{
  ck_assert (asprintf (&mnt_dir, "%s/check-objstore-mnt-XXXXXX",
                       tmp_base ()) > 0);
  ck_assert (mkdtemp (mnt_dir));
  mnt_ok = mount ("hf-test", mnt_dir, "tmpfs", 0, "size=1m") == 0;
  if (!mnt_ok)
    snprintf (mnt_why, sizeof mnt_why, "mount tmpfs on %s: %s", mnt_dir,
              strerror (errno));
}

static void
mnt_teardown (void)
{
  if (mnt_ok && umount2 (mnt_dir, MNT_DETACH) != 0)
    fprintf (stderr, "check-objstore: umount %s: %m\n", mnt_dir);
  mnt_ok = false;
  if (rmdir (mnt_dir) != 0)
    fprintf (stderr, "check-objstore: rmdir %s: %m\n", mnt_dir);
  free (mnt_dir);
  mnt_dir = NULL;
}

static unsigned
count_files (const char *dir)
{
  char cmd[512], out[64] = "";
  FILE *fp;

  snprintf (cmd, sizeof cmd, "find '%s' -type f | wc -l", dir);
  fp = popen (cmd, "r");
  ck_assert (fp != NULL);
  ck_assert (fgets (out, sizeof out, fp) != NULL);
  pclose (fp);
  return (unsigned) atoi (out);
}

/* A large page-aligned object is written with O_DIRECT (its aligned
 * part; the tail buffered): the same bytes come back, and the aligned
 * part did not go through the page cache (where the file system takes
 * O_DIRECT at all). */
START_TEST (test_dir_direct)
{
  const size_t size = 2 * MiB + 100;
  uint8_t *data, *back;
  unsigned char vec[512];
  size_t got, i, resident = 0;
  char *path;
  void *m;
  int fd;
  bool direct;

  ck_assert_int_eq (posix_memalign ((void **) &data, 4096, size), 0);
  back = xmalloc (size);
  fill (data, size, 11);
  put_ok (K ("direct"), data, size);
  ck_assert_int_eq (hf_objstore_get (store, K ("direct"), 0, size, back,
                                     &got), 0);
  ck_assert_uint_eq (got, size);
  ck_assert (memcmp (back, data, size) == 0);
  path = dir_path_of (K ("direct"));
  fd = open (path, O_RDONLY | O_DIRECT);
  direct = fd >= 0;
  if (fd >= 0)
    close (fd);
  else
    printf ("check-objstore: no O_DIRECT on %s: residency not checked\n",
            path);
  if (under_valgrind ()) {
    printf ("check-objstore: under valgrind: residency not checked\n");
    direct = false;
  }
  /* The get above read the file back: drop clean pages, then write
   * again and look before reading. */
  ck_assert_int_eq (hf_objstore_delete (store, K ("direct")), 0);
  put_ok (K ("direct"), data, size);
  fd = open (path, O_RDONLY);
  ck_assert_int_ge (fd, 0);
  m = mmap (NULL, 2 * MiB, PROT_READ, MAP_SHARED, fd, 0);
  ck_assert_ptr_ne (m, MAP_FAILED);
  ck_assert_int_eq (mincore (m, 2 * MiB, vec), 0);
  for (i = 0; i < 2 * MiB / 4096; i++)
    resident += vec[i] & 1;
  munmap (m, 2 * MiB);
  close (fd);
  if (direct)
    ck_assert_uint_eq (resident, 0);
  ck_assert_int_eq (hf_objstore_get (store, K ("direct"), 0, size, back,
                                     &got), 0);
  ck_assert (memcmp (back, data, size) == 0);
  free (path);
  free (data);
  free (back);
}
END_TEST

START_TEST (test_dir_enospc)
{
  struct hf_objstore *d;
  struct hf_objstore_info info;
  struct keylist l = { 0 };
  uint8_t *data;
  char *root;
  int r;

  if (!mnt_ok) {
    printf ("check-objstore: ENOSPC case skipped: %s\n", mnt_why);
    return;
  }
  ck_assert (asprintf (&root, "%s/store", mnt_dir) > 0);
  ck_assert_int_eq (hf_objstore_dir_open (root, true, &d), 0);
  data = xmalloc (2 * MiB);
  fill (data, 2 * MiB, 8);
  r = hf_objstore_put (d, "big/object", data, 2 * MiB, 0);
  ck_assert_msg (r == ENOSPC, "put 2 MiB into 1 MiB: %s", strerror (r));
  r = hf_objstore_put (d, "cond", data, 2 * MiB, HF_PUT_IF_NONE_MATCH);
  ck_assert_msg (r == ENOSPC, "conditional put 2 MiB: %s", strerror (r));
  {
    void *al;                   /* page-aligned: the O_DIRECT path */
    ck_assert_int_eq (posix_memalign (&al, 4096, 2 * MiB), 0);
    memcpy (al, data, 2 * MiB);
    r = hf_objstore_put (d, "aligned", al, 2 * MiB, 0);
    ck_assert_msg (r == ENOSPC, "aligned put 2 MiB: %s", strerror (r));
    free (al);
  }
  ck_assert_int_eq (hf_objstore_head (d, "big/object", &info), ENOENT);
  ck_assert_int_eq (hf_objstore_head (d, "cond", &info), ENOENT);
  ck_assert_int_eq (hf_objstore_list (d, NULL, NULL, collect, &l), 0);
  ck_assert_uint_eq (l.n, 0);
  keylist_free (&l);
  /* No temp file is left to fill the disk, and small puts still work. */
  ck_assert_uint_eq (count_files (mnt_dir), 0);
  ck_assert_int_eq (hf_objstore_put (d, "small", data, 1000, 0), 0);
  ck_assert_int_eq (hf_objstore_head (d, "small", &info), 0);
  ck_assert_uint_eq (info.size, 1000);
  hf_objstore_close (d);
  free (data);
  free (root);
}
END_TEST

/* ---- Suites ---- */

static void
add_common (TCase *tc)
{
  tcase_add_test (tc, test_put_get_ranges);
  tcase_add_test (tc, test_empty_object);
  tcase_add_test (tc, test_binary_content);
  tcase_add_test (tc, test_key_names);
  tcase_add_test (tc, test_head);
  tcase_add_test (tc, test_overwrite);
  tcase_add_test (tc, test_conditional_put);
  tcase_add_test (tc, test_delete);
  tcase_add_test (tc, test_large_object);
  tcase_add_test (tc, test_concurrent);
  tcase_add_test (tc, test_counters);
  tcase_add_test (tc, test_describe);
}

/* The cases of thousands of keys, in a TCase of their own against S3
 * ("s3-bulk"), so that a run can leave them out by naming the other
 * with CK_RUN_CASE (test-s3-express.sh, which lists through
 * s3-errtest's shorter list). */
static void
add_bulk (TCase *tc)
{
  tcase_add_test (tc, test_delete_many);
  tcase_add_test (tc, test_list);
}

/* ---- The retry policy (objstore.h, "One retry policy") ----
 *
 * A flaky store wraps the case's store: its next `flaky_fail` get,
 * get_all and list calls fail with flaky_errno (a failing list first
 * hands its callback one key, as a listing that breaks after a page
 * does). */
static struct hf_objstore *flaky_inner;
static unsigned flaky_fail, flaky_calls;
static int flaky_errno = EIO;

static int
flaky_get (struct hf_objstore *s, const char *key, uint64_t offset,
           size_t len, void *buf, size_t *got)
{
  flaky_calls++;
  if (flaky_fail) {
    flaky_fail--;
    return flaky_errno;
  }
  return hf_objstore_get (flaky_inner, key, offset, len, buf, got);
}

static int
flaky_get_all (struct hf_objstore *s, const char *key, size_t max,
               void **data, size_t *len)
{
  flaky_calls++;
  if (flaky_fail) {
    flaky_fail--;
    return flaky_errno;
  }
  return hf_objstore_get_all (flaky_inner, key, max, data, len);
}

struct flaky_first {
  hf_objstore_list_fn fn;
  void *opaque;
  int r;
};

static int
flaky_first_key (void *opaque, const char *key, uint64_t size)
{
  struct flaky_first *f = opaque;

  f->r = f->fn (f->opaque, key, size);
  return 1;
}

static int
flaky_list (struct hf_objstore *s, const char *prefix,
            const char *start_after, hf_objstore_list_fn fn, void *opaque)
{
  flaky_calls++;
  if (flaky_fail) {
    struct flaky_first f = { fn, opaque, 0 };
    flaky_fail--;
    ck_assert_int_eq (hf_objstore_list (flaky_inner, prefix, start_after,
                                        flaky_first_key, &f), 0);
    return flaky_errno;
  }
  return hf_objstore_list (flaky_inner, prefix, start_after, fn, opaque);
}

static const char *
flaky_describe (struct hf_objstore *s)
{
  return "flaky";
}

static const struct hf_objstore_ops flaky_ops = {
  .name = "flaky", .get = flaky_get, .get_all = flaky_get_all,
  .list = flaky_list, .describe = flaky_describe,
};

static struct hf_objstore *
flaky_open (unsigned fail, int err)
{
  static struct hf_objstore fs;

  memset (&fs, 0, sizeof fs);
  fs.ops = &flaky_ops;
  flaky_inner = store;
  flaky_fail = fail;
  flaky_errno = err;
  flaky_calls = 0;
  return &fs;
}

/* Transient errors are retried HF_OBJSTORE_TRIES times in all, with the
 * backoff between attempts, and counted as retries; the last error
 * comes back when they run out.  A final error is not retried. */
START_TEST (test_retry_get)
{
  char key[256];
  uint8_t buf[16];
  size_t got = 0;
  struct hf_objstore *fs;
  struct hf_objstore_stats st;
  unsigned k;
  double t0;

  snprintf (key, sizeof key, "%sretry", pfx);
  ck_assert_int_eq (hf_objstore_put (store, key, "0123456789", 10, 0), 0);
  for (k = 0; k < HF_OBJSTORE_TRIES; k++) {
    fs = flaky_open (k, k % 2 ? ETIMEDOUT : EIO);
    t0 = now ();
    ck_assert_int_eq (hf_objstore_get_retry (fs, key, 2, 4, buf, &got), 0);
    ck_assert_uint_eq (got, 4);
    ck_assert_int_eq (memcmp (buf, "2345", 4), 0);
    ck_assert_uint_eq (flaky_calls, k + 1);
    hf_objstore_get_stats (fs, &st);
    ck_assert_uint_eq (st.retries, k);
    /* Slept 2, 4, ... ms between attempts: at least this long. */
    ck_assert (now () - t0 >= ((1u << k) - 1) * 0.002);
  }
  fs = flaky_open (HF_OBJSTORE_TRIES, EAGAIN);
  ck_assert_int_eq (hf_objstore_get_retry (fs, key, 0, 4, buf, &got),
                    EAGAIN);
  ck_assert_uint_eq (flaky_calls, HF_OBJSTORE_TRIES);
  fs = flaky_open (1, ENOENT);
  ck_assert_int_eq (hf_objstore_get_retry (fs, key, 0, 4, buf, &got),
                    ENOENT);
  ck_assert_uint_eq (flaky_calls, 1);
  ck_assert_int_eq (hf_objstore_delete (store, key), 0);
}
END_TEST

/* get_all under the policy. */
START_TEST (test_retry_get_all)
{
  char key[256];
  void *data = NULL;
  size_t len = 0;

  snprintf (key, sizeof key, "%sretry-all", pfx);
  ck_assert_int_eq (hf_objstore_put (store, key, "abc", 3, 0), 0);
  ck_assert_int_eq (hf_objstore_get_all_retry (flaky_open (3, EIO), key,
                                               SIZE_MAX, &data, &len), 0);
  ck_assert_uint_eq (len, 3);
  ck_assert_int_eq (memcmp (data, "abc", 3), 0);
  ck_assert_uint_eq (flaky_calls, 4);
  free (data);
  data = NULL;
  ck_assert_int_eq (hf_objstore_get_all_retry (flaky_open (9, EIO), key,
                                               SIZE_MAX, &data, &len), EIO);
  ck_assert_ptr_null (data);
  ck_assert_int_eq (hf_objstore_delete (store, key), 0);
}
END_TEST

/* A listing that failed part-way is restarted whole: restart runs
 * before every attempt, so the caller sees each key once. */
struct retry_keys {
  unsigned n, restarts;
};

static int
retry_count_key (void *opaque, const char *key, uint64_t size)
{
  ((struct retry_keys *) opaque)->n++;
  return 0;
}

static void
retry_restart (void *opaque)
{
  struct retry_keys *k = opaque;

  k->n = 0;
  k->restarts++;
}

START_TEST (test_retry_list)
{
  char key[600], lp[300];
  struct retry_keys k = { 0 };
  int i;

  snprintf (lp, sizeof lp, "%sretry-list/", pfx);
  for (i = 0; i < 5; i++) {
    snprintf (key, sizeof key, "%s%d", lp, i);
    ck_assert_int_eq (hf_objstore_put (store, key, "x", 1, 0), 0);
  }
  ck_assert_int_eq (hf_objstore_list_retry (flaky_open (2, EIO), lp, NULL,
                                            retry_count_key, &k,
                                            retry_restart), 0);
  ck_assert_uint_eq (k.n, 5);
  ck_assert_uint_eq (k.restarts, 3);
  ck_assert_uint_eq (flaky_calls, 3);
  for (i = 0; i < 5; i++) {
    snprintf (key, sizeof key, "%s%d", lp, i);
    ck_assert_int_eq (hf_objstore_delete (store, key), 0);
  }
}
END_TEST

static TCase *
new_tcase (const char *name, void (*setup) (void))
{
  TCase *tc = tcase_create (name);

  tcase_set_timeout (tc, 300);
  if (setup != setup_s3)
    tcase_add_unchecked_fixture (tc, run_setup, run_teardown);
  tcase_add_checked_fixture (tc, setup, teardown_case);
  return tc;
}

int
main (void)
{
  Suite *s = suite_create ("objstore");
  TCase *tc;

  hf_log_set_sink (log_verbose);
  snprintf (run_prefix, sizeof run_prefix, "hf-check-%ld-%lld/",
            (long) getpid (), (long long) time (NULL));

  if (getenv ("HF_TEST_S3_ENDPOINT") && *getenv ("HF_TEST_S3_ENDPOINT")) {
    tc = new_tcase ("s3", setup_s3);
    add_common (tc);
    suite_add_tcase (s, tc);
    tc = new_tcase ("s3-bulk", setup_s3);
    add_bulk (tc);
    suite_add_tcase (s, tc);
  }
  else {
    tc = new_tcase ("dir", setup_dir);
    add_common (tc);
    add_bulk (tc);
    tcase_add_test (tc, test_dir_temp_files);
    tcase_add_test (tc, test_dir_direct);
    tcase_add_test (tc, test_dir_escape);
    suite_add_tcase (s, tc);

    tc = new_tcase ("retry", setup_dir);
    tcase_add_test (tc, test_retry_get);
    tcase_add_test (tc, test_retry_get_all);
    tcase_add_test (tc, test_retry_list);
    suite_add_tcase (s, tc);

    tc = new_tcase ("fault", setup_fault);
    add_common (tc);
    add_bulk (tc);
    tcase_add_test (tc, test_fault_errors);
    tcase_add_test (tc, test_fault_lost_ack);
    tcase_add_test (tc, test_fault_torn_put);
    tcase_add_test (tc, test_fault_seed);
    tcase_add_test (tc, test_fault_down);
    tcase_add_test (tc, test_fault_put_bw);
    tcase_add_test (tc, test_fault_concurrent);
    tcase_add_test (tc, test_fault_logging);
    suite_add_tcase (s, tc);

    tc = new_tcase ("dir-enospc", setup_dir);
    tcase_add_unchecked_fixture (tc, mnt_setup, mnt_teardown);
    tcase_add_test (tc, test_dir_enospc);
    suite_add_tcase (s, tc);
  }

  return run_suite (s);
}
