/* hyperfile: points in time, named snapshots and clone registrations
 * (history.h).
 *
 * Listing points costs one LIST of seg/ (paged, newest first) plus one
 * ranged GET of HF_SH_SIZE bytes per segment, issued by a few threads
 * at once because a long history on S3 is latency-bound, then a walk of
 * the parent links in memory.  Segments that are listed but not on the
 * chain (orphans) cost one small GET each and are otherwise ignored.
 */
#include <config.h>

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>

#include "cleanup.h"
#include "clock.h"
#include "crypt.h"
#include "history.h"
#include "log.h"
#include "segment.h"
#include "volume.h"


struct hf_history {
  struct hf_objstore *store;    /* borrowed */
  char *prefix;
  struct hf_lineage *lin;       /* owned */
  uint64_t head;

  /* The walk (see below); h->lock protects all of it. */
  pthread_mutex_t lock;
  uint64_t *listed;             /* seg/ seqs listed so far, descending */
  struct hf_seg_hdr *hdrs;      /* their headers, [0, nfetched) */
  int *errs;                    /* and the errors reading them */
  size_t nlisted, nfetched, caplisted, idx;
  size_t fetch_batch;           /* size of the last header batch */
  bool list_done;
  char list_after[HF_OBJSTORE_KEY_MAX + 1];
  uint64_t cur;                 /* next seq to visit; 0: walk ended */
  uint32_t want_crc;            /* its expected sh_hdr_crc */
  int walk_err;
  struct hf_point *pts;         /* points found, newest first */
  size_t npts, cappts;
};

int
hf_history_open (struct hf_objstore *s, const char *prefix,
                 const struct hf_s3_config *cfg, struct hf_history **out)
{
  /* accept_older_head: on a volume whose newest segments are damaged or
   * lost, the points that remain are what at= and rollback work with
   * (the open logs the refusal it overrides). */
  struct hf_volume_options ro = { .readonly = true, .node_cache = 16,
                                  .accept_older_head = true,
                                  .parent_cfg = cfg };
  struct hf_volume *v = NULL;
  struct hf_volume_info vi;
  struct hf_history *h;
  int r;

  h = calloc (1, sizeof *h);
  if (h == NULL)
    return ENOMEM;
  h->store = s;
  h->prefix = strdup (prefix ? prefix : "");
  pthread_mutex_init (&h->lock, NULL);
  if (h->prefix == NULL) {
    r = ENOMEM;
    goto err;
  }
  r = hf_lineage_open (s, h->prefix, cfg, &h->lin);
  if (r)
    goto err;
  /* The head is whatever the engine recovers: one rule, one place. */
  r = hf_volume_open (s, h->prefix, &ro, &v);
  if (r)
    goto err;
  hf_volume_get_info (v, &vi);
  hf_volume_close (v);
  h->head = vi.head_seq;
  h->cur = h->head;
  *out = h;
  return 0;

 err:
  hf_history_close (h);
  return r;
}

void
hf_history_close (struct hf_history *h)
{
  if (h == NULL)
    return;
  hf_lineage_close (h->lin);
  free (h->pts);
  free (h->listed);
  free (h->hdrs);
  free (h->errs);
  free (h->prefix);
  pthread_mutex_destroy (&h->lock);
  free (h);
}

uint64_t
hf_history_head (const struct hf_history *h)
{
  return h->head;
}

const uint8_t *
hf_history_uuid (const struct hf_history *h)
{
  return h->lin->lv[0].d.uuid;
}

const struct hf_lineage *
hf_history_lineage (const struct hf_history *h)
{
  return h->lin;
}

/* ---- Reading headers ---- */

/* Fetch and verify the header of segment seq from its lineage level. */
static int
hf_history_read_hdr (const struct hf_lineage *l, uint64_t seq,
                     struct hf_seg_hdr *out)
{
  const struct hf_lineage_level *lv = hf_lineage_locate (l, seq);
  char key[HF_OBJSTORE_KEY_MAX + 1];
  uint8_t buf[HF_SH_SIZE];
  size_t got = 0;
  int r;

  hf_seg_key_vd (key, sizeof key, lv->prefix, lv->d.flags, seq);
  r = hf_objstore_get_retry (lv->store, key, 0, sizeof buf, buf, &got);
  if (r)
    return r;
  return hf_seg_parse_hdr (buf, got, key, lv->d.uuid, lv->d.block_size,
                           seq, out);
}

/* ---- Changes between two points ---- */

struct hf_history_run {
  uint64_t lba, n;
};

static int
hf_history_run_cmp (const void *x, const void *y)
{
  const struct hf_history_run *a = x, *b = y;

  return a->lba < b->lba ? -1 : a->lba > b->lba;
}

int
hf_history_changes (struct hf_history *h, uint64_t from, uint64_t to,
                    hf_history_change_fn fn, void *opaque, bool *widened)
{
  const struct hf_lineage *l = h->lin;
  uint64_t floor = l->lv[0].floor, seq = to;
  struct hf_history_run *runs = NULL;
  size_t n = 0, cap = 0, i;
  bool wide = false;
  int r = 0;

  if (widened)
    *widened = false;
  if (from >= to) {
    hf_error ("history: point %" PRIu64 " is not older than %" PRIu64,
              from, to);
    return EINVAL;
  }
  /* Walk to's chain down to from (or, after a rollback, to the first
   * segment of this volume), each segment's extent table into runs. */
  while (r == 0 && seq > (wide ? floor : from)) {
    const struct hf_lineage_level *lv = hf_lineage_locate (l, seq);
    struct hf_seg_meta *m = NULL;
    uint32_t j;

    r = hf_seg_read_meta_vd (lv->store, lv->prefix, lv->d.flags, seq,
                             lv->d.uuid, lv->d.block_size,
                             HF_SEG_SIZE_UNKNOWN, &m);
    if (r == ENOENT || r == ENODATA) {
      hf_error ("history: segment %" PRIu64 " between the points is gone "
                "(collected by gc): the changes since %" PRIu64 " cannot "
                "be told; copy the whole volume instead", seq, from);
      r = ENOENT;
      break;
    }
    if (r)
      break;                    /* logged */
    if (m->h.flags & HF_SH_ROLLBACK)
      wide = true;
    for (j = 0; j < m->h.n_ext; j++) {
      if (n == cap) {
        size_t nc = cap ? 2 * cap : 256;
        struct hf_history_run *nv = realloc (runs, nc * sizeof *nv);

        if (nv == NULL) {
          r = ENOMEM;
          break;
        }
        runs = nv;
        cap = nc;
      }
      runs[n].lba = m->ext[j].lba;
      runs[n++].n = m->ext[j].nblocks;
    }
    seq = m->h.parent_seq;
    hf_seg_meta_destroy (m);
    if (r == 0 && !wide && seq < from) {
      hf_error ("history: point %" PRIu64 " is not on the chain of point %"
                PRIu64, from, to);
      r = EINVAL;
    }
  }
  if (widened)
    *widened = wide;
  if (r == 0)
    qsort (runs, n, sizeof *runs, hf_history_run_cmp);
  for (i = 0; r == 0 && i < n;) {
    uint64_t lba = runs[i].lba, end = lba + runs[i].n;

    for (i++; i < n && runs[i].lba <= end; i++)
      if (runs[i].lba + runs[i].n > end)
        end = runs[i].lba + runs[i].n;
    r = fn (opaque, lba, end - lba);
  }
  free (runs);
  return r;
}

struct hf_history_fetch {
  const struct hf_lineage *lin;
  const uint64_t *seqs;
  struct hf_seg_hdr *hdrs;
  int *errs;
  size_t n;
  atomic_size_t next;
};

static void *
hf_history_fetch_worker (void *arg)
{
  struct hf_history_fetch *f = arg;
  size_t i;

  while ((i = atomic_fetch_add (&f->next, 1)) < f->n)
    f->errs[i] = hf_history_read_hdr (f->lin, f->seqs[i], &f->hdrs[i]);
  return NULL;
}

/* Fetch the headers of seqs[0..n) in parallel. */
static void
hf_history_fetch (struct hf_history_fetch *f)
{
  pthread_t t[HF_HISTORY_THREADS];
  unsigned i, nt = 0;

  atomic_init (&f->next, 0);
  for (i = 0; i < HF_HISTORY_THREADS && i < f->n; i++)
    if (pthread_create (&t[nt], NULL, hf_history_fetch_worker, f) == 0)
      nt++;
  hf_history_fetch_worker (f);  /* also works when no thread started */
  for (i = 0; i < nt; i++)
    pthread_join (t[i], NULL);
}

/* ---- The walk ----
 *
 * Points are found newest first: a LIST page of HF_HISTORY_LIST_PAGE
 * seg/ keys (continuing after the last key seen; S3's page size, so no
 * listed key is wasted), then headers fetched in parallel in batches that
 * start at HF_HISTORY_FETCH_MIN and double up to HF_HISTORY_FETCH_MAX,
 * then the parent links followed as far as those headers reach.  Callers
 * stop the walk as soon as they have what they need, so resolving a
 * recent time or seq costs one LIST and a few GETs however long the
 * history is; listing everything costs one LIST page per 1000 segments
 * and one small GET per segment. */

#define HF_HISTORY_LIST_PAGE 1000
#define HF_HISTORY_FETCH_MIN 16
#define HF_HISTORY_FETCH_MAX 256

static struct hf_point
hf_history_point_of (const struct hf_seg_hdr *s, bool inherited)
{
  return (struct hf_point) {
    .seq = s->seq, .parent_seq = s->parent_seq,
    .timestamp_ns = s->timestamp_ns, .flags = s->flags,
    .ckpt_seq = s->ckpt_seq, .volume_size = s->volume_size,
    .mapped = s->mapped, .inherited = inherited,
  };
}

struct hf_history_list {
  struct hf_history *h;
  size_t plen;
  size_t want;                  /* stop after this many new keys */
  size_t got;
  char last[HF_OBJSTORE_KEY_MAX + 1];
  int err;
  size_t n0;                    /* h->nlisted before the listing */
};

/* Before each attempt of a listing: forget what a failed one added. */
static void
hf_history_list_restart (void *opaque)
{
  struct hf_history_list *q = opaque;

  q->h->nlisted = q->n0;
  q->got = 0;
  q->last[0] = '\0';
}

static int
hf_history_push_listed (struct hf_history *h, uint64_t seq)
{
  if (h->nlisted == h->caplisted) {
    size_t nc = h->caplisted ? h->caplisted * 2 : HF_HISTORY_LIST_PAGE;
    uint64_t *nv = realloc (h->listed, nc * sizeof *nv);
    struct hf_seg_hdr *nh = realloc (h->hdrs, nc * sizeof *nh);
    int *ne;

    if (nv)
      h->listed = nv;
    if (nh)
      h->hdrs = nh;
    ne = realloc (h->errs, nc * sizeof *ne);
    if (ne)
      h->errs = ne;
    if (nv == NULL || nh == NULL || ne == NULL)
      return ENOMEM;
    h->caplisted = nc;
  }
  h->listed[h->nlisted++] = seq;
  return 0;
}

static int
hf_history_list_seg (void *opaque, const char *key, uint64_t size)
{
  struct hf_history_list *q = opaque;
  uint64_t seq;
  int r;

  (void) size;
  snprintf (q->last, sizeof q->last, "%s", key);
  if (hf_seg_name_parse (key + q->plen, &seq) == 0 &&
      seq <= q->h->head && seq > q->h->lin->lv[0].floor &&
      (q->h->nlisted == 0 || seq < q->h->listed[q->h->nlisted - 1])) {
    r = hf_history_push_listed (q->h, seq);
    if (r)
      return r;
  }
  return ++q->got >= q->want ? 1 : 0;
}

/* List the next batch of seg/ keys (newest first). */
static int
hf_history_list_more (struct hf_history *h)
{
  const struct hf_lineage_level *own = &h->lin->lv[0];
  char pfx[HF_OBJSTORE_KEY_MAX + 1];
  struct hf_history_list q = { .h = h };
  size_t n0 = h->nlisted;
  int r;

  snprintf (pfx, sizeof pfx, "%sseg/", own->prefix);
  q.plen = strlen (pfx);
  q.want = HF_HISTORY_LIST_PAGE;
  q.n0 = n0;
  r = hf_objstore_list_retry (own->store, pfx,
                              h->list_after[0] ? h->list_after : NULL,
                              hf_history_list_seg, &q,
                              hf_history_list_restart);
  if (r) {
    hf_error ("history: %s: listing %s: %s", hf_objstore_describe (h->store),
              pfx, strerror (r));
    return r;
  }
  if (q.got < q.want)
    h->list_done = true;
  if (q.last[0])
    memcpy (h->list_after, q.last, sizeof q.last);
  return 0;
}

/* Fetch the headers of listed[nfetched .. at least upto]. */
static void
hf_history_fetch_to (struct hf_history *h, size_t upto)
{
  struct hf_history_fetch f = { .lin = h->lin };
  size_t end;

  h->fetch_batch = h->fetch_batch == 0 ? HF_HISTORY_FETCH_MIN
    : h->fetch_batch * 2 > HF_HISTORY_FETCH_MAX ? HF_HISTORY_FETCH_MAX
    : h->fetch_batch * 2;
  end = h->nfetched + h->fetch_batch;

  if (end < upto + 1)
    end = upto + 1;
  if (end > h->nlisted)
    end = h->nlisted;
  f.seqs = h->listed + h->nfetched;
  f.hdrs = h->hdrs + h->nfetched;
  f.errs = h->errs + h->nfetched;
  f.n = end - h->nfetched;
  hf_history_fetch (&f);
  h->nfetched = end;
}

static int
hf_history_push_point (struct hf_history *h, const struct hf_seg_hdr *s,
                       bool inherited)
{
  if (h->npts == h->cappts) {
    size_t nc = h->cappts ? h->cappts * 2 : 64;
    struct hf_point *nv = realloc (h->pts, nc * sizeof *nv);
    if (nv == NULL)
      return ENOMEM;
    h->pts = nv;
    h->cappts = nc;
  }
  h->pts[h->npts++] = hf_history_point_of (s, inherited);
  return 0;
}

/* One step of the walk: find the point h->cur, or end the walk. */
static int
hf_history_step (struct hf_history *h)
{
  struct hf_seg_hdr one, *s = &one;
  uint64_t seq = h->cur;
  bool inherited = seq <= h->lin->lv[0].floor;
  int r;

  if (!inherited) {
    while (!h->list_done &&
           (h->nlisted == 0 || h->listed[h->nlisted - 1] > seq))
      if ((r = hf_history_list_more (h)) != 0)
        return r;
    while (h->idx < h->nlisted && h->listed[h->idx] > seq)
      h->idx++;
  }
  if (!inherited && h->idx < h->nlisted && h->listed[h->idx] == seq) {
    if (h->idx >= h->nfetched)
      hf_history_fetch_to (h, h->idx);
    r = h->errs[h->idx];
    s = &h->hdrs[h->idx];
  }
  else                          /* a clone's base, or not listed */
    r = hf_history_read_hdr (h->lin, seq, &one);
  if (r && (h->npts == 0 || (r != ENOENT && r != EBADMSG))) {
    /* The store failing is an error, not a shorter history. */
    hf_error ("history: %s: reading segment %" PRIu64 ": %s",
              HF_OBJSTORE_NAME (h->store, h->prefix), seq, strerror (r));
    return r;
  }
  if (r) {
    /* Reclaimed by GC (ENOENT), or damaged (EBADMSG, logged by the
     * segment codec): the readable history ends here. */
    hf_debug ("history", "%s: the chain ends at %" PRIu64 " (segment %"
              PRIu64 ": %s)", h->prefix, h->pts[h->npts - 1].seq, seq,
              strerror (r));
    h->cur = 0;
    return 0;
  }
  if (h->npts > 0 && s->hdr_crc != h->want_crc) {
    hf_warn ("history: %s: segment %" PRIu64 " is not the parent of %"
             PRIu64 " (CRC link differs); the history ends there",
             HF_OBJSTORE_NAME (h->store, h->prefix), seq,
             h->pts[h->npts - 1].seq);
    h->cur = 0;
    return 0;
  }
  r = hf_history_push_point (h, s, inherited);
  if (r)
    return r;
  h->want_crc = s->parent_crc;
  if (inherited)
    h->cur = 0;                 /* the clone's base: its first point */
  else if (s->parent_seq >= seq) {
    hf_warn ("history: segment %" PRIu64 ": parent %" PRIu64
             " is not older", seq, s->parent_seq);
    h->cur = 0;
  }
  else
    h->cur = s->parent_seq;
  return 0;
}

/* Walk until the newest point found is at or below seq_floor and at or
 * before time_floor (0, 0: to the end).  Caller holds h->lock. */
static int
hf_history_walk (struct hf_history *h, uint64_t seq_floor,
                 uint64_t time_floor)
{
  int r;

  if (h->walk_err)
    return h->walk_err;
  while (h->cur != 0) {
    if (h->npts > 0) {
      const struct hf_point *last = &h->pts[h->npts - 1];
      if ((seq_floor || time_floor) && last->seq <= seq_floor &&
          last->timestamp_ns <= time_floor)
        break;
    }
    r = hf_history_step (h);
    if (r) {
      h->walk_err = r;
      return r;
    }
  }
  return 0;
}

int
hf_history_points (struct hf_history *h, const struct hf_point **out,
                   size_t *n)
{
  int r;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&h->lock);

  r = hf_history_walk (h, 0, 0);
  if (r)
    return r;
  *out = h->pts;
  *n = h->npts;
  return 0;
}

int
hf_history_point (struct hf_history *h, uint64_t seq, struct hf_point *out)
{
  struct hf_snapshot *sn = NULL;
  struct hf_seg_hdr hdr;
  size_t nsn = 0, i;
  int r;

  pthread_mutex_lock (&h->lock);
  r = hf_history_walk (h, seq, UINT64_MAX);
  for (i = 0; r == 0 && i < h->npts; i++)
    if (h->pts[i].seq == seq) {
      *out = h->pts[i];
      pthread_mutex_unlock (&h->lock);
      return 0;
    }
  pthread_mutex_unlock (&h->lock);
  if (r)
    return r;
  /* Older than where the chain ends (GC reclaimed segments between),
   * but kept by a snapshot: still a point of this volume. */
  if (seq < h->head && hf_snapshot_list (h->store, h->prefix, &sn, &nsn) == 0)
    for (i = 0; i < nsn; i++)
      if (sn[i].seq == seq &&
          hf_history_read_hdr (h->lin, seq, &hdr) == 0 &&
          hdr.timestamp_ns == sn[i].timestamp_ns) {
        *out = hf_history_point_of (&hdr, seq <= h->lin->lv[0].floor);
        free (sn);
        return 0;
      }
  free (sn);
  if (h->head == 0)
    hf_error ("history: %s has no point in time yet (nothing was "
              "committed)", HF_OBJSTORE_NAME (h->store, h->prefix));
  else
    hf_error ("history: %" PRIu64 " is not a point in time of %s (see "
              "`hyperfile ls`; the head is %" PRIu64 ")", seq,
              HF_OBJSTORE_NAME (h->store, h->prefix), h->head);
  return EINVAL;
}

/* ---- Time ---- */

static int
hf_history_digits (const char **s, int n, int *out)
{
  int v = 0, i;

  for (i = 0; i < n; i++) {
    if (!isdigit ((unsigned char) (*s)[i]))
      return -1;
    v = v * 10 + ((*s)[i] - '0');
  }
  *s += n;
  *out = v;
  return 0;
}

int
hf_history_parse_time (const char *s, uint64_t *ns)
{
  struct tm tm = { 0 };
  int Y, M, D, h, m, sec;
  uint64_t frac = 0, scale = 100000000;
  time_t t;
  static const int mdays[] = { 31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31 };

  if (hf_history_digits (&s, 4, &Y) || *s++ != '-' ||
      hf_history_digits (&s, 2, &M) || *s++ != '-' ||
      hf_history_digits (&s, 2, &D) || (*s != 'T' && *s != 't' && *s != ' '))
    return EINVAL;
  s++;
  if (hf_history_digits (&s, 2, &h) || *s++ != ':' ||
      hf_history_digits (&s, 2, &m) || *s++ != ':' ||
      hf_history_digits (&s, 2, &sec))
    return EINVAL;
  if (*s == '.' || *s == ',') {
    s++;
    if (!isdigit ((unsigned char) *s))
      return EINVAL;
    for (; isdigit ((unsigned char) *s); s++) {
      frac += (uint64_t) (*s - '0') * scale;    /* digits past ns: dropped */
      scale /= 10;
    }
  }
  if (!((s[0] == 'Z' || s[0] == 'z') && s[1] == '\0') &&
      strcmp (s, "+00:00") != 0 && strcmp (s, "-00:00") != 0 &&
      strcmp (s, "+0000") != 0)
    return EINVAL;
  if (Y < 1970 || M < 1 || M > 12 || D < 1 || D > mdays[M - 1] ||
      (M == 2 && D == 29 && !(Y % 4 == 0 && (Y % 100 != 0 || Y % 400 == 0)))
      || h > 23 || m > 59 || sec > 60)
    return EINVAL;
  tm.tm_year = Y - 1900;
  tm.tm_mon = M - 1;
  tm.tm_mday = D;
  tm.tm_hour = h;
  tm.tm_min = m;
  tm.tm_sec = sec;
  t = timegm (&tm);
  if (t < 0 || (uint64_t) t > UINT64_MAX / 1000000000 - 1)
    return EINVAL;
  *ns = (uint64_t) t * 1000000000 + frac;
  return 0;
}

void
hf_history_format_time (uint64_t ns, char *buf, size_t len)
{
  time_t t = (time_t) (ns / 1000000000);
  struct tm tm;
  char date[32];

  gmtime_r (&t, &tm);
  strftime (date, sizeof date, "%Y-%m-%dT%H:%M:%S", &tm);
  snprintf (buf, len, "%s.%09" PRIu64 "Z", date, ns % 1000000000);
}

static bool
hf_history_all_digits (const char *s)
{
  if (*s == '\0')
    return false;
  for (; *s; s++)
    if (!isdigit ((unsigned char) *s))
      return false;
  return true;
}

/* Does s look like an attempt at a time (so that a parse failure is a
 * bad time, not an unknown snapshot)?  Snapshot names cannot hold ':'. */
static bool
hf_history_timeish (const char *s)
{
  return strchr (s, ':') != NULL ||
    (strlen (s) >= 10 && isdigit ((unsigned char) s[0]) && s[4] == '-' &&
     s[7] == '-');
}

enum hf_history_at { HF_AT_SEQ, HF_AT_TIME, HF_AT_SNAPSHOT };

/* Classify and parse at (*v: the seq or the time in ns). */
static int
hf_history_parse_at (const char *at, enum hf_history_at *kind, uint64_t *v)
{
  char *end;

  if (hf_history_all_digits (at)) {
    errno = 0;
    *v = strtoull (at, &end, 10);
    if (errno || *end || *v == 0) {
      hf_error ("at=%s: a point in time is a segment number >= 1", at);
      return EINVAL;
    }
    *kind = HF_AT_SEQ;
    return 0;
  }
  if (hf_history_timeish (at)) {
    if (hf_history_parse_time (at, v) != 0) {
      hf_error ("at=%s: not a time in ISO 8601 UTC (expected "
                "YYYY-MM-DDTHH:MM:SS[.fraction]Z, e.g. "
                "2026-11-25T10:00:00Z)", at);
      return EINVAL;
    }
    *kind = HF_AT_TIME;
    return 0;
  }
  if (!hf_snapshot_name_valid (at)) {
    hf_error ("at=%s: neither a segment number, nor a time "
              "(YYYY-MM-DDTHH:MM:SSZ), nor a snapshot name "
              "([A-Za-z0-9._-], not starting with '.')", at);
    return EINVAL;
  }
  *kind = HF_AT_SNAPSHOT;
  return 0;
}

int
hf_history_check_at (const char *at)
{
  enum hf_history_at kind;
  uint64_t v;

  return hf_history_parse_at (at, &kind, &v);
}

int
hf_history_resolve (struct hf_history *h, const char *at, bool check_seq,
                    uint64_t *seq)
{
  enum hf_history_at kind;
  const struct hf_point *p;
  struct hf_point pt;
  struct hf_snapshot sn;
  uint64_t ns;
  size_t n, i;
  int r;

  r = hf_history_parse_at (at, &kind, &ns);
  if (r)
    return r;
  if (kind == HF_AT_SEQ) {
    if (check_seq && (r = hf_history_point (h, ns, &pt)) != 0)
      return r;
    *seq = ns;
    return 0;
  }
  if (kind == HF_AT_TIME) {
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&h->lock);
    r = hf_history_walk (h, UINT64_MAX, ns);
    if (r)
      return r;
    p = h->pts;
    n = h->npts;
    for (i = 0; i < n; i++)
      if (p[i].timestamp_ns <= ns) {
        *seq = p[i].seq;
        return 0;
      }
    if (n == 0)
      hf_error ("at=%s: the volume has no point in time yet", at);
    else {
      char first[40];
      hf_history_format_time (p[n - 1].timestamp_ns, first, sizeof first);
      hf_error ("at=%s: before the first point in time (segment %" PRIu64
                " at %s)", at, p[n - 1].seq, first);
    }
    return ENOENT;
  }
  r = hf_snapshot_get (h->store, h->prefix, at, &sn);
  if (r)
    return r;
  if (memcmp (sn.volume_uuid, hf_history_uuid (h), HF_UUID_SIZE) != 0) {
    hf_error ("snapshot %s: belongs to another volume (uuid differs)", at);
    return EBADMSG;
  }
  *seq = sn.seq;
  return 0;
}

/* ---- Snapshots ---- */

static int
hf_history_key (char *out, size_t len, const char *prefix, const char *dir,
                const char *name)
{
  if ((size_t) snprintf (out, len, "%s%s/%s", prefix, dir, name) >= len)
    return EINVAL;
  return 0;
}


/* A retried conditional put whose first attempt landed reports success
 * (objstore.h), so EEXIST here is someone else's object. */
static int
hf_history_put (struct hf_objstore *s, const char *key, const void *buf,
                size_t len)
{
  return hf_objstore_put_retry (s, key, buf, len, HF_PUT_IF_NONE_MATCH);
}

static int
hf_history_get_all (struct hf_objstore *s, const char *key, void **data,
                    size_t *len)
{
  return hf_objstore_get_all_retry (s, key, HF_OBJSTORE_SMALL_MAX, data,
                                    len);
}

int
hf_snapshot_create (struct hf_history *h, const char *name, uint64_t seq,
                    struct hf_snapshot *out)
{
  char key[HF_OBJSTORE_KEY_MAX + 1];
  uint8_t buf[HF_SN_SIZE];
  struct hf_snapshot sn = { 0 };
  struct hf_point pt;
  int r;

  if (!hf_snapshot_name_valid (name) || hf_history_all_digits (name)) {
    hf_error ("snapshot name '%s' is not valid: 1..%d characters of "
              "[A-Za-z0-9._-], not starting with '.', not only digits",
              name, HF_SN_NAME_MAX);
    return EINVAL;
  }
  if (seq == 0)
    seq = h->head;
  if (seq == 0) {
    hf_error ("snapshot %s: the volume has no point in time yet (nothing "
              "was committed)", name);
    return EINVAL;
  }
  r = hf_history_point (h, seq, &pt);
  if (r)
    return r;
  sn.seq = seq;
  sn.timestamp_ns = pt.timestamp_ns;
  sn.created_ns = hf_clock_wall_ns ();
  memcpy (sn.volume_uuid, hf_history_uuid (h), HF_UUID_SIZE);
  strcpy (sn.name, name);
  r = hf_snapshot_encode (&sn, buf);
  if (r == 0)
    r = hf_history_key (key, sizeof key, h->prefix, "snap", name);
  if (r == 0)
    r = hf_history_put (h->store, key, buf, sizeof buf);
  if (r == EEXIST)
    hf_error ("snapshot %s already exists (delete it first, or choose "
              "another name)", name);
  else if (r)
    hf_error ("snapshot %s: writing %s: %s", name, key, strerror (r));
  else if (out)
    *out = sn;
  return r;
}

static int
hf_snapshot_read (struct hf_objstore *s, const char *key, const char *name,
                  struct hf_snapshot *out)
{
  CLEANUP_FREE void *data = NULL;
  size_t len = 0, bad = 0;
  int r = hf_history_get_all (s, key, &data, &len);

  if (r == ENOENT)
    return ENOENT;
  if (r) {
    hf_error ("snapshot: reading %s: %s", key, strerror (r));
    return r;
  }
  r = hf_snapshot_decode (data, len, out, &bad);
  if (r == 0 && strcmp (out->name, name) != 0) {
    r = EBADMSG;
    bad = offsetof (struct hf_disk_snapshot, sn_name);
  }
  if (r)
    hf_error ("snapshot %s: corrupt at byte offset %zu", key, bad);
  return r;
}

int
hf_snapshot_get (struct hf_objstore *s, const char *prefix, const char *name,
                 struct hf_snapshot *out)
{
  char key[HF_OBJSTORE_KEY_MAX + 1];
  int r;

  if (!hf_snapshot_name_valid (name)) {
    hf_error ("snapshot name '%s' is not valid", name);
    return EINVAL;
  }
  r = hf_history_key (key, sizeof key, prefix, "snap", name);
  if (r)
    return r;
  r = hf_snapshot_read (s, key, name, out);
  if (r == ENOENT)
    hf_error ("snapshot %s does not exist (see `hyperfile snapshot list`)",
              name);
  return r;
}

/* Collecting the keys of a LIST, to read them after it ends. */
struct hf_history_keys {
  char **v;
  size_t n, cap;
};

static int
hf_history_collect (void *opaque, const char *key, uint64_t size)
{
  struct hf_history_keys *k = opaque;
  char *c;

  (void) size;
  if (k->n == k->cap) {
    size_t nc = k->cap ? k->cap * 2 : 16;
    char **nv = realloc (k->v, nc * sizeof *nv);
    if (nv == NULL)
      return ENOMEM;
    k->v = nv;
    k->cap = nc;
  }
  c = strdup (key);
  if (c == NULL)
    return ENOMEM;
  k->v[k->n++] = c;
  return 0;
}

static void
hf_history_keys_free (struct hf_history_keys *k)
{
  size_t i;

  for (i = 0; i < k->n; i++)
    free (k->v[i]);
  free (k->v);
}

static void
hf_history_keys_restart (void *opaque)
{
  struct hf_history_keys *k = opaque;

  hf_history_keys_free (k);
  *k = (struct hf_history_keys) { 0 };
}

static int
hf_history_list_keys (struct hf_objstore *s, const char *pfx,
                      struct hf_history_keys *k)
{
  int r;

  r = hf_objstore_list_retry (s, pfx, NULL, hf_history_collect, k,
                              hf_history_keys_restart);
  if (r)
    hf_error ("history: %s: listing %s: %s", hf_objstore_describe (s), pfx,
              strerror (r));
  return r;
}

/* Reads the object key, listed under prefix + area + "/" with name the
 * rest of the key, into *out.  Returns ENOENT without logging (the
 * object was deleted since the LIST); logs any other error. */
typedef int (*hf_history_read_fn) (struct hf_objstore *s, const char *prefix,
                                   const char *key, const char *name,
                                   void *out);

/* Read every object listed under prefix + area + "/" with read_one into
 * a new array (*n elements of size bytes each), skipping the ones
 * deleted since the LIST: snapshots and clone registrations.  Caller
 * owns *out (NULL if there are none); on error *out and *n are
 * unchanged. */
static int
hf_history_read_all (struct hf_objstore *s, const char *prefix,
                     const char *area, size_t size,
                     hf_history_read_fn read_one, void **out, size_t *n)
{
  char pfx[HF_OBJSTORE_KEY_MAX + 1];
  struct hf_history_keys k = { 0 };
  char *v = NULL;
  size_t i, m = 0, plen;
  int r;

  snprintf (pfx, sizeof pfx, "%s%s/", prefix, area);
  plen = strlen (pfx);
  r = hf_history_list_keys (s, pfx, &k);
  if (r == 0 && k.n && (v = calloc (k.n, size)) == NULL)
    r = ENOMEM;
  for (i = 0; r == 0 && i < k.n; i++) {
    r = read_one (s, prefix, k.v[i], k.v[i] + plen, v + m * size);
    if (r == ENOENT) {          /* deleted since the LIST */
      r = 0;
      continue;
    }
    if (r == 0)
      m++;
  }
  hf_history_keys_free (&k);
  if (r) {
    free (v);
    return r;
  }
  *out = v;
  *n = m;
  return 0;
}

/* hf_snapshot_read as an hf_history_read_fn. */
static int
hf_snapshot_read_listed (struct hf_objstore *s, const char *prefix,
                         const char *key, const char *name, void *out)
{
  (void) prefix;
  return hf_snapshot_read (s, key, name, out);
}

int
hf_snapshot_list (struct hf_objstore *s, const char *prefix,
                  struct hf_snapshot **out, size_t *n)
{
  void *v;
  int r = hf_history_read_all (s, prefix, "snap", sizeof **out,
                               hf_snapshot_read_listed, &v, n);

  if (r == 0)
    *out = v;
  return r;
}

int
hf_snapshot_delete (struct hf_objstore *s, const char *prefix,
                    const char *name)
{
  char key[HF_OBJSTORE_KEY_MAX + 1];
  struct hf_snapshot sn;
  int r;

  /* Read it first: deleting a name that does not exist is an error the
   * user wants to see (a typo), and the store's DELETE succeeds on it. */
  r = hf_snapshot_get (s, prefix, name, &sn);
  if (r)
    return r;
  hf_history_key (key, sizeof key, prefix, "snap", name);
  r = hf_objstore_delete (s, key);
  if (r)
    hf_error ("snapshot %s: deleting %s: %s", name, key, strerror (r));
  return r;
}

/* ---- Clone registrations ---- */

void
hf_clone_reg_key (char *out, size_t len, const char *prefix,
                  const uint8_t *uuid)
{
  char hex[2 * HF_UUID_SIZE + 1];
  int i;

  for (i = 0; i < HF_UUID_SIZE; i++)
    snprintf (hex + 2 * i, 3, "%02x", uuid[i]);
  snprintf (out, len, "%sclones/%s", prefix, hex);
}

int
hf_clone_reg_put (struct hf_objstore *s, const char *prefix,
                  const struct hf_clone_reg *cr)
{
  char key[HF_OBJSTORE_KEY_MAX + 1];
  uint8_t buf[HF_CR_SIZE];
  int r;

  r = hf_clone_reg_encode (cr, buf);
  if (r) {
    hf_error ("clone: the URL '%s' is empty or longer than %d bytes",
              cr->clone_url, HF_CR_URL_MAX - 1);
    return r;
  }
  hf_clone_reg_key (key, sizeof key, prefix, cr->clone_uuid);
  r = hf_history_put (s, key, buf, sizeof buf);
  if (r)
    hf_error ("clone: registering in %s: %s", key, strerror (r));
  return r;
}

/* Read the clone registration at key (an hf_history_read_fn) and check
 * that the key names the clone it registers. */
static int
hf_clone_reg_read (struct hf_objstore *s, const char *prefix,
                   const char *key, const char *name, void *out)
{
  struct hf_clone_reg *cr = out;
  CLEANUP_FREE void *data = NULL;
  char want[HF_OBJSTORE_KEY_MAX + 1];
  size_t len = 0, bad = 0;
  int r;

  (void) name;
  r = hf_history_get_all (s, key, &data, &len);
  if (r == ENOENT)
    return ENOENT;
  if (r) {
    hf_error ("clone: reading %s: %s", key, strerror (r));
    return r;
  }
  r = hf_clone_reg_decode (data, len, cr, &bad);
  if (r == 0) {
    hf_clone_reg_key (want, sizeof want, prefix, cr->clone_uuid);
    if (strcmp (want, key) != 0) {
      r = EBADMSG;
      bad = offsetof (struct hf_disk_clone_reg, cr_clone_uuid);
    }
  }
  if (r)
    hf_error ("clone registration %s: corrupt at byte offset %zu", key, bad);
  return r;
}

int
hf_clone_reg_list (struct hf_objstore *s, const char *prefix,
                   struct hf_clone_reg **out, size_t *n)
{
  void *v;
  int r = hf_history_read_all (s, prefix, "clones", sizeof **out,
                               hf_clone_reg_read, &v, n);

  if (r == 0)
    *out = v;
  return r;
}

int
hf_clone_reg_delete (struct hf_objstore *s, const char *prefix,
                     const uint8_t *uuid)
{
  char key[HF_OBJSTORE_KEY_MAX + 1];
  int r;

  hf_clone_reg_key (key, sizeof key, prefix, uuid);
  r = hf_objstore_delete (s, key);
  if (r)
    hf_error ("clone: deleting the registration %s: %s", key, strerror (r));
  return r;
}

enum hf_clone_state
hf_clone_reg_state (const struct hf_clone_reg *cr, bool parent_s3,
                    const struct hf_s3_config *cfg)
{
  struct hf_s3_config dflt = { .tls_verify = true };
  const char *url = cr->clone_url;
  bool s3 = strncmp (url, "s3://", 5) == 0;
  struct hf_objstore *s = NULL;
  char *prefix = NULL, key[HF_OBJSTORE_KEY_MAX + 1];
  uint8_t buf[HF_VD_SIZE];
  struct hf_vdesc d;
  size_t got = 0, bad;
  enum hf_clone_state st = HF_CLONE_UNKNOWN;
  int r;

  if (parent_s3 && !s3 && !(cfg && cfg->clone_parent_any)) {
    hf_debug ("volume", "clone registration of %s: a local directory, "
              "not followed from a volume in S3", url);
    return HF_CLONE_UNKNOWN;
  }
  if (!s3) {
    /* A missing directory is the answer (opening it would log an
     * error). */
    const char *path = strncmp (url, "file://", 7) == 0 ? url + 7 : url;
    struct stat sb;

    if (stat (path, &sb) == -1 && errno == ENOENT)
      return HF_CLONE_GONE;
  }
  r = hf_objstore_open_url (url, cfg ? cfg : &dflt, false, &s, &prefix);
  if (r == ENOENT)
    return HF_CLONE_GONE;
  if (r) {
    hf_warn ("clone registration of %s: cannot open its store: %s", url,
             strerror (r));
    return HF_CLONE_UNKNOWN;
  }
  snprintf (key, sizeof key, "%svolume", prefix);
  r = hf_objstore_get_retry (s, key, 0, sizeof buf, buf, &got);
  if (r == ENOENT)
    st = HF_CLONE_GONE;
  else if (r)
    hf_warn ("clone registration of %s: reading its descriptor: %s", url,
             strerror (r));
  else if (hf_vdesc_decode (buf, got, &d, &bad) != 0)
    hf_warn ("clone registration of %s: its descriptor is damaged at "
             "byte offset %zu", url, bad);
  else
    st = memcmp (d.uuid, cr->clone_uuid, HF_UUID_SIZE) == 0
      ? HF_CLONE_OK : HF_CLONE_REPLACED;
  hf_objstore_close (s);
  free (prefix);
  return st;
}

const char *
hf_clone_state_name (enum hf_clone_state st)
{
  switch (st) {
  case HF_CLONE_OK: return "ok";
  case HF_CLONE_GONE: return "gone";
  case HF_CLONE_REPLACED: return "replaced";
  default: return "unknown";
  }
}

/* ---- Clones ---- */

int
hf_clone_create (struct hf_history *src, const char *src_url, uint64_t base,
                 struct hf_objstore *dst, const char *dst_prefix,
                 const char *dst_url, uint64_t *seq_out)
{
  return hf_clone_create_key (src, src_url, base, dst, dst_prefix, dst_url,
                              NULL, seq_out);
}

int
hf_clone_create_key (struct hf_history *src, const char *src_url,
                     uint64_t base, struct hf_objstore *dst,
                     const char *dst_prefix, const char *dst_url,
                     const struct hf_user_key *uk, uint64_t *seq_out)
{
  uint8_t dkey[HF_CRYPT_KEY_SIZE];
  bool encrypted = hf_objstore_crypt_key (src->store, dkey);
  const struct hf_vdesc *sd = &src->lin->lv[0].d;
  char key[HF_OBJSTORE_KEY_MAX + 1];
  struct hf_objstore_info oi;
  struct hf_clone_reg cr = { 0 };
  struct hf_vdesc d = { 0 };
  struct hf_point pt;
  uint8_t buf[HF_VD_SIZE];
  int r;

  if (strlen (src_url) >= sizeof ((struct hf_disk_volume *) 0)->vd_parent_url
      || strlen (dst_url) >= HF_CR_URL_MAX) {
    hf_error ("clone: URLs must be shorter than 256 bytes");
    return EINVAL;
  }
  /* Never a volume in S3 whose parent is a local directory: it could
   * not be opened (hf_lineage_open refuses to follow it). */
  r = hf_lineage_check_parent (strncmp (dst_url, "s3://", 5) == 0, dst_url,
                               src_url, true);
  if (r)
    return r;
  if (base == 0)
    base = src->head;
  if (base == 0) {
    hf_error ("clone: %s has no point in time yet (nothing was "
              "committed)", src_url);
    return EINVAL;
  }
  r = hf_history_point (src, base, &pt);
  if (r)
    return r;
  snprintf (key, sizeof key, "%svolume", dst_prefix);
  r = hf_objstore_head (dst, key, &oi);
  if (r == 0) {
    hf_error ("clone: a volume already exists at %s", dst_url);
    return EEXIST;
  }
  if (r != ENOENT)
    return r;                   /* the store logged why */
  /* A clone of an encrypted volume shares its data key (it reads the
   * parent's segments), wrapped in its own descriptor with uk. */
  if (encrypted && uk == NULL) {
    hf_error ("clone: %s is encrypted: the clone needs a key to wrap its "
              "data key with", src_url);
    memset (dkey, 0, sizeof dkey);
    return ENOKEY;
  }

  if (getrandom (cr.clone_uuid, HF_UUID_SIZE, 0) != HF_UUID_SIZE)
    return EIO;
  cr.base_seq = base;
  cr.created_ns = hf_clock_wall_ns ();
  strcpy (cr.clone_url, dst_url);
  /* Registration first: from now on the parent's GC keeps the base. */
  r = hf_clone_reg_put (src->store, src->prefix, &cr);
  if (r)
    return r;

  d.flags = HF_VD_CLONE | (hf_objstore_lists_whole (dst)
                           ? HF_VD_SEG_GROUPS : 0);
  d.block_size = sd->block_size;
  memcpy (d.uuid, cr.clone_uuid, HF_UUID_SIZE);
  d.size = pt.volume_size;
  d.created_ns = cr.created_ns;
  d.parent_seq = base;
  memcpy (d.parent_uuid, sd->uuid, HF_UUID_SIZE);
  strcpy (d.parent_url, src_url);
  /* A clone compresses as its parent does. */
  d.codec = sd->codec;
  d.codec_level = sd->codec_level;
  if (encrypted) {
    r = hf_crypt_desc_seal (&d, uk, dkey);
    memset (dkey, 0, sizeof dkey);
    if (r) {
      hf_error ("clone: wrapping the data key: %s", strerror (r));
      hf_clone_reg_delete (src->store, src->prefix, cr.clone_uuid);
      return r;
    }
  }
  hf_vdesc_encode (&d, buf);
  r = hf_history_put (dst, key, buf, sizeof buf);
  if (r) {
    if (r == EEXIST)
      hf_error ("clone: a volume already exists at %s", dst_url);
    else
      hf_error ("clone: writing %s: %s", key, strerror (r));
    hf_clone_reg_delete (src->store, src->prefix, cr.clone_uuid);
    return r;
  }
  hf_debug ("history", "cloned %s at %" PRIu64 " as %s", src_url, base,
            dst_url);
  if (seq_out)
    *seq_out = base;
  return 0;
}
