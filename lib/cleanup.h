/* hyperfile: scope-bound cleanup, after nbdkit's common/utils/cleanup.h.
 *
 *   CLEANUP_FREE char *s = strdup (...);         freed at end of scope
 *   ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&lock);      unlocked at end of scope
 */
#ifndef HF_CLEANUP_H
#define HF_CLEANUP_H

#include <pthread.h>
#include <stdlib.h>
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

static inline void
hf_cleanup_unlock (pthread_mutex_t **ptr)
{
  pthread_mutex_unlock (*ptr);
}
#define HF_UNIQUE_NAME2(n, c) n##c
#define HF_UNIQUE_NAME1(n, c) HF_UNIQUE_NAME2 (n, c)
#define HF_UNIQUE_NAME(n) HF_UNIQUE_NAME1 (n, __LINE__)
#define ACQUIRE_LOCK_FOR_CURRENT_SCOPE(mutex)                           \
  __attribute__ ((cleanup (hf_cleanup_unlock), unused))                 \
  pthread_mutex_t *HF_UNIQUE_NAME (_lock) = mutex;                      \
  pthread_mutex_lock (mutex)

static inline void
hf_cleanup_rwunlock (pthread_rwlock_t **ptr)
{
  pthread_rwlock_unlock (*ptr);
}
#define ACQUIRE_RDLOCK_FOR_CURRENT_SCOPE(rw)                            \
  __attribute__ ((cleanup (hf_cleanup_rwunlock), unused))               \
  pthread_rwlock_t *HF_UNIQUE_NAME (_rwlock) = rw;                      \
  pthread_rwlock_rdlock (rw)
#define ACQUIRE_WRLOCK_FOR_CURRENT_SCOPE(rw)                            \
  __attribute__ ((cleanup (hf_cleanup_rwunlock), unused))               \
  pthread_rwlock_t *HF_UNIQUE_NAME (_rwlock) = rw;                      \
  pthread_rwlock_wrlock (rw)

#endif /* HF_CLEANUP_H */
