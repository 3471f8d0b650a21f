/* Helpers shared by the libcheck unit tests: see test-util.h. */
#include <config.h>

#undef NDEBUG
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "format.h"
#include "lease.h"
#include "objstore.h"
#include "test-util.h"

#if __has_include (<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#endif
#ifndef RUNNING_ON_VALGRIND
#define RUNNING_ON_VALGRIND 0
#endif

/* The run's directory: run_suite makes it in the parent before the
 * tests fork and removes it after them, so that what a test leaves when
 * it dies (a failed assertion ends its forked process before its
 * rm_tmpdir) goes too.  NULL outside run_suite. */
static char *run_dir;

const char *
tmp_base (void)
{
  const char *t = getenv ("TMPDIR");

  return t && *t ? t : "/tmp";
}

char *
make_tmpdir (void)
{
  char *d = NULL;

  if (run_dir)
    ck_assert (asprintf (&d, "%s/t-XXXXXX", run_dir) > 0);
  else
    ck_assert (asprintf (&d, "%s/%s-XXXXXX", tmp_base (),
                         program_invocation_short_name) > 0);
  /* Say why: a full disk (other programs' files) is not a failure of
   * the code under test. */
  ck_assert_msg (mkdtemp (d) != NULL, "mkdtemp %s: %s", d, strerror (errno));
  return d;
}

void
rm_tmpdir (char *d)
{
  char cmd[256];

  snprintf (cmd, sizeof cmd, "rm -rf '%s'", d);
  ck_assert_int_eq (system (cmd), 0);
  free (d);
}

uint64_t
xorshift64 (uint64_t *s)
{
  uint64_t x = *s;

  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return *s = x;
}

__thread uint64_t rng_state = 88172645463325252ull;

uint64_t
rnd (void)
{
  return xorshift64 (&rng_state);
}

uint64_t
rndn (uint64_t n)
{
  return n ? rnd () % n : 0;
}

void
fill_rnd (uint8_t *p, size_t len)
{
  size_t i;

  for (i = 0; i < len; i++)
    p[i] = (uint8_t) rnd ();
}

double
now (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

void
log_quiet (enum hf_log_level level, const char *msg)
{
  (void) level;
  (void) msg;
}

void
log_verbose (enum hf_log_level level, const char *msg)
{
  if (level <= HF_LOG_WARN && getenv ("HF_TEST_VERBOSE"))
    fprintf (stderr, "%s\n", msg);
}

char last_error[1024], last_warn[1024];
atomic_int errors_logged;

/* Background threads log too: one writer of the buffers at a time, and
 * a test whose volume still has threads reads them under it as well
 * (log_error_clear, log_error_copy). */
static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;

void
log_error_clear (void)
{
  pthread_mutex_lock (&log_lock);
  last_error[0] = '\0';
  pthread_mutex_unlock (&log_lock);
}

void
log_error_copy (char *dst, size_t len)
{
  pthread_mutex_lock (&log_lock);
  snprintf (dst, len, "%s", last_error);
  pthread_mutex_unlock (&log_lock);
}

void
log_capture (enum hf_log_level level, const char *msg)
{
  pthread_mutex_lock (&log_lock);
  if (level == HF_LOG_ERROR) {
    atomic_fetch_add (&errors_logged, 1);
    snprintf (last_error, sizeof last_error, "%s", msg);
  }
  if (level == HF_LOG_WARN)
    snprintf (last_warn, sizeof last_warn, "%s", msg);
  pthread_mutex_unlock (&log_lock);
  log_verbose (level, msg);
}

void
xor_byte (const char *path, off_t off, uint8_t mask)
{
  int fd = open (path, O_RDWR);
  uint8_t b;

  ck_assert_msg (fd >= 0, "open %s: %s", path, strerror (errno));
  ck_assert_int_eq (pread (fd, &b, 1, off), 1);
  b ^= mask;
  ck_assert_int_eq (pwrite (fd, &b, 1, off), 1);
  close (fd);
}

void
write_text (const char *path, const char *text)
{
  int fd = open (path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
  size_t n = strlen (text);

  ck_assert_msg (fd >= 0, "open %s: %s", path, strerror (errno));
  ck_assert_int_eq (write (fd, text, n), (ssize_t) n);
  close (fd);
}

int
text_is (const char *path, const char *text)
{
  char buf[256];
  int fd = open (path, O_RDONLY);
  ssize_t n;

  if (fd < 0)
    return 0;
  n = read (fd, buf, sizeof buf);
  close (fd);
  return n >= 0 && (size_t) n == strlen (text) && memcmp (buf, text, n) == 0;
}

int
run_suite (Suite *s)
{
  return run_suite_print (s, CK_NORMAL);
}

int
run_suite_print (Suite *s, enum print_output mode)
{
  SRunner *sr = srunner_create (s);
  char *outer = run_dir, *d = NULL, cmd[300];
  int failed;

  if (asprintf (&d, "%s/%s-XXXXXX", tmp_base (),
                program_invocation_short_name) < 0
      || mkdtemp (d) == NULL) {
    fprintf (stderr, "%s: cannot make the run's directory in %s: %m\n",
             program_invocation_short_name, tmp_base ());
    exit (EXIT_FAILURE);
  }
  run_dir = d;
  srunner_run_all (sr, mode);
  failed = srunner_ntests_failed (sr);
  srunner_free (sr);
  run_dir = outer;
  snprintf (cmd, sizeof cmd, "rm -rf '%s'", d);
  if (system (cmd) != 0) {
    fprintf (stderr, "%s: could not remove %s\n",
             program_invocation_short_name, d);
    failed++;
  }
  free (d);
  return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

int
under_valgrind (void)
{
  return RUNNING_ON_VALGRIND;
}

void
wait_failed (const char *file, int line, double waited, const char *fmt, ...)
{
  char msg[512];
  va_list ap;

  va_start (ap, fmt);
  vsnprintf (msg, sizeof msg, fmt, ap);
  va_end (ap);
  _ck_assert_failed (file, line, "WAIT_UNTIL", "%s (gave up after %.1f s)",
                     msg, waited);
}

void
join_within_at (const char *file, int line, pthread_t th, unsigned secs,
                const char *what)
{
  struct timespec ts;
  int r;

  /* pthread_timedjoin_np's deadline is on CLOCK_REALTIME (and it is
   * the timed join ThreadSanitizer knows). */
  clock_gettime (CLOCK_REALTIME, &ts);
  ts.tv_sec += secs;
  r = pthread_timedjoin_np (th, NULL, &ts);
  if (r == ETIMEDOUT)
    _ck_assert_failed (file, line, "join_within", "%s: the thread has not "
                       "ended after %u s", what, secs);
  if (r != 0)
    _ck_assert_failed (file, line, "join_within", "%s: pthread_timedjoin_np:"
                       " %s", what, strerror (r));
}

void
check_failed (const char *file, int line, const char *what)
{
  fprintf (stderr, "%s: %s:%d: check failed: %s\n",
           program_invocation_short_name, file, line, what);
  exit (1);
}

void
check_err_failed (const char *file, int line, const char *expr, int got,
                  int want)
{
  fprintf (stderr, "%s: %s:%d: %s = %d (%s), want %d (%s)\n",
           program_invocation_short_name, file, line, expr, got,
           strerror (got), want, strerror (want));
  exit (1);
}

void
test_lease_set_committed (struct hf_objstore *store, const char *prefix,
                          uint64_t seq)
{
  struct hf_lease_info li;
  char key[HF_OBJSTORE_KEY_MAX + 1];
  uint8_t *o = NULL;
  size_t len = 0;
  bool found = false;
  const size_t at = offsetof (struct hf_disk_lease, ls_committed_seq);
  const size_t crc = offsetof (struct hf_disk_lease, ls_crc);

  ck_assert_int_eq (hf_lease_newest (store, prefix, &found, &li), 0);
  ck_assert (found);
  snprintf (key, sizeof key, "%slease/%016" PRIx64, prefix, ~li.epoch);
  ck_assert_int_eq (hf_objstore_get_all (store, key, HF_OBJSTORE_SMALL_MAX,
                                         (void **) &o, &len), 0);
  ck_assert_uint_eq (len, HF_LS_SIZE);
  hf_put_le64 (o + at, seq);
  hf_put_le32 (o + crc, hf_crc32c (0, o, crc));
  ck_assert_int_eq (hf_objstore_put (store, key, o, len, 0), 0);
  free (o);
}
