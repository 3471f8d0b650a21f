/* hyperfile: libFuzzer harness for SigV4 canonicalisation with hostile
 * keys, query values (continuation tokens come from the server) and
 * headers (hf_sigv4_uri_encode, hf_sigv4_sign: lib/sigv4.c).
 *
 * Input: fields separated by NUL bytes: object key, query value, then
 * header name / value pairs (added to host and x-amz-date), at most 8.
 * Invariants: an encoded key decodes back to the key and holds only
 * unreserved characters, '/' and %XX; signing succeeds unless a header
 * name is empty or holds one of ":; \t\r\n"; the canonical request has
 * exactly one line per distinct header name plus five (no injected
 * lines); canonicalising the canonical query again changes nothing. */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "sigv4.h"
#include "fuzz.h"

#define MAX_HDRS 8

static bool
unreserved (char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
}

static int
hexval (char c)
{
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;                    /* we encode with uppercase digits only */
}

/* Decode s, which must hold only unreserved chars, '/' (if slash_ok)
 * and %XX; returns the decoded length or aborts. */
static size_t
decode (const char *s, bool slash_ok, char *out)
{
  size_t n = 0;

  for (; *s; s++) {
    if (*s == '%') {
      FUZZ_CHECK (hexval (s[1]) >= 0 && hexval (s[2]) >= 0);
      out[n++] = (char) (hexval (s[1]) * 16 + hexval (s[2]));
      s += 2;
    }
    else {
      FUZZ_CHECK (unreserved (*s) || (slash_ok && *s == '/'));
      out[n++] = *s;
    }
  }
  return n;
}

static char *
line (const char *cr, int k)
{
  const char *p = cr, *e;
  char *r;

  while (k-- > 0) {
    p = strchr (p, '\n');
    FUZZ_CHECK (p != NULL);
    p++;
  }
  e = strchr (p, '\n');
  if (e == NULL)
    e = p + strlen (p);
  r = strndup (p, e - p);
  FUZZ_CHECK (r != NULL);
  return r;
}

static int
sign (const char *path, const char *query, struct hf_sigv4_header *h,
      size_t nh, char **cr)
{
  struct hf_sigv4_request rq = {
    .method = "GET", .path = path, .query = query, .headers = h,
    .nheaders = nh, .payload_hash = "UNSIGNED-PAYLOAD",
  };
  struct hf_sigv4_credentials cred = {
    .access_key = "AKIDEXAMPLE",
    .secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
  };
  char *auth = NULL;
  int r = hf_sigv4_sign (&rq, &cred, "us-east-1", "s3", "20260101T000000Z",
                         cr, NULL, &auth);

  free (auth);
  return r;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  char *in, *f[2 + 2 * MAX_HDRS] = { 0 };
  struct hf_sigv4_header h[2 + MAX_HDRS];
  size_t nf = 0, nh, i, j, distinct, nl;
  char *ekey = NULL, *eq = NULL, *path = NULL, *query = NULL, *dec = NULL;
  char *cr = NULL, *cr2 = NULL, *q1 = NULL, *q2 = NULL;
  bool bad_name = false;
  int r;

  fuzz_quiet ();
  if (size > 4096)
    return 0;
  in = malloc (size + 1);
  if (in == NULL)
    return 0;
  memcpy (in, data, size);
  in[size] = '\0';
  for (i = 0, f[nf++] = in; i < size && nf < 2 + 2 * MAX_HDRS; i++)
    if (in[i] == '\0')
      f[nf++] = in + i + 1;
  while (nf < 2)
    f[nf++] = in + size;

  /* The key as hf_s3_path sends it, and back. */
  ekey = hf_sigv4_uri_encode (f[0], false);
  eq = hf_sigv4_uri_encode (f[1], true);
  FUZZ_CHECK (ekey != NULL && eq != NULL);
  dec = malloc (strlen (ekey) + 1);
  FUZZ_CHECK (dec != NULL);
  FUZZ_CHECK (decode (ekey, true, dec) == strlen (f[0]) &&
              memcmp (dec, f[0], strlen (f[0])) == 0);
  FUZZ_CHECK (strchr (eq, '/') == NULL);
  free (dec);
  dec = NULL;

  path = malloc (strlen (ekey) + 16);
  query = malloc (strlen (eq) + 64);
  FUZZ_CHECK (path != NULL && query != NULL);
  sprintf (path, "/bucket/%s", ekey);
  sprintf (query, "list-type=2&continuation-token=%s&prefix=a%%2Fb", eq);

  h[0] = (struct hf_sigv4_header) { "Host", "127.0.0.1:9000" };
  h[1] = (struct hf_sigv4_header) { "x-amz-date", "20260101T000000Z" };
  nh = 2;
  for (i = 2; i + 1 < nf; i += 2) {
    h[nh++] = (struct hf_sigv4_header) { f[i], f[i + 1] };
    if (f[i][0] == '\0' || strpbrk (f[i], ":; \t\r\n") != NULL)
      bad_name = true;
  }

  r = sign (path, query, h, nh, &cr);
  if (bad_name) {
    FUZZ_CHECK (r == EINVAL);
    goto out;
  }
  FUZZ_CHECK (r == 0);

  /* One line per distinct (case-folded) header name, plus method, uri,
   * query, the blank line, signed headers and the payload hash. */
  for (i = 0, distinct = 0; i < nh; i++) {
    for (j = 0; j < i; j++)
      if (strcasecmp (h[i].name, h[j].name) == 0)
        break;
    distinct += j == i;
  }
  for (nl = 0, i = 0; cr[i]; i++)
    nl += cr[i] == '\n';
  FUZZ_CHECK (nl == distinct + 5);

  /* The canonical query is a fixed point of canonicalisation. */
  q1 = line (cr, 2);
  FUZZ_CHECK (sign (path, q1, h, nh, &cr2) == 0);
  q2 = line (cr2, 2);
  FUZZ_CHECK (strcmp (q1, q2) == 0);

 out:
  free (q1);
  free (q2);
  free (cr);
  free (cr2);
  free (path);
  free (query);
  free (ekey);
  free (eq);
  free (in);
  return 0;
}
