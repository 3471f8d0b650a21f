/* hyperfile: the S3 store's request engine (see s3-int.h for the map).
 *
 * One request function (hf_s3_request) that signs, sends, retries with
 * capped exponential backoff and full jitter, counts every attempt, and
 * maps the outcome to an errno through ONE table (hf_s3_errtab).  Each
 * attempt is a fresh curl easy handle run on a curl multi handle taken
 * from a pool (curl keeps a connection cache per multi handle, so
 * connections are reused between requests).  An attempt is bounded in
 * time (connect and request timeouts plus a minimum transfer rate) and
 * in what it accepts (reply caps), so a server cannot hold a thread or
 * a buffer for ever.
 *
 * Secrets: the secret key, the session token and the Authorization
 * header are never formatted into a log line.  Error lines name the
 * operation, key, bucket, endpoint, HTTP status and S3's Code/Message.
 *
 * Lock rule: pool_lock guards the handle pool only and is a leaf, never
 * held across a request.  Everything else here belongs to the calling
 * thread (its request and response).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "cleanup.h"
#include "log.h"
#include "objstore.h"
#include "s3-int.h"
#include "strbuf.h"
#include "sigv4.h"

/* ---- Status and curl error -> errno: the one table ---- */

struct hf_s3_errmap {
  long status;                  /* HTTP status, or 0 */
  CURLcode cc;                  /* curl error if status == 0 */
  int err;
  bool retry;
};

static const struct hf_s3_errmap hf_s3_errtab[] = {
  { 400, CURLE_OK, EINVAL, false },
  { 401, CURLE_OK, EACCES, false },
  { 403, CURLE_OK, EACCES, false },
  { 404, CURLE_OK, ENOENT, false },
  { 405, CURLE_OK, ENOTSUP, false },
  { 408, CURLE_OK, ETIMEDOUT, true },
  { 409, CURLE_OK, EIO, true },       /* ConditionalRequestConflict */
  { 411, CURLE_OK, EINVAL, false },
  { 412, CURLE_OK, EEXIST, false },
  { 413, CURLE_OK, EINVAL, false },
  { 416, CURLE_OK, EINVAL, false },   /* get: handled as end of object */
  { 429, CURLE_OK, EIO, true },
  { 501, CURLE_OK, ENOTSUP, false },
  { 301, CURLE_OK, EINVAL, false },  /* PermanentRedirect: the region */
  { 0, CURLE_COULDNT_CONNECT, EIO, true },
  { 0, CURLE_OPERATION_TIMEDOUT, ETIMEDOUT, true },
  { 0, CURLE_SEND_ERROR, EIO, true },
  { 0, CURLE_RECV_ERROR, EIO, true },
  { 0, CURLE_GOT_NOTHING, EIO, true },
  { 0, CURLE_PARTIAL_FILE, EIO, true },
  { 0, CURLE_OUT_OF_MEMORY, ENOMEM, false },
};

/* Classify an answer: *retry says whether another attempt may help. */
static int
hf_s3_errno (const struct hf_s3_resp *rp, bool *retry)
{
  size_t i;

  *retry = false;
  if (rp->cc == CURLE_OK && rp->status >= 200 && rp->status < 300)
    return 0;
  for (i = 0; i < sizeof hf_s3_errtab / sizeof hf_s3_errtab[0]; i++) {
    const struct hf_s3_errmap *e = &hf_s3_errtab[i];

    if ((rp->cc == CURLE_OK && e->status != 0 && e->status == rp->status)
        || (rp->cc != CURLE_OK && e->status == 0 && e->cc == rp->cc)) {
      *retry = e->retry;
      return e->err;
    }
  }
  if (rp->cc == CURLE_OK && rp->status >= 500) {
    *retry = true;               /* 500, 502, 503 SlowDown, 504 ... */
    return EIO;
  }
  return EIO;
}

static const char *
hf_s3_keystr (const char *key)
{
  return key ? key : "";
}

/* Did TLS verification (or loading the CA file for it) fail?  Not
 * retried: the next attempt would fail the same way. */
bool
hf_s3_tls_refused (CURLcode cc)
{
  return cc == CURLE_PEER_FAILED_VERIFICATION
    || cc == CURLE_SSL_CACERT_BADFILE || cc == CURLE_SSL_ISSUER_ERROR;
}

/* Thread-local PRNG state for backoff jitter. */
static __thread unsigned hf_s3_seed;

static void
hf_s3_backoff (struct hf_s3 *s, unsigned attempt)
{
  uint64_t cap = s->retry_base_ms;
  uint64_t ms;
  unsigned i;

  for (i = 0; i < attempt && cap < s->retry_max_ms; i++)
    cap *= 2;
  if (cap > s->retry_max_ms)
    cap = s->retry_max_ms;
  if (hf_s3_seed == 0)
    hf_s3_seed = (unsigned) hf_objstore_now_us () ^ (unsigned) (uintptr_t) &i;
  ms = cap == 0 ? 0 : (uint64_t) rand_r (&hf_s3_seed) % (cap + 1);
  if (ms > 0)
    usleep ((useconds_t) (ms * 1000));
}

/* ---- curl callbacks ---- */

static size_t
hf_s3_write_cb (char *ptr, size_t size, size_t nmemb, void *opaque)
{
  struct hf_s3_resp *rp = opaque;
  size_t n = size * nmemb, total = n;

  if (rp->status < 200 || rp->status >= 300) {
    size_t room = HF_S3_ERRBODY_MAX - rp->elen;
    char *p;

    if (n > room)
      n = room;
    if (n == 0) {
      rp->ebody_full = true;     /* enough of it: stop reading */
      return 0;
    }
    p = realloc (rp->ebuf, rp->elen + n + 1);
    if (p == NULL)
      return 0;
    rp->ebuf = p;
    memcpy (p + rp->elen, ptr, n);
    rp->elen += n;
    p[rp->elen] = '\0';
    return total;
  }

  if (rp->skip > 0) {
    size_t k = rp->skip < n ? (size_t) rp->skip : n;

    rp->skip -= k;
    ptr += k;
    n -= k;
  }
  if (rp->fixed) {
    size_t room = rp->cap - rp->len;

    if (n > room) {
      /* More than the range (Range ignored with a 200, or a 206 running
       * past it: s3rver serves "bytes=0-0" as the whole object): keep
       * what was asked for and stop reading. */
      memcpy (rp->buf + rp->len, ptr, room);
      rp->len += room;
      rp->range_done = true;
      return 0;
    }
  }
  else if (rp->len + n > rp->max) {
    rp->too_big = true;
    return 0;
  }
  else if (rp->len + n + 1 > rp->cap) {
    size_t cap = rp->cap ? rp->cap : 16384;
    char *p;

    while (cap < rp->len + n + 1)
      cap *= 2;
    p = realloc (rp->buf, cap);
    if (p == NULL)
      return 0;
    rp->buf = p;
    rp->cap = cap;
  }
  memcpy (rp->buf + rp->len, ptr, n);
  rp->len += n;
  if (!rp->fixed)
    rp->buf[rp->len] = '\0';
  return total;
}

static size_t
hf_s3_header_cb (char *line, size_t size, size_t nmemb, void *opaque)
{
  struct hf_s3_resp *rp = opaque;
  size_t n = size * nmemb;
  char h[512];
  char *v, *e;

  if (n >= sizeof h)
    return n;                    /* no header we want is that long */
  memcpy (h, line, n);
  h[n] = '\0';
  while (n > 0 && (h[n - 1] == '\r' || h[n - 1] == '\n'))
    h[--n] = '\0';

  if (strncmp (h, "HTTP/", 5) == 0) {
    /* A new header block (a redirect or 100 Continue restarts it). */
    v = strchr (h, ' ');
    rp->status = v ? strtol (v + 1, NULL, 10) : 0;
    rp->etag[0] = '\0';
    rp->bucket_region[0] = '\0';
    rp->have_clen = false;
    rp->have_total = false;
    rp->mtime = 0;
    rp->len = 0;
    rp->skip = (rp->status == 200 && rp->want_range) ? rp->range_start : 0;
    return size * nmemb;
  }
  v = strchr (h, ':');
  if (v == NULL)
    return size * nmemb;
  *v++ = '\0';
  while (*v == ' ' || *v == '\t')
    v++;
  if (strcasecmp (h, "etag") == 0) {
    if (*v == '"')
      v++;
    snprintf (rp->etag, sizeof rp->etag, "%s", v);
    e = strchr (rp->etag, '"');
    if (e)
      *e = '\0';
  }
  else if (strcasecmp (h, "content-length") == 0) {
    rp->clen = strtoull (v, NULL, 10);
    rp->have_clen = true;
    /* Announced too big: refuse before the body comes. */
    if (!rp->nobody && !rp->fixed && rp->status >= 200 &&
        rp->status < 300 && rp->clen > rp->max) {
      rp->too_big = true;
      return 0;
    }
  }
  else if (strcasecmp (h, "content-range") == 0) {
    e = strchr (v, '/');
    if (e && e[1] != '*') {
      rp->total = strtoull (e + 1, NULL, 10);
      rp->have_total = true;
    }
  }
  else if (strcasecmp (h, "x-amz-bucket-region") == 0) {
    size_t k = strspn (v, "abcdefghijklmnopqrstuvwxyz0123456789-");

    if (k > 0 && k < sizeof rp->bucket_region && v[k] == '\0')
      snprintf (rp->bucket_region, sizeof rp->bucket_region, "%s", v);
  }
  else if (strcasecmp (h, "last-modified") == 0) {
    time_t t = curl_getdate (v, NULL);

    rp->mtime = t > 0 ? (int64_t) t : 0;
  }
  return size * nmemb;
}

/* The attempt's clock (curl calls this as bytes move and about once a
 * second while nothing does; hf_s3_perform's shorter poll for a request
 * with a cancel flag makes that more often), and its
 * cancel flag: raised while some of the body is still to be sent, the
 * request is cut off, so the server never has the object whole.  Once
 * the last byte has left, the answer is the server's to give, and the
 * attempt waits for it. */
static int
hf_s3_progress_cb (void *opaque, curl_off_t dltotal, curl_off_t dlnow,
                   curl_off_t ultotal, curl_off_t ulnow)
{
  struct hf_s3_resp *rp = opaque;
  uint64_t allowed = rp->allowed_us +
    (rp->sent + (uint64_t) (dlnow > 0 ? dlnow : 0)) * 1000000 /
    HF_S3_MIN_RATE;

  (void) dltotal;
  (void) ultotal;
  if (rp->sent > 0 && (uint64_t) (ulnow > 0 ? ulnow : 0) < rp->sent &&
      hf_objstore_cancelled (rp->cancel)) {
    rp->cancelled = true;
    return 1;
  }
  if (hf_objstore_now_us () - rp->start_us <= allowed)
    return 0;
  rp->timed_out = true;
  return 1;
}

/* ---- The handle pool ---- */

static CURLM *
hf_s3_handle_take (struct hf_s3 *s)
{
  CURLM *c = NULL;

  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->pool_lock);
    if (s->npool > 0)
      c = s->pool[--s->npool];
  }
  if (c == NULL)
    c = curl_multi_init ();
  return c;
}

static void
hf_s3_handle_give (struct hf_s3 *s, CURLM *c)
{
  {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->pool_lock);
    if (s->npool == s->pool_cap) {
      size_t cap = s->pool_cap ? s->pool_cap * 2 : 16;
      CURLM **p = realloc (s->pool, cap * sizeof *p);

      if (p != NULL) {
        s->pool = p;
        s->pool_cap = cap;
      }
    }
    if (s->npool < s->pool_cap) {
      s->pool[s->npool++] = c;
      return;
    }
  }
  curl_multi_cleanup (c);
}

/* ---- Requests ---- */

void
hf_s3_resp_free (struct hf_s3_resp *rp)
{
  if (!rp->fixed) {
    free (rp->buf);
    rp->buf = NULL;
    rp->len = rp->cap = 0;
  }
  free (rp->ebuf);
  rp->ebuf = NULL;
  rp->elen = 0;
}

/* Build the request path: base_path + "/" + encoded key (or just the
 * bucket).  Caller frees. */
static char *
hf_s3_path (struct hf_s3 *s, const char *key)
{
  CLEANUP_FREE char *enc = NULL;
  char *p;

  if (key == NULL) {
    if (asprintf (&p, "%s", *s->base_path ? s->base_path : "/") < 0)
      return NULL;
    return p;
  }
  enc = hf_sigv4_uri_encode (key, false);
  if (enc == NULL)
    return NULL;
  if (asprintf (&p, "%s/%s", s->base_path, enc) < 0)
    return NULL;
  return p;
}

/* Run the easy handle c on the multi handle m (whose connection cache
 * outlives c), as curl_easy_perform does on a multi handle of its own.
 * Why a fresh easy handle per attempt instead of reusing one: libcurl
 * before 8.1.0 keeps, in a reused easy handle, a pointer to the previous
 * transfer's last header, freed since; a reply whose first header line
 * is folded (starts with a space or tab) makes curl realloc and read it
 * (curl issue 11101, fixed by curl commit 567b8ce; Debian 12 ships
 * 7.88.1).  An endpoint could thus corrupt the server's heap with one
 * reply.  Found by fuzz/fuzz-s3; check-s3-handles test_folded_header. */
static CURLcode
hf_s3_perform (CURLM *m, CURL *c, int poll_ms)
{
  CURLcode cc = CURLE_RECV_ERROR;   /* if curl never says it is done */
  CURLMcode mc;
  CURLMsg *msg;
  int running = 1, left;

  mc = curl_multi_add_handle (m, c);
  if (mc != CURLM_OK)
    return mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY
      : CURLE_FAILED_INIT;
  while (running) {
    mc = curl_multi_perform (m, &running);
    if (mc == CURLM_OK && running)
      mc = curl_multi_poll (m, NULL, 0, poll_ms, NULL);
    if (mc != CURLM_OK) {
      cc = mc == CURLM_OUT_OF_MEMORY ? CURLE_OUT_OF_MEMORY : CURLE_RECV_ERROR;
      break;
    }
  }
  while ((msg = curl_multi_info_read (m, &left)) != NULL)
    if (msg->msg == CURLMSG_DONE && msg->easy_handle == c)
      cc = msg->data.result;
  curl_multi_remove_handle (m, c);
  return cc;
}

/* One attempt on multi handle m, signed with session ss (a directory
 * bucket's, s3-express.c) or else with cr.  Returns 0 (the HTTP outcome
 * is in rp) or a local errno (ENOMEM, signing failure). */
static int
hf_s3_attempt (struct hf_s3 *s, CURLM *m, const struct hf_s3_req *rq,
               const char *path, const char *url, const char *payload_hash,
               const struct hf_s3_cred *cr, struct hf_s3_session *ss,
               struct hf_s3_resp *rp)
{
  struct hf_sigv4_header h[12];
  struct hf_sigv4_request sr;
  struct hf_sigv4_credentials cred;
  struct curl_slist *hl = NULL, *t;
  CURL *c;
  CLEANUP_FREE char *auth = NULL;
  char amz_date[17], range[64], line[2048];
  size_t n = 0, i;
  int r;

  hf_sigv4_amz_date (time (NULL), amz_date);
  h[n++] = (struct hf_sigv4_header) { "host", s->host };
  h[n++] = (struct hf_sigv4_header) { "x-amz-date", amz_date };
  h[n++] = (struct hf_sigv4_header) { "x-amz-content-sha256", payload_hash };
  if (ss)
    h[n++] = (struct hf_sigv4_header) { "x-amz-s3session-token",
                                        hf_s3_session_token (ss) };
  else if (cr->session_token)
    h[n++] = (struct hf_sigv4_header) { "x-amz-security-token",
                                        cr->session_token };
  if (rq->new_object && s->sse)
    h[n++] = (struct hf_sigv4_header) { "x-amz-server-side-encryption",
                                        s->sse };
  if (rq->new_object && s->sse_kms_key_id)
    h[n++] = (struct hf_sigv4_header) {
      "x-amz-server-side-encryption-aws-kms-key-id", s->sse_kms_key_id };
  if (rq->new_object && s->storage_class)
    h[n++] = (struct hf_sigv4_header) { "x-amz-storage-class",
                                        s->storage_class };
  if (rq->content_md5)
    h[n++] = (struct hf_sigv4_header) { "content-md5", rq->content_md5 };
  if (rq->if_none_match)
    h[n++] = (struct hf_sigv4_header) { "if-none-match", "*" };
  if (rq->has_range) {
    snprintf (range, sizeof range, "bytes=%" PRIu64 "-%" PRIu64,
              rq->range_start, rq->range_end);
    h[n++] = (struct hf_sigv4_header) { "range", range };
  }

  sr = (struct hf_sigv4_request) {
    .method = rq->method, .path = path, .query = rq->query,
    .headers = h, .nheaders = n, .payload_hash = payload_hash,
    .normalize_path = false, .double_encode_path = false,
  };
  if (ss)
    cred = (struct hf_sigv4_credentials) {
      hf_s3_session_key (ss), hf_s3_session_secret (ss), NULL
    };
  else
    cred = (struct hf_sigv4_credentials) {
      cr->access_key, cr->secret_key, cr->session_token
    };
  /* Directory buckets: every zonal request is signed for s3express. */
  r = hf_sigv4_sign (&sr, &cred, s->region, s->express ? "s3express" : "s3",
                     amz_date, NULL, NULL, &auth);
  if (r)
    return r;

  /* Exactly the signed headers, plus Authorization; curl adds only
   * Content-Length.  Suppress its Expect, Accept and Content-Type. */
  for (i = 0; i < n + 4; i++) {
    if (i < n)
      snprintf (line, sizeof line, "%s: %s", h[i].name, h[i].value);
    else if (i == n)
      snprintf (line, sizeof line, "Authorization: %s", auth);
    else
      snprintf (line, sizeof line, "%s",
                i == n + 1 ? "Expect:" : i == n + 2 ? "Accept:"
                : "Content-Type:");
    t = curl_slist_append (hl, line);
    if (t == NULL) {
      curl_slist_free_all (hl);
      return ENOMEM;
    }
    hl = t;
  }
  memset (line, 0, sizeof line);   /* held the signature */

  c = curl_easy_init ();
  if (c == NULL) {
    curl_slist_free_all (hl);
    return ENOMEM;
  }
  rp->curl_err[0] = '\0';
  curl_easy_setopt (c, CURLOPT_URL, url);
  curl_easy_setopt (c, CURLOPT_HTTPHEADER, hl);
  curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (c, CURLOPT_HTTP_VERSION, (long) CURL_HTTP_VERSION_1_1);
  curl_easy_setopt (c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (c, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt (c, CURLOPT_CONNECTTIMEOUT, (long) s->connect_timeout_s);
  curl_easy_setopt (c, CURLOPT_LOW_SPEED_LIMIT, 1L);
  curl_easy_setopt (c, CURLOPT_LOW_SPEED_TIME, (long) s->request_timeout_s);
  curl_easy_setopt (c, CURLOPT_SSL_VERIFYPEER, s->tls_verify ? 1L : 0L);
  curl_easy_setopt (c, CURLOPT_SSL_VERIFYHOST, s->tls_verify ? 2L : 0L);
  if (s->ca_file)
    curl_easy_setopt (c, CURLOPT_CAINFO, s->ca_file);
  curl_easy_setopt (c, CURLOPT_ERRORBUFFER, rp->curl_err);
  curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, hf_s3_write_cb);
  curl_easy_setopt (c, CURLOPT_WRITEDATA, rp);
  curl_easy_setopt (c, CURLOPT_HEADERFUNCTION, hf_s3_header_cb);
  curl_easy_setopt (c, CURLOPT_HEADERDATA, rp);
  curl_easy_setopt (c, CURLOPT_XFERINFOFUNCTION, hf_s3_progress_cb);
  curl_easy_setopt (c, CURLOPT_XFERINFODATA, rp);
  curl_easy_setopt (c, CURLOPT_NOPROGRESS, 0L);

  if (strcmp (rq->method, "GET") == 0)
    curl_easy_setopt (c, CURLOPT_HTTPGET, 1L);
  else if (strcmp (rq->method, "HEAD") == 0)
    curl_easy_setopt (c, CURLOPT_NOBODY, 1L);
  else if (strcmp (rq->method, "DELETE") == 0)
    curl_easy_setopt (c, CURLOPT_CUSTOMREQUEST, "DELETE");
  else {
    /* PUT / POST: the body from memory, with Content-Length (never
     * chunked). */
    curl_easy_setopt (c, CURLOPT_POSTFIELDSIZE_LARGE,
                      (curl_off_t) rq->body_len);
    curl_easy_setopt (c, CURLOPT_POSTFIELDS, rq->body ? rq->body : "");
    if (strcmp (rq->method, "POST") != 0)
      curl_easy_setopt (c, CURLOPT_CUSTOMREQUEST, rq->method);
  }

  rp->status = 0;
  rp->bucket_region[0] = '\0';
  rp->len = 0;
  rp->elen = 0;
  rp->skip = 0;
  rp->code[0] = rp->message[0] = '\0';
  rp->max = rq->max_reply ? rq->max_reply : HF_S3_REPLY_SMALL;
  rp->nobody = strcmp (rq->method, "HEAD") == 0;
  rp->too_big = rp->range_done = rp->ebody_full = rp->timed_out = false;
  rp->cancel = rq->cancel;
  rp->cancelled = false;
  rp->sent = rq->body_len;
  rp->allowed_us = (uint64_t) s->request_timeout_s * 1000000;
  rp->start_us = hf_objstore_now_us ();
  /* A request that may be called off looks at its flag often. */
  rp->cc = hf_s3_perform (m, c, rq->cancel ? HF_OBJSTORE_CANCEL_POLL_MS
                          : 1000);
  if (rp->cc == CURLE_WRITE_ERROR && (rp->range_done || rp->ebody_full))
    rp->cc = CURLE_OK;           /* cut off by us, with what we need */
  if (rp->cc == CURLE_OK) {
    long st = 0;

    curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, &st);
    rp->status = st;
    if (rp->range_done)
      rp->have_clen = false;     /* not what we kept */
  }
  else if (rp->cc == CURLE_PARTIAL_FILE && rp->status == 206
           && rq->has_range && rp->have_total
           && rq->range_start >= rp->total) {
    /* s3rver answers a range of an empty object with 206, "bytes 0-0/0"
     * and a body shorter than its Content-Length; AWS says 416. */
    rp->cc = CURLE_OK;
    rp->status = 416;
    rp->len = 0;
  }
  else {
    rp->status = 0;
    if (rp->cc == CURLE_WRITE_ERROR && rp->too_big)
      snprintf (rp->curl_err, sizeof rp->curl_err, "the answer is larger "
                "than %zu bytes, the most this request expects", rp->max);
    else if (rp->cc == CURLE_ABORTED_BY_CALLBACK && rp->cancelled)
      snprintf (rp->curl_err, sizeof rp->curl_err, "cancelled (the put was "
                "called off before its body was sent whole)");
    else if (rp->cc == CURLE_ABORTED_BY_CALLBACK && rp->timed_out) {
      /* Retried as a timeout (hf_s3_errtab). */
      rp->cc = CURLE_OPERATION_TIMEDOUT;
      snprintf (rp->curl_err, sizeof rp->curl_err, "no complete answer "
                "within %.1f s (the time allowed for this request and the "
                "%" PRIu64 " bytes it moved)",
                (hf_objstore_now_us () - rp->start_us) / 1e6,
                rp->sent + rp->len + rp->elen);
    }
  }
  curl_easy_cleanup (c);
  curl_slist_free_all (hl);
  if (rp->curl_err[0] == '\0' && rp->cc != CURLE_OK)
    snprintf (rp->curl_err, sizeof rp->curl_err, "%s",
              curl_easy_strerror (rp->cc));
  if (hf_s3_tls_refused (rp->cc)) {
    /* Say plainly that this is TLS verification and how to fix it. */
    char why[CURL_ERROR_SIZE];

    memcpy (why, rp->curl_err, sizeof why);   /* curl's fits */
    why[sizeof why - 1] = '\0';
    snprintf (rp->curl_err, sizeof rp->curl_err,
              "TLS certificate verification failed (%s); name the CA "
              "with ca-file=FILE, or tls-verify=false (insecure)", why);
  }

  if (rp->cc == CURLE_OK && (rp->status < 200 || rp->status >= 300))
    hf_s3_parse_error (rp, rp->ebuf, rp->elen);
  else if (rp->cc == CURLE_OK && rq->body_may_be_error && !rp->fixed
           && rp->len > 0 && strstr (rp->buf, "<Error>") != NULL) {
    /* CompleteMultipartUpload answered 200 and then failed. */
    hf_s3_parse_error (rp, rp->buf, rp->len);
    if (strcmp (rp->code, "PreconditionFailed") == 0)
      rp->status = 412;
    else if (strcmp (rp->code, "InternalError") == 0
             || strcmp (rp->code, "SlowDown") == 0)
      rp->status = 500;
    else
      rp->status = 400;
  }
  return 0;
}

/* Send a request, retrying what may succeed later.  Returns 0 on a 2xx
 * answer, else the errno from hf_s3_errtab (rp says more); never logs
 * errors (the caller does, once, with hf_s3_fail). */
int
hf_s3_request (struct hf_s3 *s, const struct hf_s3_req *rq,
               struct hf_s3_resp *rp)
{
  CLEANUP_FREE char *path = NULL, *url = NULL;
  char hash[65];
  const char *payload_hash;
  unsigned max_retries, attempt;
  bool refreshed = false, session_retried = false;
  CURLM *c;
  int err = 0;

  path = hf_s3_path (s, rq->key);
  if (path == NULL)
    return ENOMEM;
  if (asprintf (&url, "%s://%s%s%s%s", s->scheme, s->host, path,
                rq->query && *rq->query ? "?" : "",
                rq->query ? rq->query : "") < 0) {
    url = NULL;
    return ENOMEM;
  }
  if (rq->payload_hash)
    payload_hash = rq->payload_hash;
  else if (s->unsigned_payload && rq->body_len > 0)
    payload_hash = "UNSIGNED-PAYLOAD";
  else {
    hf_sigv4_sha256_hex (rq->body ? rq->body : "", rq->body_len, hash);
    payload_hash = hash;
  }
  max_retries = rq->max_retries >= 0 ? (unsigned) rq->max_retries
    : s->max_retries;
  rp->want_range = rq->has_range;
  rp->range_start = rq->range_start;

  c = hf_s3_handle_take (s);
  if (c == NULL)
    return ENOMEM;

  for (attempt = 0;; attempt++) {
    uint64_t t0 = hf_objstore_now_us (), lat;
    struct hf_s3_cred *cr;
    struct hf_s3_session *ss = NULL;
    bool retry = false, expired;
    int r;

    /* Called off before this attempt (or during the backoff): send
     * nothing. */
    if (hf_objstore_cancelled (rq->cancel)) {
      err = ECANCELED;
      break;
    }
    if (s->express && !rq->base_credentials) {
      r = hf_s3_express_get (s, &ss);
      if (r) {
        err = r;                /* CreateSession failed, and said so */
        rp->logged = true;
        break;
      }
    }
    cr = hf_s3_cred_get (s);
    r = hf_s3_attempt (s, c, rq, path, url, payload_hash, cr, ss, rp);
    lat = hf_objstore_now_us () - t0;
    rp->attempts = attempt + 1;
    err = r ? r : rp->cancelled ? ECANCELED : hf_s3_errno (rp, &retry);
    hf_objstore_count (&s->base, rq->op, lat,
                       err == 0 ? rp->len : 0,
                       err == 0 ? rq->body_len : 0,
                       (err == 0 || err == ECANCELED || rp->status == 404
                        || rp->status == 412 || rp->status == 416)
                       ? 0 : err);
    if (rp->cc != CURLE_OK)
      hf_debug ("s3", "%s %s%s%s: %s (%.1f ms, attempt %u)", rq->method,
                hf_s3_keystr (rq->key), rq->query ? "?" : "",
                rq->query ? rq->query : "", rp->curl_err, lat / 1000.0,
                attempt + 1);
    else
      hf_debug ("s3", "%s %s%s%s -> %ld%s%s (%.1f ms, attempt %u)",
                rq->method, hf_s3_keystr (rq->key), rq->query ? "?" : "",
                rq->query ? rq->query : "", rp->status,
                rp->code[0] ? " " : "", rp->code, lat / 1000.0,
                attempt + 1);
    /* Temporary credentials the server calls expired (its clock ahead
     * of ours, or a refresh that failed): fetch new ones and send once
     * more at once, outside the retry count. */
    expired = r == 0 && rp->cc == CURLE_OK &&
      (rp->status == 400 || rp->status == 403) &&
      (strcmp (rp->code, "ExpiredToken") == 0 ||
       strcmp (rp->code, "TokenRefreshRequired") == 0);
    if (ss) {
      /* A directory bucket's session expired on the way (or the server
       * forgot it): once more with a new one, at once. */
      if (r == 0 && err && !session_retried
          && hf_s3_express_refused (s, ss, rp)) {
        session_retried = true;
        hf_s3_express_put (s, ss);
        hf_s3_cred_put (s, cr);
        attempt--;
        continue;
      }
    }
    else if (expired && !refreshed && hf_s3_cred_expired (s, cr)) {
      refreshed = true;
      hf_s3_cred_put (s, cr);
      attempt--;                /* wraps to 0 again for the first */
      continue;
    }
    hf_s3_express_put (s, ss);
    hf_s3_cred_put (s, cr);
    if (r || !retry || attempt >= max_retries)
      break;
    hf_objstore_count_retry (&s->base);
    hf_s3_backoff (s, attempt);
  }
  hf_s3_handle_give (s, c);
  return err;
}

/* Log one line about a failed operation and return err (nothing if the
 * failure was logged already: rp->logged). */
int
hf_s3_fail (struct hf_s3 *s, const char *op, const char *key,
            const struct hf_s3_resp *rp, int err)
{
  char detail[CURL_ERROR_SIZE + 400];
  char tries[40] = "";

  if (err == ECANCELED) {       /* the caller's own doing: no failure */
    hf_debug ("s3", "%s %s: cancelled", op, key ? key : "");
    return err;
  }
  if (rp && rp->logged)
    return err;
  if (rp == NULL || (rp->status == 0 && rp->cc == CURLE_OK))
    snprintf (detail, sizeof detail, "%s", strerror (err));
  else if (rp->cc != CURLE_OK)
    snprintf (detail, sizeof detail, "%s", rp->curl_err);
  else if (rp->bucket_region[0] &&
           strcmp (rp->bucket_region, s->region) != 0 &&
           (rp->status == 301 || rp->status == 400))
    snprintf (detail, sizeof detail, "HTTP %ld%s%s: the bucket is in "
              "region %s, not %s: set region=%s", rp->status,
              rp->code[0] ? " " : "", rp->code, rp->bucket_region,
              s->region, rp->bucket_region);
  else if (rp->code[0])
    snprintf (detail, sizeof detail, "HTTP %ld %s: %s", rp->status,
              rp->code, rp->message);
  else
    snprintf (detail, sizeof detail, "HTTP %ld", rp->status);
  if (rp && rp->attempts > 1)
    snprintf (tries, sizeof tries, " (after %u attempts)", rp->attempts);
  hf_error ("s3: %s %s%s%sin bucket %s at %s failed: %s%s",
            op, key ? "'" : "", key ? key : "", key ? "' " : "",
            s->bucket, s->endpoint, detail, tries);
  return err;
}
