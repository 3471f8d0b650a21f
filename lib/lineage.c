/* hyperfile: volume descriptors and a volume's lineage (lineage.h). */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "cleanup.h"
#include "crc32c.h"
#include "lineage.h"
#include "log.h"

#define VD(field) offsetof (struct hf_disk_volume, field)

void
hf_vdesc_encode (const struct hf_vdesc *d, uint8_t o[HF_VD_SIZE])
{
  memset (o, 0, HF_VD_SIZE);
  hf_put_le32 (o + VD (vd_magic), HF_VD_MAGIC);
  hf_put_le16 (o + VD (vd_version), HF_VD_VERSION);
  hf_put_le16 (o + VD (vd_hdr_size), HF_VD_SIZE);
  hf_put_le32 (o + VD (vd_flags), d->flags);
  hf_put_le32 (o + VD (vd_block_size), d->block_size);
  memcpy (o + VD (vd_uuid), d->uuid, HF_UUID_SIZE);
  hf_put_le64 (o + VD (vd_size), d->size);
  hf_put_le64 (o + VD (vd_created_ns), d->created_ns);
  if (d->flags & HF_VD_CLONE) {
    hf_put_le64 (o + VD (vd_parent_seq), d->parent_seq);
    memcpy (o + VD (vd_parent_uuid), d->parent_uuid, HF_UUID_SIZE);
    size_t n = strnlen (d->parent_url, 256);

    memcpy (o + VD (vd_parent_url), d->parent_url, n);
    if (d->flags & HF_VD_FLATTENED)
      hf_put_le64 (o + VD (vd_flat_seq), d->flat_seq);
  }
  if (d->flags & HF_VD_ENCRYPTED) {
    const struct hf_crypt_desc *c = &d->crypt;

    if (!(d->flags & HF_VD_SEG_GROUPS))
      hf_put_le16 (o + VD (vd_version), HF_VD_VERSION_CRYPT);
    hf_put_le32 (o + VD (vd_cipher), c->cipher);
    hf_put_le32 (o + VD (vd_kdf), c->kdf);
    o[VD (vd_kdf_log2n)] = c->kdf_log2n;
    o[VD (vd_kdf_r)] = c->kdf_r;
    o[VD (vd_kdf_p)] = c->kdf_p;
    memcpy (o + VD (vd_kdf_salt), c->kdf_salt, 16);
    memcpy (o + VD (vd_key_check), c->key_check, 16);
    memcpy (o + VD (vd_wrap_nonce), c->wrap_nonce, HF_CRYPT_NONCE);
    memcpy (o + VD (vd_wrap_key), c->wrap_key, HF_CRYPT_KEY_SIZE);
    memcpy (o + VD (vd_wrap_tag), c->wrap_tag, HF_CRYPT_TAG);
  }
  if (d->flags & HF_VD_SEG_GROUPS)
    hf_put_le16 (o + VD (vd_version), HF_VD_VERSION_GROUPS);
  if (d->codec) {
    hf_put_le16 (o + VD (vd_version), d->codec_level < 0 ?
                 HF_VD_VERSION_FAST : HF_VD_VERSION_CODEC);
    o[VD (vd_codec)] = d->codec;
    o[VD (vd_codec_level)] = (uint8_t) d->codec_level;
  }
  hf_put_le32 (o + VD (vd_crc), hf_crc32c (0, o, VD (vd_crc)));
}

int
hf_vdesc_decode (const void *buf, size_t len, struct hf_vdesc *d,
                 size_t *bad_off)
{
  const uint8_t *o = buf;
  uint32_t bs;
  uint16_t version;

  if (len != HF_VD_SIZE || hf_le32 (o + VD (vd_magic)) != HF_VD_MAGIC) {
    *bad_off = 0;
    return EBADMSG;
  }
  version = hf_le16 (o + VD (vd_version));
  if ((version != HF_VD_VERSION && version != HF_VD_VERSION_CRYPT &&
       version != HF_VD_VERSION_GROUPS && version != HF_VD_VERSION_CODEC &&
       version != HF_VD_VERSION_FAST) ||
      hf_le16 (o + VD (vd_hdr_size)) != HF_VD_SIZE) {
    *bad_off = VD (vd_version);
    return EBADMSG;
  }
  if (hf_crc32c (0, o, VD (vd_crc)) != hf_le32 (o + VD (vd_crc))) {
    *bad_off = VD (vd_crc);
    return EBADMSG;
  }
  memset (d, 0, sizeof *d);
  d->flags = hf_le32 (o + VD (vd_flags));
  bs = d->block_size = hf_le32 (o + VD (vd_block_size));
  memcpy (d->uuid, o + VD (vd_uuid), HF_UUID_SIZE);
  d->size = hf_le64 (o + VD (vd_size));
  d->created_ns = hf_le64 (o + VD (vd_created_ns));
  if (bs < HF_MIN_BLOCK_SIZE || bs > HF_MAX_BLOCK_SIZE || (bs & (bs - 1)) ||
      d->size % bs) {
    *bad_off = VD (vd_block_size);
    return EBADMSG;
  }
  if (d->size == 0 || d->size > HF_MAX_VOLUME_SIZE) {
    *bad_off = VD (vd_size);
    return EBADMSG;
  }
  /* Version 4 or 5 exactly for a compressed volume (whatever its
   * flags); else version 3 exactly for grouped segment keys (an older
   * reader would find no segment and take the volume for empty), else
   * version 2 exactly for an encrypted volume (a reader that ignored the
   * flag would take sealed objects for damage, or worse). */
  if (version != HF_VD_VERSION_CODEC && version != HF_VD_VERSION_FAST &&
      ((version == HF_VD_VERSION_GROUPS) !=
       ((d->flags & HF_VD_SEG_GROUPS) != 0) ||
       (!(d->flags & HF_VD_SEG_GROUPS) &&
        (version == HF_VD_VERSION_CRYPT) !=
        ((d->flags & HF_VD_ENCRYPTED) != 0)))) {
    *bad_off = VD (vd_flags);
    return EBADMSG;
  }
  /* A compressed volume (with or without a key): version 4 with a level
   * of 1..19, version 5 exactly with a fast one. */
  if (version == HF_VD_VERSION_CODEC || version == HF_VD_VERSION_FAST) {
    d->codec = o[VD (vd_codec)];
    d->codec_level = (int8_t) o[VD (vd_codec_level)];
    if (d->codec != HF_SH_CODEC_ZSTD) {
      *bad_off = VD (vd_codec);
      return EBADMSG;
    }
    if (version == HF_VD_VERSION_CODEC ?
        d->codec_level < 1 || d->codec_level > HF_VD_CODEC_LEVEL_MAX :
        d->codec_level < HF_VD_CODEC_LEVEL_MIN || d->codec_level > -1) {
      *bad_off = VD (vd_codec_level);
      return EBADMSG;
    }
  }
  if (d->flags & HF_VD_ENCRYPTED) {
    struct hf_crypt_desc *c = &d->crypt;

    c->cipher = hf_le32 (o + VD (vd_cipher));
    c->kdf = hf_le32 (o + VD (vd_kdf));
    c->kdf_log2n = o[VD (vd_kdf_log2n)];
    c->kdf_r = o[VD (vd_kdf_r)];
    c->kdf_p = o[VD (vd_kdf_p)];
    memcpy (c->kdf_salt, o + VD (vd_kdf_salt), 16);
    memcpy (c->key_check, o + VD (vd_key_check), 16);
    memcpy (c->wrap_nonce, o + VD (vd_wrap_nonce), HF_CRYPT_NONCE);
    memcpy (c->wrap_key, o + VD (vd_wrap_key), HF_CRYPT_KEY_SIZE);
    memcpy (c->wrap_tag, o + VD (vd_wrap_tag), HF_CRYPT_TAG);
    if (c->cipher != HF_VD_CIPHER_AES256GCM) {
      *bad_off = VD (vd_cipher);
      return EBADMSG;
    }
    if (c->kdf != HF_VD_KDF_KEYFILE && c->kdf != HF_VD_KDF_SCRYPT) {
      *bad_off = VD (vd_kdf);
      return EBADMSG;
    }
  }
  if (d->flags & HF_VD_CLONE) {
    const unsigned char *u;

    d->parent_seq = hf_le64 (o + VD (vd_parent_seq));
    memcpy (d->parent_uuid, o + VD (vd_parent_uuid), HF_UUID_SIZE);
    memcpy (d->parent_url, o + VD (vd_parent_url), 256);
    d->parent_url[256] = '\0';
    if (d->parent_seq == 0) {
      *bad_off = VD (vd_parent_seq);
      return EBADMSG;
    }
    if (d->parent_url[0] == '\0') {
      *bad_off = VD (vd_parent_url);
      return EBADMSG;
    }
    for (u = (const unsigned char *) d->parent_url; *u; u++)
      if (*u < 0x20 || *u == 0x7f) {
        *bad_off = VD (vd_parent_url) + (u - (const unsigned char *)
                                         d->parent_url);
        return EBADMSG;
      }
    if (d->flags & HF_VD_FLATTENED) {
      d->flat_seq = hf_le64 (o + VD (vd_flat_seq));
      if (d->flat_seq <= d->parent_seq) {
        *bad_off = VD (vd_flat_seq);
        return EBADMSG;
      }
    }
  }
  else if (d->flags & HF_VD_FLATTENED) {
    *bad_off = VD (vd_flags);
    return EBADMSG;
  }
  return 0;
}

int
hf_vdesc_read (struct hf_objstore *s, const char *prefix,
               struct hf_vdesc *out)
{
  char key[HF_OBJSTORE_KEY_MAX + 1];
  CLEANUP_FREE uint8_t *o = NULL;
  size_t len = 0, bad = 0;
  int r;

  snprintf (key, sizeof key, "%svolume", prefix);
  r = hf_objstore_get_all_retry (s, key, HF_OBJSTORE_SMALL_MAX, (void **) &o,
                                 &len);
  if (r == ENOENT) {
    hf_error ("volume: %s: no volume at %s", hf_objstore_describe (s), key);
    return ENOENT;
  }
  if (r) {
    hf_error ("volume: %s: reading %s: %s", hf_objstore_describe (s), key,
              strerror (r));
    return r;
  }
  r = hf_vdesc_decode (o, len, out, &bad);
  /* A version above the newest known, with the right magic and size,
   * is most likely a newer hyperfile's volume (as version 5 is to the
   * readers before it): say so rather than "corrupt". */
  if (r && bad == VD (vd_version) && len == HF_VD_SIZE &&
      hf_le16 (o + VD (vd_version)) > HF_VD_VERSION_FAST &&
      hf_le16 (o + VD (vd_hdr_size)) == HF_VD_SIZE)
    hf_error ("volume %s: descriptor version %u is newer than this "
              "hyperfile reads (1 to %d): open it with a newer hyperfile",
              key, (unsigned) hf_le16 (o + VD (vd_version)),
              HF_VD_VERSION_FAST);
  else if (r)
    hf_error ("volume %s: corrupt at byte offset %zu: bad descriptor "
              "(%zu bytes; magic, version, CRC, block size, size or clone "
              "fields)", key, bad, len);
  return r;
}

bool
hf_lineage_store_is_s3 (struct hf_objstore *s)
{
  const char *d = hf_objstore_describe (s);

  while (strncmp (d, "fault(", 6) == 0)
    d += 6;
  return strncmp (d, "s3://", 5) == 0;
}

int
hf_lineage_check_parent (bool child_s3, const char *child,
                         const char *parent_url, bool any)
{
  bool parent_s3 = strncmp (parent_url, "s3://", 5) == 0;

  if (hf_objstore_check_url ("clone parent", parent_url) != 0)
    return EINVAL;
  if (child_s3 && !parent_s3) {
    hf_error ("volume: %s is a clone of %s, a local directory: refused "
              "for a volume in S3 (its descriptor must not make the server "
              "read local files)", child, parent_url);
    return EPERM;
  }
  if (!child_s3 && parent_s3 && !any) {
    hf_error ("volume: %s is a clone of %s, in S3: refused for a volume "
              "in a local directory unless allowed (clone-parent-any=true; "
              "hyperfile --clone-parent-any)", child, parent_url);
    return EPERM;
  }
  return 0;
}

/* A flattened clone's parent: is it still there (its descriptor at
 * the URL, with the uuid the clone names)?  Asked quietly: its absence
 * is expected, and opening a missing directory would log an error.  A
 * parent that cannot be read for another reason counts as gone too
 * (warned): the clone's head does not need it. */
static bool
hf_lineage_parent_present (const struct hf_lineage_level *c,
                           const struct hf_s3_config *cfg)
{
  const char *url = c->d.parent_url;
  struct hf_objstore *s;
  char *prefix, key[HF_OBJSTORE_KEY_MAX + 1];
  uint8_t buf[HF_VD_SIZE];
  struct hf_vdesc d;
  size_t got = 0, bad;
  bool present = false;
  int r;

  if (strncmp (url, "s3://", 5) != 0) {
    const char *path = strncmp (url, "file://", 7) == 0 ? url + 7 : url;
    struct stat sb;

    if (stat (path, &sb) == -1)
      return false;
  }
  if ((r = hf_objstore_open_url (url, cfg, false, &s, &prefix)) != 0)
    return false;
  snprintf (key, sizeof key, "%svolume", prefix);
  r = hf_objstore_get_retry (s, key, 0, sizeof buf, buf, &got);
  if (r == 0 && hf_vdesc_decode (buf, got, &d, &bad) == 0)
    present = memcmp (d.uuid, c->d.parent_uuid, HF_UUID_SIZE) == 0;
  else if (r && r != ENOENT)
    hf_warn ("volume: the parent %s of a flattened clone: %s (not "
             "needed by its head; its older points are unreadable)", url,
             strerror (r));
  hf_objstore_close (s);
  free (prefix);
  return present;
}

/* A clone shares its parent's data key: wrap an encrypted parent's
 * store in a crypt store with the key the volume (level 0) was opened
 * with, after checking that the parent shows the same key check. */
static int
hf_lineage_crypt_parent (struct hf_lineage *l, struct hf_lineage_level *p)
{
  uint8_t dkey[HF_CRYPT_KEY_SIZE], check[16];
  struct hf_objstore *w;
  bool have = hf_objstore_crypt_key (l->lv[0].store, dkey);
  int r;

  if (!(p->d.flags & HF_VD_ENCRYPTED))
    return 0;                   /* a plain parent reads as it is */
  if (!have) {
    hf_error ("volume: the parent %s of a clone is encrypted, but the "
              "clone was opened without its key", p->url);
    return ENOKEY;
  }
  r = hf_crypt_key_check (dkey, check);
  if (r == 0 && memcmp (check, p->d.crypt.key_check, sizeof check) != 0) {
    hf_error ("volume: the parent %s of a clone has another data key "
              "than the clone", p->url);
    r = EKEYREJECTED;
  }
  if (r == 0)
    r = hf_objstore_crypt_open (p->store, p->prefix, p->d.uuid, dkey, &w);
  memset (dkey, 0, sizeof dkey);
  if (r == 0)
    p->store = w;
  return r;
}

int
hf_lineage_open (struct hf_objstore *s, const char *prefix,
                 const struct hf_s3_config *cfg, struct hf_lineage **out)
{
  struct hf_s3_config dflt = { .tls_verify = true };
  struct hf_lineage *l;
  int r;

  l = calloc (1, sizeof *l);
  if (l == NULL)
    return ENOMEM;
  l->lv[0].store = s;
  l->lv[0].prefix = strdup (prefix ? prefix : "");
  if (l->lv[0].prefix == NULL) {
    free (l);
    return ENOMEM;
  }
  l->n = 1;
  r = hf_vdesc_read (s, l->lv[0].prefix, &l->lv[0].d);
  while (r == 0 && (l->lv[l->n - 1].d.flags & HF_VD_CLONE)) {
    struct hf_lineage_level *c = &l->lv[l->n - 1], *p;

    c->floor = c->d.parent_seq;
    if (l->n == HF_LINEAGE_MAX) {
      hf_error ("volume: %s: more than %d generations of clones (a loop "
                "of parent URLs?)", c->d.parent_url, HF_LINEAGE_MAX);
      r = ELOOP;
      break;
    }
    p = &l->lv[l->n];
    {
      char what[HF_OBJSTORE_KEY_MAX + 300];
      bool child_s3 = c->url ? strncmp (c->url, "s3://", 5) == 0
        : hf_lineage_store_is_s3 (s);

      if (c->url)
        snprintf (what, sizeof what, "%s", c->url);
      else
        snprintf (what, sizeof what, "%s %svolume", hf_objstore_describe (s),
                  c->prefix);
      r = hf_lineage_check_parent (child_s3, what, c->d.parent_url,
                                   cfg && cfg->clone_parent_any);
      if (r)
        break;
      if ((c->d.flags & HF_VD_FLATTENED) &&
          !hf_lineage_parent_present (c, cfg ? cfg : &dflt)) {
        /* Its head needs nothing of the parent: the lineage ends. */
        hf_debug ("volume", "%s: flattened at segment %" PRIu64 "; its "
                  "parent %s is gone (points before segment %" PRIu64
                  " are unreadable)", what, c->d.flat_seq, c->d.parent_url,
                  c->d.flat_seq);
        break;
      }
      hf_info ("volume: %s is a clone of %s at segment %" PRIu64, what,
               c->d.parent_url, c->d.parent_seq);
    }
    p->url = strdup (c->d.parent_url);
    if (p->url == NULL) {
      r = ENOMEM;
      break;
    }
    r = hf_objstore_open_url (p->url, cfg ? cfg : &dflt, false, &p->store,
                              &p->prefix);
    if (r) {
      hf_error ("volume: opening the parent %s of a clone: %s", p->url,
                strerror (r));
      free (p->url);
      p->url = NULL;
      break;
    }
    l->n++;
    r = hf_vdesc_read (p->store, p->prefix, &p->d);
    if (r)
      break;
    if (memcmp (p->d.uuid, c->d.parent_uuid, HF_UUID_SIZE) != 0) {
      hf_error ("volume: the parent at %s is not the volume the clone "
                "was made from (uuid differs)", p->url);
      r = EBADMSG;
      break;
    }
    if ((r = hf_lineage_crypt_parent (l, p)) != 0)
      break;
    if (p->d.block_size != c->d.block_size ||
        ((p->d.flags & HF_VD_CLONE) && p->d.parent_seq > c->floor)) {
      hf_error ("volume: the parent at %s has another block size or a "
                "base not older than its clone's", p->url);
      r = EBADMSG;
      break;
    }
  }
  if (r) {
    hf_lineage_close (l);
    return r;
  }
  *out = l;
  return 0;
}

const struct hf_lineage_level *
hf_lineage_locate (const struct hf_lineage *l, uint64_t seq)
{
  unsigned i;

  for (i = 0; i + 1 < l->n; i++)
    if (seq > l->lv[i].floor)
      break;
  return &l->lv[i];
}

void
hf_lineage_close (struct hf_lineage *l)
{
  unsigned i;

  if (l == NULL)
    return;
  for (i = 0; i < l->n; i++) {
    if (i > 0)
      hf_objstore_close (l->lv[i].store);
    free (l->lv[i].prefix);
    free (l->lv[i].url);
  }
  free (l);
}
