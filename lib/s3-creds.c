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
 * This file chooses the source, reads the shared files and decides when
 * to fetch; lib/s3-fetch.c does the fetching.
 *
 * Secrets (secret keys, session tokens, web identity tokens, container
 * authorization tokens) are never formatted into a log line or an
 * error, and never put on a command line.
 *
 * Lock rule: cred_lock (a leaf) guards s->cred, refreshing, stale_gen,
 * next_try and fail_until; it is never held across a fetch.  One thread
 * fetches at a time (refreshing); the others go on with the current
 * credentials while they are valid, and wait for the fetch only when
 * they are not.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>


#include "cleanup.h"
#include "log.h"
#include "objstore.h"
#include "s3-int.h"

/* ---- Small helpers ---- */

const char *
hf_s3_env (const char *name)
{
  const char *v = getenv (name);

  return v && *v ? v : NULL;
}

void
hf_s3_free_secret (char *p)
{
  if (p) {
    memset (p, 0, strlen (p));
    free (p);
  }
}

char *
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

struct hf_s3_cred *
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
    hf_s3_cred_unref (c);
    return NULL;
  }
  return c;
}

/* Drop a reference; the caller holds cred_lock (or owns c alone). */
void
hf_s3_cred_unref (struct hf_s3_cred *c)
{
  if (c == NULL || --c->refs > 0)
    return;
  free (c->access_key);
  hf_s3_free_secret (c->secret_key);
  hf_s3_free_secret (c->session_token);
  free (c);
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
    /* A stale generation is fetched again at once, unless a fetch just
     * failed: then at most once a second, like the others. */
    if (!s->refreshing && s->prov.kind != HF_S3_SRC_STATIC
        && (now >= s->next_try || (stale && now >= s->fail_until))) {
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
        hf_s3_cred_unref (s->cred);
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
        s->next_try = s->fail_until = now + 1;
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
  hf_s3_cred_unref (c);
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
  hf_s3_cred_unref (s->cred);
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
