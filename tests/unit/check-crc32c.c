/* Unit tests for lib/crc32c: known answers, and incremental use matching
 * one-shot use at every split point and alignment. */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "test-util.h"

START_TEST (test_known_answers)
{
  uint8_t zeros[32] = { 0 }, ones[32], inc[32];
  int i;

  for (i = 0; i < 32; i++) {
    ones[i] = 0xff;
    inc[i] = i;
  }
  /* RFC 3720 (iSCSI) B.4 test vectors, and the standard check value. */
  ck_assert_uint_eq (hf_crc32c (0, "123456789", 9), 0xe3069283);
  ck_assert_uint_eq (hf_crc32c (0, zeros, 32), 0x8a9136aa);
  ck_assert_uint_eq (hf_crc32c (0, ones, 32), 0x62a8ab43);
  ck_assert_uint_eq (hf_crc32c (0, inc, 32), 0x46dd794e);
  ck_assert_uint_eq (hf_crc32c (0, "", 0), 0);
}
END_TEST

START_TEST (test_incremental)
{
  uint8_t buf[300];
  uint32_t whole;
  size_t off, split;

  for (off = 0; off < sizeof buf; off++)
    buf[off] = (uint8_t) (off * 7 + 3);
  for (off = 0; off < 9; off++) {
    whole = hf_crc32c (0, buf + off, sizeof buf - off);
    for (split = 0; split <= sizeof buf - off; split++) {
      uint32_t c = hf_crc32c (0, buf + off, split);
      c = hf_crc32c (c, buf + off + split, sizeof buf - off - split);
      ck_assert_uint_eq (c, whole);
    }
  }
}
END_TEST

/* Buffers long enough for the three-lane path (>= 3 * 1360 bytes)
 * against the same bytes fed 100 at a time (the one-lane path). */
START_TEST (test_long_lanes)
{
  static const size_t lens[] = { 4079, 4080, 4081, 4096, 8160, 8161,
                                 12240, 20000, 65536 };
  static uint8_t buf[65536 + 8];
  uint64_t st = 12345;
  size_t i, k, off;

  for (i = 0; i < sizeof buf; i++)
    buf[i] = (uint8_t) xorshift64 (&st);
  for (off = 0; off < 8; off += 3)
    for (k = 0; k < sizeof lens / sizeof lens[0]; k++) {
      uint32_t whole = hf_crc32c (7, buf + off, lens[k]), c = 7;
      for (i = 0; i < lens[k]; i += 100)
        c = hf_crc32c (c, buf + off + i, lens[k] - i < 100 ? lens[k] - i : 100);
      ck_assert_uint_eq (c, whole);
    }
}
END_TEST

/* hf_crc32c_combine against straight computation: random buffers cut
 * at random points (every length from 0 to 70, then up to 64 KiB), and
 * a whole block's CRC folded into a record header's the way the log
 * does it. */
START_TEST (test_combine)
{
  static uint8_t buf[65536 + 64];
  uint64_t st = 987654321;
  size_t i, a, b;

  for (i = 0; i < sizeof buf; i++)
    buf[i] = (uint8_t) xorshift64 (&st);
  for (a = 0; a <= 70; a++)
    for (b = 0; b <= 70; b++) {
      uint32_t ca = hf_crc32c (0, buf, a), cb = hf_crc32c (0, buf + a, b);
      ck_assert_uint_eq (hf_crc32c_combine (ca, cb, b),
                         hf_crc32c (0, buf, a + b));
    }
  for (i = 0; i < 2000; i++) {
    size_t off = xorshift64 (&st) % 64;
    a = xorshift64 (&st) % 32768;
    b = xorshift64 (&st) % 32769;
    ck_assert_uint_eq (hf_crc32c_combine (hf_crc32c (0, buf + off, a),
                                          hf_crc32c (0, buf + off + a, b), b),
                       hf_crc32c (0, buf + off, a + b));
  }
  /* A 60-byte header then 16 blocks of 4 KiB, from per-block CRCs. */
  {
    uint32_t c = hf_crc32c (0, buf, 60), d = 0;
    for (i = 0; i < 16; i++) {
      uint32_t blk = hf_crc32c (0, buf + 60 + i * 4096, 4096);
      c = hf_crc32c_combine (c, blk, 4096);
      d = i ? hf_crc32c_combine (d, blk, 4096) : blk;
    }
    ck_assert_uint_eq (c, hf_crc32c (0, buf, 60 + 16 * 4096));
    ck_assert_uint_eq (hf_crc32c_combine (hf_crc32c (0, buf, 60), d,
                                          16 * 4096), c);
  }
  /* One flipped bit in B changes the result. */
  {
    uint32_t ca = hf_crc32c (0, buf, 100), cb = hf_crc32c (0, buf + 100, 4096);
    buf[100 + 4000] ^= 0x10;
    ck_assert_uint_ne (hf_crc32c_combine (ca, cb, 4096),
                       hf_crc32c (0, buf, 100 + 4096));
    buf[100 + 4000] ^= 0x10;
  }
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("crc32c");
  TCase *tc = tcase_create ("core");

  tcase_add_test (tc, test_known_answers);
  tcase_add_test (tc, test_incremental);
  tcase_add_test (tc, test_long_lanes);
  tcase_add_test (tc, test_combine);
  suite_add_tcase (s, tc);
  return run_suite (s);
}
