/* hyperfile: what the project's own programs reach beyond libhyperfile's
 * public API (libhyperfile/hyperfile.h).
 *
 * The admin command and the nbdkit plugin are the library's first
 * users: where the public calls cover what they do, they call those;
 * what only they need (the whole S3 configuration, the volume key, a
 * finer account of what failed for their exit codes, a store they
 * opened and checked themselves, engine tuning the public options do
 * not carry, the engine, store and cache behind a handle for metrics,
 * background GC and admin work) is declared here.
 * Not installed, and not exported from libhyperfile.so
 * (libhyperfile.syms keeps everything but the hf_file_* calls of
 * hyperfile.h local).
 */
#ifndef HF_FILE_INT_H
#define HF_FILE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "hyperfile.h"

#include "cache.h"
#include "crypt.h"
#include "objstore.h"
#include "volume.h"

/* Open url's store (creating a missing directory if create), contact
 * an S3 store once (a wrong endpoint, bucket or key is one clear error
 * now) and attach the volume's crypt store with key (NULL: none; an
 * encrypted volume is then ENOKEY).  On success *s and *prefix are the
 * caller's; on error they are unchanged and one log line said why. */
extern int hf_file_store_open (const char *url,
                               const struct hf_s3_config *c, bool create,
                               const struct hf_user_key *key,
                               struct hf_objstore **s, char **prefix);

/* Where hf_file_clone_ext stopped (the admin command gives each its own
 * exit code and message). */
enum hf_file_clone_step {
  HF_FILE_CLONE_ARGS,           /* a URL or at is malformed: EINVAL */
  HF_FILE_CLONE_PARENT_STORE,   /* the parent's store (ENOENT: no
                                   directory there) */
  HF_FILE_CLONE_PARENT,         /* the parent's history (ENOENT: no
                                   volume there) */
  HF_FILE_CLONE_RESOLVE,        /* at (EINVAL, ENOENT: no such point) */
  HF_FILE_CLONE_POINT,          /* the point cannot be cloned (nothing
                                   committed yet, or unreadable) */
  HF_FILE_CLONE_TARGET,         /* the clone's store */
  HF_FILE_CLONE_SAME,           /* EINVAL: both URLs name one volume;
                                   the only case not logged here */
  HF_FILE_CLONE_CREATE,         /* making the clone: EEXIST if a volume
                                   is there already */
};

/* hf_file_clone (the one implementation: the public call is this with
 * opts' S3 settings and no key) with the whole S3 configuration c for
 * both URLs (borrowed) and the volume key (NULL: none; an encrypted
 * parent's clone shares its data key, wrapped with key).  On error
 * *step (may be NULL) says where it stopped. */
extern int hf_file_clone_ext (const char *parent_url, const char *at,
                              const char *clone_url,
                              const struct hf_s3_config *c,
                              const struct hf_user_key *key,
                              enum hf_file_clone_step *step,
                              uint64_t *base_seq);

/* What hf_file_open_ext takes beyond the public options.  Zero/NULL
 * fields: as hf_file_open does. */
struct hf_file_ext {
  /* Use this store (borrowed: it must outlive the handle, which does
   * not close it) instead of opening url: the caller opened it, checked
   * it and passed it through hf_crypt_attach (and perhaps a fault
   * store).  opts' S3 fields are then not used. */
  struct hf_objstore *store;
  const char *prefix;           /* with store: the volume's key prefix
                                   (borrowed, copied) */
  /* S3 settings for what the handle reaches after open (a clone's
   * parents, the history): borrowed, must outlive the handle, used
   * instead of opts' S3 fields.  NULL: opts' (copied). */
  const struct hf_s3_config *s3;
  /* Engine options (copied) the public ones do not carry: dirty_limit,
   * wal_max_bytes, node_cache, at_seq, accept_older_head, timeouts...
   * The handle sets hooks, wal_dir and parent_cfg itself; opts'
   * segment_size and flush_interval_ms override when non-zero, its
   * READONLY and TAKEOVER flags add to readonly and takeover. */
  const struct hf_volume_options *vopts;
  /* The volume's uuid and block size when the caller read them already
   * (a read-only open before nbdkit forks): the cache then opens
   * without reading the descriptor again.  Borrowed, for the call. */
  const struct hf_volume_info *known;
};

/* hf_file_open with the extras above (ext may be NULL: the same as
 * hf_file_open).  Same contract: on success *out is the caller's, on
 * error *out is unchanged and one log line said why. */
extern int hf_file_open_ext (const char *url,
                             const struct hf_file_options *opts,
                             const struct hf_file_ext *ext,
                             struct hf_file **out);

/* The engine, store and cache behind an open handle, borrowed for its
 * lifetime (the cache is NULL without cache_dir).  For what the public
 * API does not cover: metrics, background GC, admin work.
 * Thread safe (immutable after open). */
extern struct hf_volume *hf_file_volume (struct hf_file *f);
extern struct hf_objstore *hf_file_store (struct hf_file *f);
extern struct hf_cache *hf_file_cache (struct hf_file *f);
extern const char *hf_file_prefix (struct hf_file *f);

#endif /* HF_FILE_INT_H */
