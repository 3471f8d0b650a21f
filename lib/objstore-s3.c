/* hyperfile: the S3 object store (AWS S3 and S3-compatible servers).
 *
 * Each store operation becomes one or more HTTP requests made with
 * libcurl and signed with AWS Signature V4 (lib/sigv4.c).  What lives
 * here:
 *
 *   - configuration: credentials, region and endpoint from the config,
 *     the environment or ~/.aws/credentials; path-style or virtual-host
 *     addressing;
 *   - a pool of curl multi handles, each keeping its open connections;
 *     every attempt is a fresh easy handle run on one of them
 *     between requests (curl keeps a connection cache per handle);
 *   - one request function (hf_s3_request) that signs, sends, retries
 *     with capped exponential backoff and full jitter, counts every
 *     attempt, and maps the outcome to an errno through ONE table
 *     (hf_s3_errtab);
 *   - the operations: ranged GET, HEAD, PUT (conditional with
 *     If-None-Match: *, always one plain PUT; unconditional ones
 *     multipart above a threshold with parts uploaded in parallel),
 *     DELETE, DeleteObjects and ListObjectsV2, whose XML answers are
 *     parsed with libxml2.
 *
 * Why a conditional put is never multipart: fencing rests on "of two
 * conditional puts of one key exactly one lands", and servers differ on
 * CompleteMultipartUpload: Ceph RGW 16.2 honours If-None-Match on a
 * PutObject but ignores it on a Complete (the object is replaced).  A
 * plain PUT takes up to 5 GiB, which bounds segment objects.
 *
 * Secrets: the secret key, the session token and the Authorization
 * header are never formatted into a log line.  Error lines name the
 * operation, key, bucket, endpoint, HTTP status and S3's Code/Message.
 *
 * Thread safety: all operations may run concurrently on one handle; the
 * only shared mutable state is the handle pool (pool_lock) and the
 * counters (atomics in lib/objstore.c).
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
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>

#include "cleanup.h"
#include "log.h"
#include "objstore.h"
#include "strbuf.h"
#include "sigv4.h"

#define HF_S3_MIB ((size_t) 1024 * 1024)
#define HF_S3_MIN_PART (5 * HF_S3_MIB)
#define HF_S3_MAX_PARTS 10000
#define HF_S3_DELETE_BATCH 1000
#define HF_S3_ERRBODY_MAX 65536
/* The most a 2xx answer may hold unless the request says otherwise
 * (PUT, DELETE, multipart create and complete: a few hundred bytes). */
#define HF_S3_REPLY_SMALL ((size_t) 64 * 1024)
/* A ListObjectsV2 page or a DeleteObjects answer: 1000 entries of keys
 * up to 1024 bytes, each escaped at most 6 times over, plus the XML. */
#define HF_S3_REPLY_XML ((size_t) 16 * 1024 * 1024)
/* An attempt may take request_timeout_s plus the time its bytes need at
 * this rate (sent, and received so far): a server dripping an answer
 * cannot hold a request (or a thread, or shutdown) for ever. */
#define HF_S3_MIN_RATE ((uint64_t) 256 * 1024)
/* Default cap on the pages of one listing (100 million keys). */
#define HF_S3_LIST_MAX_PAGES 100000

struct hf_s3 {
  struct hf_objstore base;      /* base.priv == this */

  /* Immutable after open. */
  char *bucket;
  char *endpoint;               /* "http://host:port", no trailing '/' */
  char *scheme;                 /* "http" or "https" */
  char *host;                   /* Host header value (authority) */
  char *base_path;              /* "" or "/bucket" (path style), plus any
                                   path of the endpoint */
  char *region;
  char *access_key;
  char *secret_key;             /* never logged */
  char *session_token;          /* never logged */
  char *ca_file;
  char *desc;                   /* "s3://BUCKET at ENDPOINT" */
  bool tls_verify;
  bool unsigned_payload;
  unsigned connect_timeout_s;
  unsigned request_timeout_s;
  unsigned max_list_pages;
  unsigned max_retries;
  unsigned retry_base_ms;
  unsigned retry_max_ms;
  size_t multipart_threshold;
  size_t part_size;
  unsigned parallel_parts;

  /* pool_lock protects pool, npool and pool_cap: the idle curl multi
   * handles (with their connections).  A handle taken out of the pool
   * belongs to one request. */
  pthread_mutex_t pool_lock;
  CURLM **pool;
  size_t npool, pool_cap;
};

/* One request, as the operations describe it. */
struct hf_s3_req {
  const char *method;           /* GET HEAD PUT POST DELETE */
  const char *key;              /* NULL: the bucket itself */
  const char *query;            /* raw, already percent-encoded, or NULL */
  const void *body;             /* PUT/POST payload (borrowed) */
  size_t body_len;
  const char *payload_hash;     /* precomputed SHA-256 hex, or NULL */
  const char *content_md5;      /* base64, or NULL */
  bool if_none_match;           /* send If-None-Match: * */
  bool has_range;
  uint64_t range_start, range_end; /* inclusive */
  enum hf_objstore_op op;
  int max_retries;              /* -1: the store's setting */
  bool body_may_be_error;       /* CompleteMultipartUpload: a 200 may
                                   carry an <Error> document */
  size_t max_reply;             /* largest 2xx body accepted (not for
                                   ranged GETs: the range bounds them);
                                   0: HF_S3_REPLY_SMALL */
};

/* The answer to a request (the last attempt's). */
struct hf_s3_resp {
  long status;                  /* 0 if no HTTP answer */
  CURLcode cc;
  char curl_err[CURL_ERROR_SIZE + 128]; /* curl's, and our words on TLS */
  unsigned attempts;

  /* 2xx payload: a caller buffer of fixed size (fixed) or a growing
   * malloc'd buffer (then the caller frees buf). */
  char *buf;
  size_t len, cap;
  bool fixed;
  uint64_t skip;                /* bytes still to drop (Range ignored) */
  uint64_t range_start;         /* set by the request, for skip */
  bool want_range;
  size_t max;                   /* largest 2xx body accepted (growing
                                   buffer; a fixed one holds cap) */
  bool nobody;                  /* HEAD: Content-Length is the object's */
  bool too_big;                 /* the answer exceeded what it may hold */
  bool range_done;              /* Range ignored (200): the asked bytes
                                   are in, the rest was cut off */
  bool ebody_full;              /* error body capped, the rest cut off */
  bool timed_out;               /* the attempt ran out of time */
  uint64_t start_us;            /* the attempt's start */
  uint64_t allowed_us;          /* its time before counting bytes */
  uint64_t sent;                /* its request body size */

  /* Non-2xx payload (S3 error XML), malloc'd, capped. */
  char *ebuf;
  size_t elen;

  /* Headers. */
  char etag[128];
  int64_t mtime;
  uint64_t clen;
  bool have_clen;
  uint64_t total;               /* from Content-Range "bytes a-b/TOTAL" */
  bool have_total;

  /* Parsed from the error XML. */
  char code[64];
  char message[256];
};

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

/* ---- Small helpers ---- */

static pthread_once_t hf_s3_once = PTHREAD_ONCE_INIT;
static CURLcode hf_s3_global_rc;

static void
hf_s3_global_init (void)
{
  hf_s3_global_rc = curl_global_init (CURL_GLOBAL_DEFAULT);
  xmlInitParser ();
}

static const char *
hf_s3_keystr (const char *key)
{
  return key ? key : "";
}

/* Did TLS verification (or loading the CA file for it) fail?  Not
 * retried: the next attempt would fail the same way. */
static bool
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

/* Base64 MD5 of data into out (at least 25 bytes). */
static int
hf_s3_md5_b64 (const void *data, size_t len, char *out)
{
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0;

  if (EVP_Digest (data, len, md, &mdlen, EVP_md5 (), NULL) != 1)
    return EIO;
  EVP_EncodeBlock ((unsigned char *) out, md, (int) mdlen);
  return 0;
}

/* XML-escape s into b. */
static void
hf_s3_sbuf_xml (struct hf_strbuf *b, const char *s)
{
  char tmp[8];

  for (; *s; s++) {
    switch (*s) {
    case '&': hf_strbuf_adds (b, "&amp;"); break;
    case '<': hf_strbuf_adds (b, "&lt;"); break;
    case '>': hf_strbuf_adds (b, "&gt;"); break;
    case '"': hf_strbuf_adds (b, "&quot;"); break;
    case '\'': hf_strbuf_adds (b, "&apos;"); break;
    default:
      if ((unsigned char) *s < 0x20) {
        snprintf (tmp, sizeof tmp, "&#x%02x;", (unsigned char) *s);
        hf_strbuf_adds (b, tmp);
      }
      else
        hf_strbuf_add (b, s, 1);
    }
  }
}

/* Append "&name=ENCODED(value)" (or without '&' first) to a query. */
static void
hf_s3_sbuf_param (struct hf_strbuf *b, const char *name, const char *value)
{
  CLEANUP_FREE char *enc = NULL;

  if (b->len > 0)
    hf_strbuf_adds (b, "&");
  hf_strbuf_adds (b, name);
  if (value == NULL)
    return;
  hf_strbuf_adds (b, "=");
  enc = hf_sigv4_uri_encode (value, true);
  if (enc == NULL) {
    b->oom = true;
    return;
  }
  hf_strbuf_adds (b, enc);
}

/* ---- XML ---- */

static xmlNode *
hf_s3_xml_child (xmlNode *n, const char *name)
{
  for (n = n ? n->children : NULL; n; n = n->next)
    if (n->type == XML_ELEMENT_NODE
        && strcmp ((const char *) n->name, name) == 0)
      return n;
  return NULL;
}

/* Copy the text of n's child name into out (size outsz); "" if absent. */
static void
hf_s3_xml_text (xmlNode *n, const char *name, char *out, size_t outsz)
{
  xmlNode *c = hf_s3_xml_child (n, name);
  xmlChar *t;

  out[0] = '\0';
  if (c == NULL)
    return;
  t = xmlNodeGetContent (c);
  if (t) {
    snprintf (out, outsz, "%s", (const char *) t);
    xmlFree (t);
  }
}

/* The text of n's child name as a malloc'd string (NULL if absent). */
static char *
hf_s3_xml_strdup (xmlNode *n, const char *name)
{
  xmlNode *c = hf_s3_xml_child (n, name);
  xmlChar *t;
  char *r;

  if (c == NULL || (t = xmlNodeGetContent (c)) == NULL)
    return NULL;
  r = strdup ((const char *) t);
  xmlFree (t);
  return r;
}

static xmlDoc *
hf_s3_xml_parse (const char *buf, size_t len)
{
  if (buf == NULL || len == 0 || len > INT32_MAX)
    return NULL;
  return xmlReadMemory (buf, (int) len, NULL, NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR
                        | XML_PARSE_NOWARNING);
}

/* Fill rp->code / rp->message from an <Error> document. */
static void
hf_s3_parse_error (struct hf_s3_resp *rp, const char *buf, size_t len)
{
  xmlDoc *doc = hf_s3_xml_parse (buf, len);
  xmlNode *root;

  rp->code[0] = rp->message[0] = '\0';
  if (doc == NULL)
    return;
  root = xmlDocGetRootElement (doc);
  if (root && strcmp ((const char *) root->name, "Error") == 0) {
    hf_s3_xml_text (root, "Code", rp->code, sizeof rp->code);
    hf_s3_xml_text (root, "Message", rp->message, sizeof rp->message);
  }
  xmlFreeDoc (doc);
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
  else if (strcasecmp (h, "last-modified") == 0) {
    time_t t = curl_getdate (v, NULL);

    rp->mtime = t > 0 ? (int64_t) t : 0;
  }
  return size * nmemb;
}

/* The attempt's clock (curl calls this about once a second, also while
 * nothing arrives). */
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
  (void) ulnow;
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

static void
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
hf_s3_perform (CURLM *m, CURL *c)
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
      mc = curl_multi_poll (m, NULL, 0, 1000, NULL);
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

/* One attempt on multi handle m.  Returns 0 (the HTTP outcome is in rp)
 * or a local errno (ENOMEM, signing failure). */
static int
hf_s3_attempt (struct hf_s3 *s, CURLM *m, const struct hf_s3_req *rq,
               const char *path, const char *url, const char *payload_hash,
               struct hf_s3_resp *rp)
{
  struct hf_sigv4_header h[8];
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
  if (s->session_token)
    h[n++] = (struct hf_sigv4_header) { "x-amz-security-token",
                                        s->session_token };
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
  cred = (struct hf_sigv4_credentials) {
    s->access_key, s->secret_key, s->session_token
  };
  r = hf_sigv4_sign (&sr, &cred, s->region, "s3", amz_date,
                     NULL, NULL, &auth);
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
  rp->len = 0;
  rp->elen = 0;
  rp->skip = 0;
  rp->code[0] = rp->message[0] = '\0';
  rp->max = rq->max_reply ? rq->max_reply : HF_S3_REPLY_SMALL;
  rp->nobody = strcmp (rq->method, "HEAD") == 0;
  rp->too_big = rp->range_done = rp->ebody_full = rp->timed_out = false;
  rp->sent = rq->body_len;
  rp->allowed_us = (uint64_t) s->request_timeout_s * 1000000;
  rp->start_us = hf_objstore_now_us ();
  rp->cc = hf_s3_perform (m, c);
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
static int
hf_s3_request (struct hf_s3 *s, const struct hf_s3_req *rq,
               struct hf_s3_resp *rp)
{
  CLEANUP_FREE char *path = NULL, *url = NULL;
  char hash[65];
  const char *payload_hash;
  unsigned max_retries, attempt;
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
    bool retry = false;
    int r;

    r = hf_s3_attempt (s, c, rq, path, url, payload_hash, rp);
    lat = hf_objstore_now_us () - t0;
    rp->attempts = attempt + 1;
    err = r ? r : hf_s3_errno (rp, &retry);
    hf_objstore_count (&s->base, rq->op, lat,
                       err == 0 ? rp->len : 0,
                       err == 0 ? rq->body_len : 0,
                       (err == 0 || rp->status == 404 || rp->status == 412
                        || rp->status == 416) ? 0 : err);
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
    if (r || !retry || attempt >= max_retries)
      break;
    hf_objstore_count_retry (&s->base);
    hf_s3_backoff (s, attempt);
  }
  hf_s3_handle_give (s, c);
  return err;
}

/* Log one line about a failed operation and return err. */
static int
hf_s3_fail (struct hf_s3 *s, const char *op, const char *key,
            const struct hf_s3_resp *rp, int err)
{
  char detail[CURL_ERROR_SIZE + 400];
  char tries[40] = "";

  if (rp == NULL || (rp->status == 0 && rp->cc == CURLE_OK))
    snprintf (detail, sizeof detail, "%s", strerror (err));
  else if (rp->cc != CURLE_OK)
    snprintf (detail, sizeof detail, "%s", rp->curl_err);
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

#define HF_S3_REQ(...) ((struct hf_s3_req) { .max_retries = -1, __VA_ARGS__ })

/* ---- Operations ---- */

static int
hf_s3_get (struct hf_objstore *os, const char *key, uint64_t offset,
           size_t len, void *buf, size_t *got)
{
  struct hf_s3 *s = os->priv;
  struct hf_s3_resp rp = { .buf = buf, .cap = len, .fixed = true };
  struct hf_s3_req rq = HF_S3_REQ (.method = "GET", .key = key,
                                   .has_range = true, .range_start = offset,
                                   .range_end = offset + len - 1,
                                   .op = HF_OP_GET);
  int err;

  err = hf_s3_request (s, &rq, &rp);
  if (err == 0)
    *got = rp.len;
  else if (rp.status == 416) {
    *got = 0;
    err = 0;
  }
  else if (err != ENOENT)
    hf_s3_fail (s, "GET", key, &rp, err);
  hf_s3_resp_free (&rp);
  return err;
}

/* GET a whole object of at most max bytes into a malloc'd buffer; no
 * logging of ENOENT.  On success the caller owns *data. */
static int
hf_s3_get_whole (struct hf_s3 *s, const char *key, size_t max, void **data,
                 size_t *len, struct hf_s3_resp *rp)
{
  struct hf_s3_req rq = HF_S3_REQ (.method = "GET", .key = key,
                                   .op = HF_OP_GET, .max_reply = max);
  int err;

  if (max == 0)
    rq.max_reply = 1;            /* 0 means the default: one byte is
                                    still too many */
  err = hf_s3_request (s, &rq, rp);
  if (err == 0 && rp->len > max) {
    rp->status = 0;
    rp->cc = CURLE_WRITE_ERROR;
    snprintf (rp->curl_err, sizeof rp->curl_err, "the answer is larger "
              "than %zu bytes, the most this request expects", max);
    return EIO;
  }
  if (err == 0) {
    if (rp->buf == NULL && (rp->buf = malloc (1)) == NULL)
      return ENOMEM;
    if (rp->have_clen && rp->clen != rp->len)
      return EIO;                /* torn reply */
    *data = rp->buf;
    *len = rp->len;
    rp->buf = NULL;
  }
  return err;
}

static int
hf_s3_get_all (struct hf_objstore *os, const char *key, size_t max,
               void **data, size_t *len)
{
  struct hf_s3 *s = os->priv;
  struct hf_s3_resp rp = { 0 };
  int err;

  err = hf_s3_get_whole (s, key, max, data, len, &rp);
  if (err && err != ENOENT)
    hf_s3_fail (s, "GET", key, &rp, err);
  hf_s3_resp_free (&rp);
  return err;
}

static int
hf_s3_head (struct hf_objstore *os, const char *key,
            struct hf_objstore_info *info)
{
  struct hf_s3 *s = os->priv;
  struct hf_s3_resp rp = { 0 };
  struct hf_s3_req rq = HF_S3_REQ (.method = "HEAD", .key = key,
                                   .op = HF_OP_HEAD);
  int err;

  err = hf_s3_request (s, &rq, &rp);
  if (err == 0) {
    info->size = rp.have_clen ? rp.clen : 0;
    snprintf (info->etag, sizeof info->etag, "%s", rp.etag);
    info->mtime = rp.mtime;
  }
  else if (err != ENOENT)
    hf_s3_fail (s, "HEAD", key, &rp, err);
  hf_s3_resp_free (&rp);
  return err;
}

/* A conditional PUT was refused (412), or a retried multipart
 * Complete found its upload gone (404 NoSuchUpload): did one of OUR
 * earlier attempts land?  That happens when a write reached the server
 * but its answer was lost: our own retry, or curl's, which silently
 * resends a request once on a fresh connection when a reused one dies
 * before any answer (so even a single counted attempt may have been
 * sent twice).  The key is ours only if it holds exactly our bytes:
 * size first (HEAD), then the ETag, which is the MD5 of the bytes for a
 * plain PUT, and when that is not conclusive (multipart ETag, SSE) the
 * content itself.  Returns 0 if ours, EEXIST if not (also when the key
 * has gone again: it was not ours to claim), or the errno of a failed
 * HEAD/GET (logged). */
static int
hf_s3_landed (struct hf_s3 *s, const char *key, const void *data,
              size_t len)
{
  struct hf_s3_resp rp = { 0 };
  struct hf_s3_req rq = HF_S3_REQ (.method = "HEAD", .key = key,
                                   .op = HF_OP_HEAD);
  unsigned char md[EVP_MAX_MD_SIZE];
  unsigned int mdlen = 0, i;
  char md5hex[2 * EVP_MAX_MD_SIZE + 1];
  void *cur = NULL;
  size_t curlen = 0;
  bool same;
  int err;

  err = hf_s3_request (s, &rq, &rp);
  if (err == 0 && (!rp.have_clen || rp.clen != len))
    err = EEXIST;
  else if (err == 0
           && EVP_Digest (data, len, md, &mdlen, EVP_md5 (), NULL) == 1) {
    for (i = 0; i < mdlen; i++)
      snprintf (md5hex + 2 * i, 3, "%02x", md[i]);
    if (strcasecmp (rp.etag, md5hex) == 0)
      goto ours;
  }
  if (err == ENOENT)
    err = EEXIST;
  else if (err && err != EEXIST)
    hf_s3_fail (s, "HEAD (after a refused conditional write)", key, &rp,
                err);
  hf_s3_resp_free (&rp);
  if (err)
    return err;

  /* Same size, ETag not conclusive: compare the bytes. */
  memset (&rp, 0, sizeof rp);
  err = hf_s3_get_whole (s, key, len, &cur, &curlen, &rp);
  if (err == ENOENT)
    err = EEXIST;
  else if (err)
    hf_s3_fail (s, "GET (after a refused conditional write)", key, &rp,
                err);
  hf_s3_resp_free (&rp);
  if (err)
    return err;
  same = curlen == len && memcmp (cur, data, len) == 0;
  free (cur);
  if (!same)
    return EEXIST;
  hf_debug ("s3", "conditional PUT %s: an earlier attempt landed "
            "(content)", key);
  return 0;

 ours:
  hf_s3_resp_free (&rp);
  hf_debug ("s3", "conditional PUT %s: an earlier attempt landed (ETag)",
            key);
  return 0;
}

/* ---- Multipart ---- */

struct hf_s3_mpu {
  struct hf_s3 *s;
  const char *key;
  const char *upload_id_enc;    /* percent-encoded */
  const char *data;
  size_t len, part_size, nparts;
  char (*etags)[128];

  /* lock protects next and err. */
  pthread_mutex_t lock;
  size_t next;                  /* next part index to upload */
  int err;                      /* first error, 0 if none */
};

static void *
hf_s3_mpu_worker (void *opaque)
{
  struct hf_s3_mpu *m = opaque;

  for (;;) {
    struct hf_s3_resp rp = { 0 };
    char query[512];
    size_t i, off, n;
    int err;

    {
      ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&m->lock);
      if (m->err || m->next >= m->nparts)
        return NULL;
      i = m->next++;
    }
    off = i * m->part_size;
    n = m->len - off < m->part_size ? m->len - off : m->part_size;
    snprintf (query, sizeof query, "partNumber=%zu&uploadId=%s", i + 1,
              m->upload_id_enc);
    struct hf_s3_req rq = HF_S3_REQ (.method = "PUT", .key = m->key,
                                     .query = query, .body = m->data + off,
                                     .body_len = n, .op = HF_OP_PUT);
    err = hf_s3_request (m->s, &rq, &rp);
    if (err == 0 && rp.etag[0] == '\0')
      err = EIO;
    if (err == 0)
      snprintf (m->etags[i], sizeof m->etags[i], "%s", rp.etag);
    else {
      char what[64];

      snprintf (what, sizeof what, "PUT (multipart part %zu)", i + 1);
      hf_s3_fail (m->s, what, m->key, &rp, err);
      ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&m->lock);
      if (m->err == 0)
        m->err = err;
    }
    hf_s3_resp_free (&rp);
  }
}

static void
hf_s3_mpu_abort (struct hf_s3 *s, const char *key, const char *query)
{
  struct hf_s3_resp rp = { 0 };
  struct hf_s3_req rq = HF_S3_REQ (.method = "DELETE", .key = key,
                                   .query = query, .op = HF_OP_DELETE);
  int err;

  err = hf_s3_request (s, &rq, &rp);
  /* Servers without Abort (405/501) and already-gone uploads (404) leave
   * nothing we can do; the bucket's lifecycle rule cleans up. */
  if (err && rp.status != 404 && rp.status != 405 && rp.status != 501)
    hf_s3_fail (s, "DELETE (abort multipart upload)", key, &rp, err);
  hf_s3_resp_free (&rp);
}

/* An unconditional put by multipart upload (a conditional one is
 * always a plain PUT: see the top of the file). */
static int
hf_s3_put_multipart (struct hf_s3 *s, const char *key, const void *data,
                     size_t len)
{
  struct hf_s3_resp rp = { 0 };
  struct hf_s3_mpu m = { .s = s, .key = key, .data = data, .len = len };
  struct hf_strbuf body = { 0 };
  CLEANUP_FREE char *upload_id = NULL, *id_enc = NULL, *query = NULL;
  pthread_t th[64];
  size_t nth, i;
  xmlDoc *doc;
  int err;

  m.part_size = s->part_size;
  if ((len + m.part_size - 1) / m.part_size > HF_S3_MAX_PARTS)
    m.part_size = (len + HF_S3_MAX_PARTS - 1) / HF_S3_MAX_PARTS;
  m.nparts = (len + m.part_size - 1) / m.part_size;

  /* Create. */
  {
    struct hf_s3_req rq = HF_S3_REQ (.method = "POST", .key = key,
                                     .query = "uploads", .op = HF_OP_PUT);

    err = hf_s3_request (s, &rq, &rp);
  }
  if (err) {
    hf_s3_fail (s, "POST (create multipart upload)", key, &rp, err);
    hf_s3_resp_free (&rp);
    return err;
  }
  doc = hf_s3_xml_parse (rp.buf, rp.len);
  if (doc)
    upload_id = hf_s3_xml_strdup (xmlDocGetRootElement (doc), "UploadId");
  xmlFreeDoc (doc);
  hf_s3_resp_free (&rp);
  if (upload_id == NULL || *upload_id == '\0') {
    hf_error ("s3: POST (create multipart upload) '%s' in bucket %s at %s: "
              "no UploadId in the answer", key, s->bucket, s->endpoint);
    return EIO;
  }
  id_enc = hf_sigv4_uri_encode (upload_id, true);
  if (id_enc == NULL || asprintf (&query, "uploadId=%s", id_enc) < 0) {
    query = NULL;
    return ENOMEM;
  }
  m.upload_id_enc = id_enc;

  /* Parts. */
  m.etags = calloc (m.nparts, sizeof *m.etags);
  if (m.etags == NULL) {
    hf_s3_mpu_abort (s, key, query);
    return ENOMEM;
  }
  pthread_mutex_init (&m.lock, NULL);
  nth = s->parallel_parts;
  if (nth > m.nparts)
    nth = m.nparts;
  if (nth > sizeof th / sizeof th[0])
    nth = sizeof th / sizeof th[0];
  for (i = 1; i < nth; i++)
    if (pthread_create (&th[i], NULL, hf_s3_mpu_worker, &m) != 0)
      break;
  nth = i;
  hf_s3_mpu_worker (&m);         /* this thread is worker 0 */
  for (i = 1; i < nth; i++)
    pthread_join (th[i], NULL);
  pthread_mutex_destroy (&m.lock);
  err = m.err;

  /* Complete. */
  if (err == 0) {
    char tmp[64];

    hf_strbuf_adds (&body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                    "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws."
                    "com/doc/2006-03-01/\">");
    for (i = 0; i < m.nparts; i++) {
      snprintf (tmp, sizeof tmp, "<Part><PartNumber>%zu</PartNumber>",
                i + 1);
      hf_strbuf_adds (&body, tmp);
      hf_strbuf_adds (&body, "<ETag>\"");
      hf_s3_sbuf_xml (&body, m.etags[i]);
      hf_strbuf_adds (&body, "\"</ETag></Part>");
    }
    hf_strbuf_adds (&body, "</CompleteMultipartUpload>");
    if (body.oom)
      err = ENOMEM;
  }
  if (err == 0) {
    struct hf_s3_req rq = HF_S3_REQ (.method = "POST", .key = key,
                                     .query = query, .body = body.p,
                                     .body_len = body.len,
                                     .body_may_be_error = true,
                                     .op = HF_OP_PUT);

    err = hf_s3_request (s, &rq, &rp);
    if (err == ENOENT && strcmp (rp.code, "NoSuchUpload") == 0) {
      /* A resent Complete whose first copy completed finds the upload
       * gone: the object says whether that copy was ours. */
      err = hf_s3_landed (s, key, data, len);
      if (err == EEXIST)
        err = EIO;
    }
    if (err)
      hf_s3_fail (s, "POST (complete multipart upload)", key, &rp, err);
    hf_s3_resp_free (&rp);
  }
  if (err)
    hf_s3_mpu_abort (s, key, query);
  free (body.p);
  free (m.etags);
  return err;
}

static int
hf_s3_put (struct hf_objstore *os, const char *key, const void *data,
           size_t len, unsigned flags)
{
  struct hf_s3 *s = os->priv;
  struct hf_s3_resp rp = { 0 };
  int err;

  /* A conditional put is one plain PUT whatever its size (the top of
   * the file says why; hf_objstore_put bounds it). */
  if (!(flags & HF_PUT_IF_NONE_MATCH) && len >= s->multipart_threshold &&
      len > 0)
    return hf_s3_put_multipart (s, key, data, len);

  struct hf_s3_req rq = HF_S3_REQ (.method = "PUT", .key = key,
                                   .body = data, .body_len = len,
                                   .if_none_match =
                                     (flags & HF_PUT_IF_NONE_MATCH) != 0,
                                   .op = HF_OP_PUT);
  err = hf_s3_request (s, &rq, &rp);
  if (err == EEXIST && (flags & HF_PUT_IF_NONE_MATCH))
    err = hf_s3_landed (s, key, data, len);
  if (err && err != EEXIST)
    hf_s3_fail (s, "PUT", key, &rp, err);
  hf_s3_resp_free (&rp);
  return err;
}

static int
hf_s3_del (struct hf_objstore *os, const char *key)
{
  struct hf_s3 *s = os->priv;
  struct hf_s3_resp rp = { 0 };
  struct hf_s3_req rq = HF_S3_REQ (.method = "DELETE", .key = key,
                                   .op = HF_OP_DELETE);
  int err;

  err = hf_s3_request (s, &rq, &rp);
  if (err == ENOENT)
    err = 0;
  if (err)
    hf_s3_fail (s, "DELETE", key, &rp, err);
  hf_s3_resp_free (&rp);
  return err;
}

/* Errno for a per-key DeleteObjects error code. */
static int
hf_s3_code_errno (const char *code)
{
  if (strcmp (code, "NoSuchKey") == 0)
    return 0;
  if (strcmp (code, "AccessDenied") == 0)
    return EACCES;
  return EIO;
}

static int
hf_s3_delete_batch (struct hf_s3 *s, const char *const *keys, size_t n)
{
  struct hf_strbuf body = { 0 };
  struct hf_s3_resp rp = { 0 };
  char md5[32];
  xmlDoc *doc;
  xmlNode *root, *e;
  size_t i;
  int err;

  hf_strbuf_adds (&body, "<?xml version=\"1.0\" encoding=\"UTF-8\"?>"
                  "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">"
                  "<Quiet>true</Quiet>");
  for (i = 0; i < n; i++) {
    hf_strbuf_adds (&body, "<Object><Key>");
    hf_s3_sbuf_xml (&body, keys[i]);
    hf_strbuf_adds (&body, "</Key></Object>");
  }
  hf_strbuf_adds (&body, "</Delete>");
  if (body.oom) {
    free (body.p);
    return ENOMEM;
  }
  err = hf_s3_md5_b64 (body.p, body.len, md5);
  if (err == 0) {
    struct hf_s3_req rq = HF_S3_REQ (.method = "POST", .key = NULL,
                                     .query = "delete", .body = body.p,
                                     .body_len = body.len,
                                     .content_md5 = md5,
                                     .max_reply = HF_S3_REPLY_XML,
                                     .op = HF_OP_DELETE);

    err = hf_s3_request (s, &rq, &rp);
  }
  free (body.p);
  if (err) {
    hf_s3_fail (s, "POST (delete objects)", keys[0], &rp, err);
    hf_s3_resp_free (&rp);
    return err;
  }

  /* Per-key errors. */
  doc = hf_s3_xml_parse (rp.buf, rp.len);
  root = doc ? xmlDocGetRootElement (doc) : NULL;
  for (e = root ? root->children : NULL; e && err == 0; e = e->next) {
    char key[HF_OBJSTORE_KEY_MAX + 1], code[64], msg[256];

    if (e->type != XML_ELEMENT_NODE
        || strcmp ((const char *) e->name, "Error") != 0)
      continue;
    hf_s3_xml_text (e, "Key", key, sizeof key);
    hf_s3_xml_text (e, "Code", code, sizeof code);
    hf_s3_xml_text (e, "Message", msg, sizeof msg);
    err = hf_s3_code_errno (code);
    if (err)
      hf_error ("s3: DELETE '%s' (delete objects) in bucket %s at %s "
                "failed: %s: %s", key, s->bucket, s->endpoint, code, msg);
  }
  xmlFreeDoc (doc);
  hf_s3_resp_free (&rp);
  return err;
}

static int
hf_s3_delete_many (struct hf_objstore *os, const char *const *keys,
                   size_t n)
{
  struct hf_s3 *s = os->priv;
  size_t i, k;
  int err;

  for (i = 0; i < n; i += k) {
    k = n - i < HF_S3_DELETE_BATCH ? n - i : HF_S3_DELETE_BATCH;
    if ((err = hf_s3_delete_batch (s, keys + i, k)) != 0)
      return err;
  }
  return 0;
}

/* One listing in progress: what the caller asked for, and what the
 * server has said so far.  The server is not trusted to keep to the
 * prefix, the order or its own paging. */
struct hf_s3_listing {
  const char *prefix;           /* NULL or "" = all */
  const char *start_after;      /* NULL = from the start */
  hf_objstore_list_fn fn;
  void *opaque;
  bool stop;                    /* fn asked to stop */
  bool have_last;
  char last[HF_OBJSTORE_KEY_MAX + 1]; /* the last key passed to fn */
  uint64_t dropped;             /* keys outside prefix or out of order */
  char first_dropped[128];      /* the first of them, for the log line */
  unsigned page_keys;           /* keys of the current page passed on */
};

/* Pass one key of a page to the caller, unless it does not belong. */
static int
hf_s3_list_key (struct hf_s3_listing *ls, const char *k, uint64_t size)
{
  size_t plen = ls->prefix ? strlen (ls->prefix) : 0;
  int r;

  if (strncmp (k, ls->prefix ? ls->prefix : "", plen) != 0 ||
      strlen (k) > HF_OBJSTORE_KEY_MAX ||
      (ls->start_after && strcmp (k, ls->start_after) <= 0) ||
      (ls->have_last && strcmp (k, ls->last) <= 0)) {
    if (ls->dropped++ == 0)
      snprintf (ls->first_dropped, sizeof ls->first_dropped, "%s", k);
    return 0;
  }
  strcpy (ls->last, k);
  ls->have_last = true;
  ls->page_keys++;
  r = ls->fn (ls->opaque, k, size);
  if (r == 1)
    ls->stop = true;
  return r == 1 ? 0 : r;
}

/* Fail a page for what the server said: the line comes from the
 * caller's hf_s3_fail. */
static int
hf_s3_list_bad (struct hf_s3_resp *rp, const char *why)
{
  rp->status = 0;
  rp->cc = CURLE_WEIRD_SERVER_REPLY;
  snprintf (rp->curl_err, sizeof rp->curl_err, "%s", why);
  return EIO;
}

/* One ListObjectsV2 page.  max_keys 0 = server default.  ls NULL: only
 * the request (hf_objstore_s3_check).  On success, *next_token is the
 * next continuation token (malloc'd) or NULL at the end. */
static int
hf_s3_list_page (struct hf_s3 *s, struct hf_s3_listing *ls,
                 const char *token, unsigned max_keys, int max_retries,
                 char **next_token, struct hf_s3_resp *rp)
{
  struct hf_strbuf q = { 0 };
  xmlDoc *doc;
  xmlNode *root, *e;
  char tmp[32], trunc[16];
  int err;

  *next_token = NULL;
  hf_s3_sbuf_param (&q, "list-type", "2");
  if (ls && ls->prefix && *ls->prefix)
    hf_s3_sbuf_param (&q, "prefix", ls->prefix);
  if (token)
    hf_s3_sbuf_param (&q, "continuation-token", token);
  else if (ls && ls->start_after && *ls->start_after)
    hf_s3_sbuf_param (&q, "start-after", ls->start_after);
  if (max_keys) {
    snprintf (tmp, sizeof tmp, "%u", max_keys);
    hf_s3_sbuf_param (&q, "max-keys", tmp);
  }
  if (q.oom) {
    free (q.p);
    return ENOMEM;
  }

  struct hf_s3_req rq = HF_S3_REQ (.method = "GET", .key = NULL,
                                   .query = q.p, .op = HF_OP_LIST,
                                   .max_reply = max_keys && max_keys <= 10
                                     ? HF_S3_REPLY_SMALL : HF_S3_REPLY_XML);
  rq.max_retries = max_retries;
  err = hf_s3_request (s, &rq, rp);
  free (q.p);
  if (err)
    return err;
  if (ls == NULL)
    return 0;

  doc = hf_s3_xml_parse (rp->buf, rp->len);
  root = doc ? xmlDocGetRootElement (doc) : NULL;
  if (root == NULL
      || strcmp ((const char *) root->name, "ListBucketResult") != 0) {
    xmlFreeDoc (doc);
    return hf_s3_list_bad (rp, "malformed ListObjectsV2 answer");
  }
  ls->page_keys = 0;
  for (e = root->children; e && err == 0 && !ls->stop; e = e->next) {
    xmlChar *k;
    char size[32];

    if (e->type != XML_ELEMENT_NODE
        || strcmp ((const char *) e->name, "Contents") != 0)
      continue;
    k = NULL;
    {
      xmlNode *kn = hf_s3_xml_child (e, "Key");

      if (kn)
        k = xmlNodeGetContent (kn);
    }
    if (k == NULL)
      continue;
    hf_s3_xml_text (e, "Size", size, sizeof size);
    err = hf_s3_list_key (ls, (const char *) k, strtoull (size, NULL, 10));
    xmlFree (k);
  }
  hf_s3_xml_text (root, "IsTruncated", trunc, sizeof trunc);
  if (err == 0 && !ls->stop && strcmp (trunc, "true") == 0) {
    *next_token = hf_s3_xml_strdup (root, "NextContinuationToken");
    if (*next_token == NULL)
      err = hf_s3_list_bad (rp, "truncated ListObjectsV2 answer without a "
                            "continuation token");
    else if (token && strcmp (*next_token, token) == 0)
      err = hf_s3_list_bad (rp, "the server repeated its continuation "
                            "token (a listing without end)");
    else if (ls->page_keys == 0)
      err = hf_s3_list_bad (rp, "a truncated page without keys (of the "
                            "prefix, after the previous page's)");
    if (err) {
      free (*next_token);
      *next_token = NULL;
    }
  }
  xmlFreeDoc (doc);
  return err;
}

static int
hf_s3_list (struct hf_objstore *os, const char *prefix,
            const char *start_after, hf_objstore_list_fn fn, void *opaque)
{
  struct hf_s3 *s = os->priv;
  struct hf_s3_listing ls = { .prefix = prefix, .start_after = start_after,
                              .fn = fn, .opaque = opaque };
  char *token = NULL;
  unsigned pages = 0;
  int err;

  do {
    struct hf_s3_resp rp = { 0 };
    char *next = NULL;

    if (pages++ == s->max_list_pages) {
      hf_error ("s3: LIST %s%s%sin bucket %s at %s failed: more than %u "
                "pages (the server does not end the listing)",
                prefix && *prefix ? "'" : "", prefix ? prefix : "",
                prefix && *prefix ? "' " : "", s->bucket, s->endpoint,
                s->max_list_pages);
      err = EIO;
      break;
    }
    err = hf_s3_list_page (s, &ls, token, 0, -1, &next, &rp);
    if (err && (rp.status != 0 || rp.cc != CURLE_OK))
      hf_s3_fail (s, "LIST", prefix && *prefix ? prefix : NULL, &rp, err);
    hf_s3_resp_free (&rp);
    free (token);
    token = next;
  } while (err == 0 && token != NULL && !ls.stop);
  free (token);
  if (ls.dropped)
    hf_warn ("s3: LIST %s%s%sin bucket %s at %s: dropped %" PRIu64 " keys "
             "outside the requested prefix or out of order (the first: "
             "'%s')", prefix && *prefix ? "'" : "", prefix ? prefix : "",
             prefix && *prefix ? "' " : "", s->bucket, s->endpoint,
             ls.dropped, ls.first_dropped);
  return err;
}

static const char *
hf_s3_describe (struct hf_objstore *os)
{
  struct hf_s3 *s = os->priv;

  return s->desc;
}

static void
hf_s3_free (struct hf_s3 *s)
{
  size_t i;

  for (i = 0; i < s->npool; i++)
    curl_multi_cleanup (s->pool[i]);
  free (s->pool);
  pthread_mutex_destroy (&s->pool_lock);
  free (s->bucket);
  free (s->endpoint);
  free (s->scheme);
  free (s->host);
  free (s->base_path);
  free (s->region);
  free (s->access_key);
  if (s->secret_key) {
    memset (s->secret_key, 0, strlen (s->secret_key));
    free (s->secret_key);
  }
  if (s->session_token) {
    memset (s->session_token, 0, strlen (s->session_token));
    free (s->session_token);
  }
  free (s->ca_file);
  free (s->desc);
  free (s);
}

static void
hf_s3_close (struct hf_objstore *os)
{
  hf_s3_free (os->priv);
}

static const struct hf_objstore_ops hf_s3_ops = {
  .name = "s3",
  .get = hf_s3_get,
  .get_all = hf_s3_get_all,
  .head = hf_s3_head,
  .put = hf_s3_put,
  .del = hf_s3_del,
  .delete_many = hf_s3_delete_many,
  .list = hf_s3_list,
  .describe = hf_s3_describe,
  .close = hf_s3_close,
};

/* ---- Configuration ---- */

static char *
hf_s3_trim (char *p)
{
  char *e;

  while (*p == ' ' || *p == '\t')
    p++;
  e = p + strlen (p);
  while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n'
                   || e[-1] == '\r'))
    *--e = '\0';
  return p;
}

/* Read access key, secret and token of [profile] from an AWS shared
 * credentials file.  Missing file or section: nothing set, 0. */
static int
hf_s3_read_profile (const char *file, const char *profile, char **ak,
                    char **sk, char **tok)
{
  FILE *fp = fopen (file, "r");
  char line[4096];
  bool in = false;

  if (fp == NULL)
    return 0;
  while (fgets (line, sizeof line, fp)) {
    char *p = hf_s3_trim (line), *eq, **dst = NULL;

    if (*p == '#' || *p == ';' || *p == '\0')
      continue;
    if (*p == '[') {
      char *e = strchr (p, ']');

      if (e)
        *e = '\0';
      in = strcmp (hf_s3_trim (p + 1), profile) == 0;
      continue;
    }
    if (!in || (eq = strchr (p, '=')) == NULL)
      continue;
    *eq = '\0';
    p = hf_s3_trim (p);
    if (strcmp (p, "aws_access_key_id") == 0)
      dst = ak;
    else if (strcmp (p, "aws_secret_access_key") == 0)
      dst = sk;
    else if (strcmp (p, "aws_session_token") == 0)
      dst = tok;
    if (dst) {
      free (*dst);
      *dst = strdup (hf_s3_trim (eq + 1));
      if (*dst == NULL) {
        fclose (fp);
        return ENOMEM;
      }
    }
  }
  memset (line, 0, sizeof line);
  fclose (fp);
  return 0;
}

static const char *
hf_s3_env (const char *name)
{
  const char *v = getenv (name);

  return v && *v ? v : NULL;
}

static int
hf_s3_credentials (struct hf_s3 *s, const struct hf_s3_config *cfg)
{
  const char *ak = cfg->access_key, *sk = cfg->secret_key;
  const char *tok = cfg->session_token;
  const char *where = "the configuration";
  CLEANUP_FREE char *path = NULL;
  char *pak = NULL, *psk = NULL, *ptok = NULL;
  int err;

  if (ak == NULL && sk == NULL) {
    ak = hf_s3_env ("AWS_ACCESS_KEY_ID");
    sk = hf_s3_env ("AWS_SECRET_ACCESS_KEY");
    tok = tok ? tok : hf_s3_env ("AWS_SESSION_TOKEN");
    where = "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY";
  }
  if (ak == NULL && sk == NULL) {
    const char *profile = cfg->profile ? cfg->profile
      : hf_s3_env ("AWS_PROFILE") ? hf_s3_env ("AWS_PROFILE") : "default";
    const char *file = hf_s3_env ("AWS_SHARED_CREDENTIALS_FILE");

    if (file == NULL) {
      const char *home = hf_s3_env ("HOME");

      if (home && asprintf (&path, "%s/.aws/credentials", home) < 0)
        return ENOMEM;
      file = path;
    }
    if (file) {
      err = hf_s3_read_profile (file, profile, &pak, &psk, &ptok);
      if (err)
        goto out;
    }
    ak = pak;
    sk = psk;
    tok = tok ? tok : ptok;
    where = "the shared credentials file";
  }
  if (ak == NULL || sk == NULL || *ak == '\0' || *sk == '\0') {
    hf_error ("s3://%s: no credentials: set access-key and secret-key, "
              "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile "
              "in ~/.aws/credentials (AWS_PROFILE, "
              "AWS_SHARED_CREDENTIALS_FILE)%s%s", cfg->bucket,
              ak || sk ? "; only one of the pair was found in " : "",
              ak || sk ? where : "");
    err = EINVAL;
    goto out;
  }
  err = ENOMEM;
  if ((s->access_key = strdup (ak)) == NULL
      || (s->secret_key = strdup (sk)) == NULL
      || (tok && *tok && (s->session_token = strdup (tok)) == NULL))
    goto out;
  err = 0;
 out:
  free (pak);
  if (psk) {
    memset (psk, 0, strlen (psk));
    free (psk);
  }
  if (ptok) {
    memset (ptok, 0, strlen (ptok));
    free (ptok);
  }
  return err;
}

/* Split the endpoint into scheme, authority and path; build host and
 * base path for the addressing style. */
static int
hf_s3_endpoint (struct hf_s3 *s, const char *ep, bool virtual_host)
{
  const char *auth, *slash;
  CLEANUP_FREE char *authority = NULL, *epath = NULL;
  size_t n;

  if (hf_objstore_check_url ("endpoint", ep) != 0)
    return EINVAL;
  if (strncmp (ep, "http://", 7) == 0)
    auth = ep + 7;
  else if (strncmp (ep, "https://", 8) == 0)
    auth = ep + 8;
  else {
    hf_error ("s3: endpoint %s: expected http://HOST[:PORT] or "
              "https://HOST[:PORT]", ep);
    return EINVAL;
  }
  slash = strchr (auth, '/');
  authority = slash ? strndup (auth, slash - auth) : strdup (auth);
  epath = strdup (slash ? slash : "");
  s->scheme = strndup (ep, auth - 3 - ep);
  if (authority == NULL || epath == NULL || s->scheme == NULL)
    return ENOMEM;
  if (*authority == '\0' || strchr (authority, '@') || strchr (authority, '?')
      || strchr (epath, '?')) {
    hf_error ("s3: endpoint %s: expected http://HOST[:PORT] or "
              "https://HOST[:PORT]", ep);
    return EINVAL;
  }
  n = strlen (epath);
  while (n > 0 && epath[n - 1] == '/')
    epath[--n] = '\0';
  if (asprintf (&s->endpoint, "%s://%s%s", s->scheme, authority, epath) < 0) {
    s->endpoint = NULL;
    return ENOMEM;
  }
  if (virtual_host) {
    if (asprintf (&s->host, "%s.%s", s->bucket, authority) < 0
        || (s->base_path = strdup (epath)) == NULL)
      return ENOMEM;
  }
  else {
    if ((s->host = strdup (authority)) == NULL
        || asprintf (&s->base_path, "%s/%s", epath, s->bucket) < 0)
      return ENOMEM;
  }
  return 0;
}

int
hf_objstore_s3_open (const struct hf_s3_config *cfg,
                     struct hf_objstore **out)
{
  struct hf_s3 *s;
  const char *region, *ep;
  CLEANUP_FREE char *default_ep = NULL;
  bool virtual_host;
  int err;

  if (cfg == NULL || cfg->bucket == NULL || *cfg->bucket == '\0'
      || strchr (cfg->bucket, '/')) {
    hf_error ("s3: a bucket name is required (s3://BUCKET)");
    return EINVAL;
  }
  if (cfg->part_size != 0 && cfg->part_size < HF_S3_MIN_PART) {
    hf_error ("s3://%s: part size %zu is below S3's minimum of 5 MiB",
              cfg->bucket, cfg->part_size);
    return EINVAL;
  }
  pthread_once (&hf_s3_once, hf_s3_global_init);
  if (hf_s3_global_rc != CURLE_OK) {
    hf_error ("s3: curl_global_init: %s",
              curl_easy_strerror (hf_s3_global_rc));
    return EIO;
  }

  s = calloc (1, sizeof *s);
  if (s == NULL)
    return ENOMEM;
  pthread_mutex_init (&s->pool_lock, NULL);
  s->base.ops = &hf_s3_ops;
  s->base.priv = s;
  s->tls_verify = cfg->tls_verify;
  s->unsigned_payload = cfg->unsigned_payload;
  s->connect_timeout_s = cfg->connect_timeout_s ? cfg->connect_timeout_s : 10;
  s->request_timeout_s = cfg->request_timeout_s ? cfg->request_timeout_s
    : 60;
  s->max_list_pages = cfg->max_list_pages ? cfg->max_list_pages
    : HF_S3_LIST_MAX_PAGES;
  s->max_retries = cfg->max_retries ? cfg->max_retries : 8;
  s->retry_base_ms = cfg->retry_base_ms ? cfg->retry_base_ms : 100;
  s->retry_max_ms = cfg->retry_max_ms ? cfg->retry_max_ms : 10000;
  s->multipart_threshold = cfg->multipart_threshold
    ? cfg->multipart_threshold : 64 * HF_S3_MIB;
  s->part_size = cfg->part_size ? cfg->part_size : 16 * HF_S3_MIB;
  s->parallel_parts = cfg->parallel_parts ? cfg->parallel_parts : 4;

  err = ENOMEM;
  if ((s->bucket = strdup (cfg->bucket)) == NULL)
    goto fail;
  region = cfg->region ? cfg->region
    : hf_s3_env ("AWS_REGION") ? hf_s3_env ("AWS_REGION")
    : hf_s3_env ("AWS_DEFAULT_REGION") ? hf_s3_env ("AWS_DEFAULT_REGION")
    : "us-east-1";
  if ((s->region = strdup (region)) == NULL)
    goto fail;
  if (cfg->ca_file && (s->ca_file = strdup (cfg->ca_file)) == NULL)
    goto fail;

  ep = cfg->endpoint ? cfg->endpoint : hf_s3_env ("AWS_ENDPOINT_URL");
  virtual_host = cfg->virtual_host;
  if (ep == NULL) {
    if (asprintf (&default_ep, "https://s3.%s.amazonaws.com", region) < 0) {
      default_ep = NULL;
      goto fail;
    }
    ep = default_ep;
    virtual_host = true;
  }
  if ((err = hf_s3_endpoint (s, ep, virtual_host)) != 0)
    goto fail;
  if (s->ca_file && access (s->ca_file, R_OK) != 0) {
    err = errno;
    hf_error ("s3://%s: ca-file %s: %s", s->bucket, s->ca_file,
              strerror (err));
    goto fail;
  }
  if (!s->tls_verify && strcmp (s->scheme, "https") == 0)
    hf_warn ("s3://%s: TLS certificate verification is off "
             "(tls-verify=false): the endpoint %s is not authenticated",
             s->bucket, s->endpoint);
  if ((err = hf_s3_credentials (s, cfg)) != 0)
    goto fail;
  err = ENOMEM;
  if (asprintf (&s->desc, "s3://%s at %s", s->bucket, s->endpoint) < 0) {
    s->desc = NULL;
    goto fail;
  }
  hf_debug ("s3", "opened %s (region %s, %s addressing)", s->desc,
            s->region, virtual_host ? "virtual-host" : "path-style");
  *out = &s->base;
  return 0;

 fail:
  hf_s3_free (s);
  return err;
}

int
hf_objstore_s3_check (struct hf_objstore *os)
{
  struct hf_s3 *s = os->priv;
  struct hf_s3_resp rp = { 0 };
  char *token = NULL;
  int err;

  if (os->ops != &hf_s3_ops)
    return EINVAL;
  err = hf_s3_list_page (s, NULL, NULL, 1,
                         s->max_retries < 2 ? (int) s->max_retries : 2,
                         &token, &rp);
  free (token);
  if (err == 0)
    ;
  else if (hf_s3_tls_refused (rp.cc) || rp.cc == CURLE_WRITE_ERROR ||
           (rp.cc == CURLE_OPERATION_TIMEDOUT &&
            strncmp (rp.curl_err, "no complete answer", 18) == 0))
    /* It answered: TLS refused, or too much, or too slowly. */
    hf_error ("s3: endpoint %s for bucket %s: %s", s->endpoint, s->bucket,
              rp.curl_err);
  else if (rp.cc != CURLE_OK)
    hf_error ("s3: cannot reach endpoint %s for bucket %s: %s",
              s->endpoint, s->bucket, rp.curl_err);
  else if (rp.status == 404)
    hf_error ("s3: bucket %s does not exist at %s (HTTP 404 %s)",
              s->bucket, s->endpoint, rp.code[0] ? rp.code : "");
  else if (rp.status == 403 || rp.status == 401)
    hf_error ("s3: access to bucket %s at %s denied (HTTP %ld %s: %s); "
              "check the access key, secret key and region (%s)",
              s->bucket, s->endpoint, rp.status, rp.code, rp.message,
              s->region);
  else
    hf_s3_fail (s, "LIST", NULL, &rp, err);
  hf_s3_resp_free (&rp);
  return err;
}
