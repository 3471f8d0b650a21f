/* Unit tests for the volume's lock rules (lib/volume-int.h):
 *
 *   - a *_locked function called without v->lock stops the program
 *     (the assertion that keeps the suffix's promise);
 *   - a checkpoint merge over a cold node cache does not hold up reads:
 *     its node reads from the store happen under the shared tree lock,
 *     so a read that needs the tree completes while the merge is still
 *     fetching (a store whose GETs are slow makes the merge long).
 */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "objstore.h"
#include "test-util.h"
#include "volume-int.h"
#include "volume.h"

#define BS 512

/* ---- A store whose GETs take slow_us each while slow is set ---- */

static struct hf_objstore *slow_inner;
static atomic_bool slow;
static atomic_uint slow_gets;           /* GETs served while slow */
static unsigned slow_us = 20000;

static int
slow_get (struct hf_objstore *s, const char *key, uint64_t off, size_t len,
          void *buf, size_t *got)
{
  if (atomic_load (&slow)) {
    usleep (slow_us);
    atomic_fetch_add (&slow_gets, 1);
  }
  return hf_objstore_get (slow_inner, key, off, len, buf, got);
}

static int
slow_get_all (struct hf_objstore *s, const char *key, size_t max,
              void **data, size_t *len)
{
  return hf_objstore_get_all (slow_inner, key, max, data, len);
}

static int
slow_head (struct hf_objstore *s, const char *key,
           struct hf_objstore_info *info)
{
  return hf_objstore_head (slow_inner, key, info);
}

static int
slow_put (struct hf_objstore *s, const char *key, const void *data,
          size_t len, unsigned flags)
{
  return hf_objstore_put (slow_inner, key, data, len, flags);
}

static int
slow_del (struct hf_objstore *s, const char *key)
{
  return hf_objstore_delete (slow_inner, key);
}

static int
slow_delete_many (struct hf_objstore *s, const char *const *keys, size_t n)
{
  return hf_objstore_delete_many (slow_inner, keys, n);
}

static int
slow_list (struct hf_objstore *s, const char *prefix,
           const char *start_after, hf_objstore_list_fn fn, void *opaque)
{
  return hf_objstore_list (slow_inner, prefix, start_after, fn, opaque);
}

static const char *
slow_describe (struct hf_objstore *s)
{
  return "slow";
}

static void
slow_close (struct hf_objstore *s)
{
}

static const struct hf_objstore_ops slow_ops = {
  .name = "slow", .get = slow_get, .get_all = slow_get_all,
  .head = slow_head, .put = slow_put, .del = slow_del,
  .delete_many = slow_delete_many, .list = slow_list,
  .describe = slow_describe, .close = slow_close,
};

static struct hf_objstore slow_store = { .ops = &slow_ops };

static void
fill (uint8_t *p, uint64_t lba, unsigned gen)
{
  size_t i;

  for (i = 0; i < BS; i++)
    p[i] = (uint8_t) (lba * 13 + gen * 101 + i + 1);
}

/* ---- Tests ---- */

/* Calling a *_locked function without the lock aborts.  The abort ends
 * the forked test, so its directory is made and removed by an unchecked
 * fixture, in the parent. */
static char *asserts_dir;

static void
asserts_setup (void)
{
  asserts_dir = make_tmpdir ();
}

static void
asserts_teardown (void)
{
  rm_tmpdir (asserts_dir);
  asserts_dir = NULL;
}

START_TEST (test_locked_asserts)
{
  const char *dir = asserts_dir;
  struct hf_objstore *s;
  struct hf_volume *v;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &s), 0);
  ck_assert_int_eq (hf_volume_create (s, "", 1 << 20, BS), 0);
  ck_assert_int_eq (hf_volume_open (s, "", NULL, &v), 0);
  hf_vol_lock (v);
  ck_assert_int_eq (hf_vol_write_err_locked (v), 0);    /* held: fine */
  hf_vol_unlock (v);
  hf_vol_write_err_locked (v);                          /* aborts */
  ck_abort_msg ("not reached");
}
END_TEST

struct ckpt_arg {
  struct hf_volume *v;
  int r;
  atomic_bool done;
};

static void *
ckpt_thread (void *arg)
{
  struct ckpt_arg *a = arg;

  a->r = hf_volume_checkpoint (a->v);
  atomic_store (&a->done, true);
  return NULL;
}

#define NMAP 40000              /* mapped blocks: a few hundred leaves */
#define NNEW 4000               /* blocks in the delta, across them */

START_TEST (test_reads_during_merge)
{
  char *dir = make_tmpdir ();
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .checkpoint_segments = 1000,
                                 .checkpoint_entries = 1 << 30,
                                 .node_cache = 16 };
  static uint8_t buf[64 * BS];
  uint8_t blk[BS], rd[BS];
  struct hf_volume *v;
  struct ckpt_arg ca = { 0 };
  pthread_t th;
  unsigned at_read, total;
  uint64_t i, probe = 1;        /* odd lbas are never rewritten */
  uint64_t st = 7;

  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &slow_inner), 0);
  ck_assert_int_eq (hf_volume_create (&slow_store, "",
                                      (uint64_t) NMAP * 2 * BS, BS), 0);
  /* Every other block mapped, checkpointed at close. */
  ck_assert_int_eq (hf_volume_open (&slow_store, "", &o, &v), 0);
  for (i = 0; i < NMAP; i += 64) {
    unsigned k;
    for (k = 0; k < 64; k++)
      fill (buf + (size_t) k * BS, i + k, 0);
    ck_assert_int_eq (hf_volume_pwrite (v, buf, 64 * BS, i * BS, 0), 0);
  }
  ck_assert_int_eq (hf_volume_close (v), 0);

  /* Reopen with a cold, small node cache; rewrite even blocks spread
   * over the whole tree (they wait in the delta). */
  ck_assert_int_eq (hf_volume_open (&slow_store, "", &o, &v), 0);
  for (i = 0; i < NNEW; i++) {
    uint64_t lba = (xorshift64 (&st) % NMAP) & ~(uint64_t) 1;
    fill (blk, lba, 1);
    ck_assert_int_eq (hf_volume_pwrite (v, blk, BS, lba * BS, 0), 0);
  }
  ck_assert_int_eq (hf_volume_flush (v), 0);
  /* The probe's path is in memory: its read needs no store request. */
  ck_assert_int_eq (hf_volume_pread (v, rd, BS, probe * BS), 0);

  atomic_store (&slow_gets, 0);
  atomic_store (&slow, true);
  ca.v = v;
  ck_assert_int_eq (pthread_create (&th, NULL, ckpt_thread, &ca), 0);
  /* Wait until the merge is reading nodes, then read through the tree. */
  while (atomic_load (&slow_gets) < 5 && !atomic_load (&ca.done))
    usleep (1000);
  ck_assert_int_eq (hf_volume_pread (v, rd, BS, probe * BS), 0);
  at_read = atomic_load (&slow_gets);
  pthread_join (th, NULL);
  total = atomic_load (&slow_gets);
  atomic_store (&slow, false);
  ck_assert_int_eq (ca.r, 0);
  if (getenv ("HF_TEST_VERBOSE"))
    fprintf (stderr, "merge node reads %u, read done after %u\n", total,
             at_read);
  fill (blk, probe, 0);
  ck_assert_int_eq (memcmp (rd, blk, BS), 0);
  /* The merge read many nodes; the read did not wait for them. */
  ck_assert_uint_ge (total, 50);
  ck_assert_msg (at_read < total / 2,
                 "the read completed after %u of the merge's %u node "
                 "reads", at_read, total);
  ck_assert_int_eq (hf_volume_close (v), 0);
  hf_objstore_close (slow_inner);
  rm_tmpdir (dir);
}
END_TEST

int
main (void)
{
  Suite *s = suite_create ("volume-locks");
  TCase *tc = tcase_create ("core");
  TCase *ta = tcase_create ("asserts");

  hf_log_set_sink (log_verbose);
  tcase_set_timeout (tc, 300);
  tcase_add_unchecked_fixture (ta, asserts_setup, asserts_teardown);
  tcase_add_test_raise_signal (ta, test_locked_asserts, SIGABRT);
  suite_add_tcase (s, ta);
  tcase_add_test (tc, test_reads_during_merge);
  suite_add_tcase (s, tc);
  return run_suite (s);
}
