/* hyperfile: the S3 store's internals, shared by its files (not a
 * public header: lib/objstore.h is the contract, hf_objstore_s3_open
 * the way in).
 *
 * Where things live
 * -----------------
 *   objstore-s3.c  the store: open (endpoint, addressing, defaults), the
 *                  startup check, the vtable, GET/HEAD/PUT/DELETE,
 *                  multipart upload of unconditional PUTs, close
 *   s3-request.c   the request engine: status and curl error -> errno
 *                  (the one table), the pool of curl multi handles, one
 *                  signed attempt with its timeouts and reply caps, the
 *                  retry loop with backoff, the failure log line
 *   s3-xml.c       XML: building bodies, reading replies (<Error>,
 *                  ListObjectsV2 pages, DeleteObjects results) and the
 *                  two operations whose answers are XML documents
 *                  (DeleteObjects, ListObjectsV2)
 *   s3-creds.c     credentials: the AWS chain (config, environment, web
 *                  identity, the shared files with credential_process,
 *                  container, IMDSv2) and their refresh before expiry
 *   s3-fetch.c     fetching temporary credentials from STS, a container
 *                  endpoint, instance metadata or credential_process
 *   s3-express.c   S3 Express One Zone (directory buckets): the bucket
 *                  name and zonal endpoint, CreateSession and the
 *                  session credentials that sign every other request
 *
 * Threads: every operation may run concurrently on one struct hf_s3.
 * Its fields are immutable after hf_objstore_s3_open (tagged I) except
 * the handle pool (tagged P: under pool_lock, a leaf lock never held
 * across a request) and the credentials (tagged C: under cred_lock,
 * another leaf, never held across a fetch or a request) and a directory
 * bucket's session (xs: its own leaf lock, s3-express.c).  A struct
 * hf_s3_req or hf_s3_resp belongs to the
 * one thread making the request (multipart part workers each have
 * their own).  Counters are atomics in lib/objstore.c.
 *
 * Secrets: secret_key and session_token, and the Authorization header
 * built from them, are never formatted into a log line or an error.
 */
#ifndef HF_S3_INT_H
#define HF_S3_INT_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include <curl/curl.h>
#include <libxml/tree.h>

#include "objstore.h"
#include "strbuf.h"

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

/* One set of credentials.  Immutable once made; shared by the requests
 * signing with it (refs, under cred_lock) and freed by the last. */
struct hf_s3_cred {
  unsigned refs;                /* C */
  uint64_t gen;                 /* 1, 2, ... as they replace each other */
  char *access_key;
  char *secret_key;             /* never logged */
  char *session_token;          /* never logged; NULL if none */
  int64_t expires;              /* Unix time; 0: never */
  int64_t fetched;              /* Unix time it was made */
};

/* Where the credentials come from (s3-creds.c has the chain). */
enum hf_s3_source {
  HF_S3_SRC_STATIC,             /* parameters, environment, profile keys */
  HF_S3_SRC_WEB_IDENTITY,       /* STS AssumeRoleWithWebIdentity */
  HF_S3_SRC_PROCESS,            /* credential_process */
  HF_S3_SRC_CONTAINER,          /* ECS/EKS container endpoint */
  HF_S3_SRC_IMDS,               /* EC2 instance metadata, IMDSv2 */
};

struct hf_s3_provider {
  enum hf_s3_source kind;
  char *what;                   /* "profile X in FILE"... for messages */
  char *url;                    /* STS, container or IMDS endpoint */
  char *role_arn, *token_file, *session_name;   /* web identity */
  char *process;                /* credential_process command */
  char *auth_token;             /* container; never logged */
  char *auth_token_file;        /* container */
};

struct hf_s3 {
  struct hf_objstore base;      /* base.priv == this */

  /* I: immutable after open. */
  char *bucket;
  char *endpoint;               /* "http://host:port", no trailing '/' */
  char *scheme;                 /* "http" or "https" */
  char *host;                   /* Host header value (authority) */
  char *base_path;              /* "" or "/bucket" (path style), plus any
                                   path of the endpoint */
  char *region;
  char *ca_file;
  char *sse;                    /* x-amz-server-side-encryption or NULL */
  char *sse_kms_key_id;         /* ...-aws-kms-key-id or NULL */
  char *storage_class;          /* x-amz-storage-class or NULL */
  struct hf_s3_provider prov;   /* I: where credentials come from */
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
  /* A directory bucket (S3 Express One Zone): requests are signed for
   * service "s3express" with session credentials (s3-express.c, which
   * has its own lock), and listings come unordered (s3-xml.c). */
  bool express;
  struct hf_s3_express *xs;     /* NULL unless express; see s3-express.c */

  /* P: pool_lock protects pool, npool and pool_cap: the idle curl
   * multi handles (with their connections).  A handle taken out of the
   * pool belongs to one request. */
  pthread_mutex_t pool_lock;
  CURLM **pool;                 /* P */
  size_t npool, pool_cap;       /* P */

  /* C: cred_lock protects these; cred_cond wakes requests waiting for a
   * refresh (hf_s3_cred_get). */
  pthread_mutex_t cred_lock;
  pthread_cond_t cred_cond;
  struct hf_s3_cred *cred;      /* C: the current credentials */
  bool refreshing;              /* C: a thread is fetching new ones */
  uint64_t stale_gen;           /* C: the server called this generation
                                   and older ones expired */
  int64_t next_try;             /* C: no advisory refresh before this */
  int64_t fail_until;           /* C: a fetch failed: none before this */
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
  bool new_object;              /* PUT of an object, multipart create:
                                   send the SSE and storage class headers */
  bool has_range;
  uint64_t range_start, range_end; /* inclusive */
  enum hf_objstore_op op;
  int max_retries;              /* -1: the store's setting */
  bool body_may_be_error;       /* CompleteMultipartUpload: a 200 may
                                   carry an <Error> document */
  size_t max_reply;             /* largest 2xx body accepted (not for
                                   ranged GETs: the range bounds them);
                                   0: HF_S3_REPLY_SMALL */
  const atomic_bool *cancel;    /* borrowed, NULL: none; raised before
                                   the body is sent whole, the request
                                   is cut off: ECANCELED (objstore.h,
                                   hf_objstore_put_cancel) */
  bool base_credentials;        /* directory bucket: sign with the
                                   store's own credentials, not a
                                   session's (CreateSession itself) */
};

/* The answer to a request (the last attempt's). */
struct hf_s3_resp {
  long status;                  /* 0 if no HTTP answer */
  CURLcode cc;
  char curl_err[CURL_ERROR_SIZE + 128]; /* curl's, and our words on TLS */
  unsigned attempts;
  bool logged;                  /* the failure was logged where it
                                   happened (CreateSession, for a
                                   request that needed a session):
                                   hf_s3_fail and the callers' own
                                   messages say nothing more */

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
  const atomic_bool *cancel;    /* the request's, for the progress
                                   callback */
  bool cancelled;               /* the attempt was cut off by it */
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

  char bucket_region[64];       /* x-amz-bucket-region, or <Region> of
                                   the error XML */

  /* Parsed from the error XML. */
  char code[64];
  char message[256];
};

/* Build a request with the store's retry setting unless it says. */
#define HF_S3_REQ(...) ((struct hf_s3_req) { .max_retries = -1, __VA_ARGS__ })

struct hf_s3_listing;           /* s3-xml.c */

/* s3-request.c */
extern bool hf_s3_tls_refused (CURLcode cc);
extern void hf_s3_resp_free (struct hf_s3_resp *rp);
extern int hf_s3_request (struct hf_s3 *s, const struct hf_s3_req *rq,
                          struct hf_s3_resp *rp);
extern int hf_s3_fail (struct hf_s3 *s, const char *op, const char *key,
                       const struct hf_s3_resp *rp, int err);

/* s3-xml.c */
extern void hf_s3_sbuf_xml (struct hf_strbuf *b, const char *s);
extern xmlDoc *hf_s3_xml_parse (const char *buf, size_t len);
extern char *hf_s3_xml_strdup (xmlNode *n, const char *name);
extern void hf_s3_parse_error (struct hf_s3_resp *rp, const char *buf,
                               size_t len);
extern int hf_s3_delete_many (struct hf_objstore *os,
                              const char *const *keys, size_t n);
extern int hf_s3_list_page (struct hf_s3 *s, struct hf_s3_listing *ls,
                            const char *token, unsigned max_keys,
                            int max_retries, char **next_token,
                            struct hf_s3_resp *rp);
extern int hf_s3_list (struct hf_objstore *os, const char *prefix,
                       const char *start_after, hf_objstore_list_fn fn,
                       void *opaque);

/* s3-express.c */
struct hf_s3_session;
/* Is bucket a directory bucket name, NAME--ZONEID--x-s3?  If so and zone
 * is not NULL, the zone id is copied into zone (len bytes). */
extern bool hf_s3_express_bucket (const char *bucket, char *zone,
                                  size_t len);
/* Set up s->xs and, when endpoint is NULL, *default_ep (malloc'd, the
 * zonal endpoint https://s3express-ZONE.REGION.amazonaws.com).  Logs
 * what is wrong. */
extern int hf_s3_express_open (struct hf_s3 *s, char **default_ep);
extern void hf_s3_express_close (struct hf_s3 *s);
/* A usable session for one request attempt: *out is a reference the
 * caller drops with hf_s3_express_put.  Runs CreateSession when there
 * is none (or it has expired); when the current one nears its end, the
 * first caller to notice renews it while the others go on with it. */
extern int hf_s3_express_get (struct hf_s3 *s, struct hf_s3_session **out);
extern void hf_s3_express_put (struct hf_s3 *s, struct hf_s3_session *ss);
/* The session's credentials (borrowed while the reference is held). */
extern const char *hf_s3_session_key (const struct hf_s3_session *ss);
extern const char *hf_s3_session_secret (const struct hf_s3_session *ss);
extern const char *hf_s3_session_token (const struct hf_s3_session *ss);
/* Did the server refuse ss as expired or unknown?  Then forget it (if
 * it is still the current one) and return true: the caller retries the
 * request once with a new session. */
extern bool hf_s3_express_refused (struct hf_s3 *s, struct hf_s3_session *ss,
                                   const struct hf_s3_resp *rp);

/* s3-creds.c */
extern const char *hf_s3_env (const char *name);
extern char *hf_s3_trim (char *p);
/* Wipe a secret string and free it (NULL: nothing). */
extern void hf_s3_free_secret (char *p);
/* New credentials with one reference (tok may be NULL; expires 0:
 * never), or NULL without memory. */
extern struct hf_s3_cred *hf_s3_cred_new (const char *ak, const char *sk,
                                          const char *tok, int64_t expires);
/* The region of the config's profile in ~/.aws/config (or NULL);
 * caller frees. */
extern int hf_s3_profile_region (const struct hf_s3_config *cfg,
                                 char **region);
/* Choose the source and get the first credentials (logs why not). */
extern int hf_s3_credentials (struct hf_s3 *s,
                              const struct hf_s3_config *cfg);
extern void hf_s3_creds_free (struct hf_s3 *s);
/* The credentials to sign with now (refreshed first if due); give them
 * back with hf_s3_cred_put. */
extern struct hf_s3_cred *hf_s3_cred_get (struct hf_s3 *s);
extern void hf_s3_cred_put (struct hf_s3 *s, struct hf_s3_cred *c);
extern void hf_s3_cred_unref (struct hf_s3_cred *c);
/* The server said c expired: true if a refresh may help (the next
 * hf_s3_cred_get fetches new ones), false for fixed credentials. */
extern bool hf_s3_cred_expired (struct hf_s3 *s, struct hf_s3_cred *c);

/* s3-fetch.c */
extern int hf_s3_parse_time (const char *s, int64_t *t);
/* Fetch fresh credentials from s->prov (not HF_S3_SRC_STATIC).  On 0
 * *out is new (one reference); otherwise err says why, without
 * secrets, and nothing is logged. */
extern int hf_s3_fetch (struct hf_s3 *s, struct hf_s3_cred **out, char *err,
                        size_t errlen);

#endif /* HF_S3_INT_H */
