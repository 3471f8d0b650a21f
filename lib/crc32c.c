/* hyperfile: CRC32C, hardware-accelerated where available (see crc32c.h).
 *
 * The SSE4.2 crc32 instruction has a latency of 3 cycles and a
 * throughput of 1, so one dependency chain runs at a third of the
 * possible speed.  Long buffers are cut into three lanes of
 * HF_CRC32C_LANE bytes computed side by side, then joined: the raw CRC
 * register is linear, so crc(c, A B) = shift(crc(c, A)) ^ crc(0, B),
 * where shift advances a register over |B| zero bytes; for the fixed
 * lane length that is four table lookups (hf_crc32c_shift). */
#include <config.h>

#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <pthread.h>

#include "crc32c.h"

/* 3 * 1360 + 16 = 4096: a 4 KiB block is one round and a short tail. */
#define HF_CRC32C_LANE 1360

static uint32_t hf_crc32c_table[8][256];
static uint32_t hf_crc32c_shift[4][256];        /* over HF_CRC32C_LANE */
static bool hf_crc32c_have_sse42;
static pthread_once_t hf_crc32c_once = PTHREAD_ONCE_INIT;

static void
hf_crc32c_init (void)
{
  uint32_t i, j, c;

  for (i = 0; i < 256; i++) {
    c = i;
    for (j = 0; j < 8; j++)
      c = (c >> 1) ^ (0x82F63B78 & -(c & 1));
    hf_crc32c_table[0][i] = c;
  }
  for (i = 0; i < 256; i++)
    for (j = 1; j < 8; j++)
      hf_crc32c_table[j][i] = (hf_crc32c_table[j - 1][i] >> 8) ^
        hf_crc32c_table[0][hf_crc32c_table[j - 1][i] & 0xff];
#if defined(__x86_64__)
  __builtin_cpu_init ();
  hf_crc32c_have_sse42 = __builtin_cpu_supports ("sse4.2");
#endif
  /* shift (c) for every byte value at every byte position of c. */
  for (j = 0; j < 4; j++)
    for (i = 0; i < 256; i++) {
      size_t k;
      c = i << (8 * j);
      for (k = 0; k < HF_CRC32C_LANE; k++)
        c = (c >> 8) ^ hf_crc32c_table[0][c & 0xff];
      hf_crc32c_shift[j][i] = c;
    }
}

static inline uint32_t
hf_crc32c_shift_lane (uint32_t c)
{
  return hf_crc32c_shift[0][c & 0xff] ^ hf_crc32c_shift[1][(c >> 8) & 0xff] ^
    hf_crc32c_shift[2][(c >> 16) & 0xff] ^ hf_crc32c_shift[3][c >> 24];
}

#if defined(__x86_64__)
__attribute__ ((target ("sse4.2")))
static uint32_t
hf_crc32c_hw (uint32_t crc, const unsigned char *p, size_t len)
{
  uint64_t c = crc;

  while (len >= 3 * HF_CRC32C_LANE) {
    const unsigned char *p1 = p + HF_CRC32C_LANE, *p2 = p1 + HF_CRC32C_LANE;
    uint64_t c1 = 0, c2 = 0;
    size_t k;

    for (k = 0; k < HF_CRC32C_LANE; k += 8) {
      uint64_t v0, v1, v2;
      memcpy (&v0, p + k, 8);
      memcpy (&v1, p1 + k, 8);
      memcpy (&v2, p2 + k, 8);
      c = __builtin_ia32_crc32di (c, v0);
      c1 = __builtin_ia32_crc32di (c1, v1);
      c2 = __builtin_ia32_crc32di (c2, v2);
    }
    c = hf_crc32c_shift_lane ((uint32_t) c) ^ (uint32_t) c1;
    c = hf_crc32c_shift_lane ((uint32_t) c) ^ (uint32_t) c2;
    p += 3 * HF_CRC32C_LANE;
    len -= 3 * HF_CRC32C_LANE;
  }
  while (len >= 8) {
    uint64_t v;
    memcpy (&v, p, 8);
    c = __builtin_ia32_crc32di (c, v);
    p += 8;
    len -= 8;
  }
  while (len--)
    c = __builtin_ia32_crc32qi ((uint32_t) c, *p++);
  return (uint32_t) c;
}
#endif

static uint32_t
hf_crc32c_sw (uint32_t crc, const unsigned char *p, size_t len)
{
  while (len >= 8) {
    uint32_t lo = crc ^ ((uint32_t) p[0] | (uint32_t) p[1] << 8 |
                         (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24);
    crc = hf_crc32c_table[7][lo & 0xff] ^ hf_crc32c_table[6][(lo >> 8) & 0xff] ^
      hf_crc32c_table[5][(lo >> 16) & 0xff] ^ hf_crc32c_table[4][lo >> 24] ^
      hf_crc32c_table[3][p[4]] ^ hf_crc32c_table[2][p[5]] ^
      hf_crc32c_table[1][p[6]] ^ hf_crc32c_table[0][p[7]];
    p += 8;
    len -= 8;
  }
  while (len--)
    crc = (crc >> 8) ^ hf_crc32c_table[0][(crc ^ *p++) & 0xff];
  return crc;
}

uint32_t
hf_crc32c (uint32_t crc, const void *buf, size_t len)
{
  pthread_once (&hf_crc32c_once, hf_crc32c_init);
  crc = ~crc;
#if defined(__x86_64__)
  if (hf_crc32c_have_sse42)
    return ~hf_crc32c_hw (crc, buf, len);
#endif
  return ~hf_crc32c_sw (crc, buf, len);
}

/* Combine (see crc32c.h).  Polynomials are reflected 32-bit words: bit
 * 31 is x^0.  hf_crc32c_multmodp is a * b modulo P; hf_crc32c_x2n[k] is
 * x^(2^k) modulo P, so x^n is the product of those for n's set bits. */
#define HF_CRC32C_POLY 0x82F63B78u

static uint32_t
hf_crc32c_multmodp (uint32_t a, uint32_t b)
{
  uint32_t m = UINT32_C (1) << 31, p = 0;

  for (;;) {
    if (a & m) {
      p ^= b;
      if ((a & (m - 1)) == 0)
        break;
    }
    m >>= 1;
    b = b & 1 ? (b >> 1) ^ HF_CRC32C_POLY : b >> 1;
  }
  return p;
}

static uint32_t hf_crc32c_x2n[3 + 64];   /* len_b < 2^64 bytes */
static pthread_once_t hf_crc32c_x2n_once = PTHREAD_ONCE_INIT;

static void
hf_crc32c_x2n_init (void)
{
  uint32_t p = UINT32_C (1) << 30;      /* x^1 */
  unsigned k;

  for (k = 0; k < 3 + 64; k++) {
    hf_crc32c_x2n[k] = p;
    p = hf_crc32c_multmodp (p, p);
  }
}

uint32_t
hf_crc32c_combine (uint32_t crc_a, uint32_t crc_b, uint64_t len_b)
{
  uint32_t p = UINT32_C (1) << 31;      /* x^0 */
  unsigned k = 3;                       /* bytes: x^(8 len_b) */
  bool one = true;                      /* p is still x^0: a power of
                                           two costs no product */

  if (len_b == 0)
    return crc_a ^ crc_b;
  pthread_once (&hf_crc32c_x2n_once, hf_crc32c_x2n_init);
  while (len_b) {
    if (len_b & 1) {
      p = one ? hf_crc32c_x2n[k] : hf_crc32c_multmodp (hf_crc32c_x2n[k], p);
      one = false;
    }
    len_b >>= 1;
    k++;
  }
  return hf_crc32c_multmodp (p, crc_a) ^ crc_b;
}
