/* -Wl,--wrap=fsync for the unit tests that link this (tests/Makefile.am:
 * check-history, check-gc): fsync returns at once, after checking the
 * descriptor (EBADF as before).  They build long histories through the
 * directory store, which fsyncs every object and its directory, and
 * their crashes are in-process (hf_volume_crash, a SIGKILLed child),
 * where the page cache keeps everything and an fsync can change no
 * result: on a virtual disk the fsyncs were nearly all of their time
 * (check-history 14.3 s, 1.5 s with its files on tmpfs). */
#include <config.h>

#include <fcntl.h>

extern int __wrap_fsync (int fd);

int
__wrap_fsync (int fd)
{
  return fcntl (fd, F_GETFD) == -1 ? -1 : 0;
}
