/* Unit tests for lib/runs: the sorted extent run lists on their own.
 * Every list operation is checked against a per-block model (an array
 * saying, for each block, hole or (seq, blk, crc)), plus the list's own
 * invariants: sorted, disjoint, non-empty runs, and coalesced where the
 * runs allow it. */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "runs.h"
#include "test-util.h"

#define NB 256                  /* blocks the random tests cover */

/* What the model says of one block. */
struct mblk {
  bool known, data;
  uint64_t seq;
  uint32_t blk;
  const uint32_t *crc;
};

/* Fake CRC tables: crc[k] is the address of entry k of table seq. */
static uint32_t crctab[8][NB * 2];

static void
check_invariants (const struct hf_runs *r, bool any_data)
{
  size_t i;

  for (i = 0; i < r->n; i++) {
    ck_check_msg (r->v[i].n > 0, "run %zu is empty", i);
    if (i > 0) {
      const struct hf_run *a = &r->v[i - 1], *b = &r->v[i];
      ck_check_msg (a->lba + a->n <= b->lba, "run %zu (%" PRIu64 "+%" PRIu64
                    ") overlaps or precedes run %zu (%" PRIu64 ")", i - 1,
                    a->lba, (uint64_t) a->n, i, b->lba);
      /* Adjacent runs that could coalesce must have. */
      if (a->lba + a->n == b->lba && a->data == b->data) {
        if (!a->data || any_data)
          ck_abort_msg ("runs %zu and %zu not coalesced", i - 1, i);
        ck_check_msg (a->seq != b->seq || a->blk + a->n != b->blk,
                      "data runs %zu and %zu not coalesced", i - 1, i);
      }
    }
  }
}

/* Does r say of every block in [0, NB) what model m says?  (Checked
 * with ck_check_msg: this runs for every block of 1,400 lists.) */
static void
check_model (const struct hf_runs *r, const struct mblk *m)
{
  uint64_t lba;

  for (lba = 0; lba < NB; lba++) {
    ssize_t k = hf_runs_find (r, lba);
    if (!m[lba].known) {
      ck_check_msg (k == -1, "block %" PRIu64 ": in run %zd, not in the "
                    "model", lba, k);
      continue;
    }
    ck_check_msg (k >= 0, "block %" PRIu64 ": in the model, in no run", lba);
    const struct hf_run *x = &r->v[k];
    ck_check_msg (x->data == m[lba].data, "block %" PRIu64 ": data %d, the "
                  "model says %d", lba, x->data, m[lba].data);
    if (x->data) {
      uint64_t d = lba - x->lba;
      ck_check_msg (x->seq == m[lba].seq && x->blk + d == m[lba].blk &&
                    x->crc + d == m[lba].crc, "block %" PRIu64 ": segment "
                    "%" PRIu64 " block %" PRIu64 ", the model says %" PRIu64
                    " block %" PRIu32 " (or another CRC address)", lba,
                    x->seq, (uint64_t) (x->blk + d), m[lba].seq, m[lba].blk);
    }
  }
}

/* A random sorted, disjoint list over [0, NB) into r (and apply it to
 * the model). */
static void
random_list (struct hf_runs *r, struct mblk *m, uint64_t seq)
{
  uint64_t lba = rndn (8);
  uint32_t blk = (uint32_t) rndn (16);

  r->n = 0;
  while (lba < NB) {
    struct hf_run x = { .lba = lba, .n = 1 + rndn (12) };
    uint64_t k;

    if (x.lba + x.n > NB)
      x.n = NB - x.lba;
    x.data = rndn (3) != 0;
    if (x.data) {
      x.seq = seq;
      x.blk = blk;
      x.crc = &crctab[seq][blk];
      blk += (uint32_t) x.n + (uint32_t) rndn (2);
    }
    ck_check_msg (hf_runs_push (r, &x, false) == 0, "hf_runs_push failed");
    for (k = 0; k < x.n; k++)
      m[x.lba + k] = (struct mblk) {
        true, x.data, x.seq, x.blk + (uint32_t) k,
        x.data ? x.crc + k : NULL };
    lba += x.n + rndn (10);
  }
}

/* Overlaying random lists, oldest first, says of every block what the
 * newest list that covers it says. */
START_TEST (test_apply_model)
{
  int round;

  for (round = 0; round < 200; round++) {
    struct hf_runs acc = { 0 }, nw = { 0 };
    struct mblk m[NB];
    uint64_t seq;

    memset (m, 0, sizeof m);
    for (seq = 1; seq < 8; seq++) {
      struct mblk tmp[NB];
      uint64_t b;

      memset (tmp, 0, sizeof tmp);
      random_list (&nw, tmp, seq);
      check_invariants (&nw, false);
      ck_assert_int_eq (hf_runs_apply (&acc, nw.v, nw.n, false), 0);
      for (b = 0; b < NB; b++)
        if (tmp[b].known)
          m[b] = tmp[b];
      check_invariants (&acc, false);
      check_model (&acc, m);
    }
    hf_runs_free (&acc);
    hf_runs_free (&nw);
    ck_assert_ptr_null (acc.v);
    ck_assert_uint_eq (acc.n, 0);
  }
}
END_TEST

/* hf_runs_apply_spare says what hf_runs_apply says, building in the
 * spare's array and leaving r's old one as the spare: two arrays,
 * reused, never a new one while they are large enough. */
START_TEST (test_apply_spare)
{
  int round;

  for (round = 0; round < 100; round++) {
    struct hf_runs a = { 0 }, b = { 0 }, spare = { 0 }, nw = { 0 };
    struct mblk tmp[NB];
    uint64_t seq;
    size_t i;

    /* Room enough from the start, so that no call has to grow them. */
    b.cap = spare.cap = 4 * NB;
    b.v = malloc (b.cap * sizeof *b.v);
    spare.v = malloc (spare.cap * sizeof *spare.v);
    ck_assert (b.v != NULL && spare.v != NULL);
    for (seq = 1; seq < 8; seq++) {
      struct hf_run *old_b = b.v, *old_spare = spare.v;

      memset (tmp, 0, sizeof tmp);
      random_list (&nw, tmp, seq);
      ck_assert_int_eq (hf_runs_apply (&a, nw.v, nw.n, false), 0);
      ck_assert_int_eq (hf_runs_apply_spare (&b, &spare, nw.v, nw.n, false),
                        0);
      ck_assert_uint_eq (spare.n, 0);
      ck_assert_uint_eq (a.n, b.n);
      for (i = 0; i < a.n; i++) {
        /* (Field by field: the padding after data is not the runs'.) */
        ck_assert_uint_eq (a.v[i].lba, b.v[i].lba);
        ck_assert_uint_eq (a.v[i].n, b.v[i].n);
        ck_assert_int_eq (a.v[i].data, b.v[i].data);
        if (a.v[i].data) {
          ck_assert_uint_eq (a.v[i].seq, b.v[i].seq);
          ck_assert_uint_eq (a.v[i].blk, b.v[i].blk);
          ck_assert_ptr_eq (a.v[i].crc, b.v[i].crc);
        }
      }
      /* The two arrays changed places. */
      ck_assert_ptr_eq (b.v, old_spare);
      ck_assert_ptr_eq (spare.v, old_b);
    }
    hf_runs_free (&a);
    hf_runs_free (&b);
    hf_runs_free (&spare);
    hf_runs_free (&nw);
  }
}
END_TEST

/* Pushing coalesces contiguous holes, and data only where the physical
 * blocks and CRCs continue too (or always with any_data). */
START_TEST (test_push_coalesce)
{
  struct hf_runs r = { 0 };
  struct hf_run a = { .lba = 10, .n = 4, .data = true, .seq = 3, .blk = 7,
                      .crc = &crctab[3][7] };
  struct hf_run b = { .lba = 14, .n = 2, .data = true, .seq = 3, .blk = 11,
                      .crc = &crctab[3][11] };
  struct hf_run c = { .lba = 16, .n = 1, .data = true, .seq = 4, .blk = 13,
                      .crc = &crctab[4][13] };
  struct hf_run h1 = { .lba = 17, .n = 3 }, h2 = { .lba = 20, .n = 5 };
  struct hf_run empty = { .lba = 25, .n = 0 };

  ck_assert_int_eq (hf_runs_push (&r, &a, false), 0);
  ck_assert_int_eq (hf_runs_push (&r, &b, false), 0);
  ck_assert_uint_eq (r.n, 1);
  ck_assert_uint_eq (r.v[0].n, 6);
  ck_assert_int_eq (hf_runs_push (&r, &c, false), 0);   /* other segment */
  ck_assert_uint_eq (r.n, 2);
  ck_assert_int_eq (hf_runs_push (&r, &h1, false), 0);
  ck_assert_int_eq (hf_runs_push (&r, &h2, false), 0);
  ck_assert_uint_eq (r.n, 3);
  ck_assert_uint_eq (r.v[2].n, 8);
  ck_assert_int_eq (hf_runs_push (&r, &empty, false), 0);
  ck_assert_uint_eq (r.n, 3);
  hf_runs_free (&r);

  /* any_data: the extents view joins data whatever its location. */
  ck_assert_int_eq (hf_runs_push (&r, &a, true), 0);
  ck_assert_int_eq (hf_runs_push (&r, &c, true), 0);    /* gap: no */
  ck_assert_uint_eq (r.n, 2);
  hf_runs_free (&r);
  b.seq = 9;
  ck_assert_int_eq (hf_runs_push (&r, &a, true), 0);
  ck_assert_int_eq (hf_runs_push (&r, &b, true), 0);
  ck_assert_uint_eq (r.n, 1);
  ck_assert_uint_eq (r.v[0].n, 6);
  hf_runs_free (&r);
}
END_TEST

/* A piece of a data run keeps its block and CRC addresses in step. */
START_TEST (test_piece)
{
  struct hf_run o = { .lba = 100, .n = 50, .data = true, .seq = 2,
                      .blk = 40, .crc = &crctab[2][40] };
  struct hf_run h = { .lba = 100, .n = 50 };
  struct hf_run p = hf_run_piece (&o, 110, 120);

  ck_assert_uint_eq (p.lba, 110);
  ck_assert_uint_eq (p.n, 10);
  ck_assert_uint_eq (p.blk, 50);
  ck_assert_ptr_eq (p.crc, &crctab[2][50]);
  ck_assert_uint_eq (p.seq, 2);
  p = hf_run_piece (&h, 149, 150);
  ck_assert_uint_eq (p.lba, 149);
  ck_assert_uint_eq (p.n, 1);
  ck_assert (!p.data);
}
END_TEST

/* find and lower_bound at the edges: before, inside, between, after. */
START_TEST (test_find_bounds)
{
  struct hf_runs r = { 0 };
  struct hf_run x = { .lba = 10, .n = 5 }, y = { .lba = 20, .n = 1 };

  ck_assert_int_eq (hf_runs_find (&r, 0), -1);
  ck_assert_uint_eq (hf_runs_lower_bound (&r, 0), 0);
  ck_assert_int_eq (hf_runs_push (&r, &x, false), 0);
  ck_assert_int_eq (hf_runs_push (&r, &y, false), 0);
  ck_assert_int_eq (hf_runs_find (&r, 9), -1);
  ck_assert_int_eq (hf_runs_find (&r, 10), 0);
  ck_assert_int_eq (hf_runs_find (&r, 14), 0);
  ck_assert_int_eq (hf_runs_find (&r, 15), -1);
  ck_assert_int_eq (hf_runs_find (&r, 20), 1);
  ck_assert_int_eq (hf_runs_find (&r, 21), -1);
  ck_assert_uint_eq (hf_runs_lower_bound (&r, 0), 0);
  ck_assert_uint_eq (hf_runs_lower_bound (&r, 12), 0);
  ck_assert_uint_eq (hf_runs_lower_bound (&r, 15), 1);
  ck_assert_uint_eq (hf_runs_lower_bound (&r, 20), 1);
  ck_assert_uint_eq (hf_runs_lower_bound (&r, 21), 2);
  hf_runs_free (&r);
}
END_TEST

/* A segment's extent table read as runs: zero runs, then data in the
 * data area's order; a later extent wins over an earlier one. */
START_TEST (test_of_segment)
{
  struct hf_seg_ext ext[] = {
    { 0, 100, HF_EXT_ZERO },
    { 10, 3, HF_EXT_DATA },     /* data blocks 0..2 */
    { 50, 2, HF_EXT_DATA },     /* data blocks 3..4 */
    { 11, 1, HF_EXT_ZERO },     /* a later zero over a data block */
    { 200, 1, HF_EXT_DATA },    /* data block 5 */
  };
  uint32_t crcs[6] = { 1, 2, 3, 4, 5, 6 };
  struct hf_seg_meta m;
  struct hf_runs r = { 0 };
  uint32_t bs = 4096;

  memset (&m, 0, sizeof m);
  m.h.seq = 7;
  m.h.data_off = 8 * bs;
  m.h.n_ext = sizeof ext / sizeof ext[0];
  m.h.n_data = 6;
  m.ext = ext;
  m.crcs = crcs;
  ck_assert_int_eq (hf_runs_of_segment (&m, bs, &r), 0);
  check_invariants (&r, false);
  /* 0-9 zero, 10 data(8), 11 zero, 12 data(10), 13-49 zero, 50-51
   * data(11, 12), 52-99 zero, 200 data(13). */
  ck_assert_uint_eq (r.n, 8);
  ck_assert (!r.v[0].data && r.v[0].lba == 0 && r.v[0].n == 10);
  ck_assert (r.v[1].data && r.v[1].lba == 10 && r.v[1].n == 1);
  ck_assert_uint_eq (r.v[1].blk, 8);
  ck_assert_ptr_eq (r.v[1].crc, &crcs[0]);
  ck_assert (!r.v[2].data && r.v[2].lba == 11 && r.v[2].n == 1);
  ck_assert (r.v[3].data && r.v[3].lba == 12 && r.v[3].blk == 10);
  ck_assert_ptr_eq (r.v[3].crc, &crcs[2]);
  ck_assert (!r.v[4].data && r.v[4].lba == 13 && r.v[4].n == 37);
  ck_assert (r.v[5].data && r.v[5].lba == 50 && r.v[5].n == 2 &&
             r.v[5].blk == 11 && r.v[5].seq == 7);
  ck_assert (!r.v[6].data && r.v[6].lba == 52 && r.v[6].n == 48);
  ck_assert (r.v[7].data && r.v[7].lba == 200 && r.v[7].blk == 13);
  ck_assert_ptr_eq (r.v[7].crc, &crcs[5]);
  hf_runs_free (&r);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("runs");
  TCase *tc = tcase_create ("core");

  hf_log_set_sink (log_verbose);
  tcase_add_test (tc, test_apply_model);
  tcase_add_test (tc, test_apply_spare);
  tcase_add_test (tc, test_push_coalesce);
  tcase_add_test (tc, test_piece);
  tcase_add_test (tc, test_find_bounds);
  tcase_add_test (tc, test_of_segment);
  suite_add_tcase (s, tc);
  return run_suite (s);
}
