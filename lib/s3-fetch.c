/* hyperfile: fetching temporary credentials for the S3 store (see
 * s3-int.h for the map; lib/s3-creds.c chooses the source and decides
 * when to fetch).
 *
 * One function per source that hands out temporary credentials: STS
 * AssumeRoleWithWebIdentity (an unsigned form POST, XML answer), the
 * container endpoint and EC2 instance metadata (IMDSv2: PUT a session
 * token, GET the role, GET its credentials; JSON answers), and
 * credential_process (a command whose stdout is JSON).  Each answer is
 * bounded in size (HF_CRED_MAX) and time, and checked before use.
 *
 * Secrets (tokens, secret keys, the answers holding them) are wiped
 * before they are freed and never formatted into the error text these
 * functions return (the caller logs it).
 *
 * Lock rule: none; the caller holds no lock (hf_s3_cred_get releases
 * cred_lock around the fetch), and everything read from the store is
 * immutable (its provider).
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <libxml/tree.h>

#include "cleanup.h"
#include "objstore.h"
#include "s3-int.h"
#include "sigv4.h"
#include "strbuf.h"

extern char **environ;

/* The most a credential answer (JSON or XML) or a token file may hold. */
#define HF_CRED_MAX ((size_t) 64 * 1024)
/* credential_process: the most time it may take. */
#define HF_CRED_PROCESS_TIMEOUT_MS 60000

/* "2026-12-03T13:04:33Z", with optional fractional seconds and a "Z",
 * "+00:00" or "+0000" zone (STS, IMDS, the container endpoint and
 * credential_process all write UTC).  Returns 0 and *t, or EINVAL. */
int
hf_s3_parse_time (const char *s, int64_t *t)
{
  struct tm tm = { 0 };
  int n = 0;
  const char *p;

  if (s == NULL ||
      sscanf (s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
              &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
    return EINVAL;
  p = s + n;
  if (*p == '.')
    for (p++; *p >= '0' && *p <= '9'; p++)
      ;
  if (strcmp (p, "Z") != 0 && strcmp (p, "+00:00") != 0 &&
      strcmp (p, "+0000") != 0 && *p != '\0')
    return EINVAL;
  if (tm.tm_year < 1970 || tm.tm_mon < 1 || tm.tm_mon > 12 ||
      tm.tm_mday < 1 || tm.tm_mday > 31 || tm.tm_hour > 23 ||
      tm.tm_min > 59 || tm.tm_sec > 60)
    return EINVAL;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  *t = (int64_t) timegm (&tm);
  return 0;
}

/* Read a small file (a token) into a malloc'd string, trimmed.  Never
 * logs its content. */
static int
hf_s3_read_small (const char *file, char **out)
{
  FILE *fp = fopen (file, "r");
  char *buf;
  size_t n;

  if (fp == NULL)
    return errno;
  buf = malloc (HF_CRED_MAX + 1);
  if (buf == NULL) {
    fclose (fp);
    return ENOMEM;
  }
  n = fread (buf, 1, HF_CRED_MAX + 1, fp);
  fclose (fp);
  if (n > HF_CRED_MAX) {
    hf_s3_free_secret (buf);
    return EFBIG;
  }
  buf[n] = '\0';
  memmove (buf, hf_s3_trim (buf), strlen (hf_s3_trim (buf)) + 1);
  *out = buf;
  return 0;
}

/* ---- Fetching: HTTP ---- */

struct hf_s3_body {
  char *p;
  size_t len;
  bool too_big;
};

static size_t
hf_s3_body_cb (char *ptr, size_t size, size_t nmemb, void *opaque)
{
  struct hf_s3_body *b = opaque;
  size_t n = size * nmemb;
  char *q;

  if (b->len + n > HF_CRED_MAX) {
    b->too_big = true;
    return 0;
  }
  q = realloc (b->p, b->len + n + 1);
  if (q == NULL)
    return 0;
  b->p = q;
  memcpy (q + b->len, ptr, n);
  b->len += n;
  q[b->len] = '\0';
  return n;
}

/* One HTTP request for credentials: method, url, extra headers, body.
 * On 0 *status and *body (caller frees with hf_s3_free_secret) are set;
 * on a transport failure, EIO with why in err (no secret in it). */
static int
hf_s3_cred_http (const char *method, const char *url,
                 struct curl_slist *hl, const char *body, long timeout_s,
                 bool noproxy, long *status, char **out, char *err,
                 size_t errlen)
{
  struct hf_s3_body b = { 0 };
  char cerr[CURL_ERROR_SIZE] = "";
  CURLcode cc;
  CURL *c;

  c = curl_easy_init ();
  if (c == NULL)
    return ENOMEM;
  curl_easy_setopt (c, CURLOPT_URL, url);
  curl_easy_setopt (c, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt (c, CURLOPT_PROTOCOLS_STR, "http,https");
  curl_easy_setopt (c, CURLOPT_CONNECTTIMEOUT, timeout_s < 2 ? 1L : 2L);
  curl_easy_setopt (c, CURLOPT_TIMEOUT, timeout_s);
  curl_easy_setopt (c, CURLOPT_ERRORBUFFER, cerr);
  curl_easy_setopt (c, CURLOPT_WRITEFUNCTION, hf_s3_body_cb);
  curl_easy_setopt (c, CURLOPT_WRITEDATA, &b);
  if (noproxy)
    curl_easy_setopt (c, CURLOPT_NOPROXY, "*");
  if (hl)
    curl_easy_setopt (c, CURLOPT_HTTPHEADER, hl);
  if (strcmp (method, "PUT") == 0) {
    curl_easy_setopt (c, CURLOPT_CUSTOMREQUEST, "PUT");
    curl_easy_setopt (c, CURLOPT_POSTFIELDS, body ? body : "");
  }
  else if (strcmp (method, "POST") == 0)
    curl_easy_setopt (c, CURLOPT_POSTFIELDS, body ? body : "");
  cc = curl_easy_perform (c);
  if (cc == CURLE_OK)
    curl_easy_getinfo (c, CURLINFO_RESPONSE_CODE, status);
  curl_easy_cleanup (c);
  if (cc != CURLE_OK) {
    snprintf (err, errlen, "%s", b.too_big ? "the answer is too large"
              : cerr[0] ? cerr : curl_easy_strerror (cc));
    hf_s3_free_secret (b.p);
    return EIO;
  }
  if (b.p == NULL && (b.p = strdup ("")) == NULL)
    return ENOMEM;
  *out = b.p;
  return 0;
}

/* Credentials from a JSON document: the container endpoint and IMDS
 * write AccessKeyId, SecretAccessKey, Token, Expiration; a
 * credential_process Version 1, AccessKeyId, SecretAccessKey,
 * SessionToken and optionally Expiration. */
static int
hf_s3_cred_json (const char *text, bool process, struct hf_s3_cred **out,
                 char *err, size_t errlen)
{
  json_tokener *tk = json_tokener_new ();
  json_object *o, *v;
  const char *ak = NULL, *sk = NULL, *tok = NULL, *exp = NULL;
  int64_t expires = 0;
  int r = EINVAL;

  if (tk == NULL)
    return ENOMEM;
  o = json_tokener_parse_ex (tk, text, (int) strlen (text));
  json_tokener_free (tk);
  if (o == NULL || !json_object_is_type (o, json_type_object)) {
    snprintf (err, errlen, "the answer is not a JSON object");
    goto out;
  }
  if (process) {
    if (!json_object_object_get_ex (o, "Version", &v) ||
        json_object_get_int (v) != 1 ||
        !json_object_is_type (v, json_type_int)) {
      snprintf (err, errlen, "its output has no \"Version\": 1");
      goto out;
    }
  }
  else if (json_object_object_get_ex (o, "Code", &v) &&
           json_object_is_type (v, json_type_string) &&
           strcmp (json_object_get_string (v), "Success") != 0) {
    snprintf (err, errlen, "the answer says Code %.64s",
              json_object_get_string (v));
    goto out;
  }
#define HF_JSTR(name, dst)                                              \
  if (json_object_object_get_ex (o, name, &v) &&                        \
      json_object_is_type (v, json_type_string))                        \
    dst = json_object_get_string (v);
  HF_JSTR ("AccessKeyId", ak);
  HF_JSTR ("SecretAccessKey", sk);
  HF_JSTR (process ? "SessionToken" : "Token", tok);
  HF_JSTR ("Expiration", exp);
#undef HF_JSTR
  if (ak == NULL || *ak == '\0' || sk == NULL || *sk == '\0') {
    snprintf (err, errlen, "the answer lacks AccessKeyId or "
              "SecretAccessKey");
    goto out;
  }
  if (exp && hf_s3_parse_time (exp, &expires) != 0) {
    snprintf (err, errlen, "its Expiration is not an ISO 8601 UTC time");
    goto out;
  }
  if (exp == NULL && !process) {
    snprintf (err, errlen, "the answer has no Expiration");
    goto out;
  }
  r = ENOMEM;
  if ((*out = hf_s3_cred_new (ak, sk, tok, expires)) != NULL)
    r = 0;
 out:
  if (o) {
    /* Wipe the secrets json-c holds before freeing them. */
    static const char *const secret[] = {
      "SecretAccessKey", "Token", "SessionToken",
    };
    size_t i;

    for (i = 0; i < sizeof secret / sizeof secret[0]; i++)
      if (json_object_object_get_ex (o, secret[i], &v) &&
          json_object_is_type (v, json_type_string))
        memset ((char *) json_object_get_string (v), 0,
                (size_t) json_object_get_string_len (v));
    json_object_put (o);
  }
  return r;
}

/* ---- The sources that fetch ---- */

/* STS AssumeRoleWithWebIdentity (unsigned; the token is the proof). */
static int
hf_s3_fetch_web_identity (struct hf_s3 *s, struct hf_s3_cred **out,
                          char *err, size_t errlen)
{
  struct hf_s3_provider *p = &s->prov;
  char *token = NULL, *ans = NULL;
  CLEANUP_FREE char *arn = NULL, *name = NULL;
  struct hf_strbuf body = { 0 };
  struct curl_slist *hl = NULL;
  long status = 0;
  xmlDoc *doc = NULL;
  int r;

  r = hf_s3_read_small (p->token_file, &token);
  if (r) {
    snprintf (err, errlen, "web identity token file %s: %s", p->token_file,
              strerror (r));
    return r;
  }
  arn = hf_sigv4_uri_encode (p->role_arn, true);
  name = hf_sigv4_uri_encode (p->session_name, true);
  {
    char *tenc = hf_sigv4_uri_encode (token, true);

    hf_s3_free_secret (token);
    if (arn == NULL || name == NULL || tenc == NULL) {
      hf_s3_free_secret (tenc);
      return ENOMEM;
    }
    hf_strbuf_adds (&body, "Action=AssumeRoleWithWebIdentity"
                    "&Version=2011-06-15&RoleArn=");
    hf_strbuf_adds (&body, arn);
    hf_strbuf_adds (&body, "&RoleSessionName=");
    hf_strbuf_adds (&body, name);
    hf_strbuf_adds (&body, "&WebIdentityToken=");
    hf_strbuf_adds (&body, tenc);
    hf_s3_free_secret (tenc);
  }
  hl = curl_slist_append (NULL, "Content-Type: "
                          "application/x-www-form-urlencoded");
  if (body.oom || hl == NULL) {
    r = ENOMEM;
    goto out;
  }
  r = hf_s3_cred_http ("POST", p->url, hl, body.p, 10, false, &status,
                       &ans, err, errlen);
  if (r)
    goto out;
  doc = hf_s3_xml_parse (ans, strlen (ans));
  if (status != 200) {
    xmlNode *root = doc ? xmlDocGetRootElement (doc) : NULL, *n;
    CLEANUP_FREE char *code = NULL, *msg = NULL;

    /* <ErrorResponse><Error><Code/><Message/></Error> */
    for (n = root ? root->children : NULL; n; n = n->next)
      if (n->type == XML_ELEMENT_NODE &&
          xmlStrcmp (n->name, BAD_CAST "Error") == 0) {
        code = hf_s3_xml_strdup (n, "Code");
        msg = hf_s3_xml_strdup (n, "Message");
      }
    snprintf (err, errlen, "STS AssumeRoleWithWebIdentity at %s: HTTP "
              "%ld%s%.64s%s%.200s", p->url, status, code ? " " : "",
              code ? code : "", msg ? ": " : "", msg ? msg : "");
    r = status == 403 || status == 400 ? EACCES : EIO;
    goto out;
  }
  {
    xmlNode *n = doc ? xmlDocGetRootElement (doc) : NULL;
    const char *path[] = { "AssumeRoleWithWebIdentityResult", "Credentials" };
    size_t i;
    char *ak = NULL, *sk = NULL, *tok = NULL, *exp = NULL;
    int64_t expires = 0;

    for (i = 0; n && i < 2; i++) {
      xmlNode *c;

      for (c = n->children; c; c = c->next)
        if (c->type == XML_ELEMENT_NODE &&
            xmlStrcmp (c->name, BAD_CAST path[i]) == 0)
          break;
      n = c;
    }
    if (n) {
      ak = hf_s3_xml_strdup (n, "AccessKeyId");
      sk = hf_s3_xml_strdup (n, "SecretAccessKey");
      tok = hf_s3_xml_strdup (n, "SessionToken");
      exp = hf_s3_xml_strdup (n, "Expiration");
    }
    r = EIO;
    if (ak == NULL || sk == NULL || tok == NULL || exp == NULL ||
        !*ak || !*sk)
      snprintf (err, errlen, "STS AssumeRoleWithWebIdentity at %s: no "
                "Credentials in the answer", p->url);
    else if (hf_s3_parse_time (exp, &expires) != 0)
      snprintf (err, errlen, "STS AssumeRoleWithWebIdentity at %s: the "
                "Expiration is not an ISO 8601 UTC time", p->url);
    else
      r = (*out = hf_s3_cred_new (ak, sk, tok, expires)) ? 0 : ENOMEM;
    free (ak);
    hf_s3_free_secret (sk);
    hf_s3_free_secret (tok);
    free (exp);
  }
 out:
  if (doc)
    xmlFreeDoc (doc);
  hf_s3_free_secret (ans);
  if (body.p) {
    memset (body.p, 0, body.len);
    free (body.p);
  }
  curl_slist_free_all (hl);
  return r;
}

/* GET the container endpoint, with its authorization token. */
static int
hf_s3_fetch_container (struct hf_s3 *s, struct hf_s3_cred **out,
                       char *err, size_t errlen)
{
  struct hf_s3_provider *p = &s->prov;
  struct curl_slist *hl = NULL;
  char *tok = NULL, *ans = NULL, *line = NULL;
  long status = 0;
  int r;

  if (p->auth_token_file) {
    r = hf_s3_read_small (p->auth_token_file, &tok);
    if (r) {
      snprintf (err, errlen, "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE %s: "
                "%s", p->auth_token_file, strerror (r));
      return r;
    }
  }
  else if (p->auth_token && (tok = strdup (p->auth_token)) == NULL)
    return ENOMEM;
  if (tok) {
    if (strpbrk (tok, "\r\n")) {
      snprintf (err, errlen, "the container authorization token holds a "
                "line break");
      hf_s3_free_secret (tok);
      return EINVAL;
    }
    if (asprintf (&line, "Authorization: %s", tok) < 0) {
      hf_s3_free_secret (tok);
      return ENOMEM;
    }
    hf_s3_free_secret (tok);
    hl = curl_slist_append (NULL, line);
    hf_s3_free_secret (line);
    if (hl == NULL)
      return ENOMEM;
  }
  r = hf_s3_cred_http ("GET", p->url, hl, NULL, 5, true, &status, &ans,
                       err, errlen);
  curl_slist_free_all (hl);
  if (r)
    return r;
  if (status != 200) {
    snprintf (err, errlen, "HTTP %ld", status);
    r = status == 401 || status == 403 ? EACCES : EIO;
  }
  else
    r = hf_s3_cred_json (ans, false, out, err, errlen);
  hf_s3_free_secret (ans);
  return r;
}

/* IMDSv2: PUT /latest/api/token, then the role, then its credentials. */
static int
hf_s3_fetch_imds (struct hf_s3 *s, struct hf_s3_cred **out, char *err,
                  size_t errlen)
{
  struct hf_s3_provider *p = &s->prov;
  struct curl_slist *hl = NULL;
  CLEANUP_FREE char *url = NULL;
  char *tok = NULL, *ans = NULL, *hdr = NULL, *role, *e;
  long status = 0;
  int r;

  if (asprintf (&url, "%s/latest/api/token", p->url) < 0) {
    url = NULL;
    return ENOMEM;
  }
  hl = curl_slist_append (NULL, "X-aws-ec2-metadata-token-ttl-seconds: 21600");
  if (hl == NULL)
    return ENOMEM;
  r = hf_s3_cred_http ("PUT", url, hl, NULL, 1, true, &status, &tok, err,
                       errlen);
  curl_slist_free_all (hl);
  hl = NULL;
  if (r)
    goto out;
  if (status != 200 || *hf_s3_trim (tok) == '\0' || strpbrk (tok, "\r\n")) {
    snprintf (err, errlen, "instance metadata %s: HTTP %ld for a session "
              "token (IMDSv2)", url, status);
    r = EIO;
    goto out;
  }
  if (asprintf (&hdr, "X-aws-ec2-metadata-token: %s", hf_s3_trim (tok)) < 0) {
    hdr = NULL;
    r = ENOMEM;
    goto out;
  }
  if ((hl = curl_slist_append (NULL, hdr)) == NULL) {
    r = ENOMEM;
    goto out;
  }
  free (url);
  if (asprintf (&url, "%s/latest/meta-data/iam/security-credentials/",
                p->url) < 0) {
    url = NULL;
    r = ENOMEM;
    goto out;
  }
  r = hf_s3_cred_http ("GET", url, hl, NULL, 2, true, &status, &ans, err,
                       errlen);
  if (r)
    goto out;
  role = hf_s3_trim (ans);
  if ((e = strchr (role, '\n')) != NULL)
    *e = '\0';
  role = hf_s3_trim (role);
  if (status != 200 || *role == '\0' || strchr (role, '/')) {
    snprintf (err, errlen, "instance metadata %s: %s", url,
              status == 404 || (status == 200 && *role == '\0')
              ? "no IAM role is attached to this instance"
              : "HTTP error listing the role");
    if (status != 200 && status != 404)
      snprintf (err, errlen, "instance metadata %s: HTTP %ld", url, status);
    r = EIO;
    goto out;
  }
  {
    CLEANUP_FREE char *rolename = strdup (role);

    free (ans);
    ans = NULL;
    free (url);
    if (rolename == NULL ||
        asprintf (&url, "%s/latest/meta-data/iam/security-credentials/%s",
                  p->url, rolename) < 0) {
      url = NULL;
      r = ENOMEM;
      goto out;
    }
  }
  r = hf_s3_cred_http ("GET", url, hl, NULL, 2, true, &status, &ans, err,
                       errlen);
  if (r)
    goto out;
  if (status != 200) {
    snprintf (err, errlen, "instance metadata %s: HTTP %ld", url, status);
    r = EIO;
  }
  else if ((r = hf_s3_cred_json (ans, false, out, err, errlen)) != 0) {
    char why[200];

    snprintf (why, sizeof why, "%s", err);
    snprintf (err, errlen, "instance metadata %s: %s", url, why);
  }
 out:
  curl_slist_free_all (hl);
  hf_s3_free_secret (hdr);
  hf_s3_free_secret (tok);
  hf_s3_free_secret (ans);
  return r;
}

/* credential_process: run it with /bin/sh -c (its command line is the
 * profile's, never a secret), read its stdout (at most HF_CRED_MAX
 * bytes, within HF_CRED_PROCESS_TIMEOUT_MS), and parse it.  Its stderr
 * is ours. */
static int
hf_s3_fetch_process (struct hf_s3 *s, struct hf_s3_cred **out, char *err,
                     size_t errlen)
{
  struct hf_s3_provider *p = &s->prov;
  posix_spawn_file_actions_t fa;
  char *argv[] = { (char *) "sh", (char *) "-c", p->process, NULL };
  struct hf_s3_body b = { 0 };
  uint64_t deadline = hf_objstore_now_us ()
    + (uint64_t) HF_CRED_PROCESS_TIMEOUT_MS * 1000;
  int fds[2], status = 0, r;
  bool timed_out = false;
  pid_t pid;

  if (pipe2 (fds, O_CLOEXEC) == -1)
    return errno;
  posix_spawn_file_actions_init (&fa);
  posix_spawn_file_actions_adddup2 (&fa, fds[1], 1);
  posix_spawn_file_actions_addopen (&fa, 0, "/dev/null", O_RDONLY, 0);
  r = posix_spawn (&pid, "/bin/sh", &fa, NULL, argv, environ);
  posix_spawn_file_actions_destroy (&fa);
  close (fds[1]);
  if (r) {
    close (fds[0]);
    snprintf (err, errlen, "credential_process: /bin/sh: %s",
              strerror (r));
    return r;
  }
  for (;;) {
    struct pollfd pfd = { .fd = fds[0], .events = POLLIN };
    char buf[4096];
    uint64_t now = hf_objstore_now_us ();
    ssize_t n;

    if (now >= deadline) {
      timed_out = true;
      break;
    }
    if (poll (&pfd, 1, (int) ((deadline - now) / 1000) + 1) == -1) {
      if (errno == EINTR)
        continue;
      break;
    }
    if (pfd.revents == 0)
      continue;
    n = read (fds[0], buf, sizeof buf);
    if (n == -1 && errno == EINTR)
      continue;
    if (n <= 0)
      break;
    if (hf_s3_body_cb (buf, 1, (size_t) n, &b) != (size_t) n) {
      memset (buf, 0, sizeof buf);
      break;
    }
    memset (buf, 0, sizeof buf);
  }
  close (fds[0]);
  if (timed_out || b.too_big)
    kill (pid, SIGKILL);
  while (waitpid (pid, &status, 0) == -1 && errno == EINTR)
    ;
  if (timed_out)
    snprintf (err, errlen, "credential_process: no answer within "
              "%d s", HF_CRED_PROCESS_TIMEOUT_MS / 1000);
  else if (b.too_big)
    snprintf (err, errlen, "credential_process: its output is "
              "larger than %zu bytes", HF_CRED_MAX);
  else if (!WIFEXITED (status) || WEXITSTATUS (status) != 0)
    snprintf (err, errlen, "credential_process: %s %d",
              WIFEXITED (status) ? "exited with status" : "killed by signal",
              WIFEXITED (status) ? WEXITSTATUS (status) : WTERMSIG (status));
  else {
    r = hf_s3_cred_json (b.p ? b.p : "", true, out, err, errlen);
    if (r) {
      char why[200];

      snprintf (why, sizeof why, "%s", err);
      snprintf (err, errlen, "credential_process: %s", why);
    }
    hf_s3_free_secret (b.p);
    return r;
  }
  hf_s3_free_secret (b.p);
  return EIO;
}

/* Fetch fresh credentials from the store's source.  Logs nothing;
 * err says why on failure. */
int
hf_s3_fetch (struct hf_s3 *s, struct hf_s3_cred **out, char *err,
             size_t errlen)
{
  switch (s->prov.kind) {
  case HF_S3_SRC_WEB_IDENTITY:
    return hf_s3_fetch_web_identity (s, out, err, errlen);
  case HF_S3_SRC_PROCESS:
    return hf_s3_fetch_process (s, out, err, errlen);
  case HF_S3_SRC_CONTAINER:
    return hf_s3_fetch_container (s, out, err, errlen);
  case HF_S3_SRC_IMDS:
    return hf_s3_fetch_imds (s, out, err, errlen);
  case HF_S3_SRC_STATIC:
    break;
  }
  snprintf (err, errlen, "credentials from %s cannot be fetched again",
            s->prov.what);
  return EINVAL;
}
