/* hyperfile: clocks and sleeps shared by the lib modules.
 *
 * Monotonic microseconds for deadlines and latencies; wall-clock
 * nanoseconds for what is written into objects (segment timestamps,
 * lease expiry, snapshot times), which other hosts must be able to
 * compare.  Every condition variable is created on the monotonic clock
 * (hf_clock_cond_init), so that a timed wait's deadline is monotonic
 * too and a step of the wall clock cannot stretch it.
 */
#ifndef HF_CLOCK_H
#define HF_CLOCK_H

#include <pthread.h>
#include <stdint.h>
#include <time.h>

static inline uint64_t
hf_clock_mono_us (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000 + (uint64_t) ts.tv_nsec / 1000;
}

static inline uint64_t
hf_clock_wall_ns (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_REALTIME, &ts);
  return (uint64_t) ts.tv_sec * 1000000000 + (uint64_t) ts.tv_nsec;
}

static inline void
hf_clock_sleep_us (uint64_t us)
{
  struct timespec ts = { .tv_sec = (time_t) (us / 1000000),
                         .tv_nsec = (long) (us % 1000000) * 1000 };
  nanosleep (&ts, NULL);
}

/* Initialise cv on CLOCK_MONOTONIC: deadlines passed to
 * pthread_cond_timedwait on it come from hf_clock_mono_us.  0 or the
 * errno of pthread_cond_init. */
static inline int
hf_clock_cond_init (pthread_cond_t *cv)
{
  pthread_condattr_t ca;
  int r = pthread_condattr_init (&ca);

  if (r)
    return r;
  r = pthread_condattr_setclock (&ca, CLOCK_MONOTONIC);
  if (r == 0)
    r = pthread_cond_init (cv, &ca);
  pthread_condattr_destroy (&ca);
  return r;
}

#endif /* HF_CLOCK_H */
