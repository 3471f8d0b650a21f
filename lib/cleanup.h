/* hyperfile: scope-bound cleanup, after nbdkit's common/utils/cleanup.h.
 *
 *   CLEANUP_FREE char *s = strdup (...);         freed at end of scope
 *   ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);      unlocked at end of scope
 *
 * The lock macros evaluate their argument once and abort if the lock
 * call fails (tests/unit/check-cleanup.c).
 */
#ifndef HF_CLEANUP_H
#define HF_CLEANUP_H

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static inline void
hf_cleanup_free (void *ptr)
{
  free (*(void **) ptr);
}
#define CLEANUP_FREE __attribute__ ((cleanup (hf_cleanup_free)))

static inline void
hf_cleanup_close (int *fd)
{
  if (*fd >= 0)
    close (*fd);
}
#define CLEANUP_CLOSE __attribute__ ((cleanup (hf_cleanup_close)))

/* A lock call that fails (EDEADLK, EINVAL ...) is a bug in the caller;
 * going on would run the scope unprotected, so stop here. */
static inline void
hf_cleanup_lock_failed (const char *what, int err)
{
  fprintf (stderr, "hyperfile: %s: %s\n", what, strerror (err));
  abort ();
}

static inline pthread_mutex_t *
hf_cleanup_lock (pthread_mutex_t *m)
{
  int r = pthread_mutex_lock (m);

  if (r)
    hf_cleanup_lock_failed ("pthread_mutex_lock", r);
  return m;
}

static inline void
hf_cleanup_unlock (pthread_mutex_t **ptr)
{
  pthread_mutex_unlock (*ptr);
}
#define HF_UNIQUE_NAME2(n, c) n##c
#define HF_UNIQUE_NAME1(n, c) HF_UNIQUE_NAME2 (n, c)
#define HF_UNIQUE_NAME(n) HF_UNIQUE_NAME1 (n, __LINE__)
/* mutex is evaluated once. */
#define ACQUIRE_LOCK_FOR_CURRENT_SCOPE(mutex)                           \
  __attribute__ ((cleanup (hf_cleanup_unlock), unused))                 \
  pthread_mutex_t *HF_UNIQUE_NAME (_lock) = hf_cleanup_lock (mutex)

static inline pthread_rwlock_t *
hf_cleanup_rdlock (pthread_rwlock_t *rw)
{
  int r = pthread_rwlock_rdlock (rw);

  if (r)
    hf_cleanup_lock_failed ("pthread_rwlock_rdlock", r);
  return rw;
}

static inline pthread_rwlock_t *
hf_cleanup_wrlock (pthread_rwlock_t *rw)
{
  int r = pthread_rwlock_wrlock (rw);

  if (r)
    hf_cleanup_lock_failed ("pthread_rwlock_wrlock", r);
  return rw;
}

static inline void
hf_cleanup_rwunlock (pthread_rwlock_t **ptr)
{
  pthread_rwlock_unlock (*ptr);
}
#define ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE(rw)                            \
  __attribute__ ((cleanup (hf_cleanup_rwunlock), unused))               \
  pthread_rwlock_t *HF_UNIQUE_NAME (_rwlock) = hf_cleanup_rdlock (rw)
#define ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE(rw)                            \
  __attribute__ ((cleanup (hf_cleanup_rwunlock), unused))               \
  pthread_rwlock_t *HF_UNIQUE_NAME (_rwlock) = hf_cleanup_wrlock (rw)

#endif /* HF_CLEANUP_H */
