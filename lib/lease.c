/* hyperfile: the writer lease (see lease.h for the interface and
 * format.h, "Writer lease", for the object).
 *
 * Moved out of volume.c so that the one place that reads and writes lease
 * objects can be tested on its own; its log lines keep their "volume:"
 * prefix because they still describe the volume being opened.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "cleanup.h"
#include "clock.h"
#include "crc32c.h"
#include "format.h"
#include "lease.h"
#include "log.h"
#include "objstore.h"
#include "segment.h"

#define LS(field) offsetof (struct hf_disk_lease, field)




static void
hf_lease_key (char *out, size_t n, const char *prefix, uint64_t epoch)
{
  snprintf (out, n, "%slease/%016" PRIx64, prefix, ~epoch);
}

int
hf_lease_init (struct hf_lease *lease, struct hf_objstore *store,
               const char *prefix, uint32_t ttl_s)
{
  char host[100];               /* what volume.c always used */

  memset (lease, 0, sizeof *lease);
  lease->store = store;
  lease->prefix = prefix;
  lease->ttl_s = ttl_s;
  if (getrandom (lease->holder_uuid, HF_UUID_SIZE, 0) != HF_UUID_SIZE)
    return EIO;
  if (gethostname (host, sizeof host) != 0)
    strcpy (host, "unknown");
  host[sizeof host - 1] = '\0';
  snprintf (lease->holder, sizeof lease->holder, "%s pid %ld", host,
            (long) getpid ());
  return 0;
}

void
hf_lease_encode (const struct hf_lease *lease, uint32_t flags, uint8_t *o)
{
  memset (o, 0, HF_LS_SIZE);
  hf_put_le32 (o + LS (ls_magic), HF_LS_MAGIC);
  hf_put_le16 (o + LS (ls_version), HF_LS_VERSION);
  hf_put_le16 (o + LS (ls_hdr_size), HF_LS_SIZE);
  hf_put_le32 (o + LS (ls_flags), flags);
  hf_put_le32 (o + LS (ls_ttl_s), lease->ttl_s);
  hf_put_le64 (o + LS (ls_epoch), lease->epoch);
  hf_put_le64 (o + LS (ls_acquired_ns), lease->acquired_ns);
  hf_put_le64 (o + LS (ls_renewed_ns), hf_clock_wall_ns ());
  memcpy (o + LS (ls_holder_uuid), lease->holder_uuid, HF_UUID_SIZE);
  memcpy (o + LS (ls_holder), lease->holder, strlen (lease->holder));
  hf_put_le64 (o + LS (ls_committed_seq), lease->committed_seq);
  hf_put_le32 (o + LS (ls_crc), hf_crc32c (0, o, LS (ls_crc)));
}

int
hf_lease_decode (const uint8_t *o, size_t len, const char *key,
                 struct hf_lease_info *out)
{
  if (len != HF_LS_SIZE || hf_le32 (o + LS (ls_magic)) != HF_LS_MAGIC ||
      hf_le16 (o + LS (ls_version)) != HF_LS_VERSION ||
      hf_le16 (o + LS (ls_hdr_size)) != HF_LS_SIZE ||
      hf_crc32c (0, o, LS (ls_crc)) != hf_le32 (o + LS (ls_crc))) {
    hf_error ("volume: lease %s is corrupt (%zu bytes, bad magic, version "
              "or CRC at byte offset 0..%zu)", key, len, LS (ls_crc));
    return EBADMSG;
  }
  out->flags = hf_le32 (o + LS (ls_flags));
  out->ttl_s = hf_le32 (o + LS (ls_ttl_s));
  out->epoch = hf_le64 (o + LS (ls_epoch));
  out->acquired_ns = hf_le64 (o + LS (ls_acquired_ns));
  out->renewed_ns = hf_le64 (o + LS (ls_renewed_ns));
  out->committed_seq = hf_le64 (o + LS (ls_committed_seq));
  memcpy (out->holder_uuid, o + LS (ls_holder_uuid), HF_UUID_SIZE);
  memcpy (out->holder, o + LS (ls_holder), 128);
  out->holder[128] = '\0';
  return 0;
}

/* List callback: the epoch of the first lease key (keys sort newest
 * first because they hold ~epoch). */
struct hf_lease_first {
  size_t plen;
  uint64_t epoch;
  bool found;
};

static int
hf_lease_list_first (void *opaque, const char *key, uint64_t size)
{
  struct hf_lease_first *f = opaque;
  uint64_t num;

  if (strlen (key) > f->plen && hf_seg_key_parse (key + f->plen, &num) == 0) {
    f->epoch = num;
    f->found = true;
  }
  return f->found ? 1 : 0;
}

static void
hf_lease_list_restart (void *opaque)
{
  struct hf_lease_first *f = opaque;

  f->found = false;
}

int
hf_lease_newest (struct hf_objstore *store, const char *prefix,
                 bool *found, struct hf_lease_info *out)
{
  struct hf_lease_first f;
  char pfx[HF_OBJSTORE_KEY_MAX + 1], key[HF_OBJSTORE_KEY_MAX + 1];
  CLEANUP_FREE void *data = NULL;
  size_t len = 0;
  int r;

  *found = false;
  snprintf (pfx, sizeof pfx, "%slease/", prefix);
  f.plen = strlen (pfx);
  r = hf_objstore_list_retry (store, pfx, NULL, hf_lease_list_first, &f,
                              hf_lease_list_restart);
  if (r)
    return r;
  if (!f.found)
    return 0;
  hf_lease_key (key, sizeof key, prefix, f.epoch);
  r = hf_objstore_get_all_retry (store, key, HF_OBJSTORE_SMALL_MAX, &data,
                                 &len);
  if (r)
    return r;
  r = hf_lease_decode (data, len, key, out);
  if (r)
    return r;
  if (out->epoch != f.epoch) {
    hf_error ("volume: lease %s holds epoch %" PRIu64, key, out->epoch);
    return EBADMSG;
  }
  *found = true;
  return 0;
}

struct hf_lease_put_args {
  struct hf_lease *lease;
  const char *key;
  const uint8_t *buf;
  unsigned pflags;
};

static int
hf_lease_put_attempt (void *arg, unsigned attempt)
{
  struct hf_lease_put_args *a = arg;
  struct hf_lease *lease = a->lease;
  int r = hf_objstore_put (lease->store, a->key, a->buf, HF_LS_SIZE,
                           a->pflags);

  if (r == EEXIST && attempt > 0 && (a->pflags & HF_PUT_IF_NONE_MATCH)) {
    /* Our earlier attempt may have landed: check the holder. */
    bool found;
    struct hf_lease_info l;
    if (hf_lease_newest (lease->store, lease->prefix, &found, &l) == 0 &&
        found && l.epoch == lease->epoch &&
        memcmp (l.holder_uuid, lease->holder_uuid, HF_UUID_SIZE) == 0)
      r = 0;
  }
  return r;
}

static int
hf_lease_put (struct hf_lease *lease, uint32_t flags, unsigned pflags)
{
  char key[HF_OBJSTORE_KEY_MAX + 1];
  uint8_t buf[HF_LS_SIZE];
  struct hf_lease_put_args a = { lease, key, buf, pflags };

  hf_lease_key (key, sizeof key, lease->prefix, lease->epoch);
  hf_lease_encode (lease, flags, buf);
  return hf_objstore_retry (lease->store, hf_lease_put_attempt, &a);
}

/* Is a process with this holder string a dead process of this host? */
static bool
hf_lease_holder_dead_here (const char *holder)
{
  char host[256], name[129];
  long pid;

  if (gethostname (host, sizeof host) != 0)
    return false;
  host[sizeof host - 1] = '\0';
  if (sscanf (holder, "%128s pid %ld", name, &pid) != 2 || pid <= 0)
    return false;
  if (strcmp (name, host) != 0)
    return false;
  return kill ((pid_t) pid, 0) != 0 && errno == ESRCH;
}

/* May a writer take the lease after l (the newest, read at now)?  0, or
 * EBUSY logged with who holds it and what to do. */
static int
hf_lease_refuse (const char *name, const struct hf_lease_info *l,
                 uint64_t now, bool takeover, bool break_lease)
{
  bool released = l->flags & HF_LS_RELEASED;
  uint64_t exp = l->renewed_ns + (uint64_t) l->ttl_s * 1000000000;
  bool expired = now >= exp;

  if (released || break_lease || (takeover && expired) ||
      hf_lease_holder_dead_here (l->holder))
    return 0;
  if (expired)
    hf_error ("volume: %s: writer lease epoch %" PRIu64 " of \"%s\" "
              "expired %" PRIu64 " s ago but was not released; if that "
              "server is gone, open with takeover=true to claim it",
              name, l->epoch, l->holder, (now - exp) / 1000000000);
  else
    hf_error ("volume: %s is in use: writer lease epoch %" PRIu64
              " held by \"%s\" expires in %" PRIu64 " s; stop that "
              "server first, or open the volume read-only (nbdkit -r)",
              name, l->epoch, l->holder,
              (exp - now + 999999999) / 1000000000);
  return EBUSY;
}

int
hf_lease_probe (struct hf_objstore *store, const char *prefix,
                bool takeover, bool break_lease)
{
  char name[HF_OBJSTORE_NAME_MAX];
  struct hf_lease_info l;
  bool found;
  int r;

  hf_objstore_name (store, prefix, name, sizeof name);
  r = hf_lease_newest (store, prefix, &found, &l);
  if (r) {
    hf_error ("volume: %s: cannot read the writer lease: %s", name,
              strerror (r));
    return r;
  }
  if (!found)
    return 0;
  return hf_lease_refuse (name, &l, hf_clock_wall_ns (), takeover,
                          break_lease);
}

int
hf_lease_acquire (struct hf_lease *lease, bool takeover, bool break_lease)
{
  char name[HF_OBJSTORE_NAME_MAX];
  struct hf_lease_info l;
  bool found;
  uint64_t now = hf_clock_wall_ns ();
  int r;

  hf_objstore_name (lease->store, lease->prefix, name, sizeof name);
  r = hf_lease_newest (lease->store, lease->prefix, &found, &l);
  if (r) {
    hf_error ("volume: %s: cannot read the writer lease: %s", name,
              strerror (r));
    return r;
  }
  if (found) {
    bool released = l.flags & HF_LS_RELEASED;

    r = hf_lease_refuse (name, &l, now, takeover, break_lease);
    if (r)
      return r;
    if (!released)
      hf_warn ("volume: claiming the writer lease of \"%s\" (epoch %"
               PRIu64 ")%s", l.holder, l.epoch,
               break_lease ? " (break_lease)" : "");
    lease->epoch = l.epoch + 1;
    /* The history reaches at least as far as the last holder knew. */
    if (l.committed_seq > lease->committed_seq)
      lease->committed_seq = l.committed_seq;
  }
  else
    lease->epoch = 1;
  lease->acquired_ns = now;
  r = hf_lease_put (lease, 0, HF_PUT_IF_NONE_MATCH);
  if (r == EEXIST) {
    hf_error ("volume: %s: another writer claimed lease epoch %" PRIu64
              " at the same time", name, lease->epoch);
    return EBUSY;
  }
  if (r) {
    hf_error ("volume: %s: cannot write the writer lease: %s", name,
              strerror (r));
    return r;
  }
  lease->held = true;
  hf_debug ("volume", "lease epoch %" PRIu64 " acquired", lease->epoch);
  return 0;
}

int
hf_lease_check (struct hf_lease *lease)
{
  struct hf_lease_info l;
  bool found;
  int r = hf_lease_newest (lease->store, lease->prefix, &found, &l);

  if (r)
    return r;
  if (found && l.epoch > lease->epoch) {
    hf_error ("volume: writer lease epoch %" PRIu64 " taken by \"%s\" "
              "(ours %" PRIu64 ")", l.epoch, l.holder, lease->epoch);
    return EEXIST;
  }
  return 0;
}

int
hf_lease_renew (struct hf_lease *lease, struct hf_lease_info *newer)
{
  bool found;
  int r = hf_lease_newest (lease->store, lease->prefix, &found, newer);

  if (r)
    return r;
  if (found && newer->epoch > lease->epoch)
    return EEXIST;
  return hf_lease_put (lease, 0, 0);
}

int
hf_lease_record (struct hf_lease *lease)
{
  return hf_lease_put (lease, 0, 0);
}

int
hf_lease_release (struct hf_lease *lease)
{
  return hf_lease_put (lease, HF_LS_RELEASED, 0);
}
