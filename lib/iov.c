/* hyperfile: walking a list of buffers as one byte string (iov.h). */
#include <config.h>

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iov.h"

size_t
hf_iov_total (const struct iovec *iov, int cnt)
{
  size_t t = 0;
  int i;

  for (i = 0; i < cnt; i++) {
    if (iov[i].iov_len > SIZE_MAX - t)
      return SIZE_MAX;
    t += iov[i].iov_len;
  }
  return t;
}

void
hf_iov_start (struct hf_iov_cur *c, const struct iovec *iov, int cnt)
{
  c->iov = iov;
  c->cnt = cnt;
  c->i = 0;
  c->off = 0;
}

/* Step over empty entries and finished ones. */
static void
hf_iov_settle (struct hf_iov_cur *c)
{
  while (c->i < c->cnt && c->off >= c->iov[c->i].iov_len) {
    c->i++;
    c->off = 0;
  }
}

size_t
hf_iov_skip (struct hf_iov_cur *c, size_t n)
{
  size_t done = 0;

  for (hf_iov_settle (c); done < n && c->i < c->cnt; hf_iov_settle (c)) {
    size_t k = c->iov[c->i].iov_len - c->off;

    if (k > n - done)
      k = n - done;
    c->off += k;
    done += k;
  }
  return done;
}

size_t
hf_iov_copy (struct hf_iov_cur *c, void *dst, size_t n)
{
  size_t done = 0;

  for (hf_iov_settle (c); done < n && c->i < c->cnt; hf_iov_settle (c)) {
    size_t k = c->iov[c->i].iov_len - c->off;

    if (k > n - done)
      k = n - done;
    memcpy ((char *) dst + done, (const char *) c->iov[c->i].iov_base +
            c->off, k);
    c->off += k;
    done += k;
  }
  return done;
}

int
hf_iov_next (struct hf_iov_cur *c, struct iovec *out, int max_iov,
             size_t max_bytes, size_t *bytes)
{
  size_t done = 0;
  int n = 0;

  for (hf_iov_settle (c); n < max_iov && done < max_bytes && c->i < c->cnt;
       hf_iov_settle (c)) {
    size_t k = c->iov[c->i].iov_len - c->off;

    if (k > max_bytes - done)
      k = max_bytes - done;
    out[n].iov_base = (char *) c->iov[c->i].iov_base + c->off;
    out[n].iov_len = k;
    n++;
    c->off += k;
    done += k;
  }
  *bytes = done;
  return n;
}

struct iovec *
hf_iov_slice (const struct iovec *iov, int cnt, size_t off, size_t len,
              int *out_cnt)
{
  struct hf_iov_cur c;
  struct iovec *out;
  size_t got;

  /* At most every entry from the one holding off to the end. */
  out = malloc ((cnt > 0 ? (size_t) cnt : 1) * sizeof *out);
  if (out == NULL) {
    errno = ENOMEM;
    return NULL;
  }
  hf_iov_start (&c, iov, cnt);
  hf_iov_skip (&c, off);
  *out_cnt = hf_iov_next (&c, out, cnt, len, &got);
  return out;
}

bool
hf_iov_equal (const struct iovec *iov, int cnt, const void *p, size_t len)
{
  size_t done = 0;
  int i;

  for (i = 0; i < cnt; i++) {
    if (iov[i].iov_len > len - done ||
        memcmp ((const char *) p + done, iov[i].iov_base, iov[i].iov_len))
      return false;
    done += iov[i].iov_len;
  }
  return done == len;
}
