/* hyperfile: libFuzzer harness for the S3 client's handling of what the
 * server answers (lib/s3-request.c, lib/s3-xml.c): status lines and headers (the
 * header callback: ETag, Content-Length, Content-Range, Last-Modified),
 * bodies (the write callback, ranged and whole), and the XML documents:
 * Error, ListBucketResult, InitiateMultipartUploadResult,
 * CompleteMultipartUpload's answer and DeleteResult.
 *
 * Nothing is taken out of the client: a server thread on 127.0.0.1
 * answers every request of one execution with the input's bytes,
 * verbatim (status line, headers, body), and closes the connection; the
 * harness runs one store operation through the real request path.
 * After 32 requests in one execution the server answers 403, which ends
 * retries and list paging that the input would otherwise make endless.
 *
 * Input: a mode byte, then the raw HTTP answer.  Mode bits 0-6 (modulo
 * 10) pick the operation (below); with bit 7 a HEAD answered by a plain
 * 200 runs first on the same store, so that an input can show a bug
 * that needs an earlier transfer (fuzz/corpus/s3/regress-folded-header:
 * libcurl 7.88 reusing a freed header of the previous transfer).
 * Invariants: no operation returns more bytes than asked for (a got
 * count within the buffer, a whole object within what was sent and the
 * caller's bound); listed keys come in increasing order, each under
 * the prefix asked for. */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "objstore.h"
#include "fuzz.h"

#define MAX_REQUESTS 32

static pthread_mutex_t srv_lock = PTHREAD_MUTEX_INITIALIZER;
static const uint8_t *srv_resp;         /* guarded by srv_lock */
static size_t srv_len;                  /* guarded by srv_lock */
static unsigned srv_requests;           /* guarded by srv_lock */
static bool srv_prelude;                /* guarded by srv_lock */
static int srv_fd = -1;
static uint16_t srv_port;

static const char srv_plain[] =
  "HTTP/1.1 200 OK\r\nETag: \"e\"\r\nContent-Length: 0\r\n\r\n";
static const char srv_forbidden[] =
  "HTTP/1.1 403 Forbidden\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";

/* Read the request: headers, then Content-Length bytes of body. */
static void
srv_read_request (int c)
{
  char buf[65536];
  size_t have = 0, need = 0;
  char *end = NULL;

  for (;;) {
    ssize_t n = read (c, buf + have, sizeof buf - 1 - have);

    if (n <= 0)
      return;
    have += (size_t) n;
    buf[have] = '\0';
    if (end == NULL && (end = strstr (buf, "\r\n\r\n")) != NULL) {
      char *cl = strcasestr (buf, "\r\ncontent-length:");

      need = (size_t) (end + 4 - buf);
      if (cl != NULL && cl < end)
        need += strtoull (cl + 17, NULL, 10);
    }
    if (end != NULL && have >= need)
      return;
    if (have == sizeof buf - 1) {
      /* A big body (multipart part): drop what was read. */
      if (end == NULL)
        return;
      need -= have;
      have = 0;
      end = buf;                 /* headers done */
      buf[0] = '\0';
    }
  }
}

static void *
srv_main (void *arg)
{
  (void) arg;
  for (;;) {
    int c = accept (srv_fd, NULL, NULL);
    struct timeval tv = { 2, 0 };
    const uint8_t *p;
    size_t len;

    if (c < 0)
      continue;
    setsockopt (c, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    srv_read_request (c);
    pthread_mutex_lock (&srv_lock);
    if (srv_prelude) {
      p = (const uint8_t *) srv_plain;
      len = sizeof srv_plain - 1;
      srv_prelude = false;
    }
    else if (++srv_requests > MAX_REQUESTS || srv_resp == NULL) {
      p = (const uint8_t *) srv_forbidden;
      len = sizeof srv_forbidden - 1;
    }
    else {
      p = srv_resp;
      len = srv_len;
    }
    while (len > 0) {
      ssize_t n = send (c, p, len, MSG_NOSIGNAL);
      if (n <= 0)
        break;
      p += n;
      len -= (size_t) n;
    }
    pthread_mutex_unlock (&srv_lock);
    shutdown (c, SHUT_WR);
    close (c);
  }
  return NULL;
}

static void
srv_start (void)
{
  struct sockaddr_in a = { .sin_family = AF_INET };
  socklen_t alen = sizeof a;
  pthread_t t;
  int one = 1;

  a.sin_addr.s_addr = htonl (INADDR_LOOPBACK);
  srv_fd = socket (AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (srv_fd < 0 ||
      setsockopt (srv_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
      bind (srv_fd, (struct sockaddr *) &a, sizeof a) < 0 ||
      listen (srv_fd, 64) < 0 ||
      getsockname (srv_fd, (struct sockaddr *) &a, &alen) < 0) {
    perror ("fuzz-s3: server socket");
    abort ();
  }
  srv_port = ntohs (a.sin_port);
  if (pthread_create (&t, NULL, srv_main, NULL) != 0)
    abort ();
  pthread_detach (t);
}

struct listed {
  unsigned n;
  char last[1024];
};

/* Keys come in order, each under the prefix asked for. */
static int
list_cb (void *opaque, const char *key, uint64_t size)
{
  struct listed *l = opaque;

  (void) size;
  FUZZ_CHECK (strncmp (key, "vol/", 4) == 0);
  FUZZ_CHECK (l->n == 0 || strcmp (key, l->last) > 0);
  snprintf (l->last, sizeof l->last, "%s", key);
  return ++l->n >= 10000 ? 1 : 0;
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static struct hf_objstore *s;
  static uint8_t body[2048];
  uint8_t buf[100];
  struct hf_objstore_info info;
  void *all = NULL;
  size_t got = 0, len = 0;
  struct listed n = { 0 };
  static const char *const keys[] = { "vol/a", "vol/b&<>\"'", "vol/c" };

  fuzz_quiet ();
  if (s == NULL) {
    struct hf_s3_config cfg = { 0 };
    char ep[64];

    srv_start ();
    snprintf (ep, sizeof ep, "http://127.0.0.1:%u", (unsigned) srv_port);
    cfg.bucket = "bucket";
    cfg.endpoint = ep;
    cfg.access_key = "AKIDEXAMPLE";
    cfg.secret_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY";
    cfg.tls_verify = true;
    cfg.connect_timeout_s = 5;
    cfg.request_timeout_s = 5;
    cfg.max_retries = 2;
    cfg.retry_base_ms = 1;
    cfg.retry_max_ms = 1;
    cfg.multipart_threshold = 1024;
    if (hf_objstore_s3_open (&cfg, &s) != 0)
      abort ();
    memset (body, 'b', sizeof body);
  }
  if (size < 1 || size > 1 << 20)
    return 0;

  pthread_mutex_lock (&srv_lock);
  srv_resp = data + 1;
  srv_len = size - 1;
  srv_requests = 0;
  srv_prelude = (data[0] & 0x80) != 0;
  pthread_mutex_unlock (&srv_lock);
  if (data[0] & 0x80)
    FUZZ_CHECK (hf_objstore_head (s, "vol/volume", &info) == 0);

  switch ((data[0] & 0x7f) % 10) {
  case 0:
    if (hf_objstore_get (s, "vol/seg/x", 0, sizeof buf, buf, &got) == 0)
      FUZZ_CHECK (got <= sizeof buf);
    break;
  case 1:
    if (hf_objstore_get (s, "vol/seg/x", 1000, sizeof buf, buf, &got) == 0)
      FUZZ_CHECK (got <= sizeof buf);
    break;
  case 2:
    if (hf_objstore_get_all (s, "vol/volume", HF_OBJSTORE_SMALL_MAX, &all,
                             &len) == 0) {
      FUZZ_CHECK (len <= size && len <= HF_OBJSTORE_SMALL_MAX);
      free (all);
    }
    break;
  case 3:
    hf_objstore_head (s, "vol/volume", &info);
    break;
  case 4:
    hf_objstore_put (s, "vol/seg/y", body, 100, HF_PUT_IF_NONE_MATCH);
    break;
  case 5:
    hf_objstore_put (s, "vol/seg/z", body, sizeof body, 0); /* multipart */
    break;
  case 6:
    hf_objstore_list (s, "vol/", NULL, list_cb, &n);
    break;
  case 7:
    hf_objstore_delete (s, "vol/a");
    break;
  case 8:
    hf_objstore_delete_many (s, keys, 3);
    break;
  case 9:
    hf_objstore_s3_check (s);
    break;
  }

  pthread_mutex_lock (&srv_lock);
  srv_resp = NULL;
  pthread_mutex_unlock (&srv_lock);
  return 0;
}
