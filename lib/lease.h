/* hyperfile: the writer lease (format.h, "Writer lease").
 *
 * At most one process writes a volume.  It proves it by holding the
 * newest lease object PREFIX "lease/" HEX16(~epoch): acquiring takes
 * epoch E+1 with a conditional PUT once lease E has expired or was
 * released, renewing overwrites our own object, releasing marks it
 * HF_LS_RELEASED.  A writer that sees a newer epoch than its own is
 * fenced.  This module is the only code that encodes or decodes lease
 * objects; the volume (volume-fence.c) decides what fencing means for its
 * writes and runs the renewal timer.
 *
 * Errors are positive errno values:
 *   EBUSY    another live holder has the lease (acquire), or another
 *            writer won the race for the same epoch
 *   EEXIST   a newer epoch than ours exists (check, renew): we are fenced
 *   EBADMSG  a lease object is corrupt (logged with its key and offsets)
 *   other    store errors (EIO, ETIMEDOUT... after the object-store
 *            layer's retries, objstore.h)
 *
 * Thread safety: none internally.  A struct hf_lease must be used by one
 * thread at a time (the volume serialises open, its renewal thread and
 * close); hf_lease_newest touches only the store and may run anywhere.
 */
#ifndef HYPERFILE_LEASE_H
#define HYPERFILE_LEASE_H

#include <stdbool.h>
#include <stdint.h>

#include "format.h"
#include "objstore.h"

/* A decoded lease object. */
struct hf_lease_info {
  uint32_t flags, ttl_s;
  uint64_t epoch, acquired_ns, renewed_ns;
  uint64_t committed_seq;       /* ls_committed_seq (0: none recorded) */
  uint8_t holder_uuid[HF_UUID_SIZE];
  char holder[129];             /* NUL-terminated */
};

/* Our side of the lease.  Fill it with hf_lease_init; no resources are
 * owned, so there is nothing to free. */
struct hf_lease {
  struct hf_objstore *store;    /* borrowed */
  const char *prefix;           /* borrowed, must outlive the lease */
  uint32_t ttl_s;
  uint8_t holder_uuid[HF_UUID_SIZE];  /* random per open */
  char holder[128];             /* "HOST pid PID" */
  uint64_t epoch;               /* ours, once acquired */
  uint64_t acquired_ns;
  /* Written as ls_committed_seq: the volume raises it as segments
   * commit; hf_lease_acquire raises it to the previous holder's, so
   * after acquire it says how far the volume is known to reach. */
  uint64_t committed_seq;
  bool held;
};

/* Prepare lease for prefix in store: a fresh random holder uuid and the
 * holder string "HOST pid PID".  0, or EIO if no random bytes. */
extern int hf_lease_init (struct hf_lease *lease, struct hf_objstore *store,
                          const char *prefix, uint32_t ttl_s);

/* Encode / decode one lease object of HF_LS_SIZE bytes.  Encoding stamps
 * ls_renewed_ns with the current wall clock.  Decoding returns EBADMSG
 * (and logs key and offsets) on a bad size, magic, version or CRC. */
extern void hf_lease_encode (const struct hf_lease *lease, uint32_t flags,
                             uint8_t *out);
extern int hf_lease_decode (const uint8_t *obj, size_t len, const char *key,
                            struct hf_lease_info *out);

/* The newest lease of prefix: 0 with *found (and *out if found), or an
 * error.  EBADMSG also if the object's epoch does not match its key. */
extern int hf_lease_newest (struct hf_objstore *store, const char *prefix,
                            bool *found, struct hf_lease_info *out);

/* Take the next epoch.  Refuses (EBUSY, logging who holds it) a lease
 * that was not released unless it has expired and takeover is set, or
 * break_lease is set, or its holder is a dead process of this host.  On
 * success lease->held is set and lease->committed_seq is at least the
 * previous holder's ls_committed_seq. */
extern int hf_lease_acquire (struct hf_lease *lease, bool takeover,
                             bool break_lease);

/* Would hf_lease_acquire with these flags be refused because of the
 * current holder?  Reads only (no lease is written): 0 if the lease
 * could be taken now, EBUSY (logged with the holder and what to do), or
 * a store error (logged).  For a server's startup checks; the claim
 * itself may still lose a race. */
extern int hf_lease_probe (struct hf_objstore *store, const char *prefix,
                           bool takeover, bool break_lease);

/* Is our lease still the newest?  0 if so, EEXIST (logged) if a newer
 * epoch exists, or a store error. */
extern int hf_lease_check (struct hf_lease *lease);

/* One renewal: 0, EEXIST with *newer filled in if a newer epoch exists
 * (not logged: the caller says what being fenced means), or an error. */
extern int hf_lease_renew (struct hf_lease *lease,
                           struct hf_lease_info *newer);

/* Write our lease object again as it is, now: one PUT, without looking
 * for a newer epoch first (a newer epoch's object sorts first and
 * wins whatever ours says).  The volume records lease->committed_seq
 * this way as each segment commits.  It renews the lease too. */
extern int hf_lease_record (struct hf_lease *lease);

/* Write our lease with HF_LS_RELEASED so the next writer need not wait
 * for it to expire.  lease->held is left as is. */
extern int hf_lease_release (struct hf_lease *lease);

#endif /* HYPERFILE_LEASE_H */
