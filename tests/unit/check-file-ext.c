/* Unit tests for lib/file.c's internal entry points (file-int.h): the
 * way the plugin opens its volume through struct hf_file.  The public
 * calls have their own test (tests/libhyperfile-api.c, unit/check-file).
 */
#undef NDEBUG
#include <config.h>

#include <check.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "file-int.h"
#include "log.h"
#include "objstore.h"
#include "test-util.h"
#include "volume.h"

#define BS 4096
#define VOL (64 * BS)

static char *tmp;
static struct hf_objstore *store;

/* A directory store holding a new volume, in a new temp dir. */
static void
setup (void)
{
  char path[4096];

  hf_log_set_sink (log_capture);
  tmp = make_tmpdir ();
  snprintf (path, sizeof path, "%s/vol", tmp);
  ck_assert_int_eq (hf_objstore_dir_open (path, true, &store), 0);
  ck_assert_int_eq (hf_volume_create (store, "", VOL, BS), 0);
}

static void
teardown (void)
{
  hf_objstore_close (store);
  rm_tmpdir (tmp);
}

static uint64_t
gets (void)
{
  struct hf_objstore_stats st;

  hf_objstore_get_stats (store, &st);
  return st.requests[HF_OP_GET];
}

/* The handle runs the caller's store, not url's (the plugin's store is
 * checked and maybe wrapped before the fork), and leaves it open. */
START_TEST (test_borrowed_store)
{
  struct hf_file_ext ext = { .store = store, .prefix = "" };
  struct hf_volume *v;
  struct hf_file *f;
  char buf[BS], back[BS];

  memset (buf, 0xa5, sizeof buf);
  ck_assert_int_eq (hf_file_open_ext ("/nonexistent/not-opened", NULL, &ext,
                                      &f), 0);
  ck_assert_ptr_eq (hf_file_store (f), store);
  ck_assert_str_eq (hf_file_prefix (f), "");
  ck_assert_ptr_null (hf_file_cache (f));
  ck_assert_ptr_nonnull (hf_file_volume (f));
  ck_assert_uint_eq (hf_file_size (f), VOL);
  ck_assert_int_eq (hf_file_pwrite (f, buf, sizeof buf, 3 * BS, 0), 0);
  ck_assert_int_eq (hf_file_close (f), 0);      /* commits: no log */

  /* Still open, and it holds what the handle committed. */
  ck_assert_int_eq (hf_volume_open (store, "", &(struct hf_volume_options)
                                    { .readonly = true }, &v), 0);
  ck_assert_int_eq (hf_volume_pread (v, back, sizeof back, 3 * BS), 0);
  ck_assert_mem_eq (back, buf, sizeof buf);
  ck_assert_int_eq (hf_volume_close (v), 0);
}
END_TEST

/* A store without its prefix is a caller's mistake, refused. */
START_TEST (test_store_needs_prefix)
{
  struct hf_file_ext ext = { .store = store };
  struct hf_file *f = (struct hf_file *) &ext;

  ck_assert_int_eq (hf_file_open_ext ("x", NULL, &ext, &f), EINVAL);
  ck_assert_ptr_eq (f, (struct hf_file *) &ext);        /* unchanged */
}
END_TEST

/* Engine options reach the engine: a read-only open at an older point
 * (at= resolved by the caller) reads that point and refuses writes. */
START_TEST (test_vopts)
{
  struct hf_volume_options vo = { 0 };
  struct hf_file_ext ext = { .store = store, .prefix = "", .vopts = &vo };
  struct hf_volume_info vi;
  struct hf_file *f;
  char one[BS], two[BS], back[BS];
  uint64_t old;

  memset (one, 1, sizeof one);
  memset (two, 2, sizeof two);
  ck_assert_int_eq (hf_file_open_ext ("t", NULL, &ext, &f), 0);
  ck_assert_int_eq (hf_file_pwrite (f, one, BS, 0, 0), 0);
  ck_assert_int_eq (hf_file_flush (f), 0);
  hf_volume_get_info (hf_file_volume (f), &vi);
  old = vi.head_seq;
  ck_assert_int_eq (hf_file_pwrite (f, two, BS, 0, 0), 0);
  ck_assert_int_eq (hf_file_close (f), 0);

  vo.readonly = true;
  vo.at_seq = old;
  ck_assert_int_eq (hf_file_open_ext ("t", NULL, &ext, &f), 0);
  ck_assert_int_eq (hf_file_pread (f, back, BS, 0), 0);
  ck_assert_mem_eq (back, one, BS);
  ck_assert_int_eq (hf_file_pwrite (f, two, BS, 0, 0), EROFS);
  ck_assert_int_eq (hf_file_close (f), 0);
}
END_TEST

/* With the volume's uuid and block size known, the cache opens without
 * reading the descriptor again: one GET fewer than without. */
START_TEST (test_known_saves_a_get)
{
  struct hf_file_ext ext = { .store = store, .prefix = "" };
  struct hf_file_options o;
  struct hf_volume_info vi;
  struct hf_file *f;
  char cache[4096];
  uint64_t g0, without, with;

  snprintf (cache, sizeof cache, "%s/cache", tmp);
  hf_file_options_init (&o);
  o.flags = HF_FILE_READONLY;
  o.cache_dir = cache;
  o.cache_size = 1 << 20;

  g0 = gets ();
  ck_assert_int_eq (hf_file_open_ext ("k", &o, &ext, &f), 0);
  without = gets () - g0;
  ck_assert_ptr_nonnull (hf_file_cache (f));
  hf_volume_get_info (hf_file_volume (f), &vi);
  ck_assert_int_eq (hf_file_close (f), 0);

  ext.known = &vi;
  g0 = gets ();
  ck_assert_int_eq (hf_file_open_ext ("k", &o, &ext, &f), 0);
  with = gets () - g0;
  ck_assert_ptr_nonnull (hf_file_cache (f));
  ck_assert_int_eq (hf_file_close (f), 0);
  ck_assert_uint_eq (without, with + 1);
}
END_TEST

/* hf_file_prefetch (public, 0.3) puts what the store holds of the range
 * into the cache before it returns: the next read of it is a hit. */
START_TEST (test_prefetch_fills_cache)
{
  struct hf_file_ext ext = { .store = store, .prefix = "" };
  struct hf_cache_stats before, after;
  struct hf_file_options o;
  struct hf_file *f;
  char buf[4 * BS], back[4 * BS];
  char cache[4096];

  memset (buf, 0x3c, sizeof buf);
  ck_assert_int_eq (hf_file_open_ext ("p", NULL, &ext, &f), 0);
  ck_assert_int_eq (hf_file_pwrite (f, buf, sizeof buf, 8 * BS, 0), 0);
  ck_assert_int_eq (hf_file_close (f), 0);      /* committed */

  snprintf (cache, sizeof cache, "%s/cache", tmp);
  hf_file_options_init (&o);
  o.flags = HF_FILE_READONLY;
  o.cache_dir = cache;
  o.cache_size = 1 << 20;
  ck_assert_int_eq (hf_file_open_ext ("p", &o, &ext, &f), 0);
  hf_cache_get_stats (hf_file_cache (f), &before);
  ck_assert_int_eq (hf_file_prefetch (f, sizeof buf, 8 * BS), 0);
  hf_cache_get_stats (hf_file_cache (f), &after);
  ck_assert_uint_gt (after.inserts, before.inserts);
  before = after;
  ck_assert_int_eq (hf_file_pread (f, back, sizeof back, 8 * BS), 0);
  ck_assert_mem_eq (back, buf, sizeof buf);
  hf_cache_get_stats (hf_file_cache (f), &after);
  ck_assert_uint_gt (after.hits, before.hits);
  ck_assert_uint_eq (after.misses, before.misses);
  ck_assert_int_eq (hf_file_prefetch (f, 2, VOL - 1), EINVAL);
  ck_assert_int_eq (hf_file_close (f), 0);
}
END_TEST

static Suite *
file_ext_suite (void)
{
  Suite *s = suite_create ("file-ext");
  TCase *tc = tcase_create ("core");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_add_test (tc, test_borrowed_store);
  tcase_add_test (tc, test_store_needs_prefix);
  tcase_add_test (tc, test_vopts);
  tcase_add_test (tc, test_known_saves_a_get);
  tcase_add_test (tc, test_prefetch_fills_cache);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return run_suite (file_ext_suite ());
}
