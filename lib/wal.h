/* hyperfile: local write-ahead log (`wal=DIR`).
 *
 * Writes are acknowledged once their record, and every record appended
 * before it, is in the log (page cache: a killed process loses none);
 * records appended at the same time go out in one write;
 * a FLUSH or FUA write calls hf_wal_sync, which makes every record
 * appended before it durable with one fdatasync shared by all concurrent
 * callers (group commit), issued through io_uring.  When the segment that
 * carries a record's data is committed to the object store, the volume
 * calls hf_wal_release and the space is reclaimed.  At open the volume
 * replays the records newer than what the store already has.
 *
 * Records are numbered by a log sequence number (LSN) that increases by
 * one per record and survives restarts (it continues after the highest
 * LSN found in the log; an empty log starts after first_lsn).
 *
 * Failure rules: a failed fdatasync makes the log refuse all further
 * appends and syncs with EIO until it is reopened (never retry fsync).
 * A full log (max_bytes of unreleased records) makes hf_wal_append wait
 * for hf_wal_release (back-pressure), never fail; a full disk fails the
 * append with ENOSPC and one log line, and loses nothing appended before.
 *
 * Thread safety: all functions except open/close may be called from any
 * number of threads at once.
 */
#ifndef HF_WAL_H
#define HF_WAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct hf_wal;

/* Record types. */
#define HF_WAL_WRITE 1  /* data follows */
#define HF_WAL_TRIM  2  /* no data: unmap [offset, offset + len) */
#define HF_WAL_ZERO  3  /* no data: zero [offset, offset + len) */
#define HF_WAL_GROW  4  /* no data: new volume size in offset */

struct hf_wal_options {
  const char *dir;              /* created (0700) if missing; borrowed */
  uint8_t volume_uuid[16];      /* records of another volume are refused */
  uint64_t max_bytes;           /* unreleased bytes before appends wait;
                                   0 = 1 GiB */
  uint64_t file_size;           /* rotate log files at this size;
                                   0 = 64 MiB */
  uint64_t first_lsn;           /* an empty log numbers from first_lsn+1 */
};

struct hf_wal_stats {
  uint64_t appends, bytes_appended;
  uint64_t writes;              /* writes of records (< appends: records
                                   appended together shared one) */
  uint64_t syncs;               /* fdatasyncs issued */
  uint64_t sync_waiters;        /* hf_wal_sync calls (>= syncs: grouping) */
  uint64_t bytes_live;          /* appended and not released */
  uint64_t files;
  uint64_t waits;               /* appends that waited for space */
};

/* Open (or create) the log in opts->dir and lock it against a second
 * process (EBUSY).  On success *out is a new log the caller owns. */
extern int hf_wal_open (const struct hf_wal_options *opts,
                        struct hf_wal **out);

/* Check, without locking or changing anything, that the log files in
 * dir belong to the volume volume_uuid: the refusal hf_wal_open would
 * make, made early (the plugin checks before nbdkit forks, where a
 * failure still ends the server).  0, or the error (logged). */
extern int hf_wal_check (const char *dir,
                         const uint8_t volume_uuid[16]);

/* Call fn for every valid record with LSN > after, in LSN order.  Stops
 * at the first torn or corrupt record (logged with file and offset) and
 * discards everything after it, so later appends follow the last good
 * record.  data is NULL for records without data; borrowed for the
 * call.  fn returns 0 to continue or an errno to abort (returned).
 * Call once, after open and before any append. */
typedef int (*hf_wal_replay_fn) (void *opaque, uint64_t lsn, uint32_t type,
                                 uint64_t offset, uint64_t len,
                                 const void *data);
extern int hf_wal_replay (struct hf_wal *w, uint64_t after,
                          hf_wal_replay_fn fn, void *opaque);

/* Append one record; data (borrowed) has len bytes for HF_WAL_WRITE and
 * is NULL otherwise.  On success *lsn is the record's LSN.  The record is
 * not durable until a later hf_wal_sync returns 0. */
extern int hf_wal_append (struct hf_wal *w, uint32_t type, uint64_t offset,
                          const void *data, uint64_t len, uint64_t *lsn);

/* Like hf_wal_append, but instead of waiting for space it fails with
 * EAGAIN (nothing appended): for callers holding a lock that the code
 * releasing space needs.  They drop it, hf_wal_wait_space, and retry. */
extern int hf_wal_try_append (struct hf_wal *w, uint32_t type,
                              uint64_t offset, const void *data,
                              uint64_t len, uint64_t *lsn);

/* The two halves of an append, for callers that must fix a record's
 * place in the log under their own lock but not write it there:
 * hf_wal_try_reserve takes the LSN and the file space (EAGAIN like
 * hf_wal_try_append; never blocks on I/O unless it must create the next
 * log file), hf_wal_write_reserved writes the record into it (without
 * the caller's lock) and must follow every successful reserve exactly
 * once.  Records reserved later may be written first, but
 * hf_wal_write_reserved returns only once every record reserved before
 * its own is written too (so a thread holding a reservation must not
 * wait for another append, and writes its own in reservation order);
 * hf_wal_sync waits for every record reserved before it was called. */
struct hf_wal_ticket {
  void *file;
  uint64_t lsn, off, rec_size;
};
extern int hf_wal_try_reserve (struct hf_wal *w, uint32_t type,
                               const void *data, uint64_t len,
                               struct hf_wal_ticket *t);
extern int hf_wal_write_reserved (struct hf_wal *w,
                                  const struct hf_wal_ticket *t,
                                  uint32_t type, uint64_t offset,
                                  const void *data, uint64_t len);
/* Like hf_wal_write_reserved, with the CRC32C of the data (all len
 * bytes of an HF_WAL_WRITE; borrowed, may be NULL) when the caller has
 * it: the record's CRC is then combined from it without reading the
 * data again.  It must be the data's CRC (a wrong one makes a record
 * that open rejects, as damage). */
extern int hf_wal_write_reserved_crc (struct hf_wal *w,
                                      const struct hf_wal_ticket *t,
                                      uint32_t type, uint64_t offset,
                                      const void *data, uint64_t len,
                                      const uint32_t *data_crc);

/* Wait until a record of this type and len fits under max_bytes (or the
 * log is empty).  Returns 0, or the log's sticky error. */
extern int hf_wal_wait_space (struct hf_wal *w, uint32_t type, uint64_t len);

/* Make every record appended before this call durable (group commit). */
extern int hf_wal_sync (struct hf_wal *w);

/* Records with LSN <= upto are no longer needed; reclaim their space
 * (whole files are deleted or recycled once all their records are
 * released) and wake appenders waiting for space. */
extern int hf_wal_release (struct hf_wal *w, uint64_t upto);

/* Highest LSN appended (or found at open). */
extern uint64_t hf_wal_last_lsn (struct hf_wal *w);

/* The log's random id (fh_log_id): segments name the log whose records
 * they hold, so a reopened volume replays only its own log. */
extern uint64_t hf_wal_log_id (struct hf_wal *w);

extern void hf_wal_get_stats (struct hf_wal *w, struct hf_wal_stats *out);

/* Close the log (does not sync: the caller syncs first if it wants). */
extern void hf_wal_close (struct hf_wal *w);

#endif /* HF_WAL_H */
