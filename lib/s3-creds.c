/* hyperfile: the S3 store's credentials (see s3-int.h for the map).
 *
 * Where the access key, secret key and session token come from, first
 * that has them: the config (access-key=/secret-key=/session-token=
 * parameters), the environment (AWS_ACCESS_KEY_ID and friends), then
 * the profile (the config's, AWS_PROFILE or "default") in the shared
 * credentials file (AWS_SHARED_CREDENTIALS_FILE or ~/.aws/credentials).
 * Secrets are never formatted into a log line or an error.
 *
 * Lock rule: none; runs once, in hf_objstore_s3_open, before the store
 * is shared.
 */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cleanup.h"
#include "log.h"
#include "objstore.h"
#include "s3-int.h"

/* ---- Credentials ---- */

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

/* Read access key, secret and token of [profile] from an AWS shared
 * credentials file.  Missing file or section: nothing set, 0. */
static int
hf_s3_read_profile (const char *file, const char *profile, char **ak,
                    char **sk, char **tok)
{
  FILE *fp = fopen (file, "r");
  char line[4096];
  bool in = false;

  if (fp == NULL)
    return 0;
  while (fgets (line, sizeof line, fp)) {
    char *p = hf_s3_trim (line), *eq, **dst = NULL;

    if (*p == '#' || *p == ';' || *p == '\0')
      continue;
    if (*p == '[') {
      char *e = strchr (p, ']');

      if (e)
        *e = '\0';
      in = strcmp (hf_s3_trim (p + 1), profile) == 0;
      continue;
    }
    if (!in || (eq = strchr (p, '=')) == NULL)
      continue;
    *eq = '\0';
    p = hf_s3_trim (p);
    if (strcmp (p, "aws_access_key_id") == 0)
      dst = ak;
    else if (strcmp (p, "aws_secret_access_key") == 0)
      dst = sk;
    else if (strcmp (p, "aws_session_token") == 0)
      dst = tok;
    if (dst) {
      free (*dst);
      *dst = strdup (hf_s3_trim (eq + 1));
      if (*dst == NULL) {
        fclose (fp);
        return ENOMEM;
      }
    }
  }
  memset (line, 0, sizeof line);
  fclose (fp);
  return 0;
}

const char *
hf_s3_env (const char *name)
{
  const char *v = getenv (name);

  return v && *v ? v : NULL;
}

int
hf_s3_credentials (struct hf_s3 *s, const struct hf_s3_config *cfg)
{
  const char *ak = cfg->access_key, *sk = cfg->secret_key;
  const char *tok = cfg->session_token;
  const char *where = "the configuration";
  CLEANUP_FREE char *path = NULL;
  char *pak = NULL, *psk = NULL, *ptok = NULL;
  int err;

  if (ak == NULL && sk == NULL) {
    ak = hf_s3_env ("AWS_ACCESS_KEY_ID");
    sk = hf_s3_env ("AWS_SECRET_ACCESS_KEY");
    tok = tok ? tok : hf_s3_env ("AWS_SESSION_TOKEN");
    where = "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY";
  }
  if (ak == NULL && sk == NULL) {
    const char *profile = cfg->profile ? cfg->profile
      : hf_s3_env ("AWS_PROFILE") ? hf_s3_env ("AWS_PROFILE") : "default";
    const char *file = hf_s3_env ("AWS_SHARED_CREDENTIALS_FILE");

    if (file == NULL) {
      const char *home = hf_s3_env ("HOME");

      if (home && asprintf (&path, "%s/.aws/credentials", home) < 0)
        return ENOMEM;
      file = path;
    }
    if (file) {
      err = hf_s3_read_profile (file, profile, &pak, &psk, &ptok);
      if (err)
        goto out;
    }
    ak = pak;
    sk = psk;
    tok = tok ? tok : ptok;
    where = "the shared credentials file";
  }
  if (ak == NULL || sk == NULL || *ak == '\0' || *sk == '\0') {
    hf_error ("s3://%s: no credentials: set access-key and secret-key, "
              "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, or a profile "
              "in ~/.aws/credentials (AWS_PROFILE, "
              "AWS_SHARED_CREDENTIALS_FILE)%s%s", cfg->bucket,
              ak || sk ? "; only one of the pair was found in " : "",
              ak || sk ? where : "");
    err = EINVAL;
    goto out;
  }
  err = ENOMEM;
  if ((s->access_key = strdup (ak)) == NULL
      || (s->secret_key = strdup (sk)) == NULL
      || (tok && *tok && (s->session_token = strdup (tok)) == NULL))
    goto out;
  err = 0;
 out:
  free (pak);
  if (psk) {
    memset (psk, 0, strlen (psk));
    free (psk);
  }
  if (ptok) {
    memset (ptok, 0, strlen (ptok));
    free (ptok);
  }
  return err;
}
