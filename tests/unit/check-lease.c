/* Unit tests for lib/lease (the writer lease), on the dir store and the
 * fault store, without a volume:
 *
 *  - acquire on an empty volume takes epoch 1;
 *  - a live lease of another holder is refused with EBUSY and a message
 *    naming the holder, with or without takeover;
 *  - an expired lease is claimed only with takeover;
 *  - a lease left by a dead pid of this host is claimed without takeover;
 *  - a newer epoch fences the old holder (check and renew: EEXIST);
 *  - a released lease is taken over without takeover;
 *  - the committed seq a holder records survives release and takeover;
 *  - a corrupt lease object gives EBADMSG and a log line with its key and
 *    offset;
 *  - store errors come back as such, and a PUT whose reply was lost is
 *    recognised as ours.
 */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <errno.h>
#include <inttypes.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "format.h"
#include "lease.h"
#include "log.h"
#include "objstore.h"
#include "test-util.h"

#define PFX "vol/"

static char *dir;
static struct hf_objstore *store;

static void
setup (void)
{
  dir = make_tmpdir ();
  ck_assert_int_eq (hf_objstore_dir_open (dir, true, &store), 0);
  hf_log_set_sink (log_capture);
  last_error[0] = last_warn[0] = '\0';
}

static void
teardown (void)
{
  hf_objstore_close (store);
  rm_tmpdir (dir);
}

static void
key_of (char *out, size_t n, uint64_t epoch)
{
  snprintf (out, n, PFX "lease/%016" PRIx64, ~epoch);
}

/* A lease of another holder, with a given holder string. */
static void
other (struct hf_lease *l, const char *holder, uint32_t ttl_s)
{
  ck_assert_int_eq (hf_lease_init (l, store, PFX, ttl_s), 0);
  snprintf (l->holder, sizeof l->holder, "%s", holder);
}

static void
newest (struct hf_lease_info *out)
{
  bool found;

  ck_assert_int_eq (hf_lease_newest (store, PFX, &found, out), 0);
  ck_assert (found);
}

START_TEST (test_empty)
{
  struct hf_lease a;
  struct hf_lease_info li;
  bool found = true;

  ck_assert_int_eq (hf_lease_newest (store, PFX, &found, &li), 0);
  ck_assert (!found);
  ck_assert_int_eq (hf_lease_init (&a, store, PFX, 30), 0);
  ck_assert_int_eq (hf_lease_acquire (&a, false, false), 0);
  ck_assert (a.held);
  ck_assert_uint_eq (a.epoch, 1);
  newest (&li);
  ck_assert_uint_eq (li.epoch, 1);
  ck_assert_uint_eq (li.flags, 0);
  ck_assert_uint_eq (li.ttl_s, 30);
  ck_assert_str_eq (li.holder, a.holder);
  ck_assert_mem_eq (li.holder_uuid, a.holder_uuid, HF_UUID_SIZE);
  ck_assert_uint_eq (li.acquired_ns, a.acquired_ns);
  ck_assert_uint_ge (li.renewed_ns, li.acquired_ns);
  ck_assert_int_eq (hf_lease_check (&a), 0);
}
END_TEST

START_TEST (test_busy)
{
  struct hf_lease a, b;
  struct hf_lease_info li;

  other (&a, "far-away-host pid 4242", 3600);
  ck_assert_int_eq (hf_lease_acquire (&a, false, false), 0);
  ck_assert_int_eq (hf_lease_init (&b, store, PFX, 30), 0);
  ck_assert_int_eq (hf_lease_acquire (&b, false, false), EBUSY);
  ck_assert_ptr_nonnull (strstr (last_error, "is in use"));
  ck_assert_ptr_nonnull (strstr (last_error, "\"far-away-host pid 4242\""));
  ck_assert (!b.held);
  /* takeover alone does not break a live lease */
  ck_assert_int_eq (hf_lease_acquire (&b, true, false), EBUSY);
  newest (&li);
  ck_assert_uint_eq (li.epoch, 1);
  ck_assert_str_eq (li.holder, "far-away-host pid 4242");
}
END_TEST

START_TEST (test_expired_takeover)
{
  struct hf_lease a, b;
  struct hf_lease_info li;

  other (&a, "far-away-host pid 4242", 0);   /* expires at once */
  ck_assert_int_eq (hf_lease_acquire (&a, false, false), 0);
  ck_assert_int_eq (hf_lease_init (&b, store, PFX, 30), 0);
  ck_assert_int_eq (hf_lease_acquire (&b, false, false), EBUSY);
  ck_assert_ptr_nonnull (strstr (last_error, "expired"));
  ck_assert_ptr_nonnull (strstr (last_error, "takeover"));
  ck_assert_ptr_nonnull (strstr (last_error, "far-away-host pid 4242"));
  ck_assert_int_eq (hf_lease_acquire (&b, true, false), 0);
  ck_assert_uint_eq (b.epoch, 2);
  ck_assert_ptr_nonnull (strstr (last_warn, "claiming the writer lease of "
                                 "\"far-away-host pid 4242\" (epoch 1)"));
  newest (&li);
  ck_assert_uint_eq (li.epoch, 2);
  ck_assert_str_eq (li.holder, b.holder);
  /* the old holder is fenced */
  ck_assert_int_eq (hf_lease_check (&a), EEXIST);
}
END_TEST

START_TEST (test_dead_pid)
{
  struct hf_lease a, b;
  char host[100], holder[128];
  pid_t pid;
  int st;

  /* A pid that surely is dead: a reaped child. */
  pid = fork ();
  ck_assert_int_ge (pid, 0);
  if (pid == 0)
    _exit (0);
  ck_assert_int_eq (waitpid (pid, &st, 0), pid);
  ck_assert_int_eq (gethostname (host, sizeof host), 0);
  host[sizeof host - 1] = '\0';
  snprintf (holder, sizeof holder, "%s pid %ld", host, (long) pid);
  other (&a, holder, 3600);
  ck_assert_int_eq (hf_lease_acquire (&a, false, false), 0);
  ck_assert_int_eq (hf_lease_init (&b, store, PFX, 30), 0);
  ck_assert_int_eq (hf_lease_acquire (&b, false, false), 0);
  ck_assert_uint_eq (b.epoch, 2);
  ck_assert_ptr_nonnull (strstr (last_warn, holder));

  /* A live pid of this host (ours) is not claimed. */
  teardown ();
  setup ();
  snprintf (holder, sizeof holder, "%s pid %ld", host, (long) getpid ());
  other (&a, holder, 3600);
  ck_assert_int_eq (hf_lease_acquire (&a, false, false), 0);
  ck_assert_int_eq (hf_lease_init (&b, store, PFX, 30), 0);
  ck_assert_int_eq (hf_lease_acquire (&b, false, false), EBUSY);
}
END_TEST

START_TEST (test_fencing)
{
  struct hf_lease a, b;
  struct hf_lease_info li;

  ck_assert_int_eq (hf_lease_init (&a, store, PFX, 3600), 0);
  ck_assert_int_eq (hf_lease_acquire (&a, false, false), 0);
  ck_assert_int_eq (hf_lease_renew (&a, &li), 0);
  other (&b, "usurper pid 7", 3600);
  ck_assert_int_eq (hf_lease_acquire (&b, false, true), 0);  /* break */
  ck_assert_ptr_nonnull (strstr (last_warn, "(break_lease)"));
  ck_assert_uint_eq (b.epoch, 2);
  ck_assert_int_eq (hf_lease_check (&a), EEXIST);
  ck_assert_ptr_nonnull (strstr (last_error, "epoch 2 taken by "
                                 "\"usurper pid 7\" (ours 1)"));
  memset (&li, 0, sizeof li);
  ck_assert_int_eq (hf_lease_renew (&a, &li), EEXIST);
  ck_assert_uint_eq (li.epoch, 2);
  ck_assert_str_eq (li.holder, "usurper pid 7");
  /* the fenced renewal did not write anything */
  newest (&li);
  ck_assert_uint_eq (li.epoch, 2);
  ck_assert_int_eq (hf_lease_check (&b), 0);
  ck_assert_int_eq (hf_lease_renew (&b, &li), 0);
}
END_TEST

START_TEST (test_release)
{
  struct hf_lease a, b;
  struct hf_lease_info li;

  other (&a, "far-away-host pid 4242", 3600);
  ck_assert_int_eq (hf_lease_acquire (&a, false, false), 0);
  ck_assert_int_eq (hf_lease_release (&a), 0);
  newest (&li);
  ck_assert_uint_eq (li.epoch, 1);
  ck_assert_uint_eq (li.flags, HF_LS_RELEASED);
  last_warn[0] = '\0';
  ck_assert_int_eq (hf_lease_init (&b, store, PFX, 30), 0);
  ck_assert_int_eq (hf_lease_acquire (&b, false, false), 0);
  ck_assert_uint_eq (b.epoch, 2);
  ck_assert_str_eq (last_warn, "");     /* nothing was claimed */
}
END_TEST

/* ls_committed_seq: written by renew and release, carried over by the
 * next holder's acquire, never lowered by it; a lease object from
 * before the field (zero there) reads as "nothing recorded". */
START_TEST (test_committed_seq)
{
  struct hf_lease a, b, c;
  struct hf_lease_info li;
  uint8_t obj[HF_LS_SIZE];

  ck_assert_int_eq (hf_lease_init (&a, store, PFX, 3600), 0);
  ck_assert_int_eq (hf_lease_acquire (&a, false, false), 0);
  ck_assert_uint_eq (a.committed_seq, 0);
  a.committed_seq = 17;
  ck_assert_int_eq (hf_lease_renew (&a, &li), 0);
  newest (&li);
  ck_assert_uint_eq (li.committed_seq, 17);
  a.committed_seq = 23;
  ck_assert_int_eq (hf_lease_release (&a), 0);
  newest (&li);
  ck_assert_uint_eq (li.committed_seq, 23);
  ck_assert_uint_eq (li.flags, HF_LS_RELEASED);

  ck_assert_int_eq (hf_lease_init (&b, store, PFX, 3600), 0);
  ck_assert_int_eq (hf_lease_acquire (&b, false, false), 0);
  ck_assert_uint_eq (b.epoch, 2);
  ck_assert_uint_eq (b.committed_seq, 23);
  newest (&li);                 /* the new object carries it too */
  ck_assert_uint_eq (li.committed_seq, 23);
  /* A holder that knows more keeps its own value. */
  ck_assert_int_eq (hf_lease_release (&b), 0);
  ck_assert_int_eq (hf_lease_init (&c, store, PFX, 3600), 0);
  c.committed_seq = 40;
  ck_assert_int_eq (hf_lease_acquire (&c, false, false), 0);
  ck_assert_uint_eq (c.committed_seq, 40);

  /* The field is bytes 184..191, inside the CRC. */
  hf_lease_encode (&c, 0, obj);
  ck_assert_uint_eq (hf_le64 (obj + 184), 40);
  ck_assert_int_eq (hf_lease_decode (obj, sizeof obj, "k", &li), 0);
  ck_assert_uint_eq (li.committed_seq, 40);
  obj[184] ^= 1;
  ck_assert_int_eq (hf_lease_decode (obj, sizeof obj, "k", &li), EBADMSG);
}
END_TEST

START_TEST (test_corrupt)
{
  struct hf_lease a, b;
  struct hf_lease_info li;
  uint8_t buf[HF_LS_SIZE];
  char key[HF_OBJSTORE_KEY_MAX + 1];
  bool found;

  ck_assert_int_eq (hf_lease_init (&a, store, PFX, 3600), 0);
  ck_assert_int_eq (hf_lease_acquire (&a, false, false), 0);
  key_of (key, sizeof key, 1);

  /* A flipped byte in the holder */
  hf_lease_encode (&a, 0, buf);
  buf[offsetof (struct hf_disk_lease, ls_holder)] ^= 0x20;
  ck_assert_int_eq (hf_objstore_put (store, key, buf, sizeof buf, 0), 0);
  ck_assert_int_eq (hf_lease_newest (store, PFX, &found, &li), EBADMSG);
  ck_assert (!found);
  ck_assert_ptr_nonnull (strstr (last_error, key));
  ck_assert_ptr_nonnull (strstr (last_error, "corrupt"));
  ck_assert_ptr_nonnull (strstr (last_error, "byte offset"));
  ck_assert_int_eq (hf_lease_init (&b, store, PFX, 30), 0);
  ck_assert_int_eq (hf_lease_acquire (&b, true, true), EBADMSG);
  ck_assert_int_eq (hf_lease_check (&a), EBADMSG);

  /* A short object */
  ck_assert_int_eq (hf_objstore_put (store, key, buf, 100, 0), 0);
  ck_assert_int_eq (hf_lease_newest (store, PFX, &found, &li), EBADMSG);
  ck_assert_ptr_nonnull (strstr (last_error, "(100 bytes"));

  /* A valid object under the key of another epoch */
  a.epoch = 5;
  hf_lease_encode (&a, 0, buf);
  key_of (key, sizeof key, 7);
  ck_assert_int_eq (hf_objstore_put (store, key, buf, sizeof buf, 0), 0);
  ck_assert_int_eq (hf_lease_newest (store, PFX, &found, &li), EBADMSG);
  ck_assert_ptr_nonnull (strstr (last_error, key));
  ck_assert_ptr_nonnull (strstr (last_error, "holds epoch 5"));
}
END_TEST

START_TEST (test_store_errors)
{
  struct hf_fault_config fc = { .seed = 1 };
  struct hf_objstore *inner = store, *f;
  struct hf_lease a;
  struct hf_lease_info li;
  bool found;

  ck_assert_int_eq (hf_objstore_fault_open (inner, &fc, &f), 0);
  store = f;                    /* teardown closes it, and inner with it */

  /* Down: every try fails, the error is reported and nothing is held. */
  hf_objstore_fault_set_down (f, true);
  ck_assert_int_eq (hf_lease_init (&a, f, PFX, 30), 0);
  ck_assert_int_eq (hf_lease_acquire (&a, false, false), EIO);
  ck_assert (!a.held);
  ck_assert_ptr_nonnull (strstr (last_error, "cannot read the writer lease"));
  ck_assert_int_eq (hf_lease_newest (f, PFX, &found, &li), EIO);
  hf_objstore_fault_set_down (f, false);

  /* Every PUT lands but its reply is lost: the retry sees EEXIST and
   * recognises our own lease. */
  fc.p_put_lost_ack = 1.0;
  hf_objstore_fault_set_config (f, &fc);
  ck_assert_int_eq (hf_lease_acquire (&a, false, false), 0);
  ck_assert_uint_eq (a.epoch, 1);
  ck_assert (a.held);
  /* Unconditional renewals keep failing: the error is returned. */
  ck_assert_int_eq (hf_lease_renew (&a, &li), EIO);
  ck_assert_int_eq (hf_lease_release (&a), EIO);
  ck_assert_uint_gt (hf_objstore_fault_injected (f), 0);

  /* Errors on some tries only: retried to success. */
  fc.p_put_lost_ack = 0;
  fc.p_error = 0.1;
  fc.p_timeout = 0.05;
  hf_objstore_fault_set_config (f, &fc);
  {
    uint64_t inj = hf_objstore_fault_injected (f);
    /* A renewal fails only when six tries of one step fail in a row
     * (0.145^6, 1e-5); with this fixed seed none does, and faults did
     * hit tries that were retried. */
    for (int i = 0; i < 20; i++)
      ck_assert_int_eq (hf_lease_renew (&a, &li), 0);
    ck_assert_uint_gt (hf_objstore_fault_injected (f), inj + 5);
  }
  fc.p_error = fc.p_timeout = 0;
  hf_objstore_fault_set_config (f, &fc);
  ck_assert_int_eq (hf_lease_check (&a), 0);
  newest (&li);
  ck_assert_uint_eq (li.epoch, 1);
}
END_TEST

static Suite *
lease_suite (void)
{
  Suite *s = suite_create ("lease");
  TCase *tc = tcase_create ("lease");

  tcase_add_checked_fixture (tc, setup, teardown);
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_empty);
  tcase_add_test (tc, test_busy);
  tcase_add_test (tc, test_expired_takeover);
  tcase_add_test (tc, test_dead_pid);
  tcase_add_test (tc, test_fencing);
  tcase_add_test (tc, test_release);
  tcase_add_test (tc, test_committed_seq);
  tcase_add_test (tc, test_corrupt);
  tcase_add_test (tc, test_store_errors);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return run_suite (lease_suite ());
}
