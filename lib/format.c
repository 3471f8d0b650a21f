/* hyperfile: codecs for the small fixed-size objects of format.h that
 * more than one module reads and writes (named snapshots and clone
 * registrations: history, GC, fsck, the admin tool).  Segments, nodes,
 * leases and descriptors keep their codecs next to their only users.
 */
#include <config.h>

#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "crc32c.h"
#include "format.h"

#define SN(field) offsetof (struct hf_disk_snapshot, field)
#define CR(field) offsetof (struct hf_disk_clone_reg, field)

int
hf_snapshot_name_valid (const char *name)
{
  size_t i, n = name ? strlen (name) : 0;

  if (n == 0 || n > HF_SN_NAME_MAX || name[0] == '.')
    return 0;
  for (i = 0; i < n; i++) {
    char c = name[i];
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
          (c >= '0' && c <= '9') || c == '.' || c == '_' || c == '-'))
      return 0;
  }
  return 1;
}

int
hf_snapshot_encode (const struct hf_snapshot *s, uint8_t out[HF_SN_SIZE])
{
  if (!hf_snapshot_name_valid (s->name))
    return EINVAL;
  memset (out, 0, HF_SN_SIZE);
  hf_put_le32 (out + SN (sn_magic), HF_SN_MAGIC);
  hf_put_le16 (out + SN (sn_version), HF_SN_VERSION);
  hf_put_le16 (out + SN (sn_hdr_size), HF_SN_SIZE);
  hf_put_le32 (out + SN (sn_flags), s->flags);
  memcpy (out + SN (sn_volume_uuid), s->volume_uuid, HF_UUID_SIZE);
  hf_put_le64 (out + SN (sn_seq), s->seq);
  hf_put_le64 (out + SN (sn_timestamp_ns), s->timestamp_ns);
  hf_put_le64 (out + SN (sn_created_ns), s->created_ns);
  memcpy (out + SN (sn_name), s->name, strlen (s->name));
  hf_put_le32 (out + SN (sn_crc), hf_crc32c (0, out, SN (sn_crc)));
  return 0;
}

/* Common header checks: length, magic, version, header size, CRC. */
static int
hf_format_check (const uint8_t *b, size_t len, size_t size, uint32_t magic,
                 uint16_t version, size_t crc_off, size_t *bad_off)
{
  if (len < 8 || hf_le32 (b) != magic) {
    *bad_off = 0;
    return EBADMSG;
  }
  if (hf_le16 (b + 4) != version) {
    *bad_off = 4;
    return EBADMSG;
  }
  if (hf_le16 (b + 6) != size || len != size) {
    *bad_off = 6;
    return EBADMSG;
  }
  if (hf_crc32c (0, b, crc_off) != hf_le32 (b + crc_off)) {
    *bad_off = crc_off;
    return EBADMSG;
  }
  return 0;
}

int
hf_snapshot_decode (const void *buf, size_t len, struct hf_snapshot *out,
                    size_t *bad_off)
{
  const uint8_t *b = buf;
  int r = hf_format_check (b, len, HF_SN_SIZE, HF_SN_MAGIC, HF_SN_VERSION,
                           SN (sn_crc), bad_off);

  if (r)
    return r;
  memset (out, 0, sizeof *out);
  out->flags = hf_le32 (b + SN (sn_flags));
  memcpy (out->volume_uuid, b + SN (sn_volume_uuid), HF_UUID_SIZE);
  out->seq = hf_le64 (b + SN (sn_seq));
  out->timestamp_ns = hf_le64 (b + SN (sn_timestamp_ns));
  out->created_ns = hf_le64 (b + SN (sn_created_ns));
  memcpy (out->name, b + SN (sn_name), HF_SN_NAME_MAX);
  out->name[HF_SN_NAME_MAX] = '\0';
  if (!hf_snapshot_name_valid (out->name) || out->seq == 0) {
    *bad_off = out->seq == 0 ? SN (sn_seq) : SN (sn_name);
    return EBADMSG;
  }
  return 0;
}

int
hf_clone_reg_encode (const struct hf_clone_reg *r, uint8_t out[HF_CR_SIZE])
{
  size_t n = strlen (r->clone_url);

  if (n == 0 || n >= HF_CR_URL_MAX)
    return EINVAL;
  memset (out, 0, HF_CR_SIZE);
  hf_put_le32 (out + CR (cr_magic), HF_CR_MAGIC);
  hf_put_le16 (out + CR (cr_version), HF_CR_VERSION);
  hf_put_le16 (out + CR (cr_hdr_size), HF_CR_SIZE);
  hf_put_le32 (out + CR (cr_flags), r->flags);
  memcpy (out + CR (cr_clone_uuid), r->clone_uuid, HF_UUID_SIZE);
  hf_put_le64 (out + CR (cr_base_seq), r->base_seq);
  hf_put_le64 (out + CR (cr_created_ns), r->created_ns);
  memcpy (out + CR (cr_clone_url), r->clone_url, n);
  hf_put_le32 (out + CR (cr_crc), hf_crc32c (0, out, CR (cr_crc)));
  return 0;
}

int
hf_clone_reg_decode (const void *buf, size_t len, struct hf_clone_reg *out,
                     size_t *bad_off)
{
  const uint8_t *b = buf;
  int r = hf_format_check (b, len, HF_CR_SIZE, HF_CR_MAGIC, HF_CR_VERSION,
                           CR (cr_crc), bad_off);

  if (r)
    return r;
  memset (out, 0, sizeof *out);
  out->flags = hf_le32 (b + CR (cr_flags));
  memcpy (out->clone_uuid, b + CR (cr_clone_uuid), HF_UUID_SIZE);
  out->base_seq = hf_le64 (b + CR (cr_base_seq));
  out->created_ns = hf_le64 (b + CR (cr_created_ns));
  memcpy (out->clone_url, b + CR (cr_clone_url), HF_CR_URL_MAX);
  out->clone_url[HF_CR_URL_MAX] = '\0';
  /* NUL padded: a URL filling the field is one no encoder writes. */
  if (out->clone_url[0] == '\0' || out->base_seq == 0 ||
      strlen (out->clone_url) >= HF_CR_URL_MAX) {
    *bad_off = out->base_seq == 0 ? CR (cr_base_seq) : CR (cr_clone_url);
    return EBADMSG;
  }
  return 0;
}
