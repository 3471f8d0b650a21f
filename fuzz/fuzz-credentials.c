/* hyperfile: libFuzzer harness for the AWS shared credentials file
 * parser (hf_s3_read_profile, reached through hf_objstore_s3_open with
 * AWS_SHARED_CREDENTIALS_FILE, as the plugin and the tool reach it).
 *
 * Input: a mode byte (bit 0: profile "work" instead of "default"), then
 * the file.  No server is contacted.  Invariant: no log line written
 * while opening contains a secret of the file (the value of an
 * aws_secret_access_key or aws_session_token line, 8 bytes or more). */
#include <config.h>

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "objstore.h"
#include "fuzz.h"

static char logbuf[1 << 16];
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

/* Abort if the value of a secret line of the file is in the log. */
static void
check_no_secret (const char *file)
{
  const char *p = file;

  while (*p) {
    const char *e = strchr (p, '\n'), *eq;
    size_t n = e ? (size_t) (e - p) : strlen (p);
    char line[8192];

    if (n < sizeof line) {
      memcpy (line, p, n);
      line[n] = '\0';
      if ((strstr (line, "aws_secret_access_key") ||
           strstr (line, "aws_session_token")) &&
          (eq = strchr (line, '=')) != NULL) {
        char *v = (char *) eq + 1, *end;

        while (*v == ' ' || *v == '\t')
          v++;
        end = v + strlen (v);
        while (end > v && (end[-1] == ' ' || end[-1] == '\t' ||
                           end[-1] == '\r'))
          *--end = '\0';
        if (strlen (v) >= 8)
          FUZZ_CHECK (strstr (logbuf, v) == NULL);
      }
    }
    p += n;
    if (*p == '\n')
      p++;
  }
}

int
LLVMFuzzerTestOneInput (const uint8_t *data, size_t size)
{
  static int init;
  struct hf_s3_config cfg = { 0 };
  struct hf_objstore *s = NULL;
  char path[PATH_MAX], *file;

  if (!init) {
    unsetenv ("AWS_ACCESS_KEY_ID");
    unsetenv ("AWS_SECRET_ACCESS_KEY");
    unsetenv ("AWS_SESSION_TOKEN");
    unsetenv ("AWS_PROFILE");
    unsetenv ("AWS_REGION");
    unsetenv ("AWS_DEFAULT_REGION");
    unsetenv ("AWS_ENDPOINT_URL");
    init = 1;
  }
  if (size < 1 || size > 65536)
    return 0;
  file = malloc (size);
  if (file == NULL)
    return 0;
  memcpy (file, data + 1, size - 1);
  file[size - 1] = '\0';
  fuzz_write_file ("credentials", data + 1, size - 1, path);
  setenv ("AWS_SHARED_CREDENTIALS_FILE", path, 1);

  loglen = 0;
  logbuf[0] = '\0';
  hf_log_set_sink (capture);
  cfg.bucket = "bucket";
  cfg.endpoint = "http://127.0.0.1:9";
  cfg.tls_verify = true;
  cfg.profile = (data[0] & 1) ? "work" : NULL;
  if (hf_objstore_s3_open (&cfg, &s) == 0)
    hf_objstore_close (s);
  check_no_secret (file);
  free (file);
  return 0;
}
