/* Unit tests for lib/crypt (primitives) and lib/objstore-crypt (the
 * encrypting store and the volume key): round trips at every chunk
 * boundary, determinism of the synthetic nonce, that every stored byte
 * is authenticated, binding to index, last flag, name and volume, key
 * wrapping with key files and passphrases, wrong keys, rekey, and an
 * encrypted volume end to end over the directory store with no
 * plaintext in it. */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "crypt.h"
#include "lineage.h"
#include "objstore.h"
#include "test-util.h"
#include "volume.h"

static const uint8_t uuid_a[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
  13, 14, 15, 16 };
static const uint8_t uuid_b[16] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,
  13, 14, 15, 17 };
static uint8_t dkey[32];

static void
objkey (const uint8_t *uuid, const char *name, struct hf_crypt_objkey *k)
{
  ck_assert_int_eq (hf_crypt_obj_key (dkey, uuid, name, k), 0);
}

START_TEST (test_sizes_roundtrip)
{
  static const size_t lens[] = { 0, 1, 100, 4095, 4096, 4097, 8192,
    3 * 4096 + 5, 64 * 1024 };
  struct hf_crypt_objkey k;
  size_t i;

  objkey (uuid_a, "seg/fffffffffffffffe", &k);
  for (i = 0; i < sizeof lens / sizeof lens[0]; i++) {
    size_t len = lens[i], got = 0;
    uint64_t slen = hf_crypt_stored_size (len), back = 0, bad = 0;
    uint8_t *pt = malloc (len + 1), *st = malloc (slen), *out =
      malloc (len + HF_CRYPT_CHUNK);

    fill_rnd (pt, len);
    ck_assert (hf_crypt_plain_size (slen, &back));
    ck_assert_uint_eq (back, len);
    ck_assert_int_eq (hf_crypt_seal (&k, uuid_a, pt, len, st), 0);
    ck_assert_int_eq (hf_crypt_open (&k, uuid_a, st, slen, out, &got, &bad),
                      0);
    ck_assert_uint_eq (got, len);
    ck_assert (len == 0 || memcmp (pt, out, len) == 0);
    /* The plaintext does not appear in the stored bytes. */
    ck_assert (len < 16 || memmem (st, slen, pt, 16) == NULL);
    free (pt);
    free (st);
    free (out);
  }
  /* A tail shorter than a chunk's overhead is not a chunk. */
  {
    uint64_t l;

    ck_assert (!hf_crypt_plain_size (HF_CRYPT_SCHUNK + 27, &l));
    ck_assert_uint_eq (l, HF_CRYPT_CHUNK);
    ck_assert (!hf_crypt_plain_size (0, &l));
  }
  hf_crypt_obj_key_clear (&k);
}
END_TEST

START_TEST (test_deterministic_nonce)
{
  struct hf_crypt_objkey k;
  uint8_t pt[4096], a[HF_CRYPT_SCHUNK], b[HF_CRYPT_SCHUNK];

  objkey (uuid_a, "seg/x", &k);
  fill_rnd (pt, sizeof pt);
  ck_assert_int_eq (hf_crypt_seal_chunk (&k, uuid_a, 3, false, pt, 4096, a),
                    0);
  ck_assert_int_eq (hf_crypt_seal_chunk (&k, uuid_a, 3, false, pt, 4096, b),
                    0);
  /* Same plaintext at the same place: the same bytes (a retried PUT). */
  ck_assert (memcmp (a, b, sizeof a) == 0);
  /* One bit of plaintext changed: another nonce. */
  pt[4095] ^= 1;
  ck_assert_int_eq (hf_crypt_seal_chunk (&k, uuid_a, 3, false, pt, 4096, b),
                    0);
  ck_assert (memcmp (a, b, HF_CRYPT_NONCE) != 0);
  /* Same plaintext, another index: another nonce. */
  pt[4095] ^= 1;
  ck_assert_int_eq (hf_crypt_seal_chunk (&k, uuid_a, 4, false, pt, 4096, b),
                    0);
  ck_assert (memcmp (a, b, HF_CRYPT_NONCE) != 0);
  /* A fresh key of the same object seals the same bytes (the keyed
   * contexts carry no state from one chunk to the next). */
  {
    struct hf_crypt_objkey k2;

    objkey (uuid_a, "seg/x", &k2);
    ck_assert_int_eq (hf_crypt_seal_chunk (&k2, uuid_a, 4, false, pt, 4096,
                                           a), 0);
    ck_assert (memcmp (a, b, sizeof a) == 0);
    hf_crypt_obj_key_clear (&k2);
  }
  hf_crypt_obj_key_clear (&k);
}
END_TEST

/* One chunk (index 5, last, 100 bytes) of a fixed key, volume and
 * object, sealed two ways.  v1: by the first release (HMAC-SHA256
 * nonce): it must still open.  v2: by this one (GHASH-then-AES nonce),
 * computed independently with python3-cryptography (HKDF by hand,
 * AESGCM (kg).encrypt (zero IV, b"", ixl + pt) as the hash, AES-ECB
 * under kn, AESGCM (enc) for the chunk): every later release must seal
 * these bytes, so that a rebuilt segment reseals identically. */
static const uint8_t kat_v1[128] = {
    0x75, 0x25, 0x18, 0xb2, 0xc4, 0x14, 0x87, 0xa5, 0xec, 0xed, 0xdc, 0xbd,
    0x63, 0x4d, 0x74, 0x24, 0x70, 0x6b, 0xb2, 0x14, 0x34, 0xc7, 0xcd, 0x08,
    0x52, 0x8c, 0x75, 0x44, 0x87, 0x62, 0xb4, 0x3a, 0xc1, 0x6a, 0xc1, 0x34,
    0x4d, 0xa0, 0xcf, 0x55, 0xa0, 0x3b, 0x6a, 0x58, 0xd7, 0x34, 0x59, 0x5d,
    0xd0, 0x8f, 0x92, 0x6a, 0x0e, 0x01, 0x9e, 0xb9, 0xcf, 0x38, 0x7c, 0x5d,
    0x50, 0x59, 0x6d, 0xef, 0x27, 0x65, 0x1d, 0x52, 0xcf, 0x68, 0x44, 0x71,
    0x67, 0x34, 0xd6, 0xd8, 0xf2, 0x51, 0x39, 0x00, 0xb2, 0x14, 0xe8, 0xb2,
    0x39, 0x45, 0xd3, 0x8a, 0x17, 0x0e, 0x09, 0xba, 0x4a, 0x3b, 0xab, 0x09,
    0x20, 0x4a, 0x12, 0x87, 0xa9, 0x94, 0xe7, 0xf6, 0xed, 0x22, 0xb3, 0x65,
    0xb1, 0xca, 0x49, 0x5e, 0x72, 0x86, 0x93, 0x00, 0x96, 0xbe, 0xe0, 0xc7,
    0x3b, 0xad, 0xa3, 0x32, 0xb2, 0x20, 0x69, 0x0a,
};
static const uint8_t kat_v2[128] = {
    0xe4, 0x4d, 0xb0, 0x69, 0x0e, 0x61, 0x31, 0x29, 0x50, 0xae, 0x7c, 0x50,
    0x12, 0xbc, 0x09, 0xae, 0xa1, 0xe7, 0x77, 0x0b, 0x16, 0xc2, 0xdf, 0xf5,
    0x3b, 0xbe, 0x61, 0xd6, 0x9a, 0xa3, 0xb0, 0xe8, 0x52, 0x87, 0x97, 0xb8,
    0xf3, 0x25, 0x84, 0xab, 0xfc, 0x21, 0x22, 0xcf, 0x75, 0x46, 0x3d, 0x22,
    0x67, 0x4a, 0xf0, 0xcf, 0xb3, 0x05, 0x22, 0xb9, 0x22, 0xe5, 0x0e, 0xce,
    0x9b, 0xb2, 0xef, 0xa3, 0x46, 0x16, 0x95, 0x3e, 0xcc, 0xdd, 0x0b, 0x97,
    0x3a, 0x46, 0x7b, 0xdc, 0xc1, 0x9e, 0x96, 0xeb, 0xb2, 0x2f, 0xf3, 0xa2,
    0x67, 0x3e, 0x69, 0xc8, 0x34, 0x3f, 0xcd, 0xc7, 0x48, 0x0f, 0x60, 0x13,
    0xa4, 0x72, 0xf9, 0xe4, 0x24, 0xa3, 0xb8, 0x60, 0x03, 0x2d, 0xcc, 0xd8,
    0x09, 0x81, 0x7a, 0x53, 0x65, 0x42, 0xbb, 0x0c, 0xdd, 0x4a, 0xd0, 0xcb,
    0x37, 0x3c, 0x2c, 0xf0, 0x52, 0xa7, 0x95, 0x64,
};

START_TEST (test_known_answer)
{
  uint8_t key[32], uuid[16], pt[100], out[128], back[100];
  struct hf_crypt_objkey k;
  size_t i;

  for (i = 0; i < sizeof key; i++)
    key[i] = (uint8_t) (i * 3 + 1);
  for (i = 0; i < sizeof uuid; i++)
    uuid[i] = (uint8_t) (0xa0 + i);
  for (i = 0; i < sizeof pt; i++)
    pt[i] = (uint8_t) ('a' + i % 26);
  ck_assert_int_eq (hf_crypt_obj_key (key, uuid, "seg/000000000000002a", &k),
                    0);
  ck_assert_int_eq (hf_crypt_seal_chunk (&k, uuid, 5, true, pt, sizeof pt,
                                         out), 0);
  ck_assert (memcmp (out, kat_v2, sizeof kat_v2) == 0);
  memset (back, 0, sizeof back);
  ck_assert_int_eq (hf_crypt_open_chunk (&k, uuid, 5, true, kat_v2,
                                         sizeof kat_v2, back), 0);
  ck_assert (memcmp (back, pt, sizeof pt) == 0);
  memset (back, 0, sizeof back);
  ck_assert_int_eq (hf_crypt_open_chunk (&k, uuid, 5, true, kat_v1,
                                         sizeof kat_v1, back), 0);
  ck_assert (memcmp (back, pt, sizeof pt) == 0);
  /* Both bound alike: the v1 chunk is refused at another index. */
  ck_assert_int_eq (hf_crypt_open_chunk (&k, uuid, 4, true, kat_v1,
                                         sizeof kat_v1, back), EBADMSG);
  hf_crypt_obj_key_clear (&k);
}
END_TEST

START_TEST (test_every_byte_authenticated)
{
  struct hf_crypt_objkey k, k2;
  size_t len = 2 * 4096 + 300, got, i;
  uint64_t slen = hf_crypt_stored_size (len), bad;
  uint8_t pt[2 * 4096 + 300], st[3 * HF_CRYPT_SCHUNK], out[3 * 4096];

  objkey (uuid_a, "seg/x", &k);
  fill_rnd (pt, len);
  ck_assert_int_eq (hf_crypt_seal (&k, uuid_a, pt, len, st), 0);
  for (i = 0; i < slen; i++) {
    st[i] ^= 0x10;
    bad = UINT64_MAX;
    ck_assert_int_eq (hf_crypt_open (&k, uuid_a, st, slen, out, &got, &bad),
                      EBADMSG);
    ck_assert_uint_eq (bad, i / HF_CRYPT_SCHUNK * HF_CRYPT_SCHUNK);
    st[i] ^= 0x10;
  }
  /* Another volume, another object name: nothing verifies. */
  ck_assert_int_eq (hf_crypt_open (&k, uuid_b, st, slen, out, &got, &bad),
                    EBADMSG);
  objkey (uuid_a, "seg/y", &k2);
  ck_assert_int_eq (hf_crypt_open (&k2, uuid_a, st, slen, out, &got, &bad),
                    EBADMSG);
  /* Cut at a chunk boundary: the new last chunk was not sealed as last. */
  ck_assert_int_eq (hf_crypt_open (&k, uuid_a, st, 2 * HF_CRYPT_SCHUNK, out,
                                   &got, &bad), EBADMSG);
  /* Chunks swapped. */
  {
    uint8_t tmp[HF_CRYPT_SCHUNK];

    memcpy (tmp, st, HF_CRYPT_SCHUNK);
    memcpy (st, st + HF_CRYPT_SCHUNK, HF_CRYPT_SCHUNK);
    memcpy (st + HF_CRYPT_SCHUNK, tmp, HF_CRYPT_SCHUNK);
    ck_assert_int_eq (hf_crypt_open (&k, uuid_a, st, slen, out, &got, &bad),
                      EBADMSG);
    ck_assert_uint_eq (bad, 0);
  }
  hf_crypt_obj_key_clear (&k);
  hf_crypt_obj_key_clear (&k2);
}
END_TEST

static char *
write_key_file (const char *dir, const char *name, const char *text,
                mode_t mode)
{
  char *p;

  ck_assert_int_ne (asprintf (&p, "%s/%s", dir, name), -1);
  write_text (p, text);
  ck_assert_int_eq (chmod (p, mode), 0);
  return p;
}

#define HEXKEY1 \
  "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f\n"
#define HEXKEY2 \
  "ff0102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f"

START_TEST (test_key_files)
{
  char *dir = make_tmpdir ();
  char *good = write_key_file (dir, "k1", HEXKEY1, 0600);
  char *open_to_all = write_key_file (dir, "k2", HEXKEY1, 0644);
  char *short_key = write_key_file (dir, "k3", "00112233", 0600);
  struct hf_user_key uk;

  ck_assert_int_eq (hf_crypt_key_file (good, &uk), 0);
  ck_assert_uint_eq (uk.len, 32);
  ck_assert_uint_eq (uk.secret[1], 1);
  ck_assert_uint_eq (uk.secret[31], 0x1f);
  hf_user_key_clear (&uk);
  last_error[0] = '\0';
  ck_assert_int_eq (hf_crypt_key_file (open_to_all, &uk), EPERM);
  ck_assert (strstr (last_error, "chmod 600") != NULL);
  ck_assert_int_eq (hf_crypt_key_file (short_key, &uk), EINVAL);
  ck_assert_int_eq (hf_crypt_passphrase ("", &uk), EINVAL);
  free (good);
  free (open_to_all);
  free (short_key);
  rm_tmpdir (dir);
}
END_TEST

/* Wrap and unwrap through a descriptor, as create and open do. */
START_TEST (test_wrap)
{
  char *dir = make_tmpdir ();
  char *k1 = write_key_file (dir, "k1", HEXKEY1, 0600);
  char *k2 = write_key_file (dir, "k2", HEXKEY2, 0600);
  struct hf_user_key u1, u2, p1, p2;
  struct hf_vdesc d, e;
  uint8_t o[HF_VD_SIZE];
  size_t bad;

  ck_assert_int_eq (hf_crypt_key_file (k1, &u1), 0);
  ck_assert_int_eq (hf_crypt_key_file (k2, &u2), 0);
  ck_assert_int_eq (hf_crypt_passphrase ("correct horse", &p1), 0);
  ck_assert_int_eq (hf_crypt_passphrase ("correct horsf", &p2), 0);
  memset (&d, 0, sizeof d);
  memcpy (d.uuid, uuid_a, 16);
  d.block_size = 4096;
  d.size = 1 << 20;
  ck_assert_int_eq (hf_crypt_desc_seal (&d, &u1, dkey), 0);
  hf_vdesc_encode (&d, o);
  ck_assert_uint_eq (hf_le16 (o + 4), HF_VD_VERSION_CRYPT);
  ck_assert_int_eq (hf_vdesc_decode (o, sizeof o, &e, &bad), 0);
  ck_assert (e.flags & HF_VD_ENCRYPTED);
  ck_assert (memcmp (&e.crypt, &d.crypt, sizeof e.crypt) == 0);
  /* The data key never appears in the descriptor. */
  ck_assert (memmem (o, sizeof o, dkey, 16) == NULL);

  {
    char sdir[4096];
    struct hf_objstore *s, *w;

    snprintf (sdir, sizeof sdir, "%s/store", dir);
    ck_assert_int_eq (hf_objstore_dir_open (sdir, true, &s), 0);
    ck_assert_int_eq (hf_objstore_put (s, "v/volume", o, sizeof o, 0), 0);
    w = s;
    last_error[0] = '\0';
    ck_assert_int_eq (hf_crypt_attach (&w, "v/", NULL), ENOKEY);
    ck_assert (strstr (last_error, "is encrypted") != NULL);
    ck_assert_int_eq (hf_crypt_attach (&w, "v/", &u2), EKEYREJECTED);
    ck_assert (strstr (last_error, "wrong key for volume") != NULL);
    ck_assert_int_eq (hf_crypt_attach (&w, "v/", &p1), EINVAL);
    ck_assert (w == s);
    /* Changing any authenticated byte of the descriptor (here the
     * size; the CRC fixed up) makes the key fail to unwrap. */
    {
      struct hf_vdesc f = d;

      f.size += 4096;
      hf_vdesc_encode (&f, o);
      ck_assert_int_eq (hf_objstore_put (s, "v/volume", o, sizeof o, 0), 0);
      ck_assert_int_eq (hf_crypt_attach (&w, "v/", &u1), EKEYREJECTED);
      hf_vdesc_encode (&d, o);
      ck_assert_int_eq (hf_objstore_put (s, "v/volume", o, sizeof o, 0), 0);
    }
    ck_assert_int_eq (hf_crypt_attach (&w, "v/", &u1), 0);
    ck_assert (w != s);
    {
      uint8_t got[32];

      ck_assert (hf_objstore_crypt_key (w, got));
      ck_assert (memcmp (got, dkey, 32) == 0);
    }
    /* Rekey to a passphrase: the old key is refused, the new one gives
     * the same data key. */
    setenv ("HF_CRYPT_SCRYPT_LOG2N", "10", 1);
    ck_assert_int_eq (hf_crypt_rekey (s, "v/", &u2, &p1), EKEYREJECTED);
    ck_assert_int_eq (hf_crypt_rekey (s, "v/", &u1, &p1), 0);
    hf_objstore_close (w);      /* closes s too */
    ck_assert_int_eq (hf_objstore_dir_open (sdir, false, &s), 0);
    w = s;
    ck_assert_int_eq (hf_crypt_attach (&w, "v/", &u1), EINVAL);
    ck_assert_int_eq (hf_crypt_attach (&w, "v/", &p2), EKEYREJECTED);
    ck_assert_int_eq (hf_crypt_attach (&w, "v/", &p1), 0);
    {
      uint8_t got[32];

      ck_assert (hf_objstore_crypt_key (w, got));
      ck_assert (memcmp (got, dkey, 32) == 0);
    }
    hf_objstore_close (w);
  }
  hf_user_key_clear (&u1);
  hf_user_key_clear (&u2);
  hf_user_key_clear (&p1);
  hf_user_key_clear (&p2);
  free (k1);
  free (k2);
  rm_tmpdir (dir);
}
END_TEST

/* Does any regular file under dir contain marker? */
static int
tree_contains (const char *dir, const char *marker)
{
  DIR *d = opendir (dir);
  struct dirent *e;
  int found = 0;

  ck_assert_ptr_nonnull (d);
  while (!found && (e = readdir (d)) != NULL) {
    char p[4096];
    struct stat st;

    if (e->d_name[0] == '.')
      continue;
    snprintf (p, sizeof p, "%s/%s", dir, e->d_name);
    ck_assert_int_eq (lstat (p, &st), 0);
    if (S_ISDIR (st.st_mode))
      found = tree_contains (p, marker);
    else if (S_ISREG (st.st_mode)) {
      FILE *f = fopen (p, "r");
      char *buf = malloc (st.st_size + 1);
      size_t n = fread (buf, 1, st.st_size, f);

      fclose (f);
      found = memmem (buf, n, marker, strlen (marker)) != NULL;
      free (buf);
    }
  }
  closedir (d);
  return found;
}

/* The store wrapper on its own: ranges, sizes, lists, damage. */
START_TEST (test_store)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s, *w;
  struct hf_objstore_info oi;
  struct hf_objstore_stats st;
  uint8_t obj[10000], buf[10000];
  void *all;
  size_t got, len;
  char path[4096];

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_objstore_crypt_open (s, "p/", uuid_a, dkey, &w), 0);
  fill_rnd (obj, sizeof obj);
  memcpy (obj + 5000, "PLAINTEXT-MARKER", 16);
  ck_assert_int_eq (hf_objstore_put (w, "p/seg/a", obj, sizeof obj,
                                     HF_PUT_IF_NONE_MATCH), 0);
  /* The same bytes again find their own object (deterministic). */
  ck_assert_int_eq (hf_objstore_put (w, "p/seg/a", obj, sizeof obj,
                                     HF_PUT_IF_NONE_MATCH), EEXIST);
  ck_assert (!tree_contains (dir, "PLAINTEXT-MARKER"));
  ck_assert_int_eq (hf_objstore_head (w, "p/seg/a", &oi), 0);
  ck_assert_uint_eq (oi.size, sizeof obj);
  /* Ranges across chunk boundaries and past the end. */
  {
    static const struct { uint64_t off; size_t len; } rg[] = {
      { 0, 256 }, { 4000, 200 }, { 4096, 4096 }, { 8000, 2000 },
      { 9990, 100 }, { 10000, 10 }, { 20000, 10 },
    };
    size_t i;

    for (i = 0; i < sizeof rg / sizeof rg[0]; i++) {
      size_t want = rg[i].off >= sizeof obj ? 0
        : sizeof obj - rg[i].off < rg[i].len ? sizeof obj - rg[i].off
        : rg[i].len;

      ck_assert_int_eq (hf_objstore_get (w, "p/seg/a", rg[i].off, rg[i].len,
                                         buf, &got), 0);
      ck_assert_uint_eq (got, want);
      ck_assert (memcmp (buf, obj + (want ? rg[i].off : 0), want) == 0);
    }
  }
  ck_assert_int_eq (hf_objstore_get_all (w, "p/seg/a", 1 << 20, &all, &len),
                    0);
  ck_assert_uint_eq (len, sizeof obj);
  ck_assert (memcmp (all, obj, len) == 0);
  free (all);
  /* Requests and bytes are the inner store's, in stored bytes. */
  hf_objstore_get_stats (w, &st);
  ck_assert_uint_ge (st.requests[HF_OP_PUT], 2);
  ck_assert_uint_ge (st.bytes_out, hf_crypt_stored_size (sizeof obj));

  /* A copy under another name is refused. */
  snprintf (path, sizeof path, "%s/p%%/seg%%/a", dir);
  {
    char p2[4096];
    char cmd[9000];

    snprintf (p2, sizeof p2, "%s/p%%/seg%%/b", dir);
    snprintf (cmd, sizeof cmd, "cp '%s' '%s'", path, p2);
    ck_assert_int_eq (system (cmd), 0);
    last_error[0] = '\0';
    ck_assert_int_eq (hf_objstore_get (w, "p/seg/b", 0, 100, buf, &got),
                      EBADMSG);
    ck_assert (strstr (last_error, "p/seg/b") != NULL);
    ck_assert (strstr (last_error, "authentication failed") != NULL);
  }
  /* A flipped byte in the middle chunk: that chunk's reads fail, naming
   * the object and the offset; the others still read. */
  xor_byte (path, HF_CRYPT_SCHUNK + 100, 0x01);
  last_error[0] = '\0';
  ck_assert_int_eq (hf_objstore_get (w, "p/seg/a", 4096, 10, buf, &got),
                    EBADMSG);
  ck_assert (strstr (last_error, "p/seg/a") != NULL);
  ck_assert (strstr (last_error, "offset 4124") != NULL);
  ck_assert_int_eq (hf_objstore_get (w, "p/seg/a", 0, 10, buf, &got), 0);
  ck_assert_int_eq (hf_objstore_get_all (w, "p/seg/a", 1 << 20, &all, &len),
                    EBADMSG);
  /* The descriptor passes through in the clear. */
  ck_assert_int_eq (hf_objstore_put (w, "p/volume", "clear", 5, 0), 0);
  snprintf (path, sizeof path, "%s/p%%/volume", dir);
  ck_assert (text_is (path, "clear"));
  /* Keys outside the volume are refused. */
  ck_assert_int_eq (hf_objstore_put (w, "q/seg/a", "x", 1, 0), EINVAL);
  hf_objstore_close (w);
  rm_tmpdir (dir);
}
END_TEST

/* Object key derivations (hf_crypt_obj_key is wrapped at link time to
 * count them, tests/Makefile.am). */
static atomic_uint derivations;
extern int __real_hf_crypt_obj_key (const uint8_t *, const uint8_t *,
                                    const char *, struct hf_crypt_objkey *);
extern int __wrap_hf_crypt_obj_key (const uint8_t *, const uint8_t *,
                                    const char *, struct hf_crypt_objkey *);
int
__wrap_hf_crypt_obj_key (const uint8_t *dk, const uint8_t *uuid,
                         const char *name, struct hf_crypt_objkey *k)
{
  atomic_fetch_add (&derivations, 1);
  return __real_hf_crypt_obj_key (dk, uuid, name, k);
}

struct key_reader {
  struct hf_objstore *w;
  const uint8_t *objs;          /* 8 objects of 10000 bytes */
  int bad;
};

static void *
key_reader (void *arg)
{
  struct key_reader *kr = arg;
  uint8_t buf[4096];
  char name[32];
  size_t got;
  unsigned i;

  for (i = 0; i < 400; i++) {
    unsigned o = i % 8, off = (i * 977) % 5900;
    snprintf (name, sizeof name, "p/seg/k%u", o);
    if (hf_objstore_get (kr->w, name, off, 4096, buf, &got) != 0 ||
        got != 4096 || memcmp (buf, kr->objs + o * 10000 + off, 4096) != 0)
      kr->bad++;
  }
  return NULL;
}

static double
cpu_us (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_PROCESS_CPUTIME_ID, &ts);
  return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

/* An object's keys are derived once, not per request (a segment is read
 * many times), and kept for the 64 objects used last: the 65th evicts
 * the oldest.  Threads reading the same objects at once get the right
 * bytes (a kept key serves one request at a time).  With
 * HF_CRYPT_BENCH=N set, also prints the CPU time of a 4 KiB ranged GET
 * whose key is kept and of one whose key is not (derived, as every
 * request did before keys were kept): run by hand, no timing asserted. */
START_TEST (test_keys_kept)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s, *w;
  uint8_t *objs = malloc (8 * 10000), obj[10000], buf[4096];
  struct key_reader kr[4];
  pthread_t t[4];
  char name[32];
  unsigned d0, i;
  size_t got;

  ck_assert (objs != NULL);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_objstore_crypt_open (s, "p/", uuid_a, dkey, &w), 0);
  fill_rnd (obj, sizeof obj);
  d0 = atomic_load (&derivations);
  ck_assert_int_eq (hf_objstore_put (w, "p/seg/a", obj, sizeof obj, 0), 0);
  for (i = 0; i < 10; i++) {
    ck_assert_int_eq (hf_objstore_get (w, "p/seg/a", i * 500, 4096, buf,
                                       &got), 0);
    ck_assert_uint_eq (got, 4096);
    ck_assert (memcmp (buf, obj + i * 500, 4096) == 0);
  }
  ck_assert_uint_eq (atomic_load (&derivations) - d0, 1);
  /* 64 other objects: "p/seg/a" is the least recently used and goes;
   * the newest stays. */
  for (i = 0; i < 64; i++) {
    snprintf (name, sizeof name, "p/seg/o%u", i);
    ck_assert_int_eq (hf_objstore_put (w, name, obj, 100, 0), 0);
  }
  ck_assert_uint_eq (atomic_load (&derivations) - d0, 65);
  ck_assert_int_eq (hf_objstore_get (w, "p/seg/o63", 0, 100, buf, &got), 0);
  ck_assert_uint_eq (atomic_load (&derivations) - d0, 65);
  ck_assert_int_eq (hf_objstore_get (w, "p/seg/a", 0, 4096, buf, &got), 0);
  ck_assert (memcmp (buf, obj, 4096) == 0);
  ck_assert_uint_eq (atomic_load (&derivations) - d0, 66);

  /* Four threads on eight objects. */
  fill_rnd (objs, 8 * 10000);
  for (i = 0; i < 8; i++) {
    snprintf (name, sizeof name, "p/seg/k%u", i);
    ck_assert_int_eq (hf_objstore_put (w, name, objs + i * 10000, 10000, 0),
                      0);
  }
  for (i = 0; i < 4; i++) {
    kr[i] = (struct key_reader) { w, objs, 0 };
    ck_assert_int_eq (pthread_create (&t[i], NULL, key_reader, &kr[i]), 0);
  }
  for (i = 0; i < 4; i++) {
    ck_assert_int_eq (pthread_join (t[i], NULL), 0);
    ck_assert_int_eq (kr[i].bad, 0);
  }

  if (getenv ("HF_CRYPT_BENCH")) {
    unsigned n = (unsigned) atoi (getenv ("HF_CRYPT_BENCH")), j;
    double t0, kept, derived;

    t0 = cpu_us ();
    for (j = 0; j < n; j++)
      ck_assert_int_eq (hf_objstore_get (w, "p/seg/a", 4096, 4096, buf,
                                         &got), 0);
    kept = (cpu_us () - t0) / n;
    /* 80 objects in turn: each request misses the 64 kept keys. */
    for (i = 0; i < 80; i++) {
      snprintf (name, sizeof name, "p/seg/b%u", i);
      ck_assert_int_eq (hf_objstore_put (w, name, obj, sizeof obj, 0), 0);
    }
    t0 = cpu_us ();
    for (j = 0; j < n; j++) {
      snprintf (name, sizeof name, "p/seg/b%u", j % 80);
      ck_assert_int_eq (hf_objstore_get (w, name, 4096, 4096, buf, &got),
                        0);
    }
    derived = (cpu_us () - t0) / n;
    printf ("crypt store, 4 KiB ranged GET over the directory store, "
            "CPU per GET (%u GETs): key kept %.1f us, key derived %.1f us\n",
            n, kept, derived);
  }
  hf_objstore_close (w);
  free (objs);
  rm_tmpdir (dir);
}
END_TEST

/* An encrypted volume end to end: create, write a marker, reopen with
 * the key and read it back; the store holds no plaintext. */
START_TEST (test_volume)
{
  char *dir = make_tmpdir ();
  char *kf = write_key_file (dir, "key", HEXKEY1, 0600);
  char sdir[4096];
  struct hf_user_key uk;
  struct hf_objstore *s;
  struct hf_volume *v;
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .checkpoint_segments = 2 };
  static uint8_t blk[64 * 1024], got[64 * 1024];
  int i;

  snprintf (sdir, sizeof sdir, "%s/store", dir);
  ck_assert_int_eq (hf_crypt_key_file (kf, &uk), 0);
  ck_assert_int_eq (hf_objstore_dir_open (sdir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create_key (s, "v/", 8 << 20, 4096, &uk), 0);
  ck_assert_int_eq (hf_crypt_attach (&s, "v/", &uk), 0);
  for (i = 0; i < (int) sizeof blk; i += 32)
    memcpy (blk + i, "HF-SECRET-MARKER-0123456789abcde", 32);
  ck_assert_int_eq (hf_volume_open (s, "v/", &o, &v), 0);
  for (i = 0; i < 6; i++) {
    ck_assert_int_eq (hf_volume_pwrite (v, blk, sizeof blk,
                                        (uint64_t) i * 1048576, 0), 0);
    ck_assert_int_eq (hf_volume_flush (v), 0);
  }
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (s);
  ck_assert (!tree_contains (sdir, "HF-SECRET-MARKER"));

  ck_assert_int_eq (hf_objstore_dir_open (sdir, false, &s), 0);
  ck_assert_int_eq (hf_crypt_attach (&s, "v/", &uk), 0);
  o.readonly = true;
  ck_assert_int_eq (hf_volume_open (s, "v/", &o, &v), 0);
  for (i = 0; i < 6; i++) {
    ck_assert_int_eq (hf_volume_pread (v, got, sizeof got,
                                       (uint64_t) i * 1048576), 0);
    ck_assert (memcmp (got, blk, sizeof blk) == 0);
  }
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (s);

  /* Without the crypt store the engine sees only damage: never the
   * data. */
  ck_assert_int_eq (hf_objstore_dir_open (sdir, false, &s), 0);
  ck_assert_int_ne (hf_volume_open (s, "v/", &o, &v), 0);
  hf_objstore_close (s);
  hf_user_key_clear (&uk);
  free (kf);
  rm_tmpdir (dir);
}
END_TEST

/* A clone reads an encrypted parent only with the parent's data key:
 * a parent showing another key check is refused, and so is a parent
 * that is encrypted when the clone was opened without a key. */
START_TEST (test_lineage_parent_key)
{
  char *dir = make_tmpdir ();
  char *kf = write_key_file (dir, "key", HEXKEY1, 0600);
  char pdir[4096], cdir[4096], url[4200];
  struct hf_user_key uk;
  struct hf_objstore *ps, *cs, *w;
  struct hf_lineage *l = NULL;
  struct hf_vdesc pd, cd;
  uint8_t o[HF_VD_SIZE], other[32];
  int i;

  snprintf (pdir, sizeof pdir, "%s/parent", dir);
  snprintf (cdir, sizeof cdir, "%s/clone", dir);
  snprintf (url, sizeof url, "file://%s", pdir);
  ck_assert_int_eq (hf_crypt_key_file (kf, &uk), 0);
  for (i = 0; i < 32; i++)
    other[i] = dkey[i] ^ 0x5a;
  memset (&pd, 0, sizeof pd);
  memcpy (pd.uuid, uuid_a, 16);
  pd.block_size = 4096;
  pd.size = 1 << 20;
  ck_assert_int_eq (hf_crypt_desc_seal (&pd, &uk, dkey), 0);
  hf_vdesc_encode (&pd, o);
  ck_assert_int_eq (hf_objstore_dir_open (pdir, true, &ps), 0);
  ck_assert_int_eq (hf_objstore_put (ps, "volume", o, sizeof o, 0), 0);
  hf_objstore_close (ps);

  memset (&cd, 0, sizeof cd);
  memcpy (cd.uuid, uuid_b, 16);
  cd.block_size = 4096;
  cd.size = 1 << 20;
  cd.flags = HF_VD_CLONE;
  cd.parent_seq = 5;
  memcpy (cd.parent_uuid, uuid_a, 16);
  strcpy (cd.parent_url, url);
  ck_assert_int_eq (hf_objstore_dir_open (cdir, true, &cs), 0);
  /* The clone's own data key is another one: refused. */
  ck_assert_int_eq (hf_crypt_desc_seal (&cd, &uk, other), 0);
  hf_vdesc_encode (&cd, o);
  ck_assert_int_eq (hf_objstore_put (cs, "volume", o, sizeof o, 0), 0);
  w = cs;
  ck_assert_int_eq (hf_crypt_attach (&w, "", &uk), 0);
  last_error[0] = '\0';
  ck_assert_int_eq (hf_lineage_open (w, "", NULL, &l), EKEYREJECTED);
  ck_assert (strstr (last_error, "another data key") != NULL);
  hf_objstore_close (w);
  /* A plain clone descriptor naming an encrypted parent: ENOKEY. */
  ck_assert_int_eq (hf_objstore_dir_open (cdir, false, &cs), 0);
  cd.flags = HF_VD_CLONE;
  memset (&cd.crypt, 0, sizeof cd.crypt);
  hf_vdesc_encode (&cd, o);
  ck_assert_int_eq (hf_objstore_put (cs, "volume", o, sizeof o, 0), 0);
  ck_assert_int_eq (hf_lineage_open (cs, "", NULL, &l), ENOKEY);
  /* The same data key: the parent's level is a crypt store. */
  ck_assert_int_eq (hf_crypt_desc_seal (&cd, &uk, dkey), 0);
  hf_vdesc_encode (&cd, o);
  ck_assert_int_eq (hf_objstore_put (cs, "volume", o, sizeof o, 0), 0);
  w = cs;
  ck_assert_int_eq (hf_crypt_attach (&w, "", &uk), 0);
  ck_assert_int_eq (hf_lineage_open (w, "", NULL, &l), 0);
  ck_assert_uint_eq (l->n, 2);
  {
    uint8_t got[32];

    ck_assert (hf_objstore_crypt_key (l->lv[1].store, got));
    ck_assert (memcmp (got, dkey, 32) == 0);
  }
  hf_lineage_close (l);
  hf_objstore_close (w);
  hf_user_key_clear (&uk);
  free (kf);
  rm_tmpdir (dir);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("crypt");
  TCase *tc = tcase_create ("core");

  hf_log_set_sink (log_capture);
  setenv ("HF_CRYPT_SCRYPT_LOG2N", "10", 1);
  fill_rnd (dkey, sizeof dkey);
  tcase_set_timeout (tc, 120);
  tcase_add_test (tc, test_sizes_roundtrip);
  tcase_add_test (tc, test_deterministic_nonce);
  tcase_add_test (tc, test_known_answer);
  tcase_add_test (tc, test_every_byte_authenticated);
  tcase_add_test (tc, test_key_files);
  tcase_add_test (tc, test_wrap);
  tcase_add_test (tc, test_store);
  tcase_add_test (tc, test_keys_kept);
  tcase_add_test (tc, test_volume);
  tcase_add_test (tc, test_lineage_parent_key);
  suite_add_tcase (s, tc);
  return run_suite (s);
}
