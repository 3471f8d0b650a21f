/* Unit tests for lib/wbuf: the write buffer on its own.  Random puts
 * and zeroes are checked against a per-block model; then the hash's
 * growth, the zero runs' merging, the spare slot array, the sorted view
 * and remap that the builder uses, and the extents view. */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "test-util.h"
#include "wbuf.h"

#define BS 512
#define NB 400

/* Model: 0 unknown, 1 zero, 2 data (bytes in mdata). */
static uint8_t mstate[NB];
static uint8_t mdata[NB][BS];

static void
fill (uint8_t *p, uint64_t lba, unsigned gen)
{
  size_t i;

  for (i = 0; i < BS; i++)
    p[i] = (uint8_t) (lba * 31 + gen * 7 + i + 1);
}

static void
check_model (const struct hf_wbuf *b)
{
  uint64_t lba;

  for (lba = 0; lba < NB; lba++) {
    bool zero;
    const uint8_t *p = hf_wbuf_lookup (b, BS, lba, &zero);
    switch (mstate[lba]) {
    case 0:
      ck_assert_ptr_null (p);
      ck_assert (!zero);
      break;
    case 1:
      ck_assert_ptr_null (p);
      ck_assert (zero);
      break;
    default:
      ck_assert_ptr_nonnull (p);
      ck_assert_int_eq (memcmp (p, mdata[lba], BS), 0);
    }
  }
}

/* Random writes and zeroes read back as the model says, and bytes
 * counts one block per slot. */
START_TEST (test_model)
{
  int round;

  for (round = 0; round < 20; round++) {
    struct hf_wbuf *b = calloc (1, sizeof *b);
    unsigned op;
    uint32_t slots = 0;

    ck_assert_ptr_nonnull (b);
    memset (mstate, 0, sizeof mstate);
    for (op = 0; op < 2000; op++) {
      uint64_t lba = rndn (NB);
      if (rndn (5) == 0) {
        uint64_t n = 1 + rndn (20), k;
        if (lba + n > NB)
          n = NB - lba;
        ck_assert_int_eq (hf_wbuf_zero (b, lba, n), 0);
        for (k = 0; k < n; k++)
          mstate[lba + k] = 1;
      }
      else {
        bool added;
        fill (mdata[lba], lba, op);
        ck_assert_int_eq (hf_wbuf_put (b, BS, lba, mdata[lba], 0, NULL,
                                       &added), 0);
        if (added)
          slots++;
        mstate[lba] = 2;
      }
    }
    ck_assert (b->changed);
    ck_assert_uint_eq (b->n_slots, slots);
    ck_assert_uint_eq (b->bytes, (uint64_t) slots * BS);
    check_model (b);
    hf_wbuf_free (b);
  }
}
END_TEST

/* The hash grows past its first capacity and keeps every key; a block
 * written twice takes one slot. */
START_TEST (test_grow)
{
  struct hf_wbuf *b = calloc (1, sizeof *b);
  uint8_t blk[BS];
  uint64_t i, n = 5000;
  bool added;

  ck_assert_ptr_nonnull (b);
  for (i = 0; i < n; i++) {
    fill (blk, i * 977, 1);
    ck_assert_int_eq (hf_wbuf_put (b, BS, i * 977, blk, 0, NULL, &added), 0);
    ck_assert (added);
  }
  ck_assert_uint_ge (b->cap, 2 * n);
  ck_assert_uint_eq (b->used, n);
  fill (blk, 3 * 977, 2);
  ck_assert_int_eq (hf_wbuf_put (b, BS, 3 * 977, blk, 0, NULL, &added), 0);
  ck_assert (!added);
  ck_assert_uint_eq (b->n_slots, n);
  for (i = 0; i < n; i++) {
    bool zero;
    const uint8_t *p = hf_wbuf_lookup (b, BS, i * 977, &zero);
    fill (blk, i * 977, i == 3 ? 2 : 1);
    ck_assert_ptr_nonnull (p);
    ck_assert_int_eq (memcmp (p, blk, BS), 0);
    ck_assert_uint_ne (hf_wbuf_find (b, i * 977), SIZE_MAX);
  }
  ck_assert_uint_eq (hf_wbuf_find (b, 1), SIZE_MAX);
  hf_wbuf_free (b);
}
END_TEST

/* Zero runs merge with overlapping and adjacent ones, and a huge trim
 * is one run. */
START_TEST (test_zero_runs)
{
  struct hf_wbuf *b = calloc (1, sizeof *b);

  ck_assert_ptr_nonnull (b);
  ck_assert_int_eq (hf_wbuf_zero (b, 100, 10), 0);
  ck_assert_int_eq (hf_wbuf_zero (b, 200, 10), 0);
  ck_assert_int_eq (hf_wbuf_zero (b, 50, 10), 0);
  ck_assert_uint_eq (b->zeros.n, 3);
  ck_assert_uint_eq (b->zeros.v[0].lba, 50);
  ck_assert_int_eq (hf_wbuf_zero (b, 110, 5), 0);     /* adjacent */
  ck_assert_uint_eq (b->zeros.n, 3);
  ck_assert_uint_eq (b->zeros.v[1].n, 15);
  ck_assert_int_eq (hf_wbuf_zero (b, 55, 150), 0);    /* spans three */
  ck_assert_uint_eq (b->zeros.n, 1);
  ck_assert_uint_eq (b->zeros.v[0].lba, 50);
  ck_assert_uint_eq (b->zeros.v[0].n, 160);
  ck_assert_int_eq (hf_wbuf_zero (b, 0, (uint64_t) 1 << 40), 0);
  ck_assert_uint_eq (b->zeros.n, 1);
  ck_assert_uint_eq (b->zeros.v[0].n, (uint64_t) 1 << 40);
  ck_assert_uint_eq (b->n_slots, 0);
  hf_wbuf_free (b);
}
END_TEST

/* A zero over written blocks tombstones them (also through the long
 * path that scans the hash), and a later write wins over the zero. */
START_TEST (test_tombstone)
{
  struct hf_wbuf *b = calloc (1, sizeof *b);
  uint8_t blk[BS];
  bool added, zero;
  uint64_t i;

  ck_assert_ptr_nonnull (b);
  for (i = 0; i < 10; i++) {
    fill (blk, i, 0);
    ck_assert_int_eq (hf_wbuf_put (b, BS, i, blk, 0, NULL, &added), 0);
  }
  ck_assert_int_eq (hf_wbuf_zero (b, 2, 3), 0);               /* short */
  ck_assert_int_eq (hf_wbuf_zero (b, 6, (uint64_t) 1 << 20), 0); /* long */
  for (i = 0; i < 10; i++) {
    const uint8_t *p = hf_wbuf_lookup (b, BS, i, &zero);
    bool z = (i >= 2 && i < 5) || i >= 6;
    ck_assert_int_eq (p == NULL, z);
    ck_assert_int_eq (zero, z);
  }
  fill (blk, 3, 9);
  ck_assert_int_eq (hf_wbuf_put (b, BS, 3, blk, 0, NULL, &added), 0);
  /* The tombstone dropped the old slot: a new one is taken (the old
   * one is left out of the segment at build). */
  ck_assert (added);
  ck_assert_uint_eq (b->n_slots, 11);
  ck_assert_int_eq (memcmp (hf_wbuf_lookup (b, BS, 3, &zero), blk, BS), 0);
  hf_wbuf_free (b);
}
END_TEST

/* The first slot array comes from the spare when it is large enough. */
START_TEST (test_spare)
{
  struct hf_wbuf *b = calloc (1, sizeof *b), *c = calloc (1, sizeof *c);
  struct hf_wbuf_spare sp = { malloc (128 * BS), 128 * BS };
  struct hf_wbuf_spare small = { malloc (8 * BS), 8 * BS };
  uint8_t *p = sp.p, blk[BS];
  bool added;

  ck_assert_ptr_nonnull (b);
  ck_assert_ptr_nonnull (c);
  fill (blk, 1, 1);
  ck_assert_int_eq (hf_wbuf_put (b, BS, 1, blk, 0, &sp, &added), 0);
  ck_assert_ptr_eq (b->slots, p);
  ck_assert_ptr_null (sp.p);
  ck_assert_uint_eq (b->cap_slots, 128);
  ck_assert_int_eq (hf_wbuf_put (c, BS, 1, blk, 0, &small, &added), 0);
  ck_assert_ptr_nonnull (small.p);      /* too small: not taken */
  ck_assert_ptr_ne (c->slots, small.p);
  free (small.p);
  hf_wbuf_free (b);
  hf_wbuf_free (c);
}
END_TEST

/* The builder's view: data blocks in lba order, and after remap the
 * lookups read the copy. */
START_TEST (test_sorted_remap)
{
  struct hf_wbuf *b = calloc (1, sizeof *b);
  static const uint64_t lbas[] = { 90, 3, 50, 4, 70, 2 };
  struct hf_wbuf_ent *ents;
  uint8_t blk[BS], *copy, *old;
  size_t n, i;
  bool added, zero;

  ck_assert_ptr_nonnull (b);
  for (i = 0; i < 6; i++) {
    fill (blk, lbas[i], 0);
    /* The caller's CRC (any value: the buffer only carries it). */
    ck_assert_int_eq (hf_wbuf_put (b, BS, lbas[i], blk,
                                   (uint32_t) lbas[i] * 1000003u, NULL,
                                   &added), 0);
  }
  /* An overwrite carries the new CRC. */
  fill (blk, 70, 0);
  ck_assert_int_eq (hf_wbuf_put (b, BS, 70, blk, 0xabcdef, NULL, &added), 0);
  ck_assert (!added);
  ck_assert_int_eq (hf_wbuf_zero (b, 50, 1), 0);
  ck_assert_int_eq (hf_wbuf_sorted (b, &ents, &n), 0);
  ck_assert_uint_eq (n, 5);
  for (i = 1; i < n; i++)
    ck_assert_uint_lt (ents[i - 1].lba, ents[i].lba);
  for (i = 0; i < n; i++)
    ck_assert_uint_eq (ents[i].crc, ents[i].lba == 70 ? 0xabcdef :
                       (uint32_t) ents[i].lba * 1000003u);
  copy = malloc (n * BS);
  ck_assert_ptr_nonnull (copy);
  for (i = 0; i < n; i++)
    memcpy (copy + i * BS, b->slots + (size_t) ents[i].slot * BS, BS);
  old = hf_wbuf_remap (b, ents, n, copy);
  ck_assert_ptr_nonnull (old);
  memset (old, 0xee, (size_t) b->cap_slots * BS);       /* gone for reads */
  free (old);
  ck_assert_ptr_null (b->slots);
  ck_assert_ptr_null (b->crcs);
  for (i = 0; i < 6; i++) {
    const uint8_t *p = hf_wbuf_lookup (b, BS, lbas[i], &zero);
    if (lbas[i] == 50) {
      ck_assert (p == NULL && zero);
      continue;
    }
    fill (blk, lbas[i], 0);
    ck_assert_ptr_nonnull (p);
    ck_assert (p >= copy && p < copy + n * BS);
    ck_assert_int_eq (memcmp (p, blk, BS), 0);
  }
  free (ents);
  hf_wbuf_free (b);
  free (copy);
}
END_TEST

/* The extents view, clipped to a window, over a list that already
 * holds older runs: data over zero over older. */
START_TEST (test_extent_runs)
{
  struct hf_wbuf *b = calloc (1, sizeof *b);
  struct hf_runs acc = { 0 };
  struct hf_run old = { .lba = 0, .n = 100, .data = true };
  uint8_t blk[BS];
  bool added;

  ck_assert_ptr_nonnull (b);
  fill (blk, 0, 0);
  ck_assert_int_eq (hf_wbuf_zero (b, 10, 30), 0);
  ck_assert_int_eq (hf_wbuf_put (b, BS, 20, blk, 0, NULL, &added), 0);
  ck_assert_int_eq (hf_wbuf_put (b, BS, 21, blk, 0, NULL, &added), 0);
  ck_assert_int_eq (hf_wbuf_put (b, BS, 150, blk, 0, NULL, &added), 0);
  ck_assert_int_eq (hf_runs_push (&acc, &old, true), 0);
  ck_assert_int_eq (hf_wbuf_extent_runs (b, 5, 120, &acc), 0);
  /* 0-9 data, 10-19 hole, 20-21 data, 22-39 hole, 40-99 data; 150 is
   * outside the window. */
  ck_assert_uint_eq (acc.n, 5);
  ck_assert (acc.v[0].data && acc.v[0].lba == 0 && acc.v[0].n == 10);
  ck_assert (!acc.v[1].data && acc.v[1].lba == 10 && acc.v[1].n == 10);
  ck_assert (acc.v[2].data && acc.v[2].lba == 20 && acc.v[2].n == 2);
  ck_assert (!acc.v[3].data && acc.v[3].lba == 22 && acc.v[3].n == 18);
  ck_assert (acc.v[4].data && acc.v[4].lba == 40 && acc.v[4].n == 60);
  hf_runs_free (&acc);
  hf_wbuf_free (b);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("wbuf");
  TCase *tc = tcase_create ("core");

  hf_log_set_sink (log_verbose);
  tcase_add_test (tc, test_model);
  tcase_add_test (tc, test_grow);
  tcase_add_test (tc, test_zero_runs);
  tcase_add_test (tc, test_tombstone);
  tcase_add_test (tc, test_spare);
  tcase_add_test (tc, test_sorted_remap);
  tcase_add_test (tc, test_extent_runs);
  suite_add_tcase (s, tc);
  return run_suite (s);
}
