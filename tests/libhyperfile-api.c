/* libhyperfile API test: every public call, against the INSTALLED
 * header and library (test-libhyperfile.sh compiles it with
 * `pkg-config --cflags --libs hyperfile` from a `make install
 * DESTDIR=` tree), on the store the script names.
 *
 *   libhyperfile-api URL WORKDIR
 *   libhyperfile-api
 *
 * URL is a fresh location (no volume yet); WORKDIR an empty directory
 * for the write-ahead log and the cache.  Without arguments it makes
 * both in a temporary directory it removes at exit: that is how the
 * unit tests run it (tests/Makefile.am: unit/check-file, built against
 * the build tree, so the sanitizer and valgrind runs cover lib/file.c).  With HF_API_ENDPOINT,
 * HF_API_ACCESS_KEY and HF_API_SECRET_KEY set, the S3 settings go
 * through the options struct (the script points the AWS_* environment
 * at other credentials, so the options must win); with HF_API_EXPRESS
 * set too, HF_FILE_EXPRESS (a directory bucket: the S3 Express
 * emulation).  Exit 0 on success,
 * 1 with a line naming the failed check.
 */
#undef NDEBUG
#define _GNU_SOURCE             /* mkdtemp, nftw */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <hyperfile.h>

#define CHECK(cond)                                                     \
  do {                                                                  \
    if (!(cond)) {                                                      \
      fprintf (stderr, "libhyperfile-api: %s:%d: check failed: %s\n",  \
               __FILE__, __LINE__, #cond);                              \
      exit (1);                                                         \
    }                                                                   \
  } while (0)
#define CHECK_ERR(expr, err)                                            \
  do {                                                                  \
    int r_ = (expr);                                                    \
    if (r_ != (err)) {                                                  \
      fprintf (stderr, "libhyperfile-api: %s:%d: %s returned %d (%s), " \
               "expected %d (%s)\n", __FILE__, __LINE__, #expr, r_,     \
               strerror (r_), (err), strerror (err));                   \
      exit (1);                                                         \
    }                                                                   \
  } while (0)
#define OK(expr) CHECK_ERR (expr, 0)

#define BS 4096
#define VOL_SIZE (16 * BS + 1000)    /* rounded up to 17 blocks */

static const char *url, *workdir;
static char wal_dir[4096], cache_dir[4096];

/* The temporary directory made without arguments ("" otherwise). */
static char own_tmp[64];

static int
rm_entry (const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
  return remove (path);
}

static void
rm_own_tmp (void)
{
  if (own_tmp[0])
    nftw (own_tmp, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
}

/* ---- log capture ---- */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static char log_last[1024];
static int log_last_level = -1;
static unsigned log_lines;

static void
test_log (int level, const char *msg)
{
  pthread_mutex_lock (&log_lock);
  snprintf (log_last, sizeof log_last, "%s", msg);
  log_last_level = level;
  log_lines++;
  pthread_mutex_unlock (&log_lock);
  fprintf (stderr, "[lib %d] %s\n", level, msg);  /* the script greps it */
}

/* ---- a model of the volume's bytes ---- */

static uint8_t *model;
static uint64_t model_size;

static uint64_t rng = 88172645463325252ULL;
static uint64_t
next_rand (void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static void
check_model (struct hf_file *f, const char *when)
{
  uint8_t *buf = malloc (model_size);
  uint64_t i;

  CHECK (buf);
  CHECK (hf_file_size (f) == model_size);
  OK (hf_file_pread (f, buf, model_size, 0));
  for (i = 0; i < model_size; i++)
    if (buf[i] != model[i]) {
      fprintf (stderr, "libhyperfile-api: %s: byte %" PRIu64 " is 0x%02x, "
               "expected 0x%02x\n", when, i, buf[i], model[i]);
      exit (1);
    }
  free (buf);
}

static void
base_options (struct hf_file_options *o)
{
  hf_file_options_init (o);
  o->endpoint = getenv ("HF_API_ENDPOINT");
  o->access_key = getenv ("HF_API_ACCESS_KEY");
  o->secret_key = getenv ("HF_API_SECRET_KEY");
  if (getenv ("HF_API_EXPRESS"))
    o->flags |= HF_FILE_EXPRESS;
}

/* ---- concurrent sub-block writes ---- */

#define NTHREADS 8
#define STRIPE_BLOCKS 2         /* blocks 4..5: every byte a partial write */
#define STRIPE_OFF (4 * BS)

struct stripe_arg {
  struct hf_file *f;
  unsigned t;
  int err;
};

/* Thread t writes the single bytes at STRIPE_OFF + i * NTHREADS + t, so
 * the eight threads read-modify-write the same blocks all the time. */
static void *
stripe_thread (void *p)
{
  struct stripe_arg *a = p;
  uint64_t i;

  for (i = 0; i < STRIPE_BLOCKS * BS / NTHREADS && a->err == 0; i++) {
    uint8_t b = (uint8_t) (0x80 + a->t + i);
    a->err = hf_file_pwrite (a->f, &b, 1, STRIPE_OFF + i * NTHREADS + a->t,
                             0);
  }
  return NULL;
}

static void
test_concurrent_partial (struct hf_file *f)
{
  struct stripe_arg a[NTHREADS];
  pthread_t th[NTHREADS];
  unsigned t;
  uint64_t i;

  for (t = 0; t < NTHREADS; t++) {
    a[t] = (struct stripe_arg) { f, t, 0 };
    CHECK (pthread_create (&th[t], NULL, stripe_thread, &a[t]) == 0);
  }
  for (t = 0; t < NTHREADS; t++) {
    CHECK (pthread_join (th[t], NULL) == 0);
    OK (a[t].err);
  }
  for (i = 0; i < STRIPE_BLOCKS * BS; i++)
    model[STRIPE_OFF + i] = (uint8_t) (0x80 + i % NTHREADS + i / NTHREADS);
  check_model (f, "after concurrent sub-block writes");
}

/* ---- extents ---- */

struct ext_state {
  uint64_t next;                /* where the next run must start */
  uint64_t data, hole;          /* bytes of each type */
  unsigned runs;
};

static int
ext_cb (void *opaque, uint64_t offset, uint64_t length, unsigned type)
{
  struct ext_state *s = opaque;
  uint64_t i;

  CHECK (offset == s->next && length > 0);
  CHECK (type == HF_FILE_EXTENT_DATA || type == HF_FILE_EXTENT_HOLE);
  if (type == HF_FILE_EXTENT_HOLE) {
    for (i = offset; i < offset + length; i++)
      CHECK (model[i] == 0);    /* a hole reads as zeros */
    s->hole += length;
  }
  else
    s->data += length;
  s->next = offset + length;
  s->runs++;
  return 0;
}

static int
ext_stop_cb (void *opaque, uint64_t offset, uint64_t length, unsigned type)
{
  (*(unsigned *) opaque)++;
  return EINTR;                 /* stop at once */
}

static void
test_extents (struct hf_file *f)
{
  struct ext_state s = { 0 };
  unsigned calls = 0;
  uint8_t blk[BS];

  /* Blocks 10..13: a hole, data, a hole, data. */
  OK (hf_file_trim (f, 4 * BS, 10 * BS, 0));
  memset (model + 10 * BS, 0, 4 * BS);
  memset (blk, 0x5a, sizeof blk);
  OK (hf_file_pwrite (f, blk, BS, 11 * BS, 0));
  OK (hf_file_pwrite (f, blk, BS, 13 * BS, HF_FILE_FUA));
  memcpy (model + 11 * BS, blk, BS);
  memcpy (model + 13 * BS, blk, BS);

  s.next = 10 * BS;
  OK (hf_file_extents (f, 4 * BS, 10 * BS, ext_cb, &s));
  CHECK (s.next == 14 * BS);
  CHECK (s.data == 2 * BS && s.hole == 2 * BS);
  CHECK (s.runs == 4);

  /* The whole volume is covered exactly. */
  memset (&s, 0, sizeof s);
  OK (hf_file_extents (f, model_size, 0, ext_cb, &s));
  CHECK (s.next == model_size);

  CHECK_ERR (hf_file_extents (f, model_size, 0, ext_stop_cb, &calls), EINTR);
  CHECK (calls == 1);
  CHECK_ERR (hf_file_extents (f, BS, model_size, ext_cb, &s), EINVAL);
  CHECK_ERR (hf_file_extents (f, BS, 0, NULL, NULL), EINVAL);
}

/* ---- snapshots ---- */

struct snap_seen {
  const char *want;
  uint64_t seq;
  unsigned n, found;
};

static int
snap_cb (void *opaque, const char *name, uint64_t seq, uint64_t ts)
{
  struct snap_seen *s = opaque;

  s->n++;
  CHECK (ts > 1700000000ULL * 1000000000ULL);   /* a plausible time */
  if (strcmp (name, s->want) == 0) {
    s->found++;
    CHECK (seq == s->seq);
  }
  return 0;
}

/* ---- snapshot delete, rollback, gc (0.2) ---- */

static void
test_rollback_gc (struct hf_file *f, struct hf_file_options *o)
{
  struct hf_file_gc_report rep;
  struct hf_file *ro;
  uint8_t *rb_model, buf[BS];
  uint64_t seq, ns, head;
  struct snap_seen seen;

  /* Snapshot delete. */
  OK (hf_file_snapshot_create (f, "short-lived", NULL));
  OK (hf_file_snapshot_delete (f, "short-lived"));
  CHECK_ERR (hf_file_snapshot_delete (f, "short-lived"), ENOENT);
  CHECK_ERR (hf_file_snapshot_delete (f, "a/b"), EINVAL);
  CHECK_ERR (hf_file_snapshot_delete (f, NULL), EINVAL);
  memset (&seen, 0, sizeof seen);
  seen.want = "short-lived";
  OK (hf_file_snapshot_list (f, snap_cb, &seen));
  CHECK (seen.n == 2 && seen.found == 0);

  /* Rollback to a named point, with writes after it. */
  memset (buf, 0x5a, BS);
  OK (hf_file_pwrite (f, buf, BS, 3 * BS, 0));
  memcpy (model + 3 * BS, buf, BS);
  OK (hf_file_snapshot_create (f, "rb-point", &seq));
  rb_model = malloc (model_size);
  CHECK (rb_model);
  memcpy (rb_model, model, model_size);
  memset (buf, 0xa5, BS);
  OK (hf_file_pwrite (f, buf, BS, 3 * BS, 0));  /* unflushed: committed */
  OK (hf_file_pwrite (f, buf, 100, 7, 0));      /* first, then undone */
  CHECK_ERR (hf_file_rollback (f, NULL, NULL), EINVAL);
  CHECK_ERR (hf_file_rollback (f, "2026-13-45T99:00:00Z", NULL), EINVAL);
  CHECK (hf_file_rollback (f, "no-such-snapshot", NULL) != 0);
  OK (hf_file_rollback (f, "rb-point", &ns));
  CHECK (ns > seq);
  memcpy (model, rb_model, model_size);
  check_model (f, "after rollback");
  /* The head itself is no rollback. */
  OK (hf_file_snapshot_create (f, "head-now", NULL));
  CHECK_ERR (hf_file_rollback (f, "head-now", NULL), EINVAL);
  OK (hf_file_snapshot_delete (f, "head-now"));
  /* The volume goes on from the rolled-back state. */
  memset (buf, 0x77, BS);
  OK (hf_file_pwrite (f, buf, BS, 4 * BS, HF_FILE_FUA));
  memcpy (model + 4 * BS, buf, BS);
  check_model (f, "written after rollback");

  /* GC: a dry run, then a real one; everything written within the
   * grace period stays, so every point above is still readable. */
  CHECK_ERR (hf_file_gc (f, 0, 0x80, &rep), EINVAL);
  memset (&rep, 0xff, sizeof rep);
  OK (hf_file_gc (f, 0, HF_FILE_GC_DRY_RUN, &rep));
  CHECK (rep.segments >= 3 && rep.bytes > 0 && rep.head_seq >= ns);
  CHECK (rep.reserved[0] == 0 && rep.reserved[7] == 0);
  head = rep.head_seq;
  OK (hf_file_gc (f, 0, 0, &rep));
  CHECK (rep.head_seq >= head && rep.deleted_segments == 0);
  OK (hf_file_gc (f, UINT64_C (3600) * 1000000000, 0, NULL));
  base_options (o);
  o->at = "rb-point";
  OK (hf_file_open (url, o, &ro));
  {
    uint8_t *m = model;

    model = rb_model;
    check_model (ro, "rb-point after gc");
    model = m;
  }
  free (rb_model);
  CHECK_ERR (hf_file_rollback (ro, "rb-point", NULL), EROFS);
  OK (hf_file_gc (ro, 0, HF_FILE_GC_DRY_RUN, NULL));    /* read-only: ok */
  OK (hf_file_snapshot_delete (ro, "rb-point"));        /* a name only */
  OK (hf_file_close (ro));
}

/* Clone the volume at url (no handle open on it) at "before-change"
 * and at its head, next to it: URL-clone. */
static void
test_clone (void)
{
  struct hf_file_options o;
  struct hf_file *c, *p;
  char curl[4200], at[32];
  uint8_t buf[BS], pbuf[BS];
  uint64_t base = 0, head;

  snprintf (curl, sizeof curl, "%s-clone", url);
  base_options (&o);
  CHECK_ERR (hf_file_clone (url, NULL, url, &o, NULL), EINVAL);
  CHECK_ERR (hf_file_clone (NULL, NULL, curl, &o, NULL), EINVAL);
  CHECK_ERR (hf_file_clone (url, "999999", curl, &o, NULL), EINVAL);
  OK (hf_file_clone (url, NULL, curl, &o, &base));
  CHECK (base >= 1);
  CHECK_ERR (hf_file_clone (url, NULL, curl, &o, NULL), EEXIST);

  /* The clone reads the parent's head and writes on its own. */
  OK (hf_file_open (curl, &o, &c));
  check_model (c, "clone");
  memset (buf, 0xc1, BS);
  OK (hf_file_pwrite (c, buf, BS, 0, HF_FILE_FUA));
  OK (hf_file_close (c));
  OK (hf_file_open (url, &o, &p));
  OK (hf_file_pread (p, pbuf, BS, 0));
  CHECK (memcmp (pbuf, model, BS) == 0);        /* parent unchanged */
  head = 0;
  {
    struct hf_file_gc_report rep;

    OK (hf_file_gc (p, 0, HF_FILE_GC_DRY_RUN, &rep));
    head = rep.head_seq;
  }
  OK (hf_file_close (p));
  CHECK (head == base);
  o.flags = HF_FILE_READONLY;
  OK (hf_file_open (curl, &o, &c));
  OK (hf_file_pread (c, pbuf, BS, 0));
  CHECK (memcmp (pbuf, buf, BS) == 0);
  OK (hf_file_close (c));

  /* A clone at an older point, by seq. */
  snprintf (curl, sizeof curl, "%s-clone2", url);
  snprintf (at, sizeof at, "%" PRIu64, base - 1);
  base_options (&o);
  OK (hf_file_clone (url, at, curl, &o, &head));
  CHECK (head == base - 1);
}

/* ---- the test ---- */

/* ---- encryption (0.3) ---- */

/* Does any file under the directory tree at path hold marker? */
static const char *find_marker;
static bool marker_found;

static int
marker_entry (const char *path, const struct stat *st, int flag,
              struct FTW *ftw)
{
  FILE *fp;
  char *data;
  size_t n;

  if (flag != FTW_F || st->st_size == 0)
    return 0;
  CHECK ((fp = fopen (path, "rb")) != NULL);
  CHECK ((data = malloc (st->st_size)) != NULL);
  n = fread (data, 1, st->st_size, fp);
  fclose (fp);
  if (memmem (data, n, find_marker, strlen (find_marker)))
    marker_found = true;
  free (data);
  return 0;
}

/* Encrypted volumes: create with a key file, the wrong or a missing
 * key refused with nothing written, I/O and reopen, no plaintext in a
 * directory store, a clone (with and without the key), a passphrase
 * volume, and options a library of this version must refuse. */
static void
test_crypt (void)
{
  static const char marker[] = "LIBHF-CRYPT-MARKER-7d1e";
  struct hf_file_options o;
  struct hf_file *f;
  char eurl[4200], curl[4200], purl[4200], kf[4200], kf2[4200], kfo[4200];
  uint8_t buf[BS], back[BS];
  size_t i;
  FILE *fp;

  snprintf (eurl, sizeof eurl, "%s-enc", url);
  snprintf (curl, sizeof curl, "%s-enc-clone", url);
  snprintf (purl, sizeof purl, "%s-enc-pass", url);
  snprintf (kf, sizeof kf, "%s/key", workdir);
  snprintf (kf2, sizeof kf2, "%s/key2", workdir);
  snprintf (kfo, sizeof kfo, "%s/key-open", workdir);
  CHECK ((fp = fopen (kf, "w")) != NULL);
  CHECK (chmod (kf, 0600) == 0);
  fputs ("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
         fp);
  CHECK (fclose (fp) == 0);
  CHECK ((fp = fopen (kf2, "w")) != NULL);
  CHECK (chmod (kf2, 0600) == 0);
  fputs ("ffeeddccbbaa99887766554433221100ffeeddccbbaa99887766554433221100\n",
         fp);
  CHECK (fclose (fp) == 0);
  CHECK ((fp = fopen (kfo, "w")) != NULL);
  CHECK (chmod (kfo, 0644) == 0);       /* others may read it: refused */
  fputs ("00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff\n",
         fp);
  CHECK (fclose (fp) == 0);

  /* Options refused before anything is made. */
  base_options (&o);
  o.key_file = kf;
  o.key = "passphrase";
  CHECK_ERR (hf_file_create (eurl, VOL_SIZE, &o), EINVAL);
  o.key = NULL;
  o.key_file = kfo;
  CHECK_ERR (hf_file_create (eurl, VOL_SIZE, &o), EPERM);
  base_options (&o);
  o.key = "";
  CHECK_ERR (hf_file_create (eurl, VOL_SIZE, &o), EINVAL);
  base_options (&o);
  CHECK_ERR (hf_file_open (eurl, &o, &f), ENOENT);      /* nothing made */

  /* Create encrypted; every open without the right key is refused. */
  o.key_file = kf;
  OK (hf_file_create (eurl, VOL_SIZE, &o));
  log_lines = 0;
  CHECK_ERR (hf_file_create (eurl, VOL_SIZE, &o), EEXIST);
  CHECK (log_lines == 0);
  base_options (&o);
  log_lines = 0;
  CHECK_ERR (hf_file_open (eurl, &o, &f), ENOKEY);
  CHECK (log_lines >= 1 && strstr (log_last, "encrypted"));
  o.key_file = kf2;
  log_lines = 0;
  CHECK_ERR (hf_file_open (eurl, &o, &f), EKEYREJECTED);
  CHECK (log_lines >= 1 && strstr (log_last, "wrong key"));
  o.key_file = NULL;
  o.key = "a passphrase";
  CHECK_ERR (hf_file_open (eurl, &o, &f), EINVAL);      /* other kind */
  base_options (&o);
  o.key_file = kf;
  CHECK_ERR (hf_file_open (url, &o, &f), EINVAL);       /* not encrypted */

  /* Write a marker in every block, reopen, read it back. */
  o.segment_size = 65536;
  OK (hf_file_open (eurl, &o, &f));
  for (i = 0; i < BS; i++)
    buf[i] = (uint8_t) marker[i % (sizeof marker - 1)];
  for (i = 0; i < 4; i++)
    OK (hf_file_pwrite (f, buf, BS, i * BS, 0));
  OK (hf_file_snapshot_create (f, "enc-snap", NULL));
  OK (hf_file_close (f));
  OK (hf_file_open (eurl, &o, &f));
  for (i = 0; i < 4; i++) {
    OK (hf_file_pread (f, back, BS, i * BS));
    CHECK (memcmp (back, buf, BS) == 0);
  }
  OK (hf_file_close (f));
  if (strncmp (url, "s3://", 5) != 0) {
    find_marker = marker;
    marker_found = false;
    CHECK (nftw (eurl, marker_entry, 16, FTW_PHYS) == 0);
    CHECK (!marker_found);
    /* The check can fail: the plaintext volume holds its bytes. */
    find_marker = "LIBHF-PLAIN-MARKER-51c9";
    base_options (&o);
    OK (hf_file_create (purl, VOL_SIZE, &o));
    OK (hf_file_open (purl, &o, &f));
    memset (buf, 0, BS);
    memcpy (buf, find_marker, strlen (find_marker));
    OK (hf_file_pwrite (f, buf, BS, 0, HF_FILE_FUA));
    OK (hf_file_close (f));
    CHECK (nftw (purl, marker_entry, 16, FTW_PHYS) == 0);
    CHECK (marker_found);
    snprintf (purl, sizeof purl, "%s-enc-pass2", url);
  }

  /* A clone of the encrypted volume needs the key and is opened with
   * it. */
  base_options (&o);
  CHECK_ERR (hf_file_clone (eurl, NULL, curl, &o, NULL), ENOKEY);
  o.key_file = kf2;
  CHECK_ERR (hf_file_clone (eurl, NULL, curl, &o, NULL), EKEYREJECTED);
  o.key_file = kf;
  OK (hf_file_clone (eurl, "enc-snap", curl, &o, NULL));
  base_options (&o);
  CHECK_ERR (hf_file_open (curl, &o, &f), ENOKEY);
  o.key_file = kf;
  OK (hf_file_open (curl, &o, &f));
  for (i = 0; i < BS; i++)
    buf[i] = (uint8_t) marker[i % (sizeof marker - 1)];
  OK (hf_file_pread (f, back, BS, 3 * BS));
  CHECK (memcmp (back, buf, BS) == 0);
  memset (buf, 0x5a, BS);
  OK (hf_file_pwrite (f, buf, BS, 0, HF_FILE_FUA));
  OK (hf_file_close (f));
  o.flags = HF_FILE_READONLY;
  OK (hf_file_open (curl, &o, &f));
  OK (hf_file_pread (f, back, BS, 0));
  CHECK (memcmp (back, buf, BS) == 0);
  OK (hf_file_close (f));

  /* A passphrase volume. */
  base_options (&o);
  o.key = "correct horse battery staple";
  OK (hf_file_create (purl, VOL_SIZE, &o));
  OK (hf_file_open (purl, &o, &f));
  OK (hf_file_pwrite (f, buf, BS, BS, HF_FILE_FUA));
  OK (hf_file_close (f));
  o.key = "incorrect horse";
  CHECK_ERR (hf_file_open (purl, &o, &f), EKEYREJECTED);
  o.key = "correct horse battery staple";
  o.flags = HF_FILE_READONLY;
  OK (hf_file_open (purl, &o, &f));
  OK (hf_file_pread (f, back, BS, BS));
  CHECK (memcmp (back, buf, BS) == 0);
  OK (hf_file_close (f));
}

int
main (int argc, char **argv)
{
  struct hf_file_options o;
  struct hf_file *f, *g, *ro;
  uint8_t *snap_model, buf[3 * BS];
  uint64_t seq = 0, seq2 = 0, i;
  struct snap_seen seen;
  unsigned n;

  if (argc == 1) {
    static char u[128], w[128];

    snprintf (own_tmp, sizeof own_tmp, "/tmp/hf-check-file.XXXXXX");
    CHECK (mkdtemp (own_tmp) != NULL);
    atexit (rm_own_tmp);        /* also when a check fails */
    snprintf (u, sizeof u, "%s/vol", own_tmp);
    snprintf (w, sizeof w, "%s/work", own_tmp);
    CHECK (mkdir (w, 0700) == 0);
    url = u;
    workdir = w;
  }
  else if (argc == 3) {
    url = argv[1];
    workdir = argv[2];
  }
  else {
    fprintf (stderr, "usage: libhyperfile-api [URL WORKDIR]\n");
    return 2;
  }
  snprintf (wal_dir, sizeof wal_dir, "%s/wal", workdir);
  snprintf (cache_dir, sizeof cache_dir, "%s/cache", workdir);
  hf_file_set_log (test_log);

  /* Version and options. */
  {
    char want[32];
    const char *v = hf_file_version ();

    snprintf (want, sizeof want, "%d.%d.", HF_FILE_VERSION_MAJOR,
              HF_FILE_VERSION_MINOR);
    CHECK (v && strncmp (v, want, strlen (want)) == 0);
  }
  hf_file_options_init (&o);
  CHECK (o.size == sizeof o && o.flags == 0 && o.wal_dir == NULL &&
         o.at == NULL);
  base_options (&o);
  o.size = 8;                   /* not made by hf_file_options_init */
  CHECK_ERR (hf_file_create (url, VOL_SIZE, &o), EINVAL);
  {
    /* A newer caller's struct with an option this version lacks. */
    struct { struct hf_file_options o; uint64_t newer; } big;

    base_options (&big.o);
    big.o.size = sizeof big;
    big.newer = 1;
    CHECK_ERR (hf_file_create (url, VOL_SIZE, &big.o), EINVAL);
    big.newer = 0;              /* unset: accepted */
    big.o.flags = 0x100;
    CHECK_ERR (hf_file_create (url, VOL_SIZE, &big.o), EINVAL);
  }
  {
    /* HF_FILE_EXPRESS reaches the S3 store: a directory bucket not
     * named like one needs an endpoint (refused before any request). */
    char *saved = getenv ("AWS_ENDPOINT_URL");

    saved = saved ? strdup (saved) : NULL;
    unsetenv ("AWS_ENDPOINT_URL");
    base_options (&o);
    o.endpoint = NULL;
    o.flags |= HF_FILE_EXPRESS;
    CHECK_ERR (hf_file_open ("s3://plain-bucket/v", &o, &f), EINVAL);
    CHECK (strstr (log_last, "directory bucket") != NULL);
    if (saved) {
      setenv ("AWS_ENDPOINT_URL", saved, 1);
      free (saved);
    }
  }
  base_options (&o);
  o.block_size = 3000;
  CHECK_ERR (hf_file_create (url, VOL_SIZE, &o), EINVAL);
  base_options (&o);
  o.segment_size = 1000;
  CHECK_ERR (hf_file_open (url, &o, &f), EINVAL);
  base_options (&o);
  o.at = "2026-13-45T99:00:00Z";        /* neither seq, time nor name */
  CHECK_ERR (hf_file_open (url, &o, &f), EINVAL);
  log_lines = 0;
  CHECK_ERR (hf_file_open ("ftp://example/x", NULL, &f), EINVAL);
  CHECK (log_lines >= 1 && log_last_level == HF_FILE_LOG_ERROR &&
         strstr (log_last, "ftp://example/x"));

  /* Create, and the volume that is not there yet. */
  base_options (&o);
  CHECK_ERR (hf_file_open (url, &o, &f), ENOENT);
  CHECK_ERR (hf_file_create (url, 0, &o), EINVAL);
  CHECK_ERR (hf_file_create (url, HF_FILE_MAX_SIZE + 1, &o), EINVAL);
  CHECK (HF_FILE_MAX_SIZE == (UINT64_C (1) << 63) - 65536);
  OK (hf_file_create (url, VOL_SIZE, &o));
  log_lines = 0;
  CHECK_ERR (hf_file_create (url, VOL_SIZE, &o), EEXIST);
  CHECK (log_lines == 0);       /* an ordinary answer, not an error */

  /* compress: refused unless valid; a compressed volume reads back
   * what was written, after a close (from the store's frames). */
  {
    char zurl[4200];
    struct hf_file *z;
    uint8_t wb[3 * BS], rb[3 * BS];

    snprintf (zurl, sizeof zurl, "%s-z", url);
    base_options (&o);
    o.compress = "lz4";
    CHECK_ERR (hf_file_create (zurl, VOL_SIZE, &o), EINVAL);
    o.compress = "zstd:2";
    OK (hf_file_create (zurl, VOL_SIZE, &o));
    base_options (&o);
    OK (hf_file_open (zurl, &o, &z));
    for (i = 0; i < sizeof wb; i++)
      wb[i] = (uint8_t) "libhyperfile "[i % 13];
    OK (hf_file_pwrite (z, wb, sizeof wb, 100, 0));
    OK (hf_file_close (z));
    OK (hf_file_open (zurl, &o, &z));
    OK (hf_file_pread (z, rb, sizeof rb, 100));
    CHECK (memcmp (wb, rb, sizeof wb) == 0);
    OK (hf_file_close (z));
  }

  /* A local directory that is a file fails the open, holding nothing:
   * the next open below takes the lease. */
  {
    char file[4096];
    FILE *fp;

    snprintf (file, sizeof file, "%s/a-file", workdir);
    CHECK ((fp = fopen (file, "w")) != NULL && fclose (fp) == 0);
    o.cache_dir = file;
    CHECK_ERR (hf_file_open (url, &o, &f), ENOTDIR);
    o.cache_dir = NULL;
    o.wal_dir = file;
    CHECK_ERR (hf_file_open (url, &o, &f), ENOTDIR);
  }

  /* Open writable with a write-ahead log and a cache. */
  CHECK (mkdir (wal_dir, 0700) == 0 || errno == EEXIST);
  o.wal_dir = wal_dir;
  o.cache_dir = cache_dir;      /* missing: created */
  o.segment_size = 65536;
  OK (hf_file_open (url, &o, &f));
  CHECK (hf_file_block_size (f) == BS);
  model_size = hf_file_size (f);
  CHECK (model_size == 17 * BS);
  model = calloc (1, model_size + BS);
  CHECK (model);
  check_model (f, "new volume");

  /* A second writer is refused while the first holds the lease. */
  base_options (&o);
  CHECK_ERR (hf_file_open (url, &o, &g), EBUSY);

  /* Sub-block and unaligned I/O at random places, against the model. */
  for (n = 0; n < 400; n++) {
    uint64_t off = next_rand () % model_size;
    uint64_t len = 1 + next_rand () % (sizeof buf);
    unsigned op = next_rand () % 10;

    if (len > model_size - off)
      len = model_size - off;
    if (op < 6) {
      for (i = 0; i < len; i++)
        buf[i] = (uint8_t) next_rand ();
      OK (hf_file_pwrite (f, buf, len, off, op == 0 ? HF_FILE_FUA : 0));
      memcpy (model + off, buf, len);
    }
    else if (op < 8) {
      OK (hf_file_zero (f, len, off, 0));
      memset (model + off, 0, len);
    }
    else if (op < 9) {
      OK (hf_file_trim (f, len, off, 0));
      memset (model + off, 0, len);
    }
    else {
      OK (hf_file_pread (f, buf, len, off));
      CHECK (memcmp (buf, model + off, len) == 0);
    }
  }
  check_model (f, "after random I/O");
  OK (hf_file_flush (f));

  /* Bounds and flags. */
  CHECK_ERR (hf_file_pread (f, buf, 2, model_size - 1), EINVAL);
  CHECK_ERR (hf_file_pwrite (f, buf, 2, model_size - 1, 0), ENOSPC);
  CHECK_ERR (hf_file_zero (f, 1, model_size, 0), ENOSPC);
  CHECK_ERR (hf_file_trim (f, BS, UINT64_MAX - 10, 0), ENOSPC);
  CHECK_ERR (hf_file_pwrite (f, buf, 1, 0, 0x80), EINVAL);
  OK (hf_file_pread (f, buf, 0, model_size));   /* empty, at the end */
  OK (hf_file_prefetch (f, model_size, 0));      /* into the cache */
  OK (hf_file_prefetch (f, 0, model_size));
  CHECK_ERR (hf_file_prefetch (f, 2, model_size - 1), EINVAL);
  check_model (f, "after prefetch");

  test_concurrent_partial (f);
  test_extents (f);

  /* Resize: grow only. */
  CHECK_ERR (hf_file_resize (f, model_size - BS), EOPNOTSUPP);
  CHECK_ERR (hf_file_resize (f, model_size + 100), EINVAL);
  CHECK_ERR (hf_file_resize (f, HF_FILE_MAX_SIZE + BS), EINVAL);
  OK (hf_file_resize (f, model_size));
  OK (hf_file_resize (f, model_size + 2 * BS));
  CHECK (hf_file_size (f) == model_size + 2 * BS);
  model_size += 2 * BS;
  model = realloc (model, model_size);
  CHECK (model);
  memset (model + model_size - 2 * BS, 0, 2 * BS);
  check_model (f, "after grow");
  memset (buf, 0xee, 10);
  OK (hf_file_pwrite (f, buf, 10, model_size - 5 - BS, 0));
  memcpy (model + model_size - 5 - BS, buf, 10);

  /* Snapshots: name the current state, change it afterwards. */
  CHECK_ERR (hf_file_snapshot_create (f, "12345", NULL), EINVAL);
  CHECK_ERR (hf_file_snapshot_create (f, ".hidden", NULL), EINVAL);
  CHECK_ERR (hf_file_snapshot_create (f, "a/b", NULL), EINVAL);
  CHECK_ERR (hf_file_snapshot_create (f, NULL, NULL), EINVAL);
  OK (hf_file_snapshot_create (f, "before-change", &seq));
  CHECK (seq >= 1);
  CHECK_ERR (hf_file_snapshot_create (f, "before-change", NULL), EEXIST);
  snap_model = malloc (model_size);
  CHECK (snap_model);
  memcpy (snap_model, model, model_size);
  memset (buf, 0x33, sizeof buf);
  OK (hf_file_pwrite (f, buf, sizeof buf, 1, 0));
  memcpy (model + 1, buf, sizeof buf);
  OK (hf_file_snapshot_create (f, "after-change", &seq2));
  CHECK (seq2 > seq);
  memset (&seen, 0, sizeof seen);
  seen.want = "before-change";
  seen.seq = seq;
  OK (hf_file_snapshot_list (f, snap_cb, &seen));
  CHECK (seen.n == 2 && seen.found == 1);
  CHECK_ERR (hf_file_snapshot_list (f, NULL, NULL), EINVAL);

  /* Unflushed writes at close are committed by close. */
  memset (buf, 0x44, BS);
  OK (hf_file_pwrite (f, buf, BS, 2 * BS, 0));
  memcpy (model + 2 * BS, buf, BS);
  OK (hf_file_close (f));

  /* Read the snapshot while a writer has the volume open again. */
  base_options (&o);
  o.wal_dir = wal_dir;
  OK (hf_file_open (url, &o, &f));
  check_model (f, "reopened");
  base_options (&o);
  o.at = "before-change";
  o.cache_dir = cache_dir;      /* the writer uses none: free */
  OK (hf_file_open (url, &o, &ro));
  {
    uint8_t *m = model;
    uint64_t sz = model_size;

    model = snap_model;
    check_model (ro, "snapshot before-change");
    model = m;
    model_size = sz;
  }
  CHECK_ERR (hf_file_pwrite (ro, buf, 1, 0, 0), EROFS);
  CHECK_ERR (hf_file_trim (ro, BS, 0, 0), EROFS);
  CHECK_ERR (hf_file_resize (ro, model_size + BS), EROFS);
  CHECK_ERR (hf_file_snapshot_create (ro, "ro", NULL), EROFS);
  OK (hf_file_flush (ro));      /* a no-op */
  memset (&seen, 0, sizeof seen);
  seen.want = "after-change";
  seen.seq = seq2;
  OK (hf_file_snapshot_list (ro, snap_cb, &seen));
  CHECK (seen.n == 2 && seen.found == 1);
  OK (hf_file_close (ro));

  /* at=SEQ works the same; a seq that is no point is refused. */
  base_options (&o);
  {
    char at[32];

    snprintf (at, sizeof at, "%" PRIu64, seq2);
    o.at = at;
    OK (hf_file_open (url, &o, &ro));
    OK (hf_file_pread (ro, buf, sizeof buf, 1));
    memset (snap_model, 0x33, sizeof buf);
    CHECK (memcmp (buf, snap_model, sizeof buf) == 0);
    OK (hf_file_close (ro));
    o.at = "999999";
    CHECK_ERR (hf_file_open (url, &o, &ro), EINVAL);
  }
  test_rollback_gc (f, &o);
  OK (hf_file_close (f));
  test_clone ();
  test_crypt ();

  /* Read-only open beside nothing: no lease, no log needed. */
  base_options (&o);
  o.flags = HF_FILE_READONLY;
  OK (hf_file_open (url, &o, &ro));
  check_model (ro, "read-only");
  OK (hf_file_close (ro));

  OK (hf_file_close (NULL));
  hf_file_set_log (NULL);
  free (model);
  free (snap_model);
  printf ("libhyperfile-api: %s: all checks passed\n", url);
  return 0;
}
