/* hyperfile: write pacing.
 *
 * Without it, a writer that finds dirty_limit reached waits until the
 * oldest sealed segment commits, which frees a whole segment at once:
 * one upload of 32 MiB at the store's speed (sequential-write p99
 * 0.35-0.83 s on s3rver), a disk that freezes and then bursts.
 * Pacing admits writes, as dirty data approaches the limit, at about
 * the rate uploads drain it, so that every writer waits a little (its
 * share of the drain) instead of a few waiting a whole upload (the
 * idea of Linux's balance_dirty_pages):
 *
 *   dirty < limit - zone     no delay
 *   in the zone, at x        admitted at rate * (1 + 8 (1/2 - x)^3),
 *   (0 where it starts,      x = (dirty - (limit - zone)) / zone:
 *   1 at the limit)          twice the drain rate where the zone starts,
 *                            the drain rate at its middle, nothing at
 *                            the limit
 *   dirty >= limit           the hard wait (volume-write.c), as before
 *
 * zone = min (limit / 2, 2 * segment_size): wider than the segment by
 * which dirty data drops at each commit, so that writers admitted at
 * the drain rate stay in the zone from one commit to the next instead
 * of reaching the limit.  The cubic is flat in the middle (0.875 to
 * 1.125 of the drain rate over the half of the zone that one segment
 * spans), so the latency a writer sees hardly changes as dirty data
 * rises and falls by a segment between commits; a line would swing it
 * threefold.  What it converges to is Little's law: writers in flight
 * x write size / drain rate (8 x 1 MiB at 100 MiB/s: 80 ms).
 *
 * The drain rate is measured from commits: a segment's bytes over the
 * time the store spent on it alone, from the later of the previous
 * commit and the end of its own build to its commit (time with nothing
 * to upload does not count, nor the build before the first upload:
 * 69 ms for the first 32 MiB segment of a traced run, which put the
 * first whole window at 0.77 of the store's rate), summed over windows
 * of at least a segment (a probe's worth while the segments ramp up,
 * below) and smoothed (rate = (rate + window's) / 2).
 * Segments that commit in one step (the oldest upload lands after
 * younger ones, and its commit commits them all) are one measurement:
 * the caller passes them at one instant, and one that comes at the
 * instant a window closed reopens it
 * (measured alone, the second of two had spent no time of its own in
 * the pipeline: a window of 32 MiB in 12 us put the estimate at
 * 1.4 TB/s, and pacing let writers run into the limit for a dozen
 * commits; check-pace test_commit_burst).  Until the first window
 * closes, HF_PACE_INIT_RATE, which the first measurement replaces (it
 * is a guess, not evidence); each window of the ramp (below) replaces
 * the one before in turn, up to the first whole window's, instead of
 * being averaged with it.
 *
 * The start: a guess is wrong one way or the other (16 MiB/s held
 * writers to a third of a 96 MiB/s store's rate; a higher one runs a
 * slower store into the limit), and the first 32 MiB segment commits
 * only after it has been uploaded whole (0.4 s at 96 MiB/s, 2 s at
 * 16), while a client at 400 MiB/s reaches the zone in 0.16 s: its
 * writers queued on the guess for 250-330 ms, four times the steady
 * median (slow-seqwrite's p99.9).  So the first segment, sealed while
 * nothing is measured, is a probe of an eighth
 * of a segment (hf_pace_seal_size), and the first window is the probe's
 * size: 4 MiB commit in 0.05 s at 96 MiB/s, before the client reaches
 * the zone, and the writers meet it with the store's rate (check-pace
 * test_start: the longest wait 291 -> 85 ms, the steady median 84).
 * One PUT more per volume opened.  The probe's rate includes one PUT's
 * latency, which a whole segment's upload hides behind the next one's
 * transfer but the probe's cannot: an underestimate, 0.64 of a 96 MiB/s
 * fault store in a traced run (with its build), and writers waited
 * 100-130 ms (median 83) until the estimate had climbed, half way per
 * commit, to the store's rate at the fourth commit: the p99 of a 20 s
 * run (check-pace test_start_latency).  So the first whole window
 * replaces the probe's figure instead of being averaged with it.  A
 * probe of a quarter measured better (0.82-0.9) but commits later: a
 * client at 600-800 MiB/s (the server without debug output) reached
 * the zone first and its writers waited on the guess, 250-275 ms
 * (test_start_latency's second client).  Segments under 8 MiB have no
 * probe: they commit soon anyway, and a probe under 1 MiB would measure
 * mostly latency.
 * One probe and then whole segments still rested on one small
 * measurement: on the bench machine the probe measured 0.54-0.57 of a
 * 100 MiB/s link in the bad runs (the directory store's fsyncs behind
 * the log's burst, the uploader waiting for a core; 0.85-0.9 in good
 * ones), and no commit came for 0.5-1.1 s after it, while the writers
 * queued on its figure in the middle of the zone: 24-27 writes over
 * 100 ms, slow-seqwrite p99 105-115 ms.  So the segments ramp up: the
 * probe, then twice its size at each seal that filled the size before
 * (hf_pace_sealed: 4, 8, 16, then 32 MiB), until a whole segment's
 * window has been measured.  Each commit of the ramp is a window of its
 * own and replaces the figure before (a larger one hides more of a
 * PUT's latency behind the upload before it), so the estimate is
 * corrected every 0.2-0.4 s instead of after a second (check-pace
 * test_start_slow_probe, a probe at 0.55-0.6 of the store: 16-21 of
 * 2,000 writes over 100 ms -> 0-5).  Two PUTs more per volume opened
 * than the one probe.
 * Measuring the first upload's progress instead would need every store
 * to report it (the directory store writes a segment in one call).
 *
 * What the writers are admitted by is dirty data as it stands on
 * average between commits, not at the instant: a commit drops it by a
 * whole step (a segment, half the zone) while admissions raise it
 * smoothly, so the instant's figure swung the admitted rate from 0.875
 * to 1.125 of the drain and each commit cycle's writers from 0.9 to
 * 1.14 of Little's law (72-91 ms in slow-seqwrite, 80-107 at the start
 * when the estimate was low; check-pace test_seq_1m_qd8: p1 76, p99 85
 * ms).  The upload in progress is taken to have drained the measured
 * rate (or the estimate, if lower) since the last commit, up to the
 * bytes of that commit's step, and half a step is added back: the
 * figure is then flat while commits come when expected (p1 = p99 = 81
 * ms), and one that is overdue (a store that slowed down) raises it
 * only to where a step's average would put it.  A store that slowed
 * from 100 to 80 MiB/s: its longest write 132 ms by the instant's
 * figure, 102 by the average (Little's law: 100); counting the
 * progress without adding half a step back ran those writers into the
 * limit six times (check-pace test_store_slows).
 *
 * A writer that reaches the limit cuts the estimate
 * to the lower of half and the last window's measurement: the smoothing
 * alone halves an error per commit, and an estimate far too high (4 GiB/s
 * for a 16 MiB/s store) had writers meet the hard wait at each commit
 * for a dozen (check-pace test_estimate_too_high: 85 hard waits in 2
 * minutes, 19 with the cut, 11 once the first measurement replaces the
 * estimate, 16 with the probe, whose commit frees only 4 MiB of a limit
 * the model's instant client filled first; 19 once the first whole
 * window replaces the probe's figure: it also replaces the cut that
 * followed the probe, where averaging had left the estimate at 0.75 of
 * the store's rate).  Once per admission: the writers that
 * reach the limit together were all admitted at the old rate and are
 * one piece of evidence; a write admitted after the cut that reaches it
 * too cuts again.  A cut too deep only lets dirty data fall below the
 * zone until the next window raises the estimate.
 *
 * Admission is serialised by a clock (next_us): a write takes the slot
 * of bytes / admitted rate after the previous write's, so N writers in
 * flight share the rate (4 KiB at QD32 wait about 32 slots).  No write
 * is asked to wait more than HF_PACE_MAX_DELAY_US (a guard against an
 * admitted rate near 0 just below the limit; an estimate that is too
 * high ends at the hard wait and is cut there, one that is too low
 * below the zone, so the estimate corrects itself either way).
 */
#include <config.h>

#include "pace.h"

void
hf_pace_init (struct hf_pace *p, uint64_t limit, uint64_t segment_size)
{
  *p = (struct hf_pace) { .limit = limit, .rate = HF_PACE_INIT_RATE };
  p->zone = limit / 2;
  if (p->zone > 2 * segment_size)
    p->zone = 2 * segment_size;
  p->window = segment_size;
  p->probe = segment_size / HF_PACE_PROBE_DIV;
  if (p->probe < HF_PACE_PROBE_MIN)
    p->probe = segment_size;
  p->ramp = p->probe;
}

void
hf_pace_sealed (struct hf_pace *p, uint64_t bytes)
{
  if (bytes >= p->ramp)
    p->ramp = 2 * p->ramp < p->window ? 2 * p->ramp : p->window;
}

uint64_t
hf_pace_seal_size (const struct hf_pace *p)
{
  return p->whole ? p->window : p->ramp;
}

void
hf_pace_committed (struct hf_pace *p, uint64_t now_us, uint64_t built_us,
                   uint64_t bytes)
{
  uint64_t from;

  if (p->c_open && now_us == p->last_commit_us) {
    /* Committed with the segment that closed the window: part of it. */
    p->w_bytes += p->c_bytes;
    p->w_us += p->c_us;
    p->rate = p->c_rate;
    p->measured = p->c_measured;
    p->whole = p->c_whole;
  }
  if (now_us == p->step_us)
    p->step += bytes;           /* one commit step */
  else if (bytes) {             /* (an empty segment frees nothing) */
    p->step = bytes;
    p->step_us = now_us;
  }
  p->c_open = false;
  from = built_us > p->last_commit_us ? built_us : p->last_commit_us;
  p->last_commit_us = now_us;
  if (now_us > from)
    p->w_us += now_us - from;
  p->w_bytes += bytes;
  if (p->w_bytes < (p->whole ? p->window : p->probe) || p->w_us == 0)
    return;
  {
    uint64_t r = (uint64_t) ((double) p->w_bytes * 1e6 / (double) p->w_us);

    if (r == 0)
      r = 1;
    p->c_bytes = p->w_bytes;
    p->c_us = p->w_us;
    p->c_rate = p->rate;
    p->c_measured = p->measured;
    p->c_whole = p->whole;
    p->c_open = true;
    /* The first measurement replaces the initial guess (no evidence:
     * averaged with it, 16 MiB/s held a 96 MiB/s store's writers to
     * half its rate for a second commit), and the first whole window
     * the probe's (an underestimate, above). */
    p->rate = p->whole ? (p->rate + r) / 2 : r;
    if (p->w_bytes >= p->window)
      p->whole = true;
    p->measured = r;
    if (p->rate == 0)
      p->rate = 1;
  }
  p->w_bytes = p->w_us = 0;
}

void
hf_pace_limit (struct hf_pace *p)
{
  if (p->cut)
    return;
  p->cut = true;
  p->rate /= 2;
  if (p->measured && p->measured < p->rate)
    p->rate = p->measured;
  if (p->rate == 0)
    p->rate = 1;
}

uint64_t
hf_pace_delay (struct hf_pace *p, uint64_t now_us, uint64_t dirty,
               uint64_t bytes)
{
  uint64_t start, slot_us, seen = dirty;
  double x, admit, gone;

  if (dirty >= p->limit)
    return 0;           /* the hard wait's business */
  /* Dirty data as it stands on average over the time between commits
   * (pace.c): less the upload in progress, taken at the measured rate
   * since the last step committed (at most its bytes), plus half a
   * step; never past the limit. */
  if (p->measured && p->step && now_us > p->step_us) {
    gone = (double) (p->rate < p->measured ? p->rate : p->measured) *
      (double) (now_us - p->step_us) / 1e6;
    if (gone > (double) p->step)
      gone = (double) p->step;
    gone = (double) dirty - gone + (double) (p->step / 2);
    seen = gone <= 0 ? 0 : gone >= (double) p->limit ? p->limit
      : (uint64_t) gone;
  }
  if (p->zone == 0 || seen + p->zone < p->limit) {
    p->next_us = 0;     /* below the zone: no backlog carried over */
    return 0;
  }
  p->cut = false;       /* admitted at the rate as it now stands */
  x = (double) (seen + p->zone - p->limit) / (double) p->zone; /* [0, 1] */
  admit = (double) p->rate * (1.0 + 8.0 * (0.5 - x) * (0.5 - x) * (0.5 - x));
  if (admit < 1.0)
    admit = 1.0;
  slot_us = (uint64_t) ((double) bytes * 1e6 / admit) + 1;
  start = p->next_us > now_us ? p->next_us : now_us;
  if (start - now_us + slot_us > HF_PACE_MAX_DELAY_US) {
    p->next_us = now_us + HF_PACE_MAX_DELAY_US;
    return HF_PACE_MAX_DELAY_US;
  }
  p->next_us = start + slot_us;
  return p->next_us - now_us;
}
