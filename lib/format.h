/* hyperfile: the on-disk (on-S3) format.  This header IS the format
 * specification; man/hyperfile-format.5 explains it for readers without
 * the source.  Change nothing here without bumping the version of the
 * structure concerned and updating the man page.
 *
 * General rules
 *  - All integers are little-endian, whatever the host.  Code reads and
 *    writes them with hf_le*() helpers, never by casting buffers.
 *  - Every structure starts with magic, version, header size and flags,
 *    and ends with (or contains) a CRC32C computed over the structure
 *    with the CRC field itself set to zero.
 *  - Reserved fields and padding are written as zero and ignored on read
 *    (so a later minor version can use them).
 *  - A reader rejects a structure whose magic, version or CRC is wrong
 *    with EBADMSG and a log line naming the object and byte offset; it
 *    never guesses.
 *
 * Objects of a volume (PREFIX is the volume's key prefix, "" or "dir/"):
 *
 *   PREFIX "volume"                 volume descriptor, written once at
 *                                   create with a conditional PUT
 *   PREFIX "seg/" HEX16(~seq)       segment number seq (1, 2, 3 ...);
 *                                   the name is the bitwise complement of
 *                                   seq in 16 lowercase hex digits, so the
 *                                   newest segment sorts first in a LIST
 *   PREFIX "seg/" HEX16(~(seq >> 9)) "/" HEX16(~seq)
 *                                   the same in a volume with
 *                                   HF_VD_SEG_GROUPS (version 3): grouped
 *                                   by 512 seqs, the newest group first,
 *                                   so that a store that can only list a
 *                                   whole directory (an S3 directory
 *                                   bucket) lists the newest groups only
 *   PREFIX "lease/" HEX16(~epoch)   writer lease of the given epoch
 *   PREFIX "snap/" NAME             named snapshot: a point in time kept
 *                                   by GC until the object is deleted
 *   PREFIX "clones/" HEX32(uuid)    registration of a clone of this
 *                                   volume (written before the clone's
 *                                   descriptor; GC keeps its base)
 *
 * Commit protocol.  A segment is committed by one conditional PUT
 * (If-None-Match: *) of its key, never a multipart upload (servers differ
 * on conditions there), so it is at most 5 GiB.  It is then immutable.
 * Its header names its parent (the segment that was the head when it was
 * built); the volume's history is the chain of parent links from the
 * head.  The head is the newest segment (first in LIST order) whose
 * parent chain back to its checkpoint is intact and whose structures
 * verify; segments that are not on the chain (orphans of an upload that
 * never completed in order, or of a fenced writer) and incomplete
 * objects (shorter than sh_object_size: an interrupted PUT a store kept)
 * never landed: they are passed over and later collected.  A damaged
 * segment is not passed over: opening at an older head would serve
 * stale data, so the open is refused (at= and rollback are the explicit
 * ways on).  Nor is a head older than the newest lease's
 * ls_committed_seq (newest segments lost).  A writer always numbers its
 * next segment above every seq it has seen and above ls_committed_seq,
 * so an orphan's key is never reused.  Two writers racing for the same seq:
 * exactly one conditional PUT wins; the loser stops writing (EROFS).
 * A parent link is valid only if the parent's sh_hdr_crc equals the
 * child's sh_parent_crc and the parent's sh_lease_epoch is not above the
 * child's; a chain is also rejected if any segment on it names a
 * different checkpoint than the head does.
 *
 * Index.  The map from logical block to physical location is a
 * copy-on-write B+tree whose nodes (HF_NODE_SIZE bytes each) are written
 * into segments as checkpoints.  A segment's header points at the root of
 * the newest checkpoint at or before it (sh_ckpt_*).  The state of the
 * volume at segment S is: the tree at S's checkpoint, then the extent
 * tables of every segment after that checkpoint up to and including S, in
 * chain order.  A checkpoint in segment C already includes C's own
 * extents.
 *
 * Points in time.  Every segment on the head's chain (following parent
 * links all the way, not only to the checkpoint) is a point in time,
 * named by its seq and its sh_timestamp_ns.  Rollback to an older point
 * P commits a segment R with HF_SH_ROLLBACK | HF_SH_CHECKPOINT whose
 * checkpoint root is P's whole state; R's parent is the old head, so the
 * history between P and R stays on the chain and readable by seq.
 *
 * Clones.  A clone is a volume whose descriptor has HF_VD_CLONE: its
 * state at vd_parent_seq is the parent's state at that point, and its own
 * segments are numbered from vd_parent_seq + 1.  Any seq <= vd_parent_seq
 * (in a leaf's le_seq, a node pointer's np_seq, a header's sh_parent_seq
 * or sh_ckpt_seq) names a segment of the parent, found under the
 * parent's URL and carrying the parent's uuid (recursively for clones of
 * clones).  Before writing its descriptor, a clone registers itself in
 * the parent's prefix (clones/) so that the parent's GC keeps its base.
 */
#ifndef HF_FORMAT_H
#define HF_FORMAT_H

#include <stdint.h>
#include <string.h>

/* ---- Little-endian helpers ---- */

static inline uint16_t
hf_le16 (const void *p)
{
  const uint8_t *b = p;
  return (uint16_t) (b[0] | b[1] << 8);
}
static inline uint32_t
hf_le32 (const void *p)
{
  const uint8_t *b = p;
  return (uint32_t) b[0] | (uint32_t) b[1] << 8 | (uint32_t) b[2] << 16 |
    (uint32_t) b[3] << 24;
}
static inline uint64_t
hf_le64 (const void *p)
{
  const uint8_t *b = p;
  return (uint64_t) hf_le32 (b) | (uint64_t) hf_le32 (b + 4) << 32;
}
static inline void
hf_put_le16 (void *p, uint16_t v)
{
  uint8_t *b = p;
  b[0] = v;
  b[1] = v >> 8;
}
static inline void
hf_put_le32 (void *p, uint32_t v)
{
  uint8_t *b = p;
  b[0] = v;
  b[1] = v >> 8;
  b[2] = v >> 16;
  b[3] = v >> 24;
}
static inline void
hf_put_le64 (void *p, uint64_t v)
{
  hf_put_le32 (p, (uint32_t) v);
  hf_put_le32 ((uint8_t *) p + 4, (uint32_t) (v >> 32));
}

/* The structs below document layout and give sizes and offsets to
 * _Static_assert and offsetof; their fields are little-endian on disk.
 * Encoders and decoders use hf_le*() at offsetof (...) rather than
 * casting, so host byte order and alignment never matter. */

#define HF_UUID_SIZE 16
#define HF_NODE_SIZE 4096       /* B+tree node, fixed */
#define HF_MIN_BLOCK_SIZE 512
#define HF_MAX_BLOCK_SIZE 65536
#define HF_DEFAULT_BLOCK_SIZE 4096
/* The largest volume: INT64_MAX (what NBD and nbdkit can serve) rounded
 * down to the largest block size, so that rounding any size up to whole
 * blocks stays within it: 2^63 - 64 KiB. */
#define HF_MAX_VOLUME_SIZE \
  ((uint64_t) INT64_MAX & ~(uint64_t) (HF_MAX_BLOCK_SIZE - 1))

/* ---- Volume descriptor: object PREFIX "volume", HF_VD_SIZE bytes ----
 *
 * OFFSET SIZE DESCRIPTION
 *      0    4 vd_magic        "HFVD" (0x44564648 as LE u32)
 *      4    2 vd_version      1
 *      6    2 vd_hdr_size     512
 *      8    4 vd_flags        HF_VD_CLONE if the volume is a clone;
 *                             HF_VD_FLATTENED (with HF_VD_CLONE only)
 *                             once it was flattened
 *     12    4 vd_block_size   bytes per logical block, power of 2,
 *                             512..65536
 *     16   16 vd_uuid         random, identifies the volume; every
 *                             segment carries it
 *     32    8 vd_size         size in bytes at create (a multiple of
 *                             vd_block_size); segments carry the current
 *     40    8 vd_created_ns   creation time, ns since the epoch, UTC
 *     48    8 vd_parent_seq   clone: the parent's point in time
 *     56   16 vd_parent_uuid  clone: the parent volume's uuid
 *     72  256 vd_parent_url   clone: the parent's url (NUL padded),
 *                             e.g. "s3://bucket/prefix"
 *    328    8 vd_flat_seq     flattened clone: the head when it was
 *                             flattened (> vd_parent_seq); else zero
 *    336    4 vd_cipher       0 plaintext; HF_VD_CIPHER_AES256GCM: every
 *                             other object of the volume is a sealed
 *                             object (below); version 2 and
 *                             HF_VD_ENCRYPTED exactly when not 0
 *    340    4 vd_kdf          how the key-encryption key (KEK) comes from
 *                             the user's key: HF_VD_KDF_KEYFILE (32-byte
 *                             key file, HKDF-SHA256) or HF_VD_KDF_SCRYPT
 *                             (passphrase)
 *    344    1 vd_kdf_log2n    scrypt: log2 N (10..20); else 0
 *    345    1 vd_kdf_r        scrypt: r (1..32); else 0
 *    346    1 vd_kdf_p        scrypt: p (1..16); else 0
 *    347    1 vd_reserved1    zero
 *    348   16 vd_kdf_salt     random, new at every (re)wrap
 *    364   16 vd_key_check    HMAC-SHA256(data key, "hyperfile key
 *                             check"), first 16 bytes: a clone and its
 *                             parent must show the same
 *    380   12 vd_wrap_nonce   random, new at every (re)wrap
 *    392   32 vd_wrap_key     the data key, AES-256-GCM under the KEK;
 *                             additional data: "HFVW1", then bytes
 *                             12..327 and 336..379 (every field but
 *                             magic, version, size, flags, vd_flat_seq,
 *                             the wrap and the CRC: flatten rewrites
 *                             flags and vd_flat_seq)
 *    424   16 vd_wrap_tag     its tag
 *    440    1 vd_codec        0: segments store data blocks as they
 *                             are; HF_SH_CODEC_ZSTD: writers compress
 *                             (segment version 2, frames); version 4
 *                             or 5 exactly when not 0
 *    441    1 vd_codec_level  zstd level writers use, a signed byte:
 *                             1..19 (version 4) or one of zstd's fast
 *                             levels -1..-10 (version 5); 0 when
 *                             vd_codec is 0
 *    442   66 vd_reserved     zero
 *    508    4 vd_crc          CRC32C of bytes 0..507
 *
 * Version 1 descriptors have zeros at 336..507 (no encryption); a
 * volume created with a key is written as version 2, which readers
 * before encryption refuse instead of misreading its sealed objects.
 * A volume created with compression is written as version 4 (whatever
 * its flags say: HF_VD_ENCRYPTED, HF_VD_SEG_GROUPS), which readers before
 * compression refuse; its segments say themselves how they are stored
 * (sh_codec), so a clone and its parent may differ.  With a fast
 * (negative) level it is version 5 instead: readers of version 4 check
 * the level is 1..19 and would report 0xf6..0xff there as damage;
 * version 5 makes them refuse the version, which is the true reason.
 * Its segments are the same as version 4's (the level is not in them).
 * The descriptor is the one object stored in the clear (it holds the
 * wrapped key); `hyperfile rekey` replaces it (340..439 change) with an
 * unconditional PUT, as flatten does (flags, vd_flat_seq).
 *
 * Sealed object (every object but "volume" of an encrypted volume):
 * the plaintext cut in chunks of HF_CRYPT_CHUNK (4096) bytes, the last
 * 0..4096 bytes (an empty object is one empty chunk), each stored as
 *   nonce (12) || AES-256-GCM ciphertext || tag (16)
 * so plaintext chunk i starts at stored offset i * 4124.  Keys: HKDF-
 * SHA256 (ikm data key, salt vd_uuid, info "hyperfile object v1" NUL
 * NAME) gives 32 bytes of encryption key and 32 of nonce key for the
 * object; NAME is the key below the volume's prefix ("seg/...").
 * Additional data of chunk i: "HFO1" || vd_uuid || le64 i || u8 last.
 * Nonce: HMAC-SHA256 (nonce key, le64 i || u8 last || plaintext), first
 * 12 bytes (lib/crypt.h; the nonce argument is in hyperfile-format(5)).
 */
struct hf_disk_volume {
  uint32_t vd_magic;
  uint16_t vd_version;
  uint16_t vd_hdr_size;
  uint32_t vd_flags;
  uint32_t vd_block_size;
  uint8_t vd_uuid[HF_UUID_SIZE];
  uint64_t vd_size;
  uint64_t vd_created_ns;
  uint64_t vd_parent_seq;
  uint8_t vd_parent_uuid[HF_UUID_SIZE];
  char vd_parent_url[256];
  uint64_t vd_flat_seq;
  uint32_t vd_cipher;
  uint32_t vd_kdf;
  uint8_t vd_kdf_log2n;
  uint8_t vd_kdf_r;
  uint8_t vd_kdf_p;
  uint8_t vd_reserved1;
  uint8_t vd_kdf_salt[16];
  uint8_t vd_key_check[16];
  uint8_t vd_wrap_nonce[12];
  uint8_t vd_wrap_key[32];
  uint8_t vd_wrap_tag[16];
  uint8_t vd_codec;
  int8_t vd_codec_level;
  uint8_t vd_reserved[66];
  uint32_t vd_crc;
} __attribute__ ((packed));
#define HF_VD_MAGIC 0x44564648u /* "HFVD" */
#define HF_VD_VERSION 1
#define HF_VD_VERSION_CRYPT 2   /* written only for encrypted volumes */
#define HF_VD_VERSION_GROUPS 3  /* written only with HF_VD_SEG_GROUPS */
#define HF_VD_VERSION_CODEC 4   /* written only for compressed volumes */
#define HF_VD_VERSION_FAST 5    /* written only for a negative level */
#define HF_VD_CODEC_LEVEL_MAX 19
/* zstd's fast levels go down to ZSTD_minCLevel () (-131072), but on
 * data like fio's (a fifth of the 8-byte words zero) 16 KiB frames
 * shrink to 0.86 at -1, 0.88 at -5, 0.92 at -10, 0.96 at -20 and 0.99
 * at -50: below -10 a level saves 5% or less, the margin the early
 * abort (segment.c) already gives up on as not worth the CPU
 * (docs/benchmarks.md, "zstd's fast levels"). */
#define HF_VD_CODEC_LEVEL_MIN (-10)
#define HF_VD_SIZE 512
#define HF_VD_CLONE 0x1
/* A flattened clone (hyperfile flatten): no point at or after
 * vd_flat_seq reads anything of the parent (every block and index node
 * its head used there was copied into the clone's own segments, and the
 * clone unregistered itself from the parent).  The parent is followed
 * while it is there, for the clone's older points; once it is gone (or
 * another volume is at its URL) the lineage ends at the clone, and a
 * seq <= vd_parent_seq names a segment that no longer exists. */
#define HF_VD_FLATTENED 0x2
#define HF_VD_ENCRYPTED 0x4
/* Segment keys grouped by HF_SEG_GROUP_SHIFT bits of seq (see the key
 * table at the top).  Written with version 3, which older readers
 * refuse instead of taking the volume for empty.  Set at create on a
 * store that lists whole (an S3 directory bucket). */
#define HF_VD_SEG_GROUPS 0x8
#define HF_SEG_GROUP_SHIFT 9
#define HF_VD_CIPHER_AES256GCM 1
#define HF_VD_KDF_KEYFILE 1
#define HF_VD_KDF_SCRYPT 2
_Static_assert (sizeof (struct hf_disk_volume) == HF_VD_SIZE, "vd size");
_Static_assert (__builtin_offsetof (struct hf_disk_volume, vd_wrap_nonce)
                == 380, "vd wrap nonce");

/* ---- B+tree node pointer (16 bytes), used in headers and branches ----
 *
 * OFFSET SIZE DESCRIPTION
 *      0    8 np_seq   segment holding the node
 *      8    4 np_off   byte offset of the node in that segment divided by
 *                      HF_NODE_SIZE
 *     12    4 np_crc   CRC32C the node must have (its bn_crc)
 */
struct hf_disk_node_ptr {
  uint64_t np_seq;
  uint32_t np_off;
  uint32_t np_crc;
} __attribute__ ((packed));
_Static_assert (sizeof (struct hf_disk_node_ptr) == 16, "node ptr size");

/* ---- B+tree node: HF_NODE_SIZE bytes in a segment's node area ----
 *
 * Header, 32 bytes:
 * OFFSET SIZE DESCRIPTION
 *      0    4 bn_magic     "HFBN"
 *      4    2 bn_version   1
 *      6    2 bn_hdr_size  32
 *      8    2 bn_flags     HF_BN_LEAF on leaves
 *     10    2 bn_level     0 for leaves, parent = child + 1
 *     12    4 bn_count     number of entries that follow
 *     16    8 bn_seq       segment holding this node (must equal the
 *                          pointer's np_seq: detects misdirected reads)
 *     24    4 bn_off       this node's np_off
 *     28    4 bn_crc       CRC32C of all HF_NODE_SIZE bytes, this field 0
 *
 * Then bn_count entries of 24 bytes, sorted by strictly increasing lba;
 * the rest of the node is zero.
 *
 * Leaf entry: logical block le_lba holds data in segment le_seq at byte
 * offset le_blk * block_size, whose CRC32C is le_crc.  Blocks without an
 * entry are holes (read as zeros).
 * OFFSET SIZE DESCRIPTION
 *      0    8 le_lba
 *      8    8 le_seq
 *     16    4 le_blk
 *     20    4 le_crc
 *
 * Branch entry: child be_child holds every key >= be_lba and below the
 * next entry's be_lba.  The first entry's be_lba is the smallest key in
 * its subtree (not -infinity); lookups below it go to the first child.
 * OFFSET SIZE DESCRIPTION
 *      0    8 be_lba
 *      8   16 be_child
 *
 * Invariant: every node reachable from a checkpoint root of generation
 * (segment) C lives in a segment <= C and is reachable exactly once.
 */
struct hf_disk_node_hdr {
  uint32_t bn_magic;
  uint16_t bn_version;
  uint16_t bn_hdr_size;
  uint16_t bn_flags;
  uint16_t bn_level;
  uint32_t bn_count;
  uint64_t bn_seq;
  uint32_t bn_off;
  uint32_t bn_crc;
} __attribute__ ((packed));
struct hf_disk_leaf_ent {
  uint64_t le_lba;
  uint64_t le_seq;
  uint32_t le_blk;
  uint32_t le_crc;
} __attribute__ ((packed));
struct hf_disk_branch_ent {
  uint64_t be_lba;
  struct hf_disk_node_ptr be_child;
} __attribute__ ((packed));
#define HF_BN_MAGIC 0x4e424648u /* "HFBN" */
#define HF_BN_VERSION 1
#define HF_BN_HDR_SIZE 32
#define HF_BN_LEAF 0x1
#define HF_BN_ENT_SIZE 24
#define HF_BN_MAX_ENTS ((HF_NODE_SIZE - HF_BN_HDR_SIZE) / HF_BN_ENT_SIZE) /* 169 */
_Static_assert (sizeof (struct hf_disk_node_hdr) == HF_BN_HDR_SIZE, "bn hdr");
_Static_assert (sizeof (struct hf_disk_leaf_ent) == HF_BN_ENT_SIZE, "leaf ent");
_Static_assert (sizeof (struct hf_disk_branch_ent) == HF_BN_ENT_SIZE, "br ent");

/* ---- Segment: object PREFIX "seg/" HEX16(~seq) ----
 *
 * Layout (offsets from the start of the object; metadata first so one
 * ranged GET of the head of the object usually returns all of it):
 *
 *   0             header, HF_SH_SIZE bytes
 *   sh_ext_off    extent table: sh_n_ext entries of 16 bytes
 *   sh_crc_off    block CRC table: sh_n_data little-endian u32, the
 *                 CRC32C of each data block in data-area order
 *   sh_node_off   sh_n_nodes B+tree nodes (multiple of HF_NODE_SIZE)
 *   sh_data_off   sh_n_data data blocks of sh_block_size bytes
 *                 (sh_data_off is a multiple of sh_block_size and of
 *                 HF_NODE_SIZE)
 *   sh_object_size  end of the object
 *
 * Header, HF_SH_SIZE (256) bytes:
 * OFFSET SIZE DESCRIPTION
 *      0    4 sh_magic        "HFSG"
 *      4    2 sh_version      1
 *      6    2 sh_hdr_size     256
 *      8    4 sh_flags        HF_SH_CHECKPOINT: holds a checkpoint
 *                             HF_SH_ROLLBACK: the checkpoint replaces
 *                             the state (rollback to an older point)
 *     12    4 sh_block_size   must equal the volume's
 *     16   16 sh_volume_uuid  must equal the volume's
 *     32    8 sh_seq          this segment's number (>= 1)
 *     40    8 sh_parent_seq   the head it was built on (0: none)
 *     48    8 sh_lease_epoch  lease epoch of the writer
 *     56    8 sh_volume_size  volume size in bytes as of this segment
 *     64    8 sh_timestamp_ns build time (set before the PUT, so at or before
 *                             the commit), ns since the epoch, UTC
 *     72    4 sh_n_ext        entries in the extent table
 *     76    4 sh_n_data       data blocks
 *     80    4 sh_n_nodes      B+tree nodes
 *     84    4 sh_ext_off      byte offset of the extent table (256)
 *     88    8 sh_crc_off      byte offset of the block CRC table
 *     96    8 sh_node_off     byte offset of the node area
 *    104    8 sh_data_off     byte offset of the data area
 *    112    8 sh_object_size  total bytes in the object
 *    120    8 sh_ckpt_seq     segment holding the newest checkpoint at or
 *                             before this one (0: none, empty tree)
 *    128   16 sh_ckpt_root    pointer to that checkpoint's root node
 *                             (all zero when the tree is empty)
 *    144    2 sh_ckpt_level   the root's bn_level
 *    146    2 sh_reserved0    zero
 *    148    4 sh_meta_crc     CRC32C of the extent table and block CRC
 *                             table (bytes sh_ext_off .. sh_node_off-1,
 *                             padding included)
 *    152    8 sh_mapped       mapped blocks in the volume as of this
 *                             segment (informational)
 *    160    8 sh_live_bytes   reserved for GC accounting (0)
 *    168    4 sh_parent_crc   the parent's sh_hdr_crc (0 when
 *                             sh_parent_seq is 0): a parent link names
 *                             one exact object, so a fenced writer's
 *                             orphan can never chain onto another
 *                             writer's segment of the same seq
 *    172    8 sh_wal_lsn      the newest write-ahead log record whose
 *                             effect this segment (with its chain)
 *                             holds; 0 when written without a WAL
 *    180    8 sh_wal_id       that log's fh_log_id (0: no WAL).  At open
 *                             a writer replays its local log's records
 *                             above sh_wal_lsn of the head only when the
 *                             head names its log (see hyperfile-format(5),
 *                             WAL RECORDS)
 *    188    4 sh_codec        0: the data area holds the blocks as they
 *                             are (version 1); HF_SH_CODEC_ZSTD: it holds
 *                             frames (below; version 2 exactly then)
 *    192    4 sh_frame_blocks codec: data blocks per frame (1 or more,
 *                             at most HF_SEG_FRAME_MAX bytes); else 0
 *    196    4 sh_n_frames     codec: frames, ceil(sh_n_data /
 *                             sh_frame_blocks); else 0
 *    200    8 sh_frame_off    codec: byte offset of the frame table,
 *                             sh_crc_off + 4 * sh_n_data; else 0
 *    208   44 sh_reserved     zero
 *    252    4 sh_hdr_crc      CRC32C of bytes 0..251
 *
 * Extent table entry (16 bytes), applied in table order:
 * OFFSET SIZE DESCRIPTION
 *      0    8 ex_lba       first logical block
 *      8    4 ex_nblocks   number of blocks (>= 1)
 *     12    2 ex_flags     HF_EXT_DATA: the next ex_nblocks blocks of the
 *                          data area hold these blocks, in order;
 *                          HF_EXT_ZERO: the blocks become holes (trim,
 *                          zero, or written with all-zero data)
 *     14    2 ex_reserved  zero
 * Data extents consume data blocks in table order: the first data
 * extent's blocks are data blocks 0..n-1, the next's follow, and so on.
 *
 * Compressed segments (sh_codec != 0, sh_version 2).  Block addresses
 * do not change: data block i is still "at" byte sh_data_off + i *
 * sh_block_size of the segment's *image* (what the object would be
 * uncompressed, sh_data_off + sh_n_data * sh_block_size bytes), and
 * index entries (le_blk) and the local cache use image offsets.  The
 * header, tables and node area are stored exactly as in the image; only
 * the data area differs: data blocks are grouped in frames of
 * sh_frame_blocks consecutive blocks (the last frame may hold fewer),
 * frame f holding data blocks f * sh_frame_blocks onwards, and frame f
 * is stored at sh_data_off + the sum of fr_len of frames 0..f-1.  The
 * frames fill the object exactly (sh_object_size = sh_data_off + the
 * sum of all fr_len).  The frame table (sh_n_frames entries of 16
 * bytes, between the block CRC table and the node area, covered by
 * sh_meta_crc) says how each frame is stored:
 * OFFSET SIZE DESCRIPTION
 *      0    4 fr_len       stored bytes (1 .. the frame's image bytes)
 *      4    4 fr_crc       CRC32C of the fr_len stored bytes
 *      8    2 fr_flags     HF_FR_RAW: stored as is (fr_len equals the
 *                          frame's image bytes); else one zstd frame
 *                          (RFC 8878) that decompresses to exactly the
 *                          frame's image bytes, and fr_len is smaller
 *     10    6 fr_reserved  zero
 * A reader fetches only the frames that hold the blocks it wants,
 * checks fr_crc before decompressing, decompresses into a buffer of
 * exactly the frame's image bytes (anything else is damage), then
 * checks each block against the block CRC table as for version 1.
 */
struct hf_disk_seg_hdr {
  uint32_t sh_magic;
  uint16_t sh_version;
  uint16_t sh_hdr_size;
  uint32_t sh_flags;
  uint32_t sh_block_size;
  uint8_t sh_volume_uuid[HF_UUID_SIZE];
  uint64_t sh_seq;
  uint64_t sh_parent_seq;
  uint64_t sh_lease_epoch;
  uint64_t sh_volume_size;
  uint64_t sh_timestamp_ns;
  uint32_t sh_n_ext;
  uint32_t sh_n_data;
  uint32_t sh_n_nodes;
  uint32_t sh_ext_off;
  uint64_t sh_crc_off;
  uint64_t sh_node_off;
  uint64_t sh_data_off;
  uint64_t sh_object_size;
  uint64_t sh_ckpt_seq;
  struct hf_disk_node_ptr sh_ckpt_root;
  uint16_t sh_ckpt_level;
  uint16_t sh_reserved0;
  uint32_t sh_meta_crc;
  uint64_t sh_mapped;
  uint64_t sh_live_bytes;
  uint32_t sh_parent_crc;
  uint64_t sh_wal_lsn;
  uint64_t sh_wal_id;
  uint32_t sh_codec;
  uint32_t sh_frame_blocks;
  uint32_t sh_n_frames;
  uint64_t sh_frame_off;
  uint8_t sh_reserved[44];
  uint32_t sh_hdr_crc;
} __attribute__ ((packed));
#define HF_SH_MAGIC 0x47534648u /* "HFSG" */
#define HF_SH_VERSION 1
#define HF_SH_VERSION_FRAMES 2  /* sh_codec != 0 */
#define HF_SH_SIZE 256
#define HF_SH_CODEC_ZSTD 1
#define HF_SH_CHECKPOINT 0x1
#define HF_SH_ROLLBACK 0x2
_Static_assert (sizeof (struct hf_disk_seg_hdr) == HF_SH_SIZE, "sh size");

struct hf_disk_extent {
  uint64_t ex_lba;
  uint32_t ex_nblocks;
  uint16_t ex_flags;
  uint16_t ex_reserved;
} __attribute__ ((packed));
#define HF_EXT_DATA 0x1
#define HF_EXT_ZERO 0x2
#define HF_EXT_SIZE 16
_Static_assert (sizeof (struct hf_disk_extent) == HF_EXT_SIZE, "ext size");

struct hf_disk_frame {
  uint32_t fr_len;
  uint32_t fr_crc;
  uint16_t fr_flags;
  uint8_t fr_reserved[6];
} __attribute__ ((packed));
#define HF_FR_RAW 0x1
#define HF_FR_SIZE 16
/* The largest frame (image bytes): bounds what one frame can make a
 * reader allocate and decompress. */
#define HF_SEG_FRAME_MAX (1024 * 1024)
_Static_assert (sizeof (struct hf_disk_frame) == HF_FR_SIZE, "fr size");
_Static_assert (__builtin_offsetof (struct hf_disk_seg_hdr, sh_codec) == 188,
                "sh codec");

/* ---- Writer lease: object PREFIX "lease/" HEX16(~epoch), 256 bytes ----
 *
 * A writer acquires epoch E+1 by a conditional PUT after seeing that
 * lease E (the newest) has expired or was released; it renews by
 * overwriting its own lease object with a later ls_renewed_ns (the only
 * objects hyperfile ever overwrites), and releases it at close by writing
 * HF_LS_RELEASED.  A writer that finds a newer epoch than its own has been
 * fenced and stops writing.
 *
 * ls_committed_seq records, outside the segments, how far the volume's
 * history is known to reach: the holder writes the seq of its head (the
 * newest committed segment) as each segment commits (before a flush
 * that waits for the commit returns; with a log, before the log
 * releases the segment's records), into every renewal and into the
 * release, and a new holder starts from the previous holder's value.  Opening a
 * volume whose newest intact chain ends below the newest lease's
 * ls_committed_seq is refused (its newest segments were deleted or lost:
 * the volume would silently roll back), as is fsck's report of it.  The
 * field took 8 bytes of ls_reserved without a version change: a lease
 * written by an older hyperfile has 0 there (nothing recorded), and an
 * older hyperfile ignores it.
 *
 * OFFSET SIZE DESCRIPTION
 *      0    4 ls_magic        "HFLS"
 *      4    2 ls_version      1
 *      6    2 ls_hdr_size     256
 *      8    4 ls_flags        HF_LS_RELEASED once given up cleanly
 *     12    4 ls_ttl_s        seconds after ls_renewed_ns it expires
 *     16    8 ls_epoch
 *     24    8 ls_acquired_ns  wall clock, ns since the epoch, UTC
 *     32    8 ls_renewed_ns
 *     40   16 ls_holder_uuid  random per process
 *     56  128 ls_holder       "hostname pid N" (NUL padded)
 *    184    8 ls_committed_seq newest committed segment known to the
 *                             holder (0: none recorded)
 *    192   60 ls_reserved     zero
 *    252    4 ls_crc          CRC32C of bytes 0..251
 */
struct hf_disk_lease {
  uint32_t ls_magic;
  uint16_t ls_version;
  uint16_t ls_hdr_size;
  uint32_t ls_flags;
  uint32_t ls_ttl_s;
  uint64_t ls_epoch;
  uint64_t ls_acquired_ns;
  uint64_t ls_renewed_ns;
  uint8_t ls_holder_uuid[HF_UUID_SIZE];
  char ls_holder[128];
  uint64_t ls_committed_seq;
  uint8_t ls_reserved[60];
  uint32_t ls_crc;
} __attribute__ ((packed));
#define HF_LS_MAGIC 0x534c4648u /* "HFLS" */
#define HF_LS_VERSION 1
#define HF_LS_SIZE 256
#define HF_LS_RELEASED 0x1
_Static_assert (sizeof (struct hf_disk_lease) == HF_LS_SIZE, "ls size");

/* ---- Named snapshot: object PREFIX "snap/" NAME, 256 bytes ----
 *
 * NAME is 1..128 bytes of [A-Za-z0-9._-] and does not start with '.'.
 * Created with a conditional PUT (an existing name is EEXIST, never
 * overwritten), deleted with DELETE; never modified.  It names a point
 * in time of its volume; GC keeps that point readable while it exists.
 *
 * OFFSET SIZE DESCRIPTION
 *      0    4 sn_magic        "HFSN" (0x4e534648 as LE u32)
 *      4    2 sn_version      1
 *      6    2 sn_hdr_size     256
 *      8    4 sn_flags        0
 *     12    4 sn_reserved0    zero
 *     16   16 sn_volume_uuid  the volume's vd_uuid
 *     32    8 sn_seq          the point in time (a segment seq)
 *     40    8 sn_timestamp_ns that segment's sh_timestamp_ns
 *     48    8 sn_created_ns   when the snapshot was taken
 *     56  128 sn_name         NAME, NUL padded (equals the key's)
 *    184   68 sn_reserved     zero
 *    252    4 sn_crc          CRC32C of bytes 0..251
 */
struct hf_disk_snapshot {
  uint32_t sn_magic;
  uint16_t sn_version;
  uint16_t sn_hdr_size;
  uint32_t sn_flags;
  uint32_t sn_reserved0;
  uint8_t sn_volume_uuid[HF_UUID_SIZE];
  uint64_t sn_seq;
  uint64_t sn_timestamp_ns;
  uint64_t sn_created_ns;
  char sn_name[128];
  uint8_t sn_reserved[68];
  uint32_t sn_crc;
} __attribute__ ((packed));
#define HF_SN_MAGIC 0x4e534648u /* "HFSN" */
#define HF_SN_VERSION 1
#define HF_SN_SIZE 256
#define HF_SN_NAME_MAX 128
_Static_assert (sizeof (struct hf_disk_snapshot) == HF_SN_SIZE, "sn size");

/* ---- Clone registration: object PREFIX "clones/" HEX32(uuid), 512 B ----
 *
 * Written by `hyperfile clone` into the PARENT's prefix, with a
 * conditional PUT, before the clone's volume descriptor exists; deleted
 * when the clone is deleted.  HEX32 is the clone's uuid in 32 lowercase
 * hex digits.  The parent's GC keeps cr_base_seq readable while it
 * exists.  A registration whose clone descriptor never appeared (a clone
 * that failed half way) only keeps data alive; it is never harmful.
 *
 * OFFSET SIZE DESCRIPTION
 *      0    4 cr_magic        "HFCR" (0x52434648 as LE u32)
 *      4    2 cr_version      1
 *      6    2 cr_hdr_size     512
 *      8    4 cr_flags        0
 *     12    4 cr_reserved0    zero
 *     16   16 cr_clone_uuid   the clone's vd_uuid
 *     32    8 cr_base_seq     the parent's point the clone starts from
 *     40    8 cr_created_ns
 *     48  256 cr_clone_url    the clone's URL, NUL padded
 *                             ("s3://bucket/prefix", "file:///dir")
 *    304  204 cr_reserved     zero
 *    508    4 cr_crc          CRC32C of bytes 0..507
 */
struct hf_disk_clone_reg {
  uint32_t cr_magic;
  uint16_t cr_version;
  uint16_t cr_hdr_size;
  uint32_t cr_flags;
  uint32_t cr_reserved0;
  uint8_t cr_clone_uuid[HF_UUID_SIZE];
  uint64_t cr_base_seq;
  uint64_t cr_created_ns;
  char cr_clone_url[256];
  uint8_t cr_reserved[204];
  uint32_t cr_crc;
} __attribute__ ((packed));
#define HF_CR_MAGIC 0x52434648u /* "HFCR" */
#define HF_CR_VERSION 1
#define HF_CR_SIZE 512
#define HF_CR_URL_MAX 256
_Static_assert (sizeof (struct hf_disk_clone_reg) == HF_CR_SIZE, "cr size");

/* Decoded forms (host byte order, strings NUL terminated) and their
 * codecs.  Encoders fill all HF_SN_SIZE / HF_CR_SIZE bytes (reserved
 * fields zero, CRC computed).  Decoders verify length, magic, version,
 * header size, CRC and string fields; on damage they return EBADMSG and
 * set *bad_off to the byte offset of the first bad field (the caller
 * logs it with the object's key), leaving *out unspecified. */
struct hf_snapshot {
  uint32_t flags;
  uint8_t volume_uuid[HF_UUID_SIZE];
  uint64_t seq;
  uint64_t timestamp_ns;
  uint64_t created_ns;
  char name[HF_SN_NAME_MAX + 1];
};

struct hf_clone_reg {
  uint32_t flags;
  uint8_t clone_uuid[HF_UUID_SIZE];
  uint64_t base_seq;
  uint64_t created_ns;
  char clone_url[HF_CR_URL_MAX + 1];
};

/* Is name a valid snapshot name (see above)? */
extern int hf_snapshot_name_valid (const char *name);
/* EINVAL if s->name is not valid. */
extern int hf_snapshot_encode (const struct hf_snapshot *s,
                               uint8_t out[HF_SN_SIZE]);
extern int hf_snapshot_decode (const void *buf, size_t len,
                               struct hf_snapshot *out, size_t *bad_off);
/* EINVAL if r->clone_url is empty or longer than HF_CR_URL_MAX - 1. */
extern int hf_clone_reg_encode (const struct hf_clone_reg *r,
                                uint8_t out[HF_CR_SIZE]);
extern int hf_clone_reg_decode (const void *buf, size_t len,
                                struct hf_clone_reg *out, size_t *bad_off);

#endif /* HF_FORMAT_H */
