/* hyperfile: the store-independent half of lib/objstore: argument checks,
 * counters, and the URL parser that picks a store (see objstore.h). */
#include <config.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "objstore.h"

static int
hf_objstore_check_key (const char *key)
{
  size_t n;

  if (key == NULL)
    return EINVAL;
  n = strlen (key);
  if (n == 0 || n > HF_OBJSTORE_KEY_MAX)
    return EINVAL;
  return 0;
}

uint64_t
hf_objstore_now_us (void)
{
  struct timespec ts;

  clock_gettime (CLOCK_MONOTONIC, &ts);
  return (uint64_t) ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

int
hf_objstore_get (struct hf_objstore *s, const char *key, uint64_t offset,
                 size_t len, void *buf, size_t *got)
{
  int r = hf_objstore_check_key (key);

  if (r)
    return r;
  if (len == 0) {
    *got = 0;
    return 0;
  }
  return s->ops->get (s, key, offset, len, buf, got);
}

int
hf_objstore_get_all (struct hf_objstore *s, const char *key, size_t max,
                     void **data, size_t *len)
{
  int r = hf_objstore_check_key (key);

  return r ? r : s->ops->get_all (s, key, max, data, len);
}

int
hf_objstore_head (struct hf_objstore *s, const char *key,
                  struct hf_objstore_info *info)
{
  int r = hf_objstore_check_key (key);

  return r ? r : s->ops->head (s, key, info);
}

int
hf_objstore_put (struct hf_objstore *s, const char *key, const void *data,
                 size_t len, unsigned flags)
{
  return hf_objstore_put_cancel (s, key, data, len, flags, NULL);
}

int
hf_objstore_put_cancel (struct hf_objstore *s, const char *key,
                        const void *data, size_t len, unsigned flags,
                        const atomic_bool *cancel)
{
  int r = hf_objstore_check_key (key);

  if (r)
    return r;
  if (flags & ~HF_PUT_IF_NONE_MATCH)
    return EINVAL;
  /* Every store, so that what works on dir also works on s3. */
  if ((flags & HF_PUT_IF_NONE_MATCH) && len > HF_OBJSTORE_COND_PUT_MAX) {
    hf_error ("%s: put '%s': %zu bytes; a conditional put is one request, "
              "at most 5 GiB", hf_objstore_describe (s), key, len);
    return EFBIG;
  }
  if (hf_objstore_cancelled (cancel))
    return ECANCELED;
  return s->ops->put (s, key, data, len, flags, cancel);
}

int
hf_objstore_delete (struct hf_objstore *s, const char *key)
{
  int r = hf_objstore_check_key (key);

  return r ? r : s->ops->del (s, key);
}

int
hf_objstore_delete_many (struct hf_objstore *s, const char *const *keys,
                         size_t n)
{
  size_t i;
  int r;

  for (i = 0; i < n; i++)
    if ((r = hf_objstore_check_key (keys[i])) != 0)
      return r;
  if (n == 0)
    return 0;
  return s->ops->delete_many (s, keys, n);
}

int
hf_objstore_list (struct hf_objstore *s, const char *prefix,
                  const char *start_after, hf_objstore_list_fn fn,
                  void *opaque)
{
  if (prefix && strlen (prefix) > HF_OBJSTORE_KEY_MAX)
    return EINVAL;
  if (start_after && strlen (start_after) > HF_OBJSTORE_KEY_MAX)
    return EINVAL;
  return s->ops->list (s, prefix ? prefix : "", start_after, fn, opaque);
}

const char *
hf_objstore_describe (struct hf_objstore *s)
{
  return s->ops->describe (s);
}

const char *
hf_objstore_name (struct hf_objstore *s, const char *prefix, char *buf,
                  size_t len)
{
  const char *desc = s->ops->describe (s);
  const char *at = strstr (desc, " at ");
  size_t plen = prefix ? strlen (prefix) : 0;

  /* The prefix ends in '/' when not empty (objstore_open_url). */
  if (plen > 0 && prefix[plen - 1] == '/')
    plen--;
  if (plen == 0)
    snprintf (buf, len, "%s", desc);
  else if (at)
    snprintf (buf, len, "%.*s/%.*s%s", (int) (at - desc), desc, (int) plen,
              prefix, at);
  else
    snprintf (buf, len, "%s/%.*s", desc, (int) plen, prefix);
  return buf;
}

bool
hf_objstore_lists_whole (struct hf_objstore *s)
{
  while (s->ops->stats_store)
    s = s->ops->stats_store (s);
  return s->ops->lists_whole && s->ops->lists_whole (s);
}

void
hf_objstore_get_stats (struct hf_objstore *s, struct hf_objstore_stats *out)
{
  int i;

  while (s->ops->stats_store)
    s = s->ops->stats_store (s);

  for (i = 0; i < HF_OP__MAX; i++) {
    out->requests[i] = __atomic_load_n (&s->stats.requests[i],
                                        __ATOMIC_RELAXED);
    out->errors[i] = __atomic_load_n (&s->stats.errors[i], __ATOMIC_RELAXED);
    out->latency_us[i] = __atomic_load_n (&s->stats.latency_us[i],
                                          __ATOMIC_RELAXED);
  }
  for (i = 0; i < HF_EK__MAX; i++)
    out->errors_kind[i] = __atomic_load_n (&s->stats.errors_kind[i],
                                           __ATOMIC_RELAXED);
  out->retries = __atomic_load_n (&s->stats.retries, __ATOMIC_RELAXED);
  out->bytes_in = __atomic_load_n (&s->stats.bytes_in, __ATOMIC_RELAXED);
  out->bytes_out = __atomic_load_n (&s->stats.bytes_out, __ATOMIC_RELAXED);
}

void
hf_objstore_count (struct hf_objstore *s, enum hf_objstore_op op,
                   uint64_t latency_us, uint64_t bytes_in,
                   uint64_t bytes_out, int err)
{
  __atomic_add_fetch (&s->stats.requests[op], 1, __ATOMIC_RELAXED);
  __atomic_add_fetch (&s->stats.latency_us[op], latency_us,
                      __ATOMIC_RELAXED);
  __atomic_add_fetch (&s->stats.bytes_in, bytes_in, __ATOMIC_RELAXED);
  __atomic_add_fetch (&s->stats.bytes_out, bytes_out, __ATOMIC_RELAXED);
  if (err) {
    __atomic_add_fetch (&s->stats.errors[op], 1, __ATOMIC_RELAXED);
    __atomic_add_fetch (&s->stats.errors_kind[hf_objstore_errkind (err)], 1,
                        __ATOMIC_RELAXED);
  }
}

enum hf_objstore_errkind
hf_objstore_errkind (int err)
{
  switch (err) {
  case ETIMEDOUT: return HF_EK_TIMEOUT;
  case EACCES: case EPERM: return HF_EK_AUTH;
  case ENOENT: return HF_EK_NOT_FOUND;
  case EEXIST: case EBUSY: return HF_EK_CONFLICT;
  case EINVAL: case ENOTSUP: case E2BIG: return HF_EK_INVALID;
  case EBADMSG: return HF_EK_CORRUPT;
  case EIO: return HF_EK_IO;
  default: return HF_EK_OTHER;
  }
}

const char *
hf_objstore_errkind_name (enum hf_objstore_errkind k)
{
  static const char *const names[HF_EK__MAX] = {
    "timeout", "auth", "not_found", "conflict", "invalid", "corrupt", "io",
    "other"
  };

  return k < HF_EK__MAX ? names[k] : "other";
}

void
hf_objstore_count_retry (struct hf_objstore *s)
{
  while (s->ops->stats_store)
    s = s->ops->stats_store (s);
  __atomic_add_fetch (&s->stats.retries, 1, __ATOMIC_RELAXED);
}

void
hf_objstore_close (struct hf_objstore *s)
{
  if (s)
    s->ops->close (s);
}

int
hf_objstore_check_url (const char *what, const char *url)
{
  const unsigned char *p;

  for (p = (const unsigned char *) url; *p; p++)
    if (*p < 0x20 || *p == 0x7f) {
      hf_error ("%s: a control character (byte 0x%02x at offset %zu) in "
                "the URL", what, *p, (size_t) (p - (const unsigned char *)
                                               url));
      return EINVAL;
    }
  return 0;
}

int
hf_objstore_open_url (const char *url, const struct hf_s3_config *cfg,
                      bool create, struct hf_objstore **out,
                      char **prefix_out)
{
  char *prefix = NULL;
  int r;

  if (url == NULL || *url == '\0') {
    hf_error ("url: empty");
    return EINVAL;
  }
  if (hf_objstore_check_url ("url", url) != 0)
    return EINVAL;

  if (strncmp (url, "s3://", 5) == 0) {
    struct hf_s3_config c = *cfg;
    const char *b = url + 5, *slash = strchr (b, '/');
    char *bucket;
    size_t plen;

    bucket = slash ? strndup (b, slash - b) : strdup (b);
    if (bucket == NULL)
      return ENOMEM;
    if (*bucket == '\0') {
      hf_error ("url %s: no bucket name (expected s3://BUCKET[/PREFIX])", url);
      free (bucket);
      return EINVAL;
    }
    /* Strip leading and trailing slashes of the prefix, then add one. */
    b = slash ? slash : "";
    while (*b == '/')
      b++;
    plen = strlen (b);
    while (plen > 0 && b[plen - 1] == '/')
      plen--;
    if (plen > 0) {
      if (asprintf (&prefix, "%.*s/", (int) plen, b) < 0) {
        free (bucket);
        return ENOMEM;
      }
    }
    else if ((prefix = strdup ("")) == NULL) {
      free (bucket);
      return ENOMEM;
    }
    c.bucket = bucket;
    r = hf_objstore_s3_open (&c, out);
    free (bucket);
  }
  else {
    const char *path = url;

    if (strncmp (url, "file://", 7) == 0) {
      path = url + 7;
      if (*path != '/') {
        hf_error ("url %s: file URLs must be absolute (file:///DIR)", url);
        return EINVAL;
      }
    }
    else if (strstr (url, "://") != NULL) {
      hf_error ("url %s: unknown scheme (expected s3:// or file://)", url);
      return EINVAL;
    }
    if ((prefix = strdup ("")) == NULL)
      return ENOMEM;
    r = hf_objstore_dir_open (path, create, out);
  }

  if (r) {
    free (prefix);
    return r;
  }
  *prefix_out = prefix;
  return 0;
}

char *
hf_objstore_abs_url (const char *url)
{
  const char *path = url;
  char *abs, *out = NULL;
  int err;

  if (strncmp (url, "s3://", 5) == 0)
    return strdup (url);
  if (strncmp (url, "file://", 7) == 0)
    path = url + 7;
  abs = realpath (path, NULL);
  if (abs == NULL) {
    err = errno;
    hf_error ("%s: %s", path, strerror (err));
    errno = err;
    return NULL;
  }
  if (asprintf (&out, "file://%s", abs) < 0) {
    out = NULL;
    errno = ENOMEM;
  }
  free (abs);
  return out;
}

/* ---- Retries (see objstore.h) ---- */

int
hf_objstore_retry (struct hf_objstore *s, hf_objstore_attempt_fn op,
                   void *arg)
{
  unsigned i;
  int r = EIO;

  for (i = 0; i < HF_OBJSTORE_TRIES; i++) {
    if (i) {
      hf_clock_sleep_us ((uint64_t) HF_OBJSTORE_BACKOFF_US << (i - 1));
      if (s)
        hf_objstore_count_retry (s);
    }
    r = op (arg, i);
    if (!hf_objstore_retryable (r))
      break;
  }
  return r;
}

struct hf_objstore_get_args {
  struct hf_objstore *s;
  const char *key;
  uint64_t offset;
  size_t len;
  void *buf;
  size_t *got;
};

static int
hf_objstore_get_attempt (void *arg, unsigned attempt)
{
  struct hf_objstore_get_args *a = arg;

  return hf_objstore_get (a->s, a->key, a->offset, a->len, a->buf, a->got);
}

int
hf_objstore_get_retry (struct hf_objstore *s, const char *key,
                       uint64_t offset, size_t len, void *buf, size_t *got)
{
  struct hf_objstore_get_args a = { s, key, offset, len, buf, got };

  return hf_objstore_retry (s, hf_objstore_get_attempt, &a);
}

struct hf_objstore_get_all_args {
  struct hf_objstore *s;
  const char *key;
  size_t max;
  void **data;
  size_t *len;
};

static int
hf_objstore_get_all_attempt (void *arg, unsigned attempt)
{
  struct hf_objstore_get_all_args *a = arg;

  return hf_objstore_get_all (a->s, a->key, a->max, a->data, a->len);
}

int
hf_objstore_get_all_retry (struct hf_objstore *s, const char *key,
                           size_t max, void **data, size_t *len)
{
  struct hf_objstore_get_all_args a = { s, key, max, data, len };

  return hf_objstore_retry (s, hf_objstore_get_all_attempt, &a);
}

struct hf_objstore_put_args {
  struct hf_objstore *s;
  const char *key;
  const void *data;
  size_t len;
  unsigned flags;
};

static int
hf_objstore_put_attempt (void *arg, unsigned attempt)
{
  struct hf_objstore_put_args *a = arg;

  return hf_objstore_put (a->s, a->key, a->data, a->len, a->flags);
}

int
hf_objstore_put_retry (struct hf_objstore *s, const char *key,
                       const void *data, size_t len, unsigned flags)
{
  struct hf_objstore_put_args a = { s, key, data, len, flags };

  return hf_objstore_retry (s, hf_objstore_put_attempt, &a);
}

struct hf_objstore_list_args {
  struct hf_objstore *s;
  const char *prefix, *start_after;
  hf_objstore_list_fn fn;
  void *opaque;
  void (*restart) (void *opaque);
};

static int
hf_objstore_list_attempt (void *arg, unsigned attempt)
{
  struct hf_objstore_list_args *a = arg;

  if (a->restart)
    a->restart (a->opaque);
  return hf_objstore_list (a->s, a->prefix, a->start_after, a->fn,
                           a->opaque);
}

int
hf_objstore_list_retry (struct hf_objstore *s, const char *prefix,
                        const char *start_after, hf_objstore_list_fn fn,
                        void *opaque, void (*restart) (void *opaque))
{
  struct hf_objstore_list_args a = { s, prefix, start_after, fn, opaque,
                                     restart };

  return hf_objstore_retry (s, hf_objstore_list_attempt, &a);
}
