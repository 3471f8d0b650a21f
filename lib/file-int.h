/* hyperfile: what the project's own programs reach beyond libhyperfile's
 * public API (libhyperfile/hyperfile.h).
 *
 * The admin command (and the nbdkit plugin) are the library's first
 * users: where the public calls cover what they do, they call those;
 * what only they need (the whole S3 configuration, the volume key, a
 * finer account of what failed for their exit codes) is declared here.
 * Not installed, and not exported from libhyperfile.so
 * (libhyperfile.syms keeps everything but the hf_file_* calls of
 * hyperfile.h local).
 */
#ifndef HF_FILE_INT_H
#define HF_FILE_INT_H

#include <stdbool.h>
#include <stdint.h>

#include "hyperfile.h"

#include "crypt.h"
#include "objstore.h"

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

#endif /* HF_FILE_INT_H */
