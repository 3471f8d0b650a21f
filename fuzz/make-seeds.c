/* hyperfile: writes the seed corpora of the fuzzers with the real
 * encoders (fuzz/corpus/NAME/seed-*), deterministically: fixed uuids,
 * times and contents, so regenerating changes nothing unless a format
 * changes.  Usage: make-seeds DIR (normally fuzz/corpus). */
#include <config.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "btree.h"
#include "cache.h"
#include "crc32c.h"
#include "format.h"
#include "lease.h"
#include "lineage.h"
#include "segment.h"
#include "wal.h"
#include "fuzz.h"

static const char *outdir;

static void
die (const char *what)
{
  perror (what);
  exit (EXIT_FAILURE);
}

/* Write DIR/fuzzer/name holding the mode byte (if mode >= 0) and buf. */
static void
seed (const char *fuzzer, const char *name, int mode, const void *buf,
      size_t len)
{
  char path[PATH_MAX];
  FILE *fp;

  snprintf (path, sizeof path, "%s/%s", outdir, fuzzer);
  if (mkdir (path, 0755) < 0 && errno != EEXIST)
    die (path);
  snprintf (path, sizeof path, "%s/%s/%s", outdir, fuzzer, name);
  fp = fopen (path, "w");
  if (fp == NULL)
    die (path);
  if (mode >= 0)
    fputc (mode, fp);
  if (fwrite (buf, 1, len, fp) != len || fclose (fp) != 0)
    die (path);
}

static void *
slurp (const char *path, size_t *len)
{
  struct stat st;
  int fd = open (path, O_RDONLY);
  void *p;

  if (fd < 0 || fstat (fd, &st) < 0)
    die (path);
  p = malloc (st.st_size + 1);
  if (p == NULL || read (fd, p, st.st_size) != st.st_size)
    die (path);
  close (fd);
  *len = st.st_size;
  return p;
}

/* ---- B+tree nodes and a segment holding them ---- */

static uint8_t *tree_nodes;
static size_t tree_n;
static struct hf_btree_root tree_root;

static int
no_read (void *opaque, const struct hf_disk_node_ptr *p, void *buf)
{
  return EIO;
}

/* A two-level tree of 400 entries checkpointed as segment 1, node
 * offsets first_off.. */
static void
make_tree (uint32_t first_off)
{
  struct hf_btree *t;
  struct hf_bmap m;
  uint64_t i;

  if (hf_btree_open (NULL, 0, no_read, NULL, 64, &t) != 0)
    die ("hf_btree_open");
  for (i = 0; i < 400; i++) {
    m = (struct hf_bmap) { .seq = 1, .blk = i % 4, .crc = 0x1000 + i };
    if (hf_btree_insert (t, i * 3, &m) != 0)
      die ("hf_btree_insert");
  }
  tree_n = hf_btree_dirty_count (t);
  tree_nodes = calloc (tree_n, HF_NODE_SIZE);
  if (tree_nodes == NULL ||
      hf_btree_checkpoint (t, 1, first_off, tree_nodes, &tree_n,
                           &tree_root) != 0)
    die ("hf_btree_checkpoint");
  hf_btree_close (t);
}

static void
seeds_btree (void)
{
  uint8_t *b;
  size_t len;

  make_tree (0);
  len = 16 + tree_n * HF_NODE_SIZE;
  b = calloc (1, len);
  b[1] = tree_root.level;
  b[2] = tree_root.ptr.np_off;
  hf_put_le64 (b + 8, 300);
  memcpy (b + 16, tree_nodes, tree_n * HF_NODE_SIZE);
  seed ("btree", "seed-two-levels", -1, b, len);
  /* One leaf alone as the root. */
  memset (b, 0, 16);
  hf_put_le64 (b + 8, 3);
  seed ("btree", "seed-leaf", -1, b, 16 + HF_NODE_SIZE);
  free (b);
  free (tree_nodes);
}

static void
seeds_segment (void)
{
  struct hf_seg_hdr h = { 0 };
  struct hf_seg_ext ext[3] = {
    { .lba = 0, .nblocks = 3, .flags = HF_EXT_DATA },
    { .lba = 10, .nblocks = 5, .flags = HF_EXT_ZERO },
    { .lba = 20, .nblocks = 1, .flags = HF_EXT_DATA },
  };
  uint32_t crcs[4];
  uint8_t *o;
  unsigned i;

  h.flags = HF_SH_CHECKPOINT;
  h.block_size = 512;
  memcpy (h.volume_uuid, "fuzz-volume-uuid", 16);
  h.seq = 1;
  h.volume_size = 1 << 20;
  h.timestamp_ns = 1700000000000000000ull;
  h.n_ext = 3;
  h.n_data = 4;
  h.n_nodes = 1;
  if (hf_seg_layout (&h) != 0)
    die ("hf_seg_layout");
  o = calloc (1, h.object_size);
  for (i = 0; i < 4; i++) {
    memset (o + h.data_off + i * 512, 'a' + i, 512);
    crcs[i] = hf_crc32c (0, o + h.data_off + i * 512, 512);
  }
  /* A one-leaf tree at the node area. */
  {
    struct hf_btree *t;
    struct hf_bmap m = { .seq = 1, .blk = 0, .crc = crcs[0] };
    size_t nn;

    if (hf_btree_open (NULL, 0, no_read, NULL, 16, &t) != 0 ||
        hf_btree_insert (t, 0, &m) != 0 ||
        hf_btree_checkpoint (t, 1, h.node_off / HF_NODE_SIZE,
                             o + h.node_off, &nn, &tree_root) != 0)
      die ("segment tree");
    hf_btree_close (t);
    h.ckpt_seq = 1;
    h.ckpt_root = tree_root.ptr;
    h.ckpt_level = tree_root.level;
    h.mapped = 1;
  }
  hf_seg_write_meta (o, &h, ext, crcs);
  seed ("segment", "seed-whole", 2, o, h.object_size);
  seed ("segment", "seed-head", 0, o, h.data_off);
  free (o);

  /* Compressed (version 2): 40 blocks of 512 bytes in frames of 32,
   * text (a zstd frame) and random (a raw one). */
  {
    struct hf_seg_ext zext[1] = { { .lba = 0, .nblocks = 40,
                                    .flags = HF_EXT_DATA } };
    uint32_t zcrcs[40];
    struct hf_seg_frame fr[2];
    uint8_t *u;
    uint64_t x = 88172645463325252ull;

    memset (&h, 0, sizeof h);
    h.block_size = 512;
    memcpy (h.volume_uuid, "fuzz-volume-uuid", 16);
    h.seq = 2;
    h.parent_seq = 1;
    h.volume_size = 1 << 20;
    h.n_ext = 1;
    h.n_data = 40;
    h.codec = HF_SH_CODEC_ZSTD;
    h.frame_blocks = 32;
    if (hf_seg_layout (&h) != 0)
      die ("hf_seg_layout zstd");
    o = calloc (1, h.object_size);
    u = calloc (1, h.object_size);
    for (i = 0; i < 40 * 512; i++) {
      x ^= x << 13, x ^= x >> 7, x ^= x << 17;
      o[h.data_off + i] = i < 32 * 512 ? "hyperfile "[i % 10] : (uint8_t) x;
    }
    for (i = 0; i < 40; i++)
      zcrcs[i] = hf_crc32c (0, o + h.data_off + i * 512, 512);
    if (hf_seg_compress (o + h.data_off, &h, 1, u + h.data_off, fr) != 0)
      die ("hf_seg_compress");
    hf_seg_write_meta_frames (o, &h, zext, zcrcs, fr);
    memcpy (u, o, h.data_off);
    seed ("segment", "seed-zstd-whole", 2, u, h.object_size);
    seed ("segment", "seed-zstd-frames", 4, u, h.object_size);
    seed ("segment", "seed-zstd-head", 0, u, h.data_off);
    free (o);
    free (u);
  }
}

/* ---- Small objects ---- */

static void
seeds_format (void)
{
  struct hf_vdesc d = { 0 };
  struct hf_lease l = { 0 };
  struct hf_snapshot s = { 0 };
  struct hf_clone_reg r = { 0 };
  uint8_t b[512];

  d.block_size = 4096;
  memcpy (d.uuid, "fuzz-volume-uuid", 16);
  d.size = 1 << 30;
  d.created_ns = 1700000000000000000ull;
  hf_vdesc_encode (&d, b);
  seed ("format", "seed-vdesc", 0 << 1, b, HF_VD_SIZE);
  d.flags = HF_VD_CLONE;
  d.parent_seq = 42;
  memcpy (d.parent_uuid, "fuzz-parent-uuid", 16);
  strcpy (d.parent_url, "s3://bucket/parent");
  hf_vdesc_encode (&d, b);
  seed ("format", "seed-vdesc-clone", 0 << 1, b, HF_VD_SIZE);

  l.ttl_s = 30;
  l.epoch = 7;
  l.acquired_ns = 1700000000000000000ull;
  memcpy (l.holder_uuid, "fuzz-holder-uuid", 16);
  strcpy (l.holder, "host pid 1234");
  hf_lease_encode (&l, 0, b);
  /* ls_renewed_ns is the wall clock: pin it. */
  hf_put_le64 (b + offsetof (struct hf_disk_lease, ls_renewed_ns),
               1700000000000000000ull);
  hf_put_le32 (b + HF_LS_SIZE - 4, hf_crc32c (0, b, HF_LS_SIZE - 4));
  seed ("format", "seed-lease", 1 << 1, b, HF_LS_SIZE);

  memcpy (s.volume_uuid, "fuzz-volume-uuid", 16);
  s.seq = 5;
  s.timestamp_ns = s.created_ns = 1700000000000000000ull;
  strcpy (s.name, "before-upgrade");
  if (hf_snapshot_encode (&s, b) != 0)
    die ("hf_snapshot_encode");
  seed ("format", "seed-snapshot", 2 << 1, b, HF_SN_SIZE);

  memcpy (r.clone_uuid, "fuzz-clone-uuid!", 16);
  r.base_seq = 9;
  r.created_ns = 1700000000000000000ull;
  strcpy (r.clone_url, "file:///srv/clone");
  if (hf_clone_reg_encode (&r, b) != 0)
    die ("hf_clone_reg_encode");
  seed ("format", "seed-clone-reg", 3 << 1, b, HF_CR_SIZE);
}

/* ---- WAL and cache files, made through the real modules ---- */

static void
seeds_wal (void)
{
  struct hf_wal_options opts = { 0 };
  struct hf_wal *w;
  char path[PATH_MAX];
  uint8_t data[1024];
  uint64_t lsn;
  uint8_t *f;
  size_t len;

  opts.dir = fuzz_tmpdir ();
  memcpy (opts.volume_uuid, "fuzz-wal-uuid-01", 16);
  opts.file_size = 1 << 20;
  fuzz_tmpdir_clear ();
  if (hf_wal_open (&opts, &w) != 0)
    die ("hf_wal_open");
  memset (data, 'w', sizeof data);
  if (hf_wal_append (w, HF_WAL_WRITE, 4096, data, sizeof data, &lsn) ||
      hf_wal_append (w, HF_WAL_TRIM, 0, NULL, 8192, &lsn) ||
      hf_wal_append (w, HF_WAL_ZERO, 65536, NULL, 512, &lsn) ||
      hf_wal_append (w, HF_WAL_GROW, 1 << 21, NULL, 0, &lsn) ||
      hf_wal_append (w, HF_WAL_WRITE, 0, data, 512, &lsn) ||
      hf_wal_sync (w))
    die ("hf_wal_append");
  hf_wal_close (w);
  snprintf (path, sizeof path, "%s/wal-0000000000000001.log",
            fuzz_tmpdir ());
  f = slurp (path, &len);
  while (len > 512 && f[len - 1] == 0)    /* the preallocated tail */
    len--;
  len = (len + 511) / 512 * 512;
  /* The log id is random: pin it (in the file header and every record)
   * and recompute the CRCs, so that regenerating changes nothing. */
  {
    size_t off = 512;

    hf_put_le64 (f + 40, 0x6c6f672d69642d31ull);
    hf_put_le32 (f + 508, hf_crc32c (0, f, 508));
    while (off + 64 <= len && hf_le32 (f + off) != 0) {
      uint8_t *h = f + off;
      uint64_t dlen = hf_le32 (h + 12) == HF_WAL_WRITE ? hf_le64 (h + 32) : 0;

      hf_put_le64 (h + 48, 0x6c6f672d69642d31ull);
      hf_put_le32 (h + 60, hf_crc32c (hf_crc32c (0, h, 60), h + 64, dlen));
      off += hf_le64 (h + 40);
    }
  }
  seed ("wal", "seed-records", 0, f, len);
  seed ("wal", "seed-header-only", 0, f, 512);
  free (f);
}

static void
seeds_cache (void)
{
  struct hf_cache_options opts = { 0 };
  struct hf_cache *c;
  char path[PATH_MAX];
  uint8_t blk[4096];
  uint8_t *f;
  size_t len;
  unsigned i;

  fuzz_tmpdir_clear ();
  opts.dir = fuzz_tmpdir ();
  memcpy (opts.volume_uuid, "fuzz-cache-uuid1", 16);
  opts.block_size = 4096;
  opts.max_bytes = 16 * 4096;
  if (hf_cache_open (&opts, &c) != 0)
    die ("hf_cache_open");
  /* Slot i (filled lowest first) gets the bytes i + 1, as the harness's
   * cache.data has them. */
  for (i = 0; i < 4; i++) {
    memset (blk, i + 1, sizeof blk);
    if (hf_cache_put (c, 5, i * 4096, blk, sizeof blk) != 0)
      die ("hf_cache_put");
  }
  hf_cache_close (c);
  snprintf (path, sizeof path, "%s/cache.index", fuzz_tmpdir ());
  f = slurp (path, &len);
  seed ("cache", "seed-index", 0, f, len);
  free (f);
}

/* ---- Text inputs ---- */

static void
seeds_sigv4 (void)
{
  static const char a[] = "vol/seg/fffffffffffffffe\0token+/=%41\0"
    "Range\0bytes=0-65535\0x-amz-content-sha256\0UNSIGNED-PAYLOAD";
  static const char b[] = "a b/../c?d#e\xc3\xa9\0\0X-Amz-Meta-A\0  x \t y ";

  seed ("sigv4", "seed-get", -1, a, sizeof a - 1);
  seed ("sigv4", "seed-odd", -1, b, sizeof b - 1);
}

/* Raw HTTP answers for fuzz-s3: mode byte = the operation. */
static void
http (const char *name, int op, const char *status, const char *headers,
      const char *body)
{
  char buf[8192];
  int n = snprintf (buf, sizeof buf, "HTTP/1.1 %s\r\n%sContent-Length: "
                    "%zu\r\n\r\n%s", status, headers, strlen (body), body);

  seed ("s3", name, op, buf, (size_t) n);
}

static void
seeds_s3 (void)
{
  static const char xml[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>";
  char b[4096];

  http ("seed-get-range", 0, "206 Partial Content",
        "ETag: \"0123456789abcdef0123456789abcdef\"\r\n"
        "Content-Range: bytes 0-9/10\r\n"
        "Last-Modified: Wed, 01 Jan 2025 00:00:00 GMT\r\n", "0123456789");
  http ("seed-get-ignored-range", 1, "200 OK", "", "0123456789");
  http ("seed-get-all", 2, "200 OK", "ETag: \"x\"\r\n", "volume-bytes");
  http ("seed-head", 3, "200 OK",
        "ETag: \"e\"\r\nLast-Modified: Wed, 01 Jan 2025 00:00:00 GMT\r\n", "");
  snprintf (b, sizeof b, "%s<Error><Code>PreconditionFailed</Code>"
            "<Message>At least one of the pre-conditions you specified did "
            "not hold</Message></Error>", xml);
  http ("seed-put-412", 4, "412 Precondition Failed", "", b);
  snprintf (b, sizeof b, "%s<InitiateMultipartUploadResult><Bucket>bucket"
            "</Bucket><Key>vol/seg/z</Key><UploadId>upload-1</UploadId>"
            "</InitiateMultipartUploadResult>", xml);
  http ("seed-multipart", 5, "200 OK", "ETag: \"p1\"\r\n", b);
  snprintf (b, sizeof b, "%s<Error><Code>InternalError</Code><Message>"
            "We encountered an internal error.</Message></Error>", xml);
  http ("seed-complete-error", 5, "200 OK", "ETag: \"p1\"\r\n", b);
  snprintf (b, sizeof b, "%s<ListBucketResult><Name>bucket</Name><Prefix>"
            "vol/</Prefix><KeyCount>2</KeyCount><IsTruncated>true"
            "</IsTruncated><NextContinuationToken>tok+/=</NextContinuation"
            "Token><Contents><Key>vol/seg/fffffffffffffffe</Key><Size>4096"
            "</Size></Contents><Contents><Key>vol/volume</Key><Size>512"
            "</Size></Contents></ListBucketResult>", xml);
  http ("seed-list", 6, "200 OK", "", b);
  http ("seed-delete", 7, "204 No Content", "", "");
  snprintf (b, sizeof b, "%s<DeleteResult><Deleted><Key>vol/a</Key>"
            "</Deleted><Error><Key>vol/c</Key><Code>AccessDenied</Code>"
            "<Message>Access Denied</Message></Error></DeleteResult>", xml);
  http ("seed-delete-many", 8, "200 OK", "", b);
  snprintf (b, sizeof b, "%s<Error><Code>NoSuchBucket</Code><Message>The "
            "specified bucket does not exist</Message></Error>", xml);
  http ("seed-check-404", 9, "404 Not Found", "", b);
  http ("seed-slowdown", 0, "503 Slow Down", "Retry-After: 0\r\n", "");
}

static void
seeds_credentials (void)
{
  static const char a[] =
    "# comment\n[default]\naws_access_key_id = AKIDEXAMPLE\n"
    "aws_secret_access_key=wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY\n"
    "\n[work]\r\n  aws_access_key_id\t= AKIDWORK  \r\n"
    "aws_secret_access_key = secret-of-work\r\n"
    "aws_session_token = token-of-work-session\r\n; the end\n";
  static const char b[] = "[work]\naws_access_key_id=only-the-id\n";
  /* The config file (mode bit 1): [profile NAME], region, the sources
   * the harness defuses, a role that is not supported, SSO. */
  static const char c[] =
    "[default]\nregion = eu-west-1\ncredential_process = /bin/false\n"
    "\n[profile work]\nregion=us-west-2\naws_access_key_id = AKIDCONF\n"
    "aws_secret_access_key = secret-in-the-config-file\n"
    "[profile role]\nrole_arn = arn:aws:iam::1:role/r\n"
    "source_profile = work\n"
    "[profile web]\nrole_arn = arn:aws:iam::1:role/w\n"
    "web_identity_token_file = /nonexistent\n"
    "[profile sso]\nsso_start_url = https://example.awsapps.com/start\n";

  seed ("credentials", "seed-two-profiles", 0, a, sizeof a - 1);
  seed ("credentials", "seed-work", 1, a, sizeof a - 1);
  seed ("credentials", "seed-half", 1, b, sizeof b - 1);
  seed ("credentials", "seed-config-default", 2, c, sizeof c - 1);
  seed ("credentials", "seed-config-work", 3, c, sizeof c - 1);
}

static void
seeds_plugin_config (void)
{
  static const char a[] =
    "url=file:///srv/vol\nsize=1G\nblock-size=4096\nwal=/var/lib/hf/wal\n"
    "wal-size=64M\ncache=/var/cache/hf\ncache-size=1G\n"
    "segment-size=32M\ndirty-limit=128M\nflush-interval=500ms\n"
    "retain=24h\ngc=on\ngc-interval=15m\ngc-grace=1h\ntakeover=false\n";
  static const char b[] =
    "url=s3://bucket/prefix\nendpoint=http://127.0.0.1:9000\n"
    "region=eu-west-1\naccess-key=AKID\nsecret-key=secret\n"
    "session-token=tok\nprofile=work\nvirtual-host=true\n"
    "tls-verify=true\nca-file=/etc/ssl/ca.pem\nmetrics=/run/hf.prom\n"
    "at=2025-01-01T00:00:00Z\n";
  static const char c[] = "url=/srv/vol\nat=snap:before\nretain=7d\n"
    "at=42\nflush-interval=0\n";

  seed ("plugin-config", "seed-dir", -1, a, sizeof a - 1);
  seed ("plugin-config", "seed-s3", -1, b, sizeof b - 1);
  seed ("plugin-config", "seed-at", -1, c, sizeof c - 1);
}

int
main (int argc, char **argv)
{
  if (argc != 2) {
    fprintf (stderr, "usage: make-seeds DIR\n");
    return EXIT_FAILURE;
  }
  outdir = argv[1];
  fuzz_quiet ();
  if (mkdir (outdir, 0755) < 0 && errno != EEXIST)
    die (outdir);
  seeds_segment ();
  seeds_btree ();
  seeds_format ();
  seeds_wal ();
  seeds_cache ();
  seeds_sigv4 ();
  seeds_s3 ();
  seeds_credentials ();
  seeds_plugin_config ();
  return EXIT_SUCCESS;
}
