/* hyperfile: logging sink and per-area debug switches (see log.h). */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>

#include "log.h"

#define HF_LOG_MAX_AREAS 32

static hf_log_sink_fn hf_log_sink;

/* hf_log_lock protects hf_log_areas and hf_log_nareas. */
static pthread_mutex_t hf_log_lock = PTHREAD_MUTEX_INITIALIZER;
static char hf_log_areas[HF_LOG_MAX_AREAS][16];
static int hf_log_nareas;
/* Fast path: false until any area is enabled. */
static volatile bool hf_log_any_debug;

void
hf_log_set_sink (hf_log_sink_fn fn)
{
  hf_log_sink = fn;
}

void
hf_log_set_debug (const char *area, bool on)
{
  int i;

  pthread_mutex_lock (&hf_log_lock);
  for (i = 0; i < hf_log_nareas; i++)
    if (strcmp (hf_log_areas[i], area) == 0)
      break;
  if (on && i == hf_log_nareas && hf_log_nareas < HF_LOG_MAX_AREAS) {
    snprintf (hf_log_areas[hf_log_nareas], sizeof hf_log_areas[0], "%s",
              area);
    hf_log_nareas++;
  }
  else if (!on && i < hf_log_nareas) {
    memmove (hf_log_areas[i], hf_log_areas[i + 1],
             (hf_log_nareas - i - 1) * sizeof hf_log_areas[0]);
    hf_log_nareas--;
  }
  hf_log_any_debug = hf_log_nareas > 0;
  pthread_mutex_unlock (&hf_log_lock);
}

bool
hf_log_debug_enabled (const char *area)
{
  bool r = false;
  int i;

  if (!hf_log_any_debug)
    return false;
  pthread_mutex_lock (&hf_log_lock);
  for (i = 0; i < hf_log_nareas; i++)
    if (strcmp (hf_log_areas[i], area) == 0 ||
        strcmp (hf_log_areas[i], "all") == 0) {
      r = true;
      break;
    }
  pthread_mutex_unlock (&hf_log_lock);
  return r;
}

/* The last error message of this thread (hf_log_last_error). */
static __thread char hf_log_last[512];

const char *
hf_log_last_error (void)
{
  return hf_log_last;
}

void
hf_vlog (enum hf_log_level level, const char *fmt, va_list ap)
{
  static const char *const names[] = { "error", "warning", "info", "debug" };
  char msg[2048];

  vsnprintf (msg, sizeof msg, fmt, ap);
  if (level == HF_LOG_ERROR) {
    size_t n = strnlen (msg, sizeof hf_log_last - 1);
    memcpy (hf_log_last, msg, n);
    hf_log_last[n] = '\0';
  }
  if (hf_log_sink)
    hf_log_sink (level, msg);
  else
    fprintf (stderr, "hyperfile: %s: %s\n", names[level], msg);
}

void
hf_log (enum hf_log_level level, const char *fmt, ...)
{
  va_list ap;

  va_start (ap, fmt);
  hf_vlog (level, fmt, ap);
  va_end (ap);
}
