/* Helpers shared by the libcheck unit tests (tests/unit/check-*.c):
 * temporary directories, a xorshift random stream, log sinks that keep
 * what hf_log said, monotonic time, byte flipping for corruption tests,
 * the suite runner, and CHECK macros for the plain test programs.  test-util.c is linked into every unit test
 * (tests/Makefile.am); a helper used by one test only stays in it.
 */
#ifndef HF_TEST_UTIL_H
#define HF_TEST_UTIL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>
#include <unistd.h>

#include <check.h>

#include "log.h"

/* ---- Temporary directories ---- */

/* Where temporary files go: $TMPDIR, or /tmp (contrib/check-all.sh
 * points TMPDIR at a directory of its own and fails the run when a
 * test leaves something there). */
extern const char *tmp_base (void);
/* Create a new directory (asserting success): under run_suite, in the
 * run's directory, which run_suite removes after the tests even when a
 * test died before its rm_tmpdir; otherwise tmp_base()/<program>-XXXXXX.
 * Caller owns the name and gives it back to rm_tmpdir. */
extern char *make_tmpdir (void);
/* rm -rf d (asserting success), then free d. */
extern void rm_tmpdir (char *d);

/* ---- Random numbers (xorshift64) ---- */

/* One step of the xorshift64 stream in *s (never seed it with 0). */
extern uint64_t xorshift64 (uint64_t *s);
/* The calling thread's stream: each thread starts from the same fixed
 * seed, a test that wants its own assigns rng_state first. */
extern __thread uint64_t rng_state;
extern uint64_t rnd (void);
/* rnd () % n, and 0 for n == 0. */
extern uint64_t rndn (uint64_t n);
/* len bytes of the calling thread's stream (incompressible data). */
extern void fill_rnd (uint8_t *p, size_t len);

/* CLOCK_MONOTONIC in seconds. */
extern double now (void);

/* Poll cond (an expression, evaluated again every millisecond) until it
 * holds; once secs seconds of the monotonic clock have passed, fail the
 * test with the printf-style message that follows, plus how long it
 * waited.  A wait in a test is bounded in time, not in iterations (a
 * count of 1 ms sleeps takes many times as long on a loaded machine),
 * and well inside the case's libcheck timeout, so that a wait that
 * never ends says what it waited for instead of being killed. */
#define WAIT_UNTIL(cond, secs, ...)                                     \
  do {                                                                  \
    double wu_t0_ = now ();                                             \
    while (!(cond)) {                                                   \
      if (now () - wu_t0_ >= (secs))                                    \
        wait_failed (__FILE__, __LINE__, now () - wu_t0_, __VA_ARGS__); \
      usleep (1000);                                                    \
    }                                                                   \
  } while (0)
extern void wait_failed (const char *file, int line, double waited,
                         const char *fmt, ...)
  __attribute__ ((noreturn, format (printf, 4, 5)));
/* pthread_join th, failing the test (message what) if th has not ended
 * within secs seconds. */
#define join_within(th, secs, what)                                     \
  join_within_at (__FILE__, __LINE__, (th), (secs), (what))
extern void join_within_at (const char *file, int line, pthread_t th,
                            unsigned secs, const char *what);

/* ck_assert_msg without libcheck's bookkeeping when the check passes:
 * every passing ck_assert* sends its file and line to the parent (one
 * write(2), so that a crash can name the last check passed), which in a
 * loop over every block of a model or every event of a simulation is
 * most of the test's time (556,150 writes in check-runs, most of its
 * 32 s under valgrind).  A failure is reported as by ck_assert_msg. */
#define ck_check_msg(expr, ...)                                         \
  do {                                                                  \
    if (!(expr))                                                        \
      _ck_assert_failed (__FILE__, __LINE__, "Assertion '" #expr       \
                         "' failed", __VA_ARGS__);                      \
  } while (0)

/* ---- Log sinks for hf_log_set_sink ---- */

/* Drops everything. */
extern void log_quiet (enum hf_log_level level, const char *msg);
/* Prints errors and warnings to stderr when HF_TEST_VERBOSE is set. */
extern void log_verbose (enum hf_log_level level, const char *msg);
/* Keeps the last error and the last warning (tests clear them before
 * the call they check), counts errors, then does what log_verbose
 * does.  Writers from several threads take turns (a mutex); read the
 * buffers only after those threads are done. */
extern char last_error[1024], last_warn[1024];
extern atomic_int errors_logged;
extern void log_capture (enum hf_log_level level, const char *msg);
/* Clear or copy last_error under log_capture's lock: for tests whose
 * volume threads may be logging meanwhile. */
extern void log_error_clear (void);
extern void log_error_copy (char *dst, size_t len);

/* XOR the byte at off of the file path with mask (asserting that it
 * can be read and written back). */
extern void xor_byte (const char *path, off_t off, uint8_t mask);

/* Create path (0644) holding the string text, asserting success. */
extern void write_text (const char *path, const char *text);
/* Does path (followed if a symlink) hold exactly the string text? */
extern int text_is (const char *path, const char *text);

/* Is this process running under valgrind?  (Tests that measure the
 * page cache through mmap + mincore cannot under valgrind: it reads the
 * head of every file mapped, looking for an ELF header.) */
extern int under_valgrind (void);

/* Rewrite the newest lease object of the volume at prefix in store
 * (an struct hf_objstore *) with ls_committed_seq = seq: for fixtures
 * that forge an orphan out of a committed segment (renamed or cut off
 * its chain), so that the lease records only what the forged history
 * committed, as if its writer had died before recording the rest.
 * Asserts on failure. */
struct hf_objstore;
extern void test_lease_set_committed (struct hf_objstore *store,
                                      const char *prefix, uint64_t seq);

/* Run all tests of s (CK_NORMAL), free the runner, and return the exit
 * status for main.  The tests' make_tmpdir directories live in one
 * directory of the run, made before and removed after the tests (in
 * this, the parent process): a test that dies leaves nothing behind. */
extern int run_suite (Suite *s);
/* The same with libcheck's output MODE (CK_SILENT ...). */
extern int run_suite_print (Suite *s, enum print_output mode);

/* ---- Checks for the plain test programs ----
 *
 * unit/s3-errtest and unit/s3-hostile are driven by shell scripts, not
 * by libcheck: a failed check prints the program, file, line and what
 * failed, then exits 1. */
#define CHECK(cond)                                                     \
  do {                                                                  \
    if (!(cond))                                                        \
      check_failed (__FILE__, __LINE__, #cond);                         \
  } while (0)
/* expr must return want (an errno value or 0). */
#define CHECK_ERR(expr, want)                                           \
  do {                                                                  \
    int r_ = (expr);                                                    \
    if (r_ != (want))                                                   \
      check_err_failed (__FILE__, __LINE__, #expr, r_, (want));         \
  } while (0)
extern void check_failed (const char *file, int line, const char *what)
  __attribute__ ((noreturn));
extern void check_err_failed (const char *file, int line, const char *expr,
                              int got, int want)
  __attribute__ ((noreturn));

#endif /* HF_TEST_UTIL_H */
