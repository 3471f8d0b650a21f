/* LD_PRELOAD shim for the tests: it delays chosen calls, to widen a
 * window that a test must not depend on being short.
 *
 *   HF_LISTEN_DELAY_MS=N      listen(2) sleeps N ms first.  nbdkit binds
 *                             its Unix socket (the file appears) and
 *                             listens a moment later: a client started
 *                             on the file is refused in between
 *                             (test-corruption-matrix.sh).
 *   HF_RENAME_DELAY_MS=N      rename(2) to a path containing
 *   HF_RENAME_DELAY_MATCH=S   S sleeps N ms first: the directory store
 *                             lands every object by rename, so this
 *                             delays the landing of chosen objects
 *                             (test-nbd-metrics.sh: the writer lease).
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

static void
hf_shim_sleep (const char *var)
{
  const char *s = getenv (var);
  long ms = s ? strtol (s, NULL, 10) : 0;
  struct timespec ts;
  int saved = errno;

  if (ms <= 0)
    return;
  ts.tv_sec = ms / 1000;
  ts.tv_nsec = (ms % 1000) * 1000000L;
  while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
    ;
  errno = saved;
}

int
listen (int fd, int backlog)
{
  static int (*real_listen) (int, int);

  if (real_listen == NULL)
    real_listen = (int (*) (int, int)) dlsym (RTLD_NEXT, "listen");
  if (real_listen == NULL) {
    errno = ENOSYS;
    return -1;
  }
  hf_shim_sleep ("HF_LISTEN_DELAY_MS");
  return real_listen (fd, backlog);
}

int
rename (const char *from, const char *to)
{
  static int (*real_rename) (const char *, const char *);
  const char *match = getenv ("HF_RENAME_DELAY_MATCH");

  if (real_rename == NULL)
    real_rename = (int (*) (const char *, const char *))
      dlsym (RTLD_NEXT, "rename");
  if (real_rename == NULL) {
    errno = ENOSYS;
    return -1;
  }
  if (match && *match && strstr (to, match))
    hf_shim_sleep ("HF_RENAME_DELAY_MS");
  return real_rename (from, to);
}
