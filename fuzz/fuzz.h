/* hyperfile: helpers shared by the libFuzzer harnesses (fuzz/).
 *
 * Each harness feeds one decoder of untrusted bytes (HACKING.md,
 * "Fuzzing", lists them).  A harness aborts (so libFuzzer reports a
 * crash) not only on memory errors and undefined behaviour, which the
 * sanitizers catch, but also when a decoder accepts input that breaks
 * the promises its header makes: FUZZ_CHECK.
 *
 * Many inputs start with a mode byte.  Its low bit asks the harness to
 * recompute the structure's CRCs before decoding, so that the mutator
 * gets past the checksums into the field checks behind them; inputs
 * without it test the checksums themselves.
 */
#ifndef HF_FUZZ_H
#define HF_FUZZ_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"

/* Abort with a message when a decoder's promise is broken. */
#define FUZZ_CHECK(cond)                                                \
  do {                                                                  \
    if (!(cond)) {                                                      \
      fprintf (stderr, "%s:%d: FUZZ_CHECK failed: %s\n",                \
               __FILE__, __LINE__, #cond);                              \
      abort ();                                                         \
    }                                                                   \
  } while (0)

static void
fuzz_log_null (enum hf_log_level level, const char *msg)
{
  (void) level;
  (void) msg;
}

/* Bad input logs a line for every execution; keep libFuzzer's output
 * readable unless HF_FUZZ_LOG=1. */
static inline void
fuzz_quiet (void)
{
  static int done;

  if (!done) {
    done = 1;
    if (getenv ("HF_FUZZ_LOG") == NULL)
      hf_log_set_sink (fuzz_log_null);
  }
}

/* A private directory for harnesses that must go through files (WAL,
 * cache, credentials), made on first use under $TMPDIR (default /tmp)
 * and removed at exit. */
extern const char *fuzz_tmpdir (void);
/* Remove every file in fuzz_tmpdir () (not the directory). */
extern void fuzz_tmpdir_clear (void);
/* Write len bytes to the file name in fuzz_tmpdir (); its path into
 * path (PATH_MAX bytes).  Aborts on I/O errors (the harness's own). */
extern void fuzz_write_file (const char *name, const void *data,
                             size_t len, char *path);

#endif /* HF_FUZZ_H */
