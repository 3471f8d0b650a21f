/* hyperfile: durations in parameters and options (duration.h). */
#include <config.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "duration.h"

int
hf_parse_duration (const char *s, uint64_t *ns)
{
  static const struct { const char *unit; uint64_t ns; } units[] = {
    { "", UINT64_C (1000000000) },
    { "ms", UINT64_C (1000000) },
    { "s", UINT64_C (1000000000) },
    { "m", UINT64_C (60000000000) },
    { "h", UINT64_C (3600000000000) },
    { "d", UINT64_C (86400000000000) },
  };
  char *end;
  unsigned long long v;
  size_t i;

  /* strtoull alone would take "-1" (as ULLONG_MAX) and " 5". */
  if (s == NULL || *s < '0' || *s > '9')
    return EINVAL;
  errno = 0;
  v = strtoull (s, &end, 10);
  for (i = 0; i < sizeof units / sizeof units[0]; i++)
    if (strcmp (end, units[i].unit) == 0)
      break;
  if (i == sizeof units / sizeof units[0])
    return EINVAL;
  if (errno == ERANGE || v > HF_DURATION_MAX_NS / units[i].ns)
    return ERANGE;
  *ns = (uint64_t) v * units[i].ns;
  return 0;
}
