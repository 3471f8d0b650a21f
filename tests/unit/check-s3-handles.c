/* Unit tests for the S3 store's curl handles (lib/s3-request.c): every
 * attempt runs on a fresh easy handle (a reused one carries libcurl
 * 7.88's stale header pointer into the next reply), while the pooled
 * multi handles keep connections open across requests.  A small HTTP
 * server thread on 127.0.0.1 answers from a script of canned replies. */
#include <config.h>

#undef NDEBUG
#include <arpa/inet.h>
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "log.h"
#include "objstore.h"
#include "test-util.h"

/* The server: replies[i] answers request i, the last one answers the
 * rest; it counts connections and requests. */
static const char *const *replies;
static size_t nreplies;
static atomic_int connections, requests;
static int srv_fd = -1;
static pthread_t srv_thread;
/* The store's max_retries (hf_s3_config). */
static unsigned start_retries = 1;

/* Read one request (headers and Content-Length body); 0 at EOF. */
static int
read_request (int c)
{
  char buf[16384];
  size_t have = 0;
  char *end;

  for (;;) {
    ssize_t n = read (c, buf + have, 1);   /* byte by byte: keep-alive */

    if (n <= 0)
      return 0;
    have++;
    buf[have] = '\0';
    if (have >= 4 && (end = strstr (buf, "\r\n\r\n")) != NULL) {
      char *cl = strcasestr (buf, "\r\ncontent-length:");
      size_t body = cl ? strtoull (cl + 17, NULL, 10) : 0;

      while (body > 0 && read (c, buf, 1) == 1)
        body--;
      return 1;
    }
    if (have == sizeof buf - 1)
      return 0;
  }
}

static void *
serve (void *arg)
{
  int c;

  (void) arg;
  while ((c = accept (srv_fd, NULL, NULL)) >= 0) {
    struct timeval tv = { 5, 0 };

    connections++;
    setsockopt (c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (read_request (c)) {
      int i = requests++;
      const char *r = replies[(size_t) i < nreplies ? (size_t) i
                              : nreplies - 1];

      if (send (c, r, strlen (r), MSG_NOSIGNAL) < 0)
        break;
    }
    close (c);
  }
  return NULL;
}

static struct hf_objstore *
start (const char *const *script, size_t n)
{
  struct sockaddr_in a = { .sin_family = AF_INET };
  socklen_t alen = sizeof a;
  struct hf_s3_config cfg = { 0 };
  struct hf_objstore *s;
  char ep[64];

  replies = script;
  nreplies = n;
  connections = requests = 0;
  a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  srv_fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  ck_assert_int_ge (srv_fd, 0);
  ck_assert_int_eq (bind (srv_fd, (struct sockaddr *) &a, sizeof a), 0);
  ck_assert_int_eq (listen (srv_fd, 16), 0);
  ck_assert_int_eq (getsockname (srv_fd, (struct sockaddr *) &a, &alen), 0);
  ck_assert_int_eq (pthread_create (&srv_thread, NULL, serve, NULL), 0);

  snprintf (ep, sizeof ep, "http://127.0.0.1:%u", ntohs (a.sin_port));
  cfg.bucket = "bucket";
  cfg.endpoint = ep;
  cfg.access_key = "AKIDEXAMPLE";
  cfg.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
  cfg.tls_verify = true;
  cfg.max_retries = start_retries;
  cfg.retry_base_ms = 1;
  cfg.retry_max_ms = 1;
  ck_assert_int_eq (hf_objstore_s3_open (&cfg, &s), 0);
  return s;
}

static void
stop (struct hf_objstore *s)
{
  hf_objstore_close (s);        /* closes the client's connections */
  shutdown (srv_fd, SHUT_RDWR);
  close (srv_fd);
  pthread_join (srv_thread, NULL);
  srv_fd = -1;
}

#define OK_REPLY "HTTP/1.1 200 OK\r\nETag: \"abc\"\r\n" \
  "Content-Length: 0\r\n\r\n"

/* A reply whose first header line is folded, after a normal reply on the
 * same store: libcurl 7.88 unfolds it onto the previous transfer's
 * freed last header when the easy handle is reused (heap corruption:
 * ASan reports a use after free; without ASan the realloc of freed
 * memory aborts, or the request succeeds).  With a fresh handle there
 * is nothing to unfold onto: the reply is refused. */
START_TEST (test_folded_header)
{
  static const char *const script[] = {
    OK_REPLY,
    /* The folded line holds a lone CR (found so by fuzz-s3). */
    "HTTP/1.1 200 OK\r\n K\rContent-Length: 0\r\n\r\n",
  };
  struct hf_objstore_info info;
  struct hf_objstore *s;

  hf_log_set_sink (log_quiet);
  s = start (script, 2);
  ck_assert_int_eq (hf_objstore_head (s, "k", &info), 0);
  ck_assert_int_ne (hf_objstore_head (s, "k", &info), 0);
  /* And the store still works. */
  replies = (const char *const[]) { OK_REPLY };
  nreplies = 1;
  requests = 0;
  ck_assert_int_eq (hf_objstore_head (s, "k", &info), 0);
  stop (s);
  hf_log_set_sink (NULL);
}
END_TEST

/* Fresh easy handles must not cost a connection per request: the pooled
 * multi handle keeps the connection open. */
START_TEST (test_connection_reused)
{
  static const char *const script[] = { OK_REPLY };
  struct hf_objstore_info info;
  struct hf_objstore *s;
  int i;

  s = start (script, 1);
  for (i = 0; i < 20; i++)
    ck_assert_int_eq (hf_objstore_head (s, "k", &info), 0);
  ck_assert_int_eq (requests, 20);
  ck_assert_int_eq (connections, 1);
  stop (s);
}
END_TEST

/* request-timeout= and request-retries= (plugin and admin command):
 * checked parsing, and the retry budget is what the store does. */
START_TEST (test_request_limits)
{
  static const char *const script[] = {
    "HTTP/1.1 503 Slow Down\r\nContent-Length: 0\r\n\r\n"
  };
  struct hf_s3_config cfg = { .request_timeout_s = 7, .max_retries = 5 };
  struct hf_objstore_info info;
  struct hf_objstore *s;
  int i;

  ck_assert_int_eq (hf_s3_config_request_timeout (&cfg, "1500ms"), 0);
  ck_assert_uint_eq (cfg.request_timeout_s, 2);         /* rounded up */
  ck_assert_int_eq (hf_s3_config_request_timeout (&cfg, "24h"), 0);
  ck_assert_uint_eq (cfg.request_timeout_s, 86400);
  ck_assert_int_eq (hf_s3_config_request_timeout (&cfg, "1s"), 0);
  ck_assert_uint_eq (cfg.request_timeout_s, 1);
  ck_assert_int_eq (hf_s3_config_request_timeout (&cfg, "999ms"), ERANGE);
  ck_assert_int_eq (hf_s3_config_request_timeout (&cfg, "0"), ERANGE);
  ck_assert_int_eq (hf_s3_config_request_timeout (&cfg, "86401"), ERANGE);
  ck_assert_int_eq (hf_s3_config_request_timeout (&cfg, "-5s"), EINVAL);
  ck_assert_int_eq (hf_s3_config_request_timeout (&cfg, "soon"), EINVAL);
  ck_assert_uint_eq (cfg.request_timeout_s, 1);         /* unchanged */
  ck_assert_int_eq (hf_s3_config_retries (&cfg, "100"), 0);
  ck_assert_uint_eq (cfg.max_retries, 100);
  ck_assert_int_eq (hf_s3_config_retries (&cfg, "101"), ERANGE);
  ck_assert_int_eq (hf_s3_config_retries (&cfg, "99999999999999999999"),
                    ERANGE);
  ck_assert_int_eq (hf_s3_config_retries (&cfg, "-1"), EINVAL);
  ck_assert_int_eq (hf_s3_config_retries (&cfg, " 1"), EINVAL);
  ck_assert_int_eq (hf_s3_config_retries (&cfg, "2x"), EINVAL);
  ck_assert_int_eq (hf_s3_config_retries (&cfg, ""), EINVAL);
  ck_assert_uint_eq (cfg.max_retries, 100);             /* unchanged */

  /* N retries: N + 1 attempts, also for 0 (which in the config would
   * mean the default). */
  hf_log_set_sink (log_quiet);
  for (i = 0; i < 2; i++) {
    ck_assert_int_eq (hf_s3_config_retries (&cfg, i ? "3" : "0"), 0);
    start_retries = cfg.max_retries;
    s = start (script, 1);
    ck_assert_int_ne (hf_objstore_head (s, "k", &info), 0);
    ck_assert_int_eq (requests, i ? 4 : 1);
    stop (s);
  }
  start_retries = 1;
  hf_log_set_sink (NULL);
}
END_TEST

static Suite *
s3_handles_suite (void)
{
  Suite *s = suite_create ("s3-handles");
  TCase *tc = tcase_create ("s3-handles");

  tcase_set_timeout (tc, 60);
  tcase_add_test (tc, test_folded_header);
  tcase_add_test (tc, test_connection_reused);
  tcase_add_test (tc, test_request_limits);
  suite_add_tcase (s, tc);
  return s;
}

int
main (void)
{
  return run_suite (s3_handles_suite ());
}
