/* hyperfile: local block cache (see cache.h for the contract).
 *
 * ON-DISK FORMAT (all integers little-endian; also in hyperfile-format(5),
 * section CACHE FILES)
 *
 *   DIR/cache.lock   empty; flock(LOCK_EX) held while a process has the
 *                    cache open (a second opener gets EBUSY)
 *   DIR/cache.data   n_slots slots of block_size bytes; slot i at byte
 *                    i * block_size; no headers, only block data
 *   DIR/cache.index  index header (64 bytes) + n_entries entries (24 bytes)
 *   DIR/cache.tables/  compressed segments' frame tables, a file each
 *                    (cache-tables.c has their format), within a budget
 *                    of their own (HF_CACHE_TABLES_MAX)
 *
 *   Index header
 *    OFFSET SIZE DESCRIPTION
 *         0    4 ci_magic        "HFCI"
 *         4    2 ci_version      1
 *         6    2 ci_hdr_size     64
 *         8    4 ci_flags        0
 *        12    4 ci_block_size   block size of every slot
 *        16   16 ci_volume_uuid  the volume the cached blocks belong to
 *        32    8 ci_n_slots      slots in cache.data
 *        40    8 ci_n_entries    entries following the header
 *        48    4 ci_entries_crc  CRC32C of the entry area
 *        52    8 ci_reserved     zero
 *        60    4 ci_hdr_crc      CRC32C of bytes 0 to 59
 *
 *   Index entry
 *    OFFSET SIZE DESCRIPTION
 *         0    8 ce_seq          segment number
 *         8    8 ce_off          byte offset in the segment
 *        16    4 ce_slot         slot holding the block
 *        20    4 ce_crc          CRC32C of the block's bytes
 *
 * Persistence protocol.  hf_cache_open loads the index and then replaces
 * it (write to cache.index.tmp, fsync, rename, fsync the directory) with
 * an index of zero entries before any slot may change.  hf_cache_close
 * fdatasyncs cache.data and writes the full index the same way.  So the
 * entries on disk describe cache.data exactly when the last process
 * closed cleanly; after a crash the cache starts empty.  A damaged index
 * (bad magic, version, size or CRC) also means an empty cache; an index
 * of another volume uuid or block size is discarded and cache.data is
 * truncated (wiped), with an info line.  Every hit is CRC-checked anyway,
 * so even a stale index could only produce misses.
 *
 * IN MEMORY.  One slot record per slot (key, CRC, generation, state,
 * CLOCK reference bit), a chained hash table (seq, off) -> slot threaded
 * through the records, a stack of free slots and the CLOCK hand.
 *
 * Slot states:
 *   FREE     on the free stack, not in the hash table
 *   WRITING  reserved by a put, in the hash table (gets miss, other puts
 *            of the same key skip it); its bytes are being written
 *   VALID    in the hash table, bytes and CRC match; gets may read it
 *   DROPPED  a WRITING slot whose segment was dropped meanwhile: out of
 *            the hash table; the put that owns it frees it when done
 * Transitions (all under c->lock): FREE -> WRITING (put reserves),
 * WRITING -> VALID (put publishes), WRITING -> FREE (write failed),
 * WRITING -> DROPPED (drop_segment), DROPPED -> FREE (put finishes),
 * VALID -> FREE (CLOCK eviction, drop_segment, CRC mismatch), and a FREE
 * slot is immediately reused by the reserving put.
 *
 * CONCURRENCY.  c->lock (a mutex) protects every slot record, the hash
 * table, the free stack, the CLOCK hand and the counters inserts,
 * evictions and bytes_used.  hits, misses and corrupt are atomics.  No
 * I/O ever happens under c->lock: a get looks up and notes (slot,
 * generation, CRC) for each block under the lock, drops it, reads, and
 * verifies; a put reserves slots under the lock, writes without it, and
 * publishes under it.  Reads go through a pool of io_uring rings
 * (struct hf_cache_ring, each with its own mutex held only while that
 * ring is used); a thread starts at "its" ring and takes any idle one,
 * so concurrent gets do not serialize; one read per run of consecutive
 * slots.  If io_uring is unavailable reads fall back to pread.  Writes
 * use pwrite (buffered io_uring writes are punted to kernel workers and
 * measured 2-3x slower), through a second O_DIRECT descriptor when the
 * run is 4 KiB-aligned in memory and in the file: inserting whole
 * segments would otherwise fill fresh page-cache pages, which cost
 * ~2 ms of CPU per MiB on the VMs measured (direct: ~0.3).  The kernel
 * keeps the two descriptors coherent (a direct write invalidates the
 * cached pages of its range); reads stay buffered.
 *
 * THE REUSE RACE.  A get's read runs without the lock, so the slot it
 * reads may be evicted and reused by a put in the meantime.  Protection:
 * every slot has a generation number, bumped (under c->lock) whenever the
 * slot leaves VALID or is reserved, always *before* the new owner starts
 * writing it.  After its read completes, the get re-reads the generation
 * (atomic acquire load after a full fence): if it is unchanged, no writer
 * had started on the slot before the read finished, so the bytes are the
 * entry's; otherwise the get is a miss (not counted as corruption).  The
 * CRC check is a second line: with an unchanged generation a CRC mismatch
 * is real corruption, and the entry is dropped, `corrupt' is counted and
 * one warning names the file and offset; the caller sees ENOENT.
 *
 * Eviction is CLOCK (second chance): a hit sets the slot's reference bit;
 * the hand skips non-VALID slots, clears set bits and evicts the first
 * VALID slot found with a clear bit.  New entries start with a clear bit.
 * drop_segment scans all slot records (GC is rare; no per-segment list).
 *
 * Open the cache after nbdkit forks (io_uring rings and the flock do not
 * belong in a parent that goes away).  Debug lines use the area "cache"
 * (-D hyperfile.cache=1).
 *
 * Measured here (check-cache, 2 shared cores, page cache): ~150-200k
 * 4 KiB hits/s on one thread; pread would be ~15-25% faster than the
 * io_uring read for a single synchronous page-cache hit, but either is
 * far above what the NBD stack can ask for.
 */
#include <config.h>

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/uio.h>
#include <unistd.h>

#include <liburing.h>

/* Memcheck cannot see the kernel fill buffers through io_uring: tell it
 * (a no-op outside valgrind). */
#if defined __has_include
#if __has_include (<valgrind/memcheck.h>)
#include <valgrind/memcheck.h>
#endif
#endif
#ifndef VALGRIND_MAKE_MEM_DEFINED
#define VALGRIND_MAKE_MEM_DEFINED(addr, len) ((void) 0)
#endif

#include "cache.h"
#include "cache-tables.h"
#include "cleanup.h"
#include "crc32c.h"
#include "localdir.h"
#include "log.h"

/* The files of a cache directory. */
#define HF_CACHE_LOCK_NAME "cache.lock"
#define HF_CACHE_DATA_NAME "cache.data"
#define HF_CACHE_INDEX_NAME "cache.index"
#define HF_CACHE_TMP_NAME "cache.index.tmp"

#define HF_CACHE_MAGIC "HFCI"
#define HF_CACHE_VERSION 1
#define HF_CACHE_HDR_SIZE 64
#define HF_CACHE_ENTRY_SIZE 24
#define HF_CACHE_HDR_CRC_OFF 60

/* Gets are processed in chunks of at most this many blocks, and puts
 * reserve slots that many at a time under the lock. */
#define HF_CACHE_CHUNK 64
/* Puts write in batches of up to this many blocks (4 KiB blocks: 4 MiB,
 * the store's write size).  A direct write has a fixed cost (the
 * submission, the disk's doorbell, the wait and the wake-up): in 256 KiB
 * runs the cache's writes of a segment cost 3.4 times the CPU of the
 * directory store's writes of the same bytes (docs/benchmarks.md, "The
 * cache's writes in segment-sized runs"). */
#define HF_CACHE_PUT_BATCH 1024
/* Alignment of buffer, offset and length for an O_DIRECT write. */
#define HF_CACHE_DIO_ALIGN 4096
#define HF_CACHE_DIO_MIN (64 * 1024)   /* shorter runs: buffered */
/* Rings in the pool and the depth of each (>= HF_CACHE_CHUNK). */
#define HF_CACHE_NRINGS 8
#define HF_CACHE_RING_DEPTH HF_CACHE_CHUNK

#define HF_CACHE_MAX_SLOTS (UINT32_C (1) << 30)

enum hf_cache_state {
  HF_CACHE_FREE = 0,
  HF_CACHE_WRITING,
  HF_CACHE_VALID,
  HF_CACHE_DROPPED,
};

struct hf_cache_slot {
  uint64_t seq;                 /* key, meaningful unless FREE */
  uint64_t off;
  uint32_t crc;                 /* CRC32C of the block */
  uint32_t gen;                 /* bumped before every reuse; atomic reads
                                   outside the lock, writes under it */
  int32_t next;                 /* hash chain, -1 ends */
  uint8_t state;                /* enum hf_cache_state */
  uint8_t ref;                  /* CLOCK reference bit */
};

struct hf_cache_ring {
  pthread_mutex_t lock;         /* protects ring and ok; held during the
                                   whole submit/complete of one request */
  struct io_uring ring;
  bool ok;                      /* usable; false after a failed submit */
  bool fixed;                   /* the data fd is registered as file 0 */
};

struct hf_cache {
  char *dir, *lock_path, *data_path, *index_path, *tmp_path;
  int dir_fd;                   /* the directory (localdir.h): every file
                                   is opened relative to it */
  int lock_fd, data_fd;
  int direct_fd;                /* cache.data with O_DIRECT, or -1 */
  bool direct_ok;               /* atomic: direct writes still work */
  uint8_t uuid[16];
  uint32_t bs;
  unsigned bs_shift;
  uint32_t nslots;

  /* lock protects slots[] (except gen reads, see above), buckets[],
   * free_stack[], nfree, hand, nused, inserts and evictions. */
  pthread_mutex_t lock;
  struct hf_cache_slot *slots;
  int32_t *buckets;
  uint32_t bucket_mask;
  uint32_t *free_stack;
  uint32_t nfree;
  uint32_t hand;
  uint32_t nused;               /* slots not FREE */
  uint64_t inserts, evictions;

  uint64_t hits, misses, corrupt; /* atomics */

  struct hf_cache_ring rings[HF_CACHE_NRINGS];
  unsigned nrings;              /* initialized rings; 0 = pread/pwrite */

  struct hf_ctab *tabs;         /* cache.tables/ (its own lock) */
};

/* One contiguous I/O: a run of consecutive slots <-> consecutive blocks
 * of the caller's buffer. */
struct hf_cache_run {
  uint64_t file_off;
  char *buf;
  size_t len;
};

static _Thread_local unsigned hf_cache_thread_ring = UINT32_MAX;
static unsigned hf_cache_next_ring;     /* atomic */

/* Little-endian helpers. */
static void
hf_cache_put_le16 (uint8_t *p, uint16_t v)
{
  p[0] = v;
  p[1] = v >> 8;
}

static void
hf_cache_put_le32 (uint8_t *p, uint32_t v)
{
  int i;

  for (i = 0; i < 4; i++)
    p[i] = v >> (8 * i);
}

static void
hf_cache_put_le64 (uint8_t *p, uint64_t v)
{
  int i;

  for (i = 0; i < 8; i++)
    p[i] = v >> (8 * i);
}

static uint16_t
hf_cache_get_le16 (const uint8_t *p)
{
  return p[0] | (uint16_t) p[1] << 8;
}

static uint32_t
hf_cache_get_le32 (const uint8_t *p)
{
  uint32_t v = 0;
  int i;

  for (i = 3; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

static uint64_t
hf_cache_get_le64 (const uint8_t *p)
{
  uint64_t v = 0;
  int i;

  for (i = 7; i >= 0; i--)
    v = v << 8 | p[i];
  return v;
}

/* ---- hash table and slot state (caller holds c->lock) ---- */

static uint32_t
hf_cache_bucket (const struct hf_cache *c, uint64_t seq, uint64_t off)
{
  uint64_t h = seq * UINT64_C (0x9e3779b97f4a7c15)
    ^ (off >> c->bs_shift) * UINT64_C (0xc2b2ae3d27d4eb4f);

  h ^= h >> 31;
  h *= UINT64_C (0xff51afd7ed558ccd);
  h ^= h >> 29;
  return (uint32_t) h & c->bucket_mask;
}

static int32_t
hf_cache_lookup (const struct hf_cache *c, uint64_t seq, uint64_t off)
{
  int32_t i = c->buckets[hf_cache_bucket (c, seq, off)];

  while (i >= 0 && (c->slots[i].seq != seq || c->slots[i].off != off))
    i = c->slots[i].next;
  return i;
}

static void
hf_cache_hash_insert (struct hf_cache *c, uint32_t i)
{
  struct hf_cache_slot *s = &c->slots[i];
  uint32_t b = hf_cache_bucket (c, s->seq, s->off);

  s->next = c->buckets[b];
  c->buckets[b] = i;
}

static void
hf_cache_hash_remove (struct hf_cache *c, uint32_t i)
{
  struct hf_cache_slot *s = &c->slots[i];
  int32_t *p = &c->buckets[hf_cache_bucket (c, s->seq, s->off)];

  while (*p != (int32_t) i) {
    assert (*p >= 0);
    p = &c->slots[*p].next;
  }
  *p = s->next;
  s->next = -1;
}

static void
hf_cache_bump_gen (struct hf_cache_slot *s)
{
  __atomic_store_n (&s->gen, s->gen + 1, __ATOMIC_SEQ_CST);
}

/* Return slot i (VALID or DROPPED, already out of the hash table) to
 * the free stack. */
static void
hf_cache_free_slot (struct hf_cache *c, uint32_t i)
{
  c->slots[i].state = HF_CACHE_FREE;
  c->slots[i].ref = 0;
  c->free_stack[c->nfree++] = i;
  c->nused--;
}

/* Take a VALID slot out of the cache. */
static void
hf_cache_evict_slot (struct hf_cache *c, uint32_t i)
{
  assert (c->slots[i].state == HF_CACHE_VALID);
  hf_cache_hash_remove (c, i);
  hf_cache_bump_gen (&c->slots[i]);
  hf_cache_free_slot (c, i);
}

/* Find a slot for a new entry: a free one, or a CLOCK victim.  Returns
 * the slot (now counted in nused, still FREE) or -1 if every slot is
 * being written. */
static int32_t
hf_cache_alloc_slot (struct hf_cache *c)
{
  uint64_t steps;

  if (c->nfree == 0) {
    for (steps = 0; steps < 2 * (uint64_t) c->nslots; steps++) {
      uint32_t i = c->hand;
      struct hf_cache_slot *s = &c->slots[i];

      c->hand = i + 1 == c->nslots ? 0 : i + 1;
      if (s->state != HF_CACHE_VALID)
        continue;
      if (s->ref) {
        s->ref = 0;
        continue;
      }
      hf_cache_evict_slot (c, i);
      c->evictions++;
      break;
    }
    if (c->nfree == 0)
      return -1;
  }
  c->nused++;
  return c->free_stack[--c->nfree];
}

/* ---- I/O ---- */

/* pread/pwrite all of len bytes. */
static int
hf_cache_pio (int fd, bool write, char *buf, size_t len, uint64_t off)
{
  while (len > 0) {
    ssize_t r = write ? pwrite (fd, buf, len, off) : pread (fd, buf, len, off);

    if (r < 0) {
      if (errno == EINTR)
        continue;
      return errno;
    }
    if (r == 0)
      return EIO;
    buf += r;
    len -= r;
    off += r;
  }
  return 0;
}

/* Does run r go through the O_DIRECT descriptor?  Buffer, offset and
 * length must be multiples of HF_CACHE_DIO_ALIGN, and the run long: a
 * direct 4 KiB write costs more CPU (~30 us here) than a buffered one. */
static bool
hf_cache_direct_fits (const struct hf_cache *c, const struct hf_cache_run *r)
{
  return c->direct_fd >= 0 && r->len >= HF_CACHE_DIO_MIN &&
    __atomic_load_n (&c->direct_ok, __ATOMIC_RELAXED) &&
    (((uintptr_t) r->buf | r->file_off | r->len) &
     (HF_CACHE_DIO_ALIGN - 1)) == 0;
}

static int
hf_cache_pio_runs (struct hf_cache *c, bool write,
                   const struct hf_cache_run *runs, unsigned n)
{
  unsigned k;
  int err;

  for (k = 0; k < n; k++) {
    err = EINVAL;
    /* Writes bypass the page cache when they can: filling fresh page
     * cache pages cost as much CPU as the NBD socket in a random-write
     * profile, and the block was just written by the client anyway.
     * Reads stay buffered (the page cache is the warm tier). */
    if (write && hf_cache_direct_fits (c, &runs[k])) {
      err = hf_cache_pio (c->direct_fd, true, runs[k].buf, runs[k].len,
                          runs[k].file_off);
      if (err == EINVAL) {
        hf_debug ("cache", "O_DIRECT write refused by %s; buffered from now",
                  c->data_path);
        __atomic_store_n (&c->direct_ok, false, __ATOMIC_RELAXED);
      }
    }
    if (err == EINVAL)
      err = hf_cache_pio (c->data_fd, write, runs[k].buf, runs[k].len,
                          runs[k].file_off);
    if (err) {
      hf_warn ("cache: %s %s at offset %" PRIu64 ": %s",
               write ? "write" : "read", c->data_path, runs[k].file_off,
               strerror (err));
      return err;
    }
  }
  return 0;
}

/* Lock and return an idle ring (or the thread's own one, waiting), or
 * NULL if there is no usable ring. */
static struct hf_cache_ring *
hf_cache_ring_get (struct hf_cache *c)
{
  unsigned start, k;
  struct hf_cache_ring *r;

  if (c->nrings == 0)
    return NULL;
  if (hf_cache_thread_ring == UINT32_MAX)
    hf_cache_thread_ring = __atomic_fetch_add (&hf_cache_next_ring, 1,
                                               __ATOMIC_RELAXED);
  start = hf_cache_thread_ring % c->nrings;
  for (k = 0; k < c->nrings; k++) {
    r = &c->rings[(start + k) % c->nrings];
    if (pthread_mutex_trylock (&r->lock) == 0)
      goto got;
  }
  r = &c->rings[start];
  pthread_mutex_lock (&r->lock);
 got:
  if (!r->ok) {
    pthread_mutex_unlock (&r->lock);
    return NULL;
  }
  return r;
}

/* Read all runs (n <= HF_CACHE_RING_DEPTH) through one ring. */
static int
hf_cache_read_runs (struct hf_cache *c, const struct hf_cache_run *runs,
                    unsigned n)
{
  struct hf_cache_ring *r;
  struct io_uring_cqe *cqe;
  unsigned k, done;
  int err = 0, ret;

  assert (n <= HF_CACHE_RING_DEPTH);
  r = hf_cache_ring_get (c);
  if (r == NULL)
    return hf_cache_pio_runs (c, false, runs, n);

  for (k = 0; k < n; k++) {
    struct io_uring_sqe *sqe = io_uring_get_sqe (&r->ring);
    int fd = r->fixed ? 0 : c->data_fd;

    assert (sqe != NULL);       /* the ring is empty between requests */
    io_uring_prep_read (sqe, fd, runs[k].buf, runs[k].len, runs[k].file_off);
    if (r->fixed)
      sqe->flags |= IOSQE_FIXED_FILE;
    io_uring_sqe_set_data64 (sqe, k);
  }

  do
    ret = io_uring_submit_and_wait (&r->ring, n);
  while (ret == -EINTR);
  if (ret < 0 || (unsigned) ret != n) {
    /* Queued entries might still be pending: retire this ring. */
    hf_warn ("cache: io_uring_submit: %s; falling back to pread",
             ret < 0 ? strerror (-ret) : "short submit");
    r->ok = false;
    pthread_mutex_unlock (&r->lock);
    return hf_cache_pio_runs (c, false, runs, n);
  }

  for (done = 0; done < n; done++) {
    const struct hf_cache_run *run;

    do
      ret = io_uring_wait_cqe (&r->ring, &cqe);
    while (ret == -EINTR);
    if (ret < 0) {
      /* Cannot happen with everything submitted; be safe anyway. */
      hf_warn ("cache: io_uring_wait_cqe: %s", strerror (-ret));
      r->ok = false;
      pthread_mutex_unlock (&r->lock);
      return EIO;
    }
    run = &runs[io_uring_cqe_get_data64 (cqe)];
    ret = cqe->res;
    io_uring_cqe_seen (&r->ring, cqe);
    if (ret > 0)
      VALGRIND_MAKE_MEM_DEFINED (run->buf, ret);
    if (ret < 0) {
      if (!err) {
        hf_warn ("cache: read %s at offset %" PRIu64 ": %s",
                 c->data_path, run->file_off, strerror (-ret));
        err = -ret;
      }
    }
    else if ((size_t) ret < run->len && !err)
      /* Short transfer: finish it synchronously. */
      err = hf_cache_pio (c->data_fd, false, run->buf + ret,
                          run->len - ret, run->file_off + ret);
  }
  pthread_mutex_unlock (&r->lock);
  return err;
}

/* Build runs for n blocks in slots[] (consecutive slots and consecutive
 * buffer blocks merge).  Returns the number of runs. */
static unsigned
hf_cache_make_runs (const struct hf_cache *c, const uint32_t *slot,
                    const unsigned *blk, unsigned n, char *buf,
                    struct hf_cache_run *runs)
{
  unsigned k, nr = 0;

  for (k = 0; k < n; k++) {
    if (nr > 0 && slot[k] == slot[k - 1] + 1 && blk[k] == blk[k - 1] + 1)
      runs[nr - 1].len += c->bs;
    else {
      runs[nr].file_off = (uint64_t) slot[k] << c->bs_shift;
      runs[nr].buf = buf + ((size_t) blk[k] << c->bs_shift);
      runs[nr].len = c->bs;
      nr++;
    }
  }
  return nr;
}

/* ---- get / put ---- */

static int
hf_cache_check_range (struct hf_cache *c, uint64_t off, size_t len)
{
  if (((off | len) & (c->bs - 1)) != 0)
    return EINVAL;
  return 0;
}

/* Get n <= HF_CACHE_CHUNK blocks. */
static int
hf_cache_get_chunk (struct hf_cache *c, uint64_t seq, uint64_t off,
                    char *buf, unsigned n)
{
  uint32_t slot[HF_CACHE_CHUNK], gen[HF_CACHE_CHUNK], crc[HF_CACHE_CHUNK];
  unsigned blk[HF_CACHE_CHUNK];
  struct hf_cache_run runs[HF_CACHE_CHUNK];
  uint64_t bad_fo = 0, bad_off = 0;
  unsigned k, nr, bad = 0;
  int err;

  pthread_mutex_lock (&c->lock);
  for (k = 0; k < n; k++) {
    int32_t i = hf_cache_lookup (c, seq, off + ((uint64_t) k << c->bs_shift));

    if (i < 0 || c->slots[i].state != HF_CACHE_VALID) {
      pthread_mutex_unlock (&c->lock);
      return ENOENT;
    }
    c->slots[i].ref = 1;
    slot[k] = i;
    gen[k] = c->slots[i].gen;
    crc[k] = c->slots[i].crc;
    blk[k] = k;
  }
  pthread_mutex_unlock (&c->lock);

  nr = hf_cache_make_runs (c, slot, blk, n, buf, runs);
  err = hf_cache_read_runs (c, runs, nr);
  if (err)
    return err;

  /* The bytes were copied by the kernel, before the generations are
   * read again.  (ThreadSanitizer does not model fences, and it does not
   * see the kernel's copy the fence orders: without the fence there,
   * nothing is lost.) */
#ifndef __SANITIZE_THREAD__
  __atomic_thread_fence (__ATOMIC_SEQ_CST);
#endif
  for (k = 0; k < n; k++)
    if (__atomic_load_n (&c->slots[slot[k]].gen, __ATOMIC_ACQUIRE) != gen[k])
      return ENOENT;            /* reused during the read: a plain miss */

  for (k = 0; k < n; k++) {
    if (hf_crc32c (0, buf + ((size_t) k << c->bs_shift), c->bs) == crc[k])
      continue;
    /* Check and drop every damaged block of the range, log the first. */
    pthread_mutex_lock (&c->lock);
    for (; k < n; k++) {
      uint64_t fo = (uint64_t) slot[k] << c->bs_shift;

      if (c->slots[slot[k]].gen != gen[k] ||
          hf_crc32c (0, buf + ((size_t) k << c->bs_shift), c->bs) == crc[k])
        continue;
      /* Still the entry we read: the bytes on disk are damaged. */
      hf_cache_evict_slot (c, slot[k]);
      __atomic_fetch_add (&c->corrupt, 1, __ATOMIC_RELAXED);
      if (bad++ == 0) {
        bad_fo = fo;
        bad_off = off + ((uint64_t) k << c->bs_shift);
      }
    }
    pthread_mutex_unlock (&c->lock);
    if (bad)
      hf_warn ("cache: CRC mismatch in %s at offset %" PRIu64
               " (segment %" PRIu64 " offset %" PRIu64 ", %u damaged "
               "block(s) in this read); dropped", c->data_path, bad_fo,
               seq, bad_off, bad);
    return ENOENT;
  }
  return 0;
}

int
hf_cache_get (struct hf_cache *c, uint64_t seq, uint64_t off,
              void *buf, size_t len)
{
  size_t nblocks, done, n;
  int err;

  err = hf_cache_check_range (c, off, len);
  if (err || len == 0)
    return err;
  nblocks = len >> c->bs_shift;
  for (done = 0; done < nblocks; done += n) {
    n = nblocks - done < HF_CACHE_CHUNK ? nblocks - done : HF_CACHE_CHUNK;
    err = hf_cache_get_chunk (c, seq, off + ((uint64_t) done << c->bs_shift),
                              (char *) buf + (done << c->bs_shift), n);
    if (err) {
      if (err == ENOENT)
        __atomic_fetch_add (&c->misses, 1, __ATOMIC_RELAXED);
      return err;
    }
  }
  __atomic_fetch_add (&c->hits, 1, __ATOMIC_RELAXED);
  return 0;
}

/* Per-block arrays of one put batch (n <= their length). */
struct hf_cache_putv {
  uint32_t *crc, *slot, *gen;
  unsigned *blk;
  struct hf_cache_run *runs;
};

/* Put n blocks (at most the length of a's arrays).  Slots are reserved
 * HF_CACHE_CHUNK at a time, so that gets do not wait on c->lock behind
 * a whole batch, then written as a whole: a segment's blocks get slots
 * the CLOCK hand or the free stack hands out in order, so a batch is a
 * few long runs. */
static int
hf_cache_put_batch (struct hf_cache *c, uint64_t seq, uint64_t off,
                    const char *buf, const uint32_t *crcs, unsigned n,
                    const struct hf_cache_putv *a)
{
  unsigned k, nres = 0, nr;
  int err = 0;

  for (k = 0; k < n; k++)
    a->crc[k] = crcs ? crcs[k] :
      hf_crc32c (0, buf + ((size_t) k << c->bs_shift), c->bs);

  /* Reserve. */
  pthread_mutex_lock (&c->lock);
  for (k = 0; k < n; k++) {
    uint64_t boff = off + ((uint64_t) k << c->bs_shift);
    struct hf_cache_slot *s;
    int32_t i;

    if (k > 0 && k % HF_CACHE_CHUNK == 0) {
      pthread_mutex_unlock (&c->lock);
      pthread_mutex_lock (&c->lock);
    }
    if (hf_cache_lookup (c, seq, boff) >= 0)
      continue;                 /* present or being written */
    i = hf_cache_alloc_slot (c);
    if (i < 0) {
      err = ENOSPC;             /* every slot busy: cache what we have */
      break;
    }
    s = &c->slots[i];
    hf_cache_bump_gen (s);
    s->seq = seq;
    s->off = boff;
    s->crc = a->crc[k];
    s->state = HF_CACHE_WRITING;
    s->ref = 0;
    hf_cache_hash_insert (c, i);
    a->slot[nres] = i;
    a->gen[nres] = s->gen;
    a->blk[nres] = k;
    nres++;
  }
  pthread_mutex_unlock (&c->lock);
  if (nres == 0)
    return err;

  /* Write without the lock.  pwrite, not io_uring: buffered writes
   * through io_uring go to a kernel worker thread here and measured 2-3
   * times slower than a plain pwrite into the page cache. */
  nr = hf_cache_make_runs (c, a->slot, a->blk, nres, (char *) buf, a->runs);
  if (hf_cache_pio_runs (c, true, a->runs, nr) != 0)
    err = EIO;

  /* Publish. */
  pthread_mutex_lock (&c->lock);
  for (k = 0; k < nres; k++) {
    struct hf_cache_slot *s = &c->slots[a->slot[k]];

    if (s->gen != a->gen[k]) {
      assert (s->state == HF_CACHE_DROPPED);
      hf_cache_free_slot (c, a->slot[k]);
    }
    else if (err == EIO) {
      assert (s->state == HF_CACHE_WRITING);
      hf_cache_hash_remove (c, a->slot[k]);
      hf_cache_bump_gen (s);
      hf_cache_free_slot (c, a->slot[k]);
    }
    else {
      assert (s->state == HF_CACHE_WRITING);
      s->state = HF_CACHE_VALID;
      c->inserts++;
    }
  }
  pthread_mutex_unlock (&c->lock);
  return err;
}

int
hf_cache_put (struct hf_cache *c, uint64_t seq, uint64_t off,
              const void *buf, size_t len)
{
  return hf_cache_put_crcs (c, seq, off, buf, len, NULL);
}

int
hf_cache_put_crcs (struct hf_cache *c, uint64_t seq, uint64_t off,
                   const void *buf, size_t len, const uint32_t *crcs)
{
  uint32_t crc[HF_CACHE_CHUNK], slot[HF_CACHE_CHUNK], gen[HF_CACHE_CHUNK];
  unsigned blk[HF_CACHE_CHUNK];
  struct hf_cache_run runs[HF_CACHE_CHUNK];
  struct hf_cache_putv a = { crc, slot, gen, blk, runs };
  CLEANUP_FREE char *heap = NULL;
  size_t nblocks, done, n, batch = HF_CACHE_CHUNK;
  int err;

  err = hf_cache_check_range (c, off, len);
  if (err)
    return err;
  nblocks = len >> c->bs_shift;
  /* A segment's worth in batches of HF_CACHE_PUT_BATCH (arrays on the
   * heap; without them, HF_CACHE_CHUNK at a time). */
  if (nblocks > HF_CACHE_CHUNK) {
    size_t m = nblocks < HF_CACHE_PUT_BATCH ? nblocks : HF_CACHE_PUT_BATCH;

    heap = malloc (m * (3 * sizeof (uint32_t) + sizeof (unsigned) +
                        sizeof (struct hf_cache_run)));
    if (heap) {
      a.runs = (struct hf_cache_run *) heap;
      a.crc = (uint32_t *) (a.runs + m);
      a.slot = a.crc + m;
      a.gen = a.slot + m;
      a.blk = (unsigned *) (a.gen + m);
      batch = m;
    }
  }
  for (done = 0; done < nblocks; done += n) {
    n = nblocks - done < batch ? nblocks - done : batch;
    err = hf_cache_put_batch (c, seq, off + ((uint64_t) done << c->bs_shift),
                              (const char *) buf + (done << c->bs_shift),
                              crcs ? crcs + done : NULL, (unsigned) n, &a);
    if (err)
      return err;
  }
  return 0;
}

void
hf_cache_drop_segment (struct hf_cache *c, uint64_t seq)
{
  uint32_t i;

  hf_ctab_drop (c->tabs, seq);
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&c->lock);
  for (i = 0; i < c->nslots; i++) {
    struct hf_cache_slot *s = &c->slots[i];

    if (s->seq != seq)
      continue;
    if (s->state == HF_CACHE_VALID)
      hf_cache_evict_slot (c, i);
    else if (s->state == HF_CACHE_WRITING) {
      hf_cache_hash_remove (c, i);
      hf_cache_bump_gen (s);
      s->state = HF_CACHE_DROPPED;
    }
  }
}

int
hf_cache_tables_get (struct hf_cache *c, uint64_t seq, void **buf,
                     size_t *len)
{
  return hf_ctab_get (c->tabs, seq, buf, len);
}

void
hf_cache_tables_put (struct hf_cache *c, uint64_t seq, const void *buf,
                     size_t len)
{
  hf_ctab_put (c->tabs, seq, buf, len);
}

void
hf_cache_get_stats (struct hf_cache *c, struct hf_cache_stats *out)
{
  hf_ctab_usage (c->tabs, &out->tables_used, &out->tables_max);
  ACQUIRE_LOCK_FOR_CURRENT_SCOPE (&c->lock);
  out->hits = __atomic_load_n (&c->hits, __ATOMIC_RELAXED);
  out->misses = __atomic_load_n (&c->misses, __ATOMIC_RELAXED);
  out->corrupt = __atomic_load_n (&c->corrupt, __ATOMIC_RELAXED);
  out->inserts = c->inserts;
  out->evictions = c->evictions;
  out->bytes_used = (uint64_t) c->nused << c->bs_shift;
  out->bytes_max = (uint64_t) c->nslots << c->bs_shift;
}

/* ---- index file ---- */

static int
hf_cache_fsync_dir (struct hf_cache *c)
{
  if (fsync (c->dir_fd) < 0) {
    hf_warn ("cache: fsync %s: %m", c->dir);
    return errno;
  }
  return 0;
}

/* Write the index durably: all VALID entries if full, else none.
 * Caller holds c->lock or is the only user. */
static int
hf_cache_write_index (struct hf_cache *c, bool full)
{
  CLEANUP_FREE uint8_t *p = NULL;
  size_t n = 0, size;
  uint32_t i;
  uint8_t *e;
  int fd, err;

  if (full)
    n = c->nused;
  size = HF_CACHE_HDR_SIZE + n * HF_CACHE_ENTRY_SIZE;
  p = calloc (1, size);
  if (p == NULL)
    return errno;
  e = p + HF_CACHE_HDR_SIZE;
  n = 0;
  for (i = 0; full && i < c->nslots; i++) {
    const struct hf_cache_slot *s = &c->slots[i];

    if (s->state != HF_CACHE_VALID)
      continue;
    hf_cache_put_le64 (e, s->seq);
    hf_cache_put_le64 (e + 8, s->off);
    hf_cache_put_le32 (e + 16, i);
    hf_cache_put_le32 (e + 20, s->crc);
    e += HF_CACHE_ENTRY_SIZE;
    n++;
  }
  size = HF_CACHE_HDR_SIZE + n * HF_CACHE_ENTRY_SIZE;
  memcpy (p, HF_CACHE_MAGIC, 4);
  hf_cache_put_le16 (p + 4, HF_CACHE_VERSION);
  hf_cache_put_le16 (p + 6, HF_CACHE_HDR_SIZE);
  hf_cache_put_le32 (p + 12, c->bs);
  memcpy (p + 16, c->uuid, 16);
  hf_cache_put_le64 (p + 32, c->nslots);
  hf_cache_put_le64 (p + 40, n);
  hf_cache_put_le32 (p + 48, hf_crc32c (0, p + HF_CACHE_HDR_SIZE,
                                        n * HF_CACHE_ENTRY_SIZE));
  hf_cache_put_le32 (p + HF_CACHE_HDR_CRC_OFF,
                     hf_crc32c (0, p, HF_CACHE_HDR_CRC_OFF));

  /* A new file (O_EXCL): what a crash left there is removed first, and
   * nothing planted under that name is ever written through. */
  fd = hf_localdir_openat (c->dir_fd, HF_CACHE_TMP_NAME,
                           O_WRONLY | O_CREAT | O_EXCL);
  if (fd < 0 && errno == EEXIST &&
      unlinkat (c->dir_fd, HF_CACHE_TMP_NAME, 0) == 0)
    fd = hf_localdir_openat (c->dir_fd, HF_CACHE_TMP_NAME,
                             O_WRONLY | O_CREAT | O_EXCL);
  if (fd < 0) {
    err = errno;
    hf_warn ("cache: open %s: %s", c->tmp_path, hf_localdir_strerror (err));
    return err;
  }
  err = hf_cache_pio (fd, true, (char *) p, size, 0);
  if (err == 0 && fsync (fd) < 0)
    err = errno;
  close (fd);
  if (err == 0 && renameat (c->dir_fd, HF_CACHE_TMP_NAME, c->dir_fd,
                            HF_CACHE_INDEX_NAME) < 0)
    err = errno;
  if (err) {
    hf_warn ("cache: writing %s: %s", c->index_path, strerror (err));
    unlinkat (c->dir_fd, HF_CACHE_TMP_NAME, 0);
    return err;
  }
  return hf_cache_fsync_dir (c);
}

/* Load the index into the (empty) slot table.  Sets *wipe if cache.data
 * belongs to another volume or block size.  A missing or damaged index
 * leaves the cache empty; only allocation failures are errors. */
static int
hf_cache_load_index (struct hf_cache *c, bool *wipe)
{
  CLEANUP_CLOSE int fd = -1;
  CLEANUP_FREE uint8_t *p = NULL;
  uint8_t hdr[HF_CACHE_HDR_SIZE];
  uint64_t n, k, nslots;
  uint32_t bs;
  struct stat st;

  *wipe = false;
  fd = hf_localdir_openat (c->dir_fd, HF_CACHE_INDEX_NAME, O_RDONLY);
  if (fd < 0) {
    if (errno != ENOENT)
      hf_warn ("cache: open %s: %s; starting empty", c->index_path,
               hf_localdir_strerror (errno));
    return 0;
  }
  if (fstat (fd, &st) < 0 || st.st_size < HF_CACHE_HDR_SIZE ||
      hf_cache_pio (fd, false, (char *) hdr, sizeof hdr, 0) != 0)
    goto damaged;
  if (memcmp (hdr, HF_CACHE_MAGIC, 4) != 0 ||
      hf_cache_get_le16 (hdr + 4) != HF_CACHE_VERSION ||
      hf_cache_get_le16 (hdr + 6) != HF_CACHE_HDR_SIZE ||
      hf_cache_get_le32 (hdr + HF_CACHE_HDR_CRC_OFF) !=
      hf_crc32c (0, hdr, HF_CACHE_HDR_CRC_OFF))
    goto damaged;
  bs = hf_cache_get_le32 (hdr + 12);
  if (memcmp (hdr + 16, c->uuid, 16) != 0 || bs != c->bs) {
    hf_info ("cache: %s belongs to another volume or block size "
             "(block size %" PRIu32 "); wiping the cache", c->dir, bs);
    *wipe = true;
    return 0;
  }
  nslots = hf_cache_get_le64 (hdr + 32);
  n = hf_cache_get_le64 (hdr + 40);
  if (n > nslots || n > HF_CACHE_MAX_SLOTS ||
      (uint64_t) st.st_size != HF_CACHE_HDR_SIZE + n * HF_CACHE_ENTRY_SIZE)
    goto damaged;
  if (n == 0)
    return 0;
  p = malloc (n * HF_CACHE_ENTRY_SIZE);
  if (p == NULL)
    return errno;
  if (hf_cache_pio (fd, false, (char *) p, n * HF_CACHE_ENTRY_SIZE,
                    HF_CACHE_HDR_SIZE) != 0 ||
      hf_crc32c (0, p, n * HF_CACHE_ENTRY_SIZE) !=
      hf_cache_get_le32 (hdr + 48))
    goto damaged;

  for (k = 0; k < n; k++) {
    const uint8_t *e = p + k * HF_CACHE_ENTRY_SIZE;
    uint64_t seq = hf_cache_get_le64 (e), off = hf_cache_get_le64 (e + 8);
    uint32_t i = hf_cache_get_le32 (e + 16);
    struct hf_cache_slot *s;

    /* Entries beyond a reduced capacity are dropped; duplicates (never
     * written by us) are ignored. */
    if (i >= c->nslots || c->slots[i].state != HF_CACHE_FREE ||
        (off & (c->bs - 1)) != 0 || hf_cache_lookup (c, seq, off) >= 0)
      continue;
    s = &c->slots[i];
    s->seq = seq;
    s->off = off;
    s->crc = hf_cache_get_le32 (e + 20);
    s->state = HF_CACHE_VALID;
    hf_cache_hash_insert (c, i);
    c->nused++;
  }
  hf_debug ("cache", "loaded %" PRIu32 " entries from %s", c->nused,
            c->index_path);
  return 0;

 damaged:
  hf_warn ("cache: index %s is damaged; starting with an empty cache",
           c->index_path);
  return 0;
}

/* ---- open / close ---- */

static void
hf_cache_free (struct hf_cache *c)
{
  unsigned k;

  hf_ctab_close (c->tabs);
  for (k = 0; k < c->nrings; k++) {
    io_uring_queue_exit (&c->rings[k].ring);
    pthread_mutex_destroy (&c->rings[k].lock);
  }
  if (c->data_fd >= 0)
    close (c->data_fd);
  if (c->direct_fd >= 0)
    close (c->direct_fd);
  if (c->lock_fd >= 0)
    close (c->lock_fd);         /* releases the flock */
  if (c->dir_fd >= 0)
    close (c->dir_fd);
  free (c->slots);
  free (c->buckets);
  free (c->free_stack);
  free (c->dir);
  free (c->lock_path);
  free (c->data_path);
  free (c->index_path);
  free (c->tmp_path);
  free (c);
}

static void
hf_cache_init_rings (struct hf_cache *c)
{
  unsigned k;
  int ret;

  for (k = 0; k < HF_CACHE_NRINGS; k++) {
    struct hf_cache_ring *r = &c->rings[k];

    ret = io_uring_queue_init (HF_CACHE_RING_DEPTH, &r->ring, 0);
    if (ret < 0) {
      if (k == 0)
        hf_warn ("cache: io_uring_queue_init: %s; using pread",
                 strerror (-ret));
      break;
    }
    r->fixed = io_uring_register_files (&r->ring, &c->data_fd, 1) == 0;
    r->ok = true;
    pthread_mutex_init (&r->lock, NULL);
    c->nrings++;
  }
}

int
hf_cache_open (const struct hf_cache_options *opts, struct hf_cache **out)
{
  struct hf_cache *c;
  uint64_t max_bytes = opts->max_bytes ? opts->max_bytes : UINT64_C (1) << 30;
  uint64_t nslots;
  uint32_t nb, i;
  bool wipe;
  int err;

  if (opts->dir == NULL || opts->block_size < 512 ||
      opts->block_size > 65536 ||
      (opts->block_size & (opts->block_size - 1)) != 0)
    return EINVAL;
  nslots = max_bytes / opts->block_size;
  if (nslots == 0)
    return EINVAL;
  if (nslots > HF_CACHE_MAX_SLOTS)
    nslots = HF_CACHE_MAX_SLOTS;

  c = calloc (1, sizeof *c);
  if (c == NULL)
    return errno;
  c->dir_fd = c->lock_fd = c->data_fd = c->direct_fd = -1;
  memcpy (c->uuid, opts->volume_uuid, 16);
  c->bs = opts->block_size;
  c->bs_shift = __builtin_ctz (c->bs);
  c->nslots = nslots;
  if ((c->dir = strdup (opts->dir)) == NULL ||
      asprintf (&c->lock_path, "%s/" HF_CACHE_LOCK_NAME, opts->dir) < 0 ||
      asprintf (&c->data_path, "%s/" HF_CACHE_DATA_NAME, opts->dir) < 0 ||
      asprintf (&c->index_path, "%s/" HF_CACHE_INDEX_NAME, opts->dir) < 0 ||
      asprintf (&c->tmp_path, "%s/" HF_CACHE_TMP_NAME, opts->dir) < 0) {
    err = ENOMEM;
    goto err_free;
  }

  err = hf_localdir_open ("cache", opts->dir, &c->dir_fd);
  if (err)
    goto err_free;
  c->lock_fd = hf_localdir_openat (c->dir_fd, HF_CACHE_LOCK_NAME,
                                   O_RDWR | O_CREAT);
  if (c->lock_fd < 0) {
    err = errno;
    hf_error ("cache: open %s: %s", c->lock_path,
              hf_localdir_strerror (err));
    goto err_free;
  }
  if (flock (c->lock_fd, LOCK_EX | LOCK_NB) < 0) {
    err = errno == EWOULDBLOCK ? EBUSY : errno;
    hf_error ("cache: %s is in use by another process", opts->dir);
    goto err_free;
  }

  for (nb = 1; nb < c->nslots; nb <<= 1)
    ;
  c->bucket_mask = nb - 1;
  c->slots = malloc (c->nslots * sizeof *c->slots);
  c->buckets = malloc (nb * sizeof *c->buckets);
  c->free_stack = malloc (c->nslots * sizeof *c->free_stack);
  if (c->slots == NULL || c->buckets == NULL || c->free_stack == NULL) {
    err = ENOMEM;
    goto err_free;
  }
  memset (c->buckets, 0xff, nb * sizeof *c->buckets);
  for (i = 0; i < c->nslots; i++)
    c->slots[i] = (struct hf_cache_slot) { .next = -1 };

  err = hf_cache_load_index (c, &wipe);
  if (err)
    goto err_free;
  /* Free slots, lowest on top. */
  for (i = c->nslots; i-- > 0;)
    if (c->slots[i].state == HF_CACHE_FREE)
      c->free_stack[c->nfree++] = i;

  c->data_fd = hf_localdir_openat (c->dir_fd, HF_CACHE_DATA_NAME,
                                   O_RDWR | O_CREAT);
  if (c->data_fd < 0) {
    err = errno;
    hf_error ("cache: open %s: %s", c->data_path,
              hf_localdir_strerror (err));
    goto err_free;
  }
  if ((wipe && ftruncate (c->data_fd, 0) < 0) ||
      ftruncate (c->data_fd, (off_t) c->nslots << c->bs_shift) < 0) {
    err = errno;
    hf_error ("cache: ftruncate %s: %m", c->data_path);
    goto err_free;
  }
  /* Preallocate (best effort: not every file system can). */
  if (fallocate (c->data_fd, 0, 0, (off_t) c->nslots << c->bs_shift) < 0)
    hf_debug ("cache", "fallocate %s: %m", c->data_path);
  /* A second descriptor for direct writes (best effort: tmpfs and some
   * others refuse O_DIRECT). */
  c->direct_fd = hf_localdir_openat (c->dir_fd, HF_CACHE_DATA_NAME,
                                     O_RDWR | O_DIRECT);
  if (c->direct_fd < 0)
    hf_debug ("cache", "open %s with O_DIRECT: %m; buffered writes",
              c->data_path);
  c->direct_ok = c->direct_fd >= 0;

  err = hf_ctab_open (c->dir_fd, c->dir, c->uuid,
                      HF_CACHE_TABLES_MAX (max_bytes), wipe, &c->tabs);
  if (err)
    goto err_free;

  /* From now on slots may change: the on-disk index must say nothing. */
  err = hf_cache_write_index (c, false);
  if (err)
    goto err_free;

  hf_cache_init_rings (c);
  pthread_mutex_init (&c->lock, NULL);
  hf_debug ("cache", "opened %s: %" PRIu32 " slots of %" PRIu32
            " bytes, %" PRIu32 " in use, %u io_uring rings",
            c->dir, c->nslots, c->bs, c->nused, c->nrings);
  *out = c;
  return 0;

 err_free:
  hf_cache_free (c);
  return err;
}

void
hf_cache_close (struct hf_cache *c)
{
  if (c == NULL)
    return;
  if (fdatasync (c->data_fd) < 0)
    hf_warn ("cache: fdatasync %s: %m; index not saved", c->data_path);
  else
    hf_cache_write_index (c, true);
  pthread_mutex_destroy (&c->lock);
  hf_cache_free (c);
}
