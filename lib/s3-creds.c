/* hyperfile: the S3 store's credentials (see s3-int.h for the map).
 *
 * The chain, in the order the AWS SDKs document it (AWS SDKs and Tools
 * Reference Guide, "standardized credential providers"); the first
 * source that is configured is used, and only it:
 *
 *   1. the config: access-key=/secret-key=/session-token= parameters;
 *   2. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
 *      AWS_SESSION_TOKEN;
 *   3. web identity: AWS_WEB_IDENTITY_TOKEN_FILE + AWS_ROLE_ARN (and
 *      AWS_ROLE_SESSION_NAME), exchanged with STS
 *      AssumeRoleWithWebIdentity (endpoint AWS_ENDPOINT_URL_STS, else
 *      https://sts.REGION.amazonaws.com);
 *   4. the profile (the config's profile=, AWS_PROFILE or "default") in
 *      the shared files (AWS_SHARED_CREDENTIALS_FILE or
 *      ~/.aws/credentials, AWS_CONFIG_FILE or ~/.aws/config, where a
 *      profile is [profile NAME] and the credentials file wins a key
 *      both set): role_arn with web_identity_token_file (STS as in 3),
 *      static keys, then credential_process (its JSON on stdout).
 *      role_arn with source_profile or credential_source, and SSO, are
 *      refused as not supported;
 *   5. container credentials: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI
 *      (on http://169.254.170.2) or AWS_CONTAINER_CREDENTIALS_FULL_URI
 *      (https, or a loopback or the ECS/EKS link-local address), with
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE or
 *      AWS_CONTAINER_AUTHORIZATION_TOKEN as the Authorization header;
 *   6. EC2 instance metadata, IMDSv2 only (PUT a session token, then GET
 *      the role's credentials), unless AWS_EC2_METADATA_DISABLED=true;
 *      endpoint AWS_EC2_METADATA_SERVICE_ENDPOINT, else
 *      http://169.254.169.254.
 *
 * A profile named explicitly (profile=, AWS_PROFILE) that none of the
 * files has is an error, as in the SDKs.  Sources 3, 4 (STS and
 * credential_process) 5 and 6 give temporary credentials with an
 * Expiration; they are fetched again ahead of it (hf_s3_cred_get).
 *
 * Secrets (secret keys, session tokens, web identity tokens, container
 * authorization tokens) are never formatted into a log line or an
 * error, and never put on a command line.
 *
 * Lock rule: cred_lock (a leaf) guards s->cred, refreshing, stale_gen
 * and next_try; it is never held across a fetch.  One thread fetches at
 * a time (refreshing); the others go on with the current credentials
 * while they are valid, and wait for the fetch only when they are not.
 */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <json-c/json.h>
#include <libxml/tree.h>

#include "cleanup.h"
#include "log.h"
#include "objstore.h"
#include "s3-int.h"
#include "sigv4.h"
#include "strbuf.h"

extern char **environ;

/* The most a credential answer (JSON or XML) or a token file may hold. */
#define HF_CRED_MAX ((size_t) 64 * 1024)
/* credential_process: the most time it may take. */
#define HF_CRED_PROCESS_TIMEOUT_MS 60000

/* ---- Small helpers ---- */

const char *
hf_s3_env (const char *name)
{
  const char *v = getenv (name);

  return v && *v ? v : NULL;
}

static void
hf_s3_free_secret (char *p)
{
  if (p) {
    memset (p, 0, strlen (p));
    free (p);
  }
}

static char *
hf_s3_trim (char *p)
{
  char *e;

  while (*p == ' ' || *p == '\t')
    p++;
  e = p + strlen (p);
  while (e > p && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\n'
                   || e[-1] == '\r'))
    *--e = '\0';
  return p;
}

static bool
hf_s3_env_true (const char *name)
{
  const char *v = hf_s3_env (name);

  return v && strcasecmp (v, "true") == 0;
}

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

static struct hf_s3_cred *
hf_s3_cred_new (const char *ak, const char *sk, const char *tok,
                int64_t expires)
{
  struct hf_s3_cred *c = calloc (1, sizeof *c);

  if (c == NULL)
    return NULL;
  c->refs = 1;
  c->expires = expires;
  c->fetched = (int64_t) time (NULL);
  if ((c->access_key = strdup (ak)) == NULL ||
      (c->secret_key = strdup (sk)) == NULL ||
      (tok && *tok && (c->session_token = strdup (tok)) == NULL)) {
    hf_s3_cred_unref_locked (c);
    return NULL;
  }
  return c;
}

/* Drop a reference; the caller holds cred_lock (or owns c alone). */
void
hf_s3_cred_unref_locked (struct hf_s3_cred *c)
{
  if (c == NULL || --c->refs > 0)
    return;
  free (c->access_key);
  hf_s3_free_secret (c->secret_key);
  hf_s3_free_secret (c->session_token);
  free (c);
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

/* ---- The shared files ---- */

/* What a profile says, from both files.  Secrets are wiped on free. */
struct hf_s3_profile {
  const char *name;
  bool found;
  char *ak, *sk, *tok;
  char *region;
  char *process;
  char *role_arn, *source_profile, *credential_source;
  char *web_identity_token_file, *role_session_name;
  bool sso;
  char where[512];              /* "profile NAME in FILE" */
};

static void
hf_s3_profile_free (struct hf_s3_profile *p)
{
  free (p->ak);
  hf_s3_free_secret (p->sk);
  hf_s3_free_secret (p->tok);
  free (p->region);
  free (p->process);
  free (p->role_arn);
  free (p->source_profile);
  free (p->credential_source);
  free (p->web_identity_token_file);
  free (p->role_session_name);
}

/* Read the keys of profile p->name from one shared file.  In the config
 * file a profile is [profile NAME] (and the default one also
 * [default]); in the credentials file [NAME].  A later value replaces
 * an earlier one.  Missing file: nothing set, 0. */
static int
hf_s3_read_profile (const char *file, bool config, struct hf_s3_profile *pr)
{
  FILE *fp = fopen (file, "r");
  char line[4096];
  bool in = false;
  int err = 0;

  if (fp == NULL)
    return 0;
  while (fgets (line, sizeof line, fp)) {
    char *p = hf_s3_trim (line), *eq, **dst = NULL;

    if (*p == '#' || *p == ';' || *p == '\0')
      continue;
    if (*p == '[') {
      char *e = strchr (p, ']'), *name;

      if (e)
        *e = '\0';
      name = hf_s3_trim (p + 1);
      if (config && strncmp (name, "profile", 7) == 0 &&
          (name[7] == ' ' || name[7] == '\t'))
        in = strcmp (hf_s3_trim (name + 8), pr->name) == 0;
      else
        in = strcmp (name, pr->name) == 0 &&
          (!config || strcmp (name, "default") == 0);
      if (in && !pr->found) {
        pr->found = true;
        snprintf (pr->where, sizeof pr->where, "profile %s in %s",
                  pr->name, file);
      }
      continue;
    }
    if (!in || (eq = strchr (p, '=')) == NULL)
      continue;
    *eq = '\0';
    p = hf_s3_trim (p);
    if (strcmp (p, "aws_access_key_id") == 0)
      dst = &pr->ak;
    else if (strcmp (p, "aws_secret_access_key") == 0)
      dst = &pr->sk;
    else if (strcmp (p, "aws_session_token") == 0)
      dst = &pr->tok;
    else if (strcmp (p, "region") == 0)
      dst = &pr->region;
    else if (strcmp (p, "credential_process") == 0)
      dst = &pr->process;
    else if (strcmp (p, "role_arn") == 0)
      dst = &pr->role_arn;
    else if (strcmp (p, "source_profile") == 0)
      dst = &pr->source_profile;
    else if (strcmp (p, "credential_source") == 0)
      dst = &pr->credential_source;
    else if (strcmp (p, "web_identity_token_file") == 0)
      dst = &pr->web_identity_token_file;
    else if (strcmp (p, "role_session_name") == 0)
      dst = &pr->role_session_name;
    else if (strncmp (p, "sso_", 4) == 0)
      pr->sso = true;
    if (dst) {
      char *v = hf_s3_trim (eq + 1);

      hf_s3_free_secret (*dst);
      *dst = NULL;
      if (*v && (*dst = strdup (v)) == NULL) {
        err = ENOMEM;
        break;
      }
    }
  }
  memset (line, 0, sizeof line);
  fclose (fp);
  return err;
}

/* The file named by env, else ~/.aws/NAME.  Caller frees; NULL with 0
 * when there is no home. */
static int
hf_s3_shared_file (const char *env, const char *name, char **out)
{
  const char *f = hf_s3_env (env), *home;

  *out = NULL;
  if (f)
    return (*out = strdup (f)) ? 0 : ENOMEM;
  home = hf_s3_env ("HOME");
  if (home && asprintf (out, "%s/.aws/%s", home, name) < 0) {
    *out = NULL;
    return ENOMEM;
  }
  return 0;
}

/* Load the profile the config names (or AWS_PROFILE, or "default")
 * from the config file, then the credentials file over it. */
static int
hf_s3_profile_load (const struct hf_s3_config *cfg,
                    struct hf_s3_profile *pr)
{
  CLEANUP_FREE char *conf = NULL, *creds = NULL;
  int err;

  memset (pr, 0, sizeof *pr);
  pr->name = cfg->profile ? cfg->profile
    : hf_s3_env ("AWS_PROFILE") ? hf_s3_env ("AWS_PROFILE") : "default";
  if ((err = hf_s3_shared_file ("AWS_CONFIG_FILE", "config", &conf)) ||
      (err = hf_s3_shared_file ("AWS_SHARED_CREDENTIALS_FILE",
                                "credentials", &creds)))
    return err;
  if (conf && (err = hf_s3_read_profile (conf, true, pr)))
    return err;
  if (creds) {
    struct hf_s3_profile c = { .name = pr->name };

    if ((err = hf_s3_read_profile (creds, false, &c))) {
      hf_s3_profile_free (&c);
      return err;
    }
    /* The credentials file wins a key both files set. */
#define HF_TAKE(f) if (c.f) { hf_s3_free_secret (pr->f); pr->f = c.f; c.f = NULL; }
    HF_TAKE (ak);
    HF_TAKE (sk);
    HF_TAKE (tok);
    HF_TAKE (region);
    HF_TAKE (process);
    HF_TAKE (role_arn);
    HF_TAKE (source_profile);
    HF_TAKE (credential_source);
    HF_TAKE (web_identity_token_file);
    HF_TAKE (role_session_name);
#undef HF_TAKE
    pr->sso |= c.sso;
    if (c.found) {
      pr->found = true;
      memcpy (pr->where, c.where, sizeof pr->where);
    }
    hf_s3_profile_free (&c);
  }
  return 0;
}

int
hf_s3_profile_region (const struct hf_s3_config *cfg, char **region)
{
  struct hf_s3_profile pr;
  int err;

  *region = NULL;
  err = hf_s3_profile_load (cfg, &pr);
  if (err == 0 && pr.region) {
    *region = pr.region;
    pr.region = NULL;
  }
  hf_s3_profile_free (&pr);
  return err;
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
    if (json_object_object_get_ex (o, "SecretAccessKey", &v) &&
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
static int
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

/* ---- Refresh ---- */

/* How long before its expiry a credential is fetched again by one
 * thread while the others go on (advisory), and how long before it
 * they all wait for the new one (mandatory).  The SDKs use 15 and 10
 * minutes for hour-long credentials; short-lived ones (tests, short
 * STS sessions) get a quarter and a tenth of their lifetime. */
static int64_t
hf_s3_advisory (const struct hf_s3_cred *c)
{
  int64_t life = c->expires - c->fetched;

  return life / 4 < 900 ? (life / 4 > 0 ? life / 4 : 0) : 900;
}

static int64_t
hf_s3_mandatory (const struct hf_s3_cred *c)
{
  int64_t life = c->expires - c->fetched;

  return life / 10 < 60 ? (life / 10 > 0 ? life / 10 : 0) : 60;
}

struct hf_s3_cred *
hf_s3_cred_get (struct hf_s3 *s)
{
  struct hf_s3_cred *c;

  pthread_mutex_lock (&s->cred_lock);
  for (;;) {
    int64_t now = (int64_t) time (NULL);
    bool stale, expiring, due;

    c = s->cred;
    if (c->expires == 0 && c->gen > s->stale_gen)
      break;                    /* never expires */
    stale = c->gen <= s->stale_gen;         /* the server said expired */
    expiring = c->expires != 0 && now >= c->expires - hf_s3_mandatory (c);
    due = stale || expiring
      || (c->expires != 0 && now >= c->expires - hf_s3_advisory (c));
    if (!due)
      break;
    if (!s->refreshing && s->prov.kind != HF_S3_SRC_STATIC
        && (now >= s->next_try || stale)) {
      struct hf_s3_cred *n = NULL;
      char err[512] = "";
      uint64_t gen = c->gen;
      int r;

      s->refreshing = true;
      pthread_mutex_unlock (&s->cred_lock);
      r = hf_s3_fetch (s, &n, err, sizeof err);
      pthread_mutex_lock (&s->cred_lock);
      s->refreshing = false;
      now = (int64_t) time (NULL);
      if (r == 0) {
        n->gen = gen + 1;
        hf_s3_cred_unref_locked (s->cred);
        s->cred = n;
        /* A source may hand out the same credentials again until it
         * rotates them (IMDS does, minutes before the end): ask again
         * no sooner than this. */
        s->next_try = now + (hf_s3_advisory (n) / 8 > 1
                             ? hf_s3_advisory (n) / 8 : 1);
        hf_debug ("s3", "credentials from %s refreshed (valid for %"
                  PRId64 " s)", s->prov.what,
                  n->expires ? n->expires - now : (int64_t) -1);
      }
      else {
        /* Keep the old ones while they last; try again shortly. */
        s->next_try = now + 1;
        hf_warn ("s3://%s: refreshing credentials from %s failed: %s",
                 s->bucket, s->prov.what, err);
      }
      pthread_cond_broadcast (&s->cred_cond);
      if (r == 0)
        continue;
      c = s->cred;
      break;                    /* use what we have: the request will say
                                   whether it still works */
    }
    if (s->refreshing && (stale || expiring)) {
      pthread_cond_wait (&s->cred_cond, &s->cred_lock);
      continue;
    }
    break;                      /* someone else refreshes, or a failed
                                   refresh waits for next_try */
  }
  c->refs++;
  pthread_mutex_unlock (&s->cred_lock);
  return c;
}

void
hf_s3_cred_put (struct hf_s3 *s, struct hf_s3_cred *c)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->cred_lock);
  hf_s3_cred_unref_locked (c);
}

bool
hf_s3_cred_expired (struct hf_s3 *s, struct hf_s3_cred *c)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&s->cred_lock);
  if (s->prov.kind == HF_S3_SRC_STATIC)
    return false;
  if (c->gen > s->stale_gen)
    s->stale_gen = c->gen;
  return true;
}

/* ---- Choosing the source ---- */

/* Is the FULL_URI's host one the container provider may use over plain
 * http: a loopback address or the ECS / EKS link-local one? */
static bool
hf_s3_container_host_ok (const char *url)
{
  const char *h, *e;
  char host[256];
  size_t n;

  if (strncmp (url, "https://", 8) == 0)
    return true;
  if (strncmp (url, "http://", 7) != 0)
    return false;
  h = url + 7;
  if (*h == '[') {
    e = strchr (h, ']');
    if (e == NULL)
      return false;
    n = (size_t) (e - h - 1);
    h++;
  }
  else
    n = strcspn (h, ":/?#");
  if (n == 0 || n >= sizeof host)
    return false;
  memcpy (host, h, n);
  host[n] = '\0';
  return strncmp (host, "127.", 4) == 0 || strcmp (host, "localhost") == 0
    || strcmp (host, "::1") == 0 || strcmp (host, "169.254.170.2") == 0
    || strcmp (host, "169.254.170.23") == 0
    || strcasecmp (host, "fd00:ec2::23") == 0;
}

static void
hf_s3_provider_free (struct hf_s3_provider *p)
{
  free (p->what);
  free (p->role_arn);
  free (p->token_file);
  free (p->session_name);
  free (p->url);
  free (p->process);
  hf_s3_free_secret (p->auth_token);
  free (p->auth_token_file);
  memset (p, 0, sizeof *p);
}

void
hf_s3_creds_free (struct hf_s3 *s)
{
  hf_s3_cred_unref_locked (s->cred);
  s->cred = NULL;
  hf_s3_provider_free (&s->prov);
  pthread_cond_destroy (&s->cred_cond);
  pthread_mutex_destroy (&s->cred_lock);
}

static int
hf_s3_set_web_identity (struct hf_s3 *s, const char *arn, const char *file,
                        const char *name, const char *what)
{
  struct hf_s3_provider *p = &s->prov;
  const char *ep = hf_s3_env ("AWS_ENDPOINT_URL_STS");

  p->kind = HF_S3_SRC_WEB_IDENTITY;
  if ((p->role_arn = strdup (arn)) == NULL ||
      (p->token_file = strdup (file)) == NULL ||
      (p->what = strdup (what)) == NULL)
    return ENOMEM;
  if (name)
    p->session_name = strdup (name);
  else if (asprintf (&p->session_name, "hyperfile-%lld",
                     (long long) time (NULL)) < 0)
    p->session_name = NULL;
  if (p->session_name == NULL)
    return ENOMEM;
  if (ep) {
    if (hf_objstore_check_url ("AWS_ENDPOINT_URL_STS", ep) != 0)
      return EINVAL;
    p->url = strdup (ep);
  }
  else if (asprintf (&p->url, "https://sts.%s.amazonaws.com/",
                     s->region) < 0)
    p->url = NULL;
  return p->url ? 0 : ENOMEM;
}

/* Pick the source (the top of the file has the order) and fill s->prov;
 * static credentials go straight into *cred. */
static int
hf_s3_choose (struct hf_s3 *s, const struct hf_s3_config *cfg,
              struct hf_s3_profile *pr, struct hf_s3_cred **cred)
{
  struct hf_s3_provider *p = &s->prov;
  const char *ak, *sk, *tok, *v;
  bool named = cfg->profile || hf_s3_env ("AWS_PROFILE");
  int err;

  /* 1. The config. */
  ak = cfg->access_key;
  sk = cfg->secret_key;
  tok = cfg->session_token;
  if (ak || sk) {
    p->what = strdup ("the access-key and secret-key parameters");
    goto fixed;
  }
  /* 2. The environment. */
  ak = hf_s3_env ("AWS_ACCESS_KEY_ID");
  sk = hf_s3_env ("AWS_SECRET_ACCESS_KEY");
  if (ak || sk) {
    tok = hf_s3_env ("AWS_SESSION_TOKEN");
    p->what = strdup ("AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY");
    goto fixed;
  }
  /* 3. Web identity from the environment. */
  v = hf_s3_env ("AWS_WEB_IDENTITY_TOKEN_FILE");
  if (v && hf_s3_env ("AWS_ROLE_ARN"))
    return hf_s3_set_web_identity (s, hf_s3_env ("AWS_ROLE_ARN"), v,
                                   hf_s3_env ("AWS_ROLE_SESSION_NAME"),
                                   "AWS_WEB_IDENTITY_TOKEN_FILE/"
                                   "AWS_ROLE_ARN (STS)");
  /* 4. The profile. */
  if (pr->found) {
    if (pr->role_arn) {
      if (pr->source_profile || pr->credential_source ||
          pr->web_identity_token_file == NULL) {
        hf_error ("s3://%s: %s: role_arn with %s is not supported (only "
                  "with web_identity_token_file); give the role's "
                  "credentials another way (credential_process = aws "
                  "configure export-credentials --profile %s, or the "
                  "environment)", s->bucket, pr->where,
                  pr->source_profile ? "source_profile"
                  : pr->credential_source ? "credential_source"
                  : "neither source_profile nor web_identity_token_file",
                  pr->name);
        return EINVAL;
      }
      return hf_s3_set_web_identity (s, pr->role_arn,
                                     pr->web_identity_token_file,
                                     pr->role_session_name, pr->where);
    }
    if (pr->ak || pr->sk) {
      ak = pr->ak;
      sk = pr->sk;
      tok = pr->tok;
      p->what = strdup (pr->where);
      goto fixed;
    }
    if (pr->process) {
      p->kind = HF_S3_SRC_PROCESS;
      if ((p->process = strdup (pr->process)) == NULL ||
          (p->what = strdup (pr->where)) == NULL)
        return ENOMEM;
      return 0;
    }
    if (pr->sso) {
      hf_error ("s3://%s: %s: IAM Identity Center (sso_*) profiles are "
                "not supported; use credential_process = aws configure "
                "export-credentials --profile %s", s->bucket, pr->where,
                pr->name);
      return EINVAL;
    }
  }
  else if (named) {
    CLEANUP_FREE char *conf = NULL, *creds = NULL;

    hf_s3_shared_file ("AWS_CONFIG_FILE", "config", &conf);
    hf_s3_shared_file ("AWS_SHARED_CREDENTIALS_FILE", "credentials", &creds);
    hf_error ("s3://%s: profile %s (%s) is in neither %s nor %s", s->bucket,
              pr->name, cfg->profile ? "profile=" : "AWS_PROFILE",
              creds ? creds : "~/.aws/credentials",
              conf ? conf : "~/.aws/config");
    return EINVAL;
  }
  /* 5. Container credentials. */
  v = hf_s3_env ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
  if (v || hf_s3_env ("AWS_CONTAINER_CREDENTIALS_FULL_URI")) {
    p->kind = HF_S3_SRC_CONTAINER;
    if (v) {
      if (*v != '/') {
        hf_error ("s3://%s: AWS_CONTAINER_CREDENTIALS_RELATIVE_URI must "
                  "start with '/'", s->bucket);
        return EINVAL;
      }
      if (asprintf (&p->url, "http://169.254.170.2%s", v) < 0)
        p->url = NULL;
    }
    else {
      v = hf_s3_env ("AWS_CONTAINER_CREDENTIALS_FULL_URI");
      if (hf_objstore_check_url ("AWS_CONTAINER_CREDENTIALS_FULL_URI", v))
        return EINVAL;
      if (!hf_s3_container_host_ok (v)) {
        hf_error ("s3://%s: AWS_CONTAINER_CREDENTIALS_FULL_URI %s: over "
                  "http only a loopback address, 169.254.170.2, "
                  "169.254.170.23 or fd00:ec2::23 is allowed (or use "
                  "https)", s->bucket, v);
        return EINVAL;
      }
      p->url = strdup (v);
    }
    if (p->url == NULL)
      return ENOMEM;
    if ((v = hf_s3_env ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE")) != NULL)
      p->auth_token_file = strdup (v);
    else if ((v = hf_s3_env ("AWS_CONTAINER_AUTHORIZATION_TOKEN")) != NULL)
      p->auth_token = strdup (v);
    if (v && p->auth_token_file == NULL && p->auth_token == NULL)
      return ENOMEM;
    if (asprintf (&p->what, "the container credentials endpoint %s",
                  p->url) < 0)
      p->what = NULL;
    return p->what ? 0 : ENOMEM;
  }
  /* 6. EC2 instance metadata. */
  if (!hf_s3_env_true ("AWS_EC2_METADATA_DISABLED")) {
    size_t n;

    v = hf_s3_env ("AWS_EC2_METADATA_SERVICE_ENDPOINT");
    if (v && hf_objstore_check_url ("AWS_EC2_METADATA_SERVICE_ENDPOINT", v))
      return EINVAL;
    p->kind = HF_S3_SRC_IMDS;
    if ((p->url = strdup (v ? v : "http://169.254.169.254")) == NULL ||
        (p->what = strdup ("EC2 instance metadata (IMDSv2)")) == NULL)
      return ENOMEM;
    n = strlen (p->url);
    while (n > 0 && p->url[n - 1] == '/')
      p->url[--n] = '\0';
    return 0;
  }
  hf_error ("s3://%s: no credentials: set access-key and secret-key, "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, "
            "AWS_WEB_IDENTITY_TOKEN_FILE and AWS_ROLE_ARN, a profile in "
            "~/.aws/credentials or ~/.aws/config (AWS_PROFILE, "
            "AWS_SHARED_CREDENTIALS_FILE, AWS_CONFIG_FILE), or container "
            "credentials (AWS_EC2_METADATA_DISABLED is set, so instance "
            "metadata is not asked)", s->bucket);
  return EINVAL;

 fixed:
  if (p->what == NULL)
    return ENOMEM;
  if (ak == NULL || sk == NULL || *ak == '\0' || *sk == '\0') {
    hf_error ("s3://%s: incomplete credentials: only one of the access "
              "key and the secret key was found in %s", s->bucket, p->what);
    return EINVAL;
  }
  p->kind = HF_S3_SRC_STATIC;
  err = ENOMEM;
  if ((*cred = hf_s3_cred_new (ak, sk, tok, 0)) != NULL)
    err = 0;
  return err;
}

int
hf_s3_credentials (struct hf_s3 *s, const struct hf_s3_config *cfg)
{
  struct hf_s3_profile pr;
  struct hf_s3_cred *c = NULL;
  char err[512] = "";
  int r;

  r = hf_s3_profile_load (cfg, &pr);
  if (r == 0)
    r = hf_s3_choose (s, cfg, &pr, &c);
  hf_s3_profile_free (&pr);
  if (r)
    return r;
  if (c == NULL) {
    r = hf_s3_fetch (s, &c, err, sizeof err);
    if (r) {
      if (s->prov.kind == HF_S3_SRC_IMDS)
        hf_error ("s3://%s: no credentials: none in the parameters, the "
                  "environment or the shared files, no container "
                  "credentials, and EC2 instance metadata gave none (%s); "
                  "set AWS_EC2_METADATA_DISABLED=true when not on EC2",
                  s->bucket, err);
      else
        hf_error ("s3://%s: credentials from %s: %s", s->bucket,
                  s->prov.what, err);
      return r == ENOMEM ? ENOMEM : r == EACCES ? EACCES : EINVAL;
    }
    hf_debug ("s3", "credentials from %s (valid for %" PRId64 " s)",
              s->prov.what, c->expires ? c->expires - (int64_t) time (NULL)
              : (int64_t) -1);
  }
  else
    hf_debug ("s3", "credentials from %s", s->prov.what);
  c->gen = 1;
  s->cred = c;
  return 0;
}
