/* Unit tests for lib/wal: append/replay round trips, LSN continuity
 * across reopen, rotation and release, 8 threads appending and syncing
 * (everything replays intact, syncs are grouped), records appended
 * during a write batched into the next one and that batch torn at
 * every record boundary and inside every record, 16 threads appending
 * in a process killed with SIGKILL (every acknowledged record replays),
 * a record never acknowledged before one reserved earlier is written,
 * torn tails and corrupt
 * records in the middle, another volume's log, a second opener, back-
 * pressure, ENOSPC on a small tmpfs (as root), and a failed fdatasync
 * making the log refuse writes.  Prints (never asserts) append and sync
 * rates.
 *
 * HF_WAL_TEST_QUICK=1 shortens the timed parts (for valgrind). */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <semaphore.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "log.h"
#include "test-util.h"
#include "wal.h"

/* Record layout knowledge the tests need to damage files on purpose
 * (see the format at the top of lib/wal-int.h). */
#define FHDR 512
#define ALIGN 512
#define RHDR 64
#define REC_SIZE(datalen) (((datalen) + RHDR + ALIGN - 1) / ALIGN * ALIGN)

static char *tmpdir;
static char waldir[128];
static int quick;

static void
setup (void)
{
  tmpdir = make_tmpdir ();
  snprintf (waldir, sizeof waldir, "%s/wal", tmpdir);
  quick = getenv ("HF_WAL_TEST_QUICK") != NULL;
}

static void
teardown (void)
{
  rm_tmpdir (tmpdir);
  tmpdir = NULL;
}

/* Log sink: counts errors, prints everything. */
static int n_errors;
static pthread_mutex_t sink_lock = PTHREAD_MUTEX_INITIALIZER;

static void
sink (enum hf_log_level level, const char *msg)
{
  pthread_mutex_lock (&sink_lock);
  if (level == HF_LOG_ERROR)
    n_errors++;
  fprintf (stderr, "check-wal: log%s: %s\n",
           level == HF_LOG_ERROR ? " error" : "", msg);
  pthread_mutex_unlock (&sink_lock);
}

/* The data of the record keyed k (the key travels in the offset field). */
static void
fill (uint64_t k, uint8_t *buf, size_t len)
{
  uint64_t s = k * 0x9e3779b97f4a7c15ULL + 1;
  size_t i;

  for (i = 0; i < len; i++) {
    if (i % 8 == 0)
      xorshift64 (&s);
    buf[i] = (uint8_t) (s >> (i % 8 * 8));
  }
}

struct rec {
  uint64_t lsn;
  uint32_t type;
  uint64_t off, len;
  uint32_t crc;                 /* of the data; 0 without */
};

struct recs {
  struct rec *v;
  size_t n, cap;
};

static void
recs_add (struct recs *r, const struct rec *x)
{
  if (r->n == r->cap) {
    r->cap = r->cap ? r->cap * 2 : 64;
    r->v = realloc (r->v, r->cap * sizeof *r->v);
    ck_assert_ptr_nonnull (r->v);
  }
  r->v[r->n++] = *x;
}

static int
collect (void *opaque, uint64_t lsn, uint32_t type, uint64_t offset,
         uint64_t len, const void *data)
{
  struct recs *r = opaque;
  struct rec x = { .lsn = lsn, .type = type, .off = offset, .len = len };

  if (type == HF_WAL_WRITE) {
    ck_assert_ptr_nonnull (data);
    x.crc = hf_crc32c (0, data, len);
  }
  else
    ck_assert_ptr_null (data);
  recs_add (r, &x);
  return 0;
}

static struct hf_wal_options
opts_for (uint8_t uuid_byte, uint64_t file_size, uint64_t max_bytes)
{
  struct hf_wal_options o = {
    .dir = waldir, .file_size = file_size, .max_bytes = max_bytes,
  };

  memset (o.volume_uuid, uuid_byte, sizeof o.volume_uuid);
  return o;
}

static struct hf_wal *
open_wal (const struct hf_wal_options *o)
{
  struct hf_wal *w = NULL;

  ck_assert_int_eq (hf_wal_open (o, &w), 0);
  ck_assert_ptr_nonnull (w);
  return w;
}

/* Append a record of the given type keyed k with datalen bytes of data
 * (WRITE) or a logical length (others); remember it in exp. */
static int
append_rec (struct hf_wal *w, uint32_t type, uint64_t k, uint64_t len,
            struct recs *exp)
{
  uint8_t *buf = NULL;
  struct rec x = { .type = type, .off = k, .len = len };
  int r;

  if (type == HF_WAL_WRITE) {
    buf = malloc (len ? len : 1);
    ck_assert_ptr_nonnull (buf);
    fill (k, buf, len);
    x.crc = hf_crc32c (0, buf, len);
  }
  r = hf_wal_append (w, type, k, buf, len, &x.lsn);
  free (buf);
  if (r == 0 && exp)
    recs_add (exp, &x);
  return r;
}

/* Replay everything after `after` and compare with exp's records of LSN
 * > after, in order. */
static void
check_replay (struct hf_wal *w, uint64_t after, const struct recs *exp)
{
  struct recs got = { 0 };
  size_t i, j = 0;

  ck_assert_int_eq (hf_wal_replay (w, after, collect, &got), 0);
  for (i = 0; i < exp->n; i++) {
    const struct rec *e = &exp->v[i];
    if (e->lsn <= after)
      continue;
    ck_assert_msg (j < got.n, "record LSN %" PRIu64 " missing", e->lsn);
    ck_assert_uint_eq (got.v[j].lsn, e->lsn);
    ck_assert_uint_eq (got.v[j].type, e->type);
    ck_assert_uint_eq (got.v[j].off, e->off);
    ck_assert_uint_eq (got.v[j].len, e->len);
    ck_assert_uint_eq (got.v[j].crc, e->crc);
    j++;
  }
  ck_assert_uint_eq (j, got.n);
  free (got.v);
}

/* Log files in the directory, sorted; returns how many. */
static int
list_files (const char *dir, char names[][64], int max)
{
  struct dirent *d;
  DIR *dp = opendir (dir);
  int n = 0, i, j;

  ck_assert_ptr_nonnull (dp);
  while ((d = readdir (dp)) != NULL)
    if (strncmp (d->d_name, "wal-", 4) == 0 &&
        strcmp (d->d_name, "wal-spare") != 0) {
      ck_assert_int_lt (n, max);
      ck_assert_uint_lt (strlen (d->d_name), 64);
      memcpy (names[n++], d->d_name, strlen (d->d_name) + 1);
    }
  closedir (dp);
  for (i = 1; i < n; i++)
    for (j = i; j > 0 && strcmp (names[j - 1], names[j]) > 0; j--) {
      char t[64];
      memcpy (t, names[j], 64);
      memcpy (names[j], names[j - 1], 64);
      memcpy (names[j - 1], t, 64);
    }
  return n;
}

/* Remove every file in dir (the log's; no subdirectories). */
static void
empty_dir (const char *dir)
{
  struct dirent *d;
  DIR *dp = opendir (dir);
  char p[512];

  if (dp == NULL)
    return;                     /* not created yet */
  while ((d = readdir (dp)) != NULL)
    if (d->d_name[0] != '.') {
      snprintf (p, sizeof p, "%s/%s", dir, d->d_name);
      ck_assert_int_eq (unlink (p), 0);
    }
  closedir (dp);
}

static void
path_of (char *buf, size_t n, const char *dir, const char *name)
{
  snprintf (buf, n, "%s/%s", dir, name);
}

/* ---- Tests ---- */

START_TEST (test_roundtrip)
{
  struct hf_wal_options o = opts_for (1, 0, 0);
  struct recs exp = { 0 };
  struct hf_wal_stats st;
  struct hf_wal *w;
  uint64_t s = 42, lsn, i;
  struct stat sb;
  char p[256];

  w = open_wal (&o);
  ck_assert_uint_eq (hf_wal_last_lsn (w), 0);
  ck_assert_int_eq (stat (waldir, &sb), 0);
  ck_assert_uint_eq (sb.st_mode & 0777, 0700);
  for (i = 1; i <= 300; i++) {
    uint32_t type = 1 + xorshift64 (&s) % 4;
    uint64_t len = type == HF_WAL_WRITE ? xorshift64 (&s) % 20000 :
      xorshift64 (&s) % (UINT64_C (1) << 40);
    if (i % 50 == 0)
      len = 0;
    ck_assert_int_eq (append_rec (w, type, i, len, &exp), 0);
    ck_assert_uint_eq (exp.v[exp.n - 1].lsn, i);
  }
  /* Bad arguments. */
  ck_assert_int_eq (hf_wal_append (w, 9, 0, NULL, 0, &lsn), EINVAL);
  ck_assert_int_eq (hf_wal_append (w, HF_WAL_TRIM, 0, "x", 1, &lsn), EINVAL);
  ck_assert_int_eq (hf_wal_append (w, HF_WAL_WRITE, 0, NULL, 1, &lsn),
                    EINVAL);
  ck_assert_int_eq (hf_wal_replay (w, 0, collect, &exp), EINVAL);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  hf_wal_get_stats (w, &st);
  ck_assert_uint_eq (st.appends, 300);
  ck_assert_uint_eq (st.files, 1);
  ck_assert_uint_eq (st.bytes_live, st.bytes_appended);
  ck_assert_uint_eq (hf_wal_last_lsn (w), 300);
  hf_wal_close (w);

  snprintf (p, sizeof p, "%s/wal-%016" PRIx64 ".log", waldir, UINT64_C (1));
  ck_assert_int_eq (stat (p, &sb), 0);
  ck_assert_uint_eq (sb.st_mode & 0777, 0600);

  /* Reopen: everything, then only what is after 123. */
  w = open_wal (&o);
  ck_assert_uint_eq (hf_wal_last_lsn (w), 300);
  check_replay (w, 0, &exp);
  /* LSNs continue. */
  ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, 301, 4096, &exp), 0);
  ck_assert_uint_eq (exp.v[exp.n - 1].lsn, 301);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  hf_wal_close (w);
  w = open_wal (&o);
  check_replay (w, 123, &exp);
  ck_assert_uint_eq (hf_wal_last_lsn (w), 301);
  /* Without replay, appends still continue. */
  hf_wal_close (w);
  w = open_wal (&o);
  ck_assert_int_eq (append_rec (w, HF_WAL_ZERO, 302, 1 << 20, &exp), 0);
  ck_assert_uint_eq (exp.v[exp.n - 1].lsn, 302);
  hf_wal_close (w);
  w = open_wal (&o);
  check_replay (w, 0, &exp);
  hf_wal_close (w);
  free (exp.v);
}
END_TEST

START_TEST (test_first_lsn)
{
  struct hf_wal_options o = opts_for (1, 0, 0);
  struct recs exp = { 0 };
  struct hf_wal *w;

  o.first_lsn = 1000;
  w = open_wal (&o);
  ck_assert_uint_eq (hf_wal_last_lsn (w), 1000);
  ck_assert_int_eq (append_rec (w, HF_WAL_GROW, 1 << 30, 0, &exp), 0);
  ck_assert_uint_eq (exp.v[0].lsn, 1001);
  hf_wal_close (w);
  /* A log newer than first_lsn continues after its own last record. */
  o.first_lsn = 5;
  w = open_wal (&o);
  ck_assert_uint_eq (hf_wal_last_lsn (w), 1001);
  check_replay (w, 0, &exp);
  hf_wal_close (w);
  free (exp.v);
}
END_TEST

START_TEST (test_rotation_release)
{
  struct hf_wal_options o = opts_for (2, 64 << 10, 0);
  struct recs exp = { 0 };
  struct hf_wal_stats st, st2;
  char names[64][64];
  struct hf_wal *w;
  uint64_t i;
  int n;

  w = open_wal (&o);
  /* 14 records of 4 KiB (4608 bytes on disk) fit a 64 KiB file. */
  for (i = 1; i <= 100; i++)
    ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, i, 4096, &exp), 0);
  /* An oversized record gets a file of its own size. */
  ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, 101, 200000, &exp), 0);
  ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, 102, 4096, &exp), 0);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  hf_wal_get_stats (w, &st);
  n = list_files (waldir, names, 64);
  ck_assert_int_eq (n, (int) st.files);
  ck_assert_int_eq (n, 100 / 14 + 1 + 1 + 1);
  ck_assert_str_eq (names[0], "wal-0000000000000001.log");
  ck_assert_str_eq (names[1], "wal-000000000000000f.log");

  /* Releasing 20 frees the first file only (15..28 holds 21..28). */
  ck_assert_int_eq (hf_wal_release (w, 20), 0);
  hf_wal_get_stats (w, &st2);
  ck_assert_uint_eq (st2.files, st.files - 1);
  ck_assert_uint_eq (st2.bytes_live, st.bytes_live - 14 * REC_SIZE (4096));
  ck_assert_int_eq (list_files (waldir, names, 64), n - 1);
  ck_assert_str_eq (names[0], "wal-000000000000000f.log");
  ck_assert_int_eq (hf_wal_release (w, 42), 0);
  ck_assert_int_eq (list_files (waldir, names, 64), n - 3);
  hf_wal_close (w);

  w = open_wal (&o);
  ck_assert_uint_eq (hf_wal_last_lsn (w), 102);
  check_replay (w, 42, &exp);
  /* Release everything, the tail included: the log is empty but the
   * LSNs go on. */
  ck_assert_int_eq (hf_wal_release (w, 102), 0);
  hf_wal_get_stats (w, &st);
  ck_assert_uint_eq (st.files, 0);
  ck_assert_uint_eq (st.bytes_live, 0);
  ck_assert_int_eq (list_files (waldir, names, 64), 0);
  ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, 103, 100, &exp), 0);
  ck_assert_uint_eq (exp.v[exp.n - 1].lsn, 103);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  hf_wal_close (w);
  w = open_wal (&o);
  check_replay (w, 102, &exp);
  ck_assert_uint_eq (hf_wal_last_lsn (w), 103);
  hf_wal_close (w);
  free (exp.v);
}
END_TEST

/* A released file is kept as "wal-spare" and becomes the next log file
 * (same inode); its old records after the new ones read as the clean
 * end, silently, at every reopen. */
START_TEST (test_reuse)
{
  struct hf_wal_options o = opts_for (3, 64 << 10, 0);
  struct recs exp = { 0 };
  char names[64][64], path[256];
  struct stat sb;
  struct hf_wal *w;
  ino_t spare_ino;
  uint64_t i;
  int errs0 = n_errors;

  w = open_wal (&o);
  /* 14 records of 4 KiB per file: 1..14, 15..28, 29..30. */
  for (i = 1; i <= 30; i++)
    ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, i, 4096, &exp), 0);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  ck_assert_int_eq (hf_wal_release (w, 28), 0);
  ck_assert_int_eq (list_files (waldir, names, 64), 1);
  path_of (path, sizeof path, waldir, "wal-spare");
  ck_assert_int_eq (stat (path, &sb), 0);
  ck_assert_uint_eq (sb.st_size, 64 << 10);
  spare_ino = sb.st_ino;
  /* 31..42 fill the third file, 43..45 go to the reused one. */
  for (i = 31; i <= 45; i++)
    ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, i, 4096, &exp), 0);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  ck_assert_int_ne (stat (path, &sb), 0);
  ck_assert_int_eq (list_files (waldir, names, 64), 2);
  ck_assert_str_eq (names[1], "wal-000000000000002b.log");
  path_of (path, sizeof path, waldir, names[1]);
  ck_assert_int_eq (stat (path, &sb), 0);
  ck_assert_uint_eq (sb.st_ino, spare_ino);
  hf_wal_close (w);             /* as after a crash: nothing more synced */

  w = open_wal (&o);
  ck_assert_uint_eq (hf_wal_last_lsn (w), 45);
  check_replay (w, 28, &exp);
  ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, 46, 4096, &exp), 0);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  hf_wal_close (w);
  w = open_wal (&o);
  ck_assert_uint_eq (hf_wal_last_lsn (w), 46);
  check_replay (w, 28, &exp);
  hf_wal_close (w);
  ck_assert_int_eq (n_errors, errs0);
  free (exp.v);
}
END_TEST

/* A reused file's old contents do not line up with its new records:
 * after 4 KiB records, a file reused for 8 KiB ones holds the middle of
 * an old record right after the new ones, and when it is full and the
 * log goes on in the next file, an old tail.  Neither is damage: every
 * record comes back, in order, with nothing logged, and appends go on. */
START_TEST (test_reuse_misaligned)
{
  struct hf_wal_options o = opts_for (4, 64 << 10, 0);
  struct recs exp = { 0 };
  char names[64][64];
  struct hf_wal *w;
  uint64_t i, k = 1, last;
  int errs0 = n_errors;

  w = open_wal (&o);
  /* 14 records of 4 KiB per file: 1..14, 15..28. */
  for (i = 0; i < 28; i++)
    ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, k++, 4096, &exp), 0);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  ck_assert_int_eq (hf_wal_release (w, 14), 0);      /* first -> spare */
  /* 29..: 8 KiB records (8704 bytes on disk) fill the second file's
   * rest, then the reused one (7 of them, and an old 4 KiB record's
   * middle after them), then a new file. */
  for (i = 0; i < 14; i++)
    ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, k++, 8192, &exp), 0);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  ck_assert_int_ge (list_files (waldir, names, 64), 3);
  last = hf_wal_last_lsn (w);
  hf_wal_close (w);

  w = open_wal (&o);
  ck_assert_uint_eq (hf_wal_last_lsn (w), last);
  check_replay (w, 14, &exp);
  ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, k++, 4096, &exp), 0);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  hf_wal_close (w);
  w = open_wal (&o);
  ck_assert_uint_eq (hf_wal_last_lsn (w), last + 1);
  check_replay (w, 14, &exp);
  hf_wal_close (w);
  ck_assert_int_eq (n_errors, errs0);
  free (exp.v);
}
END_TEST

/* ---- A release racing a reuse ---- */

/* -Wl,--wrap=renameat (tests/Makefile.am): when armed, the rename of
 * "wal-spare" to a log name (hf_wal_reuse) first runs hf_wal_release
 * of race_upto, which may want to keep a released file as "wal-spare"
 * itself: the interleaving of a release on another thread landing in
 * the window between rotate taking the spare and reuse renaming it. */
extern int __real_renameat (int, const char *, int, const char *);
int __wrap_renameat (int, const char *, int, const char *);
static struct hf_wal *race_wal;
static uint64_t race_upto;
static int race_fired;

int
__wrap_renameat (int olddirfd, const char *oldpath, int newdirfd,
                 const char *newpath)
{
  if (race_wal && strcmp (oldpath, "wal-spare") == 0) {
    struct hf_wal *w = race_wal;
    race_wal = NULL;            /* once; release renames too */
    ck_assert_int_eq (hf_wal_release (w, race_upto), 0);
    race_fired++;
  }
  return __real_renameat (olddirfd, oldpath, newdirfd, newpath);
}

/* Rotation takes the spare and renames it to the new log name without
 * the lock; a release in that window must not put another file under
 * "wal-spare" (the reuse would then rename that file, and the live tail
 * would write into an unlinked inode: flushed records gone at reopen). */
START_TEST (test_reuse_release_race)
{
  struct hf_wal_options o = opts_for (9, 64 << 10, 0);
  struct recs exp = { 0 };
  char names[64][64], path[256];
  struct stat sb;
  struct hf_wal *w;
  uint64_t i;
  int errs0 = n_errors;

  w = open_wal (&o);
  /* 14 records of 4 KiB per file: 1..14 (A), 15..28 (B), 29 (C). */
  for (i = 1; i <= 29; i++)
    ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, i, 4096, &exp), 0);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  ck_assert_int_eq (hf_wal_release (w, 14), 0);       /* A -> spare */
  path_of (path, sizeof path, waldir, "wal-spare");
  ck_assert_int_eq (stat (path, &sb), 0);
  /* 30..42 fill C; 43 rotates into the spare, and B is released in the
   * middle of that. */
  race_upto = 28;
  race_fired = 0;
  for (i = 30; i <= 44; i++) {
    if (i == 43)
      race_wal = w;
    ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, i, 4096, &exp), 0);
  }
  ck_assert_int_eq (race_fired, 1);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  ck_assert_int_eq (list_files (waldir, names, 64), 2);
  ck_assert_str_eq (names[1], "wal-000000000000002b.log");
  hf_wal_close (w);

  w = open_wal (&o);
  ck_assert_uint_eq (hf_wal_last_lsn (w), 44);
  check_replay (w, 28, &exp);
  hf_wal_close (w);
  ck_assert_int_eq (n_errors, errs0);
  free (exp.v);
}
END_TEST

/* In a file that was never reused, a record with an older LSN where the
 * next one should be is damage (nothing but damage puts it there), and
 * is logged as such; the log ends before it. */
START_TEST (test_old_lsn_fresh)
{
  struct hf_wal_options o = opts_for (10, 0, 0);
  struct recs exp = { 0 };
  char names[8][64], p[256];
  uint8_t rec[REC_SIZE (4096)];
  struct hf_wal *w;
  uint64_t i;
  int fd;

  w = open_wal (&o);
  for (i = 1; i <= 6; i++)
    ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, i, 4096, &exp), 0);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  hf_wal_close (w);
  ck_assert_int_eq (list_files (waldir, names, 8), 1);
  path_of (p, sizeof p, waldir, names[0]);
  /* Record 2, intact, copied over record 5. */
  fd = open (p, O_RDWR);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (pread (fd, rec, sizeof rec, FHDR + 1 * sizeof rec),
                    sizeof rec);
  ck_assert_int_eq (pwrite (fd, rec, sizeof rec, FHDR + 4 * sizeof rec),
                    sizeof rec);
  close (fd);

  n_errors = 0;
  w = open_wal (&o);
  ck_assert_int_eq (n_errors, 1);       /* logged, once */
  ck_assert_uint_eq (hf_wal_last_lsn (w), 4);
  exp.n = 4;
  check_replay (w, 0, &exp);
  hf_wal_close (w);
  free (exp.v);
}
END_TEST

/* ---- Concurrency ---- */

#define NTHREADS 8

struct worker {
  pthread_t tid;
  struct hf_wal *w;
  int id, n, sync_every;
  struct recs exp;              /* what this thread appended */
  size_t synced;                /* exp.v[0 .. synced) are durable */
  double deadline;              /* bench: stop at this time if > 0 */
  uint64_t ops;
};

static void *
worker_run (void *arg)
{
  struct worker *t = arg;
  uint64_t s = 0x1234567 + t->id, i;

  for (i = 0; t->deadline > 0 || i < (uint64_t) t->n; i++) {
    uint64_t k = (uint64_t) t->id << 32 | i;
    uint32_t type = xorshift64 (&s) % 5 == 0 ? HF_WAL_TRIM : HF_WAL_WRITE;
    uint64_t len = t->deadline > 0 ? 4096 : xorshift64 (&s) % 16384;

    if (t->deadline > 0 && i % 16 == 0 && now () > t->deadline)
      break;
    if (t->deadline > 0)
      type = HF_WAL_WRITE;
    ck_assert_int_eq (append_rec (t->w, type, k, len, &t->exp), 0);
    if (t->sync_every && (i + 1) % t->sync_every == 0) {
      ck_assert_int_eq (hf_wal_sync (t->w), 0);
      t->synced = t->exp.n;
    }
    t->ops++;
  }
  return NULL;
}

static int
rec_cmp (const void *a, const void *b)
{
  const struct rec *x = a, *y = b;

  return x->lsn < y->lsn ? -1 : x->lsn > y->lsn;
}

START_TEST (test_concurrent)
{
  struct hf_wal_options o = opts_for (3, 1 << 20, 0);
  struct worker t[NTHREADS];
  struct recs all = { 0 };
  struct hf_wal_stats st;
  struct hf_wal *w;
  int i;
  size_t j;

  w = open_wal (&o);
  memset (t, 0, sizeof t);
  for (i = 0; i < NTHREADS; i++) {
    t[i].w = w;
    t[i].id = i;
    t[i].n = quick ? 50 : 400;
    t[i].sync_every = 1 + i % 3;
    ck_assert_int_eq (pthread_create (&t[i].tid, NULL, worker_run, &t[i]), 0);
  }
  for (i = 0; i < NTHREADS; i++)
    pthread_join (t[i].tid, NULL);
  hf_wal_get_stats (w, &st);
  fprintf (stderr, "check-wal: concurrent: %" PRIu64 " appends, %" PRIu64
           " sync calls, %" PRIu64 " fdatasyncs, %" PRIu64 " files\n",
           st.appends, st.sync_waiters, st.syncs, st.files);
  ck_assert_uint_lt (st.syncs, st.sync_waiters);
  ck_assert_uint_gt (st.files, 1);
  hf_wal_close (w);             /* no final sync: page cache survives */

  for (i = 0; i < NTHREADS; i++)
    for (j = 0; j < t[i].exp.n; j++)
      recs_add (&all, &t[i].exp.v[j]);
  qsort (all.v, all.n, sizeof *all.v, rec_cmp);
  for (j = 0; j < all.n; j++)
    ck_assert_uint_eq (all.v[j].lsn, j + 1);  /* dense, unique */
  w = open_wal (&o);
  ck_assert_uint_eq (hf_wal_last_lsn (w), all.n);
  check_replay (w, 0, &all);
  hf_wal_close (w);
  for (i = 0; i < NTHREADS; i++)
    free (t[i].exp.v);
  free (all.v);
}
END_TEST

/* ---- Batched record writes (GROUP WRITE in lib/wal-int.h) ---- */

/* -Wl,--wrap=pwritev,--wrap=sem_wait (tests/Makefile.am): when
 * gate_armed, the next record write (the log's only pwritev) holds
 * until gate_want appenders wait behind it (sem_wait is where a record
 * waits for the write in flight), so that they are queued together
 * deterministically. */
extern ssize_t __real_pwritev (int, const struct iovec *, int, off_t);
ssize_t __wrap_pwritev (int, const struct iovec *, int, off_t);
extern int __real_sem_wait (sem_t *);
int __wrap_sem_wait (sem_t *);
static int gate_armed, gate_entered, gate_want, gate_timeout;
static int sem_waiters;

ssize_t
__wrap_pwritev (int fd, const struct iovec *iov, int n, off_t off)
{
  if (__atomic_exchange_n (&gate_armed, 0, __ATOMIC_ACQ_REL)) {
    double deadline = now () + 30;

    __atomic_store_n (&gate_entered, 1, __ATOMIC_RELEASE);
    while (__atomic_load_n (&sem_waiters, __ATOMIC_ACQUIRE) < gate_want) {
      if (now () > deadline) {
        gate_timeout = 1;       /* asserted by the test */
        break;
      }
      usleep (1000);
    }
  }
  return __real_pwritev (fd, iov, n, off);
}

int
__wrap_sem_wait (sem_t *s)
{
  __atomic_add_fetch (&sem_waiters, 1, __ATOMIC_ACQ_REL);
  return __real_sem_wait (s);
}

struct batch_arg {
  pthread_t tid;
  struct hf_wal *w;
  uint32_t type;
  uint64_t k, len;
  struct recs exp;
};

static void *
batch_run (void *arg)
{
  struct batch_arg *a = arg;

  ck_assert_int_eq (append_rec (a->w, a->type, a->k, a->len, &a->exp), 0);
  return NULL;
}

/* Records appended while a record write is in flight go out in one
 * write; a batch torn anywhere (the file cut there, or zeros from there
 * on, as a crash before the page cache reached the disk leaves a
 * preallocated file) replays exactly its records before the tear, and
 * appends continue after them. */
START_TEST (test_batch_torn)
{
  static const struct { uint32_t type; uint64_t len; } spec[] = {
    { HF_WAL_WRITE, 3000 },     /* the write in flight, alone */
    { HF_WAL_WRITE, 100 }, { HF_WAL_WRITE, 4096 }, { HF_WAL_TRIM, 1 << 20 },
    { HF_WAL_WRITE, 5000 }, { HF_WAL_WRITE, 700 }, { HF_WAL_WRITE, 8192 },
    { HF_WAL_WRITE, 1 },
  };
  enum { N = sizeof spec / sizeof spec[0] };
  struct hf_wal_options o = opts_for (13, 64 << 10, 0);
  struct batch_arg a[N];
  struct recs exp = { 0 };
  uint64_t bound[N + 1], datalen[N], cuts[8 * N];
  struct hf_wal_stats st;
  char names[8][64], p[256];
  uint8_t *image;
  size_t ncut = 0, i, j;
  struct stat sb;
  struct hf_wal *w;
  int fd, mode;

  w = open_wal (&o);
  memset (a, 0, sizeof a);
  for (i = 0; i < N; i++) {
    a[i].w = w;
    a[i].type = spec[i].type;
    a[i].k = 1000 + i;
    a[i].len = spec[i].len;
  }
  sem_waiters = 0;
  gate_entered = gate_timeout = 0;
  gate_want = N - 1;
  gate_armed = 1;
  ck_assert_int_eq (pthread_create (&a[0].tid, NULL, batch_run, &a[0]), 0);
  WAIT_UNTIL (__atomic_load_n (&gate_entered, __ATOMIC_ACQUIRE), 60,
              "the first appender's record write at the gate");
  for (i = 1; i < N; i++)
    ck_assert_int_eq (pthread_create (&a[i].tid, NULL, batch_run, &a[i]),
                      0);
  for (i = 0; i < N; i++) {
    pthread_join (a[i].tid, NULL);
    ck_assert_uint_eq (a[i].exp.n, 1);
    recs_add (&exp, &a[i].exp.v[0]);
    free (a[i].exp.v);
  }
  ck_assert_int_eq (gate_timeout, 0);
  hf_wal_get_stats (w, &st);
  ck_assert_uint_eq (st.appends, N);
  ck_assert_uint_eq (st.writes, 2);     /* the first alone, then the rest */
  hf_wal_close (w);                     /* no sync: the page cache stays */

  /* Where each record lies: LSN order from the start of the file. */
  qsort (exp.v, exp.n, sizeof *exp.v, rec_cmp);
  ck_assert_uint_eq (exp.v[0].off, 1000);     /* the first one first */
  bound[0] = FHDR;
  for (i = 0; i < N; i++) {
    ck_assert_uint_eq (exp.v[i].lsn, i + 1);
    datalen[i] = exp.v[i].type == HF_WAL_WRITE ? exp.v[i].len : 0;
    bound[i + 1] = bound[i] + REC_SIZE (datalen[i]);
  }
  /* Every boundary of the batch, and inside each of its records: in
   * the header, in the data, in the padding. */
  for (i = 1; i <= N; i++) {
    cuts[ncut++] = bound[i];
    if (i == N)
      break;
    cuts[ncut++] = bound[i] + 1;
    cuts[ncut++] = bound[i] + RHDR / 2;
    if (datalen[i] > 1)
      cuts[ncut++] = bound[i] + RHDR + datalen[i] / 2;
    if (RHDR + datalen[i] < bound[i + 1] - bound[i])
      cuts[ncut++] = bound[i] + RHDR + datalen[i] + 1;
  }

  ck_assert_int_eq (list_files (waldir, names, 8), 1);
  path_of (p, sizeof p, waldir, names[0]);
  ck_assert_int_eq (stat (p, &sb), 0);
  image = malloc (sb.st_size);
  ck_assert_ptr_nonnull (image);
  fd = open (p, O_RDONLY);
  ck_assert_int_ge (fd, 0);
  ck_assert_int_eq (pread (fd, image, sb.st_size, 0), sb.st_size);
  close (fd);

  for (mode = 0; mode < 2; mode++)
    for (j = 0; j < ncut; j++) {
      uint64_t c = cuts[j];
      size_t good = 0;
      bool clean;
      struct recs e2 = { 0 };

      /* The intact file, then the tear. */
      fd = open (p, O_WRONLY);
      ck_assert_int_ge (fd, 0);
      ck_assert_int_eq (pwrite (fd, image, sb.st_size, 0), sb.st_size);
      if (mode == 0)
        ck_assert_int_eq (ftruncate (fd, c), 0);
      else {
        uint8_t z[4096] = { 0 };
        uint64_t q;
        for (q = c; q < bound[N]; q += sizeof z)
          ck_assert_int_eq (pwrite (fd, z, q + sizeof z > bound[N] ?
                                    bound[N] - q : sizeof z, q) >= 0, 1);
      }
      ck_assert_int_eq (close (fd), 0);
      /* Cut: whole records before c.  Zeros: a record whose header and
       * data are before c is whole (its padding is zeros anyway). */
      while (good < N &&
             (mode == 0 ? bound[good + 1] <= c :
              bound[good] + RHDR + datalen[good] <= c))
        good++;
      clean = good == N || c == bound[good] ||
        (mode == 1 && c <= bound[good]);
      for (i = 0; i < good; i++)
        recs_add (&e2, &exp.v[i]);

      n_errors = 0;
      w = open_wal (&o);
      ck_assert_msg (n_errors == (clean ? 0 : 1),
                     "mode %d cut at %" PRIu64 ": %d errors logged", mode, c,
                     n_errors);
      ck_assert_uint_eq (hf_wal_last_lsn (w), good);
      check_replay (w, 0, &e2);
      /* Appends follow the last whole record. */
      ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, 5000 + j, 512, &e2), 0);
      ck_assert_uint_eq (e2.v[e2.n - 1].lsn, good + 1);
      hf_wal_close (w);
      n_errors = 0;
      w = open_wal (&o);
      ck_assert_int_eq (n_errors, 0);
      check_replay (w, 0, &e2);
      hf_wal_close (w);
      free (e2.v);
    }
  free (image);
  free (exp.v);
}
END_TEST

/* Many threads append records of every size while the process is
 * killed (SIGKILL, in a child): every record an append acknowledged is
 * replayed, intact, and the LSNs replayed are dense.  The page cache
 * survives a killed process, so nothing acknowledged may be missing:
 * a record acknowledged before its write completed, or one a batch
 * left out, would be. */
struct ack {
  uint64_t lsn, k, len;
  uint32_t type, crc;
};

struct kill_arg {
  pthread_t tid;
  struct hf_wal *w;
  int id, pipefd;
};

static void *
kill_run (void *arg)
{
  struct kill_arg *a = arg;
  uint64_t s = 0x5151 + (uint64_t) a->id, i;
  static const uint64_t sizes[] = { 0, 1, 100, 448, 449, 4096, 5000, 16384 };

  for (i = 0;; i++) {
    struct ack m = { .k = (uint64_t) a->id << 32 | i };
    uint8_t *buf;

    m.type = xorshift64 (&s) % 6 == 0 ? HF_WAL_ZERO : HF_WAL_WRITE;
    m.len = sizes[xorshift64 (&s) % 8];
    buf = malloc (m.len + 1);
    if (buf == NULL)
      abort ();
    fill (m.k, buf, m.len);
    m.crc = m.type == HF_WAL_WRITE ? hf_crc32c (0, buf, m.len) : 0;
    if (hf_wal_append (a->w, m.type, m.k, m.type == HF_WAL_WRITE ? buf : NULL,
                       m.len, &m.lsn) != 0)
      abort ();
    free (buf);
    if (write (a->pipefd, &m, sizeof m) != sizeof m)
      abort ();
  }
  return NULL;
}

struct kill_check {
  uint64_t n, bad;
  struct ack *got;              /* by LSN - 1 */
  uint64_t cap;
};

static int
kill_collect (void *opaque, uint64_t lsn, uint32_t type, uint64_t offset,
              uint64_t len, const void *data)
{
  struct kill_check *c = opaque;
  struct ack m = { .lsn = lsn, .k = offset, .len = len, .type = type };

  if (lsn != c->n + 1)
    c->bad++;                   /* not dense */
  if (type == HF_WAL_WRITE) {
    uint8_t *buf = malloc (len + 1);
    ck_assert_ptr_nonnull (buf);
    fill (offset, buf, len);
    if (memcmp (buf, data, len) != 0)
      c->bad++;                 /* replayed data is not what was written */
    m.crc = hf_crc32c (0, data, len);
    free (buf);
  }
  if (c->n == c->cap) {
    c->cap = c->cap ? 2 * c->cap : 1024;
    c->got = realloc (c->got, c->cap * sizeof *c->got);
    ck_assert_ptr_nonnull (c->got);
  }
  c->got[c->n++] = m;
  return 0;
}

#define KILL_THREADS 16

START_TEST (test_concurrent_kill)
{
  struct hf_wal_options o = opts_for (14, 256 << 10, 0);
  struct kill_check c = { 0 };
  struct ack *acks = NULL, m;
  size_t nack = 0, cap = 0, i, want = quick ? 2000 : 20000;
  int pfd[2], status;
  struct hf_wal *w;
  pid_t pid;
  ssize_t r;

  ck_assert_int_eq (pipe (pfd), 0);
  pid = fork ();
  ck_assert_int_ge (pid, 0);
  if (pid == 0) {
    struct kill_arg a[KILL_THREADS];

    close (pfd[0]);
    if (hf_wal_open (&o, &w) != 0)
      _exit (2);
    for (i = 0; i < KILL_THREADS; i++) {
      a[i].w = w;
      a[i].id = (int) i;
      a[i].pipefd = pfd[1];
      if (pthread_create (&a[i].tid, NULL, kill_run, &a[i]) != 0)
        _exit (3);
    }
    for (;;)
      pause ();
  }
  close (pfd[1]);
  while ((r = read (pfd[0], &m, sizeof m)) != 0) {
    if (r == -1 && errno == EINTR)
      continue;
    ck_assert_int_eq (r, sizeof m);
    if (nack == cap) {
      cap = cap ? 2 * cap : 4096;
      acks = realloc (acks, cap * sizeof *acks);
      ck_assert_ptr_nonnull (acks);
    }
    acks[nack++] = m;
    if (nack == want)
      ck_assert_int_eq (kill (pid, SIGKILL), 0);
  }
  close (pfd[0]);
  ck_assert_int_eq (waitpid (pid, &status, 0), pid);
  ck_assert (WIFSIGNALED (status) && WTERMSIG (status) == SIGKILL);

  n_errors = 0;
  w = open_wal (&o);
  ck_assert_int_eq (hf_wal_replay (w, 0, kill_collect, &c), 0);
  hf_wal_close (w);
  fprintf (stderr, "check-wal: concurrent kill: %zu acknowledged, %" PRIu64
           " replayed\n", nack, c.n);
  ck_assert_uint_eq (c.bad, 0);
  ck_assert_uint_ge (c.n, nack);
  for (i = 0; i < nack; i++) {
    const struct ack *a = &acks[i], *g;
    ck_assert_uint_ge (a->lsn, 1);
    ck_assert_msg (a->lsn <= c.n, "acknowledged LSN %" PRIu64
                   " not replayed (%" PRIu64 " were)", a->lsn, c.n);
    g = &c.got[a->lsn - 1];
    ck_assert_uint_eq (g->k, a->k);
    ck_assert_uint_eq (g->type, a->type);
    ck_assert_uint_eq (g->len, a->len);
    ck_assert_uint_eq (g->crc, a->crc);
  }
  free (c.got);
  free (acks);
}
END_TEST

/* Copy the regular files of src into dst (created): what a process
 * started after a kill finds of a log (the page cache). */
static void
copy_dir (const char *src, const char *dst)
{
  struct dirent *d;
  DIR *dp = opendir (src);
  char p[512], q[512], buf[65536];

  ck_assert_ptr_nonnull (dp);
  ck_assert_int_eq (mkdir (dst, 0700), 0);
  while ((d = readdir (dp)) != NULL) {
    int in, out;
    ssize_t n;

    if (d->d_name[0] == '.')
      continue;
    snprintf (p, sizeof p, "%s/%s", src, d->d_name);
    snprintf (q, sizeof q, "%s/%s", dst, d->d_name);
    in = open (p, O_RDONLY);
    ck_assert_int_ge (in, 0);
    out = open (q, O_WRONLY | O_CREAT | O_EXCL, 0600);
    ck_assert_int_ge (out, 0);
    while ((n = read (in, buf, sizeof buf)) > 0)
      ck_assert_int_eq (write (out, buf, (size_t) n), n);
    ck_assert_int_eq (n, 0);
    close (in);
    ck_assert_int_eq (close (out), 0);
  }
  closedir (dp);
}

struct prefix_arg {
  struct hf_wal *w;
  struct recs exp;
  int done;
};

static void *
prefix_run (void *arg)
{
  struct prefix_arg *a = arg;

  ck_assert_int_eq (append_rec (a->w, HF_WAL_WRITE, 2, 4096, &a->exp), 0);
  __atomic_store_n (&a->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

/* A record is acknowledged only once every record reserved before it
 * is written: replay stops at the first slot not written, so a record
 * acknowledged behind one would be lost by a kill at that moment
 * (nbdkit-hyperfile-plugin(1): "If the server process is killed, every
 * acknowledged write survives").  Record 1 is reserved and held back;
 * the append of record 2 must wait for it. */
START_TEST (test_ack_prefix)
{
  struct hf_wal_options o = opts_for (15, 0, 0), oc;
  struct prefix_arg a = { 0 };
  struct hf_wal_ticket t1;
  struct recs exp = { 0 }, none = { 0 };
  struct rec x1 = { .type = HF_WAL_WRITE, .off = 1, .len = 4096 };
  char copy[160];
  uint8_t buf[4096];
  pthread_t tid;
  double deadline;
  struct hf_wal *w;

  w = open_wal (&o);
  fill (1, buf, sizeof buf);
  x1.crc = hf_crc32c (0, buf, sizeof buf);
  ck_assert_int_eq (hf_wal_try_reserve (w, HF_WAL_WRITE, buf, sizeof buf,
                                        &t1), 0);
  ck_assert_uint_eq (t1.lsn, 1);
  x1.lsn = t1.lsn;
  a.w = w;
  sem_waiters = 0;
  ck_assert_int_eq (pthread_create (&tid, NULL, prefix_run, &a), 0);
  deadline = now () + 30;
  while (!__atomic_load_n (&a.done, __ATOMIC_ACQUIRE) &&
         __atomic_load_n (&sem_waiters, __ATOMIC_ACQUIRE) == 0 &&
         now () < deadline)
    usleep (1000);
  ck_assert_msg (!__atomic_load_n (&a.done, __ATOMIC_ACQUIRE),
                 "record 2 acknowledged while record 1 was not written");
  ck_assert_int_eq (sem_waiters, 1);
  /* Killed now: the log ends before the hole, and nothing it loses was
   * acknowledged. */
  snprintf (copy, sizeof copy, "%s/killed", tmpdir);
  copy_dir (waldir, copy);
  oc = o;
  oc.dir = copy;
  {
    struct hf_wal *wc = open_wal (&oc);
    ck_assert_uint_eq (hf_wal_last_lsn (wc), 0);
    check_replay (wc, 0, &none);
    hf_wal_close (wc);
  }
  /* Record 1 written: record 2 is acknowledged too. */
  ck_assert_int_eq (hf_wal_write_reserved (w, &t1, HF_WAL_WRITE, 1, buf,
                                           sizeof buf), 0);
  pthread_join (tid, NULL);
  ck_assert_int_eq (a.done, 1);
  ck_assert_uint_eq (a.exp.v[0].lsn, 2);
  recs_add (&exp, &x1);
  recs_add (&exp, &a.exp.v[0]);
  hf_wal_close (w);
  w = open_wal (&o);
  check_replay (w, 0, &exp);
  hf_wal_close (w);
  free (a.exp.v);
  free (exp.v);
}
END_TEST

/* ---- Damage ---- */

START_TEST (test_torn_tail)
{
  struct hf_wal_options o = opts_for (4, 0, 0);
  struct recs exp = { 0 };
  char names[8][64], p[256];
  struct hf_wal *w;
  uint64_t i, last_off;
  int mode;

  for (mode = 0; mode < 3; mode++) {
    exp.n = 0;
    /* A fresh file each time: in a reused one (test_reuse_misaligned)
     * a torn last record cannot be told from the file's old contents
     * and is the end of the log without an error. */
    empty_dir (waldir);
    w = open_wal (&o);
    ck_assert_int_eq (hf_wal_release (w, UINT64_MAX), 0);
    for (i = 1; i <= 10; i++)
      ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, i, 3000, &exp), 0);
    ck_assert_int_eq (hf_wal_sync (w), 0);
    hf_wal_close (w);
    ck_assert_int_eq (list_files (waldir, names, 8), 1);
    path_of (p, sizeof p, waldir, names[0]);
    last_off = FHDR + 9 * REC_SIZE (3000);
    if (mode == 0)              /* cut mid-record */
      ck_assert_int_eq (truncate (p, last_off + 1000), 0);
    else if (mode == 1)         /* a flipped data byte */
      xor_byte (p, last_off + RHDR + 777, 0x40);
    else                        /* a flipped header byte (the LSN) */
      xor_byte (p, last_off + 16, 0x40);
    exp.n = 9;

    n_errors = 0;
    w = open_wal (&o);
    ck_assert_int_eq (n_errors, 1);  /* logged, once */
    ck_assert_uint_eq (hf_wal_last_lsn (w) - exp.v[0].lsn + 1, 9);
    check_replay (w, 0, &exp);
    /* Appends follow the last good record and replay correctly. */
    for (i = 0; i < 3; i++)
      ck_assert_int_eq (append_rec (w, i == 1 ? HF_WAL_TRIM :
                                    HF_WAL_WRITE, 100 + i, 100, &exp), 0);
    ck_assert_uint_eq (exp.v[9].lsn, exp.v[8].lsn + 1);
    ck_assert_int_eq (hf_wal_sync (w), 0);
    hf_wal_close (w);
    n_errors = 0;
    w = open_wal (&o);
    ck_assert_int_eq (n_errors, 0);
    check_replay (w, 0, &exp);
    hf_wal_close (w);
  }
  free (exp.v);
}
END_TEST

START_TEST (test_corrupt_middle)
{
  struct hf_wal_options o = opts_for (5, 64 << 10, 0);
  struct recs exp = { 0 };
  char names[8][64], p[256];
  struct hf_wal *w;
  uint64_t i;

  w = open_wal (&o);
  for (i = 1; i <= 40; i++)
    ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, i, 4096, &exp), 0);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  hf_wal_close (w);
  ck_assert_int_eq (list_files (waldir, names, 8), 3);  /* 14 + 14 + 12 */
  /* LSN 20 is the 6th record of the second file. */
  path_of (p, sizeof p, waldir, names[1]);
  xor_byte (p, FHDR + 5 * REC_SIZE (4096) + RHDR + 4000, 0x40);

  w = open_wal (&o);
  ck_assert_uint_eq (hf_wal_last_lsn (w), 19);
  ck_assert_int_eq (list_files (waldir, names, 8), 2);  /* third gone */
  exp.n = 19;
  check_replay (w, 0, &exp);
  for (i = 0; i < 20; i++)
    ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, 500 + i, 4096, &exp), 0);
  ck_assert_uint_eq (exp.v[19].lsn, 20);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  hf_wal_close (w);
  w = open_wal (&o);
  check_replay (w, 0, &exp);
  hf_wal_close (w);

  /* A damaged file header in the middle: the log ends before it. */
  ck_assert_int_eq (list_files (waldir, names, 8), 3);
  path_of (p, sizeof p, waldir, names[1]);
  xor_byte (p, 20, 0x40);
  w = open_wal (&o);
  ck_assert_uint_eq (hf_wal_last_lsn (w), 14);
  ck_assert_int_eq (list_files (waldir, names, 8), 1);
  exp.n = 14;
  check_replay (w, 0, &exp);
  hf_wal_close (w);
  free (exp.v);
}
END_TEST

/* A record whose data CRC the caller carried (hf_wal_write_reserved_crc,
 * from per-block CRCs folded with hf_crc32c_combine, as the volume
 * does): the same record on disk as one the log hashed itself, so it
 * replays; and one whose bytes changed after their CRC was taken is
 * damage that open finds and cuts, like any corrupt record. */
static void
append_carried (struct hf_wal *w, uint64_t k, uint64_t nblk, bool spoil,
                struct recs *exp)
{
  uint64_t len = nblk * 4096, b;
  uint8_t *buf = malloc (len);
  struct rec x = { .type = HF_WAL_WRITE, .off = k, .len = len };
  struct hf_wal_ticket t;
  uint32_t dcrc = 0;

  ck_assert_ptr_nonnull (buf);
  fill (k, buf, len);
  for (b = 0; b < nblk; b++) {
    uint32_t c = hf_crc32c (0, buf + b * 4096, 4096);
    dcrc = b ? hf_crc32c_combine (dcrc, c, 4096) : c;
  }
  x.crc = hf_crc32c (0, buf, len);
  ck_assert_uint_eq (dcrc, x.crc);
  if (spoil)
    buf[len - 100] ^= 0x08;     /* the bytes change after their CRC */
  ck_assert_int_eq (hf_wal_try_reserve (w, HF_WAL_WRITE, buf, len, &t), 0);
  ck_assert_int_eq (hf_wal_write_reserved_crc (w, &t, HF_WAL_WRITE, k, buf,
                                               len, &dcrc), 0);
  x.lsn = t.lsn;
  recs_add (exp, &x);
  free (buf);
}

START_TEST (test_carried_crc)
{
  struct hf_wal_options o = opts_for (6, 1 << 20, 0);
  struct recs exp = { 0 };
  struct hf_wal *w;
  uint64_t i;
  int errs;

  w = open_wal (&o);
  for (i = 1; i <= 5; i++)
    append_carried (w, i, i, false, &exp);
  ck_assert_int_eq (append_rec (w, HF_WAL_TRIM, 6, 8192, &exp), 0);
  append_carried (w, 7, 2, true, &exp);
  for (i = 8; i <= 10; i++)
    append_carried (w, i, 1, false, &exp);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  hf_wal_close (w);

  pthread_mutex_lock (&sink_lock);
  errs = n_errors;
  pthread_mutex_unlock (&sink_lock);
  w = open_wal (&o);
  /* The log ends before the spoiled record (LSN 7), with a line. */
  ck_assert_uint_eq (hf_wal_last_lsn (w), 6);
  pthread_mutex_lock (&sink_lock);
  ck_assert_int_gt (n_errors, errs);
  pthread_mutex_unlock (&sink_lock);
  exp.n = 6;
  check_replay (w, 0, &exp);
  hf_wal_close (w);
  free (exp.v);
}
END_TEST

START_TEST (test_other_volume)
{
  struct hf_wal_options o = opts_for (6, 0, 0), o2 = opts_for (7, 0, 0);
  struct recs exp = { 0 };
  struct hf_wal *w, *w2 = NULL;
  char names[8][64];

  w = open_wal (&o);
  ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, 1, 4096, &exp), 0);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  hf_wal_close (w);
  n_errors = 0;
  ck_assert_int_eq (hf_wal_open (&o2, &w2), EINVAL);
  ck_assert_ptr_null (w2);
  ck_assert_int_eq (n_errors, 1);
  /* hf_wal_check (the plugin's check before nbdkit forks) refuses the
   * same, and passes the volume's own log, also while it is open
   * (it takes no lock). */
  n_errors = 0;
  ck_assert_int_eq (hf_wal_check (waldir, o2.volume_uuid), EINVAL);
  ck_assert_int_eq (n_errors, 1);
  ck_assert_int_eq (hf_wal_check (waldir, o.volume_uuid), 0);
  /* Nothing was touched. */
  ck_assert_int_eq (list_files (waldir, names, 8), 1);
  w = open_wal (&o);
  ck_assert_int_eq (hf_wal_check (waldir, o.volume_uuid), 0);
  check_replay (w, 0, &exp);
  hf_wal_close (w);
  free (exp.v);
}
END_TEST

/* wal= names a directory others may control: a planted symlink (the
 * lock file, a log file) must never make the log write a file outside
 * it, and a directory that is a symlink or writable by group or others
 * is refused. */
START_TEST (test_hostile_dir)
{
  struct hf_wal_options o = opts_for (10, 0, 0);
  struct recs exp = { 0 };
  struct hf_wal *w = NULL;
  char victim[256], p[512], real[256];

  snprintf (victim, sizeof victim, "%s/victim", tmpdir);
  write_text (victim, "precious");

  /* The lock file planted. */
  ck_assert_int_eq (mkdir (waldir, 0700), 0);
  snprintf (p, sizeof p, "%s/wal.lock", waldir);
  ck_assert_int_eq (symlink (victim, p), 0);
  n_errors = 0;
  ck_assert_int_eq (hf_wal_open (&o, &w), ELOOP);
  ck_assert_ptr_null (w);
  ck_assert_int_eq (n_errors, 1);
  ck_assert_int_eq (unlink (p), 0);

  /* A log file planted (the name of the first one). */
  snprintf (p, sizeof p, "%s/wal-%016x.log", waldir, 1);
  ck_assert_int_eq (symlink (victim, p), 0);
  n_errors = 0;
  ck_assert_int_eq (hf_wal_open (&o, &w), ELOOP);
  ck_assert_ptr_null (w);
  ck_assert_int_ge (n_errors, 1);
  ck_assert (text_is (victim, "precious"));
  ck_assert_int_eq (unlink (p), 0);

  /* The directory a symlink: refused, nothing made in its target. */
  snprintf (p, sizeof p, "rm -rf '%s'", waldir);
  ck_assert_int_eq (system (p), 0);
  snprintf (real, sizeof real, "%s/real", tmpdir);
  ck_assert_int_eq (mkdir (real, 0700), 0);
  ck_assert_int_eq (symlink (real, waldir), 0);
  ck_assert_int_eq (hf_wal_open (&o, &w), ELOOP);
  ck_assert_int_eq (rmdir (real), 0);          /* still empty */
  ck_assert_int_eq (unlink (waldir), 0);

  /* Writable by others, by the group, owned by another user. */
  ck_assert_int_eq (mkdir (waldir, 0700), 0);
  ck_assert_int_eq (chmod (waldir, 0777), 0);
  ck_assert_int_eq (hf_wal_open (&o, &w), EPERM);
  ck_assert_int_eq (chmod (waldir, 0730), 0);
  ck_assert_int_eq (hf_wal_open (&o, &w), EPERM);
  ck_assert_int_eq (chmod (waldir, 0700), 0);
  if (geteuid () == 0) {
    ck_assert_int_eq (chown (waldir, 65534, 65534), 0);
    ck_assert_int_eq (hf_wal_open (&o, &w), EPERM);
    ck_assert_int_eq (chown (waldir, 0, 0), 0);
  }
  snprintf (p, sizeof p, "%s/wal.lock", waldir);
  ck_assert_int_eq (access (p, F_OK), -1);     /* nothing created */

  /* Ours, 0755: works. */
  ck_assert_int_eq (chmod (waldir, 0755), 0);
  w = open_wal (&o);
  ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, 1, 4096, &exp), 0);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  hf_wal_close (w);
  ck_assert (text_is (victim, "precious"));
  free (exp.v);
}
END_TEST

/* The parent's log in test_busy.  Static, so that the forked child,
 * which inherits it and must leave it alone (_exit), still reaches it
 * when valgrind looks for leaks at the child's exit. */
static struct hf_wal *busy_wal;

START_TEST (test_busy)
{
  struct hf_wal_options o = opts_for (8, 0, 0);
  struct hf_wal *w, *w2 = NULL;
  int status, fds[2], child_err = -1;
  pid_t pid;

  busy_wal = open_wal (&o);
  ck_assert_int_eq (hf_wal_open (&o, &w2), EBUSY);
  ck_assert_ptr_null (w2);
  /* Another process; its answer comes through a pipe (under valgrind
   * the exit status of a child can be valgrind's). */
  ck_assert_int_eq (pipe (fds), 0);
  pid = fork ();
  ck_assert_int_ge (pid, 0);
  if (pid == 0) {
    struct hf_wal *w3 = NULL;
    int r = hf_wal_open (&o, &w3);
    if (write (fds[1], &r, sizeof r) != sizeof r)
      _exit (1);
    _exit (0);
  }
  close (fds[1]);
  ck_assert_int_eq (read (fds[0], &child_err, sizeof child_err),
                    sizeof child_err);
  close (fds[0]);
  ck_assert_int_eq (waitpid (pid, &status, 0), pid);
  ck_assert_int_eq (child_err, EBUSY);
  hf_wal_close (busy_wal);
  busy_wal = NULL;
  w = open_wal (&o);            /* free again */
  hf_wal_close (w);
}
END_TEST

/* ---- Back-pressure ---- */

struct bp {
  struct hf_wal *w;
  unsigned start_delay_us;      /* set before the thread starts */
  int done;                     /* atomic */
  int err;
  uint64_t lsn;
};

static void *
bp_run (void *arg)
{
  struct bp *b = arg;
  uint8_t buf[4096];

  usleep (b->start_delay_us);
  fill (999, buf, sizeof buf);
  b->err = hf_wal_append (b->w, HF_WAL_WRITE, 999, buf, sizeof buf, &b->lsn);
  __atomic_store_n (&b->done, 1, __ATOMIC_RELEASE);
  return NULL;
}

START_TEST (test_backpressure)
{
  /* 16 KiB files hold 3 records of 4 KiB; at most 8 records live. */
  struct hf_wal_options o = opts_for (9, 16 << 10, 8 * REC_SIZE (4096));
  struct recs exp = { 0 };
  struct hf_wal_stats st;
  struct hf_wal *w;
  struct bp b = { 0 };
  pthread_t tid;
  uint64_t i;
  double t0;

  w = open_wal (&o);
  for (i = 1; i <= 8; i++)
    ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, i, 4096, &exp), 0);
  hf_wal_get_stats (w, &st);
  ck_assert_uint_eq (st.bytes_live, 8 * REC_SIZE (4096));
  ck_assert_uint_eq (st.waits, 0);
  b.w = w;
  b.start_delay_us = 500 * 1000;        /* a thread that starts late */
  ck_assert_int_eq (pthread_create (&tid, NULL, bp_run, &b), 0);
  /* The append waits for space, however late the thread starts. */
  t0 = now ();
  do {
    ck_assert_msg (now () - t0 < 120, "the append never waited");
    usleep (1000);
    hf_wal_get_stats (w, &st);
  } while (st.waits == 0);
  ck_assert_uint_eq (st.waits, 1);
  ck_assert_int_eq (__atomic_load_n (&b.done, __ATOMIC_ACQUIRE), 0);
  /* Releasing 2 frees nothing (the first file holds 1..3). */
  ck_assert_int_eq (hf_wal_release (w, 2), 0);
  usleep (100 * 1000);
  ck_assert_int_eq (__atomic_load_n (&b.done, __ATOMIC_ACQUIRE), 0);
  ck_assert_int_eq (hf_wal_release (w, 3), 0);
  pthread_join (tid, NULL);
  ck_assert_int_eq (b.err, 0);
  ck_assert_uint_eq (b.lsn, 9);
  hf_wal_get_stats (w, &st);
  ck_assert_uint_eq (st.bytes_live, 6 * REC_SIZE (4096));
  ck_assert_uint_eq (st.waits, 1);
  /* A record bigger than max_bytes still goes in once the log is
   * empty. */
  ck_assert_int_eq (hf_wal_release (w, 9), 0);
  ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, 10, 100000, &exp), 0);
  hf_wal_close (w);
  free (exp.v);
}
END_TEST

/* ---- Failed fdatasync ---- */

START_TEST (test_sync_failure)
{
  struct hf_wal_options o = opts_for (10, 0, 0);
  struct recs exp = { 0 };
  struct hf_wal *w;
  uint64_t lsn;

  setenv ("HF_WAL_TEST_FAIL_SYNC", "2", 1);
  w = open_wal (&o);
  unsetenv ("HF_WAL_TEST_FAIL_SYNC");
  ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, 1, 4096, &exp), 0);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, 2, 4096, NULL), 0);
  n_errors = 0;
  ck_assert_int_eq (hf_wal_sync (w), EIO);
  ck_assert_int_eq (n_errors, 1);
  /* Sticky: no retry, nothing new. */
  ck_assert_int_eq (hf_wal_sync (w), EIO);
  ck_assert_int_eq (hf_wal_append (w, HF_WAL_TRIM, 0, NULL, 1, &lsn), EIO);
  ck_assert_int_eq (hf_wal_sync (w), EIO);
  ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, 3, 10, NULL), EIO);
  ck_assert_int_eq (n_errors, 1);
  hf_wal_close (w);
  /* Reopened, the log works again; the synced record is there. */
  w = open_wal (&o);
  ck_assert_uint_ge (hf_wal_last_lsn (w), 1);
  {
    struct recs got = { 0 };
    ck_assert_int_eq (hf_wal_replay (w, 0, collect, &got), 0);
    ck_assert_uint_ge (got.n, 1);
    ck_assert_uint_eq (got.v[0].crc, exp.v[0].crc);
    free (got.v);
  }
  ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, 4, 10, NULL), 0);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  hf_wal_close (w);
  free (exp.v);
}
END_TEST

/* ---- ENOSPC on a small tmpfs ---- */

static char mnt[100];
static const char *mnt_skip;    /* why the ENOSPC case is skipped */

static void
mnt_setup (void)
{
  if (snprintf (mnt, sizeof mnt, "%s/check-wal-mnt.XXXXXX", tmp_base ())
      >= (int) sizeof mnt) {
    mnt_skip = "TMPDIR is too long";
    mnt[0] = '\0';
    return;
  }
  if (mkdtemp (mnt) == NULL) {
    mnt_skip = "mkdtemp failed";
    return;
  }
  if (geteuid () != 0)
    mnt_skip = "not root";
  else if (mount ("tmpfs", mnt, "tmpfs", 0, "size=2m,mode=0700") == -1)
    mnt_skip = strerror (errno);
  else
    mnt_skip = NULL;
}

static void
mnt_teardown (void)
{
  char cmd[128];

  if (mnt[0] == '\0')
    return;
  if (mnt_skip == NULL && umount2 (mnt, MNT_DETACH) == -1)
    fprintf (stderr, "check-wal: umount %s: %m\n", mnt);
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", mnt);
  if (system (cmd) != 0)
    fprintf (stderr, "check-wal: could not remove %s\n", mnt);
}

START_TEST (test_enospc)
{
  struct hf_wal_options o;
  struct recs exp = { 0 };
  struct hf_wal_stats st;
  struct hf_wal *w;
  uint64_t i, released;
  int r = 0;

  if (mnt_skip) {
    fprintf (stderr, "check-wal: SKIP ENOSPC case: cannot mount a tmpfs "
             "(%s)\n", mnt_skip);
    return;
  }
  o = opts_for (11, 256 << 10, 0);
  snprintf (waldir, sizeof waldir, "%s/wal", mnt);
  w = open_wal (&o);
  n_errors = 0;
  for (i = 1; i < 10000; i++) {
    r = append_rec (w, HF_WAL_WRITE, i, 4096, &exp);
    if (r)
      break;
  }
  ck_assert_int_eq (r, ENOSPC);
  ck_assert_int_eq (n_errors, 1);
  fprintf (stderr, "check-wal: ENOSPC after %zu records of 4 KiB\n", exp.n);
  ck_assert_uint_gt (exp.n, 100);
  /* Still full: same answer, no new log line; the log is fine. */
  ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, i, 4096, &exp), ENOSPC);
  ck_assert_int_eq (n_errors, 1);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  hf_wal_get_stats (w, &st);
  ck_assert_uint_eq (st.appends, exp.n);
  ck_assert_uint_eq (st.bytes_live, exp.n * REC_SIZE (4096));

  /* Free space, append again. */
  released = exp.v[exp.n / 2].lsn;
  ck_assert_int_eq (hf_wal_release (w, released), 0);
  for (i = 0; i < 60; i++)
    ck_assert_int_eq (append_rec (w, HF_WAL_WRITE, 20000 + i, 4096, &exp),
                      0);
  ck_assert_int_eq (hf_wal_sync (w), 0);
  hf_wal_close (w);
  w = open_wal (&o);
  check_replay (w, released, &exp);
  hf_wal_close (w);
  snprintf (waldir, sizeof waldir, "%s/wal", tmpdir);
  free (exp.v);
}
END_TEST

/* ---- Micro-benchmark (printed, not asserted) ---- */

START_TEST (test_bench)
{
  struct hf_wal_options o = opts_for (12, 0, 0);
  struct worker t[NTHREADS];
  struct hf_wal_stats st;
  struct hf_wal *w;
  double secs = quick ? 0.2 : 1.0, t0, el;
  uint64_t ops = 0;
  uint8_t buf[4096];
  int i;

  /* One thread, no syncs. */
  w = open_wal (&o);
  fill (1, buf, sizeof buf);
  t0 = now ();
  do {
    uint64_t lsn;
    for (i = 0; i < 64; i++) {
      ck_assert_int_eq (hf_wal_append (w, HF_WAL_WRITE, 0, buf, 4096, &lsn),
                        0);
      ops++;
    }
    if (ops % 8192 == 0)
      ck_assert_int_eq (hf_wal_release (w, lsn), 0);
  } while ((el = now () - t0) < secs);
  fprintf (stderr, "check-wal: bench: 1 thread, 4 KiB appends, no sync: "
           "%.0f appends/s (%.0f MB/s)\n", ops / el, ops * 4096 / el / 1e6);
  hf_wal_close (w);

  /* 8 threads, each append followed by a sync (FUA-like). */
  w = open_wal (&o);
  ck_assert_int_eq (hf_wal_release (w, UINT64_MAX), 0);
  memset (t, 0, sizeof t);
  t0 = now ();
  for (i = 0; i < NTHREADS; i++) {
    t[i].w = w;
    t[i].id = i;
    t[i].sync_every = 1;
    t[i].deadline = t0 + secs;
    ck_assert_int_eq (pthread_create (&t[i].tid, NULL, worker_run, &t[i]), 0);
  }
  ops = 0;
  for (i = 0; i < NTHREADS; i++) {
    pthread_join (t[i].tid, NULL);
    ops += t[i].ops;
    free (t[i].exp.v);
  }
  el = now () - t0;
  hf_wal_get_stats (w, &st);
  fprintf (stderr, "check-wal: bench: %d threads, 4 KiB append + sync each: "
           "%.0f appends/s, %.0f fdatasyncs/s, %.1f sync calls per "
           "fdatasync\n", NTHREADS, ops / el, st.syncs / el,
           st.syncs ? (double) st.sync_waiters / st.syncs : 0.0);
  hf_wal_close (w);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("wal");
  TCase *tc = tcase_create ("core");
  TCase *tn = tcase_create ("enospc");

  hf_log_set_sink (sink);
  tcase_set_timeout (tc, 120);
  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_roundtrip);
  tcase_add_test (tc, test_first_lsn);
  tcase_add_test (tc, test_rotation_release);
  tcase_add_test (tc, test_reuse);
  tcase_add_test (tc, test_reuse_misaligned);
  tcase_add_test (tc, test_reuse_release_race);
  tcase_add_test (tc, test_old_lsn_fresh);
  tcase_add_test (tc, test_concurrent);
  tcase_add_test (tc, test_batch_torn);
  tcase_add_test (tc, test_concurrent_kill);
  tcase_add_test (tc, test_ack_prefix);
  tcase_add_test (tc, test_torn_tail);
  tcase_add_test (tc, test_corrupt_middle);
  tcase_add_test (tc, test_carried_crc);
  tcase_add_test (tc, test_other_volume);
  tcase_add_test (tc, test_busy);
  tcase_add_test (tc, test_hostile_dir);
  tcase_add_test (tc, test_backpressure);
  tcase_add_test (tc, test_sync_failure);
  tcase_add_test (tc, test_bench);
  suite_add_tcase (s, tc);

  /* The mount lives in the parent (unchecked fixture), so it is
   * unmounted even when the test fails. */
  tcase_set_timeout (tn, 60);
  tcase_add_unchecked_fixture (tn, mnt_setup, mnt_teardown);
  tcase_add_checked_fixture (tn, setup, teardown);
  tcase_add_test (tn, test_enospc);
  suite_add_tcase (s, tn);

  return run_suite (s);
}
