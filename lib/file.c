/* hyperfile: the public file-like API (libhyperfile/hyperfile.h).
 *
 * A thin layer over the engine: it turns a URL and an options struct
 * into a store, a block cache and a volume, and the seed's calls into
 * volume calls.  It lives in the engine's convenience library so that
 * the plugin and the admin command can use it too; the installed
 * libhyperfile.so is that library with only the hf_file_* symbols
 * exported (libhyperfile/libhyperfile.syms).
 *
 * Store opening mirrors the plugin's .get_ready and the admin command's
 * hf_tool_open_store (URL -> store, s3 reachability check, at= through
 * the history), built from the same lib/ functions.
 *
 * Everything in struct hf_file is immutable after hf_file_open; the
 * engine, the store, the cache and the history do their own locking,
 * which is why every call but close may run concurrently on a handle.
 *
 * The plugin and the admin command open their volumes here too, through
 * hf_file_open_ext (file-int.h), which takes what only they need.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hyperfile.h"

#include "cache.h"
#include "file-int.h"
#include "crypt.h"
#include "format.h"
#include "gc.h"
#include "history.h"
#include "lineage.h"
#include "log.h"
#include "objstore.h"
#include "volume.h"

_Static_assert (HF_FILE_LOG_ERROR == HF_LOG_ERROR &&
                HF_FILE_LOG_WARN == HF_LOG_WARN &&
                HF_FILE_LOG_INFO == HF_LOG_INFO &&
                HF_FILE_LOG_DEBUG == HF_LOG_DEBUG,
                "public log levels are the engine's");
_Static_assert (HF_FILE_MAX_SIZE == HF_MAX_VOLUME_SIZE,
                "the public size limit is the engine's");

/* The S3 settings strings a handle keeps: the volume and the history
 * use them after open to reach a clone's parents. */
enum { HF_FILE_S3_ENDPOINT, HF_FILE_S3_REGION, HF_FILE_S3_ACCESS,
       HF_FILE_S3_SECRET, HF_FILE_S3_TOKEN, HF_FILE_S3_PROFILE,
       HF_FILE_S3_CA, HF_FILE_S3__MAX };

struct hf_file {
  /* All fields: I (immutable after hf_file_open). */
  struct hf_volume *v;          /* owned */
  struct hf_objstore *store;    /* owned unless store_borrowed; v and
                                   the history borrow it */
  bool store_borrowed;          /* hf_file_ext gave it: not closed */
  char *prefix;                 /* owned: the key prefix in store */
  struct hf_cache *cache;       /* owned; NULL without cache_dir */
  struct hf_volume_hooks hooks; /* v borrows it */
  struct hf_s3_config s3;       /* strings point into str[], or are
                                   hf_file_ext's (borrowed) */
  char *str[HF_FILE_S3__MAX];   /* owned copies; secrets wiped at free */
  bool readonly;
  uint32_t block_size;
};

/* ---- options ---- */

void
hf_file_options_init (struct hf_file_options *opts)
{
  memset (opts, 0, sizeof *opts);
  opts->size = sizeof *opts;
}

/* Copy the caller's options into *o (this version's layout).  A caller
 * built against an older header passes a shorter struct (the missing
 * fields stay at their defaults); one built against a newer header may
 * pass a longer one only if it set nothing this version lacks. */
static int
hf_file_get_options (const struct hf_file_options *in,
                     struct hf_file_options *o)
{
  const size_t v1 = offsetof (struct hf_file_options, at) + sizeof o->at;
  size_t i;

  hf_file_options_init (o);
  if (in == NULL)
    return 0;
  if (in->size < v1) {
    hf_error ("hf_file_options: size %zu is too small (call "
              "hf_file_options_init)", in->size);
    return EINVAL;
  }
  for (i = sizeof *o; i < in->size; i++)
    if (((const unsigned char *) in)[i] != 0) {
      hf_error ("hf_file_options: an option this library version (%s) "
                "does not know is set", PACKAGE_VERSION);
      return EINVAL;
    }
  memcpy (o, in, in->size < sizeof *o ? in->size : sizeof *o);
  o->size = sizeof *o;
  if (o->flags & ~(HF_FILE_READONLY | HF_FILE_TAKEOVER |
                   HF_FILE_VIRTUAL_HOST | HF_FILE_NO_TLS_VERIFY |
                   HF_FILE_EXPRESS)) {
    hf_error ("hf_file_options: unknown flags 0x%x", o->flags);
    return EINVAL;
  }
  if (o->segment_size &&
      (o->segment_size < 65536 || o->segment_size > (UINT64_C (1) << 32))) {
    hf_error ("hf_file_options: segment_size %" PRIu64 ": between 64 KiB "
              "and 4 GiB", o->segment_size);
    return EINVAL;
  }
  if (o->block_size &&
      (o->block_size < 512 || o->block_size > 65536 ||
       (o->block_size & (o->block_size - 1)))) {
    hf_error ("hf_file_options: block_size %" PRIu32 ": a power of 2 from "
              "512 to 65536", o->block_size);
    return EINVAL;
  }
  if (o->cache_size && o->cache_size < 1024 * 1024) {
    hf_error ("hf_file_options: cache_size %" PRIu64 ": at least 1 MiB",
              o->cache_size);
    return EINVAL;
  }
  if (o->at && hf_history_check_at (o->at) != 0)
    return EINVAL;              /* logged what is wrong */
  if (o->key_file && o->key) {
    hf_error ("hf_file_options: key_file and key are both set (a volume "
              "has one kind of key)");
    return EINVAL;
  }
  if (o->key && o->key[0] == '\0') {
    hf_error ("hf_file_options: key (a passphrase) is empty");
    return EINVAL;
  }
  return 0;
}

/* The user's key the options give, if any: *have tells.  Release *uk
 * with hf_user_key_clear.  A key file that cannot be used is an error
 * (logged by crypt.c: EPERM for one others can read, EINVAL for its
 * content, or the errno of opening it). */
static int
hf_file_user_key (const struct hf_file_options *o, struct hf_user_key *uk,
                  bool *have)
{
  int r = 0;

  memset (uk, 0, sizeof *uk);
  *have = o->key_file != NULL || o->key != NULL;
  if (o->key_file)
    r = hf_crypt_key_file (o->key_file, uk);
  else if (o->key)
    r = hf_crypt_passphrase (o->key, uk);
  return r;
}

/* The S3 settings of o, with strings borrowed from o. */
static void
hf_file_s3_config (const struct hf_file_options *o, struct hf_s3_config *c)
{
  memset (c, 0, sizeof *c);
  c->endpoint = o->endpoint;
  c->region = o->region;
  c->access_key = o->access_key;
  c->secret_key = o->secret_key;
  c->session_token = o->session_token;
  c->profile = o->profile;
  c->ca_file = o->ca_file;
  c->virtual_host = (o->flags & HF_FILE_VIRTUAL_HOST) != 0;
  c->express = (o->flags & HF_FILE_EXPRESS) != 0;
  c->tls_verify = (o->flags & HF_FILE_NO_TLS_VERIFY) == 0;
}

/* Open url's store (creating a missing directory if create) and, for
 * S3, contact it once so that a wrong endpoint, bucket or key is one
 * clear error now; no crypt store (hf_file_create writes the descriptor
 * on the raw store).  On success *s and *prefix are the caller's; on
 * error they are unchanged (hf_file_open_ext frees what they point
 * to). */
static int
hf_file_store_open_raw (const char *url, const struct hf_s3_config *c,
                        bool create, struct hf_objstore **s, char **prefix)
{
  struct hf_objstore *ns;
  char *np;
  int r;

  if (url == NULL) {
    hf_error ("hf_file: url is NULL");
    return EINVAL;
  }
  r = hf_objstore_open_url (url, c, create, &ns, &np);
  if (r)
    return r;                   /* the store said why */
  if (strncmp (url, "s3://", 5) == 0 && (r = hf_objstore_s3_check (ns))) {
    hf_objstore_close (ns);
    free (np);
    return r;
  }
  *s = ns;
  *prefix = np;
  return 0;
}

int
hf_file_store_open (const char *url, const struct hf_s3_config *c,
                    bool create, const struct hf_user_key *key,
                    struct hf_objstore **s, char **prefix)
{
  struct hf_objstore *ns;
  char *np;
  int r;

  if ((r = hf_file_store_open_raw (url, c, create, &ns, &np)) != 0)
    return r;
  /* An encrypted volume is read and written through its crypt store;
   * without the right key it is ENOKEY or EKEYREJECTED with a line
   * naming it, never read as damage (crypt.h). */
  if ((r = hf_crypt_attach (&ns, np, key)) != 0) {
    hf_objstore_close (ns);
    free (np);
    return r;
  }
  *s = ns;
  *prefix = np;
  return 0;
}

int
hf_file_create (const char *url, uint64_t size,
                const struct hf_file_options *opts)
{
  struct hf_file_options o;
  struct hf_s3_config c;
  struct hf_objstore *s;
  struct hf_user_key uk;
  char *prefix;
  bool have_key;
  unsigned codec = 0;
  int level = 0;
  int r;

  if ((r = hf_file_get_options (opts, &o)) != 0)
    return r;
  if (size == 0 || size > HF_FILE_MAX_SIZE) {
    hf_error ("hf_file_create: %s: size %" PRIu64 " out of range (1 to %"
              PRIu64 ")", url, size, HF_FILE_MAX_SIZE);
    return EINVAL;
  }
  if (o.compress && hf_codec_parse (o.compress, &codec, &level) != 0) {
    hf_error ("hf_file_create: %s: compress \"%s\": " HF_CODEC_SYNTAX,
              url, o.compress);
    return EINVAL;
  }
  /* The key first: a key file that cannot be used leaves nothing made. */
  if ((r = hf_file_user_key (&o, &uk, &have_key)) != 0)
    return r;
  hf_file_s3_config (&o, &c);
  if ((r = hf_file_store_open_raw (url, &c, true, &s, &prefix)) != 0) {
    hf_user_key_clear (&uk);
    return r;
  }
  /* "Create unless it exists" is an ordinary pattern: answer EEXIST
   * without the engine's error line when the descriptor is there. */
  {
    struct hf_objstore_info oi;
    char key[HF_OBJSTORE_KEY_MAX + 1];

    snprintf (key, sizeof key, "%svolume", prefix);
    r = hf_objstore_head (s, key, &oi);
    if (r == 0)
      r = EEXIST;
    else if (r == ENOENT)               /* logs why */
      r = hf_volume_create_codec (s, prefix, size, o.block_size,
                                  have_key ? &uk : NULL, codec, level);
  }
  hf_objstore_close (s);
  free (prefix);
  hf_user_key_clear (&uk);
  return r;
}

/* ---- open and close ---- */

static int
hf_file_cache_get (void *opaque, uint64_t seq, uint64_t off, void *buf,
                   size_t len)
{
  return hf_cache_get (opaque, seq, off, buf, len);
}

static void
hf_file_cache_put (void *opaque, uint64_t seq, uint64_t off,
                   const void *buf, size_t len, const uint32_t *crcs)
{
  /* failure: not cached */
  hf_cache_put_crcs (opaque, seq, off, buf, len, crcs);
}

static int
hf_file_tables_get (void *opaque, uint64_t seq, void **buf, size_t *len)
{
  return hf_cache_tables_get (opaque, seq, buf, len);
}

static void
hf_file_tables_put (void *opaque, uint64_t seq, const void *buf,
                    size_t len)
{
  hf_cache_tables_put (opaque, seq, buf, len);  /* failure: not kept */
}

/* Free what hf_file_open built so far (any field may be NULL). */
static void
hf_file_free (struct hf_file *f)
{
  int i;

  if (f->cache)
    hf_cache_close (f->cache);  /* after the volume: it used the cache */
  if (!f->store_borrowed)
    hf_objstore_close (f->store);
  free (f->prefix);
  for (i = 0; i < HF_FILE_S3__MAX; i++)
    if (f->str[i]) {
      explicit_bzero (f->str[i], strlen (f->str[i]));
      free (f->str[i]);
    }
  free (f);
}

/* Keep a copy of the S3 strings of o in f (f->s3 points to them). */
static int
hf_file_keep_s3 (struct hf_file *f, const struct hf_file_options *o)
{
  const char *in[HF_FILE_S3__MAX] = {
    [HF_FILE_S3_ENDPOINT] = o->endpoint, [HF_FILE_S3_REGION] = o->region,
    [HF_FILE_S3_ACCESS] = o->access_key, [HF_FILE_S3_SECRET] = o->secret_key,
    [HF_FILE_S3_TOKEN] = o->session_token, [HF_FILE_S3_PROFILE] = o->profile,
    [HF_FILE_S3_CA] = o->ca_file };
  int i;

  for (i = 0; i < HF_FILE_S3__MAX; i++)
    if (in[i] && (f->str[i] = strdup (in[i])) == NULL)
      return ENOMEM;
  hf_file_s3_config (o, &f->s3);
  f->s3.endpoint = f->str[HF_FILE_S3_ENDPOINT];
  f->s3.region = f->str[HF_FILE_S3_REGION];
  f->s3.access_key = f->str[HF_FILE_S3_ACCESS];
  f->s3.secret_key = f->str[HF_FILE_S3_SECRET];
  f->s3.session_token = f->str[HF_FILE_S3_TOKEN];
  f->s3.profile = f->str[HF_FILE_S3_PROFILE];
  f->s3.ca_file = f->str[HF_FILE_S3_CA];
  return 0;
}

/* Resolve at (SEQ, TIME or SNAPSHOT) to a point on the chain. */
static int
hf_file_resolve_at (struct hf_file *f, const char *url, const char *at,
                    uint64_t *seq)
{
  struct hf_history *h;
  int r;

  r = hf_history_open (f->store, f->prefix, &f->s3, &h);
  if (r == 0) {
    r = hf_history_resolve (h, at, true, seq);
    hf_history_close (h);
  }
  if (r == 0)
    hf_debug ("volume", "%s: at=%s is segment %" PRIu64, url, at, *seq);
  return r;                     /* the history logged why */
}

int
hf_file_open (const char *url, const struct hf_file_options *opts,
              struct hf_file **out)
{
  return hf_file_open_ext (url, opts, NULL, out);
}

int
hf_file_open_ext (const char *url, const struct hf_file_options *opts,
                  const struct hf_file_ext *ext, struct hf_file **out)
{
  struct hf_volume_options vo = { 0 };
  struct hf_file_options o;
  struct hf_volume_info vi;
  struct hf_user_key uk = { 0 };
  struct hf_file *f;
  bool have_key = false;
  int r;

  if ((r = hf_file_get_options (opts, &o)) != 0)
    return r;
  if (ext && ext->store && (o.key_file || o.key)) {
    hf_error ("hf_file_open_ext: a key in the options with a store given "
              "(attach the key to the store)");
    return EINVAL;
  }
  if (ext && ext->store && ext->prefix == NULL) {
    hf_error ("hf_file_open_ext: a store without its prefix");
    return EINVAL;
  }
  if (ext && ext->vopts)
    vo = *ext->vopts;
  if ((f = calloc (1, sizeof *f)) == NULL)
    return ENOMEM;
  f->readonly = (o.flags & HF_FILE_READONLY) || o.at != NULL || vo.readonly;
  if (ext && ext->s3)
    f->s3 = *ext->s3;           /* borrowed strings */
  else if ((r = hf_file_keep_s3 (f, &o)) != 0)
    goto err;
  if (ext && ext->store) {
    f->store = ext->store;
    f->store_borrowed = true;
    if ((f->prefix = strdup (ext->prefix)) == NULL) {
      r = ENOMEM;
      goto err;
    }
  }
  else {
    /* The crypt store keeps the data key; the user's key is not
     * needed after this. */
    if ((r = hf_file_user_key (&o, &uk, &have_key)) == 0)
      r = hf_file_store_open (url, &f->s3, false, have_key ? &uk : NULL,
                              &f->store, &f->prefix);
    hf_user_key_clear (&uk);
    if (r)
      goto err;
  }

  if (o.at && (r = hf_file_resolve_at (f, url, o.at, &vo.at_seq)) != 0)
    goto err;

  /* The cache is keyed by the volume's uuid and block size: read them
   * from the descriptor (the volume open reads it again) unless the
   * caller knows them. */
  if (o.cache_dir) {
    struct hf_cache_options co = { .dir = o.cache_dir,
                                   .max_bytes = o.cache_size };

    if (ext && ext->known) {
      co.block_size = ext->known->block_size;
      memcpy (co.volume_uuid, ext->known->uuid, sizeof co.volume_uuid);
    }
    else {
      struct hf_vdesc d;

      if ((r = hf_vdesc_read (f->store, f->prefix, &d)) != 0)
        goto err;               /* logged */
      co.block_size = d.block_size;
      memcpy (co.volume_uuid, d.uuid, sizeof co.volume_uuid);
    }
    if ((r = hf_cache_open (&co, &f->cache)) != 0) {
      if (r == EINVAL || r == ENOMEM)   /* the cache logs the others */
        hf_error ("%s: cache_dir %s: could not open the cache: %s", url,
                  o.cache_dir, strerror (r));
      goto err;
    }
    f->hooks.opaque = f->cache;
    f->hooks.cache_get = hf_file_cache_get;
    f->hooks.cache_put = hf_file_cache_put;
    f->hooks.tables_get = hf_file_tables_get;
    f->hooks.tables_put = hf_file_tables_put;
    vo.hooks = &f->hooks;
  }
  else
    vo.hooks = NULL;

  if (o.segment_size)
    vo.segment_size = o.segment_size;
  if (o.flush_interval_ms)
    vo.flush_interval_ms = o.flush_interval_ms;
  vo.takeover = vo.takeover || (o.flags & HF_FILE_TAKEOVER) != 0;
  vo.readonly = f->readonly;
  vo.parent_cfg = &f->s3;
  vo.wal_dir = f->readonly ? NULL : o.wal_dir;
  if ((r = hf_volume_open (f->store, f->prefix, &vo, &f->v)) != 0)
    goto err;                   /* logged why */
  hf_volume_get_info (f->v, &vi);
  f->block_size = vi.block_size;
  *out = f;
  return 0;

 err:
  hf_file_free (f);
  return r;
}

/* ---- what the plugin and the admin command reach (file-int.h) ---- */

struct hf_volume *
hf_file_volume (struct hf_file *f)
{
  return f->v;
}

struct hf_objstore *
hf_file_store (struct hf_file *f)
{
  return f->store;
}

struct hf_cache *
hf_file_cache (struct hf_file *f)
{
  return f->cache;
}

const char *
hf_file_prefix (struct hf_file *f)
{
  return f->prefix;
}

int
hf_file_close (struct hf_file *f)
{
  int r = 0;

  if (f == NULL)
    return 0;
  if (f->v)
    r = hf_volume_close (f->v);
  hf_file_free (f);
  return r;
}

/* ---- I/O ---- */

int
hf_file_pread (struct hf_file *f, void *buf, size_t count, uint64_t offset)
{
  return hf_volume_pread (f->v, buf, count, offset);
}

/* The engine's flags for the public ones (EINVAL for unknown bits). */
static int
hf_file_flags (unsigned flags, unsigned *vflags)
{
  if (flags & ~HF_FILE_FUA)
    return EINVAL;
  *vflags = (flags & HF_FILE_FUA) ? HF_VOL_FUA : 0;
  return 0;
}

int
hf_file_pwrite (struct hf_file *f, const void *buf, size_t count,
                uint64_t offset, unsigned flags)
{
  unsigned vf;
  int r;

  if ((r = hf_file_flags (flags, &vf)) != 0)
    return r;
  return hf_volume_pwrite (f->v, buf, count, offset, vf);
}

int
hf_file_trim (struct hf_file *f, uint64_t count, uint64_t offset,
              unsigned flags)
{
  unsigned vf;
  int r;

  if ((r = hf_file_flags (flags, &vf)) != 0)
    return r;
  return hf_volume_trim (f->v, count, offset, vf);
}

int
hf_file_zero (struct hf_file *f, uint64_t count, uint64_t offset,
              unsigned flags)
{
  unsigned vf;
  int r;

  if ((r = hf_file_flags (flags, &vf)) != 0)
    return r;
  return hf_volume_zero (f->v, count, offset, vf);
}

int
hf_file_flush (struct hf_file *f)
{
  return hf_volume_flush (f->v);
}

int
hf_file_prefetch (struct hf_file *f, uint64_t count, uint64_t offset)
{
  return hf_volume_prefetch (f->v, count, offset);
}

/* ---- size and extents ---- */

uint64_t
hf_file_size (struct hf_file *f)
{
  struct hf_volume_info vi;

  hf_volume_get_info (f->v, &vi);
  return vi.size;
}

uint32_t
hf_file_block_size (struct hf_file *f)
{
  return f->block_size;
}

int
hf_file_resize (struct hf_file *f, uint64_t new_size)
{
  uint64_t size = hf_file_size (f);

  if (f->readonly)
    return EROFS;
  if (new_size == size)
    return 0;
  if (new_size < size) {
    hf_error ("hf_file_resize: %" PRIu64 " is smaller than the volume "
              "(%" PRIu64 " bytes): shrinking is not supported", new_size,
              size);
    return EOPNOTSUPP;
  }
  if (new_size % f->block_size || new_size > HF_FILE_MAX_SIZE) {
    hf_error ("hf_file_resize: %" PRIu64 " is not a multiple of the "
              "block size %" PRIu32 " up to %" PRIu64, new_size,
              f->block_size, HF_FILE_MAX_SIZE);
    return EINVAL;
  }
  return hf_volume_grow (f->v, new_size);
}

struct hf_file_extents_ctx {
  hf_file_extent_fn fn;
  void *opaque;
};

static int
hf_file_extent_cb (void *opaque, uint64_t offset, uint64_t length, bool hole)
{
  struct hf_file_extents_ctx *c = opaque;

  return c->fn (c->opaque, offset, length,
                hole ? HF_FILE_EXTENT_HOLE : HF_FILE_EXTENT_DATA);
}

int
hf_file_extents (struct hf_file *f, uint64_t count, uint64_t offset,
                 hf_file_extent_fn fn, void *opaque)
{
  struct hf_file_extents_ctx c = { fn, opaque };

  if (fn == NULL)
    return EINVAL;
  return hf_volume_extents (f->v, count, offset, hf_file_extent_cb, &c);
}

/* ---- snapshots ---- */

int
hf_file_snapshot_create (struct hf_file *f, const char *name, uint64_t *seq)
{
  struct hf_volume_info vi;
  struct hf_snapshot sn;
  struct hf_history *h;
  int r;

  /* Checked before the checkpoint, which a bad name must not cost. */
  if (!hf_snapshot_name_valid (name) ||
      strspn (name, "0123456789") == strlen (name)) {
    hf_error ("hf_file_snapshot_create: '%s' is not a valid name: 1..128 "
              "characters of [A-Za-z0-9._-], not starting with '.', not "
              "only digits", name ? name : "(null)");
    return EINVAL;
  }
  if (f->readonly)
    return EROFS;
  /* Commit everything written so far to the store (with a write-ahead
   * log, flush alone only reaches the log); the head is then a point
   * holding all of it. */
  if ((r = hf_volume_checkpoint (f->v)) != 0)
    return r;
  hf_volume_get_info (f->v, &vi);
  if ((r = hf_history_open (f->store, f->prefix, &f->s3, &h)) != 0)
    return r;
  r = hf_snapshot_create (h, name, vi.head_seq, &sn);
  hf_history_close (h);
  if (r == 0 && seq)
    *seq = sn.seq;
  return r;                     /* the history logged why */
}

int
hf_file_snapshot_list (struct hf_file *f, hf_file_snapshot_fn fn,
                       void *opaque)
{
  struct hf_snapshot *sn = NULL;
  size_t n = 0, i;
  int r;

  if (fn == NULL)
    return EINVAL;
  if ((r = hf_snapshot_list (f->store, f->prefix, &sn, &n)) != 0)
    return r;
  for (i = 0; i < n && r == 0; i++)
    r = fn (opaque, sn[i].name, sn[i].seq, sn[i].timestamp_ns);
  free (sn);
  return r;
}

int
hf_file_snapshot_delete (struct hf_file *f, const char *name)
{
  if (!hf_snapshot_name_valid (name)) {
    hf_error ("hf_file_snapshot_delete: '%s' is not a valid snapshot name",
              name ? name : "(null)");
    return EINVAL;
  }
  return hf_snapshot_delete (f->store, f->prefix, name);  /* logs ENOENT */
}

/* ---- rollback, clones, garbage collection ---- */

int
hf_file_rollback (struct hf_file *f, const char *at, uint64_t *new_seq)
{
  uint64_t seq, ns = 0;
  int r;

  if (at == NULL || hf_history_check_at (at) != 0) {
    if (at == NULL)
      hf_error ("hf_file_rollback: no point given");
    return EINVAL;              /* the history logged what is wrong */
  }
  if (f->readonly)
    return EROFS;
  /* f holds the writer lease: only f moves the head, and the engine
   * refuses a point that is not older than it. */
  r = hf_file_resolve_at (f, "hf_file_rollback", at, &seq);
  if (r == 0)
    r = hf_volume_rollback (f->v, seq, &ns);   /* logs why */
  if (r == 0 && new_seq)
    *new_seq = ns;
  return r;
}

int
hf_file_clone (const char *parent_url, const char *at, const char *clone_url,
               const struct hf_file_options *opts, uint64_t *base_seq)
{
  struct hf_file_options o;
  struct hf_s3_config c;
  struct hf_user_key uk;
  enum hf_file_clone_step step = HF_FILE_CLONE_ARGS;
  bool have_key;
  int r;

  if ((r = hf_file_get_options (opts, &o)) != 0)
    return r;
  if ((r = hf_file_user_key (&o, &uk, &have_key)) != 0)
    return r;
  hf_file_s3_config (&o, &c);
  /* An encrypted parent is opened with the key, which the clone's
   * descriptor then wraps the shared data key with. */
  r = hf_file_clone_ext (parent_url, at, clone_url, &c,
                         have_key ? &uk : NULL, &step, base_seq);
  hf_user_key_clear (&uk);
  if (r == EINVAL && step == HF_FILE_CLONE_SAME)
    hf_error ("hf_file_clone: %s: the parent and the clone are the same "
              "volume", clone_url);
  return r;
}

int
hf_file_clone_ext (const char *parent_url, const char *at,
                   const char *clone_url, const struct hf_s3_config *c,
                   const struct hf_user_key *key,
                   enum hf_file_clone_step *step, uint64_t *base_seq)
{
  struct hf_objstore *ps = NULL, *cs = NULL;
  struct hf_history *h = NULL;
  char *pprefix = NULL, *cprefix = NULL, *pabs = NULL, *cabs = NULL;
  enum hf_file_clone_step st;
  uint64_t seq = 0;
  int r;

  if (step == NULL)
    step = &st;
  *step = HF_FILE_CLONE_ARGS;
  if (parent_url == NULL || clone_url == NULL) {
    hf_error ("hf_file_clone: a URL is NULL");
    return EINVAL;
  }
  if (hf_objstore_check_url ("clone", parent_url) != 0 ||
      hf_objstore_check_url ("clone", clone_url) != 0 ||
      (at && hf_history_check_at (at) != 0))
    return EINVAL;              /* logged */
  *step = HF_FILE_CLONE_PARENT_STORE;
  if ((r = hf_file_store_open (parent_url, c, false, key, &ps,
                               &pprefix)) != 0)
    return r;
  *step = HF_FILE_CLONE_PARENT;
  if ((r = hf_history_open (ps, pprefix, c, &h)) != 0)
    goto out;
  *step = HF_FILE_CLONE_RESOLVE;
  if (at) {
    if ((r = hf_history_resolve (h, at, true, &seq)) != 0)
      goto out;
  }
  else
    seq = hf_history_head (h);
  *step = HF_FILE_CLONE_POINT;
  {
    struct hf_point pt;         /* a point, before anything is made */

    if ((r = hf_history_point (h, seq, &pt)) != 0)
      goto out;
  }
  /* The clone's store first (a directory is created), then both URLs as
   * they are recorded. */
  *step = HF_FILE_CLONE_TARGET;
  if ((r = hf_file_store_open (clone_url, c, true, key, &cs,
                               &cprefix)) != 0)
    goto out;
  pabs = hf_objstore_abs_url (parent_url);
  cabs = hf_objstore_abs_url (clone_url);
  if (pabs == NULL || cabs == NULL) {
    r = errno ? errno : ENOMEM;
    goto out;
  }
  if (strcmp (pabs, cabs) == 0) {
    *step = HF_FILE_CLONE_SAME;
    r = EINVAL;                 /* the caller says it */
    goto out;
  }
  *step = HF_FILE_CLONE_CREATE;
  r = hf_clone_create_key (h, pabs, seq, cs, cprefix, cabs, key, base_seq);
 out:
  hf_history_close (h);
  hf_objstore_close (cs);
  hf_objstore_close (ps);
  free (pprefix);
  free (cprefix);
  free (pabs);
  free (cabs);
  return r;
}

int
hf_file_gc (struct hf_file *f, uint64_t retain_ns, unsigned flags,
            struct hf_file_gc_report *rep)
{
  struct hf_gc_options go = {
    .retain_ns = retain_ns,
    .grace_ns = HF_GC_DEFAULT_GRACE_S * UINT64_C (1000000000),
    .dry_run = (flags & HF_FILE_GC_DRY_RUN) != 0,
    .compact = !f->readonly && !(flags & HF_FILE_GC_DRY_RUN),
    .cfg = &f->s3 };
  struct hf_gc_report gr;
  int r;

  if (flags & ~HF_FILE_GC_DRY_RUN)
    return EINVAL;
  r = hf_gc_run (f->store, f->prefix, f->readonly ? NULL : f->v, &go, &gr);
  if (r == 0 && rep) {
    memset (rep, 0, sizeof *rep);
    rep->head_seq = gr.head_seq;
    rep->segments = gr.segments;
    rep->bytes = gr.bytes;
    rep->live_bytes = gr.live_bytes;
    rep->deleted_segments = gr.deleted_segments;
    rep->deleted_bytes = gr.deleted_bytes;
    rep->compacted_segments = gr.compacted_segments;
  }
  return r;
}

/* ---- process-wide settings ---- */

static _Atomic (hf_file_log_fn) hf_file_log_user;

static void
hf_file_log_sink (enum hf_log_level level, const char *msg)
{
  hf_file_log_fn fn = atomic_load (&hf_file_log_user);

  if (fn)
    fn ((int) level, msg);
}

void
hf_file_set_log (hf_file_log_fn fn)
{
  atomic_store (&hf_file_log_user, fn);
  hf_log_set_sink (fn ? hf_file_log_sink : NULL);
}

void
hf_file_set_debug (const char *area, int on)
{
  if (area)
    hf_log_set_debug (area, on != 0);
}

const char *
hf_file_version (void)
{
  return PACKAGE_VERSION;
}
