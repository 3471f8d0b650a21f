/* hyperfile: write pacing (see pace.c for the policy and why).
 *
 * Pure arithmetic on times the caller passes in (monotonic
 * microseconds): no clock, no lock of its own.  The volume keeps one
 * struct hf_pace under v->lock; tests drive it with a made-up clock.
 */
#ifndef HF_PACE_H
#define HF_PACE_H

#include <stdbool.h>
#include <stdint.h>

/* The drain rate assumed until the first measurement (bytes/s). */
#define HF_PACE_INIT_RATE (16ull << 20)
/* Before the first measurement the volume seals a segment of
 * segment_size / HF_PACE_PROBE_DIV, the probe, so that it commits soon
 * (pace.c); not one below HF_PACE_PROBE_MIN bytes (per-PUT latency
 * would be most of its time, and a segment that small commits soon
 * anyway): the first segment is then a whole one. */
#define HF_PACE_PROBE_DIV 8
#define HF_PACE_PROBE_MIN (1ull << 20)
/* Never ask one write to wait longer than this: beyond it the hard
 * dirty_limit wait decides (the rate estimate is then too high). */
#define HF_PACE_MAX_DELAY_US 1000000ull

struct hf_pace {
  uint64_t limit;               /* dirty_limit, bytes */
  uint64_t zone;                /* the paced band below limit, bytes */
  uint64_t window;              /* bytes per rate measurement */
  uint64_t probe;               /* the first one's, and the size of the
                                   segment sealed to take it */
  uint64_t ramp;                /* the next seal size until whole */
  uint64_t rate;                /* drain estimate, bytes/s (> 0) */
  uint64_t measured;            /* the last window's rate; 0: none yet */
  bool whole;                   /* rate rests on a window of a whole
                                   segment (not the guess or the probe) */
  uint64_t w_bytes, w_us;       /* the measurement in progress */
  uint64_t last_commit_us;      /* 0: no commit yet */
  uint64_t step, step_us;       /* the bytes of the last commit step
                                   that freed any, and when */
  /* The window that closed at last_commit_us, and the estimate before
   * it: a segment committed at the same instant reopens it. */
  uint64_t c_bytes, c_us, c_rate, c_measured;
  bool c_whole;
  bool c_open;                  /* c_* describe a window closed at
                                   last_commit_us */
  uint64_t next_us;             /* the admission clock: when the next
                                   paced write's slot starts */
  bool cut;                     /* the estimate was cut at the limit and
                                   no write was paced since */
};

/* Set up for dirty_limit limit and segments of segment_size bytes. */
extern void hf_pace_init (struct hf_pace *p, uint64_t limit,
                          uint64_t segment_size);

/* The size at which the active buffer is to be sealed: segment_size,
 * but smaller ones (the ramp: the probe, then twice its size at each
 * seal) until a whole segment's window is measured (pace.c). */
extern uint64_t hf_pace_seal_size (const struct hf_pace *p);

/* A buffer of bytes was sealed: one that filled the ramp's size moves
 * the ramp on. */
extern void hf_pace_sealed (struct hf_pace *p, uint64_t bytes);

/* A segment of bytes, built (ready to upload) at built_us, committed at
 * now_us.  Segments that commit together (one commit step) are passed
 * with the same now_us: they are one drain step, measured together. */
extern void hf_pace_committed (struct hf_pace *p, uint64_t now_us,
                               uint64_t built_us, uint64_t bytes);

/* A writer found dirty_limit reached: the estimate was too high.  Cuts
 * it to half, or to the last measurement if lower; once until the next
 * paced write (writers that reach the limit together were admitted at
 * the same rate: one piece of evidence, not several). */
extern void hf_pace_limit (struct hf_pace *p);

/* A write of bytes arrives at now_us with dirty bytes buffered or
 * uploading: how long (microseconds) it should wait before it enters
 * the buffer; 0 below the paced zone.  Takes the write's slot on the
 * admission clock. */
extern uint64_t hf_pace_delay (struct hf_pace *p, uint64_t now_us,
                               uint64_t dirty, uint64_t bytes);

#endif /* HF_PACE_H */
