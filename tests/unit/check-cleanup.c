/* Unit tests for lib/cleanup.h: the scope-bound lock macros evaluate
 * their argument once, hold the lock for the scope and drop it at its
 * end, and a failed lock call stops the program instead of running the
 * scope unlocked. */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

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

int
main (void)
{
  Suite *s = suite_create ("cleanup");
  TCase *tc = tcase_create ("core");

  tcase_add_test (tc, test_mutex_once);
  tcase_add_test (tc, test_rwlock_once);
  tcase_add_test_raise_signal (tc, test_mutex_failure_aborts, SIGABRT);
  suite_add_tcase (s, tc);
  return run_suite (s);
}
