/* Unit tests for the S3 store's credentials (lib/s3-creds.c,
 * lib/s3-fetch.c) that the shell tests cannot pin down: the Expiration
 * formats, and the refresh's rules with many threads at once (one fetch
 * for all of them, the current credentials kept when a fetch fails, a
 * server's ExpiredToken answered by one fetch), with a credential_process
 * script that counts its runs as the source.  No server is contacted. */
#include <config.h>

#undef NDEBUG
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "log.h"
#include "objstore.h"
#include "s3-int.h"
#include "test-util.h"

START_TEST (test_parse_time)
{
  int64_t t = 0;

  ck_assert_int_eq (hf_s3_parse_time ("1970-01-01T00:00:00Z", &t), 0);
  ck_assert_int_eq (t, 0);
  ck_assert_int_eq (hf_s3_parse_time ("2026-12-03T13:04:33Z", &t), 0);
  ck_assert_int_eq (t, 1796303073);
  ck_assert_int_eq (hf_s3_parse_time ("2026-12-03T13:04:33.123Z", &t), 0);
  ck_assert_int_eq (t, 1796303073);
  ck_assert_int_eq (hf_s3_parse_time ("2026-12-03T13:04:33+00:00", &t), 0);
  ck_assert_int_eq (t, 1796303073);
  ck_assert_int_eq (hf_s3_parse_time ("2026-12-03T13:04:33", &t), 0);
  ck_assert_int_eq (t, 1796303073);
  /* Not UTC, not a time, out of range, trailing junk. */
  ck_assert_int_eq (hf_s3_parse_time ("2026-12-03T13:04:33+02:00", &t),
                    EINVAL);
  ck_assert_int_eq (hf_s3_parse_time ("tomorrow", &t), EINVAL);
  ck_assert_int_eq (hf_s3_parse_time ("2026-13-03T13:04:33Z", &t), EINVAL);
  ck_assert_int_eq (hf_s3_parse_time ("2026-12-03T25:04:33Z", &t), EINVAL);
  ck_assert_int_eq (hf_s3_parse_time ("2026-12-03T13:04:33Zjunk", &t),
                    EINVAL);
  ck_assert_int_eq (hf_s3_parse_time ("", &t), EINVAL);
  ck_assert_int_eq (hf_s3_parse_time (NULL, &t), EINVAL);
}
END_TEST

/* The source: a credential_process script in dir whose runs are counted
 * in dir/runs.  Run N (from 1) answers with key id KEYN; its Expiration
 * is now + first_life on run 1 and now + 3600 after, and every run
 * after fail_from (0: never) exits 1.  Each run sleeps 200 ms, so that
 * threads asking meanwhile meet the fetch in progress. */
static char *dir;

static void
write_source (int first_life, int fail_from)
{
  char path[4096], cfg[4096];
  FILE *fp;

  snprintf (path, sizeof path, "%s/process.sh", dir);
  fp = fopen (path, "w");
  ck_assert_ptr_nonnull (fp);
  fprintf (fp,
           "#!/bin/sh\n"
           "n=$(( $(cat '%s/runs' 2>/dev/null || echo 0) + 1 ))\n"
           "echo $n > '%s/runs'\n"
           "sleep 0.2\n"
           "[ %d -gt 0 ] && [ $n -gt %d ] && exit 1\n"
           "life=3600; [ $n = 1 ] && life=%d\n"
           "exp=$(date -u -d \"@$(( $(date +%%s) + life ))\" "
           "+%%Y-%%m-%%dT%%H:%%M:%%SZ)\n"
           "printf '{\"Version\": 1, \"AccessKeyId\": \"KEY%%s\", "
           "\"SecretAccessKey\": \"secret-%%s\", \"SessionToken\": "
           "\"token-%%s\", \"Expiration\": \"%%s\"}\\n' $n $n $n $exp\n",
           dir, dir, fail_from, fail_from, first_life);
  ck_assert_int_eq (fclose (fp), 0);
  ck_assert_int_eq (chmod (path, 0700), 0);
  snprintf (cfg, sizeof cfg, "%s/config", dir);
  fp = fopen (cfg, "w");
  ck_assert_ptr_nonnull (fp);
  fprintf (fp, "[profile counted]\ncredential_process = %s\n", path);
  ck_assert_int_eq (fclose (fp), 0);
  setenv ("AWS_CONFIG_FILE", cfg, 1);
  snprintf (cfg, sizeof cfg, "%s/no-credentials", dir);
  setenv ("AWS_SHARED_CREDENTIALS_FILE", cfg, 1);
}

static int
runs (void)
{
  char path[4096];
  FILE *fp;
  int n = 0;

  snprintf (path, sizeof path, "%s/runs", dir);
  fp = fopen (path, "r");
  if (fp) {
    if (fscanf (fp, "%d", &n) != 1)
      n = -1;
    fclose (fp);
  }
  return n;
}

static struct hf_objstore *
open_store (void)
{
  struct hf_s3_config cfg = {
    .bucket = "b", .endpoint = "http://127.0.0.1:9", .tls_verify = true,
    .profile = "counted",
  };
  struct hf_objstore *os = NULL;

  ck_assert_int_eq (hf_objstore_s3_open (&cfg, &os), 0);
  return os;
}

/* The directory is made and removed by an unchecked fixture, in the
 * runner: a test that fails ends its process before a checked teardown
 * would run.  Each test starts with no runs counted. */
static void
setup_dir (void)
{
  dir = make_tmpdir ();
}

static void
teardown_dir (void)
{
  rm_tmpdir (dir);
  dir = NULL;
}

static void
setup (void)
{
  char path[4096];

  snprintf (path, sizeof path, "%s/runs", dir);
  unlink (path);
  unsetenv ("AWS_ACCESS_KEY_ID");
  unsetenv ("AWS_SECRET_ACCESS_KEY");
  unsetenv ("AWS_SESSION_TOKEN");
  unsetenv ("AWS_PROFILE");
  unsetenv ("AWS_ROLE_ARN");
  unsetenv ("AWS_WEB_IDENTITY_TOKEN_FILE");
  setenv ("AWS_EC2_METADATA_DISABLED", "true", 1);
}


/* Threads asking for credentials at once. */
#define NTHREADS 8
static pthread_barrier_t barrier;

struct asker {
  struct hf_s3 *s;
  char key[32];
  int64_t expires;
};

static void *
ask (void *opaque)
{
  struct asker *a = opaque;
  struct hf_s3_cred *c;

  pthread_barrier_wait (&barrier);
  c = hf_s3_cred_get (a->s);
  snprintf (a->key, sizeof a->key, "%s", c->access_key);
  a->expires = c->expires;
  hf_s3_cred_put (a->s, c);
  return NULL;
}

static void
ask_all (struct hf_s3 *s, struct asker *a)
{
  pthread_t th[NTHREADS];
  int i;

  pthread_barrier_init (&barrier, NULL, NTHREADS);
  for (i = 0; i < NTHREADS; i++) {
    a[i].s = s;
    ck_assert_int_eq (pthread_create (&th[i], NULL, ask, &a[i]), 0);
  }
  for (i = 0; i < NTHREADS; i++)
    pthread_join (th[i], NULL);
  pthread_barrier_destroy (&barrier);
}

/* Credentials that have expired: every thread gets new ones, valid,
 * and the process ran once for all of them. */
START_TEST (test_one_fetch_for_all)
{
  struct asker a[NTHREADS] = { 0 };
  struct hf_objstore *os;
  struct hf_s3 *s;
  int i;

  write_source (1, 0);
  os = open_store ();
  s = os->priv;
  ck_assert_int_eq (runs (), 1);
  ck_assert_str_eq (s->cred->access_key, "KEY1");
  while (time (NULL) < s->cred->expires)
    usleep (50000);
  ask_all (s, a);
  for (i = 0; i < NTHREADS; i++) {
    ck_assert_str_eq (a[i].key, "KEY2");
    ck_assert_int_gt (a[i].expires, (int64_t) time (NULL) + 3000);
  }
  ck_assert_int_eq (runs (), 2);
  hf_objstore_close (os);
}
END_TEST

/* A fetch that fails keeps the credentials there are, and is not tried
 * again by every request: within the next second, none. */
START_TEST (test_failed_fetch)
{
  struct asker a[NTHREADS] = { 0 };
  struct hf_objstore *os;
  struct hf_s3 *s;
  int i;

  int64_t t0, t1;

  write_source (1, 1);
  os = open_store ();
  s = os->priv;
  while (time (NULL) < s->cred->expires)
    usleep (50000);
  t0 = (int64_t) time (NULL);
  last_warn[0] = '\0';
  hf_log_set_sink (log_capture);
  ask_all (s, a);
  hf_log_set_sink (log_quiet);
  t1 = (int64_t) time (NULL);
  for (i = 0; i < NTHREADS; i++)
    ck_assert_str_eq (a[i].key, "KEY1");
  /* At least one fetch, and at most one a second (threads the machine
   * delayed past the second may make one more, never eight). */
  ck_assert_int_ge (runs (), 2);
  ck_assert_int_le (runs () - 1, t1 - t0 + 1);
  ck_assert_int_gt (s->fail_until, t0);
  ck_assert_ptr_nonnull (strstr (last_warn, "refreshing credentials from "
                                 "profile counted in "));
  ck_assert_ptr_nonnull (strstr (last_warn, "credential_process: exited "
                                 "with status 1"));
  hf_objstore_close (os);
}
END_TEST

/* The same when the server called them expired: a failed fetch is not
 * tried again by every request (it was, one after the other: 8 runs). */
START_TEST (test_failed_fetch_stale)
{
  struct asker a[NTHREADS] = { 0 };
  struct hf_objstore *os;
  struct hf_s3_cred *c;
  struct hf_s3 *s;
  int64_t t0, t1;
  int i;

  write_source (3600, 1);
  os = open_store ();
  s = os->priv;
  c = hf_s3_cred_get (s);
  ck_assert (hf_s3_cred_expired (s, c));
  hf_s3_cred_put (s, c);
  t0 = (int64_t) time (NULL);
  ask_all (s, a);
  t1 = (int64_t) time (NULL);
  for (i = 0; i < NTHREADS; i++)
    ck_assert_str_eq (a[i].key, "KEY1");
  ck_assert_int_ge (runs (), 2);
  ck_assert_int_le (runs () - 1, t1 - t0 + 1);
  hf_objstore_close (os);
}
END_TEST

/* The server calls them expired (ExpiredToken) although the Expiration
 * says an hour: one fetch, after which the threads sign with the new
 * ones; a second report about the old ones fetches nothing more.
 * Fixed credentials cannot be fetched again. */
START_TEST (test_expired_by_server)
{
  struct asker a[NTHREADS] = { 0 };
  struct hf_objstore *os;
  struct hf_s3_cred *c;
  struct hf_s3 *s;
  struct hf_s3_config fixed = {
    .bucket = "b", .endpoint = "http://127.0.0.1:9", .tls_verify = true,
    .access_key = "AKID", .secret_key = "fixed-secret",
  };
  int i;

  write_source (3600, 0);
  os = open_store ();
  s = os->priv;
  c = hf_s3_cred_get (s);
  ck_assert_str_eq (c->access_key, "KEY1");
  ck_assert (hf_s3_cred_expired (s, c));
  ask_all (s, a);
  for (i = 0; i < NTHREADS; i++)
    ck_assert_str_eq (a[i].key, "KEY2");
  ck_assert (hf_s3_cred_expired (s, c));      /* the old ones, again */
  hf_s3_cred_put (s, c);
  c = hf_s3_cred_get (s);
  ck_assert_str_eq (c->access_key, "KEY2");
  hf_s3_cred_put (s, c);
  ck_assert_int_eq (runs (), 2);
  hf_objstore_close (os);

  ck_assert_int_eq (hf_objstore_s3_open (&fixed, &os), 0);
  s = os->priv;
  c = hf_s3_cred_get (s);
  ck_assert (!hf_s3_cred_expired (s, c));
  hf_s3_cred_put (s, c);
  hf_objstore_close (os);
}
END_TEST

static Suite *
s3_creds_suite (void)
{
  Suite *s = suite_create ("s3-creds");
  TCase *tc = tcase_create ("core");

  tcase_add_unchecked_fixture (tc, setup_dir, teardown_dir);
  tcase_add_checked_fixture (tc, setup, NULL);
  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_parse_time);
  tcase_add_test (tc, test_one_fetch_for_all);
  tcase_add_test (tc, test_failed_fetch);
  tcase_add_test (tc, test_failed_fetch_stale);
  tcase_add_test (tc, test_expired_by_server);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  hf_log_set_sink (log_quiet);
  return run_suite (s3_creds_suite ());
}
