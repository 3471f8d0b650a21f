/* hyperfile: logging for lib/.
 *
 * lib/ never links nbdkit.  The embedding program (the plugin, the admin
 * tool, a unit test) injects a sink with hf_log_set_sink; until then
 * messages go to stderr.  Debug output is gated per area (s3, dir, wal,
 * cache, volume, btree, gc ...) so the plugin can map `-D hyperfile.s3=1`
 * onto hf_log_set_debug ("s3", 1).
 *
 * Thread safety: all functions may be called from any thread.  The sink
 * must be thread safe.  Messages never contain credentials: callers are
 * responsible for not formatting secrets, and the S3 layer documents how.
 */
#ifndef HF_LOG_H
#define HF_LOG_H

#include <stdarg.h>
#include <stdbool.h>

enum hf_log_level { HF_LOG_ERROR, HF_LOG_WARN, HF_LOG_INFO, HF_LOG_DEBUG };

/* The sink receives a fully formatted message without trailing newline. */
typedef void (*hf_log_sink_fn) (enum hf_log_level level, const char *msg);

extern void hf_log_set_sink (hf_log_sink_fn fn);
/* Enable or disable debug messages for an area ("s3", "volume" ...). */
extern void hf_log_set_debug (const char *area, bool on);
extern bool hf_log_debug_enabled (const char *area);

extern void hf_log (enum hf_log_level level, const char *fmt, ...)
  __attribute__ ((format (printf, 2, 3)));
extern void hf_vlog (enum hf_log_level level, const char *fmt, va_list ap);

/* The last error logged by the calling thread ("" if none): fsck turns
 * the codecs' messages into its report without parsing them twice. */
extern const char *hf_log_last_error (void);

#define hf_error(fs, ...) hf_log (HF_LOG_ERROR, fs, ##__VA_ARGS__)
#define hf_warn(fs, ...)  hf_log (HF_LOG_WARN, fs, ##__VA_ARGS__)
#define hf_info(fs, ...)  hf_log (HF_LOG_INFO, fs, ##__VA_ARGS__)
#define hf_debug(area, fs, ...)                                 \
  do {                                                          \
    if (hf_log_debug_enabled (area))                            \
      hf_log (HF_LOG_DEBUG, area ": " fs, ##__VA_ARGS__);       \
  } while (0)

#endif /* HF_LOG_H */
