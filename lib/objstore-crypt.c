/* hyperfile: the encrypting store (objstore.h, "crypt") and the volume
 * key glue: creating, opening and rewrapping an encrypted volume's key.
 *
 * A crypt store wraps the store of one volume (it owns and closes it)
 * and turns every object under the volume's prefix except the
 * descriptor into a sealed object (crypt.h, hyperfile-format(5)) on the
 * way in, and back on the way out, verifying every chunk it returns.
 * Everything above it (segments, nodes, leases, snapshots, GC, fsck,
 * history, clones) is unchanged: it sees plaintext objects with their
 * plaintext sizes.  A ranged GET reads the whole chunks that cover it
 * (4124 stored bytes per 4096).
 *
 * A chunk that does not verify is EBADMSG with a log line naming the
 * object and the stored byte offset, except the last chunk of an object
 * read to its end: an interrupted PUT that a store kept cannot be told
 * from damage there, so the object is taken to end before it (a warning
 * names it) and the layer above, which knows from the authenticated
 * header how long the object must be, reports it as incomplete or
 * truncated.  Chunks are bound to their index and to the last-chunk
 * flag, so an object cannot be cut at a chunk boundary unnoticed by a
 * whole-object read.
 *
 * Object keys.  Deriving an object's keys (HKDF and three cipher key
 * schedules, hf_crypt_obj_key) cost about as much as opening 2-3
 * chunks, and a segment is read many times (one ranged GET per read
 * that misses the cache), so derived keys are kept, by name, in a small
 * table (HF_CSTORE_KEYS, least recently used out).  Their OpenSSL
 * contexts serve one thread at a time, so a request takes its key out
 * of the table and puts it back when done; a second request for the
 * same object meanwhile derives its own (the one returned last is
 * kept, the other wiped).  Evicted keys and those left at close are
 * wiped (hf_crypt_obj_key_clear: OPENSSL_cleanse).
 *
 * Counters: the crypt store makes no request of its own; its stats are
 * the inner store's (stats_store), in stored bytes.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>

#include "cleanup.h"
#include "crypt.h"
#include "lineage.h"
#include "log.h"
#include "objstore.h"

#define HF_CSTORE_ALIGN 4096
#define HF_CSTORE_SPARE 4               /* the engine's uploads at once */
#define HF_CSTORE_SPARE_MIN ((size_t) 1 << 20)
/* Derived object keys kept: the segments a volume reads at once (8
 * read threads, read-ahead, the frame tables of 64 segments) and then
 * some; about 1.7 KiB each with OpenSSL's contexts. */
#define HF_CSTORE_KEYS 64

/* A kept object key (slot free when name[0] is NUL). */
struct hf_cstore_key {
  char name[HF_OBJSTORE_KEY_MAX + 1];
  uint64_t used;                /* LRU tick */
  struct hf_crypt_objkey k;
};

struct hf_cstore {
  struct hf_objstore handle;    /* handle.priv points to this struct */
  struct hf_objstore *inner;    /* owned */
  char *prefix;                 /* owned: the volume's key prefix */
  size_t plen;
  uint8_t uuid[HF_UUID_SIZE];   /* the volume's */
  uint8_t dkey[HF_CRYPT_KEY_SIZE];  /* the data key; wiped at close */
  /* Sealed-object buffers kept for the next puts: a fresh buffer of a
   * segment's size costs a page fault and a zeroed page per 4 KiB,
   * about a third of sealing it. */
  pthread_mutex_t spare_lock;   /* protects spare and n_spare */
  struct { uint8_t *p; size_t cap; } spare[HF_CSTORE_SPARE];
  unsigned n_spare;
  pthread_mutex_t key_lock;     /* protects keys and key_tick; a leaf,
                                   never held while deriving */
  struct hf_cstore_key *keys;   /* HF_CSTORE_KEYS, owned */
  uint64_t key_tick;
};
/* Everything else is immutable after open: no lock. */

static const struct hf_objstore_ops hf_cstore_ops;

/* A buffer of at least len bytes for a sealed object; *cap is what it
 * holds.  Page-aligned, as the engine's own object buffers are: the
 * directory store writes an aligned object of 1 MiB or more with
 * O_DIRECT, and a buffered write of a fresh segment costs several times
 * its sealing (objstore-dir.c). */
static uint8_t *
hf_cstore_buf_get (struct hf_cstore *c, size_t len, size_t *cap)
{
  uint8_t *p = NULL;
  unsigned i, best = UINT_MAX;

  if (len >= HF_CSTORE_SPARE_MIN) {
    pthread_mutex_lock (&c->spare_lock);
    for (i = 0; i < c->n_spare; i++)
      if (c->spare[i].cap >= len &&
          (best == UINT_MAX || c->spare[i].cap < c->spare[best].cap))
        best = i;
    if (best != UINT_MAX) {
      p = c->spare[best].p;
      *cap = c->spare[best].cap;
      c->spare[best] = c->spare[--c->n_spare];
    }
    pthread_mutex_unlock (&c->spare_lock);
    if (p)
      return p;
    /* 1/8 more, rounded to 1 MiB: the next segments are about as big. */
    *cap = (len + len / 8 + HF_CSTORE_SPARE_MIN - 1)
      & ~(size_t) (HF_CSTORE_SPARE_MIN - 1);
  }
  else
    *cap = (len + HF_CSTORE_ALIGN - 1) & ~(size_t) (HF_CSTORE_ALIGN - 1);
  if (posix_memalign ((void **) &p, HF_CSTORE_ALIGN, *cap) != 0)
    return NULL;
  return p;
}

/* Keep buffer p (cap bytes; it holds only ciphertext) for reuse, or
 * free it; a full pool keeps the larger buffers. */
static void
hf_cstore_buf_put (struct hf_cstore *c, uint8_t *p, size_t cap)
{
  unsigned i, small = 0;

  if (cap >= HF_CSTORE_SPARE_MIN) {
    pthread_mutex_lock (&c->spare_lock);
    if (c->n_spare < HF_CSTORE_SPARE) {
      c->spare[c->n_spare].p = p;
      c->spare[c->n_spare++].cap = cap;
      p = NULL;
    }
    else {
      for (i = 1; i < c->n_spare; i++)
        if (c->spare[i].cap < c->spare[small].cap)
          small = i;
      if (c->spare[small].cap < cap) {
        uint8_t *q = c->spare[small].p;

        c->spare[small].p = p;
        c->spare[small].cap = cap;
        p = q;
      }
    }
    pthread_mutex_unlock (&c->spare_lock);
  }
  free (p);
}

/* The keys of object name into *k: the kept ones (taken out of the
 * table), or derived.  Give them back with hf_cstore_key_put. */
static int
hf_cstore_key_get (struct hf_cstore *c, const char *name,
                   struct hf_crypt_objkey *k)
{
  unsigned i;

  pthread_mutex_lock (&c->key_lock);
  for (i = 0; i < HF_CSTORE_KEYS; i++)
    if (c->keys[i].name[0] && strcmp (c->keys[i].name, name) == 0) {
      *k = c->keys[i].k;
      memset (&c->keys[i].k, 0, sizeof c->keys[i].k);
      c->keys[i].name[0] = '\0';
      pthread_mutex_unlock (&c->key_lock);
      return 0;
    }
  pthread_mutex_unlock (&c->key_lock);
  return hf_crypt_obj_key (c->dkey, c->uuid, name, k);
}

/* Keep the keys *k of object name (taken over: *k is cleared), wiping
 * the least recently used ones if the table is full. */
static void
hf_cstore_key_put (struct hf_cstore *c, const char *name,
                   struct hf_crypt_objkey *k)
{
  struct hf_crypt_objkey old;
  struct hf_cstore_key *t = NULL;
  size_t n = strlen (name);
  unsigned i;

  memset (&old, 0, sizeof old);
  if (n > HF_OBJSTORE_KEY_MAX) {
    hf_crypt_obj_key_clear (k);
    return;
  }
  pthread_mutex_lock (&c->key_lock);
  for (i = 0; i < HF_CSTORE_KEYS; i++) {
    struct hf_cstore_key *e = &c->keys[i];

    if (e->name[0] && strcmp (e->name, name) == 0) {
      t = NULL;                 /* another request gave its back first */
      old = *k;
      break;
    }
    if (t == NULL || (t->name[0] && (!e->name[0] || e->used < t->used)))
      t = e;
  }
  if (t) {
    if (t->name[0])
      old = t->k;
    memcpy (t->name, name, n + 1);
    t->k = *k;
    t->used = ++c->key_tick;
  }
  pthread_mutex_unlock (&c->key_lock);
  memset (k, 0, sizeof *k);
  hf_crypt_obj_key_clear (&old);        /* NULL contexts: only a wipe */
}

/* The name the object's key derives from (below the prefix), or NULL
 * for an object stored in the clear (the descriptor).  EINVAL (logged)
 * for a key outside the volume. */
static int
hf_cstore_name (struct hf_cstore *c, const char *key, const char **name)
{
  if (strncmp (key, c->prefix, c->plen) != 0) {
    hf_error ("crypt: %s: key %s is outside the volume's prefix",
              hf_objstore_describe (c->inner), key);
    return EINVAL;
  }
  *name = strcmp (key + c->plen, "volume") == 0 ? NULL : key + c->plen;
  return 0;
}

static void
hf_cstore_bad (struct hf_cstore *c, const char *key, uint64_t soff)
{
  hf_error ("object %s in %s: corrupt at byte offset %" PRIu64
            ": authentication failed (wrong key, or the object was damaged, "
            "or moved or copied from another place or volume)", key,
            hf_objstore_describe (c->inner), soff);
}

/* Open the stored chunks in s (slen bytes starting with chunk first);
 * ends: whether the object ends within s (a shorter read than asked).
 * Writes the plaintext to pt and its length to *plen. */
static int
hf_cstore_open_run (struct hf_cstore *c, const struct hf_crypt_objkey *k,
                    const char *key, uint64_t first, const uint8_t *s,
                    size_t slen, bool ends, uint8_t *pt, size_t *plen)
{
  size_t off = 0, out = 0;
  uint64_t i = first;

  while (off < slen) {
    size_t cs = slen - off < HF_CRYPT_SCHUNK ? slen - off : HF_CRYPT_SCHUNK;
    bool tail = off + cs == slen;
    int r;

    if (tail && ends)
      r = hf_crypt_open_chunk (k, c->uuid, i, true, s + off, cs, pt + out);
    else if (cs < HF_CRYPT_SCHUNK)
      r = EBADMSG;              /* a short chunk that is not the end */
    else {
      r = hf_crypt_open_chunk (k, c->uuid, i, false, s + off, cs, pt + out);
      /* The last chunk of a request may be the object's last. */
      if (r == EBADMSG && tail)
        r = hf_crypt_open_chunk (k, c->uuid, i, true, s + off, cs,
                                 pt + out);
    }
    if (r == EBADMSG && tail && ends) {
      hf_warn ("object %s in %s: the last chunk, at byte offset %"
                  PRIu64 ", does not verify: taking the object to end "
                  "before it (an interrupted upload, or damage)", key,
                  hf_objstore_describe (c->inner),
                  i * (uint64_t) HF_CRYPT_SCHUNK);
      break;
    }
    if (r == EBADMSG) {
      hf_cstore_bad (c, key, i * (uint64_t) HF_CRYPT_SCHUNK);
      return EBADMSG;
    }
    if (r)
      return r;
    out += cs - HF_CRYPT_OVERHEAD;
    off += cs;
    i++;
  }
  *plen = out;
  return 0;
}

static int
hf_cstore_get (struct hf_objstore *s, const char *key, uint64_t offset,
               size_t len, void *buf, size_t *got)
{
  struct hf_cstore *c = s->priv;
  struct hf_crypt_objkey k;
  const char *name;
  uint64_t a, b, skip;
  size_t slen, sgot = 0, plen = 0;
  CLEANUP_FREE uint8_t *sbuf = NULL, *pbuf = NULL;
  int r;

  if ((r = hf_cstore_name (c, key, &name)) != 0)
    return r;
  if (name == NULL)
    return hf_objstore_get (c->inner, key, offset, len, buf, got);
  a = offset / HF_CRYPT_CHUNK;
  b = (offset + len - 1) / HF_CRYPT_CHUNK;
  slen = (size_t) (b - a + 1) * HF_CRYPT_SCHUNK;
  sbuf = malloc (slen);
  pbuf = malloc ((size_t) (b - a + 1) * HF_CRYPT_CHUNK);
  if (sbuf == NULL || pbuf == NULL)
    return ENOMEM;
  r = hf_objstore_get (c->inner, key, a * HF_CRYPT_SCHUNK, slen, sbuf, &sgot);
  if (r)
    return r;
  if ((r = hf_cstore_key_get (c, name, &k)) != 0)
    return r;
  r = hf_cstore_open_run (c, &k, key, a, sbuf, sgot, sgot < slen, pbuf,
                          &plen);
  hf_cstore_key_put (c, name, &k);
  if (r)
    return r;
  skip = offset - a * HF_CRYPT_CHUNK;
  *got = plen > skip ? (plen - skip < len ? plen - skip : len) : 0;
  memcpy (buf, pbuf + skip, *got);
  OPENSSL_cleanse (pbuf, (size_t) (b - a + 1) * HF_CRYPT_CHUNK);
  return 0;
}

static int
hf_cstore_get_all (struct hf_objstore *s, const char *key, size_t max,
                   void **data, size_t *len)
{
  struct hf_cstore *c = s->priv;
  struct hf_crypt_objkey k;
  const char *name;
  CLEANUP_FREE uint8_t *sbuf = NULL;
  uint8_t *pbuf;
  size_t slen = 0, plen = 0;
  int r;

  if ((r = hf_cstore_name (c, key, &name)) != 0)
    return r;
  if (name == NULL)
    return hf_objstore_get_all (c->inner, key, max, data, len);
  r = hf_objstore_get_all (c->inner, key, hf_crypt_stored_size (max),
                           (void **) &sbuf, &slen);
  if (r)
    return r;
  pbuf = malloc (slen > 0 ? slen : 1);
  if (pbuf == NULL)
    return ENOMEM;
  if ((r = hf_cstore_key_get (c, name, &k)) == 0) {
    r = hf_cstore_open_run (c, &k, key, 0, sbuf, slen, true, pbuf, &plen);
    hf_cstore_key_put (c, name, &k);
  }
  if (r == 0 && plen > max) {
    hf_error ("%s: get '%s': larger than %zu bytes",
              hf_objstore_describe (c->inner), key, max);
    r = EIO;
  }
  if (r) {
    free (pbuf);
    return r;
  }
  *data = pbuf;
  *len = plen;
  return 0;
}

static int
hf_cstore_head (struct hf_objstore *s, const char *key,
                struct hf_objstore_info *info)
{
  struct hf_cstore *c = s->priv;
  const char *name;
  int r;

  if ((r = hf_cstore_name (c, key, &name)) != 0)
    return r;
  r = hf_objstore_head (c->inner, key, info);
  if (r == 0 && name != NULL)
    (void) hf_crypt_plain_size (info->size, &info->size);
  return r;
}

static int
hf_cstore_put (struct hf_objstore *s, const char *key, const void *data,
               size_t len, unsigned flags, const atomic_bool *cancel)
{
  struct hf_cstore *c = s->priv;
  struct hf_crypt_objkey k;
  const char *name;
  uint8_t *sbuf;
  size_t slen, cap;
  int r;

  if ((r = hf_cstore_name (c, key, &name)) != 0)
    return r;
  if (name == NULL)
    return hf_objstore_put_cancel (c->inner, key, data, len, flags, cancel);
  slen = hf_crypt_stored_size (len);
  if ((sbuf = hf_cstore_buf_get (c, slen, &cap)) == NULL)
    return ENOMEM;
  if ((r = hf_cstore_key_get (c, name, &k)) == 0) {
    r = hf_crypt_seal (&k, c->uuid, data, len, sbuf);
    hf_cstore_key_put (c, name, &k);
  }
  /* Sealing is deterministic, so a retried put sends the same bytes
   * and the stores' lost-answer check (objstore.h) still holds. */
  if (r == 0)
    r = hf_objstore_put_cancel (c->inner, key, sbuf, slen, flags, cancel);
  hf_cstore_buf_put (c, sbuf, cap);
  return r;
}

static int
hf_cstore_del (struct hf_objstore *s, const char *key)
{
  struct hf_cstore *c = s->priv;

  return hf_objstore_delete (c->inner, key);
}

static int
hf_cstore_delete_many (struct hf_objstore *s, const char *const *keys,
                       size_t n)
{
  struct hf_cstore *c = s->priv;

  return hf_objstore_delete_many (c->inner, keys, n);
}

struct hf_cstore_list {
  struct hf_cstore *c;
  hf_objstore_list_fn fn;
  void *opaque;
};

static int
hf_cstore_list_one (void *opaque, const char *key, uint64_t size)
{
  struct hf_cstore_list *l = opaque;
  struct hf_cstore *c = l->c;

  if (strncmp (key, c->prefix, c->plen) == 0 &&
      strcmp (key + c->plen, "volume") != 0)
    (void) hf_crypt_plain_size (size, &size);
  return l->fn (l->opaque, key, size);
}

static int
hf_cstore_list (struct hf_objstore *s, const char *prefix,
                const char *start_after, hf_objstore_list_fn fn,
                void *opaque)
{
  struct hf_cstore *c = s->priv;
  struct hf_cstore_list l = { c, fn, opaque };

  return hf_objstore_list (c->inner, prefix, start_after,
                           hf_cstore_list_one, &l);
}

static const char *
hf_cstore_describe (struct hf_objstore *s)
{
  struct hf_cstore *c = s->priv;

  return hf_objstore_describe (c->inner);
}

static struct hf_objstore *
hf_cstore_stats_store (struct hf_objstore *s)
{
  struct hf_cstore *c = s->priv;

  return c->inner;
}

static void
hf_cstore_close (struct hf_objstore *s)
{
  struct hf_cstore *c = s->priv;
  unsigned i;

  hf_objstore_close (c->inner);
  for (i = 0; i < c->n_spare; i++)
    free (c->spare[i].p);
  pthread_mutex_destroy (&c->spare_lock);
  for (i = 0; i < HF_CSTORE_KEYS; i++)
    hf_crypt_obj_key_clear (&c->keys[i].k);
  free (c->keys);
  pthread_mutex_destroy (&c->key_lock);
  OPENSSL_cleanse (c->dkey, sizeof c->dkey);
  free (c->prefix);
  free (c);
}

static const struct hf_objstore_ops hf_cstore_ops = {
  .name = "crypt",
  .get = hf_cstore_get,
  .get_all = hf_cstore_get_all,
  .head = hf_cstore_head,
  .put = hf_cstore_put,
  .del = hf_cstore_del,
  .delete_many = hf_cstore_delete_many,
  .list = hf_cstore_list,
  .describe = hf_cstore_describe,
  .close = hf_cstore_close,
  .stats_store = hf_cstore_stats_store,
};

int
hf_objstore_crypt_open (struct hf_objstore *inner, const char *prefix,
                        const uint8_t uuid[HF_UUID_SIZE],
                        const uint8_t dkey[HF_CRYPT_KEY_SIZE],
                        struct hf_objstore **out)
{
  struct hf_cstore *c = calloc (1, sizeof *c);

  if (c == NULL || (c->prefix = strdup (prefix ? prefix : "")) == NULL ||
      (c->keys = calloc (HF_CSTORE_KEYS, sizeof *c->keys)) == NULL) {
    if (c)
      free (c->prefix);
    free (c);
    return ENOMEM;
  }
  c->plen = strlen (c->prefix);
  pthread_mutex_init (&c->spare_lock, NULL);
  pthread_mutex_init (&c->key_lock, NULL);
  c->inner = inner;
  memcpy (c->uuid, uuid, HF_UUID_SIZE);
  memcpy (c->dkey, dkey, HF_CRYPT_KEY_SIZE);
  c->handle.ops = &hf_cstore_ops;
  c->handle.priv = c;
  *out = &c->handle;
  return 0;
}

bool
hf_objstore_crypt_key (struct hf_objstore *s,
                       uint8_t dkey[HF_CRYPT_KEY_SIZE])
{
  struct hf_cstore *c;

  if (s == NULL || s->ops != &hf_cstore_ops)
    return false;
  c = s->priv;
  memcpy (dkey, c->dkey, HF_CRYPT_KEY_SIZE);
  return true;
}

/* ---- The volume's key ---- */

#define VD(field) offsetof (struct hf_disk_volume, field)

/* The additional data a descriptor's wrap is bound to: every field but
 * magic, version, flags and vd_flat_seq (flatten rewrites those), the
 * wrap itself and the CRC (hyperfile-format(5), ENCRYPTION). */
#define HF_CRYPT_DESC_AAD \
  (5 + VD (vd_flat_seq) - VD (vd_block_size) + VD (vd_wrap_nonce) \
   - VD (vd_cipher))
static void
hf_crypt_desc_aad (const struct hf_vdesc *d, uint8_t aad[HF_CRYPT_DESC_AAD])
{
  uint8_t o[HF_VD_SIZE];
  size_t n = VD (vd_flat_seq) - VD (vd_block_size);

  hf_vdesc_encode (d, o);
  memcpy (aad, "HFVW1", 5);
  memcpy (aad + 5, o + VD (vd_block_size), n);
  memcpy (aad + 5 + n, o + VD (vd_cipher), VD (vd_wrap_nonce) - VD (vd_cipher));
}

int
hf_crypt_desc_seal (struct hf_vdesc *d, const struct hf_user_key *uk,
                    const uint8_t dkey[HF_CRYPT_KEY_SIZE])
{
  uint8_t aad[HF_CRYPT_DESC_AAD];
  int r;

  d->flags |= HF_VD_ENCRYPTED;
  if ((r = hf_crypt_wrap_prepare (&d->crypt, uk, dkey)) != 0)
    return r;
  hf_crypt_desc_aad (d, aad);
  return hf_crypt_wrap (&d->crypt, uk, dkey, aad, sizeof aad);
}

/* Unwrap d's key with uk; what names the volume in messages. */
static int
hf_crypt_desc_open (const struct hf_vdesc *d, const struct hf_user_key *uk,
                    const char *what, uint8_t dkey[HF_CRYPT_KEY_SIZE])
{
  uint8_t aad[HF_CRYPT_DESC_AAD];
  int r;

  if (uk == NULL) {
    hf_error ("volume %s is encrypted: give its key (plugin: key-file=PATH "
              "or key=PASSPHRASE; hyperfile: --key-file or --key)", what);
    return ENOKEY;
  }
  hf_crypt_desc_aad (d, aad);
  r = hf_crypt_unwrap (&d->crypt, uk, aad, sizeof aad, dkey);
  if (r == EINVAL)
    hf_error ("volume %s was encrypted with %s, not a %s", what,
              d->crypt.kdf == HF_VD_KDF_SCRYPT ? "a passphrase (key=)"
              : "a key file (key-file=)",
              uk->kdf == HF_VD_KDF_SCRYPT ? "passphrase" : "key file");
  else if (r == EKEYREJECTED)
    hf_error ("wrong key for volume %s (%s does not unwrap its data key)",
              what, uk->what ? uk->what : "the key");
  else if (r)
    hf_error ("volume %s: unwrapping its data key: %s", what, strerror (r));
  return r;
}

/* Read the descriptor at prefix, quietly for a missing one. */
static int
hf_crypt_read_desc (struct hf_objstore *s, const char *prefix,
                    struct hf_vdesc *d)
{
  char key[HF_OBJSTORE_KEY_MAX + 1];
  struct hf_objstore_info oi;
  int r;

  snprintf (key, sizeof key, "%svolume", prefix);
  r = hf_objstore_head (s, key, &oi);
  if (r)
    return r;
  return hf_vdesc_read (s, prefix, d);
}

int
hf_crypt_attach (struct hf_objstore **s, const char *prefix,
                 const struct hf_user_key *uk)
{
  const char *what = HF_OBJSTORE_NAME (*s, prefix);
  uint8_t dkey[HF_CRYPT_KEY_SIZE];
  struct hf_objstore *w;
  struct hf_vdesc d;
  int r;

  if ((*s)->ops == &hf_cstore_ops)
    return 0;                   /* already */
  r = hf_crypt_read_desc (*s, prefix, &d);
  if (r == ENOENT)
    return 0;                   /* no volume (yet): nothing to attach */
  if (r)
    return r;
  if (!(d.flags & HF_VD_ENCRYPTED)) {
    if (uk) {
      hf_error ("volume %s is not encrypted, but a key was given (%s)",
                what, uk->what ? uk->what : "key");
      return EINVAL;
    }
    return 0;
  }
  if ((r = hf_crypt_desc_open (&d, uk, what, dkey)) != 0)
    return r;
  r = hf_objstore_crypt_open (*s, prefix, d.uuid, dkey, &w);
  OPENSSL_cleanse (dkey, sizeof dkey);
  if (r == 0)
    *s = w;
  return r;
}

int
hf_crypt_rekey (struct hf_objstore *s, const char *prefix,
                const struct hf_user_key *old, const struct hf_user_key *nk)
{
  const char *what = HF_OBJSTORE_NAME (s, prefix);
  char key[HF_OBJSTORE_KEY_MAX + 1];
  uint8_t dkey[HF_CRYPT_KEY_SIZE], o[HF_VD_SIZE];
  struct hf_vdesc d;
  int r;

  if ((r = hf_crypt_read_desc (s, prefix, &d)) != 0) {
    if (r == ENOENT)
      hf_error ("no volume at %s", what);
    return r;
  }
  if (!(d.flags & HF_VD_ENCRYPTED)) {
    hf_error ("volume %s is not encrypted: nothing to rekey", what);
    return EINVAL;
  }
  if ((r = hf_crypt_desc_open (&d, old, what, dkey)) != 0)
    return r;
  r = hf_crypt_desc_seal (&d, nk, dkey);
  OPENSSL_cleanse (dkey, sizeof dkey);
  if (r)
    return r;
  hf_vdesc_encode (&d, o);
  snprintf (key, sizeof key, "%svolume", prefix);
  /* The one overwrite of a descriptor: atomic in every store, so a
   * reader sees the old wrap or the new, both of the same data key. */
  r = hf_objstore_put_retry (s, key, o, sizeof o, 0);
  if (r)
    hf_error ("volume %s: writing the rewrapped key: %s", what, strerror (r));
  return r;
}
