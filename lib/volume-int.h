/* hyperfile: the volume engine's internals, shared by its files (not a
 * public header: lib/volume.h is the contract).
 *
 * Where things live
 * -----------------
 *   runs.c            sorted extent run lists (the delta, zero runs)
 *   wbuf.c            the write buffer: lba -> slot hash, slots, zero runs
 *   volume-read.c     the read path, read-ahead, extents
 *   volume-write.c    client writes, trim/zero, flush, grow, sealing,
 *                     relocation for GC
 *   volume-build.c    the builder thread: sealed buffer -> segment object
 *   volume-ckpt.c     checkpoints (the merge of the delta into the tree),
 *                     rollback, touch_index: the only file that takes
 *                     tree_lock exclusively
 *   volume-upload.c   uploaders, the in-order commit, the delta, the
 *                     hand-off to the cache, the seal timer
 *   volume-fence.c    lease renewal; the one place that decides that
 *                     this writer is fenced
 *   volume-recover.c  head discovery, chain check, roll-forward, WAL
 *                     replay at open
 *   volume.c          lifecycle: create, open, close, crash, info
 *
 * The life of a write: it lands in the active buffer (volume-write.c),
 * which is sealed (given the next seq and put on the sealed list) when
 * full, old or flushed; the builder turns it into a segment object
 * (volume-build.c, and volume-ckpt.c when it carries a checkpoint); an
 * uploader PUTs it and, in seq order, commits it: its extents join the
 * delta and the head advances (volume-upload.c).  A sealed segment
 * serves reads until it commits; after that the delta and the store
 * do (volume-read.c).
 *
 * Locks, in lock order (take only downwards):
 *   lease_io_lock (mutex)  writes of our lease object (renewal,
 *                       the record of each commit, volume-fence.c):
 *                       held across that one store request, and it
 *                       is what lets the threads share v->lease.  Taken
 *                       with nothing else held; lock inside it only
 *                       briefly, to read the head.
 *   tree_lock (rwlock)  the B+tree (fields tagged T): readers (lookup,
 *                       iterate) take it shared; insert, remove,
 *                       checkpoint and rollback take it exclusively, in
 *                       volume-ckpt.c only.
 *   lock (mutex)        everything else mutable in struct hf_volume
 *                       (fields tagged L).  Never held across store I/O,
 *                       B+tree calls or large copies.  Taken with
 *                       hf_vol_lock / hf_vol_unlock, which record the
 *                       holder so that every *_locked function can
 *                       assert it (HF_VOL_ASSERT_LOCKED).  Its condition
 *                       variables are split by what they wait for
 *                       (work_cv, commit_cv, room_cv); a change that
 *                       concerns everyone (stop, fenced, broken) wakes
 *                       all three (hf_vol_wake_all_locked).
 *   ra_lock (mutex)     the read-ahead state (tagged R); a leaf: nothing
 *                       else is taken while holding it.
 *   rp_lock (mutex)     the read pool's queue (tagged P); a leaf.
 *   ft_lock (mutex)     the frame tables of compressed segments (tagged
 *                       F, volume-read.c); a leaf.
 * Other tags: I immutable after open (set before any thread starts);
 * B the builder thread only (and open or rollback while the builder is
 * idle, see there); O open and close only.
 *
 * A function named *_locked is called with v->lock held (it asserts
 * so) and may drop it only where its comment says so.
 *
 * tree_lock prefers writers (PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP):
 * a steady stream of reads must not starve the checkpoint (and with it
 * the upload pipeline and the writers).  So no thread may take it
 * shared twice.
 */
#ifndef HF_VOLUME_INT_H
#define HF_VOLUME_INT_H

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "btree.h"
#include "cleanup.h"
#include "format.h"
#include "lease.h"
#include "lineage.h"
#include "objstore.h"
#include "pace.h"
#include "runs.h"
#include "segment.h"
#include "volume.h"
#include "wal.h"
#include "wbuf.h"

#define HF_VOL_MAX_ZERO_RUNS 65536
/* Block CRCs of a write kept on the stack (more: allocated). */
#define HF_VOL_CRC_STACK 64
/* Object buffers kept for reuse (see struct hf_volume). */
#define HF_VOL_SPARE_OBJS 3
/* Bytes of committed objects that may wait to enter the cache: what
 * one commit can free at once (every sealed segment, up to dirty_limit,
 * when the oldest upload was the last to land), and a checkpoint's
 * nodes on top.  Beyond it (a cache disk slower than the store for a
 * long time) a segment is not cached; one is always queued. */
#define HF_VOL_CACHEQ_BYTES(v) ((v)->o.dirty_limit + 2 * (v)->o.segment_size)
/* Frame tables of compressed segments kept for reads (volume-read.c):
 * about 24 bytes per 16 KiB frame, so 64 tables of 32 MiB segments
 * take 3 MiB. */
#define HF_VOL_FTABS 64
/* Frame size written (image bytes): 16 KiB measured best (design.md). */
#define HF_VOL_FRAME_BYTES (16 * 1024)

/* The frame table of one compressed segment, as the read path needs it. */
struct hf_vol_ftab {
  uint64_t seq;                 /* 0: slot unused */
  uint64_t used;                /* LRU tick */
  struct hf_seg_hdr h;          /* codec 0: the segment is not compressed */
  struct hf_seg_frame *frames;  /* h.n_frames, owned */
};
#define HF_VOL_READ_CHUNK 1024          /* blocks planned at once */
#define HF_VOL_READ_THREADS 8
#define HF_VOL_RA_BYTES (2u << 20)

/* A committed segment's object on its way into the local cache (on
 * v->cacheq, under v->lock; owned by whoever dequeues it). */
struct hf_vol_rjob;

struct hf_vol_cacheq {
  struct hf_vol_cacheq *next;
  uint8_t *obj;
  size_t cap;                   /* allocated at obj */
  uint64_t bytes;               /* the object's size */
  uint64_t seq, node_off, data_off;
  uint32_t n_nodes, n_data;
  uint32_t *crcs;               /* n_data block CRCs (owned), or NULL */
  void *tables;                 /* compressed: for hooks->tables_put
                                   (hf_seg_tables_encode), owned; or NULL */
  size_t tables_len;
};

/* ---- Sealed segments ----
 *
 *   state      set by               next
 *   SEALED     seal (write, timer)  BUILT      (builder)
 *   BUILT      builder              UPLOADING  (an uploader picks it)
 *   UPLOADING  uploader             LANDED (PUT ok) or BUILT (retry,
 *                                   or fenced)
 *   LANDED     uploader             committed and freed when it is the
 *                                   oldest (hf_vol_commit_locked)
 */
enum hf_vol_seg_state {
  HF_VSEG_SEALED,               /* waiting for the builder */
  HF_VSEG_BUILT,                /* object ready, waiting for an uploader */
  HF_VSEG_UPLOADING,
  HF_VSEG_LANDED,               /* PUT succeeded, waiting for its turn */
};

/* A sealed segment, on v->sealed from seal to commit.  The list links,
 * state and the fields the builder publishes are under v->lock; the
 * rest is fixed at seal or, for meta, written by the builder before it
 * publishes BUILT and read-only after. */
struct hf_vol_seg {
  struct hf_vol_seg *next, *prev; /* L: sealed list, seq order */
  uint64_t seq;                 /* fixed at seal */
  enum hf_vol_seg_state state;  /* L */
  uint64_t built_us;            /* L: when the builder published BUILT
                                   (monotonic): pacing's drain
                                   measurement */
  struct hf_wbuf *buf;          /* frozen at seal; serves reads until
                                   commit; remapped by the builder (L) */
  uint64_t volume_size;         /* fixed at seal */
  bool force_ckpt;              /* fixed at seal */
  bool rollback;                /* L: checkpoint flagged HF_SH_ROLLBACK */
  uint64_t wal_lsn;             /* fixed at seal: newest WAL record held
                                   (with earlier segments) */
  uint8_t *obj;                 /* L: the whole object (its image if
                                   compressed), set by the builder */
  uint64_t obj_len;             /* L: bytes of obj that are the image */
  uint8_t *up;                  /* L: compressed: the stored object
                                   (meta.h.object_size bytes) that is
                                   uploaded; NULL: obj is uploaded */
  size_t up_cap;                /* L: bytes allocated at up */
  size_t obj_cap;               /* L: bytes allocated at obj */
  struct hf_seg_meta meta;      /* builder until BUILT, then read-only;
                                   commit takes meta.crcs (L) */
  bool ckpt;                    /* L: carries a checkpoint */
  unsigned pins;                /* L: readers copying from obj without
                                   the lock (commit waits for 0) */
  unsigned attempts;            /* L: upload attempts so far */
  uint64_t retry_at_us;         /* L: next upload attempt (monotonic) */
};

/* The CRC tables a delta's data runs point into (each taken from a
 * segment's metadata, freed with the delta). */
struct hf_vol_crctabs {
  uint32_t **v;
  size_t n, cap;
};

/* The state at a point in time, as recovery reads it from the store
 * (hf_vol_point_read): what open installs into the volume, and what
 * rollback installs in place of the current state.  Owned by whoever
 * read it; installing moves tree, delta and tabs out (the fields are
 * then cleared), hf_vol_point_free releases what is left. */
struct hf_vol_point {
  struct hf_btree *tree;        /* the index at the point's checkpoint,
                                   reading nodes through v */
  struct hf_runs delta;         /* the segments after the checkpoint */
  struct hf_vol_crctabs tabs;   /* what delta's data runs point into */
  uint64_t size;                /* the point's volume size */
  uint64_t seq, ckpt_seq;       /* the point and its checkpoint (0: a
                                   volume without segments; then size,
                                   hdr_crc and the wal fields are unset) */
  uint32_t hdr_crc;             /* the point's header CRC */
  uint64_t wal_lsn, wal_id;     /* the point's sh_wal_lsn, sh_wal_id */
  struct hf_btree_root root;    /* the checkpoint's root */
  uint64_t mapped;              /* and its sh_mapped */
  uint64_t segs_since, ext_since;       /* rolled forward */
  uint64_t max_seen;            /* the newest seq seen (listed, or the
                                   lease's record) */
  bool older_head;              /* opened below a damaged or recorded
                                   newer head (accept_older_head) */
};

/* ---- The volume ---- */
struct hf_volume {
  struct hf_objstore *store;    /* I, borrowed */
  char *prefix;                 /* I */
  struct hf_lineage *lin;       /* I: where each seq lives (clones) */
  struct hf_volume_options o;   /* I: defaults filled in */
  uint32_t bs;                  /* I */
  uint8_t uuid[HF_UUID_SIZE];   /* I */
  uint8_t codec;                /* I: the descriptor's vd_codec... */
  int8_t codec_level;           /* I: ...and vd_codec_level */
  bool readonly;                /* I */
  bool auto_ckpt;               /* I: thresholds left at their defaults */

  pthread_rwlock_t tree_lock;   /* see the top of the file */
  struct hf_btree *tree;        /* T (replaced by rollback) */

  pthread_mutex_t lock;         /* see the top of the file */
  /* Condition variables with lock, on CLOCK_MONOTONIC, by what their
   * waiters wait for: */
  pthread_cond_t work_cv;       /* the threads: a segment sealed, built
                                   or to retry, stop */
  pthread_cond_t commit_cv;     /* flush and the checkpoint drain: a
                                   commit; also a segment unpinned */
  pthread_cond_t room_cv;       /* writers: dirty bytes released */
  uint64_t size;                /* L */
  struct hf_wbuf *active;       /* L: the buffer writes go to */
  struct hf_vol_seg *sealed, *sealed_tail;      /* L */
  struct hf_runs delta;         /* L; changes only at commit, so the
                                   checkpoint builder (while its segment
                                   is the oldest sealed) reads it without
                                   the lock */
  struct hf_runs delta_spare;   /* L: the storage the next commit
                                   builds the delta in (the one before
                                   last; hf_runs_apply_spare): at most
                                   the largest delta's size */
  struct hf_vol_crctabs crc_tabs;       /* L: the delta points into */
  uint64_t next_seq;            /* L: next seq to seal */
  uint64_t committed_seq;       /* L: every sealed seq <= this committed */
  uint64_t head_seq, ckpt_seq;  /* L */
  bool older_head;              /* I after recovery: opened below a damaged
                                   or a recorded newer head
                                   (accept_older_head); the open commits a
                                   segment above them */
  uint64_t ckpt_gen;            /* L: checkpoints committed (delta
                                   cleared) */
  uint64_t dirty_bytes;         /* L */
  struct hf_pace pace;          /* L: admission of writes as dirty_bytes
                                   nears dirty_limit (pace.c) */
  pthread_mutex_t lease_io_lock; /* see the top of the file */
  struct hf_lease lease;        /* I after open (lease.c; close releases),
                                   but lease.committed_seq: written under
                                   lease_io_lock and L (the lease thread,
                                   the record of a commit, close once the
                                   threads have stopped), read by the
                                   lease writes under lease_io_lock */
  uint64_t lease_ok_us;         /* L: monotonic time of the last renewal */
  /* The record of the head in the lease (volume-fence.c, "Recording
   * the head"): */
  uint64_t lease_rec_seq;       /* L: the head the lease is known to
                                   record (written and acknowledged) */
  uint64_t lease_rec_tried;     /* L: heads up to this one had a record
                                   attempt (done or failed); flush waits
                                   for it to reach the head */
  bool lease_recording;         /* L: a thread is writing the record */
  bool fenced;                  /* L: set in volume-fence.c only */
  atomic_bool put_cancel;       /* atomic, no lock: raised with fenced
                                   (volume-fence.c); the store reads it
                                   during a segment PUT, which it calls
                                   off (hf_objstore_put_cancel) */
  int broken;                   /* L: sticky error (tree merge failed) */
  bool stop, crashed;           /* L */
  unsigned uploading;           /* L */
  uint64_t flush_gen;           /* L: flushes so far; an upload that fails
                                   after a flush began retries at once */
  struct hf_volume_info st;     /* L: counters part of the info, but: */
  /* Counted by the read path, which takes no lock just to count. */
  atomic_uint_fast64_t cache_hits, cache_misses, bytes_read;
  /* Frame tables loaded from the store, and from hooks->tables_get. */
  atomic_uint_fast64_t ftab_gets, ftab_local;

  /* Write-ahead log (NULL: none). */
  struct hf_wal *wal;           /* I */
  uint64_t wal_id;              /* I (set under L at open, before any
                                   write) */
  uint64_t wal_applied;         /* L: newest record applied to a buffer */
  uint64_t wal_commit_upto;     /* L: held by committed segments */
  uint64_t wal_release_upto;    /* L: held by committed segments that the
                                   lease records: may be released */
  uint64_t wal_released;        /* L */
  bool wal_replaying;           /* L: defer releases (replay reads the
                                   log) */
  uint64_t head_wal_lsn, head_wal_id;   /* I: of the head found at open */

  /* Spare buffers recycled from built and committed segments: fresh
   * 32 MiB buffers cost a page fault and a cleared page per 4 KiB, which
   * at full write speed was a tenth of the CPU.  Bounded: two slot
   * arrays, and up to HF_VOL_SPARE_OBJS object buffers.  Two, because
   * a new active buffer takes one at its first write, right after the
   * seal, while the builder has not yet given back the sealed one's:
   * with one, every other buffer found none and grew a fresh array
   * (68% of the server's page faults at 4 KiB QD32; on a VM whose
   * first touches cost 15 us a page, 0.7-2 us per write). */
  struct hf_wbuf_spare spare_slots;     /* L: the one the next buffer
                                           takes */
  struct hf_wbuf_spare spare_slots2;    /* L: refills spare_slots at
                                           each seal */
  struct { uint8_t *p; size_t cap; } spare_obj[HF_VOL_SPARE_OBJS]; /* L */
  unsigned n_spare_obj;         /* L */
  /* Committed segments whose blocks are still to enter the local cache
   * (see hf_vol_cache_or_recycle_locked). */
  struct hf_vol_cacheq *cacheq, *cacheq_tail;   /* L */
  uint64_t cacheq_bytes;        /* L: their objects' sizes */

  /* Builder state: the chain the next segment links to and the
   * checkpoint bookkeeping. */
  uint64_t b_parent_seq;        /* B */
  uint32_t b_parent_crc;        /* B */
  uint64_t b_ckpt_seq;          /* B */
  struct hf_btree_root b_root;  /* B */
  uint64_t b_mapped;            /* B */
  uint64_t b_segs_since, b_ext_since;   /* B */

  pthread_t builder, timer, leaser, *uploaders; /* O */
  unsigned n_uploaders;         /* O */
  bool builder_started, timer_started, leaser_started;  /* O */

  /* Read-ahead.  The buffer holds verified physical blocks [ra_blk,
   * ra_blk + ra_n) of segment ra_seq, which are immutable, so it never
   * needs invalidating. */
  pthread_mutex_t ra_lock;      /* leaf lock, see the top of the file */
  pthread_cond_t ra_cv;         /* with ra_lock: a request or stop */
  uint64_t ra_expect;           /* R: where a sequential read would start */
  unsigned ra_streak;           /* R */
  bool ra_req, ra_stop;         /* R */
  uint64_t ra_req_lba, ra_done_lba;     /* R */
  uint64_t ra_seq;              /* R */
  uint32_t ra_blk, ra_n;        /* R */
  uint8_t *ra_data;             /* R (allocated at open) */
  pthread_t ra_thread;          /* O */

  /* Frame tables of compressed segments (volume-read.c). */
  pthread_mutex_t ft_lock;      /* leaf lock, see the top of the file */
  struct hf_vol_ftab ftabs[HF_VOL_FTABS];       /* F */
  uint64_t ft_tick;             /* F */
  bool ra_started;              /* R (set at open, cleared at close) */

  /* The read pool (volume-read.c).  rp_lock is a leaf lock: nothing
   * else is taken while holding it. */
  pthread_mutex_t rp_lock;
  pthread_cond_t rp_cv;         /* with rp_lock: a job or stop */
  pthread_cond_t rp_done_cv;    /* with rp_lock: a job's groups done */
  struct hf_vol_rjob *rp_queue; /* P: jobs with groups to claim */
  bool rp_stop;                 /* P */
  pthread_t rp_threads[HF_VOL_READ_THREADS];    /* O */
  unsigned rp_n;                /* O: pool threads running */
};

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

/* ---- v->lock ---- */

/* The volume whose lock this thread holds (NULL: none; a thread never
 * holds two volumes' locks). */
extern __thread const struct hf_volume *hf_vol_lock_holder;

static inline void
hf_vol_lock (struct hf_volume *v)
{
  int r = pthread_mutex_lock (&v->lock);

  if (r)
    hf_cleanup_lock_failed ("volume lock", r);
  hf_vol_lock_holder = v;
}

#define HF_VOL_ASSERT_LOCKED(v) assert (hf_vol_lock_holder == (v))

/* ---- tree_lock held exclusively (volume-ckpt.c) ---- */

/* The volume whose tree_lock this thread holds exclusively (NULL:
 * none): tests check that no store request is made meanwhile. */
extern __thread const struct hf_volume *hf_vol_tree_writer;

static inline void
hf_vol_tree_wrlock (struct hf_volume *v)
{
  int r = pthread_rwlock_wrlock (&v->tree_lock);

  if (r)
    hf_cleanup_lock_failed ("volume tree lock", r);
  hf_vol_tree_writer = v;
}

static inline void
hf_vol_tree_wrunlock (struct hf_volume *v)
{
  assert (hf_vol_tree_writer == v);
  hf_vol_tree_writer = NULL;
  pthread_rwlock_unlock (&v->tree_lock);
}

static inline void
hf_vol_unlock (struct hf_volume *v)
{
  HF_VOL_ASSERT_LOCKED (v);
  hf_vol_lock_holder = NULL;
  pthread_mutex_unlock (&v->lock);
}

/* volume.c */
extern void hf_vol_wait (struct hf_volume *v, pthread_cond_t *cv,
                         uint64_t deadline_us);
extern void hf_vol_wake_all_locked (struct hf_volume *v);
extern void hf_vol_seg_free (struct hf_vol_seg *s);

/* volume-read.c */
extern int hf_vol_read_node (void *opaque, const struct hf_disk_node_ptr *ptr,
                             void *buf);
extern int hf_vol_fetch (struct hf_volume *v, uint64_t seq, uint32_t blk,
                         uint32_t n, const uint32_t *crcs, uint8_t *buf);
extern void hf_vol_resolve_locked (struct hf_volume *v, uint64_t lba,
                                   uint8_t *copy, struct hf_vol_loc *loc);
extern int hf_vol_resolve_tree (struct hf_volume *v, uint64_t lba,
                                struct hf_vol_loc *loc);
extern void *hf_vol_ra_thread (void *arg);
extern void *hf_vol_rpool_thread (void *arg);

/* volume-write.c */
extern int hf_vol_seal_locked (struct hf_volume *v, bool force,
                               bool force_ckpt);
extern int hf_vol_write_err_locked (struct hf_volume *v);
extern int hf_vol_modify (struct hf_volume *v, const uint8_t *data,
                          uint64_t count, uint64_t offset, unsigned flags,
                          uint32_t wal_type, uint64_t replay_lsn);
extern int hf_vol_grow (struct hf_volume *v, uint64_t new_size,
                        uint64_t replay_lsn);
extern int hf_vol_flush_wait_force (struct hf_volume *v, bool force_ckpt);
extern int hf_vol_flush_wait (struct hf_volume *v);

/* volume-build.c */
extern uint8_t *hf_vol_obj_alloc (struct hf_volume *v, size_t len,
                                  size_t *cap);
/* Keep the frame table of committed segment seq for reads (takes
 * frames, h->n_frames entries).  Caller holds no lock but may hold
 * v->lock (ft_lock is a leaf). */
extern void hf_vol_ftab_put (struct hf_volume *v, uint64_t seq,
                             const struct hf_seg_hdr *h,
                             struct hf_seg_frame *frames);
/* Free every frame table (close). */
extern void hf_vol_ftab_clear (struct hf_volume *v);
extern void hf_vol_obj_recycle_locked (struct hf_volume *v, uint8_t *obj,
                                       size_t cap);
extern void *hf_vol_builder_thread (void *arg);

/* volume-ckpt.c */
extern int hf_vol_ckpt_build (struct hf_volume *v, struct hf_vol_seg *s,
                              uint8_t **obj, size_t *obj_cap);

/* volume-upload.c */
extern int hf_vol_delta_add (uint32_t bs, struct hf_runs *delta,
                             struct hf_runs *spare,
                             struct hf_vol_crctabs *tabs,
                             struct hf_seg_meta *m);
extern void hf_vol_delta_free (struct hf_runs *delta,
                               struct hf_vol_crctabs *tabs);
extern int hf_vol_delta_add_locked (struct hf_volume *v,
                                    struct hf_seg_meta *m);
extern void hf_vol_delta_clear_locked (struct hf_volume *v);
extern void hf_vol_wal_release_locked (struct hf_volume *v);
extern void hf_vol_cache_drain_locked (struct hf_volume *v);
extern void *hf_vol_uploader_thread (void *arg);
extern void *hf_vol_timer_thread (void *arg);

/* volume-fence.c */
extern bool hf_vol_lease_stale_locked (struct hf_volume *v, uint64_t now_us);
/* Before a segment PUT: 0 to go on, ECANCELED once fenced (never start
 * an upload then), or the lease check's error. */
extern int hf_vol_fence_before_put (struct hf_volume *v, bool stale);
extern int hf_vol_fence_after_put (struct hf_volume *v, const char *key,
                                   const struct hf_vol_seg *s, int r);
extern void hf_vol_fence_taken_over_locked (struct hf_volume *v,
                                            const char *key);
extern void *hf_vol_lease_thread (void *arg);
/* Raise v->lease.committed_seq to the head before a lease write. */
extern void hf_vol_lease_note_head_locked (struct hf_volume *v);
/* Record the head in the lease after a commit (drops v->lock
 * meanwhile). */
extern void hf_vol_lease_record_locked (struct hf_volume *v);
/* At open, before any thread starts: record the head found. */
extern void hf_vol_lease_record_open (struct hf_volume *v);

/* volume-recover.c */
extern int hf_vol_point_read (struct hf_volume *v, uint64_t at_seq,
                              struct hf_vol_point *pt);
extern void hf_vol_point_free (struct hf_vol_point *pt);
extern int hf_vol_recover (struct hf_volume *v, uint64_t at_seq);
extern int hf_vol_chain_check (struct hf_volume *v, uint64_t seq);
extern int hf_vol_wal_open (struct hf_volume *v);

#endif /* HF_VOLUME_INT_H */
