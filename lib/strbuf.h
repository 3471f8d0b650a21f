/* hyperfile: a growable NUL-terminated string, for building requests,
 * canonical forms and XML bodies.  After an allocation failure `oom` is
 * set and further appends are no-ops, so callers check once at the end
 * (hf_strbuf_take returns NULL then).  Start from a zeroed struct.
 */
#ifndef HF_STRBUF_H
#define HF_STRBUF_H

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

struct hf_strbuf {
  char *p;              /* NULL until the first append; caller frees */
  size_t len;
  size_t cap;
  bool oom;
};

static inline void
hf_strbuf_free (struct hf_strbuf *b)
{
  free (b->p);
  b->p = NULL;
  b->len = b->cap = 0;
}

static inline void
hf_strbuf_add (struct hf_strbuf *b, const void *data, size_t n)
{
  if (b->oom)
    return;
  if (b->len + n + 1 > b->cap) {
    size_t cap = b->cap ? b->cap : 64;
    char *p;

    while (cap < b->len + n + 1)
      cap *= 2;
    p = realloc (b->p, cap);
    if (p == NULL) {
      b->oom = true;
      return;
    }
    b->p = p;
    b->cap = cap;
  }
  memcpy (b->p + b->len, data, n);
  b->len += n;
  b->p[b->len] = '\0';
}

static inline void
hf_strbuf_adds (struct hf_strbuf *b, const char *s)
{
  hf_strbuf_add (b, s, strlen (s));
}

static inline void
hf_strbuf_addc (struct hf_strbuf *b, char c)
{
  hf_strbuf_add (b, &c, 1);
}

/* Hand the string over to the caller (who frees it): "" for an empty
 * buffer, NULL if any append failed (the buffer is freed then). */
static inline char *
hf_strbuf_take (struct hf_strbuf *b)
{
  char *p;

  if (!b->oom && b->p == NULL)
    hf_strbuf_add (b, "", 0);
  if (b->oom) {
    hf_strbuf_free (b);
    return NULL;
  }
  p = b->p;
  b->p = NULL;
  b->len = b->cap = 0;
  return p;
}

#endif /* HF_STRBUF_H */
