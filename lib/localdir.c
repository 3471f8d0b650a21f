/* hyperfile: local directories the operator names (localdir.h). */
#include <config.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "localdir.h"
#include "log.h"

int
hf_localdir_open (const char *param, const char *path, int *dirfd)
{
  struct stat st;
  int fd, err;

  if (mkdir (path, 0700) == -1 && errno != EEXIST) {
    err = errno;
    hf_error ("%s=%s: mkdir: %s", param, path, strerror (err));
    return err;
  }
  fd = open (path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
  if (fd == -1) {
    err = errno;
    /* O_NOFOLLOW on a symlink: ELOOP (or ENOTDIR with O_DIRECTORY). */
    if ((err == ELOOP || err == ENOTDIR) && lstat (path, &st) == 0 &&
        S_ISLNK (st.st_mode)) {
      hf_error ("%s=%s: is a symbolic link; name the directory itself",
                param, path);
      return ELOOP;
    }
    if (err == ENOTDIR)
      hf_error ("%s=%s: not a directory", param, path);
    else
      hf_error ("%s=%s: open: %s", param, path, strerror (err));
    return err;
  }
  if (fstat (fd, &st) == -1) {
    err = errno;
    hf_error ("%s=%s: fstat: %s", param, path, strerror (err));
    close (fd);
    return err;
  }
  if (st.st_uid != geteuid ()) {
    hf_error ("%s=%s: owned by uid %u, not by this server's uid %u; "
              "use a directory of the user the server runs as", param, path,
              (unsigned) st.st_uid, (unsigned) geteuid ());
    close (fd);
    return EPERM;
  }
  if (st.st_mode & (S_IWGRP | S_IWOTH)) {
    hf_error ("%s=%s: mode %04o lets %s write into it; refusing it "
              "(chmod go-w, or use a directory only its owner can write)",
              param, path, (unsigned) (st.st_mode & 07777),
              (st.st_mode & S_IWOTH) ? "others" : "its group");
    close (fd);
    return EPERM;
  }
  *dirfd = fd;
  return 0;
}

int
hf_localdir_openat (int dirfd, const char *name, int flags)
{
  struct stat st;
  int fd, err;

  fd = openat (dirfd, name, flags | O_NOFOLLOW | O_CLOEXEC, 0600);
  if (fd == -1 || (flags & O_EXCL))
    return fd;
  if (fstat (fd, &st) == -1) {
    err = errno;
    close (fd);
    errno = err;
    return -1;
  }
  if (!S_ISREG (st.st_mode) || st.st_nlink != 1) {
    close (fd);
    errno = EPERM;
    return -1;
  }
  return fd;
}

const char *
hf_localdir_strerror (int err)
{
  if (err == ELOOP)
    return "a symbolic link (not followed)";
  if (err == EPERM)
    return "not a regular file with a single link (refused)";
  return strerror (err);
}
