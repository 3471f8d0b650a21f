/* hyperfile: helpers shared by the libFuzzer harnesses (fuzz.h). */
#include <config.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fuzz.h"

static char fuzz_dir[PATH_MAX];

void
fuzz_tmpdir_clear (void)
{
  DIR *d;
  struct dirent *e;
  char p[PATH_MAX];

  if (fuzz_dir[0] == '\0' || (d = opendir (fuzz_dir)) == NULL)
    return;
  while ((e = readdir (d)) != NULL) {
    if (strcmp (e->d_name, ".") == 0 || strcmp (e->d_name, "..") == 0)
      continue;
    snprintf (p, sizeof p, "%s/%s", fuzz_dir, e->d_name);
    unlink (p);
  }
  closedir (d);
}

static void
fuzz_tmpdir_remove (void)
{
  fuzz_tmpdir_clear ();
  rmdir (fuzz_dir);
}

const char *
fuzz_tmpdir (void)
{
  if (fuzz_dir[0] == '\0') {
    const char *t = getenv ("TMPDIR");

    snprintf (fuzz_dir, sizeof fuzz_dir, "%s/hf-fuzz.XXXXXX",
              t && *t ? t : "/tmp");
    if (mkdtemp (fuzz_dir) == NULL) {
      perror ("fuzz: mkdtemp");
      abort ();
    }
    atexit (fuzz_tmpdir_remove);
  }
  return fuzz_dir;
}

void
fuzz_write_file (const char *name, const void *data, size_t len,
                 char *path)
{
  int fd;
  const char *p = data;

  snprintf (path, PATH_MAX, "%s/%s", fuzz_tmpdir (), name);
  fd = open (path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
  if (fd < 0) {
    perror (path);
    abort ();
  }
  while (len > 0) {
    ssize_t n = write (fd, p, len);
    if (n <= 0) {
      perror (path);
      abort ();
    }
    p += n;
    len -= (size_t) n;
  }
  close (fd);
}
