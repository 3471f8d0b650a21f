/* hyperfile bench: write amplification and index memory.
 *
 *   writeamp [-s VOLUME_GIB] [-S SEGMENT_MIB] MIB STORE
 *     Writes MIB MiB of random 4 KiB blocks over a fresh volume of
 *     VOLUME_GIB GiB (default 16) in STORE (a directory, file:///DIR or
 *     s3://BUCKET/PREFIX with the usual AWS_* environment), flushes and
 *     closes (which writes a checkpoint), and prints store PUT requests
 *     per GiB written and store bytes written per byte written, against a
 *     one-object-per-block design (262144 PUTs per GiB of 4 KiB blocks),
 *     and the metadata fraction.  The brief asks for <= 1.15 bytes/byte
 *     and <= 1/500 of the PUTs.
 *
 *   writeamp -m BLOCKS [-r READS] [-x] STORE
 *     Maps BLOCKS 4 KiB blocks with large sequential writes, closes,
 *     reopens read-only with node_cache=256, does READS (default 100000)
 *     random 4 KiB reads, checking what they return, and prints the peak
 *     RSS (getrusage) and the timings.  The peak RSS of a process never
 *     goes down, so after a write phase it is the write phase's: -r 0
 *     stops after the write phase, and -x skips it (reuses the volume of
 *     an earlier run), so the reopen's peak RSS is that of the reopen
 *     and the reads alone; it also prints the RSS just before the open
 *     (the process's baseline: libraries, heap of the store handle).
 *
 *   writeamp -o SEGMENTS STORE
 *     Commits SEGMENTS segments (one 4 KiB write and a flush each; the
 *     volume checkpoints as it normally would), closes, then times a
 *     writable open after the clean close and counts the store requests
 *     it makes; then writes and flushes once more, simulates a crash
 *     (no closing checkpoint) and times the recovering open the same way.
 *     Prints one "open ..." line per open (bench/run parses them).
 *
 * STORE must not hold a volume yet (a fresh directory is simplest).
 */
#include <config.h>

#include <errno.h>
#include <stdbool.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "objstore.h"
#include "volume.h"

static double
now_s (void)
{
  struct timespec ts;
  clock_gettime (CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t rng = 0x853c49e6748fea9bull;
static uint64_t
rnd (void)
{
  rng ^= rng << 13;
  rng ^= rng >> 7;
  rng ^= rng << 17;
  return rng;
}

static long
peak_rss_kib (void)
{
  struct rusage ru;
  getrusage (RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

/* Current resident set size, VmRSS from /proc/self/status. */
static long
current_rss_kib (void)
{
  FILE *fp = fopen ("/proc/self/status", "r");
  char line[256];
  long kib = -1;

  if (fp == NULL)
    return -1;
  while (fgets (line, sizeof line, fp))
    if (sscanf (line, "VmRSS: %ld kB", &kib) == 1)
      break;
  fclose (fp);
  return kib;
}

static void
die (const char *what, int r)
{
  fprintf (stderr, "writeamp: %s: %s\n", what, strerror (r));
  exit (EXIT_FAILURE);
}

static int
bench_writeamp (struct hf_objstore *s, const char *prefix, uint64_t mib,
                uint64_t vol_gib, size_t seg_mib)
{
  struct hf_volume_options o = { .segment_size = seg_mib << 20 };
  struct hf_objstore_stats st0, st1;
  struct hf_volume_info info;
  struct hf_volume *v;
  uint64_t nblocks = (vol_gib << 30) / 4096, nw = (mib << 20) / 4096, i;
  uint8_t buf[4096];
  double t0, t1, gib, puts, bytes;
  int r;

  r = hf_volume_create (s, prefix, vol_gib << 30, 4096);
  if (r)
    die ("create", r);
  r = hf_volume_open (s, prefix, &o, &v);
  if (r)
    die ("open", r);
  hf_objstore_get_stats (s, &st0);
  t0 = now_s ();
  for (i = 0; i < nw; i++) {
    size_t k;
    for (k = 0; k < sizeof buf; k += 8) {
      uint64_t x = rnd ();
      memcpy (buf + k, &x, 8);
    }
    r = hf_volume_pwrite (v, buf, sizeof buf, (rnd () % nblocks) * 4096, 0);
    if (r)
      die ("pwrite", r);
  }
  r = hf_volume_flush (v);
  if (r)
    die ("flush", r);
  hf_volume_get_info (v, &info);
  r = hf_volume_close (v);      /* writes the closing checkpoint */
  if (r)
    die ("close", r);
  t1 = now_s ();
  hf_objstore_get_stats (s, &st1);

  gib = (double) (nw * 4096) / (1 << 30);
  puts = (double) (st1.requests[HF_OP_PUT] - st0.requests[HF_OP_PUT]);
  bytes = (double) (st1.bytes_out - st0.bytes_out);
  printf ("random 4 KiB writes: %.3f GiB (%llu blocks) over a %llu GiB "
          "volume, segment %zu MiB, %.1f s (%.0f IOPS incl. flush+close)\n",
          gib, (unsigned long long) nw, (unsigned long long) vol_gib, seg_mib,
          t1 - t0, nw / (t1 - t0));
  printf ("segments committed %llu, checkpoints %llu (before close)\n",
          (unsigned long long) info.segments_committed,
          (unsigned long long) info.checkpoints_written);
  printf ("store PUT requests: %.0f = %.1f per GiB; one-object-per-block: "
          "262144 per GiB; ratio 1/%.0f (brief: <= 1/500)\n",
          puts, puts / gib, 262144.0 * gib / puts);
  printf ("store bytes written: %.0f = %.4f bytes per byte written "
          "(brief: <= 1.15)\n", bytes, bytes / (double) (nw * 4096));
  printf ("volume data bytes uploaded %llu, metadata bytes %llu (before "
          "close): metadata %.3f%% of data\n",
          (unsigned long long) info.data_bytes_uploaded,
          (unsigned long long) info.meta_bytes_uploaded,
          100.0 * info.meta_bytes_uploaded /
          (info.data_bytes_uploaded ? info.data_bytes_uploaded : 1));
  printf ("peak RSS %ld KiB\n", peak_rss_kib ());
  return 0;
}

static int
bench_memory (struct hf_objstore *s, const char *prefix, uint64_t blocks,
              uint64_t reads, bool reuse)
{
  struct hf_volume_options o = { 0 };
  struct hf_volume_info info;
  struct hf_volume *v;
  size_t chunk = 1 << 20;
  uint8_t *buf = malloc (chunk);
  uint64_t off, i, total = blocks * 4096;
  double t0, t1, t2;
  long rss_write, rss_before;
  int r;

  if (buf == NULL)
    die ("malloc", ENOMEM);
  t0 = t1 = now_s ();
  if (reuse)
    goto reopen;
  r = hf_volume_create (s, prefix, total, 4096);
  if (r)
    die ("create", r);
  r = hf_volume_open (s, prefix, &o, &v);
  if (r)
    die ("open", r);
  t0 = now_s ();
  for (off = 0; off < total; off += chunk) {
    size_t n = total - off < chunk ? total - off : chunk, k;
    for (k = 0; k < n; k += 4096) {
      uint64_t x = (off + k) | 1;
      memcpy (buf + k, &x, 8);
      memset (buf + k + 8, 0x5a, 4088);
    }
    r = hf_volume_pwrite (v, buf, n, off, 0);
    if (r)
      die ("pwrite", r);
  }
  r = hf_volume_close (v);
  if (r)
    die ("close", r);
  t1 = now_s ();
  rss_write = peak_rss_kib ();
  printf ("mapped %llu blocks (%.2f GiB) in %.1f s; peak RSS after "
          "writing %ld KiB\n", (unsigned long long) blocks,
          total / (double) (1 << 30), t1 - t0, rss_write);
  if (reads == 0)
    goto out;

 reopen:
  fflush (stdout);
  rss_before = current_rss_kib ();
  o.node_cache = 256;
  o.readonly = true;
  r = hf_volume_open (s, prefix, &o, &v);
  if (r)
    die ("reopen", r);
  for (i = 0; i < reads; i++) {
    uint64_t b = rnd () % blocks, x;
    r = hf_volume_pread (v, buf, 4096, b * 4096);
    if (r)
      die ("pread", r);
    memcpy (&x, buf, 8);
    if (x != ((b * 4096) | 1)) {
      fprintf (stderr, "writeamp: block %llu holds wrong data\n",
               (unsigned long long) b);
      exit (EXIT_FAILURE);
    }
  }
  t2 = now_s ();
  hf_volume_get_info (v, &info);
  if (info.mapped_blocks != blocks) {
    fprintf (stderr, "writeamp: the volume maps %llu blocks, not %llu\n",
             (unsigned long long) info.mapped_blocks,
             (unsigned long long) blocks);
    exit (EXIT_FAILURE);
  }
  printf ("reopened with node_cache=256: %llu random 4 KiB reads in %.1f s "
          "(%.0f/s), %llu nodes cached, peak RSS %ld KiB; %s, RSS before "
          "the open %ld KiB\n",
          (unsigned long long) reads, t2 - t1, reads / (t2 - t1),
          (unsigned long long) info.node_cache_nodes, peak_rss_kib (),
          reuse ? "reopen alone (no write phase in this process)"
          : "includes the write phase", rss_before);
  hf_volume_close (v);
 out:
  free (buf);
  return 0;
}

/* Open the volume under prefix writable, report time and requests. */
static struct hf_volume *
timed_open (struct hf_objstore *s, const char *prefix, const char *what,
            uint64_t segments, bool break_lease)
{
  /* break_lease: the "crashed" writer is this very process, whose lease
   * a same-host open would otherwise see as live. */
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX,
                                 .break_lease = break_lease };
  struct hf_objstore_stats st0, st1;
  struct hf_volume_info info;
  struct hf_volume *v;
  double t0, t1;
  int r;

  hf_objstore_get_stats (s, &st0);
  t0 = now_s ();
  r = hf_volume_open (s, prefix, &o, &v);
  if (r)
    die ("reopen", r);
  t1 = now_s ();
  hf_objstore_get_stats (s, &st1);
  hf_volume_get_info (v, &info);
  printf ("open %s segments %llu head %llu checkpoint %llu seconds %.6f "
          "get %llu head_req %llu put %llu list %llu delete %llu session %llu\n",
          what,
          (unsigned long long) segments, (unsigned long long) info.head_seq,
          (unsigned long long) info.ckpt_seq, t1 - t0,
          (unsigned long long) (st1.requests[HF_OP_GET] -
                                st0.requests[HF_OP_GET]),
          (unsigned long long) (st1.requests[HF_OP_HEAD] -
                                st0.requests[HF_OP_HEAD]),
          (unsigned long long) (st1.requests[HF_OP_PUT] -
                                st0.requests[HF_OP_PUT]),
          (unsigned long long) (st1.requests[HF_OP_LIST] -
                                st0.requests[HF_OP_LIST]),
          (unsigned long long) (st1.requests[HF_OP_DELETE] -
                                st0.requests[HF_OP_DELETE]),
          (unsigned long long) (st1.requests[HF_OP_SESSION] -
                                st0.requests[HF_OP_SESSION]));
  fflush (stdout);
  return v;
}

static int
bench_open (struct hf_objstore *s, const char *prefix, uint64_t segments)
{
  /* Small segments are irrelevant here: each flush seals whatever is
   * buffered (one block) into its own segment. */
  struct hf_volume_options o = { .flush_interval_ms = UINT32_MAX };
  struct hf_volume *v;
  uint64_t nblocks = (1ull << 30) / 4096, i;
  uint8_t buf[4096];
  double t0;
  int r;

  r = hf_volume_create (s, prefix, 1ull << 30, 4096);
  if (r)
    die ("create", r);
  r = hf_volume_open (s, prefix, &o, &v);
  if (r)
    die ("open", r);
  t0 = now_s ();
  for (i = 0; i < segments; i++) {
    memset (buf, (int) (i & 0xff), sizeof buf);
    memcpy (buf, &i, sizeof i);
    r = hf_volume_pwrite (v, buf, sizeof buf, (rnd () % nblocks) * 4096, 0);
    if (r)
      die ("pwrite", r);
    r = hf_volume_flush (v);
    if (r)
      die ("flush", r);
  }
  r = hf_volume_close (v);
  if (r)
    die ("close", r);
  fprintf (stderr, "writeamp: %llu segments built in %.1f s\n",
           (unsigned long long) segments, now_s () - t0);

  v = timed_open (s, prefix, "clean", segments, false);
  /* One more segment, then die without the closing checkpoint: the
   * next open recovers every segment since the last checkpoint. */
  r = hf_volume_pwrite (v, buf, sizeof buf, 0, 0);
  if (r == 0)
    r = hf_volume_flush (v);
  if (r)
    die ("write before crash", r);
  hf_volume_crash (v);
  v = timed_open (s, prefix, "crash", segments + 1, true);
  hf_volume_close (v);
  return 0;
}

int
main (int argc, char **argv)
{
  uint64_t vol_gib = 16, blocks = 0, reads = 100000, segments = 0;
  bool reuse = false;
  size_t seg_mib = 32;
  struct hf_s3_config s3cfg = { .tls_verify = true };
  struct hf_objstore *s;
  char *prefix = NULL;
  int c, r;

  while ((c = getopt (argc, argv, "s:S:m:r:xo:")) != -1)
    switch (c) {
    case 's': vol_gib = strtoull (optarg, NULL, 0); break;
    case 'S': seg_mib = strtoull (optarg, NULL, 0); break;
    case 'm': blocks = strtoull (optarg, NULL, 0); break;
    case 'r': reads = strtoull (optarg, NULL, 0); break;
    case 'x': reuse = true; break;
    case 'o': segments = strtoull (optarg, NULL, 0); break;
    default: goto usage;
    }
  if (argc - optind != (blocks || segments ? 1 : 2))
    goto usage;
  r = hf_objstore_open_url (argv[argc - 1], &s3cfg, true, &s, &prefix);
  if (r)
    die (argv[argc - 1], r);
  if (segments)
    bench_open (s, prefix, segments);
  else if (blocks)
    bench_memory (s, prefix, blocks, reads, reuse);
  else
    bench_writeamp (s, prefix, strtoull (argv[optind], NULL, 0), vol_gib,
                    seg_mib);
  hf_objstore_close (s);
  free (prefix);
  return 0;

 usage:
  fprintf (stderr, "usage: writeamp [-s VOLUME_GIB] [-S SEGMENT_MIB] MIB "
           "STORE\n       writeamp -m BLOCKS [-r READS] [-x] STORE\n"
           "       writeamp -o SEGMENTS STORE\n");
  return EXIT_FAILURE;
}
