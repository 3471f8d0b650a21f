/* hyperfile: client-side encryption (hyperfile-format(5), ENCRYPTION).
 *
 * A volume created with a key has a random 256-bit data key.  The
 * descriptor holds it wrapped (AES-256-GCM) by a key-encryption key
 * derived from the user's key: a key file of 32 random bytes (HKDF-SHA256)
 * or a passphrase (scrypt).  Every other object of the volume is stored
 * as a *sealed object*: the plaintext cut into HF_CRYPT_CHUNK-byte
 * chunks, each stored as
 *
 *   nonce (12) || AES-256-GCM ciphertext (n) || tag (16)
 *
 * under a key derived per object from the data key, the volume uuid and
 * the object's name, with the chunk's index and a last-chunk flag as
 * additional data.  The nonce is synthetic (SIV-like): the first 12
 * bytes of AES-256 (a second per-object key) of the GHASH of (index,
 * last, plaintext) under a third (GCM's tag over that as additional
 * data, with a fixed IV), so the same plaintext at the same place always
 * gives the same bytes (retries and rebuilt segments are safe) and two
 * different plaintexts share a nonce with probability about 2^-96 per
 * pair.  (The first release hashed with HMAC-SHA256, 2.5 times the CPU;
 * readers take the stored nonce as it is, so its objects open alike.)
 * The argument is in the man page.
 *
 * This module is the primitives only: key loading, KDFs, wrapping,
 * per-object keys, chunk seal/open and the size arithmetic.  The store
 * wrapper that applies them is objstore-crypt.c.
 *
 * Thread safety: every function is reentrant.  Keys are wiped
 * (OPENSSL_cleanse) when released.
 */
#ifndef HF_CRYPT_H
#define HF_CRYPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "format.h"

#define HF_CRYPT_KEY_SIZE 32
#define HF_CRYPT_CHUNK 4096
#define HF_CRYPT_NONCE 12
#define HF_CRYPT_TAG 16
#define HF_CRYPT_OVERHEAD (HF_CRYPT_NONCE + HF_CRYPT_TAG)      /* 28 */
#define HF_CRYPT_SCHUNK (HF_CRYPT_CHUNK + HF_CRYPT_OVERHEAD)  /* 4124 */

/* Default scrypt cost for passphrases: N = 2^15, r = 8, p = 1 (32 MiB,
 * about 0.1 s).  HF_CRYPT_SCRYPT_LOG2N in the environment lowers it for
 * tests only (10 to 20 accepted); the descriptor records what was used. */
#define HF_CRYPT_SCRYPT_LOG2N 15
#define HF_CRYPT_SCRYPT_R 8
#define HF_CRYPT_SCRYPT_P 1

/* The user's key, as given. */
struct hf_user_key {
  uint32_t kdf;                 /* HF_VD_KDF_KEYFILE or HF_VD_KDF_SCRYPT */
  uint8_t *secret;              /* owned, wiped on clear */
  size_t len;
  char *what;                   /* "key-file /path" or "passphrase", for
                                   messages; owned */
};

/* Read a key file: exactly 32 bytes, or 64 hex digits and an optional
 * newline.  The file must not be readable by group or others
 * (EPERM, logged).  Other content: EINVAL, logged. */
extern int hf_crypt_key_file (const char *path, struct hf_user_key *out);
/* A passphrase (borrowed; at least 1 byte). */
extern int hf_crypt_passphrase (const char *pass, struct hf_user_key *out);
/* Wipe and free.  NULL or an empty key is a no-op. */
extern void hf_user_key_clear (struct hf_user_key *k);

/* The crypt fields of a volume descriptor (format.h), decoded. */
struct hf_crypt_desc {
  uint32_t cipher;              /* HF_VD_CIPHER_AES256GCM */
  uint32_t kdf;                 /* HF_VD_KDF_* */
  uint8_t kdf_log2n, kdf_r, kdf_p;
  uint8_t kdf_salt[16];
  uint8_t key_check[16];
  uint8_t wrap_nonce[HF_CRYPT_NONCE];
  uint8_t wrap_key[HF_CRYPT_KEY_SIZE];
  uint8_t wrap_tag[HF_CRYPT_TAG];
};

/* A random data key. */
extern int hf_crypt_new_data_key (uint8_t dkey[HF_CRYPT_KEY_SIZE]);

/* The key check value of a data key (HMAC-SHA256 of a fixed label,
 * first 16 bytes): lets a clone check that its parent uses its key. */
extern int hf_crypt_key_check (const uint8_t dkey[HF_CRYPT_KEY_SIZE],
                               uint8_t out[16]);

/* Fill *cd to wrap dkey with uk: fresh salt and nonce, the KDF's
 * parameters, the key check.  aad (aad_len bytes) is what the wrap is
 * bound to: descriptor fields including the KDF fields and the key check
 * (objstore-crypt.c), so this is two calls: hf_crypt_wrap_prepare, then
 * (after encoding the descriptor) hf_crypt_wrap. */
extern int hf_crypt_wrap_prepare (struct hf_crypt_desc *cd,
                                  const struct hf_user_key *uk,
                                  const uint8_t dkey[HF_CRYPT_KEY_SIZE]);
extern int hf_crypt_wrap (struct hf_crypt_desc *cd,
                          const struct hf_user_key *uk,
                          const uint8_t dkey[HF_CRYPT_KEY_SIZE],
                          const uint8_t *aad, size_t aad_len);
/* Unwrap: 0 and dkey set; EKEYREJECTED if the tag does not verify (the
 * wrong key, or a descriptor changed since); EINVAL if uk is another
 * kind of key than the descriptor's (key file vs passphrase).  Logs
 * nothing: the caller names the volume. */
extern int hf_crypt_unwrap (const struct hf_crypt_desc *cd,
                            const struct hf_user_key *uk,
                            const uint8_t *aad, size_t aad_len,
                            uint8_t dkey[HF_CRYPT_KEY_SIZE]);

/* The keys of one object: HKDF output bytes 0-31 (enc), 64-95 (the
 * nonce's GHASH key) and 96-127 (the nonce's AES key); bytes 32-63 were
 * the HMAC key of the first release's nonces (hyperfile-format(5)) and
 * are not used. */
struct hf_crypt_objkey {
  uint8_t enc[HF_CRYPT_KEY_SIZE];
  /* OpenSSL contexts set up once for all of the object's chunks (a key
   * schedule costs as much as sealing a chunk): AES-256-GCM under enc,
   * AES-256-GCM under the GHASH key (run over additional data only, as
   * the nonce's hash) and AES-256-ECB under the nonce's AES key.  One
   * thread at a time. */
  void *cctx, *gctx, *ectx;
};
/* HKDF-SHA256 (ikm dkey, salt uuid, info "hyperfile object v1" NUL
 * name).  On success release *k with hf_crypt_obj_key_clear; on error
 * *k holds nothing to release (clearing it is harmless). */
extern int hf_crypt_obj_key (const uint8_t dkey[HF_CRYPT_KEY_SIZE],
                             const uint8_t uuid[HF_UUID_SIZE],
                             const char *name, struct hf_crypt_objkey *k);
extern void hf_crypt_obj_key_clear (struct hf_crypt_objkey *k);

/* Seal chunk idx (n plaintext bytes, n <= HF_CRYPT_CHUNK) into out
 * (n + HF_CRYPT_OVERHEAD bytes). */
extern int hf_crypt_seal_chunk (const struct hf_crypt_objkey *k,
                                const uint8_t uuid[HF_UUID_SIZE],
                                uint64_t idx, bool last, const uint8_t *pt,
                                size_t n, uint8_t *out);
/* Open a stored chunk (slen bytes, HF_CRYPT_OVERHEAD to
 * HF_CRYPT_SCHUNK) into pt (slen - HF_CRYPT_OVERHEAD bytes).  EBADMSG if
 * it does not verify as chunk idx with that last flag. */
extern int hf_crypt_open_chunk (const struct hf_crypt_objkey *k,
                                const uint8_t uuid[HF_UUID_SIZE],
                                uint64_t idx, bool last, const uint8_t *in,
                                size_t slen, uint8_t *pt);

/* Stored size of a plaintext of len bytes (an empty object is one empty
 * chunk). */
extern uint64_t hf_crypt_stored_size (uint64_t len);
/* Plaintext size of a stored object of slen bytes: the whole chunks and
 * a tail chunk of at least HF_CRYPT_OVERHEAD bytes.  A shorter tail (a
 * torn object) is not counted; false then. */
extern bool hf_crypt_plain_size (uint64_t slen, uint64_t *len);

/* Seal a whole object (len bytes) into out (hf_crypt_stored_size (len)
 * bytes). */
extern int hf_crypt_seal (const struct hf_crypt_objkey *k,
                          const uint8_t uuid[HF_UUID_SIZE],
                          const uint8_t *pt, size_t len, uint8_t *out);
/* Open a whole stored object (slen bytes) into pt (at least the plain
 * size).  EBADMSG with *bad_off (stored byte offset of the chunk) if any
 * chunk fails, or if slen is not a valid stored size. */
extern int hf_crypt_open (const struct hf_crypt_objkey *k,
                          const uint8_t uuid[HF_UUID_SIZE],
                          const uint8_t *in, size_t slen, uint8_t *pt,
                          size_t *len, uint64_t *bad_off);

/* ---- The volume's key (objstore-crypt.c) ---- */

struct hf_objstore;
struct hf_vdesc;

/* Mark descriptor d encrypted and wrap dkey into it with uk (fresh salt
 * and nonce).  Encode d afterwards (hf_vdesc_encode). */
extern int hf_crypt_desc_seal (struct hf_vdesc *d,
                               const struct hf_user_key *uk,
                               const uint8_t dkey[HF_CRYPT_KEY_SIZE]);

/* If the volume under prefix in *s is encrypted, unwrap its data key with
 * uk and replace *s by a crypt store wrapping it (which then owns the old
 * *s).  No volume there: 0, *s unchanged.  ENOKEY (no key given),
 * EKEYREJECTED (wrong key), EINVAL (a passphrase for a key-file volume or
 * the reverse, or a key for a volume that is not encrypted): each logged
 * with the volume's name; nothing is written. */
extern int hf_crypt_attach (struct hf_objstore **s, const char *prefix,
                            const struct hf_user_key *uk);

/* Rewrap the data key of the volume under prefix in s (its raw store,
 * or the crypt store: the descriptor passes through) from old to nk:
 * the descriptor is replaced, nothing else is written. */
extern int hf_crypt_rekey (struct hf_objstore *s, const char *prefix,
                           const struct hf_user_key *old,
                           const struct hf_user_key *nk);

/* A crypt store for the volume (uuid) under prefix of inner, which it
 * then owns. */
extern int hf_objstore_crypt_open (struct hf_objstore *inner,
                                   const char *prefix,
                                   const uint8_t uuid[HF_UUID_SIZE],
                                   const uint8_t dkey[HF_CRYPT_KEY_SIZE],
                                   struct hf_objstore **out);
/* Is s a crypt store?  If so, its data key is copied to dkey. */
extern bool hf_objstore_crypt_key (struct hf_objstore *s,
                                   uint8_t dkey[HF_CRYPT_KEY_SIZE]);

#endif /* HF_CRYPT_H */
