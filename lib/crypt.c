/* hyperfile: encryption primitives (crypt.h), on OpenSSL 3 EVP. */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/kdf.h>
#include <openssl/params.h>
#include <openssl/rand.h>

#include "cleanup.h"
#include "crypt.h"
#include "log.h"
#include "objstore.h"

/* Algorithms fetched once (an implicit fetch per call costs more than
 * sealing a 4 KiB chunk). */
static pthread_once_t hf_crypt_once = PTHREAD_ONCE_INIT;
static EVP_CIPHER *hf_crypt_gcm;
static EVP_MAC *hf_crypt_hmac;
static EVP_KDF *hf_crypt_hkdf;
static EVP_CIPHER *hf_crypt_ecb;

static void
hf_crypt_init (void)
{
  hf_crypt_gcm = EVP_CIPHER_fetch (NULL, "AES-256-GCM", NULL);
  hf_crypt_hmac = EVP_MAC_fetch (NULL, "HMAC", NULL);
  hf_crypt_hkdf = EVP_KDF_fetch (NULL, "HKDF", NULL);
  hf_crypt_ecb = EVP_CIPHER_fetch (NULL, "AES-256-ECB", NULL);
}

static int
hf_crypt_ready (void)
{
  pthread_once (&hf_crypt_once, hf_crypt_init);
  if (!hf_crypt_gcm || !hf_crypt_hmac || !hf_crypt_hkdf || !hf_crypt_ecb) {
    hf_error ("crypt: OpenSSL lacks AES-256-GCM, HMAC, HKDF or AES-256-ECB");
    return ENOTSUP;
  }
  return 0;
}

/* ---- User keys ---- */

static int
hf_crypt_hexval (int c)
{
  if (c >= '0' && c <= '9')
    return c - '0';
  if (c >= 'a' && c <= 'f')
    return c - 'a' + 10;
  if (c >= 'A' && c <= 'F')
    return c - 'A' + 10;
  return -1;
}

int
hf_crypt_key_file (const char *path, struct hf_user_key *out)
{
  uint8_t buf[80];
  struct stat st;
  ssize_t n;
  size_t len, i;
  int fd, r = 0;

  memset (out, 0, sizeof *out);
  fd = open (path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
  if (fd == -1) {
    r = errno;
    hf_error ("key-file %s: %s", path, strerror (r));
    return r;
  }
  if (fstat (fd, &st) == -1) {
    r = errno;
    close (fd);
    hf_error ("key-file %s: %s", path, strerror (r));
    return r;
  }
  if (!S_ISREG (st.st_mode) || (st.st_mode & 077)) {
    close (fd);
    hf_error ("key-file %s: must be a regular file readable by its owner "
              "only (chmod 600)", path);
    return EPERM;
  }
  n = read (fd, buf, sizeof buf);
  r = n == -1 ? errno : 0;
  close (fd);
  if (r) {
    hf_error ("key-file %s: %s", path, strerror (r));
    return r;
  }
  len = (size_t) n;
  out->secret = OPENSSL_secure_malloc (HF_CRYPT_KEY_SIZE);
  if (out->secret == NULL)
    out->secret = malloc (HF_CRYPT_KEY_SIZE);
  if (out->secret == NULL)
    return ENOMEM;
  if (len == HF_CRYPT_KEY_SIZE)
    memcpy (out->secret, buf, HF_CRYPT_KEY_SIZE);
  else if (len == 64 || (len == 65 && buf[64] == '\n')) {
    for (i = 0; i < HF_CRYPT_KEY_SIZE; i++) {
      int h = hf_crypt_hexval (buf[2 * i]), l = hf_crypt_hexval (buf[2 * i + 1]);

      if (h < 0 || l < 0)
        break;
      out->secret[i] = (uint8_t) (h << 4 | l);
    }
    if (i < HF_CRYPT_KEY_SIZE)
      r = EINVAL;
  }
  else
    r = EINVAL;
  OPENSSL_cleanse (buf, sizeof buf);
  if (r) {
    hf_error ("key-file %s: must hold exactly 32 bytes, or 64 hex digits "
              "(e.g. made with: openssl rand -hex 32 > FILE)", path);
    hf_user_key_clear (out);
    return r;
  }
  out->len = HF_CRYPT_KEY_SIZE;
  out->kdf = HF_VD_KDF_KEYFILE;
  if ((out->what = malloc (strlen (path) + 10)) == NULL) {
    hf_user_key_clear (out);
    return ENOMEM;
  }
  strcpy (out->what, "key-file ");
  strcat (out->what, path);
  return 0;
}

int
hf_crypt_passphrase (const char *pass, struct hf_user_key *out)
{
  size_t n = strlen (pass);

  memset (out, 0, sizeof *out);
  if (n == 0) {
    hf_error ("key: the passphrase is empty");
    return EINVAL;
  }
  out->secret = malloc (n);
  out->what = strdup ("passphrase");
  if (out->secret == NULL || out->what == NULL) {
    hf_user_key_clear (out);
    return ENOMEM;
  }
  memcpy (out->secret, pass, n);
  out->len = n;
  out->kdf = HF_VD_KDF_SCRYPT;
  return 0;
}

void
hf_user_key_clear (struct hf_user_key *k)
{
  if (k == NULL)
    return;
  if (k->secret) {
    OPENSSL_cleanse (k->secret, k->len ? k->len : HF_CRYPT_KEY_SIZE);
    if (CRYPTO_secure_allocated (k->secret))
      OPENSSL_secure_free (k->secret);
    else
      free (k->secret);
  }
  free (k->what);
  memset (k, 0, sizeof *k);
}

/* ---- KDFs and MACs ---- */

static int
hf_crypt_hkdf_do (const uint8_t *ikm, size_t ikm_len, const uint8_t *salt,
                  size_t salt_len, const uint8_t *info, size_t info_len,
                  uint8_t *out, size_t out_len)
{
  EVP_KDF_CTX *c;
  OSSL_PARAM p[5];
  int ok;

  if (hf_crypt_ready ())
    return ENOTSUP;
  c = EVP_KDF_CTX_new (hf_crypt_hkdf);
  if (c == NULL)
    return ENOMEM;
  p[0] = OSSL_PARAM_construct_utf8_string (OSSL_KDF_PARAM_DIGEST,
                                           (char *) "SHA256", 0);
  p[1] = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_KEY,
                                            (void *) ikm, ikm_len);
  p[2] = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_SALT,
                                            (void *) salt, salt_len);
  p[3] = OSSL_PARAM_construct_octet_string (OSSL_KDF_PARAM_INFO,
                                            (void *) info, info_len);
  p[4] = OSSL_PARAM_construct_end ();
  ok = EVP_KDF_derive (c, out, out_len, p);
  EVP_KDF_CTX_free (c);
  return ok == 1 ? 0 : EIO;
}

/* HMAC-SHA256 of the concatenation of up to three pieces. */
static int
hf_crypt_hmac3 (const uint8_t *key, size_t key_len, const void *a,
                size_t alen, const void *b, size_t blen, const void *c3,
                size_t clen, uint8_t out[32])
{
  EVP_MAC_CTX *c;
  OSSL_PARAM p[2];
  size_t outl = 0;
  int ok;

  if (hf_crypt_ready ())
    return ENOTSUP;
  c = EVP_MAC_CTX_new (hf_crypt_hmac);
  if (c == NULL)
    return ENOMEM;
  p[0] = OSSL_PARAM_construct_utf8_string (OSSL_MAC_PARAM_DIGEST,
                                           (char *) "SHA256", 0);
  p[1] = OSSL_PARAM_construct_end ();
  ok = EVP_MAC_init (c, key, key_len, p) == 1 &&
    (alen == 0 || EVP_MAC_update (c, a, alen) == 1) &&
    (blen == 0 || EVP_MAC_update (c, b, blen) == 1) &&
    (clen == 0 || EVP_MAC_update (c, c3, clen) == 1) &&
    EVP_MAC_final (c, out, &outl, 32) == 1 && outl == 32;
  EVP_MAC_CTX_free (c);
  return ok ? 0 : EIO;
}

/* The KEK from the user's key and the descriptor's KDF fields. */
static int
hf_crypt_kek (const struct hf_crypt_desc *cd, const struct hf_user_key *uk,
              uint8_t kek[HF_CRYPT_KEY_SIZE])
{
  static const char info[] = "hyperfile kek v1";

  if (cd->kdf == HF_VD_KDF_KEYFILE)
    return hf_crypt_hkdf_do (uk->secret, uk->len, cd->kdf_salt,
                             sizeof cd->kdf_salt, (const uint8_t *) info,
                             sizeof info - 1, kek, HF_CRYPT_KEY_SIZE);
  if (cd->kdf == HF_VD_KDF_SCRYPT) {
    if (cd->kdf_log2n < 10 || cd->kdf_log2n > 20 || cd->kdf_r < 1 ||
        cd->kdf_r > 32 || cd->kdf_p < 1 || cd->kdf_p > 16)
      return EINVAL;
    if (EVP_PBE_scrypt ((const char *) uk->secret, uk->len, cd->kdf_salt,
                        sizeof cd->kdf_salt, (uint64_t) 1 << cd->kdf_log2n,
                        cd->kdf_r, cd->kdf_p, (uint64_t) 1 << 30, kek,
                        HF_CRYPT_KEY_SIZE) != 1)
      return EIO;
    return 0;
  }
  return EINVAL;
}

int
hf_crypt_new_data_key (uint8_t dkey[HF_CRYPT_KEY_SIZE])
{
  return RAND_priv_bytes (dkey, HF_CRYPT_KEY_SIZE) == 1 ? 0 : EIO;
}

int
hf_crypt_key_check (const uint8_t dkey[HF_CRYPT_KEY_SIZE], uint8_t out[16])
{
  static const char label[] = "hyperfile key check";
  uint8_t mac[32];
  int r = hf_crypt_hmac3 (dkey, HF_CRYPT_KEY_SIZE, label, sizeof label - 1,
                          NULL, 0, NULL, 0, mac);

  if (r == 0)
    memcpy (out, mac, 16);
  return r;
}

/* ---- AES-256-GCM ---- */

static int
hf_crypt_gcm_do (bool enc, const uint8_t key[HF_CRYPT_KEY_SIZE],
                 const uint8_t nonce[HF_CRYPT_NONCE], const uint8_t *aad,
                 size_t aad_len, const uint8_t *in, size_t n, uint8_t *out,
                 uint8_t tag[HF_CRYPT_TAG])
{
  EVP_CIPHER_CTX *c;
  int l, ok;

  if (hf_crypt_ready ())
    return ENOTSUP;
  c = EVP_CIPHER_CTX_new ();
  if (c == NULL)
    return ENOMEM;
  ok = EVP_CipherInit_ex2 (c, hf_crypt_gcm, key, nonce, enc ? 1 : 0, NULL)
    == 1 &&
    (aad_len == 0 || EVP_CipherUpdate (c, NULL, &l, aad, (int) aad_len) == 1)
    && (n == 0 || EVP_CipherUpdate (c, out, &l, in, (int) n) == 1);
  if (ok && !enc)
    ok = EVP_CIPHER_CTX_ctrl (c, EVP_CTRL_GCM_SET_TAG, HF_CRYPT_TAG,
                              tag) == 1;
  if (ok)
    ok = EVP_CipherFinal_ex (c, out + n, &l) == 1;
  if (ok && enc)
    ok = EVP_CIPHER_CTX_ctrl (c, EVP_CTRL_GCM_GET_TAG, HF_CRYPT_TAG,
                              tag) == 1;
  EVP_CIPHER_CTX_free (c);
  if (!ok && !enc && n)
    OPENSSL_cleanse (out, n);     /* never hand out unverified bytes */
  return ok ? 0 : enc ? EIO : EBADMSG;
}

/* ---- Key wrapping ---- */

int
hf_crypt_wrap_prepare (struct hf_crypt_desc *cd, const struct hf_user_key *uk,
                       const uint8_t dkey[HF_CRYPT_KEY_SIZE])
{
  const char *e;
  int r;

  memset (cd, 0, sizeof *cd);
  cd->cipher = HF_VD_CIPHER_AES256GCM;
  cd->kdf = uk->kdf;
  if (uk->kdf == HF_VD_KDF_SCRYPT) {
    cd->kdf_log2n = HF_CRYPT_SCRYPT_LOG2N;
    cd->kdf_r = HF_CRYPT_SCRYPT_R;
    cd->kdf_p = HF_CRYPT_SCRYPT_P;
    e = getenv ("HF_CRYPT_SCRYPT_LOG2N");
    if (e && atoi (e) >= 10 && atoi (e) <= 20)
      cd->kdf_log2n = (uint8_t) atoi (e);
  }
  if (RAND_bytes (cd->kdf_salt, sizeof cd->kdf_salt) != 1 ||
      RAND_bytes (cd->wrap_nonce, sizeof cd->wrap_nonce) != 1)
    return EIO;
  r = hf_crypt_key_check (dkey, cd->key_check);
  return r;
}

int
hf_crypt_wrap (struct hf_crypt_desc *cd, const struct hf_user_key *uk,
               const uint8_t dkey[HF_CRYPT_KEY_SIZE], const uint8_t *aad,
               size_t aad_len)
{
  uint8_t kek[HF_CRYPT_KEY_SIZE];
  int r = hf_crypt_kek (cd, uk, kek);

  if (r == 0)
    r = hf_crypt_gcm_do (true, kek, cd->wrap_nonce, aad, aad_len, dkey,
                         HF_CRYPT_KEY_SIZE, cd->wrap_key, cd->wrap_tag);
  OPENSSL_cleanse (kek, sizeof kek);
  return r;
}

int
hf_crypt_unwrap (const struct hf_crypt_desc *cd, const struct hf_user_key *uk,
                 const uint8_t *aad, size_t aad_len,
                 uint8_t dkey[HF_CRYPT_KEY_SIZE])
{
  uint8_t kek[HF_CRYPT_KEY_SIZE], tag[HF_CRYPT_TAG], check[16];
  int r;

  if (uk->kdf != cd->kdf)
    return EINVAL;
  r = hf_crypt_kek (cd, uk, kek);
  if (r == 0) {
    memcpy (tag, cd->wrap_tag, sizeof tag);
    r = hf_crypt_gcm_do (false, kek, cd->wrap_nonce, aad, aad_len,
                         cd->wrap_key, HF_CRYPT_KEY_SIZE, dkey, tag);
    if (r == EBADMSG)
      r = EKEYREJECTED;
  }
  OPENSSL_cleanse (kek, sizeof kek);
  /* The check value is inside the additional data, so it already
   * verified; comparing it again catches a wrap of another key. */
  if (r == 0 && (hf_crypt_key_check (dkey, check) != 0 ||
                 CRYPTO_memcmp (check, cd->key_check, 16) != 0)) {
    OPENSSL_cleanse (dkey, HF_CRYPT_KEY_SIZE);
    r = EKEYREJECTED;
  }
  return r;
}

/* ---- Sealed objects ---- */

int
hf_crypt_obj_key (const uint8_t dkey[HF_CRYPT_KEY_SIZE],
                  const uint8_t uuid[HF_UUID_SIZE], const char *name,
                  struct hf_crypt_objkey *k)
{
  static const char label[] = "hyperfile object v1";  /* NUL included */
  size_t n = strlen (name);
  uint8_t info[sizeof label + HF_OBJSTORE_KEY_MAX];
  uint8_t out[4 * HF_CRYPT_KEY_SIZE];
  int r;

  memset (k, 0, sizeof *k);
  if (n > HF_OBJSTORE_KEY_MAX)
    return EINVAL;
  memcpy (info, label, sizeof label);
  memcpy (info + sizeof label, name, n);
  /* HKDF's output is a stream: its first 64 bytes are what the first
   * release derived (enc and its HMAC nonce key), so enc is unchanged. */
  r = hf_crypt_hkdf_do (dkey, HF_CRYPT_KEY_SIZE, uuid, HF_UUID_SIZE, info,
                        sizeof label + n, out, sizeof out);
  if (r == 0) {
    memcpy (k->enc, out, HF_CRYPT_KEY_SIZE);
    k->cctx = EVP_CIPHER_CTX_new ();
    k->gctx = EVP_CIPHER_CTX_new ();
    k->ectx = EVP_CIPHER_CTX_new ();
    if (k->cctx == NULL || k->gctx == NULL || k->ectx == NULL)
      r = ENOMEM;
    else if (EVP_CipherInit_ex2 (k->cctx, hf_crypt_gcm, k->enc, NULL, 1,
                                 NULL) != 1 ||
             EVP_CipherInit_ex2 (k->gctx, hf_crypt_gcm,
                                 out + 2 * HF_CRYPT_KEY_SIZE, NULL, 1,
                                 NULL) != 1 ||
             EVP_CipherInit_ex2 (k->ectx, hf_crypt_ecb,
                                 out + 3 * HF_CRYPT_KEY_SIZE, NULL, 1,
                                 NULL) != 1 ||
             EVP_CIPHER_CTX_set_padding (k->ectx, 0) != 1)
      r = EIO;
  }
  OPENSSL_cleanse (out, sizeof out);
  if (r)
    hf_crypt_obj_key_clear (k);
  return r;
}

void
hf_crypt_obj_key_clear (struct hf_crypt_objkey *k)
{
  EVP_CIPHER_CTX_free (k->cctx);
  EVP_CIPHER_CTX_free (k->gctx);
  EVP_CIPHER_CTX_free (k->ectx);
  OPENSSL_cleanse (k, sizeof *k);
}

/* AES-256-GCM of one chunk with the object's keyed context: only the
 * nonce is set per chunk. */
static int
hf_crypt_gcm_chunk (const struct hf_crypt_objkey *k, bool enc,
                    const uint8_t nonce[HF_CRYPT_NONCE], const uint8_t *aad,
                    size_t aad_len, const uint8_t *in, size_t n,
                    uint8_t *out, uint8_t tag[HF_CRYPT_TAG])
{
  EVP_CIPHER_CTX *c = k->cctx;
  int l, ok;

  ok = EVP_CipherInit_ex2 (c, NULL, NULL, nonce, enc ? 1 : 0, NULL) == 1 &&
    EVP_CipherUpdate (c, NULL, &l, aad, (int) aad_len) == 1 &&
    (n == 0 || EVP_CipherUpdate (c, out, &l, in, (int) n) == 1);
  if (ok && !enc)
    ok = EVP_CIPHER_CTX_ctrl (c, EVP_CTRL_GCM_SET_TAG, HF_CRYPT_TAG,
                              tag) == 1;
  if (ok)
    ok = EVP_CipherFinal_ex (c, out + n, &l) == 1;
  if (ok && enc)
    ok = EVP_CIPHER_CTX_ctrl (c, EVP_CTRL_GCM_GET_TAG, HF_CRYPT_TAG,
                              tag) == 1;
  if (!ok && !enc && n)
    OPENSSL_cleanse (out, n);     /* never hand out unverified bytes */
  return ok ? 0 : enc ? EIO : EBADMSG;
}

/* The synthetic nonce (hyperfile-format(5), ENCRYPTION): the first 12
 * bytes of AES-256-ECB (nonce AES key, GHASH (ixl || pt)), the hash
 * being GCM's tag under the GHASH key with a fixed all-zero IV over
 * ixl || pt as additional data and nothing to encrypt: GHASH_H (A) xor
 * a constant.  A hash an adversary cannot predict whose outputs go
 * through a block cipher before anyone sees them: AES-GCM-SIV's
 * construction (RFC 8452) with GHASH for POLYVAL, at GHASH's speed
 * (about 5 times SHA-256's with CLMUL). */
static int
hf_crypt_nonce (const struct hf_crypt_objkey *k, const uint8_t ixl[9],
                const uint8_t *pt, size_t n, uint8_t nonce[HF_CRYPT_NONCE])
{
  static const uint8_t iv0[HF_CRYPT_NONCE];
  EVP_CIPHER_CTX *g = k->gctx;
  uint8_t t[16], e[16];
  int l = 0, ok;

  ok = EVP_CipherInit_ex2 (g, NULL, NULL, iv0, 1, NULL) == 1 &&
    EVP_CipherUpdate (g, NULL, &l, ixl, 9) == 1 &&
    (n == 0 || EVP_CipherUpdate (g, NULL, &l, pt, (int) n) == 1) &&
    EVP_CipherFinal_ex (g, t, &l) == 1 &&
    EVP_CIPHER_CTX_ctrl (g, EVP_CTRL_GCM_GET_TAG, sizeof t, t) == 1 &&
    EVP_CipherUpdate (k->ectx, e, &l, t, sizeof t) == 1 && l == sizeof e;
  if (ok)
    memcpy (nonce, e, HF_CRYPT_NONCE);
  OPENSSL_cleanse (t, sizeof t);
  return ok ? 0 : EIO;
}

static void
hf_crypt_chunk_aad (const uint8_t uuid[HF_UUID_SIZE], uint64_t idx,
                    bool last, uint8_t aad[29])
{
  memcpy (aad, "HFO1", 4);
  memcpy (aad + 4, uuid, HF_UUID_SIZE);
  hf_put_le64 (aad + 20, idx);
  aad[28] = last ? 1 : 0;
}

int
hf_crypt_seal_chunk (const struct hf_crypt_objkey *k,
                     const uint8_t uuid[HF_UUID_SIZE], uint64_t idx,
                     bool last, const uint8_t *pt, size_t n, uint8_t *out)
{
  uint8_t aad[29];
  int r;

  if (n > HF_CRYPT_CHUNK)
    return EINVAL;
  hf_crypt_chunk_aad (uuid, idx, last, aad);
  /* Synthetic nonce: index, flag (aad + 20, 9 bytes) and plaintext. */
  r = hf_crypt_nonce (k, aad + 20, pt, n, out);
  if (r)
    return r;
  return hf_crypt_gcm_chunk (k, true, out, aad, sizeof aad, pt, n,
                             out + HF_CRYPT_NONCE, out + HF_CRYPT_NONCE + n);
}

int
hf_crypt_open_chunk (const struct hf_crypt_objkey *k,
                     const uint8_t uuid[HF_UUID_SIZE], uint64_t idx,
                     bool last, const uint8_t *in, size_t slen, uint8_t *pt)
{
  uint8_t aad[29], tag[HF_CRYPT_TAG];
  size_t n;

  if (slen < HF_CRYPT_OVERHEAD || slen > HF_CRYPT_SCHUNK)
    return EBADMSG;
  n = slen - HF_CRYPT_OVERHEAD;
  hf_crypt_chunk_aad (uuid, idx, last, aad);
  memcpy (tag, in + HF_CRYPT_NONCE + n, HF_CRYPT_TAG);
  return hf_crypt_gcm_chunk (k, false, in, aad, sizeof aad,
                             in + HF_CRYPT_NONCE, n, pt, tag);
}

uint64_t
hf_crypt_stored_size (uint64_t len)
{
  uint64_t chunks = len == 0 ? 1 : (len + HF_CRYPT_CHUNK - 1) / HF_CRYPT_CHUNK;

  return len + chunks * HF_CRYPT_OVERHEAD;
}

bool
hf_crypt_plain_size (uint64_t slen, uint64_t *len)
{
  uint64_t full = slen / HF_CRYPT_SCHUNK, rem = slen % HF_CRYPT_SCHUNK;

  *len = full * HF_CRYPT_CHUNK;
  if (rem == 0)
    return slen > 0;
  if (rem < HF_CRYPT_OVERHEAD)
    return false;
  *len += rem - HF_CRYPT_OVERHEAD;
  return true;
}

int
hf_crypt_seal (const struct hf_crypt_objkey *k,
               const uint8_t uuid[HF_UUID_SIZE], const uint8_t *pt,
               size_t len, uint8_t *out)
{
  uint64_t i = 0;
  size_t off = 0;
  int r;

  do {
    size_t n = len - off < HF_CRYPT_CHUNK ? len - off : HF_CRYPT_CHUNK;
    bool last = off + n == len;

    r = hf_crypt_seal_chunk (k, uuid, i, last, pt + off, n,
                             out + i * HF_CRYPT_SCHUNK);
    if (r)
      return r;
    off += n;
    i++;
  } while (off < len);
  return 0;
}

int
hf_crypt_open (const struct hf_crypt_objkey *k,
               const uint8_t uuid[HF_UUID_SIZE], const uint8_t *in,
               size_t slen, uint8_t *pt, size_t *len, uint64_t *bad_off)
{
  uint64_t plen, i, off;
  int r;

  if (!hf_crypt_plain_size (slen, &plen)) {
    *bad_off = slen - slen % HF_CRYPT_SCHUNK;
    return EBADMSG;
  }
  for (i = 0, off = 0; off < slen; i++, off += HF_CRYPT_SCHUNK) {
    size_t s = slen - off < HF_CRYPT_SCHUNK ? slen - off : HF_CRYPT_SCHUNK;

    r = hf_crypt_open_chunk (k, uuid, i, off + s == slen, in + off, s,
                             pt + i * HF_CRYPT_CHUNK);
    if (r) {
      *bad_off = off;
      return r;
    }
  }
  *len = plen;
  return 0;
}
