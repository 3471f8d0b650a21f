/* tool.h: what the files of the hyperfile admin command share.
 *
 * Internal to tools/ (never installed).  hyperfile.c parses the options
 * into the globals below and runs one command; each cmd-*.c file holds
 * a group of commands (hyperfile.c's first comment lists them) and
 * common.c the helpers they share.  Everything runs on the main thread:
 * nothing here is locked.
 *
 * A command function takes its arguments after the command word
 * (argc/argv, counted by the command table) and returns the process's
 * exit code (EXIT_* below, documented in hyperfile(1), EXIT STATUS).
 */
#ifndef HF_TOOL_H
#define HF_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <json-c/json.h>

#include "crypt.h"
#include "file-int.h"
#include "history.h"
#include "objstore.h"
#include "volume.h"

/* Exit codes beside EXIT_SUCCESS (0) and EXIT_FAILURE (1). */
#define EXIT_USAGE 2
#define EXIT_NOVOLUME 3
#define EXIT_EXISTS 4
#define EXIT_BUSY 5
#define EXIT_NOPOINT 6
#define EXIT_DAMAGED 7

/* ---- Options (hyperfile.c), set before the command runs ---- */

extern struct hf_s3_config hf_tool_s3;  /* the store options */
extern bool hf_tool_json;
extern uint64_t hf_tool_size;
extern uint32_t hf_tool_block_size;
extern unsigned hf_tool_codec;
extern int hf_tool_codec_level;
extern bool hf_tool_verbose;
extern const char *hf_tool_at;          /* --at POINT */
extern bool hf_tool_takeover;           /* --takeover */
extern bool hf_tool_dry_run;            /* gc --dry-run */
extern uint64_t hf_tool_retain_ns;
extern uint64_t hf_tool_grace_ns;
extern bool hf_tool_retain_set;         /* --retain given */
extern bool hf_tool_tty;                /* stderr is a terminal */
extern bool hf_tool_force;              /* export --force */
extern bool hf_tool_quiet;              /* keep the first error line in */
extern char hf_tool_held[1024];         /* hf_tool_held, not printed */
extern bool hf_tool_create_missing;     /* import --create */
extern bool hf_tool_create_silent;      /* create: no report */
extern bool hf_tool_prune;              /* children --prune */
extern const char *hf_tool_from;        /* diff, export --from POINT */
extern const char *hf_tool_to;          /* diff --to POINT */

/* The volume key (--key-file, --key) and rekey's new one. */
extern const char *hf_tool_key_file, *hf_tool_key_pass;
extern const char *hf_tool_new_key_file, *hf_tool_new_key_pass;
extern struct hf_user_key hf_tool_ukey, hf_tool_new_ukey;
extern bool hf_tool_have_ukey;

/* SIZE with an optional K/M/G/T/P/E suffix: 0, or -1 if it is not one. */
extern int hf_tool_parse_size (const char *s, uint64_t *out);
/* --NAME-file PATH or --NAME PASS into *uk: 0 (also when neither was
 * given: *have false), or -1 with a message. */
extern int hf_tool_load_key (const char *file, const char *pass,
                             const char *name, struct hf_user_key *uk,
                             bool *have);

/* ---- Helpers (common.c) ---- */

/* --json output is built with json-c, which quotes and escapes every
 * string (a URL or name may hold any byte but NUL), and printed as one
 * document on one line.  hf_j_new returns o, or exits on NULL (out of
 * memory); hf_j_print prints o to fp and frees it. */
extern json_object *hf_j_new (json_object *o);
extern void hf_j_print (json_object *o, FILE *fp);
#define hf_j_obj() hf_j_new (json_object_new_object ())
#define hf_j_arr() hf_j_new (json_object_new_array ())
#define hf_j_str(o, k, v) \
  json_object_object_add ((o), (k), hf_j_new (json_object_new_string (v)))
#define hf_j_u64(o, k, v) \
  json_object_object_add ((o), (k), \
                          hf_j_new (json_object_new_uint64 (v)))
#define hf_j_i64(o, k, v) \
  json_object_object_add ((o), (k), hf_j_new (json_object_new_int64 (v)))
#define hf_j_bool(o, k, v) \
  json_object_object_add ((o), (k), json_object_new_boolean (v))
#define hf_j_dbl(o, k, v) \
  json_object_object_add ((o), (k), hf_j_new (json_object_new_double (v)))

/* Seconds on the monotonic clock. */
extern double hf_tool_now (void);

/* Open url's store (creating a missing directory if create), check an
 * S3 store is reachable, and attach the volume key: 0 with *s and
 * *prefix the caller's, or an errno (the store said why). */
extern int hf_tool_open_store (const char *url, bool create,
                               struct hf_objstore **s, char **prefix);

/* The same for a command on an existing volume: 0, or the exit code
 * (EXIT_NOVOLUME: no directory there). */
extern int hf_tool_store (const char *url, struct hf_objstore **s,
                          char **prefix);

/* Is there a volume at url?  false with *code EXIT_NOVOLUME if not (no
 * message: the caller says what to do), or another exit code if the
 * store failed (the store said why). */
extern bool hf_tool_volume_exists (const char *url, int *code);

/* hf_file_extents callback: add the bytes of data runs to *opaque (a
 * uint64_t). */
extern int hf_tool_count_mapped (void *opaque, uint64_t offset,
                                 uint64_t length, unsigned type);

/* An open store and the history of the volume in it. */
struct hf_tool_vol {
  struct hf_objstore *s;
  char *prefix;
  struct hf_history *h;
};

/* Open url's store and history: 0, or the exit code (message printed). */
extern int hf_tool_vol_open (const char *cmd, const char *url,
                             struct hf_tool_vol *t);
extern void hf_tool_vol_close (struct hf_tool_vol *t);
/* Resolve POINT on t's chain: 0 and *seq, or the exit code. */
extern int hf_tool_resolve (const char *cmd, struct hf_tool_vol *t,
                            const char *point, uint64_t *seq);

/* Flags of hf_tool_writer_open. */
#define HF_TOOL_W_BATCH      0x1u /* no timed flushes: what the command
                                     writes is committed at close */
#define HF_TOOL_W_OLDER_HEAD 0x2u /* open past a lost or damaged newest
                                     segment (rollback: the way out) */

/* Open the volume at url, whose store s (prefix; both borrowed, they
 * must outlive *f) the command opened, as a libhyperfile handle
 * (hf_file_open_ext) through its writer lease, which --takeover may
 * claim when it expired: what every command that changes a volume does
 * first.  0 with *f the caller's (hf_file_close commits and releases
 * the lease), or the exit code: EXIT_NOVOLUME, EXIT_BUSY (another
 * writer holds it) or EXIT_FAILURE; the volume logged why. */
extern int hf_tool_writer_open (const char *url, struct hf_objstore *s,
                                const char *prefix, unsigned flags,
                                struct hf_file **f);
/* The same read-only, at point at_seq (0: the head): 0, or an errno
 * (the volume logged why, but for ENOENT). */
extern int hf_tool_reader_open (const char *url, struct hf_objstore *s,
                                const char *prefix, uint64_t at_seq,
                                struct hf_file **f);

/* Progress on stderr when it is a terminal: done of total bytes (total
 * 0 = unknown), rate and ETA; final ends the line. */
extern void hf_tool_progress (const char *what, uint64_t done,
                              uint64_t total, double t0, bool final);

/* Are the n bytes at p all zero? */
extern bool hf_tool_zero (const uint8_t *p, size_t n);

/* The buffer size of import and export. */
#define HF_TOOL_CHUNK (4u << 20)

/* The keys of a volume, collected by hf_tool_delete_key (an
 * hf_objstore_list_retry callback; hf_tool_keys_restart is its restart
 * function): delete and du (cmd-volume.c). */
struct hf_tool_keys {
  char **keys;
  size_t n, cap;
  uint64_t bytes;
};
extern int hf_tool_delete_key (void *opaque, const char *key, uint64_t size);
extern void hf_tool_keys_restart (void *opaque);

/* create URL (cmd-volume.c): import --create calls it too. */
extern int hf_tool_create (const char *url);

/* export --from (cmd-diff.c), called by export. */
extern int hf_tool_export_from (const char *url, const char *out);

/* ---- Commands (the command table in hyperfile.c) ---- */

extern int hf_tool_cmd_create (int argc, char **argv);  /* cmd-volume.c */
extern int hf_tool_cmd_info (int argc, char **argv);
extern int hf_tool_resize (int argc, char **argv);
extern int hf_tool_delete (int argc, char **argv);
extern int hf_tool_rekey (int argc, char **argv);
extern int hf_tool_ls (int argc, char **argv);          /* cmd-history.c */
extern int hf_tool_snapshot (int argc, char **argv);
extern int hf_tool_rollback (int argc, char **argv);
extern int hf_tool_clone (int argc, char **argv);       /* cmd-clone.c */
extern int hf_tool_children (int argc, char **argv);
extern int hf_tool_flatten (int argc, char **argv);
extern int hf_tool_import (int argc, char **argv);      /* cmd-copy.c */
extern int hf_tool_export (int argc, char **argv);
extern int hf_tool_diff (int argc, char **argv);        /* cmd-diff.c */
extern int hf_tool_gc (int argc, char **argv);          /* cmd-maint.c */
extern int hf_tool_du (int argc, char **argv);
extern int hf_tool_fsck (int argc, char **argv);
extern int hf_tool_help (int argc, char **argv);        /* hyperfile.c */

#endif /* HF_TOOL_H */
