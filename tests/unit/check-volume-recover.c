/* Unit tests for what recovery (opening a volume) accepts and refuses:
 *
 *  - a torn segment (an interrupted PUT whose body the store kept, from
 *    the fault store's p_put_torn) is not landed: the log replays its
 *    records, every flushed write reads back; a writer that lives on
 *    does not take its own torn attempt for a landed segment;
 *  - a damaged newest segment is refused (EBADMSG, naming the object and
 *    pointing to at= and rollback), never skipped for an older head; at=
 *    still reads the older points;
 *  - deleting the newest segments is noticed through the lease's record
 *    of the committed head (open refuses, fsck reports it);
 *  - 40 orphans above the head (more than one listing batch: ten of 4
 *    keys) do not keep an intact volume from opening;
 *  - an open lists the newest segment keys only, as far down as the
 *    head's chain reaches, whatever the number of segments (counted by
 *    a store that wraps the directory store), and at= lists down to the
 *    point it reads;
 *  - with grouped segment keys (HF_VD_SEG_GROUPS, what a directory bucket
 *    gets) over three groups of 512: the keys are grouped, an open lists
 *    the newest group and the empty one above it (and the one below
 *    when the head's chain reaches into it), at= an old point lists its
 *    group, a volume without its lease (no record of the head) lists
 *    seg/ as a flat volume does, and the data reads back each time;
 *  - a writer fenced between picking a segment and its PUT (forced with
 *    -Wl,--wrap of the lease calls) starts no PUT;
 *  - a writer fenced while its PUT is under way (held in the fault
 *    store) calls it off: nothing lands.
 */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <errno.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "format.h"
#include "fsck.h"
#include "lease.h"
#include "log.h"
#include "objstore.h"
#include "segment.h"
#include "test-util.h"
#include "volume-int.h"
#include "volume.h"

static void
pattern (uint8_t *p, size_t n, unsigned seed)
{
  size_t i;

  for (i = 0; i < n; i++)
    p[i] = (uint8_t) (i * 7 + seed * 13 + (i >> 12));
}

static struct hf_volume *
open_ok (struct hf_objstore *s, const struct hf_volume_options *o)
{
  struct hf_volume *v = NULL;
  int r = hf_volume_open (s, "", o, &v);

  ck_assert_msg (r == 0, "open: %s (%s)", strerror (r), last_error);
  return v;
}

static uint64_t
head_of (struct hf_volume *v)
{
  struct hf_volume_info info;

  hf_volume_get_info (v, &info);
  return info.head_seq;
}

/* ---- A store that counts the keys listings pass on ---- */

static struct hf_objstore *count_inner;
static uint64_t count_seg_keys;         /* keys under "seg/" passed on */
static uint64_t count_seg_oldest;       /* the oldest seq passed on */

struct count_list {
  hf_objstore_list_fn fn;
  void *opaque;
};

static int
count_cb (void *opaque, const char *key, uint64_t size)
{
  struct count_list *cl = opaque;
  uint64_t seq;

  if (strncmp (key, "seg/", 4) == 0 && hf_seg_name_parse (key + 4, &seq) == 0) {
    count_seg_keys++;
    if (count_seg_oldest == 0 || seq < count_seg_oldest)
      count_seg_oldest = seq;
  }
  return cl->fn (cl->opaque, key, size);
}

static int
count_list (struct hf_objstore *s, const char *prefix,
            const char *start_after, hf_objstore_list_fn fn, void *opaque)
{
  struct count_list cl = { fn, opaque };

  (void) s;
  return hf_objstore_list (count_inner, prefix, start_after, count_cb, &cl);
}

static int
count_get (struct hf_objstore *s, const char *key, uint64_t off, size_t len,
           void *buf, size_t *got)
{
  (void) s;
  return hf_objstore_get (count_inner, key, off, len, buf, got);
}

static int
count_get_all (struct hf_objstore *s, const char *key, size_t max,
               void **data, size_t *len)
{
  (void) s;
  return hf_objstore_get_all (count_inner, key, max, data, len);
}

static int
count_head (struct hf_objstore *s, const char *key,
            struct hf_objstore_info *info)
{
  (void) s;
  return hf_objstore_head (count_inner, key, info);
}

static int
count_put (struct hf_objstore *s, const char *key, const void *data,
           size_t len, unsigned flags, const atomic_bool *cancel)
{
  (void) s;
  return hf_objstore_put_cancel (count_inner, key, data, len, flags, cancel);
}

static int
count_del (struct hf_objstore *s, const char *key)
{
  (void) s;
  return hf_objstore_delete (count_inner, key);
}

static int
count_delete_many (struct hf_objstore *s, const char *const *keys, size_t n)
{
  (void) s;
  return hf_objstore_delete_many (count_inner, keys, n);
}

static const char *
count_describe (struct hf_objstore *s)
{
  (void) s;
  return "count";
}

static void
count_close (struct hf_objstore *s)
{
  (void) s;
}

static const struct hf_objstore_ops count_ops = {
  .name = "count", .get = count_get, .get_all = count_get_all,
  .head = count_head, .put = count_put, .del = count_del,
  .delete_many = count_delete_many, .list = count_list,
  .describe = count_describe, .close = count_close,
};

/* A new 1 MiB volume (4 KiB blocks) on the fault store, configured by
 * *fc, over the directory store in dir.  *inner is that directory store
 * (borrowed: closing the fault store closes it), to look behind the
 * faults. */
static struct hf_objstore *
fault_volume (const char *dir, const struct hf_fault_config *fc,
              struct hf_objstore **inner)
{
  struct hf_objstore *s;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, inner), 0);
  ck_assert_int_eq (hf_objstore_fault_open (*inner, fc, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, 4096), 0);
  return s;
}

/* Opened at segment seq, the volume's first n bytes are want's. */
static void
check_at (struct hf_objstore *s, uint64_t seq, const uint8_t *want,
          size_t n)
{
  struct hf_volume_options ro = { .at_seq = seq };
  struct hf_volume *v = open_ok (s, &ro);
  uint8_t *r = malloc (n);

  ck_assert_ptr_nonnull (r);
  ck_assert_int_eq (hf_volume_pread (v, r, n, 0), 0);
  ck_assert_msg (memcmp (r, want, n) == 0, "at=%" PRIu64 " reads other "
                 "bytes", seq);
  ck_assert_int_eq (hf_volume_close (v), 0);
  free (r);
}

/* List callback: keep up to 8 keys (struct keys below). */
static int
collect_key (void *opaque, const char *key, uint64_t size)
{
  struct { char k[8][HF_OBJSTORE_KEY_MAX + 1]; size_t n; } *ks = opaque;

  (void) size;
  if (ks->n < 8)
    snprintf (ks->k[ks->n++], sizeof ks->k[0], "%s", key);
  return 0;
}

/* Flip one byte of an object through the store API. */
static void
damage (struct hf_objstore *s, const char *key, uint64_t off)
{
  void *data;
  size_t len;

  ck_assert_int_eq (hf_objstore_get_all (s, key, SIZE_MAX, &data, &len), 0);
  ck_assert_uint_lt (off, len);
  ((uint8_t *) data)[off] ^= 0x5a;
  ck_assert_int_eq (hf_objstore_put (s, key, data, len, 0), 0);
  free (data);
}

/* ---- Fencing ---- */

/* -Wl,--wrap=hf_lease_renew,--wrap=hf_lease_check (tests/Makefile.am):
 * renewals can be made to fail (fence_renew EIO) or to find a newer
 * epoch (EEXIST), and the uploader's lease check, made when renewals
 * have been failing, can be made to wait until the renewal thread has
 * fenced the writer and then answer "still ours": the takeover landing
 * right after the check, before the PUT. */
extern int __real_hf_lease_renew (struct hf_lease *, struct hf_lease_info *);
extern int __real_hf_lease_check (struct hf_lease *);
int __wrap_hf_lease_renew (struct hf_lease *, struct hf_lease_info *);
int __wrap_hf_lease_check (struct hf_lease *);
static int fence_renew;                 /* atomic: 0, EIO or EEXIST */
static struct hf_volume *fence_vol;     /* atomic: the check's volume */
static int fence_checks;                /* atomic */
static unsigned renew_delay_us;         /* atomic: a renewal's time */
static int renews_started;              /* atomic: renewals let through */

int
__wrap_hf_lease_renew (struct hf_lease *l, struct hf_lease_info *newer)
{
  int r = __atomic_load_n (&fence_renew, __ATOMIC_ACQUIRE);

  if (r == EEXIST) {
    memset (newer, 0, sizeof *newer);
    newer->epoch = l->epoch + 1;
    strcpy (newer->holder, "check-volume-recover pid 1");
  }
  if (r)
    return r;
  __atomic_add_fetch (&renews_started, 1, __ATOMIC_ACQ_REL);
  usleep (__atomic_load_n (&renew_delay_us, __ATOMIC_ACQUIRE));
  return __real_hf_lease_renew (l, newer);
}

int
__wrap_hf_lease_check (struct hf_lease *l)
{
  struct hf_volume *v = __atomic_exchange_n (&fence_vol, NULL,
                                             __ATOMIC_ACQ_REL);
  struct hf_volume_info info;
  double t0 = now ();

  if (v == NULL)
    return __real_hf_lease_check (l);
  __atomic_add_fetch (&fence_checks, 1, __ATOMIC_ACQ_REL);
  __atomic_store_n (&fence_renew, EEXIST, __ATOMIC_RELEASE);
  do {
    usleep (10000);
    hf_volume_get_info (v, &info);
  } while (!info.fenced && now () - t0 < 60);
  return 0;
}

/* A writer that learns it is fenced while a segment is on its way to
 * the PUT never starts that PUT. */
START_TEST (test_fenced_no_put)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_objstore_info oi;
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .lease_ttl_s = 1 };
  struct hf_volume_info info;
  struct hf_volume *v;
  uint8_t x[4096];
  uint64_t h0;
  char key[64];
  double t0;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, 4096), 0);
  /* Renewals are slow (a loaded machine), and one is under way when
   * they start failing: it still succeeds. */
  __atomic_store_n (&renew_delay_us, 600 * 1000, __ATOMIC_RELEASE);
  __atomic_store_n (&renews_started, 0, __ATOMIC_RELEASE);
  v = open_ok (s, &o);
  h0 = head_of (v);
  WAIT_UNTIL (__atomic_load_n (&renews_started, __ATOMIC_ACQUIRE) != 0, 60,
              "a lease renewal to start");
  /* Renewals fail from now on: after 2/3 of the ttl the uploader checks
   * the lease before each PUT.  The last success is older than the first
   * failure (one renewal at a time), so 2/3 of the ttl are counted from
   * there, not from here. */
  __atomic_store_n (&fence_renew, EIO, __ATOMIC_RELEASE);
  t0 = now ();
  do {
    ck_assert_msg (now () - t0 < 60, "no lease renewal failed");
    usleep (10000);
    hf_volume_get_info (v, &info);
  } while (info.lease_renew_failures == 0);
  usleep (900 * 1000);
  __atomic_store_n (&fence_checks, 0, __ATOMIC_RELEASE);
  __atomic_store_n (&fence_vol, v, __ATOMIC_RELEASE);
  pattern (x, sizeof x, 11);
  ck_assert_int_eq (hf_volume_pwrite (v, x, sizeof x, 0, 0), 0);
  ck_assert_int_ne (hf_volume_flush (v), 0);
  ck_assert_int_eq (__atomic_load_n (&fence_checks, __ATOMIC_ACQUIRE), 1);
  hf_volume_get_info (v, &info);
  ck_assert (info.fenced);
  /* The uploader ends what it was doing (joined), then: nothing was
   * uploaded after the writer knew. */
  hf_volume_crash (v);
  hf_seg_key (key, sizeof key, "", h0 + 1);
  ck_assert_int_eq (hf_objstore_head (s, key, &oi), ENOENT);
  __atomic_store_n (&fence_renew, 0, __ATOMIC_RELEASE);
  __atomic_store_n (&renew_delay_us, 0, __ATOMIC_RELEASE);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* A writer fenced while its segment PUT is under way (held in the fault
 * store: a writer stalled mid-upload) calls the PUT off: it returns
 * ECANCELED at once, without landing, instead of landing whenever the
 * store lets it go (after the new writer started: with the new writer's
 * seq, which would stop it). */
START_TEST (test_fenced_put_cancelled)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *d, *s;
  struct hf_objstore_info oi;
  struct hf_fault_config fc = { .seed = 5 };
  struct hf_volume_options o = { .flush_interval_ms = 20,
                                 .lease_ttl_s = 1 };
  struct hf_volume_info info;
  struct hf_volume *v;
  uint8_t x[4096];
  uint64_t h0;
  char key[64];
  double t0;

  s = fault_volume (dir, &fc, &d);
  v = open_ok (s, &o);
  h0 = head_of (v);
  fc.hold_key = "seg/";
  hf_objstore_fault_set_config (s, &fc);
  pattern (x, sizeof x, 12);
  ck_assert_int_eq (hf_volume_pwrite (v, x, sizeof x, 0, 0), 0);
  /* The timer seals it, the uploader's PUT waits in the store. */
  t0 = now ();
  while (hf_objstore_fault_held (s) == 0 && now () - t0 < 60)
    usleep (1000);
  ck_assert_uint_eq (hf_objstore_fault_held (s), 1);
  /* The next renewal finds a newer epoch: fenced.  The PUT must stop
   * by itself (bounded wait: it is held until released). */
  __atomic_store_n (&fence_renew, EEXIST, __ATOMIC_RELEASE);
  t0 = now ();
  while (hf_objstore_fault_held (s) > 0 && now () - t0 < 20)
    usleep (1000);
  hf_volume_get_info (v, &info);
  ck_assert (info.fenced);
  ck_assert_msg (hf_objstore_fault_held (s) == 0,
                 "the fenced writer's PUT is still under way");
  /* Let anything still held go, stop the writer: nothing landed. */
  hf_objstore_fault_release (s);
  hf_volume_crash (v);
  hf_seg_key (key, sizeof key, "", h0 + 1);
  ck_assert_int_eq (hf_objstore_head (d, key, &oi), ENOENT);
  __atomic_store_n (&fence_renew, 0, __ATOMIC_RELEASE);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* ---- Torn segments ---- */

/* Wait (bounded) until the fault store has torn an upload and the
 * uploader has tried again against the store, down since: on a slow
 * machine (valgrind) the retry, 50 to 100 ms later, may come before the
 * test looks, so it is made to come first every time. */
static void
wait_torn_and_retried (struct hf_objstore *s)
{
  double t0 = now ();

  while (hf_objstore_fault_injected (s) < 2) {
    ck_assert_msg (now () - t0 < 60, "no torn upload and retry in 60 s "
                   "(%" PRIu64 " faults)", hf_objstore_fault_injected (s));
    usleep (1000);
  }
}

/* With the log: the write seals a segment at once (16 KiB segments), its
 * upload is torn (keep of it lands) and the writer "dies".  Reopened,
 * the torn object must count as not landed, so the log's records are
 * replayed and every flushed byte reads back. */
static void
torn_case (double keep)
{
  char *dir = make_tmpdir (), *wdir = make_tmpdir (), *wal;
  struct hf_objstore *d, *s;
  struct hf_fault_config fc = { .seed = 3 };
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .segment_size = 16384,
                                 .flush_timeout_ms = 30000 };
  struct hf_volume *v;
  /* 32 blocks: the segment is larger than the first metadata read
   * (HF_SEG_META_READ), so a cut in its data area leaves everything
   * that read checks intact. */
  static uint8_t a[32 * 4096], b[32 * 4096], r[32 * 4096];
  struct hf_objstore_info oi;
  char key[64];
  uint64_t head0;

  ck_assert (asprintf (&wal, "%s/wal", wdir) > 0);
  s = fault_volume (dir, &fc, &d);
  o.wal_dir = wal;
  v = open_ok (s, &o);
  pattern (a, sizeof a, 1);
  ck_assert_int_eq (hf_volume_pwrite (v, a, sizeof a, 0, HF_VOL_FUA), 0);
  ck_assert_int_eq (hf_volume_close (v), 0);    /* all committed */

  v = open_ok (s, &o);
  head0 = head_of (v);
  fc.p_put_torn = 1.0;
  fc.torn_keep = keep;
  hf_objstore_fault_set_config (s, &fc);
  pattern (b, sizeof b, 2);
  ck_assert_int_eq (hf_volume_pwrite (v, b, sizeof b, 0, HF_VOL_FUA), 0);
  /* Wait (bounded) for the torn upload: the store is then down, so
   * nothing after it lands; then the writer dies.  Its prefix is in the
   * store (fsck counts it below). */
  wait_torn_and_retried (s);
  hf_seg_key (key, sizeof key, "", head0 + 1);
  ck_assert_int_eq (hf_objstore_head (d, key, &oi), 0);
  hf_volume_crash (v);
  fc.p_put_torn = 0;
  fc.down = false;
  hf_objstore_fault_set_config (s, &fc);

  o.break_lease = true;
  v = open_ok (s, &o);
  {
    /* The torn one (head0 + 1) is not the head; the new writer may
     * already have committed above it (it does in the background: on a
     * slow machine, under valgrind, before we look). */
    uint64_t h = head_of (v);
    ck_assert_msg (h == head0 || h > head0 + 1, "head %" PRIu64
                   " after the torn upload of %" PRIu64, h, head0 + 1);
  }
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 0), 0);
  ck_assert (memcmp (r, b, sizeof b) == 0);
  ck_assert_int_eq (hf_volume_close (v), 0);
  o.break_lease = false;
  o.wal_dir = NULL;             /* and the store alone has it now */
  v = open_ok (s, &o);
  ck_assert_uint_gt (head_of (v), head0 + 1);   /* above the torn seq */
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 0), 0);
  ck_assert (memcmp (r, b, sizeof b) == 0);
  ck_assert_int_eq (hf_volume_close (v), 0);
  /* The torn object is an incomplete upload to fsck, not damage. */
  {
    struct hf_fsck_options fo = { .retain_ns = UINT64_MAX / 4 };
    struct hf_fsck_report rep;

    ck_assert_int_eq (hf_fsck_run (s, "", &fo, &rep), 0);
    ck_assert_uint_eq (rep.problems, 0);
    ck_assert_uint_eq (rep.incomplete, 1);
  }

  hf_objstore_close (s);
  free (wal);
  rm_tmpdir (wdir);
  rm_tmpdir (dir);
}

/* Cut in the data area: header and tables verify. */
START_TEST (test_torn_data)
{
  torn_case (0.9);
}
END_TEST

/* Cut inside the header: not damage either, an upload that never
 * finished. */
START_TEST (test_torn_header)
{
  torn_case (0.001);
}
END_TEST

/* The writer lives on after its upload was torn (the store, not the
 * writer, failed mid-PUT and kept the body): the retry finds its own
 * prefix under the key.  That is not a landed segment: it is deleted
 * and uploaded again, and the data is in the store after close. */
START_TEST (test_torn_retry)
{
  char *dir = make_tmpdir (), *wdir = make_tmpdir (), *wal;
  struct hf_objstore *d, *s;
  struct hf_fault_config fc = { .seed = 4 };
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .segment_size = 16384,
                                 .flush_timeout_ms = 30000 };
  struct hf_volume *v;
  static uint8_t b[32 * 4096], r[32 * 4096];

  ck_assert (asprintf (&wal, "%s/wal", wdir) > 0);
  s = fault_volume (dir, &fc, &d);
  o.wal_dir = wal;
  v = open_ok (s, &o);
  fc.p_put_torn = 1.0;
  fc.torn_keep = 0.9;
  hf_objstore_fault_set_config (s, &fc);
  pattern (b, sizeof b, 3);
  ck_assert_int_eq (hf_volume_pwrite (v, b, sizeof b, 0, HF_VOL_FUA), 0);
  wait_torn_and_retried (s);
  /* The store is back; the uploader retries by itself. */
  fc.p_put_torn = 0;
  fc.down = false;
  hf_objstore_fault_set_config (s, &fc);
  ck_assert_int_eq (hf_volume_close (v), 0);

  o.wal_dir = NULL;             /* the store alone */
  v = open_ok (s, &o);
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 0), 0);
  ck_assert (memcmp (r, b, sizeof b) == 0);
  ck_assert_int_eq (hf_volume_close (v), 0);

  hf_objstore_close (s);
  free (wal);
  rm_tmpdir (wdir);
  rm_tmpdir (dir);
}
END_TEST

/* ---- A damaged newest segment ---- */

START_TEST (test_damaged_head)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .checkpoint_segments = 100 };
  struct hf_volume *v = NULL;
  uint8_t x[4 * 4096], y[4 * 4096], r[4 * 4096];
  uint64_t h1, h2;
  char key[64];

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, 4096), 0);
  v = open_ok (s, &o);
  pattern (x, sizeof x, 5);
  pattern (y, sizeof y, 6);
  ck_assert_int_eq (hf_volume_pwrite (v, x, sizeof x, 0, HF_VOL_FUA), 0);
  h1 = head_of (v);
  ck_assert_int_eq (hf_volume_pwrite (v, y, sizeof y, 0, HF_VOL_FUA), 0);
  h2 = head_of (v);
  ck_assert_uint_eq (h2, h1 + 1);
  hf_volume_crash (v);
  /* One header byte of the head (in sh_volume_size: the CRC catches
   * it). */
  hf_seg_key (key, sizeof key, "", h2);
  damage (s, key, 58);

  o.break_lease = true;
  last_error[0] = '\0';
  v = NULL;
  ck_assert_int_eq (hf_volume_open (s, "", &o, &v), EBADMSG);
  ck_assert_ptr_null (v);
  ck_assert_msg (strstr (last_error, key) && strstr (last_error, "at=") &&
                 strstr (last_error, "rollback"),
                 "the error names the object and the way out: %s",
                 last_error);
  /* Read-only: refused the same way; at= the older point is served. */
  {
    struct hf_volume_options ro = { .readonly = true };
    ck_assert_int_eq (hf_volume_open (s, "", &ro, &v), EBADMSG);
    ro.at_seq = h1;
    v = open_ok (s, &ro);
    ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 0), 0);
    ck_assert (memcmp (r, x, sizeof x) == 0);
    ck_assert_int_eq (hf_volume_close (v), 0);
  }
  /* fsck reports the damaged segment and checks the rest. */
  {
    struct hf_fsck_options fo = { .retain_ns = UINT64_MAX / 4 };
    struct hf_fsck_report rep;

    ck_assert_int_eq (hf_fsck_run (s, "", &fo, &rep), 0);
    ck_assert_uint_ge (rep.problems, 1);
    ck_assert_uint_eq (rep.head_seq, h1);
  }
  /* The explicit way on (hyperfile rollback): accept_older_head opens
   * at h1 and commits above the damaged segment at once; after that the
   * volume opens normally. */
  o.accept_older_head = true;
  v = open_ok (s, &o);
  o.accept_older_head = false;
  ck_assert_uint_gt (head_of (v), h2);
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 0), 0);
  ck_assert (memcmp (r, x, sizeof x) == 0);
  hf_volume_crash (v);
  v = open_ok (s, &o);
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 0), 0);
  ck_assert (memcmp (r, x, sizeof x) == 0);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* ---- Deleted newest segments ---- */

static char fsck_seen[1024];

static void
fsck_note (void *opaque, const char *object, uint64_t offset,
           const char *what)
{
  (void) opaque;
  snprintf (fsck_seen, sizeof fsck_seen, "%s@%" PRIu64 ": %s", object,
            offset, what);
}

START_TEST (test_deleted_head)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .checkpoint_segments = 100 };
  struct hf_fsck_options fo = { .retain_ns = UINT64_MAX / 4 };
  struct hf_fsck_report rep;
  struct hf_volume *v = NULL;
  uint8_t x[4 * 4096], y[4 * 4096];
  uint64_t h1, h2, seq;
  char key[64];

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, 4096), 0);
  v = open_ok (s, &o);
  pattern (x, sizeof x, 7);
  pattern (y, sizeof y, 8);
  ck_assert_int_eq (hf_volume_pwrite (v, x, sizeof x, 0, HF_VOL_FUA), 0);
  h1 = head_of (v);
  ck_assert_int_eq (hf_volume_pwrite (v, y, sizeof y, 0, HF_VOL_FUA), 0);
  ck_assert_int_eq (hf_volume_close (v), 0);    /* + a checkpoint */
  {
    struct hf_volume_options ro = { .readonly = true };
    v = open_ok (s, &ro);
    h2 = head_of (v);
    ck_assert_int_eq (hf_volume_close (v), 0);
  }
  ck_assert_uint_gt (h2, h1 + 1);
  /* Everything above h1 goes, checkpoint included. */
  for (seq = h1 + 1; seq <= h2; seq++) {
    hf_seg_key (key, sizeof key, "", seq);
    ck_assert_int_eq (hf_objstore_delete (s, key), 0);
  }

  last_error[0] = '\0';
  v = NULL;
  ck_assert_int_eq (hf_volume_open (s, "", &o, &v), ESTALE);
  ck_assert_ptr_null (v);
  ck_assert_msg (strstr (last_error, "lease") && strstr (last_error, "at="),
                 "the error says why and the way out: %s", last_error);
  {
    struct hf_volume_options ro = { .readonly = true };
    ck_assert_int_eq (hf_volume_open (s, "", &ro, &v), ESTALE);
  }
  /* fsck reports it. */
  memset (&rep, 0, sizeof rep);
  fo.fn = fsck_note;
  fsck_seen[0] = '\0';
  ck_assert_int_eq (hf_fsck_run (s, "", &fo, &rep), 0);
  /* The lease's record, and the missing segment it names (the last
   * problem reported). */
  ck_assert_uint_eq (rep.problems, 2);
  hf_seg_key (key, sizeof key, "", h2);
  ck_assert_msg (strstr (fsck_seen, "deleted or lost") != NULL &&
                 strstr (fsck_seen, key) != NULL, "fsck: %s", fsck_seen);
  /* at= reads what is left; accept_older_head moves on past it. */
  check_at (s, h1, x, sizeof x);
  o.accept_older_head = true;
  v = open_ok (s, &o);
  o.accept_older_head = false;
  ck_assert_uint_gt (head_of (v), h2);          /* no key reused */
  ck_assert_int_eq (hf_volume_close (v), 0);
  v = open_ok (s, &o);
  ck_assert_int_eq (hf_volume_close (v), 0);
  memset (&rep, 0, sizeof rep);
  ck_assert_int_eq (hf_fsck_run (s, "", &fo, &rep), 0);
  ck_assert_uint_eq (rep.problems, 0);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* A writer killed right after a commit, long before its next lease
 * renewal (ttl 600 s): its newest segment is then deleted, or cut to
 * half (what is left reads as an upload that never landed).  The lease
 * recorded the segment when it committed, so the open refuses (ESTALE)
 * naming it, instead of opening one point older. */
static void
lost_newest_case (bool trunc)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .checkpoint_segments = 100,
                                 .lease_ttl_s = 600 };
  struct hf_fsck_options fo = { .retain_ns = UINT64_MAX / 4 };
  struct hf_fsck_report rep;
  struct hf_volume *v = NULL;
  uint8_t x[4 * 4096], y[4 * 4096];
  uint64_t h1, h2;
  char key[64], want[64];

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, 4096), 0);
  v = open_ok (s, &o);
  pattern (x, sizeof x, 13);
  pattern (y, sizeof y, 14);
  ck_assert_int_eq (hf_volume_pwrite (v, x, sizeof x, 0, HF_VOL_FUA), 0);
  h1 = head_of (v);
  ck_assert_int_eq (hf_volume_pwrite (v, y, sizeof y, 0, HF_VOL_FUA), 0);
  h2 = head_of (v);
  ck_assert_uint_eq (h2, h1 + 1);
  hf_volume_crash (v);                  /* no renewal, no release */
  hf_seg_key (key, sizeof key, "", h2);
  if (trunc) {
    void *data;
    size_t len;

    ck_assert_int_eq (hf_objstore_get_all (s, key, SIZE_MAX, &data, &len),
                      0);
    ck_assert_int_eq (hf_objstore_put (s, key, data, len / 2, 0), 0);
    free (data);
  }
  else
    ck_assert_int_eq (hf_objstore_delete (s, key), 0);

  o.break_lease = true;
  last_error[0] = '\0';
  v = NULL;
  ck_assert_int_eq (hf_volume_open (s, "", &o, &v), ESTALE);
  ck_assert_ptr_null (v);
  snprintf (want, sizeof want, "segment %" PRIu64 " as committed", h2);
  ck_assert_msg (strstr (last_error, want) != NULL,
                 "the error names segment %" PRIu64 ": %s", h2, last_error);
  memset (&rep, 0, sizeof rep);
  ck_assert_int_eq (hf_fsck_run (s, "", &fo, &rep), 0);
  ck_assert_uint_ge (rep.problems, 1);
  /* The older point is still there to read, explicitly. */
  check_at (s, h1, x, sizeof x);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}

START_TEST (test_lost_newest_deleted)
{
  lost_newest_case (false);
}
END_TEST

START_TEST (test_lost_newest_truncated)
{
  lost_newest_case (true);
}
END_TEST

/* -Wl,--wrap=hf_lease_record: the record of a commit can be made to
 * fail (record_fail EIO). */
extern int __real_hf_lease_record (struct hf_lease *);
int __wrap_hf_lease_record (struct hf_lease *);
static int record_fail;                 /* atomic: 0 or EIO */
static int record_calls;                /* atomic */

int
__wrap_hf_lease_record (struct hf_lease *l)
{
  int r = __atomic_load_n (&record_fail, __ATOMIC_ACQUIRE);

  __atomic_add_fetch (&record_calls, 1, __ATOMIC_ACQ_REL);
  return r ? r : __real_hf_lease_record (l);
}

/* With a log: a commit the lease does not record (its record failed)
 * keeps its records in the log, so that losing the segment loses no
 * flushed write: the log replays them. */
START_TEST (test_unrecorded_log_kept)
{
  char *dir = make_tmpdir (), *wdir = make_tmpdir (), *wal;
  struct hf_objstore *s;
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .segment_size = 16384,
                                 .checkpoint_segments = 100,
                                 .lease_ttl_s = 600 };
  struct hf_volume *v;
  static uint8_t a[32 * 4096], b[32 * 4096], r[32 * 4096];
  uint64_t head0, h;
  char key[64];
  double t0;

  ck_assert (asprintf (&wal, "%s/wal", wdir) > 0);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, 4096), 0);
  o.wal_dir = wal;
  v = open_ok (s, &o);
  pattern (a, sizeof a, 15);
  ck_assert_int_eq (hf_volume_pwrite (v, a, sizeof a, 0, HF_VOL_FUA), 0);
  ck_assert_int_eq (hf_volume_close (v), 0);    /* committed, recorded */

  v = open_ok (s, &o);
  head0 = head_of (v);
  __atomic_store_n (&record_fail, EIO, __ATOMIC_RELEASE);
  __atomic_store_n (&record_calls, 0, __ATOMIC_RELEASE);
  pattern (b, sizeof b, 16);
  /* Flushed to the log; the write fills a segment, which commits. */
  ck_assert_int_eq (hf_volume_pwrite (v, b, sizeof b, 0, HF_VOL_FUA), 0);
  t0 = now ();
  while (__atomic_load_n (&record_calls, __ATOMIC_ACQUIRE) == 0 &&
         now () - t0 < 60)
    usleep (1000);
  h = head_of (v);
  ck_assert_uint_gt (h, head0);
  hf_volume_crash (v);
  __atomic_store_n (&record_fail, 0, __ATOMIC_RELEASE);
  /* Everything above head0 goes. */
  for (; h > head0; h--) {
    hf_seg_key (key, sizeof key, "", h);
    ck_assert_int_eq (hf_objstore_delete (s, key), 0);
  }

  o.break_lease = true;
  v = open_ok (s, &o);
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 0), 0);
  ck_assert_msg (memcmp (r, b, sizeof b) == 0,
                 "the flushed write is lost (the log released it)");
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (s);
  free (wal);
  rm_tmpdir (wdir);
  rm_tmpdir (dir);
}
END_TEST

/* ---- Segments behind a held upload ---- */

/* With the upload of segment h1 + 1 held in the fault store: n writes of
 * a block (pattern seed + i at off + i * step), each sealed into a
 * segment of its own by the timer (n uploads in flight), then the n - 1
 * after the held one landed in the inner store d, and the head still
 * h1: a hole below uploads that landed. */
static void
seal_behind_hold (struct hf_volume *v, struct hf_objstore *d, uint64_t h1,
                  unsigned n, unsigned seed, uint64_t off, uint64_t step)
{
  struct hf_objstore_info oi;
  struct hf_volume_info info;
  uint8_t x[4096];
  char key[64];
  double t0;
  unsigned i;

  for (i = 0; i < n; i++) {
    pattern (x, sizeof x, seed + i);
    ck_assert_int_eq (hf_volume_pwrite (v, x, sizeof x, off + i * step, 0),
                      0);
    t0 = now ();
    do {                        /* the timer seals it */
      usleep (1000);
      hf_volume_get_info (v, &info);
    } while (info.uploads_in_flight < (uint64_t) i + 1 && now () - t0 < 60);
    ck_assert_uint_eq (info.uploads_in_flight, i + 1);
  }
  for (i = 2; i <= n; i++) {
    hf_seg_key (key, sizeof key, "", h1 + i);
    t0 = now ();
    while (hf_objstore_head (d, key, &oi) == ENOENT && now () - t0 < 60)
      usleep (1000);
    ck_assert_int_eq (hf_objstore_head (d, key, &oi), 0);
  }
  ck_assert_uint_eq (head_of (v), h1);
}

/* ---- A burst of commits enters the cache ---- */

/* The cache hooks of test_commit_burst_cached: which segments were
 * offered (data or nodes). */
static pthread_mutex_t burst_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t burst_put[64];
static unsigned burst_n;

static int
burst_cache_get (void *opaque, uint64_t seq, uint64_t off, void *buf,
                 size_t len)
{
  return ENOENT;
}

static void
burst_cache_put (void *opaque, uint64_t seq, uint64_t off, const void *buf,
                 size_t len, const uint32_t *crcs)
{
  pthread_mutex_lock (&burst_lock);
  if (burst_n < 64 && (burst_n == 0 || burst_put[burst_n - 1] != seq))
    burst_put[burst_n++] = seq;
  pthread_mutex_unlock (&burst_lock);
}

/* The oldest upload is held while the next seven land: its commit then
 * commits all eight at once, and every one of them is offered to the
 * cache (a queue of four used to leave the other four out: their blocks
 * were read from the store again). */
START_TEST (test_commit_burst_cached)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *d, *s;
  struct hf_fault_config fc = { .seed = 7 };
  struct hf_volume_hooks hk = { .cache_get = burst_cache_get,
                                .cache_put = burst_cache_put };
  struct hf_volume_options o = { .flush_interval_ms = 20,
                                 .checkpoint_segments = 100,
                                 .max_uploads = 8, .hooks = &hk };
  struct hf_volume_info info;
  struct hf_volume *v = NULL;
  uint8_t x[4096];
  uint64_t h1;
  char hold[64];
  unsigned i, j;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &d), 0);
  ck_assert_int_eq (hf_objstore_fault_open (d, &fc, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, 4096), 0);
  v = open_ok (s, &o);
  pattern (x, sizeof x, 1);
  ck_assert_int_eq (hf_volume_pwrite (v, x, sizeof x, 0, HF_VOL_FUA), 0);
  h1 = head_of (v);
  hf_seg_key (hold, sizeof hold, "", h1 + 1);
  fc.hold_key = hold;
  hf_objstore_fault_set_config (s, &fc);
  seal_behind_hold (v, d, h1, 8, 10, 0, 4096);
  pthread_mutex_lock (&burst_lock);
  burst_n = 0;
  pthread_mutex_unlock (&burst_lock);
  hf_objstore_fault_release (s);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  ck_assert_uint_eq (head_of (v), h1 + 8);
  hf_volume_get_info (v, &info);
  ck_assert_uint_eq (info.cache_skipped, 0);
  /* The uploaders put them in the cache after the commit; close waits
   * for what they left. */
  ck_assert_int_eq (hf_volume_close (v), 0);
  pthread_mutex_lock (&burst_lock);
  for (i = 1; i <= 8; i++) {
    for (j = 0; j < burst_n && burst_put[j] != h1 + i; j++)
      ;
    ck_assert_msg (j < burst_n, "segment %u of 8 not offered to the cache "
                   "(%u were)", i, burst_n);
  }
  pthread_mutex_unlock (&burst_lock);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* ---- Many orphans ---- */

START_TEST (test_many_orphans)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *d, *s;
  struct hf_objstore_info oi;
  struct hf_fault_config fc = { .seed = 6 };
  struct hf_volume_options o = { .flush_interval_ms = 20,
                                 .checkpoint_segments = 100 };
  struct hf_volume *v = NULL;
  uint8_t x[4096], y[4096], r[4096];
  uint64_t h1;
  char hold[64];

  s = fault_volume (dir, &fc, &d);
  v = open_ok (s, &o);
  pattern (x, sizeof x, 9);
  ck_assert_int_eq (hf_volume_pwrite (v, x, sizeof x, 0, HF_VOL_FUA), 0);
  h1 = head_of (v);
  /* The upload of h1 + 1 stalls; the 40 after it land: orphans above
   * the head (uploads that landed while the oldest kept failing), and
   * then the writer dies. */
  hf_seg_key (hold, sizeof hold, "", h1 + 1);
  fc.hold_key = hold;
  hf_objstore_fault_set_config (s, &fc);
  seal_behind_hold (v, d, h1, 41, 100, 4096, 0);
  hf_volume_crash (v);
  ck_assert_int_eq (hf_objstore_head (d, hold, &oi), ENOENT);

  o.break_lease = true;
  o.flush_interval_ms = UINT32_MAX;
  o.list_batch = 4;             /* the 40 orphans take ten batches */
  v = open_ok (s, &o);
  ck_assert_uint_eq (head_of (v), h1);
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 0), 0);
  ck_assert (memcmp (r, x, sizeof x) == 0);
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 4096), 0);
  memset (y, 0, sizeof y);
  ck_assert (memcmp (r, y, sizeof y) == 0);
  /* The next segment numbers above every orphan. */
  ck_assert_int_eq (hf_volume_pwrite (v, x, sizeof x, 4096, HF_VOL_FUA), 0);
  ck_assert_uint_gt (head_of (v), h1 + 41);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* Pacing's drain estimate when the oldest upload lands last: its
 * commit commits the next segment too, and the two are one measurement
 * (pace.c).  The volume passed each its own clock reading, so the
 * second had spent a few microseconds "alone" in the pipeline: an
 * estimate of gigabytes a second from a store that took 0.2 s for two
 * segments (seen in a traced slow-seqwrite run: 1.4 TB/s, and writes
 * ran unpaced into dirty-limit). */
START_TEST (test_pace_commit_burst)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s, *d;
  struct hf_objstore_info oi;
  struct hf_fault_config fc = { .seed = 11 };
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .segment_size = 256 << 10 };
  struct hf_volume_info info;
  struct hf_volume *v;
  uint8_t *x = malloc (512 << 10);
  uint64_t h0, bound;
  char key[64], hold[64];
  double t0;

  ck_assert_ptr_nonnull (x);
  s = fault_volume (dir, &fc, &d);
  v = open_ok (s, &o);
  h0 = head_of (v);
  hf_seg_key (hold, sizeof hold, "", h0 + 1);
  fc.hold_key = hold;
  hf_objstore_fault_set_config (s, &fc);
  /* Two whole segments: h0 + 1's PUT is held, h0 + 2 lands. */
  pattern (x, 512 << 10, 21);
  ck_assert_int_eq (hf_volume_pwrite (v, x, 256 << 10, 0, 0), 0);
  ck_assert_int_eq (hf_volume_pwrite (v, x + (256 << 10), 256 << 10,
                                      256 << 10, 0), 0);
  hf_seg_key (key, sizeof key, "", h0 + 2);
  t0 = now ();
  while ((hf_objstore_head (d, key, &oi) == ENOENT ||
          hf_objstore_fault_held (s) == 0) && now () - t0 < 60)
    usleep (1000);
  ck_assert_int_eq (hf_objstore_head (d, key, &oi), 0);
  ck_assert_uint_eq (hf_objstore_fault_held (s), 1);
  usleep (200000);
  hf_objstore_fault_release (s);
  t0 = now ();
  while (head_of (v) < h0 + 2 && now () - t0 < 60)
    usleep (1000);
  ck_assert_uint_eq (head_of (v), h0 + 2);
  /* 512 KiB in at least 0.2 s: the first measurement, which replaces
   * the initial estimate. */
  hf_volume_get_info (v, &info);
  bound = (512ull << 10) * 5;
  ck_assert_msg (info.pace_rate <= bound, "drain estimate %" PRIu64
                 " bytes/s after 512 KiB in 0.2 s (at most %" PRIu64 ")",
                 info.pace_rate, bound);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (s);
  free (x);
  rm_tmpdir (dir);
}
END_TEST

/* Reads never wait for an upload (issue #20): while a segment's PUT
 * is held in the store, reads of a block in that segment (memory), of
 * a committed block (the store) and of one in the active buffer all
 * complete.  A thread reads, so that a read that waited ends the test
 * instead of hanging it (the minute is only that bound). */
struct upload_read_arg {
  struct hf_volume *v;
  uint8_t buf[3][4096];
  int r;
  atomic_bool done;
};

static void *
upload_read_thread (void *arg)
{
  struct upload_read_arg *a = arg;
  int i;

  for (i = 0; i < 3 && a->r == 0; i++)
    a->r = hf_volume_pread (a->v, a->buf[i], 4096, (uint64_t) i * 4096);
  atomic_store (&a->done, true);
  return NULL;
}

START_TEST (test_reads_during_upload)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s, *d;
  struct hf_fault_config fc = { .seed = 13 };
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX };
  struct hf_volume *v;
  static struct upload_read_arg ra;
  uint8_t x[3][4096];
  uint64_t h0;
  char hold[64];
  pthread_t th;
  double t0;
  bool done;
  int i;

  s = fault_volume (dir, &fc, &d);
  v = open_ok (s, &o);
  for (i = 0; i < 3; i++)
    pattern (x[i], 4096, 40 + i);
  /* Block 0 committed (in the store only: no cache here). */
  ck_assert_int_eq (hf_volume_pwrite (v, x[0], 4096, 0, 0), 0);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  h0 = head_of (v);
  /* Block 1's segment: its PUT is held.  Block 2: the active buffer. */
  hf_seg_key (hold, sizeof hold, "", h0 + 1);
  fc.hold_key = hold;
  hf_objstore_fault_set_config (s, &fc);
  ck_assert_int_eq (hf_volume_pwrite (v, x[1], 4096, 4096, 0), 0);
  hf_vol_lock (v);
  ck_assert_int_eq (hf_vol_seal_locked (v, false, false), 0);
  hf_vol_unlock (v);
  t0 = now ();
  while (hf_objstore_fault_held (s) == 0 && now () - t0 < 60)
    usleep (1000);
  ck_assert_uint_eq (hf_objstore_fault_held (s), 1);
  ck_assert_int_eq (hf_volume_pwrite (v, x[2], 4096, 8192, 0), 0);
  ra.v = v;
  ck_assert_int_eq (pthread_create (&th, NULL, upload_read_thread, &ra), 0);
  t0 = now ();
  while (!atomic_load (&ra.done) && now () - t0 < 60)
    usleep (1000);
  done = atomic_load (&ra.done);
  ck_assert_uint_eq (hf_objstore_fault_held (s), 1);
  hf_objstore_fault_release (s);
  pthread_join (th, NULL);
  ck_assert_msg (done, "a read waited for the upload");
  ck_assert_int_eq (ra.r, 0);
  for (i = 0; i < 3; i++)
    ck_assert (memcmp (ra.buf[i], x[i], 4096) == 0);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* An open lists the newest keys only: 60 segments, a checkpoint every
 * 8, batches of 4 keys.  The head's chain reaches back at most 8
 * or so segments, so the open passes on a few keys of 60 and none
 * older than that checkpoint; at= an old point lists down to it (its
 * chain, back to its own checkpoint), not to the end. */
START_TEST (test_open_lists_newest)
{
  char *dir = make_tmpdir ();
  struct hf_objstore cs = { .ops = &count_ops };
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .checkpoint_segments = 8,
                                 .list_batch = 4 };
  struct hf_volume_info info;
  struct hf_volume *v;
  uint8_t x[4096], r[4096];
  uint64_t head, ckpt, first, seqs[60];
  int i;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &count_inner), 0);
  ck_assert_int_eq (hf_volume_create (&cs, "", 1 << 20, 4096), 0);
  v = open_ok (&cs, &o);
  for (i = 0; i < 60; i++) {
    pattern (x, sizeof x, i);
    ck_assert_int_eq (hf_volume_pwrite (v, x, sizeof x, 4096 * (i % 16),
                                        HF_VOL_FUA), 0);
    seqs[i] = head_of (v);
  }
  first = seqs[0];
  ck_assert_int_eq (hf_volume_close (v), 0);

  o.flush_interval_ms = 0;
  count_seg_keys = count_seg_oldest = 0;
  v = open_ok (&cs, &o);
  hf_volume_get_info (v, &info);
  head = info.head_seq;
  ckpt = info.ckpt_seq;
  ck_assert_uint_ge (head, first + 59);
  ck_assert_uint_gt (ckpt, first);
  ck_assert_uint_le (count_seg_keys, 20);
  ck_assert_uint_ge (count_seg_oldest, ckpt > 4 ? ckpt - 4 : 1);
  for (i = 44; i < 60; i++) {
    pattern (x, sizeof x, i);
    ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 4096 * (i % 16)), 0);
    ck_assert (memcmp (r, x, sizeof x) == 0);
  }
  ck_assert_int_eq (hf_volume_close (v), 0);

  /* at= the point of the 31st write: listed down to its chain's
   * checkpoint (at most 8 below it) and a batch more at most, not to
   * the first segment. */
  o.readonly = true;
  o.at_seq = seqs[30];
  count_seg_keys = count_seg_oldest = 0;
  v = open_ok (&cs, &o);
  ck_assert_uint_eq (head_of (v), seqs[30]);
  ck_assert_uint_ge (count_seg_oldest, seqs[30] - 8 - 4);
  ck_assert_uint_gt (count_seg_oldest, first);
  for (i = 15; i <= 30; i++) {
    pattern (x, sizeof x, i);
    ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 4096 * (i % 16)), 0);
    ck_assert (memcmp (r, x, sizeof x) == 0);
  }
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (count_inner);
  rm_tmpdir (dir);
}
END_TEST

/* Grouped segment keys: 1,030 segments over groups 0, 1 and 2. */
START_TEST (test_grouped_keys)
{
  char *dir = make_tmpdir ();
  struct hf_objstore cs = { .ops = &count_ops };
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .checkpoint_segments = 8 };
  struct hf_objstore_info oi;
  struct hf_objstore_stats st0, st1;
  struct hf_volume_info info;
  struct hf_volume *v;
  uint8_t x[4096], r[4096];
  uint64_t seqs[1030], lists;
  char key[HF_OBJSTORE_KEY_MAX + 1];
  int i;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &count_inner), 0);
  ck_assert_int_eq (hf_volume_create_grouped (&cs, "", 1 << 20, 4096), 0);
  v = open_ok (&cs, &o);
  for (i = 0; i < 1030; i++) {
    pattern (x, sizeof x, i);
    ck_assert_int_eq (hf_volume_pwrite (v, x, sizeof x, 4096 * (i % 16),
                                        HF_VOL_FUA), 0);
    seqs[i] = head_of (v);
  }
  hf_volume_get_info (v, &info);
  ck_assert (info.vd_flags & HF_VD_SEG_GROUPS);
  ck_assert_int_eq (hf_volume_close (v), 0);
  ck_assert_uint_ge (seqs[1029] >> HF_SEG_GROUP_SHIFT, 2);
  hf_seg_key_vd (key, sizeof key, "", HF_VD_SEG_GROUPS, seqs[600]);
  ck_assert_int_eq (hf_objstore_head (count_inner, key, &oi), 0);
  ck_assert_str_eq (key + 21, key + 4 + 17);
  ck_assert (key[20] == '/');
  hf_seg_key (key, sizeof key, "", seqs[600]);
  ck_assert_int_eq (hf_objstore_head (count_inner, key, &oi), ENOENT);

  /* The head's group and the empty one above (and at most the one
   * below, for the chain): never group 0. */
  o.flush_interval_ms = 0;
  count_seg_keys = count_seg_oldest = 0;
  hf_objstore_get_stats (count_inner, &st0);
  v = open_ok (&cs, &o);
  hf_objstore_get_stats (count_inner, &st1);
  lists = st1.requests[HF_OP_LIST] - st0.requests[HF_OP_LIST];
  hf_volume_get_info (v, &info);
  ck_assert_uint_ge (info.head_seq, seqs[1029]);
  ck_assert_uint_le (lists, 4);  /* lease/, and 2 or 3 groups */
  ck_assert_uint_ge (count_seg_oldest, (uint64_t) 1 << HF_SEG_GROUP_SHIFT);
  for (i = 1014; i < 1030; i++) {
    pattern (x, sizeof x, i);
    ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 4096 * (i % 16)), 0);
    ck_assert (memcmp (r, x, sizeof x) == 0);
  }
  /* A write lands in the newest group and the next open finds it. */
  pattern (x, sizeof x, 5000);
  ck_assert_int_eq (hf_volume_pwrite (v, x, sizeof x, 0, HF_VOL_FUA), 0);
  ck_assert_int_eq (hf_volume_close (v), 0);
  v = open_ok (&cs, &o);
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 0), 0);
  ck_assert (memcmp (r, x, sizeof x) == 0);
  ck_assert_int_eq (hf_volume_close (v), 0);

  /* at= a point in group 0: that group only (its chain is there). */
  o.readonly = true;
  o.at_seq = seqs[100];
  count_seg_keys = count_seg_oldest = 0;
  v = open_ok (&cs, &o);
  ck_assert_uint_eq (head_of (v), seqs[100]);
  ck_assert_uint_le (count_seg_keys, 1u << HF_SEG_GROUP_SHIFT);
  for (i = 85; i <= 100; i++) {
    pattern (x, sizeof x, i);
    ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 4096 * (i % 16)), 0);
    ck_assert (memcmp (r, x, sizeof x) == 0);
  }
  ck_assert_int_eq (hf_volume_close (v), 0);

  /* Without a lease nothing says where the head is: seg/ itself is
   * listed, newest first (here a batch of 1,000 keys, more than a
   * group; a store that lists whole reads every group). */
  {
    struct keys { char k[8][HF_OBJSTORE_KEY_MAX + 1]; size_t n; } ks = { 0 };

    ck_assert_int_eq (hf_objstore_list (count_inner, "lease/", NULL,
                                        collect_key, &ks), 0);
    ck_assert_uint_ge (ks.n, 1);
    for (i = 0; i < (int) ks.n; i++)
      ck_assert_int_eq (hf_objstore_delete (count_inner, ks.k[i]), 0);
  }
  o.at_seq = 0;
  count_seg_keys = count_seg_oldest = 0;
  v = open_ok (&cs, &o);
  ck_assert_uint_gt (head_of (v), seqs[1029]);
  ck_assert_uint_gt (count_seg_keys, 1u << HF_SEG_GROUP_SHIFT);
  ck_assert_int_eq (hf_volume_pread (v, r, sizeof r, 0), 0);
  pattern (x, sizeof x, 5000);
  ck_assert (memcmp (r, x, sizeof x) == 0);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (count_inner);
  rm_tmpdir (dir);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("volume-recover");
  TCase *tc = tcase_create ("core");

  hf_log_set_sink (log_capture);
  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_fenced_no_put);
  tcase_add_test (tc, test_fenced_put_cancelled);
  tcase_add_test (tc, test_torn_data);
  tcase_add_test (tc, test_torn_header);
  tcase_add_test (tc, test_torn_retry);
  tcase_add_test (tc, test_damaged_head);
  tcase_add_test (tc, test_deleted_head);
  tcase_add_test (tc, test_lost_newest_deleted);
  tcase_add_test (tc, test_lost_newest_truncated);
  tcase_add_test (tc, test_unrecorded_log_kept);
  tcase_add_test (tc, test_many_orphans);
  tcase_add_test (tc, test_commit_burst_cached);
  tcase_add_test (tc, test_pace_commit_burst);
  tcase_add_test (tc, test_reads_during_upload);
  tcase_add_test (tc, test_open_lists_newest);
  tcase_add_test (tc, test_grouped_keys);
  suite_add_tcase (s, tc);
  return run_suite (s);
}
