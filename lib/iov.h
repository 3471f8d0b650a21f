/* hyperfile: walking a list of buffers (struct iovec) as one byte
 * string, for the stores' gathered puts (hf_objstore_putv).
 *
 * A cursor is a position in such a list: the stores copy from it (the
 * s3 store's read callback, the encrypting store), cut pieces of it
 * into iovecs of their own (the directory store's chunked writes, the
 * s3 store's multipart parts, the fault store's torn prefix) and hash
 * it.  The list and its buffers are borrowed; nothing here allocates
 * except hf_iov_slice, whose result the caller frees.
 */
#ifndef HF_IOV_H
#define HF_IOV_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/uio.h>

struct hf_iov_cur {
  const struct iovec *iov;      /* borrowed */
  int cnt;                      /* iovecs at iov */
  int i;                        /* the current one (cnt: at the end) */
  size_t off;                   /* bytes of iov[i] already passed */
};

/* Sum of the lengths (SIZE_MAX if it overflows). */
extern size_t hf_iov_total (const struct iovec *iov, int cnt);

/* A cursor at the start of iov (cnt entries, borrowed). */
extern void hf_iov_start (struct hf_iov_cur *c, const struct iovec *iov,
                          int cnt);

/* Move on by n bytes (at most to the end); returns the bytes passed. */
extern size_t hf_iov_skip (struct hf_iov_cur *c, size_t n);

/* Copy up to n bytes from the cursor into dst and move on; returns the
 * bytes copied (less than n only at the end). */
extern size_t hf_iov_copy (struct hf_iov_cur *c, void *dst, size_t n);

/* Describe up to max_bytes from the cursor in at most max_iov entries
 * of out (caller's array), and move on past them; returns the entries
 * used (*bytes: their length), 0 at the end. */
extern int hf_iov_next (struct hf_iov_cur *c, struct iovec *out,
                        int max_iov, size_t max_bytes, size_t *bytes);

/* The len bytes at offset off of iov, as a new array (caller frees) of
 * *cnt entries; NULL if out of memory (errno ENOMEM).  len beyond the
 * end stops at the end. */
extern struct iovec *hf_iov_slice (const struct iovec *iov, int cnt,
                                   size_t off, size_t len, int *out_cnt);

/* Do the bytes of iov equal the len bytes at p? */
extern bool hf_iov_equal (const struct iovec *iov, int cnt, const void *p,
                          size_t len);

#endif /* HF_IOV_H */
