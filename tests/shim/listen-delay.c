/* LD_PRELOAD shim for the tests: listen(2) sleeps HF_LISTEN_DELAY_MS
 * milliseconds first.  nbdkit binds its Unix socket, so the socket file
 * exists, and listens a moment later: a test that connects as soon as
 * the file appears is refused in that window.  The shim widens the
 * window so that a test can prove it waits for the right sign (nbdkit's
 * -P pidfile, written after listen) and not for the file.
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <time.h>

int
listen (int fd, int backlog)
{
  static int (*real_listen) (int, int);
  const char *s = getenv ("HF_LISTEN_DELAY_MS");
  long ms = s ? strtol (s, NULL, 10) : 0;
  struct timespec ts;

  if (real_listen == NULL)
    real_listen = (int (*) (int, int)) dlsym (RTLD_NEXT, "listen");
  if (real_listen == NULL) {
    errno = ENOSYS;
    return -1;
  }
  if (ms > 0) {
    ts.tv_sec = ms / 1000;
    ts.tv_nsec = (ms % 1000) * 1000000L;
    while (nanosleep (&ts, &ts) == -1 && errno == EINTR)
      ;
  }
  return real_listen (fd, backlog);
}
