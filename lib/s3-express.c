/* hyperfile: S3 Express One Zone (directory buckets) for the S3 store.
 * See s3-int.h for the map of the store's files.
 *
 * What AWS documents (checked against AWS's API reference and botocore's
 * endpoint rule set; AWS itself was not reachable from where this was
 * written, so it is tested against the emulation in tests/s3rver):
 *
 *   - A directory bucket is named NAME--ZONEID--x-s3 and served by its
 *     zonal endpoint https://NAME--ZONEID--x-s3.s3express-ZONEID.REGION.
 *     amazonaws.com, virtual-host addressing only.
 *   - CreateSession, GET /?session on the bucket signed with the
 *     account's own credentials, answers temporary ones
 *     (<CreateSessionResult><Credentials> AccessKeyId, SecretAccessKey,
 *     SessionToken, Expiration) that last about five minutes.
 *   - Every other request is signed with them and carries the token in
 *     x-amz-s3session-token (not x-amz-security-token).  All requests to
 *     the zonal endpoint, CreateSession included, are signed for
 *     service "s3express".
 *
 * Sessions: one current session per store, shared by every request.
 * When it nears its end (a third of its life left, at most a minute),
 * the first request to notice runs CreateSession while the others go on
 * signing with the old one, so renewals do not stall I/O; only when there
 * is no usable session at all (the first request, or after an outage
 * longer than the session) do requests wait for the one CreateSession
 * in flight.  A request the server refuses as signed with an expired or
 * unknown session is retried once with a new one (s3-request.c).
 *
 * Lock rule: xs->lock (a leaf lock, never held across a request)
 * protects cur, renewing, fails, err and every session's refs; a
 * session's credentials are immutable once made and freed with the last
 * reference.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <libxml/tree.h>

#include "cleanup.h"
#include "clock.h"
#include "log.h"
#include "s3-int.h"

/* Renew when less than this much of a session's life is left (or a
 * third of its life, if less). */
#define HF_S3X_RENEW_US ((uint64_t) 60 * 1000000)
/* Stop signing with a session this close to its end (or at a tenth of
 * its life, if less): the request would arrive after it. */
#define HF_S3X_DEAD_US ((uint64_t) 5 * 1000000)
/* The longest session believed (AWS's last five minutes). */
#define HF_S3X_MAX_LIFE_S 3600

struct hf_s3_session {
  unsigned refs;                /* X: under xs->lock */
  char *key;                    /* immutable */
  char *secret;                 /* immutable, never logged */
  char *token;                  /* immutable, never logged */
  uint64_t renew_us;            /* monotonic: renew from here */
  uint64_t dead_us;             /* monotonic: unusable from here */
};

struct hf_s3_express {
  pthread_mutex_t lock;         /* protects the fields tagged X */
  pthread_cond_t cond;          /* X: a CreateSession ended */
  struct hf_s3_session *cur;    /* X: the current session, or NULL */
  bool renewing;                /* X: a CreateSession is in flight */
  uint64_t fails;               /* X: CreateSessions failed so far */
  int err;                      /* X: the last failure's errno */
  uint64_t made;                /* X: sessions made (debug) */
};

bool
hf_s3_express_bucket (const char *bucket, char *zone, size_t len)
{
  static const char suffix[] = "--x-s3";
  size_t n = strlen (bucket), sl = sizeof suffix - 1, i, z;

  if (n <= sl || strcmp (bucket + n - sl, suffix) != 0)
    return false;
  n -= sl;                      /* NAME--ZONEID */
  for (i = n; i >= 2; i--)
    if (bucket[i - 1] == '-' && bucket[i - 2] == '-')
      break;
  if (i < 2 || i - 2 == 0 || i == n)
    return false;               /* no "--", no NAME or no ZONEID */
  for (z = i; z < n; z++)
    if (!((bucket[z] >= 'a' && bucket[z] <= 'z') ||
          (bucket[z] >= '0' && bucket[z] <= '9') || bucket[z] == '-'))
      return false;
  if (zone) {
    if (n - i >= len)
      return false;
    memcpy (zone, bucket + i, n - i);
    zone[n - i] = '\0';
  }
  return true;
}

int
hf_s3_express_open (struct hf_s3 *s, char **default_ep)
{
  struct hf_s3_express *xs;
  char zone[64];

  if (default_ep) {
    if (!hf_s3_express_bucket (s->bucket, zone, sizeof zone)) {
      hf_error ("s3://%s: a directory bucket (express=true) needs "
                "endpoint= unless it is named like one, NAME--ZONEID--x-s3",
                s->bucket);
      return EINVAL;
    }
    if (asprintf (default_ep, "https://s3express-%s.%s.amazonaws.com",
                  zone, s->region) < 0) {
      *default_ep = NULL;
      return ENOMEM;
    }
  }
  xs = calloc (1, sizeof *xs);
  if (xs == NULL)
    return ENOMEM;
  pthread_mutex_init (&xs->lock, NULL);
  pthread_cond_init (&xs->cond, NULL);
  s->xs = xs;
  return 0;
}

static void
hf_s3_session_free (struct hf_s3_session *ss)
{
  if (ss == NULL)
    return;
  free (ss->key);
  if (ss->secret) {
    memset (ss->secret, 0, strlen (ss->secret));
    free (ss->secret);
  }
  if (ss->token) {
    memset (ss->token, 0, strlen (ss->token));
    free (ss->token);
  }
  free (ss);
}

void
hf_s3_express_close (struct hf_s3 *s)
{
  struct hf_s3_express *xs = s->xs;

  if (xs == NULL)
    return;
  if (xs->cur && --xs->cur->refs == 0)
    hf_s3_session_free (xs->cur);
  pthread_cond_destroy (&xs->cond);
  pthread_mutex_destroy (&xs->lock);
  free (xs);
  s->xs = NULL;
}

const char *
hf_s3_session_key (const struct hf_s3_session *ss)
{
  return ss->key;
}

const char *
hf_s3_session_secret (const struct hf_s3_session *ss)
{
  return ss->secret;
}

const char *
hf_s3_session_token (const struct hf_s3_session *ss)
{
  return ss->token;
}

/* Seconds since the epoch of an ISO 8601 UTC time
 * (YYYY-MM-DDTHH:MM:SS[.fff]Z), or -1. */
static int64_t
hf_s3x_parse_time (const char *t)
{
  struct tm tm = { 0 };
  int n = 0;

  if (sscanf (t, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
              &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
    return -1;
  t += n;
  if (*t == '.')
    for (t++; *t >= '0' && *t <= '9'; t++)
      ;
  if (strcmp (t, "Z") != 0 && strcmp (t, "+00:00") != 0)
    return -1;
  tm.tm_year -= 1900;
  tm.tm_mon -= 1;
  return (int64_t) timegm (&tm);
}

/* Run CreateSession; on success *out is a new session (refs 0). */
static int
hf_s3x_create (struct hf_s3 *s, struct hf_s3_session **out)
{
  struct hf_s3_req rq = HF_S3_REQ (.method = "GET", .key = NULL,
                                   .query = "session", .op = HF_OP_SESSION,
                                   .base_credentials = true);
  struct hf_s3_resp rp = { 0 };
  struct hf_s3_session *ss = NULL;
  uint64_t t0 = hf_clock_mono_us (), life_us, renew, dead;
  int64_t exp, life;
  xmlDoc *doc = NULL;
  xmlNode *root, *c;
  CLEANUP_FREE char *expiration = NULL;
  int err;

  err = hf_s3_request (s, &rq, &rp);
  if (err) {
    hf_s3_fail (s, "CreateSession", NULL, &rp, err);
    goto out;
  }
  doc = hf_s3_xml_parse (rp.buf, rp.len);
  root = doc ? xmlDocGetRootElement (doc) : NULL;
  c = NULL;
  if (root && strcmp ((const char *) root->name, "CreateSessionResult") == 0)
    for (c = root->children; c; c = c->next)
      if (c->type == XML_ELEMENT_NODE
          && strcmp ((const char *) c->name, "Credentials") == 0)
        break;
  err = EIO;
  if (c == NULL) {
    hf_error ("s3: CreateSession in bucket %s at %s: malformed answer "
              "(no CreateSessionResult/Credentials)", s->bucket, s->endpoint);
    goto out;
  }
  ss = calloc (1, sizeof *ss);
  if (ss == NULL) {
    err = ENOMEM;
    goto out;
  }
  ss->key = hf_s3_xml_strdup (c, "AccessKeyId");
  ss->secret = hf_s3_xml_strdup (c, "SecretAccessKey");
  ss->token = hf_s3_xml_strdup (c, "SessionToken");
  expiration = hf_s3_xml_strdup (c, "Expiration");
  if (ss->key == NULL || ss->secret == NULL || ss->token == NULL
      || expiration == NULL || !*ss->key || !*ss->secret || !*ss->token
      || strpbrk (ss->token, "\r\n") || strpbrk (ss->key, "\r\n/, ")) {
    hf_error ("s3: CreateSession in bucket %s at %s: the answer lacks "
              "AccessKeyId, SecretAccessKey, SessionToken or Expiration, "
              "or holds one that cannot be sent", s->bucket, s->endpoint);
    goto out;
  }
  exp = hf_s3x_parse_time (expiration);
  life = exp - (int64_t) time (NULL);
  if (exp < 0 || life <= 0) {
    hf_error ("s3: CreateSession in bucket %s at %s: the session expires "
              "at '%.40s', %s (is this host's clock right?)", s->bucket,
              s->endpoint, expiration,
              exp < 0 ? "not a time" : "which has passed");
    goto out;
  }
  if (life > HF_S3X_MAX_LIFE_S)
    life = HF_S3X_MAX_LIFE_S;
  /* Counted from the request's start: the server's clock started the
   * session no earlier. */
  life_us = (uint64_t) life * 1000000;
  renew = life_us / 3 < HF_S3X_RENEW_US ? life_us / 3 : HF_S3X_RENEW_US;
  dead = life_us / 10 < HF_S3X_DEAD_US ? life_us / 10 : HF_S3X_DEAD_US;
  ss->renew_us = t0 + life_us - renew;
  ss->dead_us = t0 + life_us - dead;
  hf_debug ("s3", "CreateSession: bucket %s: a session of %" PRId64 " s",
            s->bucket, life);
  *out = ss;
  ss = NULL;
  err = 0;

 out:
  xmlFreeDoc (doc);
  hf_s3_session_free (ss);
  hf_s3_resp_free (&rp);
  return err;
}

/* Drop a reference; xs->lock held. */
static void
hf_s3x_unref_locked (struct hf_s3_session *ss)
{
  if (ss && --ss->refs == 0)
    hf_s3_session_free (ss);
}

/* Make a session current; xs->lock held. */
static void
hf_s3x_install_locked (struct hf_s3_express *xs, struct hf_s3_session *ss)
{
  hf_s3x_unref_locked (xs->cur);
  ss->refs = 1;                 /* the store's */
  xs->cur = ss;
  xs->made++;
}

int
hf_s3_express_get (struct hf_s3 *s, struct hf_s3_session **out)
{
  struct hf_s3_express *xs = s->xs;
  struct hf_s3_session *ss, *nss;
  int r;

  pthread_mutex_lock (&xs->lock);
  for (;;) {
    uint64_t now = hf_clock_mono_us ();

    ss = xs->cur;
    if (ss && now < ss->dead_us) {
      ss->refs++;
      if (now < ss->renew_us || xs->renewing)
        break;
      /* Renew it, signing this request with the old one meanwhile. */
      xs->renewing = true;
      pthread_mutex_unlock (&xs->lock);
      r = hf_s3x_create (s, &nss);
      pthread_mutex_lock (&xs->lock);
      xs->renewing = false;
      pthread_cond_broadcast (&xs->cond);
      if (r == 0)
        hf_s3x_install_locked (xs, nss);
      else {
        xs->fails++;
        xs->err = r;
      }
      break;                    /* the old session is still usable */
    }
    if (xs->renewing) {
      uint64_t fails = xs->fails;

      pthread_cond_wait (&xs->cond, &xs->lock);
      if (xs->fails != fails && (xs->cur == NULL ||
                                 hf_clock_mono_us () >= xs->cur->dead_us)) {
        r = xs->err;
        pthread_mutex_unlock (&xs->lock);
        return r;
      }
      continue;
    }
    /* No usable session: make one; the others wait for it. */
    xs->renewing = true;
    pthread_mutex_unlock (&xs->lock);
    r = hf_s3x_create (s, &nss);
    pthread_mutex_lock (&xs->lock);
    xs->renewing = false;
    pthread_cond_broadcast (&xs->cond);
    if (r) {
      xs->fails++;
      xs->err = r;
      pthread_mutex_unlock (&xs->lock);
      return r;
    }
    hf_s3x_install_locked (xs, nss);
  }
  pthread_mutex_unlock (&xs->lock);
  *out = ss;
  return 0;
}

void
hf_s3_express_put (struct hf_s3 *s, struct hf_s3_session *ss)
{
  struct hf_s3_express *xs = s->xs;

  if (ss == NULL)
    return;
  pthread_mutex_lock (&xs->lock);
  hf_s3x_unref_locked (ss);
  pthread_mutex_unlock (&xs->lock);
}

bool
hf_s3_express_refused (struct hf_s3 *s, struct hf_s3_session *ss,
                       const struct hf_s3_resp *rp)
{
  struct hf_s3_express *xs = s->xs;

  if (ss == NULL || rp->cc != CURLE_OK
      || (rp->status != 400 && rp->status != 403)
      || (strcmp (rp->code, "ExpiredToken") != 0
          && strcmp (rp->code, "InvalidToken") != 0))
    return false;
  pthread_mutex_lock (&xs->lock);
  if (xs->cur == ss) {
    xs->cur = NULL;
    hf_s3x_unref_locked (ss);   /* the store's reference */
  }
  pthread_mutex_unlock (&xs->lock);
  hf_debug ("s3", "bucket %s: the session was refused (%s): a new one",
            s->bucket, rp->code);
  return true;
}
