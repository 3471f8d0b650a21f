/* hyperfile: the S3 object store (AWS S3 and S3-compatible servers).
 * See s3-int.h for the map of its files.
 *
 * What lives here: opening the store (defaults, region, endpoint and
 * path-style or virtual-host addressing; credentials come from
 * s3-creds.c; a directory bucket's zonal endpoint and sessions from
 * s3-express.c), the startup check, the vtable, and the operations that
 * are plain requests: ranged GET, HEAD, PUT (conditional with
 * If-None-Match: *, always one plain PUT; unconditional ones multipart
 * above a threshold with parts uploaded in parallel) and DELETE.  Each
 * becomes one or more requests through hf_s3_request (s3-request.c),
 * signed with AWS Signature V4 (lib/sigv4.c).
 *
 * Why a conditional put is never multipart: fencing rests on "of two
 * conditional puts of one key exactly one lands", and servers differ on
 * CompleteMultipartUpload: Ceph RGW 16.2 honours If-None-Match on a
 * PutObject but ignores it on a Complete (the object is replaced).  A
 * plain PUT takes up to 5 GiB, which bounds segment objects.
 *
 * Lock rule: none taken here.  All operations may run concurrently on
 * one handle; struct hf_s3 is immutable after open except its handle
 * pool (pool_lock, s3-request.c).  Multipart part workers share only
 * their struct hf_s3_mpu, whose comment says what guards each field.
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
#include "duration.h"
#include "log.h"
#include "objstore.h"
#include "s3-int.h"
#include "strbuf.h"
#include "sigv4.h"

/* ---- Library initialisation (once per process) ---- */

static pthread_once_t hf_s3_once = PTHREAD_ONCE_INIT;
static CURLcode hf_s3_global_rc;

static void
hf_s3_global_init (void)
{
  hf_s3_global_rc = curl_global_init (CURL_GLOBAL_DEFAULT);
  xmlInitParser ();
}

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

/* One multipart upload, shared by its part workers.  The fields above
 * lock are set before the workers start and then only read, except
 * etags[i], written by the one worker that took part i (the caller
 * reads them after joining every worker). */
struct hf_s3_mpu {
  struct hf_s3 *s;
  const char *key;
  const char *upload_id_enc;    /* percent-encoded */
  const char *data;
  size_t len, part_size, nparts;
  char (*etags)[128];
  const atomic_bool *cancel;    /* the put's (objstore.h) */

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
                                     .body_len = n, .op = HF_OP_PUT,
                                     .cancel = m->cancel);
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
                     size_t len, const atomic_bool *cancel)
{
  struct hf_s3_resp rp = { 0 };
  struct hf_s3_mpu m = { .s = s, .key = key, .data = data, .len = len,
                         .cancel = cancel };
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
                                     .query = "uploads", .new_object = true,
                                     .op = HF_OP_PUT);

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
  /* Called off: no Complete (the upload is aborted below). */
  if (err == 0 && hf_objstore_cancelled (cancel))
    err = ECANCELED;

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
           size_t len, unsigned flags, const atomic_bool *cancel)
{
  struct hf_s3 *s = os->priv;
  struct hf_s3_resp rp = { 0 };
  int err;

  /* A conditional put is one plain PUT whatever its size (the top of
   * the file says why; hf_objstore_put bounds it). */
  if (!(flags & HF_PUT_IF_NONE_MATCH) && len >= s->multipart_threshold &&
      len > 0)
    return hf_s3_put_multipart (s, key, data, len, cancel);

  struct hf_s3_req rq = HF_S3_REQ (.method = "PUT", .key = key,
                                   .body = data, .body_len = len,
                                   .if_none_match =
                                     (flags & HF_PUT_IF_NONE_MATCH) != 0,
                                   .new_object = true, .op = HF_OP_PUT,
                                   .cancel = cancel);
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
  hf_s3_creds_free (s);
  free (s->ca_file);
  free (s->sse);
  free (s->sse_kms_key_id);
  free (s->storage_class);
  free (s->desc);
  hf_s3_express_close (s);
  free (s);
}

static void
hf_s3_close (struct hf_objstore *os)
{
  hf_s3_free (os->priv);
}

static bool
hf_s3_lists_whole (struct hf_objstore *os)
{
  struct hf_s3 *s = os->priv;

  return s->express;
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
  .lists_whole = hf_s3_lists_whole,
};

/* ---- Open and the startup check ---- */

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

/* Server-side encryption and storage class, checked here so that the
 * plugin and the tool refuse the same values with the same words. */
static int
hf_s3_object_options (struct hf_s3 *s, const struct hf_s3_config *cfg)
{
  /* The storage classes S3 documents for PutObject, less GLACIER and
   * DEEP_ARCHIVE: their objects cannot be read without a restore, and
   * a volume reads its objects at any time. */
  static const char *const classes[] = {
    "STANDARD", "REDUCED_REDUNDANCY", "STANDARD_IA", "ONEZONE_IA",
    "INTELLIGENT_TIERING", "GLACIER_IR", "OUTPOSTS", "EXPRESS_ONEZONE",
  };
  size_t i;

  if (cfg->sse && strcmp (cfg->sse, "AES256") != 0 &&
      strcmp (cfg->sse, "aws:kms") != 0) {
    hf_error ("s3://%s: sse=%s: expected AES256 or aws:kms", cfg->bucket,
              cfg->sse);
    return EINVAL;
  }
  if (cfg->sse_kms_key_id &&
      (cfg->sse == NULL || strcmp (cfg->sse, "aws:kms") != 0)) {
    hf_error ("s3://%s: sse-kms-key-id= needs sse=aws:kms", cfg->bucket);
    return EINVAL;
  }
  if (cfg->sse_kms_key_id && (*cfg->sse_kms_key_id == '\0' ||
                              strpbrk (cfg->sse_kms_key_id, "\r\n"))) {
    hf_error ("s3://%s: sse-kms-key-id= is empty or holds a line break",
              cfg->bucket);
    return EINVAL;
  }
  if (cfg->storage_class) {
    for (i = 0; i < sizeof classes / sizeof classes[0]; i++)
      if (strcmp (cfg->storage_class, classes[i]) == 0)
        break;
    if (i == sizeof classes / sizeof classes[0]) {
      hf_error ("s3://%s: storage-class=%s: %s", cfg->bucket,
                cfg->storage_class,
                strcmp (cfg->storage_class, "GLACIER") == 0 ||
                strcmp (cfg->storage_class, "DEEP_ARCHIVE") == 0
                ? "objects in it must be restored before they can be read, "
                "so a volume cannot live there (GLACIER_IR can)"
                : "expected STANDARD, REDUCED_REDUNDANCY, STANDARD_IA, "
                "ONEZONE_IA, INTELLIGENT_TIERING, GLACIER_IR, OUTPOSTS or "
                "EXPRESS_ONEZONE");
      return EINVAL;
    }
  }
  if ((cfg->sse && (s->sse = strdup (cfg->sse)) == NULL) ||
      (cfg->sse_kms_key_id &&
       (s->sse_kms_key_id = strdup (cfg->sse_kms_key_id)) == NULL) ||
      (cfg->storage_class &&
       (s->storage_class = strdup (cfg->storage_class)) == NULL))
    return ENOMEM;
  return 0;
}

int
hf_s3_config_request_timeout (struct hf_s3_config *cfg, const char *s)
{
  uint64_t ns;
  int r = hf_parse_duration (s, &ns);

  if (r)
    return r;
  if (ns < UINT64_C (1000000000) ||
      ns > (uint64_t) HF_S3_REQUEST_TIMEOUT_MAX_S * 1000000000)
    return ERANGE;
  cfg->request_timeout_s = (ns + 999999999) / 1000000000;
  return 0;
}

int
hf_s3_config_retries (struct hf_s3_config *cfg, const char *s)
{
  char *end;
  unsigned long n;

  if (*s < '0' || *s > '9')     /* no sign, no space */
    return EINVAL;
  errno = 0;
  n = strtoul (s, &end, 10);
  if (*end)
    return EINVAL;
  if (errno == ERANGE || n > HF_S3_MAX_RETRIES)
    return ERANGE;
  cfg->max_retries = n == 0 ? HF_S3_NO_RETRIES : (unsigned) n;
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
  pthread_mutex_init (&s->cred_lock, NULL);
  pthread_cond_init (&s->cred_cond, NULL);
  s->base.ops = &hf_s3_ops;
  s->base.priv = s;
  s->tls_verify = cfg->tls_verify;
  s->unsigned_payload = cfg->unsigned_payload;
  s->connect_timeout_s = cfg->connect_timeout_s ? cfg->connect_timeout_s : 10;
  s->request_timeout_s = cfg->request_timeout_s ? cfg->request_timeout_s
    : 60;
  s->max_list_pages = cfg->max_list_pages ? cfg->max_list_pages
    : HF_S3_LIST_MAX_PAGES;
  s->max_retries = cfg->max_retries == HF_S3_NO_RETRIES ? 0
    : cfg->max_retries ? cfg->max_retries : 8;
  s->retry_base_ms = cfg->retry_base_ms ? cfg->retry_base_ms : 100;
  s->retry_max_ms = cfg->retry_max_ms ? cfg->retry_max_ms : 10000;
  s->multipart_threshold = cfg->multipart_threshold
    ? cfg->multipart_threshold : 64 * HF_S3_MIB;
  s->part_size = cfg->part_size ? cfg->part_size : 16 * HF_S3_MIB;
  s->parallel_parts = cfg->parallel_parts ? cfg->parallel_parts : 4;

  err = ENOMEM;
  if ((s->bucket = strdup (cfg->bucket)) == NULL)
    goto fail;
  if ((err = hf_s3_object_options (s, cfg)) != 0)
    goto fail;
  /* The region: region=, AWS_REGION, AWS_DEFAULT_REGION, the profile's
   * region in ~/.aws/config, us-east-1. */
  region = cfg->region ? cfg->region
    : hf_s3_env ("AWS_REGION") ? hf_s3_env ("AWS_REGION")
    : hf_s3_env ("AWS_DEFAULT_REGION") ? hf_s3_env ("AWS_DEFAULT_REGION")
    : NULL;
  if (region == NULL && (err = hf_s3_profile_region (cfg, &s->region)) != 0)
    goto fail;
  err = ENOMEM;
  if (s->region == NULL &&
      (s->region = strdup (region ? region : "us-east-1")) == NULL)
    goto fail;
  region = s->region;
  if (cfg->ca_file && (s->ca_file = strdup (cfg->ca_file)) == NULL)
    goto fail;

  ep = cfg->endpoint ? cfg->endpoint : hf_s3_env ("AWS_ENDPOINT_URL");
  virtual_host = cfg->virtual_host;
  s->express = cfg->express || hf_s3_express_bucket (s->bucket, NULL, 0);
  if (s->express && cfg->storage_class
      && strcmp (cfg->storage_class, "EXPRESS_ONEZONE") != 0) {
    hf_error ("s3://%s: storage-class=%s: a directory bucket stores "
              "EXPRESS_ONEZONE only", s->bucket, cfg->storage_class);
    err = EINVAL;
    goto fail;
  }
  if (s->express) {
    /* Zonal endpoints take virtual-host requests only. */
    if ((err = hf_s3_express_open (s, ep ? NULL : &default_ep)) != 0)
      goto fail;
    err = ENOMEM;
    if (ep == NULL)
      ep = default_ep;
    virtual_host = true;
  }
  else if (ep == NULL) {
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
  hf_debug ("s3", "opened %s (region %s, %s addressing%s%s%s%s%s)", s->desc,
            s->region, virtual_host ? "virtual-host" : "path-style",
            s->sse ? ", sse=" : "", s->sse ? s->sse : "",
            s->storage_class ? ", storage-class=" : "",
            s->storage_class ? s->storage_class : "",
            s->express ? ", directory bucket: S3 Express sessions" : "");
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
  if (err == 0 || rp.logged)
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
              "check the access key, secret key and region (%s; "
              "credentials from %s)",
              s->bucket, s->endpoint, rp.status, rp.code, rp.message,
              s->region, s->prov.what);
  else
    hf_s3_fail (s, "LIST", NULL, &rp, err);
  hf_s3_resp_free (&rp);
  return err;
}
