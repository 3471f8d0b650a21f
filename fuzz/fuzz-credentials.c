/* hyperfile: libFuzzer harness for the AWS shared files parser
 * (hf_s3_read_profile and the choice of a source in lib/s3-creds.c,
 * reached through hf_objstore_s3_open with AWS_SHARED_CREDENTIALS_FILE
 * or AWS_CONFIG_FILE, as the plugin and the tool reach it).
 *
 * Input: a mode byte (bit 0: profile "work" instead of "default"; bit
 * 1: the file is the config file, where profiles are [profile NAME],
 * instead of the credentials file), then the file.  No server is
 * contacted and nothing is run: instance metadata is off, and the keys
 * that would run a command or read another file (credential_process,
 * web_identity_token_file) are renamed in the input before it is used.
 * Invariant: no log line written while opening contains a secret of the
 * file (the value of an aws_secret_access_key or aws_session_token
 * line, 8 bytes or more).
 *
 * A secret may also be a piece of the fixed text of a message ("a
 * profile in ~/.aws/credentials"), which is no leak.  So the file is
 * opened twice, as given and with every secret value overwritten, and
 * a secret counts as leaked only when it is in the first log and not
 * in the second. */
#include <config.h>

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objstore.h"
#include "fuzz.h"

static char logbuf[1 << 16], redacted_log[1 << 16];
static size_t loglen;

static void
capture (enum hf_log_level level, const char *msg)
{
  size_t n = strlen (msg);

  (void) level;
  if (loglen + n + 1 < sizeof logbuf) {
    memcpy (logbuf + loglen, msg, n);
    loglen += n;
    logbuf[loglen++] = '\n';
    logbuf[loglen] = '\0';
  }
}

/* Call fn (value, arg) for the value of every secret line of the
 * len bytes at file, as the parser sees it (a line ends at its first
 * NUL).  The value may be changed in place. */
static void
each_secret (char *file, size_t len, void (*fn) (char *v, void *arg),
             void *arg)
{
  char *p = file, *lim = file + len;

  while (p < lim) {
    char *e = memchr (p, '\n', (size_t) (lim - p)), *eq;
    size_t n = e ? (size_t) (e - p) : (size_t) (lim - p);
    char save = p[n];   /* file has a spare byte past len */

    p[n] = '\0';
    if ((strstr (p, "aws_secret_access_key") ||
         strstr (p, "aws_session_token")) &&
        (eq = strchr (p, '=')) != NULL) {
      char *v = eq + 1, *end;

      while (*v == ' ' || *v == '\t')
        v++;
      end = v + strlen (v);
      while (end > v && (end[-1] == ' ' || end[-1] == '\t' ||
                         end[-1] == '\r'))
        end--;
      if (end > v) {
        char c = *end;

        *end = '\0';
        fn (v, arg);
        *end = c;
      }
    }
    p[n] = save;
    p += n + 1;
  }
}

/* Overwrite a value with a letter it does not start with, so that the
 * redacted value is never the secret itself. */
static void
redact (char *v, void *arg)
{
  char c = v[0] == 'R' ? 'S' : 'R';

  (void) arg;
  memset (v, c, strlen (v));
}

/* Abort if a secret of 8 bytes or more is in the log of the file as
 * given but not in the log of the redacted file. */
static void
check_no_secret (char *v, void *arg)
{
  (void) arg;
  if (strlen (v) >= 8 && strstr (logbuf, v) != NULL)
    FUZZ_CHECK (strstr (redacted_log, v) != NULL);
}

/* Open the store on the credentials file and keep what it logs in
 * logbuf. */
static void
open_store (const char *file, size_t len, bool work, bool config)
{
  struct hf_s3_config cfg = { 0 };
  struct hf_objstore *s = NULL;
  char path[PATH_MAX];

  fuzz_write_file ("credentials", file, len, path);
  setenv (config ? "AWS_CONFIG_FILE" : "AWS_SHARED_CREDENTIALS_FILE", path,
          1);
  setenv (config ? "AWS_SHARED_CREDENTIALS_FILE" : "AWS_CONFIG_FILE",
          "/nonexistent/hyperfile-fuzz", 1);
  loglen = 0;
  logbuf[0] = '\0';
  hf_log_set_sink (capture);
  cfg.bucket = "bucket";
  cfg.endpoint = "http://127.0.0.1:9";
  cfg.tls_verify = true;
  cfg.profile = work ? "work" : NULL;
  if (hf_objstore_s3_open (&cfg, &s) == 0)
    hf_objstore_close (s);
}

/* Rename the keys that would run a command or open another file (the
 * parser matches keys exactly, so a changed last letter is another,
 * ignored key). */
static void
defuse (char *file, size_t len)
{
  static const char *const keys[] = {
    "credential_process", "web_identity_token_file",
  };
  size_t i;

  for (i = 0; i < sizeof keys / sizeof keys[0]; i++) {
    size_t k = strlen (keys[i]);
    char *p = file;

    while ((p = memmem (p, (size_t) (file + len - p), keys[i], k))) {
      p[k - 1] = 'X';
      p += k;
    }
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static int init;
  char *file;

  if (!init) {
    unsetenv ("AWS_ACCESS_KEY_ID");
    unsetenv ("AWS_SECRET_ACCESS_KEY");
    unsetenv ("AWS_SESSION_TOKEN");
    unsetenv ("AWS_PROFILE");
    unsetenv ("AWS_REGION");
    unsetenv ("AWS_DEFAULT_REGION");
    unsetenv ("AWS_ENDPOINT_URL");
    unsetenv ("AWS_ROLE_ARN");
    unsetenv ("AWS_WEB_IDENTITY_TOKEN_FILE");
    unsetenv ("AWS_CONTAINER_CREDENTIALS_RELATIVE_URI");
    unsetenv ("AWS_CONTAINER_CREDENTIALS_FULL_URI");
    setenv ("AWS_EC2_METADATA_DISABLED", "true", 1);
    /* A role_arn with a token file would ask STS: nobody listens. */
    setenv ("AWS_ENDPOINT_URL_STS", "http://127.0.0.1:9", 1);
    init = 1;
  }
  if (size < 1 || size > 65536)
    return 0;
  file = malloc (size);
  if (file == NULL)
    return 0;
  memcpy (file, data + 1, size - 1);
  file[size - 1] = '\0';
  defuse (file, size - 1);

  /* The redacted file first, then the file as given. */
  each_secret (file, size - 1, redact, NULL);
  open_store (file, size - 1, data[0] & 1, data[0] & 2);
  memcpy (redacted_log, logbuf, loglen + 1);

  memcpy (file, data + 1, size - 1);
  defuse (file, size - 1);
  open_store (file, size - 1, data[0] & 1, data[0] & 2);
  each_secret (file, size - 1, check_no_secret, NULL);
  free (file);
  return 0;
}
