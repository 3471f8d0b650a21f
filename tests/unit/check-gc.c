/* Unit tests for lib/gc (garbage collection, compaction) and lib/fsck,
 * on the dir store.
 *
 *  - model: random writes, trims and flushes with snapshots, recording
 *    the image at every flushed point; GC + compaction with a retention
 *    window that keeps only the newer points; every retained point, every
 *    snapshot and the head read back exactly, fsck is clean;
 *  - deleting a snapshot lets GC reclaim its space;
 *  - a registered clone's base survives GC of the parent;
 *  - space: an overwrite-heavy workload stays within 1.3x of live data
 *    after GC + compaction (the figure is printed);
 *  - SIGKILL of a child doing GC + compaction at random moments, 10+
 *    times: fsck clean, head and snapshot exact each time;
 *  - two GCs at once beside a live writer and a reader of an old point;
 *  - fsck names the object and offset of a flipped byte in a data
 *    block, an index node and a segment header.
 * HF_TEST_LONG=1 runs more rounds.
 */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "format.h"
#include "fsck.h"
#include "history-model.h"
#include "duration.h"
#include "gc.h"
#include "history.h"
#include "log.h"
#include "objstore.h"
#include "segment.h"
#include "test-util.h"
#include "volume.h"

#define BS 4096u
#define NBLK 256u               /* 1 MiB volumes */

static const struct hf_volume_options wopts = {
  .segment_size = 64 << 10,
  .flush_interval_ms = UINT32_MAX,
  .checkpoint_segments = 4,
  .checkpoint_entries = 100000,
  .lease_ttl_s = 30,
};

static struct hf_volume *
open_writer (struct hf_objstore *s, const char *prefix)
{
  struct hf_volume *v = NULL;
  ck_assert_int_eq (hf_volume_open (s, prefix, &wopts, &v), 0);
  return v;
}

/* Fill a block with data derived from (lba, gen); gen 0 = zeros. */
static void
fill (uint8_t *p, uint64_t lba, uint64_t gen)
{
  uint32_t i;
  if (gen == 0) {
    memset (p, 0, BS);
    return;
  }
  for (i = 0; i < BS; i += 8) {
    uint64_t x = lba * 0x9e3779b97f4a7c15ull ^ gen * 0xbf58476d1ce4e5b9ull ^ i;
    memcpy (p + i, &x, 8);
  }
}

/* Random operations on v mirrored in img (NBLK * BS bytes). */
static void
random_ops (struct hf_volume *v, uint8_t *img, unsigned n, uint64_t *gen)
{
  uint8_t buf[8 * BS];
  unsigned k;

  for (k = 0; k < n; k++) {
    uint64_t lba = rnd () % NBLK, cnt = 1 + rnd () % 8, i;
    unsigned op = rnd () % 10;

    if (lba + cnt > NBLK)
      cnt = NBLK - lba;
    if (op < 7) {
      for (i = 0; i < cnt; i++)
        fill (buf + i * BS, lba + i, rnd () % 16 == 0 ? 0 : ++*gen);
      ck_assert_int_eq (hf_volume_pwrite (v, buf, cnt * BS, lba * BS, 0), 0);
      memcpy (img + lba * BS, buf, cnt * BS);
    }
    else if (op < 9) {
      ck_assert_int_eq (hf_volume_trim (v, cnt * BS, lba * BS, 0), 0);
      memset (img + lba * BS, 0, cnt * BS);
    }
    else {
      /* A sub-block write across a block boundary. */
      uint64_t off = lba * BS + 1000, len = BS;
      if (off + len > (uint64_t) NBLK * BS)
        off = (uint64_t) NBLK * BS - len - 7;
      memset (buf, (int) (1 + rnd () % 255), len);
      ck_assert_int_eq (hf_volume_pwrite (v, buf, len, off, 0), 0);
      memcpy (img + off, buf, len);
    }
  }
}

static uint64_t
head_seq (struct hf_volume *v)
{
  struct hf_volume_info vi;
  hf_volume_get_info (v, &vi);
  return vi.head_seq;
}

/* Does the point seq read back as img?  (read-only open at seq) */
static int
check_point (struct hf_objstore *s, const char *prefix, uint64_t seq,
             const uint8_t *img)
{
  struct hf_volume_options ro = { .readonly = true, .at_seq = seq };
  struct hf_volume *v;
  uint8_t *got = malloc ((size_t) NBLK * BS);
  int r;

  ck_assert_ptr_nonnull (got);
  r = hf_volume_open (s, prefix, &ro, &v);
  if (r == 0) {
    r = hf_volume_pread (v, got, (size_t) NBLK * BS, 0);
    hf_volume_close (v);
  }
  if (r == 0 && memcmp (got, img, (size_t) NBLK * BS) != 0)
    r = -1;
  free (got);
  return r;
}

static void
expect_image (struct hf_volume *v, const uint8_t *img)
{
  uint8_t *got = malloc ((size_t) NBLK * BS);
  ck_assert_int_eq (hf_volume_pread (v, got, (size_t) NBLK * BS, 0), 0);
  ck_assert (memcmp (got, img, (size_t) NBLK * BS) == 0);
  free (got);
}

static void
fsck_print (void *opaque, const char *object, uint64_t offset,
            const char *what)
{
  (void) opaque;
  fprintf (stderr, "fsck: %s offset %" PRIu64 ": %s\n", object, offset, what);
}

/* fsck with GC's window of retain_ns (the tests' GCs use 0 unless they
 * say otherwise). */
static void
expect_fsck_clean_window (struct hf_objstore *s, const char *prefix,
                          uint64_t retain_ns)
{
  struct hf_fsck_options fo = { .retain_ns = retain_ns, .fn = fsck_print };
  struct hf_fsck_report fr;
  ck_assert_int_eq (hf_fsck_run (s, prefix, &fo, &fr), 0);
  ck_assert_uint_eq (fr.problems, 0);
  ck_assert_uint_gt (fr.points, 0);
}

static void
expect_fsck_clean (struct hf_objstore *s, const char *prefix)
{
  expect_fsck_clean_window (s, prefix, 0);
}

/* Sum of the sizes of every object under prefix. */
static int
sum_fn (void *opaque, const char *key, uint64_t size)
{
  (void) key;
  *(uint64_t *) opaque += size;
  return 0;
}

static int
count_fn (void *opaque, const char *key, uint64_t size)
{
  (void) key;
  (void) size;
  ++*(uint64_t *) opaque;
  return 0;
}

static uint64_t
store_bytes (struct hf_objstore *s, const char *prefix)
{
  uint64_t n = 0;
  ck_assert_int_eq (hf_objstore_list (s, prefix, NULL, sum_fn, &n), 0);
  return n;
}

static uint64_t
point_ts (struct hf_objstore *s, const char *prefix, uint64_t seq)
{
  struct hf_history *h;
  struct hf_point pt;

  ck_assert_int_eq (hf_history_open (s, prefix, NULL, &h), 0);
  ck_assert_int_eq (hf_history_point (h, seq, &pt), 0);
  hf_history_close (h);
  return pt.timestamp_ns;
}

static void
snapshot (struct hf_objstore *s, const char *prefix, const char *name,
          uint64_t seq)
{
  struct hf_history *h;

  ck_assert_int_eq (hf_history_open (s, prefix, NULL, &h), 0);
  ck_assert_int_eq (hf_snapshot_create (h, name, seq, NULL), 0);
  hf_history_close (h);
}

static uint64_t
wall_ns (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_REALTIME, &ts);
  return (uint64_t) ts.tv_sec * 1000000000 + (uint64_t) ts.tv_nsec;
}

/* ---- The model test ---- */

#define ROUNDS 30
#define KEEP_FROM 20

START_TEST (test_model)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume *v;
  uint8_t *img = calloc (NBLK, BS), *imgs[ROUNDS];
  uint64_t seqs[ROUNDS], gen = 0, before, now;
  struct hf_gc_options o = { .compact = true, .compact_min_gain = 1 };
  struct hf_gc_report rep;
  unsigned i, pass;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "m/", (uint64_t) NBLK * BS, BS), 0);
  v = open_writer (s, "m/");
  for (i = 0; i < ROUNDS; i++) {
    random_ops (v, img, 1 + rnd () % 40, &gen);
    ck_assert_int_eq (hf_volume_flush (v), 0);
    seqs[i] = head_seq (v);
    imgs[i] = malloc ((size_t) NBLK * BS);
    memcpy (imgs[i], img, (size_t) NBLK * BS);
    if (i == 5)
      snapshot (s, "m/", "s5", seqs[i]);
    if (i == 12)
      snapshot (s, "m/", "s12", 0);
    if (i + 1 == KEEP_FROM) {
      /* A clear gap in time before the points that must stay. */
      struct timespec ts = { 0, 20000000 };
      nanosleep (&ts, NULL);
    }
  }

  /* The window reaches back exactly to point KEEP_FROM. */
  for (pass = 0; pass < 2; pass++) {
    now = wall_ns ();
    o.now_ns = now;
    o.retain_ns = now - point_ts (s, "m/", seqs[KEEP_FROM]);
    before = store_bytes (s, "m/");
    ck_assert_int_eq (hf_gc_run (s, "m/", v, &o, &rep), 0);
    if (pass == 0) {
      ck_assert_uint_gt (rep.deleted_segments, 0);
      ck_assert_uint_lt (store_bytes (s, "m/"), before);
    }
    expect_image (v, img);
    for (i = KEEP_FROM; i < ROUNDS; i++)
      ck_assert_int_eq (check_point (s, "m/", seqs[i], imgs[i]), 0);
    ck_assert_int_eq (check_point (s, "m/", seqs[5], imgs[5]), 0);
    ck_assert_int_eq (check_point (s, "m/", seqs[12], imgs[12]), 0);
    expect_fsck_clean_window (s, "m/", o.retain_ns);
  }
  /* The oldest unprotected point is gone. */
  ck_assert_int_ne (check_point (s, "m/", seqs[1], imgs[1]), 0);

  /* Dry run deletes nothing. */
  o.dry_run = true;
  o.retain_ns = 0;
  o.now_ns = 0;
  before = store_bytes (s, "m/");
  ck_assert_int_eq (hf_gc_run (s, "m/", v, &o, &rep), 0);
  ck_assert_uint_eq (store_bytes (s, "m/"), before);
  ck_assert_uint_gt (rep.deleted_segments, 0);

  ck_assert_int_eq (hf_volume_close (v), 0);
  v = open_writer (s, "m/");
  expect_image (v, img);
  ck_assert_int_eq (hf_volume_close (v), 0);
  for (i = 0; i < ROUNDS; i++)
    free (imgs[i]);
  free (img);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* ---- Snapshots and clone bases ---- */

static void
write_all (struct hf_volume *v, uint8_t *img, uint64_t gen)
{
  uint64_t lba;
  for (lba = 0; lba < NBLK; lba++)
    fill (img + lba * BS, lba, gen + lba);
  ck_assert_int_eq (hf_volume_pwrite (v, img, (size_t) NBLK * BS, 0, 0), 0);
  ck_assert_int_eq (hf_volume_flush (v), 0);
}

START_TEST (test_snapshot_delete)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume *v;
  uint8_t *a = malloc ((size_t) NBLK * BS), *c = malloc ((size_t) NBLK * BS);
  struct hf_gc_options o = { .compact = true, .compact_min_gain = 1 };
  struct hf_gc_report rep;
  uint64_t pa, with_snap, without;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", (uint64_t) NBLK * BS, BS), 0);
  v = open_writer (s, "");
  write_all (v, a, 1000);
  pa = head_seq (v);
  snapshot (s, "", "keep", 0);
  write_all (v, c, 2000);
  write_all (v, c, 3000);
  ck_assert_int_eq (hf_gc_run (s, "", v, &o, &rep), 0);
  with_snap = store_bytes (s, "");
  ck_assert_uint_ge (with_snap, 2 * (uint64_t) NBLK * BS);
  ck_assert_int_eq (check_point (s, "", pa, a), 0);
  expect_image (v, c);
  expect_fsck_clean (s, "");

  ck_assert_int_eq (hf_snapshot_delete (s, "", "keep"), 0);
  {
    /* A cancelled run (a server shutting down) deletes nothing. */
    bool stop = true;
    struct hf_gc_options oc = o;
    uint64_t b = store_bytes (s, "");
    oc.cancel = &stop;
    ck_assert_int_eq (hf_gc_run (s, "", v, &oc, &rep), ECANCELED);
    ck_assert_uint_eq (store_bytes (s, ""), b);
  }
  ck_assert_int_eq (hf_gc_run (s, "", v, &o, &rep), 0);
  without = store_bytes (s, "");
  ck_assert_uint_ge (rep.deleted_bytes, (uint64_t) NBLK * BS);
  ck_assert_uint_le (without + (uint64_t) NBLK * BS, with_snap);
  ck_assert_int_ne (check_point (s, "", pa, a), 0);
  expect_image (v, c);
  expect_fsck_clean (s, "");
  ck_assert_int_eq (hf_volume_close (v), 0);
  free (a);
  free (c);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

START_TEST (test_clone_base)
{
  char *dir = make_tmpdir (), pdir[300], cdir[300], purl[320], curl[320];
  struct hf_objstore *ps, *cs;
  struct hf_volume *v, *cv;
  struct hf_history *h;
  uint8_t *a = malloc ((size_t) NBLK * BS), *b = malloc ((size_t) NBLK * BS);
  uint8_t *c = malloc ((size_t) NBLK * BS);
  struct hf_gc_options o = { .compact = true, .compact_min_gain = 1 };
  struct hf_clone_reg *regs;
  struct hf_gc_report rep;
  uint64_t base, lba;
  size_t nregs;

  snprintf (pdir, sizeof pdir, "%s/parent", dir);
  snprintf (cdir, sizeof cdir, "%s/clone", dir);
  snprintf (purl, sizeof purl, "file://%s", pdir);
  snprintf (curl, sizeof curl, "file://%s", cdir);
  ck_assert_int_eq (hf_objstore_dir_open (pdir, true, &ps), 0);
  ck_assert_int_eq (hf_objstore_dir_open (cdir, true, &cs), 0);
  ck_assert_int_eq (hf_volume_create (ps, "", (uint64_t) NBLK * BS, BS), 0);
  v = open_writer (ps, "");
  write_all (v, a, 1);
  base = head_seq (v);
  ck_assert_int_eq (hf_history_open (ps, "", NULL, &h), 0);
  ck_assert_int_eq (hf_clone_create (h, purl, base, cs, "", curl, NULL), 0);
  hf_history_close (h);

  /* The parent moves on and collects: the clone's base stays. */
  write_all (v, b, 7);
  write_all (v, b, 9);
  ck_assert_int_eq (hf_gc_run (ps, "", v, &o, &rep), 0);
  ck_assert_uint_gt (rep.deleted_segments, 0);
  ck_assert_int_eq (check_point (ps, "", base, a), 0);
  expect_fsck_clean (ps, "");

  /* The clone diverges and collects its own garbage; what it shares
   * with the parent is not its to delete. */
  cv = open_writer (cs, "");
  expect_image (cv, a);
  memcpy (c, a, (size_t) NBLK * BS);
  for (lba = 0; lba < NBLK / 2; lba++) {
    fill (c + lba * BS, lba, 5000 + lba);
    ck_assert_int_eq (hf_volume_pwrite (cv, c + lba * BS, BS, lba * BS, 0),
                      0);
  }
  ck_assert_int_eq (hf_volume_flush (cv), 0);
  for (lba = 0; lba < NBLK / 2; lba++) {
    fill (c + lba * BS, lba, 6000 + lba);
    ck_assert_int_eq (hf_volume_pwrite (cv, c + lba * BS, BS, lba * BS, 0),
                      0);
  }
  ck_assert_int_eq (hf_volume_flush (cv), 0);
  ck_assert_int_eq (hf_gc_run (cs, "", cv, &o, &rep), 0);
  expect_image (cv, c);
  ck_assert_int_eq (hf_volume_close (cv), 0);
  expect_fsck_clean (cs, "");
  ck_assert_int_eq (hf_gc_run (ps, "", v, &o, &rep), 0);
  cv = open_writer (cs, "");
  expect_image (cv, c);
  ck_assert_int_eq (hf_volume_close (cv), 0);

  /* Once the clone is unregistered, its base is not kept any more. */
  ck_assert_int_eq (hf_clone_reg_list (ps, "", &regs, &nregs), 0);
  ck_assert_uint_eq (nregs, 1);
  ck_assert_int_eq (hf_clone_reg_delete (ps, "", regs[0].clone_uuid), 0);
  free (regs);
  ck_assert_int_eq (hf_gc_run (ps, "", v, &o, &rep), 0);
  ck_assert_uint_gt (rep.deleted_segments, 0);
  ck_assert_int_ne (check_point (ps, "", base, a), 0);
  expect_image (v, b);
  ck_assert_int_eq (hf_volume_close (v), 0);
  free (a);
  free (b);
  free (c);
  hf_objstore_close (cs);
  hf_objstore_close (ps);
  rm_tmpdir (dir);
}
END_TEST

/* ---- Rollback, then GC: the old point's state is the head's ---- */

START_TEST (test_rollback)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume *v;
  struct hf_gc_options o = { .compact = true, .compact_min_gain = 1 };
  struct hf_gc_report rep;
  uint8_t *img = calloc (NBLK, BS), *old = malloc ((size_t) NBLK * BS);
  uint64_t gen = 0, target, i;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", (uint64_t) NBLK * BS, BS), 0);
  v = open_writer (s, "");
  random_ops (v, img, 200, &gen);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  target = head_seq (v);
  memcpy (old, img, (size_t) NBLK * BS);
  for (i = 0; i < 10; i++) {
    random_ops (v, img, 50, &gen);
    ck_assert_int_eq (hf_volume_flush (v), 0);
  }
  ck_assert_int_eq (hf_volume_rollback (v, target, NULL), 0);
  memcpy (img, old, (size_t) NBLK * BS);
  /* With no window, only the rolled-back state is kept: the points in
   * between go, the target's blocks stay (the rollback's tree). */
  ck_assert_int_eq (hf_gc_run (s, "", v, &o, &rep), 0);
  ck_assert_uint_gt (rep.deleted_segments, 0);
  expect_image (v, img);
  random_ops (v, img, 50, &gen);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  ck_assert_int_eq (hf_gc_run (s, "", v, &o, &rep), 0);
  expect_image (v, img);
  ck_assert_int_eq (hf_volume_close (v), 0);
  expect_fsck_clean (s, "");
  v = open_writer (s, "");
  expect_image (v, img);
  ck_assert_int_eq (hf_volume_close (v), 0);
  free (img);
  free (old);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* ---- Orphans: collected after the grace period ---- */

START_TEST (test_orphans)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume *v;
  struct hf_volume_info vi;
  struct hf_seg_meta m;
  struct hf_gc_options o = { .grace_ns = 3600ull * 1000000000 };
  struct hf_gc_report rep;
  uint8_t *img = calloc (NBLK, BS);
  uint64_t gen = 0, orphan;
  char key[128];
  void *obj;
  size_t len;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", (uint64_t) NBLK * BS, BS), 0);
  v = open_writer (s, "");
  random_ops (v, img, 50, &gen);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  ck_assert_int_eq (hf_volume_close (v), 0);

  /* A segment above the head whose parent link does not match (an
   * upload of a writer that died, landed out of order): recovery
   * rejects it and the next writer numbers above it. */
  v = open_writer (s, "");
  hf_volume_get_info (v, &vi);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_seg_key (key, sizeof key, "", 1);
  ck_assert_int_eq (hf_objstore_get_all (s, key, SIZE_MAX, &obj, &len), 0);
  ck_assert_int_eq (hf_seg_parse (obj, len, true, key, vi.uuid, BS, 1, &m),
                    0);
  ck_assert (!(m.h.flags & HF_SH_CHECKPOINT));
  orphan = vi.head_seq + 1;
  m.h.seq = orphan;
  m.h.parent_seq = vi.head_seq;
  m.h.parent_crc = 0xdeadbeef;
  m.h.timestamp_ns = wall_ns ();
  hf_seg_write_meta (obj, &m.h, m.ext, m.crcs);
  hf_seg_meta_free (&m);
  hf_seg_key (key, sizeof key, "", orphan);
  ck_assert_int_eq (hf_objstore_put (s, key, obj, len, HF_PUT_IF_NONE_MATCH),
                    0);
  free (obj);
  v = open_writer (s, "");
  hf_volume_get_info (v, &vi);
  ck_assert_uint_eq (vi.head_seq, orphan - 1);
  random_ops (v, img, 20, &gen);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  hf_volume_get_info (v, &vi);
  ck_assert_uint_gt (vi.head_seq, orphan);

  /* Younger than the grace period: kept. */
  ck_assert_int_eq (hf_gc_run (s, "", v, &o, &rep), 0);
  ck_assert_uint_ge (rep.kept_young, 1);
  ck_assert_int_eq (hf_objstore_head (s, key, &(struct hf_objstore_info) {
        0 }), 0);
  /* Past it: collected as an orphan. */
  o.grace_ns = 0;
  ck_assert_int_eq (hf_gc_run (s, "", v, &o, &rep), 0);
  ck_assert_uint_ge (rep.orphans, 1);
  ck_assert_int_eq (hf_objstore_head (s, key, &(struct hf_objstore_info) {
        0 }), ENOENT);
  expect_image (v, img);
  ck_assert_int_eq (hf_volume_close (v), 0);
  expect_fsck_clean (s, "");
  free (img);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* ---- A failing store under GC: it stops, never deletes wrongly ---- */

START_TEST (test_store_faults)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s, *inner, *fs;
  struct hf_fault_config fc = { .seed = 99, .p_error = 0.08,
                                .p_timeout = 0.02, .p_short_read = 0.05 };
  struct hf_gc_options o = { .compact = true, .compact_min_gain = 1 };
  struct hf_volume *v;
  uint8_t *img = calloc (NBLK, BS), *snap = malloc ((size_t) NBLK * BS);
  uint64_t gen = 0, sseq;
  unsigned i, ok = 0, failed = 0;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_objstore_dir_open (dir, false, &inner), 0);
  ck_assert_int_eq (hf_objstore_fault_open (inner, &fc, &fs), 0);
  ck_assert_int_eq (hf_volume_create (s, "", (uint64_t) NBLK * BS, BS), 0);
  v = open_writer (s, "");
  random_ops (v, img, 100, &gen);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  sseq = head_seq (v);
  memcpy (snap, img, (size_t) NBLK * BS);
  snapshot (s, "", "s", sseq);
  for (i = 0; i < 20; i++) {
    random_ops (v, img, 30, &gen);
    ck_assert_int_eq (hf_volume_flush (v), 0);
    /* GC reads and deletes through the failing store; the writer's
     * own store works. */
    if (hf_gc_run (fs, "", v, &o, NULL) == 0)
      ok++;
    else
      failed++;
    expect_image (v, img);
  }
  ck_assert_uint_gt (hf_objstore_fault_injected (fs), 0);
  ck_assert_uint_gt (ok, 0);
  ck_assert_int_eq (hf_volume_close (v), 0);
  expect_fsck_clean (s, "");
  ck_assert_int_eq (check_point (s, "", sseq, snap), 0);
  v = open_writer (s, "");
  expect_image (v, img);
  ck_assert_int_eq (hf_volume_close (v), 0);
  fprintf (stderr, "check-gc faults: %u runs completed, %u stopped by "
           "store errors\n", ok, failed);
  free (img);
  free (snap);
  hf_objstore_close (fs);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* ---- The history helper's model: by seq, time and snapshot ---- */

START_TEST (test_history_model)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume_options vo = hm_volume_options (3);
  struct hf_volume *v;
  struct hf_volume_info vi;
  struct hm_model m;
  struct hf_gc_options o = { .compact = true, .compact_min_gain = 1 };
  struct hf_gc_report rep;
  size_t k, i;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "h/", 256 * 1024, 4096), 0);
  hm_init (&m, 256 * 1024, 512 * 1024, 4242);
  ck_assert_int_eq (hf_volume_open (s, "h/", &vo, &v), 0);
  hm_workload (&m, v, 200, 6);
  ck_assert_int_eq (hf_volume_checkpoint (v), 0);
  hm_record (&m, v);
  ck_assert_uint_ge (m.n, 20);
  hm_check_all (&m, s, "h/", HM_BY_SEQ | HM_BY_TIME);

  /* Keep the newer half: the window starts at point k, so k - 1 (the
   * state at the window's start) is kept too. */
  k = m.n / 2;
  o.now_ns = wall_ns ();
  o.retain_ns = o.now_ns - m.pts[k].timestamp_ns;
  ck_assert_int_eq (hf_gc_run (s, "h/", v, &o, &rep), 0);
  ck_assert_uint_gt (rep.deleted_segments, 0);
  hf_volume_get_info (v, &vi);
  if (vi.head_seq != m.pts[m.n - 1].seq)
    hm_record (&m, v);          /* compaction's checkpoint */
  for (i = 0; i < k - 1; i++)
    free (m.pts[i].img);
  memmove (m.pts, m.pts + (k - 1), (m.n - (k - 1)) * sizeof *m.pts);
  m.n -= k - 1;
  hm_check_all (&m, s, "h/", HM_BY_SEQ | HM_BY_TIME | HM_BY_SNAPSHOT);
  expect_fsck_clean_window (s, "h/", o.retain_ns);

  /* Now every kept point has a snapshot: GC with no window at all
   * keeps them all. */
  o.now_ns = 0;
  o.retain_ns = 0;
  ck_assert_int_eq (hf_gc_run (s, "h/", v, &o, &rep), 0);
  hf_volume_get_info (v, &vi);
  if (vi.head_seq != m.pts[m.n - 1].seq)
    hm_record (&m, v);
  hm_check_all (&m, s, "h/", HM_BY_SEQ | HM_BY_SNAPSHOT);
  expect_fsck_clean (s, "h/");
  hm_close_record (&m, v, s, "h/");
  hm_free (&m);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* ---- Space ---- */

START_TEST (test_space)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume *v;
  struct hf_volume_options wo = wopts;
  struct hf_gc_options o = { .compact = true, .compact_min_gain = 1 };
  struct hf_gc_report rep;
  struct hf_volume_info vi;
  const uint64_t nblk = 4096;   /* 16 MiB */
  uint8_t blk[BS];
  uint64_t i, lba, gen = 1, total, live, before;
  unsigned rounds = getenv ("HF_TEST_LONG") ? 8 : 4, k;
  double ratio;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", nblk * BS, BS), 0);
  wo.segment_size = 1 << 20;
  wo.checkpoint_segments = 16;
  ck_assert_int_eq (hf_volume_open (s, "", &wo, &v), 0);
  for (lba = 0; lba < nblk; lba++) {
    fill (blk, lba, gen++);
    ck_assert_int_eq (hf_volume_pwrite (v, blk, BS, lba * BS, 0), 0);
  }
  ck_assert_int_eq (hf_volume_flush (v), 0);
  /* Overwrite-heavy: random 4 KiB writes, flushed every 64. */
  for (k = 0; k < rounds; k++) {
    for (i = 0; i < nblk; i++) {
      lba = rnd () % nblk;
      fill (blk, lba, gen++);
      ck_assert_int_eq (hf_volume_pwrite (v, blk, BS, lba * BS, 0), 0);
      if (i % 64 == 63)
        ck_assert_int_eq (hf_volume_flush (v), 0);
    }
    ck_assert_int_eq (hf_volume_flush (v), 0);
  }
  before = store_bytes (s, "");
  ck_assert_int_eq (hf_gc_run (s, "", v, &o, &rep), 0);
  ck_assert_int_eq (hf_gc_run (s, "", v, &o, &rep), 0);
  hf_volume_get_info (v, &vi);
  total = store_bytes (s, "");
  live = vi.mapped_blocks * BS;
  ratio = (double) total / (double) live;
  fprintf (stderr, "check-gc space: live %" PRIu64 " bytes, store before "
           "GC %" PRIu64 " (%.2fx), after GC + compaction %" PRIu64
           " (%.3fx); %" PRIu64 " blocks relocated\n", live, before,
           (double) before / (double) live, total, ratio,
           rep.relocated_blocks);
  ck_assert (ratio <= 1.3);
  expect_fsck_clean (s, "");
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* ---- Crashes during GC and compaction ---- */

static void
gc_forever (const char *dir)
{
  struct hf_objstore *s;
  struct hf_volume *v;
  struct hf_gc_options o = { .compact = true, .compact_min_gain = 1,
                             .compact_threshold = 0.95 };

  if (hf_objstore_dir_open (dir, false, &s) ||
      hf_volume_open (s, "", &wopts, &v))
    _exit (2);
  for (;;)
    if (hf_gc_run (s, "", v, &o, NULL))
      _exit (3);
}

START_TEST (test_kill)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume *v;
  uint8_t *img = calloc (NBLK, BS), *snap = malloc ((size_t) NBLK * BS);
  uint64_t gen = 0, sseq;
  unsigned iters = getenv ("HF_TEST_LONG") ? 40 : 12, it, killed = 0;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", (uint64_t) NBLK * BS, BS), 0);
  v = open_writer (s, "");
  random_ops (v, img, 200, &gen);
  ck_assert_int_eq (hf_volume_flush (v), 0);
  sseq = head_seq (v);
  memcpy (snap, img, (size_t) NBLK * BS);
  ck_assert_int_eq (hf_volume_close (v), 0);
  snapshot (s, "", "base", sseq);

  for (it = 0; it < iters; it++) {
    pid_t pid;
    int st;
    struct timespec ts = { 0, (long) (5 + rnd () % 300) * 1000000 };

    /* New garbage for the GC to find. */
    v = open_writer (s, "");
    random_ops (v, img, 100, &gen);
    ck_assert_int_eq (hf_volume_close (v), 0);

    pid = fork ();
    ck_assert_int_ge (pid, 0);
    if (pid == 0)
      gc_forever (dir);
    nanosleep (&ts, NULL);
    if (kill (pid, SIGKILL) == 0)
      killed++;
    ck_assert_int_eq (waitpid (pid, &st, 0), pid);
    ck_assert_msg (WIFSIGNALED (st), "GC child exited with status %d",
                   WEXITSTATUS (st));

    expect_fsck_clean (s, "");
    ck_assert_int_eq (check_point (s, "", sseq, snap), 0);
    /* The dead child's lease is claimed (dead process on this host). */
    v = open_writer (s, "");
    expect_image (v, img);
    ck_assert_int_eq (hf_volume_close (v), 0);
  }
  ck_assert_uint_ge (killed, 10);

  /* Every open left a lease object; GC keeps the newest two. */
  {
    struct hf_gc_options o = { 0 };
    struct hf_gc_report rep;
    uint64_t n = 0;

    /* (The children's GCs collected older ones already.) */
    ck_assert_int_eq (hf_objstore_list (s, "lease/", NULL, count_fn, &n), 0);
    ck_assert_uint_ge (n, 3);
    ck_assert_int_eq (hf_gc_run (s, "", NULL, &o, &rep), 0);
    ck_assert_uint_eq (rep.leases_deleted, n - 2);
    n = 0;
    ck_assert_int_eq (hf_objstore_list (s, "lease/", NULL, count_fn, &n), 0);
    ck_assert_uint_eq (n, 2);
    v = open_writer (s, "");
    expect_image (v, img);
    ck_assert_int_eq (hf_volume_close (v), 0);
  }
  free (img);
  free (snap);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* ---- GC beside a writer, a reader of an old point, and another GC ---- */

struct conc {
  struct hf_objstore *s;
  struct hf_volume *v;
  bool stop;                    /* atomic: set by the main thread */
  uint64_t sseq;
  const uint8_t *snap;
  int err;                      /* atomic: the first error of a thread */
  unsigned reads;               /* atomic: the reader's whole reads */
};

static bool
conc_going (struct conc *c)
{
  return !__atomic_load_n (&c->stop, __ATOMIC_ACQUIRE)
    && __atomic_load_n (&c->err, __ATOMIC_ACQUIRE) == 0;
}

static void
conc_fail (struct conc *c, int r)
{
  int zero = 0;
  __atomic_compare_exchange_n (&c->err, &zero, r, false, __ATOMIC_ACQ_REL,
                               __ATOMIC_ACQUIRE);
}

struct gc_arg {
  struct conc *c;
  bool compact;
};

static void *
gc_thread (void *arg)
{
  struct gc_arg *a = arg;
  struct conc *c = a->c;
  struct hf_gc_options o = { .compact = true, .compact_min_gain = 1,
                             .compact_threshold = 0.9 };
  /* One GC compacts through the writer, the other only deletes. */
  struct hf_volume *w = a->compact ? c->v : NULL;

  while (conc_going (c)) {
    int r = hf_gc_run (c->s, "", w, &o, NULL);
    if (r)
      conc_fail (c, r);
  }
  return NULL;
}

static void *
reader_thread (void *arg)
{
  struct conc *c = arg;
  struct hf_volume_options ro = { .readonly = true, .at_seq = c->sseq };
  struct hf_volume *v;
  uint8_t *buf = malloc ((size_t) NBLK * BS);
  int r = hf_volume_open (c->s, "", &ro, &v);

  while (r == 0 && conc_going (c)) {
    r = hf_volume_pread (v, buf, (size_t) NBLK * BS, 0);
    if (r == 0 && memcmp (buf, c->snap, (size_t) NBLK * BS) != 0)
      r = EILSEQ;
    __atomic_add_fetch (&c->reads, 1, __ATOMIC_RELEASE);
  }
  if (r)
    conc_fail (c, r);
  else
    hf_volume_close (v);
  free (buf);
  return NULL;
}

START_TEST (test_concurrent)
{
  char *dir = make_tmpdir ();
  struct conc c = { 0 };
  uint8_t *img = calloc (NBLK, BS), *snap = malloc ((size_t) NBLK * BS);
  uint64_t gen = 0;
  double t0, secs = getenv ("HF_TEST_LONG") ? 20 : 3;
  pthread_t g1, g2, rd;
  struct gc_arg a1 = { &c, true }, a2 = { &c, false };
  unsigned n = 0;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &c.s), 0);
  ck_assert_int_eq (hf_volume_create (c.s, "", (uint64_t) NBLK * BS, BS), 0);
  c.v = open_writer (c.s, "");
  random_ops (c.v, img, 300, &gen);
  ck_assert_int_eq (hf_volume_flush (c.v), 0);
  c.sseq = head_seq (c.v);
  memcpy (snap, img, (size_t) NBLK * BS);
  c.snap = snap;
  snapshot (c.s, "", "old", c.sseq);

  ck_assert_int_eq (pthread_create (&g1, NULL, gc_thread, &a1), 0);
  ck_assert_int_eq (pthread_create (&g2, NULL, gc_thread, &a2), 0);
  ck_assert_int_eq (pthread_create (&rd, NULL, reader_thread, &c), 0);
  /* The writer goes on for secs, and until the reader has read the old
   * point whole at least once: under valgrind on a loaded machine its
   * first read ended 1.5 s into the 3, and a reader started later than
   * the writer's time had checked nothing (c.reads 0, the test failed).
   * Bounded, well inside the case's timeout. */
  t0 = now ();
  while (conc_going (&c) && now () - t0 < 120
         && (now () - t0 < secs
             || __atomic_load_n (&c.reads, __ATOMIC_ACQUIRE) == 0)) {
    random_ops (c.v, img, 20, &gen);
    if (++n % 4 == 0)
      ck_assert_int_eq (hf_volume_flush (c.v), 0);
  }
  __atomic_store_n (&c.stop, true, __ATOMIC_RELEASE);
  pthread_join (g1, NULL);
  pthread_join (g2, NULL);
  pthread_join (rd, NULL);
  ck_assert_int_eq (c.err, 0);
  ck_assert_uint_gt (c.reads, 0);
  expect_image (c.v, img);
  ck_assert_int_eq (hf_volume_close (c.v), 0);
  expect_fsck_clean (c.s, "");
  ck_assert_int_eq (check_point (c.s, "", c.sseq, snap), 0);
  c.v = open_writer (c.s, "");
  expect_image (c.v, img);
  ck_assert_int_eq (hf_volume_close (c.v), 0);
  free (img);
  free (snap);
  hf_objstore_close (c.s);
  rm_tmpdir (dir);
}
END_TEST

/* ---- fsck finds damage ---- */

struct found {
  char object[256];
  uint64_t offset;
  unsigned n;
};

static void
fsck_record (void *opaque, const char *object, uint64_t offset,
             const char *what)
{
  struct found *f = opaque;
  (void) what;
  if (f->n++ == 0) {
    snprintf (f->object, sizeof f->object, "%s", object);
    f->offset = offset;
  }
}

/* Flip one byte of file dir/key at off. */
static void
flip (const char *dir, const char *key, uint64_t off)
{
  char path[512];
  FILE *fp;
  int c;

  /* The dir store keeps "seg/K" as seg%/K. */
  ck_assert (strncmp (key, "seg/", 4) == 0);
  snprintf (path, sizeof path, "%s/seg%%/%s", dir, key + 4);
  fp = fopen (path, "r+b");
  ck_assert_ptr_nonnull (fp);
  ck_assert_int_eq (fseek (fp, (long) off, SEEK_SET), 0);
  c = fgetc (fp);
  ck_assert_int_eq (fseek (fp, (long) off, SEEK_SET), 0);
  fputc (c ^ 0x40, fp);
  ck_assert_int_eq (fclose (fp), 0);
}

START_TEST (test_fsck_damage)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume *v;
  uint8_t *img = calloc (NBLK, BS);
  struct hf_seg_meta *m;
  struct hf_volume_info vi;
  struct hf_fsck_report fr;
  struct found f;
  struct hf_fsck_options fo = { .fn = fsck_record, .opaque = &f };
  char key[128];
  uint8_t uuid[HF_UUID_SIZE];
  uint64_t off;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", (uint64_t) NBLK * BS, BS), 0);
  v = open_writer (s, "");
  write_all (v, img, 5);
  ck_assert_int_eq (hf_volume_checkpoint (v), 0);
  hf_volume_get_info (v, &vi);
  memcpy (uuid, vi.uuid, HF_UUID_SIZE);
  ck_assert_int_eq (hf_volume_close (v), 0);
  expect_fsck_clean (s, "");

  /* The checkpoint segment has nodes; the first segment has data. */
  ck_assert_int_eq (hf_seg_read_meta (s, "", vi.ckpt_seq, uuid, BS,
                                      HF_SEG_SIZE_UNKNOWN, &m), 0);
  ck_assert_uint_gt (m->h.n_nodes, 0);
  hf_seg_key (key, sizeof key, "", vi.ckpt_seq);
  off = m->h.node_off + 100;
  flip (dir, key, off);
  memset (&f, 0, sizeof f);
  ck_assert_int_eq (hf_fsck_run (s, "", &fo, &fr), 0);
  ck_assert_uint_gt (fr.problems, 0);
  ck_assert_str_eq (f.object, key);
  ck_assert_uint_eq (f.offset, m->h.node_off);   /* the node's start */
  flip (dir, key, off);
  hf_seg_meta_destroy (m);

  ck_assert_int_eq (hf_seg_read_meta (s, "", 1, uuid, BS, HF_SEG_SIZE_UNKNOWN,
                                      &m), 0);
  ck_assert_uint_gt (m->h.n_data, 3);
  hf_seg_key (key, sizeof key, "", 1);
  off = m->h.data_off + 3 * BS + 17;
  flip (dir, key, off);
  memset (&f, 0, sizeof f);
  ck_assert_int_eq (hf_fsck_run (s, "", &fo, &fr), 0);
  ck_assert_uint_eq (fr.problems, 1);
  ck_assert_str_eq (f.object, key);
  ck_assert_uint_eq (f.offset, m->h.data_off + 3 * BS);
  flip (dir, key, off);
  hf_seg_meta_destroy (m);

  /* A segment header: the header CRC at 252 names the damage. */
  flip (dir, key, 40);
  memset (&f, 0, sizeof f);
  ck_assert_int_eq (hf_fsck_run (s, "", &fo, &fr), 0);
  ck_assert_uint_gt (fr.problems, 0);
  ck_assert_str_eq (f.object, key);
  ck_assert_uint_eq (f.offset, offsetof (struct hf_disk_seg_hdr, sh_hdr_crc));
  flip (dir, key, 40);
  expect_fsck_clean (s, "");
  free (img);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* A snapshot object of another volume under this volume's snap/ (a
 * copy from another volume, or a swapped object) names a seq that may
 * exist here too: fsck must report it, as at=NAME refuses it (found by
 * test-corruption-matrix.sh, snapshot:swap). */
START_TEST (test_fsck_foreign_snapshot)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume *v;
  uint8_t *img = calloc (NBLK, BS);
  struct hf_volume_info vi;
  struct hf_fsck_report fr;
  struct found f;
  struct hf_fsck_options fo = { .fn = fsck_record, .opaque = &f };
  struct hf_snapshot sn = { 0 };
  uint8_t obj[HF_SN_SIZE];

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", (uint64_t) NBLK * BS, BS), 0);
  v = open_writer (s, "");
  write_all (v, img, 3);
  hf_volume_get_info (v, &vi);
  ck_assert_int_eq (hf_volume_close (v), 0);
  expect_fsck_clean (s, "");

  sn.seq = vi.head_seq;
  memcpy (sn.volume_uuid, vi.uuid, HF_UUID_SIZE);
  sn.volume_uuid[0] ^= 1;                /* another volume's */
  strcpy (sn.name, "foreign");
  ck_assert_int_eq (hf_snapshot_encode (&sn, obj), 0);
  ck_assert_int_eq (hf_objstore_put (s, "snap/foreign", obj, sizeof obj, 0),
                    0);
  memset (&f, 0, sizeof f);
  ck_assert_int_eq (hf_fsck_run (s, "", &fo, &fr), 0);
  ck_assert_uint_eq (fr.problems, 1);
  ck_assert_str_eq (f.object, "snap/foreign");
  ck_assert_uint_eq (f.offset, offsetof (struct hf_disk_snapshot,
                                         sn_volume_uuid));
  free (img);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

START_TEST (test_duration)
{
  uint64_t ns;
  ck_assert_int_eq (hf_parse_duration ("24h", &ns), 0);
  ck_assert_uint_eq (ns, 86400ull * 1000000000);
  ck_assert_int_eq (hf_parse_duration ("90", &ns), 0);
  ck_assert_uint_eq (ns, 90ull * 1000000000);
  ck_assert_int_eq (hf_parse_duration ("15m", &ns), 0);
  ck_assert_uint_eq (ns, 900ull * 1000000000);
  ck_assert_int_eq (hf_parse_duration ("7d", &ns), 0);
  ck_assert_uint_eq (ns, 7ull * 86400 * 1000000000);
  ck_assert_int_eq (hf_parse_duration ("500ms", &ns), 0);
  ck_assert_uint_eq (ns, 500ull * 1000000);
  ck_assert_int_eq (hf_parse_duration ("0s", &ns), 0);
  ck_assert_uint_eq (ns, 0);
  ck_assert_int_eq (hf_parse_duration ("1w", &ns), EINVAL);
  ck_assert_int_eq (hf_parse_duration ("-1h", &ns), EINVAL);
  ck_assert_int_eq (hf_parse_duration ("-1", &ns), EINVAL);
  ck_assert_int_eq (hf_parse_duration ("+1", &ns), EINVAL);
  ck_assert_int_eq (hf_parse_duration (" 1", &ns), EINVAL);
  ck_assert_int_eq (hf_parse_duration ("", &ns), EINVAL);
  ck_assert_int_eq (hf_parse_duration ("h", &ns), EINVAL);
  ck_assert_int_eq (hf_parse_duration ("1hh", &ns), EINVAL);
  /* Never wrapped: 213504d is just past 2^64 ns (it wrapped to 25
   * minutes in the plugin's own parser), 106752d past INT64_MAX. */
  ck_assert_int_eq (hf_parse_duration ("213504d", &ns), ERANGE);
  ck_assert_int_eq (hf_parse_duration ("106752d", &ns), ERANGE);
  ck_assert_int_eq (hf_parse_duration ("106751d", &ns), 0);
  ck_assert_uint_eq (ns, 106751ull * 86400 * 1000000000);
  ck_assert_int_eq (hf_parse_duration ("99999999999999d", &ns), ERANGE);
  ck_assert_int_eq (hf_parse_duration ("99999999999999999999", &ns),
                    ERANGE);
  ck_assert_int_eq (hf_parse_duration ("9223372036854775807ms", &ns),
                    ERANGE);
}
END_TEST

static Suite *
gc_suite (void)
{
  Suite *su = suite_create ("gc");
  TCase *tc = tcase_create ("gc");

  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_duration);
  tcase_add_test (tc, test_model);
  tcase_add_test (tc, test_snapshot_delete);
  tcase_add_test (tc, test_clone_base);
  tcase_add_test (tc, test_history_model);
  tcase_add_test (tc, test_store_faults);
  tcase_add_test (tc, test_orphans);
  tcase_add_test (tc, test_rollback);
  tcase_add_test (tc, test_space);
  tcase_add_test (tc, test_fsck_damage);
  tcase_add_test (tc, test_fsck_foreign_snapshot);
  tcase_add_test (tc, test_concurrent);
  tcase_add_test (tc, test_kill);
  suite_add_tcase (su, tc);
  return su;
}

int
main (void)
{
  hf_log_set_sink (log_verbose);
  return run_suite (gc_suite ());
}
