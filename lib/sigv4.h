/* hyperfile: AWS Signature Version 4 request signing.
 *
 * Written here rather than using curl's CURLOPT_AWS_SIGV4 because curl
 * 7.88's signer omits x-amz-content-sha256, does not canonicalise query
 * strings and signs headers it was told to remove.  This module is pure
 * (no I/O, no global state) so it can be tested against AWS's published
 * vectors (tests/sigv4-vectors) and against botocore.
 *
 * The caller gives the request exactly as it will go on the wire: the
 * path already URI-encoded (S3 style: each byte outside the unreserved
 * set A-Z a-z 0-9 - _ . ~ percent-encoded, '/' kept), the raw query
 * string (canonicalised here: parameters decoded, re-encoded and sorted),
 * and the headers to sign (names compared case-insensitively, values
 * trimmed and inner whitespace runs folded as the spec says).  S3 paths
 * are not normalised (no "." / ".." removal) and not double-encoded; the
 * `normalize_path` flag enables the non-S3 behaviour used by the generic
 * AWS vectors.
 *
 * Thread safety: all functions are reentrant.
 */
#ifndef HF_SIGV4_H
#define HF_SIGV4_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

struct hf_sigv4_header {
  const char *name;
  const char *value;
};

struct hf_sigv4_request {
  const char *method;           /* "GET", "PUT" ... */
  const char *path;             /* URI-encoded, starts with '/' */
  const char *query;            /* raw query without '?', or NULL/"" */
  const struct hf_sigv4_header *headers; /* must include host and
                                            x-amz-date; borrowed */
  size_t nheaders;
  const char *payload_hash;     /* lowercase hex SHA-256 of the body, or
                                   "UNSIGNED-PAYLOAD" */
  bool normalize_path;          /* false for S3 */
  bool double_encode_path;      /* false for S3 */
};

struct hf_sigv4_credentials {
  const char *access_key;
  const char *secret_key;
  const char *session_token;    /* NULL if none; the caller adds the
                                   x-amz-security-token header itself */
};

/* Format t as the x-amz-date value (YYYYMMDD'T'HHMMSS'Z', UTC) into
 * buf (at least 17 bytes). */
extern void hf_sigv4_amz_date (time_t t, char *buf);

/* Lowercase hex SHA-256 of data into hex (at least 65 bytes). */
extern void hf_sigv4_sha256_hex (const void *data, size_t len, char *hex);

/* Build the canonical request, string to sign and Authorization header
 * value.  amz_date is the x-amz-date value; region and service ("s3")
 * form the credential scope.  Each out parameter may be NULL if not
 * wanted; otherwise on success it receives a malloc'd string the caller
 * frees (on error all are unchanged).  Returns 0, EINVAL (malformed
 * request, e.g. missing path) or ENOMEM.  The secret never appears in
 * any output. */
extern int hf_sigv4_sign (const struct hf_sigv4_request *req,
                          const struct hf_sigv4_credentials *cred,
                          const char *region, const char *service,
                          const char *amz_date,
                          char **canonical_request,
                          char **string_to_sign,
                          char **authorization);

/* URI-encode s (S3 rules) into a malloc'd string; if encode_slash is
 * false, '/' is kept.  Returns NULL on ENOMEM. */
extern char *hf_sigv4_uri_encode (const char *s, bool encode_slash);

#endif /* HF_SIGV4_H */
