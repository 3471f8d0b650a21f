/* hyperfile: AWS Signature Version 4 signer (contract in sigv4.h).
 *
 * Builds the canonical request, the string to sign and the Authorization
 * header value from a request described by the caller, following the
 * SigV4 specification as AWS S3 and botocore apply it.  Pure functions:
 * no I/O, no global state, only libcrypto for SHA-256 and HMAC.
 *
 * Every intermediate string is built in a small growable buffer
 * (struct hf_strbuf) whose allocation failure is sticky, so the
 * builders need not check each append; the caller of the builders checks
 * once at the end.  Buffers that held key material are cleansed before
 * they are freed so the secret does not linger in freed heap memory.
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

#include "sigv4.h"
#include "strbuf.h"

#define HF_SIGV4_ALGORITHM "AWS4-HMAC-SHA256"


static bool
hf_sigv4_unreserved (unsigned char c)
{
  return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') ||
    (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.' || c == '~';
}

/* Percent-encode n bytes (uppercase hex, as SigV4 requires). */
static void
hf_sigv4_encode (struct hf_strbuf *b, const char *s, size_t n,
                 bool encode_slash)
{
  static const char hex[] = "0123456789ABCDEF";
  size_t i;

  for (i = 0; i < n; i++) {
    unsigned char c = s[i];

    if (hf_sigv4_unreserved (c) || (c == '/' && !encode_slash))
      hf_strbuf_addc (b, c);
    else {
      char e[3] = { '%', hex[c >> 4], hex[c & 15] };
      hf_strbuf_add (b, e, 3);
    }
  }
}

char *
hf_sigv4_uri_encode (const char *s, bool encode_slash)
{
  struct hf_strbuf b = { 0 };

  hf_sigv4_encode (&b, s, strlen (s), encode_slash);
  return hf_strbuf_take (&b);
}

void
hf_sigv4_amz_date (time_t t, char *buf)
{
  struct tm tm;

  if (gmtime_r (&t, &tm) == NULL ||
      strftime (buf, 17, "%Y%m%dT%H%M%SZ", &tm) != 16)
    /* Only for a time_t beyond year 9999; keep buf a valid string. */
    strcpy (buf, "19700101T000000Z");
}

static void
hf_sigv4_to_hex (const unsigned char *md, size_t n, char *hex)
{
  static const char digits[] = "0123456789abcdef";
  size_t i;

  for (i = 0; i < n; i++) {
    hex[2 * i] = digits[md[i] >> 4];
    hex[2 * i + 1] = digits[md[i] & 15];
  }
  hex[2 * n] = '\0';
}

/* SHA-256 as lowercase hex; returns false if libcrypto failed (only on
 * allocation failure inside OpenSSL). */
static bool
hf_sigv4_sha256 (const void *data, size_t len, char *hex)
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;

  if (!EVP_Digest (data, len, md, &mdlen, EVP_sha256 (), NULL) ||
      mdlen != 32)
    return false;
  hf_sigv4_to_hex (md, 32, hex);
  return true;
}

void
hf_sigv4_sha256_hex (const void *data, size_t len, char *hex)
{
  /* The interface has no error return; an empty string can never match
   * a real hash, so a failure cannot go unnoticed by a verifier. */
  if (!hf_sigv4_sha256 (data, len, hex))
    hex[0] = '\0';
}

static bool
hf_sigv4_hmac (const void *key, size_t keylen, const char *msg,
               unsigned char out[32])
{
  unsigned int outlen = 0;

  return HMAC (EVP_sha256 (), key, (int) keylen,
               (const unsigned char *) msg, strlen (msg), out, &outlen)
    != NULL && outlen == 32;
}

/* Remove "." and ".." segments and empty segments (duplicate slashes)
 * as the generic (non-S3) AWS services do before signing.  A trailing
 * slash survives, as does one implied by a final "." or "..". */
static void
hf_sigv4_normalize (struct hf_strbuf *b, const char *path)
{
  const char *p = path;
  bool dir = false;

  while (*p) {
    const char *seg, *end;
    size_t n;

    while (*p == '/')
      p++;
    if (*p == '\0') {
      dir = true;
      break;
    }
    seg = p;
    end = strchr (seg, '/');
    if (end == NULL)
      end = seg + strlen (seg);
    n = end - seg;
    p = end;
    dir = false;
    if (n == 1 && seg[0] == '.')
      dir = true;
    else if (n == 2 && seg[0] == '.' && seg[1] == '.') {
      if (!b->oom && b->p != NULL) {
        while (b->len > 0 && b->p[b->len - 1] != '/')
          b->len--;
        if (b->len > 0)
          b->len--;             /* the '/' before the popped segment */
        b->p[b->len] = '\0';
      }
      dir = true;
    }
    else {
      hf_strbuf_addc (b, '/');
      hf_strbuf_add (b, seg, n);
    }
  }
  if (b->len == 0 || dir)
    hf_strbuf_addc (b, '/');
}

static void
hf_sigv4_canonical_uri (struct hf_strbuf *b,
                        const struct hf_sigv4_request *req)
{
  struct hf_strbuf norm = { 0 };
  const char *path = req->path;

  if (req->normalize_path) {
    hf_sigv4_normalize (&norm, req->path);
    if (norm.oom) {
      b->oom = true;
      return;
    }
    path = norm.p;
  }
  if (req->double_encode_path)
    hf_sigv4_encode (b, path, strlen (path), false);
  else
    hf_strbuf_adds (b, path);
  hf_strbuf_free (&norm);
}

static int
hf_sigv4_hexval (char c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

/* Decode %XY escapes of s[0..n) and re-encode with the SigV4 rules, so
 * that whatever encoding the caller put on the wire ("%7e", "~", "%2f"
 * or "/") signs identically.  A '%' not followed by two hex digits is
 * taken literally, as S3 does.  '+' is a literal plus, not a space. */
static void
hf_sigv4_reencode (struct hf_strbuf *b, const char *s, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++) {
    char c = s[i];

    if (c == '%' && i + 2 < n && hf_sigv4_hexval (s[i + 1]) >= 0 &&
        hf_sigv4_hexval (s[i + 2]) >= 0) {
      c = (char) (hf_sigv4_hexval (s[i + 1]) * 16 +
                  hf_sigv4_hexval (s[i + 2]));
      i += 2;
    }
    hf_sigv4_encode (b, &c, 1, true);
  }
}

struct hf_sigv4_param {
  char *key;                    /* canonical (re-encoded) */
  char *value;
};

static int
hf_sigv4_param_cmp (const void *a, const void *b)
{
  const struct hf_sigv4_param *x = a, *y = b;
  int r = strcmp (x->key, y->key);

  return r ? r : strcmp (x->value, y->value);
}

static int
hf_sigv4_canonical_query (struct hf_strbuf *b, const char *query)
{
  struct hf_sigv4_param *params = NULL;
  size_t nparams = 0, i;
  const char *p;
  int r = 0;

  if (query == NULL || *query == '\0')
    return 0;

  /* Upper bound on the number of parameters: one more than the '&'s. */
  for (p = query, i = 1; *p; p++)
    i += *p == '&';
  params = calloc (i, sizeof *params);
  if (params == NULL)
    return ENOMEM;

  for (p = query; *p;) {
    const char *end = strchr (p, '&'), *eq;
    struct hf_strbuf k = { 0 }, v = { 0 };

    if (end == NULL)
      end = p + strlen (p);
    if (end > p) {              /* "a&&b": empty parameters are dropped */
      eq = memchr (p, '=', end - p);
      hf_sigv4_reencode (&k, p, (eq ? eq : end) - p);
      if (eq)
        hf_sigv4_reencode (&v, eq + 1, end - eq - 1);
      params[nparams].key = hf_strbuf_take (&k);
      params[nparams].value = hf_strbuf_take (&v);
      nparams++;
      if (params[nparams - 1].key == NULL ||
          params[nparams - 1].value == NULL) {
        r = ENOMEM;
        goto out;
      }
    }
    p = *end ? end + 1 : end;
  }

  qsort (params, nparams, sizeof *params, hf_sigv4_param_cmp);
  for (i = 0; i < nparams; i++) {
    if (i > 0)
      hf_strbuf_addc (b, '&');
    hf_strbuf_adds (b, params[i].key);
    hf_strbuf_addc (b, '=');
    hf_strbuf_adds (b, params[i].value);
  }

 out:
  for (i = 0; i < nparams; i++) {
    free (params[i].key);
    free (params[i].value);
  }
  free (params);
  return r;
}

/* One header prepared for canonicalisation. */
struct hf_sigv4_hdr {
  char *name;                   /* lowercased copy */
  size_t index;                 /* position in the request: keeps the
                                   sort stable for duplicate names */
  const char *value;            /* borrowed */
};

static int
hf_sigv4_hdr_cmp (const void *a, const void *b)
{
  const struct hf_sigv4_hdr *x = a, *y = b;
  int r = strcmp (x->name, y->name);

  if (r)
    return r;
  return x->index < y->index ? -1 : x->index > y->index;
}

static bool
hf_sigv4_space (char c)
{
  return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* Append value trimmed, with each run of whitespace folded to one
 * space (an obs-fold continuation line becomes a single space too). */
static void
hf_sigv4_add_value (struct hf_strbuf *b, const char *v)
{
  bool pending = false, any = false;

  for (; *v; v++) {
    if (hf_sigv4_space (*v))
      pending = any;
    else {
      if (pending)
        hf_strbuf_addc (b, ' ');
      pending = false;
      any = true;
      hf_strbuf_addc (b, *v);
    }
  }
}

/* Append the canonical headers block (each "name:value\n") to ch and
 * the signed headers list to sh. */
static int
hf_sigv4_canonical_headers (struct hf_strbuf *ch, struct hf_strbuf *sh,
                            const struct hf_sigv4_request *req)
{
  struct hf_sigv4_hdr *h;
  bool have_host = false, have_date = false;
  size_t i, j;
  int r = 0;

  if (req->nheaders == 0 || req->headers == NULL)
    return EINVAL;
  h = calloc (req->nheaders, sizeof *h);
  if (h == NULL)
    return ENOMEM;
  for (i = 0; i < req->nheaders; i++) {
    const char *name = req->headers[i].name;

    if (name == NULL || *name == '\0' || req->headers[i].value == NULL ||
        strpbrk (name, ":; \t\r\n") != NULL) {
      r = EINVAL;
      goto out;
    }
    h[i].name = strdup (name);
    if (h[i].name == NULL) {
      r = ENOMEM;
      goto out;
    }
    for (j = 0; h[i].name[j]; j++)
      if (h[i].name[j] >= 'A' && h[i].name[j] <= 'Z')
        h[i].name[j] += 'a' - 'A';
    h[i].index = i;
    h[i].value = req->headers[i].value;
    have_host |= strcmp (h[i].name, "host") == 0;
    have_date |= strcmp (h[i].name, "x-amz-date") == 0;
  }
  if (!have_host || !have_date) {
    r = EINVAL;
    goto out;
  }

  qsort (h, req->nheaders, sizeof *h, hf_sigv4_hdr_cmp);
  for (i = 0; i < req->nheaders; i++) {
    if (i > 0 && strcmp (h[i].name, h[i - 1].name) == 0) {
      /* Repeated header: values joined with commas in request order. */
      hf_strbuf_addc (ch, ',');
      hf_sigv4_add_value (ch, h[i].value);
      continue;
    }
    if (i > 0) {
      hf_strbuf_addc (ch, '\n');
      hf_strbuf_addc (sh, ';');
    }
    hf_strbuf_adds (ch, h[i].name);
    hf_strbuf_addc (ch, ':');
    hf_sigv4_add_value (ch, h[i].value);
    hf_strbuf_adds (sh, h[i].name);
  }
  hf_strbuf_addc (ch, '\n');

 out:
  for (i = 0; i < req->nheaders; i++)
    free (h[i].name);
  free (h);
  return r;
}

/* signature = hex (HMAC (kSigning, sts)), kSigning derived from the
 * secret through date, region, service and "aws4_request". */
static bool
hf_sigv4_signature (const char *secret, const char *date8,
                    const char *region, const char *service,
                    const char *sts, char *sig_hex)
{
  struct hf_strbuf key = { 0 };
  unsigned char k[32], k2[32];
  bool ok;

  hf_strbuf_adds (&key, "AWS4");
  hf_strbuf_adds (&key, secret);
  if (key.oom)
    return false;
  ok = hf_sigv4_hmac (key.p, key.len, date8, k) &&
    hf_sigv4_hmac (k, 32, region, k2) &&
    hf_sigv4_hmac (k2, 32, service, k) &&
    hf_sigv4_hmac (k, 32, "aws4_request", k2) &&
    hf_sigv4_hmac (k2, 32, sts, k);
  if (ok)
    hf_sigv4_to_hex (k, 32, sig_hex);
  OPENSSL_cleanse (key.p, key.cap);
  OPENSSL_cleanse (k, sizeof k);
  OPENSSL_cleanse (k2, sizeof k2);
  hf_strbuf_free (&key);
  return ok;
}

int
hf_sigv4_sign (const struct hf_sigv4_request *req,
               const struct hf_sigv4_credentials *cred,
               const char *region, const char *service,
               const char *amz_date,
               char **canonical_request,
               char **string_to_sign,
               char **authorization)
{
  struct hf_strbuf cr = { 0 }, sh = { 0 }, scope = { 0 }, sts = { 0 };
  struct hf_strbuf auth = { 0 };
  char date8[9], cr_hash[65], sig[65];
  char *out_cr = NULL, *out_sts = NULL, *out_auth = NULL;
  int r;

  if (req == NULL || cred == NULL || region == NULL || service == NULL ||
      amz_date == NULL || strlen (amz_date) < 8 ||
      req->method == NULL || *req->method == '\0' ||
      req->path == NULL || req->path[0] != '/' ||
      req->payload_hash == NULL ||
      cred->access_key == NULL || cred->secret_key == NULL)
    return EINVAL;
  memcpy (date8, amz_date, 8);
  date8[8] = '\0';

  /* Canonical request. */
  hf_strbuf_adds (&cr, req->method);
  hf_strbuf_addc (&cr, '\n');
  hf_sigv4_canonical_uri (&cr, req);
  hf_strbuf_addc (&cr, '\n');
  r = hf_sigv4_canonical_query (&cr, req->query);
  if (r)
    goto out;
  hf_strbuf_addc (&cr, '\n');
  r = hf_sigv4_canonical_headers (&cr, &sh, req);
  if (r)
    goto out;
  hf_strbuf_addc (&cr, '\n');
  hf_strbuf_adds (&cr, sh.oom ? "" : sh.p);
  hf_strbuf_addc (&cr, '\n');
  hf_strbuf_adds (&cr, req->payload_hash);
  if (cr.oom || sh.oom) {
    r = ENOMEM;
    goto out;
  }

  /* String to sign. */
  hf_strbuf_adds (&scope, date8);
  hf_strbuf_addc (&scope, '/');
  hf_strbuf_adds (&scope, region);
  hf_strbuf_addc (&scope, '/');
  hf_strbuf_adds (&scope, service);
  hf_strbuf_adds (&scope, "/aws4_request");
  if (scope.oom || !hf_sigv4_sha256 (cr.p, cr.len, cr_hash)) {
    r = ENOMEM;
    goto out;
  }
  hf_strbuf_adds (&sts, HF_SIGV4_ALGORITHM "\n");
  hf_strbuf_adds (&sts, amz_date);
  hf_strbuf_addc (&sts, '\n');
  hf_strbuf_adds (&sts, scope.p);
  hf_strbuf_addc (&sts, '\n');
  hf_strbuf_adds (&sts, cr_hash);
  if (sts.oom ||
      !hf_sigv4_signature (cred->secret_key, date8, region, service,
                           sts.p, sig)) {
    r = ENOMEM;
    goto out;
  }

  /* Authorization header value. */
  hf_strbuf_adds (&auth, HF_SIGV4_ALGORITHM " Credential=");
  hf_strbuf_adds (&auth, cred->access_key);
  hf_strbuf_addc (&auth, '/');
  hf_strbuf_adds (&auth, scope.p);
  hf_strbuf_adds (&auth, ", SignedHeaders=");
  hf_strbuf_adds (&auth, sh.p);
  hf_strbuf_adds (&auth, ", Signature=");
  hf_strbuf_adds (&auth, sig);

  if (canonical_request && (out_cr = hf_strbuf_take (&cr)) == NULL)
    r = ENOMEM;
  if (string_to_sign && (out_sts = hf_strbuf_take (&sts)) == NULL)
    r = ENOMEM;
  if (authorization && (out_auth = hf_strbuf_take (&auth)) == NULL)
    r = ENOMEM;
  if (r) {
    free (out_cr);
    free (out_sts);
    free (out_auth);
    goto out;
  }
  if (canonical_request)
    *canonical_request = out_cr;
  if (string_to_sign)
    *string_to_sign = out_sts;
  if (authorization)
    *authorization = out_auth;

 out:
  hf_strbuf_free (&cr);
  hf_strbuf_free (&sh);
  hf_strbuf_free (&scope);
  hf_strbuf_free (&sts);
  hf_strbuf_free (&auth);
  return r;
}
