/* hyperfile: the S3 store's XML (see s3-int.h for the map).
 *
 * Bodies are built with hf_strbuf and escaped here; answers are parsed
 * with libxml2 (no network, no entities from outside).  What lives
 * here: reading an <Error> document, and the two operations whose
 * answers are XML documents: DeleteObjects (batches of up to 1000 keys,
 * per-key errors mapped to errno) and ListObjectsV2 (pages, each
 * checked: the server is not trusted to keep to the prefix, the order
 * or its own paging).  CreateMultipartUpload and its Complete build and
 * read their XML in objstore-s3.c with the helpers exported here.
 *
 * Lock rule: none.  A listing's state belongs to the one thread
 * walking it.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <libxml/parser.h>
#include <libxml/tree.h>
#include <openssl/evp.h>

#include "cleanup.h"
#include "log.h"
#include "objstore.h"
#include "s3-int.h"
#include "sigv4.h"
#include "strbuf.h"

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
void
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
char *
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

xmlDoc *
hf_s3_xml_parse (const char *buf, size_t len)
{
  if (buf == NULL || len == 0 || len > INT32_MAX)
    return NULL;
  return xmlReadMemory (buf, (int) len, NULL, NULL,
                        XML_PARSE_NONET | XML_PARSE_NOERROR
                        | XML_PARSE_NOWARNING);
}

/* Fill rp->code / rp->message from an <Error> document. */
void
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
    /* PermanentRedirect and AuthorizationHeaderMalformed name the
     * bucket's region here too. */
    if (rp->bucket_region[0] == '\0')
      hf_s3_xml_text (root, "Region", rp->bucket_region,
                      sizeof rp->bucket_region);
  }
  xmlFreeDoc (doc);
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

int
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
  bool unordered;               /* a directory bucket's: keys come in
                                   any order (hf_s3_list sorts them) */
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
      (!ls->unordered && ls->have_last && strcmp (k, ls->last) <= 0)) {
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
int
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
    else if (ls->page_keys == 0 && !ls->unordered)
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

/* ---- Directory buckets: unordered listings ----
 *
 * A directory bucket (S3 Express One Zone) lists keys in no particular
 * order, takes only prefixes that end in '/' and has no start-after.
 * The store's contract is a listing in key order from start_after, so
 * there every listing is read whole (the prefix cut back to its last
 * '/', the rest filtered here), sorted, and then passed on: one LIST
 * page per 1,000 keys of the directory, whatever the caller stops at. */

struct hf_s3x_entry {
  char *key;
  uint64_t size;
};

struct hf_s3x_all {
  const char *prefix;           /* the caller's, "" for all */
  size_t plen;
  struct hf_s3x_entry *v;
  size_t n, cap;
};

static int
hf_s3x_collect (void *opaque, const char *key, uint64_t size)
{
  struct hf_s3x_all *a = opaque;

  if (strncmp (key, a->prefix, a->plen) != 0)
    return 0;
  if (a->n == a->cap) {
    size_t nc = a->cap ? a->cap * 2 : 256;
    struct hf_s3x_entry *nv = realloc (a->v, nc * sizeof *nv);

    if (nv == NULL)
      return ENOMEM;
    a->v = nv;
    a->cap = nc;
  }
  if ((a->v[a->n].key = strdup (key)) == NULL)
    return ENOMEM;
  a->v[a->n++].size = size;
  return 0;
}

static int
hf_s3x_cmp (const void *x, const void *y)
{
  const struct hf_s3x_entry *a = x, *b = y;

  return strcmp (a->key, b->key);
}

static int hf_s3_list_pages (struct hf_s3 *s, struct hf_s3_listing *ls,
                             const char *prefix);

static int
hf_s3x_list (struct hf_s3 *s, const char *prefix, const char *start_after,
             hf_objstore_list_fn fn, void *opaque)
{
  struct hf_s3x_all a = { .prefix = prefix ? prefix : "" };
  struct hf_s3_listing ls = { .fn = hf_s3x_collect, .opaque = &a,
                              .unordered = true };
  CLEANUP_FREE char *dir = NULL;
  const char *slash;
  size_t i, dups = 0;
  int err;

  a.plen = strlen (a.prefix);
  slash = strrchr (a.prefix, '/');
  dir = strndup (a.prefix, slash ? (size_t) (slash + 1 - a.prefix) : 0);
  if (dir == NULL)
    return ENOMEM;
  ls.prefix = dir;
  err = hf_s3_list_pages (s, &ls, prefix);
  if (err == 0)
    qsort (a.v, a.n, sizeof *a.v, hf_s3x_cmp);
  for (i = 0; err == 0 && i < a.n; i++) {
    if (i > 0 && strcmp (a.v[i].key, a.v[i - 1].key) == 0) {
      dups++;                   /* listed twice: once is enough */
      continue;
    }
    if (start_after && strcmp (a.v[i].key, start_after) <= 0)
      continue;
    err = fn (opaque, a.v[i].key, a.v[i].size);
    if (err == 1) {
      err = 0;
      break;
    }
  }
  if (dups)
    hf_debug ("s3", "LIST '%s' in bucket %s: %zu keys listed twice",
              dir, s->bucket, dups);
  for (i = 0; i < a.n; i++)
    free (a.v[i].key);
  free (a.v);
  return err;
}

int
hf_s3_list (struct hf_objstore *os, const char *prefix,
            const char *start_after, hf_objstore_list_fn fn, void *opaque)
{
  struct hf_s3 *s = os->priv;
  struct hf_s3_listing ls = { .prefix = prefix, .start_after = start_after,
                              .fn = fn, .opaque = opaque };

  if (s->express)
    return hf_s3x_list (s, prefix, start_after, fn, opaque);
  return hf_s3_list_pages (s, &ls, prefix);
}

/* Every page of listing ls (prefix: for the log lines). */
static int
hf_s3_list_pages (struct hf_s3 *s, struct hf_s3_listing *ls,
                  const char *prefix)
{
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
    err = hf_s3_list_page (s, ls, token, 0, -1, &next, &rp);
    if (err && (rp.status != 0 || rp.cc != CURLE_OK))
      hf_s3_fail (s, "LIST", prefix && *prefix ? prefix : NULL, &rp, err);
    hf_s3_resp_free (&rp);
    free (token);
    token = next;
  } while (err == 0 && token != NULL && !ls->stop);
  free (token);
  if (ls->dropped)
    hf_warn ("s3: LIST %s%s%sin bucket %s at %s: dropped %" PRIu64 " keys "
             "outside the requested prefix or out of order (the first: "
             "'%s')", prefix && *prefix ? "'" : "", prefix ? prefix : "",
             prefix && *prefix ? "' " : "", s->bucket, s->endpoint,
             ls->dropped, ls->first_dropped);
  return err;
}
