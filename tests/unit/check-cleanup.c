/* Unit tests for lib/cleanup.h: the scope-bound lock macros evaluate
 * their argument once, hold the lock for the scope and drop it at its
 * end, and a failed lock call stops the program instead of running the
 * scope unlocked.  And for the tests' own cleanup: a test that dies
 * leaves no directory behind (test-util.c, run_suite). */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cleanup.h"
#include "test-util.h"

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_rwlock_t rw = PTHREAD_RWLOCK_INITIALIZER;
static int evaluated;

static pthread_mutex_t *
the_mutex (void)
{
  evaluated++;
  return &mu;
}

static pthread_rwlock_t *
the_rwlock (void)
{
  evaluated++;
  return &rw;
}

/* The argument is evaluated once; the mutex is held inside the scope
 * and free after it. */
START_TEST (test_mutex_once)
{
  evaluated = 0;
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (the_mutex ());
    ck_assert_int_eq (pthread_mutex_trylock (&mu), EBUSY);
  }
  ck_assert_int_eq (evaluated, 1);
  ck_assert_int_eq (pthread_mutex_trylock (&mu), 0);
  pthread_mutex_unlock (&mu);
}
END_TEST

START_TEST (test_rwlock_once)
{
  evaluated = 0;
  {
    ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE (the_rwlock ());
    ck_assert_int_eq (pthread_rwlock_trywrlock (&rw), EBUSY);
  }
  {
    ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE (the_rwlock ());
    ck_assert_int_eq (pthread_rwlock_tryrdlock (&rw), EBUSY);
  }
  ck_assert_int_eq (evaluated, 2);
  ck_assert_int_eq (pthread_rwlock_trywrlock (&rw), 0);
  pthread_rwlock_unlock (&rw);
}
END_TEST

/* Locking an error-checking mutex this thread already holds fails
 * (EDEADLK): the macro must not go on as if it held the lock. */
START_TEST (test_mutex_failure_aborts)
{
  pthread_mutexattr_t a;
  pthread_mutex_t m;

  pthread_mutexattr_init (&a);
  pthread_mutexattr_settype (&a, PTHREAD_MUTEX_ERRORCHECK);
  pthread_mutex_init (&m, &a);
  pthread_mutex_lock (&m);
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&m);
    /* Not reached. */
  }
}
END_TEST

/* The tests' own cleanup (tests/unit/test-util.c): a test whose
 * assertion fails ends its forked process before its rm_tmpdir, and
 * run_suite removes what it made all the same.  The dying test runs in
 * a suite of its own, silently; it tells its directory through shared
 * memory. */
static char *dying_dir;         /* shared with the dying test's process */

START_TEST (test_dies_with_a_tmpdir)
{
  char *d = make_tmpdir ();

  snprintf (dying_dir, 4096, "%s", d);
  ck_abort_msg ("dies before rm_tmpdir (%s)", d);
}
END_TEST

START_TEST (test_run_removes_tmpdirs)
{
  Suite *s = suite_create ("dying");
  TCase *tc = tcase_create ("dying");
  char *slash;

  dying_dir = mmap (NULL, 4096, PROT_READ | PROT_WRITE,
                    MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  ck_assert (dying_dir != MAP_FAILED);
  dying_dir[0] = '\0';
  tcase_add_test (tc, test_dies_with_a_tmpdir);
  suite_add_tcase (s, tc);
  ck_assert_int_eq (run_suite_print (s, CK_SILENT), EXIT_FAILURE);
  ck_assert_msg (dying_dir[0] == '/', "the dying test made no directory");
  ck_assert_msg (access (dying_dir, F_OK) == -1 && errno == ENOENT,
                 "%s is left behind", dying_dir);
  slash = strrchr (dying_dir, '/');
  *slash = '\0';               /* the run's directory */
  ck_assert_msg (access (dying_dir, F_OK) == -1 && errno == ENOENT,
                 "%s is left behind", dying_dir);
  munmap (dying_dir, 4096);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("cleanup");
  TCase *tc = tcase_create ("core");

  tcase_add_test (tc, test_mutex_once);
  tcase_add_test (tc, test_rwlock_once);
  tcase_add_test_raise_signal (tc, test_mutex_failure_aborts, SIGABRT);
  tcase_add_test (tc, test_run_removes_tmpdirs);
  suite_add_tcase (s, tc);
  return run_suite (s);
}
