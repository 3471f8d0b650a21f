/* hyperfile: the object-store interface.
 *
 * Everything hyperfile keeps durably lives in an object store: a flat
 * namespace of immutable-by-convention objects named by keys.  The volume
 * engine only ever needs these operations, so a store is a small table of
 * function pointers (struct hf_objstore_ops) behind a handle.  Three stores
 * implement it:
 *
 *   dir    (objstore-dir.c)   a local directory; the embedded default
 *   s3     (objstore-s3.c)    AWS S3 and S3-compatible servers
 *   fault  (objstore-fault.c) wraps another store and injects failures
 *   crypt  (objstore-crypt.c) wraps a volume's store and encrypts it
 *                             (crypt.h: constructor and key handling)
 *
 * Keys are byte strings without NUL, at most HF_OBJSTORE_KEY_MAX bytes,
 * relative to the store's root (the bucket for s3, the directory for dir).
 * They may contain '/'.  List order is the lexicographic order of the key
 * bytes (as S3 ListObjectsV2 returns them).
 *
 * Errors: every function returns 0 on success or a positive errno:
 *   ENOENT     the key does not exist (get, head; never delete)
 *   EEXIST     conditional put: the key already exists
 *   EACCES     credentials rejected (HTTP 403) or permission denied
 *   EIO        the store failed (after retries), or returned garbage
 *   ETIMEDOUT  the store did not answer in time (after retries)
 *   ENOSPC     the store is full (dir: disk full)
 *   EFBIG      conditional put larger than HF_OBJSTORE_COND_PUT_MAX
 *   EINVAL     bad arguments (empty or too long key, ...)
 *   ENOMEM     out of memory
 *   ECANCELED  put: its cancel flag was raised before the object was
 *              sent whole (hf_objstore_put_cancel); it did not land
 * The store logs one line naming the operation, key and store when it
 * fails (except ENOENT from get/head, EEXIST from a conditional put and
 * ECANCELED, which are ordinary answers the caller decides about).
 *
 * Thread safety: every function may be called from any number of threads
 * at once on the same handle, except hf_objstore_close, which the caller
 * must call once, after all other calls have returned.
 */
#ifndef HF_OBJSTORE_H
#define HF_OBJSTORE_H

#include <errno.h>
#include <stdatomic.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define HF_OBJSTORE_KEY_MAX 1024

/* Kinds of request, for the counters. */
enum hf_objstore_op {
  HF_OP_GET = 0,
  HF_OP_HEAD,
  HF_OP_PUT,            /* whole-object PUT, and each multipart part */
  HF_OP_DELETE,         /* single DELETE, and each DeleteObjects batch */
  HF_OP_LIST,           /* each ListObjectsV2 page */
  HF_OP_SESSION,        /* each CreateSession (S3 Express One Zone) */
  HF_OP__MAX
};

/* Kinds of failed attempt, from their errno (hf_objstore_errkind). */
enum hf_objstore_errkind {
  HF_EK_TIMEOUT = 0,    /* ETIMEDOUT: no answer in time */
  HF_EK_AUTH,           /* EACCES, EPERM: credentials, policy */
  HF_EK_NOT_FOUND,      /* ENOENT */
  HF_EK_CONFLICT,       /* EEXIST, EBUSY: a condition failed */
  HF_EK_INVALID,        /* EINVAL, ENOTSUP, E2BIG: refused as asked */
  HF_EK_CORRUPT,        /* EBADMSG: a damaged answer or object */
  HF_EK_IO,             /* EIO: server errors, throttling, connections */
  HF_EK_OTHER,
  HF_EK__MAX
};
extern enum hf_objstore_errkind hf_objstore_errkind (int err);
/* "timeout", "auth", "not_found", "conflict", "invalid", "corrupt",
 * "io", "other": for metrics labels. */
extern const char *hf_objstore_errkind_name (enum hf_objstore_errkind k);

/* Counters.  All monotonic since the store was opened.  Requests are
 * counted per request sent to the backend (a retried request counts once
 * per attempt; retries are also counted separately). */
struct hf_objstore_stats {
  uint64_t requests[HF_OP__MAX];
  uint64_t errors[HF_OP__MAX];     /* attempts that failed, incl. retried */
  uint64_t errors_kind[HF_EK__MAX]; /* the same attempts by kind */
  uint64_t latency_us[HF_OP__MAX]; /* sum of attempt latencies */
  uint64_t retries;
  uint64_t bytes_in;               /* payload bytes received */
  uint64_t bytes_out;              /* payload bytes sent */
};

/* Object metadata from head. */
struct hf_objstore_info {
  uint64_t size;
  char etag[128];       /* opaque, quotes stripped; "" if unknown */
  int64_t mtime;        /* seconds since the epoch; 0 if unknown */
};

/* Flags for put. */
#define HF_PUT_IF_NONE_MATCH 0x1 /* create only: EEXIST if the key exists */

/* A conditional put is one request to the store (for s3 one plain PUT
 * with If-None-Match: *, never a multipart upload: some servers, Ceph
 * RGW 16.2 among them, ignore the condition on CompleteMultipartUpload),
 * so it is bounded by the largest single PUT S3 accepts. */
#define HF_OBJSTORE_COND_PUT_MAX ((uint64_t) 5 << 30)

/* Called once per key by list, in key order.  Return 0 to continue, 1 to
 * stop listing (list then returns 0), or a positive errno to abort (list
 * returns it).  key is borrowed for the duration of the call. */
typedef int (*hf_objstore_list_fn) (void *opaque, const char *key,
                                    uint64_t size);

struct hf_objstore;

/* The backend table.  Each function has the contract of the public
 * wrapper of the same name below; priv is the store's private data. */
struct hf_objstore_ops {
  const char *name;     /* "dir", "s3", "fault" */
  int (*get) (struct hf_objstore *s, const char *key, uint64_t offset,
              size_t len, void *buf, size_t *got);
  int (*get_all) (struct hf_objstore *s, const char *key, size_t max,
                  void **data, size_t *len);
  int (*head) (struct hf_objstore *s, const char *key,
               struct hf_objstore_info *info);
  int (*put) (struct hf_objstore *s, const char *key, const void *data,
              size_t len, unsigned flags, const atomic_bool *cancel);
  int (*del) (struct hf_objstore *s, const char *key);
  int (*delete_many) (struct hf_objstore *s, const char *const *keys,
                      size_t n);
  int (*list) (struct hf_objstore *s, const char *prefix,
               const char *start_after, hf_objstore_list_fn fn,
               void *opaque);
  /* Human-readable description for log lines: "s3://bucket at
   * http://127.0.0.1:9000", "dir:/var/lib/hf".  Never contains secrets. */
  const char *(*describe) (struct hf_objstore *s);
  void (*close) (struct hf_objstore *s);
  /* Optional (NULL: this store): the store whose counters stand for
   * this one's, for a wrapper that makes no request of its own. */
  struct hf_objstore *(*stats_store) (struct hf_objstore *s);
  /* Optional (NULL: false): see hf_objstore_lists_whole. */
  bool (*lists_whole) (struct hf_objstore *s);
};

/* The handle.  Stores allocate it (embedding or pointing to their private
 * state) and fill ops and priv; stats are updated by the stores with
 * hf_objstore_count (atomically). */
struct hf_objstore {
  const struct hf_objstore_ops *ops;
  void *priv;
  struct hf_objstore_stats stats;   /* update only via hf_objstore_count */
};

/* Read up to len bytes of key starting at offset into buf (caller owns
 * buf, at least len bytes).  *got is set to the number of bytes read,
 * which is less than len only when the object ends first; an offset at
 * or past the end of the object gives *got = 0 and returns 0. */
extern int hf_objstore_get (struct hf_objstore *s, const char *key,
                            uint64_t offset, size_t len, void *buf,
                            size_t *got);

/* Read a whole object of at most max bytes.  On success *data is a
 * malloc'd buffer the caller owns (free it) of *len bytes; on error
 * *data and *len are unchanged.  A larger object is EIO (logged), found
 * without reading more than max bytes of it: the store is not trusted
 * to send only what it should (callers pass the largest size they can
 * use, HF_OBJSTORE_SMALL_MAX for small control objects). */
extern int hf_objstore_get_all (struct hf_objstore *s, const char *key,
                                size_t max, void **data, size_t *len);

/* The bound for small control objects read whole (descriptors, leases,
 * snapshot and clone records). */
#define HF_OBJSTORE_SMALL_MAX ((size_t) 64 * 1024)

extern int hf_objstore_head (struct hf_objstore *s, const char *key,
                             struct hf_objstore_info *info);

/* Store data (borrowed) as the whole object key, atomically: readers see
 * either no object / the old one, or all of the new one.  With
 * HF_PUT_IF_NONE_MATCH the put fails with EEXIST if key exists, and of two
 * racing conditional puts of different bytes exactly one succeeds; such
 * a put is one request (see HF_OBJSTORE_COND_PUT_MAX; EFBIG above it).
 *
 * Lost answers: a conditional put may reach the store and land while its
 * answer is lost (a reset connection, a timeout); the store then retries
 * it (the s3 store, and curl below it, resend the request) and the retry
 * finds the key taken.  The put then reports success only if the object
 * under key is byte-for-byte data (the s3 store compares size, then the
 * ETag when it is the MD5 of the bytes, else the content itself), and
 * EEXIST otherwise, also when the key has gone again by then.  (The s3
 * store cannot tell its own resent request from an earlier put of the
 * same bytes, so there such a put succeeds too; the dir store, which
 * loses no answers, says EEXIST.)  If the comparison cannot be made, the
 * put fails with the errno of that read (EIO, ETIMEDOUT, ...): whether it
 * landed is unknown. */
extern int hf_objstore_put (struct hf_objstore *s, const char *key,
                            const void *data, size_t len, unsigned flags);

/* hf_objstore_put that can be called off.  cancel (borrowed, NULL:
 * never) is read while the put is under way; once it reads true before
 * the object has been sent whole, the put stops and returns ECANCELED
 * (not retried, not logged), and the object does not land: the s3 store
 * cuts its request off mid-body, so the server never has all of the
 * bytes its Content-Length (and a signed payload hash) announced, and
 * the dir store removes its temporary file before linking it.  After
 * the last byte has left, the answer is the store's (the put may have
 * landed): the put runs to it and says what it was.  The flag is read
 * before each attempt and at least every HF_OBJSTORE_CANCEL_POLL_MS
 * while a request waits on the network (s3), between chunks of at most
 * HF_OBJSTORE_CANCEL_CHUNK bytes (dir), and during injected delays
 * and holds (fault, which passes it on to its inner store).
 *
 * What it is for: a writer that learns it is fenced (volume-fence.c)
 * raises its flag, so its segment PUT in flight stops instead of
 * landing after the new writer has started: data would be safe either
 * way (the PUT is conditional), but a late PUT that landed first would
 * take the new writer's sequence number and stop it. */
#define HF_OBJSTORE_CANCEL_POLL_MS 100
#define HF_OBJSTORE_CANCEL_CHUNK ((size_t) 4 << 20)
extern int hf_objstore_put_cancel (struct hf_objstore *s, const char *key,
                                   const void *data, size_t len,
                                   unsigned flags,
                                   const atomic_bool *cancel);

/* Has cancel (NULL: never) been raised? */
static inline bool
hf_objstore_cancelled (const atomic_bool *cancel)
{
  return cancel != NULL && atomic_load_explicit (cancel,
                                                 memory_order_acquire);
}

/* Delete key.  Deleting a key that does not exist succeeds. */
extern int hf_objstore_delete (struct hf_objstore *s, const char *key);

/* Delete n keys (borrowed).  Missing keys are not an error.  The first
 * error is returned; keys before it may or may not have been deleted. */
extern int hf_objstore_delete_many (struct hf_objstore *s,
                                    const char *const *keys, size_t n);

/* Call fn for every key that starts with prefix (NULL or "" = all) and
 * sorts strictly after start_after (NULL = from the start), in order,
 * paging through any number of keys. */
extern int hf_objstore_list (struct hf_objstore *s, const char *prefix,
                             const char *start_after,
                             hf_objstore_list_fn fn, void *opaque);

extern const char *hf_objstore_describe (struct hf_objstore *s);

/* Does every listing cost all the pages of its directory, wherever it
 * stops or starts (an S3 directory bucket: unordered, no start-after,
 * so the store reads it whole and sorts it)?  A caller that would list
 * in batches, to stop early, then takes it all at once instead of
 * paying a whole listing per batch.  Wrappers answer for the store
 * their counters stand for (stats_store). */
extern bool hf_objstore_lists_whole (struct hf_objstore *s);

/* The name of the volume at prefix in s for messages, in buf (caller
 * owns, len bytes, truncated to fit): "s3://bucket/prefix at ENDPOINT",
 * "dir:/root/prefix"; describe's text for an empty prefix.  Returns
 * buf. */
#define HF_OBJSTORE_NAME_MAX 1024
extern const char *hf_objstore_name (struct hf_objstore *s,
                                     const char *prefix, char *buf,
                                     size_t len);
/* The same in a buffer that lives until the end of the enclosing block,
 * for one log call's argument. */
#define HF_OBJSTORE_NAME(s, prefix)                                   \
  hf_objstore_name ((s), (prefix), (char [HF_OBJSTORE_NAME_MAX]) { 0 }, \
                    HF_OBJSTORE_NAME_MAX)

/* Copy a consistent-enough snapshot of the counters (each field read
 * atomically). */
extern void hf_objstore_get_stats (struct hf_objstore *s,
                                   struct hf_objstore_stats *out);

/* For stores: account one request attempt.  err is 0 or the errno of
 * the attempt. */
extern void hf_objstore_count (struct hf_objstore *s, enum hf_objstore_op op,
                               uint64_t latency_us, uint64_t bytes_in,
                               uint64_t bytes_out, int err);
extern void hf_objstore_count_retry (struct hf_objstore *s);

/* Release the store and everything it holds.  NULL is a no-op. */
extern void hf_objstore_close (struct hf_objstore *s);

/* Monotonic microseconds, for latency accounting. */
extern uint64_t hf_objstore_now_us (void);

/* Errors a caller may retry with backoff (a transient store failure);
 * anything else is final. */
static inline bool
hf_objstore_retryable (int e)
{
  return e == EIO || e == ETIMEDOUT || e == EAGAIN;
}

/* ---- One retry policy ----
 *
 * Transient errors (hf_objstore_retryable) are retried here, in one
 * place, for every module above the stores: up to HF_OBJSTORE_TRIES
 * attempts, sleeping HF_OBJSTORE_BACKOFF_US << i after failed attempt i
 * (2, 4, 8, 16, 32 ms: about 60 ms in all), each retry counted in the
 * store's stats.  The s3 store also retries each HTTP request on its own
 * (capped exponential backoff with jitter, objstore-s3.c); these helpers
 * cover the dir and fault stores, which do not, and operations of
 * several requests that must be restarted whole (a listing of several
 * pages, a read followed by a parse).  A final error, or the last
 * transient one, is returned as it is. */
#define HF_OBJSTORE_TRIES 6
#define HF_OBJSTORE_BACKOFF_US 2000

/* One attempt of an operation: 0 or a positive errno. */
typedef int (*hf_objstore_attempt_fn) (void *arg, unsigned attempt);

/* Run op (arg, attempt) for attempt 0, 1 ... until it returns something
 * other than a transient error or HF_OBJSTORE_TRIES attempts are made.
 * s (may be NULL) is the store whose retries are counted. */
extern int hf_objstore_retry (struct hf_objstore *s,
                              hf_objstore_attempt_fn op, void *arg);

/* hf_objstore_get, hf_objstore_get_all, hf_objstore_put and
 * hf_objstore_list under that policy (for a conditional put, see "Lost
 * answers" above: a retry that finds its own bytes succeeds).  For the listing, restart (may be NULL) is called with opaque
 * before every attempt, so that fn starts from a clean state. */
extern int hf_objstore_get_retry (struct hf_objstore *s, const char *key,
                                  uint64_t offset, size_t len, void *buf,
                                  size_t *got);
extern int hf_objstore_get_all_retry (struct hf_objstore *s, const char *key,
                                      size_t max, void **data, size_t *len);
extern int hf_objstore_put_retry (struct hf_objstore *s, const char *key,
                                  const void *data, size_t len,
                                  unsigned flags);
extern int hf_objstore_list_retry (struct hf_objstore *s, const char *prefix,
                                   const char *start_after,
                                   hf_objstore_list_fn fn, void *opaque,
                                   void (*restart) (void *opaque));

/* ---- Constructors ---- */

/* Directory store rooted at path (created, with parents, if create is
 * true and it is missing).  On success *out is a new store the caller
 * owns; on error *out is unchanged. */
extern int hf_objstore_dir_open (const char *path, bool create,
                                 struct hf_objstore **out);

/* S3 store configuration.  All strings are borrowed for the duration of
 * hf_objstore_s3_open, which copies what it keeps.  NULL means "not set":
 * credentials and region then come from the AWS chain (lib/s3-creds.c:
 * the environment, web identity, the profile in ~/.aws/credentials and
 * ~/.aws/config, container credentials, EC2 instance metadata). */
/* request-timeout= and request-retries= (plugin), --request-timeout
 * and --request-retries (admin command): their limits. */
#define HF_S3_REQUEST_TIMEOUT_MAX_S 86400u
#define HF_S3_MAX_RETRIES 100u
#define HF_S3_NO_RETRIES UINT_MAX

struct hf_s3_config {
  const char *bucket;           /* required */
  const char *endpoint;         /* "http://127.0.0.1:4569"; NULL = AWS */
  const char *region;           /* default: AWS_REGION, AWS_DEFAULT_REGION,
                                   the profile's, "us-east-1" */
  const char *access_key;
  const char *secret_key;
  const char *session_token;
  const char *profile;          /* profile in the shared files */
  const char *sse;              /* "AES256", "aws:kms" or NULL */
  const char *sse_kms_key_id;   /* with sse "aws:kms", or NULL */
  const char *storage_class;    /* x-amz-storage-class, or NULL */
  bool virtual_host;            /* bucket.host addressing */
  bool express;                 /* a directory bucket (S3 Express One
                                   Zone): implied by a bucket named
                                   NAME--ZONEID--x-s3; sessions from
                                   CreateSession, virtual-host
                                   addressing, the zonal endpoint
                                   https://s3express-ZONEID.REGION.
                                   amazonaws.com unless endpoint is
                                   set, unordered listings sorted here */
  bool tls_verify;              /* default true: callers must set it */
  const char *ca_file;
  bool unsigned_payload;        /* UNSIGNED-PAYLOAD instead of SHA-256 */
  unsigned connect_timeout_s;   /* 0 = default 10 */
  unsigned request_timeout_s;   /* 0 = default 60, at most
                                   HF_S3_REQUEST_TIMEOUT_MAX_S: an
                                   attempt fails (and is retried) when
                                   no byte moved for this long, or when
                                   it took longer than this plus its
                                   bytes at 256 KiB/s (its body, and the
                                   answer so far) */
  unsigned max_list_pages;      /* 0 = default 100000: a listing with
                                   more pages fails with EIO */
  unsigned max_retries;         /* retries of a failed attempt: 0 =
                                   default 8, HF_S3_NO_RETRIES none */
  unsigned retry_base_ms;       /* 0 = default 100 (first backoff) */
  unsigned retry_max_ms;        /* 0 = default 10000 (backoff cap) */
  size_t multipart_threshold;   /* 0 = default 64 MiB */
  size_t part_size;             /* 0 = default 16 MiB (>= 5 MiB) */
  unsigned parallel_parts;      /* 0 = default 4 */
  /* Not the S3 store's own: which parent URLs a clone may name
   * (lineage.h).  false: only the clone's own kind of store (an S3
   * volume's parent in the same endpoint, a directory volume's in a
   * directory); true: also an S3 parent for a directory volume.  An S3
   * volume's parent is never a local directory. */
  bool clone_parent_any;
};

/* S3 store.  Does not contact the server (use hf_objstore_s3_check for
 * that).  On success *out is a new store the caller owns; on error (bad
 * configuration, missing credentials) *out is unchanged and one log line
 * says what is wrong. */
extern int hf_objstore_s3_open (const struct hf_s3_config *cfg,
                                struct hf_objstore **out);

/* request-timeout=DURATION (duration.h), 1 s to
 * HF_S3_REQUEST_TIMEOUT_MAX_S, in whole seconds rounded up, into
 * cfg->request_timeout_s; and request-retries=N, 0 to
 * HF_S3_MAX_RETRIES, into cfg->max_retries.  0, or EINVAL (not a
 * duration or number) or ERANGE (outside the limits); cfg is unchanged
 * on error.  Log nothing: plugin and admin command say it their way
 * (HF_S3_REQUEST_TIMEOUT_RANGE, HF_S3_RETRIES_RANGE). */
extern int hf_s3_config_request_timeout (struct hf_s3_config *cfg,
                                         const char *s);
extern int hf_s3_config_retries (struct hf_s3_config *cfg, const char *s);
#define HF_S3_REQUEST_TIMEOUT_RANGE "a duration from 1s to 24h"
#define HF_S3_RETRIES_RANGE "a number from 0 to 100"

/* Contact the server once (a one-key LIST of the bucket) to report
 * unreachable endpoints, missing buckets (ENOENT) and rejected
 * credentials (EACCES) at startup, with one clear log line. */
extern int hf_objstore_s3_check (struct hf_objstore *s);

/* Fault injection.  Wraps inner (the fault store takes ownership of it
 * and closes it).  Each operation, before or after calling the inner
 * store, draws from a PRNG seeded with seed and with the given
 * probabilities (0..1) injects: */
struct hf_fault_config {
  uint64_t seed;
  double p_error;         /* fail with EIO before calling inner */
  double p_timeout;       /* fail with ETIMEDOUT before calling inner */
  double p_put_lost_ack;  /* put lands in inner, then report EIO */
  double p_short_read;    /* get returns fewer bytes than available:
                             reported as EIO (a torn reply) */
  double p_put_torn;      /* put: only a prefix of the object lands in
                             inner (a conditional put stays conditional)
                             and the store goes down (as with `down`)
                             before it answers EIO: what a store that
                             keeps the body of an interrupted PUT holds
                             after its writer died mid-upload */
  double torn_keep;       /* the prefix: this fraction of len (0 =
                             uniform random); always 1 to len - 1 bytes */
  uint64_t torn_nth;      /* also tear the torn_nth put (1-based) whose
                             key contains torn_key (NULL: any key) */
  const char *torn_key;   /* borrowed: must outlive the store */
  bool torn_kill;         /* after a torn put, SIGKILL this process: the
                             writer died mid-upload (crash tests) */
  unsigned max_delay_us;  /* uniform random delay per operation */
  uint64_t put_bw;        /* bytes/s, 0 = no cap: puts pass one at a
                             time through a link this fast (each waits
                             len / put_bw after the one before it),
                             a store slower than its clients */
  const char *hold_key;   /* borrowed (must outlive the store), NULL:
                             none: a put whose key contains it waits
                             before reaching inner until
                             hf_objstore_fault_release (or its cancel
                             flag: ECANCELED) */
  /* Fail every operation with EIO while true (toggle at run time with
   * hf_objstore_fault_set_down). */
  bool down;
};
extern int hf_objstore_fault_open (struct hf_objstore *inner,
                                   const struct hf_fault_config *cfg,
                                   struct hf_objstore **out);
extern void hf_objstore_fault_set_down (struct hf_objstore *s, bool down);
/* Replace probabilities at run time (tests switch faults on and off). */
extern void hf_objstore_fault_set_config (struct hf_objstore *s,
                                          const struct hf_fault_config *cfg);
/* Puts waiting in their hold (hold_key) now. */
extern unsigned hf_objstore_fault_held (struct hf_objstore *s);
/* Let every held put go on, and hold no more (hold_key = NULL). */
extern void hf_objstore_fault_release (struct hf_objstore *s);
/* Count of faults injected so far. */
extern uint64_t hf_objstore_fault_injected (struct hf_objstore *s);

/* Check a URL (url=, endpoint=, a clone's parent): EINVAL, logged with
 * what (a parameter name or "clone parent"), if it holds a control
 * character (a newline in a URL was accepted and stored in a clone's
 * descriptor). */
extern int hf_objstore_check_url (const char *what, const char *url);

/* Open a store from a URL: "s3://BUCKET" (cfg supplies the rest; its
 * bucket field is ignored), "file:///DIR" or a plain path.  *prefix_out
 * receives a malloc'd copy (caller frees) of the key prefix from the URL
 * ("PREFIX/" for s3://BUCKET/PREFIX, "" otherwise), normalised to end in
 * '/' when non-empty. */
extern int hf_objstore_open_url (const char *url,
                                 const struct hf_s3_config *cfg,
                                 bool create, struct hf_objstore **out,
                                 char **prefix_out);

/* The URL of a volume as it must be recorded where other processes
 * read it (a clone's parent, a registration): s3:// URLs unchanged, a
 * directory path or file:// URL as file:// of its absolute, resolved
 * path (the directory must exist).  NULL on error (logged, with errno
 * set).  Caller frees. */
extern char *hf_objstore_abs_url (const char *url);

#endif /* HF_OBJSTORE_H */
