/* hyperfile: the volume engine's lifecycle (see volume.h for the
 * contract, volume-int.h for the map of the engine's files and its lock
 * rules, format.h for the objects it writes): create, open, close,
 * crash, info, and the threads' start and stop.
 *
 * Lock rule: open sets everything up before any thread starts and close
 * tears it down after they have all stopped; in between this file takes
 * v->lock (and tree_lock shared, before it) only for hf_volume_get_info.
 */
#include <config.h>

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include "clock.h"
#include "crc32c.h"
#include "crypt.h"
#include "log.h"
#include "volume-int.h"



/* ---- Shared by the volume's files ---- */

__thread const struct hf_volume *hf_vol_lock_holder;
__thread const struct hf_volume *hf_vol_tree_writer;

/* Wait on cv (one of v's, CLOCK_MONOTONIC) until the monotonic time
 * deadline_us (0 = no deadline, but wake at least every second).
 * Caller holds v->lock. */
void
hf_vol_wait (struct hf_volume *v, pthread_cond_t *cv, uint64_t deadline_us)
{
  struct timespec ts;
  uint64_t until = hf_clock_mono_us () + 1000000;

  HF_VOL_ASSERT_LOCKED (v);
  if (deadline_us && deadline_us < until)
    until = deadline_us;
  ts.tv_sec = (time_t) (until / 1000000);
  ts.tv_nsec = (long) (until % 1000000) * 1000;
  pthread_cond_timedwait (cv, &v->lock, &ts);
}

/* Wake every waiter: a change that concerns all (stop, fenced,
 * broken). */
void
hf_vol_wake_all_locked (struct hf_volume *v)
{
  HF_VOL_ASSERT_LOCKED (v);
  pthread_cond_broadcast (&v->work_cv);
  pthread_cond_broadcast (&v->commit_cv);
  pthread_cond_broadcast (&v->room_cv);
}

void
hf_vol_seg_free (struct hf_vol_seg *s)
{
  if (s) {
    hf_wbuf_free (s->buf);
    free (s->obj);
    free (s->up);
    hf_seg_meta_free (&s->meta);
    free (s);
  }
}

/* ---- Volume descriptor ---- */

_Static_assert (HF_VD_CODEC_LEVEL_MAX == 19 && HF_VD_CODEC_LEVEL_MIN == -10,
                "HF_CODEC_SYNTAX names the levels");

bool
hf_codec_level_ok (unsigned codec, int level)
{
  if (codec == 0)
    return level == 0;
  return codec == HF_SH_CODEC_ZSTD &&
    ((level >= 1 && level <= HF_VD_CODEC_LEVEL_MAX) ||
     (level >= HF_VD_CODEC_LEVEL_MIN && level <= -1));
}

int
hf_codec_parse (const char *s, unsigned *codec, int *level)
{
  long l = 1;
  char *end;
  const char *n;

  if (strcmp (s, "off") == 0) {
    *codec = 0;
    *level = 0;
    return 0;
  }
  if (strncmp (s, "zstd", 4) != 0 || (s[4] != '\0' && s[4] != ':'))
    return EINVAL;
  if (s[4] == ':') {
    /* Digits, or a minus sign and digits: strtol alone would take
     * spaces and a plus sign too. */
    n = s[5] == '-' ? s + 6 : s + 5;
    if (*n < '0' || *n > '9')
      return EINVAL;
    errno = 0;
    l = strtol (s + 5, &end, 10);
    if (errno || *end || !hf_codec_level_ok (HF_SH_CODEC_ZSTD, (int) l) ||
        l != (int) l)
      return EINVAL;
  }
  *codec = HF_SH_CODEC_ZSTD;
  *level = (int) l;
  return 0;
}

#define VD(field) offsetof (struct hf_disk_volume, field)

int
hf_volume_create (struct hf_objstore *store, const char *prefix,
                  uint64_t size, uint32_t block_size)
{
  return hf_volume_create_key (store, prefix, size, block_size, NULL);
}

static int hf_vol_create (struct hf_objstore *store, const char *prefix,
                          uint64_t size, uint32_t block_size,
                          const struct hf_user_key *uk, bool grouped,
                          unsigned codec, int level);

int
hf_volume_create_key (struct hf_objstore *store, const char *prefix,
                      uint64_t size, uint32_t block_size,
                      const struct hf_user_key *uk)
{
  return hf_volume_create_codec (store, prefix, size, block_size, uk, 0, 0);
}

int
hf_volume_create_codec (struct hf_objstore *store, const char *prefix,
                        uint64_t size, uint32_t block_size,
                        const struct hf_user_key *uk, unsigned codec,
                        int level)
{
  /* Grouped segment keys where a listing costs its whole directory
   * (format.h, HF_VD_SEG_GROUPS): there only they let an open list the
   * newest segments alone. */
  return hf_vol_create (store, prefix, size, block_size, uk,
                        hf_objstore_lists_whole (store), codec, level);
}

int
hf_volume_create_grouped (struct hf_objstore *store, const char *prefix,
                          uint64_t size, uint32_t block_size)
{
  return hf_vol_create (store, prefix, size, block_size, NULL, true, 0, 0);
}

static int
hf_vol_create (struct hf_objstore *store, const char *prefix,
               uint64_t size, uint32_t block_size,
               const struct hf_user_key *uk, bool grouped, unsigned codec,
               int level)
{
  char key[HF_OBJSTORE_KEY_MAX + 1];
  uint8_t o[HF_VD_SIZE];
  uint8_t dkey[HF_CRYPT_KEY_SIZE];
  struct hf_vdesc d;
  int r;

  if (block_size == 0)
    block_size = HF_DEFAULT_BLOCK_SIZE;
  if (block_size < HF_MIN_BLOCK_SIZE || block_size > HF_MAX_BLOCK_SIZE ||
      (block_size & (block_size - 1)) || size == 0)
    return EINVAL;
  if (!hf_codec_level_ok (codec, level))
    return EINVAL;
  if (size > HF_MAX_VOLUME_SIZE) {
    hf_error ("volume: %s: size %" PRIu64 " is larger than a volume can be "
              "(%" PRIu64 " bytes)", hf_objstore_describe (store), size,
              HF_MAX_VOLUME_SIZE);
    return EINVAL;
  }
  size = (size + block_size - 1) / block_size * block_size;
  memset (&d, 0, sizeof d);
  if (getrandom (d.uuid, sizeof d.uuid, 0) != (ssize_t) sizeof d.uuid)
    return errno ? errno : EIO;
  d.block_size = block_size;
  d.size = size;
  d.created_ns = hf_clock_wall_ns ();
  if (grouped)
    d.flags |= HF_VD_SEG_GROUPS;
  d.codec = (uint8_t) codec;
  d.codec_level = (int8_t) level;
  if (uk) {
    r = hf_crypt_new_data_key (dkey);
    if (r == 0)
      r = hf_crypt_desc_seal (&d, uk, dkey);
    memset (dkey, 0, sizeof dkey);
    if (r) {
      hf_error ("volume: %s: wrapping a new data key: %s",
                hf_objstore_describe (store), strerror (r));
      return r;
    }
  }
  hf_vdesc_encode (&d, o);
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
  v->codec = v->lin->lv[0].d.codec;
  v->codec_level = v->lin->lv[0].d.codec_level;
  return 0;
}

/* ---- Threads ---- */

static void
hf_vol_stop_threads (struct hf_volume *v, bool crash)
{
  unsigned i;

  hf_vol_lock (v);
  v->stop = true;
  v->crashed = crash;
  /* A crash ends the PUTs under way too, as the process's death would
   * (what a held test PUT needs to be joined). */
  if (crash)
    atomic_store_explicit (&v->put_cancel, true, memory_order_release);
  hf_vol_wake_all_locked (v);
  hf_vol_unlock (v);
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
  pthread_mutex_lock (&v->rp_lock);
  v->rp_stop = true;
  pthread_cond_broadcast (&v->rp_cv);
  pthread_mutex_unlock (&v->rp_lock);
  for (i = 0; i < v->rp_n; i++)
    pthread_join (v->rp_threads[i], NULL);
  v->rp_n = 0;
  v->builder_started = v->timer_started = v->leaser_started = false;
  v->n_uploaders = 0;
}

static void
hf_vol_free (struct hf_volume *v)
{
  struct hf_vol_seg *s, *n;

  if (v->wal)
    hf_wal_close (v->wal);      /* no sync: a crash keeps what it kept */
  hf_btree_close (v->tree);
  hf_lineage_close (v->lin);
  for (s = v->sealed; s; s = n) {
    n = s->next;
    hf_vol_seg_free (s);
  }
  hf_wbuf_free (v->active);
  hf_vol_lock (v);
  hf_vol_delta_clear_locked (v);
  hf_runs_free (&v->delta_spare);
  hf_vol_unlock (v);
  free (v->crc_tabs.v);
  free (v->uploaders);
  free (v->spare_slots.p);
  free (v->spare_slots2.p);
  while (v->cacheq) {
    struct hf_vol_cacheq *q = v->cacheq;
    v->cacheq = q->next;
    free (q->obj);
    free (q->crcs);
    free (q->tables);
    free (q);
  }
  while (v->n_spare_obj > 0)
    free (v->spare_obj[--v->n_spare_obj].p);
  free (v->prefix);
  free (v->ra_data);
  pthread_cond_destroy (&v->ra_cv);
  pthread_cond_destroy (&v->rp_done_cv);
  pthread_cond_destroy (&v->rp_cv);
  pthread_mutex_destroy (&v->rp_lock);
  pthread_mutex_destroy (&v->ra_lock);
  hf_vol_ftab_clear (v);
  pthread_mutex_destroy (&v->ft_lock);
  pthread_cond_destroy (&v->work_cv);
  pthread_cond_destroy (&v->commit_cv);
  pthread_cond_destroy (&v->room_cv);
  pthread_mutex_destroy (&v->lock);
  pthread_mutex_destroy (&v->lease_io_lock);
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
  hf_pace_init (&v->pace, v->o.dirty_limit, v->o.segment_size);
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
  pthread_mutex_init (&v->lease_io_lock, NULL);
  {
    pthread_rwlockattr_t ra;

    /* Waits are timed on the monotonic clock: a step of the wall clock
     * must not stretch them (an idle volume's lease renewal waits). */
    hf_clock_cond_init (&v->work_cv);
    hf_clock_cond_init (&v->commit_cv);
    hf_clock_cond_init (&v->room_cv);
    pthread_rwlockattr_init (&ra);
    pthread_rwlockattr_setkind_np (&ra,
                                   PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
    pthread_rwlock_init (&v->tree_lock, &ra);
    pthread_rwlockattr_destroy (&ra);
  }
  pthread_mutex_init (&v->ra_lock, NULL);
  pthread_mutex_init (&v->ft_lock, NULL);
  hf_clock_cond_init (&v->ra_cv);
  pthread_mutex_init (&v->rp_lock, NULL);
  hf_clock_cond_init (&v->rp_cv);
  hf_clock_cond_init (&v->rp_done_cv);
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
    v->st.lease_renewed_ns = v->lease.acquired_ns;
  }
  r = hf_vol_recover (v, v->o.at_seq);
  if (r)
    goto err1;
  if (!v->readonly) {
    hf_vol_lease_record_open (v);
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
    /* Accepted an older head: commit a segment above the damaged or
     * lost ones at once, so that the next open finds an intact head
     * newer than all of them and than the lease's record. */
    if (v->older_head) {
      r = hf_vol_flush_wait_force (v, true);
      if (r) {
        hf_error ("volume: committing above the older head: %s",
                  strerror (r));
        goto err2;
      }
    }
  }
  v->ra_data = malloc (HF_VOL_RA_BYTES);
  if (v->ra_data &&
      pthread_create (&v->ra_thread, NULL, hf_vol_ra_thread, v) == 0)
    v->ra_started = true;       /* without it, reads just do not prefetch */
  /* Without pool threads, reads fetch their GETs one after another. */
  while (v->rp_n < HF_VOL_READ_THREADS - 1 &&
         pthread_create (&v->rp_threads[v->rp_n], NULL, hf_vol_rpool_thread,
                         v) == 0)
    v->rp_n++;
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
      hf_vol_lock (v);
      need_ckpt = v->head_seq != v->ckpt_seq;
      hf_vol_unlock (v);
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
  hf_vol_lock (v);
  hf_vol_cache_drain_locked (v);        /* what the uploaders left */
  hf_vol_unlock (v);
  if (v->lease.held && !v->fenced) {
    int e;

    hf_vol_lock (v);
    hf_vol_lease_note_head_locked (v);
    hf_vol_unlock (v);
    e = hf_lease_release (&v->lease);
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
  hf_vol_lock (v);
  *out = v->st;
  out->vd_flags = v->lin->lv[0].d.flags;
  out->cache_hits = atomic_load_explicit (&v->cache_hits,
                                          memory_order_relaxed);
  out->cache_misses = atomic_load_explicit (&v->cache_misses,
                                            memory_order_relaxed);
  out->bytes_read = atomic_load_explicit (&v->bytes_read,
                                          memory_order_relaxed);
  out->frame_table_gets = atomic_load_explicit (&v->ftab_gets,
                                                memory_order_relaxed);
  out->frame_table_local = atomic_load_explicit (&v->ftab_local,
                                                 memory_order_relaxed);
  out->size = v->size;
  out->block_size = v->bs;
  out->codec = v->codec;
  out->codec_level = v->codec_level;
  memcpy (out->uuid, v->uuid, HF_UUID_SIZE);
  out->readonly = v->readonly;
  out->fenced = v->fenced;
  out->head_seq = v->head_seq;
  out->ckpt_seq = v->ckpt_seq;
  out->lease_epoch = v->lease.epoch;
  out->mapped_blocks = bs.entries;
  out->dirty_bytes = v->dirty_bytes;
  out->pace_rate = v->pace.rate;
  out->uploads_in_flight = 0;
  for (s = v->sealed; s; s = s->next)
    out->uploads_in_flight++;
  out->node_cache_nodes = bs.nodes_cached;
  hf_vol_unlock (v);
  if (v->wal) {
    struct hf_wal_stats ws;

    hf_wal_get_stats (v->wal, &ws);
    out->wal = true;
    out->wal_bytes_live = ws.bytes_live;
    out->wal_appends = ws.appends;
    out->wal_writes = ws.writes;
    out->wal_syncs = ws.syncs;
    out->wal_sync_waiters = ws.sync_waiters;
    out->wal_waits = ws.waits;
  }
}
