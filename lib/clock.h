/* hyperfile: clocks and sleeps shared by the lib modules.
 *
 * Monotonic microseconds for deadlines and latencies; wall-clock
 * nanoseconds for what is written into objects (segment timestamps,
 * lease expiry, snapshot times), which other hosts must be able to
 * compare.
 */
#ifndef HF_CLOCK_H
#define HF_CLOCK_H

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

#endif /* HF_CLOCK_H */
