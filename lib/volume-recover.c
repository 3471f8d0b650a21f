/* hyperfile: recovery at open (see volume-int.h for the map): head
 * discovery, the chain check, roll-forward into the delta, and the
 * write-ahead log's replay.
 *
 * The head is the newest segment (keys sort newest first, so a LIST of
 * a few keys finds the candidates) whose chain of parents back to its
 * checkpoint is intact: each parent's header CRC, epoch and checkpoint
 * match what the child names.  A candidate whose chain is broken (an
 * orphan of a crash, or another writer's) is rejected with a warning;
 * if none of the HF_VOL_MAX_CANDIDATES newest is intact the volume does
 * not open (EBADMSG) rather than silently fall back to older data.  The
 * tree opens at the checkpoint; the segments after it are rolled
 * forward into the delta, oldest first.
 *
 * Lock rule: open runs before any thread starts, so the state is set
 * without locks, except where the log is replayed (threads run then)
 * and rollback (volume-ckpt.c), which holds tree_lock exclusively and
 * has drained the pipeline.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "log.h"
#include "volume-int.h"

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

static void
hf_vol_list_restart (void *opaque)
{
  struct hf_vol_first *f = opaque;

  f->n = 0;
}

static int
hf_vol_list (struct hf_volume *v, const char *what, size_t max,
             struct hf_vol_first *f)
{
  char pfx[HF_OBJSTORE_KEY_MAX + 1];

  snprintf (pfx, sizeof pfx, "%s%s/", v->prefix, what);
  f->plen = strlen (pfx);
  f->max = max;
  return hf_objstore_list_retry (v->store, pfx, NULL, hf_vol_list_first, f,
                                 hf_vol_list_restart);
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

struct hf_vol_meta_args {
  struct hf_volume *v;
  const struct hf_lineage_level *lv;
  uint64_t seq;
  struct hf_seg_meta **m;
};

static int
hf_vol_meta_attempt (void *arg, unsigned attempt)
{
  struct hf_vol_meta_args *a = arg;

  return hf_seg_read_meta (a->lv->store, a->lv->prefix, a->seq,
                           a->lv->d.uuid, a->v->bs, a->m);
}

/* Segment seq's metadata, read once per recovery (rc caches it). */
static int
hf_vol_meta (struct hf_volume *v, struct hf_vol_recover *rc, uint64_t seq,
             struct hf_seg_meta **out)
{
  struct hf_seg_meta *m = NULL;
  size_t i;
  int r;

  for (i = 0; i < rc->n; i++)
    if (rc->c[i].seq == seq) {
      *out = rc->c[i].m;
      return rc->c[i].err;
    }
  {
    struct hf_vol_meta_args a = { v, hf_lineage_locate (v->lin, seq), seq,
                                  &m };
    r = hf_objstore_retry (a.lv->store, hf_vol_meta_attempt, &a);
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

int
hf_vol_chain_check (struct hf_volume *v, uint64_t seq)
{
  struct hf_vol_recover rc = { 0 };
  struct hf_seg_meta **chain = NULL;
  size_t nchain = 0;
  int r;

  r = hf_vol_chain (v, &rc, seq, &chain, &nchain);
  free (chain);
  hf_vol_recover_free (&rc);
  return r;
}

/* Recover the state at segment at_seq (0: the head) into v's tree,
 * delta, size, head and builder fields, which must be empty. */
int
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

    if (m->h.flags & HF_SH_CHECKPOINT)
      continue;
    r = hf_vol_delta_add_locked (v, m);
    if (r)
      goto out;
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

/* ---- Write-ahead log at open ----
 *
 * Open replays the log's records above the head's sh_wal_lsn if the
 * head names this log (sh_wal_id).  If it names another log (or none),
 * the records here were superseded by a writer that committed without
 * them: they are discarded with a warning, and an empty segment naming
 * this log is committed before any write, so that a crash before the
 * next upload still finds its records replayable. */

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
    /* A size no volume can have is damage, not a size. */
    r = offset == 0 || offset > HF_MAX_VOLUME_SIZE ? EBADMSG
      : hf_vol_grow (v, offset, lsn);
    break;
  default:
    r = EBADMSG;
  }
  if (r && type == HF_WAL_GROW) {
    hf_error ("volume: replaying write-ahead log record %" PRIu64
              " (GROW to %" PRIu64 " bytes): %s", lsn, offset,
              r == EBADMSG ? "not a size a volume can have" : strerror (r));
    return r;
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
 * discard it and commit a segment naming this one (see above).  Threads
 * are running. */
int
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
