/* Unit tests for lib/history (points in time, at= resolution, snapshots,
 * clone registrations), rollback and clones through lib/volume, and the
 * snapshot / clone registration codecs of lib/format.c, on the dir store
 * (and the fault store).  The model tests use tests/unit/history-model.c.
 *
 * HF_TEST_LONG=1 makes the long-history test 10000 segments and prints
 * its timings.
 */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "crc32c.h"
#include "format.h"
#include "history.h"
#include "history-model.h"
#include "log.h"
#include "objstore.h"
#include "segment.h"
#include "test-util.h"
#include "volume.h"

/* ---- Codecs ---- */

START_TEST (test_snapshot_codec)
{
  struct hf_snapshot a = { .seq = 42, .timestamp_ns = 1234567890123ull,
                           .created_ns = 99 }, b;
  uint8_t buf[HF_SN_SIZE];
  size_t bad = 0;
  int i;

  for (i = 0; i < HF_UUID_SIZE; i++)
    a.volume_uuid[i] = (uint8_t) (i * 7);
  strcpy (a.name, "nightly-2026.11_25");
  ck_assert_int_eq (hf_snapshot_encode (&a, buf), 0);
  ck_assert_uint_eq (hf_le32 (buf), HF_SN_MAGIC);
  ck_assert (memcmp (buf, "HFSN", 4) == 0);
  ck_assert_int_eq (hf_snapshot_decode (buf, sizeof buf, &b, &bad), 0);
  ck_assert (memcmp (&a, &b, sizeof a) == 0);
  /* Every reserved byte is zero. */
  for (i = 184; i < 252; i++)
    ck_assert_int_eq (buf[i], 0);
  /* Damage anywhere: EBADMSG with the offset. */
  buf[40] ^= 1;
  ck_assert_int_eq (hf_snapshot_decode (buf, sizeof buf, &b, &bad), EBADMSG);
  ck_assert_uint_eq (bad, 252);
  buf[40] ^= 1;
  buf[4] = 2;
  ck_assert_int_eq (hf_snapshot_decode (buf, sizeof buf, &b, &bad), EBADMSG);
  ck_assert_uint_eq (bad, 4);
  buf[4] = 1;
  ck_assert_int_eq (hf_snapshot_decode (buf, 255, &b, &bad), EBADMSG);
  buf[0] = 'X';
  ck_assert_int_eq (hf_snapshot_decode (buf, sizeof buf, &b, &bad), EBADMSG);
  ck_assert_uint_eq (bad, 0);
  /* A name of the full 128 bytes (no NUL on disk) round-trips. */
  memset (a.name, 'n', HF_SN_NAME_MAX);
  a.name[HF_SN_NAME_MAX] = '\0';
  ck_assert_int_eq (hf_snapshot_encode (&a, buf), 0);
  ck_assert_int_eq (hf_snapshot_decode (buf, sizeof buf, &b, &bad), 0);
  ck_assert_str_eq (b.name, a.name);
  /* Bad names are refused by the encoder. */
  strcpy (a.name, ".hidden");
  ck_assert_int_eq (hf_snapshot_encode (&a, buf), EINVAL);
  strcpy (a.name, "a/b");
  ck_assert_int_eq (hf_snapshot_encode (&a, buf), EINVAL);
  a.name[0] = '\0';
  ck_assert_int_eq (hf_snapshot_encode (&a, buf), EINVAL);
  ck_assert (!hf_snapshot_name_valid ("with space"));
  ck_assert (!hf_snapshot_name_valid ("2026-11-25T10:00:00Z"));
  ck_assert (hf_snapshot_name_valid ("v1.0"));
}
END_TEST

START_TEST (test_clone_reg_codec)
{
  struct hf_clone_reg a = { .base_seq = 7, .created_ns = 5 }, b;
  uint8_t buf[HF_CR_SIZE];
  size_t bad = 0;
  int i;

  memset (a.clone_uuid, 0xab, HF_UUID_SIZE);
  strcpy (a.clone_url, "s3://other-bucket/vm/template-clone");
  ck_assert_int_eq (hf_clone_reg_encode (&a, buf), 0);
  ck_assert (memcmp (buf, "HFCR", 4) == 0);
  ck_assert_uint_eq (hf_le16 (buf + 6), 512);
  ck_assert_int_eq (hf_clone_reg_decode (buf, sizeof buf, &b, &bad), 0);
  ck_assert (memcmp (&a, &b, sizeof a) == 0);
  for (i = 304; i < 508; i++)
    ck_assert_int_eq (buf[i], 0);
  buf[100] ^= 0x10;
  ck_assert_int_eq (hf_clone_reg_decode (buf, sizeof buf, &b, &bad),
                    EBADMSG);
  ck_assert_uint_eq (bad, 508);
  /* URL too long / empty. */
  memset (a.clone_url, 'u', HF_CR_URL_MAX);
  a.clone_url[HF_CR_URL_MAX] = '\0';
  ck_assert_int_eq (hf_clone_reg_encode (&a, buf), EINVAL);
  a.clone_url[0] = '\0';
  ck_assert_int_eq (hf_clone_reg_encode (&a, buf), EINVAL);
  /* A stored URL filling all 256 bytes (no NUL) is one the encoder
   * refuses: the decoder must refuse it too (found by fuzz-format;
   * fuzz/corpus/format/regress-clone-url-256). */
  strcpy (a.clone_url, "file:///x");
  ck_assert_int_eq (hf_clone_reg_encode (&a, buf), 0);
  memset (buf + offsetof (struct hf_disk_clone_reg, cr_clone_url), 'u',
          HF_CR_URL_MAX);
  hf_put_le32 (buf + 508, hf_crc32c (0, buf, 508));
  ck_assert_int_eq (hf_clone_reg_decode (buf, sizeof buf, &b, &bad),
                    EBADMSG);
  ck_assert_uint_eq (bad, offsetof (struct hf_disk_clone_reg, cr_clone_url));
}
END_TEST

/* ---- Time syntax ---- */

START_TEST (test_parse_time)
{
  uint64_t ns;
  char buf[40];
  static const char *bad[] = {
    "", "2026", "2026-11-25", "2026-11-25T10:00:00", "2026-11-25T10:00Z",
    "2026-13-01T00:00:00Z", "2026-02-30T00:00:00Z", "2025-02-29T00:00:00Z",
    "2026-11-25T24:00:00Z", "2026-11-25T10:00:00+01:00",
    "2026-11-25T10:00:00.Z", "2026-11-25T10:00:00Zjunk", "1969-12-31T23:59:59Z",
    "yesterday", "2026-11-25X10:00:00Z", "2026-1-25T10:00:00Z",
  };
  size_t i;

  ck_assert_int_eq (hf_history_parse_time ("2026-11-25T10:00:00Z", &ns), 0);
  ck_assert_uint_eq (ns, 1795600800ull * 1000000000);
  ck_assert_int_eq (hf_history_parse_time ("1970-01-01T00:00:00Z", &ns), 0);
  ck_assert_uint_eq (ns, 0);
  ck_assert_int_eq (hf_history_parse_time ("2026-11-25T10:00:00.5Z", &ns), 0);
  ck_assert_uint_eq (ns, 1795600800ull * 1000000000 + 500000000);
  ck_assert_int_eq (hf_history_parse_time ("2026-11-25T10:00:00.123456789Z",
                                           &ns), 0);
  ck_assert_uint_eq (ns % 1000000000, 123456789);
  /* Digits past nanoseconds are dropped, not rounded. */
  ck_assert_int_eq (hf_history_parse_time
                    ("2026-11-25T10:00:00.0000000019Z", &ns), 0);
  ck_assert_uint_eq (ns % 1000000000, 1);
  ck_assert_int_eq (hf_history_parse_time ("2026-11-25 10:00:00+00:00", &ns),
                    0);
  ck_assert_uint_eq (ns, 1795600800ull * 1000000000);
  ck_assert_int_eq (hf_history_parse_time ("2024-02-29T00:00:00Z", &ns), 0);
  for (i = 0; i < sizeof bad / sizeof bad[0]; i++)
    ck_assert_msg (hf_history_parse_time (bad[i], &ns) == EINVAL,
                   "accepted '%s'", bad[i]);
  hf_history_format_time (1795600800ull * 1000000000 + 42, buf, sizeof buf);
  ck_assert_str_eq (buf, "2026-11-25T10:00:00.000000042Z");
  ck_assert_int_eq (hf_history_parse_time (buf, &ns), 0);
  ck_assert_uint_eq (ns, 1795600800ull * 1000000000 + 42);
}
END_TEST

/* ---- Points, resolution, snapshots on a real volume ---- */

#define NPTS 7

struct fixture {
  char *dir;
  struct hf_objstore *s;
  uint64_t seqs[NPTS];          /* committed points, oldest first */
  uint64_t ts[NPTS];
};

/* Create a volume with NPTS committed points (each writes block i) and
 * a checkpoint every 3 segments. */
static void
fixture_make (struct fixture *f, const char *prefix)
{
  /* A lease renewed only after 20 minutes: tests that remove the newest
   * segment then see the orphan, not a lease's record of that segment. */
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .checkpoint_segments = 3,
                                 .lease_ttl_s = 3600 };
  struct hf_volume *v;
  struct hf_volume_info vi;
  uint8_t b[4096];
  int i;

  f->dir = make_tmpdir ();
  ck_assert_int_eq (hf_objstore_dir_open (f->dir, true, &f->s), 0);
  ck_assert_int_eq (hf_volume_create (f->s, prefix, 1 << 20, 4096), 0);
  ck_assert_int_eq (hf_volume_open (f->s, prefix, &o, &v), 0);
  for (i = 0; i < NPTS; i++) {
    memset (b, 'a' + i, sizeof b);
    ck_assert_int_eq (hf_volume_pwrite (v, b, sizeof b, 4096 * i, 0), 0);
    ck_assert_int_eq (hf_volume_flush (v), 0);
    hf_volume_get_info (v, &vi);
    f->seqs[i] = vi.head_seq;
  }
  /* Leave the close checkpoint out of the points under test: crash. */
  hf_volume_crash (v);
}

static void
fixture_free (struct fixture *f)
{
  hf_objstore_close (f->s);
  rm_tmpdir (f->dir);
}

START_TEST (test_points)
{
  struct fixture f;
  struct hf_history *h;
  const struct hf_point *p;
  size_t n, i;
  struct hf_objstore_stats st0, st1;

  hf_log_set_sink (log_capture);
  fixture_make (&f, "vol/");
  ck_assert_int_eq (hf_history_open (f.s, "vol/", NULL, &h), 0);
  ck_assert_uint_eq (hf_history_head (h), f.seqs[NPTS - 1]);
  hf_objstore_get_stats (f.s, &st0);
  ck_assert_int_eq (hf_history_points (h, &p, &n), 0);
  hf_objstore_get_stats (f.s, &st1);
  ck_assert_uint_eq (n, NPTS);
  /* One LIST, one small GET per segment, nothing else. */
  ck_assert_uint_eq (st1.requests[HF_OP_LIST] - st0.requests[HF_OP_LIST], 1);
  ck_assert_uint_eq (st1.requests[HF_OP_GET] - st0.requests[HF_OP_GET], NPTS);
  ck_assert_uint_le (st1.bytes_in - st0.bytes_in, NPTS * HF_SH_SIZE);
  for (i = 0; i < n; i++) {
    ck_assert_uint_eq (p[i].seq, f.seqs[NPTS - 1 - i]);
    ck_assert_uint_eq (p[i].parent_seq, i + 1 < n ? p[i + 1].seq : 0);
    ck_assert (!p[i].inherited);
    ck_assert (!(p[i].flags & HF_SH_ROLLBACK));
    if (i + 1 < n)
      ck_assert_uint_ge (p[i].timestamp_ns, p[i + 1].timestamp_ns);
    ck_assert_uint_eq (p[i].volume_size, 1 << 20);
  }
  /* checkpoint_segments = 3: some of them hold checkpoints. */
  for (i = 0; i < n && !(p[i].flags & HF_SH_CHECKPOINT); i++)
    ;
  ck_assert_uint_lt (i, n);
  /* Loaded once. */
  ck_assert_int_eq (hf_history_points (h, &p, &n), 0);
  hf_objstore_get_stats (f.s, &st0);
  ck_assert_uint_eq (st0.requests[HF_OP_GET], st1.requests[HF_OP_GET]);
  hf_history_close (h);
  fixture_free (&f);
}
END_TEST

/* Orphans (a segment above the head whose parent is missing, or a
 * segment that is not on the chain) are not points. */
START_TEST (test_points_orphan)
{
  struct fixture f;
  struct hf_history *h;
  const struct hf_point *p;
  struct hf_point pt;
  size_t n;
  char from[256], to[256];
  void *d;
  size_t len;

  hf_log_set_sink (log_capture);
  fixture_make (&f, "");
  /* Move the newest segment far above, renumbered, with a parent that
   * never landed: it becomes an orphan that recovery and history both
   * pass over (an upload that landed out of order before a crash). */
  hf_seg_key (from, sizeof from, "", f.seqs[NPTS - 1]);
  hf_seg_key (to, sizeof to, "", f.seqs[NPTS - 1] + 10);
  ck_assert_int_eq (hf_objstore_get_all (f.s, from, SIZE_MAX, &d, &len), 0);
  {
    struct hf_seg_meta m;

    ck_assert_int_eq (hf_seg_parse (d, len, true, from, NULL, 0,
                                    f.seqs[NPTS - 1], &m), 0);
    m.h.seq = f.seqs[NPTS - 1] + 10;
    m.h.parent_seq = f.seqs[NPTS - 1] + 9;
    hf_seg_write_meta (d, &m.h, m.ext, m.crcs);
    hf_seg_meta_free (&m);
  }
  ck_assert_int_eq (hf_objstore_put (f.s, to, d, len, 0), 0);
  ck_assert_int_eq (hf_objstore_delete (f.s, from), 0);
  free (d);
  /* The forged history committed up to the point before (its writer
   * died before recording the orphan's upload, which never committed). */
  test_lease_set_committed (f.s, "", f.seqs[NPTS - 2]);
  ck_assert_int_eq (hf_history_open (f.s, "", NULL, &h), 0);
  ck_assert_uint_eq (hf_history_head (h), f.seqs[NPTS - 2]);
  ck_assert_int_eq (hf_history_points (h, &p, &n), 0);
  ck_assert_uint_eq (n, NPTS - 1);
  ck_assert_uint_eq (p[0].seq, f.seqs[NPTS - 2]);
  ck_assert_int_eq (hf_history_point (h, f.seqs[NPTS - 1] + 10, &pt), EINVAL);
  ck_assert (strstr (last_error, "not a point in time") != NULL);
  hf_history_close (h);
  /* The next writer numbers above the orphan: the orphan and the gap
   * below it are at or below the head but not on its chain. */
  {
    /* break_lease: the fixture's writer "crashed" in this process. */
    struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                   .break_lease = true };
    struct hf_volume *v;
    uint8_t b[4096] = { 1 };
    uint64_t seq;

    ck_assert_int_eq (hf_volume_open (f.s, "", &o, &v), 0);
    ck_assert_int_eq (hf_volume_pwrite (v, b, sizeof b, 0, 0), 0);
    ck_assert_int_eq (hf_volume_flush (v), 0);
    hf_volume_crash (v);
    ck_assert_int_eq (hf_history_open (f.s, "", NULL, &h), 0);
    ck_assert_uint_eq (hf_history_head (h), f.seqs[NPTS - 1] + 11);
    ck_assert_int_eq (hf_history_points (h, &p, &n), 0);
    ck_assert_uint_eq (n, NPTS);
    ck_assert_uint_eq (p[0].parent_seq, f.seqs[NPTS - 2]);
    ck_assert_int_eq (hf_history_point (h, f.seqs[NPTS - 1] + 10, &pt),
                      EINVAL);
    ck_assert_int_eq (hf_history_point (h, f.seqs[NPTS - 1] + 3, &pt),
                      EINVAL);
    snprintf (to, sizeof to, "%llu",
              (unsigned long long) f.seqs[NPTS - 1] + 10);
    ck_assert_int_eq (hf_history_resolve (h, to, true, &seq), EINVAL);
    hf_history_close (h);
  }
  fixture_free (&f);
}
END_TEST

/* Where GC reclaimed segments the listed history ends, but a point kept
 * by a snapshot beyond the gap is still a point. */
START_TEST (test_points_gap)
{
  struct fixture f;
  struct hf_history *h;
  const struct hf_point *p;
  struct hf_point pt;
  size_t n;
  char key[64];

  hf_log_set_sink (log_capture);
  fixture_make (&f, "g/");
  ck_assert_int_eq (hf_history_open (f.s, "g/", NULL, &h), 0);
  ck_assert_int_eq (hf_snapshot_create (h, "old", f.seqs[1], NULL), 0);
  hf_history_close (h);
  hf_seg_key (key, sizeof key, "g/", f.seqs[3]);
  ck_assert_int_eq (hf_objstore_delete (f.s, key), 0);
  ck_assert_int_eq (hf_history_open (f.s, "g/", NULL, &h), 0);
  ck_assert_int_eq (hf_history_points (h, &p, &n), 0);
  ck_assert_uint_eq (n, NPTS - 4);
  ck_assert_uint_eq (p[n - 1].seq, f.seqs[4]);
  ck_assert_int_eq (hf_history_point (h, f.seqs[1], &pt), 0);
  ck_assert_uint_eq (pt.seq, f.seqs[1]);
  ck_assert_int_eq (hf_history_point (h, f.seqs[0], &pt), EINVAL);
  ck_assert_int_eq (hf_history_point (h, f.seqs[3], &pt), EINVAL);
  hf_history_close (h);
  fixture_free (&f);
}
END_TEST

START_TEST (test_resolve)
{
  struct fixture f;
  struct hf_history *h;
  const struct hf_point *p;
  size_t n, i;
  uint64_t seq;
  char at[64];

  hf_log_set_sink (log_capture);
  fixture_make (&f, "p/");
  ck_assert_int_eq (hf_history_open (f.s, "p/", NULL, &h), 0);
  ck_assert_int_eq (hf_history_points (h, &p, &n), 0);
  ck_assert_uint_eq (n, NPTS);
  for (i = 0; i < n; i++) {
    /* By seq. */
    snprintf (at, sizeof at, "%llu", (unsigned long long) p[i].seq);
    ck_assert_int_eq (hf_history_resolve (h, at, true, &seq), 0);
    ck_assert_uint_eq (seq, p[i].seq);
    /* By its exact timestamp, and by any time before the next point. */
    hf_history_format_time (p[i].timestamp_ns, at, sizeof at);
    ck_assert_int_eq (hf_history_resolve (h, at, false, &seq), 0);
    ck_assert_uint_eq (seq, p[i].seq);
    if (i > 0 && p[i - 1].timestamp_ns > p[i].timestamp_ns) {
      hf_history_format_time (p[i - 1].timestamp_ns - 1, at, sizeof at);
      ck_assert_int_eq (hf_history_resolve (h, at, false, &seq), 0);
      ck_assert_uint_eq (seq, p[i].seq);
    }
  }
  /* Whole seconds: the newest point at or before them. */
  ck_assert_int_eq (hf_history_resolve (h, "2400-01-01T00:00:00Z", false,
                                        &seq), 0);
  ck_assert_uint_eq (seq, p[0].seq);
  /* Before the first point. */
  hf_history_format_time (p[n - 1].timestamp_ns - 1, at, sizeof at);
  ck_assert_int_eq (hf_history_resolve (h, at, false, &seq), ENOENT);
  ck_assert (strstr (last_error, "before the first point") != NULL);
  ck_assert_int_eq (hf_history_resolve (h, "2000-01-01T00:00:00Z", false,
                                        &seq), ENOENT);
  /* Bad times. */
  ck_assert_int_eq (hf_history_resolve (h, "2026-11-25T10:00:00", false,
                                        &seq), EINVAL);
  ck_assert (strstr (last_error, "ISO 8601") != NULL);
  ck_assert_int_eq (hf_history_resolve (h, "2026-11-31T10:00:00Z", false,
                                        &seq), EINVAL);
  ck_assert_int_eq (hf_history_resolve (h, "10:00", false, &seq), EINVAL);
  /* Seqs not on the chain; zero. */
  ck_assert_int_eq (hf_history_resolve (h, "999", true, &seq), EINVAL);
  ck_assert_int_eq (hf_history_resolve (h, "999", false, &seq), 0);
  ck_assert_uint_eq (seq, 999);
  ck_assert_int_eq (hf_history_resolve (h, "0", false, &seq), EINVAL);
  /* Unknown snapshot, bad name. */
  ck_assert_int_eq (hf_history_resolve (h, "nosuch", false, &seq), ENOENT);
  ck_assert (strstr (last_error, "snapshot nosuch does not exist") != NULL);
  ck_assert_int_eq (hf_history_resolve (h, "a b", false, &seq), EINVAL);
  /* A snapshot. */
  ck_assert_int_eq (hf_snapshot_create (h, "mid", p[3].seq, NULL), 0);
  ck_assert_int_eq (hf_history_resolve (h, "mid", false, &seq), 0);
  ck_assert_uint_eq (seq, p[3].seq);
  hf_history_close (h);
  fixture_free (&f);
}
END_TEST

START_TEST (test_snapshots)
{
  struct fixture f;
  struct hf_history *h;
  const struct hf_point *p;
  struct hf_snapshot sn, *list = NULL;
  size_t n, nl = 0;
  char name[200];
  uint8_t junk[HF_SN_SIZE] = { 0 };

  hf_log_set_sink (log_capture);
  fixture_make (&f, "s/");
  ck_assert_int_eq (hf_history_open (f.s, "s/", NULL, &h), 0);
  ck_assert_int_eq (hf_history_points (h, &p, &n), 0);
  /* Empty list. */
  ck_assert_int_eq (hf_snapshot_list (f.s, "s/", &list, &nl), 0);
  ck_assert_uint_eq (nl, 0);
  /* Head by default. */
  ck_assert_int_eq (hf_snapshot_create (h, "b-head", 0, &sn), 0);
  ck_assert_uint_eq (sn.seq, p[0].seq);
  ck_assert_uint_eq (sn.timestamp_ns, p[0].timestamp_ns);
  ck_assert_int_eq (hf_snapshot_create (h, "a-old", p[n - 1].seq, NULL), 0);
  /* Duplicate name: EEXIST, the first one is untouched. */
  ck_assert_int_eq (hf_snapshot_create (h, "a-old", p[0].seq, NULL), EEXIST);
  ck_assert (strstr (last_error, "already exists") != NULL);
  ck_assert_int_eq (hf_snapshot_get (f.s, "s/", "a-old", &sn), 0);
  ck_assert_uint_eq (sn.seq, p[n - 1].seq);
  ck_assert (memcmp (sn.volume_uuid, hf_history_uuid (h), 16) == 0);
  /* Bad names and points. */
  ck_assert_int_eq (hf_snapshot_create (h, ".x", 0, NULL), EINVAL);
  ck_assert_int_eq (hf_snapshot_create (h, "12", 0, NULL), EINVAL);
  ck_assert (strstr (last_error, "not only digits") != NULL);
  memset (name, 'x', 129);
  name[129] = '\0';
  ck_assert_int_eq (hf_snapshot_create (h, name, 0, NULL), EINVAL);
  ck_assert_int_eq (hf_snapshot_create (h, "far", p[0].seq + 5, NULL),
                    EINVAL);
  ck_assert (strstr (last_error, "not a point in time") != NULL);
  /* List: sorted by name. */
  ck_assert_int_eq (hf_snapshot_list (f.s, "s/", &list, &nl), 0);
  ck_assert_uint_eq (nl, 2);
  ck_assert_str_eq (list[0].name, "a-old");
  ck_assert_str_eq (list[1].name, "b-head");
  free (list);
  /* Delete; deleting again is ENOENT with a clear message. */
  ck_assert_int_eq (hf_snapshot_delete (f.s, "s/", "a-old"), 0);
  ck_assert_int_eq (hf_snapshot_get (f.s, "s/", "a-old", &sn), ENOENT);
  ck_assert_int_eq (hf_snapshot_delete (f.s, "s/", "a-old"), ENOENT);
  ck_assert (strstr (last_error, "does not exist") != NULL);
  /* The name is free again. */
  ck_assert_int_eq (hf_snapshot_create (h, "a-old", p[1].seq, NULL), 0);
  /* A damaged snapshot object fails the list (GC must not guess). */
  ck_assert_int_eq (hf_objstore_put (f.s, "s/snap/broken", junk, sizeof junk,
                                     0), 0);
  ck_assert_int_eq (hf_snapshot_list (f.s, "s/", &list, &nl), EBADMSG);
  ck_assert (strstr (last_error, "s/snap/broken: corrupt at byte offset 0")
             != NULL);
  /* A valid object under the wrong name is damage too. */
  ck_assert_int_eq (hf_snapshot_create (h, "right", 0, NULL), 0);
  {
    void *d;
    size_t len;
    ck_assert_int_eq (hf_objstore_get_all (f.s, "s/snap/right",
                                           SIZE_MAX, &d, &len), 0);
    ck_assert_int_eq (hf_objstore_put (f.s, "s/snap/wrong", d, len, 0), 0);
    free (d);
  }
  ck_assert_int_eq (hf_snapshot_get (f.s, "s/", "wrong", &sn), EBADMSG);
  hf_history_close (h);
  fixture_free (&f);
}
END_TEST

START_TEST (test_clone_regs)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_clone_reg a = { .base_seq = 3 }, b = { .base_seq = 9 }, *v;
  size_t n;
  char key[256];

  hf_log_set_sink (log_capture);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_clone_reg_list (s, "p/", &v, &n), 0);
  ck_assert_uint_eq (n, 0);
  memset (a.clone_uuid, 0x11, 16);
  memset (b.clone_uuid, 0x22, 16);
  strcpy (a.clone_url, "file:///tmp/a");
  strcpy (b.clone_url, "s3://b/c");
  ck_assert_int_eq (hf_clone_reg_put (s, "p/", &b), 0);
  ck_assert_int_eq (hf_clone_reg_put (s, "p/", &a), 0);
  ck_assert_int_eq (hf_clone_reg_put (s, "p/", &a), EEXIST);
  hf_clone_reg_key (key, sizeof key, "p/", a.clone_uuid);
  ck_assert_str_eq (key, "p/clones/11111111111111111111111111111111");
  ck_assert_int_eq (hf_clone_reg_list (s, "p/", &v, &n), 0);
  ck_assert_uint_eq (n, 2);
  ck_assert_uint_eq (v[0].base_seq, 3);
  ck_assert_str_eq (v[0].clone_url, "file:///tmp/a");
  ck_assert_uint_eq (v[1].base_seq, 9);
  free (v);
  ck_assert_int_eq (hf_clone_reg_delete (s, "p/", a.clone_uuid), 0);
  ck_assert_int_eq (hf_clone_reg_delete (s, "p/", a.clone_uuid), 0);
  ck_assert_int_eq (hf_clone_reg_list (s, "p/", &v, &n), 0);
  ck_assert_uint_eq (n, 1);
  ck_assert (memcmp (v[0].clone_uuid, b.clone_uuid, 16) == 0);
  free (v);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST


/* ---- Model: every point by seq, time and snapshot ---- */

START_TEST (test_model_points)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume_options o = hm_volume_options (3 + _i);
  struct hf_volume *v;
  struct hm_model m;

  hf_log_set_sink (log_capture);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "m/", 256 * 1024, 4096), 0);
  hm_init (&m, 256 * 1024, 512 * 1024, 100 + _i);
  ck_assert_int_eq (hf_volume_open (s, "m/", &o, &v), 0);
  hm_workload (&m, v, 200, 6);
  hm_close_record (&m, v, s, "m/");
  ck_assert_uint_ge (m.n, 20);
  hm_check_all (&m, s, "m/", HM_BY_SEQ | HM_BY_TIME | HM_BY_SNAPSHOT);
  hm_free (&m);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* hm_grow's hook: wait until the grow's segment has committed in the
 * background, as it may before the flush on a slow machine. */
static void
wait_grow_committed (struct hf_volume *v, uint64_t head_before)
{
  struct hf_volume_info vi;
  double t0 = now ();

  for (;;) {
    hf_volume_get_info (v, &vi);
    if (vi.head_seq > head_before)
      return;
    ck_assert_msg (now () - t0 < 120, "the grow's segment never committed");
    usleep (1000);
  }
}

/* The model records a grow's point even when the grow's segment has
 * committed before the flush that follows it (once seen under valgrind
 * as "listed point N was not recorded"). */
START_TEST (test_model_grow_committed)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume_options o = hm_volume_options (3);
  struct hf_volume *v;
  struct hm_model m;
  uint8_t buf[6000];
  int i;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "g/", 64 * 1024, 4096), 0);
  hm_init (&m, 64 * 1024, 1024 * 1024, 5);
  m.after_grow = wait_grow_committed;
  ck_assert_int_eq (hf_volume_open (s, "g/", &o, &v), 0);
  for (i = 0; i < 3; i++) {
    hm_workload (&m, v, 10, 4);         /* ends with a flush */
    ck_assert_uint_le (m.size + 69632, m.max_size);
    hm_grow (&m, v, m.size + 65536);    /* with nothing buffered */
    memset (buf, 'a' + i, sizeof buf);
    ck_assert_int_eq (hf_volume_pwrite (v, buf, sizeof buf, 4096 * i, 0), 0);
    memcpy (m.img + 4096 * i, buf, sizeof buf);
    hm_grow (&m, v, m.size + 4096);     /* with a write buffered */
  }
  hm_close_record (&m, v, s, "g/");
  hm_check_all (&m, s, "g/", HM_BY_SEQ | HM_BY_TIME);
  hm_free (&m);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* A snapshot stays bit-exact through heavy later overwrites (every
 * block rewritten many times, trims, checkpoints). */
START_TEST (test_snapshot_overwrite)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume_options o = hm_volume_options (2);
  struct hf_volume *v;
  struct hf_history *h;
  struct hm_model m;
  struct hf_snapshot sn;
  const struct hm_point *keep;
  uint8_t *buf = malloc (128 * 1024);
  uint64_t seq;
  int round, i;

  hf_log_set_sink (log_capture);
  ck_assert (buf);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 128 * 1024, 4096), 0);
  hm_init (&m, 128 * 1024, 128 * 1024, 7);
  ck_assert_int_eq (hf_volume_open (s, "", &o, &v), 0);
  hm_workload (&m, v, 60, 10);
  hm_close_record (&m, v, s, "");
  keep = &m.pts[m.n - 1];
  ck_assert_int_eq (hf_history_open (s, "", NULL, &h), 0);
  ck_assert_int_eq (hf_snapshot_create (h, "golden", 0, &sn), 0);
  ck_assert_uint_eq (sn.seq, keep->seq);
  hf_history_close (h);

  ck_assert_int_eq (hf_volume_open (s, "", &o, &v), 0);
  for (round = 0; round < 30; round++) {
    for (i = 0; i < 128 * 1024; i++)
      buf[i] = (uint8_t) (round * 31 + i * 7);
    ck_assert_int_eq (hf_volume_pwrite (v, buf, 128 * 1024, 0, 0), 0);
    memcpy (m.img, buf, 128 * 1024);
    if (round % 3 == 0) {
      ck_assert_int_eq (hf_volume_trim (v, 64 * 1024, 16384, 0), 0);
      memset (m.img + 16384, 0, 64 * 1024);
    }
    hm_flush_record (&m, v);
  }
  hm_close_record (&m, v, s, "");
  keep = hm_find (&m, sn.seq);   /* m.pts moved */

  ck_assert_int_eq (hf_history_open (s, "", NULL, &h), 0);
  ck_assert_int_eq (hf_history_resolve (h, "golden", false, &seq), 0);
  ck_assert_uint_eq (seq, keep->seq);
  hf_history_close (h);
  {
    struct hf_volume_options ro = { .at_seq = seq };
    ck_assert_int_eq (hf_volume_open (s, "", &ro, &v), 0);
    hm_check_volume (v, keep->size, keep->img, "snapshot golden");
    ck_assert_int_eq (hf_volume_close (v), 0);
  }
  hm_check_all (&m, s, "", HM_BY_SEQ);
  free (buf);
  hm_free (&m);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* ---- Rollback ---- */

START_TEST (test_rollback)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume_options o = hm_volume_options (4);
  struct hf_volume *v, *ro;
  struct hf_volume_info vi;
  struct hf_history *h;
  const struct hf_point *p;
  struct hf_point pt;
  struct hm_model m;
  uint64_t target, target2, old_head, newer, new_seq = 0;
  size_t n, i;

  hf_log_set_sink (log_capture);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "r/", 192 * 1024, 4096), 0);
  hm_init (&m, 192 * 1024, 384 * 1024, 3);
  ck_assert_int_eq (hf_volume_open (s, "r/", &o, &v), 0);
  hm_workload (&m, v, 150, 6);
  ck_assert_uint_ge (m.n, 10);
  old_head = m.pts[m.n - 1].seq;
  /* The first rollback goes to a point that is not a checkpoint (its
   * state is a checkpoint plus roll-forward), the second to one that is
   * (its tree is reused as is). */
  ck_assert_int_eq (hf_history_open (s, "r/", NULL, &h), 0);
  ck_assert_int_eq (hf_history_points (h, &p, &n), 0);
  for (i = n / 2; i < n && (p[i].flags & HF_SH_CHECKPOINT); i++)
    ;
  ck_assert_uint_lt (i, n);
  target = p[i].seq;
  newer = p[i - 2].seq;
  for (i = n - 1; i > 0 && !(p[i].flags & HF_SH_CHECKPOINT); i--)
    ;
  ck_assert (p[i].flags & HF_SH_CHECKPOINT);
  ck_assert_uint_lt (p[i].seq, target);
  target2 = p[i].seq;
  hf_history_close (h);

  /* Bad targets: the head, beyond it, zero, a gap; the volume is
   * still usable afterwards. */
  ck_assert_int_eq (hf_volume_rollback (v, old_head, NULL), EINVAL);
  ck_assert_int_eq (hf_volume_rollback (v, old_head + 5, NULL), EINVAL);
  ck_assert_int_eq (hf_volume_rollback (v, 0, NULL), EINVAL);
  ck_assert_int_eq (hf_history_open (s, "r/", NULL, &h), 0);
  ck_assert_int_eq (hf_history_point (h, old_head + 5, &pt), EINVAL);
  ck_assert (strstr (last_error, "not a point in time") != NULL);
  ck_assert_int_eq (hf_history_point (h, target, &pt), 0);
  hf_history_close (h);

  /* Roll back: the head's image is the target's again. */
  ck_assert_int_eq (hf_volume_rollback (v, target, &new_seq), 0);
  ck_assert_uint_eq (new_seq, old_head + 1);
  hm_set_current (&m, target);
  hm_record (&m, v);
  hm_check_volume (v, m.size, m.img, "after rollback");
  ck_assert_int_eq (hf_history_open (s, "r/", NULL, &h), 0);
  ck_assert_int_eq (hf_history_points (h, &p, &n), 0);
  ck_assert_uint_eq (p[0].seq, new_seq);
  ck_assert_uint_eq (p[0].flags, HF_SH_ROLLBACK | HF_SH_CHECKPOINT);
  ck_assert_uint_eq (p[0].parent_seq, old_head);
  ck_assert_uint_eq (p[0].volume_size, hm_find (&m, target)->size);
  hf_history_close (h);

  /* A newer point than the target still reads its own data, beside the
   * writer. */
  {
    struct hf_volume_options ao = { .at_seq = newer };
    const struct hm_point *np = hm_find (&m, newer);
    ck_assert_int_eq (hf_volume_open (s, "r/", &ao, &ro), 0);
    hm_check_volume (ro, np->size, np->img, "newer point after rollback");
    ck_assert_int_eq (hf_volume_close (ro), 0);
  }

  /* Writes continue on the rolled-back state; recovery honours it. */
  hm_workload (&m, v, 60, 6);
  hm_close_record (&m, v, s, "r/");
  ck_assert_int_eq (hf_volume_open (s, "r/", &o, &v), 0);
  hm_check_volume (v, m.size, m.img, "reopened after rollback");
  /* A second rollback, to a point before the first rollback's target. */
  ck_assert_int_eq (hf_volume_rollback (v, target2, NULL), 0);
  hm_set_current (&m, target2);
  hm_record (&m, v);
  hm_close_record (&m, v, s, "r/");
  hm_check_all (&m, s, "r/", HM_BY_SEQ | HM_BY_TIME);

  /* A read-only volume cannot roll back. */
  {
    struct hf_volume_options rdo = { .readonly = true };
    ck_assert_int_eq (hf_volume_open (s, "r/", &rdo, &ro), 0);
    hf_volume_get_info (ro, &vi);
    ck_assert_int_eq (hf_volume_rollback (ro, m.pts[0].seq, NULL), EROFS);
    ck_assert_int_eq (hf_volume_close (ro), 0);
  }
  hm_free (&m);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* ---- Clones ---- */

struct store_dir {
  char *dir;
  char url[300];
  struct hf_objstore *s;
};

static void
store_dir_open (struct store_dir *d)
{
  d->dir = make_tmpdir ();
  snprintf (d->url, sizeof d->url, "file://%s", d->dir);
  ck_assert_int_eq (hf_objstore_dir_open (d->dir, true, &d->s), 0);
}

static void
store_dir_close (struct store_dir *d)
{
  hf_objstore_close (d->s);
  rm_tmpdir (d->dir);
}

static size_t
count_regs (struct hf_objstore *s)
{
  struct hf_clone_reg *r = NULL;
  size_t n = 0;

  ck_assert_int_eq (hf_clone_reg_list (s, "", &r, &n), 0);
  free (r);
  return n;
}

START_TEST (test_clone)
{
  struct store_dir a, b, c;
  struct hf_volume_options o = hm_volume_options (3);
  struct hf_volume *v;
  struct hf_history *h;
  const struct hf_point *p;
  struct hf_clone_reg *regs;
  struct hm_model mp, mc, mcc;
  uint64_t base, got;
  size_t n, nr;

  hf_log_set_sink (log_capture);
  store_dir_open (&a);
  store_dir_open (&b);
  store_dir_open (&c);
  ck_assert_int_eq (hf_volume_create (a.s, "", 128 * 1024, 4096), 0);
  hm_init (&mp, 128 * 1024, 256 * 1024, 11);
  ck_assert_int_eq (hf_volume_open (a.s, "", &o, &v), 0);
  hm_workload (&mp, v, 80, 5);
  hm_close_record (&mp, v, a.s, "");
  base = mp.pts[mp.n / 2].seq;

  ck_assert_int_eq (hf_history_open (a.s, "", NULL, &h), 0);
  /* Not a point; onto the parent itself. */
  ck_assert_int_eq (hf_clone_create (h, a.url, mp.pts[mp.n - 1].seq + 3,
                                     b.s, "", b.url, NULL), EINVAL);
  ck_assert_int_eq (hf_clone_create (h, a.url, base, a.s, "", a.url, NULL),
                    EEXIST);
  ck_assert (strstr (last_error, "already exists") != NULL);
  ck_assert_uint_eq (count_regs (a.s), 0);
  /* The clone. */
  ck_assert_int_eq (hf_clone_create (h, a.url, base, b.s, "", b.url, &got),
                    0);
  ck_assert_uint_eq (got, base);
  /* Onto an existing volume: EEXIST, and no registration left behind. */
  ck_assert_int_eq (hf_clone_create (h, a.url, base, b.s, "", b.url, NULL),
                    EEXIST);
  hf_history_close (h);
  ck_assert_int_eq (hf_clone_reg_list (a.s, "", &regs, &nr), 0);
  ck_assert_uint_eq (nr, 1);
  ck_assert_uint_eq (regs[0].base_seq, base);
  ck_assert_str_eq (regs[0].clone_url, b.url);
  free (regs);

  /* The clone starts as the parent's point. */
  hm_init_from (&mc, &mp, base, 12);
  ck_assert_int_eq (hf_volume_open (b.s, "", &o, &v), 0);
  hm_record (&mc, v);
  ck_assert_uint_eq (mc.pts[0].seq, base);
  hm_check_volume (v, mc.size, mc.img, "fresh clone");
  /* Both diverge. */
  hm_workload (&mc, v, 60, 5);
  ck_assert_uint_gt (mc.pts[1].seq, base);
  hm_close_record (&mc, v, b.s, "");
  ck_assert_int_eq (hf_volume_open (a.s, "", &o, &v), 0);
  hm_workload (&mp, v, 60, 5);
  hm_close_record (&mp, v, a.s, "");
  hm_check_all (&mp, a.s, "", HM_BY_SEQ | HM_BY_TIME | HM_BY_SNAPSHOT);
  hm_check_all (&mc, b.s, "", HM_BY_SEQ | HM_BY_TIME | HM_BY_SNAPSHOT);
  /* The clone's points: its own, then its base, marked inherited. */
  ck_assert_int_eq (hf_history_open (b.s, "", NULL, &h), 0);
  ck_assert_int_eq (hf_history_points (h, &p, &n), 0);
  ck_assert_uint_eq (n, mc.n);
  ck_assert_uint_eq (p[n - 1].seq, base);
  ck_assert (p[n - 1].inherited);
  ck_assert (!p[0].inherited);
  /* A clone of the clone, at its head (default). */
  ck_assert_int_eq (hf_clone_create (h, b.url, 0, c.s, "", c.url, &got), 0);
  ck_assert_uint_eq (got, p[0].seq);
  hf_history_close (h);
  hm_init_from (&mcc, &mc, got, 13);
  ck_assert_int_eq (hf_volume_open (c.s, "", &o, &v), 0);
  hm_record (&mcc, v);
  hm_workload (&mcc, v, 40, 5);
  hm_close_record (&mcc, v, c.s, "");
  hm_check_all (&mcc, c.s, "", HM_BY_SEQ | HM_BY_TIME);
  /* Its writes did not reach the clone or the parent. */
  hm_check_all (&mc, b.s, "", HM_BY_SEQ);
  hm_check_all (&mp, a.s, "", HM_BY_SEQ);
  ck_assert_uint_eq (count_regs (b.s), 1);
  ck_assert_uint_eq (count_regs (a.s), 1);
  /* The clone rolls back to its base, which lives in the parent. */
  ck_assert_int_eq (hf_volume_open (b.s, "", &o, &v), 0);
  ck_assert_int_eq (hf_volume_rollback (v, base, NULL), 0);
  hm_set_current (&mc, base);
  hm_record (&mc, v);
  hm_check_volume (v, mc.size, mc.img, "clone rolled back to its base");
  hm_close_record (&mc, v, b.s, "");
  hm_check_all (&mc, b.s, "", HM_BY_SEQ);
  hm_check_all (&mcc, c.s, "", HM_BY_SEQ);

  /* A clone whose parent is gone fails to open with a clear error. */
  ck_assert_int_eq (hf_objstore_delete (a.s, "volume"), 0);
  {
    struct hf_volume_options rdo = { .readonly = true };
    ck_assert_int_eq (hf_volume_open (b.s, "", &rdo, &v), ENOENT);
    ck_assert (strstr (last_error, "no volume at volume") != NULL);
  }
  hm_free (&mp);
  hm_free (&mc);
  hm_free (&mcc);
  store_dir_close (&a);
  store_dir_close (&b);
  store_dir_close (&c);
}
END_TEST

/* A long history: listing pages through it, and resolving a recent
 * point stops early (a bounded number of requests). */
START_TEST (test_long_history)
{
  char *dir = make_tmpdir ();
  struct hf_objstore *s;
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX };
  struct hf_volume *v;
  struct hf_history *h;
  struct hf_objstore_stats st0, st1;
  const struct hf_point *p;
  struct hf_point pt;
  uint8_t b[4096];
  uint64_t seq;
  size_t n, i;
  char at[64];
  /* HF_TEST_LONG=1: 10000 segments, with timings on stderr. */
  const unsigned N = getenv ("HF_TEST_LONG") ? 10000 : 1100;
  struct timespec t0, t1, t2;

  hf_log_set_sink (log_capture);
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, 4096), 0);
  ck_assert_int_eq (hf_volume_open (s, "", &o, &v), 0);
  for (i = 0; i < N; i++) {
    memset (b, (int) i, sizeof b);
    ck_assert_int_eq (hf_volume_pwrite (v, b, sizeof b, (i % 256) * 4096,
                                        0), 0);
    ck_assert_int_eq (hf_volume_flush (v), 0);
  }
  hf_volume_crash (v);

  /* A recent seq and a recent time: one LIST page, the first (small)
   * batch of GETs. */
  clock_gettime (CLOCK_MONOTONIC, &t0);
  ck_assert_int_eq (hf_history_open (s, "", NULL, &h), 0);
  ck_assert_uint_eq (hf_history_head (h), N);
  hf_objstore_get_stats (s, &st0);
  ck_assert_int_eq (hf_history_point (h, N - 3, &pt), 0);
  ck_assert_uint_eq (pt.seq, N - 3);
  hf_history_format_time (pt.timestamp_ns, at, sizeof at);
  ck_assert_int_eq (hf_history_resolve (h, at, false, &seq), 0);
  ck_assert_uint_eq (seq, N - 3);
  clock_gettime (CLOCK_MONOTONIC, &t1);
  hf_objstore_get_stats (s, &st1);
  ck_assert_uint_eq (st1.requests[HF_OP_LIST] - st0.requests[HF_OP_LIST], 1);
  ck_assert_uint_le (st1.requests[HF_OP_GET] - st0.requests[HF_OP_GET], 16);
  /* All of it: every seq, newest first, one LIST page per 1000. */
  ck_assert_int_eq (hf_history_points (h, &p, &n), 0);
  ck_assert_uint_eq (n, N);
  for (i = 0; i < n; i++)
    ck_assert_uint_eq (p[i].seq, N - i);
  clock_gettime (CLOCK_MONOTONIC, &t2);
  hf_objstore_get_stats (s, &st1);
  ck_assert_uint_eq (st1.requests[HF_OP_LIST] - st0.requests[HF_OP_LIST],
                     (N + 999) / 1000);
  ck_assert_uint_eq (st1.requests[HF_OP_GET] - st0.requests[HF_OP_GET], N);
  if (getenv ("HF_TEST_LONG"))
    fprintf (stderr, "history of %u segments: open + recent seq + recent "
             "time %.3f s; all points %.3f s more\n", N,
             (double) (t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9,
             (double) (t2.tv_sec - t1.tv_sec) + (t2.tv_nsec - t1.tv_nsec) / 1e9);
  /* The oldest point by time; before it, nothing. */
  hf_history_format_time (p[n - 1].timestamp_ns, at, sizeof at);
  ck_assert_int_eq (hf_history_resolve (h, at, false, &seq), 0);
  ck_assert_uint_eq (seq, 1);
  hf_history_close (h);
  hf_objstore_close (s);
  rm_tmpdir (dir);
}
END_TEST

/* Store errors, timeouts and torn replies are retried: the history, the
 * snapshots and at= resolution come out the same. */
START_TEST (test_faults)
{
  struct fixture f;
  struct hf_objstore *d, *fs;
  struct hf_fault_config fc = { .seed = 5, .p_error = 0.15,
                                .p_timeout = 0.05, .p_short_read = 0.05 };
  struct hf_history *h;
  struct hf_snapshot *sn;
  const struct hf_point *p;
  size_t n, nsn, i;
  uint64_t seq;

  hf_log_set_sink (log_capture);
  fixture_make (&f, "");
  ck_assert_int_eq (hf_history_open (f.s, "", NULL, &h), 0);
  ck_assert_int_eq (hf_snapshot_create (h, "s", f.seqs[2], NULL), 0);
  hf_history_close (h);
  ck_assert_int_eq (hf_objstore_dir_open (f.dir, false, &d), 0);
  if (hf_objstore_fault_open (d, &fc, &fs) != 0) {
    hf_objstore_close (d);      /* a build without the fault store */
    fixture_free (&f);
    return;
  }
  for (i = 0; i < 5; i++) {
    ck_assert_int_eq (hf_history_open (fs, "", NULL, &h), 0);
    ck_assert_int_eq (hf_history_points (h, &p, &n), 0);
    ck_assert_uint_eq (n, NPTS);
    ck_assert_uint_eq (p[0].seq, f.seqs[NPTS - 1]);
    ck_assert_uint_eq (p[n - 1].seq, f.seqs[0]);
    ck_assert_int_eq (hf_history_resolve (h, "s", false, &seq), 0);
    ck_assert_uint_eq (seq, f.seqs[2]);
    ck_assert_int_eq (hf_snapshot_list (fs, "", &sn, &nsn), 0);
    ck_assert_uint_eq (nsn, 1);
    free (sn);
    hf_history_close (h);
  }
  ck_assert_uint_gt (hf_objstore_fault_injected (fs), 0);
  hf_objstore_close (fs);
  fixture_free (&f);
}
END_TEST

static Suite *
history_suite (void)
{
  Suite *s = suite_create ("history");
  TCase *tc = tcase_create ("core");

  tcase_set_timeout (tc, 300);
  tcase_add_test (tc, test_snapshot_codec);
  tcase_add_test (tc, test_clone_reg_codec);
  tcase_add_test (tc, test_parse_time);
  tcase_add_test (tc, test_points);
  tcase_add_test (tc, test_points_orphan);
  tcase_add_test (tc, test_points_gap);
  tcase_add_test (tc, test_resolve);
  tcase_add_test (tc, test_snapshots);
  tcase_add_test (tc, test_clone_regs);
  tcase_add_loop_test (tc, test_model_points, 0, 2);
  tcase_add_test (tc, test_model_grow_committed);
  tcase_add_test (tc, test_snapshot_overwrite);
  tcase_add_test (tc, test_rollback);
  tcase_add_test (tc, test_clone);
  tcase_add_test (tc, test_long_history);
  tcase_add_test (tc, test_faults);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return run_suite (history_suite ());
}
