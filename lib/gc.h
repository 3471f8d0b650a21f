/* hyperfile: garbage collection and compaction of a volume's segments.
 *
 * What must stay readable (the roots):
 *   - the head (the segment a read-only open recovers);
 *   - every point in time that was the volume's state at some moment of
 *     the last retain + grace: walking back from the head, every point
 *     younger than the cutoff (now - retain - grace) and the newest point
 *     older than it (the state at the cutoff itself);
 *   - every named snapshot's point and every registered clone's base;
 *   - every segment newer than the head seen when GC started (an upload
 *     in flight, or a commit that happened since).
 * A point P needs the segments from its checkpoint C to P on its chain
 * (their extent tables and data) and everything the checkpoint tree of C
 * reaches: its nodes and the segments holding the data blocks its leaves
 * name.  A segment reached by no root is deleted when it is older than
 * grace (by its header's timestamp, or the store's mtime when the header
 * is unreadable); that also collects orphans (segments not on the chain,
 * left by uploads that never completed in order, or by fenced writers).
 *
 * Why deleting is safe beside a live writer: every segment the writer
 * can still use is reachable from the head GC saw, or newer than it.
 * The writer's tree is the tree of its newest checkpoint, whose clean
 * nodes are shared with older checkpoints back to the one GC walked or
 * live in newer segments; its delta segments are on the head's chain;
 * compaction only copies blocks into new segments.  So GC never deletes
 * anything the writer, or a new writer, needs; it deletes a segment only
 * after the commit that stopped using it, because it only looks at
 * committed heads.  Two GCs at once are safe for the same reason: each
 * deletes only what its own (valid) view says is unreachable, deleting
 * a deleted object succeeds, and neither writes anything but deletes.
 *
 * Readers of old points: a reader that opened a point P while P was
 * within retention can read it for at least grace after P left
 * retention; after that its reads may fail with EBADMSG naming the
 * missing segment.  The same grace covers snapshot, clone and rollback
 * commands that resolve a point while GC runs.
 *
 * Compaction (with a writer volume): segments the head reaches whose
 * live bytes (the head's data blocks and index nodes in them) are below
 * compact_threshold of their size have their live blocks moved into new
 * segments through the writer (hf_volume_relocate: a concurrent client
 * write always wins) and their live index nodes re-written by the next
 * checkpoint (hf_volume_touch_index).  GC then checkpoints, so the head
 * stops using them, and collects them once no retained point reaches
 * them.
 *
 * Old writer lease objects (all but the newest two epochs) are deleted
 * too: only the newest epoch decides who may write.
 *
 * Memory is bounded by the number of segments (a few dozen bytes each),
 * the checkpoint delta of the roots' chains (segment headers only), the
 * node cache (node_cache nodes) and the set of visited node addresses
 * (visited_max entries, 16 bytes each; beyond it shared subtrees are
 * just walked again).
 *
 * Errors: 0 or a positive errno; a damaged structure on a root's path
 * (EBADMSG, logged with object and offset) aborts the run before
 * anything is deleted, since GC must never guess what a root reaches.
 */
#ifndef HF_GC_H
#define HF_GC_H

#include <stdbool.h>
#include <stdint.h>

#include "objstore.h"
#include "volume.h"

#define HF_GC_DEFAULT_RETAIN_S (24 * 3600)
#define HF_GC_DEFAULT_GRACE_S 600

struct hf_gc_options {
  uint64_t retain_ns;           /* time-travel window (0: only the head,
                                   snapshots and clone bases) */
  uint64_t grace_ns;            /* readers' and orphans' grace */
  bool dry_run;                 /* report, delete nothing, no compaction */
  bool compact;                 /* needs a writer volume */
  double compact_threshold;     /* 0 = 0.7 (live / object size) */
  uint64_t compact_max_bytes;   /* live bytes moved per run; 0 = 1 GiB */
  uint64_t compact_min_gain;    /* compact only if it frees at least this
                                   many bytes; 0 = 4 MiB */
  size_t node_cache;            /* 0 = 1024 nodes */
  size_t visited_max;           /* 0 = 1 << 18 node addresses (8 MiB) */
  const struct hf_s3_config *cfg; /* for a clone's ancestors; NULL = env */
  uint64_t now_ns;              /* 0 = the clock (tests) */
  /* If not NULL, read (atomically) during the run: once true, the run
   * stops early with ECANCELED (a server shutting down).  What it did so
   * far is safe to keep. */
  const bool *cancel;
  /* Called for each segment deleted (or, dry run, deletable); NULL = no
   * calls.  why is "unreachable" or "orphan". */
  void (*on_delete) (void *opaque, uint64_t seq, uint64_t bytes,
                     const char *why);
  void *opaque;
  /* If not NULL, called once per root after the run (with the final
   * scan's figures): what keeps space.  The roots are taken in the
   * order head, retain window, snapshots (by name), clones (by key),
   * and bytes is what each keeps beyond the roots before it: the
   * listed bytes of the segments it reaches that none of those reach.
   * kind is "head", "window" (name "", seq the oldest point kept, and
   * since_ns the cutoff: points newer than it are kept), "snapshot"
   * (name the snapshot) or "clone" (name the clone's URL, seq its base;
   * orphan when the clone is gone: hf_clone_reg_state). */
  void (*on_pin) (void *opaque, const char *kind, const char *name,
                  uint64_t seq, uint64_t since_ns, uint64_t bytes,
                  bool orphan);
  /* hf_gc_flatten only (NULL = none): blocks moved of total so far. */
  void (*progress) (void *opaque, uint64_t done, uint64_t total);
};

struct hf_gc_report {
  uint64_t head_seq;
  uint64_t segments;            /* listed */
  uint64_t bytes;               /* listed, sum of object sizes */
  uint64_t roots;               /* points, snapshots, clone bases */
  uint64_t checkpoints_walked;
  uint64_t nodes_visited;
  uint64_t reachable_segments;
  uint64_t reachable_bytes;
  uint64_t live_bytes;          /* data + index bytes the head uses (an
                                   upper bound: blocks its delta
                                   overwrote are counted) */
  uint64_t deleted_segments;    /* or deletable, on a dry run */
  uint64_t deleted_bytes;
  uint64_t orphans;             /* of deleted_segments */
  uint64_t kept_young;          /* unreachable, within grace */
  uint64_t compacted_segments;
  uint64_t relocated_blocks;
  uint64_t touched_nodes;
  uint64_t leases_deleted;      /* old writer lease objects (all but the
                                   newest two) */
  uint64_t orphan_clones;       /* clone registrations whose clone is
                                   gone (each logged as a warning; their
                                   bases are still kept) */
};

/* Collect garbage of the volume under prefix in s (both borrowed).
 * writer (borrowed, may be NULL) is the open writable volume on it, used
 * for compaction when o->compact is set.  o NULL = defaults (24 h
 * retention).  *rep (may be NULL) receives what happened. */
extern int hf_gc_run (struct hf_objstore *s, const char *prefix,
                      struct hf_volume *writer,
                      const struct hf_gc_options *o,
                      struct hf_gc_report *rep);

/* Flatten a clone: move every data block and index node its head
 * still reads from its parent (seqs <= its base) into its own segments,
 * through w (the clone opened writable: relocation as in compaction, so
 * a client write would win, then checkpoints), until the head's tree
 * names nothing of the parent.  Uses o's cfg, node_cache, visited_max,
 * progress and opaque.  EINVAL (logged) if the volume is not a clone.
 * The descriptor and the parent's registration are the caller's
 * (hyperfile flatten): this only makes the head independent; older
 * points still read from the parent. */
struct hf_gc_flatten_report {
  uint64_t parent_blocks;       /* read from the parent before */
  uint64_t parent_nodes;
  uint64_t moved_blocks;
  uint64_t touched_nodes;
  uint64_t head_seq;            /* the head after */
};
extern int hf_gc_flatten (struct hf_objstore *s, const char *prefix,
                          struct hf_volume *w, const struct hf_gc_options *o,
                          struct hf_gc_flatten_report *rep);

/* Background GC: a thread that calls hf_gc_run (s, prefix, writer, o)
 * every interval_ms until hf_gc_sched_stop.  A failed run is logged
 * (naming what, e.g. the volume's URL) and tried again at the next
 * interval.  All arguments are borrowed and must outlive the scheduler
 * (o is copied; its cancel field is replaced by the scheduler's own).
 * On success *out is a new scheduler the caller stops; on error *out is
 * unchanged. */
struct hf_gc_sched;
extern int hf_gc_sched_start (struct hf_objstore *s, const char *prefix,
                              struct hf_volume *writer,
                              const struct hf_gc_options *o,
                              uint64_t interval_ms, const char *what,
                              struct hf_gc_sched **out);
/* Stop the scheduler: a run in progress stops at its next step (see
 * cancel above; what it did is safe to keep), the thread is joined and
 * g freed.  NULL is a no-op. */
extern void hf_gc_sched_stop (struct hf_gc_sched *g);

#endif /* HF_GC_H */
