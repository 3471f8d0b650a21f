/* hyperfile: the S3 object store -- NOT YET IMPLEMENTED in this build.
 *
 * The S3 client (libcurl + lib/sigv4.c, retries, multipart, ListObjectsV2
 * paging) is being written; until it lands, s3:// URLs fail cleanly at
 * open with one clear error instead of misbehaving.  The signer it will
 * use (lib/sigv4.c) is complete and tested.
 */
#include <config.h>

#include <errno.h>

#include "log.h"
#include "objstore.h"

int
hf_objstore_s3_open (const struct hf_s3_config *cfg,
                     struct hf_objstore **out)
{
  hf_error ("s3://%s: the S3 store is not available in this build yet; "
            "use a directory store (url=DIR)",
            cfg && cfg->bucket ? cfg->bucket : "");
  return ENOTSUP;
}

int
hf_objstore_s3_check (struct hf_objstore *s)
{
  return ENOTSUP;
}
