/* hyperfile: libFuzzer harness for the small fixed-size objects of
 * format.h: volume descriptor (hf_vdesc_decode), writer lease
 * (hf_lease_decode), snapshot (hf_snapshot_decode) and clone
 * registration (hf_clone_reg_decode).
 *
 * Input: a mode byte, then the object.  Mode bits 1-2 pick the codec;
 * bit 0 recomputes the object's CRC first (fuzz.h).  Invariants: what a
 * decoder accepts keeps its documented promises (strings terminated,
 * names valid, seqs >= 1) and survives encode + decode unchanged: a
 * store must never hold an object we accept but could not have
 * written. */
#include <config.h>

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "crc32c.h"
#include "format.h"
#include "lease.h"
#include "lineage.h"
#include "fuzz.h"

static void
fix_crc (uint8_t *o, size_t len, size_t size)
{
  if (len == size)
    hf_put_le32 (o + size - 4, hf_crc32c (0, o, size - 4));
}

static void
vdesc (uint8_t *o, size_t len, int fix)
{
  struct hf_vdesc d, d2;
  uint8_t enc[HF_VD_SIZE];
  size_t bad = 0;

  if (fix)
    fix_crc (o, len, HF_VD_SIZE);
  if (hf_vdesc_decode (o, len, &d, &bad) != 0) {
    FUZZ_CHECK (bad < HF_VD_SIZE);
    return;
  }
  FUZZ_CHECK (d.block_size >= HF_MIN_BLOCK_SIZE &&
              d.block_size <= HF_MAX_BLOCK_SIZE &&
              (d.block_size & (d.block_size - 1)) == 0 &&
              d.size % d.block_size == 0);
  FUZZ_CHECK (d.size >= 1 && d.size <= HF_MAX_VOLUME_SIZE);
  FUZZ_CHECK (memchr (d.parent_url, '\0', sizeof d.parent_url) != NULL);
  if (d.flags & HF_VD_CLONE)
    FUZZ_CHECK (d.parent_seq >= 1 && d.parent_url[0] != '\0');
  hf_vdesc_encode (&d, enc);
  FUZZ_CHECK (hf_vdesc_decode (enc, sizeof enc, &d2, &bad) == 0);
  FUZZ_CHECK (d2.flags == d.flags && d2.block_size == d.block_size &&
              d2.size == d.size && d2.created_ns == d.created_ns &&
              d2.parent_seq == d.parent_seq &&
              memcmp (d2.uuid, d.uuid, HF_UUID_SIZE) == 0 &&
              memcmp (d2.parent_uuid, d.parent_uuid, HF_UUID_SIZE) == 0 &&
              strcmp (d2.parent_url, d.parent_url) == 0);
}

static void
lease (uint8_t *o, size_t len, int fix)
{
  struct hf_lease_info li;

  if (fix)
    fix_crc (o, len, HF_LS_SIZE);
  if (hf_lease_decode (o, len, "lease/fuzz", &li) == 0)
    FUZZ_CHECK (memchr (li.holder, '\0', sizeof li.holder) != NULL);
}

static void
snapshot (uint8_t *o, size_t len, int fix)
{
  struct hf_snapshot s, s2;
  uint8_t enc[HF_SN_SIZE];
  size_t bad = 0;

  if (fix)
    fix_crc (o, len, HF_SN_SIZE);
  if (hf_snapshot_decode (o, len, &s, &bad) != 0) {
    FUZZ_CHECK (bad < HF_SN_SIZE);
    return;
  }
  FUZZ_CHECK (s.seq >= 1 && hf_snapshot_name_valid (s.name));
  FUZZ_CHECK (hf_snapshot_encode (&s, enc) == 0);
  FUZZ_CHECK (hf_snapshot_decode (enc, sizeof enc, &s2, &bad) == 0);
  FUZZ_CHECK (s2.flags == s.flags && s2.seq == s.seq &&
              s2.timestamp_ns == s.timestamp_ns &&
              s2.created_ns == s.created_ns &&
              memcmp (s2.volume_uuid, s.volume_uuid, HF_UUID_SIZE) == 0 &&
              strcmp (s2.name, s.name) == 0);
}

static void
clone_reg (uint8_t *o, size_t len, int fix)
{
  struct hf_clone_reg r, r2;
  uint8_t enc[HF_CR_SIZE];
  size_t bad = 0;

  if (fix)
    fix_crc (o, len, HF_CR_SIZE);
  if (hf_clone_reg_decode (o, len, &r, &bad) != 0) {
    FUZZ_CHECK (bad < HF_CR_SIZE);
    return;
  }
  FUZZ_CHECK (r.base_seq >= 1 && r.clone_url[0] != '\0');
  FUZZ_CHECK (hf_clone_reg_encode (&r, enc) == 0);
  FUZZ_CHECK (hf_clone_reg_decode (enc, sizeof enc, &r2, &bad) == 0);
  FUZZ_CHECK (r2.flags == r.flags && r2.base_seq == r.base_seq &&
              r2.created_ns == r.created_ns &&
              memcmp (r2.clone_uuid, r.clone_uuid, HF_UUID_SIZE) == 0 &&
              strcmp (r2.clone_url, r.clone_url) == 0);
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  uint8_t *o;
  uint8_t mode;

  fuzz_quiet ();
  if (size < 1)
    return 0;
  mode = data[0];
  o = malloc (size - 1 ? size - 1 : 1);
  if (o == NULL)
    return 0;
  memcpy (o, data + 1, size - 1);
  switch ((mode >> 1) & 3) {
  case 0: vdesc (o, size - 1, mode & 1); break;
  case 1: lease (o, size - 1, mode & 1); break;
  case 2: snapshot (o, size - 1, mode & 1); break;
  case 3: clone_reg (o, size - 1, mode & 1); break;
  }
  free (o);
  return 0;
}
