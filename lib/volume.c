/* hyperfile: the volume engine (see volume.h for the contract and
 * format.h for the objects it writes).
 *
 * Moving parts
 * ------------
 * Write buffer.  Writes land in the "active" buffer (struct
 * hf_vol_buf): a hash from logical block to a slot in a growing array
 * of block-sized slots, plus a sorted list of zero runs for trim, zero
 * and all-zero blocks.  A zero run is one entry however long it is, so
 * trimming 1 TiB costs O(1) memory; blocks in the hash are always newer
 * than the zero runs covering them (a trim marks covered hash entries
 * as zero-tombstones).  Sub-block writes read-modify-write the block
 * through the normal read path and re-check, under the state lock, that
 * nobody wrote the block meanwhile (optimistic, retried).
 *
 * Sealing.  The active buffer is sealed (moved to the "sealed" list and
 * given the next seq) when it holds segment_size bytes, when it is
 * flush_interval_ms old (timer thread), on flush, grow and close.  A
 * sealed buffer is immutable and still serves reads.
 *
 * Building.  One builder thread turns sealed buffers into segment
 * objects in seq order: extent table (zero runs first, then data runs in
 * lba order, so data wins within a segment), block CRC table, data area;
 * it then remaps the buffer's hash onto the object's data area and frees
 * the slots.  Headers chain to the previously built segment
 * (sh_parent_seq and sh_parent_crc).
 *
 * Upload pipeline and commit ordering.  max_uploads uploader threads PUT
 * built segments with If-None-Match, in parallel and in any order.  A
 * landed segment is committed in memory only in seq order: when the
 * oldest sealed segment has landed it leaves the sealed list, its extents
 * join the delta and the head advances.  A crash with N+2 landed and N+1
 * not leaves N+2 an orphan (its parent link is broken), which open
 * ignores; a writer numbers its segments above every seq it saw, so an
 * orphan's key is never reused.  A failed PUT (EIO, ETIMEDOUT ...) is
 * retried forever with capped exponential backoff, keeping the data in
 * memory (dirty_limit back-pressure applies; flush gives up with EIO
 * after flush_timeout_ms but keeps the data).  EEXIST means another
 * writer took the seq, unless the object there is byte-identical in its
 * header (our own earlier attempt whose reply was lost): then we are
 * fenced: every later write fails with EROFS.
 *
 * Delta and checkpoints.  The delta is a sorted list of runs (struct
 * hf_vol_run) describing what committed segments since the last
 * checkpoint changed; it is consulted before the B+tree.  When the
 * extents or segments since the checkpoint exceed checkpoint_entries or
 * checkpoint_segments (or at close), the builder drains the pipeline
 * (waits until every earlier segment has committed), merges the delta
 * and the segment's own extents into the tree under the tree's write
 * lock, and writes the dirty nodes into the segment's node area
 * (format.h: a checkpoint includes its segment's own extents).  When that
 * segment commits the delta is emptied.  Until then the object stays in
 * memory and node reads of it are served from there.
 *
 * Read path.  Per block, newest first: active buffer, sealed segments
 * (newest first), delta, B+tree; then the data: in-memory bytes, zeros
 * for holes, or a ranged GET (hooks->cache_get first) that coalesces
 * neighbouring blocks of one segment; GETs of different ranges run in
 * parallel threads.  Every block is checked against its CRC32C:
 * mismatch is EBADMSG, logged with object key and offset.  Two reads in
 * a row that each start where the previous one ended wake the
 * read-ahead thread, which fetches the next contiguous physical run (up
 * to 2 MiB) into a small buffer keyed by (segment, block): physical
 * data is immutable, so that buffer never needs invalidating.
 *
 * Write-ahead log (opts->wal_dir).  A write's log record is reserved
 * (LSN and place) under the state lock, in the same critical section
 * that puts it into the active buffer, so log order is buffer order and
 * a replay rebuilds exactly what the buffer held; it is written after
 * the lock is dropped.  The reservation never waits there: when the
 * log is full it fails with EAGAIN, and the writer drops the lock, waits
 * for space (uploads commit and release it) and starts over.  flush and
 * FUA then cost one group-committed fdatasync instead of an upload.
 * Each segment records the newest record it holds (sh_wal_lsn, taken at
 * seal) and the log's id (sh_wal_id); once it commits, records up to
 * there are released.  Open replays the log's records above the head's
 * sh_wal_lsn if the head names this log.  If it names another log (or
 * none), the records here were superseded by a writer that committed
 * without them: they are discarded with a warning, and an empty segment
 * naming this log is committed before any write, so that a crash before
 * the next upload still finds its records replayable.
 *
 * Lease.  A writable open claims PREFIX "lease/" HEX16(~epoch) through
 * lease.c (see lease.h, format.h); a renewal thread here rewrites it
 * every ttl/3 after checking that no newer epoch exists (else: fenced).
 * close releases it.
 *
 * Retries.  The s3 store retries internally; the dir and fault stores do
 * not, so this file retries reads (segment metadata, nodes, blocks) up to
 * HF_VOL_IO_TRIES times on EIO/ETIMEDOUT with a short backoff (lease.c
 * does the same for lease operations), and segment uploads forever (see
 * above).
 *
 * Locks, in lock order (take only downwards):
 *   tree_lock (rwlock)  the B+tree: readers (lookup, iterate) shared;
 *                       insert/remove/checkpoint exclusive (builder).
 *   lock (mutex)        everything else mutable in struct hf_volume:
 *                       size, active, sealed list, delta, crc list,
 *                       seq/head/commit fields, fenced/broken/stop,
 *                       counters, lease state.  Never held across store
 *                       I/O or B+tree calls.  cv (condvar, with lock) is
 *                       broadcast on every state change.
 *   ra_lock (mutex)     the read-ahead state; a leaf: nothing else is
 *                       taken while holding it.
 * The builder's b_* fields are owned by the builder thread (and by open
 * before threads start).
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include "btree.h"
#include "cleanup.h"
#include "clock.h"
#include "crc32c.h"
#include "format.h"
#include "lease.h"
#include "lineage.h"
#include "log.h"
#include "segment.h"
#include "volume.h"
#include "wal.h"

#define HF_VOL_IO_TRIES 6
#define HF_VOL_MAX_CANDIDATES 16
#define HF_VOL_MAX_ZERO_RUNS 65536
/* Object buffers kept for reuse (see struct hf_volume). */
#define HF_VOL_SPARE_OBJS 3
/* Committed objects waiting to enter the cache.  Every uploader that
 * commits then drains the queue, so it rarely holds more than one
 * commit's worth; beyond this bound (memory) a segment is not cached. */
#define HF_VOL_CACHEQ_MAX 4
#define HF_VOL_READ_CHUNK 1024          /* blocks planned at once */
#define HF_VOL_READ_THREADS 8
#define HF_VOL_NO_SLOT UINT32_MAX       /* hash value: block zeroed */

/* ---- Run lists ----
 *
 * A run maps [lba, lba + n) either to a hole (data false) or to blocks
 * blk .. blk + n - 1 of segment seq with CRCs crc[0 .. n-1] (borrowed
 * from a segment's CRC table).  Lists are sorted and disjoint. */
struct hf_vol_run {
  uint64_t lba;
  uint64_t n;
  uint64_t seq;
  const uint32_t *crc;
  uint32_t blk;
  bool data;
};

struct hf_vol_runs {
  struct hf_vol_run *v;
  size_t n, cap;
};

static void
hf_vol_runs_free (struct hf_vol_runs *r)
{
  free (r->v);
  r->v = NULL;
  r->n = r->cap = 0;
}

/* Append x, coalescing with the last run when contiguous.  any_data:
 * data runs coalesce whatever their location (extents reporting). */
static int
hf_vol_runs_push (struct hf_vol_runs *r, const struct hf_vol_run *x,
                  bool any_data)
{
  if (x->n == 0)
    return 0;
  if (r->n > 0) {
    struct hf_vol_run *l = &r->v[r->n - 1];
    if (l->data == x->data && l->lba + l->n == x->lba &&
        (!x->data || any_data ||
         (l->seq == x->seq && l->blk + l->n == x->blk &&
          l->crc + l->n == x->crc && l->n + x->n <= UINT32_MAX))) {
      l->n += x->n;
      return 0;
    }
  }
  if (r->n == r->cap) {
    size_t nc = r->cap ? r->cap * 2 : 16;
    struct hf_vol_run *nv = realloc (r->v, nc * sizeof *nv);
    if (nv == NULL)
      return ENOMEM;
    r->v = nv;
    r->cap = nc;
  }
  r->v[r->n++] = *x;
  return 0;
}

static struct hf_vol_run
hf_vol_run_piece (const struct hf_vol_run *o, uint64_t from, uint64_t to)
{
  struct hf_vol_run p = *o;
  uint64_t k = from - o->lba;

  p.lba = from;
  p.n = to - from;
  if (o->data) {
    p.blk = o->blk + (uint32_t) k;
    p.crc = o->crc ? o->crc + k : NULL;
  }
  return p;
}

/* *out = old overlaid with nw (nw wins where they overlap).  Both are
 * sorted and disjoint; O(n + m). */
static int
hf_vol_runs_overlay (const struct hf_vol_run *old, size_t on,
                     const struct hf_vol_run *nw, size_t nn, bool any_data,
                     struct hf_vol_runs *out)
{
  size_t i, j = 0;
  struct hf_vol_run p;
  uint64_t cov = 0;             /* end of the last new run pushed */

  out->n = 0;
  for (i = 0; i < on; i++) {
    const struct hf_vol_run *o = &old[i];
    uint64_t pos = o->lba > cov ? o->lba : cov, end = o->lba + o->n;

    while (pos < end) {
      uint64_t nxt;
      while (j < nn && nw[j].lba <= pos) {
        if (hf_vol_runs_push (out, &nw[j], any_data))
          return ENOMEM;
        cov = nw[j].lba + nw[j].n;
        if (cov > pos)
          pos = cov;
        j++;
      }
      if (pos >= end)
        break;
      nxt = j < nn && nw[j].lba < end ? nw[j].lba : end;
      p = hf_vol_run_piece (o, pos, nxt);
      if (hf_vol_runs_push (out, &p, any_data))
        return ENOMEM;
      pos = nxt;
    }
  }
  for (; j < nn; j++)
    if (hf_vol_runs_push (out, &nw[j], any_data))
      return ENOMEM;
  return 0;
}

/* Index of the run containing lba, or -1. */
static ssize_t
hf_vol_runs_find (const struct hf_vol_runs *r, uint64_t lba)
{
  size_t lo = 0, hi = r->n;

  while (lo < hi) {
    size_t m = lo + (hi - lo) / 2;
    if (r->v[m].lba + r->v[m].n <= lba)
      lo = m + 1;
    else
      hi = m;
  }
  if (lo < r->n && r->v[lo].lba <= lba)
    return (ssize_t) lo;
  return -1;
}

/* Overlay r (in place) with nw. */
static int
hf_vol_runs_apply (struct hf_vol_runs *r, const struct hf_vol_run *nw,
                   size_t nn, bool any_data)
{
  struct hf_vol_runs out = { 0 };
  int e;

  if (nn == 0)
    return 0;
  e = hf_vol_runs_overlay (r->v, r->n, nw, nn, any_data, &out);
  if (e) {
    hf_vol_runs_free (&out);
    return e;
  }
  hf_vol_runs_free (r);
  *r = out;
  return 0;
}

/* The runs a segment's extent table describes, in table order resolved
 * (later extents win).  Consecutive sorted, disjoint extents are
 * overlaid as one batch, so the usual table (zero runs, then data runs)
 * costs two linear passes. */
static int
hf_vol_seg_runs (const struct hf_seg_meta *m, uint32_t bs,
                 struct hf_vol_runs *out)
{
  struct hf_vol_runs batch = { 0 };
  uint64_t di = 0, blk0 = m->h.data_off / bs;
  uint32_t i = 0;
  int e = 0;

  out->n = 0;
  while (i < m->h.n_ext) {
    batch.n = 0;
    do {
      const struct hf_seg_ext *x = &m->ext[i];
      struct hf_vol_run r = { .lba = x->lba, .n = x->nblocks };
      if (batch.n > 0) {
        const struct hf_vol_run *l = &batch.v[batch.n - 1];
        if (l->lba + l->n > x->lba)
          break;
      }
      if (x->flags == HF_EXT_DATA) {
        r.data = true;
        r.seq = m->h.seq;
        r.blk = (uint32_t) (blk0 + di);
        r.crc = &m->crcs[di];
        di += x->nblocks;
      }
      e = hf_vol_runs_push (&batch, &r, false);
      if (e)
        goto out;
      i++;
    } while (i < m->h.n_ext);
    e = hf_vol_runs_apply (out, batch.v, batch.n, false);
    if (e)
      goto out;
  }
 out:
  hf_vol_runs_free (&batch);
  return e;
}

/* ---- Write buffer ---- */
struct hf_vol_buf {
  uint64_t *keys;               /* lba + 1; 0 = empty */
  uint32_t *vals;               /* slot, or HF_VOL_NO_SLOT (zeroed) */
  size_t cap, used;             /* hash capacity (power of 2), keys used */
  uint8_t *slots;               /* n_slots blocks; NULL after build */
  const uint8_t *rdata;         /* where vals point: slots, or the
                                   object's data area after build */
  uint32_t n_slots, cap_slots;
  struct hf_vol_runs zeros;     /* sorted disjoint zero runs */
  uint64_t first_us;            /* time of the first change */
  uint64_t bytes;               /* n_slots * block size, for dirty */
  bool changed;
};

static void
hf_vol_buf_free (struct hf_vol_buf *b)
{
  if (b) {
    free (b->keys);
    free (b->vals);
    free (b->slots);
    hf_vol_runs_free (&b->zeros);
    free (b);
  }
}

static size_t
hf_vol_hash (uint64_t lba, size_t cap)
{
  return (size_t) ((lba * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

/* Position of lba in the hash, or SIZE_MAX. */
static size_t
hf_vol_buf_find (const struct hf_vol_buf *b, uint64_t lba)
{
  size_t i;

  if (b->cap == 0)
    return SIZE_MAX;
  for (i = hf_vol_hash (lba, b->cap);; i = (i + 1) & (b->cap - 1)) {
    if (b->keys[i] == lba + 1)
      return i;
    if (b->keys[i] == 0)
      return SIZE_MAX;
  }
}

static int
hf_vol_buf_grow (struct hf_vol_buf *b)
{
  size_t nc = b->cap ? b->cap * 2 : 1024, i;
  uint64_t *nk = calloc (nc, sizeof *nk);
  uint32_t *nv = malloc (nc * sizeof *nv);

  if (nk == NULL || nv == NULL) {
    free (nk);
    free (nv);
    return ENOMEM;
  }
  for (i = 0; i < b->cap; i++)
    if (b->keys[i]) {
      size_t j = hf_vol_hash (b->keys[i] - 1, nc);
      while (nk[j])
        j = (j + 1) & (nc - 1);
      nk[j] = b->keys[i];
      nv[j] = b->vals[i];
    }
  free (b->keys);
  free (b->vals);
  b->keys = nk;
  b->vals = nv;
  b->cap = nc;
  return 0;
}

/* Position of lba in the hash, inserted (value HF_VOL_NO_SLOT) if new. */
static int
hf_vol_buf_slot_of (struct hf_vol_buf *b, uint64_t lba, size_t *pos)
{
  size_t i;

  if ((b->used + 1) * 2 > b->cap && hf_vol_buf_grow (b))
    return ENOMEM;
  for (i = hf_vol_hash (lba, b->cap);; i = (i + 1) & (b->cap - 1)) {
    if (b->keys[i] == lba + 1)
      break;
    if (b->keys[i] == 0) {
      b->keys[i] = lba + 1;
      b->vals[i] = HF_VOL_NO_SLOT;
      b->used++;
      break;
    }
  }
  *pos = i;
  return 0;
}

/* Is lba inside a zero run of b? */
static bool
hf_vol_buf_in_zero (const struct hf_vol_buf *b, uint64_t lba)
{
  return hf_vol_runs_find (&b->zeros, lba) >= 0;
}

/* Add the zero run [lba, lba + n) to b->zeros, merging neighbours. */
static int
hf_vol_buf_add_zero (struct hf_vol_buf *b, uint64_t lba, uint64_t n)
{
  struct hf_vol_runs *z = &b->zeros;
  size_t lo = 0, hi = z->n, first, last;
  uint64_t s = lba, e = lba + n;

  /* first run with end >= lba */
  while (lo < hi) {
    size_t m = lo + (hi - lo) / 2;
    if (z->v[m].lba + z->v[m].n < lba)
      lo = m + 1;
    else
      hi = m;
  }
  first = lo;
  last = first;
  while (last < z->n && z->v[last].lba <= e) {
    if (z->v[last].lba < s)
      s = z->v[last].lba;
    if (z->v[last].lba + z->v[last].n > e)
      e = z->v[last].lba + z->v[last].n;
    last++;
  }
  if (last == first) {            /* insert at first */
    struct hf_vol_run r = { .lba = s, .n = e - s };
    if (z->n == z->cap) {
      size_t nc = z->cap ? z->cap * 2 : 16;
      struct hf_vol_run *nv = realloc (z->v, nc * sizeof *nv);
      if (nv == NULL)
        return ENOMEM;
      z->v = nv;
      z->cap = nc;
    }
    memmove (&z->v[first + 1], &z->v[first],
             (z->n - first) * sizeof *z->v);
    z->v[first] = r;
    z->n++;
  }
  else {
    z->v[first].lba = s;
    z->v[first].n = e - s;
    memmove (&z->v[first + 1], &z->v[last], (z->n - last) * sizeof *z->v);
    z->n -= last - first - 1;
  }
  return 0;
}

/* A committed segment's object on its way into the local cache. */
struct hf_vol_cacheq {
  struct hf_vol_cacheq *next;
  uint8_t *obj;
  size_t cap;
  uint64_t seq, node_off, data_off;
  uint32_t n_nodes, n_data;
};

/* ---- Sealed segments ---- */
enum hf_vol_seg_state {
  HF_VSEG_SEALED,               /* waiting for the builder */
  HF_VSEG_BUILT,                /* object ready, waiting for an uploader */
  HF_VSEG_UPLOADING,
  HF_VSEG_LANDED,               /* PUT succeeded, waiting for its turn */
};

struct hf_vol_seg {
  struct hf_vol_seg *next, *prev; /* sealed list, seq order */
  uint64_t seq;
  enum hf_vol_seg_state state;
  struct hf_vol_buf *buf;       /* frozen; serves reads until commit */
  uint64_t volume_size;         /* at seal */
  bool force_ckpt;
  bool rollback;                /* checkpoint flagged HF_SH_ROLLBACK */
  uint64_t wal_lsn;             /* newest WAL record held (with earlier
                                   segments) */
  /* Set by the builder: */
  uint8_t *obj;                 /* the whole object */
  size_t obj_cap;               /* bytes allocated at obj */
  struct hf_seg_meta meta;      /* header and tables (owned) */
  bool ckpt;
  /* Uploaders: */
  unsigned attempts;
  uint64_t retry_at_us;
};

static void
hf_vol_seg_free (struct hf_vol_seg *s)
{
  if (s) {
    hf_vol_buf_free (s->buf);
    free (s->obj);
    hf_seg_meta_free (&s->meta);
    free (s);
  }
}

/* ---- The volume ---- */
struct hf_volume {
  /* Immutable after open. */
  struct hf_objstore *store;    /* borrowed */
  char *prefix;
  struct hf_lineage *lin;       /* where each seq lives (clones) */
  struct hf_volume_options o;   /* defaults filled in */
  uint32_t bs;
  uint8_t uuid[HF_UUID_SIZE];
  bool readonly;
  bool auto_ckpt;               /* thresholds left at their defaults */

  pthread_rwlock_t tree_lock;   /* see the top of the file */
  struct hf_btree *tree;

  pthread_mutex_t lock;         /* see the top of the file */
  pthread_cond_t cv;
  uint64_t size;
  struct hf_vol_buf *active;
  struct hf_vol_seg *sealed, *sealed_tail;
  struct hf_vol_runs delta;
  uint32_t **crc_tabs;          /* CRC tables the delta points into */
  size_t n_crc_tabs, cap_crc_tabs;
  uint64_t next_seq;            /* next seq to seal */
  uint64_t committed_seq;       /* every sealed seq <= this committed */
  uint64_t head_seq, ckpt_seq;
  uint64_t ckpt_gen;            /* checkpoints committed (delta cleared) */
  uint64_t dirty_bytes;
  struct hf_lease lease;        /* lease.c; epoch etc. fixed after open */
  uint64_t lease_ok_us;         /* monotonic time of the last renewal */
  bool fenced;
  int broken;                   /* sticky error (tree merge failed) */
  bool stop, crashed;
  unsigned uploading;
  struct hf_volume_info st;     /* counters part of the info */

  /* Write-ahead log (NULL: none).  wal_id is immutable after open; the
   * rest is under lock. */
  struct hf_wal *wal;
  uint64_t wal_id;
  uint64_t wal_applied;         /* newest record applied to a buffer */
  uint64_t wal_release_upto;    /* committed: may be released */
  uint64_t wal_released;
  bool wal_replaying;           /* defer releases (replay reads the log) */
  uint64_t head_wal_lsn, head_wal_id;   /* of the head found at open */

  /* One spare slot array and one spare object buffer (under lock),
   * recycled from built and committed segments: fresh 32 MiB buffers
   * cost a page fault and a cleared page per 4 KiB, which at full write
   * speed was a tenth of the CPU.  Bounded: one slot array, and up to
   * HF_VOL_SPARE_OBJS object buffers (below). */
  uint8_t *spare_slots;
  size_t spare_slots_len;
  /* Object buffers of committed segments kept for the builder: a fresh
   * 32 MiB buffer costs ~8000 page faults (~6% of the CPU of a random
   * write load measured here). */
  struct { uint8_t *p; size_t cap; } spare_obj[HF_VOL_SPARE_OBJS];
  unsigned n_spare_obj;
  /* Committed segments whose blocks are still to enter the local cache
   * (see hf_vol_cache_or_recycle_locked). */
  struct hf_vol_cacheq *cacheq, *cacheq_tail;
  unsigned n_cacheq;

  /* Builder state (builder thread only). */
  uint64_t b_parent_seq;
  uint32_t b_parent_crc;
  uint64_t b_ckpt_seq;
  struct hf_btree_root b_root;
  uint64_t b_mapped;
  uint64_t b_segs_since, b_ext_since;

  pthread_t builder, timer, leaser, *uploaders;
  unsigned n_uploaders;
  bool builder_started, timer_started, leaser_started;

  /* Read-ahead.  ra_lock protects every ra_* field; it is a leaf lock
   * (nothing else is taken while holding it).  The buffer holds verified
   * physical blocks [ra_blk, ra_blk + ra_n) of segment ra_seq, which are
   * immutable, so it never needs invalidating. */
  pthread_mutex_t ra_lock;
  pthread_cond_t ra_cv;
  uint64_t ra_expect;           /* where a sequential read would start */
  unsigned ra_streak;
  bool ra_req, ra_stop;
  uint64_t ra_req_lba, ra_done_lba;
  uint64_t ra_seq;
  uint32_t ra_blk, ra_n;
  uint8_t *ra_data;
  pthread_t ra_thread;
  bool ra_started;
};

#define HF_VOL_RA_BYTES (2u << 20)



/* Wait on v->cv until the monotonic time deadline_us (0 = no
 * deadline, but wake at least every second).  Caller holds v->lock. */
static void
hf_vol_wait (struct hf_volume *v, uint64_t deadline_us)
{
  struct timespec ts;
  uint64_t now = hf_clock_mono_us (), until = now + 1000000;

  if (deadline_us && deadline_us < until)
    until = deadline_us;
  clock_gettime (CLOCK_REALTIME, &ts);
  until = until - now + (uint64_t) ts.tv_sec * 1000000 +
    (uint64_t) ts.tv_nsec / 1000;
  ts.tv_sec = (time_t) (until / 1000000);
  ts.tv_nsec = (long) (until % 1000000) * 1000;
  pthread_cond_timedwait (&v->cv, &v->lock, &ts);
}



/* Ranged GET with the volume's retry policy (see the top). */
static int
hf_vol_get (struct hf_objstore *s, const char *key, uint64_t off, size_t len,
            void *buf, size_t *got)
{
  int r = EIO, i;

  for (i = 0; i < HF_VOL_IO_TRIES; i++) {
    if (i)
      hf_clock_sleep_us (2000u << i);
    r = hf_objstore_get (s, key, off, len, buf, got);
    if (!hf_objstore_retryable (r))
      return r;
  }
  return r;
}

/* ---- Reading blocks and nodes ---- */

/* The key of segment seq, and the store holding it: the volume's own,
 * or for a clone's seq <= its base, an ancestor's (lineage.h). */
static struct hf_objstore *
hf_vol_seg_loc (const struct hf_volume *v, uint64_t seq, char *key,
                size_t len)
{
  const struct hf_lineage_level *lv = hf_lineage_locate (v->lin, seq);

  hf_seg_key (key, len, lv->prefix, seq);
  return lv->store;
}

/* Copy bytes of segment seq at off from its in-memory object, if it is
 * still pending.  0, or ENOENT if not in memory. */
static int
hf_vol_mem_object (struct hf_volume *v, uint64_t seq, uint64_t off,
                   void *buf, size_t len)
{
  struct hf_vol_seg *s;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&v->lock);

  for (s = v->sealed; s; s = s->next)
    if (s->seq == seq) {
      if (s->obj == NULL || off + len > s->meta.h.object_size)
        return ENOENT;
      memcpy (buf, s->obj + off, len);
      return 0;
    }
  return ENOENT;
}


/* Read exactly len bytes of a segment object into buf: a missing object
 * or a short one is corruption of the volume (EBADMSG, logged with the
 * object and offset of what is missing), other errors pass through. */
static int
hf_vol_get_exact (struct hf_objstore *s, const char *key, uint64_t off,
                  size_t len, void *buf, const char *what)
{
  size_t got = 0;
  int r = hf_vol_get (s, key, off, len, buf, &got);

  if (r == ENOENT) {
    hf_error ("volume: %s at %s offset %" PRIu64 ": object missing",
              what, key, off);
    return EBADMSG;
  }
  if (r)
    return r;
  if (got != len) {
    hf_error ("segment %s: corrupt at byte offset %" PRIu64
              ": %s truncated", key, off + got, what);
    return EBADMSG;
  }
  return 0;
}

static int
hf_vol_read_node (void *opaque, const struct hf_disk_node_ptr *ptr, void *buf)
{
  struct hf_volume *v = opaque;
  const struct hf_volume_hooks *hk = v->o.hooks;
  char key[HF_OBJSTORE_KEY_MAX + 1];
  uint64_t off = (uint64_t) ptr->np_off * HF_NODE_SIZE;
  int r;

  if (hf_vol_mem_object (v, ptr->np_seq, off, buf, HF_NODE_SIZE) == 0)
    return 0;
  if (hk && hk->cache_get &&
      hk->cache_get (hk->opaque, ptr->np_seq, off, buf, HF_NODE_SIZE) == 0)
    return 0;
  r = hf_vol_get_exact (hf_vol_seg_loc (v, ptr->np_seq, key, sizeof key),
                        key, off, HF_NODE_SIZE, buf, "node");
  if (r)
    return r;
  if (hk && hk->cache_put)
    hk->cache_put (hk->opaque, ptr->np_seq, off, buf, HF_NODE_SIZE);
  return 0;
}

/* Copy blocks [blk, blk + n) of segment seq from the read-ahead
 * buffer: 0, or ENOENT if it does not hold all of them. */
static int
hf_vol_ra_get (struct hf_volume *v, uint64_t seq, uint32_t blk, uint32_t n,
               uint8_t *buf)
{
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&v->ra_lock);

  if (v->ra_n == 0 || v->ra_seq != seq || blk < v->ra_blk ||
      (uint64_t) blk + n > (uint64_t) v->ra_blk + v->ra_n)
    return ENOENT;
  memcpy (buf, v->ra_data + (size_t) (blk - v->ra_blk) * v->bs,
          (size_t) n * v->bs);
  return 0;
}

/* Fetch n blocks of segment seq starting at block blk into buf and
 * verify them against crcs.  Pending objects, the read-ahead buffer
 * and the cache hook are tried first. */
static int
hf_vol_fetch (struct hf_volume *v, uint64_t seq, uint32_t blk, uint32_t n,
              const uint32_t *crcs, uint8_t *buf)
{
  const struct hf_volume_hooks *hk = v->o.hooks;
  char key[HF_OBJSTORE_KEY_MAX + 1];
  uint64_t off = (uint64_t) blk * v->bs;
  size_t len = (size_t) n * v->bs;
  bool from_cache = false;
  struct hf_objstore *st;
  uint32_t i;
  int r;

  st = hf_vol_seg_loc (v, seq, key, sizeof key);
  if (hf_vol_mem_object (v, seq, off, buf, len) == 0 ||
      hf_vol_ra_get (v, seq, blk, n, buf) == 0)
    from_cache = true;
  else if (hk && hk->cache_get &&
           hk->cache_get (hk->opaque, seq, off, buf, len) == 0) {
    from_cache = true;
    pthread_mutex_lock (&v->lock);
    v->st.cache_hits++;
    pthread_mutex_unlock (&v->lock);
  }
  if (from_cache) {
    for (i = 0; i < n; i++)
      if (hf_crc32c (0, buf + (size_t) i * v->bs, v->bs) != crcs[i])
        break;
    if (i == n)
      return 0;
    /* A bad cached copy: fall back to the store. */
  }
  if (hk && hk->cache_get) {
    pthread_mutex_lock (&v->lock);
    v->st.cache_misses++;
    pthread_mutex_unlock (&v->lock);
  }
  r = hf_vol_get_exact (st, key, off, len, buf, "data block");
  if (r)
    return r;
  for (i = 0; i < n; i++)
    if (hf_crc32c (0, buf + (size_t) i * v->bs, v->bs) != crcs[i]) {
      hf_error ("segment %s: corrupt at byte offset %" PRIu64
                ": data block CRC mismatch", key,
                off + (uint64_t) i * v->bs);
      return EBADMSG;
    }
  if (hk && hk->cache_put)
    hk->cache_put (hk->opaque, seq, off, buf, len);
  return 0;
}

/* Where a block is, as resolved by the read path. */
enum hf_vol_where {
  HF_VW_NONE,                   /* not in memory or delta: ask the tree */
  HF_VW_MEM,                    /* bytes in memory (copied) */
  HF_VW_ZERO,                   /* a hole */
  HF_VW_STORE,                  /* (seq, blk, crc) in the store */
};

struct hf_vol_loc {
  enum hf_vol_where where;
  uint64_t seq;
  uint32_t blk, crc;
};

/* Look lba up in buffer b: the slot's bytes, or NULL with *zero set if
 * zeroed, or NULL with *zero clear if b does not know it. */
static const uint8_t *
hf_vol_buf_lookup (const struct hf_vol_buf *b, uint32_t bs, uint64_t lba,
                   bool *zero)
{
  size_t i = hf_vol_buf_find (b, lba);

  *zero = false;
  if (i != SIZE_MAX && b->vals[i] != HF_VOL_NO_SLOT)
    return b->rdata + (size_t) b->vals[i] * bs;
  if ((i != SIZE_MAX) || hf_vol_buf_in_zero (b, lba))
    *zero = true;
  return NULL;
}

/* Resolve lba in memory and the delta.  If the bytes are in memory and
 * copy is not NULL, they are copied there.  Caller holds v->lock. */
static void
hf_vol_resolve_locked (struct hf_volume *v, uint64_t lba, uint8_t *copy,
                       struct hf_vol_loc *loc)
{
  const uint8_t *p;
  bool zero;
  struct hf_vol_seg *s;
  ssize_t k;

  memset (loc, 0, sizeof *loc);
  if (v->active) {
    p = hf_vol_buf_lookup (v->active, v->bs, lba, &zero);
    if (p || zero)
      goto found;
  }
  /* Sealed segments, newest first. */
  for (s = v->sealed_tail; s; s = s->prev) {
    p = hf_vol_buf_lookup (s->buf, v->bs, lba, &zero);
    if (p || zero)
      goto found;
  }
  k = hf_vol_runs_find (&v->delta, lba);
  if (k >= 0) {
    const struct hf_vol_run *r = &v->delta.v[k];
    if (!r->data) {
      loc->where = HF_VW_ZERO;
      if (copy)
        memset (copy, 0, v->bs);
    }
    else {
      loc->where = HF_VW_STORE;
      loc->seq = r->seq;
      loc->blk = r->blk + (uint32_t) (lba - r->lba);
      loc->crc = r->crc[lba - r->lba];
    }
    return;
  }
  loc->where = HF_VW_NONE;
  return;

 found:
  if (p) {
    loc->where = HF_VW_MEM;
    if (copy)
      memcpy (copy, p, v->bs);
  }
  else {
    loc->where = HF_VW_ZERO;
    if (copy)
      memset (copy, 0, v->bs);
  }
}

/* Resolve a HF_VW_NONE location through the tree. */
static int
hf_vol_resolve_tree (struct hf_volume *v, uint64_t lba, struct hf_vol_loc *loc)
{
  struct hf_bmap m;
  int r;

  r = hf_btree_lookup (v->tree, lba, &m);
  if (r == ENOENT) {
    loc->where = HF_VW_ZERO;
    return 0;
  }
  if (r)
    return r;
  loc->where = HF_VW_STORE;
  loc->seq = m.seq;
  loc->blk = m.blk;
  loc->crc = m.crc;
  return 0;
}

/* One coalesced GET of the read path. */
struct hf_vol_rgroup {
  uint64_t lba;                 /* first block */
  uint64_t seq;
  uint32_t blk, n;
  uint32_t *crcs;               /* into the plan's crc array */
  uint8_t *out;                 /* n blocks, bounce buffer */
  int err;
};

struct hf_vol_rjob {
  struct hf_volume *v;
  struct hf_vol_rgroup *g;
  size_t ng, first, step;
};

static void *
hf_vol_read_worker (void *arg)
{
  struct hf_vol_rjob *j = arg;
  size_t i;

  for (i = j->first; i < j->ng; i += j->step) {
    struct hf_vol_rgroup *g = &j->g[i];
    g->err = hf_vol_fetch (j->v, g->seq, g->blk, g->n, g->crcs, g->out);
  }
  return NULL;
}

/* Copy the part of block lba (bytes blk) that overlaps the request. */
static void
hf_vol_copy_out (uint8_t *dst, uint64_t off, size_t count, uint64_t lba,
                 uint32_t bs, const uint8_t *blk)
{
  uint64_t bstart = lba * bs, s = bstart > off ? bstart : off;
  uint64_t e = bstart + bs < off + count ? bstart + bs : off + count;

  if (blk)
    memcpy (dst + (s - off), blk + (s - bstart), e - s);
  else
    memset (dst + (s - off), 0, e - s);
}

/* Read the blocks [lba0, lba0 + n) overlapping [off, off + count) into
 * dst (dst corresponds to off). */
static int
hf_vol_read_chunk (struct hf_volume *v, uint8_t *dst, uint64_t off,
                   size_t count, uint64_t lba0, uint32_t n)
{
  CLEANUP_FREE struct hf_vol_loc *locs = calloc (n, sizeof *locs);
  CLEANUP_FREE uint8_t *tmp = malloc (v->bs);
  CLEANUP_FREE struct hf_vol_rgroup *g = NULL;
  CLEANUP_FREE uint32_t *crcs = NULL;
  CLEANUP_FREE uint8_t *bounce = NULL;
  size_t ng = 0, nfetch = 0, i, k;
  uint32_t b;
  int r = 0;

  if (locs == NULL || tmp == NULL)
    return ENOMEM;
  pthread_mutex_lock (&v->lock);
  for (b = 0; b < n; b++) {
    hf_vol_resolve_locked (v, lba0 + b, tmp, &locs[b]);
    if (locs[b].where == HF_VW_MEM)
      hf_vol_copy_out (dst, off, count, lba0 + b, v->bs, tmp);
  }
  pthread_mutex_unlock (&v->lock);

  pthread_rwlock_rdlock (&v->tree_lock);
  for (b = 0; b < n && r == 0; b++)
    if (locs[b].where == HF_VW_NONE)
      r = hf_vol_resolve_tree (v, lba0 + b, &locs[b]);
  pthread_rwlock_unlock (&v->tree_lock);
  if (r)
    return r;

  for (b = 0; b < n; b++) {
    if (locs[b].where == HF_VW_ZERO)
      hf_vol_copy_out (dst, off, count, lba0 + b, v->bs, NULL);
    else if (locs[b].where == HF_VW_STORE)
      nfetch++;
  }
  if (nfetch == 0)
    return 0;

  g = calloc (nfetch, sizeof *g);
  crcs = malloc (nfetch * sizeof *crcs);
  bounce = malloc (nfetch * (size_t) v->bs);
  if (g == NULL || crcs == NULL || bounce == NULL)
    return ENOMEM;
  k = 0;
  for (b = 0; b < n; b++) {
    struct hf_vol_loc *l = &locs[b];
    if (l->where != HF_VW_STORE)
      continue;
    if (ng > 0 && g[ng - 1].seq == l->seq &&
        g[ng - 1].blk + g[ng - 1].n == l->blk &&
        g[ng - 1].lba + g[ng - 1].n == lba0 + b)
      g[ng - 1].n++;
    else {
      g[ng].lba = lba0 + b;
      g[ng].seq = l->seq;
      g[ng].blk = l->blk;
      g[ng].n = 1;
      g[ng].crcs = &crcs[k];
      g[ng].out = bounce + k * v->bs;
      ng++;
    }
    crcs[k++] = l->crc;
  }

  if (ng == 1) {
    struct hf_vol_rjob j = { v, g, ng, 0, 1 };
    hf_vol_read_worker (&j);
  }
  else {
    size_t nt = ng < HF_VOL_READ_THREADS ? ng : HF_VOL_READ_THREADS;
    pthread_t th[HF_VOL_READ_THREADS];
    struct hf_vol_rjob jobs[HF_VOL_READ_THREADS];
    bool started[HF_VOL_READ_THREADS];

    for (i = 0; i < nt; i++) {
      jobs[i] = (struct hf_vol_rjob) { v, g, ng, i, nt };
      started[i] = i > 0 &&
        pthread_create (&th[i], NULL, hf_vol_read_worker, &jobs[i]) == 0;
    }
    for (i = 0; i < nt; i++)
      if (!started[i])
        hf_vol_read_worker (&jobs[i]);
    for (i = 1; i < nt; i++)
      if (started[i])
        pthread_join (th[i], NULL);
  }
  for (i = 0; i < ng; i++) {
    if (g[i].err)
      return g[i].err;
    for (b = 0; b < g[i].n; b++)
      hf_vol_copy_out (dst, off, count, g[i].lba + b, v->bs,
                       g[i].out + (size_t) b * v->bs);
  }
  return 0;
}

/* Sequential read detection: after two reads that each start where the
 * previous ended, ask the read-ahead thread for the next
 * HF_VOL_RA_BYTES. */
static void
hf_vol_ra_note (struct hf_volume *v, uint64_t offset, size_t count)
{
  uint64_t next_lba = (offset + count + v->bs - 1) / v->bs;
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&v->ra_lock);

  if (!v->ra_started)
    return;
  v->ra_streak = offset == v->ra_expect ? v->ra_streak + 1 : 0;
  v->ra_expect = offset + count;
  if (v->ra_streak >= 2 &&
      next_lba + HF_VOL_RA_BYTES / v->bs / 2 > v->ra_done_lba) {
    v->ra_req = true;
    v->ra_req_lba = next_lba > v->ra_done_lba ? next_lba : v->ra_done_lba;
    pthread_cond_signal (&v->ra_cv);
  }
}

/* The read-ahead thread: resolve the requested range and fetch the
 * first run of blocks that are contiguous in one segment. */
static void *
hf_vol_ra_thread (void *arg)
{
  struct hf_volume *v = arg;
  uint32_t max = HF_VOL_RA_BYTES / v->bs;
  uint8_t *data = malloc (HF_VOL_RA_BYTES);
  uint32_t *crcs = malloc (max * sizeof *crcs);

  pthread_mutex_lock (&v->ra_lock);
  while (data && crcs && !v->ra_stop) {
    uint64_t lba, size, seq = 0;
    uint32_t i, n = 0, blk0 = 0, scanned = 0;

    if (!v->ra_req) {
      pthread_cond_wait (&v->ra_cv, &v->ra_lock);
      continue;
    }
    v->ra_req = false;
    lba = v->ra_req_lba;
    pthread_mutex_unlock (&v->ra_lock);

    pthread_mutex_lock (&v->lock);
    size = v->size / v->bs;
    pthread_mutex_unlock (&v->lock);
    for (i = 0; i < max && lba + i < size; i++) {
      struct hf_vol_loc l;
      pthread_mutex_lock (&v->lock);
      hf_vol_resolve_locked (v, lba + i, NULL, &l);
      pthread_mutex_unlock (&v->lock);
      if (l.where == HF_VW_NONE) {
        pthread_rwlock_rdlock (&v->tree_lock);
        if (hf_vol_resolve_tree (v, lba + i, &l))
          l.where = HF_VW_ZERO;
        pthread_rwlock_unlock (&v->tree_lock);
      }
      scanned = i + 1;
      if (l.where != HF_VW_STORE) {
        if (n)
          break;
        continue;
      }
      if (n == 0) {
        seq = l.seq;
        blk0 = l.blk;
      }
      else if (l.seq != seq || l.blk != blk0 + n)
        break;
      crcs[n++] = l.crc;
    }
    if (n && hf_vol_fetch (v, seq, blk0, n, crcs, data) == 0) {
      pthread_mutex_lock (&v->ra_lock);
      memcpy (v->ra_data, data, (size_t) n * v->bs);
      v->ra_seq = seq;
      v->ra_blk = blk0;
      v->ra_n = n;
      v->ra_done_lba = lba + scanned;
    }
    else {
      pthread_mutex_lock (&v->ra_lock);
      v->ra_done_lba = lba + scanned;
    }
  }
  pthread_mutex_unlock (&v->ra_lock);
  free (data);
  free (crcs);
  return NULL;
}

int
hf_volume_pread (struct hf_volume *v, void *buf, size_t count,
                 uint64_t offset)
{
  uint64_t size, lba, end_lba;
  int r;

  pthread_mutex_lock (&v->lock);
  size = v->size;
  pthread_mutex_unlock (&v->lock);
  if (offset > size || count > size - offset)
    return EINVAL;
  if (count == 0)
    return 0;
  lba = offset / v->bs;
  end_lba = (offset + count + v->bs - 1) / v->bs;
  while (lba < end_lba) {
    uint32_t n = end_lba - lba > HF_VOL_READ_CHUNK ? HF_VOL_READ_CHUNK
      : (uint32_t) (end_lba - lba);
    r = hf_vol_read_chunk (v, buf, offset, count, lba, n);
    if (r)
      return r;
    lba += n;
  }
  pthread_mutex_lock (&v->lock);
  v->st.bytes_read += count;
  pthread_mutex_unlock (&v->lock);
  hf_vol_ra_note (v, offset, count);
  return 0;
}

int
hf_volume_prefetch (struct hf_volume *v, uint64_t count, uint64_t offset)
{
  /* With a cache hook: read the range so that the hook keeps it.
   * Without one: a read-ahead request for its start. */
  const struct hf_volume_hooks *hk = v->o.hooks;
  CLEANUP_FREE uint8_t *buf = NULL;
  uint64_t size;

  pthread_mutex_lock (&v->lock);
  size = v->size;
  pthread_mutex_unlock (&v->lock);
  if (offset > size || count > size - offset)
    return EINVAL;
  if (count == 0)
    return 0;
  if (hk == NULL || hk->cache_put == NULL) {
    /* No cache: let the read-ahead thread fetch the start of it. */
    ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&v->ra_lock);
    if (v->ra_started) {
      v->ra_req = true;
      v->ra_req_lba = offset / v->bs;
      pthread_cond_signal (&v->ra_cv);
    }
    return 0;
  }
  if (count > 8 << 20)
    count = 8 << 20;
  buf = malloc (count);
  if (buf == NULL)
    return ENOMEM;
  return hf_volume_pread (v, buf, count, offset);
}

/* ---- Write path ---- */

/* Seal the active buffer (if it holds anything, or force).  Caller
 * holds v->lock. */
static int
hf_vol_seal_locked (struct hf_volume *v, bool force, bool force_ckpt)
{
  struct hf_vol_seg *s;
  struct hf_vol_buf *nb;

  if (!force && !force_ckpt && (v->active == NULL || !v->active->changed))
    return 0;
  s = calloc (1, sizeof *s);
  nb = calloc (1, sizeof *nb);
  if (s == NULL || nb == NULL) {
    free (s);
    free (nb);
    return ENOMEM;
  }
  s->seq = v->next_seq++;
  s->state = HF_VSEG_SEALED;
  s->buf = v->active;
  s->volume_size = v->size;
  s->force_ckpt = force_ckpt;
  s->wal_lsn = v->wal_applied;
  if (s->buf == NULL)
    s->buf = nb, nb = NULL;
  s->prev = v->sealed_tail;
  if (v->sealed_tail)
    v->sealed_tail->next = s;
  else
    v->sealed = s;
  v->sealed_tail = s;
  if (nb == NULL) {
    nb = calloc (1, sizeof *nb);
    if (nb == NULL)
      return ENOMEM;    /* active stays NULL: allocated on next write */
  }
  v->active = nb;
  hf_debug ("volume", "sealed seq %" PRIu64 " (%" PRIu64 " bytes)",
            s->seq, s->buf->bytes);
  pthread_cond_broadcast (&v->cv);
  return 0;
}

static int
hf_vol_write_err_locked (struct hf_volume *v)
{
  if (v->readonly || v->fenced)
    return EROFS;
  if (v->broken)
    return v->broken;
  if (v->stop)
    return EIO;
  return 0;
}

/* Wait until there is room for more dirty data (a write may then
 * overshoot dirty_limit by its own size).  Caller holds lock. */
static int
hf_vol_wait_room_locked (struct hf_volume *v)
{
  bool waited = false;
  int r;

  while ((r = hf_vol_write_err_locked (v)) == 0 &&
         v->dirty_bytes >= v->o.dirty_limit) {
    if (!waited) {
      waited = true;
      v->st.dirty_waits++;
    }
    if (v->active && v->active->changed &&
        v->active->bytes * 2 >= v->dirty_bytes) {
      r = hf_vol_seal_locked (v, false, false);
      if (r)
        return r;
    }
    hf_vol_wait (v, 0);
  }
  return r;
}

static void
hf_vol_touch (struct hf_volume *v, struct hf_vol_buf *b)
{
  if (!b->changed) {
    b->changed = true;
    b->first_us = hf_clock_mono_us ();
  }
}

static bool
hf_vol_all_zero (const uint8_t *p, size_t n)
{
  size_t i;

  for (i = 0; i < n; i++)
    if (p[i])
      return false;
  return true;
}

/* Put one whole block into the active buffer.  Caller holds lock. */
static int
hf_vol_put_block_locked (struct hf_volume *v, uint64_t lba,
                         const uint8_t *data)
{
  struct hf_vol_buf *b;
  size_t pos;
  int r;

  if (v->active == NULL) {
    v->active = calloc (1, sizeof *v->active);
    if (v->active == NULL)
      return ENOMEM;
  }
  b = v->active;
  if (hf_vol_all_zero (data, v->bs)) {
    pos = hf_vol_buf_find (b, lba);
    if (pos != SIZE_MAX)
      b->vals[pos] = HF_VOL_NO_SLOT;
    r = hf_vol_buf_add_zero (b, lba, 1);
    if (r)
      return r;
    hf_vol_touch (v, b);
    return 0;
  }
  r = hf_vol_buf_slot_of (b, lba, &pos);
  if (r)
    return r;
  if (b->vals[pos] == HF_VOL_NO_SLOT) {
    if (b->n_slots == b->cap_slots) {
      uint32_t nc = b->cap_slots ? b->cap_slots * 2 : 64;
      uint8_t *ns;

      if (b->cap_slots == 0 && v->spare_slots &&
          v->spare_slots_len / v->bs >= nc) {
        ns = v->spare_slots;
        nc = (uint32_t) (v->spare_slots_len / v->bs);
        v->spare_slots = NULL;
      }
      else
        ns = realloc (b->slots, (size_t) nc * v->bs);
      if (ns == NULL)
        return ENOMEM;
      b->slots = ns;
      b->rdata = ns;
      b->cap_slots = nc;
    }
    b->vals[pos] = b->n_slots++;
    b->bytes += v->bs;
    v->dirty_bytes += v->bs;
  }
  memcpy (b->slots + (size_t) b->vals[pos] * v->bs, data, v->bs);
  hf_vol_touch (v, b);
  return 0;
}

/* Zero-run [lba, lba + n) in the active buffer.  Caller holds lock. */
static int
hf_vol_put_zero_locked (struct hf_volume *v, uint64_t lba, uint64_t n)
{
  struct hf_vol_buf *b;
  size_t i;

  if (v->active == NULL) {
    v->active = calloc (1, sizeof *v->active);
    if (v->active == NULL)
      return ENOMEM;
  }
  b = v->active;
  if (n < b->cap) {
    uint64_t k;
    for (k = 0; k < n; k++) {
      i = hf_vol_buf_find (b, lba + k);
      if (i != SIZE_MAX)
        b->vals[i] = HF_VOL_NO_SLOT;
    }
  }
  else
    for (i = 0; i < b->cap; i++)
      if (b->keys[i] && b->keys[i] - 1 >= lba && b->keys[i] - 1 - lba < n)
        b->vals[i] = HF_VOL_NO_SLOT;
  hf_vol_touch (v, b);
  return hf_vol_buf_add_zero (b, lba, n);
}

static int
hf_vol_maybe_seal_locked (struct hf_volume *v)
{
  if (v->active &&
      (v->active->bytes >= v->o.segment_size ||
       v->active->zeros.n >= HF_VOL_MAX_ZERO_RUNS))
    return hf_vol_seal_locked (v, false, false);
  return 0;
}

/* A partial block at the edge of a write: its old bytes, fetched
 * before taking the lock, and where they came from. */
struct hf_vol_edge {
  uint64_t lba;
  uint32_t boff, len;           /* the part the write replaces */
  struct hf_vol_loc loc;        /* as resolved when fetched */
  uint64_t gen;                 /* v->ckpt_gen when resolved */
  uint8_t *old;                 /* 2 * block_size bytes (+ scratch) */
};

/* Fetch the current bytes of an edge block (no lock held). */
static int
hf_vol_edge_fetch (struct hf_volume *v, struct hf_vol_edge *e)
{
  int r;

  pthread_mutex_lock (&v->lock);
  hf_vol_resolve_locked (v, e->lba, e->old, &e->loc);
  e->gen = v->ckpt_gen;
  pthread_mutex_unlock (&v->lock);
  if (e->loc.where == HF_VW_MEM || e->loc.where == HF_VW_ZERO)
    return 0;                   /* re-read under the lock at apply time */
  if (e->loc.where == HF_VW_NONE) {
    pthread_rwlock_rdlock (&v->tree_lock);
    r = hf_vol_resolve_tree (v, e->lba, &e->loc);
    pthread_rwlock_unlock (&v->tree_lock);
    if (r)
      return r;
    if (e->loc.where == HF_VW_ZERO) {
      e->loc.where = HF_VW_NONE;        /* a hole in the tree */
      memset (e->old, 0, v->bs);
      return 0;
    }
  }
  return hf_vol_fetch (v, e->loc.seq, e->loc.blk, 1, &e->loc.crc, e->old);
}

/* Under the lock: is the fetched edge still current?  Memory wins (and
 * is copied into e->old); an unchanged store location is fine; anything
 * else means a write raced with us: false, fetch again. */
static bool
hf_vol_edge_current_locked (struct hf_volume *v, struct hf_vol_edge *e)
{
  struct hf_vol_loc l;
  uint8_t *tmp = e->old + v->bs;        /* scratch block after old */

  hf_vol_resolve_locked (v, e->lba, tmp, &l);
  if (l.where == HF_VW_MEM || l.where == HF_VW_ZERO) {
    memcpy (e->old, tmp, v->bs);
    return true;
  }
  /* Not in memory or the delta: the tree's answer is unchanged unless a
   * checkpoint moved newer entries from the delta into it meanwhile. */
  if (l.where == HF_VW_NONE)
    return (e->loc.where == HF_VW_NONE || e->loc.where == HF_VW_STORE) &&
      e->gen == v->ckpt_gen;
  /* l from the delta */
  return e->loc.where == HF_VW_STORE && e->loc.seq == l.seq &&
    e->loc.blk == l.blk;
}

static int hf_vol_durable (struct hf_volume *v);

/* Apply a write (data != NULL) or an unmap (data NULL) of [offset,
 * offset + count) atomically: every block of it enters the active
 * buffer in one critical section, so a seal never splits a write and a
 * crash leaves a prefix of whole writes.  With a log, the record of type
 * wal_type is reserved in that same critical section and written after
 * it; replay_lsn != 0
 * means the call replays that record (nothing is appended). */
static int
hf_vol_modify (struct hf_volume *v, const uint8_t *data, uint64_t count,
               uint64_t offset, unsigned flags, uint32_t wal_type,
               uint64_t replay_lsn)
{
  uint64_t end = offset + count, first, last, k;
  struct hf_vol_edge edge[2];
  CLEANUP_FREE uint8_t *scratch = NULL;
  struct hf_wal_ticket ticket;
  bool logged = false;
  size_t ne = 0, i;
  int r;

  pthread_mutex_lock (&v->lock);
  r = hf_vol_write_err_locked (v);
  if (r == 0 && (offset > v->size || count > v->size - offset))
    r = ENOSPC;
  pthread_mutex_unlock (&v->lock);
  if (r || count == 0)
    return r;

  /* Whole blocks [first, last); partial edges around them. */
  first = (offset + v->bs - 1) / v->bs;
  last = end / v->bs;
  if (first > last) {           /* inside one block */
    edge[ne++] = (struct hf_vol_edge) {
      .lba = offset / v->bs, .boff = (uint32_t) (offset % v->bs),
      .len = (uint32_t) count };
    first = last;
  }
  else {
    if (offset % v->bs)
      edge[ne++] = (struct hf_vol_edge) {
        .lba = offset / v->bs, .boff = (uint32_t) (offset % v->bs),
        .len = (uint32_t) (v->bs - offset % v->bs) };
    if (end % v->bs)
      edge[ne++] = (struct hf_vol_edge) {
        .lba = last, .boff = 0, .len = (uint32_t) (end % v->bs) };
  }
  if (ne) {
    scratch = malloc (ne * 2 * (size_t) v->bs);
    if (scratch == NULL)
      return ENOMEM;
    for (i = 0; i < ne; i++)
      edge[i].old = scratch + i * 2 * (size_t) v->bs;
  }

  for (;;) {
    bool ok = true;

    for (i = 0; i < ne; i++) {
      r = hf_vol_edge_fetch (v, &edge[i]);
      if (r)
        return r;
    }
    pthread_mutex_lock (&v->lock);
    r = hf_vol_wait_room_locked (v);
    if (r)
      break;
    for (i = 0; i < ne && ok; i++)
      ok = hf_vol_edge_current_locked (v, &edge[i]);
    if (!ok) {
      pthread_mutex_unlock (&v->lock);
      continue;
    }
    if (v->wal == NULL)
      break;
    if (replay_lsn) {
      v->wal_applied = replay_lsn;
      break;
    }
    /* The record's place in the log is fixed here, in buffer order;
     * it is written after the lock is dropped. */
    r = hf_wal_try_reserve (v->wal, wal_type, data, count, &ticket);
    if (r == 0) {
      v->wal_applied = ticket.lsn;
      logged = true;
      break;
    }
    /* The log is full: its records are in buffers that must upload
     * before it can be released, so seal the active one now. */
    if (r == EAGAIN && hf_vol_seal_locked (v, false, false) != 0)
      r = ENOMEM;
    pthread_mutex_unlock (&v->lock);
    if (r != EAGAIN)
      return r;                 /* ENOSPC or EIO, logged by the log */
    /* Wait for uploads to release some of it. */
    r = hf_wal_wait_space (v->wal, wal_type, count);
    if (r)
      return r;
  }
  /* Holding v->lock from here. */
  for (i = 0; i < ne && r == 0; i++) {
    struct hf_vol_edge *e = &edge[i];
    uint64_t bstart = e->lba * v->bs + e->boff;
    if (data)
      memcpy (e->old + e->boff, data + (bstart - offset), e->len);
    else
      memset (e->old + e->boff, 0, e->len);
    r = hf_vol_put_block_locked (v, e->lba, e->old);
  }
  if (r == 0 && last > first) {
    if (data)
      for (k = first; k < last && r == 0; k++)
        r = hf_vol_put_block_locked (v, k, data + (k * v->bs - offset));
    else
      r = hf_vol_put_zero_locked (v, first, last - first);
  }
  if (r == 0) {
    if (data)
      v->st.bytes_written += count;
    r = hf_vol_maybe_seal_locked (v);
  }
  pthread_mutex_unlock (&v->lock);
  /* Written even after a failure above: a reserved record must be
   * (hf_wal_sync waits for it).  Failure: the client hears of it; the
   * blocks may still reach the store, as after any failed write. */
  if (logged) {
    int wr = hf_wal_write_reserved (v->wal, &ticket, wal_type, offset,
                                    data, count);
    if (r == 0)
      r = wr;
  }
  if (r == 0 && (flags & HF_VOL_FUA))
    r = hf_vol_durable (v);
  return r;
}

int
hf_volume_pwrite (struct hf_volume *v, const void *buf, size_t count,
                  uint64_t offset, unsigned flags)
{
  return hf_vol_modify (v, buf, count, offset, flags, HF_WAL_WRITE, 0);
}

int
hf_volume_trim (struct hf_volume *v, uint64_t count, uint64_t offset,
                unsigned flags)
{
  return hf_vol_modify (v, NULL, count, offset, flags, HF_WAL_TRIM, 0);
}

int
hf_volume_zero (struct hf_volume *v, uint64_t count, uint64_t offset,
                unsigned flags)
{
  return hf_vol_modify (v, NULL, count, offset, flags, HF_WAL_ZERO, 0);
}

/* Seal and wait until everything sealed so far has committed, or the
 * flush timeout passes (EIO; the data stays queued). */
static int
hf_vol_flush_wait_force (struct hf_volume *v, bool force_ckpt)
{
  struct hf_vol_seg *s;
  uint64_t target, deadline;
  int r;

  pthread_mutex_lock (&v->lock);
  if (v->readonly) {
    pthread_mutex_unlock (&v->lock);
    return 0;
  }
  r = hf_vol_write_err_locked (v);
  if (r == 0)
    r = hf_vol_seal_locked (v, false, force_ckpt);
  /* A flush retries failed uploads now rather than after their backoff. */
  for (s = v->sealed; s; s = s->next)
    s->retry_at_us = 0;
  pthread_cond_broadcast (&v->cv);
  target = v->next_seq - 1;
  deadline = hf_clock_mono_us () + (uint64_t) v->o.flush_timeout_ms * 1000;
  while (r == 0 && v->committed_seq < target) {
    if (hf_clock_mono_us () >= deadline) {
      hf_error ("volume: flush: segment %" PRIu64
                " not committed after %u ms (store failing?); data kept "
                "in memory and retried", v->committed_seq + 1,
                v->o.flush_timeout_ms);
      r = EIO;
      break;
    }
    hf_vol_wait (v, deadline);
    r = hf_vol_write_err_locked (v);
  }
  pthread_mutex_unlock (&v->lock);
  return r;
}

static int
hf_vol_flush_wait (struct hf_volume *v)
{
  return hf_vol_flush_wait_force (v, false);
}

/* Make every write completed so far durable: in the log if there is
 * one, else in the store. */
static int
hf_vol_durable (struct hf_volume *v)
{
  int r;

  if (v->wal == NULL)
    return hf_vol_flush_wait (v);
  pthread_mutex_lock (&v->lock);
  r = v->readonly ? 0 : hf_vol_write_err_locked (v);
  pthread_mutex_unlock (&v->lock);
  if (r == 0 && !v->readonly)
    r = hf_wal_sync (v->wal);
  return r;
}

int
hf_volume_flush (struct hf_volume *v)
{
  return hf_vol_durable (v);
}

/* Set the size, logging it first (replay_lsn: replaying that record). */
static int
hf_vol_grow (struct hf_volume *v, uint64_t new_size, uint64_t replay_lsn)
{
  uint64_t lsn;
  int r;

  pthread_mutex_lock (&v->lock);
  for (;;) {
    r = hf_vol_write_err_locked (v);
    if (r == 0 && (new_size < v->size || new_size % v->bs != 0))
      r = EINVAL;
    if (r || new_size == v->size)
      break;
    if (v->wal && replay_lsn)
      v->wal_applied = replay_lsn;
    else if (v->wal) {
      r = hf_wal_try_append (v->wal, HF_WAL_GROW, new_size, NULL, 0, &lsn);
      if (r == EAGAIN) {
        hf_vol_seal_locked (v, false, false);
        pthread_mutex_unlock (&v->lock);
        r = hf_wal_wait_space (v->wal, HF_WAL_GROW, 0);
        pthread_mutex_lock (&v->lock);
        if (r == 0)
          continue;
      }
      if (r)
        break;
      v->wal_applied = lsn;
    }
    v->size = new_size;
    r = hf_vol_seal_locked (v, true, false);
    break;
  }
  pthread_mutex_unlock (&v->lock);
  return r;
}

int
hf_volume_grow (struct hf_volume *v, uint64_t new_size)
{
  return hf_vol_grow (v, new_size, 0);
}

/* ---- Extents ---- */

struct hf_vol_iter_ctx {
  struct hf_vol_runs *runs;
  int err;
};

static int
hf_vol_extent_iter (void *opaque, uint64_t lba, const struct hf_bmap *m)
{
  struct hf_vol_iter_ctx *c = opaque;
  struct hf_vol_run r = { .lba = lba, .n = 1, .data = true };

  return hf_vol_runs_push (c->runs, &r, true);
}

static int
hf_vol_cmp_u64 (const void *x, const void *y)
{
  uint64_t p = *(const uint64_t *) x, q = *(const uint64_t *) y;

  return p < q ? -1 : p > q;
}

/* Runs of buffer b clipped to [a, e), appended (overlaid) onto acc. */
static int
hf_vol_buf_extent_runs (const struct hf_vol_buf *b, uint64_t a, uint64_t e,
                        struct hf_vol_runs *acc)
{
  struct hf_vol_runs z = { 0 }, d = { 0 };
  CLEANUP_FREE uint64_t *lbas = NULL;
  size_t i, n = 0;
  ssize_t k;
  int r = 0;

  /* Zero runs first (older within the buffer than its data). */
  k = hf_vol_runs_find (&b->zeros, a);
  i = k >= 0 ? (size_t) k : 0;
  for (; i < b->zeros.n && r == 0; i++) {
    uint64_t s = b->zeros.v[i].lba, t = s + b->zeros.v[i].n;
    struct hf_vol_run x = { .data = false };
    if (t <= a)
      continue;
    if (s >= e)
      break;
    x.lba = s < a ? a : s;
    x.n = (t > e ? e : t) - x.lba;
    r = hf_vol_runs_push (&z, &x, true);
  }
  if (r == 0 && b->cap) {
    lbas = malloc (b->cap * sizeof *lbas);
    if (lbas == NULL)
      r = ENOMEM;
    for (i = 0; r == 0 && i < b->cap; i++)
      if (b->keys[i] && b->vals[i] != HF_VOL_NO_SLOT &&
          b->keys[i] - 1 >= a && b->keys[i] - 1 < e)
        lbas[n++] = b->keys[i] - 1;
  }
  if (r == 0 && n) {
    qsort (lbas, n, sizeof *lbas, hf_vol_cmp_u64);
    for (i = 0; i < n && r == 0; i++) {
      struct hf_vol_run x = { .lba = lbas[i], .n = 1, .data = true };
      r = hf_vol_runs_push (&d, &x, true);
    }
  }
  if (r == 0)
    r = hf_vol_runs_apply (acc, z.v, z.n, true);
  if (r == 0)
    r = hf_vol_runs_apply (acc, d.v, d.n, true);
  hf_vol_runs_free (&z);
  hf_vol_runs_free (&d);
  return r;
}

#define HF_VOL_EXTENT_WINDOW ((uint64_t) 1 << 20) /* blocks per pass */

int
hf_volume_extents (struct hf_volume *v, uint64_t count, uint64_t offset,
                   hf_volume_extent_fn fn, void *opaque)
{
  uint64_t size, end = offset + count, pos = offset;
  uint64_t pend_off = offset, pend_len = 0;
  bool pend_hole = false;
  int r = 0;

  pthread_mutex_lock (&v->lock);
  size = v->size;
  pthread_mutex_unlock (&v->lock);
  if (offset > size || count > size - offset)
    return EINVAL;

  while (pos < end && r == 0) {
    uint64_t a = pos / v->bs;
    uint64_t e = (end + v->bs - 1) / v->bs;
    struct hf_vol_runs acc = { 0 }, dl = { 0 };
    struct hf_vol_iter_ctx ctx = { &acc, 0 };
    struct hf_vol_seg *s;
    uint64_t p, wend;
    size_t i;
    ssize_t k;

    if (e - a > HF_VOL_EXTENT_WINDOW)
      e = a + HF_VOL_EXTENT_WINDOW;
    pthread_rwlock_rdlock (&v->tree_lock);
    r = hf_btree_iterate (v->tree, a, e - a, hf_vol_extent_iter, &ctx);
    pthread_rwlock_unlock (&v->tree_lock);
    pthread_mutex_lock (&v->lock);
    if (r == 0) {
      k = hf_vol_runs_find (&v->delta, a);
      if (k < 0) {              /* first run starting after a */
        size_t lo = 0, hi = v->delta.n;
        while (lo < hi) {
          size_t m = lo + (hi - lo) / 2;
          if (v->delta.v[m].lba < a)
            lo = m + 1;
          else
            hi = m;
        }
        k = (ssize_t) lo;
      }
      for (i = (size_t) k; i < v->delta.n && r == 0; i++) {
        const struct hf_vol_run *d = &v->delta.v[i];
        struct hf_vol_run x = { .data = d->data };
        if (d->lba >= e)
          break;
        x.lba = d->lba < a ? a : d->lba;
        x.n = (d->lba + d->n > e ? e : d->lba + d->n) - x.lba;
        r = hf_vol_runs_push (&dl, &x, true);
      }
      if (r == 0)
        r = hf_vol_runs_apply (&acc, dl.v, dl.n, true);
    }
    for (s = v->sealed; s && r == 0; s = s->next)
      r = hf_vol_buf_extent_runs (s->buf, a, e, &acc);
    if (r == 0 && v->active)
      r = hf_vol_buf_extent_runs (v->active, a, e, &acc);
    pthread_mutex_unlock (&v->lock);
    hf_vol_runs_free (&dl);

    /* Emit runs in byte terms, holes for gaps, clipped to the range. */
    wend = e * v->bs < end ? e * v->bs : end;
    p = pos;
    for (i = 0; i <= acc.n && r == 0; i++) {
      uint64_t rs = i < acc.n ? acc.v[i].lba * v->bs : wend;
      uint64_t re = i < acc.n ? (acc.v[i].lba + acc.v[i].n) * v->bs : wend;
      bool hole = i < acc.n ? !acc.v[i].data : true;
      int pass;
      if (rs > wend)
        rs = wend;
      if (re > wend)
        re = wend;
      for (pass = 0; pass < 2 && r == 0; pass++) {
        uint64_t s0 = pass == 0 ? p : (rs > p ? rs : p);
        uint64_t e0 = pass == 0 ? rs : re;
        bool h = pass == 0 ? true : hole;
        if (e0 <= s0)
          continue;
        if (pend_len && pend_hole == h && pend_off + pend_len == s0)
          pend_len += e0 - s0;
        else {
          if (pend_len)
            r = fn (opaque, pend_off, pend_len, pend_hole);
          pend_off = s0;
          pend_len = e0 - s0;
          pend_hole = h;
        }
        p = e0;
      }
    }
    hf_vol_runs_free (&acc);
    pos = wend;
  }
  if (r == 0 && pend_len)
    r = fn (opaque, pend_off, pend_len, pend_hole);
  return r;
}

/* ---- Builder ---- */

struct hf_vol_sortent {
  uint64_t lba;
  uint32_t slot;
  size_t hpos;
};

static int
hf_vol_cmp_sortent (const void *x, const void *y)
{
  const struct hf_vol_sortent *p = x, *q = y;

  return p->lba < q->lba ? -1 : p->lba > q->lba;
}

/* Insert the own data blocks of segment meta m (runs r) into the tree
 * with the block addresses of m's current layout.  Caller holds the
 * tree's write lock. */
static int
hf_vol_tree_apply (struct hf_volume *v, const struct hf_vol_runs *r)
{
  size_t i;
  uint64_t k;
  int e = 0;

  for (i = 0; i < r->n && e == 0; i++) {
    const struct hf_vol_run *x = &r->v[i];
    if (!x->data)
      e = hf_btree_remove_range (v->tree, x->lba, x->n);
    else
      for (k = 0; k < x->n && e == 0; k++) {
        struct hf_bmap m = { x->seq, x->blk + (uint32_t) k, x->crc[k] };
        e = hf_btree_insert (v->tree, x->lba + k, &m);
      }
  }
  return e;
}

/* Build segment s into an object (see the top of the file).  Runs in
 * the builder thread without v->lock, except where noted. */
/* An object buffer of at least len bytes (its size in *cap): the
 * smallest spare that fits, else a new one with some room to spare so
 * that it fits the next objects too. */
static uint8_t *
hf_vol_obj_alloc (struct hf_volume *v, size_t len, size_t *cap)
{
  uint8_t *p = NULL;
  unsigned i, best = UINT_MAX;

  pthread_mutex_lock (&v->lock);
  for (i = 0; i < v->n_spare_obj; i++)
    if (v->spare_obj[i].cap >= len &&
        (best == UINT_MAX || v->spare_obj[i].cap < v->spare_obj[best].cap))
      best = i;
  if (best != UINT_MAX) {
    p = v->spare_obj[best].p;
    *cap = v->spare_obj[best].cap;
    v->spare_obj[best] = v->spare_obj[--v->n_spare_obj];
  }
  pthread_mutex_unlock (&v->lock);
  if (p)
    return p;
  /* Large objects get 1/8 more, rounded to 1 MiB, so that one buffer
   * fits the next objects of about the same size; small ones (a few
   * blocks, a flush's worth) only their pages. */
  if (len < (1u << 20))
    *cap = (len + 4095) & ~(size_t) 4095;
  else
    *cap = (len + len / 8 + (1u << 20) - 1) & ~(size_t) ((1u << 20) - 1);
  /* Page-aligned, so that the data and node areas (multiples of 4096
   * into the object) can be written with O_DIRECT. */
  if (posix_memalign ((void **) &p, 4096, *cap) != 0)
    return NULL;
  return p;
}

/* Keep a committed segment's object buffer for reuse (caller holds
 * v->lock); a full pool keeps the larger buffers. */
static void
hf_vol_obj_recycle_locked (struct hf_volume *v, uint8_t *obj, size_t cap)
{
  unsigned i, small = 0;

  if (obj == NULL)
    return;
  if (cap < (1u << 20))
    free (obj);
  else if (v->n_spare_obj < HF_VOL_SPARE_OBJS) {
    v->spare_obj[v->n_spare_obj].p = obj;
    v->spare_obj[v->n_spare_obj++].cap = cap;
  }
  else {
    for (i = 1; i < v->n_spare_obj; i++)
      if (v->spare_obj[i].cap < v->spare_obj[small].cap)
        small = i;
    if (v->spare_obj[small].cap < cap) {
      free (v->spare_obj[small].p);
      v->spare_obj[small].p = obj;
      v->spare_obj[small].cap = cap;
    }
    else
      free (obj);
  }
}

static int
hf_vol_build (struct hf_volume *v, struct hf_vol_seg *s)
{
  struct hf_vol_buf *b = s->buf;
  struct hf_seg_hdr *h = &s->meta.h;
  CLEANUP_FREE struct hf_vol_sortent *ents = NULL;
  struct hf_seg_ext *ext = NULL;
  uint32_t *crcs = NULL;
  uint8_t *obj = NULL, *old_slots;
  size_t obj_cap = 0;
  struct hf_vol_runs own = { 0 };
  size_t n = 0, i, nz = 0, next = 0;
  bool ckpt = false;
  int r = ENOMEM, tries;

  hf_seg_meta_free (&s->meta);
  /* Data blocks in lba order. */
  ents = malloc ((b->used ? b->used : 1) * sizeof *ents);
  if (ents == NULL)
    goto err;
  for (i = 0; i < b->cap; i++)
    if (b->keys[i] && b->vals[i] != HF_VOL_NO_SLOT) {
      ents[n].lba = b->keys[i] - 1;
      ents[n].slot = b->vals[i];
      ents[n].hpos = i;
      n++;
    }
  qsort (ents, n, sizeof *ents, hf_vol_cmp_sortent);

  /* Extent table: zero runs (split to fit ex_nblocks), then data. */
  for (i = 0; i < b->zeros.n; i++)
    nz += (b->zeros.v[i].n + UINT32_MAX - 1) / UINT32_MAX;
  ext = malloc ((nz + n + 1) * sizeof *ext);
  crcs = malloc ((n + 1) * sizeof *crcs);
  if (ext == NULL || crcs == NULL)
    goto err;
  for (i = 0; i < b->zeros.n; i++) {
    uint64_t lba = b->zeros.v[i].lba, left = b->zeros.v[i].n;
    while (left) {
      uint32_t c = left > UINT32_MAX ? UINT32_MAX : (uint32_t) left;
      ext[next++] = (struct hf_seg_ext) { lba, c, HF_EXT_ZERO };
      lba += c;
      left -= c;
    }
  }
  for (i = 0; i < n; i++) {
    crcs[i] = hf_crc32c (0, b->slots + (size_t) ents[i].slot * v->bs, v->bs);
    if (i > 0 && ents[i].lba == ents[i - 1].lba + 1 &&
        ext[next - 1].flags == HF_EXT_DATA)
      ext[next - 1].nblocks++;
    else
      ext[next++] = (struct hf_seg_ext) { ents[i].lba, 1, HF_EXT_DATA };
  }

  memset (h, 0, sizeof *h);
  h->block_size = v->bs;
  memcpy (h->volume_uuid, v->uuid, HF_UUID_SIZE);
  h->seq = s->seq;
  h->parent_seq = v->b_parent_seq;
  h->parent_crc = v->b_parent_crc;
  pthread_mutex_lock (&v->lock);
  h->lease_epoch = v->lease.epoch;
  pthread_mutex_unlock (&v->lock);
  h->volume_size = s->volume_size;
  h->timestamp_ns = hf_clock_wall_ns ();
  h->wal_lsn = s->wal_lsn;
  h->wal_id = v->wal_id;
  h->n_ext = (uint32_t) next;
  h->n_data = (uint32_t) n;
  s->meta.ext = ext;
  s->meta.crcs = crcs;
  ext = NULL;
  crcs = NULL;

  {
    /* A checkpoint rewrites every leaf that changed, which for random
     * writes is most of the tree: with the default thresholds, space
     * checkpoints out in proportion to the tree's size (every mapped/8
     * entries, about 7% extra bytes at worst, 5 bytes of delta memory
     * per mapped block) so that big volumes do not pay a whole-tree
     * rewrite per GiB written. */
    uint64_t ent = v->o.checkpoint_entries, segs = v->o.checkpoint_segments;
    if (v->auto_ckpt && v->b_mapped / 8 > ent) {
      uint64_t per_seg = v->o.segment_size / v->bs;
      ent = v->b_mapped / 8;
      if (ent / per_seg > segs)
        segs = ent / per_seg;
    }
    ckpt = s->force_ckpt || v->b_segs_since + 1 >= segs ||
      v->b_ext_since + h->n_ext >= ent;
  }

  if (!ckpt) {
    h->ckpt_seq = v->b_ckpt_seq;
    if (!v->b_root.empty) {
      h->ckpt_root = v->b_root.ptr;
      h->ckpt_level = v->b_root.level;
    }
    h->mapped = v->b_mapped;
    if (hf_seg_layout (h)) {
      r = EFBIG;
      goto err;
    }
    obj = hf_vol_obj_alloc (v, h->object_size, &obj_cap);
    if (obj == NULL)
      goto err;
  }
  else {
    struct hf_vol_runs merged = { 0 };
    struct hf_btree_root root;
    struct hf_btree_stats bst;
    size_t dirty = 0, nn = 0;

    /* Drain: every earlier segment must have committed, so that the
     * delta is exactly the state before this segment. */
    pthread_mutex_lock (&v->lock);
    while (v->sealed != s && !v->stop)
      hf_vol_wait (v, 0);
    if (v->stop) {
      pthread_mutex_unlock (&v->lock);
      r = ECANCELED;
      goto err;
    }
    pthread_mutex_unlock (&v->lock);

    /* No commit can change the delta until s commits, so it is read
     * here without v->lock (readers only read it). */
    h->data_off = 0;
    pthread_rwlock_wrlock (&v->tree_lock);
    r = hf_vol_seg_runs (&s->meta, v->bs, &own);
    if (r == 0)
      r = hf_vol_runs_overlay (v->delta.v, v->delta.n, own.v, own.n, false,
                               &merged);
    if (r == 0)
      r = hf_vol_tree_apply (v, &merged);
    hf_vol_runs_free (&merged);
    /* The own blocks' addresses depend on the node count, which depends
     * on the merge: re-insert them until the layout is stable (one
     * extra pass at most: rewriting dirty leaves dirties nothing new). */
    for (tries = 0; r == 0; tries++) {
      uint64_t old_data_off = h->data_off;
      dirty = hf_btree_dirty_count (v->tree);
      h->n_nodes = (uint32_t) dirty;
      if (hf_seg_layout (h)) {
        r = EFBIG;
        break;
      }
      if (h->data_off == old_data_off)
        break;
      if (tries == 4) {
        r = EIO;
        hf_error ("volume: checkpoint layout does not converge");
        break;
      }
      r = hf_vol_seg_runs (&s->meta, v->bs, &own);
      if (r == 0)
        r = hf_vol_tree_apply (v, &own);
    }
    if (r == 0) {
      obj = hf_vol_obj_alloc (v, h->object_size, &obj_cap);
      if (obj == NULL)
        r = ENOMEM;
    }
    if (r == 0)
      r = hf_btree_checkpoint (v->tree, s->seq,
                               (uint32_t) (h->node_off / HF_NODE_SIZE),
                               obj + h->node_off, &nn, &root);
    if (r == 0 && nn != dirty) {
      hf_error ("volume: checkpoint wrote %zu nodes, expected %zu",
                nn, dirty);
      r = EIO;
    }
    if (r) {
      pthread_rwlock_unlock (&v->tree_lock);
      /* The tree now holds a half-merged state: stop writing. */
      pthread_mutex_lock (&v->lock);
      v->broken = r == ENOMEM ? ENOMEM : EIO;
      pthread_cond_broadcast (&v->cv);
      pthread_mutex_unlock (&v->lock);
      hf_error ("volume: checkpoint merge for segment %" PRIu64
                " failed: %s; the volume refuses writes until reopened",
                s->seq, strerror (r));
      goto err;
    }
    hf_btree_get_stats (v->tree, &bst);
    h->flags |= HF_SH_CHECKPOINT | (s->rollback ? HF_SH_ROLLBACK : 0);
    h->ckpt_seq = s->seq;
    if (!root.empty) {
      h->ckpt_root = root.ptr;
      h->ckpt_level = root.level;
    }
    h->mapped = bst.entries;
    v->b_root = root;
    v->b_ckpt_seq = s->seq;
    v->b_mapped = bst.entries;
    /* Node reads of this segment are served from memory until it
     * commits: publish the object before other readers can need it. */
    pthread_mutex_lock (&v->lock);
    s->obj = obj;
    s->obj_cap = obj_cap;
    pthread_mutex_unlock (&v->lock);
    pthread_rwlock_unlock (&v->tree_lock);
  }
  hf_vol_runs_free (&own);

  /* Data area in lba order, then header and tables. */
  for (i = 0; i < n; i++)
    memcpy (obj + h->data_off + i * v->bs,
            b->slots + (size_t) ents[i].slot * v->bs, v->bs);
  if (!ckpt)
    memset (obj + h->node_off, 0, h->data_off - h->node_off);
  else
    memset (obj + h->node_off + (size_t) h->n_nodes * HF_NODE_SIZE, 0,
            h->data_off - h->node_off - (size_t) h->n_nodes * HF_NODE_SIZE);
  hf_seg_write_meta (obj, h, s->meta.ext, s->meta.crcs);

  /* s may be uploaded, committed and freed as soon as it is BUILT:
   * take what the builder keeps first. */
  v->b_parent_seq = s->seq;
  v->b_parent_crc = h->hdr_crc;
  if (ckpt) {
    v->b_segs_since = 0;
    v->b_ext_since = 0;
  }
  else {
    v->b_segs_since++;
    v->b_ext_since += h->n_ext;
  }
  hf_debug ("volume", "built seq %" PRIu64 ": %" PRIu32 " extents, %" PRIu32
            " blocks, %" PRIu32 " nodes%s", s->seq, h->n_ext, h->n_data,
            h->n_nodes, ckpt ? " (checkpoint)" : "");

  /* Reads of s now come from the object's data area. */
  pthread_mutex_lock (&v->lock);
  for (i = 0; i < n; i++)
    b->vals[ents[i].hpos] = (uint32_t) i;
  old_slots = b->slots;
  b->slots = NULL;
  b->rdata = obj + h->data_off;
  s->obj = obj;
  s->obj_cap = obj_cap;
  s->ckpt = ckpt;
  s->state = HF_VSEG_BUILT;
  if (v->spare_slots == NULL && old_slots && b->cap_slots >= 1024) {
    v->spare_slots = old_slots;
    v->spare_slots_len = (size_t) b->cap_slots * v->bs;
    old_slots = NULL;
  }
  pthread_cond_broadcast (&v->cv);
  pthread_mutex_unlock (&v->lock);
  free (old_slots);
  return 0;

 err:
  hf_vol_runs_free (&own);
  if (!ckpt || obj != s->obj)
    free (obj);
  free (ext);
  free (crcs);
  return r;
}

static void *
hf_vol_builder_thread (void *arg)
{
  struct hf_volume *v = arg;
  struct hf_vol_seg *s;
  int r;

  pthread_mutex_lock (&v->lock);
  while (!v->stop) {
    for (s = v->sealed; s && s->state != HF_VSEG_SEALED; s = s->next)
      ;
    if (s == NULL || v->broken) {
      hf_vol_wait (v, 0);
      continue;
    }
    pthread_mutex_unlock (&v->lock);
    r = hf_vol_build (v, s);
    pthread_mutex_lock (&v->lock);
    if (r && r != ECANCELED && !v->broken) {
      hf_error ("volume: building segment %" PRIu64 ": %s (retrying)",
                s->seq, strerror (r));
      hf_vol_wait (v, hf_clock_mono_us () + 100000);
    }
  }
  pthread_mutex_unlock (&v->lock);
  return NULL;
}

/* ---- Upload and commit ---- */

/* Move landed segments, oldest first, from the sealed list into the
 * delta and advance the head.  Caller holds v->lock. */
static void hf_vol_cache_or_recycle_locked (struct hf_volume *v,
                                            struct hf_vol_seg *s);

static void
hf_vol_commit_locked (struct hf_volume *v)
{
  struct hf_vol_seg *s;

  while ((s = v->sealed) != NULL && s->state == HF_VSEG_LANDED) {
    if (s->ckpt) {
      size_t i;
      hf_vol_runs_free (&v->delta);
      for (i = 0; i < v->n_crc_tabs; i++)
        free (v->crc_tabs[i]);
      v->n_crc_tabs = 0;
      v->ckpt_seq = s->seq;
      v->ckpt_gen++;
      v->st.checkpoints_written++;
    }
    else {
      struct hf_vol_runs runs = { 0 };
      int r = hf_vol_seg_runs (&s->meta, v->bs, &runs);

      if (r == 0)
        r = hf_vol_runs_apply (&v->delta, runs.v, runs.n, false);
      hf_vol_runs_free (&runs);
      if (r == 0 && v->n_crc_tabs == v->cap_crc_tabs) {
        size_t nc = v->cap_crc_tabs ? v->cap_crc_tabs * 2 : 16;
        uint32_t **nt = realloc (v->crc_tabs, nc * sizeof *nt);
        if (nt == NULL)
          r = ENOMEM;
        else {
          v->crc_tabs = nt;
          v->cap_crc_tabs = nc;
        }
      }
      if (r) {
        /* Cannot happen short of ENOMEM; the segment is committed in
         * the store, so stop rather than serve stale reads. */
        hf_error ("volume: applying segment %" PRIu64 ": %s", s->seq,
                  strerror (r));
        v->broken = r;
        return;
      }
      v->crc_tabs[v->n_crc_tabs++] = s->meta.crcs;
      s->meta.crcs = NULL;
    }
    v->head_seq = s->seq;
    v->committed_seq = s->seq;
    if (s->wal_lsn > v->wal_release_upto)
      v->wal_release_upto = s->wal_lsn;
    v->dirty_bytes -= s->buf->bytes;
    v->st.segments_committed++;
    v->st.data_bytes_uploaded += (uint64_t) s->meta.h.n_data * v->bs;
    v->st.meta_bytes_uploaded += s->meta.h.object_size -
      (uint64_t) s->meta.h.n_data * v->bs;
    v->sealed = s->next;
    if (v->sealed)
      v->sealed->prev = NULL;
    else
      v->sealed_tail = NULL;
    hf_debug ("volume", "committed seq %" PRIu64, s->seq);
    hf_vol_cache_or_recycle_locked (v, s);
    hf_vol_seg_free (s);
  }
  pthread_cond_broadcast (&v->cv);
}

/* After a conditional PUT said EEXIST: is the object there ours (an
 * earlier attempt whose reply was lost)?  Compares the header, which
 * holds our timestamp, epoch and the CRC of every table. */
static bool
hf_vol_is_ours (struct hf_volume *v, const char *key, const uint8_t *obj)
{
  uint8_t hdr[HF_SH_SIZE];
  size_t got = 0;

  if (hf_vol_get (v->store, key, 0, HF_SH_SIZE, hdr, &got) != 0 ||
      got != HF_SH_SIZE)
    return false;
  return memcmp (hdr, obj, HF_SH_SIZE) == 0;
}

/* Release the log records that committed segments hold.  Caller holds
 * v->lock; it is dropped around the release (which unlinks files). */
static void
hf_vol_wal_release_locked (struct hf_volume *v)
{
  uint64_t upto = v->wal_release_upto;
  int r;

  if (v->wal == NULL || v->wal_replaying || upto <= v->wal_released)
    return;
  v->wal_released = upto;
  pthread_mutex_unlock (&v->lock);
  r = hf_wal_release (v->wal, upto);
  pthread_mutex_lock (&v->lock);
  if (r)            /* logged by the log; the space is reclaimed later */
    v->wal_released = 0;
}

/* The blocks and index nodes of a committed segment go into the local
 * cache (newly written blocks are likely read again soon, and an entry
 * keyed by (seq, offset) of an object in the store never goes stale).
 * Caching costs local disk time, so it happens after the commit, by the
 * thread that committed, from a short queue: commits (and the writers
 * waiting for dirty-limit) do not wait for it; uploaders do, which paces
 * them to the cache disk.  A full queue (not seen in practice) leaves
 * the segment out of the cache; its blocks are read from the store. */
static void
hf_vol_cache_or_recycle_locked (struct hf_volume *v, struct hf_vol_seg *s)
{
  const struct hf_volume_hooks *hk = v->o.hooks;
  struct hf_vol_cacheq *q;

  if (s->obj == NULL)
    return;
  if (hk && hk->cache_put && !v->crashed && v->n_cacheq < HF_VOL_CACHEQ_MAX &&
      (q = calloc (1, sizeof *q)) != NULL) {
    q->obj = s->obj;
    q->cap = s->obj_cap;
    q->seq = s->seq;
    q->node_off = s->meta.h.node_off;
    q->n_nodes = s->meta.h.n_nodes;
    q->data_off = s->meta.h.data_off;
    q->n_data = s->meta.h.n_data;
    if (v->cacheq_tail)
      v->cacheq_tail->next = q;
    else
      v->cacheq = q;
    v->cacheq_tail = q;
    v->n_cacheq++;
  }
  else
    hf_vol_obj_recycle_locked (v, s->obj, s->obj_cap);
  s->obj = NULL;
}

/* Put the queued objects into the cache (drops v->lock meanwhile). */
static void
hf_vol_cache_drain_locked (struct hf_volume *v)
{
  const struct hf_volume_hooks *hk = v->o.hooks;
  struct hf_vol_cacheq *q;

  while ((q = v->cacheq) != NULL) {
    v->cacheq = q->next;
    if (v->cacheq == NULL)
      v->cacheq_tail = NULL;
    v->n_cacheq--;
    pthread_mutex_unlock (&v->lock);
    if (q->n_nodes)
      hk->cache_put (hk->opaque, q->seq, q->node_off, q->obj + q->node_off,
                     (size_t) q->n_nodes * HF_NODE_SIZE);
    if (q->n_data)
      hk->cache_put (hk->opaque, q->seq, q->data_off, q->obj + q->data_off,
                     (size_t) q->n_data * v->bs);
    pthread_mutex_lock (&v->lock);
    hf_vol_obj_recycle_locked (v, q->obj, q->cap);
    free (q);
  }
}

static void *
hf_vol_uploader_thread (void *arg)
{
  struct hf_volume *v = arg;
  char key[HF_OBJSTORE_KEY_MAX + 1];

  pthread_mutex_lock (&v->lock);
  while (!v->stop) {
    struct hf_vol_seg *s, *pick = NULL;
    uint64_t now = hf_clock_mono_us (), wake = 0;
    bool stale;
    int r;

    if (!v->fenced && !v->broken)
      for (s = v->sealed; s; s = s->next)
        if (s->state == HF_VSEG_BUILT) {
          if (s->retry_at_us <= now) {
            pick = s;
            break;
          }
          if (wake == 0 || s->retry_at_us < wake)
            wake = s->retry_at_us;
        }
    if (pick == NULL) {
      hf_vol_wait (v, wake);
      continue;
    }
    s = pick;
    s->state = HF_VSEG_UPLOADING;
    v->uploading++;
    stale = now - v->lease_ok_us > (uint64_t) v->o.lease_ttl_s * 2000000 / 3;
    pthread_mutex_unlock (&v->lock);

    hf_seg_key (key, sizeof key, v->prefix, s->seq);
    /* Renewals have been failing: before committing anything, make sure
     * nobody took the volume over meanwhile. */
    r = stale ? hf_lease_check (&v->lease) : 0;
    if (r == 0)
      r = hf_objstore_put (v->store, key, s->obj, s->meta.h.object_size,
                           HF_PUT_IF_NONE_MATCH);
    if (r == EEXIST && s->attempts > 0 && hf_vol_is_ours (v, key, s->obj))
      r = 0;

    pthread_mutex_lock (&v->lock);
    v->uploading--;
    if (v->crashed)
      break;
    if (r == 0) {
      s->state = HF_VSEG_LANDED;
      hf_vol_commit_locked (v);
      hf_vol_wal_release_locked (v);
      if (!v->crashed)
        hf_vol_cache_drain_locked (v);
    }
    else if (r == EEXIST) {
      s->state = HF_VSEG_BUILT;
      if (!v->fenced)
        hf_error ("volume: segment %s already exists: another writer has "
                  "taken over this volume (our lease epoch %" PRIu64
                  "); this writer is fenced and refuses further writes",
                  key, v->lease.epoch);
      v->fenced = true;
    }
    else {
      unsigned sh = s->attempts < 6 ? s->attempts : 6;
      s->state = HF_VSEG_BUILT;
      s->attempts++;
      s->retry_at_us = hf_clock_mono_us () + (50000ull << sh) +
        (uint64_t) (rand () % 50000);
      if (s->attempts == 1 || s->attempts % 20 == 0)
        hf_warn ("volume: upload of %s failed (%s), attempt %u; retrying",
                 key, strerror (r), s->attempts);
    }
    pthread_cond_broadcast (&v->cv);
  }
  pthread_mutex_unlock (&v->lock);
  return NULL;
}

static void *
hf_vol_timer_thread (void *arg)
{
  struct hf_volume *v = arg;
  uint64_t period = (uint64_t) v->o.flush_interval_ms * 1000 / 4;

  if (period > 1000000)
    period = 1000000;
  if (period < 1000)
    period = 1000;
  pthread_mutex_lock (&v->lock);
  while (!v->stop) {
    if (v->active && v->active->changed && !v->fenced &&
        hf_clock_mono_us () - v->active->first_us >=
        (uint64_t) v->o.flush_interval_ms * 1000)
      hf_vol_seal_locked (v, false, false);
    hf_vol_wait (v, hf_clock_mono_us () + period);
  }
  pthread_mutex_unlock (&v->lock);
  return NULL;
}

/* ---- Lease renewal (the lease itself is lease.c) ---- */

static void *
hf_vol_lease_thread (void *arg)
{
  struct hf_volume *v = arg;
  uint64_t period = (uint64_t) v->o.lease_ttl_s * 1000000 / 3;

  pthread_mutex_lock (&v->lock);
  for (;;) {
    uint64_t until = hf_clock_mono_us () + period;
    struct hf_lease_info l;
    int r;

    while (!v->stop && hf_clock_mono_us () < until)
      hf_vol_wait (v, until);
    if (v->stop || v->fenced)
      break;
    pthread_mutex_unlock (&v->lock);
    r = hf_lease_renew (&v->lease, &l);
    if (r == EEXIST) {
      pthread_mutex_lock (&v->lock);
      hf_error ("volume: writer lease epoch %" PRIu64 " taken by \"%s\" "
                "(ours %" PRIu64 "): this writer is fenced and refuses "
                "further writes", l.epoch, l.holder, v->lease.epoch);
      v->fenced = true;
      pthread_cond_broadcast (&v->cv);
      break;
    }
    if (r)
      hf_warn ("volume: renewing the writer lease: %s", strerror (r));
    pthread_mutex_lock (&v->lock);
    if (r == 0)
      v->lease_ok_us = hf_clock_mono_us ();
  }
  pthread_mutex_unlock (&v->lock);
  return NULL;
}

/* ---- Listing ---- */

struct hf_vol_first {
  size_t plen;
  uint64_t num[HF_VOL_MAX_CANDIDATES];
  size_t n, max;
};

/* List callback: collect the numbers of the first max keys named
 * PREFIX WHAT "/" HEX16(~num). */
static int
hf_vol_list_first (void *opaque, const char *key, uint64_t size)
{
  struct hf_vol_first *f = opaque;
  uint64_t num;

  if (strlen (key) > f->plen && hf_seg_key_parse (key + f->plen, &num) == 0)
    f->num[f->n++] = num;
  return f->n >= f->max ? 1 : 0;
}

static int
hf_vol_list (struct hf_volume *v, const char *what, size_t max,
             struct hf_vol_first *f)
{
  char pfx[HF_OBJSTORE_KEY_MAX + 1];
  int r = EIO, i;

  snprintf (pfx, sizeof pfx, "%s%s/", v->prefix, what);
  for (i = 0; i < HF_VOL_IO_TRIES; i++) {
    f->plen = strlen (pfx);
    f->n = 0;
    f->max = max;
    r = hf_objstore_list (v->store, pfx, NULL, hf_vol_list_first, f);
    if (!hf_objstore_retryable (r))
      break;
    hf_clock_sleep_us (2000u << i);
  }
  return r;
}

/* ---- Volume descriptor ---- */

#define VD(field) offsetof (struct hf_disk_volume, field)

int
hf_volume_create (struct hf_objstore *store, const char *prefix,
                  uint64_t size, uint32_t block_size)
{
  char key[HF_OBJSTORE_KEY_MAX + 1];
  uint8_t o[HF_VD_SIZE];
  uint8_t uuid[HF_UUID_SIZE];
  int r;

  if (block_size == 0)
    block_size = HF_DEFAULT_BLOCK_SIZE;
  if (block_size < HF_MIN_BLOCK_SIZE || block_size > HF_MAX_BLOCK_SIZE ||
      (block_size & (block_size - 1)) || size == 0 ||
      size > UINT64_MAX - block_size)
    return EINVAL;
  size = (size + block_size - 1) / block_size * block_size;
  if (getrandom (uuid, sizeof uuid, 0) != (ssize_t) sizeof uuid)
    return errno ? errno : EIO;
  memset (o, 0, sizeof o);
  hf_put_le32 (o + VD (vd_magic), HF_VD_MAGIC);
  hf_put_le16 (o + VD (vd_version), HF_VD_VERSION);
  hf_put_le16 (o + VD (vd_hdr_size), HF_VD_SIZE);
  hf_put_le32 (o + VD (vd_block_size), block_size);
  memcpy (o + VD (vd_uuid), uuid, HF_UUID_SIZE);
  hf_put_le64 (o + VD (vd_size), size);
  hf_put_le64 (o + VD (vd_created_ns), hf_clock_wall_ns ());
  hf_put_le32 (o + VD (vd_crc), hf_crc32c (0, o, VD (vd_crc)));
  snprintf (key, sizeof key, "%svolume", prefix);
  r = hf_objstore_put (store, key, o, sizeof o, HF_PUT_IF_NONE_MATCH);
  if (r == EEXIST)
    hf_error ("volume: %s: %s already exists", hf_objstore_describe (store),
              key);
  else if (r)
    hf_error ("volume: %s: creating %s: %s", hf_objstore_describe (store),
              key, strerror (r));
  return r;
}

/* Read the descriptor, and for a clone its ancestors' (lineage.h). */
static int
hf_vol_read_descriptor (struct hf_volume *v)
{
  int r = hf_lineage_open (v->store, v->prefix, v->o.parent_cfg, &v->lin);

  if (r)
    return r;
  v->bs = v->lin->lv[0].d.block_size;
  memcpy (v->uuid, v->lin->lv[0].d.uuid, HF_UUID_SIZE);
  v->size = v->lin->lv[0].d.size;
  return 0;
}

/* ---- Recovery ---- */

/* Segment metadata read during one open, by seq (a tiny cache so that
 * the chains of several candidates share reads). */
struct hf_vol_mcache {
  uint64_t seq;
  struct hf_seg_meta *m;
  int err;
};

struct hf_vol_recover {
  struct hf_vol_mcache *c;
  size_t n, cap;
};

static int
hf_vol_meta (struct hf_volume *v, struct hf_vol_recover *rc, uint64_t seq,
             struct hf_seg_meta **out)
{
  struct hf_seg_meta *m = NULL;
  size_t i;
  int r = EIO, k;

  for (i = 0; i < rc->n; i++)
    if (rc->c[i].seq == seq) {
      *out = rc->c[i].m;
      return rc->c[i].err;
    }
  for (k = 0; k < HF_VOL_IO_TRIES; k++) {
    const struct hf_lineage_level *lv = hf_lineage_locate (v->lin, seq);

    r = hf_seg_read_meta (lv->store, lv->prefix, seq, lv->d.uuid, v->bs, &m);
    if (!hf_objstore_retryable (r))
      break;
    hf_clock_sleep_us (2000u << k);
  }
  if (rc->n == rc->cap) {
    size_t nc = rc->cap ? rc->cap * 2 : 32;
    struct hf_vol_mcache *nv = realloc (rc->c, nc * sizeof *nv);
    if (nv == NULL) {
      hf_seg_meta_destroy (m);
      return ENOMEM;
    }
    rc->c = nv;
    rc->cap = nc;
  }
  rc->c[rc->n++] = (struct hf_vol_mcache) { seq, r ? NULL : m, r };
  *out = r ? NULL : m;
  return r;
}

static void
hf_vol_recover_free (struct hf_vol_recover *rc)
{
  size_t i;

  for (i = 0; i < rc->n; i++)
    hf_seg_meta_destroy (rc->c[i].m);
  free (rc->c);
}

/* Verify the chain from cand back to its checkpoint; on success *chain
 * (newest first, borrowed from rc) and *nchain are set. */
static int
hf_vol_chain (struct hf_volume *v, struct hf_vol_recover *rc, uint64_t cand,
              struct hf_seg_meta ***chain, size_t *nchain)
{
  struct hf_seg_meta *m, *p, **ch = NULL;
  size_t n = 0, cap = 0;
  uint64_t C;
  int r;

  r = hf_vol_meta (v, rc, cand, &m);
  if (r)
    return r;
  C = m->h.ckpt_seq;
  for (;;) {
    if (n == cap) {
      size_t nc = cap ? cap * 2 : 16;
      struct hf_seg_meta **nv = realloc (ch, nc * sizeof *nv);
      if (nv == NULL) {
        free (ch);
        return ENOMEM;
      }
      ch = nv;
      cap = nc;
    }
    ch[n++] = m;
    if (m->h.seq == C) {
      if (!(m->h.flags & HF_SH_CHECKPOINT)) {
        hf_warn ("volume: segment %" PRIu64 " is named as a checkpoint "
                 "but holds none", C);
        r = EBADMSG;
        break;
      }
      break;
    }
    if (m->h.parent_seq == 0) {
      if (C == 0)
        break;
      hf_warn ("volume: segment %" PRIu64 ": chain ends before its "
               "checkpoint %" PRIu64, m->h.seq, C);
      r = EBADMSG;
      break;
    }
    if (m->h.parent_seq < C) {
      hf_warn ("volume: segment %" PRIu64 ": parent %" PRIu64
               " is older than checkpoint %" PRIu64, m->h.seq,
               m->h.parent_seq, C);
      r = EBADMSG;
      break;
    }
    r = hf_vol_meta (v, rc, m->h.parent_seq, &p);
    if (r) {
      hf_warn ("volume: segment %" PRIu64 ": parent %" PRIu64 " %s",
               m->h.seq, m->h.parent_seq,
               r == ENOENT ? "is missing" : "is unreadable");
      break;
    }
    if (p->h.hdr_crc != m->h.parent_crc ||
        p->h.lease_epoch > m->h.lease_epoch || p->h.ckpt_seq != C) {
      hf_warn ("volume: segment %" PRIu64 ": segment %" PRIu64
               " is not its parent (written by another writer or another "
               "history)", m->h.seq, p->h.seq);
      r = EBADMSG;
      break;
    }
    m = p;
  }
  if (r) {
    free (ch);
    return r;
  }
  *chain = ch;
  *nchain = n;
  return 0;
}

/* Recover the state at segment at_seq (0: the head) into v's tree,
 * delta, size, head and builder fields, which must be empty. */
static int
hf_vol_recover (struct hf_volume *v, uint64_t at_seq)
{
  struct hf_vol_recover rc = { 0 };
  struct hf_vol_first f;
  struct hf_seg_meta **chain = NULL, *head, *cm;
  struct hf_btree_root root = { .empty = true };
  uint64_t max_seen = 0, mapped = 0;
  size_t nchain = 0, i, tried = 0;
  int r = 0;

  if (at_seq) {
    f.n = 1;
    f.num[0] = at_seq;
  }
  else {
    r = hf_vol_list (v, "seg", HF_VOL_MAX_CANDIDATES, &f);
    if (r) {
      hf_error ("volume: %s%s: listing segments: %s",
                hf_objstore_describe (v->store), v->prefix, strerror (r));
      return r;
    }
  }
  if (f.n == 0 && v->lin->lv[0].floor) {
    /* A clone without segments of its own: its state is the parent's
     * at the base (format.h, "Clones"). */
    f.n = 1;
    f.num[0] = v->lin->lv[0].floor;
  }
  if (f.n > 0)
    max_seen = f.num[0];
  for (i = 0; i < f.n; i++) {
    tried++;
    r = hf_vol_chain (v, &rc, f.num[i], &chain, &nchain);
    if (r == 0)
      break;
    if (r == ENOMEM)
      goto out;
    hf_warn ("volume: %s%s: rejecting segment %" PRIu64 " as head: %s",
             hf_objstore_describe (v->store), v->prefix, f.num[i],
             strerror (r));
  }
  if (f.n > 0 && i == f.n) {
    hf_error ("volume: %s%s: no intact segment chain among the %zu newest "
              "segments%s", hf_objstore_describe (v->store), v->prefix,
              tried, at_seq ? " (at_seq)" : "");
    r = r == ENOENT && at_seq ? ENOENT : EBADMSG;
    goto out;
  }

  if (nchain > 0) {
    head = chain[0];
    cm = chain[nchain - 1];
    if (cm->h.seq == head->h.ckpt_seq && head->h.ckpt_seq != 0) {
      bool empty = cm->h.ckpt_root.np_seq == 0 && cm->h.ckpt_root.np_off == 0
        && cm->h.ckpt_root.np_crc == 0;
      if (!empty) {
        root.empty = false;
        root.ptr = cm->h.ckpt_root;
        root.level = cm->h.ckpt_level;
      }
      mapped = cm->h.mapped;
    }
    else
      cm = NULL;
    v->size = head->h.volume_size;
    v->head_seq = head->h.seq;
    v->ckpt_seq = head->h.ckpt_seq;
    v->b_parent_seq = head->h.seq;
    v->b_parent_crc = head->h.hdr_crc;
    v->b_ckpt_seq = head->h.ckpt_seq;
    v->head_wal_lsn = head->h.wal_lsn;
    v->head_wal_id = head->h.wal_id;
  }
  v->b_root = root;
  v->b_mapped = mapped;
  r = hf_btree_open (&root, mapped, hf_vol_read_node, v, v->o.node_cache,
                     &v->tree);
  if (r) {
    hf_error ("volume: %s%s: opening the index at segment %" PRIu64 ": %s",
              hf_objstore_describe (v->store), v->prefix, v->ckpt_seq,
              strerror (r));
    goto out;
  }
  /* Roll forward, oldest first, skipping the checkpoint segment (its
   * extents are in the tree). */
  for (i = nchain; i-- > 0;) {
    struct hf_seg_meta *m = chain[i];
    struct hf_vol_runs runs = { 0 };

    if (m->h.flags & HF_SH_CHECKPOINT)
      continue;
    r = hf_vol_seg_runs (m, v->bs, &runs);
    if (r == 0)
      r = hf_vol_runs_apply (&v->delta, runs.v, runs.n, false);
    hf_vol_runs_free (&runs);
    if (r == 0 && v->n_crc_tabs == v->cap_crc_tabs) {
      size_t nc = v->cap_crc_tabs ? v->cap_crc_tabs * 2 : 16;
      uint32_t **nt = realloc (v->crc_tabs, nc * sizeof *nt);
      if (nt == NULL)
        r = ENOMEM;
      else {
        v->crc_tabs = nt;
        v->cap_crc_tabs = nc;
      }
    }
    if (r)
      goto out;
    v->crc_tabs[v->n_crc_tabs++] = m->crcs;
    m->crcs = NULL;
    v->b_segs_since++;
    v->b_ext_since += m->h.n_ext;
  }
  v->next_seq = (max_seen > v->head_seq ? max_seen : v->head_seq) + 1;
  v->committed_seq = v->next_seq - 1;
  hf_debug ("volume", "opened at head %" PRIu64 " (checkpoint %" PRIu64
            ", %zu segments rolled forward, %zu delta runs), next seq %"
            PRIu64, v->head_seq, v->ckpt_seq, (size_t) v->b_segs_since,
            v->delta.n, v->next_seq);
 out:
  free (chain);
  hf_vol_recover_free (&rc);
  return r;
}

/* ---- Rollback ---- */

int
hf_volume_rollback (struct hf_volume *v, uint64_t seq, uint64_t *new_seq)
{
  struct hf_volume_info vi;
  uint64_t next, committed, head, parent_seq;
  uint32_t parent_crc;
  size_t i;
  int r;

  if (v->readonly)
    return EROFS;
  /* Everything written so far is committed first, so the new segment's
   * parent is the real head and the sealed list is empty. */
  r = hf_vol_flush_wait (v);
  if (r)
    return r;
  hf_volume_get_info (v, &vi);
  if (seq == 0 || seq >= vi.head_seq) {
    hf_error ("volume: rollback to %" PRIu64 ": not older than the head %"
              PRIu64, seq, vi.head_seq);
    return EINVAL;
  }
  {
    /* Check that seq's chain is intact before dropping the state. */
    struct hf_vol_recover rc = { 0 };
    struct hf_seg_meta **chain = NULL;
    size_t nchain = 0;

    r = hf_vol_chain (v, &rc, seq, &chain, &nchain);
    free (chain);
    hf_vol_recover_free (&rc);
    if (r) {
      hf_error ("volume: rollback to %" PRIu64 ": not a readable point in "
                "time (%s)", seq, strerror (r));
      return r == ENOMEM ? r : EINVAL;
    }
  }

  /* Rebuild tree, delta and size as they were at seq, keeping what
   * names the real head (the rollback segment chains onto it) and the
   * numbering (seqs above every seq seen). */
  pthread_rwlock_wrlock (&v->tree_lock);
  pthread_mutex_lock (&v->lock);
  next = v->next_seq;
  committed = v->committed_seq;
  head = v->head_seq;
  parent_seq = v->b_parent_seq;
  parent_crc = v->b_parent_crc;
  hf_btree_close (v->tree);
  v->tree = NULL;
  hf_vol_runs_free (&v->delta);
  for (i = 0; i < v->n_crc_tabs; i++)
    free (v->crc_tabs[i]);
  v->n_crc_tabs = 0;
  v->b_segs_since = v->b_ext_since = 0;
  v->b_root = (struct hf_btree_root) { .empty = true };
  pthread_mutex_unlock (&v->lock);
  /* Recovery reads the store and takes v->lock for in-memory objects:
   * nothing is sealed, so nobody else needs either lock meanwhile. */
  r = hf_vol_recover (v, seq);
  pthread_mutex_lock (&v->lock);
  v->next_seq = next;
  v->committed_seq = committed;
  v->head_seq = head;
  v->b_parent_seq = parent_seq;
  v->b_parent_crc = parent_crc;
  if (r) {
    /* The in-memory state is gone: refuse everything until reopened. */
    v->broken = r == ENOMEM ? ENOMEM : EIO;
    pthread_mutex_unlock (&v->lock);
    pthread_rwlock_unlock (&v->tree_lock);
    hf_error ("volume: rollback to %" PRIu64 ": reading that point: %s; "
              "nothing was committed, reopen the volume", seq,
              strerror (r));
    return r;
  }
  /* One checkpoint segment holding seq's whole state, flagged. */
  r = hf_vol_seal_locked (v, true, true);
  if (r == 0)
    v->sealed_tail->rollback = true;
  pthread_mutex_unlock (&v->lock);
  pthread_rwlock_unlock (&v->tree_lock);
  if (r == 0)
    r = hf_vol_flush_wait (v);
  if (r) {
    hf_error ("volume: rollback to %" PRIu64 ": %s", seq, strerror (r));
    return r;
  }
  hf_volume_get_info (v, &vi);
  hf_info ("volume: rolled back to segment %" PRIu64 " as segment %" PRIu64,
           seq, vi.head_seq);
  if (new_seq)
    *new_seq = vi.head_seq;
  return 0;
}

/* ---- Open, close ---- */

static void
hf_vol_stop_threads (struct hf_volume *v, bool crash)
{
  unsigned i;

  pthread_mutex_lock (&v->lock);
  v->stop = true;
  v->crashed = crash;
  pthread_cond_broadcast (&v->cv);
  pthread_mutex_unlock (&v->lock);
  if (v->builder_started)
    pthread_join (v->builder, NULL);
  if (v->timer_started)
    pthread_join (v->timer, NULL);
  if (v->leaser_started)
    pthread_join (v->leaser, NULL);
  for (i = 0; i < v->n_uploaders; i++)
    pthread_join (v->uploaders[i], NULL);
  pthread_mutex_lock (&v->ra_lock);
  v->ra_stop = true;
  pthread_cond_broadcast (&v->ra_cv);
  pthread_mutex_unlock (&v->ra_lock);
  if (v->ra_started)
    pthread_join (v->ra_thread, NULL);
  v->ra_started = false;
  v->builder_started = v->timer_started = v->leaser_started = false;
  v->n_uploaders = 0;
}

static void
hf_vol_free (struct hf_volume *v)
{
  struct hf_vol_seg *s, *n;
  size_t i;

  if (v->wal)
    hf_wal_close (v->wal);      /* no sync: a crash keeps what it kept */
  hf_btree_close (v->tree);
  hf_lineage_close (v->lin);
  for (s = v->sealed; s; s = n) {
    n = s->next;
    hf_vol_seg_free (s);
  }
  hf_vol_buf_free (v->active);
  hf_vol_runs_free (&v->delta);
  for (i = 0; i < v->n_crc_tabs; i++)
    free (v->crc_tabs[i]);
  free (v->crc_tabs);
  free (v->uploaders);
  free (v->spare_slots);
  while (v->cacheq) {
    struct hf_vol_cacheq *q = v->cacheq;
    v->cacheq = q->next;
    free (q->obj);
    free (q);
  }
  while (v->n_spare_obj > 0)
    free (v->spare_obj[--v->n_spare_obj].p);
  free (v->prefix);
  free (v->ra_data);
  pthread_cond_destroy (&v->ra_cv);
  pthread_mutex_destroy (&v->ra_lock);
  pthread_cond_destroy (&v->cv);
  pthread_mutex_destroy (&v->lock);
  pthread_rwlock_destroy (&v->tree_lock);
  free (v);
}

static int
hf_vol_start_threads (struct hf_volume *v)
{
  unsigned i;
  int r;

  v->uploaders = calloc (v->o.max_uploads, sizeof *v->uploaders);
  if (v->uploaders == NULL)
    return ENOMEM;
  r = pthread_create (&v->builder, NULL, hf_vol_builder_thread, v);
  if (r)
    return r;
  v->builder_started = true;
  for (i = 0; i < v->o.max_uploads; i++) {
    r = pthread_create (&v->uploaders[i], NULL, hf_vol_uploader_thread, v);
    if (r)
      return r;
    v->n_uploaders++;
  }
  if (v->o.flush_interval_ms != UINT32_MAX) {
    r = pthread_create (&v->timer, NULL, hf_vol_timer_thread, v);
    if (r)
      return r;
    v->timer_started = true;
  }
  r = pthread_create (&v->leaser, NULL, hf_vol_lease_thread, v);
  if (r)
    return r;
  v->leaser_started = true;
  return 0;
}

/* ---- Write-ahead log at open ---- */

struct hf_vol_replay {
  struct hf_volume *v;
  uint64_t n, last;
};

static int
hf_vol_replay_one (void *opaque, uint64_t lsn, uint32_t type,
                   uint64_t offset, uint64_t len, const void *data)
{
  struct hf_vol_replay *rp = opaque;
  struct hf_volume *v = rp->v;
  int r;

  switch (type) {
  case HF_WAL_WRITE:
    r = hf_vol_modify (v, data, len, offset, 0, type, lsn);
    break;
  case HF_WAL_TRIM:
  case HF_WAL_ZERO:
    r = hf_vol_modify (v, NULL, len, offset, 0, type, lsn);
    break;
  case HF_WAL_GROW:
    r = hf_vol_grow (v, offset, lsn);
    break;
  default:
    r = EBADMSG;
  }
  if (r) {
    hf_error ("volume: replaying write-ahead log record %" PRIu64
              " (type %" PRIu32 ", offset %" PRIu64 ", length %" PRIu64
              "): %s", lsn, type, offset, len, strerror (r));
    return r;
  }
  rp->n++;
  if (rp->n % 65536 == 0)
    hf_info ("volume: replayed %" PRIu64 " of %" PRIu64 " log records",
             rp->n, rp->last - lsn + rp->n);
  return 0;
}

/* Open the log, then replay it or, if the head names another log,
 * discard it and commit a segment naming this one (see the top of the
 * file).  Threads are running. */
static int
hf_vol_wal_open (struct hf_volume *v)
{
  struct hf_wal_options wo = {
    .dir = v->o.wal_dir, .max_bytes = v->o.wal_max_bytes,
    .first_lsn = v->head_wal_lsn,
  };
  struct hf_vol_replay rp = { .v = v };
  struct hf_wal_stats ws;
  uint64_t id, last;
  int r;

  memcpy (wo.volume_uuid, v->uuid, HF_UUID_SIZE);
  r = hf_wal_open (&wo, &v->wal);
  if (r)
    return r;
  id = hf_wal_log_id (v->wal);
  last = hf_wal_last_lsn (v->wal);
  hf_wal_get_stats (v->wal, &ws);
  pthread_mutex_lock (&v->lock);
  v->wal_id = id;
  v->wal_applied = last;
  pthread_mutex_unlock (&v->lock);

  if (id == v->head_wal_id) {
    if (last > v->head_wal_lsn) {
      hf_info ("volume: replaying write-ahead log %s: records %" PRIu64
               " to %" PRIu64 " (after segment %" PRIu64 ")", v->o.wal_dir,
               v->head_wal_lsn + 1, last, v->head_seq);
      pthread_mutex_lock (&v->lock);
      v->wal_replaying = true;
      v->wal_applied = v->head_wal_lsn;
      pthread_mutex_unlock (&v->lock);
      rp.last = last;
      r = hf_wal_replay (v->wal, v->head_wal_lsn, hf_vol_replay_one, &rp);
      pthread_mutex_lock (&v->lock);
      v->wal_replaying = false;
      v->st.wal_replayed = rp.n;
      pthread_mutex_unlock (&v->lock);
      if (r)
        return r;
      hf_info ("volume: replayed %" PRIu64 " log records", rp.n);
    }
    pthread_mutex_lock (&v->lock);
    if (v->head_wal_lsn > v->wal_release_upto)
      v->wal_release_upto = v->head_wal_lsn;
    hf_vol_wal_release_locked (v);
    pthread_mutex_unlock (&v->lock);
    return 0;
  }

  if (ws.bytes_live > 0) {
    hf_warn ("volume: write-ahead log %s holds records up to %" PRIu64
             " that the volume never received: its head (segment %"
             PRIu64 ") was committed by %s; those writes were superseded "
             "(the volume was taken over or written without this log) "
             "and are discarded", v->o.wal_dir, last, v->head_seq,
             v->head_wal_id ? "a writer with another log"
             : "a writer without a log");
    r = hf_wal_release (v->wal, last);
    if (r)
      return r;
  }
  /* Name this log in the head before accepting writes. */
  pthread_mutex_lock (&v->lock);
  r = hf_vol_seal_locked (v, true, false);
  pthread_mutex_unlock (&v->lock);
  if (r == 0)
    r = hf_vol_flush_wait (v);
  if (r)
    hf_error ("volume: committing the segment that names write-ahead log "
              "%s: %s", v->o.wal_dir, strerror (r));
  return r;
}

int
hf_volume_open (struct hf_objstore *store, const char *prefix,
                const struct hf_volume_options *opts, struct hf_volume **out)
{
  struct hf_volume *v;
  int r;

  v = calloc (1, sizeof *v);
  if (v == NULL)
    return ENOMEM;
  if (opts)
    v->o = *opts;
  if (v->o.segment_size == 0)
    v->o.segment_size = 32 << 20;
  if (v->o.flush_interval_ms == 0)
    v->o.flush_interval_ms = 5000;
  if (v->o.dirty_limit == 0)
    v->o.dirty_limit = 4 * v->o.segment_size;
  if (v->o.dirty_limit < v->o.segment_size)
    v->o.dirty_limit = v->o.segment_size;
  if (v->o.max_uploads == 0)
    v->o.max_uploads = 4;
  if (v->o.node_cache == 0)
    v->o.node_cache = 16384;
  v->auto_ckpt = v->o.checkpoint_entries == 0 &&
    v->o.checkpoint_segments == 0;
  if (v->o.checkpoint_entries == 0)
    v->o.checkpoint_entries = 262144;
  if (v->o.checkpoint_segments == 0)
    v->o.checkpoint_segments = 64;
  if (v->o.lease_ttl_s == 0)
    v->o.lease_ttl_s = 60;
  if (v->o.flush_timeout_ms == 0)
    v->o.flush_timeout_ms = 60000;
  v->readonly = v->o.readonly || v->o.at_seq != 0;
  v->store = store;
  v->b_root.empty = true;
  pthread_mutex_init (&v->lock, NULL);
  pthread_cond_init (&v->cv, NULL);
  pthread_rwlock_init (&v->tree_lock, NULL);
  pthread_mutex_init (&v->ra_lock, NULL);
  pthread_cond_init (&v->ra_cv, NULL);
  v->prefix = strdup (prefix ? prefix : "");
  if (v->prefix == NULL) {
    r = ENOMEM;
    goto err0;
  }
  r = hf_lease_init (&v->lease, store, v->prefix, v->o.lease_ttl_s);
  if (r)
    goto err0;

  r = hf_vol_read_descriptor (v);
  if (r)
    goto err0;
  if (!v->readonly) {
    r = hf_lease_acquire (&v->lease, v->o.takeover, v->o.break_lease);
    if (r)
      goto err0;
    v->lease_ok_us = hf_clock_mono_us ();
  }
  r = hf_vol_recover (v, v->o.at_seq);
  if (r)
    goto err1;
  if (!v->readonly) {
    r = hf_vol_start_threads (v);
    if (r) {
      hf_error ("volume: starting threads: %s", strerror (r));
      goto err2;
    }
    if (v->o.wal_dir) {
      r = hf_vol_wal_open (v);
      if (r)
        goto err2;
    }
  }
  v->ra_data = malloc (HF_VOL_RA_BYTES);
  if (v->ra_data &&
      pthread_create (&v->ra_thread, NULL, hf_vol_ra_thread, v) == 0)
    v->ra_started = true;       /* without it, reads just do not prefetch */
  *out = v;
  return 0;

 err2:
  hf_vol_stop_threads (v, true);
 err1:
  if (v->lease.held)
    hf_lease_release (&v->lease);
 err0:
  hf_vol_free (v);
  return r;
}

int
hf_volume_close (struct hf_volume *v)
{
  bool wal_ok = false;
  int r = 0;

  if (!v->readonly) {
    bool need_ckpt;

    /* If the store fails below, the log still has everything. */
    if (v->wal && hf_wal_sync (v->wal) == 0)
      wal_ok = true;
    r = hf_vol_flush_wait (v);
    if (r == 0) {
      pthread_mutex_lock (&v->lock);
      need_ckpt = v->head_seq != v->ckpt_seq;
      pthread_mutex_unlock (&v->lock);
      if (need_ckpt)
        r = hf_vol_flush_wait_force (v, true);
    }
    if (r && wal_ok)
      hf_error ("volume: close: data not committed to the store (%s); it "
                "is kept in the write-ahead log %s and replayed at the "
                "next open", strerror (r), v->o.wal_dir);
    else if (r)
      hf_error ("volume: close: data not committed: %s", strerror (r));
  }
  hf_vol_stop_threads (v, false);
  pthread_mutex_lock (&v->lock);
  hf_vol_cache_drain_locked (v);        /* what the uploaders left */
  pthread_mutex_unlock (&v->lock);
  if (v->lease.held && !v->fenced) {
    int e = hf_lease_release (&v->lease);
    if (e)
      hf_warn ("volume: releasing the writer lease: %s", strerror (e));
  }
  hf_vol_free (v);
  return r;
}

void
hf_volume_crash (struct hf_volume *v)
{
  hf_vol_stop_threads (v, true);
  hf_vol_free (v);
}

void
hf_volume_get_info (struct hf_volume *v, struct hf_volume_info *out)
{
  struct hf_btree_stats bs;
  struct hf_vol_seg *s;

  pthread_rwlock_rdlock (&v->tree_lock);
  hf_btree_get_stats (v->tree, &bs);
  pthread_rwlock_unlock (&v->tree_lock);
  pthread_mutex_lock (&v->lock);
  *out = v->st;
  out->size = v->size;
  out->block_size = v->bs;
  memcpy (out->uuid, v->uuid, HF_UUID_SIZE);
  out->readonly = v->readonly;
  out->fenced = v->fenced;
  out->head_seq = v->head_seq;
  out->ckpt_seq = v->ckpt_seq;
  out->lease_epoch = v->lease.epoch;
  out->mapped_blocks = bs.entries;
  out->dirty_bytes = v->dirty_bytes;
  out->uploads_in_flight = 0;
  for (s = v->sealed; s; s = s->next)
    out->uploads_in_flight++;
  out->node_cache_nodes = bs.nodes_cached;
  pthread_mutex_unlock (&v->lock);
  if (v->wal) {
    struct hf_wal_stats ws;

    hf_wal_get_stats (v->wal, &ws);
    out->wal = true;
    out->wal_bytes_live = ws.bytes_live;
    out->wal_appends = ws.appends;
    out->wal_syncs = ws.syncs;
    out->wal_sync_waiters = ws.sync_waiters;
    out->wal_waits = ws.waits;
  }
}

/* ---- Compaction support (lib/gc.c) ----
 *
 * Compaction moves the live blocks of a mostly-dead segment into the
 * write buffer, so that they are written again in a new segment and the
 * old one stops being used by the head.  It must never undo a client
 * write: a block is moved only if, at the moment it enters the buffer
 * (under v->lock), the volume still maps it to exactly the physical
 * block it was read from.  A client write that lands before that point
 * wins because the block no longer matches; one that lands after
 * simply overwrites the moved copy in the buffer, as any later write. */

int
hf_volume_relocate (struct hf_volume *v, uint64_t lba, uint32_t n,
                    uint64_t seq, uint32_t blk, const uint32_t *crcs,
                    uint32_t *moved)
{
  CLEANUP_FREE uint8_t *buf = NULL;
  CLEANUP_FREE struct hf_vol_loc *tl = NULL;
  uint64_t gen;
  uint32_t i;
  int r;

  *moved = 0;
  if (n == 0)
    return 0;
  pthread_mutex_lock (&v->lock);
  r = hf_vol_write_err_locked (v);
  if (r == 0 && (lba >= v->size / v->bs || n > v->size / v->bs - lba))
    r = EINVAL;
  pthread_mutex_unlock (&v->lock);
  if (r)
    return r;
  buf = malloc ((size_t) n * v->bs);
  tl = calloc (n, sizeof *tl);
  if (buf == NULL || tl == NULL)
    return ENOMEM;
  r = hf_vol_fetch (v, seq, blk, n, crcs, buf);
  if (r) {
    /* Gone or unreadable: fine if no block of it is current any more
     * (a client overwrote them and GC collected the segment). */
    int e = r;
    pthread_rwlock_rdlock (&v->tree_lock);
    for (i = 0, r = 0; i < n && r == 0; i++) {
      r = hf_vol_resolve_tree (v, lba + i, &tl[i]);
      pthread_mutex_lock (&v->lock);
      {
        struct hf_vol_loc l;
        hf_vol_resolve_locked (v, lba + i, NULL, &l);
        if (l.where != HF_VW_NONE)
          tl[i] = l;
      }
      pthread_mutex_unlock (&v->lock);
      if (r == 0 && tl[i].where == HF_VW_STORE && tl[i].seq == seq &&
          tl[i].blk == blk + i)
        r = e;
    }
    pthread_rwlock_unlock (&v->tree_lock);
    return r;
  }

  for (;;) {
    /* What the tree says now (tree_lock before lock: lock order). */
    pthread_rwlock_rdlock (&v->tree_lock);
    pthread_mutex_lock (&v->lock);
    gen = v->ckpt_gen;
    pthread_mutex_unlock (&v->lock);
    for (i = 0; i < n && r == 0; i++)
      r = hf_vol_resolve_tree (v, lba + i, &tl[i]);
    pthread_rwlock_unlock (&v->tree_lock);
    if (r)
      return r;

    pthread_mutex_lock (&v->lock);
    r = hf_vol_wait_room_locked (v);
    if (r == 0 && gen != v->ckpt_gen) {
      /* A checkpoint moved the delta into the tree meanwhile. */
      pthread_mutex_unlock (&v->lock);
      continue;
    }
    for (i = 0; i < n && r == 0; i++) {
      struct hf_vol_loc l;
      bool current;

      hf_vol_resolve_locked (v, lba + i, NULL, &l);
      if (l.where == HF_VW_NONE)
        l = tl[i];
      current = l.where == HF_VW_STORE && l.seq == seq && l.blk == blk + i;
      if (current) {
        r = hf_vol_put_block_locked (v, lba + i,
                                     buf + (size_t) i * v->bs);
        if (r == 0)
          (*moved)++;
      }
    }
    if (r == 0)
      r = hf_vol_maybe_seal_locked (v);
    pthread_mutex_unlock (&v->lock);
    return r;
  }
}

int
hf_volume_touch_index (struct hf_volume *v, uint64_t lba)
{
  struct hf_bmap m;
  int r;

  pthread_mutex_lock (&v->lock);
  r = hf_vol_write_err_locked (v);
  pthread_mutex_unlock (&v->lock);
  if (r)
    return r;
  pthread_rwlock_wrlock (&v->tree_lock);
  r = hf_btree_lookup (v->tree, lba, &m);
  if (r == 0)
    r = hf_btree_insert (v->tree, lba, &m);     /* same value: copies the path */
  else if (r == ENOENT)
    r = 0;
  pthread_rwlock_unlock (&v->tree_lock);
  return r;
}

int
hf_volume_checkpoint (struct hf_volume *v)
{
  if (v->readonly)
    return EROFS;
  return hf_vol_flush_wait_force (v, true);
}
