/* Unit tests for lib/iov: a list of buffers walked as one byte string
 * (the stores' gathered puts).  Every operation is checked against the
 * concatenation, at every offset of a list with empty pieces. */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iov.h"
#include "test-util.h"

/* "abc", "", "defgh", "", "", "i", "jklmnopq": 17 bytes. */
static const char all[] = "abcdefghijklmnopq";
static char p0[] = "abc", p2[] = "defgh", p5[] = "i", p6[] = "jklmnopq";
static struct iovec iov[7] = {
  { p0, 3 }, { NULL, 0 }, { p2, 5 }, { NULL, 0 }, { NULL, 0 }, { p5, 1 },
  { p6, 8 },
};
#define LEN 17

START_TEST (test_total)
{
  struct iovec huge[2] = { { NULL, SIZE_MAX }, { NULL, 1 } };

  ck_assert_uint_eq (hf_iov_total (iov, 7), LEN);
  ck_assert_uint_eq (hf_iov_total (iov, 0), 0);
  ck_assert_uint_eq (hf_iov_total (huge, 2), SIZE_MAX);
}
END_TEST

/* skip then copy: the bytes from every offset, in every length. */
START_TEST (test_skip_copy)
{
  size_t off, n;

  for (off = 0; off <= LEN + 2; off++)
    for (n = 0; n <= LEN + 2; n++) {
      struct hf_iov_cur c;
      char buf[LEN + 3];
      size_t want = off >= LEN ? 0 : LEN - off < n ? LEN - off : n;

      hf_iov_start (&c, iov, 7);
      ck_assert_uint_eq (hf_iov_skip (&c, off), off < LEN ? off : LEN);
      ck_assert_uint_eq (hf_iov_copy (&c, buf, n), want);
      ck_assert (memcmp (buf, all + (off < LEN ? off : LEN), want) == 0);
      /* And the rest after it. */
      ck_assert_uint_eq (hf_iov_copy (&c, buf, sizeof buf),
                         off + want >= LEN ? 0 : LEN - off - want);
    }
}
END_TEST

/* next: pieces of at most max bytes and entries, pointing into the
 * buffers (not copies), that add up to the string. */
START_TEST (test_next)
{
  size_t max;

  for (max = 1; max <= LEN; max++) {
    struct hf_iov_cur c;
    struct iovec out[2];
    char got[LEN];
    size_t done = 0, b;
    int k, i;

    hf_iov_start (&c, iov, 7);
    while ((k = hf_iov_next (&c, out, 2, max, &b)) > 0) {
      size_t sum = 0;

      ck_assert_int_le (k, 2);
      ck_assert_uint_le (b, max);
      for (i = 0; i < k; i++) {
        ck_assert_uint_gt (out[i].iov_len, 0);
        memcpy (got + done + sum, out[i].iov_base, out[i].iov_len);
        sum += out[i].iov_len;
      }
      ck_assert_uint_eq (sum, b);
      done += b;
    }
    ck_assert_uint_eq (done, LEN);
    ck_assert (memcmp (got, all, LEN) == 0);
  }
}
END_TEST

START_TEST (test_slice_equal)
{
  size_t off, n;

  for (off = 0; off <= LEN; off++)
    for (n = 0; n <= LEN - off + 1; n++) {
      int cnt = -1;
      struct iovec *s = hf_iov_slice (iov, 7, off, n, &cnt);
      size_t want = LEN - off < n ? LEN - off : n;

      ck_assert_ptr_nonnull (s);
      ck_assert_int_ge (cnt, 0);
      ck_assert_uint_eq (hf_iov_total (s, cnt), want);
      ck_assert (hf_iov_equal (s, cnt, all + off, want));
      ck_assert (!hf_iov_equal (s, cnt, all + off, want + 1));
      if (want > 0) {
        ck_assert (!hf_iov_equal (s, cnt, all + off, want - 1));
        ck_assert (!hf_iov_equal (s, cnt, all + off + 1, want));
      }
      free (s);
    }
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("iov");
  TCase *tc = tcase_create ("core");

  hf_log_set_sink (log_verbose);
  tcase_add_test (tc, test_total);
  tcase_add_test (tc, test_skip_copy);
  tcase_add_test (tc, test_next);
  tcase_add_test (tc, test_slice_equal);
  suite_add_tcase (s, tc);
  return run_suite (s);
}
