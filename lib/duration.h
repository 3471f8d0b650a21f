/* hyperfile: durations in parameters and options ("500ms", "30", "5s",
 * "2m", "24h", "7d"), one parser for the plugin and the admin command.
 *
 * Thread safety: no shared state.
 */
#ifndef HF_DURATION_H
#define HF_DURATION_H

#include <stdint.h>

/* The longest duration accepted, in ns (INT64_MAX: about 292 years, so
 * that a sum of two, or a difference with a time, cannot wrap). */
#define HF_DURATION_MAX_NS ((uint64_t) INT64_MAX)

/* Parse s: decimal digits (no sign, no space) and an optional unit, ms,
 * s, m, h or d (seconds without one).  Returns 0 with *ns set, EINVAL
 * if s is not a duration, ERANGE if it is longer than
 * HF_DURATION_MAX_NS (never a wrapped value).  Logs nothing. */
extern int hf_parse_duration (const char *s, uint64_t *ns);

#endif /* HF_DURATION_H */
