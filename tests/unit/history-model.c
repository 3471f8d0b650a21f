/* Test helper: reference model of a volume's points in time (see
 * history-model.h). */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "history.h"
#include "history-model.h"

static uint64_t
hm_rnd (struct hm_model *m)
{
  uint64_t x = m->rng;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  return m->rng = x;
}

static uint64_t
hm_rndn (struct hm_model *m, uint64_t n)
{
  return n ? hm_rnd (m) % n : 0;
}

struct hf_volume_options
hm_volume_options (unsigned ckpt_segments)
{
  return (struct hf_volume_options) {
    .segment_size = 64 << 20,           /* never seals on size */
    .flush_interval_ms = UINT32_MAX,    /* nor on age */
    .node_cache = 16,                   /* nodes come from the store */
    .checkpoint_segments = ckpt_segments,
    .checkpoint_entries = 64,
    .flush_timeout_ms = 20000,
  };
}

void
hm_init (struct hm_model *m, uint64_t size, uint64_t max_size, uint64_t seed)
{
  memset (m, 0, sizeof *m);
  m->max_size = max_size;
  m->size = size;
  m->img = calloc (1, max_size);
  ck_assert (m->img);
  m->rng = seed * 0x9e3779b97f4a7c15ull + 1;
}

void
hm_init_from (struct hm_model *m, const struct hm_model *src, uint64_t seq,
              uint64_t seed)
{
  const struct hm_point *p = hm_find (src, seq);

  ck_assert_msg (p != NULL, "no recorded point %" PRIu64, seq);
  hm_init (m, p->size, src->max_size, seed);
  memcpy (m->img, p->img, p->size);
}

void
hm_free (struct hm_model *m)
{
  size_t i;

  for (i = 0; i < m->n; i++)
    free (m->pts[i].img);
  free (m->pts);
  free (m->img);
}

const struct hm_point *
hm_find (const struct hm_model *m, uint64_t seq)
{
  size_t i;

  for (i = 0; i < m->n; i++)
    if (m->pts[i].seq == seq)
      return &m->pts[i];
  return NULL;
}

void
hm_set_current (struct hm_model *m, uint64_t seq)
{
  const struct hm_point *p = hm_find (m, seq);

  ck_assert (p != NULL);
  memset (m->img, 0, m->max_size);
  memcpy (m->img, p->img, p->size);
  m->size = p->size;
}

void
hm_record (struct hm_model *m, struct hf_volume *v)
{
  struct hf_volume_info vi;
  struct hm_point *p;

  hf_volume_get_info (v, &vi);
  ck_assert_uint_eq (vi.size, m->size);
  if (m->n == m->cap) {
    m->cap = m->cap ? 2 * m->cap : 32;
    m->pts = realloc (m->pts, m->cap * sizeof *m->pts);
    ck_assert (m->pts);
  }
  p = &m->pts[m->n++];
  p->seq = vi.head_seq;
  p->timestamp_ns = 0;          /* filled from history by hm_check_all */
  p->size = m->size;
  p->img = malloc (m->size);
  ck_assert (p->img);
  memcpy (p->img, m->img, m->size);
}

void
hm_flush_record (struct hm_model *m, struct hf_volume *v)
{
  struct hf_volume_info vi;
  uint64_t before;

  hf_volume_get_info (v, &vi);
  before = vi.head_seq;
  ck_assert_int_eq (hf_volume_flush (v), 0);
  hf_volume_get_info (v, &vi);
  if (vi.head_seq != before) {
    ck_assert_uint_eq (vi.head_seq, before + 1);   /* exactly one point */
    hm_record (m, v);
  }
}

void
hm_grow (struct hm_model *m, struct hf_volume *v, uint64_t new_size)
{
  struct hf_volume_info vi;
  uint64_t before;

  /* grow seals what is buffered (or an empty segment carrying the new
   * size): a point of its own, which may commit in the background before
   * the flush below, so the head is taken before the grow. */
  hf_volume_get_info (v, &vi);
  before = vi.head_seq;
  ck_assert_int_eq (hf_volume_grow (v, new_size), 0);
  m->size = new_size;
  if (m->after_grow)
    m->after_grow (v, before);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  hf_volume_get_info (v, &vi);
  ck_assert_uint_eq (vi.head_seq, before + 1);     /* exactly one point */
  hm_record (m, v);
}

void
hm_workload (struct hm_model *m, struct hf_volume *v, unsigned steps,
             unsigned flush_every)
{
  uint8_t *buf = malloc (256 * 1024);
  unsigned i;

  ck_assert (buf);
  for (i = 0; i < steps; i++) {
    uint64_t k = hm_rndn (m, 100), off, len, j;

    len = 1 + hm_rndn (m, hm_rndn (m, 4) == 0 ? 64 * 1024 : 9000);
    if (len > m->size)
      len = m->size;
    off = hm_rndn (m, m->size - len + 1);
    if (k < 70) {
      for (j = 0; j < len; j++)
        buf[j] = (uint8_t) (hm_rnd (m) >> 24);
      if (hm_rndn (m, 5) == 0)          /* some all-zero blocks */
        memset (buf, 0, len);
      ck_assert_int_eq (hf_volume_pwrite (v, buf, len, off, 0), 0);
      memcpy (m->img + off, buf, len);
    }
    else if (k < 82) {
      ck_assert_int_eq (hf_volume_trim (v, len, off, 0), 0);
      memset (m->img + off, 0, len);
    }
    else if (k < 94) {
      ck_assert_int_eq (hf_volume_zero (v, len, off, 0), 0);
      memset (m->img + off, 0, len);
    }
    else if (k < 96 && m->size + 65536 <= m->max_size)
      hm_grow (m, v, m->size + 65536);
    if (hm_rndn (m, flush_every) == 0)
      hm_flush_record (m, v);
  }
  hm_flush_record (m, v);
  free (buf);
}

void
hm_check_volume (struct hf_volume *v, uint64_t size, const uint8_t *img,
                 const char *what)
{
  struct hf_volume_info vi;
  uint8_t *got;
  uint64_t i;

  hf_volume_get_info (v, &vi);
  ck_assert_msg (vi.size == size, "%s: size %" PRIu64 ", want %" PRIu64,
                 what, vi.size, size);
  got = malloc (size ? size : 1);
  ck_assert (got);
  ck_assert_int_eq (hf_volume_pread (v, got, size, 0), 0);
  if (memcmp (got, img, size) != 0) {
    for (i = 0; i < size && got[i] == img[i]; i++)
      ;
    ck_abort_msg ("%s: differs at byte %" PRIu64 " (got %u want %u)", what,
                  i, got[i], img[i]);
  }
  free (got);
}

static void
hm_check_at (const struct hm_model *m, struct hf_objstore *s,
             const char *prefix, uint64_t seq, const struct hm_point *want,
             const char *how)
{
  struct hf_volume_options o = { .at_seq = seq, .node_cache = 16 };
  struct hf_volume *v = NULL;
  char what[160];
  int r;

  (void) m;
  snprintf (what, sizeof what, "point %" PRIu64 " by %s", want->seq, how);
  ck_assert_msg (seq == want->seq, "%s resolved to %" PRIu64, what, seq);
  r = hf_volume_open (s, prefix, &o, &v);
  ck_assert_msg (r == 0, "%s: open: %s", what, strerror (r));
  hm_check_volume (v, want->size, want->img, what);
  ck_assert_int_eq (hf_volume_close (v), 0);
}

void
hm_check_all (struct hm_model *m, struct hf_objstore *s, const char *prefix,
              unsigned ways)
{
  struct hf_history *h;
  const struct hf_point *p;
  size_t n, i, j;
  char at[64];
  uint64_t seq;

  ck_assert_int_eq (hf_history_open (s, prefix, NULL, &h), 0);
  ck_assert_int_eq (hf_history_points (h, &p, &n), 0);
  /* Every recorded point is a point in time, with its timestamp. */
  for (i = 0; i < m->n; i++) {
    for (j = 0; j < n && p[j].seq != m->pts[i].seq; j++)
      ;
    ck_assert_msg (j < n, "recorded point %" PRIu64 " is not listed",
                   m->pts[i].seq);
    m->pts[i].timestamp_ns = p[j].timestamp_ns;
  }
  /* And every listed point from the oldest recorded one on is recorded
   * (close checkpoints and rollbacks are recorded by the tests too). */
  for (j = 0; j < n && m->n && p[j].seq >= m->pts[0].seq; j++)
    ck_assert_msg (hm_find (m, p[j].seq) != NULL,
                   "listed point %" PRIu64 " was not recorded", p[j].seq);

  for (i = 0; i < m->n; i++) {
    const struct hm_point *want = &m->pts[i];

    if (ways & HM_BY_SEQ) {
      snprintf (at, sizeof at, "%" PRIu64, want->seq);
      ck_assert_int_eq (hf_history_resolve (h, at, true, &seq), 0);
      hm_check_at (m, s, prefix, seq, want, "seq");
    }
    if (ways & HM_BY_TIME) {
      /* The newest listed point at or before this one's time is this
       * one unless a newer point has the very same timestamp. */
      const struct hm_point *exp = want;
      for (j = 0; j < n; j++)
        if (p[j].timestamp_ns <= want->timestamp_ns) {
          exp = hm_find (m, p[j].seq);
          break;
        }
      ck_assert (exp != NULL);
      hf_history_format_time (want->timestamp_ns, at, sizeof at);
      ck_assert_int_eq (hf_history_resolve (h, at, false, &seq), 0);
      hm_check_at (m, s, prefix, seq, exp, "time");
    }
    if (ways & HM_BY_SNAPSHOT) {
      struct hf_snapshot sn;
      char name[40];

      snprintf (name, sizeof name, "hm-%" PRIu64, want->seq);
      if (hf_snapshot_get (s, prefix, name, &sn) == ENOENT)
        ck_assert_int_eq (hf_snapshot_create (h, name, want->seq, NULL), 0);
      ck_assert_int_eq (hf_history_resolve (h, name, false, &seq), 0);
      hm_check_at (m, s, prefix, seq, want, "snapshot");
    }
  }
  hf_history_close (h);
}

void
hm_close_record (struct hm_model *m, struct hf_volume *v,
                 struct hf_objstore *s, const char *prefix)
{
  struct hf_volume_options o = { .readonly = true };
  struct hf_volume *r = NULL;
  struct hf_volume_info vi;

  ck_assert_int_eq (hf_volume_close (v), 0);
  ck_assert_int_eq (hf_volume_open (s, prefix, &o, &r), 0);
  hf_volume_get_info (r, &vi);
  if (m->n == 0 || vi.head_seq != m->pts[m->n - 1].seq)
    hm_record (m, r);
  ck_assert_int_eq (hf_volume_close (r), 0);
}
